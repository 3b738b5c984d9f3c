/*
 * rowvals.h -- the values of one row being written (write.c): the fields the
 * caller gave, canonicalised and checked against the field's validators,
 * then the defaults of a new row.  Indexed by field; set[i] says whether
 * field i has a value.  Only src/store/ includes this header.
 */
#ifndef CS_STORE_ROWVALS_H
#define CS_STORE_ROWVALS_H

#include "store/runtime_int.h"

/* The values of one row being written, indexed by field. */
typedef struct cs_rowvals {
    size_t n;
    bool *set;
    cstack_value *v;
    char **owned;
    bool heap;
} cs_rowvals;

#define CS_ROWVALS_INLINE 32

/* Small models (the usual case) keep their row values on the stack. */
typedef struct cs_rowvals_store {
    bool set[CS_ROWVALS_INLINE];
    cstack_value v[CS_ROWVALS_INLINE];
    char *owned[CS_ROWVALS_INLINE];
} cs_rowvals_store;

/* Sizes rv for n fields, on `st` when they fit (nothing set).  0 or
 * CSTACK_ENOMEM; cs_rowvals_free in both cases. */
int cs_rowvals_init(cs_rowvals *rv, size_t n, cs_rowvals_store *st);
void cs_rowvals_free(cs_rowvals *rv);
/* Canonicalises the given fields of `data` into rv and runs their
 * validators: CSTACK_EINVAL (unknown, relation or repeated field),
 * CSTACK_EREQUIRED (null for a required field), CSTACK_EVALIDATION. */
int cs_rowvals_take(const cstack_schema *s, const cs_model *m, const cstack_data *data,
                    cs_rowvals *rv);
/* Fills the defaults and @updatedAt of a new row (`now`: a
 * CS_DATETIME_LEN + 1 buffer, "" until first needed) and checks that every
 * required field has a value (CSTACK_EREQUIRED). */
int cs_rowvals_defaults(cstack *db, const cs_model *m, cs_rowvals *rv, char *now);
/* The column set of the fields given in rv (CS_FIELDSET_WORDS words). */
void cs_rowvals_bits(const cs_rowvals *rv, uint64_t *bits);
/* Binds the given values of rv to their fields' parameters (field i is
 * parameter i + 1). */
int cs_rowvals_bind(sqlite3_stmt *st, const cs_model *m, const cs_rowvals *rv, cstack *db);

#endif
