/*
 * test_crate.c -- CrateStack schemas: the compatibility corpus in
 * tests/schemas/crate/ and the effect of each CrateStack construct on reads
 * and writes.
 *
 * Corpus: NAME.ok.cstack loads (rc 0) with exactly the warnings its leading
 * `// expect: LINE:COL: substring` lines list; NAME.fail.cstack fails with
 * exactly the diagnostics (warnings and errors) listed, in source order.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"
#include "schema/schema.h"
#include "support.h"

#define CORPUS CSTACK_TEST_DIR "/schemas/crate"

static cstack_schema *load_fixture(const char *name);

/* ---- the corpus ------------------------------------------------------------- */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void check_fixture(const char *path, const char *name)
{
    size_t len = 0;
    char *src = t_read_file(path, &len);
    cr_assert_not_null(src, "read %s", path);
    t_expect exp[32];
    size_t nexp = t_parse_expects(src, exp, 32);
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    int rc = cstack_schema_load(path, &s, &d);
    char *txt = cstack_diags_format(d);
    bool ok = has_suffix(name, ".ok.cstack");
    cr_assert(ok || has_suffix(name, ".fail.cstack"), "%s: name says neither ok nor fail", name);
    cr_expect_eq(rc, ok ? 0 : CSTACK_ESCHEMA, "%s: rc %d\n%s", name, rc, txt);
    cr_expect_eq(s != NULL, ok, "%s", name);
    cr_assert_eq(cstack_diags_count(d), nexp, "%s: %zu diagnostics, expected %zu:\n%s", name,
                 cstack_diags_count(d), nexp, txt);
    for (size_t i = 0; i < nexp; i++) {
        const cstack_diag *g = cstack_diags_get(d, i);
        cr_expect_eq(g->line, exp[i].line, "%s #%zu line: %s", name, i, g->message);
        cr_expect_eq(g->col, exp[i].col, "%s #%zu col: %s", name, i, g->message);
        cr_expect(strstr(g->message, exp[i].text) != NULL, "%s #%zu: '%s' lacks '%s'", name, i,
                  g->message, exp[i].text);
        cr_expect_eq(g->warning != 0, strncmp(g->message, "warning: ", 9) == 0, "%s", name);
        if (ok)
            cr_expect(g->warning, "%s: an ok fixture may only have warnings", name);
    }
    cstack_free(txt);
    cstack_diags_free(d);
    cstack_schema_free(s);
    free(src);
}

static size_t each_fixture(void (*fn)(const char *path, const char *name))
{
    DIR *d = opendir(CORPUS);
    cr_assert_not_null(d, "cannot open %s", CORPUS);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (!has_suffix(e->d_name, ".cstack"))
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", CORPUS, e->d_name);
        fn(path, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

Test(crate_corpus, every_schema_has_its_expected_warnings_and_errors)
{
    size_t n = each_fixture(check_fixture);
    cr_expect_geq(n, 11, "only %zu fixtures", n);
}

/* Every prefix parses or fails cleanly (ASan/LSan watch the skipping). */
static void truncate_fixture(const char *path, const char *name)
{
    size_t len = 0;
    char *src = t_read_file(path, &len);
    cr_assert_not_null(src);
    for (size_t n = 0; n <= len; n++) {
        cstack_schema *s = NULL;
        cstack_diags *d = NULL;
        int rc = cstack_schema_parse(name, src, n, &s, &d);
        cr_assert(rc == 0 || rc == CSTACK_ESCHEMA, "%s[0..%zu): rc %d", name, n, rc);
        cstack_diags_free(d);
        cstack_schema_free(s);
    }
    free(src);
}

Test(crate_corpus, every_prefix_of_every_schema_parses_or_fails_cleanly)
{
    each_fixture(truncate_fixture);
}

Test(crate_schema, warnings_are_flagged_in_the_c_api_and_do_not_fail_the_parse)
{
    const char *src = "transport rpc\nmodel A {\n  id Int @id\n}\n";
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    cr_assert_eq(cstack_schema_parse("w.cstack", src, strlen(src), &s, &d), 0);
    cr_assert_not_null(s);
    cr_assert_eq(cstack_diags_count(d), 1);
    const cstack_diag *g = cstack_diags_get(d, 1 - 1);
    cr_expect(g->warning);
    cr_expect_eq(g->line, 1);
    char *txt = cstack_diags_format(d);
    cr_expect(strstr(txt, "w.cstack:1:1: warning: transport is ignored by the embedded runtime"),
              "%s", txt);
    cstack_free(txt);
    cstack_diags_free(d);
    cstack_schema_free(s);
}

/* ---- writes: validators ------------------------------------------------------- */

static const char *VALID =
    "model C {\n"
    "  id Int @id\n"
    "  name String @length(min: 2, max: 5)\n"
    "  email String? @email\n"
    "  cur String? @iso4217\n"
    "  sku String? @regex(\"^[A-Z]{2}-[0-9]+$\")\n"
    "  age Int? @range(min: 0, max: 150)\n"
    "}\n";

static void expect_invalid(cstack *db, const cstack_data *data, const char *rule)
{
    int rc = cstack_create(db, "C", data, NULL);
    cr_expect_eq(rc, CSTACK_EVALIDATION, "%s: rc %d", rule, rc);
    cr_expect(strstr(cstack_errmsg(db), rule) != NULL, "'%s' lacks '%s'", cstack_errmsg(db),
              rule);
}

Test(crate_writes, validators_refuse_bad_values_naming_field_and_rule)
{
    cstack *db = t_open_mem(VALID);
    expect_invalid(db, DATA(FV("id", I(1)), FV("name", T("x"))), "field 'name' breaks @length");
    expect_invalid(db, DATA(FV("id", I(1)), FV("name", T("abc")), FV("email", T("nope"))),
                   "field 'email' breaks @email");
    expect_invalid(db, DATA(FV("id", I(1)), FV("name", T("abc")), FV("cur", T("EUX"))),
                   "field 'cur' breaks @iso4217");
    expect_invalid(db, DATA(FV("id", I(1)), FV("name", T("abc")), FV("sku", T("ab-1"))),
                   "field 'sku' breaks @regex");
    expect_invalid(db, DATA(FV("id", I(1)), FV("name", T("abc")), FV("age", I(151))),
                   "field 'age' breaks @range(min: 0, max: 150)");
    cr_assert_eq(cstack_create(db, "C",
                               DATA(FV("id", I(1)), FV("name", T("abé")),
                                    FV("email", T("a@b.io")), FV("cur", T("EUR")),
                                    FV("sku", T("AB-12")), FV("age", I(0))),
                               NULL),
                 0, "%s", cstack_errmsg(db));
    /* Updates are checked too; filters are not. */
    cr_expect_eq(cstack_update(db, "C", DATA(FV("id", I(1))), DATA(FV("name", T("toolong"))),
                               NULL),
                 CSTACK_EVALIDATION);
    int64_t n = -1;
    cstack_filter *f = cstack_filter_cmp("name", CSTACK_OP_EQ, 0, T("a"));
    cr_expect_eq(cstack_count(db, "C", f, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 0);
    cstack_filter_free(f);
    cstack_close(db);
}

/* ---- writes: @version and @readonly --------------------------------------------- */

static const char *LEDGER = "model L {\n"
                            "  id Int @id\n"
                            "  label String\n"
                            "  kind String @readonly\n"
                            "  version Int @version\n"
                            "}\n";

static const char *LEDGER_CHECKED = "model L {\n"
                                    "  id Int @id\n"
                                    "  label String @length(min: 2, max: 5)\n"
                                    "  kind String @readonly\n"
                                    "  version Int @version\n"
                                    "}\n";

static int64_t version_of(cstack *db)
{
    cstack_row *r = NULL;
    cr_assert_eq(cstack_find_unique(db, "L", DATA(FV("id", I(1))), NULL, 0, &r), 0);
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "version", &v), 0);
    cstack_row_free(r);
    return v.u.i;
}

Test(crate_writes, version_starts_at_one_and_stale_versions_conflict)
{
    cstack *db = t_open_mem(LEDGER);
    cr_assert_eq(cstack_create(db, "L", DATA(FV("id", I(1)), FV("label", T("a")),
                                             FV("kind", T("k"))),
                               NULL),
                 0, "%s", cstack_errmsg(db));
    cr_expect_eq(version_of(db), 1);
    cr_assert_eq(cstack_update(db, "L", DATA(FV("id", I(1))), DATA(FV("label", T("b"))), NULL),
                 0);
    cr_expect_eq(version_of(db), 2);
    /* A writer that read version 1 is refused, in where or in data. */
    cr_expect_eq(cstack_update(db, "L", DATA(FV("id", I(1)), FV("version", I(1))),
                               DATA(FV("label", T("c"))), NULL),
                 CSTACK_ECONFLICT);
    cr_expect(strstr(cstack_errmsg(db), "version 1 was given, the row is at 2"));
    cr_expect_eq(cstack_update(db, "L", DATA(FV("id", I(1))),
                               DATA(FV("label", T("c")), FV("version", I(1))), NULL),
                 CSTACK_ECONFLICT);
    cr_expect_eq(cstack_delete(db, "L", DATA(FV("id", I(1)), FV("version", I(1))), NULL),
                 CSTACK_ECONFLICT);
    cr_expect_eq(version_of(db), 2, "a refused write changes nothing");
    cr_expect_eq(cstack_update(db, "L", DATA(FV("id", I(1)), FV("version", I(2))),
                               DATA(FV("label", T("c"))), NULL),
                 0, "%s", cstack_errmsg(db));
    cr_expect_eq(version_of(db), 3);
    cr_expect_eq(cstack_delete(db, "L", DATA(FV("id", I(1)), FV("version", I(3))), NULL), 0,
                 "%s", cstack_errmsg(db));
    cr_expect_str_eq(cstack_errname(CSTACK_ECONFLICT), "conflict");
    cstack_close(db);
}

Test(crate_writes, readonly_fields_cannot_change_after_create)
{
    cstack *db = t_open_mem(LEDGER);
    cr_assert_eq(cstack_create(db, "L", DATA(FV("id", I(1)), FV("label", T("a")),
                                             FV("kind", T("k"))),
                               NULL),
                 0);
    cr_expect_eq(cstack_update(db, "L", DATA(FV("id", I(1))), DATA(FV("kind", T("z"))), NULL),
                 CSTACK_EVALIDATION);
    cr_expect(strstr(cstack_errmsg(db), "L.kind is @readonly"));
    int64_t n = 0;
    cr_expect_eq(cstack_update_many(db, "L", NULL, DATA(FV("kind", T("z"))), &n),
                 CSTACK_EVALIDATION);
    /* Sending the same value back (a full-row update) is fine. */
    cr_expect_eq(cstack_update(db, "L", DATA(FV("id", I(1))),
                               DATA(FV("kind", T("k")), FV("label", T("b"))), NULL),
                 0, "%s", cstack_errmsg(db));
    cstack_close(db);
}

/* ---- @pii / @sensitive ------------------------------------------------------------ */

Test(crate_writes, sensitive_values_stay_out_of_errors_and_the_audit_journal)
{
    const char *src = "model P {\n  id Int @id\n  token Uuid? @sensitive\n"
                      "  email String @pii\n  @@audit\n}\n";
    char *dir = t_tmpdir();
    char path[1024];
    snprintf(path, sizeof path, "%s/p.db", dir);
    cstack_schema *s = t_schema(src);
    cstack *db = NULL;
    cr_assert_eq(cstack_open(s, path, NULL, &db), 0);
    cr_assert_eq(cstack_bootstrap(db, NULL), 0);
    cr_expect_eq(cstack_create(db, "P", DATA(FV("id", I(1)), FV("token", T("secret-value")),
                                             FV("email", T("x@y.io"))),
                               NULL),
                 CSTACK_EVALIDATION);
    cr_expect(strstr(cstack_errmsg(db), "secret-value") == NULL, "%s", cstack_errmsg(db));
    cr_expect(strstr(cstack_errmsg(db), "redacted"), "%s", cstack_errmsg(db));
    cr_assert_eq(cstack_create(db, "P", DATA(FV("id", I(1)), FV("email", T("ann@y.io"))), NULL),
                 0, "%s", cstack_errmsg(db));
    cstack_close(db);
    cstack_schema_free(s);
    sqlite3 *raw = NULL;
    cr_assert_eq(sqlite3_open(path, &raw), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(raw, "SELECT \"after\" FROM \"_cstack_audit\"", -1, &st, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(raw));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    const char *after = (const char *)sqlite3_column_text(st, 0);
    cr_expect(strstr(after, "ann@y.io") == NULL, "%s", after);
    cr_expect(strstr(after, "\"email\":\"[redacted]\""), "%s", after);
    sqlite3_finalize(st);
    sqlite3_close(raw);
    free(dir);
}

/* ---- defaults, mixins, soft delete ------------------------------------------------- */

Test(crate_writes, mixin_fields_dbgenerated_and_cs_cuid_defaults_fill_new_rows)
{
    cstack *db = t_open_mem("mixin Stamp {\n  createdAt DateTime @default(now())\n}\n"
                            "model O {\n  @use(Stamp)\n"
                            "  id String @id @default(dbgenerated(\"gen_random_uuid()\"))\n"
                            "  ref String @default(cs_cuid())\n}\n");
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "O", NULL, &r), 0, "%s", cstack_errmsg(db));
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "id", &v), 0);
    cr_expect_eq(v.u.s.n, 36, "a uuid");
    cr_assert_eq(cstack_row_get(r, "ref", &v), 0);
    cr_expect_eq(v.u.s.p[0], 'c', "a cuid");
    cr_assert_eq(cstack_row_get(r, "createdAt", &v), 0);
    cr_expect_eq(v.type, CSTACK_TEXT, "the mixin's field is a column with its default");
    cstack_row_free(r);
    cstack_close(db);
}

Test(crate_writes, a_skipped_dbgenerated_default_must_be_given_on_create)
{
    cstack_schema *s = load_fixture("dbgenerated.ok.cstack");
    cstack *db = NULL;
    cr_assert_eq(cstack_open_in_memory(s, &db), 0);
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "%s", cstack_errmsg(db));
    cr_expect_neq(cstack_create(db, "Seq", NULL, NULL), 0, "nextval() is not run here");
    cr_expect(strstr(cstack_errmsg(db), "id"), "%s", cstack_errmsg(db));
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "Seq", DATA(FV("id", I(7))), &r), 0, "%s", cstack_errmsg(db));
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "at", &v), 0);
    cr_expect_eq(v.type, CSTACK_TEXT, "CURRENT_TIMESTAMP means now()");
    cr_assert_eq(cstack_row_get(r, "u", &v), 0);
    cr_expect_eq(v.u.s.n, 36, "uuid_generate_v4() means uuid()");
    cstack_row_free(r);
    cstack_close(db);
    cstack_schema_free(s);
}

Test(crate_writes, a_bare_dbgenerated_makes_ids_and_leaves_other_fields_to_the_caller)
{
    cstack_schema *s = load_fixture("dbgenerated_bare.ok.cstack");
    cstack *db = NULL;
    cr_assert_eq(cstack_open_in_memory(s, &db), 0);
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "%s", cstack_errmsg(db));
    cstack_row *r = NULL;
    cr_assert_eq(cstack_create(db, "Node", DATA(FV("name", T("n"))), &r), 0, "%s",
                 cstack_errmsg(db));
    cstack_value v;
    cr_assert_eq(cstack_row_get(r, "id", &v), 0);
    cr_expect_eq(v.u.s.p[0], 'c', "a cuid");
    cr_assert_eq(cstack_row_get(r, "ref", &v), 0);
    cr_expect_eq(v.u.s.n, 36, "a uuid");
    cstack_row_free(r);
    cr_expect_neq(cstack_create(db, "Tagged", DATA(FV("id", I(1))), NULL), 0,
                  "a String's database default is not run here");
    cr_expect(strstr(cstack_errmsg(db), "code"), "%s", cstack_errmsg(db));
    cstack_close(db);
    cstack_schema_free(s);
}

Test(crate_writes, a_default_from_the_caller_is_given_by_the_writer)
{
    cstack *db = t_open_mem("auth U {\n  id String\n}\n"
                            "model N {\n  id Int @id\n  owner String @default(auth().id)\n}\n");
    cr_expect_neq(cstack_create(db, "N", DATA(FV("id", I(1))), NULL), 0, "no claim is read here");
    cr_expect(strstr(cstack_errmsg(db), "owner"), "%s", cstack_errmsg(db));
    cr_expect_eq(cstack_create(db, "N", DATA(FV("id", I(1)), FV("owner", T("u1"))), NULL), 0,
                 "%s", cstack_errmsg(db));
    cstack_close(db);
}

Test(crate_writes, soft_delete_without_argument_uses_deletedAt)
{
    cstack *db = t_open_mem("model S {\n  id Int @id\n  deletedAt DateTime?\n"
                            "  @@soft_delete\n}\n");
    cr_assert_eq(cstack_create(db, "S", DATA(FV("id", I(1))), NULL), 0);
    cr_assert_eq(cstack_delete(db, "S", DATA(FV("id", I(1))), NULL), 0, "%s", cstack_errmsg(db));
    int64_t n = -1;
    cr_expect_eq(cstack_count(db, "S", NULL, &n), 0);
    cr_expect_eq(n, 0, "the row is hidden");
    cstack_close(db);
}

/* ---- policies --------------------------------------------------------------------- */

Test(crate_schema, crate_policy_forms_become_their_cstack_equivalents)
{
    cstack_schema *s = t_schema("auth U {\n  id String\n  role String\n}\n"
                                "model T {\n  id String @id\n  ms M[]\n"
                                "  @@allow(\"list,detail\", ms.some.uid == auth().id)\n"
                                "  @@allow(\"update\", hasRole('admin') || auth().isSystem())\n"
                                "}\n"
                                "model M {\n  id String @id\n  uid String\n  tid String\n"
                                "  t T @relation(fields: [tid], references: [id])\n}\n");
    const cs_model *t = &s->models[cs_model_find(s, "T")];
    cr_assert_eq(t->npolicies, 2);
    cr_expect_eq(t->policies[0].ops, CS_POL_READ, "list and detail are reads");
    const cs_expr *q = t->policies[0].expr;
    cr_expect_eq(q->kind, CS_E_SOME);
    cr_expect_eq(q->npath, 1);
    cr_expect_str_eq(q->path[0], "ms");
    cr_expect_eq(q->lhs->kind, CS_E_BINARY);
    const cs_expr *o = t->policies[1].expr;
    cr_expect_eq(o->op, CS_OP_OR);
    cr_expect_eq(o->lhs->lhs->kind, CS_E_AUTH_FIELD);
    cr_expect_str_eq(o->lhs->lhs->text, "role");
    cr_expect_str_eq(o->lhs->rhs->text, "admin");
    cr_expect_eq(o->rhs->kind, CS_E_BOOL);
    cr_expect(!o->rhs->bval, "isSystem() is never true here");
    cstack_schema_free(s);
}

/* hasRole() reads `role`, else CrateStack's `actor.role`, and `role` first
 * when both exist; inTenant() reads `tenant.id`. */
static void expect_policy(const char *auth, const char *rule, const char *want)
{
    char src[512];
    snprintf(src, sizeof src,
             "type Actor {\n  role String\n}\ntype Tenant {\n  id String\n}\n"
             "auth P {\n  id String\n%s}\nmodel D {\n  id Int @id\n  @@allow(\"read\", %s)\n}\n",
             auth, rule);
    cstack_schema *s = t_schema(src);
    cr_expect(strstr(s->canonical, want), "%s\n-> %s\nlacks %s", rule, s->canonical, want);
    cstack_schema_free(s);
}

Test(crate_schema, has_role_reads_role_then_actor_role_and_in_tenant_reads_tenant_id)
{
    expect_policy("  role String?\n", "hasRole('admin')", "@@allow(1, (auth().role == \"admin\"))");
    expect_policy("  actor Actor?\n", "auth().hasRole('admin')",
                  "@@allow(1, (auth().actor.role == \"admin\"))");
    expect_policy("  role String?\n  actor Actor?\n", "!hasRole('admin')",
                  "@@allow(1, !((auth().role == \"admin\") || ((auth().role == null) && "
                  "(auth().actor.role == \"admin\"))))");
    expect_policy("  tenant Tenant\n", "inTenant('t1') || auth().inTenant(\"t2\")",
                  "@@allow(1, ((auth().tenant.id == \"t1\") || (auth().tenant.id == \"t2\")))");
}

Test(crate_schema, in_and_not_in_lists_become_or_chains_of_equality)
{
    expect_policy("", "id in [1, 2, 3]", "@@allow(1, (((id == 1) || (id == 2)) || (id == 3)))");
    expect_policy("  n Int?\n", "id not in [4] || id in [auth().n]",
                  "@@allow(1, (!(id == 4) || (id == auth().n)))");
}

/* Attributes on a type member or an auth field: validators and @pii apply
 * to the claim (test_crate_server.c shows the server refusing a token). */
Test(crate_schema, claim_attributes_keep_validators_and_pii)
{
    cstack_schema *s = load_fixture("auth_attrs.ok.cstack");
    const cs_auth_block *a = &s->auth;
    bool seen[3] = {false, false, false};
    for (size_t i = 0; i < a->nfields; i++) {
        const cs_field *f = &a->fields[i];
        if (strcmp(f->name, "organization.id") == 0 || strcmp(f->name, "team.id") == 0) {
            cr_expect(f->checks.length && f->checks.len_min == 2 && f->checks.len_max == 8);
            cr_expect_not_null(f->checks.re, "%s keeps its @regex", f->name);
            seen[0] = true;
        } else if (strcmp(f->name, "id") == 0) {
            cr_expect(f->sensitive, "@pii on auth().id");
            seen[1] = true;
        } else if (strcmp(f->name, "home.city") == 0) {
            cr_expect(f->checks.length && f->checks.len_min == 1 && f->checks.len_max == 80);
            seen[2] = true;
        }
        cr_expect(!f->is_unique && f->def.kind == CS_DEF_NONE && !f->readonly,
                  "%s: column attributes are skipped", f->name);
    }
    cr_expect(seen[0] && seen[1] && seen[2]);
    char why[200] = "";
    int org = -1;
    for (size_t i = 0; i < a->nfields; i++)
        if (strcmp(a->fields[i].name, "organization.id") == 0)
            org = (int)i;
    cr_assert_geq(org, 0);
    cstack_value none = cstack_v_null();
    cr_expect_eq(cs_field_check(&a->fields[org], &none, why, sizeof why), 0);
    cstack_value bad = cstack_v_text("X1");
    cr_expect_eq(cs_field_check(&a->fields[org], &bad, why, sizeof why), CSTACK_EVALIDATION);
    cr_expect(strstr(why, "field 'organization.id' breaks @regex"), "%s", why);
    cstack_schema_free(s);
}

/* ---- envelope leniency ------------------------------------------------------------ */

static char *call(cstack *db, const char *req)
{
    char *resp = NULL;
    size_t n = 0;
    cr_assert_eq(cstack_envelope_call(db, req, strlen(req), &resp, &n), 0);
    return resp;
}

static void expect_call(cstack *db, const char *req, const char *want)
{
    char *resp = call(db, req);
    cr_expect(strstr(resp, want) != NULL, "%s\n-> %s\nlacks %s", req, resp, want);
    cstack_free(resp);
}

Test(crate_envelope, crate_request_shapes_are_accepted)
{
    cstack *db = t_open_mem("model B {\n  id Int @id\n  data Bytes?\n  note String?\n"
                            "  at DateTime?\n}\n");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":1,"
                "\"data\":[104,105],\"at\":\"2026-01-01T00:00:00.123456000Z\"}}}",
                "\"data\":\"aGk=\",\"note\":null,\"at\":\"2026-01-01T00:00:00.123456Z\"");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":2,"
                "\"at\":\"2026-01-01T00:00:00.1234567Z\"}}}",
                "\"code\":\"validation\"");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":2,"
                "\"data\":[256]}}}",
                "not a byte value");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":2,"
                "\"note\":\"n\",\"data\":\"aGk=\"}}}",
                "\"status\":\"ok\"");
    expect_call(db, "{\"model\":\"B\",\"kind\":\"count\",\"payload\":null}", "{\"count\":2}");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"count\",\"payload\":{\"where\":{\"note\":"
                "{\"isNull\":true}}}}",
                "{\"count\":1}");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"count\",\"payload\":{\"where\":{\"note\":"
                "{\"isNull\":false}}}}",
                "{\"count\":1}");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"find_many\",\"payload\":{\"where\":{\"id\":"
                "{\"ne\":1}}}}",
                "\"id\":2");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"count\",\"payload\":{\"where\":{\"id\":"
                "{\"eq\":1}}}}",
                "{\"count\":1}");
    cstack_close(db);
}

/* Validators, @version and @readonly through the envelope: each refusal
 * carries its code and names the field. */
Test(crate_envelope, validators_version_and_readonly_answer_with_their_codes)
{
    cstack *db = t_open_mem(LEDGER_CHECKED);
    expect_call(db,
                "{\"model\":\"L\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":1,"
                "\"label\":\"x\",\"kind\":\"k\"}}}",
                "\"code\":\"validation\",\"message\":\"payload.data: L: field 'label' breaks @length(min: 2, "
                "max: 5)");
    expect_call(db,
                "{\"model\":\"L\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":1,"
                "\"label\":\"ab\",\"kind\":\"k\"}}}",
                "\"version\":1");
    expect_call(db,
                "{\"model\":\"L\",\"kind\":\"update\",\"payload\":{\"where\":{\"id\":1,"
                "\"version\":7},\"data\":{\"label\":\"abc\"}}}",
                "\"code\":\"conflict\"");
    expect_call(db,
                "{\"model\":\"L\",\"kind\":\"update\",\"payload\":{\"where\":{\"id\":1},"
                "\"data\":{\"kind\":\"z\"}}}",
                "L.kind is @readonly");
    expect_call(db,
                "{\"model\":\"L\",\"kind\":\"update\",\"payload\":{\"where\":{\"id\":1,"
                "\"version\":1},\"data\":{\"label\":\"abc\"}}}",
                "\"version\":2");
    cstack_close(db);
}

/* ---- scalar lists ----------------------------------------------------------------- */

Test(crate_writes, scalar_lists_are_stored_canonically_and_filtered_with_has)
{
    cstack *db = t_open_mem("enum Role { ADMIN USER }\n"
                            "model U {\n  id Int @id\n  tags String[]\n  roles Role[]\n}\n");
    expect_call(db,
                "{\"model\":\"U\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":1,"
                "\"tags\":[ \"a\" , \"b\" ],\"roles\":[\"ADMIN\"]}}}",
                "\"tags\":[\"a\",\"b\"],\"roles\":[\"ADMIN\"]");
    expect_call(db,
                "{\"model\":\"U\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":2,"
                "\"tags\":[\"b\"],\"roles\":[\"USER\"]}}}",
                "\"status\":\"ok\"");
    expect_call(db,
                "{\"model\":\"U\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":3,"
                "\"tags\":[1],\"roles\":[]}}}",
                "element 0 is not a String");
    expect_call(db,
                "{\"model\":\"U\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":3,"
                "\"tags\":[],\"roles\":[\"BOSS\"]}}}",
                "not a member of enum Role");
    expect_call(db,
                "{\"model\":\"U\",\"kind\":\"find_many\",\"payload\":{\"where\":{\"tags\":"
                "{\"has\":\"a\"}},\"select\":[\"id\"]}}",
                "[{\"id\":1}]");
    expect_call(db,
                "{\"model\":\"U\",\"kind\":\"find_many\",\"payload\":{\"where\":{\"tags\":"
                "{\"hasSome\":[\"a\",\"b\"]}},\"select\":[\"id\"]}}",
                "[{\"id\":1},{\"id\":2}]");
    expect_call(db,
                "{\"model\":\"U\",\"kind\":\"find_many\",\"payload\":{\"where\":{\"tags\":"
                "{\"hasEvery\":[\"a\",\"b\"]}},\"select\":[\"id\"]}}",
                "[{\"id\":1}]");
    /* The typed filter API: one element for HAS. */
    int64_t n = -1;
    cstack_filter *f = cstack_filter_cmp("roles", CSTACK_OP_HAS, 0, T("USER"));
    cr_expect_eq(cstack_count(db, "U", f, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 1);
    cstack_filter_free(f);
    cstack_close(db);
}

Test(crate_writes, list_side_relation_keys_are_accepted_and_the_relation_works)
{
    cstack *db = t_open_mem("model A {\n  id Int @id\n"
                            "  bs B[] @relation(fields: [id], references: [aid])\n}\n"
                            "model B {\n  id Int @id\n  aid Int\n"
                            "  a A @relation(fields: [aid], references: [id])\n}\n");
    expect_call(db, "{\"model\":\"A\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":1}}}",
                "\"status\":\"ok\"");
    expect_call(db,
                "{\"model\":\"B\",\"kind\":\"create\",\"payload\":{\"data\":{\"id\":7,\"aid\":1}}}",
                "\"status\":\"ok\"");
    expect_call(db,
                "{\"model\":\"A\",\"kind\":\"count\",\"payload\":{\"where\":{\"bs\":{\"some\":"
                "{\"id\":7}}}}}",
                "{\"count\":1}");
    cstack_close(db);
}

/* ---- composite auth fields, auth() == relation, mixin overrides ------------------ */

static cstack_schema *load_fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", CORPUS, name);
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    int rc = cstack_schema_load(path, &s, &d);
    char *txt = cstack_diags_format(d);
    cr_assert_eq(rc, 0, "%s: %s", name, txt);
    cstack_free(txt);
    cstack_diags_free(d);
    return s;
}

Test(crate_schema, nested_claims_and_auth_equals_relation_become_plain_comparisons)
{
    cstack_schema *s = load_fixture("auth_types.ok.cstack");
    const char *c = s->canonical;
    /* The composite and its members (nested types nest the names). */
    cr_expect(strstr(c, "  organization OrganizationScope\n  organization.id String\n"
                        "  organization.slug String?\n  organization.owner Person\n"
                        "  organization.owner.id String\n  team TeamScope?\n  team.id Int\n"),
              "%s", c);
    cr_expect(strstr(c, "(orgId == auth().organization.id)"), "%s", c);
    cr_expect(strstr(c, "(auth().organization.owner.id == ownerId)"), "%s", c);
    /* The owning side compares its own foreign key; a back side walks to
     * the related row's key. */
    cr_expect(strstr(c, "@@allow(12, ((auth().id == ownerId) && (ownerId == auth().id)))"), "%s",
              c);
    cr_expect(strstr(c, "@@deny(4, (owner.profile.id == auth().id))"), "%s", c);
    cr_expect(strstr(c, "@@allow(15, (auth().id == userId))"), "%s", c);
    const cs_auth_block *a = &s->auth;
    int org = -1;
    for (size_t i = 0; i < a->nfields; i++)
        if (strcmp(a->fields[i].name, "organization") == 0)
            org = (int)i;
    cr_assert_geq(org, 0);
    cr_expect(a->fields[org].composite);
    cr_expect_eq(a->fields[org].type, CS_T_JSON);
    cr_expect(a->fields[org + 2].optional, "organization.slug keeps its '?'");
    cstack_schema_free(s);
}

Test(crate_writes, a_model_field_overrides_the_mixin_field_of_the_same_name)
{
    cstack_schema *s = load_fixture("mixin_override.ok.cstack");
    const cs_model *m = &s->models[0];
    cr_assert_eq(m->nfields, 4);
    const char *names[] = {"createdAt", "note", "id", "email"};
    for (size_t i = 0; i < 4; i++)
        cr_expect_str_eq(m->fields[i].name, names[i]);
    cr_expect(m->fields[0].optional, "the model's createdAt DateTime?");
    cr_expect_eq(m->fields[0].def.kind, CS_DEF_NONE, "not the mixin's @default(now())");
    cr_expect_eq(m->nuniques, 0, "the mixin's @unique went with its field");
    cstack *db = NULL;
    cr_assert_eq(cstack_open_in_memory(s, &db), 0);
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(cstack_create(db, "Post", DATA(FV("id", I(1)), FV("email", T("a@b.io"))), NULL),
                 0, "%s", cstack_errmsg(db));
    cr_expect_eq(cstack_create(db, "Post", DATA(FV("id", I(2)), FV("email", T("a@b.io"))), NULL),
                 0, "the same email twice: %s", cstack_errmsg(db));
    int64_t n = -1;
    cstack_filter *f = cstack_filter_cmp("createdAt", CSTACK_OP_EQ, 0, cstack_v_null());
    cr_expect_eq(cstack_count(db, "Post", f, &n), 0, "%s", cstack_errmsg(db));
    cr_expect_eq(n, 2, "no default filled createdAt");
    cstack_filter_free(f);
    cstack_close(db);
    cstack_schema_free(s);
}
