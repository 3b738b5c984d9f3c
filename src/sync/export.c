/* export.c -- changesets since a version, and the upload queue.
 *
 * Both walk the clock rows whose version is past a cursor (an index range
 * scan: cost follows the changes, not the table) joined with the data row,
 * and pick the columns whose clock entry falls in the range asked for.
 *
 * The upload queue is not a separate log: a local transaction is pending
 * while some clock entry written by this site carries its version and that
 * version is past the acknowledged cursor (_cstack_sync_state 'acked').  It is
 * as durable as the data, costs nothing at write time, and a column written
 * again later simply moves to the later transaction. */
#include <stdlib.h>
#include <string.h>

#include "sync/changeset.h"
#include "sync/sync_ext.h"
#include "sync/parked.h"
#include "value/value.h"

typedef struct scan {
    cs_sync *s;
    const cs_model *m;
    const cs_sync_model *sm;
    int mi;
    sqlite3_stmt *st;
    cs_clk clk;
    uint64_t cl;
    int64_t ver;
    bool present;
    cs_buf key, parked;     /* the parked copy, loaded lazily */
    bool parked_loaded, parked_found;
    cs_cs_value *pvals;     /* parked values by field */
    bool *ppresent;
} scan;

/* Which clock entries a walk wants: (site 0 only?) and a version range. */
typedef struct range {
    int64_t after;    /* entry.ver > after */
    int64_t upto;     /* entry.ver <= upto */
    bool local_only;
} range;

static bool in_range(const range *rg, const cs_clk_entry *e)
{
    return e && e->ver > rg->after && e->ver <= rg->upto && (!rg->local_only || e->site == 0);
}

static int scan_sql(cs_buf *b, const cs_model *m, const cs_sync_model *sm)
{
    int rc = cs_buf_puts(b, "SELECT ");
    rc = rc ? rc : cs_sync_pk_list(b, m, "c.");
    rc = rc ? rc : cs_buf_puts(b, ", c._cstack_cl, c._cstack_ver, c._cstack_clk");
    for (size_t k = 0; k < sm->ncols && !rc; k++) {
        if (sm->cols[k] < 0) {
            rc = cs_buf_puts(b, ", NULL");
            continue;
        }
        rc = cs_buf_puts(b, ", t.");
        rc = rc ? rc : cs_buf_ident(b, m->fields[sm->cols[k]].column);
    }
    rc = rc ? rc : cs_buf_puts(b, ", t.");
    rc = rc ? rc : cs_buf_ident(b, m->fields[m->pk[0]].column);
    rc = rc ? rc : cs_buf_puts(b, " IS NOT NULL FROM ");
    rc = rc ? rc : cs_buf_ident(b, sm->clk_table);
    rc = rc ? rc : cs_buf_puts(b, " AS c LEFT JOIN ");
    rc = rc ? rc : cs_buf_ident(b, m->table);
    rc = rc ? rc : cs_buf_puts(b, " AS t ON ");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        const char *c = m->fields[m->pk[i]].column;
        rc = cs_buf_puts(b, i ? " AND t." : "t.");
        rc = rc ? rc : cs_buf_ident(b, c);
        rc = rc ? rc : cs_buf_puts(b, " = c.");
        rc = rc ? rc : cs_buf_ident(b, c);
    }
    return rc ? rc : cs_buf_puts(b, " WHERE c._cstack_ver > ?1 ORDER BY c._cstack_ver");
}

/* The value of blob column k of the current row: from the table, or from the
 * parked copy of a hidden row. */
static int column_value(scan *sc, size_t k, cs_cs_value *v, bool *have)
{
    size_t npk = sc->m->npk;
    *have = false;
    if (sc->sm->cols[k] < 0)
        return 0;
    if (sc->present) {
        cs_cs_value_from_stmt(v, sc->st, (int)(npk + 3 + k));
        *have = true;
        return 0;
    }
    if (!(sc->cl & 1))
        return 0;
    if (!sc->parked_loaded) {
        cs_cs_value pk[16];
        for (size_t i = 0; i < npk; i++)
            cs_cs_value_from_stmt(&pk[i], sc->st, (int)i);
        int rc = cs_parked_key(&sc->key, pk, npk);
        rc = rc ? rc : cs_parked_get(cs_write_conn(sc->s->db), sc->m, &sc->key, &sc->parked,
                                     &sc->parked_found);
        if (!rc && sc->parked_found)
            rc = cs_parked_decode(sc->parked.data, sc->parked.len, sc->m, sc->pvals, sc->ppresent);
        if (rc)
            return rc;
        sc->parked_loaded = true;
    }
    int f = sc->sm->cols[k];
    if (sc->parked_found && sc->ppresent[f]) {
        *v = sc->pvals[f];
        *have = true;
    }
    return 0;
}

/* Whether a write in the range gave the row its version.  When none did, a
 * merge showed or hid the row (settle.c), and the export sends it whole: a
 * reader that lacks it (a server's device, sent nothing while it was
 * hidden) then gets every column, whatever their clocks. */
static bool written_in(const scan *sc, const range *rg)
{
    if (in_range(rg, cs_clk_row(&sc->clk)))
        return true;
    for (size_t k = 0; k < sc->sm->ncols; k++)
        if (in_range(rg, cs_clk_get(&sc->clk, k)))
            return true;
    return false;
}

/* The columns to send with a row.  An upload-queue transaction that created
 * the row (its existence entry is in range) also carries the row's columns
 * rewritten by later pending local transactions: without them the receiver
 * would see a created row missing fields (a server checks policies on it and
 * a backend connector's "put" expects the whole row).  Those columns go again
 * with their own transaction later, which merging makes harmless. */
static range column_range(const scan *sc, const range *rg)
{
    range r = *rg;
    if (rg->local_only && (sc->cl & 1) && in_range(rg, cs_clk_row(&sc->clk)))
        r.upto = INT64_MAX;
    else if (!rg->local_only && (sc->cl & 1) && sc->ver > rg->after && !written_in(sc, rg))
        r.after = 0;
    return r;
}

/* Appends the current row to the changeset if anything in it is in range. */
static int emit_row(scan *sc, cs_cs_writer *w, const range *rg, bool *emitted)
{
    cs_buf cols = CS_BUF_INIT;
    size_t ncols = 0;
    int rc = 0;
    *emitted = false;
    range crg = column_range(sc, rg);
    for (size_t k = 0; k < sc->sm->ncols && !rc; k++) {
        const cs_clk_entry *e = cs_clk_get(&sc->clk, k);
        cs_cs_value v;
        bool have;
        if (!in_range(&crg, e) || (rc = column_value(sc, k, &v, &have)) || !have)
            continue;
        const unsigned char *site = cs_site_id(sc->s, e->site);
        uint32_t idx;
        if (!site) {
            rc = CSTACK_ERROR;
            break;
        }
        rc = cs_cs_site(w, site, &idx);
        rc = rc ? rc : cs_wr_varint(&cols, (uint64_t)sc->sm->cols[k]);
        rc = rc ? rc : cs_wr_u64(&cols, e->hlc);
        rc = rc ? rc : cs_wr_varint(&cols, idx);
        rc = rc ? rc : cs_cs_put_value(&cols, &v);
        ncols++;
    }
    bool exist = in_range(rg, cs_clk_row(&sc->clk));
    if (!rc && (ncols || exist || (!rg->local_only && sc->ver > rg->after))) {
        cs_buf *b = &w->body;
        rc = cs_wr_varint(b, (uint64_t)sc->mi);
        rc = rc ? rc : cs_wr_varint(b, (uint64_t)sc->ver);
        rc = rc ? rc : cs_wr_varint(b, sc->cl);
        for (size_t i = 0; i < sc->m->npk && !rc; i++) {
            cs_cs_value pk;
            cs_cs_value_from_stmt(&pk, sc->st, (int)i);
            rc = cs_cs_put_value(b, &pk);
        }
        rc = rc ? rc : cs_wr_varint(b, ncols);
        rc = rc ? rc : cs_buf_append(b, cols.data ? cols.data : "", cols.len);
        w->nrows++;
        *emitted = true;
    }
    cs_buf_free(&cols);
    return rc;
}

typedef int (*row_fn)(scan *sc, void *ctx);

/* Walks the clock rows of every synced model with version > after. */
static int walk(cs_sync *s, int64_t after, row_fn fn, void *ctx)
{
    cs_conn *c = cs_write_conn(s->db);
    int rc = 0;
    for (size_t mi = 0; mi < s->nmodels && !rc; mi++) {
        const cs_sync_model *sm = &s->models[mi];
        if (!sm->synced)
            continue;
        scan sc = {.s = s, .m = &s->schema->models[mi], .sm = sm, .mi = (int)mi};
        cs_clk_init(&sc.clk);
        sc.pvals = calloc(sc.m->nfields ? sc.m->nfields : 1, sizeof *sc.pvals);
        sc.ppresent = calloc(sc.m->nfields ? sc.m->nfields : 1, sizeof *sc.ppresent);
        cs_buf sql = CS_BUF_INIT;
        if (!sc.pvals || !sc.ppresent || scan_sql(&sql, sc.m, sm))
            rc = cs_err(CSTACK_ENOMEM, "out of memory");
        if (!rc && !(sc.st = cs_conn_prepare(c, 0, sql.data, sql.len)))
            rc = cs_err_sqlite(sc.m, c->db, sqlite3_errcode(c->db));
        if (!rc)
            sqlite3_bind_int64(sc.st, 1, after);
        int step;
        while (!rc && (step = sqlite3_step(sc.st)) == SQLITE_ROW) {
            size_t npk = sc.m->npk;
            sc.cl = (uint64_t)sqlite3_column_int64(sc.st, (int)npk);
            sc.ver = sqlite3_column_int64(sc.st, (int)npk + 1);
            sc.present = sqlite3_column_int(sc.st, (int)(npk + 3 + sm->ncols)) != 0;
            sc.parked_loaded = false;
            if (cs_clk_decode(&sc.clk, sqlite3_column_blob(sc.st, (int)npk + 2),
                              (size_t)sqlite3_column_bytes(sc.st, (int)npk + 2)))
                rc = cs_err(CSTACK_ESQLITE, "corrupt clock metadata in %s", sm->clk_table);
            else
                rc = fn(&sc, ctx);
        }
        if (!rc && step != SQLITE_DONE)
            rc = cs_err_sqlite(sc.m, c->db, step);
        if (sc.st)
            sqlite3_reset(sc.st);
        cs_buf_free(&sql);
        cs_buf_free(&sc.key);
        cs_buf_free(&sc.parked);
        cs_clk_free(&sc.clk);
        free(sc.pvals);
        free(sc.ppresent);
    }
    return rc;
}

typedef struct export_ctx {
    cs_cs_writer w;
    range rg;
} export_ctx;

static int export_row(scan *sc, void *ctx)
{
    export_ctx *x = ctx;
    bool emitted;
    return emit_row(sc, &x->w, &x->rg, &emitted);
}

/* Runs fn inside a write scope, after folding the capture log. */
static int locked(cstack *db, cs_sync **s, int (*fn)(cstack *db, cs_sync *s, void *ctx),
                  void *ctx)
{
    int rc = cs_sync_require(db, s);
    if (rc || (rc = cs_write_begin(db)))
        return rc;
    /* Captured transactions become clock rows first (and that is kept). */
    rc = cs_sync_materialize(*s);
    sqlite3 *conn = cs_write_conn(db)->db;
    int src = rc ? SQLITE_OK : cs_sync_load_clock(*s, conn);
    if (src != SQLITE_OK)
        rc = cs_err_sqlite(NULL, conn, src);
    rc = rc ? rc : fn(db, *s, ctx);
    return cs_write_end(db, rc);
}

typedef struct export_args {
    int64_t since;
    void **out;
    size_t *len;
    int64_t *cursor;
} export_args;

static int do_export(cstack *db, cs_sync *s, void *ctx)
{
    export_args *a = ctx;
    export_ctx x = {.rg = {a->since, INT64_MAX, false}};
    int64_t until = s->last_ver;
    int rc = walk(s, a->since, export_row, &x);
    if (!rc)
        rc = cs_cs_finish(&x.w, s->schema, s->site, a->since, until, a->out, a->len);
    if (!rc && a->cursor)
        *a->cursor = until > a->since ? until : a->since;
    cs_cs_writer_free(&x.w);
    return rc;
}

typedef struct filtered_ctx {
    cs_cs_writer w;
    int64_t since;
    cs_export_filter filter;
    void *fctx;
} filtered_ctx;

static int emit_drop(scan *sc, cs_cs_writer *w)
{
    cs_buf *b = &w->body;
    int rc = cs_wr_varint(b, (uint64_t)sc->mi);
    rc = rc ? rc : cs_wr_varint(b, (uint64_t)sc->ver);
    rc = rc ? rc : cs_wr_varint(b, 0);
    for (size_t i = 0; i < sc->m->npk && !rc; i++) {
        cs_cs_value pk;
        cs_cs_value_from_stmt(&pk, sc->st, (int)i);
        rc = cs_cs_put_value(b, &pk);
    }
    rc = rc ? rc : cs_wr_varint(b, 0);
    if (!rc)
        w->nrows++;
    return rc;
}

static int filtered_row(scan *sc, void *ctx)
{
    filtered_ctx *x = ctx;
    cs_cs_value pk[16];
    for (size_t i = 0; i < sc->m->npk && i < 16; i++)
        cs_cs_value_from_stmt(&pk[i], sc->st, (int)i);
    cs_export_decision d = CS_EXPORT_SKIP;
    int rc = x->filter(x->fctx, sc->mi, pk, sc->ver, (sc->cl & 1) != 0, &d);
    if (rc || d == CS_EXPORT_SKIP)
        return rc;
    if (d == CS_EXPORT_DROP)
        return emit_drop(sc, &x->w);
    /* A full row must also carry a row that has not changed since `since`. */
    range rg = {d == CS_EXPORT_FULL ? 0 : x->since, INT64_MAX, false};
    bool emitted;
    return emit_row(sc, &x->w, &rg, &emitted);
}

typedef struct filtered_args {
    int64_t scan_from, since;
    cs_export_filter filter;
    void *fctx;
    void **out;
    size_t *len;
    int64_t *cursor;
} filtered_args;

static int do_filtered(cstack *db, cs_sync *s, void *ctx)
{
    filtered_args *a = ctx;
    filtered_ctx x = {.since = a->since, .filter = a->filter, .fctx = a->fctx};
    int64_t until = s->last_ver;
    int rc = walk(s, a->scan_from, filtered_row, &x);
    if (!rc)
        rc = cs_cs_finish(&x.w, s->schema, s->site, a->since, until, a->out, a->len);
    if (!rc && a->cursor)
        *a->cursor = until > a->since ? until : a->since;
    cs_cs_writer_free(&x.w);
    return rc;
}

int cs_changes_export_filtered(cstack *db, int64_t scan_from, int64_t since,
                               cs_export_filter filter, void *ctx, void **out, size_t *len,
                               int64_t *cursor)
{
    if (!db || !filter || !out || !len || since < 0 || scan_from < 0)
        return CSTACK_EMISUSE;
    *out = NULL;
    *len = 0;
    cs_sync *s = NULL;
    filtered_args a = {scan_from, since, filter, ctx, out, len, cursor};
    return locked(db, &s, do_filtered, &a);
}

int cstack_changes_export(cstack *db, int64_t since, void **out, size_t *len, int64_t *cursor)
{
    cs_enter(db);
    if (!db || !out || !len || since < 0)
        return CSTACK_EMISUSE;
    *out = NULL;
    *len = 0;
    cs_sync *s = NULL;
    export_args a = {since, out, len, cursor};
    return locked(db, &s, do_export, &a);
}

/* ---- the upload queue ---------------------------------------------------- */

typedef struct versions {
    int64_t *v;
    size_t n, cap;
    int64_t after;
} versions;

static int add_version(versions *vs, int64_t v)
{
    for (size_t i = 0; i < vs->n; i++)
        if (vs->v[i] == v)
            return 0;
    if (vs->n == vs->cap) {
        size_t cap = vs->cap ? vs->cap * 2 : 16;
        int64_t *p = realloc(vs->v, cap * sizeof *p);
        if (!p)
            return CSTACK_ENOMEM;
        vs->v = p;
        vs->cap = cap;
    }
    vs->v[vs->n++] = v;
    return 0;
}

static int collect_versions(scan *sc, void *ctx)
{
    versions *vs = ctx;
    int rc = 0;
    /* A deleted row's column clocks describe nothing left to upload: only
     * its deletion is pending. */
    size_t last = sc->cl & 1 ? sc->clk.ncols : 0;
    for (size_t k = 0; k <= last && !rc; k++) {
        const cs_clk_entry *e = k == 0 ? cs_clk_row(&sc->clk) : cs_clk_get(&sc->clk, k - 1);
        if (e && e->site == 0 && e->ver > vs->after)
            rc = add_version(vs, e->ver);
    }
    return rc;
}

static int pending_versions(cstack *db, cs_sync *s, versions *vs)
{
    sqlite3 *conn = cs_write_conn(db)->db;
    int64_t acked = 0;
    int rc = cs_sync_state_get(conn, "acked", &acked);
    if (rc != SQLITE_OK)
        return cs_err_sqlite(NULL, conn, rc);
    vs->after = acked;
    return walk(s, acked, collect_versions, vs);
}

/* The highest version recorded in the file (not the runtime's counter, which
 * may be ahead by versions that wrote nothing). */
static int disk_version(cs_sync *s, sqlite3 *conn, int64_t *ver)
{
    int rc = cs_sync_state_get(conn, "ver", ver);
    cs_buf sql = CS_BUF_INIT;
    for (size_t i = 0; rc == SQLITE_OK && i < s->nmodels; i++) {
        if (!s->models[i].synced || !s->models[i].has_table)
            continue;
        cs_buf_reset(&sql);
        sqlite3_stmt *st = NULL;
        rc = cs_buf_puts(&sql, "SELECT max(_cstack_ver) FROM ") ||
                     cs_buf_ident(&sql, s->models[i].clk_table)
                 ? SQLITE_NOMEM
                 : sqlite3_prepare_v2(conn, sql.data, -1, &st, NULL);
        if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_column_int64(st, 0) > *ver)
            *ver = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    cs_buf_free(&sql);
    return rc;
}

/* With nothing pending, everything in the file is acknowledged: later queue
 * reads then skip the rows merged from elsewhere since the last upload
 * instead of re-examining them every time.  Safe across processes: this
 * runs in a BEGIN IMMEDIATE write scope, and any later transaction takes its
 * version from the file after this one commits. */
static int ack_all(cstack *db, cs_sync *s, int64_t acked)
{
    sqlite3 *conn = cs_write_conn(db)->db;
    int64_t ver = 0;
    int rc = disk_version(s, conn, &ver);
    if (rc == SQLITE_OK && ver > acked)
        rc = cs_sync_state_put(conn, "acked", ver);
    return rc == SQLITE_OK ? 0 : cs_err_sqlite(NULL, conn, rc);
}

static int do_pending(cstack *db, cs_sync *s, void *ctx)
{
    versions vs = {0};
    int rc = pending_versions(db, s, &vs);
    if (rc == 0 && vs.n == 0)
        rc = ack_all(db, s, vs.after);
    *(int64_t *)ctx = (int64_t)vs.n;
    free(vs.v);
    return rc;
}

int cstack_upload_pending(cstack *db, int64_t *count)
{
    cs_enter(db);
    if (!db || !count)
        return CSTACK_EMISUSE;
    *count = 0;
    cs_sync *s = NULL;
    return locked(db, &s, do_pending, count);
}

struct cstack_upload_tx {
    int64_t version;
    char *json;
    void *changeset;
    size_t len;
};

typedef struct upload_ctx {
    cs_cs_writer w;
    range rg;
    cs_buf json;
    size_t nops;
} upload_ctx;

/* A stored value in the envelope's JSON mapping. */
static int value_json(cs_buf *b, const cs_field *f, const cs_cs_value *v)
{
    cstack_value cv = cs_cs_value_get(v);
    return cs_value_json(b, f->type, &cv);
}

static int upload_row(scan *sc, void *ctx)
{
    upload_ctx *u = ctx;
    bool emitted;
    int rc = emit_row(sc, &u->w, &u->rg, &emitted);
    if (rc || !emitted)
        return rc;
    bool exist = in_range(&u->rg, cs_clk_row(&sc->clk));
    const char *op = exist ? (sc->cl & 1 ? "put" : "delete") : "patch";
    cs_buf *b = &u->json;
    rc = cs_buf_printf(b, "%s{\"op\":\"%s\",\"model\":", u->nops++ ? "," : "", op);
    rc = rc ? rc : cs_buf_json_str(b, sc->m->name, strlen(sc->m->name));
    rc = rc ? rc : cs_buf_puts(b, ",\"key\":{");
    for (size_t i = 0; i < sc->m->npk && !rc; i++) {
        const cs_field *f = &sc->m->fields[sc->m->pk[i]];
        cs_cs_value v;
        cs_cs_value_from_stmt(&v, sc->st, (int)i);
        rc = cs_buf_puts(b, i ? "," : "");
        rc = rc ? rc : cs_buf_json_str(b, f->name, strlen(f->name));
        rc = rc ? rc : cs_buf_putc(b, ':');
        rc = rc ? rc : value_json(b, f, &v);
    }
    rc = rc ? rc : cs_buf_puts(b, "}");
    if (!rc && (sc->cl & 1)) {
        rc = cs_buf_puts(b, ",\"data\":{");
        size_t n = 0;
        range crg = column_range(sc, &u->rg);
        for (size_t k = 0; k < sc->sm->ncols && !rc; k++) {
            cs_cs_value v;
            bool have;
            if (!in_range(&crg, cs_clk_get(&sc->clk, k)) ||
                (rc = column_value(sc, k, &v, &have)) || !have)
                continue;
            const cs_field *f = &sc->m->fields[sc->sm->cols[k]];
            rc = cs_buf_puts(b, n++ ? "," : "");
            rc = rc ? rc : cs_buf_json_str(b, f->name, strlen(f->name));
            rc = rc ? rc : cs_buf_putc(b, ':');
            rc = rc ? rc : value_json(b, f, &v);
        }
        rc = rc ? rc : cs_buf_puts(b, "}");
    }
    return rc ? rc : cs_buf_puts(b, "}");
}

static int do_next(cstack *db, cs_sync *s, void *ctx)
{
    cstack_upload_tx **out = ctx;
    versions vs = {0};
    int rc = pending_versions(db, s, &vs);
    if (rc == 0 && vs.n == 0)
        rc = ack_all(db, s, vs.after);
    if (rc || vs.n == 0) {
        free(vs.v);
        return rc;
    }
    int64_t v = vs.v[0];
    for (size_t i = 1; i < vs.n; i++)
        if (vs.v[i] < v)
            v = vs.v[i];
    free(vs.v);
    upload_ctx u = {.rg = {v - 1, v, true}};
    rc = cs_buf_printf(&u.json, "{\"version\":%lld,\"ops\":[", (long long)v);
    rc = rc ? rc : walk(s, v - 1, upload_row, &u);
    rc = rc ? rc : cs_buf_puts(&u.json, "]}");
    cstack_upload_tx *tx = rc ? NULL : calloc(1, sizeof *tx);
    if (!rc && !tx)
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    if (!rc)
        rc = cs_cs_finish(&u.w, s->schema, s->site, v - 1, v, &tx->changeset, &tx->len);
    if (!rc) {
        tx->version = v;
        tx->json = cs_buf_take(&u.json);
        rc = tx->json ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
    }
    if (rc)
        cstack_upload_tx_free(tx);
    else
        *out = tx;
    cs_cs_writer_free(&u.w);
    cs_buf_free(&u.json);
    return rc;
}

int cstack_upload_next(cstack *db, cstack_upload_tx **out)
{
    cs_enter(db);
    if (!db || !out)
        return CSTACK_EMISUSE;
    *out = NULL;
    cs_sync *s = NULL;
    return locked(db, &s, do_next, out);
}

int64_t cstack_upload_tx_version(const cstack_upload_tx *tx)
{
    return tx ? tx->version : 0;
}

const char *cstack_upload_tx_json(const cstack_upload_tx *tx)
{
    return tx ? tx->json : NULL;
}

const void *cstack_upload_tx_changeset(const cstack_upload_tx *tx, size_t *len)
{
    if (len)
        *len = tx ? tx->len : 0;
    return tx ? tx->changeset : NULL;
}

void cstack_upload_tx_free(cstack_upload_tx *tx)
{
    if (!tx)
        return;
    free(tx->json);
    free(tx->changeset);
    free(tx);
}

int cstack_upload_complete(cstack *db, int64_t version)
{
    cs_enter(db);
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc || (rc = cs_write_begin(db)))
        return rc;
    sqlite3 *conn = cs_write_conn(db)->db;
    int64_t acked = 0;
    int src = cs_sync_state_get(conn, "acked", &acked);
    if (src == SQLITE_OK && version > acked)
        src = cs_sync_state_put(conn, "acked", version);
    if (src != SQLITE_OK)
        rc = cs_err_sqlite(NULL, conn, src);
    return cs_write_end(db, rc);
}
