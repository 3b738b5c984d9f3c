/*
 * pg_typed.c -- the app tables' rows between the working copy and
 * PostgreSQL (pg.h, "pg_typed*.c"; docs/postgres.md).
 *
 * Writes are queued per model and sent many rows per statement: a
 * transaction of 10,000 rows costs about ten round trips, not 10,000.
 * Each queued row holds its parameters already encoded (pg_typed_val.c) in
 * the model's arena, primary key first, so a row queued twice (a key touched
 * again, or written then deleted) is found by its key's bytes and only its
 * last state is sent: PostgreSQL refuses an INSERT ... ON CONFLICT that
 * would touch one row twice.  A model's queue is sent when it holds a full
 * statement's rows, and by cs_pg_typed_flush: deletions first (so a key a
 * deleted row held is free for a row written after it), then upserts.
 * Foreign keys and uniques are deferred (pg_typed_ddl.c), so the order of
 * rows inside a transaction does not matter to them.
 *
 * The working copy's statements (rowsql.c, the runtime's own row SQL) are
 * prepared on the connection the calls pass, and the one read per queued
 * row is kept until a call passes another connection or the context is
 * freed.  Whole tables (load, save) are pg_typed_load.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pg_typed_int.h"
#include "util/hash.h"
#include "util/try.h"

/* Rows per statement: enough to spare the round trips, within PostgreSQL's
 * limit of 65535 parameters per statement. */
#define ROWS_PER_STMT 1000
#define MAX_PARAMS 65535

int cs_pg_sqlite_err(sqlite3 *conn, const char *what, cs_srv_err *err)
{
    char msg[400];
    snprintf(msg, sizeof msg, "working copy: %s: %s", what, sqlite3_errmsg(conn));
    cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EIO, msg);
    return CSTACK_EIO;
}

static int nomem(cs_srv_err *err)
{
    cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ENOMEM, NULL);
    return CSTACK_ENOMEM;
}

/* Columns, their types and the SELECT list of one model. */
static int model_init(cs_pg_model *pm, const cs_model *m)
{
    size_t n = 0, k = 0, at = 0;
    for (size_t i = 0; i < m->nfields; i++)
        n += cs_field_is_column(&m->fields[i]);
    pm->cols = malloc((n ? n : 1) * sizeof *pm->cols);
    pm->rescol = malloc((n ? n : 1) * sizeof *pm->rescol);
    pm->types = malloc((n ? n : 1) * sizeof *pm->types);
    if (!pm->cols || !pm->rescol || !pm->types)
        return CSTACK_ENOMEM;
    for (size_t p = 0; p < m->npk; p++)
        pm->cols[k++] = m->pk[p];
    for (size_t i = 0; i < m->nfields; i++) {
        bool key = false;
        for (size_t p = 0; p < m->npk; p++)
            key = key || m->pk[p] == (int)i;
        if (cs_field_is_column(&m->fields[i]) && !key)
            pm->cols[k++] = (int)i;
    }
    pm->ncols = n;
    cs_buf sel = CS_BUF_INIT, col = CS_BUF_INIT;
    int rc = 0;
    for (size_t c = 0; rc == 0 && c < n; c++) {
        const cs_field *f = &m->fields[pm->cols[c]];
        pm->types[c] = cs_pg_param_type(f);
        at = 0;
        for (int i = 0; i < pm->cols[c]; i++)
            at += cs_field_is_column(&m->fields[i]);
        pm->rescol[c] = (int)at;
        cs_buf_reset(&col);
        rc = cs_buf_puts(&col, "t.");
        if (rc == 0)
            rc = cs_buf_ident(&col, f->column);
        if (rc == 0 && c > 0)
            rc = cs_buf_puts(&sel, ", ");
        if (rc == 0)
            rc = cs_pg_out_expr(&sel, f, col.data);
    }
    cs_buf_free(&col);
    pm->sel = rc ? NULL : cs_buf_take(&sel);
    cs_buf_free(&sel);
    pm->batch = n ? MAX_PARAMS / n : ROWS_PER_STMT;
    if (pm->batch > ROWS_PER_STMT)
        pm->batch = ROWS_PER_STMT;
    return rc ? rc : (pm->sel ? 0 : CSTACK_ENOMEM);
}

int cs_pg_typed_new(PGconn *c, const cstack_schema *schema, cs_pg_typed **out, cs_srv_err *err)
{
    *out = NULL;
    cs_pg_typed *t = calloc(1, sizeof *t);
    if (!t)
        return nomem(err);
    t->c = c;
    t->s = schema;
    t->models = calloc(schema->nmodels ? schema->nmodels : 1, sizeof *t->models);
    int rc = t->models ? cs_rowsql_new(schema, &t->rs) : CSTACK_ENOMEM;
    for (size_t i = 0; rc == 0 && i < schema->nmodels; i++) {
        const cs_model *m = &schema->models[i];
        t->models[i].synced = !m->local;
        if (m->nfields > t->nscratch)
            t->nscratch = m->nfields;
        rc = model_init(&t->models[i], m);
    }
    if (rc == 0) {
        t->scratch = calloc(t->nscratch ? t->nscratch : 1, sizeof *t->scratch);
        t->vals = calloc(t->nscratch ? t->nscratch : 1, sizeof *t->vals);
        rc = t->scratch && t->vals ? 0 : CSTACK_ENOMEM;
    }
    if (rc) {
        cs_pg_typed_free(t);
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, "cannot build the typed tables' statements");
        return rc;
    }
    *out = t;
    return 0;
}

static void finalize_copy_stmts(cs_pg_typed *t)
{
    for (size_t i = 0; t->models && i < t->s->nmodels; i++) {
        sqlite3_finalize(t->models[i].load);
        t->models[i].load = NULL;
    }
}

/* The name of model mi's prepared statement of `kind` (PEND_UPSERT or
 * PEND_DELETE), unique to the context. */
static void stmt_name(const cs_pg_typed *t, int mi, int kind, char name[64])
{
    snprintf(name, 64, "_cstack_pg_%p_%d_%d", (const void *)t, mi, kind);
}

void cs_pg_typed_free(cs_pg_typed *t)
{
    if (!t)
        return;
    finalize_copy_stmts(t);
    for (size_t i = 0; t->models && i < t->s->nmodels; i++) {
        cs_pg_model *pm = &t->models[i];
        for (int k = 0; k < 2; k++) {
            char name[64], sql[80];
            if (!pm->prepared[k])
                continue;
            /* Fails harmlessly in an aborted transaction: the statement
             * then lives until the session ends. */
            stmt_name(t, (int)i, k, name);
            snprintf(sql, sizeof sql, "DEALLOCATE \"%s\"", name);
            PQclear(PQexec(t->c, sql));
        }
        free(pm->cols);
        free(pm->rescol);
        free(pm->types);
        free(pm->sel);
        cs_buf_free(&pm->arena);
        free(pm->ents);
        free(pm->slots);
    }
    for (size_t i = 0; t->scratch && i < t->nscratch; i++)
        cs_buf_free(&t->scratch[i]);
    free(t->scratch);
    free(t->vals);
    free(t->models);
    cs_rowsql_free(t->rs);
    free(t);
}

bool cs_pg_typed_table(const cs_pg_typed *t, const char *table, int *model)
{
    for (size_t i = 0; table && i < t->s->nmodels; i++) {
        if (t->models[i].synced && strcmp(t->s->models[i].table, table) == 0) {
            if (model)
                *model = (int)i;
            return true;
        }
    }
    return false;
}

int cs_pg_typed_check_model(const cs_pg_typed *t, int mi, cs_srv_err *err)
{
    if (mi >= 0 && (size_t)mi < t->s->nmodels && t->models[mi].synced &&
        t->s->models[mi].npk <= CS_PG_MAX_KEY)
        return 0;
    cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EINVAL, "not the index of a synced model");
    return CSTACK_EINVAL;
}

/* ---- the working copy's statements ---------------------------------------- */

int cs_pg_typed_copy_stmt(cs_pg_typed *t, sqlite3 *conn, int mi, int kind, const uint64_t *bits,
                          sqlite3_stmt **out, cs_srv_err *err)
{
    cs_rowstmt set;
    const cs_rowstmt *rs = NULL;
    *out = NULL;
    if (!bits) {
        rs = cs_rowsql_fixed(t->rs, mi, (cs_row_fixed)kind);
    } else if (cs_rowsql_set(t->rs, mi, (cs_row_set)kind, bits, &set) == 0) {
        rs = &set;
    }
    if (!rs) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EINVAL, "no row statement for this model");
        return CSTACK_EINVAL;
    }
    if (sqlite3_prepare_v2(conn, rs->sql, (int)rs->len, out, NULL) != SQLITE_OK)
        return cs_pg_sqlite_err(conn, "prepare", err);
    return 0;
}

int cs_pg_typed_copy_load(cs_pg_typed *t, sqlite3 *conn, int mi, sqlite3_stmt **out,
                          cs_srv_err *err)
{
    if (conn != t->conn) {
        finalize_copy_stmts(t);
        t->conn = conn;
    }
    cs_pg_model *pm = &t->models[mi];
    if (!pm->load)
        TRY(cs_pg_typed_copy_stmt(t, conn, mi, CS_ROW_LOAD, NULL, &pm->load, err));
    sqlite3_reset(pm->load);
    sqlite3_clear_bindings(pm->load);
    *out = pm->load;
    return 0;
}

/* ---- the queue -------------------------------------------------------------- */

static uint64_t key_hash(const cs_pg_model *pm, const cs_pg_pend *e)
{
    return cs_fnv1a64(CS_FNV64_INIT, pm->arena.data + e->off, e->keylen);
}

static int slots_grow(cs_pg_model *pm)
{
    size_t n = pm->nslots ? pm->nslots * 2 : 64;
    uint32_t *s = calloc(n, sizeof *s);
    if (!s)
        return CSTACK_ENOMEM;
    for (size_t i = 0; i < pm->nents; i++) {
        if (pm->ents[i].kind == PEND_DEAD)
            continue;
        size_t h = (size_t)key_hash(pm, &pm->ents[i]) & (n - 1);
        while (s[h])
            h = (h + 1) & (n - 1);
        s[h] = (uint32_t)i + 1;
    }
    free(pm->slots);
    pm->slots = s;
    pm->nslots = n;
    return 0;
}

/* Adds the entry just encoded at the arena's end (from `off`), replacing a
 * queued entry of the same key. */
static int enqueue(cs_pg_model *pm, size_t off, size_t keylen, int kind)
{
    if (pm->nents == pm->capents) {
        size_t cap = pm->capents ? pm->capents * 2 : 64;
        cs_pg_pend *e = realloc(pm->ents, cap * sizeof *e);
        if (!e)
            return CSTACK_ENOMEM;
        pm->ents = e;
        pm->capents = cap;
    }
    if ((pm->nents + 1) * 2 > pm->nslots)
        TRY(slots_grow(pm));
    cs_pg_pend *e = &pm->ents[pm->nents];
    *e = (cs_pg_pend){off, keylen, kind};
    size_t h = (size_t)key_hash(pm, e) & (pm->nslots - 1);
    for (; pm->slots[h]; h = (h + 1) & (pm->nslots - 1)) {
        cs_pg_pend *o = &pm->ents[pm->slots[h] - 1];
        if (o->keylen == keylen && memcmp(pm->arena.data + o->off, pm->arena.data + off, keylen) == 0) {
            o->kind = PEND_DEAD;
            break;
        }
    }
    pm->slots[h] = (uint32_t)++pm->nents;
    return 0;
}

static void queue_reset(cs_pg_model *pm)
{
    cs_buf_reset(&pm->arena);
    pm->nents = 0;
    if (pm->slots)
        memset(pm->slots, 0, pm->nslots * sizeof *pm->slots);
}

typedef struct params {
    const char **values;
    int *lengths;
    int *formats;
    Oid *types;
    int n;
} params;

static void params_free(params *p)
{
    free(p->values);
    free(p->lengths);
    free(p->formats);
    free(p->types);
}

static int params_alloc(params *p, size_t n)
{
    *p = (params){0};
    p->values = malloc((n ? n : 1) * sizeof *p->values);
    p->lengths = malloc((n ? n : 1) * sizeof *p->lengths);
    p->formats = malloc((n ? n : 1) * sizeof *p->formats);
    p->types = malloc((n ? n : 1) * sizeof *p->types);
    if (!p->values || !p->lengths || !p->formats || !p->types) {
        params_free(p);
        return CSTACK_ENOMEM;
    }
    return 0;
}

/* Appends entry e's first `ncols` parameters (of pm's columns) to p and
 * their placeholders "($1, $2)" to sql. */
static int add_row(cs_buf *sql, params *p, const cs_pg_model *pm, const cs_model *m, const cs_pg_pend *e,
                   size_t ncols)
{
    size_t off = e->off;
    TRY(cs_buf_puts(sql, p->n ? ", (" : "("));
    for (size_t c = 0; c < ncols; c++) {
        cs_pg_param v = cs_pg_param_at(&pm->arena, &off, &m->fields[pm->cols[c]]);
        p->values[p->n] = v.p;
        p->lengths[p->n] = v.len;
        p->formats[p->n] = v.binary;
        p->types[p->n] = pm->types[c];
        p->n++;
        TRY(cs_buf_printf(sql, c ? ", $%d" : "$%d", p->n));
    }
    return cs_buf_putc(sql, ')');
}

static int put_col_list(cs_buf *sql, const cs_pg_model *pm, const cs_model *m, size_t ncols)
{
    TRY(cs_buf_putc(sql, '('));
    for (size_t c = 0; c < ncols; c++) {
        if (c)
            TRY(cs_buf_puts(sql, ", "));
        TRY(cs_buf_ident(sql, m->fields[pm->cols[c]].column));
    }
    return cs_buf_putc(sql, ')');
}

/* " ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c, ..." */
static int put_conflict(cs_buf *sql, const cs_pg_model *pm, const cs_model *m)
{
    TRY(cs_buf_puts(sql, " ON CONFLICT "));
    TRY(put_col_list(sql, pm, m, m->npk));
    if (pm->ncols == m->npk)
        return cs_buf_puts(sql, " DO NOTHING");
    TRY(cs_buf_puts(sql, " DO UPDATE SET "));
    for (size_t c = m->npk; c < pm->ncols; c++) {
        const char *col = m->fields[pm->cols[c]].column;
        if (c > m->npk)
            TRY(cs_buf_puts(sql, ", "));
        TRY(cs_buf_ident(sql, col));
        TRY(cs_buf_puts(sql, " = EXCLUDED."));
        TRY(cs_buf_ident(sql, col));
    }
    return 0;
}

/* Sends one statement.  A full batch's is prepared once and reused: its
 * plan is made once instead of at every send, which is most of the cost
 * of a statement of a thousand rows. */
static int send(cs_pg_typed *t, int mi, int kind, bool full, const char *sql, const params *p,
                cs_srv_err *err)
{
    const char *what = kind == PEND_DELETE ? "delete rows" : "write rows";
    bool *prepared = &t->models[mi].prepared[kind];
    char name[64];
    PGresult *r;
    if (!full)
        r = PQexecParams(t->c, sql, p->n, p->types, p->values, p->lengths, p->formats, 0);
    stmt_name(t, mi, kind, name);
    if (full && !*prepared) {
        r = PQprepare(t->c, name, sql, p->n, p->types);
        int rc = cs_pg_check(t->c, r, PGRES_COMMAND_OK, what, err);
        PQclear(r);
        if (rc)
            return rc;
        *prepared = true;
    }
    if (full)
        r = PQexecPrepared(t->c, name, p->n, p->values, p->lengths, p->formats, 0);
    int rc = cs_pg_check(t->c, r, PGRES_COMMAND_OK, what, err);
    PQclear(r);
    return rc;
}

/* Sends the queued entries of `kind` from *at on, at most one statement's
 * rows; moves *at past them. */
static int send_some(cs_pg_typed *t, int mi, int kind, size_t *at, cs_srv_err *err)
{
    cs_pg_model *pm = &t->models[mi];
    const cs_model *m = &t->s->models[mi];
    size_t ncols = kind == PEND_DELETE ? m->npk : pm->ncols;
    size_t max = kind == PEND_DELETE ? MAX_PARAMS / (m->npk ? m->npk : 1) : pm->batch;
    max = max > ROWS_PER_STMT ? ROWS_PER_STMT : max;
    cs_buf sql = CS_BUF_INIT;
    params p;
    if (params_alloc(&p, max * ncols))
        return nomem(err);
    int rc = cs_buf_puts(&sql, kind == PEND_DELETE ? "DELETE FROM " : "INSERT INTO ");
    if (rc == 0)
        rc = cs_buf_ident(&sql, m->table);
    if (rc == 0 && kind == PEND_DELETE)
        rc = cs_buf_puts(&sql, " WHERE ");
    if (rc == 0)
        rc = put_col_list(&sql, pm, m, ncols);
    if (rc == 0)
        rc = cs_buf_puts(&sql, kind == PEND_DELETE ? " IN (" : " VALUES ");
    size_t rows = 0;
    for (; rc == 0 && *at < pm->nents && rows < max; (*at)++) {
        if (pm->ents[*at].kind != kind)
            continue;
        rc = add_row(&sql, &p, pm, m, &pm->ents[*at], ncols);
        rows++;
    }
    if (rc == 0 && kind == PEND_DELETE)
        rc = cs_buf_putc(&sql, ')');
    else if (rc == 0)
        rc = put_conflict(&sql, pm, m);
    if (rc)
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, "cannot build a statement");
    else if (rows > 0)
        rc = send(t, mi, kind, rows == max, sql.data, &p, err);
    cs_buf_free(&sql);
    params_free(&p);
    return rc;
}

int cs_pg_typed_flush_model(cs_pg_typed *t, int mi, cs_srv_err *err)
{
    cs_pg_model *pm = &t->models[mi];
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < pm->nents;)
        rc = send_some(t, mi, PEND_DELETE, &at, err);
    for (size_t at = 0; rc == 0 && at < pm->nents;)
        rc = send_some(t, mi, PEND_UPSERT, &at, err);
    queue_reset(pm);
    return rc;
}

int cs_pg_typed_flush(cs_pg_typed *t, cs_srv_err *err)
{
    for (size_t i = 0; i < t->s->nmodels; i++)
        if (t->models[i].nents > 0)
            TRY(cs_pg_typed_flush_model(t, (int)i, err));
    return 0;
}

/* Queues the deletion of the row whose key values are key[0..npk). */
int cs_pg_typed_queue_delete(cs_pg_typed *t, int mi, const cstack_value *key, cs_srv_err *err)
{
    cs_pg_model *pm = &t->models[mi];
    const cs_model *m = &t->s->models[mi];
    size_t off = pm->arena.len;
    for (size_t p = 0; p < m->npk; p++) {
        int rc = cs_pg_value_encode(&pm->arena, m, &m->fields[m->pk[p]], &key[p], err);
        if (rc)
            return rc == CSTACK_EINVAL ? rc : nomem(err);
    }
    if (enqueue(pm, off, pm->arena.len - off, PEND_DELETE))
        return nomem(err);
    return pm->nents >= pm->batch ? cs_pg_typed_flush_model(t, mi, err) : 0;
}

/* Queues the upsert of the copy's row `st` has just read (CS_ROW_LOAD). */
int cs_pg_typed_queue_upsert(cs_pg_typed *t, int mi, sqlite3_stmt *st, cs_srv_err *err)
{
    cs_pg_model *pm = &t->models[mi];
    const cs_model *m = &t->s->models[mi];
    size_t off = pm->arena.len, keylen = 0;
    for (size_t c = 0; c < pm->ncols; c++) {
        cstack_value v = cs_pg_sqlite_value(sqlite3_column_value(st, pm->rescol[c]));
        int rc = cs_pg_value_encode(&pm->arena, m, &m->fields[pm->cols[c]], &v, err);
        if (rc)
            return rc == CSTACK_EINVAL ? rc : nomem(err);
        if (c + 1 == m->npk)
            keylen = pm->arena.len - off;
    }
    if (enqueue(pm, off, keylen, PEND_UPSERT))
        return nomem(err);
    return pm->nents >= pm->batch ? cs_pg_typed_flush_model(t, mi, err) : 0;
}

/* Queues PostgreSQL's write of the row `st` (the copy's CS_ROW_LOAD, key
 * bound) reads: an upsert when the copy holds it, else the deletion of key. */
static int sync_loaded(cs_pg_typed *t, sqlite3 *conn, int mi, sqlite3_stmt *st,
                       const cstack_value *key, cs_srv_err *err)
{
    int src = sqlite3_step(st);
    int rc;
    if (src == SQLITE_ROW)
        rc = cs_pg_typed_queue_upsert(t, mi, st, err);
    else if (src == SQLITE_DONE)
        rc = cs_pg_typed_queue_delete(t, mi, key, err);
    else
        rc = cs_pg_sqlite_err(conn, "read a row", err);
    sqlite3_reset(st);
    return rc;
}

int cs_pg_typed_restore(cs_pg_typed *t, sqlite3 *conn, int mi, const cstack_value *key,
                        cs_srv_err *err)
{
    const cs_model *m = &t->s->models[mi];
    sqlite3_stmt *st;
    TRY(cs_pg_typed_copy_load(t, conn, mi, &st, err));
    for (size_t p = 0; p < m->npk; p++)
        cs_bind_one(st, cs_rowsql_key_param(m, p), &key[p]);
    return sync_loaded(t, conn, mi, st, key, err);
}

int cs_pg_typed_sync_row(cs_pg_typed *t, sqlite3 *conn, int model, sqlite3_value *const *pk,
                         cs_srv_err *err)
{
    TRY(cs_pg_typed_check_model(t, model, err));
    const cs_model *m = &t->s->models[model];
    cstack_value key[CS_PG_MAX_KEY];
    sqlite3_stmt *st;
    TRY(cs_pg_typed_copy_load(t, conn, model, &st, err));
    for (size_t p = 0; p < m->npk; p++) {
        key[p] = cs_pg_sqlite_value(pk[p]);
        sqlite3_bind_value(st, cs_rowsql_key_param(m, p), pk[p]);
    }
    return sync_loaded(t, conn, model, st, key, err);
}

