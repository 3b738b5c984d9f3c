/*
 * pg.h -- what the PostgreSQL store's parts share (docs/postgres.md).
 *
 *   store_pg*.c   the store (cs_srv_store_pg): the working copy, the global
 *                 lock, replicating each write transaction into PostgreSQL,
 *                 catching up with other servers, LISTEN/NOTIFY
 *   pg_typed*.c   the app tables as typed PostgreSQL tables: their DDL and
 *                 migrations, values between SQLite's storage and
 *                 PostgreSQL's types, the backend-write triggers and queue
 *   pg_util.c     small libpq helpers both use
 *
 * Every function runs on a connection the caller owns and inside the
 * caller's PostgreSQL transaction (the store's, under its lock); none
 * begins or ends one.  Errors: a negative CSTACK_E* code, with `err`
 * filled (CS_SRV_INTERNAL unless said otherwise) naming what failed.
 */
#ifndef CS_SERVER_PG_H
#define CS_SERVER_PG_H

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/store.h"

/* True when `target` (a --db value) names PostgreSQL rather than a SQLite
 * file: a postgres:// or postgresql:// URL, or a libpq key=value string
 * (it contains '=' and no '/'). */
bool cs_pg_is_target(const char *target);

/* ---- pg_util.c ------------------------------------------------------------- */

/* Runs `sql` (no parameters, one or more statements).  0 or CSTACK_EIO. */
int cs_pg_exec(PGconn *c, const char *sql, cs_srv_err *err);
/* Checks a result: 0 when its status is `want`, else CSTACK_EIO with the
 * server's message and `what` in err.  Does not clear r. */
int cs_pg_check(PGconn *c, const PGresult *r, ExecStatusType want, const char *what,
                cs_srv_err *err);

/* The NOTIFY channels.  CS_PG_CHANNEL_LOG: a server committed log entry
 * `seq` (payload: its decimal seq).  CS_PG_CHANNEL_BACKEND: another client
 * wrote an app table (payload empty); the queue holds what it wrote. */
#define CS_PG_CHANNEL_LOG "cstack_log"
#define CS_PG_CHANNEL_BACKEND "cstack_backend"

/* The transaction-local setting every server transaction sets ('on'), so
 * the capture triggers tell the servers' own writes from a backend's. */
#define CS_PG_SERVER_SETTING "cstack.server"

/* ---- pg_typed*.c ------------------------------------------------------------ */

typedef struct cs_pg_typed cs_pg_typed;

/* Creates what the app tables need for `schema` on `c`, or migrates it from
 * `old` (the schema the database last ran; NULL: none yet, create all):
 * each synced model's table as `cstack ddl --dialect postgres` renders it
 * (foreign keys and unique constraints DEFERRABLE INITIALLY DEFERRED, so a
 * transaction replayed row by row may pass through states SQLite's merge
 * never shows), its indexes, the backend queue and the capture triggers.
 * Additive changes are applied; a destructive one is refused
 * (CS_SRV_CONFLICT, CSTACK_ESCHEMA) naming the model and field, changing
 * nothing. */
int cs_pg_typed_ensure(PGconn *c, const cstack_schema *old, const cstack_schema *schema,
                       cs_srv_err *err);

/* A context for the calls below: prepared statements on `c` for `schema`
 * (borrowed; both outlive it).  It also keeps one statement per model on
 * the last working-copy connection a call passed (replaced when a call
 * passes another): free the context before closing that connection. */
int cs_pg_typed_new(PGconn *c, const cstack_schema *schema, cs_pg_typed **out, cs_srv_err *err);
void cs_pg_typed_free(cs_pg_typed *t);

/* True when SQLite table `table` of the working copy is the app table of a
 * synced model (*model its index): its rows go to a typed table, all other
 * tables to the store's generic side table. */
bool cs_pg_typed_table(const cs_pg_typed *t, const char *table, int *model);

/* Makes PostgreSQL's row of model `model` whose primary key is `pk` (the
 * key columns' values in key order, as the working copy stores them) what
 * the working copy `conn` holds now: written when the row exists there,
 * deleted when it does not.  May queue the statement: cs_pg_typed_flush
 * sends what is queued, and the caller calls it before COMMIT. */
int cs_pg_typed_sync_row(cs_pg_typed *t, sqlite3 *conn, int model, sqlite3_value *const *pk,
                         cs_srv_err *err);
int cs_pg_typed_flush(cs_pg_typed *t, cs_srv_err *err);

/* Copies every row of model `model` from PostgreSQL into the working copy's
 * (empty) table through `conn`, converted to SQLite's storage (bootstrap of
 * a server's working copy).  Rows that backend writes waiting in the queue
 * touched are loaded as the servers last wrote them (or not at all when a
 * backend inserted them): run cs_pg_backend_ingest after loading, so that
 * the backend's writes merge with the state the servers' clocks describe.  Needs the caller's
 * transaction (it reads through a cursor). */
int cs_pg_typed_load(cs_pg_typed *t, sqlite3 *conn, int model, cs_srv_err *err);

/* Writes every row of the working copy's table of model `model` into
 * PostgreSQL's (replacing what it held): a new database's first state, and
 * after a migration. */
int cs_pg_typed_save(cs_pg_typed *t, sqlite3 *conn, int model, cs_srv_err *err);

/* The site id the changes of backend writes carry (16 bytes): no device's,
 * so a backend write's clock never equals one a device or server issued. */
#define CS_PG_BACKEND_SITE "cstack\0backend\0\0"

/* Merges up to `limit` writes that other PostgreSQL clients made to the
 * app tables (the capture triggers' queue, oldest first) into the working
 * copy db, inside the caller's open merge write scope (CS_WRITE_MERGE):
 * each backend transaction's rows as a changeset from CS_PG_BACKEND_SITE
 * whose columns carry the clock of its commit.  Removes the entries from the
 * queue and queues the writes that make PostgreSQL's rows the merge's
 * winners (cs_pg_typed_flush sends them).  *n: how many entries were taken;
 * fewer than `limit` means the queue is empty. */
int cs_pg_backend_ingest(cs_pg_typed *t, cstack *db, size_t limit, size_t *n, cs_srv_err *err);

/* ---- store_pg*.c ------------------------------------------------------------ */

extern const cs_srv_store_ops cs_srv_store_pg;

/* `target` fit for messages and logs: the password of a URL's userinfo
 * left out, and every password=... value replaced by ***. */
void cs_pg_target_safe(const char *target, char *out, size_t cap);

#endif
