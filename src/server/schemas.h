/*
 * schemas.h -- rolling schema upgrades on the server (docs/sync.md,
 * "Rolling upgrades").
 *
 * The server store keeps every schema version it has run
 * (_cstack_srv_schemas: adoption order, hash, source text).  A device whose
 * schema is one of them and an additive ancestor of the current one (the
 * migration planner, cs_sql_migrate, plans it without a refusal) keeps
 * syncing: its pushes are projected up onto the current schema, its pulls,
 * streams and checksums down onto its own.  A device that upgraded asks once
 * for what its old schema lacked (a pull with `upgrade_from`).
 */
#ifndef CS_SERVER_SCHEMAS_H
#define CS_SERVER_SCHEMAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "schema/schema.h"
#include "util/buf.h"

typedef struct cs_srv_version {
    char hash[65];
    cstack_schema *schema; /* NULL when its text no longer parses */
    bool ancestor;         /* the current schema, or an additive ancestor of it */
} cs_srv_version;

typedef struct cs_srv_versions {
    const cstack_schema *current; /* borrowed */
    cs_srv_version *v;            /* in adoption order */
    size_t n;
} cs_srv_versions;

/* Records the schema `db` runs as a version of this server (once per
 * hash), creating the table when `create` (a server store) or only when it
 * exists already (`cstack migrate` on a database that may be a device's).
 * *recorded (NULL ok) says whether a new version was added. */
int cs_srv_versions_record(cstack *db, bool create, bool *recorded);
/* Records the current schema, then loads every version and decides which
 * are additive ancestors of the current one.  Free with
 * cs_srv_versions_free. */
int cs_srv_versions_open(cstack *db, cs_srv_versions **out);
void cs_srv_versions_free(cs_srv_versions *v);
/* The version of that hash, or NULL when this server never ran it. */
const cs_srv_version *cs_srv_versions_find(const cs_srv_versions *v, const char *hash);

/* Rewrites changeset `in` made with schema `from` into one of schema `to`
 * (models and fields matched by name): rows of models `to` lacks and
 * columns of fields it lacks are left out; an enum member `to` does not
 * know is mapped (cs_srv_enum_map) with its clock less one, so the real
 * value wins once the device knows the member; a required field with a
 * literal default that `from` lacks is filled with the default at clock 0
 * on alive rows (it never beats a written value).  With `had` set, only
 * what a device on `had` lacks is kept: rows of models `had` lacks, and of
 * other rows the columns of new fields and enum members `had` does not
 * know (rows left with nothing are left out).  *out is malloc'd;
 * *rows receives the row count.  CSTACK_EINVAL with `err` on a bad input. */
int cs_srv_project(const cstack_schema *from, const cstack_schema *to, const cstack_schema *had,
                   const void *in, size_t len, void **out, size_t *outlen, int64_t *rows,
                   char *err, size_t errlen);

/* The value a device on `view` sees for an enum member it does not know in
 * field `vf`: the field's default when it has one, else null when the field
 * is optional, else the enum's first member.  Returns false (v untouched)
 * when v is no such member. */
bool cs_srv_enum_map(const cstack_schema *view, const cs_field *vf, const char **text,
                     size_t *len, bool *null);

/* Appends the row JSON a device on `view` computes its checksum over for a
 * row of model `vm` (of `view`) read with the server's full shape. */
int cs_srv_view_row_json(cs_buf *b, const cstack_schema *view, const cs_model *vm,
                         const cstack_row *row);

#endif
