/* write.c -- the write delegates: create, create_many, update, update_many,
 * upsert, delete, delete_many.
 *
 * Every delegate runs inside a write scope (cs_write_begin/end): a
 * transaction of its own, or a savepoint inside the caller's transaction, so a
 * failing call leaves nothing behind.  Single-row updates and deletes read the
 * row first (by its unique key); that gives the not-found error, the primary
 * key the write then targets, and the "before" image of the audit journal.
 * Many-row writes on journaled models (@@audit / @@emit) go row by row for the
 * same reason; on other models they are one statement.  The values a call
 * writes are gathered, checked and defaulted in rowvals.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/rowvals.h"
#include "store/runtime_int.h"
#include "value/value.h"

/* Steps a write statement; with RETURNING, decodes the row into *out. */
static int step_write(cstack *db, const cs_model *m, sqlite3_stmt *st, bool returning,
                      cstack_row **out)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && returning) {
        *out = cs_row_from_stmt(db->shapes[m - db->schema->models], st, NULL);
        rc = *out ? sqlite3_step(st) : SQLITE_NOMEM;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = cs_err_sqlite_named(db->schema, m, db->writer.db, rc);
        sqlite3_reset(st);
        cstack_row_free(*out);
        *out = NULL;
        return rc;
    }
    sqlite3_reset(st);
    return 0;
}

/* The writer's statement of `kind` for the fields given in rv. */
static sqlite3_stmt *set_stmt(cstack *db, int mi, cs_row_set kind, const cs_rowvals *rv)
{
    const cs_model *m = &db->schema->models[mi];
    uint64_t bits[CS_FIELDSET_WORDS(rv->n)];
    cs_rowvals_bits(rv, bits);
    cs_rowstmt rs;
    int rc = cs_rowsql_set(db->rowsql, mi, kind, bits, &rs);
    if (rc) {
        cs_err(rc, "cannot build the SQL to write %s", m->name);
        return NULL;
    }
    sqlite3_stmt *st = cs_conn_prepare_row(&db->writer, &rs);
    if (!st)
        cs_err_sqlite(m, db->writer.db, sqlite3_errcode(db->writer.db));
    return st;
}

/* Binds the primary key values of `row` (a full row of the model, so values
 * are already canonical) to the key parameters. */
static int bind_key(sqlite3_stmt *st, cstack *db, const cs_model *m, const cstack_row *row)
{
    const cs_shape *sh = db->shapes[m - db->schema->models];
    for (size_t p = 0; p < m->npk; p++) {
        const cs_field *f = &m->fields[m->pk[p]];
        for (size_t i = 0; i < sh->n; i++) {
            int rc = sh->fields[i] == f
                         ? cs_bind_one(st, cs_rowsql_key_param(m, p), &row->vals[i])
                         : SQLITE_OK;
            if (rc != SQLITE_OK)
                return cs_err_sqlite(m, db->writer.db, rc);
        }
    }
    return 0;
}

/* Reads the full row with the given rowid (every model table is a rowid
 * table: primary keys are table constraints on BLOB columns). */
static int read_by_rowid(cstack *db, int mi, sqlite3_int64 rowid, cstack_row **out)
{
    const cs_model *m = &db->schema->models[mi];
    const cs_rowstmt *rs = cs_rowsql_fixed(db->rowsql, mi, CS_ROW_LOAD_ROWID);
    if (!rs)
        return cs_err(CSTACK_ESCHEMA,
                      "the row inserted into %s cannot be read back: its columns hide the rowid",
                      m->name);
    sqlite3_stmt *st = cs_conn_prepare_row(&db->writer, rs);
    if (!st)
        return cs_err_sqlite(m, db->writer.db, sqlite3_errcode(db->writer.db));
    sqlite3_bind_int64(st, 1, rowid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = cs_row_from_stmt(db->shapes[mi], st, NULL);
        rc = *out ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
    } else {
        rc = cs_err(CSTACK_ESQLITE, "the row inserted into %s cannot be read back", m->name);
    }
    sqlite3_reset(st);
    return rc;
}

/* Inserts one row; the caller holds a write scope. */
static int insert_row(cstack *db, int mi, const cstack_data *data, bool want, cstack_row **out)
{
    const cs_model *m = &db->schema->models[mi];
    bool returning = want || cs_model_journaled(m);
    char now[CS_DATETIME_LEN + 1] = "";
    cs_rowvals rv;
    cs_rowvals_store rvs;
    cstack_row *row = NULL;
    int rc = cs_rowvals_init(&rv, m->nfields, &rvs);
    if (!rc)
        rc = cs_rowvals_take(db->schema, m, data, &rv);
    if (!rc)
        rc = cs_rowvals_defaults(db, m, &rv, now);
    /* No RETURNING: SQLite materialises RETURNING rows in a temporary table
     * per statement, which costs more than reading the row back by rowid. */
    sqlite3_stmt *st = rc ? NULL : set_stmt(db, mi, CS_ROW_INSERT, &rv);
    if (!rc && !st)
        rc = CSTACK_ESQLITE;
    if (!rc)
        rc = cs_rowvals_bind(st, m, &rv, db);
    if (!rc)
        rc = step_write(db, m, st, false, &row);
    if (!rc && returning)
        rc = read_by_rowid(db, mi, sqlite3_last_insert_rowid(db->writer.db), &row);
    if (!rc && cs_model_journaled(m))
        rc = cs_record_write(db, mi, CS_OP_CREATE, NULL, row);
    cs_rowvals_free(&rv);
    if (!rc && want)
        *out = row;
    else
        cstack_row_free(row);
    return rc;
}

/* Whether inserting into m is one statement (no journal, no sequence). */
static bool single_statement_insert(const cs_model *m)
{
    if (cs_model_journaled(m))
        return false;
    for (size_t i = 0; i < m->nfields; i++)
        if (m->fields[i].def.kind == CS_DEF_AUTOINCREMENT)
            return false;
    return true;
}

int cstack_create(cstack *db, const char *model, const cstack_data *data, cstack_row **out)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    if (out)
        *out = NULL;
    int mi;
    const cs_model *m = cs_store_model(db, model, &mi);
    if (!m)
        return CSTACK_EINVAL;
    int rc;
    if (single_statement_insert(m) && cs_in_transaction(db)) {
        /* Inside the caller's transaction a single INSERT is atomic by
         * itself: no savepoint, only the capture mark to undo on failure. */
        size_t mark = cs_capture_mark(db);
        rc = insert_row(db, mi, data, out != NULL, out);
        if (rc)
            cs_capture_reset(db, mark);
    } else {
        if ((rc = cs_write_begin(db)))
            return rc;
        rc = insert_row(db, mi, data, out != NULL, out);
        rc = cs_write_end(db, rc);
    }
    if (rc && out) {
        cstack_row_free(*out);
        *out = NULL;
    }
    return rc;
}

int cstack_create_many(cstack *db, const char *model, const cstack_data *rows, size_t n,
                       int64_t *count)
{
    cs_enter(db);
    if (!db || (n && !rows))
        return CSTACK_EMISUSE;
    if (count)
        *count = 0;
    int mi;
    if (!cs_store_model(db, model, &mi))
        return CSTACK_EINVAL;
    int rc = cs_write_begin(db);
    if (rc)
        return rc;
    size_t i = 0;
    for (; i < n && !rc; i++) {
        rc = insert_row(db, mi, &rows[i], false, NULL);
        if (rc) {
            /* Say which row failed; the message already names the field. */
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", cstack_errmsg(db));
            cs_err(rc, "row %zu: %s", i, msg);
        }
    }
    rc = cs_write_end(db, rc);
    if (!rc && count)
        *count = (int64_t)n;
    return rc;
}

/* Appends `"col" = ?N` for each field set in rv. */
static int render_set(cs_sqlb *q, const cs_model *m, const cs_rowvals *rv)
{
    int rc = cs_buf_puts(&q->sql, " SET ");
    size_t k = 0;
    for (size_t i = 0; i < m->nfields && !rc; i++) {
        if (!rv->set[i])
            continue;
        if (k++)
            rc = cs_buf_puts(&q->sql, ", ");
        if (!rc)
            rc = cs_buf_ident(&q->sql, m->fields[i].column);
        if (!rc)
            rc = cs_buf_puts(&q->sql, " = ");
        if (!rc)
            rc = cs_sqlb_bind(q, rv->v[i]);
    }
    return rc;
}

/* Runs q on the writer; with RETURNING, *out gets the row. */
static int exec_write(cstack *db, const cs_model *m, cs_sqlb *q, bool returning,
                      cstack_row **out)
{
    sqlite3_stmt *st = cs_conn_prepare(&db->writer, 0, q->sql.data, q->sql.len);
    if (!st)
        return cs_err_sqlite(m, db->writer.db, sqlite3_errcode(db->writer.db));
    int rc = cs_sqlb_apply(q, st);
    if (rc != SQLITE_OK)
        return cs_err_sqlite(m, db->writer.db, rc);
    cstack_row *row = NULL;
    rc = step_write(db, m, st, returning, &row);
    if (out)
        *out = row;
    else
        cstack_row_free(row);
    return rc;
}

/* Sets the given values of the row `before` and reads the row back. */
static int write_by_key(cstack *db, int mi, const cs_rowvals *rv, const cstack_row *before,
                        cstack_row **after)
{
    const cs_model *m = &db->schema->models[mi];
    sqlite3_stmt *st = set_stmt(db, mi, CS_ROW_UPDATE_RETURNING, rv);
    int rc = st ? cs_rowvals_bind(st, m, rv, db) : CSTACK_ESQLITE;
    rc = rc ? rc : bind_key(st, db, m, before);
    return rc ? rc : step_write(db, m, st, true, after);
}

/* Updates the row `before` with the given values (plus @updatedAt). */
static int update_row(cstack *db, int mi, const cstack_row *before, cs_rowvals *rv, const char *now,
                      cstack_row **out)
{
    const cs_model *m = &db->schema->models[mi];
    int rc = cs_update_rules(m, before, rv->set, rv->v);
    if (rc)
        return rc;
    for (size_t i = 0; i < m->nfields; i++) {
        if (m->fields[i].updated_at && !rv->set[i]) {
            rv->v[i] = cstack_v_textn(now, CS_DATETIME_LEN);
            rv->set[i] = true;
        }
    }
    bool any = false;
    for (size_t i = 0; i < m->nfields; i++)
        any = any || rv->set[i];
    cstack_row *after = NULL;
    if (!any) {
        after = cs_row_copy(before);
        rc = after ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
    } else {
        rc = write_by_key(db, mi, rv, before, &after);
    }
    if (!rc && cs_model_journaled(m))
        rc = cs_record_write(db, mi, CS_OP_UPDATE, before, after);
    if (!rc && out)
        *out = after;
    else
        cstack_row_free(after);
    return rc;
}

static int not_found(const cs_model *m)
{
    return cs_err(CSTACK_ENOTFOUND, "no %s matches the given unique where", m->name);
}

/* Reads, on the writer, the row that the unique `where` names: not found is
 * CSTACK_ENOTFOUND, and a stale @version given in `where` CSTACK_ECONFLICT.
 * *before (to free with cstack_row_free) may be set also on error. */
static int load_unique(cstack *db, const cs_model *m, const cstack_data *where,
                       cstack_row **before)
{
    cstack_field_value key[where && where->count ? where->count : 1];
    cstack_data rest;
    bool given;
    int64_t expected = 0;
    int rc = cs_version_where(m, where, key, &rest, &given, &expected);
    if (!rc)
        rc = cs_find_unique_conn(db, &db->writer, m, &rest, before);
    if (!rc && !*before)
        rc = not_found(m);
    if (!rc)
        rc = cs_version_check(m, *before, given, expected);
    return rc;
}

int cstack_update(cstack *db, const char *model, const cstack_data *where,
                  const cstack_data *data, cstack_row **out)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    if (out)
        *out = NULL;
    int mi;
    const cs_model *m = cs_store_model(db, model, &mi);
    if (!m)
        return CSTACK_EINVAL;
    char now[CS_DATETIME_LEN + 1];
    cs_now(now);
    cs_rowvals rv;
    cs_rowvals_store rvs;
    cstack_row *before = NULL;
    int rc = cs_rowvals_init(&rv, m->nfields, &rvs);
    if (!rc)
        rc = cs_rowvals_take(db->schema, m, data, &rv);
    if (rc) {
        cs_rowvals_free(&rv);
        return rc;
    }
    if ((rc = cs_write_begin(db))) {
        cs_rowvals_free(&rv);
        return rc;
    }
    rc = load_unique(db, m, where, &before);
    if (!rc)
        rc = update_row(db, mi, before, &rv, now, out);
    rc = cs_write_end(db, rc);
    if (rc && out) {
        cstack_row_free(*out);
        *out = NULL;
    }
    cstack_row_free(before);
    cs_rowvals_free(&rv);
    return rc;
}

/* Full rows of the model matching `where`, read on the writer. */
static int matching_rows(cstack *db, const cs_model *m, const cstack_filter *where,
                         cstack_rows *list)
{
    cs_sqlb q = {0};
    const cs_shape *sh = db->shapes[m - db->schema->models];
    int rc = cs_buf_puts(&q.sql, "SELECT ");
    if (!rc)
        rc = cs_render_columns(&q, sh, 0);
    if (!rc)
        rc = cs_buf_puts(&q.sql, " FROM ");
    if (!rc)
        rc = cs_buf_ident(&q.sql, m->table);
    if (!rc)
        rc = cs_buf_puts(&q.sql, " AS t0 WHERE ");
    if (!rc)
        rc = cs_render_where(&q, db->schema, m, 0, where);
    sqlite3_stmt *st = rc ? NULL : cs_conn_prepare(&db->writer, 0, q.sql.data, q.sql.len);
    if (!rc && !st)
        rc = cs_err_sqlite(m, db->writer.db, sqlite3_errcode(db->writer.db));
    if (!rc && (rc = cs_sqlb_apply(&q, st)) != SQLITE_OK)
        rc = cs_err_sqlite(m, db->writer.db, rc);
    while (!rc && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        cstack_row *r = cs_row_from_stmt((cs_shape *)sh, st, NULL);
        rc = r && !cs_rows_push(list, r) ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
        if (rc)
            cstack_row_free(r);
    }
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc > 0)
        rc = cs_err_sqlite(m, db->writer.db, rc);
    if (st)
        sqlite3_reset(st);
    cs_sqlb_free(&q);
    return rc;
}

static void rows_clear(cstack_rows *list)
{
    for (size_t i = 0; i < list->n; i++)
        cstack_row_free(list->rows[i]);
    free(list->rows);
}

/* One statement for all matching rows: UPDATE/DELETE ... AS t0 WHERE. */
static int bulk_write(cstack *db, const cs_model *m, const char *verb, const cs_rowvals *set,
                      const cstack_filter *where, int64_t *count)
{
    cs_sqlb q = {0};
    int rc = cs_buf_puts(&q.sql, verb);
    if (!rc)
        rc = cs_buf_ident(&q.sql, m->table);
    if (!rc)
        rc = cs_buf_puts(&q.sql, " AS t0");
    if (!rc && set)
        rc = render_set(&q, m, set);
    if (!rc)
        rc = cs_buf_puts(&q.sql, " WHERE ");
    if (!rc)
        rc = cs_render_where(&q, db->schema, m, 0, where);
    if (!rc)
        rc = exec_write(db, m, &q, false, NULL);
    if (!rc)
        *count = sqlite3_changes64(db->writer.db);
    cs_sqlb_free(&q);
    return rc;
}

int cstack_update_many(cstack *db, const char *model, const cstack_filter *where,
                       const cstack_data *data, int64_t *count)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    int64_t done = 0;
    int mi;
    const cs_model *m = cs_store_model(db, model, &mi);
    if (!m)
        return CSTACK_EINVAL;
    char now[CS_DATETIME_LEN + 1];
    cs_now(now);
    cs_rowvals rv;
    cs_rowvals_store rvs;
    int rc = cs_rowvals_init(&rv, m->nfields, &rvs);
    if (!rc)
        rc = cs_rowvals_take(db->schema, m, data, &rv);
    if (!rc)
        rc = cs_write_begin(db);
    else {
        cs_rowvals_free(&rv);
        return rc;
    }
    /* Row by row when each row needs its journal entry or its own rules. */
    bool per_row = cs_model_journaled(m) || cs_version_field(m) >= 0;
    for (size_t i = 0; i < m->nfields; i++)
        per_row = per_row || m->fields[i].readonly;
    if (per_row) {
        cstack_rows list = {0};
        rc = matching_rows(db, m, where, &list);
        for (size_t i = 0; !rc && i < list.n; i++, done++) {
            cs_rowvals one = rv;
            bool set[m->nfields ? m->nfields : 1];
            cstack_value vals[m->nfields ? m->nfields : 1];
            memcpy(set, rv.set, m->nfields * sizeof *set);
            memcpy(vals, rv.v, m->nfields * sizeof *vals);
            one.set = set;
            one.v = vals;
            rc = update_row(db, mi, list.rows[i], &one, now, NULL);
        }
        rows_clear(&list);
    } else {
        for (size_t i = 0; i < m->nfields; i++)
            if (m->fields[i].updated_at && !rv.set[i]) {
                rv.v[i] = cstack_v_textn(now, CS_DATETIME_LEN);
                rv.set[i] = true;
            }
        bool any = false;
        for (size_t i = 0; i < m->nfields; i++)
            any = any || rv.set[i];
        if (any)
            rc = bulk_write(db, m, "UPDATE ", &rv, where, &done);
        else
            rc = cstack_count(db, model, where, &done);
    }
    rc = cs_write_end(db, rc);
    cs_rowvals_free(&rv);
    if (count)
        *count = rc ? 0 : done;
    return rc;
}

int cstack_upsert(cstack *db, const char *model, const cstack_data *where,
                  const cstack_data *create, const cstack_data *update, cstack_row **out)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    if (out)
        *out = NULL;
    int mi;
    const cs_model *m = cs_store_model(db, model, &mi);
    if (!m)
        return CSTACK_EINVAL;
    cstack_row *before = NULL;
    int rc = cs_write_begin(db);
    if (rc)
        return rc;
    rc = cs_find_unique_conn(db, &db->writer, m, where, &before);
    if (!rc && before) {
        char now[CS_DATETIME_LEN + 1];
        cs_now(now);
        cs_rowvals rv;
    cs_rowvals_store rvs;
        rc = cs_rowvals_init(&rv, m->nfields, &rvs);
        if (!rc)
            rc = cs_rowvals_take(db->schema, m, update, &rv);
        if (!rc)
            rc = update_row(db, mi, before, &rv, now, out);
        cs_rowvals_free(&rv);
    } else if (!rc) {
        /* The where's key fields complete the create data when it omits them. */
        size_t nc = create ? create->count : 0, nw = where ? where->count : 0;
        cstack_field_value *all = calloc(nc + nw + 1, sizeof *all);
        size_t k = 0;
        if (!all)
            rc = cs_err(CSTACK_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < nc; i++)
            all[k++] = create->fields[i];
        for (size_t j = 0; !rc && j < nw; j++) {
            bool given = false;
            for (size_t i = 0; i < nc; i++)
                given = given || (create->fields[i].field && where->fields[j].field &&
                                  strcmp(create->fields[i].field, where->fields[j].field) == 0);
            if (!given)
                all[k++] = where->fields[j];
        }
        cstack_data merged = {all, k};
        if (!rc)
            rc = insert_row(db, mi, &merged, out != NULL, out);
        free(all);
    }
    rc = cs_write_end(db, rc);
    if (rc && out) {
        cstack_row_free(*out);
        *out = NULL;
    }
    cstack_row_free(before);
    return rc;
}

/* Deletes `before` (soft: sets the soft-delete field to now). */
static int delete_row(cstack *db, int mi, const cstack_row *before, cstack_row **out)
{
    const cs_model *m = &db->schema->models[mi];
    cstack_row *after = NULL;
    bool soft = m->soft_delete >= 0;
    int rc;
    if (soft) {
        char now[CS_DATETIME_LEN + 1];
        cs_now(now);
        cs_rowvals rv;
        cs_rowvals_store rvs;
        rc = cs_rowvals_init(&rv, m->nfields, &rvs);
        if (!rc) {
            rv.v[m->soft_delete] = cstack_v_textn(now, CS_DATETIME_LEN);
            rv.set[m->soft_delete] = true;
            rc = write_by_key(db, mi, &rv, before, &after);
        }
        cs_rowvals_free(&rv);
    } else {
        sqlite3_stmt *st =
            cs_conn_prepare_row(&db->writer, cs_rowsql_fixed(db->rowsql, mi, CS_ROW_DELETE));
        rc = st ? bind_key(st, db, m, before)
                : cs_err_sqlite(m, db->writer.db, sqlite3_errcode(db->writer.db));
        rc = rc ? rc : step_write(db, m, st, false, &after);
    }
    if (!rc && cs_model_journaled(m))
        rc = cs_record_write(db, mi, CS_OP_DELETE, before, after);
    if (!rc && out)
        *out = soft ? after : cs_row_copy(before);
    if (soft && (rc || !out))
        cstack_row_free(after);
    if (!rc && out && !*out)
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    return rc;
}

int cstack_delete(cstack *db, const char *model, const cstack_data *where, cstack_row **out)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    if (out)
        *out = NULL;
    int mi;
    const cs_model *m = cs_store_model(db, model, &mi);
    if (!m)
        return CSTACK_EINVAL;
    cstack_row *before = NULL;
    int rc = cs_write_begin(db);
    if (rc)
        return rc;
    rc = load_unique(db, m, where, &before);
    if (!rc)
        rc = delete_row(db, mi, before, out);
    rc = cs_write_end(db, rc);
    if (rc && out) {
        cstack_row_free(*out);
        *out = NULL;
    }
    cstack_row_free(before);
    return rc;
}

int cstack_delete_many(cstack *db, const char *model, const cstack_filter *where,
                       int64_t *count)
{
    cs_enter(db);
    if (!db)
        return CSTACK_EMISUSE;
    int64_t done = 0;
    int mi;
    const cs_model *m = cs_store_model(db, model, &mi);
    if (!m)
        return CSTACK_EINVAL;
    int rc = cs_write_begin(db);
    if (rc)
        return rc;
    if (cs_model_journaled(m)) {
        cstack_rows list = {0};
        rc = matching_rows(db, m, where, &list);
        for (size_t i = 0; !rc && i < list.n; i++, done++)
            rc = delete_row(db, mi, list.rows[i], NULL);
        rows_clear(&list);
    } else if (m->soft_delete >= 0) {
        char now[CS_DATETIME_LEN + 1];
        cs_now(now);
        cs_rowvals rv;
    cs_rowvals_store rvs;
        rc = cs_rowvals_init(&rv, m->nfields, &rvs);
        if (!rc) {
            rv.v[m->soft_delete] = cstack_v_textn(now, CS_DATETIME_LEN);
            rv.set[m->soft_delete] = true;
            rc = bulk_write(db, m, "UPDATE ", &rv, where, &done);
        }
        cs_rowvals_free(&rv);
    } else {
        rc = bulk_write(db, m, "DELETE FROM ", NULL, where, &done);
    }
    rc = cs_write_end(db, rc);
    if (count)
        *count = rc ? 0 : done;
    return rc;
}
