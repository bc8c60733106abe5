/*
 * model/stack_table.c - the deduplicating table of stacks (see
 * model/stack_table.h for the contract).
 *
 * Called by every sampler and by custom profiles in normal thread context.
 * Thread-safe: the table is split into CP_SHARDS shards picked by the
 * stack's hash, each with its own mutex, hash index and storage, so
 * threads interning different stacks rarely take the same lock.  Not
 * async-signal-safe (locks and allocates).
 *
 * Ids encode the shard in their low bits and the shard-local index above,
 * so lookups go straight to one shard.  Stored pc arrays live in per-shard
 * chunks that are never moved or freed before the table, which is what
 * makes the pointers cp_stack_table_get hands out stable.
 */
#include "model/stack_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "model/hash.h"

#define SHARD_BITS 6
#define CP_SHARDS (1u << SHARD_BITS)
#define CHUNK_PCS 8192 /* pcs per storage chunk (64 KiB) */
#define MAX_LOCAL (UINT32_MAX >> SHARD_BITS)

typedef struct entry {
    const uintptr_t *pcs;
    uint32_t depth;
} entry;

/* A block of pc storage; chunks are chained for freeing only. */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    uintptr_t pcs[];
} chunk;

typedef struct shard {
    pthread_mutex_t lock;
    cp_hindex index; /* hash -> local index */
    entry *entries;
    uint32_t n, cap;
    chunk *chunks; /* head has free space (if any) */
    /* Keeps shards on separate cache lines so locks do not false-share. */
    char pad[64];
} shard;

struct cp_stack_table {
    shard shards[CP_SHARDS];
    atomic_size_t size;
};

uint64_t cp_stack_hash(const uintptr_t *pcs, size_t n)
{
    uint64_t h = 0x6a09e667f3bcc909ULL ^ n;
    for (size_t i = 0; i < n; i++)
        h = cp_hash_u64(h, pcs[i]);
    return h;
}

int cp_stack_table_new(cp_stack_table **out)
{
    cp_stack_table *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < CP_SHARDS; i++) {
        pthread_mutex_init(&t->shards[i].lock, NULL);
        cp_hindex_init(&t->shards[i].index);
    }
    atomic_init(&t->size, 0);
    *out = t;
    return 0;
}

void cp_stack_table_free(cp_stack_table *t)
{
    if (t == NULL)
        return;
    for (unsigned i = 0; i < CP_SHARDS; i++) {
        shard *s = &t->shards[i];
        pthread_mutex_destroy(&s->lock);
        cp_hindex_free(&s->index);
        free(s->entries);
        for (chunk *c = s->chunks, *next; c != NULL; c = next) {
            next = c->next;
            free(c);
        }
    }
    free(t);
}

typedef struct probe {
    const shard *s;
    const uintptr_t *pcs;
    size_t n;
} probe;

static bool probe_eq(const void *ctx, uint32_t local)
{
    const probe *p = ctx;
    const entry *e = &p->s->entries[local];
    return e->depth == p->n &&
           memcmp(e->pcs, p->pcs, p->n * sizeof *p->pcs) == 0;
}

/* Room for n pcs in the shard's storage (shard locked). */
static uintptr_t *shard_store(shard *s, size_t n)
{
    chunk *c = s->chunks;
    if (c == NULL || c->cap - c->used < n) {
        size_t cap = n > CHUNK_PCS ? n : CHUNK_PCS;
        chunk *nc = malloc(sizeof *nc + cap * sizeof(uintptr_t));
        if (nc == NULL)
            return NULL;
        nc->used = 0;
        nc->cap = cap;
        /* Keep the chunk with more free space at the head. */
        if (c != NULL && c->cap - c->used > cap - n) {
            nc->next = c->next;
            c->next = nc;
            nc->used = n;
            return nc->pcs;
        }
        nc->next = c;
        s->chunks = c = nc;
    }
    uintptr_t *p = c->pcs + c->used;
    c->used += n;
    return p;
}

int cp_stack_table_intern(cp_stack_table *t, const uintptr_t *pcs, size_t n,
                          uint32_t *id)
{
    if (n > CP_STACK_MAX_DEPTH)
        n = CP_STACK_MAX_DEPTH;
    uint64_t h = cp_stack_hash(pcs, n);
    /* The index uses the low hash bits; the shard takes the high ones. */
    unsigned si = (unsigned)(h >> (64 - SHARD_BITS));
    shard *s = &t->shards[si];
    probe pr = {s, pcs, n};
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    uint32_t local = cp_hindex_find(&s->index, h, probe_eq, &pr);
    if (local != CP_HINDEX_NONE)
        goto done;
    if (s->n >= MAX_LOCAL) {
        rc = -ENOMEM;
        goto done;
    }
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 64;
        entry *e = realloc(s->entries, cap * sizeof *e);
        if (e == NULL) {
            rc = -ENOMEM;
            goto done;
        }
        s->entries = e;
        s->cap = cap;
    }
    uintptr_t *copy = shard_store(s, n ? n : 1);
    if (copy == NULL) {
        rc = -ENOMEM;
        goto done;
    }
    memcpy(copy, pcs, n * sizeof *pcs);
    local = s->n;
    rc = cp_hindex_insert(&s->index, h, local);
    if (rc != 0)
        goto done; /* the stored copy is simply left unused */
    s->entries[local].pcs = copy;
    s->entries[local].depth = (uint32_t)n;
    s->n++;
    atomic_fetch_add_explicit(&t->size, 1, memory_order_relaxed);
done:
    pthread_mutex_unlock(&s->lock);
    if (rc == 0)
        *id = (local << SHARD_BITS) | si;
    return rc;
}

size_t cp_stack_table_get(cp_stack_table *t, uint32_t id,
                          const uintptr_t **pcs)
{
    shard *s = &t->shards[id & (CP_SHARDS - 1)];
    uint32_t local = id >> SHARD_BITS;
    size_t depth = 0;
    pthread_mutex_lock(&s->lock);
    if (local < s->n) {
        *pcs = s->entries[local].pcs;
        depth = s->entries[local].depth;
    }
    pthread_mutex_unlock(&s->lock);
    return depth;
}

size_t cp_stack_table_size(cp_stack_table *t)
{
    return atomic_load_explicit(&t->size, memory_order_relaxed);
}
