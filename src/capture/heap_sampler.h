/*
 * capture/heap_sampler.h - the heap sampler's state, as the interposed
 * allocator (capture/malloc_shim.c) records it and the heap profile
 * (profiles/heap.c) reads it.
 *
 * Two lock-free tables live in capture/heap_table.c, mmap'd and sized to
 * what is used (at most ~7 MiB together, see its header):
 *   - buckets: one per (stack, requested size), never removed (like Go's
 *     memory profile buckets), holding atomic alloc/free counters, stored
 *     densely in creation order;
 *   - the sampled-address set: address -> bucket for every sampled block
 *     still live, probed without a lock by a free/realloc whose address
 *     the shim's filter cannot rule out (filter mode; in header mode a
 *     sampled block's header names its bucket and the set stays empty).
 *
 * Contract: cp_heap_addr_*, cp_heap_bucket_get and cp_heap_bucket_of are
 * async-signal-safe,
 * lock-free and allocation-free (they run inside malloc/free).  The
 * readers (cp_heap_bucket_count/at) may run concurrently with them from
 * normal context; counters are read one by one, so a snapshot taken while
 * other threads allocate is consistent per counter, not across counters.
 */
#ifndef CP_CAPTURE_HEAP_SAMPLER_H
#define CP_CAPTURE_HEAP_SAMPLER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/own_section.h"
#include "model/stack_table.h"

/* Sizes of at least this are keyed together (their bytes stay exact). */
#define CP_HEAP_SIZE_KEY_MAX 0xffffffffu

typedef struct cp_heap_bucket {
    /* 0: unused.  Otherwise (stack id + 1) << 32 | min(size, KEY_MAX). */
    _Atomic uint64_t key;
    _Atomic uint64_t allocs, alloc_bytes;
    _Atomic uint64_t frees, free_bytes;
} cp_heap_bucket;

/* ---- capture/heap_table.c (async-signal-safe unless stated) ---- */

/* Maps the tables (normal context, idempotent).  0 or -ENOMEM. */
int cp_heap_table_init(void);
/* The bucket for (stack id, size), created if needed; NULL when the
 * table is full or not mapped.  stack_hash is cp_stack_hash of the stack
 * named by stack_id (it places the record in the index).  *index receives
 * the bucket's number. */
cp_heap_bucket *cp_heap_bucket_get(uint32_t stack_id, uint64_t stack_hash,
                                   uint64_t size, uint32_t *index);
/* Starts loading the index line cp_heap_bucket_get(.., stack_hash, size,
 * ..) will read first (a hint). */
void cp_heap_bucket_prefetch(uint64_t stack_hash, uint64_t size);
/* Reads the index slot where that lookup starts (a load: best after
 * cp_heap_bucket_prefetch had time to bring it in) and starts loading the
 * bucket it names, for writing (a hint: the bucket may be another key's). */
void cp_heap_bucket_prefetch_counts(uint64_t stack_hash, uint64_t size);
/* Records addr as a live sampled block of bucket index.  false when the
 * set is full or addr cannot be encoded (the sample is then dropped). */
bool cp_heap_addr_insert(uintptr_t addr, uint32_t index);
/* Starts loading the line where addr would be inserted (a hint; the
 * caller has other work to do before cp_heap_addr_insert). */
void cp_heap_addr_prefetch(uintptr_t addr);
/* The bucket numbered index (cp_heap_bucket_get's *index), or NULL. */
cp_heap_bucket *cp_heap_bucket_of(uint32_t index);
/* If addr is a live sampled block, removes it and returns its bucket
 * (and the bucket's index in *index); otherwise NULL. */
cp_heap_bucket *cp_heap_addr_remove(uintptr_t addr, uint32_t *index);
/* Number of blocks in the address set (filter mode's live sampled
 * blocks), counted slot by slot.  Normal context. */
size_t cp_heap_addr_live(void);
/* Memory the tables hold now, in bytes (normal context; stacks are in
 * the stack table, not counted here). */
size_t cp_heap_table_bytes(void);

/* Readers (normal context): the buckets created so far, some of them
 * unused (zero key or no allocations: skip those). */
size_t cp_heap_bucket_slots(void);
const cp_heap_bucket *cp_heap_bucket_at(size_t i);

/* ---- capture/malloc_shim.c ---- */

/* Whether the allocator is interposed in this build (false under
 * sanitizers, where the sanitizer owns malloc). */
bool cp_heap_interposed(void);
/* Bytes of the free-path filter level that free reads now (2048 or
 * 32768, growing and shrinking with the live sampled blocks; 0 before
 * the allocator is resolved, in header mode, or when not interposed).
 * Any context. */
size_t cp_heap_filter_bytes(void);
/* Whether sampled blocks carry headers (header mode: the real allocator
 * is glibc's; see capture/malloc_shim.c) rather than being found through
 * the filter and the address set.  Fixed once the allocator is resolved;
 * false before.  Any context. */
bool cp_heap_headers(void);
/* Live sampled blocks, in either mode (relaxed counters).  Any context. */
size_t cp_heap_sampled_live(void);
/* Rate in bytes (0 = off, 1 = every allocation).  A rate change reaches
 * the calling thread at its next allocation, other threads within their
 * next 256 KiB allocated.  Normal context. */
void cp_heap_rate_set(int64_t rate);
int64_t cp_heap_rate_get(void);
/* The stack table the sampler interns into (NULL before the first
 * sample).  Normal context. */
cp_stack_table *cp_heap_stacks(void);
/* Samples lost because a table was full or the stack table could not
 * grow, and samples skipped while a fork was in progress. */
uint64_t cp_heap_dropped(void);
/* Makes the per-thread sampling intervals reproducible (tests): every
 * thread that draws its next interval after this call reseeds from seed. */
void cp_heap_seed(uint64_t seed);


#endif
