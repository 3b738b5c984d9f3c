/* backup.c -- backup and restore through the server's page storage
 * (docs/pagestore.md, "Backup and restore").
 *
 * Backup: a snapshot of the database is copied with SQLite's backup API
 * into memory (one read transaction on the file, so a writer may go on),
 * split into pages and hashed (SHA-256).  The server answers which hashes it
 * lacks (/v1/pages/missing); only those pages are sent (/v1/pages/put); the
 * manifest, every page's hash in order, is committed last (/v1/backups).
 * Restore fetches a manifest, then its pages by hash, checks each hash,
 * writes a temporary file, runs PRAGMA integrity_check and renames it. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client.h"
#include "pagestore/pagestore.h"
#include "util/buf.h"
#include "util/hex.h"

#define MISSING_CHUNK 65536u       /* hashes per /v1/pages/missing */
#define PUT_BYTES ((size_t)8 << 20) /* page bytes per /v1/pages/put */
#define MAX_RESPONSE ((size_t)64 << 20)

int cs_bk_fail(bk *b, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->info->error, sizeof b->info->error, fmt, ap);
    va_end(ap);
    return code;
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    return cs_buf_append(ctx, p, size * n) ? 0 : size * n;
}

int cs_bk_open(bk *b, const cstack_schema *schema, const char *site,
                   const cstack_sync_options *o, cstack_backup_info *info)
{
    memset(b, 0, sizeof *b);
    memset(info, 0, sizeof *info);
    b->info = info;
    if (!schema || !o || !o->url || !o->token)
        return cs_bk_fail(b, CSTACK_EMISUSE, "schema, url and token are required");
    if (cs_http_global_init() || !(b->h = curl_easy_init()))
        return cs_bk_fail(b, CSTACK_EIO, "cannot start libcurl");
    b->url = o->url;
    char line[2048];
    const char *vals[] = {"Authorization: Bearer ", o->token, "X-Cstack-Schema: ",
                          cstack_schema_hash(schema), "X-Cstack-Site: ", site,
                          "Content-Type: application/octet-stream", "", "Expect:", ""};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i += 2) {
        if (snprintf(line, sizeof line, "%s%s", vals[i], vals[i + 1]) >= (int)sizeof line)
            return cs_bk_fail(b, CSTACK_ETOOBIG, "the token is too long");
        struct curl_slist *n = curl_slist_append(b->hdrs, line);
        if (!n)
            return cs_bk_fail(b, CSTACK_ENOMEM, "out of memory");
        b->hdrs = n;
    }
    curl_easy_setopt(b->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, b->hdrs);
    curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(b->h, CURLOPT_WRITEDATA, &b->resp);
    curl_easy_setopt(b->h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000));
    curl_easy_setopt(b->h, CURLOPT_TCP_NODELAY, 1L);
    return 0;
}

void cs_bk_close(bk *b)
{
    if (b->h)
        curl_easy_cleanup(b->h);
    curl_slist_free_all(b->hdrs);
    cs_buf_free(&b->resp);
}

/* The CSTACK_E* code of an error status. */
static int status_code(long s)
{
    return s == 401 ? CSTACK_EUNAUTHORIZED : s == 403 ? CSTACK_EFORBIDDEN
         : s == 404 ? CSTACK_ENOTFOUND     : s == 409 ? CSTACK_EMISMATCH
         : s == 413 ? CSTACK_ETOOBIG       : s == 400 ? CSTACK_EINVAL
                                                      : CSTACK_EUNAVAILABLE;
}

/* GET (body NULL) or POST; 0 when the answer is 200, else the failure. */
int cs_bk_request(bk *b, const char *path, const void *body, size_t len)
{
    char url[4096];
    if (snprintf(url, sizeof url, "%s%s", b->url, path) >= (int)sizeof url)
        return cs_bk_fail(b, CSTACK_EINVAL, "the server URL is too long");
    cs_buf_reset(&b->resp);
    b->resp.max = MAX_RESPONSE;
    curl_easy_setopt(b->h, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(b->h, CURLOPT_POST, 1L);
        curl_easy_setopt(b->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(b->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        b->info->bytes_sent += len;
    } else {
        curl_easy_setopt(b->h, CURLOPT_HTTPGET, 1L);
    }
    CURLcode cc = curl_easy_perform(b->h);
    if (cc != CURLE_OK)
        return cs_bk_fail(b, CSTACK_EIO, "%s: %s", url, curl_easy_strerror(cc));
    curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &b->status);
    if (b->status == 200)
        return 0;
    return cs_bk_fail(b, status_code(b->status), "%s: HTTP %ld: %.160s", path, b->status,
                   b->resp.data ? b->resp.data : "");
}

/* The "id" of a JSON answer {"status":"ok","id":N}. */
static int64_t answer_id(const cs_buf *r)
{
    const char *p = r->data ? strstr(r->data, "\"id\":") : NULL;
    return p ? strtoll(p + 5, NULL, 10) : 0;
}

/* ---- backup --------------------------------------------------------------- */

typedef struct snap {
    sqlite3 *mem;
    unsigned char *data; /* the database, page after page */
    sqlite3_int64 size;
    uint32_t page_size;
    uint32_t npages;
    unsigned char *hashes;
} snap;

/* One read transaction of the file: sqlite3_backup_step(-1) copies every
 * page while holding it, whatever a writer does meanwhile (WAL). */
static int take_snapshot(bk *b, const char *path, snap *s)
{
    sqlite3 *src = NULL;
    int rc = sqlite3_open_v2(path, &src, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_open(":memory:", &s->mem);
    sqlite3_backup *k = rc == SQLITE_OK ? sqlite3_backup_init(s->mem, "main", src, "main") : NULL;
    if (k) {
        sqlite3_busy_timeout(src, 5000);
        rc = sqlite3_backup_step(k, -1);
        rc = sqlite3_backup_finish(k) == SQLITE_OK && rc == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    } else if (rc == SQLITE_OK) {
        rc = SQLITE_ERROR;
    }
    if (rc != SQLITE_OK) {
        int e = cs_bk_fail(b, CSTACK_EIO, "cannot read '%s': %s", path,
                        src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
        sqlite3_close(src);
        return e;
    }
    sqlite3_close(src);
    s->data = sqlite3_serialize(s->mem, "main", &s->size, 0);
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(s->mem, "PRAGMA page_size", -1, &st, NULL);
    if (st && sqlite3_step(st) == SQLITE_ROW)
        s->page_size = (uint32_t)sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (!s->data || !s->page_size || s->size % s->page_size || s->size == 0)
        return cs_bk_fail(b, CSTACK_EIO, "cannot snapshot '%s'", path);
    s->npages = (uint32_t)(s->size / s->page_size);
    if (!(s->hashes = malloc((size_t)s->npages * HASH)))
        return cs_bk_fail(b, CSTACK_ENOMEM, "out of memory");
    for (uint32_t i = 0; i < s->npages; i++)
        cs_sha256(s->data + (size_t)i * s->page_size, s->page_size, s->hashes + (size_t)i * HASH);
    return 0;
}

static void snap_free(snap *s)
{
    sqlite3_free(s->data);
    sqlite3_close(s->mem);
    free(s->hashes);
}

/* Sends the pages flagged in `missing`, packed into requests of up to
 * PUT_BYTES. */
static int send_missing(bk *b, const unsigned char *data, const char *missing, uint32_t n,
                        uint32_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/pages/put?size=%u", size);
    cs_buf body = CS_BUF_INIT;
    int rc = 0;
    for (uint32_t i = 0; !rc && i <= n; i++) {
        bool last = i == n;
        if (!last && missing[i]) {
            if ((rc = cs_buf_append(&body, data + (size_t)i * size, size)))
                break;
            b->info->pages_sent++;
        }
        if (body.len && (last || body.len >= PUT_BYTES)) {
            rc = cs_bk_request(b, path, body.data, body.len);
            cs_buf_reset(&body);
        }
    }
    cs_buf_free(&body);
    return rc == CSTACK_ENOMEM ? cs_bk_fail(b, rc, "out of memory") : rc;
}

/* The same page twice is sent once.  Repeats are mostly zero-filled free
 * pages: comparing with the last page flagged catches runs of them without
 * a hash table. */
static void skip_repeats(const unsigned char *hashes, char *missing, uint32_t n)
{
    const unsigned char *prev = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *h = hashes + (size_t)i * HASH;
        if (!missing[i])
            continue;
        if (prev && memcmp(prev, h, HASH) == 0)
            missing[i] = 0;
        else
            prev = h;
    }
}

int cs_bk_put_missing(bk *b, const unsigned char *data, const unsigned char *hashes, uint32_t n,
                      uint32_t size)
{
    for (uint32_t first = 0; first < n; first += MISSING_CHUNK) {
        uint32_t k = n - first < MISSING_CHUNK ? n - first : MISSING_CHUNK;
        const unsigned char *h = hashes + (size_t)first * HASH;
        int rc = cs_bk_request(b, "/v1/pages/missing", h, (size_t)k * HASH);
        if (rc)
            return rc;
        if (b->resp.len != k)
            return cs_bk_fail(b, CSTACK_EIO, "the server answered %zu flags for %u hashes",
                              b->resp.len, k);
        char *missing = malloc(k);
        if (!missing)
            return cs_bk_fail(b, CSTACK_ENOMEM, "out of memory");
        memcpy(missing, b->resp.data, k);
        skip_repeats(h, missing, k);
        rc = send_missing(b, data + (size_t)first * size, missing, k, size);
        free(missing);
        if (rc)
            return rc;
    }
    return 0;
}

int cs_bk_commit(bk *b, const char *name, const unsigned char *hashes, uint32_t npages,
                 uint32_t size)
{
    char *esc = curl_easy_escape(b->h, name, 0);
    char path[512];
    snprintf(path, sizeof path, "/v1/backups?size=%u&name=%.400s", size, esc ? esc : "backup");
    curl_free(esc);
    int rc = cs_bk_request(b, path, hashes, (size_t)npages * HASH);
    if (!rc && (b->info->id = answer_id(&b->resp)) <= 0)
        rc = cs_bk_fail(b, CSTACK_EIO, "the server sent no backup id");
    return rc;
}

/* The device's site id, read without opening a runtime (no write). */
static int site_of(bk *b, const char *path, char site[33])
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT lower(hex(site)) FROM _cstack_sites WHERE ord = 0", -1, &st,
                                NULL);
    rc = rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
                 sqlite3_column_bytes(st, 0) == 32
             ? 0
             : cs_bk_fail(b, CSTACK_EINVAL, "'%s' is no bootstrapped cstack database: %s", path,
                       db ? sqlite3_errmsg(db) : "cannot open");
    if (!rc)
        memcpy(site, sqlite3_column_text(st, 0), 33);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

int cstack_backup(const cstack_schema *schema, const char *path, const char *name,
                  const cstack_sync_options *o, cstack_backup_info *out)
{
    char site[33] = "";
    memset(out, 0, sizeof *out);
    bk b = {.info = out}; /* for the error text until it is opened */
    snap s = {0};
    int rc = path ? site_of(&b, path, site) : cs_bk_fail(&b, CSTACK_EMISUSE, "no database path");
    rc = rc ? rc : cs_bk_open(&b, schema, site, o, out);
    rc = rc ? rc : take_snapshot(&b, path, &s);
    if (!rc) {
        out->page_size = s.page_size;
        out->pages = s.npages;
        rc = cs_bk_put_missing(&b, s.data, s.hashes, s.npages, s.page_size);
        rc = rc ? rc : cs_bk_commit(&b, name ? name : "backup", s.hashes, s.npages, s.page_size);
    }
    snap_free(&s);
    cs_bk_close(&b);
    return rc;
}

/* ---- restore and list ----------------------------------------------------- */

/* A site id for requests that belong to no database yet. */
void cs_bk_random_site(char site[33])
{
    unsigned char r[16];
    cs_random_bytes(r, sizeof r);
    cs_hex_encode(r, sizeof r, site);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int cs_bk_manifest(bk *b, const unsigned char **hashes)
{
    const unsigned char *m = (const unsigned char *)b->resp.data;
    if (b->resp.len < 16 || (b->resp.len - 16) / HASH != be32(m + 4) ||
        (b->resp.len - 16) % HASH || be32(m) < 512 || be32(m) > 65536)
        return cs_bk_fail(b, CSTACK_EIO, "the server sent a malformed manifest");
    b->info->page_size = be32(m);
    b->info->pages = be32(m + 4);
    b->info->id = (int64_t)((uint64_t)be32(m + 8) << 32 | be32(m + 12));
    *hashes = m + 16;
    return 0;
}

int cs_bk_get_pages(bk *b, const unsigned char *hashes, uint32_t n, uint32_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/v1/pages/get?size=%u", size);
    int rc = cs_bk_request(b, path, hashes, (size_t)n * HASH);
    if (rc)
        return rc;
    if (b->resp.len != (size_t)n * size)
        return cs_bk_fail(b, CSTACK_EIO, "the server sent %zu bytes for %u pages", b->resp.len, n);
    for (uint32_t i = 0; i < n; i++) {
        unsigned char got[HASH];
        cs_sha256(b->resp.data + (size_t)i * size, size, got);
        if (memcmp(got, hashes + (size_t)i * HASH, HASH) != 0)
            return cs_bk_fail(b, CSTACK_EIO, "a page does not match its hash");
    }
    return 0;
}

/* Fetches the pages of the manifest in order and writes them to fd. */
static int fetch_pages(bk *b, const unsigned char *hashes, uint32_t npages, uint32_t size, int fd)
{
    uint32_t chunk = CS_BK_GET_CHUNK(size);
    for (uint32_t first = 0; first < npages; first += chunk) {
        uint32_t n = npages - first < chunk ? npages - first : chunk;
        int rc = cs_bk_get_pages(b, hashes + (size_t)first * HASH, n, size);
        if (rc)
            return rc;
        if (write(fd, b->resp.data, b->resp.len) != (ssize_t)b->resp.len)
            return cs_bk_fail(b, CSTACK_EIO, "cannot write: %s", strerror(errno));
    }
    return fsync(fd) ? cs_bk_fail(b, CSTACK_EIO, "cannot sync: %s", strerror(errno)) : 0;
}

static int integrity_ok(bk *b, const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    bool ok = rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok ? 0 : cs_bk_fail(b, CSTACK_EIO, "the restored database fails PRAGMA integrity_check");
}

/* How far a restore moves the device's version counter.  The backed-up
 * device may have pushed batches after its backup; they are on the server
 * under "<site>:<version>" ids the restored file has not used yet.  New
 * writes of the restored device must not take those ids, or the server would
 * answer them as duplicates and drop them.  The restored device cannot know
 * how far the lost one got, so it jumps past any count of transactions a
 * device makes between two backups.  Versions are local cursors: a gap is
 * harmless. */
#define RESTORE_VERSION_JUMP ((int64_t)1 << 32)

/* Moves the restored file's version counter (sync/clock.c reads the larger
 * of _cstack_sync_state 'ver' and the log) by RESTORE_VERSION_JUMP.  A file
 * without sync tables (no synced model) is left alone. */
static int jump_version(bk *b, const char *path)
{
    static const char has_sql[] = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                  "name IN ('_cstack_sync_state', '_cstack_txlog')";
    static const char jump_sql[] =
        "INSERT INTO _cstack_sync_state(key, value) SELECT 'ver', "
        "max(coalesce((SELECT max(ver) FROM _cstack_txlog), 0), "
        "coalesce((SELECT value FROM _cstack_sync_state WHERE key = 'ver'), 0)) + ?1 WHERE 1 "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value";
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    bool has = false;
    if (rc == SQLITE_OK && (rc = sqlite3_prepare_v2(db, has_sql, -1, &st, NULL)) == SQLITE_OK)
        has = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 2;
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_OK && has &&
        (rc = sqlite3_prepare_v2(db, jump_sql, -1, &st, NULL)) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, RESTORE_VERSION_JUMP);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    char why[256];
    snprintf(why, sizeof why, "%s", db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_finalize(st);
    sqlite3_close(db);
    if (rc != SQLITE_OK)
        return cs_bk_fail(b, CSTACK_EIO, "cannot move the restored device's version counter: %s",
                          why);
    return 0;
}

/* Fetches the manifest of backup `id` (0 = latest) and the pages into tmp. */
static int restore_to(bk *b, int64_t id, const char *tmp)
{
    char path[64];
    if (id > 0)
        snprintf(path, sizeof path, "/v1/backups/%lld", (long long)id);
    else
        snprintf(path, sizeof path, "/v1/backups/latest");
    int rc = cs_bk_request(b, path, NULL, 0);
    if (rc)
        return rc;
    const unsigned char *m;
    if ((rc = cs_bk_manifest(b, &m)))
        return rc;
    size_t n = (size_t)b->info->pages * HASH;
    unsigned char *hashes = malloc(n ? n : 1);
    if (!hashes)
        return cs_bk_fail(b, CSTACK_ENOMEM, "out of memory");
    memcpy(hashes, m, n);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        rc = cs_bk_fail(b, CSTACK_EIO, "cannot create '%s': %s", tmp, strerror(errno));
    else
        rc = fetch_pages(b, hashes, b->info->pages, b->info->page_size, fd);
    if (fd >= 0)
        close(fd);
    free(hashes);
    return rc;
}

/* Makes the rename durable: fsync of the folder holding `path`. */
static void sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int cstack_restore(const cstack_schema *schema, const char *path, int64_t id,
                   const cstack_sync_options *o, cstack_backup_info *out)
{
    char site[33];
    cs_bk_random_site(site);
    bk b;
    int rc = cs_bk_open(&b, schema, site, o, out);
    cs_buf tmp = CS_BUF_INIT;
    if (!rc && (!path || access(path, F_OK) == 0))
        rc = cs_bk_fail(&b, CSTACK_EINVAL, "'%s' exists: restore makes a new database",
                     path ? path : "");
    if (!rc && (cs_buf_printf(&tmp, "%s.restoring", path) || !tmp.data))
        rc = cs_bk_fail(&b, CSTACK_ENOMEM, "out of memory");
    if (!rc) {
        unlink(tmp.data); /* what an interrupted restore left */
        rc = restore_to(&b, id, tmp.data);
    }
    rc = rc ? rc : integrity_ok(&b, tmp.data);
    rc = rc ? rc : jump_version(&b, tmp.data);
    if (!rc && rename(tmp.data, path))
        rc = cs_bk_fail(&b, CSTACK_EIO, "cannot rename to '%s': %s", path, strerror(errno));
    if (!rc)
        sync_dir(path);
    if (rc && tmp.data)
        unlink(tmp.data);
    cs_buf_free(&tmp);
    cs_bk_close(&b);
    return rc;
}

int cstack_backup_list(const cstack_schema *schema, const cstack_sync_options *o,
                       char **json_out, cstack_backup_info *out)
{
    char site[33];
    cs_bk_random_site(site);
    bk b;
    *json_out = NULL;
    int rc = cs_bk_open(&b, schema, site, o, out);
    rc = rc ? rc : cs_bk_request(&b, "/v1/backups", NULL, 0);
    if (!rc && !(*json_out = cs_buf_take(&b.resp)))
        rc = cs_bk_fail(&b, CSTACK_ENOMEM, "out of memory");
    cs_bk_close(&b);
    return rc;
}
