/*
 * bench_sync_server.c -- the server figures of SPEC section 13, on loopback:
 *
 *   initial sync  N rows (default 100k) x 6 columns in the server's database,
 *                 pulled by a fresh device through the sync client
 *                 (cstack_sync_run_once): time until it is caught up (every
 *                 row merged and the cursor confirmed), target <= 3 s, and
 *                 until its checksum is compared with the server's.
 *   fan-out       C (default 1000) streaming clients on one server; one write
 *                 is pushed and the time from its commit (the push's 200
 *                 response) to its arrival on every stream is measured, over
 *                 several rounds: p50 and p99.  Target: p99 <= 250 ms.  The
 *                 server's resident memory is read from /proc/PID/status.
 *
 * The server runs in a bench_child process (forked, cstack_server_start) so that its
 * memory and CPU are its own.  The streaming clients are light raw readers
 * (bench_streams.h).  Each of them signs in as a different user (by default: --users sets how many
 * distinct users share the streams) so the server does per-user work for
 * every stream.
 *
 * Everything binds to 127.0.0.1.  Every wait is bounded; the benchmark
 * reports and never fails on a slow machine (exit status 0 unless something
 * errors).
 *
 * usage: bench_sync_server [--rows N] [--clients C] [--users U] [--rounds R]
 *        (--help says more)
 */
#define _GNU_SOURCE /* memmem, in bench_streams.h */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bench_streams.h"
#include "bench_util.h"
#include "cstack.h"
#include "cstack_server.h"

#define SECRET "bench-secret"
#define INITIAL_TARGET_S 3.0
#define FANOUT_TARGET_MS 250.0
#define ROUND_TIMEOUT_MS 10000
#define CONNECT_TIMEOUT_MS 30000

static const char SCHEMA[] = "auth User {\n"
                             "  id String\n"
                             "}\n"
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
    cstack_schema *schema;
    size_t rows, clients, users, rounds;
} bench;

static char *token_for(const char *sub)
{
    char *tok = NULL, err[256];
    if (cstack_server_mint_token(SECRET, sub, NULL, 0, time(NULL), 3600, &tok, err, sizeof err) !=
        0)
        die("token", err);
    return tok;
}

static cstack *open_db(bench *b, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", b->dir, name);
    cstack *db = NULL;
    if (cstack_open(b->schema, path, NULL, &db) != 0 || cstack_bootstrap(db, NULL) != 0)
        die(path, db ? cstack_errmsg(db) : "cannot open");
    return db;
}

/* ---- the server in a bench_child process ---------------------------------------- */

static bench_child fork_server(bench *b, const char *name)
{
    char db[512];
    snprintf(db, sizeof db, "%s/%s", b->dir, name);
    cstack_server_config cfg = {.schema = b->schema,
                                .db_path = db,
                                .jwt_secret = SECRET,
                                .max_connections = (unsigned)(b->clients + 64),
                                /* Every client connects from 127.0.0.1. */
                                .max_per_address = (unsigned)(b->clients + 64),
                                .checkpoint_ms = 10000,
                                .keepalive_ms = 15000};
    return bench_server_fork(&cfg);
}

/* VmRSS and VmHWM of a process, in MiB. */
static void rss_of(pid_t pid, double *rss, double *hwm)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    *rss = *hwm = -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        long kb = 0;
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            *rss = (double)kb / 1024.0;
        else if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
            *hwm = (double)kb / 1024.0;
    }
    fclose(f);
}

/* ---- initial sync ------------------------------------------------------------ */

static void fill(bench *b, cstack *db)
{
    enum { CHUNK = 1000 };
    cstack_field_value f[CHUNK][6];
    cstack_data rows[CHUNK];
    char name[CHUNK][32];
    if (cstack_begin(db) != 0)
        die("begin", cstack_errmsg(db));
    for (size_t base = 0; base < b->rows; base += CHUNK) {
        size_t n = b->rows - base < CHUNK ? b->rows - base : CHUNK;
        for (size_t i = 0; i < n; i++) {
            int64_t id = (int64_t)(base + i);
            snprintf(name[i], sizeof name[i], "item %" PRId64, id);
            f[i][0] = (cstack_field_value){"id", cstack_v_int(id)};
            f[i][1] = (cstack_field_value){"name", cstack_v_text(name[i])};
            f[i][2] = (cstack_field_value){"qty", cstack_v_int(id % 97)};
            f[i][3] = (cstack_field_value){"score", cstack_v_float((double)id / 7.0)};
            f[i][4] = (cstack_field_value){"active", cstack_v_bool(id % 2)};
            f[i][5] = (cstack_field_value){"at", cstack_v_text("2026-11-26T10:40:21.123456Z")};
            rows[i] = (cstack_data){f[i], 6};
        }
        int64_t count = 0;
        if (cstack_create_many(db, "Item", rows, n, &count) != 0)
            die("create_many", cstack_errmsg(db));
    }
    if (cstack_commit(db) != 0)
        die("commit", cstack_errmsg(db));
}

/* When each phase of the initial sync ended, from the status events. */
typedef struct timing {
    double start, first_byte, last_byte, merged, caught_up;
    int64_t bytes;
} timing;

static void on_status(const cstack_sync_status *st, void *ctx)
{
    timing *t = ctx;
    double now = now_ms();
    /* Bytes of the first page only (the confirming request follows it). */
    if (st->event == CSTACK_SYNC_EV_PROGRESS && st->bytes_received > t->bytes && !t->merged) {
        if (t->first_byte == 0)
            t->first_byte = now;
        t->last_byte = now;
        t->bytes = st->bytes_received;
    }
    if (st->event == CSTACK_SYNC_EV_APPLIED && t->merged == 0)
        t->merged = now;
    if (st->event == CSTACK_SYNC_EV_CAUGHT_UP)
        t->caught_up = now;
}

static void bench_initial(bench *b)
{
    cstack *seed = open_db(b, "initial-server.db");
    double t0 = now_ms();
    fill(b, seed);
    double filled = now_ms() - t0;
    cstack_close(seed);
    bench_child srv = fork_server(b, "initial-server.db");
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    char *tok = token_for("reader");
    cstack *dev = open_db(b, "initial-device.db");
    cstack_sync_options o = {.url = url, .token = tok};
    cstack_sync_status st;
    timing t = {.start = now_ms()};
    int rc = cstack_sync_run_once(dev, &o, on_status, &t, &st);
    double total = (now_ms() - t.start) / 1e3;
    if (rc != 0)
        die("initial sync", cstack_errmsg(dev));
    int64_t count = 0;
    cstack_count(dev, "Item", NULL, &count);
    printf("initial sync: %zu rows x 6 columns (server filled in %.1f s)\n", b->rows, filled / 1e3);
    double usable = (t.caught_up - t.start) / 1e3;
    printf("  fresh device caught up (every row merged, cursor confirmed) in %.2f s"
           " (target <= %.1f s) %s\n",
           usable, INITIAL_TARGET_S, usable <= INITIAL_TARGET_S ? "ok" : "MISSED");
    printf("  then verified against the server's checksum: %.2f s in all\n", total);
    printf("  %.1f MB; first byte at %.2f s (the server's export), last byte at %.2f s,"
           " merged at %.2f s\n",
           (double)t.bytes / 1e6, (t.first_byte - t.start) / 1e3, (t.last_byte - t.start) / 1e3,
           (t.merged - t.start) / 1e3);
    printf("  rows on the device: %" PRId64 ", checksum %s the server's\n", count,
           st.checksum_ok == 1 ? "matches" : "DOES NOT match");
    cstack_close(dev);
    cstack_free(tok);
    bench_server_stop(&srv);
}

/* ---- fan-out ---------------------------------------------------------------- */

typedef struct fanout {
    bench *b;
    streams st;
    bench_child srv;
    char hash[65];
} fanout;

typedef struct pusher {
    fanout *f;
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

/* Writes one row and pushes it as a device would; records when the push
 * was sent and when its 200 came back. */
static void *push_round(void *arg)
{
    pusher *p = arg;
    int k = atomic_load(&p->f->st.round);
    cstack_field_value fv[] = {
        {"id", cstack_v_int(k)},      {"name", cstack_v_text("pushed")},
        {"qty", cstack_v_int(k)},     {"score", cstack_v_float(0.5)},
        {"active", cstack_v_bool(1)}, {"at", cstack_v_text("2026-11-26T10:40:21.123456Z")}};
    cstack_data d = {fv, 6};
    cstack_upload_tx *tx = NULL;
    if (cstack_create(p->db, "Item", &d, NULL) != 0 || cstack_upload_next(p->db, &tx) != 0 || !tx)
        die("push", cstack_errmsg(p->db));
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
    double t = now_ms();
    long status = 0;
    curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK || status != 200)
        die("push", cc != CURLE_OK ? curl_easy_strerror(cc) : "not 200");
    p->f->st.commit[k] = t;
    cstack_upload_complete(p->db, cstack_upload_tx_version(tx));
    cstack_upload_tx_free(tx);
    curl_slist_free_all(h);
    return NULL;
}

static void pusher_init(pusher *p, fanout *f, bench *b)
{
    p->f = f;
    p->db = open_db(b, "fanout-writer.db");
    char *tok = token_for("writer"), line[4096];
    snprintf(p->url, sizeof p->url, "http://127.0.0.1:%d/v1/push", f->srv.port);
    snprintf(line, sizeof line, "Authorization: Bearer %s", tok);
    p->hdrs = curl_slist_append(NULL, line);
    snprintf(line, sizeof line, "X-Cstack-Schema: %s", f->hash);
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

/* Runs the rounds; fills `lat` with every arrival and returns how many
 * arrived. */
static size_t run_rounds(fanout *f, pusher *p, double *lat, size_t *missing)
{
    size_t n = 0;
    *missing = 0;
    for (size_t k = 0; k < f->st.rounds; k++) {
        atomic_store(&f->st.round, (int)k);
        pthread_t th;
        pthread_create(&th, NULL, push_round, p);
        streams_pump(&f->st, now_ms() + ROUND_TIMEOUT_MS, streams_round_done);
        pthread_join(th, NULL);
        streams_collect(&f->st, k, lat, &n, missing);
        /* Let the streams settle (checkpoints, the echo) between rounds. */
        streams_pump(&f->st, now_ms() + 200, streams_round_done);
    }
    return n;
}

static void bench_fanout(bench *b)
{
    fanout f = {.b = b};
    snprintf(f.hash, sizeof f.hash, "%s", cstack_schema_hash(b->schema));
    f.srv = fork_server(b, "fanout-server.db");
    f.st.hash = f.hash;
    f.st.secret = SECRET;
    double *lat = calloc(b->clients * b->rounds + 1, sizeof *lat);
    if (!lat)
        die("fan-out", "out of memory");
    double t0 = now_ms();
    size_t ok = streams_open(&f.st, b->clients, b->users, b->rounds, &f.srv.port, 1,
                             CONNECT_TIMEOUT_MS);
    double connect_s = (now_ms() - t0) / 1e3, rss0, hwm0;
    streams_report_refused(&f.st, "fan-out");
    rss_of(f.srv.pid, &rss0, &hwm0);
    pusher p;
    pusher_init(&p, &f, b);
    size_t missing = 0;
    size_t n = run_rounds(&f, &p, lat, &missing);
    double rss1, hwm1;
    rss_of(f.srv.pid, &rss1, &hwm1);
    qsort(lat, n, sizeof *lat, cmp_double);
    double p50 = n ? lat[n / 2] : -1, p99 = n ? lat[(n * 99 + 99) / 100 - 1] : -1;
    printf("fan-out: %zu streaming clients of %zu users (%zu answered 200, connected in %.1f s),"
           " %zu rounds\n",
           b->clients, b->users, ok, connect_s, b->rounds);
    printf("  commit -> arrival at every stream: p50 %.1f ms, p99 %.1f ms, max %.1f ms"
           " (target p99 <= %.0f ms) %s\n",
           p50, p99, n ? lat[n - 1] : -1, FANOUT_TARGET_MS,
           n && p99 <= FANOUT_TARGET_MS && missing == 0 ? "ok" : "MISSED");
    printf("  arrivals %zu, missing %zu\n", n, missing);
    printf("  server memory: %.1f MiB resident with %zu streams (%.1f after the rounds,"
           " peak %.1f)\n",
           rss0, ok, rss1, hwm1);
    streams_close(&f.st);
    curl_easy_cleanup(p.curl);
    curl_slist_free_all(p.hdrs);
    cstack_close(p.db);
    bench_server_stop(&f.srv);
    free(lat);
}

/* ---- main ------------------------------------------------------------------- */

static size_t arg_size(int argc, char **argv, const char *name, size_t dflt)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return (size_t)strtoull(argv[i + 1], NULL, 10);
    return dflt;
}

static void remove_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_sync_server: could not remove %s\n", dir);
}

static const char USAGE[] =
    "usage: bench_sync_server [--rows N] [--clients C] [--users U] [--rounds R]\n"
    "\n"
    "Measures the sync server on loopback, the server in a bench_child process:\n"
    "  initial sync  a fresh device pulls N rows x 6 columns through the sync\n"
    "                client until caught up, then compares checksums with the\n"
    "                server (target: caught up in <= 3 s);\n"
    "  fan-out       C streaming clients; one pushed write is timed from its\n"
    "                commit to its arrival on every stream, over R rounds\n"
    "                (target: p99 <= 250 ms), with the server's memory.\n"
    "\n"
    "options:\n"
    "  --rows N      rows of the initial sync (default 100000)\n"
    "  --clients C   streaming clients (default 1000; fewer when the open-file\n"
    "                limit is lower)\n"
    "  --users U     distinct users among the clients (default: one each)\n"
    "  --rounds R    fan-out rounds, at most 64 (default 5)\n"
    "\n"
    "output: the initial sync's times, size and checksum verdict, then the\n"
    "fan-out's p50 / p99 delivery time and the server's resident memory.\n"
    "Exit status 0 unless something errors (a slow machine is not an error).\n";

int main(int argc, char **argv)
{
    bench_name = "bench_sync_server";
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
    bench b = {.rows = arg_size(argc, argv, "--rows", 100000),
               .clients = arg_size(argc, argv, "--clients", 1000),
               .users = arg_size(argc, argv, "--users", 0),
               .rounds = arg_size(argc, argv, "--rounds", 5)};
    if (b.rounds > 64)
        b.rounds = 64;
    if (b.users == 0 || b.users > b.clients)
        b.users = b.clients;
    b.clients = bench_streams_fit(b.clients);
    bench_tmpdir(b.dir, sizeof b.dir, "cstack-bench-server");
    b.schema = bench_schema(SCHEMA);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (b.rows > 0)
        bench_initial(&b);
    if (b.clients > 0)
        bench_fanout(&b);
    cstack_schema_free(b.schema);
    curl_global_cleanup();
    remove_dir(b.dir);
    return 0;
}
