/*
 * store_int.h -- what the two halves of the SQLite server store share:
 * store_sqlite.c (open, push, close) and store_sqlite_pull.c (pulls, checksums).
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
    size_t cache_next; /* round-robin replacement */
};

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

#endif
