/*
 * cmd_changes.c -- `cstack changes export` and `cstack changes apply`: the
 * changeset plumbing that, with `cstack dump`, lets anyone sync two
 * databases by hand:
 *
 *   cstack changes export --schema app.cstack --db a.db > a.changes
 *   cstack changes apply  --schema app.cstack --db b.db < a.changes
 *
 * stdout (export) and stdin (apply) carry only changeset bytes, so every
 * human-readable line (cursor, summary, migration notes, errors) goes to
 * stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The largest changeset `apply` reads from stdin.  A bound keeps a runaway
 * pipe from exhausting memory; a real sync of more than this is split into
 * several exports with cursors anyway. */
#define CHANGES_MAX ((size_t)1 << 30)

static const char CHANGES_USAGE[] =
    "usage: cstack changes export --schema FILE --db DB [--since V] > CHANGESET\n"
    "       cstack changes apply  --schema FILE --db DB < CHANGESET\n"
    "\n"
    "Moves changes between replicas of one schema by hand.  `export` writes the\n"
    "changes made after version V as a binary changeset to stdout; `apply` merges\n"
    "a changeset read from stdin.  See `cstack changes export --help` and\n"
    "`cstack changes apply --help`.\n"
    "\n"
    "Exit status: 0 done, 1 failure, 2 bad command line.\n";

static const char EXPORT_USAGE[] =
    "usage: cstack changes export --schema FILE --db DB [--since V] > CHANGESET\n"
    "\n"
    "Writes every change made in DB after version V (local writes and changes\n"
    "merged from other replicas) to stdout as a binary changeset, and prints the\n"
    "version to pass as --since next time on stderr as one line:\n"
    "\n"
    "  cursor: N\n"
    "\n"
    "The database is created or migrated first, like `cstack migrate` (its\n"
    "report goes to stderr).\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema\n"
    "  --db DB         the SQLite database file\n"
    "  --since V       a cursor printed by an earlier export (default 0:\n"
    "                  everything)\n"
    "\n"
    "Exit status: 0 exported, 1 schema errors or database error, 2 bad command\n"
    "line.\n";

static const char APPLY_USAGE[] =
    "usage: cstack changes apply --schema FILE --db DB < CHANGESET\n"
    "\n"
    "Reads a changeset (at most 1 GiB) from stdin and merges it into DB, all or\n"
    "nothing.  Applying the same changeset again changes nothing, and changesets\n"
    "may be applied in any order.  Prints one summary line on stderr:\n"
    "\n"
    "  applied: R rows, C columns, W won, P parked\n"
    "\n"
    "(row and column changes in the changeset, column changes that won the\n"
    "merge, rows hidden by a unique or foreign-key conflict).  A changeset made\n"
    "with another schema is refused with a message naming both schema hashes;\n"
    "one whose clock runs too far ahead, or a malformed one, is refused too.\n"
    "Nothing is applied when it is refused.  The database is created or\n"
    "migrated first, like `cstack migrate`.\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema\n"
    "  --db DB         the SQLite database file\n"
    "\n"
    "Exit status: 0 applied, 1 refused changeset or schema or database error,\n"
    "2 bad command line.\n";

/* Opens the database and reports any migration on stderr, where it cannot
 * mix with the changeset bytes on stdout. */
static int open_db(const char *cmd, const char *schema, const char *dbpath, cstack **db)
{
    char *report = NULL;
    int rc = cli_open_db(cmd, schema, dbpath, &report, db);
    if (rc != CLI_OK)
        return rc;
    for (const char *p = report ? report : ""; *p;) {
        size_t n = strcspn(p, "\n");
        if (n > 0)
            fprintf(stderr, "cstack %s: migrated: %.*s\n", cmd, (int)n, p);
        p += n + (p[n] == '\n');
    }
    cstack_free(report);
    return CLI_OK;
}

/* Parses a cursor: a decimal integer >= 0 with nothing after it. */
static int parse_since(const char *text, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || text[0] == '+' || text[0] == ' ')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Shared front of both subcommands: options, --help, required arguments.
 * Returns CLI_OK with *help set when the usage was printed. */
static int parse_args(const char *cmd, int argc, char **argv, const char *usage,
                      const char **schema, const char **dbpath, const char **since, int *help)
{
    cli_opt opts[3] = {
        {"--schema", schema, NULL}, {"--db", dbpath, NULL}, {"--since", since, NULL}};
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, since ? 3 : 2, 0, &a);
    if (rc != CLI_OK)
        return rc;
    *help = a.help;
    if (a.help) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (!*schema)
        return cli_usage_error(cmd, "missing --schema FILE");
    if (!*dbpath)
        return cli_usage_error(cmd, "missing --db DB");
    return CLI_OK;
}

static int cmd_export(int argc, char **argv)
{
    const char *cmd = "changes export";
    const char *schema = NULL, *dbpath = NULL, *since_text = NULL;
    int help = 0;
    int rc = parse_args(cmd, argc, argv, EXPORT_USAGE, &schema, &dbpath, &since_text, &help);
    if (rc != CLI_OK || help)
        return rc;
    int64_t since = 0;
    if (since_text && parse_since(since_text, &since) != 0)
        return cli_usage_error(cmd, "--since needs a cursor (an integer >= 0), not '%s'",
                               since_text);
    cstack *db = NULL;
    rc = open_db(cmd, schema, dbpath, &db);
    if (rc != CLI_OK)
        return rc;
    void *buf = NULL;
    size_t len = 0;
    int64_t cursor = 0;
    int err = cstack_changes_export(db, since, &buf, &len, &cursor);
    if (err != CSTACK_OK) {
        fprintf(stderr, "cstack %s: %s: %s\n", cmd, dbpath, cstack_errmsg(db));
        cstack_close(db);
        return CLI_FAIL;
    }
    rc = CLI_OK;
    if (len > 0 && fwrite(buf, 1, len, stdout) != len) {
        fprintf(stderr, "cstack %s: cannot write the changeset to stdout\n", cmd);
        rc = CLI_FAIL;
    }
    /* The cursor is printed only once the bytes are out, so a script never
     * records a cursor for a changeset it did not get. */
    if (rc == CLI_OK && fflush(stdout) != 0) {
        fprintf(stderr, "cstack %s: cannot write the changeset to stdout\n", cmd);
        rc = CLI_FAIL;
    }
    if (rc == CLI_OK)
        fprintf(stderr, "cursor: %" PRId64 "\n", cursor);
    cstack_free(buf);
    cstack_close(db);
    return rc;
}

/* Reads all of `f` into a malloc'd buffer of at most CHANGES_MAX bytes.
 * Returns 0, or -1 with errno set (EFBIG over the bound, ENOMEM, or the
 * read error). */
static int read_all(FILE *f, unsigned char **out, size_t *len)
{
    size_t cap = 64 * 1024, n = 0;
    unsigned char *buf = malloc(cap);
    if (!buf)
        return -1;
    for (;;) {
        if (n == cap) {
            if (cap >= CHANGES_MAX + 1) {
                free(buf);
                errno = EFBIG;
                return -1;
            }
            /* One byte past the bound is enough to tell "too big". */
            size_t ncap = cap * 2 > CHANGES_MAX + 1 ? CHANGES_MAX + 1 : cap * 2;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                errno = ENOMEM;
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                errno = e;
                return -1;
            }
            break;
        }
    }
    if (n > CHANGES_MAX) {
        free(buf);
        errno = EFBIG;
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int cmd_apply(int argc, char **argv)
{
    const char *cmd = "changes apply";
    const char *schema = NULL, *dbpath = NULL;
    int help = 0;
    int rc = parse_args(cmd, argc, argv, APPLY_USAGE, &schema, &dbpath, NULL, &help);
    if (rc != CLI_OK || help)
        return rc;
    /* stdin is read before the database is touched: a changeset that cannot
     * be read in full must not create or migrate anything. */
    unsigned char *buf = NULL;
    size_t len = 0;
    if (read_all(stdin, &buf, &len) != 0) {
        if (errno == EFBIG)
            fprintf(stderr, "cstack %s: the changeset on stdin is larger than 1 GiB\n", cmd);
        else
            fprintf(stderr, "cstack %s: cannot read stdin: %s\n", cmd, strerror(errno));
        return CLI_FAIL;
    }
    cstack *db = NULL;
    rc = open_db(cmd, schema, dbpath, &db);
    if (rc != CLI_OK) {
        free(buf);
        return rc;
    }
    cstack_apply_stats st = {0};
    int err = cstack_changes_apply(db, buf, len, &st);
    free(buf);
    if (err != CSTACK_OK) {
        fprintf(stderr, "cstack %s: %s: changeset refused (%s): %s\n", cmd, dbpath,
                cstack_errname(err), cstack_errmsg(db));
        cstack_close(db);
        return CLI_FAIL;
    }
    fprintf(stderr,
            "applied: %" PRId64 " rows, %" PRId64 " columns, %" PRId64 " won, %" PRId64 " parked\n",
            st.rows, st.columns, st.won, st.parked);
    cstack_close(db);
    return CLI_OK;
}

int cmd_changes(int argc, char **argv)
{
    if (argc < 2) {
        fputs(CHANGES_USAGE, stderr);
        return CLI_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs(CHANGES_USAGE, stdout);
        return CLI_OK;
    }
    /* The subcommand takes argv[0]'s place, so the shared parser sees its
     * options from index 1 as for any command. */
    if (strcmp(sub, "export") == 0)
        return cmd_export(argc - 1, argv + 1);
    if (strcmp(sub, "apply") == 0)
        return cmd_apply(argc - 1, argv + 1);
    return cli_usage_error("changes", "unknown subcommand '%s' (export or apply)", sub);
}
