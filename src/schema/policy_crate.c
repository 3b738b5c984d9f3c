/*
 * policy_crate.c -- CrateStack's spellings of policy forms, rewritten while
 * parsing into the cstack forms that mean the same, so the validator, the
 * canonical text and every evaluator (SQL rendering on the server and the
 * client) see only one language:
 *
 *   hasRole('x'), auth().hasRole('x')   auth().role == "x"
 *   auth().isSystem()                   false: no caller of the embedded
 *                                       runtime or of the sync server is
 *                                       CrateStack's system principal
 *   rel.some.x == y                     rel?[x == y]   (every: !, none: ^)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

static cs_expr *string_arg(cs_parse *p, const char *fn)
{
    cs_next(p); /* ( */
    const cs_token *t = cs_peek(p);
    if (t->kind != T_STRING) {
        char what[64];
        snprintf(what, sizeof what, "a role name string in %s(...)", fn);
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

static cs_expr *has_role(cs_parse *p, cs_pos pos)
{
    cs_expr *role = string_arg(p, "hasRole");
    cs_expr *field = role ? cs_new_expr(p, CS_E_AUTH_FIELD, pos) : NULL;
    cs_expr *eq = field ? cs_new_expr(p, CS_E_BINARY, pos) : NULL;
    if (!eq || !(field->text = cs_xstrdup(p, "role"))) {
        cs_expr_free(role);
        cs_expr_free(field);
        cs_expr_free(eq);
        return NULL;
    }
    field->bval = true; /* for check_auth's message when there is no role */
    eq->op = CS_OP_EQ;
    eq->lhs = field;
    eq->rhs = role;
    return eq;
}

cs_expr *cs_crate_auth_call(cs_parse *p, const cs_token *name, cs_pos pos)
{
    if (cs_tok_is(name, "hasRole"))
        return has_role(p, pos);
    if (cs_tok_is(name, "isSystem")) {
        cs_next(p);
        if (!cs_accept(p, T_RPAREN)) {
            cs_err_expected(p, "')': isSystem() takes no arguments");
            return NULL;
        }
        return cs_new_expr(p, CS_E_BOOL, pos); /* bval false */
    }
    cs_syntax(p, name->pos,
              "unknown auth() method '%.*s()' (expected hasRole('role') or isSystem(); "
              "auth().field reads a field)",
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
