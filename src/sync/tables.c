/* tables.c -- the sync tables and the column registry, created and
 * refreshed by bootstrap.
 *
 * Each synced model M gets a clock table
 *
 *   _cstack_clk_M(<primary key columns>, _cstack_cl, _cstack_ver, _cstack_clk)
 *
 * (WITHOUT ROWID, keyed like M) holding the row's causal length (odd:
 * alive, even: deleted), the highest local version that touched it (indexed:
 * exports scan it) and the clock blob (sync.h).  A row stays there after
 * its deletion: it is the tombstone.  Its SQL is built by src/sql/clocksql.c.
 *
 * Blob columns follow _cstack_sync_cols, an append-only registry of each
 * model's non-key fields, so adding a field never renumbers the others. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/clocksql.h"
#include "sync/changeset.h"
#include "util/buf.h"

static const char SYNC_TABLES[] =
    "CREATE TABLE IF NOT EXISTS _cstack_sync_state(key TEXT PRIMARY KEY, value INTEGER);\n"
    "CREATE TABLE IF NOT EXISTS _cstack_sites(ord INTEGER PRIMARY KEY, site BLOB NOT NULL "
    "UNIQUE);\n"
    "CREATE TABLE IF NOT EXISTS _cstack_sync_cols(model TEXT NOT NULL, field TEXT NOT NULL, "
    "idx INTEGER NOT NULL, PRIMARY KEY(model, field));\n"
    "CREATE TABLE IF NOT EXISTS _cstack_parked(model TEXT NOT NULL, pk BLOB NOT NULL, "
    "row BLOB NOT NULL, reason TEXT NOT NULL DEFAULT '', PRIMARY KEY(model, pk));\n"
    "CREATE TABLE IF NOT EXISTS _cstack_peers(site BLOB PRIMARY KEY, ver INTEGER NOT NULL);\n"
    "CREATE TABLE IF NOT EXISTS _cstack_txlog(ver INTEGER PRIMARY KEY, hlc INTEGER NOT NULL, "
    "payload BLOB NOT NULL);\n";

int cs_sync_pk_list(cs_buf *b, const cs_model *m, const char *prefix)
{
    int rc = 0;
    for (size_t i = 0; i < m->npk && !rc; i++) {
        if (i)
            rc = cs_buf_puts(b, ", ");
        if (!rc && prefix)
            rc = cs_buf_puts(b, prefix);
        if (!rc)
            rc = cs_buf_ident(b, m->fields[m->pk[i]].column);
    }
    return rc;
}

static bool is_pk(const cs_model *m, int fi)
{
    for (size_t i = 0; i < m->npk; i++)
        if (m->pk[i] == fi)
            return true;
    return false;
}

/* Table column indexes (as the preupdate hook numbers them) of the blob
 * columns and key fields, from the table as it really is on disk. */
static int load_cids(cs_sync_model *sm, const cs_model *m, sqlite3 *conn)
{
    cs_buf sql = CS_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int rc = cs_buf_puts(&sql, "SELECT cid, name FROM pragma_table_info(?1)") ? SQLITE_NOMEM
             : sqlite3_prepare_v2(conn, sql.data, -1, &st, NULL);
    cs_buf_free(&sql);
    free(sm->tcols);
    sm->tcols = rc == SQLITE_OK ? malloc((sm->ncols ? sm->ncols : 1) * sizeof(int)) : NULL;
    if (rc == SQLITE_OK && !sm->tcols)
        rc = SQLITE_NOMEM;
    for (size_t k = 0; rc == SQLITE_OK && k < sm->ncols; k++)
        sm->tcols[k] = -1;
    for (size_t i = 0; i < m->npk && i < 16; i++)
        sm->pkcid[i] = -1;
    if (rc == SQLITE_OK)
        sqlite3_bind_text(st, 1, m->table, -1, SQLITE_STATIC);
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        int cid = sqlite3_column_int(st, 0);
        const char *name = (const char *)sqlite3_column_text(st, 1);
        for (size_t k = 0; k < sm->ncols; k++)
            if (sm->cols[k] >= 0 && strcmp(m->fields[sm->cols[k]].column, name) == 0)
                sm->tcols[k] = cid;
        for (size_t i = 0; i < m->npk && i < 16; i++)
            if (strcmp(m->fields[m->pk[i]].column, name) == 0)
                sm->pkcid[i] = cid;
    }
    sqlite3_finalize(st);
    for (size_t i = 0; rc == SQLITE_OK && i < m->npk; i++)
        if (i >= 16 || sm->pkcid[i] < 0) {
            /* The table is not there yet (not bootstrapped): no capture. */
            free(sm->tcols);
            sm->tcols = NULL;
        }
    return rc;
}

int cs_sync_load_models(cs_sync *s, sqlite3 *conn)
{
    const cstack_schema *schema = s->schema;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, "SELECT field, idx FROM _cstack_sync_cols WHERE model = ?1 "
                                      "ORDER BY idx",
                                -1, &st, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < s->nmodels; i++) {
        cs_sync_model *sm = &s->models[i];
        const cs_model *m = &schema->models[i];
        free(sm->cols);
        sm->cols = NULL;
        sm->ncols = 0;
        if (!sm->synced)
            continue;
        sm->has_table = cs_table_exists(conn, sm->clk_table);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            int64_t idx = sqlite3_column_int64(st, 1);
            if (idx != (int64_t)sm->ncols || idx >= CS_CLK_MAX_COLS) {
                rc = SQLITE_CORRUPT;
                break;
            }
            int *cols = realloc(sm->cols, (sm->ncols + 1) * sizeof *cols);
            if (!cols) {
                rc = SQLITE_NOMEM;
                break;
            }
            sm->cols = cols;
            sm->cols[sm->ncols++] =
                cs_field_find(m, (const char *)sqlite3_column_text(st, 0));
        }
        if (rc == SQLITE_DONE)
            rc = load_cids(sm, m, conn);
        if (rc == SQLITE_OK && cs_sync_clkrow_sql(sm, m))
            rc = SQLITE_NOMEM;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Appends registry entries for the model's column fields not yet in it. */
static int register_columns(cs_sync *s, sqlite3 *conn, size_t mi, cs_buf *report)
{
    const cs_model *m = &s->schema->models[mi];
    cs_sync_model *sm = &s->models[mi];
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn,
                                "INSERT INTO _cstack_sync_cols(model, field, idx) VALUES (?1, ?2, ?3)",
                                -1, &st, NULL);
    size_t next = sm->ncols;
    for (size_t f = 0; rc == SQLITE_OK && f < m->nfields; f++) {
        if (!cs_field_is_column(&m->fields[f]) || is_pk(m, (int)f))
            continue;
        bool known = false;
        for (size_t k = 0; k < sm->ncols; k++)
            known = known || sm->cols[k] == (int)f;
        if (known)
            continue;
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, m->fields[f].name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)next++);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(conn);
    }
    sqlite3_finalize(st);
    (void)report;
    return rc;
}

static int ensure_site(cs_sync *s, sqlite3 *conn)
{
    int rc = cs_sync_load_sites(s, conn);
    if (rc != SQLITE_OK || s->nsites > 0)
        return rc;
    unsigned char site[CS_SITE_LEN];
    cs_random_bytes(site, sizeof site);
    uint32_t ord;
    return cs_site_ordinal(s, conn, site, &ord);
}

static int exec_buf(sqlite3 *conn, cs_buf *b)
{
    if (!b->len)
        return SQLITE_OK;
    return sqlite3_exec(conn, b->data, NULL, NULL, NULL);
}

int cs_sync_backfill(cs_sync *s, int mi)
{
    sqlite3 *conn = cs_write_conn(s->db)->db;
    const cs_model *m = &s->schema->models[mi];
    const cs_sync_model *sm = &s->models[mi];
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_buf_puts(&sql, "SELECT ");
    rc = rc ? rc : cs_sync_pk_list(&sql, m, "t.");
    rc = rc ? rc : cs_buf_puts(&sql, " FROM ");
    rc = rc ? rc : cs_buf_ident(&sql, m->table);
    rc = rc ? rc : cs_buf_puts(&sql, " AS t WHERE NOT EXISTS (SELECT 1 FROM ");
    rc = rc ? rc : cs_buf_ident(&sql, sm->clk_table);
    rc = rc ? rc : cs_buf_puts(&sql, " AS c WHERE ");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        const char *c = m->fields[m->pk[i]].column;
        rc = cs_buf_puts(&sql, i ? " AND c." : "c.");
        rc = rc ? rc : cs_buf_ident(&sql, c);
        rc = rc ? rc : cs_buf_puts(&sql, " = t.");
        rc = rc ? rc : cs_buf_ident(&sql, c);
    }
    rc = rc ? rc : cs_buf_puts(&sql, ")");
    sqlite3_stmt *st = NULL;
    int src = rc ? SQLITE_NOMEM : sqlite3_prepare_v2(conn, sql.data, -1, &st, NULL);
    cs_buf_free(&sql);
    /* Recorded like inserts made now, in the capture log format. */
    while (src == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        unsigned char op = 1;
        cs_buf *b = &s->captured;
        rc = cs_wr_varint(b, (uint64_t)mi);
        rc = rc ? rc : cs_buf_append(b, &op, 1);
        for (size_t i = 0; i < m->npk && !rc; i++) {
            cs_cs_value v;
            cs_cs_value_from_stmt(&v, st, (int)i);
            rc = cs_cs_put_value(b, &v);
        }
        if (rc)
            src = SQLITE_NOMEM;
    }
    sqlite3_finalize(st);
    return src == SQLITE_OK ? 0 : cs_err_sqlite(m, conn, src);
}

/* Files made before hidden rows recorded their reason get the column; their
 * parked rows say '' until the next merge decides them again. */
static int parked_reason_column(sqlite3 *conn)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        conn, "SELECT 1 FROM pragma_table_info('_cstack_parked') WHERE name = 'reason'", -1, &st,
        NULL);
    bool have = rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && !have)
        rc = sqlite3_exec(conn,
                          "ALTER TABLE _cstack_parked ADD COLUMN reason TEXT NOT NULL DEFAULT ''",
                          NULL, NULL, NULL);
    return rc;
}

/* The text of a _cstack_meta entry (malloc'd), NULL when absent. */
static char *meta_text(sqlite3 *conn, const char *key)
{
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (sqlite3_prepare_v2(conn, "SELECT value FROM _cstack_meta WHERE key = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            out = cs_strdup((const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return out;
}

/* Folds what an earlier process captured.  Bootstrap runs after a migration
 * and before the new schema is recorded, so _cstack_meta still names the
 * schema the log was written under: its model indexes are mapped by name
 * (pending writes made before an app update keep their columns). */
static int fold_old_log(cs_sync *s, sqlite3 *conn)
{
    char *hash = meta_text(conn, "schema_hash"), *src = meta_text(conn, "schema_source");
    cstack_schema *old = NULL;
    if (hash && src && strcmp(hash, s->schema->hash) != 0) {
        cstack_diags *d = NULL;
        if (cstack_schema_parse("(stored schema)", src, strlen(src), &old, &d) != 0)
            old = NULL;
        cstack_diags_free(d);
    }
    free(hash);
    free(src);
    int *map = old ? calloc(old->nmodels ? old->nmodels : 1, sizeof *map) : NULL;
    for (size_t i = 0; map && i < old->nmodels; i++)
        map[i] = cs_model_find(s->schema, old->models[i].name);
    s->log_models = map;
    s->nlog_models = map ? old->nmodels : 0;
    int rc = old && !map ? cs_err(CSTACK_ENOMEM, "out of memory") : cs_sync_materialize(s);
    s->log_models = NULL;
    s->nlog_models = 0;
    free(map);
    cstack_schema_free(old);
    return rc;
}

int cs_sync_bootstrap(void *ctx, cstack *db, cs_buf *report)
{
    cs_sync *s = ctx;
    sqlite3 *conn = cs_write_conn(db)->db;
    int rc = sqlite3_exec(conn, SYNC_TABLES, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = parked_reason_column(conn);
    if (rc == SQLITE_OK)
        rc = ensure_site(s, conn);
    if (rc == SQLITE_OK)
        rc = cs_sync_load_models(s, conn);
    cs_buf sql = CS_BUF_INIT;
    for (size_t i = 0; rc == SQLITE_OK && i < s->nmodels; i++) {
        const cs_model *m = &s->schema->models[i];
        cs_sync_model *sm = &s->models[i];
        if (!sm->synced)
            continue;
        bool fresh = !cs_table_exists(conn, sm->clk_table);
        rc = register_columns(s, conn, i, report);
        cs_buf_reset(&sql);
        if (rc == SQLITE_OK && cs_clock_sql_ddl(&sql, m, sm->clk_table))
            rc = SQLITE_NOMEM;
        if (rc == SQLITE_OK)
            rc = exec_buf(conn, &sql);
        if (rc == SQLITE_OK && fresh)
            cs_buf_printf(report, "sync: tracking model %s (clock table \"%s\")\n", m->name,
                          sm->clk_table);
    }
    cs_buf_free(&sql);
    if (rc != SQLITE_OK)
        return cs_err_sqlite(NULL, conn, rc);
    /* Capture from here on; rows written before are recorded now, in this
     * transaction. */
    rc = cs_sync_load_all(s, conn);
    if (rc != SQLITE_OK)
        return cs_err_sqlite(NULL, conn, rc);
    /* Transactions an earlier process captured but never folded are tracked
     * already: fold them first, or the backfill below would take their rows
     * for untracked ones and re-record them all as one new transaction. */
    int err = fold_old_log(s, conn);
    for (size_t i = 0; !err && i < s->nmodels; i++)
        if (s->models[i].synced)
            err = cs_sync_backfill(s, (int)i);
    return err ? err : cs_capture_flush(s, db);
}
