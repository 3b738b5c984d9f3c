/*
 * state.c -- the sync client's own tables, created on first use through
 * cstack_with_sqlite (so they share the runtime's write lock and, being no
 * model's table, are never captured for sync):
 *
 *   _cstack_client_state(server, cursor, synced_at)
 *       the server cursor merged up to, per server URL: a restarted session
 *       resumes its pulls there; pointing a database at another server
 *       starts that server from cursor 0 (a full, idempotent re-pull).
 *       Between the pages of one answer it holds the continuation cursor
 *       (text), so an interrupted initial sync resumes at its last page.
 *   _cstack_rejected(version, status, message, changeset, at)
 *       local transactions the server refused, kept with the refusal; the
 *       upload queue moves past them so later batches are not stalled by
 *       one poison batch.
 *   _cstack_refusals(id, version, status, model, op, key, data, reason, at)
 *       one row per row of a refused transaction, with the values the
 *       server refused (cstack_sync_refusals): the transaction itself is
 *       undone, so this is where an app finds what to show or re-apply.
 *
 * A self-repair (repair.c) forgets the rows of the models that differ and
 * moves the cursor to 0 in one transaction, like a refusal.
 *
 * The callbacks use SAVEPOINTs only: cstack_with_sqlite owns the
 * transaction.
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "client/client.h"
#include "store/store.h"
#include "sync/sync_ext.h"

static const char DDL[] =
    "CREATE TABLE IF NOT EXISTS _cstack_client_state("
    " server TEXT PRIMARY KEY, cursor INTEGER NOT NULL, synced_at INTEGER);"
    "CREATE TABLE IF NOT EXISTS _cstack_rejected("
    " version INTEGER PRIMARY KEY, status INTEGER NOT NULL, message TEXT NOT NULL,"
    " changeset BLOB, at TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS _cstack_refusals("
    " id INTEGER PRIMARY KEY, version INTEGER NOT NULL, status INTEGER NOT NULL,"
    " model TEXT NOT NULL, op TEXT NOT NULL, key TEXT NOT NULL, data TEXT,"
    " reason TEXT NOT NULL, at TEXT NOT NULL);";

typedef struct load_args {
    const char *url;
    int64_t cursor;
    char page[CS_CURSOR_MAX];
    bool found;
} load_args;

int64_t cs_page_base(const char *page)
{
    size_t n = page ? strlen(page) : 0;
    int64_t base = 0;
    size_t i = 0;
    for (; i < n && i < 18 && page[i] >= '0' && page[i] <= '9'; i++)
        base = base * 10 + (page[i] - '0');
    if (i == 0 || i >= n || page[i] != '.' || n >= CS_CURSOR_MAX)
        return -1;
    for (; i < n; i++)
        if (!strchr("0123456789abcdef.", page[i]))
            return -1;
    return base;
}

/* Sets the runtime's error message (what cstack_errmsg returns) from the
 * connection and returns the matching code. */
static int sql_fail(sqlite3 *conn, int rc)
{
    int code = (rc & 0xff) == SQLITE_BUSY ? CSTACK_EBUSY : CSTACK_ESQLITE;
    return cs_err(code, "sync client tables: %s", sqlite3_errmsg(conn));
}

static int do_load(sqlite3 *conn, void *ctx)
{
    load_args *a = ctx;
    int rc = sqlite3_exec(conn, DDL, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(conn, rc);
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(conn, "SELECT cursor FROM _cstack_client_state WHERE server = ?", -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(conn, rc);
    sqlite3_bind_text(st, 1, a->url, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        int64_t base = sqlite3_column_type(st, 0) == SQLITE_TEXT ? cs_page_base(text) : -1;
        a->cursor = base >= 0 ? base : sqlite3_column_int64(st, 0);
        if (base >= 0)
            snprintf(a->page, sizeof a->page, "%s", text);
        a->found = true;
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_fail(conn, rc);
}

int cs_state_load(cs_client *c)
{
    load_args a = {.url = c->url};
    int rc = cstack_with_sqlite(c->db, do_load, &a);
    if (rc)
        return cs_client_fail(c, rc, "cannot read the sync client's state: %s",
                              cstack_errmsg(c->db));
    c->cursor = a.cursor;
    memcpy(c->page, a.page, sizeof c->page);
    c->stored_cursor = a.found;
    return 0;
}

typedef struct save_args {
    const char *url;
    int64_t cursor;
    const char *page; /* stored instead of cursor when not NULL */
    int64_t now;
} save_args;

static int do_save(sqlite3 *conn, void *ctx)
{
    save_args *a = ctx;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn,
                                "INSERT INTO _cstack_client_state(server, cursor, synced_at)"
                                " VALUES(?1, ?2, ?3) ON CONFLICT(server) DO UPDATE"
                                " SET cursor = ?2, synced_at = ?3",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(conn, rc);
    sqlite3_bind_text(st, 1, a->url, -1, SQLITE_STATIC);
    if (a->page)
        sqlite3_bind_text(st, 2, a->page, -1, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, 2, a->cursor);
    sqlite3_bind_int64(st, 3, a->now);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_fail(conn, rc);
}

int cs_state_save_cursor(cs_client *c, int64_t cursor)
{
    save_args a = {c->url, cursor, NULL, cs_wall_ms()};
    int rc = cstack_with_sqlite(c->db, do_save, &a);
    if (rc)
        return cs_client_fail(c, rc, "cannot store the server cursor: %s", cstack_errmsg(c->db));
    c->cursor = cursor;
    c->page[0] = '\0';
    c->stored_cursor = true;
    pthread_mutex_lock(&c->st_mu);
    c->st.cursor = cursor;
    pthread_mutex_unlock(&c->st_mu);
    return 0;
}

int cs_state_save_page(cs_client *c, const char *page)
{
    save_args a = {c->url, 0, page, cs_wall_ms()};
    int rc = cstack_with_sqlite(c->db, do_save, &a);
    if (rc)
        return cs_client_fail(c, rc, "cannot store the server cursor: %s", cstack_errmsg(c->db));
    snprintf(c->page, sizeof c->page, "%s", page);
    c->stored_cursor = true;
    return 0;
}

/* Runs in the transaction that forgets the rows of a repair. */
static int do_restart(sqlite3 *conn, void *ctx)
{
    save_args s = {((cs_client *)ctx)->url, 0, NULL, cs_wall_ms()};
    return do_save(conn, &s);
}

/* The cursor after a transaction that moved it to 0. */
static void cursor_zero(cs_client *c)
{
    c->cursor = 0;
    c->page[0] = '\0';
    c->stored_cursor = true;
    pthread_mutex_lock(&c->st_mu);
    c->st.cursor = 0;
    pthread_mutex_unlock(&c->st_mu);
}

int cs_state_forget_models(cs_client *c, const bool *models, int64_t keep_after, bool restart,
                           int64_t *rows)
{
    int rc = cs_changes_forget_models(c->db, models, keep_after, restart ? do_restart : NULL, c,
                                      rows);
    if (rc)
        return cs_client_fail(c, rc, "repair: cannot forget the rows to pull again: %s",
                              cstack_errmsg(c->db));
    if (restart)
        cursor_zero(c);
    return 0;
}

typedef struct refuse_args {
    cs_client *c;
    int64_t version;
    long status;
    const char *message;
    const void *changeset;
    size_t len;
    const char *ops; /* the batch as cstack_upload_tx_json */
    int64_t rows;    /* refusal rows recorded */
} refuse_args;

static int do_reject(sqlite3 *conn, const refuse_args *a)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        conn,
        "INSERT OR REPLACE INTO _cstack_rejected(version, status, message, changeset, at)"
        " VALUES(?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(conn, rc);
    sqlite3_bind_int64(st, 1, a->version);
    sqlite3_bind_int64(st, 2, a->status);
    sqlite3_bind_text(st, 3, a->message, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 4, a->changeset, a->len, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_fail(conn, rc);
}

/* One refusal row per operation of the batch's JSON
 * ({"version":N,"ops":[{"op":..,"model":..,"key":{..},"data":{..}}]}). */
static int do_refusals(sqlite3 *conn, refuse_args *a)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        conn,
        "INSERT INTO _cstack_refusals(version, status, model, op, key, data, reason, at)"
        " SELECT ?1, ?2, json_extract(value, '$.model'),"
        "  CASE json_extract(value, '$.op') WHEN 'put' THEN 'create'"
        "   WHEN 'patch' THEN 'update' ELSE 'delete' END,"
        "  json_extract(value, '$.key'), json_extract(value, '$.data'), ?3,"
        "  strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        " FROM json_each(?4, '$.ops')",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(conn, rc);
    sqlite3_bind_int64(st, 1, a->version);
    sqlite3_bind_int64(st, 2, a->status);
    sqlite3_bind_text(st, 3, a->message, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->ops, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sql_fail(conn, rc);
    a->rows = sqlite3_changes64(conn);
    return 0;
}

/* Runs in the transaction that forgets the batch's rows. */
static int do_refuse(sqlite3 *conn, void *ctx)
{
    refuse_args *a = ctx;
    int rc = do_reject(conn, a);
    rc = rc ? rc : do_refusals(conn, a);
    rc = rc ? rc : cstack_upload_complete(a->c->db, a->version);
    if (rc)
        return rc;
    save_args s = {a->c->url, 0, NULL, cs_wall_ms()};
    return do_save(conn, &s);
}

int cs_state_refuse(cs_client *c, int64_t version, long status, const char *message,
                    const void *changeset, size_t len, const char *ops, int64_t *rows)
{
    refuse_args a = {c, version, status, message, changeset, len, ops ? ops : "{}", 0};
    int rc = cs_changes_forget(c->db, changeset, len, do_refuse, &a);
    if (rc)
        return cs_client_fail(c, rc, "cannot undo the refused batch %lld: %s", (long long)version,
                              cstack_errmsg(c->db));
    cursor_zero(c);
    *rows = a.rows;
    return 0;
}

static int do_count(sqlite3 *conn, void *ctx)
{
    int rc = sqlite3_exec(conn, DDL, NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(conn, "SELECT count(*) FROM _cstack_rejected", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(conn, rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *(int64_t *)ctx = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : sql_fail(conn, rc);
}

int cstack_sync_rejected_count(cstack *db, int64_t *count)
{
    cs_enter(db);
    if (!db || !count)
        return CSTACK_EMISUSE;
    *count = 0;
    return cstack_with_sqlite(db, do_count, count);
}

static int do_list(sqlite3 *conn, void *ctx)
{
    int rc = sqlite3_exec(conn, DDL, NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            conn,
            "SELECT json_group_array(json_object('version', version, 'status', status,"
            " 'model', model, 'op', op, 'key', json(key), 'values', json(data),"
            " 'reason', reason, 'at', at))"
            " FROM (SELECT * FROM _cstack_refusals ORDER BY id)",
            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return sql_fail(conn, rc);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        *(char **)ctx = cs_strdup(text ? text : "[]");
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return sql_fail(conn, rc);
    return *(char **)ctx ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
}

int cstack_sync_refusals(cstack *db, char **json_out)
{
    cs_enter(db);
    if (!json_out)
        return CSTACK_EMISUSE;
    *json_out = NULL;
    if (!db)
        return CSTACK_EMISUSE;
    return cstack_with_sqlite(db, do_list, json_out);
}
