/*
 * serveronly.c -- CrateStack declarations outside the data model.
 *
 * CrateStack schemas also describe a server: its transport, procedures,
 * views, extensions, MCP exposure and the types procedures take.  The
 * embedded runtime has no use for them, so each is parsed in full (a
 * malformed one is still an error with its position) and then skipped with
 * one warning.  Mixins and types can be data model: cs_scan_blocks records
 * them before parsing, so a model's @use can copy a mixin's fields and an
 * auth field can take a type's shape (authblock.c) wherever they are
 * declared.  A type that no auth field uses is skipped with a warning like
 * the server-only declarations.
 *
 *   transport NAME
 *   [mutation] procedure NAME '(' (NAME ':' TYPE (',' ...)*)? ')' ':' TYPE ('@' attr)*
 *   query NAME '(' ... ')' ':' TYPE ('@' attr | '@@' attr)*   (a server-side SQL query)
 *   view NAME ('from' NAME (',' NAME)*)? '{' ... '}'
 *   extension NAME '{' ... '}'        mcp '{' ... '}'
 *   type NAME '{' (NAME TYPE ('@' attr)*)* '}'
 *   mixin NAME '{' fields '}'
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

static const char *const EXTRA[] = {"transport", "procedure", "mutation", "view", "extension",
                                    "mcp",       "type",      "mixin",    "query"};

bool cs_is_extra_keyword(const cs_token *t)
{
    for (size_t i = 0; i < sizeof EXTRA / sizeof EXTRA[0]; i++)
        if (cs_tok_is(t, EXTRA[i]))
            return true;
    return false;
}

/* Consumes `{ ... }` (nested braces included); the caller saw the `{`. */
static bool skip_braces(cs_parse *p, const char *what)
{
    const cs_token *open = cs_peek(p);
    if (!cs_accept(p, T_LBRACE)) {
        cs_err_expected(p, "'{'");
        return false;
    }
    for (int depth = 1; depth > 0;) {
        const cs_token *t = cs_next(p);
        if (t->kind == T_EOF) {
            cs_syntax(p, open->pos, "unclosed '{' of %s", what);
            return false;
        }
        depth += t->kind == T_LBRACE ? 1 : t->kind == T_RBRACE ? -1 : 0;
    }
    return true;
}

/* Consumes `( ... )` with nesting; the current token is the `(`. */
static bool skip_parens(cs_parse *p)
{
    const cs_token *open = cs_next(p);
    for (int depth = 1; depth > 0;) {
        const cs_token *t = cs_next(p);
        if (t->kind == T_EOF) {
            cs_syntax(p, open->pos, "unclosed '('");
            return false;
        }
        depth += t->kind == T_LPAREN ? 1 : t->kind == T_RPAREN ? -1 : 0;
    }
    return true;
}

static const cs_token *want_name(cs_parse *p, const char *what)
{
    if (cs_peek(p)->kind == T_IDENT)
        return cs_next(p);
    cs_err_expected(p, what);
    return NULL;
}

/* TYPE: NAME ('<' TYPE (',' TYPE)* '>')? ('(' ... ')')? ('[' ']')? '?'?
 * (`Page<Post>`, `Decimal(10, 2)`); type arguments nest at most 8 deep. */
static bool type_ref_at(cs_parse *p, int depth)
{
    if (!want_name(p, "a type"))
        return false;
    if (cs_peek(p)->kind == T_LT) {
        if (depth >= 8) {
            cs_syntax(p, cs_peek(p)->pos, "type arguments nest too deeply (limit 8)");
            return false;
        }
        cs_next(p);
        do {
            if (!type_ref_at(p, depth + 1))
                return false;
        } while (cs_accept(p, T_COMMA));
        if (!cs_accept(p, T_GT)) {
            cs_err_expected(p, "'>' or ','");
            return false;
        }
    }
    if (cs_peek(p)->kind == T_LPAREN && !skip_parens(p))
        return false;
    if (cs_accept(p, T_LBRACK) && !cs_accept(p, T_RBRACK)) {
        cs_err_expected(p, "']'");
        return false;
    }
    cs_accept(p, T_QUEST);
    return true;
}

static bool type_ref(cs_parse *p)
{
    return type_ref_at(p, 0);
}

/* The attributes of a procedure that CrateStack's own rules look at. */
typedef struct proc_attrs {
    const cs_token *status;   /* @status(N): the number */
    const cs_token *stream;   /* @stream */
    const cs_token *mcp_tool; /* @mcp(tool ...) */
} proc_attrs;

/* (('@' | '@@') NAME ('(' ... ')')?)*: attributes read, not interpreted
 * (a query's SQL body is `@@sql("""...""")`), except what `pa` records. */
static bool attr_list(cs_parse *p, proc_attrs *pa)
{
    while (cs_accept(p, T_AT) || cs_accept(p, T_ATAT)) {
        const cs_token *name = want_name(p, "an attribute name after '@'");
        if (!name)
            return false;
        const cs_token *arg = cs_peek(p)->kind == T_LPAREN ? &p->toks[p->cur + 1] : NULL;
        if (cs_tok_is(name, "status") && arg && arg->kind == T_NUMBER)
            pa->status = arg;
        else if (cs_tok_is(name, "stream"))
            pa->stream = name;
        else if (cs_tok_is(name, "mcp") && arg && cs_tok_is(arg, "tool"))
            pa->mcp_tool = name;
        if (cs_peek(p)->kind == T_LPAREN && !skip_parens(p))
            return false;
    }
    return true;
}

/* CrateStack's parser refuses these procedures, so they are refused here
 * too although procedures are skipped: a success @status outside 2xx, a
 * @stream procedure as an MCP tool (a tool returns one result), and an MCP
 * tool taking a Json argument (which has no JSON Schema to advertise). */
static void check_procedure(cs_parse *p, const proc_attrs *pa, const cs_token *json_arg)
{
    if (pa->status) {
        char buf[16];
        snprintf(buf, sizeof buf, "%.*s", pa->status->len > 12 ? 12 : (int)pa->status->len,
                 pa->status->start);
        long code = strtol(buf, NULL, 10);
        if (code < 200 || code > 299)
            cs_diag(p->diags, pa->status->pos,
                    "@status must be a 2xx success code (the status of a successful call)");
        else if (!p->status_pos.line)
            p->status_pos = pa->status->pos;
    }
    if (pa->mcp_tool && pa->stream)
        cs_diag(p->diags, pa->mcp_tool->pos,
                "a @stream procedure cannot be an MCP tool (a tool returns one result)");
    if (pa->mcp_tool && json_arg)
        cs_diag(p->diags, json_arg->pos,
                "an MCP tool cannot take a Json argument (Json has no JSON Schema to advertise)");
}

/* @computed's arguments on a model field: `(params: Type)` names the type of
 * the resolver's parameters (`Type?` when they are optional). */
bool cs_parse_computed_args(cs_parse *p)
{
    if (!cs_accept(p, T_LPAREN) || cs_accept(p, T_RPAREN))
        return true;
    if (!cs_tok_is(cs_peek(p), "params")) {
        cs_err_expected(p, "'params:' or ')' in @computed");
        return false;
    }
    cs_next(p);
    if (!cs_accept(p, T_COLON)) {
        cs_err_expected(p, "':' after 'params'");
        return false;
    }
    const cs_token *name = cs_peek(p);
    if (!type_ref(p))
        return false;
    bool optional = p->toks[p->cur - 1].kind == T_QUEST;
    if (!cs_accept(p, T_RPAREN)) {
        cs_err_expected(p, "')' to close @computed");
        return false;
    }
    /* A mixin's fields are parsed once per model that uses it. */
    for (size_t i = 0; i < p->nparams; i++)
        if (p->params[i] == name)
            return true;
    const cs_token **n = cs_push(p, &p->params, p->nparams, sizeof *n);
    bool *o = n ? cs_push(p, &p->params_optional, p->nparams, sizeof *o) : NULL;
    if (o) {
        n[0] = name;
        o[0] = optional;
        p->nparams++;
    }
    return true;
}

/* Whether the body of type block ti has a @computed member. */
static bool type_has_computed(const cs_parse *p, size_t ti)
{
    int depth = 0;
    for (size_t i = p->types.body[ti]; i + 1 < p->ntoks; i++) {
        const cs_token *t = &p->toks[i];
        if (t->kind == T_LBRACE)
            depth++;
        else if (t->kind == T_RBRACE && depth-- == 0)
            return false;
        else if (t->kind == T_AT && cs_tok_is(t + 1, "computed"))
            return true;
    }
    return false;
}

/* CrateStack's rules on @computed(params: T): T is a `type` block declared
 * in the schema, without @computed members of its own, and written `T?`
 * (its parameters are optional in every request). */
static void check_computed_params(cs_parse *p)
{
    for (size_t i = 0; i < p->nparams; i++) {
        const cs_token *t = p->params[i];
        int len = t->len > 60 ? 60 : (int)t->len;
        char name[64];
        snprintf(name, sizeof name, "%.*s", len, t->start);
        int ti = cs_block_find(&p->types, t);
        const char *is = cs_scalar_find(name) >= 0 || strcmp(name, CS_BIGINT) == 0 ? "a scalar"
                         : cs_enum_find(p->s, name) >= 0                          ? "an enum"
                         : cs_model_find(p->s, name) >= 0                         ? "a model"
                                                                                  : NULL;
        if (is)
            cs_diag(p->diags, t->pos,
                    "@computed(params: %s): '%s' is %s, not a declared `type` block", name, name,
                    is);
        else if (ti < 0)
            cs_diag(p->diags, t->pos,
                    "@computed(params: %s): no type '%s' is declared in this schema", name, name);
        else if (type_has_computed(p, (size_t)ti))
            cs_diag(p->diags, t->pos,
                    "@computed(params: %s): type '%s' has @computed members itself", name, name);
        else if (!p->params_optional[i])
            cs_diag(p->diags, t->pos,
                    "@computed(params: %s): CrateStack takes optional parameters only; write "
                    "'%s?'",
                    name, name);
    }
}

void cs_check_server_only(cs_parse *p)
{
    check_computed_params(p);
    if (p->rpc_pos.line && p->status_pos.line)
        cs_diag(p->diags, p->status_pos,
                "@status sets a REST response code; CrateStack refuses it under `transport rpc` "
                "(line %d)",
                p->rpc_pos.line);
}

/* A procedure or a query: the same signature. */
static bool procedure(cs_parse *p, const char *what)
{
    if (cs_tok_is(cs_peek(p), "mutation")) {
        cs_next(p);
        if (!cs_tok_is(cs_peek(p), "procedure")) {
            cs_err_expected(p, "'procedure' after 'mutation'");
            return false;
        }
    }
    cs_next(p);
    char b[64];
    snprintf(b, sizeof b, "a %s name", what);
    if (!want_name(p, b))
        return false;
    if (!cs_accept(p, T_LPAREN)) {
        snprintf(b, sizeof b, "'(' after the %s name", what);
        cs_err_expected(p, b);
        return false;
    }
    const cs_token *json_arg = NULL;
    while (!cs_accept(p, T_RPAREN)) {
        if (!want_name(p, "an argument name or ')'"))
            return false;
        if (!cs_accept(p, T_COLON)) {
            cs_err_expected(p, "':' and the argument's type");
            return false;
        }
        if (!json_arg && cs_tok_is(cs_peek(p), "Json"))
            json_arg = cs_peek(p);
        if (!type_ref(p))
            return false;
        if (!cs_accept(p, T_COMMA) && cs_peek(p)->kind != T_RPAREN) {
            cs_err_expected(p, "',' or ')'");
            return false;
        }
    }
    if (!cs_accept(p, T_COLON)) {
        snprintf(b, sizeof b, "':' and the %s's return type", what);
        cs_err_expected(p, b);
        return false;
    }
    proc_attrs pa = {0};
    if (!type_ref(p) || !attr_list(p, &pa))
        return false;
    check_procedure(p, &pa, json_arg);
    return true;
}

static bool view(cs_parse *p)
{
    cs_next(p);
    if (!want_name(p, "a view name"))
        return false;
    if (cs_tok_is(cs_peek(p), "from")) {
        do {
            cs_next(p);
            if (!want_name(p, "a model name"))
                return false;
        } while (cs_peek(p)->kind == T_COMMA);
    }
    return skip_braces(p, "the view");
}

/* `KW NAME { ... }` (extension, type, mixin) or `mcp { ... }`. */
static bool block(cs_parse *p, bool named, const char *what)
{
    cs_next(p);
    if (named && !want_name(p, "a name"))
        return false;
    return skip_braces(p, what);
}

static bool transport(cs_parse *p)
{
    const cs_token *kw = cs_next(p);
    const cs_token *t = cs_peek(p);
    if (t->kind != T_IDENT || t->pos.line != kw->pos.line) {
        cs_err_expected(p, "a transport style after 'transport'");
        return false;
    }
    cs_next(p);
    if (cs_tok_is(t, "rpc") && !p->rpc_pos.line)
        p->rpc_pos = t->pos;
    return true;
}

/* Skips to the next top-level declaration after a malformed one. */
static void recover(cs_parse *p)
{
    for (;;) {
        const cs_token *t = cs_peek(p);
        bool first = p->cur == 0 || p->toks[p->cur - 1].pos.line < t->pos.line;
        if (t->kind == T_EOF || (first && t->kind == T_IDENT &&
                                 (cs_is_extra_keyword(t) || cs_tok_is(t, "model") ||
                                  cs_tok_is(t, "enum") || cs_tok_is(t, "auth") ||
                                  cs_tok_is(t, "datasource"))))
            return;
        cs_next(p);
    }
}

bool cs_parse_server_only(cs_parse *p)
{
    const cs_token *kw = cs_peek(p);
    if (!cs_is_extra_keyword(kw))
        return false;
    const cs_token *name = &p->toks[p->cur + 1];
    bool ok;
    const char *what;
    if (cs_tok_is(kw, "procedure") || cs_tok_is(kw, "mutation")) {
        ok = procedure(p, "procedure");
        what = "procedure";
    } else if (cs_tok_is(kw, "query")) {
        ok = procedure(p, "query");
        what = "query";
    } else if (cs_tok_is(kw, "view")) {
        ok = view(p);
        what = "view";
    } else if (cs_tok_is(kw, "transport")) {
        ok = transport(p);
        what = "transport";
    } else if (cs_tok_is(kw, "mcp")) {
        ok = block(p, false, "the mcp block");
        what = "mcp block";
    } else {
        ok = block(p, true, cs_tok_is(kw, "type") ? "the type" : "the block");
        what = cs_tok_is(kw, "extension") ? "extension" : NULL;
    }
    if (cs_tok_is(kw, "mutation") && name->kind == T_IDENT)
        name++;
    /* Vector and Geography fields need their extension declared (exttypes.c). */
    if (ok && what && strcmp(what, "extension") == 0) {
        p->has_pgvector = p->has_pgvector || cs_tok_is(name, "pgvector");
        p->has_postgis = p->has_postgis || cs_tok_is(name, "postgis");
    }
    if (!ok)
        recover(p);
    else if (what && name->kind == T_IDENT && !cs_tok_is(kw, "transport"))
        cs_warn(p->diags, kw->pos, "%s '%.*s' is ignored by the embedded runtime", what,
                name->len > 60 ? 60 : (int)name->len, name->start);
    else if (what)
        cs_warn(p->diags, kw->pos, "%s is ignored by the embedded runtime", what);
    /* A type's warning waits until the end: an auth field may use it. */
    int ti = ok && cs_tok_is(kw, "type") ? cs_block_find(&p->types, name) : -1;
    if (ti >= 0 && p->types.name[ti] == name)
        p->types.state[ti] |= CS_BLOCK_OK;
    return true;
}

/* Records `KW NAME {` at the top level in b. */
static void scan_one(cs_parse *p, cs_blocks *b, size_t i, const char *what)
{
    const cs_token *t = &p->toks[i];
    if (b->n >= CS_MAX_MODELS) {
        if (cs_limit_once(p))
            cs_diag(p->diags, t->pos, "too many %ss (limit %d)", what, CS_MAX_MODELS);
        return;
    }
    if (cs_block_find(b, &t[1]) >= 0) {
        cs_diag(p->diags, t[1].pos, "duplicate %s '%.*s'", what, (int)t[1].len, t[1].start);
        return;
    }
    const cs_token **n = cs_push(p, &b->name, b->n, sizeof *n);
    size_t *body = n ? cs_push(p, &b->body, b->n, sizeof *body) : NULL;
    unsigned char *st = body ? cs_push(p, &b->state, b->n, sizeof *st) : NULL;
    if (!st)
        return;
    *n = &t[1];
    *body = i + 3;
    b->n++;
}

void cs_scan_blocks(cs_parse *p)
{
    int depth = 0;
    for (size_t i = 0; i + 2 < p->ntoks && !p->oom; i++) {
        const cs_token *t = &p->toks[i];
        depth += t->kind == T_LBRACE ? 1 : t->kind == T_RBRACE ? -1 : 0;
        if (depth != 0 || t[1].kind != T_IDENT || t[2].kind != T_LBRACE)
            continue;
        if (cs_tok_is(t, "mixin"))
            scan_one(p, &p->mixins, i, "mixin");
        else if (cs_tok_is(t, "type"))
            scan_one(p, &p->types, i, "type");
    }
}

int cs_block_find(const cs_blocks *b, const cs_token *t)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->name[i]->len == t->len && memcmp(b->name[i]->start, t->start, t->len) == 0)
            return (int)i;
    return -1;
}

int cs_block_find_name(const cs_blocks *b, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < b->n; i++)
        if (b->name[i]->len == n && memcmp(b->name[i]->start, name, n) == 0)
            return (int)i;
    return -1;
}

/* The members of a type no auth field uses (a procedure's argument shape):
 * `(NAME TYPE attr*)* }`, read so that a malformed one is an error even
 * though the type is skipped.  Types that shape auth fields are read as
 * fields by authblock.c instead. */
static bool unused_type_body(cs_parse *p, size_t body)
{
    size_t cur = p->cur;
    p->cur = p->member_start = body;
    bool ok = true;
    while (ok && !cs_accept(p, T_RBRACE)) {
        const cs_token *t = cs_peek(p);
        char b[64];
        /* At the member itself, not after the line before it. */
        if (t->kind != T_IDENT)
            cs_syntax(p, t->pos, "expected a member name or '}', found %s",
                      cs_tok_desc(t, b, sizeof b));
        proc_attrs ignored = {0};
        ok = t->kind == T_IDENT && cs_next(p) && type_ref(p) && attr_list(p, &ignored);
    }
    p->cur = cur;
    return ok;
}

void cs_warn_unused_types(cs_parse *p)
{
    for (size_t i = 0; i < p->types.n; i++) {
        const cs_token *name = p->types.name[i];
        if (p->types.state[i] == CS_BLOCK_OK && unused_type_body(p, p->types.body[i]))
            cs_warn(p->diags, name[-1].pos, "type '%.*s' is ignored by the embedded runtime",
                    name->len > 60 ? 60 : (int)name->len, name->start);
    }
}

void cs_blocks_free(cs_blocks *b)
{
    free(b->name);
    free(b->body);
    free(b->state);
    memset(b, 0, sizeof *b);
}
