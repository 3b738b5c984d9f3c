/* test_pg_typed.c -- the app tables as typed PostgreSQL tables (pg.h,
 * "pg_typed*.c"; docs/postgres.md): their DDL and migrations, every value
 * between the working copy and PostgreSQL byte for byte, batched writes,
 * load and save, and backend writes captured by the triggers at commit and
 * merged into the copy with the clocks of their commits.  Needs the test cluster (FIXTURES_REQUIRED
 * pg). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/pg.h"
#include "store/store.h"
#include "sync/changeset.h"
#include "sync/sync.h"
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
 * the store's, says it is a server's: the ingest in a merge scope, the
 * others through cstack_with_sqlite. */
static size_t run(PGconn *c, cs_pg_typed *t, cstack *db, int op, const char *sql,
                  const char *const *gone)
{
    job j = {.t = t, .s = cstack_schema_of(db), .op = op, .sql = sql, .gone = gone, .limit = 1000};
    pg_ok(c, "BEGIN");
    pg_ok(c, "SET LOCAL " CS_PG_SERVER_SETTING " = 'on'");
    int rc;
    if (op == JOB_INGEST) {
        rc = cs_write_begin_opts(db, CS_WRITE_MERGE);
        rc = rc ? rc : cs_pg_backend_ingest(t, db, j.limit, &j.n, &j.err);
        rc = rc ? rc : cs_pg_typed_flush(t, &j.err);
        rc = cs_write_end(db, rc);
    } else {
        rc = cstack_with_sqlite(db, run_job, &j);
    }
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

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Rows "r00000".. of Item, n of them, through the runtime. */
static void many_items(cstack *db, int n)
{
    cstack_data *rows = calloc((size_t)n, sizeof *rows);
    cstack_field_value *fv = calloc((size_t)n * 4, sizeof *fv);
    char (*ids)[16] = calloc((size_t)n, sizeof *ids);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "r%05d", i);
        fv[4 * i] = FV("id", T(ids[i]));
        fv[4 * i + 1] = FV("i", I(i));
        fv[4 * i + 2] = FV("s", T("some text"));
        fv[4 * i + 3] = FV("tags", T("[\"a\"]"));
        rows[i] = (cstack_data){&fv[4 * i], 4};
    }
    int64_t count = 0;
    cr_assert_eq(cstack_create_many(db, "Item", rows, (size_t)n, &count), 0, "%s",
                 cstack_errmsg(db));
    free(rows);
    free(fv);
    free(ids);
}

Test(pg_typed, a_ten_thousand_row_transaction_is_sent_in_batches_and_deletes_reach_postgresql)
{
    PGconn *c = pg_open();
    cstack *db = t_open_mem(SCHEMA);
    ensure(c, NULL, cstack_schema_of(db));
    cs_pg_typed *t = typed(c, db);
    many_items(db, 10000);
    pg_ok(c, "SELECT pg_stat_reset()");
    double t0 = now_ms();
    run(c, t, db, JOB_SYNC, NULL, NULL);
    double ms = now_ms() - t0;
    fprintf(stderr, "pg_typed: 10000 rows written to PostgreSQL in %.0f ms\n", ms);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM \"Item\""), 10000);
    /* Statements the transaction sent: a handful, not one per row. */
    pg_ok(c, "SELECT pg_stat_force_next_flush()");
    long ins = pg_long(c, "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'Item'");
    cr_expect_eq(ins, 10000);

    /* Updates, deletions, and a row written then deleted in one batch. */
    static const char *const gone[] = {"r00001", "r00002", "never-was", NULL};
    run(c, t, db, JOB_SYNC,
        "UPDATE \"Item\" SET \"s\" = 'changed' WHERE \"id\" = 'r00003';"
        "DELETE FROM \"Item\" WHERE \"id\" IN ('r00001', 'r00002');",
        gone);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM \"Item\""), 9998);
    char *v = pg_text(c, "SELECT s FROM \"Item\" WHERE id = 'r00003'");
    cr_expect_str_eq(v, "changed");
    free(v);
    cs_pg_typed_free(t);
    cstack_close(db);
    PQfinish(c);
}

Test(pg_typed, save_replaces_postgresqls_rows_with_the_copys_and_load_reads_them_back)
{
    PGconn *c = pg_open();
    cstack *db = t_open_mem(SCHEMA), *db2 = t_open_mem(SCHEMA);
    edge_rows(db);
    many_items(db, 3000);
    ensure(c, NULL, cstack_schema_of(db));
    /* Rows PostgreSQL holds and the copy does not: gone after the save. */
    pg_ok(c, "BEGIN; SET LOCAL cstack.server = 'on';"
             "INSERT INTO \"Item\" (id, tags) VALUES ('stale', '[]');"
             "INSERT INTO \"Tag\" (id, name, \"itemId\") VALUES (99, 'old', 'stale');"
             "INSERT INTO \"Item\" (id, s, tags) VALUES ('b-low', 'old value', '[]'); COMMIT");
    cs_pg_typed *t = typed(c, db), *t2 = typed(c, db2);
    run(c, t, db, JOB_SAVE, NULL, NULL);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM \"Item\" WHERE id = 'stale'"), 0);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM \"Tag\""), 2);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM \"Item\""), 3004);
    double t0 = now_ms();
    run(c, t2, db2, JOB_LOAD, NULL, NULL);
    fprintf(stderr, "pg_typed: 3004 rows loaded in %.0f ms\n", now_ms() - t0);
    char *a = copy_image(db, "Item"), *b = copy_image(db2, "Item");
    cr_expect_str_eq(b, a);
    free(a);
    free(b);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM " "_cstack_pg_backend"), 0,
                 "a server's writes queue nothing");
    cs_pg_typed_free(t);
    cs_pg_typed_free(t2);
    cstack_close(db);
    cstack_close(db2);
    PQfinish(c);
}

static const char *const SCHEMA_V1 =
    "enum Level {\n  LOW\n}\n"
    "model Note {\n  id String @id\n  title String\n  level Level?\n  body String?\n"
    "  @@index([title])\n}\n";

/* v1 plus: a new model, new optional and defaulted fields, an enum member,
 * a required field made optional, a new index. */
static const char *const SCHEMA_V2 =
    "enum Level {\n  LOW\n  HIGH\n}\n"
    "model Note {\n  id String @id\n  title String?\n  level Level?\n  body String?\n"
    "  stars Int @default(3)\n  seen DateTime?\n  ref String @default(cuid())\n"
    "  @@index([title])\n  @@index([stars])\n}\n"
    "model Tag {\n  id Int @id\n  noteId String\n"
    "  note Note @relation(fields: [noteId], references: [id])\n}\n";

Test(pg_typed, an_additive_migration_is_applied_in_place)
{
    PGconn *c = pg_open();
    cstack_schema *v1 = t_schema(SCHEMA_V1), *v2 = t_schema(SCHEMA_V2);
    ensure(c, NULL, v1);
    pg_ok(c, "INSERT INTO \"Note\" (id, title, level) VALUES ('n1', 't', 'LOW')");
    ensure(c, v1, v2);
    char *v = pg_text(c, "SELECT stars::text || ' ' || (seen IS NULL)::text || ' ' || "
                         "length(ref)::text FROM \"Note\"");
    cr_expect_str_eq(v, "3 true 25");
    free(v);
    pg_ok(c, "INSERT INTO \"Note\" (id, level, ref) VALUES ('n2', 'HIGH', 'cx')");
    pg_ok(c, "INSERT INTO \"Tag\" (id, \"noteId\") VALUES (1, 'n2')");
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_indexes WHERE indexname = "
                            "'Note_stars_idx'"),
                 1);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM pg_trigger WHERE tgname = '_cstack_pg_capture'"),
                 2, "the new table is watched too");
    PGresult *r = PQexec(c, "INSERT INTO \"Note\" (id, level, ref) VALUES ('n3', 'MID', 'cy')");
    cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "an enum member the schema lacks");
    PQclear(r);
    cstack_schema_free(v1);
    cstack_schema_free(v2);
    PQfinish(c);
}

Test(pg_typed, a_destructive_migration_is_refused_naming_the_field_and_changes_nothing)
{
    static const char *const bad[][2] = {
        {"model Note {\n  id String @id\n  title String\n  level Level?\n  @@index([title])\n}\n"
         "enum Level {\n  LOW\n}\n",
         "Note.body"},
        {"model Note {\n  id String @id\n  title Int\n  level Level?\n  body String?\n}\n"
         "enum Level {\n  LOW\n}\n",
         "Note.title"},
        {"model Note {\n  id String @id\n  title String\n  level Level?\n  body String?\n"
         "  must String\n}\nenum Level {\n  LOW\n}\n",
         "Note.must"},
        {"model Note {\n  id String @id\n  title String\n  level Level?\n  body String?\n}\n"
         "enum Level {\n  HIGH\n}\n",
         "Note.level"},
    };
    PGconn *c = pg_open();
    cstack_schema *v1 = t_schema(SCHEMA_V1);
    ensure(c, NULL, v1);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cstack_schema *v = t_schema(bad[i][0]);
        cs_srv_err err = {0};
        pg_ok(c, "BEGIN");
        cr_expect_eq(cs_pg_typed_ensure(c, v1, v, &err), CSTACK_ESCHEMA, "case %zu", i);
        pg_ok(c, "COMMIT");
        cr_expect_eq(err.kind, CS_SRV_CONFLICT);
        cr_expect(strstr(err.message, bad[i][1]) != NULL, "case %zu: \"%s\" names no %s", i,
                  err.message, bad[i][1]);
        cstack_schema_free(v);
    }
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                            "'Note'"),
                 4, "nothing changed");
    cstack_schema_free(v1);
    PQfinish(c);
}

/* A copy and its PostgreSQL tables holding edge_rows, written by a server,
 * with the copy's upload queue emptied. */
static cs_pg_typed *synced_pair(PGconn **c, cstack **db)
{
    *c = pg_open();
    *db = t_open_mem(SCHEMA);
    edge_rows(*db);
    ensure(*c, NULL, cstack_schema_of(*db));
    cs_pg_typed *t = typed(*c, *db);
    run(*c, t, *db, JOB_SYNC, NULL, NULL);
    int64_t v = 0;
    cr_assert_eq(cstack_sync_version(*db, &v), 0);
    cr_assert_eq(cstack_upload_complete(*db, v), 0);
    return t;
}

/* db's changes after version `since`, one line per row: "Model key cl=N"
 * and each column it carries, "@backend" when written by a backend.  With
 * `key` and `field`, *hlc is that column's clock (0: not carried). */
static char *changes_after(cstack *db, int64_t since, const char *key, const char *field,
                           uint64_t *hlc)
{
    void *cs = NULL;
    size_t len = 0;
    cr_assert_eq(cstack_changes_export(db, since, &cs, &len, NULL), 0, "%s", cstack_errmsg(db));
    const cstack_schema *s = cstack_schema_of(db);
    cs_reader r = {cs, len, 0};
    cs_cs_header h;
    char err[256];
    cr_assert_eq(cs_cs_read_header(&r, &h, err, sizeof err), 0, "%s", err);
    cs_cs_col cols[64];
    cs_cs_row row = {.cols = cols};
    cs_buf out = CS_BUF_INIT;
    cs_buf_puts(&out, "");
    if (hlc)
        *hlc = 0;
    for (uint64_t i = 0; i < h.nrows; i++) {
        cr_assert_eq(cs_cs_read_row(&r, s, &h, &row, err, sizeof err), 0, "%s", err);
        const cs_model *m = &s->models[row.model];
        char k[64];
        if (row.pk[0].type == SQLITE_INTEGER)
            snprintf(k, sizeof k, "%lld", (long long)row.pk[0].i);
        else
            snprintf(k, sizeof k, "%.*s", (int)row.pk[0].n, (const char *)row.pk[0].p);
        cs_buf_printf(&out, "%s %s cl=%llu", m->name, k, (unsigned long long)row.cl);
        for (size_t c = 0; c < row.ncols; c++) {
            const char *name = m->fields[row.cols[c].field].name;
            bool be = memcmp(h.sites + (size_t)row.cols[c].site * CS_SITE_LEN, CS_PG_BACKEND_SITE,
                             CS_SITE_LEN) == 0;
            cs_buf_printf(&out, " %s%s", name, be ? "@backend" : "");
            if (hlc && strcmp(k, key) == 0 && strcmp(name, field) == 0)
                *hlc = row.cols[c].hlc;
        }
        cs_buf_puts(&out, "\n");
    }
    cstack_free(cs);
    return cs_buf_take(&out);
}

static int64_t version_of(cstack *db)
{
    int64_t v = 0;
    cr_assert_eq(cstack_sync_version(db, &v), 0);
    return v;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(pg_typed, backend_writes_are_queued_at_commit_and_merged_with_their_commit_time_as_clock)
{
    PGconn *c;
    cstack *db;
    cs_pg_typed *t = synced_pair(&c, &db);
    int64_t v0 = version_of(db), before = wall_ms();
    pg_ok(c, "INSERT INTO \"Item\" (id, s, tags, j) VALUES ('be-new', 'from backend', "
             "'[\"t\"]', '{ \"k\" : [1, 2] }')");
    /* One transaction, two statements on one row: one change, one clock. */
    pg_ok(c, "BEGIN; UPDATE \"Item\" SET s = 'edited' WHERE id = 'c-high'; UPDATE \"Item\" SET "
             "i = 42 WHERE id = 'c-high'; DELETE FROM \"Item\" WHERE id = 'd-mid'; COMMIT");
    int64_t after = wall_ms();
    /* A server's own write (the store's transactions) queues nothing. */
    pg_ok(c, "BEGIN; SET LOCAL cstack.server = 'on'; UPDATE \"Item\" SET s = 'srv' WHERE id = "
             "'a-nulls'; COMMIT");
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM _cstack_pg_backend"), 4);
    cr_expect_eq(pg_long(c, "SELECT count(DISTINCT xid) FROM _cstack_pg_backend"), 2);

    cr_expect_eq(run(c, t, db, JOB_INGEST, NULL, NULL), 4);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM _cstack_pg_backend"), 0);
    char *s = t_text_of(db, "Item", "be-new", "s");
    cr_expect_str_eq(s, "from backend");
    free(s);
    s = t_text_of(db, "Item", "be-new", "j");
    cr_expect_str_eq(s, "{\"k\":[1,2]}", "the backend's JSON in canonical form");
    free(s);
    s = t_text_of(db, "Item", "c-high", "s");
    cr_expect_str_eq(s, "edited");
    free(s);
    cr_expect_null(t_text_of(db, "Item", "d-mid", "s"));

    /* Merged as changes of the backend's site: the insert with every
     * column, the update with the two it changed, the delete; nothing of
     * the server's own write. */
    uint64_t h_new, h_upd, h_i;
    char *text = changes_after(db, v0, "be-new", "s", &h_new);
    fprintf(stderr, "pg_typed: merged\n%s", text);
    cr_expect(strstr(text, "Item be-new cl=1 s@backend"), "%s", text);
    cr_expect(strstr(text, "Item c-high cl=1 s@backend i@backend\n"), "%s", text);
    cr_expect(strstr(text, "Item d-mid cl=2\n"), "%s", text);
    cr_expect(!strstr(text, "a-nulls"), "a server's write is not a backend's: %s", text);
    free(text);
    free(changes_after(db, v0, "c-high", "s", &h_upd));
    free(changes_after(db, v0, "c-high", "i", &h_i));
    /* Each transaction's clock is its commit time; the later one's is later. */
    cr_expect_eq(h_upd, h_i, "one clock per transaction");
    cr_expect_gt(h_upd, h_new);
    cr_expect_geq((int64_t)(h_new >> 16), before - 5);
    cr_expect_leq((int64_t)(h_upd >> 16), after + 5);
    char *last = pg_text(c, "SELECT value FROM _cstack_pg_meta WHERE key = 'backend_clock'");
    cr_expect_eq(strtoull(last, NULL, 10), h_upd, "the last clock given is kept for the next");
    free(last);
    cs_pg_typed_free(t);
    cstack_close(db);
    PQfinish(c);
}

Test(pg_typed, a_backend_write_older_than_the_copys_column_loses_and_postgresql_gets_the_winner)
{
    PGconn *c;
    cstack *db;
    cs_pg_typed *t = synced_pair(&c, &db);
    /* The backend commits; 30 ms later a device's write of the same column
     * reaches the copy, before any server took the backend's. */
    pg_ok(c, "UPDATE \"Item\" SET s = 'backend, earlier', i = 5 WHERE id = 'c-high'");
    usleep(30000);
    cr_assert_eq(cstack_update(db, "Item", DATA(FV("id", T("c-high"))),
                               DATA(FV("s", T("device, later"))), NULL),
                 0, "%s", cstack_errmsg(db));
    cr_expect_eq(run(c, t, db, JOB_INGEST, NULL, NULL), 1);
    char *s = t_text_of(db, "Item", "c-high", "s");
    cr_expect_str_eq(s, "device, later", "the later write wins");
    free(s);
    uint64_t h = 0;
    s = changes_after(db, 0, "c-high", "i", &h);
    cr_expect(strstr(s, "Item c-high cl=1 s i@backend "), "the backend's other column is in: %s",
              s);
    free(s);
    s = pg_text(c, "SELECT s || ' ' || i FROM \"Item\" WHERE id = 'c-high'");
    cr_expect_str_eq(s, "device, later 5", "PostgreSQL holds the winners");
    free(s);
    cs_pg_typed_free(t);
    cstack_close(db);
    PQfinish(c);
}

Test(pg_typed, a_server_write_of_the_row_before_the_ingest_does_not_lose_the_backends_write)
{
    PGconn *c;
    cstack *db;
    cs_pg_typed *t = synced_pair(&c, &db);
    /* The backend changes s; before a server takes the entry, a server's
     * transaction writes the same row (another column) from its copy,
     * which has not seen the backend's write: PostgreSQL's row is the
     * copy's again, s and all.  The backend's s must still win. */
    pg_ok(c, "UPDATE \"Item\" SET s = 'backend' WHERE id = 'c-high'");
    usleep(2000);
    cr_assert_eq(cstack_update(db, "Item", DATA(FV("id", T("c-high"))), DATA(FV("i", I(77))),
                               NULL),
                 0, "%s", cstack_errmsg(db));
    run(c, t, db, JOB_SYNC, NULL, NULL);
    char *s = pg_text(c, "SELECT coalesce(s, '(null)') FROM \"Item\" WHERE id = 'c-high'");
    cr_expect_neq(strcmp(s, "backend"), 0, "the server's write replaced the backend's");
    free(s);
    run(c, t, db, JOB_INGEST, NULL, NULL);
    s = t_text_of(db, "Item", "c-high", "s");
    cr_expect_str_eq(s, "backend", "the copy has the backend's write");
    free(s);
    s = pg_text(c, "SELECT s || ' ' || i FROM \"Item\" WHERE id = 'c-high'");
    cr_expect_str_eq(s, "backend 77", "and PostgreSQL has both writes");
    free(s);
    cs_pg_typed_free(t);
    cstack_close(db);
    PQfinish(c);
}

Test(pg_typed, a_backend_write_the_schema_refuses_is_undone_and_dropped_from_the_queue)
{
    PGconn *c;
    cstack *db;
    cs_pg_typed *t = synced_pair(&c, &db);
    pg_ok(c, "UPDATE \"Item\" SET email = 'not an email', s = 'x' WHERE id = 'b-low'");
    pg_ok(c, "UPDATE \"Item\" SET f = 'NaN' WHERE id = 'c-high'");
    pg_ok(c, "UPDATE \"Item\" SET s = 'fine' WHERE id = 'a-nulls'");
    cr_expect_eq(run(c, t, db, JOB_INGEST, NULL, NULL), 3);
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM _cstack_pg_backend"), 0);
    char *s = t_text_of(db, "Item", "b-low", "email");
    cr_expect_str_eq(s, "a@b.co", "the copy kept its value");
    free(s);
    s = pg_text(c, "SELECT email || ' ' || s FROM \"Item\" WHERE id = 'b-low'");
    cr_expect_str_eq(s, "a@b.co ", "PostgreSQL's row is the copy's again");
    free(s);
    s = pg_text(c, "SELECT f::text FROM \"Item\" WHERE id = 'c-high'");
    cr_expect_str_eq(s, "1.0000000000000002");
    free(s);
    s = t_text_of(db, "Item", "a-nulls", "s");
    cr_expect_str_eq(s, "fine", "the valid write of the batch went in");
    free(s);
    cs_pg_typed_free(t);
    cstack_close(db);
    PQfinish(c);
}

Test(pg_typed, backend_writes_that_move_unique_values_or_cascade_reach_the_copy)
{
    PGconn *c;
    cstack *db;
    cs_pg_typed *t = synced_pair(&c, &db);
    /* c-high takes b-low's value, which b-low gives up in the same
     * statement: whichever the copy gets first, both go in. */
    pg_ok(c, "UPDATE \"Item\" SET code = CASE id WHEN 'b-low' THEN 'c3' ELSE 'c1' END WHERE id "
             "IN ('c-high', 'b-low')");
    cr_expect_eq(run(c, t, db, JOB_INGEST, NULL, NULL), 2);
    char *s = t_text_of(db, "Item", "b-low", "code");
    cr_expect_str_eq(s, "c3");
    free(s);
    s = t_text_of(db, "Item", "c-high", "code");
    cr_expect_str_eq(s, "c1");
    free(s);

    /* A swap (PostgreSQL's deferred unique lets it pass) merges as one
     * change: the copy and PostgreSQL agree on it. */
    pg_ok(c, "UPDATE \"Item\" SET code = CASE id WHEN 'b-low' THEN 'c1' ELSE 'c3' END WHERE id "
             "IN ('c-high', 'b-low')");
    cr_expect_eq(run(c, t, db, JOB_INGEST, NULL, NULL), 2);
    s = t_text_of(db, "Item", "b-low", "code");
    cr_expect_str_eq(s, "c1");
    free(s);
    s = t_text_of(db, "Item", "c-high", "code");
    cr_expect_str_eq(s, "c3");
    free(s);
    s = pg_text(c, "SELECT string_agg(code, ',' ORDER BY id) FROM \"Item\" WHERE id IN "
                   "('b-low', 'c-high')");
    cr_expect_str_eq(s, "c1,c3");
    free(s);

    pg_ok(c, "DELETE FROM \"Item\" WHERE id = 'c-high'");
    cr_expect_eq(pg_long(c, "SELECT count(*) FROM _cstack_pg_backend"), 2,
                 "the row and its cascaded tag");
    cr_expect_eq(run(c, t, db, JOB_INGEST, NULL, NULL), 2);
    int64_t n = -1;
    cr_assert_eq(cstack_count(db, "Tag", NULL, &n), 0);
    cr_expect_eq(n, 1, "only the tag without an item is left");
    cs_pg_typed_free(t);
    cstack_close(db);
    PQfinish(c);
}

Test(pg_typed, a_copy_loaded_while_backend_writes_wait_gets_them_as_changes_of_the_state_servers_wrote)
{
    PGconn *c;
    cstack *db;
    cs_pg_typed *t = synced_pair(&c, &db);
    /* The servers are down; the backend writes. */
    pg_ok(c, "UPDATE \"Item\" SET s = 'edited' WHERE id = 'c-high'");
    pg_ok(c, "UPDATE \"Item\" SET i = 7 WHERE id = 'c-high'");
    pg_ok(c, "DELETE FROM \"Item\" WHERE id = 'd-mid'");
    pg_ok(c, "INSERT INTO \"Item\" (id, tags) VALUES ('be-new', '[]')");
    pg_ok(c, "UPDATE \"Item\" SET id = 'b-moved' WHERE id = 'b-low'");
    /* A new server loads its copy, then takes the queue. */
    cstack *db2 = t_open_mem(SCHEMA);
    /* The loaded rows are captured as the copy's own inserts: stamped a
     * minute back, they stand for the servers' older clocks. */
    cs_sync_test_wall_offset(db2, -60000);
    cs_pg_typed *t2 = typed(c, db2);
    run(c, t2, db2, JOB_LOAD, NULL, NULL);
    char *a = copy_image(db, "Item"), *b = copy_image(db2, "Item");
    cr_expect_str_eq(b, a, "the copy holds the state the servers wrote, Json text and all");
    free(a);
    free(b);
    int64_t v = version_of(db2);
    cr_expect_eq(run(c, t2, db2, JOB_INGEST, NULL, NULL), 6);
    char *text = changes_after(db2, v, NULL, NULL, NULL);
    cr_expect(strstr(text, "Item c-high cl=1 s@backend i@backend\n"),
              "only the columns the backend changed: %s", text);
    cr_expect(strstr(text, "Item d-mid cl=2\n"), "%s", text);
    cr_expect(strstr(text, "Item b-low cl=2\n"), "%s", text);
    cr_expect(strstr(text, "Item be-new cl=1 ") && strstr(text, "Item b-moved cl=1 "), "%s", text);
    free(text);
    cs_pg_typed_free(t2);
    cstack_close(db2);
    cs_pg_typed_free(t);
    cstack_close(db);
    PQfinish(c);
}

Test(pg_typed, large_tables_load_in_chunks_and_large_backend_batches_ingest)
{
    PGconn *c = pg_open();
    cstack *db = t_open_mem(SCHEMA);
    ensure(c, NULL, cstack_schema_of(db));
    pg_ok(c, "BEGIN; SET LOCAL cstack.server = 'on';"
             "INSERT INTO \"Item\" (id, s, i, d, at, j, tags) SELECT 'g' || lpad(g::text, 6, '0'), "
             "'text ' || g, g, (g / 100.0)::numeric, '2026-01-01T00:00:00Z'::timestamptz + g * "
             "interval '1 second', ('{\"n\":' || g || '}')::json, '[]' "
             "FROM generate_series(1, 100000) g;"
             "COMMIT");
    cs_pg_typed *t = typed(c, db);
    double t0 = now_ms();
    run(c, t, db, JOB_LOAD, NULL, NULL);
    fprintf(stderr, "pg_typed: 100000 rows loaded in %.0f ms\n", now_ms() - t0);
    int64_t n = 0;
    cr_assert_eq(cstack_count(db, "Item", NULL, &n), 0);
    cr_expect_eq(n, 100000);
    char *s = t_text_of(db, "Item", "g000150", "d");
    cr_expect_str_eq(s, "1.5000000000000000", "numeric's scale kept");
    free(s);

    pg_ok(c, "INSERT INTO \"Item\" (id, s, tags) SELECT 'h' || g, 'backend', '[]' FROM "
             "generate_series(1, 10000) g");
    pg_ok(c, "UPDATE \"Item\" SET s = 'edited' WHERE id LIKE 'g00%'");
    t0 = now_ms();
    size_t got = run(c, t, db, JOB_INGEST, NULL, NULL);
    size_t total = got;
    while (got == 1000)
        total += got = run(c, t, db, JOB_INGEST, NULL, NULL);
    fprintf(stderr, "pg_typed: %zu backend writes ingested in %.0f ms\n", total, now_ms() - t0);
    cr_expect_eq(total, 19999);
    cr_assert_eq(cstack_count(db, "Item", NULL, &n), 0);
    cr_expect_eq(n, 110000);
    cs_pg_typed_free(t);
    cstack_close(db);
    PQfinish(c);
}
