/* test_apply_new.c -- the merge's short way for rows that are new to the
 * replica (sync/apply.c: the clock row is inserted unless it exists and the
 * row is inserted without being loaded first) gives the same rows as the
 * general way, including when its guess is wrong. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"
#include "sync_support.h"

static const char *SCHEMA = "model Item {\n"
                            "  id   Int    @id\n"
                            "  name String\n"
                            "  qty  Int?\n"
                            "}\n";

static void ok(cstack *db, int rc, const char *what)
{
    cr_assert_eq(rc, CSTACK_OK, "%s: %s (%s)", what, cstack_errname(rc), cstack_errmsg(db));
}

static void item(cstack *db, int64_t id, const char *name, int64_t qty)
{
    ok(db,
       cstack_create(db, "Item", DATA(FV("id", I(id)), FV("name", T(name)), FV("qty", I(qty))),
                     NULL),
       "create Item");
}

static cstack_apply_stats sync_all(cstack *src, cstack *dst)
{
    cstack_apply_stats st = {0};
    cstack *bad = NULL;
    int rc = ts_sync(src, dst, 0, NULL, &st, &bad);
    cr_assert_eq(rc, CSTACK_OK, "sync: %s (%s)", cstack_errname(rc),
                 bad ? cstack_errmsg(bad) : "");
    return st;
}

static void same(cstack *a, cstack *b)
{
    char *da = ts_dump(a), *db_ = ts_dump(b);
    cr_assert_not_null(da);
    cr_assert_not_null(db_);
    int eq = strcmp(da, db_) == 0;
    if (!eq)
        cr_log_error("replicas differ:\n--- a\n%s--- b\n%s", da, db_);
    free(da);
    free(db_);
    cr_assert(eq, "replicas must hold the same rows");
}

Test(apply_new, rows_alternating_between_new_and_known_merge_as_row_by_row)
{
    cstack *a = t_open_mem(SCHEMA), *b = t_open_mem(SCHEMA);
    for (int64_t id = 2; id <= 8; id += 2)
        item(a, id, "old", id);
    sync_all(a, b);
    for (int64_t id = 1; id <= 9; id++) {
        if (id % 2)
            item(a, id, "new", id);
        else
            ok(a, cstack_update(a, "Item", DATA(FV("id", I(id))), DATA(FV("name", T("upd"))), NULL),
               "update Item");
    }
    cstack_apply_stats st = sync_all(a, b);
    cr_expect_eq(st.rows, 9);
    same(a, b);
    st = sync_all(a, b);
    cr_expect_eq(st.won, 0, "a second merge of the same changes wins nothing");
    same(a, b);
    cstack_close(a);
    cstack_close(b);
}

Test(apply_new, a_row_written_behind_cstacks_back_is_updated_not_refused)
{
    char *dir = t_tmpdir();
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/b.db", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    free(dir);
    cstack_schema *s = t_schema(SCHEMA);
    cstack *a = t_open_mem(SCHEMA), *b = NULL;
    cr_assert_eq(cstack_open(s, path, NULL, &b), CSTACK_OK);
    ok(b, cstack_bootstrap(b, NULL), "bootstrap");
    /* Another program writes a row the replica's clock does not know. */
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "INSERT INTO \"Item\"(id, name, qty) VALUES (1, 'theirs', 7)",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(other));
    sqlite3_close(other);
    ok(a, cstack_create(a, "Item", DATA(FV("id", I(1)), FV("name", T("ours"))), NULL),
       "create Item");
    item(a, 2, "two", 2);
    cstack_apply_stats st = sync_all(a, b);
    cr_expect_eq(st.rows, 2);
    int64_t n = 0;
    ok(b, cstack_count(b, "Item", NULL, &n), "count");
    cr_expect_eq(n, 2);
    cstack_row *row = NULL;
    ok(b, cstack_find_unique(b, "Item", DATA(FV("id", I(1))), NULL, 0, &row), "find");
    cr_assert_not_null(row);
    cstack_value name;
    ok(b, cstack_row_get(row, "name", &name), "name");
    cr_expect_eq(name.u.s.n, 4);
    cr_expect(memcmp(name.u.s.p, "ours", 4) == 0, "the merged column wins over the file's");
    cstack_row_free(row);
    cstack_close(a);
    cstack_close(b);
    cstack_schema_free(s);
    if (system(cmd) != 0)
        cr_log_warn("could not remove the database of %s", path);
}
