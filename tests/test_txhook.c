/* test_txhook.c -- the store's transaction hook (store/store.h,
 * cs_store_set_txhook): a mirror of the store sees every outermost write
 * transaction begin, every row it changes in every table (merges and the
 * sync engine's own tables included), its commit, and can refuse both the
 * begin and the commit. */
/* The preupdate functions are declared only with this (as the library is
 * built). */
#define SQLITE_ENABLE_PREUPDATE_HOOK
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "support.h"

static const char *SCHEMA = "model Item {\n"
                            "  id   Int    @id\n"
                            "  name String\n"
                            "}\n";

typedef struct seen {
    int begins, commits, ends, committed;
    unsigned flags;
    int item_rows;   /* rows of the app table */
    int other_rows;  /* rows of every other table */
    int64_t last_id; /* the key of the last Item row, read in the hook */
    int fail_begin, fail_commit;
} seen;

static int on_begin(void *ctx, cstack *db, unsigned flags)
{
    (void)db;
    seen *s = ctx;
    s->begins++;
    s->flags = flags;
    return s->fail_begin;
}

static void on_row(void *ctx, sqlite3 *conn, int op, const char *table, sqlite3_int64 key1,
                   sqlite3_int64 key2)
{
    (void)key1;
    (void)key2;
    seen *s = ctx;
    if (strcmp(table, "Item") != 0) {
        s->other_rows++;
        return;
    }
    s->item_rows++;
    sqlite3_value *v = NULL;
    int rc = op == SQLITE_DELETE ? sqlite3_preupdate_old(conn, 0, &v)
                                 : sqlite3_preupdate_new(conn, 0, &v);
    if (rc != SQLITE_OK)
        return;
    s->last_id = sqlite3_value_int64(v);
}

static int on_commit(void *ctx, cstack *db)
{
    (void)db;
    seen *s = ctx;
    s->commits++;
    return s->fail_commit;
}

static void on_end(void *ctx, cstack *db, bool committed)
{
    (void)db;
    seen *s = ctx;
    s->ends++;
    s->committed += committed;
}

static const cs_txhook HOOK = {on_begin, on_row, on_commit, on_end};

static void create(cstack *db, int64_t id, int want)
{
    int rc = cstack_create(db, "Item", DATA(FV("id", I(id)), FV("name", T("x"))), NULL);
    cr_assert_eq(rc, want, "create %lld: %s (%s)", (long long)id, cstack_errname(rc),
                 cstack_errmsg(db));
}

static int64_t count(cstack *db)
{
    int64_t n = -1;
    cr_assert_eq(cstack_count(db, "Item", NULL, &n), CSTACK_OK);
    return n;
}

Test(txhook, sees_each_write_transaction_and_every_row_it_changes)
{
    cstack *db = t_open_mem(SCHEMA);
    seen s = {0};
    cs_store_set_txhook(db, &HOOK, &s);
    create(db, 7, CSTACK_OK);
    cr_assert_eq(s.begins, 1);
    cr_assert_eq(s.commits, 1);
    cr_assert_eq(s.ends, 1);
    cr_assert_eq(s.committed, 1);
    cr_assert_eq(s.item_rows, 1);
    cr_assert_eq(s.last_id, 7, "the row hook reads the key of the row written");
    cr_assert_gt(s.other_rows, 0, "sync's own record of the write is a row change too");
    /* A nested level is no new transaction. */
    cr_assert_eq(cs_write_begin(db), 0);
    create(db, 8, CSTACK_OK);
    cr_assert_eq(cs_write_end(db, 0), 0);
    cr_assert_eq(s.begins, 2);
    cr_assert_eq(s.commits, 2);
    cr_assert_eq(s.item_rows, 2);
    cstack_close(db);
}

static int delete_all(sqlite3 *conn, void *ctx)
{
    (void)ctx;
    return sqlite3_exec(conn, "DELETE FROM Item WHERE id > 0", NULL, NULL, NULL);
}

Test(txhook, sees_the_rows_of_merge_scopes_which_capture_ignores)
{
    cstack *db = t_open_mem(SCHEMA);
    create(db, 1, CSTACK_OK);
    seen s = {0};
    cs_store_set_txhook(db, &HOOK, &s);
    cr_assert_eq(cs_write_begin_opts(db, CS_WRITE_MERGE), 0);
    cr_assert_eq(sqlite3_exec(cs_write_conn(db)->db, "INSERT INTO Item(id, name) VALUES (5, 'm')",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    cr_assert_eq(cs_write_end(db, 0), 0);
    cr_assert_eq(s.flags, CS_WRITE_MERGE);
    cr_assert_eq(s.item_rows, 1);
    cr_assert_eq(s.last_id, 5);
    cr_assert_eq(cstack_with_sqlite(db, delete_all, NULL), 0);
    cr_assert_eq(s.item_rows, 3, "a delete of two rows is two row changes");
    cstack_close(db);
}

Test(txhook, a_refused_begin_or_commit_rolls_the_transaction_back)
{
    cstack *db = t_open_mem(SCHEMA);
    seen s = {.fail_begin = CSTACK_EBUSY};
    cs_store_set_txhook(db, &HOOK, &s);
    create(db, 1, CSTACK_EBUSY);
    cr_assert_eq(s.commits, 0);
    cr_assert_eq(s.ends, 0, "a transaction that never began does not end");
    s.fail_begin = 0;
    s.fail_commit = CSTACK_EIO;
    create(db, 2, CSTACK_EIO);
    cr_assert_eq(s.ends, 1);
    cr_assert_eq(s.committed, 0);
    cs_store_set_txhook(db, NULL, NULL);
    cr_assert_eq(count(db), 0, "neither write reached the table");
    create(db, 3, CSTACK_OK);
    cr_assert_eq(count(db), 1);
    cr_assert_eq(s.begins, 2, "a removed hook sees nothing");
    cstack_close(db);
}
