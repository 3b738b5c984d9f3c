/* test_util.c -- the small helpers of src/util/ that every module shares:
 * hex, hashing, the hash set and the clocks. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "cstack.h"
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
