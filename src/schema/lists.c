/*
 * lists.c -- scalar lists (String[], Int[], Role[], ...).
 *
 * A scalar list is stored in one column as a JSON array of canonical values
 * of the element type, written compactly: ["a","b"], [1,2], ["OPEN"].  So
 * every layer that already stores, syncs, merges and generates code for
 * Json fields handles lists unchanged (a list merges as one value, last
 * writer wins, like any column), and SQLite's json_each() serves the
 * has / hasSome / hasEvery filters (src/store/render.c).  CrateStack's
 * Vector(n) is a Float list of exactly n elements within float32 range
 * (exttypes.c).
 */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"
#include "util/jsonr.h"

/* Far beyond any sensible list, and a bound on a hostile one. */
#define MAX_LIST_VALUES 100000

/* A Bytes element is a base64 string (as a Bytes value is in the
 * envelope), stored re-encoded in canonical padded base64 so that equal
 * bytes are equal elements for has / hasSome / hasEvery. */
static int bytes_element(const jr_val *v, size_t i, cs_buf *b, char *err, size_t errlen)
{
    cs_buf raw = CS_BUF_INIT, enc = CS_BUF_INIT;
    int rc = cs_base64_decode(&raw, jr_str(v), jr_len(v));
    if (rc == CSTACK_EVALIDATION)
        snprintf(err, errlen, "element %zu is not base64", i);
    else if (!rc && (cs_base64_encode(&enc, raw.data, raw.len) ||
                     cs_buf_json_str(b, enc.data ? enc.data : "", enc.len)))
        rc = CSTACK_ENOMEM;
    cs_buf_free(&raw);
    cs_buf_free(&enc);
    return rc;
}

/* A Vector's element: pgvector stores float32, so a finite JSON number
 * beyond its range would be refused by the server's database.  1 when it
 * fits, 0 when not, -1 out of memory. */
static int float32_fits(const jr_val *v)
{
    char *z = cs_strndup(jr_str(v), jr_len(v));
    if (!z)
        return -1;
    double x = strtod(z, NULL);
    free(z);
    return isfinite(x) && fabs(x) <= FLT_MAX;
}

static int element(const cstack_schema *s, const cs_field *f, const jr_val *v, size_t i,
                   cs_buf *b, char *err, size_t errlen)
{
    cs_scalar t = f->elem;
    int64_t x;
    switch (t) {
    case CS_T_INT:
        if (!jr_int64(v, &x))
            break;
        return cs_buf_printf(b, "%" PRId64, x) ? CSTACK_ENOMEM : 0;
    case CS_T_FLOAT: {
        if (!jr_is(v, JR_NUMBER))
            break;
        int fits = f->vec_dim ? float32_fits(v) : 1;
        if (fits < 0)
            return CSTACK_ENOMEM;
        if (!fits) {
            snprintf(err, errlen, "field '%s' (%s): element %zu is outside the 32-bit float range",
                     f->name, f->type_name, i);
            return CSTACK_EVALIDATION;
        }
        return cs_buf_append(b, jr_str(v), jr_len(v)) ? CSTACK_ENOMEM : 0;
    }
    case CS_T_BOOLEAN:
        if (!jr_is(v, JR_TRUE) && !jr_is(v, JR_FALSE))
            break;
        return cs_buf_puts(b, jr_is(v, JR_TRUE) ? "true" : "false") ? CSTACK_ENOMEM : 0;
    case CS_T_BYTES:
        if (!jr_is(v, JR_STRING))
            break;
        return bytes_element(v, i, b, err, errlen);
    default: {
        if (!jr_is(v, JR_STRING))
            break;
        cs_enum_members en = {NULL, NULL, 0};
        if (t == CS_T_ENUM) {
            const cs_enum *e = &s->enums[f->elem_index];
            en = (cs_enum_members){e->name, (const char *const *)e->members, e->nmembers};
        }
        cs_buf tmp = CS_BUF_INIT;
        cstack_value cv, in = cstack_v_textn(jr_str(v), jr_len(v));
        char why[200] = "";
        int rc = cs_value_canon(t, t == CS_T_ENUM ? &en : NULL, &in, &tmp, &cv, why, sizeof why);
        if (!rc)
            rc = cs_buf_json_str(b, cv.u.s.p, cv.u.s.n) ? CSTACK_ENOMEM : 0;
        else if (rc != CSTACK_ENOMEM)
            snprintf(err, errlen, "element %zu: %s", i, f->sensitive ? "invalid value" : why);
        cs_buf_free(&tmp);
        return rc;
    }
    }
    if (f->vec_dim)
        snprintf(err, errlen, "field '%s' (%s): element %zu is not a number", f->name,
                 f->type_name, i);
    else
        snprintf(err, errlen, "element %zu is not %s %s", i,
                 t == CS_T_INT || t == CS_T_ENUM ? "an" : "a", f->type_name);
    return CSTACK_EVALIDATION;
}

int cs_list_canon(const cstack_schema *s, const cs_field *f, const cstack_value *in,
                  cs_buf *scratch, cstack_value *out, char *err, size_t errlen)
{
    cstack_value json;
    int rc = cs_value_canon(CS_T_JSON, NULL, in, scratch, &json, err, errlen);
    if (rc || json.type == CSTACK_NULL) { /* an optional Vector's null */
        *out = json;
        return rc;
    }
    jr_limits lim = {2, MAX_LIST_VALUES};
    jr_doc doc = {0};
    jr_error je;
    if (jr_parse(json.u.s.p, json.u.s.n, &lim, NULL, 0, &doc, &je) != JR_OK ||
        !jr_is(&doc.vals[0], JR_ARRAY)) {
        jr_doc_free(&doc);
        if (f->vec_dim)
            snprintf(err, errlen, "field '%s' (%s) is a JSON array of %d numbers", f->name,
                     f->type_name, f->vec_dim);
        else
            snprintf(err, errlen, "a %s[] list is a JSON array of %s values (at most %d)",
                     f->type_name, f->type_name, MAX_LIST_VALUES);
        return CSTACK_EVALIDATION;
    }
    size_t count = jr_size(&doc.vals[0]);
    if (f->vec_dim && count != (size_t)f->vec_dim) {
        jr_doc_free(&doc);
        snprintf(err, errlen, "field '%s' (%s) has %zu elements, not %d", f->name, f->type_name,
                 count, f->vec_dim);
        return CSTACK_EVALIDATION;
    }
    cs_buf b = CS_BUF_INIT;
    rc = cs_buf_putc(&b, '[') ? CSTACK_ENOMEM : 0;
    jr_iter it = jr_iter_of(&doc.vals[0]);
    size_t i = 0;
    for (const jr_val *v; !rc && (v = jr_iter_elem(&it)) != NULL; i++) {
        if (i && cs_buf_putc(&b, ','))
            rc = CSTACK_ENOMEM;
        if (!rc)
            rc = element(s, f, v, i, &b, err, errlen);
    }
    if (!rc && cs_buf_putc(&b, ']'))
        rc = CSTACK_ENOMEM;
    jr_doc_free(&doc);
    if (!rc) {
        cs_buf_reset(scratch);
        rc = cs_buf_append(scratch, b.data, b.len) ? CSTACK_ENOMEM : 0;
        *out = cstack_v_textn(scratch->data, scratch->len);
    }
    cs_buf_free(&b);
    return rc;
}

const cs_field *cs_list_filter_field(const cs_field *f, cs_field *tmp)
{
    if (!f->vec_dim)
        return f;
    *tmp = *f;
    tmp->vec_dim = 0;
    return tmp;
}
