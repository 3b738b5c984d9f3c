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
#include <sys/stat.h>

#include "cli.h"
#include "cstack_server.h"

static const char SERVE_USAGE[] =
    "usage: cstack serve --schema FILE [--db FILE|URL] [--port N] [--bind ADDR]\n"
    "                    [--jwt-secret S] [--header-timeout S] [--max-per-address N]\n"
    "                    [--max-upload-mib N] [--min-body-kib N] [--max-stream-mib N]\n"
    "                    [--page-rows N] [--page-mib N] [--backup-quota-mib N]\n"
    "                    [--pages-db FILE] [--web DIR]\n"
    "\n"
    "Serves the sync protocol for a schema over HTTP: devices push their changes\n"
    "(checked against the schema's write policies), pull and stream everyone's\n"
    "changes (filtered by its read policies), and prove with checksums that they\n"
    "hold exactly what the server holds.  Routes: POST /v1/push, GET /v1/pull,\n"
    "GET /v1/stream, GET /healthz, GET /metrics (docs/server.md).\n"
    "\n"
    "Prints \"listening on http://ADDR:PORT (database: PATH, sqlite)\" on stdout\n"
    "(\"sqlite, the default path\" without --db; \"(database: URL, postgres)\",\n"
    "without the password, on PostgreSQL), then one log line per\n"
    "request on stderr.  SIGINT or SIGTERM drains (stops accepting, lets\n"
    "requests in flight finish, ends streams, closes the database) and exits 0;\n"
    "a push is acknowledged only once it is committed, so nothing acknowledged is\n"
    "lost.\n"
    "\n"
    "options:\n"
    "  --schema FILE      the .cstack schema\n"
    "  --db FILE          the server's SQLite database (default cstack-server.db\n"
    "                     in the current directory; created or migrated at start),\n"
    "                     or a PostgreSQL database: postgresql://USER@HOST:PORT/DB\n"
    "                     or a libpq key=value string (default: the environment\n"
    "                     variable CSTACK_DATABASE_URL); several servers may share\n"
    "                     one (docs/postgres.md)\n"
    "  --port N           TCP port (default 8080; 0 picks a free one)\n"
    "  --bind ADDR        address to listen on (default 127.0.0.1: this machine\n"
    "                     only; 0.0.0.0 or :: for every interface)\n"
    "  --jwt-secret S     HS256 secret of the bearer tokens (default: the\n"
    "                     environment variable CSTACK_JWT_SECRET)\n"
    "\n"
    "limits (refusals are counted in cstack_refused_total on /metrics):\n"
    "  --header-timeout S seconds a connection has to send its request line and\n"
    "                     headers, however slowly it trickles them (default 10);\n"
    "                     then it is answered 408 and closed\n"
    "  --max-per-address N  connections at once from one client address\n"
    "                     (default 64); more are answered 503 and closed\n"
    "  --max-upload-mib N MiB of push bodies being received at once (default\n"
    "                     256); a push past it is answered 503 with Retry-After\n"
    "  --min-body-kib N   KiB/s a push body must average after its first\n"
    "                     --header-timeout seconds (default 8); a slower one is\n"
    "                     answered 408 and closed\n"
    "  --max-stream-mib N MiB queued for all streams together (default 256);\n"
    "                     past it the slowest streams are closed first\n"
    "\n"
    "pages (a larger answer to a pull or a stream comes in several):\n"
    "  --page-rows N      rows per page (default 10000)\n"
    "  --page-mib N       MiB per page, about (default 8)\n"
    "\n"
    "backups (`cstack backup`; pages stored in DB.pages, docs/pagestore.md):\n"
    "  --backup-quota-mib N  MiB of backup pages one user may store (default 256)\n"
    "  --pages-db FILE    the SQLite file of backup pages (default DB.pages; with\n"
    "                     a PostgreSQL --db, backups need it)\n"
    "  --web DIR          also serve DIR's files at / (GET; e.g. build/web from\n"
    "                     `make web`); API routes are unchanged\n"
    "\n"
    "Exit status: 0 stopped by a signal, 1 could not start, 2 bad command line.\n";

/* A whole number from 1 to `max`, digits only. */
static int parse_count(const char *text, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    errno = 0;
    if (text[0] < '0' || text[0] > '9')
        return -1;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end || v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

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
    const char *header_timeout = NULL, *per_address = NULL, *upload_mib = NULL,
               *stream_mib = NULL, *page_rows = NULL, *page_mib = NULL, *quota_mib = NULL,
               *web = NULL, *pages_db = NULL, *body_kib = NULL;
    cli_opt opts[] = {{"--schema", &schema, NULL},
                      {"--db", &db, NULL},
                      {"--port", &port_text, NULL},
                      {"--bind", &bind, NULL},
                      {"--jwt-secret", &secret, NULL},
                      {"--header-timeout", &header_timeout, NULL},
                      {"--max-per-address", &per_address, NULL},
                      {"--max-upload-mib", &upload_mib, NULL},
                      {"--min-body-kib", &body_kib, NULL},
                      {"--max-stream-mib", &stream_mib, NULL},
                      {"--page-rows", &page_rows, NULL},
                      {"--page-mib", &page_mib, NULL},
                      {"--backup-quota-mib", &quota_mib, NULL},
                      {"--web", &web, NULL},
                      {"--pages-db", &pages_db, NULL}};
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
    unsigned long timeout_s = 0, per_addr = 0, upload = 0, stream = 0;
    if (header_timeout && parse_count(header_timeout, 3600, &timeout_s))
        return cli_usage_error(cmd, "--header-timeout needs seconds (1 to 3600), not '%s'",
                               header_timeout);
    if (per_address && parse_count(per_address, 1000000, &per_addr))
        return cli_usage_error(cmd, "--max-per-address needs a count (1 to 1000000), not '%s'",
                               per_address);
    if (upload_mib && parse_count(upload_mib, 1u << 20, &upload))
        return cli_usage_error(cmd, "--max-upload-mib needs MiB (1 to 1048576), not '%s'",
                               upload_mib);
    unsigned long body_rate = 0;
    if (body_kib && parse_count(body_kib, 1u << 20, &body_rate))
        return cli_usage_error(cmd, "--min-body-kib needs KiB/s (1 to 1048576), not '%s'",
                               body_kib);
    if (stream_mib && parse_count(stream_mib, 1u << 20, &stream))
        return cli_usage_error(cmd, "--max-stream-mib needs MiB (1 to 1048576), not '%s'",
                               stream_mib);
    unsigned long rows = 0, mib = 0;
    if (page_rows && parse_count(page_rows, 10000000, &rows))
        return cli_usage_error(cmd, "--page-rows needs a count (1 to 10000000), not '%s'",
                               page_rows);
    if (page_mib && parse_count(page_mib, 1024, &mib))
        return cli_usage_error(cmd, "--page-mib needs MiB (1 to 1024), not '%s'", page_mib);
    unsigned long quota = 0;
    if (quota_mib && parse_count(quota_mib, 1u << 24, &quota))
        return cli_usage_error(cmd, "--backup-quota-mib needs MiB (1 to 16777216), not '%s'",
                               quota_mib);
    struct stat web_st;
    if (web && (stat(web, &web_st) != 0 || !S_ISDIR(web_st.st_mode)))
        return cli_usage_error(cmd, "--web needs a folder, not '%s'", web);
    if (!secret)
        secret = getenv("CSTACK_JWT_SECRET");
    if (!db && getenv("CSTACK_DATABASE_URL") && *getenv("CSTACK_DATABASE_URL"))
        db = getenv("CSTACK_DATABASE_URL");
    if (!secret || !*secret)
        return cli_usage_error(cmd, "missing --jwt-secret S (or the environment variable "
                                    "CSTACK_JWT_SECRET)");
    cstack_server_config cfg = {.schema_path = schema,
                                .db_path = db,
                                .port = port,
                                .bind = bind,
                                .jwt_secret = secret,
                                .log = stderr,
                                .header_timeout_ms = (int)timeout_s * 1000,
                                .max_per_address = (unsigned)per_addr,
                                .max_upload_memory = (size_t)upload << 20,
                                .min_body_rate = (size_t)body_rate << 10,
                                .max_stream_memory = (size_t)stream << 20,
                                .pull_page_rows = rows,
                                .pull_page_bytes = (size_t)mib << 20,
                                .backup_quota = (uint64_t)quota << 20,
                                .web_dir = web,
                                .pages_path = pages_db};
    char err[4096] = "";
    if (cstack_server_run(&cfg, stdout, err, sizeof err) != 0) {
        fprintf(stderr, "cstack %s: %s\n", cmd, err);
        return CLI_FAIL;
    }
    return CLI_OK;
}
