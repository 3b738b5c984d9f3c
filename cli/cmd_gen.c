/*
 * cmd_gen.c -- `cstack gen FILE -o DIR [--name BASENAME]`: writes the typed C
 * API of a schema as DIR/BASENAME.h and DIR/BASENAME.c (docs/codegen.md).
 *
 * Generation itself is cstack_codegen() of the public API; this file only
 * names and writes the files.
 *
 * Both files are written next to their final names and renamed into place
 * only once both are complete, so a failed run never leaves a half-written
 * or mismatched pair behind, and a build that reads the old files while a new
 * pair is generated sees either the old or the new version of each.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char GEN_USAGE[] =
    "usage: cstack gen FILE -o DIR [--name BASENAME]\n"
    "\n"
    "Generates the typed C API of the schema FILE: DIR/BASENAME.h and\n"
    "DIR/BASENAME.c, with a struct per model, create and update inputs, typed\n"
    "delegates, filter and ordering helpers, and the model descriptors.  The\n"
    "generated files include only <cstack.h> and the C standard library.\n"
    "\n"
    "options:\n"
    "  -o, --output DIR   directory to write to (created when missing)\n"
    "  --name BASENAME    file name without extension (default: FILE's stem,\n"
    "                     e.g. notes for notes.cstack)\n"
    "\n"
    "Exit status: 0 written, 1 the schema has errors or a file could not be\n"
    "written, 2 bad command line.\n";

/* Creates `dir` and its missing parents (mkdir -p). */
static int make_dirs(const char *dir)
{
    char *path = malloc(strlen(dir) + 1);
    if (!path)
        return -1;
    strcpy(path, dir);
    int rc = 0;
    for (char *p = path + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            rc = -1;
        *p = '/';
    }
    if (rc == 0 && mkdir(path, 0777) != 0 && errno != EEXIST)
        rc = -1;
    free(path);
    struct stat st;
    return rc == 0 && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* The schema file's stem: "a/b/notes.cstack" -> "notes" (malloc'd). */
static char *stem_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, base, n);
        s[n] = 0;
    }
    return s;
}

/* Writes `len` bytes to a new temporary file next to `final`; on success
 * *tmp is its path (malloc'd) for a later rename. */
static int write_temp(const char *final, const char *data, size_t len, char **tmp)
{
    size_t n = strlen(final) + 16;
    *tmp = malloc(n);
    if (!*tmp)
        return -1;
    snprintf(*tmp, n, "%s.tmp.XXXXXX", final);
    int fd = mkstemp(*tmp);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        close(fd);
        unlink(*tmp);
        return -1;
    }
    bool ok = fwrite(data, 1, len, f) == len && fflush(f) == 0 && fsync(fd) == 0;
    /* mkstemp creates 0600; generated sources are ordinary files. */
    ok = fchmod(fd, 0644) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        unlink(*tmp);
    return ok ? 0 : -1;
}

typedef struct outputs {
    char *path[2];
    char *tmp[2];
} outputs;

static void outputs_free(outputs *o)
{
    for (int i = 0; i < 2; i++) {
        if (o->tmp[i])
            unlink(o->tmp[i]);
        free(o->tmp[i]);
        free(o->path[i]);
    }
}

/* Writes both files (temporaries first, then the renames). */
static int write_pair(const char *dir, const char *base, const char *const text[2])
{
    static const char *const EXT[2] = {"h", "c"};
    outputs o = {{NULL, NULL}, {NULL, NULL}};
    int rc = CLI_OK;
    for (int i = 0; i < 2 && rc == CLI_OK; i++) {
        size_t n = strlen(dir) + strlen(base) + 4;
        o.path[i] = malloc(n);
        if (!o.path[i])
            rc = CLI_FAIL;
        else
            snprintf(o.path[i], n, "%s/%s.%s", dir, base, EXT[i]);
        if (rc == CLI_OK && write_temp(o.path[i], text[i], strlen(text[i]), &o.tmp[i]) != 0) {
            fprintf(stderr, "cstack gen: cannot write %s: %s\n", o.path[i], strerror(errno));
            rc = CLI_FAIL;
        }
    }
    for (int i = 0; i < 2 && rc == CLI_OK; i++) {
        if (rename(o.tmp[i], o.path[i]) != 0) {
            fprintf(stderr, "cstack gen: cannot write %s: %s\n", o.path[i], strerror(errno));
            rc = CLI_FAIL;
            break;
        }
        free(o.tmp[i]);
        o.tmp[i] = NULL;
        printf("wrote %s\n", o.path[i]);
    }
    outputs_free(&o);
    return rc;
}

static int generate(const char *file, const char *dir, const char *base)
{
    cstack_schema *s = NULL;
    if (cli_load_schema(file, &s) != CLI_OK)
        return CLI_FAIL;
    char *h = NULL, *c = NULL;
    char err[512];
    int rc = cstack_codegen(s, base, &h, &c, err, sizeof err);
    cstack_schema_free(s);
    if (rc != 0) {
        fprintf(stderr, "cstack gen: %s: %s\n", file, err[0] ? err : cstack_errstr(rc));
        rc = CLI_FAIL;
    } else if (make_dirs(dir) != 0) {
        fprintf(stderr, "cstack gen: cannot create directory %s: %s\n", dir, strerror(errno));
        rc = CLI_FAIL;
    } else {
        const char *const text[2] = {h, c};
        rc = write_pair(dir, base, text);
    }
    cstack_free(h);
    cstack_free(c);
    return rc;
}

static bool basename_ok(const char *s)
{
    if (!*s || *s == '.' || *s == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

int cmd_gen(int argc, char **argv)
{
    const char *out = NULL, *name = NULL;
    cli_opt opts[] = {{"--output", &out, NULL}, {"--name", &name, NULL}};
    /* `-o DIR` is the one short option of the tool: spell it long for the
     * shared parser. */
    char **args = malloc(((size_t)argc + 1) * sizeof *args);
    if (!args)
        return CLI_FAIL;
    static char output_flag[] = "--output";
    for (int i = 0; i < argc; i++)
        args[i] = strcmp(argv[i], "-o") == 0 ? output_flag : argv[i];
    args[argc] = NULL;
    cli_args a;
    int rc = cli_parse("gen", argc, args, opts, sizeof opts / sizeof opts[0], 1, &a);
    free(args);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(GEN_USAGE, stdout);
        return CLI_OK;
    }
    if (a.npos != 1)
        return cli_usage_error("gen", "expected one schema FILE");
    if (!out)
        return cli_usage_error("gen", "missing -o DIR");
    char *stem = name ? NULL : stem_of(a.pos[0]);
    const char *base = name ? name : stem;
    if (!base) {
        rc = CLI_FAIL;
    } else if (!basename_ok(base)) {
        rc = cli_usage_error("gen",
                             "'%s' is not a usable file name (letters, digits, '_', '.', "
                             "'-'); choose one with --name",
                             base);
    } else {
        rc = generate(a.pos[0], out, base);
    }
    free(stem);
    return rc;
}
