/*
 * policy_crate.c -- CrateStack's spellings of policy forms, rewritten while
 * parsing into the cstack forms that mean the same, so the validator, the
 * canonical text and every evaluator (SQL rendering on the server and the
 * client) see only one language:
 *
 *   hasRole('x'), auth().hasRole('x')   auth().role == "x", or
 *                                       auth().actor.role == "x" (below)
 *   inTenant('t'), auth().inTenant('t') auth().tenant.id == "t"
 *   auth().isSystem()                   false: no caller of the embedded
 *                                       runtime or of the sync server is
 *                                       CrateStack's system principal
 *   rel.some.x == y                     rel?[x == y]   (every: !, none: ^)
 *   x in [a, b]                         (x == a || x == b)
 *   x not in [a, b]                     !(x == a || x == b)
 *
 * hasRole() reads CrateStack's `role` claim, or `actor.role` when there is
 * no `role` (CrateStack's structured principal).  Which auth fields exist is
 * known only once the whole file is parsed, so the parser writes
 * `auth().role == "x"` with the auth node marked (bval) and
 * cs_crate_role_fallback picks the field while validating: `role` when the
 * auth block has it, `actor.role` when only that exists, and when both do,
 * `role` first as CrateStack does:
 *   auth().role == "x" || (auth().role == null && auth().actor.role == "x")
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

static cs_expr *string_arg(cs_parse *p, const char *fn, const char *arg)
{
    cs_next(p); /* ( */
    const cs_token *t = cs_peek(p);
    if (t->kind != T_STRING) {
        char what[64];
        snprintf(what, sizeof what, "a %s string in %s(...)", arg, fn);
        cs_err_expected(p, what);
        return NULL;
    }
    cs_next(p);
    if (!cs_accept(p, T_RPAREN)) {
        cs_err_expected(p, "')'");
        return NULL;
    }
    cs_expr *e = cs_new_expr(p, CS_E_STRING, t->pos);
    if (e && !(e->text = cs_tok_strdup(p, t))) {
        cs_expr_free(e);
        return NULL;
    }
    return e;
}

/* auth().NAME == VALUE, VALUE a string (taken) or NULL for the null
 * literal; NULL on OOM. */
static cs_expr *auth_eq(cs_parse *p, cs_pos pos, const char *name, cs_expr *value)
{
    cs_expr *field = cs_new_expr(p, CS_E_AUTH_FIELD, pos);
    cs_expr *eq = field ? cs_new_expr(p, CS_E_BINARY, pos) : NULL;
    if (!value)
        value = eq ? cs_new_expr(p, CS_E_NULL, pos) : NULL;
    if (!value || !eq || !(field->text = cs_xstrdup(p, name))) {
        cs_expr_free(value);
        cs_expr_free(field);
        cs_expr_free(eq);
        return NULL;
    }
    eq->op = CS_OP_EQ;
    eq->lhs = field;
    eq->rhs = value;
    return eq;
}

/* hasRole('x') -> auth().role == "x", inTenant('t') -> auth().tenant.id ==
 * "t"; the auth node is marked for cs_crate_role_fallback and for the
 * messages of cs_check_auth. */
static cs_expr *auth_term(cs_parse *p, cs_pos pos, bool role)
{
    cs_expr *v = string_arg(p, role ? "hasRole" : "inTenant", role ? "role name" : "tenant id");
    cs_expr *eq = v ? auth_eq(p, pos, role ? "role" : "tenant.id", v) : NULL;
    if (eq)
        eq->lhs->bval = true;
    return eq;
}

bool cs_crate_role_fallback(cs_parse *p, cs_expr *e)
{
    if (e->op != CS_OP_EQ || e->lhs->kind != CS_E_AUTH_FIELD || !e->lhs->bval ||
        strcmp(e->lhs->text, "role") != 0 || !cs_auth_has(p, "actor.role"))
        return true;
    if (!cs_auth_has(p, "role")) {
        char *t = cs_xstrdup(p, "actor.role");
        if (!t)
            return false;
        free(e->lhs->text);
        e->lhs->text = t;
        return true;
    }
    cs_expr *x2 = cs_new_expr(p, CS_E_STRING, e->rhs->pos);
    if (!x2 || !(x2->text = cs_xstrdup(p, e->rhs->text))) {
        cs_expr_free(x2);
        return false;
    }
    cs_expr *actor = auth_eq(p, e->pos, "actor.role", x2);
    cs_expr *unset = actor ? auth_eq(p, e->pos, "role", NULL) : NULL;
    cs_expr *first = unset ? cs_new_expr(p, CS_E_BINARY, e->pos) : NULL;
    cs_expr *rest = first ? cs_new_expr(p, CS_E_BINARY, e->pos) : NULL;
    if (!rest) {
        cs_expr_free(actor);
        cs_expr_free(unset);
        cs_expr_free(first);
        return false;
    }
    first->op = CS_OP_EQ;
    first->lhs = e->lhs;
    first->rhs = e->rhs;
    first->lhs->bval = false;
    rest->op = CS_OP_AND;
    rest->lhs = unset;
    rest->rhs = actor;
    e->op = CS_OP_OR;
    e->lhs = first;
    e->rhs = rest;
    return true;
}

cs_expr *cs_crate_auth_call(cs_parse *p, const cs_token *name, cs_pos pos)
{
    if (cs_tok_is(name, "hasRole") || cs_tok_is(name, "inTenant"))
        return auth_term(p, pos, cs_tok_is(name, "hasRole"));
    if (cs_tok_is(name, "isSystem")) {
        cs_next(p);
        if (!cs_accept(p, T_RPAREN)) {
            cs_err_expected(p, "')': isSystem() takes no arguments");
            return NULL;
        }
        return cs_new_expr(p, CS_E_BOOL, pos); /* bval false */
    }
    cs_syntax(p, name->pos,
              "unknown auth() method '%.*s()' (expected hasRole('role'), inTenant('id') or "
              "isSystem(); auth().field reads a field)",
              name->len > 40 ? 40 : (int)name->len, name->start);
    return NULL;
}

size_t cs_crate_quantifier_at(const cs_expr *e)
{
    for (size_t i = 1; i + 1 < e->npath; i++)
        if (strcmp(e->path[i], "some") == 0 || strcmp(e->path[i], "every") == 0 ||
            strcmp(e->path[i], "none") == 0)
            return i;
    return 0;
}

/* The comparison after `rel.some.x`, if any, becomes part of the predicate. */
static cs_expr *predicate(cs_parse *p, cs_expr *inner, int *h)
{
    cs_tok_kind k = cs_peek(p)->kind;
    if (k < T_EQ || k > T_GE)
        return inner;
    const cs_token *ot = cs_next(p);
    cs_expr *rhs = cs_parse_operand(p, h);
    cs_expr *b = rhs ? cs_new_expr(p, CS_E_BINARY, ot->pos) : NULL;
    if (!b) {
        cs_expr_free(inner);
        cs_expr_free(rhs);
        return NULL;
    }
    b->op = (cs_binop)(CS_OP_EQ + (k - T_EQ));
    b->lhs = inner;
    b->rhs = rhs;
    return b;
}

cs_expr *cs_crate_quantified(cs_parse *p, cs_expr *e, int *h)
{
    size_t q = cs_crate_quantifier_at(e);
    const char *w = e->path[q];
    cs_expr *inner = cs_new_expr(p, CS_E_FIELD, e->pos);
    if (!inner) {
        cs_expr_free(e);
        return NULL;
    }
    /* Move the segments after the quantifier into the inner path. */
    inner->path = malloc((e->npath - q - 1) * sizeof *inner->path);
    if (!inner->path) {
        p->oom = true;
        cs_expr_free(inner);
        cs_expr_free(e);
        return NULL;
    }
    for (size_t i = q + 1; i < e->npath; i++)
        inner->path[inner->npath++] = e->path[i];
    e->kind = w[0] == 's' ? CS_E_SOME : w[0] == 'e' ? CS_E_EVERY : CS_E_NONE;
    free(e->path[q]);
    e->npath = q;
    int hh = 0;
    e->lhs = predicate(p, inner, &hh);
    if (!e->lhs) {
        cs_expr_free(e);
        return NULL;
    }
    *h = hh + 2;
    return e;
}

/* ---- x in [a, b, ...] ----------------------------------------------------- */

bool cs_at_in(const cs_parse *p)
{
    const cs_token *t = &p->toks[p->cur];
    return cs_tok_is(t, "in") || (cs_tok_is(t, "not") && cs_tok_is(&t[1], "in"));
}

/* One `x == v` for member v; x is lhs for the first member and parsed
 * again from its tokens (at lstart) for the others, so each comparison
 * owns its copy. */
static cs_expr *in_member(cs_parse *p, cs_expr **lhs, size_t lstart, cs_pos op, int *hv)
{
    cs_expr *v = cs_parse_operand(p, hv);
    cs_expr *x = *lhs;
    *lhs = NULL;
    if (v && !x) {
        size_t after = p->cur;
        int hx = 0;
        p->cur = lstart;
        x = cs_parse_operand(p, &hx);
        p->cur = after;
    }
    cs_expr *eq = v && x ? cs_new_expr(p, CS_E_BINARY, op) : NULL;
    if (!eq) {
        cs_expr_free(v);
        cs_expr_free(x);
        return NULL;
    }
    eq->op = CS_OP_EQ;
    eq->lhs = x;
    eq->rhs = v;
    return eq;
}

cs_expr *cs_parse_in(cs_parse *p, cs_expr *lhs, size_t lstart, int *h)
{
    const cs_token *op = cs_next(p);
    bool negate = cs_tok_is(op, "not") && cs_next(p);
    cs_expr *acc = NULL;
    size_t n = 0;
    int hv = 0;
    bool ok = cs_accept(p, T_LBRACK);
    if (!ok)
        cs_err_expected(p, "'[' and the values after 'in'");
    while (ok && !cs_accept(p, T_RBRACK)) {
        int hm = 0;
        cs_expr *eq = in_member(p, &lhs, lstart, op->pos, &hm);
        hv = hv > hm ? hv : hm;
        cs_expr *or = eq && acc ? cs_new_expr(p, CS_E_BINARY, op->pos) : NULL;
        if (or) {
            or->op = CS_OP_OR;
            or->lhs = acc;
            or->rhs = eq;
        }
        ok = eq && (!acc || or);
        if (!ok)
            cs_expr_free(eq);
        else
            acc = acc ? or : eq;
        n++;
        if (ok && !cs_accept(p, T_COMMA) && cs_peek(p)->kind != T_RBRACK) {
            cs_err_expected(p, "',' or ']'");
            ok = false;
        }
    }
    if (ok && n == 0) {
        cs_syntax(p, op->pos, "'in' needs at least one value");
        ok = false;
    }
    /* The OR chain is n deep on top of its operands. */
    *h = (*h > hv ? *h : hv) + (int)n + 1;
    cs_expr *e = ok && negate ? cs_new_expr(p, CS_E_NOT, op->pos) : NULL;
    if (e)
        e->lhs = acc;
    if (!ok || cs_expr_too_deep(p, *h, op->pos) || (negate && !e)) {
        cs_expr_free(lhs);
        cs_expr_free(e ? e : acc);
        return NULL;
    }
    return negate ? e : acc;
}
