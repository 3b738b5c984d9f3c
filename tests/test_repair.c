/* test_repair.c -- self-repair of the sync client against a real server.
 * When a checkpoint's checksum differs from the server's, the client finds
 * the models that differ (per-model checksums from the server), pulls them
 * again from the start (resend=) with the other models' changes, drops the rows the server does not have for its user,
 * and says so in its status; a state that still differs afterwards fails
 * the sync as `diverged` instead of ending in a warning. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <unistd.h>

#include "server_support.h"
#include "sync/sync_ext.h"

/* Private notes, and tags every signed-in user reads: two models, so that a
 * repair can be seen to pick the one that differs. */
static const char *SCHEMA = "auth User { id String  role String }\n"
                            "model Note {\n"
                            "  id      String  @id\n"
                            "  ownerId String\n"
                            "  title   String\n"
                            "  body    String?\n"
                            "  @@allow('all', ownerId == auth().id)\n"
                            "}\n"
                            "model Tag {\n"
                            "  id    String  @id\n"
                            "  label String\n"
                            "  @@allow('all', auth() != null)\n"
                            "}\n";

TestSuite(repair, .fini = fini);

/* A device on a file, so that another program can open it too. */
static dev file_device(const char *name, const char *sub, char *path, size_t cap)
{
    if (!dir)
        dir = t_tmpdir();
    snprintf(path, cap, "%s/%s", dir, name);
    dev d = device(SCHEMA, sub);
    cstack_close(d.db);
    cstack_schema *s = t_schema(SCHEMA);
    int rc = cstack_open(s, path, NULL, &d.db);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "open %s", path);
    cr_assert_eq(cstack_bootstrap(d.db, NULL), 0, "bootstrap: %s", cstack_errmsg(d.db));
    snprintf(d.site, sizeof d.site, "X-Cstack-Site: %s", cstack_sync_site_id(d.db));
    return d;
}

/* Runs SQL on the device's file through a connection of its own, as
 * another program would: nothing is captured. */
static void behind_the_back(const char *path, const char *sql)
{
    sqlite3 *conn = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &conn, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(conn, 5000);
    char *err = NULL;
    int rc = sqlite3_exec(conn, sql, NULL, NULL, &err);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, err ? err : "");
    sqlite3_close(conn);
}

static void tag(dev *d, const char *id, const char *label)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)}, {"label", cstack_v_text(label)}};
    cstack_data data = {f, 2};
    cr_assert_eq(cstack_create(d->db, "Tag", &data, NULL), 0, "%s", cstack_errmsg(d->db));
}

/* The title of note `id` (malloc'd), NULL when the device has no such note. */
static char *title_of(dev *d, const char *id)
{
    return t_text_of(d->db, "Note", id, "title");
}

static int sync_once(dev *d, cstack_sync_status *st)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cstack_server_port(srv));
    cstack_sync_options o = {.url = url, .token = d->token};
    memset(st, 0, sizeof *st);
    return cstack_sync_run_once(d->db, &o, NULL, NULL, st);
}

static void synced(dev *d, const char *who, cstack_sync_status *st)
{
    int rc = sync_once(d, st);
    cr_assert_eq(rc, 0, "%s: sync failed (%s): %s", who, cstack_errname(rc), st->last_error);
    cr_assert_eq(st->checksum_ok, 1, "%s: checksum %d: %s", who, st->checksum_ok, st->last_error);
}

/* Alice's device with three notes and two tags, all pushed. */
static dev alice_with_data(const char *name, char *path, size_t cap)
{
    cstack_sync_status st;
    dev a = file_device(name, "alice", path, cap);
    note(&a, "n1", "alice", "first");
    note(&a, "n2", "alice", "second");
    note(&a, "n3", "alice", "third");
    tag(&a, "t1", "red");
    tag(&a, "t2", "blue");
    synced(&a, "alice", &st);
    cr_assert_eq(st.repaired_models, 0, "nothing to repair yet");
    return a;
}

/* ---- the wire ---------------------------------------------------------------- */

Test(repair, a_pull_with_sums_gives_each_models_checksum_adding_up_to_the_total)
{
    start_opts(SCHEMA, "wire.db", 0);
    char path[512];
    dev a = alice_with_data("wire-alice.db", path, sizeof path);
    const char *h[] = {a.auth, a.schema, a.site, NULL};
    res r = http("GET", "/v1/pull?since=0&sums=1", h, NULL, 0);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body ? r.body : "");
    unsigned long long note_sum = 0, tag_sum = 0;
    cr_assert_eq(sscanf(r.model_sums, "Note=%16llx,Tag=%16llx", &note_sum, &tag_sum), 2,
                 "X-Cstack-Model-Sums: '%s'", r.model_sums);
    uint64_t total = strtoull(r.checksum, NULL, 16);
    cr_expect_eq((uint64_t)note_sum + (uint64_t)tag_sum, total, "the models add up to the total");
    cr_expect_eq(total, checksum(&a), "the device holds what the server says");
    res_free(&r);

    res plain = http("GET", "/v1/pull?since=0", h, NULL, 0);
    cr_expect_eq(plain.model_sums[0], '\0', "only asked for: '%s'", plain.model_sums);
    res_free(&plain);
    res bad = http("GET", "/v1/pull?since=0&sums=2", h, NULL, 0);
    cr_expect_eq(bad.status, 400, "sums must be 0 or 1: %ld", bad.status);
    res_free(&bad);
    dev_free(&a);
    stop();
}

/* ---- repairs ------------------------------------------------------------------- */

Test(repair, rows_deleted_and_changed_by_another_program_come_back_at_the_next_sync)
{
    start_opts(SCHEMA, "deleted.db", 0);
    char path[512];
    dev a = alice_with_data("deleted-alice.db", path, sizeof path);
    behind_the_back(path, "DELETE FROM Note WHERE id = 'n2';"
                          "UPDATE Note SET title = 'scribbled' WHERE id = 'n3'");
    cr_assert_eq(count(&a, "Note"), 2);

    cstack_sync_status st;
    synced(&a, "alice", &st);
    cr_expect_eq(st.repaired_models, 1, "one model repaired: %" PRId64, st.repaired_models);
    cr_expect_str_eq(st.repaired_names, "Note", "the model that differed");
    cr_expect_eq(st.repaired_rows, 3, "alice's three notes forgotten and re-pulled: %" PRId64,
                 st.repaired_rows);
    cr_expect_eq(st.diverged, 0);
    cr_expect_eq(count(&a, "Note"), 3, "the deleted note is back");
    cr_expect_eq(count(&a, "Tag"), 2, "the tags were left alone");
    char *t = title_of(&a, "n3");
    cr_expect_str_eq(t, "third", "the changed note has the server's title again");
    free(t);

    /* Repaired for good: the next sync finds nothing to repair. */
    synced(&a, "alice", &st);
    cr_expect_eq(st.repaired_models, 0);
    dev_free(&a);
    stop();
}

/* The size of the server's log so far. */
static long log_size(void)
{
    FILE *f = fopen(logpath, "r");
    cr_assert_not_null(f, "server log %s", logpath);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    return size;
}

/* The response bytes of the pulls in the server's log after offset `from`;
 * *n receives how many there were. */
static long long logged_pull_bytes(long from, int *n)
{
    FILE *f = fopen(logpath, "r");
    cr_assert_not_null(f, "server log %s", logpath);
    fseek(f, from, SEEK_SET);
    char line[2048], method[16], reqpath[1024];
    long long total = 0, bytes = 0;
    int status = 0;
    *n = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%*s %15s %1023s %d %lld", method, reqpath, &status, &bytes) == 4 &&
            strcmp(method, "GET") == 0 && strcmp(reqpath, "/v1/pull") == 0) {
            total += bytes;
            ++*n;
        }
    fclose(f);
    return total;
}

Test(repair, a_repair_pulls_again_only_the_model_that_differs_with_the_others_changes)
{
    start_opts(SCHEMA, "resend.db", 0);
    char path[512], label[256];
    dev a = alice_with_data("resend-alice.db", path, sizeof path);
    memset(label, 'x', sizeof label - 1);
    label[sizeof label - 1] = '\0';
    for (int i = 0; i < 200; i++) {
        char id[16];
        snprintf(id, sizeof id, "big%d", i);
        tag(&a, id, label);
    }
    cstack_sync_status st;
    synced(&a, "alice", &st);
    /* A tag from another device after alice's last sync: the repair's pull
     * brings it too (the cursor of the other models is kept, not skipped). */
    dev b = device(SCHEMA, "bob");
    tag(&b, "from-bob", "green");
    push_all(&b);
    behind_the_back(path, "DELETE FROM Note WHERE id = 'n2'");
    long before = log_size();
    synced(&a, "alice", &st);
    cr_expect_eq(st.repaired_models, 1, "one model repaired: %" PRId64, st.repaired_models);
    cr_expect_str_eq(st.repaired_names, "Note");
    cr_expect_eq(count(&a, "Note"), 3, "the deleted note is back");
    cr_expect_eq(count(&a, "Tag"), 203, "the tags, bob's new one included");
    int n = 0;
    long long pulled = logged_pull_bytes(before, &n);
    const char *h[] = {a.auth, a.schema, a.site, NULL};
    res all = http("GET", "/v1/pull?since=0&echoes=1", h, NULL, 0);
    cr_assert_eq(all.status, 200);
    fprintf(stderr, "a sync repairing one model of two: %d pulls, %lld bytes; "
                    "everything from cursor 0: %zu bytes\n",
            n, pulled, all.len);
    cr_expect_lt(pulled * 10, (long long)all.len, "the tags were not downloaded again");
    res_free(&all);
    dev_free(&b);
    dev_free(&a);
    stop();
}

Test(repair, a_pull_refuses_a_resend_list_naming_no_synced_model)
{
    start_opts(SCHEMA, "resend-wire.db", 0);
    dev a = device(SCHEMA, "alice");
    const char *h[] = {a.auth, a.schema, a.site, NULL};
    static const char *const bad[] = {"/v1/pull?since=0&resend=Nope", "/v1/pull?since=0&resend=",
                                      "/v1/pull?since=0&resend=Note,,Tag",
                                      "/v1/pull?since=0&resend=note"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        res r = http("GET", bad[i], h, NULL, 0);
        assert_err(&r, 400, "bad_request", "not a synced model", bad[i]);
        res_free(&r);
    }
    res ok = http("GET", "/v1/pull?since=0&resend=Note,Tag", h, NULL, 0);
    cr_expect_eq(ok.status, 200, "%ld %s", ok.status, ok.body ? ok.body : "");
    res_free(&ok);
    dev_free(&a);
    stop();
}

Test(repair, a_row_the_server_does_not_have_for_this_user_is_dropped)
{
    start_opts(SCHEMA, "extra.db", 0);
    char path[512];
    dev a = alice_with_data("extra-alice.db", path, sizeof path);
    /* Written by another program: no clock row, never pushed. */
    behind_the_back(path, "INSERT INTO Tag(id, label) VALUES ('t9', 'smuggled')");
    cstack_sync_status st;
    synced(&a, "alice", &st);
    cr_expect_eq(st.repaired_models, 1);
    cr_expect_str_eq(st.repaired_names, "Tag");
    cr_expect_eq(count(&a, "Tag"), 2, "the row the server lacks is gone");
    cr_expect_eq(count(&a, "Note"), 3);
    dev_free(&a);
    stop();
}

Test(repair, a_device_whose_site_the_server_forgot_converges_at_its_next_sync)
{
    /* Two sites per user: a third device of alice's evicts the least
     * recently seen, with the server's records of what it holds. */
    start_max_sites = 2;
    start_opts(SCHEMA, "evicted.db", 0);
    start_max_sites = 0;
    char path[512], path2[512], path3[512];
    dev a = alice_with_data("evicted-a.db", path, sizeof path);
    cstack_sync_status st;
    dev b = file_device("evicted-b.db", "alice", path2, sizeof path2);
    synced(&b, "alice's second device", &st);
    cr_assert_eq(cstack_delete(b.db, "Note", DATA(FV("id", T("n1"))), NULL), 0, "%s",
                 cstack_errmsg(b.db));
    cr_assert_eq(cstack_update(b.db, "Tag", DATA(FV("id", T("t1"))), DATA(FV("label", T("green"))),
                               NULL),
                 0, "%s", cstack_errmsg(b.db));
    synced(&b, "alice's second device", &st);
    sleep(1); /* a's last_seen is the oldest */
    dev c = file_device("evicted-c.db", "alice", path3, sizeof path3);
    synced(&c, "alice's third device", &st);
    /* The server no longer knows what a holds: it does not send a the
     * deletion of n1 (a drop reveals a key only to a device recorded as
     * holding it), so a's checksum differs and a repairs itself. */
    synced(&a, "alice's forgotten device", &st);
    cr_expect_eq(st.repaired_models, 1, "repaired %lld models (%s)", (long long)st.repaired_models,
                 st.repaired_names);
    cr_expect_str_eq(st.repaired_names, "Note");
    cr_expect_eq(count(&a, "Note"), 2, "the deleted note is still on the forgotten device");
    char *label = t_text_of(a.db, "Tag", "t1", "label");
    cr_expect_str_eq(label, "green");
    free(label);
    uint64_t mine = 0, fresh = 0;
    cr_assert_eq(cstack_sync_checksum(a.db, &mine), 0);
    cr_assert_eq(cstack_sync_checksum(c.db, &fresh), 0);
    cr_expect_eq(mine, fresh, "the forgotten device differs from a fresh one");
    dev_free(&a);
    dev_free(&b);
    dev_free(&c);
    stop();
}

Test(repair, a_session_sees_a_change_made_behind_its_back_and_repairs_it_while_streaming)
{
    start_opts(SCHEMA, "session.db", 0);
    char path[512];
    dev a = alice_with_data("session-alice.db", path, sizeof path);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cstack_server_port(srv));
    cstack_sync_options o = {.url = url, .token = a.token, .poll_ms = 50};
    cstack_sync_session *s = NULL;
    cr_assert_eq(cstack_sync_start(a.db, &o, NULL, NULL, &s), 0);
    cstack_sync_status st;
    /* Connected and matching first (checkpoints come every 300 ms). */
    for (int i = 0; i < 100; i++) {
        cstack_sync_session_status(s, &st);
        if (st.state == CSTACK_SYNC_CONNECTED && st.checksum_ok == 1)
            break;
        usleep(50 * 1000);
    }
    cr_assert_eq(st.checksum_ok, 1, "the session caught up: %s", st.last_error);
    behind_the_back(path, "DELETE FROM Note");
    for (int i = 0; i < 100; i++) {
        cstack_sync_session_status(s, &st);
        if (st.repaired_models > 0 && st.checksum_ok == 1)
            break;
        usleep(50 * 1000);
    }
    cstack_sync_stop(s);
    cr_expect_eq(st.repaired_models, 1, "repaired: %" PRId64 " (%s)", st.repaired_models,
                 st.last_error);
    cr_expect_eq(st.checksum_ok, 1);
    cr_expect_eq(count(&a, "Note"), 3, "the notes are back");
    dev_free(&a);
    stop();
}

Test(repair, a_state_that_still_differs_after_a_repair_fails_the_sync_as_diverged)
{
    start_opts(SCHEMA, "diverged.db", 0);
    char path[512];
    dev a = alice_with_data("diverged-alice.db", path, sizeof path);
    /* Another program installs a trigger that rewrites every note written:
     * the repair's own merge is rewritten too, so nothing can match. */
    behind_the_back(path, "CREATE TRIGGER scribble AFTER INSERT ON Note BEGIN "
                          "UPDATE Note SET title = 'scribbled' WHERE id = new.id; END;"
                          "DELETE FROM Note WHERE id = 'n1'");
    cstack_sync_status st;
    int rc = sync_once(&a, &st);
    cr_expect_eq(rc, CSTACK_EDIVERGED, "fails as diverged, not with a warning: %s (%s)",
                 cstack_errname(rc), st.last_error);
    cr_expect_str_eq(cstack_errname(rc), "diverged");
    cr_expect_eq(st.diverged, 1, "the status says so");
    cr_expect_eq(st.checksum_ok, 0);
    cr_expect_eq(st.repaired_models, 1, "a repair was tried first");
    cr_expect(strstr(st.last_error, "diverged") != NULL, "labelled: %s", st.last_error);
    dev_free(&a);
    stop();
}

/* ---- cstack sync ------------------------------------------------------------------ */

/* Runs `cstack sync --once` on the file; returns its exit status, *out its
 * output (stdout and stderr). */
static int cli_sync(dev *d, const char *path, char **out)
{
    char schema_path[600], cmd[8192];
    snprintf(schema_path, sizeof schema_path, "%s/repair.cstack", dir);
    FILE *f = fopen(schema_path, "w");
    cr_assert_not_null(f);
    fputs(SCHEMA, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "CSTACK_TOKEN='%s' '%s' sync --schema '%s' --db '%s' "
             "--server http://127.0.0.1:%d --once 2>&1",
             d->token, CSTACK_CLI, schema_path, path, cstack_server_port(srv));
    return t_run(cmd, out);
}

static void sqlite3_cli(const char *path, const char *sql)
{
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' \"%s\" 2>&1", path, sql);
    int rc = t_run(cmd, &out);
    cr_assert_eq(rc, 0, "sqlite3: %s", out ? out : "");
    free(out);
}

Test(repair, cstack_sync_repairs_a_delete_made_with_the_sqlite3_cli_and_exits_non_zero_when_diverged)
{
    start_opts(SCHEMA, "cli.db", 0);
    char path[512];
    dev a = alice_with_data("cli-alice.db", path, sizeof path);
    cstack_close(a.db); /* the CLI opens the file itself */
    a.db = NULL;

    sqlite3_cli(path, "DELETE FROM Note");
    char *out = NULL;
    int rc = cli_sync(&a, path, &out);
    cr_expect_eq(rc, 0, "repaired, not failed:\n%s", out);
    cr_expect(strstr(out, "repaired: pulled Note again (3 local rows") != NULL, "%s", out);
    cr_expect(strstr(out, "(after a self-repair)") != NULL, "%s", out);
    free(out);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'SELECT count(*) FROM Note'", path);
    cr_assert_eq(t_run(cmd, &out), 0);
    cr_expect_eq(atoi(out), 3, "the notes are back in the file: %s", out);
    free(out);

    sqlite3_cli(path, "CREATE TRIGGER scribble AFTER INSERT ON Note BEGIN UPDATE Note SET "
                      "title = 'scribbled' WHERE id = new.id; END; DELETE FROM Note WHERE id = 'n1'");
    rc = cli_sync(&a, path, &out);
    cr_expect_eq(rc, 1, "a state that cannot be repaired fails:\n%s", out);
    cr_expect(strstr(out, "failed (diverged)") != NULL, "labelled diverged:\n%s", out);
    cr_expect(strstr(out, "warning") == NULL, "no mere warning:\n%s", out);
    free(out);
    dev_free(&a);
    stop();
}

/* ---- write rules through a relation, in a batch --------------------------------- */

/* Teams belong to their owner; anyone joins; the owner may remove members. */
static const char *TEAMS = "auth User { id String }\n"
                           "model Team {\n"
                           "  id      String   @id\n"
                           "  ownerId String\n"
                           "  members Member[]\n"
                           "  @@allow('read', auth() != null)\n"
                           "  @@allow('create,update,delete', ownerId == auth().id)\n"
                           "}\n"
                           "model Member {\n"
                           "  id     String @id\n"
                           "  teamId String\n"
                           "  team   Team   @relation(fields: [teamId], references: [id], "
                           "onDelete: Cascade)\n"
                           "  userId String\n"
                           "  @@allow('read', auth() != null)\n"
                           "  @@allow('create,update', userId == auth().id)\n"
                           "  @@allow('delete', userId == auth().id || team.ownerId == auth().id)\n"
                           "}\n";

static void put_row(dev *d, const char *model, const char *f1, const char *v1, const char *f2,
                    const char *v2, const char *f3, const char *v3)
{
    cstack_field_value f[] = {
        {f1, cstack_v_text(v1)}, {f2, cstack_v_text(v2)}, {f3, cstack_v_text(v3)}};
    cstack_data data = {f, f3 ? 3 : 2};
    cr_assert_eq(cstack_create(d->db, model, &data, NULL), 0, "%s", cstack_errmsg(d->db));
}

Test(repair, a_cascaded_delete_allowed_through_its_parent_is_checked_on_the_state_before_the_batch)
{
    start_opts(TEAMS, "cascade.db", 0);
    cstack_sync_status st;
    dev bob = device(TEAMS, "bob"), alice = device(TEAMS, "alice");
    put_row(&bob, "Team", "id", "T", "ownerId", "bob", NULL, NULL);
    synced(&bob, "bob", &st);
    synced(&alice, "alice", &st);
    put_row(&alice, "Member", "id", "M", "teamId", "T", "userId", "alice");
    synced(&alice, "alice", &st);
    synced(&bob, "bob", &st);
    cr_assert_eq(count(&bob, "Member"), 1);

    /* Bob deletes his team: the cascade deletes alice's membership in the
     * same batch.  Bob may delete it as the team's owner, which the rule
     * reads through the team the batch deletes first. */
    cstack_field_value w[] = {{"id", cstack_v_text("T")}};
    cstack_data where = {w, 1};
    cr_assert_eq(cstack_delete(bob.db, "Team", &where, NULL), 0, "%s", cstack_errmsg(bob.db));
    synced(&bob, "bob", &st);
    cr_expect_eq(st.rejected, 0, "the batch is accepted: %s", st.last_error);
    synced(&alice, "alice", &st);
    cr_expect_eq(count(&alice, "Team"), 0);
    cr_expect_eq(count(&alice, "Member"), 0, "alice's membership went with the team");
    cr_expect_eq(count(&bob, "Member"), 0);
    dev_free(&bob);
    dev_free(&alice);
    stop();
}

/* ---- forgetting models ------------------------------------------------------------ */

Test(repair, forgetting_a_model_keeps_rows_written_after_the_queue_was_seen_empty)
{
    cstack *db = t_open_mem(SCHEMA);
    dev d = {.db = db};
    note(&d, "old", "alice", "pushed long ago");
    tag(&d, "t1", "red");
    int64_t version = 0, pending = 0;
    cstack_upload_tx *tx = NULL;
    while (cstack_upload_next(db, &tx) == 0 && tx) {
        cr_assert_eq(cstack_upload_complete(db, cstack_upload_tx_version(tx)), 0);
        cstack_upload_tx_free(tx);
    }
    cr_assert_eq(cstack_sync_version(db, &version), 0);
    note(&d, "new", "alice", "written during the repair");
    bool models[2] = {true, false}; /* Note, not Tag */
    int64_t rows = 0;
    cr_assert_eq(cs_changes_forget_models(db, models, version, NULL, NULL, &rows), 0, "%s",
                 cstack_errmsg(db));
    cr_expect_eq(rows, 1, "only the old note is forgotten: %" PRId64, rows);
    cr_expect_eq(count(&d, "Note"), 1);
    char *t = title_of(&d, "new");
    cr_expect_str_eq(t, "written during the repair", "the pending note stays");
    free(t);
    cr_expect_eq(count(&d, "Tag"), 1, "another model is left alone");
    cr_assert_eq(cstack_upload_pending(db, &pending), 0);
    cr_expect_eq(pending, 1, "and stays queued");
    cstack_close(db);
}
