/*
 * cmd_db.c -- the commands that take `--schema FILE --db DB`: `migrate` and
 * `dump`.  Both open (creating if needed) and bootstrap the database first,
 * so they work on a new file and on a database made with an older schema.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cstack_server.h"

static const char MIGRATE_USAGE[] =
    "usage: cstack migrate --schema FILE --db DB\n"
    "\n"
    "Creates the database DB (when missing) with the tables and indexes of the\n"
    "schema FILE, or migrates an existing one to it.  Additive changes (a new\n"
    "model, a new optional field or one with a default, a new index) are applied\n"
    "in place in one transaction; a change that would lose or reinterpret data\n"
    "(a dropped field, a changed type) is refused and nothing is changed.\n"
    "\n"
    "Prints one line per change made, or \"database is up to date\".\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema\n"
    "  --db DB         the SQLite database file, or a PostgreSQL database\n"
    "                  (postgresql://USER@HOST:PORT/DB or a libpq key=value\n"
    "                  string): its typed app tables and the sync server's\n"
    "                  tables, as `cstack serve --db` uses them\n"
    "\n"
    "Exit status: 0 done, 1 schema errors or migration refused or database error,\n"
    "2 bad command line.\n";

static const char DUMP_USAGE[] =
    "usage: cstack dump --schema FILE --db DB\n"
    "\n"
    "Prints every live row of every model of the schema FILE as one JSON object\n"
    "per line:\n"
    "\n"
    "  {\"model\":\"Note\",\"row\":{\"id\":\"...\",\"title\":\"...\"}}\n"
    "\n"
    "Models are ordered by name, rows by primary key.  Soft-deleted rows are not\n"
    "live and are left out.  Values use cstack's JSON mapping: Uuid, DateTime,\n"
    "Decimal and enums as strings, Bytes as base64, Json inline.  The database is\n"
    "created or migrated first, like `cstack migrate` (its report goes to\n"
    "stderr, so stdout holds only rows).\n"
    "\n"
    "options:\n"
    "  --schema FILE   the .cstack schema\n"
    "  --db DB         the SQLite database file\n"
    "\n"
    "Exit status: 0 done, 1 schema errors or database error, 2 bad command line.\n";

/* Rows fetched per query, so a large table is never held in memory whole.
 * Pages are taken with take/skip: keyset paging (a cursor) would need the
 * model's key fields, which the public API does not expose (yet). */
#define DUMP_PAGE 2048

int cli_open_db(const char *cmd, const char *schema_path, const char *db_path, char **report,
                cstack **out)
{
    cstack_schema *s = NULL;
    *out = NULL;
    if (report)
        *report = NULL;
    if (cli_load_schema(schema_path, &s) != CLI_OK)
        return CLI_FAIL;
    cstack *db = NULL;
    int rc = cstack_open(s, db_path, NULL, &db);
    cstack_schema_free(s);
    if (rc == CSTACK_OK)
        rc = cstack_bootstrap(db, report);
    if (rc != CSTACK_OK) {
        /* The runtime's message says what failed (for a refused migration:
         * the model, the field and the change); add only where. */
        fprintf(stderr, "cstack %s: %s: %s\n", cmd, db_path,
                db ? cstack_errmsg(db) : cstack_errstr(rc));
        if (report) {
            cstack_free(*report);
            *report = NULL;
        }
        cstack_close(db);
        return CLI_FAIL;
    }
    *out = db;
    return CLI_OK;
}

/* Parses the --schema/--db options shared by migrate and dump.  *help is set
 * (and the usage printed) when --help was asked for. */
static int parse_db_args(int argc, char **argv, const char *usage, const char **schema,
                         const char **dbpath, int *help)
{
    const cli_opt opts[] = {{"--schema", schema, NULL}, {"--db", dbpath, NULL}};
    cli_args a;
    int rc = cli_parse(argv[0], argc, argv, opts, 2, 0, &a);
    if (rc != CLI_OK)
        return rc;
    *help = a.help;
    if (a.help) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (!*schema)
        return cli_usage_error(argv[0], "missing --schema FILE");
    if (!*dbpath)
        return cli_usage_error(argv[0], "missing --db DB");
    return CLI_OK;
}

/* Writes the bootstrap report, making sure it ends with a newline. */
static void print_report(FILE *f, const char *prefix, const char *report)
{
    const char *p = report;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > 0)
            fprintf(f, "%s%.*s\n", prefix, (int)n, p);
        p += n + (nl ? 1 : 0);
    }
}

int cmd_migrate(int argc, char **argv)
{
    const char *schema = NULL, *dbpath = NULL;
    int help = 0;
    int rc = parse_db_args(argc, argv, MIGRATE_USAGE, &schema, &dbpath, &help);
    if (rc != CLI_OK || help)
        return rc;
    if (cstack_server_db_is_postgres(dbpath)) {
        char err[1024] = "";
        if (cstack_server_migrate_postgres(schema, dbpath, err, sizeof err) != CSTACK_OK) {
            fprintf(stderr, "cstack migrate: %s\n", err);
            return CLI_FAIL;
        }
        puts("the PostgreSQL database is up to date with the schema");
        return CLI_OK;
    }
    cstack *db = NULL;
    char *report = NULL;
    rc = cli_open_db(argv[0], schema, dbpath, &report, &db);
    if (rc != CLI_OK)
        return rc;
    if (report && report[strspn(report, " \t\r\n")] != '\0')
        print_report(stdout, "", report);
    else
        puts("database is up to date");
    cstack_free(report);
    /* A sync server's database keeps every schema it ran, so that devices
     * still on an older (additive) one keep syncing. */
    int recorded = 0;
    rc = cstack_server_record_schema(db, &recorded);
    if (rc == CSTACK_OK && recorded)
        puts("recorded the schema as a new version of this sync server");
    else if (rc != CSTACK_OK)
        fprintf(stderr, "cstack migrate: %s: cannot record the schema version: %s\n", dbpath,
                cstack_errmsg(db));
    cstack_close(db);
    return rc == CSTACK_OK ? CLI_OK : CLI_FAIL;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Prints the live rows of one model, a page at a time. */
static int dump_model(cstack *db, const char *model)
{
    for (int64_t skip = 0;; skip += DUMP_PAGE) {
        cstack_query q = {0};
        q.take = DUMP_PAGE;
        q.skip = skip;
        cstack_rows *rows = NULL;
        int rc = cstack_find_many(db, model, &q, &rows);
        if (rc != CSTACK_OK) {
            fprintf(stderr, "cstack dump: %s: %s\n", model, cstack_errmsg(db));
            return CLI_FAIL;
        }
        size_t n = cstack_rows_count(rows);
        for (size_t i = 0; i < n; i++) {
            char *json = cstack_row_json(cstack_rows_get(rows, i));
            if (!json) {
                cstack_rows_free(rows);
                fputs("cstack dump: out of memory\n", stderr);
                return CLI_FAIL;
            }
            printf("{\"model\":\"%s\",\"row\":%s}\n", model, json);
            cstack_free(json);
        }
        cstack_rows_free(rows);
        if (n < DUMP_PAGE)
            return CLI_OK;
    }
}

int cmd_dump(int argc, char **argv)
{
    const char *schema = NULL, *dbpath = NULL;
    int help = 0;
    int rc = parse_db_args(argc, argv, DUMP_USAGE, &schema, &dbpath, &help);
    if (rc != CLI_OK || help)
        return rc;
    cstack *db = NULL;
    char *report = NULL;
    rc = cli_open_db(argv[0], schema, dbpath, &report, &db);
    if (rc != CLI_OK)
        return rc;
    if (report)
        print_report(stderr, "cstack dump: migrated: ", report);
    cstack_free(report);

    const cstack_schema *s = cstack_schema_of(db);
    size_t nmodels = cstack_schema_model_count(s);
    const char **names = calloc(nmodels ? nmodels : 1, sizeof *names);
    if (!names) {
        cstack_close(db);
        fputs("cstack dump: out of memory\n", stderr);
        return CLI_FAIL;
    }
    for (size_t i = 0; i < nmodels; i++)
        names[i] = cstack_schema_model_name(s, i);
    qsort(names, nmodels, sizeof *names, cmp_names);
    for (size_t i = 0; i < nmodels && rc == CLI_OK; i++)
        rc = dump_model(db, names[i]);
    free(names);
    cstack_close(db);
    return rc;
}
