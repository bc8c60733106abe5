/*
 * cpprof/cpu.h - public API of the cpu subsystem (see <cpprof.h> for the
 * conventions every cpprof function follows).
 */
#ifndef CPPROF_CPU_H
#define CPPROF_CPU_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cpprof_writer;

/*
 * CPU profiling (Go's StartCPUProfile/StopCPUProfile).  Owned by
 * profiles/cpu.c; see docs/cpu.md.
 */

/* Sampling rate in Hz for the next start (default 100).  -ERANGE outside
 * 1..10000, -EBUSY while profiling runs. */
int cpprof_cpu_set_rate(int hz);
/* Starts profiling every thread into w (which must stay open until stop).
 * -EBUSY ("cpu profiling already in use") when already running. */
int cpprof_cpu_start(struct cpprof_writer *w);
/* Stops profiling; returns after the whole profile has been written, with
 * the writer's error if any.  0 (no-op) when not running. */
int cpprof_cpu_stop(void);
/* Whether CPU profiling is running now. */
bool cpprof_cpu_running(void);

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_CPU_H */
