/*
 * capture/sync_events.h - the sync profiles' capture-side state: what the
 * interposed pthread/sem calls (capture/sync_shim.c) record and what the
 * block and mutex profiles (profiles/block.c, profiles/mutex.c) read.
 *
 * Two fixed-size, lock-free tables live in capture/sync_events.c:
 *   - records: (kind, stack) -> cumulative counters, insert-only, so
 *     memory is bounded by the number of distinct stacks and no drain is
 *     needed between profile writes (Go's block/mutex buckets work the
 *     same way).  A full table counts the event as lost.
 *   - waiters: lock address -> (number of threads now waiting, sum of
 *     their start times), so that a release can charge the holder for
 *     the waiting its critical section caused.  Every lock has its own
 *     cache line (hashed by address): waiters of different locks never
 *     share a written line, and nothing process-wide is written.  A
 *     small array of per-address-slice counters (cp_sync_busy) lets an
 *     unlock skip all of it when nobody can be waiting.
 *
 * Contract: everything marked (fence) is ASYNC-SIGNAL-SAFE, lock-free,
 * allocation-free and errno-preserving; it runs inside interposed calls.
 * The readers run in normal context, concurrently with the writers; each
 * counter is read atomically, not the set of them.
 */
#ifndef CP_CAPTURE_SYNC_EVENTS_H
#define CP_CAPTURE_SYNC_EVENTS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cp_sync_kind { CP_SYNC_BLOCK = 0, CP_SYNC_MUTEX = 1, CP_SYNC_NKINDS };

#define CP_SYNC_DEPTH 64      /* frames kept per recorded stack */
#define CP_SYNC_COUNT_ONE 1024 /* fixed-point unit of a record's count */
#define CP_SYNC_STRIPES 8     /* counter sets per record */

/* (fence) CLOCK_MONOTONIC in nanoseconds. */
uint64_t cp_sync_now(void);

/*
 * (fence) The record of (kind, pcs[0..depth)), created (with zero
 * counters) if needed: an index for cp_sync_record_add, or -1 when the
 * table is full (the loss is counted).  *hint is the caller's per-thread
 * memo of its last answer (start it at -1): when the stack is the same
 * as last time, the lookup is one comparison instead of hash and probe.
 */
int cp_sync_record_find(enum cp_sync_kind kind, const uintptr_t *pcs,
                        size_t depth, int *hint);
/* (fence) Adds count (in CP_SYNC_COUNT_ONE units: Go's counts can be
 * fractional after rate scaling) and delay_ns to record idx (>= 0), in
 * the caller's stripe (any number, the same for a thread's life). */
void cp_sync_record_add(int idx, unsigned stripe, uint64_t count,
                        uint64_t delay_ns);

/*
 * (fence) The calling thread starts waiting for the lock at addr at time
 * t0 (cp_sync_now).  Returns a slot for cp_sync_wait_end or
 * cp_sync_release, or -1 when the wait cannot be tracked (every slot of
 * the address's group is busy with another lock, odd address); the wait
 * is then charged to no one.
 */
int cp_sync_wait_begin(const void *addr, uint64_t t0);
/* (fence) The wait on addr registered in slot at t0 is over, now. */
void cp_sync_wait_end(const void *addr, int slot, uint64_t t0);
/* (fence) When cp_sync_release set *idle (the caller's own wait was the
 * last on addr): takes the lock out of the hint below.  Call it after the
 * real release, so it costs the critical section nothing. */
void cp_sync_wait_done(const void *addr);
/*
 * (fence) Called by the holder of the lock at addr just before releasing
 * it: returns the nanoseconds the current waiters spent waiting since the
 * later of their arrival and the previous release (the waiting this
 * critical section caused) and sets *waiters to how many were waiting.
 * The waiters' clocks restart now, so each moment of waiting is charged
 * once.  When the caller itself waited for this lock and has not ended
 * that wait yet (own_slot >= 0, own_t0 its start), the wait ends here, in
 * the same atomic step: a waiter that got the lock can defer its
 * cp_sync_wait_end to its release and so add nothing to its own critical
 * section; *idle then says whether that emptied addr's waiters (see
 * cp_sync_wait_done).  No clock read when nobody waits for addr.
 */
uint64_t cp_sync_release(const void *addr, int own_slot, uint64_t own_t0,
                         uint64_t *waiters, bool *idle);
/* (normal context) Forgets every registered waiter: the mutex profile
 * calls it when it is turned on, since waits begun while it was off (or
 * left unfinished when it was turned off) were never ended. */
void cp_sync_waiters_reset(void);

/*
 * (fence) The unlock fast path's question: may a thread be registered as
 * waiting for addr?  One relaxed load of a line of its own per address
 * slice (addr >> 4, 512 slices) counting the locks of that slice that
 * have waiters, written only when a lock gains its first waiter or loses
 * its last; "no" is always right, "yes" may be another lock's.
 * Kept outside the tables because the interposers inline it.
 */
#define CP_SYNC_BUSY_SLICES 512
typedef struct cp_sync_busy_line {
    _Alignas(64) _Atomic uint32_t waiting;
} cp_sync_busy_line;
extern struct cp_sync_busy {
    cp_sync_busy_line slice[CP_SYNC_BUSY_SLICES];
} cp_sync_busy;

static inline _Atomic uint32_t *cp_sync_busy_of(const void *addr)
{
    return &cp_sync_busy
                .slice[((uintptr_t)addr >> 4) & (CP_SYNC_BUSY_SLICES - 1)]
                .waiting;
}

static inline bool cp_sync_maybe_waited(const void *addr)
{
    return atomic_load_explicit(cp_sync_busy_of(addr),
                                memory_order_relaxed) != 0;
}

/* ---- readers (normal context) ---- */

typedef struct cp_sync_entry {
    const uintptr_t *pcs; /* valid for the life of the process */
    size_t depth;
    int64_t count;        /* rounded from fixed point */
    int64_t delay_ns;
} cp_sync_entry;

/* Number of record slots (iterate 0..n). */
size_t cp_sync_record_slots(void);
/* Fills *e with slot i when it holds a record of kind; false otherwise. */
bool cp_sync_record_get(size_t i, enum cp_sync_kind kind, cp_sync_entry *e);
/* Number of distinct stacks with events recorded for kind. */
size_t cp_sync_record_count(enum cp_sync_kind kind);
/* Events of kind dropped because the record table was full. */
uint64_t cp_sync_lost(enum cp_sync_kind kind);

#endif
