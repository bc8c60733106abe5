/*
 * capture/backtrace.h - the calling thread's stack, from normal context.
 *
 * Used by custom profiles (add), threadcreate, and anything else that
 * records "where am I" outside a signal handler.  Uses libunwind's local
 * unwinder, which may take the loader lock: never call it from a signal
 * handler or an allocator hook (capture/unwind_signal.h is for those).
 */
#ifndef CP_CAPTURE_BACKTRACE_H
#define CP_CAPTURE_BACKTRACE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Fills pcs with up to max return addresses of the caller's stack, leaf
 * first.  skip 0 starts at the function that called cp_backtrace, 1 at its
 * caller, and so on.  Returns the number stored (0 if skip is too deep).
 */
size_t cp_backtrace(uintptr_t *pcs, size_t max, int skip);

#endif
