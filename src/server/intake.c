/*
 * intake.c -- every request's head is checked before libmicrohttpd reads
 * it, so that every refusal is our JSON error (head.c says why and what).
 *
 * First requests.  The server owns its listening socket; MHD runs without
 * one (MHD_USE_NO_LISTEN_SOCKET).  The intake thread accepts, registers the
 * socket with the guard (per-address limit, header deadline with its 408),
 * and waits on an edge-triggered epoll, peeking (MSG_PEEK: nothing is
 * consumed) at each arrival until the head is complete: a good one is handed
 * to MHD through the relay (relay.c, which reads it again and checks every
 * head after it); a bad one gets its JSON error, lingers (DRAIN_MAX) and
 * is closed.  The intake also enforces max_connections: MHD 0.9.75 at its
 * own limit left connections added from outside unserved.
 * Edge triggering matters: the bytes stay unread, so a level-triggered wait
 * would wake at once again and again while a head is incomplete.
 *
 * Later requests on a kept-alive connection (HTTP/1.1, or HTTP/1.0 with
 * Connection: keep-alive) that the relay has handed back to MHD (its client
 * waits for each answer).  MHD reports a request complete
 * (on_completed, in the connection's own thread) after its response is sent
 * and before it reads the next request, so cs_intake_next_head waits there,
 * the same way, until the next head is complete; a bad one is answered, the
 * connection lingers and is shut down, and MHD then sees the end of the
 * stream and closes.
 *
 * Pipelining.  A peek that shows bytes past the request it checked (its head
 * and Content-Length bytes) means the client did not wait for the answer:
 * MHD would read those bytes with the request, past any check.  Such a
 * connection goes through the relay again (CS_NEXT_PIPELINED).  Bytes that
 * arrive after the peek, while MHD reads or answers the request (it reads
 * its socket then too), cannot be seen: the next check
 * compares where MHD is in the byte stream (TCP_INFO's bytes received minus
 * those still queued) with the end of the last checked request, and when
 * MHD is past it, closes the connection cleanly after the answers already
 * sent, without letting MHD serve what it read unchecked (RFC 9112 9.3.2:
 * the client retries).
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <netinet/in.h>

#include <microhttpd.h>

#include "server/server_int.h"

/* CS_DRAIN_MAX and CS_LINGER_MS bound how much of a refused request is read
 * and dropped, and for how long, before the socket is closed: closing with
 * unread bytes makes the kernel reset the connection, which can destroy our
 * answer before the client reads it.  So a refused connection is answered,
 * its sending side shut (the client sees the end of the answer), and it
 * lingers, read and dropped, until the client closes or either bound is
 * reached. */
#define DRAIN_MAX CS_DRAIN_MAX
#define LINGER_MS CS_LINGER_MS
/* The TCP states in which the peer's FIN has arrived (and is counted in
 * tcpi_bytes_received): CLOSE_WAIT, LAST_ACK, CLOSING, TIME_WAIT. */
#define FIN_RECEIVED(state) ((state) == 8 || (state) == 9 || (state) == 11 || (state) == 6)
/* Connections past max_connections get their 503 and linger like any
 * refused one, but at most this many at once: past that they are answered
 * and closed at once, so a flood cannot make the refusals themselves hold
 * an unbounded number of sockets. */
#define REFUSING_MAX 32u

typedef struct pending {
    struct pending *prev, *next;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    cs_conn *conn; /* the guard's record while it waits */
    size_t drained; /* answered: lingering (see DRAIN_MAX) */
    bool answered;
    bool overflow; /* refused for max_connections (counted in nrefusing) */
} pending;

struct cs_intake {
    cstack_server *srv;
    int listen_fd, ep, wake;
    pthread_t thread;
    bool started;
    pending *head;
    size_t npending;  /* in the list, the overflow ones included */
    size_t nrefusing; /* of them, refused for max_connections */
    unsigned char buf[CS_HEAD_MAX];
};

static const char *reason_of(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "HTTP Version Not Supported";
    }
}

void cs_intake_refuse(int fd, const cs_head_err *e)
{
    cs_raw_answer(fd, e->status, reason_of(e->status),
                  e->status == 503 ? "Retry-After: 5\r\n" : "", e->code, e->message);
    shutdown(fd, SHUT_WR);
}

bool cs_drain(int fd, size_t *drained)
{
    unsigned char sink[4096];
    for (;;) {
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return false;
        if (n <= 0)
            return true;
        *drained += (size_t)n;
        if (*drained >= DRAIN_MAX)
            return true;
    }
}

/* Peeks at what has arrived: CS_HEAD_OK (complete and good; *len is the
 * request's length with its body, *more whether bytes past it are in),
 * _PARTIAL, or _BAD (answered); -1 when the peer is gone. */
static int look(int fd, unsigned char *buf, const cstack_server *srv, uint64_t *len, bool *more)
{
    ssize_t n = recv(fd, buf, CS_HEAD_MAX, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return CS_HEAD_PARTIAL;
    if (n <= 0)
        return -1;
    size_t head_len = 0;
    uint64_t body_len = 0;
    cs_head_err e = {0};
    int rc = cs_head_check(buf, (size_t)n, srv->cfg.max_body, &head_len, &body_len, &e);
    if (rc == CS_HEAD_OK) {
        *len = head_len + body_len;
        *more = (uint64_t)n > *len;
    }
    if (rc == CS_HEAD_BAD) {
        cs_intake_refuse(fd, &e);
        cs_srv_log(srv, "refused a request head: %d %s", e.status, e.message);
    }
    return rc;
}

/* ---- first requests ------------------------------------------------------- */

static void forget(cs_intake *in, pending *p, bool close_fd)
{
    epoll_ctl(in->ep, EPOLL_CTL_DEL, p->fd, NULL);
    if (p->prev)
        p->prev->next = p->next;
    else
        in->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    in->npending--;
    in->nrefusing -= p->overflow;
    cs_guard_close(in->srv->guard, p->conn);
    if (close_fd)
        close(p->fd);
    free(p);
}

/* A refused connection lingers until the client closes, DRAIN_MAX bytes
 * or LINGER_MS (the guard's deadline, which shuts the socket down). */
static void linger(cs_intake *in, pending *p, uint32_t events)
{
    if (!p->answered) {
        p->answered = true;
        cs_guard_answered(in->srv->guard, p->conn, LINGER_MS);
    }
    if ((events & (EPOLLHUP | EPOLLERR)) || cs_drain(p->fd, &p->drained))
        forget(in, p, true);
}

static void on_data(cs_intake *in, pending *p, uint32_t events)
{
    if (p->answered) {
        linger(in, p, events);
        return;
    }
    /* Shut down by the guard (its deadline, its per-address limit), or
     * failed. */
    uint64_t len = 0;
    bool more = false;
    int rc = events & (EPOLLHUP | EPOLLERR) ? -1 : look(p->fd, in->buf, in->srv, &len, &more);
    if (rc == CS_HEAD_PARTIAL && !(events & EPOLLRDHUP))
        return;
    if (rc == CS_HEAD_BAD) {
        linger(in, p, events);
        return;
    }
    if (rc != CS_HEAD_OK) {
        forget(in, p, true);
        return;
    }
    if (atomic_load(&in->srv->metrics.connections) >= (long)in->srv->cfg.max_connections) {
        cs_head_err e = {503, "busy", "the server is at its connection limit", ""};
        cs_intake_refuse(p->fd, &e);
        linger(in, p, events);
        return;
    }
    /* MHD registers it with the guard again when it takes it. */
    int fd = p->fd;
    struct sockaddr_storage addr = p->addr;
    socklen_t addrlen = p->addrlen;
    forget(in, p, false);
    cs_relay_handover(in->srv->relay, fd, (struct sockaddr *)&addr, addrlen);
}

/* A connection past max_connections: its 503 is answered at once, and it
 * lingers (true) while fewer than REFUSING_MAX do, else it is closed. */
static bool overflow(cs_intake *in, pending *p)
{
    cs_head_err e = {503, "busy", "too many connections are opening", ""};
    cs_intake_refuse(p->fd, &e);
    if (in->nrefusing >= REFUSING_MAX) {
        close(p->fd);
        free(p);
        return false;
    }
    p->overflow = true;
    in->nrefusing++;
    return true;
}

static void accept_all(cs_intake *in)
{
    for (;;) {
        pending *p = calloc(1, sizeof *p);
        if (!p)
            return;
        p->addrlen = sizeof p->addr;
        p->fd = accept4(in->listen_fd, (struct sockaddr *)&p->addr, &p->addrlen,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (p->fd < 0) {
            free(p);
            return;
        }
        if (in->npending - in->nrefusing >= in->srv->cfg.max_connections && !overflow(in, p))
            continue;
        p->conn = cs_guard_open(in->srv->guard, p->fd, (struct sockaddr *)&p->addr);
        p->next = in->head;
        if (in->head)
            in->head->prev = p;
        in->head = p;
        in->npending++;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = p};
        struct pollfd now = {.fd = p->fd, .events = POLLIN | POLLRDHUP};
        if (epoll_ctl(in->ep, EPOLL_CTL_ADD, p->fd, &ev) != 0)
            forget(in, p, true);
        else if (p->overflow)
            linger(in, p, 0);
        else if (poll(&now, 1, 0) > 0) /* the head often comes with the connection */
            on_data(in, p, (uint32_t)now.revents); /* poll's bits are epoll's */
    }
}

static void *intake_main(void *arg)
{
    cs_intake *in = arg;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(in->ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &in->wake)
                return NULL;
            if (evs[i].data.ptr == &in->listen_fd)
                accept_all(in);
            else
                on_data(in, evs[i].data.ptr, evs[i].events);
        }
    }
}

int cs_intake_start(cstack_server *srv, int listen_fd, cs_intake **out)
{
    *out = NULL;
    cs_intake *in = calloc(1, sizeof *in);
    if (!in)
        return CSTACK_ENOMEM;
    in->srv = srv;
    in->listen_fd = listen_fd;
    in->ep = epoll_create1(EPOLL_CLOEXEC);
    in->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &in->listen_fd};
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &in->wake};
    if (in->ep < 0 || in->wake < 0 || epoll_ctl(in->ep, EPOLL_CTL_ADD, listen_fd, &lev) ||
        epoll_ctl(in->ep, EPOLL_CTL_ADD, in->wake, &wev) ||
        pthread_create(&in->thread, NULL, intake_main, in) != 0) {
        in->listen_fd = -1; /* the caller's still */
        cs_intake_stop(in);
        return CSTACK_ERROR;
    }
    in->started = true;
    *out = in;
    return 0;
}

void cs_intake_stop(cs_intake *in)
{
    if (!in)
        return;
    if (in->started) {
        uint64_t one = 1;
        (void)!write(in->wake, &one, sizeof one);
        pthread_join(in->thread, NULL);
    }
    while (in->head)
        forget(in, in->head, true);
    if (in->listen_fd >= 0)
        close(in->listen_fd);
    if (in->ep >= 0)
        close(in->ep);
    if (in->wake >= 0)
        close(in->wake);
    free(in);
}

/* ---- later requests --------------------------------------------------------- */

/* The connection's own thread lingers on its refused request (see
 * DRAIN_MAX); MHD then reads the end of the stream and closes. */
static void linger_here(cstack_server *srv, cs_conn *conn, int fd, int ep)
{
    cs_guard_answered(srv->guard, conn, LINGER_MS);
    size_t drained = 0;
    int64_t until = cs_mono_ms() + LINGER_MS;
    struct epoll_event ev;
    while (!cs_drain(fd, &drained) && cs_mono_ms() < until) {
        int n = epoll_wait(ep, &ev, 1, 100);
        if (n < 0 && errno != EINTR)
            break;
    }
    shutdown(fd, SHUT_RDWR);
}

/* Those received minus those still queued, sampled until the queue holds
 * still. */
bool cs_intake_consumed(int fd, uint64_t *out)
{
    for (int i = 0; i < 4; i++) {
        int q1 = 0, q2 = 0;
        struct tcp_info ti;
        socklen_t len = sizeof ti;
        memset(&ti, 0, sizeof ti);
        if (ioctl(fd, FIONREAD, &q1) != 0 ||
            getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
            len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received ||
            ioctl(fd, FIONREAD, &q2) != 0)
            return false;
        if (q1 == q2 && q1 >= 0) {
            uint64_t got = ti.tcpi_bytes_received - (FIN_RECEIVED(ti.tcpi_state) ? 1u : 0u);
            *out = got - (uint64_t)q1;
            return true;
        }
    }
    return false;
}

int cs_intake_next_head(cstack_server *srv, cs_conn *conn, int fd, uint64_t *end)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET};
    unsigned char *buf = malloc(CS_HEAD_MAX);
    uint64_t at = 0;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0 || !buf ||
        (*end != UINT64_MAX && cs_intake_consumed(fd, &at) && at != *end)) {
        /* Nothing can be checked (out of resources), or MHD has read bytes
         * past the last checked request: end cleanly after the answers
         * sent (the client retries what was not answered). */
        if (buf && at > *end)
            cs_srv_log(srv, "closed a pipelining connection: %" PRIu64
                            " bytes were read past the last checked request",
                       at - *end);
        shutdown(fd, SHUT_WR);
        if (ep >= 0)
            linger_here(srv, conn, fd, ep);
        else
            shutdown(fd, SHUT_RDWR);
        free(buf);
        if (ep >= 0)
            close(ep);
        return CS_NEXT_ENDED;
    }
    int rc = CS_HEAD_PARTIAL;
    uint64_t len = 0;
    bool more = false;
    /* The guard's deadline ends the wait (it shuts the socket down); a
     * stopping server is looked at every tick, and the end of the deadline
     * is only a backstop. */
    int64_t until = cs_mono_ms() + srv->cfg.header_timeout_ms + 1000;
    while (rc == CS_HEAD_PARTIAL && !atomic_load(&srv->draining) && cs_mono_ms() < until) {
        int n = epoll_wait(ep, &ev, 1, 100);
        if (n == 0 || (n < 0 && errno == EINTR))
            continue;
        if (n < 0 || (ev.events & (EPOLLHUP | EPOLLERR)))
            break; /* the deadline's shutdown, or a failure */
        rc = look(fd, buf, srv, &len, &more);
        if (rc == CS_HEAD_PARTIAL && (ev.events & EPOLLRDHUP))
            break;
    }
    if (rc == CS_HEAD_BAD)
        linger_here(srv, conn, fd, ep);
    free(buf);
    close(ep);
    if (rc == CS_HEAD_OK && *end != UINT64_MAX)
        *end += len;
    if (rc == CS_HEAD_OK)
        return more ? CS_NEXT_PIPELINED : CS_NEXT_DIRECT;
    /* Partial: the deadline, a stopping server or the end of the stream,
     * which MHD sees next as it did. */
    return rc == CS_HEAD_PARTIAL ? CS_NEXT_DIRECT : CS_NEXT_ENDED;
}
