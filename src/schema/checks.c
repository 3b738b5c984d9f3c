/*
 * checks.c -- field validators (@length, @email, @range, @regex, @iso4217):
 * their arguments (parsed by attrs.c through cs_check_attr) and their
 * enforcement on canonical values (cs_field_check).
 *
 * The checks run on writes only: the store's write path (typed API and
 * envelope alike) and the checks on rows a changeset brings (the sync server's
 * pushes and a client's pulls).  Filter values are never checked: a filter
 * `contains: "ab"` on a field with @length(min: 3) is legitimate.
 */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

/* ---- parsing ----------------------------------------------------------------- */

static bool number_arg(actx *c, const parg *g, double *out)
{
    if (g->kind != V_LIT || g->tok->kind != T_NUMBER) {
        cs_diag(c->p->diags, g->pos, "%s expects a number", c->attr);
        return false;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s", g->tok->len > 60 ? 60 : (int)g->tok->len, g->tok->start);
    *out = strtod(buf, NULL);
    return true;
}

/* min:/max: (or positional min, max) of @length and @range. */
static bool bounds(actx *c, const pargs *a, bool *has_min, double *min, bool *has_max,
                   double *max)
{
    if (a->n == 0 || a->n > 2) {
        cs_diag(c->p->diags, c->pos, "%s takes min:, max: or both", c->attr);
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        const parg *g = &a->v[i];
        bool is_max = g->name ? cs_tok_is(g->name, "max") : i == 1;
        if (g->name && !is_max && !cs_tok_is(g->name, "min")) {
            cs_diag(c->p->diags, g->name->pos, "unknown argument '%.*s' in %s (expected min or max)",
                    (int)g->name->len, g->name->start, c->attr);
            return false;
        }
        if (!number_arg(c, g, is_max ? max : min))
            return false;
        *(is_max ? has_max : has_min) = true;
    }
    if (*has_min && *has_max && *min > *max) {
        cs_diag(c->p->diags, c->pos, "%s: min is greater than max", c->attr);
        return false;
    }
    return true;
}

/* The integer value of a bound token, or false when it is not an integer
 * that fits int64 (then the double bound is the only one). */
static bool int_token(const cs_token *t, long long *out)
{
    char buf[64], *end = NULL;
    if (t->len >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%.*s", (int)t->len, t->start);
    errno = 0;
    *out = strtoll(buf, &end, 10);
    return errno == 0 && end && *end == '\0' && end != buf;
}

/* @range on an Int: keeps the bounds as int64 when both are integers. */
static void int_bounds(const pargs *a, cs_checks *k)
{
    bool ok = true;
    for (size_t i = 0; i < a->n && ok; i++) {
        const parg *g = &a->v[i];
        bool is_max = g->name ? cs_tok_is(g->name, "max") : i == 1;
        ok = int_token(g->tok, is_max ? &k->imax : &k->imin);
    }
    k->int_bounds = ok;
}

static bool want_type(actx *c, const cs_field *f, bool ok, const char *what)
{
    if (!ok)
        cs_diag(c->p->diags, c->pos, "%s applies to %s fields only", c->attr, what);
    return ok;
}

static void attr_regex(actx *c, const pargs *a, cs_field *f)
{
    if (a->n != 1 || a->v[0].name || a->v[0].kind != V_LIT || a->v[0].tok->kind != T_STRING) {
        cs_diag(c->p->diags, c->pos, "@regex takes one string: the pattern");
        return;
    }
    regex_t *re = calloc(1, sizeof *re);
    char *pat = cs_tok_strdup(c->p, a->v[0].tok);
    if (!re || !pat) {
        c->p->oom = true;
        free(re);
        free(pat);
        return;
    }
    if (regcomp(re, pat, REG_EXTENDED | REG_NOSUB) != 0) {
        cs_diag(c->p->diags, a->v[0].pos, "@regex: not a valid POSIX extended regular expression");
        free(re);
        free(pat);
        return;
    }
    f->checks.regex = pat;
    f->checks.re = re;
}

/* The field's type is known here (attributes follow it) except for enums
 * and models, which are neither strings nor numbers anyway. */
bool cs_check_attr(actx *c, const cs_token *name, const pargs *a, cs_field *f)
{
    cs_checks *k = &f->checks;
    bool str = !f->list && f->type_name && strcmp(f->type_name, "String") == 0;
    /* CrateStack's @length also measures Bytes, in bytes. */
    bool bytes = !f->list && f->type_name && strcmp(f->type_name, "Bytes") == 0;
    bool num = !f->list && f->type_name && (strcmp(f->type_name, "Int") == 0 ||
                                strcmp(f->type_name, "Float") == 0 ||
                                strcmp(f->type_name, "Decimal") == 0);
    bool twice = (cs_tok_is(name, "length") && k->length) ||
                 (cs_tok_is(name, "range") && k->range) || (cs_tok_is(name, "regex") && k->re);
    if (twice) {
        /* Once each: a second would silently replace the first. */
        cs_diag(c->p->diags, c->pos, "duplicate attribute %s on %s", c->attr, c->owner);
    } else if (cs_tok_is(name, "length")) {
        bool hmin = false, hmax = false;
        double mn = 0, mx = 0;
        if (want_type(c, f, str || bytes, "String and Bytes") &&
            bounds(c, a, &hmin, &mn, &hmax, &mx)) {
            k->length = true;
            k->len_min = hmin ? (long long)mn : -1;
            k->len_max = hmax ? (long long)mx : -1;
        }
    } else if (cs_tok_is(name, "range")) {
        if (want_type(c, f, num, "Int, Float or Decimal") &&
            bounds(c, a, &k->has_min, &k->min, &k->has_max, &k->max)) {
            k->range = true;
            if (strcmp(f->type_name, "Int") == 0)
                int_bounds(a, k);
        }
    } else if (cs_tok_is(name, "email") || cs_tok_is(name, "iso4217")) {
        if (a->given && a->n) {
            cs_diag(c->p->diags, c->pos, "%s takes no arguments", c->attr);
        } else if (want_type(c, f, str, "String")) {
            k->email = k->email || cs_tok_is(name, "email");
            k->iso4217 = k->iso4217 || cs_tok_is(name, "iso4217");
        }
    } else if (cs_tok_is(name, "regex")) {
        if (want_type(c, f, str, "String"))
            attr_regex(c, a, f);
    } else {
        return false;
    }
    return true;
}

void cs_checks_free(cs_checks *k)
{
    if (k->re) {
        regfree(k->re);
        free(k->re);
    }
    free(k->regex);
}

/* ---- enforcement ----------------------------------------------------------- */

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* local@domain.tld: one '@', a non-empty local part, a dot inside the
 * domain, no spaces.  Deliberately loose: mail servers decide the rest. */
static bool is_email(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (!at || at == s || memchr(at + 1, '@', n - (size_t)(at - s) - 1))
        return false;
    const char *dom = at + 1;
    size_t dn = n - (size_t)(dom - s);
    const char *dot = dn ? memchr(dom, '.', dn) : NULL;
    if (!dot || dot == dom || dot == s + n - 1 || s[n - 1] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ')
            return false;
    return true;
}

/* The active ISO 4217 alphabetic codes. */
static const char CURRENCIES[] =
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY "
    "KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP "
    "MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR "
    "RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS "
    "TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XAG XAU XCD XCG XDR "
    "XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG ZWL";

static bool is_currency(const char *s, size_t n)
{
    if (n != 3)
        return false;
    /* Entries are 3 letters and a space (the last one: and the NUL). */
    for (size_t k = 0; k + 3 < sizeof CURRENCIES; k += 4)
        if (memcmp(CURRENCIES + k, s, 3) == 0)
            return true;
    return false;
}

static double number_of(const cstack_value *v)
{
    if (v->type == CSTACK_INT)
        return (double)v->u.i;
    if (v->type == CSTACK_FLOAT)
        return v->u.f;
    char buf[80];
    snprintf(buf, sizeof buf, "%.*s", v->u.s.n > 78 ? 78 : (int)v->u.s.n, v->u.s.p);
    return strtod(buf, NULL); /* Decimal text: compared to double precision */
}

static bool matches(const cs_checks *k, const char *s, size_t n)
{
    char *z = cs_strndup(s, n);
    if (!z)
        return false;
    bool ok = strlen(z) == n && regexec(k->re, z, 0, NULL, 0) == 0;
    free(z);
    return ok;
}

static void fmt_bounds(char *b, size_t n, const char *rule, bool hmin, double mn, bool hmax,
                       double mx)
{
    if (hmin && hmax)
        snprintf(b, n, "%s(min: %g, max: %g)", rule, mn, mx);
    else if (hmin)
        snprintf(b, n, "%s(min: %g)", rule, mn);
    else
        snprintf(b, n, "%s(max: %g)", rule, mx);
}

/* @range of an Int field with integer bounds: exact, and quoted exactly. */
static void int_range(const cs_checks *k, int64_t x, char *rule, size_t n)
{
    if ((!k->has_min || x >= k->imin) && (!k->has_max || x <= k->imax))
        return;
    if (k->has_min && k->has_max)
        snprintf(rule, n, "@range(min: %lld, max: %lld)", k->imin, k->imax);
    else if (k->has_min)
        snprintf(rule, n, "@range(min: %lld)", k->imin);
    else
        snprintf(rule, n, "@range(max: %lld)", k->imax);
}

int cs_field_check(const cs_field *f, const cstack_value *v, char *err, size_t errlen)
{
    const cs_checks *k = &f->checks;
    char rule[240] = "";
    if (v->type == CSTACK_NULL)
        return 0;
    bool text = v->type == CSTACK_TEXT;
    const char *s = text ? v->u.s.p : "";
    size_t n = text ? v->u.s.n : 0;
    if (k->length && (text || v->type == CSTACK_BLOB)) {
        long long c = text ? (long long)utf8_chars(s, n) : (long long)v->u.s.n;
        if ((k->len_min >= 0 && c < k->len_min) || (k->len_max >= 0 && c > k->len_max))
            fmt_bounds(rule, sizeof rule, "@length", k->len_min >= 0, (double)k->len_min,
                       k->len_max >= 0, (double)k->len_max);
    }
    char why[120];
    if (k->geo && v->type == CSTACK_BLOB &&
        cs_geo_check(k, (const unsigned char *)v->u.s.p, v->u.s.n, why, sizeof why))
        snprintf(rule, sizeof rule, "%s: the value %s", f->type_name, why);
    if (!rule[0] && k->email && text && !is_email(s, n))
        snprintf(rule, sizeof rule, "@email");
    if (!rule[0] && k->iso4217 && text && !is_currency(s, n))
        snprintf(rule, sizeof rule, "@iso4217 (an ISO 4217 currency code like \"EUR\")");
    if (!rule[0] && k->re && text && !matches(k, s, n))
        snprintf(rule, sizeof rule, "@regex(\"%.80s\")", k->regex);
    if (!rule[0] && k->range && k->int_bounds && v->type == CSTACK_INT) {
        int_range(k, v->u.i, rule, sizeof rule);
    } else if (!rule[0] && k->range) {
        double x = number_of(v);
        if ((k->has_min && x < k->min) || (k->has_max && x > k->max))
            fmt_bounds(rule, sizeof rule, "@range", k->has_min, k->min, k->has_max, k->max);
    }
    if (!rule[0])
        return 0;
    snprintf(err, errlen, "field '%s' breaks %s", f->name, rule);
    return CSTACK_EVALIDATION;
}
