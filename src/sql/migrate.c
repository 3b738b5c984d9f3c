/*
 * migrate.c -- plans the SQLite statements that take a database from the
 * schema it was bootstrapped with to a new one, or refuses.
 *
 * Models are matched by name, fields by name.  Planning runs in two passes:
 * the first only looks for changes that would lose or reinterpret data and
 * collects every one of them into the error message; the second, reached only
 * when there is none, appends SQL and report lines.  So a refusal appends
 * nothing, and a user sees all the problems of a schema change at once.
 *
 * What ALTER TABLE cannot do (drop NOT NULL, change a DEFAULT clause or a
 * foreign key, fill a new column with a per-row value) is done by rebuilding
 * the table: CREATE "_cstack_new_T", INSERT ... SELECT, DROP "T", RENAME,
 * recreate indexes -- the procedure of https://sqlite.org/lang_altertable.html
 * section 7.  The caller runs the statements with foreign keys off (DROP TABLE
 * would otherwise run ON DELETE actions on the children) inside one
 * transaction.  The rules are documented in docs/storage.md.
 */
#include "sql/sql.h"
#include "util/try.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A random lowercase version-4 UUID per row.  random() & 3 picks the variant
 * nibble without abs(), which fails on the smallest 64-bit integer. */
#define UUID_SQL                                                                                   \
    "(lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "                   \
    "substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + (random() & 3), 1) || "     \
    "substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))))"
/* 'c' and 24 random lowercase hex digits: the shape of a cuid (25 characters,
 * lowercase alphanumerics) with 96 random bits. */
#define CUID_SQL "('c' || lower(hex(randomblob(12))))"

typedef struct plan {
    const cstack_schema *old;
    const cstack_schema *nw;
    cs_buf *sql;
    cs_buf *report;
    cs_buf refusals; /* "; "-separated reasons, without the "cannot migrate: " */
    size_t nrefusals;
} plan;

__attribute__((format(printf, 2, 3))) static int refuse(plan *p, const char *fmt, ...)
{
    va_list ap;
    if (p->nrefusals++ > 0)
        TRY(cs_buf_puts(&p->refusals, "; "));
    va_start(ap, fmt);
    int rc = cs_buf_vprintf(&p->refusals, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Pass 1: refusals                                                        */
/* ---------------------------------------------------------------------- */

/* "(id, rev)": the primary key by field name, for comparing and messages. */
static int pk_text(cs_buf *out, const cs_model *m)
{
    TRY(cs_buf_putc(out, '('));
    for (size_t i = 0; i < m->npk; i++) {
        if (m->pk[i] < 0 || (size_t)m->pk[i] >= m->nfields)
            return CSTACK_EINVAL;
        TRY(cs_buf_printf(out, "%s%s", i ? ", " : "", m->fields[m->pk[i]].name));
    }
    return cs_buf_putc(out, ')');
}

static int check_pk(plan *p, const cs_model *om, const cs_model *nm)
{
    cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT;
    int rc = pk_text(&a, om);
    if (rc == 0)
        rc = pk_text(&b, nm);
    if (rc == 0 && strcmp(a.data, b.data) != 0)
        rc =
            refuse(p, "model '%s' changed its primary key from %s to %s", nm->name, a.data, b.data);
    cs_buf_free(&a);
    cs_buf_free(&b);
    return rc;
}

static const cs_enum *enum_of(const cstack_schema *s, const cs_field *f)
{
    if (f->type != CS_T_ENUM || f->type_index < 0 || (size_t)f->type_index >= s->nenums)
        return NULL;
    return &s->enums[f->type_index];
}

/* Stored members must stay valid: every member of the old enum is still one. */
static int check_enum(plan *p, const cs_model *nm, const cs_field *of, const cs_field *nf)
{
    const cs_enum *oe = enum_of(p->old, of), *ne = enum_of(p->nw, nf);
    if (!oe || !ne)
        return CSTACK_EINVAL;
    for (size_t i = 0; i < oe->nmembers; i++) {
        const char *mem = oe->members[i];
        if (cs_enum_member(ne, mem, strlen(mem)) < 0)
            TRY(refuse(p, "enum '%s' lost member '%s' used by '%s.%s'", ne->name, mem, nm->name,
                       nf->name));
    }
    return 0;
}

/* One field present in both schemas. */
static int check_field(plan *p, const cs_model *nm, const cs_field *of, const cs_field *nf)
{
    bool ocol = cs_field_is_column(of), ncol = cs_field_is_column(nf);

    /* Two relation fields own no column; a change of their foreign key is
     * found (and done by a rebuild) in pass 2. */
    if (!ocol && !ncol)
        return 0;
    if (ocol != ncol || of->type != nf->type || strcmp(of->type_name, nf->type_name) != 0)
        return refuse(p, "field '%s.%s' changed type from %s to %s", nm->name, nf->name,
                      of->type_name, nf->type_name);
    if (strcmp(of->column, nf->column) != 0)
        return refuse(p,
                      "field '%s.%s' changed its column from \"%s\" to \"%s\" (renames are "
                      "not supported)",
                      nm->name, nf->name, of->column, nf->column);
    if (of->optional && !nf->optional) {
        if (nf->def.kind == CS_DEF_NONE)
            return refuse(p, "field '%s.%s' became required without a default", nm->name, nf->name);
        return refuse(p, "field '%s.%s' became required (rows holding null would change)", nm->name,
                      nf->name);
    }
    return of->type == CS_T_ENUM ? check_enum(p, nm, of, nf) : 0;
}

/* A field only the new schema has: existing rows need a value for it. */
static int check_new_field(plan *p, const cs_model *nm, const cs_field *nf)
{
    if (!cs_field_is_column(nf))
        return 0;
    if (nf->def.kind == CS_DEF_AUTOINCREMENT)
        return refuse(p,
                      "field '%s.%s' was added with @default(autoincrement()) (existing rows "
                      "cannot be numbered)",
                      nm->name, nf->name);
    if (!nf->optional && nf->def.kind == CS_DEF_NONE)
        return refuse(p,
                      "field '%s.%s' was added as required without a default (existing rows "
                      "would have no value)",
                      nm->name, nf->name);
    return 0;
}

static int check_model(plan *p, const cs_model *om, const cs_model *nm)
{
    if (strcmp(om->table, nm->table) != 0)
        return refuse(p,
                      "model '%s' changed its table from \"%s\" to \"%s\" (renames are not "
                      "supported)",
                      nm->name, om->table, nm->table);
    TRY(check_pk(p, om, nm));
    for (size_t i = 0; i < om->nfields; i++) {
        const cs_field *of = &om->fields[i];
        int j = cs_field_find(nm, of->name);
        if (j >= 0)
            TRY(check_field(p, nm, of, &nm->fields[j]));
        else if (cs_field_is_column(of))
            TRY(refuse(p, "field '%s.%s' was removed (its data would be lost)", om->name,
                       of->name));
    }
    for (size_t i = 0; i < nm->nfields; i++) {
        if (cs_field_find(om, nm->fields[i].name) < 0)
            TRY(check_new_field(p, nm, &nm->fields[i]));
    }
    return 0;
}

static int check_all(plan *p)
{
    for (size_t i = 0; i < p->old->nmodels; i++) {
        const cs_model *om = &p->old->models[i];
        int j = cs_model_find(p->nw, om->name);
        if (j < 0)
            TRY(refuse(p, "model '%s' was removed", om->name));
        else
            TRY(check_model(p, om, &p->nw->models[j]));
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Pass 2: statements                                                      */
/* ---------------------------------------------------------------------- */

static size_t index_count(const cs_model *m)
{
    return m->nuniques + m->nindexes;
}

/* Uniques and plain indexes as one list. */
static const cs_index *index_at(const cs_model *m, size_t i)
{
    return i < m->nuniques ? &m->uniques[i] : &m->indexes[i - m->nuniques];
}

/* True when `m` has an index named like `ix` (of model `xm`) over the same
 * columns with the same uniqueness: then it needs no SQL. */
static bool has_same_index(const cs_model *m, const cs_model *xm, const cs_index *ix)
{
    for (size_t i = 0; i < index_count(m); i++) {
        const cs_index *c = index_at(m, i);
        if (strcmp(c->name, ix->name) != 0)
            continue;
        if (c->unique != ix->unique || c->n != ix->n || strcmp(m->table, xm->table) != 0)
            return false;
        for (size_t k = 0; k < c->n; k++) {
            if (c->fields[k] < 0 || (size_t)c->fields[k] >= m->nfields || ix->fields[k] < 0 ||
                (size_t)ix->fields[k] >= xm->nfields)
                return false;
            if (strcmp(m->fields[c->fields[k]].column, xm->fields[ix->fields[k]].column) != 0)
                return false;
        }
        return true;
    }
    return false;
}

static int drop_indexes(plan *p, const cs_model *om, const cs_model *nm)
{
    for (size_t i = 0; i < index_count(om); i++) {
        const cs_index *ix = index_at(om, i);
        if (has_same_index(nm, om, ix))
            continue;
        TRY(cs_buf_puts(p->sql, "DROP INDEX IF EXISTS "));
        TRY(cs_buf_ident(p->sql, ix->name));
        TRY(cs_buf_puts(p->sql, ";\n"));
        TRY(cs_buf_printf(p->report, "dropped index %s\n", ix->name));
    }
    return 0;
}

/* Creates (unless `rebuilt` already did) and reports the new indexes. */
static int add_indexes(plan *p, const cs_model *om, const cs_model *nm, bool rebuilt)
{
    for (size_t i = 0; i < index_count(nm); i++) {
        const cs_index *ix = index_at(nm, i);
        if (has_same_index(om, nm, ix))
            continue;
        if (!rebuilt)
            TRY(cs_sql_create_index(p->sql, nm, ix, CS_DIALECT_SQLITE));
        TRY(cs_buf_printf(p->report, "added index %s\n", ix->name));
    }
    return 0;
}

/* Plain CREATE TABLE, not IF NOT EXISTS: a table the old schema did not have
 * must not exist yet, and if it does (a stale or wrong stored schema) failing
 * is better than silently keeping a table of some other shape. */
static int add_model(plan *p, const cs_model *nm)
{
    TRY(cs_sql_create_table(p->sql, p->nw, nm, CS_DIALECT_SQLITE, NULL, false));
    for (size_t i = 0; i < index_count(nm); i++)
        TRY(cs_sql_create_index(p->sql, nm, index_at(nm, i), CS_DIALECT_SQLITE));
    return cs_buf_printf(p->report, "added model %s (table \"%s\")\n", nm->name, nm->table);
}

/* Whether two renderings of the same thing differ; *differ receives it. */
static int column_changed(plan *p, const cs_model *om, const cs_field *of, const cs_model *nm,
                          const cs_field *nf, bool *differ)
{
    cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT;
    int rc = cs_sql_column_def(&a, p->old, om, of, CS_DIALECT_SQLITE);
    if (rc == 0)
        rc = cs_sql_column_def(&b, p->nw, nm, nf, CS_DIALECT_SQLITE);
    if (rc == 0)
        *differ = strcmp(a.data, b.data) != 0;
    cs_buf_free(&a);
    cs_buf_free(&b);
    return rc;
}

static bool is_owning(const cs_field *f)
{
    return f->type == CS_T_MODEL && f->rel && f->rel->nfields > 0;
}

/* The owning relation field of `m` named `name`, or NULL. */
static const cs_field *owning_named(const cs_model *m, const char *name)
{
    int i = cs_field_find(m, name);
    return i >= 0 && is_owning(&m->fields[i]) ? &m->fields[i] : NULL;
}

/* Whether the foreign key of owning field `f` in (s, m) is missing from
 * (xs, xm): compared as rendered clauses, so a change of columns, target or
 * action all count. */
static int fk_missing(const cstack_schema *s, const cs_model *m, const cs_field *f,
                      const cstack_schema *xs, const cs_model *xm, bool *missing)
{
    cs_buf mine = CS_BUF_INIT, other = CS_BUF_INIT;
    int rc = cs_sql_foreign_key(&mine, s, m, f);
    *missing = true;
    for (size_t i = 0; rc == 0 && *missing && i < xm->nfields; i++) {
        if (!is_owning(&xm->fields[i]))
            continue;
        cs_buf_reset(&other);
        rc = cs_sql_foreign_key(&other, xs, xm, &xm->fields[i]);
        if (rc == 0)
            *missing = strcmp(mine.data, other.data) != 0;
    }
    cs_buf_free(&mine);
    cs_buf_free(&other);
    return rc;
}

/* Foreign keys live in the table definition, so any difference rebuilds. */
static int foreign_key_reasons(plan *p, const cs_model *om, const cs_model *nm, cs_buf *reasons)
{
    bool missing;
    for (size_t i = 0; i < om->nfields; i++) {
        const cs_field *of = &om->fields[i];
        if (!is_owning(of))
            continue;
        TRY(fk_missing(p->old, om, of, p->nw, nm, &missing));
        if (missing)
            TRY(cs_buf_printf(reasons, "%s%s the foreign key of %s.%s", reasons->len ? ", " : "",
                              owning_named(nm, of->name) ? "change" : "drop", nm->name, of->name));
    }
    for (size_t i = 0; i < nm->nfields; i++) {
        const cs_field *nf = &nm->fields[i];
        if (!is_owning(nf) || owning_named(om, nf->name))
            continue; /* a field in both was reported as a change above */
        TRY(fk_missing(p->nw, nm, nf, p->old, om, &missing));
        if (missing)
            TRY(cs_buf_printf(reasons, "%sadd the foreign key of %s.%s", reasons->len ? ", " : "",
                              nm->name, nf->name));
    }
    return 0;
}

static const char *fill_name(cs_default_kind k)
{
    switch (k) {
    case CS_DEF_NOW:
        return "now()";
    case CS_DEF_UUID:
        return "uuid()";
    case CS_DEF_CUID:
        return "cuid()";
    default:
        return NULL;
    }
}

/* Collects into `reasons` why the table of `nm` must be rebuilt; empty when
 * ALTER TABLE ADD COLUMN is enough. */
static int rebuild_reasons(plan *p, const cs_model *om, const cs_model *nm, cs_buf *reasons)
{
    for (size_t i = 0; i < nm->nfields; i++) {
        const cs_field *nf = &nm->fields[i];
        int j = cs_field_find(om, nf->name);
        bool differ = false;
        if (!cs_field_is_column(nf))
            continue;
        const char *sep = reasons->len ? ", " : "";
        if (j < 0) {
            if (fill_name(nf->def.kind))
                TRY(cs_buf_printf(reasons, "%sfill new field %s.%s with %s", sep, nm->name,
                                  nf->name, fill_name(nf->def.kind)));
            continue;
        }
        const cs_field *of = &om->fields[j];
        TRY(column_changed(p, om, of, nm, nf, &differ));
        if (differ && of->optional != nf->optional)
            TRY(cs_buf_printf(reasons, "%smake field %s.%s optional", sep, nm->name, nf->name));
        else if (differ)
            TRY(cs_buf_printf(reasons, "%schange the default of %s.%s", sep, nm->name, nf->name));
    }
    return foreign_key_reasons(p, om, nm, reasons);
}

/* INSERT INTO "_cstack_new_T" (kept columns, filled columns) SELECT ... */
static int copy_rows(plan *p, const cs_model *om, const cs_model *nm, const char *tmp)
{
    cs_buf sel = CS_BUF_INIT;
    int rc = cs_buf_puts(p->sql, "INSERT INTO ");
    bool first = true;

    if (rc == 0)
        rc = cs_buf_ident(p->sql, tmp);
    if (rc == 0)
        rc = cs_buf_puts(p->sql, " (");
    for (size_t i = 0; rc == 0 && i < nm->nfields; i++) {
        const cs_field *nf = &nm->fields[i];
        bool kept = cs_field_find(om, nf->name) >= 0;
        const char *fill = nf->def.kind == CS_DEF_NOW    ? "cstack_now()"
                           : nf->def.kind == CS_DEF_UUID ? UUID_SQL
                           : nf->def.kind == CS_DEF_CUID ? CUID_SQL
                                                         : NULL;
        /* A new column without a per-row fill takes its DEFAULT (or NULL). */
        if (!cs_field_is_column(nf) || (!kept && !fill))
            continue;
        const char *sep = first ? "" : ", ";
        rc = cs_buf_printf(p->sql, "%s", sep);
        if (rc == 0)
            rc = cs_buf_ident(p->sql, nf->column);
        if (rc == 0)
            rc = cs_buf_puts(&sel, sep);
        if (rc == 0)
            rc = kept ? cs_buf_ident(&sel, nf->column) : cs_buf_puts(&sel, fill);
        first = false;
    }
    if (rc == 0)
        rc = cs_buf_printf(p->sql, ") SELECT %s FROM ", sel.data ? sel.data : "");
    if (rc == 0)
        rc = cs_buf_ident(p->sql, om->table);
    if (rc == 0)
        rc = cs_buf_puts(p->sql, ";\n");
    cs_buf_free(&sel);
    return rc;
}

static int rebuild_table(plan *p, const cs_model *om, const cs_model *nm, const char *reasons)
{
    cs_buf tmp = CS_BUF_INIT;
    int rc = cs_buf_printf(&tmp, "_cstack_new_%s", nm->table);

    if (rc == 0)
        rc = cs_sql_create_table(p->sql, p->nw, nm, CS_DIALECT_SQLITE, tmp.data, false);
    if (rc == 0)
        rc = copy_rows(p, om, nm, tmp.data);
    if (rc == 0)
        rc = cs_buf_puts(p->sql, "DROP TABLE ");
    if (rc == 0)
        rc = cs_buf_ident(p->sql, nm->table);
    if (rc == 0)
        rc = cs_buf_puts(p->sql, ";\nALTER TABLE ");
    if (rc == 0)
        rc = cs_buf_ident(p->sql, tmp.data);
    if (rc == 0)
        rc = cs_buf_puts(p->sql, " RENAME TO ");
    if (rc == 0)
        rc = cs_buf_ident(p->sql, nm->table);
    if (rc == 0)
        rc = cs_buf_puts(p->sql, ";\n");
    for (size_t i = 0; rc == 0 && i < index_count(nm); i++)
        rc = cs_sql_create_index(p->sql, nm, index_at(nm, i), CS_DIALECT_SQLITE);
    if (rc == 0)
        rc = cs_buf_printf(p->report, "rebuilt table \"%s\" to %s\n", nm->table, reasons);
    cs_buf_free(&tmp);
    return rc;
}

static int add_columns(plan *p, const cs_model *om, const cs_model *nm, bool rebuilt)
{
    for (size_t i = 0; i < nm->nfields; i++) {
        const cs_field *nf = &nm->fields[i];
        if (!cs_field_is_column(nf) || cs_field_find(om, nf->name) >= 0)
            continue;
        if (!rebuilt) {
            TRY(cs_buf_puts(p->sql, "ALTER TABLE "));
            TRY(cs_buf_ident(p->sql, nm->table));
            TRY(cs_buf_puts(p->sql, " ADD COLUMN "));
            TRY(cs_sql_column_def(p->sql, p->nw, nm, nf, CS_DIALECT_SQLITE));
            TRY(cs_buf_puts(p->sql, ";\n"));
        }
        TRY(cs_buf_printf(p->report, "added field %s.%s (column \"%s\")\n", nm->name, nf->name,
                          nf->column));
    }
    return 0;
}

static int update_model(plan *p, const cs_model *om, const cs_model *nm)
{
    cs_buf reasons = CS_BUF_INIT;
    int rc = rebuild_reasons(p, om, nm, &reasons);
    bool rebuild = reasons.len > 0;

    if (rc == 0)
        rc = add_columns(p, om, nm, rebuild);
    if (rc == 0 && rebuild)
        rc = rebuild_table(p, om, nm, reasons.data);
    if (rc == 0)
        rc = add_indexes(p, om, nm, rebuild);
    cs_buf_free(&reasons);
    return rc;
}

static int plan_all(plan *p)
{
    const cstack_schema *nw = p->nw;
    int *order = malloc((nw->nmodels ? nw->nmodels : 1) * sizeof *order);
    int rc = order ? cs_sql_model_order(nw, order) : CSTACK_ENOMEM;

    /* Dropped indexes go first so that a new index may reuse a name. */
    for (size_t i = 0; rc == 0 && i < nw->nmodels; i++) {
        int j = cs_model_find(p->old, nw->models[i].name);
        if (j >= 0)
            rc = drop_indexes(p, &p->old->models[j], &nw->models[i]);
    }
    for (size_t i = 0; rc == 0 && i < nw->nmodels; i++) {
        const cs_model *nm = &nw->models[order[i]];
        if (cs_model_find(p->old, nm->name) < 0)
            rc = add_model(p, nm);
    }
    for (size_t i = 0; rc == 0 && i < nw->nmodels; i++) {
        const cs_model *nm = &nw->models[order[i]];
        int j = cs_model_find(p->old, nm->name);
        if (j >= 0)
            rc = update_model(p, &p->old->models[j], nm);
    }
    free(order);
    return rc;
}

static void truncate_buf(cs_buf *b, size_t len)
{
    if (b->data && b->len > len) {
        b->len = len;
        b->data[len] = '\0';
    }
}

int cs_sql_migrate(const cstack_schema *old, const cstack_schema *new_, cs_buf *sql, cs_buf *report,
                   char *err, size_t errlen)
{
    plan p = {old, new_, sql, report, CS_BUF_INIT, 0};
    size_t sql_len = sql ? sql->len : 0, report_len = report ? report->len : 0;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!old || !new_ || !sql || !report)
        return CSTACK_EINVAL;
    rc = check_all(&p);
    if (rc == 0 && p.nrefusals > 0) {
        if (err && errlen)
            snprintf(err, errlen, "cannot migrate: %s", p.refusals.data);
        rc = CSTACK_EMIGRATION;
    } else if (rc == 0) {
        rc = plan_all(&p);
    }
    if (rc != 0) {
        truncate_buf(sql, sql_len);
        truncate_buf(report, report_len);
        if (rc != CSTACK_EMIGRATION && err && errlen)
            snprintf(err, errlen, "cannot plan the migration: %s", cstack_errstr(rc));
    }
    cs_buf_free(&p.refusals);
    return rc;
}
