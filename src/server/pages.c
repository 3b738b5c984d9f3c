/* pages.c -- the server's page storage for backups (docs/pagestore.md).
 *
 * Pages are content-addressed per user: the key is (user, SHA-256 of the
 * page), so a page a user already stored is never sent again, and no user
 * can name, read or overwrite another user's pages or backups (every
 * statement is bound to the token's sub).  A backup is a manifest: the hash
 * of each page of the database in order, stored in one row whose insert is
 * its commit.  The pages live in a SQLite database of their own next to the
 * server's (`<db>.pages`), one connection under a mutex, opened on the
 * first request.  What a user stores is bounded by a quota on the bytes of
 * its pages. */
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"
#include "server/server_int.h"
#include "util/buf.h"
#include "util/clock.h"

#define HASH 32
#define MAX_PAGE 65536

/* The database is opened on the first page-storage request, so a server
 * whose devices never back up creates no file for it. */
struct cs_pages {
    sqlite3 *db;
    char *path;
    pthread_mutex_t mu;
    uint64_t quota;
};

static const char DDL[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS pages(user TEXT NOT NULL, hash BLOB NOT NULL, "
    "  data BLOB NOT NULL, PRIMARY KEY(user, hash)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS usage(user TEXT PRIMARY KEY, bytes INTEGER NOT NULL) "
    "  WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS backups(id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "  user TEXT NOT NULL, device TEXT NOT NULL, name TEXT NOT NULL, created INTEGER NOT NULL, "
    "  page_size INTEGER NOT NULL, npages INTEGER NOT NULL, manifest BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS backups_user ON backups(user, name, id);";

/* Opens the database when not yet open; with p->mu held. */
static int open_db(cs_pages *p, char *err, size_t errlen)
{
    if (p->db)
        return 0;
    char *msg = NULL;
    int rc = sqlite3_open_v2(p->path, &p->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(p->db, 5000);
        rc = sqlite3_exec(p->db, DDL, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK)
        return 0;
    snprintf(err, errlen, "cannot open the page storage: %s",
             msg ? msg : p->db ? sqlite3_errmsg(p->db) : sqlite3_errstr(rc));
    sqlite3_free(msg);
    sqlite3_close_v2(p->db);
    p->db = NULL;
    return CSTACK_EIO;
}

int cs_pages_open(const char *path, uint64_t quota, cs_pages **out)
{
    *out = NULL;
    cs_pages *p = calloc(1, sizeof *p);
    if (!p || !(p->path = cs_strdup(path))) {
        free(p);
        return CSTACK_ENOMEM;
    }
    p->quota = quota ? quota : CSTACK_SERVER_DEFAULT_BACKUP_QUOTA;
    pthread_mutex_init(&p->mu, NULL);
    *out = p;
    return 0;
}

int cs_pages_start(cstack_server *srv)
{
    if (srv->cfg.pages_path)
        return cs_pages_open(srv->cfg.pages_path, srv->cfg.backup_quota, &srv->pages);
    cs_buf b = CS_BUF_INIT;
    char *made = NULL;
    if (cs_buf_printf(&b, "%s.pages", srv->db_path) || !(made = cs_buf_take(&b)))
        return CSTACK_ENOMEM;
    int rc = cs_pages_open(made, srv->cfg.backup_quota, &srv->pages);
    free(made);
    return rc;
}

void cs_pages_close(cs_pages *p)
{
    if (!p)
        return;
    sqlite3_close_v2(p->db);
    pthread_mutex_destroy(&p->mu);
    free(p->path);
    free(p);
}

bool cs_pages_route(const char *url)
{
    return strncmp(url, "/v1/pages/", 10) == 0 || strcmp(url, "/v1/backups") == 0 ||
           strncmp(url, "/v1/backups/", 12) == 0;
}

static void fail(cs_pages_resp *out, int status, const char *code, const char *msg)
{
    out->status = status;
    out->code = code;
    snprintf(out->msg, sizeof out->msg, "%s", msg);
}

static void fail_sql(cs_pages *p, cs_pages_resp *out)
{
    fail(out, 500, "internal", "page storage failed");
    snprintf(out->msg, sizeof out->msg, "page storage: %s", sqlite3_errmsg(p->db));
}

static sqlite3_stmt *prep(cs_pages *p, const char *sql)
{
    sqlite3_stmt *st = NULL;
    sqlite3_prepare_v2(p->db, sql, -1, &st, NULL);
    return st;
}

static int parse_size(const char *s, uint32_t *out)
{
    char *end = NULL;
    unsigned long v = s ? strtoul(s, &end, 10) : 0;
    if (!s || !*s || *end || v < 512 || v > MAX_PAGE || (v & (v - 1)))
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Whether the user holds the page of hash h (of page_size bytes when
 * page_size is not 0). */
static int has_page(sqlite3_stmt *st, const char *user, const unsigned char *h, uint32_t size)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, h, HASH, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW)
        return 0;
    return !size || (uint32_t)sqlite3_column_int(st, 0) == size;
}

/* POST /v1/pages/missing: one byte per hash of the body, 1 = not stored. */
static void do_missing(cs_pages *p, const cs_pages_req *q, cs_pages_resp *out)
{
    if (q->len % HASH)
        return fail(out, 400, "bad_request", "the body must be 32-byte hashes");
    size_t n = q->len / HASH;
    char *ans = malloc(n ? n : 1);
    sqlite3_stmt *st = prep(p, "SELECT length(data) FROM pages WHERE user = ?1 AND hash = ?2");
    if (!ans || !st) {
        free(ans);
        sqlite3_finalize(st);
        return fail_sql(p, out);
    }
    for (size_t i = 0; i < n; i++)
        ans[i] = !has_page(st, q->user, (const unsigned char *)q->body + i * HASH, 0);
    sqlite3_finalize(st);
    out->status = 200;
    out->ctype = "application/octet-stream";
    out->body = ans;
    out->len = n;
}

/* Stores the pages of the body; returns the bytes newly stored, or -1. */
static int64_t store_pages(cs_pages *p, const cs_pages_req *q, uint32_t size, int64_t *stored)
{
    sqlite3_stmt *st = prep(p, "INSERT OR IGNORE INTO pages(user, hash, data) VALUES(?1,?2,?3)");
    if (!st)
        return -1;
    int64_t bytes = 0;
    for (size_t off = 0; off < q->len; off += size) {
        unsigned char h[HASH];
        cs_sha256((const char *)q->body + off, size, h);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, q->user, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, h, HASH, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 3, (const char *)q->body + off, (int)size, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqlite3_finalize(st);
            return -1;
        }
        if (sqlite3_changes(p->db)) {
            bytes += size;
            ++*stored;
        }
    }
    sqlite3_finalize(st);
    return bytes;
}

/* Adds `bytes` to the user's usage unless that passes the quota: 1 then. */
static int charge(cs_pages *p, const char *user, int64_t bytes)
{
    sqlite3_stmt *st = prep(p, "INSERT INTO usage(user, bytes) VALUES(?1, ?2) ON CONFLICT(user) "
                               "DO UPDATE SET bytes = bytes + ?2 RETURNING bytes");
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, bytes);
    int rc = sqlite3_step(st) == SQLITE_ROW
                 ? (uint64_t)sqlite3_column_int64(st, 0) > p->quota
                 : -1;
    sqlite3_finalize(st);
    return rc;
}

/* POST /v1/pages/put?size=P: the body is whole pages of P bytes. */
static void do_put(cs_pages *p, const cs_pages_req *q, cs_pages_resp *out)
{
    uint32_t size;
    if (parse_size(q->size, &size) || q->len % size)
        return fail(out, 400, "bad_request", "size must be a page size dividing the body");
    sqlite3_exec(p->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    int64_t stored = 0;
    int64_t bytes = store_pages(p, q, size, &stored);
    int over = bytes < 0 ? -1 : charge(p, q->user, bytes);
    if (over) {
        sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
        if (over > 0)
            return fail(out, 413, "too_big", "the backups of this user would pass their quota");
        return fail_sql(p, out);
    }
    if (sqlite3_exec(p->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(p->db, "ROLLBACK", NULL, NULL, NULL);
        return fail_sql(p, out);
    }
    cs_buf b = CS_BUF_INIT;
    cs_buf_printf(&b, "{\"status\":\"ok\",\"stored\":%" PRId64 ",\"bytes\":%" PRId64 "}", stored,
                  bytes);
    out->status = 200;
    out->ctype = "application/json";
    out->len = b.len;
    out->body = cs_buf_take(&b);
}

/* POST /v1/pages/get?size=P: the pages of the hashes of the body, in order. */
static void do_get(cs_pages *p, const cs_pages_req *q, cs_pages_resp *out)
{
    uint32_t size;
    if (parse_size(q->size, &size) || q->len % HASH || q->len / HASH > CS_PAGES_MAX_GET ||
        q->len / HASH * size > CS_PAGES_MAX_GET_BYTES)
        return fail(out, 400, "bad_request", "size must be a page size, the body at most 4096 "
                                             "32-byte hashes of 16 MiB of pages");
    size_t n = q->len / HASH;
    char *data = malloc(n * size + 1);
    sqlite3_stmt *st = prep(p, "SELECT data FROM pages WHERE user = ?1 AND hash = ?2");
    for (size_t i = 0; data && st && i < n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, q->user, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, (const char *)q->body + i * HASH, HASH, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_ROW || (uint32_t)sqlite3_column_bytes(st, 0) != size) {
            sqlite3_finalize(st);
            free(data);
            return fail(out, 404, "not_found", "a page of the request is not stored");
        }
        memcpy(data + i * size, sqlite3_column_blob(st, 0), size);
    }
    if (!data || !st) {
        free(data);
        sqlite3_finalize(st);
        return fail_sql(p, out);
    }
    sqlite3_finalize(st);
    out->status = 200;
    out->ctype = "application/octet-stream";
    out->body = data;
    out->len = n * size;
}

/* POST /v1/backups?name=N&size=P: commits a manifest whose pages are all
 * stored (of that size), as one row. */
static void do_commit(cs_pages *p, const cs_pages_req *q, cs_pages_resp *out)
{
    uint32_t size;
    const char *name = q->name && *q->name ? q->name : "backup";
    if (parse_size(q->size, &size) || q->len % HASH || q->len == 0 || strlen(name) > 200)
        return fail(out, 400, "bad_request", "size must be a page size, the body 32-byte hashes, "
                                             "the name at most 200 bytes");
    sqlite3_stmt *st = prep(p, "SELECT length(data) FROM pages WHERE user = ?1 AND hash = ?2");
    for (size_t i = 0; st && i < q->len / HASH; i++) {
        if (!has_page(st, q->user, (const unsigned char *)q->body + i * HASH, size)) {
            sqlite3_finalize(st);
            return fail(out, 409, "missing_pages", "the manifest names a page not stored");
        }
    }
    sqlite3_finalize(st);
    st = prep(p, "INSERT INTO backups(user, device, name, created, page_size, npages, manifest) "
                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (!st)
        return fail_sql(p, out);
    sqlite3_bind_text(st, 1, q->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, q->site, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, cs_wall_ms());
    sqlite3_bind_int(st, 5, (int)size);
    sqlite3_bind_int64(st, 6, (int64_t)(q->len / HASH));
    sqlite3_bind_blob64(st, 7, q->body, q->len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_sql(p, out);
    cs_buf b = CS_BUF_INIT;
    cs_buf_printf(&b, "{\"status\":\"ok\",\"id\":%lld}", (long long)sqlite3_last_insert_rowid(p->db));
    out->status = 200;
    out->ctype = "application/json";
    out->len = b.len;
    out->body = cs_buf_take(&b);
}

/* GET /v1/backups: this user's backups, newest first. */
static void do_list(cs_pages *p, const cs_pages_req *q, cs_pages_resp *out)
{
    sqlite3_stmt *st = prep(p, "SELECT id, device, name, created, npages, page_size FROM backups "
                               "WHERE user = ?1 ORDER BY id DESC");
    if (!st)
        return fail_sql(p, out);
    sqlite3_bind_text(st, 1, q->user, -1, SQLITE_STATIC);
    cs_buf b = CS_BUF_INIT;
    cs_buf_puts(&b, "{\"status\":\"ok\",\"backups\":[");
    for (int i = 0; sqlite3_step(st) == SQLITE_ROW; i++) {
        const char *dev = (const char *)sqlite3_column_text(st, 1);
        const char *name = (const char *)sqlite3_column_text(st, 2);
        cs_buf_printf(&b, "%s{\"id\":%lld,\"device\":", i ? "," : "",
                      (long long)sqlite3_column_int64(st, 0));
        cs_buf_json_str(&b, dev, strlen(dev));
        cs_buf_puts(&b, ",\"name\":");
        cs_buf_json_str(&b, name, strlen(name));
        cs_buf_printf(&b, ",\"created\":%lld,\"pages\":%lld,\"page_size\":%d}",
                      (long long)sqlite3_column_int64(st, 3),
                      (long long)sqlite3_column_int64(st, 4), sqlite3_column_int(st, 5));
    }
    sqlite3_finalize(st);
    cs_buf_puts(&b, "]}");
    out->status = 200;
    out->ctype = "application/json";
    out->len = b.len;
    if (!(out->body = cs_buf_take(&b)))
        fail(out, 500, "internal", "out of memory");
}

/* GET /v1/backups/ID (or /latest, of ?name= when given): page size and
 * page count (4 bytes each), the id (8 bytes), all big-endian, then the
 * manifest. */
static void do_manifest(cs_pages *p, const cs_pages_req *q, const char *which, cs_pages_resp *out)
{
    bool latest = strcmp(which, "latest") == 0;
    char *end = NULL;
    long long id = latest ? 0 : strtoll(which, &end, 10);
    if (!latest && (!*which || *end || id <= 0))
        return fail(out, 404, "not_found", "no such backup");
    sqlite3_stmt *st = prep(p, latest ? "SELECT page_size, npages, manifest, id FROM backups "
                                        "WHERE user = ?1 AND (?3 IS NULL OR name = ?3) "
                                        "ORDER BY id DESC LIMIT 1"
                                      : "SELECT page_size, npages, manifest, id FROM backups "
                                        "WHERE user = ?1 AND id = ?2");
    if (!st)
        return fail_sql(p, out);
    sqlite3_bind_text(st, 1, q->user, -1, SQLITE_STATIC);
    if (!latest)
        sqlite3_bind_int64(st, 2, id);
    else if (q->name)
        sqlite3_bind_text(st, 3, q->name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return fail(out, 404, "not_found", "this user has no such backup");
    }
    uint64_t hdr[3] = {(uint64_t)sqlite3_column_int(st, 0), (uint64_t)sqlite3_column_int(st, 1),
                       (uint64_t)sqlite3_column_int64(st, 3)};
    size_t n = (size_t)sqlite3_column_bytes(st, 2);
    unsigned char *b = malloc(16 + n);
    if (b) {
        for (int i = 0; i < 8; i++)
            b[i] = (unsigned char)(hdr[i / 4] >> (24 - 8 * (i % 4)));
        for (int i = 0; i < 8; i++)
            b[8 + i] = (unsigned char)(hdr[2] >> (56 - 8 * i));
        memcpy(b + 16, sqlite3_column_blob(st, 2), n);
    }
    sqlite3_finalize(st);
    if (!b)
        return fail(out, 500, "internal", "out of memory");
    out->status = 200;
    out->ctype = "application/octet-stream";
    out->body = (char *)b;
    out->len = 16 + n;
}

void cs_pages_handle(cs_pages *p, const cs_pages_req *q, cs_pages_resp *out)
{
    memset(out, 0, sizeof *out);
    bool post = strcmp(q->method, "POST") == 0;
    const char *u = q->url;
    if (!q->user || !*q->user)
        return fail(out, 401, "unauthorized", "page storage needs a signed-in user");
    pthread_mutex_lock(&p->mu);
    if (open_db(p, out->msg, sizeof out->msg)) {
        out->status = 500;
        out->code = "internal";
    } else if (post && strcmp(u, "/v1/pages/missing") == 0)
        do_missing(p, q, out);
    else if (post && strcmp(u, "/v1/pages/put") == 0)
        do_put(p, q, out);
    else if (post && strcmp(u, "/v1/pages/get") == 0)
        do_get(p, q, out);
    else if (post && strcmp(u, "/v1/backups") == 0)
        do_commit(p, q, out);
    else if (!post && strcmp(u, "/v1/backups") == 0)
        do_list(p, q, out);
    else if (!post && strncmp(u, "/v1/backups/", 12) == 0)
        do_manifest(p, q, u + 12, out);
    else
        fail(out, 404, "not_found", "no such page-storage route for this method");
    pthread_mutex_unlock(&p->mu);
}
