/* test_crash.c -- SPEC section 14's crash test: a child process writing
 * committed transactions, or applying changesets, on a file database is
 * killed with SIGKILL at a random moment; the parent then reopens the
 * database and proves that
 *   - PRAGMA integrity_check is "ok";
 *   - every transaction the child saw commit (and wrote down, with fsync,
 *     after cstack_commit / cstack_changes_apply returned) is there, whole;
 *   - no transaction is there in part (a Log row states how many Entry rows
 *     its transaction wrote);
 *   - the upload queue still lists every local transaction not yet
 *     acknowledged, lists no merged remote change, and can be completed;
 *   - writing goes on afterwards.
 * Writer rounds share one database, so a database killed before is reopened
 * and written again; applier rounds each start from a fresh one.
 * CSTACK_CRASH_ROUNDS=N overrides the number of rounds (default 60);
 * CSTACK_CRASH_SEED=S replays the random choices of a logged run. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"
#include "sync_support.h"

#define BATCHES 24
#define BATCH_ROWS 50
#define REMOTE_BASE 1000000 /* Log ids of the applier's remote batches */
#define MAX_IDS (1 << 21)

/* ---- the child (no Criterion in here: it reports through its exit code
 * and an "E message" line in the side file) ---- */

static int side_fd = -1;
/* The child tells the parent how far it got: 'o' once its database is open,
 * 'p' after its first noted step.  The parent times its kill from one of
 * them, so that a loaded machine (the sanitizer suite runs two tests at a
 * time) cannot make every kill land before the child did anything. */
static int progress_fd = -1;

static void tell_parent(char what)
{
    if (progress_fd >= 0 && write(progress_fd, &what, 1) != 1)
        _exit(6);
}

/* Appends "TAG a [b]" to the side file and makes it durable. */
static void note_line(char tag, long long a, long long b)
{
    char line[64];
    int n = b >= 0 ? snprintf(line, sizeof line, "%c %lld %lld\n", tag, a, b)
                   : snprintf(line, sizeof line, "%c %lld\n", tag, a);
    if (write(side_fd, line, (size_t)n) != n || fsync(side_fd) != 0)
        _exit(4);
    static bool told;
    if (!told)
        tell_parent('p');
    told = true;
}

static void child_fail(cstack *db, const char *what)
{
    char line[600];
    int n = snprintf(line, sizeof line, "E %s: %s\n", what, db ? cstack_errmsg(db) : "");
    if (write(side_fd, line, (size_t)n) < 0)
        _exit(5);
    fsync(side_fd);
    _exit(3);
}

static cstack *child_open(const char *path)
{
    cstack_schema *s = NULL;
    if (cstack_schema_parse("crash.cstack", T_TX_SCHEMA, strlen(T_TX_SCHEMA), &s, NULL) !=
        CSTACK_OK)
        child_fail(NULL, "schema");
    cstack *db = NULL;
    int rc = cstack_open(s, path, NULL, &db);
    cstack_schema_free(s);
    if (rc != CSTACK_OK || cstack_bootstrap(db, NULL) != CSTACK_OK)
        child_fail(db, "open");
    tell_parent('o');
    return db;
}

/* Acknowledges the oldest queued transaction the way an app would after
 * uploading it: the Log ids it carries are written down first ("A k"), then
 * it is completed, so the parent never expects an acknowledged one. */
static void ack_oldest(cstack *db)
{
    cstack_upload_tx *tx = NULL;
    if (cstack_upload_next(db, &tx) != CSTACK_OK)
        child_fail(db, "upload_next");
    if (!tx)
        return;
    json_t *j = json_loads(cstack_upload_tx_json(tx), 0, NULL);
    json_t *ops = json_object_get(j, "ops");
    for (size_t i = 0; i < json_array_size(ops); i++) {
        json_t *o = json_array_get(ops, i);
        const char *m = json_string_value(json_object_get(o, "model"));
        if (m && strcmp(m, "Log") == 0)
            note_line('A', json_integer_value(json_object_get(json_object_get(o, "key"), "id")),
                      -1);
    }
    json_decref(j);
    if (cstack_upload_complete(db, cstack_upload_tx_version(tx)) != CSTACK_OK)
        child_fail(db, "upload_complete");
    cstack_upload_tx_free(tx);
}

static void child_writer(const char *path, long long first, unsigned seed)
{
    cstack *db = child_open(path);
    for (long long k = first;; k++) {
        int n = 1 + (int)(rand_r(&seed) % 40);
        if (t_write_tx(db, k, n) != 0)
            child_fail(db, "write");
        note_line('W', k, n);
        if (rand_r(&seed) % 5 == 0)
            ack_oldest(db);
    }
}

static void child_applier(const char *path, void *const *cs, const size_t *len, long long first,
                          unsigned seed)
{
    cstack *db = child_open(path);
    int start = (int)(rand_r(&seed) % BATCHES);
    for (int i = 0; i < 2 * BATCHES; i++) {
        int b = (start + i) % BATCHES;
        if (cstack_changes_apply(db, cs[b], len[b], NULL) != CSTACK_OK)
            child_fail(db, "apply");
        note_line('P', b, -1);
        if (i % 3 == 0) {
            long long k = first + i;
            if (t_write_tx(db, k, 2) != 0)
                child_fail(db, "local write");
            note_line('W', k, 2);
        }
    }
    cstack_close(db);
    _exit(0);
}

/* ---- the parent ---- */

typedef struct record {
    unsigned char *written; /* [id]: size + 1 when "W id size" was noted */
    unsigned char *acked;   /* [id]: "A id" was noted */
    unsigned char applied[BATCHES];
    char error[600];
} record;

/* Slot of a Log id in the record arrays. */
static size_t slot(long long id)
{
    long long s = id >= REMOTE_BASE ? id - REMOTE_BASE + MAX_IDS - BATCHES : id;
    cr_assert(s >= 0 && s < MAX_IDS, "id %lld out of range", id);
    return (size_t)s;
}

static void read_record(const char *path, record *rec)
{
    size_t n = 0;
    char *text = t_read_file(path, &n);
    cr_assert_not_null(text, "%s", path);
    memset(rec->written, 0, MAX_IDS);
    memset(rec->acked, 0, MAX_IDS);
    memset(rec->applied, 0, sizeof rec->applied);
    rec->error[0] = 0;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break; /* a line cut short by the kill was never fsync'ed */
        *nl = 0;
        long long a = 0, b = 0;
        if (sscanf(line, "W %lld %lld", &a, &b) == 2)
            rec->written[slot(a)] = (unsigned char)(b + 1);
        else if (sscanf(line, "A %lld", &a) == 1)
            rec->acked[slot(a)] = 1;
        else if (sscanf(line, "P %lld", &a) == 1 && a >= 0 && a < BATCHES)
            rec->applied[a] = 1;
        else if (line[0] == 'E')
            snprintf(rec->error, sizeof rec->error, "%s", line);
        line = nl + 1;
    }
    free(text);
}

static cstack *parent_open(const char *path)
{
    cstack_schema *s = t_schema(T_TX_SCHEMA);
    cstack *db = NULL;
    int rc = cstack_open(s, path, NULL, &db);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "reopen %s: %s", path, db ? cstack_errmsg(db) : "");
    rc = cstack_bootstrap(db, NULL);
    cr_assert_eq(rc, 0, "bootstrap after the kill: %s", cstack_errmsg(db));
    return db;
}

typedef struct check_ctx {
    const record *rec;
    long long max_local; /* largest local Log id present */
    char msg[512];
} check_ctx;

/* Runs inside the write connection: integrity, whole transactions, and
 * every noted commit present. */
static int check_db(sqlite3 *conn, void *ctxp)
{
    check_ctx *ctx = ctxp;
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(conn, "PRAGMA integrity_check", -1, &st, NULL);
    const unsigned char *res = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    if (!res || strcmp((const char *)res, "ok") != 0) {
        snprintf(ctx->msg, sizeof ctx->msg, "integrity_check: %s", res ? (const char *)res : "?");
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    unsigned char *present = calloc(MAX_IDS, 1);
    sqlite3_prepare_v2(conn,
                       "SELECT l.id, l.size, (SELECT count(*) FROM Entry e WHERE e.tx = l.id) "
                       "FROM Log l",
                       -1, &st, NULL);
    int bad = 0;
    while (!bad && sqlite3_step(st) == SQLITE_ROW) {
        long long id = sqlite3_column_int64(st, 0), size = sqlite3_column_int64(st, 1);
        long long have = sqlite3_column_int64(st, 2);
        present[slot(id)] = 1;
        if (id < REMOTE_BASE && id > ctx->max_local)
            ctx->max_local = id;
        if (have != size) {
            snprintf(ctx->msg, sizeof ctx->msg, "transaction %lld is partial: %lld of %lld", id,
                     have, size);
            bad = 1;
        }
    }
    sqlite3_finalize(st);
    sqlite3_prepare_v2(conn, "SELECT count(*) FROM Entry WHERE tx NOT IN (SELECT id FROM Log)", -1,
                       &st, NULL);
    if (!bad && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) != 0) {
        snprintf(ctx->msg, sizeof ctx->msg, "%lld entries without their Log row",
                 (long long)sqlite3_column_int64(st, 0));
        bad = 1;
    }
    sqlite3_finalize(st);
    for (long long id = 0; !bad && id < MAX_IDS; id++)
        if (ctx->rec->written[id] && !present[id]) {
            snprintf(ctx->msg, sizeof ctx->msg, "committed transaction %lld lost", id);
            bad = 1;
        }
    for (int b = 0; !bad && b < BATCHES; b++)
        if (ctx->rec->applied[b] && !present[slot(REMOTE_BASE + b)]) {
            snprintf(ctx->msg, sizeof ctx->msg, "applied batch %d lost", b);
            bad = 1;
        }
    free(present);
    return bad ? -1 : 0;
}

/* Completes the whole upload queue, requiring every noted, unacknowledged
 * local transaction to be in it and nothing but local Log/Entry puts. */
static void drain_queue(cstack *db, const record *rec)
{
    unsigned char *queued = calloc(MAX_IDS, 1);
    int64_t before = -1, after = -1;
    cr_assert_eq(cstack_upload_pending(db, &before), 0, "%s", cstack_errmsg(db));
    int64_t ntx = 0;
    for (;;) {
        cstack_upload_tx *tx = NULL;
        cr_assert_eq(cstack_upload_next(db, &tx), 0, "%s", cstack_errmsg(db));
        if (!tx)
            break;
        json_t *j = json_loads(cstack_upload_tx_json(tx), 0, NULL);
        cr_assert_not_null(j, "queue JSON: %s", cstack_upload_tx_json(tx));
        json_t *ops = json_object_get(j, "ops");
        for (size_t i = 0; i < json_array_size(ops); i++) {
            json_t *o = json_array_get(ops, i);
            const char *m = json_string_value(json_object_get(o, "model"));
            long long id = json_integer_value(json_object_get(json_object_get(o, "key"), "id"));
            cr_assert(m != NULL);
            if (strcmp(m, "Log") == 0) {
                cr_assert_lt(id, REMOTE_BASE, "a merged remote row is in the upload queue");
                queued[slot(id)] = 1;
            }
        }
        json_decref(j);
        cr_assert_eq(cstack_upload_complete(db, cstack_upload_tx_version(tx)), 0, "%s",
                     cstack_errmsg(db));
        cstack_upload_tx_free(tx);
        cr_assert_lt(++ntx, 1000000, "the queue does not drain");
    }
    cr_expect_eq(ntx, before, "pending said %lld, the queue held %lld", (long long)before,
                 (long long)ntx);
    for (long long id = 0; id < REMOTE_BASE && id < MAX_IDS - BATCHES; id++)
        cr_assert(!rec->written[id] || rec->acked[id] || queued[id],
                  "committed, unacknowledged transaction %lld is missing from the queue", id);
    free(queued);
    cr_assert_eq(cstack_upload_pending(db, &after), 0);
    cr_assert_eq(after, 0, "pending after completing everything");
}

static double rand01(unsigned *seed)
{
    return (double)rand_r(seed) / (double)RAND_MAX;
}

/* The applier's remote transactions: one changeset per batch from a source
 * replica. */
static void make_batches(void *cs[BATCHES], size_t len[BATCHES])
{
    cstack *src = t_open_mem(T_TX_SCHEMA);
    int64_t cur = 0;
    for (int b = 0; b < BATCHES; b++) {
        cr_assert_eq(t_write_tx(src, REMOTE_BASE + b, BATCH_ROWS), 0, "%s", cstack_errmsg(src));
        cr_assert_eq(cstack_changes_export(src, cur, &cs[b], &len[b], &cur), 0, "%s",
                     cstack_errmsg(src));
    }
    cstack_close(src);
}

/* Waits (at most 60 s) until the child has told `what`, or has ended. */
static void wait_progress(int fd, char what)
{
    struct pollfd p = {fd, POLLIN, 0};
    char c = 0;
    while (c != what && poll(&p, 1, 60000) == 1 && read(fd, &c, 1) == 1)
        ;
}

Test(crash, sigkill_never_loses_or_corrupts_and_the_queue_resumes, .timeout = 900)
{
    const char *env = getenv("CSTACK_CRASH_ROUNDS");
    int rounds = env && atoi(env) > 0 ? atoi(env) : 60;
    char *dir = t_tmpdir();
    char wpath[512], side[512];
    snprintf(wpath, sizeof wpath, "%s/writer.db", dir);
    void *cs[BATCHES];
    size_t len[BATCHES];
    make_batches(cs, len);
    record rec = {malloc(MAX_IDS), malloc(MAX_IDS), {0}, {0}};
    const char *seed_env = getenv("CSTACK_CRASH_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    cr_log_info("crash test seed %u", seed);
    int kills = 0;
    long long committed = 0, acked = 0, applied = 0;
    long long next_id = 1;
    for (int round = 0; round < rounds; round++) {
        int applier = rand_r(&seed) % 3 == 0;
        char apath[512];
        snprintf(apath, sizeof apath, "%s/applier%d.db", dir, round);
        const char *path = applier ? apath : wpath;
        snprintf(side, sizeof side, "%s/side%d.txt", dir, round);
        side_fd = open(side, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
        cr_assert_geq(side_fd, 0);
        unsigned child_seed = (unsigned)rand_r(&seed);
        long long first = applier ? 1 : next_id;
        int pipefd[2];
        cr_assert_eq(pipe(pipefd), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(pipefd[0]);
            progress_fd = pipefd[1];
            if (applier)
                child_applier(path, cs, len, first, child_seed);
            else
                child_writer(path, first, child_seed);
            _exit(0);
        }
        close(side_fd);
        close(pipefd[1]);
        /* One kill in five comes 0-10 ms after the fork (often while the
         * child is still opening); the others 2-100 ms after the child said
         * it had opened, or had done its first step. */
        int mode = rand_r(&seed) % 5;
        double after = mode == 0 ? rand01(&seed) * 10e6 : 2e6 + rand01(&seed) * 98e6;
        if (mode > 0)
            wait_progress(pipefd[0], mode <= 2 ? 'o' : 'p');
        int status = t_kill_after(pid, (long)after);
        close(pipefd[0]);
        read_record(side, &rec);
        cr_assert(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "round %d: the %s failed by itself: %s", round, applier ? "applier" : "writer",
                  rec.error);
        kills += WIFSIGNALED(status);
        for (size_t i = 0; i < MAX_IDS; i++) {
            committed += rec.written[i] != 0;
            acked += rec.acked[i];
        }
        for (int b = 0; b < BATCHES; b++)
            applied += rec.applied[b];

        cstack *db = parent_open(path);
        check_ctx ctx = {&rec, 0, {0}};
        int rc = cstack_with_sqlite(db, check_db, &ctx);
        cr_assert_eq(rc, 0, "round %d (%s): %s", round, applier ? "applier" : "writer", ctx.msg);
        drain_queue(db, &rec);
        /* Writing goes on, and is queued again. */
        cr_assert_eq(t_write_tx(db, ctx.max_local + 1, 3), 0, "%s", cstack_errmsg(db));
        if (!applier)
            next_id = ctx.max_local + 2;
        int64_t pending = 0;
        cr_assert_eq(cstack_upload_pending(db, &pending), 0);
        cr_assert_eq(pending, 1);
        if (applier) {
            /* The interrupted sync resumes: everything applies (again). */
            for (int b = 0; b < BATCHES; b++)
                cr_assert_eq(cstack_changes_apply(db, cs[b], len[b], NULL), 0, "%s",
                             cstack_errmsg(db));
            int64_t n = 0;
            cr_assert_eq(cstack_count(db, "Entry", NULL, &n), 0);
            cr_assert_geq(n, BATCHES * BATCH_ROWS);
        }
        cstack_close(db);
    }
    cr_log_info("crash test: %d rounds, %d killed mid-run; %lld transactions noted committed, "
                "%lld acknowledged, %lld changesets noted applied",
                rounds, kills, committed, acked, applied);
    cr_expect_gt(committed, 0, "the children got to commit before being killed");
    cr_expect_gt(applied, 0, "the appliers got to apply before being killed");
    cr_expect_gt(kills, rounds / 2, "most children must die by SIGKILL, not finish");
    for (int b = 0; b < BATCHES; b++)
        cstack_free(cs[b]);
    free(rec.written);
    free(rec.acked);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
    free(dir);
}
