/*
 * attrs.c -- attribute arguments: their generic syntax, and the
 * interpretation of field (@) and model (@@) attributes.
 *
 * The parser hands over each attribute with its generic arguments; here they
 * are checked for shape (argument count and kinds, duplicates, unknown
 * names) and recorded in the IR or in the parse-only cs_pfield / cs_pmodel.
 * Whether the names they mention exist is checked later by validate.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

/* ---- generic attribute arguments ---------------------------------------- */

void cs_pargs_free(pargs *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i].items);
    free(a->v);
    memset(a, 0, sizeof(*a));
}

static bool is_literal(const cs_token *t)
{
    return t->kind == T_IDENT || t->kind == T_STRING || t->kind == T_NUMBER;
}

/* Literals separated by commas up to `close` (consumed). */
static bool parse_items(cs_parse *p, parg *a, cs_tok_kind close)
{
    while (!cs_accept(p, close)) {
        const cs_token *t = cs_peek(p);
        if (!is_literal(t)) {
            cs_err_expected(p, close == T_RBRACK ? "a name or ']'" : "a literal or ')'");
            return false;
        }
        const cs_token **slot = cs_push(p, &a->items, a->n, sizeof(*slot));
        if (!slot)
            return false;
        *slot = cs_next(p);
        a->n++;
        if (!cs_accept(p, T_COMMA) && cs_peek(p)->kind != close) {
            cs_err_expected(p, close == T_RBRACK ? "',' or ']'" : "',' or ')'");
            return false;
        }
    }
    return true;
}

bool cs_parse_value(cs_parse *p, parg *a)
{
    const cs_token *t = cs_peek(p);
    a->pos = t->pos;
    if (t->kind == T_LBRACK) {
        cs_next(p);
        a->kind = V_LIST;
        a->tok = t;
        return parse_items(p, a, T_RBRACK);
    }
    if (!is_literal(t)) {
        cs_err_expected(p, "a value");
        return false;
    }
    a->tok = cs_next(p);
    a->kind = V_LIT;
    if (t->kind == T_IDENT && cs_accept(p, T_LPAREN)) {
        a->kind = V_CALL;
        if (!parse_items(p, a, T_RPAREN))
            return false;
        if (cs_tok_is(t, "auth") && cs_peek(p)->kind == T_DOT && p->auth_value_ok) {
            a->kind = V_AUTH;
            while (cs_accept(p, T_DOT))
                if (!cs_accept(p, T_IDENT)) {
                    cs_err_expected(p, "a claim name after '.'");
                    return false;
                }
        } else if (cs_tok_is(t, "auth") && cs_peek(p)->kind == T_DOT) {
            cs_syntax(p, t->pos,
                      "auth() cannot be used here: an attribute value cannot depend on the "
                      "caller (only a model field's @default may name a claim)");
            return false;
        }
    }
    return true;
}

/* `(args)` when present; `a->given` says whether it was. */
bool cs_parse_args(cs_parse *p, pargs *a)
{
    if (!cs_accept(p, T_LPAREN))
        return true;
    a->given = true;
    while (!cs_accept(p, T_RPAREN)) {
        parg *g = cs_push(p, &a->v, a->n, sizeof(*g));
        if (!g)
            return false;
        a->n++;
        if (cs_peek(p)->kind == T_IDENT && p->toks[p->cur + 1].kind == T_COLON) {
            g->name = cs_next(p);
            cs_next(p);
        }
        if (!cs_parse_value(p, g))
            return false;
        if (!cs_accept(p, T_COMMA) && cs_peek(p)->kind != T_RPAREN) {
            cs_err_expected(p, "',' or ')'");
            return false;
        }
    }
    return true;
}

/* ---- shared checks used by attribute interpreters ----------------------- */

static bool no_args(actx *c, const pargs *a)
{
    if (!a->given)
        return true;
    cs_diag(c->p->diags, c->pos, "%s takes no arguments", c->attr);
    return false;
}

/* Exactly one positional argument (or one named `alt:` argument). */
static const parg *one_arg(actx *c, const pargs *a, const char *alt)
{
    if (a->n == 1 && (!a->v[0].name || (alt && cs_tok_is(a->v[0].name, alt))))
        return &a->v[0];
    cs_diag(c->p->diags, c->pos, "%s takes exactly one argument", c->attr);
    return NULL;
}

static char *want_string(actx *c, const parg *g)
{
    if (g->kind == V_LIT && g->tok->kind == T_STRING)
        return cs_tok_strdup(c->p, g->tok);
    cs_diag(c->p->diags, g->pos, "%s expects a string", c->attr);
    return NULL;
}

static bool want_names(actx *c, const parg *g, cs_names *out)
{
    if (g->kind != V_LIST || g->n == 0) {
        cs_diag(c->p->diags, g->pos, "%s expects a non-empty list of field names, like [a, b]",
                c->attr);
        return false;
    }
    for (size_t i = 0; i < g->n; i++) {
        if (g->items[i]->kind != T_IDENT) {
            cs_diag(c->p->diags, g->items[i]->pos, "%s expects field names, not literals", c->attr);
            cs_names_free(out);
            return false;
        }
        if (!cs_names_push(c->p, out, g->items[i]))
            return false;
    }
    return true;
}

/* Marks an attribute as seen; false (with a diagnostic) when it already was. */
static bool once(actx *c, cs_pos *seen)
{
    if (seen->line) {
        cs_diag(c->p->diags, c->pos, "duplicate attribute %s on %s", c->attr, c->owner);
        return false;
    }
    *seen = c->pos;
    return true;
}

static cs_pset *add_set(cs_parse *p, cs_pmodel *pm, cs_set_kind kind, cs_pos pos)
{
    if (pm->nsets >= CS_MAX_ATTRS) {
        if (cs_limit_once(p))
            cs_diag(p->diags, pos, "too many indexes in one model (limit %d)", CS_MAX_ATTRS);
        return NULL;
    }
    cs_pset *s = cs_push(p, &pm->sets, pm->nsets, sizeof(*s));
    if (s) {
        s->kind = kind;
        s->pos = pos;
        pm->nsets++;
    }
    return s;
}

/* ---- field attributes --------------------------------------------------- */

static const char *const action_names[] = {"",         "Cascade", "Restrict",
                                           "NoAction", "SetNull", "SetDefault"};

static bool parse_action(actx *c, const parg *g, cs_action *out)
{
    for (int i = 1; i <= CS_ACT_SET_DEFAULT; i++)
        if (g->kind == V_LIT && cs_tok_is(g->tok, action_names[i])) {
            *out = (cs_action)i;
            return true;
        }
    cs_diag(c->p->diags, g->pos,
            "unknown referential action (expected Cascade, Restrict, NoAction, SetNull or "
            "SetDefault)");
    return false;
}

/* On a list (to-many) field, CrateStack repeats fields:/references: of the
 * owning side; they are accepted and left out here, since the owning side
 * alone defines the keys (`list` says which side this is). */
static void attr_relation(actx *c, const pargs *a, cs_pfield *pf, bool list)
{
    for (size_t i = 0; i < a->n; i++) {
        const parg *g = &a->v[i];
        if (!g->name) {
            if (i != 0 || pf->rel_name) {
                cs_diag(c->p->diags, g->pos,
                        "only the relation name may be given without a "
                        "label in @relation");
                continue;
            }
            pf->rel_name = want_string(c, g);
        } else if (cs_tok_is(g->name, "name")) {
            if (pf->rel_name)
                cs_diag(c->p->diags, g->pos, "the relation name is given twice");
            else
                pf->rel_name = want_string(c, g);
        } else if (list && (cs_tok_is(g->name, "fields") || cs_tok_is(g->name, "references"))) {
            continue;
        } else if (cs_tok_is(g->name, "fields") || cs_tok_is(g->name, "references")) {
            bool fields = cs_tok_is(g->name, "fields");
            bool *has = fields ? &pf->rel_has_fields : &pf->rel_has_refs;
            if (*has)
                cs_diag(c->p->diags, g->pos, "'%s' is given twice in @relation",
                        fields ? "fields" : "references");
            else
                *has = want_names(c, g, fields ? &pf->rel_fields : &pf->rel_refs);
        } else if (cs_tok_is(g->name, "onDelete")) {
            parse_action(c, g, &pf->on_delete);
        } else if (cs_tok_is(g->name, "onUpdate")) {
            parse_action(c, g, &pf->on_update);
        } else {
            cs_diag(c->p->diags, g->name->pos,
                    "unknown argument '%.*s' in @relation (expected name, fields, references, "
                    "onDelete or onUpdate)",
                    (int)g->name->len, g->name->start);
        }
    }
}

/* @default(dbgenerated("SQL")): an expression the server's database
 * computes.  The ones with an embedded equivalent map onto it; any other is
 * ignored with a warning (the field must then be given on create).
 * CrateStack's bare dbgenerated() leaves the value to the database's own
 * column default: on a Cuid or Uuid field that is a new id, made here the
 * same way; on any other field it is ignored like an unknown expression. */
static void default_dbgenerated(actx *c, const parg *g, cs_field *f)
{
    if (g->n == 0) {
        const char *t = f->type_name ? f->type_name : "";
        if (strcmp(t, "Cuid") == 0 || strcmp(t, "Uuid") == 0)
            f->def.kind = t[0] == 'C' ? CS_DEF_CUID : CS_DEF_UUID;
        else
            cs_warn(c->p->diags, g->pos,
                    "@default(dbgenerated()) is computed by the server's database; ignored by "
                    "the embedded runtime");
        return;
    }
    if (g->n != 1 || g->items[0]->kind != T_STRING) {
        cs_diag(c->p->diags, g->pos, "dbgenerated() takes one string: the SQL expression");
        return;
    }
    static const struct {
        const char *sql;
        cs_default_kind kind;
    } known[] = {{"gen_random_uuid()", CS_DEF_UUID}, {"uuid_generate_v4()", CS_DEF_UUID},
                 {"now()", CS_DEF_NOW},              {"CURRENT_TIMESTAMP", CS_DEF_NOW},
                 {"current_timestamp", CS_DEF_NOW}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(g->items[0]->text, known[i].sql) == 0) {
            f->def.kind = known[i].kind;
            return;
        }
    cs_warn(c->p->diags, g->pos,
            "@default(dbgenerated(\"%.60s\")) is computed by the server's database; ignored by "
            "the embedded runtime",
            g->items[0]->text);
}

static void attr_default(actx *c, const pargs *a, cs_field *f, cs_pfield *pf)
{
    const parg *g = one_arg(c, a, "value");
    if (!g)
        return;
    /* CrateStack's server fills the field from the caller's claim; writes
     * here say who the caller is by giving the value. */
    if (g->kind == V_AUTH) {
        cs_warn(c->p->diags, g->pos,
                "@default(auth()...) is filled from the caller by CrateStack's server; ignored by "
                "the embedded runtime (give the value when creating)");
        return;
    }
    if (g->kind == V_LIST) {
        cs_diag(c->p->diags, g->pos, "@default does not accept a list");
        return;
    }
    if (g->kind == V_LIT) {
        f->def.kind = CS_DEF_LITERAL;
        pf->def_tok = g->tok->kind;
        pf->def_text = cs_tok_strdup(c->p, g->tok);
        return;
    }
    if (cs_tok_is(g->tok, "dbgenerated")) {
        default_dbgenerated(c, g, f);
        return;
    }
    static const struct {
        const char *name;
        cs_default_kind kind;
    } fns[] = {{"uuid", CS_DEF_UUID},
               {"cuid", CS_DEF_CUID},
               {"cs_cuid", CS_DEF_CUID},
               {"now", CS_DEF_NOW},
               {"autoincrement", CS_DEF_AUTOINCREMENT}};
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        if (cs_tok_is(g->tok, fns[i].name)) {
            if (g->n)
                cs_diag(c->p->diags, g->pos, "%s() takes no arguments", fns[i].name);
            else
                f->def.kind = fns[i].kind;
            return;
        }
    }
    cs_diag(c->p->diags, g->pos,
            "unknown function '%.*s()' in @default (expected uuid(), cuid(), now() or "
            "autoincrement())",
            (int)g->tok->len, g->tok->start);
}

/* The argument-less flags @version, @readonly, @pii, @sensitive and the
 * skipped @server_only; false when `name` is none of them. */
static bool flag_attr(actx *c, const cs_token *name, const pargs *a, cs_field *f)
{
    bool *flag = cs_tok_is(name, "version")     ? &f->version
                 : cs_tok_is(name, "readonly")  ? &f->readonly
                 : cs_tok_is(name, "pii")       ? &f->sensitive
                 : cs_tok_is(name, "sensitive") ? &f->sensitive
                                                : NULL;
    if (cs_tok_is(name, "server_only")) {
        cs_warn(c->p->diags, c->pos,
                "@server_only on %s is ignored by the embedded runtime (the field is stored "
                "like any other)",
                c->owner);
        return true;
    }
    if (!flag)
        return false;
    if (!no_args(c, a))
        return true;
    if (f->version && flag == &f->version)
        cs_diag(c->p->diags, c->pos, "duplicate attribute %s on %s", c->attr, c->owner);
    else if (flag == &f->version && (!f->type_name || strcmp(f->type_name, "Int") != 0 ||
                                     f->optional || f->list))
        cs_diag(c->p->diags, c->pos, "@version needs a required Int field");
    *flag = true;
    return true;
}

/* Applies one `@name(args)` to field f of model `mi` (-1: auth block). */
void cs_field_attr(actx *c, const cs_token *name, const pargs *a, cs_field *f, cs_pfield *pf,
                   cs_pmodel *pm)
{
    if (cs_tok_is(name, "id")) {
        if (once(c, &pf->id_pos) && no_args(c, a))
            f->is_id = true;
    } else if (cs_tok_is(name, "unique")) {
        if (once(c, &pf->unique_pos) && no_args(c, a)) {
            f->is_unique = true;
            cs_pset *s = add_set(c->p, pm, CS_SET_FIELD_UNIQUE, c->pos);
            if (s)
                cs_names_push(c->p, &s->names, c->field_tok);
        }
    } else if (cs_tok_is(name, "updatedAt")) {
        if (once(c, &pf->updated_pos) && no_args(c, a))
            f->updated_at = true;
    } else if (cs_tok_is(name, "map")) {
        const parg *g = once(c, &pf->map_pos) ? one_arg(c, a, "name") : NULL;
        char *col = g ? want_string(c, g) : NULL;
        if (col) {
            free(f->column);
            f->column = col;
        }
    } else if (cs_tok_is(name, "default")) {
        if (once(c, &pf->def_pos))
            attr_default(c, a, f, pf);
    } else if (cs_tok_is(name, "relation")) {
        if (once(c, &pf->rel_pos))
            attr_relation(c, a, pf, f->list);
    } else if (cs_tok_is(name, "db_enforce")) {
        /* Judged once every attribute is read (parser.c): it needs a
         * validator, wherever that is written. */
        if (once(c, &pf->enforce_pos))
            no_args(c, a);
    } else if (!flag_attr(c, name, a, f) && !cs_check_attr(c, name, a, f)) {
        cs_diag(c->p->diags, c->pos,
                "unknown attribute @%.*s on %s (expected @id, @unique, @default, @updatedAt, "
                "@map, @relation, @version, @readonly, @pii, @sensitive, @length, @range, "
                "@email, @regex or @iso4217)",
                (int)name->len, name->start, c->owner);
    }
}

/* An attribute on an auth field or a type member, i.e. a claim of the
 * caller's token.  Validators and @pii/@sensitive mean what they mean on a
 * model field: the sync server checks a claim against them when it verifies
 * the token (a claim that breaks one refuses the token, like a claim of the
 * wrong type), and the value of a @pii claim is never quoted in that
 * refusal.  The others describe a stored column, which a claim is not:
 * each is skipped with a warning. */
void cs_auth_attr(actx *c, const cs_token *name, const pargs *a, cs_field *f)
{
    static const char *const column_only[] = {"id",        "unique",   "default",
                                              "updatedAt", "map",      "relation",
                                              "version",   "readonly", "server_only"};
    if (cs_tok_is(name, "pii") || cs_tok_is(name, "sensitive")) {
        if (no_args(c, a))
            f->sensitive = true;
        return;
    }
    if (cs_check_attr(c, name, a, f))
        return;
    for (size_t i = 0; i < sizeof column_only / sizeof column_only[0]; i++)
        if (cs_tok_is(name, column_only[i])) {
            cs_warn(c->p->diags, c->pos,
                    "%s on %s is ignored by the embedded runtime (a claim is not a stored column)",
                    c->attr, c->owner);
            return;
        }
    cs_diag(c->p->diags, c->pos,
            "unknown attribute @%.*s on %s (a claim takes @length, @range, @email, @regex, "
            "@iso4217, @pii or @sensitive)",
            (int)name->len, name->start, c->owner);
}

void cs_parse_ops(cs_parse *p, const cs_token *t, const char *attr, unsigned *ops)
{
    /* CrateStack's `list` (many rows) and `detail` (one row) are both reads
     * here: the store has one read path for both. */
    static const char *const names[] = {"read", "create", "update", "delete", "all",
                                        "list", "detail"};
    static const unsigned bits[] = {CS_POL_READ, CS_POL_CREATE, CS_POL_UPDATE, CS_POL_DELETE,
                                    CS_POL_ALL,  CS_POL_READ,   CS_POL_READ};
    const char *s = t->text;
    *ops = 0;
    while (*s) {
        while (*s == ' ' || *s == ',')
            s++;
        size_t n = strcspn(s, " ,");
        if (!n)
            break;
        size_t i = 0;
        while (i < 7 && !(strlen(names[i]) == n && memcmp(s, names[i], n) == 0))
            i++;
        if (i == 7) {
            cs_diag(p->diags, t->pos,
                    "unknown operation '%.*s' in %s (expected read, list, detail, create, "
                    "update, delete or all)",
                    (int)(n > 40 ? 40 : n), s, attr);
            *ops = 0;
            return;
        }
        *ops |= bits[i];
        s += n;
    }
    if (!*ops)
        cs_diag(p->diags, t->pos, "%s needs at least one operation", attr);
}

static void attr_emit(actx *c, const pargs *a, cs_model *m)
{
    if (!a->given) {
        m->emit = CS_EMIT_CREATED | CS_EMIT_UPDATED | CS_EMIT_DELETED;
        return;
    }
    if (a->n == 0)
        cs_diag(c->p->diags, c->pos,
                "@@emit needs at least one event (created, updated, "
                "deleted)");
    for (size_t i = 0; i < a->n; i++) {
        const parg *g = &a->v[i];
        unsigned bit = 0;
        if (g->kind == V_LIT && !g->name)
            bit = cs_tok_is(g->tok, "created")   ? CS_EMIT_CREATED
                  : cs_tok_is(g->tok, "updated") ? CS_EMIT_UPDATED
                  : cs_tok_is(g->tok, "deleted") ? CS_EMIT_DELETED
                                                 : 0;
        if (!bit)
            cs_diag(c->p->diags, g->pos,
                    "unknown @@emit event (expected created, updated or deleted)");
        else if (m->emit & bit)
            cs_diag(c->p->diags, g->pos, "event '%.*s' is listed twice in @@emit", (int)g->tok->len,
                    g->tok->start);
        m->emit |= bit;
    }
}


/* @@internal("create", ...) hides those actions from CrateStack's HTTP
 * routes while in-process callers keep them; the sync server has no such
 * routes, so it is checked and then ignored. */
static void attr_internal(actx *c, const pargs *a, cs_pmodel *pm)
{
    static const char *const acts[] = {"read", "create", "update", "delete",
                                       "list", "detail", "all"};
    if (!a->n) {
        cs_diag(c->p->diags, c->pos, "%s takes at least one argument", c->attr);
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < a->n; i++) {
        const parg *g = &a->v[i];
        bool known = false;
        for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++)
            known = known || (g->kind == V_LIT && !g->name && g->tok->kind == T_STRING &&
                              g->tok->text && strcmp(g->tok->text, acts[k]) == 0);
        if (!known)
            cs_diag(c->p->diags, g->pos,
                    "%s expects action names among \"read\", \"create\", \"update\", "
                    "\"delete\", \"list\", \"detail\" and \"all\"",
                    c->attr);
        ok = ok && known;
        bool reads =
            known && (strcmp(g->tok->text, "read") == 0 || strcmp(g->tok->text, "list") == 0 ||
                      strcmp(g->tok->text, "detail") == 0 || strcmp(g->tok->text, "all") == 0);
        if (reads && !pm->internal_read_pos.line)
            pm->internal_read_pos = g->pos;
    }
    if (ok)
        cs_warn(c->p->diags, c->pos, "%s on %s is ignored by the embedded runtime", c->attr,
                c->owner);
}

/* CrateStack's @@mcp(resource: "name", max_page_size: N): the server serves
 * the model's rows as MCP resources.  Nothing here serves MCP, so it is
 * read (a `resource:` string is required) and skipped with a warning. */
static void attr_mcp(actx *c, const pargs *a, cs_pmodel *pm)
{
    const parg *res = NULL;
    for (size_t i = 0; i < a->n; i++) {
        const parg *g = &a->v[i];
        if (!g->name || g->kind != V_LIT) {
            cs_diag(c->p->diags, g->pos, "%s takes named arguments (resource: \"name\", ...)",
                    c->attr);
            return;
        }
        if (cs_tok_is(g->name, "resource"))
            res = g;
    }
    if (!res || res->tok->kind != T_STRING) {
        cs_diag(c->p->diags, res ? res->pos : c->pos, "%s needs resource: \"name\"", c->attr);
        return;
    }
    pm->mcp_pos = c->pos;
    cs_warn(c->p->diags, c->pos,
            "%s on %s is ignored by the embedded runtime (the server's MCP exposure)", c->attr,
            c->owner);
}

void cs_model_attrs_done(cs_parse *p, const cs_model *m, const cs_pmodel *pm)
{
    if (pm->mcp_pos.line && pm->internal_read_pos.line)
        cs_diag(p->diags, pm->mcp_pos,
                "@@mcp on model '%s' serves reads that its @@internal (line %d) keeps off the "
                "wire; CrateStack refuses the two together",
                m->name, pm->internal_read_pos.line);
}
/* CrateStack's `@@index([...], using: METHOD, opclass: "ops")`: PostgreSQL's
 * index methods.  SQLite has only b-trees: `btree` and `hash` (equality,
 * which a b-tree serves) make the ordinary index; the methods for operators
 * SQLite lacks (GiST, GIN, BRIN, SP-GiST, pgvector's ivfflat and hnsw) make
 * none, with a warning, since a b-tree over such a column would only slow
 * writes.  An operator class is PostgreSQL's and is ignored with a warning.
 * Returns the arguments left for the field list (1), or 0 when diagnosed. */
static size_t index_method(actx *c, const pargs *a, bool *skip)
{
    static const char *const kept[] = {"btree", "hash"};
    static const char *const skipped[] = {"gist", "gin", "brin", "spgist", "ivfflat", "hnsw"};
    const parg *method = NULL, *opclass = NULL;
    for (size_t i = 1; i < a->n; i++) {
        const parg *g = &a->v[i];
        bool is_using = g->name && cs_tok_is(g->name, "using");
        if ((!is_using && !(g->name && cs_tok_is(g->name, "opclass"))) ||
            (is_using ? method : opclass)) {
            cs_diag(c->p->diags, g->pos,
                    "%s takes a field list, then using: and opclass:", c->attr);
            return 0;
        }
        *(is_using ? &method : &opclass) = g;
    }
    if (opclass && (opclass->kind != V_LIT || opclass->tok->kind != T_STRING)) {
        cs_diag(c->p->diags, opclass->pos, "%s: opclass: expects a quoted string", c->attr);
        return 0;
    }
    if (!method) {
        if (opclass)
            cs_diag(c->p->diags, opclass->pos, "%s: opclass: needs using: before it", c->attr);
        return opclass ? 0 : 1;
    }
    const cs_token *t = method->kind == V_LIT ? method->tok : NULL;
    for (size_t k = 0; t && t->kind == T_IDENT && k < 2 + 6; k++) {
        const char *name = k < 2 ? kept[k] : skipped[k - 2];
        if (!cs_tok_is(t, name))
            continue;
        *skip = k >= 2;
        if (*skip)
            cs_warn(c->p->diags, method->pos,
                    "%s(using: %s) on %s is ignored by the embedded runtime (SQLite has no %s "
                    "index)",
                    c->attr, name, c->owner, name);
        else if (opclass)
            cs_warn(c->p->diags, opclass->pos,
                    "%s opclass: on %s is ignored by the embedded runtime (a PostgreSQL "
                    "operator class)",
                    c->attr, c->owner);
        return 1;
    }
    cs_diag(c->p->diags, method->pos,
            "%s: using: takes an index method: btree, hash, gist, gin, brin, spgist, ivfflat or "
            "hnsw (unquoted)",
            c->attr);
    return 0;
}

static void attr_set(actx *c, const pargs *a, cs_pmodel *pm, cs_set_kind kind)
{
    bool skip = false;
    pargs first = *a;
    if (kind == CS_SET_INDEX && a->n > 1 && a->v[1].name) {
        first.n = index_method(c, a, &skip);
        if (!first.n)
            return;
    }
    const parg *g = one_arg(c, &first, "fields");
    if (!g)
        return;
    cs_pset *s = add_set(c->p, pm, kind, c->pos);
    if (s)
        s->skip = skip;
    if (s && !want_names(c, g, &s->names)) {
        cs_names_free(&s->names);
        pm->nsets--; /* forget the failed set */
    }
}

void cs_model_attr(actx *c, const cs_token *name, const pargs *a, cs_model *m, cs_pmodel *pm)
{
    if (cs_tok_is(name, "id") || cs_tok_is(name, "unique") || cs_tok_is(name, "index")) {
        cs_set_kind k = cs_tok_is(name, "id")       ? CS_SET_ID
                        : cs_tok_is(name, "unique") ? CS_SET_UNIQUE
                                                    : CS_SET_INDEX;
        attr_set(c, a, pm, k);
    } else if (cs_tok_is(name, "map")) {
        const parg *g = once(c, &pm->map_pos) ? one_arg(c, a, "name") : NULL;
        char *t = g ? want_string(c, g) : NULL;
        if (t) {
            free(m->table);
            m->table = t;
        }
    } else if (cs_tok_is(name, "soft_delete")) {
        /* Without an argument (CrateStack's form) the field is `deletedAt`,
         * which parser.c adds when the model does not declare it. */
        const parg *g = NULL;
        if (!once(c, &pm->soft_pos))
            ;
        else if (!a->n) {
            pm->soft_name = cs_xstrdup(c->p, CS_SOFT_DELETE_DEFAULT);
            pm->soft_implicit = true;
        } else if ((g = one_arg(c, a, "field")) && (g->kind != V_LIT || g->tok->kind != T_IDENT))
            cs_diag(c->p->diags, g->pos, "@@soft_delete expects a field name");
        else if (g)
            pm->soft_name = cs_tok_strdup(c->p, g->tok);
    } else if (cs_tok_is(name, "internal")) {
        attr_internal(c, a, pm);
    } else if (cs_tok_is(name, "mcp")) {
        attr_mcp(c, a, pm);
    } else if (cs_tok_is(name, "paged") || cs_tok_is(name, "subscribe") ||
               cs_tok_is(name, "retain")) {
        cs_warn(c->p->diags, c->pos, "%s on %s is ignored by the embedded runtime", c->attr,
                c->owner);
    } else if (cs_tok_is(name, "audit")) {
        if (once(c, &pm->audit_pos) && no_args(c, a))
            m->audit = true;
    } else if (cs_tok_is(name, "local")) {
        if (once(c, &pm->local_pos) && no_args(c, a))
            m->local = true;
    } else if (cs_tok_is(name, "emit")) {
        if (once(c, &pm->emit_pos))
            attr_emit(c, a, m);
    } else {
        cs_diag(c->p->diags, c->pos,
                "unknown attribute @@%.*s on %s (expected @@id, @@unique, @@index, @@map, "
                "@@allow, @@deny, @@soft_delete, @@audit, @@emit or @@local)",
                (int)name->len, name->start, c->owner);
    }
}
