/* parked.h -- rows hidden by a merge conflict (see parked.c). */
#ifndef CS_PARKED_H
#define CS_PARKED_H

#include "sync/changeset.h"

/* The parked-table key of a primary key. */
int cs_parked_key(cs_buf *b, const cs_cs_value *pk, size_t npk);
/* Copies the parked row of `key` into `row` (*found false when none). */
int cs_parked_get(cs_conn *c, const cs_model *m, const cs_buf *key, cs_buf *row, bool *found);
int cs_parked_put(cs_conn *c, const cs_model *m, const cs_buf *key, const cs_buf *row);
int cs_parked_del(cs_conn *c, const cs_model *m, const cs_buf *key);
/* Whether any row is parked (an SQLite result code). */
int cs_parked_any(cs_conn *c, bool *any);
/* Decodes a parked row into vals/present (indexed by field; values borrow
 * from `row`). */
int cs_parked_decode(const void *row, size_t len, const cs_model *m, cs_cs_value *vals,
                     bool *present);
int cs_parked_encode(cs_buf *b, const cs_model *m, const cs_cs_value *vals, const bool *present);

#endif
