/*
 * clocksql.h -- the SQL of a synced model's clock table (layout in
 * src/sync/tables.c): its DDL and the statements run once per row by the
 * fold of local writes and by the merge.  Built from schema identifiers
 * only; every value is a parameter.  Each function appends to `b`.
 */
#ifndef CS_CLOCKSQL_H
#define CS_CLOCKSQL_H

#include <stddef.h>

#include "schema/schema.h"
#include "util/buf.h"

/* CREATE TABLE and its version index, IF NOT EXISTS. */
int cs_clock_sql_ddl(cs_buf *b, const cs_model *m, const char *table);
/* SELECT _cstack_cl, _cstack_clk of the row whose key is ?1..?npk. */
int cs_clock_sql_load(cs_buf *b, const cs_model *m, const char *table);
/* Upsert of one row: ?1 causal length, ?2 version, ?3 blob, key from ?4. */
int cs_clock_sql_store(cs_buf *b, const cs_model *m, const char *table);
/* SELECT _cstack_ver, _cstack_clk of the row with the highest version. */
int cs_clock_sql_latest(cs_buf *b, const char *table);
/* Upsert of `nrows` inserted rows: alive (an odd causal length, the next
 * one for a tombstone), ?1 version, ?2 blob, the keys from ?3 on, npk
 * parameters per row. */
int cs_clock_sql_insert(cs_buf *b, const cs_model *m, const char *table, size_t nrows);
/* Insert of `nrows` rows that have no clock row yet, with no conflict
 * clause, so that one existing row fails the whole statement: ?1 version,
 * then per row its npk key values, its causal length and its blob. */
int cs_clock_sql_insert_new(cs_buf *b, const cs_model *m, const char *table, size_t nrows);

#endif
