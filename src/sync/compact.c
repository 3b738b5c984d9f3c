/* compact.c -- peer acknowledgements and compaction.
 *
 * A tombstone (a clock row with an even causal length) must outlive every
 * peer that might still send the row's older, alive state: without it that
 * state would resurrect the row.  Once every known peer has acknowledged
 * this database's changes up to a version, tombstones recorded at or before
 * it can go.  Superseded clocks need no compaction: a row's clock blob drops
 * the entries no column refers to every time it is written. */
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"
#include "util/hex.h"

int cstack_sync_peer_ack(cstack *db, const char *peer, int64_t version)
{
    cs_enter(db);
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc)
        return rc;
    unsigned char site[CS_SITE_LEN];
    if (!peer || strlen(peer) != 2 * CS_SITE_LEN || version < 0)
        return cs_err(CSTACK_EINVAL, "a peer is named by 32 hex digits and a version >= 0");
    if (cs_hex_decode(peer, CS_SITE_LEN, site))
        return cs_err(CSTACK_EINVAL, "peer site id '%s' is not hex", peer);
    if ((rc = cs_write_begin(db)))
        return rc;
    sqlite3 *conn = cs_write_conn(db)->db;
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(conn,
                                 "INSERT INTO _cstack_peers(site, ver) VALUES (?1, ?2) "
                                 "ON CONFLICT(site) DO UPDATE SET ver = max(ver, excluded.ver)",
                                 -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, site, CS_SITE_LEN, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, version);
        src = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(conn);
    }
    sqlite3_finalize(st);
    if (src != SQLITE_OK)
        rc = cs_err_sqlite(NULL, conn, src);
    return cs_write_end(db, rc);
}

static int compact_model(cstack *db, const cs_sync_model *sm, int64_t upto, int64_t *removed)
{
    sqlite3 *conn = cs_write_conn(db)->db;
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_buf_puts(&sql, "DELETE FROM ");
    rc = rc ? rc : cs_buf_ident(&sql, sm->clk_table);
    rc = rc ? rc : cs_buf_puts(&sql, " WHERE _cstack_ver <= ?1 AND _cstack_cl % 2 = 0");
    sqlite3_stmt *st = NULL;
    int src = rc ? SQLITE_NOMEM : sqlite3_prepare_v2(conn, sql.data, -1, &st, NULL);
    cs_buf_free(&sql);
    if (src == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, upto);
        src = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(conn);
        *removed += sqlite3_changes64(conn);
    }
    sqlite3_finalize(st);
    return src == SQLITE_OK ? 0 : cs_err_sqlite(NULL, conn, src);
}

int cstack_sync_compact(cstack *db, int64_t *removed)
{
    cs_enter(db);
    cs_sync *s = NULL;
    int64_t n = 0;
    if (removed)
        *removed = 0;
    int rc = cs_sync_require(db, &s);
    if (rc || (rc = cs_write_begin(db)))
        return rc;
    rc = cs_sync_materialize(s);
    sqlite3 *conn = cs_write_conn(db)->db;
    sqlite3_stmt *st = NULL;
    int64_t upto = -1;
    int src = rc ? SQLITE_OK
                 : sqlite3_prepare_v2(conn, "SELECT count(*), min(ver) FROM _cstack_peers", -1, &st,
                                      NULL);
    if (st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
        upto = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    if (src != SQLITE_OK)
        rc = cs_err_sqlite(NULL, conn, src);
    /* No known peer: nobody has acknowledged anything, so nothing can go. */
    for (size_t i = 0; !rc && upto >= 0 && i < s->nmodels; i++)
        if (s->models[i].synced)
            rc = compact_model(db, &s->models[i], upto, &n);
    rc = cs_write_end(db, rc);
    if (!rc && removed)
        *removed = n;
    return rc;
}
