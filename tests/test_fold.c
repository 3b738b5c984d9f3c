/* test_fold.c -- folding captured writes into the clock tables
 * (src/sync/capture.c, docs/sync.md "Capture"): a small transaction is
 * logged and folded at the next sync call, a large one as it commits; runs
 * of inserts are written many rows per statement; either way the log is
 * folded in version order and the records of one transaction in their
 * order, so the clock rows are what folding one record at a time gives. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "sync_support.h"

static const char *SCHEMA = "model Item {\n"
                            "  id    Int    @id\n"
                            "  title String\n"
                            "  qty   Int    @default(0)\n"
                            "}\n";

/* More rows than one transaction may capture before it is folded as it
 * commits (16 KiB of records, a few bytes each). */
#define BIG 6000

static cstack *reps[4];
static size_t nreps;

static cstack *replica(void)
{
    cr_assert_lt(nreps, sizeof reps / sizeof reps[0]);
    cstack *db = t_open_mem(SCHEMA);
    reps[nreps++] = db;
    return db;
}

static void close_all(void)
{
    while (nreps > 0)
        cstack_close(reps[--nreps]);
}

TestSuite(fold, .fini = close_all);

static void ok(cstack *db, int rc, const char *what)
{
    cr_assert_eq(rc, CSTACK_OK, "%s: %s (%s)", what, cstack_errname(rc), cstack_errmsg(db));
}

static void create(cstack *db, int64_t id, const char *title)
{
    ok(db, cstack_create(db, "Item", DATA(FV("id", I(id)), FV("title", T(title))), NULL),
       "create");
}

static void set_title(cstack *db, int64_t id, const char *title)
{
    ok(db, cstack_update(db, "Item", DATA(FV("id", I(id))), DATA(FV("title", T(title))), NULL),
       "update");
}

static void delete(cstack *db, int64_t id)
{
    ok(db, cstack_delete(db, "Item", DATA(FV("id", I(id))), NULL), "delete");
}

/* One integer from SQL run on the write connection. */
typedef struct query {
    const char *sql;
    int64_t bind; /* ?1 */
    int64_t value;
} query;

static int run_query(sqlite3 *conn, void *ctx)
{
    query *q = ctx;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn, q->sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(st, 1, q->bind);
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    q->value = rc ? -1 : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static int64_t sql_int(cstack *db, const char *sql, int64_t bind)
{
    query q = {sql, bind, -1};
    cr_assert_eq(cstack_with_sqlite(db, run_query, &q), 0, "%s: %s", sql, cstack_errmsg(db));
    return q.value;
}

static int64_t causal_length(cstack *db, int64_t id)
{
    return sql_int(db, "SELECT coalesce((SELECT _cstack_cl FROM _cstack_clk_Item WHERE id = ?1), 0)",
                   id);
}

static int64_t logged(cstack *db)
{
    return sql_int(db, "SELECT count(*) FROM _cstack_txlog", 0);
}

static int64_t pending(cstack *db)
{
    int64_t n = -1;
    ok(db, cstack_upload_pending(db, &n), "upload_pending");
    return n;
}

static void same(cstack *a, cstack *b)
{
    char *da = ts_dump(a), *db_ = ts_dump(b);
    cr_assert_not_null(da);
    cr_assert_not_null(db_);
    int eq = strcmp(da, db_) == 0;
    free(da);
    free(db_);
    cr_assert(eq, "replicas must hold the same rows");
}

static void sync_to(cstack *src, cstack *dst)
{
    cstack *bad = NULL;
    int rc = ts_sync(src, dst, 0, NULL, NULL, &bad);
    cr_assert_eq(rc, CSTACK_OK, "sync: %s (%s)", cstack_errname(rc),
                 bad ? cstack_errmsg(bad) : "");
}

Test(fold, a_small_transaction_is_logged_until_the_next_sync_call)
{
    cstack *db = replica();
    create(db, 1, "a");
    cr_expect_eq(logged(db), 1);
    cr_expect_eq(causal_length(db, 1), 0, "no clock row before the fold");
    cr_expect_eq(pending(db), 1);
    cr_expect_eq(logged(db), 0);
    cr_expect_eq(causal_length(db, 1), 1);
}

Test(fold, a_large_transaction_is_folded_as_it_commits)
{
    cstack *db = replica();
    ok(db, cstack_begin(db), "begin");
    for (int64_t i = 1; i <= BIG; i++)
        create(db, i, "t");
    ok(db, cstack_commit(db), "commit");
    cr_expect_eq(logged(db), 0, "nothing left to fold");
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM _cstack_clk_Item WHERE _cstack_cl = 1", 0),
                 BIG, "one clock row per row, alive");
    cr_expect_eq(sql_int(db, "SELECT count(DISTINCT _cstack_ver) FROM _cstack_clk_Item", 0), 1,
                 "all under the transaction's version");
    cr_expect_eq(pending(db), 1);
    cstack *b = replica();
    sync_to(db, b);
    same(db, b);
}

Test(fold, writes_to_one_row_inside_a_run_of_inserts_fold_in_their_order)
{
    cstack *db = replica();
    ok(db, cstack_begin(db), "begin");
    for (int64_t i = 1; i <= BIG; i++) {
        create(db, i, "t");
        /* Each right after the row's insert, while it may still wait to be
         * written with the rows around it. */
        if (i == 1000)
            set_title(db, i, "updated");
        if (i == 2000) {
            delete(db, i);
            create(db, i, "again"); /* causal length 3 */
        }
        if (i == 3000)
            delete(db, i); /* a tombstone */
        if (i == 4000)
            create(db, 3000, "back"); /* the tombstone's row, re-inserted */
    }
    ok(db, cstack_commit(db), "commit");
    cr_expect_eq(causal_length(db, 1000), 1);
    cr_expect_eq(causal_length(db, 2000), 3);
    cr_expect_eq(causal_length(db, 3000), 3);
    cr_expect_eq(causal_length(db, 3001), 1);
    cr_expect_eq(causal_length(db, BIG), 1);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM _cstack_clk_Item", 0), BIG);
    cstack *b = replica();
    sync_to(db, b);
    same(db, b);
    cr_expect_eq(causal_length(b, 2000), 3);
    cr_expect_eq(causal_length(b, 3000), 3);
}

Test(fold, a_row_inserted_and_deleted_in_one_transaction_leaves_a_tombstone)
{
    cstack *db = replica();
    ok(db, cstack_begin(db), "begin");
    for (int64_t i = 1; i <= BIG; i++) {
        create(db, i, "t");
        if (i % 1000 == 7)
            delete(db, i);
    }
    ok(db, cstack_commit(db), "commit");
    cr_expect_eq(causal_length(db, 7), 2);
    cr_expect_eq(causal_length(db, 5007), 2);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM _cstack_clk_Item WHERE _cstack_cl = 2", 0), 6);
    cstack *b = replica();
    sync_to(db, b);
    same(db, b);
}

Test(fold, logged_transactions_fold_before_the_large_one_that_commits)
{
    cstack *db = replica();
    create(db, 1, "first");      /* v1, logged */
    set_title(db, 1, "second");  /* v2, logged */
    ok(db, cstack_begin(db), "begin");
    set_title(db, 1, "third");   /* v3 rewrites what v2 wrote */
    for (int64_t i = 2; i <= BIG; i++)
        create(db, i, "t");
    ok(db, cstack_commit(db), "commit");
    cr_expect_eq(logged(db), 0);
    /* v1 still holds row 1's existence and qty; v2 wrote only a title that
     * v3 replaced, so it has nothing left to upload.  Folding v3 before v2
     * would leave v2's clock on the title and three transactions pending. */
    cr_expect_eq(pending(db), 2);
    cstack *b = replica();
    sync_to(db, b);
    same(db, b);
}

Test(fold, inserts_in_random_key_order_fold_like_ordered_ones_around_other_writes)
{
    cstack *db = replica();
    ok(db, cstack_begin(db), "begin");
    /* 7919 is prime to BIG, so this visits every id once, out of order; the
     * fold writes runs of inserts sorted by key. */
    for (int64_t i = 0; i < BIG; i++) {
        int64_t id = i * 7919 % BIG + 1;
        create(db, id, "t");
        if (i == BIG / 2) {
            delete(db, id);
            create(db, id, "again"); /* causal length 3 */
            delete(db, 1 * 7919 % BIG + 1); /* an earlier row: a tombstone */
        }
    }
    ok(db, cstack_commit(db), "commit");
    cr_expect_eq(causal_length(db, BIG / 2 * 7919 % BIG + 1), 3);
    cr_expect_eq(causal_length(db, 1 * 7919 % BIG + 1), 2);
    cr_expect_eq(sql_int(db, "SELECT count(*) FROM _cstack_clk_Item WHERE _cstack_cl = 1", 0),
                 BIG - 2);
    cr_expect_eq(pending(db), 1);
    cstack *b = replica();
    sync_to(db, b);
    same(db, b);
    cr_expect_eq(causal_length(b, 1 * 7919 % BIG + 1), 2);
}
