/* pg_util.c -- small libpq helpers of the PostgreSQL store (pg.h). */
#include <stdio.h>
#include <string.h>

#include "server/pg.h"

bool cs_pg_is_target(const char *target)
{
    if (!target)
        return false;
    if (strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0)
        return true;
    return strchr(target, '=') != NULL && strchr(target, '/') == NULL;
}

/* The server's message without its trailing newline. */
static void set_pg_err(cs_srv_err *err, const char *what, const char *msg)
{
    char text[sizeof err->message];
    snprintf(text, sizeof text, "PostgreSQL: %s: %s", what, msg && *msg ? msg : "failed");
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
        text[--n] = 0;
    cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_EIO, text);
}

int cs_pg_check(PGconn *c, const PGresult *r, ExecStatusType want, const char *what,
                cs_srv_err *err)
{
    if (r && PQresultStatus(r) == want)
        return 0;
    set_pg_err(err, what, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    return CSTACK_EIO;
}

int cs_pg_exec(PGconn *c, const char *sql, cs_srv_err *err)
{
    PGresult *r = PQexec(c, sql);
    int rc = cs_pg_check(c, r, PGRES_COMMAND_OK, sql, err);
    if (rc && r && PQresultStatus(r) == PGRES_TUPLES_OK)
        rc = 0;
    PQclear(r);
    return rc;
}
