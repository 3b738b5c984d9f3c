/* hash.c -- FNV-1a-64 and the open-addressing hash set (hash.h). */
#include "util/hash.h"

#include <stdlib.h>

#include "cstack.h"

uint64_t cs_fnv1a64(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = cs_fnv1a64_byte(h, b[i]);
    return h;
}

size_t cs_hset_find(const cs_hset *s, uint64_t hash, cs_hset_eq eq, const void *ctx)
{
    if (!s->cap)
        return CS_HSET_NONE;
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)hash & mask; s->slot[i].id1; i = (i + 1) & mask)
        if (s->slot[i].hash == hash && eq(ctx, s->slot[i].id1 - 1))
            return s->slot[i].id1 - 1;
    return CS_HSET_NONE;
}

static void put(cs_hset_slot *slot, size_t cap, uint64_t hash, size_t id1)
{
    size_t i = (size_t)hash & (cap - 1);
    while (slot[i].id1)
        i = (i + 1) & (cap - 1);
    slot[i].hash = hash;
    slot[i].id1 = id1;
}

int cs_hset_add(cs_hset *s, uint64_t hash, size_t id)
{
    if ((s->n + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        if (cap < s->cap || cap > SIZE_MAX / sizeof(cs_hset_slot))
            return CSTACK_ENOMEM;
        cs_hset_slot *slot = calloc(cap, sizeof *slot);
        if (!slot)
            return CSTACK_ENOMEM;
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i].id1)
                put(slot, cap, s->slot[i].hash, s->slot[i].id1);
        free(s->slot);
        s->slot = slot;
        s->cap = cap;
    }
    put(s->slot, s->cap, hash, id + 1);
    s->n++;
    return 0;
}

void cs_hset_free(cs_hset *s)
{
    free(s->slot);
    s->slot = NULL;
    s->cap = s->n = 0;
}
