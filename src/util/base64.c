/* base64.c -- RFC 4648 base64 with padding, strict on decode. */
#include "cstack.h"
#include "util/buf.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int cs_base64_encode(cs_buf *b, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (n > (SIZE_MAX / 4) * 3 - 3)
        return CSTACK_ETOOBIG;
    int rc = cs_buf_reserve(b, (n + 2) / 3 * 4);
    if (rc)
        return rc;
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = b64[(v >> 6) & 63];
        *o++ = b64[v & 63];
    }
    if (i < n) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0);
        *o++ = b64[v >> 18];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = 0;
    return 0;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int cs_base64_decode(cs_buf *b, const char *s, size_t n)
{
    if (n % 4)
        return CSTACK_EVALIDATION;
    size_t start = b->len;
    int rc = cs_buf_reserve(b, n / 4 * 3);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + (size_t)k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = b64_val(c);
            if (v[k] < 0 || pad) {
                b->len = start;
                b->data[start] = 0;
                return CSTACK_EVALIDATION;
            }
        }
        unsigned x = (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 |
                     (unsigned)v[3];
        b->data[b->len++] = (char)(x >> 16);
        if (pad < 2)
            b->data[b->len++] = (char)(x >> 8 & 255);
        if (pad < 1)
            b->data[b->len++] = (char)(x & 255);
    }
    b->data[b->len] = 0;
    return 0;
}
