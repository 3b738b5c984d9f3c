/*
 * envelope.h -- the JSON envelope's private interfaces (docs/envelope.md).
 *
 *   envelope.c  cstack_envelope_call: bounds, parsing (errors with line and
 *               column), dispatch of one request, transactions, the ok/err
 *               response
 *   values.c    JSON <-> cstack_value by field type, data objects, unique
 *               wheres, rows as JSON
 *   where.c     where filters, orderBy, select, take/skip
 *   kinds.c     the handler of each request kind
 *
 * One call of cstack_envelope_call owns one `env`: the first error, the path
 * of the part being read (for messages like `payload.where.price.gt: ...`)
 * and every buffer allocated for values, all released when the call returns,
 * like the parsed request.  Nothing here is shared between calls, so the
 * envelope is as thread-safe as the runtime.
 *
 * Requests are parsed by util/'s JSON reader (util/jsonr.h), whose syntax
 * errors are worded as jansson words them.
 * JSON values are `const jr_val *` of the request's tree; their
 * strings are not NUL-terminated, so names are passed with their length.
 */
#ifndef CS_ENVELOPE_H
#define CS_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cstack.h"
#include "schema/schema.h"
#include "util/buf.h"
#include "util/jsonr.h"

/* Bounds, besides CSTACK_ENVELOPE_MAX for the request bytes. */
#define ENV_MAX_DEPTH 64                     /* nesting of JSON arrays and objects */
#define ENV_MAX_VALUES 2000000               /* JSON values and keys of one request */
#define ENV_MAX_TX_REQUESTS 10000            /* requests in one transaction */
#define ENV_MAX_ROWS 100000                  /* rows of one create_many */
#define ENV_MAX_LIST 10000                   /* in/notIn values, AND/OR/NOT members */
#define ENV_MAX_RESPONSE ((size_t)512 << 20) /* bytes of one response */
#define ENV_MAX_PATH 80                      /* path parts kept; JSON nesting bounds them to 64 */

/* A part of the path of the value being read: an object key (n bytes,
 * borrowed from the request or a static name) or, when key is NULL, the
 * list index n.  The text ("payload.where[\"a b\"][2]") is only made for
 * an error message. */
typedef struct env_part {
    const char *key;
    size_t n;
} env_part;

typedef struct env {
    cstack *db;
    const cstack_schema *schema;
    const char *raw; /* the request bytes (borrowed) */
    size_t raw_len;
    bool bigint_str; /* "bigintAsString": Ints beyond 2^53 as strings */
    bool in_tx;      /* reading a request of a transaction (see env_fail) */

    int code; /* first error (0: none) and its message */
    char msg[1536];

    env_part path[ENV_MAX_PATH]; /* where in the request we are */
    size_t npath;                /* parts of path (beyond ENV_MAX_PATH: not kept) */
    size_t path_base;            /* the first part messages show (see transactions) */

    void **owned; /* buffers freed when the call ends */
    size_t nowned, capowned;

    /* The first nodes of the parsed request (jsonr.h): most requests fit. */
    jr_val nodes[64];

    /* The call's small arrays (a data object's fields, a select list...)
     * come from here before malloc: most requests need nothing else. */
    union {
        max_align_t align;
        unsigned char bytes[1024];
    } small;
    size_t small_used;
} env;

/* ---- errors and paths (envelope.c) --------------------------------------- */

/* Records the first error as "PATH: MESSAGE" and returns `code`, so callers
 * can `return env_fail(...)`.  At the root PATH is "request", or nothing for
 * a request of a transaction, whose message gets "requests[i]: " instead. */
int env_fail(env *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records the runtime's failure `rc` with cstack_errmsg(), prefixed by the
 * current path when there is one. */
int env_store_fail(env *e, int rc);
/* Path building: push a key (a C string, or n bytes, borrowed until popped)
 * or an index, returning a mark; env_path_set pops back to a mark. */
size_t env_path_key(env *e, const char *key);
size_t env_path_keyn(env *e, const char *key, size_t n);
size_t env_path_index(env *e, size_t i);
void env_path_set(env *e, size_t mark);

/* Keeps `p` until the end of the call (freed with free()).  On OOM frees `p`
 * and returns CSTACK_ENOMEM with the error recorded. */
int env_own(env *e, void *p);
/* A zeroed array of n (at least one) elements of `size` bytes that lives
 * until the end of the call; NULL on OOM with the error recorded. */
void *env_alloc(env *e, size_t n, size_t size);

/* "a string", "a number", "an object", ... for messages. */
const char *env_kind_name(const jr_val *j);
/* The closest name of `names` to `s` (len bytes) within a small edit
 * distance, or NULL: for "did you mean" hints. */
const char *env_suggest(const char *s, size_t len, const char *const *names, size_t n);
/* True when `name` (a C string) is the n bytes at s.  Inline: it decides
 * every key of every request, nearly always by the first byte. */
static inline bool env_name_is(const char *name, const char *s, size_t n)
{
    /* strncmp stops at the end of a shorter name (s holds no NUL). */
    if (n == 0)
        return name[0] == '\0';
    return name[0] == s[0] && strncmp(name + 1, s + 1, n - 1) == 0 && name[n] == '\0';
}
/* Appends " (did you mean 'x'?)" to a message when `hint` is not NULL. */
const char *env_hint(char *buf, size_t n, const char *hint);

/* ---- values (values.c) ----------------------------------------------------- */

/* A JSON number of the request: an int64 (`is_int`: written as an integer
 * that fits) or not, and always its exact text. */
typedef struct env_number {
    bool is_int;
    int64_t i;
    const char *text; /* the number as written */
    size_t len;
} env_number;

/* Writes `v` in decimal to buf (NUL-terminated) and returns its length: the
 * envelope formats many integers, and snprintf is slow for that. */
size_t env_fmt_int(char buf[24], int64_t v);
/* True when `j` is a JSON number; fills *out. */
bool env_get_number(const jr_val *j, env_number *out);

/* Converts `j` (at the current path) to a canonical value of field `f`.  JSON
 * null gives a NULL value; the caller decides whether null is allowed. */
int env_value(env *e, const cs_field *f, const jr_val *j, cstack_value *out);

/* How a data object is read: the fields a create must give, or any subset. */
typedef enum env_data_mode { ENV_DATA_CREATE, ENV_DATA_UPDATE, ENV_DATA_UNIQUE } env_data_mode;

/* Converts an object of field values (at the current path) into *out, whose
 * arrays are owned by the env.  UNIQUE allows only scalar fields with non-null
 * values; CREATE also reports missing required fields. */
int env_data(env *e, const cs_model *m, const jr_val *obj, env_data_mode mode, cstack_data *out);

/* Appends a row of a model as a JSON object (values by their field's type). */
int env_put_row(env *e, cs_buf *b, const cstack_row *row);
/* Appends an Int, as a string when it is beyond 2^53 and bigintAsString was
 * asked for. */
int env_put_int(env *e, cs_buf *b, int64_t i);
/* Appends a stored value of a field of type `type` in the SPEC mapping (Ints
 * through env_put_int). */
int env_put_value(env *e, cs_buf *b, cs_scalar type, const cstack_value *v);

/* Finds field `name` (n bytes) of `m` at the current path; records an
 * unknown-field error (with a hint) and returns NULL when there is none. */
const cs_field *env_field(env *e, const cs_model *m, const char *name, size_t n);
/* The model named by `j` (a string) at the current path, or NULL (error
 * recorded). */
const cs_model *env_model(env *e, const jr_val *j);

/* ---- where, order, select (where.c) --------------------------------------- */

/* Builds the filter of a where object (NULL for an empty one) at the current
 * path.  *out is owned by the caller (cstack_filter_free). */
int env_where(env *e, const cs_model *m, const jr_val *j, cstack_filter **out);

/* The arguments of find_first / find_many. */
typedef struct env_query {
    cstack_query q;
    cstack_filter *where;
    bool take_zero; /* "take": 0 asks for no rows at all */
} env_query;

/* Reads where, orderBy, take, skip, cursor and select of a find payload.
 * Free with env_query_free (arrays are owned by the env). */
int env_query_read(env *e, const cs_model *m, const jr_val *payload, env_query *out);
void env_query_free(env_query *q);
/* Reads an `orderBy` (a list of {field, direction}, or one) into an array
 * owned by the env. */
int env_order(env *e, const cs_model *m, const jr_val *j, const cstack_order **out, size_t *n);
/* Reads a `select` list (at the current path) into arrays owned by the env. */
int env_select(env *e, const cs_model *m, const jr_val *j, const char *const **out, size_t *n);
/* Reads a list of field names of an aggregate (`_sum` and so on): numeric
 * fields only when `numeric`, otherwise fields that have an order. */
int env_field_list(env *e, const cs_model *m, const jr_val *j, bool numeric,
                   const char *const **out, size_t *n);

/* ---- kinds (kinds.c) -------------------------------------------------------- */

/* Checks that `payload` holds only the keys in `allowed` (NULL-terminated) and
 * those marked required; errors name the first offending key. */
int env_check_keys(env *e, const jr_val *obj, const char *const *allowed,
                   const char *const *required);

/* Runs one request of kind `kind` (a JSON string) on model `m` with
 * `payload` (never NULL: an empty object when absent) and appends its data to
 * `out`. */
int env_run_kind(env *e, const jr_val *kind, const cs_model *m, const jr_val *payload, cs_buf *out);
/* True when `kind` (n bytes) is one of the model kinds (everything but
 * transaction). */
bool env_kind_known(const char *kind, size_t n);
/* Whether a request of the kind may leave its model out (hidden_rows). */
bool env_kind_model_optional(const char *kind, size_t n);
/* The list of kinds for messages: "create, create_many, ...". */
const char *env_kind_list(void);

#endif
