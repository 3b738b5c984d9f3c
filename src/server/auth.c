/*
 * auth.c -- bearer JWTs (HS256) and the claims that become auth().
 *
 * Verification order, each step with its own message for the 401:
 *   1. the header value: "Bearer <token>" (scheme case-insensitive), the
 *      token at most CS_AUTH_MAX_TOKEN bytes of base64url and two dots;
 *   2. our own look at the JOSE header, only to say *why* a token is
 *      refused: `alg` must be "HS256" (so "none", HS512, RS256... are
 *      refused by name) and `typ`, when present, "JWT";
 *   3. libjwt's jwt_decode with the secret checks the signature; having
 *      checked the structure first, a failure here means "bad signature".
 *      jwt_get_alg is checked again on the decoded token, which is the check
 *      that matters for security (steps 1-2 only improve messages);
 *   4. the claims are read back from the *verified* token
 *      (jwt_get_grants_json) and parsed with jansson, which keeps JSON types
 *      exact (libjwt's jwt_get_grant_int cannot tell 0 from a string);
 *   5. `exp` (now >= exp is expired) and `nbf` (now < nbf is not yet valid),
 *      NumericDate integers or reals, no leeway: a server that wants leeway
 *      passes an adjusted `now`;
 *   6. `sub` (a string, required) is auth().id; when the auth block has an
 *      `id` field, sub is converted to its type (Uuid canonical lowercase,
 *      Int from decimal text...).  Every other auth field comes from the
 *      claim of the same name; a JSON null claim counts as absent.  A
 *      composite field (a CrateStack type, schema.h) takes a claim that is
 *      a JSON object, kept as its canonical JSON text, and each of its
 *      members ("organization.id") comes from that object's member (or
 *      from a flat claim named "organization.id", which wins, as in
 *      CrateStack); members of an absent optional composite are null, and
 *      members the object does not have are absent (an error when required).
 *      Other members of the object are ignored.
 *
 * Claim types accepted per field type: String, Cuid, Uuid, DateTime, Enum:
 * strings; Decimal: strings or integers; Int: integers; Float: numbers;
 * Boolean: true/false; Json: any JSON value; Bytes: base64 strings.  Values
 * are canonicalised with cs_value_canon, so they compare byte for byte with
 * what the database stores.
 */
#include "server/auth.h"
#include "cstack_server.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <jwt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util/buf.h"
#include "value/value.h"

/* ---- users ------------------------------------------------------------------ */

static cs_auth *user_new(const cstack_schema *s)
{
    cs_auth *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->n = s->auth.nfields;
    /* One owned string per value plus sub. */
    a->values = calloc(a->n ? a->n : 1, sizeof *a->values);
    a->owned = calloc(a->n + 1, sizeof *a->owned);
    if (!a->values || !a->owned) {
        cs_auth_free(a);
        return NULL;
    }
    for (size_t i = 0; i < a->n; i++)
        a->values[i] = cstack_v_null();
    return a;
}

const char *cs_auth_shown(const cs_auth *a)
{
    if (!a || !a->signed_in || !a->sub)
        return "";
    return a->sub_hidden ? "[redacted]" : a->sub;
}

void cs_auth_free(cs_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nowned; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->values);
    free(a);
}

int cs_auth_anonymous(const cstack_schema *s, cs_auth **out)
{
    *out = user_new(s);
    return *out ? 0 : CSTACK_ENOMEM;
}

const cstack_value *cs_auth_value(const cstack_schema *s, const cs_auth *a, const char *name)
{
    for (size_t i = 0; i < s->auth.nfields && i < a->n; i++)
        if (strcmp(s->auth.fields[i].name, name) == 0)
            return &a->values[i];
    return NULL;
}

/* Keeps a copy of a text or blob value in `a`, so it outlives the JSON it
 * was read from. */
static int user_keep(cs_auth *a, cstack_value *v)
{
    if (v->type != CSTACK_TEXT && v->type != CSTACK_BLOB)
        return 0;
    char *p = malloc(v->u.s.n + 1);
    if (!p)
        return CSTACK_ENOMEM;
    if (v->u.s.n)
        memcpy(p, v->u.s.p, v->u.s.n);
    p[v->u.s.n] = 0;
    a->owned[a->nowned++] = p;
    v->u.s.p = p;
    return 0;
}

/* ---- the header value and the JOSE header ------------------------------------ */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CSTACK_EINVAL;
}

static bool b64url_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* Finds the token in "Bearer <token>" and checks its shape: three base64url
 * segments (the last may be empty only for alg none, refused later). */
static int bearer_token(const char *h, const char **tok, size_t *len, char *err, size_t errlen)
{
    while (h && (*h == ' ' || *h == '\t'))
        h++;
    if (!h || !*h)
        return fail(err, errlen, "missing bearer token");
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return fail(err, errlen, "the Authorization header must be \"Bearer <token>\"");
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    if (n == 0)
        return fail(err, errlen, "missing bearer token");
    if (n > CS_AUTH_MAX_TOKEN)
        return fail(err, errlen, "token too long (%zu bytes, at most %d)", n, CS_AUTH_MAX_TOKEN);
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (h[i] == '.')
            dots++;
        else if (!b64url_char(h[i]))
            return fail(err, errlen, "malformed token: unexpected character at byte %zu", i);
    }
    if (dots != 2)
        return fail(err, errlen, "malformed token: expected three dot-separated parts");
    *tok = h;
    *len = n;
    return 0;
}

/* Decodes one base64url segment and parses it as a JSON object. */
static json_t *segment_json(const char *p, size_t n)
{
    cs_buf std = CS_BUF_INIT, raw = CS_BUF_INIT;
    json_t *j = NULL;
    if (n % 4 == 1 || cs_buf_reserve(&std, n + 4))
        goto done;
    for (size_t i = 0; i < n; i++)
        std.data[std.len++] = p[i] == '-' ? '+' : p[i] == '_' ? '/' : p[i];
    while (std.len % 4)
        std.data[std.len++] = '=';
    if (cs_base64_decode(&raw, std.data, std.len) == 0 && raw.data)
        j = json_loadb(raw.data, raw.len, JSON_REJECT_DUPLICATES, NULL);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
done:
    cs_buf_free(&std);
    cs_buf_free(&raw);
    return j;
}

/* Steps 2: the algorithm and type, and a payload that is a JSON object. */
static int check_structure(const char *tok, size_t n, char *err, size_t errlen)
{
    const char *d1 = memchr(tok, '.', n);
    const char *d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok));
    json_t *head = segment_json(tok, (size_t)(d1 - tok));
    if (!head)
        return fail(err, errlen, "malformed token: the header is not a base64url JSON object");
    const char *alg = json_string_value(json_object_get(head, "alg"));
    const char *typ = json_string_value(json_object_get(head, "typ"));
    int rc = 0;
    if (!alg)
        rc = fail(err, errlen, "malformed token: the header has no 'alg'");
    else if (strcmp(alg, "HS256") != 0)
        rc = fail(err, errlen, "unsupported token algorithm '%.20s' (only HS256 is accepted)", alg);
    else if (json_object_get(head, "typ") && (!typ || strcasecmp(typ, "JWT") != 0))
        rc = fail(err, errlen, "unsupported token type (typ must be \"JWT\")");
    json_decref(head);
    if (rc)
        return rc;
    json_t *body = segment_json(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!body)
        return fail(err, errlen, "malformed token: the payload is not a base64url JSON object");
    json_decref(body);
    if ((size_t)(d2 + 1 - tok) == n)
        return fail(err, errlen, "bad signature (the token is unsigned)");
    return 0;
}

/* ---- claims -------------------------------------------------------------------- */

static void fmt_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) && strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return;
    snprintf(out, 32, "%" PRId64, t);
}

/* Step 5: exp and nbf. */
static int check_times(json_t *claims, int64_t now, char *err, size_t errlen)
{
    static const char *const names[2] = {"exp", "nbf"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(claims, names[i]);
        if (!v || json_is_null(v))
            continue;
        if (!json_is_number(v))
            return fail(err, errlen, "claim '%s' must be a number (seconds since 1970)", names[i]);
        double t = json_number_value(v);
        char when[32];
        if (t > -1e15 && t < 1e15)
            fmt_time((int64_t)t, when);
        else
            snprintf(when, sizeof when, "%.0f", t);
        if (i == 0 && (double)now >= t)
            return fail(err, errlen, "token expired at %s", when);
        if (i == 1 && (double)now < t)
            return fail(err, errlen, "token not valid before %s", when);
    }
    return 0;
}

/* The claim as an input value for a field of type `t`, before
 * canonicalisation; text may borrow from the JSON or from `tmp`.  Returns
 * the expected kind ("a string") on a type mismatch, NULL when fine. */
static const char *claim_input(json_t *j, cs_scalar t, cs_buf *tmp, cstack_value *in)
{
    switch (t) {
    case CS_T_INT:
        if (!json_is_integer(j))
            return "an integer";
        *in = cstack_v_int(json_integer_value(j));
        return NULL;
    case CS_T_FLOAT:
        if (!json_is_number(j))
            return "a number";
        *in = json_is_integer(j) ? cstack_v_int(json_integer_value(j))
                                 : cstack_v_float(json_real_value(j));
        return NULL;
    case CS_T_BOOLEAN:
        if (!json_is_boolean(j))
            return "a boolean";
        *in = cstack_v_bool(json_is_true(j));
        return NULL;
    case CS_T_DECIMAL:
        if (json_is_integer(j)) {
            *in = cstack_v_int(json_integer_value(j));
            return NULL;
        }
        break;
    case CS_T_JSON: {
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        int rc = s ? cs_buf_puts(tmp, s) : CSTACK_ENOMEM;
        free(s);
        if (rc)
            return "encodable JSON";
        *in = cstack_v_textn(tmp->data, tmp->len);
        return NULL;
    }
    case CS_T_BYTES:
        if (!json_is_string(j) ||
            cs_base64_decode(tmp, json_string_value(j), json_string_length(j)) != 0)
            return "a base64 string";
        *in = cstack_v_blob(tmp->data ? tmp->data : "", tmp->len);
        return NULL;
    default:
        break;
    }
    if (!json_is_string(j))
        return "a string";
    *in = cstack_v_textn(json_string_value(j), json_string_length(j));
    return NULL;
}

/* Converts one claim (or sub, given as text) to the canonical value of auth
 * field `f`, stored in a->values[i]. */
static int set_field(const cstack_schema *s, cs_auth *a, size_t i, const cstack_value *in,
                     const char *claim, char *err, size_t errlen)
{
    const cs_field *f = &s->auth.fields[i];
    cs_buf scratch = CS_BUF_INIT;
    char why[200] = "";
    cstack_value out;
    int rc = cs_field_canon(s, f, in, &scratch, &out, why, sizeof why);
    /* The field's validators (a CrateStack type member's @length...) hold
     * for claims as for stored values. */
    if (rc == 0)
        rc = cs_field_check(f, &out, why, sizeof why);
    if (rc == 0)
        rc = user_keep(a, &out);
    cs_buf_free(&scratch);
    if (rc == CSTACK_ENOMEM)
        return CSTACK_ENOMEM;
    if (rc)
        return fail(err, errlen, "claim '%s' does not fit auth().%s: %s", claim, f->name,
                    why[0] ? why : "invalid value");
    a->values[i] = out;
    return 0;
}

/* sub is a string; an `id` field of another type takes it converted from
 * its text (an Int id from "42"). */
static int sub_input(const cs_field *f, const char *sub, cstack_value *in, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    const char *shown = f->sensitive ? "[redacted: @pii/@sensitive]" : sub;
    switch (f->type) {
    case CS_T_INT: {
        long long v = strtoll(sub, &end, 10);
        if (!*sub || *end || errno || isspace((unsigned char)*sub))
            return fail(err, errlen, "claim 'sub' (\"%.40s\") must be an integer for auth().id",
                        shown);
        *in = cstack_v_int(v);
        return 0;
    }
    case CS_T_FLOAT: {
        double v = strtod(sub, &end);
        if (!*sub || *end || errno || isspace((unsigned char)*sub))
            return fail(err, errlen, "claim 'sub' (\"%.40s\") must be a number for auth().id",
                        shown);
        *in = cstack_v_float(v);
        return 0;
    }
    case CS_T_BOOLEAN:
    case CS_T_BYTES:
    case CS_T_JSON:
        return fail(err, errlen, "auth().id of type %s cannot hold a 'sub' claim",
                    cs_scalar_name(f->type));
    default:
        *in = cstack_v_text(sub);
        return 0;
    }
}

/* The claim of auth field `name`: the claim of that exact name first (a
 * flat "organization.id" claim), else, for a member of a composite field,
 * the member of the parent claim's object (CrateStack's nested claims). */
static json_t *claim_of(json_t *claims, const char *name)
{
    json_t *j = json_object_get(claims, name);
    if (j || !strchr(name, '.'))
        return j;
    char seg[256];
    for (const char *p = name; claims && p;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof seg || !json_is_object(claims))
            return NULL;
        memcpy(seg, p, n);
        seg[n] = 0;
        claims = json_object_get(claims, seg);
        p = dot ? dot + 1 : NULL;
    }
    return claims;
}

/* The index of the composite field holding member field i, or -1. */
static int parent_of(const cs_auth_block *b, size_t i)
{
    const char *dot = strrchr(b->fields[i].name, '.');
    size_t n = dot ? (size_t)(dot - b->fields[i].name) : 0;
    for (size_t k = i; dot && k-- > 0;)
        if (strlen(b->fields[k].name) == n && memcmp(b->fields[k].name, b->fields[i].name, n) == 0)
            return (int)k;
    return -1;
}

/* One auth field (not `id`) from its claim; a member of an absent optional
 * composite stays null. */
static int map_field(const cstack_schema *s, json_t *claims, cs_auth *a, size_t i, char *err,
                     size_t errlen)
{
    const cs_field *f = &s->auth.fields[i];
    int parent = parent_of(&s->auth, i);
    if (parent >= 0 && a->values[parent].type == CSTACK_NULL)
        return 0;
    json_t *j = claim_of(claims, f->name);
    if (!j || json_is_null(j)) {
        if (f->optional)
            return 0;
        return fail(err, errlen, "the token has no '%s' claim (auth().%s is required)", f->name,
                    f->name);
    }
    if (f->composite && !json_is_object(j))
        return fail(err, errlen, "claim '%s' must be an object (auth().%s is type %s)", f->name,
                    f->name, f->type_name);
    cs_buf tmp = CS_BUF_INIT;
    cstack_value in;
    const char *want = claim_input(j, f->type, &tmp, &in);
    int rc = want ? fail(err, errlen, "claim '%s' must be %s", f->name, want)
                  : set_field(s, a, i, &in, f->name, err, errlen);
    cs_buf_free(&tmp);
    return rc;
}

/* Step 6: sub and every auth field, composites before their members. */
static int map_claims(const cstack_schema *s, json_t *claims, cs_auth *a, char *err, size_t errlen)
{
    json_t *sub = json_object_get(claims, "sub");
    if (!sub || json_is_null(sub))
        return fail(err, errlen, "the token has no 'sub' claim (auth().id)");
    if (!json_is_string(sub) || json_string_length(sub) == 0 ||
        strlen(json_string_value(sub)) != json_string_length(sub))
        return fail(err, errlen, "claim 'sub' must be a non-empty string");
    if (!(a->sub = cs_strdup(json_string_value(sub))))
        return CSTACK_ENOMEM;
    a->owned[a->nowned++] = a->sub;
    for (size_t i = 0; i < s->auth.nfields; i++) {
        const cs_field *f = &s->auth.fields[i];
        cstack_value in;
        int rc;
        if (strcmp(f->name, "id") == 0) {
            a->sub_hidden = f->sensitive;
            rc = sub_input(f, a->sub, &in, err, errlen);
            if (!rc)
                rc = set_field(s, a, i, &in, "sub", err, errlen);
        } else {
            rc = map_field(s, claims, a, i, err, errlen);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* Steps 3-6 on a token whose structure was checked. */
static int verify_token(const cstack_schema *s, const char *tok, size_t n, const char *secret,
                        int64_t now, cs_auth *a, char *err, size_t errlen)
{
    char *copy = cs_strndup(tok, n);
    if (!copy)
        return CSTACK_ENOMEM;
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, copy, (const unsigned char *)secret, (int)strlen(secret));
    free(copy);
    if (rc || !jwt) {
        jwt_free(jwt);
        return rc == ENOMEM ? CSTACK_ENOMEM : fail(err, errlen, "bad signature");
    }
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        jwt_free(jwt);
        return fail(err, errlen, "unsupported token algorithm (only HS256 is accepted)");
    }
    char *text = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    json_t *claims = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!json_is_object(claims))
        rc = fail(err, errlen, "malformed token: unreadable claims");
    if (!rc)
        rc = check_times(claims, now, err, errlen);
    if (!rc)
        rc = map_claims(s, claims, a, err, errlen);
    json_decref(claims);
    return rc;
}

int cs_auth_verify(const cstack_schema *s, const char *authorization, const char *secret,
                   int64_t now, cs_auth **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = 0;
    if (!secret || !*secret)
        return fail(err, errlen, "the server has no token secret configured");
    const char *tok = NULL;
    size_t n = 0;
    int rc = bearer_token(authorization, &tok, &n, err, errlen);
    if (!rc)
        rc = check_structure(tok, n, err, errlen);
    if (rc)
        return rc;
    cs_auth *a = user_new(s);
    if (!a)
        return CSTACK_ENOMEM;
    rc = verify_token(s, tok, n, secret, now, a, err, errlen);
    if (rc) {
        if (rc == CSTACK_ENOMEM)
            fail(err, errlen, "out of memory");
        cs_auth_free(a);
        return rc;
    }
    a->signed_in = true;
    *out = a;
    return 0;
}

/* ---- minting ------------------------------------------------------------------- */

/* A JSON integer: -?(0|[1-9][0-9]*) that fits a long. */
static bool json_int_text(const char *v, long *out)
{
    const char *p = v + (*v == '-');
    if (!isdigit((unsigned char)*p) || (*p == '0' && p[1]))
        return false;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return false;
    errno = 0;
    *out = strtol(v, NULL, 10);
    return errno == 0;
}

/* key={...} or key=[...]: an object or array claim (a composite auth field
 * takes an object). */
static int add_json_claim(jwt_t *jwt, const char *key, const char *v, char *err, size_t errlen)
{
    json_t *val = json_loads(v, JSON_REJECT_DUPLICATES, NULL);
    json_t *grants = val ? json_object() : NULL;
    char *prev = val ? jwt_get_grants_json(jwt, key) : NULL;
    char *text = NULL;
    int rc = 0;
    if (!val)
        rc = fail(err, errlen, "claim '%s' is not valid JSON", key);
    else if (prev)
        rc = fail(err, errlen, "claim '%s' given twice", key);
    else if (!grants || json_object_set(grants, key, val) || !(text = json_dumps(grants, 0)))
        rc = CSTACK_ENOMEM;
    else if (jwt_add_grants_json(jwt, text))
        rc = fail(err, errlen, "cannot add claim '%s'", key);
    free(prev);
    free(text);
    json_decref(grants);
    json_decref(val);
    return rc;
}

static int add_claim(jwt_t *jwt, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return fail(err, errlen, "claim \"%.60s\" must be key=value", kv);
    char key[128];
    if ((size_t)(eq - kv) >= sizeof key)
        return fail(err, errlen, "claim name too long in \"%.60s\"", kv);
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = 0;
    if (!strcmp(key, "sub") || !strcmp(key, "exp") || !strcmp(key, "iat"))
        return fail(err, errlen, "claim '%s' is set by the token command itself", key);
    const char *v = eq + 1;
    long iv;
    int rc;
    if (*v == '{' || *v == '[')
        return add_json_claim(jwt, key, v, err, errlen);
    if (json_int_text(v, &iv))
        rc = jwt_add_grant_int(jwt, key, iv);
    else if (!strcmp(v, "true") || !strcmp(v, "false"))
        rc = jwt_add_grant_bool(jwt, key, v[0] == 't');
    else
        rc = jwt_add_grant(jwt, key, v);
    if (rc == EEXIST)
        return fail(err, errlen, "claim '%s' given twice", key);
    return rc ? fail(err, errlen, "cannot add claim '%s'", key) : 0;
}

int cstack_server_mint_token(const char *secret, const char *sub, const char *const *claims,
                             size_t nclaims, int64_t now, int64_t ttl_seconds, char **token,
                             char *err, size_t errlen)
{
    *token = NULL;
    if (!secret || !*secret)
        return fail(err, errlen, "a token secret is required");
    if (!sub || !*sub)
        return fail(err, errlen, "a subject (sub) is required");
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt))
        return CSTACK_ENOMEM;
    int rc = jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret));
    if (!rc)
        rc = jwt_add_grant(jwt, "sub", sub);
    if (!rc)
        rc = jwt_add_grant_int(jwt, "iat", (long)now);
    if (!rc && ttl_seconds > 0)
        rc = jwt_add_grant_int(jwt, "exp", (long)(now + ttl_seconds));
    if (rc)
        rc = fail(err, errlen, "cannot build the token");
    for (size_t i = 0; i < nclaims && !rc; i++)
        rc = add_claim(jwt, claims[i], err, errlen);
    if (!rc && !(*token = jwt_encode_str(jwt)))
        rc = fail(err, errlen, "cannot encode the token");
    jwt_free(jwt);
    return rc;
}
