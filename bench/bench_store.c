/*
 * bench_store.c -- the embedded runtime against hand-written SQLite, in one
 * run (SPEC section 13):
 *
 *   create     N rows (default 100k) of a 6-column model in one transaction:
 *              cstack_create(..., NULL) vs a prepared INSERT + bind + step +
 *              reset loop on raw SQLite.  Measured on an @@local model (the
 *              runtime alone; target <= 1.25x) and, for information, on the
 *              same model synced, for information (the target of a
 *              synced write, fold included, is bench_sync's);
 *   find_many  M decoded rows (default 10k): cstack_find_many() reading every
 *              value with cstack_row_value() vs a prepared SELECT + step loop
 *              reading every column.
 *
 * Both sides use file databases in the same temporary directory, the same
 * table (the DDL cstack itself generates), the same values, and the same
 * PRAGMAs as the runtime (WAL, synchronous=NORMAL, foreign keys on).  Each
 * measurement is the best of several runs.  The benchmark reports; it never
 * fails on a slow machine (exit status 0 unless something errors).
 *
 * usage: bench_store [--rows N] [--find-rows M]
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cstack.h"
#include "bench_util.h"

#define CREATE_REPS 5
#define FIND_REPS 10
#define TARGET 1.25

/* Item is @@local (never synced, so no change capture); Synced is the same
 * model as an app declares it by default. */
static const char SCHEMA[] = "model Item {\n"
                             "  id     Int      @id\n"
                             "  name   String\n"
                             "  qty    Int\n"
                             "  score  Float\n"
                             "  active Boolean\n"
                             "  at     DateTime\n"
                             "  @@local\n"
                             "}\n"
                             "model Synced {\n"
                             "  id     Int      @id\n"
                             "  name   String\n"
                             "  qty    Int\n"
                             "  score  Float\n"
                             "  active Boolean\n"
                             "  at     DateTime\n"
                             "}\n";

static const char *const FIELDS[] = {"id", "name", "qty", "score", "active", "at"};
#define NFIELDS 6

typedef struct bench {
    cstack_schema *schema;
    char dir[256];
    dataset data;
    size_t rows, find_rows;
} bench;

/* ---- raw SQLite ---- */

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        die(sql, err ? err : "?");
}

static sqlite3 *raw_open(const bench *b, const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die(path, sqlite3_errmsg(db));
    raw_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
    char *ddl = NULL;
    if (cstack_schema_ddl(b->schema, "sqlite", &ddl) != CSTACK_OK)
        die("ddl", "cstack_schema_ddl failed");
    raw_exec(db, ddl);
    cstack_free(ddl);
    return db;
}

static sqlite3_stmt *raw_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(db));
    return st;
}

static double raw_create(const bench *b, sqlite3 *db)
{
    const dataset *ds = &b->data;
    double t0 = now_ms();
    sqlite3_stmt *st = raw_prepare(db, "INSERT INTO \"Item\" (\"id\", \"name\", \"qty\", "
                                       "\"score\", \"active\", \"at\") VALUES (?,?,?,?,?,?)");
    raw_exec(db, "BEGIN");
    for (size_t i = 0; i < ds->n; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)i + 1);
        sqlite3_bind_text(st, 2, ds->name[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, qty_of(i));
        sqlite3_bind_double(st, 4, score_of(i));
        sqlite3_bind_int(st, 5, (int)(i & 1));
        sqlite3_bind_text(st, 6, ds->at[i], -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            die("raw insert", sqlite3_errmsg(db));
        sqlite3_reset(st);
    }
    raw_exec(db, "COMMIT");
    sqlite3_finalize(st);
    return now_ms() - t0;
}

/* Reads every column of the first `n` rows; *sum is a checksum of what was
 * read, compared with the cstack side so both decode the same data. */
static double raw_find(sqlite3 *db, size_t n, uint64_t *sum)
{
    double t0 = now_ms();
    sqlite3_stmt *st = raw_prepare(db, "SELECT \"id\", \"name\", \"qty\", \"score\", "
                                       "\"active\", \"at\" FROM \"Item\" ORDER BY \"id\" "
                                       "LIMIT ?");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)n);
    uint64_t acc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        acc += (uint64_t)sqlite3_column_int64(st, 0);
        const unsigned char *name = sqlite3_column_text(st, 1);
        acc += (uint64_t)sqlite3_column_bytes(st, 1) + name[0];
        acc += (uint64_t)sqlite3_column_int64(st, 2);
        acc += (uint64_t)sqlite3_column_double(st, 3);
        acc += sqlite3_column_int(st, 4) != 0;
        const unsigned char *at = sqlite3_column_text(st, 5);
        acc += (uint64_t)sqlite3_column_bytes(st, 5) + at[18];
    }
    sqlite3_finalize(st);
    *sum = acc;
    return now_ms() - t0;
}

/* ---- cstack ---- */

static cstack *api_open(const bench *b, const char *path)
{
    cstack *db = NULL;
    if (cstack_open(b->schema, path, NULL, &db) != CSTACK_OK ||
        cstack_bootstrap(db, NULL) != CSTACK_OK)
        die(path, db ? cstack_errmsg(db) : "out of memory");
    return db;
}

static double api_create(const bench *b, cstack *db, const char *model)
{
    const dataset *ds = &b->data;
    cstack_field_value f[NFIELDS];
    for (size_t c = 0; c < NFIELDS; c++)
        f[c].field = FIELDS[c];
    cstack_data data = {f, NFIELDS};
    double t0 = now_ms();
    if (cstack_begin(db) != CSTACK_OK)
        die("cstack_begin", cstack_errmsg(db));
    for (size_t i = 0; i < ds->n; i++) {
        f[0].value = cstack_v_int((int64_t)i + 1);
        f[1].value = cstack_v_text(ds->name[i]);
        f[2].value = cstack_v_int(qty_of(i));
        f[3].value = cstack_v_float(score_of(i));
        f[4].value = cstack_v_bool((int)(i & 1));
        f[5].value = cstack_v_text(ds->at[i]);
        if (cstack_create(db, model, &data, NULL) != CSTACK_OK)
            die("cstack_create", cstack_errmsg(db));
    }
    if (cstack_commit(db) != CSTACK_OK)
        die("cstack_commit", cstack_errmsg(db));
    return now_ms() - t0;
}

static uint64_t api_checksum_row(const cstack_row *row)
{
    uint64_t acc = 0;
    for (size_t c = 0; c < NFIELDS; c++) {
        cstack_value v = cstack_row_value(row, c);
        switch (v.type) {
        case CSTACK_INT:
            acc += (uint64_t)v.u.i;
            break;
        case CSTACK_FLOAT:
            acc += (uint64_t)v.u.f;
            break;
        case CSTACK_BOOL:
            acc += v.u.b != 0;
            break;
        case CSTACK_TEXT:
            acc += v.u.s.n + (unsigned char)v.u.s.p[c == 1 ? 0 : 18];
            break;
        default:
            break;
        }
    }
    return acc;
}

static double api_find(cstack *db, size_t n, uint64_t *sum)
{
    double t0 = now_ms();
    cstack_query q = {0};
    q.take = (int64_t)n;
    cstack_rows *rows = NULL;
    if (cstack_find_many(db, "Item", &q, &rows) != CSTACK_OK)
        die("cstack_find_many", cstack_errmsg(db));
    uint64_t acc = 0;
    size_t count = cstack_rows_count(rows);
    for (size_t i = 0; i < count; i++)
        acc += api_checksum_row(cstack_rows_get(rows, i));
    cstack_rows_free(rows);
    *sum = acc;
    return now_ms() - t0;
}

/* ---- driver ---- */

static void path_of(const bench *b, char *out, size_t cap, const char *name, int rep)
{
    snprintf(out, cap, "%s/%s%d.db", b->dir, name, rep);
}

static void remove_db(const char *path)
{
    char side[340];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

static double min2(double a, double b)
{
    return a < b ? a : b;
}

static void report(const char *what, size_t n, double cs, double raw)
{
    double ratio = cs / raw;
    printf("%-13s %7zu rows   cstack %8.2f ms   raw sqlite %8.2f ms   %.2fx (target <= %.2fx)%s\n",
           what, n, cs, raw, ratio, TARGET, ratio <= TARGET ? "" : "  ** over target **");
}

/* The synced model's create against the untracked one: the cost of change
 * capture (SPEC 13's sync line; the sync benchmarks own that target). */
static void report_capture(size_t n, double synced, double local)
{
    double ratio = synced / local;
    /* For information: bench_sync rates a synced write, its fold included,
     * against the target (a transaction this large folds at its commit). */
    printf("%-13s %7zu rows   cstack %8.2f ms   untracked  %8.2f ms   %.2fx (for information; "
           "bench_sync rates it)\n",
           "create synced", n, synced, local, ratio);
}

/* Times the three creates (raw, @@local, synced) CREATE_REPS times, each on
 * fresh files, and leaves the last raw and @@local databases open for the
 * read benchmark. */
static void bench_create(const bench *b, cstack **cdb, sqlite3 **rdb)
{
    double best_local = 1e300, best_synced = 1e300, best_raw = 1e300;
    for (int rep = 0; rep < CREATE_REPS; rep++) {
        char cpath[320], spath[320], rpath[320];
        path_of(b, cpath, sizeof cpath, "cstack", rep);
        path_of(b, spath, sizeof spath, "synced", rep);
        path_of(b, rpath, sizeof rpath, "raw", rep);
        cstack *c = api_open(b, cpath), *sy = api_open(b, spath);
        sqlite3 *r = raw_open(b, rpath);
        best_raw = min2(best_raw, raw_create(b, r));
        best_local = min2(best_local, api_create(b, c, "Item"));
        best_synced = min2(best_synced, api_create(b, sy, "Synced"));
        cstack_close(sy);
        remove_db(spath);
        if (rep + 1 < CREATE_REPS) {
            cstack_close(c);
            sqlite3_close(r);
            remove_db(cpath);
            remove_db(rpath);
        } else {
            *cdb = c;
            *rdb = r;
        }
    }
    int64_t count = 0;
    if (cstack_count(*cdb, "Item", NULL, &count) != CSTACK_OK || (size_t)count != b->rows)
        die("create", "cstack holds the wrong number of rows");
    report("create", b->rows, best_local, best_raw);
    report_capture(b->rows, best_synced, best_local);
}

static void bench_find(const bench *b, cstack *cdb, sqlite3 *rdb)
{
    double best_cs = 1e300, best_raw = 1e300;
    uint64_t sum_cs = 0, sum_raw = 0;
    for (int rep = 0; rep < FIND_REPS; rep++) {
        best_raw = min2(best_raw, raw_find(rdb, b->find_rows, &sum_raw));
        best_cs = min2(best_cs, api_find(cdb, b->find_rows, &sum_cs));
    }
    if (sum_cs != sum_raw)
        die("find_many", "cstack and raw SQLite read different values");
    report("find_many", b->find_rows, best_cs, best_raw);
}

static const char HELP[] = "usage: bench_store [--rows N] [--find-rows M]\n"
                           "\n"
                           "Measures the embedded runtime against hand-written SQLite on file\n"
                           "databases: N rows created in one transaction (an untracked model,\n"
                           "and for information a synced one) and M rows read back by\n"
                           "find_many, each against prepared statements on raw SQLite.\n"
                           "\n"
                           "options:\n"
                           "  --rows N        rows created per run (default 100000)\n"
                           "  --find-rows M   rows read per find_many (default 10000, at most N)\n"
                           "\n"
                           "output: the time of each side and their ratio against its target;\n"
                           "the best of several runs.  Exit status 0 unless something errors.";

int main(int argc, char **argv)
{
    bench_name = "bench_store";
    bench b = {0};
    bench_rows_args(argc, argv, &b.rows, &b.find_rows, HELP);
    b.schema = bench_schema(SCHEMA);
    bench_tmpdir(b.dir, sizeof b.dir, "cstack-bench");
    make_dataset(&b.data, b.rows);
    printf("bench_store: SQLite %s, file databases in %s, best of %d (create) / %d (find_many)\n",
           sqlite3_libversion(), b.dir, CREATE_REPS, FIND_REPS);

    cstack *cdb = NULL;
    sqlite3 *rdb = NULL;
    bench_create(&b, &cdb, &rdb);
    bench_find(&b, cdb, rdb);

    cstack_close(cdb);
    sqlite3_close(rdb);
    char path[320];
    path_of(&b, path, sizeof path, "cstack", CREATE_REPS - 1);
    remove_db(path);
    path_of(&b, path, sizeof path, "raw", CREATE_REPS - 1);
    remove_db(path);
    rmdir(b.dir);
    cstack_schema_free(b.schema);
    free_dataset(&b.data);
    return 0;
}
