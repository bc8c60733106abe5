/*
 * capture/sync_events.c - the block and mutex profiles' lock-free tables
 * (see capture/sync_events.h for the contract).  Written from inside the
 * interposed pthread/sem calls of capture/sync_shim.c, read by
 * profiles/block.c and profiles/mutex.c when a profile is written.
 *
 * ASYNC-SIGNAL-SAFE, LOCK-FREE, ALLOCATION-FREE, errno-preserving: both
 * tables are static arrays touched only with atomic loads, adds and
 * compare-and-swap; the only call out is clock_gettime (vDSO).
 *
 * Records: open addressing keyed by a 64-bit tag (stack hash | 2; 0 is
 * empty, 1 is being filled).  A thread claims an empty slot with one CAS,
 * writes kind, depth and pcs, then publishes the tag with a release store;
 * readers and matchers acquire the tag before reading the rest.  A thread
 * that meets a slot being filled probes on, so two threads inserting the
 * same new stack at once may create two records: the profile builder
 * merges them (cp_profile_add_merged), so this costs a slot, not accuracy.
 *
 * Waiters: 8-way groups of 64-bit keys (address << 16 | number of
 * waiters), so one CAS both claims a free slot for an address and counts
 * a waiter in it, and a slot is free again when its count drops to 0.
 * Beside each key, one word packs the number of waiters contributing and
 * the sum of their start times (sum << 8 | n), in ~1 us units since the
 * first wait, so that a releasing holder reads both consistently and
 * resets every waiter's start to "now" with one CAS:
 *     charge = n * now - sum;  sum = n * now.
 * A waiter leaving subtracts max(its start, last reset), which is exactly
 * what it contributed.  Units of 1024 ns keep n * now inside 56 bits for
 * about 8.9 years of process life; errors are +-0.5 us per waiter.
 */
#include "capture/sync_events.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "model/hash.h"
#include "model/stack_table.h"

#define REC_SLOTS_LOG2 12
#define REC_SLOTS (1u << REC_SLOTS_LOG2)
#define REC_PROBE 64
#define TAG_EMPTY 0
#define TAG_BUSY 1

#define WAIT_GROUPS_LOG2 9
#define WAIT_WAYS 8
#define WAIT_SLOTS ((1u << WAIT_GROUPS_LOG2) * WAIT_WAYS)
#define WAIT_N_MASK 0xffffu
#define WAIT_N_MAX 255 /* the sum word keeps n in 8 bits */
#define WAIT_ADDR_BITS 48
#define UNIT_SHIFT 10  /* time unit: 1024 ns */
#define CAS_TRIES 64   /* bound on retries; past it the event is dropped */

typedef struct sync_rec {
    _Atomic uint64_t tag;
    uint32_t kind;
    uint32_t depth;
    _Atomic uint64_t count; /* CP_SYNC_COUNT_ONE fixed point */
    _Atomic uint64_t delay; /* nanoseconds */
} sync_rec;

typedef struct sync_wait_time {
    _Atomic uint64_t sum;  /* sum of start units << 8 | contributors */
    _Atomic uint64_t last; /* unit time of the last release */
} sync_wait_time;

static struct {
    sync_rec recs[REC_SLOTS];
    uintptr_t pcs[REC_SLOTS][CP_SYNC_DEPTH];
    _Atomic uint64_t lost[CP_SYNC_NKINDS];
    _Atomic uint32_t nrecs[CP_SYNC_NKINDS];
    _Alignas(64) _Atomic uint64_t wkeys[WAIT_SLOTS];
    sync_wait_time wtimes[WAIT_SLOTS];
    _Atomic uint64_t base_ns; /* time of the first wait */
} sync_tables;

/* Registered waiters, all slots: read by every profiled unlock, so it
 * lives alone on its cache line, outside the tables. */
_Alignas(64) _Atomic uint64_t cp_sync_waiting;

uint64_t cp_sync_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ records */

static bool rec_matches(const sync_rec *r, size_t i, enum cp_sync_kind kind,
                        const uintptr_t *pcs, size_t depth)
{
    return r->kind == (uint32_t)kind && r->depth == depth &&
           memcmp(sync_tables.pcs[i], pcs, depth * sizeof *pcs) == 0;
}

void cp_sync_record(enum cp_sync_kind kind, const uintptr_t *pcs,
                    size_t depth, uint64_t count, uint64_t delay_ns)
{
    if ((unsigned)kind >= CP_SYNC_NKINDS)
        return;
    if (depth > CP_SYNC_DEPTH)
        depth = CP_SYNC_DEPTH;
    uint64_t h = cp_hash_u64(cp_stack_hash(pcs, depth), (uint64_t)kind);
    uint64_t want = h | 2; /* never EMPTY or BUSY */

    for (size_t p = 0; p < REC_PROBE; p++) {
        size_t i = (size_t)(h + p) & (REC_SLOTS - 1);
        sync_rec *r = &sync_tables.recs[i];
        uint64_t tag = atomic_load_explicit(&r->tag, memory_order_acquire);
        if (tag == TAG_EMPTY) {
            if (atomic_compare_exchange_strong_explicit(
                    &r->tag, &tag, TAG_BUSY, memory_order_acquire,
                    memory_order_acquire)) {
                r->kind = (uint32_t)kind;
                r->depth = (uint32_t)depth;
                memcpy(sync_tables.pcs[i], pcs, depth * sizeof *pcs);
                atomic_store_explicit(&r->tag, want, memory_order_release);
                atomic_fetch_add_explicit(&sync_tables.nrecs[kind], 1,
                                          memory_order_relaxed);
                goto add;
            }
            /* Lost the race: tag now holds what the winner wrote. */
        }
        if (tag == want && rec_matches(r, i, kind, pcs, depth))
            goto add;
        continue;
    add:
        atomic_fetch_add_explicit(&r->count, count, memory_order_relaxed);
        atomic_fetch_add_explicit(&r->delay, delay_ns, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&sync_tables.lost[kind], 1,
                              memory_order_relaxed);
}

size_t cp_sync_record_slots(void)
{
    return REC_SLOTS;
}

bool cp_sync_record_get(size_t i, enum cp_sync_kind kind, cp_sync_entry *e)
{
    if (i >= REC_SLOTS)
        return false;
    sync_rec *r = &sync_tables.recs[i];
    uint64_t tag = atomic_load_explicit(&r->tag, memory_order_acquire);
    if (tag == TAG_EMPTY || tag == TAG_BUSY || r->kind != (uint32_t)kind)
        return false;
    uint64_t count = atomic_load_explicit(&r->count, memory_order_relaxed);
    e->pcs = sync_tables.pcs[i];
    e->depth = r->depth;
    e->count = (int64_t)((count + CP_SYNC_COUNT_ONE / 2) / CP_SYNC_COUNT_ONE);
    e->delay_ns =
        (int64_t)atomic_load_explicit(&r->delay, memory_order_relaxed);
    return true;
}

size_t cp_sync_record_count(enum cp_sync_kind kind)
{
    if ((unsigned)kind >= CP_SYNC_NKINDS)
        return 0;
    return atomic_load_explicit(&sync_tables.nrecs[kind],
                                memory_order_relaxed);
}

uint64_t cp_sync_lost(enum cp_sync_kind kind)
{
    if ((unsigned)kind >= CP_SYNC_NKINDS)
        return 0;
    return atomic_load_explicit(&sync_tables.lost[kind],
                                memory_order_relaxed);
}

/* ------------------------------------------------------------ waiters */

/* t in time units since the first wait (rounded to nearest). */
static uint64_t to_units(uint64_t t)
{
    uint64_t base = atomic_load_explicit(&sync_tables.base_ns,
                                         memory_order_relaxed);
    uint64_t rel = t > base ? t - base : 0;
    return (rel + (1u << (UNIT_SHIFT - 1))) >> UNIT_SHIFT;
}

static size_t wait_group(uint64_t addr)
{
    return (size_t)(cp_hash_mix(addr) >> (64 - WAIT_GROUPS_LOG2)) * WAIT_WAYS;
}

int cp_sync_wait_begin(const void *addr, uint64_t t0)
{
    uint64_t a = (uintptr_t)addr;
    if (a == 0 || (a >> WAIT_ADDR_BITS) != 0)
        return -1;
    uint64_t zero = 0;
    if (atomic_load_explicit(&sync_tables.base_ns, memory_order_relaxed) == 0)
        atomic_compare_exchange_strong_explicit(&sync_tables.base_ns, &zero,
                                                t0 ? t0 : 1,
                                                memory_order_relaxed,
                                                memory_order_relaxed);
    size_t g = wait_group(a);
    int slot = -1;

    for (int tries = 0; slot < 0 && tries < CAS_TRIES; tries++) {
        int free_i = -1;
        uint64_t free_k = 0;
        bool raced = false;
        for (size_t w = 0; w < WAIT_WAYS; w++) {
            size_t i = g + w;
            uint64_t k = atomic_load_explicit(&sync_tables.wkeys[i],
                                              memory_order_relaxed);
            uint64_t n = k & WAIT_N_MASK;
            if (n != 0 && (k >> 16) == a) {
                if (n >= WAIT_N_MAX)
                    return -1;
                if (atomic_compare_exchange_strong_explicit(
                        &sync_tables.wkeys[i], &k, k + 1,
                        memory_order_acq_rel, memory_order_relaxed))
                    slot = (int)i;
                else
                    raced = true;
                break;
            }
            if (n == 0 && free_i < 0) {
                free_i = (int)i;
                free_k = k;
            }
        }
        if (slot >= 0 || raced)
            continue;
        if (free_i < 0)
            return -1; /* 8 other contended locks share this group */
        if (atomic_compare_exchange_strong_explicit(
                &sync_tables.wkeys[free_i], &free_k, (a << 16) | 1,
                memory_order_acq_rel, memory_order_relaxed))
            slot = free_i;
    }
    if (slot < 0)
        return -1;
    atomic_fetch_add_explicit(&sync_tables.wtimes[slot].sum,
                              (to_units(t0) << 8) + 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&cp_sync_waiting, 1, memory_order_relaxed);
    return slot;
}

void cp_sync_wait_end(int slot, uint64_t t0)
{
    if (slot < 0 || (unsigned)slot >= WAIT_SLOTS)
        return;
    sync_wait_time *wt = &sync_tables.wtimes[slot];
    uint64_t start = to_units(t0);
    uint64_t last = atomic_load_explicit(&wt->last, memory_order_acquire);
    uint64_t eff = start > last ? start : last;
    uint64_t w = atomic_load_explicit(&wt->sum, memory_order_relaxed);
    for (;;) {
        uint64_t n = w & 0xff, sum = w >> 8;
        if (n == 0)
            break;
        n--;
        /* The last one out clears the residue of rounding and races. */
        sum = n == 0 ? 0 : (sum > eff ? sum - eff : 0);
        if (atomic_compare_exchange_weak_explicit(&wt->sum, &w,
                                                  (sum << 8) | n,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    atomic_fetch_sub_explicit(&sync_tables.wkeys[slot], 1,
                              memory_order_acq_rel);
    atomic_fetch_sub_explicit(&cp_sync_waiting, 1, memory_order_relaxed);
}

uint64_t cp_sync_release(const void *addr, uint64_t *waiters)
{
    *waiters = 0;
    /* The common case: nobody in the process waits on anything. */
    if (atomic_load_explicit(&cp_sync_waiting, memory_order_relaxed) == 0)
        return 0;
    uint64_t a = (uintptr_t)addr;
    if (a == 0 || (a >> WAIT_ADDR_BITS) != 0)
        return 0;
    size_t g = wait_group(a);
    uint64_t now = 0, total = 0;

    for (size_t w = 0; w < WAIT_WAYS; w++) {
        size_t i = g + w;
        uint64_t k = atomic_load_explicit(&sync_tables.wkeys[i],
                                          memory_order_acquire);
        if ((k & WAIT_N_MASK) == 0 || (k >> 16) != a)
            continue;
        if (now == 0) {
            now = to_units(cp_sync_now());
            if (now == 0)
                now = 1;
        }
        sync_wait_time *wt = &sync_tables.wtimes[i];
        uint64_t cur = atomic_load_explicit(&wt->sum, memory_order_relaxed);
        uint64_t n = 0, sum = 0;
        for (;;) {
            n = cur & 0xff;
            sum = cur >> 8;
            if (n == 0)
                break;
            if (atomic_compare_exchange_weak_explicit(
                    &wt->sum, &cur, ((n * now) << 8) | n,
                    memory_order_acq_rel, memory_order_relaxed))
                break;
        }
        if (n == 0)
            continue;
        atomic_store_explicit(&wt->last, now, memory_order_release);
        total += n * now > sum ? n * now - sum : 0;
        *waiters += n;
    }
    return total << UNIT_SHIFT;
}
