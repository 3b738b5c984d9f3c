/* clkblob.c -- the per-row clock blob (format in sync.h). */
#include <stdlib.h>
#include <string.h>

#include "sync/sync.h"
#include "sync/varint.h"

void cs_clk_init(cs_clk *c)
{
    memset(c, 0, sizeof *c);
    c->entries = c->e_inline;
    c->slots = c->s_inline;
}

void cs_clk_free(cs_clk *c)
{
    if (c->entries != c->e_inline)
        free(c->entries);
    if (c->slots != c->s_inline)
        free(c->slots);
    cs_clk_init(c);
}

static int reserve_entries(cs_clk *c, size_t n)
{
    size_t cap = c->entries == c->e_inline ? sizeof c->e_inline / sizeof c->e_inline[0]
                                           : c->ncap;
    if (n <= cap)
        return 0;
    size_t ncap = cap * 2 > n ? cap * 2 : n;
    cs_clk_entry *e = malloc(ncap * sizeof *e);
    if (!e)
        return CSTACK_ENOMEM;
    memcpy(e, c->entries, c->nentries * sizeof *e);
    if (c->entries != c->e_inline)
        free(c->entries);
    c->entries = e;
    c->ncap = ncap;
    return 0;
}

int cs_clk_resize(cs_clk *c, size_t n)
{
    if (n <= c->ncols)
        return 0;
    if (n > CS_CLK_MAX_COLS)
        return CSTACK_ETOOBIG;
    size_t cap = c->slots == c->s_inline ? sizeof c->s_inline / sizeof c->s_inline[0] : c->scap;
    if (n > cap) {
        uint32_t *s = malloc(n * sizeof *s);
        if (!s)
            return CSTACK_ENOMEM;
        memcpy(s, c->slots, c->ncols * sizeof *s);
        if (c->slots != c->s_inline)
            free(c->slots);
        c->slots = s;
        c->scap = n;
    }
    memset(c->slots + c->ncols, 0, (n - c->ncols) * sizeof *c->slots);
    c->ncols = n;
    return 0;
}

int cs_clk_decode(cs_clk *c, const void *blob, size_t len)
{
    cs_reader r = {blob, len, 0};
    uint64_t ncols, nentries, row;
    cs_clk_free(c);
    if (cs_rd_varint(&r, &ncols) || ncols > CS_CLK_MAX_COLS || cs_rd_varint(&r, &nentries) ||
        nentries > ncols + 1)
        return CSTACK_EINVAL;
    int rc = cs_clk_resize(c, (size_t)ncols);
    if (!rc)
        rc = reserve_entries(c, (size_t)nentries);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < nentries; i++) {
        uint64_t site, ver;
        cs_clk_entry *e = &c->entries[i];
        if (cs_rd_u64(&r, &e->hlc) || cs_rd_varint(&r, &site) || site > UINT32_MAX ||
            cs_rd_varint(&r, &ver) || ver > INT64_MAX)
            return CSTACK_EINVAL;
        e->site = (uint32_t)site;
        e->ver = (int64_t)ver;
    }
    c->nentries = (size_t)nentries;
    if (cs_rd_varint(&r, &row) || row > nentries)
        return CSTACK_EINVAL;
    c->row = (uint32_t)row;
    for (size_t i = 0; i < c->ncols; i++) {
        uint64_t slot;
        if (cs_rd_varint(&r, &slot) || slot > nentries)
            return CSTACK_EINVAL;
        c->slots[i] = (uint32_t)slot;
    }
    return r.pos == r.len ? 0 : CSTACK_EINVAL;
}

static uint32_t find_or_add(cs_clk *c, const cs_clk_entry *e, int *rc)
{
    for (size_t i = 0; i < c->nentries; i++) {
        const cs_clk_entry *x = &c->entries[i];
        if (x->hlc == e->hlc && x->site == e->site && x->ver == e->ver)
            return (uint32_t)i + 1;
    }
    if ((*rc = reserve_entries(c, c->nentries + 1)))
        return 0;
    c->entries[c->nentries++] = *e;
    return (uint32_t)c->nentries;
}

int cs_clk_set(cs_clk *c, size_t col, const cs_clk_entry *e)
{
    int rc = 0;
    if (col != SIZE_MAX && col >= c->ncols && (rc = cs_clk_resize(c, col + 1)))
        return rc;
    uint32_t slot = find_or_add(c, e, &rc);
    if (rc)
        return rc;
    if (col == SIZE_MAX)
        c->row = slot;
    else
        c->slots[col] = slot;
    return 0;
}

const cs_clk_entry *cs_clk_get(const cs_clk *c, size_t col)
{
    if (col >= c->ncols || c->slots[col] == 0)
        return NULL;
    return &c->entries[c->slots[col] - 1];
}

const cs_clk_entry *cs_clk_row(const cs_clk *c)
{
    return c->row ? &c->entries[c->row - 1] : NULL;
}

int cs_clk_encode(cs_clk *c, cs_buf *out)
{
    /* Renumber the referenced entries in first-use order; unreferenced ones
     * (superseded clocks) disappear here. */
    size_t n = c->nentries;
    cs_clk_entry tmp_inline[16];
    cs_clk_entry *old = n <= 16 ? tmp_inline : malloc(n * sizeof *old);
    uint32_t map_inline[17];
    uint32_t *map = n < 17 ? map_inline : calloc(n + 1, sizeof *map);
    if (!old || !map) {
        if (old != tmp_inline)
            free(old);
        if (map != map_inline)
            free(map);
        return CSTACK_ENOMEM;
    }
    memcpy(old, c->entries, n * sizeof *old);
    memset(map, 0, (n + 1) * sizeof *map);
    size_t used = 0;
    for (size_t i = 0; i <= c->ncols; i++) {
        uint32_t *ref = i == 0 ? &c->row : &c->slots[i - 1];
        uint32_t slot = *ref;
        if (slot && !map[slot]) {
            c->entries[used] = old[slot - 1];
            map[slot] = (uint32_t)++used;
        }
        *ref = map[slot];
    }
    if (old != tmp_inline)
        free(old);
    if (map != map_inline)
        free(map);
    c->nentries = used;
    /* Every merged and folded row is encoded here: reserve the bound once
     * and write the bytes directly. */
    cs_buf_reset(out);
    int rc = cs_buf_reserve(out, 30 + c->nentries * 28 + c->ncols * 10);
    if (rc)
        return rc;
    unsigned char *p = (unsigned char *)out->data;
    p += cs_varint_put(p, c->ncols);
    p += cs_varint_put(p, c->nentries);
    for (size_t i = 0; i < c->nentries; i++) {
        for (int k = 0; k < 8; k++)
            *p++ = (unsigned char)(c->entries[i].hlc >> (8 * k));
        p += cs_varint_put(p, c->entries[i].site);
        p += cs_varint_put(p, (uint64_t)c->entries[i].ver);
    }
    p += cs_varint_put(p, c->row);
    for (size_t i = 0; i < c->ncols; i++)
        p += cs_varint_put(p, c->slots[i]);
    out->len = (size_t)(p - (unsigned char *)out->data);
    out->data[out->len] = 0;
    return 0;
}
