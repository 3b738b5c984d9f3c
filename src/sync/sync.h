/*
 * sync.h -- the sync engine's private interfaces (docs/sync.md).
 *
 *   attach.c     the public cstack_open, composing the store with sync; the
 *                one before-commit record of what a transaction did
 *   tables.c     sync tables and the column registry (bootstrap)
 *   capture.c    recording local writes (preupdate hook, _cstack_txlog) and
 *                folding them into the clock tables
 *   clkrow.c     one clock row by primary key (load / store)
 *   clock.c      hybrid logical clock, site ids, transaction versions
 *   clkblob.c    the per-row clock blob (encode, decode, merge helpers)
 *   changeset.c  the wire format (documented at its top)
 *   export.c     export since a version, the upload queue
 *   apply.c      merging a changeset inside the store's merge scope
 *   settle.c     writing merged rows, parking conflicting ones (apply.h)
 *   parked.c     the parked-row table (parked.h)
 *   checksum.c   the visible-state checksum
 *   compact.c    peer acknowledgements and compaction
 *   sync_ext.h   what the sync server uses: filtered export, cs_merge
 *
 * Data flows store -> sync: sync extends the store through cs_store_ext and
 * the store never includes this header.
 */
#ifndef CS_SYNC_H
#define CS_SYNC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "store/store.h"

#define CS_SITE_LEN 16
#define CS_DEFAULT_DRIFT_MS 300000

/* ---- the clock blob ---------------------------------------------------------
 *
 * One per row of a synced model, in column _cstack_clk of its clock table.
 * It lists the distinct clocks that wrote the row, then which clock wrote the
 * row's existence (the last causal-length change) and each column:
 *
 *   varint ncols            columns described (registry order)
 *   varint nentries         distinct clocks (at most ncols + 1)
 *   entries: u64 hlc (8 bytes little-endian), varint site ordinal,
 *            varint version (local version that recorded it)
 *   varint row slot         1-based entry index, 0 = unknown
 *   ncols x varint slot     1-based entry index, 0 = never written
 *
 * Columns written together share one entry, so a freshly inserted row costs
 * one entry plus a byte per column. */
typedef struct cs_clk_entry {
    uint64_t hlc;
    uint32_t site;  /* ordinal in _cstack_sites; 0 is this database */
    int64_t ver;
} cs_clk_entry;

#define CS_CLK_MAX_COLS 2000

typedef struct cs_clk {
    size_t ncols;
    size_t nentries;
    cs_clk_entry *entries; /* nentries */
    uint32_t row;          /* slot of the existence change */
    uint32_t *slots;       /* ncols slots */
    size_t ncap, scap;     /* heap capacities (when not inline) */
    /* inline storage for small rows */
    cs_clk_entry e_inline[16];
    uint32_t s_inline[32];
} cs_clk;

void cs_clk_init(cs_clk *c);
void cs_clk_free(cs_clk *c);
/* Decodes a blob; CSTACK_EINVAL when malformed. */
int cs_clk_decode(cs_clk *c, const void *blob, size_t len);
/* Grows to at least n columns (new ones never written). */
int cs_clk_resize(cs_clk *c, size_t n);
/* Points column `col` (or the row slot when col == SIZE_MAX) at an entry
 * equal to `e`, adding it if needed. */
int cs_clk_set(cs_clk *c, size_t col, const cs_clk_entry *e);
/* Drops entries no slot references and encodes into `out` (reset first). */
int cs_clk_encode(cs_clk *c, cs_buf *out);
/* The entry of a column (NULL when never written). */
const cs_clk_entry *cs_clk_get(const cs_clk *c, size_t col);
const cs_clk_entry *cs_clk_row(const cs_clk *c);

/* ---- per-model sync info ------------------------------------------------- */

typedef struct cs_sync_model {
    int model;          /* model index */
    bool synced;
    bool has_table;     /* its clock table exists (bootstrapped) */
    char *clk_table;    /* "_cstack_clk_<Model>" */
    size_t ncols;       /* registry columns (field indices, blob order) */
    int *cols;          /* field index per blob column, -1 if the field is gone */
    int *tcols;         /* table column index (cid) per blob column, -1 */
    int pkcid[16];      /* table column index of each primary-key field */
    const char *seen_name; /* last table-name pointer the hook matched */
    char *sql_load;     /* clkrow.c: SELECT of one clock row by key */
    char *sql_store;    /* clkrow.c: upsert of one clock row */
    char *sql_insert;   /* clkrow.c: insert of one clock row unless it exists */
    char *sql_insert_new; /* clkrow.c: insert of a batch of new clock rows */
    char *sql_latest;   /* clkrow.c: the row with the highest version */
} cs_sync_model;

typedef struct cs_sync {
    cstack *db;
    const cstack_schema *schema; /* the runtime's, borrowed */
    unsigned char site[CS_SITE_LEN];
    char site_hex[2 * CS_SITE_LEN + 1];

    pthread_mutex_t mu; /* guards the clock and the site cache */
    uint64_t hlc;       /* last clock issued or seen */
    int64_t max_drift_ms;
    int64_t wall_offset_ms; /* added to the wall clock: tests only */

    /* The open write transaction on the writer connection. */
    bool tx_active;
    int64_t tx_ver;
    uint64_t tx_hlc;
    int64_t last_ver;   /* highest version known to be used */
    bool ready;         /* sync tables exist (bootstrapped) */
    bool has_txlog;     /* _cstack_txlog and _cstack_sync_state exist */

    cs_sync_model *models; /* one per schema model */
    size_t nmodels;

    unsigned char (*sites)[CS_SITE_LEN]; /* ordinal -> site id */
    size_t nsites;
    bool sites_stale;   /* a rollback may have removed sites the cache holds */

    /* Changes captured in the open transaction (capture.c), flushed to
     * _cstack_txlog just before it commits. */
    cs_buf captured;
    bool capture_failed;
    /* While bootstrap folds a log written under the schema before a
     * migration: that schema's model index -> this one's (-1: gone).  The
     * log names models by index, and a new model may shift them. */
    const int *log_models;
    size_t nlog_models;
} cs_sync;

/* clock.c */
uint64_t cs_hlc_now_wall(const cs_sync *s);
/* Issues a new local clock: max(wall, last + 1). */
uint64_t cs_hlc_tick(cs_sync *s);
/* Folds a remote clock into the local one, never past the wall clock plus
 * the maximum drift.  With `judge`, a clock beyond that is CSTACK_ECLOCK
 * (a peer or a server refusing it); without (a device taking what its
 * server relays, which the server judged), it is folded in up to there. */
int cs_hlc_observe(cs_sync *s, uint64_t remote, bool judge);
/* Runs db's clock `ms` ahead of the wall clock (behind when negative), as a
 * device whose clock is wrong would: for tests of clock skew. */
void cs_sync_test_wall_offset(cstack *db, int64_t ms);
int cs_sync_register_hooks(cs_sync *s, sqlite3 *conn);
/* Starts (if needed) the current transaction's version and clock. */
int cs_sync_tx(cs_sync *s, sqlite3 *conn);
/* Ordinal of a site id, inserting it into _cstack_sites when new. */
int cs_site_ordinal(cs_sync *s, sqlite3 *conn, const unsigned char site[CS_SITE_LEN],
                    uint32_t *ord);
/* Site id of an ordinal (NULL when unknown). */
const unsigned char *cs_site_id(cs_sync *s, uint32_t ord);
int cs_sync_load_sites(cs_sync *s, sqlite3 *conn);
int cs_sync_load_clock(cs_sync *s, sqlite3 *conn);
int cs_sync_state_put(sqlite3 *conn, const char *key, int64_t value);
int cs_sync_state_get(sqlite3 *conn, const char *key, int64_t *value);

/* capture.c */
void cs_capture_hook(void *ctx, sqlite3 *db, int op, const char *zdb, const char *table,
                     sqlite3_int64 key1, sqlite3_int64 key2);
void cs_capture_clear(cs_sync *s);
size_t cs_capture_mark_fn(void *ctx);
void cs_capture_reset_fn(void *ctx, size_t mark);
int cs_capture_flush(void *ctx, cstack *db);
/* Folds captured transactions (_cstack_txlog) into the clock tables; runs
 * inside a write scope before anything reads the clock tables. */
int cs_sync_materialize(cs_sync *s);
/* Records every existing row without a clock row as inserted now. */
int cs_sync_backfill(cs_sync *s, int mi);

/* clkrow.c -- one clock row by primary key (pk: changeset values). */
typedef struct cs_cs_value cs_cs_value;
int cs_sync_clkrow_sql(cs_sync_model *sm, const cs_model *m);
/* *cl is 0 (and clk empty) when the row has no clock row yet. */
int cs_clkrow_load(cs_conn *c, const cs_sync_model *sm, const cs_model *m,
                   const cs_cs_value *pk, uint64_t *cl, cs_clk *clk);
int cs_clkrow_store(cs_conn *c, const cs_sync_model *sm, const cs_model *m,
                    const cs_cs_value *pk, uint64_t cl, int64_t ver, const void *blob,
                    size_t len);
/* The same for a row that has no clock row yet: *stored false (and nothing
 * written) when it has one. */
int cs_clkrow_insert(cs_conn *c, const cs_sync_model *sm, const cs_model *m,
                     const cs_cs_value *pk, uint64_t cl, int64_t ver, const void *blob,
                     size_t len, bool *stored);
/* One row of cs_clkrow_insert_new. */
typedef struct cs_clkrow_new {
    const cs_cs_value *pk;
    uint64_t cl;
    const void *blob;
    size_t len;
} cs_clkrow_new;
/* Inserts the clock rows of cs_sql_batch_rows(m) rows in one statement:
 * *stored false (and nothing written) when one of them has one already. */
int cs_clkrow_insert_new(cs_conn *c, const cs_sync_model *sm, const cs_model *m, int64_t ver,
                         const cs_clkrow_new *rows, bool *stored);
/* Gives the clock row the version `ver` without changing its clocks: the
 * row became visible or hidden here, which exports since an earlier cursor
 * must carry (a merge hiding or showing a row, settle.c). */
int cs_clkrow_touch(cs_conn *c, const cs_sync_model *sm, const cs_model *m,
                    const cs_cs_value *pk, int64_t ver);

/* attach.c */
cs_sync *cs_sync_of(cstack *db);
int cs_sync_bootstrap(void *ctx, cstack *db, cs_buf *report);
int cs_sync_load_models(cs_sync *s, sqlite3 *conn);
/* Loads registry, sites and clock; marks the runtime ready to capture. */
int cs_sync_load_all(cs_sync *s, sqlite3 *conn);
/* Appends `"c1", "c2"` (the primary-key columns of model m). */
int cs_sync_pk_list(cs_buf *b, const cs_model *m, const char *prefix);

bool cs_table_exists(sqlite3 *conn, const char *name);
/* Requires a bootstrapped, synced runtime; sets the message otherwise. */
int cs_sync_require(cstack *db, cs_sync **out);

#endif
