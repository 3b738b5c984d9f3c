/* apply.h -- private state of a changeset merge (apply.c, settle.c). */
#ifndef CS_APPLY_H
#define CS_APPLY_H

#include "sync/changeset.h"
#include "sync/parked.h"
#include "sync/sync_ext.h"

/* A row as values by field index; `buf` owns the bytes when loaded. */
typedef struct cs_arow {
    const cs_model *m;
    cs_cs_value *vals;
    bool *present;
    cs_buf buf;
    bool borrowed;      /* vals and present belong to the apply_ctx */
} cs_arow;

/* A row whose visibility changed: model and its full encoded values. */
typedef struct cs_work {
    int model;
    cs_buf row;
} cs_work;

typedef struct cs_worklist {
    cs_work *items;
    size_t n, cap;
} cs_worklist;

typedef struct apply_ctx {
    cstack *db;
    const cstack_schema *schema;
    cs_sync *s;
    cs_conn *c;           /* the write connection, inside the merge scope */
    cs_cs_header h;
    cs_cs_row row;
    uint32_t *site_ord;   /* changeset site index -> local ordinal */
    uint32_t origin_ord;
    int64_t ver;          /* the local version of this merge */
    int **field_col;      /* [model][field] -> blob column, -1 */
    bool *won;            /* per incoming column of the current row */
    cstack_apply_stats stats;
    cs_worklist touched;  /* rows made visible or changed */
    cs_worklist removed;  /* rows deleted or parked */
    const cs_apply_opts *opts;
    cs_rowsql *rowsql;    /* the runtime's row statements (sql/sql.h) */
    bool parked_any;      /* some row may be parked (else none is looked up) */
    bool guess_new;       /* the previous row had no clock row */
    cs_cs_value *cur_vals; /* the merged row's arrays, sized for any model */
    bool *cur_present;
    cs_buf blob;          /* scratch: the clock blob being stored */
} apply_ctx;

/* Prepares a row statement on the merge's connection. */
int cs_apply_prepare(apply_ctx *a, const cs_model *m, const cs_rowstmt *rs, sqlite3_stmt **st);

int cs_row_init(cs_arow *r, const cs_model *m);
void cs_row_free(cs_arow *r);
int cs_row_own(cs_arow *r);
int cs_row_load(apply_ctx *a, const cs_model *m, const cs_cs_value *pk, cs_arow *r,
                bool *found, bool *parked);
void cs_row_pk(const cs_arow *r, cs_cs_value *pk);
int cs_clock_load(apply_ctx *a, int mi, const cs_cs_value *pk, uint64_t *cl, cs_clk *clk);

/* settle.c */
int cs_apply_check_value(apply_ctx *a, const cs_model *m, int field, const cs_cs_value *v);
/* Writes the merged alive row (the current row `cur` overlaid with the won
 * columns of `in`), parking it or a rival when a constraint says so. */
int cs_apply_write(apply_ctx *a, const cs_cs_row *in, cs_arow *cur, bool found, bool parked);
/* Inserts the alive row `in` (its won columns) into its table, for a row
 * that is in neither its table nor the parked rows as far as the clock
 * knows: *done says whether the row is now merged.  When the INSERT fails
 * (a constraint, or a row written to the file behind cstack's back) nothing
 * was written, and the caller loads the row and writes it the general way. */
int cs_apply_insert(apply_ctx *a, const cs_cs_row *in, cs_arow *cur, bool *done);
/* Notes the row r, inserted into its table by the caller (many rows per
 * statement), as cs_apply_insert notes the rows it inserts. */
int cs_apply_inserted(apply_ctx *a, const cs_arow *r);
/* Removes a row that is now deleted. */
int cs_apply_remove(apply_ctx *a, cs_arow *cur, const cs_cs_value *pk, bool found,
                    bool parked);
/* Brings visibility to its fixed point: orphans parked, parked rows whose
 * conflict is gone restored. */
int cs_apply_settle(apply_ctx *a);
void cs_apply_work_free(apply_ctx *a);

#endif
