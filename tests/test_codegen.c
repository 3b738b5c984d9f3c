/*
 * test_codegen.c -- the typed C API generator (src/codegen/, `cstack gen`):
 * the code it writes for every valid schema fixture and example compiles
 * warning-free with gcc and clang (strict flags, and as C++ for the header);
 * names are renamed away from C keywords, library names and each other;
 * output is deterministic; names that cannot be made unique are reported.
 *
 * The generated API itself is exercised end to end by
 * tests/codegen/typed_e2e.c, built through the cstack_generate() CMake
 * function, and by the examples.
 */
#include <criterion/criterion.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codegen/codegen.h"
#include "cstack.h"
#include "support.h"

/* The flags of the brief (-std=c11 -Wall -Wextra -Werror -pedantic) plus the
 * stricter ones an application might use. */
#define STRICT                                                                                     \
    "-std=c11 -Wall -Wextra -Werror -pedantic -Wshadow -Wconversion -Wsign-conversion "            \
    "-Wmissing-prototypes -Wstrict-prototypes -Wcast-qual -Wundef"

static bool have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return t_run(cmd, NULL) == 0;
}

static cstack_schema *load(const char *path)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    int rc = cstack_schema_load(path, &s, &d);
    cstack_diags_free(d);
    cr_assert_eq(rc, 0, "%s must be a valid schema", path);
    return s;
}

static void write_file(const char *dir, const char *name, const cs_buf *b)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(b->data, 1, b->len, f), b->len);
    fclose(f);
}

/* Generates `base`.h/.c for the schema at `path` into `dir`. */
static void generate(const char *path, const char *dir, const char *base)
{
    cstack_schema *s = load(path);
    cs_buf h = CS_BUF_INIT, c = CS_BUF_INIT;
    char err[512] = "";
    int rc = cs_codegen(s, base, &h, &c, err, sizeof err);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "%s: cs_codegen failed: %s", path, err);
    char name[300];
    snprintf(name, sizeof name, "%s.h", base);
    write_file(dir, name, &h);
    snprintf(name, sizeof name, "%s.c", base);
    write_file(dir, name, &c);
    cs_buf_free(&h);
    cs_buf_free(&c);
}

/* Compiles dir/base.c with `cc`; returns the exit status, printing the
 * compiler's complaints into the test log. */
static int compile(const char *cc, const char *dir, const char *base, const char *label)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && %s " STRICT " -I'%s/include' -c %s.c -o %s.%s.o 2>&1",
             dir, cc, CSTACK_SOURCE_DIR, base, base, cc);
    char *out = NULL;
    int rc = t_run(cmd, &out);
    if (rc != 0)
        cr_log_error("%s (%s):\n%s", label, cc, out);
    free(out);
    return rc;
}

/* The header alone, as C++ (it has extern "C" guards and no C-only
 * syntax). */
static int compile_cxx(const char *dir, const char *base, const char *label)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s' && g++ -std=c++11 -Wall -Wextra -Werror -pedantic -I'%s/include' "
             "-fsyntax-only -x c++ %s.h 2>&1",
             dir, CSTACK_SOURCE_DIR, base);
    char *out = NULL;
    int rc = t_run(cmd, &out);
    if (rc != 0)
        cr_log_error("%s (g++):\n%s", label, out);
    free(out);
    return rc;
}

/* Every schema that must generate: valid fixtures, the examples (flat and
 * one per folder), codegen fixtures and benchmark schemas. */
static void find_schemas(glob_t *g)
{
    static const char *const patterns[] = {
        CSTACK_TEST_DIR "/schemas/*.ok.cstack", CSTACK_TEST_DIR "/codegen/*.cstack",
        CSTACK_SOURCE_DIR "/examples/*.cstack", CSTACK_SOURCE_DIR "/examples/*/*.cstack",
        CSTACK_SOURCE_DIR "/bench/*.cstack"};
    memset(g, 0, sizeof *g);
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        int rc = glob(patterns[i], i ? GLOB_APPEND : 0, NULL, g);
        cr_assert(rc == 0 || rc == GLOB_NOMATCH, "glob %s", patterns[i]);
    }
}

Test(codegen, every_valid_schema_compiles_with_gcc_and_clang, .timeout = 600)
{
    const char *compilers[2] = {"gcc", "clang"};
    bool cxx = have("g++");
    glob_t g;
    find_schemas(&g);
    cr_assert_geq(g.gl_pathc, 10, "expected the fixtures, found %zu schemas", g.gl_pathc);
    char *dir = t_tmpdir();
    size_t compiled = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        char sub[1100], base[64];
        snprintf(sub, sizeof sub, "%s/%zu", dir, i);
        cr_assert_eq(mkdir(sub, 0700), 0);
        snprintf(base, sizeof base, "gen%zu", i);
        generate(path, sub, base);
        for (int k = 0; k < 2; k++) {
            if (!have(compilers[k]))
                continue;
            cr_expect_eq(compile(compilers[k], sub, base, path), 0, "%s: %s rejects the code", path,
                         compilers[k]);
            compiled++;
        }
        if (cxx)
            cr_expect_eq(compile_cxx(sub, base, path), 0, "%s: the header is not C++", path);
    }
    cr_expect_gt(compiled, 0, "no C compiler found");
    globfree(&g);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    t_run(cmd, NULL);
    free(dir);
}

/* ---- in-memory generation ---- */

typedef struct gen {
    cs_buf h, c;
    char err[512];
    int rc;
} gen;

static void gen_text(gen *out, const char *src, const char *base)
{
    memset(out, 0, sizeof *out);
    cstack_schema *s = t_schema(src);
    out->rc = cs_codegen(s, base, &out->h, &out->c, out->err, sizeof out->err);
    cstack_schema_free(s);
}

static void gen_free(gen *g)
{
    cs_buf_free(&g->h);
    cs_buf_free(&g->c);
}

static void gen_file(gen *out, const char *path, const char *base)
{
    memset(out, 0, sizeof *out);
    cstack_schema *s = load(path);
    out->rc = cs_codegen(s, base, &out->h, &out->c, out->err, sizeof out->err);
    cstack_schema_free(s);
}

#define HAS(g, text) cr_expect(strstr((g)->h.data, (text)) != NULL, "header lacks: %s", (text))
#define LACKS(g, text) cr_expect(strstr((g)->h.data, (text)) == NULL, "header has: %s", (text))

Test(codegen, spec_names_exist)
{
    gen g;
    gen_file(&g, CSTACK_TEST_DIR "/schemas/spec_example.ok.cstack", "app");
    cr_assert_eq(g.rc, 0, "%s", g.err);
    static const char *const expected[] = {
        "typedef struct note {",
        "typedef struct note_list {",
        "typedef struct note_create_input {",
        "typedef struct note_update_input {",
        "typedef enum status_t {",
        "STATUS_OPEN,",
        "extern const char *const note_model;",
        "extern const char *const note_fields[NOTE_FIELD_COUNT];",
        "int note_create(cstack *db, const note_create_input *in, note *out);",
        "int note_find_unique_by_id(cstack *db, const char *id, note *out, bool *found);",
        "int note_find_unique_by_ownerId_title(cstack *db, const char *ownerId, const char "
        "*title,",
        "int note_find_many(cstack *db, const cstack_query *query, note_list *out);",
        "int note_update_by_id(cstack *db, const char *id, const note_update_input *in, note "
        "*out);",
        "int note_delete_by_id(cstack *db, const char *id, note *out);",
        "void note_free(note *obj);",
        "void note_list_free(note_list *obj);",
        "cstack_filter *note_pinned_is_true(void);",
        "cstack_filter *note_pinned_is_false(void);",
        "cstack_order note_createdAt_desc(void);",
        "cstack_filter *note_title_contains(const char *pattern);",
        "cstack_filter *note_title_starts_with_ci(const char *pattern);",
        "cstack_filter *note_price_gt(const char *value);",
        "cstack_filter *note_status_in(const status_t *values, size_t n);",
        "cstack_filter *note_body_is_null(void);",
        "cstack_filter *note_body_is_not_null(void);",
        "cstack_filter *note_owner_is(cstack_filter *sub);",
        "cstack_filter *account_notes_some(cstack_filter *sub);",
        "cstack_filter *account_notes_every(cstack_filter *sub);",
        "cstack_filter *account_notes_none(cstack_filter *sub);",
        "bool has_status;",
        "bool set_title;",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        HAS(&g, expected[i]);
    /* No comparison helpers for Json, no ordering of Json. */
    LACKS(&g, "note_tags_eq");
    LACKS(&g, "note_tags_asc");
    /* Required fields have no is_null helper. */
    LACKS(&g, "note_title_is_null");
    gen_free(&g);
}

Test(codegen, colliding_names_are_renamed)
{
    gen g;
    gen_file(&g, CSTACK_TEST_DIR "/codegen/names.cstack", "names");
    cr_assert_eq(g.rc, 0, "%s", g.err);
    static const char *const expected[] = {
        "typedef struct char_m {",         /* keyword */
        "typedef struct index_m {",        /* the model Index_m ... */
        "typedef struct index_m2 {",       /* ... so Index (<strings.h>) is renamed twice */
        "typedef struct note_list_m {",    /* Note's list type */
        "typedef struct note_list {",      /* ... which keeps its name */
        "typedef struct m_cstack_thing {", /* cstack's namespace */
        "typedef struct http_request {",   /* snake case of an acronym */
        "typedef enum bool_t {",
        "NOTE_STATUS_inProgress", /* members keep their spelling */
        "const char *default_;",  /* keyword member */
        "int64_t row;",           /* a field keeps its name ... */
        "cstack_row *row_;",      /* ... the added member moves */
        "size_t x_len_;",
        "int64_t x_len;",
        "bool has_y_;",
        "int64_t has_y;",
        "bool set_set_y;",
        /* parameters never take a generated name */
        "int db_find_unique_by_db(cstack *db_, const char *db__, db *out_, bool *found);",
        "int value_find_unique_by_value(cstack *db_, const char *value_, value *out_, bool "
        "*found);",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        HAS(&g, expected[i]);
    gen_free(&g);
}

Test(codegen, output_is_deterministic)
{
    gen a, b;
    gen_file(&a, CSTACK_SOURCE_DIR "/examples/notes.cstack", "notes");
    gen_file(&b, CSTACK_SOURCE_DIR "/examples/notes.cstack", "notes");
    cr_assert_eq(a.rc, 0, "%s", a.err);
    cr_assert_eq(a.h.len, b.h.len);
    cr_assert_eq(a.c.len, b.c.len);
    cr_expect_eq(memcmp(a.h.data, b.h.data, a.h.len), 0);
    cr_expect_eq(memcmp(a.c.data, b.c.data, a.c.len), 0);
    /* The source includes its header by the basename it was given. */
    cr_expect(strstr(a.c.data, "#include \"notes.h\"") != NULL);
    gen_free(&a);
    gen_free(&b);
}

Test(codegen, names_that_cannot_be_separated_are_reported)
{
    /* note_x_not_in is both `x` + `not_in` and `x_not` + `in`. */
    gen g;
    gen_text(&g, "model Note { id Int @id  x Int  x_not Int }\n", "n");
    cr_expect_eq(g.rc, CSTACK_EINVAL);
    cr_expect(strstr(g.err, "Note") && strstr(g.err, "note_x_not_in"), "message: %s", g.err);
    gen_free(&g);
}

Test(codegen, bad_basenames_are_refused)
{
    static const char *const bad[] = {"", ".hidden", "-x", "a/b", "a b", "a\"b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gen g;
        gen_text(&g, "model A { id Int @id }\n", bad[i]);
        cr_expect_eq(g.rc, CSTACK_EINVAL, "basename '%s'", bad[i]);
        gen_free(&g);
    }
}

Test(codegen, doc_comments_cannot_break_out)
{
    gen g;
    gen_text(&g,
             "/// ends */ early ?\?/ and /* nests\n"
             "model A { id Int @id }\n",
             "a");
    cr_assert_eq(g.rc, 0, "%s", g.err);
    cr_expect(strstr(g.h.data, "ends * / early ? ?/ and / * nests") != NULL, "%s", g.h.data);
    gen_free(&g);
}

/* ---- `cstack gen` ---- */

/* Runs `cstack ARGS 2>&1`; returns the exit status, *out the output (free). */
static int cli(char **out, const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", CSTACK_CLI, args);
    return t_run(cmd, out);
}

static bool exists(const char *dir, const char *name)
{
    char path[1200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

Test(codegen_cli, gen_writes_the_pair_and_says_so)
{
    char *dir = t_tmpdir(), *out = NULL, args[2048];
    snprintf(args, sizeof args, "gen %s -o '%s/a/b'", CSTACK_SOURCE_DIR "/examples/notes.cstack",
             dir);
    cr_assert_eq(cli(&out, args), 0, "%s", out);
    char want[1200];
    snprintf(want, sizeof want, "wrote %s/a/b/notes.h\nwrote %s/a/b/notes.c\n", dir, dir);
    cr_expect_str_eq(out, want);
    free(out);
    /* The default name is the schema's stem; nothing but the pair is left. */
    snprintf(args, sizeof args, "ls -A '%s/a/b'", dir);
    cr_assert_eq(t_run(args, &out), 0);
    cr_expect_str_eq(out, "notes.c\nnotes.h\n");
    free(out);
    snprintf(args, sizeof args, "gen --name=model -o '%s' %s", dir,
             CSTACK_SOURCE_DIR "/examples/notes.cstack");
    cr_assert_eq(cli(&out, args), 0, "%s", out);
    cr_expect(exists(dir, "model.h") && exists(dir, "model.c"));
    free(out);
    snprintf(args, sizeof args, "grep -c '#include \"model.h\"' '%s/model.c'", dir);
    cr_expect_eq(t_run(args, NULL), 0, "the source includes the header by its new name");
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    t_run(args, NULL);
    free(dir);
}

Test(codegen_cli, schema_errors_exit_1_and_write_nothing)
{
    char *dir = t_tmpdir(), *out = NULL, args[2048];
    snprintf(args, sizeof args, "gen %s -o '%s'",
             CSTACK_TEST_DIR "/schemas/three_mistakes.fail.cstack", dir);
    cr_expect_eq(cli(&out, args), 1, "%s", out);
    cr_expect(strstr(out, "three_mistakes.fail.cstack:") != NULL, "diagnostics: %s", out);
    cr_expect_not(exists(dir, "three_mistakes.fail.h"));
    free(out);
    /* A directory that cannot be created is a failure too. */
    snprintf(args, sizeof args, "gen %s -o %s/sub", CSTACK_SOURCE_DIR "/examples/notes.cstack",
             CSTACK_SOURCE_DIR "/examples/notes.cstack");
    cr_expect_eq(cli(&out, args), 1, "%s", out);
    cr_expect(strstr(out, "cannot create directory") != NULL, "%s", out);
    free(out);
    snprintf(args, sizeof args, "rm -rf '%s'", dir);
    t_run(args, NULL);
    free(dir);
}

Test(codegen_cli, usage_errors_exit_2)
{
    static const char *const bad[] = {
        "gen",
        "gen " CSTACK_SOURCE_DIR "/examples/notes.cstack",
        "gen -o /tmp",
        "gen a.cstack b.cstack -o /tmp",
        "gen " CSTACK_SOURCE_DIR "/examples/notes.cstack -o /tmp --name 'a b'",
        "gen " CSTACK_SOURCE_DIR "/examples/notes.cstack -o",
        "gen --bogus",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        cr_expect_eq(cli(&out, bad[i]), 2, "cstack %s: %s", bad[i], out);
        cr_expect(strstr(out, "Try 'cstack gen --help'") != NULL, "cstack %s: %s", bad[i], out);
        free(out);
    }
    char *out = NULL;
    cr_expect_eq(cli(&out, "gen --help"), 0);
    cr_expect(strstr(out, "usage: cstack gen FILE -o DIR") != NULL, "%s", out);
    free(out);
}
