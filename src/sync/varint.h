/* varint.h -- bounded readers and writers for the sync binary formats.
 *
 * Varints are unsigned LEB128 (at most 10 bytes); fixed-width integers are
 * little-endian.  Every reader checks the remaining length first and returns
 * non-zero instead of reading past the end. */
#ifndef CS_VARINT_H
#define CS_VARINT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/buf.h"

typedef struct cs_reader {
    const unsigned char *p;
    size_t len;
    size_t pos;
} cs_reader;

static inline int cs_rd_varint(cs_reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->pos >= r->len)
            return -1;
        unsigned char b = r->p[r->pos++];
        if (shift == 63 && b > 1)
            return -1; /* would overflow 64 bits */
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return -1;
}

static inline int cs_rd_u64(cs_reader *r, uint64_t *out)
{
    if (r->len - r->pos < 8)
        return -1;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | r->p[r->pos + (size_t)i];
    r->pos += 8;
    *out = v;
    return 0;
}

static inline int cs_rd_bytes(cs_reader *r, size_t n, const unsigned char **out)
{
    if (r->len - r->pos < n)
        return -1;
    *out = r->p + r->pos;
    r->pos += n;
    return 0;
}

/* Writes v as a varint into room the caller reserved (at most 10 bytes) at
 * p; returns its length.  For hot paths that reserve once for many values. */
static inline size_t cs_varint_put(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    do {
        unsigned char byte = v & 0x7f;
        v >>= 7;
        p[n++] = (unsigned char)(byte | (v ? 0x80 : 0));
    } while (v);
    return n;
}

static inline int cs_wr_varint(cs_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    return cs_buf_append(b, tmp, cs_varint_put(tmp, v));
}

static inline int cs_wr_u64(cs_buf *b, uint64_t v)
{
    unsigned char tmp[8];
    for (int i = 0; i < 8; i++)
        tmp[i] = (unsigned char)(v >> (8 * i));
    return cs_buf_append(b, tmp, 8);
}

static inline uint64_t cs_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t cs_unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

#endif
