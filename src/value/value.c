/*
 * value.c -- validation and canonical encoding of scalar values (SPEC
 * section 3): the cs_value_canon() dispatcher, UTF-8 validation, the
 * wording of value errors, and the cheap scalars (String, Cuid, Int, Float,
 * Boolean, Bytes, Enum).  The scalars with a grammar live in their own
 * files: uuid.c, datetime.c, decimal.c, json.c.
 *
 * Decisions worth knowing:
 *   - Text values (String, Cuid, Enum, ...) must not contain U+0000.  It is
 *     valid UTF-8, but PostgreSQL TEXT cannot store it and C callers would
 *     silently truncate it, so a value accepted here could not round-trip.
 *   - Cuid accepts 2..64 characters of [a-z0-9] starting with a letter: that
 *     covers cuid v1 (25 chars, 'c' first), cuid2 (24 by default, any
 *     length) and slugs of the same shape.  Upper case is rejected rather
 *     than folded, because Cuid is stored "as given".
 *   - Boolean is accepted as a BOOL only and produced as INT 0/1, the form
 *     bound to SQLite; Int is accepted as an INT only (no implicit parsing
 *     of text, so "42" in an Int field is an error, not a guess).
 */
#include "value/value.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

cstack_value cstack_v_text(const char *p)
{
    return p ? cstack_v_textn(p, strlen(p)) : cstack_v_null();
}

/* Length of the well-formed UTF-8 sequence at s (Unicode table 3-7), or 0
 * when the bytes there are not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    unsigned lo = 0x80, hi = 0xBF;
    size_t len;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* UTF-16 surrogates D800..DFFF */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* beyond U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

bool cs_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII dominates real text: skip it eight bytes at a time. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if (w & UINT64_C(0x8080808080808080))
                break;
            i += 8;
        }
        if (i >= n)
            break;
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

#define QUOTE_MAX 40

size_t cs_value_quote(char *out, size_t outlen, const char *s, size_t n)
{
    if (outlen == 0)
        return 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;
    /* Every piece is written whole or not at all, so a small buffer cuts the
     * quote at a clean point instead of in the middle of an escape. */
#define PUT(str, len)                                                                              \
    do {                                                                                           \
        if (o + (len) + 1 > outlen)                                                                \
            goto done;                                                                             \
        memcpy(out + o, (str), (len));                                                             \
        o += (len);                                                                                \
    } while (0)
    while (i < n && i < QUOTE_MAX) {
        unsigned c = p[i];
        char tmp[8];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            PUT(tmp, 2);
            i++;
        } else if (c >= 0x20 && c < 0x7F) {
            tmp[0] = (char)c;
            PUT(tmp, 1);
            i++;
        } else {
            size_t k = c >= 0x80 ? utf8_seq(p + i, n - i) : 0;
            if (k > 0 && i + k <= QUOTE_MAX) {
                PUT(s + i, k);
                i += k;
            } else if (k > 0) {
                break; /* a character straddling the limit is left out */
            } else {
                snprintf(tmp, sizeof tmp, "\\x%02x", c);
                PUT(tmp, 4);
                i++;
            }
        }
    }
    if (i < n)
        PUT("...", 3);
#undef PUT
done:
    out[o] = '\0';
    return o;
}

void cs_value_errf(char *err, size_t errlen, const char *type, const char *s, size_t n,
                   const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    char q[QUOTE_MAX * 4 + 8];
    cs_value_quote(q, sizeof q, s, n);
    int k = snprintf(err, errlen, "invalid %s \"%s\": ", type, q);
    if (k < 0 || (size_t)k >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *kind_name(cstack_vtype t)
{
    switch (t) {
    case CSTACK_NULL:
        return "null";
    case CSTACK_INT:
        return "an integer";
    case CSTACK_FLOAT:
        return "a float";
    case CSTACK_BOOL:
        return "a boolean";
    case CSTACK_TEXT:
        return "text";
    case CSTACK_BLOB:
        return "a blob";
    }
    return "an unknown kind of value";
}

/* "an Int", "an Enum", but "a Uuid": 'U' usually sounds like "you". */
static const char *article(const char *name)
{
    return name[0] && strchr("AEIOaeio", name[0]) ? "an" : "a";
}

static int wrong_kind(const char *tname, const char *accepted, const cstack_value *in, char *err,
                      size_t errlen)
{
    if (in->type == CSTACK_TEXT) {
        char q[QUOTE_MAX * 4 + 8];
        cs_value_quote(q, sizeof q, in->u.s.p, in->u.s.n);
        errf(err, errlen, "expected %s %s as %s, got text \"%s\"", article(tname), tname, accepted,
             q);
    } else {
        errf(err, errlen, "expected %s %s as %s, got %s", article(tname), tname, accepted,
             kind_name(in->type));
    }
    return CSTACK_EVALIDATION;
}

/* Checks what every text scalar requires: valid UTF-8 without U+0000. */
static int text_ok(const char *tname, const char *s, size_t n, char *err, size_t errlen)
{
    if (!cs_utf8_valid(s, n)) {
        cs_value_errf(err, errlen, tname, s, n, "not valid UTF-8");
        return CSTACK_EVALIDATION;
    }
    if (memchr(s, '\0', n)) {
        cs_value_errf(err, errlen, tname, s, n,
                      "contains a NUL character (U+0000), which cannot be stored");
        return CSTACK_EVALIDATION;
    }
    return 0;
}

static int cuid_ok(const char *s, size_t n, char *err, size_t errlen)
{
    if (n < 2 || n > 64) {
        cs_value_errf(err, errlen, "Cuid", s, n, "expected 2 to 64 characters, got %zu", n);
        return CSTACK_EVALIDATION;
    }
    if (s[0] < 'a' || s[0] > 'z') {
        cs_value_errf(err, errlen, "Cuid", s, n, "must start with a lowercase letter");
        return CSTACK_EVALIDATION;
    }
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            cs_value_errf(err, errlen, "Cuid", s, n,
                          "character %zu is not a lowercase letter or digit", i + 1);
            return CSTACK_EVALIDATION;
        }
    }
    return 0;
}

static int enum_ok(const cs_enum_members *en, const char *s, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < en->nmembers; i++)
        if (strlen(en->members[i]) == n && memcmp(en->members[i], s, n) == 0)
            return 0;
    /* List the members when the list is short enough to read in one line. */
    char list[100];
    size_t o = 0;
    bool all = true;
    for (size_t i = 0; i < en->nmembers && all; i++) {
        int k = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", en->members[i]);
        if (k < 0 || (size_t)k >= sizeof list - o)
            all = false;
        else
            o += (size_t)k;
    }
    if (all && en->nmembers > 0)
        cs_value_errf(err, errlen, en->name, s, n, "not a member of enum %s (expected one of %s)",
                      en->name, list);
    else
        cs_value_errf(err, errlen, en->name, s, n, "not a member of enum %s", en->name);
    return CSTACK_EVALIDATION;
}

/* Points *out at `canon` (len bytes at scratch offset `at`), or at the input
 * itself when canonicalisation changed nothing, giving the scratch space
 * back. */
static void text_result(const cstack_value *in, cs_buf *scratch, size_t at, cstack_value *out)
{
    size_t len = scratch->len - at;
    if (len == in->u.s.n && memcmp(scratch->data + at, in->u.s.p, len) == 0) {
        scratch->len = at;
        scratch->data[at] = '\0';
        *out = *in;
    } else {
        *out = cstack_v_textn(scratch->data + at, len);
    }
}

/* The text scalars with a grammar: Uuid, DateTime, Decimal, Json. */
static int canon_text(cs_scalar type, const cstack_value *in, cs_buf *scratch, cstack_value *out,
                      char *err, size_t errlen)
{
    const char *s = in->u.s.p;
    size_t n = in->u.s.n;
    size_t at = scratch->len;
    int rc;
    if (type == CS_T_UUID || type == CS_T_DATETIME) {
        _Static_assert(CS_UUID_LEN >= CS_DATETIME_LEN, "tmp holds either canonical form");
        char tmp[CS_UUID_LEN + 1];
        size_t len = type == CS_T_UUID ? CS_UUID_LEN : CS_DATETIME_LEN;
        rc = type == CS_T_UUID ? cs_uuid_canon(s, n, tmp, err, errlen)
                               : cs_datetime_canon(s, n, tmp, err, errlen);
        if (rc == 0 && !(n == len && memcmp(s, tmp, len) == 0)) {
            if ((rc = cs_buf_append(scratch, tmp, len)) != 0)
                errf(err, errlen, "%s", cstack_errstr(rc));
            else
                *out = cstack_v_textn(scratch->data + at, len);
            return rc;
        }
        if (rc == 0)
            *out = *in;
        return rc;
    }
    rc = type == CS_T_DECIMAL ? cs_decimal_canon(s, n, scratch, err, errlen)
                              : cs_json_canon(s, n, scratch, err, errlen);
    if (rc == 0)
        text_result(in, scratch, at, out);
    return rc;
}

static int canon_decimal_int(int64_t i, cs_buf *scratch, cstack_value *out, char *err,
                             size_t errlen)
{
    size_t at = scratch->len;
    int rc = cs_buf_printf(scratch, "%" PRId64, i);
    if (rc != 0) {
        errf(err, errlen, "%s", cstack_errstr(rc));
        return rc;
    }
    *out = cstack_v_textn(scratch->data + at, scratch->len - at);
    return 0;
}

static int canon_float(const cstack_value *in, cstack_value *out, char *err, size_t errlen)
{
    if (in->type == CSTACK_FLOAT) {
        if (!isfinite(in->u.f)) {
            errf(err, errlen, "invalid Float %s: only finite numbers can be stored",
                 isnan(in->u.f) ? "NaN"
                 : in->u.f > 0  ? "Infinity"
                                : "-Infinity");
            return CSTACK_EVALIDATION;
        }
        *out = *in;
        return 0;
    }
    /* An integer is accepted when the double holds it exactly; 2^63 itself
     * is out of int64 range, hence the strict upper bound. */
    double d = (double)in->u.i;
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (int64_t)d == in->u.i)) {
        errf(err, errlen, "invalid Float %" PRId64 ": not exactly representable as a double",
             in->u.i);
        return CSTACK_EVALIDATION;
    }
    *out = cstack_v_float(d);
    return 0;
}

/* The one table of scalar names: the schema's parser, its messages and
 * value/'s own messages all spell types from it. */
static const char *const scalar_names[] = {"String", "Int",      "Float", "Boolean", "Bytes", "Uuid",
                                           "Cuid",   "DateTime", "Json",  "Decimal", "enum",  "model"};

const char *cs_scalar_name(cs_scalar t)
{
    return (unsigned)t < sizeof scalar_names / sizeof scalar_names[0] ? scalar_names[t] : "?";
}

int cs_scalar_find(const char *name)
{
    for (int i = 0; i <= (int)CS_T_DECIMAL; i++)
        if (strcmp(scalar_names[i], name) == 0)
            return i;
    return -1;
}

static const char *scalar_name(cs_scalar t, const cs_enum_members *en)
{
    if (t == CS_T_ENUM)
        return en && en->name ? en->name : "Enum";
    return cs_scalar_name(t);
}

int cs_value_canon(cs_scalar type, const cs_enum_members *en, const cstack_value *in, cs_buf *scratch,
                   cstack_value *out, char *err, size_t errlen)
{
    const char *tname = scalar_name(type, en);
    *out = cstack_v_null();
    if (in->type == CSTACK_NULL)
        return 0;
    if (in->type == CSTACK_TEXT && !in->u.s.p && in->u.s.n > 0) {
        errf(err, errlen, "invalid %s: text pointer is NULL", tname);
        return CSTACK_EMISUSE;
    }
    switch (type) {
    case CS_T_INT:
        if (in->type != CSTACK_INT)
            return wrong_kind(tname, "an integer", in, err, errlen);
        *out = *in;
        return 0;
    case CS_T_FLOAT:
        if (in->type != CSTACK_FLOAT && in->type != CSTACK_INT)
            return wrong_kind(tname, "a float or an integer", in, err, errlen);
        return canon_float(in, out, err, errlen);
    case CS_T_BOOLEAN:
        if (in->type != CSTACK_BOOL)
            return wrong_kind(tname, "a boolean", in, err, errlen);
        *out = cstack_v_int(in->u.b ? 1 : 0);
        return 0;
    case CS_T_BYTES:
        if (in->type != CSTACK_BLOB)
            return wrong_kind(tname, "a blob", in, err, errlen);
        *out = *in;
        return 0;
    case CS_T_DECIMAL:
        if (in->type == CSTACK_INT)
            return canon_decimal_int(in->u.i, scratch, out, err, errlen);
        if (in->type != CSTACK_TEXT)
            return wrong_kind(tname, "text or an integer", in, err, errlen);
        return canon_text(type, in, scratch, out, err, errlen);
    case CS_T_STRING:
    case CS_T_CUID:
    case CS_T_UUID:
    case CS_T_DATETIME:
    case CS_T_JSON:
    case CS_T_ENUM: {
        if (in->type != CSTACK_TEXT)
            return wrong_kind(tname, "text", in, err, errlen);
        const char *s = in->u.s.p ? in->u.s.p : "";
        cstack_value v = cstack_v_textn(s, in->u.s.n);
        int rc = text_ok(tname, s, v.u.s.n, err, errlen);
        if (rc == 0 && type == CS_T_CUID)
            rc = cuid_ok(s, v.u.s.n, err, errlen);
        if (rc == 0 && type == CS_T_ENUM) {
            if (!en) {
                errf(err, errlen, "invalid Enum value: no enum given for the field");
                return CSTACK_EMISUSE;
            }
            rc = enum_ok(en, s, v.u.s.n, err, errlen);
        }
        if (rc != 0)
            return rc;
        if (type == CS_T_STRING || type == CS_T_CUID || type == CS_T_ENUM) {
            *out = v;
            return 0;
        }
        return canon_text(type, &v, scratch, out, err, errlen);
    }
    case CS_T_MODEL:
        break;
    }
    errf(err, errlen, "a relation field holds no value of its own");
    return CSTACK_EMISUSE;
}
