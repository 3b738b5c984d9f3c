/*
 * relay.c -- every request's head checked before libmicrohttpd reads it,
 * pipelined ones included, and each connection's link (MHD's socket
 * context: its guard record, where MHD is in its byte stream, its relay).
 *
 * Why a relay.  libmicrohttpd reads whatever its socket holds: a request a
 * client sends before the answer to the previous one (HTTP/1.1 pipelining)
 * lands in MHD's buffer together with the one before, past the head check
 * of intake.c, which can only peek at what is still queued in the socket.
 * MHD would answer such a request's bad head with its own HTML page, and a
 * good one would be waited for in vain by that peek.  MHD 0.9.75 has no API
 * to show or to refuse what it has buffered, and it reads its socket also
 * while it works on a request.  So MHD is handed one end of a socket pair
 * instead of the client's socket, and the relay thread reads the client's
 * bytes, checks each head with head.c and writes MHD only checked requests,
 * a head and exactly its body at a time.  MHD answers them in order and the
 * answers are copied back unchanged.
 *
 * Every connection starts relayed (cs_relay_handover).  At a completion
 * with nothing in flight (no byte in the relay, the answers out, nothing
 * more sent by the client) the completed callback hands the client's socket
 * back to MHD under MHD's descriptor number (dup3, in MHD's own thread, which
 * reads nothing meanwhile): a client that waits for each answer then costs
 * nothing more, its next heads being peeked at by intake.c; a request
 * without a body (a pull, a stream) is handed back already at its headers,
 * so its answer is not copied.  A peek that shows bytes past the request it
 * checked, or a body still arriving when its headers are read, brings the
 * connection back through the relay the same way, while MHD's buffer holds
 * no unchecked byte.
 *
 * A bad head stops the reading.  Once MHD has completed every request
 * before it (cs_link_completed) and their answers are out, the relay writes
 * our JSON error with Connection: close, ends MHD's side and lingers like a
 * refused intake connection.  A client that ends its sending side has its
 * requests answered before the connection closes.
 *
 * Cost.  A connection whose client waits for each answer (every client of
 * ours) is relayed for its first request only (a bodiless one's head only); a relayed request pays two
 * thread hand-overs and copies, and a relayed connection 32 KiB of buffers.
 * Limits are unchanged: the guard's record is MHD's descriptor (the pair's
 * end while relayed), so the deadline, the per-address count and shedding
 * act on it, and MHD ending its side ends the client's; when the deadline
 * ends a connection whose next head had begun, the relay writes the 408
 * the guard could not see.
 *
 * Threads.  A relayed connection's I/O state is the relay thread's, under
 * the pipe's lock, which MHD's thread takes only to hand the connection
 * back; otherwise MHD's threads count completions (atomics) and poke the
 * relay through an eventfd.  A pipe is freed by the relay thread once its sockets are
 * closed and MHD has let go of its link, so neither side frees what the
 * other may still touch.
 */
#define _GNU_SOURCE /* dup3 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "server/server_int.h"

/* Answers from MHD waiting for the client's socket. */
#define OUT_MAX (16u * 1024u)
/* Relayed connections lingering after their end at once; past that they
 * are closed at once. */
#define LINGERING_MAX 32u

typedef struct pipe_s {
    struct pipe_s *prev, *next;
    pthread_mutex_t mu; /* the I/O state: the relay thread, or MHD's handing back */
    int client; /* the client's socket (-1 once closed) */
    int mhd;    /* our end of MHD's socket pair (-1 once closed) */
    cs_link *link; /* NULL once MHD has closed its end (under rl->mu) */
    bool done;     /* both sockets closed: freed once detached */
    /* client -> MHD: in[0, inlen) not yet written; its first `sendable`
     * bytes are checked, body_left more belong to the current body. */
    unsigned char in[CS_HEAD_MAX];
    size_t inlen, sendable;
    uint64_t body_left;
    uint64_t from_client;  /* stream offset of in[inlen] */
    long forwarded;        /* requests written to MHD */
    atomic_long completed; /* requests MHD completed (cs_link_completed) */
    atomic_bool waiting;   /* the relay waits for completions */
    atomic_bool poked;
    atomic_bool last;      /* MHD closes after its current answer */
    /* MHD -> client */
    unsigned char out[OUT_MAX];
    size_t outoff, outlen;
    bool client_eof, client_dead, mhd_eof, refused, answered;
    cs_head_err err;
    int64_t linger_until; /* 0: not lingering */
    size_t drained;
} pipe_s;

/* A connection the intake hands to MHD, until MHD reports it started
 * (MHD does that in its own thread, after MHD_add_connection returned).  The
 * descriptor's inode tells a number reused after a failed hand-over. */
typedef struct handoff {
    struct handoff *next;
    int fd; /* the descriptor MHD gets: one end of a socket pair */
    ino_t ino;
    int client, peer; /* the client's socket and the pair's other end */
} handoff;

struct cs_link {
    cs_conn *conn;
    int fd;       /* MHD's descriptor number */
    uint64_t end; /* not relayed: stream offset past the last checked request */
    bool cut;
    pipe_s *pipe; /* NULL: MHD reads the socket itself */
};

struct cs_relay {
    cstack_server *srv;
    int ep, wake;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    pthread_mutex_t mu; /* the list, handoffs, links' pipes */
    pipe_s *head;
    handoff *handoffs;
    unsigned nlingering;
};

static bool again(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static void poke(cs_relay *rl, pipe_s *p)
{
    atomic_store(&p->poked, true);
    uint64_t one = 1;
    (void)!write(rl->wake, &one, sizeof one);
}

/* ---- the relay thread's side ---------------------------------------------- */

/* Copies MHD's answers to the client; true when something moved. */
static bool to_client(pipe_s *p)
{
    bool moved = false;
    for (;;) {
        if (p->outoff == p->outlen) {
            if (p->mhd < 0 || p->mhd_eof)
                return moved;
            ssize_t n = recv(p->mhd, p->out, sizeof p->out, MSG_DONTWAIT);
            if (n < 0 && again())
                return moved;
            if (n <= 0) {
                p->mhd_eof = true;
                return true;
            }
            p->outoff = 0;
            p->outlen = (size_t)n;
            moved = true;
        }
        if (p->client_dead) {
            p->outoff = p->outlen;
            continue;
        }
        ssize_t n = send(p->client, p->out + p->outoff, p->outlen - p->outoff,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && again())
            return moved;
        if (n <= 0)
            p->client_dead = true;
        else
            p->outoff += (size_t)n;
        moved = true;
    }
}

/* Writes checked bytes to MHD, checks the next head, reads the client;
 * true when something moved. */
static bool to_mhd(cs_relay *rl, pipe_s *p)
{
    bool moved = false;
    while (!p->mhd_eof && p->mhd >= 0 && !p->client_dead) {
        if (p->sendable) {
            ssize_t n = send(p->mhd, p->in, p->sendable, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && again())
                return moved;
            if (n <= 0) {
                p->mhd_eof = true;
                return true;
            }
            memmove(p->in, p->in + n, p->inlen - (size_t)n);
            p->inlen -= (size_t)n;
            p->sendable -= (size_t)n;
            moved = true;
            continue;
        }
        if (p->body_left && p->inlen) {
            p->sendable = p->body_left < p->inlen ? (size_t)p->body_left : p->inlen;
            p->body_left -= p->sendable;
            continue;
        }
        if (!p->body_left && p->inlen && !p->refused) {
            size_t head = 0;
            uint64_t body = 0;
            int rc = cs_head_check(p->in, p->inlen, rl->srv->cfg.max_body, &head, &body, &p->err);
            if (rc == CS_HEAD_OK) {
                p->sendable = head;
                p->body_left = body;
                p->forwarded++;
                continue;
            }
            if (rc == CS_HEAD_BAD) {
                p->refused = true;
                p->inlen = 0;
                cs_srv_log(rl->srv, "refused a pipelined request head: %d %s", p->err.status,
                           p->err.message);
                return true;
            }
        }
        if (p->refused || p->client_eof || p->inlen == sizeof p->in)
            return moved;
        ssize_t n = recv(p->client, p->in + p->inlen, sizeof p->in - p->inlen, MSG_DONTWAIT);
        if (n < 0 && again())
            return moved;
        if (n <= 0) {
            p->client_eof = true;
        } else {
            p->inlen += (size_t)n;
            p->from_client += (uint64_t)n;
        }
        moved = true;
    }
    return moved;
}

static void close_mhd(cs_relay *rl, pipe_s *p)
{
    if (p->mhd < 0)
        return;
    epoll_ctl(rl->ep, EPOLL_CTL_DEL, p->mhd, NULL);
    close(p->mhd); /* MHD reads the end of the stream and closes its side */
    p->mhd = -1;
}

/* Both sockets closed: out of the list; freed now if MHD let go of the
 * link, else by the next poke after cs_link_close. */
static void finish(cs_relay *rl, pipe_s *p)
{
    close_mhd(rl, p);
    if (p->client >= 0) {
        epoll_ctl(rl->ep, EPOLL_CTL_DEL, p->client, NULL);
        close(p->client);
        p->client = -1;
    }
    if (p->linger_until)
        rl->nlingering--;
    p->linger_until = 0;
    p->done = true;
}

/* The client's side is over: shut its sending side, drop what it still
 * sends for a while (so that closing does not reset the answers), close. */
static void end_client(cs_relay *rl, pipe_s *p)
{
    close_mhd(rl, p);
    if (p->client_dead || rl->nlingering >= LINGERING_MAX) {
        finish(rl, p);
        return;
    }
    shutdown(p->client, SHUT_WR);
    p->linger_until = cs_mono_ms() + CS_LINGER_MS;
    rl->nlingering++;
    if (cs_drain(p->client, &p->drained))
        finish(rl, p);
}

/* Whether MHD has completed every request written to it and its answers
 * are all out; otherwise the relay waits for cs_link_completed. */
static bool all_answered(pipe_s *p)
{
    /* Waiting first, then the count: a completion after the count sees
     * `waiting` and pokes the relay.  The answers are read after the
     * count: every request it counts has all of its answer in the pair. */
    atomic_store(&p->waiting, true);
    long done = atomic_load(&p->completed);
    to_client(p);
    return done == p->forwarded && p->outoff == p->outlen;
}

/* What follows from the state after the bytes moved. */
static void settle(cs_relay *rl, pipe_s *p)
{
    if (p->linger_until) {
        if (cs_drain(p->client, &p->drained) || cs_mono_ms() >= p->linger_until)
            finish(rl, p);
        return;
    }
    if (p->client_dead) {
        finish(rl, p);
        return;
    }
    if (p->mhd_eof || p->mhd < 0) {
        if (p->outoff != p->outlen)
            return; /* the rest of MHD's answers first */
        /* MHD ended its side: the guard's deadline (a begun head gets its
         * 408, which the guard could not see), a Connection: close answer,
         * or a stop. */
        if (!p->answered && !p->refused && !p->sendable && !p->body_left && p->inlen &&
            atomic_load(&p->completed) == p->forwarded && !atomic_load(&p->last)) {
            cs_raw_answer(p->client, 408, "Request Timeout", "", "timeout",
                          "the request line and headers did not arrive in time");
            atomic_fetch_add(&rl->srv->metrics.refused[CS_REFUSE_HEADER_TIMEOUT], 1);
        }
        end_client(rl, p);
        return;
    }
    if (!p->refused && !p->client_eof)
        return;
    if (p->client_eof && p->body_left && !p->sendable) {
        /* A body that cannot be completed: MHD sees the end of the stream
         * (and ends the request, giving its upload share back) as it
         * would on the socket itself. */
        shutdown(p->mhd, SHUT_WR);
        return;
    }
    if (atomic_load(&p->last) || !all_answered(p))
        return; /* MHD closes after its answer, or more answers to come */
    if (p->refused && !p->answered) {
        cs_intake_refuse(p->client, &p->err);
        p->answered = true;
    }
    end_client(rl, p);
}

static void pump(cs_relay *rl, pipe_s *p)
{
    pthread_mutex_lock(&p->mu);
    if (!p->done && !p->linger_until)
        while (to_client(p) | to_mhd(rl, p))
            ;
    if (!p->done)
        settle(rl, p);
    pthread_mutex_unlock(&p->mu);
}

/* Frees the pipes that are done and detached (under rl->mu). */
static void bury_locked(cs_relay *rl)
{
    for (pipe_s *p = rl->head, *next; p; p = next) {
        next = p->next;
        if (!p->done || p->link)
            continue;
        if (p->prev)
            p->prev->next = p->next;
        else
            rl->head = p->next;
        if (p->next)
            p->next->prev = p->prev;
        pthread_mutex_destroy(&p->mu);
        free(p);
    }
}

static void *relay_main(void *arg)
{
    cs_relay *rl = arg;
    struct epoll_event evs[64];
    while (!atomic_load(&rl->stopping)) {
        int n = epoll_wait(rl->ep, evs, 64, rl->nlingering ? 100 : -1);
        bool poked = false;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &rl->wake) {
                uint64_t v;
                (void)!read(rl->wake, &v, sizeof v);
                poked = true;
            } else {
                pump(rl, evs[i].data.ptr);
            }
        }
        /* Other threads only add pipes at the head, and only this one
         * removes them: the list from this head on can be walked unlocked
         * (pumping takes each pipe's lock, which MHD's threads take before
         * rl->mu). */
        pthread_mutex_lock(&rl->mu);
        pipe_s *first = rl->head;
        pthread_mutex_unlock(&rl->mu);
        for (pipe_s *p = first; p; p = p->next)
            if ((poked && atomic_exchange(&p->poked, false)) || p->linger_until)
                pump(rl, p);
        pthread_mutex_lock(&rl->mu);
        bury_locked(rl);
        pthread_mutex_unlock(&rl->mu);
    }
    return NULL;
}

/* A pipe for client socket `client` and our end `mhd` of MHD's pair,
 * watched by the relay; NULL when out of resources (nothing closed). */
static pipe_s *pipe_new(cs_relay *rl, int client, int mhd, cs_link *link, uint64_t at,
                        uint64_t body_left)
{
    pipe_s *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->client = client;
    p->mhd = mhd;
    p->link = link;
    p->from_client = at;
    p->body_left = body_left;
    p->forwarded = body_left ? 1 : 0; /* the request whose body it is */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = p};
    pthread_mutex_lock(&rl->mu);
    if (epoll_ctl(rl->ep, EPOLL_CTL_ADD, client, &ev) != 0 ||
        epoll_ctl(rl->ep, EPOLL_CTL_ADD, mhd, &ev) != 0) {
        epoll_ctl(rl->ep, EPOLL_CTL_DEL, client, NULL);
        pthread_mutex_unlock(&rl->mu);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    p->next = rl->head;
    if (rl->head)
        rl->head->prev = p;
    rl->head = p;
    pthread_mutex_unlock(&rl->mu);
    poke(rl, p);
    return p;
}

/* ---- MHD's and the intake's side ------------------------------------------ */

static ino_t inode_of(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* A handoff no connection will take: its relay sockets are closed. */
static void handoff_free(handoff *h)
{
    if (h->client >= 0)
        close(h->client);
    if (h->peer >= 0)
        close(h->peer);
    free(h);
}

void cs_relay_handover(cs_relay *rl, int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    int pair[2] = {-1, -1};
    handoff *h = calloc(1, sizeof *h);
    if (!h || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
        free(h);
        close(fd);
        return;
    }
    h->fd = pair[0];
    h->ino = inode_of(h->fd);
    h->client = fd;
    h->peer = pair[1];
    pthread_mutex_lock(&rl->mu);
    h->next = rl->handoffs;
    rl->handoffs = h;
    pthread_mutex_unlock(&rl->mu);
    /* MHD reports the connection started (cs_link_open, which takes the
     * handoff) from its own thread; on failure it has closed pair[0]. */
    if (MHD_add_connection(rl->srv->mhd, pair[0], addr, addrlen) == MHD_YES)
        return;
    pthread_mutex_lock(&rl->mu);
    handoff **q = &rl->handoffs;
    while (*q && *q != h)
        q = &(*q)->next;
    if (*q)
        *q = h->next;
    else
        h = NULL; /* taken after all */
    pthread_mutex_unlock(&rl->mu);
    if (h)
        handoff_free(h);
}

cs_link *cs_link_open(cs_relay *rl, int fd, const struct sockaddr *addr)
{
    cs_link *l = calloc(1, sizeof *l);
    cs_conn *conn = l ? cs_guard_open(rl->srv->guard, fd, addr) : NULL;
    ino_t ino = inode_of(fd);
    handoff *h = NULL, *stale = NULL;
    pthread_mutex_lock(&rl->mu);
    for (handoff **q = &rl->handoffs; *q;) {
        handoff *x = *q;
        if (x->fd != fd) {
            q = &x->next;
            continue;
        }
        *q = x->next;
        if (x->ino == ino && !h) {
            h = x;
        } else { /* a failed hand-over's, its number reused */
            x->next = stale;
            stale = x;
        }
    }
    pthread_mutex_unlock(&rl->mu);
    while (stale) {
        handoff *x = stale;
        stale = x->next;
        handoff_free(x);
    }
    if (!conn) {
        free(l);
        if (h)
            handoff_free(h);
        shutdown(fd, SHUT_RDWR);
        return NULL;
    }
    l->conn = conn;
    l->fd = fd;
    l->end = UINT64_MAX;
    if (h) {
        if (!(l->pipe = pipe_new(rl, h->client, h->peer, l, 0, 0))) {
            shutdown(fd, SHUT_RDWR);
            handoff_free(h);
            return l;
        }
    }
    free(h);
    return l;
}

void cs_link_close(cs_relay *rl, cs_link *l)
{
    if (!l)
        return;
    cs_guard_close(rl->srv->guard, l->conn);
    if (l->pipe) {
        /* Poked first: once detached, the relay may free it. */
        poke(rl, l->pipe);
        pthread_mutex_lock(&rl->mu);
        l->pipe->link = NULL;
        pthread_mutex_unlock(&rl->mu);
    }
    free(l);
}

cs_conn *cs_link_conn(const cs_link *l)
{
    return l ? l->conn : NULL;
}

bool cs_link_cut(const cs_link *l)
{
    return l && l->cut;
}

/* Relays the connection from now on: MHD's descriptor number becomes one
 * end of a new socket pair, the client's socket the relay's.  MHD's read
 * position is `at` in the stream, the end of the last checked request or,
 * when `body_left` is not 0, inside the current one's body, whose rest the
 * relay passes on before it checks the next head.  False when out of
 * resources (nothing changed). */
static bool adopt(cs_relay *rl, cs_link *l, uint64_t at, uint64_t body_left)
{
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0)
        return false;
    int client = fcntl(l->fd, F_DUPFD_CLOEXEC, 0);
    pipe_s *p = client >= 0 ? pipe_new(rl, client, pair[1], l, at, body_left) : NULL;
    if (!p) {
        if (client >= 0)
            close(client);
        close(pair[0]);
        close(pair[1]);
        return false;
    }
    /* Atomic: MHD's descriptor is the pair's end from here on.  The relay
     * may already read the client's socket: MHD is in one of our callbacks
     * and reads nothing before it returns. */
    if (dup3(pair[0], l->fd, O_CLOEXEC) < 0)
        shutdown(l->fd, SHUT_RDWR); /* cannot happen with valid descriptors */
    close(pair[0]);
    l->pipe = p;
    return true;
}

/* Hands a relayed connection back to MHD (its descriptor the client's
 * socket again) when nothing is in flight but `pending` requests MHD has
 * wholly read: the relay holds no byte, MHD's answers are all out, and the
 * client has sent nothing more.  Requests that wait for each answer then
 * cost what they cost without the relay.  In the connection's thread. */
static bool hand_back(cs_relay *rl, cs_link *l, long pending)
{
    pipe_s *p = l->pipe;
    int unread = -1, queued = -1;
    pthread_mutex_lock(&p->mu);
    to_client(p);
    bool quiet = !p->done && !p->linger_until && !p->refused && !p->client_eof &&
                 !p->client_dead && !p->mhd_eof && !p->inlen && !p->body_left &&
                 p->outoff == p->outlen && p->forwarded - atomic_load(&p->completed) == pending &&
                 ioctl(l->fd, FIONREAD, &unread) == 0 && unread == 0 &&
                 ioctl(p->client, FIONREAD, &queued) == 0 && queued == 0;
    if (quiet) {
        epoll_ctl(rl->ep, EPOLL_CTL_DEL, p->client, NULL);
        epoll_ctl(rl->ep, EPOLL_CTL_DEL, p->mhd, NULL);
        if (dup3(p->client, l->fd, O_CLOEXEC) < 0)
            shutdown(l->fd, SHUT_RDWR); /* cannot happen with valid descriptors */
        close(p->client);
        close(p->mhd);
        p->client = p->mhd = -1;
        p->done = true;
        l->end = p->from_client;
    }
    pthread_mutex_unlock(&p->mu);
    if (!quiet)
        return false;
    l->pipe = NULL;
    poke(rl, p); /* before it is detached: the relay may free it then */
    pthread_mutex_lock(&rl->mu);
    p->link = NULL;
    pthread_mutex_unlock(&rl->mu);
    return true;
}

void cs_link_headers(cs_relay *rl, cs_link *l, bool body, bool endless)
{
    if (!l || l->cut)
        return;
    if (l->pipe) {
        /* A request without a body, and nothing else in flight: its answer
         * (a pull page of megabytes, or a stream's endless one) need not be
         * copied through the relay.  What MHD might read behind it is
         * checked for at its completion, as for any connection handed back;
         * a request the client has already sent behind it keeps the relay
         * (hand_back finds it queued). */
        if (endless || !body)
            (void)hand_back(rl, l, 1);
        return;
    }
    /* A body still arriving: a request written behind it would be read by
     * MHD with its end, unchecked, so the rest of it goes through the
     * relay. */
    uint64_t at = 0;
    if (body && l->end != UINT64_MAX && cs_intake_consumed(l->fd, &at) && at < l->end &&
        !adopt(rl, l, at, l->end - at)) {
        l->cut = true;
        shutdown(l->fd, SHUT_RDWR);
    }
}

void cs_link_completed(cs_relay *rl, cs_link *l, bool next)
{
    if (!l)
        return;
    if (l->pipe) {
        pipe_s *p = l->pipe;
        if (!next)
            atomic_store(&p->last, true);
        atomic_fetch_add(&p->completed, 1);
        if (!next || !hand_back(rl, l, 0)) {
            if (atomic_load(&p->waiting) || !next)
                poke(rl, p);
            return;
        }
    }
    if (!next || l->cut)
        return;
    uint64_t at = l->end;
    int rc = cs_intake_next_head(rl->srv, l->conn, l->fd, &l->end);
    if (rc == CS_NEXT_PIPELINED && !adopt(rl, l, at, 0))
        rc = CS_NEXT_ENDED;
    if (rc == CS_NEXT_ENDED) {
        l->cut = true;
        shutdown(l->fd, SHUT_RDWR);
    }
}

/* ---- start, stop ------------------------------------------------------------- */

int cs_relay_start(cstack_server *srv, cs_relay **out)
{
    *out = NULL;
    cs_relay *rl = calloc(1, sizeof *rl);
    if (!rl)
        return CSTACK_ENOMEM;
    rl->srv = srv;
    pthread_mutex_init(&rl->mu, NULL);
    rl->ep = epoll_create1(EPOLL_CLOEXEC);
    rl->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &rl->wake};
    if (rl->ep < 0 || rl->wake < 0 || epoll_ctl(rl->ep, EPOLL_CTL_ADD, rl->wake, &wev) ||
        pthread_create(&rl->thread, NULL, relay_main, rl) != 0) {
        cs_relay_stop(rl);
        return CSTACK_ERROR;
    }
    rl->started = true;
    *out = rl;
    return 0;
}

void cs_relay_stop(cs_relay *rl)
{
    if (!rl)
        return;
    if (rl->started) {
        atomic_store(&rl->stopping, true);
        uint64_t one = 1;
        (void)!write(rl->wake, &one, sizeof one);
        pthread_join(rl->thread, NULL);
    }
    while (rl->handoffs) {
        handoff *h = rl->handoffs;
        rl->handoffs = h->next;
        handoff_free(h);
    }
    while (rl->head) {
        pipe_s *p = rl->head;
        rl->head = p->next;
        if (p->client >= 0)
            close(p->client);
        if (p->mhd >= 0)
            close(p->mhd);
        free(p);
    }
    if (rl->ep >= 0)
        close(rl->ep);
    if (rl->wake >= 0)
        close(rl->wake);
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}
