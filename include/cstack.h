/*
 * cstack.h -- the one public header of cstack, an offline-first data layer.
 *
 * Everything not declared here is private and may change without notice.
 *
 * Conventions (see docs/api.md):
 *   - Every function that can fail returns an int: 0 (CSTACK_OK) on success,
 *     a negative CSTACK_E* code otherwise.  cstack_errstr() names a code;
 *     cstack_errmsg() gives the detailed message of the last failure on a
 *     handle (valid until the next call on that handle from the same thread).
 *   - Handles are opaque and created through out-parameters.  Every
 *     destructor accepts NULL.
 *   - Strings returned as `char *` are owned by the caller and freed with
 *     cstack_free().  Pointers returned as `const` are borrowed; each
 *     comment says how long they live.
 *   - Input strings are UTF-8 and NUL-terminated unless a length is given.
 */
#ifndef CSTACK_H
#define CSTACK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CSTACK_API __attribute__((visibility("default")))
#else
#define CSTACK_API
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

/* The version of this header, MAJOR.MINOR.PATCH.  These three numbers are the
 * one place the version is written: CMake reads them from here for the
 * library's VERSION and soname (libcstack.so.MAJOR) and for cstack.pc. */
#define CSTACK_VERSION_MAJOR 0
#define CSTACK_VERSION_MINOR 2
#define CSTACK_VERSION_PATCH 0

#define CSTACK_VERSION_STR_(x) #x
#define CSTACK_VERSION_XSTR_(x) CSTACK_VERSION_STR_(x)
/* The version as a string, "0.2.0". */
#define CSTACK_VERSION                                                                             \
    CSTACK_VERSION_XSTR_(CSTACK_VERSION_MAJOR)                                                     \
    "." CSTACK_VERSION_XSTR_(CSTACK_VERSION_MINOR) "." CSTACK_VERSION_XSTR_(CSTACK_VERSION_PATCH)
/* The version as one number that grows with every release, for `#if`:
 * MAJOR * 10000 + MINOR * 100 + PATCH (0.2.0 is 200, 1.12.3 is 11203). */
#define CSTACK_VERSION_NUMBER                                                                      \
    (CSTACK_VERSION_MAJOR * 10000 + CSTACK_VERSION_MINOR * 100 + CSTACK_VERSION_PATCH)

/* The version of the library actually running, as CSTACK_VERSION was when it
 * was built: compare it with CSTACK_VERSION to detect a program built
 * against other headers than the library it loaded.  Static; never NULL. */
CSTACK_API const char *cstack_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/* X(NAME, value, wire name, description).  The wire name is the `code` of the
 * JSON envelope's err response. */
#define CSTACK_ERRNO_MAP(X)                                                      \
    X(OK, 0, "ok", "success")                                                    \
    X(ERROR, -1, "error", "unspecified error")                                   \
    X(NOMEM, -2, "nomem", "out of memory")                                       \
    X(INVAL, -3, "bad_request", "invalid argument or request")                   \
    X(SCHEMA, -4, "schema", "the schema has errors")                             \
    X(VALIDATION, -5, "validation", "a value is invalid for its field")          \
    X(REQUIRED, -6, "required", "a required field is missing")                   \
    X(NOTFOUND, -7, "not_found", "no row matches")                               \
    X(UNIQUE, -8, "unique_violation", "a unique constraint would be violated")   \
    X(FOREIGNKEY, -9, "foreign_key_violation", "a foreign key would be violated") \
    X(BUSY, -10, "locked", "the database is busy or locked")                     \
    X(SQLITE, -11, "sqlite", "SQLite reported an error")                         \
    X(IO, -12, "io", "input/output error")                                       \
    X(MIGRATION, -13, "migration", "the schema change would lose or reinterpret data") \
    X(TOOBIG, -14, "too_big", "a size limit was exceeded")                       \
    X(MISUSE, -15, "misuse", "the API was used incorrectly")                     \
    X(CLOCK, -16, "clock_drift", "a remote clock is too far ahead of local time")      \
    X(UNAUTHORIZED, -17, "unauthorized", "the server refused the credentials")        \
    X(FORBIDDEN, -18, "forbidden", "the server refused the request for this user")    \
    X(MISMATCH, -19, "schema_mismatch", "the server runs another schema")              \
    X(UNAVAILABLE, -20, "unavailable", "the server is unavailable")                    \
    X(DIVERGED, -21, "diverged", "the data still differs from the server's after a repair") \
    X(CONFLICT, -22, "conflict", "the row changed since the version given (@version)")

typedef enum cstack_errno {
#define CSTACK_ERRNO_ENUM_(name, val, wire, desc) CSTACK_E##name = (val),
    CSTACK_ERRNO_MAP(CSTACK_ERRNO_ENUM_)
#undef CSTACK_ERRNO_ENUM_
} cstack_errno;

#define CSTACK_OK CSTACK_EOK
#define CSTACK_ERROR CSTACK_EERROR

/* A static description of a code ("no row matches"); never NULL. */
CSTACK_API const char *cstack_errstr(int code);
/* The stable wire name of a code ("not_found"); never NULL. */
CSTACK_API const char *cstack_errname(int code);

/* Frees memory that cstack handed to the caller (strings, JSON). NULL ok. */
CSTACK_API void cstack_free(void *p);

/* ------------------------------------------------------------------------ */
/* Schemas                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct cstack_schema cstack_schema;
typedef struct cstack_diags cstack_diags;

/* One diagnostic: `file:line:col: message`, lines and columns from 1.
 * Borrowed from its cstack_diags; valid until cstack_diags_free(). */
typedef struct cstack_diag {
    const char *file;
    int line;
    int col;
    const char *message;
    /* Nonzero for a warning (its message starts with "warning: "): a
     * construct the embedded runtime ignores.  Warnings never fail a parse. */
    int warning;
} cstack_diag;

/* Parses and validates a schema held in memory.  `filename` is only used in
 * diagnostics.  On success *out is a new schema (free with
 * cstack_schema_free()).  On CSTACK_ESCHEMA *out is NULL.  When `diags` is not
 * NULL it receives every diagnostic found (possibly none; free with
 * cstack_diags_free()) in either case.
 * Errors: CSTACK_ESCHEMA, CSTACK_ETOOBIG (source over 16 MiB), CSTACK_ENOMEM. */
CSTACK_API int cstack_schema_parse(const char *filename, const char *src, size_t len,
                                   cstack_schema **out, cstack_diags **diags);
/* As cstack_schema_parse() on the contents of the file at `path`.
 * Errors as above plus CSTACK_EIO (reported as a diagnostic too). */
CSTACK_API int cstack_schema_load(const char *path, cstack_schema **out,
                                  cstack_diags **diags);
/* Drops the caller's reference; runtimes opened on it keep their own. */
CSTACK_API void cstack_schema_free(cstack_schema *schema);
/* Lowercase hex SHA-256 of the schema's canonical form (comments and layout
 * do not change it).  Borrowed; lives as long as the schema. */
CSTACK_API const char *cstack_schema_hash(const cstack_schema *schema);
/* Number of models, and the name of model i in declaration order (borrowed). */
CSTACK_API size_t cstack_schema_model_count(const cstack_schema *schema);
CSTACK_API const char *cstack_schema_model_name(const cstack_schema *schema, size_t i);

CSTACK_API size_t cstack_diags_count(const cstack_diags *d);
/* Diagnostic i, or NULL when out of range. */
CSTACK_API const cstack_diag *cstack_diags_get(const cstack_diags *d, size_t i);
/* Every diagnostic rendered as `file:line:col: message`, the source line and
 * a caret line, in source order.  Free with cstack_free(). NULL on OOM. */
CSTACK_API char *cstack_diags_format(const cstack_diags *d);
CSTACK_API void cstack_diags_free(cstack_diags *d);

/* Renders the DDL of a schema for a dialect: "sqlite" or "postgres".  On
 * success *out is a string to free with cstack_free().
 * Errors: CSTACK_EINVAL (unknown dialect), CSTACK_ENOMEM. */
CSTACK_API int cstack_schema_ddl(const cstack_schema *schema, const char *dialect, char **out);

/* Generates the typed C API of a schema, what `cstack gen` writes
 * (docs/codegen.md): a header and a source file that wrap this header's
 * generic runtime with a struct, input structs and delegates per model.
 * `basename` names the pair (`<basename>.h`, `<basename>.c`; the source
 * includes "<basename>.h") and must be non-empty and made of [A-Za-z0-9_.-].
 * On success *header and *source are NUL-terminated texts to free with
 * cstack_free(); the same schema and basename always give the same bytes.
 * On failure both are NULL and `err` (`errlen` bytes; may be NULL) holds a
 * one-line message.
 * Errors: CSTACK_EINVAL (a bad basename, or generated names that collide
 * beyond what renaming fixes), CSTACK_ETOOBIG (the text exceeds its buffer),
 * CSTACK_ENOMEM. */
CSTACK_API int cstack_codegen(const cstack_schema *schema, const char *basename, char **header,
                              char **source, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Values                                                                    */
/* ------------------------------------------------------------------------ */

/* The representation of one value crossing the API.  Each scalar of the
 * schema language accepts and produces these kinds:
 *   String, Cuid, Uuid, DateTime, Json, Decimal, Enum  TEXT (Decimal also INT)
 *   Int                                                INT
 *   Float                                              FLOAT (also INT)
 *   Boolean                                            BOOL
 *   Bytes                                              BLOB
 * and NULL for an absent optional value.  Values read back are canonical
 * (SPEC section 3): UUIDs lowercase, DateTimes UTC with 6 digits, and so on. */
typedef enum cstack_vtype {
    CSTACK_NULL = 0,
    CSTACK_INT,
    CSTACK_FLOAT,
    CSTACK_BOOL,
    CSTACK_TEXT,
    CSTACK_BLOB
} cstack_vtype;

typedef struct cstack_value {
    cstack_vtype type;
    union {
        int64_t i;
        double f;
        int b;
        struct {
            const char *p; /* TEXT: UTF-8, not necessarily NUL-terminated */
            size_t n;      /* length in bytes */
        } s;
    } u;
} cstack_value;

static inline cstack_value cstack_v_null(void)
{
    cstack_value v;
    v.type = CSTACK_NULL;
    v.u.i = 0;
    return v;
}
static inline cstack_value cstack_v_int(int64_t i)
{
    cstack_value v;
    v.type = CSTACK_INT;
    v.u.i = i;
    return v;
}
static inline cstack_value cstack_v_float(double f)
{
    cstack_value v;
    v.type = CSTACK_FLOAT;
    v.u.f = f;
    return v;
}
static inline cstack_value cstack_v_bool(int b)
{
    cstack_value v;
    v.type = CSTACK_BOOL;
    v.u.b = b ? 1 : 0;
    return v;
}
static inline cstack_value cstack_v_textn(const char *p, size_t n)
{
    cstack_value v;
    v.type = CSTACK_TEXT;
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}
/* `p` must be NUL-terminated; NULL gives a NULL value. */
CSTACK_API cstack_value cstack_v_text(const char *p);
static inline cstack_value cstack_v_blob(const void *p, size_t n)
{
    cstack_value v;
    v.type = CSTACK_BLOB;
    v.u.s.p = (const char *)p;
    v.u.s.n = n;
    return v;
}

/* One named value: a field of a row to write, or of a unique key. */
typedef struct cstack_field_value {
    const char *field;
    cstack_value value;
} cstack_field_value;

/* A set of named values, borrowed for the duration of a call. */
typedef struct cstack_data {
    const cstack_field_value *fields;
    size_t count;
} cstack_data;

/* ------------------------------------------------------------------------ */
/* Rows                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct cstack_row cstack_row;
typedef struct cstack_rows cstack_rows;

/* A row holds the model's fields (or the selected ones) in schema order.
 * Values returned by the accessors are borrowed and live as long as the
 * row. */
CSTACK_API size_t cstack_row_size(const cstack_row *row);
CSTACK_API const char *cstack_row_name(const cstack_row *row, size_t i);
CSTACK_API cstack_value cstack_row_value(const cstack_row *row, size_t i);
/* Looks a field up by name.  Errors: CSTACK_ENOTFOUND (not in this row). */
CSTACK_API int cstack_row_get(const cstack_row *row, const char *field, cstack_value *out);
/* The row as a compact JSON object in SPEC section 6 mapping (Bytes base64,
 * Json inline).  Free with cstack_free().  NULL on OOM. */
CSTACK_API char *cstack_row_json(const cstack_row *row);
CSTACK_API void cstack_row_free(cstack_row *row);

CSTACK_API size_t cstack_rows_count(const cstack_rows *rows);
/* Row i, borrowed from the list (lives until cstack_rows_free()). */
CSTACK_API const cstack_row *cstack_rows_get(const cstack_rows *rows, size_t i);
CSTACK_API void cstack_rows_free(cstack_rows *rows);

/* ------------------------------------------------------------------------ */
/* Filters and queries                                                       */
/* ------------------------------------------------------------------------ */

typedef enum cstack_op {
    CSTACK_OP_EQ,
    CSTACK_OP_NE,
    CSTACK_OP_LT,
    CSTACK_OP_LTE,
    CSTACK_OP_GT,
    CSTACK_OP_GTE,
    CSTACK_OP_CONTAINS,
    CSTACK_OP_STARTS_WITH,
    CSTACK_OP_ENDS_WITH,
    /* Scalar list fields (String[], Role[]): HAS takes one element value;
     * HAS_SOME / HAS_EVERY take a JSON array of elements as TEXT. */
    CSTACK_OP_HAS,
    CSTACK_OP_HAS_SOME,
    CSTACK_OP_HAS_EVERY
} cstack_op;

/* Flags of cstack_filter_cmp(). */
#define CSTACK_CI 1 /* case-insensitive (ASCII) string comparison */

typedef enum cstack_relop {
    CSTACK_REL_IS,     /* to-one: the related row exists and matches */
    CSTACK_REL_IS_NOT, /* to-one: no related row matches */
    CSTACK_REL_SOME,   /* to-many: at least one related row matches */
    CSTACK_REL_EVERY,  /* to-many: every related row matches */
    CSTACK_REL_NONE    /* to-many: no related row matches */
} cstack_relop;

/* A filter is a tree built with the functions below.  Leaves copy the values
 * they are given.  Combinators take ownership of their children (even when
 * they fail).  Any builder returns NULL when out of memory; a NULL child makes
 * the whole tree invalid, which the query reports as CSTACK_ENOMEM.  Field
 * names are checked against the model when the filter is used, not when it is
 * built.  Free the root with cstack_filter_free().
 *
 * Null semantics: EQ with a NULL value matches null; NE with a NULL value
 * matches non-null; every other comparison against a null column is false. */
typedef struct cstack_filter cstack_filter;

CSTACK_API cstack_filter *cstack_filter_cmp(const char *field, cstack_op op, int flags,
                                            cstack_value value);
CSTACK_API cstack_filter *cstack_filter_in(const char *field, int negate,
                                           const cstack_value *values, size_t n);
CSTACK_API cstack_filter *cstack_filter_is_null(const char *field, int is_null);
CSTACK_API cstack_filter *cstack_filter_and(cstack_filter *const *children, size_t n);
CSTACK_API cstack_filter *cstack_filter_or(cstack_filter *const *children, size_t n);
CSTACK_API cstack_filter *cstack_filter_not(cstack_filter *child);
/* Convenience for two children: cstack_filter_and2(a, b). */
CSTACK_API cstack_filter *cstack_filter_and2(cstack_filter *a, cstack_filter *b);
CSTACK_API cstack_filter *cstack_filter_or2(cstack_filter *a, cstack_filter *b);
/* A relation filter: `relation` names a relation field of the model; `sub` is
 * evaluated on the related model (NULL matches any related row). */
CSTACK_API cstack_filter *cstack_filter_rel(const char *relation, cstack_relop op,
                                            cstack_filter *sub);
CSTACK_API void cstack_filter_free(cstack_filter *f);

typedef struct cstack_order {
    const char *field;
    int desc; /* 0 ascending, 1 descending */
} cstack_order;

/* The arguments of find_first / find_many.  A zero-initialised query returns
 * every row in primary-key order.  Rows are always ordered by the given
 * fields then by the primary key, so pagination is stable. */
typedef struct cstack_query {
    const cstack_filter *where; /* NULL: all rows; borrowed */
    const cstack_order *order_by;
    size_t n_order;
    int64_t take; /* maximum rows; 0 means no limit; negative is an error */
    int64_t skip; /* rows to skip after the cursor; negative is an error */
    /* Unique-field values of a row: results continue after that row.  The
     * cursor row must exist (CSTACK_ENOTFOUND otherwise). */
    cstack_data cursor;
    const char *const *select; /* fields to return; NULL/0: all fields */
    size_t n_select;
} cstack_query;

/* Aggregates: each list names fields of the model.  Sum and average of a
 * Decimal field are exact decimals; of Int and Float, numbers. */
typedef struct cstack_aggregate {
    const cstack_filter *where;
    int count; /* non-zero: include "_count" */
    const char *const *sum;
    size_t n_sum;
    const char *const *avg;
    size_t n_avg;
    const char *const *min;
    size_t n_min;
    const char *const *max;
    size_t n_max;
} cstack_aggregate_spec;

/* ------------------------------------------------------------------------ */
/* The embedded runtime                                                      */
/* ------------------------------------------------------------------------ */

typedef struct cstack cstack;
typedef struct sqlite3 sqlite3;

typedef struct cstack_open_options {
    int readers;       /* read connections for file databases; 0 = default (4) */
    int busy_timeout_ms; /* 0 = default (5000) */
    /* Name of a page-store VFS (cstack_pagestore_register); NULL = the file
     * system.  `path` is then the file's name inside that store, and the
     * runtime uses one connection (readers is ignored) in rollback mode with
     * an in-memory journal: docs/pagestore.md says why that is crash-safe. */
    const char *vfs;
    /* How often live queries (cstack_watch_envelope) ask SQLite whether
     * another connection or process committed to the file, in ms: the
     * latency of such changes, against one PRAGMA on the writer per period
     * while watches exist.  0 = default (20); 1 to 60000, else cstack_open
     * fails with CSTACK_EINVAL. */
    int live_poll_ms;
} cstack_open_options;

/* Opens (creating if needed) the SQLite database at `path` for `schema`, in
 * WAL mode with one writer and a pool of readers.  The runtime keeps its own
 * reference to the schema.  It does not create tables: call cstack_bootstrap().
 * `opts` may be NULL.  On success *out is a handle to close with
 * cstack_close().  On failure other than CSTACK_ENOMEM *out is still set so
 * that cstack_errmsg() can explain; close it all the same.
 * A runtime may be shared by threads; a transaction belongs to the thread
 * that began it. */
CSTACK_API int cstack_open(const cstack_schema *schema, const char *path,
                           const cstack_open_options *opts, cstack **out);
/* As cstack_open() on a private in-memory database (one connection). */
CSTACK_API int cstack_open_in_memory(const cstack_schema *schema, cstack **out);
/* Closes the database; pending transactions are rolled back. NULL ok. */
CSTACK_API void cstack_close(cstack *db);
/* The message of the last failure on this handle in this thread ("no error"
 * when there was none): a failure on another handle, or on this one in
 * another thread, never changes it.  Safe to call from any thread without a
 * lock.  Borrowed; valid until the next call on `db` from the same thread
 * (a thread keeps the messages of the 8 handles it failed on most recently,
 * so also until it has failed on 8 other handles).  With a NULL `db`: the
 * calling thread's last failure on any handle, or outside one.  Never NULL. */
CSTACK_API const char *cstack_errmsg(cstack *db);
CSTACK_API const cstack_schema *cstack_schema_of(const cstack *db);

/* Creates missing tables and indexes and migrates an existing database to the
 * schema: new models, new optional fields, new fields with a default, new or
 * dropped indexes are applied in one transaction; a change that would lose or
 * reinterpret data is refused with CSTACK_EMIGRATION and a message naming the
 * model, the field and the change, and nothing is applied.  Idempotent.
 * When `report` is not NULL it receives one line per change made (empty when
 * nothing changed); free it with cstack_free(). */
CSTACK_API int cstack_bootstrap(cstack *db, char **report);

/* Runs `fn` with the write connection inside a write scope: a transaction
 * of its own, or a savepoint inside the caller's transaction.  Writes `fn`
 * makes are captured for sync like any other and commit with it; when `fn`
 * returns non-zero they are rolled back and that value is returned (else the
 * commit's result).  `fn` must not BEGIN or COMMIT itself (use SAVEPOINT).
 * The connection is borrowed for the call only.  Writes made to the database
 * file by other means (another process, the sqlite3 shell) are not synced. */
CSTACK_API int cstack_with_sqlite(cstack *db, int (*fn)(sqlite3 *conn, void *ctx), void *ctx);

/* Transactions.  Between begin and commit/rollback every call from this
 * thread is part of the transaction; other threads' writes wait.  Nesting
 * is allowed (savepoints): an inner rollback undoes only the inner part. */
CSTACK_API int cstack_begin(cstack *db);
CSTACK_API int cstack_commit(cstack *db);
CSTACK_API int cstack_rollback(cstack *db);

/* --- Model delegates.  `model` is a model name.  Output rows are new objects
 * the caller frees (cstack_row_free / cstack_rows_free); output pointers may
 * be NULL when the result is not wanted.  Unknown models or fields give
 * CSTACK_EINVAL; invalid values CSTACK_EVALIDATION; missing required fields
 * CSTACK_EREQUIRED; constraint failures CSTACK_EUNIQUE / CSTACK_EFOREIGNKEY.
 * Nothing is written when a call fails. */

/* Inserts one row, filling @default and @updatedAt, and returns it as stored. */
CSTACK_API int cstack_create(cstack *db, const char *model, const cstack_data *data,
                             cstack_row **out);
/* Inserts `n` rows atomically; *count receives the number inserted. */
CSTACK_API int cstack_create_many(cstack *db, const char *model, const cstack_data *rows,
                                  size_t n, int64_t *count);
/* The row whose unique fields (the primary key, or a @unique / @@unique set)
 * equal `where`; *out is NULL when there is none (this is not an error). */
CSTACK_API int cstack_find_unique(cstack *db, const char *model, const cstack_data *where,
                                  const char *const *select, size_t n_select,
                                  cstack_row **out);
/* The first row of the query; *out is NULL when there is none. */
CSTACK_API int cstack_find_first(cstack *db, const char *model, const cstack_query *q,
                                 cstack_row **out);
CSTACK_API int cstack_find_many(cstack *db, const char *model, const cstack_query *q,
                                cstack_rows **out);
CSTACK_API int cstack_count(cstack *db, const char *model, const cstack_filter *where,
                            int64_t *count);
/* One row with columns "_count", "_sum.FIELD", "_avg.FIELD", "_min.FIELD",
 * "_max.FIELD" in that order; NULL where there were no rows to aggregate. */
CSTACK_API int cstack_aggregate(cstack *db, const char *model, const cstack_aggregate_spec *agg,
                                cstack_row **out);
/* group_by: one row per distinct combination of the `by` fields among the
 * rows agg.where matches, with columns: the by fields (named as fields),
 * then agg's aggregates over the group, named as in cstack_aggregate (agg
 * may ask for none: the distinct groups alone).  Rows are ordered by
 * order_by (by fields only), then by the other by fields ascending. */
typedef struct cstack_group_by_spec {
    const char *const *by;
    size_t n_by;
    cstack_aggregate_spec agg;
    const cstack_order *order_by;
    size_t n_order;
} cstack_group_by_spec;
CSTACK_API int cstack_group_by(cstack *db, const char *model, const cstack_group_by_spec *g,
                               cstack_rows **out);
/* Partial update of the row identified by `where` (unique fields): only the
 * fields in `data` change (and @updatedAt).  CSTACK_ENOTFOUND when absent. */
CSTACK_API int cstack_update(cstack *db, const char *model, const cstack_data *where,
                             const cstack_data *data, cstack_row **out);
CSTACK_API int cstack_update_many(cstack *db, const char *model, const cstack_filter *where,
                                  const cstack_data *data, int64_t *count);
/* Updates the row identified by `where` with `update`, or creates `create`. */
CSTACK_API int cstack_upsert(cstack *db, const char *model, const cstack_data *where,
                             const cstack_data *create, const cstack_data *update,
                             cstack_row **out);
/* Deletes the row identified by `where` and returns it as it was.  On a
 * @@soft_delete model this sets the soft-delete field to now instead.
 * CSTACK_ENOTFOUND when absent. */
CSTACK_API int cstack_delete(cstack *db, const char *model, const cstack_data *where,
                             cstack_row **out);
CSTACK_API int cstack_delete_many(cstack *db, const char *model, const cstack_filter *where,
                                  int64_t *count);

/* ------------------------------------------------------------------------ */
/* Events (@@emit) and the outbox                                            */
/* ------------------------------------------------------------------------ */

typedef struct cstack_event {
    const char *name;  /* "Note.created", "Note.updated" or "Note.deleted" */
    const char *model; /* "Note" */
    const cstack_row *row; /* the row after the write (before, for deleted) */
} cstack_event;

/* Called after the transaction that made the write commits, on the thread
 * that committed; never for a rolled-back write.  Everything in `ev` is
 * borrowed for the duration of the call.  The callback must not call back
 * into the same runtime's write functions. */
typedef void (*cstack_event_fn)(const cstack_event *ev, void *ctx);

/* Subscribes to events whose name matches `pattern`: NULL or "*" for all,
 * "Note" for one model, "Note.created" for one event.  *id receives an id for
 * cstack_unsubscribe(). */
CSTACK_API int cstack_subscribe(cstack *db, const char *pattern, cstack_event_fn fn,
                                void *ctx, uint64_t *id);
CSTACK_API int cstack_unsubscribe(cstack *db, uint64_t id);

/* One durable outbox entry (written in the same transaction as the change).
 * Borrowed for the duration of the callback. */
typedef struct cstack_outbox_entry {
    int64_t id;
    const char *event;   /* "Note.created" */
    const char *model;
    const char *key;     /* primary key as a JSON object */
    const char *payload; /* the row as JSON */
    const char *at;      /* DateTime of the write */
} cstack_outbox_entry;

/* Hands up to `max` outbox entries, oldest first, to `fn`; each entry for
 * which `fn` returns 0 is deleted, and the first non-zero return stops the
 * drain (that entry stays).  *drained receives the number deleted. */
CSTACK_API int cstack_outbox_drain(cstack *db, size_t max,
                                   int (*fn)(const cstack_outbox_entry *e, void *ctx),
                                   void *ctx, size_t *drained);

/* ------------------------------------------------------------------------ */
/* Sync (docs/sync.md)                                                       */
/* ------------------------------------------------------------------------ */

/* Every model but @@local ones is synced: each local write (through any
 * path: delegates, the envelope, raw SQL through cstack_with_sqlite) is
 * captured in the same transaction with a hybrid logical clock, and can be
 * exported as a changeset and merged into other replicas.  Sync needs the
 * database bootstrapped (cstack_bootstrap). */

/* This database's site id as 32 lowercase hex digits (borrowed; lives as
 * long as the runtime). */
CSTACK_API const char *cstack_sync_site_id(cstack *db);

/* The current version of the database: the cursor a peer that has seen
 * everything up to now would pass as `since`. */
CSTACK_API int cstack_sync_version(cstack *db, int64_t *version);

/* The largest amount (milliseconds) a remote clock may run ahead of the local
 * wall clock; cstack_changes_apply refuses changesets carrying a later clock.
 * The sync client does not refuse what its server relays (the server judged
 * it against its own clock), but never moves the local clock past the wall
 * clock plus this amount (docs/sync.md, "Clocks").  Default 300000 (5
 * minutes). */
CSTACK_API int cstack_sync_set_max_drift(cstack *db, int64_t ms);

/* Exports every change (local or merged from elsewhere) made after version
 * `since` (0: everything) as a changeset.  *out is a buffer to free with
 * cstack_free(), *len its size, and *cursor (optional) the version to pass
 * as `since` next time.  Cost grows with the changes, not the database. */
CSTACK_API int cstack_changes_export(cstack *db, int64_t since, void **out, size_t *len,
                                     int64_t *cursor);

typedef struct cstack_apply_stats {
    int64_t rows;     /* row changes in the changeset */
    int64_t columns;  /* column changes in the changeset */
    int64_t won;      /* column changes that won the merge and were written */
    int64_t parked;   /* rows this merge hid because of a unique or foreign-key
                         conflict (rows it made visible again are not
                         subtracted) */
} cstack_apply_stats;

/* Merges a changeset into the database, all or nothing, idempotently.
 * Refused (nothing applied) with CSTACK_ESCHEMA when it was made with another
 * schema (the message names both hashes), CSTACK_ECLOCK when a clock in it is
 * more than the maximum drift ahead (peer to peer, this replica judges the
 * clocks it accepts; the sync client merges what its server relays without
 * this check), CSTACK_EINVAL when it is malformed.
 * `stats` may be NULL.  Cannot run inside a transaction. */
CSTACK_API int cstack_changes_apply(cstack *db, const void *changeset, size_t len,
                                    cstack_apply_stats *stats);

/* The upload queue: local transactions not yet acknowledged, oldest first.
 * It survives restarts and crashes (it is derived from durable metadata). */
typedef struct cstack_upload_tx cstack_upload_tx;

/* The number of pending local transactions. */
CSTACK_API int cstack_upload_pending(cstack *db, int64_t *count);
/* The oldest pending local transaction, or *out NULL when none.  Free with
 * cstack_upload_tx_free(). */
CSTACK_API int cstack_upload_next(cstack *db, cstack_upload_tx **out);
/* Its version (pass to cstack_upload_complete once uploaded). */
CSTACK_API int64_t cstack_upload_tx_version(const cstack_upload_tx *tx);
/* Its operations as JSON, for an app uploading to its own API:
 * {"version":N,"ops":[{"op":"put"|"patch"|"delete","model":"Note",
 *   "key":{...},"data":{...}}]} (borrowed; lives as long as tx). */
CSTACK_API const char *cstack_upload_tx_json(const cstack_upload_tx *tx);
/* The same operations as a changeset for cstack_changes_apply (borrowed). */
CSTACK_API const void *cstack_upload_tx_changeset(const cstack_upload_tx *tx, size_t *len);
CSTACK_API void cstack_upload_tx_free(cstack_upload_tx *tx);
/* Acknowledges every pending local transaction up to `version`: they leave
 * the queue. */
CSTACK_API int cstack_upload_complete(cstack *db, int64_t version);

/* A checksum of every visible row of every synced model, independent of
 * order: two replicas holding the same visible data have the same sum (a
 * server's checkpoints carry the sum of what the user may see). */
CSTACK_API int cstack_sync_checksum(cstack *db, uint64_t *sum);

/* The rows a merge keeps hidden on this replica (docs/sync.md, "Constraints:
 * visibility instead of failure"): alive rows that lose a unique value to a
 * row with an earlier claim, whose parent is not visible, or that lack a
 * required field.  They are not in their tables and come back by themselves
 * when the conflict is gone; the app may show them, or repair them by
 * writing the row (a local write to a hidden row's key replaces it).
 * *json_out is a JSON array, ordered by model then key, of
 *   {"model":"Note","key":{"id":"n1"},"reason":"unique"|"parent"|"required",
 *    "values":{"id":"n1",...}}
 * (values in the envelope's JSON mapping), to free with cstack_free().
 * `model` NULL lists every model.  Errors: CSTACK_EMISUSE (db not
 * bootstrapped, json_out NULL), CSTACK_EINVAL (unknown model),
 * CSTACK_ENOMEM. */
CSTACK_API int cstack_sync_hidden(cstack *db, const char *model, char **json_out);

/* Compaction.  Records that the peer with site id `peer` (32 hex digits) has
 * seen this database's changes up to `version`, then
 * cstack_sync_compact() drops tombstones and transaction records every known
 * peer has seen.  *removed (optional) receives the number of tombstones
 * dropped.  Compaction never changes what a merge produces for peers that
 * have acknowledged. */
CSTACK_API int cstack_sync_peer_ack(cstack *db, const char *peer, int64_t version);
CSTACK_API int cstack_sync_compact(cstack *db, int64_t *removed);

/* ------------------------------------------------------------------------ */
/* Sync client (docs/client.md)                                              */
/* ------------------------------------------------------------------------ */

/* A sync session keeps one database in step with a `cstack serve` server over
 * HTTP (docs/server.md): it pushes the upload queue oldest first, pulls the
 * server's changes until caught up, then follows the server's stream while
 * pushing new local writes as they are made.  It runs on a thread of its own
 * and goes through the runtime like any other caller, so local reads and
 * writes never wait for the network.  A batch the server refuses (invalid,
 * forbidden by a write policy, too large) is reported and undone: its rows
 * return to the server's state for this user, each refused row is recorded
 * for the app (cstack_sync_refusals), the batch is kept in the table
 * _cstack_rejected(version, status, message, changeset, at), and later
 * batches still go through.  The server cursor is kept durably in
 * _cstack_client_state, so a restarted session resumes where it stopped. */
typedef struct cstack_sync_session cstack_sync_session;

typedef struct cstack_sync_options {
    const char *url;   /* server base URL, "http://127.0.0.1:8080"; required */
    const char *token; /* bearer JWT; required */
    int retry_min_ms;  /* first reconnect delay; 0 = default (200) */
    int retry_max_ms;  /* reconnect delay cap; 0 = default (30000) */
    int poll_ms;       /* how often a streaming session looks for new local
                        * writes to push; 0 = default (50) */
    int connect_timeout_ms; /* 0 = default (10000) */
    int request_timeout_ms; /* push and pull requests; 0 = default (300000) */
    /* A stream that delivers nothing (not even a keep-alive) for this long
     * is reconnected; 0 = default (60000). */
    int stall_timeout_ms;
    size_t max_response; /* largest response body buffered; 0 = 256 MiB */
} cstack_sync_options;

typedef enum cstack_sync_state {
    CSTACK_SYNC_OFFLINE = 0, /* no connection; waiting to retry */
    CSTACK_SYNC_CONNECTING,
    CSTACK_SYNC_UPLOADING,   /* pushing the upload queue */
    CSTACK_SYNC_DOWNLOADING, /* pulling to catch up */
    CSTACK_SYNC_CONNECTED,   /* caught up and following the stream */
    CSTACK_SYNC_STOPPED
} cstack_sync_state;

/* What a status report announces. */
typedef enum cstack_sync_event {
    CSTACK_SYNC_EV_STATE,      /* the state changed */
    CSTACK_SYNC_EV_PROGRESS,   /* a download advanced (bytes_*, rows_applied) */
    CSTACK_SYNC_EV_PUSHED,     /* the batch `version` was accepted */
    CSTACK_SYNC_EV_REJECTED,   /* the batch `version` was refused and set aside */
    CSTACK_SYNC_EV_APPLIED,    /* server changes were merged (cursor moved) */
    CSTACK_SYNC_EV_CAUGHT_UP,  /* a pull reached the server's cursor */
    CSTACK_SYNC_EV_CHECKPOINT, /* the state was compared with the server's: checksum_ok */
    CSTACK_SYNC_EV_ERROR,      /* a request failed (last_error); the session retries */
    CSTACK_SYNC_EV_HIDDEN,     /* merging server changes hid `hidden` rows (a unique value
                                  taken, a parent gone): cstack_sync_hidden lists them */
    CSTACK_SYNC_EV_REPAIRED    /* a checkpoint differed and a self-repair re-pulled the
                                  models that differed (repaired_*); `diverged` says
                                  whether the state matches the server's now */
} cstack_sync_event;

/* What a download is doing, for progress displays. */
typedef enum cstack_sync_phase {
    CSTACK_SYNC_PHASE_IDLE = 0,  /* no download in progress */
    CSTACK_SYNC_PHASE_PREPARING, /* a page was asked for; the server prepares it */
    CSTACK_SYNC_PHASE_RECEIVING, /* a page is arriving (bytes_*) */
    CSTACK_SYNC_PHASE_APPLYING   /* a page is being merged */
} cstack_sync_phase;

/* A snapshot of a session.  Plain data: copy it freely. */
typedef struct cstack_sync_status {
    cstack_sync_state state;
    cstack_sync_event event;
    int64_t cursor;         /* the server cursor merged up to */
    int64_t last_synced_ms; /* Unix time (ms) of the last catch-up; 0: never */
    int64_t pending;        /* local transactions not yet pushed (last seen) */
    int64_t pushed;         /* batches accepted during this session */
    int64_t rejected;       /* batches refused and set aside during this session */
    int64_t version;        /* EV_PUSHED / EV_REJECTED: the batch's local version */
    int http_status;        /* of the last response; 0 when there was none */
    int checksum_ok;        /* 1 state matches the server's, 0 it differs, -1 not checked */
    int initial;            /* non-zero during the first download (from cursor 0) */
    int64_t bytes_received; /* of the download in progress */
    int64_t bytes_total;    /* of the download in progress; -1 unknown */
    int64_t rows_applied;   /* server rows merged during this session */
    /* The catch-up in progress, in rows: merged so far, and that plus what
     * the server says remains (-1 unknown: no page has said yet). */
    int64_t rows_done;
    int64_t rows_total;
    cstack_sync_phase phase;
    int64_t attempts;       /* consecutive failed connection attempts */
    int64_t hidden;         /* EV_HIDDEN: rows the merge hid */
    int64_t undone;         /* rows of refused batches undone during this session
                               (cstack_sync_refusals lists them) */
    /* Self-repair (docs/sync.md): the models re-pulled because their
     * checksums differed from the server's, and the local rows of those
     * models forgotten and pulled again, during this session; the names of
     * the last repair's models (comma-separated, cut to fit).  `diverged`
     * is non-zero while the state still differs after a repair: the sync
     * then fails with CSTACK_EDIVERGED. */
    int64_t repaired_models;
    int64_t repaired_rows;
    char repaired_names[128];
    int diverged;
    /* Non-zero while the server runs another schema (409 schema_mismatch):
     * nothing is pushed or pulled, local writes stay queued, and the
     * session retries with backoff until the app or the server is upgraded
     * so that the schemas fit.  Both schema hashes (64 hex digits; the
     * server's is "" when it did not say). */
    int schema_mismatch;
    char schema_local[65];
    char schema_server[65];
    char last_error[256];   /* the last failure, "" when none */
    /* Rolling upgrades (docs/sync.md): the server runs a newer schema and
     * accepts this device's older one (schema_server names it); or the
     * server still runs the schema this device last synced under and the
     * app moved on (with schema_mismatch: it waits, writes queued, until the
     * server is migrated). */
    int schema_behind;
    int schema_ahead;
} cstack_sync_status;

/* Receives every status change.  `st` is borrowed for the call.  Called on
 * the session's thread (cstack_sync_start) or the caller's
 * (cstack_sync_run_once); it must not stop its own session. */
typedef void (*cstack_sync_status_fn)(const cstack_sync_status *st, void *ctx);

/* Starts a session for `db` on a new thread.  `o` and its strings are
 * copied.  `on_status` may be NULL.  On success *out is a session to end
 * with cstack_sync_stop() before closing `db`.
 * Errors: CSTACK_EMISUSE (missing url or token, db not bootstrapped),
 * CSTACK_EINVAL (url not http:// or https://), CSTACK_ENOMEM. */
CSTACK_API int cstack_sync_start(cstack *db, const cstack_sync_options *o,
                                 cstack_sync_status_fn on_status, void *ctx,
                                 cstack_sync_session **out);
/* Stops a session: interrupts its requests, joins its thread and frees it.
 * Nothing acknowledged is lost; an interrupted push is retried by the next
 * session (the server applies a retried batch once).  NULL ok. */
CSTACK_API void cstack_sync_stop(cstack_sync_session *s);
/* Copies the session's current status into *out. */
CSTACK_API int cstack_sync_session_status(cstack_sync_session *s, cstack_sync_status *out);
/* Asks a streaming session to push now rather than at its next poll. */
CSTACK_API void cstack_sync_nudge(cstack_sync_session *s);

/* Syncs once on the calling thread: pushes every pending local transaction,
 * then pulls until caught up with the server (comparing checksums with its
 * checkpoint when nothing is left to push), then returns.  `on_status` may
 * be NULL; `final` (optional) receives the last status.  A refused batch is
 * undone and set aside as in a session and is not an error here
 * (final->rejected counts them, final->undone their rows).  Errors name the server's answer: CSTACK_EUNAUTHORIZED (401: the
 * token was refused), CSTACK_EFORBIDDEN (403 on a pull or stream: e.g. the
 * device's site id belongs to another user), CSTACK_EMISMATCH (409: the
 * server runs another schema), CSTACK_ETOOBIG (413, or a response over
 * max_response), CSTACK_EUNAVAILABLE (503: shutting down), CSTACK_EBUSY (503
 * `locked`); CSTACK_EIO (the server is unreachable, answered another 5xx or
 * something that is not the protocol), CSTACK_EINVAL (a URL that is not
 * http:// or https://), CSTACK_EMISUSE, or the code of a failed local merge;
 * cstack_errmsg() explains.  Nothing is lost on failure: what was not
 * acknowledged stays queued. */
CSTACK_API int cstack_sync_run_once(cstack *db, const cstack_sync_options *o,
                                    cstack_sync_status_fn on_status, void *ctx,
                                    cstack_sync_status *final);

/* The number of batches set aside in _cstack_rejected (0 when none). */
CSTACK_API int cstack_sync_rejected_count(cstack *db, int64_t *count);

/* The rows of every local transaction the server refused, oldest first, as
 * a JSON array: [{"version":N,"status":403,"model":"Note","op":"create",
 * "key":{"id":..},"values":{..},"reason":"..","at":"<ISO 8601 UTC>"}].
 * `op` is "create", "update" or "delete"; `values` holds the refused values
 * of the columns the transaction wrote (null for a delete) in the envelope's
 * JSON mapping; `reason` is the server's message.  A refused transaction is
 * undone on the device (its rows return to the server's state for this
 * user, docs/client.md), so this is where an app finds what to show or
 * re-apply.  The records stay until the app deletes rows of the table
 * _cstack_refusals (cstack_with_sqlite).  On success *json_out is a
 * NUL-terminated string to free with cstack_free() ("[]" when none).
 * Errors: CSTACK_EMISUSE, CSTACK_ENOMEM, CSTACK_ESQLITE. */
CSTACK_API int cstack_sync_refusals(cstack *db, char **json_out);

/* Human name of a state ("connected") or event ("pushed"); never NULL. */
CSTACK_API const char *cstack_sync_state_name(cstack_sync_state state);
CSTACK_API const char *cstack_sync_event_name(cstack_sync_event event);

/* ------------------------------------------------------------------------ */
/* The JSON envelope (docs/envelope.md)                                      */
/* ------------------------------------------------------------------------ */

/* Maximum size of one envelope request in bytes: 64 MiB, room for a
 * create_many of the 100,000 rows the envelope accepts at about 670 bytes of
 * JSON each.  `cstack call` reads lines up to the same bound. */
#define CSTACK_ENVELOPE_MAX (64u * 1024u * 1024u)

/* Runs one JSON request (`{"model":..,"kind":..,"payload":{..}}`) against the
 * database and produces the JSON response: `{"status":"ok","data":..}` or
 * `{"status":"err","code":"..","message":".."}`.  Any malformed request
 * yields an err response, never a crash or a partial write.  On success
 * (CSTACK_OK) *response is a NUL-terminated string to free with cstack_free()
 * and *response_len (if not NULL) its length.  The return value is non-zero
 * only when no response could be produced at all (CSTACK_ENOMEM,
 * CSTACK_EMISUSE), in which case *response is NULL. */
CSTACK_API int cstack_envelope_call(cstack *db, const char *request, size_t len,
                                    char **response, size_t *response_len);

/* ---- live queries (docs/live.md) ----------------------------------------- */

typedef struct cstack_watch cstack_watch;
/* Called with one envelope response (JSON, not NUL-terminated: use len; the
 * bytes are valid only during the call). */
typedef void (*cstack_watch_cb)(void *ctx, const char *response, size_t len);
/* Watches the envelope read request `request` (find_many, find_first,
 * find_unique, count, aggregate, group_by): `cb` gets its response at once,
 * then again after every commit that changes it (by any path on this handle,
 * or by another connection or process on the same file).  throttle_ms < 0 =
 * the default (30 ms), 0 = every commit.  An invalid request, or one whose
 * first run fails, is CSTACK_EINVAL (cstack_errmsg says why) and watches
 * nothing.  Deliveries run on the runtime's delivery thread (native) or in
 * cstack_watch_pump, never two at once. */
CSTACK_API int cstack_watch_envelope(cstack *db, const char *request, size_t len,
                                     int throttle_ms, cstack_watch_cb cb, void *ctx,
                                     cstack_watch **out);
/* Unsubscribes; NULL ok; safe from inside its own callback; after it returns
 * (outside the callback) the callback is never called again.  Stop every
 * watch before cstack_close (which frees any left). */
CSTACK_API void cstack_watch_stop(cstack_watch *w);
/* Runs due deliveries on the calling thread and returns how many ran;
 * *next_ms (if not NULL) gets the ms until the next throttled delivery (or
 * poll for other processes' commits) is due, or -1 if none.  Needed where the
 * runtime has no delivery thread (a CSTACK_NO_THREADS build: the browser);
 * native builds deliver from their own thread and may also call it. */
CSTACK_API int cstack_watch_pump(cstack *db, int *next_ms);

/* ------------------------------------------------------------------------ */
/* Page stores: SQLite over a key-value store (docs/pagestore.md)           */
/* ------------------------------------------------------------------------ */

#define CSTACK_PAGESTORE_VERSION 1

/* One page of a batch: page number (1-based) and page_size bytes. */
typedef struct cstack_page {
    uint32_t pgno;
    const void *data;
} cstack_page;

/* What a store keeps per file besides its pages.  `commit` is the commit
 * marker: put_pages stores the meta of the batch with it, so a reader sees
 * the counter of the last batch that landed (0 = never written). */
typedef struct cstack_pagestore_meta {
    uint32_t npages;    /* the file's size in pages */
    uint32_t page_size; /* 0 until the first batch */
    uint64_t commit;
} cstack_pagestore_meta;

typedef struct cstack_pagestore cstack_pagestore;
/* A store of fixed-size pages, keyed by file name and page number.  Like
 * sqlite3_vfs, iVersion comes first and later versions only append members;
 * an implementation embeds this struct first and gets itself back as `ps`.
 * Callbacks return 0 or a negative CSTACK_E* code and may be called from any
 * thread, one call at a time per store (the VFS serializes them). */
struct cstack_pagestore {
    int iVersion; /* CSTACK_PAGESTORE_VERSION */
    /* Reads page `pgno` (page_size bytes) into buf; CSTACK_ENOTFOUND if the
     * file has no such page. */
    int (*get_page)(cstack_pagestore *ps, const char *file, uint32_t pgno, void *buf,
                    uint32_t page_size);
    /* Stores the n pages and the meta as ONE atomic batch: after a crash
     * either all of it or none of it is there.  Pages past meta->npages are
     * dropped in the same batch. */
    int (*put_pages)(cstack_pagestore *ps, const char *file, const cstack_page *pages, size_t n,
                     const cstack_pagestore_meta *meta);
    /* The file's meta; all zero for a file never written. */
    int (*size)(cstack_pagestore *ps, const char *file, cstack_pagestore_meta *meta);
    /* Drops every page from npages + 1 on, atomically (0 deletes the file). */
    int (*truncate)(cstack_pagestore *ps, const char *file, uint32_t npages);
    /* Frees the store. */
    void (*destroy)(cstack_pagestore *ps);
};

/* A store in memory (for tests): lives until destroyed. */
CSTACK_API int cstack_pagestore_memory(cstack_pagestore **out);
/* An LMDB store in directory `dir` (created if missing), at most
 * `max_bytes` large (0 = 1 GiB).  One LMDB write transaction per put_pages.
 * One process at a time: a second one gets CSTACK_EBUSY. */
CSTACK_API int cstack_pagestore_lmdb(const char *dir, uint64_t max_bytes, cstack_pagestore **out);
/* The page storage of a `cstack serve` server as a store (url and token of
 * `o`; `schema` must be the server's): a file is the latest backup of its
 * name, put_pages uploads the pages the server lacks and commits a new
 * manifest (atomic on the server), get_page fetches pages by hash, 64 at a
 * time, and keeps what it fetched in memory.  `site` (32 hex digits, NULL =
 * random) names the device on the server. */
CSTACK_API int cstack_pagestore_server(const cstack_schema *schema, const cstack_sync_options *o,
                                       const char *site, cstack_pagestore **out);
/* Registers a SQLite VFS named `name` over `store`, which it takes over
 * (also on failure).  Open databases on it with cstack_open_options.vfs. */
CSTACK_API int cstack_pagestore_register(const char *name, cstack_pagestore *store);
/* Unregisters the VFS and destroys its store; no database may be open on
 * it.  CSTACK_ENOTFOUND if no such page-store VFS. */
CSTACK_API int cstack_pagestore_unregister(const char *name);

/* Backup and restore through `cstack serve`'s page storage.  A backup is a
 * consistent snapshot (one read transaction) of the database file, sent as
 * pages: the server is asked which page hashes it lacks and only those are
 * uploaded.  `o` gives url and token (the other fields are ignored). */
typedef struct cstack_backup_info {
    int64_t id;          /* the backup's id on the server */
    uint32_t page_size;
    uint32_t pages;      /* pages of the database */
    uint32_t pages_sent; /* pages the server did not hold yet */
    uint64_t bytes_sent; /* request bodies: hashes, pages and the manifest */
    char error[256];     /* why, when the call failed */
} cstack_backup_info;

/* Backs up the database at `path` (opened for `schema`, possibly while an
 * application writes it) under `name` (NULL = "backup"). */
CSTACK_API int cstack_backup(const cstack_schema *schema, const char *path, const char *name,
                             const cstack_sync_options *o, cstack_backup_info *out);
/* Rebuilds backup `id` (0 = the user's latest) as a new database file at
 * `path`, which must not exist; checks every page's hash and PRAGMA
 * integrity_check before the file appears under its name.  The restored
 * database is the device that made the backup: its site id and sync cursor
 * come back, so `cstack sync` goes on from there; its version counter moves
 * past any batch the lost device pushed after the backup (docs/pagestore.md). */
CSTACK_API int cstack_restore(const cstack_schema *schema, const char *path, int64_t id,
                              const cstack_sync_options *o, cstack_backup_info *out);
/* The user's backups as JSON ({"backups":[{"id":..,"device":..,"name":..,
 * "created":ms,"pages":n,"page_size":p},...]}, newest first), to free with
 * cstack_free(). */
CSTACK_API int cstack_backup_list(const cstack_schema *schema, const cstack_sync_options *o,
                                  char **json_out, cstack_backup_info *out);

#ifdef __cplusplus
}
#endif

#endif /* CSTACK_H */
