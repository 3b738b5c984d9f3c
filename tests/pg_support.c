/* pg_support.c -- the test PostgreSQL cluster (support.h, "PostgreSQL"):
 * linked into every tests/test_*.c executable, not into the few test
 * programs built without the server library. */
#include "support.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- PostgreSQL ----------------------------------------------------------- */

char *t_pg_url(void)
{
    const char *state = getenv("CSTACK_TEST_PG_STATE");
    if (!state || !*state)
        state = CSTACK_PG_STATE;
    FILE *f = fopen(state, "r");
    cr_assert_not_null(f,
                       "no PostgreSQL cluster for this test: %s is missing (run the test through "
                       "ctest, whose pg_start fixture starts one with scripts/pg-cluster.sh)",
                       state);
    char line[1024], *url = NULL;
    while (!url && fgets(line, sizeof line, f))
        if (strncmp(line, "PG_URL='", 8) == 0) {
            char *end = strchr(line + 8, '\'');
            if (end)
                *end = 0;
            url = strdup(line + 8);
        }
    fclose(f);
    cr_assert_not_null(url, "%s names no PG_URL", state);
    return url;
}

/* Databases made by t_pg_database in this process, dropped when it exits. */
static char *pg_made[256];
static int npg_made;
static char *pg_admin;

static void pg_exec(const char *url, const char *sql, bool must)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        if (must)
            cr_assert_fail("cannot connect to the test cluster %s: %s", url, PQerrorMessage(c));
        PQfinish(c);
        return;
    }
    PGresult *r = PQexec(c, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok && must)
        cr_assert_fail("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

static void drop_pg_made(void)
{
    for (int i = 0; i < npg_made; i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", pg_made[i]);
        pg_exec(pg_admin, sql, false);
        free(pg_made[i]);
    }
    npg_made = 0;
    free(pg_admin);
    pg_admin = NULL;
}

char *t_pg_database(void)
{
    char *url = t_pg_url();
    static unsigned seq;
    char name[64], sql[128];
    snprintf(name, sizeof name, "t_%ld_%u", (long)getpid(), seq++);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    pg_exec(url, sql, true);
    if (!pg_admin) {
        pg_admin = strdup(url);
        atexit(drop_pg_made);
    }
    if (npg_made < 256)
        pg_made[npg_made++] = strdup(name);
    /* The cluster's URL ends in "/postgres": the same server, another
     * database. */
    char *slash = strrchr(url, '/');
    cr_assert_not_null(slash);
    *slash = 0;
    size_t n = strlen(url) + strlen(name) + 2;
    char *out = malloc(n);
    snprintf(out, n, "%s/%s", url, name);
    free(url);
    return out;
}
