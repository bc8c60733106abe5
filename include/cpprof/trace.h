/*
 * cpprof/trace.h - execution tracing (Go's runtime/trace), public API.
 * Owned by the trace area (src/trace/); see docs/trace.md.
 */
#ifndef CPPROF_TRACE_H
#define CPPROF_TRACE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cpprof_writer;

/* Starts recording a trace into w (kept open until stop).  -EBUSY when a
 * trace is already being recorded. */
int cpprof_trace_start(struct cpprof_writer *w);
/* Stops tracing; returns after everything is written (writer's error if
 * any).  0 when not tracing. */
int cpprof_trace_stop(void);

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_TRACE_H */
