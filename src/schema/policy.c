/*
 * policy.c -- @@allow / @@deny expressions: parsing, type checking and
 * canonical printing.
 *
 * Precedence, loosest first:  ||   &&   == != < <= > >=   !   primary.
 * Primary: literals (true false null, numbers, strings), `auth()`,
 * `auth().field`, `(expr)`, field paths `a.b.c` through to-one relations,
 * to-many predicates `rel?[expr]` (some), `rel![expr]` (every), `rel^[expr]`
 * (none), and bare enum member names.
 *
 * Nesting is bounded (CS_MAX_EXPR_DEPTH) both while parsing (recursion) and
 * in the height of the tree (long operator chains), so every later recursive
 * walk over an expression is bounded too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"
#include "value/value.h"

void cs_expr_free(cs_expr *e)
{
    if (!e)
        return;
    cs_expr_free(e->lhs);
    cs_expr_free(e->rhs);
    for (size_t i = 0; i < e->npath; i++)
        free(e->path[i]);
    free(e->path);
    free(e->text);
    free(e->seg_pos);
    free(e);
}

/* ---- parsing ------------------------------------------------------------ */

cs_expr *cs_new_expr(cs_parse *p, cs_expr_kind k, cs_pos pos)
{
    cs_expr *e = calloc(1, sizeof(*e));
    if (!e) {
        p->oom = true;
        return NULL;
    }
    e->kind = k;
    e->pos = pos;
    e->type_index = -1;
    return e;
}

static cs_expr *parse_or(cs_parse *p, int *h);

#define parse_unary cs_parse_operand

#define too_deep cs_expr_too_deep

bool cs_expr_too_deep(cs_parse *p, int h, cs_pos pos)
{
    if (h <= CS_MAX_EXPR_DEPTH)
        return false;
    cs_diag(p->diags, pos, "policy expression is nested too deeply (limit %d levels)",
            CS_MAX_EXPR_DEPTH);
    return true;
}

static bool path_push(cs_parse *p, cs_expr *e, const cs_token *t)
{
    char **slot = cs_push(p, &e->path, e->npath, sizeof(*slot));
    if (!slot || !(*slot = cs_tok_strdup(p, t)))
        return false;
    e->npath++;
    return true;
}

static void err_expr(cs_parse *p, const char *what)
{
    cs_err_expected(p, what);
}

/* Appends segment t of auth().a.b... to e (text joined with dots). */
static bool auth_segment(cs_parse *p, cs_expr *e, const cs_token *t)
{
    cs_buf b = CS_BUF_INIT;
    cs_pos *pos = cs_push(p, &e->seg_pos, e->nseg, sizeof *pos);
    char *text = NULL;
    if (pos && !(e->text && cs_buf_printf(&b, "%s.", e->text)) &&
        !cs_buf_append(&b, t->start, t->len))
        text = cs_buf_take(&b);
    cs_buf_free(&b);
    if (!text) {
        p->oom = true;
        return false;
    }
    *pos = t->pos;
    e->nseg++;
    free(e->text);
    e->text = text;
    return true;
}

/* `auth()`, `auth().field` or a claim's member `auth().field.member...`
 * (composite auth fields); the `auth` token is consumed. */
static cs_expr *parse_auth(cs_parse *p, cs_pos pos)
{
    cs_next(p); /* ( */
    if (!cs_accept(p, T_RPAREN)) {
        err_expr(p, "')' after 'auth('");
        return NULL;
    }
    if (!cs_accept(p, T_DOT))
        return cs_new_expr(p, CS_E_AUTH, pos);
    const cs_token *t = cs_peek(p);
    if (t->kind != T_IDENT) {
        err_expr(p, "a field name after 'auth().'");
        return NULL;
    }
    cs_next(p);
    if (cs_peek(p)->kind == T_LPAREN)
        return cs_crate_auth_call(p, t, pos);
    cs_expr *e = cs_new_expr(p, CS_E_AUTH_FIELD, pos);
    if (!e || !auth_segment(p, e, t))
        goto fail;
    while (cs_accept(p, T_DOT)) {
        if (cs_peek(p)->kind != T_IDENT) {
            err_expr(p, "a member name after '.'");
            goto fail;
        }
        if (!auth_segment(p, e, cs_next(p)))
            goto fail;
    }
    return e;
fail:
    cs_expr_free(e);
    return NULL;
}

/* A field path, possibly followed by a to-many predicate. */
static cs_expr *parse_path(cs_parse *p, int *h)
{
    const cs_token *t = cs_next(p);
    cs_expr *e = cs_new_expr(p, CS_E_FIELD, t->pos);
    if (!e || !path_push(p, e, t))
        goto fail;
    while (cs_accept(p, T_DOT)) {
        if (cs_peek(p)->kind != T_IDENT) {
            err_expr(p, "a field name after '.'");
            goto fail;
        }
        if (!path_push(p, e, cs_next(p)))
            goto fail;
    }
    if (cs_crate_quantifier_at(e) > 0)
        return cs_crate_quantified(p, e, h);
    cs_tok_kind k = cs_peek(p)->kind;
    if ((k == T_QUEST || k == T_BANG || k == T_CARET) && p->toks[p->cur + 1].kind == T_LBRACK) {
        e->kind = k == T_QUEST ? CS_E_SOME : k == T_BANG ? CS_E_EVERY : CS_E_NONE;
        cs_next(p);
        cs_next(p);
        int hh = 0;
        e->lhs = parse_or(p, &hh);
        if (!e->lhs)
            goto fail;
        if (!cs_accept(p, T_RBRACK)) {
            err_expr(p, "']' or an operator");
            goto fail;
        }
        *h = hh + 1;
    }
    return e;
fail:
    cs_expr_free(e);
    return NULL;
}

static cs_expr *parse_primary(cs_parse *p, int *h)
{
    const cs_token *t = cs_peek(p);
    *h = 1;
    if (t->kind == T_LPAREN) {
        cs_next(p);
        cs_expr *e = parse_or(p, h);
        if (e && !cs_accept(p, T_RPAREN)) {
            err_expr(p, "')' or an operator");
            cs_expr_free(e);
            return NULL;
        }
        return e;
    }
    if (t->kind == T_NUMBER || t->kind == T_STRING) {
        cs_next(p);
        cs_expr *e = cs_new_expr(p, t->kind == T_NUMBER ? CS_E_NUMBER : CS_E_STRING, t->pos);
        if (e && !(e->text = cs_tok_strdup(p, t))) {
            cs_expr_free(e);
            return NULL;
        }
        return e;
    }
    if (t->kind != T_IDENT) {
        err_expr(p, "an expression");
        return NULL;
    }
    if (cs_tok_is(t, "true") || cs_tok_is(t, "false") || cs_tok_is(t, "null")) {
        cs_next(p);
        cs_expr *e = cs_new_expr(p, cs_tok_is(t, "null") ? CS_E_NULL : CS_E_BOOL, t->pos);
        if (e)
            e->bval = cs_tok_is(t, "true");
        return e;
    }
    if (cs_tok_is(t, "auth") && p->toks[p->cur + 1].kind == T_LPAREN) {
        cs_next(p);
        return parse_auth(p, t->pos);
    }
    if ((cs_tok_is(t, "hasRole") || cs_tok_is(t, "inTenant")) &&
        p->toks[p->cur + 1].kind == T_LPAREN) {
        cs_next(p);
        return cs_crate_auth_call(p, t, t->pos);
    }
    return parse_path(p, h);
}

cs_expr *parse_unary(cs_parse *p, int *h)
{
    const cs_token *t = cs_peek(p);
    if (++p->depth > CS_MAX_EXPR_DEPTH) {
        too_deep(p, p->depth, t->pos);
        p->depth--;
        return NULL;
    }
    cs_expr *e;
    if (t->kind == T_BANG) {
        cs_next(p);
        e = cs_new_expr(p, CS_E_NOT, t->pos);
        if (e && !(e->lhs = parse_unary(p, h))) {
            cs_expr_free(e);
            e = NULL;
        }
        (*h)++;
    } else {
        e = parse_primary(p, h);
    }
    p->depth--;
    return e;
}

/* One left-associative level: operand (op operand)*. */
static cs_expr *binary_level(cs_parse *p, int *h, int level)
{
    size_t start = p->cur;
    cs_expr *lhs = level == 0   ? binary_level(p, h, 1)
                   : level == 1 ? binary_level(p, h, 2)
                                : parse_unary(p, h);
    if (lhs && level == 2 && cs_at_in(p))
        lhs = cs_parse_in(p, lhs, start, h);
    while (lhs) {
        cs_tok_kind k = cs_peek(p)->kind;
        cs_binop op;
        if (level == 0 && k == T_OR)
            op = CS_OP_OR;
        else if (level == 1 && k == T_AND)
            op = CS_OP_AND;
        else if (level == 2 && k >= T_EQ && k <= T_GE)
            op = (cs_binop)(CS_OP_EQ + (k - T_EQ));
        else
            break;
        const cs_token *ot = cs_next(p);
        int hr = 0;
        cs_expr *rhs = level == 0   ? binary_level(p, &hr, 1)
                       : level == 1 ? binary_level(p, &hr, 2)
                                    : parse_unary(p, &hr);
        cs_expr *e = rhs ? cs_new_expr(p, CS_E_BINARY, ot->pos) : NULL;
        *h = (*h > hr ? *h : hr) + 1;
        if (!e || too_deep(p, *h, ot->pos)) {
            cs_expr_free(lhs);
            cs_expr_free(rhs);
            cs_expr_free(e);
            return NULL;
        }
        e->op = op;
        e->lhs = lhs;
        e->rhs = rhs;
        lhs = e;
    }
    return lhs;
}

static cs_expr *parse_or(cs_parse *p, int *h)
{
    return binary_level(p, h, 0);
}

cs_expr *cs_parse_expr(cs_parse *p)
{
    int h = 0;
    p->depth = 0;
    return parse_or(p, &h);
}

/* ---- canonical text ----------------------------------------------------- */

static const char *const binop_text[] = {"==", "!=", "<", "<=", ">", ">=", "&&", "||"};

static int put_path(cs_buf *b, const cs_expr *e)
{
    int rc = 0;
    for (size_t i = 0; i < e->npath && rc == 0; i++)
        rc = cs_buf_printf(b, "%s%s", i ? "." : "", e->path[i]);
    return rc;
}

/* Fully parenthesised, so the text is unambiguous whatever the layout. */
int cs_expr_canon(cs_buf *b, const cs_expr *e)
{
    int rc;
    switch (e->kind) {
    case CS_E_NULL:
        return cs_buf_puts(b, "null");
    case CS_E_BOOL:
        return cs_buf_puts(b, e->bval ? "true" : "false");
    case CS_E_NUMBER:
    case CS_E_ENUM:
        return cs_buf_puts(b, e->text);
    case CS_E_STRING:
        return cs_buf_json_str(b, e->text, strlen(e->text));
    case CS_E_FIELD:
        return put_path(b, e);
    case CS_E_AUTH:
        return cs_buf_puts(b, "auth()");
    case CS_E_AUTH_FIELD:
        return cs_buf_printf(b, "auth().%s", e->text);
    case CS_E_NOT:
        rc = cs_buf_puts(b, "!");
        return rc ? rc : cs_expr_canon(b, e->lhs);
    case CS_E_BINARY:
        rc = cs_buf_putc(b, '(');
        if (!rc)
            rc = cs_expr_canon(b, e->lhs);
        if (!rc)
            rc = cs_buf_printf(b, " %s ", binop_text[e->op]);
        if (!rc)
            rc = cs_expr_canon(b, e->rhs);
        return rc ? rc : cs_buf_putc(b, ')');
    case CS_E_SOME:
    case CS_E_EVERY:
    case CS_E_NONE:
        rc = put_path(b, e);
        if (!rc)
            rc = cs_buf_puts(b, e->kind == CS_E_SOME ? "?[" : e->kind == CS_E_EVERY ? "![" : "^[");
        if (!rc)
            rc = cs_expr_canon(b, e->lhs);
        return rc ? rc : cs_buf_putc(b, ']');
    }
    return 0;
}

/* ---- type checking ------------------------------------------------------- */

typedef struct pctx {
    cs_parse *p;
    const char *root; /* the model whose policy this is, for messages */
    int root_mi;
    int hops;         /* relations the rule has walked through so far */
    bool hops_said;   /* the too-many-hops diagnostic was given */
} pctx;

/* Every relation a rule walks through becomes a join or a subquery in the
 * SQL the server runs for every row it checks, so a rule may walk through at
 * most this many (summed over all its paths and predicates).  Real rules use
 * a handful; the bound turns a pathological schema into a load-time error
 * instead of queries that fail or crawl at request time. */
#define CS_MAX_POLICY_HOPS 32

/* Counts one relation hop of the rule; false (with one diagnostic per rule)
 * past the bound. */
static bool hop(pctx *c, cs_pos pos)
{
    if (++c->hops <= CS_MAX_POLICY_HOPS)
        return true;
    if (!c->hops_said)
        cs_diag(c->p->diags, pos,
                "policy on '%s' walks through too many relations (more than %d in one rule)",
                c->root, CS_MAX_POLICY_HOPS);
    c->hops_said = true;
    return false;
}

static bool check(pctx *c, cs_expr *e, int mi);

static bool is_bool(const cs_expr *e)
{
    return e->kind != CS_E_NULL && e->vtype == CS_T_BOOLEAN;
}

static cs_pos start_pos(const cs_expr *e)
{
    while (e->kind == CS_E_BINARY)
        e = e->lhs;
    return e->pos;
}

static const char *type_desc(const cstack_schema *s, const cs_expr *e, char *buf, size_t n)
{
    if (e->kind == CS_E_NULL)
        return "null";
    if (e->kind == CS_E_AUTH)
        return "auth()";
    if (e->vtype == CS_T_ENUM && e->type_index >= 0)
        snprintf(buf, n, "enum '%s'", s->enums[e->type_index].name);
    else if (e->vtype == CS_T_MODEL && e->type_index >= 0)
        snprintf(buf, n, "relation to '%s'", s->models[e->type_index].name);
    else
        snprintf(buf, n, "%s", cs_scalar_name(e->vtype));
    return buf;
}

static int enum_with_member(const cstack_schema *s, const char *name)
{
    for (size_t i = 0; i < s->nenums; i++)
        if (cs_enum_member(&s->enums[i], name, strlen(name)) >= 0)
            return (int)i;
    return -1;
}

/* A bare name that is not a field may be an enum member (`status == OPEN`);
 * it then becomes a CS_E_ENUM node, bound to its enum by the comparison. */
static bool as_enum_member(pctx *c, cs_expr *e)
{
    int en = enum_with_member(c->p->s, e->path[0]);
    if (en < 0)
        return false;
    e->kind = CS_E_ENUM;
    e->text = e->path[0];
    free(e->path);
    e->path = NULL;
    e->npath = 0;
    e->vtype = CS_T_ENUM;
    e->type_index = en;
    return true;
}

static bool unknown_field(pctx *c, cs_expr *e, int cur, const char *name)
{
    if (!c->p->pm[cur].broken) {
        if (cur == c->root_mi)
            cs_diag(c->p->diags, e->pos, "policy on '%s' names unknown field '%s'", c->root, name);
        else
            cs_diag(c->p->diags, e->pos, "policy on '%s' names unknown field '%s.%s'", c->root,
                    c->p->s->models[cur].name, name);
    }
    return false;
}

/* The last segment of a to-many predicate path: checks the predicate on the
 * related model. */
static bool check_predicate(pctx *c, cs_expr *e, const cs_model *m, const cs_field *f)
{
    const char *op = e->kind == CS_E_SOME ? "?[" : e->kind == CS_E_EVERY ? "![" : "^[";
    if (f->type != CS_T_MODEL || !f->list) {
        cs_diag(c->p->diags, e->pos,
                "'%s' needs a to-many relation, but '%s.%s' is not one (policy on '%s')", op,
                m->name, f->name, c->root);
        return false;
    }
    if (!hop(c, e->pos) || !check(c, e->lhs, f->type_index))
        return false;
    if (!is_bool(e->lhs)) {
        char b[96];
        cs_diag(c->p->diags, start_pos(e->lhs),
                "the condition in '%s%s...]' must be a boolean, not %s (policy on '%s')", f->name,
                op, type_desc(c->p->s, e->lhs, b, sizeof(b)), c->root);
        return false;
    }
    e->vtype = CS_T_BOOLEAN;
    return true;
}

/* Field paths (and to-many predicates): every segment but the last must be
 * a to-one relation; member access through a to-many relation needs one of
 * the predicates instead. */
static bool check_path(pctx *c, cs_expr *e, int mi)
{
    const cstack_schema *s = c->p->s;
    int cur = mi;
    for (size_t i = 0; i < e->npath; i++) {
        const cs_model *m = &s->models[cur];
        int fi = cs_field_find(m, e->path[i]);
        if (fi < 0) {
            if (e->kind == CS_E_FIELD && e->npath == 1 && as_enum_member(c, e))
                return true;
            return unknown_field(c, e, cur, e->path[i]);
        }
        const cs_field *f = &m->fields[fi];
        if (c->p->pm[cur].fields[fi].bad_type)
            return false;
        if (i + 1 == e->npath) {
            if (e->kind != CS_E_FIELD)
                return check_predicate(c, e, m, f);
            if (f->type == CS_T_MODEL && f->list) {
                cs_diag(c->p->diags, e->pos,
                        "to-many relation '%s.%s' must be used with %s?[...], %s![...] or "
                        "%s^[...] (policy on '%s')",
                        m->name, f->name, f->name, f->name, f->name, c->root);
                return false;
            }
            e->vtype = f->type;
            e->type_index = f->type_index;
            return true;
        }
        if (f->type != CS_T_MODEL) {
            cs_diag(c->p->diags, e->pos,
                    "'%s.%s' is not a relation, so '%s.%s' is not valid (policy on '%s')", m->name,
                    f->name, f->name, e->path[i + 1], c->root);
            return false;
        }
        if (f->list) {
            cs_diag(c->p->diags, e->pos,
                    "policy on '%s' reads through to-many relation '%s.%s'; use %s?[...], "
                    "%s![...] or %s^[...]",
                    c->root, m->name, f->name, f->name, f->name, f->name);
            return false;
        }
        if (!hop(c, e->pos))
            return false;
        cur = f->type_index;
    }
    return true;
}

static bool is_numeric(cs_scalar t)
{
    return t == CS_T_INT || t == CS_T_FLOAT || t == CS_T_DECIMAL;
}

static bool is_id_text(cs_scalar t)
{
    return t == CS_T_STRING || t == CS_T_UUID || t == CS_T_CUID;
}

/* A bare enum member compared with an enum value takes that value's enum
 * (two enums may share a member name). */
static bool bind_enum(pctx *c, cs_expr *x, const cs_expr *other)
{
    if (x->kind != CS_E_ENUM || other->kind == CS_E_ENUM || other->vtype != CS_T_ENUM ||
        other->type_index < 0 || other->type_index == x->type_index)
        return true;
    const cs_enum *en = &c->p->s->enums[other->type_index];
    if (cs_enum_member(en, x->text, strlen(x->text)) >= 0) {
        x->type_index = other->type_index;
        return true;
    }
    cs_diag(c->p->diags, x->pos, "'%s' is not a member of enum '%s' (policy on '%s')", x->text,
            en->name, c->root);
    return false;
}

/* A string literal compared with a typed value must be a valid value of that
 * type; Uuid and DateTime literals are rewritten to canonical form so the
 * server can bind them as stored. */
static int literal_fits(pctx *c, cs_expr *lit, const cs_expr *x)
{
    char err[160];
    switch (x->vtype) {
    case CS_T_STRING:
    case CS_T_CUID:
        return 1;
    case CS_T_ENUM:
        if (x->type_index >= 0 &&
            cs_enum_member(&c->p->s->enums[x->type_index], lit->text, strlen(lit->text)) >= 0)
            return 1;
        cs_diag(c->p->diags, lit->pos, "'%s' is not a member of enum '%s' (policy on '%s')",
                lit->text, c->p->s->enums[x->type_index].name, c->root);
        return -1;
    case CS_T_UUID:
    case CS_T_DATETIME: {
        char out[CS_DATETIME_LEN + CS_UUID_LEN + 2];
        int rc = x->vtype == CS_T_UUID
                     ? cs_uuid_canon(lit->text, strlen(lit->text), out, err, sizeof(err))
                     : cs_datetime_canon(lit->text, strlen(lit->text), out, err, sizeof(err));
        if (rc != 0) {
            cs_diag(c->p->diags, lit->pos, "%s (policy on '%s')", err, c->root);
            return -1;
        }
        char *t = cs_xstrdup(c->p, out);
        if (!t)
            return -1;
        free(lit->text);
        lit->text = t;
        return 1;
    }
    default:
        return 0;
    }
}

/* Which values may be compared (null compares with anything, and means "is
 * null" for == and "is not null" for !=):
 *   - Int, Float, Decimal and number literals with each other;
 *   - String, Uuid and Cuid with each other (ids are often kept as strings);
 *   - a string literal with String, Cuid, Uuid, DateTime (it must then be a
 *     valid Uuid / DateTime) and enums (it must be a member);
 *   - DateTime with DateTime, Boolean with Boolean, an enum with the same
 *     enum (bare member names included);
 *   - Json, Bytes, relations and auth() only with null.
 * Ordering operators (< <= > >=) are refused on Boolean, enums, Json, Bytes
 * and relations, where no order is meaningful. */
static int comparable(pctx *c, cs_expr *a, cs_expr *b)
{
    if (a->kind == CS_E_NULL || b->kind == CS_E_NULL)
        return 1;
    if (is_numeric(a->vtype) && is_numeric(b->vtype))
        return 1;
    if (a->kind == CS_E_STRING && b->kind == CS_E_STRING)
        return 1;
    if (a->kind == CS_E_STRING)
        return literal_fits(c, a, b);
    if (b->kind == CS_E_STRING)
        return literal_fits(c, b, a);
    if (is_id_text(a->vtype) && is_id_text(b->vtype))
        return 1;
    if (a->vtype != b->vtype)
        return 0;
    switch (a->vtype) {
    case CS_T_ENUM:
        return a->type_index == b->type_index;
    case CS_T_JSON:
    case CS_T_BYTES:
    case CS_T_MODEL:
        return 0;
    default:
        return 1;
    }
}

static bool orderable(const cs_expr *e)
{
    if (e->kind == CS_E_NULL)
        return true;
    switch (e->vtype) {
    case CS_T_BOOLEAN:
    case CS_T_ENUM:
    case CS_T_JSON:
    case CS_T_BYTES:
    case CS_T_MODEL:
        return false;
    default:
        return true;
    }
}

static bool check_compare(pctx *c, cs_expr *e)
{
    cs_expr *a = e->lhs, *b = e->rhs;
    char ba[96], bb[96];
    if (!bind_enum(c, a, b) || !bind_enum(c, b, a))
        return false;
    if (e->op >= CS_OP_LT && e->op <= CS_OP_GE) {
        const cs_expr *bad = !orderable(a) ? a : !orderable(b) ? b : NULL;
        if (bad) {
            cs_diag(c->p->diags, start_pos(e),
                    "operator '%s' cannot order %s values (policy on "
                    "'%s')",
                    binop_text[e->op], type_desc(c->p->s, bad, ba, sizeof(ba)), c->root);
            return false;
        }
    }
    int ok = comparable(c, a, b);
    if (ok < 0)
        return false;
    if (!ok) {
        cs_diag(c->p->diags, start_pos(e), "policy on '%s' compares %s with %s", c->root,
                type_desc(c->p->s, a, ba, sizeof(ba)), type_desc(c->p->s, b, bb, sizeof(bb)));
        return false;
    }
    /* The null literal takes the type of what it is compared with. */
    if (a->kind == CS_E_NULL) {
        a->vtype = b->vtype;
        a->type_index = b->type_index;
    } else if (b->kind == CS_E_NULL) {
        b->vtype = a->vtype;
        b->type_index = a->type_index;
    }
    e->vtype = CS_T_BOOLEAN;
    return true;
}

static bool want_bool(pctx *c, const cs_expr *e, const char *op)
{
    if (is_bool(e))
        return true;
    char b[96];
    cs_diag(c->p->diags, start_pos(e),
            "operand of '%s' must be a boolean, not %s (policy on "
            "'%s')",
            op, type_desc(c->p->s, e, b, sizeof(b)), c->root);
    return false;
}

static bool check(pctx *c, cs_expr *e, int mi)
{
    switch (e->kind) {
    case CS_E_NULL:
        return true;
    case CS_E_BOOL:
        e->vtype = CS_T_BOOLEAN;
        return true;
    case CS_E_NUMBER:
        e->vtype = strpbrk(e->text, ".eE") ? CS_T_FLOAT : CS_T_INT;
        return true;
    case CS_E_STRING:
        e->vtype = CS_T_STRING;
        return true;
    case CS_E_ENUM:
        return true;
    case CS_E_FIELD:
    case CS_E_SOME:
    case CS_E_EVERY:
    case CS_E_NONE:
        return check_path(c, e, mi);
    case CS_E_AUTH:
    case CS_E_AUTH_FIELD:
        return cs_check_auth(c->p, c->root, e);
    case CS_E_NOT:
        if (!check(c, e->lhs, mi) || !want_bool(c, e->lhs, "!"))
            return false;
        e->vtype = CS_T_BOOLEAN;
        return true;
    case CS_E_BINARY:
        /* hasRole()'s field depends on the auth block (policy_crate.c). */
        if (!cs_crate_role_fallback(c->p, e))
            return false;
        break;
    }
    /* Both sides are checked even when the left fails: they are independent
     * mistakes worth reporting together. */
    bool okl = check(c, e->lhs, mi);
    bool okr = check(c, e->rhs, mi);
    if (!okl || !okr)
        return false;
    /* auth() == relation becomes a comparison of keys (policy_auth.c); one
     * spelled through the relation walks one more hop. */
    int rel = cs_auth_relation(c->p, c->root, e, mi);
    if (rel < 0 || (rel == 2 && !hop(c, e->pos)))
        return false;
    if (e->op == CS_OP_AND || e->op == CS_OP_OR) {
        const char *op = binop_text[e->op];
        bool l = want_bool(c, e->lhs, op);
        bool r = want_bool(c, e->rhs, op);
        if (!l || !r)
            return false;
        e->vtype = CS_T_BOOLEAN;
        return true;
    }
    return check_compare(c, e);
}

void cs_validate_policies(cs_parse *p, int mi)
{
    cs_model *m = &p->s->models[mi];
    for (size_t i = 0; i < m->npolicies; i++) {
        pctx c = {p, m->name, mi, 0, false};
        cs_expr *e = m->policies[i].expr;
        if (!check(&c, e, mi))
            continue;
        if (!is_bool(e)) {
            char b[96];
            cs_diag(p->diags, start_pos(e), "policy expression on '%s' must be a boolean, not %s",
                    m->name, type_desc(p->s, e, b, sizeof(b)));
        }
    }
}
