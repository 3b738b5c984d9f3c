/*
 * test_schema.c -- the .cstack schema module: fixture corpus, IR contents,
 * diagnostics, hashing and robustness.
 *
 * Fixtures live in tests/schemas/: NAME.ok.cstack must load with no
 * diagnostic; NAME.fail.cstack must fail with exactly the diagnostics its
 * leading `// expect: LINE:COL: substring` lines list, in source order.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cstack.h"
#include "schema/schema.h"
#include "support.h"
#include "util/buf.h"

#define SCHEMAS CSTACK_TEST_DIR "/schemas"

/* ---- helpers ------------------------------------------------------------ */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Calls fn(path, name) for every fixture; returns how many there were. */
static size_t each_fixture(void (*fn)(const char *path, const char *name))
{
    DIR *d = opendir(SCHEMAS);
    cr_assert_not_null(d, "cannot open %s", SCHEMAS);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!has_suffix(e->d_name, ".cstack"))
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", SCHEMAS, e->d_name);
        fn(path, e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static cstack_schema *load_fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", SCHEMAS, name);
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    int rc = cstack_schema_load(path, &s, &d);
    if (rc != 0) {
        char *txt = cstack_diags_format(d);
        cr_log_error("%s", txt ? txt : "");
        cstack_free(txt);
    }
    cstack_diags_free(d);
    cr_assert_eq(rc, 0, "%s must load", name);
    return s;
}

/* Parses `src`, expecting failure; returns the diagnostics. */
static cstack_diags *parse_fail(const char *src)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    int rc = cstack_schema_parse("test.cstack", src, strlen(src), &s, &d);
    cr_assert_eq(rc, CSTACK_ESCHEMA);
    cr_assert_null(s);
    cr_assert_not_null(d);
    return d;
}

static const cs_model *model(const cstack_schema *s, const char *name)
{
    int i = cs_model_find(s, name);
    cr_assert_geq(i, 0, "model %s", name);
    return &s->models[i];
}

static const cs_field *field(const cs_model *m, const char *name)
{
    int i = cs_field_find(m, name);
    cr_assert_geq(i, 0, "field %s.%s", m->name, name);
    return &m->fields[i];
}

static int fidx(const cs_model *m, const char *name)
{
    int i = cs_field_find(m, name);
    cr_assert_geq(i, 0, "field %s.%s", m->name, name);
    return i;
}

/* ---- fixture corpus ------------------------------------------------------- */

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
    cr_assert_not_null(txt);
    if (has_suffix(name, ".ok.cstack")) {
        cr_expect_eq(rc, 0, "%s: rc %d\n%s", name, rc, txt);
        cr_expect_eq(cstack_diags_count(d), 0, "%s:\n%s", name, txt);
        cr_expect_eq(nexp, 0, "%s: ok fixtures expect nothing", name);
    } else {
        cr_assert(has_suffix(name, ".fail.cstack"), "%s: name says neither ok nor fail", name);
        cr_expect_eq(rc, CSTACK_ESCHEMA, "%s: rc %d", name, rc);
        cr_expect_null(s);
        cr_assert_gt(nexp, 0, "%s: fail fixtures list their expectations", name);
        cr_assert_eq(cstack_diags_count(d), nexp, "%s: %zu diagnostics, expected %zu:\n%s", name,
                     cstack_diags_count(d), nexp, txt);
        for (size_t i = 0; i < nexp; i++) {
            const cstack_diag *g = cstack_diags_get(d, i);
            cr_expect_eq(g->line, exp[i].line, "%s #%zu line: %s", name, i, g->message);
            cr_expect_eq(g->col, exp[i].col, "%s #%zu col: %s", name, i, g->message);
            cr_expect(strstr(g->message, exp[i].text) != NULL, "%s #%zu: '%s' lacks '%s'", name, i,
                      g->message, exp[i].text);
            cr_expect(strstr(g->file, name) != NULL);
        }
    }
    cstack_free(txt);
    cstack_diags_free(d);
    cstack_schema_free(s);
    free(src);
}

Test(schema_fixtures, every_fixture_has_its_expected_outcome)
{
    size_t n = each_fixture(check_fixture);
    cr_expect_geq(n, 45, "only %zu fixtures", n);
}

/* Every prefix of every fixture must parse or fail cleanly (ASan/LSan watch
 * for crashes and leaks); long files are cut at a coarser step. */
static void truncate_fixture(const char *path, const char *name)
{
    size_t len = 0;
    char *src = t_read_file(path, &len);
    cr_assert_not_null(src);
    size_t step = len > 3000 ? len / 1000 : 1;
    for (size_t n = 0; n <= len; n += step) {
        char *copy = malloc(n ? n : 1);
        memcpy(copy, src, n);
        cstack_schema *s = NULL;
        cstack_diags *d = NULL;
        int rc = cstack_schema_parse(name, copy, n, &s, &d);
        cr_assert(rc == 0 || rc == CSTACK_ESCHEMA, "%s[0..%zu): rc %d", name, n, rc);
        cr_assert((rc == 0) == (s != NULL));
        char *txt = cstack_diags_format(d);
        cr_assert_not_null(txt);
        cstack_free(txt);
        cstack_diags_free(d);
        cstack_schema_free(s);
        free(copy);
    }
    free(src);
}

Test(schema_robustness, truncated_prefixes_of_every_fixture)
{
    each_fixture(truncate_fixture);
}

/* Single-byte corruptions of one rich fixture: never a crash or a leak. */
Test(schema_robustness, corrupted_bytes)
{
    size_t len = 0;
    char *src = t_read_file(SCHEMAS "/policies.ok.cstack", &len);
    cr_assert_not_null(src);
    const char repl[] = {'\0', '{', '}', '(', ')', '[', '"', '@', '\n', '\xff', '?', '.'};
    for (size_t i = 0; i < len; i += 3) {
        for (size_t r = 0; r < sizeof(repl); r++) {
            char saved = src[i];
            src[i] = repl[r];
            cstack_schema *s = NULL;
            cstack_diags *d = NULL;
            int rc = cstack_schema_parse("x.cstack", src, len, &s, &d);
            cr_assert(rc == 0 || rc == CSTACK_ESCHEMA);
            cstack_diags_free(d);
            cstack_schema_free(s);
            src[i] = saved;
        }
    }
    free(src);
}

/* ---- IR contents ---------------------------------------------------------- */

Test(schema_ir, spec_example_keys_indexes_and_flags)
{
    cstack_schema *s = load_fixture("spec_example.ok.cstack");
    cr_assert_eq(cstack_schema_model_count(s), 2);
    cr_expect_str_eq(cstack_schema_model_name(s, 0), "Account");
    cr_expect_str_eq(cstack_schema_model_name(s, 1), "Note");
    cr_expect_null(cstack_schema_model_name(s, 2));

    const cs_model *note = model(s, "Note");
    cr_expect_str_eq(note->table, "Note");
    cr_expect_str_eq(note->doc, "A note.");
    cr_assert_eq(note->npk, 1);
    cr_expect_eq(note->pk[0], fidx(note, "id"));
    cr_assert_eq(note->nuniques, 1);
    cr_expect_str_eq(note->uniques[0].name, "Note_ownerId_title_key");
    cr_expect(note->uniques[0].unique);
    cr_assert_eq(note->uniques[0].n, 2);
    cr_expect_eq(note->uniques[0].fields[0], fidx(note, "ownerId"));
    cr_expect_eq(note->uniques[0].fields[1], fidx(note, "title"));
    cr_assert_eq(note->nindexes, 1);
    cr_expect_str_eq(note->indexes[0].name, "Note_ownerId_createdAt_idx");
    cr_expect_not(note->indexes[0].unique);
    cr_expect_eq(note->soft_delete, fidx(note, "deletedAt"));
    cr_expect(note->audit);
    cr_expect_not(note->local);
    cr_expect_eq(note->emit, CS_EMIT_CREATED | CS_EMIT_UPDATED | CS_EMIT_DELETED);

    const cs_field *status = field(note, "status");
    cr_expect_eq(status->type, CS_T_ENUM);
    cr_expect_eq(status->type_index, cs_enum_find(s, "Status"));
    cr_expect_str_eq(status->def.literal, "OPEN");
    cr_expect_eq(field(note, "pinned")->def.kind, CS_DEF_LITERAL);
    cr_expect_str_eq(field(note, "pinned")->def.literal, "0");
    cr_expect_eq(field(note, "createdAt")->def.kind, CS_DEF_NOW);
    cr_expect(field(note, "updatedAt")->updated_at);
    cr_expect(field(note, "body")->optional);
    cr_expect_eq(field(note, "tags")->type, CS_T_JSON);
    cr_expect_eq(field(note, "price")->type, CS_T_DECIMAL);

    const cs_model *acc = model(s, "Account");
    cr_expect_str_eq(acc->doc, "A person who owns notes.");
    cr_assert_eq(acc->nuniques, 1);
    cr_expect_str_eq(acc->uniques[0].name, "Account_email_key");
    cr_expect(field(acc, "email")->is_unique);
    cr_expect_eq(field(acc, "id")->def.kind, CS_DEF_UUID);

    cr_expect_str_eq(s->datasource.name, "db");
    cr_expect_str_eq(s->datasource.provider, "sqlite");
    cr_expect_null(s->datasource.url);
    cr_expect_str_eq(s->datasource.url_env, "DATABASE_URL");
    cr_expect_str_eq(s->auth.name, "User");
    cr_assert_eq(s->auth.nfields, 2);
    cr_expect_eq(s->auth.fields[0].type, CS_T_UUID);
    cr_expect_str_eq(s->auth.fields[1].name, "role");
    cr_assert_eq(s->nenums, 1);
    cr_assert_eq(s->enums[0].nmembers, 2);
    cr_expect_str_eq(s->enums[0].members[1], "DONE");
    cstack_schema_free(s);
}

Test(schema_ir, relations_resolve_both_ways)
{
    cstack_schema *s = load_fixture("spec_example.ok.cstack");
    const cs_model *note = model(s, "Note"), *acc = model(s, "Account");
    const cs_field *owner = field(note, "owner");
    cr_assert_eq(owner->type, CS_T_MODEL);
    cr_assert_not_null(owner->rel);
    cr_expect_eq(owner->rel->target, cs_model_find(s, "Account"));
    cr_assert_eq(owner->rel->nfields, 1);
    cr_expect_eq(owner->rel->fields[0], fidx(note, "ownerId"));
    cr_expect_eq(owner->rel->refs[0], fidx(acc, "id"));
    cr_expect_eq(owner->rel->on_delete, CS_ACT_CASCADE);
    cr_expect_eq(owner->rel->on_update, CS_ACT_DEFAULT);
    cr_expect_eq(owner->rel->back_field, -1);
    cr_expect_not(owner->rel->to_many);
    const cs_field *notes = field(acc, "notes");
    cr_assert_not_null(notes->rel);
    cr_expect_eq(notes->rel->nfields, 0);
    cr_expect(notes->rel->to_many);
    cr_expect(notes->list);
    cr_expect_eq(notes->rel->back_field, fidx(note, "owner"));
    cr_expect_not(cs_field_is_column(notes));
    cstack_schema_free(s);

    s = load_fixture("relations.ok.cstack");
    const cs_model *user = model(s, "User"), *post = model(s, "Post"), *prof = model(s, "Profile");
    /* Named relations between the same two models. */
    cr_expect_eq(field(user, "posts")->rel->back_field, fidx(post, "author"));
    cr_expect_eq(field(user, "edits")->rel->back_field, fidx(post, "editor"));
    cr_expect_str_eq(field(post, "editor")->rel->name, "editor");
    cr_expect_str_eq(field(post, "author")->rel->name, "author");
    /* One-to-one: optional back side. */
    const cs_field *profile = field(user, "profile");
    cr_expect_not(profile->rel->to_many);
    cr_expect_eq(profile->rel->back_field, fidx(prof, "user"));
    cr_expect_eq(field(prof, "user")->rel->on_update, CS_ACT_RESTRICT);
    /* Self relation. */
    cr_expect_eq(field(user, "reports")->rel->back_field, fidx(user, "manager"));
    cr_expect_eq(field(user, "manager")->rel->on_delete, CS_ACT_SET_NULL);
    /* Composite foreign key onto a composite primary key. */
    const cs_model *team = model(s, "Team"), *org = model(s, "Org");
    const cs_relation *r = field(team, "org")->rel;
    cr_assert_eq(r->nfields, 2);
    cr_expect_eq(r->fields[1], fidx(team, "orgCode"));
    cr_expect_eq(r->refs[0], fidx(org, "region"));
    cr_expect_eq(r->refs[1], fidx(org, "code"));
    cr_expect_eq(r->on_delete, CS_ACT_NO_ACTION);
    cr_assert_eq(org->npk, 2);
    cr_expect_eq(field(org, "teams")->rel->back_field, fidx(team, "org"));
    /* A relation onto a unique field rather than the primary key. */
    cr_expect_eq(field(model(s, "ByEmail"), "user")->rel->refs[0], fidx(user, "email"));
    cstack_schema_free(s);
}

Test(schema_ir, composite_primary_key)
{
    cstack_schema *s = load_fixture("composite_id.ok.cstack");
    const cs_model *m = model(s, "Membership");
    cr_assert_eq(m->npk, 2);
    cr_expect_eq(m->pk[0], fidx(m, "orgId"));
    cr_expect_eq(m->pk[1], fidx(m, "userId"));
    cr_expect_not(field(m, "orgId")->is_id);
    cr_assert_eq(m->nindexes, 1);
    cr_expect_str_eq(m->indexes[0].name, "Membership_userId_idx");
    cstack_schema_free(s);
}

Test(schema_ir, defaults_are_canonical)
{
    cstack_schema *s = load_fixture("defaults.ok.cstack");
    const cs_model *m = model(s, "Defaults");
    static const struct {
        const char *field;
        cs_default_kind kind;
        const char *literal;
    } cases[] = {
        {"id", CS_DEF_CUID, NULL},
        {"uid", CS_DEF_LITERAL, "6f9619ff-8b86-d011-b42d-00c04fc964ff"},
        {"sid", CS_DEF_UUID, NULL},
        {"cid", CS_DEF_CUID, NULL},
        {"n", CS_DEF_LITERAL, "-42"},
        {"big", CS_DEF_LITERAL, "9223372036854775807"},
        {"f", CS_DEF_LITERAL, "2.5e3"},
        {"d", CS_DEF_LITERAL, "0.00"},
        {"d2", CS_DEF_LITERAL, "1.10"},
        {"yes", CS_DEF_LITERAL, "1"},
        {"no", CS_DEF_LITERAL, "0"},
        {"s", CS_DEF_LITERAL, "it's \"quoted\""},
        {"at", CS_DEF_LITERAL, "2026-11-26T08:40:21.000000Z"},
        {"now", CS_DEF_NOW, NULL},
        {"level", CS_DEF_LITERAL, "MID"},
        {"touched", CS_DEF_NONE, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const cs_field *f = field(m, cases[i].field);
        cr_expect_eq(f->def.kind, cases[i].kind, "%s", cases[i].field);
        if (cases[i].literal)
            cr_expect_str_eq(f->def.literal, cases[i].literal, "%s", cases[i].field);
        else
            cr_expect_null(f->def.literal, "%s", cases[i].field);
    }
    cr_expect(field(m, "touched")->updated_at);
    cstack_schema_free(s);
}

Test(schema_ir, maps_and_model_flags)
{
    cstack_schema *s = load_fixture("maps_and_attrs.ok.cstack");
    const cs_model *m = model(s, "Event");
    cr_expect_str_eq(m->table, "events");
    cr_expect_str_eq(field(m, "id")->column, "event_id");
    cr_expect_str_eq(field(m, "kind")->column, "event_kind");
    cr_expect_str_eq(field(m, "kind")->name, "kind");
    cr_assert_eq(m->nuniques, 1);
    cr_expect_str_eq(m->uniques[0].name, "events_event_kind_deleted_at_key");
    cr_assert_eq(m->nindexes, 1);
    cr_expect_str_eq(m->indexes[0].name, "events_event_kind_idx");
    cr_expect_eq(m->soft_delete, fidx(m, "deletedAt"));
    cr_expect(m->audit);
    cr_expect(m->local);
    cr_expect_eq(m->emit, CS_EMIT_CREATED);
    cr_expect_eq(model(s, "Log")->emit, CS_EMIT_CREATED | CS_EMIT_UPDATED | CS_EMIT_DELETED);
    cr_expect_eq(model(s, "Log")->soft_delete, -1);
    cr_expect_str_eq(s->datasource.provider, "postgresql");
    cr_expect_str_eq(s->datasource.url, "postgres://localhost/app");
    cr_expect_null(s->auth.name);
    cstack_schema_free(s);
}

Test(schema_ir, unique_sets_in_declaration_order)
{
    cstack_schema *s = t_schema("model M {\n"
                                "  id Int @id\n"
                                "  a  Int @unique\n"
                                "  b  Int\n"
                                "  c  Int @unique @map(\"cc\")\n"
                                "  @@unique([b, a])\n"
                                "}\n");
    const cs_model *m = model(s, "M");
    cr_assert_eq(m->nuniques, 3);
    cr_expect_str_eq(m->uniques[0].name, "M_a_key");
    cr_expect_str_eq(m->uniques[1].name, "M_cc_key");
    cr_expect_str_eq(m->uniques[2].name, "M_b_a_key");
    cr_expect_eq(m->uniques[2].fields[0], fidx(m, "b"));
    cstack_schema_free(s);
}

/* ---- policies --------------------------------------------------------------- */

Test(schema_policy, spec_example_ast_shape)
{
    cstack_schema *s = load_fixture("spec_example.ok.cstack");
    const cs_model *m = model(s, "Note");
    cr_assert_eq(m->npolicies, 3);
    const cs_policy *p0 = &m->policies[0];
    cr_expect_not(p0->deny);
    cr_expect_eq(p0->ops, CS_POL_READ);
    /* auth() != null && ownerId == auth().id */
    const cs_expr *e = p0->expr;
    cr_assert_eq(e->kind, CS_E_BINARY);
    cr_expect_eq(e->op, CS_OP_AND);
    cr_expect_eq(e->vtype, CS_T_BOOLEAN);
    cr_assert_eq(e->lhs->kind, CS_E_BINARY);
    cr_expect_eq(e->lhs->op, CS_OP_NE);
    cr_expect_eq(e->lhs->lhs->kind, CS_E_AUTH);
    cr_expect_eq(e->lhs->rhs->kind, CS_E_NULL);
    const cs_expr *eq = e->rhs;
    cr_assert_eq(eq->kind, CS_E_BINARY);
    cr_expect_eq(eq->op, CS_OP_EQ);
    cr_assert_eq(eq->lhs->kind, CS_E_FIELD);
    cr_assert_eq(eq->lhs->npath, 1);
    cr_expect_str_eq(eq->lhs->path[0], "ownerId");
    cr_expect_eq(eq->lhs->vtype, CS_T_UUID);
    cr_assert_eq(eq->rhs->kind, CS_E_AUTH_FIELD);
    cr_expect_str_eq(eq->rhs->text, "id");
    cr_expect_eq(eq->rhs->vtype, CS_T_UUID);

    cr_expect_eq(m->policies[1].ops, CS_POL_CREATE | CS_POL_UPDATE | CS_POL_DELETE);
    const cs_policy *p2 = &m->policies[2];
    cr_expect(p2->deny);
    cr_expect_eq(p2->ops, CS_POL_DELETE);
    cr_expect_eq(p2->expr->kind, CS_E_FIELD);
    cr_expect_eq(p2->expr->vtype, CS_T_BOOLEAN);
    cstack_schema_free(s);
}

Test(schema_policy, predicates_paths_and_enum_members)
{
    cstack_schema *s = load_fixture("policies.ok.cstack");
    const cs_model *note = model(s, "Note");
    cr_assert_eq(note->npolicies, 7);
    /* 'all', auth().role == ADMIN: the bare member binds to enum Role. */
    cr_expect_eq(note->policies[0].ops, CS_POL_ALL);
    const cs_expr *e = note->policies[0].expr;
    cr_expect_eq(e->lhs->vtype, CS_T_ENUM);
    cr_assert_eq(e->rhs->kind, CS_E_ENUM);
    cr_expect_str_eq(e->rhs->text, "ADMIN");
    cr_expect_eq(e->rhs->type_index, cs_enum_find(s, "Role"));
    /* owner.orgId == auth().orgId && status != DONE */
    e = note->policies[1].expr;
    cr_assert_eq(e->lhs->lhs->npath, 2);
    cr_expect_str_eq(e->lhs->lhs->path[0], "owner");
    cr_expect_str_eq(e->lhs->lhs->path[1], "orgId");
    cr_expect_eq(e->lhs->lhs->vtype, CS_T_INT);
    cr_expect_eq(e->rhs->rhs->kind, CS_E_ENUM);
    cr_expect_eq(e->rhs->rhs->type_index, cs_enum_find(s, "Status"));
    /* tags?[..] && tags![..] && tags^[..]: left-associative && */
    e = note->policies[3].expr;
    cr_assert_eq(e->kind, CS_E_BINARY);
    cr_expect_eq(e->rhs->kind, CS_E_NONE);
    cr_expect_eq(e->lhs->lhs->kind, CS_E_SOME);
    cr_expect_eq(e->lhs->rhs->kind, CS_E_EVERY);
    const cs_expr *some = e->lhs->lhs;
    cr_expect_str_eq(some->path[0], "tags");
    cr_expect_eq(some->vtype, CS_T_BOOLEAN);
    cr_assert_eq(some->lhs->kind, CS_E_BINARY);
    cr_expect_str_eq(some->lhs->lhs->path[0], "name"); /* a field of Tag */
    cr_expect_eq(some->lhs->lhs->vtype, CS_T_STRING);
    /* Uuid and DateTime literals are canonicalised. */
    e = note->policies[4].expr;
    cr_expect_str_eq(e->lhs->rhs->text, "2026-01-01T00:00:00.000000Z");
    cr_expect_str_eq(e->rhs->rhs->text, "6f9619ff-8b86-d011-b42d-00c04fc964ff");
    /* Nested predicate on another model: org.members?[id == auth().id]. */
    e = model(s, "Account")->policies[0].expr;
    cr_expect_eq(e->kind, CS_E_SOME);
    cr_assert_eq(e->npath, 2);
    cr_expect_str_eq(e->path[1], "members");
    /* null takes the type of the other side. */
    e = note->policies[5].expr->lhs->rhs;
    cr_expect_eq(e->rhs->kind, CS_E_NULL);
    cr_expect_eq(e->rhs->vtype, CS_T_STRING);
    cstack_schema_free(s);
}

Test(schema_policy, precedence)
{
    cstack_schema *s = t_schema("model M {\n"
                                "  id Int @id\n"
                                "  a Boolean\n"
                                "  b Boolean\n"
                                "  c Boolean\n"
                                "  @@allow('read', a || b && !c == false)\n"
                                "}\n");
    const cs_expr *e = model(s, "M")->policies[0].expr;
    /* a || (b && ((!c) == false)) */
    cr_assert_eq(e->kind, CS_E_BINARY);
    cr_expect_eq(e->op, CS_OP_OR);
    cr_expect_eq(e->lhs->kind, CS_E_FIELD);
    cr_assert_eq(e->rhs->op, CS_OP_AND);
    const cs_expr *cmp = e->rhs->rhs;
    cr_assert_eq(cmp->kind, CS_E_BINARY);
    cr_expect_eq(cmp->op, CS_OP_EQ);
    cr_expect_eq(cmp->lhs->kind, CS_E_NOT);
    cr_expect_eq(cmp->rhs->kind, CS_E_BOOL);
    cr_expect_not(cmp->rhs->bval);
    cstack_schema_free(s);
}

/* ---- hash ------------------------------------------------------------------- */

static const char *const base_schema = "model Note {\n"
                                       "  id    Int    @id\n"
                                       "  title String @default(\"x\")\n"
                                       "  @@allow('read', id > 0 && title != null)\n"
                                       "}\n";

static char *hash_of(const char *src)
{
    cstack_schema *s = t_schema(src);
    char *h = strdup(cstack_schema_hash(s));
    cr_expect_eq(strlen(h), 64);
    cstack_schema_free(s);
    return h;
}

Test(schema_hash, stable_under_comments_and_layout)
{
    char *a = hash_of(base_schema);
    char *b = hash_of("// a comment\n/// a doc comment\nmodel   Note{ id Int @id\n"
                      "/// doc\n title String   @default('x') // trailing\n"
                      "  @@allow(\"read\",(id>0)&&(title!=null)) }\n");
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
}

Test(schema_hash, changes_with_semantics)
{
    static const char *const variants[] = {
        "model Note {\n  id Int @id\n  title String @default(\"y\")\n"
        "  @@allow('read', id > 0 && title != null)\n}\n",
        "model Note {\n  id Int @id\n  title String? @default(\"x\")\n"
        "  @@allow('read', id > 0 && title != null)\n}\n",
        "model Note {\n  id Int @id\n  title String @default(\"x\") @map(\"t\")\n"
        "  @@allow('read', id > 0 && title != null)\n}\n",
        "model Note {\n  id Int @id\n  title String @default(\"x\")\n"
        "  @@allow('read', id > 1 && title != null)\n}\n",
        "model Note {\n  id Int @id\n  title String @default(\"x\")\n"
        "  @@allow('read,update', id > 0 && title != null)\n}\n",
        "model Note {\n  id Int @id\n  title String @default(\"x\")\n"
        "  @@allow('read', id > 0 && title != null)\n  @@audit\n}\n",
        "model Note {\n  id Int @id\n  title String @default(\"x\") @unique\n"
        "  @@allow('read', id > 0 && title != null)\n}\n",
        "model Note {\n  id Int @id\n  title String @default(\"x\")\n"
        "  @@deny('read', id > 0 && title != null)\n}\n",
    };
    char *base = hash_of(base_schema);
    for (size_t i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
        char *h = hash_of(variants[i]);
        cr_expect_str_neq(base, h, "variant %zu has the same hash", i);
        free(h);
    }
    free(base);
}

Test(schema_hash, canonical_text_is_kept)
{
    cstack_schema *s = t_schema(base_schema);
    cr_assert_not_null(s->canonical);
    cr_expect(strstr(s->canonical, "model Note {") != NULL);
    char hex[65];
    cs_sha256_hex(s->canonical, strlen(s->canonical), hex);
    cr_expect_str_eq(hex, s->hash);
    cstack_schema_free(s);
}

/* ---- diagnostics ------------------------------------------------------------ */

Test(schema_diags, three_unrelated_mistakes_give_three_diagnostics)
{
    cstack_diags *d = parse_fail("model Note {\n"
                                 "  id    Int @id\n"
                                 "  title Strng\n"
                                 "}\n"
                                 "model Tag { name String }\n"
                                 "model Post {\n"
                                 "  id Int @id\n"
                                 "  @@allow('read', ownr == 1)\n"
                                 "}\n");
    cr_assert_eq(cstack_diags_count(d), 3);
    cr_expect_str_eq(cstack_diags_get(d, 0)->message,
                     "unknown type 'Strng' for field 'Note.title'");
    cr_expect_str_eq(cstack_diags_get(d, 1)->message,
                     "model 'Tag' has no primary key (add @id or @@id)");
    cr_expect_str_eq(cstack_diags_get(d, 2)->message,
                     "policy on 'Post' names unknown field 'ownr'");
    cr_expect_null(cstack_diags_get(d, 3));
    cstack_diags_free(d);
}

Test(schema_diags, format_has_location_source_line_and_caret)
{
    cstack_diags *d = parse_fail("model Note {\n  id Int @id\n  title Strng\n}\n");
    char *txt = cstack_diags_format(d);
    cr_assert_not_null(txt);
    cr_expect_str_eq(txt, "test.cstack:3:9: unknown type 'Strng' for field 'Note.title'\n"
                          "  title Strng\n"
                          "        ^\n");
    const cstack_diag *g = cstack_diags_get(d, 0);
    cr_expect_str_eq(g->file, "test.cstack");
    cr_expect_eq(g->line, 3);
    cr_expect_eq(g->col, 9);
    cstack_free(txt);
    cstack_diags_free(d);
}

/* The formatted diagnostic of `src`, which must have exactly one: its source
 * line (the second line of the text) in *shown and the caret's offset in it
 * in *caret.  Returns the whole text (free with cstack_free). */
static char *format_one(const char *src, size_t len, const char **shown, size_t *shown_len,
                        size_t *caret)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    cr_assert_eq(cstack_schema_parse("long.cstack", src, len, &s, &d), CSTACK_ESCHEMA);
    cr_assert_eq(cstack_diags_count(d), 1);
    char *txt = cstack_diags_format(d);
    cstack_diags_free(d);
    cr_assert_not_null(txt);
    char *line = strchr(txt, '\n');
    cr_assert_not_null(line);
    line++;
    char *caret_line = strchr(line, '\n');
    cr_assert_not_null(caret_line);
    *shown = line;
    *shown_len = (size_t)(caret_line - line);
    caret_line++;
    *caret = strcspn(caret_line, "^");
    cr_assert_str_eq(caret_line + *caret, "^\n", "%s", txt);
    return txt;
}

Test(schema_diags, a_long_line_shows_a_window_around_the_column_with_the_caret_in_place)
{
    /* A 10 MB line with the mistake in its middle. */
    size_t pad = (size_t)5 << 20;
    cs_buf b = CS_BUF_INIT;
    b.max = (size_t)32 << 20;
    cs_buf_puts(&b, "model Note {\n  id Int @id\n");
    for (size_t i = 0; i < pad; i++)
        cs_buf_putc(&b, ' ');
    cs_buf_puts(&b, "title Strng");
    for (size_t i = 0; i < pad; i++)
        cs_buf_putc(&b, ' ');
    cs_buf_puts(&b, "\n}\n");
    const char *shown;
    size_t n, caret;
    char *txt = format_one(b.data, b.len, &shown, &n, &caret);
    cr_expect_lt(strlen(txt), 400, "the diagnostic is %zu bytes", strlen(txt));
    cr_expect(n >= 120 && n <= 126, "the window is %zu bytes", n);
    cr_expect(strncmp(shown, "...", 3) == 0 && strncmp(shown + n - 3, "...", 3) == 0, "%s", txt);
    cr_expect(strncmp(shown + caret, "Strng", 5) == 0, "%s", txt);
    cstack_free(txt);
    cs_buf_free(&b);

    /* Multi-byte characters on both sides are never cut in half. */
    cs_buf_puts(&b, "model Note {\n  id Int @id\n  title String @default(\"");
    for (int i = 0; i < 200; i++)
        cs_buf_puts(&b, "\xc3\xa9");
    cs_buf_puts(&b, "\") @bogus // ");
    for (int i = 0; i < 200; i++)
        cs_buf_puts(&b, "\xc3\xa9");
    cs_buf_puts(&b, "\n}\n");
    txt = format_one(b.data, b.len, &shown, &n, &caret);
    cr_expect(strncmp(shown, "...\xc3\xa9", 5) == 0, "%s", txt);
    cr_expect(strncmp(shown + n - 5, "\xc3\xa9...", 5) == 0, "%s", txt);
    /* The caret line has one space per character: 'é' is two bytes. */
    const char *bogus = strstr(shown, "@bogus");
    cr_assert_not_null(bogus);
    size_t chars = 0;
    for (const char *p = shown; p < bogus; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    cr_expect_eq(caret, chars, "%s", txt);
    cstack_free(txt);
    cs_buf_free(&b);

    /* A long run of stray continuation bytes (not UTF-8) is cut anywhere,
     * never before the window's start (found by fuzz_schema). */
    cs_buf_puts(&b, "model Note {\n  id Int u\"abc)\n");
    for (int i = 0; i < 300; i++)
        cs_buf_putc(&b, '\xbe');
    cs_buf_puts(&b, "  body String\n}\n");
    cstack_diags *d = NULL;
    cstack_schema *s = NULL;
    cr_expect_neq(cstack_schema_parse("stray.cstack", b.data, b.len, &s, &d), CSTACK_OK);
    txt = cstack_diags_format(d);
    cr_expect_not_null(txt);
    cr_expect_lt(strlen(txt), 4000, "%s", txt);
    cstack_free(txt);
    cstack_diags_free(d);
    cs_buf_free(&b);

    /* A line that fits is shown whole, as before. */
    cs_buf_puts(&b, "model Note {\n  id Int @id\n  title Strng\n}\n");
    txt = format_one(b.data, b.len, &shown, &n, &caret);
    cr_expect_eq(n, strlen("  title Strng"));
    cr_expect_eq(caret, 8);
    cstack_free(txt);
    cs_buf_free(&b);
}

Test(schema_diags, sorted_in_source_order)
{
    /* The validator's error (line 2) is found after the parser's (line 4). */
    cstack_diags *d = parse_fail("model A {\n  x Strng\n  id Int @id\n  @@bogus\n}\n");
    cr_assert_eq(cstack_diags_count(d), 2);
    cr_expect_eq(cstack_diags_get(d, 0)->line, 2);
    cr_expect_eq(cstack_diags_get(d, 1)->line, 4);
    cstack_diags_free(d);
}

Test(schema_diags, too_many_errors_are_capped)
{
    cs_buf b = CS_BUF_INIT;
    cs_buf_puts(&b, "model M {\n  id Int @id\n");
    for (int i = 0; i < 150; i++)
        cs_buf_printf(&b, "  f%d Nope\n", i);
    cs_buf_puts(&b, "}\n");
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    int rc = cstack_schema_parse("many.cstack", b.data, b.len, &s, &d);
    cr_expect_eq(rc, CSTACK_ESCHEMA);
    cr_assert_eq(cstack_diags_count(d), 101);
    cr_expect(strstr(cstack_diags_get(d, 100)->message, "too many errors") != NULL);
    cr_expect_eq(cstack_diags_get(d, 99)->line, 102);
    cstack_diags_free(d);
    cs_buf_free(&b);
}

Test(schema_diags, unreadable_file)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    const char *path = CSTACK_TEST_DIR "/schemas/does-not-exist.cstack";
    int rc = cstack_schema_load(path, &s, &d);
    cr_expect_eq(rc, CSTACK_EIO);
    cr_expect_null(s);
    cr_assert_eq(cstack_diags_count(d), 1);
    char *txt = cstack_diags_format(d);
    char want[1024];
    snprintf(want, sizeof(want), "%s:1:1: cannot read file: No such file or directory\n", path);
    cr_expect_str_eq(txt, want);
    cstack_free(txt);
    cstack_diags_free(d);
    /* A directory is unreadable as a file too. */
    rc = cstack_schema_load(CSTACK_TEST_DIR, &s, &d);
    cr_expect_eq(rc, CSTACK_EIO);
    cr_expect_eq(cstack_diags_count(d), 1);
    cstack_diags_free(d);
}

Test(schema_diags, source_over_16_mib_is_refused)
{
    size_t n = ((size_t)16 << 20) + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    cr_expect_eq(cstack_schema_parse("big.cstack", big, n, &s, &d), CSTACK_ETOOBIG);
    cr_expect_null(s);
    cr_expect_eq(cstack_diags_count(d), 1);
    cstack_diags_free(d);
    /* Exactly at the limit is fine (and empty of models). */
    cr_expect_eq(cstack_schema_parse("big.cstack", big, n - 1, &s, NULL), 0);
    cr_expect_eq(cstack_schema_model_count(s), 0);
    cstack_schema_free(s);
    free(big);
}

/* ---- API edges ---------------------------------------------------------- */

Test(schema_api, empty_source_and_null_arguments)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    cr_assert_eq(cstack_schema_parse("e.cstack", NULL, 0, &s, &d), 0);
    cr_expect_eq(cstack_schema_model_count(s), 0);
    cr_expect_eq(cstack_diags_count(d), 0);
    cr_expect_eq(strlen(cstack_schema_hash(s)), 64);
    char *txt = cstack_diags_format(d);
    cr_expect_str_eq(txt, "");
    cstack_free(txt);
    cstack_diags_free(d);
    cstack_schema_free(s);
    cr_expect_eq(cstack_schema_parse("e.cstack", "", 0, NULL, NULL), CSTACK_EMISUSE);
    cstack_schema_free(NULL);
    cstack_diags_free(NULL);
    cr_expect_eq(cstack_diags_count(NULL), 0);
    cr_expect_null(cstack_diags_get(NULL, 0));
}

Test(schema_api, refcount_keeps_schema_alive)
{
    cstack_schema *s = t_schema("model M { id Int @id }");
    cr_expect_eq(s->refcount, 1);
    cstack_schema *r = cs_schema_retain(s);
    cr_expect_eq(r, s);
    cr_expect_eq(s->refcount, 2);
    cstack_schema_free(s);
    cr_expect_str_eq(cstack_schema_model_name(r, 0), "M");
    cstack_schema_free(r);
}

Test(schema_api, lookups)
{
    cstack_schema *s = load_fixture("spec_example.ok.cstack");
    cr_expect_eq(cs_model_find(s, "Note"), 1);
    cr_expect_eq(cs_model_find(s, "note"), -1);
    cr_expect_eq(cs_enum_find(s, "Status"), 0);
    cr_expect_eq(cs_enum_find(s, "Nope"), -1);
    cr_expect_eq(cs_enum_member(&s->enums[0], "DONE", 4), 1);
    cr_expect_eq(cs_enum_member(&s->enums[0], "DONEX", 4), 1);
    cr_expect_eq(cs_enum_member(&s->enums[0], "DON", 3), -1);
    cr_expect_eq(cs_field_find(model(s, "Note"), "title"), 1);
    cr_expect_eq(cs_field_find(model(s, "Note"), "nope"), -1);
    cr_expect_str_eq(cs_scalar_name(CS_T_DATETIME), "DateTime");
    cr_expect_str_eq(cs_scalar_name(CS_T_DECIMAL), "Decimal");
    cr_expect_str_eq(cs_scalar_name(CS_T_ENUM), "enum");
    cr_expect_str_eq(cs_scalar_name(CS_T_MODEL), "model");
    cstack_schema_free(s);
}

Test(schema_api, docs_attach_to_the_next_declaration)
{
    cstack_schema *s = t_schema("/// first line\n/// second line\nenum E { A }\n"
                                "model M {\n  /// the key\n  id Int @id\n  x E\n}\n");
    cr_expect_str_eq(s->enums[0].doc, "first line\nsecond line");
    cr_expect_null(s->models[0].doc);
    cr_expect_str_eq(s->models[0].fields[0].doc, "the key");
    cr_expect_null(s->models[0].fields[1].doc);
    cstack_schema_free(s);
}
