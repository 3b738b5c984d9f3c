/* upgrade_support.h -- what the rolling-upgrade tests share
 * (test_server_upgrade.c, test_server_upgrade_prop.c): the schema versions
 * and devices kept in files, so that an app update can bootstrap the same
 * file with a newer schema.  Header-only, like server_support.h. */
#ifndef CSTACK_TEST_UPGRADE_SUPPORT_H
#define CSTACK_TEST_UPGRADE_SUPPORT_H

#include "server_support.h"

#define V1_NOTE                                                                                    \
    "  id      String  @id\n"                                                                       \
    "  ownerId String\n"                                                                            \
    "  title   String\n"                                                                            \
    "  status  Status  @default(OPEN)\n"                                                            \
    "  @@allow('all', ownerId == auth().id)\n"

#define V1                                                                                         \
    "auth User { id String  role String }\n"                                                        \
    "enum Status { OPEN DONE }\n"                                                                   \
    "model Note {\n" V1_NOTE "}\n"

/* v2: an optional field, a required field with a default, an enum member
 * and a model. */
#define TAG                                                                                        \
    "model Tag {\n"                                                                                 \
    "  id      String  @id\n"                                                                       \
    "  ownerId String\n"                                                                            \
    "  label   String\n"                                                                            \
    "  @@allow('all', ownerId == auth().id)\n"                                                      \
    "}\n"

/* The new model is declared before the old one: a write captured under v1
 * names its model by index, and must keep it across the update. */
#define V2_HEAD                                                                                    \
    "auth User { id String  role String }\n"                                                        \
    "enum Status { OPEN DONE ARCHIVED }\n" TAG                                                      \
    "model Note {\n" V1_NOTE "  body    String?\n"                                                  \
    "  rank    Int     @default(3)\n"

#define V2 V2_HEAD "}\n"
#define V3 V2_HEAD "  pinned  Boolean?\n}\n"

typedef struct udev {
    cstack *db;
    char path[600];
    char *token;
    cstack_sync_status st;
} udev;

static inline void udev_bootstrap(udev *d, const char *schema)
{
    cstack_schema *s = t_schema(schema);
    cr_assert_eq(cstack_open(s, d->path, NULL, &d->db), 0);
    cstack_schema_free(s);
    cr_assert_eq(cstack_bootstrap(d->db, NULL), 0, "bootstrap: %s", cstack_errmsg(d->db));
}

static inline udev udev_open(const char *schema, const char *name, const char *sub)
{
    udev d = {0};
    snprintf(d.path, sizeof d.path, "%s/%s.db", dir, name);
    udev_bootstrap(&d, schema);
    d.token = mint(sub, "user", (int64_t)time(NULL), 3600);
    return d;
}

/* The app was updated: the same file, bootstrapped with the new schema. */
static inline void udev_upgrade(udev *d, const char *schema)
{
    cstack_close(d->db);
    udev_bootstrap(d, schema);
}

static inline void udev_free(udev *d)
{
    cstack_close(d->db);
    free(d->token);
}

static inline int udev_sync(udev *d)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", cstack_server_port(srv));
    cstack_sync_options o = {.url = url, .token = d->token, .retry_min_ms = 10};
    memset(&d->st, 0, sizeof d->st);
    return cstack_sync_run_once(d->db, &o, NULL, NULL, &d->st);
}

/* Syncs and asserts that it went through and that the state matches the
 * server's checkpoint (no divergence reported). */
static inline void synced(udev *d, const char *name)
{
    int rc = udev_sync(d);
    cr_assert_eq(rc, 0, "%s sync: %s: %s", name, cstack_errname(rc), d->st.last_error);
    cr_assert_eq(d->st.checksum_ok, 1, "%s reports divergence: %s", name, d->st.last_error);
}

static inline void put(udev *d, const char *model, const char *id, cstack_field_value *f, size_t n)
{
    cstack_field_value key[] = {{"id", cstack_v_text(id)}};
    cstack_data where = {key, 1}, data = {f, n};
    cstack_row *row = NULL;
    int rc = cstack_find_unique(d->db, model, &where, NULL, 0, &row);
    cr_assert_eq(rc, 0);
    rc = row ? cstack_update(d->db, model, &where, &data, NULL)
             : cstack_create(d->db, model, &data, NULL);
    cstack_row_free(row);
    cr_assert_eq(rc, 0, "%s %s: %s", model, id, cstack_errmsg(d->db));
}

/* The JSON of one row, "" when absent (freed by the caller). */
static inline char *row_of(udev *d, const char *model, const char *id)
{
    cstack_field_value key[] = {{"id", cstack_v_text(id)}};
    cstack_data where = {key, 1};
    cstack_row *row = NULL;
    cr_assert_eq(cstack_find_unique(d->db, model, &where, NULL, 0, &row), 0);
    char *json = row ? cstack_row_json(row) : strdup("");
    cstack_row_free(row);
    return json;
}

static inline void assert_row(udev *d, const char *model, const char *id, const char *want)
{
    char *got = row_of(d, model, id);
    cr_assert_str_eq(got, want, "%s %s", model, id);
    cstack_free(got);
}

static inline void serve(const char *schema)
{
    start_opts(schema, "server.db", 0);
}


#endif
