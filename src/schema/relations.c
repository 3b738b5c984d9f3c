/*
 * relations.c -- resolution of relation fields.
 *
 * The owning side carries @relation(fields: [...], references: [...]): its
 * scalar fields reference the primary key or a unique set of the target, with
 * the same types.  The other side (`notes Note[]`, or an optional
 * `profile Profile?` for one-to-one) names no fields; it is matched to the
 * single owning relation field in the target that points back at this model
 * with the same relation name (both unnamed, or equal names).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

static bool is_owning(const cs_pfield *pf)
{
    return pf->rel_has_fields || pf->rel_has_refs;
}

/* Resolves `names` in model `mi` to scalar field indices into `out`. */
static bool resolve_names(cs_parse *p, const cs_field *f, const char *owner, size_t mi,
                          const cs_names *names, bool refs, int *out)
{
    const cs_model *m = &p->s->models[mi];
    bool ok = true;
    for (size_t i = 0; i < names->n; i++) {
        int fi = cs_field_find(m, names->v[i]);
        out[i] = fi;
        if (fi < 0) {
            if (!p->pm[mi].broken)
                cs_diag(p->diags, names->pos[i], "@relation on '%s.%s' %s unknown field '%s.%s'",
                        owner, f->name, refs ? "references" : "names", m->name, names->v[i]);
            ok = false;
        } else if (p->pm[mi].fields[fi].bad_type) {
            ok = false;
        } else if (m->fields[fi].type == CS_T_MODEL) {
            cs_diag(p->diags, names->pos[i],
                    "@relation on '%s.%s' lists relation field '%s.%s'; %s must be scalar fields",
                    owner, f->name, m->name, names->v[i], refs ? "references" : "fields");
            ok = false;
        }
    }
    return ok;
}

static bool same_set(const int *a, size_t na, const int *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        bool found = false;
        for (size_t k = 0; k < nb && !found; k++)
            found = a[i] == b[k];
        if (!found)
            return false;
    }
    return true;
}

/* True when `refs` is the primary key or a unique set of `t`. */
static bool is_key(const cs_model *t, const int *refs, size_t n)
{
    if (same_set(refs, n, t->pk, t->npk))
        return true;
    for (size_t i = 0; i < t->nuniques; i++)
        if (same_set(refs, n, t->uniques[i].fields, t->uniques[i].n))
            return true;
    return false;
}

static bool check_ref_types(cs_parse *p, const cs_model *m, const cs_field *f, const cs_pfield *pf,
                            const int *fi, const int *ri)
{
    const cs_model *t = &p->s->models[f->rel->target];
    bool ok = true;
    for (size_t i = 0; i < pf->rel_fields.n; i++) {
        const cs_field *a = &m->fields[fi[i]], *b = &t->fields[ri[i]];
        if (a->type != b->type || (a->type == CS_T_ENUM && a->type_index != b->type_index)) {
            cs_diag(p->diags, pf->rel_fields.pos[i],
                    "type mismatch in @relation on '%s.%s': '%s' is %s but '%s.%s' is %s", m->name,
                    f->name, a->name, a->type_name, t->name, b->name, b->type_name);
            ok = false;
        }
    }
    if (!ok)
        return false;
    if (!is_key(t, ri, pf->rel_refs.n)) {
        if (t->npk || !p->pm[f->rel->target].broken)
            cs_diag(p->diags, pf->rel_pos,
                    "@relation on '%s.%s' must reference the primary key or a unique field set "
                    "of '%s'",
                    m->name, f->name, t->name);
        return false;
    }
    bool set_null = f->rel->on_delete == CS_ACT_SET_NULL || f->rel->on_update == CS_ACT_SET_NULL;
    for (size_t i = 0; set_null && i < pf->rel_fields.n; i++) {
        if (!m->fields[fi[i]].optional) {
            cs_diag(p->diags, pf->rel_pos,
                    "SetNull on '%s.%s' needs optional fields, but '%s' is required", m->name,
                    f->name, m->fields[fi[i]].name);
            return false;
        }
    }
    return true;
}

static void owning_one(cs_parse *p, size_t mi, size_t fidx)
{
    const cs_model *m = &p->s->models[mi];
    const cs_field *f = &m->fields[fidx];
    const cs_pfield *pf = &p->pm[mi].fields[fidx];
    cs_relation *rel = f->rel;
    if (!pf->rel_has_fields || !pf->rel_has_refs) {
        cs_diag(p->diags, pf->rel_pos,
                "@relation on '%s.%s' needs both fields: and references:", m->name, f->name);
        return;
    }
    size_t n = pf->rel_fields.n;
    if (n != pf->rel_refs.n) {
        cs_diag(p->diags, pf->rel_pos, "@relation on '%s.%s' has %zu fields but %zu references",
                m->name, f->name, n, pf->rel_refs.n);
        return;
    }
    int *fi = calloc(n, sizeof(*fi));
    int *ri = calloc(n, sizeof(*ri));
    if (!fi || !ri) {
        p->oom = true;
    } else {
        bool okf = resolve_names(p, f, m->name, mi, &pf->rel_fields, false, fi);
        bool okr = resolve_names(p, f, m->name, (size_t)rel->target, &pf->rel_refs, true, ri);
        if (okf && okr && check_ref_types(p, m, f, pf, fi, ri)) {
            rel->nfields = n;
            rel->fields = fi;
            rel->refs = ri;
            return;
        }
    }
    free(fi);
    free(ri);
}

void cs_validate_owning(cs_parse *p, size_t mi)
{
    const cs_model *m = &p->s->models[mi];
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_pfield *pf = &p->pm[mi].fields[i];
        if (m->fields[i].type == CS_T_MODEL && !pf->bad_type && is_owning(pf))
            owning_one(p, mi, i);
    }
}

static bool names_equal(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* A model with an unresolved field may have lost the owning side: silence. */
static bool model_unsure(const cs_parse *p, size_t mi)
{
    const cs_pmodel *pm = &p->pm[mi];
    if (pm->broken)
        return true;
    for (size_t i = 0; i < p->s->models[mi].nfields; i++)
        if (pm->fields[i].bad_type)
            return true;
    return false;
}

/* The owning field in the target matching back field `fidx`, or -1. */
static int find_owner(cs_parse *p, size_t mi, size_t fidx)
{
    const cs_model *m = &p->s->models[mi];
    const cs_field *f = &m->fields[fidx];
    size_t t = (size_t)f->rel->target;
    const cs_model *tm = &p->s->models[t];
    int match = -1, count = 0;
    for (size_t gi = 0; gi < tm->nfields; gi++) {
        const cs_field *g = &tm->fields[gi];
        const cs_pfield *pg = &p->pm[t].fields[gi];
        if (pg->bad_type || g->type != CS_T_MODEL || !is_owning(pg) || g->type_index != (int)mi ||
            (t == mi && gi == fidx) || !names_equal(g->rel->name, f->rel->name))
            continue;
        if (match < 0)
            match = (int)gi;
        count++;
    }
    if (count > 1) {
        cs_diag(p->diags, f->pos,
                "ambiguous relation '%s.%s': model '%s' has %d relations to '%s'; name both "
                "sides with @relation(\"name\")",
                m->name, f->name, tm->name, count, m->name);
        return -1;
    }
    if (match < 0 && !model_unsure(p, t)) {
        if (f->rel->name)
            cs_diag(p->diags, f->pos,
                    "relation field '%s.%s' has no matching relation named \"%s\" in model '%s'",
                    m->name, f->name, f->rel->name, tm->name);
        else
            cs_diag(p->diags, f->pos,
                    "relation field '%s.%s' has no matching relation in model '%s' (add a field "
                    "with @relation(fields: [...], references: [...]) there)",
                    m->name, f->name, tm->name);
    }
    return match;
}

static void back_one(cs_parse *p, size_t mi, size_t fidx)
{
    const cs_model *m = &p->s->models[mi];
    const cs_field *f = &m->fields[fidx];
    const cs_pfield *pf = &p->pm[mi].fields[fidx];
    if (pf->on_delete || pf->on_update) {
        cs_diag(p->diags, pf->rel_pos,
                "onDelete/onUpdate on '%s.%s' belong on the side with fields: and references:",
                m->name, f->name);
        return;
    }
    int owner = find_owner(p, mi, fidx);
    if (owner < 0)
        return;
    const cs_model *tm = &p->s->models[f->rel->target];
    for (size_t k = 0; k < fidx; k++) {
        const cs_field *g = &m->fields[k];
        if (g->type == CS_T_MODEL && g->rel && g->rel->target == f->rel->target &&
            g->rel->back_field == owner) {
            cs_diag(p->diags, f->pos, "relation '%s.%s' already has the back relation '%s.%s'",
                    tm->name, tm->fields[owner].name, m->name, g->name);
            return;
        }
    }
    if (!f->list && !f->optional) {
        cs_diag(p->diags, pf->type_pos,
                "back relation '%s.%s' must be optional (%s?) or a list (%s[])", m->name, f->name,
                f->type_name, f->type_name);
        return;
    }
    /* One-to-one: at most one row may point back, so the owning side's
     * fields must be unique (when they resolved at all). */
    const cs_relation *own = tm->fields[owner].rel;
    if (!f->list && own->nfields && !is_key(tm, own->fields, own->nfields)) {
        cs_diag(p->diags, f->pos,
                "one-to-one relation '%s.%s' needs the fields of '%s.%s' to be unique (add "
                "@unique or @@unique)",
                m->name, f->name, tm->name, tm->fields[owner].name);
        return;
    }
    f->rel->back_field = owner;
}

void cs_validate_back(cs_parse *p, size_t mi)
{
    const cs_model *m = &p->s->models[mi];
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_pfield *pf = &p->pm[mi].fields[i];
        if (m->fields[i].type == CS_T_MODEL && !pf->bad_type && !is_owning(pf))
            back_one(p, mi, i);
    }
}
