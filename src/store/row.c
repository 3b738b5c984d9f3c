/* row.c -- result rows: decoding from SQLite, accessors, JSON.
 *
 * A row is one allocation: the struct, its values, then the bytes of its text
 * and blob values.  Rows of one result share a counted shape (column names
 * and types), so a list of 10k rows carries the names once. */
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "value/value.h"

cs_shape *cs_shape_new(size_t n)
{
    cs_shape *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n = n;
    s->refs = 1;
    s->names = calloc(n ? n : 1, sizeof *s->names);
    s->fields = calloc(n ? n : 1, sizeof *s->fields);
    s->types = calloc(n ? n : 1, sizeof *s->types);
    s->owned = calloc(n ? n : 1, sizeof *s->owned);
    if (!s->names || !s->fields || !s->types || !s->owned) {
        cs_shape_release(s);
        return NULL;
    }
    return s;
}

void cs_shape_release(cs_shape *s)
{
    if (!s || --s->refs > 0)
        return;
    for (size_t i = 0; s->owned && i < s->n; i++)
        free(s->owned[i]);
    free(s->owned);
    free(s->names);
    free(s->fields);
    free(s->types);
    free(s);
}

/* The storage class a column of `type` decodes to. */
static cstack_vtype decoded_type(cs_scalar type, int sqlite_type)
{
    if (sqlite_type == SQLITE_NULL)
        return CSTACK_NULL;
    switch (type) {
    case CS_T_INT:
        return CSTACK_INT;
    case CS_T_FLOAT:
        return CSTACK_FLOAT;
    case CS_T_BOOLEAN:
        return CSTACK_BOOL;
    case CS_T_BYTES:
        return CSTACK_BLOB;
    case CS_T_MODEL: /* aggregates' _count */
        return CSTACK_INT;
    default:
        return CSTACK_TEXT;
    }
}

#define ARENA_CHUNK ((size_t)64 * 1024)

/* Allocates from the list's chunks: a page of rows costs one malloc, and
 * freeing the list frees a handful of chunks rather than every row. */
static void *arena_alloc(cstack_rows *rs, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > rs->left) {
        size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        if (rs->nchunks == rs->capchunks) {
            size_t cap = rs->capchunks ? rs->capchunks * 2 : 8;
            char **c = realloc(rs->chunks, cap * sizeof *c);
            if (!c)
                return NULL;
            rs->chunks = c;
            rs->capchunks = cap;
        }
        char *chunk = malloc(size);
        if (!chunk)
            return NULL;
        rs->chunks[rs->nchunks++] = chunk;
        rs->cur = chunk;
        rs->left = size;
    }
    void *p = rs->cur;
    rs->cur += n;
    rs->left -= n;
    return p;
}

cstack_row *cs_row_from_stmt(cs_shape *shape, sqlite3_stmt *st, cstack_rows *arena)
{
    size_t n = shape->n;
    size_t bytes = 0;
    cstack_vtype kinds[n ? n : 1];
    const void *ptrs[n ? n : 1];
    size_t lens[n ? n : 1];
    /* One pass asks SQLite for each column once; text and blob pointers stay
     * valid until the next step, and no type conversion happens because each
     * is read in its stored class. */
    for (size_t i = 0; i < n; i++) {
        int ct = sqlite3_column_type(st, (int)i);
        kinds[i] = decoded_type(shape->types[i], ct);
        if (kinds[i] == CSTACK_TEXT || kinds[i] == CSTACK_BLOB) {
            ptrs[i] = kinds[i] == CSTACK_TEXT ? (const void *)sqlite3_column_text(st, (int)i)
                                              : sqlite3_column_blob(st, (int)i);
            lens[i] = (size_t)sqlite3_column_bytes(st, (int)i);
            bytes += lens[i] + 1;
        }
    }
    size_t size = sizeof(cstack_row) + n * sizeof(cstack_value) + bytes;
    cstack_row *r = arena ? arena_alloc(arena, size) : malloc(size);
    if (!r)
        return NULL;
    r->shape = shape;
    r->in_arena = arena != NULL;
    if (!arena)
        shape->refs++;
    r->vals = (cstack_value *)(r + 1);
    char *data = (char *)(r->vals + n);
    for (size_t i = 0; i < n; i++) {
        cstack_value *v = &r->vals[i];
        v->type = kinds[i];
        switch (kinds[i]) {
        case CSTACK_NULL:
            v->u.i = 0;
            break;
        case CSTACK_INT:
            v->u.i = sqlite3_column_int64(st, (int)i);
            break;
        case CSTACK_BOOL:
            v->u.b = sqlite3_column_int64(st, (int)i) != 0;
            break;
        case CSTACK_FLOAT:
            v->u.f = sqlite3_column_double(st, (int)i);
            break;
        case CSTACK_TEXT:
        case CSTACK_BLOB:
            if (lens[i])
                memcpy(data, ptrs[i], lens[i]);
            data[lens[i]] = 0;
            v->u.s.p = data;
            v->u.s.n = lens[i];
            data += lens[i] + 1;
            break;
        }
    }
    return r;
}

cstack_row *cs_row_copy(const cstack_row *src)
{
    size_t n = src->shape->n, bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (src->vals[i].type == CSTACK_TEXT || src->vals[i].type == CSTACK_BLOB)
            bytes += src->vals[i].u.s.n + 1;
    cstack_row *r = malloc(sizeof *r + n * sizeof(cstack_value) + bytes);
    if (!r)
        return NULL;
    r->shape = src->shape;
    r->shape->refs++;
    r->in_arena = false;
    r->vals = (cstack_value *)(r + 1);
    char *data = (char *)(r->vals + n);
    for (size_t i = 0; i < n; i++) {
        r->vals[i] = src->vals[i];
        if (src->vals[i].type == CSTACK_TEXT || src->vals[i].type == CSTACK_BLOB) {
            size_t len = src->vals[i].u.s.n;
            if (len)
                memcpy(data, src->vals[i].u.s.p, len);
            data[len] = 0;
            r->vals[i].u.s.p = data;
            data += len + 1;
        }
    }
    return r;
}

size_t cstack_row_size(const cstack_row *row)
{
    return row ? row->shape->n : 0;
}

const char *cstack_row_name(const cstack_row *row, size_t i)
{
    return row && i < row->shape->n ? row->shape->names[i] : NULL;
}

cstack_value cstack_row_value(const cstack_row *row, size_t i)
{
    if (!row || i >= row->shape->n)
        return cstack_v_null();
    return row->vals[i];
}

int cstack_row_get(const cstack_row *row, const char *field, cstack_value *out)
{
    if (!row || !field)
        return CSTACK_EMISUSE;
    for (size_t i = 0; i < row->shape->n; i++) {
        if (strcmp(row->shape->names[i], field) == 0) {
            if (out)
                *out = row->vals[i];
            return 0;
        }
    }
    return CSTACK_ENOTFOUND;
}

int cs_row_json(cs_buf *b, const cstack_row *row)
{
    int rc = cs_buf_putc(b, '{');
    for (size_t i = 0; !rc && i < row->shape->n; i++) {
        const char *name = row->shape->names[i];
        if (i)
            rc = cs_buf_putc(b, ',');
        if (!rc)
            rc = cs_buf_json_str(b, name, strlen(name));
        if (!rc)
            rc = cs_buf_putc(b, ':');
        if (!rc)
            rc = cs_value_json(b, row->shape->types[i], &row->vals[i]);
    }
    return rc ? rc : cs_buf_putc(b, '}');
}

char *cstack_row_json(const cstack_row *row)
{
    if (!row)
        return NULL;
    cs_buf b = CS_BUF_INIT;
    if (cs_row_json(&b, row)) {
        cs_buf_free(&b);
        return NULL;
    }
    return cs_buf_take(&b);
}

void cstack_row_free(cstack_row *row)
{
    /* Rows of a list belong to it (cstack_rows_free). */
    if (!row || row->in_arena)
        return;
    cs_shape_release(row->shape);
    free(row);
}

int cs_rows_push(cstack_rows *rs, cstack_row *r)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        cstack_row **p = realloc(rs->rows, cap * sizeof *p);
        if (!p)
            return CSTACK_ENOMEM;
        rs->rows = p;
        rs->cap = cap;
    }
    rs->rows[rs->n++] = r;
    return 0;
}

size_t cstack_rows_count(const cstack_rows *rows)
{
    return rows ? rows->n : 0;
}

const cstack_row *cstack_rows_get(const cstack_rows *rows, size_t i)
{
    return rows && i < rows->n ? rows->rows[i] : NULL;
}

void cstack_rows_free(cstack_rows *rows)
{
    if (!rows)
        return;
    for (size_t i = 0; i < rows->n; i++)
        cstack_row_free(rows->rows[i]);
    for (size_t i = 0; i < rows->nchunks; i++)
        free(rows->chunks[i]);
    free(rows->chunks);
    cs_shape_release(rows->shape);
    free(rows->rows);
    free(rows);
}
