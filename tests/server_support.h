/* server_support.h -- helpers of test_server.c: the server under test (in
 * this process, 127.0.0.1, an ephemeral port, on the store CSTACK_TEST_STORE
 * names: support.h, t_store_db), a libcurl HTTP client,
 * devices (in-memory runtimes with a token and the protocol headers) and a
 * server-sent-events reader.  Header-only, like sync_support.h, because each
 * test executable is one test file plus support.c.  Helpers assert (they run
 * in the test process). */
#ifndef CSTACK_TEST_SERVER_SUPPORT_H
#define CSTACK_TEST_SERVER_SUPPORT_H

/* The schema most server tests share: notes that only their owner (the
 * token's sub) may read or write. */
#define T_PRIVATE_NOTES_SCHEMA                                                                     \
    "auth User { id String  role String }\n"                                                        \
    "model Note {\n"                                                                                \
    "  id      String  @id\n"                                                                       \
    "  ownerId String\n"                                                                            \
    "  title   String\n"                                                                            \
    "  body    String?\n"                                                                           \
    "  @@allow('all', ownerId == auth().id)\n"                                                      \
    "}\n"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "cstack_server.h"
#include "server/auth.h"
#include "support.h"
#include "sync_support.h"
#include "util/buf.h"

#define SECRET "test-secret"

/* ---- the server under test ------------------------------------------------ */

static cstack_server *srv;
static char *dir;
static char hash[65];
static char logpath[512];
static FILE *log_file;

/* Sites one user may own on the next start_opts (0: the default). */
static unsigned start_max_sites;

static inline void start_opts(const char *schema_src, const char *db_name, size_t max_body)
{
    curl_global_init(CURL_GLOBAL_ALL);
    if (!dir)
        dir = t_tmpdir();
    cstack_schema *s = t_schema(schema_src);
    snprintf(hash, sizeof hash, "%s", cstack_schema_hash(s));
    /* A SQLite file in dir, or (CSTACK_TEST_STORE=postgres) a database of
     * the test cluster, the same again when a test restarts its server. */
    char *db = t_store_db(dir, db_name);
    char pages[600];
    snprintf(pages, sizeof pages, "%s/%s.pages", dir, db_name);
    snprintf(logpath, sizeof logpath, "%s/server.log", dir);
    if (!log_file)
        log_file = fopen(logpath, "a");
    cstack_server_config cfg = {.schema = s,
                                .db_path = db,
                                .pages_path = pages,
                                .port = 0,
                                .jwt_secret = SECRET,
                                .max_body = max_body,
                                .log = log_file,
                                .checkpoint_ms = 300,
                                .keepalive_ms = 200,
                                .drain_ms = 5000,
                                .max_sites_per_user = start_max_sites};
    char err[1024] = "";
    int rc = cstack_server_start(&cfg, &srv, err, sizeof err);
    cstack_schema_free(s);
    free(db);
    cr_assert_eq(rc, 0, "server start: %s", err);
}

/* Where requests go: the in-process server, or `use_port` when a test
 * talks to servers of its own (cstack serve children, t_serve). */
static int use_port;

static inline int server_port(void)
{
    return use_port ? use_port : cstack_server_port(srv);
}

static inline void stop(void)
{
    cstack_server_stop(srv);
    srv = NULL;
}

static inline void fini(void)
{
    stop();
    if (log_file)
        fclose(log_file);
    log_file = NULL;
    free(dir);
    dir = NULL;
    curl_global_cleanup();
}

/* ---- HTTP ------------------------------------------------------------------ */

typedef struct res {
    long status;
    char *body;
    size_t len;
    char cursor[1200]; /* digits, or a continuation cursor */
    char checksum[32];
    char more[8];
    char remaining[32];
    char model_sums[512]; /* X-Cstack-Model-Sums (pulls with sums=1) */
} res;

static inline size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    res *r = ud;
    char *nb = realloc(r->body, r->len + size * n + 1);
    cr_assert_not_null(nb);
    memcpy(nb + r->len, p, size * n);
    r->len += size * n;
    nb[r->len] = 0;
    r->body = nb;
    return size * n;
}

static inline void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) != 0)
        return;
    const char *v = line + k;
    size_t len = n - k;
    while (len && (*v == ' ' || *v == ':')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    snprintf(out, cap, "%.*s", (int)len, v);
}

static inline size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    res *r = ud;
    header_value(p, size * n, "X-Cstack-Cursor", r->cursor, sizeof r->cursor);
    header_value(p, size * n, "X-Cstack-Checksum", r->checksum, sizeof r->checksum);
    header_value(p, size * n, "X-Cstack-More", r->more, sizeof r->more);
    header_value(p, size * n, "X-Cstack-Remaining", r->remaining, sizeof r->remaining);
    header_value(p, size * n, "X-Cstack-Model-Sums", r->model_sums, sizeof r->model_sums);
    return size * n;
}

typedef struct upload {
    const char *p;
    size_t left;
} upload;

static inline size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    upload *u = ud;
    size_t k = size * n < u->left ? size * n : u->left;
    memcpy(buf, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

/* One request.  `headers` is NULL-terminated; `chunked` streams the body
 * without a Content-Length. */
static inline res http_ex(const char *method, const char *path, const char *const *headers,
                          const void *body, size_t len, bool chunked)
{
    res r = {0};
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", server_port(), path);
    struct curl_slist *h = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        h = curl_slist_append(h, headers[i]);
    upload u = {body, len};
    if (chunked) {
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &u);
    } else if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static inline res http(const char *method, const char *path, const char *const *headers,
                       const void *body, size_t len)
{
    return http_ex(method, path, headers, body, len, false);
}

static inline void res_free(res *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* ---- devices ------------------------------------------------------------- */

typedef struct dev {
    cstack *db;
    char *token;
    char auth[4096];
    char schema[128];
    char site[64];
    int64_t cursor;
} dev;

static inline char *mint(const char *sub, const char *role, int64_t now, int64_t ttl)
{
    char claim[64];
    snprintf(claim, sizeof claim, "role=%s", role ? role : "");
    const char *claims[] = {claim};
    char *tok = NULL;
    char err[256];
    int rc = cstack_server_mint_token(SECRET, sub, claims, role ? 1 : 0, now, ttl, &tok, err,
                                      sizeof err);
    cr_assert_eq(rc, 0, "mint: %s", err);
    return tok;
}

static inline dev device(const char *schema_src, const char *sub)
{
    dev d = {0};
    d.db = t_open_mem(schema_src);
    d.token = mint(sub, "user", (int64_t)time(NULL), 3600);
    snprintf(d.auth, sizeof d.auth, "Authorization: Bearer %s", d.token);
    snprintf(d.schema, sizeof d.schema, "X-Cstack-Schema: %s", hash);
    snprintf(d.site, sizeof d.site, "X-Cstack-Site: %s", cstack_sync_site_id(d.db));
    return d;
}

static inline void dev_free(dev *d)
{
    cstack_close(d->db);
    free(d->token);
    memset(d, 0, sizeof *d);
}

static inline void note(dev *d, const char *id, const char *owner, const char *title)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"ownerId", cstack_v_text(owner)},
                              {"title", cstack_v_text(title)}};
    cstack_data data = {f, 3};
    cr_assert_eq(cstack_create(d->db, "Note", &data, NULL), 0, "%s", cstack_errmsg(d->db));
}

/* Pushes the oldest pending transaction; returns the response. */
static inline res push_next(dev *d, char *batch, size_t cap)
{
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(d->db, &tx), 0);
    cr_assert_not_null(tx, "nothing to push");
    size_t len = 0;
    const void *cs = cstack_upload_tx_changeset(tx, &len);
    snprintf(batch, cap, "%s:%" PRId64, cstack_sync_site_id(d->db), cstack_upload_tx_version(tx));
    char bh[160];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %.128s", batch);
    const char *h[] = {d->auth, d->schema, d->site, bh, NULL};
    res r = http("POST", "/v1/push", h, cs, len);
    if (r.status == 200)
        cstack_upload_complete(d->db, cstack_upload_tx_version(tx));
    cstack_upload_tx_free(tx);
    return r;
}

static inline void push_all(dev *d)
{
    int64_t pending = 0;
    while (cstack_upload_pending(d->db, &pending) == 0 && pending > 0) {
        char batch[128];
        res r = push_next(d, batch, sizeof batch);
        cr_assert_eq(r.status, 200, "push: %ld %s", r.status, r.body ? r.body : "");
        res_free(&r);
    }
}

/* Pulls since the device's cursor and applies; returns the checksum header. */
static inline uint64_t pull(dev *d)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/pull?since=%" PRId64, d->cursor);
    const char *h[] = {d->auth, d->schema, d->site, NULL};
    res r = http("GET", path, h, NULL, 0);
    cr_assert_eq(r.status, 200, "pull: %ld %s", r.status, r.body ? r.body : "");
    cr_assert_eq(cstack_changes_apply(d->db, r.body, r.len, NULL), 0, "apply: %s",
                 cstack_errmsg(d->db));
    d->cursor = strtoll(r.cursor, NULL, 10);
    uint64_t sum = strtoull(r.checksum, NULL, 16);
    cr_assert_eq(strlen(r.checksum), 16, "checksum header: '%s'", r.checksum);
    res_free(&r);
    return sum;
}

/* Sends all n bytes on a raw socket. */
static inline void t_send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        cr_assert_gt(k, 0, "send: %s", strerror(errno));
        c += k;
        n -= (size_t)k;
    }
}

/* Reads what the server answers on a raw socket until it closes the
 * connection or the socket's receive timeout passes; the text
 * (NUL-terminated, cut to cap - 1 bytes) and its length. */
static inline size_t t_read_to_end(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t k;
    while (len + 1 < cap && (k = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        len += (size_t)k;
    buf[len] = 0;
    return len;
}

static inline uint64_t checksum(dev *d)
{
    uint64_t sum = 0;
    cr_assert_eq(cstack_sync_checksum(d->db, &sum), 0);
    return sum;
}

static inline int64_t count(dev *d, const char *model)
{
    int64_t n = -1;
    cr_assert_eq(cstack_count(d->db, model, NULL, &n), 0);
    return n;
}

static inline int64_t server_version(void)
{
    res r = http("GET", "/healthz", NULL, NULL, 0);
    cr_assert_eq(r.status, 200);
    const char *v = strstr(r.body, "\"version\":");
    cr_assert_not_null(v);
    int64_t out = strtoll(v + 10, NULL, 10);
    res_free(&r);
    return out;
}

static inline bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay ? hay : ""; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return true;
    return !*needle;
}

/* An error response: the status, the JSON shape and words of the message. */
static inline void assert_err(const res *r, long status, const char *code, const char *words,
                              const char *what)
{
    cr_assert_eq(r->status, status, "%s: status %ld, wanted %ld (%s)", what, r->status, status,
                 r->body ? r->body : "");
    char want[96];
    snprintf(want, sizeof want, "\"code\":\"%s\"", code);
    cr_assert(r->body && strstr(r->body, "{\"status\":\"err\",") == r->body, "%s: %s", what,
              r->body ? r->body : "(no body)");
    cr_assert(strstr(r->body, want), "%s: code %s not in %s", what, code, r->body);
    cr_assert(contains_ci(r->body, words), "%s: '%s' not in %s", what, words, r->body);
}

/* ---- streams ------------------------------------------------------------------ */

typedef struct sse {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *buf;
    size_t len;
    atomic_bool stop;
    long status;
    char url[256];
    struct curl_slist *hdrs;
} sse;

static inline size_t sse_write(char *p, size_t size, size_t n, void *ud)
{
    sse *s = ud;
    pthread_mutex_lock(&s->mu);
    char *nb = realloc(s->buf, s->len + size * n + 1);
    if (nb) {
        memcpy(nb + s->len, p, size * n);
        s->len += size * n;
        nb[s->len] = 0;
        s->buf = nb;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return atomic_load(&s->stop) ? 0 : size * n;
}

static inline int sse_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&((sse *)ud)->stop) ? 1 : 0;
}

static inline void *sse_main(void *arg)
{
    sse *s = arg;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, s->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, s->hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sse_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &s->status);
    curl_easy_cleanup(c);
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->stop, true);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static inline void sse_open(sse *s, dev *d, int64_t since)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/v1/stream?since=%" PRId64,
             server_port(), since);
    s->hdrs = curl_slist_append(s->hdrs, d->auth);
    s->hdrs = curl_slist_append(s->hdrs, d->schema);
    s->hdrs = curl_slist_append(s->hdrs, d->site);
    pthread_create(&s->th, NULL, sse_main, s);
}

static inline void sse_close(sse *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    curl_slist_free_all(s->hdrs);
    free(s->buf);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

/* Waits (up to 10 s) until the stream holds a complete event whose text
 * contains `what` after byte `from`; returns a malloc'd copy of that event
 * and sets *end past it, or NULL on timeout. */
static inline char *sse_next(sse *s, const char *what, size_t from, size_t *end)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    char *out = NULL;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        size_t pos = from;
        while (s->buf && pos < s->len) {
            char *stop = strstr(s->buf + pos, "\n\n");
            if (!stop)
                break;
            size_t n = (size_t)(stop - (s->buf + pos));
            char *ev = strndup(s->buf + pos, n);
            pos += n + 2;
            if (strstr(ev, what)) {
                out = ev;
                *end = pos;
                break;
            }
            free(ev);
        }
        if (out || atomic_load(&s->stop) || pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

/* The value of "field: " in an event (malloc'd), or NULL. */
static inline char *ev_field(const char *ev, const char *field)
{
    size_t k = strlen(field);
    for (const char *line = ev; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n > k + 1 && strncmp(line, field, k) == 0 && line[k] == ':')
            return strndup(line + k + 2, n - k - 2);
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static inline void apply_event(dev *d, const char *ev)
{
    char *data = ev_field(ev, "data");
    cr_assert_not_null(data);
    cs_buf bin = CS_BUF_INIT;
    cr_assert_eq(cs_base64_decode(&bin, data, strlen(data)), 0);
    cr_assert_eq(cstack_changes_apply(d->db, bin.data, bin.len, NULL), 0, "%s",
                 cstack_errmsg(d->db));
    cs_buf_free(&bin);
    free(data);
}

/* The next checkpoint at `cursor` (or any when cursor < 0); its checksum. */
static inline uint64_t checkpoint_at(sse *s, int64_t cursor, size_t *pos)
{
    for (;;) {
        char *ev = sse_next(s, "event: checkpoint", *pos, pos);
        cr_assert_not_null(ev, "no checkpoint at %" PRId64, cursor);
        char *data = ev_field(ev, "data");
        const char *c = strstr(data, "\"cursor\":");
        const char *k = strstr(data, "\"checksum\":\"");
        cr_assert(c && k, "checkpoint data: %s", data);
        int64_t at = strtoll(c + 9, NULL, 10);
        uint64_t sum = strtoull(k + 12, NULL, 16);
        free(data);
        free(ev);
        if (cursor < 0 || at == cursor)
            return sum;
    }
}

#endif
