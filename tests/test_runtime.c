/* test_runtime.c -- file databases: persistence, migrations on open, threads
 * sharing one runtime, the raw escape hatch. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"
#include "support.h"


static const char *V1 = "model Item {\n"
                        "  id    Int    @id\n"
                        "  name  String\n"
                        "  price Decimal\n"
                        "}\n";

static const char *V2 = "model Item {\n"
                        "  id    Int    @id\n"
                        "  name  String\n"
                        "  price Decimal\n"
                        "  note  String?\n"
                        "  qty   Int    @default(1)\n"
                        "  @@index([name])\n"
                        "}\n"
                        "model Tag {\n"
                        "  id Int @id\n"
                        "}\n";

static const char *V3_DROPPED = "model Item {\n"
                                "  id    Int    @id\n"
                                "  price Decimal\n"
                                "}\n";

static cstack *open_file(const char *schema_src, const char *path, int *rc_out, char **report)
{
    cstack_schema *s = t_schema(schema_src);
    cstack *db = NULL;
    int rc = cstack_open(s, path, NULL, &db);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "open: %s", cstack_errmsg(db));
    rc = cstack_bootstrap(db, report);
    if (rc_out)
        *rc_out = rc;
    else
        cr_assert_eq(rc, 0, "bootstrap: %s", cstack_errmsg(db));
    return db;
}

static char *db_path(void)
{
    char *dir = t_tmpdir();
    char *p = malloc(strlen(dir) + 16);
    sprintf(p, "%s/app.db", dir);
    free(dir);
    return p;
}

Test(runtime, data_persists_and_migrations_apply_in_place)
{
    char *path = db_path();
    char *report = NULL;
    cstack *db = open_file(V1, path, NULL, &report);
    cr_expect(strstr(report, "Item"), "report: %s", report);
    cstack_free(report);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "item%d", i);
        cr_assert_eq(cstack_create(db, "Item",
                                   DATA(FV("id", cstack_v_int(i)), FV("name", T(name)),
                                        FV("price", T("1.10"))),
                                   NULL),
                     0, "%s", cstack_errmsg(db));
    }
    cstack_close(db);

    /* Bootstrapping the same schema again changes nothing. */
    db = open_file(V1, path, NULL, &report);
    cr_expect_str_eq(report, "");
    cstack_free(report);
    cstack_close(db);

    db = open_file(V2, path, NULL, &report);
    cr_expect(strstr(report, "note"), "report: %s", report);
    cr_expect(strstr(report, "Tag"), "report: %s", report);
    cstack_free(report);
    int64_t n = 0;
    cr_expect_eq(cstack_count(db, "Item", NULL, &n), 0);
    cr_expect_eq(n, 5, "every row kept");
    cstack_row *r = NULL;
    cr_assert_eq(cstack_find_unique(db, "Item", DATA(FV("id", cstack_v_int(3))), NULL, 0, &r), 0);
    char *json = cstack_row_json(r);
    cr_expect_str_eq(json,
                     "{\"id\":3,\"name\":\"item3\",\"price\":\"1.10\",\"note\":null,\"qty\":1}");
    cstack_free(json);
    cstack_row_free(r);
    cstack_close(db);

    int rc = 0;
    db = open_file(V3_DROPPED, path, &rc, NULL);
    cr_expect_eq(rc, CSTACK_EMIGRATION);
    cr_expect(strstr(cstack_errmsg(db), "Item.name"), "message: %s", cstack_errmsg(db));
    cstack_close(db);

    /* The refused migration left the database as it was. */
    db = open_file(V2, path, NULL, NULL);
    cr_expect_eq(cstack_count(db, "Item", NULL, &n), 0);
    cr_expect_eq(n, 5);
    cstack_close(db);
    free(path);
}

typedef struct worker {
    cstack *db;
    int id;
    int failures;
} worker;

static void *write_and_read(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 200; i++) {
        int key = w->id * 1000 + i;
        char name[32];
        snprintf(name, sizeof name, "w%d-%d", w->id, i);
        if (cstack_create(w->db, "Item",
                          DATA(FV("id", cstack_v_int(key)), FV("name", T(name)),
                               FV("price", T("2.5"))),
                          NULL) != 0)
            w->failures++;
        cstack_row *r = NULL;
        if (cstack_find_unique(w->db, "Item", DATA(FV("id", cstack_v_int(key))), NULL, 0, &r) !=
                0 ||
            !r)
            w->failures++;
        cstack_row_free(r);
        if (i % 50 == 0) {
            int64_t n;
            if (cstack_count(w->db, "Item", NULL, &n) != 0)
                w->failures++;
        }
    }
    return NULL;
}

Test(runtime, threads_share_one_runtime)
{
    char *path = db_path();
    cstack *db = open_file(V1, path, NULL, NULL);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){db, i, 0};
        pthread_create(&th[i], NULL, write_and_read, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(w[i].failures, 0, "worker %d: %s", i, cstack_errmsg(db));
    }
    int64_t n = 0;
    cstack_count(db, "Item", NULL, &n);
    cr_expect_eq(n, 800);
    cstack_close(db);
    free(path);
}

static int raw_insert(sqlite3 *conn, void *ctx)
{
    return sqlite3_exec(conn, "INSERT INTO \"Item\"(id, name, price) VALUES (99, 'raw', '3.0')",
                        NULL, NULL, NULL);
}

Test(runtime, escape_hatch_runs_on_the_write_connection)
{
    cstack *db = t_open_mem(V1);
    cr_expect_eq(cstack_with_sqlite(db, raw_insert, NULL), SQLITE_OK);
    cstack_row *r = NULL;
    cr_assert_eq(cstack_find_unique(db, "Item", DATA(FV("id", cstack_v_int(99))), NULL, 0, &r), 0);
    cr_assert_not_null(r);
    cstack_row_free(r);
    cstack_close(db);
}

Test(runtime, open_reports_unopenable_paths)
{
    cstack_schema *s = t_schema(V1);
    cstack *db = NULL;
    int rc = cstack_open(s, "/nonexistent-dir/x/y.db", NULL, &db);
    cr_expect_neq(rc, 0);
    cr_expect(strstr(cstack_errmsg(db), "/nonexistent-dir"), "%s", cstack_errmsg(db));
    cstack_close(db);
    cstack_schema_free(s);
    cstack_close(NULL);
}
