/*
 * json.c -- the Json scalar (strict RFC 8259 validation and compaction) and
 * the JSON form of every stored value (SPEC section 6).
 *
 * Compaction removes insignificant whitespace and nothing else: numbers,
 * string escapes and member order stay exactly as written, so a value reads
 * back byte for byte as the compacted input.  Any value may be top level.
 *
 * Decisions, all so that a value accepted here can also be stored as
 * PostgreSQL JSONB (the server's type) instead of failing at sync time:
 *   - "\u0000" is rejected (JSONB refuses it, and C strings would cut it);
 *   - a "\u" escape of a lone UTF-16 surrogate is rejected (not Unicode);
 *   - raw bytes must be valid UTF-8.
 * Duplicate object keys are kept as written (RFC 8259 allows them).
 * Nesting is limited to CS_JSON_MAX_DEPTH arrays/objects; the output size is
 * limited by the cs_buf maximum.
 *
 * This is not util/jsonr.c, the reader of requests: a Json value may be any
 * top-level value and keeps duplicate keys, which a request may not, and
 * compaction copies the input as it checks it, with no tree to build.
 */
#include "value/value.h"
#include "util/hex.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CS_JSON_MAX_DEPTH 512

typedef struct jp {
    const char *s;
    size_t n, i;
    int depth;
    const char *why; /* first error, or NULL */
    size_t at;       /* its byte offset */
} jp;

static bool fail(jp *p, const char *why)
{
    if (!p->why) {
        p->why = why;
        p->at = p->i;
    }
    return false;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(jp *p)
{
    while (p->i < p->n && is_ws(p->s[p->i]))
        p->i++;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int k = 0; k < 4; k++) {
        int d = cs_hex_digit((unsigned char)s[k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Reads "\uXXXX" at p->i (the backslash); -1 on malformed. */
static int read_u(jp *p)
{
    if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
        return -1;
    int v = hex4(p->s + p->i + 2);
    if (v >= 0)
        p->i += 6;
    return v;
}

static bool escape(jp *p)
{
    size_t start = p->i; /* at the backslash; errors point here */
    if (p->i + 1 >= p->n)
        return fail(p, "unterminated string");
    char c = p->s[p->i + 1];
    if (c != 'u') {
        if (c == '\0' || !strchr("\"\\/bfnrt", c))
            return fail(p, "invalid escape sequence in string");
        p->i += 2;
        return true;
    }
    int u = read_u(p);
    const char *why = NULL;
    if (u < 0)
        why = "invalid \\u escape: expected 4 hexadecimal digits";
    else if (u == 0)
        why = "\\u0000 is not allowed in stored JSON";
    else if (u >= 0xDC00 && u <= 0xDFFF)
        why = "lone low surrogate in \\u escape";
    else if (u >= 0xD800 && u <= 0xDBFF) {
        int lo = read_u(p);
        if (lo < 0xDC00 || lo > 0xDFFF)
            why = "high surrogate in \\u escape not followed by a low surrogate";
    }
    if (why) {
        p->i = start;
        return fail(p, why);
    }
    return true;
}

static bool string(jp *p)
{
    p->i++; /* the opening quote */
    for (;;) {
        if (p->i >= p->n)
            return fail(p, "unterminated string");
        unsigned char c = (unsigned char)p->s[p->i];
        if (c == '"') {
            p->i++;
            return true;
        }
        if (c == '\\') {
            if (!escape(p))
                return false;
        } else if (c < 0x20) {
            return fail(p, "control character in string must be escaped");
        } else {
            p->i++; /* UTF-8 was checked for the whole text up front */
        }
    }
}

static bool digits(jp *p)
{
    size_t start = p->i;
    while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
        p->i++;
    return p->i > start;
}

static bool number(jp *p)
{
    if (p->s[p->i] == '-')
        p->i++;
    if (p->i < p->n && p->s[p->i] == '0') {
        p->i++;
        if (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
            return fail(p, "leading zeros are not allowed in numbers");
    } else if (!digits(p)) {
        return fail(p, "invalid number");
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (!digits(p))
            return fail(p, "expected digits after the decimal point");
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
            p->i++;
        if (!digits(p))
            return fail(p, "expected digits in the exponent");
    }
    return true;
}

static bool literal(jp *p, const char *lit)
{
    size_t k = strlen(lit);
    if (p->n - p->i < k || memcmp(p->s + p->i, lit, k) != 0)
        return fail(p, "unexpected character");
    p->i += k;
    return true;
}

static bool value(jp *p);

/* An array or object: `close` is ']' or '}'. */
static bool container(jp *p, char close)
{
    if (++p->depth > CS_JSON_MAX_DEPTH)
        return fail(p, "nested deeper than 512 levels");
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == close) {
        p->i++;
        p->depth--;
        return true;
    }
    for (;;) {
        if (close == '}') {
            if (p->i >= p->n || p->s[p->i] != '"')
                return fail(p, "expected a string as object key");
            if (!string(p))
                return false;
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':')
                return fail(p, "expected ':' after object key");
            p->i++;
        }
        if (!value(p))
            return false;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            skip_ws(p);
            continue;
        }
        if (p->i < p->n && p->s[p->i] == close) {
            p->i++;
            p->depth--;
            return true;
        }
        return fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool value(jp *p)
{
    skip_ws(p);
    if (p->i >= p->n)
        return fail(p, "unexpected end of text");
    switch (p->s[p->i]) {
    case '{':
        return container(p, '}');
    case '[':
        return container(p, ']');
    case '"':
        return string(p);
    case 't':
        return literal(p, "true");
    case 'f':
        return literal(p, "false");
    case 'n':
        return literal(p, "null");
    default:
        if (p->s[p->i] == '-' || (p->s[p->i] >= '0' && p->s[p->i] <= '9'))
            return number(p);
        return fail(p, "unexpected character");
    }
}

/* Copies the validated text without whitespace outside strings. */
static int compact(const char *s, size_t n, cs_buf *out)
{
    int rc = cs_buf_reserve(out, n);
    if (rc != 0)
        return rc;
    char *o = out->data + out->len;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            *o++ = c;
            if (c == '\\')
                *o++ = s[++i]; /* the escaped character cannot end the string */
            else if (c == '"')
                in_str = false;
        } else if (!is_ws(c)) {
            *o++ = c;
            in_str = c == '"';
        }
    }
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
    return 0;
}

int cs_json_canon(const char *s, size_t n, cs_buf *out, char *err, size_t errlen)
{
    if (!s)
        s = "";
    jp p = {s, n, 0, 0, NULL, 0};
    if (!cs_utf8_valid(s, n)) {
        cs_value_errf(err, errlen, "Json", s, n, "not valid UTF-8");
        return CSTACK_EVALIDATION;
    }
    skip_ws(&p);
    if (p.i == n) {
        cs_value_errf(err, errlen, "Json", s, n, "empty text is not JSON");
        return CSTACK_EVALIDATION;
    }
    if (value(&p)) {
        skip_ws(&p);
        if (p.i < n)
            fail(&p, "unexpected text after the JSON value");
    }
    if (p.why) {
        unsigned char c = p.at < n ? (unsigned char)s[p.at] : 0;
        if (p.at >= n)
            cs_value_errf(err, errlen, "Json", s, n, "%s at the end of the text", p.why);
        else if (c >= 0x20 && c < 0x7F)
            cs_value_errf(err, errlen, "Json", s, n, "%s at byte %zu ('%c')", p.why, p.at + 1, c);
        else
            cs_value_errf(err, errlen, "Json", s, n, "%s at byte %zu", p.why, p.at + 1);
        return CSTACK_EVALIDATION;
    }
    int rc = compact(s, n, out);
    if (rc != 0)
        cs_value_errf(err, errlen, "Json", s, n, "%s", cstack_errstr(rc));
    return rc;
}

/* The shortest of %.15g..%.17g that reads back as the same double. */
static int put_double(cs_buf *b, double d)
{
    if (!isfinite(d))
        return CSTACK_EVALIDATION; /* JSON has no NaN or Infinity */
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* A host application may have set a locale with a decimal comma. */
    for (char *c = tmp; *c; c++)
        if (*c == ',')
            *c = '.';
    return cs_buf_puts(b, tmp);
}

static int put_blob(cs_buf *b, const cstack_value *v)
{
    int rc = cs_buf_putc(b, '"');
    if (rc == 0)
        rc = cs_base64_encode(b, v->u.s.p, v->u.s.n);
    if (rc == 0)
        rc = cs_buf_putc(b, '"');
    return rc;
}

int cs_value_json(cs_buf *b, cs_scalar type, const cstack_value *v)
{
    size_t at = b->len;
    int rc;
    switch (v->type) {
    case CSTACK_NULL:
        rc = cs_buf_puts(b, "null");
        break;
    case CSTACK_BOOL:
        rc = cs_buf_puts(b, v->u.b ? "true" : "false");
        break;
    case CSTACK_INT:
        if (type == CS_T_BOOLEAN)
            rc = cs_buf_puts(b, v->u.i ? "true" : "false");
        else if (type == CS_T_DECIMAL)
            rc = cs_buf_printf(b, "\"%" PRId64 "\"", v->u.i);
        else
            rc = cs_buf_printf(b, "%" PRId64, v->u.i);
        break;
    case CSTACK_FLOAT:
        rc = put_double(b, v->u.f);
        break;
    case CSTACK_TEXT:
        /* Stored Json is re-validated: text written around cstack (raw SQL)
         * must not turn a response into invalid JSON. */
        if (type == CS_T_JSON)
            rc = cs_json_canon(v->u.s.p, v->u.s.n, b, NULL, 0);
        else if (type == CS_T_BYTES)
            rc = put_blob(b, v);
        else
            rc = cs_buf_json_str(b, v->u.s.p ? v->u.s.p : "", v->u.s.n);
        break;
    case CSTACK_BLOB:
        rc = put_blob(b, v);
        break;
    default:
        rc = CSTACK_EINVAL;
    }
    if (rc != 0 && b->data) {
        b->len = at; /* leave no half-written value behind */
        b->data[at] = '\0';
    }
    return rc;
}
