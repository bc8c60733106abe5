/*
 * capture/threads_signal.h - stacks of other threads, right now, for the
 * "threads" profile: each thread is sent a real-time signal with tgkill
 * and unwinds itself in the handler (capture/unwind_signal.h).
 *
 * cp_threads_collect is called from normal context (profiles/threads.c);
 * it allocates, takes one mutex (one dump at a time) and waits a bounded
 * time.  The handler inside capture/threads_signal.c is async-signal-safe.
 */
#ifndef CP_CAPTURE_THREADS_SIGNAL_H
#define CP_CAPTURE_THREADS_SIGNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "model/stack_table.h"

typedef struct cp_thread_stack {
    pid_t tid;
    bool answered;    /* false: no stack (gone, signal blocked, too slow) */
    size_t depth;     /* pcs[0] is the exact interrupted pc */
    uintptr_t pcs[CP_STACK_MAX_DEPTH];
} cp_thread_stack;

/*
 * Asks every thread in tids[0..n) for its stack, skipping those whose
 * skip[i] is true (e.g. the signal is blocked there), and waits at most
 * timeout_ms in total.  *out receives n entries in tids' order (free with
 * free()).  Returns 0, -ENOMEM, or -EAGAIN when no real-time signal is
 * free for the handler.
 */
int cp_threads_collect(const pid_t *tids, const bool *skip, size_t n,
                       int timeout_ms, cp_thread_stack **out);

/* The signal the dump handler uses (0 until the first collect). */
int cp_threads_signal(void);
/* Thread start hook (capture/thread_hooks.h): once the handler is
 * installed, unblocks its signal in the new thread if the creator's mask
 * (inherited) blocked it, so that the thread's stack can be dumped.  The
 * signal is cpprof's own (chosen while unused), so no program relies on
 * it being blocked.  Normal context, the calling thread only. */
void cp_threads_thread_start(void);

#endif
