/* support.h -- small helpers shared by the Criterion tests. */
#ifndef CSTACK_TEST_SUPPORT_H
#define CSTACK_TEST_SUPPORT_H

#include <stddef.h>

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
/* Runs a shell command, capturing stdout into a malloc'd string; returns the
 * exit status (or -1). */
int t_run(const char *cmd, char **out);
/* The text field `field` of the `model` row whose text id is `id` (malloc'd),
 * NULL when there is no such row; aborts the test on errors. */
char *t_text_of(cstack *db, const char *model, const char *id, const char *field);

/* The URL of the test PostgreSQL cluster (malloc'd), from the state file
 * scripts/pg-cluster.sh wrote (CTest's pg_start fixture; CSTACK_TEST_PG_STATE
 * overrides its path).  Aborts the test with a clear message when there is
 * none: a test that needs PostgreSQL never skips. */
char *t_pg_url(void);
/* A new, empty database on that cluster, dropped when the process exits;
 * returns its URL (malloc'd). */
char *t_pg_database(void);

#endif
