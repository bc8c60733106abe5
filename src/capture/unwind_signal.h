/*
 * capture/unwind_signal.h - stack capture inside a signal handler.
 *
 * ASYNC-SIGNAL-SAFE.  Shared by the CPU profiler's SIGPROF handler, the
 * threads profile's stack-dump handler and the heap sampler's malloc
 * shim.  Never allocates, never locks, never calls dl_iterate_phdr,
 * preserves errno, and never faults: every memory read is checked against
 * the interrupted thread's stack bounds or the mapped segment of a loaded
 * object (the DWARF walk is our own CFI interpreter, capture/unwind_cfi.h,
 * over a pre-built address-range table, with libunwind's generic
 * unwinder as the fallback for what it cannot interpret).
 */
#ifndef CP_CAPTURE_UNWIND_SIGNAL_H
#define CP_CAPTURE_UNWIND_SIGNAL_H

#include <stddef.h>
#include <stdint.h>

enum cp_unwind_mode {
    CP_UNWIND_AUTO = 0, /* per-object choice made outside the handler */
    CP_UNWIND_FP = 1,   /* frame-pointer walk only */
    CP_UNWIND_DWARF = 2 /* DWARF CFI walk (libunwind as its fallback) */
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
 * Async-signal-safe, for normal-context callers that must not block or
 * allocate (an interposed malloc): unwinds the calling thread from inside
 * this function, in AUTO mode, into pcs.  pcs[0] is a PC inside
 * cp_unwind_self, pcs[1] its return address into the caller, and so on.
 * No getcontext (which makes a sigprocmask system call).  Returns the
 * depth, 0 when called re-entrantly on one thread.
 */
size_t cp_unwind_self(uintptr_t *pcs, size_t max);

/* Coverage of the CFI walk since the process started (tests, benches). */
typedef struct cp_unwind_stats_t {
    uint64_t walks;           /* CFI walks started */
    uint64_t complete;        /* reached the outermost frame or max */
    uint64_t fallbacks;       /* stopped early: libunwind tried */
    uint64_t fallback_deeper; /* ... and libunwind got further */
    uint32_t generation;      /* of the current address table (0: none) */
    uint32_t memos_held;      /* cp_unwind_self replay memos in use now */
} cp_unwind_stats_t;
/* Normal context. */
void cp_unwind_stats(cp_unwind_stats_t *s);

/*
 * Normal context only (takes the loader lock): rebuilds the address-range
 * table the handler reads (loaded objects, their unwind tables, thread
 * stacks) when a library was loaded or unloaded since the last build, or
 * when a handler met an address the table did not know.  Cheap when
 * nothing changed; samplers call it periodically from their own thread.
 */
int cp_unwind_refresh(void);

/*
 * Normal context, after a dlclose: retires every rule and replay memo
 * cached so far (code at those addresses may be another library's next),
 * and flags the table for the next refresh.  One atomic store: a full
 * refresh reads /proc/self/maps, ~100 us and more, too much to add to
 * every dlclose; meanwhile walks check objects with the loader.
 */
void cp_unwind_forget_unloaded(void);

/* Whether a DWARF walk is available (not disabled by CPPROF_NO_DWARF);
 * when it is not, every mode walks frame pointers. */
int cp_unwind_dwarf_available(void);

#endif
