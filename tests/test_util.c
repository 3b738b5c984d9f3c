/* test_util.c -- the small helpers of src/util/ that every module shares:
 * hex, hashing, the hash set and the clocks. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "cstack.h"
#include "util/clock.h"
#include "util/hash.h"
#include "util/hex.h"

Test(util_hex, encoding_writes_lowercase_digits_and_a_nul)
{
    const unsigned char b[] = {0x00, 0x0f, 0xa5, 0xff};
    char out[9];
    memset(out, 'x', sizeof out);
    cs_hex_encode(b, sizeof b, out);
    cr_expect_str_eq(out, "000fa5ff");
    cs_hex_encode(b, 0, out);
    cr_expect_str_eq(out, "");
}

Test(util_hex, decoding_reads_either_case_and_round_trips)
{
    unsigned char b[4];
    cr_assert_eq(cs_hex_decode("000FA5ff", 4, b), 0);
    cr_expect(memcmp(b, "\x00\x0f\xa5\xff", 4) == 0);
    char back[9];
    cs_hex_encode(b, 4, back);
    cr_expect_str_eq(back, "000fa5ff");
}

Test(util_hex, decoding_refuses_a_byte_that_is_no_digit)
{
    unsigned char b[2];
    cr_expect_eq(cs_hex_decode("0g12", 2, b), CSTACK_EINVAL);
    cr_expect_eq(cs_hex_decode("01 2", 2, b), CSTACK_EINVAL);
    cr_expect_eq(cs_hex_decode("012\0", 2, b), CSTACK_EINVAL);
}

Test(util_hex, a_number_is_one_to_sixteen_digits_and_nothing_else)
{
    uint64_t v = 0;
    cr_expect_eq(cs_hex_u64("ffffffffffffffff", 16, &v), 0);
    cr_expect_eq(v, UINT64_MAX);
    cr_expect_eq(cs_hex_u64("00000000000000A1", 16, &v), 0);
    cr_expect_eq(v, 0xa1);
    cr_expect_eq(cs_hex_u64("", 0, &v), CSTACK_EINVAL);
    cr_expect_eq(cs_hex_u64("10000000000000000", 17, &v), CSTACK_EINVAL);
    cr_expect_eq(cs_hex_u64("0x1f", 4, &v), CSTACK_EINVAL);
    cr_expect_eq(cs_hex_u64("-1", 2, &v), CSTACK_EINVAL);
    cr_expect_eq(cs_hex_u64(" 1", 2, &v), CSTACK_EINVAL);
}

Test(util_hex, digits_have_their_values_and_others_none)
{
    for (int c = 0; c < 256; c++) {
        int want = c >= '0' && c <= '9'   ? c - '0'
                   : c >= 'a' && c <= 'f' ? c - 'a' + 10
                   : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                          : -1;
        cr_expect_eq(cs_hex_digit(c), want, "byte %d", c);
    }
    for (unsigned v = 0; v < 16; v++)
        cr_expect_eq(cs_hex_digit(cs_hex_char(v)), (int)v);
}

Test(util_hash, fnv1a64_matches_the_published_test_vectors_from_fnvs_basis)
{
    const uint64_t basis = 0xcbf29ce484222325ull;
    cr_expect_eq(cs_fnv1a64(basis, "", 0), basis);
    cr_expect_eq(cs_fnv1a64(basis, "a", 1), 0xaf63dc4c8601ec8cull);
    cr_expect_eq(cs_fnv1a64(basis, "foobar", 6), 0x85944171f73967e8ull);
}

Test(util_hash, the_start_value_is_the_one_state_checksums_were_computed_with)
{
    cr_expect_eq(CS_FNV64_INIT, 1469598103934665603ull);
    cr_expect_eq(cs_fnv1a64(CS_FNV64_INIT, "a", 1), (CS_FNV64_INIT ^ 'a') * CS_FNV64_PRIME);
}

Test(util_hash, fnv1a64_continues_over_pieces_and_bytewise)
{
    uint64_t h = cs_fnv1a64(cs_fnv1a64(CS_FNV64_INIT, "foo", 3), "bar", 3);
    cr_expect_eq(h, cs_fnv1a64(CS_FNV64_INIT, "foobar", 6));
    uint64_t b = CS_FNV64_INIT;
    for (const char *p = "foobar"; *p; p++)
        b = cs_fnv1a64_byte(b, (unsigned char)*p);
    cr_expect_eq(b, h);
}

typedef struct probe {
    const int *items;
    int key;
} probe;

static bool int_eq(const void *ctx, size_t id)
{
    const probe *q = ctx;
    return q->items[id] == q->key;
}

Test(util_hset, finds_every_item_added_across_growth_and_nothing_else)
{
    enum { N = 5000 };
    static int items[N];
    cs_hset s = CS_HSET_INIT;
    cr_expect_eq(cs_hset_find(&s, 1, int_eq, &(probe){items, 1}), CS_HSET_NONE);
    for (int i = 0; i < N; i++) {
        items[i] = i * 7;
        uint64_t h = cs_fnv1a64(CS_FNV64_INIT, &items[i], sizeof items[i]);
        cr_assert_eq(cs_hset_add(&s, h, (size_t)i), 0);
    }
    cr_expect_eq(s.n, N);
    cr_expect_leq(s.n * 2, s.cap, "the table stays at most half full");
    for (int i = 0; i < N; i++) {
        int key = i * 7;
        probe q = {items, key};
        uint64_t h = cs_fnv1a64(CS_FNV64_INIT, &key, sizeof key);
        cr_expect_eq(cs_hset_find(&s, h, int_eq, &q), (size_t)i);
        key = i * 7 + 1;
        q.key = key;
        h = cs_fnv1a64(CS_FNV64_INIT, &key, sizeof key);
        cr_expect_eq(cs_hset_find(&s, h, int_eq, &q), CS_HSET_NONE);
    }
    cs_hset_free(&s);
    cr_expect_eq(s.cap, 0);
    cs_hset_free(&s);
}

Test(util_hset, items_with_one_hash_are_told_apart_by_the_callers_equality)
{
    static const int items[] = {10, 20, 30};
    cs_hset s = CS_HSET_INIT;
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(cs_hset_add(&s, 42, i), 0);
    for (size_t i = 0; i < 3; i++)
        cr_expect_eq(cs_hset_find(&s, 42, int_eq, &(probe){items, items[i]}), i);
    cr_expect_eq(cs_hset_find(&s, 42, int_eq, &(probe){items, 40}), CS_HSET_NONE);
    cs_hset_free(&s);
}

Test(util_clock, wall_time_in_ms_and_us_agree_and_is_after_2023)
{
    int64_t ms = cs_wall_ms();
    int64_t us = cs_wall_us();
    int64_t ms2 = cs_wall_ms();
    cr_expect_gt(ms, INT64_C(1700000000000));
    cr_expect_geq(us / 1000, ms);
    cr_expect_leq(us / 1000, ms2);
}

Test(util_clock, monotonic_time_never_goes_back)
{
    int64_t last = cs_mono_ms();
    for (int i = 0; i < 1000; i++) {
        int64_t now = cs_mono_ms();
        cr_assert_geq(now, last);
        last = now;
    }
}

Test(util_clock, a_deadline_is_normalised_and_lies_ahead_by_the_time_asked)
{
    int64_t asked[] = {0, 1, 999, 1000, 1500, 86400000};
    for (size_t i = 0; i < sizeof asked / sizeof asked[0]; i++) {
        struct timespec before;
        clock_gettime(CLOCK_MONOTONIC, &before);
        struct timespec d = cs_deadline(CLOCK_MONOTONIC, asked[i]);
        cr_expect(d.tv_nsec >= 0 && d.tv_nsec < 1000000000, "%ld", (long)d.tv_nsec);
        int64_t ahead = ((int64_t)d.tv_sec - before.tv_sec) * 1000 +
                        ((int64_t)d.tv_nsec - before.tv_nsec) / 1000000;
        cr_expect(ahead >= asked[i] && ahead <= asked[i] + 50, "asked %lld, ahead %lld",
                  (long long)asked[i], (long long)ahead);
    }
}
