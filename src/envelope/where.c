/*
 * where.c -- where objects to cstack_filter trees, and the other arguments of
 * a find: orderBy, take, skip, cursor, select.
 *
 * Semantics (docs/envelope.md, "where"), close to Prisma's:
 *   {"f": v}                equality; null matches null
 *   {"f": {op: v, ...}}     every operator must hold; ops: equals not in notIn
 *                           lt lte gt gte contains startsWith endsWith, and
 *                           "mode": "insensitive" for String, Cuid and enums
 *   {"f": {"not": {...}}}   negation of an operator object
 *   AND / OR                a list of wheres (or one where); OR [] is false
 *   NOT                     a where (negated) or a list (each negated)
 *   {"rel": {"some"|"every"|"none": where}}   to-many relations
 *   {"rel": {"is"|"isNot": where | null}}     to-one relations
 * Members of one where object are ANDed.
 *
 * Inside this file a NULL filter with a 0 return means "matches every row";
 * a builder returning NULL is out of memory.  Filters built here are owned
 * by the caller of env_where (freed with cstack_filter_free).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope/envelope.h"

/* ---- filter lists ---------------------------------------------------------- */

typedef struct flist {
    cstack_filter **v;
    size_t n, cap;
} flist;

static void flist_free(flist *l)
{
    for (size_t i = 0; i < l->n; i++)
        cstack_filter_free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* Takes ownership of f (frees it on failure). */
static int flist_push(env *e, flist *l, cstack_filter *f)
{
    if (!f)
        return env_fail(e, CSTACK_ENOMEM, "out of memory");
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        cstack_filter **p = realloc(l->v, cap * sizeof *p);
        if (!p) {
            cstack_filter_free(f);
            return env_fail(e, CSTACK_ENOMEM, "out of memory");
        }
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = f;
    return 0;
}

/* Combines the list into one filter (AND or OR), emptying it.  An empty AND
 * is NULL (every row); an empty OR matches nothing. */
static int flist_done(env *e, flist *l, bool is_or, cstack_filter **out)
{
    *out = NULL;
    if (l->n == 1 && l->v) {
        *out = l->v[0];
    } else if (l->n > 0 || is_or) {
        *out = is_or ? cstack_filter_or(l->v, l->n) : cstack_filter_and(l->v, l->n);
        if (!*out) {
            free(l->v);
            l->v = NULL;
            l->n = l->cap = 0;
            return env_fail(e, CSTACK_ENOMEM, "out of memory");
        }
    }
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
    return 0;
}

/* NOT f, where a NULL f (every row) negates to "no row". */
static cstack_filter *negate(cstack_filter *f)
{
    return f ? cstack_filter_not(f) : cstack_filter_or(NULL, 0);
}

/* ---- field operators ------------------------------------------------------------ */

/* The operators of an operator object ("mode" is read on its own). */
typedef enum op_kind {
    OPK_CMP,
    OPK_NOT,
    OPK_IN,
    OPK_TEXT,
    OPK_MODE,
    OPK_ISNULL,
    OPK_LIST
} op_kind;

typedef struct op_def {
    const char *name;
    op_kind kind;
    cstack_op op; /* OPK_CMP, OPK_NOT, OPK_TEXT: the comparison */
} op_def;

static const op_def OPS[] = {
    {"equals", OPK_CMP, CSTACK_OP_EQ},
    {"not", OPK_NOT, CSTACK_OP_NE},
    {"in", OPK_IN, CSTACK_OP_EQ},
    {"notIn", OPK_IN, CSTACK_OP_NE},
    {"lt", OPK_CMP, CSTACK_OP_LT},
    {"lte", OPK_CMP, CSTACK_OP_LTE},
    {"gt", OPK_CMP, CSTACK_OP_GT},
    {"gte", OPK_CMP, CSTACK_OP_GTE},
    {"contains", OPK_TEXT, CSTACK_OP_CONTAINS},
    {"startsWith", OPK_TEXT, CSTACK_OP_STARTS_WITH},
    {"endsWith", OPK_TEXT, CSTACK_OP_ENDS_WITH},
    {"mode", OPK_MODE, CSTACK_OP_EQ},
    /* CrateStack's spellings: eq / ne compare values, isNull takes a Boolean. */
    {"eq", OPK_CMP, CSTACK_OP_EQ},
    {"ne", OPK_CMP, CSTACK_OP_NE},
    {"isNull", OPK_ISNULL, CSTACK_OP_EQ},
    /* Scalar lists: one element / a list of elements. */
    {"has", OPK_LIST, CSTACK_OP_HAS},
    {"hasSome", OPK_LIST, CSTACK_OP_HAS_SOME},
    {"hasEvery", OPK_LIST, CSTACK_OP_HAS_EVERY},
};
#define NOPS (sizeof OPS / sizeof OPS[0])

static bool text_stored(cs_scalar t)
{
    return t == CS_T_STRING || t == CS_T_CUID || t == CS_T_UUID || t == CS_T_DATETIME ||
           t == CS_T_JSON || t == CS_T_DECIMAL || t == CS_T_ENUM;
}

static int op_filter(env *e, const cs_model *m, const cs_field *f, const jr_val *ops, int flags,
                     cstack_filter **out);

/* in / notIn: a list of values; insensitive lists become OR / AND of
 * comparisons, since an IN list has no case folding. */
static int in_filter(env *e, const cs_field *f, const jr_val *list, bool negated, int flags,
                     cstack_filter **out)
{
    if (!jr_is(list, JR_ARRAY))
        return env_fail(e, CSTACK_EINVAL, "expected a list of values, got %s", env_kind_name(list));
    size_t n = jr_size(list);
    if (n > ENV_MAX_LIST)
        return env_fail(e, CSTACK_ETOOBIG, "%zu values; a list holds at most %d", n, ENV_MAX_LIST);
    cstack_value *vals = env_alloc(e, n, sizeof *vals);
    if (!vals)
        return e->code;
    jr_iter it = jr_iter_of(list);
    for (size_t i = 0; i < n; i++) {
        size_t mark = env_path_index(e, i);
        int rc = env_value(e, f, jr_iter_elem(&it), &vals[i]);
        if (!rc && vals[i].type == CSTACK_NULL)
            rc = env_fail(e, CSTACK_EINVAL,
                          "null cannot be in a list; use {\"equals\": null} to match null");
        env_path_set(e, mark);
        if (rc)
            return rc;
    }
    if (!(flags & CSTACK_CI)) {
        *out = cstack_filter_in(f->name, negated, vals, n);
        return *out ? 0 : env_fail(e, CSTACK_ENOMEM, "out of memory");
    }
    flist l = {0};
    for (size_t i = 0; i < n; i++)
        if (flist_push(e, &l,
                       cstack_filter_cmp(f->name, negated ? CSTACK_OP_NE : CSTACK_OP_EQ, flags,
                                         vals[i]))) {
            flist_free(&l);
            return e->code;
        }
    return flist_done(e, &l, !negated, out);
}

/* equals / not / lt ... with a value (null only for equals and not). */
static int cmp_filter(env *e, const cs_field *f, cstack_op op, const jr_val *j, int flags,
                      cstack_filter **out)
{
    cstack_value v;
    if (env_value(e, f, j, &v))
        return e->code;
    if (v.type == CSTACK_NULL) {
        if (op != CSTACK_OP_EQ && op != CSTACK_OP_NE)
            return env_fail(e, CSTACK_EINVAL,
                            "only equals and not compare with null (a comparison with null is "
                            "never true)");
        *out = cstack_filter_is_null(f->name, op == CSTACK_OP_EQ);
    } else {
        *out = cstack_filter_cmp(f->name, op, flags, v);
    }
    return *out ? 0 : env_fail(e, CSTACK_ENOMEM, "out of memory");
}

/* has / hasSome / hasEvery on a scalar list field.  hasSome and hasEvery
 * take a list, checked like the field's own values; `has` one element,
 * checked when the filter is rendered. */
static int list_filter(env *e, const cs_model *m, const cs_field *f, const op_def *op,
                       const jr_val *j, cstack_filter **out)
{
    if (!f->list || f->type != CS_T_JSON)
        return env_fail(e, CSTACK_EINVAL, "%s needs a list field; %s.%s is not one", op->name,
                        m->name, f->name);
    cs_field any_len;
    if (op->op != CSTACK_OP_HAS)
        return cmp_filter(e, cs_list_filter_field(f, &any_len), op->op, j, 0, out);
    cstack_value v;
    int64_t i;
    if (jr_is(j, JR_STRING))
        v = cstack_v_textn(jr_str(j), jr_len(j));
    else if (jr_int64(j, &i))
        v = cstack_v_int(i);
    else if (jr_is(j, JR_NUMBER))
        v = cstack_v_float(strtod(jr_str(j), NULL));
    else if (jr_is(j, JR_TRUE) || jr_is(j, JR_FALSE))
        v = cstack_v_bool(jr_is(j, JR_TRUE));
    else
        return env_fail(e, CSTACK_EVALIDATION, "has takes one element value, got %s",
                        env_kind_name(j));
    *out = cstack_filter_cmp(f->name, op->op, 0, v);
    return *out ? 0 : env_fail(e, CSTACK_ENOMEM, "out of memory");
}

/* contains / startsWith / endsWith: a text fragment, bound as given. */
static int text_filter(env *e, const cs_model *m, const cs_field *f, const op_def *op,
                       const jr_val *j, int flags, cstack_filter **out)
{
    if (!text_stored(f->type))
        return env_fail(e, CSTACK_EINVAL, "%s needs a text field; %s.%s is %s", op->name, m->name,
                        f->name, cs_scalar_name(f->type));
    if (!jr_is(j, JR_STRING))
        return env_fail(e, CSTACK_EVALIDATION, "expected a string to search for, got %s",
                        env_kind_name(j));
    *out = cstack_filter_cmp(f->name, op->op, flags, cstack_v_textn(jr_str(j), jr_len(j)));
    return *out ? 0 : env_fail(e, CSTACK_ENOMEM, "out of memory");
}

/* Reads "mode" of an operator object into *flags. */
static int read_mode(env *e, const cs_model *m, const cs_field *f, const jr_val *ops, int *flags)
{
    const jr_val *mode = jr_get(ops, "mode");
    if (!mode)
        return 0;
    size_t mark = env_path_key(e, "mode");
    if (jr_str_is(mode, "insensitive")) {
        if (f->type != CS_T_STRING && f->type != CS_T_CUID && f->type != CS_T_ENUM)
            env_fail(e, CSTACK_EINVAL,
                     "insensitive mode needs a String, Cuid or enum field; "
                     "%s.%s is %s",
                     m->name, f->name, cs_scalar_name(f->type));
        *flags |= CSTACK_CI;
    } else if (jr_str_is(mode, "default")) {
        *flags &= ~CSTACK_CI;
    } else {
        env_fail(e, CSTACK_EINVAL, "expected \"insensitive\" or \"default\"");
    }
    env_path_set(e, mark);
    return e->code;
}

static const op_def *find_op(const jr_val *key)
{
    for (size_t i = 0; i < NOPS; i++)
        if (env_name_is(OPS[i].name, jr_str(key), jr_len(key)))
            return &OPS[i];
    return NULL;
}

static int unknown_op(env *e, const jr_val *key)
{
    const char *names[NOPS];
    for (size_t i = 0; i < NOPS; i++)
        names[i] = OPS[i].name;
    char hint[128];
    return env_fail(
        e, CSTACK_EINVAL,
        "unknown operator (expected one of equals, not, in, notIn, lt, lte, gt, "
        "gte, contains, startsWith, endsWith, mode)%s",
        env_hint(hint, sizeof hint, env_suggest(jr_str(key), jr_len(key), names, NOPS)));
}

/* One operator of an operator object (the path is at the operator). */
static int one_op(env *e, const cs_model *m, const cs_field *f, const jr_val *key, const jr_val *v,
                  int flags, cstack_filter **out)
{
    const op_def *op = find_op(key);
    if (!op)
        return unknown_op(e, key);
    switch (op->kind) {
    case OPK_NOT:
        /* Prisma's "not" negates an operator object; a Json field compared
         * with an object compares values. */
        if (jr_is(v, JR_OBJECT) && f->type != CS_T_JSON) {
            cstack_filter *sub = NULL;
            if (op_filter(e, m, f, v, flags, &sub))
                return e->code;
            *out = negate(sub);
            return *out ? 0 : env_fail(e, CSTACK_ENOMEM, "out of memory");
        }
        return cmp_filter(e, f, op->op, v, flags, out);
    case OPK_IN:
        return in_filter(e, f, v, op->op == CSTACK_OP_NE, flags, out);
    case OPK_TEXT:
        return text_filter(e, m, f, op, v, flags, out);
    case OPK_LIST:
        return list_filter(e, m, f, op, v, out);
    case OPK_MODE:
        return 0; /* read by read_mode */
    case OPK_ISNULL: {
        static const jr_val JSON_NULL = {.type = JR_NULL};
        if (!jr_is(v, JR_TRUE) && !jr_is(v, JR_FALSE))
            return env_fail(e, CSTACK_EINVAL, "isNull expects true or false, got %s",
                            env_kind_name(v));
        return cmp_filter(e, f, jr_is(v, JR_TRUE) ? CSTACK_OP_EQ : CSTACK_OP_NE, &JSON_NULL,
                          flags, out);
    }
    default:
        return cmp_filter(e, f, op->op, v, flags, out);
    }
}

/* An operator object on field f; `flags` carries an enclosing mode. */
static int op_filter(env *e, const cs_model *m, const cs_field *f, const jr_val *ops, int flags,
                     cstack_filter **out)
{
    *out = NULL;
    if (read_mode(e, m, f, ops, &flags))
        return e->code;
    flist l = {0};
    jr_iter it = jr_iter_of(ops);
    for (const jr_val *key, *v; jr_iter_member(&it, &key, &v);) {
        if (jr_str_is(key, "mode"))
            continue;
        size_t mark = env_path_keyn(e, jr_str(key), jr_len(key));
        cstack_filter *one = NULL;
        int rc = one_op(e, m, f, key, v, flags, &one);
        if (!rc && one)
            rc = flist_push(e, &l, one);
        env_path_set(e, mark);
        if (rc) {
            flist_free(&l);
            return rc;
        }
    }
    return flist_done(e, &l, false, out);
}

/* A member of a where that names a scalar field. */
static int field_filter(env *e, const cs_model *m, const cs_field *f, const jr_val *v,
                        cstack_filter **out)
{
    /* An object is an operator object, except that a Json field compared
     * with an object must use {"equals": {...}} (said in docs/envelope.md). */
    if (jr_is(v, JR_OBJECT))
        return op_filter(e, m, f, v, 0, out);
    return cmp_filter(e, f, CSTACK_OP_EQ, v, 0, out);
}

/* ---- relations and combinators ------------------------------------------------ */

static int where_obj(env *e, const cs_model *m, const jr_val *j, cstack_filter **out);

static int rel_op(env *e, const cs_model *m, const cs_field *f, const jr_val *key, const jr_val *v,
                  cstack_filter **out)
{
    static const char *const names[] = {"is", "isNot", "some", "every", "none"};
    static const cstack_relop ops[] = {CSTACK_REL_IS, CSTACK_REL_IS_NOT, CSTACK_REL_SOME,
                                       CSTACK_REL_EVERY, CSTACK_REL_NONE};
    bool many = f->rel->to_many;
    size_t k = 0;
    while (k < 5 && !jr_str_is(key, names[k]))
        k++;
    if (k == 5 || (k >= 2) != many)
        return env_fail(e, CSTACK_EINVAL, "%s.%s is a to-%s relation: expected %s", m->name,
                        f->name, many ? "many" : "one",
                        many ? "some, every or none" : "is or isNot");
    const cs_model *tm = &e->schema->models[f->rel->target];
    if (jr_is(v, JR_NULL) && !many) {
        /* is: null -- no related row; isNot: null -- there is one. */
        *out = cstack_filter_rel(f->name, k == 0 ? CSTACK_REL_IS_NOT : CSTACK_REL_IS, NULL);
        return *out ? 0 : env_fail(e, CSTACK_ENOMEM, "out of memory");
    }
    cstack_filter *sub = NULL;
    if (where_obj(e, tm, v, &sub))
        return e->code;
    *out = cstack_filter_rel(f->name, ops[k], sub);
    return *out ? 0 : env_fail(e, CSTACK_ENOMEM, "out of memory");
}

static int rel_filter(env *e, const cs_model *m, const cs_field *f, const jr_val *v,
                      cstack_filter **out)
{
    *out = NULL;
    if (!jr_is(v, JR_OBJECT))
        return env_fail(e, CSTACK_EINVAL, "expected an object with %s, got %s",
                        f->rel->to_many ? "some, every or none" : "is or isNot", env_kind_name(v));
    flist l = {0};
    jr_iter it = jr_iter_of(v);
    for (const jr_val *key, *sub; jr_iter_member(&it, &key, &sub);) {
        size_t mark = env_path_keyn(e, jr_str(key), jr_len(key));
        cstack_filter *one = NULL;
        int rc = rel_op(e, m, f, key, sub, &one);
        if (!rc)
            rc = flist_push(e, &l, one);
        env_path_set(e, mark);
        if (rc) {
            flist_free(&l);
            return rc;
        }
    }
    return flist_done(e, &l, false, out);
}

/* AND / OR / NOT (`name` is its first letter): a where object or a list of
 * them. */
static int combinator(env *e, const cs_model *m, char name, const jr_val *v, cstack_filter **out)
{
    bool is_not = name == 'N', is_or = name == 'O';
    if (jr_is(v, JR_OBJECT)) {
        if (where_obj(e, m, v, out))
            return e->code;
        if (is_not) {
            *out = negate(*out);
            return *out ? 0 : env_fail(e, CSTACK_ENOMEM, "out of memory");
        }
        return 0;
    }
    if (!jr_is(v, JR_ARRAY))
        return env_fail(e, CSTACK_EINVAL, "expected a where object or a list of them, got %s",
                        env_kind_name(v));
    if (jr_size(v) > ENV_MAX_LIST)
        return env_fail(e, CSTACK_ETOOBIG, "%zu members; a list holds at most %d", jr_size(v),
                        ENV_MAX_LIST);
    flist l = {0};
    jr_iter it = jr_iter_of(v);
    const jr_val *item;
    for (size_t i = 0; (item = jr_iter_elem(&it)); i++) {
        size_t mark = env_path_index(e, i);
        cstack_filter *one = NULL;
        int rc = where_obj(e, m, item, &one);
        /* A member matching every row: dropped from AND, kept in OR (where
         * it makes the whole OR true), negated to "nothing" in NOT. */
        if (!rc && (one || is_or || is_not))
            rc = flist_push(e, &l, is_not ? negate(one) : one ? one : cstack_filter_and(NULL, 0));
        env_path_set(e, mark);
        if (rc) {
            flist_free(&l);
            return rc;
        }
    }
    return flist_done(e, &l, is_or, out);
}

static int where_member(env *e, const cs_model *m, const jr_val *key, const jr_val *v,
                        cstack_filter **out)
{
    if (jr_str_is(key, "AND") || jr_str_is(key, "OR") || jr_str_is(key, "NOT"))
        return combinator(e, m, jr_str(key)[0], v, out);
    const cs_field *f = env_field(e, m, jr_str(key), jr_len(key));
    if (!f)
        return e->code;
    if (f->type == CS_T_MODEL)
        return rel_filter(e, m, f, v, out);
    return field_filter(e, m, f, v, out);
}

static int where_obj(env *e, const cs_model *m, const jr_val *j, cstack_filter **out)
{
    *out = NULL;
    if (!jr_is(j, JR_OBJECT))
        return env_fail(e, CSTACK_EINVAL, "expected a where object, got %s", env_kind_name(j));
    flist l = {0};
    jr_iter it = jr_iter_of(j);
    for (const jr_val *key, *v; jr_iter_member(&it, &key, &v);) {
        size_t mark = env_path_keyn(e, jr_str(key), jr_len(key));
        cstack_filter *one = NULL;
        int rc = where_member(e, m, key, v, &one);
        if (!rc && one)
            rc = flist_push(e, &l, one);
        env_path_set(e, mark);
        if (rc) {
            flist_free(&l);
            return rc;
        }
    }
    return flist_done(e, &l, false, out);
}

int env_where(env *e, const cs_model *m, const jr_val *j, cstack_filter **out)
{
    *out = NULL;
    if (!j)
        return 0;
    size_t mark = env_path_key(e, "where");
    int rc = where_obj(e, m, j, out);
    env_path_set(e, mark);
    if (rc) {
        cstack_filter_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- orderBy, take, skip, select ---------------------------------------------- */

/* A scalar field named by `j` (a string) at the current path. */
static const cs_field *column_named(env *e, const cs_model *m, const jr_val *j)
{
    if (!jr_is(j, JR_STRING)) {
        env_fail(e, CSTACK_EINVAL, "expected a field name, got %s", env_kind_name(j));
        return NULL;
    }
    const cs_field *f = env_field(e, m, jr_str(j), jr_len(j));
    if (f && !cs_field_is_column(f)) {
        env_fail(e, CSTACK_EINVAL, "%s.%s is a relation, not a scalar field", m->name, f->name);
        return NULL;
    }
    return f;
}

static int order_item(env *e, const cs_model *m, const jr_val *j, cstack_order *out)
{
    static const char *const keys[] = {"field", "direction", NULL};
    static const char *const required[] = {"field", NULL};
    if (!jr_is(j, JR_OBJECT))
        return env_fail(e, CSTACK_EINVAL,
                        "expected {\"field\": NAME, \"direction\": \"asc\"|\"desc\"}, got %s",
                        env_kind_name(j));
    if (env_check_keys(e, j, keys, required))
        return e->code;
    size_t mark = env_path_key(e, "field");
    const cs_field *f = column_named(e, m, jr_get(j, "field"));
    env_path_set(e, mark);
    if (!f)
        return e->code;
    out->field = f->name;
    out->desc = 0;
    const jr_val *dir = jr_get(j, "direction");
    if (dir) {
        mark = env_path_key(e, "direction");
        if (jr_str_is(dir, "desc"))
            out->desc = 1;
        else if (!jr_str_is(dir, "asc"))
            env_fail(e, CSTACK_EINVAL, "expected \"asc\" or \"desc\"");
        env_path_set(e, mark);
    }
    return e->code;
}

int env_order(env *e, const cs_model *m, const jr_val *j, const cstack_order **out, size_t *nout)
{
    bool list = jr_is(j, JR_ARRAY);
    size_t n = list ? jr_size(j) : 1;
    if (n > m->nfields) /* ordering by a field twice adds nothing */
        return env_fail(e, CSTACK_EINVAL, "%zu orderings; model %s has %zu fields", n, m->name,
                        m->nfields);
    cstack_order *items = env_alloc(e, n, sizeof *items);
    if (!items)
        return e->code;
    jr_iter it = list ? jr_iter_of(j) : (jr_iter){0};
    for (size_t i = 0; i < n; i++) {
        size_t mark = list ? env_path_index(e, i) : e->npath;
        int rc = order_item(e, m, list ? jr_iter_elem(&it) : j, &items[i]);
        env_path_set(e, mark);
        if (rc)
            return rc;
    }
    *out = items;
    *nout = n;
    return 0;
}

/* take / skip: a non-negative integer. */
static int read_count(env *e, const jr_val *j, int64_t *out)
{
    env_number num;
    if (!env_get_number(j, &num))
        return env_fail(e, CSTACK_EINVAL, "expected a non-negative integer, got %s",
                        env_kind_name(j));
    if (!num.is_int || num.i < 0)
        return env_fail(e, CSTACK_EINVAL, "expected a non-negative integer, got %.*s",
                        (int)(num.len > 40 ? 40 : num.len), num.text);
    *out = num.i;
    return 0;
}

int env_select(env *e, const cs_model *m, const jr_val *j, const char *const **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!jr_is(j, JR_ARRAY) || jr_size(j) == 0)
        return env_fail(e, CSTACK_EINVAL, "expected a non-empty list of field names, got %s",
                        jr_is(j, JR_ARRAY) ? "an empty list" : env_kind_name(j));
    size_t count = jr_size(j);
    if (count > m->nfields)
        return env_fail(e, CSTACK_EINVAL, "%zu names for a model of %zu fields", count, m->nfields);
    const char **names = env_alloc(e, count, sizeof *names);
    if (!names)
        return e->code;
    jr_iter it = jr_iter_of(j);
    for (size_t i = 0; i < count; i++) {
        size_t mark = env_path_index(e, i);
        const cs_field *f = column_named(e, m, jr_iter_elem(&it));
        for (size_t k = 0; f && k < i; k++)
            if (names[k] == f->name)
                env_fail(e, CSTACK_EINVAL, "field '%s' is listed twice", f->name);
        env_path_set(e, mark);
        if (e->code)
            return e->code;
        names[i] = f->name;
    }
    *out = names;
    *n = count;
    return 0;
}

int env_field_list(env *e, const cs_model *m, const jr_val *j, bool numeric,
                   const char *const **out, size_t *n)
{
    if (env_select(e, m, j, out, n))
        return e->code;
    for (size_t i = 0; i < *n; i++) {
        const cs_field *f = &m->fields[cs_field_find(m, (*out)[i])];
        bool ok = numeric ? f->type == CS_T_INT || f->type == CS_T_FLOAT || f->type == CS_T_DECIMAL
                          : f->type != CS_T_JSON && f->type != CS_T_BYTES;
        if (!ok) {
            size_t mark = env_path_index(e, i);
            env_fail(e, CSTACK_EINVAL, "%s.%s is %s, which %s", m->name, f->name,
                     cs_scalar_name(f->type), numeric ? "is not a number" : "has no order");
            env_path_set(e, mark);
            return e->code;
        }
    }
    return 0;
}

/* Reads one member of a find payload (the path is at the member). */
static int query_member(env *e, const cs_model *m, const jr_val *key, const jr_val *v,
                        env_query *out)
{
    if (jr_str_is(key, "orderBy"))
        return env_order(e, m, v, &out->q.order_by, &out->q.n_order);
    if (jr_str_is(key, "take")) {
        if (read_count(e, v, &out->q.take))
            return e->code;
        out->take_zero = out->q.take == 0;
        return 0;
    }
    if (jr_str_is(key, "skip"))
        return read_count(e, v, &out->q.skip);
    if (jr_str_is(key, "cursor"))
        return env_data(e, m, v, ENV_DATA_UNIQUE, &out->q.cursor);
    if (jr_str_is(key, "select"))
        return env_select(e, m, v, &out->q.select, &out->q.n_select);
    return 0; /* "where" is read separately; other keys were refused */
}

int env_query_read(env *e, const cs_model *m, const jr_val *payload, env_query *out)
{
    memset(out, 0, sizeof *out);
    if (env_where(e, m, jr_get(payload, "where"), &out->where))
        return e->code;
    out->q.where = out->where;
    jr_iter it = jr_iter_of(payload);
    for (const jr_val *key, *v; jr_iter_member(&it, &key, &v);) {
        size_t mark = env_path_keyn(e, jr_str(key), jr_len(key));
        int rc = query_member(e, m, key, v, out);
        env_path_set(e, mark);
        if (rc)
            return rc;
    }
    if (out->take_zero)
        out->q.take = 1; /* still run (and check) the query, return no rows */
    return 0;
}

void env_query_free(env_query *q)
{
    cstack_filter_free(q->where);
    q->where = NULL;
}
