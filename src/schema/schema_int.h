/*
 * schema_int.h -- private plumbing of the schema module: tokens, the parse
 * state shared by the lexer, the parsing files (cursor.c) and the
 * validator, diagnostics.
 *
 * Pipeline (cstack_schema_parse in schema.c):
 *   cs_lex        source -> token array (lexical errors become diagnostics,
 *                 the offending bytes are skipped so parsing can go on)
 *   cs_parse      tokens -> IR with names still unresolved; the facts the
 *                 validator needs but the IR has no room for (positions of
 *                 attributes, raw @relation/@@index names, raw defaults) are
 *                 kept in the parallel cs_pmodel / cs_pfield arrays
 *   cs_validate   resolves names to indices, checks every rule, fills
 *                 relations, indexes, defaults and policy types
 *   cs_canon      canonical text and hash
 */
#ifndef CS_SCHEMA_INT_H
#define CS_SCHEMA_INT_H

#include <stdarg.h>
#include <stdint.h>

#include "schema/schema.h"
#include "util/buf.h"
#include "util/hash.h"

#define CS_SCHEMA_MAX_SOURCE ((size_t)16 << 20)
#define CS_MAX_DIAGS 100
#define CS_MAX_EXPR_DEPTH 64
/* Far beyond any real schema (tens of thousands of models), but a bound on
 * the token array of a hostile input. */
#define CS_MAX_TOKENS ((size_t)2 << 20)

/* ---- diagnostics (diag.c) ---------------------------------------------- */

typedef struct cs_diag_item {
    cstack_diag pub;
    char *line; /* the source line, or a window of it; filled by cs_diags_finish */
    int caret;  /* the column of the caret in `line`, from 1 */
    size_t seq; /* emission order, to keep the sort stable */
} cs_diag_item;

struct cstack_diags {
    cs_diag_item *v;
    size_t n;
    size_t cap;
    char *file;
    size_t errors; /* every error reported, including dropped ones */
    cs_pos first_dropped;
    bool oom;
};

cstack_diags *cs_diags_new(const char *file);
/* Records an error at `pos`; past CS_MAX_DIAGS errors are only counted. */
void cs_diag(cstack_diags *d, cs_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cs_vdiag(cstack_diags *d, cs_pos pos, const char *fmt, va_list ap);
/* Records a warning ("warning: " + message) at `pos`; warnings are not
 * errors (they never fail the parse) and past CS_MAX_DIAGS are dropped. */
void cs_warn(cstack_diags *d, cs_pos pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sorts into source order, copies the source lines and appends the
 * "too many errors" note when some were dropped. */
void cs_diags_finish(cstack_diags *d, const char *src, size_t len);

/* ---- tokens (lexer.c) -------------------------------------------------- */

typedef enum cs_tok_kind {
    T_EOF,
    T_IDENT,
    T_STRING, /* text: unescaped, malloc'd */
    T_NUMBER,
    T_DOC, /* /// comment; text: the comment without the slashes */
    T_LBRACE,
    T_RBRACE,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
    T_COLON,
    T_ASSIGN,
    T_QUEST,
    T_BANG,
    T_CARET,
    T_DOT,
    T_AT,
    T_ATAT,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_AND,
    T_OR
} cs_tok_kind;

/* Kept small (32 bytes): a hostile 16 MiB source could otherwise need
 * gigabytes of tokens; CS_MAX_TOKENS bounds the array as well. */
typedef struct cs_token {
    const char *start; /* into the source */
    char *text;        /* T_STRING and T_DOC (and repaired T_IDENT); else NULL */
    cs_pos pos;
    uint32_t len;
    unsigned char kind; /* cs_tok_kind */
    /* A lexical error was reported in or just before this token: a syntax
     * error near it is most likely the same mistake, so it is not reported
     * again (see cs_syntax). */
    bool lexerr;
} cs_token;

const char *cs_tok_kind_name(cs_tok_kind k);

/* ---- parse-only facts ------------------------------------------------ */

typedef struct cs_names {
    char **v;
    cs_pos *pos;
    size_t n;
} cs_names;

typedef struct cs_pfield {
    cs_pos type_pos;
    bool bad_type; /* the type did not resolve (already reported) */
    cs_pos id_pos, unique_pos, updated_pos, map_pos; /* line 0: absent */
    /* @default(literal): the literal token kind and its raw text */
    cs_pos def_pos;
    cs_tok_kind def_tok;
    char *def_text;
    /* @relation(...) */
    cs_pos rel_pos; /* line 0: no @relation */
    bool rel_has_fields;
    bool rel_has_refs;
    cs_names rel_fields;
    cs_names rel_refs;
    char *rel_name;
    cs_action on_delete;
    cs_action on_update;
    bool from_mixin; /* copied in by @use: a model field of the same name overrides it */
    cs_pos computed_pos; /* CrateStack's @computed: the field is dropped (parser.c) */
    cs_pos enforce_pos;  /* CrateStack's @db_enforce: needs a validator on the field */
    /* CrateStack's Vector(n) / Geography(...) / Geometry(...): the type's
     * arguments as written (borrowed tokens; exttypes.c reads them). */
    bool ext_args; /* parentheses were written */
    size_t ext_n;
    const cs_token *ext_arg[3];
} cs_pfield;

typedef enum cs_set_kind {
    CS_SET_ID,
    CS_SET_UNIQUE,       /* @@unique */
    CS_SET_FIELD_UNIQUE, /* @unique on one field */
    CS_SET_INDEX
} cs_set_kind;

typedef struct cs_pset {
    cs_set_kind kind;
    cs_names names;
    cs_pos pos;
    bool skip; /* @@index(using: gist...): its fields are checked, no index is made */
} cs_pset;

typedef struct cs_pmodel {
    cs_pfield *fields; /* parallel to cs_model.fields */
    cs_pset *sets;
    size_t nsets;
    char *soft_name;
    cs_pos soft_pos;
    bool soft_implicit; /* argument-less @@soft_delete: deletedAt, added if absent */
    /* CrateStack's @@mcp and an @@internal that keeps a read off the wire:
     * the two together are refused, as CrateStack refuses them. */
    cs_pos mcp_pos, internal_read_pos;
    cs_pos map_pos;
    cs_pos audit_pos, emit_pos, local_pos;
    /* A field of this model failed to parse: names that are unknown may be
     * the lost field, so "unknown field" and "no primary key" errors are
     * suppressed to avoid a cascade of follow-on diagnostics. */
    bool broken;
} cs_pmodel;

/* Named blocks found before parsing (cs_scan_blocks), so a use may come
 * before the declaration: mixins (copied into models by @use) and CrateStack
 * types (composite auth fields). */
enum {
    CS_BLOCK_OK = 1,   /* the declaration parsed (a type: warn if unused) */
    CS_BLOCK_USED = 2, /* a type shapes an auth field: no warning */
    CS_BLOCK_OPEN = 4  /* a type is being expanded (finds types that contain themselves) */
};

typedef struct cs_blocks {
    const cs_token **name; /* the name token of each */
    size_t *body;          /* the token index of the first member of its body */
    unsigned char *state;  /* CS_BLOCK_* bits */
    size_t n;
} cs_blocks;

typedef struct cs_parse {
    const char *file;
    const char *src;
    size_t len;
    cstack_diags *diags;
    cs_token *toks;
    size_t ntoks;
    size_t cur;
    cstack_schema *s;
    cs_pmodel *pm;        /* parallel to s->models */
    cs_pfield *pauth;     /* parallel to s->auth.fields */
    cs_pfield *pauth_tmp; /* while an auth block is being parsed */
    bool auth_broken;     /* an auth field failed to parse */
    cs_pos ds_pos, auth_pos;
    int depth;           /* expression nesting while parsing */
    bool auth_value_ok;  /* parsing a field's @default: auth().claim may follow */
    size_t member_start; /* token index where the current member began */
    cs_blocks mixins;
    cs_blocks types;
    bool in_mixin; /* fields of a mixin are being copied into a model */
    /* `transport rpc` and the first procedure @status: CrateStack refuses a
     * REST status code under the RPC transport (serveronly.c). */
    cs_pos rpc_pos, status_pos;
    /* `extension pgvector { }` / `extension postgis { }` were declared:
     * CrateStack requires them for Vector and Geography fields. */
    bool has_pgvector, has_postgis;
    /* The type named by each @computed(params: T) (its name token, and
     * whether `T?` was written), judged once every declaration is read. */
    const cs_token **params;
    bool *params_optional;
    size_t nparams;
    bool limit_hit;      /* a size limit was reported */
    bool too_big;        /* CS_MAX_TOKENS exceeded: nothing was parsed */
    bool oom;
} cs_parse;

/* The field of an argument-less @@soft_delete (CrateStack's spelling). */
#define CS_SOFT_DELETE_DEFAULT "deletedAt"

/* CrateStack's 64-bit integer type: read as Int (already 64-bit here). */
#define CS_BIGINT "BigInt"

#define CS_MAX_MODELS 10000
#define CS_MAX_FIELDS 2000 /* SQLite's default column limit */
#define CS_MAX_MEMBERS 10000
#define CS_MAX_ATTRS 1000 /* @@index/@@unique sets and policies per model */

/* lexer.c */
int cs_lex(cs_parse *p);
void cs_tokens_free(cs_parse *p);

/* parser.c */
void cs_parse_tokens(cs_parse *p);
/* Parses `name Type[?|[]] @attrs...` into f.  `pm` is NULL in the auth
 * block and its types, whose attributes go to cs_auth_attr.  Returns false after a syntax
 * error (the caller recovers); the field is then incomplete but safe to
 * free. */
bool cs_parse_field(cs_parse *p, const char *owner, cs_field *f, cs_pfield *pf, cs_pmodel *pm);
/* One member of a block (a model, mixin, auth or type body).  False after a
 * syntax error: cs_parse_block then skips to the next member. */
typedef bool (*cs_member_fn)(cs_parse *p, void *ctx, char *doc);
/* Parses members up to and including the block's `}` (`what` and `name`
 * for the message when it is missing). */
void cs_parse_block(cs_parse *p, const char *what, const char *name, cs_member_fn fn, void *ctx);
/* Reads `KW NAME {` (the keyword is the current token); NULL (diagnosed)
 * when it is not there. */
const cs_token *cs_decl_head(cs_parse *p, const char *kw);
/* Skips to the next top-level declaration. */
void cs_skip_toplevel(cs_parse *p);

/* authblock.c: the auth block, whose fields may take the shape of a
 * CrateStack type (flattened into dotted fields, schema.h). */
void cs_parse_auth(cs_parse *p);

/* cursor.c: shared by every parsing file.
 * Capacity-free growth: arrays are sized to the next power of two, so
 * pushing element n reallocates only when n is 0 or a power of two.
 * Returns the zeroed new slot or NULL (p->oom set). */
void *cs_push(cs_parse *p, void *arrp, size_t n, size_t elem);
char *cs_tok_strdup(cs_parse *p, const cs_token *t);
char *cs_xstrdup(cs_parse *p, const char *s);
void cs_names_free(cs_names *n);
bool cs_names_push(cs_parse *p, cs_names *n, const cs_token *t);
/* The token cursor: cs_peek skips doc comments, which only matter where
 * parser.c takes them (take_docs). */
const cs_token *cs_peek(cs_parse *p);
const cs_token *cs_next(cs_parse *p);
bool cs_accept(cs_parse *p, cs_tok_kind k);
bool cs_tok_is(const cs_token *t, const char *word);
/* Reports a syntax error unless a lexical error was already reported
 * between the start of the current member and the current token. */
void cs_syntax(cs_parse *p, cs_pos pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "expected WHAT, found TOKEN" at the current token, through cs_syntax. */
void cs_err_expected(cs_parse *p, const char *what);
/* "'foo'", "string \"x\"", "end of file": what was found, for messages. */
const char *cs_tok_desc(const cs_token *t, char *buf, size_t n);
void cs_pmodel_free(cs_pmodel *pm, size_t nfields);
void cs_pfield_free(cs_pfield *pf);
/* True the first time a size limit is hit: one report per parse. */
bool cs_limit_once(cs_parse *p);

/* serveronly.c: CrateStack declarations the embedded runtime has no use
 * for (transport, procedure, view, extension, mcp) are parsed and skipped
 * with a warning; mixin and type blocks are recorded by cs_scan_blocks and
 * checked here (a type no auth field uses is warned about by
 * cs_warn_unused_types at the end).  True when the current token began such
 * a declaration. */
bool cs_parse_server_only(cs_parse *p);
/* The arguments of a model field's @computed (after its name): nothing,
 * `()` or `(params: Type)`; false after a syntax error. */
bool cs_parse_computed_args(cs_parse *p);
/* Rules that span declarations of skipped constructs (a procedure's @status
 * under `transport rpc`, the type @computed(params: T) names), checked once
 * everything is parsed. */
void cs_check_server_only(cs_parse *p);
void cs_scan_blocks(cs_parse *p);
/* The index of the block named like `t` in b, or -1. */
int cs_block_find(const cs_blocks *b, const cs_token *t);
int cs_block_find_name(const cs_blocks *b, const char *name);
void cs_warn_unused_types(cs_parse *p);
void cs_blocks_free(cs_blocks *b);
bool cs_is_extra_keyword(const cs_token *t);

/* exttypes.c: CrateStack's column types from PostgreSQL extensions.
 * cs_ext_type_name: whether `name` is one (Vector, Geography, Geometry).
 * cs_parse_ext_args reads `(args)` after such a type into pf (false after a
 * syntax error).  cs_ext_resolve gives field f its semantics once the whole
 * file is read (Vector(n): a Float list of n elements; Geography/Geometry:
 * Bytes holding EWKB of the declared shape), or diagnoses it.
 * cs_geo_check checks one EWKB value: NULL, or why it does not fit. */
bool cs_ext_type_name(const char *name);
bool cs_parse_ext_args(cs_parse *p, cs_pfield *pf);
void cs_ext_resolve(cs_parse *p, const char *owner, cs_field *f, cs_pfield *pf, bool auth);
const char *cs_geo_check(const cs_checks *k, const unsigned char *b, size_t n, char *why,
                         size_t whylen);

/* Generic attribute arguments as parsed (attrs.c).
 * Items of lists and calls are literal tokens (no nesting). */
/* literal, f(...), [...], auth().claim (only in a field's @default) */
typedef enum { V_LIT, V_CALL, V_LIST, V_AUTH } vkind;

typedef struct parg {
    const cs_token *name; /* `name:` or NULL */
    vkind kind;
    const cs_token *tok; /* the literal, or the called function's name */
    const cs_token **items;
    size_t n;
    cs_pos pos;
} parg;

typedef struct pargs {
    parg *v;
    size_t n;
    bool given; /* parentheses were present */
} pargs;

typedef struct actx {
    cs_parse *p;
    const char *attr;  /* "@default", "@@index" */
    const char *owner; /* "field 'Note.id'" or "model 'Note'" */
    cs_pos pos;
    const cs_token *field_tok; /* the field being parsed, for @unique */
} actx;

/* attrs.c: `(args)` when present (a->given says so), one value, cleanup. */
bool cs_parse_args(cs_parse *p, pargs *a);
bool cs_parse_value(cs_parse *p, parg *a);
void cs_pargs_free(pargs *a);

/* attrs.c */
void cs_field_attr(actx *c, const cs_token *name, const pargs *a, cs_field *f, cs_pfield *pf,
                   cs_pmodel *pm);
/* The same on an auth field or a type member (a claim). */
void cs_auth_attr(actx *c, const cs_token *name, const pargs *a, cs_field *f);
void cs_model_attr(actx *c, const cs_token *name, const pargs *a, cs_model *m, cs_pmodel *pm);
/* Rules between a model's attributes, once its body is parsed. */
void cs_model_attrs_done(cs_parse *p, const cs_model *m, const cs_pmodel *pm);
void cs_parse_ops(cs_parse *p, const cs_token *t, const char *attr, unsigned *ops);

/* checks.c: @length, @range, @email, @iso4217, @regex on field f; false
 * when `name` is none of them. */
bool cs_check_attr(actx *c, const cs_token *name, const pargs *a, cs_field *f);
void cs_checks_free(cs_checks *k);

/* policy.c: expressions */
cs_expr *cs_new_expr(cs_parse *p, cs_expr_kind k, cs_pos pos);
/* An operand: `!x`, a literal, a path, auth()..., (expr). */
cs_expr *cs_parse_operand(cs_parse *p, int *h);
bool cs_expr_too_deep(cs_parse *p, int h, cs_pos pos);
/* CrateStack's `x in [...]` / `x not in [...]` after the operand x that
 * began at token lstart (policy_crate.c); takes x. */
bool cs_at_in(const cs_parse *p);
cs_expr *cs_parse_in(cs_parse *p, cs_expr *lhs, size_t lstart, int *h);
/* policy_crate.c: CrateStack's spellings, rewritten while parsing.
 * `hasRole('x')` / `auth().hasRole('x')` / `auth().isSystem()`: `name` is
 * the method's token, the current token its '('. */
cs_expr *cs_crate_auth_call(cs_parse *p, const cs_token *name, cs_pos pos);
/* hasRole()'s field, once the auth block is known: rewrites a marked
 * `auth().role == "x"` to read `actor.role` when the auth block has that
 * and no `role`, or both in CrateStack's order when it has both; false on
 * OOM. */
bool cs_crate_role_fallback(cs_parse *p, cs_expr *e);
/* The index of a `some` / `every` / `none` segment in a field path that has
 * segments on both sides, or 0. */
size_t cs_crate_quantifier_at(const cs_expr *e);
/* `rel.some.x OP y` -> `rel?[x OP y]` (every: !, none: ^); takes e. */
cs_expr *cs_crate_quantified(cs_parse *p, cs_expr *e, int *h);
cs_expr *cs_parse_expr(cs_parse *p);
void cs_expr_free(cs_expr *e);
/* policy_auth.c: types auth() / auth().field (members of composite fields
 * included) in a policy on model `root`; false when diagnosed. */
bool cs_check_auth(cs_parse *p, const char *root, cs_expr *e);
/* Whether the auth block has a plain (not composite) field `name`. */
bool cs_auth_has(const cs_parse *p, const char *name);
/* Rewrites a checked `auth() == rel` / `rel == auth()` (or !=) into the
 * comparison of auth().id with the relation's key: 0 when e is not that
 * shape, 1 rewritten to the row's own foreign key, 2 rewritten through the
 * relation (one more hop), -1 diagnosed. */
int cs_auth_relation(cs_parse *p, const char *root, cs_expr *e, int mi);
void cs_validate_policies(cs_parse *p, int mi);
int cs_expr_canon(cs_buf *b, const cs_expr *e);

/* validate.c */
void cs_validate(cs_parse *p);
/* keys.c: primary key, unique sets, indexes, soft delete of model mi */
void cs_validate_keys(cs_parse *p, size_t mi);
/* relations.c: owning sides first (for every model), then back sides */
void cs_validate_owning(cs_parse *p, size_t mi);
void cs_validate_back(cs_parse *p, size_t mi);

/* A map of borrowed names to ints (schema.c) over util/'s hash set, so
 * duplicate checks stay linear on schemas with thousands of models or
 * members.  `ci`: ASCII case-insensitive (SQL identifiers). */
typedef struct cs_name_entry {
    const char *key;
    int val;
} cs_name_entry;

typedef struct cs_nameset {
    cs_hset set;
    cs_name_entry *items;
    size_t n, cap;
    bool ci;
} cs_nameset;

/* Adds key -> val; returns the value already stored for an equal key, or
 * -1 when the key was added (or on OOM, with p->oom set). */
int cs_nameset_add(cs_parse *p, cs_nameset *s, const char *key, int val);
void cs_nameset_free(cs_nameset *s);

/* schema.c */
void cs_schema_destroy(cstack_schema *s);
void cs_field_clear(cs_field *f);
int cs_canon(cstack_schema *s);

/* Shared by validate.c and policy.c: the model index of the field path
 * segment's relation, etc. */
bool cs_name_reserved(const char *name);

#endif
