/* bench_requests.c -- what a request costs the server beside its own work:
 * GET /healthz over raw sockets from one client, each request on a
 * connection of its own (the intake's accept, head check and hand-over to
 * libmicrohttpd, and the relay of its first request, each time) and then
 * all on one kept-alive connection (the head check of each later request);
 * then a large pull answer as a new connection's first request (copied
 * through the relay, relay.c) against the same answer on a kept-alive
 * connection.  Prints requests per second, latency percentiles and the
 * ratio; checks every answer's status and the pulls' byte counts. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_streams.h"
#include "bench_util.h"
#include "cstack_server.h"

static const char *SCHEMA = "auth User { id String }\n"
                            "model Note {\n"
                            "  id    String @id\n"
                            "  title String\n"
                            "  @@allow('all', true)\n"
                            "}\n";

static const char REQ[] = "GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n";

static const char USAGE[] =
    "usage: bench_requests [--requests N] [--pull-mib M] [--pulls P]\n"
    "\n"
    "What a request costs the sync server beside its own work, one client on\n"
    "loopback, the server in a child process:\n"
    "  GET /healthz x N on a connection each, then x N on one kept-alive\n"
    "  connection: requests/s and p50 / p99 / max latency;\n"
    "  a pull answer of about M MiB x P as the first request of a new\n"
    "  connection (relayed, src/server/relay.c), then x P on a kept-alive\n"
    "  connection: p50 / max and the ratio of the p50s.\n"
    "\n"
    "options:\n"
    "  --requests N   small requests of each kind (default 5000)\n"
    "  --pull-mib M   size of the pull answer in MiB (default 8, 0: skip)\n"
    "  --pulls P      pulls of each kind (default 20)\n"
    "\n"
    "Exit status 0, or 1 when an answer is not 200 or a pull's size differs.\n";

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect", strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Sends one request and reads its whole answer (head and Content-Length
 * bytes of body). */
static void one_request(int fd)
{
    if (send(fd, REQ, sizeof REQ - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof REQ - 1))
        die("send", strerror(errno));
    char buf[4096];
    size_t len = 0, want = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (k <= 0)
            die("recv", "the server closed before answering");
        len += (size_t)k;
        buf[len] = 0;
        char *end = strstr(buf, "\r\n\r\n");
        const char *cl = end ? strstr(buf, "Content-Length: ") : NULL;
        if (cl && !want)
            want = (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
        if (want && len >= want)
            break;
    }
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
        die("answer", buf);
}

static void report(const char *what, double *lat, size_t n, double total_ms)
{
    qsort(lat, n, sizeof *lat, cmp_double);
    printf("%-28s %8.0f req/s   p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", what,
           (double)n / (total_ms / 1e3), lat[n / 2], lat[n * 99 / 100], lat[n - 1]);
}

static void run(int port, size_t n, bool keep_alive, double *lat)
{
    int fd = keep_alive ? dial(port) : -1;
    double t0 = now_ms();
    for (size_t i = 0; i < n; i++) {
        double s = now_ms();
        if (!keep_alive)
            fd = dial(port);
        one_request(fd);
        if (!keep_alive)
            close(fd);
        lat[i] = now_ms() - s;
    }
    if (keep_alive)
        close(fd);
    report(keep_alive ? "keep-alive connection:" : "a connection per request:", lat, n,
           now_ms() - t0);
}

/* ---- a large answer, relayed or not -------------------------------------------- */

/* Reads one answer of `fd` to its end (Content-Length); returns its body's
 * length and checks the status. */
static size_t read_answer(int fd)
{
    static char buf[1 << 16];
    size_t len = 0, head = 0, want = 0, total = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (k <= 0)
            die("recv", "the server closed before answering");
        total += (size_t)k;
        if (!head) {
            len += (size_t)k;
            buf[len] = 0;
            char *end = strstr(buf, "\r\n\r\n");
            if (!end) {
                if (len + 1 >= sizeof buf)
                    die("answer", "a head over 64 KiB");
                continue;
            }
            if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
                die("answer", buf);
            const char *cl = strcasestr(buf, "\r\nContent-Length: ");
            if (!cl)
                die("answer", "no Content-Length");
            head = (size_t)(end + 4 - buf);
            want = head + strtoul(cl + 18, NULL, 10);
            len = 0;
        }
        if (total >= want)
            break;
    }
    if (total != want)
        die("answer", "more bytes than its Content-Length");
    return want - head;
}

static void pull_on(int fd, const char *req, size_t n)
{
    if (send(fd, req, n, MSG_NOSIGNAL) != (ssize_t)n)
        die("send", strerror(errno));
}

/* Fills the server's database with rows of about 1 KiB, `mib` MiB of them. */
static size_t seed(const cstack_schema *schema, const char *db_path, size_t mib)
{
    cstack *db = NULL;
    if (cstack_open(schema, db_path, NULL, &db) != 0 || cstack_bootstrap(db, NULL) != 0)
        die(db_path, db ? cstack_errmsg(db) : "cannot open");
    size_t rows = mib * 1024;
    char title[1001];
    memset(title, 'x', 1000);
    title[1000] = 0;
    if (cstack_begin(db) != 0)
        die("begin", cstack_errmsg(db));
    for (size_t i = 0; i < rows; i++) {
        char id[32];
        snprintf(id, sizeof id, "n%08zu", i);
        cstack_field_value f[] = {{"id", cstack_v_text(id)}, {"title", cstack_v_text(title)}};
        cstack_data d = {f, 2};
        if (cstack_create(db, "Note", &d, NULL) != 0)
            die("create", cstack_errmsg(db));
    }
    if (cstack_commit(db) != 0)
        die("commit", cstack_errmsg(db));
    cstack_close(db);
    return rows;
}

static void run_pulls(int port, const cstack_schema *schema, size_t pulls)
{
    char *tok = NULL, err[256];
    if (cstack_server_mint_token("bench", "reader", NULL, 0, (int64_t)time(NULL), 3600, &tok, err,
                                 sizeof err))
        die("token", err);
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "GET /v1/pull?since=0 HTTP/1.1\r\nHost: bench\r\n"
                     "Authorization: Bearer %s\r\nX-Cstack-Schema: %s\r\n"
                     "X-Cstack-Site: 0123456789abcdef0123456789abcdef\r\n\r\n",
                     tok, cstack_schema_hash(schema));
    cstack_free(tok);
    if (n <= 0 || (size_t)n >= sizeof req)
        die("request", "too long");
    double *lat[2];
    size_t bytes[2] = {0, 0};
    for (int kind = 0; kind < 2; kind++) {
        lat[kind] = malloc(pulls * sizeof *lat[kind]);
        if (!lat[kind])
            die("latencies", "out of memory");
    }
    /* Relayed: each pull is a new connection's first request. */
    for (size_t i = 0; i < pulls; i++) {
        int fd = dial(port);
        double s = now_ms();
        pull_on(fd, req, (size_t)n);
        size_t got = read_answer(fd);
        lat[0][i] = now_ms() - s;
        close(fd);
        if (bytes[0] && got != bytes[0])
            die("pull", "two answers of different sizes");
        bytes[0] = got;
    }
    /* Kept alive: a first pull (relayed) hands the connection back; the
     * timed ones are read by libmicrohttpd itself. */
    int fd = dial(port);
    pull_on(fd, req, (size_t)n);
    read_answer(fd);
    for (size_t i = 0; i < pulls; i++) {
        double s = now_ms();
        pull_on(fd, req, (size_t)n);
        size_t got = read_answer(fd);
        lat[1][i] = now_ms() - s;
        if (got != bytes[0])
            die("pull", "a kept-alive answer's size differs from the relayed one's");
        bytes[1] = got;
    }
    close(fd);
    for (int kind = 0; kind < 2; kind++)
        qsort(lat[kind], pulls, sizeof *lat[kind], cmp_double);
    printf("pull answer of %.1f MiB x %zu\n", (double)bytes[0] / (1024.0 * 1024.0), pulls);
    printf("%-28s p50 %8.2f ms  max %8.2f ms\n", "a new connection's first:", lat[0][pulls / 2],
           lat[0][pulls - 1]);
    printf("%-28s p50 %8.2f ms  max %8.2f ms\n", "kept-alive connection:", lat[1][pulls / 2],
           lat[1][pulls - 1]);
    printf("new connection / kept-alive p50: x%.2f\n", lat[0][pulls / 2] / lat[1][pulls / 2]);
    free(lat[0]);
    free(lat[1]);
}

int main(int argc, char **argv)
{
    bench_name = "bench_requests";
    size_t n = 5000, mib = 8, pulls = 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        if (i + 1 == argc) {
            fprintf(stderr, "bench_requests: unknown or incomplete option %s\n%s", argv[i], USAGE);
            return 2;
        }
        if (strcmp(argv[i], "--requests") == 0)
            n = bench_count("--requests", argv[++i], 10000000);
        else if (strcmp(argv[i], "--pull-mib") == 0) {
            ++i;
            mib = strcmp(argv[i], "0") == 0 ? 0 : bench_count("--pull-mib", argv[i], 256);
        }
        else if (strcmp(argv[i], "--pulls") == 0)
            pulls = bench_count("--pulls", argv[++i], 100000);
        else {
            fprintf(stderr, "bench_requests: unknown option %s\n%s", argv[i], USAGE);
            return 2;
        }
    }
    char dir[512], db[600];
    bench_tmpdir(dir, sizeof dir, "cstack-bench-requests");
    snprintf(db, sizeof db, "%s/server.db", dir);
    cstack_schema *schema = bench_schema(SCHEMA);
    size_t rows = mib ? seed(schema, db, mib) : 0;
    /* One page holds the whole answer. */
    cstack_server_config cfg = {.schema = schema,
                                .db_path = db,
                                .jwt_secret = "bench",
                                .pull_page_rows = rows + 1,
                                .pull_page_bytes = (mib + 1) << 20};
    bench_child srv = bench_server_fork(&cfg);
    double *lat = malloc(n * sizeof *lat);
    if (!lat)
        die("latencies", "out of memory");
    printf("GET /healthz x %zu, one client on loopback\n", n);
    run(srv.port, n, false, lat);
    run(srv.port, n, true, lat);
    free(lat);
    if (mib)
        run_pulls(srv.port, schema, pulls);
    bench_server_stop(&srv);
    cstack_schema_free(schema);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_requests: could not remove %s\n", dir);
    return 0;
}
