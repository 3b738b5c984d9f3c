/*
 * cursor.c -- the text of pull and stream cursors (docs/server.md, "Pages").
 *
 * A cursor is plain decimal digits (a server version: the device holds
 * everything up to it) or, between the pages of one answer, the
 * continuation form
 *
 *     <since>.<ver>.<model>.<remaining>.<key hex>
 *
 * The pages of one answer are all relative to `since`; the next page starts
 * after the row (ver, model, key) of the export's order; `remaining` carries
 * the previous page's count of rows left, so that progress needs no count
 * per page.  Numbers are decimal, at most 18 digits each; the key is the
 * row's primary key in the changeset's value encoding, 1 to
 * CS_SRV_POS_KEY_MAX bytes as lowercase hex.  Plain digits never contain a
 * dot, so older devices and the rule "a cursor is one this server gave out"
 * keep working for every cursor that ends an answer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "server/store.h"

/* Reads up to 18 decimal digits ending at `end` (a dot or the terminator). */
static const char *number(const char *p, char end, int64_t *out)
{
    int64_t v = 0;
    size_t n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++n > 18)
            return NULL;
        v = v * 10 + (*p - '0');
    }
    if (n == 0 || *p != end)
        return NULL;
    *out = v;
    return p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool cs_srv_cursor_parse(const char *s, int64_t *since, cs_srv_pos *pos)
{
    memset(pos, 0, sizeof *pos);
    if (!s)
        return false;
    if (!strchr(s, '.'))
        return number(s, '\0', since) != NULL;
    int64_t model = 0;
    const char *p = number(s, '.', since);
    p = p ? number(p + 1, '.', &pos->ver) : NULL;
    p = p ? number(p + 1, '.', &model) : NULL;
    p = p ? number(p + 1, '.', &pos->remaining) : NULL;
    if (!p || model > 65535)
        return false;
    p++;
    size_t n = strlen(p);
    if (n == 0 || n % 2 || n / 2 > CS_SRV_POS_KEY_MAX)
        return false;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        pos->key[i] = (unsigned char)(hi << 4 | lo);
    }
    pos->keylen = n / 2;
    pos->model = (int)model;
    pos->set = true;
    return true;
}

void cs_srv_cursor_format(char *buf, size_t cap, int64_t cursor, int64_t since,
                          const cs_srv_pos *pos)
{
    if (!pos || !pos->set) {
        snprintf(buf, cap, "%" PRId64, cursor);
        return;
    }
    int k = snprintf(buf, cap, "%" PRId64 ".%" PRId64 ".%d.%" PRId64 ".", since, pos->ver,
                     pos->model, pos->remaining);
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; k > 0 && i < pos->keylen && (size_t)k + 2 < cap; i++) {
        buf[k++] = digits[pos->key[i] >> 4];
        buf[k++] = digits[pos->key[i] & 15];
        buf[k] = '\0';
    }
}
