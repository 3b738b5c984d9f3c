/*
 * validate.c -- semantic checks of a parsed schema, and the resolution of
 * every name to an index (types, keys, indexes, relations, defaults).
 *
 * Passes, in order (later ones rely on earlier ones):
 *   1. names: reserved prefixes, duplicates, table name collisions
 *   2. types: every field's type resolves to a scalar, enum or model
 *   3. fields: attributes fit the type, defaults canonicalised, columns unique
 *   4. keys: primary key, unique sets, indexes, soft-delete field (keys.c)
 *   5. owning relations (fields:/references:), which need the targets' keys
 *   6. back relations, which need the owning sides (relations.c)
 *   7. policies (policy.c)
 * To keep one mistake one diagnostic, a field whose type failed to resolve
 * is marked bad_type and skipped by every later check.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "schema/schema_int.h"
#include "value/value.h"

#define CS_MAX_NAME 63 /* PostgreSQL truncates identifiers beyond this */

bool cs_name_reserved(const char *name)
{
    return strncasecmp(name, "_cstack", 7) == 0;
}

/* Checks a name used as an SQL identifier; `what` is like "model". */
static bool check_ident(cs_parse *p, const char *name, cs_pos pos, const char *what)
{
    size_t n = strlen(name);
    bool ok = n > 0 && ((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z') ||
                        name[0] == '_');
    for (size_t i = 1; ok && i < n; i++)
        ok = (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= 'a' && name[i] <= 'z') ||
             (name[i] >= '0' && name[i] <= '9') || name[i] == '_';
    if (!ok) {
        cs_diag(p->diags, pos,
                "invalid %s name '%s' (use letters, digits and _, not starting "
                "with a digit)",
                what, name);
        return false;
    }
    if (n > CS_MAX_NAME) {
        cs_diag(p->diags, pos, "%s name '%.20s...' is too long (at most %d bytes)", what, name,
                CS_MAX_NAME);
        return false;
    }
    if (cs_name_reserved(name)) {
        cs_diag(p->diags, pos,
                "%s name '%s' is reserved (names starting with _cstack belong to "
                "cstack)",
                what, name);
        return false;
    }
    /* SQLite refuses to create tables whose names start with sqlite_ (they
     * belong to it), so such a model would pass here and fail at migrate. */
    if ((strcmp(what, "model") == 0 || strcmp(what, "table") == 0) &&
        strncasecmp(name, "sqlite_", 7) == 0) {
        cs_diag(p->diags, pos,
                "%s name '%s' is reserved (table names starting with sqlite_ belong to SQLite)",
                what, name);
        return false;
    }
    return true;
}

/* ---- 1. names ---------------------------------------------------------- */

/* Models and enums share one namespace: `types` maps a name to 2*index
 * (+1 for models). */
static void check_type_name(cs_parse *p, cs_nameset *types, const char *name, cs_pos pos,
                            const char *what, int val)
{
    if (!check_ident(p, name, pos, what))
        return;
    if (cs_scalar_find(name) >= 0 || strcmp(name, CS_BIGINT) == 0) {
        cs_diag(p->diags, pos, "%s '%s' has the name of a built-in type", what, name);
        return;
    }
    int old = cs_nameset_add(p, types, name, val);
    if (old >= 0)
        cs_diag(p->diags, pos, "duplicate %s '%s' (%s of that name exists)", what, name,
                old & 1 ? "a model" : "an enum");
}

static void check_names(cs_parse *p)
{
    cstack_schema *s = p->s;
    cs_nameset types = {0}, tables = {.ci = true};
    for (size_t i = 0; i < s->nenums; i++) {
        cs_enum *e = &s->enums[i];
        check_type_name(p, &types, e->name, e->pos, "enum", (int)i * 2);
        for (size_t k = 0; k < e->nmembers; k++)
            if (cs_name_reserved(e->members[k]))
                cs_diag(p->diags, e->pos,
                        "enum member name '%s' is reserved (names starting "
                        "with _cstack belong to cstack)",
                        e->members[k]);
    }
    for (size_t i = 0; i < s->nmodels; i++) {
        cs_model *m = &s->models[i];
        check_type_name(p, &types, m->name, m->pos, "model", (int)i * 2 + 1);
        if (p->pm[i].map_pos.line && !check_ident(p, m->table, p->pm[i].map_pos, "table"))
            continue;
        int k = cs_nameset_add(p, &tables, m->table, (int)i);
        /* Two models of the same name were reported as a duplicate already. */
        if (k >= 0 && strcmp(s->models[k].name, m->name) != 0)
            cs_diag(p->diags, p->pm[i].map_pos.line ? p->pm[i].map_pos : m->pos,
                    "model '%s' maps to table '%s', which model '%s' already uses", m->name,
                    m->table, s->models[k].name);
    }
    cs_nameset_free(&types);
    cs_nameset_free(&tables);
}


/* ---- 2. types ---------------------------------------------------------- */

static void resolve_type(cs_parse *p, const char *owner, cs_field *f, cs_pfield *pf, bool auth)
{
    int k = cs_scalar_find(f->type_name);
    if (f->composite) { /* a claim object; its members follow (authblock.c) */
        f->type = CS_T_JSON;
        f->type_index = -1;
        return;
    }
    if (k >= 0) {
        f->type = (cs_scalar)k;
    } else if ((k = cs_enum_find(p->s, f->type_name)) >= 0) {
        f->type = CS_T_ENUM;
        f->type_index = k;
    } else if ((k = cs_model_find(p->s, f->type_name)) >= 0 && !auth) {
        f->type = CS_T_MODEL;
        f->type_index = k;
        f->rel = calloc(1, sizeof(*f->rel));
        if (!f->rel) {
            p->oom = true;
            pf->bad_type = true;
            return;
        }
        f->rel->target = k;
        f->rel->back_field = -1;
        f->rel->to_many = f->list;
        f->rel->on_delete = pf->on_delete;
        f->rel->on_update = pf->on_update;
        if (pf->rel_name && !(f->rel->name = cs_xstrdup(p, pf->rel_name)))
            pf->bad_type = true;
    } else if (k >= 0) {
        cs_diag(p->diags, pf->type_pos,
                "auth field '%s.%s' must be a scalar or an enum, not model '%s'", owner, f->name,
                f->type_name);
        pf->bad_type = true;
        return;
    } else if (cs_block_find_name(&p->types, f->type_name) >= 0) {
        cs_diag(p->diags, pf->type_pos,
                "field '%s.%s' has type '%s', a CrateStack type: types only shape auth fields "
                "here (store the value as Json)",
                owner, f->name, f->type_name);
        pf->bad_type = true;
        return;
    } else if (cs_ext_type_name(f->type_name)) {
        cs_ext_resolve(p, owner, f, pf, auth); /* a list already, for a Vector */
        return;
    } else {
        cs_diag(p->diags, pf->type_pos, "unknown type '%s' for field '%s.%s'", f->type_name, owner,
                f->name);
        pf->bad_type = true;
        return;
    }
    if (f->list && f->type != CS_T_MODEL) {
        if (auth || f->type == CS_T_JSON) {
            cs_diag(p->diags, pf->type_pos,
                    "field '%s.%s' cannot be a list: lists of %s are not supported%s", owner,
                    f->name, f->type_name, auth ? " in the auth block" : "");
            pf->bad_type = true;
            return;
        }
        /* A scalar list is stored as a JSON array (docs/schema.md). */
        f->elem = f->type;
        f->elem_index = f->type_index;
        f->type = CS_T_JSON;
        f->type_index = -1;
    }
}

static void check_dup_fields(cs_parse *p, const char *what, const char *owner, cs_field *fs,
                             cs_pfield *pfs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* A composite auth field's members are named "field.member". */
        const char *dot = strrchr(fs[i].name, '.');
        check_ident(p, dot ? dot + 1 : fs[i].name, fs[i].pos, "field");
        for (size_t k = 0; k < i; k++) {
            if (strcmp(fs[k].name, fs[i].name) == 0) {
                cs_diag(p->diags, fs[i].pos, "duplicate field '%s' in %s '%s'", fs[i].name, what,
                        owner);
                pfs[i].bad_type = true; /* one report for the duplicate, no more */
                break;
            }
        }
    }
}

static void resolve_types(cs_parse *p)
{
    cstack_schema *s = p->s;
    for (size_t i = 0; i < s->nmodels; i++) {
        cs_model *m = &s->models[i];
        for (size_t k = 0; k < m->nfields; k++)
            resolve_type(p, m->name, &m->fields[k], &p->pm[i].fields[k], false);
        check_dup_fields(p, "model", m->name, m->fields, p->pm[i].fields, m->nfields);
    }
    for (size_t k = 0; k < s->auth.nfields; k++)
        resolve_type(p, s->auth.name, &s->auth.fields[k], &p->pauth[k], true);
    check_dup_fields(p, "auth", s->auth.name, s->auth.fields, p->pauth, s->auth.nfields);
}

/* ---- 3. fields and defaults ------------------------------------------- */

static char *default_int(const char *text)
{
    if (strpbrk(text, ".eE"))
        return NULL;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno || *end)
        return NULL;
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", v);
    return cs_strdup(buf);
}

static char *default_float(const char *text)
{
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (errno || *end || !isfinite(v))
        return NULL;
    return cs_strdup(text);
}

/* Canonical storage text of a literal default, or NULL (err filled). */
static char *canon_literal(cs_parse *p, const cs_field *f, const cs_pfield *pf, char *err,
                           size_t errlen)
{
    const char *t = pf->def_text;
    cs_tok_kind k = pf->def_tok;
    err[0] = 0;
    switch (f->type) {
    case CS_T_STRING:
    case CS_T_CUID:
        return k == T_STRING ? cs_strdup(t) : NULL;
    case CS_T_INT:
        return k == T_NUMBER ? default_int(t) : NULL;
    case CS_T_FLOAT:
        return k == T_NUMBER ? default_float(t) : NULL;
    case CS_T_BOOLEAN:
        if (k == T_IDENT && (strcmp(t, "true") == 0 || strcmp(t, "false") == 0))
            return cs_strdup(t[0] == 't' ? "1" : "0");
        return NULL;
    case CS_T_ENUM:
        if ((k == T_IDENT || k == T_STRING) &&
            cs_enum_member(&p->s->enums[f->type_index], t, strlen(t)) >= 0)
            return cs_strdup(t);
        return NULL;
    case CS_T_UUID:
    case CS_T_DATETIME: {
        char out[CS_UUID_LEN + CS_DATETIME_LEN + 2];
        if (k != T_STRING)
            return NULL;
        int rc = f->type == CS_T_UUID ? cs_uuid_canon(t, strlen(t), out, err, errlen)
                                      : cs_datetime_canon(t, strlen(t), out, err, errlen);
        return rc == 0 ? cs_strdup(out) : NULL;
    }
    case CS_T_DECIMAL: {
        cs_buf b = CS_BUF_INIT;
        if ((k != T_STRING && k != T_NUMBER) || cs_decimal_canon(t, strlen(t), &b, err, errlen)) {
            cs_buf_free(&b);
            return NULL;
        }
        return cs_buf_take(&b);
    }
    default:
        return NULL;
    }
}

static void check_default(cs_parse *p, const cs_model *m, cs_field *f, const cs_pfield *pf)
{
    static const char *const fn[] = {"", "", "uuid()", "cuid()", "now()", "autoincrement()"};
    cs_scalar t = f->type;
    bool ok = true;
    switch (f->def.kind) {
    case CS_DEF_NONE:
        /* A @version counter starts at 1 (also for rows a migration adds it to). */
        if (f->version && !(f->def.literal = cs_strdup("1")))
            p->oom = true;
        else if (f->version)
            f->def.kind = CS_DEF_LITERAL;
        return;
    case CS_DEF_UUID:
        ok = t == CS_T_UUID || t == CS_T_STRING;
        break;
    case CS_DEF_CUID:
        ok = t == CS_T_CUID || t == CS_T_STRING;
        break;
    case CS_DEF_NOW:
        ok = t == CS_T_DATETIME;
        break;
    case CS_DEF_AUTOINCREMENT:
        ok = t == CS_T_INT;
        break;
    case CS_DEF_LITERAL: {
        if (t == CS_T_JSON || t == CS_T_BYTES) {
            cs_diag(p->diags, pf->def_pos, "@default is not supported on %s field '%s.%s'",
                    cs_scalar_name(t), m->name, f->name);
            return;
        }
        char err[160];
        f->def.literal = canon_literal(p, f, pf, err, sizeof(err));
        if (f->def.literal)
            return;
        if (err[0])
            cs_diag(p->diags, pf->def_pos, "invalid default for field '%s.%s': %s", m->name,
                    f->name, err);
        else if (t == CS_T_ENUM)
            cs_diag(p->diags, pf->def_pos,
                    "default '%s' is not a member of enum '%s' (field "
                    "'%s.%s')",
                    pf->def_text, f->type_name, m->name, f->name);
        else if (t == CS_T_STRING) /* CrateStack parses this too, but no server can store it */
            cs_diag(p->diags, pf->def_pos,
                    "default value %s does not fit String field '%s.%s' (a String default is a "
                    "quoted string: @default(\"%s\"))",
                    pf->def_text, m->name, f->name, pf->def_text);
        else
            cs_diag(p->diags, pf->def_pos, "default value %s does not fit %s field '%s.%s'",
                    pf->def_text, f->type_name, m->name, f->name);
        return;
    }
    }
    if (!ok)
        cs_diag(p->diags, pf->def_pos, "@default(%s) cannot be used on %s field '%s.%s'",
                fn[f->def.kind], f->type_name, m->name, f->name);
}

/* Attributes that make no sense on a relation field. */
static void check_relation_field(cs_parse *p, const cs_model *m, const cs_field *f,
                                 const cs_pfield *pf)
{
    struct {
        cs_pos pos;
        const char *attr;
    } bad[] = {{pf->id_pos, "@id"},
               {pf->unique_pos, "@unique"},
               {pf->def_pos, "@default"},
               {pf->updated_pos, "@updatedAt"},
               {pf->map_pos, "@map"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (bad[i].pos.line)
            cs_diag(p->diags, bad[i].pos,
                    "%s is not allowed on relation field '%s.%s' (it has no column)", bad[i].attr,
                    m->name, f->name);
}

static void check_column(cs_parse *p, const cs_model *m, size_t fi)
{
    const cs_field *f = &m->fields[fi];
    const cs_pfield *pf = &p->pm[m - p->s->models].fields[fi];
    if (pf->map_pos.line && !check_ident(p, f->column, pf->map_pos, "column"))
        return;
    for (size_t k = 0; k < fi; k++) {
        const cs_field *g = &m->fields[k];
        if (cs_field_is_column(g) && strcasecmp(g->column, f->column) == 0 &&
            strcmp(g->name, f->name) != 0) {
            cs_diag(p->diags, pf->map_pos.line ? pf->map_pos : f->pos,
                    "field '%s.%s' maps to column '%s', which field '%s' already uses", m->name,
                    f->name, f->column, g->name);
            return;
        }
    }
}

static void check_fields(cs_parse *p, size_t mi)
{
    cs_model *m = &p->s->models[mi];
    for (size_t i = 0; i < m->nfields; i++) {
        cs_field *f = &m->fields[i];
        cs_pfield *pf = &p->pm[mi].fields[i];
        if (pf->bad_type)
            continue;
        if (f->type == CS_T_MODEL) {
            check_relation_field(p, m, f, pf);
            continue;
        }
        if (pf->rel_pos.line)
            cs_diag(p->diags, pf->rel_pos,
                    "@relation on field '%s.%s', whose type %s is not a "
                    "model",
                    m->name, f->name, f->type_name);
        if (f->is_id && f->optional)
            cs_diag(p->diags, pf->id_pos, "primary key field '%s.%s' cannot be optional", m->name,
                    f->name);
        if (f->updated_at && f->type != CS_T_DATETIME)
            cs_diag(p->diags, pf->updated_pos,
                    "@updatedAt requires a DateTime field, but "
                    "'%s.%s' is %s",
                    m->name, f->name, f->type_name);
        check_default(p, m, f, pf);
        check_column(p, m, i);
    }
}

/* ---- driver ------------------------------------------------------------ */

void cs_validate(cs_parse *p)
{
    cstack_schema *s = p->s;
    check_names(p);
    resolve_types(p);
    for (size_t i = 0; i < s->nmodels && !p->oom; i++)
        check_fields(p, i);
    for (size_t i = 0; i < s->nmodels && !p->oom; i++)
        cs_validate_keys(p, i);
    for (size_t i = 0; i < s->nmodels && !p->oom; i++)
        cs_validate_owning(p, i);
    for (size_t i = 0; i < s->nmodels && !p->oom; i++)
        cs_validate_back(p, i);
    for (size_t i = 0; i < s->nmodels && !p->oom; i++)
        cs_validate_policies(p, (int)i);
}
