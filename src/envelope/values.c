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
 * exact text (scan.c), member order is kept, string escapes are normalised
 * (jansson decodes "\u00e9" and it is written back as the UTF-8 character),
 * which changes no JSON value.
 */
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope/envelope.h"
#include "value/value.h"

#define SAFE_INT 9007199254740991LL /* 2^53 - 1, the largest exact double integer */

const cs_model *env_model(env *e, const json_t *j)
{
    if (!env_is_string(j)) {
        env_fail(e, CSTACK_EINVAL, "expected a model name as a string, got %s", env_kind_name(j));
        return NULL;
    }
    const char *name = json_string_value(j);
    int mi = cs_model_find(e->schema, name);
    if (mi >= 0)
        return &e->schema->models[mi];
    size_t n = e->schema->nmodels;
    const char **names = malloc((n ? n : 1) * sizeof *names);
    for (size_t i = 0; names && i < n; i++)
        names[i] = e->schema->models[i].name;
    char q[200], hint[128];
    cs_value_quote(q, sizeof q, name, strlen(name));
    env_fail(e, CSTACK_EINVAL, "unknown model '%s'%s", q,
             env_hint(hint, sizeof hint, names ? env_suggest(name, names, n) : NULL));
    free(names);
    return NULL;
}

const cs_field *env_field(env *e, const cs_model *m, const char *name)
{
    int fi = cs_field_find(m, name);
    if (fi >= 0)
        return &m->fields[fi];
    const char **names = malloc((m->nfields ? m->nfields : 1) * sizeof *names);
    for (size_t i = 0; names && i < m->nfields; i++)
        names[i] = m->fields[i].name;
    char q[200], hint[128];
    cs_value_quote(q, sizeof q, name, strlen(name));
    env_fail(e, CSTACK_EINVAL, "unknown field '%s' in model %s%s", q, m->name,
             env_hint(hint, sizeof hint, names ? env_suggest(name, names, m->nfields) : NULL));
    free(names);
    return NULL;
}

static const char *type_name(const cstack_schema *s, const cs_field *f)
{
    return f->type == CS_T_ENUM ? s->enums[f->type_index].name : cs_scalar_name(f->type);
}

static int wrong_type(env *e, const cs_field *f, const char *as, const json_t *j)
{
    const char *t = type_name(e->schema, f);
    return env_fail(e, CSTACK_EVALIDATION, "expected %s %s as %s, got %s",
                    strchr("AEIOaeio", t[0]) ? "an" : "a", t, as, env_kind_name(j));
}

/* ---- numbers --------------------------------------------------------------- */

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

static int int_input(env *e, const cs_field *f, const json_t *j, cstack_value *in)
{
    env_number num;
    if (env_get_number(e, j, &num)) {
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
    if (!env_is_string(j))
        return wrong_type(e, f, "a number or a string of digits", j);
    int64_t v;
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
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

static int float_input(env *e, const cs_field *f, const json_t *j, cstack_value *in)
{
    env_number num;
    if (!env_get_number(e, j, &num))
        return wrong_type(e, f, "a number", j);
    if (num.is_int) {
        *in = cstack_v_int(num.i); /* the value layer checks it is exact */
        return 0;
    }
    char small[64];
    char *s = num.len < sizeof small ? small : malloc(num.len + 1);
    if (!s)
        return env_fail(e, CSTACK_ENOMEM, "out of memory");
    memcpy(s, num.text, num.len);
    s[num.len] = '\0';
    double d = strtod_c(s);
    if (s != small)
        free(s);
    if (!isfinite(d))
        return env_fail(e, CSTACK_EVALIDATION, "invalid Float %.*s: out of the double range",
                        (int)(num.len > 60 ? 60 : num.len), num.text);
    *in = cstack_v_float(d);
    return 0;
}

static int decimal_input(env *e, const cs_field *f, const json_t *j, cstack_value *in)
{
    env_number num;
    if (env_is_string(j)) {
        *in = cstack_v_textn(json_string_value(j), json_string_length(j));
        return 0;
    }
    if (!env_get_number(e, j, &num))
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

/* Writes `j` as compact JSON with numbers as written (depth is bounded by the
 * pre-scan). */
static int json_write(env *e, cs_buf *b, const json_t *j)
{
    env_number num;
    int rc = 0;
    if (env_get_number(e, j, &num))
        return cs_buf_append(b, num.text, num.len);
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        bool first = true;
        rc = cs_buf_putc(b, '{');
        json_object_foreach((json_t *)j, key, v)
        {
            if (!rc && !first)
                rc = cs_buf_putc(b, ',');
            first = false;
            if (!rc)
                rc = cs_buf_json_str(b, key, strlen(key));
            if (!rc)
                rc = cs_buf_putc(b, ':');
            if (!rc)
                rc = json_write(e, b, v);
        }
        return rc ? rc : cs_buf_putc(b, '}');
    }
    case JSON_ARRAY:
        rc = cs_buf_putc(b, '[');
        for (size_t i = 0; !rc && i < json_array_size(j); i++) {
            if (i)
                rc = cs_buf_putc(b, ',');
            if (!rc)
                rc = json_write(e, b, json_array_get(j, i));
        }
        return rc ? rc : cs_buf_putc(b, ']');
    case JSON_STRING:
        return cs_buf_json_str(b, json_string_value(j), json_string_length(j));
    case JSON_TRUE:
        return cs_buf_puts(b, "true");
    case JSON_FALSE:
        return cs_buf_puts(b, "false");
    case JSON_NULL:
        return cs_buf_puts(b, "null");
    default: /* JSON_REAL cannot occur: the pre-scan marks every such number */
        return cs_buf_printf(b, "%.17g", json_real_value(j));
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

static int json_input(env *e, const json_t *j, cstack_value *in)
{
    cs_buf b = CS_BUF_INIT;
    b.max = CSTACK_ENVELOPE_MAX * 2u;
    int rc = json_write(e, &b, j);
    if (rc) {
        cs_buf_free(&b);
        return env_fail(e, rc, "%s", cstack_errstr(rc));
    }
    return keep_buf(e, &b, false, in);
}

static int bytes_input(env *e, const cs_field *f, const json_t *j, cstack_value *in)
{
    if (!env_is_string(j))
        return wrong_type(e, f, "a base64 string", j);
    size_t n = json_string_length(j);
    if (n == 0) {
        *in = cstack_v_blob("", 0);
        return 0;
    }
    cs_buf b = CS_BUF_INIT;
    int rc = cs_base64_decode(&b, json_string_value(j), n);
    if (rc) {
        cs_buf_free(&b);
        if (rc != CSTACK_EVALIDATION)
            return env_fail(e, rc, "%s", cstack_errstr(rc));
        char q[200];
        cs_value_quote(q, sizeof q, json_string_value(j), n);
        return env_fail(e, CSTACK_EVALIDATION,
                        "invalid Bytes \"%s\": expected base64 (RFC 4648, with padding)", q);
    }
    return keep_buf(e, &b, true, in);
}

/* ---- values ----------------------------------------------------------------- */

/* The JSON value as the input kind the value layer takes for the field. */
static int input_of(env *e, const cs_field *f, const json_t *j, cstack_value *in)
{
    switch (f->type) {
    case CS_T_INT:
        return int_input(e, f, j, in);
    case CS_T_FLOAT:
        return float_input(e, f, j, in);
    case CS_T_DECIMAL:
        return decimal_input(e, f, j, in);
    case CS_T_BOOLEAN:
        if (!json_is_boolean(j))
            return wrong_type(e, f, "true or false", j);
        *in = cstack_v_bool(json_is_true(j));
        return 0;
    case CS_T_BYTES:
        return bytes_input(e, f, j, in);
    case CS_T_JSON:
        return json_input(e, j, in);
    case CS_T_MODEL:
        return env_fail(e, CSTACK_EINVAL, "'%s' is a relation, not a value", f->name);
    default:
        if (!env_is_string(j))
            return wrong_type(e, f, "a string", j);
        *in = cstack_v_textn(json_string_value(j), json_string_length(j));
        return 0;
    }
}

int env_value(env *e, const cs_field *f, const json_t *j, cstack_value *out)
{
    *out = cstack_v_null();
    if (json_is_null(j))
        return 0;
    cstack_value in;
    if (input_of(e, f, j, &in))
        return e->code;
    cs_buf scratch = CS_BUF_INIT;
    char err[512] = "";
    const cs_enum *en = f->type == CS_T_ENUM ? &e->schema->enums[f->type_index] : NULL;
    int rc = cs_value_canon(f->type, en, &in, &scratch, out, err, sizeof err);
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

/* Reads one member of a data object into *fv (the path is at the member). */
static int data_member(env *e, const cs_model *m, const char *key, const json_t *v,
                       env_data_mode mode, cstack_field_value *fv)
{
    const cs_field *f = env_field(e, m, key);
    if (!f)
        return e->code;
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

/* A create must give every field that has no default and may not be null. */
static int check_required(env *e, const cs_model *m, const json_t *obj)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_field *f = &m->fields[i];
        if (!cs_field_is_column(f) || f->optional || f->def.kind != CS_DEF_NONE || f->updated_at ||
            json_object_get(obj, f->name))
            continue;
        return env_fail(e, CSTACK_EREQUIRED, "missing required field '%s' of model %s", f->name,
                        m->name);
    }
    return 0;
}

int env_data(env *e, const cs_model *m, const json_t *obj, env_data_mode mode, cstack_data *out)
{
    out->fields = NULL;
    out->count = 0;
    if (!json_is_object(obj))
        return env_fail(e, CSTACK_EINVAL, "expected an object of %s field values, got %s", m->name,
                        env_kind_name(obj));
    size_t n = json_object_size(obj);
    cstack_field_value *fields = calloc(n ? n : 1, sizeof *fields);
    if (!fields || env_own(e, fields))
        return env_fail(e, CSTACK_ENOMEM, "out of memory");
    const char *key;
    json_t *v;
    size_t k = 0;
    json_object_foreach((json_t *)obj, key, v)
    {
        size_t mark = env_path_key(e, key);
        int rc = data_member(e, m, key, v, mode, &fields[k]);
        env_path_set(e, mark);
        if (rc)
            return rc;
        k++;
    }
    if (mode == ENV_DATA_CREATE && check_required(e, m, obj))
        return e->code;
    out->fields = fields;
    out->count = k;
    return 0;
}

/* ---- output -------------------------------------------------------------------- */

int env_put_int(env *e, cs_buf *b, int64_t i)
{
    char buf[26];
    bool quote = e->bigint_str && (i > SAFE_INT || i < -SAFE_INT);
    size_t n = env_fmt_int(buf + 1, i);
    if (!quote)
        return cs_buf_append(b, buf + 1, n);
    buf[0] = '"';
    buf[n + 1] = '"';
    return cs_buf_append(b, buf, n + 2);
}

int env_put_value(env *e, cs_buf *b, cs_scalar type, const cstack_value *v)
{
    if (v->type == CSTACK_INT && type != CS_T_BOOLEAN && type != CS_T_DECIMAL)
        return env_put_int(e, b, v->u.i);
    return cs_value_json(b, type, v);
}

int env_put_row(env *e, cs_buf *b, const cs_model *m, const cstack_row *row)
{
    int rc = cs_buf_putc(b, '{');
    size_t hint = 0;
    for (size_t i = 0; !rc && i < cstack_row_size(row); i++) {
        const char *name = cstack_row_name(row, i);
        /* Columns of a full row follow the schema's field order: try the
         * next column field before searching. */
        while (hint < m->nfields && !cs_field_is_column(&m->fields[hint]))
            hint++;
        int fi = hint < m->nfields && strcmp(m->fields[hint].name, name) == 0
                     ? (int)hint
                     : cs_field_find(m, name);
        hint = fi >= 0 ? (size_t)fi + 1 : 0;
        cstack_value v = cstack_row_value(row, i);
        if (i)
            rc = cs_buf_putc(b, ',');
        if (!rc)
            rc = cs_buf_json_str(b, name, strlen(name));
        if (!rc)
            rc = cs_buf_putc(b, ':');
        if (!rc)
            rc = env_put_value(e, b, fi >= 0 ? m->fields[fi].type : CS_T_STRING, &v);
    }
    return rc ? rc : cs_buf_putc(b, '}');
}
