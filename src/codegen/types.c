/* types.c -- the C types of a schema: enums, the model struct, its list and
 * its create / update inputs, plus the static functions that decode a
 * cstack_row into the struct and encode inputs as cstack_data.
 *
 * A row's values are read by position when the row holds every column in
 * schema order (the usual case, checked once per result by comparing names)
 * and by name otherwise (a `select` projection), so decoding costs no string
 * comparison per value. */
#include <string.h>

#include "codegen/cg.h"

cg_kind cg_kind_of(const cs_field *f)
{
    switch (f->type) {
    case CS_T_INT:
        return CG_INT;
    case CS_T_FLOAT:
        return CG_FLOAT;
    case CS_T_BOOLEAN:
        return CG_BOOL;
    case CS_T_BYTES:
        return CG_BYTES;
    case CS_T_ENUM:
        return CG_ENUM;
    default:
        return CG_TEXT;
    }
}

const char *cg_ctype(cg *g, const cg_field *cf)
{
    switch (cf->kind) {
    case CG_INT:
        return "int64_t";
    case CG_FLOAT:
        return "double";
    case CG_BOOL:
        return "bool";
    case CG_BYTES:
        return "const void *";
    case CG_ENUM:
        return g->enums[cf->f->type_index].type;
    default:
        return "const char *";
    }
}

bool cg_omittable(const cs_field *f)
{
    return f->optional || f->updated_at || f->def.kind != CS_DEF_NONE;
}

const char *cg_value_expr(cg *g, const cg_field *cf, const char *expr, const char *len)
{
    switch (cf->kind) {
    case CG_INT:
        return cg_str(g, "cstack_v_int(%s)", expr);
    case CG_FLOAT:
        return cg_str(g, "cstack_v_float(%s)", expr);
    case CG_BOOL:
        return cg_str(g, "cstack_v_bool(%s)", expr);
    case CG_BYTES:
        return cg_str(g, "%s ? cstack_v_blob(%s, %s) : cstack_v_null()", expr, expr, len);
    case CG_ENUM:
        return cg_str(g, "%s_value_(%s)", g->enums[cf->f->type_index].prefix, expr);
    default:
        return cg_str(g, "cstack_v_text(%s)", expr);
    }
}

/* `type name` with the usual spacing of pointer types. */
static const char *decl(cg *g, const char *type, const char *name)
{
    size_t n = strlen(type);
    return cg_str(g, "%s%s%s", type, n && type[n - 1] == '*' ? "" : " ", name);
}

/* A short description of a field for member comments: "Decimal?",
 * "Uuid @id, default uuid()". */
static const char *describe(cg *g, const cs_field *f)
{
    static const char *const FN[] = {"", "", "uuid()", "cuid()", "now()", "autoincrement()"};
    const char *d =
        cg_str(g, "%s%s%s%s%s", f->type_name, f->optional ? "?" : "", f->is_id ? " @id" : "",
               f->is_unique ? " @unique" : "", f->updated_at ? " @updatedAt" : "");
    if (f->def.kind == CS_DEF_LITERAL && f->def.literal && f->type == CS_T_BOOLEAN)
        d = cg_str(g, "%s, default %s", d, f->def.literal[0] == '1' ? "true" : "false");
    else if (f->def.kind == CS_DEF_LITERAL && f->def.literal && f->type == CS_T_STRING)
        d = cg_str(g, "%s, default \"%s\"", d, f->def.literal);
    else if (f->def.kind == CS_DEF_LITERAL && f->def.literal)
        d = cg_str(g, "%s, default %s", d, f->def.literal);
    else if (f->def.kind != CS_DEF_NONE && (size_t)f->def.kind < sizeof FN / sizeof FN[0])
        d = cg_str(g, "%s, default %s", d, FN[f->def.kind]);
    return cg_safe(g, d, false);
}

/* ---- enums ---- */

static void enum_statics(cg *g, const cg_enum *ce, size_t n)
{
    const char *value = cg_decl(g, (int)(ce - g->enums), "%s_value_", ce->prefix);
    const char *decode = cg_decl(g, (int)(ce - g->enums), "%s_decode_", ce->prefix);
    cg_c(g,
         "\n/* The stored text of v_; a value outside the enum becomes text the runtime\n"
         " * rejects with a message naming the field. */\n"
         "static cstack_value %s(%s v_)\n{\n"
         "    const char *name_ = %s_name(v_);\n"
         "    return cstack_v_text(name_ ? name_ : \"(not a member of %s)\");\n}\n",
         value, ce->type, ce->prefix, ce->type);
    cg_c(g,
         "\nstatic int %s(cstack_value v_, %s *out_)\n{\n"
         "    for (unsigned i_ = 0; v_.type == CSTACK_TEXT && i_ < %zuu; i_++) {\n"
         "        const char *m_ = %s_names_[i_];\n"
         "        if (strlen(m_) == v_.u.s.n && memcmp(m_, v_.u.s.p, v_.u.s.n) == 0) {\n"
         "            *out_ = (%s)i_;\n            return 0;\n        }\n    }\n"
         "    return CSTACK_EVALIDATION;\n}\n",
         decode, ce->type, n, ce->prefix, ce->type);
}

void cg_emit_enum(cg *g, size_t ei)
{
    cg_enum *ce = &g->enums[ei];
    const cs_enum *e = ce->e;
    int owner = (int)ei;
    cg_decl(g, owner, "%s", ce->type);
    cg_h(g, "\n/* ---- enum %s ---- */\n", e->name);
    if (e->doc) {
        cg_h(g, "/*\n");
        cg_doc(g, e->doc, " * ");
        cg_h(g, " */\n");
    }
    cg_h(g, "typedef enum %s {\n", ce->type);
    for (size_t i = 0; i < e->nmembers; i++)
        cg_h(g, "    %s%s\n", cg_decl(g, owner, "%s_%s", ce->upper, e->members[i]),
             i + 1 < e->nmembers ? "," : "");
    cg_h(g, "} %s;\n", ce->type);
    const char *names = cg_decl(g, owner, "%s_names_", ce->prefix);
    cg_c(g, "\nstatic const char *const %s[%zu] = {", names, e->nmembers);
    for (size_t i = 0; i < e->nmembers; i++)
        cg_c(g, "%s\"%s\"", i ? ", " : "", e->members[i]);
    cg_c(g, "};\n\n");
    const char *v = cg_param(g, "value", NULL, 0);
    cg_fn(
        g,
        "The schema spelling of a member (\"OPEN\"), a static string; NULL when the\n"
        " * value is not a member.",
        cg_str(g, "const char *%s(%s %s)", cg_decl(g, owner, "%s_name", ce->prefix), ce->type, v));
    cg_c(g, "    return (unsigned)%s < %zuu ? %s[(unsigned)%s] : NULL;\n}\n\n", v, e->nmembers,
         names, v);
    const char *nm = cg_param(g, "name", NULL, 0);
    const char *out = cg_param(g, "out", &nm, 1);
    cg_fn(g,
          "Sets *out to the member spelled exactly `name` and returns true; returns\n"
          " * false (leaving *out) when there is none or `name` is NULL.  Borrows `name`.",
          cg_str(g, "bool %s(const char *%s, %s *%s)",
                 cg_decl(g, owner, "%s_from_name", ce->prefix), nm, ce->type, out));
    cg_c(g,
         "    for (unsigned i_ = 0; %s && i_ < %zuu; i_++) {\n"
         "        if (strcmp(%s, %s[i_]) == 0) {\n"
         "            *%s = (%s)i_;\n            return true;\n        }\n    }\n"
         "    return false;\n}\n",
         nm, e->nmembers, nm, names, out, ce->type);
    if (ce->used)
        enum_statics(g, ce, e->nmembers);
}

/* ---- model structs ---- */

static void member_line(cg *g, const char *type, const char *name, const char *note)
{
    if (note && *note)
        cg_h(g, "    %s; /* %s */\n", decl(g, type, name), note);
    else
        cg_h(g, "    %s;\n", decl(g, type, name));
}

static void field_doc(cg *g, const cs_field *f)
{
    if (!f->doc)
        return;
    cg_h(g, "    /*\n");
    cg_doc(g, f->doc, "     * ");
    cg_h(g, "     */\n");
}

static void row_struct(cg *g, const cg_model *cm)
{
    cg_h(g, "\n");
    cg_note(g, cg_str(g,
                      "One %s as stored, filled by the functions below.  It owns `%s`: every "
                      "string and byte pointer in it lives until %s_free().  Fields left out "
                      "by a query's `select` are zero / NULL.",
                      cg_safe(g, cm->m->name, false), cm->row, cm->prefix));
    cg_h(g, "typedef struct %s {\n", cm->prefix);
    for (size_t i = 0; i < cm->m->nfields; i++) {
        const cg_field *cf = &cm->fields[i];
        if (cf->col < 0)
            continue;
        field_doc(g, cf->f);
        const char *d = describe(g, cf->f);
        if (cf->f->optional && !cg_is_pointer(cf->kind))
            member_line(g, "bool", cf->has, cg_str(g, "%s is not null", cf->f->name));
        member_line(g, cg_ctype(g, cf), cf->member,
                    cf->f->optional && cg_is_pointer(cf->kind) ? cg_str(g, "%s; NULL when null", d)
                                                               : d);
        if (cf->len)
            member_line(g, "size_t", cf->len, "length in bytes");
    }
    member_line(g, "cstack_row *", cm->row,
                cg_str(g, "owns the memory above; NULL in %s_list items", cm->prefix));
    cg_h(g, "} %s;\n", cm->prefix);
}

static void list_struct(cg *g, const cg_model *cm, int owner)
{
    const char *name = cg_decl(g, owner, "%s_list", cm->prefix);
    cg_h(g, "\n");
    cg_note(g, cg_str(g,
                      "The result of %s_find_many(): items[0..count) decoded from `rows`, "
                      "which owns their memory.  Free the whole list with %s_list_free().",
                      cm->prefix, cm->prefix));
    cg_h(g,
         "typedef struct %s {\n    %s *items;\n    size_t count;\n    cstack_rows *rows;\n} %s;\n",
         name, cm->prefix, name);
}

static void create_struct(cg *g, const cg_model *cm, int owner)
{
    const char *name = cg_decl(g, owner, "%s_create_input", cm->prefix);
    cg_h(g, "\n");
    cg_note(g, cg_str(g,
                      "The fields of a new %s.  Start from {0}: a NULL pointer or a false has_ "
                      "flag leaves a field out (its default applies).  Borrowed for the call.",
                      cg_safe(g, cm->m->name, false)));
    cg_h(g, "typedef struct %s {\n", name);
    for (size_t i = 0; i < cm->m->nfields; i++) {
        const cg_field *cf = &cm->fields[i];
        if (cf->col < 0)
            continue;
        bool omit = cg_omittable(cf->f);
        if (omit && !cg_is_pointer(cf->kind))
            member_line(g, "bool", cf->has, cg_str(g, "false: %s gets its default", cf->f->name));
        member_line(g, cg_ctype(g, cf), cf->member,
                    cg_str(g, "%s%s", describe(g, cf->f),
                           omit                      ? ""
                           : cg_is_pointer(cf->kind) ? ", required"
                                                     : ""));
        if (cf->len)
            member_line(g, "size_t", cf->len, NULL);
    }
    cg_h(g, "} %s;\n", name);
}

static void update_struct(cg *g, const cg_model *cm, int owner)
{
    const char *name = cg_decl(g, owner, "%s_update_input", cm->prefix);
    cg_h(g, "\n");
    cg_note(g, cg_str(g,
                      "A partial update of one %s: only fields whose set_ flag is true change; "
                      "a set field with a NULL pointer or a false has_ flag becomes null.  "
                      "Start from {0}.  Borrowed for the call.",
                      cg_safe(g, cm->m->name, false)));
    cg_h(g, "typedef struct %s {\n", name);
    for (size_t i = 0; i < cm->m->nfields; i++) {
        const cg_field *cf = &cm->fields[i];
        if (cf->col < 0)
            continue;
        member_line(g, "bool", cf->set, cg_str(g, "write %s", cf->f->name));
        if (cf->f->optional && !cg_is_pointer(cf->kind))
            member_line(g, "bool", cf->has, "false: write null");
        member_line(g, cg_ctype(g, cf), cf->member, describe(g, cf->f));
        if (cf->len)
            member_line(g, "size_t", cf->len, NULL);
    }
    cg_h(g, "} %s;\n", name);
}

static void descriptors(cg *g, const cg_model *cm, int owner)
{
    const cs_model *m = cm->m;
    const char *model = cg_decl(g, owner, "%s_model", cm->prefix);
    const char *count = cg_decl(g, owner, "%s_FIELD_COUNT", cm->upper);
    const char *fields = cg_decl(g, owner, "%s_fields", cm->prefix);
    cg_h(g, "\n/* ==== model %s ==== */\n", m->name);
    if (m->doc) {
        cg_h(g, "/*\n");
        cg_doc(g, m->doc, " * ");
        cg_h(g, " */\n");
    }
    cg_h(g,
         "\n/* \"%s\", for the generic API: cstack_aggregate(db, %s, ...). */\n"
         "extern const char *const %s;\n"
         "/* The number of column fields, the values of a full row. */\n"
         "enum { %s = %zu };\n"
         "/* The column fields' names in schema order (static strings). */\n"
         "extern const char *const %s[%s];\n",
         m->name, model, model, count, cm->ncols, fields, count);
    cg_c(g, "\n/* ==== model %s ==== */\n\nconst char *const %s = \"%s\";\n", m->name, model,
         m->name);
    cg_c(g, "const char *const %s[%s] = {", fields, count);
    size_t col = 100; /* wrap the list like clang-format would */
    for (size_t i = 0; i < m->nfields; i++) {
        if (cm->fields[i].col < 0)
            continue;
        size_t n = strlen(m->fields[i].name) + 4;
        if (col + n > 96) {
            cg_c(g, "\n   ");
            col = 3;
        }
        cg_c(g, " \"%s\",", m->fields[i].name);
        col += n;
    }
    cg_c(g, "\n};\n");
}

void cg_emit_model_types(cg *g, size_t mi)
{
    const cg_model *cm = &g->models[mi];
    int owner = cg_model_owner(g, mi);
    descriptors(g, cm, owner);
    cg_decl(g, owner, "%s", cm->prefix);
    row_struct(g, cm);
    list_struct(g, cm, owner);
    create_struct(g, cm, owner);
    update_struct(g, cm, owner);
    cg_h(g, "\n");
}
