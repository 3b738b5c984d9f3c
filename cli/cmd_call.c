/*
 * cmd_call.c -- `cstack call --schema FILE --db DB`: the JSON envelope over
 * standard input and output, so a shell script or a program in any language
 * can drive a database without linking C.
 *
 * Protocol (docs/envelope.md, "cstack call"): every line read is one request
 * and gets exactly one response line, in the same order, flushed at once, so
 * a client may write a request and wait for its answer.  A line that is not a
 * valid request gets an err response and the loop goes on; a line longer than
 * CSTACK_ENVELOPE_MAX bytes is skipped to its end and answered with too_big.
 * End of input ends the command with status 0.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char CALL_USAGE[] =
    "usage: cstack call --schema FILE --db DB\n"
    "\n"
    "Reads JSON envelope requests from stdin, one per line, runs each against the\n"
    "database DB and writes one JSON response per line to stdout, in order,\n"
    "flushing after each line:\n"
    "\n"
    "  {\"model\":\"Note\",\"kind\":\"find_many\",\"payload\":{\"take\":10}}\n"
    "  -> {\"status\":\"ok\",\"data\":[...]}\n"
    "\n"
    "Every line gets exactly one response, an empty or malformed one an err\n"
    "response ({\"status\":\"err\",\"code\":...,\"message\":...}), and the loop goes\n"
    "on.  A line may hold up to 64 MiB, the envelope's own request limit\n"
    "(CSTACK_ENVELOPE_MAX: a create_many of 100,000 rows fits).  The request\n"
    "format is described in docs/envelope.md.  The database is created or\n"
    "migrated first, like `cstack migrate` (its report goes to stderr).\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema\n"
    "  --db DB         the SQLite database file\n"
    "\n"
    "Exit status: 0 at the end of the input, 1 schema errors or database error or\n"
    "unreadable input or unwritable output, 2 bad command line.\n";

/* The help and the too_big message name the limit in MiB. */
_Static_assert(CSTACK_ENVELOPE_MAX == 64u << 20, "CSTACK_ENVELOPE_MAX is no longer 64 MiB");

/* One input line, growing up to CSTACK_ENVELOPE_MAX bytes: the same bound as
 * the envelope's, so that every request the envelope accepts fits a line. */
typedef struct line {
    char *p;
    size_t n, cap;
} line;

/* Reads a line without its '\n' (and a '\r' before it).  Returns 0 with a
 * line, 1 at the end of the input, -1 when out of memory.  A line over the
 * limit is read to its end and discarded, with *too_long set. */
static int read_line(FILE *in, line *l, bool *too_long)
{
    int c;
    bool any = false;
    l->n = 0;
    *too_long = false;
    while ((c = getc(in)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (l->n >= CSTACK_ENVELOPE_MAX) {
            *too_long = true;
            continue;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 4096;
            if (cap > CSTACK_ENVELOPE_MAX)
                cap = CSTACK_ENVELOPE_MAX;
            char *p = realloc(l->p, cap);
            if (!p)
                return -1;
            l->p = p;
            l->cap = cap;
        }
        l->p[l->n++] = (char)c;
    }
    if (!any)
        return 1;
    if (l->n > 0 && l->p[l->n - 1] == '\r')
        l->n--;
    return 0;
}

/* Writes one response line and flushes it; false when stdout failed. */
static bool write_response(const char *resp, size_t n)
{
    return fwrite(resp, 1, n, stdout) == n && putchar('\n') != EOF && fflush(stdout) == 0;
}

static bool write_err(const char *code, const char *message)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "{\"status\":\"err\",\"code\":\"%s\",\"message\":\"%s\"}",
                     code, message);
    return write_response(buf, (size_t)n);
}

/* Answers every line of stdin; returns the exit code. */
static int serve(cstack *db)
{
    line l = {0};
    bool too_long;
    int rc, status = CLI_OK;
    while ((rc = read_line(stdin, &l, &too_long)) == 0) {
        bool ok;
        if (too_long) {
            ok = write_err(cstack_errname(CSTACK_ETOOBIG),
                           "request: the line is longer than the 64 MiB limit "
                           "(CSTACK_ENVELOPE_MAX)");
        } else {
            char *resp = NULL;
            size_t n = 0;
            if (cstack_envelope_call(db, l.p ? l.p : "", l.n, &resp, &n) == CSTACK_OK)
                ok = write_response(resp, n);
            else
                ok = write_err(cstack_errname(CSTACK_ENOMEM), "out of memory");
            cstack_free(resp);
        }
        if (!ok) {
            fprintf(stderr, "cstack call: cannot write output\n");
            status = CLI_FAIL;
            break;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "cstack call: out of memory reading a line\n");
        status = CLI_FAIL;
    } else if (status == CLI_OK && ferror(stdin)) {
        fprintf(stderr, "cstack call: cannot read input\n");
        status = CLI_FAIL;
    }
    free(l.p);
    return status;
}

int cmd_call(int argc, char **argv)
{
    const char *schema = NULL, *dbpath = NULL;
    const cli_opt opts[] = {{"--schema", &schema, NULL}, {"--db", &dbpath, NULL}};
    cli_args a;
    int rc = cli_parse(argv[0], argc, argv, opts, 2, 0, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(CALL_USAGE, stdout);
        return CLI_OK;
    }
    if (!schema)
        return cli_usage_error(argv[0], "missing --schema FILE");
    if (!dbpath)
        return cli_usage_error(argv[0], "missing --db DB");
    cstack *db = NULL;
    char *report = NULL;
    if (cli_open_db(argv[0], schema, dbpath, &report, &db) != CLI_OK)
        return CLI_FAIL;
    /* stdout carries only responses; what the bootstrap changed goes to
     * stderr, one line each. */
    for (const char *p = report; p && *p;) {
        size_t n = strcspn(p, "\n");
        if (n)
            fprintf(stderr, "cstack call: %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
    cstack_free(report);
    rc = serve(db);
    cstack_close(db);
    return rc;
}
