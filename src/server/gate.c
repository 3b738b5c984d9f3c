/*
 * gate.c -- the listening socket, and the request line and headers of every
 * request, vetted before libmicrohttpd parses them.
 *
 * libmicrohttpd answers a request it cannot parse itself, with an HTML body
 * built into the library (0.9.75 offers no way to replace it) and before
 * any of our code runs: a request line or headers past its per-connection
 * memory (431, 414 for the request line alone), a malformed request line
 * or header line (400), an unknown HTTP version (505).  So MHD never sees a
 * socket before the gate has read (with MSG_PEEK, leaving every byte for
 * MHD) a whole request line and headers and found them sound by rules at
 * least as strict as MHD's; anything else the gate answers itself, in
 * JSON, and closes.  What MHD is handed always parses.
 *
 *   first request   the gate's thread accepts every connection, registers
 *                   it with the guard (connection and per-address limits,
 *                   the header deadline) and holds it in an epoll set,
 *                   without a thread of its own, until its head is in;
 *                   then MHD_add_connection gives the socket to MHD, which
 *                   runs one thread per connection.
 *   next requests   on a kept-alive connection MHD's thread calls
 *                   cs_gate_next when a response is complete, and it waits
 *                   for the next head and vets it the same way before MHD
 *                   reads on.  Only bytes still in the socket can be
 *                   vetted, so the gate checks (TCP_INFO: bytes received,
 *                   less those not yet read) that MHD has read no more than
 *                   the requests it vetted: a client that pipelines (sends
 *                   its next request before the answer) has its connection
 *                   closed after that answer, and resends the rest on a new
 *                   one, as HTTP/1.1 clients must be ready to.  http.c marks
 *                   every response after which this could not be known
 *                   (a chunked body, an answer before the body) "Connection:
 *                   close".
 *
 * A head is at most HEAD_MAX bytes and HEAD_LINES_MAX header lines, inside
 * MHD's per-connection memory (32 KiB by default), so MHD never runs out of
 * it on a head the gate passed (test_server_limits proves the largest).
 */
/* accept4(2) and POLLRDHUP are Linux's. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server/server_int.h"

#define HEAD_MAX (16u * 1024u)
#define HEAD_LINES_MAX 100
/* How long a client the gate answered has to close before it is closed. */
#define LINGER_MS 2000

struct cs_gate {
    cstack_server *srv;
    int lfd, ep, wake;
    pthread_t thread;
    bool started;
    cs_conn *held;        /* connections not yet handed to MHD */
    int64_t paused_until; /* accept(2) ran out of descriptors: retry then */
    char buf[HEAD_MAX + 1];
};

void cs_raw_answer(int fd, int status, const char *reason, const char *extra, const char *code,
                   const char *message)
{
    char body[512], msg[1024];
    int n = snprintf(body, sizeof body, "{\"status\":\"err\",\"code\":\"%s\",\"message\":\"%s\"}",
                     code, message);
    int k = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "%sConnection: close\r\n\r\n%s",
                     status, reason, n, extra, body);
    if (k > 0 && (size_t)k < sizeof msg)
        (void)send(fd, msg, (size_t)k, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ---- vetting a head ---------------------------------------------------------- */

typedef struct head {
    size_t len;    /* bytes of the head, up to and with its empty line */
    uint64_t body; /* declared Content-Length */
    bool chunked;  /* Transfer-Encoding: chunked (length unknown) */
    int status;    /* a refusal: HTTP status, reason, code, message */
    const char *reason, *code, *message;
} head;

enum { HEAD_BAD = -1, HEAD_OK = 0, HEAD_MORE = 1 };

static int refuse(head *h, int status, const char *reason, const char *code, const char *message)
{
    h->status = status;
    h->reason = reason;
    h->code = code;
    h->message = message;
    return HEAD_BAD;
}

static bool tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Field content: visible characters, spaces, tabs and bytes past ASCII. */
static bool field_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

/* `p`..`p + n` without the spaces and tabs around it. */
static void trim(const char **p, size_t *n)
{
    while (*n && (**p == ' ' || **p == '\t'))
        (*p)++, (*n)--;
    while (*n && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

static int request_line(const char *p, size_t n, head *h, bool *http11)
{
    const char *sp1 = memchr(p, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - p)) : NULL;
    if (!sp1 || !sp2 || sp1 == p || sp1 - p > 32 || sp2 == sp1 + 1)
        return refuse(h, 400, "Bad Request", "bad_request",
                      "malformed request line (want: METHOD TARGET HTTP/1.1)");
    for (const char *m = p; m < sp1; m++)
        if (!tchar((unsigned char)*m))
            return refuse(h, 400, "Bad Request", "bad_request", "malformed method");
    for (const char *t = sp1 + 1; t < sp2; t++)
        if ((unsigned char)*t <= 0x20 || *t == 0x7f)
            return refuse(h, 400, "Bad Request", "bad_request", "malformed request target");
    const char *v = sp2 + 1;
    size_t vn = n - (size_t)(v - p);
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return refuse(h, 400, "Bad Request", "bad_request",
                      "malformed request line (want: METHOD TARGET HTTP/1.1)");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return refuse(h, 505, "HTTP Version Not Supported", "version_not_supported",
                      "this server speaks HTTP/1.0 and HTTP/1.1");
    *http11 = v[7] == '1';
    return HEAD_OK;
}

/* One header line (without its line end). */
static int header_line(const char *p, size_t n, head *h, bool *host, bool *sized)
{
    const char *colon = memchr(p, ':', n);
    if (p[0] == ' ' || p[0] == '\t')
        return refuse(h, 400, "Bad Request", "bad_request",
                      "a header line continues the previous one (obsolete line folding)");
    if (!colon || colon == p)
        return refuse(h, 400, "Bad Request", "bad_request", "malformed header line");
    for (const char *c = p; c < colon; c++)
        if (!tchar((unsigned char)*c))
            return refuse(h, 400, "Bad Request", "bad_request", "malformed header name");
    size_t name = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vn = n - name - 1;
    if (!field_ok(v, vn))
        return refuse(h, 400, "Bad Request", "bad_request",
                      "a header value holds a control character");
    trim(&v, &vn);
    if (name == 4 && strncasecmp(p, "Host", 4) == 0)
        *host = true;
    else if (name == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
        if (*sized || vn == 0 || vn > 18)
            return refuse(h, 400, "Bad Request", "bad_request", "malformed Content-Length");
        uint64_t len = 0;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9')
                return refuse(h, 400, "Bad Request", "bad_request", "malformed Content-Length");
            len = len * 10 + (uint64_t)(v[i] - '0');
        }
        h->body = len;
        *sized = true;
    } else if (name == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
        if (h->chunked || vn != 7 || strncasecmp(v, "chunked", 7) != 0)
            return refuse(h, 400, "Bad Request", "bad_request",
                          "the only Transfer-Encoding accepted is chunked");
        h->chunked = true;
    }
    return HEAD_OK;
}

/* Vets the first `n` bytes in a socket: HEAD_OK (a whole, sound head),
 * HEAD_MORE (sound so far) or HEAD_BAD (h says why).  More than HEAD_MAX
 * bytes without the end of the head is a refusal. */
static int vet(const char *p, size_t n, head *h)
{
    memset(h, 0, sizeof *h);
    size_t at = 0;
    /* Empty lines before a request line are ignored (RFC 9112, 2.2); a
     * client may send one after a body. */
    while (at < n && at < 8 && (p[at] == '\r' || p[at] == '\n'))
        at++;
    bool http11 = false, host = false, sized = false;
    for (int line = 0;; line++) {
        const char *lf = memchr(p + at, '\n', n - at);
        if (!lf) {
            if (n > HEAD_MAX)
                return line == 0
                           ? refuse(h, 414, "URI Too Long", "uri_too_long",
                                    "the request line is longer than 16 KiB")
                           : refuse(h, 431, "Request Header Fields Too Large", "headers_too_big",
                                    "the request line and headers are larger than 16 KiB");
            /* A partial line that can never be sound is refused now. */
            return field_ok(p + at, n - at - (n > at && p[n - 1] == '\r'))
                       ? HEAD_MORE
                       : refuse(h, 400, "Bad Request", "bad_request",
                                "the request holds a control character");
        }
        size_t end = (size_t)(lf - p) + 1;
        if (end > HEAD_MAX)
            return line == 0 ? refuse(h, 414, "URI Too Long", "uri_too_long",
                                      "the request line is longer than 16 KiB")
                             : refuse(h, 431, "Request Header Fields Too Large", "headers_too_big",
                                      "the request line and headers are larger than 16 KiB");
        size_t len = (size_t)(lf - (p + at));
        if (len && p[at + len - 1] == '\r')
            len--;
        if (memchr(p + at, '\r', len) || memchr(p + at, '\0', len))
            return refuse(h, 400, "Bad Request", "bad_request",
                          "the request holds a control character");
        int rc;
        if (line == 0)
            rc = request_line(p + at, len, h, &http11);
        else if (len == 0) {
            h->len = end;
            break;
        } else if (line > HEAD_LINES_MAX)
            rc = refuse(h, 431, "Request Header Fields Too Large", "headers_too_big",
                        "more than 100 header lines");
        else
            rc = header_line(p + at, len, h, &host, &sized);
        if (rc)
            return rc;
        at = end;
    }
    if (http11 && !host)
        return refuse(h, 400, "Bad Request", "bad_request", "an HTTP/1.1 request needs Host");
    if (sized && h->chunked)
        return refuse(h, 400, "Bad Request", "bad_request",
                      "both Content-Length and Transfer-Encoding");
    return HEAD_OK;
}

/* Bytes MHD has read from socket `fd` so far; -1 when unknown. */
static int64_t consumed(int fd)
{
    /* Bytes may arrive between the two reads; nobody else reads the socket
     * meanwhile (this is its connection's thread), so an unread count equal
     * before and after TCP_INFO means the two describe the same moment. */
    for (int tries = 0; tries < 16; tries++) {
        struct tcp_info ti;
        socklen_t len = sizeof ti;
        int before = 0, after = 0;
        memset(&ti, 0, sizeof ti);
        if (ioctl(fd, SIOCINQ, &before) != 0 ||
            getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
            len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received ||
            ioctl(fd, SIOCINQ, &after) != 0)
            return -1;
        if (before == after)
            return (int64_t)ti.tcpi_bytes_received - after;
    }
    return -1;
}

/* Records a vetted head in the connection's count of what MHD may read. */
static void expect_head(cs_conn *c, const head *h)
{
    c->expect += h->len + h->body;
    if (h->chunked)
        c->expect_known = false;
}

/* The log line and count of a request the gate refused. */
static void log_refusal(cstack_server *srv, int status)
{
    cs_metrics_request(&srv->metrics, CS_ROUTE_OTHER, status);
    if (!srv->cfg.log)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    cs_srv_log(srv, "%s.%03ldZ - - %d 0 0.0ms user=-", when, ts.tv_nsec / 1000000, status);
}

/* Answers a refused head: the bytes vetted are read (so the close does not
 * reset the connection under the answer), the answer written and the
 * sending side shut; the client then has LINGER_MS to close. */
static void answer(cstack_server *srv, cs_conn *c, int fd, size_t peeked, const head *h)
{
    char sink[4096];
    while (peeked > 0) {
        ssize_t k = recv(fd, sink, peeked < sizeof sink ? peeked : sizeof sink, MSG_DONTWAIT);
        if (k <= 0)
            break;
        peeked -= (size_t)k;
    }
    cs_raw_answer(fd, h->status, h->reason, "", h->code, h->message);
    shutdown(fd, SHUT_WR);
    cs_guard_linger(srv->guard, c, LINGER_MS);
    log_refusal(srv, h->status);
}

/* ---- the gate's thread ------------------------------------------------------- */

static void drop(cs_gate *g, cs_conn *c)
{
    if (c->gprev)
        c->gprev->gnext = c->gnext;
    else
        g->held = c->gnext;
    if (c->gnext)
        c->gnext->gprev = c->gprev;
    int fd = c->fd;
    epoll_ctl(g->ep, EPOLL_CTL_DEL, fd, NULL);
    cs_guard_close(g->srv->guard, c);
    close(fd);
}

static void hold(cs_gate *g, cs_conn *c)
{
    c->gprev = NULL;
    c->gnext = g->held;
    if (g->held)
        g->held->gprev = c;
    g->held = c;
}

/* Gives a connection whose head is in to MHD. */
static void hand_over(cs_gate *g, cs_conn *c, const head *h)
{
    if (c->gprev)
        c->gprev->gnext = c->gnext;
    else
        g->held = c->gnext;
    if (c->gnext)
        c->gnext->gprev = c->gprev;
    c->gprev = c->gnext = NULL;
    epoll_ctl(g->ep, EPOLL_CTL_DEL, c->fd, NULL);
    expect_head(c, h);
    uint64_t id = c->id;
    struct sockaddr_storage addr = c->addr;
    socklen_t addrlen = c->addrlen;
    int fd = c->fd;
    /* From here the record is MHD's (cs_guard_adopt) and may be freed by
     * MHD's thread at any time: only its id is used again. */
    cs_guard_handing(g->srv->guard, c);
    if (MHD_add_connection(g->srv->mhd, fd, (struct sockaddr *)&addr, addrlen) != MHD_YES)
        cs_guard_abandon(g->srv->guard, id);
}

/* Data (or the end) arrived on a connection the gate holds. */
static void readable(cs_gate *g, cs_conn *c)
{
    if (c->lingering) {
        char sink[4096];
        ssize_t k;
        while ((k = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT)) > 0)
            ;
        if (k == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            drop(g, c);
        return;
    }
    ssize_t n = recv(c->fd, g->buf, sizeof g->buf, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        drop(g, c);
        return;
    }
    if (n < 0)
        return;
    head h;
    int rc = vet(g->buf, (size_t)n, &h);
    if (rc == HEAD_OK)
        hand_over(g, c, &h);
    else if (rc == HEAD_BAD) {
        answer(g->srv, c, c->fd, (size_t)n, &h);
        c->lingering = true;
    }
}

/* Accepts what is waiting, at most 64 at a time so that a flood of
 * connections does not starve the heads being read (the listening socket
 * stays readable until its queue is empty). */
static void accept_all(cs_gate *g)
{
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage addr;
        socklen_t addrlen = sizeof addr;
        int fd = accept4(g->lfd, (struct sockaddr *)&addr, &addrlen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: the listening socket stays readable,
                 * so stop watching it for a moment rather than spin. */
                struct epoll_event ev = {0};
                ev.data.ptr = NULL;
                epoll_ctl(g->ep, EPOLL_CTL_MOD, g->lfd, &ev);
                g->paused_until = cs_mono_ms() + 100;
            }
            return;
        }
        bool refused = false;
        cs_conn *c = cs_guard_open(g->srv->guard, fd, (struct sockaddr *)&addr, addrlen, &refused);
        if (!c) {
            close(fd);
            continue;
        }
        hold(g, c);
        if (refused) {
            shutdown(fd, SHUT_WR);
            cs_guard_linger(g->srv->guard, c, LINGER_MS);
            c->lingering = true;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (epoll_ctl(g->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            drop(g, c);
    }
}

static void *gate_main(void *arg)
{
    cs_gate *g = arg;
    struct epoll_event evs[64];
    for (;;) {
        int timeout = -1;
        if (g->paused_until) {
            int64_t left = g->paused_until - cs_mono_ms();
            if (left <= 0) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
                epoll_ctl(g->ep, EPOLL_CTL_MOD, g->lfd, &ev);
                g->paused_until = 0;
            } else
                timeout = (int)left;
        }
        int n = epoll_wait(g->ep, evs, 64, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == g)
                return NULL;
            if (!evs[i].data.ptr)
                accept_all(g);
            else
                readable(g, evs[i].data.ptr);
        }
    }
}

/* ---- start, stop ------------------------------------------------------------- */

/* The listening socket in *out, or a CSTACK_E* code with `err` set. */
static int listen_socket(cstack_server *srv, int *out, char *err, size_t errlen)
{
    *out = -1;
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(srv->bind, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "cannot resolve bind address '%s': %s", srv->bind, gai_strerror(gai));
        return CSTACK_EINVAL;
    }
    struct sockaddr_storage addr;
    socklen_t addrlen = ai->ai_addrlen;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    int family = ai->ai_family;
    freeaddrinfo(ai);
    if (family == AF_INET6)
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)srv->cfg.port);
    else
        ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)srv->cfg.port);
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, addrlen) != 0 || listen(fd, 1024) != 0) {
        snprintf(err, errlen,
                 "cannot listen on %s port %d (in use, or not an address of this host)", srv->bind,
                 srv->cfg.port);
        if (fd >= 0)
            close(fd);
        return CSTACK_EIO;
    }
    addrlen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &addrlen);
    srv->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                         : ((struct sockaddr_in *)&addr)->sin_port);
    *out = fd;
    return 0;
}

int cs_gate_start(cstack_server *srv, cs_gate **out, char *err, size_t errlen)
{
    *out = NULL;
    cs_gate *g = calloc(1, sizeof *g);
    if (!g)
        return CSTACK_ENOMEM;
    g->srv = srv;
    g->ep = epoll_create1(EPOLL_CLOEXEC);
    g->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = listen_socket(srv, &g->lfd, err, errlen);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = g};
    if (!rc && (g->ep < 0 || g->wake < 0 || epoll_ctl(g->ep, EPOLL_CTL_ADD, g->lfd, &lev) != 0 ||
                epoll_ctl(g->ep, EPOLL_CTL_ADD, g->wake, &wev) != 0 ||
                pthread_create(&g->thread, NULL, gate_main, g) != 0)) {
        snprintf(err, errlen, "cannot start accepting connections");
        rc = CSTACK_ERROR;
    }
    if (rc) {
        cs_gate_stop(g);
        return rc;
    }
    g->started = true;
    *out = g;
    return 0;
}

void cs_gate_stop(cs_gate *g)
{
    if (!g)
        return;
    if (g->started) {
        uint64_t one = 1;
        (void)!write(g->wake, &one, sizeof one);
        pthread_join(g->thread, NULL);
    }
    /* Nothing of these reached MHD: no request is in flight on them. */
    while (g->held)
        drop(g, g->held);
    if (g->lfd >= 0)
        close(g->lfd);
    if (g->ep >= 0)
        close(g->ep);
    if (g->wake >= 0)
        close(g->wake);
    free(g);
}

/* ---- kept-alive connections ------------------------------------------------- */

void cs_gate_next(cstack_server *srv, cs_conn *c, int fd)
{
    if (!c)
        return;
    int64_t got = consumed(fd);
    if (!c->expect_known || got < 0 || (uint64_t)got != c->expect) {
        /* MHD may hold bytes of a request nobody vetted: end the
         * connection here, its answers all sent. */
        shutdown(fd, SHUT_RDWR);
        return;
    }
    /* Most heads fit the small buffer; a larger one is peeked again into
     * a buffer of HEAD_MAX + 1. */
    char small[4096], *big = NULL, *buf = small;
    size_t cap = sizeof small;
    int ep = -1;
    for (;;) {
        ssize_t n = recv(fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            break; /* closed, or shut down by the guard at the deadline */
        head h;
        int rc = n > 0 ? vet(buf, (size_t)n, &h) : HEAD_MORE;
        if (rc == HEAD_MORE && (size_t)n == cap && !big) {
            if (!(big = malloc(HEAD_MAX + 1))) {
                shutdown(fd, SHUT_RDWR);
                break;
            }
            buf = big;
            cap = HEAD_MAX + 1;
            continue;
        }
        if (rc == HEAD_OK) {
            expect_head(c, &h);
            break;
        }
        if (rc == HEAD_BAD) {
            answer(srv, c, fd, (size_t)n, &h);
            /* Read and drop until the client closes or the guard ends it;
             * MHD then reads the end of the stream and closes. */
            char sink[4096];
            struct pollfd p = {fd, POLLIN, 0};
            while (poll(&p, 1, LINGER_MS) > 0 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
                ;
            shutdown(fd, SHUT_RDWR);
            break;
        }
        /* Sound so far: wait for more.  Data already peeked keeps the socket
         * readable, so a partial head is waited for edge-triggered. */
        if (n <= 0) {
            struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
            poll(&p, 1, 1000);
            continue;
        }
        if (ep < 0) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET};
            ep = epoll_create1(EPOLL_CLOEXEC);
            if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
                shutdown(fd, SHUT_RDWR);
                break;
            }
        }
        struct epoll_event ev;
        epoll_wait(ep, &ev, 1, 1000);
    }
    if (ep >= 0)
        close(ep);
    free(big);
}
