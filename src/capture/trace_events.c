/*
 * capture/trace_events.c - placeholder until the tracer lands: events are
 * dropped.  ASYNC-SIGNAL-SAFE (does nothing).
 */
#include "capture/trace_events.h"

void cp_trace_wait_event(enum cp_trace_wait_kind kind, const void *addr,
                         uint64_t begin_ns, uint64_t end_ns)
{
    (void)kind; (void)addr; (void)begin_ns; (void)end_ns;
}

void cp_trace_cpu_sample(const uintptr_t *pcs, size_t depth, uint64_t ts_ns)
{
    (void)pcs; (void)depth; (void)ts_ns;
}
