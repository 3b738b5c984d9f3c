/* aggregate.c -- count / sum / avg / min / max over a filtered model, or
 * over each group of its rows (group_by).
 *
 * Decimal sums and averages are exact (the cstack_decimal_* aggregates from
 * value/sqlfuncs.c); Int sums are exact integers (SQLite reports overflow);
 * averages of Int and Float are doubles. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

typedef enum agg_kind { AGG_SUM, AGG_AVG, AGG_MIN, AGG_MAX } agg_kind;

static const char *const agg_names[] = {"_sum", "_avg", "_min", "_max"};

/* The SQL expression and result type of one aggregate of field f. */
static int agg_expr(cs_sqlb *q, const cs_model *m, const cs_field *f, agg_kind k,
                    cs_scalar *type)
{
    bool numeric = f->type == CS_T_INT || f->type == CS_T_FLOAT || f->type == CS_T_DECIMAL;
    if ((k == AGG_SUM || k == AGG_AVG) && !numeric)
        return cs_err(CSTACK_EINVAL, "cannot %s %s.%s: it is a %s, not a number",
                      k == AGG_SUM ? "sum" : "average", m->name, f->name,
                      cs_scalar_name(f->type));
    if ((k == AGG_MIN || k == AGG_MAX) && (f->type == CS_T_JSON || f->type == CS_T_BYTES))
        return cs_err(CSTACK_EINVAL, "%s.%s: a %s has no order", m->name, f->name,
                      cs_scalar_name(f->type));
    const char *fn;
    bool dec = f->type == CS_T_DECIMAL;
    *type = f->type;
    switch (k) {
    case AGG_SUM:
        fn = dec ? "cstack_decimal_sum(" : "sum(";
        break;
    case AGG_AVG:
        fn = dec ? "cstack_decimal_avg(" : "avg(";
        if (!dec)
            *type = CS_T_FLOAT;
        break;
    case AGG_MIN:
        fn = "min(";
        break;
    default:
        fn = "max(";
        break;
    }
    int rc = cs_buf_puts(&q->sql, fn);
    if (!rc)
        rc = cs_buf_puts(&q->sql, "t0.");
    if (!rc)
        rc = cs_buf_ident(&q->sql, f->column);
    if (!rc && dec && (k == AGG_MIN || k == AGG_MAX))
        rc = cs_buf_puts(&q->sql, " COLLATE cstack_decimal");
    return rc ? rc : cs_buf_puts(&q->sql, ")");
}

static int add_column(cs_shape *sh, size_t i, const char *prefix, const char *field,
                      cs_scalar type)
{
    cs_buf name = CS_BUF_INIT;
    if (cs_buf_printf(&name, "%s%s%s", prefix, field ? "." : "", field ? field : ""))
        return cs_err(CSTACK_ENOMEM, "out of memory");
    sh->owned[i] = cs_buf_take(&name);
    if (!sh->owned[i])
        return cs_err(CSTACK_ENOMEM, "out of memory");
    sh->names[i] = sh->owned[i];
    sh->types[i] = type;
    return 0;
}

/* Appends the aggregates of `agg` to q's select list (after *col columns
 * already there) and names them in sh from column *col on. */
static int agg_columns(cs_sqlb *q, cs_shape *sh, size_t *col, const cs_model *m,
                       const cstack_aggregate_spec *agg)
{
    const char *const *lists[4] = {agg->sum, agg->avg, agg->min, agg->max};
    size_t counts[4] = {agg->n_sum, agg->n_avg, agg->n_min, agg->n_max};
    int rc = 0;
    if (agg->count) {
        rc = cs_buf_puts(&q->sql, *col ? ", count(*)" : "count(*)");
        if (!rc)
            rc = add_column(sh, (*col)++, "_count", NULL, CS_T_INT);
    }
    for (int k = 0; k < 4 && !rc; k++) {
        for (size_t i = 0; lists[k] && i < counts[k] && !rc; i++) {
            const char *name = lists[k][i];
            int fi = name ? cs_field_find(m, name) : -1;
            if (fi < 0 || !cs_field_is_column(&m->fields[fi]))
                return cs_err(CSTACK_EINVAL, "cannot aggregate %s by '%s': not a field of the model",
                              m->name, name ? name : "(null)");
            cs_scalar type = CS_T_INT;
            if (*col)
                rc = cs_buf_puts(&q->sql, ", ");
            if (!rc)
                rc = agg_expr(q, m, &m->fields[fi], (agg_kind)k, &type);
            if (!rc)
                rc = add_column(sh, (*col)++, agg_names[k], name, type);
        }
    }
    return rc;
}

/* The number of columns the aggregates of `agg` make. */
static size_t agg_total(const cstack_aggregate_spec *agg)
{
    size_t total = agg->count ? 1 : 0;
    total += agg->sum ? agg->n_sum : 0;
    total += agg->avg ? agg->n_avg : 0;
    total += agg->min ? agg->n_min : 0;
    return total + (agg->max ? agg->n_max : 0);
}

int cstack_aggregate(cstack *db, const char *model, const cstack_aggregate_spec *agg,
                     cstack_row **out)
{
    cs_enter(db);
    if (!db || !agg || !out)
        return CSTACK_EMISUSE;
    *out = NULL;
    const cs_model *m = cs_store_model(db, model, NULL);
    if (!m)
        return CSTACK_EINVAL;
    size_t total = agg_total(agg);
    if (total == 0)
        return cs_err(CSTACK_EINVAL, "aggregate on %s asks for nothing", m->name);
    cs_shape *sh = cs_shape_new(total);
    if (!sh)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    cs_sqlb q = {0};
    size_t col = 0;
    int rc = cs_buf_puts(&q.sql, "SELECT ");
    if (!rc)
        rc = agg_columns(&q, sh, &col, m, agg);
    if (!rc)
        rc = cs_scalar_query(db, m, &q, agg->where, sh, out);
    cs_sqlb_free(&q);
    cs_shape_release(sh);
    return rc;
}

/* ---- group_by ------------------------------------------------------------------ */

/* Appends `t0."col"` of field f, with the Decimal collation where it orders. */
static int group_column(cs_buf *b, const cs_field *f, bool order)
{
    int rc = cs_buf_puts(b, "t0.");
    if (!rc)
        rc = cs_buf_ident(b, f->column);
    if (!rc && order && f->type == CS_T_DECIMAL)
        rc = cs_buf_puts(b, " COLLATE cstack_decimal");
    return rc;
}

/* The by fields into sh's first columns and q's select list; the GROUP BY
 * and ORDER BY clauses into tail. */
static int group_clauses(const cs_model *m, const cstack_group_by_spec *g, cs_shape *sh,
                         cs_sqlb *q, cs_buf *tail)
{
    int rc = cs_buf_puts(tail, " GROUP BY ");
    for (size_t i = 0; !rc && i < g->n_by; i++) {
        int fi = g->by[i] ? cs_field_find(m, g->by[i]) : -1;
        if (fi < 0 || !cs_field_is_column(&m->fields[fi]))
            return cs_err(CSTACK_EINVAL, "cannot group %s by '%s': not a field of the model",
                          m->name, g->by[i] ? g->by[i] : "(null)");
        const cs_field *f = &m->fields[fi];
        sh->names[i] = f->name;
        sh->fields[i] = f;
        sh->types[i] = f->type;
        rc = (i ? cs_buf_puts(&q->sql, ", ") : 0) || group_column(&q->sql, f, false) ||
             (i ? cs_buf_puts(tail, ", ") : 0) || group_column(tail, f, false);
    }
    /* The requested order, then every other by field ascending: groups are
     * distinct in the by fields, so the order is total. */
    rc = rc ? rc : cs_buf_puts(tail, " ORDER BY ");
    for (size_t i = 0; !rc && i < g->n_order; i++) {
        const char *name = g->order_by[i].field;
        size_t k = 0;
        while (k < g->n_by && (!name || strcmp(sh->names[k], name) != 0))
            k++;
        if (k == g->n_by)
            return cs_err(CSTACK_EINVAL, "cannot order the groups by '%s': not one of the by "
                                         "fields", name ? name : "(null)");
        rc = (i ? cs_buf_puts(tail, ", ") : 0) || group_column(tail, sh->fields[k], true) ||
             cs_buf_puts(tail, g->order_by[i].desc ? " DESC" : " ASC");
    }
    for (size_t k = 0; !rc && k < g->n_by; k++) {
        rc = (g->n_order || k ? cs_buf_puts(tail, ", ") : 0) ||
             group_column(tail, sh->fields[k], true);
    }
    return rc ? cs_err(CSTACK_ENOMEM, "out of memory") : 0;
}

int cstack_group_by(cstack *db, const char *model, const cstack_group_by_spec *g,
                    cstack_rows **out)
{
    cs_enter(db);
    if (!db || !g || !out)
        return CSTACK_EMISUSE;
    *out = NULL;
    const cs_model *m = cs_store_model(db, model, NULL);
    if (!m)
        return CSTACK_EINVAL;
    if (g->n_by == 0 || !g->by || g->n_by > m->nfields)
        return cs_err(CSTACK_EINVAL, "group_by on %s needs 1 to %zu by fields", m->name,
                      m->nfields);
    cs_shape *sh = cs_shape_new(g->n_by + agg_total(&g->agg));
    if (!sh)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    cs_sqlb q = {0};
    cs_buf tail = CS_BUF_INIT;
    size_t col = g->n_by;
    int rc = cs_buf_puts(&q.sql, "SELECT ") ? cs_err(CSTACK_ENOMEM, "out of memory") : 0;
    rc = rc ? rc : group_clauses(m, g, sh, &q, &tail);
    rc = rc ? rc : agg_columns(&q, sh, &col, m, &g->agg);
    if (!rc && !(*out = calloc(1, sizeof **out)))
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    if (!rc)
        rc = cs_rows_query(db, m, &q, g->agg.where, tail.data, sh, *out);
    if (rc) {
        cstack_rows_free(*out);
        *out = NULL;
    }
    cs_buf_free(&tail);
    cs_sqlb_free(&q);
    cs_shape_release(sh);
    return rc;
}
