/* test_sync.c -- the public sync API (include/cstack.h "Sync"): changesets,
 * the merge rules of SPEC section 7, the schema handshake, the clock bound,
 * capture of raw SQL, the upload queue, conflicts with unique and foreign
 * keys, compaction, and refusal of malformed input.  Every replica is an
 * in-memory runtime unless a test needs a file (restarts). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"
#include "sync_support.h"

static const char *SCHEMA =
    "model Account {\n"
    "  id    Int     @id\n"
    "  email String  @unique\n"
    "  name  String?\n"
    "  notes Note[]\n"
    "}\n"
    "model Note {\n"
    "  id      Int     @id\n"
    "  title   String\n"
    "  body    String?\n"
    "  views   Int     @default(0)\n"
    "  ownerId Int\n"
    "  owner   Account @relation(fields: [ownerId], references: [id], onDelete: Cascade)\n"
    "}\n"
    "model Doc {\n"
    "  id        Int       @id\n"
    "  text      String\n"
    "  deletedAt DateTime?\n"
    "  @@soft_delete(deletedAt)\n"
    "}\n"
    "model Cache {\n"
    "  id Int    @id\n"
    "  v  String\n"
    "  @@local\n"
    "}\n";

#define KEY(id) DATA(FV("id", I(id)))

/* Replicas of the running test, closed by the suite's fini so a failed
 * assertion leaks nothing. */
static cstack *reps[8];
static size_t nreps;

static cstack *replica(void)
{
    cr_assert_lt(nreps, sizeof reps / sizeof reps[0]);
    cstack *db = t_open_mem(SCHEMA);
    reps[nreps++] = db;
    return db;
}

static void close_all(void)
{
    while (nreps > 0)
        cstack_close(reps[--nreps]);
}

TestSuite(sync, .fini = close_all);

static void ok(cstack *db, int rc, const char *what)
{
    cr_assert_eq(rc, CSTACK_OK, "%s: %s (%s)", what, cstack_errname(rc), cstack_errmsg(db));
}

static void account(cstack *db, int64_t id, const char *email)
{
    ok(db, cstack_create(db, "Account", DATA(FV("id", I(id)), FV("email", T(email))), NULL),
       "create Account");
}

static void note(cstack *db, int64_t id, int64_t owner, const char *title)
{
    ok(db,
       cstack_create(db, "Note",
                     DATA(FV("id", I(id)), FV("ownerId", I(owner)), FV("title", T(title))), NULL),
       "create Note");
}

/* Exports everything `src` has and applies it to `dst`. */
static cstack_apply_stats push(cstack *src, cstack *dst)
{
    cstack_apply_stats st = {0};
    cstack *bad = NULL;
    int rc = ts_sync(src, dst, 0, NULL, &st, &bad);
    cr_assert_eq(rc, CSTACK_OK, "sync: %s (%s)", cstack_errname(rc), bad ? cstack_errmsg(bad) : "");
    return st;
}

static void *export_all(cstack *db, int64_t since, size_t *len, int64_t *cursor)
{
    void *buf = NULL;
    ok(db, cstack_changes_export(db, since, &buf, len, cursor), "export");
    cr_assert(buf != NULL || *len == 0);
    return buf;
}

static cstack_apply_stats apply(cstack *db, const void *cs, size_t len)
{
    cstack_apply_stats st = {0};
    ok(db, cstack_changes_apply(db, cs, len, &st), "apply");
    return st;
}

/* Dumps both and requires them equal (and returns nothing: the dumps are
 * freed here). */
static void same(cstack *a, cstack *b)
{
    char *da = ts_dump(a), *db_ = ts_dump(b);
    cr_assert_not_null(da, "dump: %s", cstack_errmsg(a));
    cr_assert_not_null(db_, "dump: %s", cstack_errmsg(b));
    int eq = strcmp(da, db_) == 0;
    if (!eq)
        cr_log_error("replicas differ:\n--- a\n%s--- b\n%s", da, db_);
    free(da);
    free(db_);
    cr_assert(eq, "replicas must hold the same rows");
}

/* The text of `field` of row `id` of `model`, or "(absent)" / "(null)". */
static void field_of(cstack *db, const char *model, int64_t id, const char *field, char *out,
                     size_t n)
{
    cstack_row *r = NULL;
    ok(db, cstack_find_unique(db, model, KEY(id), NULL, 0, &r), "find_unique");
    if (!r) {
        snprintf(out, n, "(absent)");
        return;
    }
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, field, &v), 0);
    if (v.type == CSTACK_NULL)
        snprintf(out, n, "(null)");
    else if (v.type == CSTACK_INT)
        snprintf(out, n, "%lld", (long long)v.u.i);
    else
        snprintf(out, n, "%.*s", (int)v.u.s.n, v.u.s.p);
    cstack_row_free(r);
}

static int64_t count(cstack *db, const char *model)
{
    int64_t n = -1;
    ok(db, cstack_count(db, model, NULL, &n), "count");
    return n;
}

static int64_t pending(cstack *db)
{
    int64_t n = -1;
    ok(db, cstack_upload_pending(db, &n), "upload_pending");
    return n;
}

static int64_t version(cstack *db)
{
    int64_t v = -1;
    ok(db, cstack_sync_version(db, &v), "sync_version");
    return v;
}

#define EXPECT_FIELD(db, model, id, field, want)                                                   \
    do {                                                                                           \
        char got_[256];                                                                            \
        field_of((db), (model), (id), (field), got_, sizeof got_);                                 \
        cr_expect_str_eq(got_, (want), "%s %d .%s", (model), (int)(id), (field));                  \
    } while (0)

Test(sync, site_ids_are_32_hex_digits_and_distinct)
{
    cstack *a = replica(), *b = replica();
    const char *sa = cstack_sync_site_id(a), *sb = cstack_sync_site_id(b);
    cr_assert_not_null(sa);
    cr_assert_eq(strlen(sa), 32);
    cr_assert_eq(strspn(sa, "0123456789abcdef"), 32);
    cr_assert_str_neq(sa, sb);
}

Test(sync, round_trip_copies_every_synced_row)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    note(a, 10, 1, "first");
    note(a, 11, 1, "second");
    ok(a, cstack_update(a, "Note", KEY(11), DATA(FV("body", T("text"))), NULL), "update");
    cstack_apply_stats st = push(a, b);
    cr_expect_geq(st.rows, 3);
    cr_expect_gt(st.columns, 0);
    cr_expect_gt(st.won, 0);
    cr_expect_eq(st.parked, 0);
    same(a, b);
    EXPECT_FIELD(b, "Note", 11, "body", "text");
}

Test(sync, export_cursor_is_the_version_and_skips_what_was_seen)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    size_t len = 0;
    int64_t cur = -1;
    void *cs = export_all(a, 0, &len, &cur);
    cr_expect_eq(cur, version(a), "the cursor names the current version");
    apply(b, cs, len);
    cstack_free(cs);

    cs = export_all(a, cur, &len, &cur);
    cstack_apply_stats st = apply(b, cs, len);
    cstack_free(cs);
    cr_expect_eq(st.rows, 0, "nothing new since the cursor");

    note(a, 10, 1, "later");
    cs = export_all(a, cur, &len, &cur);
    st = apply(b, cs, len);
    cstack_free(cs);
    cr_expect_eq(st.rows, 1, "only the new row");
    same(a, b);
}

Test(sync, applying_twice_is_idempotent)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    note(a, 10, 1, "first");
    ok(a, cstack_delete(a, "Note", KEY(10), NULL), "delete");
    note(a, 11, 1, "second");
    size_t len = 0;
    void *cs = export_all(a, 0, &len, NULL);
    apply(b, cs, len);
    char *before = ts_dump(b);
    cstack_apply_stats st = apply(b, cs, len);
    char *after = ts_dump(b);
    cstack_free(cs);
    cr_expect_eq(st.won, 0, "a second apply wins nothing");
    cr_expect_str_eq(after, before);
    free(before);
    free(after);
    same(a, b);
}

Test(sync, either_order_converges)
{
    cstack *a = replica(), *b = replica(), *c = replica(), *d = replica();
    account(a, 1, "shared@x.io");
    push(a, b);
    /* Offline on both sides: new rows, and the same row edited twice. */
    note(a, 10, 1, "from a");
    ok(a, cstack_update(a, "Account", KEY(1), DATA(FV("name", T("A"))), NULL), "update");
    account(b, 2, "bob@x.io");
    note(b, 20, 2, "from b");
    usleep(2000);
    ok(b, cstack_update(b, "Account", KEY(1), DATA(FV("name", T("B"))), NULL), "update");

    size_t la = 0, lb = 0;
    void *ca = export_all(a, 0, &la, NULL), *cb = export_all(b, 0, &lb, NULL);
    apply(c, ca, la);
    apply(c, cb, lb);
    apply(d, cb, lb);
    apply(d, ca, la);
    apply(a, cb, lb);
    apply(b, ca, la);
    cstack_free(ca);
    cstack_free(cb);
    same(a, b);
    same(a, c);
    same(a, d);
    EXPECT_FIELD(c, "Account", 1, "name", "B");
    cr_expect_eq(count(c, "Note"), 2);
}

Test(sync, delete_wins_over_a_concurrent_update)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    note(a, 10, 1, "doomed");
    push(a, b);
    ok(a, cstack_delete(a, "Note", KEY(10), NULL), "delete");
    /* B's update comes later in time, but the delete has the longer causal
     * length, so it wins whatever the clocks say. */
    usleep(2000);
    ok(b, cstack_update(b, "Note", KEY(10), DATA(FV("title", T("edited"))), NULL), "update");
    push(a, b);
    push(b, a);
    EXPECT_FIELD(a, "Note", 10, "title", "(absent)");
    EXPECT_FIELD(b, "Note", 10, "title", "(absent)");
    same(a, b);
}

Test(sync, reinsert_wins_over_the_older_delete_everywhere)
{
    cstack *a = replica(), *b = replica(), *c = replica();
    account(a, 1, "ada@x.io");
    note(a, 10, 1, "v1");
    push(a, b);
    push(a, c);
    int64_t cur_a = version(a);
    ok(a, cstack_delete(a, "Note", KEY(10), NULL), "delete");
    size_t ldel = 0;
    void *del = export_all(a, cur_a, &ldel, NULL);
    apply(b, del, ldel);
    int64_t cur_b = version(b);
    note(b, 10, 1, "v2");
    size_t lre = 0;
    void *re = export_all(b, cur_b, &lre, NULL);
    /* C hears of the re-insert before the delete it supersedes. */
    apply(c, re, lre);
    apply(c, del, ldel);
    apply(a, re, lre);
    cstack_free(del);
    cstack_free(re);
    EXPECT_FIELD(a, "Note", 10, "title", "v2");
    EXPECT_FIELD(b, "Note", 10, "title", "v2");
    EXPECT_FIELD(c, "Note", 10, "title", "v2");
    same(a, b);
    same(a, c);
}

Test(sync, concurrent_updates_of_different_fields_both_survive)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    note(a, 10, 1, "t0");
    push(a, b);
    ok(a, cstack_update(a, "Note", KEY(10), DATA(FV("title", T("t1"))), NULL), "update");
    ok(b, cstack_update(b, "Note", KEY(10), DATA(FV("body", T("b1")), FV("views", I(7))), NULL),
       "update");
    push(a, b);
    push(b, a);
    for (int i = 0; i < 2; i++) {
        cstack *db = i ? b : a;
        EXPECT_FIELD(db, "Note", 10, "title", "t1");
        EXPECT_FIELD(db, "Note", 10, "body", "b1");
        EXPECT_FIELD(db, "Note", 10, "views", "7");
    }
    same(a, b);
}

Test(sync, same_field_the_later_clock_wins_everywhere)
{
    cstack *a = replica(), *b = replica(), *c = replica();
    account(a, 1, "ada@x.io");
    note(a, 10, 1, "t0");
    note(a, 11, 1, "u0");
    push(a, b);
    /* Note 10: A then B; note 11: B then A.  The later write wins both
     * times, so it is the clock that decides, not the replica. */
    ok(a, cstack_update(a, "Note", KEY(10), DATA(FV("title", T("a-early"))), NULL), "update");
    ok(b, cstack_update(b, "Note", KEY(11), DATA(FV("title", T("b-early"))), NULL), "update");
    usleep(5000);
    ok(b, cstack_update(b, "Note", KEY(10), DATA(FV("title", T("b-late"))), NULL), "update");
    ok(a, cstack_update(a, "Note", KEY(11), DATA(FV("title", T("a-late"))), NULL), "update");
    push(b, c);
    push(a, c);
    push(a, b);
    push(b, a);
    for (int i = 0; i < 3; i++) {
        cstack *db = i == 0 ? a : i == 1 ? b : c;
        EXPECT_FIELD(db, "Note", 10, "title", "b-late");
        EXPECT_FIELD(db, "Note", 11, "title", "a-late");
    }
    same(a, b);
    same(a, c);
}

/* The raw soft-delete column of Doc `id`, which reads through the runtime
 * hide once it is set. */
static int read_deleted_at(sqlite3 *conn, void *ctx)
{
    char *out = ctx;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(conn, "SELECT deletedAt FROM Doc WHERE id = 1", -1, &st, NULL))
        return CSTACK_ESQLITE;
    snprintf(out, 64, "(absent)");
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, 64, "%s", t ? (const char *)t : "(null)");
    }
    sqlite3_finalize(st);
    return CSTACK_OK;
}

Test(sync, soft_delete_field_syncs_like_any_other)
{
    cstack *a = replica(), *b = replica();
    ok(a, cstack_create(a, "Doc", DATA(FV("id", I(1)), FV("text", T("draft"))), NULL), "create");
    push(a, b);
    ok(a, cstack_delete(a, "Doc", KEY(1), NULL), "soft delete");
    ok(b, cstack_update(b, "Doc", KEY(1), DATA(FV("text", T("edited"))), NULL), "update");
    push(a, b);
    push(b, a);
    cr_expect_eq(count(a, "Doc"), 0);
    cr_expect_eq(count(b, "Doc"), 0);
    char da[64], db_[64];
    ok(a, cstack_with_sqlite(a, read_deleted_at, da), "read");
    ok(b, cstack_with_sqlite(b, read_deleted_at, db_), "read");
    cr_expect_neq(da[0], '(', "deletedAt set on A: %s", da);
    cr_expect_str_eq(db_, da, "the soft-delete field carries the same value");
}

Test(sync, local_models_are_neither_captured_nor_exported)
{
    cstack *a = replica(), *b = replica();
    ok(a, cstack_create(a, "Cache", DATA(FV("id", I(1)), FV("v", T("x"))), NULL), "create");
    cr_expect_eq(pending(a), 0, "a @@local write is not queued");
    push(a, b);
    cr_expect_eq(count(b, "Cache"), 0);
}

Test(sync, another_schema_is_refused_naming_both_hashes)
{
    static const char *OTHER = "model Account {\n"
                               "  id    Int    @id\n"
                               "  email String @unique\n"
                               "  extra String?\n"
                               "}\n";
    cstack *a = replica();
    cstack *o = t_open_mem(OTHER);
    reps[nreps++] = o;
    ok(o, cstack_create(o, "Account", DATA(FV("id", I(1)), FV("email", T("o@x.io"))), NULL),
       "create");
    account(a, 2, "a@x.io");
    size_t len = 0;
    void *cs = export_all(o, 0, &len, NULL);
    char *before = ts_dump(a);
    int64_t v0 = version(a);
    int rc = cstack_changes_apply(a, cs, len, NULL);
    cstack_free(cs);
    cr_assert_eq(rc, CSTACK_ESCHEMA, "got %s", cstack_errname(rc));
    const char *msg = cstack_errmsg(a);
    cr_expect_not_null(strstr(msg, cstack_schema_hash(cstack_schema_of(a))), "%s", msg);
    cr_expect_not_null(strstr(msg, cstack_schema_hash(cstack_schema_of(o))), "%s", msg);
    char *after = ts_dump(a);
    cr_expect_str_eq(after, before, "nothing applied");
    cr_expect_eq(version(a), v0);
    free(before);
    free(after);
}

static int exec_sql(sqlite3 *conn, void *ctx)
{
    char *err = NULL;
    int rc = sqlite3_exec(conn, ctx, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        cr_log_error("%s: %s", (const char *)ctx, err ? err : "?");
    sqlite3_free(err);
    return rc == SQLITE_OK ? CSTACK_OK : CSTACK_ESQLITE;
}

Test(sync, raw_sql_writes_are_captured_as_one_transaction)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    note(a, 10, 1, "t0");
    note(a, 11, 1, "gone soon");
    /* The queue holds each row's latest state, so a transaction whose every
     * change is superseded leaves it: start from an empty queue to count. */
    ok(a, cstack_upload_complete(a, version(a)), "complete");
    int64_t p0 = pending(a);
    cr_assert_eq(p0, 0);
    /* The callback runs inside a transaction of its own (include/cstack.h):
     * its statements commit together, with their capture record. */
    ok(a,
       cstack_with_sqlite(a, exec_sql,
                          "INSERT INTO Account (id, email) VALUES (2, 'raw@x.io');"
                          "UPDATE Note SET title = 'raw title' WHERE id = 10;"
                          "DELETE FROM Note WHERE id = 11;"),
       "raw sql");
    cr_expect_eq(pending(a), p0 + 1, "one raw transaction, one queued transaction");
    push(a, b);
    EXPECT_FIELD(b, "Account", 2, "email", "raw@x.io");
    EXPECT_FIELD(b, "Note", 10, "title", "raw title");
    EXPECT_FIELD(b, "Note", 11, "title", "(absent)");
    same(a, b);
}

Test(sync, apply_inside_a_transaction_is_misuse)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    size_t len = 0;
    void *cs = export_all(a, 0, &len, NULL);
    ok(b, cstack_begin(b), "begin");
    int rc = cstack_changes_apply(b, cs, len, NULL);
    cstack_rollback(b);
    cstack_free(cs);
    cr_expect_eq(rc, CSTACK_EMISUSE, "got %s", cstack_errname(rc));
    cr_expect_eq(count(b, "Account"), 0);
}

Test(sync, unique_conflict_converges_with_one_row_parked)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "same@x.io");
    account(b, 2, "same@x.io");
    cstack_apply_stats s1 = push(a, b), s2 = push(b, a);
    push(a, b);
    push(b, a);
    cr_expect_eq(count(a, "Account"), 1, "one of the two stays visible");
    cr_expect_gt(s1.parked + s2.parked, 0, "the loser is reported parked");
    same(a, b);
}

Test(sync, apply_stats_count_hidden_rows_never_a_negative_number)
{
    /* D's own row loses "e1" to A's earlier claim and is parked; C's later
     * email for row 4 then frees "e1", and D's row comes back. */
    cstack *a = replica(), *c = replica(), *d = replica();
    account(a, 4, "e1@x.io");
    usleep(2000);
    account(d, 5, "e1@x.io");
    usleep(2000);
    account(c, 4, "e2@x.io");
    cstack_apply_stats s1 = push(a, d);
    cr_expect_eq(s1.parked, 1, "D's row 5 is hidden");
    cr_expect_eq(count(d, "Account"), 1);
    cstack_apply_stats s2 = push(c, d);
    cr_expect_eq(count(d, "Account"), 2, "row 5 is visible again");
    cr_expect_geq(s2.parked, 0, "parked counts rows hidden by this merge: got %lld",
                  (long long)s2.parked);
    cr_expect_leq(s2.won, s2.columns);
}

Test(sync, child_of_a_row_deleted_elsewhere_is_hidden_everywhere)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    push(a, b);
    ok(a, cstack_delete(a, "Account", KEY(1), NULL), "delete");
    note(b, 10, 1, "orphan to be");
    push(a, b);
    push(b, a);
    push(a, b);
    cr_expect_eq(count(a, "Account"), 0);
    cr_expect_eq(count(a, "Note"), 0, "the orphan is not visible on A");
    cr_expect_eq(count(b, "Note"), 0, "the orphan is not visible on B");
    same(a, b);
}

/* A JSON string member's text, or "" when it is missing or not a string
 * (so a wrong shape fails an equality check instead of crashing). */
static const char *jstr(json_t *v)
{
    const char *s = json_string_value(v);
    return s ? s : "";
}

/* Parses the JSON of an upload transaction and checks its envelope: the
 * version matches, ops is an array of n objects. */
static json_t *tx_json(const cstack_upload_tx *tx, size_t n_ops)
{
    const char *text = cstack_upload_tx_json(tx);
    cr_assert_not_null(text);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    cr_assert_not_null(j, "upload tx JSON: %s: %s", err.text, text);
    cr_expect_eq(json_integer_value(json_object_get(j, "version")), cstack_upload_tx_version(tx),
                 "%s", text);
    json_t *ops = json_object_get(j, "ops");
    cr_assert(json_is_array(ops), "%s", text);
    cr_assert_eq(json_array_size(ops), n_ops, "%s", text);
    return j;
}

/* Op `i` of a parsed tx: its op, model and key.id must be as given. */
static json_t *tx_op(json_t *j, size_t i, const char *op, const char *model, int64_t id)
{
    json_t *o = json_array_get(json_object_get(j, "ops"), i);
    cr_assert(json_is_object(o));
    cr_expect_str_eq(jstr(json_object_get(o, "op")), op);
    cr_expect_str_eq(jstr(json_object_get(o, "model")), model);
    json_t *key = json_object_get(o, "key");
    cr_expect_eq(json_integer_value(json_object_get(key, "id")), id);
    return o;
}

/* The op of `j` for (model, id), whatever order the transaction lists its
 * ops in. */
static json_t *tx_find(json_t *j, const char *model, int64_t id)
{
    json_t *ops = json_object_get(j, "ops");
    for (size_t i = 0; i < json_array_size(ops); i++) {
        json_t *o = json_array_get(ops, i);
        const char *m = json_string_value(json_object_get(o, "model"));
        if (m && strcmp(m, model) == 0 &&
            json_integer_value(json_object_get(json_object_get(o, "key"), "id")) == id)
            return o;
    }
    cr_assert_fail("no op for %s %d", model, (int)id);
    return NULL;
}

Test(sync, upload_queue_lists_local_transactions_in_order)
{
    cstack *a = replica(), *b = replica();
    cr_expect_eq(pending(a), 0);
    cstack_upload_tx *tx = NULL;
    ok(a, cstack_upload_next(a, &tx), "upload_next");
    cr_expect_null(tx, "nothing pending yet");

    account(a, 1, "ada@x.io");
    ok(a, cstack_begin(a), "begin");
    note(a, 10, 1, "n");
    ok(a, cstack_update(a, "Account", KEY(1), DATA(FV("name", T("Ada"))), NULL), "update");
    ok(a, cstack_commit(a), "commit");
    cr_assert_eq(pending(a), 2, "two local transactions");

    ok(a, cstack_upload_next(a, &tx), "upload_next");
    cr_assert_not_null(tx);
    int64_t v1 = cstack_upload_tx_version(tx);
    json_t *j = tx_json(tx, 1);
    json_t *o = tx_op(j, 0, "put", "Account", 1);
    cr_expect_str_eq(jstr(json_object_get(json_object_get(o, "data"), "email")), "ada@x.io");
    json_decref(j);
    /* Its changeset alone recreates the write elsewhere. */
    size_t len = 0;
    const void *cs = cstack_upload_tx_changeset(tx, &len);
    cr_assert_not_null(cs);
    apply(b, cs, len);
    EXPECT_FIELD(b, "Account", 1, "email", "ada@x.io");
    cstack_upload_tx_free(tx);

    ok(a, cstack_upload_complete(a, v1), "complete");
    cr_expect_eq(pending(a), 1);
    ok(a, cstack_upload_next(a, &tx), "upload_next");
    cr_assert_not_null(tx);
    int64_t v2 = cstack_upload_tx_version(tx);
    cr_expect_gt(v2, v1);
    j = tx_json(tx, 2);
    cr_expect_str_eq(jstr(json_object_get(tx_find(j, "Note", 10), "op")), "put");
    o = tx_find(j, "Account", 1);
    cr_expect_str_eq(jstr(json_object_get(o, "op")), "patch");
    cr_expect_str_eq(jstr(json_object_get(json_object_get(o, "data"), "name")), "Ada");
    json_decref(j);
    cstack_upload_tx_free(tx);

    /* Completing the first again changes nothing. */
    ok(a, cstack_upload_complete(a, v1), "complete again");
    cr_expect_eq(pending(a), 1);
    ok(a, cstack_upload_complete(a, v2), "complete");
    cr_expect_eq(pending(a), 0);

    ok(a, cstack_delete(a, "Note", KEY(10), NULL), "delete");
    ok(a, cstack_upload_next(a, &tx), "upload_next");
    cr_assert_not_null(tx);
    int64_t v3 = cstack_upload_tx_version(tx);
    cr_expect_gt(v3, v2);
    j = tx_json(tx, 1);
    tx_op(j, 0, "delete", "Note", 10);
    json_decref(j);
    cstack_upload_tx_free(tx);
    ok(a, cstack_upload_complete(a, v3), "complete");
    cr_expect_eq(pending(a), 0);
    ok(a, cstack_upload_next(a, &tx), "upload_next");
    cr_expect_null(tx);
}

Test(sync, merged_remote_changes_are_not_queued_for_upload)
{
    cstack *a = replica(), *b = replica();
    account(a, 1, "ada@x.io");
    note(a, 10, 1, "n");
    push(a, b);
    cr_expect_eq(pending(b), 0, "only local transactions are uploaded");
}

static cstack *open_file(const char *path)
{
    cstack_schema *s = t_schema(SCHEMA);
    cstack *db = NULL;
    int rc = cstack_open(s, path, NULL, &db);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "open %s", path);
    ok(db, cstack_bootstrap(db, NULL), "bootstrap");
    return db;
}

Test(sync, upload_queue_and_site_id_survive_a_restart)
{
    char *dir = t_tmpdir();
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/q.db", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    free(dir);
    cstack *db = open_file(path);
    char site[33];
    snprintf(site, sizeof site, "%s", cstack_sync_site_id(db));
    account(db, 1, "ada@x.io");
    account(db, 2, "bob@x.io");
    cstack_upload_tx *tx = NULL;
    ok(db, cstack_upload_next(db, &tx), "next");
    cr_assert_not_null(tx);
    int64_t v1 = cstack_upload_tx_version(tx);
    char *json1 = strdup(cstack_upload_tx_json(tx));
    cstack_upload_tx_free(tx);
    cstack_close(db);

    db = open_file(path);
    cr_expect_str_eq(cstack_sync_site_id(db), site);
    cr_expect_eq(pending(db), 2);
    ok(db, cstack_upload_next(db, &tx), "next");
    cr_assert_not_null(tx);
    cr_expect_eq(cstack_upload_tx_version(tx), v1);
    cr_expect_str_eq(cstack_upload_tx_json(tx), json1);
    cstack_upload_tx_free(tx);
    free(json1);
    ok(db, cstack_upload_complete(db, v1), "complete");
    cstack_close(db);

    db = open_file(path);
    cr_expect_eq(pending(db), 1, "an acknowledgement is durable too");
    cstack_close(db);
    if (system(cmd) != 0)
        cr_log_warn("could not remove the database of %s", path);
}

Test(sync, compaction_after_every_peer_acked_keeps_every_dump)
{
    cstack *r[3] = {replica(), replica(), replica()};
    account(r[0], 1, "ada@x.io");
    account(r[0], 2, "bob@x.io");
    for (int i = 0; i < 6; i++)
        note(r[0], 10 + i, 1 + i % 2, "n");
    push(r[0], r[1]);
    push(r[0], r[2]);
    ok(r[1], cstack_delete(r[1], "Note", KEY(10), NULL), "delete");
    ok(r[2], cstack_delete(r[2], "Account", KEY(2), NULL), "delete");
    ok(r[0], cstack_update(r[0], "Note", KEY(11), DATA(FV("body", T("x"))), NULL), "update");
    for (int round = 0; round < 2; round++)
        for (int s = 0; s < 3; s++)
            for (int d = 0; d < 3; d++)
                if (s != d)
                    push(r[s], r[d]);
    char *before = ts_dump(r[0]);
    int64_t removed = 0;
    for (int x = 0; x < 3; x++) {
        int64_t vx = version(r[x]);
        for (int y = 0; y < 3; y++)
            if (x != y)
                ok(r[x], cstack_sync_peer_ack(r[x], cstack_sync_site_id(r[y]), vx), "peer_ack");
        int64_t n = 0;
        ok(r[x], cstack_sync_compact(r[x], &n), "compact");
        removed += n;
    }
    cr_expect_gt(removed, 0, "tombstones of the deletes were dropped");
    for (int x = 0; x < 3; x++) {
        char *now = ts_dump(r[x]);
        cr_expect_str_eq(now, before, "replica %d changed by compaction", x);
        free(now);
    }
    free(before);
    /* Syncing still works afterwards, including a fresh delete. */
    ok(r[1], cstack_delete(r[1], "Note", KEY(12), NULL), "delete");
    note(r[2], 20, 1, "after");
    for (int s = 0; s < 3; s++)
        for (int d = 0; d < 3; d++)
            if (s != d)
                push(r[s], r[d]);
    same(r[0], r[1]);
    same(r[0], r[2]);
    EXPECT_FIELD(r[0], "Note", 12, "title", "(absent)");
    EXPECT_FIELD(r[1], "Note", 20, "title", "after");
}

Test(sync, peer_ack_refuses_a_bad_site_id)
{
    cstack *a = replica();
    cr_expect_eq(cstack_sync_peer_ack(a, "not-a-site", 1), CSTACK_EINVAL);
}

/* Every column of a membership row is in its key: a merge that finds the
 * row visible has no column to update, only its clocks. */
static const char *KEYS_ONLY = "model Member {\n"
                               "  team Int\n"
                               "  user Int\n"
                               "  @@id([team, user])\n"
                               "}\n";

Test(sync, a_row_whose_columns_are_all_key_merges_when_created_again)
{
    cstack *a = t_open_mem(KEYS_ONLY), *b = t_open_mem(KEYS_ONLY);
    reps[nreps++] = a;
    reps[nreps++] = b;
    cstack_data *key = DATA(FV("team", I(1)), FV("user", I(2)));
    ok(a, cstack_create(a, "Member", key, NULL), "create");
    push(a, b);
    ok(a, cstack_delete(a, "Member", key, NULL), "delete");
    ok(a, cstack_create(a, "Member", key, NULL), "create again");
    push(a, b);
    cr_expect_eq(count(b, "Member"), 1);
    same(a, b);
}
