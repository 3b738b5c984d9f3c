/*
 * envelope.h -- the JSON envelope's private interfaces (docs/envelope.md).
 *
 *   envelope.c  cstack_envelope_call: bounds, parsing, dispatch of one request,
 *               transactions, the ok/err response
 *   scan.c      the pre-scan of request bytes (nesting depth, NUL, exact
 *               numbers) and JSON syntax errors with line and column
 *   values.c    JSON <-> cstack_value by field type, data objects, unique
 *               wheres, rows as JSON
 *   where.c     where filters, orderBy, select, take/skip
 *   kinds.c     the handler of each request kind
 *
 * One call of cstack_envelope_call owns one `env`: the parsed request, the
 * table of exact number texts, the first error, the path of the part being
 * read (for messages like `payload.where.price.gt: ...`) and every buffer
 * allocated for values, all released when the call returns.  Nothing here is
 * shared between calls, so the envelope is as thread-safe as the runtime.
 */
#ifndef CS_ENVELOPE_H
#define CS_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cstack.h"
#include "schema/schema.h"
#include "util/buf.h"

/* Bounds, besides CSTACK_ENVELOPE_MAX for the request bytes. */
#define ENV_MAX_DEPTH 64                     /* nesting of JSON arrays and objects */
#define ENV_MAX_VALUES 2000000               /* JSON values and keys of one request */
#define ENV_MAX_TX_REQUESTS 10000            /* requests in one transaction */
#define ENV_MAX_ROWS 100000                  /* rows of one create_many */
#define ENV_MAX_LIST 10000                   /* in/notIn values, AND/OR/NOT members */
#define ENV_MAX_RESPONSE ((size_t)512 << 20) /* bytes of one response */

/* A number of the request whose text jansson would not reproduce exactly
 * (fractions, exponents, integers beyond int64, "-0").  The pre-scan replaces
 * it with a marker string ("\u0000" then its index) so its exact text stays
 * available; see scan.c. */
typedef struct env_num {
    size_t raw_off, raw_len; /* the number in the request */
    size_t new_off, new_len; /* its marker in the rewritten text */
} env_num;

typedef struct env {
    cstack *db;
    const cstack_schema *schema;
    const char *raw; /* the request bytes (borrowed) */
    size_t raw_len;
    env_num *nums;
    size_t nnums, capnums;
    bool bigint_str; /* "bigintAsString": Ints beyond 2^53 as strings */
    bool in_tx;      /* reading a request of a transaction (see env_fail) */

    int code; /* first error (0: none) and its message */
    char msg[1536];

    char path[1024]; /* where in the request we are, e.g. "payload.where.a" */
    size_t plen;

    void **owned; /* buffers freed when the call ends */
    size_t nowned, capowned;
} env;

/* ---- errors and paths (envelope.c) --------------------------------------- */

/* Records the first error as "PATH: MESSAGE" and returns `code`, so callers
 * can `return env_fail(...)`.  At the root PATH is "request", or nothing for
 * a request of a transaction, whose message gets "requests[i]: " instead. */
int env_fail(env *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records the runtime's failure `rc` with cstack_errmsg(), prefixed by the
 * current path when there is one. */
int env_store_fail(env *e, int rc);
/* Path building: push a key or an index, and restore a saved length. */
size_t env_path_key(env *e, const char *key);
size_t env_path_index(env *e, size_t i);
void env_path_set(env *e, size_t len);

/* Keeps `p` until the end of the call (freed with free()).  On OOM frees `p`
 * and returns CSTACK_ENOMEM with the error recorded. */
int env_own(env *e, void *p);

/* "a string", "a number", "an object", ... for messages. */
const char *env_kind_name(const json_t *j);
/* The closest name of `names` to `s` within a small edit distance, or NULL:
 * for "did you mean" hints. */
const char *env_suggest(const char *s, const char *const *names, size_t n);
/* Appends " (did you mean 'x'?)" to a message when `hint` is not NULL. */
const char *env_hint(char *buf, size_t n, const char *hint);

/* ---- scanning (scan.c) ----------------------------------------------------- */

/* Checks the request bytes (NUL, nesting depth), collects the numbers that
 * need markers and parses the request.  On success *root is the parsed
 * object tree (json_decref it); otherwise the error is recorded. */
int env_parse(env *e, const char *req, size_t len, json_t **root);

/* A JSON number of the request: either an int64 (`is_int`) or exact text. */
typedef struct env_number {
    bool is_int;
    int64_t i;
    const char *text; /* the number as written (both cases) */
    size_t len;
    char buf[24]; /* holds `text` for jansson integers */
} env_number;

/* Writes `v` in decimal to buf (NUL-terminated) and returns its length: the
 * envelope formats many integers, and snprintf is slow for that. */
size_t env_fmt_int(char buf[24], int64_t v);
/* True when `j` is a JSON number of the request; fills *out. */
bool env_get_number(const env *e, const json_t *j, env_number *out);
/* True when `j` is a JSON string of the request (not a number marker). */
bool env_is_string(const json_t *j);

/* ---- values (values.c) ----------------------------------------------------- */

/* Converts `j` (at the current path) to a canonical value of field `f`.  JSON
 * null gives a NULL value; the caller decides whether null is allowed. */
int env_value(env *e, const cs_field *f, const json_t *j, cstack_value *out);

/* How a data object is read: the fields a create must give, or any subset. */
typedef enum env_data_mode { ENV_DATA_CREATE, ENV_DATA_UPDATE, ENV_DATA_UNIQUE } env_data_mode;

/* Converts an object of field values (at the current path) into *out, whose
 * arrays are owned by the env.  UNIQUE allows only scalar fields with non-null
 * values; CREATE also reports missing required fields. */
int env_data(env *e, const cs_model *m, const json_t *obj, env_data_mode mode, cstack_data *out);

/* Appends a row as a JSON object (values by their field's type). */
int env_put_row(env *e, cs_buf *b, const cs_model *m, const cstack_row *row);
/* Appends an Int, as a string when it is beyond 2^53 and bigintAsString was
 * asked for. */
int env_put_int(env *e, cs_buf *b, int64_t i);
/* Appends a stored value of a field of type `type` in the SPEC mapping (Ints
 * through env_put_int). */
int env_put_value(env *e, cs_buf *b, cs_scalar type, const cstack_value *v);

/* Finds field `name` of `m` at the current path; records an unknown-field
 * error (with a hint) and returns NULL when there is none. */
const cs_field *env_field(env *e, const cs_model *m, const char *name);
/* The model named by `j` (a string) at the current path, or NULL (error
 * recorded). */
const cs_model *env_model(env *e, const json_t *j);

/* ---- where, order, select (where.c) --------------------------------------- */

/* Builds the filter of a where object (NULL for an empty one) at the current
 * path.  *out is owned by the caller (cstack_filter_free). */
int env_where(env *e, const cs_model *m, const json_t *j, cstack_filter **out);

/* The arguments of find_first / find_many. */
typedef struct env_query {
    cstack_query q;
    cstack_filter *where;
    bool take_zero; /* "take": 0 asks for no rows at all */
} env_query;

/* Reads where, orderBy, take, skip, cursor and select of a find payload.
 * Free with env_query_free (arrays are owned by the env). */
int env_query_read(env *e, const cs_model *m, const json_t *payload, env_query *out);
void env_query_free(env_query *q);
/* Reads a `select` list (at the current path) into arrays owned by the env. */
int env_select(env *e, const cs_model *m, const json_t *j, const char *const **out, size_t *n);
/* Reads a list of field names of an aggregate (`_sum` and so on): numeric
 * fields only when `numeric`, otherwise fields that have an order. */
int env_field_list(env *e, const cs_model *m, const json_t *j, bool numeric,
                   const char *const **out, size_t *n);

/* ---- kinds (kinds.c) -------------------------------------------------------- */

/* Checks that `payload` holds only the keys in `allowed` (NULL-terminated) and
 * those marked required; errors name the first offending key. */
int env_check_keys(env *e, const json_t *obj, const char *const *allowed,
                   const char *const *required);

/* Runs one request of kind `kind` on model `m` with `payload` (never NULL:
 * an empty object when absent) and appends its data to `out`. */
int env_run_kind(env *e, const char *kind, const cs_model *m, const json_t *payload, cs_buf *out);
/* True when `kind` is one of the model kinds (everything but transaction). */
bool env_kind_known(const char *kind);
/* The list of kinds for messages: "create, create_many, ...". */
const char *env_kind_list(void);

#endif
