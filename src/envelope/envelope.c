/*
 * envelope.c -- cstack_envelope_call: one JSON request in, one JSON response
 * out (the format is documented in docs/envelope.md).
 *
 * A call goes: bound the size, parse (jsonr.c), read the request object, run
 * its kind (kinds.c) or its transaction, and wrap the data in
 * {"status":"ok","data":...}.  The first error anywhere stops the call and
 * becomes {"status":"err","code":...,"message":"PATH: ..."}, where PATH says
 * which part of the request was at fault.  Writes go through the runtime's
 * delegates, each atomic on its own; a transaction brackets its requests with
 * cstack_begin and cstack_rollback, so an error never leaves partial data.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope/envelope.h"
#include "store/store.h"
#include "value/value.h"

/* ---- errors and paths ------------------------------------------------------ */

/* Cuts a trailing, incomplete UTF-8 sequence (left by truncation) and
 * replaces any other invalid byte, so the message is valid in JSON. */
static void utf8_clean(char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        if (k && i + k > n) {
            s[i] = '\0'; /* truncated in the middle of a character */
            return;
        }
        if (k && cs_utf8_valid(s + i, k)) {
            i += k;
        } else {
            s[i++] = '?';
        }
    }
}

static size_t path_text(const env *e, char *out, size_t cap);

int env_fail(env *e, int code, const char *fmt, ...)
{
    if (e->code)
        return e->code; /* the first error explains the failure */
    e->code = code;
    char path[1024];
    size_t plen = path_text(e, path, sizeof path);
    int k = 0;
    if (plen || !e->in_tx)
        k = snprintf(e->msg, sizeof e->msg, "%s: ", plen ? path : "request");
    if (k < 0 || (size_t)k >= sizeof e->msg)
        k = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg + k, sizeof e->msg - (size_t)k, fmt, ap);
    va_end(ap);
    utf8_clean(e->msg);
    return code;
}

int env_store_fail(env *e, int rc)
{
    if (e->code)
        return e->code;
    e->code = rc;
    char path[1024];
    if (path_text(e, path, sizeof path))
        snprintf(e->msg, sizeof e->msg, "%s: %s", path, cstack_errmsg(e->db));
    else
        snprintf(e->msg, sizeof e->msg, "%s", cstack_errmsg(e->db));
    utf8_clean(e->msg);
    return rc;
}

static bool ident_like(const char *s, size_t n)
{
    if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static void text_append(char *out, size_t cap, size_t *len, const char *part, size_t n)
{
    size_t room = cap - 1 - *len;
    if (n > room)
        n = room; /* a very deep path keeps its beginning */
    memcpy(out + *len, part, n);
    *len += n;
    out[*len] = '\0';
}

/* Writes the path from e->path_base as text, e.g. payload.where["a b"][2],
 * and returns its length (0: at the root). */
static size_t path_text(const env *e, char *out, size_t cap)
{
    size_t len = 0, end = e->npath < ENV_MAX_PATH ? e->npath : ENV_MAX_PATH;
    out[0] = '\0';
    for (size_t i = e->path_base; i < end; i++) {
        const env_part *p = &e->path[i];
        char part[256];
        size_t n;
        if (!p->key) {
            part[0] = '[';
            n = env_fmt_int(part + 1, (int64_t)p->n) + 1;
            part[n++] = ']';
        } else if (ident_like(p->key, p->n)) {
            if (len)
                text_append(out, cap, &len, ".", 1);
            text_append(out, cap, &len, p->key, p->n);
            continue;
        } else {
            /* Odd keys are quoted and shortened, so a path stays readable. */
            char q[200];
            cs_value_quote(q, sizeof q, p->key, p->n);
            n = (size_t)snprintf(part, sizeof part, "[\"%s\"]", q);
        }
        text_append(out, cap, &len, part, n);
    }
    return len;
}

static size_t path_push(env *e, const char *key, size_t n)
{
    size_t mark = e->npath++;
    if (mark < ENV_MAX_PATH) {
        e->path[mark].key = key;
        e->path[mark].n = n;
    }
    return mark;
}

size_t env_path_keyn(env *e, const char *key, size_t n)
{
    return path_push(e, key, n);
}

size_t env_path_key(env *e, const char *key)
{
    return path_push(e, key, strlen(key));
}

size_t env_path_index(env *e, size_t i)
{
    return path_push(e, NULL, i);
}

void env_path_set(env *e, size_t mark)
{
    if (mark < e->npath)
        e->npath = mark;
}

int env_own(env *e, void *p)
{
    if (e->nowned == e->capowned) {
        size_t cap = e->capowned ? e->capowned * 2 : 16;
        void **o = realloc(e->owned, cap * sizeof *o);
        if (!o) {
            free(p);
            return env_fail(e, CSTACK_ENOMEM, "out of memory");
        }
        e->owned = o;
        e->capowned = cap;
    }
    e->owned[e->nowned++] = p;
    return 0;
}

void *env_alloc(env *e, size_t n, size_t size)
{
    const size_t align = sizeof e->small.align;
    if (n == 0)
        n = 1;
    size_t room = sizeof e->small.bytes - e->small_used;
    if (n <= room / size) {
        void *p = e->small.bytes + e->small_used;
        size_t bytes = (n * size + align - 1) / align * align;
        e->small_used += bytes < room ? bytes : room;
        return memset(p, 0, n * size);
    }
    void *p = calloc(n, size);
    if (!p || env_own(e, p)) {
        env_fail(e, CSTACK_ENOMEM, "out of memory");
        return NULL;
    }
    return p;
}

/* Frees what was kept since `mark` (a transaction frees each request's). */
static void own_release(env *e, size_t mark)
{
    while (e->nowned > mark)
        free(e->owned[--e->nowned]);
}

const char *env_kind_name(const jr_val *j)
{
    switch (j->type) {
    case JR_OBJECT:
        return "an object";
    case JR_ARRAY:
        return "a list";
    case JR_STRING:
        return "a string";
    case JR_NUMBER:
        return "a number";
    case JR_TRUE:
    case JR_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Edit distance ignoring ASCII case, or a large number for long strings. */
static size_t distance(const char *a, size_t na, const char *b)
{
    size_t nb = strlen(b);
    if (na > 64 || nb > 64)
        return 99;
    size_t row[65];
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (lower(a[i - 1]) != lower(b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

const char *env_suggest(const char *s, size_t len, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t bestd = len < 4 ? 1 : 2; /* short names: one typo at most */
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(s, len, names[i]);
        if (d <= bestd && (!best || d < bestd)) {
            best = names[i];
            bestd = d;
        }
    }
    return best;
}

const char *env_hint(char *buf, size_t n, const char *hint)
{
    if (!hint)
        return "";
    snprintf(buf, n, " (did you mean '%s'?)", hint);
    return buf;
}

/* ---- one request ----------------------------------------------------------- */

static const char *const REQUEST_KEYS[] = {"model", "kind", "payload", "bigintAsString", NULL};
static const char *const INNER_KEYS[] = {"model", "kind", "payload", NULL};
static const char *const KIND_REQUIRED[] = {"kind", NULL};

static int run_transaction(env *e, const jr_val *payload, cs_buf *out);

/* The payload of a request that leaves it out. */
static const jr_val EMPTY_OBJECT = {.u.span = 1, .n = 0, .type = JR_OBJECT};

static const jr_val *payload_of(env *e, const jr_val *req)
{
    const jr_val *p = jr_get(req, "payload");
    if (!p || jr_is(p, JR_NULL)) /* null: CrateStack's hosts send it for "no argument" */
        return NULL;
    if (!jr_is(p, JR_OBJECT)) {
        size_t mark = env_path_key(e, "payload");
        env_fail(e, CSTACK_EINVAL, "expected an object, got %s", env_kind_name(p));
        env_path_set(e, mark);
    }
    return p;
}

/* The kind of a request: a string naming a kind, or NULL (error recorded). */
static const jr_val *kind_of(env *e, const jr_val *req)
{
    const jr_val *k = jr_get(req, "kind");
    size_t mark = env_path_key(e, "kind");
    if (!jr_is(k, JR_STRING)) {
        env_fail(e, CSTACK_EINVAL, "expected a string, got %s", env_kind_name(k));
        k = NULL;
    } else if (!env_kind_known(jr_str(k), jr_len(k)) && !jr_str_is(k, "transaction")) {
        char q[200];
        cs_value_quote(q, sizeof q, jr_str(k), jr_len(k));
        env_fail(e, CSTACK_EINVAL, "unknown kind '%s' (expected one of %s, transaction)", q,
                 env_kind_list());
        k = NULL;
    }
    env_path_set(e, mark);
    return k;
}

/* Reads model and payload of a request of `kind` (not a transaction) and
 * runs it. */
static int run_model_request(env *e, const jr_val *req, const jr_val *kind, cs_buf *out)
{
    const jr_val *model = jr_get(req, "model");
    size_t mark = env_path_key(e, "model");
    const cs_model *m = NULL;
    bool optional = env_kind_model_optional(jr_str(kind), jr_len(kind));
    if (model)
        m = env_model(e, model);
    else if (!optional)
        env_fail(e, CSTACK_EINVAL, "missing (kind '%.*s' needs a model)", (int)jr_len(kind),
                 jr_str(kind));
    env_path_set(e, mark);
    if (!m && (model || !optional))
        return e->code;
    const jr_val *payload = payload_of(e, req);
    if (e->code)
        return e->code;
    mark = env_path_key(e, "payload");
    int rc = env_run_kind(e, kind, m, payload ? payload : &EMPTY_OBJECT, out);
    env_path_set(e, mark);
    return rc;
}

static int run_request(env *e, const jr_val *req, cs_buf *out)
{
    if (!jr_is(req, JR_OBJECT))
        return env_fail(e, CSTACK_EINVAL, "expected a JSON object, got %s", env_kind_name(req));
    if (env_check_keys(e, req, REQUEST_KEYS, KIND_REQUIRED))
        return e->code;
    const jr_val *big = jr_get(req, "bigintAsString");
    if (big) {
        size_t mark = env_path_key(e, "bigintAsString");
        if (!jr_is(big, JR_TRUE) && !jr_is(big, JR_FALSE))
            env_fail(e, CSTACK_EINVAL, "expected true or false, got %s", env_kind_name(big));
        env_path_set(e, mark);
        if (e->code)
            return e->code;
        e->bigint_str = jr_is(big, JR_TRUE);
    }
    const jr_val *kind = kind_of(e, req);
    if (!kind)
        return e->code;
    if (!jr_str_is(kind, "transaction"))
        return run_model_request(e, req, kind, out);
    if (jr_get(req, "model")) {
        size_t mark = env_path_key(e, "model");
        env_fail(e, CSTACK_EINVAL, "a transaction takes no model (each request names its own)");
        env_path_set(e, mark);
        return e->code;
    }
    const jr_val *payload = payload_of(e, req);
    if (e->code)
        return e->code;
    if (!payload)
        return env_fail(e, CSTACK_EINVAL,
                        "missing payload: a transaction needs {\"requests\":[...]}");
    size_t mark = env_path_key(e, "payload");
    int rc = run_transaction(e, payload, out);
    env_path_set(e, mark);
    return rc;
}

/* ---- transactions ------------------------------------------------------------ */

/* Runs request i of a transaction; its paths are relative to the request. */
static int run_inner(env *e, const jr_val *req, cs_buf *out)
{
    if (!jr_is(req, JR_OBJECT))
        return env_fail(e, CSTACK_EINVAL, "expected a request object, got %s", env_kind_name(req));
    if (env_check_keys(e, req, INNER_KEYS, KIND_REQUIRED))
        return e->code;
    const jr_val *kind = kind_of(e, req);
    if (!kind)
        return e->code;
    if (jr_str_is(kind, "transaction")) {
        size_t mark = env_path_key(e, "kind");
        env_fail(e, CSTACK_EINVAL, "a transaction cannot be nested in a transaction");
        env_path_set(e, mark);
        return e->code;
    }
    return run_model_request(e, req, kind, out);
}

/* Reads payload.requests (the path is at "payload"). */
static const jr_val *requests_of(env *e, const jr_val *payload)
{
    static const char *const keys[] = {"requests", NULL};
    if (env_check_keys(e, payload, keys, keys))
        return NULL;
    const jr_val *list = jr_get(payload, "requests");
    size_t mark = env_path_key(e, "requests");
    if (!jr_is(list, JR_ARRAY))
        env_fail(e, CSTACK_EINVAL, "expected a list of requests, got %s", env_kind_name(list));
    else if (jr_size(list) > ENV_MAX_TX_REQUESTS)
        env_fail(e, CSTACK_ETOOBIG, "%zu requests; a transaction holds at most %d", jr_size(list),
                 ENV_MAX_TX_REQUESTS);
    env_path_set(e, mark);
    return e->code ? NULL : list;
}

static int run_transaction(env *e, const jr_val *payload, cs_buf *out)
{
    const jr_val *list = requests_of(e, payload);
    if (!list)
        return e->code;
    int rc = cstack_begin(e->db);
    if (rc)
        return env_store_fail(e, rc);
    rc = cs_buf_putc(out, '[');
    jr_iter it = jr_iter_of(list);
    size_t i = 0;
    for (const jr_val *req; !rc && (req = jr_iter_elem(&it)); i++) {
        if (i)
            rc = cs_buf_putc(out, ',');
        size_t saved_base = e->path_base, own_mark = e->nowned, small_mark = e->small_used;
        e->path_base = e->npath; /* messages inside say "requests[i]: payload..." */
        e->in_tx = true;
        if (!rc)
            rc = run_inner(e, req, out);
        e->in_tx = false;
        own_release(e, own_mark);
        e->small_used = small_mark;
        e->path_base = saved_base;
        if (rc)
            break;
    }
    if (rc) {
        cstack_rollback(e->db);
        if (!e->code) /* a failure of the output buffer itself */
            return rc;
        /* Prefix the failing index; a message cut at the end stays valid. */
        char prefix[40];
        size_t pn = (size_t)snprintf(prefix, sizeof prefix, "requests[%zu]: ", i);
        size_t mn = strlen(e->msg);
        if (mn > sizeof e->msg - 1 - pn)
            mn = sizeof e->msg - 1 - pn;
        memmove(e->msg + pn, e->msg, mn);
        memcpy(e->msg, prefix, pn);
        e->msg[pn + mn] = '\0';
        utf8_clean(e->msg);
        return e->code;
    }
    if ((rc = cstack_commit(e->db)))
        return env_store_fail(e, rc);
    return cs_buf_putc(out, ']');
}

/* ---- parsing ------------------------------------------------------------------ */

/* Line and column (from 1, in bytes) of byte `off` of the request. */
static void line_col(const env *e, size_t off, size_t *line, size_t *col)
{
    size_t l = 1, start = 0;
    if (off > e->raw_len)
        off = e->raw_len;
    for (size_t i = 0; i < off; i++)
        if (e->raw[i] == '\n') {
            l++;
            start = i + 1;
        }
    *line = l;
    *col = off - start + 1;
}

static int fail_at(env *e, int code, size_t off, const char *what)
{
    size_t line, col;
    line_col(e, off, &line, &col);
    return env_fail(e, code, "%s (line %zu, column %zu)", what, line, col);
}

/* Parses the request into *doc (freed by the caller, also on failure). */
static int parse_request(env *e, const char *req, size_t len, jr_doc *doc)
{
    static const jr_limits limits = {ENV_MAX_DEPTH, ENV_MAX_VALUES};
    e->raw = req;
    e->raw_len = len;
    jr_error err;
    char what[sizeof err.text + 32];
    switch (
        jr_parse(req, len, &limits, e->nodes, sizeof e->nodes / sizeof e->nodes[0], doc, &err)) {
    case JR_OK:
        return 0;
    case JR_ESYNTAX:
        snprintf(what, sizeof what, "not valid JSON: %s", err.text);
        return fail_at(e, CSTACK_EINVAL, err.at, what);
    case JR_ENUL:
        return fail_at(e, CSTACK_EINVAL, err.at, "a NUL byte is not allowed in a request");
    case JR_ENULESC:
        return fail_at(e, CSTACK_EINVAL, err.at,
                       "strings cannot contain \\u0000 (NUL): it cannot be stored");
    case JR_EDEPTH:
        snprintf(what, sizeof what, "JSON nested deeper than %d levels", ENV_MAX_DEPTH);
        return fail_at(e, CSTACK_ETOOBIG, err.at, what);
    case JR_EVALUES:
        snprintf(what, sizeof what, "more than %d JSON values", ENV_MAX_VALUES);
        return fail_at(e, CSTACK_ETOOBIG, err.at, what);
    default:
        return env_fail(e, CSTACK_ENOMEM, "out of memory");
    }
}

/* ---- the entry point ----------------------------------------------------------- */

static int err_response(const env *e, cs_buf *out)
{
    cs_buf_reset(out);
    const char *name = cstack_errname(e->code);
    int rc = cs_buf_puts(out, "{\"status\":\"err\",\"code\":");
    if (!rc)
        rc = cs_buf_json_str(out, name, strlen(name));
    if (!rc)
        rc = cs_buf_puts(out, ",\"message\":");
    if (!rc)
        rc = cs_buf_json_str(out, e->msg, strlen(e->msg));
    return rc ? rc : cs_buf_putc(out, '}');
}

/* Gives an error of the output buffer itself (ENOMEM, ETOOBIG) a message. */
static void buffer_failure(env *e, int rc)
{
    env_path_set(e, 0);
    e->path_base = 0;
    if (rc == CSTACK_ETOOBIG)
        env_fail(e, rc, "the response would exceed %zu MiB; ask for fewer rows (take/skip)",
                 ENV_MAX_RESPONSE >> 20);
    else
        env_fail(e, rc, "%s", cstack_errstr(rc));
}

/* Sets up the env of a call.  The message, the path parts and the small
 * arena are written before they are read, so they are not cleared: the env
 * is some 4 KiB, and this runs on every call. */
static void env_init(env *e, cstack *db)
{
    e->db = db;
    e->schema = cstack_schema_of(db);
    e->raw = NULL;
    e->raw_len = 0;
    e->bigint_str = false;
    e->in_tx = false;
    e->code = 0;
    e->msg[0] = '\0';
    e->npath = 0;
    e->path_base = 0;
    e->owned = NULL;
    e->nowned = e->capowned = 0;
    e->small_used = 0;
}

static void env_free(env *e)
{
    own_release(e, 0);
    free(e->owned);
}

/* Answers the request in `out`: the ok response or the err response.
 * Returns 0, or the failure of the buffer itself to hold even the err
 * response. */
static int respond(env *e, const char *request, size_t len, cs_buf *out)
{
    jr_doc doc = {0};
    /* Room for a typical response at once, rather than growing to it. */
    int rc = cs_buf_reserve(out, 255);
    if (!rc && len > CSTACK_ENVELOPE_MAX)
        rc = env_fail(e, CSTACK_ETOOBIG, "the request is %zu bytes; the limit is %u bytes", len,
                      CSTACK_ENVELOPE_MAX);
    else if (!rc && !(rc = parse_request(e, request, len, &doc)))
        rc = cs_buf_puts(out, "{\"status\":\"ok\",\"data\":");
    if (!rc)
        rc = run_request(e, doc.vals, out);
    if (!rc)
        rc = cs_buf_putc(out, '}');
    if (rc && !e->code)
        buffer_failure(e, rc);
    if (rc)
        rc = err_response(e, out);
    jr_doc_free(&doc);
    return rc;
}

int cstack_envelope_call(cstack *db, const char *request, size_t len, char **response,
                         size_t *response_len)
{
    cs_enter(db);
    if (response)
        *response = NULL;
    if (response_len)
        *response_len = 0;
    if (!db || !response || (!request && len))
        return CSTACK_EMISUSE;
    env e;
    env_init(&e, db);
    cs_buf out = CS_BUF_INIT;
    out.max = ENV_MAX_RESPONSE;
    int rc = respond(&e, request ? request : "", len, &out);
    env_free(&e);
    if (rc) {
        cs_buf_free(&out);
        /* Even without memory for a message, say what happened if possible. */
        *response = cs_strdup("{\"status\":\"err\",\"code\":\"nomem\",\"message\":\"out of "
                              "memory\"}");
        if (!*response)
            return CSTACK_ENOMEM;
        if (response_len)
            *response_len = strlen(*response);
        return CSTACK_OK;
    }
    if (response_len)
        *response_len = out.len;
    *response = cs_buf_take(&out);
    return *response ? CSTACK_OK : CSTACK_ENOMEM;
}
