/*
 * changeset.c -- the sync wire format.
 *
 * A changeset carries the state of every row that changed in a range of the
 * origin's versions: per row its causal length and the changed columns, each
 * with the clock and site that wrote it.  It is state, not a log: applying
 * it merges (sync/apply.c), so order, duplication and replay do not matter.
 * Chosen over JSON by measurement (docs/sync-protocol.md): binary varints
 * keep a 100k-row, 6-column changeset near the size of the data itself and
 * decode without allocation.
 *
 *   changeset := header row*
 *   header    := "CSCS" u8(format = 1) hash[32] origin[16]
 *                varint(since) varint(until) varint(nsites) site[16]*nsites
 *                varint(nrows)
 *   row       := varint(model) varint(ver) varint(cl) value*npk
 *                varint(ncols) col*ncols
 *   col       := varint(field) u64(hlc) varint(site) value
 *   value     := u8(0)                          null
 *              | u8(1) varint(zigzag(int64))    integer
 *              | u8(2) u64(ieee754 bits)        float
 *              | u8(3) varint(len) bytes        text (UTF-8)
 *              | u8(4) varint(len) bytes        blob
 *
 * hash is the schema hash (binary SHA-256); `model` and `field` index the
 * schema's models and fields (the hash guarantees both sides agree); `site`
 * indexes the header's site table; npk is the model's primary-key size; u64
 * is little-endian.  `cl` is the causal length: odd alive, even deleted; 0
 * is a drop sent by a server (the row stopped being visible to the reader).
 *
 * Every count and length is checked against the bytes that remain before
 * anything is read or allocated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/changeset.h"
#include "util/hex.h"

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return CSTACK_EINVAL;                                                                      \
    } while (0)

int cs_cs_read_header(cs_reader *r, cs_cs_header *h, char *err, size_t errlen)
{
    const unsigned char *p;
    uint64_t since, until, nsites;
    memset(h, 0, sizeof *h);
    if (cs_rd_bytes(r, 5, &p) || memcmp(p, CS_CS_MAGIC, 4) != 0)
        FAIL("not a cstack changeset (bad magic)");
    if (p[4] != CS_CS_FORMAT)
        FAIL("unsupported changeset format %u (this build reads %d)", p[4], CS_CS_FORMAT);
    if (cs_rd_bytes(r, 32, &p))
        FAIL("changeset truncated in its header");
    cs_hex_encode(p, 32, h->hash);
    if (cs_rd_bytes(r, CS_SITE_LEN, &p))
        FAIL("changeset truncated in its header");
    memcpy(h->origin, p, CS_SITE_LEN);
    if (cs_rd_varint(r, &since) || cs_rd_varint(r, &until) || since > INT64_MAX ||
        until > INT64_MAX || cs_rd_varint(r, &nsites))
        FAIL("changeset truncated in its header");
    if (nsites > CS_CS_MAX_SITES || nsites * CS_SITE_LEN > r->len - r->pos)
        FAIL("changeset declares %llu sites, more than it holds", (unsigned long long)nsites);
    if (cs_rd_bytes(r, (size_t)nsites * CS_SITE_LEN, &h->sites) || cs_rd_varint(r, &h->nrows))
        FAIL("changeset truncated in its header");
    /* Each row takes at least 4 bytes: a count larger than that is a lie. */
    if (h->nrows > (r->len - r->pos) / 4 + 1)
        FAIL("changeset declares %llu rows, more than it holds", (unsigned long long)h->nrows);
    h->since = (int64_t)since;
    h->until = (int64_t)until;
    h->nsites = (size_t)nsites;
    return 0;
}

int cs_cs_read_value(cs_reader *r, cs_cs_value *v)
{
    const unsigned char *p;
    uint64_t x;
    memset(v, 0, sizeof *v);
    if (cs_rd_bytes(r, 1, &p))
        return -1;
    switch (p[0]) {
    case 0:
        v->type = SQLITE_NULL;
        return 0;
    case 1:
        if (cs_rd_varint(r, &x))
            return -1;
        v->type = SQLITE_INTEGER;
        v->i = cs_unzigzag(x);
        return 0;
    case 2:
        if (cs_rd_u64(r, &x))
            return -1;
        v->type = SQLITE_FLOAT;
        memcpy(&v->f, &x, sizeof v->f);
        return v->f == v->f ? 0 : -1; /* NaN is never stored */
    case 3:
    case 4:
        if (cs_rd_varint(r, &x) || x > r->len - r->pos || cs_rd_bytes(r, (size_t)x, &v->p))
            return -1;
        v->type = p[0] == 3 ? SQLITE_TEXT : SQLITE_BLOB;
        v->n = (size_t)x;
        return 0;
    default:
        return -1;
    }
}

int cs_cs_read_row(cs_reader *r, const cstack_schema *s, const cs_cs_header *h, cs_cs_row *row,
                   char *err, size_t errlen)
{
    uint64_t model, ver, cl, ncols;
    if (cs_rd_varint(r, &model) || cs_rd_varint(r, &ver) || cs_rd_varint(r, &cl))
        FAIL("changeset truncated at byte %zu", r->pos);
    if (model >= s->nmodels)
        FAIL("changeset names model #%llu; the schema has %zu", (unsigned long long)model,
             s->nmodels);
    const cs_model *m = &s->models[model];
    if (m->local)
        FAIL("changeset carries rows of @@local model %s", m->name);
    /* cl 0 is a drop (sync_ext.h): whether it is allowed is the merge's
     * decision. */
    if (cl > ((uint64_t)1 << 62) || ver > INT64_MAX)
        FAIL("changeset row of %s has an invalid causal length", m->name);
    if (m->npk > sizeof row->pk / sizeof row->pk[0])
        FAIL("model %s has too many key fields for sync", m->name);
    row->model = (int)model;
    row->ver = (int64_t)ver;
    row->cl = cl;
    row->npk = m->npk;
    for (size_t i = 0; i < m->npk; i++)
        if (cs_cs_read_value(r, &row->pk[i]) || row->pk[i].type == SQLITE_NULL)
            FAIL("changeset row of %s has a bad primary key at byte %zu", m->name, r->pos);
    if (cs_rd_varint(r, &ncols) || ncols > m->nfields)
        FAIL("changeset row of %s has a bad column count", m->name);
    row->ncols = (size_t)ncols;
    for (size_t i = 0; i < row->ncols; i++) {
        cs_cs_col *c = &row->cols[i];
        uint64_t field, site;
        if (cs_rd_varint(r, &field) || cs_rd_u64(r, &c->hlc) || cs_rd_varint(r, &site) ||
            cs_cs_read_value(r, &c->value))
            FAIL("changeset truncated in a column of %s at byte %zu", m->name, r->pos);
        if (field >= m->nfields || !cs_field_is_column(&m->fields[field]))
            FAIL("changeset names field #%llu of %s, which is not a column",
                 (unsigned long long)field, m->name);
        for (size_t k = 0; k < m->npk; k++)
            if (m->pk[k] == (int)field)
                FAIL("changeset writes key field %s.%s", m->name, m->fields[field].name);
        if (site >= h->nsites)
            FAIL("changeset column of %s names site #%llu of %zu", m->name,
                 (unsigned long long)site, h->nsites);
        c->field = (int)field;
        c->site = (uint32_t)site;
    }
    return 0;
}

void cs_cs_writer_free(cs_cs_writer *w)
{
    cs_buf_free(&w->body);
    free(w->sites);
    memset(w, 0, sizeof *w);
}

int cs_cs_site(cs_cs_writer *w, const unsigned char site[CS_SITE_LEN], uint32_t *idx)
{
    for (size_t i = 0; i < w->nsites; i++)
        if (memcmp(w->sites[i], site, CS_SITE_LEN) == 0) {
            *idx = (uint32_t)i;
            return 0;
        }
    if (w->nsites >= CS_CS_MAX_SITES)
        return CSTACK_ETOOBIG;
    unsigned char(*p)[CS_SITE_LEN] = realloc(w->sites, (w->nsites + 1) * sizeof *p);
    if (!p)
        return CSTACK_ENOMEM;
    w->sites = p;
    memcpy(w->sites[w->nsites], site, CS_SITE_LEN);
    *idx = (uint32_t)w->nsites++;
    return 0;
}

int cs_cs_put_value(cs_buf *b, const cs_cs_value *v)
{
    unsigned char tag;
    int rc;
    switch (v->type) {
    case SQLITE_INTEGER:
        tag = 1;
        rc = cs_buf_append(b, &tag, 1);
        return rc ? rc : cs_wr_varint(b, cs_zigzag(v->i));
    case SQLITE_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &v->f, sizeof bits);
        tag = 2;
        rc = cs_buf_append(b, &tag, 1);
        return rc ? rc : cs_wr_u64(b, bits);
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB:
        tag = v->type == SQLITE_TEXT ? 3 : 4;
        rc = cs_buf_append(b, &tag, 1);
        rc = rc ? rc : cs_wr_varint(b, v->n);
        return rc ? rc : cs_buf_append(b, v->p, v->n);
    default:
        tag = 0;
        return cs_buf_append(b, &tag, 1);
    }
}

cstack_value cs_cs_value_get(const cs_cs_value *v)
{
    switch (v->type) {
    case SQLITE_INTEGER:
        return cstack_v_int(v->i);
    case SQLITE_FLOAT:
        return cstack_v_float(v->f);
    case SQLITE_TEXT:
        return cstack_v_textn((const char *)v->p, v->n);
    case SQLITE_BLOB:
        return cstack_v_blob(v->p, v->n);
    default:
        return cstack_v_null();
    }
}

void cs_cs_value_from_stmt(cs_cs_value *v, sqlite3_stmt *st, int col)
{
    memset(v, 0, sizeof *v);
    v->type = sqlite3_column_type(st, col);
    switch (v->type) {
    case SQLITE_INTEGER:
        v->i = sqlite3_column_int64(st, col);
        break;
    case SQLITE_FLOAT:
        v->f = sqlite3_column_double(st, col);
        break;
    case SQLITE_TEXT:
        v->p = sqlite3_column_text(st, col);
        v->n = (size_t)sqlite3_column_bytes(st, col);
        break;
    case SQLITE_BLOB:
        v->p = sqlite3_column_blob(st, col);
        v->n = (size_t)sqlite3_column_bytes(st, col);
        break;
    default:
        break;
    }
}

bool cs_cs_default(const cs_field *f, cs_cs_value *v)
{
    memset(v, 0, sizeof *v);
    if (f->def.kind != CS_DEF_LITERAL || !f->def.literal)
        return false;
    const char *lit = f->def.literal;
    if (f->type == CS_T_INT || f->type == CS_T_BOOLEAN) {
        v->type = SQLITE_INTEGER;
        v->i = strtoll(lit, NULL, 10);
    } else if (f->type == CS_T_FLOAT) {
        v->type = SQLITE_FLOAT;
        v->f = strtod(lit, NULL);
    } else {
        v->type = SQLITE_TEXT;
        v->p = (const unsigned char *)lit;
        v->n = strlen(lit);
    }
    return true;
}

int cs_cs_bind(sqlite3_stmt *st, int idx, const cs_cs_value *v)
{
    switch (v->type) {
    case SQLITE_INTEGER:
        return sqlite3_bind_int64(st, idx, v->i);
    case SQLITE_FLOAT:
        return sqlite3_bind_double(st, idx, v->f);
    case SQLITE_TEXT:
        return sqlite3_bind_text64(st, idx, (const char *)(v->p ? v->p : (const void *)""), v->n,
                                   SQLITE_STATIC, SQLITE_UTF8);
    case SQLITE_BLOB:
        return sqlite3_bind_blob64(st, idx, v->p ? (const void *)v->p : "", v->n, SQLITE_STATIC);
    default:
        return sqlite3_bind_null(st, idx);
    }
}

int cs_cs_value_cmp(const cs_cs_value *a, const cs_cs_value *b)
{
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    switch (a->type) {
    case SQLITE_INTEGER:
        return a->i < b->i ? -1 : a->i > b->i;
    case SQLITE_FLOAT: {
        uint64_t x, y;
        memcpy(&x, &a->f, sizeof x);
        memcpy(&y, &b->f, sizeof y);
        return x < y ? -1 : x > y;
    }
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
        size_t n = a->n < b->n ? a->n : b->n;
        int c = n ? memcmp(a->p, b->p, n) : 0;
        return c ? c : a->n < b->n ? -1 : a->n > b->n;
    }
    default:
        return 0;
    }
}

int cs_cs_finish(cs_cs_writer *w, const cstack_schema *s, const unsigned char origin[CS_SITE_LEN],
                 int64_t since, int64_t until, void **out, size_t *len)
{
    cs_buf b = CS_BUF_INIT;
    unsigned char hash[32];
    /* The schema's hash is always 64 lowercase digits. */
    cs_hex_decode(s->hash, sizeof hash, hash);
    unsigned char fmt = CS_CS_FORMAT;
    int rc = cs_buf_append(&b, CS_CS_MAGIC, 4);
    rc = rc ? rc : cs_buf_append(&b, &fmt, 1);
    rc = rc ? rc : cs_buf_append(&b, hash, 32);
    rc = rc ? rc : cs_buf_append(&b, origin, CS_SITE_LEN);
    rc = rc ? rc : cs_wr_varint(&b, (uint64_t)since);
    rc = rc ? rc : cs_wr_varint(&b, (uint64_t)until);
    rc = rc ? rc : cs_wr_varint(&b, w->nsites);
    for (size_t i = 0; !rc && i < w->nsites; i++)
        rc = cs_buf_append(&b, w->sites[i], CS_SITE_LEN);
    rc = rc ? rc : cs_wr_varint(&b, w->nrows);
    rc = rc ? rc : cs_buf_append(&b, w->body.data ? w->body.data : "", w->body.len);
    if (rc) {
        cs_buf_free(&b);
        return rc;
    }
    *len = b.len;
    *out = cs_buf_take(&b);
    return *out ? 0 : CSTACK_ENOMEM;
}
