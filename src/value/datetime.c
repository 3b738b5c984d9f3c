/*
 * datetime.c -- DateTime parsing (RFC 3339) and formatting, and the clock.
 *
 * Accepted input: YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+HH:MM|-HH:MM), where 'T'
 * may also be 't' or a space and 'Z' may be 'z'.  Canonical output is UTC
 * with exactly six fractional digits: 2026-01-01T10:00:00.000000Z (27 bytes,
 * fixed width, so text order is time order).
 *
 * Decisions:
 *   - A leap second (:60) is rejected: the value could not be stored in UTC
 *     microseconds without silently moving it to the next second.
 *   - Digits beyond microseconds are accepted only when they are zero;
 *     anything else would be rounded away, i.e. silently changed.
 *   - A local time without an offset is rejected: guessing a zone changes
 *     the instant.  "-00:00" (RFC 3339's "offset unknown") is read as UTC.
 *   - The year must lie in 0001..9999 after conversion to UTC (the input
 *     may say 0000 if its offset moves it into range).
 */
#include "value/value.h"
#include "util/clock.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define US_PER_SEC INT64_C(1000000)
#define US_PER_DAY (INT64_C(86400) * US_PER_SEC)

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), valid for every year used here. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int y, unsigned m)
{
    static const unsigned dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in Unix microseconds. */
#define MIN_US (INT64_C(-62135596800) * US_PER_SEC)
#define MAX_US (INT64_C(253402300800) * US_PER_SEC - 1)

static void put_digits(char *p, unsigned v, int w)
{
    for (int i = w - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void cs_datetime_format(int64_t micros, char out[CS_DATETIME_LEN + 1])
{
    /* Clamped so the text is always 27 bytes; in-range values are exact. */
    if (micros < MIN_US)
        micros = MIN_US;
    if (micros > MAX_US)
        micros = MAX_US;
    int64_t days = micros / US_PER_DAY, rem = micros % US_PER_DAY;
    if (rem < 0) {
        rem += US_PER_DAY;
        days--;
    }
    int y;
    unsigned mo, d;
    civil_from_days(days, &y, &mo, &d);
    int64_t secs = rem / US_PER_SEC;
    /* Written digit by digit: this runs for every DateTime stored, and
     * snprintf would cost more than the rest of the conversion. */
    put_digits(out, (unsigned)y, 4);
    out[4] = '-';
    put_digits(out + 5, mo, 2);
    out[7] = '-';
    put_digits(out + 8, d, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)(secs / 3600), 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)(secs / 60 % 60), 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)(secs % 60), 2);
    out[19] = '.';
    put_digits(out + 20, (unsigned)(rem % US_PER_SEC), 6);
    out[26] = 'Z';
    out[27] = 0;
}


void cs_now(char out[CS_DATETIME_LEN + 1])
{
    cs_datetime_format(cs_wall_us(), out);
}

/* Reads `w` decimal digits at s[*i]; -1 when any is not a digit. */
static int digits(const char *s, size_t n, size_t *i, int w)
{
    int v = 0;
    for (int k = 0; k < w; k++, (*i)++) {
        if (*i >= n || s[*i] < '0' || s[*i] > '9')
            return -1;
        v = v * 10 + (s[*i] - '0');
    }
    return v;
}

static bool expect(const char *s, size_t n, size_t *i, const char *chars)
{
    if (*i < n && s[*i] && strchr(chars, s[*i])) {
        (*i)++;
        return true;
    }
    return false;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        cs_value_errf(err, errlen, "DateTime", s, n, __VA_ARGS__);                                 \
        return CSTACK_EVALIDATION;                                                                 \
    } while (0)

/* Parses the fraction after the '.', as microseconds. */
static int fraction(const char *s, size_t n, size_t *i, int *us, char *err, size_t errlen)
{
    size_t start = *i;
    int v = 0;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9') {
        size_t k = *i - start;
        if (k >= 9)
            FAIL("more than 9 fractional digits");
        if (k < 6)
            v = v * 10 + (s[*i] - '0');
        else if (s[*i] != '0')
            FAIL("precision finer than a microsecond would be lost (digit %zu of the fraction "
                 "is not 0)",
                 k + 1);
        (*i)++;
    }
    if (*i == start)
        FAIL("expected digits after the decimal point");
    for (size_t k = *i - start; k < 6; k++)
        v *= 10;
    *us = v;
    return 0;
}

/* Parses Z or +HH:MM / -HH:MM into minutes east of UTC. */
static int offset(const char *s, size_t n, size_t *i, int *minutes, char *err, size_t errlen)
{
    if (expect(s, n, i, "Zz")) {
        *minutes = 0;
        return 0;
    }
    if (*i >= n)
        FAIL("missing time zone offset (Z or +HH:MM)");
    int sign = s[*i] == '-' ? -1 : 1;
    if (!expect(s, n, i, "+-"))
        FAIL("expected Z or +HH:MM offset at position %zu", *i + 1);
    int oh = digits(s, n, i, 2);
    if (oh < 0 || !expect(s, n, i, ":"))
        FAIL("malformed offset, expected +HH:MM");
    int om = digits(s, n, i, 2);
    if (om < 0)
        FAIL("malformed offset, expected +HH:MM");
    if (oh > 23 || om > 59)
        FAIL("offset %c%02d:%02d out of range", sign < 0 ? '-' : '+', oh, om);
    *minutes = sign * (oh * 60 + om);
    return 0;
}

int cs_datetime_canon(const char *s, size_t n, char out[CS_DATETIME_LEN + 1], char *err,
                      size_t errlen)
{
    size_t i = 0;
    int y = digits(s, n, &i, 4), mo = -1, d = -1, h = -1, mi = -1, se = -1;
    if (y >= 0 && expect(s, n, &i, "-"))
        mo = digits(s, n, &i, 2);
    if (mo >= 0 && expect(s, n, &i, "-"))
        d = digits(s, n, &i, 2);
    if (d >= 0 && i == n)
        FAIL("a date without a time; expected like 2026-01-01T10:00:00Z");
    if (d >= 0 && expect(s, n, &i, "Tt "))
        h = digits(s, n, &i, 2);
    if (h >= 0 && expect(s, n, &i, ":"))
        mi = digits(s, n, &i, 2);
    if (mi >= 0 && expect(s, n, &i, ":"))
        se = digits(s, n, &i, 2);
    if (se < 0)
        FAIL("expected an RFC 3339 date-time like 2026-01-01T10:00:00Z");
    if (mo < 1 || mo > 12)
        FAIL("month %02d out of range 01-12", mo);
    if (d < 1 || (unsigned)d > days_in_month(y, (unsigned)mo))
        FAIL("day %02d out of range for %04d-%02d", d, y, mo);
    if (h > 23)
        FAIL("hour %02d out of range 00-23", h);
    if (mi > 59)
        FAIL("minute %02d out of range 00-59", mi);
    if (se == 60)
        FAIL("leap seconds (:60) are not supported");
    if (se > 59)
        FAIL("second %02d out of range 00-59", se);
    int us = 0, off = 0;
    if (expect(s, n, &i, ".") && fraction(s, n, &i, &us, err, errlen) != 0)
        return CSTACK_EVALIDATION;
    if (offset(s, n, &i, &off, err, errlen) != 0)
        return CSTACK_EVALIDATION;
    if (i != n)
        FAIL("unexpected characters after the time zone offset");
    int64_t t = days_from_civil(y, (unsigned)mo, (unsigned)d) * US_PER_DAY +
                ((int64_t)h * 3600 + mi * 60 + se - (int64_t)off * 60) * US_PER_SEC + us;
    if (t < MIN_US || t > MAX_US)
        FAIL("out of range 0001-01-01 to 9999-12-31 in UTC");
    if (n == CS_DATETIME_LEN && s[10] == 'T' && s[19] == '.' && s[26] == 'Z') {
        /* Already canonical (the common case when values come back from
         * storage or another replica): nothing to rewrite. */
        memcpy(out, s, CS_DATETIME_LEN);
        out[CS_DATETIME_LEN] = 0;
        return 0;
    }
    cs_datetime_format(t, out);
    return 0;
}
