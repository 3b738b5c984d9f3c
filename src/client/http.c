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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "client/client.h"

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

void cs_http_wake(cs_client *c)
{
    curl_multi_wakeup(c->multi);
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

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    cs_http_resp_header(ctx, p, size * n);
    return size * n;
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
    cs_http_resp_reset(r, c->o.max_response);
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
