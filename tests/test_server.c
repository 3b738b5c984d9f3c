/* test_server.c -- the sync server over real HTTP on loopback
 * (docs/server.md): every malformed-request class gets its status and a
 * clear message and the server keeps serving; push / pull round trips
 * between local databases; retried batches; write policies; schema
 * mismatch; drain on stop without losing an acknowledged change; streams
 * with checkpoints whose checksum matches the device's; visibility that
 * changes through a relation (drops and reappearance); /metrics as
 * Prometheus text; `cstack serve` and `cstack token` from the command line.
 *
 * Each test starts its own server in-process on 127.0.0.1 with an ephemeral
 * port (never another address) and stops it at the end; libcurl is the
 * client.  Devices are in-memory cstack databases of the same schema. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server_support.h"
#include "sync/changeset.h"

static const char *SCHEMA = T_PRIVATE_NOTES_SCHEMA;

/* Visibility through a relation: a doc is readable by the members of its
 * team, so it appears and disappears while the doc itself is unchanged. */
static const char *TEAM_SCHEMA = "auth User { id String  role String }\n"
                                 "model Team {\n"
                                 "  id      String   @id\n"
                                 "  members Member[]\n"
                                 "  docs    Doc[]\n"
                                 "  @@allow('all', true)\n"
                                 "}\n"
                                 "model Member {\n"
                                 "  id     String @id\n"
                                 "  teamId String\n"
                                 "  team   Team   @relation(fields: [teamId], references: [id])\n"
                                 "  userId String\n"
                                 "  @@allow('all', true)\n"
                                 "}\n"
                                 "model Doc {\n"
                                 "  id     String @id\n"
                                 "  teamId String\n"
                                 "  team   Team   @relation(fields: [teamId], references: [id])\n"
                                 "  title  String\n"
                                 "  @@allow('read', team.members?[userId == auth().id])\n"
                                 "  @@allow('create,update,delete', true)\n"
                                 "}\n";

static void start(void)
{
    start_opts(SCHEMA, "server.db", 0);
}

TestSuite(server, .fini = fini, .timeout = 120);

/* ---- malformed requests ----------------------------------------------------- */

enum { H_AUTH = 1, H_SCHEMA = 2, H_SITE = 4, H_BATCH = 8, H_ALL = 15 };
enum { B_NONE, B_VALID, B_GARBAGE, B_EMPTY, B_BIG, B_BIG_CHUNKED, B_OTHER_SCHEMA };

typedef struct bad_case {
    const char *name;
    const char *method;
    const char *path;
    unsigned headers;  /* which of the device's own headers to send */
    const char *extra; /* one more header (replacing the standard one it names) */
    int body;
    long status;
    const char *code;
    const char *words;
} bad_case;

#define PUSHH "POST", "/v1/push"
#define PULLH "GET", "/v1/pull"

static const bad_case BAD[] = {
    {"no token", PULLH, H_SCHEMA | H_SITE, NULL, B_NONE, 401, "unauthorized", "bearer"},
    {"no token on a push", PUSHH, H_SCHEMA | H_SITE | H_BATCH, NULL, B_VALID, 401, "unauthorized",
     "bearer"},
    {"not a JWT", PULLH, H_SCHEMA | H_SITE, "Authorization: Bearer abc.def", B_NONE, 401,
     "unauthorized", ""},
    {"not bearer", PULLH, H_SCHEMA | H_SITE, "Authorization: Basic dXNlcjpwYXNz", B_NONE, 401,
     "unauthorized", "bearer"},
    {"wrong secret", PULLH, H_SCHEMA | H_SITE, "@wrong-secret", B_NONE, 401, "unauthorized",
     "signature"},
    {"expired", PULLH, H_SCHEMA | H_SITE, "@expired", B_NONE, 401, "unauthorized", "expired"},
    {"claims do not fit", PULLH, H_SCHEMA | H_SITE, "@no-role", B_NONE, 401, "unauthorized",
     "role"},
    {"no schema header", PULLH, H_AUTH | H_SITE, NULL, B_NONE, 400, "bad_request",
     "X-Cstack-Schema"},
    {"other schema", PULLH, H_AUTH | H_SITE,
     "X-Cstack-Schema: 0000000000000000000000000000000000000000000000000000000000000000", B_NONE,
     409, "schema_mismatch", "0000000000000000"},
    {"other schema on a push", PUSHH, H_AUTH | H_SITE | H_BATCH,
     "X-Cstack-Schema: 1111111111111111111111111111111111111111111111111111111111111111", B_VALID,
     409, "schema_mismatch", "1111111111111111"},
    {"no site", PULLH, H_AUTH | H_SCHEMA, NULL, B_NONE, 400, "bad_request", "X-Cstack-Site"},
    {"bad site", PULLH, H_AUTH | H_SCHEMA, "X-Cstack-Site: not-hex", B_NONE, 400, "bad_request",
     "X-Cstack-Site"},
    {"the backend's reserved site", PULLH, H_AUTH | H_SCHEMA,
     "X-Cstack-Site: 63737461636b006261636b656e640000", B_NONE, 400, "bad_request",
     "reserved for backend writes"},
    {"cursor not a number", "GET", "/v1/pull?since=abc", H_ALL, NULL, B_NONE, 400, "bad_request",
     "cursor"},
    {"negative cursor", "GET", "/v1/pull?since=-1", H_ALL, NULL, B_NONE, 400, "bad_request",
     "cursor"},
    {"cursor ahead of the server", "GET", "/v1/pull?since=999999", H_ALL, NULL, B_NONE, 400,
     "bad_request", "999999"},
    {"stream cursor ahead", "GET", "/v1/stream?since=424242", H_ALL, NULL, B_NONE, 400,
     "bad_request", "424242"},
    {"push without batch", PUSHH, H_AUTH | H_SCHEMA | H_SITE, NULL, B_VALID, 400, "bad_request",
     "X-Cstack-Batch"},
    {"batch of another device", PUSHH, H_AUTH | H_SCHEMA | H_SITE,
     "X-Cstack-Batch: 0123456789abcdef0123456789abcdef:7", B_VALID, 400, "bad_request",
     "not made by this device"},
    {"garbage changeset", PUSHH, H_ALL, NULL, B_GARBAGE, 400, "bad_request", "changeset"},
    {"empty body", PUSHH, H_ALL, NULL, B_EMPTY, 400, "bad_request", ""},
    {"body too large", PUSHH, H_ALL, NULL, B_BIG, 413, "too_big", "4096"},
    {"chunked body", PUSHH, H_ALL, NULL, B_BIG_CHUNKED, 411, "length_required", "Content-Length"},
    {"changeset of another schema", PUSHH, H_ALL, NULL, B_OTHER_SCHEMA, 409, "schema_mismatch",
     "schema"},
    {"GET a push", "GET", "/v1/push", H_ALL, NULL, B_NONE, 405, "method_not_allowed", "POST"},
    {"POST a pull", "POST", "/v1/pull", H_ALL, NULL, B_VALID, 405, "method_not_allowed", "GET"},
    {"DELETE a stream", "DELETE", "/v1/stream", H_ALL, NULL, B_NONE, 405, "method_not_allowed",
     "GET"},
    {"unknown route", "GET", "/v2/everything", H_ALL, NULL, B_NONE, 404, "not_found",
     "/v2/everything"},
};

/* The header lines of a case. */
static size_t case_headers(const bad_case *c, dev *d, const char *batch, char extra[][4096],
                           const char **h)
{
    size_t n = 0;
    const char *x = c->extra;
    if (x && x[0] == '@') {
        int64_t now = (int64_t)time(NULL);
        char *tok = strcmp(x, "@expired") == 0   ? mint("alice", "user", now - 7200, 60)
                    : strcmp(x, "@no-role") == 0 ? mint("alice", NULL, now, 600)
                                                 : NULL;
        if (!tok) {
            char err[128];
            cstack_server_mint_token("another-secret", "alice", NULL, 0, now, 600, &tok, err,
                                     sizeof err);
        }
        snprintf(extra[0], sizeof extra[0], "Authorization: Bearer %s", tok);
        free(tok);
        h[n++] = extra[0];
    } else if (x) {
        h[n++] = x;
    }
    bool has_auth = x && strncmp(x, "Auth", 4) == 0;
    if ((c->headers & H_AUTH) && !has_auth && !(x && x[0] == '@'))
        h[n++] = d->auth;
    if ((c->headers & H_SCHEMA) && !(x && strncmp(x, "X-Cstack-Schema", 15) == 0))
        h[n++] = d->schema;
    if ((c->headers & H_SITE) && !(x && strncmp(x, "X-Cstack-Site", 13) == 0))
        h[n++] = d->site;
    if ((c->headers & H_BATCH) && !(x && strncmp(x, "X-Cstack-Batch", 14) == 0)) {
        snprintf(extra[1], sizeof extra[1], "X-Cstack-Batch: %s", batch);
        h[n++] = extra[1];
    }
    h[n] = NULL;
    return n;
}

Test(server, malformed_requests_get_their_status_and_the_server_keeps_serving)
{
    start_opts(SCHEMA, "server.db", 4096);
    dev d = device(SCHEMA, "alice");
    dev other = device(TEAM_SCHEMA, "alice");
    note(&d, "n1", "alice", "first");
    cstack_field_value tf[] = {{"id", cstack_v_text("t1")}};
    cstack_data team = {tf, 1};
    cr_assert_eq(cstack_create(other.db, "Team", &team, NULL), 0);
    cstack_upload_tx *tx = NULL, *otx = NULL;
    cstack_upload_next(d.db, &tx);
    cstack_upload_next(other.db, &otx);
    size_t vlen = 0, olen = 0;
    const void *valid = cstack_upload_tx_changeset(tx, &vlen);
    const void *foreign = cstack_upload_tx_changeset(otx, &olen);
    char batch[80];
    snprintf(batch, sizeof batch, "%s:%" PRId64, cstack_sync_site_id(d.db),
             cstack_upload_tx_version(tx));
    static char big[8192];
    memset(big, 'x', sizeof big);
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case *c = &BAD[i];
        char extra[2][4096];
        const char *h[8];
        case_headers(c, &d, batch, extra, h);
        const void *body = c->body == B_VALID          ? valid
                           : c->body == B_OTHER_SCHEMA ? foreign
                           : c->body == B_GARBAGE      ? "CSCS\x01garbage"
                           : c->body == B_NONE         ? NULL
                                                       : (const void *)big;
        size_t len = c->body == B_VALID          ? vlen
                     : c->body == B_OTHER_SCHEMA ? olen
                     : c->body == B_GARBAGE      ? 12
                     : c->body == B_EMPTY        ? 0
                     : c->body == B_NONE         ? 0
                                                 : sizeof big;
        if (c->body == B_EMPTY)
            body = "";
        res r = http_ex(c->method, c->path, h, body, len, c->body == B_BIG_CHUNKED);
        assert_err(&r, c->status, c->code, c->words, c->name);
        res_free(&r);
        /* The server keeps serving after every refusal. */
        res ok = http("GET", "/healthz", NULL, NULL, 0);
        cr_assert_eq(ok.status, 200, "after '%s'", c->name);
        res_free(&ok);
    }
    /* Nothing was applied by any refused push; the valid batch still goes. */
    dev check = device(SCHEMA, "alice");
    pull(&check);
    cr_assert_eq(count(&check, "Note"), 0);
    dev_free(&check);
    char bh[128];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %s", batch);
    const char *h[] = {d.auth, d.schema, d.site, bh, NULL};
    res r = http("POST", "/v1/push", h, valid, vlen);
    cr_assert_eq(r.status, 200, "%s", r.body ? r.body : "");
    res_free(&r);
    cstack_upload_tx_free(tx);
    cstack_upload_tx_free(otx);
    dev_free(&d);
    dev_free(&other);
}

/* ---- push and pull ------------------------------------------------------------ */

Test(server, push_then_pull_round_trip_between_two_devices)
{
    start();
    dev a = device(SCHEMA, "alice");
    dev b = device(SCHEMA, "alice");
    note(&a, "n1", "alice", "one");
    note(&a, "n2", "alice", "two");
    push_all(&a);
    uint64_t sum = pull(&b);
    cr_assert_eq(count(&b, "Note"), 2);
    cr_assert_eq(sum, checksum(&b), "the pull's checksum is the device's after applying it");
    char *da = ts_dump(a.db), *db = ts_dump(b.db);
    cr_assert_str_eq(da, db);
    free(da);
    free(db);
    /* An edit on b comes back to a, and a's cursor only fetches what is new. */
    cstack_field_value w[] = {{"id", cstack_v_text("n2")}};
    cstack_field_value f[] = {{"title", cstack_v_text("two, edited on b")}};
    cstack_data where = {w, 1}, data = {f, 1};
    cr_assert_eq(cstack_update(b.db, "Note", &where, &data, NULL), 0);
    push_all(&b);
    a.cursor = b.cursor;
    cr_assert_eq(pull(&a), checksum(&a));
    da = ts_dump(a.db);
    db = ts_dump(b.db);
    cr_assert_str_eq(da, db);
    cr_assert(strstr(da, "two, edited on b"));
    free(da);
    free(db);
    dev_free(&a);
    dev_free(&b);
}

Test(server, a_retried_batch_is_applied_once)
{
    start();
    dev a = device(SCHEMA, "alice");
    note(&a, "n1", "alice", "one");
    cstack_upload_tx *tx = NULL;
    cstack_upload_next(a.db, &tx);
    size_t len = 0;
    const void *cs = cstack_upload_tx_changeset(tx, &len);
    char bh[128];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %s:%" PRId64, cstack_sync_site_id(a.db),
             cstack_upload_tx_version(tx));
    const char *h[] = {a.auth, a.schema, a.site, bh, NULL};
    res r1 = http("POST", "/v1/push", h, cs, len);
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    cr_assert(strstr(r1.body, "\"duplicate\":false"), "%s", r1.body);
    int64_t v1 = server_version();
    res r2 = http("POST", "/v1/push", h, cs, len);
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    cr_assert(strstr(r2.body, "\"duplicate\":true"), "%s", r2.body);
    cr_assert(strstr(r2.body, "\"batch\":\""), "%s", r2.body);
    cr_assert_eq(server_version(), v1, "a duplicate is not merged again");
    res m = http("GET", "/metrics", NULL, NULL, 0);
    cr_assert(strstr(m.body, "cstack_push_batches_total{result=\"ok\"} 1\n"), "%s", m.body);
    cr_assert(strstr(m.body, "cstack_push_batches_total{result=\"duplicate\"} 1\n"), "%s", m.body);
    res_free(&m);
    res_free(&r1);
    res_free(&r2);
    cstack_upload_tx_free(tx);
    dev_free(&a);
}

Test(server, a_write_policy_violation_is_403_and_nothing_is_applied)
{
    start();
    dev a = device(SCHEMA, "alice");
    dev b = device(SCHEMA, "bob");
    /* alice creates a note owned by bob, together with one of her own. */
    cr_assert_eq(cstack_begin(a.db), 0);
    note(&a, "mine", "alice", "ok");
    note(&a, "forged", "bob", "not hers to create");
    cr_assert_eq(cstack_commit(a.db), 0);
    char batch[128];
    res r = push_next(&a, batch, sizeof batch);
    assert_err(&r, 403, "forbidden", "Note", "create for another owner");
    cr_assert(strstr(r.body, "create"), "%s", r.body);
    cr_assert(strstr(r.body, "forged"), "the message names the key: %s", r.body);
    res_free(&r);
    dev check = device(SCHEMA, "alice");
    pull(&check);
    cr_assert_eq(count(&check, "Note"), 0, "nothing of the batch was applied");
    dev_free(&check);
    /* bob updates a note of alice's (same key, pushed after hers). */
    dev a2 = device(SCHEMA, "alice");
    note(&a2, "n1", "alice", "alice's");
    push_all(&a2);
    note(&b, "n1", "bob", "bob takes it");
    r = push_next(&b, batch, sizeof batch);
    assert_err(&r, 403, "forbidden", "update", "update of another's row");
    cr_assert(strstr(r.body, "n1") && strstr(r.body, "bob"), "%s", r.body);
    res_free(&r);
    dev c = device(SCHEMA, "alice");
    pull(&c);
    char *dump = ts_dump(c.db);
    cr_assert(strstr(dump, "alice's") && !strstr(dump, "bob takes it"), "%s", dump);
    free(dump);
    dev_free(&a);
    dev_free(&a2);
    dev_free(&b);
    dev_free(&c);
}

Test(server, a_user_reads_only_rows_the_read_policies_allow)
{
    start();
    dev a = device(SCHEMA, "alice");
    dev b = device(SCHEMA, "bob");
    note(&a, "a1", "alice", "alice's secret");
    push_all(&a);
    note(&b, "b1", "bob", "bob's");
    push_all(&b);
    dev b2 = device(SCHEMA, "bob");
    uint64_t sum = pull(&b2);
    char *dump = ts_dump(b2.db);
    cr_assert(strstr(dump, "bob's") && !strstr(dump, "alice"), "%s", dump);
    cr_assert_eq(sum, checksum(&b2));
    free(dump);
    /* Bob's devices never hold alice's row, so nothing about it -- not even
     * its key -- reaches bob. */
    const char *h[] = {b2.auth, b2.schema, b2.site, NULL};
    res r = http("GET", "/v1/pull?since=0", h, NULL, 0);
    cr_assert_eq(r.status, 200);
    for (size_t i = 0; i + 6 <= r.len; i++)
        cr_assert(memcmp(r.body + i, "secret", 6) != 0, "alice's data reached bob");
    for (size_t i = 0; i + 2 <= r.len; i++)
        cr_assert(memcmp(r.body + i, "a1", 2) != 0, "alice's key reached bob");
    res_free(&r);
    /* A drop (causal length 0) pushed to the server is refused: only servers
     * make drops.  Made from bob's own row by zeroing its causal length. */
    void *cs = NULL;
    size_t len = 0;
    cr_assert_eq(cstack_changes_export(b.db, 0, &cs, &len, NULL), 0);
    cs_reader rd = {cs, len, 0};
    cs_cs_header hd;
    char err[128];
    uint64_t v;
    cr_assert_eq(cs_cs_read_header(&rd, &hd, err, sizeof err), 0, "%s", err);
    cr_assert(cs_rd_varint(&rd, &v) == 0 && cs_rd_varint(&rd, &v) == 0);
    cr_assert_eq(((unsigned char *)cs)[rd.pos], 1, "a one-byte causal length");
    ((unsigned char *)cs)[rd.pos] = 0;
    char bh[128];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %s:99", cstack_sync_site_id(b.db));
    const char *ph[] = {b.auth, b.schema, b.site, bh, NULL};
    res p = http("POST", "/v1/push", ph, cs, len);
    assert_err(&p, 400, "bad_request", "drop", "a drop pushed to the server");
    res_free(&p);
    cstack_free(cs);
    dev_free(&a);
    dev_free(&b);
    dev_free(&b2);
}

/* The same through incremental pulls: after bob's cursor passed, alice edits
 * and deletes her private rows and creates new ones; bob's next answer (a
 * pull with his cursor, which scans only the rows changed since) carries
 * none of their keys, not even as drops or deletions. */
Test(server, an_incremental_pull_carries_no_key_of_another_users_changed_rows)
{
    start();
    dev a = device(SCHEMA, "alice");
    dev b = device(SCHEMA, "bob");
    note(&a, "alice-1", "alice", "first");
    note(&a, "alice-2", "alice", "second");
    push_all(&a);
    note(&b, "bob-1", "bob", "bob's");
    push_all(&b);
    cr_assert_eq(pull(&b), checksum(&b));
    cstack_field_value w[] = {{"id", cstack_v_text("alice-1")}};
    cstack_field_value f[] = {{"title", cstack_v_text("edited")}};
    cstack_data where = {w, 1}, data = {f, 1};
    cr_assert_eq(cstack_update(a.db, "Note", &where, &data, NULL), 0);
    cstack_field_value w2[] = {{"id", cstack_v_text("alice-2")}};
    cstack_data where2 = {w2, 1};
    cr_assert_eq(cstack_delete(a.db, "Note", &where2, NULL), 0);
    note(&a, "alice-3", "alice", "third");
    push_all(&a);
    char path[64];
    snprintf(path, sizeof path, "/v1/pull?since=%" PRId64, b.cursor);
    const char *h[] = {b.auth, b.schema, b.site, NULL};
    res r = http("GET", path, h, NULL, 0);
    cr_assert_eq(r.status, 200);
    for (size_t i = 0; i + 5 <= r.len; i++)
        cr_assert(memcmp(r.body + i, "alice", 5) != 0, "a key of alice's rows reached bob");
    res_free(&r);
    cr_assert_eq(pull(&b), checksum(&b));
    cr_assert_eq(count(&b, "Note"), 1);
    dev_free(&a);
    dev_free(&b);
}

/* ---- drain -------------------------------------------------------------------- */

typedef struct pusher {
    dev d;
    int acked; /* notes n0..n{acked-1} were acknowledged */
    atomic_bool go;
} pusher;

/* Creates and pushes one note per batch until a push fails (the server
 * stopped). */
static void *push_loop(void *arg)
{
    pusher *p = arg;
    for (int i = 0; i < 100000; i++) {
        char id[32];
        snprintf(id, sizeof id, "n%d", i);
        cstack_field_value f[] = {{"id", cstack_v_text(id)},
                                  {"ownerId", cstack_v_text("alice")},
                                  {"title", cstack_v_text("drain")}};
        cstack_data data = {f, 3};
        if (cstack_create(p->d.db, "Note", &data, NULL) != 0)
            break;
        char batch[128];
        res r = push_next(&p->d, batch, sizeof batch);
        long status = r.status;
        res_free(&r);
        if (status != 200)
            break;
        p->acked = i + 1;
        atomic_store(&p->go, true);
    }
    atomic_store(&p->go, true);
    return NULL;
}

Test(server, stop_drains_and_a_restarted_server_has_every_acknowledged_change)
{
    start();
    pusher p = {.d = device(SCHEMA, "alice")};
    pthread_t th;
    pthread_create(&th, NULL, push_loop, &p);
    while (!atomic_load(&p.go))
        usleep(1000);
    usleep(200000);
    stop(); /* while pushes are in flight */
    pthread_join(th, NULL);
    cr_assert_gt(p.acked, 0);
    start();
    dev c = device(SCHEMA, "alice");
    pull(&c);
    for (int i = 0; i < p.acked; i++) {
        char id[32];
        snprintf(id, sizeof id, "n%d", i);
        cstack_field_value k[] = {{"id", cstack_v_text(id)}};
        cstack_data key = {k, 1};
        cstack_row *row = NULL;
        cr_assert_eq(cstack_find_unique(c.db, "Note", &key, NULL, 0, &row), 0);
        cr_assert_not_null(row, "acknowledged note %s is lost", id);
        cstack_row_free(row);
    }
    /* What was pushed but not acknowledged is pushed again: nothing lost,
     * nothing doubled. */
    push_all(&p.d);
    pull(&c);
    char *da = ts_dump(p.d.db), *dc = ts_dump(c.db);
    cr_assert_str_eq(da, dc);
    free(da);
    free(dc);
    dev_free(&p.d);
    dev_free(&c);
}

Test(server, cursors_survive_a_restart_after_a_refused_push)
{
    start();
    dev a = device(SCHEMA, "alice");
    dev b = device(SCHEMA, "alice");
    note(&a, "forged", "bob", "refused");
    char batch[128];
    res r = push_next(&a, batch, sizeof batch);
    cr_assert_eq(r.status, 403);
    res_free(&r);
    pull(&b); /* its cursor counts the refused merge's version */
    stop();
    start();
    dev a2 = device(SCHEMA, "alice");
    note(&a2, "n1", "alice", "after the restart");
    push_all(&a2);
    pull(&b);
    cr_assert_eq(count(&b, "Note"), 1,
                 "a cursor handed out before the restart must not hide "
                 "a later commit");
    dev_free(&a);
    dev_free(&a2);
    dev_free(&b);
}

Test(server, a_stream_delivers_another_devices_push_and_checkpoints_match)
{
    start();
    dev a = device(SCHEMA, "alice");
    dev b = device(SCHEMA, "alice");
    note(&a, "n0", "alice", "before the stream");
    push_all(&a);
    sse s;
    sse_open(&s, &b, 0);
    size_t pos = 0;
    /* On connect: what is pending since the cursor, then a checkpoint. */
    char *ev = sse_next(&s, "event: changes", pos, &pos);
    cr_assert_not_null(ev, "no initial changes");
    apply_event(&b, ev);
    free(ev);
    cr_assert_eq(checkpoint_at(&s, -1, &pos), checksum(&b));
    /* A push by another device arrives while the stream is open. */
    note(&a, "n1", "alice", "live");
    push_all(&a);
    ev = sse_next(&s, "event: changes", pos, &pos);
    cr_assert_not_null(ev, "the push was not streamed");
    char *id = ev_field(ev, "id");
    int64_t cursor = strtoll(id, NULL, 10);
    apply_event(&b, ev);
    free(id);
    free(ev);
    cr_assert_eq(count(&b, "Note"), 2);
    uint64_t sum = checkpoint_at(&s, cursor, &pos);
    cr_assert_eq(sum, checksum(&b), "the checkpoint proves b holds what alice may read");
    char *da = ts_dump(a.db), *db = ts_dump(b.db);
    cr_assert_str_eq(da, db);
    free(da);
    free(db);
    /* Keep-alives flow while nothing happens. */
    ev = sse_next(&s, ": keep-alive", pos, &pos);
    cr_assert_not_null(ev);
    free(ev);
    sse_close(&s);
    cr_assert_eq(s.status, 200);
    dev_free(&a);
    dev_free(&b);
}

Test(server, stop_ends_open_streams)
{
    start();
    dev b = device(SCHEMA, "alice");
    sse s;
    sse_open(&s, &b, 0);
    size_t pos = 0;
    checkpoint_at(&s, 0, &pos);
    stop();
    pthread_join(s.th, NULL);
    cr_assert_eq(s.status, 200);
    curl_slist_free_all(s.hdrs);
    free(s.buf);
    dev_free(&b);
}

/* ---- visibility through relations ---------------------------------------------- */

static void create(dev *d, const char *model, const cstack_field_value *f, size_t n)
{
    cstack_data data = {f, n};
    cr_assert_eq(cstack_create(d->db, model, &data, NULL), 0, "%s", cstack_errmsg(d->db));
}

Test(server, rows_appear_and_drop_as_a_membership_comes_and_goes)
{
    start_opts(TEAM_SCHEMA, "team.db", 0);
    dev admin = device(TEAM_SCHEMA, "admin");
    dev alice = device(TEAM_SCHEMA, "alice");
    create(&admin, "Team", (cstack_field_value[]){{"id", cstack_v_text("t1")}}, 1);
    create(&admin, "Doc",
           (cstack_field_value[]){{"id", cstack_v_text("d1")},
                                  {"teamId", cstack_v_text("t1")},
                                  {"title", cstack_v_text("plans")}},
           3);
    push_all(&admin);
    uint64_t sum = pull(&alice);
    cr_assert_eq(count(&alice, "Doc"), 0, "not a member yet");
    cr_assert_eq(sum, checksum(&alice));
    /* Becoming a member makes the unchanged doc visible. */
    create(&admin, "Member",
           (cstack_field_value[]){{"id", cstack_v_text("m1")},
                                  {"teamId", cstack_v_text("t1")},
                                  {"userId", cstack_v_text("alice")}},
           3);
    push_all(&admin);
    sum = pull(&alice);
    cr_assert_eq(count(&alice, "Doc"), 1, "the doc appears with the membership");
    cr_assert_eq(sum, checksum(&alice));
    /* A pull with nothing new sends nothing. */
    const char *h[] = {alice.auth, alice.schema, alice.site, NULL};
    char path[64];
    snprintf(path, sizeof path, "/v1/pull?since=%" PRId64, alice.cursor);
    res r = http("GET", path, h, NULL, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(cstack_changes_apply(alice.db, r.body, r.len, NULL), 0);
    res_free(&r);
    /* Leaving the team drops the doc (without deleting it), and a later
     * membership brings it back in full. */
    cstack_field_value mk[] = {{"id", cstack_v_text("m1")}};
    cstack_data mkey = {mk, 1};
    cr_assert_eq(cstack_delete(admin.db, "Member", &mkey, NULL), 0);
    push_all(&admin);
    sum = pull(&alice);
    cr_assert_eq(count(&alice, "Doc"), 0, "the doc is dropped");
    cr_assert_eq(sum, checksum(&alice));
    create(&admin, "Member",
           (cstack_field_value[]){{"id", cstack_v_text("m2")},
                                  {"teamId", cstack_v_text("t1")},
                                  {"userId", cstack_v_text("alice")}},
           3);
    push_all(&admin);
    sum = pull(&alice);
    cr_assert_eq(count(&alice, "Doc"), 1, "the doc reappears");
    cr_assert_eq(sum, checksum(&alice));
    dev_free(&admin);
    dev_free(&alice);
}

/* ---- metrics and log ---------------------------------------------------------- */

Test(server, metrics_parse_as_prometheus_text_and_every_request_is_logged)
{
    start();
    dev a = device(SCHEMA, "alice");
    note(&a, "n1", "alice", "one");
    push_all(&a);
    dev b = device(SCHEMA, "alice");
    pull(&b);
    res bad = http("GET", "/v1/pull", NULL, NULL, 0);
    res_free(&bad);
    res m = http("GET", "/metrics", NULL, NULL, 0);
    cr_assert_eq(m.status, 200);
    regex_t sample, help, type;
    cr_assert_eq(regcomp(&sample,
                         "^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\""
                         "(,[a-zA-Z_][a-zA-Z0-9_]*=\"[^\"]*\")*\\})? -?[0-9.eE+-]+$",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    cr_assert_eq(regcomp(&help, "^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$", REG_EXTENDED | REG_NOSUB),
                 0);
    cr_assert_eq(regcomp(&type, "^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge)$",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    int samples = 0;
    for (char *line = strtok(m.body, "\n"); line; line = strtok(NULL, "\n")) {
        bool ok = regexec(&sample, line, 0, NULL, 0) == 0 ||
                  regexec(&help, line, 0, NULL, 0) == 0 || regexec(&type, line, 0, NULL, 0) == 0;
        cr_assert(ok, "not Prometheus text: '%s'", line);
        samples += line[0] != '#';
    }
    regfree(&sample);
    regfree(&help);
    regfree(&type);
    res_free(&m);
    m = http("GET", "/metrics", NULL, NULL, 0);
    static const char *const NAMES[] = {
        "cstack_clients_connected ",
        "cstack_streams_active 0",
        "cstack_push_batches_total{",
        "cstack_changes_in_total ",
        "cstack_changes_out_total 1",
        "cstack_server_version ",
        "cstack_stream_lag_seconds ",
        "cstack_http_requests_total{route=\"push\",status=\"200\"} 1",
        "cstack_http_requests_total{route=\"pull\",status=\"401\"} 1"};
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        cr_assert(strstr(m.body, NAMES[i]), "'%s' missing from\n%s", NAMES[i], m.body);
    cr_assert_gt(samples, 8);
    res_free(&m);
    stop();
    fflush(log_file);
    char *log = t_read_file(logpath, NULL);
    cr_assert(strstr(log, " POST /v1/push 200 "), "%s", log);
    cr_assert(strstr(log, " GET /v1/pull 200 ") && strstr(log, "user=alice"), "%s", log);
    cr_assert(strstr(log, " GET /v1/pull 401 ") && strstr(log, "user=-"), "%s", log);
    free(log);
    dev_free(&a);
    dev_free(&b);
}

/* ---- the command line ------------------------------------------------------------ */

Test(server, cstack_serve_prints_where_it_listens_and_exits_0_on_sigterm)
{
    if (!dir)
        dir = t_tmpdir();
    char schema_path[600], cmd[2048];
    snprintf(schema_path, sizeof schema_path, "%s/app.cstack", dir);
    char *db = t_store_db(dir, "cli.db");
    FILE *f = fopen(schema_path, "w");
    fputs(SCHEMA, f);
    fclose(f);
    char *tok = NULL;
    snprintf(cmd, sizeof cmd, "%s token --secret cli-secret --sub alice --claim role=user",
             CSTACK_CLI);
    cr_assert_eq(t_run(cmd, &tok), 0);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        execl(CSTACK_CLI, "cstack", "serve", "--schema", schema_path, "--db", db, "--port", "0",
              "--jwt-secret", "cli-secret", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[2048] = "";
    FILE *out = fdopen(fds[0], "r");
    cr_assert_not_null(fgets(line, sizeof line, out), "no listening line");
    int port = 0;
    cr_assert_eq(sscanf(line, "listening on http://127.0.0.1:%d", &port), 1, "%s", line);
    char want[700];
    snprintf(want, sizeof want, " (database: %s, %s)\n", db, t_store_name());
    cr_assert_str_eq(strstr(line, " (") ? strstr(line, " (") : line, want);
    /* The minted token is accepted by the server it was minted for. */
    char url[128], auth[4096], sch[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/pull", port);
    tok[strcspn(tok, "\n")] = 0;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    cstack_schema *s = t_schema(SCHEMA);
    snprintf(sch, sizeof sch, "X-Cstack-Schema: %s", cstack_schema_hash(s));
    cstack_schema_free(s);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, sch);
    h = curl_slist_append(h, "X-Cstack-Site: 00112233445566778899aabbccddeeff");
    res r = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    cr_assert_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    cr_assert_eq(r.status, 200, "%s", r.body ? r.body : "");
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    res_free(&r);
    kill(pid, SIGTERM);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    fclose(out);
    free(tok);
    free(db);
}

Test(server, cstack_serve_without_db_says_it_uses_the_default_database_path)
{
    char *cwd = t_tmpdir();
    char schema_path[600];
    snprintf(schema_path, sizeof schema_path, "%s/app.cstack", cwd);
    FILE *f = fopen(schema_path, "w");
    fputs(SCHEMA, f);
    fclose(f);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        if (chdir(cwd) != 0)
            _exit(126);
        execl(CSTACK_CLI, "cstack", "serve", "--schema", "app.cstack", "--port", "0",
              "--jwt-secret", "cli-secret", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char line[2048] = "";
    FILE *out = fdopen(fds[0], "r");
    cr_assert_not_null(fgets(line, sizeof line, out), "no listening line");
    kill(pid, SIGTERM);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    fclose(out);
    const char *tail = strstr(line, " (");
    cr_assert_str_eq(tail ? tail : line,
                     " (database: cstack-server.db, sqlite, the default path)\n");
    char db[700];
    snprintf(db, sizeof db, "%s/cstack-server.db", cwd);
    cr_expect_eq(access(db, F_OK), 0, "the default database is in the working directory");
    free(cwd);
}

/* ---- the log ------------------------------------------------------------------------ */

typedef struct hammer {
    int port;
    int requests;
} hammer;

/* GET /healthz `requests` times, each on a connection of its own, answered
 * or refused (the server's connection limit is low on purpose). */
static void *hammer_main(void *arg)
{
    const hammer *h = arg;
    for (int i = 0; i < h->requests; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            char buf[512];
            if (write(fd, req, sizeof req - 1) > 0)
                while (read(fd, buf, sizeof buf) > 0)
                    ;
        }
        if (fd >= 0)
            close(fd);
    }
    return NULL;
}

Test(server, log_lines_of_concurrent_requests_and_httpd_messages_never_interleave)
{
    if (!dir)
        dir = t_tmpdir();
    char path[600];
    char *db = t_store_db(dir, "log.db");
    snprintf(path, sizeof path, "%s/interleave.log", dir);
    FILE *log = fopen(path, "w+");
    cr_assert_not_null(log);
    /* Unbuffered, like stderr under `cstack serve`. */
    setvbuf(log, NULL, _IONBF, 0);
    cstack_schema *s = t_schema(SCHEMA);
    /* Two connections at most: the rest are refused, each refusal logged by
     * libmicrohttpd's thread while request lines come from the others. */
    cstack_server_config cfg = {
        .schema = s, .db_path = db, .jwt_secret = SECRET, .log = log, .max_connections = 2};
    cstack_server *server = NULL;
    char err[1024] = "";
    int rc = cstack_server_start(&cfg, &server, err, sizeof err);
    cstack_schema_free(s);
    free(db);
    cr_assert_eq(rc, 0, "%s", err);
    enum { THREADS = 8 };
    pthread_t th[THREADS];
    hammer h = {.port = cstack_server_port(server), .requests = 150};
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer_main, &h);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    cstack_server_stop(server);
    rewind(log);
    regex_t request, httpd;
    cr_assert_eq(regcomp(&request,
                         "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z GET /healthz [0-9]+ [0-9]+ "
                         "[0-9.]+ms user=-$",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    cr_assert_eq(regcomp(&httpd, "^httpd: [A-Z][^:]*[a-z.]$", REG_EXTENDED | REG_NOSUB), 0);
    char line[4096];
    int requests = 0, messages = 0;
    while (fgets(line, sizeof line, log)) {
        line[strcspn(line, "\n")] = 0;
        if (regexec(&request, line, 0, NULL, 0) == 0)
            requests++;
        else if (regexec(&httpd, line, 0, NULL, 0) == 0)
            messages++;
        else
            cr_assert_fail("a log line that is not whole: '%s'", line);
    }
    regfree(&request);
    regfree(&httpd);
    fclose(log);
    cr_expect_gt(requests, 0);
    cr_log_info("%d request lines, %d httpd messages", requests, messages);
}
