/*
 * jsonr.h -- the JSON reader of the envelope and of the sync client: a
 * validating recursive-descent parser (RFC 8259) that turns request bytes
 * into a compact, read-only tree.  It lives in util/ so that both, and any
 * later reader of JSON, share one parser and libcstack links no JSON library.
 *
 * What it checks: the grammar (objects and arrays at the top, as the envelope
 * requires), UTF-8 everywhere, escapes (lone surrogates refused), no NUL byte
 * and no "\u0000" (a C string would cut the value short), unique keys within
 * an object (compared after unescaping), a nesting bound and a bound on the
 * number of values.  Numbers keep their text exactly as written: nothing is
 * converted through a double, so a Decimal or a 40-digit integer loses
 * nothing.
 *
 * Syntax errors are worded like jansson's (the envelope's reader before this
 * one), e.g. "string or '}' expected near '1'" or "premature end of input
 * near '\"abc'", and positioned like them: at the end of the offending token.
 * The bounds and NUL errors point at the offending byte.
 *
 * The tree: every value, and every object key, is one 16-byte jr_val in an
 * array, in document order.  An array is followed by its elements; an object
 * by its members, each a key (a JR_STRING) then the value; a container
 * records how many nodes it spans, so jr_next() skips it.  Strings without
 * escapes point into the input; escaped ones are unescaped into one buffer of
 * the document.  Strings are NOT NUL-terminated: use their length.
 *
 * Memory: the nodes go into an array the caller may lend (the envelope
 * lends room for 64, so a typical request allocates nothing for them) and
 * move to one heap array, doubled as needed, beyond it; a text buffer is
 * allocated only when a string has escapes.  Lookups scan linearly, which is
 * what request objects of a few keys want; the duplicate-key check switches
 * to a hash set for objects with many members, so no input is quadratic.
 */
#ifndef CS_JSONR_H
#define CS_JSONR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum jr_type {
    JR_NULL,
    JR_FALSE,
    JR_TRUE,
    JR_NUMBER,
    JR_STRING,
    JR_ARRAY, /* containers last: see jr_next */
    JR_OBJECT,
} jr_type;

/* One value of a document.  Read it through the functions below. */
typedef struct jr_val {
    union {
        const char *s; /* JR_STRING: the unescaped bytes; JR_NUMBER: its text */
        uint32_t span; /* JR_ARRAY, JR_OBJECT: nodes of the subtree, itself included */
    } u;
    uint32_t n;   /* JR_STRING, JR_NUMBER: bytes; JR_ARRAY: elements; JR_OBJECT: members */
    uint8_t type; /* jr_type */
} jr_val;

/* A parsed document.  It borrows the input bytes, which must outlive it. */
typedef struct jr_doc {
    jr_val *vals; /* vals[0] is the root: an object or an array */
    size_t nvals;
    char *text;   /* unescaped strings, or NULL */
    jr_val *room; /* the caller's array, when vals is still in it */
} jr_doc;

typedef struct jr_limits {
    size_t max_depth;  /* nesting of arrays and objects */
    size_t max_values; /* values and keys */
} jr_limits;

typedef enum jr_err {
    JR_OK,
    JR_ESYNTAX, /* not valid JSON (also invalid UTF-8, bad escapes, duplicate keys) */
    JR_ENUL,    /* a NUL byte */
    JR_ENULESC, /* a "\u0000" escape */
    JR_EDEPTH,  /* nested deeper than max_depth */
    JR_EVALUES, /* more than max_values values and keys */
    JR_ENOMEM,
} jr_err;

typedef struct jr_error {
    jr_err code;
    size_t at;     /* byte offset the error is reported at */
    char text[96]; /* JR_ESYNTAX: what is wrong, e.g. "':' expected near '1'" */
} jr_error;

/*
 * Parses the n bytes at s into *doc; n must be below 4 GiB (lengths in the
 * tree are 32-bit; the envelope's limit is 64 MiB).  The first `nroom`
 * nodes go into `room` (may be NULL when nroom is 0), which must outlive the
 * document.  Returns JR_OK, or an error code with *err filled in and *doc
 * left empty (nothing to free).  On success free the document with
 * jr_doc_free; it points into s, so keep s alive until then.
 */
jr_err jr_parse(const char *s, size_t n, const jr_limits *lim, jr_val *room, size_t nroom,
                jr_doc *doc, jr_error *err);
/* Frees what jr_parse allocated; accepts an empty document. */
void jr_doc_free(jr_doc *doc);

/* ---- reading a document -------------------------------------------------------
 * Every function accepts NULL where it says so, so that a missing member can
 * flow into a type check: jr_is(jr_get(obj, "where"), JR_OBJECT). */

static inline bool jr_is(const jr_val *v, jr_type t)
{
    return v && v->type == t;
}

/* The value after v and all of its subtree: the next element of its array,
 * or the next key of its object. */
static inline const jr_val *jr_next(const jr_val *v)
{
    return v + (v->type >= JR_ARRAY ? v->u.span : 1);
}

/* Elements of an array, members of an object; 0 for anything else or NULL. */
static inline size_t jr_size(const jr_val *v)
{
    return v && v->type >= JR_ARRAY ? v->n : 0;
}

/* The bytes of a string, or the text of a number (not NUL-terminated). */
static inline const char *jr_str(const jr_val *v)
{
    return v->u.s;
}

static inline size_t jr_len(const jr_val *v)
{
    return v->n;
}

/* The length of the longest prefix of the n bytes at s that a JSON string
 * holds as it is, without escapes: printable ASCII other than '"' and '\\'.
 * Fast (eight bytes at a time): for writing strings as well as reading. */
size_t jr_plain_span(const char *s, size_t n);

/* True when v is a string equal to the C string s. */
bool jr_str_is(const jr_val *v, const char *s);

/* The value of member `key` of object obj; NULL when obj is NULL, not an
 * object, or has no such member. */
const jr_val *jr_get(const jr_val *obj, const char *key);

/* True when v is a number written as an integer (no fraction, no exponent)
 * that fits in int64, "-0" excepted; the value goes to *out.  Other numbers
 * keep their meaning only as text. */
bool jr_int64(const jr_val *v, int64_t *out);

/* Walks the elements of an array or the members of an object in order:
 *   jr_iter it = jr_iter_of(arr);
 *   for (const jr_val *v; (v = jr_iter_elem(&it));) ...
 *   for (const jr_val *k, *v; jr_iter_member(&it, &k, &v);) ... */
typedef struct jr_iter {
    const jr_val *at, *end;
} jr_iter;

static inline jr_iter jr_iter_of(const jr_val *c)
{
    jr_iter it = {c + 1, c + c->u.span};
    return it;
}

static inline const jr_val *jr_iter_elem(jr_iter *it)
{
    if (it->at == it->end)
        return NULL;
    const jr_val *v = it->at;
    it->at = jr_next(v);
    return v;
}

static inline bool jr_iter_member(jr_iter *it, const jr_val **key, const jr_val **val)
{
    if (it->at == it->end)
        return false;
    *key = it->at;
    *val = it->at + 1;
    it->at = jr_next(*val);
    return true;
}

#endif
