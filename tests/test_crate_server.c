/* test_crate_server.c -- CrateStack constructs enforced by the sync server:
 * nested auth claims (composite auth fields) and auth() == relation in
 * policies, validators on pushed rows, and policies written in CrateStack's
 * spellings enforced exactly like their cstack equivalents. */
#include <criterion/criterion.h>

#include "server_support.h"

TestSuite(crate_server, .fini = fini);

/* A device of `schema_src` signed in as `sub` with the given extra claims
 * (key=value, JSON objects as key={...}). */
static dev device_with(const char *schema_src, const char *sub, const char *const *claims,
                       size_t n)
{
    dev d = device(schema_src, sub);
    free(d.token);
    char err[256] = "";
    int rc = cstack_server_mint_token(SECRET, sub, claims, n, (int64_t)time(NULL), 3600, &d.token,
                                      err, sizeof err);
    cr_assert_eq(rc, 0, "mint: %s", err);
    snprintf(d.auth, sizeof d.auth, "Authorization: Bearer %s", d.token);
    return d;
}

static void create(dev *d, const char *model, cstack_field_value *f, size_t n)
{
    cstack_data data = {f, n};
    cr_assert_eq(cstack_create(d->db, model, &data, NULL), 0, "%s: %s", model,
                 cstack_errmsg(d->db));
}

/* The status of a pull with d's headers. */
static long pull_status(dev *d, char *body, size_t cap)
{
    const char *h[] = {d->auth, d->schema, d->site, NULL};
    res r = http("GET", "/v1/pull?since=0", h, NULL, 0);
    snprintf(body, cap, "%s", r.body ? r.body : "");
    long st = r.status;
    res_free(&r);
    return st;
}

/* ---- nested claims and auth() == relation ------------------------------------- */

static const char *ORGS =
    "type OrgScope {\n  id String\n  slug String?\n}\n"
    "auth Session {\n  id String\n  organization OrgScope\n}\n"
    "model User {\n  id String @id\n  notes Note[]\n  @@allow('all', true)\n}\n"
    "model Note {\n  id String @id\n  orgId String\n  ownerId String\n"
    "  owner User @relation(fields: [ownerId], references: [id])\n  title String\n"
    "  @@allow('read', orgId == auth().organization.id)\n"
    "  @@allow('create,update,delete', auth() == owner)\n}\n";

static void org_note(dev *d, const char *id, const char *org, const char *owner)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"orgId", cstack_v_text(org)},
                              {"ownerId", cstack_v_text(owner)},
                              {"title", cstack_v_text(id)}};
    create(d, "Note", f, 4);
}

Test(crate_server, nested_auth_claims_filter_pulls_per_user)
{
    start_opts(ORGS, "orgs.db", 0);
    const char *o1[] = {"organization={\"id\":\"o1\",\"slug\":\"one\"}"};
    const char *o2[] = {"organization={\"id\":\"o2\"}"};
    dev alice = device_with(ORGS, "alice", o1, 1);
    cstack_field_value u[] = {{"id", cstack_v_text("alice")}};
    create(&alice, "User", u, 1);
    org_note(&alice, "n1", "o1", "alice");
    org_note(&alice, "n2", "o2", "alice");
    org_note(&alice, "n3", "o1", "alice");
    push_all(&alice);
    dev a2 = device_with(ORGS, "alice", o1, 1);
    dev bob = device_with(ORGS, "bob", o2, 1);
    pull(&a2);
    pull(&bob);
    cr_expect_eq(count(&a2, "Note"), 2, "alice's organization o1 has n1 and n3");
    cr_expect_eq(count(&bob, "Note"), 1, "bob's organization o2 has n2");
    char *dump = ts_dump(bob.db);
    cr_expect(strstr(dump, "n2") && !strstr(dump, "n1") && !strstr(dump, "n3"), "%s", dump);
    free(dump);
    /* A flat "organization.id" claim wins over the nested one (CrateStack's
     * rule for flat claims). */
    const char *flat[] = {"organization={\"id\":\"o1\"}", "organization.id=o2"};
    dev c = device_with(ORGS, "carol", flat, 2);
    pull(&c);
    cr_expect_eq(count(&c, "Note"), 1);
    dev_free(&c);
    dev_free(&a2);
    dev_free(&bob);
    dev_free(&alice);
}

Test(crate_server, a_claim_that_does_not_fit_its_type_is_refused_with_the_reason)
{
    start_opts(ORGS, "orgs_bad.db", 0);
    struct {
        const char *claim;
        const char *why;
    } cases[] = {
        {"organization=o1", "claim 'organization' must be an object"},
        {"organization={\"slug\":\"x\"}", "no 'organization.id' claim"},
        {"organization={\"id\":7}", "claim 'organization.id' must be a string"},
        {NULL, "no 'organization' claim"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *claims[] = {cases[i].claim};
        dev d = device_with(ORGS, "zed", claims, cases[i].claim ? 1 : 0);
        char body[1024];
        long st = pull_status(&d, body, sizeof body);
        cr_expect_eq(st, 401, "%s: %ld %s", cases[i].why, st, body);
        cr_expect(strstr(body, cases[i].why), "'%s' lacks '%s'", body, cases[i].why);
        dev_free(&d);
    }
    const char *broken[] = {"organization={\"id\":"};
    char *tok = NULL, err[256] = "";
    cr_expect_eq(cstack_server_mint_token(SECRET, "zed", broken, 1, 0, 0, &tok, err, sizeof err),
                 CSTACK_EINVAL);
    cr_expect(strstr(err, "claim 'organization' is not valid JSON"), "%s", err);
    cr_expect_null(tok);
}

Test(crate_server, auth_equals_relation_lets_only_the_related_user_write)
{
    start_opts(ORGS, "orgs_owner.db", 0);
    const char *o1[] = {"organization={\"id\":\"o1\"}"};
    dev alice = device_with(ORGS, "alice", o1, 1);
    cstack_field_value u1[] = {{"id", cstack_v_text("alice")}};
    cstack_field_value u2[] = {{"id", cstack_v_text("bob")}};
    create(&alice, "User", u1, 1);
    create(&alice, "User", u2, 1);
    org_note(&alice, "mine", "o1", "alice");
    push_all(&alice);
    int64_t before = server_version();
    dev bob = device_with(ORGS, "bob", o1, 1);
    pull(&bob); /* the User rows the notes refer to */
    org_note(&bob, "planted", "o1", "alice");
    char batch[128];
    res r = push_next(&bob, batch, sizeof batch);
    assert_err(&r, 403, "forbidden", "Note", "bob creating a note owned by alice");
    res_free(&r);
    cr_expect_eq(server_version(), before, "nothing applied");
    dev bob2 = device_with(ORGS, "bob", o1, 1);
    pull(&bob2);
    org_note(&bob2, "bobs", "o1", "bob");
    push_all(&bob2);
    dev_free(&bob2);
    dev_free(&bob);
    dev_free(&alice);
}

/* ---- validators on pushed rows ---------------------------------------------------- */

/* The server's schema has validators, the device's the same schema without
 * them: validators are not part of the schema hash, so such a device (or a
 * client that skips its checks) can push any value, and the server must
 * still refuse it. */
static const char *const RULES[] = {"@length(min: 2, max: 5)", "@email", "@range(min: 0, max: 150)",
                                    "@regex(\"^[A-Z]{2}-[0-9]+$\")"};

static char *schema_with(bool checked)
{
    char *s = malloc(1024);
    cr_assert_not_null(s);
    snprintf(s, 1024,
             "auth U { id String }\nmodel C {\n  id Int @id\n  name String %s\n"
             "  email String? %s\n  age Int? %s\n  sku String? %s\n  @@allow('all', true)\n}\n",
             checked ? RULES[0] : "", checked ? RULES[1] : "", checked ? RULES[2] : "",
             checked ? RULES[3] : "");
    return s;
}

Test(crate_server, a_pushed_row_that_breaks_a_validator_is_refused_naming_field_and_rule)
{
    char *server_src = schema_with(true), *device_src = schema_with(false);
    start_opts(server_src, "checked.db", 0);
    cstack_schema *a = t_schema(server_src), *b = t_schema(device_src);
    cr_assert_str_eq(cstack_schema_hash(a), cstack_schema_hash(b));
    cstack_schema_free(a);
    cstack_schema_free(b);
    struct {
        const char *field;
        cstack_value v;
        const char *rule;
    } bad[] = {
        {"name", cstack_v_text("x"), "field 'name' breaks @length(min: 2, max: 5)"},
        {"email", cstack_v_text("not-an-address"), "field 'email' breaks @email"},
        {"age", cstack_v_int(151), "field 'age' breaks @range(min: 0, max: 150)"},
        {"sku", cstack_v_text("ab-1"), "field 'sku' breaks @regex"},
    };
    dev ok = device(device_src, "u1");
    cstack_field_value good[] = {{"id", cstack_v_int(1)}, {"name", cstack_v_text("fine")}};
    create(&ok, "C", good, 2);
    push_all(&ok);
    int64_t before = server_version();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dev d = device(device_src, "u1");
        bool is_name = strcmp(bad[i].field, "name") == 0;
        cstack_field_value f[] = {{"id", cstack_v_int(10 + (int64_t)i)},
                                  {"name", is_name ? bad[i].v : cstack_v_text("okay")},
                                  {bad[i].field, bad[i].v}};
        create(&d, "C", f, is_name ? 2 : 3);
        char batch[128];
        res r = push_next(&d, batch, sizeof batch);
        assert_err(&r, 400, "validation", bad[i].rule, bad[i].field);
        res_free(&r);
        dev_free(&d);
    }
    cr_expect_eq(server_version(), before, "no refused batch changed the server");
    dev check = device(device_src, "u1");
    pull(&check);
    cr_expect_eq(count(&check, "C"), 1, "only the valid row");
    dev_free(&check);
    dev_free(&ok);
    free(server_src);
    free(device_src);
}

/* ---- CrateStack's policy spellings ------------------------------------------------ */

/* One schema, its policies written either way: CrateStack's list/detail,
 * rel.some/every/none.x, hasRole() and isSystem(), or cstack's forms. */
static char *teams_schema(bool crate)
{
    char *s = malloc(2048);
    cr_assert_not_null(s);
    snprintf(s, 2048,
             "auth U { id String  role String }\n"
             "model Team {\n  id String @id\n  name String\n  members Member[]\n"
             "  @@allow(%s, %s)\n  @@allow('create', true)\n  @@allow('update', %s)\n"
             "  @@allow('delete', %s)\n}\n"
             "model Member {\n  id String @id\n  userId String\n  role String\n  teamId String\n"
             "  team Team @relation(fields: [teamId], references: [id], onDelete: Cascade)\n"
             "  @@allow('all', true)\n}\n",
             crate ? "'list,detail'" : "'read'",
             crate ? "members.some.userId == auth().id" : "members?[userId == auth().id]",
             crate ? "hasRole('admin') || auth().isSystem()" : "auth().role == 'admin' || false",
             crate ? "members.every.role == 'owner' && members.none.userId == 'banned'"
                   : "members![role == 'owner'] && members^[userId == 'banned']");
    return s;
}

static void team(dev *d, const char *id, const char *name)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)}, {"name", cstack_v_text(name)}};
    create(d, "Team", f, 2);
}

static void member(dev *d, const char *id, const char *user, const char *role, const char *tid)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)},
                              {"userId", cstack_v_text(user)},
                              {"role", cstack_v_text(role)},
                              {"teamId", cstack_v_text(tid)}};
    create(d, "Member", f, 4);
}

static dev with_role(const char *src, const char *sub, const char *role)
{
    char claim[64];
    snprintf(claim, sizeof claim, "role=%s", role);
    const char *c[] = {claim};
    return device_with(src, sub, c, 1);
}

/* Pushes d's next transaction; appends "name:STATUS " to out. */
static void attempt(dev *d, const char *name, cs_buf *out)
{
    char batch[128];
    res r = push_next(d, batch, sizeof batch);
    cr_assert_eq(cs_buf_printf(out, "%s:%ld ", name, r.status), 0);
    res_free(&r);
}

/* Every decision of one scenario, as text. */
static char *team_scenario(const char *src, const char *db)
{
    start_opts(src, db, 0);
    cs_buf out = CS_BUF_INIT;
    dev alice = with_role(src, "alice", "user");
    team(&alice, "t1", "one");
    member(&alice, "m1", "alice", "owner", "t1");
    team(&alice, "t2", "two");
    member(&alice, "m2", "alice", "owner", "t2");
    member(&alice, "m3", "banned", "owner", "t2");
    push_all(&alice);
    /* read: only teams with alice as a member reach her; none reach bob */
    dev a2 = with_role(src, "alice", "user"), bob = with_role(src, "bob", "user");
    pull(&a2);
    pull(&bob);
    cs_buf_printf(&out, "alice-teams:%lld bob-teams:%lld ", (long long)count(&a2, "Team"),
                  (long long)count(&bob, "Team"));
    /* update: bob (a user) is refused, carol (an admin) allowed */
    team(&bob, "t1", "bob's");
    attempt(&bob, "user-update", &out);
    dev carol = with_role(src, "carol", "admin");
    team(&carol, "t1", "carol's");
    attempt(&carol, "admin-update", &out);
    /* delete: t1 (every member an owner, none banned) allowed, t2 refused */
    cstack_field_value k1[] = {{"id", cstack_v_text("t1")}}, k2[] = {{"id", cstack_v_text("t2")}};
    cstack_data w1 = {k1, 1}, w2 = {k2, 1};
    int64_t v = 0;
    cr_assert_eq(cstack_sync_version(a2.db, &v), 0);
    cstack_upload_complete(a2.db, v);
    cr_assert_eq(cstack_delete(a2.db, "Team", &w2, NULL), 0, "%s", cstack_errmsg(a2.db));
    attempt(&a2, "delete-t2", &out);
    cr_assert_eq(cstack_sync_version(a2.db, &v), 0);
    cstack_upload_complete(a2.db, v);
    cr_assert_eq(cstack_delete(a2.db, "Team", &w1, NULL), 0, "%s", cstack_errmsg(a2.db));
    attempt(&a2, "delete-t1", &out);
    dev_free(&carol);
    dev_free(&bob);
    dev_free(&a2);
    dev_free(&alice);
    stop();
    return cs_buf_take(&out);
}

Test(crate_server, crate_policy_spellings_are_enforced_like_their_cstack_forms)
{
    char *crate_src = teams_schema(true), *cstack_src = teams_schema(false);
    char *crate = team_scenario(crate_src, "teams_crate.db");
    char *plain = team_scenario(cstack_src, "teams_cstack.db");
    fprintf(stderr, "decisions: %s\n", crate);
    cr_expect_str_eq(crate, plain);
    cr_expect_str_eq(crate, "alice-teams:2 bob-teams:0 user-update:403 admin-update:200 "
                            "delete-t2:403 delete-t1:200 ");
    free(crate);
    free(plain);
    free(crate_src);
    free(cstack_src);
}

/* ---- hasRole() through actor.role, inTenant() ------------------------------------ */

/* `role` and CrateStack's structured principal (`actor.role`, `tenant.id`)
 * both declared: hasRole() reads role first, actor.role when role is
 * absent. */
static const char *PRINCIPAL =
    "type Actor {\n  role String\n}\ntype Tenant {\n  id String\n}\n"
    "auth P {\n  id String\n  role String?\n  actor Actor?\n  tenant Tenant?\n}\n"
    "model Doc {\n  id String @id\n  title String\n"
    "  @@allow('list,detail', hasRole('reader') || hasRole('admin'))\n"
    "  @@allow('create,update,delete', hasRole('admin') && inTenant('t1'))\n}\n";

static dev principal(const char *sub, const char *role, const char *actor, const char *tenant)
{
    static const char *const fmt[] = {"role=%s", "actor={\"role\":\"%s\"}",
                                      "tenant={\"id\":\"%s\"}"};
    const char *val[] = {role, actor, tenant};
    char c[3][96];
    const char *claims[3];
    size_t n = 0;
    for (size_t i = 0; i < 3; i++) {
        if (!val[i])
            continue;
        snprintf(c[n], sizeof c[n], fmt[i], val[i]);
        claims[n] = c[n];
        n++;
    }
    return device_with(PRINCIPAL, sub, claims, n);
}

static void doc(dev *d, const char *id)
{
    cstack_field_value f[] = {{"id", cstack_v_text(id)}, {"title", cstack_v_text(id)}};
    create(d, "Doc", f, 2);
}

/* How many Docs a fresh device of this principal pulls. */
static int64_t docs_seen(const char *role, const char *actor, const char *tenant)
{
    dev d = principal("reader", role, actor, tenant);
    pull(&d);
    int64_t n = count(&d, "Doc");
    dev_free(&d);
    return n;
}

static long doc_push(const char *role, const char *actor, const char *tenant)
{
    dev d = principal("writer", role, actor, tenant);
    doc(&d, "w");
    char batch[128];
    res r = push_next(&d, batch, sizeof batch);
    long st = r.status;
    res_free(&r);
    dev_free(&d);
    return st;
}

Test(crate_server, has_role_falls_back_to_actor_role_and_in_tenant_scopes_writes)
{
    start_opts(PRINCIPAL, "principal.db", 0);
    dev admin = principal("admin", NULL, "admin", "t1");
    doc(&admin, "d1");
    doc(&admin, "d2");
    push_all(&admin);
    dev_free(&admin);
    /* reads: actor.role when there is no role; role first when both */
    cr_expect_eq(docs_seen(NULL, "reader", NULL), 2, "actor.role reader");
    cr_expect_eq(docs_seen(NULL, "guest", NULL), 0, "actor.role guest");
    cr_expect_eq(docs_seen(NULL, NULL, NULL), 0, "no role at all");
    cr_expect_eq(docs_seen("reader", NULL, NULL), 2, "role reader");
    cr_expect_eq(docs_seen("guest", "admin", NULL), 0, "role wins over actor.role");
    cr_expect_eq(docs_seen("admin", "guest", NULL), 2, "role admin, whatever the actor");
    /* writes: an admin (either way) in tenant t1 only */
    cr_expect_eq(doc_push(NULL, "admin", "t2"), 403, "admin of another tenant");
    cr_expect_eq(doc_push(NULL, "reader", "t1"), 403, "a reader of t1");
    cr_expect_eq(doc_push(NULL, "admin", NULL), 403, "no tenant claim");
    cr_expect_eq(doc_push("guest", "admin", "t1"), 403, "role wins over actor.role");
    cr_expect_eq(doc_push("admin", NULL, "t1"), 200, "role admin of t1");
    cr_expect_eq(docs_seen(NULL, "reader", NULL), 3, "the allowed write landed");
}

/* ---- attributes on claims ------------------------------------------------------- */

static const char *CLAIMED =
    "type Org {\n  id String @length(2, 8) @regex(\"^o[0-9]+$\")\n}\n"
    "auth S {\n  id String\n  email String? @email\n  badge Uuid? @pii\n  organization Org\n}\n"
    "model N {\n  id String @id\n  orgId String\n"
    "  @@allow('all', orgId == auth().organization.id)\n}\n";

Test(crate_server, a_claim_that_breaks_a_validator_of_its_type_member_refuses_the_token)
{
    start_opts(CLAIMED, "claimed.db", 0);
    const char *good[] = {"organization={\"id\":\"o1\"}", "email=a@b.io"};
    dev ok = device_with(CLAIMED, "u1", good, 2);
    cstack_field_value f[] = {{"id", cstack_v_text("n1")}, {"orgId", cstack_v_text("o1")}};
    create(&ok, "N", f, 2);
    push_all(&ok);
    dev_free(&ok);
    struct {
        const char *claim;
        const char *why;
    } cases[] = {
        {"organization={\"id\":\"x1\"}", "field 'organization.id' breaks @regex"},
        {"organization={\"id\":\"o123456789\"}",
         "field 'organization.id' breaks @length(min: 2, max: 8)"},
        {"email=not-an-address", "field 'email' breaks @email"},
        {"badge=secret-value", "redacted"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *claims[] = {cases[i].claim, "organization={\"id\":\"o1\"}"};
        /* An organization case replaces the good organization claim. */
        bool org = strncmp(cases[i].claim, "organization", 12) == 0;
        dev d = device_with(CLAIMED, "u1", claims, org ? 1 : 2);
        char body[1024];
        long st = pull_status(&d, body, sizeof body);
        cr_expect_eq(st, 401, "%s: %ld %s", cases[i].claim, st, body);
        cr_expect(strstr(body, cases[i].why), "'%s' lacks '%s'", body, cases[i].why);
        cr_expect(!strstr(body, "secret-value"), "%s", body);
        dev_free(&d);
    }
    const char *fine[] = {"organization={\"id\":\"o1\"}"};
    dev again = device_with(CLAIMED, "u2", fine, 1);
    pull(&again);
    cr_expect_eq(count(&again, "N"), 1, "a token whose claims fit reads as before");
    dev_free(&again);
}

/* ---- auth() without an auth block ------------------------------------------------ */

Test(crate_server, auth_not_null_without_an_auth_block_lets_signed_in_devices_read_and_write)
{
    const char *src = "model Note {\n  id Int @id\n  body String\n"
                      "  @@allow('all', auth() != null)\n}\n";
    start_opts(src, "noauth.db", 0);
    dev a = device(src, "alice");
    cstack_field_value f[] = {{"id", cstack_v_int(1)}, {"body", cstack_v_text("hi")}};
    create(&a, "Note", f, 2);
    push_all(&a);
    dev b = device(src, "bob");
    pull(&b);
    cr_expect_eq(count(&b, "Note"), 1, "a signed-in device reads");
    /* A request without a token is refused before any policy runs. */
    const char *h[] = {b.schema, b.site, NULL};
    res r = http("GET", "/v1/pull?since=0", h, NULL, 0);
    cr_expect_eq(r.status, 401, "%ld %s", r.status, r.body ? r.body : "");
    res_free(&r);
    dev_free(&b);
    dev_free(&a);
}

/* The other direction: a device with validators refuses a pulled row that
 * breaks one (its server lacks them), naming field and rule, and applies
 * nothing of that pull. */
Test(crate_server, a_pulled_row_that_breaks_a_validator_is_refused_by_the_device)
{
    char *server_src = schema_with(false), *device_src = schema_with(true);
    start_opts(server_src, "unchecked.db", 0);
    dev w = device(server_src, "u1");
    cstack_field_value f[] = {{"id", cstack_v_int(1)}, {"name", cstack_v_text("x")}};
    create(&w, "C", f, 2);
    push_all(&w);
    dev r = device(device_src, "u1");
    const char *h[] = {r.auth, r.schema, r.site, NULL};
    res p = http("GET", "/v1/pull?since=0", h, NULL, 0);
    cr_assert_eq(p.status, 200, "%ld", p.status);
    cr_expect_eq(cstack_changes_apply(r.db, p.body, p.len, NULL), CSTACK_EVALIDATION);
    cr_expect(strstr(cstack_errmsg(r.db), "field 'name' breaks @length(min: 2, max: 5)"), "%s",
              cstack_errmsg(r.db));
    cr_expect_eq(count(&r, "C"), 0, "nothing of the pull applied");
    res_free(&p);
    dev_free(&r);
    dev_free(&w);
    free(server_src);
    free(device_src);
}

/* ---- @pii on the user's id ---------------------------------------------------- */

static const char *HIDDEN_ID = "auth S {\n  id String @pii\n}\n"
                               "model Card {\n  email String @id @pii\n  body String\n"
                               "  @@allow('read', true)\n  @@allow('create', body != 'no')\n}\n";

Test(crate_server, a_pii_user_id_and_pii_key_stay_out_of_the_access_log_and_refusals)
{
    start_opts(HIDDEN_ID, "hidden.db", 0);
    dev d = device(HIDDEN_ID, "alice@example.com");
    cstack_field_value f[] = {{"email", cstack_v_text("bob@example.com")},
                              {"body", cstack_v_text("no")}};
    create(&d, "Card", f, 2);
    char batch[128];
    res r = push_next(&d, batch, sizeof batch);
    assert_err(&r, 403, "forbidden", "not allowed for user '[redacted]'", "a refused create");
    cr_expect(strstr(r.body, "create of {\\\"email\\\":\\\"[redacted]\\\"}"), "%s", r.body);
    cr_expect(!strstr(r.body, "example.com"), "%s", r.body);
    res_free(&r);
    char body[256];
    cr_expect_eq(pull_status(&d, body, sizeof body), 200, "%s", body);
    dev_free(&d);
    stop(); /* every request's access line is written */
    char *log = t_read_file(logpath, NULL);
    cr_assert_not_null(log);
    cr_expect(strstr(log, "POST /v1/push 403") && strstr(log, "user=[redacted]"), "%s", log);
    cr_expect(!strstr(log, "example.com"), "a @pii value reached the log:\n%s", log);
    free(log);
}

/* ---- Vector and Geography on pushed rows --------------------------------------- */

/* The server's schema types the columns; the device's stores the same
 * columns (a Float list, plain Bytes) without the shape, as a device that
 * skips the checks would, and presents the server's schema hash. */
static const char *SHAPED =
    "auth U { id String }\nextension pgvector {\n}\nextension postgis {\n}\n"
    "model P {\n  id Int @id\n  v Vector(3)\n"
    "  g Geography(Point, 4326)?\n  @@allow('all', true)\n}\n";
static const char *UNSHAPED = "auth U { id String }\n"
                              "model P {\n  id Int @id\n  v Float[]\n  g Bytes?\n"
                              "  @@allow('all', true)\n}\n";

/* Pushes d's oldest transaction as if made with the server's schema: the
 * changeset's header carries the schema hash at bytes 5..36 (changeset.c). */
static res push_as_server_schema(dev *d)
{
    cstack_upload_tx *tx = NULL;
    cr_assert_eq(cstack_upload_next(d->db, &tx), 0);
    cr_assert_not_null(tx);
    size_t len = 0;
    const unsigned char *cs = cstack_upload_tx_changeset(tx, &len);
    cr_assert_gt(len, 37);
    unsigned char *forged = malloc(len);
    cr_assert_not_null(forged);
    memcpy(forged, cs, len);
    for (size_t i = 0; i < 32; i++) {
        unsigned int byte = 0;
        cr_assert_eq(sscanf(hash + 2 * i, "%2x", &byte), 1);
        forged[5 + i] = (unsigned char)byte;
    }
    char bh[160];
    snprintf(bh, sizeof bh, "X-Cstack-Batch: %s:%" PRId64, cstack_sync_site_id(d->db),
             cstack_upload_tx_version(tx));
    const char *h[] = {d->auth, d->schema, d->site, bh, NULL};
    res r = http("POST", "/v1/push", h, forged, len);
    free(forged);
    cstack_upload_tx_free(tx);
    return r;
}

Test(crate_server, a_pushed_vector_or_geography_of_the_wrong_shape_is_refused_naming_the_field)
{
    start_opts(SHAPED, "shaped.db", 0);
    /* POINT(1 2), SRID 4326, little-endian EWKB; then the same as a LineString code. */
    static const unsigned char pt[] = {1, 1, 0,    0,    0x20, 0xe6, 0x10, 0, 0, 0, 0, 0,   0,
                                       0, 0, 0xf0, 0x3f, 0,    0,    0,    0, 0, 0, 0, 0x40};
    unsigned char line[sizeof pt];
    memcpy(line, pt, sizeof pt);
    line[1] = 2;
    struct {
        cstack_value v, g;
        const char *words;
    } bad[] = {
        {cstack_v_text("[1, 2]"), cstack_v_null(), "field 'v' (Vector(3)) has 2 elements, not 3"},
        {cstack_v_text("[1, 2, 3]"), cstack_v_blob(line, sizeof line),
         "field 'g' breaks Geography(Point, 4326): the value"},
    };
    dev ok = device(UNSHAPED, "u1");
    cstack_field_value good[] = {{"id", cstack_v_int(1)},
                                 {"v", cstack_v_text("[1, 2, 3]")},
                                 {"g", cstack_v_blob(pt, sizeof pt)}};
    create(&ok, "P", good, 3);
    res first = push_as_server_schema(&ok);
    cr_assert_eq(first.status, 200, "a row of the right shape: %ld %s", first.status,
                 first.body ? first.body : "");
    res_free(&first);
    int64_t before = server_version();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dev d = device(UNSHAPED, "u1");
        cstack_field_value f[] = {
            {"id", cstack_v_int(10 + (int64_t)i)}, {"v", bad[i].v}, {"g", bad[i].g}};
        create(&d, "P", f, 3);
        res r = push_as_server_schema(&d);
        assert_err(&r, 400, "validation", bad[i].words, i ? "g" : "v");
        res_free(&r);
        dev_free(&d);
    }
    cr_expect_eq(server_version(), before, "no refused batch changed the server");
    dev_free(&ok);
}
