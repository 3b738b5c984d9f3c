/*
 * bench_pagestore.c -- the page-store VFS (docs/pagestore.md) against a
 * plain file, in one run:
 *
 *   insert     N rows (default 100k) in one transaction, commit included;
 *   find_many  M rows (default 10k) read back with cstack_find_many after
 *              closing and reopening the database (cold: the server store
 *              fetches its pages over HTTP then).
 *
 * on three stores: a plain file (WAL, the runtime's default), the LMDB page
 * store, and the server page store (`cstack serve`'s page storage, a server
 * started in this process on loopback).  Row counts are checked on every
 * store.  Prints each time and its ratio to the plain file.  Exit status 0
 * unless something errors; it never fails on a slow machine.
 *
 * usage: bench_pagestore [--rows N] [--find-rows M]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "cstack.h"
#include "cstack_server.h"

#define SECRET "bench-pagestore-secret"

static const char SCHEMA[] = "auth User {\n"
                             "  id String\n"
                             "}\n"
                             "model Item {\n"
                             "  id     Int      @id\n"
                             "  name   String\n"
                             "  qty    Int\n"
                             "  score  Float\n"
                             "  at     DateTime\n"
                             "  @@local\n"
                             "}\n";

typedef struct result {
    double insert_ms, find_ms;
} result;

typedef struct bench {
    cstack_schema *schema;
    char dir[256];
    dataset data;
    size_t rows, find_rows;
} bench;

static cstack *open_db(const bench *b, const char *path, const char *vfs)
{
    cstack_open_options o = {.vfs = vfs};
    cstack *db = NULL;
    if (cstack_open(b->schema, path, &o, &db) || cstack_bootstrap(db, NULL))
        die("open", db ? cstack_errmsg(db) : path);
    return db;
}

static double insert_rows(const bench *b, cstack *db)
{
    const dataset *ds = &b->data;
    static const char *const NAMES[] = {"id", "name", "qty", "score", "at"};
    cstack_field_value f[5];
    for (int i = 0; i < 5; i++)
        f[i].field = NAMES[i];
    cstack_data data = {f, 5};
    double t0 = now_ms();
    if (cstack_begin(db))
        die("begin", cstack_errmsg(db));
    for (size_t i = 0; i < ds->n; i++) {
        f[0].value = cstack_v_int((int64_t)i + 1);
        f[1].value = cstack_v_text(ds->name[i]);
        f[2].value = cstack_v_int(qty_of(i));
        f[3].value = cstack_v_float(score_of(i));
        f[4].value = cstack_v_text(ds->at[i]);
        if (cstack_create(db, "Item", &data, NULL))
            die("create", cstack_errmsg(db));
    }
    if (cstack_commit(db))
        die("commit", cstack_errmsg(db));
    return now_ms() - t0;
}

static double find_rows(const bench *b, cstack *db)
{
    cstack_query q = {0};
    q.take = (int64_t)b->find_rows;
    cstack_rows *rows = NULL;
    double t0 = now_ms();
    if (cstack_find_many(db, "Item", &q, &rows))
        die("find_many", cstack_errmsg(db));
    double ms = now_ms() - t0;
    if (cstack_rows_count(rows) != b->find_rows)
        die("find_many", "wrong number of rows");
    cstack_rows_free(rows);
    int64_t n = 0;
    if (cstack_count(db, "Item", NULL, &n) || (size_t)n != b->rows)
        die("count", "wrong number of rows in the store");
    return ms;
}

/* Insert, close, reopen (a new store from `make` when given), read. */
static result run(const bench *b, const char *path, const char *vfs,
                  cstack_pagestore *(*make)(const bench *, void *), void *ctx)
{
    result r;
    if (make && cstack_pagestore_register(vfs, make(b, ctx)))
        die("register", vfs);
    cstack *db = open_db(b, path, vfs);
    r.insert_ms = insert_rows(b, db);
    cstack_close(db);
    if (make && (cstack_pagestore_unregister(vfs) || cstack_pagestore_register(vfs, make(b, ctx))))
        die("register again", vfs);
    db = open_db(b, path, vfs);
    r.find_ms = find_rows(b, db);
    cstack_close(db);
    if (make && cstack_pagestore_unregister(vfs))
        die("unregister", vfs);
    return r;
}

static cstack_pagestore *make_lmdb(const bench *b, void *ctx)
{
    char dir[320];
    snprintf(dir, sizeof dir, "%s/lmdb", b->dir);
    cstack_pagestore *ps = NULL;
    if (cstack_pagestore_lmdb(dir, (uint64_t)4 << 30, &ps))
        die("lmdb", dir);
    return ps;
}

static cstack_pagestore *make_server(const bench *b, void *ctx)
{
    cstack_pagestore *ps = NULL;
    if (cstack_pagestore_server(b->schema, ctx, NULL, &ps))
        die("server store", "cannot connect");
    return ps;
}

static void report(const char *what, double ms, double file_ms)
{
    printf("  %-34s %9.1f ms  %6.2fx the plain file\n", what, ms, ms / file_ms);
}

static const char HELP[] = "usage: bench_pagestore [--rows N] [--find-rows M]\n"
                           "\n"
                           "Inserts N rows in one transaction, then (after reopening) reads M\n"
                           "back with find_many, on a plain file, on the LMDB page store and on\n"
                           "the server page store (a server on loopback, started here), and\n"
                           "prints each time with its ratio to the plain file.\n"
                           "\n"
                           "options:\n"
                           "  --rows N        rows inserted (default 100000)\n"
                           "  --find-rows M   rows read back (default 10000, at most N)\n"
                           "\n"
                           "Exit status 0 unless something errors.";

static cstack_server *start_server(const bench *b, char *url, size_t cap)
{
    char db[320];
    snprintf(db, sizeof db, "%s/server.db", b->dir);
    cstack_server_config cfg = {.schema = b->schema, .db_path = db, .jwt_secret = SECRET,
                                .backup_quota = (uint64_t)4 << 30};
    cstack_server *srv = NULL;
    char err[512];
    if (cstack_server_start(&cfg, &srv, err, sizeof err))
        die("server", err);
    snprintf(url, cap, "http://127.0.0.1:%d", cstack_server_port(srv));
    return srv;
}

int main(int argc, char **argv)
{
    bench_name = "bench_pagestore";
    bench b = {0};
    bench_rows_args(argc, argv, &b.rows, &b.find_rows, HELP);
    b.schema = bench_schema(SCHEMA);
    bench_tmpdir(b.dir, sizeof b.dir, "cstack-bench");
    make_dataset(&b.data, b.rows);
    printf("bench_pagestore: %zu rows inserted in one transaction, %zu read back after "
           "reopening; in %s\n", b.rows, b.find_rows, b.dir);

    char path[320], url[64];
    snprintf(path, sizeof path, "%s/plain.db", b.dir);
    result file = run(&b, path, NULL, NULL, NULL);
    result lmdb = run(&b, "bench.db", "bench-lmdb", make_lmdb, NULL);
    cstack_server *srv = start_server(&b, url, sizeof url);
    char *token = NULL, err[256];
    if (cstack_server_mint_token(SECRET, "bench", NULL, 0, time(NULL), 3600, &token, err,
                                 sizeof err))
        die("token", err);
    cstack_sync_options o = {.url = url, .token = token};
    result server = run(&b, "bench.db", "bench-server", make_server, &o);
    cstack_server_stop(srv);

    printf("insert %zu rows:\n", b.rows);
    report("plain file (WAL)", file.insert_ms, file.insert_ms);
    report("LMDB page store", lmdb.insert_ms, file.insert_ms);
    report("server page store (loopback)", server.insert_ms, file.insert_ms);
    printf("find_many %zu rows (reopened):\n", b.find_rows);
    report("plain file (WAL)", file.find_ms, file.find_ms);
    report("LMDB page store", lmdb.find_ms, file.find_ms);
    report("server page store (loopback)", server.find_ms, file.find_ms);
    cstack_free(token);
    cstack_schema_free(b.schema);
    free_dataset(&b.data);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", b.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_pagestore: could not remove %s\n", b.dir);
    return 0;
}
