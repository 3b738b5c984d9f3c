/* test_auth.c -- bearer tokens: verification, claims to auth() for every
 * field type, every refusal with its reason, and minting. */
#include <criterion/criterion.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack_server.h"
#include "server/auth.h"
#include "support.h"
#include "util/buf.h"

static const char *SCHEMA =
    "enum Role { ADMIN MEMBER }\n"
    "auth User {\n"
    "  id     Uuid\n"
    "  role   Role\n"
    "  title  String\n"
    "  name   String?\n"
    "  org    Cuid?\n"
    "  level  Int?\n"
    "  score  Float?\n"
    "  active Boolean?\n"
    "  born   DateTime?\n"
    "  quota  Decimal?\n"
    "  meta   Json?\n"
    "  key    Bytes?\n"
    "}\n"
    "model Thing {\n"
    "  id Int @id\n"
    "  @@allow('all', true)\n"
    "}\n";

#define SECRET "test-secret-0123456789abcdef0123"
#define NOW ((int64_t)1800000000)
#define UUID_UP "0F8FAD5B-D9CB-469F-A165-70867728950E"
#define UUID_LO "0f8fad5b-d9cb-469f-a165-70867728950e"

static cstack_schema *schema;

static void setup(void)
{
    schema = t_schema(SCHEMA);
}

static void teardown(void)
{
    cstack_schema_free(schema);
}

TestSuite(auth, .init = setup, .fini = teardown);

/* A token over the JSON claims, signed with `alg` and `key` (libjwt). */
static char *token(jwt_alg_t alg, const char *key, const char *claims)
{
    jwt_t *j = NULL;
    cr_assert_eq(jwt_new(&j), 0);
    cr_assert_eq(jwt_add_grants_json(j, claims), 0, "claims %s", claims);
    cr_assert_eq(jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0), 0);
    char *t = jwt_encode_str(j);
    jwt_free(j);
    cr_assert_not_null(t);
    return t;
}

static void b64url(cs_buf *b, const char *s)
{
    cs_buf tmp = CS_BUF_INIT;
    cr_assert_eq(cs_base64_encode(&tmp, s, strlen(s)), 0);
    for (size_t i = 0; i < tmp.len; i++) {
        char c = tmp.data[i];
        if (c != '=')
            cs_buf_putc(b, c == '+' ? '-' : c == '/' ? '_' : c);
    }
    cs_buf_free(&tmp);
}

/* A hand-made token: base64url(header).base64url(payload).sig */
static char *raw_token(const char *header, const char *payload, const char *sig)
{
    cs_buf b = CS_BUF_INIT;
    b64url(&b, header);
    cs_buf_putc(&b, '.');
    b64url(&b, payload);
    cs_buf_putc(&b, '.');
    cs_buf_puts(&b, sig);
    return cs_buf_take(&b);
}

static char *bearer(const char *tok)
{
    size_t n = strlen(tok) + 8;
    char *h = malloc(n);
    snprintf(h, n, "Bearer %s", tok);
    return h;
}

static cs_auth *verify_ok(const char *header)
{
    cs_auth *a = NULL;
    char err[256] = "";
    int rc = cs_auth_verify(schema, header, SECRET, NOW, &a, err, sizeof err);
    cr_assert_eq(rc, 0, "verify failed: %s", err);
    cr_assert_not_null(a);
    cr_assert(a->signed_in);
    return a;
}

static cs_auth *verify_claims(const char *claims)
{
    char *t = token(JWT_ALG_HS256, SECRET, claims);
    char *h = bearer(t);
    cs_auth *a = verify_ok(h);
    free(h);
    free(t);
    return a;
}

static void expect_text(const cs_auth *a, const char *field, const char *want)
{
    const cstack_value *v = cs_auth_value(schema, a, field);
    cr_assert_not_null(v, "field %s", field);
    cr_assert_eq(v->type, CSTACK_TEXT, "auth().%s is text (type %d)", field, (int)v->type);
    cr_assert_eq(v->u.s.n, strlen(want), "auth().%s = %.*s", field, (int)v->u.s.n, v->u.s.p);
    cr_assert(memcmp(v->u.s.p, want, v->u.s.n) == 0, "auth().%s = %.*s, want %s", field,
              (int)v->u.s.n, v->u.s.p, want);
}

static void expect_null(const cs_auth *a, const char *field)
{
    const cstack_value *v = cs_auth_value(schema, a, field);
    cr_assert_not_null(v);
    cr_assert_eq(v->type, CSTACK_NULL, "auth().%s is null", field);
}

Test(auth, every_field_type_is_canonicalised)
{
    cs_auth *a = verify_claims("{\"sub\":\"" UUID_UP "\",\"role\":\"ADMIN\",\"title\":\"Boss\","
                               "\"name\":\"Ann\",\"org\":\"ckx1org\",\"level\":7,\"score\":1.5,"
                               "\"active\":true,\"born\":\"2026-01-02T03:04:05+01:00\","
                               "\"quota\":\"001.50\",\"meta\":{\"a\": 1, \"b\": [true]},"
                               "\"key\":\"aGVsbG8=\",\"unrelated\":[1,2]}");
    cr_assert_str_eq(a->sub, UUID_UP, "sub is kept as given");
    cr_assert_eq(a->n, schema->auth.nfields);
    expect_text(a, "id", UUID_LO);
    expect_text(a, "role", "ADMIN");
    expect_text(a, "title", "Boss");
    expect_text(a, "name", "Ann");
    expect_text(a, "org", "ckx1org");
    expect_text(a, "born", "2026-01-02T02:04:05.000000Z");
    expect_text(a, "quota", "1.50");
    expect_text(a, "meta", "{\"a\":1,\"b\":[true]}");
    const cstack_value *v = cs_auth_value(schema, a, "level");
    cr_assert(v->type == CSTACK_INT && v->u.i == 7);
    v = cs_auth_value(schema, a, "score");
    cr_assert(v->type == CSTACK_FLOAT && v->u.f == 1.5);
    v = cs_auth_value(schema, a, "active");
    cr_assert(v->type == CSTACK_INT && v->u.i == 1, "Boolean is stored as 1");
    v = cs_auth_value(schema, a, "key");
    cr_assert(v->type == CSTACK_BLOB && v->u.s.n == 5 && memcmp(v->u.s.p, "hello", 5) == 0);
    cr_assert_null(cs_auth_value(schema, a, "unrelated"));
    cs_auth_free(a);
}

Test(auth, optional_claims_absent_or_null_are_null)
{
    cs_auth *a = verify_claims("{\"sub\":\"" UUID_LO "\",\"role\":\"MEMBER\",\"title\":\"x\","
                               "\"name\":null}");
    static const char *const opt[] = {"name", "org",   "level", "score",
                                      "active", "born", "quota", "meta", "key"};
    for (size_t i = 0; i < sizeof opt / sizeof *opt; i++)
        expect_null(a, opt[i]);
    expect_text(a, "role", "MEMBER");
    cs_auth_free(a);
}

Test(auth, numbers_convert_where_exact)
{
    /* An integer is a fine Float and a fine Decimal. */
    cs_auth *a = verify_claims("{\"sub\":\"" UUID_LO "\",\"role\":\"ADMIN\",\"title\":\"x\","
                               "\"score\":2,\"quota\":15,\"active\":false}");
    const cstack_value *v = cs_auth_value(schema, a, "score");
    cr_assert(v->type == CSTACK_FLOAT && v->u.f == 2.0);
    expect_text(a, "quota", "15");
    v = cs_auth_value(schema, a, "active");
    cr_assert(v->type == CSTACK_INT && v->u.i == 0);
    cs_auth_free(a);
}

Test(auth, header_forms)
{
    char *t = token(JWT_ALG_HS256, SECRET,
                    "{\"sub\":\"" UUID_LO "\",\"role\":\"ADMIN\",\"title\":\"x\"}");
    static const char *const forms[] = {"Bearer %s", "bearer %s", "BEARER   %s  ", "  Bearer\t%s"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        char h[1024];
        snprintf(h, sizeof h, forms[i], t);
        cs_auth_free(verify_ok(h));
    }
    free(t);
}

Test(auth, valid_times_are_accepted)
{
    char claims[256];
    snprintf(claims, sizeof claims,
             "{\"sub\":\"" UUID_LO "\",\"role\":\"ADMIN\",\"title\":\"x\",\"exp\":%lld,"
             "\"nbf\":%lld,\"iat\":%lld}",
             (long long)NOW + 1, (long long)NOW, (long long)NOW - 5);
    cs_auth_free(verify_claims(claims));
}

Test(auth, anonymous_has_only_nulls)
{
    cs_auth *a = NULL;
    cr_assert_eq(cs_auth_anonymous(schema, &a), 0);
    cr_assert(!a->signed_in);
    cr_assert_null(a->sub);
    cr_assert_eq(a->n, schema->auth.nfields);
    for (size_t i = 0; i < a->n; i++)
        cr_assert_eq(a->values[i].type, CSTACK_NULL);
    cs_auth_free(a);
    cs_auth_free(NULL);
}

/* ---- refusals ------------------------------------------------------------ */

typedef enum tok_kind {
    TK_HEADER, /* `text` is the whole Authorization value */
    TK_CLAIMS, /* `text` is JSON claims, signed HS256 with SECRET */
    TK_RAW     /* `text` is "header|payload|signature" */
} tok_kind;

typedef struct refusal {
    const char *name;
    tok_kind kind;
    const char *text;
    const char *want; /* a substring of the reason */
} refusal;

#define OKC "\"sub\":\"" UUID_LO "\",\"role\":\"ADMIN\",\"title\":\"x\""

static const refusal REFUSALS[] = {
    {"no header", TK_HEADER, NULL, "missing bearer token"},
    {"empty header", TK_HEADER, "", "missing bearer token"},
    {"bearer without token", TK_HEADER, "Bearer   ", "missing bearer token"},
    {"basic auth", TK_HEADER, "Basic dXNlcjpwYXNz", "must be \"Bearer <token>\""},
    {"scheme glued to token", TK_HEADER, "Bearerabc.def.ghi", "must be \"Bearer <token>\""},
    {"one part", TK_HEADER, "Bearer abcdef", "three dot-separated parts"},
    {"four parts", TK_HEADER, "Bearer a.b.c.d", "three dot-separated parts"},
    {"bad character", TK_HEADER, "Bearer ab$c.def.ghi", "unexpected character at byte 2"},
    {"header not json", TK_HEADER, "Bearer aGVsbG8.e30.c2ln", "header is not a base64url JSON"},
    {"expired", TK_CLAIMS, "{" OKC ",\"exp\":1799999990}", "token expired at 2027-01-15T07:59:50Z"},
    {"expires right now", TK_CLAIMS, "{" OKC ",\"exp\":1800000000}", "token expired at"},
    {"not yet valid", TK_CLAIMS, "{" OKC ",\"nbf\":1800000100}", "token not valid before 2027-"},
    {"exp not a number", TK_CLAIMS, "{" OKC ",\"exp\":\"soon\"}", "claim 'exp' must be a number"},
    {"no sub", TK_CLAIMS, "{\"role\":\"ADMIN\",\"title\":\"x\"}", "no 'sub' claim"},
    {"numeric sub", TK_CLAIMS, "{\"sub\":42,\"role\":\"ADMIN\",\"title\":\"x\"}",
     "claim 'sub' must be a non-empty string"},
    {"empty sub", TK_CLAIMS, "{\"sub\":\"\",\"role\":\"ADMIN\",\"title\":\"x\"}",
     "claim 'sub' must be a non-empty string"},
    {"sub not a uuid", TK_CLAIMS, "{\"sub\":\"alice\",\"role\":\"ADMIN\",\"title\":\"x\"}",
     "claim 'sub' does not fit auth().id"},
    {"missing required role", TK_CLAIMS, "{\"sub\":\"" UUID_LO "\",\"title\":\"x\"}",
     "no 'role' claim (auth().role is required)"},
    {"null required title", TK_CLAIMS,
     "{\"sub\":\"" UUID_LO "\",\"role\":\"ADMIN\",\"title\":null}", "no 'title' claim"},
    {"role of wrong type", TK_CLAIMS, "{\"sub\":\"" UUID_LO "\",\"role\":3,\"title\":\"x\"}",
     "claim 'role' must be a string"},
    {"role not a member", TK_CLAIMS,
     "{\"sub\":\"" UUID_LO "\",\"role\":\"OWNER\",\"title\":\"x\"}",
     "claim 'role' does not fit auth().role"},
    {"int as string", TK_CLAIMS, "{" OKC ",\"level\":\"7\"}", "claim 'level' must be an integer"},
    {"int as real", TK_CLAIMS, "{" OKC ",\"level\":7.5}", "claim 'level' must be an integer"},
    {"float as string", TK_CLAIMS, "{" OKC ",\"score\":\"1.5\"}", "claim 'score' must be a number"},
    {"boolean as string", TK_CLAIMS, "{" OKC ",\"active\":\"true\"}",
     "claim 'active' must be a boolean"},
    {"boolean as number", TK_CLAIMS, "{" OKC ",\"active\":1}", "claim 'active' must be a boolean"},
    {"bad datetime", TK_CLAIMS, "{" OKC ",\"born\":\"2026-13-01T00:00:00Z\"}",
     "claim 'born' does not fit auth().born"},
    {"decimal with exponent", TK_CLAIMS, "{" OKC ",\"quota\":\"1e5\"}",
     "claim 'quota' does not fit auth().quota"},
    {"decimal as real", TK_CLAIMS, "{" OKC ",\"quota\":1.5}", "claim 'quota' must be a string"},
    {"bad cuid", TK_CLAIMS, "{" OKC ",\"org\":\"Upper\"}", "claim 'org' does not fit auth().org"},
    {"string as array", TK_CLAIMS, "{" OKC ",\"name\":[\"a\"]}", "claim 'name' must be a string"},
    {"bytes not base64", TK_CLAIMS, "{" OKC ",\"key\":\"not base64!\"}",
     "claim 'key' must be a base64 string"},
    {"alg none unsigned", TK_RAW, "{\"alg\":\"none\",\"typ\":\"JWT\"}|{" OKC "}|",
     "unsupported token algorithm 'none'"},
    {"alg none with a signature", TK_RAW, "{\"alg\":\"none\"}|{" OKC "}|c2lnbmF0dXJl",
     "unsupported token algorithm 'none'"},
    {"alg RS256", TK_RAW, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}|{" OKC "}|c2ln",
     "unsupported token algorithm 'RS256'"},
    {"no alg", TK_RAW, "{\"typ\":\"JWT\"}|{" OKC "}|c2ln", "header has no 'alg'"},
    {"typ not JWT", TK_RAW, "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}|{" OKC "}|c2ln",
     "unsupported token type"},
    {"payload not an object", TK_RAW, "{\"alg\":\"HS256\"}|[1,2]|c2ln",
     "payload is not a base64url JSON object"},
    {"payload not json", TK_RAW, "{\"alg\":\"HS256\"}|{oops|c2ln",
     "payload is not a base64url JSON object"},
    {"HS256 unsigned", TK_RAW, "{\"alg\":\"HS256\"}|{" OKC "}|", "bad signature"},
    {"forged signature", TK_RAW, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}|{" OKC "}|c2lnbmF0dXJl",
     "bad signature"},
};

/* Builds the Authorization value for one case (malloc'd, or NULL). */
static char *refusal_header(const refusal *r)
{
    if (r->kind == TK_HEADER)
        return r->text ? cs_strdup(r->text) : NULL;
    char *tok;
    if (r->kind == TK_CLAIMS) {
        tok = token(JWT_ALG_HS256, SECRET, r->text);
    } else {
        char *parts = cs_strdup(r->text);
        char *bar1 = strchr(parts, '|');
        char *bar2 = strchr(bar1 + 1, '|');
        *bar1 = *bar2 = 0;
        tok = raw_token(parts, bar1 + 1, bar2 + 1);
        free(parts);
    }
    char *h = bearer(tok);
    free(tok);
    return h;
}

static void expect_refused(const char *name, const char *header, const char *secret,
                           const char *want)
{
    cs_auth *a = (cs_auth *)1;
    char err[256] = "";
    int rc = cs_auth_verify(schema, header, secret, NOW, &a, err, sizeof err);
    cr_expect_eq(rc, CSTACK_EINVAL, "%s: refused (rc %d)", name, rc);
    cr_expect_null(a, "%s: no user on failure", name);
    cr_expect(strstr(err, want) != NULL, "%s: reason \"%s\" should contain \"%s\"", name, err,
              want);
}

Test(auth, refusals_name_their_reason)
{
    for (size_t i = 0; i < sizeof REFUSALS / sizeof *REFUSALS; i++) {
        char *h = refusal_header(&REFUSALS[i]);
        expect_refused(REFUSALS[i].name, h, SECRET, REFUSALS[i].want);
        free(h);
    }
}

Test(auth, wrong_secret_other_algorithm_and_tampering)
{
    char *t = token(JWT_ALG_HS256, "another-secret", "{" OKC "}");
    char *h = bearer(t);
    expect_refused("wrong secret", h, SECRET, "bad signature");
    free(h);
    free(t);

    t = token(JWT_ALG_HS512, SECRET, "{" OKC "}");
    h = bearer(t);
    expect_refused("HS512 with the right secret", h, SECRET, "unsupported token algorithm 'HS512'");
    free(h);
    free(t);

    /* A valid token whose payload is swapped for another user's. */
    t = token(JWT_ALG_HS256, SECRET, "{" OKC "}");
    char *dot1 = strchr(t, '.'), *dot2 = strchr(dot1 + 1, '.');
    cs_buf forged = CS_BUF_INIT;
    cs_buf_append(&forged, t, (size_t)(dot1 - t) + 1);
    b64url(&forged, "{\"sub\":\"11111111-1111-1111-1111-111111111111\",\"role\":\"ADMIN\","
                    "\"title\":\"x\"}");
    cs_buf_puts(&forged, dot2);
    h = bearer(forged.data);
    expect_refused("payload swapped", h, SECRET, "bad signature");
    free(h);
    cs_buf_free(&forged);

    h = bearer(t);
    expect_refused("no secret configured", h, "", "no token secret");
    free(h);
    free(t);
}

Test(auth, over_long_tokens_are_refused_before_parsing)
{
    size_t n = CS_AUTH_MAX_TOKEN + 1;
    char *h = malloc(n + 8);
    memcpy(h, "Bearer ", 7);
    memset(h + 7, 'a', n);
    h[7 + n] = 0;
    expect_refused("over-long", h, SECRET, "token too long (8193 bytes, at most 8192)");
    free(h);
    /* A signed token just over the limit (a large claim) is refused too. */
    char *claims = malloc(12000);
    snprintf(claims, 12000, "{" OKC ",\"pad\":\"%07000d\"}", 0);
    char *t = token(JWT_ALG_HS256, SECRET, claims);
    cr_assert_gt(strlen(t), (size_t)CS_AUTH_MAX_TOKEN);
    h = bearer(t);
    expect_refused("large signed token", h, SECRET, "token too long");
    free(h);
    free(t);
    free(claims);
}

Test(auth, int_and_string_ids_convert_sub)
{
    cstack_schema *s = t_schema("auth U { id Int  tag String? }\n"
                                "model M { id Int @id @@allow('all', auth().id == id) }\n");
    char *t = token(JWT_ALG_HS256, SECRET, "{\"sub\":\"42\",\"id\":\"ignored\"}");
    char *h = bearer(t);
    cs_auth *a = NULL;
    char err[256] = "";
    cr_assert_eq(cs_auth_verify(s, h, SECRET, NOW, &a, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(a->sub, "42");
    cr_assert(a->values[0].type == CSTACK_INT && a->values[0].u.i == 42, "sub is auth().id");
    cr_assert_eq(a->values[1].type, CSTACK_NULL);
    cs_auth_free(a);
    free(h);
    free(t);

    t = token(JWT_ALG_HS256, SECRET, "{\"sub\":\"4x\"}");
    h = bearer(t);
    cr_assert_eq(cs_auth_verify(s, h, SECRET, NOW, &a, err, sizeof err), CSTACK_EINVAL);
    cr_assert(strstr(err, "must be an integer for auth().id"), "%s", err);
    free(h);
    free(t);
    cstack_schema_free(s);

    /* Without an id field, sub is still who is signed in. */
    s = t_schema("model M { id Int @id @@allow('all', true) }\n");
    t = token(JWT_ALG_HS256, SECRET, "{\"sub\":\"anyone\"}");
    h = bearer(t);
    cr_assert_eq(cs_auth_verify(s, h, SECRET, NOW, &a, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(a->sub, "anyone");
    cr_assert_eq(a->n, 0);
    cs_auth_free(a);
    free(h);
    free(t);
    cstack_schema_free(s);
}

/* ---- minting ------------------------------------------------------------- */

Test(auth, mint_then_verify_round_trips)
{
    static const char *const claims[] = {"role=ADMIN", "title=Boss man", "level=7",
                                         "active=true", "quota=3.25",   "born=2026-01-01T00:00:00Z"};
    char *tok = NULL;
    char err[256] = "";
    cr_assert_eq(
        cstack_server_mint_token(SECRET, UUID_UP, claims, 6, NOW, 3600, &tok, err, sizeof err), 0,
        "%s", err);
    char *h = bearer(tok);
    cs_auth *a = verify_ok(h);
    cr_assert_str_eq(a->sub, UUID_UP);
    expect_text(a, "id", UUID_LO);
    expect_text(a, "role", "ADMIN");
    expect_text(a, "title", "Boss man");
    expect_text(a, "quota", "3.25");
    expect_text(a, "born", "2026-01-01T00:00:00.000000Z");
    cr_assert_eq(cs_auth_value(schema, a, "level")->u.i, 7);
    cr_assert_eq(cs_auth_value(schema, a, "active")->u.i, 1);
    cs_auth_free(a);

    /* The token carries exp = now + ttl. */
    a = (cs_auth *)1;
    cr_assert_eq(cs_auth_verify(schema, h, SECRET, NOW + 3600, &a, err, sizeof err),
                 CSTACK_EINVAL);
    cr_assert(strstr(err, "token expired at"), "%s", err);
    cr_assert_null(a);
    free(h);
    free(tok);
}

Test(auth, mint_without_ttl_never_expires_and_types_values)
{
    /* "007" is not a JSON integer, so it stays a string (and does not fit
     * the Int field); "-3" is one. */
    static const char *const claims[] = {"role=MEMBER", "title=t", "level=007"};
    char *tok = NULL;
    char err[256] = "";
    cr_assert_eq(
        cstack_server_mint_token(SECRET, UUID_LO, claims, 3, NOW, 0, &tok, err, sizeof err), 0);
    char *h = bearer(tok);
    expect_refused("level as text", h, SECRET, "claim 'level' must be an integer");
    free(h);
    free(tok);

    static const char *const ok[] = {"role=MEMBER", "title=t", "level=-3", "active=false"};
    cr_assert_eq(cstack_server_mint_token(SECRET, UUID_LO, ok, 4, NOW, 0, &tok, err, sizeof err),
                 0);
    h = bearer(tok);
    cs_auth *a = NULL;
    cr_assert_eq(cs_auth_verify(schema, h, SECRET, NOW + 100LL * 365 * 86400, &a, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(cs_auth_value(schema, a, "level")->u.i, -3);
    cr_assert_eq(cs_auth_value(schema, a, "active")->u.i, 0);
    cs_auth_free(a);
    free(h);
    free(tok);
}

Test(auth, mint_refuses_bad_input)
{
    static const struct {
        const char *secret, *sub, *claim, *want;
    } cases[] = {
        {"", "u", NULL, "secret is required"},
        {SECRET, "", NULL, "subject (sub) is required"},
        {SECRET, "u", "novalue", "must be key=value"},
        {SECRET, "u", "=x", "must be key=value"},
        {SECRET, "u", "sub=other", "claim 'sub' is set by the token command"},
        {SECRET, "u", "exp=1", "claim 'exp' is set by the token command"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *tok = (char *)1;
        char err[256] = "";
        const char *claims[1] = {cases[i].claim};
        int rc = cstack_server_mint_token(cases[i].secret, cases[i].sub, claims,
                                          cases[i].claim ? 1 : 0, NOW, 60, &tok, err, sizeof err);
        cr_expect_eq(rc, CSTACK_EINVAL, "case %zu", i);
        cr_expect_null(tok, "case %zu", i);
        cr_expect(strstr(err, cases[i].want), "case %zu: \"%s\" lacks \"%s\"", i, err,
                  cases[i].want);
    }
    const char *twice[] = {"role=ADMIN", "role=MEMBER"};
    char *tok = NULL;
    char err[256] = "";
    cr_assert_eq(cstack_server_mint_token(SECRET, "u", twice, 2, NOW, 0, &tok, err, sizeof err),
                 CSTACK_EINVAL);
    cr_assert(strstr(err, "claim 'role' given twice"), "%s", err);
    cr_assert_null(tok);
}
