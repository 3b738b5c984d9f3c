/* test_value.c -- scalar validation, canonical forms, decimal arithmetic,
 * JSON output, generators and the SQLite helpers of src/value/. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "value/value.h"

#define TXT(s) cstack_v_textn((s), sizeof(s) - 1)
#define BLOB(s) cstack_v_blob((s), sizeof(s) - 1)
#define NCASES(a) (sizeof(a) / sizeof((a)[0]))

typedef struct ok_case {
    cstack_value in;
    cstack_value want;
} ok_case;

typedef struct bad_case {
    cstack_value in;
    const char *msg; /* must occur in the error message */
} bad_case;

static bool value_eq(cstack_value a, cstack_value b)
{
    if (a.type != b.type)
        return false;
    switch (a.type) {
    case CSTACK_NULL:
        return true;
    case CSTACK_INT:
        return a.u.i == b.u.i;
    case CSTACK_FLOAT:
        return memcmp(&a.u.f, &b.u.f, sizeof(double)) == 0; /* -0.0 is not 0.0 */
    case CSTACK_BOOL:
        return a.u.b == b.u.b;
    default:
        return a.u.s.n == b.u.s.n && (a.u.s.n == 0 || memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0);
    }
}

static const char *show(cstack_value v, char *buf, size_t len)
{
    switch (v.type) {
    case CSTACK_NULL:
        snprintf(buf, len, "NULL");
        break;
    case CSTACK_INT:
        snprintf(buf, len, "INT %lld", (long long)v.u.i);
        break;
    case CSTACK_FLOAT:
        snprintf(buf, len, "FLOAT %.17g", v.u.f);
        break;
    case CSTACK_BOOL:
        snprintf(buf, len, "BOOL %d", v.u.b);
        break;
    default: {
        char q[200];
        cs_value_quote(q, sizeof q, v.u.s.p, v.u.s.n);
        snprintf(buf, len, "%s \"%s\"", v.type == CSTACK_TEXT ? "TEXT" : "BLOB", q);
    }
    }
    return buf;
}

static void run_ok(cs_scalar t, const cs_enum_members *en, const ok_case *c, size_t n)
{
    cr_assert_geq(n, 15, "at least 15 valid cases");
    for (size_t i = 0; i < n; i++) {
        cs_buf scratch = CS_BUF_INIT;
        cstack_value out;
        char err[256] = "", a[300], b[300];
        int rc = cs_value_canon(t, en, &c[i].in, &scratch, &out, err, sizeof err);
        cr_expect_eq(rc, 0, "case %zu (%s) rejected: %s", i, show(c[i].in, a, sizeof a), err);
        if (rc == 0)
            cr_expect(value_eq(out, c[i].want), "case %zu (%s): got %s, want %s", i,
                      show(c[i].in, a, sizeof a), show(out, b, sizeof b),
                      show(c[i].want, err, sizeof err));
        cs_buf_free(&scratch);
    }
}

static void run_bad(cs_scalar t, const cs_enum_members *en, const bad_case *c, size_t n)
{
    cr_assert_geq(n, 15, "at least 15 invalid cases");
    for (size_t i = 0; i < n; i++) {
        cs_buf scratch = CS_BUF_INIT;
        cstack_value out;
        char err[256] = "", a[300];
        int rc = cs_value_canon(t, en, &c[i].in, &scratch, &out, err, sizeof err);
        cr_expect_eq(rc, CSTACK_EVALIDATION, "case %zu (%s) accepted (rc %d)", i,
                     show(c[i].in, a, sizeof a), rc);
        cr_expect(strstr(err, c[i].msg), "case %zu (%s): message \"%s\" lacks \"%s\"", i,
                  show(c[i].in, a, sizeof a), err, c[i].msg);
        cs_buf_free(&scratch);
    }
}

static char long_text[1001];

static void fill_long(void)
{
    memset(long_text, 'x', 1000);
    long_text[1000] = '\0';
}

Test(value_string, valid_utf8_is_kept_as_given)
{
    fill_long();
    ok_case c[] = {
        {TXT(""), TXT("")},
        {TXT("hello"), TXT("hello")},
        {TXT("caf\xc3\xa9"), TXT("caf\xc3\xa9")},
        {TXT("\xe6\x97\xa5\xe6\x9c\xac"), TXT("\xe6\x97\xa5\xe6\x9c\xac")},
        {TXT("\xf0\x9f\x98\x80"), TXT("\xf0\x9f\x98\x80")},
        {TXT("\x7f"), TXT("\x7f")},
        {TXT("tab\tnewline\n"), TXT("tab\tnewline\n")},
        {TXT("\xf4\x8f\xbf\xbf"), TXT("\xf4\x8f\xbf\xbf")}, /* U+10FFFF */
        {TXT("\xef\xbf\xbf"), TXT("\xef\xbf\xbf")},         /* U+FFFF */
        {TXT("\xee\x80\x80"), TXT("\xee\x80\x80")},         /* U+E000 */
        {TXT("\xed\x9f\xbf"), TXT("\xed\x9f\xbf")},         /* U+D7FF */
        {TXT("\xc2\x80"), TXT("\xc2\x80")},
        {TXT("\xe0\xa0\x80"), TXT("\xe0\xa0\x80")},
        {TXT("\xf0\x90\x80\x80"), TXT("\xf0\x90\x80\x80")},
        {TXT("a\"b\\c"), TXT("a\"b\\c")},
        {cstack_v_text(long_text), cstack_v_text(long_text)},
        {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_STRING, NULL, c, NCASES(c));
}

Test(value_string, invalid_utf8_and_wrong_kinds_are_rejected)
{
    bad_case c[] = {
        {TXT("\xc0\x80"), "not valid UTF-8"},
        {TXT("\xc1\xbf"), "not valid UTF-8"},
        {TXT("\xe0\x80\x80"), "not valid UTF-8"},
        {TXT("\xf0\x80\x80\x80"), "not valid UTF-8"},
        {TXT("\xed\xa0\x80"), "not valid UTF-8"},
        {TXT("\xed\xbf\xbf"), "not valid UTF-8"},
        {TXT("\xf4\x90\x80\x80"), "not valid UTF-8"},
        {TXT("\xf5\x80\x80\x80"), "not valid UTF-8"},
        {TXT("ok\xff"), "not valid UTF-8"},
        {TXT("\x80"), "not valid UTF-8"},
        {TXT("\xe2\x82"), "not valid UTF-8"},
        {TXT("\xf0\x9f\x98"), "not valid UTF-8"},
        {TXT("abcdefgh\xc3"), "not valid UTF-8"},
        {TXT("a\0b"), "NUL"},
        {cstack_v_int(1), "expected a String as text, got an integer"},
        {cstack_v_float(1.5), "got a float"},
        {cstack_v_bool(1), "got a boolean"},
        {BLOB("abc"), "got a blob"},
    };
    run_bad(CS_T_STRING, NULL, c, NCASES(c));
}

Test(value_int, integers_only)
{
    ok_case ok[] = {
        {cstack_v_int(0), cstack_v_int(0)},
        {cstack_v_int(1), cstack_v_int(1)},
        {cstack_v_int(-1), cstack_v_int(-1)},
        {cstack_v_int(42), cstack_v_int(42)},
        {cstack_v_int(INT64_MAX), cstack_v_int(INT64_MAX)},
        {cstack_v_int(INT64_MIN), cstack_v_int(INT64_MIN)},
        {cstack_v_int(INT64_MAX - 1), cstack_v_int(INT64_MAX - 1)},
        {cstack_v_int(INT64_MIN + 1), cstack_v_int(INT64_MIN + 1)},
        {cstack_v_int(1000000), cstack_v_int(1000000)},
        {cstack_v_int(-1000000), cstack_v_int(-1000000)},
        {cstack_v_int(INT32_MAX), cstack_v_int(INT32_MAX)},
        {cstack_v_int(INT32_MIN), cstack_v_int(INT32_MIN)},
        {cstack_v_int((int64_t)1 << 53), cstack_v_int((int64_t)1 << 53)},
        {cstack_v_int(((int64_t)1 << 53) + 1), cstack_v_int(((int64_t)1 << 53) + 1)},
        {cstack_v_int(255), cstack_v_int(255)},
        {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_INT, NULL, ok, NCASES(ok));
    bad_case bad[] = {
        {TXT("42"), "expected an Int as an integer, got text \"42\""},
        {TXT(""), "got text"},
        {TXT("abc"), "got text"},
        {TXT("-5"), "got text"},
        {TXT("0x10"), "got text"},
        {TXT("1e3"), "got text"},
        {cstack_v_float(0.0), "got a float"},
        {cstack_v_float(1.0), "got a float"},
        {cstack_v_float(1.5), "got a float"},
        {cstack_v_float(NAN), "got a float"},
        {cstack_v_bool(0), "got a boolean"},
        {cstack_v_bool(1), "got a boolean"},
        {BLOB(""), "got a blob"},
        {BLOB("\x01"), "got a blob"},
        {TXT("9223372036854775808"), "got text"},
    };
    run_bad(CS_T_INT, NULL, bad, NCASES(bad));
}

Test(value_float, finite_doubles_and_exact_integers)
{
    ok_case ok[] = {
        {cstack_v_float(0.0), cstack_v_float(0.0)},
        {cstack_v_float(-0.0), cstack_v_float(-0.0)},
        {cstack_v_float(1.5), cstack_v_float(1.5)},
        {cstack_v_float(-1.5), cstack_v_float(-1.5)},
        {cstack_v_float(0.1), cstack_v_float(0.1)},
        {cstack_v_float(DBL_MAX), cstack_v_float(DBL_MAX)},
        {cstack_v_float(-DBL_MAX), cstack_v_float(-DBL_MAX)},
        {cstack_v_float(DBL_MIN), cstack_v_float(DBL_MIN)},
        {cstack_v_float(5e-324), cstack_v_float(5e-324)},
        {cstack_v_int(0), cstack_v_float(0.0)},
        {cstack_v_int(1), cstack_v_float(1.0)},
        {cstack_v_int(-1), cstack_v_float(-1.0)},
        {cstack_v_int((int64_t)1 << 53), cstack_v_float(9007199254740992.0)},
        {cstack_v_int(-((int64_t)1 << 53)), cstack_v_float(-9007199254740992.0)},
        {cstack_v_int((int64_t)1 << 62), cstack_v_float(4611686018427387904.0)},
        {cstack_v_int(INT64_MIN), cstack_v_float(-9223372036854775808.0)},
    };
    run_ok(CS_T_FLOAT, NULL, ok, NCASES(ok));
    bad_case bad[] = {
        {cstack_v_float(NAN), "NaN"},
        {cstack_v_float(-NAN), "NaN"},
        {cstack_v_float(INFINITY), "Infinity"},
        {cstack_v_float(-INFINITY), "-Infinity"},
        {cstack_v_int(((int64_t)1 << 53) + 1), "not exactly representable"},
        {cstack_v_int(-((int64_t)1 << 53) - 1), "not exactly representable"},
        {cstack_v_int(INT64_MAX), "not exactly representable"},
        {cstack_v_int(INT64_MIN + 1), "not exactly representable"},
        {cstack_v_int(((int64_t)1 << 62) + 1), "not exactly representable"},
        {TXT("1.5"), "expected a Float as a float or an integer, got text"},
        {TXT("inf"), "got text"},
        {TXT(""), "got text"},
        {cstack_v_bool(1), "got a boolean"},
        {cstack_v_bool(0), "got a boolean"},
        {BLOB("12345678"), "got a blob"},
    };
    run_bad(CS_T_FLOAT, NULL, bad, NCASES(bad));
}

static cstack_value raw_bool(int b)
{
    cstack_value v;
    v.type = CSTACK_BOOL;
    v.u.b = b;
    return v;
}

Test(value_boolean, bools_become_integer_0_or_1)
{
    ok_case ok[] = {
        {cstack_v_bool(1), cstack_v_int(1)},    {cstack_v_bool(0), cstack_v_int(0)},
        {raw_bool(1), cstack_v_int(1)},         {raw_bool(0), cstack_v_int(0)},
        {raw_bool(2), cstack_v_int(1)},         {raw_bool(-1), cstack_v_int(1)},
        {raw_bool(255), cstack_v_int(1)},       {raw_bool(256), cstack_v_int(1)},
        {raw_bool(INT32_MAX), cstack_v_int(1)}, {raw_bool(INT32_MIN), cstack_v_int(1)},
        {cstack_v_bool(42), cstack_v_int(1)},   {cstack_v_bool(-7), cstack_v_int(1)},
        {raw_bool(0x100), cstack_v_int(1)},     {raw_bool(1 << 30), cstack_v_int(1)},
        {raw_bool(0), cstack_v_int(0)},         {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_BOOLEAN, NULL, ok, NCASES(ok));
    bad_case bad[] = {
        {cstack_v_int(0), "expected a Boolean as a boolean, got an integer"},
        {cstack_v_int(1), "got an integer"},
        {cstack_v_int(-1), "got an integer"},
        {cstack_v_int(2), "got an integer"},
        {TXT("true"), "got text \"true\""},
        {TXT("false"), "got text"},
        {TXT("TRUE"), "got text"},
        {TXT("1"), "got text"},
        {TXT("0"), "got text"},
        {TXT(""), "got text"},
        {TXT("yes"), "got text"},
        {cstack_v_float(1.0), "got a float"},
        {cstack_v_float(0.0), "got a float"},
        {cstack_v_float(NAN), "got a float"},
        {BLOB("\x01"), "got a blob"},
    };
    run_bad(CS_T_BOOLEAN, NULL, bad, NCASES(bad));
}

Test(value_bytes, blobs_are_kept_byte_for_byte)
{
    static unsigned char big[4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    ok_case ok[] = {
        {cstack_v_blob(NULL, 0), cstack_v_blob("", 0)},
        {BLOB(""), BLOB("")},
        {BLOB("a"), BLOB("a")},
        {BLOB("\0"), BLOB("\0")},
        {BLOB("\0\0\0"), BLOB("\0\0\0")},
        {BLOB("\xff\xfe"), BLOB("\xff\xfe")},
        {BLOB("\xc0\x80"), BLOB("\xc0\x80")},
        {BLOB("hello world"), BLOB("hello world")},
        {BLOB("a\0b\0c"), BLOB("a\0b\0c")},
        {BLOB("\x80\x81\x82"), BLOB("\x80\x81\x82")},
        {BLOB("\n\r\t"), BLOB("\n\r\t")},
        {BLOB("{\"json\":1}"), BLOB("{\"json\":1}")},
        {BLOB("\xed\xa0\x80"), BLOB("\xed\xa0\x80")},
        {cstack_v_blob(big, sizeof big), cstack_v_blob(big, sizeof big)},
        {cstack_v_blob(big, 1), cstack_v_blob(big, 1)},
        {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_BYTES, NULL, ok, NCASES(ok));
    bad_case bad[] = {
        {TXT("abc"), "expected a Bytes as a blob, got text"},
        {TXT(""), "got text"},
        {TXT("AAAA"), "got text"},
        {TXT("aGVsbG8="), "got text"},
        {TXT("\\x00"), "got text"},
        {TXT("0x00"), "got text"},
        {TXT("\xc3\xa9"), "got text"},
        {TXT("null"), "got text"},
        {cstack_v_int(0), "got an integer"},
        {cstack_v_int(1), "got an integer"},
        {cstack_v_float(0.0), "got a float"},
        {cstack_v_float(1.5), "got a float"},
        {cstack_v_bool(0), "got a boolean"},
        {cstack_v_bool(1), "got a boolean"},
        {cstack_v_int(-1), "got an integer"},
    };
    run_bad(CS_T_BYTES, NULL, bad, NCASES(bad));
}

Test(value_uuid, any_case_becomes_lowercase)
{
    ok_case ok[] = {
        {TXT("123e4567-e89b-12d3-a456-426614174000"), TXT("123e4567-e89b-12d3-a456-426614174000")},
        {TXT("123E4567-E89B-12D3-A456-426614174000"), TXT("123e4567-e89b-12d3-a456-426614174000")},
        {TXT("123e4567-E89b-12D3-a456-426614174ABC"), TXT("123e4567-e89b-12d3-a456-426614174abc")},
        {TXT("00000000-0000-0000-0000-000000000000"), TXT("00000000-0000-0000-0000-000000000000")},
        {TXT("ffffffff-ffff-ffff-ffff-ffffffffffff"), TXT("ffffffff-ffff-ffff-ffff-ffffffffffff")},
        {TXT("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"), TXT("ffffffff-ffff-ffff-ffff-ffffffffffff")},
        {TXT("01890a5d-ac96-774b-bcce-b302099a8057"), TXT("01890a5d-ac96-774b-bcce-b302099a8057")},
        {TXT("01890A5D-AC96-774B-BCCE-B302099A8057"), TXT("01890a5d-ac96-774b-bcce-b302099a8057")},
        {TXT("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), TXT("6ba7b810-9dad-11d1-80b4-00c04fd430c8")},
        {TXT("6BA7B811-9DAD-11D1-80B4-00C04FD430C8"), TXT("6ba7b811-9dad-11d1-80b4-00c04fd430c8")},
        {TXT("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), TXT("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
        {TXT("A0EEBC99-9c0b-4EF8-bb6d-6BB9BD380A11"), TXT("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")},
        {TXT("12345678-1234-1234-1234-123456789abc"), TXT("12345678-1234-1234-1234-123456789abc")},
        {TXT("abcdefab-cdef-abcd-efab-cdefabcdefab"), TXT("abcdefab-cdef-abcd-efab-cdefabcdefab")},
        {TXT("ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEFAB"), TXT("abcdefab-cdef-abcd-efab-cdefabcdefab")},
        {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_UUID, NULL, ok, NCASES(ok));
    bad_case bad[] = {
        {TXT("abc"), "invalid Uuid \"abc\": expected 36 characters 8-4-4-4-12, got 3"},
        {TXT(""), "got 0"},
        {TXT("123e4567-e89b-12d3-a456-42661417400"), "got 35"},
        {TXT("123e4567-e89b-12d3-a456-4266141740000"), "got 37"},
        {TXT("{123e4567-e89b-12d3-a456-426614174000}"), "expected 36 characters"},
        {TXT("urn:uuid:123e4567-e89b-12d3-a456-426614174000"), "expected 36 characters"},
        {TXT("123e4567e89b12d3a456426614174000"), "expected 36 characters"},
        {TXT("123e4567-e89b-12d3-a4564-26614174000"), "expected '-' at position 24"},
        {TXT("123e456-7e89b-12d3-a456-426614174000"), "expected '-' at position 9"},
        {TXT("g23e4567-e89b-12d3-a456-426614174000"), "character 1 is not a hexadecimal digit"},
        {TXT("123e4567-e89b-12d3-a456-42661417400 "), "character 36"},
        {TXT("123e4567_e89b_12d3_a456_426614174000"), "expected '-'"},
        {TXT("123e4567-e89b-12d3-a456-42661417400\xc3"), "not valid UTF-8"},
        {TXT("123e4567-e89b-12d3-a456-4266141740\xc3\xa9"), "not a hexadecimal digit"},
        {cstack_v_int(1), "expected a Uuid as text, got an integer"},
        {BLOB("0123456789abcdef"), "got a blob"},
    };
    run_bad(CS_T_UUID, NULL, bad, NCASES(bad));
}

Test(value_cuid, lowercase_alphanumerics_starting_with_a_letter)
{
    ok_case ok[] = {
        {TXT("cjld2cjxh0000qzrmn831i7rn"), TXT("cjld2cjxh0000qzrmn831i7rn")},
        {TXT("ckopqwooh000001la8mbi2im9"), TXT("ckopqwooh000001la8mbi2im9")},
        {TXT("tz4a98xxat96iws9zmbrgj3a"), TXT("tz4a98xxat96iws9zmbrgj3a")},
        {TXT("ab"), TXT("ab")},
        {TXT("a1"), TXT("a1")},
        {TXT("z9"), TXT("z9")},
        {TXT("c00000000000000000000000"), TXT("c00000000000000000000000")},
        {TXT("abcdefghijklmnopqrstuvwxyz0123456789"), TXT("abcdefghijklmnopqrstuvwxyz0123456789")},
        {TXT("a123456789012345678901234567890123456789012345678901234567890123"),
         TXT("a123456789012345678901234567890123456789012345678901234567890123")},
        {TXT("pfh0haxfpzowht3oi213cqos"), TXT("pfh0haxfpzowht3oi213cqos")},
        {TXT("nc6bzmkmd014706rfda898to"), TXT("nc6bzmkmd014706rfda898to")},
        {TXT("cl9ebqhxk00003b600tymydho"), TXT("cl9ebqhxk00003b600tymydho")},
        {TXT("zz"), TXT("zz")},
        {TXT("m0m0m0"), TXT("m0m0m0")},
        {TXT("clh3am1cz0000356u6v4vq1x9"), TXT("clh3am1cz0000356u6v4vq1x9")},
        {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_CUID, NULL, ok, NCASES(ok));
    bad_case bad[] = {
        {TXT(""), "expected 2 to 64 characters, got 0"},
        {TXT("a"), "got 1"},
        {TXT("a1234567890123456789012345678901234567890123456789012345678901234"), "got 65"},
        {TXT("Cjld2cjxh0000qzrmn831i7rn"), "must start with a lowercase letter"},
        {TXT("cjld2CJXH0000qzrmn831i7rn"), "character 6 is not a lowercase letter or digit"},
        {TXT("1abc"), "must start with a lowercase letter"},
        {TXT("-abc"), "must start with a lowercase letter"},
        {TXT("abc-def"), "character 4"},
        {TXT("abc_def"), "character 4"},
        {TXT("abc def"), "character 4"},
        {TXT("abc\n"), "character 4"},
        {TXT(" abc"), "must start"},
        {TXT("ab\xc3\xa9"), "character 3"},
        {TXT("ab\xff"), "not valid UTF-8"},
        {cstack_v_int(7), "expected a Cuid as text, got an integer"},
        {BLOB("cjld2cjxh0000qzrmn831i7rn"), "got a blob"},
    };
    run_bad(CS_T_CUID, NULL, bad, NCASES(bad));
}

Test(value_datetime, rfc3339_becomes_utc_with_six_digits)
{
    ok_case ok[] = {
        {TXT("2026-01-01T12:00:00+02:00"), TXT("2026-01-01T10:00:00.000000Z")},
        {TXT("2026-11-26T10:40:21.123456Z"), TXT("2026-11-26T10:40:21.123456Z")},
        {TXT("2026-11-26t10:40:21.123456z"), TXT("2026-11-26T10:40:21.123456Z")},
        {TXT("2026-11-26 10:40:21Z"), TXT("2026-11-26T10:40:21.000000Z")},
        {TXT("2026-01-01T00:30:00+01:00"), TXT("2025-12-31T23:30:00.000000Z")},
        {TXT("2025-12-31T23:30:00-01:00"), TXT("2026-01-01T00:30:00.000000Z")},
        {TXT("2024-02-29T00:00:00Z"), TXT("2024-02-29T00:00:00.000000Z")},
        {TXT("2000-02-29T12:00:00Z"), TXT("2000-02-29T12:00:00.000000Z")},
        {TXT("2026-01-01T10:00:00.1Z"), TXT("2026-01-01T10:00:00.100000Z")},
        {TXT("2026-01-01T10:00:00.123456000Z"), TXT("2026-01-01T10:00:00.123456Z")},
        {TXT("0001-01-01T00:00:00Z"), TXT("0001-01-01T00:00:00.000000Z")},
        {TXT("9999-12-31T23:59:59.999999Z"), TXT("9999-12-31T23:59:59.999999Z")},
        {TXT("2026-03-01T00:00:00+05:30"), TXT("2026-02-28T18:30:00.000000Z")},
        {TXT("2024-03-01T00:00:00+05:30"), TXT("2024-02-29T18:30:00.000000Z")},
        {TXT("2026-06-15T12:00:00-00:00"), TXT("2026-06-15T12:00:00.000000Z")},
        {TXT("1970-01-01T00:00:00Z"), TXT("1970-01-01T00:00:00.000000Z")},
        {TXT("1969-12-31T23:59:59.999999Z"), TXT("1969-12-31T23:59:59.999999Z")},
        {TXT("0000-12-31T23:00:00-02:00"), TXT("0001-01-01T01:00:00.000000Z")},
        {TXT("2026-01-01T10:00:00.5+23:59"), TXT("2025-12-31T10:01:00.500000Z")},
        {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_DATETIME, NULL, ok, NCASES(ok));
    bad_case bad[] = {
        {TXT("2026-13-01T00:00:00Z"), "month 13 out of range 01-12"},
        {TXT("2026-00-10T00:00:00Z"), "month 00"},
        {TXT("2026-02-29T00:00:00Z"), "day 29 out of range for 2026-02"},
        {TXT("1900-02-29T00:00:00Z"), "day 29 out of range"},
        {TXT("2026-04-31T00:00:00Z"), "day 31 out of range"},
        {TXT("2026-01-00T00:00:00Z"), "day 00 out of range"},
        {TXT("2026-01-01T25:00:00Z"), "hour 25 out of range 00-23"},
        {TXT("2026-01-01T24:00:00Z"), "hour 24"},
        {TXT("2026-01-01T10:60:00Z"), "minute 60"},
        {TXT("2026-12-31T23:59:60Z"), "leap seconds"},
        {TXT("2026-12-31T23:59:61Z"), "second 61"},
        {TXT("2026-01-01T10:00:00"), "missing time zone offset"},
        {TXT("2026-01-01"), "a date without a time"},
        {TXT("2026-01-01T10:00Z"), "expected an RFC 3339 date-time"},
        {TXT("2026-01-01T10:00:00.1234567Z"), "finer than a microsecond"},
        {TXT("2026-01-01T10:00:00.0000000000Z"), "more than 9 fractional digits"},
        {TXT("2026-01-01T10:00:00.Z"), "expected digits after the decimal point"},
        {TXT("2026-01-01T10:00:00+0200"), "malformed offset"},
        {TXT("2026-01-01T10:00:00+24:00"), "offset +24:00 out of range"},
        {TXT("9999-12-31T23:00:00-01:00"), "out of range 0001-01-01 to 9999-12-31"},
        {TXT("0001-01-01T00:00:00+00:01"), "out of range"},
        {TXT("2026-01-01T10:00:00Z "), "unexpected characters after"},
        {TXT(" 2026-01-01T10:00:00Z"), "expected an RFC 3339"},
        {TXT("26-01-01T10:00:00Z"), "expected an RFC 3339"},
        {TXT("2026/01/01T10:00:00Z"), "expected an RFC 3339"},
        {TXT(""), "expected an RFC 3339"},
        {cstack_v_int(0), "expected a DateTime as text, got an integer"},
    };
    run_bad(CS_T_DATETIME, NULL, bad, NCASES(bad));
}

Test(value_json, compacts_without_touching_numbers_or_escapes)
{
    ok_case ok[] = {
        {TXT("{}"), TXT("{}")},
        {TXT("[]"), TXT("[]")},
        {TXT(" { \"a\" : 1 , \"b\" : [ 1 , 2 ] } "), TXT("{\"a\":1,\"b\":[1,2]}")},
        {TXT("1"), TXT("1")},
        {TXT("-0"), TXT("-0")},
        {TXT("1.50e+10"), TXT("1.50e+10")},
        {TXT("\"x\""), TXT("\"x\"")},
        {TXT("true"), TXT("true")},
        {TXT(" null "), TXT("null")},
        {TXT("\" a b \""), TXT("\" a b \"")},
        {TXT("\"\\u00e9\\n\\/\""), TXT("\"\\u00e9\\n\\/\"")},
        {TXT("[ \"\\\"\" , \"\\\\\" ]"), TXT("[\"\\\"\",\"\\\\\"]")},
        {TXT("\t\n\r[1]\n"), TXT("[1]")},
        {TXT("{\"a\" :{\"b\": {\"c\" :[ ]}}}"), TXT("{\"a\":{\"b\":{\"c\":[]}}}")},
        {TXT("\"caf\xc3\xa9\""), TXT("\"caf\xc3\xa9\"")},
        {TXT("\"\\ud83d\\ude00\""), TXT("\"\\ud83d\\ude00\"")},
        {TXT("{\"a\":1, \"a\":2}"), TXT("{\"a\":1,\"a\":2}")},
        {TXT("[1E5, 1e-7, -2.5E+3, 0.0]"), TXT("[1E5,1e-7,-2.5E+3,0.0]")},
        {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_JSON, NULL, ok, NCASES(ok));
    bad_case bad[] = {
        {TXT(""), "empty text is not JSON"},
        {TXT("   "), "empty"},
        {TXT("{"), "expected a string as object key at the end"},
        {TXT("[1,]"), "unexpected character at byte 4 (']')"},
        {TXT("{\"a\":1,}"), "expected a string as object key"},
        {TXT("01"), "leading zeros"},
        {TXT("1."), "expected digits after the decimal point"},
        {TXT(".5"), "unexpected character"},
        {TXT("+1"), "unexpected character"},
        {TXT("NaN"), "unexpected character"},
        {TXT("'a'"), "unexpected character"},
        {TXT("{a:1}"), "expected a string as object key"},
        {TXT("\"\\x\""), "invalid escape sequence"},
        {TXT("\"\\u12\""), "expected 4 hexadecimal digits"},
        {TXT("\"a\nb\""), "control character in string must be escaped"},
        {TXT("[1] [2]"), "unexpected text after the JSON value at byte 5"},
        {TXT("tru"), "unexpected character"},
        {TXT("\"\\u0000\""), "\\u0000 is not allowed"},
        {TXT("\"\\ud800\""), "not followed by a low surrogate"},
        {TXT("\"\\udc00\""), "lone low surrogate"},
        {TXT("\"\xff\""), "not valid UTF-8"},
        {TXT("\"abc"), "unterminated string"},
        {TXT("1e"), "expected digits in the exponent"},
        {TXT("[1 2]"), "expected ',' or ']'"},
        {TXT("{\"a\" 1}"), "expected ':'"},
        {cstack_v_int(1), "expected a Json as text, got an integer"},
    };
    run_bad(CS_T_JSON, NULL, bad, NCASES(bad));
}

static void json_depth(int depth, int want_rc)
{
    cs_buf src = CS_BUF_INIT, out = CS_BUF_INIT;
    for (int i = 0; i < depth; i++)
        cs_buf_putc(&src, '[');
    for (int i = 0; i < depth; i++)
        cs_buf_putc(&src, ']');
    char err[256] = "";
    int rc = cs_json_canon(src.data, src.len, &out, err, sizeof err);
    cr_expect_eq(rc, want_rc, "depth %d: %s", depth, err);
    if (rc)
        cr_expect(strstr(err, "nested deeper than 512"), "%s", err);
    cs_buf_free(&src);
    cs_buf_free(&out);
}

Test(value_json, nesting_is_bounded_and_output_size_too)
{
    json_depth(512, 0);
    json_depth(513, CSTACK_EVALIDATION);
    json_depth(100000, CSTACK_EVALIDATION);
    cs_buf out = CS_BUF_INIT;
    out.max = 8;
    char err[256] = "";
    cr_expect_eq(cs_json_canon("[1, 2, 3, 4, 5]", 15, &out, err, sizeof err), CSTACK_ETOOBIG);
    cs_buf_free(&out);
}

Test(value_json, compaction_round_trips)
{
    const char *docs[] = {
        " { \"k\" : [ 1 , { \"x\" : \" s p a c e s \" } , -1.5e-3 ] , \"e\" : \"\\t\\\"\" } ",
        "[\n  true,\n  false,\n  null\n]\n",
        "\"only a string\"",
    };
    for (size_t i = 0; i < NCASES(docs); i++) {
        cs_buf once = CS_BUF_INIT, twice = CS_BUF_INIT;
        cr_assert_eq(cs_json_canon(docs[i], strlen(docs[i]), &once, NULL, 0), 0);
        cr_assert_eq(cs_json_canon(once.data, once.len, &twice, NULL, 0), 0);
        cr_expect_str_eq(once.data, twice.data);
        cs_buf_free(&once);
        cs_buf_free(&twice);
    }
}

Test(value_decimal, canonical_form_keeps_scale)
{
    static char big[CS_DECIMAL_MAX_DIGITS + 2];
    memset(big, '9', CS_DECIMAL_MAX_DIGITS);
    big[CS_DECIMAL_MAX_DIGITS] = '\0';
    ok_case ok[] = {
        {TXT("0"), TXT("0")},
        {TXT("-0"), TXT("0")},
        {TXT("-0.00"), TXT("0.00")},
        {TXT("+1"), TXT("1")},
        {TXT("1.10"), TXT("1.10")},
        {TXT("007"), TXT("7")},
        {TXT("00.50"), TXT("0.50")},
        {TXT(".5"), TXT("0.5")},
        {TXT("-.5"), TXT("-0.5")},
        {TXT("+0.0"), TXT("0.0")},
        {TXT("000"), TXT("0")},
        {TXT("-12.340"), TXT("-12.340")},
        {TXT("123456789012345678901234567890.123456789"),
         TXT("123456789012345678901234567890.123456789")},
        {TXT("-0001000"), TXT("-1000")},
        {cstack_v_int(42), TXT("42")},
        {cstack_v_int(-7), TXT("-7")},
        {cstack_v_int(0), TXT("0")},
        {cstack_v_int(INT64_MIN), TXT("-9223372036854775808")},
        {cstack_v_text(big), cstack_v_text(big)},
        {cstack_v_null(), cstack_v_null()},
    };
    run_ok(CS_T_DECIMAL, NULL, ok, NCASES(ok));
    big[CS_DECIMAL_MAX_DIGITS] = '9';
    bad_case bad[] = {
        {TXT("1e5"), "invalid Decimal \"1e5\": exponent not allowed"},
        {TXT("1E-5"), "exponent not allowed"},
        {TXT("1.5e3"), "exponent not allowed"},
        {TXT(""), "empty"},
        {TXT("-"), "expected digits"},
        {TXT("+"), "expected digits"},
        {TXT("."), "expected digits"},
        {TXT("5."), "expected digits after the decimal point"},
        {TXT(" 1"), "whitespace is not allowed"},
        {TXT("1 "), "whitespace is not allowed"},
        {TXT("1,000"), "unexpected character ',' at position 2"},
        {TXT("0x10"), "unexpected character 'x'"},
        {TXT("NaN"), "NaN and Infinity are not decimals"},
        {TXT("-Infinity"), "NaN and Infinity"},
        {TXT("1.2.3"), "unexpected character '.' at position 4"},
        {TXT("--1"), "unexpected character '-' at position 2"},
        {TXT("1_000"), "unexpected character '_'"},
        {TXT("\xd9\xa1"), "unexpected byte 0xd9"},
        {cstack_v_text(big), "more than 1000 digits"},
        {cstack_v_float(1.5), "expected a Decimal as text or an integer, got a float"},
        {cstack_v_bool(1), "got a boolean"},
        {BLOB("1"), "got a blob"},
    };
    run_bad(CS_T_DECIMAL, NULL, bad, NCASES(bad));
}

Test(value_decimal, compares_numerically)
{
    struct {
        const char *a, *b;
        int want;
    } c[] = {
        {"9.5", "10.25", -1},  {"1.10", "1.1", 0}, {"-1", "-2", 1},      {"-0", "0", 0},
        {"0.001", "0.01", -1}, {"-10", "9", -1},   {"100", "99.999", 1}, {"-0.5", "-0.50", 0},
        {"0.00", "0", 0},      {"-0.01", "0", -1}, {"007", "7", 0},      {"1", "1.0000000001", -1},
        {"-1.5", "-1.25", -1}, {"123", "45", 1},   {".5", "0.5", 0},     {"1e5", "1", 1},
        {"abc", "99999", 1},   {"abc", "abd", -1}, {"", "0", 1},         {"abc", "abc", 0},
    };
    for (size_t i = 0; i < NCASES(c); i++) {
        int got = cs_decimal_cmp(c[i].a, strlen(c[i].a), c[i].b, strlen(c[i].b));
        int back = cs_decimal_cmp(c[i].b, strlen(c[i].b), c[i].a, strlen(c[i].a));
        got = (got > 0) - (got < 0);
        back = (back > 0) - (back < 0);
        cr_expect_eq(got, c[i].want, "cmp(%s, %s) = %d", c[i].a, c[i].b, got);
        cr_expect_eq(back, -c[i].want, "cmp(%s, %s) = %d", c[i].b, c[i].a, back);
    }
}

Test(value_decimal, adds_exactly)
{
    struct {
        const char *a, *b, *want;
    } c[] = {
        {"0.10", "0.20", "0.30"},
        {"1", "-1", "0"},
        {"-0.5", "0.25", "-0.25"},
        {"999", "1", "1000"},
        {"-1.50", "1.5", "0.00"},
        {"0.1", "-0.35", "-0.25"},
        {"123.456", "-23.456", "100.000"},
        {"-5", "-7", "-12"},
        {"99.99", "0.01", "100.00"},
        {".5", "1", "1.5"},
        {"-0", "-0.0", "0.0"},
        {"0.000000001", "999999999", "999999999.000000001"},
        {"-100", "99.5", "-0.5"},
        {"12345678901234567890", "98765432109876543210", "111111111011111111100"},
    };
    for (size_t i = 0; i < NCASES(c); i++) {
        cs_buf out = CS_BUF_INIT;
        int rc = cs_decimal_add(c[i].a, strlen(c[i].a), c[i].b, strlen(c[i].b), &out);
        cr_expect_eq(rc, 0, "add(%s, %s) rc %d", c[i].a, c[i].b, rc);
        if (rc == 0)
            cr_expect_str_eq(out.data, c[i].want, "add(%s, %s)", c[i].a, c[i].b);
        cs_buf_free(&out);
    }
    cs_buf out = CS_BUF_INIT;
    cr_expect_eq(cs_decimal_add("1e5", 3, "1", 1, &out), CSTACK_EVALIDATION);
    cr_expect_eq(out.len, 0);
    cs_buf_free(&out);
}

Test(value_enum, members_by_exact_name)
{
    const char *colors[] = {"RED",
                      "GREEN",
                      "BLUE",
                      "CYAN",
                      "MAGENTA",
                      "YELLOW",
                      "BLACK",
                      "WHITE",
                      "ORANGE",
                      "PURPLE",
                      "PINK",
                      "BROWN",
                      "GRAY",
                      "NAVY",
                      "TEAL",
                      "MAROON",
                      "OLIVE",
                      "LIME_GREEN",
                      "SKY_BLUE_LIGHT_VARIANT_WITH_A_LONG_NAME",
                      "DEEP_FOREST_GREEN_2"};
    cs_enum_members color = {"Color", colors, NCASES(colors)};
    const char *st[] = {"OPEN", "DONE"};
    cs_enum_members status = {"Status", st, 2};
    ok_case ok[NCASES(colors) + 1];
    for (size_t i = 0; i < NCASES(colors); i++)
        ok[i] = (ok_case){cstack_v_text(colors[i]), cstack_v_text(colors[i])};
    ok[NCASES(colors)] = (ok_case){cstack_v_null(), cstack_v_null()};
    run_ok(CS_T_ENUM, &color, ok, NCASES(ok));
    bad_case bad[] = {
        {TXT("open"), "invalid Status \"open\": not a member of enum Status (expected one of "
                      "OPEN, DONE)"},
        {TXT(""), "not a member"},
        {TXT("OPEN "), "not a member"},
        {TXT(" OPEN"), "not a member"},
        {TXT("OPE"), "not a member"},
        {TXT("OPENED"), "not a member"},
        {TXT("OPEN\0"), "NUL"},
        {TXT("DONE\n"), "not a member"},
        {TXT("CLOSED"), "expected one of OPEN, DONE"},
        {TXT("\xff"), "not valid UTF-8"},
        {TXT("D\xc3\x96NE"), "not a member"},
        {cstack_v_int(0), "expected a Status as text, got an integer"},
        {cstack_v_float(0), "got a float"},
        {cstack_v_bool(1), "got a boolean"},
        {BLOB("OPEN"), "got a blob"},
    };
    run_bad(CS_T_ENUM, &status, bad, NCASES(bad));
    /* A long member list is not dumped into the message. */
    bad_case lng[] = {{TXT("VIOLET"), "not a member of enum Color"}};
    cs_buf scratch = CS_BUF_INIT;
    cstack_value out;
    char err[256];
    cr_expect_eq(cs_value_canon(CS_T_ENUM, &color, &lng[0].in, &scratch, &out, err, sizeof err),
                 CSTACK_EVALIDATION);
    cr_expect(strstr(err, lng[0].msg) && !strstr(err, "expected one of"), "%s", err);
    cs_buf_free(&scratch);
}

Test(value_messages, quote_long_and_unprintable_values)
{
    char err[256];
    char *s = "0123456789012345678901234567890123456789-this part is cut";
    cs_value_errf(err, sizeof err, "Uuid", s, strlen(s), "bad");
    cr_expect_str_eq(err, "invalid Uuid \"0123456789012345678901234567890123456789...\": bad");
    cs_value_errf(err, sizeof err, "String", "a\"b\\c\n\x01\xff\xc3\xa9", 10, "x");
    cr_expect_str_eq(err, "invalid String \"a\\\"b\\\\c\\x0a\\x01\\xff\xc3\xa9\": x");
    char small[12];
    cs_value_errf(small, sizeof small, "Uuid", s, strlen(s), "bad");
    cr_expect_eq(strlen(small), sizeof small - 1);
    cs_value_errf(NULL, 0, "Uuid", s, strlen(s), "no crash");
}

Test(value_canon, borrows_canonical_input_and_copies_the_rest)
{
    cs_buf scratch = CS_BUF_INIT;
    cstack_value out;
    char err[256];
    cstack_value in = TXT("123e4567-e89b-12d3-a456-426614174000");
    cr_assert_eq(cs_value_canon(CS_T_UUID, NULL, &in, &scratch, &out, err, sizeof err), 0);
    cr_expect_eq(out.u.s.p, in.u.s.p, "already canonical: borrowed");
    cr_expect_eq(scratch.len, 0);
    in = TXT("1.50");
    cr_assert_eq(cs_value_canon(CS_T_DECIMAL, NULL, &in, &scratch, &out, err, sizeof err), 0);
    cr_expect_eq(out.u.s.p, in.u.s.p);
    cr_expect_eq(scratch.len, 0, "scratch given back");
    in = TXT("+1.50");
    cr_assert_eq(cs_value_canon(CS_T_DECIMAL, NULL, &in, &scratch, &out, err, sizeof err), 0);
    cr_expect_eq(out.u.s.p, scratch.data);
    cr_expect_eq(out.u.s.n, 4);
    cs_buf_free(&scratch);
    in = cstack_v_textn(NULL, 3);
    cr_expect_eq(cs_value_canon(CS_T_STRING, NULL, &in, &scratch, &out, err, sizeof err),
                 CSTACK_EMISUSE);
    in = TXT("OPEN");
    cr_expect_eq(cs_value_canon(CS_T_ENUM, NULL, &in, &scratch, &out, err, sizeof err),
                 CSTACK_EMISUSE);
    cs_buf_free(&scratch);
}
