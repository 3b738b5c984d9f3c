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

/* Binds `site` (32 hex digits) to the user of `auth` when nobody owns it,
 * refreshes when it was last seen, and sets *foreign when another user owns
 * it (then nothing was changed).  Call inside a write scope. */
int cs_srv_site_use(cs_srv_store *st, const cs_auth *auth, const char *site, bool *foreign);

/* The same question read on `c` (a read snapshot), changing nothing:
 * *foreign when another user owns the site, else *must_use when
 * cs_srv_site_use has something to write (the site is new, or its last
 * sighting is due). */
int cs_srv_site_peek(cs_srv_store *st, cs_conn *c, const cs_auth *auth, const char *site,
                     bool *foreign, bool *must_use);

/* Forgets sites not seen for site_ttl_ms and their records: at most `limit`
 * of them, or all when limit is 0.  Call inside a write scope or at open. */
int cs_srv_sites_collect(cs_srv_store *st, cs_conn *c, int limit);

/* Fills `err` with the refusal of a site owned by another user. */
void cs_srv_site_refuse(cs_srv_err *err);

/* The claim method (store_sqlite_sites.c). */
int cs_srv_sqlite_claim(cs_srv_store *st, const cs_auth *auth, const char *site, cs_srv_err *err);

#endif
