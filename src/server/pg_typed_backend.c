/*
 * pg_typed_backend.c -- other clients' writes to the app tables, applied to
 * the working copy as local writes (cs_pg_backend_ingest, pg.h).
 *
 * The capture triggers (pg_typed_ddl.c) queue each written row's key; this
 * takes the oldest `limit` entries and, per model, one query joins them to
 * the rows PostgreSQL holds now.  A row that exists is written into the copy
 * (INSERT, or UPDATE of only the columns that differ, so the merge sees
 * exactly the columns the backend changed); a row that does not is deleted
 * there.  The writes run on the caller's connection inside its write scope,
 * so sync's capture hook records them and the next commit gives them
 * clocks, like any write of the server itself.  Foreign keys are deferred
 * to the commit (PRAGMA defer_foreign_keys, which SQLite clears when the
 * transaction ends): entries of different models arrive model by model.
 *
 * A row the copy refuses is not applied, and PostgreSQL's row is put back
 * to the copy's state (through the caller's next flush), with a message on
 * stderr naming the model, the key's position in the queue and the reason:
 *   - values the schema does not allow (a validator such as @email or
 *     @range, an invalid Json, a NaN, a timestamp outside DateTime's range);
 *   - a write the copy's constraints refuse even after every other entry of
 *     the batch is in (a unique value taken by another row).
 * The entry is dropped either way: kept, it would block the queue forever,
 * and the backend sees its write undone rather than half-applied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pg_typed_int.h"
#include "util/try.h"

/* What applying one row gives. */
enum { APPLIED = 0, REFUSED = 1 };

typedef struct ingest {
    cs_pg_typed *t;
    sqlite3 *conn;
    const cstack_schema *s;
    cstack_value *vals;   /* t->vals: field index -> value of the row being applied */
    cs_buf *scratch;      /* t->scratch: one per field */
    char why[600];        /* the last refusal's reason */
} ingest;

/* SELECT key..., absent, columns... FROM queue LEFT JOIN "T" for model mi,
 * entries up to $1, oldest first. */
static int model_query(cs_buf *sql, const cstack_schema *s, int mi, const int *cols, size_t ncols)
{
    const cs_model *m = &s->models[mi];
    cs_buf e = CS_BUF_INIT;
    int rc = cs_buf_puts(sql, "SELECT ");
    for (size_t p = 0; rc == 0 && p < m->npk; p++) {
        const cs_field *f = &m->fields[m->pk[p]];
        cs_buf_reset(&e);
        rc = cs_buf_printf(&e, "(q.key->>%zu)::%s", p, cs_pg_type_name(f));
        rc = rc ? rc : cs_pg_out_expr(sql, f, e.data);
        rc = rc ? rc : cs_buf_puts(sql, ", ");
    }
    rc = rc ? rc : cs_buf_puts(sql, "t.");
    rc = rc ? rc : cs_buf_ident(sql, m->fields[m->pk[0]].column);
    rc = rc ? rc : cs_buf_puts(sql, " IS NULL");
    for (size_t c = 0; rc == 0 && c < ncols; c++) {
        cs_buf_reset(&e);
        rc = cs_buf_puts(&e, "t.");
        rc = rc ? rc : cs_buf_ident(&e, m->fields[cols[c]].column);
        rc = rc ? rc : cs_buf_puts(sql, ", ");
        rc = rc ? rc : cs_pg_out_expr(sql, &m->fields[cols[c]], e.data);
    }
    rc = rc ? rc : cs_buf_puts(sql, " FROM " CS_PG_QUEUE " q LEFT JOIN ");
    rc = rc ? rc : cs_buf_ident(sql, m->table);
    rc = rc ? rc : cs_buf_puts(sql, " t ON ");
    for (size_t p = 0; rc == 0 && p < m->npk; p++) {
        const cs_field *f = &m->fields[m->pk[p]];
        rc = cs_buf_puts(sql, p ? " AND t." : "t.");
        rc = rc ? rc : cs_buf_ident(sql, f->column);
        rc = rc ? rc : cs_buf_printf(sql, " = (q.key->>%zu)::%s", p, cs_pg_type_name(f));
    }
    rc = rc ? rc : cs_buf_puts(sql, " WHERE q.model = ");
    rc = rc ? rc : cs_buf_sql_str(sql, m->name);
    rc = rc ? rc : cs_buf_puts(sql, " AND q.id <= $1::bigint ORDER BY q.id");
    cs_buf_free(&e);
    return rc;
}

/* Whether the copy's value `a` is byte for byte the canonical value `b`. */
static bool same_value(const cstack_value *a, const cstack_value *b)
{
    cstack_value bb = *b;
    if (bb.type == CSTACK_BOOL)
        bb = cstack_v_int(bb.u.b);
    if (a->type != bb.type)
        return false;
    switch (a->type) {
    case CSTACK_NULL:
        return true;
    case CSTACK_INT:
        return a->u.i == bb.u.i;
    case CSTACK_FLOAT:
        return memcmp(&a->u.f, &bb.u.f, sizeof a->u.f) == 0;
    default:
        return a->u.s.n == bb.u.s.n && memcmp(a->u.s.p, bb.u.s.p, a->u.s.n) == 0;
    }
}

static int step_done(ingest *g, sqlite3_stmt *st, int *res, cs_srv_err *err)
{
    int src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        return 0;
    int ext = sqlite3_extended_errcode(g->conn);
    if ((ext & 0xff) == SQLITE_CONSTRAINT) {
        snprintf(g->why, sizeof g->why, "the working copy refused it: %s",
                 sqlite3_errmsg(g->conn));
        *res = REFUSED;
        return 0;
    }
    return cs_pg_sqlite_err(g->conn, "apply a backend write", err);
}

/* Binds key[0..npk) of model m at the key parameters of st. */
static void bind_key(sqlite3_stmt *st, const cs_model *m, const cstack_value *key)
{
    for (size_t p = 0; p < m->npk; p++)
        cs_bind_one(st, cs_rowsql_key_param(m, p), &key[p]);
}

/* Writes g->vals (every column of model mi) into the copy: INSERT when the
 * row is new, else UPDATE of the columns that differ. */
static int write_row(ingest *g, int mi, const cstack_value *key, int *res, cs_srv_err *err)
{
    const cs_model *m = &g->s->models[mi];
    size_t ncols = g->t->models[mi].ncols;
    const int *cols = g->t->models[mi].cols;
    sqlite3_stmt *ld, *st = NULL;
    TRY(cs_pg_typed_copy_load(g->t, g->conn, mi, &ld, err));
    bind_key(ld, m, key);
    int src = sqlite3_step(ld);
    if (src != SQLITE_ROW && src != SQLITE_DONE) {
        sqlite3_reset(ld);
        return cs_pg_sqlite_err(g->conn, "read a row", err);
    }
    uint64_t *bits = calloc(CS_FIELDSET_WORDS(m->nfields), sizeof *bits);
    if (!bits) {
        sqlite3_reset(ld);
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ENOMEM, NULL);
        return CSTACK_ENOMEM;
    }
    bool changed = src == SQLITE_DONE;
    for (size_t c = 0; src == SQLITE_ROW && c < ncols; c++) {
        int at = 0;
        for (int i = 0; i < cols[c]; i++)
            at += cs_field_is_column(&m->fields[i]);
        cstack_value cur = cs_pg_sqlite_value(sqlite3_column_value(ld, at));
        if (!same_value(&cur, &g->vals[cols[c]])) {
            cs_fieldset_add(bits, (size_t)cols[c]);
            changed = true;
        }
    }
    sqlite3_reset(ld);
    int rc = 0;
    if (changed)
        rc = src == SQLITE_DONE
                 ? cs_pg_typed_copy_stmt(g->t, g->conn, mi, CS_ROW_INSERT_ALL, NULL, &st, err)
                 : cs_pg_typed_copy_stmt(g->t, g->conn, mi, CS_ROW_UPDATE, bits, &st, err);
    for (size_t c = 0; rc == 0 && st && c < ncols; c++)
        cs_bind_one(st, cols[c] + 1, &g->vals[cols[c]]);
    if (rc == 0 && st) {
        if (src == SQLITE_ROW)
            bind_key(st, m, key);
        rc = step_done(g, st, res, err);
    }
    sqlite3_finalize(st);
    free(bits);
    return rc;
}

static int delete_row(ingest *g, int mi, const cstack_value *key, int *res, cs_srv_err *err)
{
    sqlite3_stmt *st;
    TRY(cs_pg_typed_copy_stmt(g->t, g->conn, mi, CS_ROW_DELETE, NULL, &st, err));
    bind_key(st, &g->s->models[mi], key);
    int rc = step_done(g, st, res, err);
    sqlite3_finalize(st);
    return rc;
}

/* Applies row `row` of model mi's query result r; *res says whether the
 * copy took it.  Errors only for failures of the copy or of PostgreSQL. */
static int apply_row(ingest *g, int mi, const PGresult *r, int row, int *res, cs_srv_err *err)
{
    const cs_model *m = &g->s->models[mi];
    size_t ncols = g->t->models[mi].ncols;
    const int *cols = g->t->models[mi].cols;
    cstack_value key[CS_PG_MAX_KEY];
    cs_srv_err verr = {0};
    *res = APPLIED;
    for (size_t p = 0; p < m->npk; p++) {
        int fi = m->pk[p];
        int rc = cs_pg_value_decode(r, row, (int)p, g->s, m, &m->fields[fi], false,
                                    &g->scratch[fi], &key[p], &verr);
        if (rc) {
            snprintf(g->why, sizeof g->why, "%s", verr.message);
            *res = REFUSED;
            return rc == CSTACK_ENOMEM || rc == CSTACK_EIO ? rc : 0;
        }
    }
    if (*PQgetvalue(r, row, (int)m->npk)) /* absent */
        return delete_row(g, mi, key, res, err);
    for (size_t c = m->npk; c < ncols; c++) {
        int fi = cols[c];
        int rc = cs_pg_value_decode(r, row, (int)(m->npk + 1 + c), g->s, m, &m->fields[fi], true,
                                    &g->scratch[fi], &g->vals[fi], &verr);
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
    for (size_t p = 0; p < m->npk; p++)
        g->vals[m->pk[p]] = key[p];
    return write_row(g, mi, key, res, err);
}

/* The entries to take: how many, the newest id, and which models. */
static int take(cs_pg_typed *t, size_t limit, long long *maxid, int *count, bool *models,
                cs_srv_err *err)
{
    const cstack_schema *s = t->s;
    char lim[32];
    snprintf(lim, sizeof lim, "%zu", limit);
    const char *v[1] = {lim};
    PGresult *r = PQexecParams(t->c,
                               "SELECT max(id), model FROM (SELECT id, model FROM " CS_PG_QUEUE
                               " ORDER BY id LIMIT $1::bigint) s GROUP BY model",
                               1, NULL, v, NULL, NULL, 0);
    int rc = cs_pg_check(t->c, r, PGRES_TUPLES_OK, "read the backend queue", err);
    *maxid = 0;
    *count = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        long long id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        *maxid = id > *maxid ? id : *maxid;
        int mi = cs_model_find(s, PQgetvalue(r, i, 1));
        if (mi >= 0 && cs_pg_typed_table(t, s->models[mi].table, NULL))
            models[mi] = true;
        else
            fprintf(stderr, "cstack: backend queue: no synced model '%s'; entries dropped\n",
                    PQgetvalue(r, i, 1));
    }
    PQclear(r);
    if (rc == 0 && *maxid > 0) {
        char id[32];
        snprintf(id, sizeof id, "%lld", *maxid);
        v[0] = id;
        r = PQexecParams(t->c,
                         "SELECT count(*) FROM " CS_PG_QUEUE " WHERE id <= $1::bigint", 1, NULL,
                         v, NULL, NULL, 0);
        rc = cs_pg_check(t->c, r, PGRES_TUPLES_OK, "count the backend queue", err);
        if (rc == 0)
            *count = atoi(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    return rc;
}

/* The queue entries of model mi up to maxid, with PostgreSQL's rows. */
static int model_rows(ingest *g, int mi, long long maxid, PGresult **out, cs_srv_err *err)
{
    size_t ncols = g->t->models[mi].ncols;
    const int *cols = g->t->models[mi].cols;
    cs_buf sql = CS_BUF_INIT;
    char id[32];
    snprintf(id, sizeof id, "%lld", maxid);
    const char *v[1] = {id};
    *out = NULL;
    if (model_query(&sql, g->s, mi, cols, ncols)) {
        cs_buf_free(&sql);
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ENOMEM, NULL);
        return CSTACK_ENOMEM;
    }
    PGconn *c = g->t->c;
    *out = PQexecParams(c, sql.data, 1, NULL, v, NULL, NULL, 1);
    cs_buf_free(&sql);
    int rc = cs_pg_check(c, *out, PGRES_TUPLES_OK, "read backend-written rows", err);
    if (rc) {
        PQclear(*out);
        *out = NULL;
    }
    return rc;
}

typedef struct retry {
    int mi, row;
    const PGresult *r;
    char *why; /* why the copy refused it last (malloc'd) */
} retry;

/* A row the copy refused: said on stderr (its key and why), and
 * PostgreSQL's row queued to be put back to the copy's state. */
static int refuse(ingest *g, const retry *x, cs_srv_err *err)
{
    const cs_model *m = &g->s->models[x->mi];
    cstack_value key[CS_PG_MAX_KEY];
    cs_srv_err kerr = {0};
    cs_buf text = CS_BUF_INIT;
    int rc = 0, bad = 0;
    for (size_t p = 0; !bad && p < m->npk; p++) {
        const cs_field *f = &m->fields[m->pk[p]];
        bad = cs_pg_value_decode(x->r, x->row, (int)p, g->s, m, f, false,
                                 &g->scratch[m->pk[p]], &key[p], &kerr);
        if (!bad && cs_buf_puts(&text, p ? ", " : "") == 0)
            cs_value_json(&text, f->type, &key[p]);
    }
    fprintf(stderr, "cstack: backend write to %s [%s] refused and undone: %s\n", m->name,
            text.data ? text.data : "", x->why ? x->why : "out of memory");
    cs_buf_free(&text);
    /* A key the copy cannot hold has no row there to restore. */
    if (!bad)
        rc = cs_pg_typed_restore(g->t, g->conn, x->mi, key, err);
    return rc;
}

/* One pass over model mi's rows; refusals go to `again`. */
static int apply_model(ingest *g, int mi, const PGresult *r, retry *again, size_t *nagain,
                       cs_srv_err *err)
{
    for (int row = 0; row < PQntuples(r); row++) {
        int res;
        TRY(apply_row(g, mi, r, row, &res, err));
        if (res == REFUSED)
            again[(*nagain)++] = (retry){mi, row, r, cs_strdup(g->why)};
    }
    return 0;
}

int cs_pg_backend_ingest(cs_pg_typed *t, sqlite3 *conn, size_t limit, size_t *n,
                         cs_srv_err *err)
{
    const cstack_schema *s = t->s;
    ingest g = {t, conn, s, t->vals, t->scratch, ""};
    long long maxid;
    int count;
    *n = 0;
    if (limit == 0)
        return 0;
    bool *models = calloc(s->nmodels ? s->nmodels : 1, sizeof *models);
    PGresult **res = calloc(s->nmodels ? s->nmodels : 1, sizeof *res);
    retry *again = NULL;
    int rc = models && res ? 0 : CSTACK_ENOMEM;
    if (rc)
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, NULL);
    rc = rc ? rc : take(t, limit, &maxid, &count, models, err);
    if (rc == 0 && count > 0 && sqlite3_exec(conn, "PRAGMA defer_foreign_keys = ON", NULL, NULL,
                                             NULL) != SQLITE_OK)
        rc = cs_pg_sqlite_err(conn, "defer foreign keys", err);
    if (rc == 0 && count > 0 && !(again = malloc((size_t)count * sizeof *again))) {
        rc = CSTACK_ENOMEM;
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, NULL);
    }
    size_t nagain = 0;
    for (size_t i = 0; rc == 0 && count > 0 && i < s->nmodels; i++) {
        if (models[i])
            rc = model_rows(&g, (int)i, maxid, &res[i], err);
        if (rc == 0 && res[i])
            rc = apply_model(&g, (int)i, res[i], again, &nagain, err);
    }
    /* Refused rows again, while a pass applies any: a row whose unique
     * value another entry frees passes once that entry is in.  What is left
     * (two rows swapping a unique value, which the copy's immediate unique
     * indexes cannot pass through) is undone. */
    for (size_t before = nagain + 1; rc == 0 && nagain > 0 && nagain < before;) {
        before = nagain;
        nagain = 0;
        for (size_t i = 0; rc == 0 && i < before; i++) {
            int ok;
            rc = apply_row(&g, again[i].mi, again[i].r, again[i].row, &ok, err);
            if (rc == 0 && ok == REFUSED) {
                free(again[i].why);
                again[i].why = cs_strdup(g.why);
                again[nagain++] = again[i];
            } else {
                free(again[i].why);
            }
        }
    }
    for (size_t i = 0; rc == 0 && i < nagain; i++)
        rc = refuse(&g, &again[i], err);
    for (size_t i = 0; again && i < nagain; i++)
        free(again[i].why);
    if (rc == 0 && count > 0) {
        char id[32];
        snprintf(id, sizeof id, "%lld", maxid);
        const char *v[1] = {id};
        PGresult *r = PQexecParams(t->c,
                                   "DELETE FROM " CS_PG_QUEUE " WHERE id <= $1::bigint", 1, NULL,
                                   v, NULL, NULL, 0);
        rc = cs_pg_check(t->c, r, PGRES_COMMAND_OK, "empty the backend queue",
                         err);
        PQclear(r);
    }
    if (rc == 0)
        *n = (size_t)count;
    for (size_t i = 0; res && i < s->nmodels; i++)
        PQclear(res[i]);
    free(again);
    free(res);
    free(models);
    return rc;
}
