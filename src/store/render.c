/* render.c -- SQL for filters, unique keys and column lists.
 *
 * Tables are aliased t0 (the queried model), t1, t2... (related models in
 * relation filters).  Every value is canonicalised for its field and bound as
 * a numbered parameter (?N), so a value can be referenced twice without being
 * bound twice; no value is ever spliced into SQL text.
 *
 * Null semantics: EQ null is IS NULL, NE null is IS NOT NULL, and every other
 * comparison with a null column is false (SQL's three-valued logic gives NULL,
 * which a WHERE treats as false).  Decimal comparisons and ordering use the
 * cstack_decimal collation so that 9.5 < 10.25. */
#include <stdlib.h>
#include <string.h>

#include "store/filter.h"
#include "store/store.h"
#include "value/value.h"

#define MAX_FILTER_DEPTH 64

void cs_sqlb_free(cs_sqlb *q)
{
    cs_buf_free(&q->sql);
    free(q->binds);
    for (size_t i = 0; i < q->nowned; i++)
        free(q->owned[i]);
    free(q->owned);
    memset(q, 0, sizeof *q);
}

static int sqlb_own(cs_sqlb *q, char *p)
{
    if (!p)
        return 0;
    if (q->nowned == q->capowned) {
        size_t cap = q->capowned ? q->capowned * 2 : 8;
        char **o = realloc(q->owned, cap * sizeof *o);
        if (!o) {
            free(p);
            return CSTACK_ENOMEM;
        }
        q->owned = o;
        q->capowned = cap;
    }
    q->owned[q->nowned++] = p;
    return 0;
}

/* Binds `v` and appends its placeholder "?N". */
int cs_sqlb_bind(cs_sqlb *q, cstack_value v)
{
    if (q->nbinds == q->capbinds) {
        size_t cap = q->capbinds ? q->capbinds * 2 : 8;
        cstack_value *b = realloc(q->binds, cap * sizeof *b);
        if (!b)
            return CSTACK_ENOMEM;
        q->binds = b;
        q->capbinds = cap;
    }
    if (q->nbinds >= 32766)
        return cs_err(CSTACK_ETOOBIG, "too many values in one query (at most 32766)");
    q->binds[q->nbinds++] = v;
    return cs_buf_printf(&q->sql, "?%zu", q->nbinds);
}

int cs_canon_field(const cstack_schema *s, const cs_model *m, const cs_field *f,
                   const cstack_value *in, cstack_value *out, char **owned)
{
    *owned = NULL;
    cs_buf scratch = CS_BUF_INIT;
    scratch.max = (size_t)1 << 30;
    char err[256] = "";
    int rc = cs_field_canon(s, f, in, &scratch, out, err, sizeof err);
    if (rc) {
        cs_buf_free(&scratch);
        if (rc == CSTACK_ENOMEM)
            return cs_err(rc, "out of memory");
        return cs_err(rc, "%s.%s: %s", m->name, f->name, err[0] ? err : "invalid value");
    }
    if (scratch.data && (out->type == CSTACK_TEXT || out->type == CSTACK_BLOB) &&
        out->u.s.p >= scratch.data && out->u.s.p <= scratch.data + scratch.len)
        *owned = cs_buf_take(&scratch);
    cs_buf_free(&scratch);
    return 0;
}

int cs_sqlb_bind_field(cs_sqlb *q, const cstack_schema *s, const cs_model *m,
                       const cs_field *f, const cstack_value *in)
{
    cstack_value v;
    char *owned = NULL;
    int rc = cs_canon_field(s, m, f, in, &v, &owned);
    if (!rc)
        rc = sqlb_own(q, owned);
    return rc ? rc : cs_sqlb_bind(q, v);
}

int cs_bind_one(sqlite3_stmt *st, int idx, const cstack_value *v)
{
    switch (v->type) {
    case CSTACK_NULL:
        return sqlite3_bind_null(st, idx);
    case CSTACK_INT:
        return sqlite3_bind_int64(st, idx, v->u.i);
    case CSTACK_BOOL:
        return sqlite3_bind_int(st, idx, v->u.b ? 1 : 0);
    case CSTACK_FLOAT:
        return sqlite3_bind_double(st, idx, v->u.f);
    case CSTACK_TEXT:
        return sqlite3_bind_text64(st, idx, v->u.s.p ? v->u.s.p : "", v->u.s.n, SQLITE_STATIC,
                                   SQLITE_UTF8);
    default:
        return sqlite3_bind_blob64(st, idx, v->u.s.p ? v->u.s.p : "", v->u.s.n, SQLITE_STATIC);
    }
}

int cs_sqlb_apply(const cs_sqlb *q, sqlite3_stmt *st)
{
    for (size_t i = 0; i < q->nbinds; i++) {
        int rc = cs_bind_one(st, (int)i + 1, &q->binds[i]);
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static int col(cs_sqlb *q, int alias, const cs_field *f)
{
    int rc = cs_buf_printf(&q->sql, "t%d.", alias);
    return rc ? rc : cs_buf_ident(&q->sql, f->column);
}

/* Finds a column field for a filter or an order; messages name the model. */
static const cs_field *column_field(const cs_model *m, const char *name, const char *what)
{
    int fi = name ? cs_field_find(m, name) : -1;
    if (fi < 0) {
        cs_err(CSTACK_EINVAL, "unknown field '%s' in %s on model %s", name ? name : "(null)",
               what, m->name);
        return NULL;
    }
    if (!cs_field_is_column(&m->fields[fi])) {
        cs_err(CSTACK_EINVAL, "'%s.%s' is a relation; use a relation filter", m->name, name);
        return NULL;
    }
    return &m->fields[fi];
}

static int soft_delete_cond(cs_sqlb *q, const cs_model *m, int alias)
{
    if (m->soft_delete < 0)
        return 0;
    int rc = cs_buf_puts(&q->sql, " AND ");
    if (!rc)
        rc = col(q, alias, &m->fields[m->soft_delete]);
    return rc ? rc : cs_buf_puts(&q->sql, " IS NULL");
}

int cs_render_unique(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                     const cstack_data *where)
{
    if (!where || where->count == 0 || !where->fields)
        return cs_err(CSTACK_EINVAL, "a unique where for %s is required", m->name);
    /* The given fields must be exactly the primary key or a unique set. */
    bool match = false;
    for (size_t u = 0; u <= m->nuniques && !match; u++) {
        const int *set = u == 0 ? m->pk : m->uniques[u - 1].fields;
        size_t n = u == 0 ? m->npk : m->uniques[u - 1].n;
        if (n != where->count)
            continue;
        match = true;
        for (size_t i = 0; i < n && match; i++) {
            bool found = false;
            for (size_t j = 0; j < where->count && !found; j++)
                found = where->fields[j].field &&
                        strcmp(where->fields[j].field, m->fields[set[i]].name) == 0;
            match = found;
        }
    }
    if (!match)
        return cs_err(CSTACK_EINVAL,
                      "the where of a unique lookup on %s must name exactly its primary key or "
                      "one of its unique field sets",
                      m->name);
    int rc = 0;
    for (size_t j = 0; j < where->count && !rc; j++) {
        const cs_field *f = &m->fields[cs_field_find(m, where->fields[j].field)];
        if (where->fields[j].value.type == CSTACK_NULL)
            return cs_err(CSTACK_EINVAL, "%s.%s: a unique lookup value cannot be null", m->name,
                          f->name);
        rc = cs_buf_puts(&q->sql, j ? " AND " : "");
        if (!rc)
            rc = col(q, alias, f);
        if (!rc)
            rc = cs_buf_puts(&q->sql, " = ");
        if (!rc)
            rc = cs_sqlb_bind_field(q, s, m, f, &where->fields[j].value);
    }
    return rc ? rc : soft_delete_cond(q, m, alias);
}

static int render_filter(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                         const cstack_filter *f, int depth);

static const char *op_sql(cstack_op op)
{
    switch (op) {
    case CSTACK_OP_EQ:
        return " = ";
    case CSTACK_OP_NE:
        return " <> ";
    case CSTACK_OP_LT:
        return " < ";
    case CSTACK_OP_LTE:
        return " <= ";
    case CSTACK_OP_GT:
        return " > ";
    case CSTACK_OP_GTE:
        return " >= ";
    default:
        return NULL;
    }
}

static bool text_stored(cs_scalar t)
{
    return t == CS_T_STRING || t == CS_T_CUID || t == CS_T_UUID || t == CS_T_DATETIME ||
           t == CS_T_JSON || t == CS_T_DECIMAL || t == CS_T_ENUM;
}

/* contains / starts_with / ends_with: the pattern is bound as-is (it is a
 * fragment, not a value of the field's type) but must be valid UTF-8 text. */
static int render_text_op(cs_sqlb *q, const cs_model *m, const cs_field *f, int alias,
                          const cstack_filter *flt)
{
    const cstack_value *v = &flt->vals[0];
    if (!text_stored(f->type))
        return cs_err(CSTACK_EINVAL, "%s.%s: text operators need a text field, not %s", m->name,
                      f->name, cs_scalar_name(f->type));
    if (v->type != CSTACK_TEXT || !cs_utf8_valid(v->u.s.p, v->u.s.n))
        return cs_err(CSTACK_EVALIDATION, "%s.%s: the pattern must be UTF-8 text", m->name,
                      f->name);
    bool ci = flt->flags & CSTACK_CI;
    cs_buf *b = &q->sql;
    int rc = cs_buf_puts(b, "(");
    size_t pat = q->nbinds + 1;
    cs_buf lhs = CS_BUF_INIT;
    cs_buf_printf(&lhs, ci ? "lower(t%d." : "(t%d.", alias);
    cs_buf_ident(&lhs, f->column);
    cs_buf_puts(&lhs, ")");
    if (!lhs.data)
        return CSTACK_ENOMEM;
    switch (flt->op) {
    case CSTACK_OP_CONTAINS:
        rc = cs_buf_printf(b, ci ? "instr(%s, lower(?%zu)) > 0" : "instr(%s, ?%zu) > 0", lhs.data,
                           pat);
        break;
    case CSTACK_OP_STARTS_WITH:
        rc = cs_buf_printf(b, ci ? "instr(%s, lower(?%zu)) = 1" : "instr(%s, ?%zu) = 1", lhs.data,
                           pat);
        break;
    default: /* ends_with */
        rc = cs_buf_printf(b,
                           ci ? "(length(?%zu) = 0 OR substr(%s, -length(?%zu)) = lower(?%zu))"
                              : "(length(?%zu) = 0 OR substr(%s, -length(?%zu)) = ?%zu)",
                           pat, lhs.data, pat, pat);
        break;
    }
    cs_buf_free(&lhs);
    /* Bind the pattern (its placeholder text is not used: the SQL above
     * refers to it by number). */
    size_t mark = b->len;
    if (!rc)
        rc = cs_sqlb_bind(q, *v);
    if (!rc) {
        b->len = mark;
        b->data[mark] = 0;
        rc = cs_buf_puts(b, ")");
    }
    return rc;
}

/* The JSON text of one list element given as a value (HAS). */
static int element_json(cs_buf *b, const cstack_value *v)
{
    int rc = cs_buf_putc(b, '[');
    if (rc)
        return rc;
    if (v->type == CSTACK_TEXT)
        rc = cs_buf_json_str(b, v->u.s.p, v->u.s.n);
    else if (v->type == CSTACK_INT)
        rc = cs_buf_printf(b, "%lld", (long long)v->u.i);
    else if (v->type == CSTACK_FLOAT)
        rc = cs_buf_printf(b, "%.17g", v->u.f);
    else if (v->type == CSTACK_BOOL)
        rc = cs_buf_puts(b, v->u.b ? "true" : "false");
    else if (v->type == CSTACK_BLOB) /* a Bytes[] element: base64, as stored */
        rc = cs_buf_putc(b, '"') || cs_base64_encode(b, v->u.s.p, v->u.s.n) || cs_buf_putc(b, '"');
    else
        return CSTACK_EVALIDATION;
    return rc ? rc : cs_buf_putc(b, ']');
}

/* has / hasSome / hasEvery on a scalar list: json_each() of the column
 * against json_each() of the canonical list given. */
static int render_list_op(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                          const cs_field *f, const cstack_filter *flt)
{
    if (!f->list || f->type != CS_T_JSON)
        return cs_err(CSTACK_EINVAL, "%s.%s: has, hasSome and hasEvery need a list field",
                      m->name, f->name);
    cs_field any_len;
    f = cs_list_filter_field(f, &any_len);
    cstack_value v = flt->vals[0];
    cs_buf one = CS_BUF_INIT;
    if (flt->op == CSTACK_OP_HAS) {
        int rc = element_json(&one, &v);
        if (rc) {
            cs_buf_free(&one);
            return rc == CSTACK_EVALIDATION
                       ? cs_err(rc, "%s.%s: has takes one element value", m->name, f->name)
                       : CSTACK_ENOMEM;
        }
        v = cstack_v_textn(one.data, one.len);
    }
    bool every = flt->op == CSTACK_OP_HAS_EVERY;
    cs_buf *b = &q->sql;
    int rc = cs_buf_puts(b, every ? "NOT EXISTS (SELECT 1 FROM json_each("
                                  : "EXISTS (SELECT 1 FROM json_each(");
    if (!rc && every)
        rc = cs_sqlb_bind_field(q, s, m, f, &v);
    else if (!rc)
        rc = col(q, alias, f);
    if (!rc)
        rc = cs_buf_puts(b, every ? ") AS r WHERE NOT EXISTS (SELECT 1 FROM json_each("
                                  : ") AS l, json_each(");
    if (!rc && every)
        rc = col(q, alias, f);
    else if (!rc)
        rc = cs_sqlb_bind_field(q, s, m, f, &v);
    if (!rc)
        rc = cs_buf_puts(b, every ? ") AS l WHERE l.value = r.value))"
                                  : ") AS r WHERE l.value = r.value)");
    cs_buf_free(&one);
    return rc;
}

static int render_cmp(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                      const cstack_filter *flt)
{
    const cs_field *f = column_field(m, flt->field, "a filter");
    if (!f)
        return CSTACK_EINVAL;
    const cstack_value *v = &flt->vals[0];
    if (flt->op == CSTACK_OP_CONTAINS || flt->op == CSTACK_OP_STARTS_WITH ||
        flt->op == CSTACK_OP_ENDS_WITH)
        return render_text_op(q, m, f, alias, flt);
    if (flt->op == CSTACK_OP_HAS || flt->op == CSTACK_OP_HAS_SOME ||
        flt->op == CSTACK_OP_HAS_EVERY)
        return render_list_op(q, s, m, alias, f, flt);
    const char *op = op_sql(flt->op);
    if (!op)
        return cs_err(CSTACK_EINVAL, "unknown filter operator %d", (int)flt->op);
    int rc = col(q, alias, f);
    if (rc)
        return rc;
    if (v->type == CSTACK_NULL) {
        if (flt->op == CSTACK_OP_EQ || flt->op == CSTACK_OP_NE)
            return cs_buf_puts(&q->sql, flt->op == CSTACK_OP_EQ ? " IS NULL" : " IS NOT NULL");
        return cs_err(CSTACK_EINVAL, "%s.%s: only equals and not compare with null", m->name,
                      f->name);
    }
    if ((rc = cs_buf_puts(&q->sql, op)) || (rc = cs_sqlb_bind_field(q, s, m, f, v)))
        return rc;
    if (f->type == CS_T_DECIMAL)
        return cs_buf_puts(&q->sql, " COLLATE cstack_decimal");
    if ((flt->flags & CSTACK_CI) && text_stored(f->type))
        return cs_buf_puts(&q->sql, " COLLATE NOCASE");
    return 0;
}

static int render_in(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                     const cstack_filter *flt)
{
    const cs_field *f = column_field(m, flt->field, "a filter");
    if (!f)
        return CSTACK_EINVAL;
    if (flt->nvals == 0)
        return cs_buf_puts(&q->sql, flt->negate ? "1" : "0");
    int rc = cs_buf_puts(&q->sql, "(");
    if (!rc)
        rc = col(q, alias, f);
    if (!rc && f->type == CS_T_DECIMAL)
        rc = cs_buf_puts(&q->sql, " COLLATE cstack_decimal");
    if (!rc)
        rc = cs_buf_puts(&q->sql, flt->negate ? " NOT IN (" : " IN (");
    for (size_t i = 0; i < flt->nvals && !rc; i++) {
        if (flt->vals[i].type == CSTACK_NULL)
            return cs_err(CSTACK_EINVAL, "%s.%s: in/notIn lists cannot hold null; use isNull",
                          m->name, f->name);
        if (i)
            rc = cs_buf_puts(&q->sql, ", ");
        if (!rc)
            rc = cs_sqlb_bind_field(q, s, m, f, &flt->vals[i]);
    }
    return rc ? rc : cs_buf_puts(&q->sql, "))");
}

static int render_null(cs_sqlb *q, const cs_model *m, int alias, const cstack_filter *flt)
{
    const cs_field *f = column_field(m, flt->field, "a filter");
    if (!f)
        return CSTACK_EINVAL;
    int rc = col(q, alias, f);
    return rc ? rc : cs_buf_puts(&q->sql, flt->negate ? " IS NOT NULL" : " IS NULL");
}

static int render_list(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                       const cstack_filter *f, int depth)
{
    if (f->nkids == 0)
        return cs_buf_puts(&q->sql, f->kind == CS_F_AND ? "1" : "0");
    int rc = cs_buf_puts(&q->sql, f->kind == CS_F_NOT ? "NOT (" : "(");
    for (size_t i = 0; i < f->nkids && !rc; i++) {
        if (i)
            rc = cs_buf_puts(&q->sql, f->kind == CS_F_AND ? " AND " : " OR ");
        if (!rc)
            rc = cs_buf_puts(&q->sql, "(");
        if (!rc)
            rc = render_filter(q, s, m, alias, f->kids[i], depth + 1);
        if (!rc)
            rc = cs_buf_puts(&q->sql, ")");
    }
    /* NOT of an unknown (null) comparison stays unknown, i.e. false, which
     * keeps "every comparison with null is false" true under negation. */
    return rc ? rc : cs_buf_puts(&q->sql, ")");
}

/* Appends the join condition between alias `a` (model m, relation field f)
 * and alias `b` (the related model). */
static int render_join(cs_sqlb *q, const cstack_schema *s, const cs_model *m, const cs_field *f,
                       int a, int b)
{
    const cs_relation *r = f->rel;
    const cs_model *tm = &s->models[r->target];
    const cs_relation *own = r->nfields ? r : tm->fields[r->back_field].rel;
    const cs_model *om = r->nfields ? m : tm;   /* the model holding the fks */
    const cs_model *rm = r->nfields ? tm : m;   /* the referenced model */
    int oa = r->nfields ? a : b, ra = r->nfields ? b : a;
    int rc = 0;
    for (size_t i = 0; i < own->nfields && !rc; i++) {
        if (i)
            rc = cs_buf_puts(&q->sql, " AND ");
        if (!rc)
            rc = col(q, ra, &rm->fields[own->refs[i]]);
        if (!rc)
            rc = cs_buf_puts(&q->sql, " = ");
        if (!rc)
            rc = col(q, oa, &om->fields[own->fields[i]]);
    }
    return rc;
}

static int render_rel(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                      const cstack_filter *flt, int depth)
{
    int fi = cs_field_find(m, flt->field);
    if (fi < 0 || m->fields[fi].type != CS_T_MODEL)
        return cs_err(CSTACK_EINVAL, "'%s' is not a relation of model %s", flt->field, m->name);
    const cs_field *f = &m->fields[fi];
    bool many = f->rel->to_many;
    bool one_op = flt->relop == CSTACK_REL_IS || flt->relop == CSTACK_REL_IS_NOT;
    if (many == one_op)
        return cs_err(CSTACK_EINVAL, "%s.%s is a to-%s relation: use %s", m->name, f->name,
                      many ? "many" : "one", many ? "some, every or none" : "is or isNot");
    const cs_model *tm = &s->models[f->rel->target];
    int b = ++q->alias;
    bool negate = flt->relop == CSTACK_REL_IS_NOT || flt->relop == CSTACK_REL_NONE ||
                  flt->relop == CSTACK_REL_EVERY;
    int rc = cs_buf_printf(&q->sql, "%sEXISTS (SELECT 1 FROM ", negate ? "NOT " : "");
    if (!rc)
        rc = cs_buf_ident(&q->sql, tm->table);
    if (!rc)
        rc = cs_buf_printf(&q->sql, " AS t%d WHERE ", b);
    if (!rc)
        rc = render_join(q, s, m, f, alias, b);
    if (!rc)
        rc = soft_delete_cond(q, tm, b);
    if (!rc && flt->nkids) {
        /* every: no related row for which the predicate is not true. */
        bool every = flt->relop == CSTACK_REL_EVERY;
        rc = cs_buf_puts(&q->sql, " AND (");
        if (!rc)
            rc = render_filter(q, s, tm, b, flt->kids[0], depth + 1);
        if (!rc)
            rc = cs_buf_puts(&q->sql, every ? ") IS NOT 1" : ")");
    } else if (!rc && flt->relop == CSTACK_REL_EVERY) {
        rc = cs_buf_puts(&q->sql, " AND 0");
    }
    return rc ? rc : cs_buf_puts(&q->sql, ")");
}

static int render_filter(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                         const cstack_filter *f, int depth)
{
    if (!f)
        return cs_err(CSTACK_ENOMEM, "the filter is incomplete (a builder ran out of memory)");
    if (depth > MAX_FILTER_DEPTH)
        return cs_err(CSTACK_ETOOBIG, "filter nested deeper than %d levels", MAX_FILTER_DEPTH);
    switch (f->kind) {
    case CS_F_CMP:
        return render_cmp(q, s, m, alias, f);
    case CS_F_IN:
        return render_in(q, s, m, alias, f);
    case CS_F_NULL:
        return render_null(q, m, alias, f);
    case CS_F_REL:
        return render_rel(q, s, m, alias, f, depth);
    default:
        return render_list(q, s, m, alias, f, depth);
    }
}

int cs_render_where(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                    const cstack_filter *f)
{
    int rc = cs_buf_puts(&q->sql, "(");
    if (!rc)
        rc = f ? render_filter(q, s, m, alias, f, 0) : cs_buf_puts(&q->sql, "1");
    if (!rc)
        rc = cs_buf_puts(&q->sql, ")");
    return rc ? rc : soft_delete_cond(q, m, alias);
}

int cs_render_columns(cs_sqlb *q, const cs_shape *shape, int alias)
{
    int rc = 0;
    for (size_t i = 0; i < shape->n && !rc; i++) {
        if (i)
            rc = cs_buf_puts(&q->sql, ", ");
        if (!rc)
            rc = col(q, alias, shape->fields[i]);
    }
    return rc;
}

int cs_model_shape(const cs_model *m, const char *const *select, size_t n, cs_shape **out)
{
    *out = NULL;
    size_t count = 0;
    if (select && n) {
        count = n;
    } else {
        for (size_t i = 0; i < m->nfields; i++)
            count += cs_field_is_column(&m->fields[i]);
    }
    cs_shape *sh = cs_shape_new(count);
    if (!sh)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < (select && n ? n : m->nfields); i++) {
        const cs_field *f;
        if (select && n) {
            if (!(f = column_field(m, select[i], "select"))) {
                cs_shape_release(sh);
                return CSTACK_EINVAL;
            }
            for (size_t j = 0; j < k; j++)
                if (sh->fields[j] == f) {
                    cs_shape_release(sh);
                    return cs_err(CSTACK_EINVAL, "field '%s' selected twice", select[i]);
                }
        } else if (!cs_field_is_column(f = &m->fields[i])) {
            continue;
        }
        sh->names[k] = f->name;
        sh->fields[k] = f;
        sh->types[k] = f->type;
        k++;
    }
    *out = sh;
    return 0;
}
