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
 *   - waiters: mutex/rwlock address -> (number of threads now waiting,
 *     sum of their start times), so that an unlock can charge the holder
 *     for the waiting its critical section caused.
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

/* (fence) CLOCK_MONOTONIC in nanoseconds. */
uint64_t cp_sync_now(void);

/* (fence) Adds count (in CP_SYNC_COUNT_ONE units: Go's counts can be
 * fractional after rate scaling) and delay_ns to the record of
 * (kind, pcs[0..depth)), creating it if needed. */
void cp_sync_record(enum cp_sync_kind kind, const uintptr_t *pcs,
                    size_t depth, uint64_t count, uint64_t delay_ns);

/*
 * (fence) The calling thread starts waiting for the lock at addr at time
 * t0 (cp_sync_now).  Returns a slot to hand to cp_sync_wait_end, or -1
 * when the wait cannot be tracked (table group full, odd address); the
 * wait is then simply not charged to anyone.
 */
int cp_sync_wait_begin(const void *addr, uint64_t t0);
/* (fence) The wait registered in slot (which started at t0) is over. */
void cp_sync_wait_end(int slot, uint64_t t0);
/*
 * (fence) Called by the holder of the lock at addr just before releasing
 * it: returns the nanoseconds the current waiters spent waiting since the
 * later of their arrival and the previous release (the waiting this
 * critical section caused) and sets *waiters to how many were waiting.
 * The waiters' clocks restart now, so each moment of waiting is charged
 * once.  Costs one load when no thread in the process is waiting.
 */
uint64_t cp_sync_release(const void *addr, uint64_t *waiters);

/* (fence) Threads now registered as waiting, process-wide: the unlock
 * fast path reads this one word and skips cp_sync_release when it is 0. */
extern _Atomic uint64_t cp_sync_waiting;
#define cp_sync_anyone_waiting() \
    (atomic_load_explicit(&cp_sync_waiting, memory_order_relaxed) != 0)

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
/* Number of distinct stacks recorded for kind. */
size_t cp_sync_record_count(enum cp_sync_kind kind);
/* Events of kind dropped because the record table was full. */
uint64_t cp_sync_lost(enum cp_sync_kind kind);

#endif
