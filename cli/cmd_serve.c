/*
 * cmd_serve.c -- `cstack serve`: the sync server (docs/server.md) in the
 * foreground, until SIGINT or SIGTERM.
 *
 * The "listening on" line goes to stdout (scripts wait for it); the request
 * log and the drain notice go to stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cstack_server.h"

static const char SERVE_USAGE[] =
    "usage: cstack serve --schema FILE [--db FILE] [--port N] [--bind ADDR]\n"
    "                    [--jwt-secret S]\n"
    "\n"
    "Serves the sync protocol for a schema over HTTP: devices push their changes\n"
    "(checked against the schema's write policies), pull and stream everyone's\n"
    "changes (filtered by its read policies), and prove with checksums that they\n"
    "hold exactly what the server holds.  Routes: POST /v1/push, GET /v1/pull,\n"
    "GET /v1/stream, GET /healthz, GET /metrics (docs/server.md).\n"
    "\n"
    "Prints \"listening on http://ADDR:PORT (database: PATH, sqlite)\" on stdout\n"
    "(\"sqlite, the default path\" without --db), then one log line per\n"
    "request on stderr.  SIGINT or SIGTERM drains (stops accepting, lets\n"
    "requests in flight finish, ends streams, closes the database) and exits 0;\n"
    "a push is acknowledged only once it is committed, so nothing acknowledged is\n"
    "lost.\n"
    "\n"
    "options:\n"
    "  --schema FILE      the .cstack schema\n"
    "  --db FILE          the server's SQLite database (default cstack-server.db\n"
    "                     in the current directory; created or migrated at start)\n"
    "  --port N           TCP port (default 8080; 0 picks a free one)\n"
    "  --bind ADDR        address to listen on (default 127.0.0.1: this machine\n"
    "                     only; 0.0.0.0 or :: for every interface)\n"
    "  --jwt-secret S     HS256 secret of the bearer tokens (default: the\n"
    "                     environment variable CSTACK_JWT_SECRET)\n"
    "\n"
    "Exit status: 0 stopped by a signal, 1 could not start, 2 bad command line.\n";

static int parse_port(const char *text, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 0 || v > 65535 || text[0] == '+' || text[0] == '-')
        return -1;
    *out = (int)v;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    const char *cmd = "serve";
    const char *schema = NULL, *db = NULL, *port_text = NULL, *bind = NULL, *secret = NULL;
    cli_opt opts[] = {{"--schema", &schema, NULL},
                      {"--db", &db, NULL},
                      {"--port", &port_text, NULL},
                      {"--bind", &bind, NULL},
                      {"--jwt-secret", &secret, NULL}};
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof opts[0], 0, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(SERVE_USAGE, stdout);
        return CLI_OK;
    }
    if (!schema)
        return cli_usage_error(cmd, "missing --schema FILE");
    int port = 8080;
    if (port_text && parse_port(port_text, &port) != 0)
        return cli_usage_error(cmd, "--port needs a port number (0 to 65535), not '%s'", port_text);
    if (!secret)
        secret = getenv("CSTACK_JWT_SECRET");
    if (!secret || !*secret)
        return cli_usage_error(cmd, "missing --jwt-secret S (or the environment variable "
                                    "CSTACK_JWT_SECRET)");
    cstack_server_config cfg = {.schema_path = schema,
                                .db_path = db,
                                .port = port,
                                .bind = bind,
                                .jwt_secret = secret,
                                .log = stderr};
    char err[4096] = "";
    if (cstack_server_run(&cfg, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "cstack %s: %s\n", cmd, err);
        return CLI_FAIL;
    }
    return CLI_OK;
}
