#include "support.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "sync/changeset.h"
#include "util/hex.h"

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

void t_write_file(char *path, size_t cap, const char *dir, const char *name, const char *text)
{
    int n = snprintf(path, cap, "%s/%s", dir, name);
    cr_assert(n > 0 && (size_t)n < cap, "path %s/%s too long", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_geq(fputs(text, f), 0, "cannot write %s", path);
    cr_assert_eq(fclose(f), 0, "cannot write %s", path);
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
    char *out = v.type == CSTACK_NULL ? NULL : strndup(v.u.s.p, v.u.s.n);
    cstack_row_free(row);
    return out;
}

size_t t_parse_expects(const char *src, t_expect *out, size_t max)
{
    size_t n = 0;
    const char *p = src;
    while (strncmp(p, "// expect: ", 11) == 0 && n < max) {
        p += 11;
        int used = 0;
        cr_assert_eq(sscanf(p, "%d:%d: %n", &out[n].line, &out[n].col, &used), 2);
        p += used;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        cr_assert_lt(len, sizeof(out[n].text));
        memcpy(out[n].text, p, len);
        out[n].text[len] = 0;
        n++;
        p = nl ? nl + 1 : p + len;
    }
    return n;
}

int t_write_tx(cstack *db, long long tx, int rows)
{
    int rc = cstack_begin(db);
    if (rc)
        return rc;
    char v[64];
    for (int i = 0; !rc && i < rows; i++) {
        snprintf(v, sizeof v, "entry %lld/%d with some padding to fill pages", tx, i);
        rc = cstack_create(db, "Entry",
                           DATA(FV("id", I(tx * 1000 + i)), FV("tx", I(tx)), FV("v", T(v))), NULL);
    }
    if (!rc)
        rc = cstack_create(db, "Log", DATA(FV("id", I(tx)), FV("size", I(rows))), NULL);
    if (rc) {
        cstack_rollback(db);
        return rc;
    }
    return cstack_commit(db);
}

int t_kill_after(pid_t pid, long ns)
{
    struct timespec delay = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&delay, NULL);
    kill(pid, SIGKILL);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid, "waitpid");
    return status;
}

void t_restamp(void *changeset, size_t len, const char *site_hex)
{
    unsigned char site[CS_SITE_LEN];
    cr_assert_eq(cs_hex_decode(site_hex, CS_SITE_LEN, site), 0, "site %s", site_hex);
    cs_reader r = {changeset, len, 0};
    cs_cs_header h;
    char err[256];
    cr_assert_eq(cs_cs_read_header(&r, &h, err, sizeof err), 0, "%s", err);
    unsigned char *base = changeset;
    memcpy(base + 5 + 32, site, CS_SITE_LEN); /* magic and format, schema hash, origin */
    for (size_t i = 0; i < h.nsites; i++)
        memcpy(base + (h.sites - base) + i * CS_SITE_LEN, site, CS_SITE_LEN);
}
