/*
 * hash.h -- the library's one byte hash (FNV-1a, 64-bit) and one hash set.
 *
 * FNV-1a is fast on the short keys hashed here (names, primary keys, SQL
 * text) and its values are part of formats: the state checksum of
 * sync/checksum.c sums FNV-1a-64 values, so a client and a server must
 * compute the very same function.  It is not a defence against chosen keys;
 * the sets below hold keys from schemas and from the library's own tables.
 *
 * The set (cs_hset) is open addressing with linear probing over (hash, id)
 * pairs.  Items live in the caller's own arrays; the set holds only their
 * ids and hashes, and asks the caller whether an item equals the key being
 * looked up.  Growing rehashes from the stored hashes, so the caller is not
 * involved.  The table is kept at most half full.
 */
#ifndef CS_HASH_H
#define CS_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The start of every hash.  Not FNV's published offset basis
 * (14695981039346656037): the library's first FNV copies dropped its last
 * digit, and state checksums, which travel in checkpoints, were computed
 * from this value.  Any start other than 0 hashes as well. */
#define CS_FNV64_INIT 1469598103934665603ull
#define CS_FNV64_PRIME 1099511628211ull

/* One byte more of an FNV-1a-64 hash (for callers that transform bytes,
 * like a case-insensitive hash). */
static inline uint64_t cs_fnv1a64_byte(uint64_t h, unsigned char c)
{
    return (h ^ c) * CS_FNV64_PRIME;
}

/* FNV-1a-64 of the n bytes at p, continuing from h (CS_FNV64_INIT for a new
 * hash), so a hash may run over several pieces. */
uint64_t cs_fnv1a64(uint64_t h, const void *p, size_t n);

typedef struct cs_hset_slot {
    uint64_t hash;
    size_t id1; /* the item's id + 1; 0: free */
} cs_hset_slot;

typedef struct cs_hset {
    cs_hset_slot *slot;
    size_t cap, n; /* cap: a power of two, or 0 */
} cs_hset;

#define CS_HSET_INIT {NULL, 0, 0}
#define CS_HSET_NONE SIZE_MAX

/* True when the caller's item `id` equals the key being looked up (which
 * the caller put behind ctx). */
typedef bool (*cs_hset_eq)(const void *ctx, size_t id);

/* The id of the item with this hash that eq finds equal, or CS_HSET_NONE. */
size_t cs_hset_find(const cs_hset *s, uint64_t hash, cs_hset_eq eq, const void *ctx);
/* Adds item `id` (below SIZE_MAX) under its hash; the caller knows no equal
 * item is in the set.  Returns 0 or CSTACK_ENOMEM (the set is unchanged). */
int cs_hset_add(cs_hset *s, uint64_t hash, size_t id);
/* Frees the table; the set is empty and reusable.  Accepts an empty set. */
void cs_hset_free(cs_hset *s);

#endif
