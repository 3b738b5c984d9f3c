/*
 * store_pg_copy.c -- the working copy's tables as the PostgreSQL store sees
 * them (docs/postgres.md): a catalog of every table with its key, a row's
 * record (its values in the changeset encoding, in column order), whole-copy
 * save and load, and applying the rows of a log entry.
 *
 * A row's key is its primary-key values, or its rowid where the table has an
 * INTEGER PRIMARY KEY (the rowid itself) or no key at all (the rowid is then
 * also the record's first value, so a copy gets the same rowids).
 *
 *   log entry := record*
 *   record    := varint(len) table u8(op) varint(len) key [varint(len) row]
 *                (op PG_REC_PUT with the row, PG_REC_DEL without;
 *                PG_REC_COLS: `key` is the column names, varint(len) name*)
 *
 * Servers' copies of one table need not have the same columns in the same
 * order: a copy migrated in place has an added column last, one built from
 * the new schema has it where the schema puts it, and during a rolling
 * upgrade a server of the older schema lacks it.  So an entry names the
 * columns of each table before its first row (PG_REC_COLS), and the reader
 * maps them by name: a column it lacks is dropped; one the writer lacks
 * keeps its value (an existing row) or its default (a new row).  A table
 * the reader lacks (a model only a newer schema has) is skipped.  The
 * reader runs the plain statements when the columns are its own. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/store_pg_int.h"
#include "sync/varint.h"

/* ---- the catalog ------------------------------------------------------------- */

static void table_free(pg_table *t)
{
    free(t->name);
    free(t->sql_get);
    free(t->sql_put);
    free(t->sql_del);
    free(t->sql_all);
    for (size_t i = 0; t->names && i < t->nvals; i++)
        free(t->names[i]);
    free(t->names);
}

void pg_catalog_free(cs_pg *pg)
{
    for (size_t i = 0; i < pg->ntables; i++)
        table_free(&pg->tables[i]);
    free(pg->tables);
    pg->tables = NULL;
    pg->ntables = 0;
}

pg_table *pg_table_find(cs_pg *pg, const char *name)
{
    for (size_t i = 0; i < pg->ntables; i++)
        if (strcmp(pg->tables[i].name, name) == 0)
            return &pg->tables[i];
    return NULL;
}

/* Whether the table has an index made for its primary key (a WITHOUT ROWID
 * table, or a key that is not an INTEGER PRIMARY KEY). */
static bool has_pk_index(sqlite3 *conn, const char *name)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(conn, "SELECT 1 FROM pragma_index_list(?1) WHERE origin = 'pk'", -1,
                           &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

/* `"c1" = ?1 AND "c2" = ?2` of the key, or `rowid = ?1`. */
static int key_where(cs_buf *b, const pg_table *t, char *const *cols)
{
    if (t->by_rowid)
        return cs_buf_puts(b, " WHERE rowid = ?1");
    int rc = cs_buf_puts(b, " WHERE ");
    for (size_t i = 0; !rc && i < t->npk; i++) {
        rc = i ? cs_buf_puts(b, " AND ") : 0;
        rc = rc ? rc : cs_buf_ident(b, cols[t->pkcid[i]]);
        rc = rc ? rc : cs_buf_printf(b, " = ?%zu", i + 1);
    }
    return rc;
}

/* The statements of a table whose columns are `cols`. */
static int table_sql(pg_table *t, char *const *cols, size_t ncols)
{
    cs_buf list = CS_BUF_INIT, b = CS_BUF_INIT;
    int rc = t->rowid_col ? cs_buf_puts(&list, "rowid") : 0;
    for (size_t i = 0; !rc && i < ncols; i++) {
        rc = i || t->rowid_col ? cs_buf_puts(&list, ", ") : 0;
        rc = rc ? rc : cs_buf_ident(&list, cols[i]);
    }
    t->nvals = ncols + t->rowid_col;
    rc = rc ? rc : cs_buf_printf(&b, "SELECT %s FROM ", list.data);
    rc = rc ? rc : cs_buf_ident(&b, t->name);
    rc = rc ? rc : key_where(&b, t, cols);
    t->sql_get = rc ? NULL : cs_buf_take(&b);
    rc = rc ? rc : cs_buf_puts(&b, "INSERT OR REPLACE INTO ");
    rc = rc ? rc : cs_buf_ident(&b, t->name);
    rc = rc ? rc : cs_buf_printf(&b, "(%s) VALUES (", list.data);
    for (size_t i = 0; !rc && i < t->nvals; i++)
        rc = cs_buf_printf(&b, "%s?%zu", i ? ", " : "", i + 1);
    rc = rc ? rc : cs_buf_putc(&b, ')');
    t->sql_put = rc ? NULL : cs_buf_take(&b);
    rc = rc ? rc : cs_buf_puts(&b, "DELETE FROM ");
    rc = rc ? rc : cs_buf_ident(&b, t->name);
    rc = rc ? rc : key_where(&b, t, cols);
    t->sql_del = rc ? NULL : cs_buf_take(&b);
    rc = rc ? rc : cs_buf_puts(&b, t->by_rowid ? "SELECT rowid" : "SELECT ");
    for (size_t i = 0; !rc && !t->by_rowid && i < t->npk; i++) {
        rc = i ? cs_buf_puts(&b, ", ") : 0;
        rc = rc ? rc : cs_buf_ident(&b, cols[t->pkcid[i]]);
    }
    rc = rc ? rc : cs_buf_printf(&b, ", %s FROM ", list.data);
    rc = rc ? rc : cs_buf_ident(&b, t->name);
    t->sql_all = rc ? NULL : cs_buf_take(&b);
    cs_buf_free(&list);
    cs_buf_free(&b);
    return rc;
}

/* Reads one table's columns and key. */
static int table_load(cs_pg *pg, sqlite3 *conn, pg_table *t)
{
    sqlite3_stmt *st = NULL;
    char *cols[256];
    size_t ncols = 0;
    bool integer_key = false;
    int rc = sqlite3_prepare_v2(conn, "SELECT name, pk, type FROM pragma_table_info(?1)", -1, &st,
                                NULL) == SQLITE_OK
                 ? 0
                 : CSTACK_ESQLITE;
    if (!rc)
        sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        int pk = sqlite3_column_int(st, 1);
        if (ncols == sizeof cols / sizeof cols[0] || pk > PG_MAX_PK) {
            rc = CSTACK_ETOOBIG;
            break;
        }
        if (pk > 0) {
            t->pkcid[pk - 1] = (int)ncols;
            t->npk = (size_t)pk > t->npk ? (size_t)pk : t->npk;
            const char *type = (const char *)sqlite3_column_text(st, 2);
            integer_key = type && strcasecmp(type, "INTEGER") == 0;
        }
        if (!(cols[ncols++] = cs_strdup((const char *)sqlite3_column_text(st, 0))))
            rc = CSTACK_ENOMEM;
    }
    sqlite3_finalize(st);
    t->by_rowid = t->npk == 0 || (t->npk == 1 && integer_key && !has_pk_index(conn, t->name));
    t->rowid_col = t->npk == 0;
    rc = rc ? rc : table_sql(t, cols, ncols);
    /* The record's names: the columns, after "rowid" when it leads. */
    if (!rc && !(t->names = calloc(t->nvals, sizeof *t->names)))
        rc = CSTACK_ENOMEM;
    if (!rc && t->rowid_col && !(t->names[0] = cs_strdup("rowid")))
        rc = CSTACK_ENOMEM;
    for (size_t i = 0; i < ncols; i++) {
        if (!rc)
            t->names[i + t->rowid_col] = cols[i];
        else
            free(cols[i]);
    }
    t->model = -1;
    int model = -1;
    if (!rc && cs_pg_typed_table(pg->typed, t->name, &model))
        t->model = model;
    return rc;
}

int pg_catalog_load(cs_pg *pg, cs_srv_err *err)
{
    pg_catalog_free(pg);
    sqlite3 *conn = cs_write_conn(pg->inner->db)->db;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn,
                                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT "
                                "LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '" PG_LOCAL_TABLE
                                "' ORDER BY name",
                                -1, &st, NULL) == SQLITE_OK
                 ? 0
                 : CSTACK_ESQLITE;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        pg_table *t = realloc(pg->tables, (pg->ntables + 1) * sizeof *t);
        if (!t) {
            rc = CSTACK_ENOMEM;
            break;
        }
        pg->tables = t;
        t = &pg->tables[pg->ntables];
        memset(t, 0, sizeof *t);
        t->name = cs_strdup((const char *)sqlite3_column_text(st, 0));
        pg->ntables++;
        rc = t->name ? table_load(pg, conn, t) : CSTACK_ENOMEM;
    }
    sqlite3_finalize(st);
    if (rc)
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, "cannot read the working copy's tables");
    return rc;
}

/* ---- records ------------------------------------------------------------------ */

/* Binds the values encoded in p[0..len) as ?1.., at most `max`; *n how many. */
static int bind_values(sqlite3_stmt *st, const unsigned char *p, size_t len, size_t max,
                       size_t *n)
{
    cs_reader r = {p, len, 0};
    size_t i = 0;
    while (r.pos < r.len) {
        cs_cs_value v;
        if (i == max || cs_cs_read_value(&r, &v))
            return CSTACK_ESQLITE;
        cs_cs_bind(st, (int)++i, &v);
    }
    if (n)
        *n = i;
    return 0;
}

/* The statement of `sql` on the write connection, cached. */
static sqlite3_stmt *stmt_of(cs_pg *pg, const char *sql)
{
    return cs_conn_prepare(cs_write_conn(pg->inner->db), 0, sql, strlen(sql));
}

int pg_row_record(cs_pg *pg, const pg_table *t, const unsigned char *key, size_t keylen,
                  cs_buf *out, bool *exists)
{
    *exists = false;
    sqlite3_stmt *st = stmt_of(pg, t->sql_get);
    if (!st)
        return cs_err(CSTACK_ESQLITE, "reading %s: %s", t->name,
                      sqlite3_errmsg(cs_write_conn(pg->inner->db)->db));
    int rc = bind_values(st, key, keylen, PG_MAX_PK, NULL);
    int step = rc ? SQLITE_ERROR : sqlite3_step(st);
    if (step == SQLITE_ROW) {
        *exists = true;
        for (size_t i = 0; !rc && i < t->nvals; i++) {
            cs_cs_value v;
            cs_cs_value_from_stmt(&v, st, (int)i);
            rc = cs_cs_put_value(out, &v);
        }
    } else if (step != SQLITE_DONE)
        rc = cs_err(CSTACK_ESQLITE, "reading %s: %s", t->name,
                    sqlite3_errmsg(cs_write_conn(pg->inner->db)->db));
    sqlite3_reset(st);
    return rc;
}

/* Writes (put) or deletes one row of the copy from its key and record. */
static int row_write(cs_pg *pg, const pg_table *t, int op, const unsigned char *key, size_t keylen,
                     const unsigned char *row, size_t rowlen)
{
    sqlite3_stmt *st = stmt_of(pg, op == PG_REC_PUT ? t->sql_put : t->sql_del);
    if (!st)
        return CSTACK_ESQLITE;
    size_t n = 0;
    int rc = op == PG_REC_PUT ? bind_values(st, row, rowlen, t->nvals, &n)
                              : bind_values(st, key, keylen, PG_MAX_PK, NULL);
    /* A record written before a column was added lacks its last values. */
    for (size_t i = n; !rc && op == PG_REC_PUT && i < t->nvals; i++)
        sqlite3_bind_null(st, (int)i + 1);
    if (!rc && sqlite3_step(st) != SQLITE_DONE)
        rc = CSTACK_ESQLITE;
    sqlite3_reset(st);
    return rc;
}

int pg_layout_record(cs_buf *log, const pg_table *t)
{
    cs_buf names = CS_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; !rc && i < t->nvals; i++) {
        size_t n = strlen(t->names[i]);
        rc = cs_wr_varint(&names, n);
        rc = rc ? rc : cs_buf_append(&names, t->names[i], n);
    }
    size_t nlen = strlen(t->name);
    rc = rc ? rc : cs_wr_varint(log, nlen);
    rc = rc ? rc : cs_buf_append(log, t->name, nlen);
    rc = rc ? rc : cs_buf_putc(log, PG_REC_COLS);
    rc = rc ? rc : cs_wr_varint(log, names.len);
    rc = rc ? rc : cs_buf_append(log, names.data, names.len);
    cs_buf_free(&names);
    return rc;
}

/* How one table's records in an entry map onto the copy's columns. */
typedef struct layout {
    const pg_table *t;
    size_t n;  /* the writer's values per record */
    int *to;   /* writer value i -> the copy's column, or -1: dropped */
    char *sql; /* the UPSERT of the mapped columns; NULL: they are t's own */
} layout;

typedef struct layouts {
    layout *v;
    size_t n;
} layouts;

static void layouts_free(layouts *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        free(ls->v[i].to);
        free(ls->v[i].sql);
    }
    free(ls->v);
}

static layout *layout_of(layouts *ls, const pg_table *t)
{
    for (size_t i = 0; i < ls->n; i++)
        if (ls->v[i].t == t)
            return &ls->v[i];
    return NULL;
}

/* INSERT INTO t (the mapped columns) VALUES (?1..) ON CONFLICT (key) DO
 * UPDATE SET each mapped non-key column: the columns the writer lacks keep
 * their values, or take their defaults in a new row. */
static int layout_sql(layout *l)
{
    const pg_table *t = l->t;
    bool key[256] = {false};
    for (size_t i = 0; !t->rowid_col && i < t->npk; i++)
        key[t->pkcid[i]] = true;
    cs_buf cols = CS_BUF_INIT, set = CS_BUF_INIT, b = CS_BUF_INIT;
    size_t k = 0, nkey = 0;
    int rc = 0;
    for (size_t i = 0; !rc && i < l->n; i++) {
        if (l->to[i] < 0)
            continue;
        const char *name = t->names[l->to[i]];
        rc = cs_buf_puts(&cols, k++ ? ", " : "");
        rc = rc ? rc : cs_buf_ident(&cols, name);
        if (!rc && (t->rowid_col || key[l->to[i]])) {
            nkey++;
            continue;
        }
        rc = rc ? rc : cs_buf_puts(&set, set.len ? ", " : "");
        rc = rc ? rc : cs_buf_ident(&set, name);
        rc = rc ? rc : cs_buf_puts(&set, " = excluded.");
        rc = rc ? rc : cs_buf_ident(&set, name);
    }
    /* Only the key's columns decide which row a record is: without them
     * (a table keyed by its rowid alone) the plain statements must do. */
    if (!rc && (t->rowid_col || nkey != t->npk))
        rc = CSTACK_ESQLITE;
    rc = rc ? rc : cs_buf_puts(&b, "INSERT INTO ");
    rc = rc ? rc : cs_buf_ident(&b, t->name);
    rc = rc ? rc : cs_buf_printf(&b, " (%s) VALUES (", cols.data);
    for (size_t i = 0; !rc && i < k; i++)
        rc = cs_buf_printf(&b, "%s?%zu", i ? ", " : "", i + 1);
    rc = rc ? rc : cs_buf_puts(&b, ") ON CONFLICT DO ");
    rc = rc ? rc : cs_buf_puts(&b, set.len ? "UPDATE SET " : "NOTHING");
    rc = rc || !set.len ? rc : cs_buf_puts(&b, set.data);
    l->sql = rc ? NULL : cs_buf_take(&b);
    cs_buf_free(&cols);
    cs_buf_free(&set);
    cs_buf_free(&b);
    return rc;
}

/* Reads a PG_REC_COLS record of table t: how its later records map. */
static int layout_read(layouts *ls, const pg_table *t, const unsigned char *p, size_t len)
{
    layout *l = layout_of(ls, t);
    if (!l) {
        layout *v = realloc(ls->v, (ls->n + 1) * sizeof *v);
        if (!v)
            return CSTACK_ENOMEM;
        ls->v = v;
        l = &v[ls->n++];
    } else {
        free(l->to);
        free(l->sql);
    }
    memset(l, 0, sizeof *l);
    l->t = t;
    cs_reader r = {p, len, 0};
    bool own = true;
    size_t cap = 0;
    while (r.pos < r.len) {
        uint64_t n;
        const unsigned char *name;
        if (cs_rd_varint(&r, &n) || cs_rd_bytes(&r, n, &name) || l->n == 4096)
            return CSTACK_ESQLITE;
        if (l->n == cap) {
            cap = cap ? cap * 2 : 16;
            int *to = realloc(l->to, cap * sizeof *to);
            if (!to)
                return CSTACK_ENOMEM;
            l->to = to;
        }
        int at = -1;
        for (size_t j = 0; at < 0 && j < t->nvals; j++)
            if (strlen(t->names[j]) == n && memcmp(t->names[j], name, n) == 0)
                at = (int)j;
        own = own && at == (int)l->n;
        l->to[l->n++] = at;
    }
    return own && l->n == t->nvals ? 0 : layout_sql(l);
}

/* Writes a record mapped by its layout. */
static int row_write_mapped(cs_pg *pg, const layout *l, const unsigned char *row, size_t rowlen)
{
    sqlite3_stmt *st = stmt_of(pg, l->sql);
    if (!st)
        return CSTACK_ESQLITE;
    cs_reader r = {row, rowlen, 0};
    int rc = 0, k = 0;
    for (size_t i = 0; !rc && r.pos < r.len; i++) {
        cs_cs_value v;
        if (i == l->n || cs_cs_read_value(&r, &v))
            rc = CSTACK_ESQLITE;
        else if (l->to[i] >= 0)
            cs_cs_bind(st, ++k, &v);
    }
    if (!rc && sqlite3_step(st) != SQLITE_DONE)
        rc = CSTACK_ESQLITE;
    sqlite3_reset(st);
    return rc;
}

/* Applies one record of an entry. */
static int apply_record(cs_pg *pg, layouts *ls, const pg_table *t, int op,
                        const unsigned char *key, size_t klen, const unsigned char *row,
                        size_t rlen)
{
    if (op == PG_REC_COLS)
        return layout_read(ls, t, key, klen);
    const layout *l = op == PG_REC_PUT ? layout_of(ls, t) : NULL;
    if (l && l->sql)
        return row_write_mapped(pg, l, row, rlen);
    return row_write(pg, t, op, key, klen, row, rlen);
}

int pg_apply_entry(cs_pg *pg, const unsigned char *p, size_t len, cs_srv_err *err)
{
    cs_reader r = {p, len, 0};
    layouts ls = {0};
    int rc = 0;
    while (!rc && r.pos < r.len) {
        uint64_t nlen, klen, rlen = 0;
        const unsigned char *name, *op, *key, *row = NULL;
        if (cs_rd_varint(&r, &nlen) || cs_rd_bytes(&r, nlen, &name) || cs_rd_bytes(&r, 1, &op) ||
            cs_rd_varint(&r, &klen) || cs_rd_bytes(&r, klen, &key) ||
            (*op == PG_REC_PUT && (cs_rd_varint(&r, &rlen) || cs_rd_bytes(&r, rlen, &row))) ||
            *op < PG_REC_PUT || *op > PG_REC_COLS) {
            cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ESQLITE, "a corrupt PostgreSQL log entry");
            rc = CSTACK_ESQLITE;
            break;
        }
        char tname[256];
        snprintf(tname, sizeof tname, "%.*s", (int)nlen, (const char *)name);
        const pg_table *t = pg_table_find(pg, tname);
        if (!t) /* a model only a newer schema has: not served here */
            continue;
        if ((rc = apply_record(pg, &ls, t, *op, key, klen, row, rlen))) {
            char msg[400];
            snprintf(msg, sizeof msg, "applying a log entry to table %s: %s", tname,
                     sqlite3_errmsg(cs_write_conn(pg->inner->db)->db));
            cs_srv_err_set(err, CS_SRV_INTERNAL, rc, msg);
        }
    }
    layouts_free(&ls);
    return rc;
}

/* ---- the applied seq ------------------------------------------------------------ */

int pg_local_get(cs_pg *pg, int64_t *seq)
{
    *seq = 0;
    sqlite3_stmt *st = stmt_of(pg, "SELECT seq FROM " PG_LOCAL_TABLE " WHERE k = 1");
    if (!st)
        return CSTACK_ESQLITE;
    if (sqlite3_step(st) == SQLITE_ROW)
        *seq = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

int pg_local_set(cs_pg *pg, int64_t seq)
{
    sqlite3_stmt *st = stmt_of(pg, "INSERT OR REPLACE INTO " PG_LOCAL_TABLE "(k, seq) VALUES (1, ?1)");
    if (!st)
        return CSTACK_ESQLITE;
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : CSTACK_ESQLITE;
    sqlite3_reset(st);
    return rc;
}

/* ---- side rows in batches --------------------------------------------------------- */

#define SIDE_BATCH_ROWS 2000
#define SIDE_BATCH_BYTES ((size_t)4 << 20)
#define OID_TEXT 25
#define OID_BYTEA 17

static int put_be32(cs_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    return cs_buf_append(b, x, 4);
}

static int elem(cs_buf *b, const void *p, size_t n)
{
    int rc = put_be32(b, (uint32_t)n);
    return rc ? rc : cs_buf_append(b, p, n);
}

/* PostgreSQL's binary form of a one-dimensional array of `n` elements. */
static int array_of(cs_buf *out, uint32_t oid, size_t n, const cs_buf *elems)
{
    int rc = put_be32(out, 1);
    rc = rc ? rc : put_be32(out, 0);
    rc = rc ? rc : put_be32(out, oid);
    rc = rc ? rc : put_be32(out, (uint32_t)n);
    rc = rc ? rc : put_be32(out, 1);
    return rc ? rc : cs_buf_append(out, elems->data, elems->len);
}

int pg_side_flush(cs_pg *pg, pg_side_batch *b, cs_srv_err *err)
{
    if (b->n == 0)
        return 0;
    static const char put[] =
        "INSERT INTO _cstack_pg_side(tbl, key, row) SELECT * FROM unnest($1::text[], "
        "$2::bytea[], $3::bytea[]) ON CONFLICT (tbl, key) DO UPDATE SET row = excluded.row";
    static const char del[] = "DELETE FROM _cstack_pg_side s USING unnest($1::text[], "
                              "$2::bytea[]) AS d(tbl, key) WHERE s.tbl = d.tbl AND s.key = d.key";
    cs_buf a[3] = {CS_BUF_INIT, CS_BUF_INIT, CS_BUF_INIT};
    int rc = array_of(&a[0], OID_TEXT, b->n, &b->tbl);
    rc = rc ? rc : array_of(&a[1], OID_BYTEA, b->n, &b->key);
    rc = rc || b->deletes ? rc : array_of(&a[2], OID_BYTEA, b->n, &b->row);
    if (!rc) {
        const char *vals[3] = {a[0].data, a[1].data, a[2].data};
        int lens[3] = {(int)a[0].len, (int)a[1].len, (int)a[2].len};
        int fmts[3] = {1, 1, 1};
        Oid types[3] = {1009, 1001, 1001};
        PGresult *r = PQexecParams(pg->conn, b->deletes ? del : put, b->deletes ? 2 : 3, types,
                                   vals, lens, fmts, 0);
        rc = cs_pg_check(pg->conn, r, PGRES_COMMAND_OK, "writing side rows", err);
        PQclear(r);
    } else
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, NULL);
    for (int i = 0; i < 3; i++)
        cs_buf_free(&a[i]);
    cs_buf_reset(&b->tbl);
    cs_buf_reset(&b->key);
    cs_buf_reset(&b->row);
    b->n = 0;
    return rc;
}

int pg_side_add(cs_pg *pg, pg_side_batch *b, const char *tbl, const void *key, size_t keylen,
                const void *row, size_t rowlen, cs_srv_err *err)
{
    int rc = elem(&b->tbl, tbl, strlen(tbl));
    rc = rc ? rc : elem(&b->key, key, keylen);
    rc = rc || b->deletes ? rc : elem(&b->row, row, rowlen);
    if (rc) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, rc, NULL);
        return rc;
    }
    b->n++;
    if (b->n >= SIDE_BATCH_ROWS || b->tbl.len + b->key.len + b->row.len >= SIDE_BATCH_BYTES)
        return pg_side_flush(pg, b, err);
    return 0;
}

void pg_side_free(pg_side_batch *b)
{
    cs_buf_free(&b->tbl);
    cs_buf_free(&b->key);
    cs_buf_free(&b->row);
}

/* ---- the whole copy ------------------------------------------------------------------ */

/* Every row of a side table into PostgreSQL (after deleting what it held). */
static int save_table(cs_pg *pg, const pg_table *t, cs_srv_err *err)
{
    const char *p[1] = {t->name};
    PGresult *r = PQexecParams(pg->conn, "DELETE FROM _cstack_pg_side WHERE tbl = $1", 1, NULL, p,
                               NULL, NULL, 0);
    int rc = cs_pg_check(pg->conn, r, PGRES_COMMAND_OK, "clearing side rows", err);
    PQclear(r);
    sqlite3_stmt *st = rc ? NULL : stmt_of(pg, t->sql_all);
    if (!rc && !st) {
        cs_srv_err_set(err, CS_SRV_INTERNAL, CSTACK_ESQLITE, "reading the working copy");
        return CSTACK_ESQLITE;
    }
    size_t nkey = t->by_rowid ? 1 : t->npk;
    pg_side_batch b = {0};
    cs_buf key = CS_BUF_INIT, row = CS_BUF_INIT;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        cs_buf_reset(&key);
        cs_buf_reset(&row);
        for (size_t i = 0; !rc && i < nkey + t->nvals; i++) {
            cs_cs_value v;
            cs_cs_value_from_stmt(&v, st, (int)i);
            rc = cs_cs_put_value(i < nkey ? &key : &row, &v);
        }
        rc = rc ? rc : pg_side_add(pg, &b, t->name, key.data, key.len, row.data, row.len, err);
    }
    if (st)
        sqlite3_reset(st);
    rc = rc ? rc : pg_side_flush(pg, &b, err);
    pg_side_free(&b);
    cs_buf_free(&key);
    cs_buf_free(&row);
    return rc;
}

int pg_save_all(cs_pg *pg, cs_srv_err *err)
{
    sqlite3 *conn = cs_write_conn(pg->inner->db)->db;
    int rc = 0;
    for (size_t i = 0; !rc && i < pg->ntables; i++) {
        const pg_table *t = &pg->tables[i];
        rc = t->model >= 0 ? cs_pg_typed_save(pg->typed, conn, t->model, err)
                           : save_table(pg, t, err);
    }
    return rc;
}

/* The side rows of one table from PostgreSQL into the (empty) copy. */
static int load_table(cs_pg *pg, const pg_table *t, cs_srv_err *err)
{
    const char *p[1] = {t->name};
    PGresult *r = PQexecParams(pg->conn, "SELECT key, row FROM _cstack_pg_side WHERE tbl = $1", 1,
                               NULL, p, NULL, NULL, 1);
    int rc = cs_pg_check(pg->conn, r, PGRES_TUPLES_OK, "reading side rows", err);
    for (int i = 0; !rc && i < PQntuples(r); i++) {
        rc = row_write(pg, t, PG_REC_PUT, NULL, 0, (const unsigned char *)PQgetvalue(r, i, 1),
                       (size_t)PQgetlength(r, i, 1));
        if (rc) {
            char msg[400];
            snprintf(msg, sizeof msg, "loading table %s: %s", t->name,
                     sqlite3_errmsg(cs_write_conn(pg->inner->db)->db));
            cs_srv_err_set(err, CS_SRV_INTERNAL, rc, msg);
        }
    }
    PQclear(r);
    return rc;
}

int pg_load_all(cs_pg *pg, cs_srv_err *err)
{
    sqlite3 *conn = cs_write_conn(pg->inner->db)->db;
    int rc = 0;
    for (size_t i = 0; !rc && i < pg->ntables; i++) {
        const pg_table *t = &pg->tables[i];
        cs_buf sql = CS_BUF_INIT;
        rc = cs_buf_puts(&sql, "DELETE FROM ");
        rc = rc ? rc : cs_buf_ident(&sql, t->name);
        if (!rc && sqlite3_exec(conn, sql.data, NULL, NULL, NULL) != SQLITE_OK)
            rc = CSTACK_ESQLITE;
        cs_buf_free(&sql);
        if (rc) {
            cs_srv_err_set(err, CS_SRV_INTERNAL, rc, "cannot empty the working copy");
            break;
        }
        rc = t->model >= 0 ? cs_pg_typed_load(pg->typed, conn, t->model, err)
                           : load_table(pg, t, err);
    }
    return rc;
}
