/* test_rowsql.c -- the row SQL of src/sql/rowsql.c: its text for composite
 * keys and @map'ed names, its parameter rule run against SQLite, its cache
 * keys (unique, also for models wider than 64 columns), the bound on kept
 * column sets, and the store's writes through it. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema.h"
#include "sql/sql.h"
#include "support.h"

/* A composite key, @map'ed table and columns, and a relation field (which is
 * not a column) between columns, so field indices and column positions
 * differ. */
static const char *MAPPED = "model Org {\n"
                            "  id      Int      @id\n"
                            "  members Member[]\n"
                            "}\n"
                            "model Member {\n"
                            "  orgId Int     @map(\"org_id\")\n"
                            "  org   Org     @relation(fields: [orgId], references: [id])\n"
                            "  num   Int\n"
                            "  name  String  @map(\"full_name\")\n"
                            "  email String? @unique\n"
                            "  @@id([orgId, num])\n"
                            "  @@map(\"members\")\n"
                            "}\n";

typedef struct fixture {
    cstack_schema *s;
    cs_rowsql *rs;
} fixture;

static fixture open_rows(const char *src)
{
    fixture fx = {t_schema(src), NULL};
    cr_assert_eq(cs_rowsql_new(fx.s, &fx.rs), 0);
    return fx;
}

static void close_rows(fixture *fx)
{
    cs_rowsql_free(fx->rs);
    cstack_schema_free(fx->s);
}

static int model(const fixture *fx, const char *name)
{
    int mi = cs_model_find(fx->s, name);
    cr_assert_geq(mi, 0, "model %s", name);
    return mi;
}

static const char *fixed_sql(const fixture *fx, const char *m, cs_row_fixed kind)
{
    const cs_rowstmt *st = cs_rowsql_fixed(fx->rs, model(fx, m), kind);
    cr_assert_not_null(st, "%s kind %d", m, (int)kind);
    cr_assert_eq(strlen(st->sql), st->len);
    return st->sql;
}

/* The statement of `kind` for the fields named in the NULL-terminated list. */
static cs_rowstmt set_stmt(const fixture *fx, const char *m, cs_row_set kind,
                           const char *const *fields)
{
    int mi = model(fx, m);
    const cs_model *md = &fx->s->models[mi];
    uint64_t bits[CS_FIELDSET_WORDS(md->nfields)];
    memset(bits, 0, sizeof bits);
    for (size_t i = 0; fields[i]; i++) {
        int f = cs_field_find(md, fields[i]);
        cr_assert_geq(f, 0, "field %s", fields[i]);
        cs_fieldset_add(bits, (size_t)f);
    }
    cs_rowstmt st;
    cr_assert_eq(cs_rowsql_set(fx->rs, mi, kind, bits, &st), 0);
    return st;
}

#define FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(rowsql, composite_keys_and_mapped_names_give_the_expected_text)
{
    fixture fx = open_rows(MAPPED);
    /* Member: orgId 0, org 1 (relation), num 2, name 3, email 4; the key
     * parameters follow the five fields. */
    cr_expect_str_eq(fixed_sql(&fx, "Member", CS_ROW_LOAD),
                     "SELECT \"org_id\", \"num\", \"full_name\", \"email\" FROM \"members\" "
                     "WHERE \"org_id\" = ?6 AND \"num\" = ?7");
    cr_expect_str_eq(fixed_sql(&fx, "Member", CS_ROW_LOAD_ROWID),
                     "SELECT \"org_id\", \"num\", \"full_name\", \"email\" FROM \"members\" "
                     "WHERE rowid = ?1");
    cr_expect_str_eq(fixed_sql(&fx, "Member", CS_ROW_DELETE),
                     "DELETE FROM \"members\" WHERE \"org_id\" = ?6 AND \"num\" = ?7");
    cr_expect_str_eq(fixed_sql(&fx, "Member", CS_ROW_INSERT_ALL),
                     "INSERT INTO \"members\" (\"org_id\", \"num\", \"full_name\", \"email\") "
                     "VALUES (?1, ?3, ?4, ?5)");
    cr_expect_str_eq(fixed_sql(&fx, "Member", CS_ROW_UPDATE_ALL),
                     "UPDATE \"members\" SET \"full_name\" = ?4, \"email\" = ?5 "
                     "WHERE \"org_id\" = ?6 AND \"num\" = ?7");
    cr_expect_str_eq(set_stmt(&fx, "Member", CS_ROW_INSERT, FIELDS("num", "orgId")).sql,
                     "INSERT INTO \"members\" (\"org_id\", \"num\") VALUES (?1, ?3)");
    cr_expect_str_eq(set_stmt(&fx, "Member", CS_ROW_UPDATE_RETURNING, FIELDS("num")).sql,
                     "UPDATE \"members\" SET \"num\" = ?3 WHERE \"org_id\" = ?6 AND \"num\" = ?7 "
                     "RETURNING \"org_id\", \"num\", \"full_name\", \"email\"");
    cr_expect_str_eq(set_stmt(&fx, "Member", CS_ROW_KEYS_WHERE, FIELDS("email")).sql,
                     "SELECT \"org_id\", \"num\" FROM \"members\" WHERE \"email\" = ?5");
    close_rows(&fx);
}

Test(rowsql, an_empty_insert_uses_default_values)
{
    fixture fx = open_rows(MAPPED);
    const char *const none[] = {NULL};
    cr_expect_str_eq(set_stmt(&fx, "Org", CS_ROW_INSERT, none).sql,
                     "INSERT INTO \"Org\" DEFAULT VALUES");
    close_rows(&fx);
}

static void exec_ok(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s\nin:\n%s", msg ? msg : sqlite3_errstr(rc), sql);
    sqlite3_free(msg);
}

static sqlite3_stmt *prep(sqlite3 *db, const cs_rowstmt *st)
{
    sqlite3_stmt *p = NULL;
    int rc = sqlite3_prepare_v2(db, st->sql, (int)st->len, &p, NULL);
    cr_assert_eq(rc, SQLITE_OK, "%s in %s", sqlite3_errmsg(db), st->sql);
    return p;
}

static void step_done(sqlite3_stmt *st)
{
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(sqlite3_db_handle(st)));
    sqlite3_finalize(st);
}

Test(rowsql, the_parameter_rule_writes_and_reads_rows_through_sqlite)
{
    fixture fx = open_rows(MAPPED);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    char *ddl = NULL;
    cr_assert_eq(cstack_schema_ddl(fx.s, "sqlite", &ddl), 0);
    exec_ok(db, ddl);
    cstack_free(ddl);
    int mi = model(&fx, "Member");
    const cs_model *m = &fx.s->models[mi];

    /* Insert (org 1, num 2, "Ada", "a@x") with values at field + 1. */
    sqlite3_stmt *st = prep(db, cs_rowsql_fixed(fx.rs, mi, CS_ROW_INSERT_ALL));
    sqlite3_bind_int(st, 1, 1);
    sqlite3_bind_int(st, 3, 2);
    sqlite3_bind_text(st, 4, "Ada", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, "a@x", -1, SQLITE_STATIC);
    step_done(st);

    /* Change the key column num to 3, found by its old key. */
    cs_rowstmt up = set_stmt(&fx, "Member", CS_ROW_UPDATE_RETURNING, FIELDS("num", "name"));
    st = prep(db, &up);
    sqlite3_bind_int(st, 3, 3);
    sqlite3_bind_text(st, 4, "Ada L", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, cs_rowsql_key_param(m, 0), 1);
    sqlite3_bind_int(st, cs_rowsql_key_param(m, 1), 2);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_expect_eq(sqlite3_column_int(st, 1), 3);
    cr_expect_str_eq((const char *)sqlite3_column_text(st, 2), "Ada L");
    step_done(st);

    cs_rowstmt keys = set_stmt(&fx, "Member", CS_ROW_KEYS_WHERE, FIELDS("email"));
    st = prep(db, &keys);
    sqlite3_bind_text(st, 5, "a@x", -1, SQLITE_STATIC);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_expect_eq(sqlite3_column_int(st, 0), 1);
    cr_expect_eq(sqlite3_column_int(st, 1), 3);
    step_done(st);

    st = prep(db, cs_rowsql_fixed(fx.rs, mi, CS_ROW_LOAD));
    sqlite3_bind_int(st, cs_rowsql_key_param(m, 0), 1);
    sqlite3_bind_int(st, cs_rowsql_key_param(m, 1), 3);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_expect_str_eq((const char *)sqlite3_column_text(st, 3), "a@x");
    step_done(st);

    st = prep(db, cs_rowsql_fixed(fx.rs, mi, CS_ROW_DELETE));
    sqlite3_bind_int(st, cs_rowsql_key_param(m, 0), 1);
    sqlite3_bind_int(st, cs_rowsql_key_param(m, 1), 3);
    step_done(st);
    cr_expect_eq(sqlite3_changes(db), 1);
    sqlite3_close(db);
    close_rows(&fx);
}

/* A model of `n` Int fields f0..f{n-1}, f0 the key. */
static char *wide_schema(size_t n)
{
    size_t cap = 64 + n * 32;
    char *src = malloc(cap);
    cr_assert_not_null(src);
    size_t k = (size_t)snprintf(src, cap, "model Wide {\n  f0 Int @id\n");
    for (size_t i = 1; i < n; i++)
        k += (size_t)snprintf(src + k, cap - k, "  f%zu Int?\n", i);
    snprintf(src + k, cap - k, "}\nmodel Other {\n  id Int @id\n  v Int\n}\n");
    return src;
}

static cs_rowstmt wide_set(fixture *fx, cs_row_set kind, const size_t *fields, size_t n)
{
    const cs_model *m = &fx->s->models[0];
    uint64_t bits[CS_FIELDSET_WORDS(m->nfields)];
    memset(bits, 0, sizeof bits);
    for (size_t i = 0; i < n; i++)
        cs_fieldset_add(bits, fields[i]);
    cs_rowstmt st;
    cr_assert_eq(cs_rowsql_set(fx->rs, 0, kind, bits, &st), 0);
    return st;
}

Test(rowsql, column_sets_past_the_64th_field_get_their_own_keys_and_text)
{
    char *src = wide_schema(130);
    fixture fx = open_rows(src);
    free(src);
    /* Fields 3, 67 and 131 would share bit 3 if the set were one word. */
    size_t low[] = {3}, mid[] = {67}, both[] = {3, 67}, top[] = {129};
    cs_rowstmt a = wide_set(&fx, CS_ROW_UPDATE, low, 1);
    cs_rowstmt b = wide_set(&fx, CS_ROW_UPDATE, mid, 1);
    cs_rowstmt c = wide_set(&fx, CS_ROW_UPDATE, both, 2);
    cs_rowstmt d = wide_set(&fx, CS_ROW_UPDATE, top, 1);
    cs_rowstmt a2 = wide_set(&fx, CS_ROW_UPDATE, low, 1);
    cs_rowstmt ai = wide_set(&fx, CS_ROW_INSERT, low, 1);
    cr_expect_str_eq(a.sql, "UPDATE \"Wide\" SET \"f3\" = ?4 WHERE \"f0\" = ?131");
    cr_expect_str_eq(b.sql, "UPDATE \"Wide\" SET \"f67\" = ?68 WHERE \"f0\" = ?131");
    cr_expect_str_eq(c.sql, "UPDATE \"Wide\" SET \"f3\" = ?4, \"f67\" = ?68 WHERE \"f0\" = ?131");
    cr_expect_str_eq(d.sql, "UPDATE \"Wide\" SET \"f129\" = ?130 WHERE \"f0\" = ?131");
    uint64_t keys[] = {a.key, b.key, c.key, d.key, ai.key};
    for (size_t i = 0; i < 5; i++) {
        cr_expect_neq(keys[i], 0);
        cr_expect_lt(keys[i], 1ull << 56);
        for (size_t j = 0; j < i; j++)
            cr_expect_neq(keys[i], keys[j], "statements %zu and %zu share a key", i, j);
    }
    cr_expect_eq(a2.key, a.key, "the same set keeps its key");
    cr_expect_eq(a2.sql, a.sql, "and its text is built once");
    close_rows(&fx);
}

Test(rowsql, keys_differ_across_models_and_kinds)
{
    char *src = wide_schema(3);
    fixture fx = open_rows(src);
    free(src);
    uint64_t seen[2 * CS_ROW_FIXED_KINDS];
    size_t n = 0;
    for (int mi = 0; mi < 2; mi++)
        for (int k = 0; k < CS_ROW_FIXED_KINDS; k++) {
            const cs_rowstmt *st = cs_rowsql_fixed(fx.rs, mi, (cs_row_fixed)k);
            cr_assert_not_null(st);
            for (size_t j = 0; j < n; j++)
                cr_expect_neq(st->key, seen[j]);
            seen[n++] = st->key;
        }
    size_t one[] = {1};
    cs_rowstmt ins = wide_set(&fx, CS_ROW_INSERT, one, 1);
    for (size_t j = 0; j < n; j++)
        cr_expect_neq(ins.key, seen[j]);
    close_rows(&fx);
}

Test(rowsql, sets_past_the_bound_are_built_each_time_with_key_zero)
{
    char *src = wide_schema(12);
    fixture fx = open_rows(src);
    free(src);
    /* 2^11 subsets of f1..f11, each with f0: more than the bound. */
    uint64_t first = 0;
    for (uint64_t s = 0; s < 2048; s++) {
        uint64_t bits[1] = {1 | s << 1};
        cs_rowstmt st;
        cr_assert_eq(cs_rowsql_set(fx.rs, 0, CS_ROW_INSERT, bits, &st), 0);
        if (s == 0)
            first = st.key;
        if (s < CS_ROWSQL_MAX_SETS)
            cr_assert_neq(st.key, 0, "set %llu", (unsigned long long)s);
        else
            cr_assert_eq(st.key, 0, "set %llu", (unsigned long long)s);
    }
    uint64_t last[1] = {1 | 2047ull << 1};
    cs_rowstmt st;
    cr_assert_eq(cs_rowsql_set(fx.rs, 0, CS_ROW_INSERT, last, &st), 0);
    cr_expect_str_eq(st.sql, "INSERT INTO \"Wide\" (\"f0\", \"f1\", \"f2\", \"f3\", \"f4\", "
                             "\"f5\", \"f6\", \"f7\", \"f8\", \"f9\", \"f10\", \"f11\") VALUES "
                             "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    uint64_t again[1] = {1};
    cr_assert_eq(cs_rowsql_set(fx.rs, 0, CS_ROW_INSERT, again, &st), 0);
    cr_expect_eq(st.key, first, "kept sets keep their keys");
    close_rows(&fx);
}

Test(rowsql, sets_naming_no_column_or_nothing_to_update_are_misuse)
{
    fixture fx = open_rows(MAPPED);
    int mi = model(&fx, "Member");
    uint64_t rel[1] = {1u << 1}, past[1] = {1u << 5}, none[1] = {0};
    cs_rowstmt st;
    cr_expect_eq(cs_rowsql_set(fx.rs, mi, CS_ROW_KEYS_WHERE, rel, &st), CSTACK_EMISUSE);
    cr_expect_eq(cs_rowsql_set(fx.rs, mi, CS_ROW_INSERT, past, &st), CSTACK_EMISUSE);
    cr_expect_eq(cs_rowsql_set(fx.rs, mi, CS_ROW_UPDATE, none, &st), CSTACK_EMISUSE);
    close_rows(&fx);
}

Test(rowsql, a_model_of_key_columns_only_has_no_update_of_every_column)
{
    fixture fx = open_rows("model Pair {\n  a Int\n  b Int\n  @@id([a, b])\n}\n");
    cr_expect_null(cs_rowsql_fixed(fx.rs, 0, CS_ROW_UPDATE_ALL));
    cr_expect_not_null(cs_rowsql_fixed(fx.rs, 0, CS_ROW_INSERT_ALL));
    close_rows(&fx);
}

Test(rowsql, columns_named_like_the_rowid_do_not_hide_it)
{
    fixture fx =
        open_rows("model Odd {\n  id Int @id\n  rowid Int\n  x Int @map(\"_ROWID_\")\n}\n");
    cr_expect_str_eq(fixed_sql(&fx, "Odd", CS_ROW_LOAD_ROWID),
                     "SELECT \"id\", \"rowid\", \"_ROWID_\" FROM \"Odd\" WHERE oid = ?1");
    close_rows(&fx);
}

/* ---- the store's writes through the row SQL ------------------------------------ */

Test(rowsql, the_store_creates_and_updates_rows_of_a_model_wider_than_64_columns)
{
    char *src = wide_schema(70);
    cstack *db = t_open_mem(src);
    free(src);
    /* Two rows whose column sets differ only past the 64th field. */
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "Wide", DATA(FV("f0", I(1)), FV("f2", I(20))), &r), 0, "%s",
                 cstack_errmsg(db));
    cstack_row_free(r);
    cr_assert_eq(cstack_create(db, "Wide", DATA(FV("f0", I(2)), FV("f66", I(660))), &r), 0, "%s",
                 cstack_errmsg(db));
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "f66", &v), 0);
    cr_expect_eq(v.u.i, 660);
    cr_assert_eq(cstack_row_get(r, "f2", &v), 0);
    cr_expect_eq(v.type, CSTACK_NULL);
    cstack_row_free(r);
    cr_assert_eq(cstack_update(db, "Wide", DATA(FV("f0", I(1))), DATA(FV("f66", I(7))), &r), 0,
                 "%s", cstack_errmsg(db));
    cr_assert_eq(cstack_row_get(r, "f66", &v), 0);
    cr_expect_eq(v.u.i, 7);
    cr_assert_eq(cstack_row_get(r, "f2", &v), 0);
    cr_expect_eq(v.u.i, 20);
    cstack_row_free(r);
    cstack_close(db);
}

Test(rowsql, the_store_reads_a_created_row_back_when_a_column_is_named_rowid)
{
    cstack *db = t_open_mem("model Odd {\n  id Int @id\n  rowid Int\n}\n");
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "Odd", DATA(FV("id", I(1)), FV("rowid", I(99))), &r), 0, "%s",
                 cstack_errmsg(db));
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "rowid", &v), 0);
    cr_expect_eq(v.u.i, 99);
    cstack_row_free(r);
    cstack_close(db);
}

Test(rowsql, the_store_can_change_a_key_column_and_delete_by_a_composite_key)
{
    cstack *db = t_open_mem(MAPPED);
    cr_assert_eq(cstack_create(db, "Org", DATA(FV("id", I(1))), NULL), 0, "%s", cstack_errmsg(db));
    cr_assert_eq(cstack_create(db, "Member",
                               DATA(FV("orgId", I(1)), FV("num", I(2)), FV("name", T("Ada"))),
                               NULL),
                 0, "%s", cstack_errmsg(db));
    cstack_row *r = NULL;
    cr_assert_eq(cstack_update(db, "Member", DATA(FV("orgId", I(1)), FV("num", I(2))),
                               DATA(FV("num", I(5))), &r),
                 0, "%s", cstack_errmsg(db));
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "num", &v), 0);
    cr_expect_eq(v.u.i, 5);
    cstack_row_free(r);
    r = NULL;
    cr_assert_eq(cstack_delete(db, "Member", DATA(FV("orgId", I(1)), FV("num", I(5))), &r), 0, "%s",
                 cstack_errmsg(db));
    cr_assert_eq(cstack_row_get(r, "name", &v), 0);
    cr_expect_eq(v.u.s.n, 3);
    cstack_row_free(r);
    int64_t n = -1;
    cr_assert_eq(cstack_count(db, "Member", NULL, &n), 0);
    cr_expect_eq(n, 0);
    cstack_close(db);
}
