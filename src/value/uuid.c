/*
 * uuid.c -- Uuid validation and the identifier generators behind
 * @default(uuid()) and @default(cuid()).
 *
 * Uuid input is strict: exactly 36 characters 8-4-4-4-12, hex digits in any
 * case, no braces or "urn:uuid:" prefix.  Version and variant bits are not
 * checked, so the nil UUID and UUIDs from any generator are accepted.
 *
 * cs_uuid_v7() follows RFC 9562 section 6.2, method 1: a 12-bit counter in
 * rand_a, seeded randomly each new millisecond with its top bit clear, makes
 * UUIDs from one process strictly increasing even within one millisecond or
 * when the clock steps back.
 *
 * cs_cuid() produces 25 characters: 'c', 9 base-36 digits of the Unix time in
 * milliseconds (enough until the year 5000, so ids sort by creation time),
 * 4 digits of a per-process counter, 11 random digits (~57 bits).
 */
#include "value/value.h"
#include "util/clock.h"
#include "util/hex.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

int cs_uuid_canon(const char *s, size_t n, char out[CS_UUID_LEN + 1], char *err, size_t errlen)
{
    if (n != CS_UUID_LEN) {
        cs_value_errf(err, errlen, "Uuid", s, n, "expected 36 characters 8-4-4-4-12, got %zu", n);
        return CSTACK_EVALIDATION;
    }
    /* Hyphens first: a shifted group is then reported as such rather than
     * as a hyphen where a digit should be. */
    for (size_t i = 8; i <= 23; i += 5) {
        if (s[i] != '-') {
            cs_value_errf(err, errlen, "Uuid", s, n,
                          "expected '-' at position %zu (format 8-4-4-4-12)", i + 1);
            return CSTACK_EVALIDATION;
        }
        out[i] = '-';
    }
    for (size_t i = 0; i < CS_UUID_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23)
            continue;
        int v = cs_hex_digit((unsigned char)s[i]);
        if (v < 0) {
            cs_value_errf(err, errlen, "Uuid", s, n, "character %zu is not a hexadecimal digit",
                          i + 1);
            return CSTACK_EVALIDATION;
        }
        out[i] = cs_hex_char((unsigned)v);
    }
    out[CS_UUID_LEN] = '\0';
    return 0;
}

static void uuid_format(const unsigned char b[16], char out[CS_UUID_LEN + 1])
{
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = cs_hex_char(b[i] >> 4);
        out[o++] = cs_hex_char(b[i]);
    }
    out[o] = '\0';
}

void cs_uuid_v4(char out[CS_UUID_LEN + 1])
{
    unsigned char b[16];
    cs_random_bytes(b, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    uuid_format(b, out);
}

/* The last (milliseconds << 12 | counter) handed out by this process. */
static _Atomic uint64_t v7_last;

void cs_uuid_v7(char out[CS_UUID_LEN + 1])
{
    unsigned char b[16];
    cs_random_bytes(b, sizeof b);
    /* A fresh millisecond starts the counter at a random value below 2048,
     * leaving at least 2048 increments before it spills into the timestamp. */
    uint64_t now = (uint64_t)cs_wall_ms() & ((UINT64_C(1) << 48) - 1);
    uint64_t fresh = now << 12 | (uint64_t)(((b[6] & 0x07) << 8) | b[7]);
    uint64_t last = atomic_load(&v7_last);
    uint64_t next;
    do {
        next = fresh > last ? fresh : last + 1;
    } while (!atomic_compare_exchange_weak(&v7_last, &last, next));
    uint64_t ms = next >> 12;
    unsigned seq = (unsigned)(next & 0xFFF);
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (seq >> 8));
    b[7] = (unsigned char)(seq & 0xFF);
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);
    uuid_format(b, out);
}

static const char b36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* Writes v as exactly `width` base-36 digits (keeping the low digits). */
static void put_b36(char *out, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = b36[v % 36];
        v /= 36;
    }
}

static _Atomic uint32_t cuid_counter;
static atomic_flag cuid_seeded = ATOMIC_FLAG_INIT;

void cs_cuid(char out[CS_CUID_LEN + 1])
{
    /* A random start makes counters of processes that start together differ. */
    if (!atomic_flag_test_and_set(&cuid_seeded)) {
        uint32_t seed;
        cs_random_bytes(&seed, sizeof seed);
        atomic_fetch_add(&cuid_counter, seed);
    }
    uint32_t count = atomic_fetch_add(&cuid_counter, 1) % (36u * 36u * 36u * 36u);
    uint64_t r;
    cs_random_bytes(&r, sizeof r);
    out[0] = 'c';
    put_b36(out + 1, (uint64_t)cs_wall_ms(), 9);
    put_b36(out + 10, count, 4);
    /* 36^11 is under 2^64 / 100, so r mod 36^11 is uniform to within 1%. */
    put_b36(out + 14, r, 11);
    out[CS_CUID_LEN] = '\0';
}
