/* test_access.c -- the access matrix: through every endpoint and for every
 * operation, user A can neither read nor change user B's rows, and an
 * anonymous request gets 401. */
#include <criterion/criterion.h>

#include "server_support.h"
#include "sync/changeset.h"

static const char *SCHEMA = T_PRIVATE_NOTES_SCHEMA;

/* Whether `needle` occurs in the n bytes at p (memmem is a GNU extension). */
static bool has_bytes(const void *p, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; p && i + k <= n; i++)
        if (memcmp((const char *)p + i, needle, k) == 0)
            return true;
    return false;
}

static void start(void)
{
    start_opts(SCHEMA, "access.db", 0);
}

TestSuite(access, .fini = fini);

/* Bob's changes touching alice's notes, each a separate batch. */
typedef struct attempt {
    const char *what;
    void (*make)(dev *bob);
} attempt;

static void bob_creates_for_alice(dev *bob)
{
    note(bob, "b-for-alice", "alice", "planted");
}

/* Bob writes a row with the key of alice's note: on the server that is an
 * update of her row (the later write wins the merge). */
static void bob_overwrites_alices_note(dev *bob)
{
    note(bob, "a1", "bob", "stolen");
}

static void bob_edits_alices_note_keeping_owner(dev *bob)
{
    note(bob, "a1", "alice", "edited by bob");
}

/* Bob deletes a row with the key of alice's note. */
static void bob_deletes_alices_note(dev *bob)
{
    note(bob, "a2", "bob", "to delete");
    int64_t pending = 0;
    cstack_upload_pending(bob->db, &pending);
    /* Acknowledge the create locally, so only the delete is pushed. */
    int64_t v = 0;
    cr_assert_eq(cstack_sync_version(bob->db, &v), 0);
    cstack_upload_complete(bob->db, v);
    cstack_field_value w[] = {{"id", cstack_v_text("a2")}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(bob->db, "Note", &where, NULL), 0, "%s", cstack_errmsg(bob->db));
}

Test(access, a_user_can_neither_change_another_users_rows_through_push)
{
    start();
    dev alice = device(SCHEMA, "alice");
    note(&alice, "a1", "alice", "alice 1");
    note(&alice, "a2", "alice", "alice 2");
    push_all(&alice);
    int64_t before = server_version();
    attempt attempts[] = {
        {"create a row owned by alice", bob_creates_for_alice},
        {"update alice's row (taking it)", bob_overwrites_alices_note},
        {"update alice's row (keeping her as owner)", bob_edits_alices_note_keeping_owner},
        {"delete alice's row", bob_deletes_alices_note},
    };
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        dev bob = device(SCHEMA, "bob");
        attempts[i].make(&bob);
        char batch[128];
        res r = push_next(&bob, batch, sizeof batch);
        assert_err(&r, 403, "forbidden", "Note", attempts[i].what);
        res_free(&r);
        dev_free(&bob);
    }
    cr_expect_eq(server_version(), before, "no refused batch changed the server");
    /* Alice's view is intact. */
    dev check = device(SCHEMA, "alice");
    pull(&check);
    char *dump = ts_dump(check.db);
    cr_expect(strstr(dump, "alice 1") && strstr(dump, "alice 2"), "%s", dump);
    cr_expect(!strstr(dump, "planted") && !strstr(dump, "stolen") && !strstr(dump, "bob"), "%s",
              dump);
    free(dump);
    dev_free(&check);
    dev_free(&alice);
}

Test(access, a_user_cannot_read_another_users_rows_through_pull_or_stream)
{
    start();
    dev alice = device(SCHEMA, "alice");
    dev bob = device(SCHEMA, "bob");
    note(&alice, "alice-note-1", "alice", "alice secret one");
    push_all(&alice);
    note(&bob, "b1", "bob", "bob's own");
    push_all(&bob);
    /* pull */
    pull(&bob);
    cr_expect_eq(count(&bob, "Note"), 1);
    const char *h[] = {bob.auth, bob.schema, bob.site, NULL};
    res r = http("GET", "/v1/pull?since=0", h, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_expect(!has_bytes(r.body, r.len, "secret") && !has_bytes(r.body, r.len, "alice-note"),
              "nothing of alice's row, not even its key, reaches bob");
    res_free(&r);
    /* stream: bob follows; alice writes; bob's stream carries nothing of it
     * while a later write from bob's other device arrives (a write of this
     * device's own would not come back to it). */
    sse s;
    sse_open(&s, &bob, bob.cursor);
    size_t pos = 0;
    checkpoint_at(&s, -1, &pos);
    note(&alice, "alice-note-2", "alice", "alice secret two");
    push_all(&alice);
    dev bob2 = device(SCHEMA, "bob");
    note(&bob2, "b2", "bob", "bob marker");
    push_all(&bob2);
    dev_free(&bob2);
    char *ev = sse_next(&s, "event: changes", pos, &pos);
    cr_assert_not_null(ev, "the write of bob's other device was not streamed");
    cs_buf bin = CS_BUF_INIT;
    char *data = ev_field(ev, "data");
    cr_assert_eq(cs_base64_decode(&bin, data, strlen(data)), 0);
    cr_expect(!has_bytes(bin.data, bin.len, "secret") && !has_bytes(bin.data, bin.len, "alice-note"),
              "alice's write reached bob's stream");
    cr_expect(has_bytes(bin.data, bin.len, "bob marker"));
    cs_buf_free(&bin);
    free(data);
    free(ev);
    sse_close(&s);
    dev_free(&alice);
    dev_free(&bob);
}

Test(access, anonymous_requests_get_401_on_every_data_endpoint)
{
    start();
    dev bob = device(SCHEMA, "bob");
    note(&bob, "b1", "bob", "x");
    void *cs = NULL;
    size_t len = 0;
    cr_assert_eq(cstack_changes_export(bob.db, 0, &cs, &len, NULL), 0);
    char bh[128];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %s:1", cstack_sync_site_id(bob.db));
    const char *anon[] = {bob.schema, bob.site, bh, NULL};
    struct {
        const char *method, *path;
        const void *body;
        size_t len;
    } eps[] = {
        {"POST", "/v1/push", cs, len},
        {"GET", "/v1/pull?since=0", NULL, 0},
        {"GET", "/v1/stream?since=0", NULL, 0},
    };
    for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++) {
        res r = http(eps[i].method, eps[i].path, anon, eps[i].body, eps[i].len);
        assert_err(&r, 401, "unauthorized", "token", eps[i].path);
        res_free(&r);
    }
    /* Health and metrics need no token. */
    res h = http("GET", "/healthz", anon, NULL, 0);
    cr_expect_eq(h.status, 200);
    res_free(&h);
    cstack_free(cs);
    cr_expect_eq(server_version(), 0, "nothing was written");
    dev_free(&bob);
}
