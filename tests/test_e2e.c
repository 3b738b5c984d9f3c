/*
 * test_e2e.c -- devices syncing through a real server on loopback.
 *
 * Every test starts its own server (in-process through server/server.h, or
 * the built `cstack serve` as a child process when the test kills it) on
 * 127.0.0.1 with a port the kernel picks, and stops it before it ends.
 * Devices are file databases driven by the library's sync client
 * (cstack_sync_start / cstack_sync_run_once).  What the tests prove:
 *
 *   - several devices writing at once converge through the server;
 *   - a server killed with SIGKILL mid-stream and restarted loses nothing
 *     it acknowledged, and devices reconnect by themselves and converge;
 *   - a device offline for many writes pushes them all when it comes back;
 *   - a batch the server refuses (403) is reported and set aside, and later
 *     batches still go through;
 *   - a row whose owner changes disappears from the old owner's replica and
 *     comes back when it changes back (drops);
 *   - the client's event-stream parser, fed in every possible split.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "cstack_server.h"
#include "server/auth.h"
#include "support.h"
#include "sync_support.h"

#define SECRET "e2e-test-secret"

/* Alice and Bob each see their own docs; any signed-in user may update a
 * doc, which is how a doc changes hands (the drop test). */
static const char SCHEMA[] = "datasource db {\n"
                             "  provider = \"sqlite\"\n"
                             "  url      = env(\"DATABASE_URL\")\n"
                             "}\n"
                             "auth User {\n"
                             "  id String\n"
                             "}\n"
                             "model Doc {\n"
                             "  id    String @id\n"
                             "  owner String\n"
                             "  title String\n"
                             "  body  String?\n"
                             "  n     Int    @default(0)\n"
                             "  @@allow('read', owner == auth().id)\n"
                             "  @@allow('create,delete', owner == auth().id)\n"
                             "  @@allow('update', auth() != null)\n"
                             "}\n";

/* ---- fixtures --------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *token_for(const char *sub)
{
    char *tok = NULL, err[256];
    int rc =
        cstack_server_mint_token(SECRET, sub, NULL, 0, time(NULL), 3600, &tok, err, sizeof err);
    cr_assert_eq(rc, 0, "mint: %s", err);
    return tok;
}

/* A server in this process on the database `name` of `dir` (t_store_db:
 * SQLite or PostgreSQL). */
static cstack_server *start_server(const char *dir, const char *name, int port)
{
    cstack_schema *s = t_schema(SCHEMA);
    char *db = t_store_db(dir, name), pages[1024];
    snprintf(pages, sizeof pages, "%s/%s.pages", dir, name);
    cstack_server_config cfg = {.schema = s,
                                .db_path = db,
                                .pages_path = pages,
                                .port = port,
                                .jwt_secret = SECRET,
                                .checkpoint_ms = 300,
                                .keepalive_ms = 1000,
                                .drain_ms = 2000};
    cstack_server *srv = NULL;
    char err[512] = "";
    int rc = cstack_server_start(&cfg, &srv, err, sizeof err);
    cstack_schema_free(s);
    free(db);
    cr_assert_eq(rc, 0, "server start: %s", err);
    return srv;
}

static void url_of(int port, char *buf, size_t cap)
{
    snprintf(buf, cap, "http://127.0.0.1:%d", port);
}

static cstack *open_device(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    cstack_schema *s = t_schema(SCHEMA);
    cstack *db = NULL;
    int rc = cstack_open(s, path, NULL, &db);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "open %s", path);
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "bootstrap: %s", cstack_errmsg(db));
    return db;
}

static void put_doc(cstack *db, const char *id, const char *owner, const char *title,
                    const char *body)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"owner", cstack_v_text(owner)},
                              {"title", cstack_v_text(title)},
                              {"body", cstack_v_text(body)}};
    cstack_data d = {f, 4};
    int rc = cstack_create(db, "Doc", &d, NULL);
    cr_assert_eq(rc, 0, "create %s: %s", id, cstack_errmsg(db));
}

static void set_field(cstack *db, const char *id, const char *field, cstack_value v)
{
    cstack_field_value w[] = {{"id", cstack_v_text(id)}};
    cstack_field_value f[] = {{field, v}};
    cstack_data where = {w, 1}, data = {f, 1};
    int rc = cstack_update(db, "Doc", &where, &data, NULL);
    cr_assert_eq(rc, 0, "update %s.%s: %s", id, field, cstack_errmsg(db));
}

static int has_doc(cstack *db, const char *id)
{
    cstack_field_value w[] = {{"id", cstack_v_text(id)}};
    cstack_data where = {w, 1};
    cstack_row *row = NULL;
    cr_assert_eq(cstack_find_unique(db, "Doc", &where, NULL, 0, &row), 0);
    cstack_row_free(row);
    return row != NULL;
}

static int64_t count_docs(cstack *db)
{
    int64_t n = -1;
    cr_assert_eq(cstack_count(db, "Doc", NULL, &n), 0);
    return n;
}

static void sync_once(cstack *db, const char *url, const char *token, cstack_sync_status *st)
{
    cstack_sync_options o = {.url = url, .token = token};
    cstack_sync_status local;
    int rc = cstack_sync_run_once(db, &o, NULL, NULL, st ? st : &local);
    cr_assert_eq(rc, 0, "sync: %s", cstack_errmsg(db));
}

/* True once no device has anything to push and all hold the same rows. */
static int converged(cstack **dbs, size_t n)
{
    char *first = NULL;
    int same = 1;
    for (size_t i = 0; i < n && same; i++) {
        int64_t pending = 1;
        if (cstack_upload_pending(dbs[i], &pending) != 0 || pending != 0) {
            same = 0;
            break;
        }
        char *d = ts_dump(dbs[i]);
        same = d != NULL && (!first || strcmp(first, d) == 0);
        if (!first)
            first = d;
        else
            free(d);
    }
    free(first);
    return same;
}

static int wait_converged(cstack **dbs, size_t n, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    while (now_ms() < until) {
        if (converged(dbs, n))
            return 1;
        sleep_ms(50);
    }
    return converged(dbs, n);
}

static void assert_same_dump(cstack *a, cstack *b, const char *what)
{
    char *da = ts_dump(a), *db = ts_dump(b);
    cr_assert(da && db);
    cr_assert_str_eq(da, db, "%s differ", what);
    free(da);
    free(db);
}

/* Status events seen by a session, counted under a lock (they arrive on the
 * session's thread). */
typedef struct seen {
    pthread_mutex_t mu;
    int rejected, pushed, connected, errors, checkpoints_ok, mismatches;
    int last_status;
    char last_error[256];
} seen;

static void on_status(const cstack_sync_status *st, void *ctx)
{
    seen *s = ctx;
    pthread_mutex_lock(&s->mu);
    switch (st->event) {
    case CSTACK_SYNC_EV_REJECTED:
        s->rejected++;
        s->last_status = st->http_status;
        snprintf(s->last_error, sizeof s->last_error, "%s", st->last_error);
        break;
    case CSTACK_SYNC_EV_PUSHED:
        s->pushed++;
        break;
    case CSTACK_SYNC_EV_STATE:
        s->connected += st->state == CSTACK_SYNC_CONNECTED;
        break;
    case CSTACK_SYNC_EV_ERROR:
        s->errors++;
        break;
    case CSTACK_SYNC_EV_CHECKPOINT:
        s->checkpoints_ok += st->checksum_ok == 1;
        s->mismatches += st->checksum_ok == 0;
        break;
    default:
        break;
    }
    pthread_mutex_unlock(&s->mu);
}

static cstack_sync_session *start_session(cstack *db, const char *url, const char *token, seen *s)
{
    cstack_sync_options o = {
        .url = url, .token = token, .retry_min_ms = 50, .retry_max_ms = 400, .poll_ms = 20};
    cstack_sync_session *ss = NULL;
    int rc = cstack_sync_start(db, &o, s ? on_status : NULL, s, &ss);
    cr_assert_eq(rc, 0, "start: %s", cstack_errmsg(db));
    return ss;
}

/* ---- several devices ------------------------------------------------------ */

#define NDEV 3

Test(e2e, several_devices_converge_through_the_server)
{
    char *dir = t_tmpdir(), url[64];
    cstack_server *srv = start_server(dir, "server.db", 0);
    url_of(cstack_server_port(srv), url, sizeof url);
    char *tok = token_for("alice");
    cstack *dev[NDEV];
    cstack_sync_session *ss[NDEV];
    for (int i = 0; i < NDEV; i++) {
        char name[16];
        snprintf(name, sizeof name, "dev%d", i);
        dev[i] = open_device(dir, name);
        ss[i] = start_session(dev[i], url, tok, NULL);
    }
    /* Every device creates its own docs and edits everyone's shared one, so
     * the same columns conflict and the merge must pick one winner. */
    put_doc(dev[0], "shared", "alice", "shared", "v0");
    cr_assert(wait_converged(dev, NDEV, 10000), "the shared doc reaches everyone");
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < NDEV; i++) {
            char id[32], body[32];
            snprintf(id, sizeof id, "d%d-%d", i, round);
            snprintf(body, sizeof body, "dev%d round %d", i, round);
            put_doc(dev[i], id, "alice", id, body);
            set_field(dev[i], "shared", "body", cstack_v_text(body));
            set_field(dev[i], "shared", "n", cstack_v_int(round * NDEV + i));
        }
        if (round % 5 == 0)
            sleep_ms(20);
    }
    cr_assert(wait_converged(dev, NDEV, 20000), "devices converge");
    cr_assert_eq(count_docs(dev[0]), 1 + 20 * NDEV);
    for (int i = 0; i < NDEV; i++)
        cstack_sync_stop(ss[i]);
    /* The server holds exactly what the devices hold. */
    cstack *fresh = open_device(dir, "fresh");
    cstack_sync_status st;
    sync_once(fresh, url, tok, &st);
    cr_assert_eq(st.checksum_ok, 1, "checkpoint after the initial sync");
    assert_same_dump(fresh, dev[0], "a fresh device and dev0");
    cstack_close(fresh);
    for (int i = 0; i < NDEV; i++)
        cstack_close(dev[i]);
    cstack_server_stop(srv);
    free(tok);
    free(dir);
}

/* ---- SIGKILL ---------------------------------------------------------------- */

/* Starts `cstack serve` on the database "served.db" of DIR (t_store_db)
 * with its output in DIR/serve.log and returns its pid; *port receives the
 * port it announced. */
static pid_t spawn_server(const char *dir, int *port)
{
    char schema[1024], log[1024];
    snprintf(schema, sizeof schema, "%s/e2e.cstack", dir);
    snprintf(log, sizeof log, "%s/serve.log", dir);
    FILE *f = fopen(schema, "w");
    cr_assert(f);
    fputs(SCHEMA, f);
    fclose(f);
    char *db = t_store_db(dir, "served.db");
    pid_t pid = t_serve(schema, db, SECRET, log, port);
    free(db);
    return pid;
}

Test(e2e, server_killed_mid_stream_and_restarted)
{
    char *dir = t_tmpdir(), url[64];
    int port = 0;
    pid_t pid = spawn_server(dir, &port);
    url_of(port, url, sizeof url);
    char *tok = token_for("alice");
    cstack *dev[2] = {open_device(dir, "a"), open_device(dir, "b")};
    cstack_sync_session *ss[2] = {start_session(dev[0], url, tok, NULL),
                                  start_session(dev[1], url, tok, NULL)};
    int made = 0;
    char id[32];
    /* Writes stream between the devices while the server is killed. */
    for (int i = 0; i < 60; i++, made++) {
        snprintf(id, sizeof id, "k%03d", i);
        put_doc(dev[i % 2], id, "alice", id, "before the kill");
        if (i == 40) {
            cr_assert_eq(kill(pid, SIGKILL), 0);
            waitpid(pid, NULL, 0);
        }
        sleep_ms(10);
    }
    /* Offline for a while: writes pile up in both upload queues. */
    for (int i = 60; i < 100; i++, made++) {
        snprintf(id, sizeof id, "k%03d", i);
        put_doc(dev[i % 2], id, "alice", id, "while the server is down");
    }
    set_field(dev[0], "k000", "body", cstack_v_text("edited offline on a"));
    sleep_ms(300);
    pid = spawn_server(dir, &port); /* the same port: the devices reconnect by themselves */
    cr_assert(wait_converged(dev, 2, 30000), "devices converge after the restart");
    cr_assert_eq(count_docs(dev[0]), made);
    for (int i = 0; i < 2; i++)
        cstack_sync_stop(ss[i]);
    cstack *fresh = open_device(dir, "fresh");
    cstack_sync_status st;
    sync_once(fresh, url, tok, &st);
    assert_same_dump(fresh, dev[1], "the restarted server and device b");
    cr_assert_eq(st.checksum_ok, 1);
    cstack_close(fresh);
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "serve drains on SIGTERM");
    cstack_close(dev[0]);
    cstack_close(dev[1]);
    free(tok);
    free(dir);
}

/* `cstack sync --once` on a database another process wrote and left: each of
 * that process's transactions is pushed as its own batch, so the one a
 * policy forbids is set aside alone (exit 1) and the rest reach the server. */
Test(e2e, cli_sync_once_pushes_what_another_process_wrote)
{
    char *dir = t_tmpdir(), cmd[4096], *out = NULL;
    int port = 0;
    pid_t pid = spawn_server(dir, &port);
    char *tok = token_for("alice");
    snprintf(cmd, sizeof cmd,
             "cd '%s' && printf '%%s\\n' "
             "'{\"model\":\"Doc\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"a\",\"owner\":\"alice\",\"title\":\"mine\"}}}' "
             "'{\"model\":\"Doc\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"f\",\"owner\":\"bob\",\"title\":\"forged\"}}}' "
             "'{\"model\":\"Doc\",\"kind\":\"create\",\"payload\":{\"data\":"
             "{\"id\":\"b\",\"owner\":\"alice\",\"title\":\"also mine\"}}}' "
             "| '%s' call --schema e2e.cstack --db cli.db >/dev/null 2>&1",
             dir, CSTACK_CLI);
    cr_assert_eq(t_run(cmd, &out), 0);
    free(out);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && CSTACK_TOKEN='%s' '%s' sync --schema e2e.cstack --db cli.db "
             "--server http://127.0.0.1:%d --once 2>&1",
             dir, tok, CSTACK_CLI, port);
    int rc = t_run(cmd, &out);
    cr_assert_eq(rc, 1, "one refused transaction fails --once:\n%s", out);
    cr_assert(strstr(out, "synced: 2 pushed, 1 refused") != NULL, "%s", out);
    cr_assert(strstr(out, "HTTP 403") != NULL, "%s", out);
    free(out);
    cstack *peer = open_device(dir, "peer");
    char url[64];
    url_of(port, url, sizeof url);
    sync_once(peer, url, tok, NULL);
    cr_assert(has_doc(peer, "a") && has_doc(peer, "b") && !has_doc(peer, "f"));
    cstack_close(peer);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    free(tok);
    free(dir);
}

/* A session streaming on a file while another process writes to it: every
 * one of the other process's transactions reaches the server (none is taken
 * as acknowledged by the session's own merges). */
Test(e2e, writes_from_another_process_reach_the_server_during_a_session)
{
    char *dir = t_tmpdir(), path[1024], url[64], cmd[4096], *out = NULL;
    cstack_server *srv = start_server(dir, "server.db", 0);
    url_of(cstack_server_port(srv), url, sizeof url);
    char *tok = token_for("alice");
    snprintf(path, sizeof path, "%s/e2e.cstack", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(SCHEMA, f);
    fclose(f);
    cstack *dev = open_device(dir, "shared"), *peer = open_device(dir, "peer");
    cstack_sync_session *ss = start_session(dev, url, tok, NULL);
    put_doc(peer, "from-peer", "alice", "peer", NULL);
    for (int i = 0; i < 8; i++) {
        /* The session merges the peer's change and echoes of its own pushes
         * while the other process writes. */
        if (i == 2)
            sync_once(peer, url, tok, NULL);
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && printf '%%s\\n' '{\"model\":\"Doc\",\"kind\":\"create\","
                 "\"payload\":{\"data\":{\"id\":\"p%d\",\"owner\":\"alice\","
                 "\"title\":\"other process\"}}}' | '%s' call --schema e2e.cstack "
                 "--db shared.db >/dev/null 2>&1",
                 dir, i, CSTACK_CLI);
        cr_assert_eq(t_run(cmd, &out), 0);
        free(out);
        /* Let the session push it and merge the server's echo first: the
         * next write then comes after a merge that wrote nothing. */
        sleep_ms(250);
    }
    cstack *both[2] = {dev, peer};
    int64_t until = now_ms() + 20000;
    while (now_ms() < until && count_docs(peer) != 9) {
        sync_once(peer, url, tok, NULL);
        sleep_ms(100);
    }
    cr_assert_eq(count_docs(peer), 9, "every write of the other process reached the server");
    cr_assert(wait_converged(both, 2, 10000));
    cstack_sync_stop(ss);
    cstack_close(dev);
    cstack_close(peer);
    cstack_server_stop(srv);
    free(tok);
    free(dir);
}

/* ---- offline for many writes ------------------------------------------------ */

Test(e2e, device_offline_for_many_writes_pushes_them_all)
{
    char *dir = t_tmpdir(), url[64];
    cstack_server *srv = start_server(dir, "server.db", 0);
    url_of(cstack_server_port(srv), url, sizeof url);
    char *tok = token_for("alice");
    cstack *off = open_device(dir, "offline"), *other = open_device(dir, "other");
    put_doc(other, "seen-by-both", "alice", "seen", NULL);
    sync_once(other, url, tok, NULL);
    sync_once(off, url, tok, NULL);
    /* 300 local transactions with no network, some rewriting earlier rows. */
    for (int i = 0; i < 300; i++) {
        char id[32];
        snprintf(id, sizeof id, "o%03d", i % 200);
        if (i < 200)
            put_doc(off, id, "alice", id, "offline");
        else
            set_field(off, id, "n", cstack_v_int(i));
    }
    set_field(other, "seen-by-both", "body", cstack_v_text("from the other device"));
    sync_once(other, url, tok, NULL);
    int64_t pending = 0;
    cr_assert_eq(cstack_upload_pending(off, &pending), 0);
    cr_assert_gt(pending, 100, "the queue holds the offline work (%lld)", (long long)pending);
    cstack_sync_status st;
    sync_once(off, url, tok, &st);
    cr_assert_eq(st.pushed, pending, "pushed %lld of %lld", (long long)st.pushed,
                 (long long)pending);
    cr_assert_eq(st.rejected, 0);
    cr_assert_eq(cstack_upload_pending(off, &pending), 0);
    cr_assert_eq(pending, 0);
    sync_once(other, url, tok, &st);
    cr_assert_eq(st.checksum_ok, 1);
    assert_same_dump(off, other, "the two devices");
    cr_assert_eq(count_docs(other), 201);
    cstack_close(off);
    cstack_close(other);
    cstack_server_stop(srv);
    free(tok);
    free(dir);
}

/* ---- rejection ------------------------------------------------------------------ */

static int64_t rejected_count(cstack *db)
{
    int64_t n = -1;
    cr_assert_eq(cstack_sync_rejected_count(db, &n), 0);
    return n;
}

Test(e2e, refused_batch_is_reported_and_set_aside)
{
    char *dir = t_tmpdir(), url[64];
    cstack_server *srv = start_server(dir, "server.db", 0);
    url_of(cstack_server_port(srv), url, sizeof url);
    char *alice = token_for("alice");
    cstack *dev = open_device(dir, "alice"), *peer = open_device(dir, "peer");
    put_doc(dev, "ok-1", "alice", "first", NULL);
    put_doc(dev, "forged", "bob", "not alice's to create", NULL); /* the policy forbids it */
    put_doc(dev, "ok-2", "alice", "after the refusal", NULL);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cstack_sync_options o = {.url = url, .token = alice};
    cstack_sync_status st;
    int rc = cstack_sync_run_once(dev, &o, on_status, &s, &st);
    cr_assert_eq(rc, 0, "run once: %s", cstack_errmsg(dev));
    cr_assert_eq(st.pushed, 2);
    cr_assert_eq(st.rejected, 1);
    cr_assert_eq(s.rejected, 1, "the refusal is reported");
    cr_assert_eq(s.last_status, 403);
    cr_assert(strstr(s.last_error, "403") != NULL, "message: %s", s.last_error);
    cr_assert_eq(rejected_count(dev), 1, "kept in _cstack_rejected");
    int64_t pending = -1;
    cr_assert_eq(cstack_upload_pending(dev, &pending), 0);
    cr_assert_eq(pending, 0, "the queue moved past the refused batch");
    /* The batches around it reached the server; the refused one did not. */
    sync_once(peer, url, alice, NULL);
    cr_assert(has_doc(peer, "ok-1") && has_doc(peer, "ok-2"));
    cr_assert(!has_doc(peer, "forged"));
    /* Later writes keep flowing; the refusal is not retried. */
    put_doc(dev, "ok-3", "alice", "later", NULL);
    rc = cstack_sync_run_once(dev, &o, on_status, &s, &st);
    cr_assert_eq(rc, 0);
    cr_assert_eq(st.pushed, 1);
    cr_assert_eq(st.rejected, 0);
    cr_assert_eq(rejected_count(dev), 1);
    sync_once(peer, url, alice, NULL);
    cr_assert(has_doc(peer, "ok-3"));
    cstack_close(dev);
    cstack_close(peer);
    cstack_server_stop(srv);
    free(alice);
    free(dir);
}

/* ---- drops ----------------------------------------------------------------- */

Test(e2e, row_leaves_the_old_owner_and_comes_back)
{
    char *dir = t_tmpdir(), url[64];
    cstack_server *srv = start_server(dir, "server.db", 0);
    url_of(cstack_server_port(srv), url, sizeof url);
    char *alice = token_for("alice"), *bob = token_for("bob");
    cstack *a = open_device(dir, "a"), *b = open_device(dir, "b");
    put_doc(a, "gift", "alice", "a gift", "from alice");
    put_doc(a, "mine", "alice", "kept", NULL);
    sync_once(a, url, alice, NULL);
    sync_once(b, url, bob, NULL);
    cr_assert(has_doc(a, "gift") && !has_doc(b, "gift"), "only alice sees her docs");
    /* Alice gives the doc to Bob: her replica forgets it, Bob's gets it. */
    set_field(a, "gift", "owner", cstack_v_text("bob"));
    cstack_sync_status st;
    sync_once(a, url, alice, &st);
    cr_assert(!has_doc(a, "gift"), "dropped from the old owner's replica");
    cr_assert(has_doc(a, "mine"));
    cr_assert_eq(st.checksum_ok, 1, "checksum %d: %s", st.checksum_ok, st.last_error);
    sync_once(b, url, bob, &st);
    cr_assert(has_doc(b, "gift"), "appears for the new owner");
    cr_assert_eq(st.checksum_ok, 1);
    /* Bob gives it back, with an edit: it reappears in full for Alice. */
    set_field(b, "gift", "body", cstack_v_text("returned by bob"));
    set_field(b, "gift", "owner", cstack_v_text("alice"));
    sync_once(b, url, bob, &st);
    cr_assert(!has_doc(b, "gift"));
    sync_once(a, url, alice, &st);
    cr_assert(has_doc(a, "gift"), "reappears when visibility returns");
    /* Alice's own earlier writes came back with the row and are queued again
     * (the engine cannot tell them from new ones); pushing them is a no-op
     * for the server, after which her state provably matches it. */
    sync_once(a, url, alice, &st);
    cr_assert_eq(st.rejected, 0);
    cr_assert_eq(st.checksum_ok, 1, "checksum %d: %s", st.checksum_ok, st.last_error);
    cstack_field_value w[] = {{"id", cstack_v_text("gift")}};
    cstack_data where = {w, 1};
    cstack_row *row = NULL;
    cr_assert_eq(cstack_find_unique(a, "Doc", &where, NULL, 0, &row), 0);
    cstack_value v;
    cr_assert_eq(cstack_row_get(row, "body", &v), 0);
    cr_assert_eq(v.u.s.n, strlen("returned by bob"));
    cr_assert_eq(memcmp(v.u.s.p, "returned by bob", v.u.s.n), 0);
    cstack_row_free(row);
    cstack_close(a);
    cstack_close(b);
    cstack_server_stop(srv);
    free(alice);
    free(bob);
    free(dir);
}

/* A server restored from an older backup (or replaced) no longer knows the
 * device's cursor: the device starts over from 0 instead of failing forever. */
Test(e2e, device_starts_over_when_the_server_state_was_replaced)
{
    char *dir = t_tmpdir(), url[64];
    cstack_server *srv = start_server(dir, "first.db", 0);
    int port = cstack_server_port(srv);
    url_of(port, url, sizeof url);
    char *tok = token_for("alice");
    cstack *dev = open_device(dir, "dev"), *other = open_device(dir, "other");
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "old%d", i);
        put_doc(dev, id, "alice", id, NULL);
    }
    cstack_sync_status st;
    sync_once(dev, url, tok, &st);
    cr_assert_gt(st.cursor, 0);
    cstack_server_stop(srv);
    srv = start_server(dir, "replacement.db", port);
    put_doc(other, "new", "alice", "on the new server", NULL);
    sync_once(other, url, tok, NULL);
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    cstack_sync_options o = {.url = url, .token = tok};
    int rc = cstack_sync_run_once(dev, &o, on_status, &s, &st);
    cr_assert_eq(rc, 0, "%s", cstack_errmsg(dev));
    cr_assert(has_doc(dev, "new"), "the device pulled the new server's state");
    cr_assert_eq(s.errors, 1, "the restart is reported once");
    /* It held rows the new server lost: the self-repair drops them, so it
     * ends equal to the server (docs/sync.md, "Self-repair"). */
    cr_assert_eq(st.repaired_models, 1, "the difference is repaired");
    cr_assert_eq(st.checksum_ok, 1, "and the device then matches the new server");
    cr_assert(!has_doc(dev, "old0"), "a row the server does not have is dropped");
    cstack_close(dev);
    cstack_close(other);
    cstack_server_stop(srv);
    free(tok);
    free(dir);
}

/* ---- failures ---------------------------------------------------------------- */

Test(e2e, unreachable_server_and_bad_token_fail_clearly)
{
    char *dir = t_tmpdir(), url[64];
    cstack *dev = open_device(dir, "dev");
    cstack_sync_options o = {.url = "http://127.0.0.1:1", .token = "x", .connect_timeout_ms = 2000};
    int rc = cstack_sync_run_once(dev, &o, NULL, NULL, NULL);
    cr_assert_eq(rc, CSTACK_EIO);
    cr_assert(strstr(cstack_errmsg(dev), "127.0.0.1:1") != NULL, "%s", cstack_errmsg(dev));
    cstack_server *srv = start_server(dir, "server.db", 0);
    url_of(cstack_server_port(srv), url, sizeof url);
    put_doc(dev, "kept", "alice", "kept", NULL);
    o.url = url;
    o.token = "not-a-jwt";
    rc = cstack_sync_run_once(dev, &o, NULL, NULL, NULL);
    cr_assert_eq(rc, CSTACK_EUNAUTHORIZED, "401 is the token's fault: %s", cstack_errmsg(dev));
    cr_assert_str_eq(cstack_errname(rc), "unauthorized");
    cr_assert(strstr(cstack_errmsg(dev), "401") != NULL, "%s", cstack_errmsg(dev));
    int64_t pending = 0;
    cr_assert_eq(cstack_upload_pending(dev, &pending), 0);
    cr_assert_eq(pending, 1, "an unauthorised push leaves the queue alone");
    o.url = "ftp://example.com";
    cr_assert_eq(cstack_sync_run_once(dev, &o, NULL, NULL, NULL), CSTACK_EINVAL);
    cstack_close(dev);
    cstack_server_stop(srv);
    free(dir);
}

/* A copy of alice's device file carries her site id: bob syncing with it is
 * refused, and the failure is labelled forbidden, on the API and the CLI. */
Test(e2e, a_device_whose_site_another_user_owns_fails_as_forbidden)
{
    char *dir = t_tmpdir(), cmd[4096], url[64], *out = NULL;
    int port = 0;
    pid_t pid = spawn_server(dir, &port);
    url_of(port, url, sizeof url);
    char *alice = token_for("alice"), *bob = token_for("bob");
    cstack *dev = open_device(dir, "alice");
    put_doc(dev, "a1", "alice", "mine", NULL);
    sync_once(dev, url, alice, NULL);
    cstack_close(dev);
    snprintf(cmd, sizeof cmd, "cd '%s' && cp alice.db bob.db", dir);
    cr_assert_eq(t_run(cmd, &out), 0);
    free(out);
    dev = open_device(dir, "bob");
    cstack_sync_options o = {.url = url, .token = bob};
    int rc = cstack_sync_run_once(dev, &o, NULL, NULL, NULL);
    cr_assert_eq(rc, CSTACK_EFORBIDDEN, "got %s: %s", cstack_errname(rc), cstack_errmsg(dev));
    cr_assert(strstr(cstack_errmsg(dev), "belongs to another user") != NULL, "%s",
              cstack_errmsg(dev));
    cstack_close(dev);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && CSTACK_TOKEN='%s' '%s' sync --schema e2e.cstack --db bob.db "
             "--server %s --once 2>&1",
             dir, bob, CSTACK_CLI, url);
    rc = t_run(cmd, &out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "failed (forbidden)") != NULL, "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && CSTACK_TOKEN='not-a-jwt' '%s' sync --schema e2e.cstack --db alice.db "
             "--server %s --once 2>&1",
             dir, CSTACK_CLI, url);
    rc = t_run(cmd, &out);
    cr_assert_eq(rc, 1, "%s", out);
    cr_assert(strstr(out, "failed (unauthorized)") != NULL, "%s", out);
    free(out);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    free(alice);
    free(bob);
    free(dir);
}

/* The label of an error response: the JSON code when the client knows it,
 * else the status. */
Test(e2e, error_responses_are_labelled_by_their_cause)
{
    static const struct {
        long status;
        const char *body;
        const char *label;
    } CASES[] = {
        {401, "{\"status\":\"err\",\"code\":\"unauthorized\",\"message\":\"m\"}", "unauthorized"},
        {401, "", "unauthorized"},
        {403, "{\"status\":\"err\",\"code\":\"forbidden\",\"message\":\"m\"}", "forbidden"},
        {409, "{\"status\":\"err\",\"code\":\"schema_mismatch\",\"message\":\"m\"}",
         "schema_mismatch"},
        {409, "<html>", "schema_mismatch"},
        {413, "<html>413</html>", "too_big"},
        {503, "{\"status\":\"err\",\"code\":\"unavailable\",\"message\":\"m\"}", "unavailable"},
        {503, "{\"status\":\"err\",\"code\":\"locked\",\"message\":\"m\"}", "locked"},
        {500, "{\"status\":\"err\",\"code\":\"internal\",\"message\":\"m\"}", "io"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        cs_http_resp r = {.status = CASES[i].status};
        cr_assert_eq(cs_buf_puts(&r.body, CASES[i].body), 0);
        const char *got = cstack_errname(cs_http_error_code(&r));
        cr_expect_str_eq(got, CASES[i].label, "HTTP %ld %s: %s", CASES[i].status, CASES[i].body,
                         got);
        cs_buf_free(&r.body);
    }
}

/* ---- the event-stream parser ------------------------------------------------- */

typedef struct sse_log {
    char text[1024];
} sse_log;

static int log_event(void *ctx, const cs_sse_event *ev)
{
    sse_log *l = ctx;
    size_t n = strlen(l->text);
    snprintf(l->text + n, sizeof l->text - n, "[%s|%s|%s]", ev->type, ev->data, ev->id);
    return 0;
}

Test(e2e_sse, events_parse_the_same_in_any_split)
{
    static const char input[] = ": keep-alive\r\n\r\n"
                                "event: changes\nid: 7\ndata: QUJD\n\n"
                                "data:first\rdata: second\r\r"
                                "event: checkpoint\r\ndata: {\"cursor\":7}\r\n\r\n"
                                "id: 9\nevent: x\n\n" /* no data: not dispatched */
                                "unknown: field\ndata\n\n";
    const char *want = "[changes|QUJD|7][message|first\nsecond|7]"
                       "[checkpoint|{\"cursor\":7}|7][message||9]";
    size_t n = sizeof input - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        sse_log l = {""};
        cs_sse p;
        cs_sse_init(&p, 1024, log_event, &l);
        cr_assert_eq(cs_sse_feed(&p, input, cut), 0);
        cr_assert_eq(cs_sse_feed(&p, input + cut, n - cut), 0);
        cs_sse_free(&p);
        cr_assert_str_eq(l.text, want, "split at %zu", cut);
    }
}

Test(e2e_sse, an_oversized_line_is_refused)
{
    sse_log l = {""};
    cs_sse p;
    cs_sse_init(&p, 16, log_event, &l);
    cr_assert_eq(cs_sse_feed(&p, "data: 0123456789abcdef", 22), CSTACK_ETOOBIG);
    cs_sse_free(&p);
}
