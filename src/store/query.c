/* query.c -- the read delegates: find_unique, find_first, find_many, count,
 * aggregate.
 *
 * Rows always come back ordered by the requested fields and then by the
 * primary key, which makes every order total and cursor pagination exact: a
 * cursor names a row by a unique key, its order values are read, and the page
 * continues with the rows strictly after them in that total order. */
#include <stdlib.h>
#include <string.h>

#include "store/runtime_int.h"
#include "value/value.h"

typedef struct order_item {
    const cs_field *f;
    bool desc;
} order_item;

/* Steps a prepared query; pushes decoded rows into `list`, or keeps the first
 * in *one. */
static int run_rows(const cs_model *m, cs_conn *c, const cs_sqlb *q, cs_shape *sh,
                    cstack_rows *list, cstack_row **one)
{
    sqlite3_stmt *st = cs_conn_prepare(c, 0, q->sql.data, q->sql.len);
    if (!st)
        return cs_err_sqlite(m, c->db, sqlite3_errcode(c->db));
    int rc = cs_sqlb_apply(q, st);
    if (rc != SQLITE_OK)
        return cs_err_sqlite(m, c->db, rc);
    if (list && !list->shape) {
        list->shape = sh;
        sh->refs++;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cstack_row *r = cs_row_from_stmt(sh, st, list);
        if (!r) {
            sqlite3_reset(st);
            return cs_err(CSTACK_ENOMEM, "out of memory");
        }
        if (one) {
            *one = r;
            rc = SQLITE_DONE;
            break;
        }
        if (cs_rows_push(list, r)) {
            cstack_row_free(r);
            sqlite3_reset(st);
            return cs_err(CSTACK_ENOMEM, "out of memory");
        }
    }
    if (rc != SQLITE_DONE) {
        rc = cs_err_sqlite(m, c->db, rc);
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    return 0;
}

static int select_from(cs_sqlb *q, const cs_model *m, const cs_shape *sh)
{
    int rc = cs_buf_puts(&q->sql, "SELECT ");
    if (!rc)
        rc = cs_render_columns(q, sh, 0);
    if (!rc)
        rc = cs_buf_puts(&q->sql, " FROM ");
    if (!rc)
        rc = cs_buf_ident(&q->sql, m->table);
    return rc ? rc : cs_buf_puts(&q->sql, " AS t0 WHERE ");
}

int cs_find_unique_conn(cstack *db, cs_conn *c, const cs_model *m, const cstack_data *where,
                        cstack_row **out)
{
    *out = NULL;
    cs_shape *sh = NULL;
    int rc = cs_model_shape(m, NULL, 0, &sh);
    if (rc)
        return rc;
    cs_sqlb q = {0};
    rc = select_from(&q, m, sh);
    if (!rc)
        rc = cs_render_unique(&q, db->schema, m, 0, where);
    if (!rc)
        rc = run_rows(m, c, &q, sh, NULL, out);
    cs_sqlb_free(&q);
    cs_shape_release(sh);
    return rc;
}

int cstack_find_unique(cstack *db, const char *model, const cstack_data *where,
                       const char *const *select, size_t n_select, cstack_row **out)
{
    cs_enter(db);
    if (!db || !out)
        return CSTACK_EMISUSE;
    *out = NULL;
    const cs_model *m = cs_store_model(db, model, NULL);
    if (!m)
        return CSTACK_EINVAL;
    cs_shape *sh = NULL;
    int rc = cs_model_shape(m, select, n_select, &sh);
    if (rc)
        return rc;
    cs_sqlb q = {0};
    rc = select_from(&q, m, sh);
    if (!rc)
        rc = cs_render_unique(&q, db->schema, m, 0, where);
    if (!rc) {
        cs_conn *c = cs_read_begin(db);
        rc = run_rows(m, c, &q, sh, NULL, out);
        cs_read_end(db, c);
    }
    cs_sqlb_free(&q);
    cs_shape_release(sh);
    return rc;
}

/* The requested order plus the primary-key fields not already in it. */
static int build_order(const cs_model *m, const cstack_query *qy, order_item **out, size_t *n)
{
    size_t cap = qy->n_order + m->npk;
    order_item *items = calloc(cap ? cap : 1, sizeof *items);
    if (!items)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < qy->n_order; i++) {
        const char *name = qy->order_by[i].field;
        int fi = name ? cs_field_find(m, name) : -1;
        if (fi < 0 || !cs_field_is_column(&m->fields[fi])) {
            free(items);
            return cs_err(CSTACK_EINVAL, "cannot order %s by '%s': not a field of the model",
                          m->name, name ? name : "(null)");
        }
        items[k].f = &m->fields[fi];
        items[k++].desc = qy->order_by[i].desc != 0;
    }
    for (size_t p = 0; p < m->npk; p++) {
        const cs_field *f = &m->fields[m->pk[p]];
        bool seen = false;
        for (size_t i = 0; i < k; i++)
            seen = seen || items[i].f == f;
        if (!seen) {
            items[k].f = f;
            items[k++].desc = false;
        }
    }
    *out = items;
    *n = k;
    return 0;
}

static int col_ref(cs_sqlb *q, const cs_field *f)
{
    int rc = cs_buf_puts(&q->sql, "t0.");
    if (!rc)
        rc = cs_buf_ident(&q->sql, f->column);
    if (!rc && f->type == CS_T_DECIMAL)
        rc = cs_buf_puts(&q->sql, " COLLATE cstack_decimal");
    return rc;
}

static int render_order(cs_sqlb *q, const order_item *items, size_t n)
{
    int rc = cs_buf_puts(&q->sql, " ORDER BY ");
    for (size_t i = 0; i < n && !rc; i++) {
        if (i)
            rc = cs_buf_puts(&q->sql, ", ");
        if (!rc)
            rc = col_ref(q, items[i].f);
        if (!rc)
            rc = cs_buf_puts(&q->sql, items[i].desc ? " DESC" : " ASC");
    }
    return rc;
}

/* Rows strictly after the cursor values `cv` (one per order item) in the
 * total order: OR over i of (items before i equal) AND (item i after). SQLite
 * sorts NULL first ascending and last descending. */
static int render_keyset(cs_sqlb *q, const order_item *items, size_t n, const cstack_row *cv)
{
    int rc = cs_buf_puts(&q->sql, " AND (");
    for (size_t i = 0; i < n && !rc; i++) {
        rc = cs_buf_puts(&q->sql, i ? " OR (" : "(");
        for (size_t j = 0; j < i && !rc; j++) {
            if (!(rc = col_ref(q, items[j].f)) && !(rc = cs_buf_puts(&q->sql, " IS ")) &&
                !(rc = cs_sqlb_bind(q, cv->vals[j])))
                rc = cs_buf_puts(&q->sql, " AND ");
        }
        bool null = cv->vals[i].type == CSTACK_NULL;
        if (rc)
            break;
        if (null && items[i].desc) {
            rc = cs_buf_puts(&q->sql, "0");
        } else if (null) {
            if (!(rc = col_ref(q, items[i].f)))
                rc = cs_buf_puts(&q->sql, " IS NOT NULL");
        } else {
            rc = cs_buf_puts(&q->sql, "(");
            if (!rc)
                rc = col_ref(q, items[i].f);
            if (!rc)
                rc = cs_buf_puts(&q->sql, items[i].desc ? " < " : " > ");
            if (!rc)
                rc = cs_sqlb_bind(q, cv->vals[i]);
            if (!rc && items[i].desc) {
                rc = cs_buf_puts(&q->sql, " OR ");
                if (!rc)
                    rc = col_ref(q, items[i].f);
                if (!rc)
                    rc = cs_buf_puts(&q->sql, " IS NULL");
            }
            if (!rc)
                rc = cs_buf_puts(&q->sql, ")");
        }
        if (!rc)
            rc = cs_buf_puts(&q->sql, ")");
    }
    return rc ? rc : cs_buf_puts(&q->sql, ")");
}

/* Reads the order values of the cursor row. */
static int cursor_values(cstack *db, cs_conn *c, const cs_model *m, const cstack_data *cursor,
                         const order_item *items, size_t n, cstack_row **out)
{
    cs_shape *sh = cs_shape_new(n);
    if (!sh)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        sh->names[i] = items[i].f->name;
        sh->fields[i] = items[i].f;
        sh->types[i] = items[i].f->type;
    }
    cs_sqlb q = {0};
    int rc = select_from(&q, m, sh);
    if (!rc)
        rc = cs_render_unique(&q, db->schema, m, 0, cursor);
    if (!rc)
        rc = run_rows(m, c, &q, sh, NULL, out);
    if (!rc && !*out)
        rc = cs_err(CSTACK_ENOTFOUND, "the cursor row of %s does not exist", m->name);
    cs_sqlb_free(&q);
    cs_shape_release(sh);
    return rc;
}

static int find_rows(cstack *db, const char *model, const cstack_query *qy, bool first,
                     cstack_rows *list, cstack_row **one)
{
    static const cstack_query empty;
    if (!qy)
        qy = &empty;
    const cs_model *m = cs_store_model(db, model, NULL);
    if (!m)
        return CSTACK_EINVAL;
    if (qy->take < 0 || qy->skip < 0)
        return cs_err(CSTACK_EINVAL, "take and skip cannot be negative");
    cs_shape *sh = NULL;
    order_item *items = NULL;
    size_t nitems = 0;
    cstack_row *cv = NULL;
    cs_sqlb q = {0};
    int rc = cs_model_shape(m, qy->select, qy->n_select, &sh);
    if (!rc)
        rc = build_order(m, qy, &items, &nitems);
    if (rc) {
        cs_shape_release(sh);
        return rc;
    }
    cs_conn *c = cs_read_begin(db);
    if (qy->cursor.count)
        rc = cursor_values(db, c, m, &qy->cursor, items, nitems, &cv);
    if (!rc)
        rc = select_from(&q, m, sh);
    if (!rc)
        rc = cs_render_where(&q, db->schema, m, 0, qy->where);
    if (!rc && cv)
        rc = render_keyset(&q, items, nitems, cv);
    if (!rc)
        rc = render_order(&q, items, nitems);
    int64_t take = first ? 1 : qy->take;
    if (!rc && (take || qy->skip)) {
        rc = cs_buf_puts(&q.sql, " LIMIT ");
        if (!rc)
            rc = cs_sqlb_bind(&q, cstack_v_int(take ? take : -1));
        if (!rc)
            rc = cs_buf_puts(&q.sql, " OFFSET ");
        if (!rc)
            rc = cs_sqlb_bind(&q, cstack_v_int(qy->skip));
    }
    if (!rc)
        rc = run_rows(m, c, &q, sh, list, one);
    cs_read_end(db, c);
    cs_sqlb_free(&q);
    cstack_row_free(cv);
    free(items);
    cs_shape_release(sh);
    return rc;
}

int cstack_find_first(cstack *db, const char *model, const cstack_query *q, cstack_row **out)
{
    cs_enter(db);
    if (!db || !out)
        return CSTACK_EMISUSE;
    *out = NULL;
    return find_rows(db, model, q, true, NULL, out);
}

int cstack_find_many(cstack *db, const char *model, const cstack_query *q, cstack_rows **out)
{
    cs_enter(db);
    if (!db || !out)
        return CSTACK_EMISUSE;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    int rc = find_rows(db, model, q, false, *out, NULL);
    if (rc) {
        cstack_rows_free(*out);
        *out = NULL;
    }
    return rc;
}

/* Completes q ("SELECT <exprs>") with FROM model WHERE filter and `tail`
 * (NULL or more clauses), and runs it into list or one. */
static int run_from_where(cstack *db, const cs_model *m, cs_sqlb *q, const cstack_filter *where,
                          const char *tail, cs_shape *sh, cstack_rows *list, cstack_row **one)
{
    int rc = cs_buf_puts(&q->sql, " FROM ");
    if (!rc)
        rc = cs_buf_ident(&q->sql, m->table);
    if (!rc)
        rc = cs_buf_puts(&q->sql, " AS t0 WHERE ");
    if (!rc)
        rc = cs_render_where(q, db->schema, m, 0, where);
    if (!rc && tail)
        rc = cs_buf_puts(&q->sql, tail);
    if (!rc) {
        cs_conn *c = cs_read_begin(db);
        rc = run_rows(m, c, q, sh, list, one);
        cs_read_end(db, c);
    }
    return rc;
}

int cs_scalar_query(cstack *db, const cs_model *m, cs_sqlb *q, const cstack_filter *where,
                    cs_shape *sh, cstack_row **out)
{
    return run_from_where(db, m, q, where, NULL, sh, NULL, out);
}

int cs_rows_query(cstack *db, const cs_model *m, cs_sqlb *q, const cstack_filter *where,
                  const char *tail, cs_shape *sh, cstack_rows *out)
{
    return run_from_where(db, m, q, where, tail, sh, out, NULL);
}

int cstack_count(cstack *db, const char *model, const cstack_filter *where, int64_t *count)
{
    cs_enter(db);
    if (!db || !count)
        return CSTACK_EMISUSE;
    *count = 0;
    const cs_model *m = cs_store_model(db, model, NULL);
    if (!m)
        return CSTACK_EINVAL;
    cs_shape *sh = cs_shape_new(1);
    if (!sh)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    sh->names[0] = "_count";
    sh->types[0] = CS_T_INT;
    cs_sqlb q = {0};
    cstack_row *r = NULL;
    int rc = cs_buf_puts(&q.sql, "SELECT count(*)");
    if (!rc)
        rc = cs_scalar_query(db, m, &q, where, sh, &r);
    if (!rc && r)
        *count = r->vals[0].u.i;
    cstack_row_free(r);
    cs_sqlb_free(&q);
    cs_shape_release(sh);
    return rc;
}
