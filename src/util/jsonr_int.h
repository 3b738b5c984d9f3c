/*
 * jsonr_int.h -- what the two halves of the JSON reader share: the parser
 * state, the tokens, and the lexer (jsonr_lex.c) as the tree builder
 * (jsonr.c) calls it.  Private to those two files.
 */
#ifndef CS_JSONR_INT_H
#define CS_JSONR_INT_H

#include "util/jsonr.h"

/* Tokens: the structural characters stand for themselves. */
enum { T_EOF = 0, T_INVALID = 256, T_STRING, T_NUMBER, T_TRUE, T_FALSE, T_NULL };

/* Keys of large objects, for the duplicate check: pairs of (object node
 * index + 1, key node index); 0 marks a free pair.  Open addressing.  Not
 * util/hash.h's cs_hset: one table serves every open object at once, so an
 * entry names its object as well as its key, and packing both in 32-bit
 * halves keeps a slot at 8 bytes on every platform. */
typedef struct jr_keyset {
    uint32_t *slot;
    size_t cap, used; /* in pairs; cap is a power of two */
} jr_keyset;

typedef struct jr_parser {
    const unsigned char *s;
    size_t n;
    size_t pos;   /* the read position: just after the current token */
    size_t start; /* the first byte of the current token */
    int tok;
    const char *str; /* T_STRING: its unescaped bytes */
    size_t slen;
    size_t depth, values;
    size_t max_depth, max_values;
    jr_doc *doc;
    size_t cap;      /* of doc->vals */
    size_t text_len; /* used of doc->text */
    jr_keyset keys;
    jr_error *err;
} jr_parser;

/* Records error `code` at byte `at` and returns it. */
jr_err jr_fail(jr_parser *p, jr_err code, size_t at);
/* A syntax error about the current token, worded and placed as jansson's. */
jr_err jr_syntax(jr_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads the next token into p->tok (p->start and p->pos delimit it). */
jr_err jr_lex(jr_parser *p);
/* Reads the string token starting at p->start into p->str and p->slen. */
jr_err jr_lex_string(jr_parser *p);
/* Reads the number starting at p->start: T_NUMBER, or T_INVALID for what
 * jansson makes an invalid token of. */
jr_err jr_lex_number(jr_parser *p);

/* Counts a value or key starting at byte i (the former pre-scan counted
 * the tokens starting with one of "{[-0123456789tfn). */
static inline jr_err jr_count_value(jr_parser *p, size_t i)
{
    return ++p->values > p->max_values ? jr_fail(p, JR_EVALUES, i) : JR_OK;
}

static inline bool jr_is_ws(unsigned char c)
{
    return c <= ' ' && (c == ' ' || c == '\n' || c == '\r' || c == '\t');
}

/* Skips whitespace (which no token includes) and returns the next byte, or
 * -1 at the end of the input. */
static inline int jr_peek(jr_parser *p)
{
    const unsigned char *s = p->s;
    size_t i = p->pos, n = p->n;
    while (i < n && jr_is_ws(s[i]))
        i++;
    p->pos = i;
    return i < n ? s[i] : -1;
}

#endif
