/*
 * policy_pg.h -- the schema's policies as PostgreSQL row-level security on
 * the app tables (policy_pg.c; docs/postgres.md, "Policies in PostgreSQL").
 */
#ifndef CS_SERVER_POLICY_PG_H
#define CS_SERVER_POLICY_PG_H

#include "schema/schema.h"
#include "util/buf.h"

/*
 * Appends the statements that (re)install model m's policies on its table:
 * the policies cstack_read, cstack_create, cstack_update and cstack_delete
 * dropped and created again, the SECURITY DEFINER functions of the rules
 * that read other rows, and ENABLE ROW LEVEL SECURITY (not FORCE: the
 * table's owner is not bound).  Idempotent; run in the caller's
 * transaction after the tables exist.  Text only from schema identifiers
 * (quoted) and literals (quoted); no user value.  Returns 0, CSTACK_EINVAL
 * (a rule that cannot be rendered, message via cs_err) or CSTACK_ENOMEM.
 */
int cs_policy_pg_ddl(cs_buf *out, const cstack_schema *s, const cs_model *m);

/* The same for every synced (not @@local) model of s. */
int cs_policy_pg_schema_ddl(cs_buf *out, const cstack_schema *s);

#endif
