/* test_envelope.c -- the JSON envelope (docs/envelope.md): every kind with its
 * ok and err shapes, every where operator and relation filter, find
 * arguments, transactions, and the canonical round trip of every scalar.
 * Malformed requests and `cstack call` are in test_envelope_errors.c. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"
#include "envelope_support.h"
#include "support.h"

static cstack *db;
static char alice[37], bob[37];

/* Creates an account and copies its id. */
static void account(const char *email, char id[37])
{
    json_t *d = ok("{\"model\":\"Account\",\"kind\":\"create\",\"payload\":{\"data\":"
                   "{\"email\":\"%s\"}}}",
                   email);
    snprintf(id, 37, "%s", json_string_value(json_object_get(d, "id")));
    json_decref(d);
}

/* Creates a note of `owner` with extra JSON members (may be empty). */
static void note(const char *owner, const char *title, const char *extra)
{
    json_decref(ok("{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
                   "{\"title\":\"%s\",\"ownerId\":\"%s\"%s%s}}}",
                   title, owner, extra[0] ? "," : "", extra));
}

static void setup(void)
{
    db = t_open_mem(ENV_SCHEMA);
    t_env_use(db);
    account("alice@x.io", alice);
    account("bob@x.io", bob);
}

/* Four notes; Criterion runs a test's .init after its suite's. */
static void add_notes(void)
{
    note(alice, "apple", "\"price\":\"9.5\",\"views\":3,\"body\":\"Red fruit\",\"tags\":[1]");
    note(alice, "Banana", "\"price\":\"10.25\",\"views\":5,\"pinned\":true");
    note(alice, "cherry", "\"views\":7,\"body\":\"small\"");
    note(bob, "date", "\"price\":\"0.10\",\"views\":1");
}

static void setup_notes(void)
{
    setup();
    add_notes();
}

static void teardown(void)
{
    cstack_close(db);
    db = NULL;
}

/* Titles of a find_many with this payload, comma separated. */
static char *titles(const char *payload)
{
    static char out[512];
    json_t *d = ok("{\"model\":\"Note\",\"kind\":\"find_many\",\"payload\":%s}", payload);
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(d); i++) {
        const char *t = json_string_value(json_object_get(json_array_get(d, i), "title"));
        size_t n = strlen(out);
        snprintf(out + n, sizeof out - n, "%s%s", i ? "," : "", t ? t : "?");
    }
    json_decref(d);
    return out;
}

/* The titles matching a where, ordered by title. */
static char *matching(const char *where)
{
    char payload[1024];
    snprintf(payload, sizeof payload, "{\"where\":%s,\"orderBy\":{\"field\":\"title\"}}", where);
    return titles(payload);
}

static int64_t count_of(const char *model, const char *where)
{
    json_t *d =
        ok("{\"model\":\"%s\",\"kind\":\"count\",\"payload\":{\"where\":%s}}", model, where);
    int64_t n = json_integer_value(json_object_get(d, "count"));
    json_decref(d);
    return n;
}

/* ---- kinds ------------------------------------------------------------------ */

TestSuite(kinds, .init = setup, .fini = teardown);

Test(kinds, create_returns_the_stored_row_with_defaults)
{
    json_t *d = ok("{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":"
                   "{\"title\":\"hello\",\"ownerId\":\"%s\"}}}",
                   alice);
    cr_assert_str_eq(json_string_value(json_object_get(d, "status")), "OPEN");
    cr_assert_eq(json_integer_value(json_object_get(d, "views")), 0);
    cr_assert(json_is_false(json_object_get(d, "pinned")));
    cr_assert(json_is_null(json_object_get(d, "body")));
    const char *at = json_string_value(json_object_get(d, "createdAt"));
    cr_assert_eq(strlen(at), 27);
    cr_assert_eq(at[26], 'Z');
    cr_assert_eq(strlen(json_string_value(json_object_get(d, "id"))), 36);
    cr_assert_null(json_object_get(d, "owner"), "relations are not columns");
    json_decref(d);
}

Test(kinds, create_many_counts_and_is_atomic)
{
    json_t *d = ok("{\"model\":\"Pair\",\"kind\":\"create_many\",\"payload\":{\"data\":"
                   "[{\"a\":1,\"b\":1},{\"a\":1,\"b\":2,\"v\":\"x\"},{\"a\":2,\"b\":1}]}}");
    cr_assert_eq(json_integer_value(json_object_get(d, "count")), 3);
    json_decref(d);
    /* Row 1 repeats a key: nothing of the batch is written. */
    err("unique_violation", "payload.data",
        "{\"model\":\"Pair\",\"kind\":\"create_many\",\"payload\":{\"data\":"
        "[{\"a\":5,\"b\":5},{\"a\":1,\"b\":1}]}}");
    err("validation", "payload.data[1].a",
        "{\"model\":\"Pair\",\"kind\":\"create_many\",\"payload\":{\"data\":"
        "[{\"a\":6,\"b\":6},{\"a\":\"x\",\"b\":1}]}}");
    cr_assert_eq(count_of("Pair", "{}"), 3);
    d = ok("{\"model\":\"Pair\",\"kind\":\"create_many\",\"payload\":{\"data\":[]}}");
    cr_assert_eq(json_integer_value(json_object_get(d, "count")), 0);
    json_decref(d);
}

Test(kinds, find_unique_by_key_compound_key_and_select)
{
    note(alice, "one", "\"body\":\"b1\"");
    json_t *d = ok("{\"model\":\"Note\",\"kind\":\"find_unique\",\"payload\":{\"where\":"
                   "{\"ownerId\":\"%s\",\"title\":\"one\"},\"select\":[\"title\",\"body\"]}}",
                   alice);
    char *txt = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cr_assert_str_eq(txt, "{\"title\":\"one\",\"body\":\"b1\"}");
    free(txt);
    json_decref(d);
    d = ok("{\"model\":\"Account\",\"kind\":\"find_unique\",\"payload\":{\"where\":"
           "{\"id\":\"%s\"}}}",
           bob);
    cr_assert_str_eq(json_string_value(json_object_get(d, "email")), "bob@x.io");
    json_decref(d);
    d = ok("{\"model\":\"Account\",\"kind\":\"find_unique\",\"payload\":{\"where\":"
           "{\"email\":\"nobody@x.io\"}}}");
    cr_assert(json_is_null(d), "absent is null, not an error");
    json_decref(d);
    err("bad_request", "payload.where: ",
        "{\"model\":\"Note\",\"kind\":\"find_unique\",\"payload\":{\"where\":{\"title\":\"one\"}}"
        "}");
    err("bad_request", "payload.where.email: a unique lookup value cannot be null",
        "{\"model\":\"Account\",\"kind\":\"find_unique\",\"payload\":{\"where\":{\"email\":null}}"
        "}");
}

Test(kinds, find_first_and_find_many_order_take_skip_cursor_select, .init = add_notes)
{
    cr_assert_str_eq(titles("{\"orderBy\":[{\"field\":\"views\",\"direction\":\"desc\"}]}"),
                     "cherry,Banana,apple,date");
    cr_assert_str_eq(titles("{\"orderBy\":{\"field\":\"views\"},\"take\":2,\"skip\":1}"),
                     "apple,Banana");
    cr_assert_str_eq(titles("{\"orderBy\":[{\"field\":\"pinned\",\"direction\":\"desc\"},"
                            "{\"field\":\"title\",\"direction\":\"asc\"}]}"),
                     "Banana,apple,cherry,date");
    cr_assert_str_eq(titles("{\"take\":0}"), "");
    /* Cursor pagination continues strictly after the cursor row. */
    json_t *first = ok("{\"model\":\"Note\",\"kind\":\"find_first\",\"payload\":"
                       "{\"orderBy\":[{\"field\":\"views\"}],\"where\":{\"ownerId\":\"%s\"}}}",
                       alice);
    cr_assert_str_eq(json_string_value(json_object_get(first, "title")), "apple");
    char payload[512];
    snprintf(payload, sizeof payload,
             "{\"orderBy\":[{\"field\":\"views\"}],\"cursor\":{\"id\":\"%s\"},\"take\":2}",
             json_string_value(json_object_get(first, "id")));
    cr_assert_str_eq(titles(payload), "Banana,cherry");
    json_decref(first);
    json_t *d = ok("{\"model\":\"Note\",\"kind\":\"find_many\",\"payload\":{\"select\":"
                   "[\"views\",\"title\"],\"orderBy\":{\"field\":\"views\"},\"take\":1}}");
    char *txt = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cr_assert_str_eq(txt, "[{\"views\":1,\"title\":\"date\"}]");
    free(txt);
    json_decref(d);
    d = ok("{\"model\":\"Note\",\"kind\":\"find_first\",\"payload\":{\"where\":"
           "{\"title\":\"zzz\"}}}");
    cr_assert(json_is_null(d));
    json_decref(d);
    err("not_found", "cursor row",
        "{\"model\":\"Note\",\"kind\":\"find_many\",\"payload\":{\"cursor\":{\"id\":"
        "\"00000000-0000-0000-0000-000000000000\"}}}");
}

Test(kinds, count_and_aggregate_exact_decimals, .init = add_notes)
{
    cr_assert_eq(count_of("Note", "{}"), 4);
    cr_assert_eq(count_of("Note", "{\"pinned\":true}"), 1);
    json_t *d = ok("{\"model\":\"Note\",\"kind\":\"aggregate\",\"payload\":{\"_count\":true,"
                   "\"_sum\":[\"price\",\"views\"],\"_avg\":[\"views\"],\"_min\":[\"price\","
                   "\"title\"],\"_max\":[\"price\"]}}");
    char *txt = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cr_assert_str_eq(txt, "{\"_count\":4,\"_sum\":{\"price\":\"19.85\",\"views\":16},"
                          "\"_avg\":{\"views\":4},\"_min\":{\"price\":\"0.10\",\"title\":"
                          "\"Banana\"},\"_max\":{\"price\":\"10.25\"}}");
    free(txt);
    json_decref(d);
    d = ok("{\"model\":\"Note\",\"kind\":\"aggregate\",\"payload\":{\"where\":{\"title\":"
           "\"none\"},\"_sum\":[\"price\"]}}");
    cr_assert(json_is_null(json_object_get(json_object_get(d, "_sum"), "price")));
    json_decref(d);
    err("bad_request", "payload._sum[0]: Note.title is String, which is not a number",
        "{\"model\":\"Note\",\"kind\":\"aggregate\",\"payload\":{\"_sum\":[\"title\"]}}");
    err("bad_request", "payload: an aggregate needs at least one",
        "{\"model\":\"Note\",\"kind\":\"aggregate\",\"payload\":{\"_count\":false}}");
}

Test(kinds, update_is_partial_and_reports_not_found, .init = add_notes)
{
    json_t *d = ok("{\"model\":\"Note\",\"kind\":\"update\",\"payload\":{\"where\":"
                   "{\"ownerId\":\"%s\",\"title\":\"apple\"},\"data\":{\"views\":30,"
                   "\"price\":null}}}",
                   alice);
    cr_assert_eq(json_integer_value(json_object_get(d, "views")), 30);
    cr_assert(json_is_null(json_object_get(d, "price")));
    cr_assert_str_eq(json_string_value(json_object_get(d, "body")), "Red fruit");
    json_decref(d);
    err("not_found", "payload.where: ",
        "{\"model\":\"Note\",\"kind\":\"update\",\"payload\":{\"where\":{\"id\":"
        "\"00000000-0000-0000-0000-000000000000\"},\"data\":{\"views\":1}}}");
    err("required", "payload.data.title: Note.title is required",
        "{\"model\":\"Note\",\"kind\":\"update\",\"payload\":{\"where\":{\"ownerId\":\"%s\","
        "\"title\":\"apple\"},\"data\":{\"title\":null}}}",
        alice);
    err("unique_violation", "payload.data",
        "{\"model\":\"Note\",\"kind\":\"update\",\"payload\":{\"where\":{\"ownerId\":\"%s\","
        "\"title\":\"apple\"},\"data\":{\"title\":\"cherry\"}}}",
        alice);
    d = ok("{\"model\":\"Note\",\"kind\":\"update_many\",\"payload\":{\"where\":{\"ownerId\":"
           "\"%s\"},\"data\":{\"status\":\"DONE\"}}}",
           alice);
    cr_assert_eq(json_integer_value(json_object_get(d, "count")), 3);
    json_decref(d);
    cr_assert_eq(count_of("Note", "{\"status\":\"DONE\"}"), 3);
}

Test(kinds, upsert_creates_then_updates)
{
    const char *req = "{\"model\":\"Account\",\"kind\":\"upsert\",\"payload\":{\"where\":"
                      "{\"email\":\"carol@x.io\"},\"create\":{\"name\":\"Carol\"},"
                      "\"update\":{\"name\":\"Caroline\"}}}";
    json_t *d = ok("%s", req);
    cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "Carol");
    cr_assert_str_eq(json_string_value(json_object_get(d, "email")), "carol@x.io");
    json_decref(d);
    d = ok("%s", req);
    cr_assert_str_eq(json_string_value(json_object_get(d, "name")), "Caroline");
    json_decref(d);
    cr_assert_eq(count_of("Account", "{}"), 3);
}

Test(kinds, delete_and_delete_many_respect_soft_delete, .init = add_notes)
{
    json_t *d = ok("{\"model\":\"Note\",\"kind\":\"delete\",\"payload\":{\"where\":"
                   "{\"ownerId\":\"%s\",\"title\":\"apple\"}}}",
                   alice);
    cr_assert_str_eq(json_string_value(json_object_get(d, "title")), "apple");
    json_decref(d);
    cr_assert_eq(count_of("Note", "{}"), 3, "soft-deleted rows are not counted");
    err("not_found", "payload.where",
        "{\"model\":\"Note\",\"kind\":\"delete\",\"payload\":{\"where\":{\"ownerId\":\"%s\","
        "\"title\":\"apple\"}}}",
        alice);
    d = ok("{\"model\":\"Note\",\"kind\":\"delete_many\",\"payload\":{\"where\":{\"views\":"
           "{\"gt\":4}}}}");
    cr_assert_eq(json_integer_value(json_object_get(d, "count")), 2);
    json_decref(d);
    d = ok("{\"model\":\"Note\",\"kind\":\"delete_many\"}");
    cr_assert_eq(json_integer_value(json_object_get(d, "count")), 1);
    json_decref(d);
    cr_assert_eq(count_of("Note", "{}"), 0);
}

/* ---- transactions ------------------------------------------------------------ */

Test(kinds, transaction_returns_each_data_in_order)
{
    json_t *d = ok("{\"kind\":\"transaction\",\"payload\":{\"requests\":["
                   "{\"model\":\"Pair\",\"kind\":\"create\",\"payload\":{\"data\":{\"a\":1,"
                   "\"b\":1}}},"
                   "{\"model\":\"Pair\",\"kind\":\"count\"},"
                   "{\"model\":\"Pair\",\"kind\":\"update\",\"payload\":{\"where\":{\"a\":1,"
                   "\"b\":1},\"data\":{\"v\":\"x\"}}},"
                   "{\"model\":\"Pair\",\"kind\":\"find_many\"}]}}");
    char *txt = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    cr_assert_str_eq(txt, "[{\"a\":1,\"b\":1,\"v\":null},{\"count\":1},{\"a\":1,\"b\":1,"
                          "\"v\":\"x\"},[{\"a\":1,\"b\":1,\"v\":\"x\"}]]");
    free(txt);
    json_decref(d);
    d = ok("{\"kind\":\"transaction\",\"payload\":{\"requests\":[]}}");
    cr_assert(json_is_array(d) && json_array_size(d) == 0);
    json_decref(d);
}

Test(kinds, transaction_is_all_or_nothing_and_names_the_failing_request)
{
    const char *reqs =
        "{\"model\":\"Pair\",\"kind\":\"create\",\"payload\":{\"data\":{\"a\":1,\"b\":1}}},"
        "{\"model\":\"Pair\",\"kind\":\"create\",\"payload\":{\"data\":{\"a\":1,\"b\":2}}},";
    err("unique_violation", "requests[2]: payload.data",
        "{\"kind\":\"transaction\",\"payload\":{\"requests\":[%s"
        "{\"model\":\"Pair\",\"kind\":\"create\",\"payload\":{\"data\":{\"a\":1,\"b\":1}}}]}}",
        reqs);
    err("validation", "requests[2]: payload.data.b: ",
        "{\"kind\":\"transaction\",\"payload\":{\"requests\":[%s"
        "{\"model\":\"Pair\",\"kind\":\"create\",\"payload\":{\"data\":{\"a\":1,\"b\":true}}}]}}",
        reqs);
    err("bad_request", "requests[2]: model: unknown model 'Nope'",
        "{\"kind\":\"transaction\",\"payload\":{\"requests\":[%s"
        "{\"model\":\"Nope\",\"kind\":\"count\"}]}}",
        reqs);
    err("bad_request", "requests[2]: expected a request object, got a number",
        "{\"kind\":\"transaction\",\"payload\":{\"requests\":[%s 7]}}", reqs);
    err("bad_request", "requests[0]: kind: a transaction cannot be nested",
        "{\"kind\":\"transaction\",\"payload\":{\"requests\":[{\"kind\":\"transaction\","
        "\"payload\":{\"requests\":[]}}]}}");
    cr_assert_eq(count_of("Pair", "{}"), 0, "nothing of a failed transaction stays");
    err("bad_request", "model: a transaction takes no model",
        "{\"model\":\"Pair\",\"kind\":\"transaction\",\"payload\":{\"requests\":[]}}");
    err("bad_request", "payload.requests: expected a list",
        "{\"kind\":\"transaction\",\"payload\":{\"requests\":{}}}");
}

/* ---- where -------------------------------------------------------------------- */

TestSuite(where, .init = setup_notes, .fini = teardown);

Test(where, equality_and_null)
{
    cr_assert_str_eq(matching("{\"title\":\"apple\"}"), "apple");
    cr_assert_str_eq(matching("{\"price\":null}"), "cherry");
    cr_assert_str_eq(matching("{\"price\":{\"equals\":null}}"), "cherry");
    cr_assert_str_eq(matching("{\"price\":{\"not\":null}}"), "Banana,apple,date");
    cr_assert_str_eq(matching("{\"views\":3,\"body\":\"Red fruit\"}"), "apple");
    cr_assert_str_eq(matching("{}"), "Banana,apple,cherry,date");
}

Test(where, comparison_operators)
{
    cr_assert_str_eq(matching("{\"price\":{\"gt\":\"9.5\"}}"), "Banana");
    cr_assert_str_eq(matching("{\"price\":{\"gte\":\"9.5\"}}"), "Banana,apple");
    cr_assert_str_eq(matching("{\"price\":{\"lt\":\"10\"}}"), "apple,date");
    cr_assert_str_eq(matching("{\"views\":{\"lte\":3,\"gt\":1}}"), "apple");
    cr_assert_str_eq(matching("{\"views\":{\"equals\":7}}"), "cherry");
    cr_assert_str_eq(matching("{\"views\":{\"in\":[1,7,99]}}"), "cherry,date");
    cr_assert_str_eq(matching("{\"views\":{\"notIn\":[1,7]}}"), "Banana,apple");
    cr_assert_str_eq(matching("{\"views\":{\"in\":[]}}"), "");
    /* `not` with a value excludes nulls too (every comparison with null is
     * false); `not` with an object negates it. */
    cr_assert_str_eq(matching("{\"body\":{\"not\":\"small\"}}"), "apple");
    cr_assert_str_eq(matching("{\"views\":{\"not\":{\"gt\":3}}}"), "apple,date");
    cr_assert_str_eq(matching("{\"views\":{\"not\":{\"in\":[1,3]}}}"), "Banana,cherry");
}

Test(where, text_operators_and_insensitive_mode)
{
    cr_assert_str_eq(matching("{\"title\":{\"contains\":\"an\"}}"), "Banana");
    cr_assert_str_eq(matching("{\"title\":{\"startsWith\":\"b\"}}"), "");
    cr_assert_str_eq(matching("{\"title\":{\"startsWith\":\"b\",\"mode\":\"insensitive\"}}"),
                     "Banana");
    cr_assert_str_eq(matching("{\"title\":{\"endsWith\":\"rry\"}}"), "cherry");
    cr_assert_str_eq(matching("{\"title\":{\"equals\":\"BANANA\",\"mode\":\"insensitive\"}}"),
                     "Banana");
    cr_assert_str_eq(matching("{\"title\":{\"in\":[\"APPLE\",\"date\"],"
                              "\"mode\":\"insensitive\"}}"),
                     "apple,date");
    cr_assert_str_eq(matching("{\"title\":{\"notIn\":[\"APPLE\",\"date\"],"
                              "\"mode\":\"insensitive\"}}"),
                     "Banana,cherry");
    cr_assert_str_eq(matching("{\"title\":{\"mode\":\"insensitive\",\"not\":{\"contains\":"
                              "\"A\"}}}"),
                     "cherry");
    cr_assert_str_eq(matching("{\"body\":{\"contains\":\"\"}}"), "apple,cherry");
}

Test(where, and_or_not)
{
    cr_assert_str_eq(matching("{\"AND\":[{\"views\":{\"gt\":1}},{\"views\":{\"lt\":7}}]}"),
                     "Banana,apple");
    cr_assert_str_eq(matching("{\"AND\":{\"views\":5}}"), "Banana");
    cr_assert_str_eq(matching("{\"OR\":[{\"views\":1},{\"title\":\"apple\"}]}"), "apple,date");
    cr_assert_str_eq(matching("{\"OR\":[]}"), "");
    cr_assert_str_eq(matching("{\"OR\":[{},{\"views\":1}]}"), "Banana,apple,cherry,date");
    cr_assert_str_eq(matching("{\"NOT\":{\"views\":1}}"), "Banana,apple,cherry");
    cr_assert_str_eq(matching("{\"NOT\":[{\"views\":1},{\"views\":3}]}"), "Banana,cherry");
    cr_assert_str_eq(matching("{\"NOT\":{}}"), "");
    cr_assert_str_eq(matching("{\"OR\":[{\"AND\":[{\"pinned\":true},{\"NOT\":{\"views\":9}}]},"
                              "{\"price\":null}]}"),
                     "Banana,cherry");
}

Test(where, relation_filters)
{
    json_decref(ok("{\"model\":\"Profile\",\"kind\":\"create\",\"payload\":{\"data\":"
                   "{\"bio\":\"hi\",\"accountId\":\"%s\"}}}",
                   bob));
    /* to-many: some / every / none */
    cr_assert_eq(count_of("Account", "{\"notes\":{\"some\":{\"pinned\":true}}}"), 1);
    cr_assert_eq(count_of("Account", "{\"notes\":{\"every\":{\"views\":{\"lt\":2}}}}"), 1);
    cr_assert_eq(count_of("Account", "{\"notes\":{\"none\":{\"views\":{\"gt\":2}}}}"), 1);
    cr_assert_eq(count_of("Account", "{\"notes\":{\"some\":{}}}"), 2);
    /* to-one: is / isNot, through the owning side and the back side */
    cr_assert_str_eq(matching("{\"owner\":{\"is\":{\"email\":\"bob@x.io\"}}}"), "date");
    cr_assert_str_eq(matching("{\"owner\":{\"isNot\":{\"email\":\"bob@x.io\"}}}"),
                     "Banana,apple,cherry");
    cr_assert_eq(count_of("Account", "{\"profile\":{\"is\":null}}"), 1);
    cr_assert_eq(count_of("Account", "{\"profile\":{\"isNot\":null}}"), 1);
    cr_assert_eq(count_of("Account", "{\"profile\":{\"is\":{\"bio\":\"hi\"}}}"), 1);
    /* nested: accounts with a note whose owner has a profile */
    cr_assert_eq(count_of("Account", "{\"notes\":{\"some\":{\"owner\":{\"is\":{\"profile\":"
                                     "{\"isNot\":null}}}}}}"),
                 1);
    err("bad_request", "payload.where.owner.some: Note.owner is a to-one relation",
        "{\"model\":\"Note\",\"kind\":\"count\",\"payload\":{\"where\":{\"owner\":{\"some\":{}}}}"
        "}");
    err("bad_request", "payload.where.notes.is: Account.notes is a to-many relation",
        "{\"model\":\"Account\",\"kind\":\"count\",\"payload\":{\"where\":{\"notes\":{\"is\":{}}}}"
        "}");
}

/* ---- values --------------------------------------------------------------------- */

TestSuite(values, .init = setup, .fini = teardown);

/* Creates a note with `data` members, reads it back and returns the exact
 * response text of its `field` (static buffer): a JSON parser would
 * normalise what this checks. */
static const char *stored(const char *data, const char *field)
{
    static char out[512];
    static int serial;
    json_decref(ok("{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"title\":"
                   "\"v%d\",\"ownerId\":\"%s\",%s}}}",
                   ++serial, alice, data));
    char req[256], prefix[128];
    snprintf(req, sizeof req,
             "{\"model\":\"Note\",\"kind\":\"find_first\",\"payload\":{\"where\":{\"title\":"
             "\"v%d\"},\"select\":[\"%s\"]}}",
             serial, field);
    char *resp = t_env_call_raw(req);
    snprintf(prefix, sizeof prefix, "{\"status\":\"ok\",\"data\":{\"%s\":", field);
    size_t n = strlen(resp), pn = strlen(prefix);
    cr_assert(n > pn + 2 && strncmp(resp, prefix, pn) == 0, "%s", resp);
    snprintf(out, sizeof out, "%.*s", (int)(n - pn - 2), resp + pn);
    free(resp);
    return out;
}

Test(values, every_scalar_round_trips_in_canonical_form)
{
    cr_assert_str_eq(stored("\"ref\":\"ckx1abc\"", "ref"), "\"ckx1abc\"");
    cr_assert_str_eq(stored("\"due\":\"2026-01-02T03:04:05+02:00\"", "due"),
                     "\"2026-01-02T01:04:05.000000Z\"");
    cr_assert_str_eq(stored("\"due\":\"2026-11-26T10:40:21.123456Z\"", "due"),
                     "\"2026-11-26T10:40:21.123456Z\"");
    cr_assert_str_eq(stored("\"price\":\"1.10\"", "price"), "\"1.10\"");
    cr_assert_str_eq(stored("\"price\":\"-0.00\"", "price"), "\"0.00\"");
    cr_assert_str_eq(stored("\"price\":12", "price"), "\"12\"");
    cr_assert_str_eq(stored("\"price\":123456789012345678901234567890", "price"),
                     "\"123456789012345678901234567890\"");
    cr_assert_str_eq(stored("\"blob\":\"AAEC/w==\"", "blob"), "\"AAEC/w==\"");
    cr_assert_str_eq(stored("\"blob\":\"\"", "blob"), "\"\"");
    cr_assert_str_eq(stored("\"score\":-2.5e-3", "score"), "-0.0025");
    cr_assert_str_eq(stored("\"score\":3", "score"), "3");
    cr_assert_str_eq(stored("\"score\":0.1", "score"), "0.1");
    cr_assert_str_eq(stored("\"views\":-42", "views"), "-42");
    cr_assert_str_eq(stored("\"views\":\"-42\"", "views"), "-42");
    cr_assert_str_eq(stored("\"pinned\":true", "pinned"), "true");
    cr_assert_str_eq(stored("\"status\":\"DONE\"", "status"), "\"DONE\"");
    cr_assert_str_eq(stored("\"body\":\"h\\u00e9 \\\"x\\\"\\n\"", "body"),
                     "\"h\xc3\xa9 \\\"x\\\"\\n\"");
}

Test(values, uuid_is_lowercased)
{
    json_t *d = ok("{\"model\":\"Account\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":"
                   "\"0A1B2C3D-4E5F-4A6B-8C7D-8E9FA0B1C2D3\",\"email\":\"u@x.io\"}}}");
    cr_assert_str_eq(json_string_value(json_object_get(d, "id")),
                     "0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3");
    json_decref(d);
    /* Lookups accept any case too. */
    cr_assert_eq(count_of("Account", "{\"id\":\"0A1B2C3D-4E5F-4A6B-8C7D-8E9FA0B1C2D3\"}"), 1);
}

Test(values, json_keeps_numbers_exactly_as_written)
{
    const char *in = "{\"a\":1.50,\"b\":[1e5,-0,12345678901234567890,0.1],\"c\":{\"d\":null,"
                     "\"e\":\"\\u00e9\"},\"f\":true}";
    char data[512];
    snprintf(data, sizeof data, "\"tags\":%s", in);
    char req[1024];
    snprintf(req, sizeof req,
             "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"title\":"
             "\"j\",\"ownerId\":\"%s\",%s}}}",
             alice, data);
    /* Raw response text: a JSON parser would normalise (or refuse) numbers. */
    char *resp = t_env_call_raw(req);
    cr_assert(strncmp(resp, "{\"status\":\"ok\"", 14) == 0, "%s", resp);
    free(resp);
    resp = t_env_call_raw("{\"model\":\"Note\",\"kind\":\"find_first\",\"payload\":"
                          "{\"where\":{\"title\":\"j\"},\"select\":[\"tags\"]}}");
    cr_assert_str_eq(resp, "{\"status\":\"ok\",\"data\":{\"tags\":{\"a\":1.50,\"b\":[1e5,-0,"
                           "12345678901234567890,0.1],\"c\":{\"d\":null,\"e\":\"\xc3\xa9\"},"
                           "\"f\":true}}}");
    free(resp);
    /* Any JSON value, not only objects; equality through "equals". */
    cr_assert_str_eq(stored("\"tags\":\"text\"", "tags"), "\"text\"");
    cr_assert_eq(count_of("Note", "{\"tags\":{\"equals\":{\"a\":1.50,\"b\":[1e5,-0,"
                                  "12345678901234567890,0.1],\"c\":{\"d\":null,\"e\":\"\xc3\xa9\"},"
                                  "\"f\":true}}}"),
                 1);
}

Test(values, big_ints_as_strings_only_when_asked)
{
    json_decref(ok("{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"title\":"
                   "\"big\",\"ownerId\":\"%s\",\"big\":\"9223372036854775807\",\"views\":"
                   "9007199254740991}}}",
                   alice));
    const char *q = "{\"model\":\"Note\",\"kind\":\"find_first\",\"payload\":{\"where\":"
                    "{\"big\":{\"gt\":\"9007199254740992\"}},\"select\":[\"big\",\"views\"]}%s}";
    char req[512];
    snprintf(req, sizeof req, q, "");
    char *resp = t_env_call_raw(req);
    cr_assert_str_eq(resp, "{\"status\":\"ok\",\"data\":{\"big\":9223372036854775807,"
                           "\"views\":9007199254740991}}");
    free(resp);
    snprintf(req, sizeof req, q, ",\"bigintAsString\":true");
    resp = t_env_call_raw(req);
    cr_assert_str_eq(resp, "{\"status\":\"ok\",\"data\":{\"big\":\"9223372036854775807\","
                           "\"views\":9007199254740991}}");
    free(resp);
    err("validation", "payload.data.big: invalid Int 9223372036854775808: out of the 64-bit",
        "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"title\":\"x\","
        "\"ownerId\":\"%s\",\"big\":9223372036854775808}}}",
        alice);
}

Test(values, invalid_values_name_their_path)
{
    static const struct {
        const char *data, *code, *msg;
    } cases[] = {
        {"\"price\":\"1e5\"", "validation", "payload.data.price: invalid Decimal \"1e5\""},
        {"\"price\":1.5", "validation", "payload.data.price: expected a Decimal as a string"},
        {"\"price\":true", "validation", "payload.data.price: expected a Decimal as a string"},
        {"\"score\":\"1.5\"", "validation", "payload.data.score: expected a Float as a number"},
        {"\"score\":1e999", "validation", "payload.data.score: invalid Float 1e999"},
        {"\"views\":1.5", "validation", "payload.data.views: invalid Int 1.5: not a whole"},
        {"\"views\":\"12a\"", "validation", "payload.data.views: invalid Int \"12a\""},
        {"\"views\":\"007\"", "validation", "payload.data.views: invalid Int \"007\""},
        {"\"pinned\":\"true\"", "validation", "payload.data.pinned: expected a Boolean"},
        {"\"status\":\"NOPE\"", "validation", "payload.data.status: invalid Status \"NOPE\""},
        {"\"blob\":\"!!\"", "validation", "payload.data.blob: invalid Bytes \"!!\""},
        {"\"due\":\"2026-01-01T25:00:00Z\"", "validation", "payload.data.due: invalid DateTime"},
        {"\"ref\":\"Upper\"", "validation", "payload.data.ref: invalid Cuid"},
        {"\"body\":5", "validation",
         "payload.data.body: expected a String as a string, got a "
         "number"},
        {"\"views\":null", "required", "payload.data.views: Note.views is required"},
        {"\"owner\":{}", "bad_request", "payload.data.owner: Note.owner is a relation"},
        {"\"titel\":\"x\"", "bad_request",
         "payload.data.titel: unknown field 'titel' in model Note (did you mean 'title'?)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        err(cases[i].code, cases[i].msg,
            "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"title\":\"t\","
            "\"ownerId\":\"%s\",%s}}}",
            alice, cases[i].data);
    err("validation", "payload.data.ownerId: invalid Uuid \"nope\"",
        "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"title\":\"t\","
        "\"ownerId\":\"nope\"}}}");
    err("required", "payload.data: missing required field 'title' of model Note",
        "{\"model\":\"Note\",\"kind\":\"create\",\"payload\":{\"data\":{\"ownerId\":\"%s\"}}}",
        alice);
    cr_assert_eq(count_of("Note", "{}"), 0, "no invalid create wrote anything");
    err("validation", "payload.where.price.gt: expected a Decimal as a string",
        "{\"model\":\"Note\",\"kind\":\"count\",\"payload\":{\"where\":{\"price\":{\"gt\":1.5}}}}");
    err("validation", "payload.where.views.in[1]: invalid Int \"x\"",
        "{\"model\":\"Note\",\"kind\":\"count\",\"payload\":{\"where\":{\"views\":{\"in\":[1,"
        "\"x\"]}}}}");
}
