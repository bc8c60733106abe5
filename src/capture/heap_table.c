/*
 * capture/heap_table.c - the heap sampler's two lock-free tables: buckets
 * (stack, size) -> counters, and the sampled-address set that every free
 * probes.  Called by capture/malloc_shim.c from inside the interposed
 * allocator, and read by profiles/heap.c in normal context.
 *
 * ASYNC-SIGNAL-SAFE, LOCK-FREE, ALLOCATION-FREE, errno-preserving: the
 * tables are mapped once with mmap (never through malloc) and afterwards
 * only touched with atomic loads and compare-and-swap.
 *
 * Address set: open addressing over 64-bit words, each holding the
 * address (47 bits: x86-64/aarch64 user space) and the bucket index above
 * it, so claiming and releasing a slot is one CAS and a reader never sees
 * a half-written entry.  0 is an empty slot, 1 a tombstone.  Inserts reuse
 * the first empty or tombstone slot on the probe path and raise a global
 * "longest probe" bound; lookups stop at an empty slot or at that bound,
 * so a miss costs a hash and, when the set is sparse, one load.  An
 * address is in the set at most once because free removes it before the
 * real free and malloc inserts only after the real malloc returned it.
 *
 * Buckets: insert-only open addressing keyed by one 64-bit word, so the
 * key is published by the same CAS that claims the slot.
 */
#include "capture/heap_sampler.h"

#include <errno.h>
#include <sys/mman.h>

#define ADDR_BITS 47
#define ADDR_MASK ((UINT64_C(1) << ADDR_BITS) - 1)
#define ADDR_SLOTS_LOG2 20             /* 8 MiB of virtual memory */
#define ADDR_SLOTS (1u << ADDR_SLOTS_LOG2)
#define ADDR_FILL_MAX (ADDR_SLOTS / 2) /* keep probe paths short */
#define BUCKET_SLOTS_LOG2 16           /* index fits in 64 - 47 bits */
#define BUCKET_SLOTS (1u << BUCKET_SLOTS_LOG2)
#define BUCKET_FILL_MAX (BUCKET_SLOTS * 3 / 4)
#define SLOT_EMPTY 0
#define SLOT_TOMB 1

static struct {
    _Atomic(_Atomic uint64_t *) addrs;
    _Atomic(cp_heap_bucket *) buckets;
    _Atomic uint32_t addr_probe_max; /* longest probe any insert used */
    _Atomic uint32_t addr_used;      /* live sampled blocks */
    _Atomic uint32_t bucket_used;
    _Atomic int init_state;          /* 0 none, 1 mapping, 2 done, -1 failed */
} heap_table;

static inline uint32_t addr_home(uint64_t addr)
{
    /* Fibonacci hashing: the low 4 bits are alignment, the rest mix well. */
    return (uint32_t)(((addr >> 4) * UINT64_C(0x9e3779b97f4a7c15)) >>
                      (64 - ADDR_SLOTS_LOG2));
}

static inline uint32_t bucket_home(uint64_t key)
{
    key ^= key >> 29;
    key *= UINT64_C(0xbf58476d1ce4e5b9);
    key ^= key >> 32;
    return (uint32_t)(key >> (64 - BUCKET_SLOTS_LOG2));
}

int cp_heap_table_init(void)
{
    int st = atomic_load_explicit(&heap_table.init_state, memory_order_acquire);
    if (st == 2)
        return 0;
    if (st == -1)
        return -ENOMEM;
    int expect = 0;
    if (!atomic_compare_exchange_strong(&heap_table.init_state, &expect, 1)) {
        /* Another thread maps; it takes two syscalls. */
        while ((st = atomic_load_explicit(&heap_table.init_state,
                                          memory_order_acquire)) == 1)
            ;
        return st == 2 ? 0 : -ENOMEM;
    }
    int saved = errno;
    void *a = mmap(NULL, sizeof(uint64_t) * ADDR_SLOTS, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *b = mmap(NULL, sizeof(cp_heap_bucket) * BUCKET_SLOTS,
                   PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    errno = saved;
    if (a == MAP_FAILED || b == MAP_FAILED) {
        if (a != MAP_FAILED)
            munmap(a, sizeof(uint64_t) * ADDR_SLOTS);
        if (b != MAP_FAILED)
            munmap(b, sizeof(cp_heap_bucket) * BUCKET_SLOTS);
        errno = saved;
        atomic_store_explicit(&heap_table.init_state, -1, memory_order_release);
        return -ENOMEM;
    }
    atomic_store_explicit(&heap_table.addrs, a, memory_order_relaxed);
    atomic_store_explicit(&heap_table.buckets, b, memory_order_relaxed);
    atomic_store_explicit(&heap_table.init_state, 2, memory_order_release);
    return 0;
}

cp_heap_bucket *cp_heap_bucket_get(uint32_t stack_id, uint64_t size,
                                   uint32_t *index)
{
    cp_heap_bucket *b = atomic_load_explicit(&heap_table.buckets,
                                             memory_order_acquire);
    if (!b)
        return NULL;
    uint64_t key = ((uint64_t)stack_id + 1) << 32 |
                   (size < CP_HEAP_SIZE_KEY_MAX ? size : CP_HEAP_SIZE_KEY_MAX);
    uint32_t i = bucket_home(key);
    for (uint32_t n = 0; n < BUCKET_SLOTS; n++, i = (i + 1) & (BUCKET_SLOTS - 1)) {
        uint64_t cur = atomic_load_explicit(&b[i].key, memory_order_acquire);
        if (cur == key) {
            *index = i;
            return &b[i];
        }
        if (cur != 0)
            continue;
        if (atomic_load_explicit(&heap_table.bucket_used, memory_order_relaxed) >=
            BUCKET_FILL_MAX)
            return NULL;
        uint64_t expect = 0;
        if (atomic_compare_exchange_strong(&b[i].key, &expect, key)) {
            atomic_fetch_add_explicit(&heap_table.bucket_used, 1,
                                      memory_order_relaxed);
            *index = i;
            return &b[i];
        }
        if (expect == key) { /* another thread created the same bucket */
            *index = i;
            return &b[i];
        }
    }
    return NULL;
}

bool cp_heap_addr_insert(uintptr_t addr, uint32_t index)
{
    _Atomic uint64_t *t = atomic_load_explicit(&heap_table.addrs,
                                               memory_order_acquire);
    if (!t || addr <= SLOT_TOMB || ((uint64_t)addr & ~ADDR_MASK) ||
        index >= BUCKET_SLOTS)
        return false;
    if (atomic_fetch_add_explicit(&heap_table.addr_used, 1,
                                  memory_order_relaxed) >= ADDR_FILL_MAX) {
        atomic_fetch_sub_explicit(&heap_table.addr_used, 1, memory_order_relaxed);
        return false;
    }
    uint64_t word = (uint64_t)addr | (uint64_t)index << ADDR_BITS;
    uint32_t i = addr_home(addr);
    for (uint32_t n = 0; n < ADDR_SLOTS; n++, i = (i + 1) & (ADDR_SLOTS - 1)) {
        uint64_t cur = atomic_load_explicit(&t[i], memory_order_relaxed);
        if (cur != SLOT_EMPTY && cur != SLOT_TOMB)
            continue;
        /* Publish the bound before the entry, so a lookup that can see the
         * entry also walks far enough to reach it. */
        uint32_t max = atomic_load_explicit(&heap_table.addr_probe_max,
                                            memory_order_relaxed);
        while (n + 1 > max &&
               !atomic_compare_exchange_weak(&heap_table.addr_probe_max, &max,
                                             n + 1))
            ;
        if (atomic_compare_exchange_strong(&t[i], &cur, word))
            return true;
    }
    atomic_fetch_sub_explicit(&heap_table.addr_used, 1, memory_order_relaxed);
    return false;
}

cp_heap_bucket *cp_heap_addr_remove(uintptr_t addr, uint32_t *index)
{
    /* Fast exit for the common case: nothing sampled is live. */
    if (atomic_load_explicit(&heap_table.addr_used, memory_order_relaxed) == 0)
        return NULL;
    _Atomic uint64_t *t = atomic_load_explicit(&heap_table.addrs,
                                               memory_order_acquire);
    if (!t || ((uint64_t)addr & ~ADDR_MASK))
        return NULL;
    uint32_t max = atomic_load_explicit(&heap_table.addr_probe_max,
                                        memory_order_acquire);
    uint32_t i = addr_home(addr);
    for (uint32_t n = 0; n < max; n++, i = (i + 1) & (ADDR_SLOTS - 1)) {
        uint64_t cur = atomic_load_explicit(&t[i], memory_order_acquire);
        if (cur == SLOT_EMPTY)
            return NULL;
        if ((cur & ADDR_MASK) != addr || cur == SLOT_TOMB)
            continue;
        /* Only the thread freeing addr can remove it: the CAS cannot fail
         * unless the caller double-frees, and then one of them wins. */
        if (!atomic_compare_exchange_strong(&t[i], &cur, SLOT_TOMB))
            return NULL;
        atomic_fetch_sub_explicit(&heap_table.addr_used, 1, memory_order_relaxed);
        cp_heap_bucket *b = atomic_load_explicit(&heap_table.buckets,
                                                 memory_order_relaxed);
        *index = (uint32_t)(cur >> ADDR_BITS);
        return &b[*index];
    }
    return NULL;
}

size_t cp_heap_addr_live(void)
{
    return atomic_load_explicit(&heap_table.addr_used, memory_order_relaxed);
}

size_t cp_heap_bucket_slots(void)
{
    return atomic_load_explicit(&heap_table.buckets, memory_order_acquire)
               ? BUCKET_SLOTS
               : 0;
}

const cp_heap_bucket *cp_heap_bucket_at(size_t i)
{
    cp_heap_bucket *b = atomic_load_explicit(&heap_table.buckets,
                                             memory_order_acquire);
    return b && i < BUCKET_SLOTS ? &b[i] : NULL;
}
