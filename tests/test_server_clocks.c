/* test_server_clocks.c -- clocks through a real server: only the server
 * judges drift.  A device whose clock runs behind still takes a row another
 * user stamped near the server's bound, its own clock does not jump with
 * it, and its own later write to that row still wins; a push past the
 * server's bound is refused; and the public peer-to-peer merge keeps
 * refusing such clocks. */
#include <criterion/criterion.h>

#include "server_support.h"
#include "sync/sync.h"

/* Posts anyone signed in may read and write. */
static const char *SCHEMA = "auth User { id String  role String }\n"
                            "model Post {\n"
                            "  id    String  @id\n"
                            "  title String\n"
                            "  @@allow('all', auth() != null)\n"
                            "}\n";

TestSuite(clocks, .fini = fini);

static void post(dev *d, const char *id, const char *title)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)}, {"title", cstack_v_text(title)}};
    cstack_data data = {f, 2};
    cr_assert_eq(cstack_create(d->db, "Post", &data, NULL), 0, "%s", cstack_errmsg(d->db));
}

static void retitle(dev *d, const char *id, const char *title)
{
    cstack_field_value w[] = {{"id", cstack_v_text(id)}};
    cstack_field_value f[] = {{"title", cstack_v_text(title)}};
    cstack_data where = {w, 1}, data = {f, 1};
    cr_assert_eq(cstack_update(d->db, "Post", &where, &data, NULL), 0, "%s", cstack_errmsg(d->db));
}

/* The title of post `id`, malloc'd. */
static char *title_of(dev *d, const char *id)
{
    char *t = t_text_of(d->db, "Post", id, "title");
    cr_assert_not_null(t, "post %s is missing", id);
    return t;
}

/* One cstack_sync_run_once of the library's client against the server. */
static int sync_once(dev *d, cstack_sync_status *st)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cstack_server_port(srv));
    cstack_sync_options o = {.url = url, .token = d->token, .retry_min_ms = 10};
    memset(st, 0, sizeof *st);
    return cstack_sync_run_once(d->db, &o, NULL, NULL, st);
}

static void synced(dev *d, const char *who)
{
    cstack_sync_status st;
    int rc = sync_once(d, &st);
    cr_assert_eq(rc, 0, "%s: sync failed (%s): %s", who, cstack_errname(rc), st.last_error);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(clocks, a_device_whose_clock_runs_behind_syncs_a_row_stamped_at_the_servers_bound)
{
    start_opts(SCHEMA, "clocks.db", 0);
    /* Alice's clock runs 299 s ahead: the server still accepts it. */
    dev alice = device(SCHEMA, "alice");
    cs_sync_test_wall_offset(alice.db, 299 * 1000);
    post(&alice, "p1", "from the future");
    synced(&alice, "alice");

    /* Bob's runs 5 s behind: 304 s between his clock and the row's. */
    dev bob = device(SCHEMA, "bob");
    cs_sync_test_wall_offset(bob.db, -5 * 1000);
    synced(&bob, "bob");
    cr_assert_eq(count(&bob, "Post"), 1, "bob has alice's post");
    char *t = title_of(&bob, "p1");
    cr_expect_str_eq(t, "from the future");
    free(t);

    /* Bob's clock went no further than his own wall clock plus the bound,
     * short of the row's clock. */
    uint64_t hlc_ms = cs_sync_of(bob.db)->hlc >> 16;
    int64_t bound_ms = wall_ms() - 5 * 1000 + 300 * 1000;
    cr_expect_leq((int64_t)hlc_ms, bound_ms, "bob's clock jumped %" PRId64 " ms past his bound",
                  (int64_t)hlc_ms - bound_ms);
    cr_expect_lt((int64_t)hlc_ms, wall_ms() + 298 * 1000, "bob's clock followed alice's");

    /* Bob overwrites the title he saw: his write wins everywhere although
     * his clock is behind the value's. */
    retitle(&bob, "p1", "bob's edit");
    synced(&bob, "bob");
    synced(&alice, "alice");
    t = title_of(&alice, "p1");
    cr_expect_str_eq(t, "bob's edit", "alice got bob's later write");
    free(t);
    dev fresh = device(SCHEMA, "carol");
    synced(&fresh, "carol");
    cr_expect_eq(checksum(&bob), checksum(&fresh), "bob equals a fresh device");
    cr_expect_eq(checksum(&alice), checksum(&fresh), "alice equals a fresh device");
    dev_free(&alice);
    dev_free(&bob);
    dev_free(&fresh);
}

Test(clocks, a_push_past_the_servers_bound_is_refused_and_the_peer_merge_still_judges)
{
    start_opts(SCHEMA, "clocks_bound.db", 0);
    dev alice = device(SCHEMA, "alice");
    cs_sync_test_wall_offset(alice.db, 400 * 1000);
    post(&alice, "p1", "too far ahead");
    char batch[128];
    res r = push_next(&alice, batch, sizeof batch);
    assert_err(&r, 400, "clock_drift", "ahead", "a push 400 s ahead");
    res_free(&r);

    /* Within the bound the server takes it; a peer whose clock runs 5 s
     * behind and merges the server's changes itself still refuses them. */
    dev ann = device(SCHEMA, "ann");
    cs_sync_test_wall_offset(ann.db, 299 * 1000);
    post(&ann, "p2", "near the bound");
    push_all(&ann);
    dev peer = device(SCHEMA, "bob");
    cs_sync_test_wall_offset(peer.db, -5 * 1000);
    const char *h[] = {peer.auth, peer.schema, peer.site, NULL};
    r = http("GET", "/v1/pull?since=0", h, NULL, 0);
    cr_assert_eq(r.status, 200);
    int rc = cstack_changes_apply(peer.db, r.body, r.len, NULL);
    cr_expect_eq(rc, CSTACK_ECLOCK, "cstack_changes_apply judges: got %s", cstack_errname(rc));
    res_free(&r);
    dev_free(&alice);
    dev_free(&ann);
    dev_free(&peer);
}
