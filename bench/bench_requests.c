/* bench_requests.c -- what one small request costs the server: GET /healthz
 * over raw sockets from one client, each request on a connection of its own
 * (the intake's accept, head check and hand-over to libmicrohttpd each
 * time) and then all on one kept-alive connection (the head check of each
 * later request).  Prints requests per second and latency percentiles.
 *
 * usage: bench_requests [--requests N]   (default 5000 of each kind) */
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

int main(int argc, char **argv)
{
    bench_name = "bench_requests";
    size_t n = 5000;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--requests") == 0)
            n = bench_count("--requests", argv[i + 1], 10000000);
    char dir[512], db[600];
    bench_tmpdir(dir, sizeof dir, "cstack-bench-requests");
    snprintf(db, sizeof db, "%s/server.db", dir);
    cstack_schema *schema = bench_schema(SCHEMA);
    cstack_server_config cfg = {.schema = schema, .db_path = db, .jwt_secret = "bench"};
    bench_child srv = bench_server_fork(&cfg);
    double *lat = malloc(n * sizeof *lat);
    if (!lat)
        die("latencies", "out of memory");
    printf("GET /healthz x %zu, one client on loopback\n", n);
    run(srv.port, n, false, lat);
    run(srv.port, n, true, lat);
    free(lat);
    bench_server_stop(&srv);
    cstack_schema_free(schema);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_requests: could not remove %s\n", dir);
    return 0;
}
