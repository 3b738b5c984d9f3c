/* test_policy.c -- @@allow / @@deny enforcement: every operator, null rule,
 * relation path and to-many predicate evaluated on real rows for signed-in
 * and anonymous users, combined rules (deny over allow, operation lists,
 * 'all', deny by default), and that no user value ever reaches SQL text. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack_server.h"
#include "server/policy.h"
#include "support.h"

/* The fixture schema; %s is replaced by Note's rules. */
static const char *SCHEMA_FMT =
    "enum Role { ADMIN MEMBER }\n"
    "enum Status { OPEN DONE }\n"
    "auth User {\n"
    "  id     Uuid\n"
    "  role   Role?\n"
    "  orgId  Uuid?\n"
    "  level  Int?\n"
    "  budget Decimal?\n"
    "  staff  Boolean?\n"
    "  handle String?\n"
    "}\n"
    "model Org {\n"
    "  id        Uuid      @id\n"
    "  name      String\n"
    "  plan      String?\n"
    "  deletedAt DateTime?\n"
    "  accounts  Account[]\n"
    "  members   Membership[]\n"
    "  @@soft_delete(deletedAt)\n"
    "  @@allow('read', members?[accountId == auth().id && active])\n"
    "  @@allow('all', auth().role == ADMIN)\n"
    "}\n"
    "model Account {\n"
    "  id          Uuid   @id\n"
    "  email       String @unique\n"
    "  orgId       Uuid?\n"
    "  org         Org?   @relation(fields: [orgId], references: [id])\n"
    "  notes       Note[]\n"
    "  memberships Membership[]\n"
    "}\n"
    "model Membership {\n"
    "  id        Uuid    @id\n"
    "  accountId Uuid\n"
    "  account   Account @relation(fields: [accountId], references: [id])\n"
    "  orgId     Uuid\n"
    "  org       Org     @relation(fields: [orgId], references: [id])\n"
    "  role      Role\n"
    "  active    Boolean @default(true)\n"
    "  deletedAt DateTime?\n"
    "  @@soft_delete(deletedAt)\n"
    "  @@allow('read', accountId == auth().id)\n"
    "}\n"
    "model Note {\n"
    "  id        Uuid     @id\n"
    "  title     String\n"
    "  status    Status?\n"
    "  price     Decimal?\n"
    "  pinned    Boolean?\n"
    "  due       DateTime?\n"
    "  level     Int?\n"
    "  ownerId   Uuid\n"
    "  owner     Account  @relation(fields: [ownerId], references: [id])\n"
    "  deletedAt DateTime?\n"
    "  @@soft_delete(deletedAt)\n"
    "%s"
    "}\n";

/* The realistic rules of the access-matrix test. */
static const char *NOTE_RULES =
    "  @@allow('read', ownerId == auth().id || owner.orgId == auth().orgId)\n"
    "  @@allow('create,update', ownerId == auth().id)\n"
    "  @@allow('delete', ownerId == auth().id || auth().role == ADMIN)\n"
    "  @@deny('update,delete', pinned)\n"
    "  @@deny('all', title == \"locked\")\n";

#define ID(c) c c c c c c c c "-0000-4000-8000-000000000000"
#define ALICE ID("a")
#define BOB ID("b")
#define CAROL ID("c")
#define DAVE ID("d")
#define ALICE_UPPER "AAAAAAAA-0000-4000-8000-000000000000"
#define O1 "01000000-0000-4000-8000-000000000000"
#define O2 "02000000-0000-4000-8000-000000000000"
#define O3 "03000000-0000-4000-8000-000000000000"
#define SECRET "policy-test-secret"

#define NUL cstack_v_null()

enum { ANON, ALICE_U, BOB_U, CAROL_U, NUSERS };
static const char *const USER_NAMES[NUSERS] = {"anon", "alice", "bob", "carol"};
#define NNOTES 6

static cstack *db;
static cs_auth *users[NUSERS];
static char note_ids[NNOTES][37];

static void must(int rc, const char *what)
{
    cr_assert_eq(rc, 0, "%s: %s", what, cstack_errmsg(db));
}

static void note(int i, const char *owner, const char *title, cstack_value status,
                 cstack_value price, cstack_value pinned, cstack_value due, cstack_value level)
{
    snprintf(note_ids[i], sizeof note_ids[i], "f0000000-0000-4000-8000-00000000000%c",
             '1' + i);
    must(cstack_create(db, "Note",
                       DATA(FV("id", T(note_ids[i])), FV("title", T(title)),
                            FV("status", status), FV("price", price), FV("pinned", pinned),
                            FV("due", due), FV("level", level), FV("ownerId", T(owner))),
                       NULL),
         title);
}

/*
 * Orgs O1 Acme (plan pro), O2 Beta (no plan), O3 Gone (soft-deleted).
 * Accounts A (org O1), B (O2), C (O3), D (none).
 * Memberships A-O1 MEMBER active, B-O1 ADMIN active, A-O2 MEMBER inactive,
 * C-O3 MEMBER inactive and soft-deleted.
 * Notes (owner, title, status, price, pinned, due, level):
 *   n1 A a1 OPEN 9.5 false 2026-01-01 3     n2 A a2 DONE 10.25 true - -
 *   n3 B b1 DONE - - - 12                   n4 C c1 - 10.50 - - 5
 *   n5 D d1 DONE 1 false - - (soft-deleted) n6 A locked OPEN - - - -
 */
static void insert_rows(void)
{
    static const char *const orgs[3][3] = {{O1, "Acme", "pro"}, {O2, "Beta", NULL},
                                           {O3, "Gone", "x"}};
    for (int i = 0; i < 3; i++)
        must(cstack_create(db, "Org",
                           DATA(FV("id", T(orgs[i][0])), FV("name", T(orgs[i][1])),
                                FV("plan", T(orgs[i][2]))),
                           NULL),
             "org");
    static const char *const accounts[4][3] = {{ALICE, "alice@x.io", O1},
                                               {BOB, "bob@x.io", O2},
                                               {CAROL, "carol@x.io", O3},
                                               {DAVE, "dave@x.io", NULL}};
    for (int i = 0; i < 4; i++)
        must(cstack_create(db, "Account",
                           DATA(FV("id", T(accounts[i][0])), FV("email", T(accounts[i][1])),
                                FV("orgId", T(accounts[i][2]))),
                           NULL),
             "account");
    static const char *const members[4][4] = {{"m1", ALICE, O1, "MEMBER"},
                                              {"m2", BOB, O1, "ADMIN"},
                                              {"m3", ALICE, O2, "MEMBER"},
                                              {"m4", CAROL, O3, "MEMBER"}};
    for (int i = 0; i < 4; i++) {
        char id[37];
        snprintf(id, sizeof id, "e%07d-0000-4000-8000-000000000000", i + 1);
        must(cstack_create(db, "Membership",
                           DATA(FV("id", T(id)), FV("accountId", T(members[i][1])),
                                FV("orgId", T(members[i][2])), FV("role", T(members[i][3])),
                                FV("active", cstack_v_bool(i < 2))),
                           NULL),
             "membership");
        if (i == 3)
            must(cstack_delete(db, "Membership", DATA(FV("id", T(id))), NULL), "soft delete");
    }
    must(cstack_delete(db, "Org", DATA(FV("id", T(O3))), NULL), "soft delete org");
    cstack_value F = cstack_v_bool(0);
    note(0, ALICE, "a1", T("OPEN"), T("9.5"), F, T("2026-01-01T00:00:00Z"), cstack_v_int(3));
    note(1, ALICE, "a2", T("DONE"), T("10.25"), cstack_v_bool(1), NUL, NUL);
    note(2, BOB, "b1", T("DONE"), NUL, NUL, NUL, cstack_v_int(12));
    note(3, CAROL, "c1", NUL, T("10.50"), NUL, NUL, cstack_v_int(5));
    note(4, DAVE, "d1", T("DONE"), T("1"), F, NUL, NUL);
    note(5, ALICE, "locked", T("OPEN"), NUL, NUL, NUL, NUL);
    must(cstack_delete(db, "Note", DATA(FV("id", T(note_ids[4]))), NULL), "soft delete note");
}

/* Users come from real tokens, as the server gets them. */
static cs_auth *user(const char *sub, const char *const *claims, size_t n)
{
    char *tok = NULL, err[256] = "";
    cr_assert_eq(cstack_server_mint_token(SECRET, sub, claims, n, 0, 0, &tok, err, sizeof err), 0,
                 "%s", err);
    char header[2048];
    snprintf(header, sizeof header, "Bearer %s", tok);
    free(tok);
    cs_auth *a = NULL;
    cr_assert_eq(cs_auth_verify(cstack_schema_of(db), header, SECRET, 1000, &a, err, sizeof err),
                 0, "%s", err);
    return a;
}

static void open_fixture(const char *rules)
{
    size_t n = strlen(SCHEMA_FMT) + strlen(rules) + 1;
    char *src = malloc(n);
    snprintf(src, n, SCHEMA_FMT, rules);
    db = t_open_mem(src);
    free(src);
    insert_rows();
    cr_assert_eq(cs_auth_anonymous(cstack_schema_of(db), &users[ANON]), 0);
    static const char *const alice[] = {"role=MEMBER", "orgId=" O1,    "level=5",
                                        "budget=10.50", "staff=true", "handle=" ALICE_UPPER};
    static const char *const bob[] = {"role=ADMIN", "orgId=" O2, "staff=false"};
    users[ALICE_U] = user(ALICE, alice, 6);
    users[BOB_U] = user(BOB, bob, 3);
    users[CAROL_U] = user(CAROL, NULL, 0);
}

static void close_fixture(void)
{
    for (int i = 0; i < NUSERS; i++) {
        cs_auth_free(users[i]);
        users[i] = NULL;
    }
    cstack_close(db);
    db = NULL;
}

typedef struct probe {
    const cs_auth *auth;
    int mi;
    unsigned op;
    const char *id;
    bool allowed;
    int rc;
} probe;

static int probe_fn(sqlite3 *conn, void *ctx)
{
    probe *p = ctx;
    cstack_value pk = cstack_v_text(p->id);
    cr_assert_eq(conn, cs_write_conn(db)->db);
    p->rc = cs_policy_row_allowed(cstack_schema_of(db), cs_write_conn(db), p->auth, p->mi, p->op,
                                  &pk, &p->allowed);
    return 0;
}

static bool allowed(const cs_auth *a, const char *model, unsigned op, const char *id)
{
    probe p = {a, cs_model_find(cstack_schema_of(db), model), op, id, false, 0};
    cr_assert_geq(p.mi, 0);
    must(cstack_with_sqlite(db, probe_fn, &p), "with_sqlite");
    cr_assert_eq(p.rc, 0, "policy check failed: %s", cstack_errmsg(db));
    return p.allowed;
}

/* The decisions for notes n1..n6 as a "0"/"1" string. */
static void note_decisions(const cs_auth *a, unsigned op, char out[NNOTES + 1])
{
    for (int i = 0; i < NNOTES; i++)
        out[i] = allowed(a, "Note", op, note_ids[i]) ? '1' : '0';
    out[NNOTES] = 0;
}

/* ---- one expression at a time ------------------------------------------- */

typedef struct expr_case {
    const char *expr;
    /* Expected read decisions on n1..n6 for anon, alice, bob, carol; a NULL
     * entry repeats the previous one. */
    const char *want[NUSERS];
} expr_case;

static const expr_case EXPRS[] = {
    /* literals and auth() */
    {"true", {"111111"}},
    {"false", {"000000"}},
    {"auth() != null", {"000000", "111111"}},
    {"auth() == null", {"111111", "000000"}},
    {"null == null", {"111111"}},
    {"null != null", {"000000"}},
    /* equality with a null side is false, whatever the operator */
    {"ownerId == auth().id", {"000000", "110001", "001000", "000100"}},
    {"ownerId != auth().id", {"000000", "001110", "110111", "111011"}},
    /* ! of a comparison that was false because of null is true */
    {"!(ownerId == auth().id)", {"111111", "001110", "110111", "111011"}},
    {"(ownerId == auth().id) == false", {"111111", "001110", "110111", "111011"}},
    {"auth().role == ADMIN", {"000000", "000000", "111111", "000000"}},
    {"auth().role != ADMIN", {"000000", "111111", "000000", "000000"}},
    {"auth().role == null", {"111111", "000000", "000000", "111111"}},
    {"auth().level > 3 && auth().level <= 5", {"000000", "111111", "000000"}},
    {"auth().staff", {"000000", "111111", "000000"}},
    /* enums */
    {"status == DONE", {"011010"}},
    {"status == \"DONE\"", {"011010"}},
    {"status != DONE", {"100001"}},
    {"!(status == DONE)", {"100101"}},
    {"status == null", {"000100"}},
    {"status != null", {"111011"}},
    /* CrateStack's membership form: an OR of ==, and its negation */
    {"status in [OPEN, DONE]", {"111011"}},
    {"status in [DONE]", {"011010"}},
    {"status not in [DONE]", {"100101"}},
    {"title in [\"zz\", \"a1\"]", {"100000"}},
    /* Decimal compares numerically, exactly */
    {"price > 10", {"010100"}},
    {"price < 9.75", {"100010"}},
    {"price == 10.5", {"000100"}},
    {"price > 1e1", {"010100"}},
    {"price >= auth().budget", {"000000", "000100", "000000"}},
    {"price > auth().level", {"000000", "110100", "000000"}},
    {"price > level", {"100100"}},
    {"price != null && !(price > 10)", {"100010"}},
    /* Int */
    {"level < auth().level", {"000000", "100000", "000000"}},
    {"level == auth().level", {"000000", "000100", "000000"}},
    {"level == null || level < 4", {"110011"}},
    {"level > null", {"000000"}},
    {"level != null", {"101100"}},
    /* Boolean: null is not true */
    {"pinned", {"010000"}},
    {"!pinned", {"101111"}},
    {"pinned == false", {"100010"}},
    {"pinned == auth().staff", {"000000", "010000", "100010", "000000"}},
    /* DateTime and String */
    {"due < \"2026-06-01T00:00:00Z\"", {"100000"}},
    {"due == \"2026-01-01T01:00:00+01:00\"", {"100000"}},
    {"title == \"a1\"", {"100000"}},
    {"ownerId == auth().handle", {"000000", "110001", "000000"}},
    /* to-one paths; soft-deleted related rows are absent */
    {"owner.email == \"alice@x.io\"", {"110001"}},
    {"owner.orgId == auth().orgId", {"000000", "110001", "001000", "000000"}},
    {"owner.org.id == auth().orgId", {"000000", "110001", "001000", "000000"}},
    {"owner.org.name == \"Acme\"", {"110001"}},
    {"owner.org == null", {"000110"}},
    {"owner.org != null", {"111001"}},
    {"owner.org.plan == null", {"001110"}},
    /* to-many: some, every, none */
    {"owner.memberships?[orgId == auth().orgId && active]",
     {"000000", "111001", "000000", "000000"}},
    {"owner.memberships?[true]", {"111001"}},
    {"owner.memberships![active]", {"001110"}},
    {"owner.memberships^[role == ADMIN]", {"110111"}},
    {"owner.memberships?[org.name == \"Beta\"]", {"110001"}},
    {"owner.memberships?[account.email == \"bob@x.io\"]", {"001000"}},
};

Test(policy, every_expression_form_on_real_rows)
{
    for (size_t c = 0; c < sizeof EXPRS / sizeof *EXPRS; c++) {
        char rules[512];
        snprintf(rules, sizeof rules, "  @@allow('read', %s)\n", EXPRS[c].expr);
        open_fixture(rules);
        const char *want = NULL;
        for (int u = 0; u < NUSERS; u++) {
            want = EXPRS[c].want[u] ? EXPRS[c].want[u] : want;
            char got[NNOTES + 1];
            note_decisions(users[u], CS_POL_READ, got);
            cr_expect_str_eq(got, want, "%s as %s: got %s, want %s", EXPRS[c].expr,
                             USER_NAMES[u], got, want);
            /* Only read was allowed: every other operation is denied. */
            note_decisions(users[u], CS_POL_UPDATE, got);
            cr_expect_str_eq(got, "000000", "%s: update as %s", EXPRS[c].expr, USER_NAMES[u]);
        }
        close_fixture();
    }
}

/* ---- combined rules ----------------------------------------------------- */

typedef struct matrix_row {
    int user;
    unsigned op;
    const char *want; /* n1..n6 */
} matrix_row;

static const matrix_row NOTE_MATRIX[] = {
    {ANON, CS_POL_READ, "000000"},     {ANON, CS_POL_CREATE, "000000"},
    {ANON, CS_POL_UPDATE, "000000"},   {ANON, CS_POL_DELETE, "000000"},
    /* alice owns n1 n2 n6 and shares org O1 with her own notes only */
    {ALICE_U, CS_POL_READ, "110000"},  {ALICE_U, CS_POL_CREATE, "110000"},
    {ALICE_U, CS_POL_UPDATE, "100000"}, {ALICE_U, CS_POL_DELETE, "100000"},
    /* bob is ADMIN: may delete anything not pinned or locked */
    {BOB_U, CS_POL_READ, "001000"},    {BOB_U, CS_POL_CREATE, "001000"},
    {BOB_U, CS_POL_UPDATE, "001000"},  {BOB_U, CS_POL_DELETE, "101110"},
    /* carol has no org claim: null == null does not make dave's note hers */
    {CAROL_U, CS_POL_READ, "000100"},  {CAROL_U, CS_POL_CREATE, "000100"},
    {CAROL_U, CS_POL_UPDATE, "000100"}, {CAROL_U, CS_POL_DELETE, "000100"},
};

Test(policy, deny_overrides_allow_across_operations)
{
    open_fixture(NOTE_RULES);
    for (size_t i = 0; i < sizeof NOTE_MATRIX / sizeof *NOTE_MATRIX; i++) {
        const matrix_row *r = &NOTE_MATRIX[i];
        char got[NNOTES + 1];
        note_decisions(users[r->user], r->op, got);
        cr_expect_str_eq(got, r->want, "%s op %u: got %s, want %s", USER_NAMES[r->user], r->op,
                         got, r->want);
    }
    close_fixture();
}

Test(policy, to_many_rules_all_and_deny_by_default)
{
    open_fixture(NOTE_RULES);
    static const struct {
        const char *model, *id;
        int user;
        unsigned op;
        bool want;
    } cases[] = {
        /* Org: read through an active, not soft-deleted membership. */
        {"Org", O1, ALICE_U, CS_POL_READ, true},
        {"Org", O2, ALICE_U, CS_POL_READ, false},  /* inactive membership */
        {"Org", O3, CAROL_U, CS_POL_READ, false},  /* soft-deleted membership */
        {"Org", O1, ANON, CS_POL_READ, false},
        {"Org", O1, ALICE_U, CS_POL_UPDATE, false},
        /* 'all' for admins covers every operation. */
        {"Org", O2, BOB_U, CS_POL_READ, true},
        {"Org", O3, BOB_U, CS_POL_CREATE, true},
        {"Org", O1, BOB_U, CS_POL_UPDATE, true},
        {"Org", O1, BOB_U, CS_POL_DELETE, true},
        /* Account has no rules: nobody may do anything. */
        {"Account", ALICE, ALICE_U, CS_POL_READ, false},
        {"Account", ALICE, BOB_U, CS_POL_READ, false},
        {"Account", ALICE, ALICE_U, CS_POL_UPDATE, false},
        /* Membership: only one's own, only read. */
        {"Membership", "e0000001-0000-4000-8000-000000000000", ALICE_U, CS_POL_READ, true},
        {"Membership", "e0000002-0000-4000-8000-000000000000", ALICE_U, CS_POL_READ, false},
        {"Membership", "e0000001-0000-4000-8000-000000000000", ALICE_U, CS_POL_DELETE, false},
        /* A row that is not there is never allowed; keys are canonicalised. */
        {"Org", "09000000-0000-4000-8000-000000000000", BOB_U, CS_POL_READ, false},
        {"Note", "F0000000-0000-4000-8000-000000000001", ALICE_U, CS_POL_READ, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect_eq(allowed(users[cases[i].user], cases[i].model, cases[i].op, cases[i].id),
                     cases[i].want, "case %zu: %s %s as %s", i, cases[i].model, cases[i].id,
                     USER_NAMES[cases[i].user]);
    close_fixture();
}

/* ---- rendering ------------------------------------------------------------ */

static int render(const cs_auth *a, const char *model, unsigned op, cs_sqlb *q)
{
    const cstack_schema *s = cstack_schema_of(db);
    return cs_policy_render(q, s, &s->models[cs_model_find(s, model)], 0, op, a);
}

Test(policy, user_values_are_bound_never_spliced)
{
    open_fixture("  @@allow('read', ownerId == auth().id && owner.org.name == \"Acme\" &&\n"
                 "    price >= auth().budget && auth().role == MEMBER && auth().staff &&\n"
                 "    owner.memberships?[orgId == auth().orgId && account.email != \"x\"] &&\n"
                 "    ownerId != auth().handle && level < auth().level)\n"
                 "  @@deny('read', title == \"locked\")\n");
    cs_sqlb first = {0};
    cr_assert_eq(render(users[ALICE_U], "Note", CS_POL_READ, &first), 0);
    static const char *const secrets[] = {ALICE, ALICE_UPPER, O1, "10.50", "MEMBER",
                                          "Acme", "locked", "'"};
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        cr_expect_null(strstr(first.sql.data, secrets[i]), "'%s' is in the SQL: %s", secrets[i],
                       first.sql.data);
    cr_assert_gt(first.nbinds, 8);
    /* The text is the same for every user: only the bindings differ. */
    for (int u = 0; u < NUSERS; u++) {
        cs_sqlb q = {0};
        cr_assert_eq(render(users[u], "Note", CS_POL_READ, &q), 0);
        cr_expect_str_eq(q.sql.data, first.sql.data, "SQL for %s differs", USER_NAMES[u]);
        cr_expect_eq(q.nbinds, first.nbinds);
        cs_sqlb_free(&q);
    }
    cs_sqlb_free(&first);
    close_fixture();
}

typedef struct count_ctx {
    const cs_auth *auth;
    int64_t count;
    int rc;
} count_ctx;

/* SELECT count(*) FROM Note AS t0 WHERE <read policy> AND <not soft-deleted>,
 * the way a server filters a table. */
static int count_fn(sqlite3 *conn, void *ctx)
{
    count_ctx *c = ctx;
    cs_sqlb q = {0};
    cs_buf_puts(&q.sql, "SELECT count(*) FROM \"Note\" AS t0 WHERE t0.\"deletedAt\" IS NULL AND ");
    c->rc = render(c->auth, "Note", CS_POL_READ, &q);
    sqlite3_stmt *st = NULL;
    if (!c->rc && sqlite3_prepare_v2(conn, q.sql.data, -1, &st, NULL) == SQLITE_OK &&
        cs_sqlb_apply(&q, st) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        c->count = sqlite3_column_int64(st, 0);
    else if (!c->rc)
        c->rc = -1;
    sqlite3_finalize(st);
    cs_sqlb_free(&q);
    return 0;
}

Test(policy, renders_inside_a_larger_query)
{
    open_fixture(NOTE_RULES);
    static const int64_t want[NUSERS] = {0, 2, 1, 1};
    for (int u = 0; u < NUSERS; u++) {
        count_ctx c = {users[u], -1, 0};
        must(cstack_with_sqlite(db, count_fn, &c), "count");
        cr_assert_eq(c.rc, 0, "%s", cstack_errmsg(db));
        cr_expect_eq(c.count, want[u], "%s sees %lld notes", USER_NAMES[u], (long long)c.count);
    }
    close_fixture();
}

Test(policy, aliases_continue_from_the_callers)
{
    open_fixture("  @@allow('read', owner.org.name == \"Acme\" || owner.memberships?[active])\n");
    cs_sqlb q = {0};
    q.alias = 4;
    const cstack_schema *s = cstack_schema_of(db);
    cr_assert_eq(cs_policy_render(&q, s, &s->models[cs_model_find(s, "Note")], 2, CS_POL_READ,
                                  users[ALICE_U]),
                 0);
    cr_expect_not_null(strstr(q.sql.data, "t2.\"ownerId\""), "%s", q.sql.data);
    cr_expect_not_null(strstr(q.sql.data, "AS t5"), "%s", q.sql.data);
    cr_expect_null(strstr(q.sql.data, "AS t1 "), "%s", q.sql.data);
    cr_expect_geq(q.alias, 8);
    cs_sqlb_free(&q);
    close_fixture();
}

Test(policy, refuses_bad_operations)
{
    open_fixture(NOTE_RULES);
    static const unsigned bad[] = {0, CS_POL_READ | CS_POL_UPDATE, CS_POL_ALL, 16};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cs_sqlb q = {0};
        cr_expect_eq(render(users[ALICE_U], "Note", bad[i], &q), CSTACK_EINVAL, "op %u", bad[i]);
        cs_sqlb_free(&q);
    }
    cs_sqlb q = {0};
    cr_expect_eq(render(NULL, "Note", CS_POL_READ, &q), CSTACK_EINVAL);
    cs_sqlb_free(&q);
    close_fixture();
}

/* ---- locality ------------------------------------------------------------------ */

Test(policy, read_locality)
{
    static const struct {
        const char *rules;
        bool local;
    } cases[] = {
        {"  @@allow('read', ownerId == auth().id && !pinned || auth().role == ADMIN)\n", false},
        {"  @@allow('read', owner.orgId == auth().orgId)\n", false},
        {"  @@allow('read', owner == null)\n", false},
        {"  @@allow('update', owner.orgId == auth().orgId)\n", false},
        {"  @@deny('read', owner.memberships?[true])\n", false},
    };
    /* The fixture's Org and Membership rules are not local (Org reads
     * through its members), so locality is judged per model here, and for the
     * whole schema on a schema of local rules. */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        open_fixture(cases[i].rules);
        const cstack_schema *s = cstack_schema_of(db);
        bool note_local = cs_policy_model_read_is_local(&s->models[cs_model_find(s, "Note")]);
        cr_expect_eq(note_local, i == 0 || i == 3, "case %zu", i);
        cr_expect(!cs_policy_read_is_local(s), "case %zu: Org is not local", i);
        close_fixture();
    }
    cstack_schema *s = t_schema(
        "auth U { id String }\n"
        "model A { id Int @id  owner String  bs B[]  @@allow('read', owner == auth().id)\n"
        "  @@allow('update', bs?[true]) }\n"
        "model B { id Int @id  aId Int  a A @relation(fields: [aId], references: [id])\n"
        "  @@allow('read', auth() != null) }\n"
        "model L { id Int @id  @@local  @@allow('read', true) }\n");
    cr_expect(cs_policy_read_is_local(s), "only read rules count");
    cstack_schema_free(s);
}


/* ---- other shapes: one-to-one back relations, composite keys, checkers --- */

static const char *SHAPES =
    "auth U { id String  level Int? }\n"
    "model Account {\n"
    "  id      String   @id\n"
    "  profile Profile?\n"
    "  @@allow('read', profile.public == true)\n"
    "  @@allow('update', profile == null)\n"
    "}\n"
    "model Profile {\n"
    "  id        Int     @id\n"
    "  accountId String  @unique\n"
    "  account   Account @relation(fields: [accountId], references: [id])\n"
    "  public    Boolean\n"
    "  @@allow('read', account.id == auth().id)\n"
    "}\n"
    "model Pair {\n"
    "  a Int\n"
    "  b Int\n"
    "  v String?\n"
    "  @@id([a, b])\n"
    "  @@allow('read', a == auth().level && v != null)\n"
    "}\n";

typedef struct key_probe {
    const cs_auth *auth;
    int mi;
    unsigned op;
    const cstack_value *pk;
    bool allowed;
    int rc;
} key_probe;

static int key_probe_fn(sqlite3 *conn, void *ctx)
{
    key_probe *p = ctx;
    cr_assert_eq(conn, cs_write_conn(db)->db);
    p->rc = cs_policy_row_allowed(cstack_schema_of(db), cs_write_conn(db), p->auth, p->mi, p->op,
                                  p->pk, &p->allowed);
    return 0;
}

static bool allowed_key(const cs_auth *a, const char *model, unsigned op, const cstack_value *pk)
{
    key_probe p = {a, cs_model_find(cstack_schema_of(db), model), op, pk, false, 0};
    must(cstack_with_sqlite(db, key_probe_fn, &p), "with_sqlite");
    cr_assert_eq(p.rc, 0, "policy check failed: %s", cstack_errmsg(db));
    return p.allowed;
}

Test(policy, one_to_one_back_relations_and_composite_keys)
{
    db = t_open_mem(SHAPES);
    must(cstack_create(db, "Account", DATA(FV("id", T("pub"))), NULL), "account");
    must(cstack_create(db, "Account", DATA(FV("id", T("priv"))), NULL), "account");
    must(cstack_create(db, "Account", DATA(FV("id", T("none"))), NULL), "account");
    must(cstack_create(db, "Profile",
                       DATA(FV("id", cstack_v_int(1)), FV("accountId", T("pub")),
                            FV("public", cstack_v_bool(1))),
                       NULL),
         "profile");
    must(cstack_create(db, "Profile",
                       DATA(FV("id", cstack_v_int(2)), FV("accountId", T("priv")),
                            FV("public", cstack_v_bool(0))),
                       NULL),
         "profile");
    must(cstack_create(db, "Pair",
                       DATA(FV("a", cstack_v_int(7)), FV("b", cstack_v_int(1)), FV("v", T("x"))),
                       NULL),
         "pair");
    must(cstack_create(db, "Pair", DATA(FV("a", cstack_v_int(7)), FV("b", cstack_v_int(2))),
                       NULL),
         "pair");
    static const char *const claims[] = {"level=7"};
    cs_auth *pub = user("pub", claims, 1);
    cs_auth *anon = NULL;
    cr_assert_eq(cs_auth_anonymous(cstack_schema_of(db), &anon), 0);

    cstack_value k = T("pub");
    cr_expect(allowed_key(anon, "Account", CS_POL_READ, &k), "public profile");
    cr_expect(!allowed_key(anon, "Account", CS_POL_UPDATE, &k), "has a profile");
    k = T("priv");
    cr_expect(!allowed_key(anon, "Account", CS_POL_READ, &k), "private profile");
    k = T("none");
    cr_expect(!allowed_key(anon, "Account", CS_POL_READ, &k), "no profile: null is not true");
    cr_expect(allowed_key(anon, "Account", CS_POL_UPDATE, &k), "no profile: profile == null");
    k = cstack_v_int(1);
    cr_expect(allowed_key(pub, "Profile", CS_POL_READ, &k), "own profile through account.id");
    k = cstack_v_int(2);
    cr_expect(!allowed_key(pub, "Profile", CS_POL_READ, &k), "another's profile");

    cstack_value pair[2] = {cstack_v_int(7), cstack_v_int(1)};
    cr_expect(allowed_key(pub, "Pair", CS_POL_READ, pair), "(7,1) has v");
    cr_expect(!allowed_key(anon, "Pair", CS_POL_READ, pair), "anonymous has no level");
    pair[1] = cstack_v_int(2);
    cr_expect(!allowed_key(pub, "Pair", CS_POL_READ, pair), "(7,2) has no v");
    pair[1] = cstack_v_int(3);
    cr_expect(!allowed_key(pub, "Pair", CS_POL_READ, pair), "(7,3) does not exist");
    cs_auth_free(pub);
    cs_auth_free(anon);
    cstack_close(db);
    db = NULL;
}

typedef struct check_ctx {
    const cs_auth *auth;
    unsigned op;
    char got[NNOTES + 1];
    int rc;
} check_ctx;

static int check_fn(sqlite3 *conn, void *ctx)
{
    check_ctx *x = ctx;
    cs_policy_check *c = NULL;
    int mi = cs_model_find(cstack_schema_of(db), "Note");
    if ((x->rc = cs_policy_check_open(cstack_schema_of(db), conn, x->auth, mi, x->op, &c)))
        return 0;
    for (int i = 0; i < NNOTES && !x->rc; i++) {
        cstack_value pk = T(note_ids[i]);
        bool ok = false;
        x->rc = cs_policy_check_row(c, &pk, &ok);
        x->got[i] = ok ? '1' : '0';
    }
    x->got[NNOTES] = 0;
    cs_policy_check_close(c);
    return 0;
}

Test(policy, prepared_checks_agree_with_row_checks)
{
    open_fixture(NOTE_RULES);
    for (size_t i = 0; i < sizeof NOTE_MATRIX / sizeof *NOTE_MATRIX; i++) {
        const matrix_row *r = &NOTE_MATRIX[i];
        check_ctx x = {users[r->user], r->op, "", 0};
        must(cstack_with_sqlite(db, check_fn, &x), "check");
        cr_assert_eq(x.rc, 0, "%s", cstack_errmsg(db));
        cr_expect_str_eq(x.got, r->want, "%s op %u", USER_NAMES[r->user], r->op);
    }
    close_fixture();
}

Test(policy, foreign_connections_work_too)
{
    char *dir = t_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/p.db", dir);
    free(dir);
    cstack_schema *s = t_schema(SHAPES);
    cr_assert_eq(cstack_open(s, path, NULL, &db), 0);
    cstack_schema_free(s);
    must(cstack_bootstrap(db, NULL), "bootstrap");
    must(cstack_create(db, "Pair", DATA(FV("a", cstack_v_int(1)), FV("b", cstack_v_int(1)),
                                        FV("v", T("x"))),
                       NULL),
         "pair");
    static const char *const claims[] = {"level=1"};
    cs_auth *u = user("u", claims, 1);
    /* A connection of the caller's own, wrapped for its statement cache. */
    cs_conn conn = {0};
    cr_assert_eq(sqlite3_open_v2(path, &conn.db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cstack_value pk[2] = {cstack_v_int(1), cstack_v_int(1)};
    bool ok = false;
    cr_assert_eq(cs_policy_row_allowed(cstack_schema_of(db), &conn, u,
                                       cs_model_find(cstack_schema_of(db), "Pair"), CS_POL_READ,
                                       pk, &ok),
                 0, "%s", cstack_errmsg(db));
    cr_expect(ok);
    cs_conn_close(&conn);
    cs_auth_free(u);
    cstack_close(db);
    db = NULL;
}
