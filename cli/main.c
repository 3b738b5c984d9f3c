/*
 * main.c -- the `cstack` command: dispatch to the commands, top-level help,
 * and the small option parser every command shares.
 *
 * Option syntax is deliberately plain (`--name value`, `--name=value`, `--`
 * ending options) so that scripts written against docs/cli.md keep working.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static const command COMMANDS[] = {
    {"check", "validate a schema file and print every diagnostic", cmd_check},
    {"ddl", "print the SQL DDL of a schema (sqlite or postgres)", cmd_ddl},
    {"migrate", "create or migrate a database to a schema", cmd_migrate},
    {"dump", "print every live row of a database as JSON lines", cmd_dump},
    {"call", "answer JSON envelope requests read from stdin, one per line", cmd_call},
    {"changes", "export or apply a changeset (sync two databases by hand)", cmd_changes},
    {"gen", "generate the typed C API of a schema (a .h and a .c)", cmd_gen},
    {"demo", "build a small notes database and show what cstack does", cmd_demo},
    {"sync", "sync a database with a cstack server (push, pull, stream)", cmd_sync},
    {"serve", "run the sync server for a schema (HTTP: push, pull, stream)", cmd_serve},
    {"token", "mint a bearer token (JWT) for the sync server, for development", cmd_token},
    {"watch", "print a query's result, and again each time it changes", cmd_watch},
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void print_usage(FILE *f)
{
    fputs("usage: cstack COMMAND [ARGS...]\n"
          "       cstack COMMAND --help\n"
          "       cstack --version\n"
          "\n"
          "cstack is an offline-first data layer over SQLite, driven by a .cstack schema.\n"
          "\n"
          "commands:\n",
          f);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-9s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fputs("\n"
          "Exit codes: 0 success, 1 failure (diagnostics, refused migration, database\n"
          "error), 2 bad command line.  See docs/cli.md for details.\n",
          f);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cstack%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'cstack%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
    return CLI_USAGE;
}

static const cli_opt *find_opt(const cli_opt *opts, size_t nopts, const char *name, size_t n)
{
    for (size_t i = 0; i < nopts; i++)
        if (strlen(opts[i].name) == n && memcmp(opts[i].name, name, n) == 0)
            return &opts[i];
    return NULL;
}

/* Handles one argument starting with "--"; *i may advance past its value. */
static int parse_long(const char *cmd, int argc, char **argv, int *i, const cli_opt *opts,
                      size_t nopts)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    const cli_opt *o = find_opt(opts, nopts, arg, n);
    if (!o)
        return cli_usage_error(cmd, "unknown option '%.*s'", (int)n, arg);
    if (o->flag) {
        if (eq)
            return cli_usage_error(cmd, "option '%s' takes no value", o->name);
        *o->flag = 1;
        return CLI_OK;
    }
    if (eq) {
        *o->value = eq + 1;
    } else {
        if (*i + 1 >= argc)
            return cli_usage_error(cmd, "option '%s' needs a value", o->name);
        *o->value = argv[++*i];
    }
    if (**o->value == '\0')
        return cli_usage_error(cmd, "option '%s' needs a non-empty value", o->name);
    return CLI_OK;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, size_t nopts,
              size_t max_pos, cli_args *args)
{
    memset(args, 0, sizeof *args);
    if (max_pos > sizeof args->pos / sizeof args->pos[0])
        max_pos = sizeof args->pos / sizeof args->pos[0];
    int options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            args->help = 1;
        } else if (!options_done && strcmp(arg, "--") == 0) {
            options_done = 1;
        } else if (!options_done && strncmp(arg, "--", 2) == 0) {
            int rc = parse_long(cmd, argc, argv, &i, opts, nopts);
            if (rc != CLI_OK)
                return rc;
        } else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
            return cli_usage_error(cmd, "unknown option '%s'", arg);
        } else if (args->npos < max_pos) {
            args->pos[args->npos++] = arg;
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", arg);
        }
    }
    return CLI_OK;
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

/* `cstack help [COMMAND]` is the same as `cstack [COMMAND] --help`. */
static int run_help(int argc, char **argv)
{
    if (argc < 3) {
        print_usage(stdout);
        return CLI_OK;
    }
    const command *c = find_command(argv[2]);
    if (!c)
        return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
    char help[] = "--help";
    char *sub_argv[] = {argv[2], help, NULL};
    return c->run(2, sub_argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("cstack %s\n", cstack_version());
        return fflush(stdout) == 0 ? CLI_OK : CLI_FAIL;
    }
    if (strcmp(name, "help") == 0)
        return run_help(argc, argv);
    const command *c = find_command(name);
    if (!c) {
        if (name[0] == '-')
            return cli_usage_error(NULL, "unknown option '%s'", name);
        return cli_usage_error(NULL, "unknown command '%s'", name);
    }
    int rc = c->run(argc - 1, argv + 1);
    /* A failed write to stdout (a full disk, a closed pipe) must not look
     * like success to a script. */
    if (fflush(stdout) != 0 && rc == CLI_OK) {
        fprintf(stderr, "cstack %s: cannot write output\n", name);
        rc = CLI_FAIL;
    }
    return rc;
}
