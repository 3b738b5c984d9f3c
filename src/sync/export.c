/* export.c -- changesets since a version, and the upload queue.
 *
 * Both walk the clock rows whose version is past a cursor (an index range
 * scan: cost follows the changes, not the table) joined with the data row,
 * and pick the columns whose clock entry falls in the range asked for.
 *
 * A filtered export (the server's pulls) walks every model at once in one
 * order, (version, model index, primary key), merging the models' index
 * scans, so that it can stop after a bounded page and resume after the last
 * row it looked at: rows only ever move to a later version (a new commit's
 * version is past every version handed out), so nothing behind the resume
 * point is missed and a row that moves is met again further on.  The
 * columns a reader wrote itself are left out of what it is sent (echo
 * suppression): it holds them, unless a later write by someone else won.
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

/* The site ids of a read snapshot: a filtered export reads its own, since
 * merges on the write connection change the runtime's cache meanwhile.
 * Each is read on first use: a page meets few writers, the table may hold
 * one per device. */
typedef struct site_view {
    cs_conn *c;
    unsigned char (*ids)[CS_SITE_LEN]; /* by ordinal; owned */
    bool *have;                        /* ids[i] was read */
    size_t cap;
} site_view;

typedef struct scan {
    cs_sync *s;
    cs_conn *c;             /* the connection the scan reads */
    site_view *sv;          /* the snapshot's sites; NULL: the runtime's cache */
    const cs_model *m;
    const cs_sync_model *sm;
    int mi;
    sqlite3_stmt *st;
    cs_clk clk;
    uint64_t cl;
    int64_t ver;
    bool present;
    int64_t extra;          /* the page's extra expression, 0 without */
    bool has_row;           /* a merged walk: st is on a row */
    int64_t reader;         /* the reader's site ordinal, -1: none (echoes) */
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

/* Makes room for ordinal `ord`. */
static int site_view_grow(site_view *sv, uint64_t ord)
{
    if (ord < sv->cap)
        return 0;
    if (ord >= ((uint64_t)1 << 31))
        return CSTACK_ERROR; /* no database holds that many sites */
    size_t cap = sv->cap ? sv->cap : 16;
    while (cap <= ord)
        cap *= 2;
    unsigned char(*ids)[CS_SITE_LEN] = realloc(sv->ids, cap * sizeof *ids);
    if (ids)
        sv->ids = ids;
    bool *have = ids ? realloc(sv->have, cap * sizeof *have) : NULL;
    if (!have)
        return CSTACK_ENOMEM;
    memset(have + sv->cap, 0, (cap - sv->cap) * sizeof *have);
    sv->have = have;
    sv->cap = cap;
    return 0;
}

/* The site id of ordinal `ord` in the snapshot; NULL when there is none. */
static const unsigned char *site_view_get(site_view *sv, uint64_t ord)
{
    if (ord < sv->cap && sv->have[ord])
        return sv->ids[ord];
    static const char sql[] = "SELECT site FROM _cstack_sites WHERE ord = ?";
    sqlite3_stmt *st = cs_conn_prepare(sv->c, 0, sql, sizeof sql - 1);
    if (!st)
        return NULL;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ord);
    const unsigned char *out = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == CS_SITE_LEN &&
        site_view_grow(sv, ord) == 0) {
        memcpy(sv->ids[ord], sqlite3_column_blob(st, 0), CS_SITE_LEN);
        sv->have[ord] = true;
        out = sv->ids[ord];
    }
    sqlite3_reset(st);
    return out;
}

static void site_view_free(site_view *sv)
{
    free(sv->ids);
    free(sv->have);
}

/* The ordinal of the reader's site in the snapshot, -1 when it never wrote
 * there (ordinal 0 is this database's own site). */
static int reader_ordinal(site_view *sv, const unsigned char *site, int64_t *ord)
{
    *ord = -1;
    if (!site)
        return 0;
    static const char sql[] = "SELECT ord FROM _cstack_sites WHERE site = ?";
    sqlite3_stmt *st = cs_conn_prepare(sv->c, 0, sql, sizeof sql - 1);
    if (!st)
        return cs_err_sqlite(NULL, sv->c->db, sqlite3_errcode(sv->c->db));
    sqlite3_bind_blob(st, 1, site, CS_SITE_LEN, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0)
        *ord = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return step == SQLITE_ROW || step == SQLITE_DONE ? 0 : cs_err_sqlite(NULL, sv->c->db, step);
}

static bool in_range(const range *rg, const cs_clk_entry *e)
{
    return e && e->ver > rg->after && e->ver <= rg->upto && (!rg->local_only || e->site == 0);
}

/* The position condition of one model in a merged walk resuming after
 * `pos`: the models before pos's model resume past its version, its own
 * model past (version, key), the later ones at its version. */
static int scan_where(cs_sqlb *q, const scan *sc, int64_t after, const cs_export_pos *pos)
{
    if (!pos || pos->ver <= after) {
        int rc = cs_buf_puts(&q->sql, " WHERE c._cstack_ver > ");
        return rc ? rc : cs_sqlb_bind(q, cstack_v_int(after));
    }
    if (sc->mi != pos->model) {
        int rc = cs_buf_puts(&q->sql, sc->mi < pos->model ? " WHERE c._cstack_ver > "
                                                          : " WHERE c._cstack_ver >= ");
        return rc ? rc : cs_sqlb_bind(q, cstack_v_int(pos->ver));
    }
    cs_cs_value pk[16];
    int rc = cs_export_key_decode(sc->s->schema, sc->mi, pos->key, pos->keylen, pk);
    rc = rc ? rc : cs_buf_puts(&q->sql, " WHERE (c._cstack_ver");
    for (size_t i = 0; i < sc->m->npk && !rc; i++) {
        rc = cs_buf_puts(&q->sql, ", c.");
        rc = rc ? rc : cs_buf_ident(&q->sql, sc->m->fields[sc->m->pk[i]].column);
    }
    rc = rc ? rc : cs_buf_puts(&q->sql, ") > (");
    rc = rc ? rc : cs_sqlb_bind(q, cstack_v_int(pos->ver));
    for (size_t i = 0; i < sc->m->npk && !rc; i++) {
        rc = cs_buf_puts(&q->sql, ", ");
        rc = rc ? rc : cs_sqlb_bind(q, cs_cs_value_get(&pk[i]));
    }
    return rc ? rc : cs_buf_puts(&q->sql, ")");
}

/* The scan of one model: its clock rows past `after` (or past `pos`), with
 * the data row, in (version, key) order (the version index holds the key).
 * `page` may add an extra column. */
static int scan_sql(cs_sqlb *q, const scan *sc, int64_t after, const cs_export_page *page,
                    void *fctx)
{
    const cs_model *m = sc->m;
    const cs_sync_model *sm = sc->sm;
    cs_buf *b = &q->sql;
    int rc = cs_buf_puts(b, "SELECT ");
    rc = rc ? rc : cs_sync_pk_list(b, m, "c.");
    rc = rc ? rc : cs_buf_puts(b, ", c._cstack_cl, c._cstack_ver, c._cstack_clk");
    for (size_t k = 0; k < sm->ncols && !rc; k++) {
        if (sm->cols[k] < 0) {
            rc = cs_buf_puts(b, ", NULL");
            continue;
        }
        rc = cs_buf_puts(b, ", t0.");
        rc = rc ? rc : cs_buf_ident(b, m->fields[sm->cols[k]].column);
    }
    rc = rc ? rc : cs_buf_puts(b, ", t0.");
    rc = rc ? rc : cs_buf_ident(b, m->fields[m->pk[0]].column);
    rc = rc ? rc : cs_buf_puts(b, " IS NOT NULL");
    if (!rc && page && page->extra) {
        rc = cs_buf_puts(b, ", (");
        rc = rc ? rc : page->extra(fctx, sc->mi, q);
        rc = rc ? rc : cs_buf_puts(b, ")");
    }
    rc = rc ? rc : cs_buf_puts(b, " FROM ");
    rc = rc ? rc : cs_buf_ident(b, sm->clk_table);
    rc = rc ? rc : cs_buf_puts(b, " AS c LEFT JOIN ");
    rc = rc ? rc : cs_buf_ident(b, m->table);
    rc = rc ? rc : cs_buf_puts(b, " AS t0 ON ");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        const char *c = m->fields[m->pk[i]].column;
        rc = cs_buf_puts(b, i ? " AND t0." : "t0.");
        rc = rc ? rc : cs_buf_ident(b, c);
        rc = rc ? rc : cs_buf_puts(b, " = c.");
        rc = rc ? rc : cs_buf_ident(b, c);
    }
    rc = rc ? rc : scan_where(q, sc, after, page ? page->after : NULL);
    rc = rc ? rc : cs_buf_puts(b, " ORDER BY c._cstack_ver");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        rc = cs_buf_puts(b, ", c.");
        rc = rc ? rc : cs_buf_ident(b, m->fields[m->pk[i]].column);
    }
    return rc;
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
        rc = rc ? rc : cs_parked_get(sc->c, sc->m, &sc->key, &sc->parked, &sc->parked_found);
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

/* Whether a clock entry is the reader's own write (an echo). */
static bool own(const scan *sc, const cs_clk_entry *e, bool skip_own)
{
    return skip_own && sc->reader >= 0 && e->site == (uint64_t)sc->reader;
}

/* Appends the current row to the changeset if anything in it is in range,
 * leaving out the reader's own writes when `skip_own`: a row whose every
 * entry in range is the reader's is not sent at all. */
static int emit_row(scan *sc, cs_cs_writer *w, const range *rg, bool skip_own, bool *emitted)
{
    cs_buf cols = CS_BUF_INIT;
    size_t ncols = 0;
    bool echoed = false;
    int rc = 0;
    *emitted = false;
    range crg = column_range(sc, rg);
    for (size_t k = 0; k < sc->sm->ncols && !rc; k++) {
        const cs_clk_entry *e = cs_clk_get(&sc->clk, k);
        cs_cs_value v;
        bool have;
        if (!in_range(&crg, e))
            continue;
        if (own(sc, e, skip_own)) {
            echoed = true;
            continue;
        }
        if ((rc = column_value(sc, k, &v, &have)) || !have)
            continue;
        const unsigned char *site =
            sc->sv ? site_view_get(sc->sv, e->site) : cs_site_id(sc->s, e->site);
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
    const cs_clk_entry *re = cs_clk_row(&sc->clk);
    bool exist = in_range(rg, re);
    if (exist && own(sc, re, skip_own)) {
        exist = false;
        echoed = true;
    }
    if (!rc && (ncols || exist || (!rg->local_only && sc->ver > rg->after && !echoed))) {
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

/* Prepares the scan of model mi on c (statement bound, not yet stepped). */
static int scan_open(scan *sc, cs_sync *s, cs_conn *c, int mi, int64_t after,
                     const cs_export_page *page, void *fctx)
{
    *sc = (scan){.s = s, .c = c, .m = &s->schema->models[mi], .sm = &s->models[mi], .mi = mi,
                 .reader = -1};
    cs_clk_init(&sc->clk);
    sc->pvals = calloc(sc->m->nfields ? sc->m->nfields : 1, sizeof *sc->pvals);
    sc->ppresent = calloc(sc->m->nfields ? sc->m->nfields : 1, sizeof *sc->ppresent);
    cs_sqlb q = {0};
    q.alias = 1;
    int rc = sc->pvals && sc->ppresent ? scan_sql(&q, sc, after, page, fctx) : CSTACK_ENOMEM;
    if (rc == CSTACK_ENOMEM)
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    if (!rc && !(sc->st = cs_conn_prepare(c, 0, q.sql.data, q.sql.len)))
        rc = cs_err_sqlite(sc->m, c->db, sqlite3_errcode(c->db));
    int brc = rc ? SQLITE_OK : cs_sqlb_apply(&q, sc->st);
    if (brc != SQLITE_OK)
        rc = cs_err_sqlite(sc->m, c->db, brc);
    cs_sqlb_free(&q);
    return rc;
}

static void scan_close(scan *sc)
{
    if (sc->st)
        sqlite3_reset(sc->st);
    cs_buf_free(&sc->key);
    cs_buf_free(&sc->parked);
    cs_clk_free(&sc->clk);
    free(sc->pvals);
    free(sc->ppresent);
    sc->st = NULL;
    sc->pvals = NULL;
    sc->ppresent = NULL;
}

/* Steps the scan to its next row and reads the row's metadata; has_row
 * false at the end. */
static int scan_step(scan *sc, bool extra)
{
    cs_conn *c = sc->c;
    int step = sqlite3_step(sc->st);
    sc->has_row = step == SQLITE_ROW;
    if (step == SQLITE_DONE)
        return 0;
    if (step != SQLITE_ROW)
        return cs_err_sqlite(sc->m, c->db, step);
    size_t npk = sc->m->npk;
    sc->cl = (uint64_t)sqlite3_column_int64(sc->st, (int)npk);
    sc->ver = sqlite3_column_int64(sc->st, (int)npk + 1);
    sc->present = sqlite3_column_int(sc->st, (int)(npk + 3 + sc->sm->ncols)) != 0;
    sc->extra = extra ? sqlite3_column_int64(sc->st, (int)(npk + 4 + sc->sm->ncols)) : 0;
    sc->parked_loaded = false;
    if (cs_clk_decode(&sc->clk, sqlite3_column_blob(sc->st, (int)npk + 2),
                      (size_t)sqlite3_column_bytes(sc->st, (int)npk + 2)))
        return cs_err(CSTACK_ESQLITE, "corrupt clock metadata in %s", sc->sm->clk_table);
    return 0;
}

/* Walks the clock rows of every synced model with version > after, one
 * model after the other. */
static int walk(cs_sync *s, int64_t after, row_fn fn, void *ctx)
{
    int rc = 0;
    for (size_t mi = 0; mi < s->nmodels && !rc; mi++) {
        if (!s->models[mi].synced)
            continue;
        scan sc;
        rc = scan_open(&sc, s, cs_write_conn(s->db), (int)mi, after, NULL, NULL);
        while (!rc && !(rc = scan_step(&sc, false)) && sc.has_row)
            rc = fn(&sc, ctx);
        scan_close(&sc);
    }
    return rc;
}

/* Whether the page is full once the current row has been handled. */
static bool page_full(const cs_export_page *pg, const cs_cs_writer *w)
{
    return (pg->max_rows && w->nrows >= pg->max_rows) ||
           (pg->max_bytes && w->body.len >= pg->max_bytes) ||
           (pg->max_examined && (size_t)pg->examined >= pg->max_examined);
}

/* Records the current row of sc as the page's end; false when its key is
 * too long to be a position (the page then takes the next row too). */
static bool page_mark(cs_export_page *pg, scan *sc)
{
    cs_cs_value pk[16];
    for (size_t i = 0; i < sc->m->npk; i++)
        cs_cs_value_from_stmt(&pk[i], sc->st, (int)i);
    if (cs_parked_key(&sc->key, pk, sc->m->npk) || sc->key.len > CS_EXPORT_KEY_MAX)
        return false;
    pg->last.ver = sc->ver;
    pg->last.model = sc->mi;
    pg->last.keylen = sc->key.len;
    memcpy(pg->last.key, sc->key.data, sc->key.len);
    return true;
}

/* Walks the rows of every synced model past `after` (or past page->after)
 * in (version, model, key) order, merging the models' scans, until the page
 * is full. */
static int walk_page(cs_sync *s, cs_conn *c, site_view *sv, int64_t after,
                     cs_export_page *pg, void *extra_ctx, const cs_cs_writer *w, row_fn fn,
                     void *ctx)
{
    scan *sc = calloc(s->nmodels ? s->nmodels : 1, sizeof *sc);
    if (!sc)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    int64_t reader = -1;
    int rc = reader_ordinal(sv, pg->reader, &reader);
    for (size_t mi = 0; mi < s->nmodels && !rc; mi++) {
        if (!s->models[mi].synced)
            continue;
        rc = scan_open(&sc[mi], s, c, (int)mi, after, pg, extra_ctx);
        sc[mi].sv = sv;
        sc[mi].reader = reader;
        rc = rc ? rc : scan_step(&sc[mi], pg->extra != NULL);
    }
    pg->more = false;
    pg->examined = 0;
    bool full = false;
    while (!rc) {
        scan *next = NULL;
        for (size_t mi = 0; mi < s->nmodels; mi++)
            if (sc[mi].has_row && (!next || sc[mi].ver < next->ver))
                next = &sc[mi];
        if (!next || (pg->more = full)) /* a full page: this row starts the next */
            break;
        rc = fn(next, ctx);
        pg->examined++;
        full = !rc && page_full(pg, w) && page_mark(pg, next);
        rc = rc ? rc : scan_step(next, pg->extra != NULL);
    }
    for (size_t mi = 0; mi < s->nmodels; mi++)
        if (s->models[mi].synced)
            scan_close(&sc[mi]);
    free(sc);
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
    return emit_row(sc, &x->w, &x->rg, false, &emitted);
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
    cs_export_page *page;
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
    int rc = x->filter(x->fctx, sc->mi, pk, sc->ver, (sc->cl & 1) != 0, sc->extra, &d);
    if (rc || d == CS_EXPORT_SKIP)
        return rc;
    if (d == CS_EXPORT_DROP)
        return emit_drop(sc, &x->w);
    /* A full row must also carry a row that has not changed since `since`. */
    range rg = {d == CS_EXPORT_CHANGES ? x->since : 0, INT64_MAX, false};
    bool emitted;
    return emit_row(sc, &x->w, &rg, d != CS_EXPORT_FULL, &emitted);
}

static int disk_version(cs_sync *s, sqlite3 *conn, int64_t *ver);

int cs_export_snapshot_version(cstack *db, cs_conn *c, int64_t *ver)
{
    cs_sync *s = NULL;
    *ver = 0;
    int rc = cs_sync_require(db, &s);
    int src = rc ? SQLITE_OK : disk_version(s, c->db, ver);
    return src == SQLITE_OK ? rc : cs_err_sqlite(NULL, c->db, src);
}

int cs_changes_export_filtered(cstack *db, cs_conn *c, int64_t scan_from, int64_t since,
                               cs_export_filter filter, void *ctx, cs_export_page *page,
                               void **out, size_t *len, int64_t *cursor)
{
    if (!db || !c || !filter || !out || !len || since < 0 || scan_from < 0)
        return CSTACK_EMISUSE;
    *out = NULL;
    *len = 0;
    cs_sync *s = NULL;
    int64_t until = 0;
    int rc = cs_export_snapshot_version(db, c, &until);
    site_view sv = {.c = c};
    cs_export_page all = {0};
    cs_export_page *pg = page ? page : &all;
    filtered_ctx x = {.since = since, .filter = filter, .fctx = ctx, .page = pg};
    s = cs_sync_of(db);
    rc = rc ? rc : walk_page(s, c, &sv, scan_from, pg, ctx, &x.w, filtered_row, &x);
    pg->sent = (int64_t)x.w.nrows;
    if (!rc)
        rc = cs_cs_finish(&x.w, s->schema, s->site, since, until, out, len);
    if (!rc && cursor)
        *cursor = until > since ? until : since;
    cs_cs_writer_free(&x.w);
    site_view_free(&sv);
    return rc;
}

int cs_export_count(cstack *db, cs_conn *c, int64_t scan_from, const cs_export_pos *pos,
                    int64_t *n)
{
    cs_sync *s = cs_sync_of(db);
    *n = 0;
    int rc = 0;
    for (size_t mi = 0; s && mi < s->nmodels && !rc; mi++) {
        if (!s->models[mi].synced)
            continue;
        scan sc = {.s = s, .m = &s->schema->models[mi], .sm = &s->models[mi], .mi = (int)mi};
        cs_sqlb q = {0};
        rc = cs_buf_puts(&q.sql, "SELECT count(*) FROM ");
        rc = rc ? rc : cs_buf_ident(&q.sql, sc.sm->clk_table);
        rc = rc ? rc : cs_buf_puts(&q.sql, " AS c");
        rc = rc ? rc : scan_where(&q, &sc, scan_from, pos);
        sqlite3_stmt *st = rc ? NULL : cs_conn_prepare(c, 0, q.sql.data, q.sql.len);
        if (!rc && !st)
            rc = cs_err_sqlite(sc.m, c->db, sqlite3_errcode(c->db));
        int step = rc ? SQLITE_OK : cs_sqlb_apply(&q, st);
        if (!rc && step == SQLITE_OK && (step = sqlite3_step(st)) == SQLITE_ROW)
            *n += sqlite3_column_int64(st, 0);
        else if (!rc)
            rc = cs_err_sqlite(sc.m, c->db, step);
        if (st)
            sqlite3_reset(st);
        cs_sqlb_free(&q);
    }
    return rc == CSTACK_ENOMEM ? cs_err(rc, "out of memory") : rc;
}

int cs_export_key_decode(const cstack_schema *s, int mi, const void *key, size_t len,
                         cs_cs_value *pk)
{
    if (!s || mi < 0 || (size_t)mi >= s->nmodels || len > CS_EXPORT_KEY_MAX)
        return CSTACK_EINVAL;
    const cs_model *m = &s->models[mi];
    cs_reader r = {key, len, 0};
    for (size_t i = 0; i < m->npk; i++)
        if (cs_cs_read_value(&r, &pk[i]) || pk[i].type == SQLITE_NULL)
            return CSTACK_EINVAL;
    return r.pos == r.len ? 0 : CSTACK_EINVAL;
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
    int rc = emit_row(sc, &u->w, &u->rg, false, &emitted);
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
