/* test_client_errors.c -- the sync client against a real server when
 * things go wrong.  A write the server refuses is undone on its device (the
 * device then equals a fresh device of its user) and stays readable with its
 * reason and values; a schema mismatch is no refusal (the batch stays
 * queued, the status names both schemas, the session backs off, and the
 * batch goes through once the schemas fit); and every failure is labelled
 * with its real cause. */
#include <criterion/criterion.h>
#include <unistd.h>

#include "server_support.h"

/* Docs everyone signed in may read; only their owner may write them. */
static const char *SCHEMA = "auth User { id String  role String }\n"
                            "model Doc {\n"
                            "  id    String  @id\n"
                            "  owner String\n"
                            "  title String\n"
                            "  @@allow('read', auth() != null)\n"
                            "  @@allow('create,update,delete', owner == auth().id)\n"
                            "}\n";

/* The same app one release later: another schema hash. */
static const char *SCHEMA_V2 = "auth User { id String  role String }\n"
                               "model Doc {\n"
                               "  id    String  @id\n"
                               "  owner String\n"
                               "  title String\n"
                               "  body  String?\n"
                               "  @@allow('read', auth() != null)\n"
                               "  @@allow('create,update,delete', owner == auth().id)\n"
                               "}\n";

TestSuite(client_errors, .fini = fini);

static void doc(dev *d, const char *id, const char *owner, const char *title)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"owner", cstack_v_text(owner)},
                              {"title", cstack_v_text(title)}};
    cstack_data data = {f, 3};
    cr_assert_eq(cstack_create(d->db, "Doc", &data, NULL), 0, "%s", cstack_errmsg(d->db));
}

static void retitle(dev *d, const char *id, const char *title)
{
    cstack_field_value w[] = {{"id", cstack_v_text(id)}};
    cstack_field_value f[] = {{"title", cstack_v_text(title)}};
    cstack_data where = {w, 1}, data = {f, 1};
    cr_assert_eq(cstack_update(d->db, "Doc", &where, &data, NULL), 0, "%s", cstack_errmsg(d->db));
}

static void remove_doc(dev *d, const char *id)
{
    cstack_field_value w[] = {{"id", cstack_v_text(id)}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(d->db, "Doc", &where, NULL), 0, "%s", cstack_errmsg(d->db));
}

/* The title of doc `id` (malloc'd), NULL when the device has no such doc. */
static char *title_of(dev *d, const char *id)
{
    return t_text_of(d->db, "Doc", id, "title");
}

static void options(cstack_sync_options *o, char *url, size_t cap, const char *token)
{
    snprintf(url, cap, "http://127.0.0.1:%d", cstack_server_port(srv));
    memset(o, 0, sizeof *o);
    o->url = url;
    o->token = token;
}

static int sync_once(dev *d, cstack_sync_status *st)
{
    char url[64];
    cstack_sync_options o;
    options(&o, url, sizeof url, d->token);
    memset(st, 0, sizeof *st);
    return cstack_sync_run_once(d->db, &o, NULL, NULL, st);
}

static void synced(dev *d, const char *who, cstack_sync_status *st)
{
    int rc = sync_once(d, st);
    cr_assert_eq(rc, 0, "%s: sync failed (%s): %s", who, cstack_errname(rc), st->last_error);
}

static int64_t pending(dev *d)
{
    int64_t n = -1;
    cr_assert_eq(cstack_upload_pending(d->db, &n), 0);
    return n;
}

/* ---- refused writes ----------------------------------------------------------- */

Test(client_errors, a_refused_write_is_undone_and_stays_readable_with_its_reason_and_values)
{
    start_opts(SCHEMA, "refused.db", 0);
    cstack_sync_status st;
    dev bob = device(SCHEMA, "bob");
    doc(&bob, "d1", "bob", "bob's title");
    synced(&bob, "bob", &st);
    dev alice = device(SCHEMA, "alice");
    synced(&alice, "alice", &st);

    /* Three refused writes: an update of bob's doc, a doc created in bob's
     * name, and a later (still pending) write to that doc; then one write
     * the server takes. */
    retitle(&alice, "d1", "alice's edit");
    doc(&alice, "d2", "bob", "in bob's name");
    retitle(&alice, "d2", "written again");
    doc(&alice, "a1", "alice", "alice's own");
    synced(&alice, "alice", &st);
    cr_expect_eq(st.rejected, 2, "refused batches: %" PRId64, st.rejected);
    cr_expect_eq(st.undone, 2, "undone rows: %" PRId64, st.undone);
    cr_expect_eq(pending(&alice), 0, "nothing is left to push");

    char *t = title_of(&alice, "d1");
    cr_expect_str_eq(t ? t : "(none)", "bob's title", "the refused update is undone");
    free(t);
    t = title_of(&alice, "d2");
    cr_expect_null(t, "the refused create is undone: %s", t ? t : "");
    free(t);
    t = title_of(&alice, "a1");
    cr_expect_str_eq(t ? t : "(none)", "alice's own", "the accepted write stays");
    free(t);

    dev fresh = device(SCHEMA, "alice");
    synced(&fresh, "a fresh device of alice", &st);
    cr_expect_eq(checksum(&alice), checksum(&fresh), "alice's device equals a fresh one");
    cr_expect_eq(count(&alice, "Doc"), 2);

    char *json = NULL;
    cr_assert_eq(cstack_sync_refusals(alice.db, &json), 0, "%s", cstack_errmsg(alice.db));
    cr_expect(strstr(json, "\"model\":\"Doc\",\"op\":\"update\",\"key\":{\"id\":\"d1\"},"
                           "\"values\":{\"title\":\"alice's edit\"}"),
              "the refused update and its values: %s", json);
    cr_expect(strstr(json, "\"op\":\"create\",\"key\":{\"id\":\"d2\"}"), "the refused create: %s",
              json);
    cr_expect(strstr(json, "\"owner\":\"bob\""), "the refused create's values: %s", json);
    cr_expect(strstr(json, "\"status\":403"), "%s", json);
    cr_expect(contains_ci(json, "not allowed"), "the server's reason: %s", json);
    cstack_free(json);

    /* A refused delete brings the row back; the next sync is clean. */
    remove_doc(&alice, "d1");
    synced(&alice, "alice", &st);
    cr_expect_eq(st.rejected, 1);
    t = title_of(&alice, "d1");
    cr_expect_str_eq(t ? t : "(none)", "bob's title", "the refused delete is undone");
    free(t);
    synced(&alice, "alice", &st);
    cr_expect_eq(st.rejected, 0);
    cr_expect_eq(st.checksum_ok, 1, "alice matches the server: %s", st.last_error);
    cr_expect_eq(checksum(&alice), checksum(&fresh));
    cr_assert_eq(cstack_sync_refusals(alice.db, &json), 0);
    cr_expect(strstr(json, "\"op\":\"delete\",\"key\":{\"id\":\"d1\"},\"values\":null"),
              "the refused delete: %s", json);
    cstack_free(json);
    dev_free(&alice);
    dev_free(&bob);
    dev_free(&fresh);
}

/* Waits up to 10 s for `done` to hold of the session's status. */
static bool await_status(cstack_sync_session *s, bool (*done)(const cstack_sync_status *),
                         cstack_sync_status *st)
{
    for (int i = 0; i < 200; i++) {
        cr_assert_eq(cstack_sync_session_status(s, st), 0);
        if (done(st))
            return true;
        usleep(50 * 1000);
    }
    return false;
}

static bool is_connected(const cstack_sync_status *st)
{
    return st->state == CSTACK_SYNC_CONNECTED;
}

static bool has_undone(const cstack_sync_status *st)
{
    return st->undone > 0 && st->state == CSTACK_SYNC_CONNECTED;
}

Test(client_errors, a_streaming_session_undoes_a_refused_write_without_reconnecting)
{
    start_opts(SCHEMA, "refused_stream.db", 0);
    cstack_sync_status st;
    dev bob = device(SCHEMA, "bob");
    doc(&bob, "d1", "bob", "bob's title");
    synced(&bob, "bob", &st);
    dev alice = device(SCHEMA, "alice");
    char url[64];
    cstack_sync_options o;
    options(&o, url, sizeof url, alice.token);
    cstack_sync_session *s = NULL;
    cr_assert_eq(cstack_sync_start(alice.db, &o, NULL, NULL, &s), 0);
    cr_assert(await_status(s, is_connected, &st), "alice never connected: %s", st.last_error);
    int64_t attempts = st.attempts;

    retitle(&alice, "d1", "alice's edit");
    cstack_sync_nudge(s);
    bool undone = await_status(s, has_undone, &st);
    cstack_sync_stop(s);
    cr_assert(undone, "the refused write was not undone: %s", st.last_error);
    cr_expect_eq(st.attempts, attempts, "the session did not reconnect");
    char *t = title_of(&alice, "d1");
    cr_expect_str_eq(t ? t : "(none)", "bob's title");
    free(t);
    cr_expect_eq(checksum(&alice), checksum(&bob), "alice equals bob again");
    dev_free(&alice);
    dev_free(&bob);
}

Test(client_errors, a_device_that_never_synced_has_no_refusals)
{
    dev d = {.db = t_open_mem(SCHEMA)};
    char *json = NULL;
    cr_assert_eq(cstack_sync_refusals(d.db, &json), 0, "%s", cstack_errmsg(d.db));
    cr_expect_str_eq(json, "[]");
    cstack_free(json);
    cr_expect_eq(cstack_sync_refusals(d.db, NULL), CSTACK_EMISUSE);
    cstack_close(d.db);
}

/* ---- schema mismatch --------------------------------------------------------------- */

static void on_status_count(const cstack_sync_status *st, void *ctx)
{
    (void)st;
    atomic_fetch_add((atomic_int *)ctx, 1);
}

Test(client_errors,
     a_schema_mismatch_keeps_the_batch_queued_backs_off_and_resumes_when_the_schemas_fit)
{
    /* The server still runs the old release; the device the new one. */
    start_opts(SCHEMA, "mismatch.db", 0);
    cstack_schema *old_s = t_schema(SCHEMA);
    char old_hash[65];
    snprintf(old_hash, sizeof old_hash, "%s", cstack_schema_hash(old_s));
    cstack_schema_free(old_s);
    dev alice = device(SCHEMA_V2, "alice");
    doc(&alice, "a1", "alice", "written on the new release");
    cstack_sync_status st;
    int rc = sync_once(&alice, &st);
    cr_expect_eq(rc, CSTACK_EMISMATCH, "got %s", cstack_errname(rc));
    cr_expect_eq(st.schema_mismatch, 1);
    cr_expect_str_eq(st.schema_server, old_hash);
    cr_expect_str_eq(st.schema_local, cstack_schema_hash(cstack_schema_of(alice.db)));
    cr_expect(contains_ci(st.last_error, "upgrade the app"), "%s", st.last_error);
    cr_expect(contains_ci(cstack_errmsg(alice.db), "upgrade the app"), "%s",
              cstack_errmsg(alice.db));
    cr_expect_eq(st.rejected, 0, "a mismatch is no refusal");
    cr_expect_eq(pending(&alice), 1, "the batch stays queued");
    char *json = NULL;
    cr_assert_eq(cstack_sync_refusals(alice.db, &json), 0);
    cr_expect_str_eq(json, "[]", "nothing was undone");
    cstack_free(json);
    cr_expect_eq(count(&alice, "Doc"), 1, "the write stays applied");

    /* A session backs off: a handful of attempts in a second, not a loop. */
    char url[64];
    cstack_sync_options o;
    options(&o, url, sizeof url, alice.token);
    o.retry_min_ms = 50;
    o.retry_max_ms = 400;
    atomic_int reports = 0;
    cstack_sync_session *s = NULL;
    cr_assert_eq(cstack_sync_start(alice.db, &o, on_status_count, &reports, &s), 0);
    usleep(1200 * 1000);
    cstack_sync_status now;
    cr_assert_eq(cstack_sync_session_status(s, &now), 0);
    cstack_sync_stop(s);
    cr_expect_eq(now.schema_mismatch, 1);
    cr_expect_geq(now.attempts, 2, "the session retried");
    cr_expect_leq(now.attempts, 12, "the session backs off: %" PRId64 " attempts in 1.2 s",
                  now.attempts);
    cr_expect_eq(pending(&alice), 1, "the batch is still queued");

    /* The server is upgraded: the batch goes through. */
    stop();
    start_opts(SCHEMA_V2, "mismatch_v2.db", 0);
    rc = sync_once(&alice, &st);
    cr_expect_eq(rc, 0, "after the upgrade: %s (%s)", cstack_errname(rc), st.last_error);
    cr_expect_eq(st.schema_mismatch, 0);
    cr_expect_eq(st.pushed, 1);
    cr_expect_eq(pending(&alice), 0);
    dev_free(&alice);
}

/* ---- labels ---------------------------------------------------------------------- */

Test(client_errors, every_failure_is_labelled_with_its_cause)
{
    start_opts(SCHEMA, "labels.db", 0);
    dev alice = device(SCHEMA, "alice");
    cstack_sync_status st;

    /* A token signed with another secret: 401. */
    char *forged = NULL, err[256];
    cr_assert_eq(cstack_server_mint_token("another-secret", "alice", NULL, 0, time(NULL), 3600,
                                          &forged, err, sizeof err),
                 0);
    char url[64];
    cstack_sync_options o;
    options(&o, url, sizeof url, forged);
    int rc = cstack_sync_run_once(alice.db, &o, NULL, NULL, &st);
    cr_expect_eq(rc, CSTACK_EUNAUTHORIZED, "401: got %s", cstack_errname(rc));
    cr_expect_str_eq(cstack_errname(rc), "unauthorized");
    cr_expect_eq(st.http_status, 401);
    cstack_free(forged);

    /* A response larger than the client takes: too_big. */
    doc(&alice, "a1", "alice", "a title long enough to exceed a tiny response bound");
    synced(&alice, "alice", &st);
    dev small = device(SCHEMA, "alice");
    options(&o, url, sizeof url, small.token);
    o.max_response = 16;
    rc = cstack_sync_run_once(small.db, &o, NULL, NULL, &st);
    cr_expect_eq(rc, CSTACK_ETOOBIG, "too big: got %s", cstack_errname(rc));

    /* Nobody listening: io. */
    int port = cstack_server_port(srv);
    stop();
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    o.url = url;
    o.token = alice.token;
    o.max_response = 0;
    o.connect_timeout_ms = 2000;
    rc = cstack_sync_run_once(alice.db, &o, NULL, NULL, &st);
    cr_expect_eq(rc, CSTACK_EIO, "unreachable: got %s", cstack_errname(rc));
    dev_free(&alice);
    dev_free(&small);
}
