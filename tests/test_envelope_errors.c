/* test_envelope_errors.c -- malformed envelope requests of every class get an
 * err response with the right code and a path in the message, never a crash,
 * a leak or a write; and `cstack call` answers line by line, in order. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"
#include "envelope_support.h"
#include "support.h"

static cstack *db;

static void setup(void)
{
    db = t_open_mem(ENV_SCHEMA);
    t_env_use(db);
}

static void teardown(void)
{
    cstack_close(db);
    db = NULL;
}

TestSuite(malformed, .init = setup, .fini = teardown);

#define NOTE(kind, payload) "{\"model\":\"Note\",\"kind\":\"" kind "\",\"payload\":" payload "}"
#define WHERE(w) NOTE("count", "{\"where\":" w "}")

typedef struct bad {
    const char *req, *code, *part;
} bad;

static const bad CASES[] = {
    /* not JSON, not an object, trailing garbage */
    {"nope", "bad_request", "request: not valid JSON"},
    {"", "bad_request", "request: not valid JSON"},
    {"{\"model\":\"Note\",", "bad_request", "request: not valid JSON"},
    {"[1]", "bad_request", "request: expected a JSON object, got a list"},
    {"\"x\"", "bad_request", "request: not valid JSON"},
    {"{\"model\":\"Note\",\"kind\":\"count\"} x", "bad_request", "end of file expected"},
    {"{\"model\":\"Note\",\"kind\":\"count\"}{}", "bad_request", "end of file expected"},
    {"{1:2}", "bad_request", "request: not valid JSON"},
    {"{\"a\":-}", "bad_request", "request: not valid JSON"},
    {"{\"a\":NaN}", "bad_request", "request: not valid JSON"},
    {"{\"a\":01}", "bad_request", "request: not valid JSON"},
    {"{\"a\":1.}", "bad_request", "request: not valid JSON"},
    {"{\"a\":\"\\ud800\"}", "bad_request", "request: not valid JSON"},
    {"{\"a\":\"\xff\"}", "bad_request", "request: not valid JSON"},
    {"{\"a\":1,\"a\":2}", "bad_request", "duplicate object key"},
    {"{\"model\":\"Note\",\"kind\":\"count\",\"payload\":{\"where\":{\"title\":\"\\u0000\"}}}",
     "bad_request", "strings cannot contain \\u0000"},
    /* the request object */
    {"{\"model\":\"Note\"}", "bad_request", "request: missing 'kind'"},
    {"{\"model\":\"Note\",\"kind\":5}", "bad_request", "kind: expected a string, got a number"},
    {"{\"model\":\"Note\",\"kind\":\"find\"}", "bad_request", "kind: unknown kind 'find'"},
    {"{\"model\":\"Nope\",\"kind\":\"count\"}", "bad_request", "model: unknown model 'Nope'"},
    {"{\"model\":7,\"kind\":\"count\"}", "bad_request", "model: expected a model name"},
    {"{\"kind\":\"count\"}", "bad_request", "model: missing"},
    {"{\"model\":\"Note\",\"kind\":\"count\",\"payload\":[]}", "bad_request",
     "payload: expected an object, got a list"},
    {"{\"model\":\"Note\",\"kind\":\"count\",\"paylod\":{}}", "bad_request",
     "paylod: unknown key (expected one of model, kind, payload, bigintAsString) (did you mean "
     "'payload'?)"},
    {"{\"model\":\"Note\",\"kind\":\"count\",\"bigintAsString\":1}", "bad_request",
     "bigintAsString: expected true or false"},
    /* payloads */
    {NOTE("count", "{\"wehre\":{}}"), "bad_request",
     "payload.wehre: unknown key (expected where) (did you mean 'where'?)"},
    {NOTE("create", "{}"), "bad_request", "payload: missing 'data'"},
    {NOTE("create", "{\"data\":\"x\"}"), "bad_request",
     "payload.data: expected an object of Note field values, got a string"},
    {NOTE("create_many", "{\"data\":{}}"), "bad_request", "payload.data: expected a list"},
    {NOTE("create_many", "{\"data\":[5]}"), "bad_request", "payload.data[0]: expected an object"},
    {NOTE("update", "{\"data\":{}}"), "bad_request", "payload: missing 'where'"},
    {NOTE("upsert", "{\"where\":{},\"create\":{}}"), "bad_request", "payload: missing 'update'"},
    {NOTE("find_unique", "{\"where\":{\"id\":{\"equals\":\"x\"}}}"), "validation",
     "payload.where.id: expected a Uuid as a string, got an object"},
    {NOTE("find_unique", "{\"where\":{\"title\":\"x\"}}"), "bad_request",
     "payload.where: the where of a unique lookup on Note must name exactly"},
    {NOTE("find_unique", "{\"where\":{}}"), "bad_request", "payload.where: "},
    {NOTE("aggregate", "{\"_count\":1}"), "bad_request", "payload._count: expected true or false"},
    {NOTE("aggregate", "{\"_max\":[\"tags\"]}"), "bad_request",
     "payload._max[0]: Note.tags is Json, which has no order"},
    /* where */
    {WHERE("[]"), "bad_request", "payload.where: expected a where object, got a list"},
    {WHERE("{\"nope\":1}"), "bad_request", "payload.where.nope: unknown field 'nope' in model"},
    {WHERE("{\"views\":{\"gtx\":1}}"), "bad_request",
     "payload.where.views.gtx: unknown operator (expected one of equals"},
    {WHERE("{\"title\":{\"mode\":\"loud\"}}"), "bad_request",
     "payload.where.title.mode: expected \"insensitive\" or \"default\""},
    {WHERE("{\"views\":{\"equals\":1,\"mode\":\"insensitive\"}}"), "bad_request",
     "payload.where.views.mode: insensitive mode needs a String, Cuid or enum field"},
    {WHERE("{\"views\":{\"contains\":\"1\"}}"), "bad_request",
     "payload.where.views.contains: contains needs a text field"},
    {WHERE("{\"title\":{\"startsWith\":5}}"), "validation",
     "payload.where.title.startsWith: expected a string"},
    {WHERE("{\"views\":{\"lt\":null}}"), "bad_request",
     "payload.where.views.lt: only equals and not compare with null"},
    {WHERE("{\"views\":{\"in\":5}}"), "bad_request", "payload.where.views.in: expected a list"},
    {WHERE("{\"AND\":5}"), "bad_request", "payload.where.AND: expected a where object or a list"},
    {WHERE("{\"OR\":[{\"nope\":1}]}"), "bad_request", "payload.where.OR[0].nope: unknown field"},
    {WHERE("{\"NOT\":[{},{\"views\":{\"in\":[null]}}]}"), "bad_request",
     "payload.where.NOT[1].views.in[0]: null cannot be in a list"},
    {WHERE("{\"owner\":\"x\"}"), "bad_request",
     "payload.where.owner: expected an object with is or isNot, got a string"},
    {WHERE("{\"owner\":{\"is\":{\"mail\":1}}}"), "bad_request",
     "payload.where.owner.is.mail: unknown field 'mail' in model Account (did you mean "
     "'email'?)"},
    {WHERE("{\"owner\":{\"is\":5}}"), "bad_request", "payload.where.owner.is: expected a where"},
    {WHERE("{\"\\u00e9\\\"\":1}"), "bad_request", "payload.where[\"\xc3\xa9\\\"\"]: unknown field"},
    /* find arguments */
    {NOTE("find_many", "{\"select\":[\"title\",\"nope\"]}"), "bad_request",
     "payload.select[1]: unknown field 'nope'"},
    {NOTE("find_many", "{\"select\":[\"owner\"]}"), "bad_request",
     "payload.select[0]: Note.owner is a relation"},
    {NOTE("find_many", "{\"select\":[]}"), "bad_request", "payload.select: expected a non-empty"},
    {NOTE("find_many", "{\"select\":[\"title\",\"title\"]}"), "bad_request",
     "payload.select[1]: field 'title' is listed twice"},
    {NOTE("find_many", "{\"orderBy\":[{\"field\":\"nope\"}]}"), "bad_request",
     "payload.orderBy[0].field: unknown field 'nope'"},
    {NOTE("find_many", "{\"orderBy\":[{\"field\":\"title\",\"direction\":\"up\"}]}"), "bad_request",
     "payload.orderBy[0].direction: expected \"asc\" or \"desc\""},
    {NOTE("find_many", "{\"orderBy\":{\"field\":\"title\",\"dir\":\"asc\"}}"), "bad_request",
     "payload.orderBy.dir: unknown key"},
    {NOTE("find_many", "{\"orderBy\":[5]}"), "bad_request", "payload.orderBy[0]: expected"},
    {NOTE("find_many", "{\"take\":-1}"), "bad_request",
     "payload.take: expected a non-negative integer, got -1"},
    {NOTE("find_many", "{\"take\":1e999}"), "bad_request",
     "payload.take: expected a non-negative integer, got 1e999"},
    {NOTE("find_many", "{\"skip\":\"1\"}"), "bad_request",
     "payload.skip: expected a non-negative integer, got a string"},
    {NOTE("find_many", "{\"cursor\":[]}"), "bad_request", "payload.cursor: expected an object"},
    /* transactions */
    {"{\"kind\":\"transaction\"}", "bad_request", "missing payload"},
    {"{\"kind\":\"transaction\",\"payload\":{\"requests\":[],\"x\":1}}", "bad_request",
     "payload.x: unknown key (expected requests)"},
    {"{\"kind\":\"transaction\",\"payload\":{\"requests\":[{\"model\":\"Note\",\"kind\":"
     "\"count\",\"extra\":1}]}}",
     "bad_request", "requests[0]: extra: unknown key (expected one of model, kind, payload)"},
};

Test(malformed, every_class_gets_an_err_with_code_and_path)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        char *resp = t_env_call_raw(CASES[i].req);
        t_env_expect_err(resp, CASES[i].code, CASES[i].part, CASES[i].req);
        free(resp);
    }
}

Test(malformed, nul_bytes_are_refused)
{
    static const char req[] = "{\"model\":\"Note\",\"kind\":\"count\",\"payload\":{\"where\":"
                              "{\"title\":\"a\0b\"}}}";
    char *resp = t_env_call_len(req, sizeof req - 1);
    t_env_expect_err(resp, "bad_request", "a NUL byte is not allowed", "(with NUL)");
    free(resp);
    resp = t_env_call_len("{}\0", 3);
    t_env_expect_err(resp, "bad_request", "a NUL byte is not allowed", "{}\\0");
    free(resp);
}

/* A request nested `depth` levels deep (a Json value of nested lists). */
static char *nested(size_t depth)
{
    size_t inner = depth - 3; /* below the request, payload and data objects */
    size_t n = 200 + 2 * inner;
    char *s = malloc(n);
    int k = snprintf(s, n,
                     "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
                     "{\"title\":\"deep\",\"ownerId\":\"%s\",\"tags\":",
                     "00000000-0000-0000-0000-000000000000");
    memset(s + k, '[', inner);
    memset(s + k + inner, ']', inner);
    snprintf(s + k + 2 * inner, n - (size_t)k - 2 * inner, "}}}");
    return s;
}

Test(malformed, nesting_is_bounded)
{
    char *req = nested(65);
    char *resp = t_env_call_raw(req);
    t_env_expect_err(resp, "too_big", "request: JSON nested deeper than 64 levels", "deep");
    free(resp);
    free(req);
    /* 64 levels are fine: this one fails later, on its foreign key. */
    req = nested(64);
    resp = t_env_call_raw(req);
    t_env_expect_err(resp, "foreign_key_violation", "payload.data", "64 deep");
    free(resp);
    free(req);
    resp = t_env_call_raw("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
                          "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}");
    t_env_expect_err(resp, "bad_request", "a: unknown key", "brackets in a string");
    free(resp);
}

Test(malformed, sizes_are_bounded)
{
    size_t n = CSTACK_ENVELOPE_MAX + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    char *resp = t_env_call_len(big, n);
    t_env_expect_err(resp, "too_big", "request: the request is 67108865 bytes", "big");
    free(resp);
    free(big);
    /* A transaction of 10,001 requests, an in list of 10,001 values. */
    size_t cap = 64 + 10001 * 40;
    char *req = malloc(cap);
    size_t o = (size_t)snprintf(req, cap, "{\"kind\":\"transaction\",\"payload\":{\"requests\":[");
    for (int i = 0; i < 10001; i++)
        o += (size_t)snprintf(req + o, cap - o, "%s{\"model\":\"Note\",\"kind\":\"count\"}",
                              i ? "," : "");
    snprintf(req + o, cap - o, "]}}");
    resp = t_env_call_raw(req);
    t_env_expect_err(resp, "too_big",
                     "payload.requests: 10001 requests; a transaction holds at "
                     "most 10000",
                     "10001 requests");
    free(resp);
    /* Two million values fit in 4 MB; jansson would need far more. */
    char *many = malloc(8u << 20);
    o = (size_t)snprintf(many, 64, "{\"tags\":[");
    for (int i = 0; i < 2000000; i++) {
        many[o++] = '1';
        many[o++] = ',';
    }
    snprintf(many + o - 1, 8, "]}");
    resp = t_env_call_raw(many);
    t_env_expect_err(resp, "too_big", "request: more than 2000000 JSON values", "many values");
    free(resp);
    free(many);
    o = (size_t)snprintf(req, cap, "%s",
                         "{\"model\":\"Note\",\"kind\":\"count\",\"payload\":"
                         "{\"where\":{\"views\":{\"in\":[");
    for (int i = 0; i < 10001; i++)
        o += (size_t)snprintf(req + o, cap - o, "%s%d", i ? "," : "", i);
    snprintf(req + o, cap - o, "]}}}}");
    resp = t_env_call_raw(req);
    t_env_expect_err(resp, "too_big", "payload.where.views.in: 10001 values", "long in");
    free(resp);
    free(req);
}

Test(malformed, misuse_returns_a_code_without_a_response)
{
    char *resp = (char *)1;
    cr_assert_eq(cstack_envelope_call(NULL, "{}", 2, &resp, NULL), CSTACK_EMISUSE);
    cr_assert_null(resp);
    cr_assert_eq(cstack_envelope_call(db, "{}", 2, NULL, NULL), CSTACK_EMISUSE);
    cr_assert_eq(cstack_envelope_call(db, NULL, 5, &resp, NULL), CSTACK_EMISUSE);
    cr_assert_eq(cstack_envelope_call(db, NULL, 0, &resp, NULL), CSTACK_OK);
    t_env_expect_err(resp, "bad_request", "not valid JSON", "NULL, 0");
    cstack_free(resp);
}

Test(malformed, nothing_is_written_by_a_failing_request)
{
    static const char *const reqs[] = {
        "{\"model\":\"Pair\",\"kind\":\"create_many\",\"payload\":{\"data\":[{\"a\":1,\"b\":1},"
        "{\"a\":1,\"b\":1}]}}",
        "{\"model\":\"Pair\",\"kind\":\"create_many\",\"payload\":{\"data\":[{\"a\":1,\"b\":1},"
        "{\"a\":1}]}}",
        "{\"kind\":\"transaction\",\"payload\":{\"requests\":[{\"model\":\"Pair\",\"kind\":"
        "\"create\",\"payload\":{\"data\":{\"a\":1,\"b\":1}}},{\"model\":\"Pair\",\"kind\":"
        "\"create\",\"payload\":{\"data\":{\"a\":1,\"b\":\"x\"}}}]}}",
        "{\"model\":\"Pair\",\"kind\":\"create\",\"payload\":{\"data\":{\"a\":1,\"b\":1,\"v\":5}}}",
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        char *resp = t_env_call_raw(reqs[i]);
        cr_assert(strncmp(resp, "{\"status\":\"err\"", 15) == 0, "%s", resp);
        free(resp);
    }
    json_t *d = ok("{\"model\":\"Pair\",\"kind\":\"count\"}");
    cr_assert_eq(json_integer_value(json_object_get(d, "count")), 0);
    json_decref(d);
}

/* ---- cstack call ------------------------------------------------------------ */

static const char CALL_SCHEMA[] = "model Item {\n  id    Int    @id\n  label String\n}\n";

static char *tmp;
static char schema_path[512], db_path[512];

static void call_setup(void)
{
    tmp = t_tmpdir();
    t_write_file(schema_path, sizeof schema_path, tmp, "items.cstack", CALL_SCHEMA);
    snprintf(db_path, sizeof db_path, "%s/items.db", tmp);
}

static void call_teardown(void)
{
    free(tmp);
}

/* Runs `cstack call` on the input file; returns its exit status and stdout. */
static int run_call(const char *input, char **out)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' call --schema '%s' --db '%s' < '%s' 2>/dev/null", CSTACK_CLI,
             schema_path, db_path, input);
    return t_run(cmd, out);
}

/* Request i of the scripted sequence (written to `in` unless NULL) and the
 * response it must get. */
static void scripted(int i, FILE *in, char *expect, size_t n)
{
    FILE *sink = in ? in : fopen("/dev/null", "w");
    cr_assert_not_null(sink);
    switch (i % 4) {
    case 0:
        fprintf(sink,
                "{\"model\":\"Item\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":%d,"
                "\"label\":\"L%d\"}}}\n",
                i, i);
        snprintf(expect, n, "{\"status\":\"ok\",\"data\":{\"id\":%d,\"label\":\"L%d\"}}", i, i);
        break;
    case 1:
        fprintf(sink,
                "{\"model\":\"Item\",\"kind\":\"find_unique\",\"payload\":{\"where\":"
                "{\"id\":%d}}}\n",
                i - 1);
        snprintf(expect, n, "{\"status\":\"ok\",\"data\":{\"id\":%d,\"label\":\"L%d\"}}", i - 1,
                 i - 1);
        break;
    case 2:
        fprintf(sink, "{\"model\":\"Nope%d\",\"kind\":\"count\"}\n", i);
        snprintf(expect, n,
                 "{\"status\":\"err\",\"code\":\"bad_request\",\"message\":\"model: unknown "
                 "model 'Nope%d'\"}",
                 i);
        break;
    default:
        fprintf(sink,
                "{\"model\":\"Item\",\"kind\":\"update\",\"payload\":{\"where\":{\"id\":%d},"
                "\"data\":{\"label\":\"U%d\"}}}\r\n",
                i - 3, i);
        snprintf(expect, n, "{\"status\":\"ok\",\"data\":{\"id\":%d,\"label\":\"U%d\"}}", i - 3, i);
        break;
    }
    if (!in)
        fclose(sink);
}

TestSuite(call, .init = call_setup, .fini = call_teardown, .timeout = 300);

Test(call, answers_1000_mixed_requests_in_order)
{
    enum { N = 1000 };
    char input[600], expect[256];
    snprintf(input, sizeof input, "%s/requests.jsonl", tmp);
    FILE *in = fopen(input, "w");
    cr_assert_not_null(in);
    for (int i = 0; i < N; i++)
        scripted(i, in, expect, sizeof expect);
    fclose(in);
    char *out = NULL;
    cr_assert_eq(run_call(input, &out), 0);
    char *line = out;
    for (int i = 0; i < N; i++) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "response %d is missing", i);
        *nl = '\0';
        scripted(i, NULL, expect, sizeof expect);
        cr_assert_str_eq(line, expect, "response %d", i);
        line = nl + 1;
    }
    cr_assert_str_eq(line, "", "no response beyond the last request");
    free(out);
    /* The writes were committed: a second run sees them. */
    FILE *again = fopen(input, "w");
    fputs("{\"model\":\"Item\",\"kind\":\"count\",\"payload\":{\"where\":{\"label\":{"
          "\"startsWith\":\"U\"}}}}\n",
          again);
    fclose(again);
    cr_assert_eq(run_call(input, &out), 0);
    cr_assert_str_eq(out, "{\"status\":\"ok\",\"data\":{\"count\":250}}\n");
    free(out);
}

Test(call, bad_empty_and_overlong_lines_get_err_and_the_loop_goes_on)
{
    char input[600];
    snprintf(input, sizeof input, "%s/lines.jsonl", tmp);
    FILE *in = fopen(input, "w");
    cr_assert_not_null(in);
    fputs("not json\n\n", in);
    fputc('"', in);
    for (size_t i = 0; i < CSTACK_ENVELOPE_MAX; i++)
        fputc('a', in);
    fputs("\"\n{\"model\":\"Item\",\"kind\":\"count\"}", in); /* no final newline */
    fclose(in);
    char *out = NULL;
    cr_assert_eq(run_call(input, &out), 0);
    char *lines[5] = {0};
    size_t n = 0;
    for (char *p = strtok(out, "\n"); p && n < 5; p = strtok(NULL, "\n"))
        lines[n++] = p;
    cr_assert_eq(n, 4, "four lines, four responses");
    t_env_expect_err(lines[0], "bad_request", "not valid JSON", "not json");
    t_env_expect_err(lines[1], "bad_request", "not valid JSON", "(empty line)");
    t_env_expect_err(lines[2], "too_big", "longer than the 64 MiB limit", "(long line)");
    cr_assert_str_eq(lines[3], "{\"status\":\"ok\",\"data\":{\"count\":0}}");
    free(out);
}

Test(call, a_create_many_of_100k_rows_over_16_mib_fits_one_line)
{
    /* The envelope accepts 100,000 rows in one create_many; with 200-byte
     * labels the line is about 23 MB, which the CLI must read whole. */
    char input[600], label[201];
    snprintf(input, sizeof input, "%s/many.jsonl", tmp);
    memset(label, 'x', 200);
    label[200] = 0;
    FILE *in = fopen(input, "w");
    cr_assert_not_null(in);
    fputs("{\"model\":\"Item\",\"kind\":\"create_many\",\"payload\":{\"data\":[", in);
    for (int i = 0; i < 100000; i++)
        fprintf(in, "%s{\"id\":%d,\"label\":\"%s\"}", i ? "," : "", i, label);
    fputs("]}}\n{\"model\":\"Item\",\"kind\":\"count\"}\n", in);
    long size = ftell(in);
    fclose(in);
    cr_assert_gt(size, 16L << 20, "the request must be over the old 16 MiB limit");
    char *out = NULL;
    cr_assert_eq(run_call(input, &out), 0);
    cr_assert_str_eq(out, "{\"status\":\"ok\",\"data\":{\"count\":100000}}\n"
                          "{\"status\":\"ok\",\"data\":{\"count\":100000}}\n");
    free(out);
}

Test(call, help_and_usage_errors)
{
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "'%s' call --help", CSTACK_CLI);
    cr_assert_eq(t_run(cmd, &out), 0);
    cr_assert_not_null(strstr(out, "usage: cstack call --schema FILE --db DB"));
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' call --schema '%s' 2>&1", CSTACK_CLI, schema_path);
    cr_assert_eq(t_run(cmd, &out), 2);
    cr_assert_not_null(strstr(out, "missing --db DB"), "%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' call --schema '%s/none.cstack' --db '%s' </dev/null 2>&1",
             CSTACK_CLI, tmp, db_path);
    cr_assert_eq(t_run(cmd, &out), 1);
    free(out);
}
