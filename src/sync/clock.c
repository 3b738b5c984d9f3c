/* clock.c -- hybrid logical clock, site ids, transaction versions, and the SQL
 * functions the capture triggers call.
 *
 * A clock is 64 bits: milliseconds since the epoch in the high 48 bits and a
 * logical counter in the low 16.  Issuing takes max(wall, last + 1), so the
 * clock never goes backwards even when the wall clock does; observing a
 * remote clock folds it in, so the next local clock is later than anything
 * seen.  The last clock is persisted in the metadata itself (every clock row
 * holds the clocks that wrote it) and in _cstack_sync_state after merges.
 *
 * Every local write transaction gets one version (a counter local to this
 * database, the cursor of exports) and one clock, allocated by the first
 * captured write and forgotten at COMMIT or ROLLBACK (SQLite's hooks). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync/sync.h"
#include "sync/varint.h"

uint64_t cs_hlc_now_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    return ms << 16;
}

uint64_t cs_hlc_tick(cs_sync *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t wall = cs_hlc_now_wall();
    s->hlc = wall > s->hlc ? wall : s->hlc + 1;
    uint64_t v = s->hlc;
    pthread_mutex_unlock(&s->mu);
    return v;
}

int cs_hlc_observe(cs_sync *s, uint64_t remote)
{
    uint64_t limit = cs_hlc_now_wall() + ((uint64_t)s->max_drift_ms << 16);
    if (remote > limit)
        return cs_err(CSTACK_ECLOCK,
                      "a remote clock (%llu ms) is %llu ms ahead of local time, more than the "
                      "allowed drift of %lld ms",
                      (unsigned long long)(remote >> 16),
                      (unsigned long long)((remote - cs_hlc_now_wall()) >> 16),
                      (long long)s->max_drift_ms);
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

/* The highest version recorded in any clock table, and the highest clock
 * held by the rows at those versions. */
static int scan_latest(cs_sync *s, sqlite3 *conn, int64_t *ver, uint64_t *hlc)
{
    cs_buf sql = CS_BUF_INIT;
    int rc = SQLITE_OK;
    for (size_t i = 0; i < s->nmodels && rc == SQLITE_OK; i++) {
        if (!s->models[i].synced || !s->models[i].has_table)
            continue;
        cs_buf_reset(&sql);
        cs_buf_puts(&sql, "SELECT _cstack_ver, _cstack_clk FROM ");
        cs_buf_ident(&sql, s->models[i].clk_table);
        if (cs_buf_puts(&sql, " ORDER BY _cstack_ver DESC LIMIT 1"))
            rc = SQLITE_NOMEM;
        sqlite3_stmt *st = NULL;
        if (rc == SQLITE_OK)
            rc = sqlite3_prepare_v2(conn, sql.data, -1, &st, NULL);
        if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
            int64_t v = sqlite3_column_int64(st, 0);
            if (v > *ver)
                *ver = v;
            cs_clk c;
            cs_clk_init(&c);
            if (cs_clk_decode(&c, sqlite3_column_blob(st, 1),
                              (size_t)sqlite3_column_bytes(st, 1)) == 0)
                for (size_t e = 0; e < c.nentries; e++)
                    if (c.entries[e].hlc > *hlc)
                        *hlc = c.entries[e].hlc;
            cs_clk_free(&c);
        }
        sqlite3_finalize(st);
    }
    cs_buf_free(&sql);
    return rc;
}

/* Loads the persisted clock and version: the larger of the state table and
 * what the metadata itself records (the state may lag after a crash). */
int cs_sync_load_clock(cs_sync *s, sqlite3 *conn)
{
    int64_t hlc = 0, ver = 0;
    int rc = cs_sync_state_get(conn, "hlc", &hlc);
    if (rc == SQLITE_OK)
        rc = cs_sync_state_get(conn, "ver", &ver);
    uint64_t h = (uint64_t)hlc;
    if (rc == SQLITE_OK)
        rc = scan_latest(s, conn, &ver, &h);
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
    s->tx_active = false;
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

/* ---- SQL functions for the triggers ------------------------------------- */

static cs_sync *fn_sync(sqlite3_context *ctx)
{
    return sqlite3_user_data(ctx);
}

static bool fn_tx(sqlite3_context *ctx, cs_sync *s)
{
    int rc = cs_sync_tx(s, sqlite3_context_db_handle(ctx));
    if (rc != SQLITE_OK) {
        sqlite3_result_error_code(ctx, rc);
        return false;
    }
    return true;
}

static void fn_capture(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    cs_sync *s = fn_sync(ctx);
    sqlite3_result_int(ctx, s->ready && !s->applying);
}

static void fn_ver(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    cs_sync *s = fn_sync(ctx);
    if (fn_tx(ctx, s))
        sqlite3_result_int64(ctx, s->tx_ver);
}

static void result_clk(sqlite3_context *ctx, cs_clk *c)
{
    cs_buf out = CS_BUF_INIT;
    if (cs_clk_encode(c, &out)) {
        sqlite3_result_error_nomem(ctx);
    } else {
        sqlite3_result_blob(ctx, out.data, (int)out.len, SQLITE_TRANSIENT);
    }
    cs_buf_free(&out);
}

/* cstack_clk_all(n): a new row, every column and its existence written now. */
static void fn_clk_all(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    cs_sync *s = fn_sync(ctx);
    if (!fn_tx(ctx, s))
        return;
    int64_t n = sqlite3_value_int64(argv[0]);
    cs_clk c;
    cs_clk_init(&c);
    cs_clk_entry e = {s->tx_hlc, 0, s->tx_ver};
    int rc = n < 0 || n > CS_CLK_MAX_COLS ? CSTACK_EINVAL : cs_clk_set(&c, SIZE_MAX, &e);
    for (int64_t i = 0; !rc && i < n; i++)
        rc = cs_clk_set(&c, (size_t)i, &e);
    if (rc)
        sqlite3_result_error(ctx, "cstack_clk_all failed", -1);
    else
        result_clk(ctx, &c);
    cs_clk_free(&c);
}

/* cstack_clk_touch(clk, n, mask0, mask1, ...): the columns whose bits are set
 * (62 columns per mask) were written now; the row's existence is unchanged. */
static void fn_clk_touch(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    cs_sync *s = fn_sync(ctx);
    if (argc < 3 || !fn_tx(ctx, s))
        return;
    cs_clk c;
    cs_clk_init(&c);
    int rc = 0;
    if (sqlite3_value_type(argv[0]) == SQLITE_BLOB)
        rc = cs_clk_decode(&c, sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]));
    int64_t n = sqlite3_value_int64(argv[1]);
    if (!rc)
        rc = n < 0 || n > CS_CLK_MAX_COLS ? CSTACK_EINVAL : cs_clk_resize(&c, (size_t)n);
    cs_clk_entry e = {s->tx_hlc, 0, s->tx_ver};
    for (int a = 2; !rc && a < argc; a++) {
        uint64_t mask = (uint64_t)sqlite3_value_int64(argv[a]);
        for (int bit = 0; !rc && bit < 62; bit++)
            if (mask & (1ull << bit))
                rc = cs_clk_set(&c, (size_t)(a - 2) * 62 + (size_t)bit, &e);
    }
    if (rc)
        sqlite3_result_error(ctx, "cstack_clk_touch: bad clock metadata", -1);
    else
        result_clk(ctx, &c);
    cs_clk_free(&c);
}

/* cstack_clk_exist(clk, n): the row's existence changed now (delete or
 * re-insert); a NULL clk starts a fresh blob of n unwritten columns. */
static void fn_clk_exist(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    cs_sync *s = fn_sync(ctx);
    if (!fn_tx(ctx, s))
        return;
    cs_clk c;
    cs_clk_init(&c);
    int rc = 0;
    if (sqlite3_value_type(argv[0]) == SQLITE_BLOB)
        rc = cs_clk_decode(&c, sqlite3_value_blob(argv[0]), (size_t)sqlite3_value_bytes(argv[0]));
    int64_t n = sqlite3_value_int64(argv[1]);
    if (!rc)
        rc = n < 0 || n > CS_CLK_MAX_COLS ? CSTACK_EINVAL : cs_clk_resize(&c, (size_t)n);
    cs_clk_entry e = {s->tx_hlc, 0, s->tx_ver};
    if (!rc)
        rc = cs_clk_set(&c, SIZE_MAX, &e);
    if (rc)
        sqlite3_result_error(ctx, "cstack_clk_exist: bad clock metadata", -1);
    else
        result_clk(ctx, &c);
    cs_clk_free(&c);
}

int cs_sync_register_functions(cs_sync *s, sqlite3 *conn, bool writer)
{
    struct {
        const char *name;
        int nargs;
        void (*fn)(sqlite3_context *, int, sqlite3_value **);
    } fns[] = {
        {"cstack_sync_capture", 0, fn_capture}, {"cstack_sync_ver", 0, fn_ver},
        {"cstack_clk_all", 1, fn_clk_all},       {"cstack_clk_touch", -1, fn_clk_touch},
        {"cstack_clk_exist", 2, fn_clk_exist},
    };
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        int rc = sqlite3_create_function_v2(conn, fns[i].name, fns[i].nargs,
                                            SQLITE_UTF8, s, fns[i].fn, NULL,
                                            NULL, NULL);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (writer) {
        sqlite3_commit_hook(conn, on_commit, s);
        sqlite3_rollback_hook(conn, on_rollback, s);
    }
    return SQLITE_OK;
}
