/* helpers.c -- field helpers: for each column field, one function per filter
 * operator that fits its type (`note_price_gt`, `note_title_contains_ci`,
 * `note_views_in`, `note_pinned_is_true`, `note_body_is_null`...), its
 * orderings (`note_createdAt_desc`), and for each relation field its relation
 * filters (`note_owner_is`, `account_notes_some`).
 *
 * Which operators fit which type:
 *
 *   String                   eq ne lt lte gt gte in not_in contains starts_with
 *                            ends_with, and eq_ci ne_ci contains_ci
 *                            starts_with_ci ends_with_ci (ASCII case-insensitive)
 *   Int Float Decimal DateTime  eq ne lt lte gt gte in not_in
 *   Uuid Cuid enum           eq ne in not_in
 *   Boolean                  eq is_true is_false
 *   Bytes                    eq ne
 *   Json                     none (JSON equality is not textual equality)
 *   optional (any)           is_null is_not_null
 *   orderings                asc desc, every type but Json and Bytes
 *   to-one relation          is is_not
 *   to-many relation         some every none
 */
#include <string.h>

#include "codegen/cg.h"

enum { OP_CMP, OP_TEXT, OP_IN };

typedef struct opdef {
    const char *suffix;
    const char *op;   /* CSTACK_OP_* */
    const char *what; /* for the comment */
    int form;         /* OP_CMP: (value); OP_TEXT: (pattern); OP_IN: (values, n) */
    bool ci;
    bool nullable; /* a NULL pointer value compares with null (eq / ne) */
} opdef;

static const opdef OPS[] = {
    {"eq", "CSTACK_OP_EQ", "equal to", OP_CMP, false, true},
    {"ne", "CSTACK_OP_NE", "not equal to", OP_CMP, false, true},
    {"lt", "CSTACK_OP_LT", "less than", OP_CMP, false, false},
    {"lte", "CSTACK_OP_LTE", "at most", OP_CMP, false, false},
    {"gt", "CSTACK_OP_GT", "greater than", OP_CMP, false, false},
    {"gte", "CSTACK_OP_GTE", "at least", OP_CMP, false, false},
    {"in", "0", "one of", OP_IN, false, false},
    {"not_in", "1", "none of", OP_IN, false, false},
    {"contains", "CSTACK_OP_CONTAINS", "contains", OP_TEXT, false, false},
    {"starts_with", "CSTACK_OP_STARTS_WITH", "starts with", OP_TEXT, false, false},
    {"ends_with", "CSTACK_OP_ENDS_WITH", "ends with", OP_TEXT, false, false},
    {"eq_ci", "CSTACK_OP_EQ", "equal (ASCII case-insensitive) to", OP_CMP, true, true},
    {"ne_ci", "CSTACK_OP_NE", "not equal (ASCII case-insensitive) to", OP_CMP, true, true},
    {"contains_ci", "CSTACK_OP_CONTAINS", "contains (ASCII case-insensitive)", OP_TEXT, true,
     false},
    {"starts_with_ci", "CSTACK_OP_STARTS_WITH", "starts (ASCII case-insensitive) with", OP_TEXT,
     true, false},
    {"ends_with_ci", "CSTACK_OP_ENDS_WITH", "ends (ASCII case-insensitive) with", OP_TEXT, true,
     false},
};

/* Bits of OPS[] that apply to a field type. */
static unsigned ops_for(cs_scalar t)
{
    switch (t) {
    case CS_T_STRING:
        return 0xffffu;
    case CS_T_INT:
    case CS_T_FLOAT:
    case CS_T_DECIMAL:
    case CS_T_DATETIME:
        return 0xffu;
    case CS_T_UUID:
    case CS_T_CUID:
    case CS_T_ENUM:
        return 0xc3u;
    case CS_T_BOOLEAN:
        return 0x1u;
    case CS_T_BYTES:
        return 0x3u;
    default:
        return 0;
    }
}

/* Every filter helper's ownership note; the full rule is in the preamble. */
static const char *OWNS = "New filter, owned by the caller (NULL: out of memory).";

static const char *helper(cg *g, const cg_model *cm, const cs_field *f, const char *suffix)
{
    return cg_decl(g, cg_model_owner(g, (size_t)(cm - g->models)), "%s_%s_%s", cm->prefix, f->name,
                   suffix);
}

static void emit_cmp(cg *g, const cg_model *cm, const cg_field *cf, const opdef *op)
{
    const char *v = cg_param(g, "value", NULL, 0);
    const char *len = cf->kind == CG_BYTES ? cg_param(g, "len", &v, 1) : NULL;
    const char *ctype = cg_ctype(g, cf);
    size_t n = strlen(ctype);
    const char *args = cg_str(g, "%s%s%s%s%s", ctype, ctype[n - 1] == '*' ? "" : " ", v,
                              len ? ", size_t " : "", len ? len : "");
    const char *null = cg_is_pointer(cf->kind) && op->nullable ? " (NULL compares with null)" : "";
    cg_fn(g, cg_str(g, "%s %s `%s`%s.  %s", cf->f->name, op->what, v, null, OWNS),
          cg_str(g, "cstack_filter *%s(%s)", helper(g, cm, cf->f, op->suffix), args));
    cg_c(g, "    return cstack_filter_cmp(%s_fields[%d], %s, %s, %s);\n}\n", cm->prefix, cf->col,
         op->op, op->ci ? "CSTACK_CI" : "0", cg_value_expr(g, cf, v, len));
}

static void emit_text(cg *g, const cg_model *cm, const cg_field *cf, const opdef *op)
{
    const char *pat = cg_param(g, "pattern", NULL, 0);
    cg_fn(g, cg_str(g, "%s %s `%s` (copied).  %s", cf->f->name, op->what, pat, OWNS),
          cg_str(g, "cstack_filter *%s(const char *%s)", helper(g, cm, cf->f, op->suffix), pat));
    cg_c(g, "    return cstack_filter_cmp(%s_fields[%d], %s, %s, cstack_v_text(%s));\n}\n",
         cm->prefix, cf->col, op->op, op->ci ? "CSTACK_CI" : "0", pat);
}

static void emit_in(cg *g, const cg_model *cm, const cg_field *cf, const opdef *op)
{
    const char *vals = cg_param(g, "values", NULL, 0);
    const char *n = cg_param(g, "n", &vals, 1);
    const char *ctype = cg_ctype(g, cf);
    const char *elem = cf->kind == CG_TEXT ? "const char *const *" : cg_str(g, "const %s *", ctype);
    cg_fn(g,
          cg_str(g, "%s is %s %s[0..%s) (copied; an empty list matches %s).  %s", cf->f->name,
                 op->what, vals, n, op->op[0] == '0' ? "nothing" : "everything", OWNS),
          cg_str(g, "cstack_filter *%s(%s%s, size_t %s)", helper(g, cm, cf->f, op->suffix), elem,
                 vals, n));
    cg_c(g,
         "    cstack_value *v_;\n    cstack_filter *f_;\n"
         "    if ((%s && !%s) || %s > SIZE_MAX / sizeof *v_)\n        return NULL;\n"
         "    v_ = malloc((%s ? %s : 1) * sizeof *v_);\n"
         "    if (!v_)\n        return NULL;\n"
         "    for (size_t i_ = 0; i_ < %s; i_++)\n        v_[i_] = %s;\n"
         "    f_ = cstack_filter_in(%s_fields[%d], %s, v_, %s);\n"
         "    free(v_);\n    return f_;\n}\n",
         n, vals, n, n, n, n, cg_value_expr(g, cf, cg_str(g, "%s[i_]", vals), NULL), cm->prefix,
         cf->col, op->op, n);
}

static void emit_fixed(cg *g, const cg_model *cm, const cg_field *cf, const char *suffix,
                       const char *what, const char *body)
{
    cg_fn(g, cg_str(g, "%s %s.  %s", cf->f->name, what, OWNS),
          cg_str(g, "cstack_filter *%s(void)", helper(g, cm, cf->f, suffix)));
    cg_c(g, "    return %s;\n}\n", body);
}

static void emit_orders(cg *g, const cg_model *cm, const cg_field *cf)
{
    for (int desc = 0; desc < 2; desc++) {
        cg_fn(g,
              cg_str(g, "Orders by %s, %s (a value; the field name is static).", cf->f->name,
                     desc ? "descending" : "ascending"),
              cg_str(g, "cstack_order %s(void)", helper(g, cm, cf->f, desc ? "desc" : "asc")));
        cg_c(g, "    cstack_order o_ = {%s_fields[%d], %d};\n    return o_;\n}\n", cm->prefix,
             cf->col, desc);
    }
}

static void column_helpers(cg *g, const cg_model *cm, const cg_field *cf)
{
    unsigned bits = ops_for(cf->f->type);
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) {
        if (!(bits & (1u << i)))
            continue;
        if (OPS[i].form == OP_CMP)
            emit_cmp(g, cm, cf, &OPS[i]);
        else if (OPS[i].form == OP_TEXT)
            emit_text(g, cm, cf, &OPS[i]);
        else
            emit_in(g, cm, cf, &OPS[i]);
    }
    const char *field = cg_str(g, "%s_fields[%d]", cm->prefix, cf->col);
    if (cf->kind == CG_BOOL) {
        emit_fixed(g, cm, cf, "is_true", "is true",
                   cg_str(g, "cstack_filter_cmp(%s, CSTACK_OP_EQ, 0, cstack_v_bool(1))", field));
        emit_fixed(g, cm, cf, "is_false", "is false",
                   cg_str(g, "cstack_filter_cmp(%s, CSTACK_OP_EQ, 0, cstack_v_bool(0))", field));
    }
    if (cf->f->optional) {
        emit_fixed(g, cm, cf, "is_null", "is null",
                   cg_str(g, "cstack_filter_is_null(%s, 1)", field));
        emit_fixed(g, cm, cf, "is_not_null", "is not null",
                   cg_str(g, "cstack_filter_is_null(%s, 0)", field));
    }
    if (cf->f->type != CS_T_JSON && cf->f->type != CS_T_BYTES)
        emit_orders(g, cm, cf);
}

static void relation_helpers(cg *g, const cg_model *cm, const cg_field *cf)
{
    static const char *const ONE[][4] = {
        {"is", "CSTACK_REL_IS", "the related ", " exists and matches"},
        {"is_not", "CSTACK_REL_IS_NOT", "no related ", " matches"}};
    static const char *const MANY[][4] = {
        {"some", "CSTACK_REL_SOME", "at least one related ", " matches"},
        {"every", "CSTACK_REL_EVERY", "every related ", " matches"},
        {"none", "CSTACK_REL_NONE", "no related ", " matches"}};
    bool many = cf->f->rel->to_many;
    const char *const(*ops)[4] = many ? MANY : ONE;
    size_t nops = many ? 3 : 2;
    const char *target = cg_safe(g, g->s->models[cf->f->rel->target].name, false);
    const char *sub = cg_param(g, "sub", NULL, 0);
    for (size_t i = 0; i < nops; i++) {
        const char *what = cg_str(g, "%s%s%s", ops[i][2], target, ops[i][3]);
        cg_fn(g,
              cg_str(g,
                     "Relation %s: %s `%s`, a filter on %s built with its helpers (NULL\n"
                     " * matches any).  Takes ownership of `%s`, even on failure.  %s",
                     cf->f->name, what, sub, target, sub, OWNS),
              cg_str(g, "cstack_filter *%s(cstack_filter *%s)", helper(g, cm, cf->f, ops[i][0]),
                     sub));
        cg_c(g, "    return cstack_filter_rel(\"%s\", %s, %s);\n}\n", cf->f->name, ops[i][1], sub);
    }
}

void cg_emit_field_helpers(cg *g, size_t mi)
{
    const cg_model *cm = &g->models[mi];
    cg_h(g, "\n/* ---- %s: field helpers ---- */\n", cg_safe(g, cm->m->name, false));
    for (size_t i = 0; i < cm->m->nfields && !g->rc; i++) {
        const cg_field *cf = &cm->fields[i];
        if (cf->col >= 0)
            column_helpers(g, cm, cf);
        else
            relation_helpers(g, cm, cf);
    }
}
