/* hex.c -- hex encoding and decoding (hex.h). */
#include "util/hex.h"

#include "cstack.h"

void cs_hex_encode(const void *p, size_t n, char *out)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = cs_hex_char(b[i] >> 4);
        out[2 * i + 1] = cs_hex_char(b[i]);
    }
    out[2 * n] = '\0';
}

int cs_hex_decode(const char *s, size_t n, void *out)
{
    unsigned char *b = out;
    for (size_t i = 0; i < n; i++) {
        int hi = cs_hex_digit((unsigned char)s[2 * i]);
        int lo = hi < 0 ? -1 : cs_hex_digit((unsigned char)s[2 * i + 1]);
        if (lo < 0)
            return CSTACK_EINVAL;
        b[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

int cs_hex_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 16)
        return CSTACK_EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = cs_hex_digit((unsigned char)s[i]);
        if (d < 0)
            return CSTACK_EINVAL;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}
