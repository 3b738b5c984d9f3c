/*
 * test_cli.c -- the `cstack` command as scripts see it: exit codes, output
 * formats and the demo.  Every test runs the built executable (CSTACK_CLI)
 * through a shell; fixtures live in tests/cli/ and are named for their
 * expected outcome.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support.h"

#define FIXTURE(name) CSTACK_TEST_DIR "/cli/" name
#define EXAMPLE(name) CSTACK_SOURCE_DIR "/examples/" name

/* Everything a test allocates is tracked and released by the suite's fini,
 * so a failed assertion (which leaves the test at once) leaks nothing under
 * ASan and the tests need no free() bookkeeping. */
typedef struct tracked {
    void *p;
    void (*release)(void *p);
} tracked;

static tracked garbage[256];
static size_t ngarbage;

static void *track(void *p, void (*release)(void *p))
{
    cr_assert_not_null(p, "out of memory");
    cr_assert_lt(ngarbage, sizeof garbage / sizeof garbage[0]);
    garbage[ngarbage++] = (tracked){p, release};
    return p;
}

/* Releases one tracked object now (e.g. a database the CLI must read). */
static void release_now(void *p)
{
    for (size_t i = ngarbage; i-- > 0;) {
        if (garbage[i].p == p) {
            garbage[i].release(p);
            garbage[i] = garbage[--ngarbage];
            return;
        }
    }
}

static void release_all(void)
{
    while (ngarbage > 0) {
        ngarbage--;
        garbage[ngarbage].release(garbage[ngarbage].p);
    }
}

TestSuite(cli, .fini = release_all);

static void close_db(void *p)
{
    cstack_close(p);
}

/* Removes a test directory and the files in it (tests create no
 * subdirectories), so repeated runs do not fill /tmp. */
static void remove_dir(void *p)
{
    char *dir = p;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        char path[1024];
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
    free(dir);
}

static char *tmpdir(void)
{
    return track(t_tmpdir(), remove_dir);
}

/* Runs `cstack ARGS` (formatted) and returns its exit status; *out receives
 * stdout, and stderr too when `merge` is set (freed by the suite). */
static int cli(int merge, char **out, const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s%s", CSTACK_CLI, args, merge ? " 2>&1" : "");
    int rc = t_run(cmd, out);
    track(*out, free);
    return rc;
}

static size_t count_lines_matching(const char *text, const char *pattern)
{
    regex_t re;
    cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
    size_t n = 0;
    regmatch_t m;
    for (const char *p = text; regexec(&re, p, 1, &m, 0) == 0; p += m.rm_eo)
        n++;
    regfree(&re);
    return n;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* ---- help and usage errors ---- */

Test(cli, help_of_every_command_exits_0)
{
    static const char *const cmds[] = {"", "check", "ddl", "migrate", "dump", "demo"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char *out = NULL;
        int rc = cli(0, &out, "%s --help", cmds[i]);
        cr_expect_eq(rc, 0, "cstack %s --help exits %d", cmds[i], rc);
        cr_expect(strstr(out, "usage: cstack") != NULL, "cstack %s --help: %s", cmds[i], out);
    }
    char *out = NULL;
    cr_expect_eq(cli(0, &out, "help migrate"), 0);
    cr_expect(strstr(out, "usage: cstack migrate") != NULL);
}

Test(cli, bad_command_lines_exit_2_with_a_hint)
{
    static const char *const bad[] = {
        "",
        "frobnicate",
        "--bogus",
        "check",
        "check --bogus " EXAMPLE("notes.cstack"),
        "check a.cstack b.cstack",
        "ddl " EXAMPLE("notes.cstack") " --dialect mysql",
        "ddl " EXAMPLE("notes.cstack") " --dialect",
        "migrate --schema " EXAMPLE("notes.cstack"),
        "dump --db x.db",
        "demo --keep",
        "demo extra",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = NULL;
        int rc = cli(1, &out, "%s", bad[i]);
        cr_expect_eq(rc, 2, "cstack %s exits %d: %s", bad[i], rc, out);
        cr_expect(strstr(out, "cstack") != NULL, "cstack %s says nothing", bad[i]);
    }
}

/* ---- check and ddl ---- */

Test(cli, check_accepts_the_examples_silently)
{
    static const char *const files[] = {EXAMPLE("notes.cstack"), EXAMPLE("notes_v2.cstack"),
                                        FIXTURE("dump.cstack"), FIXTURE("migrate_base.cstack")};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *out = NULL;
        int rc = cli(1, &out, "check '%s'", files[i]);
        cr_expect_eq(rc, 0, "check %s exits %d: %s", files[i], rc, out);
        cr_expect_str_empty(out, "check %s prints: %s", files[i], out);
    }
}

Test(cli, check_reports_three_unrelated_mistakes)
{
    char *out = NULL;
    int rc = cli(1, &out, "check '%s'", FIXTURE("three_mistakes.fail.cstack"));
    cr_expect_eq(rc, 1);
    size_t n = count_lines_matching(out, "^[^ ]*three_mistakes\\.fail\\.cstack:[0-9]+:[0-9]+: ");
    cr_expect_eq(n, 3, "expected 3 diagnostics, got %zu:\n%s", n, out);
    /* Diagnostics go to stderr; stdout stays empty for scripts. */
    cr_expect_eq(cli(0, &out, "check '%s' 2>/dev/null", FIXTURE("three_mistakes.fail.cstack")), 1);
    cr_expect_str_empty(out);
}

Test(cli, check_of_a_missing_file_fails)
{
    char *out = NULL;
    cr_expect_eq(cli(1, &out, "check /nonexistent/x.cstack"), 1);
    cr_expect(strstr(out, "x.cstack") != NULL, "%s", out);
}

Test(cli, ddl_prints_both_dialects)
{
    char *lite = NULL, *pg = NULL, *dflt = NULL;
    cr_assert_eq(cli(0, &lite, "ddl '%s' --dialect sqlite", EXAMPLE("notes.cstack")), 0);
    cr_assert_eq(cli(0, &pg, "ddl --dialect=postgres '%s'", EXAMPLE("notes.cstack")), 0);
    cr_assert_eq(cli(0, &dflt, "ddl '%s'", EXAMPLE("notes.cstack")), 0);
    cr_expect_str_eq(lite, dflt, "sqlite is the default dialect");
    cr_expect(strstr(lite, "CREATE TABLE") && strstr(lite, "\"Note\"") && strstr(lite, "BLOB"),
              "%s", lite);
    cr_expect(strstr(pg, "CREATE TABLE") && strstr(pg, "NUMERIC") && strstr(pg, "TIMESTAMPTZ"),
              "%s", pg);
    /* PostgreSQL also gets the policies, after the tables. */
    const char *pol = strstr(pg, "CREATE POLICY cstack_read ON \"Note\" FOR SELECT");
    cr_expect(pol && pol > strstr(pg, "CREATE TABLE") && !strstr(lite, "POLICY"), "%s", pg);
    char *out = NULL;
    cr_expect_eq(cli(1, &out, "ddl '%s'", FIXTURE("three_mistakes.fail.cstack")), 1);
}

/* ---- migrate ---- */

Test(cli, migrate_creates_then_finds_nothing_to_do)
{
    char *dir = tmpdir();
    char *out = NULL;
    int rc =
        cli(1, &out, "migrate --schema '%s' --db '%s/m.db'", FIXTURE("migrate_base.cstack"), dir);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(count_lines(out) >= 1 && strstr(out, "up to date") == NULL, "%s", out);
    rc = cli(1, &out, "migrate --schema '%s' --db '%s/m.db'", FIXTURE("migrate_base.cstack"), dir);
    cr_expect_eq(rc, 0);
    cr_expect_str_eq(out, "database is up to date\n");
}

Test(cli, migrate_refuses_a_dropped_field_and_names_it)
{
    char *dir = tmpdir();
    char *out = NULL;
    cr_assert_eq(
        cli(1, &out, "migrate --schema '%s' --db '%s/m.db'", FIXTURE("migrate_base.cstack"), dir),
        0);
    int rc = cli(1, &out, "migrate --schema '%s' --db '%s/m.db'",
                 FIXTURE("migrate_drop_field.refused.cstack"), dir);
    cr_expect_eq(rc, 1, "%s", out);
    cr_expect(strstr(out, "color") != NULL, "the message names the field: %s", out);
    /* Nothing was changed: the base schema still matches. */
    cr_expect_eq(
        cli(1, &out, "migrate --schema '%s' --db '%s/m.db'", FIXTURE("migrate_base.cstack"), dir),
        0);
    cr_expect_str_eq(out, "database is up to date\n");
}

Test(cli, migrate_with_a_broken_schema_fails_without_creating_the_db)
{
    char *dir = tmpdir();
    char *out = NULL, path[512];
    snprintf(path, sizeof path, "%s/never.db", dir);
    cr_expect_eq(cli(1, &out, "migrate --schema '%s' --db '%s'",
                     FIXTURE("three_mistakes.fail.cstack"), path),
                 1);
    struct stat st;
    cr_expect_neq(stat(path, &st), 0, "%s must not exist", path);
}

/* ---- dump ---- */

static cstack *open_file(const char *schema_path, const char *db_path)
{
    cstack_schema *s = NULL;
    cr_assert_eq(cstack_schema_load(schema_path, &s, NULL), 0);
    cstack *db = NULL;
    int rc = cstack_open(s, db_path, NULL, &db);
    cstack_schema_free(s);
    track(db, close_db);
    cr_assert_eq(rc, 0, "open: %s", cstack_errmsg(db));
    cr_assert_eq(cstack_bootstrap(db, NULL), 0, "bootstrap: %s", cstack_errmsg(db));
    return db;
}

static void add_zebra(cstack *db, int64_t id, const char *name)
{
    cstack_field_value f[] = {{"id", cstack_v_int(id)}, {"name", cstack_v_text(name)}};
    cstack_data data = {f, 2};
    cr_assert_eq(cstack_create(db, "Zebra", &data, NULL), 0, "%s", cstack_errmsg(db));
}

static void add_apple(cstack *db, int64_t id, const char *price, const char *at)
{
    cstack_field_value f[] = {{"id", cstack_v_int(id)},
                              {"price", cstack_v_text(price)},
                              {"at", cstack_v_text(at)},
                              {"data", cstack_v_blob("hi", 2)}};
    cstack_data data = {f, 4};
    cr_assert_eq(cstack_create(db, "Apple", &data, NULL), 0, "%s", cstack_errmsg(db));
}

/* The line `cstack dump` must print for one row, from the runtime's own
 * cstack_row_json, so this test checks the CLI's framing and order. */
static void append_expected(cstack *db, const char *model, int64_t id, char *buf, size_t cap)
{
    cstack_field_value key[] = {{"id", cstack_v_int(id)}};
    cstack_data where = {key, 1};
    cstack_row *row = NULL;
    cr_assert_eq(cstack_find_unique(db, model, &where, NULL, 0, &row), 0);
    cr_assert_not_null(row);
    char *json = cstack_row_json(row);
    cstack_row_free(row);
    track(json, cstack_free);
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "{\"model\":\"%s\",\"row\":%s}\n", model, json);
}

Test(cli, dump_prints_live_rows_by_model_name_then_key)
{
    char *dir = tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/d.db", dir);
    cstack *db = open_file(FIXTURE("dump.cstack"), path);
    add_zebra(db, 2, "two");
    add_zebra(db, 1, "one");
    add_apple(db, 3, "10.25", "2026-01-01T12:00:00+02:00");
    add_apple(db, 1, "1.10", "2026-05-05T00:00:00Z");
    add_apple(db, 2, "9.5", "2026-05-05T00:00:00Z");
    cstack_field_value gone[] = {{"id", cstack_v_int(2)}};
    cstack_data where = {gone, 1};
    cr_assert_eq(cstack_delete(db, "Apple", &where, NULL), 0);
    char want[4096] = "";
    append_expected(db, "Apple", 1, want, sizeof want);
    append_expected(db, "Apple", 3, want, sizeof want);
    append_expected(db, "Zebra", 1, want, sizeof want);
    append_expected(db, "Zebra", 2, want, sizeof want);
    release_now(db);

    char *out = NULL;
    cr_assert_eq(cli(0, &out, "dump --schema '%s' --db '%s'", FIXTURE("dump.cstack"), path), 0);
    cr_expect_str_eq(out, want);
    cr_expect(strstr(out, "\"1.10\"") && strstr(out, "\"2026-01-01T10:00:00.000000Z\"") &&
                  strstr(out, "\"aGk=\""),
              "canonical JSON forms: %s", out);
}

Test(cli, dump_pages_through_a_large_table)
{
    char *dir = tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/big.db", dir);
    cstack *db = open_file(FIXTURE("dump.cstack"), path);
    enum { N = 5000 }; /* more than two pages of cmd_db.c's DUMP_PAGE */
    cr_assert_eq(cstack_begin(db), 0);
    for (int64_t i = N; i >= 1; i--)
        add_zebra(db, i, "z");
    cr_assert_eq(cstack_commit(db), 0);
    release_now(db);

    char *out = NULL;
    cr_assert_eq(cli(0, &out, "dump --schema '%s' --db '%s'", FIXTURE("dump.cstack"), path), 0);
    cr_expect_eq(count_lines(out), N);
    int64_t expect = 1;
    for (const char *p = strstr(out, "\"id\":"); p; p = strstr(p + 1, "\"id\":"), expect++)
        cr_assert_eq(strtoll(p + 5, NULL, 10), expect, "rows in key order");
    cr_expect_eq(expect, N + 1);
}

Test(cli, dump_creates_a_missing_database)
{
    char *dir = tmpdir();
    char *out = NULL;
    int rc = cli(0, &out, "dump --schema '%s' --db '%s/new.db' 2>/dev/null", FIXTURE("dump.cstack"),
                 dir);
    cr_expect_eq(rc, 0);
    cr_expect_str_empty(out);
}

/* ---- demo ---- */

static void expect_same_file(const char *a, const char *b)
{
    char *ta = track(t_read_file(a, NULL), free), *tb = track(t_read_file(b, NULL), free);
    cr_expect_str_eq(ta, tb, "%s differs from %s", a, b);
}

Test(cli, demo_keeps_a_database_that_dump_reads)
{
    char *dir = tmpdir();
    char *out = NULL, path[512];
    /* Twice: a kept directory from an earlier run must not break the demo. */
    for (int run = 0; run < 2; run++) {
        int rc = cli(1, &out, "demo --keep '%s'", dir);
        cr_assert_eq(rc, 0, "demo exits %d:\n%s", rc, out);
        cr_expect(strstr(out, "All 18 steps passed") != NULL, "%s", out);
        cr_expect(strstr(out, "\033[") == NULL, "no colour when stdout is not a terminal");
    }
    /* The schemas compiled into the demo are exactly the example files. */
    snprintf(path, sizeof path, "%s/notes.cstack", dir);
    expect_same_file(path, EXAMPLE("notes.cstack"));
    snprintf(path, sizeof path, "%s/notes_v2.cstack", dir);
    expect_same_file(path, EXAMPLE("notes_v2.cstack"));

    cr_assert_eq(cli(0, &out, "dump --schema '%s/notes_v2.cstack' --db '%s/notes.db'", dir, dir),
                 0);
    cr_expect_eq(count_lines_matching(out, "^\\{\"model\":\"Account\",\"row\":\\{"), 2, "%s", out);
    cr_expect_eq(count_lines_matching(out, "^\\{\"model\":\"Note\",\"row\":\\{"), 5, "%s", out);
    cr_expect_eq(count_lines(out), 7, "%s", out);
    cr_expect(strstr(out, "Parking") == NULL, "the soft-deleted note is not live");
}

Test(cli, demo_without_keep_leaves_nothing_behind)
{
    char *tmp = tmpdir();
    char *out = NULL;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "TMPDIR='%s' '%s' demo >/dev/null", tmp, CSTACK_CLI);
    int rc = t_run(cmd, &out);
    track(out, free);
    cr_assert_eq(rc, 0);
    DIR *d = opendir(tmp);
    cr_assert_not_null(d);
    size_t entries = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        entries += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    cr_expect_eq(entries, 0, "the temporary directory was removed");
}
