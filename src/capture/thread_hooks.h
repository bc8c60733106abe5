/*
 * capture/thread_hooks.h - what happens around every thread's life.
 *
 * capture/thread_shim.c interposes pthread_create: it records the creating
 * stack for the threadcreate profile, then runs the new thread through a
 * trampoline that calls the start hooks before the user's start routine
 * and the exit hooks when it returns or calls pthread_exit.  Samplers put
 * their per-thread set-up here (the CPU profiler arms the thread's timer,
 * the unwinder prepares its state) instead of interposing again.
 *
 * The hooks run in the new thread, in normal context, before user code:
 * they must not block for long and must tolerate being called when their
 * subsystem is idle.
 */
#ifndef CP_CAPTURE_THREAD_HOOKS_H
#define CP_CAPTURE_THREAD_HOOKS_H

#include <stddef.h>
#include <stdint.h>

/* Provided by the samplers, called by capture/thread_shim.c. */
void cp_cpu_thread_start(void);   /* profiles/cpu.c: arm this thread */
void cp_cpu_thread_exit(void);    /* profiles/cpu.c: disarm, free timer */
/* capture/trace_events.c: thread start/exit instants for a running trace
 * (async-signal-safe; one relaxed load when not tracing). */
void cp_trace_thread_start(void);
void cp_trace_thread_exit(void);
/* capture/threads_signal.c: unblocks the stack-dump signal in a thread
 * that inherited a mask blocking it. */
void cp_threads_thread_start(void);
/* profiles/threadcreate.c: a thread was created from this stack. */
void cp_threadcreate_record(const uintptr_t *pcs, size_t depth);

#endif
