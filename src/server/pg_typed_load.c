/*
 * pg_typed_load.c -- whole tables between the working copy and PostgreSQL
 * (cs_pg_typed_load, cs_pg_typed_save; pg.h).
 *
 * Loading reads through a cursor, LOAD_CHUNK rows per FETCH in binary, so
 * memory stays bounded whatever the table's size; each value passes the
 * field's canonicaliser (pg_typed_val.c) and the rows go into the copy
 * through the runtime's own INSERT.  Saving queues every row of the copy
 * as an upsert (pg_typed.c sends them a statement's worth at a time), then
 * deletes PostgreSQL's rows the copy lacks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pg_typed_int.h"
#include "util/try.h"

/* Rows per FETCH while loading (both spellings of one number). */
#define LOAD_CHUNK 2000
#define LOAD_CHUNK_TEXT "2000"
#define LOAD_CURSOR "_cstack_pg_load"

static int nomem(cs_srv_err *err)
{
    cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ENOMEM, NULL);
    return CSTACK_ENOMEM;
}

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
    const cs_pg_model *pm = &t->models[mi];
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
    const cs_pg_model *pm = &t->models[mi];
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
 * inserted it): the state the servers' clock rows describe, which the
 * backend's writes then merge into (cs_pg_backend_ingest); a row loaded as
 * the backend left it would pair its values with older clocks. */
static int load_select(cs_buf *sql, const cs_pg_model *pm, const cs_model *m)
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
    TRY(cs_pg_typed_check_model(t, model, err));
    const cs_model *m = &t->s->models[model];
    sqlite3_stmt *ins = NULL;
    cs_buf sql = CS_BUF_INIT;
    int rc = load_select(&sql, &t->models[model], m) ? nomem(err) : 0;
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
            rc = load_chunk(t, conn, model, r, ins, t->vals, err);
        }
        PQclear(r);
    }
    if (open && rc == 0)
        rc = cs_pg_exec(t->c, "CLOSE " LOAD_CURSOR, err);
    sqlite3_finalize(ins);
    cs_buf_free(&sql);
    return rc;
}

/* After a save wrote every row of the copy: deletes PostgreSQL's rows of
 * the model that the copy does not hold. */
static int remove_extras(cs_pg_typed *t, sqlite3 *conn, int mi, cs_srv_err *err)
{
    const cs_model *m = &t->s->models[mi];
    cstack_value key[CS_PG_MAX_KEY];
    cstack_value *vals = t->vals;
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
                rc = cs_pg_typed_queue_delete(t, mi, key, err);
            else if (rc == 0 && src != SQLITE_ROW)
                rc = cs_pg_sqlite_err(conn, "read a row", err);
        }
        PQclear(r);
    }
    if (open && rc == 0)
        rc = cs_pg_exec(t->c, "CLOSE " LOAD_CURSOR, err);
    cs_buf_free(&sql);
    return rc ? rc : cs_pg_typed_flush_model(t, mi, err);
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
    TRY(cs_pg_typed_check_model(t, model, err));
    const cs_model *m = &t->s->models[model];
    TRY(cs_pg_typed_flush_model(t, model, err));
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
        rc = cs_pg_typed_queue_upsert(t, model, st, err);
        saved++;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = cs_pg_sqlite_err(conn, "read rows", err);
    sqlite3_finalize(st);
    rc = rc ? rc : cs_pg_typed_flush_model(t, model, err);
    rc = rc ? rc : pg_count(t, m, &held, err);
    /* Every row of the copy is in PostgreSQL now: equal counts mean equal
     * sets, and only a table that held other rows needs the slow pass. */
    if (rc == 0 && held > saved)
        rc = remove_extras(t, conn, model, err);
    return rc;
}
