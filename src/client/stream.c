/*
 * stream.c -- following `GET /v1/stream?since=CURSOR` (docs/server.md).
 *
 * The stream is server-sent events: `changes` events carry a base64
 * changeset and, as their id, the cursor it brings the replica to;
 * `checkpoint` events carry {"cursor":N,"checksum":"<hex>"}, the checksum of
 * everything this user may see at that cursor; comments are keep-alives.
 *
 * The transfer runs on a curl multi handle so that the session's thread can
 * do two things at once without a second thread: between network events it
 * looks at the database version every poll interval and pushes new local
 * writes on the request handle, then goes back to waiting on the stream.
 * curl_multi_wakeup (from cstack_sync_stop / cstack_sync_nudge) cuts a wait
 * short.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "client/client.h"
#include "util/hex.h"

#define ERR_BODY_MAX 4096

typedef struct stream_ctx {
    cs_client *c;
    cs_sse sse;
    cs_buf bin;  /* the changeset of the event being applied */
    cs_buf err;  /* the body of a refusal (not 200) */
    long status; /* of the response, once its headers arrived */
    int rc;      /* the failure that stopped the transfer */
} stream_ctx;

static int on_changes(stream_ctx *s, const cs_sse_event *ev)
{
    cs_client *c = s->c;
    char *end = NULL;
    long long id = strtoll(ev->id, &end, 10);
    /* The pages of a large catch-up carry continuation cursors. */
    const char *page = NULL;
    if (end == ev->id || *end != '\0' || id < 0) {
        id = cs_page_base(ev->id);
        page = ev->id;
    }
    if (id < 0)
        return cs_client_fail(c, CSTACK_EIO, "stream: a changes event without a valid id ('%.80s')",
                              ev->id);
    cs_buf_reset(&s->bin);
    int rc = cs_base64_decode(&s->bin, ev->data, ev->data_len);
    if (rc)
        return cs_client_fail(c, rc == CSTACK_EVALIDATION ? CSTACK_EIO : rc,
                              "stream: changes event %lld is not valid base64", id);
    return cs_apply_changes(c, s->bin.data, s->bin.len, (int64_t)id, page);
}

static int on_checkpoint(stream_ctx *s, const cs_sse_event *ev)
{
    cs_client *c = s->c;
    jr_val room[16];
    jr_doc doc;
    const jr_val *obj = cs_client_json(ev->data, ev->data_len, room, 16, &doc);
    const jr_val *jc = jr_get(obj, "cursor"), *hex = jr_get(obj, "checksum");
    int64_t cursor = 0;
    uint64_t sum = 0;
    bool ok = jr_is(jc, JR_NUMBER) && jr_int64(jc, &cursor) && cursor >= 0 &&
              jr_is(hex, JR_STRING) && cs_hex_u64(jr_str(hex), jr_len(hex), &sum) == 0;
    jr_doc_free(&doc);
    if (!ok)
        return cs_client_fail(c, CSTACK_EIO, "stream: a malformed checkpoint: %.100s", ev->data);
    if (cursor < c->cursor)
        return 0; /* an old checkpoint: the state has moved on */
    int rc = 0;
    /* A checkpoint follows every change it covers, so the replica is at
     * its cursor even when the changes in between were not for this user. */
    if (cursor > c->cursor)
        rc = cs_state_save_cursor(c, cursor);
    return rc ? rc : cs_checkpoint(c, cursor, sum);
}

static int on_event(void *ctx, const cs_sse_event *ev)
{
    stream_ctx *s = ctx;
    if (strcmp(ev->type, "changes") == 0)
        return on_changes(s, ev);
    if (strcmp(ev->type, "checkpoint") == 0)
        return on_checkpoint(s, ev);
    return 0; /* events of later protocol versions */
}

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    stream_ctx *s = ctx;
    if (s->status == 0)
        curl_easy_getinfo(s->c->stream, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200) {
        /* Keep the start of a refusal for the message; drop the rest. */
        size_t room = ERR_BODY_MAX - s->err.len;
        cs_buf_append(&s->err, p, size * n < room ? size * n : room);
        return size * n;
    }
    int rc = cs_sse_feed(&s->sse, p, size * n);
    if (rc) {
        if (rc == CSTACK_ETOOBIG)
            cs_client_fail(s->c, CSTACK_ETOOBIG, "stream: an event larger than %zu bytes",
                           s->sse.max);
        s->rc = rc;
        return 0; /* aborts the transfer */
    }
    return size * n;
}

static void mark_connected(cs_client *c)
{
    pthread_mutex_lock(&c->st_mu);
    c->st.attempts = 0;
    c->st.schema_mismatch = 0;
    c->st.last_synced_ms = cs_wall_ms();
    c->st.last_error[0] = '\0';
    pthread_mutex_unlock(&c->st_mu);
    cs_client_set_state(c, CSTACK_SYNC_CONNECTED);
}

/* Pushes when the database changed since the queue was last examined (or a
 * push was asked for). */
static int push_if_changed(cs_client *c)
{
    int64_t v = 0;
    bool nudged = atomic_exchange(&c->nudge, false);
    int rc = cstack_sync_version(c->db, &v);
    if (rc)
        return cs_client_fail(c, rc, "cannot read the database version: %s", cstack_errmsg(c->db));
    if (v == c->last_version && !nudged)
        return 0;
    rc = cs_push_all(c);
    /* A refused batch was undone: what the server holds of its rows comes
     * back with a pull from cursor 0 (the stream then goes on from there). */
    if (rc == 0 && c->repull)
        rc = cs_pull_all(c);
    if (rc == 0 && c->st.state != CSTACK_SYNC_CONNECTED)
        cs_client_set_state(c, CSTACK_SYNC_CONNECTED);
    return rc;
}

/* Why the transfer ended, once libcurl says it has. */
static int finished(cs_client *c, stream_ctx *s)
{
    CURLcode cc = CURLE_OK;
    int left = 0;
    CURLMsg *m;
    while ((m = curl_multi_info_read(c->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            cc = m->data.result;
    if (s->rc)
        return s->rc;
    if (cs_client_stopping(c))
        return 0;
    if (cc != CURLE_OK)
        return cs_client_fail(c, CSTACK_EIO, "stream: %s",
                              c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc));
    if (s->status != 200) {
        cs_http_resp r = {.status = s->status, .body = s->err};
        int code = cs_http_error_code(&r);
        cs_http_error_text(c, "stream", &r);
        pthread_mutex_lock(&c->st_mu);
        char msg[sizeof c->st.last_error];
        memcpy(msg, c->st.last_error, sizeof msg);
        pthread_mutex_unlock(&c->st_mu);
        return cs_client_fail(c, code, "%s", msg);
    }
    return cs_client_fail(c, CSTACK_EIO, "stream: the server closed the stream");
}

static void stream_opts(cs_client *c, stream_ctx *s, const char *url)
{
    CURL *h = c->stream;
    long stall = c->o.stall_timeout_ms / 1000;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    /* No overall timeout (the stream lives as long as it can), but a stream
     * that delivers nothing, not even keep-alives, is a dead connection. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall > 0 ? stall : 1L);
}

static int follow(cs_client *c, stream_ctx *s)
{
    int64_t next_poll = 0;
    bool connected = false;
    for (;;) {
        int running = 0;
        if (curl_multi_perform(c->multi, &running) != CURLM_OK)
            return cs_client_fail(c, CSTACK_EIO, "stream: the transfer failed");
        if (s->rc || !running)
            return finished(c, s);
        if (cs_client_stopping(c))
            return 0;
        long status = 0;
        if (!connected)
            curl_easy_getinfo(c->stream, CURLINFO_RESPONSE_CODE, &status);
        if (!connected && status == 200) {
            connected = true;
            mark_connected(c);
        }
        int64_t now = cs_wall_ms();
        if (connected && (now >= next_poll || atomic_load(&c->nudge))) {
            int rc = push_if_changed(c);
            if (rc)
                return rc;
            next_poll = now + c->o.poll_ms;
        }
        /* A checkpoint differed: repair between events (its pulls use the
         * request handle); the stream then goes on, its replayed changes
         * merging as no-ops. */
        if (c->need_repair) {
            int rc = cs_repair(c);
            if (rc)
                return rc;
            if (c->st.state != CSTACK_SYNC_CONNECTED)
                cs_client_set_state(c, CSTACK_SYNC_CONNECTED);
        }
        int wait = c->o.poll_ms;
        curl_multi_poll(c->multi, NULL, 0, wait, NULL);
    }
}

int cs_stream(cs_client *c)
{
    stream_ctx s = {.c = c};
    size_t m = c->o.max_response;
    cs_sse_init(&s.sse, m > SIZE_MAX / 2 ? SIZE_MAX / 2 : m / 3 * 4 + 64, on_event, &s);
    s.bin.max = m;
    s.err.max = ERR_BODY_MAX;
    char url[4096 + CS_CURSOR_MAX];
    if (c->page[0])
        snprintf(url, sizeof url, "%s/v1/stream?since=%s", c->url, c->page);
    else
        snprintf(url, sizeof url, "%s/v1/stream?since=%" PRId64, c->url, c->cursor);
    c->curl_err[0] = '\0';
    stream_opts(c, &s, url);
    int rc = 0;
    if (curl_multi_add_handle(c->multi, c->stream) != CURLM_OK)
        rc = cs_client_fail(c, CSTACK_ENOMEM, "stream: cannot start the transfer");
    else {
        rc = follow(c, &s);
        curl_multi_remove_handle(c->multi, c->stream);
    }
    cs_sse_free(&s.sse);
    cs_buf_free(&s.bin);
    cs_buf_free(&s.err);
    return rc;
}
