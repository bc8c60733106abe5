/*
 * capture/heap_table.c - the heap sampler's two lock-free tables: buckets
 * (stack, size) -> counters, and the sampled-address set that a free
 * probes when the shim's filter says the block may be sampled (filter
 * mode only: in header mode the block's header names its bucket).  Called
 * by capture/malloc_shim.c from inside the interposed allocator, and read
 * by profiles/heap.c in normal context.
 *
 * ASYNC-SIGNAL-SAFE, LOCK-FREE, ALLOCATION-FREE, errno-preserving: the
 * tables are mapped with mmap (never through malloc) and afterwards only
 * touched with atomic loads and compare-and-swap.
 *
 * Memory is sized to what is used, because first-touch page faults were
 * the profiler's largest cost (a randomly hashed 8 MiB table is touched on
 * nearly every page by a few thousand samples, and each page first maps
 * the zero page on the probe's read and is then copied, with a TLB
 * shoot-down, on the claiming write):
 *   - The address set is a chain of segments of 4096 << k slots (k =
 *     0..ADDR_SEGS-1).  Segment 0 is mapped, pre-faulted, by init; a later
 *     segment is mapped (pre-faulted, by the inserting thread) the first
 *     time an address finds its line full in every earlier one.
 *   - Buckets are stored densely in creation order (pages are touched as
 *     buckets are created, by the creating write) and found through a
 *     pre-faulted index of 32-bit bucket numbers.
 * Bound: ADDR_SEGS segments hold 520,192 slots (4 MiB); 65,536 buckets
 * (2.5 MiB) and their index (512 KiB).  Everything together stays under
 * 8 MiB, and a program with up to about a thousand live sampled blocks
 * (500 MiB live at the default rate) and a few hundred buckets uses
 * about 600 KiB.
 *
 * Address set: each address hashes to one cache line (8 slots) per
 * segment; it lives in the first segment whose line had a free slot when
 * it was inserted.  A slot is a 64-bit word holding the address (47 bits:
 * x86-64 / aarch64 user space) and the bucket index above it, or 0, so
 * claiming and releasing it is one CAS and a reader never sees a
 * half-written entry.  A lookup reads one line per mapped segment (one,
 * until more than about a thousand sampled blocks are live at once); no
 * counter, tombstone or probe bound is shared between threads, so an
 * insert or remove writes nothing but its own slot.  An address is in the
 * set at most once because free removes it before the real free and
 * malloc inserts only after the real malloc returned it; lines are
 * searched in segment order by both, so an insert into a later segment
 * (its line in an earlier one was full) is found by the remove.
 *
 * Buckets: a key is published in its bucket before the bucket's number is
 * published in the index (one CAS), so a reader that finds the number
 * finds the key.  Two threads racing to create the same key in the same
 * index slot: the loser clears its bucket's key (an unused bucket, which
 * readers skip) and uses the winner's.
 */
#include "capture/heap_sampler.h"

#include <errno.h>
#include <sys/mman.h>

#define ADDR_BITS 47
#define ADDR_MASK ((UINT64_C(1) << ADDR_BITS) - 1)
#define ADDR_SEG0_LOG2 12 /* 4096 slots: 32 KiB */
#define ADDR_SEGS 7       /* 4096 * (2^7 - 1) slots in all: 4 MiB */
#define BUCKET_MAX (1u << 16)
#define BUCKET_INDEX_LOG2 17 /* twice BUCKET_MAX: probe paths stay short */
#define BUCKET_INDEX_SLOTS (1u << BUCKET_INDEX_LOG2)
#define SLOT_EMPTY 0
#define CACHE_LINE 64

/* The bucket index is stored above the address in a 64-bit word. */
_Static_assert(BUCKET_MAX <= (1u << (64 - ADDR_BITS)), "bucket index bits");

/* Address set slots per probe: one cache line of 64-bit words. */
#define LINE_SLOTS (CACHE_LINE / sizeof(uint64_t))

static struct {
    /* Read by every probe, written once per segment. */
    _Alignas(CACHE_LINE) _Atomic(_Atomic uint64_t *) seg[ADDR_SEGS];
    _Atomic(cp_heap_bucket *) buckets;
    _Atomic(_Atomic uint32_t *) index; /* 0 empty, else bucket number + 1 */
    _Atomic int init_state;            /* 0 none, 1 mapping, 2 done, -1 failed */
    /* Written once per new bucket. */
    _Alignas(CACHE_LINE) _Atomic uint32_t bucket_next;
} heap_table;

static inline uint32_t seg_log2(unsigned k)
{
    return ADDR_SEG0_LOG2 + k;
}

static inline uint32_t addr_home(uint64_t addr, uint32_t log2)
{
    /* Fibonacci hashing: the low 4 bits are alignment, the rest mix well. */
    return (uint32_t)(((addr >> 4) * UINT64_C(0x9e3779b97f4a7c15)) >>
                      (64 - log2));
}

/* Where a (stack, size) record starts probing in the index: from the
 * stack's hash, not its id, so that a sampler can prefetch the line
 * before it has interned the stack (ids and hashes name stacks one to one,
 * so the identity compared is still the id). */
static inline uint32_t bucket_home(uint64_t stack_hash, uint64_t size)
{
    uint64_t h = stack_hash ^ size * UINT64_C(0x9e3779b97f4a7c15);
    h ^= h >> 29;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 32;
    return (uint32_t)(h >> (64 - BUCKET_INDEX_LOG2));
}

static inline uint32_t size_key(uint64_t size)
{
    return size < CP_HEAP_SIZE_KEY_MAX ? (uint32_t)size : CP_HEAP_SIZE_KEY_MAX;
}

void cp_heap_bucket_prefetch(uint64_t stack_hash, uint64_t size)
{
    _Atomic uint32_t *ix = atomic_load_explicit(&heap_table.index,
                                                memory_order_acquire);
    if (ix)
        __builtin_prefetch(
            (const void *)&ix[bucket_home(stack_hash, size_key(size))]);
}

void cp_heap_bucket_prefetch_counts(uint64_t stack_hash, uint64_t size)
{
    cp_heap_bucket *b = atomic_load_explicit(&heap_table.buckets,
                                             memory_order_acquire);
    _Atomic uint32_t *ix = atomic_load_explicit(&heap_table.index,
                                                memory_order_acquire);
    if (!b || !ix)
        return;
    uint32_t e = atomic_load_explicit(
        &ix[bucket_home(stack_hash, size_key(size))], memory_order_relaxed);
    if (e != 0 && e <= BUCKET_MAX)
        __builtin_prefetch((const void *)&b[e - 1], 1);
}

/* Anonymous memory; populate: fault every page in now, in one system
 * call, rather than one trap (or two, and an IPI) per page later. */
static void *map(size_t bytes, bool populate)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
                       (populate ? MAP_POPULATE : 0),
                   -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/* Segment k's slots, mapped on first need when create is set. */
static _Atomic uint64_t *seg_slots(unsigned k, bool create)
{
    _Atomic(_Atomic uint64_t *) *at = &heap_table.seg[k];
    _Atomic uint64_t *t = atomic_load_explicit(at, memory_order_acquire);
    if (t || !create)
        return t;
    size_t bytes = sizeof(uint64_t) << seg_log2(k);
    _Atomic uint64_t *fresh = map(bytes, true);
    if (!fresh)
        return NULL;
    if (!atomic_compare_exchange_strong_explicit(at, &t, fresh,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire)) {
        munmap((void *)fresh, bytes); /* another thread mapped it first */
        return t;
    }
    return fresh;
}

/* The first slot of addr's line in a segment of 2^log2 slots. */
static inline _Atomic uint64_t *addr_line(_Atomic uint64_t *t, uint64_t addr,
                                          uint32_t log2)
{
    return t + (size_t)addr_home(addr, log2 - 3) * LINE_SLOTS;
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
        /* Another thread maps; it takes three system calls. */
        while ((st = atomic_load_explicit(&heap_table.init_state,
                                          memory_order_acquire)) == 1)
            ;
        return st == 2 ? 0 : -ENOMEM;
    }
    int saved = errno;
    size_t bbytes = sizeof(cp_heap_bucket) * BUCKET_MAX;
    size_t ibytes = sizeof(uint32_t) * BUCKET_INDEX_SLOTS;
    void *b = map(bbytes, false); /* touched densely, by creating writes */
    void *ix = map(ibytes, true);
    _Atomic uint64_t *s0 = seg_slots(0, true);
    if (!b || !ix || !s0) {
        if (b)
            munmap(b, bbytes);
        if (ix)
            munmap(ix, ibytes);
        errno = saved;
        atomic_store_explicit(&heap_table.init_state, -1, memory_order_release);
        return -ENOMEM;
    }
    errno = saved;
    atomic_store_explicit(&heap_table.buckets, b, memory_order_relaxed);
    atomic_store_explicit(&heap_table.index, ix, memory_order_relaxed);
    atomic_store_explicit(&heap_table.init_state, 2, memory_order_release);
    return 0;
}

cp_heap_bucket *cp_heap_bucket_get(uint32_t stack_id, uint64_t stack_hash,
                                   uint64_t size, uint32_t *index)
{
    cp_heap_bucket *b = atomic_load_explicit(&heap_table.buckets,
                                             memory_order_acquire);
    _Atomic uint32_t *ix = atomic_load_explicit(&heap_table.index,
                                                memory_order_acquire);
    if (!b || !ix)
        return NULL;
    uint64_t key = ((uint64_t)stack_id + 1) << 32 |
                   size_key(size);
    uint32_t i = bucket_home(stack_hash, key & 0xffffffffu);
    uint32_t spare = UINT32_MAX; /* a bucket claimed and keyed, unpublished */
    cp_heap_bucket *found = NULL;
    for (uint32_t n = 0; n < BUCKET_INDEX_SLOTS;
         n++, i = (i + 1) & (BUCKET_INDEX_SLOTS - 1)) {
        uint32_t e = atomic_load_explicit(&ix[i], memory_order_acquire);
        if (e == 0) {
            /* Not in the table: claim the next bucket, key it, then
             * publish it in this index slot. */
            if (spare == UINT32_MAX) {
                if (atomic_load_explicit(&heap_table.bucket_next,
                                         memory_order_relaxed) >= BUCKET_MAX)
                    break;
                spare = atomic_fetch_add_explicit(&heap_table.bucket_next, 1,
                                                  memory_order_relaxed);
                if (spare >= BUCKET_MAX) {
                    spare = UINT32_MAX;
                    break;
                }
                atomic_store_explicit(&b[spare].key, key, memory_order_release);
            }
            if (atomic_compare_exchange_strong_explicit(
                    &ix[i], &e, spare + 1, memory_order_acq_rel,
                    memory_order_acquire)) {
                *index = spare;
                return &b[spare];
            }
            /* Lost the slot: e now names the winner's bucket. */
        }
        uint32_t at = e - 1;
        if (atomic_load_explicit(&b[at].key, memory_order_acquire) == key) {
            *index = at;
            found = &b[at];
            break;
        }
    }
    /* A claimed bucket we did not publish stays unused (readers skip a
     * zero key). */
    if (spare != UINT32_MAX)
        atomic_store_explicit(&b[spare].key, 0, memory_order_release);
    return found;
}

bool cp_heap_addr_insert(uintptr_t addr, uint32_t index)
{
    if (addr == 0 || ((uint64_t)addr & ~ADDR_MASK) || index >= BUCKET_MAX)
        return false;
    uint64_t word = (uint64_t)addr | (uint64_t)index << ADDR_BITS;
    for (unsigned k = 0; k < ADDR_SEGS; k++) {
        _Atomic uint64_t *t = seg_slots(k, k > 0);
        if (!t)
            return false; /* not initialised, or out of memory */
        _Atomic uint64_t *line = addr_line(t, addr, seg_log2(k));
        for (unsigned j = 0; j < LINE_SLOTS; j++) {
            uint64_t cur = atomic_load_explicit(&line[j], memory_order_relaxed);
            if (cur == SLOT_EMPTY &&
                atomic_compare_exchange_strong_explicit(
                    &line[j], &cur, word, memory_order_release,
                    memory_order_relaxed))
                return true;
        }
        /* This line is full: the next segment's line for addr. */
    }
    return false;
}

void cp_heap_addr_prefetch(uintptr_t addr)
{
    _Atomic uint64_t *t = seg_slots(0, false);
    if (t)
        __builtin_prefetch((const void *)addr_line(t, addr, seg_log2(0)), 1);
}

cp_heap_bucket *cp_heap_addr_remove(uintptr_t addr, uint32_t *index)
{
    if (addr == 0 || ((uint64_t)addr & ~ADDR_MASK))
        return NULL;
    for (unsigned k = 0; k < ADDR_SEGS; k++) {
        _Atomic uint64_t *t = seg_slots(k, false);
        if (!t)
            return NULL; /* segments are mapped in order */
        _Atomic uint64_t *line = addr_line(t, addr, seg_log2(k));
        for (unsigned j = 0; j < LINE_SLOTS; j++) {
            uint64_t cur = atomic_load_explicit(&line[j], memory_order_acquire);
            if ((cur & ADDR_MASK) != addr)
                continue;
            /* Only the thread freeing addr can remove it: the CAS cannot
             * fail unless the caller double-frees, and then one wins. */
            if (!atomic_compare_exchange_strong(&line[j], &cur, SLOT_EMPTY))
                return NULL;
            cp_heap_bucket *b = atomic_load_explicit(&heap_table.buckets,
                                                     memory_order_relaxed);
            *index = (uint32_t)(cur >> ADDR_BITS);
            return &b[*index];
        }
    }
    return NULL;
}

cp_heap_bucket *cp_heap_bucket_of(uint32_t index)
{
    cp_heap_bucket *b = atomic_load_explicit(&heap_table.buckets,
                                             memory_order_relaxed);
    return b && index < BUCKET_MAX ? &b[index] : NULL;
}

size_t cp_heap_addr_live(void)
{
    /* Counted when asked (normal context), so that inserts and removes
     * write nothing shared but their own slot. */
    size_t n = 0;
    for (unsigned k = 0; k < ADDR_SEGS; k++) {
        _Atomic uint64_t *t = seg_slots(k, false);
        if (!t)
            break;
        for (size_t i = 0; i < ((size_t)1 << seg_log2(k)); i++)
            n += atomic_load_explicit(&t[i], memory_order_relaxed) != SLOT_EMPTY;
    }
    return n;
}

size_t cp_heap_table_bytes(void)
{
    if (atomic_load_explicit(&heap_table.init_state, memory_order_acquire) != 2)
        return 0;
    size_t n = atomic_load_explicit(&heap_table.bucket_next,
                                    memory_order_relaxed);
    if (n > BUCKET_MAX)
        n = BUCKET_MAX;
    /* Buckets: the pages touched so far; index and segments: mapped whole. */
    size_t bytes = (n * sizeof(cp_heap_bucket) + 4095) & ~(size_t)4095;
    bytes += sizeof(uint32_t) * BUCKET_INDEX_SLOTS;
    for (unsigned k = 0; k < ADDR_SEGS; k++)
        if (seg_slots(k, false))
            bytes += sizeof(uint64_t) << seg_log2(k);
    return bytes;
}

size_t cp_heap_bucket_slots(void)
{
    if (!atomic_load_explicit(&heap_table.buckets, memory_order_acquire))
        return 0;
    uint32_t n = atomic_load_explicit(&heap_table.bucket_next,
                                      memory_order_acquire);
    return n < BUCKET_MAX ? n : BUCKET_MAX;
}

const cp_heap_bucket *cp_heap_bucket_at(size_t i)
{
    cp_heap_bucket *b = atomic_load_explicit(&heap_table.buckets,
                                             memory_order_acquire);
    return b && i < cp_heap_bucket_slots() ? &b[i] : NULL;
}
