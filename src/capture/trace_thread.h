/*
 * capture/trace_thread.h - thread start/exit events for the execution
 * tracer.  Implemented in capture/trace_events.c; meant to be called by the
 * pthread_create shim (capture/thread_shim.c) in the new thread, right
 * before the user's start routine and right after it returns or calls
 * pthread_exit.  Without these calls a trace still shows every thread that
 * recorded an event, only without the exact start/exit instants.
 *
 * ASYNC-SIGNAL-SAFE, allocation-free; one relaxed load when not tracing.
 */
#ifndef CP_CAPTURE_TRACE_THREAD_H
#define CP_CAPTURE_TRACE_THREAD_H

void cp_trace_thread_start(void);
void cp_trace_thread_exit(void);

#endif
