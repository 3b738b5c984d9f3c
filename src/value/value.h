/*
 * value.h -- the scalar types of the schema language and their canonical
 * storage encodings (SPEC section 3).
 *
 * Canonical storage forms (what is bound to SQLite):
 *   String, Cuid   TEXT, valid UTF-8, as given
 *   Int            INTEGER (int64)
 *   Float          REAL, finite (NaN/Inf rejected)
 *   Boolean        INTEGER 0/1
 *   Bytes          BLOB
 *   Uuid           TEXT 8-4-4-4-12 lowercase (any input case accepted)
 *   DateTime       TEXT YYYY-MM-DDTHH:MM:SS.ffffffZ (27 chars), UTC
 *   Json           TEXT compact JSON (no insignificant whitespace; numbers and
 *                  string escapes kept exactly as written)
 *   Decimal        TEXT canonical decimal: optional '-', no leading zeros,
 *                  no exponent, scale kept ("1.10"), "-0"/"-0.00" -> "0"/"0.00"
 *   Enum           TEXT member name
 *
 * Depends only on util/ and SQLite (for the SQL functions it registers).
 */
#ifndef CS_VALUE_H
#define CS_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cstack.h"
#include "util/buf.h"

/* The types a field can have.  The schema (schema/schema.h) gives fields
 * these types; value/ validates and encodes them. */
typedef enum cs_scalar {
    CS_T_STRING,
    CS_T_INT,
    CS_T_FLOAT,
    CS_T_BOOLEAN,
    CS_T_BYTES,
    CS_T_UUID,
    CS_T_CUID,
    CS_T_DATETIME,
    CS_T_JSON,
    CS_T_DECIMAL,
    CS_T_ENUM,  /* type_index: the enum */
    CS_T_MODEL  /* a relation field; type_index: the target model */
} cs_scalar;

/* Name of a scalar as written in schemas ("DateTime"); "enum"/"model" for
 * the last two. */
const char *cs_scalar_name(cs_scalar t);
/* The scalar a schema names ("DateTime"), or -1 when the name is no
 * built-in scalar (enums and models are found by the schema). */
int cs_scalar_find(const char *name);

/* An enum type as value/ checks it: its name (for messages) and members.
 * The schema's enums (cs_enum) carry more; cs_field_canon builds this. */
typedef struct cs_enum_members {
    const char *name;
    const char *const *members;
    size_t nmembers;
} cs_enum_members;

#define CS_UUID_LEN 36
#define CS_DATETIME_LEN 27
#define CS_CUID_LEN 25
/* Largest Decimal accepted: digits before plus after the point. */
#define CS_DECIMAL_MAX_DIGITS 1000

/*
 * Validates `in` against a field of type `type` (with its enum when type is
 * CS_T_ENUM) and produces the canonical storage value in *out.  Text results
 * that differ from the input are written into `scratch` (appended; *out points
 * into it, so do not append to scratch again while *out is in use -- reserve
 * first, or use one scratch per value); otherwise *out may borrow from `in`.
 * NULL input gives a NULL output (optionality is the caller's business).
 * On failure returns CSTACK_EVALIDATION (or CSTACK_ENOMEM/ETOOBIG) and writes
 * a sentence to `err` (like: invalid Decimal "1e5": exponent not allowed).
 */
int cs_value_canon(cs_scalar type, const cs_enum_members *en, const cstack_value *in,
                   cs_buf *scratch, cstack_value *out, char *err, size_t errlen);

/* Individual canonicalisers.  Return 0 or CSTACK_EVALIDATION (err filled). */
int cs_uuid_canon(const char *s, size_t n, char out[CS_UUID_LEN + 1], char *err, size_t errlen);
int cs_datetime_canon(const char *s, size_t n, char out[CS_DATETIME_LEN + 1], char *err,
                      size_t errlen);
int cs_decimal_canon(const char *s, size_t n, cs_buf *out, char *err, size_t errlen);
int cs_json_canon(const char *s, size_t n, cs_buf *out, char *err, size_t errlen);
/* True when the n bytes are valid UTF-8 (no overlongs, no surrogates). */
bool cs_utf8_valid(const char *s, size_t n);

/* Writes `s` (n bytes) into out (outlen bytes, NUL-terminated) for quoting
 * in a message: at most 40 bytes of the value, then "..." when longer;
 * quotes, backslashes, control bytes and invalid UTF-8 escaped (\", \\, \xNN).
 * Returns the length written. */
size_t cs_value_quote(char *out, size_t outlen, const char *s, size_t n);
/* Writes `invalid TYPE "VALUE": REASON` to err (err may be NULL). */
void cs_value_errf(char *err, size_t errlen, const char *type, const char *s, size_t n,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Numeric comparison of two canonical (or merely valid) decimals: <0, 0, >0. */
int cs_decimal_cmp(const char *a, size_t an, const char *b, size_t bn);
/* Exact sum a+b appended to `out` (canonical, scale = max of the scales). */
int cs_decimal_add(const char *a, size_t an, const char *b, size_t bn, cs_buf *out);

/* Generators.  Output is NUL-terminated. */
void cs_uuid_v4(char out[CS_UUID_LEN + 1]);
void cs_uuid_v7(char out[CS_UUID_LEN + 1]);
void cs_cuid(char out[CS_CUID_LEN + 1]);
/* Current UTC time, canonical DateTime text. */
void cs_now(char out[CS_DATETIME_LEN + 1]);
void cs_datetime_format(int64_t micros, char out[CS_DATETIME_LEN + 1]);

/* Appends the JSON form (SPEC section 6) of a canonical stored value of
 * type `type`: Bytes base64, Json inline, Boolean true/false, Int a number,
 * Float a number (shortest round-trip form), the rest strings. */
int cs_value_json(cs_buf *b, cs_scalar type, const cstack_value *v);

/*
 * Registers on a connection the SQL helpers the runtime's queries use:
 *   collation  cstack_decimal          numeric order of decimal text
 *   aggregate  cstack_decimal_sum(x)   exact sum, canonical text (NULL if none)
 *   aggregate  cstack_decimal_avg(x)   exact sum / count, rounded half-even to
 *                                      max(scale)+6 digits, canonical text
 *   function   cstack_now()            canonical DateTime text of now
 * Returns an SQLite result code.
 */
struct sqlite3;
int cs_value_register_sqlite(struct sqlite3 *db);

#endif
