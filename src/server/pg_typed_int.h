/*
 * pg_typed_int.h -- what the files of the typed app tables share (pg.h,
 * "pg_typed*.c"):
 *
 *   pg_typed_val.c      one value between SQLite's storage and PostgreSQL's
 *                       types, both ways, and the SQL text each type needs
 *   pg_typed_ddl.c      cs_pg_typed_ensure: tables, migrations, triggers
 *   pg_typed.c          the context, writes to PostgreSQL (queued, sent many
 *                       rows per statement), load and save
 *   pg_typed_backend.c  cs_pg_backend_ingest: the backend-write queue
 *
 * Values travel to PostgreSQL as text parameters with their type's OID
 * (Bytes as binary), and come back in binary results: int8, float8, bool,
 * bytea and timestamptz as PostgreSQL's binary forms, every other type cast
 * to text in the SELECT list (so numeric, uuid and json arrive as the text
 * the canonicaliser reads).
 */
#ifndef CS_SERVER_PG_TYPED_INT_H
#define CS_SERVER_PG_TYPED_INT_H

#include "server/pg.h"
#include "sql/sql.h"
#include "store/store.h"

/* The queue table the capture triggers fill (docs/postgres.md). */
#define CS_PG_QUEUE "_cstack_pg_backend"

/* The PostgreSQL type OIDs used here (pg_type.dat; stable across versions). */
enum {
    CS_PG_BOOL = 16,
    CS_PG_BYTEA = 17,
    CS_PG_INT8 = 20,
    CS_PG_TEXT = 25,
    CS_PG_JSON = 114,
    CS_PG_FLOAT8 = 701,
    CS_PG_TIMESTAMPTZ = 1184,
    CS_PG_NUMERIC = 1700,
    CS_PG_UUID = 2950
};

/* The OID of field f's column, which is also its parameters' type. */
Oid cs_pg_param_type(const cs_field *f);
/* The SQL type name of that OID, for casts ("bigint", "timestamptz"). */
const char *cs_pg_type_name(const cs_field *f);
/* Appends the SELECT-list expression that reads `expr` (an expression of
 * field f's column type) in the form cs_pg_value_decode expects. */
int cs_pg_out_expr(cs_buf *out, const cs_field *f, const char *expr);

/* One parameter: `p` points into a buffer the caller owns; NULL is SQL
 * NULL.  `binary`: a bytea sent in binary (len counts); text otherwise
 * (NUL-terminated). */
typedef struct cs_pg_param {
    const char *p;
    int len;
    int binary;
} cs_pg_param;

/* Appends to `arena` the parameter text of a working-copy value `v` of
 * field f (m: its model, for messages), as u32 length (UINT32_MAX: NULL)
 * then the bytes and a NUL.  CSTACK_EINVAL with err filled when the copy
 * holds a value of the wrong storage class for the field. */
int cs_pg_value_encode(cs_buf *arena, const cs_model *m, const cs_field *f, const cstack_value *v,
                       cs_srv_err *err);
/* Reads back one value cs_pg_value_encode appended at arena+*off, moving
 * *off past it. */
cs_pg_param cs_pg_param_at(const cs_buf *arena, size_t *off, const cs_field *f);

/* A working-copy value of a column as a cstack_value borrowing from `v`. */
cstack_value cs_pg_sqlite_value(sqlite3_value *v);

/* Decodes column `col` of row `row` of a binary result as field f of model
 * m, canonicalised (and checked against f's validators when `check`) into
 * *out, which may point into `scratch` (one scratch per value).  Returns 0,
 * or CSTACK_EVALIDATION / CSTACK_EIO with err naming Model.field. */
int cs_pg_value_decode(const PGresult *r, int row, int col, const cstack_schema *s,
                       const cs_model *m, const cs_field *f, bool check, cs_buf *scratch,
                       cstack_value *out, cs_srv_err *err);

/* ---- pg_typed.c, for pg_typed_backend.c --------------------------------- */

/* The copy's CS_ROW_LOAD of model mi on conn, reset, key unbound. */
int cs_pg_typed_copy_load(cs_pg_typed *t, sqlite3 *conn, int mi, sqlite3_stmt **out,
                          cs_srv_err *err);
/* The copy's statement of `kind` for the column set `bits` (cs_rowsql_set),
 * or of a fixed kind when bits is NULL, prepared on conn (not cached). */
int cs_pg_typed_copy_stmt(cs_pg_typed *t, sqlite3 *conn, int mi, int kind, const uint64_t *bits,
                          sqlite3_stmt **out, cs_srv_err *err);
/* Field indices of model mi's columns in the order every PostgreSQL
 * statement here lists them: primary key first, then the other columns in
 * field order. */
const int *cs_pg_typed_cols(const cs_pg_typed *t, int mi, size_t *ncols);
/* Queues the write that makes PostgreSQL's row of model mi with key
 * key[0..npk) what the copy holds (cs_pg_typed_sync_row by values). */
int cs_pg_typed_restore(cs_pg_typed *t, sqlite3 *conn, int mi, const cstack_value *key,
                        cs_srv_err *err);
const cstack_schema *cs_pg_typed_schema(const cs_pg_typed *t);
PGconn *cs_pg_typed_conn(const cs_pg_typed *t);

/* Sets err from a SQLite failure on conn. */
int cs_pg_sqlite_err(sqlite3 *conn, const char *what, cs_srv_err *err);

#endif
