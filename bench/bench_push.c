/*
 * bench_push.c -- sustained push throughput of the sync server on loopback
 * (issue 5, item 6): N clients push batches of changes concurrently, each
 * batch checked against the write policies and merged, and the server's
 * rate is reported in column changes per second.
 *
 * The server runs in this process (cstack_server_start on 127.0.0.1, an
 * ephemeral port, a database file in a temporary directory).  Each client is
 * a thread with its own device database and user; its batches (one local
 * transaction of R rows x 6 columns each) are made and exported before the
 * clock starts, so the figure is the server's: HTTP, validation, policy
 * checks, merge and COMMIT.  Each client reuses one connection (keep-alive),
 * as the sync client does.  Latencies are per push (request to 200).
 *
 * At the end of each run the server's database is opened and its rows
 * counted: every row pushed must be there, or the benchmark fails (a fast
 * server that drops rows is not fast).  The benchmark reports and never
 * fails on a slow machine (exit status 0 unless something errors).
 *
 * usage: bench_push [--clients N] [--batches B] [--rows R]   (--help)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cstack.h"
#include "cstack_server.h"

#define SECRET "bench-secret"
#define COLS 6

static const char SCHEMA[] = "auth User { id String  role String }\n"
                             "model Item {\n"
                             "  id      String  @id\n"
                             "  ownerId String\n"
                             "  name    String\n"
                             "  qty     Int\n"
                             "  score   Float\n"
                             "  active  Boolean\n"
                             "  @@allow('all', ownerId == auth().id)\n"
                             "}\n";

typedef struct batch {
    void *cs;
    size_t len;
    char id[80];
} batch;

typedef struct client {
    int index;
    int port;
    const cstack_schema *schema;
    size_t nbatches, rows;
    batch *batches;
    char auth[1024], site[64], hash[96];
    double *lat_ms; /* one per batch */
    int failed;
} client;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "bench_push: %s: %s\n", what, detail);
    exit(1);
}

/* Makes the client's batches: each a local transaction of `rows` new items,
 * exported as the upload queue exports it. */
static void make_batches(client *c)
{
    cstack *db = NULL;
    if (cstack_open_in_memory(c->schema, &db) || cstack_bootstrap(db, NULL))
        die("device", db ? cstack_errmsg(db) : "out of memory");
    char user[32];
    snprintf(user, sizeof user, "user%d", c->index);
    c->batches = calloc(c->nbatches, sizeof *c->batches);
    for (size_t b = 0; b < c->nbatches; b++) {
        cstack_begin(db);
        for (size_t r = 0; r < c->rows; r++) {
            char id[96];
            snprintf(id, sizeof id, "%s-%zu-%zu", user, b, r);
            cstack_field_value f[COLS] = {{"id", cstack_v_text(id)},
                                          {"ownerId", cstack_v_text(user)},
                                          {"name", cstack_v_text("an item of the benchmark")},
                                          {"qty", cstack_v_int((int64_t)r)},
                                          {"score", cstack_v_float((double)r / 3.0)},
                                          {"active", cstack_v_bool((int)(r & 1))}};
            cstack_data data = {f, COLS};
            if (cstack_create(db, "Item", &data, NULL))
                die("create", cstack_errmsg(db));
        }
        if (cstack_commit(db))
            die("commit", cstack_errmsg(db));
        cstack_upload_tx *tx = NULL;
        if (cstack_upload_next(db, &tx) || !tx)
            die("upload queue", cstack_errmsg(db));
        size_t len = 0;
        const void *cs = cstack_upload_tx_changeset(tx, &len);
        c->batches[b].cs = malloc(len);
        memcpy(c->batches[b].cs, cs, len);
        c->batches[b].len = len;
        snprintf(c->batches[b].id, sizeof c->batches[b].id, "%s:%" PRId64, cstack_sync_site_id(db),
                 cstack_upload_tx_version(tx));
        cstack_upload_complete(db, cstack_upload_tx_version(tx));
        cstack_upload_tx_free(tx);
    }
    snprintf(c->site, sizeof c->site, "X-Cstack-Site: %s", cstack_sync_site_id(db));
    snprintf(c->hash, sizeof c->hash, "X-Cstack-Schema: %s", cstack_schema_hash(c->schema));
    char *tok = NULL;
    char err[256];
    const char *claims[] = {"role=user"};
    if (cstack_server_mint_token(SECRET, user, claims, 1, (int64_t)time(NULL), 3600, &tok, err,
                                 sizeof err))
        die("token", err);
    snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", tok);
    cstack_free(tok);
    cstack_close(db);
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static void *client_main(void *arg)
{
    client *c = arg;
    CURL *h = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/push", c->port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    for (size_t b = 0; b < c->nbatches && !c->failed; b++) {
        char bh[128];
        snprintf(bh, sizeof bh, "X-Cstack-Batch: %s", c->batches[b].id);
        struct curl_slist *hdr = NULL;
        hdr = curl_slist_append(hdr, c->auth);
        hdr = curl_slist_append(hdr, c->hash);
        hdr = curl_slist_append(hdr, c->site);
        hdr = curl_slist_append(hdr, bh);
        hdr = curl_slist_append(hdr, "Content-Type: application/octet-stream");
        hdr = curl_slist_append(hdr, "Expect:");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->batches[b].cs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->batches[b].len);
        double t0 = now_ms();
        long status = 0;
        if (curl_easy_perform(h) != CURLE_OK)
            c->failed = 1;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        c->lat_ms[b] = now_ms() - t0;
        if (status != 200)
            c->failed = 1;
        curl_slist_free_all(hdr);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const char USAGE[] =
    "usage: bench_push [--clients N] [--batches B] [--rows R]\n"
    "\n"
    "Measures the sync server's sustained push throughput on loopback: N\n"
    "clients (threads, one keep-alive connection and one user each) push B\n"
    "batches of R new rows x 6 columns concurrently to a server in this\n"
    "process; every batch is checked against the write policy and merged.\n"
    "The batches are made before the clock starts, so the figures are the\n"
    "server's: HTTP, validation, policy checks, merge and COMMIT.  Afterwards\n"
    "the server's database must hold every row pushed.\n"
    "\n"
    "options:\n"
    "  --clients N   concurrent clients (default: a series of runs with 1, 4\n"
    "                and 16 clients and batches of 1, 100 and 1000 rows)\n"
    "  --batches B   batches per client (default 200)\n"
    "  --rows R      rows per batch (default 100)\n"
    "\n"
    "output: one line per run: column changes/s, rows/s, batches/s and the\n"
    "p50 / p99 latency of one push.  Exit status 0, or 1 when a push failed,\n"
    "the server lost rows or something else went wrong.\n";

static size_t arg_size(int argc, char **argv, const char *name, size_t def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return (size_t)strtoull(argv[i + 1], NULL, 10);
    return def;
}

/* Counts the rows in the (stopped) server's database: every row the clients
 * were told was accepted must be there. */
static void check_server_rows(const cstack_schema *schema, const char *path, int64_t want)
{
    cstack *db = NULL;
    int64_t have = -1;
    if (cstack_open(schema, path, NULL, &db) || cstack_count(db, "Item", NULL, &have))
        die("server database", db ? cstack_errmsg(db) : "cannot open");
    cstack_close(db);
    if (have != want) {
        fprintf(stderr,
                "bench_push: the server holds %" PRId64 " rows but %" PRId64
                " were pushed and acknowledged\n",
                have, want);
        exit(1);
    }
}

/* One run: `nclients` clients each pushing `nbatches` batches of `rows`. */
static void run(const cstack_schema *schema, size_t nclients, size_t nbatches, size_t rows)
{
    char dir[] = "/tmp/cstack-bench-push-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", "cannot create a temporary directory");
    char db[600];
    snprintf(db, sizeof db, "%s/server.db", dir);
    cstack_server_config cfg = {.schema = schema, .db_path = db, .jwt_secret = SECRET};
    cstack_server *srv = NULL;
    char err[1024];
    if (cstack_server_start(&cfg, &srv, err, sizeof err))
        die("server", err);
    client *cl = calloc(nclients, sizeof *cl);
    for (size_t i = 0; i < nclients; i++) {
        cl[i] = (client){.index = (int)i,
                         .port = cstack_server_port(srv),
                         .schema = schema,
                         .nbatches = nbatches,
                         .rows = rows};
        cl[i].lat_ms = calloc(nbatches, sizeof(double));
        make_batches(&cl[i]);
    }
    pthread_t *th = calloc(nclients, sizeof *th);
    double t0 = now_ms();
    for (size_t i = 0; i < nclients; i++)
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    for (size_t i = 0; i < nclients; i++)
        pthread_join(th[i], NULL);
    double secs = (now_ms() - t0) / 1e3;
    size_t n = nclients * nbatches;
    double *lat = calloc(n, sizeof *lat);
    int failed = 0;
    for (size_t i = 0; i < nclients; i++) {
        memcpy(lat + i * nbatches, cl[i].lat_ms, nbatches * sizeof(double));
        failed |= cl[i].failed;
    }
    qsort(lat, n, sizeof *lat, cmp_double);
    double changes = (double)(n * rows * COLS);
    printf("  %3zu clients x %4zu batches x %4zu rows: %9.0f column changes/s  %7.0f rows/s  "
           "%6.0f batches/s  push p50 %6.2f ms  p99 %7.2f ms%s\n",
           nclients, nbatches, rows, changes / secs, (double)(n * rows) / secs, (double)n / secs,
           lat[n / 2], lat[(n * 99) / 100], failed ? "  (SOME PUSHES FAILED)" : "");
    fflush(stdout);
    cstack_server_stop(srv);
    if (!failed)
        check_server_rows(schema, db, (int64_t)(n * rows));
    for (size_t i = 0; i < nclients; i++) {
        for (size_t b = 0; b < nbatches; b++)
            free(cl[i].batches[b].cs);
        free(cl[i].batches);
        free(cl[i].lat_ms);
    }
    free(cl);
    free(th);
    free(lat);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_push: could not remove %s\n", dir);
    if (failed)
        die("push", "a push did not get 200");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
    size_t clients = arg_size(argc, argv, "--clients", 0);
    size_t batches = arg_size(argc, argv, "--batches", 200);
    size_t rows = arg_size(argc, argv, "--rows", 100);
    curl_global_init(CURL_GLOBAL_ALL);
    cstack_schema *schema = NULL;
    if (cstack_schema_parse("bench.cstack", SCHEMA, strlen(SCHEMA), &schema, NULL))
        die("schema", "does not parse");
    printf("bench_push: sustained push throughput, loopback, %d columns per row\n", COLS);
    if (clients) {
        run(schema, clients, batches, rows);
    } else {
        /* Small batches show the per-request cost, large ones the merge. */
        run(schema, 1, batches, rows);
        run(schema, 4, batches, rows);
        run(schema, 16, batches / 4 ? batches / 4 : 1, rows);
        run(schema, 4, batches, 1);
        run(schema, 4, batches / 10 ? batches / 10 : 1, 1000);
    }
    cstack_schema_free(schema);
    curl_global_cleanup();
    return 0;
}
