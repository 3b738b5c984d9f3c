/*
 * http.c -- the sync server's HTTP side (libmicrohttpd): routes, limits,
 * errors, the request log, and start / stop with drain.
 *
 * Threads.  MHD runs one thread per connection (small stacks, see
 * cstack_server_config.thread_stack).  That keeps every handler simple: a push
 * merges on its own thread and a stream's content reader may sleep until the
 * hub queues something for it, without stalling anyone else.  The store
 * serialises what must be (pushes; pulls read a snapshot beside them); the runtime is
 * shared by all threads.
 *
 * A request goes through on_request() in up to three calls: headers (route,
 * method, auth, schema, site; GET routes answer here), body chunks (counted
 * against max_body), and the end of the body (the push itself).  Every
 * error is {"status":"err","code":"...","message":"..."}; on_completed() logs
 * one line per request and counts it.  Every log line goes through
 * cs_srv_log(), which writes it whole.
 *
 * Limits.  Every connection is registered with the guard (guard.c) when MHD
 * takes it (its link, relay.c): the guard refuses an address past
 * max_per_address and closes a connection whose headers are not in by
 * header_timeout_ms, and a push whose body arrives slower than min_body_rate
 * (after a first header_timeout_ms).  A push takes its share of max_upload_memory before its
 * body is buffered (all of its Content-Length at once: every head is checked
 * before MHD reads it, intake.c and relay.c, and one with a chunked or other
 * transfer coding, or a Content-Length over max_body, is refused there, so a
 * body is never longer than the share taken) and gives it back when the
 * request completes; past the cap it is answered 503 busy with Retry-After.
 * Streams are bounded in stream.c.
 *
 * Stop drains: the listening socket closes (MHD_quiesce_daemon), streams end,
 * requests in flight finish within drain_ms (a push is acknowledged only
 * after its COMMIT), then MHD joins its threads and the database closes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/pg.h"
#include "server/server_int.h"

#define CONNECTION_TIMEOUT_S 120
/* The intake enforces max_connections before it hands a connection over
 * (MHD counts it a little later); MHD's own limit, past which it would drop
 * a connection without an answer, is only a backstop above it. */
#define MHD_SLACK 64u
#define STREAM_BLOCK (32u * 1024u)

/* One HTTP request (MHD's per-request context). */
typedef struct srv_req {
    cstack_server *srv;
    int route;
    char method[12];
    char *path;
    int64_t start_ms;
    int status;     /* 0 until a response is queued */
    uint64_t bytes; /* response body */
    char *user;     /* the token's sub, for the log */
    cs_auth *auth;
    char site[33];
    char batch[64];
    cs_buf body;
    bool no_memory;  /* the body could not be kept */
    size_t reserved; /* of srv->upload_bytes, given back on completion */
    bool counted;    /* in srv->active */
    cs_stream *stream;
    /* The device's schema when it is an older one this server accepts
     * (schemas.h); NULL when it is the served schema. */
    const cstack_schema *view;
    bool pages;        /* a page-storage route (pages.c): POST ones have a body */
    bool keep_alive;   /* MHD reads another request after it (keeps_alive) */
} srv_req;

/* ---- responses ------------------------------------------------------------- */

static enum MHD_Result reply(srv_req *r, struct MHD_Connection *c, int status, const char *ctype,
                             char *body, size_t len, const char *const *headers)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (size_t i = 0; headers && headers[i]; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ok == MHD_YES) {
        r->status = status;
        r->bytes = len;
    }
    return ok;
}

static enum MHD_Result reply_json(srv_req *r, struct MHD_Connection *c, int status, cs_buf *b,
                                  const char *const *headers)
{
    if (!b->data && cs_buf_puts(b, "{}"))
        return MHD_NO;
    size_t len = b->len;
    char *body = cs_buf_take(b);
    return body ? reply(r, c, status, "application/json", body, len, headers) : MHD_NO;
}

static enum MHD_Result reply_err(srv_req *r, struct MHD_Connection *c, int status, const char *code,
                                 const char *const *headers, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static enum MHD_Result reply_err(srv_req *r, struct MHD_Connection *c, int status, const char *code,
                                 const char *const *headers, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cs_buf b = CS_BUF_INIT;
    cs_buf_puts(&b, "{\"status\":\"err\",\"code\":");
    cs_buf_json_str(&b, code, strlen(code));
    cs_buf_puts(&b, ",\"message\":");
    cs_buf_json_str(&b, msg, strlen(msg));
    cs_buf_putc(&b, '}');
    enum MHD_Result ok = reply_json(r, c, status, &b, headers);
    cs_buf_free(&b);
    return ok;
}

/* A store refusal as its HTTP status and error code. */
static enum MHD_Result reply_store_err(srv_req *r, struct MHD_Connection *c, const cs_srv_err *e)
{
    switch (e->kind) {
    case CS_SRV_BAD:
        return reply_err(r, c, 400, cstack_errname(e->code), NULL, "%s", e->message);
    case CS_SRV_FORBIDDEN:
        return reply_err(r, c, 403, "forbidden", NULL, "%s", e->message);
    case CS_SRV_CONFLICT: {
        const char *const schema[] = {"X-Cstack-Schema", r->srv->schema->hash, NULL};
        return reply_err(r, c, 409, "schema_mismatch", schema, "%s", e->message);
    }
    case CS_SRV_UNAVAILABLE:
        return reply_err(r, c, 503, "unavailable", NULL, "%s", e->message);
    default:
        if (e->code == CSTACK_EBUSY)
            return reply_err(r, c, 503, "locked", NULL, "%s", e->message);
        return reply_err(r, c, 500, "internal", NULL, "%s", e->message);
    }
}

/* A copy fit for the one-line log: control characters (a decoded %0A in a
 * path, a newline in a token's sub) would forge lines. */
static char *log_safe(const char *s)
{
    char *out = cs_strndup(s, strnlen(s, 512));
    for (char *p = out; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == ' ')
            *p = '?';
    return out;
}

/* ---- request checks -------------------------------------------------------- */

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* The link of a connection (its MHD socket context, relay.c). */
static cs_link *link_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

static int route_of(const char *url)
{
    static const char *const PATHS[] = {"/v1/push", "/v1/pull", "/v1/stream", "/healthz",
                                        "/metrics"};
    for (int i = 0; i < (int)(sizeof PATHS / sizeof PATHS[0]); i++)
        if (strcmp(url, PATHS[i]) == 0)
            return i;
    return CS_ROUTE_OTHER;
}

/* A device on another schema: accepted when this server ran that schema and
 * it is an additive ancestor of the served one (its requests are then
 * projected, r->view), else a 409 naming both. */
static bool accept_schema(srv_req *r, struct MHD_Connection *c, const char *hash,
                          enum MHD_Result *ret)
{
    cstack_server *srv = r->srv;
    const cs_srv_version *v = cs_srv_versions_find(srv->versions, hash);
    if (v && v->ancestor && v->schema) {
        r->view = v->schema;
        return true;
    }
    /* The server's own hash in a header too, for the client's status. */
    const char *const schema[] = {"X-Cstack-Schema", srv->schema->hash, NULL};
    *ret = reply_err(r, c, 409, "schema_mismatch", schema,
                     "the client runs schema %.64s but this server runs schema %s (%s)", hash,
                     srv->schema->hash,
                     v ? "an older schema this server ran, which is not an additive ancestor of "
                         "its current one"
                       : "a schema this server never ran: if it is newer, migrate the server");
    return false;
}

/* Token, schema hash and site id, common to push, pull and stream.  Returns
 * false when it has answered the request. */
static bool check_client(srv_req *r, struct MHD_Connection *c, enum MHD_Result *ret)
{
    cstack_server *srv = r->srv;
    char why[256] = "";
    int rc = cs_auth_verify(srv->schema, header(c, MHD_HTTP_HEADER_AUTHORIZATION), srv->secret,
                            (int64_t)time(NULL), &r->auth, why, sizeof why);
    static const char *const BEARER[] = {MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer", NULL};
    if (rc == CSTACK_ENOMEM) {
        *ret = reply_err(r, c, 500, "internal", NULL, "out of memory");
        return false;
    }
    if (rc) {
        *ret = reply_err(r, c, 401, "unauthorized", BEARER, "%s", why[0] ? why : "bad token");
        return false;
    }
    r->user = log_safe(cs_auth_shown(r->auth));
    const char *hash = header(c, "X-Cstack-Schema");
    if (!hash) {
        *ret = reply_err(r, c, 400, "bad_request", NULL,
                         "missing X-Cstack-Schema header (this server runs schema %s)",
                         srv->schema->hash);
        return false;
    }
    if (strcmp(hash, srv->schema->hash) != 0 && !accept_schema(r, c, hash, ret))
        return false;
    const char *site = header(c, "X-Cstack-Site");
    unsigned char bin[16];
    if (!site || cs_srv_site_parse(site, bin)) {
        *ret = reply_err(r, c, 400, "bad_request", NULL,
                         "X-Cstack-Site must be the device's site id (32 hex digits)");
        return false;
    }
    if (memcmp(bin, CS_PG_BACKEND_SITE, sizeof bin) == 0) {
        /* The PostgreSQL store stamps backend writes with it (pg.h). */
        *ret = reply_err(r, c, 400, "bad_request", NULL,
                         "X-Cstack-Site %s is reserved for backend writes", site);
        return false;
    }
    snprintf(r->site, sizeof r->site, "%s", site);
    return true;
}

/* A cursor: decimal digits only, at most 18 of them. */
static bool parse_cursor(const char *s, int64_t *out)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* X-Cstack-Batch: "<site>:<version>", the site being the sender's. */
static bool check_batch(srv_req *r, struct MHD_Connection *c, enum MHD_Result *ret)
{
    const char *b = header(c, "X-Cstack-Batch");
    const char *colon = b ? strchr(b, ':') : NULL;
    int64_t v = 0;
    if (!colon || colon - b != 32 || !parse_cursor(colon + 1, &v)) {
        *ret = reply_err(r, c, 400, "bad_request", NULL,
                         "X-Cstack-Batch must be \"<site>:<version>\" (32 hex digits, a colon, "
                         "a decimal version)");
        return false;
    }
    if (strncasecmp(b, r->site, 32) != 0) {
        *ret =
            reply_err(r, c, 400, "bad_request", NULL,
                      "the batch %.60s was not made by this device (X-Cstack-Site %s)", b, r->site);
        return false;
    }
    snprintf(r->batch, sizeof r->batch, "%s", b);
    return true;
}

/* ---- routes ------------------------------------------------------------------ */

static enum MHD_Result do_healthz(srv_req *r, struct MHD_Connection *c)
{
    cstack_server *srv = r->srv;
    int64_t v = 0;
    if (srv->ops->version(srv->store, &v))
        return reply_err(r, c, 503, "unavailable", NULL, "the store does not answer");
    cs_buf b = CS_BUF_INIT;
    cs_buf_printf(&b,
                  "{\"status\":\"ok\",\"version\":%" PRId64 ",\"schema\":\"%s\",\"streams\":%ld,"
                  "\"store\":\"%s\"}",
                  v, srv->schema->hash, (long)atomic_load(&srv->metrics.streams), srv->ops->name);
    enum MHD_Result ok = reply_json(r, c, 200, &b, NULL);
    cs_buf_free(&b);
    return ok;
}

static enum MHD_Result do_metrics(srv_req *r, struct MHD_Connection *c)
{
    cs_buf b = CS_BUF_INIT;
    if (cs_metrics_render(r->srv, &b)) {
        cs_buf_free(&b);
        return reply_err(r, c, 500, "internal", NULL, "out of memory");
    }
    size_t len = b.len;
    char *body = cs_buf_take(&b);
    return body ? reply(r, c, 200, "text/plain; version=0.0.4; charset=utf-8", body, len, NULL)
                : MHD_NO;
}

/* The cursor of a pull or stream: plain digits or a continuation cursor
 * (cursor.c); the store checks that it is one it gave out. */
static bool since_arg(srv_req *r, struct MHD_Connection *c, const char *fallback, int64_t *since,
                      cs_srv_pos *pos, enum MHD_Result *ret)
{
    const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    if (!s)
        s = fallback;
    *since = 0;
    memset(pos, 0, sizeof *pos);
    if (s && !cs_srv_cursor_parse(s, since, pos)) {
        *ret = reply_err(r, c, 400, "bad_request", NULL,
                         "bad cursor '%.40s': since must be a cursor this server gave out", s);
        return false;
    }
    return true;
}

/* `upgrade_from=<hash>`: the schema the device ran before it upgraded; the
 * answer carries only what that schema lacked (docs/sync-protocol.md).  A
 * schema this server never ran cannot be told apart: a 400 says so, and the
 * device pulls everything again instead. */
static bool upgrade_arg(srv_req *r, struct MHD_Connection *c, cs_srv_pull *req,
                        enum MHD_Result *ret)
{
    const char *from = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "upgrade_from");
    if (!from)
        return true;
    const cs_srv_version *v = cs_srv_versions_find(r->srv->versions, from);
    if (!v || !v->schema) {
        *ret = reply_err(r, c, 400, "unknown_schema", NULL,
                         "upgrade_from names schema %.64s, which this server never ran", from);
        return false;
    }
    req->upgrade_from = v->schema;
    return true;
}

/* `resend=A,B`: models whose rows the device forgot to repair them
 * (docs/sync.md, "Self-repair"), sent again from the start.  Each name must
 * be a synced model, else a 400.  *flags (one per model) is the caller's to
 * free, also on failure. */
static bool resend_arg(srv_req *r, struct MHD_Connection *c, bool **flags, enum MHD_Result *ret)
{
    const char *p = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "resend");
    const cstack_schema *s = r->srv->schema;
    *flags = NULL;
    if (!p)
        return true;
    if (!(*flags = calloc(s->nmodels ? s->nmodels : 1, sizeof **flags))) {
        *ret = reply_err(r, c, 500, "internal", NULL, "out of memory");
        return false;
    }
    for (;;) {
        size_t n = strcspn(p, ",");
        char name[128];
        int mi = -1;
        if (n < sizeof name) {
            memcpy(name, p, n);
            name[n] = '\0';
            mi = cs_model_find(s, name);
        }
        if (mi < 0 || s->models[mi].local) {
            *ret = reply_err(r, c, 400, "bad_request", NULL,
                             "resend names '%.*s', which is not a synced model",
                             (int)(n < 64 ? n : 64), p);
            return false;
        }
        (*flags)[mi] = true;
        if (!p[n])
            return true;
        p += n + 1;
    }
}

static enum MHD_Result do_pull(srv_req *r, struct MHD_Connection *c)
{
    cstack_server *srv = r->srv;
    enum MHD_Result ret = MHD_NO;
    cs_srv_pull req = {
        .auth = r->auth, .site = r->site, .want_changes = true, .want_checksum = true};
    if (!since_arg(r, c, NULL, &req.since, &req.pos, &ret))
        return ret;
    req.page_rows = srv->cfg.pull_page_rows;
    req.page_bytes = srv->cfg.pull_page_bytes;
    const char *echoes = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "echoes");
    if (echoes && strcmp(echoes, "0") != 0 && strcmp(echoes, "1") != 0)
        return reply_err(r, c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, "echoes must be 0 or 1");
    req.echoes = echoes && echoes[0] == '1';
    req.view = r->view;
    if (!upgrade_arg(r, c, &req, &ret))
        return ret;
    const char *sums = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "sums");
    if (sums && strcmp(sums, "0") != 0 && strcmp(sums, "1") != 0)
        return reply_err(r, c, MHD_HTTP_BAD_REQUEST, "bad_request", NULL, "sums must be 0 or 1");
    req.want_model_sums = sums && sums[0] == '1';
    bool *resend = NULL;
    if (!resend_arg(r, c, &resend, &ret)) {
        free(resend);
        return ret;
    }
    req.resend = resend;
    cs_srv_pull_result res;
    cs_srv_err err;
    int rc = srv->ops->pull(srv->store, &req, 1, &res, &err);
    free(resend);
    if (rc)
        return reply_store_err(r, c, &err);
    if (res.forbidden) {
        cs_srv_err_set(&err, CS_SRV_FORBIDDEN, CSTACK_EINVAL, CS_SRV_SITE_FOREIGN);
        return reply_store_err(r, c, &err);
    }
    if (res.bad_cursor)
        return reply_err(r, c, 400, "bad_request", NULL, "%s", CS_SRV_BAD_CURSOR);
    atomic_fetch_add(&srv->metrics.changes_out, res.rows);
    char cursor[CS_SRV_CURSOR_MAX], sum[24], left[24];
    cs_srv_cursor_format(cursor, sizeof cursor, res.cursor, req.since, res.more ? &res.pos : NULL);
    snprintf(sum, sizeof sum, "%016" PRIx64, res.checksum);
    snprintf(left, sizeof left, "%" PRId64, res.remaining);
    const char *const headers[] = {"X-Cstack-Cursor",    cursor,
                                   "X-Cstack-More",      res.more ? "1" : "0",
                                   "X-Cstack-Remaining", left,
                                   "X-Cstack-Schema",    srv->schema->hash,
                                   res.has_checksum ? "X-Cstack-Checksum" : NULL,
                                   sum,
                                   res.model_sums ? "X-Cstack-Model-Sums" : NULL,
                                   res.model_sums,
                                   NULL};
    char *body = res.body;
    res.body = NULL;
    enum MHD_Result done = reply(r, c, 200, "application/octet-stream", body, res.len, headers);
    cs_srv_pull_result_free(&res);
    return done;
}

static enum MHD_Result do_stream(srv_req *r, struct MHD_Connection *c)
{
    cstack_server *srv = r->srv;
    enum MHD_Result ret = MHD_NO;
    int64_t since = 0, version = 0;
    cs_srv_pos pos;
    if (!since_arg(r, c, header(c, MHD_HTTP_HEADER_LAST_EVENT_ID), &since, &pos, &ret))
        return ret;
    if (srv->ops->version(srv->store, &version))
        return reply_err(r, c, 503, "unavailable", NULL, "the store does not answer");
    if (since > version || pos.ver > version)
        return reply_err(r, c, 400, "bad_request", NULL,
                         "cursor %" PRId64
                         " is not a cursor of this server (its version is %" PRId64 ")",
                         since, version);
    cs_srv_err err;
    if (srv->ops->claim(srv->store, r->auth, r->site, &err))
        return reply_store_err(r, c, &err);
    cs_stream *s = NULL;
    cs_auth *auth = r->auth;
    r->auth = NULL;
    if (cs_stream_open(srv->hub, auth, r->site, since, &pos, r->view, &s))
        return reply_err(r, c, 503, "unavailable", NULL, "the server is shutting down");
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, STREAM_BLOCK, cs_stream_read, s, cs_stream_response_free);
    if (!resp) {
        cs_stream_response_free(s);
        cs_stream_release(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    cs_stream_set_conn(s, cs_guard_id(srv->guard, cs_link_conn(link_of(c))));
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    r->status = MHD_HTTP_OK;
    r->stream = s;
    /* A stream is not "in flight" for the drain: the hub ends it. */
    pthread_mutex_lock(&srv->mu);
    srv->active--;
    r->counted = false;
    pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->mu);
    return ok;
}

/* Takes `n` bytes of the server's upload memory for this push; false when
 * that would pass max_upload_memory (nothing taken). */
static bool reserve_upload(srv_req *r, size_t n)
{
    cstack_server *srv = r->srv;
    long long cap = (long long)srv->cfg.max_upload_memory;
    long long was = atomic_fetch_add(&srv->upload_bytes, (long long)n);
    if (was + (long long)n > cap) {
        atomic_fetch_sub(&srv->upload_bytes, (long long)n);
        return false;
    }
    r->reserved += n;
    return true;
}

static enum MHD_Result reply_busy(srv_req *r, struct MHD_Connection *c)
{
    static const char *const RETRY[] = {MHD_HTTP_HEADER_RETRY_AFTER, "2", NULL};
    atomic_fetch_add(&r->srv->metrics.refused[CS_REFUSE_UPLOAD_MEMORY], 1);
    return reply_err(r, c, 503, "busy", RETRY,
                     "the server is receiving too many uploads (%zu bytes at most); retry later",
                     r->srv->cfg.max_upload_memory);
}

/* A push from a device on an older schema, projected up onto the served
 * one (*up holds the bytes req now points at). */
static bool project_push(srv_req *r, cs_srv_push *req, void **up, cs_srv_err *err)
{
    size_t len = 0;
    char why[256];
    int rc = cs_srv_project(r->view, r->srv->schema, NULL, req->changeset, req->len, up, &len,
                            NULL, why, sizeof why);
    if (rc) {
        cs_srv_err_set(err, rc == CSTACK_ENOMEM ? CS_SRV_INTERNAL : CS_SRV_BAD, rc, why);
        return false;
    }
    req->changeset = *up;
    req->len = len;
    return true;
}

/* Page storage (pages.c): the request is authenticated, its body read. */
static enum MHD_Result do_pages(srv_req *r, struct MHD_Connection *c)
{
    cs_pages_req q = {r->auth->sub, r->site, r->method, r->path,
                      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "name"),
                      MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "size"),
                      r->body.data ? r->body.data : "", r->body.len};
    cs_pages_resp a;
    if (!r->srv->pages)
        return reply_err(r, c, 501, "unsupported", NULL,
                         "page storage (backups) needs --pages-db when the server runs on "
                         "PostgreSQL");
    cs_pages_handle(r->srv->pages, &q, &a);
    if (a.status != 200)
        return reply_err(r, c, a.status, a.code, NULL, "%s", a.msg);
    return reply(r, c, 200, a.ctype, a.body, a.len, NULL);
}

static bool push_headers(srv_req *r, struct MHD_Connection *c, enum MHD_Result *ret);

/* Authenticated like a pull; a POST's body is then read under push limits. */
static enum MHD_Result pages_dispatch(srv_req *r, struct MHD_Connection *c)
{
    enum MHD_Result ret = MHD_YES;
    if (!check_client(r, c, &ret))
        return ret;
    if (strcmp(r->method, "POST") == 0)
        return push_headers(r, c, &ret) ? MHD_YES : ret;
    return do_pages(r, c);
}

static enum MHD_Result do_push(srv_req *r, struct MHD_Connection *c)
{
    cstack_server *srv = r->srv;
    if (r->no_memory)
        return reply_err(r, c, 500, "internal", NULL, "out of memory for the body");
    if (r->pages)
        return do_pages(r, c);
    cs_srv_push req = {r->auth, r->site, r->batch, r->body.data ? r->body.data : "", r->body.len};
    cs_srv_push_result res;
    cs_srv_err err;
    void *up = NULL;
    if (r->view && !project_push(r, &req, &up, &err)) {
        atomic_fetch_add(&srv->metrics.push[CS_PUSH_REJECTED], 1);
        return reply_store_err(r, c, &err);
    }
    int prc = srv->ops->push(srv->store, &req, &res, &err);
    free(up);
    if (prc) {
        atomic_fetch_add(&srv->metrics.push[CS_PUSH_REJECTED], 1);
        return reply_store_err(r, c, &err);
    }
    atomic_fetch_add(&srv->metrics.push[res.duplicate ? CS_PUSH_DUPLICATE : CS_PUSH_OK], 1);
    if (!res.duplicate) {
        atomic_fetch_add(&srv->metrics.changes_in, res.columns);
        cs_hub_notify(srv->hub, cs_wall_ms());
    }
    cs_buf b = CS_BUF_INIT;
    cs_buf_puts(&b, "{\"status\":\"ok\",\"batch\":");
    cs_buf_json_str(&b, r->batch, strlen(r->batch));
    cs_buf_printf(&b, ",\"duplicate\":%s,\"cursor\":%" PRId64 "}", res.duplicate ? "true" : "false",
                  res.cursor);
    enum MHD_Result ok = reply_json(r, c, 200, &b, NULL);
    cs_buf_free(&b);
    return ok;
}

/* Checks a push's headers before its body is read: a body that cannot be
 * accepted is refused before it is uploaded, and a body of known length
 * takes its share of the upload memory before a byte of it is buffered. */
static bool push_headers(srv_req *r, struct MHD_Connection *c, enum MHD_Result *ret)
{
    if (!r->pages && !check_batch(r, c, ret))
        return false;
    const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t n = 0;
    if (cl && parse_cursor(cl, &n) && (uint64_t)n > r->srv->cfg.max_body) {
        *ret = reply_err(r, c, 413, "too_big", NULL,
                         "the body (%" PRId64 " bytes) exceeds %zu bytes", n, r->srv->cfg.max_body);
        return false;
    }
    r->body.max = r->srv->cfg.max_body;
    if (cl && n > 0) {
        if (!reserve_upload(r, (size_t)n)) {
            *ret = reply_busy(r, c);
            return false;
        }
        cs_buf_reserve(&r->body, (size_t)n);
    }
    return true;
}

/* A file of `cstack serve --web DIR` (static.c). */
static enum MHD_Result do_static(srv_req *r, struct MHD_Connection *c)
{
    int fd = -1;
    size_t size = 0;
    const char *mime = NULL;
    if (cs_static_open(r->srv->cfg.web_dir, r->path, &fd, &size, &mime) != 0)
        return reply_err(r, c, 404, "not_found", NULL, "no route %.200s", r->path);
    struct MHD_Response *resp = MHD_create_response_from_fd(size, fd);
    if (!resp) {
        close(fd);
        return reply_err(r, c, 500, "internal", NULL, "out of memory");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, mime);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    r->status = 200;
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Everything the headers decide.  A push's headers are checked before its
 * body is read (a body that cannot be accepted is refused before it is
 * uploaded); other requests are answered once the request is complete,
 * which keeps the connection reusable. */
static enum MHD_Result dispatch(srv_req *r, struct MHD_Connection *c)
{
    static const char *const ALLOW_GET[] = {MHD_HTTP_HEADER_ALLOW, "GET", NULL};
    static const char *const ALLOW_POST[] = {MHD_HTTP_HEADER_ALLOW, "POST", NULL};
    enum MHD_Result ret = MHD_YES;
    if (atomic_load(&r->srv->draining))
        return reply_err(r, c, 503, "unavailable", NULL, "the server is shutting down");
    if (r->pages)
        return pages_dispatch(r, c);
    if (r->route == CS_ROUTE_OTHER && r->srv->cfg.web_dir && strcmp(r->method, "GET") == 0)
        return do_static(r, c);
    if (r->route == CS_ROUTE_OTHER)
        return reply_err(r, c, 404, "not_found", NULL, "no route %.200s", r->path);
    bool post = r->route == CS_ROUTE_PUSH;
    if (strcmp(r->method, post ? "POST" : "GET") != 0)
        return reply_err(r, c, 405, "method_not_allowed", post ? ALLOW_POST : ALLOW_GET,
                         "%s %s is not allowed; use %s", r->method, r->path, post ? "POST" : "GET");
    if (r->route == CS_ROUTE_HEALTHZ)
        return do_healthz(r, c);
    if (r->route == CS_ROUTE_METRICS)
        return do_metrics(r, c);
    if (!check_client(r, c, &ret))
        return ret;
    if (r->route == CS_ROUTE_PULL)
        return do_pull(r, c);
    if (r->route == CS_ROUTE_STREAM)
        return do_stream(r, c);
    return push_headers(r, c, &ret) ? MHD_YES : ret;
}

static srv_req *req_new(cstack_server *srv, const char *url, const char *method)
{
    srv_req *r = calloc(1, sizeof *r);
    if (!r || !(r->path = log_safe(url))) {
        free(r);
        return NULL;
    }
    r->srv = srv;
    r->route = route_of(url);
    r->pages = cs_pages_route(url);
    snprintf(r->method, sizeof r->method, "%.11s", method);
    for (char *p = r->method; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    r->start_ms = cs_mono_ms();
    pthread_mutex_lock(&srv->mu);
    srv->active++;
    r->counted = true;
    pthread_mutex_unlock(&srv->mu);
    return r;
}

/* Whether MHD keeps the connection open after this request: HTTP/1.1
 * without a `close` token in Connection, or HTTP/1.0 with a `keep-alive`
 * one (and no `close`), as MHD decides it. */
static bool keeps_alive(struct MHD_Connection *c, const char *version)
{
    bool v11 = strcmp(version, MHD_HTTP_VERSION_1_1) == 0, ka = false;
    if (!v11 && strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        return false;
    const char *conn = header(c, MHD_HTTP_HEADER_CONNECTION);
    for (const char *p = conn; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t,");
        if (n == 5 && strncasecmp(p, "close", 5) == 0)
            return false;
        ka |= n == 10 && strncasecmp(p, "keep-alive", 10) == 0;
        p += n;
    }
    return v11 || ka;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    srv_req *r = *con_cls;
    if (!r) {
        cstack_server *srv = cls;
        cs_link *link = link_of(c);
        /* Ended after its previous answer: what MHD still holds was read
         * past the head check and is not served. */
        if (cs_link_cut(link))
            return MHD_NO;
        cs_guard_headers_in(srv->guard, cs_link_conn(link));
        if (!(r = req_new(cls, url, method)))
            return MHD_NO;
        const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
        cs_link_headers(srv->relay, link, cl && strcmp(cl, "0") != 0,
                        r->route == CS_ROUTE_STREAM);
        r->keep_alive = keeps_alive(c, version);
        *con_cls = r;
        bool push = (r->route == CS_ROUTE_PUSH || r->pages) && strcmp(method, "POST") == 0;
        if (!push)
            return MHD_YES;
        enum MHD_Result ok = dispatch(r, c);
        if (ok == MHD_YES && !r->status && r->reserved)
            cs_guard_body_begin(srv->guard, cs_link_conn(link));
        return ok;
    }
    if (r->status) {
        /* Already answered (an early error): the rest of the body is dropped. */
        *upload_size = 0;
        return MHD_YES;
    }
    bool push = (r->route == CS_ROUTE_PUSH || r->pages) && strcmp(r->method, "POST") == 0;
    if (*upload_size && !push) {
        /* Only a push has a body; any other is read and ignored. */
        *upload_size = 0;
        return MHD_YES;
    }
    cs_conn *guarded = cs_link_conn(link_of(c));
    if (*upload_size) {
        /* The body is Content-Length bytes, at most max_body and reserved
         * in push_headers (chunked bodies never get here, see the top). */
        cs_guard_body_bytes(r->srv->guard, guarded, *upload_size);
        if (!r->no_memory && cs_buf_append(&r->body, upload, *upload_size)) {
            r->no_memory = true;
            cs_buf_free(&r->body);
        }
        *upload_size = 0;
        return MHD_YES;
    }
    cs_guard_body_end(r->srv->guard, guarded);
    return push ? do_push(r, c) : dispatch(r, c);
}

/* ---- log, completion, connections ------------------------------------------ */

/* Lines longer than this are cut (a log line is bounded like every other
 * output; paths and users are already cut to 512 bytes by log_safe). */
#define LOG_LINE_MAX 2048

void cs_srv_log(const cstack_server *srv, const char *fmt, ...)
{
    FILE *f = srv->cfg.log;
    if (!f)
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    while (len > 0 && line[len - 1] == '\n')
        len--;
    line[len++] = '\n';
    /* The stream's own lock around one fwrite of the whole line: a line is
     * never split by another thread's output, whatever the stream's
     * buffering, and reaches the file in one write when flushed. */
    flockfile(f);
    fwrite(line, 1, len, f);
    fflush(f);
    funlockfile(f);
}

static void log_request(srv_req *r)
{
    if (!r->srv->cfg.log)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    cs_srv_log(r->srv, "%s.%03ldZ %s %s %d %" PRIu64 " %.1fms user=%s", when, ts.tv_nsec / 1000000,
               r->method, r->path, r->status, r->bytes, (double)(cs_mono_ms() - r->start_ms),
               r->user && *r->user ? r->user : "-");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    cstack_server *srv = cls;
    srv_req *r = *con_cls;
    if (!r)
        return;
    *con_cls = NULL;
    cs_link *link = link_of(c);
    if (!r->status && cs_guard_body_cut(srv->guard, cs_link_conn(link)))
        r->status = 408; /* the guard answered it */
    cs_guard_request_done(srv->guard, cs_link_conn(link));
    if (r->reserved)
        atomic_fetch_sub(&srv->upload_bytes, (long long)r->reserved);
    if (r->stream) {
        r->bytes = cs_stream_bytes(r->stream);
        cs_stream_release(r->stream);
    }
    log_request(r);
    cs_metrics_request(&srv->metrics, r->route, r->status);
    if (r->counted) {
        pthread_mutex_lock(&srv->mu);
        srv->active--;
        pthread_cond_broadcast(&srv->idle);
        pthread_mutex_unlock(&srv->mu);
    }
    bool next = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->keep_alive &&
                !atomic_load(&srv->draining);
    cs_auth_free(r->auth);
    cs_buf_free(&r->body);
    free(r->user);
    free(r->path);
    free(r);
    /* MHD reads the next request on this connection once this returns: its
     * head is checked first (intake.c), or the relay has checked it. */
    cs_link_completed(srv->relay, link, next);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    cstack_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&srv->metrics.connections, 1);
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (fd)
            *socket_ctx = cs_link_open(srv->relay, fd->connect_fd, addr ? addr->client_addr : NULL);
    } else {
        atomic_fetch_sub(&srv->metrics.connections, 1);
        cs_link_close(srv->relay, *socket_ctx);
        *socket_ctx = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    cstack_server *srv = cls;
    if (!srv->cfg.log)
        return;
    char msg[LOG_LINE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* A relayed connection's descriptor is a socket pair (relay.c): MHD's
     * TCP options fail on it, harmlessly, on every answer. */
    if (strncmp(msg, "Setting TCP_", 12) == 0 || strncmp(msg, "Failed to push the data", 23) == 0)
        return;
    cs_srv_log(srv, "httpd: %s", msg);
}

/* ---- start, stop, run ------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int load_schema(cstack_server *srv, const cstack_server_config *cfg, char *err,
                       size_t errlen)
{
    if (cfg->schema) {
        srv->schema = cs_schema_retain(cfg->schema);
        return 0;
    }
    if (!cfg->schema_path) {
        set_err(err, errlen, "no schema given");
        return CSTACK_EMISUSE;
    }
    cstack_diags *d = NULL;
    int rc = cstack_schema_load(cfg->schema_path, &srv->schema, &d);
    if (rc) {
        char *txt = cstack_diags_format(d);
        set_err(err, errlen, "%s", txt ? txt : cstack_errstr(rc));
        cstack_free(txt);
    }
    cstack_diags_free(d);
    return rc;
}

/* Copies the configuration with its defaults and its strings. */
static int configure(cstack_server *srv, const cstack_server_config *cfg)
{
    srv->cfg = *cfg;
    cstack_server_config *c = &srv->cfg;
    c->max_body = c->max_body ? c->max_body : CSTACK_SERVER_DEFAULT_MAX_BODY;
    c->checkpoint_ms = c->checkpoint_ms > 0 ? c->checkpoint_ms : 10000;
    c->keepalive_ms = c->keepalive_ms > 0 ? c->keepalive_ms : 15000;
    c->max_connections = c->max_connections ? c->max_connections : 4096;
    c->thread_stack = c->thread_stack ? c->thread_stack : (size_t)256 << 10;
    c->drain_ms = c->drain_ms > 0 ? c->drain_ms : 10000;
    if (c->header_timeout_ms <= 0)
        c->header_timeout_ms = CSTACK_SERVER_DEFAULT_HEADER_TIMEOUT_MS;
    if (!c->max_per_address)
        c->max_per_address = CSTACK_SERVER_DEFAULT_MAX_PER_ADDRESS;
    if (!c->max_upload_memory)
        c->max_upload_memory = CSTACK_SERVER_DEFAULT_MAX_UPLOAD_MEMORY;
    if (!c->min_body_rate)
        c->min_body_rate = CSTACK_SERVER_DEFAULT_MIN_BODY_RATE;
    if (!c->max_stream_memory)
        c->max_stream_memory = CSTACK_SERVER_DEFAULT_MAX_STREAM_MEMORY;
    if (!c->pull_page_rows)
        c->pull_page_rows = CSTACK_SERVER_DEFAULT_PAGE_ROWS;
    if (!c->pull_page_bytes)
        c->pull_page_bytes = CSTACK_SERVER_DEFAULT_PAGE_BYTES;
    srv->secret = cs_strdup(cfg->jwt_secret);
    srv->db_path = cs_strdup(cfg->db_path ? cfg->db_path : CSTACK_SERVER_DEFAULT_DB);
    srv->bind = cs_strdup(cfg->bind ? cfg->bind : CSTACK_SERVER_DEFAULT_BIND);
    c->jwt_secret = srv->secret;
    c->db_path = srv->db_path;
    c->bind = srv->bind;
    c->schema = NULL;
    c->schema_path = NULL;
    return srv->secret && srv->db_path && srv->bind ? 0 : CSTACK_ENOMEM;
}

/* The listening socket (srv->listen_fd, non-blocking) on the bind address
 * and port; srv->port is the port it got. */
static int open_listener(cstack_server *srv, char *err, size_t errlen)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(srv->bind, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        set_err(err, errlen, "cannot resolve bind address '%s': %s", srv->bind, gai_strerror(gai));
        return CSTACK_EINVAL;
    }
    struct sockaddr_storage addr;
    socklen_t len = (socklen_t)ai->ai_addrlen;
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6)
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)srv->cfg.port);
    else
        ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)srv->cfg.port);
    int one = 1, fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (v6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        if (fd >= 0)
            close(fd);
        set_err(err, errlen, "cannot listen on %s port %d (in use, or not an address of this host)",
                srv->bind, srv->cfg.port);
        return CSTACK_EIO;
    }
    srv->listen_fd = fd;
    srv->port = ntohs(v6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                         : ((struct sockaddr_in *)&addr)->sin_port);
    return 0;
}

/* MHD without a listening socket of its own: the intake accepts, checks
 * each request's head and hands good connections over (intake.c). */
static int listen_on(cstack_server *srv, char *err, size_t errlen)
{
    int rc = open_listener(srv, err, errlen);
    if (rc)
        return rc;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    srv->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        srv, MHD_OPTION_CONNECTION_LIMIT, srv->cfg.max_connections + MHD_SLACK, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)CONNECTION_TIMEOUT_S, MHD_OPTION_THREAD_STACK_SIZE, srv->cfg.thread_stack,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CS_MHD_MEMORY, MHD_OPTION_END);
    if (!srv->mhd) {
        set_err(err, errlen, "cannot start the HTTP daemon");
        return CSTACK_EIO;
    }
    if ((rc = cs_relay_start(srv, &srv->relay))) {
        set_err(err, errlen, "cannot start the connection relay");
        return rc;
    }
    if ((rc = cs_intake_start(srv, srv->listen_fd, &srv->intake))) {
        set_err(err, errlen, "cannot start accepting connections");
        return rc;
    }
    srv->listen_fd = -1; /* the intake's now */
    return 0;
}

/* The store's state changed by other means than this server's requests
 * (another server on the same PostgreSQL database, a backend): streams
 * look.  The hub starts after the store, so it may not be there yet. */
static void store_changed(void *ctx)
{
    cstack_server *srv = ctx;
    cs_hub *hub = __atomic_load_n(&srv->hub, __ATOMIC_ACQUIRE);
    if (hub)
        cs_hub_notify(hub, cs_wall_ms());
}

int cstack_server_start(const cstack_server_config *cfg, cstack_server **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    if (!cfg || !cfg->jwt_secret || !*cfg->jwt_secret) {
        set_err(err, errlen, "a JWT secret is required (--jwt-secret or CSTACK_JWT_SECRET)");
        return CSTACK_EMISUSE;
    }
    cstack_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return CSTACK_ENOMEM;
    srv->listen_fd = -1;
    srv->ops = cs_pg_is_target(cfg->db_path) ? &cs_srv_store_pg : &cs_srv_store_sqlite;
    cs_metrics_init(&srv->metrics);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->idle, NULL);
    int rc = configure(srv, cfg);
    if (rc)
        set_err(err, errlen, "out of memory");
    rc = rc ? rc : load_schema(srv, cfg, err, errlen);
    if (!rc) {
        cs_srv_err serr = {0};
        cs_srv_store_cfg scfg = {.max_sites_per_user = srv->cfg.max_sites_per_user,
                                 .site_ttl_ms = (int64_t)srv->cfg.site_ttl_days * 24 * 3600 * 1000,
                                 .changed = store_changed,
                                 .changed_ctx = srv};
        rc = srv->ops->open(srv->schema, srv->db_path, &scfg, &srv->store, &serr);
        if (rc)
            set_err(err, errlen, "%s", serr.message);
    }
    if (!rc && srv->ops->iversion >= 3 && (rc = srv->ops->versions(srv->store, &srv->versions)))
        set_err(err, errlen, "cannot record the schema version: %s", cstack_errstr(rc));
    /* Page storage lives in a SQLite file: beside a PostgreSQL database
     * there is none unless --pages-db names one. */
    if (!rc && (srv->cfg.pages_path || srv->ops != &cs_srv_store_pg) &&
        (rc = cs_pages_start(srv)))
        set_err(err, errlen, "out of memory");
    cs_hub *hub = NULL;
    if (!rc && (rc = cs_hub_start(srv, &hub)))
        set_err(err, errlen, "cannot start the stream hub");
    __atomic_store_n(&srv->hub, hub, __ATOMIC_RELEASE);
    if (!rc && (rc = cs_guard_start(srv, &srv->guard)))
        set_err(err, errlen, "cannot start the connection guard");
    rc = rc ? rc : listen_on(srv, err, errlen);
    if (rc) {
        cstack_server_stop(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int cstack_server_port(const cstack_server *srv)
{
    return srv ? srv->port : 0;
}

/* Waits until no request is in flight, or the drain time has passed. */
static void wait_idle(cstack_server *srv)
{
    struct timespec ts = cs_deadline(CLOCK_REALTIME, srv->cfg.drain_ms);
    pthread_mutex_lock(&srv->mu);
    while (srv->active > 0)
        if (pthread_cond_timedwait(&srv->idle, &srv->mu, &ts) != 0)
            break;
    pthread_mutex_unlock(&srv->mu);
}

void cstack_server_stop(cstack_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->draining, true);
    cs_intake_stop(srv->intake); /* no new connections */
    cs_hub_stop(srv->hub);
    if (srv->mhd) {
        wait_idle(srv);
        MHD_stop_daemon(srv->mhd);
    }
    cs_relay_stop(srv->relay); /* after MHD: its links are closed */
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    cs_guard_free(srv->guard);
    /* Before the hub goes: a store's own thread may wake it (store_changed). */
    if (srv->store)
        srv->ops->close(srv->store);
    cs_hub_free(srv->hub);
    cs_srv_versions_free(srv->versions);
    cs_pages_close(srv->pages);
    cstack_schema_free(srv->schema);
    cs_metrics_free(&srv->metrics);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->idle);
    free(srv->secret);
    free(srv->db_path);
    free(srv->bind);
    free(srv);
}

int cstack_server_run(const cstack_server_config *cfg, FILE *out, char *err, size_t errlen)
{
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    cstack_server *srv = NULL;
    int rc = cstack_server_start(cfg, &srv, err, errlen);
    if (!rc) {
        bool v6 = strchr(srv->bind, ':') != NULL;
        char where[512];
        cs_pg_target_safe(srv->db_path, where, sizeof where);
        fprintf(out, "listening on http://%s%s%s:%d (database: %s, %s%s)\n", v6 ? "[" : "",
                srv->bind, v6 ? "]" : "", srv->port, where, srv->ops->name,
                cfg->db_path ? "" : ", the default path");
        fflush(out);
        int sig = 0;
        sigwait(&set, &sig);
        cs_srv_log(srv, "%s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
        cstack_server_stop(srv);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}
