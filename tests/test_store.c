/* test_store.c -- the embedded runtime: delegates, filters, canonical values,
 * soft delete, audit, events, transactions, threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cstack.h"
#include "support.h"

static const char *SCHEMA =
    "enum Status { OPEN DONE }\n"
    "model Account {\n"
    "  id    Uuid   @id @default(uuid())\n"
    "  email String @unique\n"
    "  notes Note[]\n"
    "}\n"
    "model Note {\n"
    "  id        Uuid     @id @default(uuid())\n"
    "  title     String\n"
    "  body      String?\n"
    "  status    Status   @default(OPEN)\n"
    "  price     Decimal?\n"
    "  tags      Json?\n"
    "  blob      Bytes?\n"
    "  score     Float?\n"
    "  views     Int      @default(0)\n"
    "  pinned    Boolean  @default(false)\n"
    "  due       DateTime?\n"
    "  createdAt DateTime @default(now())\n"
    "  updatedAt DateTime @updatedAt\n"
    "  deletedAt DateTime?\n"
    "  ownerId   Uuid\n"
    "  owner     Account  @relation(fields: [ownerId], references: [id], onDelete: Cascade)\n"
    "  @@unique([ownerId, title])\n"
    "  @@index([ownerId, createdAt])\n"
    "  @@soft_delete(deletedAt)\n"
    "  @@audit\n"
    "  @@emit(created, updated, deleted)\n"
    "}\n"
    "model Counter {\n"
    "  id    Int @id @default(autoincrement())\n"
    "  label String\n"
    "}\n"
    "model Pair {\n"
    "  a Int\n"
    "  b Int\n"
    "  v String?\n"
    "  @@id([a, b])\n"
    "}\n";


static cstack *db;
static char account[37];

static void text_of(const cstack_row *r, const char *field, char *out, size_t n)
{
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, field, &v), 0, "field %s", field);
    if (v.type == CSTACK_NULL) {
        snprintf(out, n, "(null)");
        return;
    }
    cr_assert_eq(v.type, CSTACK_TEXT, "field %s is text", field);
    snprintf(out, n, "%.*s", (int)v.u.s.n, v.u.s.p);
}

static void setup(void)
{
    db = t_open_mem(SCHEMA);
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "Account", DATA(FV("email", T("a@x.io"))), &r), 0, "%s",
                 cstack_errmsg(db));
    text_of(r, "id", account, sizeof account);
    cstack_row_free(r);
}

static void teardown(void)
{
    cstack_close(db);
    db = NULL;
}

static void note(const char *title, const char *price)
{
    int rc = cstack_create(
        db, "Note",
        DATA(FV("title", T(title)), FV("ownerId", T(account)),
             FV("price", price ? T(price) : cstack_v_null())),
        NULL);
    cr_assert_eq(rc, 0, "create %s: %s", title, cstack_errmsg(db));
}

static int64_t count(const char *model, cstack_filter *f)
{
    int64_t n = -1;
    cr_assert_eq(cstack_count(db, model, f, &n), 0, "%s", cstack_errmsg(db));
    cstack_filter_free(f);
    return n;
}

/* Titles of find_many(where, order) joined with commas. */
static void titles(cstack_filter *where, const cstack_order *order, size_t norder, char *out,
                   size_t n)
{
    cstack_query q = {.where = where, .order_by = order, .n_order = norder};
    cstack_rows *rows = NULL;
    cr_assert_eq(cstack_find_many(db, "Note", &q, &rows), 0, "%s", cstack_errmsg(db));
    out[0] = 0;
    for (size_t i = 0; i < cstack_rows_count(rows); i++) {
        char t[128];
        text_of(cstack_rows_get(rows, i), "title", t, sizeof t);
        strncat(out, i ? "," : "", n - strlen(out) - 1);
        strncat(out, t, n - strlen(out) - 1);
    }
    cstack_rows_free(rows);
    cstack_filter_free(where);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, create_returns_stored_row_with_defaults)
{
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "Note", DATA(FV("title", T("hello")), FV("ownerId", T(account))),
                               &r),
                 0, "%s", cstack_errmsg(db));
    char buf[128];
    text_of(r, "status", buf, sizeof buf);
    cr_expect_str_eq(buf, "OPEN");
    text_of(r, "id", buf, sizeof buf);
    cr_expect_eq(strlen(buf), 36);
    text_of(r, "createdAt", buf, sizeof buf);
    cr_expect_eq(strlen(buf), 27);
    cr_expect_eq(buf[26], 'Z');
    cstack_value v;
    cstack_row_get(r, "pinned", &v);
    cr_expect_eq(v.type, CSTACK_BOOL);
    cr_expect_eq(v.u.b, 0);
    cstack_row_get(r, "views", &v);
    cr_expect_eq(v.type, CSTACK_INT);
    cr_expect_eq(v.u.i, 0);
    cstack_row_get(r, "body", &v);
    cr_expect_eq(v.type, CSTACK_NULL);
    cstack_row_free(r);
}

Test(store, every_scalar_round_trips_canonically)
{
    cstack_row *r = NULL;
    unsigned char bytes[] = {0, 1, 2, 255};
    int rc = cstack_create(db, "Note",
                           DATA(FV("id", T("0F8FAD5B-D9CB-469F-A165-70867728950E")),
                                FV("title", T("caf\xc3\xa9")), FV("ownerId", T(account)),
                                FV("price", T("1.10")), FV("tags", T("{ \"a\" : [1, 2.50] }")),
                                FV("blob", cstack_v_blob(bytes, 4)),
                                FV("score", cstack_v_float(0.1)), FV("views", cstack_v_int(-7)),
                                FV("pinned", cstack_v_bool(1)),
                                FV("due", T("2026-01-01T12:00:00+02:00"))),
                           &r);
    cr_assert_eq(rc, 0, "%s", cstack_errmsg(db));
    char *json = cstack_row_json(r);
    cr_assert_not_null(json);
    cr_expect(strstr(json, "\"id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\""), "%s", json);
    cr_expect(strstr(json, "\"price\":\"1.10\""), "%s", json);
    cr_expect(strstr(json, "\"tags\":{\"a\":[1,2.50]}"), "%s", json);
    cr_expect(strstr(json, "\"blob\":\"AAEC/w==\""), "%s", json);
    cr_expect(strstr(json, "\"score\":0.1"), "%s", json);
    cr_expect(strstr(json, "\"views\":-7"), "%s", json);
    cr_expect(strstr(json, "\"pinned\":true"), "%s", json);
    cr_expect(strstr(json, "\"due\":\"2026-01-01T10:00:00.000000Z\""), "%s", json);
    cstack_free(json);
    cstack_row_free(r);
    /* Reading it back gives the same bytes. */
    cr_assert_eq(cstack_find_unique(db, "Note",
                                    DATA(FV("id", T("0f8fad5b-d9cb-469f-a165-70867728950E"))),
                                    NULL, 0, &r),
                 0);
    cr_assert_not_null(r);
    char buf[64];
    text_of(r, "price", buf, sizeof buf);
    cr_expect_str_eq(buf, "1.10");
    cstack_row_free(r);
}

Test(store, invalid_values_are_rejected_and_nothing_is_written)
{
    struct {
        const char *field;
        cstack_value v;
        int code;
        const char *needle;
    } cases[] = {
        {"price", T("1e5"), CSTACK_EVALIDATION, "Note.price"},
        {"due", T("2026-01-01T25:00:00Z"), CSTACK_EVALIDATION, "Note.due"},
        {"id", T("not-a-uuid"), CSTACK_EVALIDATION, "Note.id"},
        {"status", T("MAYBE"), CSTACK_EVALIDATION, "Note.status"},
        {"views", T("12"), CSTACK_EVALIDATION, "Note.views"},
        {"body", T("bad \xff utf8"), CSTACK_EVALIDATION, "Note.body"},
        {"tags", T("{bad json"), CSTACK_EVALIDATION, "Note.tags"},
        {"title", cstack_v_null(), CSTACK_EREQUIRED, "Note.title"},
        {"nosuch", T("x"), CSTACK_EINVAL, "nosuch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cstack_field_value fv[3] = {FV("ownerId", T(account)), FV("title", T("t")),
                                    FV(cases[i].field, cases[i].v)};
        if (strcmp(cases[i].field, "title") == 0)
            fv[1] = FV("body", T("x"));
        cstack_data d = {fv, 3};
        int rc = cstack_create(db, "Note", &d, NULL);
        cr_expect_eq(rc, cases[i].code, "case %zu: rc %d (%s)", i, rc, cstack_errmsg(db));
        cr_expect(strstr(cstack_errmsg(db), cases[i].needle), "case %zu: message '%s'", i,
                  cstack_errmsg(db));
    }
    cr_expect_eq(count("Note", NULL), 0);
    cr_expect_eq(cstack_create(db, "Note", DATA(FV("title", T("x"))), NULL), CSTACK_EREQUIRED);
    cr_expect(strstr(cstack_errmsg(db), "Note.ownerId"), "%s", cstack_errmsg(db));
    cr_expect_eq(cstack_create(db, "Nope", DATA(FV("title", T("x"))), NULL), CSTACK_EINVAL);
}

Test(store, constraint_errors_have_distinct_codes)
{
    note("same", NULL);
    cr_expect_eq(cstack_create(db, "Note", DATA(FV("title", T("same")), FV("ownerId", T(account))),
                               NULL),
                 CSTACK_EUNIQUE);
    cr_expect(strstr(cstack_errmsg(db), "Note.ownerId, Note.title"), "%s", cstack_errmsg(db));
    cr_expect_eq(cstack_create(db, "Note",
                               DATA(FV("title", T("orphan")),
                                    FV("ownerId", T("00000000-0000-4000-8000-000000000000"))),
                               NULL),
                 CSTACK_EFOREIGNKEY, "%s", cstack_errmsg(db));
    cr_expect_eq(cstack_update(db, "Note", DATA(FV("id", T("00000000-0000-4000-8000-000000000000"))),
                               DATA(FV("title", T("x"))), NULL),
                 CSTACK_ENOTFOUND);
    cr_expect_eq(count("Note", NULL), 1);
}

Test(store, decimal_orders_and_compares_numerically)
{
    note("ten", "10.25");
    note("nine", "9.5");
    note("hundred", "100");
    note("none", NULL);
    char out[256];
    cstack_order by_price = {"price", 0};
    titles(cstack_filter_is_null("price", 0), &by_price, 1, out, sizeof out);
    cr_expect_str_eq(out, "nine,ten,hundred");
    titles(cstack_filter_cmp("price", CSTACK_OP_GT, 0, T("9.75")), &by_price, 1, out, sizeof out);
    cr_expect_str_eq(out, "ten,hundred");
    titles(cstack_filter_cmp("price", CSTACK_OP_EQ, 0, T("9.50")), NULL, 0, out, sizeof out);
    cr_expect_str_eq(out, "nine");
    cstack_order desc = {"price", 1};
    titles(NULL, &desc, 1, out, sizeof out);
    cr_expect_str_eq(out, "hundred,ten,nine,none");
}

Test(store, filters_cover_every_operator)
{
    note("Alpha", "1");
    note("beta", "2");
    note("Gamma ray", "3");
    note("delta", NULL);
    char out[256];
    cstack_order by_title = {"title", 0};
    struct {
        cstack_filter *f;
        const char *want;
    } cases[] = {
        {cstack_filter_cmp("title", CSTACK_OP_EQ, 0, T("beta")), "beta"},
        {cstack_filter_cmp("title", CSTACK_OP_EQ, CSTACK_CI, T("ALPHA")), "Alpha"},
        {cstack_filter_cmp("title", CSTACK_OP_NE, 0, T("beta")), "Alpha,Gamma ray,delta"},
        {cstack_filter_cmp("price", CSTACK_OP_NE, 0, T("1")), "Gamma ray,beta"},
        {cstack_filter_cmp("price", CSTACK_OP_LT, 0, T("2")), "Alpha"},
        {cstack_filter_cmp("price", CSTACK_OP_LTE, 0, T("2")), "Alpha,beta"},
        {cstack_filter_cmp("price", CSTACK_OP_GTE, 0, T("2")), "Gamma ray,beta"},
        {cstack_filter_in("title", 0, (cstack_value[]){T("beta"), T("delta")}, 2), "beta,delta"},
        {cstack_filter_in("title", 1, (cstack_value[]){T("beta"), T("delta")}, 2),
         "Alpha,Gamma ray"},
        {cstack_filter_in("title", 0, NULL, 0), ""},
        {cstack_filter_cmp("title", CSTACK_OP_CONTAINS, 0, T("ta")), "beta,delta"},
        {cstack_filter_cmp("title", CSTACK_OP_CONTAINS, CSTACK_CI, T("RAY")), "Gamma ray"},
        {cstack_filter_cmp("title", CSTACK_OP_CONTAINS, 0, T("%")), ""},
        {cstack_filter_cmp("title", CSTACK_OP_STARTS_WITH, 0, T("Gam")), "Gamma ray"},
        {cstack_filter_cmp("title", CSTACK_OP_STARTS_WITH, CSTACK_CI, T("gam")), "Gamma ray"},
        {cstack_filter_cmp("title", CSTACK_OP_ENDS_WITH, 0, T("ta")), "beta,delta"},
        {cstack_filter_cmp("title", CSTACK_OP_ENDS_WITH, CSTACK_CI, T("HA")), "Alpha"},
        {cstack_filter_is_null("price", 1), "delta"},
        {cstack_filter_cmp("price", CSTACK_OP_EQ, 0, cstack_v_null()), "delta"},
        {cstack_filter_and2(cstack_filter_cmp("price", CSTACK_OP_GT, 0, T("1")),
                            cstack_filter_cmp("title", CSTACK_OP_CONTAINS, 0, T("a"))),
         "Gamma ray,beta"},
        {cstack_filter_or2(cstack_filter_cmp("title", CSTACK_OP_EQ, 0, T("Alpha")),
                           cstack_filter_is_null("price", 1)),
         "Alpha,delta"},
        {cstack_filter_not(cstack_filter_cmp("title", CSTACK_OP_EQ, 0, T("Alpha"))),
         "Gamma ray,beta,delta"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        titles(cases[i].f, &by_title, 1, out, sizeof out);
        cr_expect_str_eq(out, cases[i].want, "case %zu", i);
    }
}

Test(store, bad_filters_are_errors)
{
    cstack_rows *rows = NULL;
    cstack_filter *f = cstack_filter_cmp("nosuch", CSTACK_OP_EQ, 0, T("x"));
    cstack_query q = {.where = f};
    cr_expect_eq(cstack_find_many(db, "Note", &q, &rows), CSTACK_EINVAL);
    cr_expect(strstr(cstack_errmsg(db), "nosuch"));
    cstack_filter_free(f);
    f = cstack_filter_cmp("views", CSTACK_OP_CONTAINS, 0, T("1"));
    q.where = f;
    cr_expect_eq(cstack_find_many(db, "Note", &q, &rows), CSTACK_EINVAL);
    cstack_filter_free(f);
    f = cstack_filter_cmp("views", CSTACK_OP_GT, 0, T("abc"));
    q.where = f;
    cr_expect_eq(cstack_find_many(db, "Note", &q, &rows), CSTACK_EVALIDATION);
    cstack_filter_free(f);
    q.where = NULL;
    q.take = -1;
    cr_expect_eq(cstack_find_many(db, "Note", &q, &rows), CSTACK_EINVAL);
    cstack_filter *deep = cstack_filter_cmp("title", CSTACK_OP_EQ, 0, T("x"));
    for (int i = 0; i < 100; i++)
        deep = cstack_filter_not(deep);
    q = (cstack_query){.where = deep};
    cr_expect_eq(cstack_find_many(db, "Note", &q, &rows), CSTACK_ETOOBIG);
    cstack_filter_free(deep);
}

Test(store, ordering_paging_cursor_and_projection)
{
    for (int i = 0; i < 10; i++) {
        char t[16], p[16];
        snprintf(t, sizeof t, "n%02d", i);
        snprintf(p, sizeof p, "%d", i % 3);
        note(t, p);
    }
    cstack_order order[] = {{"price", 1}, {"title", 0}};
    const char *sel[] = {"title"};
    cstack_query q = {.order_by = order, .n_order = 2, .take = 3, .skip = 1, .select = sel,
                      .n_select = 1};
    cstack_rows *rows = NULL;
    cr_assert_eq(cstack_find_many(db, "Note", &q, &rows), 0, "%s", cstack_errmsg(db));
    cr_assert_eq(cstack_rows_count(rows), 3);
    char t[32];
    const char *want[] = {"n05", "n08", "n01"};
    for (size_t i = 0; i < 3; i++) {
        const cstack_row *r = cstack_rows_get(rows, i);
        cr_expect_eq(cstack_row_size(r), 1, "projection keeps one field");
        text_of(r, "title", t, sizeof t);
        cr_expect_str_eq(t, want[i]);
    }
    cstack_rows_free(rows);
    /* Cursor: continue after n08 in the same order; the pages tile the set. */
    cstack_row *c = NULL;
    cstack_query fq = {.where = NULL};
    cstack_filter *byt = cstack_filter_cmp("title", CSTACK_OP_EQ, 0, T("n08"));
    fq.where = byt;
    cr_assert_eq(cstack_find_first(db, "Note", &fq, &c), 0);
    cstack_filter_free(byt);
    char id[40];
    text_of(c, "id", id, sizeof id);
    cstack_row_free(c);
    cstack_query cq = {.order_by = order, .n_order = 2, .take = 4,
                       .cursor = *DATA(FV("id", T(id)))};
    cr_assert_eq(cstack_find_many(db, "Note", &cq, &rows), 0, "%s", cstack_errmsg(db));
    const char *want2[] = {"n01", "n04", "n07", "n00"};
    cr_assert_eq(cstack_rows_count(rows), 4);
    for (size_t i = 0; i < 4; i++) {
        text_of(cstack_rows_get(rows, i), "title", t, sizeof t);
        cr_expect_str_eq(t, want2[i]);
    }
    cstack_rows_free(rows);
    cq.cursor = *DATA(FV("id", T("00000000-0000-4000-8000-000000000000")));
    cr_expect_eq(cstack_find_many(db, "Note", &cq, &rows), CSTACK_ENOTFOUND);
}

Test(store, relation_filters)
{
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "Account", DATA(FV("email", T("b@x.io"))), &r), 0);
    char other[40];
    text_of(r, "id", other, sizeof other);
    cstack_row_free(r);
    cr_assert_eq(cstack_create(db, "Account", DATA(FV("email", T("empty@x.io"))), NULL), 0);
    note("a1", "5");
    note("a2", "50");
    cr_assert_eq(cstack_create(db, "Note",
                               DATA(FV("title", T("b1")), FV("ownerId", T(other)),
                                    FV("price", T("7"))),
                               NULL),
                 0);
    char out[256];
    cstack_order by_title = {"title", 0};
    titles(cstack_filter_rel("owner", CSTACK_REL_IS,
                             cstack_filter_cmp("email", CSTACK_OP_EQ, 0, T("b@x.io"))),
           &by_title, 1, out, sizeof out);
    cr_expect_str_eq(out, "b1");
    titles(cstack_filter_rel("owner", CSTACK_REL_IS_NOT,
                             cstack_filter_cmp("email", CSTACK_OP_EQ, 0, T("b@x.io"))),
           &by_title, 1, out, sizeof out);
    cr_expect_str_eq(out, "a1,a2");
    /* to-many on Account */
    struct {
        cstack_relop op;
        const char *want;
    } cases[] = {{CSTACK_REL_SOME, "1"}, {CSTACK_REL_EVERY, "1"}, {CSTACK_REL_NONE, "2"}};
    for (size_t i = 0; i < 3; i++) {
        cstack_filter *sub = cstack_filter_cmp("price", CSTACK_OP_GT, 0, T("10"));
        int64_t n = count("Account", cstack_filter_rel("notes", cases[i].op, sub));
        char got[8];
        snprintf(got, sizeof got, "%lld", (long long)n);
        cr_expect_str_eq(got, cases[i].want, "relop %d", cases[i].op);
    }
    /* some with no predicate: accounts having notes */
    cr_expect_eq(count("Account", cstack_filter_rel("notes", CSTACK_REL_SOME, NULL)), 2);
    cstack_filter *wrong = cstack_filter_rel("owner", CSTACK_REL_SOME, NULL);
    int64_t n = 0;
    cr_expect_eq(cstack_count(db, "Note", wrong, &n), CSTACK_EINVAL, "some on a to-one relation");
    cr_expect(strstr(cstack_errmsg(db), "is or isNot"), "%s", cstack_errmsg(db));
    cstack_filter_free(wrong);
}

Test(store, count_and_aggregate)
{
    note("a", "0.10");
    note("b", "0.20");
    note("c", NULL);
    cstack_update(db, "Note", DATA(FV("ownerId", T(account)), FV("title", T("a"))),
                  DATA(FV("views", cstack_v_int(3)), FV("score", cstack_v_float(1.5))), NULL);
    cstack_update(db, "Note", DATA(FV("ownerId", T(account)), FV("title", T("b"))),
                  DATA(FV("views", cstack_v_int(4)), FV("score", cstack_v_float(2.5))), NULL);
    const char *sum[] = {"price", "views"}, *avg[] = {"score"}, *mn[] = {"price"},
               *mx[] = {"title"};
    cstack_aggregate_spec spec = {.count = 1, .sum = sum, .n_sum = 2, .avg = avg, .n_avg = 1,
                                  .min = mn, .n_min = 1, .max = mx, .n_max = 1};
    cstack_row *r = NULL;
    cr_assert_eq(cstack_aggregate(db, "Note", &spec, &r), 0, "%s", cstack_errmsg(db));
    char *json = cstack_row_json(r);
    cr_expect_str_eq(json, "{\"_count\":3,\"_sum.price\":\"0.30\",\"_sum.views\":7,"
                           "\"_avg.score\":2,\"_min.price\":\"0.10\",\"_max.title\":\"c\"}");
    cstack_free(json);
    cstack_row_free(r);
    const char *bad[] = {"title"};
    cstack_aggregate_spec badspec = {.sum = bad, .n_sum = 1};
    cr_expect_eq(cstack_aggregate(db, "Note", &badspec, &r), CSTACK_EINVAL);
}

Test(store, update_is_partial_and_touches_updated_at)
{
    cstack_row *r = NULL, *u = NULL;
    cr_assert_eq(cstack_create(db, "Note",
                               DATA(FV("title", T("t")), FV("body", T("keep")),
                                    FV("ownerId", T(account))),
                               &r),
                 0);
    char id[40], before[40], after[40], body[40];
    text_of(r, "id", id, sizeof id);
    text_of(r, "updatedAt", before, sizeof before);
    usleep(2000);
    cr_assert_eq(cstack_update(db, "Note", DATA(FV("id", T(id))), DATA(FV("title", T("t2"))), &u),
                 0, "%s", cstack_errmsg(db));
    text_of(u, "updatedAt", after, sizeof after);
    text_of(u, "body", body, sizeof body);
    cr_expect_str_eq(body, "keep");
    cr_expect(strcmp(after, before) > 0, "%s > %s", after, before);
    cstack_row_free(r);
    cstack_row_free(u);
    int64_t n = 0;
    cstack_filter *f = cstack_filter_cmp("title", CSTACK_OP_STARTS_WITH, 0, T("t"));
    cr_expect_eq(cstack_update_many(db, "Note", f, DATA(FV("pinned", cstack_v_bool(1))), &n), 0);
    cr_expect_eq(n, 1);
    cstack_filter_free(f);
    cr_expect_eq(count("Note", cstack_filter_cmp("pinned", CSTACK_OP_EQ, 0, cstack_v_bool(1))), 1);
}

Test(store, upsert_creates_then_updates)
{
    cstack_row *r = NULL;
    cstack_data *where = DATA(FV("ownerId", T(account)), FV("title", T("u")));
    cr_assert_eq(cstack_upsert(db, "Note", where, DATA(FV("body", T("new"))),
                               DATA(FV("body", T("updated"))), &r),
                 0, "%s", cstack_errmsg(db));
    char body[32];
    text_of(r, "body", body, sizeof body);
    cr_expect_str_eq(body, "new");
    cstack_row_free(r);
    cr_assert_eq(cstack_upsert(db, "Note", where, DATA(FV("body", T("new"))),
                               DATA(FV("body", T("updated"))), &r),
                 0);
    text_of(r, "body", body, sizeof body);
    cr_expect_str_eq(body, "updated");
    cstack_row_free(r);
    cr_expect_eq(count("Note", NULL), 1);
}

static int raw_count(sqlite3 *conn, void *ctx)
{
    sqlite3_stmt *st;
    sqlite3_prepare_v2(conn, (const char *)((void **)ctx)[0], -1, &st, NULL);
    int rc = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    *(int *)((void **)ctx)[1] = rc;
    return 0;
}

static int raw(const char *sql)
{
    int n = -1;
    void *ctx[2] = {(void *)sql, &n};
    cstack_with_sqlite(db, raw_count, ctx);
    return n;
}

Test(store, soft_delete_hides_rows_everywhere)
{
    note("gone", "5");
    note("kept", "7");
    cstack_row *r = NULL;
    cr_assert_eq(cstack_delete(db, "Note", DATA(FV("ownerId", T(account)), FV("title", T("gone"))),
                               &r),
                 0, "%s", cstack_errmsg(db));
    char del[40];
    text_of(r, "deletedAt", del, sizeof del);
    cr_expect_neq(strcmp(del, "(null)"), 0);
    cstack_row_free(r);
    cr_expect_eq(count("Note", NULL), 1);
    cr_expect_eq(raw("SELECT count(*) FROM \"Note\""), 2, "the row stays in the table");
    cr_assert_eq(cstack_find_unique(db, "Note",
                                    DATA(FV("ownerId", T(account)), FV("title", T("gone"))), NULL,
                                    0, &r),
                 0);
    cr_expect_null(r);
    const char *sum[] = {"price"};
    cstack_aggregate_spec spec = {.sum = sum, .n_sum = 1};
    cr_assert_eq(cstack_aggregate(db, "Note", &spec, &r), 0);
    char s[16];
    text_of(r, "_sum.price", s, sizeof s);
    cr_expect_str_eq(s, "7");
    cstack_row_free(r);
    cr_expect_eq(count("Account", cstack_filter_rel(
                                      "notes", CSTACK_REL_SOME,
                                      cstack_filter_cmp("title", CSTACK_OP_EQ, 0, T("gone")))),
                 0);
    cr_expect_eq(cstack_delete(db, "Note", DATA(FV("ownerId", T(account)), FV("title", T("gone"))),
                               NULL),
                 CSTACK_ENOTFOUND);
    int64_t n = 0;
    cr_expect_eq(cstack_delete_many(db, "Note", NULL, &n), 0);
    cr_expect_eq(n, 1);
    cr_expect_eq(count("Note", NULL), 0);
}

Test(store, audit_journal_records_every_write)
{
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "Note", DATA(FV("title", T("a")), FV("ownerId", T(account))),
                               &r),
                 0);
    char id[40];
    text_of(r, "id", id, sizeof id);
    cstack_row_free(r);
    cstack_update(db, "Note", DATA(FV("id", T(id))), DATA(FV("title", T("b"))), NULL);
    cstack_delete(db, "Note", DATA(FV("id", T(id))), NULL);
    cr_expect_eq(raw("SELECT count(*) FROM _cstack_audit WHERE model = 'Note'"), 3);
    cr_expect_eq(raw("SELECT count(*) FROM _cstack_audit WHERE op = 'update' AND "
                     "json_extract(before, '$.title') = 'a' AND "
                     "json_extract(after, '$.title') = 'b'"),
                 1);
    cr_expect_eq(raw("SELECT count(*) FROM _cstack_audit WHERE op = 'create' AND before IS NULL"),
                 1);
    /* A failed write journals nothing. */
    cstack_create(db, "Note", DATA(FV("title", T("x")), FV("ownerId", T("bad"))), NULL);
    cr_expect_eq(raw("SELECT count(*) FROM _cstack_audit"), 3);
}

typedef struct seen {
    int n;
    char last[64];
} seen;

static void on_event(const cstack_event *ev, void *ctx)
{
    seen *s = ctx;
    s->n++;
    snprintf(s->last, sizeof s->last, "%s", ev->name);
}

static int keep_first(const cstack_outbox_entry *e, void *ctx)
{
    int *n = ctx;
    return (*n)++ >= 2;
}

Test(store, events_after_commit_never_after_rollback)
{
    seen all = {0}, created = {0};
    uint64_t id1, id2;
    cr_assert_eq(cstack_subscribe(db, NULL, on_event, &all, &id1), 0);
    cr_assert_eq(cstack_subscribe(db, "Note.created", on_event, &created, &id2), 0);
    note("e1", NULL);
    cr_expect_eq(all.n, 1);
    cr_expect_str_eq(all.last, "Note.created");
    cr_assert_eq(cstack_begin(db), 0);
    note("e2", NULL);
    cr_expect_eq(all.n, 1, "nothing before commit");
    cr_assert_eq(cstack_rollback(db), 0);
    cr_expect_eq(all.n, 1, "nothing for a rollback");
    cr_assert_eq(cstack_begin(db), 0);
    note("e3", NULL);
    cstack_update_many(db, "Note", NULL, DATA(FV("body", T("b"))), NULL);
    cr_assert_eq(cstack_commit(db), 0);
    cr_expect_eq(all.n, 4, "created + 2 updated");
    cr_expect_eq(created.n, 2);
    cr_expect_eq(cstack_unsubscribe(db, id1), 0);
    cr_expect_eq(cstack_unsubscribe(db, id1), CSTACK_ENOTFOUND);
    note("e4", NULL);
    cr_expect_eq(all.n, 4);
    cr_expect_eq(created.n, 3);
    /* The outbox holds the committed events; draining stops when asked. */
    cr_expect_eq(raw("SELECT count(*) FROM _cstack_outbox"), 5);
    int calls = 0;
    size_t drained = 0;
    cr_assert_eq(cstack_outbox_drain(db, 100, keep_first, &calls, &drained), 0);
    cr_expect_eq(drained, 2);
    cr_expect_eq(raw("SELECT count(*) FROM _cstack_outbox"), 3);
}

Test(store, transactions_are_atomic_and_nest)
{
    cr_assert_eq(cstack_begin(db), 0);
    note("t1", NULL);
    cr_assert_eq(cstack_begin(db), 0);
    note("t2", NULL);
    cr_assert_eq(cstack_rollback(db), 0);
    note("t3", NULL);
    cr_assert_eq(cstack_commit(db), 0);
    char out[64];
    cstack_order by_title = {"title", 0};
    titles(NULL, &by_title, 1, out, sizeof out);
    cr_expect_str_eq(out, "t1,t3");
    cr_expect_eq(cstack_commit(db), CSTACK_EMISUSE);
    /* A failing create_many writes none of its rows. */
    cstack_data rows[3] = {*DATA(FV("title", T("m1")), FV("ownerId", T(account))),
                           *DATA(FV("title", T("m2")), FV("ownerId", T(account))),
                           *DATA(FV("title", T("m1")), FV("ownerId", T(account)))};
    int64_t n = -1;
    cr_expect_eq(cstack_create_many(db, "Note", rows, 3, &n), CSTACK_EUNIQUE);
    cr_expect(strstr(cstack_errmsg(db), "row 2"), "%s", cstack_errmsg(db));
    cr_expect_eq(count("Note", NULL), 2);
    cr_expect_eq(cstack_create_many(db, "Note", rows, 2, &n), 0);
    cr_expect_eq(n, 2);
}

Test(store, autoincrement_and_composite_keys)
{
    cstack_row *r = NULL;
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(cstack_create(db, "Counter", DATA(FV("label", T("c"))), &r), 0, "%s",
                     cstack_errmsg(db));
        cstack_value v;
        cstack_row_get(r, "id", &v);
        cr_expect_eq(v.type, CSTACK_INT);
        cr_expect_eq(v.u.i, i);
        cstack_row_free(r);
    }
    cr_expect_eq(cstack_delete(db, "Counter", DATA(FV("id", cstack_v_int(3))), NULL), 0);
    cr_assert_eq(cstack_create(db, "Counter", DATA(FV("label", T("d"))), &r), 0);
    cstack_value v;
    cstack_row_get(r, "id", &v);
    cr_expect_eq(v.u.i, 4, "ids are not reused");
    cstack_row_free(r);
    cr_assert_eq(cstack_create(db, "Pair", DATA(FV("a", cstack_v_int(1)), FV("b", cstack_v_int(2))),
                               NULL),
                 0);
    cr_expect_eq(cstack_create(db, "Pair", DATA(FV("a", cstack_v_int(1)), FV("b", cstack_v_int(2))),
                               NULL),
                 CSTACK_EUNIQUE);
    cr_assert_eq(cstack_update(db, "Pair", DATA(FV("a", cstack_v_int(1)), FV("b", cstack_v_int(2))),
                               DATA(FV("v", T("x"))), &r),
                 0, "%s", cstack_errmsg(db));
    cstack_row_free(r);
    cr_expect_eq(cstack_find_unique(db, "Pair", DATA(FV("a", cstack_v_int(1))), NULL, 0, &r),
                 CSTACK_EINVAL, "a partial key is not unique");
}

Test(store, cascade_delete_follows_foreign_keys)
{
    note("child", NULL);
    cr_assert_eq(cstack_delete(db, "Account", DATA(FV("id", T(account))), NULL), 0, "%s",
                 cstack_errmsg(db));
    cr_expect_eq(raw("SELECT count(*) FROM \"Note\""), 0);
}
