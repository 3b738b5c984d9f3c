/* triggers.c -- the sync tables, the column registry and the capture
 * triggers, created and refreshed by bootstrap.
 *
 * Each synced model M gets a clock table
 *
 *   _cstack_clk_M(<primary key columns>, _cstack_cl, _cstack_ver, _cstack_clk)
 *
 * (WITHOUT ROWID, keyed like M) holding the row's causal length (odd:
 * alive, even: deleted), the highest local version that touched it (indexed:
 * exports scan it) and the clock blob (sync.h).  A row stays there after
 * its deletion: it is the tombstone.
 *
 * Blob columns follow _cstack_sync_cols, an append-only registry of each
 * model's non-key fields, so adding a field never renumbers the others. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"
#include "util/buf.h"

static const char SYNC_TABLES[] =
    "CREATE TABLE IF NOT EXISTS _cstack_sync_state(key TEXT PRIMARY KEY, value INTEGER);\n"
    "CREATE TABLE IF NOT EXISTS _cstack_sites(ord INTEGER PRIMARY KEY, site BLOB NOT NULL "
    "UNIQUE);\n"
    "CREATE TABLE IF NOT EXISTS _cstack_sync_cols(model TEXT NOT NULL, field TEXT NOT NULL, "
    "idx INTEGER NOT NULL, PRIMARY KEY(model, field));\n"
    "CREATE TABLE IF NOT EXISTS _cstack_parked(model TEXT NOT NULL, pk BLOB NOT NULL, "
    "row BLOB NOT NULL, PRIMARY KEY(model, pk));\n"
    "CREATE TABLE IF NOT EXISTS _cstack_peers(site BLOB PRIMARY KEY, ver INTEGER NOT NULL);\n";

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

int cs_sync_load_models(cs_sync *s, sqlite3 *conn)
{
    const cstack_schema *schema = s->db->schema;
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
            rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Appends registry entries for the model's column fields not yet in it. */
static int register_columns(cs_sync *s, sqlite3 *conn, size_t mi, cs_buf *report)
{
    const cs_model *m = &s->db->schema->models[mi];
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

static int clock_table_ddl(cs_buf *b, const cs_model *m, const char *clk)
{
    int rc = cs_buf_puts(b, "CREATE TABLE IF NOT EXISTS ");
    rc = rc ? rc : cs_buf_ident(b, clk);
    rc = rc ? rc : cs_buf_puts(b, "(");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        rc = cs_buf_ident(b, m->fields[m->pk[i]].column);
        rc = rc ? rc : cs_buf_puts(b, " BLOB NOT NULL, ");
    }
    rc = rc ? rc : cs_buf_puts(b, "_cstack_cl INTEGER NOT NULL, _cstack_ver INTEGER NOT NULL, "
                                  "_cstack_clk BLOB NOT NULL, PRIMARY KEY(");
    rc = rc ? rc : cs_sync_pk_list(b, m, NULL);
    rc = rc ? rc : cs_buf_puts(b, ")) WITHOUT ROWID;\nCREATE INDEX IF NOT EXISTS ");
    rc = rc ? rc : cs_buf_printf(b, "\"%s_ver\" ON ", clk);
    rc = rc ? rc : cs_buf_ident(b, clk);
    return rc ? rc : cs_buf_puts(b, "(_cstack_ver);\n");
}

/* `(OLD."a" IS NOT NEW."a") << 0 | ...` for blob columns [from, from+62). */
static int mask_expr(cs_buf *b, const cs_model *m, const cs_sync_model *sm, size_t from)
{
    int rc = cs_buf_puts(b, "(0");
    for (size_t k = from; k < sm->ncols && k < from + 62 && !rc; k++) {
        if (sm->cols[k] < 0)
            continue;
        const char *c = m->fields[sm->cols[k]].column;
        rc = cs_buf_puts(b, " | ((OLD.");
        rc = rc ? rc : cs_buf_ident(b, c);
        rc = rc ? rc : cs_buf_puts(b, " IS NOT NEW.");
        rc = rc ? rc : cs_buf_ident(b, c);
        rc = rc ? rc : cs_buf_printf(b, ") << %zu)", k - from);
    }
    return rc ? rc : cs_buf_puts(b, ")");
}

/* INSERT of a clock row for `rowref` ("NEW"/"OLD"): `cl` for a new row,
 * `conflict` the SET clause when it exists. */
static int upsert_clock(cs_buf *b, const cs_model *m, const cs_sync_model *sm, const char *rowref,
                        int cl, const char *clk_new, const char *conflict)
{
    int rc = cs_buf_puts(b, "  INSERT INTO ");
    rc = rc ? rc : cs_buf_ident(b, sm->clk_table);
    rc = rc ? rc : cs_buf_puts(b, "(");
    rc = rc ? rc : cs_sync_pk_list(b, m, NULL);
    rc = rc ? rc : cs_buf_puts(b, ", _cstack_cl, _cstack_ver, _cstack_clk) VALUES (");
    char prefix[8];
    snprintf(prefix, sizeof prefix, "%s.", rowref);
    rc = rc ? rc : cs_sync_pk_list(b, m, prefix);
    rc = rc ? rc : cs_buf_printf(b, ", %d, cstack_sync_ver(), %s) ON CONFLICT DO UPDATE SET %s;\n",
                                 cl, clk_new, conflict);
    return rc;
}

static int triggers_ddl(cs_buf *b, const cs_model *m, const cs_sync_model *sm)
{
    char all[64];
    snprintf(all, sizeof all, "cstack_clk_all(%zu)", sm->ncols);
    char exist[96];
    snprintf(exist, sizeof exist, "cstack_clk_exist(_cstack_clk, %zu)", sm->ncols);
    cs_buf pkeq = CS_BUF_INIT, touch = CS_BUF_INIT, set = CS_BUF_INIT, changed = CS_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < m->npk && !rc; i++) {
        const char *c = m->fields[m->pk[i]].column;
        rc = cs_buf_puts(&pkeq, i ? " AND OLD." : "OLD.");
        rc = rc ? rc : cs_buf_ident(&pkeq, c);
        rc = rc ? rc : cs_buf_puts(&pkeq, " IS NEW.");
        rc = rc ? rc : cs_buf_ident(&pkeq, c);
    }
    rc = rc ? rc : cs_buf_printf(&touch, "cstack_clk_touch(_cstack_clk, %zu", sm->ncols);
    rc = rc ? rc : cs_buf_puts(&changed, "(0");
    for (size_t from = 0; !rc && (from < sm->ncols || from == 0); from += 62) {
        rc = cs_buf_puts(&touch, ", ");
        rc = rc ? rc : mask_expr(&touch, m, sm, from);
        rc = rc ? rc : cs_buf_puts(&changed, " OR ");
        rc = rc ? rc : mask_expr(&changed, m, sm, from);
        rc = rc ? rc : cs_buf_puts(&changed, " != 0");
    }
    rc = rc ? rc : cs_buf_puts(&changed, ")");
    rc = rc ? rc : cs_buf_puts(&touch, ")");
    const char *tbl = m->table, *name = m->name;
    /* Insert: a new row, or the re-insert of a deleted one (odd cl). */
    rc = rc ? rc : cs_buf_printf(b, "CREATE TRIGGER \"_cstack_ins_%s\" AFTER INSERT ON ", name);
    rc = rc ? rc : cs_buf_ident(b, tbl);
    rc = rc ? rc : cs_buf_puts(b, " WHEN cstack_sync_capture() BEGIN\n");
    rc = rc ? rc : cs_buf_printf(&set, "_cstack_cl = _cstack_cl + 1 - (_cstack_cl %% 2), "
                                       "_cstack_ver = excluded._cstack_ver, _cstack_clk = %s",
                                 all);
    rc = rc ? rc : upsert_clock(b, m, sm, "NEW", 1, all, set.data);
    rc = rc ? rc : cs_buf_puts(b, "END;\n");
    /* Update of non-key columns. */
    rc = rc ? rc : cs_buf_printf(b, "CREATE TRIGGER \"_cstack_upd_%s\" AFTER UPDATE ON ", name);
    rc = rc ? rc : cs_buf_ident(b, tbl);
    rc = rc ? rc : cs_buf_printf(b, " WHEN cstack_sync_capture() AND %s AND %s BEGIN\n",
                                 pkeq.data, changed.data);
    cs_buf_reset(&set);
    rc = rc ? rc : cs_buf_printf(&set, "_cstack_ver = excluded._cstack_ver, _cstack_clk = %s",
                                 touch.data);
    rc = rc ? rc : upsert_clock(b, m, sm, "NEW", 1, all, set.data);
    rc = rc ? rc : cs_buf_puts(b, "END;\n");
    /* A changed primary key is a delete of the old row and an insert. */
    rc = rc ? rc : cs_buf_printf(b, "CREATE TRIGGER \"_cstack_key_%s\" AFTER UPDATE ON ", name);
    rc = rc ? rc : cs_buf_ident(b, tbl);
    rc = rc ? rc : cs_buf_printf(b, " WHEN cstack_sync_capture() AND NOT (%s) BEGIN\n", pkeq.data);
    cs_buf_reset(&set);
    rc = rc ? rc : cs_buf_printf(&set, "_cstack_cl = _cstack_cl + (_cstack_cl %% 2), "
                                       "_cstack_ver = excluded._cstack_ver, _cstack_clk = %s",
                                 exist);
    rc = rc ? rc : upsert_clock(b, m, sm, "OLD", 2, all, set.data);
    cs_buf_reset(&set);
    rc = rc ? rc : cs_buf_printf(&set, "_cstack_cl = _cstack_cl + 1 - (_cstack_cl %% 2), "
                                       "_cstack_ver = excluded._cstack_ver, _cstack_clk = %s",
                                 all);
    rc = rc ? rc : upsert_clock(b, m, sm, "NEW", 1, all, set.data);
    rc = rc ? rc : cs_buf_puts(b, "END;\n");
    /* Delete: the clock row stays as the tombstone (even cl). */
    rc = rc ? rc : cs_buf_printf(b, "CREATE TRIGGER \"_cstack_del_%s\" AFTER DELETE ON ", name);
    rc = rc ? rc : cs_buf_ident(b, tbl);
    rc = rc ? rc : cs_buf_puts(b, " WHEN cstack_sync_capture() BEGIN\n");
    cs_buf_reset(&set);
    rc = rc ? rc : cs_buf_printf(&set, "_cstack_cl = _cstack_cl + (_cstack_cl %% 2), "
                                       "_cstack_ver = excluded._cstack_ver, _cstack_clk = %s",
                                 exist);
    rc = rc ? rc : upsert_clock(b, m, sm, "OLD", 2, all, set.data);
    rc = rc ? rc : cs_buf_puts(b, "END;\n");
    cs_buf_free(&pkeq);
    cs_buf_free(&touch);
    cs_buf_free(&set);
    cs_buf_free(&changed);
    return rc;
}

static int drop_triggers(cs_buf *b, const cs_model *m)
{
    static const char *const kinds[] = {"ins", "upd", "key", "del"};
    int rc = 0;
    for (size_t k = 0; k < 4 && !rc; k++)
        rc = cs_buf_printf(b, "DROP TRIGGER IF EXISTS \"_cstack_%s_%s\";\n", kinds[k], m->name);
    return rc;
}

/* Rows that exist without a clock row (data from before the model was
 * synced) are recorded as written now, so they sync like any other. */
static int backfill(cs_buf *b, const cs_model *m, const cs_sync_model *sm)
{
    int rc = cs_buf_puts(b, "INSERT INTO ");
    rc = rc ? rc : cs_buf_ident(b, sm->clk_table);
    rc = rc ? rc : cs_buf_puts(b, "(");
    rc = rc ? rc : cs_sync_pk_list(b, m, NULL);
    rc = rc ? rc : cs_buf_puts(b, ", _cstack_cl, _cstack_ver, _cstack_clk) SELECT ");
    rc = rc ? rc : cs_sync_pk_list(b, m, "t.");
    rc = rc ? rc : cs_buf_printf(b, ", 1, cstack_sync_ver(), cstack_clk_all(%zu) FROM ", sm->ncols);
    rc = rc ? rc : cs_buf_ident(b, m->table);
    rc = rc ? rc : cs_buf_puts(b, " AS t WHERE NOT EXISTS (SELECT 1 FROM ");
    rc = rc ? rc : cs_buf_ident(b, sm->clk_table);
    rc = rc ? rc : cs_buf_puts(b, " AS c WHERE ");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        const char *c = m->fields[m->pk[i]].column;
        rc = cs_buf_puts(b, i ? " AND c." : "c.");
        rc = rc ? rc : cs_buf_ident(b, c);
        rc = rc ? rc : cs_buf_puts(b, " = t.");
        rc = rc ? rc : cs_buf_ident(b, c);
    }
    return rc ? rc : cs_buf_puts(b, ");\n");
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

int cs_sync_bootstrap(void *ctx, cstack *db, cs_buf *report)
{
    cs_sync *s = ctx;
    sqlite3 *conn = db->writer.db;
    int rc = sqlite3_exec(conn, SYNC_TABLES, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = ensure_site(s, conn);
    if (rc == SQLITE_OK)
        rc = cs_sync_load_models(s, conn);
    cs_buf sql = CS_BUF_INIT;
    for (size_t i = 0; rc == SQLITE_OK && i < s->nmodels; i++) {
        const cs_model *m = &db->schema->models[i];
        cs_sync_model *sm = &s->models[i];
        cs_buf_reset(&sql);
        if (drop_triggers(&sql, m) || (rc = exec_buf(conn, &sql)) != SQLITE_OK)
            break;
        if (!sm->synced)
            continue;
        bool fresh = !cs_table_exists(conn, sm->clk_table);
        rc = register_columns(s, conn, i, report);
        if (rc == SQLITE_OK)
            rc = cs_sync_load_models(s, conn);
        cs_buf_reset(&sql);
        if (rc == SQLITE_OK &&
            (clock_table_ddl(&sql, m, sm->clk_table) || triggers_ddl(&sql, m, sm)))
            rc = SQLITE_NOMEM;
        if (rc == SQLITE_OK)
            rc = exec_buf(conn, &sql);
        if (rc == SQLITE_OK && fresh)
            cs_buf_printf(report, "sync: tracking model %s (clock table \"%s\")\n", m->name,
                          sm->clk_table);
    }
    /* The triggers capture from here on; rows written before are recorded. */
    if (rc == SQLITE_OK)
        rc = cs_sync_load_all(s, conn);
    for (size_t i = 0; rc == SQLITE_OK && i < s->nmodels; i++) {
        if (!s->models[i].synced)
            continue;
        cs_buf_reset(&sql);
        if (backfill(&sql, &db->schema->models[i], &s->models[i]))
            rc = SQLITE_NOMEM;
        else
            rc = exec_buf(conn, &sql);
    }
    cs_buf_free(&sql);
    return rc == SQLITE_OK ? 0 : cs_err_sqlite(NULL, conn, rc);
}
