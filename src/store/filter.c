/* filter.c -- the public filter builders (a tree checked when it is used). */
#include <stdlib.h>
#include <string.h>

#include "store/filter.h"
#include "util/buf.h"


static cstack_filter *node(cs_filter_kind kind, const char *field)
{
    cstack_filter *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->kind = kind;
    if (field) {
        f->field = cs_strdup(field);
        if (!f->field) {
            free(f);
            return NULL;
        }
    }
    return f;
}

/* Copies the bytes a value points to, so the filter owns them. */
static int own_value(cstack_value *v, char **owned)
{
    *owned = NULL;
    if (v->type != CSTACK_TEXT && v->type != CSTACK_BLOB)
        return 0;
    if (!v->u.s.p && v->u.s.n)
        return CSTACK_EMISUSE;
    char *p = malloc(v->u.s.n + 1);
    if (!p)
        return CSTACK_ENOMEM;
    if (v->u.s.n)
        memcpy(p, v->u.s.p, v->u.s.n);
    p[v->u.s.n] = 0;
    v->u.s.p = p;
    *owned = p;
    return 0;
}

cstack_filter *cstack_filter_cmp(const char *field, cstack_op op, int flags, cstack_value value)
{
    if (!field)
        return NULL;
    cstack_filter *f = node(CS_F_CMP, field);
    if (!f)
        return NULL;
    f->op = op;
    f->flags = flags;
    f->nvals = 1;
    f->vals = calloc(1, sizeof *f->vals);
    f->owned = calloc(1, sizeof *f->owned);
    f->vals[0] = value;
    if (!f->vals || !f->owned || own_value(&f->vals[0], &f->owned[0])) {
        cstack_filter_free(f);
        return NULL;
    }
    return f;
}

cstack_filter *cstack_filter_in(const char *field, int negate, const cstack_value *values,
                                size_t n)
{
    if (!field || (n && !values))
        return NULL;
    cstack_filter *f = node(CS_F_IN, field);
    if (!f)
        return NULL;
    f->negate = negate != 0;
    f->nvals = n;
    f->vals = calloc(n ? n : 1, sizeof *f->vals);
    f->owned = calloc(n ? n : 1, sizeof *f->owned);
    if (!f->vals || !f->owned) {
        cstack_filter_free(f);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        f->vals[i] = values[i];
        if (own_value(&f->vals[i], &f->owned[i])) {
            cstack_filter_free(f);
            return NULL;
        }
    }
    return f;
}

cstack_filter *cstack_filter_is_null(const char *field, int is_null)
{
    if (!field)
        return NULL;
    cstack_filter *f = node(CS_F_NULL, field);
    if (f)
        f->negate = !is_null;
    return f;
}

static cstack_filter *combine(cs_filter_kind kind, cstack_filter *const *children, size_t n)
{
    cstack_filter *f = node(kind, NULL);
    bool bad = !f || (n && !children);
    if (f && n) {
        f->kids = calloc(n, sizeof *f->kids);
        bad = bad || !f->kids;
    }
    for (size_t i = 0; children && i < n; i++) {
        if (!children[i])
            bad = true;
        if (f && f->kids)
            f->kids[f->nkids++] = children[i];
        else
            cstack_filter_free(children[i]);
    }
    if (bad) {
        cstack_filter_free(f);
        return NULL;
    }
    return f;
}

cstack_filter *cstack_filter_and(cstack_filter *const *children, size_t n)
{
    return combine(CS_F_AND, children, n);
}

cstack_filter *cstack_filter_or(cstack_filter *const *children, size_t n)
{
    return combine(CS_F_OR, children, n);
}

cstack_filter *cstack_filter_and2(cstack_filter *a, cstack_filter *b)
{
    cstack_filter *kids[2] = {a, b};
    return combine(CS_F_AND, kids, 2);
}

cstack_filter *cstack_filter_or2(cstack_filter *a, cstack_filter *b)
{
    cstack_filter *kids[2] = {a, b};
    return combine(CS_F_OR, kids, 2);
}

cstack_filter *cstack_filter_not(cstack_filter *child)
{
    cstack_filter *kids[1] = {child};
    return combine(CS_F_NOT, kids, 1);
}

cstack_filter *cstack_filter_rel(const char *relation, cstack_relop op, cstack_filter *sub)
{
    cstack_filter *f = relation ? node(CS_F_REL, relation) : NULL;
    if (!f) {
        cstack_filter_free(sub);
        return NULL;
    }
    f->relop = op;
    if (sub) {
        f->kids = calloc(1, sizeof *f->kids);
        if (!f->kids) {
            cstack_filter_free(sub);
            cstack_filter_free(f);
            return NULL;
        }
        f->kids[0] = sub;
        f->nkids = 1;
    }
    return f;
}

void cstack_filter_free(cstack_filter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nkids; i++)
        cstack_filter_free(f->kids[i]);
    for (size_t i = 0; f->owned && i < f->nvals; i++)
        free(f->owned[i]);
    free(f->owned);
    free(f->vals);
    free(f->kids);
    free(f->field);
    free(f);
}
