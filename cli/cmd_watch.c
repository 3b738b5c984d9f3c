/*
 * cmd_watch.c -- `cstack watch --schema FILE --db DB --query JSON
 * [--throttle MS]`: a live query on the command line (docs/live.md).
 *
 * Prints the envelope response of the query as one JSON line at start, then
 * one line each time its result changes, whoever changed it: this process
 * does not write, so the changes come from other processes (`cstack call`,
 * `cstack sync`, an app), seen through the runtime's data_version poll.
 * Runs until SIGINT or SIGTERM, then exits 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char WATCH_USAGE[] =
    "usage: cstack watch --schema FILE --db DB --query JSON [--throttle MS]\n"
    "\n"
    "Watches a read request of the JSON envelope (find_many, find_first,\n"
    "find_unique, count, aggregate, group_by) and prints its response as one\n"
    "JSON line at start, then one line each time the result changes: after a\n"
    "commit by any process on DB (`cstack call`, `cstack sync`, an app).  An\n"
    "unchanged result is not printed again.  Runs until interrupted (SIGINT or\n"
    "SIGTERM).\n"
    "\n"
    "  cstack watch --schema notes.cstack --db notes.db \\\n"
    "    --query '{\"model\":\"Note\",\"kind\":\"count\"}'\n"
    "  {\"status\":\"ok\",\"data\":{\"count\":3}}\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema\n"
    "  --db DB         the SQLite database file (created or migrated first)\n"
    "  --query JSON    the envelope request (docs/envelope.md)\n"
    "  --throttle MS   at most one run per MS milliseconds, bursts coalesced\n"
    "                  (default 30; 0 runs after every commit)\n"
    "\n"
    "Exit status: 0 interrupted, 1 schema or database error or a query that\n"
    "is not a valid read request, or unwritable output, 2 bad command line.\n";

/* Set from the delivery thread when stdout fails. */
static volatile sig_atomic_t output_failed;

static void print_line(void *ctx, const char *resp, size_t len)
{
    (void)ctx;
    if (fwrite(resp, 1, len, stdout) != len || putchar('\n') == EOF || fflush(stdout) != 0) {
        output_failed = 1;
        kill(getpid(), SIGTERM); /* ends the sigwait below */
    }
}

static int parse_throttle(const char *cmd, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > 3600000)
        return cli_usage_error(cmd, "--throttle: expected milliseconds 0..3600000, got '%s'", s);
    *out = (int)v;
    return CLI_OK;
}

/* Blocks the stop signals in every thread (the runtime's delivery thread
 * inherits the mask), so that only sigwait sees them. */
static void block_stop_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

int cmd_watch(int argc, char **argv)
{
    const char *schema = NULL, *dbpath = NULL, *query = NULL, *throttle_s = NULL;
    const cli_opt opts[] = {{"--schema", &schema, NULL},
                            {"--db", &dbpath, NULL},
                            {"--query", &query, NULL},
                            {"--throttle", &throttle_s, NULL}};
    cli_args a;
    int rc = cli_parse(argv[0], argc, argv, opts, 4, 0, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(WATCH_USAGE, stdout);
        return CLI_OK;
    }
    if (!schema)
        return cli_usage_error(argv[0], "missing --schema FILE");
    if (!dbpath)
        return cli_usage_error(argv[0], "missing --db DB");
    if (!query)
        return cli_usage_error(argv[0], "missing --query JSON");
    int throttle = -1;
    if (throttle_s && (rc = parse_throttle(argv[0], throttle_s, &throttle)) != CLI_OK)
        return rc;
    sigset_t stop;
    block_stop_signals(&stop);
    cstack *db = NULL;
    if (cli_open_db(argv[0], schema, dbpath, NULL, &db) != CLI_OK)
        return CLI_FAIL;
    cstack_watch *w = NULL;
    if (cstack_watch_envelope(db, query, strlen(query), throttle, print_line, NULL, &w) != 0) {
        fprintf(stderr, "cstack watch: %s\n", cstack_errmsg(db));
        cstack_close(db);
        return CLI_FAIL;
    }
    int sig;
    sigwait(&stop, &sig);
    cstack_watch_stop(w);
    cstack_close(db);
    if (output_failed) {
        fprintf(stderr, "cstack watch: cannot write output\n");
        return CLI_FAIL;
    }
    return CLI_OK;
}
