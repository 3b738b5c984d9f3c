/* test_pg_typed.c -- the app tables as typed PostgreSQL tables (pg.h,
 * "pg_typed*.c"; docs/postgres.md): their DDL and migrations, every value
 * between the working copy and PostgreSQL byte for byte, batched writes,
 * load and save, and backend writes captured by the triggers and applied
 * to the copy as local writes.  Needs the test cluster (FIXTURES_REQUIRED
 * pg). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/pg.h"
#include "store/store.h"
#include "support.h"

static const char *const SCHEMA =
    "enum Status {\n  OPEN\n  CLOSED\n}\n"
    "model Item {\n"
    "  id     String   @id\n"
    "  s      String?\n"
    "  i      Int?\n"
    "  f      Float?\n"
    "  d      Decimal?\n"
    "  ok     Boolean?\n"
    "  at     DateTime?\n"
    "  j      Json?\n"
    "  by     Bytes?\n"
    "  u      Uuid?\n"
    "  st     Status?\n"
    "  tags   String[]\n"
    "  email  String?  @email\n"
    "  code   String?  @unique\n"
    "  tagsOf Tag[]\n"
    "}\n"
    "model Tag {\n"
    "  id     Int     @id\n"
    "  name   String  @unique\n"
    "  itemId String?\n"
    "  item   Item?   @relation(fields: [itemId], references: [id], onDelete: Cascade)\n"
    "  @@index([itemId])\n"
    "}\n"
    "model Draft {\n  id String @id\n  body String?\n  @@local\n}\n";

/* ---- helpers ----------------------------------------------------------------- */

static PGconn *pg_open(void)
{
    char *url = t_pg_database();
    PGconn *c = PQconnectdb(url);
    free(url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    return c;
}

static void pg_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    cr_assert(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "%s: %s", sql,
              PQerrorMessage(c));
    PQclear(r);
}

/* The single value `sql` returns, as text (malloc'd; NULL for SQL NULL). */
static char *pg_text(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
    cr_assert_eq(PQntuples(r), 1, "%s: %d rows", sql, PQntuples(r));
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static long pg_long(PGconn *c, const char *sql)
{
    char *v = pg_text(c, sql);
    long n = v ? atol(v) : -1;
    free(v);
    return n;
}

static void ensure(PGconn *c, const cstack_schema *old, const cstack_schema *s)
{
    cs_srv_err err = {0};
    pg_ok(c, "BEGIN");
    int rc = cs_pg_typed_ensure(c, old, s, &err);
    cr_assert_eq(rc, 0, "ensure: %s", err.message);
    pg_ok(c, "COMMIT");
}

/* What cstack_with_sqlite runs for the calls below, inside the copy's
 * write scope (and the test's PostgreSQL transaction). */
typedef struct job {
    cs_pg_typed *t;
    const cstack_schema *s;
    int op;
    const char *sql;         /* JOB_SYNC: raw SQL run on the copy first */
    const char *const *gone; /* JOB_SYNC: Item ids to send as deleted */
    size_t limit;            /* JOB_INGEST */
    size_t n;
    cs_srv_err err;
} job;

enum { JOB_SYNC, JOB_LOAD, JOB_SAVE, JOB_INGEST };

/* Sends every row of model mi the copy holds. */
static int sync_all(job *j, sqlite3 *conn, int mi)
{
    const cs_model *m = &j->s->models[mi];
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT \"%s\" FROM \"%s\"", m->fields[m->pk[0]].column, m->table);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(conn, sql, -1, &st, NULL), SQLITE_OK);
    int rc = 0;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
        sqlite3_value *k = sqlite3_value_dup(sqlite3_column_value(st, 0));
        rc = cs_pg_typed_sync_row(j->t, conn, mi, &k, &j->err);
        sqlite3_value_free(k);
    }
    sqlite3_finalize(st);
    return rc;
}

static int sync_gone(job *j, sqlite3 *conn)
{
    int mi = 0, rc = 0;
    cr_assert(cs_pg_typed_table(j->t, "Item", &mi));
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(conn, "SELECT ?1", -1, &st, NULL), SQLITE_OK);
    for (size_t i = 0; rc == 0 && j->gone && j->gone[i]; i++) {
        sqlite3_bind_text(st, 1, j->gone[i], -1, SQLITE_STATIC);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        sqlite3_value *k = sqlite3_value_dup(sqlite3_column_value(st, 0));
        rc = cs_pg_typed_sync_row(j->t, conn, mi, &k, &j->err);
        sqlite3_value_free(k);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static int run_job(sqlite3 *conn, void *ctx)
{
    job *j = ctx;
    int rc = 0;
    if (j->op == JOB_INGEST) {
        rc = cs_pg_backend_ingest(j->t, conn, j->limit, &j->n, &j->err);
        return rc ? rc : cs_pg_typed_flush(j->t, &j->err);
    }
    if (j->sql && sqlite3_exec(conn, j->sql, NULL, NULL, NULL) != SQLITE_OK)
        cr_assert_fail("%s: %s", j->sql, sqlite3_errmsg(conn));
    for (size_t i = 0; rc == 0 && i < j->s->nmodels; i++) {
        int mi;
        if (!cs_pg_typed_table(j->t, j->s->models[i].table, &mi))
            continue;
        if (j->op == JOB_SYNC)
            rc = sync_all(j, conn, mi);
        else if (j->op == JOB_LOAD)
            rc = cs_pg_typed_load(j->t, conn, mi, &j->err);
        else
            rc = cs_pg_typed_save(j->t, conn, mi, &j->err);
    }
    if (rc == 0 && j->op == JOB_SYNC)
        rc = sync_gone(j, conn);
    return rc ? rc : cs_pg_typed_flush(j->t, &j->err);
}

/* Runs job `op` on db's copy inside one PostgreSQL transaction that, like
 * the store's, says it is a server's. */
static size_t run(PGconn *c, cs_pg_typed *t, cstack *db, int op, const char *sql,
                  const char *const *gone)
{
    job j = {.t = t, .s = cstack_schema_of(db), .op = op, .sql = sql, .gone = gone, .limit = 1000};
    pg_ok(c, "BEGIN");
    pg_ok(c, "SET LOCAL " CS_PG_SERVER_SETTING " = 'on'");
    int rc = cstack_with_sqlite(db, run_job, &j);
    cr_assert_eq(rc, 0, "job %d: %d %s / %s", op, rc, j.err.message, cstack_errmsg(db));
    pg_ok(c, "COMMIT");
    return j.n;
}

/* Every row of a table of the copy, each column as its storage class and
 * bytes, in key order. */
typedef struct image {
    const char *table;
    char *out;
} image;

static int image_job(sqlite3 *conn, void *ctx)
{
    image *im = ctx;
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY 1", im->table);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(conn, sql, -1, &st, NULL), SQLITE_OK);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    out[0] = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            int type = sqlite3_column_type(st, c);
            const unsigned char *p = type == SQLITE_BLOB ? sqlite3_column_blob(st, c)
                                                         : sqlite3_column_text(st, c);
            size_t len = (size_t)sqlite3_column_bytes(st, c);
            while (n + 2 * len + 32 > cap)
                out = realloc(out, cap *= 2);
            n += (size_t)sprintf(out + n, "%d:", type);
            for (size_t k = 0; p && k < len; k++)
                n += (size_t)sprintf(out + n, "%02x", p[k]);
            out[n++] = c + 1 < sqlite3_column_count(st) ? '|' : '\n';
            out[n] = 0;
        }
    }
    sqlite3_finalize(st);
    im->out = out;
    return 0;
}

static char *copy_image(cstack *db, const char *table)
{
    image im = {table, NULL};
    cr_assert_eq(cstack_with_sqlite(db, image_job, &im), 0);
    return im.out;
}

static cs_pg_typed *typed(PGconn *c, cstack *db)
{
    cs_pg_typed *t = NULL;
    cs_srv_err err = {0};
    cr_assert_eq(cs_pg_typed_new(c, cstack_schema_of(db), &t, &err), 0, "%s", err.message);
    return t;
}

static void create(cstack *db, const char *model, const cstack_data *data)
{
    int rc = cstack_create(db, model, data, NULL);
    cr_assert_eq(rc, 0, "create %s: %s", model, cstack_errmsg(db));
}

/* ---- tests ----------------------------------------------------------------- */

Test(pg_typed, ensure_creates_the_synced_models_tables_with_deferred_constraints_and_triggers)
{
    PGconn *c = pg_open();
    cstack_schema *s = t_schema(SCHEMA);
    ensure(c, NULL, s);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                            "('Item', 'Tag', '_cstack_pg_backend')"),
                 3);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM information_schema.tables WHERE table_name = "
                            "'Draft'"),
                 0, "a @@local model stays on the servers' copies");
    char *t = pg_text(c, "SELECT data_type FROM information_schema.columns WHERE table_name = "
                         "'Item' AND column_name = 'j'");
    cr_expect_str_eq(t, "json", "Json keeps its exact text");
    free(t);
    t = pg_text(c, "SELECT data_type FROM information_schema.columns WHERE table_name = 'Item' "
                   "AND column_name = 'at'");
    cr_expect_str_eq(t, "timestamp with time zone");
    free(t);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM information_schema.table_constraints WHERE "
                            "table_name IN ('Item', 'Tag') AND constraint_type IN ('UNIQUE', "
                            "'FOREIGN KEY') AND is_deferrable = 'YES' AND initially_deferred = "
                            "'YES'"),
                 3, "Item.code and Tag.name uniques, Tag.item's foreign key");
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                            "'Tag_itemId_idx'"),
                 1);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_trigger WHERE tgname = '_cstack_pg_capture'"),
                 2);
    /* Running it again over the same schema changes nothing and fails not. */
    ensure(c, s, s);
    cstack_schema_free(s);
    PQfinish(c);
}

/* The edge values of every type, written through the runtime (so stored in
 * canonical form). */
static void edge_rows(cstack *db)
{
    static const unsigned char bytes0[] = {0x00, 0xff, 0x00};
    create(db, "Item", DATA(FV("id", T("a-nulls")), FV("tags", T("[]"))));
    create(db, "Item",
           DATA(FV("id", T("b-low")), FV("s", T("")), FV("i", I(INT64_MIN)),
                FV("f", cstack_v_float(-0.0)), FV("d", T("-0.50")), FV("ok", cstack_v_bool(0)),
                FV("at", T("0001-01-01T00:00:00Z")), FV("j", T("{\"b\":1,\"a\":[1.0E2,\"\\u00e9\"]}")),
                FV("by", cstack_v_blob("", 0)), FV("u", T("00000000-0000-0000-0000-000000000000")),
                FV("st", T("OPEN")), FV("tags", T("[\"\"]")), FV("email", T("a@b.co")),
                FV("code", T("c1"))));
    create(db, "Item",
           DATA(FV("id", T("c-high")), FV("s", T("h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80 'q' \"dq\" \\")),
                FV("i", I(INT64_MAX)), FV("f", cstack_v_float(1.0000000000000002)),
                FV("d", T("123456789012345678901234567890.000000000000000001")),
                FV("ok", cstack_v_bool(1)), FV("at", T("9999-12-31T23:59:59.999999Z")),
                FV("j", T("{\"z\":{\"y\":[null,true,false,-0.0,1e-7,\"\\\"\"]},\"a\":{}}")),
                FV("by", cstack_v_blob(bytes0, sizeof bytes0)),
                FV("u", T("FFFFFFFF-ABCD-4EF0-8123-456789ABCDEF")), FV("st", T("CLOSED")),
                FV("tags", T("[\"x\",\"\xc3\xa9\"]")), FV("code", T("c2"))));
    create(db, "Item",
           DATA(FV("id", T("d-mid")), FV("i", I(0)), FV("f", cstack_v_float(5e-324)),
                FV("d", T("0.00")), FV("at", T("2026-03-04T05:06:07.123456+02:00")),
                FV("j", T("\"str\"")), FV("by", cstack_v_blob("\x00", 1)), FV("tags", T("[]"))));
    create(db, "Tag", DATA(FV("id", I(1)), FV("name", T("red")), FV("itemId", T("c-high"))));
    create(db, "Tag", DATA(FV("id", I(-2)), FV("name", T("")), FV("itemId", cstack_v_null())));
    create(db, "Draft", DATA(FV("id", T("x")), FV("body", T("local only"))));
}

Test(pg_typed, every_type_round_trips_byte_for_byte_through_postgresql)
{
    PGconn *c = pg_open();
    cstack *db = t_open_mem(SCHEMA), *db2 = t_open_mem(SCHEMA);
    edge_rows(db);
    ensure(c, NULL, cstack_schema_of(db));
    cs_pg_typed *t = typed(c, db), *t2 = typed(c, db2);
    run(c, t, db, JOB_SYNC, NULL, NULL);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM \"Item\""), 4);
    char *v = pg_text(c, "SELECT d::text || ' ' || j::text FROM \"Item\" WHERE id = 'b-low'");
    cr_expect_str_eq(v, "-0.50 {\"b\":1,\"a\":[1.0E2,\"\\u00e9\"]}");
    free(v);
    v = pg_text(c, "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM "
                   "\"Item\" WHERE id = 'd-mid'");
    cr_expect_str_eq(v, "2026-03-04 03:06:07.123456");
    free(v);

    run(c, t2, db2, JOB_LOAD, NULL, NULL);
    const char *tables[] = {"Item", "Tag"};
    for (size_t i = 0; i < 2; i++) {
        char *a = copy_image(db, tables[i]), *b = copy_image(db2, tables[i]);
        cr_expect_str_eq(b, a, "%s differs after the round trip", tables[i]);
        free(a);
        free(b);
    }
    uint64_t s1 = 0, s2 = 0;
    cr_assert_eq(cstack_sync_checksum(db, &s1), 0);
    cr_assert_eq(cstack_sync_checksum(db2, &s2), 0);
    cr_expect_eq(s1, s2, "the copies' checksums agree");
    cs_pg_typed_free(t);
    cs_pg_typed_free(t2);
    cstack_close(db);
    cstack_close(db2);
    PQfinish(c);
}
