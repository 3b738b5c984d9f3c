/*
 * typed_e2e.c -- the generated typed API of tests/codegen/typed.cstack used
 * end to end on an in-memory database: create / find / update / upsert /
 * delete through the generated delegates, every scalar type round-tripping
 * in canonical form, filter and ordering helpers, projections, lists, error
 * codes and ownership (the suite runs under ASan + LSan).
 *
 * Built by CMake through cstack_generate(), so this also proves the CMake
 * function and `cstack gen` work together.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cstack.h"
#include "support.h"
#include "typed.h"

static cstack *db;
static owner alice;

static void setup(void)
{
    char *src = t_read_file(CSTACK_TEST_DIR "/codegen/typed.cstack", NULL);
    cr_assert_not_null(src);
    db = t_open_mem(src);
    free(src);
    owner_create_input in = {.email = "alice@example.com", .name = "Alice"};
    cr_assert_eq(owner_create(db, &in, &alice), 0, "%s", cstack_errmsg(db));
}

static void teardown(void)
{
    owner_free(&alice);
    cstack_close(db);
}

TestSuite(typed, .init = setup, .fini = teardown);

/* A task with only its required fields. */
static int64_t add_task(const char *title, int64_t points)
{
    task_create_input in = {
        .title = title, .ownerId = alice.id, .has_points = true, .points = points};
    task t;
    cr_assert_eq(task_create(db, &in, &t), 0, "%s", cstack_errmsg(db));
    int64_t id = t.id;
    task_free(&t);
    return id;
}

Test(typed, create_fills_defaults_and_returns_the_stored_row)
{
    cr_expect_eq(strlen(alice.id), 36);
    cr_expect_str_eq(alice.email, "alice@example.com");
    cr_expect_not_null(alice.row);

    task_create_input in = {.title = "first", .ownerId = alice.id};
    task t;
    cr_assert_eq(task_create(db, &in, &t), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(t.id, 1, "autoincrement starts at 1");
    cr_expect_eq(t.priority, PRIORITY_MEDIUM);
    cr_expect_not(t.has_level);
    cr_expect_not(t.done);
    cr_expect_eq(t.points, 0);
    cr_expect_null(t.body);
    cr_expect_null(t.price);
    cr_expect_null(t.blob);
    cr_expect_eq(strlen(t.createdAt), 27);
    cr_expect_eq(t.createdAt[26], 'Z');
    cr_expect_str_eq(t.updatedAt, t.createdAt);
    cr_expect_str_eq(t.ownerId, alice.id);
    task_free(&t);
    cr_expect_null(t.row, "task_free zeroes the struct");
    task_free(&t); /* and a zeroed struct frees nothing */
}

Test(typed, every_scalar_round_trips_in_canonical_form)
{
    static const unsigned char blob[] = {0, 1, 2, 0xff, 0};
    char upper_id[37];
    for (size_t i = 0; i < 37; i++)
        upper_id[i] =
            (char)(alice.id[i] >= 'a' && alice.id[i] <= 'f' ? alice.id[i] - 32 : alice.id[i]);
    task_create_input in = {
        .title = "all types",
        .body = "h\xc3\xa9llo",
        .has_priority = true,
        .priority = PRIORITY_HIGH,
        .has_level = true,
        .level = PRIORITY_LOW,
        .has_done = true,
        .done = true,
        .has_points = true,
        .points = INT64_MIN,
        .has_estimate = true,
        .estimate = 1.5,
        .price = "01.10",
        .due = "2026-11-26T10:40:21+02:00",
        .tags = "{ \"a\" : [1, 2] }",
        .blob = blob,
        .blob_len = sizeof blob,
        .ownerId = upper_id,
    };
    task t;
    cr_assert_eq(task_create(db, &in, &t), 0, "%s", cstack_errmsg(db));
    task back;
    bool found = false;
    cr_assert_eq(task_find_unique_by_id(db, t.id, &back, &found), 0);
    cr_assert(found);
    cr_expect_str_eq(back.body, "h\xc3\xa9llo");
    cr_expect_eq(back.priority, PRIORITY_HIGH);
    cr_expect(back.has_level && back.level == PRIORITY_LOW);
    cr_expect(back.done);
    cr_expect_eq(back.points, INT64_MIN);
    cr_expect(back.has_estimate && back.estimate == 1.5);
    cr_expect_str_eq(back.price, "1.10", "Decimal keeps its scale, drops the leading zero");
    cr_expect_str_eq(back.due, "2026-11-26T08:40:21.000000Z", "DateTime is UTC, 6 digits");
    cr_expect_str_eq(back.tags, "{\"a\":[1,2]}", "Json is compact");
    cr_expect_eq(back.blob_len, sizeof blob);
    cr_expect_eq(memcmp(back.blob, blob, sizeof blob), 0);
    cr_expect_str_eq(back.ownerId, alice.id, "Uuid is lowercase");
    task_free(&back);
    task_free(&t);
}

Test(typed, find_unique_by_every_key)
{
    int64_t id = add_task("keyed", 3);
    task t;
    bool found = true;
    cr_assert_eq(task_find_unique_by_ownerId_title(db, alice.id, "keyed", &t, &found), 0);
    cr_expect(found);
    cr_expect_eq(t.id, id);
    task_free(&t);

    cr_assert_eq(task_find_unique_by_id(db, 999, &t, &found), 0);
    cr_expect_not(found);
    cr_expect_null(t.row);
    cr_expect_eq(task_find_unique_by_id(db, 999, &t, NULL), CSTACK_ENOTFOUND);
    cr_expect_eq(task_find_unique_by_id(db, id, NULL, &found), 0, "out may be NULL");
    cr_expect(found);

    owner o;
    cr_assert_eq(owner_find_unique_by_email(db, "alice@example.com", &o, NULL), 0);
    cr_expect_str_eq(o.id, alice.id);
    owner_free(&o);
}

Test(typed, find_many_with_filters_orderings_and_pages)
{
    add_task("alpha", 5);
    add_task("Beta", 10);
    add_task("gamma", 20);
    add_task("delta", 1);
    cstack_filter *where = cstack_filter_and2(task_points_gte(5), task_title_contains_ci("A"));
    cstack_order order = task_points_desc();
    cstack_query q = {.where = where, .order_by = &order, .n_order = 1};
    task_list list;
    cr_assert_eq(task_find_many(db, &q, &list), 0, "%s", cstack_errmsg(db));
    cr_assert_eq(list.count, 3);
    cr_expect_str_eq(list.items[0].title, "gamma");
    cr_expect_str_eq(list.items[1].title, "Beta");
    cr_expect_str_eq(list.items[2].title, "alpha");
    cr_expect_null(list.items[0].row, "items own nothing");
    task_free(&list.items[0]); /* a harmless no-op */
    task_list_free(&list);
    cr_expect_null(list.items);
    task_list_free(&list);

    q.take = 2;
    q.skip = 1;
    cr_assert_eq(task_find_many(db, &q, &list), 0);
    cr_expect_eq(list.count, 2);
    cr_expect_str_eq(list.items[0].title, "Beta");
    task_list_free(&list);
    cstack_filter_free(where);

    int64_t n = 0;
    int64_t some[] = {1, 20};
    where = task_points_in(some, 2);
    cr_assert_eq(task_count(db, where, &n), 0);
    cr_expect_eq(n, 2);
    cstack_filter_free(where);

    task first;
    bool found = false;
    cstack_order by_title = task_title_asc();
    cstack_query fq = {.order_by = &by_title, .n_order = 1};
    cr_assert_eq(task_find_first(db, &fq, &first, &found), 0);
    cr_expect(found);
    cr_expect_str_eq(first.title, "Beta", "binary order: uppercase first");
    task_free(&first);
}

Test(typed, projections_decode_by_name)
{
    add_task("projected", 7);
    const char *const select[] = {"points", "title"};
    cstack_query q = {.select = select, .n_select = 2};
    task_list list;
    cr_assert_eq(task_find_many(db, &q, &list), 0, "%s", cstack_errmsg(db));
    cr_assert_eq(list.count, 1);
    cr_expect_str_eq(list.items[0].title, "projected");
    cr_expect_eq(list.items[0].points, 7);
    cr_expect_null(list.items[0].ownerId, "not selected");
    cr_expect_eq(list.items[0].id, 0, "not selected");
    task_list_free(&list);
}

Test(typed, relation_and_null_helpers)
{
    owner_create_input bob_in = {.email = "bob@example.com"};
    owner bob;
    cr_assert_eq(owner_create(db, &bob_in, &bob), 0);
    cr_expect_null(bob.name);
    int64_t id = add_task("mine", 1);
    task_update_input done = {.set_done = true, .done = true};
    cr_assert_eq(task_update_by_id(db, id, &done, NULL), 0);

    int64_t n = 0;
    cstack_filter *f = owner_tasks_some(task_done_is_true());
    cr_assert_eq(owner_count(db, f, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 1);
    cstack_filter_free(f);
    f = owner_tasks_none(NULL);
    cr_assert_eq(owner_count(db, f, &n), 0);
    cr_expect_eq(n, 1, "bob has no task");
    cstack_filter_free(f);
    f = task_owner_is(owner_email_ends_with("@example.com"));
    cr_assert_eq(task_count(db, f, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 1);
    cstack_filter_free(f);
    f = owner_name_is_null();
    cr_assert_eq(owner_count(db, f, &n), 0);
    cr_expect_eq(n, 1);
    cstack_filter_free(f);
    f = owner_name_eq(NULL);
    cr_assert_eq(owner_count(db, f, &n), 0);
    cr_expect_eq(n, 1, "eq(NULL) matches null");
    cstack_filter_free(f);
    owner_free(&bob);
}

Test(typed, updates_are_partial_and_can_write_null)
{
    task_create_input in = {.title = "partial",
                            .body = "text",
                            .ownerId = alice.id,
                            .has_level = true,
                            .level = PRIORITY_HIGH,
                            .price = "2.50"};
    task t;
    cr_assert_eq(task_create(db, &in, &t), 0);
    task_update_input up = {.set_points = true,
                            .points = 42,
                            .set_body = true,
                            .body = NULL,
                            .set_level = true,
                            .has_level = false};
    task after;
    cr_assert_eq(task_update_by_id(db, t.id, &up, &after), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(after.points, 42);
    cr_expect_null(after.body, "set with NULL writes null");
    cr_expect_not(after.has_level, "set with has_ false writes null");
    cr_expect_str_eq(after.title, "partial", "unset fields keep their value");
    cr_expect_str_eq(after.price, "2.50");
    cr_expect_str_geq(after.updatedAt, t.updatedAt);
    task_free(&after);

    task_update_input none = {0};
    cr_assert_eq(task_update_by_ownerId_title(db, alice.id, "partial", &none, &after), 0);
    cr_expect_eq(after.points, 42);
    task_free(&after);
    cr_expect_eq(task_update_by_id(db, 12345, &up, &after), CSTACK_ENOTFOUND);
    cr_expect_null(after.row);

    add_task("other", 1);
    int64_t n = 0;
    task_update_input bump = {.set_priority = true, .priority = PRIORITY_LOW};
    cr_assert_eq(task_update_many(db, NULL, &bump, &n), 0);
    cr_expect_eq(n, 2);
    task_free(&t);
}

Test(typed, upsert_creates_then_updates)
{
    task_create_input create = {.title = "upserted", .ownerId = alice.id};
    task_update_input update = {.set_points = true, .points = 9};
    task t;
    cr_assert_eq(task_upsert_by_ownerId_title(db, alice.id, "upserted", &create, &update, &t), 0,
                 "%s", cstack_errmsg(db));
    cr_expect_eq(t.points, 0, "created");
    int64_t id = t.id;
    task_free(&t);
    cr_assert_eq(task_upsert_by_ownerId_title(db, alice.id, "upserted", &create, &update, &t), 0);
    cr_expect_eq(t.points, 9, "updated");
    cr_expect_eq(t.id, id);
    task_free(&t);
}

Test(typed, delete_is_soft_and_returns_the_row)
{
    int64_t id = add_task("doomed", 1);
    add_task("kept", 1);
    task gone;
    cr_assert_eq(task_delete_by_id(db, id, &gone), 0, "%s", cstack_errmsg(db));
    cr_expect_str_eq(gone.title, "doomed");
    cr_expect_not_null(gone.deletedAt, "soft delete stamps deletedAt");
    task_free(&gone);
    bool found = true;
    cr_assert_eq(task_find_unique_by_id(db, id, NULL, &found), 0);
    cr_expect_not(found, "reads skip soft-deleted rows");
    cr_expect_eq(task_delete_by_id(db, id, NULL), CSTACK_ENOTFOUND);
    int64_t n = 0;
    cr_assert_eq(task_delete_many(db, NULL, &n), 0);
    cr_expect_eq(n, 1);
    cr_assert_eq(task_count(db, NULL, &n), 0);
    cr_expect_eq(n, 0);
}

Test(typed, composite_primary_key)
{
    pair_create_input in = {.a = 1, .b = "x", .has_v = true, .v = 5};
    cr_assert_eq(pair_create(db, &in, NULL), 0, "%s", cstack_errmsg(db));
    pair p;
    bool found = false;
    cr_assert_eq(pair_find_unique_by_a_b(db, 1, "x", &p, &found), 0);
    cr_expect(found && p.has_v && p.v == 5);
    pair_free(&p);
    pair_update_input up = {.set_v = true, .has_v = false};
    cr_assert_eq(pair_update_by_a_b(db, 1, "x", &up, &p), 0);
    cr_expect_not(p.has_v);
    pair_free(&p);
    cr_assert_eq(pair_delete_by_a_b(db, 1, "x", NULL), 0);
    cr_expect_eq(pair_find_unique_by_a_b(db, 1, "x", NULL, NULL), CSTACK_ENOTFOUND);
}

Test(typed, create_many_is_atomic)
{
    task_create_input rows[3] = {
        {.title = "m1", .ownerId = alice.id},
        {.title = "m2", .ownerId = alice.id},
        {.title = "m1", .ownerId = alice.id}, /* violates @@unique([ownerId, title]) */
    };
    int64_t n = -1;
    cr_expect_eq(task_create_many(db, rows, 3, &n), CSTACK_EUNIQUE);
    cr_expect_eq(n, 0);
    cr_assert_eq(task_count(db, NULL, &n), 0);
    cr_expect_eq(n, 0, "nothing was written");
    cr_assert_eq(task_create_many(db, rows, 2, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 2);
    cr_expect_eq(task_create_many(db, NULL, 0, &n), 0);
}

Test(typed, errors_leave_outputs_empty)
{
    task t;
    task_create_input missing = {.ownerId = alice.id};
    cr_expect_eq(task_create(db, &missing, &t), CSTACK_EREQUIRED);
    cr_expect_null(t.row);
    cr_expect(strstr(cstack_errmsg(db), "title") != NULL, "%s", cstack_errmsg(db));

    task_create_input bad_decimal = {.title = "d", .ownerId = alice.id, .price = "1e5"};
    cr_expect_eq(task_create(db, &bad_decimal, &t), CSTACK_EVALIDATION);

    task_create_input bad_enum = {
        .title = "e", .ownerId = alice.id, .has_priority = true, .priority = (priority_t)42};
    cr_expect_eq(task_create(db, &bad_enum, &t), CSTACK_EVALIDATION);
    cr_expect(strstr(cstack_errmsg(db), "priority") != NULL, "%s", cstack_errmsg(db));

    task_create_input orphan = {.title = "o", .ownerId = "00000000-0000-4000-8000-000000000000"};
    cr_expect_eq(task_create(db, &orphan, &t), CSTACK_EFOREIGNKEY);
    cr_expect_eq(task_create(db, NULL, &t), CSTACK_EMISUSE);
    cr_expect_eq(task_find_many(db, NULL, NULL), CSTACK_EMISUSE);
}

Test(typed, aggregate_sums_decimals_exactly)
{
    task_create_input a = {.title = "a", .ownerId = alice.id, .price = "0.10"};
    task_create_input b = {.title = "b", .ownerId = alice.id, .price = "0.20"};
    cr_assert_eq(task_create(db, &a, NULL), 0);
    cr_assert_eq(task_create(db, &b, NULL), 0);
    const char *const sum[] = {"price"};
    cstack_aggregate_spec spec = {.count = 1, .sum = sum, .n_sum = 1};
    cstack_row *row = NULL;
    cr_assert_eq(task_aggregate(db, &spec, &row), 0, "%s", cstack_errmsg(db));
    cstack_value v;
    cr_assert_eq(cstack_row_get(row, "_sum.price", &v), 0);
    cr_expect_eq(v.type, CSTACK_TEXT);
    cr_expect_eq(v.u.s.n, 4);
    cr_expect_eq(memcmp(v.u.s.p, "0.30", 4), 0);
    cstack_row_free(row);
}

Test(typed, enum_names_and_descriptors)
{
    cr_expect_str_eq(priority_name(PRIORITY_HIGH), "HIGH");
    cr_expect_null(priority_name((priority_t)7));
    priority_t p = PRIORITY_LOW;
    cr_expect(priority_from_name("MEDIUM", &p));
    cr_expect_eq(p, PRIORITY_MEDIUM);
    cr_expect_not(priority_from_name("medium", &p));
    cr_expect_not(priority_from_name(NULL, &p));
    cr_expect_str_eq(task_model, "Task");
    cr_expect_eq(TASK_FIELD_COUNT, 16);
    cr_expect_str_eq(task_fields[0], "id");
    cr_expect_str_eq(task_fields[TASK_FIELD_COUNT - 1], "ownerId");
    cstack_order o = task_createdAt_desc();
    cr_expect_str_eq(o.field, "createdAt");
    cr_expect_eq(o.desc, 1);
}
