/* apply.c -- merging a changeset.
 *
 * Per row, the higher causal length wins outright (a delete beats the
 * updates it saw; a re-insert beats the delete).  At equal causal length each
 * column merges on its own: the higher (clock, site id) wins, and a full tie
 * goes to the greater value, so every replica picks the same winner whatever
 * the order or repetition of delivery.  Winning values are written with the
 * capture quiet (the merge writes the metadata itself) under one local
 * version, inside a merge write scope of the store (CS_WRITE_MERGE): the
 * caller's transaction, which may hold more than the merge (the server
 * records the pushed batch in it).
 *
 * Constraints other than the primary key cannot be allowed to fail a valid
 * merge, so they decide visibility instead (parked.c): among rows that claim
 * the same unique value, the one whose claim (the latest clock among the
 * constrained columns) is earliest stays visible and the others are parked;
 * a row whose parent is not visible is parked too; a parked row comes back
 * when its conflict is gone.  Foreign keys are switched off for the merge so
 * that no cascade or ordering of parents and children interferes; visibility
 * of children follows from these rules instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/apply.h"

static int prep(apply_ctx *a, const cs_buf *sql, sqlite3_stmt **st)
{
    *st = cs_conn_prepare(a->c, 0, sql->data, sql->len);
    return *st ? 0 : cs_err_sqlite(NULL, a->c->db, sqlite3_errcode(a->c->db));
}

/* Appends ` WHERE "k1" = ?N AND ...` with parameters starting at `first`. */
static int where_pk(cs_buf *b, const cs_model *m, int first)
{
    int rc = cs_buf_puts(b, " WHERE ");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        rc = cs_buf_puts(b, i ? " AND " : "");
        rc = rc ? rc : cs_buf_ident(b, m->fields[m->pk[i]].column);
        rc = rc ? rc : cs_buf_printf(b, " = ?%d", first + (int)i);
    }
    return rc;
}

static int bind_pk(sqlite3_stmt *st, const cs_model *m, const cs_cs_value *pk, int first)
{
    for (size_t i = 0; i < m->npk; i++) {
        int rc = cs_cs_bind(st, first + (int)i, &pk[i]);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

int cs_apply_prepare(apply_ctx *a, const cs_model *m, const cs_rowstmt *rs, sqlite3_stmt **st)
{
    *st = cs_conn_prepare_row(a->c, rs);
    return *st ? 0 : cs_err_sqlite(m, a->c->db, sqlite3_errcode(a->c->db));
}

/* ---- rows as value arrays ------------------------------------------------ */

int cs_row_init(cs_arow *r, const cs_model *m)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->vals = calloc(m->nfields ? m->nfields : 1, sizeof *r->vals);
    r->present = calloc(m->nfields ? m->nfields : 1, sizeof *r->present);
    return r->vals && r->present ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
}

/* The row being merged uses the context's arrays: one allocation per merge
 * instead of two per row. */
static void row_init_merged(apply_ctx *a, cs_arow *r, const cs_model *m)
{
    memset(r, 0, sizeof *r);
    r->m = m;
    r->vals = a->cur_vals;
    r->present = a->cur_present;
    r->borrowed = true;
    memset(r->present, 0, m->nfields * sizeof *r->present);
}

void cs_row_free(cs_arow *r)
{
    if (!r->borrowed) {
        free(r->vals);
        free(r->present);
    }
    cs_buf_free(&r->buf);
    memset(r, 0, sizeof *r);
}

/* Makes the row own its bytes: encodes then decodes over its own buffer. */
int cs_row_own(cs_arow *r)
{
    cs_buf tmp = CS_BUF_INIT;
    int rc = cs_parked_encode(&tmp, r->m, r->vals, r->present);
    if (!rc) {
        cs_buf_free(&r->buf);
        r->buf = tmp;
        rc = cs_parked_decode(r->buf.data, r->buf.len, r->m, r->vals, r->present);
    } else {
        cs_buf_free(&tmp);
    }
    return rc ? cs_err(CSTACK_ENOMEM, "out of memory") : 0;
}

/* Loads the parked copy of the row with primary key `pk` into r, if any. */
static int load_parked(apply_ctx *a, const cs_model *m, const cs_cs_value *pk, cs_arow *r,
                       bool *parked)
{
    *parked = false;
    if (!a->parked_any)
        return 0;
    cs_buf key = CS_BUF_INIT;
    int rc = cs_parked_key(&key, pk, m->npk);
    rc = rc ? rc : cs_parked_get(a->c, m, &key, &r->buf, parked);
    if (!rc && *parked)
        rc = cs_parked_decode(r->buf.data, r->buf.len, m, r->vals, r->present);
    cs_buf_free(&key);
    return rc ? cs_err(CSTACK_ESQLITE, "cannot read a parked row of %s", m->name) : 0;
}

/* Loads the visible row with primary key `pk` (found: in the table), or its
 * parked copy (parked), into r. */
int cs_row_load(apply_ctx *a, const cs_model *m, const cs_cs_value *pk, cs_arow *r,
                bool *found, bool *parked)
{
    *found = *parked = false;
    sqlite3_stmt *st = NULL;
    int rc = cs_apply_prepare(
        a, m, cs_rowsql_fixed(a->rowsql, (int)(m - a->schema->models), CS_ROW_LOAD), &st);
    if (rc)
        return rc;
    memset(r->present, 0, m->nfields * sizeof *r->present);
    bind_pk(st, m, pk, cs_rowsql_key_param(m, 0));
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        size_t n = 0;
        for (size_t f = 0; f < m->nfields; f++) {
            if (!cs_field_is_column(&m->fields[f]))
                continue;
            cs_cs_value_from_stmt(&r->vals[f], st, (int)n++);
            r->present[f] = true;
        }
        *found = true;
        rc = cs_row_own(r);
    } else if (step != SQLITE_DONE) {
        rc = cs_err_sqlite(m, a->c->db, step);
    }
    sqlite3_reset(st);
    return rc || *found ? rc : load_parked(a, m, pk, r, parked);
}

void cs_row_pk(const cs_arow *r, cs_cs_value *pk)
{
    for (size_t i = 0; i < r->m->npk; i++)
        pk[i] = r->vals[r->m->pk[i]];
}

/* ---- clock rows ---------------------------------------------------------- */

int cs_clock_load(apply_ctx *a, int mi, const cs_cs_value *pk, uint64_t *cl, cs_clk *clk)
{
    return cs_clkrow_load(a->c, &a->s->models[mi], &a->schema->models[mi], pk, cl, clk);
}

static int clock_store(apply_ctx *a, int mi, const cs_cs_value *pk, uint64_t cl, cs_clk *clk)
{
    int rc = cs_clk_encode(clk, &a->blob);
    return rc ? rc
              : cs_clkrow_store(a->c, &a->s->models[mi], &a->schema->models[mi], pk, cl, a->ver,
                                a->blob.data, a->blob.len);
}

/* ---- merging one row ----------------------------------------------------- */

/* Compares a remote column write with the local entry: > 0 when it wins. */
static int compare_col(apply_ctx *a, const cs_cs_col *col, const cs_clk_entry *e,
                       const cs_cs_value *local, bool have_local)
{
    if (!e)
        return 1;
    if (col->hlc != e->hlc)
        return col->hlc > e->hlc ? 1 : -1;
    const unsigned char *rs = a->h.sites + (size_t)col->site * CS_SITE_LEN;
    const unsigned char *ls = cs_site_id(a->s, e->site);
    int c = ls ? memcmp(rs, ls, CS_SITE_LEN) : 1;
    if (c)
        return c;
    if (!have_local)
        return 1;
    return cs_cs_value_cmp(&col->value, local);
}

/* Forgets a row entirely (a drop from a server: no longer visible here). */
static int drop_row(apply_ctx *a, const cs_cs_row *in)
{
    int mi = in->model;
    const cs_model *m = &a->schema->models[mi];
    cs_arow cur;
    bool found = false, parked = false;
    int rc = cs_row_init(&cur, m);
    rc = rc ? rc : cs_row_load(a, m, in->pk, &cur, &found, &parked);
    rc = rc ? rc : cs_apply_remove(a, &cur, in->pk, found, parked);
    cs_row_free(&cur);
    cs_buf sql = CS_BUF_INIT;
    rc = rc ? rc : cs_buf_puts(&sql, "DELETE FROM ");
    rc = rc ? rc : cs_buf_ident(&sql, a->s->models[mi].clk_table);
    rc = rc ? rc : where_pk(&sql, m, 1);
    sqlite3_stmt *st = NULL;
    if (!rc)
        rc = prep(a, &sql, &st);
    cs_buf_free(&sql);
    if (rc)
        return rc;
    bind_pk(st, m, in->pk, 1);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : cs_err_sqlite(m, a->c->db, step);
}

static int check(apply_ctx *a, const cs_cs_row *in, int op, int phase)
{
    if (!a->opts || !a->opts->check || !op)
        return 0;
    return a->opts->check(a->opts->ctx, a->c, in->model, in->pk, op, phase);
}

/* Merges the alive row `in` into a row the clock does not know alive: such
 * a row is in neither its table nor the parked rows unless something wrote
 * the file behind cstack's back, so it is inserted without loading it
 * first (one statement instead of two or three per new row).  *done false
 * means the general way must run: the row is parked, or the INSERT failed
 * (a constraint, or a row the clock does not know) and wrote nothing. */
static int insert_new(apply_ctx *a, const cs_model *m, const cs_cs_row *in, cs_arow *cur,
                      bool *done)
{
    bool parked = false;
    *done = false;
    int rc = load_parked(a, m, in->pk, cur, &parked);
    return rc || parked ? rc : cs_apply_insert(a, in, cur, done);
}

/* Decides which columns of `in` win over the clock row (cl, clk): marks
 * them in a->won and writes their entries into clk; *any says whether the
 * row changes at all, *won counts the columns. */
static int merge_cols(apply_ctx *a, const cs_cs_row *in, uint64_t cl, cs_clk *clk, cs_arow *cur,
                      bool *loaded, bool *found, bool *parked, bool *any, int64_t *won)
{
    int mi = in->model;
    const cs_model *m = &a->schema->models[mi];
    bool exist = in->cl > cl;
    int rc = 0;
    *any = exist;
    for (size_t i = 0; i < in->ncols && !rc; i++) {
        const cs_cs_col *col = &in->cols[i];
        int k = a->field_col[mi][col->field];
        if (k < 0)
            return cs_err(CSTACK_ESCHEMA, "field %s.%s is not registered for sync (bootstrap "
                                          "the database)",
                          m->name, m->fields[col->field].name);
        const cs_clk_entry *e = cs_clk_get(clk, (size_t)k);
        if (!exist && e && e->hlc == col->hlc && !*loaded) {
            rc = cs_row_load(a, m, in->pk, cur, found, parked);
            *loaded = true;
        }
        int win = exist ? 1
                        : compare_col(a, col, e, &cur->vals[col->field],
                                      *loaded && cur->present[col->field]);
        if (rc || win <= 0)
            continue;
        cs_clk_entry ne = {col->hlc, a->site_ord[col->site], a->ver};
        /* This replica's own write relayed back by its server (after a
         * repair or an undone refusal made it forget the row): the server
         * holds it, so it is no new local transaction to upload (the row's
         * version still moves, for exports). */
        if (ne.site == 0 && a->opts && a->opts->own_echoes_acked)
            ne.ver = 0;
        rc = cs_clk_set(clk, (size_t)k, &ne);
        a->won[i] = true;
        *any = true;
        (*won)++;
    }
    if (!rc && exist) {
        cs_clk_entry re = {0, a->origin_ord, a->ver};
        rc = cs_clk_set(clk, SIZE_MAX, &re);
    }
    return rc;
}

/* Stores a new clock row for a row that has none (*stored false, nothing
 * written, when it has one after all). */
static int clock_insert(apply_ctx *a, int mi, const cs_cs_value *pk, uint64_t cl, cs_clk *clk,
                        bool *stored)
{
    int rc = cs_clk_encode(clk, &a->blob);
    return rc ? rc
              : cs_clkrow_insert(a->c, &a->s->models[mi], &a->schema->models[mi], pk, cl,
                                 a->ver, a->blob.data, a->blob.len, stored);
}

static int merge_row(apply_ctx *a, const cs_cs_row *in)
{
    if (in->cl == 0)
        return drop_row(a, in);
    int mi = in->model;
    const cs_model *m = &a->schema->models[mi];
    uint64_t cl = 0;
    cs_clk clk;
    cs_clk_init(&clk);
    cs_arow cur;
    bool loaded = false, found = false, parked = false, any = false, stored = false;
    int64_t won = 0;
    int rc = 0;
    row_init_merged(a, &cur, m);
    /* While rows keep turning out new (a fresh replica, a batch of
     * creates), guess so: merged against no clock row, the row's clock row
     * is inserted unless one exists, which spares looking it up first.  A
     * wrong guess writes nothing and the row is merged the general way. */
    if (!rc && a->guess_new) {
        rc = cs_clk_resize(&clk, a->s->models[mi].ncols);
        rc = rc ? rc : merge_cols(a, in, 0, &clk, &cur, &loaded, &found, &parked, &any, &won);
        rc = rc ? rc : clock_insert(a, mi, in->pk, in->cl, &clk, &stored);
        for (size_t i = 0; !rc && !stored && i < in->ncols; i++)
            a->won[i] = false;
        if (!rc && !stored) {
            cs_clk_free(&clk);
            won = 0;
        }
    }
    if (!rc && !stored) {
        rc = cs_clock_load(a, mi, in->pk, &cl, &clk);
        a->guess_new = cl == 0;
        if (rc || in->cl < cl)
            goto out;
        rc = merge_cols(a, in, cl, &clk, &cur, &loaded, &found, &parked, &any, &won);
    }
    if (rc || !any)
        goto out;
    a->stats.won += won;
    bool was_alive = cl & 1, alive = in->cl & 1;
    int op = alive ? (was_alive ? CS_CHECK_UPDATE : CS_CHECK_CREATE)
                   : (was_alive ? CS_CHECK_DELETE : 0);
    /* A stored guess had no check before: a row that did not exist has no
     * "row as it was" to check. */
    rc = check(a, in, op == CS_CHECK_CREATE ? 0 : op, CS_CHECK_BEFORE);
    rc = rc || stored ? rc : clock_store(a, mi, in->pk, in->cl, &clk);
    bool done = false;
    if (!rc && !loaded && !was_alive && alive)
        rc = insert_new(a, m, in, &cur, &done);
    if (!rc && !loaded && !done)
        rc = cs_row_load(a, m, in->pk, &cur, &found, &parked);
    if (!rc && !done && !alive)
        rc = cs_apply_remove(a, &cur, in->pk, found, parked);
    else if (!rc && !done)
        rc = cs_apply_write(a, in, &cur, found, parked);
    rc = rc ? rc : check(a, in, op == CS_CHECK_DELETE ? 0 : op, CS_CHECK_AFTER);
out:
    for (size_t i = 0; i < in->ncols; i++)
        a->won[i] = false;
    cs_row_free(&cur);
    cs_clk_free(&clk);
    return rc;
}

/* ---- rows new to the replica, many per statement ---------------------------- */

/* While rows keep turning out new, the merge queues the rows merge_row
 * would merge the short way (alive, no per-row check, nothing parked) and
 * writes their clock rows, then the rows, cs_sql_batch_rows() per
 * statement: a row written alone pays the per-statement cost twice.  The
 * queue holds rows of one model, each key once, and is flushed before
 * anything else is merged, so every read of the tables sees the rows before
 * it.  A failed statement writes nothing, so a batch whose clock rows are
 * not all new is merged row by row by merge_row, and one whose rows cannot
 * all be inserted (a constraint, a row written to the file behind cstack's
 * back) has them written one by one as merge_row would: the result is the
 * row-by-row one.  A queue flushed before it is full is merged row by row.
 * A failed batch costs its statement and its rows merged again, so after
 * one the next rows are merged one by one (twice as many after each failure
 * in a row): changesets that mix known and new rows keep the row-by-row
 * cost. */
typedef struct batch {
    int model;
    size_t n, cap;   /* rows queued; rows per statement of `model` */
    cs_cs_row *rows; /* copies: their columns are in `cols` */
    size_t *col0;    /* where each row's columns start in cols */
    cs_cs_col *cols;
    size_t ncols, capcols;
    cs_clkrow_new *clk; /* each row's clock row; blob pointers set at the flush */
    size_t *blob0;      /* where each row's clock blob starts in blobs */
    cs_buf blobs;
    uint64_t *hash; /* of each row's key */
    int64_t won;    /* columns the rows queued won */
    unsigned fails; /* full batches in a row that could not be written */
    size_t pause;   /* rows to merge one by one before queueing again */
} batch;

static void batch_free(batch *b)
{
    free(b->rows);
    free(b->col0);
    free(b->cols);
    free(b->clk);
    free(b->blob0);
    free(b->hash);
    cs_buf_free(&b->blobs);
    memset(b, 0, sizeof *b);
}

static bool batchable(const apply_ctx *a, const cs_cs_row *in)
{
    return a->guess_new && (in->cl & 1) && !a->parked_any && !(a->opts && a->opts->check);
}

/* Repeated keys must not share a batch (the second row merges against the
 * first): a key whose hash is queued flushes the queue first.  A repeat the
 * hash misses (SQLite finds 1 and 1.0 equal) fails the clock statement. */
static uint64_t key_hash(const cs_cs_value *pk, size_t npk)
{
    uint64_t h = 0;
    for (size_t i = 0; i < npk; i++) {
        uint64_t v = 0;
        if (pk[i].type == SQLITE_INTEGER)
            v = (uint64_t)pk[i].i;
        else if (pk[i].type == SQLITE_FLOAT)
            memcpy(&v, &pk[i].f, sizeof v);
        else
            v = cs_hash64(pk[i].p, pk[i].n);
        h = (h ^ v) * 0x9E3779B97F4A7C15ull;
    }
    return h;
}

static bool batch_has(const batch *b, uint64_t h)
{
    for (size_t r = 0; r < b->n; r++)
        if (b->hash[r] == h)
            return true;
    return false;
}

/* Lays the new row `in` out by field in the context's arrays as it is
 * inserted: its columns (every one won) and its key. */
static void lay_out(apply_ctx *a, const cs_cs_row *in, cs_arow *cur)
{
    const cs_model *m = &a->schema->models[in->model];
    row_init_merged(a, cur, m);
    for (size_t i = 0; i < in->ncols; i++) {
        cur->vals[in->cols[i].field] = in->cols[i].value;
        cur->present[in->cols[i].field] = true;
    }
    for (size_t k = 0; k < m->npk; k++) {
        cur->vals[m->pk[k]] = in->pk[k];
        cur->present[m->pk[k]] = true;
    }
}

/* Writes the new row `in`, whose clock row is stored, as merge_row does
 * after storing it: inserted, or the general way when that fails. */
static int write_new(apply_ctx *a, const cs_cs_row *in)
{
    const cs_model *m = &a->schema->models[in->model];
    cs_arow cur;
    bool done = false, found = false, parked = false;
    row_init_merged(a, &cur, m);
    for (size_t i = 0; i < in->ncols; i++)
        a->won[i] = true;
    int rc = insert_new(a, m, in, &cur, &done);
    if (!rc && !done)
        rc = cs_row_load(a, m, in->pk, &cur, &found, &parked);
    if (!rc && !done)
        rc = cs_apply_write(a, in, &cur, found, parked);
    for (size_t i = 0; i < in->ncols; i++)
        a->won[i] = false;
    cs_row_free(&cur);
    return rc;
}

/* Inserts the n queued rows, whose clock rows are stored, in one statement
 * (*inserted), or else one by one. */
static int insert_rows(apply_ctx *a, batch *b, size_t n, bool *inserted)
{
    const cs_model *m = &a->schema->models[b->model];
    cs_rowstmt rs;
    sqlite3_stmt *st = NULL;
    cs_arow cur;
    int rc = cs_rowsql_insert_many(a->rowsql, b->model, &rs);
    if (rc)
        return cs_err(rc, "cannot build an insert of %s", m->name);
    if ((rc = cs_apply_prepare(a, m, &rs, &st)))
        return rc;
    for (size_t r = 0; r < n; r++) {
        lay_out(a, &b->rows[r], &cur);
        int base = (int)(r * m->nfields) + 1;
        for (size_t f = 0; f < m->nfields; f++) {
            if (!cs_field_is_column(&m->fields[f]))
                continue;
            cs_cs_value def;
            if (cur.present[f])
                cs_cs_bind(st, base + (int)f, &cur.vals[f]);
            else if (cs_cs_default(&m->fields[f], &def))
                cs_cs_bind(st, base + (int)f, &def); /* a column the writer did not have */
            else
                sqlite3_bind_null(st, base + (int)f);
        }
    }
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    *inserted = step == SQLITE_DONE;
    if (step != SQLITE_DONE && (step & 0xff) != SQLITE_CONSTRAINT)
        return cs_err_sqlite(m, a->c->db, step);
    for (size_t r = 0; !rc && r < n; r++) {
        if (step != SQLITE_DONE) {
            rc = write_new(a, &b->rows[r]);
            continue;
        }
        lay_out(a, &b->rows[r], &cur);
        rc = cs_apply_inserted(a, &cur);
    }
    return rc;
}

static int batch_flush(apply_ctx *a, batch *b)
{
    size_t n = b->n;
    int64_t won = b->won;
    b->n = 0;
    b->won = 0;
    for (size_t r = 0; r < n; r++) {
        b->rows[r].cols = b->cols + b->col0[r];
        b->clk[r].pk = b->rows[r].pk;
        b->clk[r].blob = b->blobs.data + b->blob0[r];
    }
    bool stored = false, inserted = false;
    int rc = 0;
    if (n && n == b->cap)
        rc = cs_clkrow_insert_new(a->c, &a->s->models[b->model], &a->schema->models[b->model],
                                  a->ver, b->clk, &stored);
    if (!rc && stored) {
        a->stats.won += won;
        rc = insert_rows(a, b, n, &inserted);
    }
    if (n && n == b->cap) {
        b->fails = inserted ? 0 : b->fails < 6 ? b->fails + 1 : 6;
        b->pause = inserted ? 0 : b->cap << b->fails;
    }
    for (size_t r = 0; !rc && !stored && r < n; r++)
        rc = merge_row(a, &b->rows[r]);
    b->ncols = 0;
    cs_buf_reset(&b->blobs);
    return rc;
}

/* Queues the row `in`, with the clock blob it gets merged against no clock
 * row, as merge_row's guess would. */
static int batch_add(apply_ctx *a, batch *b, const cs_cs_row *in, uint64_t h)
{
    int mi = in->model;
    const cs_model *m = &a->schema->models[mi];
    if (!b->rows) {
        b->rows = malloc(CS_SQL_BATCH_ROWS * sizeof *b->rows);
        b->col0 = malloc(CS_SQL_BATCH_ROWS * sizeof *b->col0);
        b->clk = malloc(CS_SQL_BATCH_ROWS * sizeof *b->clk);
        b->blob0 = malloc(CS_SQL_BATCH_ROWS * sizeof *b->blob0);
        b->hash = malloc(CS_SQL_BATCH_ROWS * sizeof *b->hash);
        if (!b->rows || !b->col0 || !b->clk || !b->blob0 || !b->hash)
            return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    if (!b->cols || b->ncols + in->ncols > b->capcols) {
        size_t cap = b->capcols ? b->capcols * 2 : CS_SQL_BATCH_ROWS * 8;
        while (cap < b->ncols + in->ncols)
            cap *= 2;
        cs_cs_col *cols = realloc(b->cols, cap * sizeof *cols);
        if (!cols)
            return cs_err(CSTACK_ENOMEM, "out of memory");
        b->cols = cols;
        b->capcols = cap;
    }
    cs_clk clk;
    cs_arow cur;
    bool loaded = false, found = false, parked = false, any = false;
    int64_t won = 0;
    cs_clk_init(&clk);
    row_init_merged(a, &cur, m);
    int rc = cs_clk_resize(&clk, a->s->models[mi].ncols);
    rc = rc ? rc : merge_cols(a, in, 0, &clk, &cur, &loaded, &found, &parked, &any, &won);
    rc = rc ? rc : cs_clk_encode(&clk, &a->blob);
    for (size_t i = 0; i < in->ncols; i++)
        a->won[i] = false;
    cs_clk_free(&clk);
    size_t r = b->n;
    b->blob0[r] = b->blobs.len;
    rc = rc ? rc : cs_buf_append(&b->blobs, a->blob.data, a->blob.len);
    if (rc)
        return rc;
    b->clk[r].cl = in->cl;
    b->clk[r].len = a->blob.len;
    b->rows[r] = *in;
    b->col0[r] = b->ncols;
    memcpy(b->cols + b->ncols, in->cols, in->ncols * sizeof *in->cols);
    b->ncols += in->ncols;
    b->hash[r] = h;
    b->won += won;
    b->model = mi;
    b->cap = cs_sql_batch_rows(m);
    return ++b->n == b->cap ? batch_flush(a, b) : 0;
}

/* Merges the row `in`, queued when it can be. */
static int merge_next(apply_ctx *a, batch *b, const cs_cs_row *in)
{
    bool fits = batchable(a, in);
    if (fits && b->pause) {
        b->pause--;
        fits = false;
    }
    uint64_t h = fits ? key_hash(in->pk, in->npk) : 0;
    bool repeat = fits && b->n && b->model == in->model && batch_has(b, h);
    int rc = 0;
    if (b->n && (!fits || repeat || b->model != in->model))
        rc = batch_flush(a, b);
    if (rc)
        return rc;
    /* The flush may have met rows that were not new. */
    return fits && !repeat && batchable(a, in) ? batch_add(a, b, in, h) : merge_row(a, in);
}

/* ---- the whole changeset --------------------------------------------------- */

/* Checks the header: its structure and the schema it was made with. */
static int read_header(apply_ctx *a, cs_reader *r)
{
    char err[256] = "";
    if (cs_cs_read_header(r, &a->h, err, sizeof err))
        return cs_err(CSTACK_EINVAL, "%s", err);
    if (strcmp(a->h.hash, a->schema->hash) != 0)
        return cs_err(CSTACK_ESCHEMA,
                      "the changeset was made with schema %s but this database has schema %s; "
                      "nothing was applied",
                      a->h.hash, a->schema->hash);
    return 0;
}

/* Reads row `i` and checks what can be checked before it is merged: its
 * structure, its values against their fields, drops; *max_hlc collects the
 * clocks for the drift check. */
static int read_row(apply_ctx *a, cs_reader *r, uint64_t i, uint64_t *max_hlc)
{
    char err[256] = "";
    if (cs_cs_read_row(r, a->schema, &a->h, &a->row, err, sizeof err))
        return cs_err(CSTACK_EINVAL, "row %llu: %s", (unsigned long long)i, err);
    if (a->row.cl == 0 && a->opts && a->opts->refuse_drops)
        return cs_err(CSTACK_EINVAL, "row %llu: drops are only accepted from a server",
                      (unsigned long long)i);
    a->stats.rows++;
    a->stats.columns += (int64_t)a->row.ncols;
    int rc = 0;
    for (size_t c = 0; c < a->row.ncols && !rc; c++) {
        if (a->row.cols[c].hlc > *max_hlc)
            *max_hlc = a->row.cols[c].hlc;
        rc = cs_apply_check_value(a, &a->schema->models[a->row.model], a->row.cols[c].field,
                                  &a->row.cols[c].value);
    }
    return rc;
}

static int map_sites(apply_ctx *a)
{
    a->site_ord = calloc(a->h.nsites ? a->h.nsites : 1, sizeof *a->site_ord);
    if (!a->site_ord)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    for (size_t i = 0; i < a->h.nsites; i++) {
        int rc = cs_site_ordinal(a->s, a->c->db, a->h.sites + i * CS_SITE_LEN, &a->site_ord[i]);
        if (rc != SQLITE_OK)
            return cs_err_sqlite(NULL, a->c->db, rc);
    }
    int rc = cs_site_ordinal(a->s, a->c->db, a->h.origin, &a->origin_ord);
    return rc == SQLITE_OK ? 0 : cs_err_sqlite(NULL, a->c->db, rc);
}

/* Decodes each row once, checking it just before merging it: a bad row
 * anywhere fails the whole merge, and the caller's scope rolls back what
 * the rows before it wrote. */
static int merge_all(apply_ctx *a, const void *buf, size_t len)
{
    cs_reader r = {buf, len, 0};
    uint64_t max_hlc = 0;
    int rc = read_header(a, &r);
    /* Local writes not yet folded must take part in the merge. */
    rc = rc ? rc : cs_sync_materialize(a->s);
    rc = rc ? rc : map_sites(a);
    a->guess_new = true;
    int src = rc ? SQLITE_OK : cs_parked_any(a->c, &a->parked_any);
    if (src != SQLITE_OK)
        rc = cs_err_sqlite(NULL, a->c->db, src);
    batch b = {0};
    for (uint64_t i = 0; i < a->h.nrows && !rc; i++) {
        rc = read_row(a, &r, i, &max_hlc);
        rc = rc ? rc : merge_next(a, &b, &a->row);
    }
    rc = rc ? rc : batch_flush(a, &b);
    batch_free(&b);
    if (!rc && r.pos != r.len)
        rc = cs_err(CSTACK_EINVAL, "%zu bytes of garbage after the last row", r.len - r.pos);
    /* Only the one who accepts a write judges its clock: a device takes
     * what its server relays (the server judged it) whatever its own clock
     * says, folding it in no further than its own bound. */
    rc = rc ? rc : cs_hlc_observe(a->s, max_hlc, !(a->opts && a->opts->trust_clocks));
    return rc ? rc : cs_apply_settle(a);
}

static int ctx_init(apply_ctx *a, cstack *db, cs_sync *s)
{
    memset(a, 0, sizeof *a);
    a->db = db;
    a->schema = s->schema;
    a->s = s;
    a->c = cs_write_conn(db);
    size_t maxf = 1;
    for (size_t i = 0; i < a->schema->nmodels; i++)
        if (a->schema->models[i].nfields > maxf)
            maxf = a->schema->models[i].nfields;
    a->row.cols = calloc(maxf, sizeof *a->row.cols);
    a->won = calloc(maxf, sizeof *a->won);
    a->cur_vals = calloc(maxf, sizeof *a->cur_vals);
    a->cur_present = calloc(maxf, sizeof *a->cur_present);
    a->field_col = calloc(a->schema->nmodels ? a->schema->nmodels : 1, sizeof *a->field_col);
    a->rowsql = cs_store_rowsql(db);
    if (!a->row.cols || !a->won || !a->cur_vals || !a->cur_present || !a->field_col)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    for (size_t mi = 0; mi < a->schema->nmodels; mi++) {
        const cs_model *m = &a->schema->models[mi];
        a->field_col[mi] = malloc((m->nfields ? m->nfields : 1) * sizeof(int));
        if (!a->field_col[mi])
            return cs_err(CSTACK_ENOMEM, "out of memory");
        for (size_t f = 0; f < m->nfields; f++)
            a->field_col[mi][f] = -1;
        for (size_t k = 0; k < s->models[mi].ncols; k++)
            if (s->models[mi].cols[k] >= 0)
                a->field_col[mi][s->models[mi].cols[k]] = (int)k;
    }
    return 0;
}

static void ctx_free(apply_ctx *a)
{
    for (size_t mi = 0; a->field_col && mi < a->schema->nmodels; mi++)
        free(a->field_col[mi]);
    free(a->field_col);
    free(a->row.cols);
    free(a->won);
    free(a->cur_vals);
    free(a->cur_present);
    free(a->site_ord);
    cs_buf_free(&a->blob);
    cs_apply_work_free(a);
}

int cstack_changes_apply(cstack *db, const void *changeset, size_t len, cstack_apply_stats *stats)
{
    cs_enter(db);
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!db || (!changeset && len))
        return CSTACK_EMISUSE;
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc)
        return rc;
    if (cs_holds_write_lock(db))
        return cs_err(CSTACK_EMISUSE, "cstack_changes_apply cannot run inside a transaction");
    rc = cs_write_begin_opts(db, CS_WRITE_MERGE);
    rc = rc ? rc : cs_write_end(db, cs_merge(db, changeset, len, NULL, stats));
    if (rc && stats)
        memset(stats, 0, sizeof *stats);
    return rc;
}

int cs_merge(cstack *db, const void *changeset, size_t len, const cs_apply_opts *opts,
             cstack_apply_stats *stats)
{
    if (stats)
        memset(stats, 0, sizeof *stats);
    if (!db || (!changeset && len))
        return CSTACK_EMISUSE;
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc)
        return rc;
    if (!cs_holds_write_lock(db) || !cs_write_quiet(db))
        return cs_err(CSTACK_EMISUSE, "a merge needs a merge write scope");
    apply_ctx a;
    rc = ctx_init(&a, db, s);
    a.opts = opts;
    int trc = rc ? SQLITE_OK : cs_sync_tx(s, a.c->db);
    a.ver = s->tx_ver;
    rc = rc                 ? rc
         : trc != SQLITE_OK ? cs_err_sqlite(NULL, a.c->db, trc)
                            : merge_all(&a, changeset, len);
    if (!rc && stats)
        *stats = a.stats;
    ctx_free(&a);
    return rc;
}
