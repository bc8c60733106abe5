/*
 * capture/trace_events.h - how samplers report events to the execution
 * tracer.  ASYNC-SIGNAL-SAFE and allocation-free: called from interposed
 * pthread_* calls and from the SIGPROF handler.  Each function is a
 * predictable branch (one relaxed load) when no trace is being recorded.
 * Implemented by the trace area in src/capture/trace_events.c.
 */
#ifndef CP_CAPTURE_TRACE_EVENTS_H
#define CP_CAPTURE_TRACE_EVENTS_H

#include <stddef.h>
#include <stdint.h>

enum cp_trace_wait_kind {
    CP_TRACE_WAIT_MUTEX,
    CP_TRACE_WAIT_RWLOCK_READ,
    CP_TRACE_WAIT_RWLOCK_WRITE,
    CP_TRACE_WAIT_COND,
    CP_TRACE_WAIT_SEM,
    CP_TRACE_WAIT_JOIN,
    CP_TRACE_WAIT_BARRIER,
    CP_TRACE_WAIT_SPIN,
};

/* A blocking episode of the calling thread on object addr, from begin_ns
 * to end_ns (CLOCK_MONOTONIC).  Report only episodes that really waited. */
void cp_trace_wait_event(enum cp_trace_wait_kind kind, const void *addr,
                         uint64_t begin_ns, uint64_t end_ns);
/* A CPU sample of the calling thread (from the SIGPROF handler). */
void cp_trace_cpu_sample(const uintptr_t *pcs, size_t depth, uint64_t ts_ns);

#endif
