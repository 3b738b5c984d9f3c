/*
 * version.c -- the write rules of @version and @readonly fields.
 *
 * @version (optimistic locking): a new row starts at version 1 unless the
 * caller gives one; every update stores the row's version plus one.  A
 * caller that read version N passes it back, either in the unique `where`
 * of update/delete (next to the key) or as the field's value in the update
 * data; when the row is no longer at N the write fails with CSTACK_ECONFLICT
 * and nothing changes.  Writes that do not name the version are not checked
 * (they still bump it).
 *
 * @readonly: a field is written at create only; an update that sets it to a
 * value other than the current one fails with CSTACK_EVALIDATION.
 */
#include <string.h>

#include "store/store.h"

int cs_version_field(const cs_model *m)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (m->fields[i].version)
            return (int)i;
    return -1;
}

static int expected_of(const cs_model *m, const cs_field *f, const cstack_value *v,
                       int64_t *out)
{
    if (v->type != CSTACK_INT)
        return cs_err(CSTACK_EVALIDATION, "%s.%s: the expected @version must be an integer",
                      m->name, f->name);
    *out = v->u.i;
    return 0;
}

int cs_version_where(const cs_model *m, const cstack_data *where, cstack_field_value *buf,
                     cstack_data *rest, bool *given, int64_t *expected)
{
    *given = false;
    *rest = where ? *where : (cstack_data){NULL, 0};
    int vi = cs_version_field(m);
    if (vi < 0 || !where)
        return 0;
    const cs_field *f = &m->fields[vi];
    size_t k = 0;
    for (size_t i = 0; i < where->count; i++) {
        const cstack_field_value *fv = &where->fields[i];
        if (fv->field && strcmp(fv->field, f->name) == 0 && !*given) {
            int rc = expected_of(m, f, &fv->value, expected);
            if (rc)
                return rc;
            *given = true;
        } else {
            buf[k++] = *fv;
        }
    }
    if (*given)
        *rest = (cstack_data){buf, k};
    return 0;
}

static int64_t current_version(const cs_field *f, const cstack_row *before)
{
    cstack_value v;
    if (cstack_row_get(before, f->name, &v) != 0 || v.type != CSTACK_INT)
        return 0;
    return v.u.i;
}

int cs_version_check(const cs_model *m, const cstack_row *before, bool given, int64_t expected)
{
    int vi = cs_version_field(m);
    if (!given || vi < 0)
        return 0;
    int64_t cur = current_version(&m->fields[vi], before);
    if (cur == expected)
        return 0;
    return cs_err(CSTACK_ECONFLICT,
                  "%s changed since it was read: version %lld was given, the row is at %lld",
                  m->name, (long long)expected, (long long)cur);
}

static bool same_value(const cstack_value *x, const cstack_value *y)
{
    /* Booleans come back from rows as BOOL and are canonical as INT 0/1. */
    cstack_value xa = *x, yb = *y;
    const cstack_value *a = &xa, *b = &yb;
    if (xa.type == CSTACK_BOOL)
        xa = cstack_v_int(xa.u.b != 0);
    if (yb.type == CSTACK_BOOL)
        yb = cstack_v_int(yb.u.b != 0);
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case CSTACK_NULL:
        return true;
    case CSTACK_INT:
        return a->u.i == b->u.i;
    case CSTACK_FLOAT:
        return a->u.f == b->u.f;
    case CSTACK_BOOL:
        return a->u.b == b->u.b;
    default:
        return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    }
}

int cs_update_rules(const cs_model *m, const cstack_row *before, bool *set, cstack_value *v)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_field *f = &m->fields[i];
        if (f->readonly && set[i]) {
            cstack_value cur;
            if (cstack_row_get(before, f->name, &cur) != 0 || !same_value(&cur, &v[i]))
                return cs_err(CSTACK_EVALIDATION,
                              "%s.%s is @readonly: it cannot be changed after create", m->name,
                              f->name);
            set[i] = false;
        }
        if (f->version) {
            int64_t cur = current_version(f, before);
            if (set[i] && v[i].u.i != cur)
                return cs_version_check(m, before, true, v[i].u.i);
            v[i] = cstack_v_int(cur + 1);
            set[i] = true;
        }
    }
    return 0;
}
