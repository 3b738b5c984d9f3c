/* clock.c -- hybrid logical clock, site ids, transaction versions and the
 * sync state table.
 *
 * A clock is 64 bits: milliseconds since the epoch in the high 48 bits and a
 * logical counter in the low 16.  Issuing takes max(wall, last + 1), so the
 * clock never goes backwards even when the wall clock does; observing a
 * remote clock folds it in, so the next local clock is later than anything
 * seen, but never past the wall clock plus the maximum drift: a clock from
 * far in the future (another device's wrong clock, which a server relays
 * once it accepted it) must not drag this device's clock along, or every
 * write made here would carry it on.  A local write still overwrites what
 * it saw: the fold stamps a column it overwrites later than the clock it
 * replaces (capture.c).  The last clock is persisted in the metadata itself
 * (every clock row holds the clocks that wrote it) and in _cstack_sync_state
 * after merges.
 *
 * Every local write transaction gets one version (a counter local to this
 * database, the cursor of exports) and one clock, allocated when the
 * transaction records what it captured (capture.c) and forgotten at COMMIT or
 * ROLLBACK (SQLite's hooks).  The site cache is reloaded before the next
 * lookup after any rollback (attach.c marks it stale), since the rolled-back
 * level may have added sites. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync/sync.h"
#include "sync/varint.h"
#include "util/clock.h"

uint64_t cs_hlc_now_wall(const cs_sync *s)
{
    int64_t ms = cs_wall_ms() + s->wall_offset_ms;
    return ms > 0 ? (uint64_t)ms << 16 : 0;
}

/* The latest clock this replica takes from elsewhere: its wall clock plus
 * the maximum drift. */
static uint64_t hlc_cap(const cs_sync *s)
{
    return cs_hlc_now_wall(s) + ((uint64_t)s->max_drift_ms << 16);
}

uint64_t cs_hlc_tick(cs_sync *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t wall = cs_hlc_now_wall(s);
    s->hlc = wall > s->hlc ? wall : s->hlc + 1;
    uint64_t v = s->hlc;
    pthread_mutex_unlock(&s->mu);
    return v;
}

int cs_hlc_observe(cs_sync *s, uint64_t remote, bool judge)
{
    uint64_t limit = hlc_cap(s);
    if (remote > limit && judge)
        return cs_err(CSTACK_ECLOCK,
                      "a remote clock (%llu ms) is %llu ms ahead of local time, more than the "
                      "allowed drift of %lld ms",
                      (unsigned long long)(remote >> 16),
                      (unsigned long long)((remote - cs_hlc_now_wall(s)) >> 16),
                      (long long)s->max_drift_ms);
    if (remote > limit)
        remote = limit;
    pthread_mutex_lock(&s->mu);
    if (remote > s->hlc)
        s->hlc = remote;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- state ------------------------------------------------------------- */

int cs_sync_state_get(sqlite3 *conn, const char *key, int64_t *value)
{
    sqlite3_stmt *st = NULL;
    *value = 0;
    int rc = sqlite3_prepare_v2(conn, "SELECT value FROM _cstack_sync_state WHERE key = ?1", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *value = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int cs_sync_state_put(sqlite3 *conn, const char *key, int64_t value)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn,
                                "INSERT INTO _cstack_sync_state(key, value) VALUES (?1, ?2) "
                                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, value);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A statement from the write connection's cache: these run at the start of
 * every write transaction, so they are prepared once. */
static sqlite3_stmt *cached(cs_sync *s, const char *sql, int *rc)
{
    cs_conn *c = cs_write_conn(s->db);
    sqlite3_stmt *st = cs_conn_prepare(c, 0, sql, strlen(sql));
    *rc = st ? SQLITE_OK : sqlite3_errcode(c->db);
    return st;
}

/* Folds into *ver / *hlc the highest version recorded in any clock table,
 * the highest clock held by the rows at those versions, the persisted
 * state, and the captured transactions not yet folded.  Clocks other sites
 * wrote count only up to the cap, as when they were merged. */
static int scan_latest(cs_sync *s, int64_t *ver, uint64_t *hlc)
{
    int rc = SQLITE_OK;
    uint64_t cap = hlc_cap(s);
    for (size_t i = 0; i < s->nmodels && rc == SQLITE_OK; i++) {
        if (!s->models[i].synced || !s->models[i].has_table || !s->models[i].sql_latest)
            continue;
        sqlite3_stmt *st = cached(s, s->models[i].sql_latest, &rc);
        if (st && sqlite3_step(st) == SQLITE_ROW) {
            int64_t v = sqlite3_column_int64(st, 0);
            if (v > *ver)
                *ver = v;
            cs_clk c;
            cs_clk_init(&c);
            if (cs_clk_decode(&c, sqlite3_column_blob(st, 1),
                              (size_t)sqlite3_column_bytes(st, 1)) == 0)
                for (size_t e = 0; e < c.nentries; e++) {
                    uint64_t h = c.entries[e].hlc;
                    if (c.entries[e].site != 0 && h > cap)
                        h = cap;
                    if (h > *hlc)
                        *hlc = h;
                }
            cs_clk_free(&c);
        }
        if (st)
            sqlite3_reset(st);
    }
    /* The state table and the log appear together at bootstrap. */
    if (rc != SQLITE_OK || !s->has_txlog)
        return rc;
    sqlite3_stmt *st = cached(s,
                              "SELECT max(coalesce((SELECT max(ver) FROM _cstack_txlog), 0), "
                              "coalesce((SELECT value FROM _cstack_sync_state WHERE key = 'ver'), 0)), "
                              "max(coalesce((SELECT max(hlc) FROM _cstack_txlog), 0), "
                              "coalesce((SELECT value FROM _cstack_sync_state WHERE key = 'hlc'), 0))",
                              &rc);
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        if (sqlite3_column_int64(st, 0) > *ver)
            *ver = sqlite3_column_int64(st, 0);
        if ((uint64_t)sqlite3_column_int64(st, 1) > *hlc)
            *hlc = (uint64_t)sqlite3_column_int64(st, 1);
    }
    if (st)
        sqlite3_reset(st);
    return rc;
}

/* Loads the persisted clock and version: the larger of the state table and
 * what the metadata itself records (the state may lag after a crash). */
int cs_sync_load_clock(cs_sync *s, sqlite3 *conn)
{
    (void)conn; /* always the write connection, whose statement cache is used */
    int64_t ver = 0;
    uint64_t h = 0;
    int rc = scan_latest(s, &ver, &h);
    if (rc != SQLITE_OK)
        return rc;
    pthread_mutex_lock(&s->mu);
    if (h > s->hlc)
        s->hlc = h;
    pthread_mutex_unlock(&s->mu);
    if (ver > s->last_ver)
        s->last_ver = ver;
    return SQLITE_OK;
}

int cs_sync_tx(cs_sync *s, sqlite3 *conn)
{
    if (s->tx_active)
        return SQLITE_OK;
    /* Another process may have written since we last looked: versions come
     * from the database, read inside this write transaction. */
    int rc = cs_sync_load_clock(s, conn);
    if (rc != SQLITE_OK)
        return rc;
    s->tx_ver = ++s->last_ver;
    s->tx_hlc = cs_hlc_tick(s);
    s->tx_active = true;
    return SQLITE_OK;
}

static int on_commit(void *ctx)
{
    cs_sync *s = ctx;
    s->tx_active = false;
    return 0;
}

static void on_rollback(void *ctx)
{
    cs_sync *s = ctx;
    /* The version of a rolled-back transaction was never committed: give it
     * back, so no cursor can name a version that does not exist. */
    if (s->tx_active && s->last_ver == s->tx_ver)
        s->last_ver = s->tx_ver - 1;
    s->tx_active = false;
    cs_capture_clear(s);
}

int cs_sync_register_hooks(cs_sync *s, sqlite3 *conn)
{
    sqlite3_commit_hook(conn, on_commit, s);
    sqlite3_rollback_hook(conn, on_rollback, s);
    sqlite3_preupdate_hook(conn, cs_capture_hook, s);
    return SQLITE_OK;
}

/* ---- sites ------------------------------------------------------------- */

int cs_sync_load_sites(cs_sync *s, sqlite3 *conn)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, "SELECT ord, site FROM _cstack_sites ORDER BY ord", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return rc;
    pthread_mutex_lock(&s->mu);
    s->nsites = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t ord = sqlite3_column_int64(st, 0);
        if (ord != (int64_t)s->nsites || sqlite3_column_bytes(st, 1) != CS_SITE_LEN) {
            rc = SQLITE_CORRUPT;
            break;
        }
        unsigned char(*p)[CS_SITE_LEN] = realloc(s->sites, (s->nsites + 1) * sizeof *p);
        if (!p) {
            rc = SQLITE_NOMEM;
            break;
        }
        s->sites = p;
        memcpy(s->sites[s->nsites++], sqlite3_column_blob(st, 1), CS_SITE_LEN);
    }
    pthread_mutex_unlock(&s->mu);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

const unsigned char *cs_site_id(cs_sync *s, uint32_t ord)
{
    return ord < s->nsites ? s->sites[ord] : NULL;
}

int cs_site_ordinal(cs_sync *s, sqlite3 *conn, const unsigned char site[CS_SITE_LEN],
                    uint32_t *ord)
{
    if (s->sites_stale) {
        int rc = cs_sync_load_sites(s, conn);
        if (rc != SQLITE_OK)
            return rc;
        s->sites_stale = false;
    }
    for (size_t i = 0; i < s->nsites; i++)
        if (memcmp(s->sites[i], site, CS_SITE_LEN) == 0) {
            *ord = (uint32_t)i;
            return SQLITE_OK;
        }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, "INSERT INTO _cstack_sites(ord, site) VALUES (?1, ?2)", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)s->nsites);
    sqlite3_bind_blob(st, 2, site, CS_SITE_LEN, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    unsigned char(*p)[CS_SITE_LEN] = realloc(s->sites, (s->nsites + 1) * sizeof *p);
    if (!p)
        return SQLITE_NOMEM;
    s->sites = p;
    memcpy(s->sites[s->nsites], site, CS_SITE_LEN);
    *ord = (uint32_t)s->nsites++;
    return SQLITE_OK;
}

