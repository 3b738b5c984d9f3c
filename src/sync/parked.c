/* parked.c -- rows hidden by a merge conflict.
 *
 * A row that is alive in the merged state but cannot be visible -- it loses a
 * unique constraint to another row, its parent is not visible, or it lacks a
 * required field because only part of it has arrived -- is kept in
 * _cstack_parked instead of its table.  Parking is a local visibility
 * decision, not a write: the clock metadata does not change, so every
 * replica reaches the same decision from the same merged state, and the row
 * returns as soon as the conflict is gone.  Hiding or showing a row is a
 * change to the readers of this replica, though, so the merge gives the
 * row's clock row its version (settle.c): exports since a cursor that passed
 * the row then carry it again.
 *
 *   _cstack_parked(model TEXT, pk BLOB, row BLOB, reason TEXT)
 *   pk     := value*npk                 (changeset value encoding)
 *   row    := (varint(field) value)*    (every column the row has)
 *   reason := 'unique' | 'parent' | 'required'   ('' when parked by a
 *             version that did not record it, until the next merge)
 */
#include <stdlib.h>
#include <string.h>

#include "sync/parked.h"
#include "sync/sync.h"
#include "value/value.h"

static const char *const REASONS[] = {"unknown", "unique", "parent", "required"};

const char *cs_park_reason_name(int reason)
{
    return reason > 0 && reason <= CS_PARK_REQUIRED ? REASONS[reason] : REASONS[0];
}

int cs_parked_key(cs_buf *b, const cs_cs_value *pk, size_t npk)
{
    cs_buf_reset(b);
    int rc = 0;
    for (size_t i = 0; i < npk && !rc; i++)
        rc = cs_cs_put_value(b, &pk[i]);
    return rc;
}

/* The merge runs these once per row, so they are cached under their own
 * keys rather than a hash of their text. */
static sqlite3_stmt *prep(cs_conn *c, enum cs_const_stmt id, const char *sql)
{
    return cs_conn_prepare(c, CS_KEY_CONST(id), sql, strlen(sql));
}

int cs_parked_get(cs_conn *c, const cs_model *m, const cs_buf *key, cs_buf *row, bool *found)
{
    *found = false;
    sqlite3_stmt *st =
        prep(c, CS_STMT_PARKED_GET, "SELECT row FROM _cstack_parked WHERE model = ?1 AND pk = ?2");
    if (!st)
        return sqlite3_errcode(c->db);
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, key->data, (int)key->len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *found = true;
        cs_buf_reset(row);
        rc = cs_buf_append(row, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0))
                 ? SQLITE_NOMEM
                 : SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int cs_parked_put(cs_conn *c, const cs_model *m, const cs_buf *key, const cs_buf *row,
                  cs_park_reason reason)
{
    sqlite3_stmt *st =
        prep(c, CS_STMT_PARKED_PUT,
             "INSERT INTO _cstack_parked(model, pk, row, reason) VALUES (?1, ?2, ?3, ?4) "
             "ON CONFLICT(model, pk) DO UPDATE SET row = excluded.row, reason = excluded.reason");
    if (!st)
        return sqlite3_errcode(c->db);
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, key->data, (int)key->len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, row->data ? row->data : "", (int)row->len, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, cs_park_reason_name(reason), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int cs_parked_set_reason(cs_conn *c, const cs_model *m, const cs_buf *key, cs_park_reason reason)
{
    sqlite3_stmt *st = prep(c, CS_STMT_PARKED_REASON,
                            "UPDATE _cstack_parked SET reason = ?3 "
                            "WHERE model = ?1 AND pk = ?2 AND reason != ?3");
    if (!st)
        return sqlite3_errcode(c->db);
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, key->data, (int)key->len, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, cs_park_reason_name(reason), -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int cs_parked_del(cs_conn *c, const cs_model *m, const cs_buf *key)
{
    sqlite3_stmt *st =
        prep(c, CS_STMT_PARKED_DEL, "DELETE FROM _cstack_parked WHERE model = ?1 AND pk = ?2");
    if (!st)
        return sqlite3_errcode(c->db);
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, key->data, (int)key->len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int cs_parked_any(cs_conn *c, bool *any)
{
    sqlite3_stmt *st = prep(c, CS_STMT_PARKED_ANY, "SELECT 1 FROM _cstack_parked LIMIT 1");
    if (!st)
        return sqlite3_errcode(c->db);
    int rc = sqlite3_step(st);
    *any = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int cs_parked_decode(const void *row, size_t len, const cs_model *m, cs_cs_value *vals,
                     bool *present)
{
    cs_reader r = {row, len, 0};
    memset(present, 0, m->nfields * sizeof *present);
    while (r.pos < r.len) {
        uint64_t field;
        cs_cs_value v;
        if (cs_rd_varint(&r, &field) || field >= m->nfields || cs_cs_read_value(&r, &v))
            return CSTACK_EINVAL;
        vals[field] = v;
        present[field] = true;
    }
    return 0;
}

int cs_parked_encode(cs_buf *b, const cs_model *m, const cs_cs_value *vals, const bool *present)
{
    cs_buf_reset(b);
    int rc = 0;
    for (size_t f = 0; f < m->nfields && !rc; f++) {
        if (!present[f])
            continue;
        rc = cs_wr_varint(b, f);
        rc = rc ? rc : cs_cs_put_value(b, &vals[f]);
    }
    return rc;
}

/* ---- the app's view of hidden rows ------------------------------------------ */

static int put_field(cs_buf *b, const cs_field *f, const cs_cs_value *v, bool first)
{
    cstack_value cv = cs_cs_value_get(v);
    int rc = cs_buf_puts(b, first ? "" : ",");
    rc = rc ? rc : cs_buf_json_str(b, f->name, strlen(f->name));
    rc = rc ? rc : cs_buf_putc(b, ':');
    return rc ? rc : cs_value_json(b, f->type, &cv);
}

/* {"model":..,"key":{..},"reason":..,"values":{..}} of one parked row. */
static int hidden_json(cs_buf *b, const cs_model *m, sqlite3_stmt *st, cs_cs_value *vals,
                       bool *present)
{
    if (cs_parked_decode(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), m, vals,
                         present))
        return cs_err(CSTACK_ESQLITE, "cannot decode a parked row of %s", m->name);
    const char *why = (const char *)sqlite3_column_text(st, 2);
    int reason = 0;
    for (int r = CS_PARK_UNIQUE; why && r <= CS_PARK_REQUIRED; r++)
        reason = strcmp(why, cs_park_reason_name(r)) == 0 ? r : reason;
    int rc = cs_buf_puts(b, "{\"model\":");
    rc = rc ? rc : cs_buf_json_str(b, m->name, strlen(m->name));
    rc = rc ? rc : cs_buf_puts(b, ",\"key\":{");
    for (size_t i = 0; i < m->npk && !rc; i++)
        rc = present[m->pk[i]] ? put_field(b, &m->fields[m->pk[i]], &vals[m->pk[i]], i == 0)
                               : CSTACK_EINVAL;
    rc = rc ? rc : cs_buf_printf(b, "},\"reason\":\"%s\",\"values\":{", cs_park_reason_name(reason));
    bool first = true;
    for (size_t f = 0; f < m->nfields && !rc; f++) {
        if (!present[f])
            continue;
        rc = put_field(b, &m->fields[f], &vals[f], first);
        first = false;
    }
    return rc ? (rc == CSTACK_EINVAL ? cs_err(CSTACK_ESQLITE, "a parked row of %s lacks its key",
                                              m->name)
                                     : cs_err(CSTACK_ENOMEM, "out of memory"))
              : cs_buf_puts(b, "}}") ? cs_err(CSTACK_ENOMEM, "out of memory") : 0;
}

static int hidden_list(cstack *db, const cstack_schema *schema, int only, cs_buf *out)
{
    cs_conn *c = cs_write_conn(db);
    static const char sql[] = "SELECT model, row, reason FROM _cstack_parked "
                              "WHERE ?1 IS NULL OR model = ?1 ORDER BY model, pk";
    sqlite3_stmt *st = cs_conn_prepare(c, 0, sql, sizeof sql - 1);
    if (!st)
        return cs_err_sqlite(NULL, c->db, sqlite3_errcode(c->db));
    if (only >= 0)
        sqlite3_bind_text(st, 1, schema->models[only].name, -1, SQLITE_STATIC);
    size_t maxf = 1;
    for (size_t i = 0; i < schema->nmodels; i++)
        maxf = schema->models[i].nfields > maxf ? schema->models[i].nfields : maxf;
    cs_cs_value *vals = calloc(maxf, sizeof *vals);
    bool *present = calloc(maxf, sizeof *present);
    int rc = vals && present && !cs_buf_putc(out, '[') ? 0 : cs_err(CSTACK_ENOMEM, "out of memory");
    size_t n = 0;
    int step = SQLITE_DONE;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        /* Rows of a model the schema no longer has cannot be shown. */
        int mi = cs_model_find(schema, (const char *)sqlite3_column_text(st, 0));
        if (mi < 0)
            continue;
        rc = n++ && cs_buf_putc(out, ',') ? cs_err(CSTACK_ENOMEM, "out of memory") : 0;
        rc = rc ? rc : hidden_json(out, &schema->models[mi], st, vals, present);
    }
    if (!rc && step != SQLITE_DONE)
        rc = cs_err_sqlite(NULL, c->db, step);
    sqlite3_reset(st);
    free(vals);
    free(present);
    return rc ? rc : cs_buf_putc(out, ']') ? cs_err(CSTACK_ENOMEM, "out of memory") : 0;
}

int cstack_sync_hidden(cstack *db, const char *model, char **json_out)
{
    cs_enter(db);
    if (!db || !json_out)
        return CSTACK_EMISUSE;
    *json_out = NULL;
    cs_sync *s = NULL;
    int rc = cs_sync_require(db, &s);
    if (rc)
        return rc;
    int only = model ? cs_model_find(s->schema, model) : -1;
    if (model && only < 0)
        return cs_err(CSTACK_EINVAL, "unknown model '%s'", model);
    if ((rc = cs_write_begin(db)))
        return rc;
    cs_buf out = CS_BUF_INIT;
    rc = cs_write_end(db, hidden_list(db, s->schema, only, &out));
    if (!rc && !(*json_out = cs_buf_take(&out)))
        rc = cs_err(CSTACK_ENOMEM, "out of memory");
    cs_buf_free(&out);
    return rc;
}
