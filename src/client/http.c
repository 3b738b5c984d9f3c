/*
 * http.c -- the client's HTTP requests over libcurl.
 *
 * Every request carries the headers docs/server.md requires:
 * `Authorization: Bearer <jwt>`, `X-Cstack-Schema: <hash>` and
 * `X-Cstack-Site: <32 hex>`.  Response bodies are buffered up to the
 * session's bound (cstack_sync_options.max_response) and no further.  Every
 * transfer runs with a progress callback that aborts it as soon as the
 * session is told to stop, so cstack_sync_stop never waits on the network.
 *
 * Handles are reused between requests so that pushes and pulls share one
 * kept-alive connection instead of connecting each time.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "client/client.h"
#include "util/hex.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int cs_http_global_init(void)
{
    pthread_once(&curl_once, curl_init);
    return curl_init_rc == CURLE_OK ? 0 : CSTACK_EIO;
}

/* Progress of a download (for the initial-sync bar) and the stop check.
 * Reports at most every 100 ms so a fast download does not flood the
 * status callback. */
static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    cs_client *c = ctx;
    (void)ultotal;
    (void)ulnow;
    if (cs_client_stopping(c))
        return 1;
    /* Bytes add up over the pages of one catch-up. */
    if (!c->progress_of || c->pull_base + (int64_t)dlnow == c->st.bytes_received)
        return 0;
    static _Thread_local int64_t last_ms;
    int64_t now = cs_wall_ms();
    if (now - last_ms < 100 && dlnow != dltotal)
        return 0;
    last_ms = now;
    pthread_mutex_lock(&c->st_mu);
    c->st.bytes_received = c->pull_base + (int64_t)dlnow;
    c->st.bytes_total = dltotal > 0 ? c->pull_base + (int64_t)dltotal : -1;
    if (dlnow > 0)
        c->st.phase = CSTACK_SYNC_PHASE_RECEIVING;
    pthread_mutex_unlock(&c->st_mu);
    cs_client_report(c, CSTACK_SYNC_EV_PROGRESS);
    return 0;
}

static void common_opts(cs_client *c, CURL *h)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->o.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)c->headers);
}

int cs_http_open(cs_client *c)
{
    char line[2048];
    struct curl_slist *l = NULL, *n;
    const char *hash = cstack_schema_hash(cstack_schema_of(c->db));
    const char *vals[] = {"Authorization: Bearer ", c->token, "X-Cstack-Schema: ", hash,
                          "X-Cstack-Site: ",        c->site,  "Expect:",           ""};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i += 2) {
        if (strlen(vals[i]) + strlen(vals[i + 1]) >= sizeof line) {
            curl_slist_free_all(l);
            return CSTACK_ETOOBIG;
        }
        snprintf(line, sizeof line, "%s%s", vals[i], vals[i + 1]);
        if (!(n = curl_slist_append(l, line))) {
            curl_slist_free_all(l);
            return CSTACK_ENOMEM;
        }
        l = n;
    }
    c->headers = l;
    c->curl = curl_easy_init();
    c->stream = curl_easy_init();
    c->multi = curl_multi_init();
    if (!c->curl || !c->stream || !c->multi)
        return CSTACK_ENOMEM;
    common_opts(c, c->curl);
    common_opts(c, c->stream);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)c->o.request_timeout_ms);
    return 0;
}

void cs_http_close(cs_client *c)
{
    if (c->multi)
        curl_multi_cleanup(c->multi);
    if (c->stream)
        curl_easy_cleanup(c->stream);
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    c->multi = c->stream = c->curl = c->headers = NULL;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    cs_http_resp *r = ctx;
    /* Returning less than given makes libcurl fail with CURLE_WRITE_ERROR;
     * the bound is then reported as CSTACK_ETOOBIG by the caller. */
    int rc = cs_buf_append(&r->body, p, size * n);
    r->too_big = rc == CSTACK_ETOOBIG;
    return rc == 0 ? size * n : 0;
}

/* Matches the header `name` (case-insensitive): its value, trimmed, is the
 * *len bytes at *val.  False when the line is another header. */
static bool header_span(const char *line, size_t n, const char *name, const char **val,
                        size_t *len)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0 || line[k] != ':')
        return false;
    const char *v = line + k + 1, *end = line + n;
    while (v < end && isspace((unsigned char)*v))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    *val = v;
    *len = (size_t)(end - v);
    return true;
}

/* As header_span, the value copied (cut to fit) into buf; NULL when the
 * line is another header. */
static const char *header_value(const char *line, size_t n, const char *name, char *buf, size_t cap)
{
    const char *v = NULL;
    size_t len = 0;
    if (!header_span(line, n, name, &v, &len))
        return NULL;
    len = len < cap - 1 ? len : cap - 1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    return buf;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    cs_http_resp *r = ctx;
    char v[CS_CURSOR_MAX], *end = NULL;
    const char *val = NULL;
    size_t len = 0;
    if (header_value(p, size * n, "X-Cstack-Cursor", v, sizeof v)) {
        long long x = strtoll(v, &end, 10);
        r->cursor = (end != v && *end == '\0' && x >= 0) ? x : -1;
        /* A continuation cursor: the answer goes on from there. */
        if (r->cursor < 0 && cs_page_base(v) >= 0) {
            r->cursor = cs_page_base(v);
            snprintf(r->page, sizeof r->page, "%s", v);
        }
    } else if (header_value(p, size * n, "X-Cstack-More", v, sizeof v)) {
        r->more = strcmp(v, "1") == 0;
    } else if (header_value(p, size * n, "X-Cstack-Remaining", v, sizeof v)) {
        long long x = strtoll(v, &end, 10);
        r->remaining = (end != v && *end == '\0' && x >= 0) ? x : -1;
    } else if (header_span(p, size * n, "X-Cstack-Model-Sums", &val, &len)) {
        /* Only a repair asks for it: a few bytes per model, cut off past
         * the bound (the repair then takes the missing models as
         * differing). */
        cs_buf_reset(&r->model_sums);
        cs_buf_append(&r->model_sums, val, len < CS_MODEL_SUMS_MAX ? len : CS_MODEL_SUMS_MAX);
    } else if (header_value(p, size * n, "X-Cstack-Checksum", v, sizeof v)) {
        uint64_t x = 0;
        r->has_checksum = cs_hex_u64(v, strlen(v), &x) == 0;
        r->checksum = x;
    } else {
        header_value(p, size * n, "X-Cstack-Schema", r->schema, sizeof r->schema);
    }
    return size * n;
}

static void resp_reset(cs_client *c, cs_http_resp *r)
{
    cs_buf_reset(&r->body);
    r->body.max = c->o.max_response;
    r->status = 0;
    r->too_big = false;
    r->cursor = -1;
    r->page[0] = '\0';
    r->more = false;
    r->remaining = -1;
    r->has_checksum = false;
    r->checksum = 0;
    cs_buf_reset(&r->model_sums);
    r->schema[0] = '\0';
}

/* Sets the per-request options; the body (when any) is borrowed. */
static struct curl_slist *prepare(cs_client *c, const char *path, const void *body, size_t len,
                                  const char *hdr, cs_http_resp *r)
{
    CURL *h = c->curl;
    char url[4096];
    snprintf(url, sizeof url, "%s%s", c->url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    struct curl_slist *extra = NULL;
    if (body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        /* The common headers plus this request's own. */
        extra = curl_slist_append(NULL, "Content-Type: application/octet-stream");
        for (struct curl_slist *i = c->headers; extra && i; i = i->next) {
            struct curl_slist *n = curl_slist_append(extra, i->data);
            extra = n ? n : (curl_slist_free_all(extra), NULL);
        }
        if (extra && hdr) {
            struct curl_slist *n = curl_slist_append(extra, hdr);
            extra = n ? n : (curl_slist_free_all(extra), NULL);
        }
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, extra ? extra : c->headers);
    return extra;
}

int cs_http_request(cs_client *c, const char *path, const void *body, size_t len, const char *hdr,
                    cs_http_resp *r)
{
    resp_reset(c, r);
    c->curl_err[0] = '\0';
    struct curl_slist *extra = prepare(c, path, body, len, hdr, r);
    if (body && !extra)
        return cs_client_fail(c, CSTACK_ENOMEM, "out of memory building a request");
    CURLcode cc = curl_easy_perform(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, (struct curl_slist *)c->headers);
    curl_slist_free_all(extra);
    if (r->too_big)
        return cs_client_fail(c, CSTACK_ETOOBIG, "%s: response larger than %zu bytes", path,
                              c->o.max_response);
    if (cc != CURLE_OK) {
        if (cs_client_stopping(c))
            return CSTACK_EIO;
        return cs_client_fail(c, CSTACK_EIO, "%s%s: %s", c->url, path,
                              c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc));
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
    pthread_mutex_lock(&c->st_mu);
    c->st.http_status = (int)r->status;
    pthread_mutex_unlock(&c->st_mu);
    return 0;
}

void cs_http_resp_free(cs_http_resp *r)
{
    cs_buf_free(&r->body);
    cs_buf_free(&r->model_sums);
}

const jr_val *cs_client_json(const char *s, size_t n, jr_val *room, size_t nroom, jr_doc *doc)
{
    /* The server's objects are flat and short; these bounds only keep a
     * wrong server from making the client build a large tree. */
    static const jr_limits lim = {.max_depth = 32, .max_values = 1 << 16};
    jr_error err;
    memset(doc, 0, sizeof *doc);
    if (!s || n == 0 || n > UINT32_MAX / 2 || jr_parse(s, n, &lim, room, nroom, doc, &err) != JR_OK)
        return NULL;
    return jr_is(&doc->vals[0], JR_OBJECT) ? &doc->vals[0] : NULL;
}

int cs_http_error_code(const cs_http_resp *r)
{
    static const struct {
        const char *name;
        int code;
    } NAMES[] = {{"unauthorized", CSTACK_EUNAUTHORIZED}, {"forbidden", CSTACK_EFORBIDDEN},
                 {"schema_mismatch", CSTACK_EMISMATCH},  {"too_big", CSTACK_ETOOBIG},
                 {"unavailable", CSTACK_EUNAVAILABLE},   {"locked", CSTACK_EBUSY},
                 {"clock_drift", CSTACK_ECLOCK}};
    jr_val room[16];
    jr_doc doc;
    const jr_val *v = jr_get(cs_client_json(r->body.data, r->body.len, room, 16, &doc), "code");
    int code = 0;
    for (size_t i = 0; jr_is(v, JR_STRING) && !code && i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (jr_len(v) == strlen(NAMES[i].name) && memcmp(jr_str(v), NAMES[i].name, jr_len(v)) == 0)
            code = NAMES[i].code;
    jr_doc_free(&doc);
    if (code)
        return code;
    switch (r->status) {
    case 401:
        return CSTACK_EUNAUTHORIZED;
    case 403:
        return CSTACK_EFORBIDDEN;
    case 409:
        return CSTACK_EMISMATCH;
    case 413:
        return CSTACK_ETOOBIG;
    case 503:
        return CSTACK_EUNAVAILABLE;
    default:
        return CSTACK_EIO;
    }
}

void cs_http_error_text(cs_client *c, const char *what, const cs_http_resp *r)
{
    char msg[200] = "";
    jr_val room[16];
    jr_doc doc;
    const jr_val *m = jr_get(cs_client_json(r->body.data, r->body.len, room, 16, &doc), "message");
    if (jr_is(m, JR_STRING)) {
        snprintf(msg, sizeof msg, "%.*s", (int)(jr_len(m) < sizeof msg ? jr_len(m) : sizeof msg),
                 jr_str(m));
    } else if (r->body.len) {
        /* Not the JSON of docs/server.md: show its start, printable only. */
        size_t k = 0;
        for (size_t i = 0; i < r->body.len && k < 120; i++)
            msg[k++] = isprint((unsigned char)r->body.data[i]) ? r->body.data[i] : '?';
        msg[k] = '\0';
    }
    jr_doc_free(&doc);
    pthread_mutex_lock(&c->st_mu);
    snprintf(c->st.last_error, sizeof c->st.last_error, "%s: HTTP %ld%s%s", what, r->status,
             msg[0] ? ": " : "", msg);
    pthread_mutex_unlock(&c->st_mu);
}
