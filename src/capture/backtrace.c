/*
 * capture/backtrace.c - the calling thread's stack from normal context,
 * with libunwind's local unwinder (DWARF-based, so frames without frame
 * pointers are walked correctly).
 *
 * NOT async-signal-safe and not for allocator hooks: libunwind may call
 * dl_iterate_phdr, which takes the loader lock.  Callers: custom profiles
 * (core/registry.c) and the pthread_create shim (creating thread, normal
 * context).  Thread-safe.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "capture/backtrace.h"

#define BACKTRACE_MAX_SKIP 64

__attribute__((noinline)) size_t cp_backtrace(uintptr_t *pcs, size_t max,
                                               int skip)
{
    if (!pcs || max == 0 || skip < 0 || skip > BACKTRACE_MAX_SKIP)
        return 0;
    /* unw_backtrace's first entry is the return address into this
     * function; one more entry covers our own frame. */
    void *buf[BACKTRACE_MAX_SKIP + 1 + 128];
    size_t want = (size_t)skip + 1 + max;
    if (want > sizeof buf / sizeof buf[0])
        want = sizeof buf / sizeof buf[0];
    int n = unw_backtrace(buf, (int)want);
    size_t first = (size_t)skip + 1;
    if (n <= 0 || (size_t)n <= first)
        return 0;
    size_t depth = 0;
    for (size_t i = first; i < (size_t)n && depth < max; i++)
        pcs[depth++] = (uintptr_t)buf[i];
    /* Keeps this frame from becoming a tail call, which would hide it
     * from the walk and shift every skip by one. */
    __asm__ volatile("" ::: "memory");
    return depth;
}
