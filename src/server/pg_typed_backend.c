/*
 * pg_typed_backend.c -- other clients' writes to the app tables, merged
 * into the working copy with the clocks of their commits
 * (cs_pg_backend_ingest, pg.h).
 *
 * The capture triggers (pg_typed_ddl.c) queue, at each backend commit, every
 * row it wrote: its key, the row before and after (JSON), the transaction's
 * id and the commit time.  A round takes the oldest `limit` entries, gives
 * each backend transaction one clock (its commit time in milliseconds,
 * raised where needed to stay strictly after the previous backend
 * transaction's: the last one is kept in _cstack_pg_meta, which every
 * server reads and writes under the global lock), and merges the rows into
 * the copy as a changeset from a site reserved for backend writes
 * (CS_PG_BACKEND_SITE), one per transaction: the engine's per-column
 * last-writer-wins and causal lengths decide, exactly as for a push.  A
 * device write stamped after the commit wins over it, one stamped before
 * loses, however late a server applies the entry; and what is merged is
 * what the backend wrote, not what PostgreSQL holds by then (a server may
 * have written the row again, from a copy that had not seen the backend's
 * write, before the entry was taken).
 *
 * Per key and transaction, the row before its first write and after its
 * last are compared: an insert sends every column, an update the columns
 * that differ, a delete the deletion.  The causal length is the copy's
 * (a new row: the next odd one; a deletion: the next even one; an update
 * of a row the copy has deleted since: the length the backend saw, so the
 * deletion wins).  Afterwards every taken row of PostgreSQL is set to what
 * the copy holds (the merge's winner), through the caller's next flush.
 *
 * A row whose values the schema does not allow (a validator such as @email
 * or @range, an invalid Json, a NaN, a timestamp outside DateTime's range)
 * is not merged, and PostgreSQL's row is put back to the copy's state, with
 * a message on stderr naming the model, the key and the reason.  The entry
 * is dropped either way: kept, it would block the queue forever.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pg_typed_int.h"
#include "sync/changeset.h"
#include "sync/sync.h"
#include "sync/sync_ext.h"
#include "util/try.h"

/* The meta key of the last clock given to a backend transaction. */
#define CLOCK_KEY "backend_clock"

/* What building one row gives. */
enum { APPLIED = 0, REFUSED = 1 };

/* The result columns of model_query after the key: the entry's first id,
 * whether the row was born and whether it is gone; then per non-key column
 * its value after and whether it changed. */
enum { COL_FIRST = 0, COL_BORN = 1, COL_GONE = 2, COL_VALUES = 3 };

/* One taken round of the queue. */
typedef struct round {
    long long *ids;  /* entry ids, ascending */
    int *tx;         /* each entry's transaction (index into hlc) */
    size_t n;
    uint64_t *hlc;   /* each transaction's clock */
    size_t ntx;
    cs_buf idlist;   /* ids as a PostgreSQL array literal */
    uint64_t last;   /* the last clock given, persisted */
} round;

/* A row of a model's result, in merge order. */
typedef struct item {
    int mi, row, tx;
    long long first;
} item;

typedef struct ingest {
    cs_pg_typed *t;
    cstack *db;
    const cstack_schema *s;
    cs_sync *sync;
    cs_buf *scratch;  /* t->scratch: one per field */
    char why[600];    /* the last refusal's reason */
} ingest;

static int nomem(cs_srv_err *err)
{
    cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ENOMEM, NULL);
    return CSTACK_ENOMEM;
}

/* ---- the queue -------------------------------------------------------------------- */

static int transaction_of(round *rd, char **xids, const char *xid, uint64_t ms, int *out)
{
    for (size_t i = rd->ntx; i-- > 0;)
        if (strcmp(xids[i], xid) == 0) {
            *out = (int)i;
            return 0;
        }
    if (!(xids[rd->ntx] = cs_strdup(xid)))
        return CSTACK_ENOMEM;
    uint64_t h = ms << 16;
    rd->hlc[rd->ntx] = rd->last = h > rd->last ? h : rd->last + 1;
    *out = (int)rd->ntx++;
    return 0;
}

/* Reads the last clock given and the oldest `limit` entries into rd. */
static int take(cs_pg_typed *t, size_t limit, round *rd, cs_srv_err *err)
{
    PGresult *r = PQexec(t->c, "SELECT value FROM _cstack_pg_meta WHERE key = '" CLOCK_KEY "'");
    int rc = cs_pg_check(t->c, r, PGRES_TUPLES_OK, "read the backend clock", err);
    if (rc == 0 && PQntuples(r) == 1)
        rd->last = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (rc)
        return rc;
    char lim[32];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *v[1] = {lim};
    r = PQexecParams(t->c,
                     "SELECT id, xid::text, (extract(epoch FROM at) * 1000)::bigint FROM " CS_PG_QUEUE
                     " ORDER BY id LIMIT $1::bigint",
                     1, NULL, v, NULL, NULL, 0);
    rc = cs_pg_check(t->c, r, PGRES_TUPLES_OK, "read the backend queue", err);
    size_t n = rc ? 0 : (size_t)PQntuples(r);
    char **xids = calloc(n ? n : 1, sizeof *xids);
    rd->ids = calloc(n ? n : 1, sizeof *rd->ids);
    rd->tx = calloc(n ? n : 1, sizeof *rd->tx);
    rd->hlc = calloc(n ? n : 1, sizeof *rd->hlc);
    if (rc == 0 && (!xids || !rd->ids || !rd->tx || !rd->hlc || cs_buf_puts(&rd->idlist, "{")))
        rc = nomem(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rd->ids[i] = strtoll(PQgetvalue(r, (int)i, 0), NULL, 10);
        uint64_t ms = strtoull(PQgetvalue(r, (int)i, 2), NULL, 10);
        if (transaction_of(rd, xids, PQgetvalue(r, (int)i, 1), ms, &rd->tx[i]) ||
            cs_buf_printf(&rd->idlist, "%s%lld", i ? "," : "", rd->ids[i]))
            rc = nomem(err);
        rd->n = i + 1;
    }
    if (rc == 0 && cs_buf_puts(&rd->idlist, "}"))
        rc = nomem(err);
    for (size_t i = 0; xids && i < rd->ntx; i++)
        free(xids[i]);
    free(xids);
    PQclear(r);
    return rc;
}

static void round_free(round *rd)
{
    free(rd->ids);
    free(rd->tx);
    free(rd->hlc);
    cs_buf_free(&rd->idlist);
}

/* The transaction of the entry with id `id` (one of rd's). */
static int tx_of_id(const round *rd, long long id)
{
    size_t lo = 0, hi = rd->n;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (rd->ids[mid] <= id)
            lo = mid;
        else
            hi = mid;
    }
    return rd->tx[lo];
}

/* Per key and transaction of model mi among the entries $1: the key, the
 * first entry's id, born (no row before), gone (no row after), then each
 * non-key column after and whether it differs from before; in queue order. */
static int model_query(cs_buf *sql, const cs_pg_typed *t, int mi)
{
    const cs_model *m = &t->s->models[mi];
    const cs_pg_model *pm = &t->models[mi];
    cs_buf e = CS_BUF_INIT;
    int rc = cs_buf_puts(sql, "SELECT ");
    for (size_t p = 0; rc == 0 && p < m->npk; p++) {
        const cs_field *f = &m->fields[m->pk[p]];
        cs_buf_reset(&e);
        rc = cs_buf_printf(&e, "(q.key->>%zu)::%s", p, cs_pg_type_name(f));
        rc = rc ? rc : cs_pg_out_expr(sql, f, e.data);
        rc = rc ? rc : cs_buf_puts(sql, ", ");
    }
    rc = rc ? rc : cs_buf_puts(sql, "q.first::text, q.old IS NULL, q.new IS NULL");
    for (size_t c = m->npk; rc == 0 && c < pm->ncols; c++) {
        const char *col = m->fields[pm->cols[c]].column;
        cs_buf_reset(&e);
        rc = cs_buf_puts(&e, "n.");
        rc = rc ? rc : cs_buf_ident(&e, col);
        rc = rc ? rc : cs_buf_puts(sql, ", ");
        rc = rc ? rc : cs_pg_out_expr(sql, &m->fields[pm->cols[c]], e.data);
        rc = rc ? rc : cs_buf_printf(sql, ", %s::text IS DISTINCT FROM o.", e.data);
        rc = rc ? rc : cs_buf_ident(sql, col);
        rc = rc ? rc : cs_buf_puts(sql, "::text");
    }
    rc = rc ? rc : cs_buf_puts(sql, " FROM (SELECT key, min(id) AS first, (array_agg(old ORDER BY "
                                    "id))[1] AS old, (array_agg(new ORDER BY id DESC))[1] AS new "
                                    "FROM " CS_PG_QUEUE " WHERE model = ");
    rc = rc ? rc : cs_buf_sql_str(sql, m->name);
    rc = rc ? rc : cs_buf_puts(sql, " AND id = ANY($1::bigint[]) GROUP BY key, xid) q, "
                                    "json_populate_record(NULL::");
    rc = rc ? rc : cs_buf_ident(sql, m->table);
    rc = rc ? rc : cs_buf_puts(sql, ", q.new) n, json_populate_record(NULL::");
    rc = rc ? rc : cs_buf_ident(sql, m->table);
    rc = rc ? rc : cs_buf_puts(sql, ", q.old) o ORDER BY q.first");
    cs_buf_free(&e);
    return rc;
}

/* Model mi's rows of the round. */
static int model_rows(cs_pg_typed *t, int mi, const round *rd, PGresult **out, cs_srv_err *err)
{
    cs_buf sql = CS_BUF_INIT;
    const char *v[1] = {rd->idlist.data};
    *out = NULL;
    if (model_query(&sql, t, mi)) {
        cs_buf_free(&sql);
        return nomem(err);
    }
    *out = PQexecParams(t->c, sql.data, 1, NULL, v, NULL, NULL, 1);
    cs_buf_free(&sql);
    int rc = cs_pg_check(t->c, *out, PGRES_TUPLES_OK, "read backend-written rows", err);
    if (rc) {
        PQclear(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- one row as a change ------------------------------------------------------------ */

static cs_cs_value cs_value_of(const cstack_value *v)
{
    cs_cs_value o = {.type = SQLITE_NULL};
    switch (v->type) {
    case CSTACK_NULL:
        break;
    case CSTACK_INT:
    case CSTACK_BOOL:
        o.type = SQLITE_INTEGER;
        o.i = v->type == CSTACK_INT ? v->u.i : v->u.b != 0;
        break;
    case CSTACK_FLOAT:
        o.type = SQLITE_FLOAT;
        o.f = v->u.f;
        break;
    default:
        o.type = v->type == CSTACK_TEXT ? SQLITE_TEXT : SQLITE_BLOB;
        o.p = (const unsigned char *)(v->u.s.p ? v->u.s.p : "");
        o.n = v->u.s.n;
    }
    return o;
}

/* Decodes the key of row `row` of r (model mi) into key[]; REFUSED in *res
 * (with the reason) when the copy cannot hold it. */
static int decode_key(ingest *g, int mi, const PGresult *r, int row, cstack_value *key, int *res,
                      cs_srv_err *err)
{
    const cs_model *m = &g->s->models[mi];
    cs_srv_err verr = {0};
    *res = APPLIED;
    for (size_t p = 0; p < m->npk; p++) {
        int fi = m->pk[p];
        int rc = cs_pg_value_decode(r, row, (int)p, g->s, m, &m->fields[fi], false,
                                    &g->scratch[fi], &key[p], &verr);
        if (rc == CSTACK_ENOMEM || rc == CSTACK_EIO) {
            *err = verr;
            return rc;
        }
        if (rc) {
            snprintf(g->why, sizeof g->why, "%s", verr.message);
            *res = REFUSED;
            return 0;
        }
    }
    return 0;
}

/* The causal length the change of a row takes, given the copy's `cl`;
 * 0: nothing to merge.  *all: every column goes (the copy lacks the row). */
static uint64_t causal_length(uint64_t cl, bool born, bool gone, bool *all)
{
    *all = false;
    if (born && gone)
        return 0;
    if (gone)
        return cl & 1 ? cl + 1 : 0;
    if (cl == 0 || (born && !(cl & 1))) {
        *all = true;
        return cl + 1;
    }
    /* An update of a row deleted since: the length it had, so the
     * deletion wins. */
    return cl & 1 ? cl : cl - 1;
}

/* Encodes into `cols` the columns of row `row` of model mi's result r that
 * go (every one when `all`, else those that changed), with clock hlc (site
 * index 0); REFUSED in *res when a value is not the schema's. */
static int put_cols(ingest *g, int mi, const PGresult *r, int row, bool all, uint64_t hlc,
                    cs_buf *cols, size_t *ncols, int *res, cs_srv_err *err)
{
    const cs_model *m = &g->s->models[mi];
    const cs_pg_model *pm = &g->t->models[mi];
    int rc = 0;
    for (size_t c = m->npk; rc == 0 && c < pm->ncols; c++) {
        int at = (int)m->npk + COL_VALUES + 2 * (int)(c - m->npk), fi = pm->cols[c];
        if (!all && !*PQgetvalue(r, row, at + 1))
            continue;
        cstack_value v;
        cs_srv_err verr = {0};
        rc = cs_pg_value_decode(r, row, at, g->s, m, &m->fields[fi], true, &g->scratch[fi], &v,
                                &verr);
        if (rc == CSTACK_ENOMEM || rc == CSTACK_EIO) {
            *err = verr;
            return rc;
        }
        if (rc) {
            snprintf(g->why, sizeof g->why, "%s", verr.message);
            *res = REFUSED;
            return 0;
        }
        cs_cs_value cv = cs_value_of(&v);
        rc = cs_wr_varint(cols, (uint64_t)fi);
        rc = rc ? rc : cs_wr_u64(cols, hlc);
        rc = rc ? rc : cs_wr_varint(cols, 0);
        rc = rc ? rc : cs_cs_put_value(cols, &cv);
        ++*ncols;
    }
    return rc ? nomem(err) : 0;
}

/* Appends row `row` of model mi's result r to w as a change with clock
 * hlc; REFUSED in *res when its key or values are not the schema's. */
static int put_row(ingest *g, cs_cs_writer *w, int mi, const PGresult *r, int row, uint64_t hlc,
                   int *res, cs_srv_err *err)
{
    const cs_model *m = &g->s->models[mi];
    cstack_value key[CS_PG_MAX_KEY];
    cs_cs_value pk[CS_PG_MAX_KEY];
    TRY(decode_key(g, mi, r, row, key, res, err));
    if (*res == REFUSED)
        return 0;
    for (size_t p = 0; p < m->npk; p++)
        pk[p] = cs_value_of(&key[p]);
    uint64_t cur = 0;
    cs_clk clk;
    cs_clk_init(&clk);
    int rc = cs_clkrow_load(cs_write_conn(g->db), &g->sync->models[mi], m, pk, &cur, &clk);
    cs_clk_free(&clk);
    if (rc)
        return cs_pg_sqlite_err(cs_write_conn(g->db)->db, "read a clock row", err);
    bool all;
    uint64_t cl = causal_length(cur, *PQgetvalue(r, row, (int)m->npk + COL_BORN),
                                *PQgetvalue(r, row, (int)m->npk + COL_GONE), &all);
    if (cl == 0)
        return 0;
    cs_buf cols = CS_BUF_INIT;
    size_t ncols = 0;
    if (cl & 1)
        rc = put_cols(g, mi, r, row, all, hlc, &cols, &ncols, res, err);
    if (rc == 0 && *res == APPLIED && (ncols || cl != cur)) {
        rc = cs_wr_varint(&w->body, (uint64_t)mi);
        rc = rc ? rc : cs_wr_varint(&w->body, 0);
        rc = rc ? rc : cs_wr_varint(&w->body, cl);
        for (size_t p = 0; rc == 0 && p < m->npk; p++)
            rc = cs_cs_put_value(&w->body, &pk[p]);
        rc = rc ? rc : cs_wr_varint(&w->body, ncols);
        rc = rc ? rc : cs_buf_append(&w->body, cols.data ? cols.data : "", cols.len);
        w->nrows++;
        if (rc)
            rc = nomem(err);
    }
    cs_buf_free(&cols);
    return rc;
}

/* ---- a round ------------------------------------------------------------------------ */

/* Puts PostgreSQL's row of item x back to what the copy holds; a row the
 * copy refused is said on stderr first. */
static int settle_row(ingest *g, const item *x, PGresult *const *res, bool refused,
                      cs_srv_err *err)
{
    const cs_model *m = &g->s->models[x->mi];
    cstack_value key[CS_PG_MAX_KEY];
    int kres;
    TRY(decode_key(g, x->mi, res[x->mi], x->row, key, &kres, err));
    if (refused) {
        cs_buf text = CS_BUF_INIT;
        for (size_t p = 0; kres == APPLIED && p < m->npk; p++)
            if (cs_buf_puts(&text, p ? ", " : "") == 0)
                cs_value_json(&text, m->fields[m->pk[p]].type, &key[p]);
        fprintf(stderr, "cstack: backend write to %s [%s] refused and undone: %s\n", m->name,
                text.data ? text.data : "", g->why);
        cs_buf_free(&text);
    }
    /* A key the copy cannot hold has no row there to restore. */
    return kres == APPLIED ? cs_pg_typed_restore(g->t, cs_write_conn(g->db)->db, x->mi, key, err)
                           : 0;
}

/* Merges the rows items[0..n) of one backend transaction with clock hlc,
 * then sets PostgreSQL's rows to the outcome. */
static int merge_tx(ingest *g, const item *items, size_t n, PGresult *const *res, uint64_t hlc,
                    cs_srv_err *err)
{
    cs_cs_writer w = {0};
    uint32_t site;
    bool *refused = calloc(n ? n : 1, sizeof *refused);
    int rc = refused ? cs_cs_site(&w, (const unsigned char *)CS_PG_BACKEND_SITE, &site) : 1;
    if (rc)
        rc = nomem(err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int r;
        rc = put_row(g, &w, items[i].mi, res[items[i].mi], items[i].row, hlc, &r, err);
        refused[i] = r == REFUSED;
    }
    void *cs = NULL;
    size_t len = 0;
    if (rc == 0 && w.nrows > 0) {
        rc = cs_cs_finish(&w, g->s, (const unsigned char *)CS_PG_BACKEND_SITE, 0, 0, &cs, &len);
        if (rc)
            rc = nomem(err);
        /* Commit times are the database's clock, not a device's claim. */
        cs_apply_opts opts = {.trust_clocks = true};
        if (rc == 0 && (rc = cs_merge(g->db, cs, len, &opts, NULL)))
            cs_srv_err_set(err, CS_SRV_INTERNAL, rc, cs_errmsg_last());
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = settle_row(g, &items[i], res, refused[i], err);
    free(cs);
    free(refused);
    cs_cs_writer_free(&w);
    return rc;
}

static int item_cmp(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->tx != y->tx)
        return x->tx < y->tx ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Every row of the round, ordered by transaction, then queue order. */
static int collect(const ingest *g, const round *rd, PGresult *const *res, item **out,
                   size_t *nout, cs_srv_err *err)
{
    size_t n = 0;
    for (size_t mi = 0; mi < g->s->nmodels; mi++)
        n += res[mi] ? (size_t)PQntuples(res[mi]) : 0;
    item *items = calloc(n ? n : 1, sizeof *items);
    if (!items)
        return nomem(err);
    size_t k = 0;
    for (size_t mi = 0; mi < g->s->nmodels; mi++) {
        int first = (int)g->s->models[mi].npk + COL_FIRST;
        for (int row = 0; res[mi] && row < PQntuples(res[mi]); row++) {
            long long id = strtoll(PQgetvalue(res[mi], row, first), NULL, 10);
            items[k++] = (item){(int)mi, row, tx_of_id(rd, id), id};
        }
    }
    qsort(items, n, sizeof *items, item_cmp);
    *out = items;
    *nout = n;
    return 0;
}

/* Reads each model's rows of the round: models the schema does not serve
 * are said on stderr, and their entries dropped. */
static int read_models(cs_pg_typed *t, const round *rd, PGresult **res, cs_srv_err *err)
{
    const char *v[1] = {rd->idlist.data};
    PGresult *r = PQexecParams(t->c,
                               "SELECT DISTINCT model FROM " CS_PG_QUEUE
                               " WHERE id = ANY($1::bigint[])",
                               1, NULL, v, NULL, NULL, 0);
    int rc = cs_pg_check(t->c, r, PGRES_TUPLES_OK, "read the backend queue", err);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        int mi = cs_model_find(t->s, PQgetvalue(r, i, 0));
        if (mi >= 0 && cs_pg_typed_table(t, t->s->models[mi].table, NULL))
            rc = model_rows(t, mi, rd, &res[mi], err);
        else
            fprintf(stderr, "cstack: backend queue: no synced model '%s'; entries dropped\n",
                    PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return rc;
}

/* Drops the round's entries and keeps its last clock. */
static int finish(cs_pg_typed *t, const round *rd, cs_srv_err *err)
{
    char last[32];
    snprintf(last, sizeof last, "%llu", (unsigned long long)rd->last);
    const char *v[1] = {rd->idlist.data};
    PGresult *r = PQexecParams(t->c, "DELETE FROM " CS_PG_QUEUE " WHERE id = ANY($1::bigint[])",
                               1, NULL, v, NULL, NULL, 0);
    int rc = cs_pg_check(t->c, r, PGRES_COMMAND_OK, "empty the backend queue", err);
    PQclear(r);
    v[0] = last;
    if (rc == 0) {
        r = PQexecParams(t->c,
                         "INSERT INTO _cstack_pg_meta(key, value) VALUES ('" CLOCK_KEY "', $1) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         1, NULL, v, NULL, NULL, 0);
        rc = cs_pg_check(t->c, r, PGRES_COMMAND_OK, "keep the backend clock", err);
        PQclear(r);
    }
    return rc;
}

int cs_pg_backend_ingest(cs_pg_typed *t, cstack *db, size_t limit, size_t *n, cs_srv_err *err)
{
    const cstack_schema *s = t->s;
    ingest g = {t, db, s, cs_sync_of(db), t->scratch, ""};
    round rd = {0};
    item *items = NULL;
    size_t nitems = 0;
    *n = 0;
    if (limit == 0)
        return 0;
    if (!g.sync) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EMISUSE, "the copy does not sync");
        return CSTACK_EMISUSE;
    }
    PGresult **res = calloc(s->nmodels ? s->nmodels : 1, sizeof *res);
    int rc = res ? 0 : nomem(err);
    /* The clock rows are read before the merge: local writes not yet
     * folded into them must be. */
    if (rc == 0 && (rc = cs_sync_materialize(g.sync)))
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, cs_errmsg_last());
    rc = rc ? rc : take(t, limit, &rd, err);
    rc = rc || rd.n == 0 ? rc : read_models(t, &rd, res, err);
    rc = rc || rd.n == 0 ? rc : collect(&g, &rd, res, &items, &nitems, err);
    for (size_t i = 0, j; rc == 0 && i < nitems; i = j) {
        for (j = i + 1; j < nitems && items[j].tx == items[i].tx;)
            j++;
        rc = merge_tx(&g, items + i, j - i, res, rd.hlc[items[i].tx], err);
    }
    rc = rc || rd.n == 0 ? rc : finish(t, &rd, err);
    if (rc == 0)
        *n = rd.n;
    for (size_t i = 0; res && i < s->nmodels; i++)
        PQclear(res[i]);
    free(res);
    free(items);
    round_free(&rd);
    return rc;
}
