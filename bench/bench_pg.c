/*
 * bench_pg.c -- the sync server on PostgreSQL against the SQLite store, in
 * one run (docs/postgres.md, issue 12 "Benchmarks"), on loopback:
 *
 *   push        N rows (default 100k) x 6 columns pushed by one device in
 *               batches of B rows (one transaction each, made and exported
 *               before the clock starts), one after the other on one
 *               keep-alive connection: column changes per second.
 *   initial     a fresh device pulls those N rows through the sync client
 *               (cstack_sync_run_once) until caught up and checksum-verified;
 *               the device must then hold N rows and agree with the server's
 *               checksum, or the benchmark fails.
 *   delivery    C streams (default 1000): for SQLite on its one server, for
 *               PostgreSQL spread over two servers on one database; one write
 *               pushed through the first server per round, timed from the
 *               push's 200 to its arrival on every stream (p50, p99); every
 *               stream must receive every round.
 *
 * Each figure of PostgreSQL is given with its ratio to SQLite's, measured in
 * the same run on the same machine.  The servers run in bench_child processes
 * (forked, cstack_server_start).  The PostgreSQL cluster is a throwaway one
 * (scripts/pg-cluster.sh, the same as the tests'), started first and
 * stopped at exit, also when the benchmark fails.  The benchmark reports
 * and never fails on a slow machine (exit status 0 unless something errors).
 *
 * usage: bench_pg [--rows N] [--batch B] [--clients C] [--rounds R]
 *        [--cluster SCRIPT]   (--help says more)
 */
#define _GNU_SOURCE /* memmem, in bench_streams.h */
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bench_streams.h"
#include "bench_util.h"
#include "cstack.h"
#include "cstack_server.h"

#define SECRET "bench-secret"
#define COLS 6
#define ROUND_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 60000

static const char SCHEMA[] = "auth User { id String }\n"
                             "model Item {\n"
                             "  id     Int      @id\n"
                             "  name   String\n"
                             "  qty    Int\n"
                             "  score  Float\n"
                             "  active Boolean\n"
                             "  at     DateTime\n"
                             "  @@allow('read', auth() != null)\n"
                             "  @@allow('create,update,delete', auth() != null)\n"
                             "}\n";

typedef struct bench {
    char dir[256];
    char script[512]; /* scripts/pg-cluster.sh */
    char state[300];  /* its state file */
    char pg_url[512]; /* the cluster's URL (its "postgres" database) */
    cstack_schema *schema;
    char hash[65];
    size_t rows, batch, clients, rounds;
} bench;

/* What one store measured. */
typedef struct figures {
    double push_cols_per_s;
    double initial_s;
    double p50, p99;
    size_t missing;
} figures;

static bench B;
static pid_t owner; /* only the process that started the cluster stops it (not a
                     * forked server) */

/* ---- the cluster -------------------------------------------------------------- */

/* At exit, also after a failure: the cluster stopped, the files removed. */
static void cleanup(void)
{
    if (getpid() != owner)
        return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' stop '%s'", B.script, B.state);
    if (B.state[0] && system(cmd) != 0)
        fprintf(stderr, "bench_pg: could not stop the cluster (%s)\n", B.state);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", B.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_pg: could not remove %s\n", B.dir);
    owner = 0;
}

static void on_signal(int sig)
{
    (void)sig;
    exit(1); /* runs cleanup */
}

static void start_cluster(void)
{
    snprintf(B.state, sizeof B.state, "%s/pg.state", B.dir);
    owner = getpid();
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    char cmd[1024], *line = NULL;
    snprintf(cmd, sizeof cmd, "'%s' start '%s'", B.script, B.state);
    FILE *p = popen(cmd, "r");
    size_t cap = 0;
    ssize_t n = p ? getline(&line, &cap, p) : -1;
    int rc = p ? pclose(p) : -1;
    if (n <= 0 || rc != 0)
        die("PostgreSQL", "the cluster did not start (scripts/pg-cluster.sh said why above)");
    line[strcspn(line, "\n")] = 0;
    snprintf(B.pg_url, sizeof B.pg_url, "%s", line);
    free(line);
}

/* A new database of the cluster; its URL in out. */
static void create_database(const char *name, char *out, size_t cap)
{
    PGconn *c = PQconnectdb(B.pg_url);
    if (PQstatus(c) != CONNECTION_OK)
        die("PostgreSQL", PQerrorMessage(c));
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        die(sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    snprintf(out, cap, "%.*s/%s", (int)(strrchr(B.pg_url, '/') - B.pg_url), B.pg_url, name);
}

/* ---- servers in bench_child processes ------------------------------------------------ */

static bench_child fork_server(const char *db)
{
    static int nservers;
    char pages[400];
    snprintf(pages, sizeof pages, "%s/pages-%d", B.dir, nservers++);
    cstack_server_config cfg = {.schema = B.schema,
                                .db_path = db,
                                .pages_path = pages,
                                .jwt_secret = SECRET,
                                .max_connections = (unsigned)(B.clients + 64),
                                .max_per_address = (unsigned)(B.clients + 64),
                                .checkpoint_ms = 10000,
                                .keepalive_ms = 15000};
    return bench_server_fork(&cfg);
}

/* ---- a device that pushes ---------------------------------------------------- */

typedef struct pusher {
    cstack *db;
    CURL *curl;
    struct curl_slist *hdrs;
    char url[96];
} pusher;

static size_t discard(char *p, size_t s, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return s * n;
}

static void pusher_init(pusher *p, int port)
{
    char *tok = NULL, err[256], line[4096];
    if (cstack_server_mint_token(SECRET, "writer", NULL, 0, time(NULL), 3600, &tok, err,
                                 sizeof err) != 0)
        die("token", err);
    if (cstack_open_in_memory(B.schema, &p->db) != 0 || cstack_bootstrap(p->db, NULL) != 0)
        die("device", "cannot open");
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d/v1/push", port);
    snprintf(line, sizeof line, "Authorization: Bearer %s", tok);
    p->hdrs = curl_slist_append(NULL, line);
    snprintf(line, sizeof line, "X-Cstack-Schema: %s", B.hash);
    p->hdrs = curl_slist_append(p->hdrs, line);
    snprintf(line, sizeof line, "X-Cstack-Site: %s", cstack_sync_site_id(p->db));
    p->hdrs = curl_slist_append(p->hdrs, line);
    p->hdrs = curl_slist_append(p->hdrs, "Content-Type: application/octet-stream");
    p->hdrs = curl_slist_append(p->hdrs, "Expect:");
    cstack_free(tok);
    p->curl = curl_easy_init();
    curl_easy_setopt(p->curl, CURLOPT_URL, p->url);
    curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
}

static void pusher_free(pusher *p)
{
    curl_easy_cleanup(p->curl);
    curl_slist_free_all(p->hdrs);
    cstack_close(p->db);
}

/* Writes rows [from, from + n) in one local transaction. */
static void write_rows(cstack *db, size_t from, size_t n)
{
    enum { CHUNK = 1000 };
    cstack_field_value f[CHUNK][COLS];
    cstack_data rows[CHUNK];
    char name[CHUNK][32];
    if (cstack_begin(db) != 0)
        die("begin", cstack_errmsg(db));
    for (size_t base = 0; base < n; base += CHUNK) {
        size_t k = n - base < CHUNK ? n - base : CHUNK;
        for (size_t i = 0; i < k; i++) {
            int64_t id = (int64_t)(from + base + i);
            snprintf(name[i], sizeof name[i], "item %" PRId64, id);
            f[i][0] = (cstack_field_value){"id", cstack_v_int(id)};
            f[i][1] = (cstack_field_value){"name", cstack_v_text(name[i])};
            f[i][2] = (cstack_field_value){"qty", cstack_v_int(id % 97)};
            f[i][3] = (cstack_field_value){"score", cstack_v_float((double)id / 7.0)};
            f[i][4] = (cstack_field_value){"active", cstack_v_bool(id % 2)};
            f[i][5] = (cstack_field_value){"at", cstack_v_text("2026-11-26T10:40:21.123456Z")};
            rows[i] = (cstack_data){f[i], COLS};
        }
        int64_t count = 0;
        if (cstack_create_many(db, "Item", rows, k, &count) != 0)
            die("create_many", cstack_errmsg(db));
    }
    if (cstack_commit(db) != 0)
        die("commit", cstack_errmsg(db));
}

/* Pushes the device's oldest pending transaction; dies unless it is
 * acknowledged. */
static void push_next(pusher *p)
{
    cstack_upload_tx *tx = NULL;
    if (cstack_upload_next(p->db, &tx) != 0 || !tx)
        die("push", "nothing to push");
    size_t len = 0;
    const void *bytes = cstack_upload_tx_changeset(tx, &len);
    char batch[128];
    snprintf(batch, sizeof batch, "X-Cstack-Batch: %s:%" PRId64, cstack_sync_site_id(p->db),
             cstack_upload_tx_version(tx));
    struct curl_slist *h = curl_slist_append(NULL, batch);
    for (struct curl_slist *i = p->hdrs; i; i = i->next)
        h = curl_slist_append(h, i->data);
    curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, bytes);
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode cc = curl_easy_perform(p->curl);
    long status = 0;
    curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK || status != 200)
        die("push", cc != CURLE_OK ? curl_easy_strerror(cc) : "not answered 200");
    cstack_upload_complete(p->db, cstack_upload_tx_version(tx));
    cstack_upload_tx_free(tx);
    curl_slist_free_all(h);
}

/* ---- push throughput and initial sync ------------------------------------------ */

static void bench_push_and_initial(const char *store, const char *db, figures *fig)
{
    bench_child srv = fork_server(db);
    pusher p;
    pusher_init(&p, srv.port);
    /* Every batch is a pending transaction before the clock starts. */
    for (size_t from = 0; from < B.rows; from += B.batch)
        write_rows(p.db, from, B.rows - from < B.batch ? B.rows - from : B.batch);
    double t0 = now_ms();
    for (size_t from = 0; from < B.rows; from += B.batch)
        push_next(&p);
    double push_s = (now_ms() - t0) / 1e3;
    fig->push_cols_per_s = (double)(B.rows * COLS) / push_s;
    pusher_free(&p);
    /* A fresh device (a file, as an app's) syncs everything. */
    char path[400], url[64];
    snprintf(path, sizeof path, "%s/%s-device.db", B.dir, store);
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    cstack *dev = NULL;
    if (cstack_open(B.schema, path, NULL, &dev) != 0 || cstack_bootstrap(dev, NULL) != 0)
        die(path, "cannot open");
    char *tok = NULL, err[256];
    if (cstack_server_mint_token(SECRET, "reader", NULL, 0, time(NULL), 3600, &tok, err,
                                 sizeof err) != 0)
        die("token", err);
    cstack_sync_options o = {.url = url, .token = tok};
    cstack_sync_status st;
    t0 = now_ms();
    if (cstack_sync_run_once(dev, &o, NULL, NULL, &st) != 0)
        die("initial sync", cstack_errmsg(dev));
    fig->initial_s = (now_ms() - t0) / 1e3;
    int64_t count = 0;
    cstack_count(dev, "Item", NULL, &count);
    if (count != (int64_t)B.rows || st.checksum_ok != 1) {
        fprintf(stderr, "bench_pg: %s: the fresh device holds %" PRId64 " of %zu rows, checksum %s\n",
                store, count, B.rows, st.checksum_ok == 1 ? "equal" : "DIFFERENT");
        die(store, "the server lost or changed pushed rows");
    }
    printf("%-8s push %zu rows x %d columns in %.2f s: %.0f column changes/s; initial sync of "
           "%" PRId64 " rows %.2f s (checksum equal)\n",
           store, B.rows, COLS, push_s, fig->push_cols_per_s, count, fig->initial_s);
    cstack_close(dev);
    cstack_free(tok);
    bench_server_stop(&srv);
}

/* ---- delivery ------------------------------------------------------------------ */

typedef struct round_push {
    pusher *p;
    streams *st;
} round_push;

/* One round: one row written and pushed; its 200 is the commit time. */
static void *push_round(void *arg)
{
    round_push *r = arg;
    int k = atomic_load(&r->st->round);
    write_rows(r->p->db, 1000000000u + (size_t)k, 1);
    push_next(r->p);
    r->st->commit[k] = now_ms();
    return NULL;
}

static void bench_delivery(const char *store, const bench_child *servers, size_t nservers, figures *fig)
{
    streams st = {.hash = B.hash, .secret = SECRET};
    int ports[2] = {servers[0].port, nservers > 1 ? servers[1].port : servers[0].port};
    double t0 = now_ms();
    size_t ok = streams_open(&st, B.clients, B.clients, B.rounds, ports, nservers,
                             CONNECT_TIMEOUT_MS);
    double connect_s = (now_ms() - t0) / 1e3;
    streams_report_refused(&st, store);
    pusher p;
    pusher_init(&p, servers[0].port);
    round_push rp = {&p, &st};
    double *lat = calloc(B.clients * st.rounds + 1, sizeof *lat);
    if (!lat)
        die("delivery", "out of memory");
    size_t n = 0;
    fig->missing = 0;
    for (size_t k = 0; k < st.rounds; k++) {
        atomic_store(&st.round, (int)k);
        pthread_t th;
        pthread_create(&th, NULL, push_round, &rp);
        streams_pump(&st, now_ms() + ROUND_TIMEOUT_MS, streams_round_done);
        pthread_join(th, NULL);
        streams_collect(&st, k, lat, &n, &fig->missing);
        streams_pump(&st, now_ms() + 200, streams_round_done);
    }
    qsort(lat, n, sizeof *lat, cmp_double);
    fig->p50 = n ? lat[n / 2] : -1;
    fig->p99 = n ? lat[(n * 99 + 99) / 100 - 1] : -1;
    printf("%-8s delivery to %zu streams on %zu server(s) (%zu answered 200, connected in "
           "%.1f s), %zu rounds: p50 %.1f ms, p99 %.1f ms, max %.1f ms; arrivals %zu, missing "
           "%zu\n",
           store, B.clients, nservers, ok, connect_s, st.rounds, fig->p50, fig->p99,
           n ? lat[n - 1] : -1, n, fig->missing);
    if (fig->missing)
        fprintf(stderr, "bench_pg: %s: %zu deliveries never arrived\n", store, fig->missing);
    free(lat);
    pusher_free(&p);
    streams_close(&st);
}

/* ---- main ------------------------------------------------------------------------ */

static size_t arg_size(int argc, char **argv, const char *name, size_t dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return (size_t)strtoull(argv[i + 1], NULL, 10);
    return dflt;
}

static const char *arg_str(int argc, char **argv, const char *name, const char *dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return dflt;
}

static const char USAGE[] =
    "usage: bench_pg [--rows N] [--batch B] [--clients C] [--rounds R] [--cluster SCRIPT]\n"
    "\n"
    "The sync server on PostgreSQL against the SQLite store, in one run, on\n"
    "loopback (the servers in bench_child processes, PostgreSQL a throwaway cluster\n"
    "started by scripts/pg-cluster.sh and stopped at exit):\n"
    "  push       N rows x 6 columns pushed in batches of B rows by one device:\n"
    "             column changes per second;\n"
    "  initial    a fresh device syncs those N rows (time; the row count and the\n"
    "             checksum must match, else the benchmark fails);\n"
    "  delivery   C streams (PostgreSQL: over two servers on one database), one\n"
    "             write pushed through the first server per round: commit ->\n"
    "             arrival on every stream, p50 and p99.\n"
    "\n"
    "options:\n"
    "  --rows N          rows pushed and synced (default 100000)\n"
    "  --batch B         rows per pushed batch (default 1000)\n"
    "  --clients C       streams (default 1000; fewer when the open-file limit is\n"
    "                    lower)\n"
    "  --rounds R        delivery rounds, at most 64 (default 10)\n"
    "  --cluster SCRIPT  the cluster script (default: scripts/pg-cluster.sh of\n"
    "                    this source tree)\n"
    "\n"
    "output: one line per store and phase, then PostgreSQL's figures as ratios\n"
    "to SQLite's.  Exit status 0 unless something errors (a slow machine is not\n"
    "an error).\n";

static void setup(int argc, char **argv)
{
    B.rows = arg_size(argc, argv, "--rows", 100000);
    B.batch = arg_size(argc, argv, "--batch", 1000);
    B.clients = arg_size(argc, argv, "--clients", 1000);
    B.rounds = arg_size(argc, argv, "--rounds", 10);
    if (B.batch == 0)
        B.batch = 1;
    snprintf(B.script, sizeof B.script, "%s",
             arg_str(argc, argv, "--cluster", CSTACK_SOURCE_DIR "/scripts/pg-cluster.sh"));
    B.clients = bench_streams_fit(B.clients);
    bench_tmpdir(B.dir, sizeof B.dir, "cstack-bench-pg");
    B.schema = bench_schema(SCHEMA);
    snprintf(B.hash, sizeof B.hash, "%s", cstack_schema_hash(B.schema));
}

static void report(const figures *lite, const figures *pg)
{
    printf("PostgreSQL / SQLite: push throughput x%.2f, initial sync time x%.2f, delivery p99 "
           "x%.2f (%.1f ms against %.1f ms)\n",
           pg->push_cols_per_s / lite->push_cols_per_s, pg->initial_s / lite->initial_s,
           lite->p99 > 0 ? pg->p99 / lite->p99 : -1, pg->p99, lite->p99);
}

int main(int argc, char **argv)
{
    bench_name = "bench_pg";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
    setup(argc, argv);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_cluster();
    figures lite = {0}, pg = {0};
    char db[600];
    snprintf(db, sizeof db, "%s/push.db", B.dir);
    bench_push_and_initial("sqlite", db, &lite);
    create_database("bench_push", db, sizeof db);
    bench_push_and_initial("postgres", db, &pg);
    if (B.clients > 0 && B.rounds > 0) {
        snprintf(db, sizeof db, "%s/delivery.db", B.dir);
        bench_child one = fork_server(db);
        bench_delivery("sqlite", &one, 1, &lite);
        bench_server_stop(&one);
        create_database("bench_delivery", db, sizeof db);
        bench_child two[2] = {fork_server(db), fork_server(db)};
        bench_delivery("postgres", two, 2, &pg);
        bench_server_stop(&two[0]);
        bench_server_stop(&two[1]);
    }
    report(&lite, &pg);
    cstack_schema_free(B.schema);
    curl_global_cleanup();
    return 0; /* cleanup runs at exit */
}
