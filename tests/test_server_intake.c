/* test_server_intake.c -- a request head the server cannot parse or hold is
 * refused with our JSON error and its status, never libmicrohttpd's own HTML
 * page (docs/server.md, "Request heads"): on a connection's first request
 * and on a later one of a kept-alive connection.  Raw sockets: each case
 * writes the bad bytes and reads the answer until the server closes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server_support.h"
#include "util/clock.h"

static int sock = -1;

static void intake_init(void)
{
    start_opts(T_PRIVATE_NOTES_SCHEMA, "intake", 0);
}

static void intake_fini(void)
{
    if (sock >= 0)
        close(sock);
    sock = -1;
    fini();
}

TestSuite(intake, .init = intake_init, .fini = intake_fini, .timeout = 60);

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    sock = fd;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port())};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s", strerror(errno));
    return fd;
}

/* Reads one whole response of a kept-alive connection (its head and
 * Content-Length bytes of body) and asserts it is a 200. */
static void read_one(int fd)
{
    char buf[8192];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        cr_assert_gt(k, 0, "the first response did not arrive");
        len += (size_t)k;
        buf[len] = 0;
        end = strstr(buf, "\r\n\r\n");
    }
    cr_assert(strncmp(buf, "HTTP/1.1 200", 12) == 0, "first response: %s", buf);
    const char *cl = strcasestr(buf, "Content-Length:");
    cr_assert_not_null(cl);
    size_t want = (size_t)(end + 4 - buf) + strtoul(cl + 15, NULL, 10);
    while (len < want) {
        ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        cr_assert_gt(k, 0);
        len += (size_t)k;
    }
}

/* Writes `req` (on a kept-alive connection after one good request when
 * `later`) and asserts the answer is our JSON error with `status`. */
static void expect_refusal(const char *req, size_t len, bool later, int status, const char *code)
{
    int fd = dial();
    if (later) {
        const char *good = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        t_send_all(fd, good, strlen(good));
        read_one(fd);
    }
    t_send_all(fd, req, len);
    size_t cap = 1 << 16;
    char *ans = malloc(cap);
    cr_assert_not_null(ans);
    t_read_to_end(fd, ans, cap);
    close(fd);
    sock = -1;
    char line[32];
    snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    fprintf(stderr, "%s%d: %.120s\n", later ? "later " : "first ", status, ans);
    cr_expect(strncmp(ans, line, strlen(line)) == 0, "status line of: %s", ans);
    cr_expect(strcasestr(ans, "\r\nContent-Type: application/json\r\n") != NULL, "%s", ans);
    cr_expect(strcasestr(ans, "\r\nConnection: close\r\n") != NULL, "%s", ans);
    /* RFC 9110 6.6.1: an origin server with a clock sends Date. */
    const char *date = strcasestr(ans, "\r\nDate: ");
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    cr_expect(date && strptime(date + 8, "%a, %d %b %Y %H:%M:%S GMT", &tm) != NULL,
              "no IMF-fixdate Date: %s", ans);
    cr_expect(tm.tm_year + 1900 >= 2024, "Date: %.40s", date ? date : "");
    cr_expect(strcasestr(ans, "<html") == NULL, "an HTML page: %s", ans);
    const char *body = strstr(ans, "\r\n\r\n");
    cr_assert_not_null(body, "no body: %s", ans);
    char want[64];
    snprintf(want, sizeof want, "{\"status\":\"err\",\"code\":\"%s\",\"message\":\"", code);
    cr_expect(strncmp(body + 4, want, strlen(want)) == 0, "body: %s", body + 4);
    free(ans);
}

static void both(const char *req, size_t len, int status, const char *code)
{
    expect_refusal(req, len, false, status, code);
    expect_refusal(req, len, true, status, code);
}

#define BOTH(req, status, code) both(req, sizeof req - 1, status, code)

/* `head` + `fill` bytes of `c` + `tail`, in a fresh buffer. */
static char *padded(const char *head, char c, size_t fill, const char *tail, size_t *len)
{
    size_t h = strlen(head), t = strlen(tail);
    char *p = malloc(h + fill + t + 1);
    cr_assert_not_null(p);
    memcpy(p, head, h);
    memset(p + h, c, fill);
    memcpy(p + h + fill, tail, t + 1);
    *len = h + fill + t;
    return p;
}

Test(intake, a_malformed_request_line_is_a_json_400)
{
    BOTH("GARBAGE\r\nHost: x\r\n\r\n", 400, "bad_request");
    BOTH("GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400, "bad_request");
}

Test(intake, a_header_line_without_a_colon_is_a_json_400)
{
    BOTH("GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "bad_request");
}

Test(intake, http_1_1_without_host_is_a_json_400)
{
    BOTH("GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "bad_request");
}

Test(intake, an_over_long_target_is_a_json_414)
{
    size_t len;
    char *req = padded("GET /healthz?x=", 'a', 40000, " HTTP/1.1\r\nHost: x\r\n\r\n", &len);
    both(req, len, 414, "too_big");
    free(req);
}

Test(intake, too_many_or_too_large_headers_are_a_json_431)
{
    size_t len;
    char *req = padded("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", 'v', 40000, "\r\n\r\n", &len);
    both(req, len, 431, "too_big");
    free(req);
    cs_buf many = {0};
    cs_buf_append(&many, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32);
    for (int i = 0; i < 3000; i++) {
        char h[32];
        int n = snprintf(h, sizeof h, "X-H%d: v\r\n", i);
        cs_buf_append(&many, h, (size_t)n);
    }
    cs_buf_append(&many, "\r\n", 2);
    both((const char *)many.data, many.len, 431, "too_big");
    cs_buf_free(&many);
}

Test(intake, an_unsupported_http_version_is_a_json_505)
{
    BOTH("GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "bad_request");
    BOTH("GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n", 505, "bad_request");
}

Test(intake, a_refused_head_followed_by_a_large_body_still_gets_its_answer_read)
{
    /* The server answers at the head; the body keeps arriving after it.
     * Closing at once would reset the connection and could destroy the
     * answer: the refused connection is drained first. */
    size_t len;
    char *req = padded("POST /v1/push HTTP/1.1\r\nHost: x\r\nNoColonHere\r\nContent-Length: 200000\r\n\r\n",
                       'b', 200000, "", &len);
    both(req, len, 400, "bad_request");
    free(req);
}

Test(intake, heads_at_the_intakes_bounds_are_served_by_the_server_as_usual)
{
    /* 90 header lines, a 7 KiB target with 90 query arguments, 15 KiB in
     * all: libmicrohttpd must hold whatever the intake lets through. */
    cs_buf req = {0};
    cs_buf_append(&req, "GET /healthz?", 13);
    for (int i = 0; i < 90; i++) {
        char a[96];
        int n = snprintf(a, sizeof a, "%sa%d=%070d", i ? "&" : "", i, i);
        cs_buf_append(&req, a, (size_t)n);
    }
    cs_buf_append(&req, " HTTP/1.1\r\nHost: x\r\n", 20);
    for (int i = 0; i < 90; i++) {
        char h[128];
        int n = snprintf(h, sizeof h, "X-Header-%d: %080d\r\n", i, i);
        cs_buf_append(&req, h, (size_t)n);
    }
    cs_buf_append(&req, "\r\n", 2);
    fprintf(stderr, "a head of %zu bytes\n", req.len);
    cr_assert_lt(req.len, 16384);
    for (int later = 0; later < 2; later++) {
        int fd = dial();
        if (later)
            t_send_all(fd, req.data, req.len);
        if (later)
            read_one(fd);
        t_send_all(fd, req.data, req.len);
        read_one(fd);
        close(fd);
        sock = -1;
    }
    cs_buf_free(&req);
}

/* ---- HTTP/1.0 keep-alive, body framing ------------------------- */

/* Everything the server answers on `fd` until it closes (malloc'd). */
static char *read_all(int fd)
{
    size_t cap = 1 << 16;
    char *ans = malloc(cap);
    cr_assert_not_null(ans);
    t_read_to_end(fd, ans, cap);
    return ans;
}

Test(intake, a_later_request_of_an_http_1_0_keep_alive_connection_is_checked)
{
    const char *good = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    int fd = dial();
    t_send_all(fd, good, strlen(good));
    char buf[4096];
    ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
    cr_assert_gt(k, 0, "no answer to the first request");
    buf[k] = 0;
    fprintf(stderr, "HTTP/1.0 keep-alive: %.200s\n", buf);
    cr_assert(strstr(buf, " 200 ") != NULL, "%s", buf);
    const char *bad = "GET /healthz HTTP/1.0\r\nNoColonHere\r\n\r\n";
    t_send_all(fd, bad, strlen(bad));
    char *ans = read_all(fd);
    fprintf(stderr, "later HTTP/1.0: %.200s\n", ans);
    cr_expect(strncmp(ans, "HTTP/1.1 400 ", 13) == 0, "%s", ans);
    cr_expect(strstr(ans, "\"code\":\"bad_request\"") != NULL, "%s", ans);
    cr_expect(strcasestr(ans, "<html") == NULL, "%s", ans);
    free(ans);
}

Test(intake, an_http_1_0_keep_alive_connection_still_serves_its_good_requests)
{
    const char *req = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    const char *last = "GET /healthz HTTP/1.0\r\n\r\n";
    int fd = dial();
    char buf[4096];
    for (int i = 0; i < 3; i++) {
        t_send_all(fd, req, strlen(req));
        ssize_t k = recv(fd, buf, sizeof buf - 1, 0);
        cr_assert_gt(k, 0, "no answer to request %d", i);
        buf[k] = 0;
        cr_assert(strstr(buf, " 200 ") != NULL, "%s", buf);
    }
    t_send_all(fd, last, strlen(last));
    char *ans = read_all(fd);
    cr_expect(strstr(ans, " 200 ") != NULL, "%s", ans);
    free(ans);
}

Test(intake, a_content_length_that_is_not_one_decimal_number_is_a_json_400)
{
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400, "bad_request");
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad_request");
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400, "bad_request");
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
         400, "bad_request");
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400, "bad_request");
}

Test(intake, a_content_length_over_the_body_limit_is_a_json_413_at_the_head)
{
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n", 413,
         "too_big");
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
         413, "too_big");
}

Test(intake, a_transfer_encoding_other_than_content_length_is_refused_as_json)
{
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411,
         "length_required");
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
         "unsupported");
    BOTH("POST /v1/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
         "Content-Length: 5\r\n\r\n",
         400, "bad_request");
}

/* ---- pipelining ------------------------------------------------------------ */

/* One answer of a pipeline: its status, head and the start of its body. */
typedef struct answer {
    int status;
    char head[1024];
    char body[512];
    bool close; /* Connection: close */
    bool json;
} answer;

/* Splits what the server sent (`len` bytes, bodies may hold NULs) into
 * answers, each framed by its Content-Length; how many were complete. */
static size_t split_answers(const char *buf, size_t len, answer *out, size_t max)
{
    size_t n = 0, at = 0;
    while (n < max && at < len) {
        const char *end = memmem(buf + at, len - at, "\r\n\r\n", 4);
        size_t hlen = end ? (size_t)(end + 4 - (buf + at)) : 0;
        if (!end || hlen >= sizeof out->head || strncmp(buf + at, "HTTP/1.", 7) != 0)
            break;
        answer *a = &out[n];
        memcpy(a->head, buf + at, hlen);
        a->head[hlen] = 0;
        const char *cl = strcasestr(a->head, "\r\nContent-Length:");
        if (!cl)
            break;
        size_t body = strtoul(cl + 17, NULL, 10);
        if (at + hlen + body > len)
            break;
        a->status = atoi(a->head + 9);
        a->close = strcasestr(a->head, "\r\nConnection: close\r\n") != NULL;
        a->json = strcasestr(a->head, "\r\nContent-Type: application/json") != NULL;
        size_t keep = body < sizeof a->body - 1 ? body : sizeof a->body - 1;
        memcpy(a->body, buf + at + hlen, keep);
        a->body[keep] = 0;
        at += hlen + body;
        n++;
    }
    return n;
}

/* Sends `parts` (`lens[i]` bytes each, or the string when lens is NULL;
 * separate writes `pause_ms` apart) on a fresh connection and splits every
 * answer read until the server closes. */
static size_t pipeline(const char *const *parts, const size_t *lens, size_t nparts,
                       int pause_ms, answer *out, size_t max)
{
    int fd = dial();
    for (size_t i = 0; i < nparts; i++) {
        if (i && pause_ms)
            usleep((useconds_t)pause_ms * 1000);
        t_send_all(fd, parts[i], lens ? lens[i] : strlen(parts[i]));
    }
    size_t cap = 1 << 20;
    char *ans = malloc(cap);
    cr_assert_not_null(ans);
    size_t len = t_read_to_end(fd, ans, cap);
    close(fd);
    sock = -1;
    fprintf(stderr, "pipeline answered: %.300s\n", ans);
    cr_expect(memmem(ans, len, "<html", 5) == NULL, "an HTML page: %s", ans);
    size_t n = split_answers(ans, len, out, max);
    free(ans);
    return n;
}

static const char HEALTHZ[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
static const char METRICS[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
static const char HEALTHZ_LAST[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
static const char METRICS_LAST[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

Test(intake, two_good_gets_in_one_write_are_both_answered_in_order)
{
    /* The second closes the connection, so that reading to the end ends
     * as soon as it is answered (and not at the idle timeout). */
    char one[256];
    snprintf(one, sizeof one, "%s%s", HEALTHZ, METRICS_LAST);
    const char *parts[] = {one};
    answer a[3];
    int64_t t0 = cs_mono_ms();
    size_t n = pipeline(parts, NULL, 1, 0, a, 3);
    cr_assert_eq(n, 2, "%zu answers", n);
    cr_expect_eq(a[0].status, 200);
    cr_expect(strncmp(a[0].body, "{\"status\":\"ok\"", 14) == 0, "%s", a[0].body);
    cr_expect_eq(a[1].status, 200);
    cr_expect(strstr(a[1].body, "# ") == a[1].body, "the metrics text second: %s", a[1].body);
    cr_expect(a[1].close);
    cr_expect_lt(cs_mono_ms() - t0, 2000, "answered at once, not at a deadline");
}

/* Appends a raw push of the device's oldest pending transaction to `b`
 * (and marks the batch uploaded). */
static void raw_push(dev *d, cs_buf *b)
{
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(d->db, &tx), 0);
    cr_assert_not_null(tx);
    size_t len = 0;
    const void *body = cstack_upload_tx_changeset(tx, &len);
    cs_buf_printf(b,
                  "POST /v1/push HTTP/1.1\r\nHost: x\r\n%s\r\n%s\r\n%s\r\n"
                  "X-Cstack-Batch: %s:%" PRId64 "\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Length: %zu\r\n\r\n",
                  d->auth, d->schema, d->site, cstack_sync_site_id(d->db),
                  cstack_upload_tx_version(tx), len);
    cs_buf_append(b, body, len);
    cstack_upload_complete(d->db, cstack_upload_tx_version(tx));
    cstack_upload_tx_free(tx);
}

Test(intake, a_get_then_two_pushes_and_a_pull_in_one_write_are_answered_in_order)
{
    dev d = device(T_PRIVATE_NOTES_SCHEMA, "alice");
    cs_buf all = {0};
    cs_buf_puts(&all, HEALTHZ);
    note(&d, "n1", "alice", "first");
    raw_push(&d, &all);
    note(&d, "n2", "alice", "second");
    raw_push(&d, &all);
    cs_buf_printf(&all, "GET /v1/pull?since=0 HTTP/1.1\r\nHost: x\r\n%s\r\n%s\r\n%s\r\n"
                        "Connection: close\r\n\r\n",
                  d.auth, d.schema, d.site);
    const char *parts[] = {(const char *)all.data};
    size_t lens[] = {all.len};
    answer a[5];
    size_t n = pipeline(parts, lens, 1, 0, a, 5);
    cr_assert_eq(n, 4, "%zu answers", n);
    cr_expect_eq(a[0].status, 200);
    cr_expect(strncmp(a[0].body, "{\"status\":\"ok\",\"version\":", 25) == 0, "%s", a[0].body);
    cr_expect_eq(a[1].status, 200, "%s", a[1].body);
    cr_expect(strstr(a[1].body, "\"duplicate\":false,\"cursor\":1}") != NULL, "%s", a[1].body);
    cr_expect_eq(a[2].status, 200, "%s", a[2].body);
    cr_expect(strstr(a[2].body, "\"duplicate\":false,\"cursor\":2}") != NULL, "%s", a[2].body);
    cr_expect_eq(a[3].status, 200);
    cr_expect(strstr(a[3].head, "X-Cstack-Cursor: 2\r\n") != NULL, "the pull saw both: %s",
              a[3].head);
    cr_expect(a[3].close);
    cr_expect_eq(server_version(), 2);
    cs_buf_free(&all);
    dev_free(&d);
}

/* A good request and a bad one behind it in one write: the good one is
 * answered, then the bad one gets the JSON error (and status) it gets as a
 * first request, and the connection closes. */
static void good_then_bad(const char *bad, int status, const char *code)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s", HEALTHZ, bad);
    const char *parts[] = {buf};
    answer a[3];
    size_t n = pipeline(parts, NULL, 1, 0, a, 3);
    cr_assert_eq(n, 2, "%zu answers to %s", n, bad);
    cr_expect_eq(a[0].status, 200);
    cr_expect(strncmp(a[0].body, "{\"status\":\"ok\"", 14) == 0, "%s", a[0].body);
    cr_expect_eq(a[1].status, status, "%s", bad);
    cr_expect(a[1].json && a[1].close, "%s", bad);
    char want[64];
    snprintf(want, sizeof want, "{\"status\":\"err\",\"code\":\"%s\"", code);
    cr_expect(strncmp(a[1].body, want, strlen(want)) == 0, "%s", a[1].body);
}

Test(intake, a_bad_head_behind_a_good_request_in_one_write_gets_its_json_error_after_the_answer)
{
    good_then_bad("GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, "bad_request");
    good_then_bad("GARBAGE\r\n\r\n", 400, "bad_request");
    good_then_bad("GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, "bad_request");
    good_then_bad("GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "bad_request");
    good_then_bad("POST /v1/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 411,
                  "length_required");
    good_then_bad("POST /v1/push HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
                  "unsupported");
    good_then_bad("POST /v1/push HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999999\r\n\r\n", 413,
                  "too_big");
}

Test(intake, a_pipeline_over_three_writes_is_answered_in_order)
{
    /* Each write ends inside the next request, so that the server holds a
     * part of it when it answers the one before. */
    const char *parts[] = {"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metr",
                           "ics HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo",
                           "st: x\r\nConnection: close\r\n\r\n"};
    answer a[4];
    size_t n = pipeline(parts, NULL, 3, 200, a, 4);
    cr_assert_eq(n, 3, "%zu answers", n);
    cr_expect_eq(a[0].status, 200);
    cr_expect(strncmp(a[0].body, "{\"status\":\"ok\"", 14) == 0, "%s", a[0].body);
    cr_expect_eq(a[1].status, 200);
    cr_expect(strstr(a[1].body, "# ") == a[1].body, "%s", a[1].body);
    cr_expect_eq(a[2].status, 200);
    cr_expect(a[2].close);
}

Test(intake, http_1_0_keep_alive_requests_in_one_write_are_all_answered)
{
    const char *parts[] = {"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                           "GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                           "GET /healthz HTTP/1.0\r\n\r\n"};
    answer a[4];
    size_t n = pipeline(parts, NULL, 1, 0, a, 4);
    cr_assert_eq(n, 3, "%zu answers", n);
    cr_expect_eq(a[0].status, 200);
    cr_expect(strstr(a[1].body, "# ") == a[1].body, "%s", a[1].body);
    cr_expect_eq(a[2].status, 200);
    cr_expect(strncmp(a[2].body, "{\"status\":\"ok\"", 14) == 0, "%s", a[2].body);
}

Test(intake, a_pipeline_written_a_few_bytes_at_a_time_gets_every_answer_or_a_clean_close)
{
    /* Bytes that arrive between a head's check and libmicrohttpd's read
     * cannot be seen: the connection then ends cleanly after the answers
     * it owes (the client retries the rest), never with an HTML page or a
     * wrong answer. */
    char all[512];
    snprintf(all, sizeof all, "%s%s%s", HEALTHZ, METRICS, HEALTHZ_LAST);
    for (int round = 0; round < 5; round++) {
        int64_t t0 = cs_mono_ms();
        int fd = dial();
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        for (size_t at = 0, len = strlen(all); at < len; at += 7) {
            t_send_all(fd, all + at, len - at < 7 ? len - at : 7);
            if (round % 2)
                usleep(1000);
        }
        char *ans = read_all(fd);
        close(fd);
        sock = -1;
        answer a[4];
        size_t n = split_answers(ans, strlen(ans), a, 4); /* text answers only */
        fprintf(stderr, "round %d: %zu answers\n", round, n);
        cr_expect(strcasestr(ans, "<html") == NULL, "%s", ans);
        cr_expect_geq(n, 1, "%s", ans);
        for (size_t i = 0; i < n; i++)
            cr_expect_eq(a[i].status, 200, "answer %zu: %s", i, ans);
        if (n >= 2)
            cr_expect(strstr(a[1].body, "# ") == a[1].body, "%s", a[1].body);
        cr_expect_lt(cs_mono_ms() - t0, 3000, "round %d waited for a deadline", round);
        free(ans);
    }
}
