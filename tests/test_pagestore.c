/* test_pagestore.c -- the page-store VFS (docs/pagestore.md): a cstack
 * database on the memory and the LMDB store, rollback leaving the store as
 * it was, and the crash test: a child writing through the LMDB store is
 * killed with SIGKILL at a random moment (most of a child's time is spent in
 * put_pages, LMDB's commit), 50 rounds; the parent reopens the store at its
 * last committed state with integrity ok and no transaction in part. */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static cstack *open_on(const cstack_schema *s, const char *vfs, const char *name)
{
    cstack_open_options o = {.vfs = vfs};
    cstack *db = NULL;
    int rc = cstack_open(s, name, &o, &db);
    cr_assert_eq(rc, 0, "open on %s: %s", vfs, db ? cstack_errmsg(db) : cstack_errstr(rc));
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "%s", cstack_errmsg(db));
    return db;
}

static int first_text(sqlite3 *c, void *ctx)
{
    const char **sql = ctx;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(c, sql[0], -1, &st, NULL);
    if (rc)
        return -1;
    rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    if (!rc)
        snprintf((char *)sql[1], 64, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return rc;
}

static void expect_text(cstack *db, const char *sql, const char *want)
{
    char got[64] = "";
    const char *ctx[2] = {sql, got};
    cr_assert_eq(cstack_with_sqlite(db, first_text, ctx), 0, "%s failed", sql);
    cr_expect_str_eq(got, want, "%s", sql);
}

static int64_t count(cstack *db, const char *model)
{
    int64_t n = -1;
    cr_assert_eq(cstack_count(db, model, NULL, &n), 0, "%s", cstack_errmsg(db));
    return n;
}

Test(pagestore, a_database_on_the_memory_store_keeps_its_rows_across_close_and_reopen)
{
    cstack_schema *s = t_schema(T_TX_SCHEMA);
    cstack_pagestore *ps;
    cr_assert_eq(cstack_pagestore_memory(&ps), 0);
    cr_assert_eq(cstack_pagestore_register("t-mem", ps), 0);
    cstack *db = open_on(s, "t-mem", "app.db");
    expect_text(db, "PRAGMA journal_mode", "memory");
    for (int tx = 1; tx <= 20; tx++)
        cr_assert_eq(t_write_tx(db, tx, 30), 0, "%s", cstack_errmsg(db));
    cstack_close(db);
    db = open_on(s, "t-mem", "app.db");
    cr_expect_eq(count(db, "Entry"), 600);
    cr_expect_eq(count(db, "Log"), 20);
    expect_text(db, "PRAGMA integrity_check", "ok");
    cstack_close(db);
    cr_expect_eq(cstack_pagestore_unregister("t-mem"), 0);
    cstack_schema_free(s);
}

Test(pagestore, a_rollback_leaves_the_store_at_its_last_commit_marker)
{
    cstack_schema *s = t_schema(T_TX_SCHEMA);
    cstack_pagestore *ps;
    cr_assert_eq(cstack_pagestore_memory(&ps), 0);
    cr_assert_eq(cstack_pagestore_register("t-rb", ps), 0);
    cstack *db = open_on(s, "t-rb", "app.db");
    cr_assert_eq(t_write_tx(db, 1, 10), 0);
    cstack_pagestore_meta before, after;
    cr_assert_eq(ps->size(ps, "app.db", &before), 0);
    cr_assert_gt(before.commit, 0);
    /* Enough rows that SQLite spills pages into the VFS before the end. */
    cr_assert_eq(cstack_begin(db), 0);
    for (int i = 0; i < 3000; i++)
        cr_assert_eq(cstack_create(db, "Entry", DATA(FV("id", I(100000 + i)), FV("tx", I(2)),
                                                     FV("v", T("rolled back"))), NULL), 0);
    cr_assert_eq(cstack_rollback(db), 0);
    cr_assert_eq(ps->size(ps, "app.db", &after), 0);
    cr_expect_eq(after.npages, before.npages);
    cr_expect_eq(count(db, "Entry"), 10);
    expect_text(db, "PRAGMA integrity_check", "ok");
    cstack_close(db);
    cr_expect_eq(cstack_pagestore_unregister("t-rb"), 0);
    cstack_schema_free(s);
}

Test(pagestore, a_database_on_the_lmdb_store_survives_close_and_a_second_process_is_refused)
{
    cstack_schema *s = t_schema(T_TX_SCHEMA);
    char *dir = t_tmpdir();
    cstack_pagestore *ps;
    cr_assert_eq(cstack_pagestore_lmdb(dir, 0, &ps), 0);
    cr_assert_eq(cstack_pagestore_register("t-lmdb", ps), 0);
    cstack *db = open_on(s, "t-lmdb", "app.db");
    for (int tx = 1; tx <= 10; tx++)
        cr_assert_eq(t_write_tx(db, tx, 50), 0, "%s", cstack_errmsg(db));
    cstack_close(db);
    pid_t pid = fork();
    if (pid == 0) {
        cstack_pagestore *other = NULL;
        _exit(cstack_pagestore_lmdb(dir, 0, &other) == CSTACK_EBUSY ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "a second process got in");
    cr_assert_eq(cstack_pagestore_unregister("t-lmdb"), 0);
    cr_assert_eq(cstack_pagestore_lmdb(dir, 0, &ps), 0);
    cr_assert_eq(cstack_pagestore_register("t-lmdb", ps), 0);
    db = open_on(s, "t-lmdb", "app.db");
    cr_expect_eq(count(db, "Entry"), 500);
    expect_text(db, "PRAGMA integrity_check", "ok");
    cstack_close(db);
    cr_expect_eq(cstack_pagestore_unregister("t-lmdb"), 0);
    cstack_schema_free(s);
    free(dir);
}

/* ---- the crash test ---- */

/* The child: writes transactions until killed, telling the parent the id of
 * each one after its commit returned. */
static void child(const cstack_schema *s, const char *dir, long long first, int fd)
{
    cstack_pagestore *ps;
    if (cstack_pagestore_lmdb(dir, 0, &ps) || cstack_pagestore_register("crash", ps))
        _exit(2);
    cstack_open_options o = {.vfs = "crash"};
    cstack *db = NULL;
    if (cstack_open(s, "app.db", &o, &db) || cstack_bootstrap(db, NULL))
        _exit(3);
    for (long long tx = first;; tx++) {
        if (t_write_tx(db, tx, 1 + (int)(tx % 40)))
            _exit(4);
        if (write(fd, &tx, sizeof tx) != sizeof tx)
            _exit(5);
    }
}

static int check_parts(sqlite3 *c, void *ctx)
{
    sqlite3_stmt *st;
    const char *sql = "SELECT count(*) FROM Log WHERE size <> "
                      "(SELECT count(*) FROM Entry WHERE Entry.tx = Log.id)";
    if (sqlite3_prepare_v2(c, sql, -1, &st, NULL))
        return -1;
    int rc = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0 ? 0 : -1;
    sqlite3_finalize(st);
    return rc;
}

static long long max_log(cstack *db)
{
    int64_t n = 0;
    cr_assert_eq(cstack_count(db, "Log", NULL, &n), 0);
    return n; /* ids are 1..n with no gaps: one writer, in order */
}

Test(pagestore, sigkill_while_writing_through_lmdb_reopens_at_the_last_commit_50_rounds,
     .timeout = 300)
{
    cstack_schema *s = t_schema(T_TX_SCHEMA);
    char *dir = t_tmpdir();
    const char *seed_env = getenv("CSTACK_CRASH_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    fprintf(stderr, "pagestore crash test seed %u\n", seed);
    long long next = 1, committed = 0;
    int kills = 0;
    for (int round = 0; round < 50; round++) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            close(fds[0]);
            child(s, dir, next, fds[1]);
        }
        close(fds[1]);
        /* The kill comes 0-40 ms after the child's first commit, so that
         * opening does not eat every round. */
        long long tx, last = next - 1;
        if (read(fds[0], &tx, sizeof tx) == sizeof tx)
            last = tx;
        int status = t_kill_after(pid, (long)(rand_r(&seed) % 40000) * 1000);
        cr_assert(WIFSIGNALED(status), "round %d: the child exited by itself (%d)", round,
                  WEXITSTATUS(status));
        kills++;
        while (read(fds[0], &tx, sizeof tx) == sizeof tx)
            last = tx;
        close(fds[0]);

        cstack_pagestore *ps;
        cr_assert_eq(cstack_pagestore_lmdb(dir, 0, &ps), 0);
        cr_assert_eq(cstack_pagestore_register("crash-check", ps), 0);
        cstack *db = open_on(s, "crash-check", "app.db");
        expect_text(db, "PRAGMA integrity_check", "ok");
        cr_assert_eq(cstack_with_sqlite(db, check_parts, NULL), 0,
                     "round %d: a transaction is there in part", round);
        long long have = max_log(db);
        /* Every commit the child saw is there; at most the one being
         * committed when it died is there without its report. */
        cr_assert(have == last || have == last + 1, "round %d: %lld transactions, child saw %lld",
                  round, have, last);
        committed += have - (next - 1);
        next = have + 1;
        cstack_close(db);
        cr_assert_eq(cstack_pagestore_unregister("crash-check"), 0);
    }
    fprintf(stderr, "pagestore crash test: %d kills, %lld transactions committed\n", kills,
            committed);
    cr_expect_gt(committed, 50, "the children got to commit");
    cstack_schema_free(s);
    free(dir);
}
