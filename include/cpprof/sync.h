/*
 * cpprof/sync.h - the block and mutex profiles' settings (Go's
 * runtime.SetBlockProfileRate and runtime.SetMutexProfileFraction).
 * See <cpprof.h> for the conventions every cpprof function follows and
 * docs/sync.md for what the two profiles record.
 *
 * Both profiles come from interposing the blocking pthread_* and sem_*
 * calls (src/capture/sync_shim.c).  They start disabled; while both are
 * disabled an interposed call is one predictable branch plus the real
 * call.  Recorded data is cumulative for the life of the process, as in
 * Go: turning a profile off stops recording but keeps what was recorded.
 *
 * All four functions may be called from any thread at any time (not from
 * a signal handler); settings take effect for the next blocking call.
 */
#ifndef CPPROF_SYNC_H
#define CPPROF_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include <cpprof/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Sets the block profile's rate, in nanoseconds of blocked time:
 *   rate_ns <= 0  block profiling off;
 *   rate_ns == 1  every blocking event is recorded;
 *   otherwise     an event that blocked d ns is recorded when d >= rate_ns,
 *                 and with probability d / rate_ns when shorter (its values
 *                 are then scaled by rate_ns / d so totals stay unbiased).
 * Always returns 0 (a negative rate is treated as 0).  The profile stays
 * empty when the process's pthread calls do not reach cpprof's
 * interposers (libcpprof dlopen'ed after libc): see docs/sync.md.
 */
CPPROF_EXPORT int cpprof_set_block_profile_rate(int64_t rate_ns);

/* The current block profile rate in nanoseconds (0 when off). */
CPPROF_EXPORT int64_t cpprof_block_profile_rate(void);

/*
 * Sets the mutex profile's fraction and returns the previous one, like
 * Go: on average 1 in n contention events is recorded (values scaled by
 * n); 0 turns mutex profiling off; a negative n changes nothing and only
 * reports the current fraction.  Never fails.
 */
CPPROF_EXPORT int cpprof_set_mutex_profile_fraction(int n);

/* The current mutex profile fraction (0 when off). */
CPPROF_EXPORT int cpprof_mutex_profile_fraction(void);

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_SYNC_H */
