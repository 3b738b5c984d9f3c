/* parked.h -- rows hidden by a merge conflict (see parked.c). */
#ifndef CS_PARKED_H
#define CS_PARKED_H

#include "sync/changeset.h"

/* Why a row is hidden, stored with it (_cstack_parked.reason).  The merge
 * decides it from the merged state alone (settle.c), in this order: a parent
 * that is not visible, then a required field missing, then a unique value
 * held by a row with an earlier claim. */
typedef enum cs_park_reason {
    CS_PARK_UNIQUE = 1,
    CS_PARK_PARENT,
    CS_PARK_REQUIRED
} cs_park_reason;

/* "unique", "parent", "required"; "unknown" for a row hidden by a version
 * that did not record reasons (until the next merge decides it again). */
const char *cs_park_reason_name(int reason);

/* The parked-table key of a primary key. */
int cs_parked_key(cs_buf *b, const cs_cs_value *pk, size_t npk);
/* Copies the parked row of `key` into `row` (*found false when none). */
int cs_parked_get(cs_conn *c, const cs_model *m, const cs_buf *key, cs_buf *row, bool *found);
/* Parks (or re-parks) a row with its values and the reason it is hidden. */
int cs_parked_put(cs_conn *c, const cs_model *m, const cs_buf *key, const cs_buf *row,
                  cs_park_reason reason);
/* Records a new reason for a row that stays parked (no write when it is
 * the same). */
int cs_parked_set_reason(cs_conn *c, const cs_model *m, const cs_buf *key, cs_park_reason reason);
int cs_parked_del(cs_conn *c, const cs_model *m, const cs_buf *key);
/* Whether any row is parked (an SQLite result code). */
int cs_parked_any(cs_conn *c, bool *any);
/* Decodes a parked row into vals/present (indexed by field; values borrow
 * from `row`). */
int cs_parked_decode(const void *row, size_t len, const cs_model *m, cs_cs_value *vals,
                     bool *present);
int cs_parked_encode(cs_buf *b, const cs_model *m, const cs_cs_value *vals, const bool *present);

#endif
