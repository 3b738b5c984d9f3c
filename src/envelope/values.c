/*
 * values.c -- JSON to cstack_value by field type, and rows back to JSON.
 *
 * Accepted JSON per scalar (docs/envelope.md, "Values"):
 *   String Cuid Uuid DateTime Enum   a string
 *   Decimal   a string, or an integer number (exact: its text is used, so
 *             integers of any size work); a number with a fraction or an
 *             exponent is refused because the sender's JSON library has most
 *             likely already rounded it through a double
 *   Int       an integer number, or a string of digits (beyond 2^53)
 *   Float     a number
 *   Boolean   true / false
 *   Bytes     a base64 string (RFC 4648, padded)
 *   Json      any JSON value, stored compact with its numbers as written
 * and null for NULL.  Every value is canonicalised here (value/), so an
 * invalid one is reported with its path; the runtime then only re-checks.
 *
 * Json values are re-serialised from the parsed tree: numbers keep their
 * exact text (jsonr.c keeps it), member order is kept, string escapes are
 * normalised (the reader decodes "\u00e9" and it is written back as the
 * UTF-8 character), which changes no JSON value.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope/envelope.h"
#include "store/store.h"
#include "value/value.h"

#define SAFE_INT 9007199254740991LL /* 2^53 - 1, the largest exact double integer */

const cs_model *env_model(env *e, const jr_val *j)
{
    if (!jr_is(j, JR_STRING)) {
        env_fail(e, CSTACK_EINVAL, "expected a model name as a string, got %s", env_kind_name(j));
        return NULL;
    }
    const char *name = jr_str(j);
    size_t len = jr_len(j), n = e->schema->nmodels;
    for (size_t i = 0; i < n; i++)
        if (env_name_is(e->schema->models[i].name, name, len))
            return &e->schema->models[i];
    const char **names = malloc((n ? n : 1) * sizeof *names);
    for (size_t i = 0; names && i < n; i++)
        names[i] = e->schema->models[i].name;
    char q[200], hint[128];
    cs_value_quote(q, sizeof q, name, len);
    env_fail(e, CSTACK_EINVAL, "unknown model '%s'%s", q,
             env_hint(hint, sizeof hint, names ? env_suggest(name, len, names, n) : NULL));
    free(names);
    return NULL;
}

const cs_field *env_field(env *e, const cs_model *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (m->fields[i].name && env_name_is(m->fields[i].name, name, len))
            return &m->fields[i];
    const char **names = malloc((m->nfields ? m->nfields : 1) * sizeof *names);
    for (size_t i = 0; names && i < m->nfields; i++)
        names[i] = m->fields[i].name;
    char q[200], hint[128];
    cs_value_quote(q, sizeof q, name, len);
    env_fail(e, CSTACK_EINVAL, "unknown field '%s' in model %s%s", q, m->name,
             env_hint(hint, sizeof hint, names ? env_suggest(name, len, names, m->nfields) : NULL));
    free(names);
    return NULL;
}

static const char *type_name(const cstack_schema *s, const cs_field *f)
{
    return f->type == CS_T_ENUM ? s->enums[f->type_index].name : cs_scalar_name(f->type);
}

static int wrong_type(env *e, const cs_field *f, const char *as, const jr_val *j)
{
    const char *t = type_name(e->schema, f);
    return env_fail(e, CSTACK_EVALIDATION, "expected %s %s as %s, got %s",
                    strchr("AEIOaeio", t[0]) ? "an" : "a", t, as, env_kind_name(j));
}

/* ---- numbers --------------------------------------------------------------- */

size_t env_fmt_int(char buf[24], int64_t v)
{
    char tmp[24];
    size_t n = 0, k = 0;
    /* Negate in unsigned arithmetic: -INT64_MIN does not fit in int64. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[k++] = '-';
    while (n)
        buf[k++] = tmp[--n];
    buf[k] = '\0';
    return k;
}

bool env_get_number(const jr_val *j, env_number *out)
{
    if (!jr_is(j, JR_NUMBER))
        return false;
    out->text = jr_str(j);
    out->len = jr_len(j);
    out->is_int = jr_int64(j, &out->i);
    if (!out->is_int)
        out->i = 0;
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    size_t i = n > 0 && s[0] == '-';
    if (i == n)
        return false;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Parses decimal integer text exactly; false when it is not one or does not
 * fit in int64. */
static bool parse_int64(const char *s, size_t n, int64_t *out)
{
    if (!all_digits(s, n))
        return false;
    bool neg = s[0] == '-';
    if (n - neg > 1 && s[neg] == '0')
        return false; /* "007": more likely a mistake than 7 */
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = neg; i < n; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* strtod's result without its cost for short numbers, or false: a decimal
 * of at most 15 significant digits is an exact double integer m, and a power
 * of ten up to 22 is an exact double too, so m * 10^k or m / 10^k is one
 * correctly rounded operation, which is what strtod computes (Clinger's fast
 * path).  It needs doubles evaluated in double precision (not x87). */
static bool fast_double(const char *s, size_t n, double *out)
{
#if FLT_EVAL_METHOD == 0
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = s[0] == '-';
    uint64_t m = 0;
    int digits = 0, scale = 0, e10 = 0;
    bool frac = false;
    for (; i < n && (s[i] == '.' || (s[i] >= '0' && s[i] <= '9')); i++) {
        if (s[i] == '.') {
            frac = true;
            continue;
        }
        if (m || s[i] != '0')
            digits++;
        if (digits > 15)
            return false;
        m = m * 10 + (uint64_t)(s[i] - '0');
        scale -= frac;
    }
    if (i < n) { /* the exponent of valid JSON: [eE][+-]?digits */
        bool neg = s[++i] == '-';
        i += s[i] == '-' || s[i] == '+';
        for (; i < n && e10 < 1000; i++)
            e10 = e10 * 10 + (s[i] - '0');
        if (i < n)
            return false;
        scale += neg ? -e10 : e10;
    }
    double d = (double)m;
    if (m && (scale < -22 || scale > 22))
        return false;
    if (m)
        d = scale < 0 ? d / pow10[-scale] : d * pow10[scale];
    *out = s[0] == '-' ? -d : d;
    return true;
#else
    (void)s;
    (void)n;
    (void)out;
    return false;
#endif
}

/* strtod in the C locale: a host application may have chosen a locale whose
 * decimal point is a comma, which must not change how JSON is read. */
static double strtod_c(const char *s)
{
    pthread_once(&c_locale_once, make_c_locale);
    if (!c_locale)
        return strtod(s, NULL);
    locale_t old = uselocale(c_locale);
    double d = strtod(s, NULL);
    uselocale(old);
    return d;
}

static int int_input(env *e, const cs_field *f, const jr_val *j, cstack_value *in)
{
    env_number num;
    if (env_get_number(j, &num)) {
        if (num.is_int) {
            *in = cstack_v_int(num.i);
            return 0;
        }
        if (all_digits(num.text, num.len))
            return env_fail(e, CSTACK_EVALIDATION, "invalid Int %.*s: out of the 64-bit range",
                            (int)(num.len > 60 ? 60 : num.len), num.text);
        return env_fail(e, CSTACK_EVALIDATION, "invalid Int %.*s: not a whole number",
                        (int)(num.len > 60 ? 60 : num.len), num.text);
    }
    if (!jr_is(j, JR_STRING))
        return wrong_type(e, f, "a number or a string of digits", j);
    int64_t v;
    const char *s = jr_str(j);
    size_t n = jr_len(j);
    if (!parse_int64(s, n, &v)) {
        char q[200];
        cs_value_quote(q, sizeof q, s, n);
        return env_fail(e, CSTACK_EVALIDATION,
                        "invalid Int \"%s\": expected decimal digits with an optional '-', "
                        "within the 64-bit range",
                        q);
    }
    *in = cstack_v_int(v);
    return 0;
}

static int float_input(env *e, const cs_field *f, const jr_val *j, cstack_value *in)
{
    env_number num;
    if (!env_get_number(j, &num))
        return wrong_type(e, f, "a number", j);
    if (num.is_int) {
        *in = cstack_v_int(num.i); /* the value layer checks it is exact */
        return 0;
    }
    double d;
    if (fast_double(num.text, num.len, &d)) {
        *in = cstack_v_float(d);
        return 0;
    }
    char small[64];
    char *s = num.len < sizeof small ? small : malloc(num.len + 1);
    if (!s)
        return env_fail(e, CSTACK_ENOMEM, "out of memory");
    memcpy(s, num.text, num.len);
    s[num.len] = '\0';
    d = strtod_c(s);
    if (s != small)
        free(s);
    if (!isfinite(d))
        return env_fail(e, CSTACK_EVALIDATION, "invalid Float %.*s: out of the double range",
                        (int)(num.len > 60 ? 60 : num.len), num.text);
    *in = cstack_v_float(d);
    return 0;
}

static int decimal_input(env *e, const cs_field *f, const jr_val *j, cstack_value *in)
{
    env_number num;
    if (jr_is(j, JR_STRING)) {
        *in = cstack_v_textn(jr_str(j), jr_len(j));
        return 0;
    }
    if (!env_get_number(j, &num))
        return wrong_type(e, f, "a string", j);
    if (!all_digits(num.text, num.len))
        return env_fail(e, CSTACK_EVALIDATION,
                        "expected a Decimal as a string, got the number %.*s (a JSON number "
                        "with a fraction or an exponent may already have lost its exact value "
                        "to floating point; send \"%.*s\")",
                        (int)(num.len > 40 ? 40 : num.len), num.text,
                        (int)(num.len > 40 ? 40 : num.len), num.text);
    if (num.is_int) {
        *in = cstack_v_int(num.i);
        return 0;
    }
    *in = cstack_v_textn(num.text, num.len); /* an integer beyond int64: its exact text */
    return 0;
}

/* ---- Json and Bytes -------------------------------------------------------- */

/* Writes `j` as compact JSON with numbers as written (the reader bounds the
 * depth). */
static int json_write(cs_buf *b, const jr_val *j)
{
    int rc = 0;
    jr_iter it;
    const jr_val *k, *v;
    switch (j->type) {
    case JR_OBJECT:
        it = jr_iter_of(j);
        rc = cs_buf_putc(b, '{');
        for (bool first = true; !rc && jr_iter_member(&it, &k, &v); first = false) {
            if (!first)
                rc = cs_buf_putc(b, ',');
            if (!rc)
                rc = cs_buf_json_str(b, jr_str(k), jr_len(k));
            if (!rc)
                rc = cs_buf_putc(b, ':');
            if (!rc)
                rc = json_write(b, v);
        }
        return rc ? rc : cs_buf_putc(b, '}');
    case JR_ARRAY:
        it = jr_iter_of(j);
        rc = cs_buf_putc(b, '[');
        for (bool first = true; !rc && (v = jr_iter_elem(&it)); first = false) {
            if (!first)
                rc = cs_buf_putc(b, ',');
            if (!rc)
                rc = json_write(b, v);
        }
        return rc ? rc : cs_buf_putc(b, ']');
    case JR_STRING:
        return cs_buf_json_str(b, jr_str(j), jr_len(j));
    case JR_NUMBER:
        return cs_buf_append(b, jr_str(j), jr_len(j));
    case JR_TRUE:
        return cs_buf_puts(b, "true");
    case JR_FALSE:
        return cs_buf_puts(b, "false");
    default:
        return cs_buf_puts(b, "null");
    }
}

/* Keeps a buffer's data for the rest of the call and points `in` at it. */
static int keep_buf(env *e, cs_buf *b, bool blob, cstack_value *in)
{
    size_t n = b->len;
    char *p = cs_buf_take(b);
    if (!p)
        return env_fail(e, CSTACK_ENOMEM, "out of memory");
    if (env_own(e, p))
        return e->code;
    *in = blob ? cstack_v_blob(p, n) : cstack_v_textn(p, n);
    return 0;
}

static int json_input(env *e, const jr_val *j, cstack_value *in)
{
    cs_buf b = CS_BUF_INIT;
    b.max = CSTACK_ENVELOPE_MAX * 2u;
    int rc = json_write(&b, j);
    if (rc) {
        cs_buf_free(&b);
        return env_fail(e, rc, "%s", cstack_errstr(rc));
    }
    return keep_buf(e, &b, false, in);
}

/* Bytes as CrateStack's hosts may send them: an array of byte values. */
static int byte_array_input(env *e, const jr_val *j, cstack_value *in)
{
    cs_buf b = CS_BUF_INIT;
    jr_iter it = jr_iter_of(j);
    size_t i = 0;
    for (const jr_val *v; (v = jr_iter_elem(&it)) != NULL; i++) {
        int64_t x;
        if (!jr_int64(v, &x) || x < 0 || x > 255) {
            cs_buf_free(&b);
            return env_fail(e, CSTACK_EVALIDATION,
                            "invalid Bytes: element %zu is not a byte value (0 to 255)", i);
        }
        if (cs_buf_putc(&b, (char)x)) {
            cs_buf_free(&b);
            return env_fail(e, CSTACK_ENOMEM, "out of memory");
        }
    }
    if (i == 0) {
        *in = cstack_v_blob("", 0);
        return 0;
    }
    return keep_buf(e, &b, true, in);
}

static int bytes_input(env *e, const cs_field *f, const jr_val *j, cstack_value *in)
{
    if (jr_is(j, JR_ARRAY))
        return byte_array_input(e, j, in);
    if (!jr_is(j, JR_STRING))
        return wrong_type(e, f, "a base64 string or an array of byte values", j);
    size_t n = jr_len(j);
    if (n == 0) {
        *in = cstack_v_blob("", 0);
        return 0;
    }
    cs_buf b = CS_BUF_INIT;
    int rc = cs_base64_decode(&b, jr_str(j), n);
    if (rc) {
        cs_buf_free(&b);
        if (rc != CSTACK_EVALIDATION)
            return env_fail(e, rc, "%s", cstack_errstr(rc));
        char q[200];
        cs_value_quote(q, sizeof q, jr_str(j), n);
        return env_fail(e, CSTACK_EVALIDATION,
                        "invalid Bytes \"%s\": expected base64 (RFC 4648, with padding)", q);
    }
    return keep_buf(e, &b, true, in);
}

/* ---- values ----------------------------------------------------------------- */

/* The JSON value as the input kind the value layer takes for the field. */
static int input_of(env *e, const cs_field *f, const jr_val *j, cstack_value *in)
{
    switch (f->type) {
    case CS_T_INT:
        return int_input(e, f, j, in);
    case CS_T_FLOAT:
        return float_input(e, f, j, in);
    case CS_T_DECIMAL:
        return decimal_input(e, f, j, in);
    case CS_T_BOOLEAN:
        if (!jr_is(j, JR_TRUE) && !jr_is(j, JR_FALSE))
            return wrong_type(e, f, "true or false", j);
        *in = cstack_v_bool(jr_is(j, JR_TRUE));
        return 0;
    case CS_T_BYTES:
        return bytes_input(e, f, j, in);
    case CS_T_JSON:
        return json_input(e, j, in);
    case CS_T_MODEL:
        return env_fail(e, CSTACK_EINVAL, "'%s' is a relation, not a value", f->name);
    default:
        if (!jr_is(j, JR_STRING))
            return wrong_type(e, f, "a string", j);
        *in = cstack_v_textn(jr_str(j), jr_len(j));
        return 0;
    }
}

int env_value(env *e, const cs_field *f, const jr_val *j, cstack_value *out)
{
    *out = cstack_v_null();
    if (jr_is(j, JR_NULL))
        return 0;
    cstack_value in;
    if (input_of(e, f, j, &in))
        return e->code;
    cs_buf scratch = CS_BUF_INIT;
    char err[512];
    err[0] = '\0';
    int rc = cs_field_canon(e->schema, f, &in, &scratch, out, err, sizeof err);
    if (rc) {
        cs_buf_free(&scratch);
        return env_fail(e, rc, "%s", err[0] ? err : cstack_errstr(rc));
    }
    /* The runtime takes values in their API form, which for every scalar but
     * Boolean (stored as INT 0/1) is also the canonical one. */
    if (f->type == CS_T_BOOLEAN)
        *out = in;
    /* The canonical text may live in scratch (e.g. an upper-case UUID). */
    if (scratch.data && (out->type == CSTACK_TEXT || out->type == CSTACK_BLOB) &&
        out->u.s.p >= scratch.data && out->u.s.p <= scratch.data + scratch.len) {
        size_t off = (size_t)(out->u.s.p - scratch.data), n = out->u.s.n;
        char *p = cs_buf_take(&scratch);
        if (!p || env_own(e, p))
            return env_fail(e, CSTACK_ENOMEM, "out of memory");
        out->u.s.p = p + off;
        out->u.s.n = n;
    }
    cs_buf_free(&scratch);
    return 0;
}

/* ---- data objects ------------------------------------------------------------ */

/* The field a data member names.  Members usually come in the schema's
 * order, so the field after the previous one (*hint) is tried first. */
static const cs_field *member_field(env *e, const cs_model *m, const jr_val *key, size_t *hint)
{
    const cs_field *f = *hint < m->nfields ? &m->fields[*hint] : NULL;
    if (!f || !f->name || !env_name_is(f->name, jr_str(key), jr_len(key)))
        f = env_field(e, m, jr_str(key), jr_len(key));
    if (f)
        *hint = (size_t)(f - m->fields) + 1;
    return f;
}

/* Reads the value of a data member for field f into *fv (the path is at the
 * member). */
static int data_member(env *e, const cs_model *m, const cs_field *f, const jr_val *v,
                       env_data_mode mode, cstack_field_value *fv)
{
    if (!cs_field_is_column(f))
        return env_fail(e, CSTACK_EINVAL, "%s.%s is a relation: %s", m->name, f->name,
                        mode == ENV_DATA_UNIQUE ? "a unique where names scalar fields"
                                                : "write its foreign key field(s) instead");
    if (env_value(e, f, v, &fv->value))
        return e->code;
    if (fv->value.type == CSTACK_NULL && mode == ENV_DATA_UNIQUE)
        return env_fail(e, CSTACK_EINVAL, "a unique lookup value cannot be null");
    if (fv->value.type == CSTACK_NULL && !f->optional)
        return env_fail(e, CSTACK_EREQUIRED, "%s.%s is required and cannot be null", m->name,
                        f->name);
    fv->field = f->name;
    return 0;
}

/* A create must give every field that has no default and may not be null.
 * The given fields are `fields` (their names are the schema's strings). */
static int check_required(env *e, const cs_model *m, const cstack_field_value *fields, size_t n)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_field *f = &m->fields[i];
        if (!cs_field_is_column(f) || f->optional || f->def.kind != CS_DEF_NONE || f->updated_at)
            continue;
        size_t k = 0;
        while (k < n && fields[k].field != f->name)
            k++;
        if (k == n)
            return env_fail(e, CSTACK_EREQUIRED, "missing required field '%s' of model %s", f->name,
                            m->name);
    }
    return 0;
}

int env_data(env *e, const cs_model *m, const jr_val *obj, env_data_mode mode, cstack_data *out)
{
    out->fields = NULL;
    out->count = 0;
    if (!jr_is(obj, JR_OBJECT))
        return env_fail(e, CSTACK_EINVAL, "expected an object of %s field values, got %s", m->name,
                        env_kind_name(obj));
    size_t n = jr_size(obj), hint = 0;
    cstack_field_value *fields = env_alloc(e, n, sizeof *fields);
    if (!fields)
        return e->code;
    jr_iter it = jr_iter_of(obj);
    const jr_val *key, *v;
    for (size_t k = 0; jr_iter_member(&it, &key, &v); k++) {
        size_t mark = env_path_keyn(e, jr_str(key), jr_len(key));
        const cs_field *f = member_field(e, m, key, &hint);
        int rc = f ? data_member(e, m, f, v, mode, &fields[k]) : e->code;
        env_path_set(e, mark);
        if (rc)
            return rc;
    }
    if (mode == ENV_DATA_CREATE && check_required(e, m, fields, n))
        return e->code;
    out->fields = fields;
    out->count = n;
    return 0;
}

/* ---- output -------------------------------------------------------------------- */

/* Writes an Int as JSON at o (24 bytes of room): a number, or a string
 * beyond 2^53 when bigintAsString was asked for.  Returns its length. */
static size_t int_text(const env *e, char *o, int64_t i)
{
    if (!e->bigint_str || (i <= SAFE_INT && i >= -SAFE_INT))
        return env_fmt_int(o, i);
    o[0] = '"';
    size_t n = env_fmt_int(o + 1, i);
    o[n + 1] = '"';
    return n + 2;
}

int env_put_int(env *e, cs_buf *b, int64_t i)
{
    char text[26];
    return cs_buf_append(b, text, int_text(e, text, i));
}

/* Writes a double that is a short decimal (|d| in [1e-4, 1e15), at most 8
 * decimals, 15 significant digits) as cs_value_json would, and returns the
 * length; 0 for any other double.  cs_value_json prints the shortest of
 * %.15g..%.17g that reads back, which for such a double is its decimal q
 * = u / 10^j itself: the double nearest to q is d, and a double's rounding
 * error (2^-53 relative) is far below the spacing of 15-digit decimals, so
 * %.15g rounds d back to q, printed without exponent or trailing zeros.
 * Most stored Floats are like this, and printf is the slowest part of a row. */
static size_t short_decimal(double d, char out[32])
{
    static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    double a = d < 0 ? -d : d;
    if (!(a >= 1e-4 && a < 1e15))
        return 0; /* zero, tiny, huge, NaN: printf's exponents and signs */
    for (size_t j = 0; j < sizeof pow10 / sizeof pow10[0]; j++) {
        double x = a * pow10[j];
        if (x >= 1e15)
            return 0;
        uint64_t u = (uint64_t)(x + 0.5);
        if ((double)u / pow10[j] != a)
            continue;
        char digits[24];
        size_t nd = env_fmt_int(digits, (int64_t)u), k = 0;
        if (d < 0)
            out[k++] = '-';
        if (nd <= j) { /* 0.00ddd */
            memcpy(out + k, "0.", 2);
            memset(out + k + 2, '0', j - nd);
            k += 2 + j - nd;
        } else {
            memcpy(out + k, digits, nd - j);
            k += nd - j;
            if (j)
                out[k++] = '.';
        }
        memcpy(out + k, digits + (nd > j ? nd - j : 0), nd < j ? nd : j);
        k += nd < j ? nd : j;
        while (j && out[k - 1] == '0') /* u ends in 0 only when j is not minimal */
            k--;
        return out[k - 1] == '.' ? k - 1 : k;
    }
    return 0;
}

/* Appends a JSON string as cs_buf_json_str does, copying it at once when
 * it needs no escape: names, DateTimes, Uuids and most text. */
static int put_string(cs_buf *b, const char *s, size_t n)
{
    if (jr_plain_span(s, n) != n)
        return cs_buf_json_str(b, s, n);
    int rc = cs_buf_reserve(b, n + 2);
    if (rc)
        return rc;
    char *o = b->data + b->len;
    o[0] = '"';
    memcpy(o + 1, s, n);
    o[n + 1] = '"';
    b->len += n + 2;
    b->data[b->len] = '\0';
    return 0;
}

/* Writes a number, a boolean or null of a field of type `type` as
 * env_put_value does, into out, and returns its length; 0 for any other
 * value (text, Decimals, doubles that are not short decimals). */
static size_t small_text(const env *e, cs_scalar type, const cstack_value *v, char out[32])
{
    bool truth;
    switch (v->type) {
    case CSTACK_NULL:
        memcpy(out, "null", 4);
        return 4;
    case CSTACK_BOOL:
        truth = v->u.b;
        break;
    case CSTACK_INT:
        if (type == CS_T_DECIMAL)
            return 0; /* a quoted Decimal, written by cs_value_json */
        if (type != CS_T_BOOLEAN)
            return int_text(e, out, v->u.i);
        truth = v->u.i != 0;
        break;
    case CSTACK_FLOAT:
        return short_decimal(v->u.f, out);
    default:
        return 0;
    }
    memcpy(out, truth ? "true" : "false", truth ? 4 : 5);
    return truth ? 4 : 5;
}

/* Whether the value is text that cs_value_json writes as a JSON string (all
 * text but Json, which it re-validates, and Bytes, which it encodes). */
static bool plain_text_type(cs_scalar type, const cstack_value *v)
{
    return v->type == CSTACK_TEXT && type != CS_T_JSON && type != CS_T_BYTES;
}

int env_put_value(env *e, cs_buf *b, cs_scalar type, const cstack_value *v)
{
    char text[32];
    size_t n = small_text(e, type, v, text);
    if (n)
        return cs_buf_append(b, text, n);
    if (plain_text_type(type, v))
        return put_string(b, v->u.s.p ? v->u.s.p : "", v->u.s.n);
    return cs_value_json(b, type, v);
}

/* Appends `"name":` and then the vn bytes of `val` (between quotes when
 * `quote`), after a comma unless `first`, with one reservation.  Neither
 * may need a JSON escape. */
static int put_plain_member(cs_buf *b, const char *name, size_t n, bool first, const char *val,
                            size_t vn, bool quote)
{
    int rc = cs_buf_reserve(b, (first ? 0 : 1) + n + 3 + vn + (quote ? 2 : 0));
    if (rc)
        return rc;
    char *o = b->data + b->len;
    if (!first)
        *o++ = ',';
    *o++ = '"';
    memcpy(o, name, n);
    o += n;
    *o++ = '"';
    *o++ = ':';
    if (quote)
        *o++ = '"';
    memcpy(o, val, vn);
    o += vn;
    if (quote)
        *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

/* Appends one column `"name":value` of a row (after a comma unless
 * `first`).  Column names are identifiers and most values are numbers or
 * text without escapes: those are written at once. */
static int put_column(env *e, cs_buf *b, const char *name, bool first, cs_scalar type,
                      const cstack_value *v)
{
    size_t n = strlen(name), k = 0;
    /* Names are short: a plain loop beats the word-at-a-time scan. */
    while (k < n && (unsigned char)name[k] >= 0x20 && name[k] != '"' && name[k] != '\\')
        k++;
    if (k == n) {
        char text[32];
        size_t tn = small_text(e, type, v, text);
        if (tn)
            return put_plain_member(b, name, n, first, text, tn, false);
        if (plain_text_type(type, v)) {
            const char *p = v->u.s.p ? v->u.s.p : "";
            if (jr_plain_span(p, v->u.s.n) == v->u.s.n)
                return put_plain_member(b, name, n, first, p, v->u.s.n, true);
        }
    }
    int rc = first ? 0 : cs_buf_putc(b, ',');
    if (!rc)
        rc = cs_buf_json_str(b, name, n);
    if (!rc)
        rc = cs_buf_putc(b, ':');
    return rc ? rc : env_put_value(e, b, type, v);
}

int env_put_row(env *e, cs_buf *b, const cstack_row *row)
{
    /* The row's shape names its columns and gives their field types, as
     * cs_row_json reads them. */
    const cs_shape *sh = row->shape;
    int rc = cs_buf_putc(b, '{');
    for (size_t i = 0; !rc && i < sh->n; i++)
        rc = put_column(e, b, sh->names[i], i == 0, sh->types[i], &row->vals[i]);
    return rc ? rc : cs_buf_putc(b, '}');
}
