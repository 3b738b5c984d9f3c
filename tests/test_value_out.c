/* test_value_out.c -- what src/value/ produces: the JSON form of stored
 * values, identifiers and clock readings, and the SQL helpers it registers
 * on SQLite connections (collation, exact decimal aggregates, cstack_now).
 * Validation and canonical forms are in test_value.c. */
#include <criterion/criterion.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "value/value.h"

#define TXT(s) cstack_v_textn((s), sizeof(s) - 1)
#define BLOB(s) cstack_v_blob((s), sizeof(s) - 1)

static void expect_json(cs_scalar t, cstack_value v, const char *want)
{
    cs_buf b = CS_BUF_INIT;
    int rc = cs_value_json(&b, t, &v);
    cr_expect_eq(rc, 0, "want %s: rc %d", want, rc);
    if (rc == 0)
        cr_expect_str_eq(b.data, want);
    cs_buf_free(&b);
}

Test(value_json_out, maps_scalars_per_spec_section_6)
{
    expect_json(CS_T_STRING, TXT("a\"b\n"), "\"a\\\"b\\n\"");
    expect_json(CS_T_STRING, cstack_v_null(), "null");
    expect_json(CS_T_INT, cstack_v_int(-42), "-42");
    expect_json(CS_T_INT, cstack_v_int(INT64_MIN), "-9223372036854775808");
    expect_json(CS_T_BOOLEAN, cstack_v_int(1), "true");
    expect_json(CS_T_BOOLEAN, cstack_v_int(0), "false");
    expect_json(CS_T_BOOLEAN, cstack_v_bool(1), "true");
    expect_json(CS_T_BYTES, BLOB("hello"), "\"aGVsbG8=\"");
    expect_json(CS_T_BYTES, cstack_v_blob(NULL, 0), "\"\"");
    expect_json(CS_T_JSON, TXT("{\"a\":[1,2]}"), "{\"a\":[1,2]}");
    expect_json(CS_T_JSON, TXT("{ \"a\" : 1 }"), "{\"a\":1}");
    expect_json(CS_T_DECIMAL, TXT("1.10"), "\"1.10\"");
    expect_json(CS_T_DECIMAL, cstack_v_int(5), "\"5\"");
    expect_json(CS_T_UUID, TXT("123e4567-e89b-12d3-a456-426614174000"),
                "\"123e4567-e89b-12d3-a456-426614174000\"");
    expect_json(CS_T_DATETIME, TXT("2026-01-01T10:00:00.000000Z"),
                "\"2026-01-01T10:00:00.000000Z\"");
    expect_json(CS_T_FLOAT, cstack_v_float(0.1), "0.1");
    expect_json(CS_T_FLOAT, cstack_v_float(1.0 / 3), "0.3333333333333333");
    expect_json(CS_T_FLOAT, cstack_v_float(1e300), "1e+300");
    expect_json(CS_T_FLOAT, cstack_v_float(-0.0), "-0");
    expect_json(CS_T_FLOAT, cstack_v_float(2.5), "2.5");
    expect_json(CS_T_FLOAT, cstack_v_float(5e-324), "4.94065645841247e-324");

    cs_buf b = CS_BUF_INIT;
    cs_buf_puts(&b, "[");
    cstack_value bad = cstack_v_float(INFINITY);
    cr_expect_eq(cs_value_json(&b, CS_T_FLOAT, &bad), CSTACK_EVALIDATION);
    bad = TXT("{not json");
    cr_expect_eq(cs_value_json(&b, CS_T_JSON, &bad), CSTACK_EVALIDATION);
    cr_expect_str_eq(b.data, "[", "nothing half-written");
    cs_buf_free(&b);
}

Test(value_json_out, floats_round_trip)
{
    srand(7);
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = 0;
        for (int k = 0; k < 4; k++)
            bits = bits << 16 | (uint64_t)(rand() & 0xFFFF);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d))
            continue;
        cs_buf b = CS_BUF_INIT;
        cstack_value v = cstack_v_float(d);
        cr_assert_eq(cs_value_json(&b, CS_T_FLOAT, &v), 0);
        cr_assert_eq(strtod(b.data, NULL), d, "%s", b.data);
        cs_buf again = CS_BUF_INIT;
        cr_assert_eq(cs_json_canon(b.data, b.len, &again, NULL, 0), 0, "%s", b.data);
        cr_assert_str_eq(again.data, b.data);
        cs_buf_free(&again);
        cs_buf_free(&b);
    }
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* n ids of `width` bytes from gen, checked to be pairwise distinct. */
static char *gen_distinct(void (*gen)(char *), size_t n, size_t width)
{
    char *ids = malloc(n * width);
    cr_assert(ids);
    for (size_t i = 0; i < n; i++)
        gen(ids + i * width);
    char *sorted = malloc(n * width);
    memcpy(sorted, ids, n * width);
    qsort(sorted, n, width, cmp_str);
    for (size_t i = 1; i < n; i++)
        cr_assert_str_neq(sorted + (i - 1) * width, sorted + i * width, "duplicate id");
    free(sorted);
    return ids;
}

static void gen_v4(char *out)
{
    cs_uuid_v4(out);
}
static void gen_v7(char *out)
{
    cs_uuid_v7(out);
}
static void gen_cuid(char *out)
{
    cs_cuid(out);
}

static void expect_canonical(cs_scalar t, const char *s)
{
    cs_buf scratch = CS_BUF_INIT;
    cstack_value in = cstack_v_text(s), out;
    char err[256] = "";
    cr_expect_eq(cs_value_canon(t, NULL, &in, &scratch, &out, err, sizeof err), 0, "%s", err);
    cr_expect_eq(out.u.s.p, in.u.s.p, "%s is already canonical", s);
    cs_buf_free(&scratch);
}

Test(value_gen, uuid_v4_shape_and_uniqueness)
{
    size_t n = 10000, w = CS_UUID_LEN + 1;
    char *ids = gen_distinct(gen_v4, n, w);
    for (size_t i = 0; i < n; i += 997) {
        char *id = ids + i * w;
        cr_expect_eq(strlen(id), CS_UUID_LEN);
        cr_expect_eq(id[14], '4', "%s", id);
        cr_expect(strchr("89ab", id[19]), "%s", id);
        expect_canonical(CS_T_UUID, id);
    }
    free(ids);
}

Test(value_gen, uuid_v7_sorts_by_creation_and_carries_the_time)
{
    size_t n = 10000, w = CS_UUID_LEN + 1;
    int64_t before = cs_wall_us() / 1000;
    char *ids = gen_distinct(gen_v7, n, w);
    int64_t after = cs_wall_us() / 1000;
    for (size_t i = 0; i < n; i++) {
        char *id = ids + i * w;
        if (i > 0)
            cr_assert_lt(strcmp(id - w, id), 0, "%s then %s", id - w, id);
        cr_assert_eq(id[14], '7', "%s", id);
        cr_assert(strchr("89ab", id[19]), "%s", id);
    }
    char hex[13] = {0};
    memcpy(hex, ids, 8);
    memcpy(hex + 8, ids + 9, 4);
    int64_t ms = (int64_t)strtoll(hex, NULL, 16);
    /* The counter may push a burst a few milliseconds ahead of the clock. */
    cr_expect(ms >= before && ms <= after + 100, "%lld not in [%lld, %lld]", (long long)ms,
              (long long)before, (long long)after);
    expect_canonical(CS_T_UUID, ids);
    free(ids);
}

Test(value_gen, cuid_shape_and_uniqueness)
{
    size_t n = 10000, w = CS_CUID_LEN + 1;
    char *ids = gen_distinct(gen_cuid, n, w);
    for (size_t i = 0; i < n; i++) {
        char *id = ids + i * w;
        cr_assert_eq(strlen(id), CS_CUID_LEN);
        cr_assert_eq(id[0], 'c');
        cr_assert_eq(strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789"), CS_CUID_LEN, "%s", id);
        /* The timestamp part (9 digits after 'c') never decreases. */
        if (i > 0)
            cr_assert_leq(memcmp(id - w + 1, id + 1, 9), 0, "%s then %s", id - w, id);
    }
    expect_canonical(CS_T_CUID, ids);
    free(ids);
}

Test(value_gen, clock_and_datetime_format)
{
    char now[CS_DATETIME_LEN + 1], out[CS_DATETIME_LEN + 1];
    cs_now(now);
    cr_expect_eq(strlen(now), CS_DATETIME_LEN);
    expect_canonical(CS_T_DATETIME, now);
    cr_expect_gt(cs_wall_us(), INT64_C(1700000000000000));
    struct {
        int64_t us;
        const char *want;
    } c[] = {
        {0, "1970-01-01T00:00:00.000000Z"},
        {-1, "1969-12-31T23:59:59.999999Z"},
        {INT64_C(1767261600123456), "2026-01-01T10:00:00.123456Z"},
        {INT64_C(951782400000000), "2000-02-29T00:00:00.000000Z"},
        {INT64_C(-62135596800000000), "0001-01-01T00:00:00.000000Z"},
        {INT64_C(253402300799999999), "9999-12-31T23:59:59.999999Z"},
        {INT64_MIN, "0001-01-01T00:00:00.000000Z"}, /* clamped */
        {INT64_MAX, "9999-12-31T23:59:59.999999Z"}, /* clamped */
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        cs_datetime_format(c[i].us, out);
        cr_expect_str_eq(out, c[i].want, "%lld", (long long)c[i].us);
    }
}

static sqlite3 *open_db(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    cr_assert_eq(cs_value_register_sqlite(db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "CREATE TABLE t(x BLOB)", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void insert(sqlite3 *db, const char *const *vals, size_t n)
{
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?)", -1, &st, NULL), SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        if (vals[i])
            sqlite3_bind_text(st, 1, vals[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 1);
        cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
}

/* Runs sql (one bound text parameter when arg is not NULL) and joins the
 * first column of every row with ','; NULL shows as "NULL". */
static char *column(sqlite3 *db, const char *sql, const char *arg, int *rc)
{
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    cs_buf b = CS_BUF_INIT;
    cs_buf_puts(&b, "");
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        cs_buf_printf(&b, "%s%s", b.len ? "," : "", v ? v : "NULL");
    }
    *rc = r == SQLITE_DONE ? 0 : r;
    if (*rc)
        cs_buf_printf(&b, "error: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return cs_buf_take(&b);
}

static void expect_col(sqlite3 *db, const char *sql, const char *arg, const char *want)
{
    int rc;
    char *got = column(db, sql, arg, &rc);
    cr_expect_eq(rc, 0, "%s: %s", sql, got);
    cr_expect_str_eq(got, want, "%s", sql);
    free(got);
}

static void expect_err(sqlite3 *db, const char *sql, const char *msg)
{
    int rc;
    char *got = column(db, sql, NULL, &rc);
    cr_expect_neq(rc, 0, "%s: should fail", sql);
    cr_expect(strstr(got, msg), "%s: message \"%s\" lacks \"%s\"", sql, got, msg);
    free(got);
}

Test(value_sqlite, decimal_collation_orders_numerically)
{
    sqlite3 *db = open_db();
    const char *vals[] = {"10.25", "9.5", "-1", "0.001", "100", "-10.5", "1.10", NULL, "abc", "2"};
    insert(db, vals, sizeof vals / sizeof vals[0]);
    expect_col(db, "SELECT x FROM t ORDER BY x COLLATE cstack_decimal", NULL,
               "NULL,-10.5,-1,0.001,1.10,2,9.5,10.25,100,abc");
    expect_col(db,
               "SELECT x FROM t WHERE x > ? COLLATE cstack_decimal ORDER BY x COLLATE "
               "cstack_decimal",
               "9.75", "10.25,100,abc");
    expect_col(db, "SELECT x FROM t WHERE x = ? COLLATE cstack_decimal", "1.1", "1.10");
    expect_col(db,
               "SELECT min(x COLLATE cstack_decimal) || ' ' || "
               "max(x COLLATE cstack_decimal) FROM t WHERE x <> 'abc'",
               NULL, "-10.5 100");
    /* An index with the collation gives the same order. */
    cr_assert_eq(
        sqlite3_exec(db, "CREATE INDEX t_x ON t(x COLLATE cstack_decimal)", NULL, NULL, NULL),
        SQLITE_OK);
    expect_col(db,
               "SELECT x FROM t WHERE x < '2' COLLATE cstack_decimal ORDER BY x COLLATE "
               "cstack_decimal DESC",
               NULL, "1.10,0.001,-1,-10.5");
    sqlite3_close(db);
}

Test(value_sqlite, decimal_sum_and_avg_are_exact)
{
    sqlite3 *db = open_db();
    const char *vals[] = {"0.10", "0.20", NULL};
    insert(db, vals, 3);
    expect_col(db, "SELECT cstack_decimal_sum(x) FROM t", NULL, "0.30");
    expect_col(db, "SELECT cstack_decimal_avg(x) FROM t", NULL, "0.15000000");
    expect_col(db, "SELECT cstack_decimal_sum(x) FROM t WHERE 0", NULL, "NULL");
    expect_col(db, "SELECT cstack_decimal_avg(x) FROM t WHERE x IS NULL", NULL, "NULL");
    expect_col(db,
               "SELECT cstack_decimal_sum(v) FROM (SELECT 1 AS v UNION ALL SELECT '0.5' "
               "UNION ALL SELECT -3)",
               NULL, "-1.5");
    expect_col(db, "SELECT cstack_decimal_avg(v) FROM (SELECT 1 AS v UNION ALL SELECT 2)", NULL,
               "1.500000");
    expect_col(db,
               "SELECT cstack_decimal_avg(v) FROM (SELECT 1 AS v UNION ALL SELECT 2 UNION "
               "ALL SELECT 2)",
               NULL, "1.666667");
    expect_col(db, "SELECT cstack_decimal_avg(v) FROM (SELECT '-1.5' AS v UNION ALL SELECT '1.5')",
               NULL, "0.0000000");
    /* 1/128 = 0.0078125 and 3/128 = 0.0234375: exact halves round to even. */
    const char *cte = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE "
                      "i < 128) SELECT cstack_decimal_avg(CASE WHEN i = 1 THEN %s ELSE 0 END) "
                      "FROM c";
    const char *half[][2] = {
        {"1", "0.007812"}, {"3", "0.023438"}, {"-3", "-0.023438"}, {"'0.5'", "0.0039062"}};
    for (size_t i = 0; i < 4; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, cte, half[i][0]);
        expect_col(db, sql, NULL, half[i][1]);
    }
    expect_col(db, "SELECT cstack_decimal_sum(x) FROM t GROUP BY x IS NULL ORDER BY 1", NULL,
               "NULL,0.30");
    expect_err(db, "SELECT cstack_decimal_sum(v) FROM (SELECT 1.5 AS v)",
               "cstack_decimal_sum: expected decimal text or an integer, got a REAL");
    expect_err(db, "SELECT cstack_decimal_avg(v) FROM (SELECT '1' AS v UNION ALL SELECT '1e5')",
               "cstack_decimal_avg: invalid Decimal \"1e5\": exponent not allowed");
    expect_err(db, "SELECT cstack_decimal_sum(x'00')", "got a BLOB");
    sqlite3_close(db);
}

Test(value_sqlite, now_is_canonical)
{
    sqlite3 *db = open_db();
    int rc;
    char *now = column(db, "SELECT cstack_now()", NULL, &rc);
    cr_assert_eq(rc, 0, "%s", now);
    expect_canonical(CS_T_DATETIME, now);
    free(now);
    sqlite3_close(db);
}
