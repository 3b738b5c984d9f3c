/* test_server_limits.c -- the server's own protection (docs/server.md,
 * "Limits"): a header deadline that trickling cannot extend, a limit on the
 * connections of one client address, a cap on the memory of uploads in
 * flight and one on the memory queued for streams.  Each attack runs against
 * a server in this process on 127.0.0.1 (the per-address test also connects
 * from 127.0.0.2, still loopback) with its limit lowered; each checks that
 * an honest client is still served, and logs the process's resident memory.
 * Every socket a test opens is recorded and closed by the suite's fini, so
 * a failed assertion leaves nothing open and the server stopped.  Last, a pull
 * is answered while a push waits inside its merge (pulls read a snapshot). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server_support.h"
#include "util/clock.h"

static const char *SCHEMA = "auth User { id String  role String }\n"
                            "model Note {\n"
                            "  id      String  @id\n"
                            "  ownerId String\n"
                            "  title   String\n"
                            "  body    String?\n"
                            "  @@allow('all', true)\n"
                            "}\n";

/* ---- sockets, memory, the server --------------------------------------------- */

enum { MAX_FDS = 128 };
static int fds[MAX_FDS];
static int nfds;

static void close_all(void)
{
    for (int i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    nfds = 0;
}

static void limits_fini(void)
{
    close_all();
    fini();
}

TestSuite(limits, .fini = limits_fini, .timeout = 120);

/* A connection to the server from `from` (an address of the loopback
 * network, NULL for the default); `rcvbuf` > 0 shrinks its receive buffer
 * (a client that reads slowly).  Recorded for the fini. */
static int dial(const char *from, int rcvbuf)
{
    cr_assert_lt(nfds, MAX_FDS);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    fds[nfds++] = fd;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (from) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        inet_pton(AF_INET, from, &src.sin_addr);
        cr_assert_eq(bind(fd, (struct sockaddr *)&src, sizeof src), 0, "bind %s: %s", from,
                     strerror(errno));
    }
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)cstack_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

/* The process's resident memory now and at its peak, in KiB (the server
 * runs in this process). */
static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    cr_assert_not_null(f);
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0)
            v = strtol(line + k + 1, NULL, 10);
    fclose(f);
    return v;
}

static void log_memory(const char *what)
{
    cr_log_info("%s: VmRSS %ld KiB, VmHWM %ld KiB", what, status_kb("VmRSS"), status_kb("VmHWM"));
    fprintf(stderr, "%s: VmRSS %ld KiB, VmHWM %ld KiB\n", what, status_kb("VmRSS"),
            status_kb("VmHWM"));
}

static void start_limited(cstack_server_config cfg)
{
    curl_global_init(CURL_GLOBAL_ALL);
    dir = t_tmpdir();
    cstack_schema *s = t_schema(SCHEMA);
    snprintf(hash, sizeof hash, "%s", cstack_schema_hash(s));
    char db[600];
    snprintf(db, sizeof db, "%s/limits.db", dir);
    snprintf(logpath, sizeof logpath, "%s/server.log", dir);
    log_file = fopen(logpath, "a");
    cfg.schema = s;
    cfg.db_path = db;
    cfg.jwt_secret = SECRET;
    cfg.log = log_file;
    cfg.checkpoint_ms = 300;
    cfg.keepalive_ms = 200;
    cfg.drain_ms = 2000;
    char err[1024] = "";
    int rc = cstack_server_start(&cfg, &srv, err, sizeof err);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "server start: %s", err);
}

/* The value in /metrics text `text` of the sample starting `line` (-1 when
 * absent). */
static long long sample(const char *text, const char *line)
{
    char want[256];
    snprintf(want, sizeof want, "\n%s", line);
    const char *p = strstr(text, want);
    return p ? strtoll(p + strlen(want), NULL, 10) : -1;
}

static long long metric(const char *line)
{
    res m = http("GET", "/metrics", NULL, NULL, 0);
    cr_assert_eq(m.status, 200);
    long long v = sample(m.body, line);
    res_free(&m);
    return v;
}

/* ---- the header deadline ------------------------------------------------------- */

Test(limits, connections_trickling_their_headers_are_closed_at_the_deadline_and_healthz_still_answers)
{
    enum { N = 50 };
    const int64_t deadline_ms = 1500;
    start_limited((cstack_server_config){.header_timeout_ms = (int)deadline_ms,
                                         .max_per_address = 200});
    log_memory("trickle: before");
    int conn[N];
    int64_t closed_at[N];
    int64_t t0 = cs_mono_ms();
    for (int i = 0; i < N; i++) {
        conn[i] = dial(NULL, 0);
        closed_at[i] = 0;
        t_send_all(conn[i], "GET /healthz HTTP/1.1\r\nX-Slow: ", 31);
    }
    int open = N;
    bool asked = false;
    /* A header byte every 200 ms to each: MHD's own idle timeout restarts
     * at every byte, so only the deadline ends them.  Bounded at 3x it. */
    while (open > 0 && cs_mono_ms() - t0 < 3 * deadline_ms) {
        for (int i = 0; i < N; i++)
            if (!closed_at[i])
                (void)send(conn[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (!asked && cs_mono_ms() - t0 > deadline_ms / 3) {
            int64_t s0 = cs_mono_ms();
            res ok = http("GET", "/healthz", NULL, NULL, 0);
            int64_t took = cs_mono_ms() - s0;
            cr_log_info("healthz during the trickle: %ld in %" PRId64 " ms", ok.status, took);
            cr_expect_eq(ok.status, 200, "an honest request is answered during the attack");
            cr_expect_lt(took, 1000, "and promptly (%" PRId64 " ms)", took);
            res_free(&ok);
            asked = true;
        }
        struct timespec nap = {0, 200 * 1000 * 1000};
        nanosleep(&nap, NULL);
        for (int i = 0; i < N; i++) {
            if (closed_at[i])
                continue;
            char buf[512];
            ssize_t k = recv(conn[i], buf, sizeof buf, MSG_DONTWAIT);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                closed_at[i] = cs_mono_ms();
                open--;
            }
        }
    }
    log_memory("trickle: after");
    cr_assert_eq(open, 0, "%d of %d trickling connections still open after %" PRId64 " ms", open,
                 N, 3 * deadline_ms);
    for (int i = 0; i < N; i++)
        cr_expect_geq(closed_at[i] - t0, deadline_ms - 300,
                      "connection %d closed at %" PRId64 " ms, before its deadline", i,
                      closed_at[i] - t0);
    cr_expect_eq(metric("cstack_refused_total{limit=\"header_timeout\"} "), N);
}

Test(limits, a_connection_that_sends_nothing_gets_a_json_408_at_the_deadline)
{
    start_limited((cstack_server_config){.header_timeout_ms = 500});
    int fd = dial(NULL, 0);
    char buf[1024];
    t_read_to_end(fd, buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "answer: %s", buf);
    cr_assert_not_null(strstr(buf, "application/json"), "answer: %s", buf);
    cr_assert_not_null(strstr(buf, "{\"status\":\"err\",\"code\":\"timeout\""), "answer: %s", buf);
}

/* ---- connections per address ------------------------------------------------------- */

static void get_from(const char *from, const char *path, char *buf, size_t cap)
{
    int fd = dial(from, 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     path);
    t_send_all(fd, req, (size_t)n);
    t_read_to_end(fd, buf, cap);
}

static void healthz_from(const char *from, char *buf, size_t cap)
{
    get_from(from, "/healthz", buf, cap);
}

Test(limits, one_address_past_its_connection_limit_gets_503_while_other_addresses_connect)
{
    start_limited((cstack_server_config){.max_per_address = 3});
    for (int i = 0; i < 3; i++)
        dial("127.0.0.1", 0);
    char buf[1024];
    healthz_from("127.0.0.1", buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "the fourth from one address: %s", buf);
    cr_assert_not_null(strstr(buf, "\"code\":\"busy\""), "%s", buf);
    cr_assert_not_null(strstr(buf, "Retry-After:"), "%s", buf);
    healthz_from("127.0.0.2", buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "another address is served: %s", buf);
    char text[16384];
    get_from("127.0.0.2", "/metrics", text, sizeof text);
    cr_expect_eq(sample(text, "cstack_refused_total{limit=\"per_address\"} "), 1, "%s", text);
    /* Once one of the three goes, the address is served again. */
    close(fds[0]);
    fds[0] = -1;
    bool served = false;
    for (int i = 0; i < 50 && !served; i++) {
        healthz_from("127.0.0.1", buf, sizeof buf);
        served = strncmp(buf, "HTTP/1.1 200 ", 13) == 0;
        if (!served)
            usleep(100 * 1000);
    }
    cr_assert(served, "the address is served again once under its limit: %s", buf);
}

/* ---- upload memory ------------------------------------------------------------------ */

/* Starts a push of `declared` bytes and sends `sent` of them. */
static int start_upload(dev *d, size_t declared, size_t sent, int seq)
{
    int fd = dial(NULL, 0);
    char head[8192];
    int n = snprintf(head, sizeof head,
                     "POST /v1/push HTTP/1.1\r\nHost: x\r\n%s\r\n%s\r\n%s\r\n"
                     "X-Cstack-Batch: %s:%d\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     d->auth, d->schema, d->site, cstack_sync_site_id(d->db), 1000 + seq, declared);
    cr_assert_lt((size_t)n, sizeof head);
    t_send_all(fd, head, (size_t)n);
    char *junk = calloc(1, sent ? sent : 1);
    cr_assert_not_null(junk);
    t_send_all(fd, junk, sent);
    free(junk);
    return fd;
}

Test(limits, uploads_past_the_memory_cap_get_503_retry_after_and_an_honest_push_still_succeeds)
{
    const size_t MiB = (size_t)1 << 20;
    start_limited(
        (cstack_server_config){.max_body = 4 * MiB, .max_upload_memory = 8 * MiB});
    dev d = device(SCHEMA, "alice");
    log_memory("uploads: before");
    /* Two unfinished 3 MiB uploads hold 6 of the 8 MiB. */
    start_upload(&d, 3 * MiB, MiB, 1);
    start_upload(&d, 3 * MiB, MiB, 2);
    usleep(200 * 1000);
    /* A third is refused before its body is read. */
    int third = start_upload(&d, 3 * MiB, 0, 3);
    char buf[2048];
    t_read_to_end(third, buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "the third upload: %s", buf);
    cr_assert_not_null(strstr(buf, "Retry-After: "), "%s", buf);
    cr_assert_not_null(strstr(buf, "\"code\":\"busy\""), "%s", buf);
    /* A small honest push fits in what is left. */
    note(&d, "n1", "alice", "hello");
    char batch[128];
    res r = push_next(&d, batch, sizeof batch);
    cr_assert_eq(r.status, 200, "honest push: %ld %s", r.status, r.body ? r.body : "");
    res_free(&r);
    log_memory("uploads: during");
    cr_expect_geq(metric("cstack_refused_total{limit=\"upload_memory\"} "), 1);
    /* Once the unfinished uploads go, a large one fits again. */
    close_all();
    bool fits = false;
    for (int i = 0; i < 50 && !fits; i++) {
        int fd = start_upload(&d, 3 * MiB, 0, 10 + i);
        struct pollfd p = {fd, POLLIN, 0};
        /* Not refused: the server waits for the body. */
        fits = poll(&p, 1, 100) == 0;
        close_all();
    }
    cr_assert(fits, "a large upload fits once the others are gone");
    dev_free(&d);
}

/* ---- the body rate ------------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(limits, a_push_body_trickled_below_the_minimum_rate_gets_408_and_frees_its_upload_share)
{
    /* 500 ms, then 1 s per 2,000 bytes; the cap fits one 3 MiB upload. */
    const size_t MiB = (size_t)1 << 20;
    start_limited((cstack_server_config){.header_timeout_ms = 500,
                                         .min_body_rate = 2000,
                                         .max_body = 4 * MiB,
                                         .max_upload_memory = 4 * MiB});
    dev d = device(SCHEMA, "alice");
    /* 1,000 bytes at once earn 0.5 s; then a byte every 100 ms, each
     * well within MHD's idle timeout, earns 0.5 ms. */
    double t0 = now_s();
    int fd = start_upload(&d, 3 * MiB, 1000, 1);
    char buf[2048] = "";
    struct pollfd p = {fd, POLLIN, 0};
    while (poll(&p, 1, 100) == 0 && now_s() - t0 < 10)
        t_send_all(fd, "x", 1);
    double took = now_s() - t0;
    t_read_to_end(fd, buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "the trickled body after %.1f s: %s", took,
              buf);
    cr_assert_not_null(strstr(buf, "\"code\":\"timeout\""), "%s", buf);
    cr_assert_not_null(strstr(buf, "minimum rate"), "%s", buf);
    cr_assert(took > 0.9 && took < 3.0, "cut after %.2f s (expected about 1 s)", took);
    cr_expect_eq(metric("cstack_refused_total{limit=\"body_rate\"} "), 1);
    /* Its log line, written when MHD completes the request, says 408. */
    bool logged = false;
    for (int i = 0; i < 40 && !logged; i++) {
        fflush(log_file);
        char *log = t_read_file(logpath, NULL);
        logged = log && strstr(log, "POST /v1/push 408 ");
        free(log);
        if (!logged)
            usleep(50 * 1000);
    }
    cr_expect(logged, "no 'POST /v1/push 408' line in %s", logpath);
    /* Its share is given back: another 3 MiB upload fits and, sent at
     * more than the rate, is merged (a changeset of junk: 400, not 503). */
    close_all();
    const size_t n = 3 * MiB;
    char *body = calloc(1, n);
    cr_assert_not_null(body);
    char bh[160];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %s:2", cstack_sync_site_id(d.db));
    const char *h[] = {d.auth, d.schema, d.site, bh, NULL};
    res r = {0};
    for (int i = 0; i < 50; i++) {
        res_free(&r);
        r = http("POST", "/v1/push", h, body, n);
        if (r.status != 503)
            break;
        usleep(100 * 1000);
    }
    free(body);
    cr_assert_eq(r.status, 400, "a push after the cut: %ld %s", r.status, r.body ? r.body : "");
    res_free(&r);
    dev_free(&d);
}

Test(limits, a_slow_push_body_above_the_minimum_rate_is_received_whole)
{
    /* A 10 KB body at 4,000 bytes/s against a minimum of 2,000: 2.5 s,
     * long past the 500 ms head start, and accepted. */
    start_limited((cstack_server_config){.header_timeout_ms = 500, .min_body_rate = 2000});
    dev d = device(SCHEMA, "alice");
    char title[10001];
    memset(title, 't', sizeof title - 1);
    title[sizeof title - 1] = 0;
    note(&d, "n1", "alice", title);
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(d.db, &tx), 0);
    size_t len = 0;
    const unsigned char *cs = cstack_upload_tx_changeset(tx, &len);
    cr_assert_gt(len, 10000);
    int fd = dial(NULL, 0);
    char head[8192];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/push HTTP/1.1\r\nHost: x\r\n%s\r\n%s\r\n%s\r\n"
                      "X-Cstack-Batch: %s:%" PRId64 "\r\nConnection: close\r\n"
                      "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n\r\n",
                      d.auth, d.schema, d.site, cstack_sync_site_id(d.db),
                      cstack_upload_tx_version(tx), len);
    t_send_all(fd, head, (size_t)hn);
    double t0 = now_s();
    const size_t step = 40; /* every 10 ms */
    for (size_t off = 0; off < len; off += step) {
        t_send_all(fd, cs + off, off + step <= len ? step : len - off);
        usleep(10 * 1000);
    }
    char buf[4096] = "";
    t_read_to_end(fd, buf, sizeof buf);
    cr_assert(strncmp(buf, "HTTP/1.1 200 ", 13) == 0, "the slow push: %s", buf);
    cr_assert_gt(now_s() - t0, 2.0, "the body was not slow");
    cstack_upload_tx_free(tx);
    dev_free(&d);
}

Test(limits, a_connection_over_max_connections_reads_its_503_even_while_it_is_still_sending)
{
    /* Two connections that have not sent their heads fill a limit of two;
     * the third sends a large request at once.  Closed right after its
     * answer, its unread bytes would make the kernel reset the connection
     * and the client could lose the answer: it is drained first. */
    start_limited((cstack_server_config){.max_connections = 2});
    dial(NULL, 0);
    dial(NULL, 0);
    usleep(200 * 1000);
    size_t n = 200000; /* inside the drain's 256 KiB */
    char *req = malloc(n);
    cr_assert_not_null(req);
    int k = snprintf(req, n, "POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                     n - 80);
    memset(req + k, 'b', n - (size_t)k);
    int fd = dial(NULL, 0);
    usleep(100 * 1000); /* answered and closed before any of the request arrives */
    /* Sent in two halves: a server that closed at once would reset the
     * connection at the first, and the second would fail. */
    size_t sent = 0;
    for (int half = 0; half < 2; half++) {
        ssize_t w;
        size_t end = half ? n : n / 2;
        while (sent < end && (w = send(fd, req + sent, end - sent, MSG_NOSIGNAL)) > 0)
            sent += (size_t)w;
        usleep(100 * 1000);
    }
    free(req);
    char ans[4096] = "";
    t_read_to_end(fd, ans, sizeof ans);
    fprintf(stderr, "sent %zu of %zu bytes\n", sent, n);
    cr_expect_eq(sent, n, "the connection was reset while the client was sending");
    fprintf(stderr, "over max_connections: %.200s\n", ans);
    cr_expect(strncmp(ans, "HTTP/1.1 503 ", 13) == 0, "%s", ans);
    cr_expect(strstr(ans, "Retry-After: 5") != NULL, "%s", ans);
    cr_expect(strstr(ans, "\"code\":\"busy\"") != NULL, "%s", ans);
}

/* ---- stream memory ------------------------------------------------------------------- */

Test(limits, streams_that_never_read_are_closed_when_stream_memory_passes_its_cap)
{
    const size_t MiB = (size_t)1 << 20;
    enum { STREAMS = 4, PUSHES = 4, ROWS = 32, TITLE = 64 * 1024 };
    start_limited(
        (cstack_server_config){.max_body = 8 * MiB, .max_stream_memory = 2 * MiB});
    dev d = device(SCHEMA, "alice");
    /* The streams are another device's: a device's own writes do not come
     * back to it. */
    dev reader = device(SCHEMA, "alice");
    log_memory("streams: before");
    char req[8192];
    int n = snprintf(req, sizeof req,
                     "GET /v1/stream?since=0 HTTP/1.1\r\nHost: x\r\n%s\r\n%s\r\n%s\r\n\r\n",
                     reader.auth, reader.schema, reader.site);
    for (int i = 0; i < STREAMS; i++)
        t_send_all(dial(NULL, 4096), req, (size_t)n);
    for (int i = 0; i < 50 && metric("cstack_streams_active ") < STREAMS; i++)
        usleep(100 * 1000);
    cr_assert_eq(metric("cstack_streams_active "), STREAMS);
    char *title = malloc(TITLE + 1);
    cr_assert_not_null(title);
    memset(title, 'x', TITLE);
    title[TITLE] = 0;
    for (int p = 0; p < PUSHES; p++) {
        cr_assert_eq(cstack_begin(d.db), 0);
        for (int i = 0; i < ROWS; i++) {
            char id[32];
            snprintf(id, sizeof id, "n%d-%d", p, i);
            note(&d, id, "alice", title);
        }
        cr_assert_eq(cstack_commit(d.db), 0);
        push_all(&d);
    }
    free(title);
    long long shed = 0, active = STREAMS;
    /* Each shed closes a different stream (a closed one has no queue). */
    for (int i = 0; i < 100 && (shed < 1 || active > STREAMS - shed); i++) {
        usleep(100 * 1000);
        shed = metric("cstack_refused_total{limit=\"stream_memory\"} ");
        active = metric("cstack_streams_active ");
    }
    log_memory("streams: after");
    cr_assert_geq(shed, 1, "no stream was closed for memory");
    cr_assert_eq(active, STREAMS - shed, "%lld streams closed for memory, %lld still open", shed,
                 active);
    res ok = http("GET", "/healthz", NULL, NULL, 0);
    cr_expect_eq(ok.status, 200);
    res_free(&ok);
    dev_free(&reader);
    dev_free(&d);
}

/* ---- the command line ------------------------------------------------------------------ */

Test(limits, cstack_serve_documents_every_limit_flag_and_refuses_a_bad_value)
{
    char cmd[1024];
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s serve --help", CSTACK_CLI);
    cr_assert_eq(t_run(cmd, &out), 0);
    static const char *const FLAGS[] = {"--header-timeout S", "--max-per-address N",
                                        "--max-upload-mib N", "--min-body-kib N",
                                        "--max-stream-mib N"};
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++)
        cr_expect_not_null(strstr(out, FLAGS[i]), "%s not in:\n%s", FLAGS[i], out);
    free(out);
    out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s serve --schema none.cstack --jwt-secret s --max-per-address 0 2>&1", CSTACK_CLI);
    cr_assert_eq(t_run(cmd, &out), 2, "%s", out ? out : "");
    cr_expect_not_null(strstr(out, "--max-per-address needs a count"), "%s", out);
    free(out);
}

/* ---- pulls beside a push -------------------------------------------------------------- */

typedef struct pending_push {
    dev *d;
    long status;
    atomic_bool done;
} pending_push;

static void *push_main(void *arg)
{
    pending_push *p = arg;
    char batch[128];
    res r = push_next(p->d, batch, sizeof batch);
    p->status = r.status;
    res_free(&r);
    p->done = true;
    return NULL;
}

Test(limits, a_pull_is_answered_while_a_push_waits_inside_its_merge)
{
    start_limited((cstack_server_config){0});
    dev alice = device(SCHEMA, "alice"), bob = device(SCHEMA, "bob");
    pull(&bob); /* bob's device is known: its next pull has nothing to record */
    /* Another program holds the database's write lock: alice's push takes the
     * server's write scope and waits inside it (up to the busy timeout). */
    char path[700];
    snprintf(path, sizeof path, "%s/limits.db", dir);
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    note(&alice, "n1", "alice", "hello");
    pending_push p = {.d = &alice};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, push_main, &p), 0);
    usleep(500 * 1000);
    double t0 = (double)cs_mono_ms();
    pull(&bob);
    double took = (double)cs_mono_ms() - t0;
    bool push_was_waiting = !p.done;
    sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(other);
    pthread_join(th, NULL);
    fprintf(stderr, "pull beside a waiting push: %.1f ms\n", took);
    cr_assert(push_was_waiting, "the pull was answered only after the push (%.1f ms)", took);
    cr_assert_eq(p.status, 200, "the push goes through once the lock is free");
    /* And bob's next pull sees alice's note. */
    pull(&bob);
    int64_t n = 0;
    cr_assert_eq(cstack_count(bob.db, "Note", NULL, &n), 0);
    cr_assert_eq(n, 1);
    dev_free(&alice);
    dev_free(&bob);
}

Test(limits, a_push_with_another_users_site_is_refused_while_a_push_waits_inside_its_merge)
{
    start_limited((cstack_server_config){0});
    dev alice = device(SCHEMA, "alice"), mallory = device(SCHEMA, "mallory");
    note(&alice, "n1", "alice", "hello");
    push_all(&alice); /* alice's site is hers */
    char path[700];
    snprintf(path, sizeof path, "%s/limits.db", dir);
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    note(&alice, "n2", "alice", "again");
    pending_push p = {.d = &alice};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, push_main, &p), 0);
    usleep(500 * 1000);
    /* Mallory pushes under alice's site id. */
    note(&mallory, "m1", "mallory", "mine");
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(mallory.db, &tx), 0);
    size_t len = 0;
    const void *cs = cstack_upload_tx_changeset(tx, &len);
    char bh[160];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %s:77", cstack_sync_site_id(alice.db));
    const char *h[] = {mallory.auth, mallory.schema, alice.site, bh, NULL};
    res r = http("POST", "/v1/push", h, cs, len);
    bool push_was_waiting = !p.done;
    sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(other);
    pthread_join(th, NULL);
    cstack_upload_tx_free(tx);
    assert_err(&r, 403, "forbidden", "belongs to another user", "mallory's push");
    res_free(&r);
    cr_assert(push_was_waiting, "the refusal came only after alice's push");
    cr_assert_eq(p.status, 200, "alice's push goes through once the lock is free");
    dev_free(&alice);
    dev_free(&mallory);
}
