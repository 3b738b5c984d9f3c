/* delegates.c -- the typed delegates of each model: create, create_many,
 * find_unique_by_<key> (one per primary key and unique field set),
 * find_first, find_many, count, aggregate, update_by_<key>, update_many,
 * upsert_by_<key>, delete_by_<key>, delete_many.
 *
 * Each is a thin wrapper: it encodes its typed inputs as cstack_data on the
 * stack (no allocation, except create_many's arrays), calls the generic
 * delegate of cstack.h with the model's name, and decodes the returned row.
 * Parameter names are checked against every generated file-scope name and
 * against the locals the bodies use (all ending in `_`), so no parameter
 * shadows a declaration whatever the schema calls its models and fields. */
#include <stdlib.h>
#include <string.h>

#include "codegen/cg.h"

/* The locals of generated bodies; key parameters must not take these. */
static const char *const LOCALS[] = {"key_",   "where_", "fv_",   "cfv_", "ufv_", "data_", "cdata_",
                                     "udata_", "row_",   "rows_", "rc_",  "map_", "i_"};
#define NLOCALS (sizeof LOCALS / sizeof LOCALS[0])

/* The parameter names of one model's delegates. */
typedef struct params {
    const char *db, *in, *out, *found, *query, *where, *count, *spec, *create, *update, *rows,
        *nrows;
} params;

/* A unique key's part of a signature and of a body. */
typedef struct keysig {
    const char *suffix; /* "ownerId_title" */
    const char *args;   /* "const char *ownerId, const char *title" */
    const char *fill;   /* statements filling key_[] and where_ */
    const char *what;   /* "whose ownerId and title equal the given values" */
} keysig;

typedef struct taken {
    const char **v;
    size_t n;
} taken;

static const char *take_param(cg *g, taken *t, const char *base)
{
    const char *name = cg_param(g, base, t->v, t->n);
    t->v[t->n++] = name;
    return name;
}

static void std_params(cg *g, params *p, taken *t)
{
    for (size_t i = 0; i < NLOCALS; i++)
        t->v[t->n++] = LOCALS[i];
    p->db = take_param(g, t, "db");
    p->in = take_param(g, t, "in");
    p->out = take_param(g, t, "out");
    p->found = take_param(g, t, "found");
    p->query = take_param(g, t, "query");
    p->where = take_param(g, t, "where");
    p->count = take_param(g, t, "count");
    p->spec = take_param(g, t, "spec");
    p->create = take_param(g, t, "create");
    p->update = take_param(g, t, "update");
    p->rows = take_param(g, t, "rows");
    p->nrows = take_param(g, t, "nrows");
}

/* Builds the signature part and the body part of one key. */
static void key_sig(cg *g, const cg_model *cm, const int *fields, size_t n, taken *t, keysig *k)
{
    size_t mark = t->n;
    k->suffix = k->args = k->fill = k->what = "";
    for (size_t i = 0; i < n; i++) {
        const cg_field *cf = &cm->fields[fields[i]];
        const char *name = take_param(g, t, cf->member);
        const char *len = NULL;
        k->args = cg_str(g, "%s%s%s%s%s", k->args, i ? ", " : "", cg_ctype(g, cf),
                         cg_ctype(g, cf)[strlen(cg_ctype(g, cf)) - 1] == '*' ? "" : " ", name);
        if (cf->kind == CG_BYTES) {
            len = take_param(g, t, cg_str(g, "%s_len", cf->member));
            k->args = cg_str(g, "%s, size_t %s", k->args, len);
        }
        k->suffix = cg_str(g, "%s%s%s", k->suffix, i ? "_" : "", cf->f->name);
        k->what = cg_str(g, "%s%s`%s`", k->what, i == 0 ? "" : i + 1 < n ? ", " : " and ", name);
        k->fill = cg_str(g, "%s    key_[%zu] = (cstack_field_value){%s_fields[%d], %s};\n", k->fill,
                         i, cm->prefix, cf->col, cg_value_expr(g, cf, name, len));
    }
    k->fill = cg_str(g,
                     "    cstack_field_value key_[%zu];\n    cstack_data where_;\n%s"
                     "    where_.fields = key_;\n    where_.count = %zu;\n",
                     n, k->fill, n);
    k->what = cg_str(g, "whose %s %s the given value%s", k->what, n > 1 ? "equal" : "equals",
                     n > 1 ? "s" : "");
    t->n = mark;
}

/* The primary key and each distinct unique field set, in declaration
 * order.  Returns how many were stored in sets/sizes (capacity nuniques+1). */
static size_t model_keys(const cs_model *m, const int **sets, size_t *sizes)
{
    size_t n = 0;
    for (size_t u = 0; u <= m->nuniques; u++) {
        const int *set = u == 0 ? m->pk : m->uniques[u - 1].fields;
        size_t len = u == 0 ? m->npk : m->uniques[u - 1].n;
        bool dup = false;
        for (size_t j = 0; j < n && !dup; j++)
            dup = sizes[j] == len && memcmp(sets[j], set, len * sizeof *set) == 0;
        if (!dup && len > 0) {
            sets[n] = set;
            sizes[n++] = len;
        }
    }
    return n;
}

static const char *fn_name(cg *g, const cg_model *cm, const char *what)
{
    return cg_decl(g, cg_model_owner(g, (size_t)(cm - g->models)), "%s_%s", cm->prefix, what);
}

static void emit_create(cg *g, const cg_model *cm, const params *p)
{
    const char *pre = cm->prefix, *name = cg_safe(g, cm->m->name, false);
    cg_fn(g,
          cg_str(g,
                 "Inserts one %s; the runtime fills @default and @updatedAt fields.  When\n"
                 " * `%s` is not NULL it receives the row as stored (free with %s_free()).\n"
                 " * Borrows `%s`.  Errors as cstack_create().",
                 name, p->out, pre, p->in),
          cg_str(g, "int %s(cstack *%s, const %s_create_input *%s, %s *%s)",
                 fn_name(g, cm, "create"), p->db, pre, p->in, pre, p->out));
    cg_c(g,
         "    cstack_field_value fv_[%s_FIELD_COUNT];\n    cstack_data data_;\n"
         "    cstack_row *row_ = NULL;\n    int rc_;\n"
         "    if (%s)\n        memset(%s, 0, sizeof *%s);\n"
         "    if (!%s)\n        return CSTACK_EMISUSE;\n"
         "    data_.fields = fv_;\n    data_.count = %s_create_data_(%s, fv_);\n"
         "    rc_ = cstack_create(%s, %s_model, &data_, %s ? &row_ : NULL);\n"
         "    return rc_ == 0 && %s ? %s_take_(row_, %s) : rc_;\n}\n",
         cm->upper, p->out, p->out, p->out, p->in, pre, p->in, p->db, pre, p->out, p->out, pre,
         p->out);
    cg_fn(g,
          cg_str(g,
                 "Inserts %s[0..%s) in one transaction: all of them or none.  `%s` (may be\n"
                 " * NULL) receives the number inserted.  Borrows `%s`; allocates two\n"
                 " * temporary arrays.  Errors as cstack_create_many().",
                 p->rows, p->nrows, p->count, p->rows),
          cg_str(g, "int %s(cstack *%s, const %s_create_input *%s, size_t %s, int64_t *%s)",
                 fn_name(g, cm, "create_many"), p->db, pre, p->rows, p->nrows, p->count));
    cg_c(g,
         "    cstack_field_value *fv_;\n    cstack_data *data_;\n    int rc_;\n"
         "    if (%s)\n        *%s = 0;\n"
         "    if (%s && !%s)\n        return CSTACK_EMISUSE;\n"
         "    if (%s > SIZE_MAX / (sizeof *fv_ * %s_FIELD_COUNT))\n        return CSTACK_ETOOBIG;\n"
         "    fv_ = malloc((%s ? %s : 1) * %s_FIELD_COUNT * sizeof *fv_);\n"
         "    data_ = malloc((%s ? %s : 1) * sizeof *data_);\n"
         "    if (!fv_ || !data_) {\n        free(fv_);\n        free(data_);\n"
         "        return CSTACK_ENOMEM;\n    }\n"
         "    for (size_t i_ = 0; i_ < %s; i_++) {\n"
         "        data_[i_].fields = fv_ + i_ * %s_FIELD_COUNT;\n"
         "        data_[i_].count = %s_create_data_(&%s[i_], fv_ + i_ * %s_FIELD_COUNT);\n    }\n"
         "    rc_ = cstack_create_many(%s, %s_model, data_, %s, %s);\n"
         "    free(fv_);\n    free(data_);\n    return rc_;\n}\n",
         p->count, p->count, p->nrows, p->rows, p->nrows, cm->upper, p->nrows, p->nrows, cm->upper,
         p->nrows, p->nrows, p->nrows, cm->upper, pre, p->rows, cm->upper, p->db, pre, p->nrows,
         p->count);
}

static void emit_find_unique(cg *g, const cg_model *cm, const params *p, const keysig *k)
{
    const char *pre = cm->prefix;
    cg_fn(g,
          cg_str(g,
                 "Reads the %s %s.  Found: *%s = true and\n"
                 " * *%s (may be NULL) owns the row (free with %s_free()).  Absent: *%s =\n"
                 " * false and 0 is returned; with `%s` NULL, absence is CSTACK_ENOTFOUND.",
                 cg_safe(g, cm->m->name, false), k->what, p->found, p->out, pre, p->found,
                 p->found),
          cg_str(g, "int %s(cstack *%s, %s, %s *%s, bool *%s)",
                 fn_name(g, cm, cg_str(g, "find_unique_by_%s", k->suffix)), p->db, k->args, pre,
                 p->out, p->found));
    cg_c(g,
         "%s    cstack_row *row_ = NULL;\n"
         "    int rc_ = cstack_find_unique(%s, %s_model, &where_, NULL, 0, &row_);\n"
         "    return %s_found_(rc_, row_, %s, %s);\n}\n",
         k->fill, p->db, pre, pre, p->out, p->found);
}

static void emit_reads(cg *g, const cg_model *cm, const params *p)
{
    const char *pre = cm->prefix, *name = cg_safe(g, cm->m->name, false);
    cg_fn(g,
          cg_str(g,
                 "The first %s matching `%s` (NULL: every row in primary-key order); `%s`\n"
                 " * and `%s` as in the find_unique functions.  Borrows `%s`.",
                 name, p->query, p->out, p->found, p->query),
          cg_str(g, "int %s(cstack *%s, const cstack_query *%s, %s *%s, bool *%s)",
                 fn_name(g, cm, "find_first"), p->db, p->query, pre, p->out, p->found));
    cg_c(g,
         "    cstack_row *row_ = NULL;\n"
         "    int rc_ = cstack_find_first(%s, %s_model, %s, &row_);\n"
         "    return %s_found_(rc_, row_, %s, %s);\n}\n",
         p->db, pre, p->query, pre, p->out, p->found);
    cg_fn(g,
          cg_str(g,
                 "Every %s matching `%s` (NULL: all, in primary-key order) into *%s;\n"
                 " * free it with %s_list_free().  On failure *%s is zeroed.  Borrows `%s`.",
                 name, p->query, p->out, pre, p->out, p->query),
          cg_str(g, "int %s(cstack *%s, const cstack_query *%s, %s_list *%s)",
                 fn_name(g, cm, "find_many"), p->db, p->query, pre, p->out));
    cg_c(g,
         "    cstack_rows *rows_ = NULL;\n    size_t map_[%s_FIELD_COUNT];\n    int rc_;\n"
         "    if (!%s)\n        return CSTACK_EMISUSE;\n    memset(%s, 0, sizeof *%s);\n"
         "    rc_ = cstack_find_many(%s, %s_model, %s, &rows_);\n"
         "    if (rc_ != 0)\n        return rc_;\n"
         "    %s->rows = rows_;\n    %s->count = cstack_rows_count(rows_);\n"
         "    %s->items = calloc(%s->count ? %s->count : 1, sizeof *%s->items);\n"
         "    if (!%s->items)\n        rc_ = CSTACK_ENOMEM;\n"
         "    else if (%s->count)\n        rc_ = %s_map_(cstack_rows_get(rows_, 0), map_);\n"
         "    for (size_t i_ = 0; rc_ == 0 && i_ < %s->count; i_++)\n"
         "        rc_ = %s_decode_(cstack_rows_get(rows_, i_), map_, &%s->items[i_]);\n"
         "    if (rc_ != 0)\n        %s_list_free(%s);\n    return rc_;\n}\n",
         cm->upper, p->out, p->out, p->out, p->db, pre, p->query, p->out, p->out, p->out, p->out,
         p->out, p->out, p->out, p->out, pre, p->out, pre, p->out, pre, p->out);
    cg_fn(g,
          cg_str(g, "*%s receives the number of %s rows matching `%s` (NULL: all).", p->count, name,
                 p->where),
          cg_str(g, "int %s(cstack *%s, const cstack_filter *%s, int64_t *%s)",
                 fn_name(g, cm, "count"), p->db, p->where, p->count));
    cg_c(g, "    return cstack_count(%s, %s_model, %s, %s);\n}\n", p->db, pre, p->where, p->count);
    cg_fn(g,
          cg_str(g,
                 "cstack_aggregate() on %s: *%s is one row with columns _count, _sum.F,\n"
                 " * _avg.F, _min.F, _max.F (Decimal sums exact), to free with\n"
                 " * cstack_row_free().",
                 name, p->out),
          cg_str(g, "int %s(cstack *%s, const cstack_aggregate_spec *%s, cstack_row **%s)",
                 fn_name(g, cm, "aggregate"), p->db, p->spec, p->out));
    cg_c(g, "    return cstack_aggregate(%s, %s_model, %s, %s);\n}\n", p->db, pre, p->spec, p->out);
}

static void emit_update(cg *g, const cg_model *cm, const params *p, const keysig *k)
{
    const char *pre = cm->prefix;
    cg_fn(g,
          cg_str(g,
                 "Writes the fields `%s` sets (plus @updatedAt) on the %s %s.\n"
                 " * `%s` (may be NULL) receives the updated row (free with %s_free()).\n"
                 " * CSTACK_ENOTFOUND when there is none.  Borrows `%s`.",
                 p->in, cg_safe(g, cm->m->name, false), k->what, p->out, pre, p->in),
          cg_str(g, "int %s(cstack *%s, %s, const %s_update_input *%s, %s *%s)",
                 fn_name(g, cm, cg_str(g, "update_by_%s", k->suffix)), p->db, k->args, pre, p->in,
                 pre, p->out));
    cg_c(g,
         "%s    cstack_field_value fv_[%s_FIELD_COUNT];\n    cstack_data data_;\n"
         "    cstack_row *row_ = NULL;\n    int rc_;\n"
         "    if (%s)\n        memset(%s, 0, sizeof *%s);\n"
         "    if (!%s)\n        return CSTACK_EMISUSE;\n"
         "    data_.fields = fv_;\n    data_.count = %s_update_data_(%s, fv_);\n"
         "    rc_ = cstack_update(%s, %s_model, &where_, &data_, %s ? &row_ : NULL);\n"
         "    return rc_ == 0 && %s ? %s_take_(row_, %s) : rc_;\n}\n",
         k->fill, cm->upper, p->out, p->out, p->out, p->in, pre, p->in, p->db, pre, p->out, p->out,
         pre, p->out);
}

static void emit_upsert(cg *g, const cg_model *cm, const params *p, const keysig *k)
{
    const char *pre = cm->prefix;
    cg_fn(g,
          cg_str(g,
                 "Updates the %s %s with `%s`, or creates it\n"
                 " * from `%s` (plus the key values when `%s` leaves them out).  `%s` as in\n"
                 " * the update functions.  Borrows `%s` and `%s`.",
                 cg_safe(g, cm->m->name, false), k->what, p->update, p->create, p->create, p->out,
                 p->create, p->update),
          cg_str(g,
                 "int %s(cstack *%s, %s, const %s_create_input *%s,\n"
                 "        const %s_update_input *%s, %s *%s)",
                 fn_name(g, cm, cg_str(g, "upsert_by_%s", k->suffix)), p->db, k->args, pre,
                 p->create, pre, p->update, pre, p->out));
    cg_c(g,
         "%s    cstack_field_value cfv_[%s_FIELD_COUNT], ufv_[%s_FIELD_COUNT];\n"
         "    cstack_data cdata_, udata_;\n    cstack_row *row_ = NULL;\n    int rc_;\n"
         "    if (%s)\n        memset(%s, 0, sizeof *%s);\n"
         "    if (!%s || !%s)\n        return CSTACK_EMISUSE;\n"
         "    cdata_.fields = cfv_;\n    cdata_.count = %s_create_data_(%s, cfv_);\n"
         "    udata_.fields = ufv_;\n    udata_.count = %s_update_data_(%s, ufv_);\n"
         "    rc_ = cstack_upsert(%s, %s_model, &where_, &cdata_, &udata_, %s ? &row_ : NULL);\n"
         "    return rc_ == 0 && %s ? %s_take_(row_, %s) : rc_;\n}\n",
         k->fill, cm->upper, cm->upper, p->out, p->out, p->out, p->create, p->update, pre,
         p->create, pre, p->update, p->db, pre, p->out, p->out, pre, p->out);
}

static void emit_delete(cg *g, const cg_model *cm, const params *p, const keysig *k)
{
    const char *pre = cm->prefix;
    const cs_model *m = cm->m;
    const char *soft =
        m->soft_delete >= 0
            ? cg_str(g, "\n * Soft delete: sets %s to now; reads skip the row from then on.",
                     m->fields[m->soft_delete].name)
            : "";
    cg_fn(g,
          cg_str(g,
                 "Deletes the %s %s; `%s` (may be NULL)\n"
                 " * receives the row as it was (free with %s_free()).  CSTACK_ENOTFOUND when\n"
                 " * there is none.%s",
                 cg_safe(g, m->name, false), k->what, p->out, pre, soft),
          cg_str(g, "int %s(cstack *%s, %s, %s *%s)",
                 fn_name(g, cm, cg_str(g, "delete_by_%s", k->suffix)), p->db, k->args, pre,
                 p->out));
    cg_c(g,
         "%s    cstack_row *row_ = NULL;\n    int rc_;\n"
         "    if (%s)\n        memset(%s, 0, sizeof *%s);\n"
         "    rc_ = cstack_delete(%s, %s_model, &where_, %s ? &row_ : NULL);\n"
         "    return rc_ == 0 && %s ? %s_take_(row_, %s) : rc_;\n}\n",
         k->fill, p->out, p->out, p->out, p->db, pre, p->out, p->out, pre, p->out);
}

static void emit_update_many(cg *g, const cg_model *cm, const params *p)
{
    const char *pre = cm->prefix, *name = cg_safe(g, cm->m->name, false);
    cg_fn(g,
          cg_str(g,
                 "Writes the fields `%s` sets (plus @updatedAt) on every %s matching `%s`\n"
                 " * (NULL: all); `%s` (may be NULL) receives how many.  Borrows both.",
                 p->in, name, p->where, p->count),
          cg_str(g,
                 "int %s(cstack *%s, const cstack_filter *%s, const %s_update_input *%s,\n"
                 "        int64_t *%s)",
                 fn_name(g, cm, "update_many"), p->db, p->where, pre, p->in, p->count));
    cg_c(g,
         "    cstack_field_value fv_[%s_FIELD_COUNT];\n    cstack_data data_;\n"
         "    if (%s)\n        *%s = 0;\n    if (!%s)\n        return CSTACK_EMISUSE;\n"
         "    data_.fields = fv_;\n    data_.count = %s_update_data_(%s, fv_);\n"
         "    return cstack_update_many(%s, %s_model, %s, &data_, %s);\n}\n",
         cm->upper, p->count, p->count, p->in, pre, p->in, p->db, pre, p->where, p->count);
}

static void emit_delete_many(cg *g, const cg_model *cm, const params *p)
{
    const char *pre = cm->prefix, *name = cg_safe(g, cm->m->name, false);
    cg_fn(g,
          cg_str(g,
                 "Deletes every %s matching `%s` (NULL: all of them); `%s` (may be NULL)\n"
                 " * receives how many.  Borrows `%s`.",
                 name, p->where, p->count, p->where),
          cg_str(g, "int %s(cstack *%s, const cstack_filter *%s, int64_t *%s)",
                 fn_name(g, cm, "delete_many"), p->db, p->where, p->count));
    cg_c(g, "    return cstack_delete_many(%s, %s_model, %s, %s);\n}\n", p->db, pre, p->where,
         p->count);
}

void cg_emit_delegates(cg *g, size_t mi)
{
    const cg_model *cm = &g->models[mi];
    const cs_model *m = cm->m;
    size_t cap = NLOCALS + 16 + 2 * m->nfields;
    taken t = {calloc(cap, sizeof(char *)), 0};
    const int **sets = calloc(m->nuniques + 1, sizeof *sets);
    size_t *sizes = calloc(m->nuniques + 1, sizeof *sizes);
    keysig *keys = calloc(m->nuniques + 1, sizeof *keys);
    if (!t.v || !sets || !sizes || !keys) {
        cg_fail(g, CSTACK_ENOMEM, "out of memory");
    } else {
        params p;
        std_params(g, &p, &t);
        size_t nkeys = model_keys(m, sets, sizes);
        for (size_t i = 0; i < nkeys; i++)
            key_sig(g, cm, sets[i], sizes[i], &t, &keys[i]);
        cg_h(g, "\n/* ---- %s: delegates ---- */\n", cg_safe(g, m->name, false));
        emit_create(g, cm, &p);
        for (size_t i = 0; i < nkeys; i++)
            emit_find_unique(g, cm, &p, &keys[i]);
        emit_reads(g, cm, &p);
        for (size_t i = 0; i < nkeys; i++)
            emit_update(g, cm, &p, &keys[i]);
        emit_update_many(g, cm, &p);
        for (size_t i = 0; i < nkeys; i++)
            emit_upsert(g, cm, &p, &keys[i]);
        for (size_t i = 0; i < nkeys; i++)
            emit_delete(g, cm, &p, &keys[i]);
        emit_delete_many(g, cm, &p);
    }
    free(t.v);
    free(sets);
    free(sizes);
    free(keys);
}
