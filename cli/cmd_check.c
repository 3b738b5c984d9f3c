/*
 * cmd_check.c -- `cstack check FILE` and `cstack ddl FILE`, the two commands
 * that only read a schema, plus the schema loader the other commands share.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cstack_server.h"

static const char CHECK_USAGE[] =
    "usage: cstack check FILE\n"
    "\n"
    "Parses and validates the schema FILE.  Every problem is printed to stderr as\n"
    "`file:line:col: message` followed by the source line and a caret; the whole\n"
    "file is checked, not just up to the first mistake.  Nothing is printed when\n"
    "the schema is valid.\n"
    "\n"
    "Exit status: 0 valid, 1 at least one diagnostic, 2 bad command line.\n";

static const char DDL_USAGE[] =
    "usage: cstack ddl FILE [--dialect sqlite|postgres]\n"
    "\n"
    "Prints the SQL that creates the tables and indexes of the schema FILE\n"
    "(postgres: followed by its policies as row-level security).\n"
    "\n"
    "options:\n"
    "  --dialect D   sqlite (the default) or postgres\n"
    "\n"
    "Exit status: 0 printed, 1 the schema has errors, 2 bad command line.\n";

/* Prints the diagnostics (if any) to stderr; returns how many there were. */
static size_t print_diags(const cstack_diags *d)
{
    size_t n = cstack_diags_count(d);
    if (n == 0)
        return 0;
    char *text = cstack_diags_format(d);
    if (text) {
        fputs(text, stderr);
        size_t len = strlen(text);
        if (len > 0 && text[len - 1] != '\n')
            fputc('\n', stderr);
    } else {
        fputs("cstack: out of memory formatting diagnostics\n", stderr);
    }
    cstack_free(text);
    return n;
}

int cli_load_schema(const char *path, cstack_schema **out)
{
    cstack_diags *d = NULL;
    *out = NULL;
    int rc = cstack_schema_load(path, out, &d);
    size_t n = print_diags(d);
    cstack_diags_free(d);
    if (rc == CSTACK_OK) /* warnings only */
        return CLI_OK;
    if (n == 0)
        fprintf(stderr, "%s: %s\n", path, cstack_errstr(rc));
    cstack_schema_free(*out);
    *out = NULL;
    return CLI_FAIL;
}

int cmd_check(int argc, char **argv)
{
    cli_args a;
    int rc = cli_parse(argv[0], argc, argv, NULL, 0, 1, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(CHECK_USAGE, stdout);
        return CLI_OK;
    }
    if (a.npos != 1)
        return cli_usage_error(argv[0], "expected one schema FILE");
    cstack_schema *s = NULL;
    rc = cli_load_schema(a.pos[0], &s);
    cstack_schema_free(s);
    return rc;
}

int cmd_ddl(int argc, char **argv)
{
    const char *dialect = "sqlite";
    const cli_opt opts[] = {{"--dialect", &dialect, NULL}};
    cli_args a;
    int rc = cli_parse(argv[0], argc, argv, opts, 1, 1, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(DDL_USAGE, stdout);
        return CLI_OK;
    }
    if (a.npos != 1)
        return cli_usage_error(argv[0], "expected one schema FILE");
    /* Checked before loading so a typo is a usage error (2), not a schema
     * failure (1). */
    if (strcmp(dialect, "sqlite") != 0 && strcmp(dialect, "postgres") != 0)
        return cli_usage_error(argv[0], "unknown dialect '%s' (expected sqlite or postgres)",
                               dialect);
    cstack_schema *s = NULL;
    rc = cli_load_schema(a.pos[0], &s);
    if (rc != CLI_OK)
        return rc;
    char *ddl = NULL, *policies = NULL;
    int err = cstack_schema_ddl(s, dialect, &ddl);
    /* PostgreSQL also gets the policies, as row-level security (the
     * tables `cstack migrate` makes carry them). */
    if (err == CSTACK_OK && strcmp(dialect, "postgres") == 0)
        err = cstack_server_postgres_policies(s, &policies);
    cstack_schema_free(s);
    if (err != CSTACK_OK) {
        fprintf(stderr, "cstack ddl: %s\n", cstack_errstr(err));
        cstack_free(ddl);
        return CLI_FAIL;
    }
    size_t len = strlen(ddl);
    fputs(ddl, stdout);
    if (len > 0 && ddl[len - 1] != '\n')
        putchar('\n');
    if (policies && *policies)
        printf("\n%s", policies);
    cstack_free(ddl);
    cstack_free(policies);
    return CLI_OK;
}
