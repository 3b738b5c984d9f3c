/*
 * jsonr_lex.c -- the lexer of the JSON reader (jsonr.h): tokens,
 * strings with their escapes and UTF-8, numbers, and the syntax errors.
 *
 * The lexer follows jansson's closely, because the envelope's messages for
 * malformed requests were jansson's and stay the same: a token is the text
 * jansson would have read for it, including one character of lookahead after
 * numbers and words, and an error names the token it stopped in ("near
 * '...'", when at most 20 bytes; "near end of file" at the end) and is placed
 * where jansson's read position was.  Within a string, jansson first reads to
 * the closing quote (control characters, escapes, UTF-8) and only then
 * decodes \u escapes, so a lone surrogate is reported after any other fault
 * of the same string; the same order holds here.
 *
 * Checks jansson did not make come from the envelope's former pre-scan, with
 * its positions: a NUL byte anywhere (found first, with memchr), "\u0000" (at
 * its backslash), nesting (at the bracket that opens one level too many) and
 * the number of values (at the first byte of the value or key too many).
 * Values are counted by the first byte of their token, as the pre-scan did.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/hex.h"
#include "util/jsonr_int.h"

#define CONTEXT_MAX 20 /* a token is quoted in a message up to this many bytes */

/* ---- errors ------------------------------------------------------------------ */

jr_err jr_fail(jr_parser *p, jr_err code, size_t at)
{
    p->err->code = code;
    p->err->at = at;
    return code;
}

/* A syntax error about the current token, as jansson words it: the token is
 * quoted when it is short, and an empty one is the end of the input. */
jr_err jr_syntax(jr_parser *p, const char *fmt, ...)
{
    char what[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t len = p->pos - p->start;
    char *out = p->err->text;
    size_t cap = sizeof p->err->text;
    if (len == 0)
        snprintf(out, cap, "%s near end of file", what);
    else if (len <= CONTEXT_MAX)
        snprintf(out, cap, "%s near '%.*s'", what, (int)len, (const char *)p->s + p->start);
    else
        snprintf(out, cap, "%s", what);
    return jr_fail(p, JR_ESYNTAX, p->pos);
}

/* An invalid UTF-8 sequence at byte `at` (jansson stops before it, and says
 * nothing of the end of the input). */
static jr_err bad_utf8(jr_parser *p, size_t at)
{
    size_t len = at - p->start;
    char *out = p->err->text;
    size_t cap = sizeof p->err->text;
    if (len > 0 && len <= CONTEXT_MAX)
        snprintf(out, cap, "unable to decode byte 0x%x near '%.*s'", p->s[at], (int)len,
                 (const char *)p->s + p->start);
    else
        snprintf(out, cap, "unable to decode byte 0x%x", p->s[at]);
    return jr_fail(p, JR_ESYNTAX, at);
}

/* ---- lexer -------------------------------------------------------------------- */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The length of the UTF-8 sequence at s (n bytes available), or 0 when it is
 * invalid: overlong, a surrogate, beyond U+10FFFF or cut short. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    uint32_t v;
    if (c < 0x80)
        return 1;
    if (c < 0xC2 || c > 0xF4)
        return 0;
    k = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    v = c & (0x7Fu >> k);
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3Fu);
    }
    if ((k == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF))) ||
        (k == 4 && (v < 0x10000 || v > 0x10FFFF)))
        return 0;
    return k;
}

/* Whether byte k starts an invalid UTF-8 sequence: jansson decodes every
 * character it reads, lookahead included. */
static bool bad_at(const jr_parser *p, size_t k)
{
    return k < p->n && p->s[k] >= 0x80 && !utf8_len(p->s + k, p->n - k);
}

/* Ends the current token before byte k, the character jansson read last and
 * put back. */
static jr_err end_token(jr_parser *p, size_t k)
{
    if (bad_at(p, k))
        return bad_utf8(p, k);
    p->pos = k;
    return JR_OK;
}

/* `what` about the character at k, which jansson read into the token. */
static jr_err bad_char(jr_parser *p, size_t k, const char *what)
{
    if (bad_at(p, k))
        return bad_utf8(p, k);
    p->pos = k + 1;
    return jr_syntax(p, "%s", what);
}

static size_t skip_digits(const jr_parser *p, size_t k)
{
    while (k < p->n && is_digit(p->s[k]))
        k++;
    return k;
}

/* A number, or the invalid token jansson makes of a malformed one: "-",
 * "0" of "01", "1." of "1.x", "1e" of "1ex". */
jr_err jr_lex_number(jr_parser *p)
{
    const unsigned char *s = p->s;
    size_t n = p->n, k = p->start;
    p->tok = T_INVALID;
    if (s[k] == '-')
        k++;
    if (k < n && s[k] == '0') {
        if (++k < n && is_digit(s[k]))
            return end_token(p, k);
    } else if (k < n && is_digit(s[k])) {
        k = skip_digits(p, k);
    } else {
        return end_token(p, k);
    }
    if (k < n && s[k] == '.') {
        if (k + 1 >= n || !is_digit(s[k + 1]))
            return end_token(p, k + 1);
        k = skip_digits(p, k + 1);
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-'))
            k++;
        if (k >= n || !is_digit(s[k]))
            return end_token(p, k);
        k = skip_digits(p, k);
    }
    p->tok = T_NUMBER;
    return end_token(p, k);
}

/* A run of letters: true, false, null or an invalid token. */
static jr_err lex_word(jr_parser *p)
{
    size_t k = p->start + 1;
    while (k < p->n && is_alpha(p->s[k]))
        k++;
    const char *w = (const char *)p->s + p->start;
    size_t len = k - p->start;
    p->tok = len == 4 && memcmp(w, "true", 4) == 0    ? T_TRUE
             : len == 5 && memcmp(w, "false", 5) == 0 ? T_FALSE
             : len == 4 && memcmp(w, "null", 4) == 0  ? T_NULL
                                                      : T_INVALID;
    return end_token(p, k);
}

static uint32_t hex4(const unsigned char *s)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 4 | (uint32_t)cs_hex_digit(s[i]);
    return v;
}

/* Checks the escape whose backslash is at *at and moves *at past it. */
static jr_err lex_escape(jr_parser *p, size_t *at)
{
    const unsigned char *s = p->s;
    size_t n = p->n, k = *at;
    if (k + 1 >= n) {
        p->pos = n;
        return jr_syntax(p, "invalid escape");
    }
    unsigned char c = s[k + 1];
    if (c != 'u') {
        if (c == '\0' || !strchr("\"\\/bfnrt", c))
            return bad_char(p, k + 1, "invalid escape");
        *at = k + 2;
        return JR_OK;
    }
    for (size_t d = k + 2; d < k + 6; d++) {
        if (d >= n) {
            p->pos = n;
            return jr_syntax(p, "invalid escape");
        }
        if (cs_hex_digit(s[d]) < 0)
            return bad_char(p, d, "invalid escape");
    }
    if (hex4(s + k + 2) == 0)
        return jr_fail(p, JR_ENULESC, k);
    *at = k + 6;
    return JR_OK;
}

static size_t utf8_put(char *o, uint32_t v)
{
    if (v < 0x80) {
        o[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (char)(0xC0 | v >> 6);
        o[1] = (char)(0x80 | (v & 0x3F));
        return 2;
    }
    if (v < 0x10000) {
        o[0] = (char)(0xE0 | v >> 12);
        o[1] = (char)(0x80 | (v >> 6 & 0x3F));
        o[2] = (char)(0x80 | (v & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | v >> 18);
    o[1] = (char)(0x80 | (v >> 12 & 0x3F));
    o[2] = (char)(0x80 | (v >> 6 & 0x3F));
    o[3] = (char)(0x80 | (v & 0x3F));
    return 4;
}

static char simple_escape(unsigned char c)
{
    switch (c) {
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return (char)c; /* '"', '\\', '/' */
    }
}

/* Decodes the string content [a, b), whose escapes lex_escape accepted, into
 * the document's text.  The text is allocated at the first escaped string,
 * as large as the rest of the input: unescaping never lengthens a string, so
 * it never moves and string pointers stay valid. */
static jr_err unescape(jr_parser *p, size_t a, size_t b)
{
    jr_doc *d = p->doc;
    if (!d->text && !(d->text = malloc(p->n - p->start)))
        return jr_fail(p, JR_ENOMEM, p->start);
    const unsigned char *s = p->s;
    char *out = d->text + p->text_len, *o = out;
    for (size_t k = a; k < b;) {
        if (s[k] != '\\') {
            *o++ = (char)s[k++];
            continue;
        }
        if (s[k + 1] != 'u') {
            *o++ = simple_escape(s[k + 1]);
            k += 2;
            continue;
        }
        uint32_t v = hex4(s + k + 2);
        k += 6;
        if (v >= 0xDC00 && v <= 0xDFFF)
            return jr_syntax(p, "invalid Unicode '\\u%04X'", (unsigned)v);
        if (v >= 0xD800 && v <= 0xDBFF) {
            if (k + 1 >= b || s[k] != '\\' || s[k + 1] != 'u')
                return jr_syntax(p, "invalid Unicode '\\u%04X'", (unsigned)v);
            uint32_t lo = hex4(s + k + 2);
            k += 6;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return jr_syntax(p, "invalid Unicode '\\u%04X\\u%04X'", (unsigned)v, (unsigned)lo);
            v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
        }
        o += utf8_put(o, v);
    }
    p->str = out;
    p->slen = (size_t)(o - out);
    p->text_len += p->slen;
    return JR_OK;
}

/* The bytes of w (in memory order) that are special in a string: control
 * characters, '"', '\\' and non-ASCII, each flagged by its high bit.  These
 * are the classic "has a byte less than / equal to" tests: a borrow can flag
 * a byte falsely, but only above a truly flagged one, so the lowest flag is
 * exact. */
static uint64_t special8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    uint64_t hit = ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) |
                   ((backslash - ones) & ~backslash) | w;
    return hit & high;
}

static bool plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* The first byte at or after k that is special in a string, or n.  Plain
 * ASCII is most of any string: it is skipped eight bytes at a time. */
static inline size_t skip_plain(const unsigned char *s, size_t k, size_t n)
{
    for (; k + 8 <= n; k += 8) {
        uint64_t w, m;
        memcpy(&w, s + k, 8);
        if ((m = special8(w)) != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return k + (size_t)__builtin_ctzll(m) / 8;
#else
            break;
#endif
        }
    }
    while (k < n && plain_byte(s[k]))
        k++;
    return k;
}

/* The general case of jr_lex_string: escapes, non-ASCII and errors, from
 * byte k, the first that is not plain ASCII. */
static jr_err lex_string_rest(jr_parser *p, size_t k)
{
    const unsigned char *s = p->s;
    size_t n = p->n;
    bool escaped = false;
    for (;;) {
        k = skip_plain(s, k, n);
        if (k >= n) {
            p->pos = n;
            return jr_syntax(p, "premature end of input");
        }
        unsigned char c = s[k];
        if (c == '"')
            break;
        if (c == '\\') {
            jr_err rc = lex_escape(p, &k);
            if (rc)
                return rc;
            escaped = true;
        } else if (c < 0x20) {
            p->pos = k; /* jansson puts the control character back */
            return c == '\n' ? jr_syntax(p, "unexpected newline")
                             : jr_syntax(p, "control character 0x%x", c);
        } else {
            size_t len = utf8_len(s + k, n - k);
            if (!len)
                return bad_utf8(p, k);
            k += len;
        }
    }
    p->pos = k + 1;
    p->tok = T_STRING;
    if (escaped)
        return unescape(p, p->start + 1, k);
    p->str = (const char *)s + p->start + 1;
    p->slen = k - p->start - 1;
    return JR_OK;
}

jr_err jr_lex_string(jr_parser *p)
{
    /* Most strings are plain ASCII up to the closing quote: that case makes
     * no call, so it needs no registers saved. */
    size_t k = skip_plain(p->s, p->start + 1, p->n);
    if (k == p->n || p->s[k] != '"')
        return lex_string_rest(p, k);
    p->pos = k + 1;
    p->tok = T_STRING;
    p->str = (const char *)p->s + p->start + 1;
    p->slen = k - p->start - 1;
    return JR_OK;
}

/* Reads the next token into p->tok. */
jr_err jr_lex(jr_parser *p)
{
    const unsigned char *s = p->s;
    size_t n = p->n, i = p->pos;
    while (i < n && jr_is_ws(s[i]))
        i++;
    p->start = p->pos = i;
    if (i == n) {
        p->tok = T_EOF;
        return JR_OK;
    }
    unsigned char c = s[i];
    if (c == '"') /* most tokens of a request */
        return jr_count_value(p, i) ? JR_EVALUES : jr_lex_string(p);
    switch (c) {
    case ',':
    case ':':
    case '}':
    case ']':
        p->pos = i + 1;
        p->tok = c;
        return JR_OK;
    case '{':
    case '[':
        if (jr_count_value(p, i))
            return JR_EVALUES;
        if (p->depth >= p->max_depth)
            return jr_fail(p, JR_EDEPTH, i);
        p->pos = i + 1;
        p->tok = c;
        return JR_OK;
    case 't':
    case 'f':
    case 'n':
        return jr_count_value(p, i) ? JR_EVALUES : lex_word(p);
    default:
        break;
    }
    if (c == '-' || is_digit(c))
        return jr_count_value(p, i) ? JR_EVALUES : jr_lex_number(p);
    if (is_alpha(c))
        return lex_word(p);
    size_t len = c < 0x80 ? 1 : utf8_len(s + i, n - i);
    if (!len)
        return bad_utf8(p, i);
    p->pos = i + len;
    p->tok = T_INVALID;
    return JR_OK;
}

size_t jr_plain_span(const char *s, size_t n)
{
    return skip_plain((const unsigned char *)s, 0, n);
}
