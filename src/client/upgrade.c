/*
 * upgrade.c -- the client's side of rolling schema upgrades (docs/sync.md,
 * "Rolling upgrades"):
 *
 *   _cstack_client_schema(server, hash)
 *       the schema hash this database last caught up under, per server URL.
 *
 * When the app's schema is not the one the device last synced under (the
 * app was updated and cstack_bootstrap migrated the database), the next
 * pull first asks once for what the old schema lacked:
 * `GET /v1/pull?since=0&upgrade_from=<old hash>`, in pages, merged without
 * moving the cursor: the values of new columns (also of rows the device
 * holds) and the rows of new models, but no unchanged column.  A server that
 * never ran the old schema says so (400 unknown_schema): the device then
 * pulls everything again from cursor 0, idempotently.  Pending local writes
 * stay in the upload queue throughout: they are state, merged per column.
 *
 * A 409 while the server still runs the schema the device last synced
 * under means the device is ahead: it waits, with its writes queued, until
 * the server is migrated.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "client/client.h"
#include "store/store.h"
#include "sync/sync_ext.h"

typedef struct schema_args {
    const char *url;
    const char *hash; /* to store; NULL: load into `found` */
    char found[65];
} schema_args;

static int schema_sql(sqlite3 *conn, void *ctx)
{
    schema_args *a = ctx;
    int rc = sqlite3_exec(conn,
                          "CREATE TABLE IF NOT EXISTS _cstack_client_schema("
                          " server TEXT PRIMARY KEY, hash TEXT NOT NULL)",
                          NULL, NULL, NULL);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(conn,
                                a->hash ? "INSERT INTO _cstack_client_schema(server, hash) "
                                          "VALUES(?1, ?2) ON CONFLICT(server) DO UPDATE "
                                          "SET hash = ?2"
                                        : "SELECT hash FROM _cstack_client_schema "
                                          "WHERE server = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, a->url, -1, SQLITE_STATIC);
        if (a->hash)
            sqlite3_bind_text(st, 2, a->hash, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            snprintf(a->found, sizeof a->found, "%s", (const char *)sqlite3_column_text(st, 0));
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? 0 : cs_err(CSTACK_ESQLITE, "sync client tables: %s",
                                        sqlite3_errmsg(conn));
}

static const char *local_hash(cs_client *c)
{
    return cstack_schema_hash(cstack_schema_of(c->db));
}

/* The hash this device last caught up under with this server ("" when it
 * never did). */
static int stored_hash(cs_client *c, char out[65])
{
    schema_args a = {.url = c->url};
    int rc = cstack_with_sqlite(c->db, schema_sql, &a);
    if (rc)
        return cs_client_fail(c, rc, "cannot read the sync client's state: %s",
                              cstack_errmsg(c->db));
    memcpy(out, a.found, 65);
    return 0;
}

static int upgrade_synced(cs_client *c)
{
    schema_args a = {.url = c->url, .hash = local_hash(c)};
    int rc = cstack_with_sqlite(c->db, schema_sql, &a);
    c->schema_checked = rc == 0;
    return rc ? cs_client_fail(c, rc, "cannot store the schema synced under: %s",
                               cstack_errmsg(c->db))
              : 0;
}

void cs_upgrade_note(cs_client *c, const cs_http_resp *r)
{
    if (!r->schema[0])
        return;
    const char *local = local_hash(c);
    pthread_mutex_lock(&c->st_mu);
    snprintf(c->st.schema_server, sizeof c->st.schema_server, "%s", r->schema);
    snprintf(c->st.schema_local, sizeof c->st.schema_local, "%s", local);
    c->st.schema_behind = strcmp(r->schema, local) != 0;
    c->st.schema_ahead = 0;
    pthread_mutex_unlock(&c->st_mu);
}

bool cs_upgrade_ahead(cs_client *c, const char *server_hash)
{
    char last[65] = "";
    const char *local = local_hash(c);
    if (!server_hash[0] || stored_hash(c, last) || strcmp(last, server_hash) != 0)
        return false;
    return strcmp(local, server_hash) != 0;
}

/* One page of the upgrade answer: merged as a pull's, the cursor left as it
 * is.  *next receives the continuation cursor ("" on the last page). */
static int upgrade_page(cs_client *c, const char *from, char *next, bool *unknown)
{
    char path[CS_CURSOR_MAX + 160];
    snprintf(path, sizeof path, "/v1/pull?since=%s&upgrade_from=%s", next[0] ? next : "0", from);
    cs_http_resp r = {0};
    int rc = cs_http_request(c, path, NULL, 0, NULL, &r);
    if (rc == 0 && r.status == 400 && strstr(r.body.data ? r.body.data : "", "unknown_schema")) {
        *unknown = true;
    } else if (rc == 0 && r.status != 200) {
        rc = cs_session_error(c, "pull (schema upgrade)", &r);
    } else if (rc == 0) {
        cstack_apply_stats stats = {0};
        cs_upgrade_note(c, &r);
        rc = r.body.len ? cs_changes_apply_relayed(c->db, r.body.data, r.body.len, &stats) : 0;
        if (rc)
            rc = cs_client_fail(c, rc, "cannot merge the schema upgrade (%s): %s",
                                cstack_errname(rc), cstack_errmsg(c->db));
        snprintf(next, CS_CURSOR_MAX, "%s", r.more ? r.page : "");
        pthread_mutex_lock(&c->st_mu);
        c->st.rows_applied += stats.rows;
        pthread_mutex_unlock(&c->st_mu);
    }
    cs_http_resp_free(&r);
    return rc;
}

int cs_upgrade_pull(cs_client *c)
{
    char last[65] = "", next[CS_CURSOR_MAX] = "";
    if (c->schema_checked)
        return 0;
    int rc = stored_hash(c, last);
    if (!rc && !last[0]) {
        /* Nothing recorded: a fresh device holds nothing to complete; one
         * that synced before hashes were recorded cannot say what its old
         * schema lacked, so it pulls everything again, once. */
        rc = c->cursor > 0 || c->page[0] ? cs_state_save_cursor(c, 0) : 0;
        return rc ? rc : upgrade_synced(c);
    }
    if (rc || strcmp(last, local_hash(c)) == 0) {
        c->schema_checked = rc == 0;
        return rc;
    }
    bool unknown = false;
    do {
        if (cs_client_stopping(c))
            return CSTACK_EIO;
        rc = upgrade_page(c, last, next, &unknown);
    } while (rc == 0 && !unknown && next[0]);
    /* A server that never ran the old schema cannot say what it lacked:
     * everything again, from cursor 0. */
    if (rc == 0 && unknown)
        rc = cs_state_save_cursor(c, 0);
    return rc ? rc : upgrade_synced(c);
}
