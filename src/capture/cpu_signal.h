/*
 * capture/cpu_signal.h - the CPU profiler's signal side: the SIGPROF
 * handler, the bounded lock-free sample ring it fills, and the thread's
 * current label set the handler attaches to each sample.
 *
 * Implemented by capture/cpu_signal.c.  Producers are SIGPROF handlers on
 * any thread; the one consumer is the CPU profiler's drain thread
 * (profiles/cpu.c).  Functions say which context may call them; only the
 * handler itself runs in a signal handler.
 */
#ifndef CP_CAPTURE_CPU_SIGNAL_H
#define CP_CAPTURE_CPU_SIGNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture/unwind_signal.h"

#define CP_CPU_MAX_DEPTH 64 /* frames kept per CPU sample */

/*
 * An immutable, reference-counted set of labels, sorted by key.  Built and
 * freed by core/labels.c in normal context; the handler only takes a
 * reference (an atomic increment, safe because the thread's own reference
 * keeps the set alive while the handler runs on that thread).
 */
typedef struct cp_label_set {
    atomic_int refs;
    size_t n;
    struct cp_label_kv {
        const char *key, *value;
    } kv[];
} cp_label_set;

/* The calling thread's label set (no reference taken), or NULL. */
cp_label_set *cp_labels_current(void);
/* Installs set (whose reference the thread now owns) as the calling
 * thread's labels and returns the previous set, whose reference passes to
 * the caller.  Normal context. */
cp_label_set *cp_labels_swap(cp_label_set *set);

/* One sample as the drain thread receives it. */
typedef struct cp_cpu_record {
    uint32_t depth;
    uint32_t weight;       /* timer expirations it stands for (>= 1) */
    cp_label_set *labels;  /* a reference the consumer must release */
    uintptr_t pcs[CP_CPU_MAX_DEPTH];
} cp_cpu_record;

/*
 * Installs the SIGPROF handler (once; it stays installed and is inert
 * while disabled, so a late signal never meets the default action).
 * -EBUSY when the program installed its own SIGPROF handler.  Normal
 * context, serialized by the caller.
 */
int cp_cpu_signal_install(void);
/*
 * Unblocks SIGPROF in the calling thread if it is blocked there and the
 * signal is ours to use: our handler, or the default action (SIG_DFL:
 * no one relies on a thread-directed SIGPROF then; SIG_IGN and a
 * program's own handler are left alone).  Threads that start with every
 * signal blocked (a common way to keep signals on one thread) would
 * otherwise never take their timer's SIGPROF, and their CPU time would be
 * missing from every profile.  Normal context, the calling thread only.
 */
void cp_cpu_signal_admit_thread(void);
/*
 * Allocates the ring (slots rounded up to a power of two) and enables
 * sampling with the given unwinder; itimer selects the process-wide
 * setitimer signals (SI_KERNEL) instead of per-thread timer signals
 * (SI_TIMER).  Normal context, while disabled.
 */
int cp_cpu_signal_enable(size_t slots, enum cp_unwind_mode mode, bool itimer);
/* Disables sampling and returns once no handler is still running: after
 * it no sample enters the ring.  Normal context. */
void cp_cpu_signal_disable(void);
/* ASYNC-SIGNAL-SAFE.  Whether an armed ITIMER_PROF in this process would
 * be cpprof's (the setitimer fallback): capture/exec_shim.c disarms it
 * across exec. */
bool cp_cpu_itimer_active(void);
/* fork child handler: sampling off, without waiting for the handlers
 * the parent's other threads were running at the fork (they are not in
 * the child).  The parent's ring is left to leak. */
void cp_cpu_signal_fork_child(void);
/* Frees the ring (after disable and the last pop).  Normal context. */
void cp_cpu_signal_free(void);
/* Consumer side: the oldest complete record, false when none.  One
 * consumer thread at a time. */
bool cp_cpu_ring_pop(cp_cpu_record *out);
/* Expirations dropped because the ring was full (or the unwinder was
 * re-entered) since the last call; resets the count. */
uint64_t cp_cpu_ring_take_lost(void);

#endif
