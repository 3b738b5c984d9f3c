/*
 * bench_sync.c -- the sync figures of SPEC section 13 and issue 8, in one
 * run:
 *
 *   create    N rows (default 100k) of a 6-column model inserted with
 *             cstack_create in one transaction, into a synced model plus
 *             the fold of those writes into the clock tables (which every
 *             push needs: docs/sync.md "Capture"), vs the same rows into an
 *             identical @@local (untracked) model.  The headline.
 *             Target: <= 1.5x.
 *   apply     the N-row changeset exported from the synced side, applied
 *             to a fresh database: column changes per second.
 *             Target: >= 200k/s.
 *   metadata  bytes of the sync metadata (every `_cstack_*` table and index,
 *             minus what an untracked database of the same schema holds)
 *             against bytes of the data (the table and its indexes), from
 *             SQLite's dbstat (page_count arithmetic where dbstat is
 *             missing).  Target: <= 1x.
 *
 * The fold is timed as cstack_sync_compact right after the commit: with no
 * peer known, compaction does nothing but fold (a large transaction has
 * already been folded as it committed; then this finds nothing to do).  The
 * first upload-queue read after it is printed too, apart: it walks the
 * changes like an export, which is the push's own cost, not the write's.
 *
 * Every database is a file in one temporary directory, opened by the
 * runtime, so both sides get the same PRAGMAs (WAL, synchronous=NORMAL,
 * foreign keys).  Timings are the best of several runs, each on a fresh
 * file, the two sides alternating so that drift of the machine hits both.
 * The results are checked (rows on each side, one clock row per synced
 * row, one pending transaction, every row applied); a wrong result exits
 * 1.  A missed target is reported, not failed: exit status 0 on a slow
 * machine.
 *
 * With --random-keys the ids are created in a scattered order (every id
 * once), as random ids such as Uuids would be.
 *
 * usage: bench_sync [--rows N] [--random-keys]
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cstack.h"
#include "bench_util.h"

#define REPS 5
#define CREATE_TARGET 1.5
#define APPLY_TARGET 1500000.0 /* column changes/s (issue 8; cr-sqlite: 132k here) */
#define META_TARGET 1.0

static const char SCHEMA[] = "model Item {\n"
                             "  id     Int      @id\n"
                             "  name   String\n"
                             "  qty    Int\n"
                             "  score  Float\n"
                             "  active Boolean\n"
                             "  at     DateTime\n"
                             "}\n"
                             "model LocalItem {\n"
                             "  id     Int      @id\n"
                             "  name   String\n"
                             "  qty    Int\n"
                             "  score  Float\n"
                             "  active Boolean\n"
                             "  at     DateTime\n"
                             "  @@local\n"
                             "}\n";

static const char *const FIELDS[] = {"id", "name", "qty", "score", "active", "at"};
#define NFIELDS 6

typedef struct bench {
    cstack_schema *schema;
    char dir[256];
    size_t rows;
    size_t stride; /* ids are i * stride % rows + 1: 1, or scattered */
    dataset data;
} bench;

static const char *path_of(const bench *b, const char *name)
{
    static char p[4][512];
    static int next;
    char *out = p[next++ % 4];
    snprintf(out, 512, "%s/%s", b->dir, name);
    return out;
}

/* Removes a database and its WAL files, so each run starts empty. */
static void remove_db(const char *path)
{
    char p[600];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

static cstack *open_db(const bench *b, const char *path)
{
    cstack *db = NULL;
    if (cstack_open(b->schema, path, NULL, &db) != CSTACK_OK ||
        cstack_bootstrap(db, NULL) != CSTACK_OK)
        die(path, db ? cstack_errmsg(db) : "out of memory");
    return db;
}

/* CPU time of this process: on a busy shared machine it varies far less
 * than the wall clock, so it is printed beside it. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Inserts every row into `model` in one transaction; returns the time. */
static double insert_all(const bench *b, cstack *db, const char *model)
{
    cstack_field_value f[NFIELDS];
    for (size_t c = 0; c < NFIELDS; c++)
        f[c].field = FIELDS[c];
    cstack_data data = {f, NFIELDS};
    double t0 = now_ms();
    if (cstack_begin(db) != CSTACK_OK)
        die("begin", cstack_errmsg(db));
    for (size_t i = 0; i < b->rows; i++) {
        f[0].value = cstack_v_int((int64_t)(i * b->stride % b->rows) + 1);
        f[1].value = cstack_v_text(b->data.name[i]);
        f[2].value = cstack_v_int((int64_t)(i * 7919 % 1000));
        f[3].value = cstack_v_float((double)i * 0.25);
        f[4].value = cstack_v_bool((int)(i & 1));
        f[5].value = cstack_v_text(b->data.at[i]);
        if (cstack_create(db, model, &data, NULL) != CSTACK_OK)
            die(model, cstack_errmsg(db));
    }
    if (cstack_commit(db) != CSTACK_OK)
        die("commit", cstack_errmsg(db));
    return now_ms() - t0;
}

/* One integer from SQL on a runtime's write connection (bench checks). */
typedef struct query {
    const char *sql;
    int64_t value;
} query;

static int run_query(sqlite3 *conn, void *ctx)
{
    query *q = ctx;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn, q->sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -1;
    q->value = rc ? -1 : sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static int64_t sql_int(cstack *db, const char *sql)
{
    query q = {sql, -1};
    if (cstack_with_sqlite(db, run_query, &q) != 0)
        die(sql, cstack_errmsg(db));
    return q.value;
}

static void expect_rows(const bench *b, cstack *db, const char *model, const char *what)
{
    int64_t n = -1;
    if (cstack_count(db, model, NULL, &n) != CSTACK_OK)
        die("count", cstack_errmsg(db));
    if (n != (int64_t)b->rows) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s holds %" PRId64 " %s rows, expected %zu", what, n, model,
                 b->rows);
        die("check", msg);
    }
}

typedef struct run {
    double create_ms; /* create and commit */
    double fold_ms;   /* the fold left for the first sync call */
    double queue_ms;  /* the first upload-queue read, after the fold */
    double cpu_ms;    /* CPU time of create, commit and fold */
} run;

/* One timed insert run into a fresh file; the file is kept for later use.
 * On the synced side the fold that follows is timed too, and the result
 * checked: one alive clock row per row, all folded, one transaction
 * pending. */
static run insert_run(const bench *b, const char *file, const char *model, bool synced)
{
    const char *path = path_of(b, file);
    remove_db(path);
    cstack *db = open_db(b, path);
    double c0 = cpu_ms();
    run r = {insert_all(b, db, model), 0, 0, 0};
    if (synced) {
        double t0 = now_ms();
        int64_t removed = 0, pending = 0;
        if (cstack_sync_compact(db, &removed) != CSTACK_OK)
            die("fold", cstack_errmsg(db));
        r.fold_ms = now_ms() - t0;
        r.cpu_ms = cpu_ms() - c0;
        t0 = now_ms();
        if (cstack_upload_pending(db, &pending) != CSTACK_OK)
            die("upload_pending", cstack_errmsg(db));
        r.queue_ms = now_ms() - t0;
        if (sql_int(db, "SELECT count(*) FROM _cstack_txlog") != 0)
            die("check", "the capture log was not folded");
        if (sql_int(db, "SELECT count(*) FROM _cstack_clk_Item WHERE _cstack_cl = 1") !=
            (int64_t)b->rows)
            die("check", "the fold did not make one alive clock row per row");
        if (pending != 1)
            die("check", "the synced create is not exactly one pending transaction");
    }
    else
        r.cpu_ms = cpu_ms() - c0;
    expect_rows(b, db, model, file);
    cstack_close(db);
    return r;
}

/* ---- metadata size ---- */

typedef struct sizes {
    int64_t data; /* the Item table and its indexes */
    int64_t meta; /* every _cstack_* table and index */
    int64_t total;
    int dbstat; /* 1 when measured with dbstat */
    char detail[2048];
} sizes;

static int measure(sqlite3 *conn, void *ctx)
{
    sizes *sz = ctx;
    sqlite3_stmt *st = NULL;
    const char *sql =
        "SELECT s.name, coalesce(m.tbl_name, s.name), sum(s.pgsize) FROM dbstat s "
        "LEFT JOIN sqlite_master m ON m.name = s.name GROUP BY s.name ORDER BY 3 DESC";
    if (sqlite3_prepare_v2(conn, sql, -1, &st, NULL) == SQLITE_OK) {
        sz->dbstat = 1;
        size_t off = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            const char *tbl = (const char *)sqlite3_column_text(st, 1);
            int64_t bytes = sqlite3_column_int64(st, 2);
            sz->total += bytes;
            if (strcmp(tbl, "Item") == 0)
                sz->data += bytes;
            else if (strncmp(name, "_cstack", 7) == 0 || strncmp(tbl, "_cstack", 7) == 0)
                sz->meta += bytes;
            if ((strncmp(tbl, "_cstack", 7) == 0 || strcmp(tbl, "Item") == 0) && bytes > 4096 &&
                off < sizeof sz->detail - 128)
                off += (size_t)snprintf(sz->detail + off, sizeof sz->detail - off,
                                        "      %-36s %10" PRId64 " bytes\n", name, bytes);
        }
        sqlite3_finalize(st);
        return 0;
    }
    /* No dbstat: the whole file, for page arithmetic by the caller. */
    sz->dbstat = 0;
    snprintf(sz->detail, sizeof sz->detail, "%s", sqlite3_errmsg(conn));
    if (sqlite3_prepare_v2(conn,
                           "SELECT page_count * page_size FROM pragma_page_count, "
                           "pragma_page_size",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    if (sqlite3_step(st) == SQLITE_ROW)
        sz->total = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static sizes sizes_of(const bench *b, const char *file)
{
    cstack *db = open_db(b, path_of(b, file));
    sizes sz;
    memset(&sz, 0, sizeof sz);
    if (cstack_with_sqlite(db, measure, &sz) != 0)
        die("measure", sz.detail);
    cstack_close(db);
    return sz;
}

/* Metadata of a tracked database against the data it tracks.  `empty` is an
 * untracked database of the same schema (same rows, in the @@local model):
 * its _cstack_* objects are what every database has, synced or not. */
static void report_metadata(const bench *b, const char *label, const char *tracked,
                            const char *untracked)
{
    sizes t = sizes_of(b, tracked), u = sizes_of(b, untracked);
    int64_t data, meta;
    if (t.dbstat && u.dbstat) {
        data = t.data;
        meta = t.meta - u.meta;
    } else {
        /* Same rows on both sides, so the difference of the files is the
         * metadata and the untracked file (less a near-empty one) the data. */
        data = u.total;
        meta = t.total - u.total;
    }
    double ratio = data > 0 ? (double)meta / (double)data : 0;
    printf("  %-9s data %" PRId64 " bytes, sync metadata %" PRId64 " bytes: %.2fx "
           "(target <= %.1fx) %s%s\n",
           label, data, meta, ratio, META_TARGET, ratio <= META_TARGET ? "ok" : "OVER",
           t.dbstat ? "" : " [page_count fallback]");
    if (t.dbstat)
        fputs(t.detail, stdout);
}

static const char USAGE[] =
    "usage: bench_sync [--rows N] [--random-keys]\n"
    "\n"
    "Measures the sync layer of the embedded runtime on file databases:\n"
    "  capture   N rows x 6 columns created in one transaction into a synced\n"
    "            model, plus the fold of their clock rows that every push\n"
    "            needs (the headline, target 1.5x), against the same rows\n"
    "            created into an untracked (@@local) one;\n"
    "  apply     the synced side's changeset merged into a fresh database, in\n"
    "            column changes per second;\n"
    "  metadata  bytes of sync metadata against bytes of data.\n"
    "\n"
    "options:\n"
    "  --rows N        rows per run (default 100000)\n"
    "  --random-keys   create the ids in a scattered order, as random ids would\n"
    "                  come, instead of ascending\n"
    "\n"
    "output: one line per figure with its target; each time is the best of\n"
    "several runs, with CPU time beside the wall clock.  The results are\n"
    "checked (row counts, one clock row per row, every change applied): a\n"
    "wrong result exits 1.  A figure over its target is reported, not an error.\n";

int main(int argc, char **argv)
{
    bench_name = "bench_sync";
    bench b;
    memset(&b, 0, sizeof b);
    b.rows = 100000;
    bool random_keys = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc) {
            char *end = NULL;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v <= 0 || v > 100000000)
                die("usage", "--rows needs a positive count");
            b.rows = (size_t)v;
        } else if (strcmp(argv[i], "--random-keys") == 0) {
            random_keys = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return fputs(USAGE, stdout) < 0;
        } else {
            fprintf(stderr, "bench_sync: unknown argument '%s'; try --help\n", argv[i]);
            return 2;
        }
    }
    /* A stride near 0.618 of the rows that shares no factor with their
     * count visits every id once, far from the one before. */
    b.stride = 1;
    for (size_t st = b.rows * 618 / 1000 + 1; random_keys && b.rows > 2; st++) {
        size_t x = st, y = b.rows;
        while (y) {
            size_t t = x % y;
            x = y;
            y = t;
        }
        if (x == 1) {
            b.stride = st;
            break;
        }
    }
    if (cstack_schema_parse("bench.cstack", SCHEMA, strlen(SCHEMA), &b.schema, NULL) != 0)
        die("schema", "parse failed");
    const char *tmp = getenv("TMPDIR");
    snprintf(b.dir, sizeof b.dir, "%s/cstack-bench-sync-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(b.dir))
        die("mkdtemp", b.dir);
    make_dataset(&b.data, b.rows);
    printf("bench_sync: %zu rows x %d columns (%s ids), file databases in %s, best of %d\n",
           b.rows, NFIELDS, b.stride == 1 ? "ascending" : "scattered", b.dir, REPS);

    /* Create: alternate the two sides so drift of the machine hits both. */
    double plain = 1e300, synced = 1e300, total = 1e300, fold = 1e300, queue = 1e300;
    double cpu_plain = 1e300, cpu_synced = 1e300;
    for (int r = 0; r < REPS; r++) {
        run u = insert_run(&b, "untracked.db", "LocalItem", false);
        run t = insert_run(&b, "tracked.db", "Item", true);
        cpu_plain = u.cpu_ms < cpu_plain ? u.cpu_ms : cpu_plain;
        cpu_synced = t.cpu_ms < cpu_synced ? t.cpu_ms : cpu_synced;
        plain = u.create_ms < plain ? u.create_ms : plain;
        synced = t.create_ms < synced ? t.create_ms : synced;
        total = t.create_ms + t.fold_ms < total ? t.create_ms + t.fold_ms : total;
        fold = t.fold_ms < fold ? t.fold_ms : fold;
        queue = t.queue_ms < queue ? t.queue_ms : queue;
    }
    double ratio = total / plain;
    printf("  create    untracked %.1f ms, synced including its fold %.1f ms: %.2fx "
           "(target <= %.1fx) %s\n",
           plain, total, ratio, CREATE_TARGET, ratio <= CREATE_TARGET ? "ok" : "OVER");
    printf("            (synced create and commit %.1f ms: %.2fx; fold left for the first sync "
           "call %.1f ms;\n"
           "             then the first upload-queue read, an export's walk: %.1f ms;\n"
           "             CPU time: untracked %.1f ms, synced including its fold %.1f ms: %.2fx)\n",
           synced, synced / plain, fold, queue, cpu_plain, cpu_synced, cpu_synced / cpu_plain);

    /* Apply: the tracked database's changeset into fresh databases. */
    cstack *src = open_db(&b, path_of(&b, "tracked.db"));
    void *cs = NULL;
    size_t len = 0;
    double t0 = now_ms();
    if (cstack_changes_export(src, 0, &cs, &len, NULL) != CSTACK_OK)
        die("export", cstack_errmsg(src));
    double export_ms = now_ms() - t0;
    cstack_close(src);
    double best = 1e300;
    cstack_apply_stats st = {0};
    for (int r = 0; r < REPS; r++) {
        const char *path = path_of(&b, "replica.db");
        remove_db(path);
        cstack *dst = open_db(&b, path);
        t0 = now_ms();
        if (cstack_changes_apply(dst, cs, len, &st) != CSTACK_OK)
            die("apply", cstack_errmsg(dst));
        double ms = now_ms() - t0;
        best = ms < best ? ms : best;
        if (st.rows != (int64_t)b.rows || st.columns != (int64_t)b.rows * (NFIELDS - 1))
            die("check", "the apply did not merge every row and column");
        expect_rows(&b, dst, "Item", "replica.db");
        cstack_close(dst);
    }
    double per_s = (double)st.columns / (best / 1e3);
    printf("  export    %zu bytes (%.1f bytes/row) in %.1f ms\n", len, (double)len / (double)b.rows,
           export_ms);
    printf("  apply     %" PRId64 " rows, %" PRId64 " column changes (%" PRId64
           " won) in %.1f ms: %.0f column changes/s (target >= %.0f) %s\n",
           st.rows, st.columns, st.won, best, per_s, APPLY_TARGET,
           per_s >= APPLY_TARGET ? "ok" : "UNDER");
    cstack_free(cs);

    report_metadata(&b, "metadata", "tracked.db", "untracked.db");
    report_metadata(&b, "(replica)", "replica.db", "untracked.db");

    const char *files[] = {"tracked.db", "untracked.db", "replica.db"};
    for (size_t i = 0; i < 3; i++)
        remove_db(path_of(&b, files[i]));
    rmdir(b.dir);
    free_dataset(&b.data);
    cstack_schema_free(b.schema);
    return 0;
}
