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
 *   body rate         a push body must be in within header_timeout_ms plus
 *                     its declared length at min_body_rate, so a client
 *                     trickling a large upload cannot hold its share of the
 *                     upload memory for as long as it likes.
 *   per address       at most max_per_address connections from one client
 *                     address: the next one is answered 503 and closed at
 *                     once, so one host cannot take every slot.
 *   connections       at most max_connections in all, those the gate holds
 *                     included: the next one is answered 503 and closed.
 *   shedding          a stream the hub closes for memory has its socket shut
 *                     down here, so a client that stopped reading lets go of
 *                     its thread too.
 *
 * A connection is ended by shutdown(2) of its socket from the watchdog
 * thread: MHD's connection thread (or the gate, for a connection it still
 * holds) then reads the end of the stream and closes the connection the
 * usual way.  The socket is only touched under the guard's lock while the
 * connection is in the list, and both MHD and the gate report the close
 * (cs_guard_close) before closing the descriptor, so a descriptor number
 * reused by a later connection is never shut down by mistake.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "server/server_int.h"

struct cs_guard {
    cstack_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stopping;
    cs_conn *head;
    unsigned count;
    uint64_t next_id;
};

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
    g->count--;
}

cs_conn *cs_guard_open(cs_guard *g, int fd, const struct sockaddr *addr, socklen_t addrlen,
                       bool *refused)
{
    *refused = false;
    cs_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    if (addr && addrlen <= sizeof c->addr) {
        c->addrlen = addrlen;
        memcpy(&c->addr, addr, addrlen);
    }
    c->deadline = cs_mono_ms() + g->srv->cfg.header_timeout_ms;
    c->dl = CS_DL_HEAD;
    c->expect_known = true;
    unsigned same = 0;
    pthread_mutex_lock(&g->mu);
    /* Connections already answered and waiting to close are not the
     * address's: counting them would refuse an address that retries. */
    for (cs_conn *o = g->head; o; o = o->next)
        same += o->dl != CS_DL_LINGER && same_addr(o, c);
    bool full = g->count >= g->srv->cfg.max_connections;
    c->id = ++g->next_id;
    c->next = g->head;
    if (g->head)
        g->head->prev = c;
    g->head = c;
    g->count++;
    pthread_mutex_unlock(&g->mu);
    if (full) {
        cs_raw_answer(fd, 503, "Service Unavailable", "Retry-After: 5\r\n", "busy",
                      "the server has too many connections");
        atomic_fetch_add(&g->srv->metrics.refused[CS_REFUSE_CONNECTIONS], 1);
        *refused = true;
    } else if (same >= g->srv->cfg.max_per_address) {
        cs_raw_answer(fd, 503, "Service Unavailable", "Retry-After: 5\r\n", "busy",
                      "too many connections from this address");
        atomic_fetch_add(&g->srv->metrics.refused[CS_REFUSE_PER_ADDRESS], 1);
        *refused = true;
    }
    return c;
}

void cs_guard_handing(cs_guard *g, cs_conn *c)
{
    pthread_mutex_lock(&g->mu);
    c->handing = true;
    pthread_mutex_unlock(&g->mu);
}

cs_conn *cs_guard_adopt(cs_guard *g, int fd)
{
    pthread_mutex_lock(&g->mu);
    cs_conn *c = g->head;
    while (c && !(c->handing && c->fd == fd))
        c = c->next;
    if (c) {
        c->handing = false;
        c->adopted = true;
    }
    pthread_mutex_unlock(&g->mu);
    return c;
}

void cs_guard_abandon(cs_guard *g, uint64_t id)
{
    pthread_mutex_lock(&g->mu);
    cs_conn *c = g->head;
    while (c && c->id != id)
        c = c->next;
    if (c && !c->adopted)
        unlink_locked(g, c);
    else
        c = NULL;
    pthread_mutex_unlock(&g->mu);
    free(c);
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

/* Sets a connection's deadline `ms` from now (none when ms < 0). */
static void set_deadline(cs_guard *g, cs_conn *c, int dl, int64_t ms)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->mu);
    c->deadline = ms < 0 ? 0 : cs_mono_ms() + ms;
    c->dl = dl;
    pthread_mutex_unlock(&g->mu);
}

void cs_guard_headers_in(cs_guard *g, cs_conn *c)
{
    set_deadline(g, c, CS_DL_IDLE, -1);
}

void cs_guard_body_start(cs_guard *g, cs_conn *c, uint64_t bytes)
{
    const cstack_server_config *cfg = &g->srv->cfg;
    set_deadline(g, c, CS_DL_BODY,
                 cfg->header_timeout_ms + (int64_t)(bytes * 1000 / cfg->min_body_rate));
}

void cs_guard_body_done(cs_guard *g, cs_conn *c)
{
    set_deadline(g, c, CS_DL_IDLE, -1);
}

void cs_guard_request_done(cs_guard *g, cs_conn *c)
{
    set_deadline(g, c, CS_DL_IDLE, g->srv->cfg.header_timeout_ms);
}

void cs_guard_linger(cs_guard *g, cs_conn *c, int64_t ms)
{
    set_deadline(g, c, CS_DL_LINGER, ms);
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

/* Ends every connection past its deadline.  A first request gets a 408
 * (it has sent part of a request, or nothing at all), and so does a push
 * whose body is too slow (nothing is answered before the body is in); a
 * keep-alive connection idle after its last response is simply closed, as
 * a client reusing connections expects, and so is one the gate answered. */
static void expire_locked(cs_guard *g, int64_t now)
{
    for (cs_conn *c = g->head; c; c = c->next) {
        if (!c->deadline || now < c->deadline)
            continue;
        if (c->dl == CS_DL_HEAD) {
            cs_raw_answer(c->fd, 408, "Request Timeout", "", "timeout",
                          "the request line and headers did not arrive in time");
            atomic_fetch_add(&g->srv->metrics.refused[CS_REFUSE_HEADER_TIMEOUT], 1);
        } else if (c->dl == CS_DL_BODY) {
            cs_raw_answer(c->fd, 408, "Request Timeout", "", "timeout",
                          "the body did not arrive at the server's minimum rate");
            atomic_fetch_add(&g->srv->metrics.refused[CS_REFUSE_BODY_RATE], 1);
        }
        shutdown(c->fd, SHUT_RDWR);
        c->deadline = 0;
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
    /* MHD and the gate have reported every close by now (both are stopped
     * first); whatever remains was never reported and is ours to free. */
    while (g->head) {
        cs_conn *c = g->head;
        unlink_locked(g, c);
        free(c);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cond);
    free(g);
}
