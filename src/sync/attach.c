/* attach.c -- composing the store with sync: the public cstack_open.
 *
 * The store knows nothing of sync; sync plugs into it through the store's
 * extension table: it hooks the write connection (capture.c), adds its
 * tables at bootstrap (tables.c), and records what each transaction did just
 * before it commits (sync_before_commit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"
#include "util/hex.h"

static void sync_destroy(void *ctx);
static int sync_conn_init(void *ctx, sqlite3 *conn, bool writer);
static void sync_capture_reset(void *ctx, size_t mark);
static int sync_before_commit(void *ctx, cstack *db);

static const cs_store_ext sync_ext = {
    sync_conn_init,     cs_sync_bootstrap,  sync_destroy,
    cs_capture_mark_fn, sync_capture_reset, sync_before_commit,
};

cs_sync *cs_sync_of(cstack *db)
{
    return cs_store_ext_ctx(db, &sync_ext);
}

static void sync_capture_reset(void *ctx, size_t mark)
{
    cs_sync *s = ctx;
    cs_capture_reset_fn(ctx, mark);
    /* The level that rolled back may have added sites to _cstack_sites;
     * the cache is reloaded before the next one is looked up. */
    s->sites_stale = true;
}

/* The one place that records what a transaction did, in the transaction,
 * just before it commits: the local writes it captured (a _cstack_txlog
 * row), and for a merge (which writes its clock rows itself, capture being
 * quiet) the clock and the version it used, so that a cursor handed out
 * after this commit is never issued again even when no row kept the
 * version. */
static int sync_before_commit(void *ctx, cstack *db)
{
    cs_sync *s = ctx;
    int rc = cs_capture_flush(ctx, db);
    if (rc || !cs_write_quiet(db) || !s->tx_active)
        return rc;
    sqlite3 *conn = cs_write_conn(db)->db;
    int src = cs_sync_state_put(conn, "hlc", (int64_t)s->hlc);
    if (src == SQLITE_OK)
        src = cs_sync_state_put(conn, "ver", s->tx_ver);
    return src == SQLITE_OK ? 0 : cs_err_sqlite(NULL, conn, src);
}

int cs_sync_require(cstack *db, cs_sync **out)
{
    cs_sync *s = cs_sync_of(db);
    if (!s)
        return CSTACK_EMISUSE;
    if (!s->ready)
        return cs_err(CSTACK_EMISUSE, "sync needs a bootstrapped database: call cstack_bootstrap");
    *out = s;
    return 0;
}

static int sync_conn_init(void *ctx, sqlite3 *conn, bool writer)
{
    /* Only the write connection writes, so only it is watched. */
    return writer ? cs_sync_register_hooks(ctx, conn) : SQLITE_OK;
}

static void models_free(cs_sync *s)
{
    for (size_t i = 0; i < s->nmodels; i++) {
        free(s->models[i].clk_table);
        free(s->models[i].cols);
        free(s->models[i].tcols);
        free(s->models[i].sql_load);
        free(s->models[i].sql_store);
        free(s->models[i].sql_insert);
        free(s->models[i].sql_insert_new);
        free(s->models[i].sql_latest);
    }
    free(s->models);
    s->models = NULL;
    s->nmodels = 0;
}

static void sync_destroy(void *ctx)
{
    cs_sync *s = ctx;
    if (s->ready && s->db && !cs_write_lock(s->db)) {
        /* Best effort: the clock is also recoverable from the metadata. */
        cs_sync_state_put(cs_write_conn(s->db)->db, "hlc", (int64_t)s->hlc);
        cs_write_unlock(s->db);
    }
    models_free(s);
    free(s->sites);
    cs_buf_free(&s->captured);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int models_init(cs_sync *s, const cstack_schema *schema)
{
    s->models = calloc(schema->nmodels ? schema->nmodels : 1, sizeof *s->models);
    if (!s->models)
        return CSTACK_ENOMEM;
    s->nmodels = schema->nmodels;
    for (size_t i = 0; i < schema->nmodels; i++) {
        cs_sync_model *sm = &s->models[i];
        sm->model = (int)i;
        sm->synced = !schema->models[i].local;
        cs_buf name = CS_BUF_INIT;
        if (cs_buf_printf(&name, "_cstack_clk_%s", schema->models[i].name))
            return CSTACK_ENOMEM;
        sm->clk_table = cs_buf_take(&name);
        if (!sm->clk_table)
            return CSTACK_ENOMEM;
    }
    return 0;
}

bool cs_table_exists(sqlite3 *conn, const char *name)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

/* Loads the column registry, the sites and the clock of an existing
 * database. */
int cs_sync_load_all(cs_sync *s, sqlite3 *conn)
{
    s->has_txlog = cs_table_exists(conn, "_cstack_txlog");
    int rc = cs_sync_load_models(s, conn);
    if (rc == SQLITE_OK)
        rc = cs_sync_load_sites(s, conn);
    if (rc == SQLITE_OK)
        rc = cs_sync_load_clock(s, conn);
    if (rc == SQLITE_OK && s->nsites > 0) {
        memcpy(s->site, s->sites[0], CS_SITE_LEN);
        cs_hex_encode(s->site, CS_SITE_LEN, s->site_hex);
        s->ready = true;
    }
    return rc;
}

static int open_with_sync(const cstack_schema *schema, const char *path, bool memory,
                          const cstack_open_options *opts, cstack **out)
{
    if (!out)
        return cs_err(CSTACK_EMISUSE, "cstack_open: out is NULL");
    *out = NULL;
    if (!schema)
        return cs_err(CSTACK_EMISUSE, "cstack_open: schema is NULL");
    cs_sync *s = calloc(1, sizeof *s);
    if (!s)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    s->max_drift_ms = CS_DEFAULT_DRIFT_MS;
    if (models_init(s, schema)) {
        sync_destroy(s);
        return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    int rc = cs_store_open(schema, path, memory, opts, &sync_ext, s, out);
    if (!*out) {
        sync_destroy(s);
        return rc;
    }
    s->db = *out;
    s->schema = cstack_schema_of(*out);
    if (rc == 0 && !(rc = cs_write_lock(*out))) {
        sqlite3 *conn = cs_write_conn(*out)->db;
        int lrc = cs_table_exists(conn, "_cstack_sites") ? cs_sync_load_all(s, conn) : SQLITE_OK;
        if (lrc != SQLITE_OK)
            rc = cs_err_sqlite(NULL, conn, lrc);
        cs_write_unlock(*out);
    }
    return rc;
}

int cstack_open(const cstack_schema *schema, const char *path, const cstack_open_options *opts,
                cstack **out)
{
    if (!path || !*path) {
        if (out)
            *out = NULL;
        return cs_err(CSTACK_EMISUSE, "cstack_open: path is empty");
    }
    return open_with_sync(schema, path, false, opts, out);
}

int cstack_open_in_memory(const cstack_schema *schema, cstack **out)
{
    return open_with_sync(schema, NULL, true, NULL, out);
}

const char *cstack_sync_site_id(cstack *db)
{
    cs_enter(db);
    cs_sync *s = cs_sync_of(db);
    return s && s->ready ? s->site_hex : "";
}

int cstack_sync_set_max_drift(cstack *db, int64_t ms)
{
    cs_enter(db);
    cs_sync *s = cs_sync_of(db);
    if (!s || ms < 0)
        return CSTACK_EMISUSE;
    s->max_drift_ms = ms;
    return 0;
}

void cs_sync_test_wall_offset(cstack *db, int64_t ms)
{
    cs_sync *s = cs_sync_of(db);
    if (s)
        s->wall_offset_ms = ms;
}

int cstack_sync_version(cstack *db, int64_t *version)
{
    cs_enter(db);
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc || !version)
        return rc ? rc : CSTACK_EMISUSE;
    if ((rc = cs_write_lock(db)))
        return rc;
    sqlite3 *conn = cs_write_conn(db)->db;
    rc = cs_sync_load_clock(s, conn);
    *version = s->last_ver;
    rc = rc == SQLITE_OK ? 0 : cs_err_sqlite(NULL, conn, rc);
    cs_write_unlock(db);
    return rc;
}
