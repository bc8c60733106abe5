/*
 * model/hash.h - the one hash function and the one hash index of cpprof.
 *
 * cp_hash_bytes/cp_hash_u64 give 64-bit hashes (cp_stack_hash in
 * model/stack_table.h is built on them).  cp_hindex is an open-addressing
 * table that maps a hash to a 32-bit id; the caller keeps the keys (in
 * its own arrays) and decides equality, so one index serves the stack
 * table shards, the profile model's sample lookup and the encoder's
 * string/location/function tables.
 *
 * Thread-safety: the hash functions are pure and async-signal-safe.  A
 * cp_hindex is not synchronised (its owner locks around it) and allocates,
 * so never touch one from a signal handler or an interposed call.
 */
#ifndef CP_MODEL_HASH_H
#define CP_MODEL_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Finalising mix of a 64-bit value (a bijection). */
static inline uint64_t cp_hash_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Hash of one 64-bit word, chained from seed. */
static inline uint64_t cp_hash_u64(uint64_t seed, uint64_t v)
{
    return cp_hash_mix(seed ^ (v + 0x9e3779b97f4a7c15ULL + (seed << 6)));
}

/* Hash of len bytes, chained from seed. */
uint64_t cp_hash_bytes(uint64_t seed, const void *data, size_t len);

/* Hash index: hash -> id.  Ids are caller-defined, < UINT32_MAX. */
typedef struct cp_hindex {
    struct cp_hindex_slot *slots; /* NULL until the first insert */
    size_t mask;                  /* slot count - 1 (a power of two) */
    size_t count;
} cp_hindex;

#define CP_HINDEX_NONE UINT32_MAX

/* Equality callback: does the key with this id equal the probed key? */
typedef bool (*cp_hindex_eq)(const void *ctx, uint32_t id);

/* An empty index (no allocation). */
static inline void cp_hindex_init(cp_hindex *h)
{
    h->slots = NULL;
    h->mask = 0;
    h->count = 0;
}
void cp_hindex_free(cp_hindex *h);
/* The id whose key has this hash and satisfies eq(ctx, id), or
 * CP_HINDEX_NONE. */
uint32_t cp_hindex_find(const cp_hindex *h, uint64_t hash, cp_hindex_eq eq,
                        const void *ctx);
/* Adds hash -> id (the caller has checked it is absent).  Returns 0 or
 * -ENOMEM; on failure the index is unchanged. */
int cp_hindex_insert(cp_hindex *h, uint64_t hash, uint32_t id);
/* Pre-sizes the index for n entries.  Returns 0 or -ENOMEM. */
int cp_hindex_reserve(cp_hindex *h, size_t n);

#endif
