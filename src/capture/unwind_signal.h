/*
 * capture/unwind_signal.h - stack capture inside a signal handler.
 *
 * ASYNC-SIGNAL-SAFE.  Shared by the CPU profiler's SIGPROF handler and the
 * threads profile's stack-dump handler.  Never allocates, never locks,
 * never calls dl_iterate_phdr, preserves errno, and never faults: every
 * memory read is checked against the interrupted thread's stack bounds
 * (frame-pointer walk) or probed (DWARF walk through libunwind with a
 * pre-built address-range table).
 */
#ifndef CP_CAPTURE_UNWIND_SIGNAL_H
#define CP_CAPTURE_UNWIND_SIGNAL_H

#include <stddef.h>
#include <stdint.h>

enum cp_unwind_mode {
    CP_UNWIND_AUTO = 0, /* per-object choice made outside the handler */
    CP_UNWIND_FP = 1,   /* frame-pointer walk only */
    CP_UNWIND_DWARF = 2 /* libunwind DWARF walk */
};

/*
 * Prepares per-thread state (call once per thread, outside a handler,
 * before signals that unwind can reach it).  Returns 0 or negative errno.
 */
int cp_unwind_thread_prepare(void);

/*
 * From a signal handler: unwinds the interrupted context uc (the handler's
 * third argument) into pcs, leaf first.  pcs[0] is the exact interrupted
 * PC; the rest are return addresses.  Returns the depth (0 on failure).
 */
size_t cp_unwind_signal(void *uc, uintptr_t *pcs, size_t max,
                        enum cp_unwind_mode mode);

/*
 * Normal context only (takes the loader lock): rebuilds the address-range
 * table the handler reads (loaded objects, their unwind tables, thread
 * stacks) when a library was loaded or unloaded since the last build, or
 * when a handler met an address the table did not know.  Cheap when
 * nothing changed; samplers call it periodically from their own thread.
 */
int cp_unwind_refresh(void);

/* Whether the DWARF walk is available (libunwind's generic unwinder was
 * found); when it is not, every mode walks frame pointers. */
int cp_unwind_dwarf_available(void);

#endif
