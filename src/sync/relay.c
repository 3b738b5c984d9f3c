/* relay.c -- what a device does with its server: merging what the server
 * relays, forgetting the rows of a batch the server refused, and forgetting
 * whole models for a self-repair.
 *
 * A server judges every clock it accepts against its own time (its merges
 * refuse clocks past the bound), so a device merges what it relays without
 * judging them again: two devices' clocks disagreeing must never stop one of
 * them from syncing.  Peers exchanging changesets directly still judge
 * (cstack_changes_apply).
 *
 * A refused batch is undone by forgetting its rows, as a server's drops
 * make a device forget rows: data, parked copy and clock row go, nothing is
 * captured, and the device's next pull from cursor 0 brings back whatever
 * the server holds of them.  A self-repair forgets every row of the models
 * whose checksums differ from the server's the same way (but rows with
 * pending local writes), and pulls them all again from cursor 0. */
#include <stdlib.h>
#include <string.h>

#include "sync/sync_ext.h"

int cs_changes_apply_relayed(cstack *db, const void *changeset, size_t len,
                             cstack_apply_stats *stats)
{
    cs_enter(db);
    static const cs_apply_opts relayed = {.trust_clocks = true, .own_echoes_acked = true};
    if (cs_holds_write_lock(db))
        return cs_err(CSTACK_EMISUSE, "a relayed changeset cannot be merged inside a transaction");
    int rc = cs_write_begin_opts(db, CS_WRITE_MERGE);
    rc = rc ? rc : cs_write_end(db, cs_merge(db, changeset, len, &relayed, stats));
    if (rc && stats)
        memset(stats, 0, sizeof *stats);
    return rc;
}

/* Appends the drop of one row (causal length 0, no columns). */
static int put_drop(cs_cs_writer *w, int model, int64_t ver, const cs_cs_value *pk, size_t npk)
{
    cs_buf *b = &w->body;
    int rc = cs_wr_varint(b, (uint64_t)model);
    rc = rc ? rc : cs_wr_varint(b, (uint64_t)ver);
    rc = rc ? rc : cs_wr_varint(b, 0);
    for (size_t k = 0; k < npk && !rc; k++)
        rc = cs_cs_put_value(b, &pk[k]);
    rc = rc ? rc : cs_wr_varint(b, 0);
    w->nrows++;
    return rc;
}

/* The drops of every row `changeset` carries, made with db's schema. */
static int drops_of(cs_sync *s, const void *changeset, size_t len, void **out, size_t *outlen)
{
    cs_reader r = {changeset, len, 0};
    cs_cs_header h;
    cs_cs_row row;
    char err[256] = "";
    size_t maxf = 1;
    for (size_t i = 0; i < s->schema->nmodels; i++)
        if (s->schema->models[i].nfields > maxf)
            maxf = s->schema->models[i].nfields;
    memset(&row, 0, sizeof row);
    row.cols = calloc(maxf, sizeof *row.cols);
    cs_cs_writer w;
    memset(&w, 0, sizeof w);
    int rc = row.cols ? cs_cs_read_header(&r, &h, err, sizeof err) : CSTACK_ENOMEM;
    if (!rc && strcmp(h.hash, s->schema->hash) != 0)
        rc = cs_err(CSTACK_ESCHEMA, "the batch was made with schema %s, not this database's %s",
                    h.hash, s->schema->hash);
    for (uint64_t i = 0; !rc && i < h.nrows; i++) {
        if (cs_cs_read_row(&r, s->schema, &h, &row, err, sizeof err)) {
            rc = CSTACK_EINVAL;
            break;
        }
        rc = put_drop(&w, row.model, row.ver, row.pk, row.npk);
    }
    if (rc == CSTACK_EINVAL && err[0])
        rc = cs_err(CSTACK_EINVAL, "a refused batch: %s", err);
    else if (rc == CSTACK_ENOMEM)
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    rc = rc ? rc : cs_cs_finish(&w, s->schema, s->site, 0, 0, out, outlen);
    cs_cs_writer_free(&w);
    free(row.cols);
    return rc;
}

int cs_changes_forget(cstack *db, const void *changeset, size_t len,
                      int (*also)(sqlite3 *conn, void *ctx), void *ctx)
{
    cs_enter(db);
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc)
        return rc;
    if (cs_holds_write_lock(db))
        return cs_err(CSTACK_EMISUSE, "rows cannot be forgotten inside a transaction");
    void *drops = NULL;
    size_t dlen = 0;
    if ((rc = drops_of(s, changeset, len, &drops, &dlen)))
        return rc;
    static const cs_apply_opts forget = {.trust_clocks = true};
    rc = cs_write_begin_opts(db, CS_WRITE_MERGE);
    if (!rc) {
        int mrc = cs_merge(db, drops, dlen, &forget, NULL);
        mrc = mrc ? mrc : also ? also(cs_write_conn(db)->db, ctx) : 0;
        rc = cs_write_end(db, mrc);
    }
    free(drops);
    return rc;
}

/* ---- forgetting whole models (self-repair) ------------------------------ */

/* The keys of model m's rows a repair forgets: every clock row not touched
 * after `keep_after` (a later local write is pending and must stay), and
 * every row of the table without a clock row (written by another program). */
static int keys_sql(cs_buf *q, const cs_model *m, const char *clk)
{
    int rc = cs_buf_puts(q, "SELECT ");
    for (size_t k = 0; k < m->npk && !rc; k++) {
        rc = k ? cs_buf_puts(q, ", ") : 0;
        rc = rc ? rc : cs_buf_ident(q, m->fields[m->pk[k]].column);
    }
    rc = rc ? rc : cs_buf_puts(q, " FROM ");
    rc = rc ? rc : cs_buf_ident(q, clk);
    rc = rc ? rc : cs_buf_puts(q, " WHERE _cstack_ver <= ?1 UNION SELECT ");
    for (size_t k = 0; k < m->npk && !rc; k++) {
        rc = k ? cs_buf_puts(q, ", ") : 0;
        rc = rc ? rc : cs_buf_puts(q, "t.");
        rc = rc ? rc : cs_buf_ident(q, m->fields[m->pk[k]].column);
    }
    rc = rc ? rc : cs_buf_puts(q, " FROM ");
    rc = rc ? rc : cs_buf_ident(q, m->table);
    rc = rc ? rc : cs_buf_puts(q, " AS t WHERE NOT EXISTS (SELECT 1 FROM ");
    rc = rc ? rc : cs_buf_ident(q, clk);
    rc = rc ? rc : cs_buf_puts(q, " AS k WHERE ");
    for (size_t k = 0; k < m->npk && !rc; k++) {
        const char *col = m->fields[m->pk[k]].column;
        rc = k ? cs_buf_puts(q, " AND ") : 0;
        rc = rc ? rc : cs_buf_puts(q, "k.");
        rc = rc ? rc : cs_buf_ident(q, col);
        rc = rc ? rc : cs_buf_puts(q, " = t.");
        rc = rc ? rc : cs_buf_ident(q, col);
    }
    return rc ? rc : cs_buf_puts(q, ")");
}

/* Appends the drops of model mi's forgettable rows to w. */
static int model_drops(cs_sync *s, sqlite3 *conn, int mi, int64_t keep_after, cs_cs_writer *w)
{
    const cs_model *m = &s->schema->models[mi];
    cs_buf q = CS_BUF_INIT;
    sqlite3_stmt *st = NULL;
    int rc = keys_sql(&q, m, s->models[mi].clk_table);
    int src = rc ? SQLITE_OK : sqlite3_prepare_v2(conn, q.data, (int)q.len, &st, NULL);
    cs_buf_free(&q);
    if (rc || src != SQLITE_OK)
        return rc ? rc : cs_err_sqlite(m, conn, src);
    sqlite3_bind_int64(st, 1, keep_after);
    cs_cs_value pk[16];
    while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        for (size_t k = 0; k < m->npk && k < 16; k++)
            cs_cs_value_from_stmt(&pk[k], st, (int)k);
        rc = put_drop(w, mi, 0, pk, m->npk);
    }
    if (!rc && src != SQLITE_DONE)
        rc = cs_err_sqlite(m, conn, src);
    sqlite3_finalize(st);
    return rc;
}

/* Inside the merge scope: folds the capture log (so the versions of local
 * writes are in the clock rows), then writes the drops. */
static int forget_in_scope(cstack *db, cs_sync *s, const bool *models, int64_t keep_after,
                           int64_t *rows)
{
    sqlite3 *conn = cs_write_conn(db)->db;
    cs_cs_writer w;
    memset(&w, 0, sizeof w);
    void *drops = NULL;
    size_t dlen = 0;
    int rc = cs_sync_materialize(s);
    for (size_t mi = 0; mi < s->schema->nmodels && !rc; mi++)
        if (models[mi] && s->models[mi].synced && s->models[mi].has_table)
            rc = model_drops(s, conn, (int)mi, keep_after, &w);
    *rows = (int64_t)w.nrows;
    rc = rc ? rc : cs_cs_finish(&w, s->schema, s->site, 0, 0, &drops, &dlen);
    cs_cs_writer_free(&w);
    static const cs_apply_opts forget = {.trust_clocks = true};
    rc = rc ? rc : cs_merge(db, drops, dlen, &forget, NULL);
    free(drops);
    return rc;
}

int cs_changes_forget_models(cstack *db, const bool *models, int64_t keep_after,
                             int (*also)(sqlite3 *conn, void *ctx), void *ctx, int64_t *rows)
{
    cs_enter(db);
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc || !models || !rows)
        return rc ? rc : CSTACK_EMISUSE;
    *rows = 0;
    if (cs_holds_write_lock(db))
        return cs_err(CSTACK_EMISUSE, "rows cannot be forgotten inside a transaction");
    rc = cs_write_begin_opts(db, CS_WRITE_MERGE);
    if (!rc) {
        int mrc = forget_in_scope(db, s, models, keep_after, rows);
        mrc = mrc ? mrc : also ? also(cs_write_conn(db)->db, ctx) : 0;
        rc = cs_write_end(db, mrc);
    }
    if (rc)
        *rows = 0;
    return rc;
}
