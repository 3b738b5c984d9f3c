/*
 * store.h -- the embedded runtime's internal interfaces, for src/store/ and
 * for the layers built on it (sync, the server, the client, the envelope).
 *
 *   runtime_int.h  struct cstack: included by src/store/ only
 *   runtime.c      open/close, the write lock, transactions (the one
 *                  transaction manager), readers, SQLite errors
 *   bootstrap.c    cstack_bootstrap: internal tables, creation, migration
 *   conn.c         one SQLite connection with its prepared-statement cache
 *   row.c          result rows, their shapes and JSON form
 *   filter.c       the public filter builders
 *   render.c       SQL for filters, unique keys and column lists; binding
 *   query.c        every read delegate
 *   aggregate.c    the aggregate delegate
 *   write.c        create / update / upsert / delete delegates
 *   events.c       @@audit journal, @@emit events and the outbox
 *
 * Concurrency: a runtime has one write connection guarded by a lock, and for
 * file databases a pool of read-only connections (WAL lets them read while a
 * write is in progress).  A transaction belongs to the thread that began it;
 * that thread's reads use the write connection so they see its own
 * uncommitted writes.
 */
#ifndef CS_STORE_H
#define CS_STORE_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "cstack.h"
#include "schema/schema.h"
#include "sql/sql.h"
#include "util/buf.h"

typedef struct cs_shape cs_shape;
typedef struct cs_store_ext cs_store_ext;

/* ---- connections ------------------------------------------------------- */

typedef struct cs_stmt_slot {
    uint64_t key;       /* 0 = empty */
    sqlite3_stmt *stmt;
} cs_stmt_slot;

#define CS_STMT_CACHE 128

typedef struct cs_conn {
    sqlite3 *db;
    cs_stmt_slot cache[CS_STMT_CACHE];
    /* Statements evicted from the cache while a caller was still stepping
     * them (a scan whose rows trigger lookups): finalized once done. */
    sqlite3_stmt **retired;
    size_t nretired;
    bool busy;          /* handed out by the reader pool */
} cs_conn;

int cs_conn_open(cs_conn *c, const char *path, bool readonly, bool memory, int busy_ms,
                 char *err, size_t errlen);
/* As cs_conn_open on the VFS named `vfs` (NULL = the default one). */
int cs_conn_open_vfs(cs_conn *c, const char *path, const char *vfs, bool readonly, bool memory,
                     int busy_ms, char *err, size_t errlen);
/* Opens a runtime (see cstack_open) with an optional extension. */
int cs_store_open(const cstack_schema *schema, const char *path, bool memory,
                  const cstack_open_options *opts, const cs_store_ext *ext, void *ext_ctx,
                  cstack **out);
/* Runs the extension's conn_init on a connection of this runtime. */
int cs_store_conn_init(cstack *db, sqlite3 *conn, bool writer, char *err, size_t errlen);
void cs_conn_close(cs_conn *c);
/* A prepared statement for `sql`, cached under `key` (any non-zero value that
 * identifies the SQL; 0 means "hash the text", which costs a pass over the
 * text and a comparison on every call: keep it for statements that do not
 * run per row).  The statement is reset, and for key 0 its bindings are
 * cleared: callers that choose a key bind every parameter of the statement.
 * Returns NULL on error (message in the connection). */
sqlite3_stmt *cs_conn_prepare(cs_conn *c, uint64_t key, const char *sql, size_t len);
/* The same for a row statement of the runtime's cs_rowsql. */
sqlite3_stmt *cs_conn_prepare_row(cs_conn *c, const cs_rowstmt *st);
uint64_t cs_hash64(const void *p, size_t n);
/* Keys with this bit are chosen by callers and identify their SQL without
 * comparing text.  The bits below it say whose key it is, so that two owners
 * never pick the same one: CS_KEY_ROWSQL marks the keys of row statements
 * (sql/sql.h, below 2^56, bit 62), CS_KEY_CONST those of constant statements
 * (bit 61), CS_KEY_CLKROW those of clock-row statements (bit 60). */
#define CS_KEY_CUSTOM (1ull << 63)
#define CS_KEY_ROWSQL (CS_KEY_CUSTOM | 1ull << 62)
/* The clock-row statements of sync (sync/clkrow.c): one per model index and
 * kind, whose text depends only on the model's key columns. */
#define CS_KEY_CLKROW(model, kind)                                                                \
    (CS_KEY_CUSTOM | 1ull << 60 | (uint64_t)(kind) << 32 | (uint64_t)(uint32_t)(model))
/* Statements whose text is a constant and that run once per row get one key
 * each, listed here so that no two share one. */
enum cs_const_stmt {
    CS_STMT_PARKED_GET = 1,
    CS_STMT_PARKED_PUT,
    CS_STMT_PARKED_DEL,
    CS_STMT_PARKED_ANY,
    CS_STMT_AUDIT_INSERT,
    CS_STMT_OUTBOX_INSERT,
    CS_STMT_PARKED_REASON,
};
#define CS_KEY_CONST(id) (CS_KEY_CUSTOM | 1ull << 61 | (uint64_t)(id))
/* The capture's constant statements (sync/capture.c) take CS_KEY_CONST ids
 * from 0x100 on, apart from the list above, so both can grow. */
enum cs_capture_stmt { CS_STMT_TXLOG_APPEND = 0x100 };

/* ---- the runtime --------------------------------------------------------- */

/* A layer above the store (sync) extends it through this method table, so
 * the store never refers to the layers built on it.  Every method may be
 * NULL. */
struct cs_store_ext {
    /* Called for every new connection (writer first, then readers). */
    int (*conn_init)(void *ctx, sqlite3 *conn, bool writer);
    /* Called by bootstrap inside its transaction, after the store's own
     * tables are current; appends report lines. */
    int (*bootstrap)(void *ctx, cstack *db, cs_buf *report);
    /* Called by cstack_close before the connections close. */
    void (*destroy)(void *ctx);
    /* The size of what has been captured so far, and a truncation back to
     * such a size (a savepoint or statement that rolled back). */
    size_t (*capture_mark)(void *ctx);
    void (*capture_reset)(void *ctx, size_t mark);
    /* Called inside the outermost transaction just before COMMIT; an error
     * rolls the transaction back. */
    int (*before_commit)(void *ctx, cstack *db);
};

/* A layer that mirrors every write transaction elsewhere (the PostgreSQL
 * server store) observes the runtime's outermost transactions through this
 * table.  Every method may be NULL.  All run on the writer's thread,
 * holding the write lock. */
typedef struct cs_txhook {
    /* Right after BEGIN IMMEDIATE of an outermost level (flags: its
     * CS_WRITE_*); an error rolls back and the begin fails with it. */
    int (*begin)(void *ctx, cstack *db, unsigned flags);
    /* Every row change on the write connection (SQLite's preupdate hook:
     * `op` SQLITE_INSERT/UPDATE/DELETE, the rowids key1 (old) and key2
     * (new)), in every table and every kind of scope.  Read the key with
     * sqlite3_preupdate_old/new; run no SQL. */
    void (*row)(void *ctx, sqlite3 *conn, int op, const char *table, sqlite3_int64 key1,
                sqlite3_int64 key2);
    /* After the extension's before_commit, last before COMMIT; an error
     * rolls the transaction back. */
    int (*before_commit)(void *ctx, cstack *db);
    /* When the outermost level is over, committed or not. */
    void (*end)(void *ctx, cstack *db, bool committed);
} cs_txhook;

/* Installs (NULL: removes) the transaction hook; `h` and ctx must outlive
 * it.  Call while no transaction is open. */
void cs_store_set_txhook(cstack *db, const cs_txhook *h, void *ctx);
/* Passes one row change to the hook's row method, if any (for the
 * preupdate hook of the layer that owns it, sync/capture.c). */
void cs_store_row_changed(cstack *db, sqlite3 *conn, int op, const char *table,
                          sqlite3_int64 key1, sqlite3_int64 key2);
/* Whether a hook observes rows (the capture must keep a preupdate hook
 * even where it records nothing itself). */
bool cs_store_watches_rows(const cstack *db);

/* The one error sink (runtime.c).  cs_err sets the calling thread's message
 * (printf-style), files it as the last failure of the handle named by the
 * thread's latest cs_enter (cstack_errmsg), and returns `code`. */
int cs_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Names the handle the calling thread works on from now: every public entry
 * point that takes a handle calls it first (NULL: none).  Cheap (two
 * thread-local stores); needs no lock. */
void cs_enter(const cstack *db);
/* The calling thread's last message, whatever handle it was on ("no error"
 * when none); for internal callers reporting an internal call's failure.
 * Valid until the thread's next failure. */
const char *cs_errmsg_last(void);
/* Translates an SQLite failure on `conn` into a CSTACK_E* code with a message
 * naming model fields where possible. */
int cs_err_sqlite(const cs_model *m, sqlite3 *conn, int rc);
int cs_err_sqlite_named(const cstack_schema *s, const cs_model *m, sqlite3 *conn, int rc);

/* ---- the store's internal API for the layers above it ----------------------
 *
 * Sync, the server, the client and the envelope reach a runtime only through
 * these functions (struct cstack is defined in runtime_int.h, which only
 * src/store/ includes).  Pointers they return are borrowed from the runtime
 * and live as long as it does unless a comment says otherwise. */

/* The extension context `db` was opened with (cs_store_open's ext_ctx) when
 * its extension table is `ext`, else NULL (NULL db too). */
void *cs_store_ext_ctx(const cstack *db, const cs_store_ext *ext);
/* The full-row shape of model `mi` (every column field, schema order);
 * `mi` must be a model index of the runtime's schema. */
cs_shape *cs_store_shape(const cstack *db, int mi);

/* Write scope, the one transaction manager: takes the write lock (unless
 * this thread's transaction holds it) and opens a transaction (BEGIN
 * IMMEDIATE) or, nested, a savepoint.  End with cs_write_end, passing the
 * result: 0 commits (or releases), non-zero rolls back what the level did,
 * its events and its captured changes included; cs_write_end returns `rc`,
 * or the failure of the commit itself.  Returns 0 or a CSTACK_E* code (the
 * scope is then not open). */
int cs_write_begin(cstack *db);
/* A merge writes rows whose clocks it records itself. */
#define CS_WRITE_MERGE 1u
/* cs_write_begin with CS_WRITE_* flags.  CS_WRITE_MERGE: capture stays
 * quiet for the whole transaction (cs_write_quiet) and foreign keys are off
 * (a merge decides visibility itself); SQLite can switch foreign keys only
 * outside a transaction, so a merge scope must be outermost or nested in
 * another merge scope, else CSTACK_EMISUSE. */
int cs_write_begin_opts(cstack *db, unsigned flags);
int cs_write_end(cstack *db, int rc);
/* cs_write_begin that never waits: CSTACK_EBUSY when another thread holds
 * the write lock or another connection a write transaction on the file
 * (nothing is then open).  Only outside this thread's own transaction. */
int cs_write_try_begin(cstack *db);
/* cs_write_end, then done(ctx, committed) while the write lock is still
 * held, so that no other write commits in between: `committed` is true only
 * when this ended the outermost level and its COMMIT succeeded (a nested
 * level reports false, whatever its outer level does later). */
int cs_write_end_then(cstack *db, int rc, void (*done)(void *ctx, bool committed), void *ctx);
/* Whether the write transaction open on db is a merge's (CS_WRITE_MERGE):
 * the sync extension records nothing of its writes.  Only meaningful on
 * the thread that holds the write lock (the capture hook runs there). */
bool cs_write_quiet(const cstack *db);
/* The write connection.  Use it only while the calling thread holds the
 * write lock (inside cs_write_begin/cs_write_end or cs_write_lock/
 * cs_write_unlock), and keep neither it nor its statements past that. */
cs_conn *cs_write_conn(cstack *db);
/* The write lock alone, for a write that is one statement and journals
 * nothing: SQLite makes a single statement atomic, so it needs no savepoint.
 * Also for reading the write connection's own state outside a transaction. */
int cs_write_lock(cstack *db);
void cs_write_unlock(cstack *db);
size_t cs_capture_mark(cstack *db);
void cs_capture_reset(cstack *db, size_t mark);
/* Whether this thread has a transaction open on db. */
bool cs_in_transaction(cstack *db);
/* Whether this thread holds the write lock in an open transaction. */
bool cs_holds_write_lock(cstack *db);
/* Read scope: a connection that reads one consistent snapshot until
 * cs_read_end (the write connection when this thread's transaction is
 * open, so it sees its own writes).  Never NULL; use it and its statements
 * only in this thread and only until cs_read_end. */
cs_conn *cs_read_begin(cstack *db);
void cs_read_end(cstack *db, cs_conn *c);

/* ---- live queries (src/live/) -----------------------------------------------
 *
 * The store tells the live layer which tables each commit on the write
 * connection changed, without referring to it: the layer attaches a method
 * table once.  Tables come from SQLite's update hook on the writer (installed
 * by the attach), so every path that writes through the runtime counts:
 * delegates, the envelope, cstack_with_sqlite (where a change the hook cannot
 * see, e.g. a truncating DELETE, reports every table), merges. */
typedef struct cs_live_hooks {
    /* On the committing thread, after a commit (or an autocommit statement
     * under cs_write_lock) that changed `n` tables, or every table when
     * `all`.  Holding the write lock: be quick, never call into db. */
    void (*committed)(void *ctx, const char *const *tables, size_t n, bool all);
    /* At cstack_close, before the connections close. */
    void (*destroy)(void *ctx);
} cs_live_hooks;
/* The live context of db, creating it with make(db) under the write lock
 * the first time (make must not take it).  NULL when make fails. */
void *cs_store_live(cstack *db, const cs_live_hooks *hooks, void *(*make)(cstack *db));
/* The live context of db or NULL, without creating it. */
void *cs_store_live_peek(cstack *db);
/* cstack_open_options.live_poll_ms of db: 0 for the live layer's default. */
int cs_store_live_poll_ms(const cstack *db);
/* PRAGMA data_version of the write connection, which changes only when
 * another connection (another handle, another process) commits to the file.
 * CSTACK_EBUSY without waiting when the writer is in use. */
int cs_store_data_version(cstack *db, int64_t *out);
/* Records, for the calling thread, the tables read by every statement it
 * prepares through cs_conn_prepare until called again with fn NULL: fn gets
 * each table name SQLite's authorizer reports as read (relation filters'
 * tables included). */
void cs_store_record_reads(void (*fn)(void *ctx, const char *table), void *ctx);

/* The runtime's row SQL (sql/sql.h).  Its set statements may be asked for
 * only under the write lock. */
cs_rowsql *cs_store_rowsql(cstack *db);

/* Model lookup with an EINVAL message when unknown. */
const cs_model *cs_store_model(cstack *db, const char *name, int *index);

/* ---- rows ------------------------------------------------------------------ */

/* The columns of a result: names, types, and the enum of enum columns. */
struct cs_shape {
    size_t n;
    const char **names;
    const cs_field **fields; /* the field of each column, or NULL (aggregates) */
    cs_scalar *types;
    char **owned;       /* names the shape allocated itself (aggregates) */
    int refs;
};

cs_shape *cs_shape_new(size_t n);
void cs_shape_release(cs_shape *s);

struct cstack_row {
    cs_shape *shape;    /* counted reference, unless in_arena */
    cstack_value *vals;
    bool in_arena;      /* allocated from (and freed with) a cstack_rows */
};

typedef struct cstack_rows cstack_rows;
/* Decodes the current result row of `st` (columns 0..shape->n-1) into a new
 * row, allocated from `arena` when not NULL (the list then owns it and must
 * hold a reference to `shape`).  Returns NULL on OOM. */
cstack_row *cs_row_from_stmt(cs_shape *shape, sqlite3_stmt *st, cstack_rows *arena);
cstack_row *cs_row_copy(const cstack_row *r);
/* Appends the row as a JSON object. */
int cs_row_json(cs_buf *b, const cstack_row *row);

struct cstack_rows {
    size_t n, cap;
    cstack_row **rows;
    cs_shape *shape;    /* reference held for arena rows, or NULL */
    char **chunks;      /* arena */
    size_t nchunks, capchunks;
    char *cur;
    size_t left;
};
int cs_rows_push(cstack_rows *rs, cstack_row *r);

/* ---- SQL building ------------------------------------------------------ */

/* SQL text plus its bound values.  Values are canonical; text they point to is
 * owned by the caller's inputs or by `owned`. */
typedef struct cs_sqlb {
    cs_buf sql;
    cstack_value *binds;
    size_t nbinds, capbinds;
    char **owned;
    size_t nowned, capowned;
    int alias;          /* next table alias number */
} cs_sqlb;

void cs_sqlb_free(cs_sqlb *q);
int cs_sqlb_bind(cs_sqlb *q, cstack_value v);
/* Canonicalises `in` for field `f` of model `m` and binds it; messages name
 * "Model.field". */
int cs_sqlb_bind_field(cs_sqlb *q, const cstack_schema *s, const cs_model *m,
                       const cs_field *f, const cstack_value *in);
int cs_sqlb_apply(const cs_sqlb *q, sqlite3_stmt *st);
/* Binds one value (SQLITE_STATIC: it must outlive the statement's step). */
int cs_bind_one(sqlite3_stmt *st, int idx, const cstack_value *v);

/* Canonicalises a value for a field, into storage owned by `owned` when it
 * had to change. */
int cs_canon_field(const cstack_schema *s, const cs_model *m, const cs_field *f,
                   const cstack_value *in, cstack_value *out, char **owned);

/* Appends `alias."col" AND ...` conditions of a where-unique to q.  The data
 * must name exactly a unique field set of the model. */
int cs_render_unique(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                     const cstack_data *where);
/* Appends a filter (or "1") evaluated on `alias`, plus the soft-delete
 * condition of the model. */
int cs_render_where(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias,
                    const cstack_filter *f);
/* Appends the column list `aN."c1", aN."c2"` for the shape's fields. */
int cs_render_columns(cs_sqlb *q, const cs_shape *shape, int alias);
/* A shape of every column field of a model, or of the selected ones. */
int cs_model_shape(const cs_model *m, const char *const *select, size_t n, cs_shape **out);

/* Runs `q` (which holds "SELECT <exprs>") completed with FROM model WHERE
 * filter, and returns its single row. */
int cs_scalar_query(cstack *db, const cs_model *m, cs_sqlb *q, const cstack_filter *where,
                    cs_shape *sh, cstack_row **out);
/* The same with `tail` (more clauses: GROUP BY, ORDER BY) appended, and
 * every row into `out`. */
int cs_rows_query(cstack *db, const cs_model *m, cs_sqlb *q, const cstack_filter *where,
                  const char *tail, cs_shape *sh, cstack_rows *out);

/* Reads one row by unique key with the write connection (inside a write
 * scope).  *out NULL when absent. */
int cs_find_unique_conn(cstack *db, cs_conn *c, const cs_model *m, const cstack_data *where,
                        cstack_row **out);

/* ---- events -------------------------------------------------------------- */

enum { CS_OP_CREATE, CS_OP_UPDATE, CS_OP_DELETE };

/* Journals a write of model `mi` (audit and/or outbox and pending event as the
 * model asks).  `before`/`after` may be NULL.  Inside the write scope. */
int cs_record_write(cstack *db, int mi, int op, const cstack_row *before,
                    const cstack_row *after);
/* Whether a model needs the before/after rows of its writes. */
/* version.c: @version and @readonly.  The @version field's index or -1. */
int cs_version_field(const cs_model *m);
/* Takes the @version field out of a unique `where` (into *expected, *given
 * set) so the rest is a plain key; `buf` holds where->count entries. */
int cs_version_where(const cs_model *m, const cstack_data *where, cstack_field_value *buf,
                     cstack_data *rest, bool *given, int64_t *expected);
/* CSTACK_ECONFLICT when `before` is not at the version expected. */
int cs_version_check(const cs_model *m, const cstack_row *before, bool given, int64_t expected);
/* Before an update of `before` with values v[i] where set[i]: refuses a
 * change of a @readonly field, checks and bumps the @version field. */
int cs_update_rules(const cs_model *m, const cstack_row *before, bool *set, cstack_value *v);

static inline bool cs_model_journaled(const cs_model *m)
{
    return m->audit || m->emit;
}
void cs_events_mark(cstack *db, int depth);
void cs_events_rollback(cstack *db, int depth);
void cs_events_deliver(cstack *db);
void cs_events_clear(cstack *db);
void cs_subs_free(cstack *db);

#endif
