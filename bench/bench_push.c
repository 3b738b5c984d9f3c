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
 * The last run measures pulls during a big push (issue 9, "pulls never wait
 * behind a push's merge"): one client pushes one batch of about M MiB
 * (default 60) while another user's device pulls in a loop; each pull's
 * latency is compared with the same pulls on an idle server, measured just
 * before in the same run (ratio p99 during / p99 idle).  With --pull-rows K
 * the pulling device owns K rows and pulls from 0 each time, so that every
 * pull sends K rows and records what the device now holds (docs/server.md,
 * "Notes"); without it the pulls send nothing.
 *
 * usage: bench_push [--clients N] [--batches B] [--rows R] [--during-push M]
 *        [--pull-rows K] (--help)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

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
    const char *name; /* each row's name; NULL: a short one */
    bool refuse_last; /* the last row belongs to another user: the push gets 403 */
    batch *batches;
    char auth[1024], site[64], hash[96];
    double *lat_ms; /* one per batch */
    _Atomic double uploaded_ms; /* when the last batch's body was all sent */
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
            bool other = c->refuse_last && b + 1 == c->nbatches && r + 1 == c->rows;
            cstack_field_value f[COLS] = {{"id", cstack_v_text(id)},
                                          {"ownerId", cstack_v_text(other ? "intruder" : user)},
                                          {"name", cstack_v_text(c->name ? c->name
                                                                         : "an item of the benchmark")},
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

typedef struct body {
    char *p;
    size_t len;
} body;

/* Keeps a response's body, NUL-terminated. */
static size_t keep(char *p, size_t size, size_t n, void *ud)
{
    body *b = ud;
    char *q = realloc(b->p, b->len + size * n + 1);
    if (!q)
        return 0;
    memcpy(q + b->len, p, size * n);
    b->len += size * n;
    q[b->len] = 0;
    b->p = q;
    return size * n;
}

/* Notes when the whole body has been handed to the socket: the server
 * merges from about then. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    client *c = ud;
    if (ultotal > 0 && ulnow == ultotal && c->uploaded_ms == 0)
        c->uploaded_ms = now_ms();
    return 0;
}

static void *client_main(void *arg)
{
    client *c = arg;
    CURL *h = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/push", c->port);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
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
        if (status != (c->refuse_last ? 403 : 200))
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
    "  --during-push M  only the last run: another user's pulls, on an idle\n"
    "                server and then while one batch of about M MiB is pushed\n"
    "                and merged, then again with a batch refused (403) at its\n"
    "                last row (default: 60, after the series)\n"
    "  --pull-rows K with --during-push: the pulling user owns K rows (at most\n"
    "                1000) and pulls from 0 each time, so every pull sends K\n"
    "                rows and records them (default 0: the pulls send nothing)\n"
    "\n"
    "output: one line per run: column changes/s, rows/s, batches/s and the\n"
    "p50 / p99 latency of one push; for the last run the pulls' p50 / p99 / max\n"
    "idle and during the push, and the ratio of the p99s.  Exit status 0, or 1\n"
    "when a push or pull failed, the server lost rows, a pull did not send its\n"
    "K rows or the server did not record them, or something else went wrong.\n";

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

/* ---- pulls during a big push ---------------------------------------------- */

typedef struct puller {
    int port;
    char auth[1024], hash[96], url[160], site[64];
    atomic_int stop;
    double start[4096], lat[4096]; /* each pull: start time and latency */
    size_t n;
    int failed;
} puller;

static void *puller_main(void *arg)
{
    puller *p = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, p->auth);
    hdr = curl_slist_append(hdr, p->hash);
    hdr = curl_slist_append(hdr, p->site);
    curl_easy_setopt(h, CURLOPT_URL, p->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    while (!p->stop && p->n < sizeof p->lat / sizeof p->lat[0]) {
        long status = 0;
        double t0 = now_ms();
        if (curl_easy_perform(h) != CURLE_OK)
            p->failed = 1;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        p->start[p->n] = t0;
        p->lat[p->n++] = now_ms() - t0;
        p->failed |= status != 200;
        usleep(2000);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

/* p50, p99 and max of the pulls that started in [from, to). */
static size_t pull_stats(const puller *p, double from, double to, double out[3])
{
    double v[4096];
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++)
        if (p->start[i] >= from && p->start[i] < to)
            v[k++] = p->lat[i];
    out[0] = out[1] = out[2] = 0;
    if (k) {
        qsort(v, k, sizeof *v, cmp_double);
        out[0] = v[k / 2];
        out[1] = v[(k * 99) / 100];
        out[2] = v[k - 1];
    }
    return k;
}

/* The server's cstack_changes_out_total (rows sent by pulls and streams). */
static long long changes_out(int port)
{
    body b = {0};
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    long long v = -1;
    if (curl_easy_perform(h) == CURLE_OK && b.p) {
        const char *at = strstr(b.p, "\ncstack_changes_out_total ");
        if (at)
            v = strtoll(at + strlen("\ncstack_changes_out_total "), NULL, 10);
    }
    curl_easy_cleanup(h);
    free(b.p);
    return v;
}

/* The records of what the pulling device holds (present = 1) in the stopped
 * server's database. */
static long long held_records(const char *path, const char *site_hex)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db,
                           "SELECT count(*) FROM _cstack_srv_sent "
                           "WHERE hex(site) = upper(?) AND present = 1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, site_hex, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

#define PULLER_SITE "0123456789abcdef0123456789abcdef"

/* Another user's device pulls in a loop, for a second on an idle server and
 * then while one client pushes one batch of about `mib` MiB; `refused`: its
 * last row is another user's, so the whole batch is refused (403): the
 * server finds that row before the merge (docs/server.md, "Refusals before
 * the merge").  `pull_rows` > 0: the pulling user owns that many rows,
 * pushed first, and each pull (from 0) sends them all and records them. */
static void run_during_push(const cstack_schema *schema, size_t mib, bool refused,
                            size_t pull_rows)
{
    char dir[] = "/tmp/cstack-bench-push-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", "cannot create a temporary directory");
    char db[600], err[1024];
    snprintf(db, sizeof db, "%s/server.db", dir);
    /* Small pages keep the pulls that follow the commit cheap: the figure is
     * the wait, not the work. */
    cstack_server_config cfg = {
        .schema = schema, .db_path = db, .jwt_secret = SECRET, .pull_page_rows = 1000};
    cstack_server *srv = NULL;
    if (cstack_server_start(&cfg, &srv, err, sizeof err))
        die("server", err);
    char name[241];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    size_t rows = mib * 1024 * 1024 / 330;
    client pusher = {.port = cstack_server_port(srv), .schema = schema, .nbatches = 1,
                     .rows = rows, .name = name, .refuse_last = refused};
    double lat_push = 0;
    pusher.lat_ms = &lat_push;
    make_batches(&pusher);
    if (pusher.batches[0].len > 63u * 1024 * 1024)
        die("batch", "larger than the server's 64 MiB push limit");
    /* The pulling user's own rows, when its pulls are to send some. */
    client owner = {.index = 999, .port = pusher.port, .schema = schema, .nbatches = 1,
                    .rows = pull_rows};
    double lat_owner = 0;
    owner.lat_ms = &lat_owner;
    if (pull_rows) {
        make_batches(&owner);
        client_main(&owner);
        free(owner.batches[0].cs);
        free(owner.batches);
        if (owner.failed)
            die("pulls during a push", "the pulling user's rows were not accepted");
    }
    puller *p = calloc(1, sizeof *p);
    p->port = pusher.port;
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d/v1/pull?since=0", p->port);
    snprintf(p->hash, sizeof p->hash, "%s", pusher.hash);
    snprintf(p->site, sizeof p->site, "X-Cstack-Site: %s", PULLER_SITE);
    char *tok = NULL;
    const char *claims[] = {"role=user"};
    if (cstack_server_mint_token(SECRET, pull_rows ? "user999" : "reader", claims, 1,
                                 (int64_t)time(NULL), 3600, &tok, err, sizeof err))
        die("token", err);
    snprintf(p->auth, sizeof p->auth, "Authorization: Bearer %s", tok);
    cstack_free(tok);
    long long out0 = changes_out(p->port);
    pthread_t tp, tc;
    double idle0 = now_ms();
    pthread_create(&tp, NULL, puller_main, p);
    usleep(1000 * 1000);
    double push0 = now_ms();
    pthread_create(&tc, NULL, client_main, &pusher);
    pthread_join(tc, NULL);
    double push1 = now_ms();
    p->stop = 1;
    pthread_join(tp, NULL);
    long long sent = changes_out(p->port) - out0;
    double idle[3], during[3];
    size_t ni = pull_stats(p, idle0, push0, idle);
    size_t nd = pull_stats(p, pusher.uploaded_ms ? pusher.uploaded_ms : push0, push1, during);
    printf("  pulls%s during a%s push of %.1f MiB (%zu rows; upload %.2f s, merge to answer "
           "%.2f s):\n"
           "    idle server        %4zu pulls  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n"
           "    during the merge   %4zu pulls  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms\n"
           "    ratio p99 during / idle: %.1fx%s\n",
           pull_rows ? " sending rows" : "", refused ? " refused (403)" : "",
           (double)pusher.batches[0].len / (1024.0 * 1024.0), rows,
           ((pusher.uploaded_ms ? pusher.uploaded_ms : push0) - push0) / 1e3,
           (push1 - (pusher.uploaded_ms ? pusher.uploaded_ms : push0)) / 1e3, ni, idle[0], idle[1],
           idle[2], nd, during[0], during[1], during[2], idle[1] > 0 ? during[1] / idle[1] : 0,
           pusher.failed || p->failed ? "  (A PUSH OR A PULL FAILED)" : "");
    if (pull_rows)
        printf("    each pull sent %zu rows (%lld rows over %zu pulls)\n", pull_rows, sent, p->n);
    fflush(stdout);
    cstack_server_stop(srv);
    int failed = pusher.failed || p->failed;
    if (!failed)
        check_server_rows(schema, db, (refused ? 0 : (int64_t)rows) + (int64_t)pull_rows);
    if (!failed && sent != (long long)(pull_rows * p->n))
        die("pulls during a push", "a pull did not send the pulling user's rows");
    if (!failed && pull_rows && held_records(db, PULLER_SITE) != (long long)pull_rows)
        die("pulls during a push", "the server did not record what the pulling device holds");
    free(pusher.batches[0].cs);
    free(pusher.batches);
    free(p);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_push: could not remove %s\n", dir);
    if (failed)
        die("pulls during a push", "a push did not get its status or a pull did not get 200");
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
    size_t during = arg_size(argc, argv, "--during-push", 0);
    size_t pull_rows = arg_size(argc, argv, "--pull-rows", 0);
    if (pull_rows > 1000)
        die("--pull-rows", "at most 1000 (one page)");
    curl_global_init(CURL_GLOBAL_ALL);
    cstack_schema *schema = NULL;
    if (cstack_schema_parse("bench.cstack", SCHEMA, strlen(SCHEMA), &schema, NULL))
        die("schema", "does not parse");
    printf("bench_push: sustained push throughput, loopback, %d columns per row\n", COLS);
    if (during) {
        run_during_push(schema, during, false, pull_rows);
        run_during_push(schema, during, true, pull_rows);
    } else if (clients) {
        run(schema, clients, batches, rows);
    } else {
        /* Small batches show the per-request cost, large ones the merge. */
        run(schema, 1, batches, rows);
        run(schema, 4, batches, rows);
        run(schema, 16, batches / 4 ? batches / 4 : 1, rows);
        run(schema, 4, batches, 1);
        run(schema, 4, batches / 10 ? batches / 10 : 1, 1000);
        run_during_push(schema, 60, false, 0);
        run_during_push(schema, 60, true, 0);
    }
    cstack_schema_free(schema);
    curl_global_cleanup();
    return 0;
}
