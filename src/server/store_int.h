/*
 * store_int.h -- what the two halves of the SQLite server store share:
 * store_sqlite.c (open, push, close), store_sqlite_pull.c (pulls, checksums)
 * and store_sqlite_sites.c (which user owns each site).
 */
#ifndef CS_SERVER_STORE_INT_H
#define CS_SERVER_STORE_INT_H

#include <pthread.h>

#include "server/store.h"
#include "sync/sync_ext.h"

/* Checksums of recent (user, version) pairs: a thousand streams of one user
 * reaching a checkpoint at one version cost one scan. */
#define CS_SRV_SUM_CACHE 64

typedef struct cs_srv_sum {
    char *key; /* cs_srv_auth_key; NULL = empty slot */
    int64_t version;
    uint64_t sum;
} cs_srv_sum;

struct cs_srv_store {
    cstack *db;
    const cstack_schema *schema; /* borrowed from db */
    bool local_reads;            /* read policies read only the row and auth() */
    pthread_mutex_t cache_mu;
    cs_srv_sum cache[CS_SRV_SUM_CACHE];
    size_t cache_next;   /* round-robin replacement */
    unsigned max_sites;  /* sites one user may own (store_sqlite_sites.c) */
    int64_t site_ttl_ms; /* a site not seen for this long is collected */
    /* The PostgreSQL store (store_pg*.c) wrapping this one as its working
     * copy; NULL for a plain SQLite store. */
    struct cs_pg *pg;
    struct cs_srv_notes *notes; /* store_sqlite_notes.c */
};

/* _cstack_srv_sent.present of a row the device pushed and hides by itself
 * (0: told to forget it, 1: holds it), with `at` the version of that push:
 * a pull sends no drop for it while the server hides it too and the row has
 * not changed since, else a drop or its deletion. */
#define CS_SRV_HELD_HIDDEN 2

/* Primary-key values as they travel (storage classes) to API values; text and
 * blobs borrow from `pk`. */
void cs_srv_pk_values(const cs_cs_value *pk, size_t npk, cstack_value *out);

/* The current version, made durable first.  A version can be used up
 * without anything recording it (a merge that changed nothing, or one that
 * rolled back), and after a restart the engine would hand it out again; a
 * cursor given to a device must never be reused for a later commit, so the
 * engine's 'ver' state is raised to it.  Call inside a write scope. */
int cs_srv_durable_version(cs_srv_store *st, int64_t *version);

/* The pull method (store_sqlite_pull.c). */
int cs_srv_sqlite_pull(cs_srv_store *st, const cs_srv_pull *reqs, size_t n, cs_srv_pull_result *res,
                       cs_srv_err *err);

/* The user id (`sub`) a site is bound to: "" for a request without one. */
const char *cs_srv_sub_of(const cs_auth *auth);

/* Binds `site` (32 hex digits) to the user of `auth` when nobody owns it,
 * refreshes when it was last seen, and sets *foreign when another user owns
 * it (then nothing was changed).  Call inside a write scope. */
int cs_srv_site_use(cs_srv_store *st, const cs_auth *auth, const char *site, bool *foreign);
/* The same for user id `sub` and the site's 16 bytes (a binding held with
 * the notes, store_sqlite_notes.c). */
int cs_srv_site_use_sub(cs_srv_store *st, const char *sub, const unsigned char site[CS_SITE_LEN],
                        bool *foreign);

/* The same question read on `c` (a read snapshot), changing nothing:
 * *foreign when another user owns the site, else *bind when it is new
 * (cs_srv_site_use must bind it, in a write scope) and *seen when its last
 * sighting is due (cs_srv_site_use, or a sighting recorded with the
 * notes). */
int cs_srv_site_peek(cs_srv_store *st, cs_conn *c, const cs_auth *auth, const char *site,
                     bool *foreign, bool *bind, bool *seen);

/* Forgets sites not seen for site_ttl_ms and their records: at most `limit`
 * of them, or all when limit is 0.  Call inside a write scope or at open. */
int cs_srv_sites_collect(cs_srv_store *st, cs_conn *c, int limit);

/* Fills `err` with the refusal of a site owned by another user. */
void cs_srv_site_refuse(cs_srv_err *err);

/* Runs fn(ctx, row) on every row of the pushed changeset, in order, until
 * one returns non-zero (returned); a malformed changeset is CSTACK_EINVAL.
 * The row borrows from the changeset and lives for the call. */
int cs_srv_each_row(const cstack_schema *s, const cs_srv_push *req,
                    int (*fn)(void *ctx, const cs_cs_row *row), void *ctx);

/* The refusal of a row by a write policy (op, phase: CS_CHECK_*), naming
 * model, key and user, into out. */
void cs_srv_refusal(char *out, size_t cap, const cs_model *m, const cs_cs_value *pk,
                    const cs_auth *auth, int op, int phase);

/* Looks in the read snapshot `c` for a row of the push that its merge
 * refuses whatever commits before it (store_sqlite_precheck.c): on finding
 * one, *refused, `msg` says which, and CSTACK_EVALIDATION is returned.
 * Nothing is written. */
int cs_srv_precheck(cs_srv_store *st, cs_conn *c, const cs_srv_push *req, bool *refused,
                    char *msg, size_t cap);

/* ---- notes (store_sqlite_notes.c) --------------------------------------------
 *
 * What pulls record about each device (_cstack_srv_sent), held in memory
 * until a write scope writes it, so that a pull need not wait for the write
 * lock.  A pull looks rows up with cs_srv_notes_get before the table; every
 * write scope of the store that writes _cstack_srv_sent or the sites writes
 * the held notes first (cs_srv_notes_drain) and ends with
 * cs_srv_scope_end. */

typedef struct cs_srv_notes cs_srv_notes;

/* The notes held in memory at most, in bytes, unless configured. */
#define CS_SRV_NOTES_MAX ((size_t)32 << 20)

/* A pull's registration while it reads (on its stack). */
typedef struct cs_srv_notes_reader {
    uint64_t gen; /* drains committed before its snapshot */
    struct cs_srv_notes_reader *prev, *next;
} cs_srv_notes_reader;

/* One request's notes for cs_srv_notes_add; borrowed for the call. */
typedef struct cs_srv_note_set {
    const unsigned char *site; /* CS_SITE_LEN bytes */
    const char *sub;           /* cs_srv_sub_of */
    const cs_buf *notes;       /* (varint model, varint key length, key, present byte)* */
    int64_t at;                /* the answer's version */
    int64_t seen;              /* a sighting (wall-clock ms) to record; 0: none */
    bool bind;                 /* the site is new: bind it to `sub` before its notes */
} cs_srv_note_set;

/* Makes the notes of store `st` (max_bytes 0: CS_SRV_NOTES_MAX). */
int cs_srv_notes_new(cs_srv_store *st, size_t max_bytes, cs_srv_notes **out);
/* Stops the flusher, writes what is still held (a failure loses it, as a
 * crash would), and frees.  Call before the database closes; NULL is
 * accepted. */
void cs_srv_notes_free(cs_srv_notes *n);
/* Registers a pull: runs first_read(ctx), the first read of its snapshot,
 * under the notes' mutex.  Whatever it returns, end with
 * cs_srv_notes_leave. */
int cs_srv_notes_enter(cs_srv_notes *n, cs_srv_notes_reader *r, int (*first_read)(void *ctx),
                       void *ctx);
void cs_srv_notes_leave(cs_srv_notes *n, cs_srv_notes_reader *r);
/* The note of (site, sub, model, key) that the registered pull `r` must
 * use instead of its snapshot's _cstack_srv_sent: true and *present, *at
 * set, or false (the table answers). */
bool cs_srv_notes_get(cs_srv_notes *n, const cs_srv_notes_reader *r, const unsigned char *site,
                      const char *sub, int model, const void *key, size_t klen, int *present,
                      int64_t *at);
/* Holds the notes of `count` requests, all or nothing: CSTACK_EBUSY, and
 * nothing held, when they would pass the bound (unless `force`).  Out of
 * memory may leave some held (a note of an answer never sent is harmless:
 * it counts only once the device pulls from its version).  A set that
 * binds a site another user's binding already holds is not held and sets
 * foreign[i] (`foreign`: NULL, or one flag per set). */
int cs_srv_notes_add(cs_srv_notes *n, const cs_srv_note_set *sets, size_t count, bool force,
                     bool *foreign);
/* Wakes the flusher (starting it the first time): it waits for the write
 * lock and writes what is held.  An error when it cannot start (the caller
 * then writes them itself). */
int cs_srv_notes_defer(cs_srv_notes *n);
/* Writes every held note, in the caller's write scope; the scope must end
 * with cs_srv_scope_end. */
int cs_srv_notes_drain(cs_srv_store *st);
/* Ends a write scope of the store (cs_write_end): the notes its drain wrote
 * count as written if it committed, else they are held again. */
int cs_srv_scope_end(cs_srv_store *st, int rc);

/* The claim method (store_sqlite_sites.c). */
int cs_srv_sqlite_claim(cs_srv_store *st, const cs_auth *auth, const char *site, cs_srv_err *err);

#endif
