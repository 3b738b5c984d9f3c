/*
 * sync_ext.h -- the sync engine's interface for the sync server (and any
 * other trusted layer above it): exports filtered per reader, merges with a
 * per-row check, and the visible-state checksum.
 *
 * Drops: a changeset row with causal length 0 tells a replica to forget the
 * row entirely (data, parked copy and clock row) without deleting it: the
 * row stopped being visible to that replica's user.  Only a server emits
 * them (and a device undoing a batch its server refused, relay.c); the
 * server's own merges refuse them.
 */
#ifndef CS_SYNC_EXT_H
#define CS_SYNC_EXT_H

#include "sync/changeset.h"

/* What a filtered export does with one row. */
typedef enum cs_export_decision {
    CS_EXPORT_SKIP,     /* not sent */
    CS_EXPORT_CHANGES,  /* the columns changed after `since` (and the cl), but
                         * not those the reader itself wrote (echoes) */
    CS_EXPORT_FULL,     /* every column: the reader has not got the row */
    CS_EXPORT_NEW,      /* every column but those the reader wrote: nothing
                         * says the reader lacks the row, and what it wrote
                         * it holds */
    CS_EXPORT_DROP      /* a drop: the reader must forget the row */
} cs_export_decision;

/* Decides for one row (`pk` holds the model's key values; `ver` the last
 * local version that touched the row; `alive` its causal length is odd;
 * `extra` the value of the page's extra expression for the row, 0 when the
 * page has none).  Returns 0 or a CSTACK_E* code (which aborts the export). */
typedef int (*cs_export_filter)(void *ctx, int model, const cs_cs_value *pk, int64_t ver,
                                bool alive, int64_t extra, cs_export_decision *decision);

/* The largest encoded primary key a page position holds: a page never ends
 * on a row with a longer key (it goes on to the next row). */
#define CS_EXPORT_KEY_MAX 512

/* A place in an export's order: rows by (version, model index, primary
 * key), the key ordered as its clock table's index orders it. */
typedef struct cs_export_pos {
    int64_t ver;
    int model;
    size_t keylen;
    unsigned char key[CS_EXPORT_KEY_MAX]; /* the key's values, changeset-encoded */
} cs_export_pos;

/* One page of a filtered export.  In: the bounds, where to resume, the
 * reader and the extra expression; out: whether rows remain and where the
 * page ended. */
typedef struct cs_export_page {
    size_t max_rows;     /* rows sent per page; 0: no bound */
    size_t max_bytes;    /* changeset bytes per page (about); 0: no bound */
    size_t max_examined; /* rows looked at per page, sent or not; 0: no bound */
    const cs_export_pos *after; /* resume after this row; NULL: from the start */
    /* The reader's site id: the columns whose winning write is its own are
     * not sent back to it (CS_EXPORT_CHANGES, CS_EXPORT_NEW).  NULL: none. */
    const unsigned char *reader;
    /* Appends to q a SQL expression over the model's row (alias t0; NULL
     * columns when the row is deleted or hidden) whose value reaches the
     * filter as `extra`.  NULL: none. */
    int (*extra)(void *ctx, int model, cs_sqlb *q);
    bool more;           /* out: rows remain after `last` */
    cs_export_pos last;  /* out, when more: the last row looked at */
    int64_t examined;    /* out: rows looked at */
    int64_t sent;        /* out: rows in the changeset */
} cs_export_page;

/* Exports rows whose version is past `scan_from` (pass `since` for a normal
 * pull, 0 to re-examine every row), with columns selected per the filter's
 * decision relative to `since`, in (version, model, key) order.  With a
 * `page` (NULL: everything) the export stops once a bound is reached and
 * says where.  Output and cursor as cstack_changes_export (the cursor is the
 * version of the snapshot; it is a resume point only when !page->more).
 * It reads only through `c`, the caller's read snapshot (cs_read_begin), and
 * takes no lock: a merge may commit meanwhile.  The capture log is not
 * folded first, so it is for a runtime whose writes are all merges (the
 * server's). */
int cs_changes_export_filtered(cstack *db, cs_conn *c, int64_t scan_from, int64_t since,
                               cs_export_filter filter, void *ctx, cs_export_page *page,
                               void **out, size_t *len, int64_t *cursor);

/* The highest version the snapshot on `c` holds.  Versions are taken under
 * the write lock in commit order, so a snapshot holds every row of every
 * version up to this one, and any later commit gets a greater one. */
int cs_export_snapshot_version(cstack *db, cs_conn *c, int64_t *ver);

/* Counts the clock rows an export of `scan_from` would still look at after
 * `pos` (every row past scan_from when NULL), read on `c`: an upper bound of
 * the rows it sends. */
int cs_export_count(cstack *db, cs_conn *c, int64_t scan_from, const cs_export_pos *pos,
                    int64_t *n);

/* Decodes an encoded key of model `mi` into npk values borrowing from
 * `key`; CSTACK_EINVAL when it is not exactly such a key. */
int cs_export_key_decode(const cstack_schema *s, int mi, const void *key, size_t len,
                         cs_cs_value *pk);

enum { CS_CHECK_CREATE = 1, CS_CHECK_UPDATE = 2, CS_CHECK_DELETE = 3 };
enum { CS_CHECK_BEFORE = 1, CS_CHECK_AFTER = 2 };

/* Called during a merge for each row the merge changes, inside the merge's
 * transaction: once before the row is written (phase BEFORE, the row as it
 * was; skipped for a create) and once after (phase AFTER, the row as merged;
 * skipped for a delete).  `model` indexes the schema, `pk` holds its key
 * values (borrowed for the call), and `c` is the merge's own connection to
 * evaluate the row on (it sees the merge's writes so far; use it only during
 * the call).  Returning non-zero (with cs_err set) aborts the whole merge:
 * the caller's scope rolls it back. */
typedef int (*cs_apply_check)(void *ctx, cs_conn *c, int model, const cs_cs_value *pk, int op,
                              int phase);

typedef struct cs_apply_opts {
    cs_apply_check check;
    void *ctx;
    bool refuse_drops;  /* a server never lets a client make it forget rows */
    /* Merge clocks past the wall clock plus the maximum drift instead of
     * refusing the changeset (CSTACK_ECLOCK): a device merging what its
     * server relays, which the server judged against its own clock. */
    bool trust_clocks;
    /* The columns this replica wrote itself that win (it had forgotten the
     * row, and its server sends it back) are not pending uploads. */
    bool own_echoes_acked;
} cs_apply_opts;

/* Merges a changeset (as cstack_changes_apply, with `opts`, NULL ok) inside
 * the calling thread's merge write scope (cs_write_begin_opts with
 * CS_WRITE_MERGE), which it does not end: on failure (a CSTACK_E* code,
 * message via cs_err) the scope's owner must roll it back; on success the
 * owner may write more in the same transaction before it commits.  Each row
 * is decoded once and checked just before it is merged.  `stats` may be
 * NULL; it is filled only on success. */
int cs_merge(cstack *db, const void *changeset, size_t len, const cs_apply_opts *opts,
             cstack_apply_stats *stats);

/* Merges a changeset a server relays (as cstack_changes_apply, in a
 * transaction of its own), with trust_clocks: relay.c. */
int cs_changes_apply_relayed(cstack *db, const void *changeset, size_t len,
                             cstack_apply_stats *stats);

/* Forgets every row `changeset` (made by this database, e.g. a batch a
 * server refused) carries, as drops would, then runs `also` (NULL ok) on the
 * write connection in the same transaction: a non-zero return (with cs_err
 * set) rolls both back.  Returns 0 or a CSTACK_E* code; cannot run inside a
 * transaction. */
int cs_changes_forget(cstack *db, const void *changeset, size_t len,
                      int (*also)(sqlite3 *conn, void *ctx), void *ctx);

/* Forgets, as drops would, every row of the models flagged in `models`
 * (indexed by model, nmodels long) except those whose clock row was touched
 * after version `keep_after` (pending local writes), including rows written
 * into the tables by another program; then runs `also` (NULL ok) in the
 * same transaction.  *rows receives the number of rows forgotten.  Returns
 * 0 or a CSTACK_E* code; cannot run inside a transaction. */
int cs_changes_forget_models(cstack *db, const bool *models, int64_t keep_after,
                             int (*also)(sqlite3 *conn, void *ctx), void *ctx, int64_t *rows);

/* The checksum of the visible rows of one model (`model` its index): the
 * part of cstack_sync_checksum it contributes; 0 with *synced false for a
 * model that is not synced. */
int cs_sync_model_checksum(cstack *db, int model, bool *synced, uint64_t *sum);

/* The contribution of one visible row to a state checksum: the sum (mod
 * 2^64) over rows of FNV-1a-64 of "Model\0<row JSON>". */
uint64_t cs_row_checksum(const char *model, const char *json, size_t len);

/* Reloads what the sync engine keeps of the database in memory (column
 * registry, sites, clock, this database's site id) after its tables were
 * rewritten underneath it (a server's working copy loaded or caught up from
 * PostgreSQL).  Call holding the write lock. */
int cs_sync_reload(cstack *db);

/* Folds the captured local transactions into the clock tables now, inside
 * the caller's write scope (after the capture's own before_commit): a
 * server's export reads the clock tables without folding, so local writes
 * of a server (a PostgreSQL backend's, applied by the store) are folded as
 * they commit. */
int cs_sync_fold(cstack *db);

#endif
