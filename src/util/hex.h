/*
 * hex.h -- hexadecimal digits: the one encoder and decoder of the library
 * (site ids, schema hashes, checksums, Uuids, JSON \u escapes).
 *
 * Output is always lowercase, the canonical form wherever cstack writes hex;
 * input may be in either case.
 */
#ifndef CS_HEX_H
#define CS_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value of hex digit c (either case), or -1 when c is none. */
static inline int cs_hex_digit(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The lowercase digit of the low four bits of v. */
static inline char cs_hex_char(unsigned v)
{
    return "0123456789abcdef"[v & 15];
}

/* Writes the n bytes at p as 2n lowercase digits and a NUL into out
 * (2n + 1 bytes). */
void cs_hex_encode(const void *p, size_t n, char *out);

/* Reads exactly 2n digits at s into the n bytes at out.  Returns 0, or
 * CSTACK_EINVAL when one of them is no hex digit (out is then partly
 * written). */
int cs_hex_decode(const char *s, size_t n, void *out);

/* Reads the n digits at s (1 to 16, nothing else) as one number. Returns 0,
 * or CSTACK_EINVAL for no digits, too many, or a byte that is no digit. */
int cs_hex_u64(const char *s, size_t n, uint64_t *out);

#endif
