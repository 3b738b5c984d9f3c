/* clkrow.c -- reading and writing one row of a clock table, and inserting
 * new ones many at a time.
 *
 * Both the fold of local writes (capture.c) and the merge (apply.c) do this
 * once per row, so the SQL text of each model (src/sql/clocksql.c) is built
 * once, when the models load (cs_sync_clkrow_sql), and the statements come
 * from the connection's cache under keys of their own. */
#include <stdlib.h>
#include <string.h>

#include "sql/clocksql.h"
#include "sql/sql.h"
#include "sync/changeset.h"

/* The insert of a clock row unless it exists: the upsert (clocksql.c) with
 * DO NOTHING on conflict, same parameters.  A merge learns from it whether
 * a row is new in one statement instead of a lookup and a write.  The
 * upsert's identifiers are quoted schema names, so its last ON CONFLICT is
 * its own. */
static int insert_sql(cs_buf *out, const cs_buf *store)
{
    static const char conflict[] = " ON CONFLICT DO UPDATE";
    const char *at = NULL;
    for (const char *p = store->data; (p = strstr(p, conflict)) != NULL; p++)
        at = p;
    if (!at)
        return CSTACK_EINVAL;
    int rc = cs_buf_append(out, store->data, (size_t)(at - store->data));
    return rc ? rc : cs_buf_puts(out, " ON CONFLICT DO NOTHING");
}

int cs_sync_clkrow_sql(cs_sync_model *sm, const cs_model *m)
{
    cs_buf load = CS_BUF_INIT, store = CS_BUF_INIT, insert = CS_BUF_INIT, latest = CS_BUF_INIT,
           insert_new = CS_BUF_INIT;
    int rc = cs_clock_sql_load(&load, m, sm->clk_table);
    rc = rc ? rc : cs_clock_sql_store(&store, m, sm->clk_table);
    rc = rc ? rc : cs_clock_sql_latest(&latest, sm->clk_table);
    rc = rc ? rc : insert_sql(&insert, &store);
    rc = rc ? rc : cs_clock_sql_insert_new(&insert_new, m, sm->clk_table, cs_sql_batch_rows(m));
    free(sm->sql_load);
    free(sm->sql_store);
    free(sm->sql_insert);
    free(sm->sql_latest);
    free(sm->sql_insert_new);
    sm->sql_load = rc ? NULL : cs_buf_take(&load);
    sm->sql_store = rc ? NULL : cs_buf_take(&store);
    sm->sql_insert = rc ? NULL : cs_buf_take(&insert);
    sm->sql_latest = rc ? NULL : cs_buf_take(&latest);
    sm->sql_insert_new = rc ? NULL : cs_buf_take(&insert_new);
    cs_buf_free(&load);
    cs_buf_free(&store);
    cs_buf_free(&insert);
    cs_buf_free(&latest);
    cs_buf_free(&insert_new);
    return sm->sql_load && sm->sql_store && sm->sql_insert && sm->sql_latest && sm->sql_insert_new
               ? 0
               : CSTACK_ENOMEM;
}

/* The statements of each kind. */
enum { CLKROW_LOAD = 1, CLKROW_STORE, CLKROW_INSERT, CLKROW_INSERT_NEW };

/* Each model's statements are cached under their own keys (CS_KEY_CLKROW):
 * hashing their text on every call cost a twentieth of a merge. */
static sqlite3_stmt *prepare(cs_conn *c, const cs_sync_model *sm, int kind, const char *sql,
                             const cs_model *m, int *rc)
{
    sqlite3_stmt *st =
        sql ? cs_conn_prepare(c, CS_KEY_CLKROW(sm->model, kind), sql, strlen(sql)) : NULL;
    if (!st)
        *rc = sql ? cs_err_sqlite(m, c->db, sqlite3_errcode(c->db))
                  : cs_err(CSTACK_ENOMEM, "out of memory");
    return st;
}

int cs_clkrow_load(cs_conn *c, const cs_sync_model *sm, const cs_model *m,
                   const cs_cs_value *pk, uint64_t *cl, cs_clk *clk)
{
    int rc = 0;
    sqlite3_stmt *st = prepare(c, sm, CLKROW_LOAD, sm->sql_load, m, &rc);
    if (!st)
        return rc;
    for (size_t i = 0; i < m->npk; i++)
        cs_cs_bind(st, (int)i + 1, &pk[i]);
    *cl = 0;
    cs_clk_free(clk);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *cl = (uint64_t)sqlite3_column_int64(st, 0);
        if (cs_clk_decode(clk, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1)))
            rc = cs_err(CSTACK_ESQLITE, "corrupt clock metadata in %s", sm->clk_table);
    } else if (step != SQLITE_DONE) {
        rc = cs_err_sqlite(m, c->db, step);
    }
    sqlite3_reset(st);
    return rc ? rc : cs_clk_resize(clk, sm->ncols);
}

static int put_row(cs_conn *c, const cs_sync_model *sm, const cs_model *m, int kind,
                   const cs_cs_value *pk, uint64_t cl, int64_t ver, const void *blob, size_t len)
{
    int rc = 0;
    sqlite3_stmt *st =
        prepare(c, sm, kind, kind == CLKROW_STORE ? sm->sql_store : sm->sql_insert, m, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)cl);
    sqlite3_bind_int64(st, 2, ver);
    sqlite3_bind_blob(st, 3, blob, (int)len, SQLITE_STATIC);
    for (size_t i = 0; i < m->npk; i++)
        cs_cs_bind(st, (int)i + 4, &pk[i]);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : cs_err_sqlite(m, c->db, step);
}

int cs_clkrow_store(cs_conn *c, const cs_sync_model *sm, const cs_model *m,
                    const cs_cs_value *pk, uint64_t cl, int64_t ver, const void *blob,
                    size_t len)
{
    return put_row(c, sm, m, CLKROW_STORE, pk, cl, ver, blob, len);
}

int cs_clkrow_insert(cs_conn *c, const cs_sync_model *sm, const cs_model *m,
                     const cs_cs_value *pk, uint64_t cl, int64_t ver, const void *blob,
                     size_t len, bool *stored)
{
    int rc = put_row(c, sm, m, CLKROW_INSERT, pk, cl, ver, blob, len);
    *stored = !rc && sqlite3_changes(c->db) == 1;
    return rc;
}

/* A merge that keeps meeting new rows writes their clock rows many per
 * statement (sync/apply.c); an existing one fails the statement, which then
 * writes nothing, and the merge takes those rows one by one. */
int cs_clkrow_insert_new(cs_conn *c, const cs_sync_model *sm, const cs_model *m, int64_t ver,
                         const cs_clkrow_new *rows, bool *stored)
{
    int rc = 0;
    *stored = false;
    sqlite3_stmt *st = prepare(c, sm, CLKROW_INSERT_NEW, sm->sql_insert_new, m, &rc);
    if (!st)
        return rc;
    sqlite3_bind_int64(st, 1, ver);
    int arg = 2;
    for (size_t r = 0, n = cs_sql_batch_rows(m); r < n; r++) {
        for (size_t i = 0; i < m->npk; i++)
            cs_cs_bind(st, arg++, &rows[r].pk[i]);
        sqlite3_bind_int64(st, arg++, (sqlite3_int64)rows[r].cl);
        sqlite3_bind_blob(st, arg++, rows[r].blob, (int)rows[r].len, SQLITE_STATIC);
    }
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    *stored = step == SQLITE_DONE;
    return *stored || (step & 0xff) == SQLITE_CONSTRAINT ? 0 : cs_err_sqlite(m, c->db, step);
}

/* Rows are hidden or shown rarely next to merges, so its text is built per
 * call and its statement cached by text. */
int cs_clkrow_touch(cs_conn *c, const cs_sync_model *sm, const cs_model *m,
                    const cs_cs_value *pk, int64_t ver)
{
    cs_buf sql = CS_BUF_INIT;
    int rc = cs_buf_puts(&sql, "UPDATE ");
    rc = rc ? rc : cs_buf_ident(&sql, sm->clk_table);
    rc = rc ? rc : cs_buf_puts(&sql, " SET _cstack_ver = ?1 WHERE ");
    for (size_t i = 0; i < m->npk && !rc; i++) {
        rc = cs_buf_puts(&sql, i ? " AND " : "");
        rc = rc ? rc : cs_buf_ident(&sql, m->fields[m->pk[i]].column);
        rc = rc ? rc : cs_buf_printf(&sql, " = ?%d", (int)i + 2);
    }
    sqlite3_stmt *st = rc ? NULL : cs_conn_prepare(c, 0, sql.data, sql.len);
    cs_buf_free(&sql);
    if (rc)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    if (!st)
        return cs_err_sqlite(m, c->db, sqlite3_errcode(c->db));
    sqlite3_bind_int64(st, 1, ver);
    for (size_t i = 0; i < m->npk; i++)
        cs_cs_bind(st, (int)i + 2, &pk[i]);
    int step = sqlite3_step(st);
    sqlite3_reset(st);
    return step == SQLITE_DONE ? 0 : cs_err_sqlite(m, c->db, step);
}
