/* test_server_push.c -- the server store's push path, below HTTP: one push
 * is one write transaction (batch lookup, merge, batch record, cursor), and
 * a retried batch is applied once. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/store_int.h"
#include "support.h"
#include "util/clock.h"

static const char *SCHEMA = "model Item {\n"
                            "  id    Int    @id\n"
                            "  title String\n"
                            "  @@allow('all', true)\n"
                            "}\n";

static const char SITE[] = "0123456789abcdef0123456789abcdef";

typedef struct fixture {
    cstack *dev;
    cs_srv_store *st;
    cs_auth user;
    int begins; /* transactions begun on the server's write connection */
} fixture;

static int count_begins(unsigned type, void *ctx, void *stmt, void *sql)
{
    (void)type;
    (void)stmt;
    if (strncmp(sql, "BEGIN", 5) == 0)
        ((fixture *)ctx)->begins++;
    return 0;
}

static void setup_schema(fixture *f, const char *schema)
{
    memset(f, 0, sizeof *f);
    f->dev = t_open_mem(schema);
    char *dir = t_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/server.db", dir);
    free(dir);
    cs_srv_err err;
    cr_assert_eq(cs_srv_store_sqlite.open(cstack_schema_of(f->dev), path, NULL, &f->st, &err), 0,
                 "%s", err.message);
    f->user = (cs_auth){.signed_in = true, .sub = "u1"};
    cr_assert_eq(cs_write_lock(f->st->db), 0);
    sqlite3_trace_v2(cs_write_conn(f->st->db)->db, SQLITE_TRACE_STMT, count_begins, f);
    cs_write_unlock(f->st->db);
}

static void setup(fixture *f)
{
    setup_schema(f, SCHEMA);
}

static void teardown(fixture *f)
{
    cr_assert_eq(cs_write_lock(f->st->db), 0);
    sqlite3_trace_v2(cs_write_conn(f->st->db)->db, 0, NULL, NULL);
    cs_write_unlock(f->st->db);
    cs_srv_store_sqlite.close(f->st);
    cstack_close(f->dev);
}

static void create(fixture *f, int id)
{
    cr_assert_eq(cstack_create(f->dev, "Item", DATA(FV("id", I(id)), FV("title", T("x"))), NULL), 0,
                 "%s", cstack_errmsg(f->dev));
}

/* Pushes everything the device has under `batch` as `user` from `site`;
 * returns the store's code. */
static int push_as(fixture *f, const cs_auth *user, const char *site, const char *batch,
                   cs_srv_push_result *res, cs_srv_err *err)
{
    void *cs = NULL;
    size_t len = 0;
    int64_t cursor = 0;
    cr_assert_eq(cstack_changes_export(f->dev, 0, &cs, &len, &cursor), 0, "%s",
                 cstack_errmsg(f->dev));
    t_restamp(cs, len, site);
    cs_srv_push req = {user, site, batch, cs, len};
    int rc = cs_srv_store_sqlite.push(f->st, &req, res, err);
    cstack_free(cs);
    return rc;
}

/* Pushes everything the device has under `batch`. */
static cs_srv_push_result push(fixture *f, const char *batch)
{
    cs_srv_push_result res;
    cs_srv_err err;
    cr_assert_eq(push_as(f, &f->user, SITE, batch, &res, &err), 0, "%s", err.message);
    return res;
}

static int64_t server_rows(fixture *f)
{
    int64_t n = -1;
    cr_assert_eq(cstack_count(f->st->db, "Item", NULL, &n), 0);
    return n;
}

Test(server_push, a_push_is_one_write_transaction_with_its_batch_record_and_cursor)
{
    fixture f;
    setup(&f);
    create(&f, 1);
    create(&f, 2);
    cs_srv_push_result r = push(&f, "b:1");
    cr_expect_not(r.duplicate);
    cr_expect_eq(r.rows, 2);
    cr_expect_gt(r.cursor, 0);
    cr_expect_eq(f.begins, 1, "one push took %d write transactions", f.begins);
    cr_expect_eq(server_rows(&f), 2);
    teardown(&f);
}

Test(server_push, a_retried_batch_is_applied_once_and_answered_in_one_transaction)
{
    fixture f;
    setup(&f);
    create(&f, 1);
    cs_srv_push_result first = push(&f, "b:1");
    int64_t version = 0;
    cr_assert_eq(cs_srv_store_sqlite.version(f.st, &version), 0);
    f.begins = 0;
    cs_srv_push_result again = push(&f, "b:1");
    cr_expect(again.duplicate);
    cr_expect_eq(again.rows, 0, "a duplicate is not merged");
    cr_expect_eq(again.cursor, first.cursor);
    cr_expect_eq(f.begins, 1);
    int64_t after = 0;
    cr_assert_eq(cs_srv_store_sqlite.version(f.st, &after), 0);
    cr_expect_eq(after, version, "a duplicate does not use a version");
    cr_expect_eq(server_rows(&f), 1);
    teardown(&f);
}

Test(server_push, a_batch_that_changes_nothing_is_recorded_in_its_one_transaction)
{
    fixture f;
    setup(&f);
    create(&f, 1);
    push(&f, "b:1");
    /* The same rows again under a new batch id: the merge wins nothing. */
    f.begins = 0;
    cs_srv_push_result r = push(&f, "b:2");
    cr_expect_not(r.duplicate);
    cr_expect_eq(r.won, 0);
    cr_expect_eq(f.begins, 1, "a push that changes nothing took %d transactions", f.begins);
    cr_expect(push(&f, "b:2").duplicate, "the batch was recorded");
    teardown(&f);
}

/* ---- refusals found before the merge -------------------------------------------- */

static const char *OWNED = "auth User { id String }\n"
                           "model Item {\n"
                           "  id      Int    @id\n"
                           "  ownerId String\n"
                           "  title   String\n"
                           "  @@allow('create', ownerId == auth().id)\n"
                           "  @@allow('read,update,delete', true)\n"
                           "}\n";

/* A signed-in user of OWNED's auth block (auth().id is `sub`). */
static cs_auth user_of(const char *sub, cstack_value *id)
{
    *id = cstack_v_text(sub);
    return (cs_auth){.signed_in = true, .sub = (char *)sub, .n = 1, .values = id};
}

static void create_owned(fixture *f, int id, const char *owner, const char *title)
{
    cr_assert_eq(cstack_create(f->dev, "Item",
                               DATA(FV("id", I(id)), FV("ownerId", T(owner)), FV("title", T(title))),
                               NULL),
                 0, "%s", cstack_errmsg(f->dev));
}

Test(server_push, a_batch_with_a_new_row_its_create_rule_refuses_is_refused_before_any_write)
{
    fixture f;
    setup_schema(&f, OWNED);
    cstack_value id;
    f.user = user_of("u1", &id);
    for (int i = 1; i < 200; i++)
        create_owned(&f, i, "u1", "mine");
    create_owned(&f, 200, "intruder", "not mine");
    cs_srv_push_result res;
    cs_srv_err err;
    cr_assert_neq(push_as(&f, &f.user, SITE, "b:1", &res, &err), 0);
    cr_expect_eq(err.kind, CS_SRV_FORBIDDEN, "%s", err.message);
    cr_expect(strstr(err.message, "Item: create of {\"id\":200} is not allowed for user 'u1'"),
              "%s", err.message);
    cr_expect_eq(f.begins, 0, "the refusal took %d write transactions", f.begins);
    /* Refused the same way while another program holds the write lock: the
     * answer does not wait for it (the busy timeout is 5 s). */
    char path[600];
    snprintf(path, sizeof path, "%s", sqlite3_db_filename(cs_write_conn(f.st->db)->db, "main"));
    sqlite3 *other = NULL;
    cr_assert_eq(sqlite3_open(path, &other), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    int64_t t0 = cs_mono_ms();
    int rc = push_as(&f, &f.user, SITE, "b:1", &res, &err);
    int64_t took = cs_mono_ms() - t0;
    sqlite3_exec(other, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(other);
    fprintf(stderr, "refusal beside a held write lock: %lld ms\n", (long long)took);
    cr_expect_neq(rc, 0);
    cr_expect_eq(err.kind, CS_SRV_FORBIDDEN, "%s", err.message);
    cr_expect_lt(took, 2500, "the refusal waited for the write lock (%lld ms)", (long long)took);
    cr_expect_eq(server_rows(&f), 0);
    teardown(&f);
}

Test(server_push, a_row_the_server_has_is_left_to_the_merge_even_when_its_create_rule_refuses)
{
    fixture f;
    setup_schema(&f, OWNED);
    cstack_value id, bob_id;
    f.user = user_of("u1", &id);
    cs_auth bob = user_of("bob", &bob_id);
    create_owned(&f, 1, "bob", "bob's");
    cs_srv_push_result res;
    cs_srv_err err;
    cr_assert_eq(push_as(&f, &bob, "fedcba9876543210fedcba9876543210", "b:1", &res, &err), 0,
                 "%s", err.message);
    /* u1 may update bob's row (update: true), and the device sends every
     * column of it: as a create it would be refused, as what it is, an
     * update, it is accepted. */
    cr_assert_eq(cstack_update(f.dev, "Item", DATA(FV("id", I(1))), DATA(FV("title", T("edited"))),
                               NULL),
                 0, "%s", cstack_errmsg(f.dev));
    cr_expect_eq(push_as(&f, &f.user, SITE, "b:2", &res, &err), 0, "%s", err.message);
    cr_expect_eq(server_rows(&f), 1);
    teardown(&f);
}
