/*
 * jsonr.c -- the tree builder of the JSON reader (see jsonr.h for
 * what it accepts and the tree it builds; jsonr_lex.c is the lexer).
 *
 * The parser follows jansson's parse_object and parse_array token for token,
 * so that each malformed input gets the error jansson gave (jsonr_lex.c says
 * why).  Structural tokens that must come next are looked at with jr_peek()
 * rather than read: when the byte is another, jr_lex() reads that token for
 * the error.  The parser is recursive, one frame per open array or object,
 * which the depth bound keeps small.
 */
#include <stdlib.h>
#include <string.h>

#include "util/hash.h"
#include "util/jsonr_int.h"

#define HASH_FROM 16 /* from this many members on, duplicate keys are hashed */

/* ---- duplicate keys ------------------------------------------------------------- */

static bool same_bytes(const jr_val *a, const char *s, size_t n)
{
    return a->n == n && (n == 0 || memcmp(a->u.s, s, n) == 0);
}

/* The key's bytes hashed from a start that depends on its object, so equal
 * keys of different objects spread over the table. */
static size_t key_hash(const jr_val *key, size_t obj)
{
    return (size_t)cs_fnv1a64(CS_FNV64_INIT ^ ((uint64_t)obj * 0x9E3779B97F4A7C15ull), key->u.s,
                              key->n);
}

/* Puts a pair into a table known to have room and not to hold its key. */
static void keyset_put(uint32_t *slot, size_t cap, const jr_val *vals, uint32_t obj1, uint32_t key)
{
    size_t i = key_hash(&vals[key], obj1 - 1) & (cap - 1);
    while (slot[2 * i])
        i = (i + 1) & (cap - 1);
    slot[2 * i] = obj1;
    slot[2 * i + 1] = key;
}

static int keyset_grow(jr_keyset *ks, const jr_val *vals)
{
    size_t cap = ks->cap ? ks->cap * 2 : 64;
    uint32_t *slot = calloc(cap, 2 * sizeof *slot);
    if (!slot)
        return -1;
    for (size_t i = 0; i < ks->cap; i++)
        if (ks->slot[2 * i])
            keyset_put(slot, cap, vals, ks->slot[2 * i], ks->slot[2 * i + 1]);
    free(ks->slot);
    ks->slot = slot;
    ks->cap = cap;
    return 0;
}

/* Adds key node `key` of object node `obj`; *dup when the object has an equal
 * key already (then nothing is added). */
static jr_err keyset_add(jr_parser *p, size_t obj, size_t key, bool *dup)
{
    jr_keyset *ks = &p->keys;
    const jr_val *vals = p->doc->vals;
    if ((ks->used + 1) * 2 > ks->cap && keyset_grow(ks, vals))
        return jr_fail(p, JR_ENOMEM, p->start);
    size_t mask = ks->cap - 1;
    const jr_val *k = &vals[key];
    for (size_t i = key_hash(k, obj) & mask;; i = (i + 1) & mask) {
        uint32_t *e = &ks->slot[2 * i];
        if (!e[0]) {
            e[0] = (uint32_t)obj + 1;
            e[1] = (uint32_t)key;
            ks->used++;
            *dup = false;
            return JR_OK;
        }
        if (e[0] == obj + 1 && same_bytes(&vals[e[1]], k->u.s, k->n)) {
            *dup = true;
            return JR_OK;
        }
    }
}

/* ---- tree ------------------------------------------------------------------------- */

/* Doubles the node array, moving it out of the caller's room the first
 * time. */
static jr_err grow(jr_parser *p)
{
    jr_doc *d = p->doc;
    size_t bytes = 2 * p->cap * sizeof *d->vals;
    jr_val *v = d->vals == d->room ? malloc(bytes) : realloc(d->vals, bytes);
    if (!v)
        return jr_fail(p, JR_ENOMEM, p->start);
    if (d->vals == d->room)
        memcpy(v, d->vals, d->nvals * sizeof *v);
    d->vals = v;
    p->cap *= 2;
    return JR_OK;
}

/* Appends a node; its index is the old doc->nvals. */
static inline jr_err push(jr_parser *p, jr_type type, const char *s, size_t n)
{
    jr_doc *d = p->doc;
    if (d->nvals == p->cap && grow(p))
        return JR_ENOMEM;
    jr_val *v = &d->vals[d->nvals++];
    v->u.s = s;
    v->n = (uint32_t)n;
    v->type = (uint8_t)type;
    return JR_OK;
}

/* Whether the current string token repeats one of the first `count` keys of
 * object node `obj`.  Below HASH_FROM members a scan is cheapest. */
static jr_err check_key(jr_parser *p, size_t obj, size_t count)
{
    if (count < HASH_FROM) {
        const jr_val *k = &p->doc->vals[obj + 1];
        for (size_t i = 0; i < count; i++, k = jr_next(k + 1))
            if (same_bytes(k, p->str, p->slen))
                return jr_syntax(p, "duplicate object key");
        return push(p, JR_STRING, p->str, p->slen);
    }
    size_t key = p->doc->nvals;
    jr_err rc = push(p, JR_STRING, p->str, p->slen);
    bool dup = false;
    if (count == HASH_FROM) { /* the first keys, distinct, go in now */
        const jr_val *k = &p->doc->vals[obj + 1];
        for (size_t i = 0; !rc && i < count; i++, k = jr_next(k + 1))
            rc = keyset_add(p, obj, (size_t)(k - p->doc->vals), &dup);
    }
    if (!rc)
        rc = keyset_add(p, obj, key, &dup);
    return !rc && dup ? jr_syntax(p, "duplicate object key") : rc;
}

static jr_err parse_value(jr_parser *p);

/* The error of a missing structural token: about the token that is there
 * instead (jr_peek() has just seen another byte, so jr_lex() cannot read the
 * expected token). */
static jr_err expected(jr_parser *p, const char *what)
{
    jr_err rc = jr_lex(p);
    return rc ? rc : jr_syntax(p, "%s expected", what);
}

/* Reads the string token at p->pos, which jr_peek() has seen start with '"'. */
static jr_err lex_string_at(jr_parser *p)
{
    p->start = p->pos;
    return jr_count_value(p, p->pos) ? JR_EVALUES : jr_lex_string(p);
}

/* Reads the next token and the value it starts: jr_lex() then parse_value(),
 * with strings and numbers, most values of a request, read directly. */
static jr_err read_value(jr_parser *p)
{
    int c = jr_peek(p);
    jr_err rc;
    if (c == '"') {
        if ((rc = lex_string_at(p)))
            return rc;
        return push(p, JR_STRING, p->str, p->slen);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        p->start = p->pos;
        if ((rc = jr_count_value(p, p->pos)) || (rc = jr_lex_number(p)))
            return rc;
        if (p->tok != T_NUMBER)
            return jr_syntax(p, "invalid token");
        return push(p, JR_NUMBER, (const char *)p->s + p->start, p->pos - p->start);
    }
    if ((rc = jr_lex(p)))
        return rc;
    return parse_value(p);
}

/* The members of an object whose '{' has been read (jansson's
 * parse_object, error for error).  The structural tokens that must come
 * are seen by jr_peek(), not read by jr_lex(): when another token comes, it
 * reads it for the error. */
static jr_err parse_members(jr_parser *p, size_t obj, size_t *count)
{
    int c = jr_peek(p);
    if (c == '}') {
        p->pos++;
        return JR_OK;
    }
    for (;;) {
        jr_err rc;
        if (c != '"') {
            rc = jr_lex(p);
            return rc ? rc : jr_syntax(p, "string or '}' expected");
        }
        if ((rc = lex_string_at(p)) || (rc = check_key(p, obj, *count)))
            return rc;
        if (jr_peek(p) != ':')
            return expected(p, "':'");
        p->pos++;
        if ((rc = read_value(p)))
            return rc;
        ++*count;
        c = jr_peek(p);
        if (c == '}') {
            p->pos++;
            return JR_OK;
        }
        if (c != ',')
            return expected(p, "'}'");
        p->pos++;
        c = jr_peek(p);
    }
}

/* The elements of an array whose '[' has been read. */
static jr_err parse_elements(jr_parser *p, size_t *count)
{
    int c = jr_peek(p);
    if (c == ']') {
        p->pos++;
        return JR_OK;
    }
    while (c != -1) {
        jr_err rc = read_value(p);
        if (rc)
            return rc;
        ++*count;
        c = jr_peek(p);
        if (c == ']') {
            p->pos++;
            return JR_OK;
        }
        if (c != ',')
            return expected(p, "']'");
        p->pos++;
        c = jr_peek(p);
    }
    return expected(p, "']'"); /* at the end of the input */
}

static jr_err parse_container(jr_parser *p, jr_type type)
{
    size_t at = p->doc->nvals, count = 0;
    jr_err rc = push(p, type, NULL, 0);
    if (rc)
        return rc;
    p->depth++;
    rc = type == JR_OBJECT ? parse_members(p, at, &count) : parse_elements(p, &count);
    p->depth--;
    if (rc)
        return rc;
    jr_val *c = &p->doc->vals[at];
    c->u.span = (uint32_t)(p->doc->nvals - at);
    c->n = (uint32_t)count;
    return JR_OK;
}

/* The value starting with the current token. */
static jr_err parse_value(jr_parser *p)
{
    switch (p->tok) {
    case '{':
        return parse_container(p, JR_OBJECT);
    case '[':
        return parse_container(p, JR_ARRAY);
    case T_STRING:
        return push(p, JR_STRING, p->str, p->slen);
    case T_NUMBER:
        return push(p, JR_NUMBER, (const char *)p->s + p->start, p->pos - p->start);
    case T_TRUE:
        return push(p, JR_TRUE, NULL, 0);
    case T_FALSE:
        return push(p, JR_FALSE, NULL, 0);
    case T_NULL:
        return push(p, JR_NULL, NULL, 0);
    case T_INVALID:
        return jr_syntax(p, "invalid token");
    default:
        return jr_syntax(p, "unexpected token");
    }
}

jr_err jr_parse(const char *s, size_t n, const jr_limits *lim, jr_val *room, size_t nroom,
                jr_doc *doc, jr_error *err)
{
    memset(doc, 0, sizeof *doc);
    memset(err, 0, sizeof *err);
    const char *nul = n ? memchr(s, '\0', n) : NULL;
    if (nul) {
        err->at = (size_t)(nul - s);
        return err->code = JR_ENUL;
    }
    jr_parser p = {.s = (const unsigned char *)s,
                   .n = n,
                   .max_depth = lim->max_depth,
                   .max_values = lim->max_values,
                   .doc = doc,
                   .err = err};
    if (nroom) {
        doc->vals = doc->room = room;
        p.cap = nroom;
    } else {
        /* About one node in 8 bytes of JSON; grown as needed. */
        p.cap = n / 8 + 16 < 65536 ? n / 8 + 16 : 65536;
        if (!(doc->vals = malloc(p.cap * sizeof *doc->vals)))
            return err->code = JR_ENOMEM;
    }
    jr_err rc = jr_lex(&p);
    if (!rc && p.tok != '{' && p.tok != '[')
        rc = jr_syntax(&p, "'[' or '{' expected");
    if (!rc)
        rc = parse_value(&p);
    if (!rc)
        rc = jr_lex(&p);
    if (!rc && p.tok != T_EOF)
        rc = jr_syntax(&p, "end of file expected");
    free(p.keys.slot);
    if (rc)
        jr_doc_free(doc);
    return rc;
}

void jr_doc_free(jr_doc *doc)
{
    if (doc->vals != doc->room)
        free(doc->vals);
    free(doc->text);
    memset(doc, 0, sizeof *doc);
}

/* ---- reading ------------------------------------------------------------------------ */

bool jr_str_is(const jr_val *v, const char *s)
{
    return jr_is(v, JR_STRING) && same_bytes(v, s, strlen(s));
}

const jr_val *jr_get(const jr_val *obj, const char *key)
{
    if (!jr_is(obj, JR_OBJECT))
        return NULL;
    size_t n = strlen(key);
    jr_iter it = jr_iter_of(obj);
    for (const jr_val *k, *v; jr_iter_member(&it, &k, &v);)
        if (same_bytes(k, key, n))
            return v;
    return NULL;
}

bool jr_int64(const jr_val *v, int64_t *out)
{
    if (!jr_is(v, JR_NUMBER))
        return false;
    const char *s = v->u.s;
    size_t n = v->n, neg = s[0] == '-';
    if (n - neg > 19) /* 19 digits never overflow a uint64 */
        return false;
    uint64_t u = 0;
    for (size_t i = neg; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false; /* a fraction or an exponent */
        u = u * 10 + (uint64_t)(s[i] - '0');
    }
    if (neg) {
        if (u == 0 || u > (uint64_t)INT64_MAX + 1)
            return false; /* "-0" keeps its sign only as text */
        *out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
        return true;
    }
    if (u > (uint64_t)INT64_MAX)
        return false;
    *out = (int64_t)u;
    return true;
}
