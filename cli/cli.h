/*
 * cli.h -- the pieces shared by the commands of the `cstack` tool.
 *
 * The CLI is a client of the public headers only (include/cstack.h, and
 * include/cstack_server.h for `serve`, `token` and the demo) plus SQLite's
 * own API; the build gives it no other include path, so it cannot reach into
 * src/.  Each command lives in its own file and has the shape
 * `int cmd_x(int argc, char **argv)`, where argv[0] is the command name and
 * the return value is the process exit code.
 *
 * Exit codes (docs/cli.md): 0 success, 1 the command ran and failed (schema
 * diagnostics, refused migration, database error), 2 the command line itself
 * is wrong (unknown command or option, missing argument).
 */
#ifndef CSTACK_CLI_H
#define CSTACK_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "cstack.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* One option of a command.  Exactly one of `value` (an option taking an
 * argument, `--db FILE` or `--db=FILE`) and `flag` (a switch set to 1) is
 * non-NULL. */
typedef struct cli_opt {
    const char *name; /* with its dashes: "--db" */
    const char **value;
    int *flag;
} cli_opt;

/* What a parse found besides the options. */
typedef struct cli_args {
    const char *pos[4]; /* positional arguments, borrowed from argv */
    size_t npos;
    int help; /* --help or -h was given */
} cli_args;

/* Parses argv[1..argc) of command `cmd` against `opts`.  At most `max_pos`
 * positional arguments are accepted; `--` ends the options.  On a bad
 * command line prints the reason and a hint to stderr and returns CLI_USAGE;
 * otherwise returns CLI_OK and fills `args`. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, size_t nopts,
              size_t max_pos, cli_args *args);

/* Prints "cstack CMD: MESSAGE" and the --help hint to stderr; returns
 * CLI_USAGE so callers can `return cli_usage_error(...)`. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Loads and validates the schema at `path`.  On failure prints every
 * diagnostic to stderr and returns CLI_FAIL with *out NULL; on success *out
 * is a schema to free with cstack_schema_free().  A schema with any
 * diagnostic at all counts as a failure, so the result is always clean. */
int cli_load_schema(const char *path, cstack_schema **out);

/* Loads `schema_path`, opens (creating it when missing) the database at
 * `db_path` and bootstraps it, so every command that takes --schema and --db
 * works on a new file.  When `report` is not NULL it receives the bootstrap
 * report (one line per change; free with cstack_free()).  Errors are printed
 * to stderr prefixed with `cmd`; returns CLI_OK or CLI_FAIL.  On success *out
 * is a runtime to close with cstack_close(). */
int cli_open_db(const char *cmd, const char *schema_path, const char *db_path, char **report,
                cstack **out);

/* The commands. */
int cmd_check(int argc, char **argv);
int cmd_ddl(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_changes(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_watch(int argc, char **argv);

#endif
