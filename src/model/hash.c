/*
 * model/hash.c - cp_hash_bytes and the cp_hindex open-addressing index.
 *
 * Called by the stack table, the profile model and the encoders, in normal
 * thread context.  cp_hash_bytes is pure; a cp_hindex is guarded by its
 * owner's lock (if any).  Not for signal handlers (the index allocates).
 */
#include "model/hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * A slot keeps the low 32 bits of the hash (the probe start is derived
 * from them, so growing never needs the keys) and id + 1 (0 = empty).
 * Tables stay at most half full, so linear probing stays short.
 */
struct cp_hindex_slot {
    uint32_t tag;
    uint32_t id1;
};

uint64_t cp_hash_bytes(uint64_t seed, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = cp_hash_u64(h, w);
        p += 8;
        len -= 8;
    }
    if (len > 0) {
        uint64_t w = 0;
        memcpy(&w, p, len);
        h = cp_hash_u64(h, w);
    }
    return h;
}

void cp_hindex_free(cp_hindex *h)
{
    free(h->slots);
    cp_hindex_init(h);
}

uint32_t cp_hindex_find(const cp_hindex *h, uint64_t hash, cp_hindex_eq eq,
                        const void *ctx)
{
    if (h->slots == NULL)
        return CP_HINDEX_NONE;
    uint32_t tag = (uint32_t)hash;
    for (size_t i = tag & h->mask;; i = (i + 1) & h->mask) {
        const struct cp_hindex_slot *s = &h->slots[i];
        if (s->id1 == 0)
            return CP_HINDEX_NONE;
        if (s->tag == tag && eq(ctx, s->id1 - 1))
            return s->id1 - 1;
    }
}

static void place(struct cp_hindex_slot *slots, size_t mask, uint32_t tag,
                  uint32_t id1)
{
    size_t i = tag & mask;
    while (slots[i].id1 != 0)
        i = (i + 1) & mask;
    slots[i].tag = tag;
    slots[i].id1 = id1;
}

/* Rebuilds the table with nslots slots (a power of two). */
static int resize(cp_hindex *h, size_t nslots)
{
    struct cp_hindex_slot *slots = calloc(nslots, sizeof *slots);
    if (slots == NULL)
        return -ENOMEM;
    if (h->slots != NULL) {
        for (size_t i = 0; i <= h->mask; i++)
            if (h->slots[i].id1 != 0)
                place(slots, nslots - 1, h->slots[i].tag, h->slots[i].id1);
        free(h->slots);
    }
    h->slots = slots;
    h->mask = nslots - 1;
    return 0;
}

int cp_hindex_reserve(cp_hindex *h, size_t n)
{
    size_t want = 16;
    while (want < 2 * n)
        want *= 2;
    if (h->slots != NULL && want <= h->mask + 1)
        return 0;
    return resize(h, want);
}

int cp_hindex_insert(cp_hindex *h, uint64_t hash, uint32_t id)
{
    if (id == CP_HINDEX_NONE)
        return -EINVAL;
    int rc = cp_hindex_reserve(h, h->count + 1);
    if (rc != 0)
        return rc;
    place(h->slots, h->mask, (uint32_t)hash, id + 1);
    h->count++;
    return 0;
}
