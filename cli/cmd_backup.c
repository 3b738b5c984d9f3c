/*
 * cmd_backup.c -- `cstack backup` and `cstack restore`: a database's pages
 * to and from the page storage of a `cstack serve` server
 * (cstack_backup / cstack_restore / cstack_backup_list in cstack.h,
 * docs/pagestore.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char BACKUP_USAGE[] =
    "usage: cstack backup --schema FILE --db DB --server URL [--token T] [--name N]\n"
    "       cstack backup --schema FILE --server URL [--token T] --list\n"
    "\n"
    "Backs DB up to the server's page storage: a consistent snapshot (one read\n"
    "transaction, so an application may keep writing), cut into pages; the\n"
    "server says which page hashes (SHA-256) it lacks and only those pages are\n"
    "sent, so a second backup sends only what changed.  Prints the backup's id,\n"
    "the pages and the bytes sent.  --list prints the user's backups (JSON).\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema (the server must run the same one)\n"
    "  --db DB         the SQLite database file\n"
    "  --server URL    the server, e.g. http://127.0.0.1:8080\n"
    "  --token T       the bearer token (JWT); default: $CSTACK_TOKEN\n"
    "  --name N        the backup's name (default \"backup\")\n"
    "  --list          list the backups instead\n"
    "\n"
    "Exit status: 0 done, 1 failed (unreachable server, refused token, over\n"
    "the user's quota), 2 bad command line.\n";

static const char RESTORE_USAGE[] =
    "usage: cstack restore --schema FILE --db NEWDB --server URL [--token T] [--at ID]\n"
    "\n"
    "Rebuilds a backup as the new database file NEWDB (which must not exist):\n"
    "every page is checked against its hash and the file passes PRAGMA\n"
    "integrity_check before it appears.  The restored database is the device\n"
    "that was backed up (site id, sync cursor): `cstack sync` goes on from\n"
    "its cursor without downloading everything again.\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema\n"
    "  --db NEWDB      the database file to create\n"
    "  --server URL    the server\n"
    "  --token T       the bearer token (JWT); default: $CSTACK_TOKEN\n"
    "  --at ID         the backup to restore (default: the latest)\n"
    "\n"
    "Exit status: 0 restored, 1 failed, 2 bad command line.\n";

/* The options both commands share, checked. */
typedef struct bk_args {
    const char *schema, *db, *server, *token, *name, *at;
    int list;
} bk_args;

static int parse(const char *cmd, int argc, char **argv, bk_args *b, const char *usage)
{
    memset(b, 0, sizeof *b);
    cli_opt opts[] = {{"--schema", &b->schema, NULL}, {"--db", &b->db, NULL},
                      {"--server", &b->server, NULL}, {"--token", &b->token, NULL},
                      {"--name", &b->name, NULL},     {"--at", &b->at, NULL},
                      {"--list", NULL, &b->list}};
    cli_args a;
    int rc = cli_parse(cmd, argc, argv, opts, sizeof opts / sizeof opts[0], 0, &a);
    if (rc != CLI_OK)
        return rc;
    if (a.help) {
        fputs(usage, stdout);
        return -1;
    }
    if (!b->token)
        b->token = getenv("CSTACK_TOKEN");
    if (!b->schema)
        return cli_usage_error(cmd, "missing --schema FILE");
    if (!b->server)
        return cli_usage_error(cmd, "missing --server URL");
    if (!b->token || !*b->token)
        return cli_usage_error(cmd, "missing --token T (or the environment variable CSTACK_TOKEN)");
    if (!b->db && !b->list)
        return cli_usage_error(cmd, "missing --db %s", strcmp(cmd, "restore") ? "DB" : "NEWDB");
    return CLI_OK;
}

static int report(const char *cmd, int rc, const cstack_backup_info *info)
{
    if (!rc)
        return CLI_OK;
    fprintf(stderr, "cstack %s: %s\n", cmd, info->error[0] ? info->error : cstack_errstr(rc));
    return CLI_FAIL;
}

int cmd_backup(int argc, char **argv)
{
    bk_args b;
    int rc = parse("backup", argc, argv, &b, BACKUP_USAGE);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    cstack_schema *s = NULL;
    if (cli_load_schema(b.schema, &s) != CLI_OK)
        return CLI_FAIL;
    cstack_sync_options o = {.url = b.server, .token = b.token};
    cstack_backup_info info;
    if (b.list) {
        char *json = NULL;
        rc = cstack_backup_list(s, &o, &json, &info);
        if (!rc)
            printf("%s\n", json);
        cstack_free(json);
    } else {
        rc = cstack_backup(s, b.db, b.name, &o, &info);
        if (!rc)
            printf("backup %" PRId64 ": %u pages of %u bytes, %u pages sent, %" PRIu64
                   " bytes sent\n",
                   info.id, info.pages, info.page_size, info.pages_sent, info.bytes_sent);
    }
    cstack_schema_free(s);
    return report("backup", rc, &info);
}

int cmd_restore(int argc, char **argv)
{
    bk_args b;
    int rc = parse("restore", argc, argv, &b, RESTORE_USAGE);
    if (rc)
        return rc < 0 ? CLI_OK : rc;
    char *end = NULL;
    long long at = b.at ? strtoll(b.at, &end, 10) : 0;
    if (b.at && (!*b.at || *end || at <= 0))
        return cli_usage_error("restore", "--at needs a backup id, not '%s'", b.at);
    cstack_schema *s = NULL;
    if (cli_load_schema(b.schema, &s) != CLI_OK)
        return CLI_FAIL;
    cstack_sync_options o = {.url = b.server, .token = b.token};
    cstack_backup_info info;
    rc = cstack_restore(s, b.db, at, &o, &info);
    if (!rc)
        printf("restored backup %" PRId64 ": %u pages of %u bytes into %s\n", info.id, info.pages,
               info.page_size, b.db);
    cstack_schema_free(s);
    return report("restore", rc, &info);
}
