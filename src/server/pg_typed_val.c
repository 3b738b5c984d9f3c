/*
 * pg_typed_val.c -- one value between the working copy's storage (value.h:
 * the canonical forms) and a typed PostgreSQL column (pg_typed_int.h).
 *
 * To PostgreSQL, each value is a parameter typed with its column's OID:
 * text for everything but Bytes (the canonical text of Uuid, DateTime,
 * Decimal and Json is input PostgreSQL parses exactly; Float as %.17g, which
 * float8in reads back to the same double; Boolean as t/f), Bytes in binary.
 *
 * From PostgreSQL, results are binary, and the SELECT list casts numeric,
 * uuid and json to text: numeric::text keeps the scale ("1.10"), uuid::text
 * is lowercase, json::text is the stored text itself.  timestamptz arrives as
 * microseconds since 2000-01-01 UTC and is formatted by cs_datetime_format,
 * float8 as its IEEE bits, so neither depends on a session setting
 * (DateStyle, TimeZone, extra_float_digits).  Every value then passes the
 * field's canonicaliser: what reaches the copy is exactly what a local write
 * of the same value would store, whoever wrote the row.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "server/pg_typed_int.h"

Oid cs_pg_param_type(const cs_field *f)
{
    switch (f->type) {
    case CS_T_INT:
        return CS_PG_INT8;
    case CS_T_FLOAT:
        return CS_PG_FLOAT8;
    case CS_T_BOOLEAN:
        return CS_PG_BOOL;
    case CS_T_BYTES:
        return CS_PG_BYTEA;
    case CS_T_UUID:
        return CS_PG_UUID;
    case CS_T_DATETIME:
        return CS_PG_TIMESTAMPTZ;
    case CS_T_JSON:
        return CS_PG_JSON;
    case CS_T_DECIMAL:
        return CS_PG_NUMERIC;
    default: /* String, Cuid, enums */
        return CS_PG_TEXT;
    }
}

const char *cs_pg_type_name(const cs_field *f)
{
    switch (cs_pg_param_type(f)) {
    case CS_PG_INT8:
        return "bigint";
    case CS_PG_FLOAT8:
        return "double precision";
    case CS_PG_BOOL:
        return "boolean";
    case CS_PG_BYTEA:
        return "bytea";
    case CS_PG_UUID:
        return "uuid";
    case CS_PG_TIMESTAMPTZ:
        return "timestamptz";
    case CS_PG_JSON:
        return "json";
    case CS_PG_NUMERIC:
        return "numeric";
    default:
        return "text";
    }
}

/* The OID a result column has once cs_pg_out_expr cast it. */
static Oid out_type(const cs_field *f)
{
    Oid t = cs_pg_param_type(f);
    return t == CS_PG_UUID || t == CS_PG_JSON || t == CS_PG_NUMERIC ? CS_PG_TEXT : t;
}

int cs_pg_out_expr(cs_buf *out, const cs_field *f, const char *expr)
{
    if (out_type(f) != cs_pg_param_type(f))
        return cs_buf_printf(out, "(%s)::text", expr);
    return cs_buf_puts(out, expr);
}

cstack_value cs_pg_sqlite_value(sqlite3_value *v)
{
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        return cstack_v_int(sqlite3_value_int64(v));
    case SQLITE_FLOAT:
        return cstack_v_float(sqlite3_value_double(v));
    case SQLITE_TEXT: {
        const char *p = (const char *)sqlite3_value_text(v);
        return cstack_v_textn(p ? p : "", (size_t)sqlite3_value_bytes(v));
    }
    case SQLITE_BLOB: {
        const void *p = sqlite3_value_blob(v);
        return cstack_v_blob(p ? p : "", (size_t)sqlite3_value_bytes(v));
    }
    default:
        return cstack_v_null();
    }
}

static const char *kind_name(cstack_vtype t)
{
    static const char *const names[] = {"NULL", "an integer", "a float",
                                        "a boolean", "text", "a blob"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "an unknown value";
}

static int put_param(cs_buf *arena, const char *p, size_t n)
{
    if (n > INT32_MAX)
        return CSTACK_ETOOBIG;
    uint32_t len = (uint32_t)n;
    int rc = cs_buf_append(arena, &len, sizeof len);
    if (rc == 0)
        rc = cs_buf_append(arena, p, n);
    return rc ? rc : cs_buf_putc(arena, 0);
}

static int wrong_kind(const cs_model *m, const cs_field *f, const cstack_value *v, cs_srv_err *err)
{
    char msg[256];
    snprintf(msg, sizeof msg, "the working copy holds %s in %s.%s, a %s field",
             kind_name(v->type), m->name, f->name, cs_scalar_name(f->type));
    cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EINVAL, msg);
    return CSTACK_EINVAL;
}

int cs_pg_value_encode(cs_buf *arena, const cs_model *m, const cs_field *f, const cstack_value *v,
                       cs_srv_err *err)
{
    char num[40];
    if (v->type == CSTACK_NULL) {
        uint32_t none = UINT32_MAX;
        return cs_buf_append(arena, &none, sizeof none);
    }
    switch (f->type) {
    case CS_T_INT:
    case CS_T_BOOLEAN:
        if (v->type != CSTACK_INT && v->type != CSTACK_BOOL)
            return wrong_kind(m, f, v, err);
        if (f->type == CS_T_BOOLEAN)
            return put_param(arena, (v->type == CSTACK_INT ? v->u.i : v->u.b) ? "t" : "f", 1);
        snprintf(num, sizeof num, "%" PRId64, v->u.i);
        return put_param(arena, num, strlen(num));
    case CS_T_FLOAT:
        if (v->type != CSTACK_FLOAT && v->type != CSTACK_INT)
            return wrong_kind(m, f, v, err);
        snprintf(num, sizeof num, "%.17g", v->type == CSTACK_FLOAT ? v->u.f : (double)v->u.i);
        return put_param(arena, num, strlen(num));
    case CS_T_BYTES:
        if (v->type != CSTACK_BLOB && v->type != CSTACK_TEXT)
            return wrong_kind(m, f, v, err);
        return put_param(arena, v->u.s.p, v->u.s.n);
    default:
        /* A text parameter ends at its first NUL, which canonical text never
         * holds (value.c refuses U+0000). */
        if ((v->type != CSTACK_TEXT && v->type != CSTACK_BLOB) || memchr(v->u.s.p, 0, v->u.s.n))
            return wrong_kind(m, f, v, err);
        return put_param(arena, v->u.s.p, v->u.s.n);
    }
}

cs_pg_param cs_pg_param_at(const cs_buf *arena, size_t *off, const cs_field *f)
{
    uint32_t len;
    memcpy(&len, arena->data + *off, sizeof len);
    *off += sizeof len;
    if (len == UINT32_MAX)
        return (cs_pg_param){NULL, 0, 0};
    cs_pg_param p = {arena->data + *off, (int)len, f->type == CS_T_BYTES};
    *off += (size_t)len + 1;
    return p;
}

static uint64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | (unsigned char)p[i];
    return v;
}

/* Seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01. */
#define PG_EPOCH_US (INT64_C(946684800) * 1000000)
/* The DateTime range (value.h): 0001-01-01 to 9999-12-31T23:59:59.999999,
 * in microseconds since 1970; PostgreSQL's is wider. */
#define DT_MIN_US (INT64_C(-62135596800) * 1000000)
#define DT_MAX_US (INT64_C(253402300800) * 1000000 - 1)

static int decode_err(const cs_model *m, const cs_field *f, int code, const char *why,
                      cs_srv_err *err)
{
    char msg[400];
    snprintf(msg, sizeof msg, "PostgreSQL's %s.%s: %s", m->name, f->name, why);
    cs_srv_err_set(err, code == CSTACK_EIO ? CS_SRV_INTERNAL : CS_SRV_BAD, code, msg);
    return code;
}

/* The raw value of one binary result cell, before canonicalisation;
 * `dt` holds a formatted DateTime. */
static int raw_value(const PGresult *r, int row, int col, const cs_model *m, const cs_field *f,
                     char dt[CS_DATETIME_LEN + 1], cstack_value *v, cs_srv_err *err)
{
    const char *p = PQgetvalue(r, row, col);
    size_t n = (size_t)PQgetlength(r, row, col);
    Oid want = out_type(f);
    if (PQftype(r, col) != want || PQfformat(r, col) != 1)
        return decode_err(m, f, CSTACK_EIO, "the column does not have the type cstack created",
                          err);
    switch (want) {
    case CS_PG_INT8:
    case CS_PG_FLOAT8:
    case CS_PG_TIMESTAMPTZ: {
        if (n != 8)
            return decode_err(m, f, CSTACK_EIO, "a binary value of the wrong size", err);
        uint64_t u = be64(p);
        if (want == CS_PG_INT8) {
            *v = cstack_v_int((int64_t)u);
        } else if (want == CS_PG_FLOAT8) {
            double d;
            memcpy(&d, &u, sizeof d);
            *v = cstack_v_float(d);
        } else {
            int64_t us = (int64_t)u;
            if (us < DT_MIN_US - PG_EPOCH_US || us > DT_MAX_US - PG_EPOCH_US)
                return decode_err(m, f, CSTACK_EVALIDATION,
                                  "a timestamp outside 0001-01-01..9999-12-31 (or infinity)",
                                  err);
            cs_datetime_format(us + PG_EPOCH_US, dt);
            *v = cstack_v_textn(dt, CS_DATETIME_LEN);
        }
        return 0;
    }
    case CS_PG_BOOL:
        if (n != 1)
            return decode_err(m, f, CSTACK_EIO, "a binary value of the wrong size", err);
        *v = cstack_v_bool(p[0] != 0);
        return 0;
    case CS_PG_BYTEA:
        *v = cstack_v_blob(p, n);
        return 0;
    default:
        *v = cstack_v_textn(p, n);
        return 0;
    }
}

int cs_pg_value_decode(const PGresult *r, int row, int col, const cstack_schema *s,
                       const cs_model *m, const cs_field *f, bool check, cs_buf *scratch,
                       cstack_value *out, cs_srv_err *err)
{
    char dt[CS_DATETIME_LEN + 1];
    cstack_value raw;
    cs_buf_reset(scratch);
    if (PQgetisnull(r, row, col)) {
        *out = cstack_v_null();
        return 0;
    }
    int rc = raw_value(r, row, col, m, f, dt, &raw, err);
    if (rc)
        return rc;
    /* The DateTime text lives on this stack: a canonical value borrowing it
     * is copied into scratch before it is returned. */
    char why[256] = "";
    rc = cs_field_canon(s, f, &raw, scratch, out, why, sizeof why);
    if (rc == 0 && out->type == CSTACK_TEXT && out->u.s.p == dt) {
        rc = cs_buf_append(scratch, dt, CS_DATETIME_LEN);
        *out = cstack_v_textn(scratch->data, CS_DATETIME_LEN);
    }
    if (rc == 0 && check)
        rc = cs_field_check(f, out, why, sizeof why);
    if (rc)
        return decode_err(m, f, rc == CSTACK_ENOMEM ? CSTACK_ENOMEM : CSTACK_EVALIDATION, why,
                          err);
    return 0;
}
