/* test_pg_store.c -- the server store on PostgreSQL (store_pg*.c,
 * docs/postgres.md), below HTTP, on a fresh database of the test cluster:
 * it answers pushes and pulls as the SQLite store does (same cursors, rows
 * and checksums), two stores on one database see each other's pushes with
 * gap-free versions, a store restarted (or a new one) loads the state, and a
 * process killed without closing loses no acknowledged push. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/pg.h"
#include "server/store_int.h"
#include "support.h"

static const char *SCHEMA = "model Item {\n"
                            "  id    Int    @id\n"
                            "  title String\n"
                            "  qty   Int?\n"
                            "  @@allow('all', true)\n"
                            "}\n";

static const char SITE[] = "0123456789abcdef0123456789abcdef";
static const cs_auth USER = {.signed_in = true, .sub = "u1"};

static cs_srv_store *open_store(const cs_srv_store_ops *ops, const cstack_schema *s,
                                const char *target)
{
    cs_srv_store *st = NULL;
    cs_srv_err err = {0};
    int rc = ops->open(s, target, NULL, &st, &err);
    cr_assert_eq(rc, 0, "open %s: %s", ops->name, err.message);
    return st;
}

static void create(cstack *dev, int id, const char *title)
{
    cr_assert_eq(cstack_create(dev, "Item",
                               DATA(FV("id", I(id)), FV("title", T(title)), FV("qty", I(id * 2))),
                               NULL),
                 0, "%s", cstack_errmsg(dev));
}

/* Pushes what the device wrote after `since` as batch "<site>:<n>". */
static cs_srv_push_result push(const cs_srv_store_ops *ops, cs_srv_store *st, cstack *dev,
                               int64_t since, int n)
{
    void *cs = NULL;
    size_t len = 0;
    int64_t cursor = 0;
    cr_assert_eq(cstack_changes_export(dev, since, &cs, &len, &cursor), 0, "%s",
                 cstack_errmsg(dev));
    char batch[64];
    snprintf(batch, sizeof batch, "%s:%d", SITE, n);
    t_restamp(cs, len, SITE);
    cs_srv_push req = {&USER, SITE, batch, cs, len};
    cs_srv_push_result res;
    cs_srv_err err = {0};
    cr_assert_eq(ops->push(st, &req, &res, &err), 0, "push to %s: %s", ops->name, err.message);
    cstack_free(cs);
    return res;
}

/* Everything a second device of the user gets from scratch. */
static cs_srv_pull_result pull(const cs_srv_store_ops *ops, cs_srv_store *st)
{
    cs_srv_pull req = {.auth = &USER,
                       .site = "fedcba9876543210fedcba9876543210",
                       .want_changes = true,
                       .want_checksum = true};
    cs_srv_pull_result res = {0};
    cs_srv_err err = {0};
    cr_assert_eq(ops->pull(st, &req, 1, &res, &err), 0, "pull from %s: %s", ops->name,
                 err.message);
    cr_assert(res.has_checksum);
    return res;
}

static int64_t version(const cs_srv_store_ops *ops, cs_srv_store *st)
{
    int64_t v = -1;
    cr_assert_eq(ops->version(st, &v), 0);
    return v;
}

Test(pg_store, answers_pushes_and_pulls_as_the_sqlite_store_does)
{
    char *url = t_pg_database();
    char *dir = t_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/server.db", dir);
    cstack *dev = t_open_mem(SCHEMA);
    const cstack_schema *s = cstack_schema_of(dev);
    cs_srv_store *lite = open_store(&cs_srv_store_sqlite, s, path);
    cs_srv_store *pg = open_store(&cs_srv_store_pg, s, url);
    create(dev, 1, "one");
    create(dev, 2, "two");
    cs_srv_push_result a = push(&cs_srv_store_sqlite, lite, dev, 0, 1);
    cs_srv_push_result b = push(&cs_srv_store_pg, pg, dev, 0, 1);
    cr_expect_eq(a.cursor, b.cursor);
    cr_expect_eq(a.won, b.won);
    cs_srv_push_result again = push(&cs_srv_store_pg, pg, dev, 0, 1);
    cr_expect(again.duplicate, "a batch is applied once");
    cr_assert_eq(cstack_update(dev, "Item", DATA(FV("id", I(1))), DATA(FV("title", T("uno"))),
                               NULL),
                 0);
    cr_assert_eq(cstack_delete(dev, "Item", DATA(FV("id", I(2))), NULL), 0);
    push(&cs_srv_store_sqlite, lite, dev, a.cursor, 2);
    push(&cs_srv_store_pg, pg, dev, a.cursor, 2);
    cs_srv_pull_result pa = pull(&cs_srv_store_sqlite, lite);
    cs_srv_pull_result pb = pull(&cs_srv_store_pg, pg);
    cr_expect_eq(pa.cursor, pb.cursor);
    cr_expect_eq(pa.rows, pb.rows);
    cr_expect_eq(pa.checksum, pb.checksum, "the same state has the same checksum");
    cr_expect_eq(version(&cs_srv_store_sqlite, lite), version(&cs_srv_store_pg, pg));
    cs_srv_pull_result_free(&pa);
    cs_srv_pull_result_free(&pb);
    cs_srv_store_sqlite.close(lite);
    cs_srv_store_pg.close(pg);
    cstack_close(dev);
    free(dir);
    free(url);
}

Test(pg_store, two_stores_on_one_database_see_each_others_pushes_with_gap_free_versions)
{
    char *url = t_pg_database();
    cstack *dev = t_open_mem(SCHEMA);
    const cstack_schema *s = cstack_schema_of(dev);
    cs_srv_store *one = open_store(&cs_srv_store_pg, s, url);
    cs_srv_store *two = open_store(&cs_srv_store_pg, s, url);
    int64_t since = 0, last = version(&cs_srv_store_pg, one);
    for (int i = 1; i <= 6; i++) {
        create(dev, i, "x");
        cs_srv_store *st = i % 2 ? one : two;
        cs_srv_push_result r = push(&cs_srv_store_pg, st, dev, since, i);
        cr_expect_eq(r.cursor, last + 1, "push %d: version %lld after %lld", i,
                     (long long)r.cursor, (long long)last);
        last = r.cursor;
        int64_t dummy = 0;
        cr_assert_eq(cstack_sync_version(dev, &dummy), 0);
        since = dummy;
    }
    cs_srv_pull_result p1 = pull(&cs_srv_store_pg, one);
    cs_srv_pull_result p2 = pull(&cs_srv_store_pg, two);
    cr_expect_eq(p1.rows, 6);
    cr_expect_eq(p2.rows, 6, "a push through one store reaches a pull through the other");
    cr_expect_eq(p1.cursor, last);
    cr_expect_eq(p2.cursor, last);
    cr_expect_eq(p1.checksum, p2.checksum);
    cs_srv_pull_result_free(&p1);
    cs_srv_pull_result_free(&p2);
    cs_srv_store_pg.close(one);
    cs_srv_store_pg.close(two);
    /* A store opened later loads it all from PostgreSQL. */
    cs_srv_store *three = open_store(&cs_srv_store_pg, s, url);
    cs_srv_pull_result p3 = pull(&cs_srv_store_pg, three);
    cr_expect_eq(p3.rows, 6);
    cr_expect_eq(p3.cursor, last);
    cs_srv_pull_result_free(&p3);
    cs_srv_store_pg.close(three);
    cstack_close(dev);
    free(url);
}

/* The working-copy directories in `dir`; *name gets one of them. */
static int copies_in(const char *dir, char *name, size_t cap)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "cstack-pg-", 10) == 0) {
            n++;
            if (name)
                snprintf(name, cap, "%s", e->d_name);
        }
    closedir(d);
    return n;
}

Test(pg_store, a_killed_process_loses_no_acknowledged_push)
{
    char *url = t_pg_database();
    /* The working copies go to a directory of this test's own. */
    char *tmp = t_tmpdir();
    cr_assert_eq(setenv("TMPDIR", tmp, 1), 0);
    cstack *dev = t_open_mem(SCHEMA);
    for (int i = 1; i <= 50; i++)
        create(dev, i, "kept");
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The child: push, say so, and wait to be killed. */
        cs_srv_store *st = NULL;
        cs_srv_err err = {0};
        void *cs = NULL;
        size_t len = 0;
        int64_t cursor = 0;
        if (cs_srv_store_pg.open(cstack_schema_of(dev), url, NULL, &st, &err) ||
            cstack_changes_export(dev, 0, &cs, &len, &cursor))
            _exit(1);
        char batch[64];
        snprintf(batch, sizeof batch, "%s:1", SITE);
        t_restamp(cs, len, SITE);
        cs_srv_push req = {&USER, SITE, batch, cs, len};
        cs_srv_push_result res;
        if (cs_srv_store_pg.push(st, &req, &res, &err))
            _exit(1);
        if (write(fds[1], "k", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    char c = 0;
    cr_assert_eq(read(fds[0], &c, 1), 1, "the child acknowledged its push");
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    char dead[256] = "", live[256] = "";
    cr_assert_eq(copies_in(tmp, dead, sizeof dead), 1, "the killed store left its working copy");
    cs_srv_store *st = open_store(&cs_srv_store_pg, cstack_schema_of(dev), url);
    cs_srv_pull_result p = pull(&cs_srv_store_pg, st);
    cr_expect_eq(p.rows, 50, "every acknowledged row is there after the kill");
    cs_srv_pull_result_free(&p);
    cr_expect_eq(copies_in(tmp, live, sizeof live), 1,
                 "a store that opens removes the copy of the dead one and keeps its own");
    cr_expect_neq(strcmp(dead, live), 0, "%s was not removed", dead);
    cs_srv_store_pg.close(st);
    cr_expect_eq(copies_in(tmp, NULL, 0), 0, "a closed store removes its working copy");
    unsetenv("TMPDIR");
    free(tmp);
    cstack_close(dev);
    free(url);
}

Test(pg_store, a_failed_connection_names_the_target_without_its_password)
{
    cstack *dev = t_open_mem(SCHEMA);
    cs_srv_store *st = NULL;
    cs_srv_err err = {0};
    int rc = cs_srv_store_pg.open(cstack_schema_of(dev),
                                  "postgresql://cstack:s3cret@127.0.0.1:1/nowhere", NULL, &st,
                                  &err);
    cr_expect_neq(rc, 0);
    cr_expect_null(st);
    cr_expect(strstr(err.message, "127.0.0.1:1/nowhere") != NULL, "%s", err.message);
    cr_expect(strstr(err.message, "s3cret") == NULL, "%s", err.message);
    char safe[128];
    cs_pg_target_safe("host=h password=pw dbname=d", safe, sizeof safe);
    cr_expect_str_eq(safe, "host=h password=*** dbname=d");
    cstack_close(dev);
}

static void pg_run(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* One push of `n` new rows into the store; its time in ms. */
static double timed_push(const cs_srv_store_ops *ops, cs_srv_store *st, cstack *dev)
{
    double t0 = now_ms();
    cs_srv_push_result r = push(ops, st, dev, 0, 1);
    cr_assert_eq(r.rows, 10000);
    return now_ms() - t0;
}

static int64_t pg_count(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
    int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return n;
}

Test(pg_store, a_push_of_ten_thousand_rows_is_written_in_batches)
{
    char *url = t_pg_database();
    char *dir = t_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/server.db", dir);
    cstack *dev = t_open_mem(SCHEMA);
    cr_assert_eq(cstack_begin(dev), 0);
    for (int i = 1; i <= 10000; i++)
        create(dev, i, "bulk");
    cr_assert_eq(cstack_commit(dev), 0);
    const cstack_schema *s = cstack_schema_of(dev);
    cs_srv_store *lite = open_store(&cs_srv_store_sqlite, s, path);
    cs_srv_store *pg = open_store(&cs_srv_store_pg, s, url);
    double t_lite = timed_push(&cs_srv_store_sqlite, lite, dev);
    /* Statements PostgreSQL ran for the push, from its statistics. */
    int64_t before = pg_count(url, "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                   "WHERE datname = current_database()");
    double t_pg = timed_push(&cs_srv_store_pg, pg, dev);
    fprintf(stderr, "push of 10,000 rows: SQLite store %.0f ms, PostgreSQL store %.0f ms\n",
            t_lite, t_pg);
    cr_expect_eq(pg_count(url, "SELECT count(*) FROM \"Item\""), 10000);
    int64_t after = pg_count(url, "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                  "WHERE datname = current_database()");
    cr_expect_lt(after - before, 50, "%lld transactions for one push",
                 (long long)(after - before));
    cs_srv_store_sqlite.close(lite);
    cs_srv_store_pg.close(pg);
    cstack_close(dev);
    free(dir);
    free(url);
}

Test(pg_store, rows_another_client_writes_reach_pulls_with_a_new_version)
{
    char *url = t_pg_database();
    cstack *dev = t_open_mem(SCHEMA);
    cs_srv_store *st = open_store(&cs_srv_store_pg, cstack_schema_of(dev), url);
    int64_t v0 = version(&cs_srv_store_pg, st);
    pg_run(url, "INSERT INTO \"Item\"(id, title) VALUES (41, 'from the backend')");
    int64_t v = v0;
    for (int i = 0; i < 100 && v == v0; i++) {
        usleep(50 * 1000);
        v = version(&cs_srv_store_pg, st);
    }
    cr_assert_gt(v, v0, "the listener applied the backend's write");
    cs_srv_pull_result p = pull(&cs_srv_store_pg, st);
    cr_expect_eq(p.rows, 1);
    cs_srv_pull_result_free(&p);
    /* A second server started now finds it too. */
    cs_srv_store *two = open_store(&cs_srv_store_pg, cstack_schema_of(dev), url);
    cs_srv_pull_result p2 = pull(&cs_srv_store_pg, two);
    cr_expect_eq(p2.rows, 1);
    cr_expect_eq(p2.cursor, v);
    cs_srv_pull_result_free(&p2);
    cs_srv_store_pg.close(two);
    cs_srv_store_pg.close(st);
    cstack_close(dev);
    free(url);
}

Test(pg_store, a_new_schema_migrates_the_database_and_a_destructive_one_is_refused)
{
    char *url = t_pg_database();
    cstack *dev = t_open_mem(SCHEMA);
    create(dev, 1, "before");
    cs_srv_store *st = open_store(&cs_srv_store_pg, cstack_schema_of(dev), url);
    push(&cs_srv_store_pg, st, dev, 0, 1);
    cs_srv_store_pg.close(st);
    cstack_schema *v2 = t_schema("model Item {\n"
                                 "  id    Int    @id\n"
                                 "  title String\n"
                                 "  qty   Int?\n"
                                 "  note  String?\n"
                                 "  @@allow('all', true)\n"
                                 "}\n");
    st = open_store(&cs_srv_store_pg, v2, url);
    cs_srv_pull_result p = pull(&cs_srv_store_pg, st);
    cr_expect_eq(p.rows, 1, "the rows survive an additive migration");
    cs_srv_pull_result_free(&p);
    cs_srv_store_pg.close(st);
    cstack_schema *v3 = t_schema("model Item {\n"
                                 "  id    Int    @id\n"
                                 "  qty   Int?\n"
                                 "  note  String?\n"
                                 "  @@allow('all', true)\n"
                                 "}\n");
    cs_srv_err err = {0};
    st = NULL;
    cr_expect_neq(cs_srv_store_pg.open(v3, url, NULL, &st, &err), 0);
    cr_expect_null(st);
    cr_expect(strstr(err.message, "title") != NULL, "names the dropped field: %s", err.message);
    st = open_store(&cs_srv_store_pg, v2, url);
    cs_srv_pull_result p2 = pull(&cs_srv_store_pg, st);
    cr_expect_eq(p2.rows, 1, "a refused migration changed nothing");
    cs_srv_pull_result_free(&p2);
    cs_srv_store_pg.close(st);
    cstack_schema_free(v2);
    cstack_schema_free(v3);
    cstack_close(dev);
    free(url);
}

Test(pg_store, a_store_that_missed_pruned_entries_reloads_and_a_lost_connection_recovers)
{
    char *url = t_pg_database();
    cstack *dev = t_open_mem(SCHEMA);
    const cstack_schema *s = cstack_schema_of(dev);
    cs_srv_store *one = open_store(&cs_srv_store_pg, s, url);
    cs_srv_store *two = open_store(&cs_srv_store_pg, s, url);
    /* Two cannot catch up while the test holds its copy's write lock. */
    cr_assert_eq(cs_write_lock(two->db), 0);
    create(dev, 1, "a");
    cs_srv_push_result r1 = push(&cs_srv_store_pg, one, dev, 0, 1);
    create(dev, 2, "b");
    push(&cs_srv_store_pg, one, dev, r1.cursor, 2);
    pg_run(url, "DELETE FROM _cstack_pg_log WHERE seq = (SELECT min(seq) FROM _cstack_pg_log)");
    cs_write_unlock(two->db);
    cs_srv_pull_result p = pull(&cs_srv_store_pg, two);
    cr_expect_eq(p.rows, 2, "the copy reloaded what the pruned entry held");
    cs_srv_pull_result_free(&p);
    /* PostgreSQL ends every session of the stores: the next request is
     * refused as unavailable, and one a second later reconnects. */
    pg_run(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()");
    create(dev, 3, "c");
    void *cs = NULL;
    size_t len = 0;
    int64_t cursor = 0;
    cr_assert_eq(cstack_changes_export(dev, 0, &cs, &len, &cursor), 0);
    t_restamp(cs, len, SITE);
    cs_srv_push req = {&USER, SITE, "batch:3", cs, len};
    cs_srv_push_result res;
    cs_srv_err err = {0};
    cr_expect_neq(cs_srv_store_pg.push(one, &req, &res, &err), 0);
    cr_expect_eq(err.kind, CS_SRV_UNAVAILABLE, "%s", err.message);
    usleep(1100 * 1000);
    cr_expect_eq(cs_srv_store_pg.push(one, &req, &res, &err), 0, "%s", err.message);
    cstack_free(cs);
    cs_srv_pull_result ok = pull(&cs_srv_store_pg, two);
    cr_expect_eq(ok.rows, 3);
    cs_srv_pull_result_free(&ok);
    cs_srv_store_pg.close(one);
    cs_srv_store_pg.close(two);
    cstack_close(dev);
    free(url);
}
