/*
 * parser.c -- tokens to schema IR (names unresolved; see validate.c).
 *
 * Grammar (informal):
 *   schema     := (docs? decl)*
 *   decl       := 'model' NAME '{' (field | '@@' attr)* '}'
 *               | 'enum' NAME '{' NAME* '}'
 *               | 'auth' NAME '{' field* '}'
 *               | 'datasource' NAME '{' (KEY '=' value)* '}'
 *   field      := NAME TYPE ('[' ']' | '?')? ('@' attr)*
 *   attr       := NAME ('(' (arg (',' arg)*)? ')')?
 *   arg        := (NAME ':')? value
 *   value      := STRING | NUMBER | NAME | NAME '(' literals ')' | '[' literals ']'
 * @@allow/@@deny take (STRING, expression); see policy.c.
 *
 * Error recovery: a broken member is skipped up to the next line that looks
 * like a field (`name Type`), a model attribute or the closing brace; a
 * broken declaration up to the next top-level keyword.  So one mistake gives
 * one diagnostic and the rest of the file is still checked.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

/* Consecutive /// lines before a declaration, joined with newlines. */
static char *take_docs(cs_parse *p)
{
    cs_buf b = CS_BUF_INIT;
    int rc = 0;
    while (p->toks[p->cur].kind == T_DOC) {
        if (b.len && rc == 0)
            rc = cs_buf_putc(&b, '\n');
        if (rc == 0)
            rc = cs_buf_puts(&b, p->toks[p->cur].text);
        p->cur++;
    }
    if (rc != 0) {
        p->oom = true;
        cs_buf_free(&b);
        return NULL;
    }
    return b.data ? cs_buf_take(&b) : NULL;
}

static bool is_decl_keyword(const cs_token *t)
{
    return cs_tok_is(t, "model") || cs_tok_is(t, "enum") || cs_tok_is(t, "auth") ||
           cs_tok_is(t, "datasource") || cs_is_extra_keyword(t);
}

/* `model X {` inside a block means the block was not closed. */
static bool at_decl_start(cs_parse *p)
{
    size_t i = p->cur;
    const cs_token *t = cs_peek(p);
    i = p->cur;
    return is_decl_keyword(t) && i + 2 < p->ntoks && p->toks[i + 1].kind == T_IDENT &&
           p->toks[i + 2].kind == T_LBRACE;
}

void cs_skip_toplevel(cs_parse *p)
{
    int depth = 0;
    for (;;) {
        const cs_token *t = cs_peek(p);
        if (t->kind == T_EOF || (depth == 0 && is_decl_keyword(t) && p->cur + 1 < p->ntoks &&
                                 p->toks[p->cur + 1].kind == T_IDENT))
            return;
        if (t->kind == T_LBRACE)
            depth++;
        else if (t->kind == T_RBRACE && depth > 0)
            depth--;
        cs_next(p);
    }
}

/* Skips the rest of a broken block member: stops before `}` (of the block),
 * or, on a later line than `line`, before a line that starts with a model
 * attribute or a `name Type` pair. */
static void skip_member(cs_parse *p, int line)
{
    int depth = 0;
    for (;;) {
        const cs_token *t = cs_peek(p);
        if (t->kind == T_EOF || (depth == 0 && t->kind == T_RBRACE))
            return;
        bool first = p->cur == 0 || p->toks[p->cur - 1].pos.line < t->pos.line;
        const cs_token *n = &p->toks[p->cur + (t->kind != T_EOF)];
        if (depth == 0 && first && t->pos.line > line &&
            (t->kind == T_ATAT ||
             (t->kind == T_IDENT && n->kind == T_IDENT && n->pos.line == t->pos.line)))
            return;
        if (t->kind == T_LPAREN || t->kind == T_LBRACK || t->kind == T_LBRACE)
            depth++;
        else if ((t->kind == T_RPAREN || t->kind == T_RBRACK || t->kind == T_RBRACE) && depth > 0)
            depth--;
        cs_next(p);
    }
}

/* ---- fields ---------------------------------------------------------- */

/* The `@attr(...)` list of a field; `nt` is the field's name token. */
static bool parse_field_attrs(cs_parse *p, const char *owner, const cs_token *nt, cs_field *f,
                              cs_pfield *pf, cs_pmodel *pm)
{
    char ownbuf[300];
    snprintf(ownbuf, sizeof(ownbuf), "field '%s.%s'", owner, f->name);
    /* `@use(Mixin)` is a member of the model, never a field attribute. */
    while (cs_peek(p)->kind == T_AT && !cs_tok_is(&p->toks[p->cur + 1], "use")) {
        const cs_token *at = cs_next(p);
        if (cs_peek(p)->kind != T_IDENT) {
            cs_err_expected(p, "an attribute name after '@'");
            return false;
        }
        const cs_token *an = cs_next(p);
        if (pm && cs_tok_is(an, "computed")) {
            /* Its argument names a type with a `?`, which is no value. */
            if (pf->computed_pos.line)
                cs_diag(p->diags, at->pos, "duplicate attribute @computed on %s", ownbuf);
            pf->computed_pos = at->pos;
            if (!cs_parse_computed_args(p))
                return false;
            continue;
        }
        pargs a = {0};
        p->auth_value_ok = pm && cs_tok_is(an, "default");
        bool ok = cs_parse_args(p, &a);
        p->auth_value_ok = false;
        char attr[64];
        snprintf(attr, sizeof(attr), "@%.*s", an->len > 40 ? 40 : (int)an->len, an->start);
        actx c = {p, attr, ownbuf, at->pos, nt};
        if (ok && !pm)
            cs_auth_attr(&c, an, &a, f);
        else if (ok)
            cs_field_attr(&c, an, &a, f, pf, pm);
        cs_pargs_free(&a);
        if (!ok)
            return false;
    }
    return true;
}

bool cs_parse_field(cs_parse *p, const char *owner, cs_field *f, cs_pfield *pf, cs_pmodel *pm)
{
    const cs_token *nt = cs_next(p);
    f->pos = nt->pos;
    f->name = cs_tok_strdup(p, nt);
    f->column = cs_tok_strdup(p, nt);
    f->type_index = -1;
    if (!f->name || !f->column)
        return false;
    const cs_token *tt = cs_peek(p);
    if (tt->kind != T_IDENT) {
        char b[64];
        cs_syntax(p, tt->pos, "expected a type for field '%s.%s', found %s", owner, f->name,
                  cs_tok_desc(tt, b, sizeof(b)));
        return false;
    }
    cs_next(p);
    pf->type_pos = tt->pos;
    /* CrateStack's BigInt is a 64-bit integer, which is what Int already is
     * here (SQLite INTEGER, int64_t in the C API): the field is an Int. */
    f->type_name = cs_tok_is(tt, CS_BIGINT) ? cs_xstrdup(p, "Int") : cs_tok_strdup(p, tt);
    /* `Vector(3)`, `Geography(Point, 4326)`: the arguments are judged once
     * the whole file is read (exttypes.c). */
    if (f->type_name && cs_ext_type_name(f->type_name) && !cs_parse_ext_args(p, pf))
        return false;
    if (cs_accept(p, T_LBRACK)) {
        if (!cs_accept(p, T_RBRACK)) {
            cs_err_expected(p, "']'");
            return false;
        }
        f->list = true;
    }
    if (cs_accept(p, T_QUEST)) {
        if (f->list)
            cs_diag(p->diags, p->toks[p->cur - 1].pos, "a list field cannot be optional");
        else
            f->optional = true;
    }
    if (!parse_field_attrs(p, owner, nt, f, pf, pm))
        return false;
    /* CrateStack's @db_enforce also writes the field's validators as a CHECK
     * constraint.  Every write cstack makes checks them already (the store,
     * the envelope, the sync server), so no constraint is added. */
    const cs_checks *k = &f->checks;
    if (!pf->enforce_pos.line)
        ;
    else if (!k->length && !k->range && !k->email && !k->re && !k->iso4217)
        cs_diag(p->diags, pf->enforce_pos,
                "@db_enforce on field '%s.%s' needs a validator (@length, @range, @email, "
                "@regex or @iso4217) to enforce",
                owner, f->name);
    else
        cs_warn(p->diags, pf->enforce_pos,
                "@db_enforce on field '%s.%s' is ignored by the embedded runtime (its validators "
                "are checked on every write; no CHECK constraint is added)",
                owner, f->name);
    const cs_token *t = cs_peek(p);
    if (t->kind != T_IDENT && t->kind != T_ATAT && t->kind != T_RBRACE && t->kind != T_EOF &&
        t->kind != T_AT) {
        char b[64];
        cs_syntax(p, t->pos, "unexpected %s after field '%s.%s'", cs_tok_desc(t, b, sizeof(b)),
                  owner, f->name);
        return false;
    }
    return true;
}

/* ---- model attributes ----------------------------------------------------- */

/* @@allow('ops', expr) / @@deny('ops', expr). */
static bool attr_policy(cs_parse *p, cs_model *m, bool deny, cs_pos pos)
{
    const char *attr = deny ? "@@deny" : "@@allow";
    if (!cs_accept(p, T_LPAREN)) {
        cs_err_expected(p, "'('");
        return false;
    }
    const cs_token *ops = cs_peek(p);
    if (ops->kind != T_STRING) {
        cs_err_expected(p, "a string of operations like 'read,update'");
        return false;
    }
    cs_next(p);
    if (!cs_accept(p, T_COMMA)) {
        cs_err_expected(p, "','");
        return false;
    }
    cs_expr *e = cs_parse_expr(p);
    if (!e)
        return false;
    if (!cs_accept(p, T_RPAREN)) {
        cs_err_expected(p, cs_peek(p)->kind == T_ASSIGN ? "')' or an operator (use '==' to compare)"
                                                        : "')' or an operator");
        cs_expr_free(e);
        return false;
    }
    if (m->npolicies >= CS_MAX_ATTRS) {
        if (cs_limit_once(p))
            cs_diag(p->diags, pos, "too many policies in one model (limit %d)", CS_MAX_ATTRS);
        cs_expr_free(e);
        return true;
    }
    cs_policy *pol = cs_push(p, &m->policies, m->npolicies, sizeof(*pol));
    if (!pol) {
        cs_expr_free(e);
        return false;
    }
    m->npolicies++;
    pol->deny = deny;
    pol->expr = e;
    pol->pos = pos;
    cs_parse_ops(p, ops, attr, &pol->ops);
    return true;
}

static bool parse_model_attr(cs_parse *p, cs_model *m, cs_pmodel *pm)
{
    const cs_token *at = cs_next(p);
    if (cs_peek(p)->kind != T_IDENT) {
        cs_err_expected(p, "an attribute name after '@@'");
        return false;
    }
    const cs_token *an = cs_next(p);
    if (cs_tok_is(an, "allow") || cs_tok_is(an, "deny"))
        return attr_policy(p, m, cs_tok_is(an, "deny"), at->pos);
    pargs a = {0};
    bool ok = cs_parse_args(p, &a);
    if (ok) {
        char owner[300], attr[64];
        snprintf(owner, sizeof(owner), "model '%s'", m->name);
        snprintf(attr, sizeof(attr), "@@%.*s", an->len > 40 ? 40 : (int)an->len, an->start);
        actx c = {p, attr, owner, at->pos, NULL};
        cs_model_attr(&c, an, &a, m, pm);
    }
    cs_pargs_free(&a);
    return ok;
}

/* ---- declarations ------------------------------------------------------- */

const cs_token *cs_decl_head(cs_parse *p, const char *kw)
{
    cs_next(p);
    const cs_token *name = cs_peek(p);
    if (name->kind != T_IDENT) {
        char what[64];
        snprintf(what, sizeof(what), "a name after '%s'", kw);
        cs_err_expected(p, what);
        return NULL;
    }
    cs_next(p);
    if (!cs_accept(p, T_LBRACE)) {
        cs_err_expected(p, "'{'");
        return NULL;
    }
    return name;
}

void cs_parse_block(cs_parse *p, const char *what, const char *name, cs_member_fn fn, void *ctx)
{
    for (;;) {
        char *doc = take_docs(p);
        const cs_token *t = cs_peek(p);
        if (t->kind == T_RBRACE || t->kind == T_EOF || at_decl_start(p)) {
            free(doc);
            if (t->kind == T_RBRACE)
                cs_next(p);
            else
                cs_syntax(p, t->pos, "expected '}' to close %s '%s'", what, name);
            return;
        }
        size_t before = p->cur;
        int line = t->pos.line;
        p->member_start = p->cur;
        if (!fn(p, ctx, doc)) {
            skip_member(p, line);
            if (p->cur == before)
                cs_next(p); /* always make progress */
        }
        if (p->oom)
            return;
    }
}

typedef struct model_ctx {
    size_t mi;
} model_ctx;

static bool model_member(cs_parse *p, void *vctx, char *doc);

/* `@use(Mixin)`: the mixin's members are parsed again as members of this
 * model (their diagnostics point into the mixin). */
static bool use_mixin(cs_parse *p, model_ctx *mc)
{
    const cs_token *at = cs_next(p);
    cs_next(p);
    const cs_token *name = NULL;
    if (!cs_accept(p, T_LPAREN) || (name = cs_peek(p))->kind != T_IDENT ||
        (cs_next(p), !cs_accept(p, T_RPAREN))) {
        cs_err_expected(p, name ? "')' after the mixin name" : "'(' and a mixin name");
        return false;
    }
    int mi = cs_block_find(&p->mixins, name);
    if (mi < 0 || p->in_mixin) {
        cs_diag(p->diags, at->pos, p->in_mixin ? "@use is not allowed inside a mixin"
                                               : "unknown mixin '%.*s'",
                (int)name->len, name->start);
        return true;
    }
    size_t cur = p->cur, start = p->member_start;
    p->cur = p->mixins.body[mi];
    p->in_mixin = true;
    char what[80];
    snprintf(what, sizeof what, "%.*s", name->len > 60 ? 60 : (int)name->len, name->start);
    cs_parse_block(p, "mixin", what, model_member, mc);
    p->in_mixin = false;
    p->cur = cur;
    p->member_start = start;
    return true;
}

/* CrateStack's @computed field (the last one parsed) has no column: the
 * server's resolver fills it in each response.  The embedded runtime has no
 * resolver, so the field is dropped with a warning; a computed key, unique
 * field or relation is an error, since something else would depend on it. */
static void drop_computed(cs_parse *p, cs_model *m, cs_pmodel *pm)
{
    cs_field *f = &m->fields[m->nfields - 1];
    cs_pfield *pf = &pm->fields[m->nfields - 1];
    if (pf->id_pos.line || pf->unique_pos.line || pf->rel_pos.line || f->list) {
        cs_diag(p->diags, pf->computed_pos,
                "@computed field '%s.%s' cannot be a key, unique, a relation or a list (a "
                "computed field has no column)",
                m->name, f->name);
        return;
    }
    cs_warn(p->diags, pf->computed_pos,
            "@computed field '%s.%s' is ignored by the embedded runtime (the server computes "
            "it in each response; it has no column)",
            m->name, f->name);
    cs_field_clear(f);
    cs_pfield_free(pf);
    m->nfields--;
}

static bool model_member(cs_parse *p, void *vctx, char *doc)
{
    model_ctx *mc = vctx;
    cs_model *m = &p->s->models[mc->mi];
    cs_pmodel *pm = &p->pm[mc->mi];
    const cs_token *t = cs_peek(p);
    if (t->kind == T_ATAT) {
        free(doc);
        return parse_model_attr(p, m, pm);
    }
    if (t->kind == T_AT && cs_tok_is(&p->toks[p->cur + 1], "use")) {
        free(doc);
        return use_mixin(p, mc);
    }
    if (t->kind != T_IDENT) {
        free(doc);
        char b[64];
        cs_syntax(p, t->pos, "expected a field or an @@attribute in model '%s', found %s", m->name,
                  cs_tok_desc(t, b, sizeof(b)));
        pm->broken = true;
        return false;
    }
    if (m->nfields >= CS_MAX_FIELDS) {
        free(doc);
        if (cs_limit_once(p))
            cs_diag(p->diags, t->pos, "too many fields in model '%s' (limit %d)", m->name,
                    CS_MAX_FIELDS);
        pm->broken = true;
        return false;
    }
    cs_field *f = cs_push(p, &m->fields, m->nfields, sizeof(*f));
    cs_pfield *pf = f ? cs_push(p, &pm->fields, m->nfields, sizeof(*pf)) : NULL;
    if (!pf) {
        free(doc);
        return false;
    }
    m->nfields++;
    f->doc = doc;
    pf->from_mixin = p->in_mixin;
    if (cs_parse_field(p, m->name, f, pf, pm)) {
        if (pf->computed_pos.line)
            drop_computed(p, m, pm);
        return true;
    }
    /* Drop a field that has no type: validating it would only add noise. */
    if (!f->type_name) {
        cs_field_clear(f);
        cs_pfield_free(pf);
        m->nfields--;
    }
    pm->broken = true;
    return false;
}

static bool overridden(const cs_model *m, const cs_pmodel *pm, size_t fi)
{
    for (size_t k = 0; k < m->nfields; k++)
        if (!pm->fields[k].from_mixin && strcmp(m->fields[k].name, m->fields[fi].name) == 0)
            return true;
    return false;
}

/* A model's own field overrides a mixin's field of the same name, wherever
 * either is written (CrateStack does the same): the mixin's copy is dropped,
 * with the unique set its @unique made. */
static void drop_overridden(cs_parse *p, size_t mi)
{
    cs_model *m = &p->s->models[mi];
    cs_pmodel *pm = &p->pm[mi];
    size_t out = 0;
    for (size_t i = 0; i < m->nfields; i++) {
        cs_pfield *pf = &pm->fields[i];
        if (!pf->from_mixin || !overridden(m, pm, i)) {
            m->fields[out] = m->fields[i];
            pm->fields[out++] = *pf;
            continue;
        }
        for (size_t k = 0; pf->unique_pos.line && k < pm->nsets; k++) {
            cs_pset *set = &pm->sets[k];
            if (set->kind == CS_SET_FIELD_UNIQUE && set->pos.line == pf->unique_pos.line &&
                set->pos.col == pf->unique_pos.col) {
                cs_names_free(&set->names);
                memmove(set, set + 1, (pm->nsets - k - 1) * sizeof *set);
                pm->nsets--;
                break;
            }
        }
        cs_field_clear(&m->fields[i]);
        cs_pfield_free(pf);
    }
    m->nfields = out;
}

/* CrateStack's argument-less @@soft_delete adds the nullable timestamp
 * `deletedAt` to a model that does not declare it (its server creates the
 * column).  So does cstack, as if `deletedAt DateTime?` were written last:
 * the field is a column, part of the canonical text and of the schema hash
 * like a declared one, so a schema that spells it out is the same schema. */
static void add_soft_delete_field(cs_parse *p, size_t mi)
{
    cs_model *m = &p->s->models[mi];
    cs_pmodel *pm = &p->pm[mi];
    if (!pm->soft_implicit || cs_field_find(m, CS_SOFT_DELETE_DEFAULT) >= 0 ||
        m->nfields >= CS_MAX_FIELDS)
        return;
    cs_field *f = cs_push(p, &m->fields, m->nfields, sizeof(*f));
    cs_pfield *pf = f ? cs_push(p, &pm->fields, m->nfields, sizeof(*pf)) : NULL;
    if (!pf)
        return;
    m->nfields++;
    f->name = cs_xstrdup(p, CS_SOFT_DELETE_DEFAULT);
    f->column = cs_xstrdup(p, CS_SOFT_DELETE_DEFAULT);
    f->type_name = cs_xstrdup(p, "DateTime");
    f->type_index = -1;
    f->optional = true;
    f->pos = pm->soft_pos;
    pf->type_pos = pm->soft_pos;
}

static void parse_model(cs_parse *p, char *doc)
{
    const cs_token *name = cs_decl_head(p, "model");
    if (!name || p->s->nmodels >= CS_MAX_MODELS) {
        if (name && cs_limit_once(p))
            cs_diag(p->diags, name->pos, "too many models (limit %d)", CS_MAX_MODELS);
        free(doc);
        cs_skip_toplevel(p);
        return;
    }
    size_t mi = p->s->nmodels;
    cs_model *m = cs_push(p, &p->s->models, mi, sizeof(*m));
    cs_pmodel *pm = m ? cs_push(p, &p->pm, mi, sizeof(*pm)) : NULL;
    if (!pm) {
        free(doc);
        return;
    }
    p->s->nmodels++;
    m->doc = doc;
    m->name = cs_tok_strdup(p, name);
    m->table = cs_tok_strdup(p, name);
    m->pos = name->pos;
    m->soft_delete = -1;
    if (!m->name || !m->table)
        return;
    model_ctx mc = {mi};
    cs_parse_block(p, "model", m->name, model_member, &mc);
    drop_overridden(p, mi);
    add_soft_delete_field(p, mi);
    cs_model_attrs_done(p, m, pm);
}

/* Adds member token t to enum e unless it is a duplicate (`seen` holds the
 * members so far, so the check stays linear). */
static void enum_member(cs_parse *p, cs_enum *e, cs_nameset *seen, const cs_token *t)
{
    if (e->nmembers >= CS_MAX_MEMBERS) {
        if (cs_limit_once(p))
            cs_diag(p->diags, t->pos, "too many members in enum '%s' (limit %d)", e->name,
                    CS_MAX_MEMBERS);
        return;
    }
    char *name = cs_tok_strdup(p, t);
    if (!name)
        return;
    if (cs_nameset_add(p, seen, name, 0) >= 0) {
        cs_diag(p->diags, t->pos, "duplicate member '%s' in enum '%s'", name, e->name);
        free(name);
        return;
    }
    char **slot = cs_push(p, &e->members, e->nmembers, sizeof(*slot));
    if (!slot) {
        free(name);
        return;
    }
    *slot = name;
    e->nmembers++;
}

static void parse_enum(cs_parse *p, char *doc)
{
    const cs_token *name = cs_decl_head(p, "enum");
    cs_enum *e = name ? cs_push(p, &p->s->enums, p->s->nenums, sizeof(*e)) : NULL;
    if (!e) {
        free(doc);
        cs_skip_toplevel(p);
        return;
    }
    p->s->nenums++;
    e->doc = doc;
    e->name = cs_tok_strdup(p, name);
    e->pos = name->pos;
    cs_nameset seen = {0};
    while (e->name && !p->oom) {
        const cs_token *t = cs_peek(p);
        p->member_start = p->cur;
        if (t->kind == T_RBRACE || t->kind == T_EOF || at_decl_start(p)) {
            if (t->kind != T_RBRACE)
                cs_syntax(p, t->pos, "expected '}' to close enum '%s'", e->name);
            else if (cs_next(p), e->nmembers == 0)
                cs_diag(p->diags, e->pos, "enum '%s' has no members", e->name);
            break;
        }
        cs_next(p);
        if (t->kind == T_IDENT) {
            enum_member(p, e, &seen, t);
        } else if (t->kind != T_COMMA) {
            char b[64];
            cs_syntax(p, t->pos, "expected an enum member name, found %s",
                      cs_tok_desc(t, b, sizeof(b)));
        }
    }
    cs_nameset_free(&seen);
}

static void ds_setting(cs_parse *p, cs_datasource *ds, const cs_token *key, const parg *g)
{
    if (cs_tok_is(key, "provider")) {
        if (ds->provider) {
            cs_diag(p->diags, key->pos, "duplicate datasource setting 'provider'");
        } else if (g->kind == V_LIT && g->tok->kind == T_STRING &&
                   strcmp(g->tok->text, "none") == 0) {
            /* A CrateStack server without a database: the embedded runtime
             * always has one, so this is the same as no datasource block. */
            cs_warn(p->diags, g->pos, "provider \"none\" is ignored by the embedded runtime");
            ds->provider = cs_xstrdup(p, "sqlite");
        } else if (g->kind != V_LIT || g->tok->kind != T_STRING ||
                   (strcmp(g->tok->text, "sqlite") != 0 &&
                    strcmp(g->tok->text, "postgresql") != 0)) {
            cs_diag(p->diags, g->pos,
                    "unknown datasource provider (expected \"sqlite\" or \"postgresql\")");
        } else {
            ds->provider = cs_tok_strdup(p, g->tok);
        }
    } else if (cs_tok_is(key, "url")) {
        if (ds->url || ds->url_env)
            cs_diag(p->diags, key->pos, "duplicate datasource setting 'url'");
        else if (g->kind == V_LIT && g->tok->kind == T_STRING)
            ds->url = cs_tok_strdup(p, g->tok);
        else if (g->kind == V_CALL && cs_tok_is(g->tok, "env") && g->n == 1 &&
                 g->items[0]->kind == T_STRING)
            ds->url_env = cs_tok_strdup(p, g->items[0]);
        else
            cs_diag(p->diags, g->pos, "datasource url must be a string or env(\"VARIABLE\")");
    } else {
        cs_diag(p->diags, key->pos, "unknown datasource setting '%.*s' (expected provider or url)",
                (int)(key->len > 40 ? 40 : key->len), key->start);
    }
}

static void ds_free(cs_datasource *ds)
{
    free(ds->name);
    free(ds->provider);
    free(ds->url);
    free(ds->url_env);
    memset(ds, 0, sizeof(*ds));
}

static void parse_datasource(cs_parse *p)
{
    const cs_token *kw = cs_peek(p);
    const cs_token *name = cs_decl_head(p, "datasource");
    if (!name) {
        cs_skip_toplevel(p);
        return;
    }
    bool dup = p->ds_pos.line != 0;
    if (dup)
        cs_diag(p->diags, kw->pos, "only one datasource block is allowed");
    else
        p->ds_pos = name->pos;
    cs_datasource ds = {0};
    ds.name = cs_tok_strdup(p, name);
    bool provider_seen = false;
    for (;;) {
        const cs_token *t = cs_peek(p);
        if (t->kind == T_RBRACE || t->kind == T_EOF || at_decl_start(p)) {
            if (t->kind == T_RBRACE)
                cs_next(p);
            else
                cs_syntax(p, t->pos, "expected '}' to close datasource");
            break;
        }
        size_t before = p->cur;
        p->member_start = p->cur;
        parg g = {0};
        bool ok = false;
        if (t->kind != T_IDENT)
            cs_err_expected(p, "a datasource setting (provider or url)");
        else if (cs_next(p), !cs_accept(p, T_ASSIGN))
            cs_err_expected(p, "'='");
        else if (cs_parse_value(p, &g))
            ok = true;
        if (ok)
            ds_setting(p, &ds, t, &g);
        provider_seen = provider_seen || cs_tok_is(t, "provider");
        free(g.items);
        if (!ok) {
            skip_member(p, t->pos.line);
            if (p->cur == before)
                cs_next(p);
        }
    }
    if (!dup && !provider_seen)
        cs_diag(p->diags, name->pos, "datasource '%s' has no provider", ds.name ? ds.name : "");
    if (dup)
        ds_free(&ds);
    else
        p->s->datasource = ds;
}

void cs_parse_tokens(cs_parse *p)
{
    cs_scan_blocks(p);
    while (!p->oom) {
        char *doc = take_docs(p);
        const cs_token *t = cs_peek(p);
        p->member_start = p->cur;
        if (t->kind == T_EOF) {
            free(doc);
            cs_warn_unused_types(p);
            cs_check_server_only(p);
            return;
        }
        if (cs_parse_server_only(p)) {
            free(doc);
        } else if (cs_tok_is(t, "model")) {
            parse_model(p, doc);
        } else if (cs_tok_is(t, "enum")) {
            parse_enum(p, doc);
        } else {
            free(doc); /* docs only attach to models, enums and fields */
            if (cs_tok_is(t, "datasource")) {
                parse_datasource(p);
            } else if (cs_tok_is(t, "auth")) {
                cs_parse_auth(p);
            } else {
                char b[64];
                cs_syntax(p, t->pos,
                          "expected a declaration (model, enum, auth or datasource), found %s",
                          cs_tok_desc(t, b, sizeof(b)));
                cs_next(p);
                cs_skip_toplevel(p);
            }
        }
    }
}
