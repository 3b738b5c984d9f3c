/* support.h -- small helpers shared by the Criterion tests. */
#ifndef CSTACK_TEST_SUPPORT_H
#define CSTACK_TEST_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cstack.h"

/* Literal rows and keys: DATA(FV("title", T("x")), FV("views", I(3))). */
#define FV(name, val) ((cstack_field_value){(name), (val)})
#define DATA(...)                                                                                  \
    (&(cstack_data){(cstack_field_value[]){__VA_ARGS__},                                           \
                    sizeof((cstack_field_value[]){__VA_ARGS__}) / sizeof(cstack_field_value)})
#define T(s) cstack_v_text(s)
#define I(x) cstack_v_int(x)

/* Parses a schema from a string; aborts the test (cr_assert) on errors,
 * printing the diagnostics. */
cstack_schema *t_schema(const char *src);
/* Opens an in-memory runtime on `src` and bootstraps it. */
cstack *t_open_mem(const char *src);
/* Reads a whole file (NUL-terminated); NULL on failure. Free with free(). */
char *t_read_file(const char *path, size_t *len);
/* A fresh temporary directory path (malloc'd), removed by the OS later. */
char *t_tmpdir(void);
/* Writes `text` to the file dir/name and its path to path[0..cap); aborts
 * the test on failure. */
void t_write_file(char *path, size_t cap, const char *dir, const char *name, const char *text);
/* Runs a shell command, capturing stdout into a malloc'd string; returns the
 * exit status (or -1). */
int t_run(const char *cmd, char **out);
/* The text field `field` of the `model` row whose text id is `id` (malloc'd),
 * NULL when there is no such row or the field is null; aborts the test on
 * errors. */
char *t_text_of(cstack *db, const char *model, const char *id, const char *field);

/* One leading `// expect: LINE:COL: substring` line of a schema fixture:
 * a diagnostic the fixture must produce. */
typedef struct t_expect {
    int line, col;
    char text[256];
} t_expect;
/* Reads the leading expect lines of a fixture's source into out (at most
 * max); returns how many.  Aborts the test on a malformed one. */
size_t t_parse_expects(const char *src, t_expect *out, size_t max);

/* The schema of the crash tests (test_crash, test_pagestore): a Log row per
 * transaction says how many Entry rows (tx = its id) the transaction wrote,
 * so that one there in part shows. */
#define T_TX_SCHEMA                                                                                \
    "model Log {\n  id   Int @id\n  size Int\n}\n"                                                 \
    "model Entry {\n  id Int    @id\n  tx Int\n  v  String\n  @@index([tx])\n}\n"
/* Transaction `tx` of that schema: Log tx (size rows) and its `rows` Entry
 * rows (ids tx * 1000 + i), committed; on failure rolled back and the code
 * returned.  No Criterion call: fit for a forked child. */
int t_write_tx(cstack *db, long long tx, int rows);

/* Rewrites a changeset (made by one device) as if that device's site id
 * were `site_hex` (32 hex digits): its origin and every site of its site
 * table.  The server accepts a push only of the pushing site's own writes;
 * tests that push one database's changes as several devices use this. */
void t_restamp(void *changeset, size_t len, const char *site_hex);
/* Kills child `pid` with SIGKILL `ns` nanoseconds from now and reaps it;
 * returns its wait status. */
int t_kill_after(pid_t pid, long ns);

/* The URL of the test PostgreSQL cluster (malloc'd), from the state file
 * scripts/pg-cluster.sh wrote (CTest's pg_start fixture; CSTACK_TEST_PG_STATE
 * overrides its path).  Aborts the test with a clear message when there is
 * none: a test that needs PostgreSQL never skips. */
char *t_pg_url(void);
/* A new, empty database on that cluster, dropped when the process exits;
 * returns its URL (malloc'd). */
char *t_pg_database(void);

/* The store the server tests run against: CSTACK_TEST_STORE=postgres
 * selects PostgreSQL (the "_pg" variants CMake registers), unset or
 * "sqlite" the SQLite file; any other value aborts the test. */
bool t_store_pg(void);
/* The store's name as the server reports it ("sqlite" or "postgres"). */
const char *t_store_name(void);
/* What a server's --db / db_path is for the database called `name` in
 * `dir` (malloc'd): the file `dir`/`name` for SQLite; for PostgreSQL a new
 * database of the test cluster, the same one each time this process asks
 * for the same `dir`/`name`, so a restarted server finds its state. */
char *t_store_db(const char *dir, const char *name);
/* Removes that database (stop its server first): the SQLite file and its
 * journals, or the PostgreSQL database, which t_store_db then forgets. */
void t_store_remove(const char *dir, const char *name);

/* Starts `cstack serve --schema SCHEMA --db DB --port *PORT --jwt-secret
 * SECRET` (the tool of this build) with its stdout and stderr in the file
 * LOG, waits (up to 20 s) until it says where it listens and returns its
 * pid, with *port the port it announced (0 picks a free one).  Aborts the
 * test when it exits first or stays silent.  The caller ends it (kill, then
 * waitpid). */
pid_t t_serve(const char *schema_path, const char *db, const char *secret, const char *log,
              int *port);

#endif
