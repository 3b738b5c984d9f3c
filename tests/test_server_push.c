/* test_server_push.c -- the server store's push path, below HTTP: one push
 * is one write transaction (batch lookup, merge, batch record, cursor), and
 * a retried batch is applied once. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store_int.h"
#include "support.h"

static const char *SCHEMA = "model Item {\n"
                            "  id    Int    @id\n"
                            "  title String\n"
                            "  @@allow('all', true)\n"
                            "}\n";

static const char SITE[] = "0123456789abcdef0123456789abcdef";

typedef struct fixture {
    cstack *dev;
    cs_srv_store *st;
    cs_auth user;
    int begins; /* transactions begun on the server's write connection */
} fixture;

static int count_begins(unsigned type, void *ctx, void *stmt, void *sql)
{
    (void)type;
    (void)stmt;
    if (strncmp(sql, "BEGIN", 5) == 0)
        ((fixture *)ctx)->begins++;
    return 0;
}

static void setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->dev = t_open_mem(SCHEMA);
    char *dir = t_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/server.db", dir);
    free(dir);
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.open(cstack_schema_of(f->dev), path, NULL, &f->st, &err), 0,
                 "%s", err.message);
    f->user = (cs_auth){.signed_in = true, .sub = "u1"};
    cr_assert_eq(cs_write_lock(f->st->db), 0);
    sqlite3_trace_v2(cs_write_conn(f->st->db)->db, SQLITE_TRACE_STMT, count_begins, f);
    cs_write_unlock(f->st->db);
}

static void teardown(fixture *f)
{
    cr_assert_eq(cs_write_lock(f->st->db), 0);
    sqlite3_trace_v2(cs_write_conn(f->st->db)->db, 0, NULL, NULL);
    cs_write_unlock(f->st->db);
    cs_srv_store_sqlite.close(f->st);
    cstack_close(f->dev);
}

static void create(fixture *f, int id)
{
    cr_assert_eq(cstack_create(f->dev, "Item", DATA(FV("id", I(id)), FV("title", T("x"))), NULL), 0,
                 "%s", cstack_errmsg(f->dev));
}

/* Pushes everything the device has under `batch`. */
static cs_srv_push_result push(fixture *f, const char *batch)
{
    void *cs = NULL;
    size_t len = 0;
    int64_t cursor = 0;
    cr_assert_eq(cstack_changes_export(f->dev, 0, &cs, &len, &cursor), 0, "%s",
                 cstack_errmsg(f->dev));
    cs_srv_push req = {&f->user, SITE, batch, cs, len};
    cs_srv_push_result res;
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.push(f->st, &req, &res, &err), 0, "%s", err.message);
    cstack_free(cs);
    return res;
}

static int64_t server_rows(fixture *f)
{
    int64_t n = -1;
    cr_assert_eq(cstack_count(f->st->db, "Item", NULL, &n), 0);
    return n;
}

Test(server_push, a_push_is_one_write_transaction_with_its_batch_record_and_cursor)
{
    fixture f;
    setup(&f);
    create(&f, 1);
    create(&f, 2);
    cs_srv_push_result r = push(&f, "b:1");
    cr_expect_not(r.duplicate);
    cr_expect_eq(r.rows, 2);
    cr_expect_gt(r.cursor, 0);
    cr_expect_eq(f.begins, 1, "one push took %d write transactions", f.begins);
    cr_expect_eq(server_rows(&f), 2);
    teardown(&f);
}

Test(server_push, a_retried_batch_is_applied_once_and_answered_in_one_transaction)
{
    fixture f;
    setup(&f);
    create(&f, 1);
    cs_srv_push_result first = push(&f, "b:1");
    int64_t version = 0;
    cr_assert_eq(cs_srv_store_sqlite.version(f.st, &version), 0);
    f.begins = 0;
    cs_srv_push_result again = push(&f, "b:1");
    cr_expect(again.duplicate);
    cr_expect_eq(again.rows, 0, "a duplicate is not merged");
    cr_expect_eq(again.cursor, first.cursor);
    cr_expect_eq(f.begins, 1);
    int64_t after = 0;
    cr_assert_eq(cs_srv_store_sqlite.version(f.st, &after), 0);
    cr_expect_eq(after, version, "a duplicate does not use a version");
    cr_expect_eq(server_rows(&f), 1);
    teardown(&f);
}

Test(server_push, a_batch_that_changes_nothing_is_recorded_in_its_one_transaction)
{
    fixture f;
    setup(&f);
    create(&f, 1);
    push(&f, "b:1");
    /* The same rows again under a new batch id: the merge wins nothing. */
    f.begins = 0;
    cs_srv_push_result r = push(&f, "b:2");
    cr_expect_not(r.duplicate);
    cr_expect_eq(r.won, 0);
    cr_expect_eq(f.begins, 1, "a push that changes nothing took %d transactions", f.begins);
    cr_expect(push(&f, "b:2").duplicate, "the batch was recorded");
    teardown(&f);
}
