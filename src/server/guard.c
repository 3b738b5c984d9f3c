/*
 * guard.c -- the connection guard: every open connection in one list, with
 * the limits libmicrohttpd cannot enforce itself.
 *
 *   header deadline   a connection must deliver its request line and headers
 *                     within header_timeout_ms of connecting (and of the end
 *                     of its previous response).  MHD's own timeout restarts
 *                     at every byte, so a client trickling a header byte now
 *                     and then would hold its slot and thread for ever; the
 *                     deadline does not move, whatever arrives.
 *   body rate         a push body must arrive within header_timeout_ms of its
 *                     headers, plus 1 s for every min_body_rate bytes that
 *                     arrive (Apache's mod_reqtimeout "MinRate"): a client
 *                     declaring a large Content-Length and trickling it
 *                     holds its share of the upload memory for seconds, not
 *                     for as long as each byte beats the idle timeout.
 *   per address       at most max_per_address connections from one client
 *                     address: the next one is answered 503 and closed at
 *                     once, so one host cannot take every slot.
 *   shedding          a stream the hub closes for memory has its socket shut
 *                     down here, so a client that stopped reading lets go of
 *                     its thread too.
 *
 * A connection is ended by shutdown(2) of its socket from the watchdog
 * thread: MHD's connection thread then reads the end of the stream and
 * closes the connection the usual way.  The socket is only touched under
 * the guard's lock while the connection is in the list, and MHD reports the
 * close (cs_guard_close) before it closes the descriptor, so a descriptor
 * number reused by a later connection is never shut down by mistake.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <netinet/in.h>

#include "server/server_int.h"

struct cs_conn {
    cs_conn *prev, *next;
    int fd;
    uint64_t id;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t deadline; /* monotonic ms by which headers must be in; 0: none */
    bool first;       /* the deadline is the first request's */
    bool answered;    /* refused and answered: no 408 at the deadline */
    bool body;        /* the deadline is its body's (cs_guard_body_begin) */
    bool body_cut;    /* its body was cut for its rate, answered 408 */
    uint64_t carry;   /* body bytes x 1000 not yet turned into deadline ms */
};

struct cs_guard {
    cstack_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stopping;
    cs_conn *head;
    uint64_t next_id;
};

/* A whole response written straight to a socket MHD has not answered on:
 * the request line and headers are not complete (or not even begun), so
 * nothing of MHD's can interleave with it.  Best effort, never blocking. */
/* The Date header's value (RFC 9110 IMF-fixdate) for now, whatever the
 * process's locale. */
static void http_date(char out[64])
{
    static const char DAYS[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char MONTHS[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(out, 64, "%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[tm.tm_wday % 7], tm.tm_mday,
             MONTHS[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void cs_raw_answer(int fd, int status, const char *reason, const char *extra, const char *code,
                   const char *message)
{
    char body[512], msg[1024], date[64];
    http_date(date);
    int n = snprintf(body, sizeof body, "{\"status\":\"err\",\"code\":\"%s\",\"message\":\"%s\"}",
                     code, message);
    int k = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n%sConnection: close\r\n\r\n%s",
                     status, reason, date, n, extra, body);
    if (k > 0 && (size_t)k < sizeof msg)
        (void)send(fd, msg, (size_t)k, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static bool same_addr(const cs_conn *a, const cs_conn *b)
{
    if (a->addr.ss_family != b->addr.ss_family)
        return false;
    if (a->addr.ss_family == AF_INET)
        return ((const struct sockaddr_in *)&a->addr)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&b->addr)->sin_addr.s_addr;
    if (a->addr.ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)&a->addr)->sin6_addr,
                      &((const struct sockaddr_in6 *)&b->addr)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return true;
}

static void unlink_locked(cs_guard *g, cs_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

cs_conn *cs_guard_open(cs_guard *g, int fd, const struct sockaddr *addr)
{
    cs_conn *c = calloc(1, sizeof *c);
    if (!c) {
        /* Without a record the connection could not be guarded: refuse it. */
        shutdown(fd, SHUT_RDWR);
        return NULL;
    }
    c->fd = fd;
    if (addr) {
        c->addrlen = addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in);
        memcpy(&c->addr, addr, c->addrlen);
    }
    c->deadline = cs_mono_ms() + g->srv->cfg.header_timeout_ms;
    c->first = true;
    unsigned same = 0;
    pthread_mutex_lock(&g->mu);
    for (cs_conn *o = g->head; o; o = o->next)
        same += same_addr(o, c);
    c->id = ++g->next_id;
    c->next = g->head;
    if (g->head)
        g->head->prev = c;
    g->head = c;
    if (same >= g->srv->cfg.max_per_address) {
        c->deadline = 0;
        cs_raw_answer(fd, 503, "Service Unavailable", "Retry-After: 5\r\n", "busy",
                      "too many connections from this address");
        shutdown(fd, SHUT_RDWR);
        atomic_fetch_add(&g->srv->metrics.refused[CS_REFUSE_PER_ADDRESS], 1);
    }
    pthread_mutex_unlock(&g->mu);
    return c;
}

void cs_guard_close(cs_guard *g, cs_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    unlink_locked(g, c);
    pthread_mutex_unlock(&g->mu);
    free(c);
}

void cs_guard_headers_in(cs_guard *g, cs_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->deadline = 0;
    c->first = false;
    pthread_mutex_unlock(&g->mu);
}

void cs_guard_body_begin(cs_guard *g, cs_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->deadline = cs_mono_ms() + g->srv->cfg.header_timeout_ms;
    c->body = true;
    c->body_cut = false;
    c->carry = 0;
    pthread_mutex_unlock(&g->mu);
}

void cs_guard_body_bytes(cs_guard *g, cs_conn *c, size_t n)
{
    if (!c)
        return;
    uint64_t rate = g->srv->cfg.min_body_rate;
    pthread_mutex_lock(&g->mu);
    if (c->body && c->deadline) {
        /* n is at most one read (MHD's buffer), so n x 1000 cannot wrap. */
        c->carry += (uint64_t)n * 1000u;
        c->deadline += (int64_t)(c->carry / rate);
        c->carry %= rate;
    }
    pthread_mutex_unlock(&g->mu);
}

void cs_guard_body_end(cs_guard *g, cs_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    if (c->body)
        c->deadline = 0;
    c->body = false;
    pthread_mutex_unlock(&g->mu);
}

bool cs_guard_body_cut(cs_guard *g, cs_conn *c)
{
    if (!c)
        return false;
    pthread_mutex_lock(&g->mu);
    bool cut = c->body_cut;
    pthread_mutex_unlock(&g->mu);
    return cut;
}

void cs_guard_request_done(cs_guard *g, cs_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->deadline = cs_mono_ms() + g->srv->cfg.header_timeout_ms;
    pthread_mutex_unlock(&g->mu);
}

void cs_guard_answered(cs_guard *g, cs_conn *c, int64_t ms)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->answered = true;
    c->first = false;
    c->deadline = cs_mono_ms() + ms;
    pthread_mutex_unlock(&g->mu);
}

uint64_t cs_guard_id(cs_guard *g, cs_conn *c)
{
    if (!c)
        return 0;
    pthread_mutex_lock(&g->mu);
    uint64_t id = c->id;
    pthread_mutex_unlock(&g->mu);
    return id;
}

void cs_guard_kill(cs_guard *g, uint64_t id)
{
    if (!id)
        return;
    pthread_mutex_lock(&g->mu);
    for (cs_conn *c = g->head; c; c = c->next)
        if (c->id == id) {
            shutdown(c->fd, SHUT_RDWR);
            break;
        }
    pthread_mutex_unlock(&g->mu);
}

/* Ends every connection past its header deadline.  A first request gets a
 * 408 (it has sent part of a request, or nothing at all), and so does a
 * later one that has begun; a keep-alive connection idle after its last
 * response is simply closed, as a client reusing connections expects. */
static void expire_locked(cs_guard *g, int64_t now)
{
    for (cs_conn *c = g->head; c; c = c->next) {
        if (!c->deadline || now < c->deadline)
            continue;
        char b;
        if (c->body && !c->answered) {
            /* MHD is still reading the body: nothing of its answer is out. */
            cs_raw_answer(c->fd, 408, "Request Timeout", "", "timeout",
                          "the request body arrived slower than the server's minimum rate");
            atomic_fetch_add(&g->srv->metrics.refused[CS_REFUSE_BODY_RATE], 1);
            c->body_cut = true;
        } else if (!c->answered &&
                   (c->first || recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0)) {
            cs_raw_answer(c->fd, 408, "Request Timeout", "", "timeout",
                          "the request line and headers did not arrive in time");
            atomic_fetch_add(&g->srv->metrics.refused[CS_REFUSE_HEADER_TIMEOUT], 1);
        }
        shutdown(c->fd, SHUT_RDWR);
        c->deadline = 0;
        c->body = false;
    }
}

static void *guard_main(void *arg)
{
    cs_guard *g = arg;
    int64_t tick = g->srv->cfg.header_timeout_ms / 10;
    tick = tick < 20 ? 20 : tick > 250 ? 250 : tick;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        struct timespec ts = cs_deadline(CLOCK_MONOTONIC, tick);
        while (!g->stopping && pthread_cond_timedwait(&g->cond, &g->mu, &ts) == 0)
            ;
        if (!g->stopping)
            expire_locked(g, cs_mono_ms());
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int cs_guard_start(cstack_server *srv, cs_guard **out)
{
    *out = NULL;
    cs_guard *g = calloc(1, sizeof *g);
    if (!g)
        return CSTACK_ENOMEM;
    g->srv = srv;
    pthread_mutex_init(&g->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&g->thread, NULL, guard_main, g) != 0) {
        cs_guard_free(g);
        return CSTACK_ERROR;
    }
    g->started = true;
    *out = g;
    return 0;
}

void cs_guard_free(cs_guard *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = true;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->mu);
    if (g->started)
        pthread_join(g->thread, NULL);
    /* MHD has reported every close by now (the daemon is stopped first);
     * whatever remains was never reported and is ours to free. */
    while (g->head) {
        cs_conn *c = g->head;
        unlink_locked(g, c);
        free(c);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cond);
    free(g);
}
