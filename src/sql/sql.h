/*
 * sql.h -- SQL text built from a schema:
 *
 *   ddl.c      DDL for SQLite and PostgreSQL
 *   migrate.c  the migration planner that compares a stored schema with a
 *              new one
 *   rowsql.c   the statements that read and write one row of a model
 *              (insert, update by column set, delete and load by key, key
 *              lookups by column values) and the insert of many new rows,
 *              built once per runtime, each with a statement cache key
 *
 * All SQL here is built from schema identifiers only (quoted with
 * cs_buf_ident); no user value is ever spliced in.  Literal defaults come from
 * the schema text itself and are quoted with cs_buf_sql_str.
 *
 * SQLite DDL conventions (docs/storage.md):
 *   - every column is declared BLOB (so BLOB affinity: SQLite stores exactly
 *     what is bound) followed by a comment naming the schema type, e.g.
 *       "price" BLOB /\* Decimal? *\/,
 *     (the backslashes only keep this C comment open),
 *   - required fields are NOT NULL; literal defaults become DEFAULT clauses;
 *   - the primary key is a table constraint PRIMARY KEY ("a","b"), so an
 *     integer key never aliases the rowid;
 *   - relations become FOREIGN KEY (...) REFERENCES "T" (...) ON DELETE ...
 *     ON UPDATE ... table constraints;
 *   - @unique / @@unique become CREATE UNIQUE INDEX "<name>", @@index
 *     CREATE INDEX "<name>" (names from cs_index.name);
 *   - internal tables are prefixed "_cstack_".
 */
#ifndef CS_SQL_H
#define CS_SQL_H

#include <stdbool.h>
#include <stdint.h>

#include "schema/schema.h"
#include "util/buf.h"

/* CS_DIALECT_PG_STORE: the app tables of the server's PostgreSQL store
 * (src/server/pg_typed*.c), CS_DIALECT_POSTGRES but with Json columns as
 * JSON, which keeps the exact text: JSONB reorders keys and respells
 * numbers and escapes, so a stored value would not come back byte for byte
 * and the servers' copies (and their checksums) would drift from the
 * devices'. */
typedef enum cs_dialect { CS_DIALECT_SQLITE, CS_DIALECT_POSTGRES, CS_DIALECT_PG_STORE } cs_dialect;

/* Appends the full DDL of the schema (tables in dependency order, then
 * indexes), one statement per line group, each ending with ";\n".  For SQLite
 * statements use IF NOT EXISTS so running them again is harmless.  @@local
 * models are included (they are local tables). */
int cs_sql_schema_ddl(cs_buf *out, const cstack_schema *s, cs_dialect d);
/* CREATE TABLE (and its indexes) for one model. */
int cs_sql_model_ddl(cs_buf *out, const cstack_schema *s, const cs_model *m, cs_dialect d);

/* Runtime tables every database gets (SQLite):
 *   _cstack_meta(key TEXT PRIMARY KEY, value)   -- 'schema_hash', 'schema_source'
 *   _cstack_audit(id INTEGER PRIMARY KEY AUTOINCREMENT, model, pk, op, before, after, at)
 *   _cstack_outbox(id INTEGER PRIMARY KEY AUTOINCREMENT, event, model, pk, payload, at)
 *   _cstack_sequence(model TEXT PRIMARY KEY, value INTEGER) -- autoincrement */
int cs_sql_internal_ddl(cs_buf *out);

/* Building blocks shared by ddl.c and migrate.c (also usable by the store).
 * Each appends to `out` and returns 0 or a negative CSTACK_E* code. */

/* CREATE TABLE for `m` under the name `table` (NULL: m->table).  SQLite: with
 * IF NOT EXISTS when `if_not_exists`, foreign keys as table constraints.
 * Postgres: without foreign keys, which follow as ALTER TABLE statements so
 * that cycles work. */
int cs_sql_create_table(cs_buf *out, const cstack_schema *s, const cs_model *m, cs_dialect d,
                        const char *table, bool if_not_exists);
/* The definition of one column, as inside CREATE TABLE or after ADD COLUMN:
 * SQLite `"price" BLOB /\* Decimal *\/ NOT NULL DEFAULT '0'`. */
int cs_sql_column_def(cs_buf *out, const cstack_schema *s, const cs_model *m, const cs_field *f,
                      cs_dialect d);
/* `CONSTRAINT "<table>_<cols>_fkey" FOREIGN KEY (...) REFERENCES "T" (...)
 * [ON DELETE ..] [ON UPDATE ..]` for an owning relation field. */
int cs_sql_foreign_key(cs_buf *out, const cstack_schema *s, const cs_model *m, const cs_field *f);
/* PostgreSQL: the column's ` DEFAULT <expr>` clause (with its leading
 * space), or nothing when it has none. */
int cs_sql_pg_default(cs_buf *out, const cs_field *f);
/* PostgreSQL: `CONSTRAINT "<table>_<col>_check" CHECK ("col" IN (...))`,
 * the members of enum field `f` (named so a migration can swap it). */
int cs_sql_enum_check(cs_buf *out, const cstack_schema *s, const cs_model *m, const cs_field *f);
/* CREATE [UNIQUE] INDEX (SQLite: IF NOT EXISTS) for one index of `m`. */
int cs_sql_create_index(cs_buf *out, const cs_model *m, const cs_index *ix, cs_dialect d);
/* The SQL literal of a field's CS_DEF_LITERAL default ('OPEN', 42, 1.5). */
int cs_sql_default_literal(cs_buf *out, const cs_field *f, cs_dialect d);
/* Fills order[0..nmodels) with model indices, referenced models first and
 * declaration order otherwise (cycles are broken in declaration order).
 * Returns 0 or CSTACK_ENOMEM. */
int cs_sql_model_order(const cstack_schema *s, int *order);

/*
 * Migration planning.  `old` is the schema the database was last bootstrapped
 * with (re-parsed from _cstack_meta), `new_` the schema being opened.
 * On success appends to `sql` the statements that bring the database from
 * old to new (possibly none) and to `report` one human line per change
 * ("added model Tag (table \"Tag\")", "added field Note.body",
 *  "added index Note_ownerId_createdAt_idx", "dropped index ...").
 * Allowed in place: new model; new optional field; new field with a default
 * (literal, now(), uuid(), cuid()); required -> optional; new/dropped index or
 * unique; @updatedAt / @default changes that do not touch stored data.
 * Refused (returns CSTACK_EMIGRATION, `err` names model, field and change,
 * nothing appended): dropped model, dropped field, changed type (including
 * enum members removed), optional -> required, new required field without a
 * default, changed primary key, changed @map/@@map (renames).
 * Changes that SQLite's ALTER TABLE cannot express (e.g. required ->
 * optional, a new field whose default is not constant) are done by rebuilding
 * the table (CREATE new, INSERT SELECT, DROP, RENAME, recreate indexes) with
 * foreign keys off; the caller runs `sql` inside one transaction.
 */
int cs_sql_migrate(const cstack_schema *old, const cstack_schema *new_, cs_buf *sql,
                   cs_buf *report, char *err, size_t errlen);

/*
 * Row SQL (rowsql.c).  A cs_rowsql belongs to one runtime and holds, for
 * every model of its schema, the row statements below; `rs` borrows the
 * schema, which must outlive it.
 *
 * Parameters follow one rule in every statement: ?N (1 <= N <= nfields)
 * takes the new value of field N-1 (the columns set by an INSERT or UPDATE,
 * the columns compared by CS_ROW_KEYS_WHERE), and the p-th primary key column
 * is compared with ?cs_rowsql_key_param(m, p).  Statements that return a row
 * (CS_ROW_LOAD*, CS_ROW_UPDATE_RETURNING) return every column field in field
 * order; CS_ROW_KEYS_WHERE returns the primary key columns in key order.
 */
typedef struct cs_rowsql cs_rowsql;

/* Statements that depend only on the model, built by cs_rowsql_new. */
typedef enum cs_row_fixed {
    CS_ROW_LOAD,       /* SELECT <columns> FROM t WHERE <key> */
    CS_ROW_LOAD_ROWID, /* SELECT <columns> FROM t WHERE rowid = ?1 */
    CS_ROW_DELETE,     /* DELETE FROM t WHERE <key> */
    CS_ROW_INSERT_ALL, /* INSERT of every column */
    CS_ROW_UPDATE_ALL, /* UPDATE of every column not in the key, by key */
    CS_ROW_FIXED_KINDS
} cs_row_fixed;

/* Statements of a column set, built on first use and kept. */
typedef enum cs_row_set {
    CS_ROW_INSERT,           /* INSERT of the set (DEFAULT VALUES when empty) */
    CS_ROW_UPDATE,           /* UPDATE of the set by key (the set not empty) */
    CS_ROW_UPDATE_RETURNING, /* the same, RETURNING <columns> */
    CS_ROW_KEYS_WHERE,       /* SELECT <key> FROM t WHERE <set> = values */
    CS_ROW_SET_KINDS
} cs_row_set;

/* One statement: its text and its key, which is non-zero, below 2^56, and
 * unique among the row statements of one cs_rowsql (model, kind and column
 * set).  Key 0 marks a statement built past CS_ROWSQL_MAX_SETS: cache it by
 * its text. */
typedef struct cs_rowstmt {
    const char *sql;
    size_t len;
    uint64_t key;
} cs_rowstmt;

/* Column sets are bitsets over field indices: bit f%64 of word f/64 stands
 * for field f; bits past the model's last field are 0. */
#define CS_FIELDSET_WORDS(nfields) ((nfields) ? ((size_t)(nfields) + 63) / 64 : 1)
static inline void cs_fieldset_add(uint64_t *bits, size_t f)
{
    bits[f / 64] |= 1ull << (f % 64);
}

/* Column sets kept per model; statements of further sets are built anew on
 * every call (a program that writes thousands of different column sets of
 * one model is rare, and must not grow memory without bound). */
#define CS_ROWSQL_MAX_SETS 1024

static inline int cs_rowsql_key_param(const cs_model *m, size_t p)
{
    return (int)(m->nfields + 1 + p);
}

/* Rows written by one multi-row INSERT (cs_rowsql_insert_many, and of clock
 * rows cs_clock_sql_insert_new): 64 spare most of the per-statement cost;
 * fewer for a model so wide that 64 rows would take more than 999
 * parameters (nfields per row, or the key, causal length and clock blob of
 * a clock row, plus one), the smallest limit an SQLite build has by
 * default. */
#define CS_SQL_BATCH_ROWS 64
static inline size_t cs_sql_batch_rows(const cs_model *m)
{
    size_t per = m->nfields > m->npk + 2 ? m->nfields : m->npk + 2;
    size_t n = 998 / per;
    n = n ? n : 1;
    return n < CS_SQL_BATCH_ROWS ? n : CS_SQL_BATCH_ROWS;
}

/* Builds the fixed statements of every model.  Returns 0, CSTACK_ENOMEM,
 * or CSTACK_ESCHEMA / CSTACK_ETOOBIG for a schema it cannot serve (a model
 * without a key; more than 16384 models). */
int cs_rowsql_new(const cstack_schema *s, cs_rowsql **out);
void cs_rowsql_free(cs_rowsql *rs);
/* A fixed statement of model `mi`, valid until cs_rowsql_free; NULL when the
 * model has none of that kind: CS_ROW_UPDATE_ALL of a model whose columns are
 * all in its key, CS_ROW_LOAD_ROWID of one whose columns shadow every name of
 * the rowid.  Safe to call from any thread. */
const cs_rowstmt *cs_rowsql_fixed(const cs_rowsql *rs, int mi, cs_row_fixed kind);
/* The statement of `kind` for the column set `bits` of model `mi`
 * (CS_FIELDSET_WORDS(nfields) words).  out->sql stays valid until
 * cs_rowsql_free, or for a key-0 statement until the next call.  Returns 0,
 * CSTACK_ENOMEM, or CSTACK_EMISUSE for a set naming a relation field, a bit
 * past the last field, or an empty UPDATE.  Changes `rs`: callers serialise
 * (the store calls it only under its write lock). */
int cs_rowsql_set(cs_rowsql *rs, int mi, cs_row_set kind, const uint64_t *bits, cs_rowstmt *out);
/* The INSERT of every column of cs_sql_batch_rows(m) rows of model `mi` in
 * one statement: the value of field f of the r-th row (from 0) is
 * ?(r * nfields + f + 1), so the first row binds like CS_ROW_INSERT_ALL.
 * Built on first use and kept; changes `rs` like cs_rowsql_set.  Returns 0
 * or CSTACK_ENOMEM. */
int cs_rowsql_insert_many(cs_rowsql *rs, int mi, cs_rowstmt *out);

#endif
