/*
 * capture/sync_shim.h - what the rest of libcpprof may ask of the pthread
 * interposers in capture/sync_shim.c (the public settings are in
 * <cpprof/sync.h>).  Normal context only; never from a signal handler.
 */
#ifndef CP_CAPTURE_SYNC_SHIM_H
#define CP_CAPTURE_SYNC_SHIM_H

#include <stdbool.h>

/*
 * The execution tracer (src/trace/) calls this when a trace starts (true)
 * and stops (false): while on, every interposed call that really waited
 * reports the episode with cp_trace_wait_event even when the block and
 * mutex profiles are off.
 */
void cp_sync_set_tracing(bool on);

/* Whether the lock fast path takes glibc's default mutexes itself (the
 * inlined trylock of capture/sync_shim.c), as decided when a profile or
 * tracing was first turned on; false before that.  For tests. */
bool cp_sync_inline_trylock(void);

#endif
