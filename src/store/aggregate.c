/* aggregate.c -- count / sum / avg / min / max over a filtered model.
 *
 * Decimal sums and averages are exact (the cstack_decimal_* aggregates from
 * value/sqlfuncs.c); Int sums are exact integers (SQLite reports overflow);
 * averages of Int and Float are doubles. */
#include <stdio.h>
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
    const char *const *lists[4] = {agg->sum, agg->avg, agg->min, agg->max};
    size_t counts[4] = {agg->n_sum, agg->n_avg, agg->n_min, agg->n_max};
    size_t total = agg->count ? 1 : 0;
    for (int k = 0; k < 4; k++)
        total += lists[k] ? counts[k] : 0;
    if (total == 0)
        return cs_err(CSTACK_EINVAL, "aggregate on %s asks for nothing", m->name);
    cs_shape *sh = cs_shape_new(total);
    if (!sh)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    cs_sqlb q = {0};
    size_t col = 0;
    int rc = cs_buf_puts(&q.sql, "SELECT ");
    if (!rc && agg->count) {
        rc = cs_buf_puts(&q.sql, "count(*)");
        if (!rc)
            rc = add_column(sh, col++, "_count", NULL, CS_T_INT);
    }
    for (int k = 0; k < 4 && !rc; k++) {
        for (size_t i = 0; lists[k] && i < counts[k] && !rc; i++) {
            const char *name = lists[k][i];
            int fi = name ? cs_field_find(m, name) : -1;
            if (fi < 0 || !cs_field_is_column(&m->fields[fi])) {
                rc = cs_err(CSTACK_EINVAL, "cannot aggregate %s by '%s': not a field of the model",
                            m->name, name ? name : "(null)");
                break;
            }
            cs_scalar type = CS_T_INT;
            if (col)
                rc = cs_buf_puts(&q.sql, ", ");
            if (!rc)
                rc = agg_expr(&q, m, &m->fields[fi], (agg_kind)k, &type);
            if (!rc)
                rc = add_column(sh, col++, agg_names[k], name, type);
        }
    }
    if (!rc)
        rc = cs_scalar_query(db, m, &q, agg->where, sh, out);
    cs_sqlb_free(&q);
    cs_shape_release(sh);
    return rc;
}
