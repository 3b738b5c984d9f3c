/*
 * runtime_int.h -- the runtime's own state, private to src/store/.
 *
 * Only the files of src/store/ include this header: layers above the store (sync, the
 * server, the client, the envelope) use the functions of store.h and never
 * see a field of struct cstack, so the store can change how it keeps its
 * connections, locks and transactions without touching them.
 */
#ifndef CS_RUNTIME_INT_H
#define CS_RUNTIME_INT_H

#include "store/store.h"

typedef struct cs_sub {
    uint64_t id;
    char *pattern;      /* NULL = all */
    cstack_event_fn fn;
    void *ctx;
} cs_sub;

typedef struct cs_pending {
    char *name;         /* "Note.created" */
    int model;
    cstack_row *row;
} cs_pending;

struct cstack {
    uint64_t serial;        /* unique among the handles of this process (runtime.c) */
    cstack_schema *schema;
    const cs_store_ext *ext;
    void *ext_ctx;
    bool memory;
    char *path;
    int busy_ms;

    pthread_mutex_t wlock;  /* held by the writer for a whole transaction */
    int depth;              /* transaction nesting of the lock holder; 0 = none */
    unsigned flags;         /* CS_WRITE_* of the outermost level, while depth > 0 */
    cs_conn writer;
    cs_shape **shapes;      /* every model's full-row shape, by model index */
    cs_rowsql *rowsql;      /* every model's row SQL (src/sql/rowsql.c) */

    pthread_mutex_t plock;  /* guards the reader pool */
    pthread_cond_t pcond;
    cs_conn *readers;
    int nreaders;
    int maxreaders;

    pthread_mutex_t slock;  /* guards subscribers */
    cs_sub *subs;
    size_t nsubs;
    uint64_t next_sub;

    /* Events of the open transaction, delivered after the outermost commit;
     * `marks` remembers how many existed when each savepoint began. */
    cs_pending *pending;
    size_t npending, cappending;
    size_t marks[64];
    size_t cap_marks[64];   /* capture marks of each level */

    /* The transaction hook (cs_store_set_txhook) and its context. */
    const cs_txhook *txhook;
    void *txhook_ctx;

    /* Live queries: the layer's context and hooks (set once, under wlock),
     * and the tables the writer changed since its transaction began
     * (update hook; guarded by wlock). */
    void *_Atomic live_ctx;
    const cs_live_hooks *live;
    char **changed;         /* names of the tables changed (copies) */
    size_t nchanged, capchanged;
    bool changed_all;       /* a change the hook cannot name */
};


/* changes.c: the tables a write changed, for the live layer.  The write
 * scope calls cs_changes_end when its outermost level (or a lone statement
 * under cs_write_lock) is over: committed reports them, else they are
 * forgotten. */
void cs_changes_end(cstack *db, bool committed);
void cs_changes_free(cstack *db);

#endif
