/*
 * kinds.c -- one handler per request kind, each reading its payload (whose
 * keys are checked against the kind's list, so a typo is an error rather than
 * an ignored argument), calling the runtime delegate and writing the data of
 * the ok response.  Handlers are generic: the model and its fields come from
 * the schema, never from code written per model.
 *
 * The path is at "payload" when a handler starts.  Errors of the runtime are
 * reported under the part of the payload they concern (payload.data for a
 * unique violation on create, payload.where for not_found, ...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope/envelope.h"
#include "value/value.h"

int env_check_keys(env *e, const jr_val *obj, const char *const *allowed,
                   const char *const *required)
{
    jr_iter it = jr_iter_of(obj);
    for (const jr_val *key, *v; jr_iter_member(&it, &key, &v);) {
        size_t n = 0;
        while (allowed[n] && !env_name_is(allowed[n], jr_str(key), jr_len(key)))
            n++;
        if (allowed[n])
            continue;
        char list[256] = "", hint[128];
        for (size_t i = 0, o = 0; allowed[i] && o < sizeof list; i++)
            o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", allowed[i]);
        size_t mark = env_path_keyn(e, jr_str(key), jr_len(key));
        env_fail(e, CSTACK_EINVAL, "unknown key (expected %s%s)%s", allowed[1] ? "one of " : "",
                 list,
                 env_hint(hint, sizeof hint, env_suggest(jr_str(key), jr_len(key), allowed, n)));
        env_path_set(e, mark);
        return e->code;
    }
    for (size_t i = 0; required && required[i]; i++)
        if (!jr_get(obj, required[i]))
            return env_fail(e, CSTACK_EINVAL, "missing '%s'", required[i]);
    return 0;
}

/* Reads payload.KEY as a data object. */
static int data_at(env *e, const cs_model *m, const jr_val *payload, const char *key,
                   env_data_mode mode, cstack_data *out)
{
    size_t mark = env_path_key(e, key);
    int rc = env_data(e, m, jr_get(payload, key), mode, out);
    env_path_set(e, mark);
    return rc;
}

/* Reports a runtime failure under payload.KEY (or payload when NULL). */
static int store_fail_at(env *e, int rc, const char *key)
{
    size_t mark = key ? env_path_key(e, key) : e->npath;
    env_store_fail(e, rc);
    env_path_set(e, mark);
    return rc;
}

/* Appends a row, or null; frees it. */
static int put_row(env *e, cs_buf *out, cstack_row *row)
{
    int rc = row ? env_put_row(e, out, row) : cs_buf_puts(out, "null");
    cstack_row_free(row);
    return rc;
}

static int put_count(env *e, cs_buf *out, int64_t n)
{
    int rc = cs_buf_puts(out, "{\"count\":");
    if (!rc)
        rc = env_put_int(e, out, n);
    return rc ? rc : cs_buf_putc(out, '}');
}

/* ---- writes ---------------------------------------------------------------- */

static int k_create(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_data d;
    cstack_row *row = NULL;
    if (data_at(e, m, p, "data", ENV_DATA_CREATE, &d))
        return e->code;
    int rc = cstack_create(e->db, m->name, &d, &row);
    if (rc)
        return store_fail_at(e, rc, "data");
    return put_row(e, out, row);
}

static int k_create_many(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    const jr_val *list = jr_get(p, "data");
    size_t mark = env_path_key(e, "data");
    size_t n = jr_size(list);
    if (!jr_is(list, JR_ARRAY))
        env_fail(e, CSTACK_EINVAL, "expected a list of objects, got %s", env_kind_name(list));
    else if (n > ENV_MAX_ROWS)
        env_fail(e, CSTACK_ETOOBIG, "%zu rows; create_many takes at most %d", n, ENV_MAX_ROWS);
    cstack_data *rows = e->code ? NULL : env_alloc(e, n, sizeof *rows);
    jr_iter it = e->code ? (jr_iter){0} : jr_iter_of(list);
    for (size_t i = 0; !e->code && i < n; i++) {
        size_t at = env_path_index(e, i);
        env_data(e, m, jr_iter_elem(&it), ENV_DATA_CREATE, &rows[i]);
        env_path_set(e, at);
    }
    env_path_set(e, mark);
    if (e->code)
        return e->code;
    int64_t count = 0;
    int rc = cstack_create_many(e->db, m->name, rows, n, &count);
    if (rc)
        return store_fail_at(e, rc, "data");
    return put_count(e, out, count);
}

static int k_update(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_data where, d;
    cstack_row *row = NULL;
    if (data_at(e, m, p, "where", ENV_DATA_UNIQUE, &where) ||
        data_at(e, m, p, "data", ENV_DATA_UPDATE, &d))
        return e->code;
    int rc = cstack_update(e->db, m->name, &where, &d, &row);
    if (rc)
        return store_fail_at(e, rc,
                             rc == CSTACK_ENOTFOUND || rc == CSTACK_EINVAL ? "where" : "data");
    return put_row(e, out, row);
}

static int k_update_many(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_filter *where = NULL;
    cstack_data d;
    int64_t count = 0;
    if (data_at(e, m, p, "data", ENV_DATA_UPDATE, &d) ||
        env_where(e, m, jr_get(p, "where"), &where))
        return e->code;
    int rc = cstack_update_many(e->db, m->name, where, &d, &count);
    cstack_filter_free(where);
    if (rc)
        return store_fail_at(e, rc, NULL);
    return put_count(e, out, count);
}

static int k_upsert(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_data where, create, update;
    cstack_row *row = NULL;
    /* The create data is read like an update: the where's fields complete
     * it, so the runtime checks what is still missing. */
    if (data_at(e, m, p, "where", ENV_DATA_UNIQUE, &where) ||
        data_at(e, m, p, "create", ENV_DATA_UPDATE, &create) ||
        data_at(e, m, p, "update", ENV_DATA_UPDATE, &update))
        return e->code;
    int rc = cstack_upsert(e->db, m->name, &where, &create, &update, &row);
    if (rc)
        return store_fail_at(e, rc, rc == CSTACK_EINVAL ? "where" : NULL);
    return put_row(e, out, row);
}

static int k_delete(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_data where;
    cstack_row *row = NULL;
    if (data_at(e, m, p, "where", ENV_DATA_UNIQUE, &where))
        return e->code;
    int rc = cstack_delete(e->db, m->name, &where, &row);
    if (rc)
        return store_fail_at(e, rc, rc == CSTACK_ENOTFOUND || rc == CSTACK_EINVAL ? "where" : NULL);
    return put_row(e, out, row);
}

static int k_delete_many(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_filter *where = NULL;
    int64_t count = 0;
    if (env_where(e, m, jr_get(p, "where"), &where))
        return e->code;
    int rc = cstack_delete_many(e->db, m->name, where, &count);
    cstack_filter_free(where);
    if (rc)
        return store_fail_at(e, rc, NULL);
    return put_count(e, out, count);
}

/* ---- reads ----------------------------------------------------------------- */

static int k_find_unique(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_data where;
    const char *const *select = NULL;
    size_t nselect = 0;
    cstack_row *row = NULL;
    if (data_at(e, m, p, "where", ENV_DATA_UNIQUE, &where))
        return e->code;
    const jr_val *sel = jr_get(p, "select");
    if (sel) {
        size_t mark = env_path_key(e, "select");
        env_select(e, m, sel, &select, &nselect);
        env_path_set(e, mark);
        if (e->code)
            return e->code;
    }
    int rc = cstack_find_unique(e->db, m->name, &where, select, nselect, &row);
    if (rc)
        return store_fail_at(e, rc, "where");
    return put_row(e, out, row);
}

static int k_find_first(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    env_query q;
    cstack_row *row = NULL;
    int rc = env_query_read(e, m, p, &q);
    if (!rc && (rc = cstack_find_first(e->db, m->name, &q.q, &row)))
        store_fail_at(e, rc, rc == CSTACK_ENOTFOUND ? "cursor" : NULL);
    env_query_free(&q);
    if (rc)
        return rc;
    if (q.take_zero) {
        cstack_row_free(row);
        row = NULL;
    }
    return put_row(e, out, row);
}

static int k_find_many(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    env_query q;
    cstack_rows *rows = NULL;
    int rc = env_query_read(e, m, p, &q);
    if (!rc && (rc = cstack_find_many(e->db, m->name, &q.q, &rows)))
        store_fail_at(e, rc, rc == CSTACK_ENOTFOUND ? "cursor" : NULL);
    env_query_free(&q);
    size_t n = q.take_zero ? 0 : cstack_rows_count(rows);
    if (!rc)
        rc = cs_buf_putc(out, '[');
    for (size_t i = 0; !rc && i < n; i++) {
        if (i)
            rc = cs_buf_putc(out, ',');
        if (!rc)
            rc = env_put_row(e, out, cstack_rows_get(rows, i));
    }
    cstack_rows_free(rows);
    return rc ? rc : cs_buf_putc(out, ']');
}

static int k_count(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_filter *where = NULL;
    int64_t count = 0;
    if (env_where(e, m, jr_get(p, "where"), &where))
        return e->code;
    int rc = cstack_count(e->db, m->name, where, &count);
    cstack_filter_free(where);
    if (rc)
        return store_fail_at(e, rc, NULL);
    return put_count(e, out, count);
}

/* ---- aggregate --------------------------------------------------------------- */

static const char *const AGG_KEYS[] = {"_sum", "_avg", "_min", "_max"};

/* Reads _count and the four field lists into spec (the where is separate). */
static int read_aggregate(env *e, const cs_model *m, const jr_val *p, cstack_aggregate_spec *a)
{
    const jr_val *count = jr_get(p, "_count");
    if (count) {
        size_t mark = env_path_key(e, "_count");
        if (!jr_is(count, JR_TRUE) && !jr_is(count, JR_FALSE))
            env_fail(e, CSTACK_EINVAL, "expected true or false, got %s", env_kind_name(count));
        env_path_set(e, mark);
        a->count = jr_is(count, JR_TRUE);
    }
    const char *const **lists[4] = {&a->sum, &a->avg, &a->min, &a->max};
    size_t *counts[4] = {&a->n_sum, &a->n_avg, &a->n_min, &a->n_max};
    for (int k = 0; k < 4 && !e->code; k++) {
        const jr_val *j = jr_get(p, AGG_KEYS[k]);
        if (!j)
            continue;
        size_t mark = env_path_key(e, AGG_KEYS[k]);
        env_field_list(e, m, j, k < 2, lists[k], counts[k]);
        env_path_set(e, mark);
    }
    if (!e->code && !a->count && !a->n_sum && !a->n_avg && !a->n_min && !a->n_max)
        env_fail(e, CSTACK_EINVAL,
                 "an aggregate needs at least one of _count: true, _sum, _avg, _min, _max");
    return e->code;
}

/* Writes the aggregate row ("_count", "_sum.f", ...) as nested objects:
 * {"_count":N,"_sum":{"f":v},...}. */
static int put_aggregate(env *e, cs_buf *out, const cs_model *m, const cstack_row *row)
{
    int rc = cs_buf_putc(out, '{');
    const char *group = NULL; /* the open group's name, e.g. "_sum" */
    size_t glen = 0;
    for (size_t i = 0; !rc && i < cstack_row_size(row); i++) {
        const char *name = cstack_row_name(row, i), *dot = strchr(name, '.');
        cstack_value v = cstack_row_value(row, i);
        size_t plen = dot ? (size_t)(dot - name) : strlen(name);
        bool same = group && dot && plen == glen && memcmp(group, name, plen) == 0;
        if (group && !same)
            rc = cs_buf_putc(out, '}');
        if (!rc && i)
            rc = cs_buf_putc(out, ',');
        if (!rc && !same)
            rc = cs_buf_json_str(out, name, plen);
        if (!rc && !same)
            rc = cs_buf_puts(out, dot ? ":{" : ":");
        group = dot ? name : NULL;
        glen = plen;
        if (!rc && dot)
            rc = cs_buf_json_str(out, dot + 1, strlen(dot + 1));
        if (!rc && dot)
            rc = cs_buf_putc(out, ':');
        int fi = cs_field_find(m, dot ? dot + 1 : name); /* a group_by field, or none */
        if (!rc)
            rc = env_put_value(e, out, fi >= 0 ? m->fields[fi].type : CS_T_INT, &v);
    }
    if (!rc && group)
        rc = cs_buf_putc(out, '}');
    return rc ? rc : cs_buf_putc(out, '}');
}

static int k_aggregate(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_aggregate_spec a;
    memset(&a, 0, sizeof a);
    cstack_filter *where = NULL;
    cstack_row *row = NULL;
    if (read_aggregate(e, m, p, &a) || env_where(e, m, jr_get(p, "where"), &where))
        return e->code;
    a.where = where;
    int rc = cstack_aggregate(e->db, m->name, &a, &row);
    cstack_filter_free(where);
    if (rc)
        return store_fail_at(e, rc, NULL);
    rc = row ? put_aggregate(e, out, m, row) : cs_buf_puts(out, "null");
    cstack_row_free(row);
    return rc;
}

/* group_by: {"by":[fields],"where"?,"_count"?,"_sum"?..,"orderBy"?} ->
 * [{"f":v,..,"_count":N,"_sum":{"g":v}},..], one object per group. */
static int k_group_by(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    cstack_group_by_spec g;
    memset(&g, 0, sizeof g);
    size_t mark = env_path_key(e, "by");
    int rc = env_select(e, m, jr_get(p, "by"), &g.by, &g.n_by);
    env_path_set(e, mark);
    const jr_val *order = jr_get(p, "orderBy");
    if (!rc && order) {
        mark = env_path_key(e, "orderBy");
        rc = env_order(e, m, order, &g.order_by, &g.n_order);
        env_path_set(e, mark);
    }
    bool aggs = jr_get(p, "_count") || jr_get(p, "_sum") || jr_get(p, "_avg") ||
                jr_get(p, "_min") || jr_get(p, "_max");
    cstack_filter *where = NULL;
    if (rc || (aggs && read_aggregate(e, m, p, &g.agg)) ||
        env_where(e, m, jr_get(p, "where"), &where))
        return e->code;
    g.agg.where = where;
    cstack_rows *rows = NULL;
    rc = cstack_group_by(e->db, m->name, &g, &rows);
    cstack_filter_free(where);
    if (rc)
        return store_fail_at(e, rc, NULL);
    rc = cs_buf_putc(out, '[');
    for (size_t i = 0; !rc && i < cstack_rows_count(rows); i++)
        rc = (i ? cs_buf_putc(out, ',') : 0) || put_aggregate(e, out, m, cstack_rows_get(rows, i));
    cstack_rows_free(rows);
    return rc ? env_fail(e, CSTACK_ENOMEM, "out of memory") : cs_buf_putc(out, ']');
}

/* The rows sync keeps hidden (cstack_sync_hidden): the JSON list as it is.
 * `m` is NULL when the request names no model (every model's rows). */
static int k_hidden_rows(env *e, const cs_model *m, const jr_val *p, cs_buf *out)
{
    (void)p;
    char *json = NULL;
    int rc = cstack_sync_hidden(e->db, m ? m->name : NULL, &json);
    if (rc)
        return store_fail_at(e, rc, NULL);
    rc = cs_buf_puts(out, json);
    cstack_free(json);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------ */

typedef int (*kind_fn)(env *e, const cs_model *m, const jr_val *payload, cs_buf *out);

typedef struct kind_def {
    const char *name;
    kind_fn run;
    const char *keys[10];    /* allowed payload keys, NULL-terminated */
    const char *required[4]; /* of which required */
} kind_def;

#define FIND_KEYS                                                                                  \
    {                                                                                              \
        "where", "orderBy", "take", "skip", "cursor", "select", NULL                               \
    }

static const kind_def KINDS[] = {
    {"create", k_create, {"data", NULL}, {"data", NULL}},
    {"create_many", k_create_many, {"data", NULL}, {"data", NULL}},
    {"find_unique", k_find_unique, {"where", "select", NULL}, {"where", NULL}},
    {"find_first", k_find_first, FIND_KEYS, {NULL}},
    {"find_many", k_find_many, FIND_KEYS, {NULL}},
    {"count", k_count, {"where", NULL}, {NULL}},
    {"aggregate", k_aggregate, {"where", "_count", "_sum", "_avg", "_min", "_max", NULL}, {NULL}},
    {"update", k_update, {"where", "data", NULL}, {"where", "data", NULL}},
    {"update_many", k_update_many, {"where", "data", NULL}, {"data", NULL}},
    {"upsert", k_upsert, {"where", "create", "update", NULL}, {"where", "create", "update", NULL}},
    {"delete", k_delete, {"where", NULL}, {"where", NULL}},
    {"delete_many", k_delete_many, {"where", NULL}, {NULL}},
    {"hidden_rows", k_hidden_rows, {NULL}, {NULL}},
    {"group_by", k_group_by, {"by", "where", "orderBy", "_count", "_sum", "_avg", "_min", "_max", NULL},
     {"by", NULL}},
};
#define NKINDS (sizeof KINDS / sizeof KINDS[0])

static const kind_def *find_kind(const char *name, size_t n)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (env_name_is(KINDS[i].name, name, n))
            return &KINDS[i];
    return NULL;
}

bool env_kind_known(const char *kind, size_t n)
{
    return find_kind(kind, n) != NULL;
}

/* The one kind about the database rather than a model: without a model it
 * covers every model. */
bool env_kind_model_optional(const char *kind, size_t n)
{
    return env_name_is("hidden_rows", kind, n);
}

const char *env_kind_list(void)
{
    return "create, create_many, find_unique, find_first, find_many, count, aggregate, update, "
           "update_many, upsert, delete, delete_many, hidden_rows, group_by";
}

int env_run_kind(env *e, const jr_val *kind, const cs_model *m, const jr_val *payload, cs_buf *out)
{
    const kind_def *k = find_kind(jr_str(kind), jr_len(kind));
    if (!k)
        return env_fail(e, CSTACK_EINVAL, "unknown kind");
    if (env_check_keys(e, payload, k->keys, k->required))
        return e->code;
    return k->run(e, m, payload, out);
}
