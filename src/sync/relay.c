/* relay.c -- what a device does with its server: merging what the server
 * relays, and forgetting the rows of a batch the server refused.
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
 * the server holds of them. */
#include <stdlib.h>
#include <string.h>

#include "sync/sync_ext.h"

int cs_changes_apply_relayed(cstack *db, const void *changeset, size_t len,
                             cstack_apply_stats *stats)
{
    cs_enter(db);
    static const cs_apply_opts relayed = {.trust_clocks = true};
    if (cs_holds_write_lock(db))
        return cs_err(CSTACK_EMISUSE, "a relayed changeset cannot be merged inside a transaction");
    int rc = cs_write_begin_opts(db, CS_WRITE_MERGE);
    rc = rc ? rc : cs_write_end(db, cs_merge(db, changeset, len, &relayed, stats));
    if (rc && stats)
        memset(stats, 0, sizeof *stats);
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
        cs_buf *b = &w.body;
        rc = cs_wr_varint(b, (uint64_t)row.model);
        rc = rc ? rc : cs_wr_varint(b, (uint64_t)row.ver);
        rc = rc ? rc : cs_wr_varint(b, 0);
        for (size_t k = 0; k < row.npk && !rc; k++)
            rc = cs_cs_put_value(b, &row.pk[k]);
        rc = rc ? rc : cs_wr_varint(b, 0);
        w.nrows++;
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
