/*
 * decimal.c -- exact decimal numbers as text: validation, canonical form,
 * numeric comparison and addition.
 *
 * Accepted input: [+-]?(D+(.D+)?|.D+) where D is an ASCII digit.  ".5" reads
 * as 0.5 (a common way to write it, nothing is guessed); "5." is rejected
 * because it is ambiguous about the intended scale.  Exponents ("1e5"),
 * whitespace, thousands separators, NaN and Infinity are rejected.
 *
 * Canonical form: '-' only for non-zero negatives, no '+', integer part
 * without leading zeros ("0" when empty), the fraction exactly as written so
 * the scale is kept: "007.50" -> "7.50", "-0.00" -> "0.00", ".5" -> "0.5".
 * At most CS_DECIMAL_MAX_DIGITS digits (integer digits after stripping
 * leading zeros, plus fraction digits).
 */
#include "value/value.h"

#include <stdlib.h>
#include <string.h>

/* A parsed decimal: pointers into the text it was parsed from. */
typedef struct dec {
    bool neg;
    const char *ip; /* integer digits, leading zeros stripped (may be empty) */
    size_t in;
    const char *fp; /* fraction digits as written */
    size_t fn;
    bool zero; /* every digit is 0 */
} dec;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool ieq(const char *s, size_t n, const char *lit)
{
    if (strlen(lit) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != lit[i])
            return false;
    }
    return true;
}

static bool all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '0')
            return false;
    return true;
}

static const char UNEXPECTED[] = "unexpected character";

/* Parses s into *d.  Returns NULL, or the reason it is not a decimal (and
 * the byte offset of the problem in *at). */
static const char *dec_parse(const char *s, size_t n, dec *d, size_t *at)
{
    size_t i = 0;
    *at = 0;
    if (n == 0)
        return "empty text is not a number";
    d->neg = s[0] == '-';
    if (s[0] == '-' || s[0] == '+')
        i++;
    if (ieq(s + i, n - i, "nan") || ieq(s + i, n - i, "inf") || ieq(s + i, n - i, "infinity"))
        return "NaN and Infinity are not decimals";
    size_t start = i;
    while (i < n && is_digit(s[i]))
        i++;
    size_t iend = i;
    d->fp = s + i;
    d->fn = 0;
    if (i < n && s[i] == '.') {
        i++;
        d->fp = s + i;
        while (i < n && is_digit(s[i]))
            i++;
        d->fn = (size_t)(s + i - d->fp);
        if (d->fn == 0) {
            *at = i;
            return iend > start ? "expected digits after the decimal point (write 5 or 5.0, not 5.)"
                                : "expected digits";
        }
    } else if (iend == start) {
        *at = i;
        if (i == n)
            return "expected digits";
        return s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'
                   ? "whitespace is not allowed"
                   : UNEXPECTED;
    }
    if (i < n) {
        *at = i;
        if (s[i] == 'e' || s[i] == 'E')
            return "exponent not allowed; write the number out in full";
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
            return "whitespace is not allowed";
        return UNEXPECTED;
    }
    d->ip = s + start;
    d->in = iend - start;
    while (d->in > 0 && d->ip[0] == '0') {
        d->ip++;
        d->in--;
    }
    d->zero = d->in == 0 && all_zero(d->fp, d->fn);
    return NULL;
}

static int dec_write(cs_buf *out, const dec *d)
{
    int rc = cs_buf_reserve(out, d->in + d->fn + 3);
    if (rc != 0)
        return rc;
    if (d->neg && !d->zero)
        cs_buf_putc(out, '-');
    if (d->in > 0)
        cs_buf_append(out, d->ip, d->in);
    else
        cs_buf_putc(out, '0');
    if (d->fn > 0) {
        cs_buf_putc(out, '.');
        cs_buf_append(out, d->fp, d->fn);
    }
    return 0;
}

int cs_decimal_canon(const char *s, size_t n, cs_buf *out, char *err, size_t errlen)
{
    dec d;
    size_t at;
    const char *why = dec_parse(s ? s : "", s ? n : 0, &d, &at);
    if (why) {
        unsigned char c = (unsigned char)(why == UNEXPECTED ? s[at] : 0);
        if (why == UNEXPECTED && c >= 0x20 && c < 0x7F)
            cs_value_errf(err, errlen, "Decimal", s, n, "unexpected character '%c' at position %zu",
                          c, at + 1);
        else if (why == UNEXPECTED)
            cs_value_errf(err, errlen, "Decimal", s, n, "unexpected byte 0x%02x at position %zu", c,
                          at + 1);
        else
            cs_value_errf(err, errlen, "Decimal", s, n, "%s", why);
        return CSTACK_EVALIDATION;
    }
    if (d.in + d.fn > CS_DECIMAL_MAX_DIGITS) {
        cs_value_errf(err, errlen, "Decimal", s, n, "more than %d digits", CS_DECIMAL_MAX_DIGITS);
        return CSTACK_EVALIDATION;
    }
    int rc = dec_write(out, &d);
    if (rc != 0)
        cs_value_errf(err, errlen, "Decimal", s, n, "%s", cstack_errstr(rc));
    return rc;
}

/* Compares magnitudes |a| and |b|. */
static int mag_cmp(const dec *a, const dec *b)
{
    if (a->in != b->in)
        return a->in < b->in ? -1 : 1;
    int c = memcmp(a->ip, b->ip, a->in);
    if (c != 0)
        return c < 0 ? -1 : 1;
    size_t m = a->fn > b->fn ? a->fn : b->fn;
    for (size_t i = 0; i < m; i++) {
        char x = i < a->fn ? a->fp[i] : '0', y = i < b->fn ? b->fp[i] : '0';
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

/*
 * Invalid text cannot be ordered numerically, yet a collation must be a
 * total order that never fails: invalid text sorts after every valid number,
 * and among itself bytewise.
 */
int cs_decimal_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    dec x, y;
    size_t at;
    if (!a)
        an = 0;
    if (!b)
        bn = 0;
    bool xok = a && !dec_parse(a, an, &x, &at);
    bool yok = b && !dec_parse(b, bn, &y, &at);
    if (!xok || !yok) {
        if (xok != yok)
            return xok ? -1 : 1;
        int c = memcmp(a ? a : "", b ? b : "", an < bn ? an : bn);
        if (c != 0)
            return c < 0 ? -1 : 1;
        return an < bn ? -1 : an > bn;
    }
    bool xn = x.neg && !x.zero, yn = y.neg && !y.zero;
    if (xn != yn)
        return xn ? -1 : 1;
    int c = mag_cmp(&x, &y);
    return xn ? -c : c;
}

/* Digit k (0 = least significant) of d aligned to `scale` fraction digits. */
static int dig(const dec *d, size_t k, size_t scale)
{
    if (k < scale) {
        size_t f = scale - 1 - k;
        return f < d->fn ? d->fp[f] - '0' : 0;
    }
    size_t j = k - scale;
    return j < d->in ? d->ip[d->in - 1 - j] - '0' : 0;
}

int cs_decimal_add(const char *a, size_t an, const char *b, size_t bn, cs_buf *out)
{
    dec x, y;
    size_t at;
    if (!a || !b || dec_parse(a, an, &x, &at) || dec_parse(b, bn, &y, &at))
        return CSTACK_EVALIDATION;
    /* Work on |big| and |small| so a subtraction never borrows past the top;
     * the result takes the sign of the bigger magnitude. */
    bool xn = x.neg && !x.zero, yn = y.neg && !y.zero;
    const dec *big = &x, *small = &y;
    if (mag_cmp(&x, &y) < 0) {
        big = &y;
        small = &x;
    }
    bool neg = big == &x ? xn : yn;
    bool sub = xn != yn;
    size_t scale = x.fn > y.fn ? x.fn : y.fn;
    size_t width = scale + (x.in > y.in ? x.in : y.in) + 1;
    char *r = malloc(width); /* digits, least significant first */
    if (!r)
        return CSTACK_ENOMEM;
    int carry = 0;
    for (size_t k = 0; k < width; k++) {
        int v = sub ? dig(big, k, scale) - dig(small, k, scale) + carry
                    : dig(big, k, scale) + dig(small, k, scale) + carry;
        carry = v < 0 ? -1 : v / 10;
        r[k] = (char)('0' + (v < 0 ? v + 10 : v % 10));
    }
    /* Reverse into text order and let dec_write() strip and sign it. */
    for (size_t i = 0; i < width / 2; i++) {
        char t = r[i];
        r[i] = r[width - 1 - i];
        r[width - 1 - i] = t;
    }
    dec res = {neg, r, width - scale, r + width - scale, scale, false};
    while (res.in > 0 && res.ip[0] == '0') {
        res.ip++;
        res.in--;
    }
    res.zero = res.in == 0 && all_zero(res.fp, res.fn);
    int rc = dec_write(out, &res);
    free(r);
    return rc;
}
