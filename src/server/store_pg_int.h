/*
 * store_pg_int.h -- what the files of the PostgreSQL store share
 * (docs/postgres.md):
 *
 *   store_pg.c       the method table, open / close, catching up before each
 *                    method, the listener thread
 *   store_pg_tx.c    the transaction hook: the keys each write transaction
 *                    touches, and writing them to PostgreSQL before COMMIT
 *   store_pg_copy.c  the working copy's tables, row records, saving and
 *                    loading the whole copy, applying log entries
 *
 * Threads.  The main connection `conn` is used only by the thread holding
 * the working copy's write lock (the hook runs there, and catching up and
 * loading run in a write scope); the listener has its own connection.
 */
#ifndef CS_SERVER_STORE_PG_INT_H
#define CS_SERVER_STORE_PG_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "server/pg.h"
#include "server/store_int.h"

/* The largest primary key a table of the copy may have. */
#define PG_MAX_PK 16
/* A log entry is split into parts of at most this many bytes. */
#define PG_LOG_PART ((size_t)8 << 20)
/* The advisory lock every server transaction takes (one for the database). */
#define PG_LOCK_KEY "7262894612781653"
/* The copy's own table, never replicated: the log seq it has applied. */
#define PG_LOCAL_TABLE "_cstack_pg_local"

/* One table of the working copy. */
typedef struct pg_table {
    char *name;
    int model;        /* the typed model (cs_pg_typed_table), or -1: side rows */
    bool by_rowid;    /* keyed by the rowid (an INTEGER PRIMARY KEY, or none) */
    bool rowid_col;   /* no declared key: the rowid is the record's first value */
    size_t npk;       /* key columns when !by_rowid */
    int pkcid[PG_MAX_PK];
    size_t nvals;     /* values in a row record */
    char **names;     /* their column names ("rowid" first when rowid_col) */
    char *sql_get;    /* the record of one row by key (?1..) */
    char *sql_put;    /* INSERT OR REPLACE of a record (?1..) */
    char *sql_del;    /* DELETE of one row by key */
    char *sql_all;    /* every row: its key values, then its record */
    const char *seen; /* the name pointer SQLite passed last (the row hook) */
} pg_table;

/* The keys one write transaction touched: records of varint(table index)
 * varint(key length) key (changeset values), each once. */
typedef struct pg_touched {
    cs_buf keys;
    uint32_t *slots; /* offsets + 1 into keys; 0 empty */
    size_t nslots, n;
    bool failed;     /* out of memory, or a table unknown to the catalog */
    char unknown[128];
} pg_touched;

typedef struct cs_pg {
    cs_srv_store *inner; /* the SQLite store on the working copy */
    const cstack_schema *schema;
    char *dir;           /* the private temp dir of the copy */
    int lock_fd;         /* held (flock) while the copy lives: see make_dir */
    char *target;        /* the --db value */
    PGconn *conn;
    cs_pg_typed *typed;
    pg_table *tables;
    size_t ntables;
    /* The write transaction in progress (the write lock's holder). */
    bool in_tx;      /* a PostgreSQL transaction is open for it */
    bool applying;   /* our own catch-up or load: the hook stays out */
    bool tx_local;   /* not a merge: sync captured its writes */
    pg_touched touched;
    _Atomic int64_t applied; /* the last log seq in the copy */
    int64_t committed_seq;    /* the seq the open transaction wrote */
    _Atomic int64_t seen_seq; /* the newest seq the listener heard of */
    _Atomic bool backend;     /* the listener heard of backend writes */
    _Atomic bool down;        /* the connection is lost: requests get 503 */
    /* The listener. */
    PGconn *listen;
    pthread_t thread;
    bool thread_on;
    _Atomic bool stop;
    void (*changed)(void *ctx);
    void *changed_ctx;
    int64_t reset_ms; /* the last attempt to reconnect */
} cs_pg;

/* store_pg_copy.c */

/* Reads the copy's tables (all but PG_LOCAL_TABLE) into pg->tables; call
 * holding the copy's write lock. */
int pg_catalog_load(cs_pg *pg, cs_srv_err *err);
void pg_catalog_free(cs_pg *pg);
/* The table named `name`, or NULL. */
pg_table *pg_table_find(cs_pg *pg, const char *name);
/* Appends the record of the row `key` (changeset values) of `t` to `out`:
 * *exists false (nothing appended) when the copy has no such row. */
int pg_row_record(cs_pg *pg, const pg_table *t, const unsigned char *key, size_t keylen,
                  cs_buf *out, bool *exists);
/* Writes the copy's whole state into PostgreSQL (a new database's first
 * state, or after a migration), replacing what it held. */
int pg_save_all(cs_pg *pg, cs_srv_err *err);
/* Replaces the copy's whole state with PostgreSQL's; call in a merge scope
 * with pg->applying set. */
int pg_load_all(cs_pg *pg, cs_srv_err *err);
/* Applies one log entry's rows to the copy (in the caller's merge scope). */
int pg_apply_entry(cs_pg *pg, const unsigned char *p, size_t len, cs_srv_err *err);
/* The copy's applied seq, and setting it (in the caller's write scope). */
int pg_local_get(cs_pg *pg, int64_t *seq);
int pg_local_set(cs_pg *pg, int64_t seq);

/* Side rows in batches of one statement each (store_pg_copy.c). */
typedef struct pg_side_batch {
    cs_buf tbl, key, row; /* binary arrays' elements */
    size_t n;
    bool deletes;
} pg_side_batch;
int pg_side_add(cs_pg *pg, pg_side_batch *b, const char *tbl, const void *key, size_t keylen,
                const void *row, size_t rowlen, cs_srv_err *err);
int pg_side_flush(cs_pg *pg, pg_side_batch *b, cs_srv_err *err);
void pg_side_free(pg_side_batch *b);

/* Log record operations: a row, a deletion, and the column names of the
 * table's later records in the entry (pg_layout_record). */
enum { PG_REC_PUT = 1, PG_REC_DEL = 2, PG_REC_COLS = 3 };
/* Appends the PG_REC_COLS record of `t` to a log entry. */
int pg_layout_record(cs_buf *log, const pg_table *t);

/* store_pg_tx.c */
extern const cs_txhook cs_pg_txhook;
/* Begins the PostgreSQL transaction of a server write: the lock, the
 * server setting, and *seq the newest log seq. */
int pg_tx_open(cs_pg *pg, int64_t *seq, cs_srv_err *err);
void pg_touched_free(pg_touched *t);
/* Whether this thread's last write began behind PostgreSQL (and clears it). */
bool pg_behind_take(void);
/* Marks the next write scope this thread opens as the store's own catch-up
 * or load (pg->applying for its duration): call right before opening it. */
void pg_applying_next(void);

/* A cs_srv_err's message as the calling thread's cstack error (cs_err). */
int pg_fail(const cs_srv_err *err);

#endif
