/* settle.c -- writing merged rows and deciding their visibility.
 *
 * The visible state is a function of the merged state: a row is visible when
 * it is alive, every parent it references is visible, it has every required
 * field, and no visible row with an earlier claim holds one of its unique
 * values.  A claim is the latest (clock, site) among the row's columns in
 * that unique set; ties go to the smaller primary key.  settle() iterates
 * parking and restoring until nothing changes. */
#include <stdlib.h>
#include <string.h>

#include "sync/apply.h"
#include "value/value.h"

#define MAX_ROUNDS 64

/* ---- value checks ---------------------------------------------------------- */

int cs_apply_check_value(apply_ctx *a, const cs_model *m, int field, const cs_cs_value *v)
{
    const cs_field *f = &m->fields[field];
    const char *why = NULL;
    switch (v->type) {
    case SQLITE_NULL:
        why = f->optional ? NULL : "null for a required field";
        break;
    case SQLITE_INTEGER:
        if (f->type == CS_T_BOOLEAN && v->i != 0 && v->i != 1)
            why = "a Boolean other than 0 or 1";
        else if (f->type != CS_T_INT && f->type != CS_T_FLOAT && f->type != CS_T_BOOLEAN)
            why = "an integer";
        break;
    case SQLITE_FLOAT:
        why = f->type == CS_T_FLOAT ? NULL : "a float";
        break;
    case SQLITE_BLOB:
        why = f->type == CS_T_BYTES ? NULL : "bytes";
        break;
    default: {
        if (f->type == CS_T_INT || f->type == CS_T_FLOAT || f->type == CS_T_BOOLEAN ||
            f->type == CS_T_BYTES) {
            why = "text";
            break;
        }
        /* Text must already be canonical: replicas never rewrite values. */
        cstack_value in = cstack_v_textn((const char *)v->p, v->n), out;
        cs_buf scratch = CS_BUF_INIT;
        char err[160];
        int rc = cs_field_canon(a->schema, f, &in, &scratch, &out, err, sizeof err);
        if (rc == 0 && (out.u.s.n != v->n || memcmp(out.u.s.p, v->p, v->n) != 0))
            why = "a value not in canonical form";
        cs_buf_free(&scratch);
        if (rc)
            return cs_err(CSTACK_EVALIDATION, "changeset value for %s.%s: %s", m->name, f->name,
                          err);
    }
    }
    if (why)
        return cs_err(CSTACK_EVALIDATION, "changeset value for %s.%s is %s", m->name, f->name,
                      why);
    /* The field's validators, as on a local write (the server's check of
     * pushed rows goes through here too). */
    cstack_value cv = v->type == SQLITE_INTEGER ? cstack_v_int(v->i)
                      : v->type == SQLITE_FLOAT ? cstack_v_float(v->f)
                      : v->type == SQLITE_TEXT  ? cstack_v_textn((const char *)v->p, v->n)
                      : v->type == SQLITE_BLOB  ? cstack_v_blob(v->p, v->n)
                                                : cstack_v_null();
    char err[256];
    if (cs_field_check(f, &cv, err, sizeof err))
        return cs_err(CSTACK_EVALIDATION, "changeset value for %s", err);
    return 0;
}

/* ---- work lists -------------------------------------------------------------- */

static int work_push(cs_worklist *w, const cs_arow *r, int model)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        cs_work *p = realloc(w->items, cap * sizeof *p);
        if (!p)
            return cs_err(CSTACK_ENOMEM, "out of memory");
        w->items = p;
        w->cap = cap;
    }
    cs_work *it = &w->items[w->n];
    memset(it, 0, sizeof *it);
    it->model = model;
    if (cs_parked_encode(&it->row, r->m, r->vals, r->present)) {
        cs_buf_free(&it->row);
        return cs_err(CSTACK_ENOMEM, "out of memory");
    }
    w->n++;
    return 0;
}

static void work_clear(cs_worklist *w)
{
    for (size_t i = 0; i < w->n; i++)
        cs_buf_free(&w->items[i].row);
    w->n = 0;
}

void cs_apply_work_free(apply_ctx *a)
{
    work_clear(&a->touched);
    work_clear(&a->removed);
    free(a->touched.items);
    free(a->removed.items);
}

static int model_index(apply_ctx *a, const cs_model *m)
{
    return (int)(m - a->schema->models);
}

/* Whether rows of m reference parents (their visibility depends on them). */
static bool has_parents(const cs_model *m)
{
    for (size_t f = 0; f < m->nfields; f++)
        if (m->fields[f].rel && m->fields[f].rel->nfields > 0)
            return true;
    return false;
}

/* Whether some model references m (its rows' visibility matters to others). */
static bool has_children(const cstack_schema *s, int mi)
{
    for (size_t c = 0; c < s->nmodels; c++)
        for (size_t f = 0; f < s->models[c].nfields; f++) {
            const cs_relation *rel = s->models[c].fields[f].rel;
            if (rel && rel->nfields > 0 && rel->target == mi)
                return true;
        }
    return false;
}

/* ---- statements ---------------------------------------------------------------- */

static const cs_cs_value null_value = {SQLITE_NULL, 0, 0, NULL, 0};

/* Runs a fixed row statement of r's model, binding r's column values to
 * their field parameters (`fields`: INSERT_ALL, UPDATE_ALL) and its key to
 * the key parameters (`key`: UPDATE_ALL, DELETE). */
static int run_fixed(apply_ctx *a, const cs_arow *r, cs_row_fixed kind, bool fields, bool key,
                     int *step_out)
{
    const cs_model *m = r->m;
    sqlite3_stmt *st = NULL;
    int rc = cs_apply_prepare(a, m, cs_rowsql_fixed(a->rowsql, model_index(a, m), kind), &st);
    if (rc)
        return rc;
    for (size_t f = 0; fields && f < m->nfields; f++) {
        /* UPDATE_ALL sets no key column; its parameter is simply unused. */
        /* A column absent from a new row (its writer ran an older schema)
         * takes its default, as a local insert would. */
        cs_cs_value def;
        if (cs_field_is_column(&m->fields[f]))
            cs_cs_bind(st, (int)f + 1,
                       r->present[f]                        ? &r->vals[f]
                       : cs_cs_default(&m->fields[f], &def) ? &def
                                                            : &null_value);
    }
    for (size_t p = 0; key && p < m->npk; p++)
        cs_cs_bind(st, cs_rowsql_key_param(m, p), &r->vals[m->pk[p]]);
    *step_out = sqlite3_step(st);
    sqlite3_reset(st);
    return 0;
}

/* Prepares the lookup of the keys of m's rows whose fields `fields[0..n)`
 * equal the values to be bound at their parameters. */
static int keys_where(apply_ctx *a, const cs_model *m, const int *fields, size_t n,
                      sqlite3_stmt **st)
{
    uint64_t bits[CS_FIELDSET_WORDS(m->nfields)];
    memset(bits, 0, sizeof bits);
    for (size_t i = 0; i < n; i++)
        cs_fieldset_add(bits, (size_t)fields[i]);
    cs_rowstmt rs;
    int rc = cs_rowsql_set(a->rowsql, model_index(a, m), CS_ROW_KEYS_WHERE, bits, &rs);
    if (rc)
        return cs_err(rc, "cannot build a key lookup of %s", m->name);
    return cs_apply_prepare(a, m, &rs, st);
}

static int delete_visible(apply_ctx *a, const cs_arow *r)
{
    int step = SQLITE_DONE;
    int rc = run_fixed(a, r, CS_ROW_DELETE, false, true, &step);
    return rc ? rc : step == SQLITE_DONE ? 0 : cs_err_sqlite(r->m, a->c->db, step);
}

/* Gives the row's clock row the merge's version: the row was shown or
 * hidden, and a reader whose cursor passed it (a server's device, which is
 * sent only what it may see) must hear of it again. */
static int touch(apply_ctx *a, const cs_arow *r)
{
    int mi = model_index(a, r->m);
    cs_cs_value pk[16];
    cs_row_pk(r, pk);
    return cs_clkrow_touch(a->c, &a->s->models[mi], r->m, pk, a->ver);
}

/* Moves a row from its table (when visible) to the parked rows, or stores
 * the latest values of a row that stays parked (`again`), with the reason
 * it is hidden. */
static int park_row(apply_ctx *a, const cs_arow *r, bool visible, bool again,
                    cs_park_reason why)
{
    cs_cs_value pk[16];
    cs_row_pk(r, pk);
    cs_buf key = CS_BUF_INIT, row = CS_BUF_INIT;
    int rc = cs_parked_key(&key, pk, r->m->npk);
    rc = rc ? rc : cs_parked_encode(&row, r->m, r->vals, r->present);
    if (rc)
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    int src = rc ? SQLITE_OK : cs_parked_put(a->c, r->m, &key, &row, why);
    if (src != SQLITE_OK)
        rc = cs_err_sqlite(r->m, a->c->db, src);
    if (!rc)
        a->parked_any = true;
    if (!rc && visible)
        rc = delete_visible(a, r);
    if (!rc && visible)
        rc = touch(a, r);
    if (!rc && visible && has_children(a->schema, model_index(a, r->m)))
        rc = work_push(&a->removed, r, model_index(a, r->m));
    if (!rc && !again)
        a->stats.parked++;
    cs_buf_free(&key);
    cs_buf_free(&row);
    return rc;
}

static int park(apply_ctx *a, const cs_arow *r, bool visible, cs_park_reason why)
{
    return park_row(a, r, visible, false, why);
}

static int unpark_entry(apply_ctx *a, const cs_arow *r)
{
    cs_cs_value pk[16];
    cs_row_pk(r, pk);
    cs_buf key = CS_BUF_INIT;
    int rc = cs_parked_key(&key, pk, r->m->npk);
    int src = rc ? SQLITE_OK : cs_parked_del(a->c, r->m, &key);
    cs_buf_free(&key);
    return rc ? cs_err(CSTACK_ENOMEM, "out of memory")
               : src == SQLITE_OK ? 0 : cs_err_sqlite(r->m, a->c->db, src);
}

/* ---- claims --------------------------------------------------------------------- */

/* The claim of row r on unique set u: its latest column clock there. */
static int claim_of(apply_ctx *a, const cs_arow *r, const cs_index *u, cs_clk_entry *out)
{
    int mi = model_index(a, r->m);
    cs_cs_value pk[16];
    cs_row_pk(r, pk);
    uint64_t cl;
    cs_clk clk;
    cs_clk_init(&clk);
    int rc = cs_clock_load(a, mi, pk, &cl, &clk);
    memset(out, 0, sizeof *out);
    for (size_t i = 0; !rc && i < u->n; i++) {
        int k = a->field_col[mi][u->fields[i]];
        const cs_clk_entry *e = k >= 0 ? cs_clk_get(&clk, (size_t)k) : NULL;
        if (e && (e->hlc > out->hlc ||
                  (e->hlc == out->hlc &&
                   memcmp(cs_site_id(a->s, e->site), cs_site_id(a->s, out->site), CS_SITE_LEN) >
                       0)))
            *out = *e;
    }
    cs_clk_free(&clk);
    return rc;
}

/* < 0 when row x's claim is earlier than y's (x keeps the value). */
static int claim_cmp(apply_ctx *a, const cs_arow *x, const cs_arow *y, const cs_index *u,
                     int *out)
{
    cs_clk_entry ex, ey;
    int rc = claim_of(a, x, u, &ex);
    rc = rc ? rc : claim_of(a, y, u, &ey);
    if (rc)
        return rc;
    if (ex.hlc != ey.hlc) {
        *out = ex.hlc < ey.hlc ? -1 : 1;
        return 0;
    }
    int c = memcmp(cs_site_id(a->s, ex.site), cs_site_id(a->s, ey.site), CS_SITE_LEN);
    if (!c) {
        cs_buf kx = CS_BUF_INIT, ky = CS_BUF_INIT;
        cs_cs_value px[16], py[16];
        cs_row_pk(x, px);
        cs_row_pk(y, py);
        cs_parked_key(&kx, px, x->m->npk);
        cs_parked_key(&ky, py, y->m->npk);
        size_t n = kx.len < ky.len ? kx.len : ky.len;
        c = n ? memcmp(kx.data, ky.data, n) : 0;
        if (!c)
            c = kx.len < ky.len ? -1 : kx.len > ky.len;
        cs_buf_free(&kx);
        cs_buf_free(&ky);
    }
    *out = c;
    return 0;
}

/* The visible row (other than r) holding one of r's unique values, if any. */
static int find_rival(apply_ctx *a, const cs_arow *r, cs_arow *rival, const cs_index **which,
                      bool *found)
{
    const cs_model *m = r->m;
    *found = false;
    for (size_t u = 0; u < m->nuniques && !*found; u++) {
        const cs_index *ix = &m->uniques[u];
        bool nulls = false;
        for (size_t i = 0; i < ix->n; i++)
            nulls = nulls || !r->present[ix->fields[i]] ||
                    r->vals[ix->fields[i]].type == SQLITE_NULL;
        if (nulls)
            continue;
        sqlite3_stmt *st = NULL;
        int rc = keys_where(a, m, ix->fields, ix->n, &st);
        if (rc)
            return rc;
        for (size_t i = 0; i < ix->n; i++)
            cs_cs_bind(st, ix->fields[i] + 1, &r->vals[ix->fields[i]]);
        cs_cs_value mine[16];
        cs_row_pk(r, mine);
        while (!*found && sqlite3_step(st) == SQLITE_ROW) {
            cs_cs_value pk[16];
            bool same = true;
            for (size_t k = 0; k < m->npk; k++) {
                cs_cs_value_from_stmt(&pk[k], st, (int)k);
                same = same && cs_cs_value_cmp(&pk[k], &mine[k]) == 0;
            }
            if (same)
                continue;
            bool vis, parked;
            /* Copy the key out before the statement moves on. */
            cs_arow tmp;
            rc = cs_row_init(&tmp, m);
            for (size_t k = 0; !rc && k < m->npk; k++) {
                tmp.vals[m->pk[k]] = pk[k];
                tmp.present[m->pk[k]] = true;
            }
            rc = rc ? rc : cs_row_own(&tmp);
            cs_cs_value owned[16];
            if (!rc)
                cs_row_pk(&tmp, owned);
            sqlite3_reset(st);
            rc = rc ? rc : cs_row_load(a, m, owned, rival, &vis, &parked);
            cs_row_free(&tmp);
            if (rc)
                return rc;
            *found = vis;
            *which = ix;
            break;
        }
        sqlite3_reset(st);
    }
    return 0;
}

/* Makes row r visible (insert, or update when `visible`), resolving unique
 * conflicts by claim and parking r when it cannot be shown. */
static int make_visible(apply_ctx *a, cs_arow *r, bool visible, bool was_parked, bool *shown)
{
    const cs_model *m = r->m;
    *shown = false;
    /* A model whose columns are all in its key has nothing to update. */
    bool nothing = visible && !cs_rowsql_fixed(a->rowsql, model_index(a, m), CS_ROW_UPDATE_ALL);
    for (int attempt = 0; attempt < 16; attempt++) {
        int step = SQLITE_DONE;
        int rc = nothing ? 0
                         : run_fixed(a, r, visible ? CS_ROW_UPDATE_ALL : CS_ROW_INSERT_ALL, true,
                                     visible, &step);
        if (rc)
            return rc;
        if (step == SQLITE_DONE) {
            *shown = true;
            rc = was_parked ? unpark_entry(a, r) : 0;
            rc = rc || !was_parked ? rc : touch(a, r);
            return rc || !has_parents(m) ? rc : work_push(&a->touched, r, model_index(a, m));
        }
        int ext = sqlite3_extended_errcode(a->c->db);
        if (ext == SQLITE_CONSTRAINT_NOTNULL)
            return visible ? cs_err_sqlite(m, a->c->db, ext)
                           : park_row(a, r, false, was_parked, CS_PARK_REQUIRED);
        if (ext != SQLITE_CONSTRAINT_UNIQUE)
            return cs_err_sqlite_named(a->schema, m, a->c->db, ext);
        cs_arow rival;
        const cs_index *ix = NULL;
        bool found = false;
        int cmp = 0;
        rc = cs_row_init(&rival, m);
        rc = rc ? rc : find_rival(a, r, &rival, &ix, &found);
        if (!rc && !found)
            rc = cs_err(CSTACK_ESQLITE, "a unique conflict on %s has no visible rival", m->name);
        rc = rc ? rc : claim_cmp(a, r, &rival, ix, &cmp);
        if (!rc && cmp > 0) {
            cs_row_free(&rival);
            return park_row(a, r, visible, was_parked, CS_PARK_UNIQUE);
        }
        rc = rc ? rc : park(a, &rival, true, CS_PARK_UNIQUE);
        cs_row_free(&rival);
        if (rc)
            return rc;
    }
    return cs_err(CSTACK_ESQLITE, "unique conflicts on %s did not settle", m->name);
}

/* Overlays the won columns and the key of `in` on the row.  The values
 * borrow from the changeset, which outlives the merge. */
static void overlay(apply_ctx *a, const cs_cs_row *in, cs_arow *cur)
{
    for (size_t i = 0; i < in->ncols; i++) {
        if (!a->won[i])
            continue;
        cur->vals[in->cols[i].field] = in->cols[i].value;
        cur->present[in->cols[i].field] = true;
    }
    for (size_t k = 0; k < cur->m->npk; k++) {
        cur->vals[cur->m->pk[k]] = in->pk[k];
        cur->present[cur->m->pk[k]] = true;
    }
}

int cs_apply_write(apply_ctx *a, const cs_cs_row *in, cs_arow *cur, bool found, bool parked)
{
    overlay(a, in, cur);
    bool shown;
    return make_visible(a, cur, found, parked, &shown);
}

int cs_apply_insert(apply_ctx *a, const cs_cs_row *in, cs_arow *cur, bool *done)
{
    overlay(a, in, cur);
    int step = SQLITE_DONE;
    int rc = run_fixed(a, cur, CS_ROW_INSERT_ALL, true, false, &step);
    *done = !rc && step == SQLITE_DONE;
    return rc || !*done || !has_parents(cur->m)
               ? rc
               : work_push(&a->touched, cur, model_index(a, cur->m));
}

int cs_apply_remove(apply_ctx *a, cs_arow *cur, const cs_cs_value *pk, bool found, bool parked)
{
    int rc = 0;
    for (size_t k = 0; k < cur->m->npk; k++) {
        cur->vals[cur->m->pk[k]] = pk[k];
        cur->present[cur->m->pk[k]] = true;
    }
    if (found)
        rc = delete_visible(a, cur);
    if (!rc && found && has_children(a->schema, model_index(a, cur->m)))
        rc = work_push(&a->removed, cur, model_index(a, cur->m));
    if (!rc && parked)
        rc = unpark_entry(a, cur);
    return rc;
}

/* ---- settling ------------------------------------------------------------------- */

/* Whether every parent r references (through owning relations) is visible. */
static int parents_visible(apply_ctx *a, const cs_arow *r, bool *ok)
{
    const cs_model *m = r->m;
    *ok = true;
    for (size_t f = 0; f < m->nfields && *ok; f++) {
        const cs_relation *rel = m->fields[f].rel;
        if (!rel || rel->nfields == 0)
            continue;
        bool nulls = false;
        for (size_t i = 0; i < rel->nfields; i++)
            nulls = nulls || !r->present[rel->fields[i]] ||
                    r->vals[rel->fields[i]].type == SQLITE_NULL;
        if (nulls)
            continue;
        const cs_model *t = &a->schema->models[rel->target];
        sqlite3_stmt *st = NULL;
        int rc = keys_where(a, t, rel->refs, rel->nfields, &st);
        if (rc)
            return rc;
        for (size_t i = 0; i < rel->nfields; i++)
            cs_cs_bind(st, rel->refs[i] + 1, &r->vals[rel->fields[i]]);
        int step = sqlite3_step(st);
        sqlite3_reset(st);
        if (step != SQLITE_ROW && step != SQLITE_DONE)
            return cs_err_sqlite(t, a->c->db, step);
        *ok = step == SQLITE_ROW;
    }
    return 0;
}

static int decode_work(apply_ctx *a, const cs_work *w, cs_arow *r)
{
    int rc = cs_row_init(r, &a->schema->models[w->model]);
    if (!rc && cs_parked_decode(w->row.data, w->row.len, r->m, r->vals, r->present))
        rc = cs_err(CSTACK_ESQLITE, "cannot decode a row of %s", r->m->name);
    return rc ? rc : cs_row_own(r);
}

/* Parks a visible row whose parents are not all visible. */
static int check_orphan(apply_ctx *a, const cs_work *w, bool *progress)
{
    cs_arow r;
    bool vis = false, parked = false, ok = true;
    cs_cs_value pk[16];
    int rc = decode_work(a, w, &r);
    if (!rc) {
        cs_row_pk(&r, pk);
        rc = cs_row_load(a, r.m, pk, &r, &vis, &parked);
    }
    if (!rc && vis)
        rc = parents_visible(a, &r, &ok);
    if (!rc && vis && !ok) {
        rc = park(a, &r, true, CS_PARK_PARENT);
        *progress = true;
    }
    cs_row_free(&r);
    return rc;
}

/* Parks the visible children of a row that stopped being visible. */
static int park_children(apply_ctx *a, const cs_work *w, bool *progress)
{
    cs_arow parent;
    int rc = decode_work(a, w, &parent);
    const cstack_schema *s = a->schema;
    for (size_t ci = 0; !rc && ci < s->nmodels; ci++) {
        const cs_model *c = &s->models[ci];
        for (size_t f = 0; !rc && f < c->nfields; f++) {
            const cs_relation *rel = c->fields[f].rel;
            if (!rel || rel->nfields == 0 || rel->target != w->model)
                continue;
            bool nulls = false;
            for (size_t i = 0; i < rel->nfields; i++)
                nulls = nulls || !parent.present[rel->refs[i]] ||
                        parent.vals[rel->refs[i]].type == SQLITE_NULL;
            sqlite3_stmt *st = NULL;
            if (nulls || (rc = keys_where(a, c, rel->fields, rel->nfields, &st)))
                continue;
            for (size_t i = 0; i < rel->nfields; i++)
                cs_cs_bind(st, rel->fields[i] + 1, &parent.vals[rel->refs[i]]);
            /* Collect the keys first: parking deletes from the table being
             * read. */
            cs_worklist keys = {0};
            while (!rc && sqlite3_step(st) == SQLITE_ROW) {
                cs_arow k;
                rc = cs_row_init(&k, c);
                for (size_t i = 0; !rc && i < c->npk; i++) {
                    cs_cs_value_from_stmt(&k.vals[c->pk[i]], st, (int)i);
                    k.present[c->pk[i]] = true;
                }
                rc = rc ? rc : work_push(&keys, &k, (int)ci);
                cs_row_free(&k);
            }
            sqlite3_reset(st);
            for (size_t i = 0; !rc && i < keys.n; i++) {
                cs_arow child;
                cs_cs_value pk[16];
                bool vis = false, parked = false;
                rc = decode_work(a, &keys.items[i], &child);
                if (!rc) {
                    cs_row_pk(&child, pk);
                    rc = cs_row_load(a, c, pk, &child, &vis, &parked);
                }
                if (!rc && vis) {
                    rc = park(a, &child, true, CS_PARK_PARENT);
                    *progress = true;
                }
                cs_row_free(&child);
            }
            work_clear(&keys);
            free(keys.items);
        }
    }
    cs_row_free(&parent);
    return rc;
}

/* A parked row whose parent is not visible is hidden for that, whatever
 * hid it first: the reason then depends only on the merged state. */
static int reason_parent(apply_ctx *a, const cs_arow *r)
{
    cs_cs_value pk[16];
    cs_row_pk(r, pk);
    cs_buf key = CS_BUF_INIT;
    int rc = cs_parked_key(&key, pk, r->m->npk);
    int src = rc ? SQLITE_OK : cs_parked_set_reason(a->c, r->m, &key, CS_PARK_PARENT);
    cs_buf_free(&key);
    return rc ? cs_err(CSTACK_ENOMEM, "out of memory")
               : src == SQLITE_OK ? 0 : cs_err_sqlite(r->m, a->c->db, src);
}

/* Tries to restore every parked row whose reasons to hide may be gone. */
static int unpark_all(apply_ctx *a, bool *progress)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(a->c->db, "SELECT model, row FROM _cstack_parked", -1, &st, NULL);
    if (src != SQLITE_OK)
        return cs_err_sqlite(NULL, a->c->db, src);
    cs_worklist rows = {0};
    int rc = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        int mi = cs_model_find(a->schema, (const char *)sqlite3_column_text(st, 0));
        if (mi < 0)
            continue;
        cs_arow r;
        rc = cs_row_init(&r, &a->schema->models[mi]);
        if (!rc && cs_parked_decode(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1),
                                    r.m, r.vals, r.present))
            rc = cs_err(CSTACK_ESQLITE, "cannot decode a parked row of %s", r.m->name);
        rc = rc ? rc : work_push(&rows, &r, mi);
        cs_row_free(&r);
    }
    sqlite3_finalize(st);
    for (size_t i = 0; !rc && i < rows.n; i++) {
        cs_arow r;
        cs_cs_value pk[16];
        uint64_t cl = 0;
        cs_clk clk;
        cs_clk_init(&clk);
        bool ok = false, shown = false;
        rc = decode_work(a, &rows.items[i], &r);
        if (!rc) {
            cs_row_pk(&r, pk);
            rc = cs_clock_load(a, rows.items[i].model, pk, &cl, &clk);
        }
        cs_arow cur;
        bool vis = false, parked = false;
        if (!rc && (cl & 1) && !(rc = cs_row_init(&cur, r.m))) {
            rc = cs_row_load(a, r.m, pk, &cur, &vis, &parked);
            cs_row_free(&cur);
        }
        if (!rc && (!(cl & 1) || vis))
            rc = unpark_entry(a, &r); /* deleted, or written again locally */
        else if (!rc)
            rc = parents_visible(a, &r, &ok);
        if (!rc && (cl & 1) && !vis && ok)
            rc = make_visible(a, &r, false, true, &shown);
        else if (!rc && (cl & 1) && !vis)
            rc = reason_parent(a, &r);
        if (shown)
            *progress = true;
        cs_clk_free(&clk);
        cs_row_free(&r);
    }
    work_clear(&rows);
    free(rows.items);
    return rc;
}

int cs_apply_settle(apply_ctx *a)
{
    for (int round = 0; round < MAX_ROUNDS; round++) {
        bool progress = false;
        cs_worklist touched = a->touched, removed = a->removed;
        memset(&a->touched, 0, sizeof a->touched);
        memset(&a->removed, 0, sizeof a->removed);
        int rc = 0;
        for (size_t i = 0; !rc && i < touched.n; i++)
            rc = check_orphan(a, &touched.items[i], &progress);
        for (size_t i = 0; !rc && i < removed.n; i++)
            rc = park_children(a, &removed.items[i], &progress);
        work_clear(&touched);
        work_clear(&removed);
        free(touched.items);
        free(removed.items);
        rc = rc ? rc : unpark_all(a, &progress);
        if (rc)
            return rc;
        if (!progress && a->touched.n == 0 && a->removed.n == 0)
            return 0;
    }
    return cs_err(CSTACK_ESQLITE, "merge visibility did not settle after %d rounds", MAX_ROUNDS);
}

int cs_apply_inserted(apply_ctx *a, const cs_arow *r)
{
    return has_parents(r->m) ? work_push(&a->touched, r, model_index(a, r->m)) : 0;
}
