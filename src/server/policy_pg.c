/*
 * policy_pg.c -- the schema's @@allow / @@deny rules as PostgreSQL
 * row-level security on the app tables (docs/postgres.md, "Policies in
 * PostgreSQL").
 *
 * Each synced model's table gets one policy per operation, named for it,
 * each rule set rendered by the same renderer as the server's SQLite checks
 * (policy.c, cs_policy_render_pg):
 *
 *     cstack_read    FOR SELECT USING (read)
 *     cstack_create  FOR INSERT WITH CHECK (create)
 *     cstack_update  FOR UPDATE USING (update) WITH CHECK (update)
 *     cstack_delete  FOR DELETE USING (delete)
 *
 * The server checks update on the row before and after a write, so the
 * update rules are both USING (the row before) and WITH CHECK (after).
 * Row-level security is ENABLEd, not FORCEd: the tables' owner (the role the
 * cstack servers and `cstack migrate` connect as) and superusers are not
 * bound, so the servers' writes, the capture triggers' queue and the
 * foreign keys' checks work as before; any other role is.
 *
 * Rules that read only the row and auth() are written inline (the planner
 * can use an index on `ownerId`).  A rule that reads other rows (a relation
 * path, a to-many predicate) is written as a call of a SECURITY DEFINER
 * function over the row, `_cstack_policy_<op>(row)`, one overload per table:
 * its subqueries then read the related tables as their owner, unfiltered by
 * those tables' own policies, exactly as the server's check reads its
 * working copy (inline, they would see only the related rows the caller
 * may read, and a table whose rule reads itself would recurse).  Its
 * search_path is the one it was created with, so a caller cannot redirect
 * its table names.
 *
 * Every statement is idempotent: the policies are dropped and created again
 * and the functions replaced (or dropped when the rule became local), so a
 * schema change takes effect in the migration's transaction.
 */
#include "server/policy_pg.h"

#include <string.h>

#include "cstack_server.h"
#include "server/policy.h"
#include "util/try.h"

typedef struct pg_op {
    unsigned op;
    const char *name; /* of the policy, cstack_<name>, and of its function */
    const char *command;
} pg_op;

static const pg_op OPS[] = {{CS_POL_READ, "read", "SELECT"},
                            {CS_POL_CREATE, "create", "INSERT"},
                            {CS_POL_UPDATE, "update", "UPDATE"},
                            {CS_POL_DELETE, "delete", "DELETE"}};

#define NOPS (sizeof OPS / sizeof OPS[0])

/* "_cstack_policy_<op>("Table")": the function's signature, and its call
 * on the policy's row (the table's name is its whole-row value). */
static int fn_ref(cs_buf *out, const cs_model *m, const pg_op *o)
{
    TRY(cs_buf_printf(out, "_cstack_policy_%s(", o->name));
    TRY(cs_buf_ident(out, m->table));
    return cs_buf_putc(out, ')');
}

/* The function of a rule set that reads other rows, or its removal when it
 * reads only the row (it would otherwise linger, unused). */
static int fn_ddl(cs_buf *out, const cstack_schema *s, const cs_model *m, const pg_op *o)
{
    if (cs_policy_model_is_local(m, o->op)) {
        TRY(cs_buf_puts(out, "DROP FUNCTION IF EXISTS "));
        TRY(fn_ref(out, m, o));
        return cs_buf_puts(out, ";\n");
    }
    cs_buf body = CS_BUF_INIT;
    int rc = cs_buf_puts(&body, "SELECT ");
    rc = rc ? rc : cs_policy_render_pg(&body, s, m, o->op, "($1)");
    rc = rc ? rc : cs_buf_puts(out, "CREATE OR REPLACE FUNCTION ");
    rc = rc ? rc : fn_ref(out, m, o);
    rc = rc ? rc
            : cs_buf_puts(out, " RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER "
                               "SET search_path FROM CURRENT AS ");
    /* A quoted literal, not a dollar-quoted body: the schema's string
     * literals cannot end it. */
    rc = rc ? rc : cs_buf_sql_str(out, body.data);
    rc = rc ? rc : cs_buf_puts(out, ";\n");
    cs_buf_free(&body);
    return rc;
}

/* The rule set of o on the policy's row: inline, or its function's call. */
static int rule(cs_buf *out, const cstack_schema *s, const cs_model *m, const pg_op *o)
{
    TRY(cs_buf_putc(out, '('));
    if (cs_policy_model_is_local(m, o->op)) {
        cs_buf row = CS_BUF_INIT;
        int rc = cs_buf_ident(&row, m->table);
        rc = rc ? rc : cs_policy_render_pg(out, s, m, o->op, row.data);
        cs_buf_free(&row);
        TRY(rc);
    } else {
        TRY(fn_ref(out, m, o));
    }
    return cs_buf_putc(out, ')');
}

static int on_table(cs_buf *out, const cs_model *m)
{
    TRY(cs_buf_puts(out, " ON "));
    return cs_buf_ident(out, m->table);
}

int cs_policy_pg_ddl(cs_buf *out, const cstack_schema *s, const cs_model *m)
{
    for (size_t i = 0; i < NOPS; i++) {
        TRY(cs_buf_printf(out, "DROP POLICY IF EXISTS cstack_%s", OPS[i].name));
        TRY(on_table(out, m));
        TRY(cs_buf_puts(out, ";\n"));
    }
    for (size_t i = 0; i < NOPS; i++)
        TRY(fn_ddl(out, s, m, &OPS[i]));
    TRY(cs_buf_puts(out, "ALTER TABLE "));
    TRY(cs_buf_ident(out, m->table));
    TRY(cs_buf_puts(out, " ENABLE ROW LEVEL SECURITY;\n"));
    for (size_t i = 0; i < NOPS; i++) {
        const pg_op *o = &OPS[i];
        TRY(cs_buf_printf(out, "CREATE POLICY cstack_%s", o->name));
        TRY(on_table(out, m));
        TRY(cs_buf_printf(out, " FOR %s %s ", o->command,
                          o->op == CS_POL_CREATE ? "WITH CHECK" : "USING"));
        TRY(rule(out, s, m, o));
        if (o->op == CS_POL_UPDATE) {
            TRY(cs_buf_puts(out, " WITH CHECK "));
            TRY(rule(out, s, m, o));
        }
        TRY(cs_buf_puts(out, ";\n"));
    }
    return 0;
}

int cs_policy_pg_schema_ddl(cs_buf *out, const cstack_schema *s)
{
    for (size_t i = 0; i < s->nmodels; i++)
        if (!s->models[i].local)
            TRY(cs_policy_pg_ddl(out, s, &s->models[i]));
    return 0;
}

int cstack_server_postgres_policies(const cstack_schema *schema, char **out)
{
    if (!out)
        return CSTACK_EINVAL;
    *out = NULL;
    if (!schema)
        return CSTACK_EINVAL;
    cs_buf b = CS_BUF_INIT;
    int rc = cs_policy_pg_schema_ddl(&b, schema);
    if (!rc && !(*out = cs_buf_take(&b)))
        rc = CSTACK_ENOMEM;
    cs_buf_free(&b);
    return rc;
}
