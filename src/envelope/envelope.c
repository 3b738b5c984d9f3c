/*
 * envelope.c -- cstack_envelope_call: one JSON request in, one JSON response
 * out (the format is documented in docs/envelope.md).
 *
 * A call goes: bound the size, pre-scan and parse (scan.c), read the request
 * object, run its kind (kinds.c) or its transaction, and wrap the data in
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

int env_fail(env *e, int code, const char *fmt, ...)
{
    if (e->code)
        return e->code; /* the first error explains the failure */
    e->code = code;
    int k = 0;
    if (e->plen || !e->in_tx)
        k = snprintf(e->msg, sizeof e->msg, "%s: ", e->plen ? e->path : "request");
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
    if (e->plen)
        snprintf(e->msg, sizeof e->msg, "%s: %s", e->path, cstack_errmsg(e->db));
    else
        snprintf(e->msg, sizeof e->msg, "%s", cstack_errmsg(e->db));
    utf8_clean(e->msg);
    return rc;
}

static bool ident_like(const char *s)
{
    size_t n = strlen(s);
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

static void path_append(env *e, const char *part)
{
    size_t n = strlen(part), room = sizeof e->path - 1 - e->plen;
    if (n > room)
        n = room; /* a very deep path keeps its beginning */
    memcpy(e->path + e->plen, part, n);
    e->plen += n;
    e->path[e->plen] = '\0';
}

size_t env_path_key(env *e, const char *key)
{
    size_t mark = e->plen;
    if (ident_like(key)) {
        /* The common case, on every key of every request: no printf. */
        if (e->plen)
            path_append(e, ".");
        path_append(e, key);
    } else {
        /* Odd keys are quoted and shortened, so a path stays readable. */
        char q[200], part[256];
        cs_value_quote(q, sizeof q, key, strlen(key));
        snprintf(part, sizeof part, "[\"%s\"]", q);
        path_append(e, part);
    }
    return mark;
}

size_t env_path_index(env *e, size_t i)
{
    size_t mark = e->plen;
    char part[32];
    part[0] = '[';
    size_t n = env_fmt_int(part + 1, (int64_t)i);
    part[n + 1] = ']';
    part[n + 2] = '\0';
    path_append(e, part);
    return mark;
}

void env_path_set(env *e, size_t len)
{
    if (len < e->plen) {
        e->plen = len;
        e->path[len] = '\0';
    }
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

/* Frees what was kept since `mark` (a transaction frees each request's). */
static void own_release(env *e, size_t mark)
{
    while (e->nowned > mark)
        free(e->owned[--e->nowned]);
}

const char *env_kind_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return env_is_string(j) ? "a string" : "a number";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
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
static size_t distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
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

const char *env_suggest(const char *s, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t bestd = strlen(s) < 4 ? 1 : 2; /* short names: one typo at most */
    for (size_t i = 0; i < n; i++) {
        size_t d = distance(s, names[i]);
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

static int run_transaction(env *e, const json_t *payload, cs_buf *out);

static const json_t *payload_of(env *e, const json_t *req)
{
    const json_t *p = json_object_get(req, "payload");
    if (!p)
        return NULL;
    if (!json_is_object(p)) {
        size_t mark = env_path_key(e, "payload");
        env_fail(e, CSTACK_EINVAL, "expected an object, got %s", env_kind_name(p));
        env_path_set(e, mark);
    }
    return p;
}

static const char *kind_of(env *e, const json_t *req)
{
    const json_t *k = json_object_get(req, "kind");
    size_t mark = env_path_key(e, "kind");
    const char *kind = NULL;
    if (!env_is_string(k))
        env_fail(e, CSTACK_EINVAL, "expected a string, got %s", env_kind_name(k));
    else if (!env_kind_known(kind = json_string_value(k)) && strcmp(kind, "transaction") != 0) {
        char q[200];
        cs_value_quote(q, sizeof q, kind, strlen(kind));
        env_fail(e, CSTACK_EINVAL, "unknown kind '%s' (expected one of %s, transaction)", q,
                 env_kind_list());
        kind = NULL;
    }
    env_path_set(e, mark);
    return kind;
}

/* Reads model and payload of a request of `kind` (not a transaction) and
 * runs it. */
static int run_model_request(env *e, const json_t *req, const char *kind, cs_buf *out)
{
    const json_t *model = json_object_get(req, "model");
    size_t mark = env_path_key(e, "model");
    const cs_model *m = NULL;
    if (model)
        m = env_model(e, model);
    else
        env_fail(e, CSTACK_EINVAL, "missing (kind '%s' needs a model)", kind);
    env_path_set(e, mark);
    if (!m)
        return e->code;
    const json_t *payload = payload_of(e, req);
    if (e->code)
        return e->code;
    json_t *empty = payload ? NULL : json_object();
    if (!payload && !empty)
        return env_fail(e, CSTACK_ENOMEM, "out of memory");
    mark = env_path_key(e, "payload");
    int rc = env_run_kind(e, kind, m, payload ? payload : empty, out);
    env_path_set(e, mark);
    json_decref(empty);
    return rc;
}

static int run_request(env *e, const json_t *req, cs_buf *out)
{
    if (!json_is_object(req))
        return env_fail(e, CSTACK_EINVAL, "expected a JSON object, got %s", env_kind_name(req));
    if (env_check_keys(e, req, REQUEST_KEYS, KIND_REQUIRED))
        return e->code;
    const json_t *big = json_object_get(req, "bigintAsString");
    if (big) {
        size_t mark = env_path_key(e, "bigintAsString");
        if (!json_is_boolean(big))
            env_fail(e, CSTACK_EINVAL, "expected true or false, got %s", env_kind_name(big));
        env_path_set(e, mark);
        if (e->code)
            return e->code;
        e->bigint_str = json_is_true(big);
    }
    const char *kind = kind_of(e, req);
    if (!kind)
        return e->code;
    if (strcmp(kind, "transaction") != 0)
        return run_model_request(e, req, kind, out);
    if (json_object_get(req, "model")) {
        size_t mark = env_path_key(e, "model");
        env_fail(e, CSTACK_EINVAL, "a transaction takes no model (each request names its own)");
        env_path_set(e, mark);
        return e->code;
    }
    const json_t *payload = payload_of(e, req);
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
static int run_inner(env *e, const json_t *req, cs_buf *out)
{
    if (!json_is_object(req))
        return env_fail(e, CSTACK_EINVAL, "expected a request object, got %s", env_kind_name(req));
    if (env_check_keys(e, req, INNER_KEYS, KIND_REQUIRED))
        return e->code;
    const char *kind = kind_of(e, req);
    if (!kind)
        return e->code;
    if (strcmp(kind, "transaction") == 0) {
        size_t mark = env_path_key(e, "kind");
        env_fail(e, CSTACK_EINVAL, "a transaction cannot be nested in a transaction");
        env_path_set(e, mark);
        return e->code;
    }
    return run_model_request(e, req, kind, out);
}

/* Reads payload.requests (the path is at "payload"). */
static const json_t *requests_of(env *e, const json_t *payload)
{
    static const char *const keys[] = {"requests", NULL};
    if (env_check_keys(e, payload, keys, keys))
        return NULL;
    const json_t *list = json_object_get(payload, "requests");
    size_t mark = env_path_key(e, "requests");
    if (!json_is_array(list))
        env_fail(e, CSTACK_EINVAL, "expected a list of requests, got %s", env_kind_name(list));
    else if (json_array_size(list) > ENV_MAX_TX_REQUESTS)
        env_fail(e, CSTACK_ETOOBIG, "%zu requests; a transaction holds at most %d",
                 json_array_size(list), ENV_MAX_TX_REQUESTS);
    env_path_set(e, mark);
    return e->code ? NULL : list;
}

static int run_transaction(env *e, const json_t *payload, cs_buf *out)
{
    const json_t *list = requests_of(e, payload);
    if (!list)
        return e->code;
    int rc = cstack_begin(e->db);
    if (rc)
        return env_store_fail(e, rc);
    rc = cs_buf_putc(out, '[');
    size_t i = 0;
    for (; i < json_array_size(list) && !rc; i++) {
        if (i)
            rc = cs_buf_putc(out, ',');
        size_t saved_len = e->plen, own_mark = e->nowned;
        env_path_set(e, 0); /* messages inside say "requests[i]: payload..." */
        e->in_tx = true;
        if (!rc)
            rc = run_inner(e, json_array_get(list, i), out);
        e->in_tx = false;
        own_release(e, own_mark);
        e->plen = saved_len;
        e->path[saved_len] = '\0';
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
    if (rc == CSTACK_ETOOBIG)
        env_fail(e, rc, "the response would exceed %zu MiB; ask for fewer rows (take/skip)",
                 ENV_MAX_RESPONSE >> 20);
    else
        env_fail(e, rc, "%s", cstack_errstr(rc));
}

static void env_free(env *e)
{
    own_release(e, 0);
    free(e->owned);
    free(e->nums);
}

int cstack_envelope_call(cstack *db, const char *request, size_t len, char **response,
                         size_t *response_len)
{
    if (response)
        *response = NULL;
    if (response_len)
        *response_len = 0;
    if (!db || !response || (!request && len))
        return CSTACK_EMISUSE;
    env e;
    memset(&e, 0, sizeof e);
    e.db = db;
    e.schema = cstack_schema_of(db);
    cs_buf out = CS_BUF_INIT;
    out.max = ENV_MAX_RESPONSE;
    json_t *root = NULL;
    int rc;
    if (len > CSTACK_ENVELOPE_MAX)
        rc = env_fail(&e, CSTACK_ETOOBIG, "the request is %zu bytes; the limit is %u bytes", len,
                      CSTACK_ENVELOPE_MAX);
    else if (!(rc = env_parse(&e, request ? request : "", len, &root)))
        rc = cs_buf_puts(&out, "{\"status\":\"ok\",\"data\":");
    if (!rc)
        rc = run_request(&e, root, &out);
    if (!rc)
        rc = cs_buf_putc(&out, '}');
    if (rc && !e.code)
        buffer_failure(&e, rc);
    if (rc)
        rc = err_response(&e, &out);
    json_decref(root);
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
