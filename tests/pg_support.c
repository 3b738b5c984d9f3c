/* pg_support.c -- the test PostgreSQL cluster, the store the server tests
 * run against and `cstack serve` children (support.h): linked into every
 * tests/test_*.c executable, not into the few test programs built without
 * the server library. */
#include "support.h"

#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
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

/* Drops the database of `url` (one t_pg_database made) now. */
static void pg_drop(const char *url)
{
    const char *name = strrchr(url, '/');
    cr_assert_not_null(name);
    name++;
    for (int i = 0; i < npg_made; i++)
        if (strcmp(pg_made[i], name) == 0) {
            char sql[160];
            snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
            pg_exec(pg_admin, sql, true);
            free(pg_made[i]);
            pg_made[i] = pg_made[--npg_made];
            return;
        }
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

/* ---- the store under test -------------------------------------------------- */

bool t_store_pg(void)
{
    const char *s = getenv("CSTACK_TEST_STORE");
    if (!s || !*s || strcmp(s, "sqlite") == 0)
        return false;
    cr_assert_str_eq(s, "postgres", "CSTACK_TEST_STORE is 'sqlite' or 'postgres', not '%s'", s);
    return true;
}

const char *t_store_name(void)
{
    return t_store_pg() ? "postgres" : "sqlite";
}

/* The databases t_store_db handed out in this process, by file path. */
static struct {
    char *path;
    char *url;
} store_made[64];
static int nstore_made;

char *t_store_db(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    cr_assert_not_null(path);
    snprintf(path, n, "%s/%s", dir, name);
    if (!t_store_pg())
        return path;
    for (int i = 0; i < nstore_made; i++)
        if (strcmp(store_made[i].path, path) == 0) {
            free(path);
            return strdup(store_made[i].url);
        }
    cr_assert_lt(nstore_made, 64, "more server databases than t_store_db keeps");
    store_made[nstore_made].path = path;
    store_made[nstore_made].url = t_pg_database();
    return strdup(store_made[nstore_made++].url);
}

void t_store_remove(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!t_store_pg()) {
        static const char *const SUFFIX[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < sizeof SUFFIX / sizeof SUFFIX[0]; i++) {
            char p[1100];
            snprintf(p, sizeof p, "%s%s", path, SUFFIX[i]);
            unlink(p);
        }
        return;
    }
    for (int i = 0; i < nstore_made; i++)
        if (strcmp(store_made[i].path, path) == 0) {
            pg_drop(store_made[i].url);
            free(store_made[i].path);
            free(store_made[i].url);
            store_made[i] = store_made[--nstore_made];
            return;
        }
}

/* ---- `cstack serve` children ------------------------------------------------ */

/* The port in "listening on http://ADDR:PORT" once the line is whole, or 0. */
static int announced_port(const char *log)
{
    char *text = t_read_file(log, NULL);
    const char *at = text ? strstr(text, "listening on http://") : NULL;
    const char *colon = at ? strchr(at + strlen("listening on http://"), ':') : NULL;
    int port = colon && strchr(colon, '\n') ? atoi(colon + 1) : 0;
    free(text);
    return port;
}

pid_t t_serve(const char *schema_path, const char *db, const char *secret, const char *log,
              int *port)
{
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", *port);
    unlink(log);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* It dies with the test, whatever ends the test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(CSTACK_CLI, "cstack", "serve", "--schema", schema_path, "--db", db, "--port",
              portarg, "--jwt-secret", secret, (char *)NULL);
        _exit(127);
    }
    for (int waited = 0; waited < 20000; waited += 20) {
        int got = announced_port(log), status;
        if (got) {
            *port = got;
            return pid;
        }
        if (waitpid(pid, &status, WNOHANG) != 0) {
            char *text = t_read_file(log, NULL);
            cr_assert_fail("cstack serve exited early: %s", text ? text : "");
        }
        nanosleep(&(struct timespec){0, 20 * 1000000L}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_fail("cstack serve did not announce its port in 20 s (log: %s)", log);
    return -1;
}
