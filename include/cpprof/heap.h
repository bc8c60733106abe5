/*
 * cpprof/heap.h - public API of the heap subsystem (see <cpprof.h> for the
 * conventions every cpprof function follows).
 *
 * The "heap" and "allocs" profiles come from sampling the malloc family
 * (malloc, calloc, realloc, reallocarray, posix_memalign, aligned_alloc,
 * memalign, valloc, pvalloc; C++ operator new reaches them through
 * malloc).  As in Go, on average one sample is taken per `rate` bytes
 * allocated and each sample is scaled back up when the profile is written.
 * "Live" (inuse_*) means allocated and not yet freed: there is no GC.
 * See docs/heap.md.
 */
#ifndef CPPROF_HEAP_H
#define CPPROF_HEAP_H

#include <stddef.h>
#include <stdint.h>

#include <cpprof/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Go's runtime.MemProfileRate default: one sample per 512 KiB. */
#define CPPROF_HEAP_DEFAULT_RATE (512 * 1024)

/*
 * Sets the average number of bytes between heap samples (Go's
 * runtime.MemProfileRate): 1 records every allocation, 0 turns sampling
 * off.  The rate applies to allocations made after the call; blocks
 * already sampled keep their recorded weight.  Returns 0, -ERANGE for a
 * negative rate, or -ENOSYS when malloc interposition is compiled out
 * (sanitizer builds).  Any thread, normal context.
 */
CPPROF_EXPORT int cpprof_heap_set_rate(int64_t bytes);

/* The current sampling rate in bytes (0 when off or compiled out). */
CPPROF_EXPORT int64_t cpprof_heap_rate(void);

/*
 * Stack dumps for the "threads" profile signal every thread and wait at
 * most this long in total for their answers; threads that do not answer
 * in time (signals blocked, stopped) are listed without a stack.
 * Default 250 ms; -ERANGE outside 1..10000 ms.  Any thread.
 */
CPPROF_EXPORT int cpprof_threads_set_timeout_ms(int ms);

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_HEAP_H */
