/*
 * store_sqlite.c -- the embedded server store: a cstack database of the
 * served schema, merged with the devices' own sync engine (sync_ext.h).
 *
 * Pushes.  A push is first read in a snapshot without the write lock: a
 * site of another user, and a new row its create rules refuse
 * (store_sqlite_precheck.c), are refused there.  Then one push is one write
 * transaction of the store (a merge scope, CS_WRITE_MERGE): it looks the batch id up in _cstack_srv_batches, merges
 * the changeset with cs_merge (each row decoded once) under a check that runs
 * the schema's write policies for the pushing user on every row the merge
 * changes (create: the merged row; update: the row before and after), with
 * drops refused; deletions are checked before the merge, on the state before
 * the batch (delete_before: a cascade deletes a team before its members,
 * whose rule may read the team), records the batch id, and reads the
 * durable version the device is given as its cursor.  A pushed row the
 * merge hides (parked: a unique value lost, a parent gone) is accepted, and
 * checked on its parked values, never refused for being hidden.  Every row
 * of the batch is recorded as held by the pushing device (held_one), one it
 * will hide by itself as held hidden (no drop while hidden, but its
 * deletion), so a later deletion, drop or hiding of it reaches that device
 * even though the server never sent it the row.  A pushed row whose causal
 * length lost to the server's is sent back (resend_lost).  A batch is therefore
 * applied and recorded or neither, and a retry is answered `duplicate`
 * without being merged (or re-checked against policies that may have
 * changed since); the write lock serialises pushes, so two copies of one
 * batch cannot both miss the record.
 *
 * Pulls.  cs_changes_export_filtered decides per row (store_sqlite_pull.c).  Each
 * pull call reads one read snapshot, so that its changesets, cursors and
 * checksums all describe one version without holding the write lock; what
 * it must record is held in memory and written by the next write scope
 * (store_sqlite_notes.c), which is why every write scope here begins with
 * cs_srv_notes_drain and ends with cs_srv_scope_end.
 *
 * Tables (beside the schema's own and the sync engine's):
 *   _cstack_srv_batches(sub, batch, at)            applied batches per user
 *   _cstack_srv_sent(site, model, pk, present, at) what each device holds
 *   _cstack_srv_sites(site, sub, first_seen, last_seen) the user owning each
 *                                                  device (store_sqlite_sites.c)
 *   _cstack_srv_schemas(ord, hash, source, adopted_at) every schema this store
 *                                                  has run (schemas.c)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/policy.h"
#include "server/store_int.h"
#include "sync/parked.h"
#include "util/hex.h"

/* Batch records older than this are forgotten at open: a device retries a
 * batch within minutes, not months. */
#define BATCH_KEEP_MS (30LL * 24 * 3600 * 1000)

static const char TABLES_SQL[] = "CREATE TABLE IF NOT EXISTS _cstack_srv_batches("
                                 " sub TEXT NOT NULL, batch TEXT NOT NULL, at INTEGER NOT NULL,"
                                 " PRIMARY KEY(sub, batch)) WITHOUT ROWID;"
                                 "CREATE TABLE IF NOT EXISTS _cstack_srv_sent("
                                 " site BLOB NOT NULL, model TEXT NOT NULL, pk BLOB NOT NULL,"
                                 " present INTEGER NOT NULL, at INTEGER NOT NULL,"
                                 " PRIMARY KEY(site, model, pk)) WITHOUT ROWID;"
                                 "CREATE TABLE IF NOT EXISTS _cstack_srv_sites("
                                 " site BLOB PRIMARY KEY, sub TEXT NOT NULL,"
                                 " first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL)"
                                 " WITHOUT ROWID;"
                                 "CREATE INDEX IF NOT EXISTS _cstack_srv_sites_seen"
                                 " ON _cstack_srv_sites(last_seen);"
                                 "CREATE INDEX IF NOT EXISTS _cstack_srv_sites_sub"
                                 " ON _cstack_srv_sites(sub, last_seen);";


void cs_srv_err_set(cs_srv_err *err, cs_srv_fail kind, int code, const char *msg)
{
    if (!err)
        return;
    err->kind = kind;
    err->code = code;
    snprintf(err->message, sizeof err->message, "%s", msg ? msg : cstack_errstr(code));
}

/* ---- open / close ---------------------------------------------------------- */

static int create_tables(sqlite3 *conn, void *ctx)
{
    cs_srv_store *store = ctx;
    int rc = sqlite3_exec(conn, TABLES_SQL, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return cs_err(CSTACK_ESQLITE, "creating the server tables: %s", sqlite3_errmsg(conn));
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(conn, "DELETE FROM _cstack_srv_batches WHERE at < ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, cs_wall_ms() - BATCH_KEEP_MS);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(conn);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK)
        return cs_err(CSTACK_ESQLITE, "%s", sqlite3_errmsg(conn));
    return cs_srv_sites_collect(store, cs_write_conn(store->db), 0);
}

static void store_free(cs_srv_store *st)
{
    if (!st)
        return;
    cs_srv_notes_free(st->notes);
    cstack_close(st->db);
    for (size_t i = 0; i < CS_SRV_SUM_CACHE; i++)
        free(st->cache[i].key);
    pthread_mutex_destroy(&st->cache_mu);
    free(st);
}

static int sqlite_open(const cstack_schema *schema, const char *target, const cs_srv_store_cfg *cfg,
                       cs_srv_store **out, cs_srv_err *err)
{
    *out = NULL;
    cs_srv_store *st = calloc(1, sizeof *st);
    if (!st) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ENOMEM, NULL);
        return CSTACK_ENOMEM;
    }
    pthread_mutex_init(&st->cache_mu, NULL);
    st->max_sites = cfg && cfg->max_sites_per_user ? cfg->max_sites_per_user : CS_SRV_MAX_SITES;
    st->site_ttl_ms = cfg && cfg->site_ttl_ms > 0 ? cfg->site_ttl_ms : CS_SRV_SITE_TTL_MS;
    int rc = cstack_open(schema, target, NULL, &st->db);
    rc = rc ? rc : cs_srv_notes_new(st, cfg ? cfg->notes_max : 0, &st->notes);
    rc = rc ? rc : cstack_bootstrap(st->db, NULL);
    rc = rc ? rc : cstack_with_sqlite(st->db, create_tables, st);
    if (rc) {
        char msg[480];
        snprintf(msg, sizeof msg, "%s: %s", target,
                 st->db ? cstack_errmsg(st->db) : cstack_errstr(rc));
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, msg);
        store_free(st);
        return rc;
    }
    st->schema = cstack_schema_of(st->db);
    /* When visibility can change without the row changing (a membership
     * elsewhere), only a record of what each device holds says what to send
     * or drop. */
    /* Devices are always tracked: a drop then goes only to a device that
     * may hold the row, so no pull ever reveals keys of rows its user cannot
     * read.  With local read rules a row's visibility changes only when the
     * row does, so pulls still scan only the rows changed since the cursor. */
    st->local_reads = cs_policy_read_is_local(st->schema);
    *out = st;
    return 0;
}

static void sqlite_close(cs_srv_store *st)
{
    store_free(st);
}

static int sqlite_version(cs_srv_store *st, int64_t *version)
{
    return cstack_sync_version(st->db, version);
}

static int sqlite_versions(cs_srv_store *st, cs_srv_versions **out)
{
    return cs_srv_versions_open(st->db, out);
}

/* ---- push ------------------------------------------------------------------ */

typedef struct push_ctx {
    cs_srv_store *st;
    const cs_srv_push *req;
    bool refused; /* a policy said no; msg says which row */
    bool foreign; /* the site belongs to another user */
    bool deletes_checked; /* delete_before ran: the merge checks no deletion */
    char msg[480];
} push_ctx;

/* Records (user, batch) as applied, in the push's transaction. */
static int batch_record(cs_conn *c, const cs_srv_push *req)
{
    static const char sql[] = "INSERT INTO _cstack_srv_batches(sub, batch, at) VALUES (?, ?, ?)";
    sqlite3_stmt *st = cs_conn_prepare(c, 0, sql, sizeof sql - 1);
    int rc = st ? SQLITE_OK : sqlite3_errcode(c->db);
    if (st) {
        sqlite3_bind_text(st, 1, cs_srv_sub_of(req->auth), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, req->batch, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, cs_wall_ms());
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c->db);
        sqlite3_reset(st);
    }
    return rc == SQLITE_OK
               ? 0
               : cs_err(CSTACK_ESQLITE, "recording the batch: %s", sqlite3_errmsg(c->db));
}

/* Whether (user, batch) was applied before. */
static int batch_seen(cs_conn *c, const cs_srv_push *req, bool *seen)
{
    *seen = false;
    static const char sql[] = "SELECT 1 FROM _cstack_srv_batches WHERE sub = ? AND batch = ?";
    sqlite3_stmt *s = cs_conn_prepare(c, 0, sql, sizeof sql - 1);
    int rc = s ? SQLITE_OK : sqlite3_errcode(c->db);
    if (s) {
        sqlite3_bind_text(s, 1, cs_srv_sub_of(req->auth), -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, req->batch, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        *seen = rc == SQLITE_ROW;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(s);
    }
    return rc == SQLITE_OK ? 0 : cs_err(CSTACK_ESQLITE, "%s", sqlite3_errmsg(c->db));
}

void cs_srv_pk_values(const cs_cs_value *pk, size_t npk, cstack_value *out)
{
    for (size_t i = 0; i < npk; i++)
        out[i] = cs_cs_value_get(&pk[i]);
}

/* Appends {"field":value,...} naming a row by its primary key (a @pii or
 * @sensitive key field shows "[redacted]"). */
static void key_json(cs_buf *b, const cs_model *m, const cs_cs_value *pk)
{
    cs_buf_putc(b, '{');
    for (size_t i = 0; i < m->npk; i++) {
        const char *f = m->fields[m->pk[i]].name;
        cs_buf_printf(b, "%s", i ? "," : "");
        cs_buf_json_str(b, f, strlen(f));
        cs_buf_putc(b, ':');
        if (m->fields[m->pk[i]].sensitive)
            cs_buf_puts(b, "\"[redacted]\"");
        else if (pk[i].type == SQLITE_INTEGER)
            cs_buf_printf(b, "%lld", (long long)pk[i].i);
        else if (pk[i].type == SQLITE_FLOAT)
            cs_buf_printf(b, "%.17g", pk[i].f);
        else if (pk[i].type == SQLITE_TEXT)
            cs_buf_json_str(b, (const char *)pk[i].p, pk[i].n);
        else if (pk[i].type == SQLITE_BLOB) {
            cs_buf_putc(b, '"');
            cs_base64_encode(b, pk[i].p, pk[i].n);
            cs_buf_putc(b, '"');
        } else
            cs_buf_puts(b, "null");
    }
    cs_buf_putc(b, '}');
}

void cs_srv_refusal(char *out, size_t cap, const cs_model *m, const cs_cs_value *pk,
                    const cs_auth *auth, int op, int phase)
{
    static const char *const OPS[] = {"", "create", "update", "delete"};
    cs_buf key = CS_BUF_INIT;
    key.max = 256;
    key_json(&key, m, pk);
    snprintf(out, cap, "%s: %s of %s is not allowed for user '%s' (%s)", m->name, OPS[op],
             key.data ? key.data : "{}", cs_auth_shown(auth),
             phase == CS_CHECK_BEFORE ? "checked on the row as it was"
                                      : "checked on the row as it would be");
    cs_buf_free(&key);
}

static int refuse(push_ctx *x, const cs_model *m, const cs_cs_value *pk, int op, int phase)
{
    cs_srv_refusal(x->msg, sizeof x->msg, m, pk, x->req->auth, op, phase);
    x->refused = true;
    return cs_err(CSTACK_EVALIDATION, "%s", x->msg);
}

/* Whether the row is in its table (a refusal there is the policy's). */
static int row_present(cs_conn *c, const cs_model *m, const cs_cs_value *pk, bool *present)
{
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_buf_puts(&sql, "SELECT 1 FROM ");
    rc = rc ? rc : cs_buf_ident(&sql, m->table);
    rc = rc ? rc : cs_buf_puts(&sql, " WHERE ");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        rc = cs_buf_puts(&sql, i ? " AND " : "");
        rc = rc ? rc : cs_buf_ident(&sql, m->fields[m->pk[i]].column);
        rc = rc ? rc : cs_buf_printf(&sql, " = ?%d", (int)i + 1);
    }
    sqlite3_stmt *st = rc ? NULL : cs_conn_prepare(c, 0, sql.data, sql.len);
    cs_buf_free(&sql);
    if (rc)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    if (!st)
        return cs_err_sqlite(m, c->db, sqlite3_errcode(c->db));
    for (size_t i = 0; i < m->npk; i++)
        cs_cs_bind(st, (int)i + 1, &pk[i]);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    *present = step == SQLITE_ROW;
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : cs_err_sqlite(m, c->db, step);
}

/* The policy on the parked copy of a row that is not in its table: a row
 * the merge hides (a lost unique claim, a parent that is gone) is checked on
 * its values like a visible one, never refused for being hidden.  *parked
 * false when there is no such copy. */
static int parked_allowed(push_ctx *x, cs_conn *c, int model, const cs_cs_value *pk,
                          unsigned pol, bool *parked, bool *allowed)
{
    const cs_model *m = &x->st->schema->models[model];
    cs_buf key = CS_BUF_INIT, row = CS_BUF_INIT;
    cs_cs_value *vals = calloc(m->nfields ? m->nfields : 1, sizeof *vals);
    bool *present = calloc(m->nfields ? m->nfields : 1, sizeof *present);
    cstack_value *cv = calloc(m->nfields ? m->nfields : 1, sizeof *cv);
    int rc = vals && present && cv ? cs_parked_key(&key, pk, m->npk) : CSTACK_ENOMEM;
    int src = rc ? SQLITE_OK : cs_parked_get(c, m, &key, &row, parked);
    if (rc == CSTACK_ENOMEM)
        rc = cs_err(rc, "out of memory");
    else if (src != SQLITE_OK)
        rc = cs_err_sqlite(m, c->db, src);
    if (!rc && *parked && cs_parked_decode(row.data, row.len, m, vals, present))
        rc = cs_err(CSTACK_ESQLITE, "cannot decode a parked row of %s", m->name);
    for (size_t f = 0; !rc && *parked && f < m->nfields; f++)
        cv[f] = present[f] ? cs_cs_value_get(&vals[f]) : cstack_v_null();
    if (!rc && *parked)
        rc = cs_policy_values_allowed(x->st->schema, c, x->req->auth, model, pol, cv, allowed);
    free(vals);
    free(present);
    free(cv);
    cs_buf_free(&key);
    cs_buf_free(&row);
    return rc;
}

/* The merge's per-row check: the write policies of the pushing user,
 * evaluated on the merge's connection, on the row in its table or else on
 * its parked copy. */
static int push_check(void *ctx, cs_conn *c, int model, const cs_cs_value *pk, int op, int phase)
{
    push_ctx *x = ctx;
    if (op == CS_CHECK_DELETE && x->deletes_checked)
        return 0;
    unsigned pol = op == CS_CHECK_CREATE   ? CS_POL_CREATE
                   : op == CS_CHECK_UPDATE ? CS_POL_UPDATE
                                           : CS_POL_DELETE;
    const cs_model *m = &x->st->schema->models[model];
    cstack_value key[16];
    cs_srv_pk_values(pk, m->npk, key);
    bool allowed = false, present = false, parked = false;
    int rc = cs_policy_row_allowed(x->st->schema, c, x->req->auth, model, pol, key, &allowed);
    rc = rc || allowed ? rc : row_present(c, m, pk, &present);
    rc = rc || allowed || present ? rc : parked_allowed(x, c, model, pk, pol, &parked, &allowed);
    if (rc || allowed)
        return rc;
    return refuse(x, m, pk, op, phase);
}

/* Whether a visible row the pushing user may read holds one of the unique
 * values of the hidden row `vals`: that user's device then receives it and
 * hides its own row for the same reason by itself. */
static int winner_readable(push_ctx *x, cs_conn *c, const cs_model *m, int model,
                           const cs_cs_value *vals, const bool *present, bool *readable)
{
    *readable = false;
    int rc = 0;
    for (size_t u = 0; u < m->nuniques && !rc && !*readable; u++) {
        const cs_index *ix = &m->uniques[u];
        cs_buf sql = CS_BUF_INIT;
        rc = cs_buf_puts(&sql, "SELECT ");
        for (size_t i = 0; i < m->npk && !rc; i++) {
            rc = cs_buf_puts(&sql, i ? ", " : "");
            rc = rc ? rc : cs_buf_ident(&sql, m->fields[m->pk[i]].column);
        }
        rc = rc ? rc : cs_buf_puts(&sql, " FROM ");
        rc = rc ? rc : cs_buf_ident(&sql, m->table);
        bool nulls = false;
        for (size_t i = 0; i < ix->n && !rc; i++) {
            int f = ix->fields[i];
            nulls = nulls || !present[f] || vals[f].type == SQLITE_NULL;
            rc = cs_buf_puts(&sql, i ? " AND " : " WHERE ");
            rc = rc ? rc : cs_buf_ident(&sql, m->fields[f].column);
            rc = rc ? rc : cs_buf_printf(&sql, " = ?%d", (int)i + 1);
        }
        sqlite3_stmt *st = rc || nulls ? NULL : cs_conn_prepare(c, 0, sql.data, sql.len);
        cs_buf_free(&sql);
        if (rc)
            return cs_err(CSTACK_ENOMEM, "out of memory");
        if (nulls)
            continue;
        if (!st)
            return cs_err_sqlite(m, c->db, sqlite3_errcode(c->db));
        for (size_t i = 0; i < ix->n; i++)
            cs_cs_bind(st, (int)i + 1, &vals[ix->fields[i]]);
        int step = sqlite3_step(st);
        cstack_value key[16];
        for (size_t i = 0; step == SQLITE_ROW && i < m->npk; i++) {
            cs_cs_value v;
            cs_cs_value_from_stmt(&v, st, (int)i);
            key[i] = cs_cs_value_get(&v);
        }
        if (step == SQLITE_ROW)
            rc = cs_policy_row_allowed(x->st->schema, c, x->req->auth, model, CS_POL_READ, key,
                                       readable);
        else if (step != SQLITE_DONE)
            rc = cs_err_sqlite(m, c->db, step);
        sqlite3_reset(st);
    }
    return rc;
}

/* Whether the device that pushed the hidden row can tell by itself that it
 * is hidden: its parent's deletion reaches every device that held the
 * parent, and a winner of its unique value reaches the users who may read
 * it.  Otherwise (a winner the user cannot read, a missing field) only the
 * server can tell it. */
static int hides_by_itself(push_ctx *x, cs_conn *c, int model, const cs_cs_value *pk, bool *self)
{
    const cs_model *m = &x->st->schema->models[model];
    static const char sql[] = "SELECT row, reason FROM _cstack_parked WHERE model = ? AND pk = ?";
    *self = false;
    cs_buf key = CS_BUF_INIT;
    cs_cs_value *vals = calloc(m->nfields ? m->nfields : 1, sizeof *vals);
    bool *present = calloc(m->nfields ? m->nfields : 1, sizeof *present);
    sqlite3_stmt *st = NULL;
    int rc = vals && present && !cs_parked_key(&key, pk, m->npk) ? 0 : CSTACK_ENOMEM;
    if (!rc && !(st = cs_conn_prepare(c, 0, sql, sizeof sql - 1)))
        rc = cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    int step = SQLITE_DONE;
    if (st) {
        sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, key.data ? key.data : "", (int)key.len, SQLITE_STATIC);
        step = sqlite3_step(st);
    }
    const char *why = step == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 1) : NULL;
    if (why && strcmp(why, cs_park_reason_name(CS_PARK_PARENT)) == 0)
        *self = true;
    else if (why && strcmp(why, cs_park_reason_name(CS_PARK_UNIQUE)) == 0) {
        if (cs_parked_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), m,
                             vals, present))
            rc = cs_err(CSTACK_ESQLITE, "cannot decode a parked row of %s", m->name);
        /* The values borrow from the statement's row: decided before the
         * statement is reset. */
        rc = rc ? rc : winner_readable(x, c, m, model, vals, present, self);
    }
    if (st)
        sqlite3_reset(st);
    free(vals);
    free(present);
    cs_buf_free(&key);
    return rc == CSTACK_ENOMEM ? cs_err(rc, "out of memory") : rc;
}

/* Records that the pushing device holds a row it pushed (acknowledged: it
 * wrote the row itself), so that a later deletion, drop or hiding of the row
 * reaches it even though the server never sent it the row. */
static int held(push_ctx *x, cs_conn *c, int model, const cs_cs_value *pk, int present)
{
    const cs_model *m = &x->st->schema->models[model];
    static const char sql[] = "INSERT OR REPLACE INTO _cstack_srv_sent"
                              "(site, model, pk, present, at) VALUES (?, ?, ?, ?, ?)";
    unsigned char site[CS_SITE_LEN];
    if (cs_srv_site_parse(x->req->site, site))
        return cs_err(CSTACK_EINVAL, "a push needs the device's site id (32 hex digits)");
    cs_buf key = CS_BUF_INIT;
    if (cs_parked_key(&key, pk, m->npk)) {
        cs_buf_free(&key);
        return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    sqlite3_stmt *st = cs_conn_prepare(c, 0, sql, sizeof sql - 1);
    int step = st ? SQLITE_OK : sqlite3_errcode(c->db);
    if (st) {
        sqlite3_bind_blob(st, 1, site, CS_SITE_LEN, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, key.data ? key.data : "", (int)key.len, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, present);
        /* A row held hidden remembers the version of the push: a later
         * change of it is one the device cannot see (store_sqlite_pull.c). */
        sqlite3_bind_int64(st, 5, present == CS_SRV_HELD_HIDDEN ? cs_sync_of(x->st->db)->tx_ver : 0);
        step = sqlite3_step(st);
        sqlite3_reset(st);
    }
    cs_buf_free(&key);
    return step == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, c->db, step);
}

/* Whether every pushed column is the server's winning write (same clock):
 * a column another device wrote later with the same value changes the
 * row's claim on a unique value, which the device cannot see. */
static int pushed_writes_won(push_ctx *x, cs_conn *c, const cs_cs_row *row, bool *won)
{
    const cs_sync_model *sm = &cs_sync_of(x->st->db)->models[row->model];
    uint64_t cl = 0;
    cs_clk clk;
    cs_clk_init(&clk);
    int rc = cs_clkrow_load(c, sm, &x->st->schema->models[row->model], row->pk, &cl, &clk);
    *won = !rc && cl == row->cl;
    for (size_t i = 0; *won && i < row->ncols; i++) {
        const cs_clk_entry *e = NULL;
        for (size_t k = 0; k < sm->ncols && !e; k++)
            if (sm->cols[k] == row->cols[i].field)
                e = cs_clk_get(&clk, k);
        *won = e && e->hlc == row->cols[i].hlc;
    }
    cs_clk_free(&clk);
    return rc;
}

/* Whether the server's hidden copy of a pushed row holds the values the
 * device pushed, written by the device's own writes: only then can the
 * device hide the row by itself for the same reason (a column another
 * device won may name another parent, or move the row's claim). */
static int pushed_as_hidden(push_ctx *x, cs_conn *c, const cs_cs_row *row, bool *same)
{
    const cs_model *m = &x->st->schema->models[row->model];
    static const char sql[] = "SELECT row FROM _cstack_parked WHERE model = ? AND pk = ?";
    *same = false;
    cs_buf key = CS_BUF_INIT;
    cs_cs_value *vals = calloc(m->nfields ? m->nfields : 1, sizeof *vals);
    bool *present = calloc(m->nfields ? m->nfields : 1, sizeof *present);
    sqlite3_stmt *st = NULL;
    int rc = vals && present && !cs_parked_key(&key, row->pk, m->npk) ? 0 : CSTACK_ENOMEM;
    if (!rc && !(st = cs_conn_prepare(c, 0, sql, sizeof sql - 1)))
        rc = cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    if (st) {
        sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, key.data ? key.data : "", (int)key.len, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            if (cs_parked_decode(sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0),
                                 m, vals, present))
                rc = cs_err(CSTACK_ESQLITE, "cannot decode a parked row of %s", m->name);
            *same = !rc;
            for (size_t i = 0; *same && i < row->ncols; i++) {
                int f = row->cols[i].field;
                *same = present[f] && cs_cs_value_cmp(&vals[f], &row->cols[i].value) == 0;
            }
        }
        sqlite3_reset(st);
    }
    free(vals);
    free(present);
    cs_buf_free(&key);
    return rc == CSTACK_ENOMEM ? cs_err(rc, "out of memory") : rc;
}

/* Whether a pushed row's causal length lost to the server's: the device
 * created a row (say, with a re-used id) that the server holds deleted, or
 * re-created, and was never sent that state, as it never held the row. */
static int pushed_lost(push_ctx *x, cs_conn *c, const cs_cs_row *row, bool *lost)
{
    cs_sync *s = cs_sync_of(x->st->db);
    uint64_t cl = 0;
    cs_clk clk;
    cs_clk_init(&clk);
    int rc = cs_clkrow_load(c, &s->models[row->model], &x->st->schema->models[row->model],
                            row->pk, &cl, &clk);
    cs_clk_free(&clk);
    *lost = !rc && row->cl < cl;
    return rc;
}

/* A lost row is held by the device whatever it may hide by itself (its copy
 * is stale, so its own decision is not the server's), and gets this push's
 * version, so that the device's next pull, whose cursor is past the row's
 * old version, carries the server's state of it, or a drop when the server
 * hides it; other holders get it again as a no-op. */
static int resend_lost(push_ctx *x, cs_conn *c, const cs_cs_row *row)
{
    cs_sync *s = cs_sync_of(x->st->db);
    int rc = held(x, c, row->model, row->pk, 1);
    return rc ? rc
              : cs_clkrow_touch(c, &s->models[row->model], &x->st->schema->models[row->model],
                                row->pk, s->tx_ver);
}

int cs_srv_each_row(const cstack_schema *s, const cs_srv_push *req,
                    int (*fn)(void *ctx, const cs_cs_row *row), void *ctx)
{
    cs_reader r = {req->changeset, req->len, 0};
    cs_cs_header h;
    cs_cs_row row;
    char err[256] = "";
    size_t maxf = 1;
    for (size_t i = 0; i < s->nmodels; i++)
        if (s->models[i].nfields > maxf)
            maxf = s->models[i].nfields;
    memset(&row, 0, sizeof row);
    row.cols = calloc(maxf, sizeof *row.cols);
    int rc = row.cols ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
    if (!rc && cs_cs_read_header(&r, &h, err, sizeof err))
        rc = cs_err(CSTACK_EINVAL, "%s", err);
    for (uint64_t i = 0; !rc && i < h.nrows; i++) {
        if (cs_cs_read_row(&r, s, &h, &row, err, sizeof err))
            rc = cs_err(CSTACK_EINVAL, "%s", err);
        else
            rc = fn(ctx, &row);
    }
    free(row.cols);
    return rc;
}

/* A device pushes only its own writes (cstack_upload_next exports the
 * entries of its own site): a changeset whose origin or site table names
 * another site would stamp columns as another device's writes (echo
 * suppression would then keep them from that device's pulls) or as the
 * backend's.  A changeset that does not parse, or of another schema, is
 * left to the merge's error. */
static int own_sites(const cs_srv_store *st, const cs_srv_push *req)
{
    cs_reader r = {req->changeset, req->len, 0};
    cs_cs_header h;
    char err[256];
    unsigned char self[CS_SITE_LEN];
    if (cs_cs_read_header(&r, &h, err, sizeof err) || cs_srv_site_parse(req->site, self) ||
        strcmp(h.hash, st->schema->hash) != 0)
        return 0;
    const unsigned char *other = memcmp(h.origin, self, CS_SITE_LEN) ? h.origin : NULL;
    for (size_t i = 0; !other && i < h.nsites; i++)
        if (memcmp(h.sites + i * CS_SITE_LEN, self, CS_SITE_LEN) != 0)
            other = h.sites + i * CS_SITE_LEN;
    if (!other)
        return 0;
    char hex[2 * CS_SITE_LEN + 1];
    cs_hex_encode(other, CS_SITE_LEN, hex);
    return cs_err(CSTACK_EINVAL,
                  "the changeset carries writes of site %s; a device pushes only its own "
                  "writes (X-Cstack-Site %.32s)",
                  hex, req->site);
}

typedef struct row_fn {
    push_ctx *x;
    cs_conn *c;
    int (*fn)(push_ctx *x, cs_conn *c, const cs_cs_row *row);
} row_fn;

static int call_row_fn(void *ctx, const cs_cs_row *row)
{
    row_fn *f = ctx;
    return f->fn(f->x, f->c, row);
}

/* Runs fn on every row of the pushed batch, in order. */
static int each_row(push_ctx *x, cs_conn *c,
                    int (*fn)(push_ctx *x, cs_conn *c, const cs_cs_row *row))
{
    row_fn f = {x, c, fn};
    return cs_srv_each_row(x->st->schema, x->req, call_row_fn, &f);
}

/* Every row of an accepted batch is held by the device that pushed it, also
 * those the merge left unchanged (the server had later values): a later
 * deletion, drop or hiding of any of them must reach that device, which the
 * record makes sure of even when the server never sent it the row. */
static int held_one(push_ctx *x, cs_conn *c, const cs_cs_row *row)
{
    bool self = false, lost = false;
    int rc = pushed_lost(x, c, row, &lost);
    if (!rc && lost)
        return resend_lost(x, c, row);
    /* A row the device will hide by itself (its parent is gone, or its user
     * can read the row that took its unique value) is recorded as held
     * hidden: the device keeps it hidden, with its reason, rather than being
     * told to forget it, and a later deletion of it still reaches the
     * device. */
    rc = rc ? rc : hides_by_itself(x, c, row->model, row->pk, &self);
    rc = rc || !self ? rc : pushed_as_hidden(x, c, row, &self);
    rc = rc || !self ? rc : pushed_writes_won(x, c, row, &self);
    return rc ? rc : held(x, c, row->model, row->pk, self ? CS_SRV_HELD_HIDDEN : 1);
}

/* The delete rule of a row the batch deletes, checked on the state before
 * the batch: a rule through a relation (the team's owner may remove its
 * members) must see the parent that the same batch deletes first (the
 * cascade of a team's deletion).  The merge then checks no deletion. */
static int delete_before(push_ctx *x, cs_conn *c, const cs_cs_row *row)
{
    cs_sync *s = cs_sync_of(x->st->db);
    uint64_t cl = 0;
    cs_clk clk;
    cs_clk_init(&clk);
    int rc = row->cl % 2 ? 0
                         : cs_clkrow_load(c, &s->models[row->model],
                                          &x->st->schema->models[row->model], row->pk, &cl, &clk);
    cs_clk_free(&clk);
    if (rc || row->cl % 2 || !(cl % 2) || row->cl <= cl)
        return rc; /* no deletion of a live row */
    return push_check(x, c, row->model, row->pk, CS_CHECK_DELETE, CS_CHECK_BEFORE);
}

static void classify(push_ctx *x, int rc, cs_srv_err *err)
{
    if (x->foreign) {
        cs_srv_site_refuse(err);
        return;
    }
    if (x->refused) {
        cs_srv_err_set(err, CS_SRV_FORBIDDEN, rc, x->msg);
        return;
    }
    const char *msg = cs_errmsg_last();
    switch (rc) {
    case CSTACK_ESCHEMA:
        cs_srv_err_set(err, CS_SRV_CONFLICT, rc, msg);
        break;
    case CSTACK_EINVAL:
    case CSTACK_EVALIDATION:
    case CSTACK_EREQUIRED:
    case CSTACK_ECLOCK:
    case CSTACK_ETOOBIG:
        cs_srv_err_set(err, CS_SRV_BAD, rc, msg);
        break;
    default:
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, msg);
    }
}

/* The push inside its write transaction. */
static int push_in_scope(cs_srv_store *st, const cs_srv_push *req, cs_srv_push_result *res,
                         push_ctx *x)
{
    cs_conn *c = cs_write_conn(st->db);
    bool seen = false;
    /* What pulls answered before this push arrived is recorded before its
     * held records (store_sqlite_notes.c). */
    int rc = cs_srv_notes_drain(st);
    rc = rc ? rc : cs_srv_site_use(st, req->auth, req->site, &x->foreign);
    if (!rc && x->foreign)
        return CSTACK_EINVAL; /* rolls the scope back: nothing changes */
    rc = rc ? rc : batch_seen(c, req, &seen);
    if (!rc && seen) {
        res->duplicate = true;
        return cs_srv_durable_version(st, &res->cursor);
    }
    cs_apply_opts opts = {.check = push_check, .ctx = x, .refuse_drops = true};
    cstack_apply_stats stats = {0};
    rc = rc ? rc : each_row(x, c, delete_before);
    x->deletes_checked = true;
    rc = rc ? rc : cs_merge(st->db, req->changeset, req->len, &opts, &stats);
    rc = rc ? rc : each_row(x, c, held_one);
    rc = rc ? rc : batch_record(c, req);
    rc = rc ? rc : cs_srv_durable_version(st, &res->cursor);
    res->rows = stats.rows;
    res->columns = stats.columns;
    res->won = stats.won;
    return rc;
}

static int sqlite_push(cs_srv_store *st, const cs_srv_push *req, cs_srv_push_result *res,
                       cs_srv_err *err)
{
    memset(res, 0, sizeof *res);
    cs_srv_err_set(err, CS_SRV_OK, 0, "");
    if (!req->batch || !req->auth) {
        cs_srv_err_set(err, CS_SRV_BAD, CSTACK_EINVAL, "a push needs a batch id and a user");
        return CSTACK_EINVAL;
    }
    push_ctx x = {.st = st, .req = req};
    /* Cheap refusals first, read in a snapshot without the write lock: a
     * site that is another user's is refused at once, not after a merge in
     * progress.  The scope checks again (the site may be claimed meanwhile). */
    bool bind = false, sighting = false, seen = false;
    cs_conn *c = cs_read_begin(st->db);
    int rc = cs_srv_site_peek(st, c, req->auth, req->site, &x.foreign, &bind, &sighting);
    rc = rc || x.foreign ? rc : own_sites(st, req);
    rc = rc || x.foreign ? rc : batch_seen(c, req, &seen);
    /* So is a batch its merge would refuse whatever commits first (a retried
     * batch skips that: its rows are the server's, which the check leaves to
     * the merge, and the scope answers it `duplicate`). */
    if (!rc && !x.foreign && !seen)
        rc = cs_srv_precheck(st, c, req, &x.refused, x.msg, sizeof x.msg);
    cs_read_end(st->db, c);
    if (!rc && x.foreign)
        rc = CSTACK_EINVAL;
    else if (!rc && !(rc = cs_write_begin_opts(st->db, CS_WRITE_MERGE)))
        rc = cs_srv_scope_end(st, push_in_scope(st, req, res, &x));
    if (rc) {
        memset(res, 0, sizeof *res);
        classify(&x, rc, err);
    }
    return rc;
}

/* ---- the user key ----------------------------------------------------------- */

static int put_value(cs_buf *b, const cstack_value *v)
{
    switch (v->type) {
    case CSTACK_INT:
        return cs_buf_printf(b, "i%lld", (long long)v->u.i);
    case CSTACK_FLOAT:
        return cs_buf_printf(b, "f%.17g", v->u.f);
    case CSTACK_BOOL:
        return cs_buf_printf(b, "b%d", v->u.b);
    case CSTACK_TEXT:
        return cs_buf_putc(b, 't') ? CSTACK_ENOMEM : cs_buf_json_str(b, v->u.s.p, v->u.s.n);
    case CSTACK_BLOB:
        return cs_buf_putc(b, 'x') ? CSTACK_ENOMEM : cs_base64_encode(b, v->u.s.p, v->u.s.n);
    default:
        return cs_buf_putc(b, 'n');
    }
}

int cs_srv_auth_key(const cstack_schema *s, const cs_auth *auth, cs_buf *out)
{
    if (!auth || !auth->signed_in)
        return cs_buf_putc(out, '-');
    int rc = cs_buf_json_str(out, auth->sub ? auth->sub : "", auth->sub ? strlen(auth->sub) : 0);
    for (size_t i = 0; i < auth->n && i < s->auth.nfields && !rc; i++) {
        rc = cs_buf_putc(out, ',');
        rc = rc ? rc : put_value(out, &auth->values[i]);
    }
    return rc;
}

const cs_srv_store_ops cs_srv_store_sqlite = {
    .iversion = 3,
    .name = "sqlite",
    .open = sqlite_open,
    .push = sqlite_push,
    .pull = cs_srv_sqlite_pull,
    .version = sqlite_version,
    .claim = cs_srv_sqlite_claim,
    .close = sqlite_close,
    .versions = sqlite_versions,
};
