#include "support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

cstack_schema *t_schema(const char *src)
{
    cstack_schema *s = NULL;
    cstack_diags *d = NULL;
    int rc = cstack_schema_parse("test.cstack", src, strlen(src), &s, &d);
    if (rc != 0) {
        char *txt = cstack_diags_format(d);
        cr_log_error("schema errors:\n%s", txt ? txt : "(none)");
        cstack_free(txt);
    }
    cstack_diags_free(d);
    cr_assert_eq(rc, 0, "schema must parse");
    return s;
}

cstack *t_open_mem(const char *src)
{
    cstack_schema *s = t_schema(src);
    cstack *db = NULL;
    int rc = cstack_open_in_memory(s, &db);
    cstack_schema_free(s);
    cr_assert_eq(rc, 0, "open: %s", db ? cstack_errmsg(db) : "nomem");
    rc = cstack_bootstrap(db, NULL);
    cr_assert_eq(rc, 0, "bootstrap: %s", cstack_errmsg(db));
    return db;
}

char *t_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

/* Directories made by t_tmpdir in this process, removed when it exits. */
static char *made[64];
static int nmade;

static void remove_made(void)
{
    for (int i = 0; i < nmade; i++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", made[i]);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", made[i]);
        free(made[i]);
    }
    nmade = 0;
}

char *t_tmpdir(void)
{
    char tmpl[] = "/tmp/cstack-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    cr_assert_not_null(d);
    if (nmade == 0)
        atexit(remove_made);
    if (nmade < 64)
        made[nmade++] = strdup(d);
    return strdup(d);
}

int t_run(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[n] = 0;
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *t_text_of(cstack *db, const char *model, const char *id, const char *field)
{
    cstack_row *row = NULL;
    cr_assert_eq(cstack_find_unique(db, model, DATA(FV("id", T(id))), NULL, 0, &row), 0, "%s",
                 cstack_errmsg(db));
    if (!row)
        return NULL;
    cstack_value v;
    cr_assert_eq(cstack_row_get(row, field, &v), 0);
    char *out = strndup(v.u.s.p, v.u.s.n);
    cstack_row_free(row);
    return out;
}
