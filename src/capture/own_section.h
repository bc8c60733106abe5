/*
 * capture/own_section.h - marks the profiler's own work on a thread, so
 * that it never shows up in the program's profiles.
 *
 * Between cp_own_begin and cp_own_end, this thread's allocations are
 * never sampled (what building, symbolizing and writing a profile
 * allocates is not the program's memory), and its waits and its
 * releases of contended locks are never recorded in the block and mutex
 * profiles (the profiler's own locks are not the program's contention).
 * The pair nests, end restoring what begin returned; cp_own_now tells
 * whether the thread is inside a section.  Threads the profiler creates
 * from inside one (HTTP server, service, drain threads) inherit it for
 * their whole life (capture/thread_shim.c).
 *
 * Implemented in capture/malloc_shim.c, where the flag doubles as the
 * heap sampler's re-entry guard (tools/cpprof/no_sampler.c for the
 * command-line tool, which carries no shim).  Any context, signal
 * handlers included: one thread-local flag.
 */
#ifndef CP_CAPTURE_OWN_SECTION_H
#define CP_CAPTURE_OWN_SECTION_H

#include <stdbool.h>

bool cp_own_begin(void);
void cp_own_end(bool was_own);
bool cp_own_now(void);

#endif
