/* test_pg_store.c -- the server store on PostgreSQL (store_pg*.c,
 * docs/postgres.md), below HTTP, on a fresh database of the test cluster:
 * it answers pushes and pulls as the SQLite store does (same cursors, rows
 * and checksums), two stores on one database see each other's pushes with
 * gap-free versions, a store restarted (or a new one) loads the state, and a
 * process killed without closing loses no acknowledged push. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

Test(pg_store, a_killed_process_loses_no_acknowledged_push)
{
    char *url = t_pg_database();
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
    cs_srv_store *st = open_store(&cs_srv_store_pg, cstack_schema_of(dev), url);
    cs_srv_pull_result p = pull(&cs_srv_store_pg, st);
    cr_expect_eq(p.rows, 50, "every acknowledged row is there after the kill");
    cs_srv_pull_result_free(&p);
    cs_srv_store_pg.close(st);
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
