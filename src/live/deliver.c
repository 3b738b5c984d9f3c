/* deliver.c -- running due watches and calling their callbacks.
 *
 * One runner at a time per runtime: the delivery thread (native builds) or
 * a caller of cstack_watch_pump; a pump that finds the thread running
 * returns at once.  So callbacks of one runtime never run concurrently, and
 * each watch's responses arrive in commit order.  A runner re-runs a dirty
 * watch once its throttle allows (leading edge: the first change after a
 * quiet period runs at once, later ones wait until throttle_ms after the
 * previous run, all coalesced into one run that sees the latest commit),
 * on a reader connection (cstack_envelope_call), with no lock held, and
 * delivers the response only when its hash differs from the last one. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "live/live_int.h"
#include "store/store.h"
#include "util/clock.h"
#include "util/hash.h"

/* The watch being called back by this thread, so that stopping it from
 * inside its callback leaves the freeing to the runner. */
static _Thread_local cstack_watch *in_callback;

uint64_t cs_live_hash(const char *s, size_t n)
{
    return cs_fnv1a64(CS_FNV64_INIT, s, n);
}

static int64_t due_at(const cstack_watch *w)
{
    return w->first ? 0 : w->last_run + w->throttle_ms;
}

/* ---- the run queue ------------------------------------------------------------- */

void cs_live_enqueue(cs_live *l, cstack_watch *w)
{
    if (w->queued)
        return;
    w->queued = true;
    w->qnext = NULL;
    w->qprev = l->qtail;
    if (l->qtail)
        l->qtail->qnext = w;
    else
        l->qhead = w;
    l->qtail = w;
}

void cs_live_dequeue(cs_live *l, cstack_watch *w)
{
    if (!w->queued)
        return;
    w->queued = false;
    if (w->qprev)
        w->qprev->qnext = w->qnext;
    else
        l->qhead = w->qnext;
    if (w->qnext)
        w->qnext->qprev = w->qprev;
    else
        l->qtail = w->qprev;
    w->qprev = w->qnext = NULL;
}

/* A watch whose first run is going is not queued: cstack_watch_envelope
 * queues it when that run is done, for its first delivery, and the runner
 * queues it again afterwards if it is still dirty. */
bool cs_live_mark(cs_live *l, cstack_watch *w)
{
    if (w->stopped || w->dirty)
        return false;
    w->dirty = true;
    if (w->ready)
        cs_live_enqueue(l, w);
    return true;
}

/* Takes the first queued watch that is due now out of the queue and returns
 * it, or NULL; (mu held) *next gets the earliest later due time of a queued
 * watch, or INT64_MAX. */
static cstack_watch *pick(cs_live *l, int64_t now, int64_t *next)
{
    *next = INT64_MAX;
    for (cstack_watch *w = l->qhead; w; w = w->qnext) {
        int64_t due = due_at(w);
        if (due <= now) {
            cs_live_dequeue(l, w);
            return w;
        }
        if (due < *next)
            *next = due;
    }
    return NULL;
}

/* Asks whether another connection committed; if so every watch is dirty
 * (which tables it changed is not known).  mu held on entry and exit. */
static void poll_others(cs_live *l, int64_t now)
{
    if (now < l->next_poll || !l->head)
        return;
    l->next_poll = now + l->poll_ms;
    int64_t dv = 0;
    LIVE_UNLOCK(l);
    /* Busy: our own writer is in a transaction, during which nobody else
     * can commit either; the next poll will see what happened before. */
    int rc = cs_store_data_version(l->db, &dv);
    LIVE_LOCK(l);
    if (rc)
        return;
    if (l->dv_known && dv != l->dv)
        for (cstack_watch *w = l->head; w; w = w->next)
            cs_live_mark(l, w);
    l->dv = dv;
    l->dv_known = true;
}

/* Runs w (current, mu held on entry and exit); returns 1 when its callback
 * was called. */
static int run_one(cs_live *l, cstack_watch *w)
{
    char *resp = w->first;
    size_t rlen = w->first_len;
    bool fresh = resp != NULL; /* the first response: always delivered */
    w->first = NULL;
    if (!fresh) {
        w->dirty = false;
        w->last_run = cs_mono_ms();
        l->runs++;
        LIVE_UNLOCK(l);
        int rc = cstack_envelope_call(l->db, w->request, w->len, &resp, &rlen);
        LIVE_LOCK(l);
        if (rc) {
            cs_live_mark(l, w); /* out of memory: try again later */
            return 0;
        }
    }
    uint64_t h = cs_live_hash(resp, rlen);
    int called = 0;
    if (!w->stopped && (fresh || h != w->hash)) {
        w->hash = h;
        LIVE_UNLOCK(l);
        in_callback = w;
        w->cb(w->ctx, resp, rlen);
        in_callback = NULL;
        LIVE_LOCK(l);
        called = 1;
    }
    cstack_free(resp);
    return called;
}

int cs_live_run(cs_live *l, int *next_ms)
{
    int64_t now = cs_mono_ms(), next = INT64_MAX;
    int n = 0;
    LIVE_LOCK(l);
    if (!l->running && !l->quit) {
        l->running = true;
        poll_others(l, now);
        cstack_watch *w;
        while (!l->quit && (w = pick(l, now, &next)) != NULL) {
            l->current = w;
            n += run_one(l, w);
            l->current = NULL;
            if (w->orphan)
                cs_live_unlink(l, w);
            else if (w->dirty && !w->stopped) /* a commit during its run */
                cs_live_enqueue(l, w);
            LIVE_SIGNAL(l); /* a stop may wait for w */
            now = cs_mono_ms();
        }
        l->running = false;
        LIVE_SIGNAL(l);
        if (l->head && l->next_poll < next)
            next = l->next_poll;
    }
    /* Else another runner is busy: it signals when done, and a pump caller
     * will hear from the delivery thread. */
    LIVE_UNLOCK(l);
    if (next_ms)
        *next_ms = next == INT64_MAX ? -1 : next <= now ? 0 : (int)(next - now);
    return n;
}

int cstack_watch_pump(cstack *db, int *next_ms)
{
    if (next_ms)
        *next_ms = -1;
    cs_live *l = db ? cs_store_live_peek(db) : NULL;
    if (!l)
        return 0;
    cs_enter(db);
    return cs_live_run(l, next_ms);
}

/* A counter of db's live context, read under its lock (0 without one). */
static uint64_t counter(cstack *db, size_t offset)
{
    cs_live *l = cs_store_live_peek(db);
    if (!l)
        return 0;
    LIVE_LOCK(l);
    uint64_t n = *(const uint64_t *)((const char *)l + offset);
    LIVE_UNLOCK(l);
    return n;
}

uint64_t cs_live_runs(cstack *db)
{
    return counter(db, offsetof(cs_live, runs));
}

uint64_t cs_live_visits(cstack *db)
{
    return counter(db, offsetof(cs_live, visits));
}

void cstack_watch_stop(cstack_watch *w)
{
    if (!w)
        return;
    cs_live *l = w->live;
    LIVE_LOCK(l);
    w->stopped = true;
    if (in_callback == w) {
        w->orphan = true;
        LIVE_UNLOCK(l); /* the runner frees it when the callback returns */
        return;
    }
#ifndef CSTACK_NO_THREADS
    while (l->current == w) /* another thread is running it */
        pthread_cond_wait(&l->cv, &l->mu);
#endif
    cs_live_unlink(l, w);
    LIVE_UNLOCK(l);
}

/* ---- the delivery thread -------------------------------------------------------- */

#ifdef CSTACK_NO_THREADS

int cs_live_start(cs_live *l)
{
    (void)l;
    return 0;
}

void cs_live_stop_thread(cs_live *l)
{
    l->quit = true;
}

#else

static void *delivery_main(void *arg)
{
    cs_live *l = arg;
    for (;;) {
        int next_ms;
        cs_live_run(l, &next_ms);
        LIVE_LOCK(l);
        if (!l->kick && !l->quit) {
            if (next_ms < 0) {
                pthread_cond_wait(&l->cv, &l->mu);
            } else if (next_ms > 0) {
                struct timespec ts = cs_deadline(CLOCK_MONOTONIC, next_ms);
                pthread_cond_timedwait(&l->cv, &l->mu, &ts);
            }
        }
        l->kick = false;
        bool quit = l->quit;
        LIVE_UNLOCK(l);
        if (quit)
            return NULL;
    }
}

int cs_live_start(cs_live *l)
{
    if (pthread_create(&l->thread, NULL, delivery_main, l) != 0)
        return CSTACK_ENOMEM;
    l->has_thread = true;
    return 0;
}

void cs_live_stop_thread(cs_live *l)
{
    LIVE_LOCK(l);
    l->quit = true;
    LIVE_SIGNAL(l);
    LIVE_UNLOCK(l);
    if (l->has_thread)
        pthread_join(l->thread, NULL);
    l->has_thread = false;
}

#endif
