/*
 * keys.c -- primary keys, unique sets, indexes and the soft-delete field.
 *
 * Index names are generated from the table and column names (so they follow
 * @@map / @map): `<table>_<col>_<col>_key` for unique sets (single-field
 * @unique included) and `<table>_<col>_<col>_idx` for @@index.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

static const char *set_attr(cs_set_kind k)
{
    switch (k) {
    case CS_SET_ID:
        return "@@id";
    case CS_SET_UNIQUE:
        return "@@unique";
    case CS_SET_FIELD_UNIQUE:
        return "@unique";
    case CS_SET_INDEX:
        return "@@index";
    }
    return "";
}

/* Resolves the names of a set to scalar field indices; NULL (diagnosed, or
 * on OOM with p->oom set) when any name does not resolve. */
static int *resolve_set(cs_parse *p, size_t mi, const cs_pset *set)
{
    const cs_model *m = &p->s->models[mi];
    const cs_pmodel *pm = &p->pm[mi];
    const char *attr = set_attr(set->kind);
    int *idx = calloc(set->names.n, sizeof(*idx));
    if (!idx) {
        p->oom = true;
        return NULL;
    }
    bool ok = true;
    for (size_t i = 0; i < set->names.n; i++) {
        const char *name = set->names.v[i];
        int fi = cs_field_find(m, name);
        idx[i] = fi;
        if (fi < 0) {
            if (!pm->broken)
                cs_diag(p->diags, set->names.pos[i], "%s on model '%s' names unknown field '%s'",
                        attr, m->name, name);
            ok = false;
        } else if (pm->fields[fi].bad_type) {
            ok = false;
        } else if (m->fields[fi].type == CS_T_MODEL) {
            /* @unique on a relation field is reported with the field. */
            if (set->kind != CS_SET_FIELD_UNIQUE)
                cs_diag(p->diags, set->names.pos[i],
                        "%s on model '%s' names relation field '%s'; list its scalar fields "
                        "instead",
                        attr, m->name, name);
            ok = false;
        } else {
            for (size_t k = 0; k < i; k++)
                if (idx[k] == fi) {
                    cs_diag(p->diags, set->names.pos[i],
                            "field '%s' is listed twice in %s on model '%s'", name, attr, m->name);
                    ok = false;
                    break;
                }
        }
    }
    if (!ok) {
        free(idx);
        return NULL;
    }
    return idx;
}

static char *index_name(cs_parse *p, const cs_model *m, const int *idx, size_t n, bool unique)
{
    cs_buf b = CS_BUF_INIT;
    int rc = cs_buf_puts(&b, m->table);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cs_buf_printf(&b, "_%s", m->fields[idx[i]].column);
    if (rc == 0)
        rc = cs_buf_puts(&b, unique ? "_key" : "_idx");
    if (rc != 0) {
        cs_buf_free(&b);
        p->oom = true;
        return NULL;
    }
    return cs_buf_take(&b);
}

/* Adds a unique set or an index; `idx` is taken over (freed on failure). */
static void add_index(cs_parse *p, cs_model *m, const cs_pset *set, int *idx)
{
    bool unique = set->kind != CS_SET_INDEX;
    cs_index **list = unique ? &m->uniques : &m->indexes;
    size_t *n = unique ? &m->nuniques : &m->nindexes;
    char *name = index_name(p, m, idx, set->names.n, unique);
    if (!name) {
        free(idx);
        return;
    }
    for (size_t i = 0; i < *n; i++) {
        if (strcmp((*list)[i].name, name) == 0) {
            cs_diag(p->diags, set->pos,
                    "%s on model '%s' repeats %s on the same fields (already defined as '%s')",
                    set_attr(set->kind), m->name, unique ? "a unique constraint" : "an index",
                    name);
            free(name);
            free(idx);
            return;
        }
    }
    cs_index *ix = cs_push(p, list, *n, sizeof(*ix));
    if (!ix) {
        free(name);
        free(idx);
        return;
    }
    (*n)++;
    ix->name = name;
    ix->n = set->names.n;
    ix->fields = idx;
    ix->unique = unique;
    ix->pos = set->pos;
}

/* The single @id field, -1 when none; reports extra ones.  *attempted is
 * set when some field carries @id at all (even a broken one). */
static int find_id_field(cs_parse *p, size_t mi, bool *attempted)
{
    const cs_model *m = &p->s->models[mi];
    int id = -1;
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_pfield *pf = &p->pm[mi].fields[i];
        if (!pf->id_pos.line)
            continue;
        *attempted = true;
        if (pf->bad_type || m->fields[i].type == CS_T_MODEL)
            continue;
        if (id >= 0) {
            cs_diag(p->diags, pf->id_pos,
                    "model '%s' has more than one @id field ('%s' and '%s'); use @@id([...]) "
                    "for a composite key",
                    m->name, m->fields[id].name, m->fields[i].name);
            continue;
        }
        id = (int)i;
    }
    return id;
}

static void set_composite_pk(cs_parse *p, cs_model *m, const cs_pset *set, int *idx)
{
    for (size_t i = 0; i < set->names.n; i++)
        if (m->fields[idx[i]].optional)
            cs_diag(p->diags, set->names.pos[i], "primary key field '%s.%s' cannot be optional",
                    m->name, m->fields[idx[i]].name);
    m->pk = idx;
    m->npk = set->names.n;
}

static void check_soft_delete(cs_parse *p, size_t mi)
{
    cs_model *m = &p->s->models[mi];
    const cs_pmodel *pm = &p->pm[mi];
    if (!pm->soft_name)
        return;
    int fi = cs_field_find(m, pm->soft_name);
    if (fi < 0) {
        if (!pm->broken)
            cs_diag(p->diags, pm->soft_pos, "@@soft_delete on model '%s' names unknown field '%s'",
                    m->name, pm->soft_name);
        return;
    }
    const cs_field *f = &m->fields[fi];
    if (pm->fields[fi].bad_type)
        return;
    if (f->type != CS_T_DATETIME || !f->optional) {
        cs_diag(p->diags, pm->soft_pos,
                "@@soft_delete field '%s.%s' must be an optional DateTime (DateTime?)", m->name,
                f->name);
        return;
    }
    m->soft_delete = fi;
}

void cs_validate_keys(cs_parse *p, size_t mi)
{
    cs_model *m = &p->s->models[mi];
    const cs_pmodel *pm = &p->pm[mi];
    bool attempted = false;
    int id = find_id_field(p, mi, &attempted);
    const cs_pset *composite = NULL;
    for (size_t i = 0; i < pm->nsets && !p->oom; i++) {
        const cs_pset *set = &pm->sets[i];
        if (set->kind == CS_SET_ID) {
            attempted = true;
            if (composite) {
                cs_diag(p->diags, set->pos, "model '%s' has more than one @@id", m->name);
                continue;
            }
            composite = set;
            if (id >= 0) {
                cs_diag(p->diags, set->pos, "model '%s' has both @id (on '%s') and @@id", m->name,
                        m->fields[id].name);
                continue;
            }
        }
        int *idx = resolve_set(p, mi, set);
        if (!idx)
            continue;
        if (set->kind == CS_SET_ID)
            set_composite_pk(p, m, set, idx);
        else if (set->skip)
            free(idx); /* a PostgreSQL-only index method (attrs.c): names checked, no index */
        else
            add_index(p, m, set, idx);
    }
    if (id >= 0 && !composite) {
        m->pk = malloc(sizeof(*m->pk));
        if (!m->pk) {
            p->oom = true;
            return;
        }
        m->pk[0] = id;
        m->npk = 1;
    }
    if (!m->npk && !attempted && !pm->broken)
        cs_diag(p->diags, m->pos, "model '%s' has no primary key (add @id or @@id)", m->name);
    check_soft_delete(p, mi);
}
