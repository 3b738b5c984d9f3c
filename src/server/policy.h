/*
 * policy.h -- @@allow / @@deny rules rendered to SQL (policy.c) and evaluated
 * on SQLite (policy_check.c).
 *
 * The server (not the embedded runtime) enforces the schema's policies: read
 * rules filter what a user receives, write rules check every pushed row.
 * Both are SQL expressions over the row, evaluated by SQLite, with the
 * user's auth() values bound (never spliced into the text).
 */
#ifndef CS_SERVER_POLICY_H
#define CS_SERVER_POLICY_H

#include <sqlite3.h>
#include <stdbool.h>

#include "server/auth.h"
#include "store/store.h"

/*
 * Appends to q a SQL boolean expression (0/1, never NULL) that is true when
 * `auth` may perform the operation `op` (one CS_POL_* bit) on the row aliased
 * t<alias> of model m, per the model's @@allow / @@deny rules: any matching
 * deny -> false; else any matching allow -> true; else false (a model with no
 * allow rule for `op` renders "0").  auth values and literals are bound into q
 * (cs_sqlb_bind), never spliced.  Table aliases for subqueries use q->alias
 * (++), so q->alias must be at least `alias` on entry.  Bound text borrows
 * from `auth` and the schema: both must outlive the statement's execution.
 * Returns 0, CSTACK_EINVAL (op not a single bit, auth NULL), CSTACK_ETOOBIG
 * or CSTACK_ENOMEM (message via cs_err).
 */
int cs_policy_render(cs_sqlb *q, const cstack_schema *s, const cs_model *m, int alias, unsigned op,
                     const cs_auth *auth);

/*
 * Appends to out the same rules for PostgreSQL (row-level security,
 * policy_pg.c): a boolean expression, never NULL, over the row of model m
 * named by the SQL text `row` (the quoted table name inside a policy,
 * "($1)" inside a function over the row), with literals written as quoted
 * SQL literals and auth() read from the session setting cstack.auth (the
 * token's claims as JSON; unset or empty: anonymous), each auth().field
 * cast to its PostgreSQL type.  Subquery aliases are t1, t2...  The text
 * depends only on the schema, model and operation.  Returns 0,
 * CSTACK_EINVAL (op not a single bit, row empty, a number out of range) or
 * CSTACK_ENOMEM (message via cs_err).
 */
int cs_policy_render_pg(cs_buf *out, const cstack_schema *s, const cs_model *m, unsigned op,
                        const char *row);

/*
 * Whether `auth` may perform `op` on the row of model `mi` with primary key
 * `pk` (npk values in primary-key order, canonical or convertible to it) as
 * it is now in the database of schema `s` on connection `c` (false when the
 * row is not there).  A soft-deleted row is still there: its own soft-delete
 * field is an ordinary column to policies (so soft-deleting through sync can
 * be checked as the update it is).  Runs one query on `c`, from the thread
 * that owns it (cs_write_conn in a write scope, cs_read_begin, a merge's
 * check callback, or a connection of the caller's own that has the cstack
 * SQL helpers registered); the statement stays in c's cache (prepared once
 * per model and operation).  Returns 0 with *allowed, or an error code
 * (message via cs_err).
 */
int cs_policy_row_allowed(const cstack_schema *s, cs_conn *c, const cs_auth *auth, int mi,
                          unsigned op, const cstack_value *pk, bool *allowed);

/*
 * The same decision for a row given by its values (`vals`, indexed by field:
 * every column field of the model, CSTACK_NULL for a missing one, in stored
 * form) rather than by its key: a row the merge keeps hidden (parked) is
 * checked on its values as well as a visible one.  Relation paths read the
 * related rows as they are on `c`.  Same thread rules and errors as
 * cs_policy_row_allowed; `vals` must outlive the call only.
 */
int cs_policy_values_allowed(const cstack_schema *s, cs_conn *c, const cs_auth *auth, int mi,
                             unsigned op, const cstack_value *vals, bool *allowed);

/*
 * A prepared check for many rows: the same decision as cs_policy_row_allowed
 * for one user, model and operation, with the statement prepared and the
 * user's values bound once, so each row costs one primary-key lookup (a pull
 * deciding the visibility of every row it sends; ~10x cheaper per row than
 * cs_policy_row_allowed).  Same thread rules as cs_policy_row_allowed; `auth`
 * must outlive the check.  Close it before the connection closes.
 */
typedef struct cs_policy_check cs_policy_check;
int cs_policy_check_open(const cstack_schema *s, sqlite3 *conn, const cs_auth *auth, int mi,
                         unsigned op, cs_policy_check **out);
/* The decision for the row with primary key `pk` (npk values). */
int cs_policy_check_row(cs_policy_check *c, const cstack_value *pk, bool *allowed);
/* The same over rows given by their values (cs_policy_values_allowed's
 * decision, one statement for every row): open it with
 * cs_policy_values_check_open, then cs_policy_check_values per row, `vals`
 * indexed by field as for cs_policy_values_allowed. */
int cs_policy_values_check_open(const cstack_schema *s, sqlite3 *conn, const cs_auth *auth, int mi,
                                unsigned op, cs_policy_check **out);
int cs_policy_check_values(cs_policy_check *c, const cstack_value *vals, bool *allowed);
/* Frees the check; NULL is fine. */
void cs_policy_check_close(cs_policy_check *c);

/*
 * True when the model's read rules for every model involve only the row's own
 * fields and auth() (no relation paths or to-many predicates): then a row's
 * visibility can only change when the row itself changes.
 */
bool cs_policy_read_is_local(const cstack_schema *s);

/* The same for one model. */
bool cs_policy_model_read_is_local(const cs_model *m);

/* Whether every rule of model m for the operations `op` (CS_POL_* bits)
 * reads only the row's own fields and auth(): its decision on a row's values
 * then depends on nothing else in the database. */
bool cs_policy_model_is_local(const cs_model *m, unsigned op);

#endif
