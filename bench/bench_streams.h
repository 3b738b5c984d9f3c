/* bench_streams.h -- many light /v1/stream readers for the delivery
 * benchmarks (bench_sync_server, bench_pg): one non-blocking socket each,
 * driven by one epoll loop, sending the stream request of docs/server.md
 * and timing each `event: changes` line; a full runtime per client would
 * measure the clients, not the server.  Reader i signs in as user
 * "user-(i % users)" and connects to ports[i % nports], so streams can be
 * spread over several servers.  A round is one pushed write: the caller
 * sets `round` and, when the push's 200 arrives, commit[round]; every
 * stream's arrival of that round's event is then measured against it.
 * Header-only, like bench_util.h. */
#ifndef CSTACK_BENCH_STREAMS_H
#define CSTACK_BENCH_STREAMS_H

/* memmem: the including file defines _GNU_SOURCE before its first include. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_util.h"
#include "cstack.h"
#include "cstack_server.h"

#define STREAMS_PATTERN "event: changes"
#define STREAMS_PLEN (sizeof STREAMS_PATTERN - 1)
#define STREAMS_MAX_ROUNDS 64

typedef struct reader {
    int fd;
    int port;
    bool ok;                 /* answered 200 */
    bool headers;            /* the status line has been read */
    char first[160];         /* the answer's first bytes, for a refusal's report */
    size_t seen;             /* `event: changes` lines so far */
    char tail[STREAMS_PLEN]; /* the last bytes of the previous read */
    size_t ntail;
    double *arrival; /* per round */
} reader;

typedef struct streams {
    size_t n, users, rounds;
    reader *r;
    double *arrivals; /* n x rounds */
    int ep;
    const char *hash;   /* the schema hash (borrowed) */
    const char *secret; /* the servers' JWT secret (borrowed) */
    atomic_int round;   /* the round being pushed; -1 none */
    double commit[STREAMS_MAX_ROUNDS]; /* per round: when the push's 200 arrived */
} streams;

static inline void streams_connect(streams *s, size_t i)
{
    reader *r = &s->r[i];
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (r->fd < 0)
        die("socket", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(r->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        die("connect", strerror(errno));
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.u64 = i};
    epoll_ctl(s->ep, EPOLL_CTL_ADD, r->fd, &ev);
}

static inline void streams_send(streams *s, size_t i)
{
    char sub[32], req[4096], err[256];
    snprintf(sub, sizeof sub, "user-%zu", i % s->users);
    char *tok = NULL;
    if (cstack_server_mint_token(s->secret, sub, NULL, 0, time(NULL), 3600, &tok, err,
                                 sizeof err) != 0)
        die("token", err);
    int n = snprintf(req, sizeof req,
                     "GET /v1/stream?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nX-Cstack-Schema: %s\r\n"
                     "X-Cstack-Site: %032zx\r\nAccept: text/event-stream\r\n\r\n",
                     tok, s->hash, i + 1);
    cstack_free(tok);
    /* A fresh loopback socket takes a few KB at once. */
    if (send(s->r[i].fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        die("send", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, s->r[i].fd, &ev);
}

/* Scans new bytes for the pattern, across reads. */
static inline void streams_data(streams *s, reader *r, const char *p, size_t n, double t)
{
    if (!r->headers && n >= 12) {
        r->headers = true;
        r->ok = memcmp(p, "HTTP/1.1 200", 12) == 0;
        size_t m = n < sizeof r->first - 1 ? n : sizeof r->first - 1;
        for (size_t k = 0; k < m; k++)
            r->first[k] = p[k] >= ' ' && p[k] < 0x7f ? p[k] : ' ';
    }
    char buf[STREAMS_PLEN + 65536];
    memcpy(buf, r->tail, r->ntail);
    memcpy(buf + r->ntail, p, n);
    size_t len = r->ntail + n;
    for (const char *at = buf;
         (at = memmem(at, (size_t)(buf + len - at), STREAMS_PATTERN, STREAMS_PLEN));
         at += STREAMS_PLEN) {
        if (r->seen < s->rounds)
            r->arrival[r->seen] = t;
        r->seen++;
    }
    r->ntail = len < STREAMS_PLEN - 1 ? len : STREAMS_PLEN - 1;
    memcpy(r->tail, buf + len - r->ntail, r->ntail);
}

/* Runs the epoll loop until `done` says so or the deadline passes. */
static inline void streams_pump(streams *s, double deadline, bool (*done)(streams *s))
{
    struct epoll_event evs[256];
    char buf[65536];
    while (!done(s) && now_ms() < deadline) {
        int n = epoll_wait(s->ep, evs, 256, 5);
        double t = now_ms();
        for (int k = 0; k < n; k++) {
            size_t i = evs[k].data.u64;
            reader *r = &s->r[i];
            if (evs[k].events & EPOLLOUT) {
                streams_send(s, i);
                continue;
            }
            ssize_t got = recv(r->fd, buf, sizeof buf, 0);
            if (got > 0) {
                streams_data(s, r, buf, (size_t)got, t);
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                epoll_ctl(s->ep, EPOLL_CTL_DEL, r->fd, NULL);
            }
        }
    }
}

static inline bool streams_all_connected(streams *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (!s->r[i].headers)
            return false;
    return true;
}

/* True once every stream that answered 200 has the current round's event
 * and its push was acknowledged. */
static inline bool streams_round_done(streams *s)
{
    int k = atomic_load(&s->round);
    if (k < 0 || s->commit[k] == 0)
        return false;
    for (size_t i = 0; i < s->n; i++)
        if (s->r[i].ok && s->r[i].seen <= (size_t)k)
            return false;
    return true;
}

/* Opens n streams spread over `ports` (in waves, as devices would come
 * online) and waits up to `timeout_ms` for their answers; returns how many
 * answered 200. */
static inline size_t streams_open(streams *s, size_t n, size_t users, size_t rounds,
                                  const int *ports, size_t nports, double timeout_ms)
{
    s->n = n;
    s->users = users;
    s->rounds = rounds < STREAMS_MAX_ROUNDS ? rounds : STREAMS_MAX_ROUNDS;
    atomic_store(&s->round, -1);
    s->ep = epoll_create1(0);
    s->r = calloc(n, sizeof *s->r);
    s->arrivals = calloc(n * s->rounds + 1, sizeof *s->arrivals);
    if (!s->r || !s->arrivals || s->ep < 0)
        die("streams", "out of memory");
    for (size_t i = 0; i < n; i++) {
        s->r[i].arrival = s->arrivals + i * s->rounds;
        s->r[i].port = ports[i % nports];
        streams_connect(s, i);
        if (i % 100 == 99)
            streams_pump(s, now_ms() + 20, streams_all_connected);
    }
    streams_pump(s, now_ms() + timeout_ms, streams_all_connected);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += s->r[i].ok;
    return ok;
}

/* Adds round k's arrivals (ms after its commit; an arrival before the 200
 * counts as 0) to lat[*nlat...] and the streams that missed it to *missing. */
static inline void streams_collect(const streams *s, size_t k, double *lat, size_t *nlat,
                                   size_t *missing)
{
    for (size_t i = 0; i < s->n; i++) {
        const reader *r = &s->r[i];
        if (!r->ok || r->seen <= k) {
            (*missing)++;
            continue;
        }
        double d = r->arrival[k] - s->commit[k];
        lat[(*nlat)++] = d > 0 ? d : 0;
    }
}

/* Says on stderr how many streams did not answer 200, and how one of them
 * answered (the start of its answer), under `label`. */
static inline void streams_report_refused(const streams *s, const char *label)
{
    size_t silent = 0, refused = 0;
    const reader *example = NULL;
    for (size_t i = 0; i < s->n; i++) {
        const reader *r = &s->r[i];
        silent += !r->headers;
        refused += r->headers && !r->ok;
        if (r->headers && !r->ok && !example)
            example = r;
    }
    if (silent)
        fprintf(stderr, "%s: %zu streams never answered\n", label, silent);
    if (example)
        fprintf(stderr, "%s: %zu streams refused, e.g. on port %d: %s\n", label, refused,
                example->port, example->first);
}

static inline void streams_close(streams *s)
{
    for (size_t i = 0; i < s->n; i++)
        close(s->r[i].fd);
    close(s->ep);
    free(s->r);
    free(s->arrivals);
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* How many streams this process can hold: each is a socket here and one in
 * a server, so the open-file limit is raised to its hard limit and `want`
 * lowered (with a line saying so) when that is still too few. */
static inline size_t bench_streams_fit(size_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want + 256) {
        want = rl.rlim_cur > 512 ? (size_t)rl.rlim_cur - 256 : 256;
        printf("(open-file limit: %zu streams)\n", want);
    }
    return want;
}

/* ---- servers in child processes ------------------------------------------- */

/* A sync server in a child process, so that its memory and CPU are its own. */
typedef struct bench_child {
    pid_t pid;
    int port;
    int ctl; /* closing it tells the child to drain and exit */
} bench_child;

/* The control pipes of the servers running: a server forked later must not
 * hold them open, or closing one would not tell its server to stop. */
static int bench_ctl_open[8];
static size_t bench_nctl_open;

static inline void bench_child_main(const cstack_server_config *cfg, int up, int ctl)
{
    cstack_server *srv = NULL;
    char err[512] = "";
    int rc = cstack_server_start(cfg, &srv, err, sizeof err);
    int port = rc ? -1 : cstack_server_port(srv);
    if (write(up, &port, sizeof port) != (ssize_t)sizeof port || rc) {
        fprintf(stderr, "%s: server on %s: %s\n", bench_name,
                cfg->db_path ? cfg->db_path : "the default path", err);
        _exit(1);
    }
    char c;
    while (read(ctl, &c, 1) != 0 && errno == EINTR)
        ;
    cstack_server_stop(srv);
    _exit(0);
}

/* Starts a server with `cfg` (its pointers stay valid in the child, which
 * is a copy of this process) and returns once it listens. */
static inline bench_child bench_server_fork(const cstack_server_config *cfg)
{
    int up[2], ctl[2];
    if (pipe(up) != 0 || pipe(ctl) != 0)
        die("pipe", strerror(errno));
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    if (pid == 0) {
        close(up[0]);
        close(ctl[1]);
        for (size_t i = 0; i < bench_nctl_open; i++)
            close(bench_ctl_open[i]);
        bench_child_main(cfg, up[1], ctl[0]);
    }
    close(up[1]);
    close(ctl[0]);
    bench_child c = {pid, -1, ctl[1]};
    if (bench_nctl_open < sizeof bench_ctl_open / sizeof bench_ctl_open[0])
        bench_ctl_open[bench_nctl_open++] = ctl[1];
    if (read(up[0], &c.port, sizeof c.port) != (ssize_t)sizeof c.port || c.port <= 0)
        die("server", "did not start");
    close(up[0]);
    return c;
}

/* Tells the server to drain and waits for it to exit. */
static inline void bench_server_stop(bench_child *c)
{
    for (size_t i = 0; i < bench_nctl_open; i++)
        if (bench_ctl_open[i] == c->ctl)
            bench_ctl_open[i--] = bench_ctl_open[--bench_nctl_open];
    close(c->ctl);
    waitpid(c->pid, NULL, 0);
}

#endif
