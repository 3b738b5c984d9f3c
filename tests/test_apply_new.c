/* test_apply_new.c -- the merge's short way for rows that are new to the
 * replica (sync/apply.c: the clock row is inserted unless it exists and the
 * row is inserted without being loaded first, runs of such rows many per
 * statement) gives the same rows as the general way, including when its
 * guess is wrong.  The batches are compared with a reference merge that
 * takes every row alone (a per-row check, as a server's, turns batches
 * off): the same tables, clock rows and parked rows, byte for byte. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"
#include "support.h"
#include "sync/changeset.h"
#include "sync/sync_ext.h"
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

/* ---- many new rows per statement, against the row-by-row reference ------ */

static const char *USERS = "model User {\n"
                           "  id    Int     @id\n"
                           "  email String  @unique\n"
                           "  name  String?\n"
                           "  posts Post[]\n"
                           "}\n"
                           "model Post {\n"
                           "  id     Int    @id\n"
                           "  title  String\n"
                           "  userId Int\n"
                           "  user   User   @relation(fields: [userId], references: [id])\n"
                           "}\n";

static void user(cstack *db, int64_t id, const char *email)
{
    ok(db, cstack_create(db, "User", DATA(FV("id", I(id)), FV("email", T(email))), NULL),
       "create User");
}

static void post(cstack *db, int64_t id, int64_t owner)
{
    ok(db,
       cstack_create(db, "Post", DATA(FV("id", I(id)), FV("title", T("t")), FV("userId", I(owner))),
                     NULL),
       "create Post");
}

static int allow(void *ctx, cs_conn *c, int model, const cs_cs_value *pk, int op, int phase)
{
    (void)ctx, (void)c, (void)model, (void)pk, (void)op, (void)phase;
    return 0;
}

/* Merges a changeset with a per-row check that allows everything: merged
 * row by row, as before batches. */
static cstack_apply_stats apply_ref(cstack *db, const void *cs, size_t len)
{
    cs_apply_opts opts = {.check = allow};
    cstack_apply_stats st = {0};
    int rc = cs_write_begin_opts(db, CS_WRITE_MERGE);
    rc = rc ? rc : cs_write_end(db, cs_merge(db, cs, len, &opts, &st));
    ok(db, rc, "reference merge");
    return st;
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends every row of `table`, one line each in sorted order. */
static int dump_table(sqlite3 *conn, const char *table, ts_str *out)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", table);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    char **lines = NULL;
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ts_str line = {0};
        ts_str_put(&line, table);
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            char cell[64];
            int type = sqlite3_column_type(st, c);
            if (type == SQLITE_BLOB || type == SQLITE_TEXT) {
                const unsigned char *p =
                    type == SQLITE_BLOB ? sqlite3_column_blob(st, c) : sqlite3_column_text(st, c);
                int len = sqlite3_column_bytes(st, c);
                ts_str_put(&line, type == SQLITE_BLOB ? " x" : " t");
                for (int i = 0; i < len; i++) {
                    snprintf(cell, sizeof cell, "%02x", p[i]);
                    ts_str_put(&line, cell);
                }
                continue;
            }
            snprintf(cell, sizeof cell, " %d:%s", type, (const char *)sqlite3_column_text(st, c));
            ts_str_put(&line, type == SQLITE_NULL ? " null" : cell);
        }
        lines = realloc(lines, (n + 1) * sizeof *lines);
        lines[n++] = line.p;
    }
    sqlite3_finalize(st);
    if (n)
        qsort(lines, n, sizeof *lines, cmp_lines);
    for (size_t i = 0; i < n; i++) {
        ts_str_put(out, lines[i]);
        ts_str_put(out, "\n");
        free(lines[i]);
    }
    free(lines);
    return 0;
}

/* The model tables, the clock tables and the parked rows. */
static int dump_tables(sqlite3 *conn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn,
                           "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                           "(substr(name, 1, 8) <> '_cstack_' OR name = '_cstack_parked' OR "
                           "substr(name, 1, 12) = '_cstack_clk_') ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW)
        rc = dump_table(conn, (const char *)sqlite3_column_text(st, 0), ctx);
    sqlite3_finalize(st);
    return rc;
}

static char *tables(cstack *db)
{
    ts_str out = {0};
    ts_str_put(&out, "");
    cr_assert_eq(cstack_with_sqlite(db, dump_tables, &out), 0, "%s", cstack_errmsg(db));
    return out.p;
}

/* The batched replica holds exactly what the reference holds. */
static void same_tables(cstack *batched, cstack *ref)
{
    char *a = tables(batched), *b = tables(ref);
    int eq = strcmp(a, b) == 0;
    if (!eq)
        cr_log_error("tables differ:\n--- batched\n%s--- row by row\n%s", a, b);
    free(a);
    free(b);
    cr_assert(eq, "the batched merge must write what the row-by-row merge writes");
}

static int find_batch(sqlite3 *conn, void *ctx)
{
    const char *table = ctx;
    char head[64];
    snprintf(head, sizeof head, "INSERT INTO \"%s\" (", table);
    for (sqlite3_stmt *st = sqlite3_next_stmt(conn, NULL); st; st = sqlite3_next_stmt(conn, st)) {
        const char *sql = sqlite3_sql(st);
        if (sql && strncmp(sql, head, strlen(head)) == 0 && strstr(sql, "), ("))
            return 0;
    }
    return 1;
}

/* Whether rows of `table` were inserted many per statement. */
static bool batched(cstack *db, const char *table)
{
    return cstack_with_sqlite(db, find_batch, (void *)table) == 0;
}

/* Applies `cs` to `b` (batches) and to `ref` (row by row) and checks both
 * report and hold the same. */
static cstack_apply_stats apply_both(cstack *b, cstack *ref, const void *cs, size_t len)
{
    cstack_apply_stats st = {0};
    ok(b, cstack_changes_apply(b, cs, len, &st), "apply");
    cstack_apply_stats rst = apply_ref(ref, cs, len);
    cr_expect_eq(st.rows, rst.rows);
    cr_expect_eq(st.columns, rst.columns);
    cr_expect_eq(st.won, rst.won, "won: %lld, row by row %lld", (long long)st.won,
                 (long long)rst.won);
    cr_expect_eq(st.parked, rst.parked, "parked: %lld, row by row %lld", (long long)st.parked,
                 (long long)rst.parked);
    same_tables(b, ref);
    return st;
}

static void *export_since(cstack *db, int64_t since, size_t *len, int64_t *cursor)
{
    void *cs = NULL;
    int64_t cur = 0;
    ok(db, cstack_changes_export(db, since, &cs, len, &cur), "export");
    if (cursor)
        *cursor = cur;
    return cs;
}

/* Changesets rebuilt row by row, to put rows in orders an export does not
 * make: each row re-encoded (its sites renumbered) into its own buffer. */
typedef struct rows_t {
    cs_cs_writer w;
    unsigned char origin[CS_SITE_LEN];
    cs_buf row[512];
    int model[512];
    int64_t key[512];
    size_t n;
} rows_t;

static void take_rows(rows_t *out, cstack *db, const void *cs, size_t len)
{
    const cstack_schema *s = cstack_schema_of(db);
    cs_reader r = {cs, len, 0};
    cs_cs_header h;
    char err[256] = "";
    cr_assert_eq(cs_cs_read_header(&r, &h, err, sizeof err), 0, "%s", err);
    memcpy(out->origin, h.origin, CS_SITE_LEN);
    cs_cs_col cols[16];
    cs_cs_row row = {.cols = cols};
    for (uint64_t i = 0; i < h.nrows; i++) {
        cr_assert_eq(cs_cs_read_row(&r, s, &h, &row, err, sizeof err), 0, "%s", err);
        cr_assert_lt(out->n, sizeof out->row / sizeof out->row[0]);
        cs_buf *b = &out->row[out->n];
        *b = (cs_buf)CS_BUF_INIT;
        int rc = cs_wr_varint(b, (uint64_t)row.model);
        rc = rc ? rc : cs_wr_varint(b, (uint64_t)row.ver);
        rc = rc ? rc : cs_wr_varint(b, row.cl);
        for (size_t k = 0; k < row.npk && !rc; k++)
            rc = cs_cs_put_value(b, &row.pk[k]);
        rc = rc ? rc : cs_wr_varint(b, row.ncols);
        for (size_t c = 0; c < row.ncols && !rc; c++) {
            uint32_t idx = 0;
            rc = cs_cs_site(&out->w, h.sites + (size_t)row.cols[c].site * CS_SITE_LEN, &idx);
            rc = rc ? rc : cs_wr_varint(b, (uint64_t)row.cols[c].field);
            rc = rc ? rc : cs_wr_u64(b, row.cols[c].hlc);
            rc = rc ? rc : cs_wr_varint(b, idx);
            rc = rc ? rc : cs_cs_put_value(b, &row.cols[c].value);
        }
        cr_assert_eq(rc, 0);
        out->model[out->n] = row.model;
        out->key[out->n] = row.pk[0].i;
        out->n++;
    }
}

/* The changeset of the rows picked by `order` (indices into out->row). */
static void *rebuild(rows_t *in, cstack *db, const size_t *order, size_t n, size_t *len)
{
    cs_buf_reset(&in->w.body);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(cs_buf_append(&in->w.body, in->row[order[i]].data, in->row[order[i]].len), 0);
    in->w.nrows = n;
    void *cs = NULL;
    cr_assert_eq(cs_cs_finish(&in->w, cstack_schema_of(db), in->origin, 0, 0, &cs, len), 0);
    return cs;
}

static void rows_free(rows_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        cs_buf_free(&r->row[i]);
    cs_cs_writer_free(&r->w);
}

Test(apply_new, more_than_a_batch_of_new_rows_is_written_many_per_statement_as_row_by_row)
{
    cstack *a = t_open_mem(SCHEMA), *b = t_open_mem(SCHEMA), *c = t_open_mem(SCHEMA);
    ok(a, cstack_begin(a), "begin");
    for (int64_t id = 1; id <= 150; id++)
        item(a, id, id % 3 ? "x" : "y", id);
    ok(a, cstack_commit(a), "commit");
    size_t len = 0;
    void *cs = export_since(a, 0, &len, NULL);
    cstack_apply_stats st = apply_both(b, c, cs, len);
    cr_expect_eq(st.rows, 150);
    cr_expect(batched(b, "Item"), "150 new rows are inserted 64 per statement");
    cr_expect(!batched(c, "Item"), "a merge with a per-row check takes rows one by one");
    st = apply_both(b, c, cs, len);
    cr_expect_eq(st.won, 0, "a second merge of the same changes wins nothing");
    same(a, b);
    cstack_free(cs);
    cstack_close(a);
    cstack_close(b);
    cstack_close(c);
}

Test(apply_new, a_row_losing_a_unique_value_inside_a_batch_is_parked_and_the_others_applied)
{
    cstack *a = t_open_mem(USERS), *b = t_open_mem(USERS), *c = t_open_mem(USERS),
           *d = t_open_mem(USERS);
    /* d claims "late" before a does and "early" after: inside a's batch,
     * row 30 wins "early" (parking d's row) and row 50 loses "late". */
    user(d, 2000, "late");
    usleep(2000);
    ok(a, cstack_begin(a), "begin");
    for (int64_t id = 1; id <= 100; id++) {
        char email[32];
        snprintf(email, sizeof email, "u%lld", (long long)id);
        user(a, id, id == 30 ? "early" : id == 50 ? "late" : email);
    }
    ok(a, cstack_commit(a), "commit");
    usleep(2000);
    user(d, 2001, "early");
    size_t len = 0;
    void *cs = export_since(d, 0, &len, NULL);
    apply_both(b, c, cs, len);
    cstack_free(cs);
    cs = export_since(a, 0, &len, NULL);
    cstack_apply_stats st = apply_both(b, c, cs, len);
    cstack_free(cs);
    cr_expect_eq(st.parked, 2, "row 50 and d's row 2001 are parked");
    int64_t n = 0;
    ok(b, cstack_count(b, "User", NULL, &n), "count");
    cr_expect_eq(n, 100, "99 of a's rows and d's row 2000 are visible");
    cr_expect(batched(b, "User"), "the batch was tried");
    cstack_close(a);
    cstack_close(b);
    cstack_close(c);
    cstack_close(d);
}

Test(apply_new, a_key_repeated_inside_a_run_of_new_rows_merges_as_row_by_row)
{
    cstack *a = t_open_mem(SCHEMA), *b = t_open_mem(SCHEMA), *c = t_open_mem(SCHEMA);
    ok(a, cstack_begin(a), "begin");
    for (int64_t id = 1; id <= 200; id++)
        item(a, id, "first", id);
    ok(a, cstack_commit(a), "commit");
    size_t len1 = 0, len2 = 0, len = 0;
    int64_t cursor = 0;
    void *cs1 = export_since(a, 0, &len1, &cursor);
    usleep(2000);
    ok(a, cstack_update(a, "Item", DATA(FV("id", I(20))), DATA(FV("name", T("second"))), NULL),
       "update Item");
    void *cs2 = export_since(a, cursor, &len2, NULL);
    rows_t *rows = calloc(1, sizeof *rows);
    take_rows(rows, a, cs1, len1);
    take_rows(rows, a, cs2, len2);
    cr_assert_eq(rows->n, 201);
    /* Rows 1..40, row 20 again with its later name, rows 41..200: the
     * repeat comes while row 20 waits in a batch. */
    size_t order[201], n = 0;
    for (size_t i = 0; i < 40; i++)
        order[n++] = i;
    order[n++] = 200;
    for (size_t i = 40; i < 200; i++)
        order[n++] = i;
    void *cs = rebuild(rows, a, order, n, &len);
    cstack_apply_stats st = apply_both(b, c, cs, len);
    cr_expect_eq(st.rows, 201);
    cr_expect(batched(b, "Item"), "the rows after the repeat are batched again");
    same(a, b);
    cstack_free(cs);
    cstack_free(cs1);
    cstack_free(cs2);
    rows_free(rows);
    free(rows);
    cstack_close(a);
    cstack_close(b);
    cstack_close(c);
}

Test(apply_new, runs_of_two_models_interleaved_batch_each_and_park_an_orphan_as_row_by_row)
{
    cstack *a = t_open_mem(USERS), *b = t_open_mem(USERS), *c = t_open_mem(USERS);
    ok(a, cstack_begin(a), "begin");
    user(a, 500, "owner of post 37");
    for (int64_t id = 1; id <= 100; id++) {
        char email[32];
        snprintf(email, sizeof email, "u%lld", (long long)id);
        user(a, id, email);
        post(a, id, id == 37 ? 500 : id);
    }
    ok(a, cstack_commit(a), "commit");
    size_t len = 0, len1 = 0;
    void *cs1 = export_since(a, 0, &len1, NULL);
    rows_t *rows = calloc(1, sizeof *rows);
    take_rows(rows, a, cs1, len1);
    cr_assert_eq(rows->n, 201);
    /* Users 1..70, posts 1..70, users 71..100, posts 71..100 (whose users
     * come before them), then two rows of each model alternating; user 500
     * is left out, so post 37 is an orphan and must be parked. */
    size_t us[100], ps[100], nu = 0, np = 0;
    for (size_t i = 0; i < rows->n; i++) {
        if (rows->model[i] == 0 && rows->key[i] != 500)
            us[nu++] = i;
        else if (rows->model[i] == 1)
            ps[np++] = i;
    }
    cr_assert_eq(nu, 100);
    cr_assert_eq(np, 100);
    size_t order[200], n = 0;
    for (size_t i = 0; i < 70; i++)
        order[n++] = us[i];
    for (size_t i = 0; i < 70; i++)
        order[n++] = ps[i];
    for (size_t i = 70; i < 96; i++)
        order[n++] = us[i];
    for (size_t i = 70; i < 96; i++)
        order[n++] = ps[i];
    for (size_t i = 96; i < 100; i++) {
        order[n++] = us[i];
        order[n++] = ps[i];
    }
    void *cs = rebuild(rows, a, order, n, &len);
    cstack_apply_stats st = apply_both(b, c, cs, len);
    cr_expect_eq(st.rows, 200);
    cr_expect_eq(st.parked, 1, "post 37 has no visible user");
    int64_t n_users = 0, n_posts = 0;
    ok(b, cstack_count(b, "User", NULL, &n_users), "count");
    ok(b, cstack_count(b, "Post", NULL, &n_posts), "count");
    cr_expect_eq(n_users, 100);
    cr_expect_eq(n_posts, 99);
    cr_expect(batched(b, "User") && batched(b, "Post"), "both runs are batched");
    cstack_free(cs);
    cstack_free(cs1);
    rows_free(rows);
    free(rows);
    cstack_close(a);
    cstack_close(b);
    cstack_close(c);
}

/* Opens a file replica of SCHEMA at dir/name and writes row `id` into its
 * table through a connection of its own, behind cstack's back. */
static cstack *file_replica(cstack_schema *s, const char *dir, const char *name, int64_t id)
{
    char path[600], sql[200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    cstack *db = NULL;
    cr_assert_eq(cstack_open(s, path, NULL, &db), CSTACK_OK);
    ok(db, cstack_bootstrap(db, NULL), "bootstrap");
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
    snprintf(sql, sizeof sql, "INSERT INTO \"Item\"(id, name, qty) VALUES (%lld, 'theirs', 7)",
             (long long)id);
    cr_assert_eq(sqlite3_exec(other, sql, NULL, NULL, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(other));
    sqlite3_close(other);
    return db;
}

Test(apply_new, a_row_written_behind_cstacks_back_inside_a_batch_is_merged_as_row_by_row)
{
    char *dir = t_tmpdir();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cstack_schema *s = t_schema(SCHEMA);
    cstack *a = t_open_mem(SCHEMA), *b = file_replica(s, dir, "b.db", 30),
           *c = file_replica(s, dir, "c.db", 30);
    free(dir);
    ok(a, cstack_begin(a), "begin");
    for (int64_t id = 1; id <= 100; id++)
        item(a, id, "ours", id);
    ok(a, cstack_commit(a), "commit");
    size_t len = 0;
    void *cs = export_since(a, 0, &len, NULL);
    cstack_apply_stats st = apply_both(b, c, cs, len);
    cstack_free(cs);
    cr_expect_eq(st.rows, 100);
    cr_expect(batched(b, "Item"), "the batch was tried");
    same(a, b);
    cstack_close(a);
    cstack_close(b);
    cstack_close(c);
    cstack_schema_free(s);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", cmd);
}
