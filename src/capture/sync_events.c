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
 * A record's pcs never change once published, which is what lets a
 * thread's hint skip the hash: one memcmp against a read-only line.  Its
 * counters are striped (CP_SYNC_STRIPES sets, a thread adds to its own
 * stripe's), so threads recording the same stack do not pass a cache line
 * back and forth; readers sum the stripes.
 *
 * Waiters: groups of 8 ways.  A way's key (the lock address, on one
 * read-mostly line per group) is sticky: it stays with its lock while the
 * lock has no waiters, so the steady state writes no key at all.  Each
 * way's counters have a cache line of their own, written only by that
 * lock's waiters and holders:
 *     time = (sum of the waiters' start times mod 2^56) << 8 | waiters
 * A releasing holder charges n * now - sum and restarts every waiter's
 * clock with one CAS (sum = n * now), then notes `last` = now; a waiter
 * leaving subtracts max(its start, last), exactly what it contributed.
 * The sum is kept modulo 2^56 ns and only differences are used, so
 * absolute times never overflow (a single charge must stay < 2^55 ns,
 * about 417 days).  Releases of one mutex are serialised by the mutex
 * itself, so `last` is read consistently by the next holder.
 *
 * A way whose lock has no waiters can be taken by another lock: the
 * taker parks the key at BUSY, checks the count is still 0, and only
 * then installs its address; a waiter that counted itself in a way whose
 * key changed under it takes itself out again and looks anew.  Two
 * threads claiming for the same new lock at once may take a way each: a
 * release settles every way of its group keyed to its lock, so that costs
 * a way, not accuracy.
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

#define WAIT_GROUPS_LOG2 8
#define WAIT_WAYS 8
#define WAIT_SLOTS ((1u << WAIT_GROUPS_LOG2) * WAIT_WAYS)
#define WAIT_N_MAX 255 /* the time word keeps n in 8 bits */
#define WAIT_ADDR_BITS 48
#define KEY_FREE 0
#define KEY_BUSY 1     /* no lock lives at address 1 */
#define SUM_MASK ((UINT64_C(1) << 56) - 1)
#define CAS_TRIES 64   /* bound on retries; past it the wait is untracked */

typedef struct sync_rec {
    _Atomic uint64_t tag;
    uint32_t kind;
    uint32_t depth;
} sync_rec;

/* A record's counters, one set per stripe. */
typedef struct sync_ctr {
    _Atomic uint64_t count; /* CP_SYNC_COUNT_ONE fixed point */
    _Atomic uint64_t delay; /* nanoseconds */
} sync_ctr;

typedef struct sync_way {
    _Alignas(64) _Atomic uint64_t time; /* sum << 8 | waiters */
    _Atomic uint64_t last;              /* ns of the last release */
} sync_way;

static struct {
    sync_rec recs[REC_SLOTS];
    uintptr_t pcs[REC_SLOTS][CP_SYNC_DEPTH];
    /* Stripe-major, so threads of different stripes adding to the same
     * record write different cache lines. */
    _Alignas(64) sync_ctr ctr[CP_SYNC_STRIPES][REC_SLOTS];
    _Atomic uint64_t lost[CP_SYNC_NKINDS];
    _Alignas(64) _Atomic uint64_t keys[WAIT_SLOTS];
    sync_way ways[WAIT_SLOTS];
} sync_tables;

/* Ways with waiters (or about to have some) per address slice: see
 * cp_sync_maybe_waited.  Each increment is matched by one decrement. */
struct cp_sync_busy cp_sync_busy __attribute__((visibility("hidden")));

uint64_t cp_sync_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ records */

static bool rec_matches(size_t i, enum cp_sync_kind kind,
                        const uintptr_t *pcs, size_t depth)
{
    const sync_rec *r = &sync_tables.recs[i];
    return r->kind == (uint32_t)kind && r->depth == depth &&
           memcmp(sync_tables.pcs[i], pcs, depth * sizeof *pcs) == 0;
}

int cp_sync_record_find(enum cp_sync_kind kind, const uintptr_t *pcs,
                        size_t depth, int *hint)
{
    if ((unsigned)kind >= CP_SYNC_NKINDS)
        return -1;
    if (depth > CP_SYNC_DEPTH)
        depth = CP_SYNC_DEPTH;
    /* A published record never changes: a hint that matches is it. */
    if (*hint >= 0 && (unsigned)*hint < REC_SLOTS &&
        rec_matches((size_t)*hint, kind, pcs, depth))
        return *hint;

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
                return *hint = (int)i;
            }
            /* Lost the race: tag now holds what the winner wrote. */
        }
        if (tag == want && rec_matches(i, kind, pcs, depth))
            return *hint = (int)i;
    }
    atomic_fetch_add_explicit(&sync_tables.lost[kind], 1,
                              memory_order_relaxed);
    return -1;
}

void cp_sync_record_add(int idx, unsigned stripe, uint64_t count,
                        uint64_t delay_ns)
{
    if (idx < 0 || (unsigned)idx >= REC_SLOTS)
        return;
    sync_ctr *c = &sync_tables.ctr[stripe % CP_SYNC_STRIPES][idx];
    atomic_fetch_add_explicit(&c->count, count, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->delay, delay_ns, memory_order_relaxed);
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
    uint64_t count = 0, delay = 0;
    for (size_t s = 0; s < CP_SYNC_STRIPES; s++) {
        const sync_ctr *c = &sync_tables.ctr[s][i];
        count += atomic_load_explicit(&c->count, memory_order_relaxed);
        delay += atomic_load_explicit(&c->delay, memory_order_relaxed);
    }
    e->pcs = sync_tables.pcs[i];
    e->depth = r->depth;
    e->count = (int64_t)((count + CP_SYNC_COUNT_ONE / 2) / CP_SYNC_COUNT_ONE);
    e->delay_ns = (int64_t)delay;
    return true;
}

size_t cp_sync_record_count(enum cp_sync_kind kind)
{
    /* Records are created before the event that fills them is known to
     * be sampled; only those with an event count. */
    size_t n = 0;
    for (size_t i = 0; i < REC_SLOTS; i++) {
        cp_sync_entry e;
        if (cp_sync_record_get(i, kind, &e) && (e.count | e.delay_ns) != 0)
            n++;
    }
    return n;
}

uint64_t cp_sync_lost(enum cp_sync_kind kind)
{
    if ((unsigned)kind >= CP_SYNC_NKINDS)
        return 0;
    return atomic_load_explicit(&sync_tables.lost[kind],
                                memory_order_relaxed);
}

/* ------------------------------------------------------------ waiters */

static size_t wait_group(uint64_t addr)
{
    return (size_t)(cp_hash_mix(addr) >> (64 - WAIT_GROUPS_LOG2)) * WAIT_WAYS;
}

/* The way whose key is addr, or -1. */
static int way_of(uint64_t a)
{
    size_t g = wait_group(a);
    for (size_t w = 0; w < WAIT_WAYS; w++)
        if (atomic_load_explicit(&sync_tables.keys[g + w],
                                 memory_order_acquire) == a)
            return (int)(g + w);
    return -1;
}

/*
 * A way for addr: its own, else a free one, else one whose lock has no
 * waiters (parked at BUSY while the count is checked).  -1: none.  Two
 * threads claiming for the same new lock may still end up with a way
 * each; a release therefore settles every way keyed to its lock.
 */
static int way_claim(uint64_t a)
{
    size_t g = wait_group(a);
    for (int tries = 0; tries < CAS_TRIES; tries++) {
        int i = way_of(a);
        if (i >= 0)
            return i;
        bool raced = false;
        for (size_t w = 0; w < WAIT_WAYS && !raced; w++) {
            size_t j = g + w;
            uint64_t k = atomic_load_explicit(&sync_tables.keys[j],
                                              memory_order_acquire);
            if (k == KEY_BUSY) {
                raced = true; /* maybe our lock being installed: look again */
                break;
            }
            if (k != KEY_FREE &&
                (atomic_load_explicit(&sync_tables.ways[j].time,
                                      memory_order_acquire) & 0xff) != 0)
                continue;
            if (!atomic_compare_exchange_strong_explicit(
                    &sync_tables.keys[j], &k, KEY_BUSY,
                    memory_order_acq_rel, memory_order_relaxed)) {
                raced = true;
                break;
            }
            if ((atomic_load_explicit(&sync_tables.ways[j].time,
                                      memory_order_acquire) & 0xff) != 0) {
                /* A waiter of the old lock slipped in: give it back. */
                atomic_store_explicit(&sync_tables.keys[j], k,
                                      memory_order_release);
                continue;
            }
            atomic_store_explicit(&sync_tables.keys[j], a,
                                  memory_order_release);
            return (int)j;
        }
        if (!raced)
            return -1; /* 8 other locks with waiters share this group */
    }
    return -1;
}

static int wait_register(uint64_t a, uint64_t t0);

/* Takes one waiter of the lock at a, who started at t0, out of way i;
 * the last one out takes the way out of its slice's busy count. */
static void way_leave(int i, uint64_t a, uint64_t t0)
{
    sync_way *s = &sync_tables.ways[i];
    uint64_t last = atomic_load_explicit(&s->last, memory_order_acquire);
    uint64_t eff = t0 > last ? t0 : last;
    uint64_t w = atomic_load_explicit(&s->time, memory_order_relaxed);
    for (;;) {
        uint64_t n = w & 0xff;
        if (n == 0)
            return;
        /* The last one out clears the residue of races. */
        uint64_t nw = n == 1 ? 0 : (w - (eff << 8)) - 1;
        if (atomic_compare_exchange_weak_explicit(&s->time, &w, nw,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if ((w & 0xff) == 1)
        cp_sync_wait_done((const void *)(uintptr_t)a);
}

int cp_sync_wait_begin(const void *addr, uint64_t t0)
{
    uint64_t a = (uintptr_t)addr;
    if (a <= KEY_BUSY || (a >> WAIT_ADDR_BITS) != 0)
        return -1;
    return wait_register(a, t0);
}

void cp_sync_wait_done(const void *addr)
{
    atomic_fetch_sub_explicit(cp_sync_busy_of(addr), 1, memory_order_relaxed);
}

/*
 * Counts a waiter that started at t0 in a way for a: the way, or -1.  A
 * way going from no waiters to some enters its slice's busy count first,
 * so the unlock fast path never misses it; in a steady convoy (the way
 * never empties) the busy line is not written at all.
 */
static int wait_register(uint64_t a, uint64_t t0)
{
    const void *addr = (const void *)(uintptr_t)a;
    for (int tries = 0; tries < CAS_TRIES; tries++) {
        int i = way_claim(a);
        if (i < 0)
            return -1; /* 8 other locks with waiters share this group */
        sync_way *s = &sync_tables.ways[i];
        uint64_t w = atomic_load_explicit(&s->time, memory_order_relaxed);
        bool counted = false;
        for (;;) {
            if ((w & 0xff) >= WAIT_N_MAX) {
                if (counted)
                    cp_sync_wait_done(addr);
                return -1;
            }
            if ((w & 0xff) == 0 && !counted) {
                atomic_fetch_add_explicit(cp_sync_busy_of(addr), 1,
                                          memory_order_relaxed);
                counted = true;
            }
            if (atomic_compare_exchange_weak_explicit(
                    &s->time, &w, w + (t0 << 8) + 1, memory_order_acq_rel,
                    memory_order_relaxed))
                break;
        }
        if (counted && (w & 0xff) != 0)
            cp_sync_wait_done(addr); /* someone else came first */
        if (atomic_load_explicit(&sync_tables.keys[i],
                                 memory_order_acquire) == a)
            return i;
        way_leave(i, a, t0); /* the way changed hands under us */
    }
    return -1;
}

void cp_sync_wait_end(const void *addr, int slot, uint64_t t0)
{
    if (slot < 0 || (unsigned)slot >= WAIT_SLOTS)
        return;
    way_leave(slot, (uintptr_t)addr, t0);
}

/* The release step on way i (own: the caller's wait there ends too):
 * returns the charge and adds the waiters still there to *waiters. */
static uint64_t way_release(size_t i, bool own, uint64_t own_t0,
                            uint64_t *now, uint64_t *waiters, bool *idle)
{
    sync_way *s = &sync_tables.ways[i];
    /* This runs inside the critical section and the line was last
     * written by an arriving waiter: ask for it writable at once, so the
     * CAS below does not pay a second transfer. */
    __builtin_prefetch(&s->time, 1);
    uint64_t w = atomic_load_explicit(&s->time, memory_order_acquire);
    if ((w & 0xff) == 0)
        return 0; /* nobody waits: no clock read */
    uint64_t eff = 0;
    if (own) {
        uint64_t last = atomic_load_explicit(&s->last, memory_order_acquire);
        eff = own_t0 > last ? own_t0 : last;
    }
    uint64_t n, charge;
    for (;;) {
        n = w & 0xff;
        if (n == 0)
            return 0; /* everyone left (or a reset forgot them) */
        uint64_t sum = w >> 8, nw = 0;
        if (own) {
            n--; /* the caller's own wait ends here */
            sum = n == 0 ? 0 : (sum - eff) & SUM_MASK;
        }
        charge = 0;
        if (n > 0) {
            if (*now == 0)
                *now = cp_sync_now(); /* only when someone else waits */
            charge = (n * *now - sum) & SUM_MASK;
            if (charge >> 55)
                charge = 0; /* negative: a race with a leaving waiter */
            nw = (((n * *now) & SUM_MASK) << 8) | n;
        }
        if (atomic_compare_exchange_weak_explicit(&s->time, &w, nw,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed))
            break;
    }
    if (n == 0) {
        *idle = own; /* the caller's leaving emptied the way */
        return 0;
    }
    atomic_store_explicit(&s->last, *now, memory_order_release);
    *waiters += n;
    return charge;
}

uint64_t cp_sync_release(const void *addr, int own_slot, uint64_t own_t0,
                         uint64_t *waiters, bool *idle)
{
    *waiters = 0;
    *idle = false;
    uint64_t a = (uintptr_t)addr;
    if (a <= KEY_BUSY || (a >> WAIT_ADDR_BITS) != 0)
        return 0;
    size_t g = wait_group(a);
    uint64_t now = 0, total = 0;
    for (size_t w = 0; w < WAIT_WAYS; w++) {
        size_t i = g + w;
        bool own = own_slot >= 0 && (size_t)own_slot == i;
        if (own || atomic_load_explicit(&sync_tables.keys[i],
                                        memory_order_acquire) == a)
            total += way_release(i, own, own_t0, &now, waiters, idle);
    }
    return total;
}

void cp_sync_waiters_reset(void)
{
    for (size_t i = 0; i < WAIT_SLOTS; i++)
        atomic_store_explicit(&sync_tables.ways[i].time, 0,
                              memory_order_relaxed);
    for (size_t i = 0; i < CP_SYNC_BUSY_SLICES; i++)
        atomic_store_explicit(&cp_sync_busy.slice[i].waiting, 0,
                              memory_order_relaxed);
}
