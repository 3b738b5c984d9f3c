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
 * freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pg_typed_int.h"
#include "util/hash.h"

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            return rc_;                                                                            \
    } while (0)

/* Rows per statement: enough to spare the round trips, within PostgreSQL's
 * limit of 65535 parameters per statement. */
#define ROWS_PER_STMT 1000
#define MAX_PARAMS 65535
/* Rows per FETCH while loading (both spellings of one number). */
#define LOAD_CHUNK 2000
#define LOAD_CHUNK_TEXT "2000"
#define LOAD_CURSOR "_cstack_pg_load"

enum { PEND_UPSERT, PEND_DELETE, PEND_DEAD };

typedef struct pend {
    size_t off;    /* its parameters in the arena */
    size_t keylen; /* bytes of the primary key's parameters */
    int kind;
} pend;

typedef struct pg_model {
    bool synced;
    size_t ncols;
    int *cols;        /* field indices: primary key first */
    int *rescol;      /* each one's column in the copy's CS_ROW_LOAD */
    Oid *types;       /* each one's parameter type */
    char *sel;        /* the SELECT list reading them from alias t */
    size_t batch;     /* rows per upsert */
    cs_buf arena;     /* queued rows' parameters */
    pend *ents;
    size_t nents, capents;
    uint32_t *slots;  /* open addressing over ents: index + 1, 0 empty */
    size_t nslots;
    sqlite3_stmt *load; /* CS_ROW_LOAD on the context's conn */
    /* Whether the statement of a full batch of upserts / deletions is
     * prepared on the PostgreSQL connection (named by stmt_name). */
    bool prepared[2];
} pg_model;

struct cs_pg_typed {
    PGconn *c;
    const cstack_schema *s;
    cs_rowsql *rs;
    pg_model *models;
    sqlite3 *conn; /* the connection `load` statements belong to */
    cs_buf *scratch; /* one per field of the widest model */
    size_t nscratch;
};

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

const int *cs_pg_typed_cols(const cs_pg_typed *t, int mi, size_t *ncols)
{
    *ncols = t->models[mi].ncols;
    return t->models[mi].cols;
}

const cstack_schema *cs_pg_typed_schema(const cs_pg_typed *t)
{
    return t->s;
}

PGconn *cs_pg_typed_conn(const cs_pg_typed *t)
{
    return t->c;
}

/* Columns, their types and the SELECT list of one model. */
static int model_init(pg_model *pm, const cs_model *m)
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
        rc = t->scratch ? 0 : CSTACK_ENOMEM;
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
        pg_model *pm = &t->models[i];
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

static int bad_model(cs_srv_err *err)
{
    cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EINVAL, "not the index of a synced model");
    return CSTACK_EINVAL;
}

static bool synced_model(const cs_pg_typed *t, int mi)
{
    return mi >= 0 && (size_t)mi < t->s->nmodels && t->models[mi].synced;
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
    pg_model *pm = &t->models[mi];
    if (!pm->load)
        TRY(cs_pg_typed_copy_stmt(t, conn, mi, CS_ROW_LOAD, NULL, &pm->load, err));
    sqlite3_reset(pm->load);
    sqlite3_clear_bindings(pm->load);
    *out = pm->load;
    return 0;
}

/* ---- the queue -------------------------------------------------------------- */

static uint64_t key_hash(const pg_model *pm, const pend *e)
{
    return cs_fnv1a64(CS_FNV64_INIT, pm->arena.data + e->off, e->keylen);
}

static int slots_grow(pg_model *pm)
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
static int enqueue(pg_model *pm, size_t off, size_t keylen, int kind)
{
    if (pm->nents == pm->capents) {
        size_t cap = pm->capents ? pm->capents * 2 : 64;
        pend *e = realloc(pm->ents, cap * sizeof *e);
        if (!e)
            return CSTACK_ENOMEM;
        pm->ents = e;
        pm->capents = cap;
    }
    if ((pm->nents + 1) * 2 > pm->nslots)
        TRY(slots_grow(pm));
    pend *e = &pm->ents[pm->nents];
    *e = (pend){off, keylen, kind};
    size_t h = (size_t)key_hash(pm, e) & (pm->nslots - 1);
    for (; pm->slots[h]; h = (h + 1) & (pm->nslots - 1)) {
        pend *o = &pm->ents[pm->slots[h] - 1];
        if (o->keylen == keylen && memcmp(pm->arena.data + o->off, pm->arena.data + off, keylen) == 0) {
            o->kind = PEND_DEAD;
            break;
        }
    }
    pm->slots[h] = (uint32_t)++pm->nents;
    return 0;
}

static void queue_reset(pg_model *pm)
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
static int add_row(cs_buf *sql, params *p, const pg_model *pm, const cs_model *m, const pend *e,
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

static int put_col_list(cs_buf *sql, const pg_model *pm, const cs_model *m, size_t ncols)
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
static int put_conflict(cs_buf *sql, const pg_model *pm, const cs_model *m)
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
    pg_model *pm = &t->models[mi];
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

static int flush_model(cs_pg_typed *t, int mi, cs_srv_err *err)
{
    pg_model *pm = &t->models[mi];
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
            TRY(flush_model(t, (int)i, err));
    return 0;
}

/* Queues the deletion of the row whose key values are key[0..npk). */
static int queue_delete(cs_pg_typed *t, int mi, const cstack_value *key, cs_srv_err *err)
{
    pg_model *pm = &t->models[mi];
    const cs_model *m = &t->s->models[mi];
    size_t off = pm->arena.len;
    for (size_t p = 0; p < m->npk; p++) {
        int rc = cs_pg_value_encode(&pm->arena, m, &m->fields[m->pk[p]], &key[p], err);
        if (rc)
            return rc == CSTACK_EINVAL ? rc : nomem(err);
    }
    if (enqueue(pm, off, pm->arena.len - off, PEND_DELETE))
        return nomem(err);
    return pm->nents >= pm->batch ? flush_model(t, mi, err) : 0;
}

/* Queues the upsert of the copy's row `st` has just read (CS_ROW_LOAD). */
static int queue_upsert(cs_pg_typed *t, int mi, sqlite3_stmt *st, cs_srv_err *err)
{
    pg_model *pm = &t->models[mi];
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
    return pm->nents >= pm->batch ? flush_model(t, mi, err) : 0;
}

/* Queues PostgreSQL's write of the row `st` (the copy's CS_ROW_LOAD, key
 * bound) reads: an upsert when the copy holds it, else the deletion of key. */
static int sync_loaded(cs_pg_typed *t, sqlite3 *conn, int mi, sqlite3_stmt *st,
                       const cstack_value *key, cs_srv_err *err)
{
    int src = sqlite3_step(st);
    int rc;
    if (src == SQLITE_ROW)
        rc = queue_upsert(t, mi, st, err);
    else if (src == SQLITE_DONE)
        rc = queue_delete(t, mi, key, err);
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
    if (!synced_model(t, model) || t->s->models[model].npk > 16)
        return bad_model(err);
    const cs_model *m = &t->s->models[model];
    cstack_value key[16];
    sqlite3_stmt *st;
    TRY(cs_pg_typed_copy_load(t, conn, model, &st, err));
    for (size_t p = 0; p < m->npk; p++) {
        key[p] = cs_pg_sqlite_value(pk[p]);
        sqlite3_bind_value(st, cs_rowsql_key_param(m, p), pk[p]);
    }
    return sync_loaded(t, conn, model, st, key, err);
}

/* ---- load and save ----------------------------------------------------------- */

/* Runs FETCH on the load cursor into *r (binary results). */
static int fetch(cs_pg_typed *t, PGresult **r, cs_srv_err *err)
{
    *r = PQexecParams(t->c, "FETCH FORWARD " LOAD_CHUNK_TEXT " FROM " LOAD_CURSOR, 0, NULL,
                      NULL, NULL, NULL, 1);
    int rc = cs_pg_check(t->c, *r, PGRES_TUPLES_OK, "fetch rows", err);
    if (rc) {
        PQclear(*r);
        *r = NULL;
    }
    return rc;
}

/* Declares the load cursor over `select`. */
static int declare(cs_pg_typed *t, const char *select, cs_srv_err *err)
{
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_buf_printf(&sql, "DECLARE " LOAD_CURSOR " NO SCROLL CURSOR FOR %s", select);
    rc = rc ? nomem(err) : cs_pg_exec(t->c, sql.data, err);
    cs_buf_free(&sql);
    return rc;
}

/* Decodes row `row` of r (columns in pm's order from `first`, `n` of them)
 * into vals[field index], each value in its own scratch. */
static int decode_row(cs_pg_typed *t, int mi, const PGresult *r, int row, int first, size_t n,
                      bool check, cstack_value *vals, cs_srv_err *err)
{
    const pg_model *pm = &t->models[mi];
    const cs_model *m = &t->s->models[mi];
    for (size_t c = 0; c < n; c++) {
        int fi = pm->cols[c];
        TRY(cs_pg_value_decode(r, row, first + (int)c, t->s, m, &m->fields[fi], check,
                               &t->scratch[fi], &vals[fi], err));
    }
    return 0;
}

/* Inserts one fetched chunk into the copy through `ins` (CS_ROW_INSERT_ALL). */
static int load_chunk(cs_pg_typed *t, sqlite3 *conn, int mi, const PGresult *r, sqlite3_stmt *ins,
                      cstack_value *vals, cs_srv_err *err)
{
    const pg_model *pm = &t->models[mi];
    for (int row = 0; row < PQntuples(r); row++) {
        TRY(decode_row(t, mi, r, row, 0, pm->ncols, false, vals, err));
        sqlite3_reset(ins);
        for (size_t c = 0; c < pm->ncols; c++)
            if (cs_bind_one(ins, pm->cols[c] + 1, &vals[pm->cols[c]]) != SQLITE_OK)
                return cs_pg_sqlite_err(conn, "bind a loaded value", err);
        if (sqlite3_step(ins) != SQLITE_DONE)
            return cs_pg_sqlite_err(conn, "insert a loaded row", err);
    }
    return 0;
}

/* SELECT <pm's columns> of the rows of "T" as the servers last wrote them:
 * PostgreSQL's rows but those the backend queue names, and for those, the
 * row as it was before the oldest queued write (none when that write
 * inserted it).  The ingest that follows then finds the backend's writes
 * as changes to the copy, and sync captures exactly them: a row loaded as
 * the backend left it would look unchanged. */
static int load_select(cs_buf *sql, const pg_model *pm, const cs_model *m)
{
    TRY(cs_buf_printf(sql, "SELECT %s FROM ", pm->sel));
    TRY(cs_buf_ident(sql, m->table));
    TRY(cs_buf_puts(sql, " t WHERE NOT EXISTS (SELECT 1 FROM " CS_PG_QUEUE " q WHERE q.model = "));
    TRY(cs_buf_sql_str(sql, m->name));
    TRY(cs_buf_puts(sql, " AND q.key = jsonb_build_array("));
    for (size_t p = 0; p < m->npk; p++) {
        TRY(cs_buf_puts(sql, p ? ", t." : "t."));
        TRY(cs_buf_ident(sql, m->fields[m->pk[p]].column));
    }
    TRY(cs_buf_printf(sql, ")) UNION ALL SELECT %s FROM (SELECT DISTINCT ON (q.key) q.old FROM "
                           CS_PG_QUEUE " q WHERE q.model = ", pm->sel));
    TRY(cs_buf_sql_str(sql, m->name));
    TRY(cs_buf_puts(sql, " ORDER BY q.key, q.id) o, json_populate_record(NULL::"));
    TRY(cs_buf_ident(sql, m->table));
    return cs_buf_puts(sql, ", o.old) t WHERE o.old IS NOT NULL");
}

int cs_pg_typed_load(cs_pg_typed *t, sqlite3 *conn, int model, cs_srv_err *err)
{
    if (!synced_model(t, model))
        return bad_model(err);
    const cs_model *m = &t->s->models[model];
    cstack_value *vals = calloc(m->nfields ? m->nfields : 1, sizeof *vals);
    sqlite3_stmt *ins = NULL;
    cs_buf sql = CS_BUF_INIT;
    int rc = vals ? load_select(&sql, &t->models[model], m) : CSTACK_ENOMEM;
    if (rc)
        rc = nomem(err);
    if (rc == 0)
        rc = cs_pg_typed_copy_stmt(t, conn, model, CS_ROW_INSERT_ALL, NULL, &ins, err);
    if (rc == 0)
        rc = declare(t, sql.data, err);
    bool open = rc == 0;
    for (bool more = open; rc == 0 && more;) {
        PGresult *r;
        rc = fetch(t, &r, err);
        if (rc == 0) {
            more = PQntuples(r) == LOAD_CHUNK;
            rc = load_chunk(t, conn, model, r, ins, vals, err);
        }
        PQclear(r);
    }
    if (open && rc == 0)
        rc = cs_pg_exec(t->c, "CLOSE " LOAD_CURSOR, err);
    sqlite3_finalize(ins);
    cs_buf_free(&sql);
    free(vals);
    return rc;
}

/* After a save wrote every row of the copy: deletes PostgreSQL's rows of
 * the model that the copy does not hold. */
static int remove_extras(cs_pg_typed *t, sqlite3 *conn, int mi, cs_srv_err *err)
{
    const cs_model *m = &t->s->models[mi];
    cstack_value vals[16], key[16];
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_buf_puts(&sql, "SELECT ");
    for (size_t p = 0; rc == 0 && p < m->npk; p++) {
        cs_buf col = CS_BUF_INIT;
        rc = cs_buf_puts(&col, "t.");
        rc = rc ? rc : cs_buf_ident(&col, m->fields[m->pk[p]].column);
        rc = rc ? rc : cs_buf_puts(&sql, p ? ", " : "");
        rc = rc ? rc : cs_pg_out_expr(&sql, &m->fields[m->pk[p]], col.data);
        cs_buf_free(&col);
    }
    rc = rc ? rc : cs_buf_puts(&sql, " FROM ");
    rc = rc ? rc : cs_buf_ident(&sql, m->table);
    rc = rc ? rc : cs_buf_puts(&sql, " t");
    rc = rc ? nomem(err) : declare(t, sql.data, err);
    bool open = rc == 0;
    for (bool more = open; rc == 0 && more;) {
        PGresult *r;
        rc = fetch(t, &r, err);
        more = rc == 0 && PQntuples(r) == LOAD_CHUNK;
        for (int row = 0; rc == 0 && row < PQntuples(r); row++) {
            sqlite3_stmt *st;
            rc = decode_row(t, mi, r, row, 0, m->npk, false, vals, err);
            rc = rc ? rc : cs_pg_typed_copy_load(t, conn, mi, &st, err);
            for (size_t p = 0; rc == 0 && p < m->npk; p++) {
                key[p] = vals[m->pk[p]];
                cs_bind_one(st, cs_rowsql_key_param(m, p), &key[p]);
            }
            int src = rc ? SQLITE_DONE : sqlite3_step(st);
            if (rc == 0 && src == SQLITE_DONE)
                rc = queue_delete(t, mi, key, err);
            else if (rc == 0 && src != SQLITE_ROW)
                rc = cs_pg_sqlite_err(conn, "read a row", err);
        }
        PQclear(r);
    }
    if (open && rc == 0)
        rc = cs_pg_exec(t->c, "CLOSE " LOAD_CURSOR, err);
    cs_buf_free(&sql);
    return rc ? rc : flush_model(t, mi, err);
}

/* How many rows PostgreSQL's table of model mi holds. */
static int pg_count(cs_pg_typed *t, const cs_model *m, long long *n, cs_srv_err *err)
{
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_buf_puts(&sql, "SELECT count(*) FROM ");
    rc = rc ? rc : cs_buf_ident(&sql, m->table);
    if (rc) {
        cs_buf_free(&sql);
        return nomem(err);
    }
    PGresult *r = PQexec(t->c, sql.data);
    rc = cs_pg_check(t->c, r, PGRES_TUPLES_OK, "count rows", err);
    if (rc == 0)
        *n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    cs_buf_free(&sql);
    return rc;
}

int cs_pg_typed_save(cs_pg_typed *t, sqlite3 *conn, int model, cs_srv_err *err)
{
    if (!synced_model(t, model))
        return bad_model(err);
    const cs_model *m = &t->s->models[model];
    TRY(flush_model(t, model, err));
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_buf_puts(&sql, "SELECT ");
    bool first = true;
    for (size_t i = 0; rc == 0 && i < m->nfields; i++) {
        if (!cs_field_is_column(&m->fields[i]))
            continue;
        rc = first ? 0 : cs_buf_puts(&sql, ", ");
        rc = rc ? rc : cs_buf_ident(&sql, m->fields[i].column);
        first = false;
    }
    rc = rc ? rc : cs_buf_puts(&sql, " FROM ");
    rc = rc ? rc : cs_buf_ident(&sql, m->table);
    sqlite3_stmt *st = NULL;
    if (rc)
        rc = nomem(err);
    else if (sqlite3_prepare_v2(conn, sql.data, -1, &st, NULL) != SQLITE_OK)
        rc = cs_pg_sqlite_err(conn, "prepare", err);
    cs_buf_free(&sql);
    long long saved = 0, held = 0;
    int src = SQLITE_DONE;
    while (rc == 0 && (src = sqlite3_step(st)) == SQLITE_ROW) {
        rc = queue_upsert(t, model, st, err);
        saved++;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = cs_pg_sqlite_err(conn, "read rows", err);
    sqlite3_finalize(st);
    rc = rc ? rc : flush_model(t, model, err);
    rc = rc ? rc : pg_count(t, m, &held, err);
    /* Every row of the copy is in PostgreSQL now: equal counts mean equal
     * sets, and only a table that held other rows needs the slow pass. */
    if (rc == 0 && held > saved)
        rc = remove_extras(t, conn, model, err);
    return rc;
}
