/* parked.c -- rows hidden by a merge conflict.
 *
 * A row that is alive in the merged state but cannot be visible -- it loses a
 * unique constraint to another row, its parent is not visible, or it lacks a
 * required field because only part of it has arrived -- is kept in
 * _cstack_parked instead of its table.  Parking is a local visibility
 * decision, not a write: the clock metadata does not change, so every
 * replica reaches the same decision from the same merged state, and the row
 * returns as soon as the conflict is gone.
 *
 *   _cstack_parked(model TEXT, pk BLOB, row BLOB)
 *   pk  := value*npk                    (changeset value encoding)
 *   row := (varint(field) value)*       (every column the row has)
 */
#include <stdlib.h>
#include <string.h>

#include "sync/parked.h"

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

int cs_parked_put(cs_conn *c, const cs_model *m, const cs_buf *key, const cs_buf *row)
{
    sqlite3_stmt *st = prep(c, CS_STMT_PARKED_PUT,
                            "INSERT INTO _cstack_parked(model, pk, row) VALUES (?1, ?2, ?3) "
                            "ON CONFLICT(model, pk) DO UPDATE SET row = excluded.row");
    if (!st)
        return sqlite3_errcode(c->db);
    sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, key->data, (int)key->len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, row->data ? row->data : "", (int)row->len, SQLITE_STATIC);
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
