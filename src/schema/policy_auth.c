/*
 * policy_auth.c -- auth() in policies: its fields, the members of composite
 * auth fields, and `auth() == relation`.
 *
 * Composite fields (a CrateStack `type` used in the auth block) are
 * flattened by the parser into dotted auth fields (schema.h), so
 * `auth().organization.id` is simply the auth field "organization.id"; what
 * this file adds is a diagnostic that points at the member that does not
 * exist.
 *
 * `auth() == rel` (CrateStack, after ZenStack) means "the related row is
 * the signed-in user": its key equals auth().id.  It is rewritten while
 * validating into the comparison it means, so the canonical text, the hash
 * and the server's SQL see only ordinary comparisons:
 *
 *   owner == auth()    where owner is @relation(fields: [ownerId],
 *                      references: [id]) and id is User's key
 *                      -> ownerId == auth().id  (no join: the row's own column)
 *   profile == auth()  any other to-one relation (a back side, or keys that
 *                      are not the target's primary key)
 *                      -> profile.id == auth().id  (through the relation)
 *
 * The target model needs a one-field primary key whose type can be compared
 * with the auth block's `id` field (String, Uuid and Cuid with each other,
 * Int, Float and Decimal with each other, otherwise the same type).
 */
#include <stdlib.h>
#include <string.h>

#include "schema/schema_int.h"

static int auth_find(const cs_auth_block *a, const char *name, size_t n)
{
    for (size_t i = 0; i < a->nfields; i++)
        if (strlen(a->fields[i].name) == n && memcmp(a->fields[i].name, name, n) == 0)
            return (int)i;
    return -1;
}

bool cs_auth_has(const cs_parse *p, const char *name)
{
    const cs_auth_block *a = &p->s->auth;
    int i = a->name ? auth_find(a, name, strlen(name)) : -1;
    return i >= 0 && !a->fields[i].composite;
}

/* The diagnostic for an auth() path that names no auth field: the first
 * segment that is not there, reported where it is written. */
static void unknown_member(cs_parse *p, const char *root, const cs_expr *e)
{
    const cs_auth_block *a = &p->s->auth;
    const char *seg = e->text;
    int parent = -1;
    size_t k = 0;
    for (; k < e->nseg; k++) {
        const char *end = strchr(seg, '.');
        size_t n = end ? (size_t)(end - e->text) : strlen(e->text);
        int i = auth_find(a, e->text, n);
        if (i < 0 || !end)
            break;
        parent = i;
        seg = end + 1;
    }
    const char *end = strchr(seg, '.');
    int seglen = end ? (int)(end - seg) : (int)strlen(seg);
    if (e->bval && strcmp(e->text, "role") == 0) /* made by hasRole() */
        cs_diag(p->diags, e->pos,
                "hasRole() compares auth().role or auth().actor.role, but auth '%s' has neither",
                a->name);
    else if (e->bval) /* made by inTenant() */
        cs_diag(p->diags, e->pos,
                "inTenant() compares auth().tenant.id, but auth '%s' has no field 'tenant' of a "
                "type with an 'id' member",
                a->name);
    else if (parent < 0)
        cs_diag(p->diags, e->pos, "policy on '%s' names unknown auth() field '%.*s'", root, seglen,
                seg);
    else if (a->fields[parent].composite)
        cs_diag(p->diags, k < e->nseg ? e->seg_pos[k] : e->pos,
                "policy on '%s': auth().%s (type '%s') has no member '%.*s'", root,
                a->fields[parent].name, a->fields[parent].type_name, seglen, seg);
    else
        cs_diag(p->diags, k < e->nseg ? e->seg_pos[k] : e->pos,
                "policy on '%s': auth().%s is %s, which has no member '%.*s'", root,
                a->fields[parent].name, a->fields[parent].type_name, seglen, seg);
}

bool cs_check_auth(cs_parse *p, const char *root, cs_expr *e)
{
    const cs_auth_block *a = &p->s->auth;
    /* auth() itself (signed in or not) needs no auth block; its fields do. */
    if (!a->name && e->kind == CS_E_AUTH) {
        e->vtype = CS_T_MODEL;
        e->type_index = -1;
        return true;
    }
    if (!a->name) {
        bool role = e->bval && strcmp(e->text, "role") == 0;
        if (!e->bval)
            cs_diag(p->diags, e->pos,
                    "policy on '%s' reads an auth() field but the schema has no auth block", root);
        else
            cs_diag(p->diags, e->pos,
                    "policy on '%s' uses %s, which compares auth().%s: declare an auth block "
                    "with %s",
                    root, role ? "hasRole()" : "inTenant()", role ? "role" : "tenant.id",
                    role ? "a 'role' field (or 'actor' of a type with a 'role' member)"
                         : "a 'tenant' field of a type with an 'id' member");
        return false;
    }
    e->vtype = CS_T_MODEL;
    e->type_index = -1;
    if (e->kind == CS_E_AUTH)
        return true;
    int i = auth_find(a, e->text, strlen(e->text));
    if (i >= 0) {
        if (p->pauth[i].bad_type)
            return false;
        e->vtype = a->fields[i].type;
        e->type_index = a->fields[i].type_index;
        return true;
    }
    if (!p->auth_broken)
        unknown_member(p, root, e);
    return false;
}

/* ---- auth() == relation ---------------------------------------------------- */

static bool id_text(cs_scalar t)
{
    return t == CS_T_STRING || t == CS_T_UUID || t == CS_T_CUID;
}

static bool numeric(cs_scalar t)
{
    return t == CS_T_INT || t == CS_T_FLOAT || t == CS_T_DECIMAL;
}

static bool key_fits(const cs_field *key, const cs_field *id)
{
    if ((id_text(key->type) && id_text(id->type)) || (numeric(key->type) && numeric(id->type)))
        return true;
    return key->type == id->type && key->type_index == id->type_index &&
           key->type != CS_T_JSON && key->type != CS_T_BYTES;
}

/* The relation field a checked path ends at (the path's segments before it
 * are to-one relations) and, in *holder, the model that declares it. */
static const cs_field *last_relation(const cstack_schema *s, const cs_expr *rel, int mi,
                                     const cs_model **holder)
{
    const cs_model *m = &s->models[mi];
    const cs_field *f = &m->fields[cs_field_find(m, rel->path[0])];
    for (size_t i = 1; i < rel->npath; i++) {
        m = &s->models[f->type_index];
        f = &m->fields[cs_field_find(m, rel->path[i])];
    }
    *holder = m;
    return f;
}

/* Checks that `auth() == rel` can mean auth().id == rel's key; returns the
 * key field of the target, or NULL (diagnosed). */
static const cs_field *relation_key(cs_parse *p, const char *root, const cs_expr *au,
                                    const cs_expr *rel, int id)
{
    const cs_auth_block *a = &p->s->auth;
    const cs_model *t = &p->s->models[rel->type_index];
    const char *rn = rel->path[rel->npath - 1];
    if (id < 0) {
        cs_diag(p->diags, au->pos,
                "policy on '%s' compares auth() with relation '%s', which compares auth().id "
                "with the key of '%s': %s",
                root, rn, t->name,
                a->name ? "the auth block has no field 'id'" : "declare an auth block with an 'id' field");
        return NULL;
    }
    if (t->npk != 1) {
        cs_diag(p->diags, rel->pos,
                "policy on '%s' compares auth() with relation '%s', but '%s' has a primary key of "
                "%zu fields (auth().id can only equal a one-field key)",
                root, rn, t->name, t->npk);
        return NULL;
    }
    const cs_field *key = &t->fields[t->pk[0]];
    if (!key_fits(key, &a->fields[id])) {
        cs_diag(p->diags, rel->pos,
                "policy on '%s' compares auth() with relation '%s', but auth().id is %s and the "
                "key of '%s' is %s",
                root, rn, a->fields[id].type_name, t->name, key->type_name);
        return NULL;
    }
    return key;
}

int cs_auth_relation(cs_parse *p, const char *root, cs_expr *e, int mi)
{
    if (e->op != CS_OP_EQ && e->op != CS_OP_NE)
        return 0;
    cs_expr *au = e->lhs->kind == CS_E_AUTH ? e->lhs : e->rhs->kind == CS_E_AUTH ? e->rhs : NULL;
    cs_expr *rel = au == e->lhs ? e->rhs : e->lhs;
    if (!au || rel->kind != CS_E_FIELD || rel->vtype != CS_T_MODEL || rel->type_index < 0)
        return 0;
    const cs_auth_block *a = &p->s->auth;
    int id = a->name ? auth_find(a, "id", 2) : -1;
    const cs_field *key = relation_key(p, root, au, rel, id);
    if (!key)
        return -1;
    const cs_model *t = &p->s->models[rel->type_index];
    const cs_model *holder = NULL;
    const cs_relation *r = last_relation(p->s, rel, mi, &holder)->rel;
    /* The owning side's foreign key holds the key already: no join. */
    bool local = r->nfields == 1 && r->refs[0] == t->pk[0];
    const cs_field *kf = local ? &holder->fields[r->fields[0]] : key;
    char *seg = NULL;
    char *idtext = cs_xstrdup(p, "id");
    if (!idtext || !(seg = cs_xstrdup(p, kf->name))) {
        free(idtext);
        return -1;
    }
    if (local) {
        free(rel->path[rel->npath - 1]);
        rel->path[rel->npath - 1] = seg;
    } else {
        char **slot = cs_push(p, &rel->path, rel->npath, sizeof *slot);
        if (!slot) {
            free(seg);
            free(idtext);
            return -1;
        }
        *slot = seg;
        rel->npath++;
    }
    rel->vtype = kf->type;
    rel->type_index = kf->type_index;
    au->kind = CS_E_AUTH_FIELD;
    au->text = idtext;
    au->vtype = a->fields[id].type;
    au->type_index = a->fields[id].type_index;
    return local ? 1 : 2;
}
