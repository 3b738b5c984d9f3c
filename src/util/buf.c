/* buf.c -- bounded growable buffers and small string helpers. */
#include "util/buf.h"
#include "util/hex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"

static size_t buf_max(const cs_buf *b)
{
    return b->max ? b->max : CS_BUF_DEFAULT_MAX;
}

int cs_buf_reserve(cs_buf *b, size_t extra)
{
    size_t max = buf_max(b);
    if (extra > max || b->len > max - extra)
        return CSTACK_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return CSTACK_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int cs_buf_append(cs_buf *b, const void *p, size_t n)
{
    int rc = cs_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int cs_buf_puts(cs_buf *b, const char *s)
{
    return cs_buf_append(b, s, strlen(s));
}

int cs_buf_putc(cs_buf *b, char c)
{
    return cs_buf_append(b, &c, 1);
}

int cs_buf_vprintf(cs_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return CSTACK_ERROR;
    int rc = cs_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int cs_buf_printf(cs_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cs_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Doubles the quote character inside a quoted token. */
static int buf_quoted(cs_buf *b, const char *s, char q)
{
    int rc = cs_buf_putc(b, q);
    for (const char *p = s; !rc && *p; p++) {
        rc = cs_buf_putc(b, *p);
        if (!rc && *p == q)
            rc = cs_buf_putc(b, q);
    }
    return rc ? rc : cs_buf_putc(b, q);
}

int cs_buf_ident(cs_buf *b, const char *s)
{
    return buf_quoted(b, s, '"');
}

int cs_buf_sql_str(cs_buf *b, const char *s)
{
    return buf_quoted(b, s, '\'');
}

int cs_buf_json_str(cs_buf *b, const char *s, size_t n)
{
    int rc = cs_buf_reserve(b, n + 2);
    if (rc)
        return rc;
    b->data[b->len++] = '"';
    size_t run = 0; /* start of the pending run of plain bytes */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if ((rc = cs_buf_append(b, s + run, i - run)))
            return rc;
        run = i + 1;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = cs_hex_char(c >> 4);
            esc[5] = cs_hex_char(c);
            elen = 6;
        }
        if ((rc = cs_buf_append(b, esc, elen)))
            return rc;
    }
    if ((rc = cs_buf_append(b, s + run, n - run)))
        return rc;
    return cs_buf_putc(b, '"');
}

void cs_buf_reset(cs_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

char *cs_buf_take(cs_buf *b)
{
    if (!b->data) {
        if (cs_buf_reserve(b, 0))
            return NULL;
        b->data[0] = 0;
    }
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void cs_buf_free(cs_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *cs_strndup(const char *s, size_t n)
{
    if (!s)
        return NULL;
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *cs_strdup(const char *s)
{
    return s ? cs_strndup(s, strlen(s)) : NULL;
}
