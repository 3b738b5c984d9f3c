/* codecs.c -- the generated static functions that turn a cstack_row into a
 * model struct and input structs into cstack_data, plus the free functions.
 *
 * Decoding reads a row's values by position when the row holds every column
 * in schema order (checked once per result by comparing names) and through a
 * column-to-field map otherwise (a `select` projection), so a value costs no
 * string comparison.  The struct's pointers borrow the row's bytes, which
 * the runtime NUL-terminates (cstack.h, "Rows"). */
#include "codegen/cg.h"

/* One `case` of <model>_set_: stores value v_ of column cf into out_. */
static void set_case(cg *g, const cg_field *cf)
{
    const char *m = cf->member;
    bool opt = cf->f->optional;
    cg_c(g, "    case %d:\n", cf->col);
    if (opt && !cg_is_pointer(cf->kind))
        cg_c(g, "        out_->%s = v_.type != CSTACK_NULL;\n", cf->has);
    switch (cf->kind) {
    case CG_TEXT:
        cg_c(g, "        out_->%s = v_.type == CSTACK_TEXT ? v_.u.s.p : NULL;\n", m);
        break;
    case CG_INT:
        cg_c(g, "        out_->%s = v_.type == CSTACK_INT ? v_.u.i : 0;\n", m);
        break;
    case CG_FLOAT:
        cg_c(g, "        out_->%s = v_.type == CSTACK_FLOAT ? v_.u.f : 0.0;\n", m);
        break;
    case CG_BOOL:
        cg_c(g, "        out_->%s = v_.type == CSTACK_BOOL && v_.u.b != 0;\n", m);
        break;
    case CG_BYTES:
        cg_c(g,
             "        out_->%s = v_.type == CSTACK_BLOB ? (const void *)v_.u.s.p : NULL;\n"
             "        out_->%s = v_.type == CSTACK_BLOB ? v_.u.s.n : 0;\n",
             m, cf->len);
        break;
    case CG_ENUM:
        if (opt)
            cg_c(g, "        if (v_.type == CSTACK_NULL)\n            break;\n");
        cg_c(g, "        return %s_decode_(v_, &out_->%s);\n", g->enums[cf->f->type_index].prefix,
             m);
        return;
    }
    cg_c(g, "        break;\n");
}

static void emit_set(cg *g, const cg_model *cm, int owner)
{
    cg_c(g,
         "\n/* Stores value v_ of column k_ (a field number) into out_. */\n"
         "static int %s(%s *out_, size_t k_, cstack_value v_)\n{\n    switch (k_) {\n",
         cg_decl(g, owner, "%s_set_", cm->prefix), cm->prefix);
    for (size_t i = 0; i < cm->m->nfields; i++)
        if (cm->fields[i].col >= 0)
            set_case(g, &cm->fields[i]);
    cg_c(g, "    default:\n        break;\n    }\n    return 0;\n}\n");
}

/* map_, decode_, take_ and found_: from rows to structs. */
static void emit_decode(cg *g, const cg_model *cm, int owner)
{
    const char *p = cm->prefix, *u = cm->upper;
    const char *map = cg_decl(g, owner, "%s_map_", p);
    const char *dec = cg_decl(g, owner, "%s_decode_", p);
    const char *take = cg_decl(g, owner, "%s_take_", p);
    const char *found = cg_decl(g, owner, "%s_found_", p);
    cg_c(g,
         "\n/* Maps each column of row_ to its field number (rows list the selected\n"
         " * fields; a full row lists them all in schema order). */\n"
         "static int %s(const cstack_row *row_, size_t *map_)\n{\n"
         "    size_t n_ = cstack_row_size(row_);\n"
         "    if (n_ > %s_FIELD_COUNT)\n        return CSTACK_EINVAL;\n"
         "    for (size_t i_ = 0; i_ < n_; i_++) {\n"
         "        const char *name_ = cstack_row_name(row_, i_);\n"
         "        size_t k_ = i_;\n"
         "        if (strcmp(name_, %s_fields[k_]) != 0)\n"
         "            for (k_ = 0; k_ < %s_FIELD_COUNT && strcmp(name_, %s_fields[k_]) != 0; "
         "k_++) {\n            }\n"
         "        if (k_ == %s_FIELD_COUNT)\n            return CSTACK_EINVAL;\n"
         "        map_[i_] = k_;\n    }\n    return 0;\n}\n",
         map, u, p, u, p, u);
    cg_c(g,
         "\nstatic int %s(const cstack_row *row_, const size_t *map_, %s *out_)\n{\n"
         "    size_t n_ = cstack_row_size(row_);\n    int rc_ = 0;\n"
         "    memset(out_, 0, sizeof *out_);\n"
         "    for (size_t i_ = 0; i_ < n_ && rc_ == 0; i_++)\n"
         "        rc_ = %s_set_(out_, map_[i_], cstack_row_value(row_, i_));\n"
         "    return rc_;\n}\n",
         dec, p, p);
    cg_c(g,
         "\n/* Decodes row_ (owned by the caller) into out_, which then owns it; frees\n"
         " * it on failure. */\n"
         "static int %s(cstack_row *row_, %s *out_)\n{\n"
         "    size_t map_[%s_FIELD_COUNT];\n    int rc_ = %s(row_, map_);\n"
         "    if (rc_ == 0)\n        rc_ = %s(row_, map_, out_);\n"
         "    if (rc_ != 0) {\n        cstack_row_free(row_);\n"
         "        memset(out_, 0, sizeof *out_);\n        return rc_;\n    }\n"
         "    out_->%s = row_;\n    return 0;\n}\n",
         take, p, u, map, dec, cm->row);
    cg_c(g,
         "\n/* Finishes a single-row read: rc_ and row_ as the runtime returned them. */\n"
         "static int %s(int rc_, cstack_row *row_, %s *out_, bool *found_)\n{\n"
         "    if (found_)\n        *found_ = false;\n"
         "    if (out_)\n        memset(out_, 0, sizeof *out_);\n"
         "    if (rc_ != 0 || (!row_ && !found_))\n"
         "        return rc_ != 0 ? rc_ : CSTACK_ENOTFOUND;\n"
         "    if (!row_)\n        return 0;\n"
         "    rc_ = out_ ? %s(row_, out_) : 0;\n"
         "    if (!out_)\n        cstack_row_free(row_);\n"
         "    if (found_)\n        *found_ = rc_ == 0;\n"
         "    return rc_;\n}\n",
         found, p, take);
}

static void emit_create_data(cg *g, const cg_model *cm, int owner)
{
    cg_c(g,
         "\n/* Fills fv_ with the fields in_ gives; returns how many. */\n"
         "static size_t %s(const %s_create_input *in_, cstack_field_value *fv_)\n{\n"
         "    size_t n_ = 0;\n",
         cg_decl(g, owner, "%s_create_data_", cm->prefix), cm->prefix);
    for (size_t i = 0; i < cm->m->nfields; i++) {
        const cg_field *cf = &cm->fields[i];
        if (cf->col < 0)
            continue;
        const char *x = cg_str(g, "in_->%s", cf->member);
        const char *len = cf->len ? cg_str(g, "in_->%s", cf->len) : NULL;
        const char *line = cg_str(g, "fv_[n_++] = (cstack_field_value){%s_fields[%d], %s};",
                                  cm->prefix, cf->col, cg_value_expr(g, cf, x, len));
        if (cg_is_pointer(cf->kind))
            cg_c(g, "    if (%s)\n        %s\n", x, line);
        else if (cg_omittable(cf->f))
            cg_c(g, "    if (in_->%s)\n        %s\n", cf->has, line);
        else
            cg_c(g, "    %s\n", line);
    }
    cg_c(g, "    return n_;\n}\n");
}

static void emit_update_data(cg *g, const cg_model *cm, int owner)
{
    cg_c(g,
         "\n/* Fills fv_ with the fields in_ sets; returns how many. */\n"
         "static size_t %s(const %s_update_input *in_, cstack_field_value *fv_)\n{\n"
         "    size_t n_ = 0;\n",
         cg_decl(g, owner, "%s_update_data_", cm->prefix), cm->prefix);
    for (size_t i = 0; i < cm->m->nfields; i++) {
        const cg_field *cf = &cm->fields[i];
        if (cf->col < 0)
            continue;
        const char *x = cg_str(g, "in_->%s", cf->member);
        const char *len = cf->len ? cg_str(g, "in_->%s", cf->len) : NULL;
        const char *v = cg_value_expr(g, cf, x, len);
        if (cf->f->optional && !cg_is_pointer(cf->kind))
            v = cg_str(g, "in_->%s ? %s : cstack_v_null()", cf->has, v);
        cg_c(g, "    if (in_->%s)\n        fv_[n_++] = (cstack_field_value){%s_fields[%d], %s};\n",
             cf->set, cm->prefix, cf->col, v);
    }
    cg_c(g, "    return n_;\n}\n");
}

static void emit_free(cg *g, const cg_model *cm, int owner)
{
    const char *p = cm->prefix;
    const char *obj = cg_param(g, "obj", NULL, 0);
    cg_fn(g,
          cg_str(g,
                 "Frees the row of a %s and zeroes it.  NULL, a zeroed struct and\n"
                 " * %s_list items (which own nothing) are fine.",
                 p, p),
          cg_str(g, "void %s(%s *%s)", cg_decl(g, owner, "%s_free", p), p, obj));
    cg_c(g,
         "    if (!%s)\n        return;\n    cstack_row_free(%s->%s);\n"
         "    memset(%s, 0, sizeof *%s);\n}\n\n",
         obj, obj, cm->row, obj, obj);
    cg_fn(g, "Frees a list and every item's memory, and zeroes it.  NULL is fine.",
          cg_str(g, "void %s(%s_list *%s)", cg_decl(g, owner, "%s_list_free", p), p, obj));
    cg_c(g,
         "    if (!%s)\n        return;\n    free(%s->items);\n    cstack_rows_free(%s->rows);\n"
         "    memset(%s, 0, sizeof *%s);\n}\n",
         obj, obj, obj, obj, obj);
}

void cg_emit_model_codecs(cg *g, size_t mi)
{
    const cg_model *cm = &g->models[mi];
    int owner = cg_model_owner(g, mi);
    emit_set(g, cm, owner);
    emit_decode(g, cm, owner);
    emit_create_data(g, cm, owner);
    emit_update_data(g, cm, owner);
    emit_free(g, cm, owner);
}
