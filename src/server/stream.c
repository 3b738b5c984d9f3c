/*
 * stream.c -- GET /v1/stream: server-sent events of each user's changes.
 *
 * One hub thread does all the database work for every open stream: it
 * wakes when a push commits (cs_hub_notify), when a stream opens, and on a
 * short tick for checkpoints and keep-alives.  Each round asks the store for
 * every stream's changes since its cursor in one snapshot (identical users
 * at identical cursors are computed once: a thousand devices of one user
 * cost one export), and appends the events to each stream's queue:
 *
 *   event: changes            the user's changes (full rows, tombstones,
 *   id: <cursor>              drops) as a base64 changeset; the id is the
 *   data: <base64>            cursor to resume from
 *
 * Changes come in pages like a pull's (pull_page_rows, pull_page_bytes): a
 * stream behind by more than a page gets one page per round, its id the
 * continuation cursor, and the hub runs another round at once until it has
 * caught up, so no event is unbounded and a large catch-up does not hold
 * the database for the length of the whole answer.
 *
 *   event: checkpoint         sent on connect once caught up, then every
 *   data: {"cursor":N,        checkpoint_ms: the checksum of everything the
 *          "checksum":"<hex>"} user may read at that cursor (a resume point too)
 *
 *   : keep-alive              after keepalive_ms without output
 *
 * A stream's connection has a thread of its own (MHD thread per connection);
 * its content reader only copies queued bytes and sleeps on the stream's
 * condition variable when there are none, so a slow client never holds the
 * hub or the database.  A client that stops reading is cut off when its
 * queue passes STREAM_QUEUE_MAX.  Over every stream, queued bytes are
 * counted in srv->stream_bytes; after each round that leaves them past
 * max_stream_memory, the streams with the largest queues (the slowest
 * readers) are closed first, their queues freed and their sockets shut down,
 * until the sum is back under the cap.
 */
#include <inttypes.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "server/server_int.h"

#define STREAM_QUEUE_MAX ((size_t)256 << 20)

struct cs_stream {
    cs_hub *hub;
    int refs;    /* guarded by hub->mu */
    bool linked; /* in the hub's list (guarded by hub->mu) */
    cs_stream *prev, *next;
    cs_auth *auth;
    char site[33];
    const cstack_schema *view; /* the device's older schema, or NULL */
    uint64_t conn; /* the guard's id of its connection; 0 until set */
    /* Hub thread only. */
    int64_t cursor;
    cs_srv_pos pos;          /* set: in the middle of a paged answer */
    bool fresh;              /* has not caught up yet */
    int64_t next_checkpoint; /* monotonic ms */
    int64_t last_output;     /* monotonic ms */
    /* The queue, shared with the connection's thread. */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    cs_buf out;
    size_t off;
    bool closed;      /* no more events: end the response once drained */
    int64_t lag_from; /* commit time (wall ms) of the oldest queued change */
    uint64_t bytes;
    /* The hub holds back the next page of a paged answer while the queue
     * holds more than two pages; the reader wakes it once the queue drains. */
    bool wake_hub;
};

struct cs_hub {
    cstack_server *srv;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stopping, dirty;
    int64_t commit_ms; /* wall time of the first commit not yet delivered */
    cs_stream *head;
    size_t count;
};


/* ---- streams --------------------------------------------------------------- */

static void stream_free(cs_stream *s)
{
    atomic_fetch_sub(&s->hub->srv->stream_bytes, (long long)(s->out.len - s->off));
    cs_auth_free(s->auth);
    cs_buf_free(&s->out);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cond);
    free(s);
}

/* Drops one reference; the caller holds hub->mu. */
static void unref_locked(cs_stream *s)
{
    if (--s->refs == 0)
        stream_free(s);
}

/* Takes the stream out of the hub's list; returns the references that
 * dropped (the list's), for the caller to release. */
static int unlink_locked(cs_hub *h, cs_stream *s)
{
    if (!s->linked)
        return 0;
    if (s->prev)
        s->prev->next = s->next;
    else
        h->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->linked = false;
    h->count--;
    atomic_fetch_sub(&h->srv->metrics.streams, 1);
    return 1;
}

int cs_stream_open(cs_hub *h, cs_auth *auth, const char *site, int64_t since,
                   const cs_srv_pos *pos, const cstack_schema *view, cs_stream **out)
{
    *out = NULL;
    cs_stream *s = calloc(1, sizeof *s);
    if (!s) {
        cs_auth_free(auth);
        return CSTACK_ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->hub = h;
    s->auth = auth;
    snprintf(s->site, sizeof s->site, "%s", site ? site : "");
    s->cursor = since;
    s->view = view;
    if (pos)
        s->pos = *pos;
    s->fresh = true;
    s->last_output = cs_mono_ms();
    s->out.max = STREAM_QUEUE_MAX;
    s->refs = 3;
    pthread_mutex_lock(&h->mu);
    s->next = h->head;
    if (h->head)
        h->head->prev = s;
    h->head = s;
    s->linked = true;
    h->count++;
    h->dirty = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mu);
    atomic_fetch_add(&h->srv->metrics.streams, 1);
    *out = s;
    return 0;
}

void cs_stream_release(cs_stream *s)
{
    if (!s)
        return;
    cs_hub *h = s->hub;
    pthread_mutex_lock(&h->mu);
    unref_locked(s);
    pthread_mutex_unlock(&h->mu);
}

void cs_stream_response_free(void *cls)
{
    cs_stream *s = cls;
    cs_hub *h = s->hub;
    pthread_mutex_lock(&h->mu);
    s->refs -= unlink_locked(h, s);
    unref_locked(s);
    pthread_mutex_unlock(&h->mu);
}

void cs_stream_set_conn(cs_stream *s, uint64_t conn)
{
    pthread_mutex_lock(&s->mu);
    s->conn = conn;
    pthread_mutex_unlock(&s->mu);
}

uint64_t cs_stream_bytes(cs_stream *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->bytes;
    pthread_mutex_unlock(&s->mu);
    return n;
}

ssize_t cs_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    cs_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    while (s->off == s->out.len && !s->closed)
        pthread_cond_wait(&s->cond, &s->mu);
    if (s->off == s->out.len) {
        pthread_mutex_unlock(&s->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = s->out.len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->out.data + s->off, n);
    s->off += n;
    atomic_fetch_sub(&s->hub->srv->stream_bytes, (long long)n);
    if (s->off == s->out.len) {
        cs_buf_reset(&s->out);
        s->off = 0;
    }
    s->bytes += n;
    int64_t lag_from = s->lag_from;
    s->lag_from = 0;
    bool wake = s->wake_hub && s->off == 0;
    if (wake)
        s->wake_hub = false;
    pthread_mutex_unlock(&s->mu);
    if (wake) {
        cs_hub *h = s->hub;
        pthread_mutex_lock(&h->mu);
        h->dirty = true;
        pthread_cond_signal(&h->cond);
        pthread_mutex_unlock(&h->mu);
    }
    if (lag_from)
        cs_metrics_lag(&s->hub->srv->metrics, cs_wall_ms() - lag_from);
    return (ssize_t)n;
}

/* Queues text for the connection; a queue past its maximum ends the stream
 * (the client is not reading). */
static void enqueue(cs_stream *s, const char *p, size_t n, int64_t lag_from, bool close)
{
    pthread_mutex_lock(&s->mu);
    if (!s->closed) {
        if (cs_buf_append(&s->out, p, n))
            close = true;
        else {
            atomic_fetch_add(&s->hub->srv->stream_bytes, (long long)n);
            if (lag_from && !s->lag_from)
                s->lag_from = lag_from;
        }
    }
    if (close)
        s->closed = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
    s->last_output = cs_mono_ms();
}

/* ---- the hub --------------------------------------------------------------- */

/* The events of one round for one stream. */
typedef struct round_item {
    cs_stream *s;
    bool checkpoint;
} round_item;

static int changes_event(cs_buf *ev, const cs_srv_pull *q, const cs_srv_pull_result *r,
                         const void *body)
{
    char id[CS_SRV_CURSOR_MAX];
    cs_srv_cursor_format(id, sizeof id, r->cursor, q->since, r->more ? &r->pos : NULL);
    int rc = cs_buf_printf(ev, "event: changes\nid: %s\ndata: ", id);
    rc = rc ? rc : cs_base64_encode(ev, body, r->len);
    return rc ? rc : cs_buf_puts(ev, "\n\n");
}

static void deliver(cs_hub *h, round_item *it, const cs_srv_pull_result *res, const cs_buf *events,
                    size_t n, int64_t lag_from, bool *again)
{
    cstack_server *srv = h->srv;
    int64_t now = cs_mono_ms();
    for (size_t i = 0; i < n; i++) {
        cs_stream *s = it[i].s;
        size_t src = res[i].same_as >= 0 ? (size_t)res[i].same_as : i;
        if (res[i].forbidden || res[i].bad_cursor) {
            static const char forbidden[] =
                "event: error\ndata: {\"status\":\"err\",\"code\":"
                "\"forbidden\",\"message\":\"" CS_SRV_SITE_FOREIGN "\"}\n\n";
            static const char bad[] = "event: error\ndata: {\"status\":\"err\",\"code\":"
                                      "\"bad_request\",\"message\":\"" CS_SRV_BAD_CURSOR "\"}\n\n";
            if (res[i].forbidden)
                enqueue(s, forbidden, sizeof forbidden - 1, 0, true);
            else
                enqueue(s, bad, sizeof bad - 1, 0, true);
            continue;
        }
        if (res[i].rows > 0 || res[i].more) {
            enqueue(s, events[src].data, events[src].len, lag_from, false);
            atomic_fetch_add(&srv->metrics.changes_out, res[i].rows);
        }
        s->cursor = res[i].cursor;
        s->pos = res[i].pos;
        if (res[i].more) {
            *again = true; /* the rest of the answer follows next round */
            continue;
        }
        if (it[i].checkpoint) {
            char cp[160];
            int k = snprintf(cp, sizeof cp,
                             "event: checkpoint\ndata: {\"cursor\":%" PRId64
                             ",\"checksum\":\"%016" PRIx64 "\"}\n\n",
                             res[i].cursor, res[i].checksum);
            enqueue(s, cp, (size_t)k, 0, false);
            s->next_checkpoint = now + srv->cfg.checkpoint_ms;
        }
        s->fresh = false;
    }
}

/* Ends the streams of a failed round with an error event: their clients
 * reconnect (and their next stream starts from their cursor). */
static void fail_round(cs_hub *h, round_item *it, size_t n, const cs_srv_err *err)
{
    cs_buf ev = CS_BUF_INIT;
    cs_buf_puts(&ev, "event: error\ndata: {\"status\":\"err\",\"code\":\"internal\",\"message\":");
    cs_buf_json_str(&ev, err->message, strlen(err->message));
    cs_buf_puts(&ev, "}\n\n");
    for (size_t i = 0; i < n; i++)
        enqueue(it[i].s, ev.data ? ev.data : "", ev.len, 0, true);
    cs_buf_free(&ev);
    cs_srv_log(h->srv, "stream: ending %zu streams: %s", n, err->message);
}

/* Pulls for the streams that need something and queues their events. */
static void feed(cs_hub *h, round_item *it, size_t n, int64_t lag_from, bool *again)
{
    cstack_server *srv = h->srv;
    cs_srv_pull *reqs = calloc(n, sizeof *reqs);
    cs_srv_pull_result *res = calloc(n, sizeof *res);
    cs_buf *events = calloc(n, sizeof *events);
    cs_srv_err err = {0};
    if (!reqs || !res || !events) {
        cs_srv_err_set(&err, CS_SRV_INTERNAL, CSTACK_ENOMEM, "out of memory");
        fail_round(h, it, n, &err);
    } else {
        for (size_t i = 0; i < n; i++) {
            cs_stream *s = it[i].s;
            reqs[i] = (cs_srv_pull){.auth = s->auth,
                                    .site = s->site,
                                    .since = s->cursor,
                                    .want_changes = true,
                                    .want_checksum = it[i].checkpoint,
                                    .view = s->view};
            reqs[i].pos = s->pos;
            reqs[i].page_rows = srv->cfg.pull_page_rows;
            reqs[i].page_bytes = srv->cfg.pull_page_bytes;
        }
        int rc = srv->ops->pull(srv->store, reqs, n, res, &err);
        for (size_t i = 0; i < n && !rc; i++)
            if (res[i].same_as < 0 && (res[i].rows > 0 || res[i].more))
                rc = changes_event(&events[i], &reqs[i], &res[i], res[i].body);
        if (rc)
            fail_round(h, it, n, &err);
        else
            deliver(h, it, res, events, n, lag_from, again);
    }
    for (size_t i = 0; reqs && res && events && i < n; i++) {
        cs_srv_pull_result_free(&res[i]);
        cs_buf_free(&events[i]);
    }
    free(reqs);
    free(res);
    free(events);
}

typedef struct queued {
    cs_stream *s;
    size_t bytes;
} queued;

static int by_bytes_desc(const void *a, const void *b)
{
    size_t x = ((const queued *)a)->bytes, y = ((const queued *)b)->bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Closes the streams with the largest queues until the sum of every queue
 * is within max_stream_memory again.  A client that stopped reading has the
 * largest queue: it is the one cut off, and the readers that keep up stay. */
static void shed(cs_hub *h, cs_stream **all, size_t n)
{
    cstack_server *srv = h->srv;
    long long cap = (long long)srv->cfg.max_stream_memory;
    if (atomic_load(&srv->stream_bytes) <= cap)
        return;
    queued *q = calloc(n ? n : 1, sizeof *q);
    if (!q)
        return;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&all[i]->mu);
        q[i] = (queued){all[i], all[i]->out.len - all[i]->off};
        pthread_mutex_unlock(&all[i]->mu);
    }
    qsort(q, n, sizeof *q, by_bytes_desc);
    for (size_t i = 0; i < n && q[i].bytes && atomic_load(&srv->stream_bytes) > cap; i++) {
        cs_stream *s = q[i].s;
        pthread_mutex_lock(&s->mu);
        size_t dropped = s->out.len - s->off;
        cs_buf_free(&s->out);
        s->off = 0;
        s->closed = true;
        uint64_t conn = s->conn;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_sub(&srv->stream_bytes, (long long)dropped);
        atomic_fetch_add(&srv->metrics.refused[CS_REFUSE_STREAM_MEMORY], 1);
        cs_guard_kill(srv->guard, conn);
        cs_srv_log(srv, "stream: closed a stream with %zu bytes queued (streams hold more than %zu)",
                   dropped, srv->cfg.max_stream_memory);
    }
    free(q);
}

/* Whether a stream in the middle of a paged answer still has more than two
 * pages queued: its next page waits until the reader drains the queue (and
 * wakes the hub), so a slow reader's queue stays bounded. */
static bool backlogged(cs_stream *s)
{
    size_t limit = 2 * s->hub->srv->cfg.pull_page_bytes * 4 / 3; /* base64 */
    pthread_mutex_lock(&s->mu);
    bool full = s->out.len - s->off > limit;
    s->wake_hub = full;
    pthread_mutex_unlock(&s->mu);
    return full;
}

/* One round over a snapshot of the streams (each referenced). */
static void hub_round(cs_hub *h, cs_stream **all, size_t n, int64_t lag_from)
{
    cstack_server *srv = h->srv;
    int64_t version = 0;
    if (srv->ops->version(srv->store, &version))
        return;
    round_item *it = calloc(n ? n : 1, sizeof *it);
    if (!it)
        return;
    int64_t now = cs_mono_ms();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        cs_stream *s = all[i];
        if (s->pos.set && backlogged(s))
            continue;
        bool checkpoint = s->fresh || now >= s->next_checkpoint;
        if (s->fresh || checkpoint || s->cursor < version || s->pos.set)
            it[k++] = (round_item){s, checkpoint};
    }
    bool again = false;
    if (k)
        feed(h, it, k, lag_from, &again);
    if (again) {
        pthread_mutex_lock(&h->mu);
        h->dirty = true;
        pthread_mutex_unlock(&h->mu);
    }
    for (size_t i = 0; i < n; i++)
        if (now - all[i]->last_output >= srv->cfg.keepalive_ms)
            enqueue(all[i], ": keep-alive\n\n", 14, 0, false);
    shed(h, all, n);
    free(it);
}

/* The tick: short enough for the configured periods, at most a second. */
static int64_t tick_ms(const cstack_server *srv)
{
    int64_t t = 1000;
    if (srv->cfg.checkpoint_ms / 4 < t)
        t = srv->cfg.checkpoint_ms / 4;
    if (srv->cfg.keepalive_ms / 4 < t)
        t = srv->cfg.keepalive_ms / 4;
    return t < 10 ? 10 : t;
}

static void wait_work(cs_hub *h)
{
    struct timespec ts = cs_deadline(CLOCK_MONOTONIC, tick_ms(h->srv));
    while (!h->stopping && !h->dirty)
        if (pthread_cond_timedwait(&h->cond, &h->mu, &ts) != 0)
            break;
}

static void *hub_main(void *arg)
{
    cs_hub *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        wait_work(h);
        if (h->stopping)
            break;
        h->dirty = false;
        int64_t lag_from = h->commit_ms;
        h->commit_ms = 0;
        cs_stream **all = calloc(h->count ? h->count : 1, sizeof *all);
        size_t n = 0;
        for (cs_stream *s = h->head; all && s; s = s->next) {
            s->refs++;
            all[n++] = s;
        }
        pthread_mutex_unlock(&h->mu);
        if (n)
            hub_round(h, all, n, lag_from);
        pthread_mutex_lock(&h->mu);
        for (size_t i = 0; i < n; i++)
            unref_locked(all[i]);
        free(all);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

int cs_hub_start(cstack_server *srv, cs_hub **out)
{
    *out = NULL;
    cs_hub *h = calloc(1, sizeof *h);
    if (!h)
        return CSTACK_ENOMEM;
    h->srv = srv;
    pthread_mutex_init(&h->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
        cs_hub_free(h);
        return CSTACK_ERROR;
    }
    h->started = true;
    *out = h;
    return 0;
}

void cs_hub_notify(cs_hub *h, int64_t commit_ms)
{
    pthread_mutex_lock(&h->mu);
    if (!h->commit_ms)
        h->commit_ms = commit_ms;
    h->dirty = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mu);
}

void cs_hub_stop(cs_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->mu);
    if (h->started)
        pthread_join(h->thread, NULL);
    h->started = false;
    /* Every stream ends once its queue is drained; their responses unlink
     * them as MHD lets go. */
    pthread_mutex_lock(&h->mu);
    for (cs_stream *s = h->head; s; s = s->next)
        enqueue(s, "", 0, 0, true);
    pthread_mutex_unlock(&h->mu);
}

void cs_hub_free(cs_hub *h)
{
    if (!h)
        return;
    cs_hub_stop(h);
    /* Streams whose responses never started (a failed queue) are the hub's
     * to free. */
    pthread_mutex_lock(&h->mu);
    while (h->head) {
        cs_stream *s = h->head;
        if (unlink_locked(h, s))
            unref_locked(s);
    }
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cond);
    free(h);
}
