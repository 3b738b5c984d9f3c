/* rowvals.c -- the values of one row being written (rowvals.h): taking
 * the caller's fields (canonical form, validators), filling a new row's
 * defaults (uuid(), cuid(), now(), autoincrement() from _cstack_sequence),
 * and binding them. */
#include <stdlib.h>
#include <string.h>

#include "store/rowvals.h"
#include "value/value.h"

int cs_rowvals_init(cs_rowvals *rv, size_t n, cs_rowvals_store *st)
{
    rv->n = n;
    rv->heap = n > CS_ROWVALS_INLINE;
    if (!rv->heap) {
        memset(st->set, 0, n * sizeof *st->set);
        memset(st->owned, 0, n * sizeof *st->owned);
        rv->set = st->set;
        rv->v = st->v;
        rv->owned = st->owned;
        return 0;
    }
    rv->set = calloc(n, sizeof *rv->set);
    rv->v = calloc(n, sizeof *rv->v);
    rv->owned = calloc(n, sizeof *rv->owned);
    if (!rv->set || !rv->v || !rv->owned)
        return cs_err(CSTACK_ENOMEM, "out of memory");
    return 0;
}

void cs_rowvals_free(cs_rowvals *rv)
{
    for (size_t i = 0; rv->owned && i < rv->n; i++)
        free(rv->owned[i]);
    if (rv->heap) {
        free(rv->owned);
        free(rv->set);
        free(rv->v);
    }
}

/* Canonicalises the given fields of `data` into rv. */
int cs_rowvals_take(const cstack_schema *s, const cs_model *m, const cstack_data *data,
                     cs_rowvals *rv)
{
    int hint = 0;
    for (size_t i = 0; data && i < data->count; i++) {
        const char *name = data->fields[i].field;
        /* Callers usually list fields in schema order: try the next one
         * before searching. */
        int fi = name && (size_t)hint < m->nfields && strcmp(m->fields[hint].name, name) == 0
                     ? hint
                 : name ? cs_field_find(m, name)
                        : -1;
        hint = fi + 1;
        if (fi < 0)
            return cs_err(CSTACK_EINVAL, "unknown field '%s' in model %s",
                          name ? name : "(null)", m->name);
        const cs_field *f = &m->fields[fi];
        if (!cs_field_is_column(f))
            return cs_err(CSTACK_EINVAL,
                          "%s.%s is a relation; write its foreign key field(s) instead", m->name,
                          name);
        if (rv->set[fi])
            return cs_err(CSTACK_EINVAL, "field %s.%s is given twice", m->name, name);
        const cstack_value *in = &data->fields[i].value;
        if (in->type == CSTACK_NULL && !f->optional)
            return cs_err(CSTACK_EREQUIRED, "%s.%s is required and cannot be null", m->name,
                          name);
        int rc = cs_canon_field(s, m, f, in, &rv->v[fi], &rv->owned[fi]);
        char why[256];
        if (!rc && cs_field_check(f, &rv->v[fi], why, sizeof why))
            rc = cs_err(CSTACK_EVALIDATION, "%s: %s", m->name, why);
        if (rc)
            return rc;
        rv->set[fi] = true;
    }
    return 0;
}

static int next_sequence(cstack *db, const cs_model *m, const cs_field *f, int64_t *out)
{
    cs_sqlb q = {0};
    int rc = cs_buf_puts(&q.sql, "INSERT INTO _cstack_sequence(model, value) VALUES (?1, "
                                 "(SELECT coalesce(max(");
    if (!rc)
        rc = cs_buf_ident(&q.sql, f->column);
    if (!rc)
        rc = cs_buf_puts(&q.sql, "), 0) FROM ");
    if (!rc)
        rc = cs_buf_ident(&q.sql, m->table);
    if (!rc)
        rc = cs_buf_puts(&q.sql, ") + 1) ON CONFLICT(model) DO UPDATE SET value = "
                                 "max(value, excluded.value - 1) + 1 RETURNING value");
    sqlite3_stmt *st = rc ? NULL : cs_conn_prepare(&db->writer, 0, q.sql.data, q.sql.len);
    cs_sqlb_free(&q);
    if (rc)
        return rc;
    if (!st)
        return cs_err_sqlite(m, db->writer.db, sqlite3_errcode(db->writer.db));
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = cs_err_sqlite(m, db->writer.db, rc);
    }
    sqlite3_reset(st);
    return rc;
}

/* Fills defaults, @updatedAt and checks required fields of a new row. */
int cs_rowvals_defaults(cstack *db, const cs_model *m, cs_rowvals *rv, char *now)
{
    for (size_t i = 0; i < m->nfields; i++) {
        const cs_field *f = &m->fields[i];
        if (!cs_field_is_column(f) || rv->set[i])
            continue;
        cs_default_kind k = f->def.kind;
        if (f->updated_at || k == CS_DEF_NOW) {
            if (!now[0])
                cs_now(now); /* once per row, and only when needed */
            rv->v[i] = cstack_v_textn(now, CS_DATETIME_LEN);
        } else if (k == CS_DEF_UUID || k == CS_DEF_CUID) {
            char *id = malloc(CS_UUID_LEN + 1);
            if (!id)
                return cs_err(CSTACK_ENOMEM, "out of memory");
            if (k == CS_DEF_UUID)
                cs_uuid_v4(id);
            else
                cs_cuid(id);
            rv->owned[i] = id;
            rv->v[i] = cstack_v_textn(id, strlen(id));
        } else if (k == CS_DEF_AUTOINCREMENT) {
            int64_t next = 0;
            int rc = next_sequence(db, m, f, &next);
            if (rc)
                return rc;
            rv->v[i] = cstack_v_int(next);
        } else if (k == CS_DEF_LITERAL || f->optional) {
            continue; /* the column's DEFAULT (or NULL) applies */
        } else {
            return cs_err(CSTACK_EREQUIRED, "%s.%s is required", m->name, f->name);
        }
        rv->set[i] = true;
    }
    return 0;
}

/* The column set of the fields given in rv (CS_FIELDSET_WORDS words). */
void cs_rowvals_bits(const cs_rowvals *rv, uint64_t *bits)
{
    for (size_t w = 0; w < CS_FIELDSET_WORDS(rv->n); w++)
        bits[w] = 0;
    for (size_t i = 0; i < rv->n; i++)
        bits[i / 64] |= (uint64_t)rv->set[i] << (i % 64);
}

/* Binds the given values of rv to their fields' parameters. */
int cs_rowvals_bind(sqlite3_stmt *st, const cs_model *m, const cs_rowvals *rv, cstack *db)
{
    for (size_t i = 0; i < rv->n; i++) {
        int rc = rv->set[i] ? cs_bind_one(st, (int)i + 1, &rv->v[i]) : SQLITE_OK;
        if (rc != SQLITE_OK)
            return cs_err_sqlite(m, db->writer.db, rc);
    }
    return 0;
}

