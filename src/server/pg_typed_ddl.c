/*
 * pg_typed_ddl.c -- the app tables in PostgreSQL: created, migrated, and
 * watched for other clients' writes (cs_pg_typed_ensure, pg.h).
 *
 * Tables are those of `cstack ddl --dialect postgres` (ddl.c), with three
 * differences the store needs (CS_DIALECT_PG_STORE):
 *   - Json columns are JSON, not JSONB: JSON keeps the exact text, so a
 *     value comes back byte for byte (pg_typed_val.c).  A backend queries
 *     them with ->, ->> or a ::jsonb cast.
 *   - Foreign keys and unique constraints are DEFERRABLE INITIALLY
 *     DEFERRED: a transaction of the working copy reaches PostgreSQL as rows
 *     in no particular order (pg_typed.c), which may pass through states
 *     SQLite never showed (a child before its parent, two rows swapping a
 *     unique value).  A unique that a foreign key references stays an
 *     immediate unique index, because PostgreSQL lets foreign keys reference
 *     only those.  Indexes and uniques over a JSON column (which has no
 *     equality) use its text, which is what SQLite compares too.
 *   - Triggers: after every row another client inserts, updates or deletes,
 *     the row's key (a JSONB array of its primary-key columns) goes into
 *     _cstack_pg_backend and `cstack_backend` is notified; a transaction
 *     that set cstack.server (the servers') is skipped.  The capture
 *     function is SECURITY DEFINER, so a backend role that may write the
 *     app tables needs no right on the queue (which it must not write).
 *   - Row-level security: the schema's policies on every app table
 *     (policy_pg.c), for backends that connect as another role.
 *
 * A migration is judged by the migration planner (migrate.c), so PostgreSQL
 * refuses exactly what SQLite refuses; what it allows is done in place:
 * CREATE TABLE for new models, ADD COLUMN, DROP NOT NULL, SET/DROP DEFAULT,
 * a swapped enum CHECK, indexes and foreign keys dropped or added when
 * their definition changed.  All statements go in one round trip, inside the
 * caller's transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/pg_typed_int.h"
#include "server/policy_pg.h"
#include "util/try.h"

#define DEFERRED " DEFERRABLE INITIALLY DEFERRED"

/* The queue, and the trigger function every app table calls with its
 * model's name and its primary-key columns as arguments (trigger_ddl).
 * The trigger is a deferred constraint trigger: it runs when the backend's
 * transaction commits, so `at` (clock_timestamp()) is its commit time, and
 * each entry holds what the backend wrote: the row before (`old`, NULL for
 * an insert) and after (`new`, NULL for a delete), as JSON, which keeps
 * every value's text, with the transaction's id (`xid`).  The ingest
 * applies exactly that, not whatever PostgreSQL holds later (a server's
 * write of the same row may have replaced it meanwhile).  A server that
 * starts while entries wait loads the state before them (`old` of a key's
 * first entry, cs_pg_typed_load).  An update that changes the key queues a
 * delete of the old key and an insert of the new.  Only writes outside a
 * server's transaction are queued: the trigger's WHEN, evaluated when the
 * row is written, spares the servers' rows a call into PL/pgSQL.
 * Entries queued by the earlier, immediate trigger (no xid) get the row
 * PostgreSQL holds as their `new` (legacy_ddl). */
static const char queue_ddl[] =
    "SET LOCAL client_min_messages = warning;\n" /* no "already exists, skipping" */
    /* The migration's own writes (a new column filled) are no backend's. */
    "SET LOCAL " CS_PG_SERVER_SETTING " = 'on';\n"
    "CREATE TABLE IF NOT EXISTS " CS_PG_QUEUE " (\n"
    "    id bigserial PRIMARY KEY,\n"
    "    model text NOT NULL,\n"
    "    key jsonb NOT NULL,\n"
    "    old json,\n"
    "    at timestamptz NOT NULL DEFAULT clock_timestamp()\n"
    ");\n"
    "ALTER TABLE " CS_PG_QUEUE " ADD COLUMN IF NOT EXISTS new json, "
    "ADD COLUMN IF NOT EXISTS xid xid8;\n"
    "CREATE INDEX IF NOT EXISTS " CS_PG_QUEUE "_model_key_idx ON " CS_PG_QUEUE " (model, key);\n"
    "CREATE TABLE IF NOT EXISTS _cstack_pg_meta(key text PRIMARY KEY, value text NOT NULL);\n"
    "CREATE OR REPLACE FUNCTION _cstack_pg_capture() RETURNS trigger\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $cstack$\n"
    "DECLARE\n"
    "    r jsonb;\n"
    "    old_key jsonb;\n"
    "    new_key jsonb;\n"
    "    o json;\n"
    "    n json;\n"
    "BEGIN\n"
    "    IF TG_OP <> 'INSERT' THEN\n"
    "        r := to_jsonb(OLD);\n"
    "        o := to_json(OLD);\n"
    "        old_key := '[]';\n"
    "        FOR i IN 1 .. TG_NARGS - 1 LOOP\n"
    "            old_key := old_key || jsonb_build_array(r -> TG_ARGV[i]);\n"
    "        END LOOP;\n"
    "    END IF;\n"
    "    IF TG_OP <> 'DELETE' THEN\n"
    "        r := to_jsonb(NEW);\n"
    "        n := to_json(NEW);\n"
    "        new_key := '[]';\n"
    "        FOR i IN 1 .. TG_NARGS - 1 LOOP\n"
    "            new_key := new_key || jsonb_build_array(r -> TG_ARGV[i]);\n"
    "        END LOOP;\n"
    "    END IF;\n"
    "    IF old_key IS NOT NULL AND new_key IS NOT NULL AND old_key <> new_key THEN\n"
    "        INSERT INTO " CS_PG_QUEUE " (model, key, old, new, xid, at) VALUES (TG_ARGV[0], "
    "old_key, o, NULL, pg_current_xact_id(), clock_timestamp());\n"
    "        o := NULL;\n"
    "    END IF;\n"
    "    INSERT INTO " CS_PG_QUEUE " (model, key, old, new, xid, at) VALUES (TG_ARGV[0], "
    "coalesce(new_key, old_key), o, n, pg_current_xact_id(), clock_timestamp());\n"
    "    PERFORM pg_notify('" CS_PG_CHANNEL_BACKEND "', '');\n"
    "    RETURN NULL;\n"
    "END\n"
    "$cstack$;\n";

static bool is_owning(const cs_field *f)
{
    return f->type == CS_T_MODEL && f->rel && f->rel->nfields > 0;
}

static bool synced(const cs_model *m)
{
    return m && !m->local;
}

/* Whether some foreign key of schema s references exactly the fields of
 * index ix of model mi (in any order). */
static bool referenced(const cstack_schema *s, int mi, const cs_index *ix)
{
    for (size_t i = 0; i < s->nmodels; i++) {
        const cs_model *m = &s->models[i];
        for (size_t j = 0; synced(m) && j < m->nfields; j++) {
            const cs_field *f = &m->fields[j];
            if (!is_owning(f) || f->rel->target != mi || f->rel->nfields != ix->n)
                continue;
            size_t hits = 0;
            for (size_t a = 0; a < ix->n; a++)
                for (size_t b = 0; b < ix->n; b++)
                    hits += f->rel->refs[a] == ix->fields[b];
            if (hits == ix->n)
                return true;
        }
    }
    return false;
}

/* "(a, (b)::text)": the index's columns, JSON ones by their text. */
static int index_cols(cs_buf *out, const cs_model *m, const cs_index *ix, bool *json)
{
    *json = false;
    TRY(cs_buf_putc(out, '('));
    for (size_t i = 0; i < ix->n; i++) {
        if (ix->fields[i] < 0 || (size_t)ix->fields[i] >= m->nfields)
            return CSTACK_EINVAL;
        const cs_field *f = &m->fields[ix->fields[i]];
        bool j = cs_pg_param_type(f) == CS_PG_JSON;
        *json = *json || j;
        TRY(cs_buf_puts(out, i ? ", " : ""));
        TRY(cs_buf_puts(out, j ? "((" : ""));
        TRY(cs_buf_ident(out, f->column));
        TRY(cs_buf_puts(out, j ? ")::text)" : ""));
    }
    return cs_buf_putc(out, ')');
}

/* The statement that creates index ix of model mi of s. */
static int index_ddl(cs_buf *out, const cstack_schema *s, int mi, const cs_index *ix)
{
    const cs_model *m = &s->models[mi];
    cs_buf cols = CS_BUF_INIT;
    bool json;
    int rc = index_cols(&cols, m, ix, &json);
    if (rc == 0 && ix->unique && !referenced(s, mi, ix)) {
        rc = cs_buf_puts(out, "ALTER TABLE ");
        rc = rc ? rc : cs_buf_ident(out, m->table);
        rc = rc ? rc : cs_buf_puts(out, " ADD CONSTRAINT ");
        rc = rc ? rc : cs_buf_ident(out, ix->name);
        if (rc == 0 && json) {
            /* EXCLUDE with = on every column is a unique constraint over
             * expressions, which UNIQUE cannot take. */
            rc = cs_buf_puts(out, " EXCLUDE USING btree (");
            for (size_t i = 0; rc == 0 && i < ix->n; i++) {
                const cs_field *f = &m->fields[ix->fields[i]];
                bool j = cs_pg_param_type(f) == CS_PG_JSON;
                rc = cs_buf_puts(out, i ? ", " : "");
                rc = rc ? rc : cs_buf_puts(out, j ? "((" : "");
                rc = rc ? rc : cs_buf_ident(out, f->column);
                rc = rc ? rc : cs_buf_puts(out, j ? ")::text) WITH =" : " WITH =");
            }
            rc = rc ? rc : cs_buf_putc(out, ')');
        } else if (rc == 0) {
            rc = cs_buf_printf(out, " UNIQUE %s", cols.data);
        }
        rc = rc ? rc : cs_buf_puts(out, DEFERRED ";\n");
    } else if (rc == 0) {
        rc = cs_buf_puts(out, ix->unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ");
        rc = rc ? rc : cs_buf_ident(out, ix->name);
        rc = rc ? rc : cs_buf_puts(out, " ON ");
        rc = rc ? rc : cs_buf_ident(out, m->table);
        rc = rc ? rc : cs_buf_printf(out, " %s;\n", cols.data);
    }
    cs_buf_free(&cols);
    return rc;
}

static int drop_index(cs_buf *out, const cs_model *m, const cs_index *ix)
{
    TRY(cs_buf_puts(out, "ALTER TABLE "));
    TRY(cs_buf_ident(out, m->table));
    TRY(cs_buf_puts(out, " DROP CONSTRAINT IF EXISTS "));
    TRY(cs_buf_ident(out, ix->name));
    TRY(cs_buf_puts(out, ";\nDROP INDEX IF EXISTS "));
    TRY(cs_buf_ident(out, ix->name));
    return cs_buf_puts(out, ";\n");
}

/* The statement adding owning relation field f's foreign key. */
static int fkey_ddl(cs_buf *out, const cstack_schema *s, const cs_model *m, const cs_field *f)
{
    TRY(cs_buf_puts(out, "ALTER TABLE "));
    TRY(cs_buf_ident(out, m->table));
    TRY(cs_buf_puts(out, " ADD "));
    TRY(cs_sql_foreign_key(out, s, m, f));
    return cs_buf_puts(out, DEFERRED ";\n");
}

/* The key columns as trigger arguments: 'Model', 'id'. */
static int trigger_ddl(cs_buf *out, const cs_model *m)
{
    /* CREATE OR REPLACE does not take constraint triggers. */
    TRY(cs_buf_puts(out, "DROP TRIGGER IF EXISTS _cstack_pg_capture ON "));
    TRY(cs_buf_ident(out, m->table));
    TRY(cs_buf_puts(out, ";\nCREATE CONSTRAINT TRIGGER _cstack_pg_capture AFTER INSERT OR UPDATE "
                         "OR DELETE ON "));
    TRY(cs_buf_ident(out, m->table));
    TRY(cs_buf_puts(out, DEFERRED " FOR EACH ROW WHEN (current_setting('" CS_PG_SERVER_SETTING
                         "', true) IS DISTINCT FROM 'on') EXECUTE FUNCTION _cstack_pg_capture("));
    TRY(cs_buf_sql_str(out, m->name));
    for (size_t p = 0; p < m->npk; p++) {
        TRY(cs_buf_puts(out, ", "));
        TRY(cs_buf_sql_str(out, m->fields[m->pk[p]].column));
    }
    return cs_buf_puts(out, ");\n");
}

/* Entries of the earlier trigger (no xid, no `new`) get the row PostgreSQL
 * holds (none: a delete), each as a transaction of its own. */
static int legacy_ddl(cs_buf *out, const cs_model *m)
{
    TRY(cs_buf_puts(out, "UPDATE " CS_PG_QUEUE " q SET new = to_json(t) FROM "));
    TRY(cs_buf_ident(out, m->table));
    TRY(cs_buf_puts(out, " t WHERE q.xid IS NULL AND q.model = "));
    TRY(cs_buf_sql_str(out, m->name));
    TRY(cs_buf_puts(out, " AND q.key = jsonb_build_array("));
    for (size_t p = 0; p < m->npk; p++) {
        TRY(cs_buf_puts(out, p ? ", t." : "t."));
        TRY(cs_buf_ident(out, m->fields[m->pk[p]].column));
    }
    return cs_buf_puts(out, ");\n");
}

static size_t index_count(const cs_model *m)
{
    return m->nuniques + m->nindexes;
}

static const cs_index *index_at(const cs_model *m, size_t i)
{
    return i < m->nuniques ? &m->uniques[i] : &m->indexes[i - m->nuniques];
}

/* A new model's table, with its indexes (its foreign keys come later, once
 * every table exists). */
static int create_model(cs_buf *out, const cstack_schema *s, int mi)
{
    const cs_model *m = &s->models[mi];
    TRY(cs_sql_create_table(out, s, m, CS_DIALECT_PG_STORE, NULL, false));
    for (size_t i = 0; i < index_count(m); i++)
        TRY(index_ddl(out, s, mi, index_at(m, i)));
    return 0;
}

static int create_fkeys(cs_buf *out, const cstack_schema *s, const cs_model *m)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (is_owning(&m->fields[i]))
            TRY(fkey_ddl(out, s, m, &m->fields[i]));
    return 0;
}

/* The statements of a fresh database. */
static int create_all(cs_buf *out, const cstack_schema *s, const int *order)
{
    for (size_t i = 0; i < s->nmodels; i++)
        if (synced(&s->models[order[i]]))
            TRY(create_model(out, s, order[i]));
    for (size_t i = 0; i < s->nmodels; i++)
        if (synced(&s->models[order[i]]))
            TRY(create_fkeys(out, s, &s->models[order[i]]));
    return 0;
}

/* Whether rendering x for (s1, m1) and (s2, m2) gives the same text. */
typedef int (*render_fn)(cs_buf *out, const cstack_schema *s, int mi, const void *x);

static int render_index(cs_buf *out, const cstack_schema *s, int mi, const void *x)
{
    return index_ddl(out, s, mi, x);
}

static int same_text(const cstack_schema *s1, int m1, const void *x1, const cstack_schema *s2,
                     int m2, const void *x2, render_fn fn, bool *same)
{
    cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT;
    int rc = fn(&a, s1, m1, x1);
    rc = rc ? rc : fn(&b, s2, m2, x2);
    *same = rc == 0 && strcmp(a.data, b.data) == 0;
    cs_buf_free(&a);
    cs_buf_free(&b);
    return rc;
}

static const cs_index *find_index(const cs_model *m, const char *name)
{
    for (size_t i = 0; i < index_count(m); i++)
        if (strcmp(index_at(m, i)->name, name) == 0)
            return index_at(m, i);
    return NULL;
}

/* Indexes of a model both schemas have: dropped when gone or changed,
 * created when new or changed. */
static int migrate_indexes(cs_buf *out, const cstack_schema *old, int om, const cstack_schema *s,
                           int nm)
{
    const cs_model *o = &old->models[om], *m = &s->models[nm];
    bool same;
    for (size_t i = 0; i < index_count(o); i++) {
        const cs_index *ox = index_at(o, i), *nx = find_index(m, ox->name);
        same = false;
        if (nx)
            TRY(same_text(old, om, ox, s, nm, nx, render_index, &same));
        if (!same)
            TRY(drop_index(out, o, ox));
    }
    for (size_t i = 0; i < index_count(m); i++) {
        const cs_index *nx = index_at(m, i), *ox = find_index(o, nx->name);
        same = false;
        if (ox)
            TRY(same_text(old, om, ox, s, nm, nx, render_index, &same));
        if (!same)
            TRY(index_ddl(out, s, nm, nx));
    }
    return 0;
}

static int render_fkey(cs_buf *out, const cstack_schema *s, int mi, const void *x)
{
    return cs_sql_foreign_key(out, s, &s->models[mi], x);
}

/* "<table>_<col>_<suffix>" as an identifier, ddl.c's naming. */
static int constraint_ident(cs_buf *out, const cs_model *m, const int *fields, size_t n,
                            const char *suffix)
{
    cs_buf name = CS_BUF_INIT;
    int rc = cs_buf_puts(&name, m->table);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cs_buf_printf(&name, "_%s", m->fields[fields[i]].column);
    rc = rc ? rc : cs_buf_printf(&name, "_%s", suffix);
    rc = rc ? rc : cs_buf_ident(out, name.data);
    cs_buf_free(&name);
    return rc;
}

static int alter_prefix(cs_buf *out, const cs_model *m)
{
    TRY(cs_buf_puts(out, "ALTER TABLE "));
    TRY(cs_buf_ident(out, m->table));
    return cs_buf_putc(out, ' ');
}

/* Foreign keys of owning fields: dropped when gone or changed, added when
 * new or changed. */
static int migrate_fkeys(cs_buf *out, const cstack_schema *old, int om, const cstack_schema *s,
                         int nm)
{
    const cs_model *o = &old->models[om], *m = &s->models[nm];
    for (size_t i = 0; i < o->nfields; i++) {
        const cs_field *of = &o->fields[i];
        int j = cs_field_find(m, of->name);
        bool same = false;
        if (!is_owning(of))
            continue;
        if (j >= 0 && is_owning(&m->fields[j]))
            TRY(same_text(old, om, of, s, nm, &m->fields[j], render_fkey, &same));
        if (same)
            continue;
        TRY(alter_prefix(out, o));
        TRY(cs_buf_puts(out, "DROP CONSTRAINT IF EXISTS "));
        TRY(constraint_ident(out, o, of->rel->fields, of->rel->nfields, "fkey"));
        TRY(cs_buf_puts(out, ";\n"));
    }
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_field *nf = &m->fields[i];
        int j = cs_field_find(o, nf->name);
        bool same = false;
        if (!is_owning(nf))
            continue;
        if (j >= 0 && is_owning(&o->fields[j]))
            TRY(same_text(old, om, &o->fields[j], s, nm, nf, render_fkey, &same));
        if (!same)
            TRY(fkey_ddl(out, s, m, nf));
    }
    return 0;
}

/* A column the new schema added.  A required column without a default
 * PostgreSQL can compute (a cuid()) is added nullable, filled, then made
 * required: the save after the migration writes the copy's values over the
 * fill. */
static int add_column(cs_buf *out, const cstack_schema *s, const cs_model *m, const cs_field *f)
{
    cs_buf def = CS_BUF_INIT;
    int rc = cs_sql_pg_default(&def, f);
    bool fill = rc == 0 && !f->optional && def.len == 0;
    cs_buf_free(&def);
    TRY(rc);
    TRY(alter_prefix(out, m));
    TRY(cs_buf_puts(out, "ADD COLUMN "));
    if (!fill) {
        TRY(cs_sql_column_def(out, s, m, f, CS_DIALECT_PG_STORE));
        return cs_buf_puts(out, ";\n");
    }
    TRY(cs_buf_ident(out, f->column));
    TRY(cs_buf_puts(out, " TEXT;\nUPDATE "));
    TRY(cs_buf_ident(out, m->table));
    TRY(cs_buf_puts(out, " SET "));
    TRY(cs_buf_ident(out, f->column));
    TRY(cs_buf_puts(out, " = 'c' || substr(md5(random()::text || clock_timestamp()::text), 1, "
                         "24);\n"));
    TRY(alter_prefix(out, m));
    TRY(cs_buf_puts(out, "ALTER COLUMN "));
    TRY(cs_buf_ident(out, f->column));
    return cs_buf_puts(out, " SET NOT NULL;\n");
}

/* A column both schemas have: nullability, default, enum members (the
 * planner allowed only changes that keep every stored value valid). */
static int alter_column(cs_buf *out, const cstack_schema *old, const cs_model *om,
                        const cs_field *of, const cstack_schema *s, const cs_model *m,
                        const cs_field *f)
{
    cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT;
    int rc = 0;
    if (!of->optional && f->optional) {
        rc = alter_prefix(out, m);
        rc = rc ? rc : cs_buf_puts(out, "ALTER COLUMN ");
        rc = rc ? rc : cs_buf_ident(out, f->column);
        rc = rc ? rc : cs_buf_puts(out, " DROP NOT NULL;\n");
    }
    rc = rc ? rc : cs_sql_pg_default(&a, of);
    rc = rc ? rc : cs_sql_pg_default(&b, f);
    bool identity = of->def.kind == CS_DEF_AUTOINCREMENT || f->def.kind == CS_DEF_AUTOINCREMENT;
    if (rc == 0 && !identity && strcmp(a.data ? a.data : "", b.data ? b.data : "") != 0) {
        rc = alter_prefix(out, m);
        rc = rc ? rc : cs_buf_puts(out, "ALTER COLUMN ");
        rc = rc ? rc : cs_buf_ident(out, f->column);
        rc = rc ? rc : cs_buf_printf(out, b.len ? " SET%s;\n" : " DROP DEFAULT;\n", b.data);
    }
    cs_buf_reset(&a);
    cs_buf_reset(&b);
    if (rc == 0 && f->type == CS_T_ENUM) {
        rc = cs_sql_enum_check(&a, old, om, of);
        rc = rc ? rc : cs_sql_enum_check(&b, s, m, f);
        if (rc == 0 && strcmp(a.data, b.data) != 0) {
            int fi = (int)(f - m->fields);
            rc = alter_prefix(out, m);
            rc = rc ? rc : cs_buf_puts(out, "DROP CONSTRAINT IF EXISTS ");
            rc = rc ? rc : constraint_ident(out, m, &fi, 1, "check");
            rc = rc ? rc : cs_buf_puts(out, ";\n");
            rc = rc ? rc : alter_prefix(out, m);
            rc = rc ? rc : cs_buf_printf(out, "ADD %s;\n", b.data);
        }
    }
    cs_buf_free(&a);
    cs_buf_free(&b);
    return rc;
}

static int migrate_columns(cs_buf *out, const cstack_schema *old, int om, const cstack_schema *s,
                           int nm)
{
    const cs_model *o = &old->models[om], *m = &s->models[nm];
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_field *f = &m->fields[i];
        if (!cs_field_is_column(f))
            continue;
        int j = cs_field_find(o, f->name);
        if (j < 0)
            TRY(add_column(out, s, m, f));
        else
            TRY(alter_column(out, old, o, &o->fields[j], s, m, f));
    }
    return 0;
}

/* The in-place statements from old to s (the planner said yes). */
static int migrate_all(cs_buf *out, const cstack_schema *old, const cstack_schema *s,
                       const int *order)
{
    for (size_t i = 0; i < s->nmodels; i++) {
        int nm = order[i], om = cs_model_find(old, s->models[nm].name);
        if (!synced(&s->models[nm]))
            continue;
        if (om < 0 || !synced(&old->models[om]))
            TRY(create_model(out, s, nm));
        else
            TRY(migrate_columns(out, old, om, s, nm));
    }
    for (size_t i = 0; i < s->nmodels; i++) {
        int nm = order[i], om = cs_model_find(old, s->models[nm].name);
        if (!synced(&s->models[nm]))
            continue;
        if (om < 0 || !synced(&old->models[om])) {
            TRY(create_fkeys(out, s, &s->models[nm]));
        } else {
            TRY(migrate_indexes(out, old, om, s, nm));
            TRY(migrate_fkeys(out, old, om, s, nm));
        }
    }
    return 0;
}

/* The planner's verdict: 0, or CSTACK_ESCHEMA with its reasons in err. */
static int judge(const cstack_schema *old, const cstack_schema *s, cs_srv_err *err)
{
    cs_buf sql = CS_BUF_INIT, report = CS_BUF_INIT;
    char why[400] = "";
    int rc = cs_sql_migrate(old, s, &sql, &report, why, sizeof why);
    cs_buf_free(&sql);
    cs_buf_free(&report);
    if (rc == 0)
        return 0;
    if (rc == CSTACK_ENOMEM) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, NULL);
        return rc;
    }
    char msg[512];
    snprintf(msg, sizeof msg, "PostgreSQL schema: %s", why[0] ? why : "cannot migrate");
    cs_srv_err_set(err, CS_SRV_CONFLICT, CSTACK_ESCHEMA, msg);
    return CSTACK_ESCHEMA;
}

int cs_pg_typed_ensure(PGconn *c, const cstack_schema *old, const cstack_schema *schema,
                       cs_srv_err *err)
{
    if (old)
        TRY(judge(old, schema, err));
    int *order = malloc((schema->nmodels ? schema->nmodels : 1) * sizeof *order);
    cs_buf sql = CS_BUF_INIT;
    int rc = order ? cs_sql_model_order(schema, order) : CSTACK_ENOMEM;
    rc = rc ? rc : cs_buf_puts(&sql, queue_ddl);
    if (rc == 0)
        rc = old ? migrate_all(&sql, old, schema, order) : create_all(&sql, schema, order);
    for (size_t i = 0; rc == 0 && i < schema->nmodels; i++)
        if (synced(&schema->models[i])) {
            rc = trigger_ddl(&sql, &schema->models[i]);
            rc = rc ? rc : legacy_ddl(&sql, &schema->models[i]);
            rc = rc ? rc : cs_policy_pg_ddl(&sql, schema, &schema->models[i]);
        }
    rc = rc ? rc : cs_buf_puts(&sql, "UPDATE " CS_PG_QUEUE " SET xid = '0'::xid8 "
                                     "WHERE xid IS NULL;\n");
    if (rc)
        cs_srv_err_set(err, rc == CSTACK_ENOMEM ? CS_SRV_INTERNAL : CS_SRV_CONFLICT, rc,
                       "cannot render the PostgreSQL tables of this schema");
    if (rc == 0) {
        PGresult *r = PQexec(c, sql.data);
        rc = cs_pg_check(c, r, PGRES_COMMAND_OK, "create the app tables", err);
        PQclear(r);
    }
    cs_buf_free(&sql);
    free(order);
    return rc;
}
