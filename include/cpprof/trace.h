/*
 * cpprof/trace.h - execution tracing (Go's runtime/trace), public API.
 * Owned by the trace area (src/trace/, src/capture/trace_*.c); see
 * docs/trace.md.
 *
 * A trace is a timeline, per thread, of what the program did: user
 * annotations (tasks, regions, log messages), blocking episodes on
 * mutexes/rwlocks/conditions/semaphores/joins (when the sync interposition
 * is active), CPU samples (while a CPU profile is also being recorded) and
 * thread start/exit.  The output is Chrome Trace Event JSON, which
 * ui.perfetto.dev and chrome://tracing open as is.
 *
 * Go -> C: a context.Context carrying a task becomes an explicit task
 * handle argument (NULL = no task, Go's background context); a *Region
 * becomes a begin/end pair on the calling thread, or the scoped
 * CPPROF_TRACE_REGION macro.
 *
 * Cost: every annotation is one predictable branch when no trace is being
 * recorded; a region begin/end pair costs about 40 ns while recording on
 * a loaded 2-vCPU VM, 25 ns on a quiet one, half of it the two TSC reads
 * (bench/trace/, bench/RESULTS.md).
 * Annotations never fail, block or allocate (task_new excepted); when the
 * calling thread's buffer is full the event is dropped and counted in the
 * trace's "lost_events".
 */
#ifndef CPPROF_TRACE_H
#define CPPROF_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include <cpprof.h> /* CPPROF_EXPORT, cpprof_writer */

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------- recording */

/*
 * Starts recording a trace into w (kept open, and used only by cpprof's
 * drain thread, until stop).  -EINVAL for a NULL writer, -EBUSY when a
 * trace is already being recorded, -ENOMEM (or another errno) when the
 * event buffers or the drain thread cannot be set up; nothing has been
 * written to w when start fails.  Write errors surface at stop.
 * Normal context, any thread.
 */
CPPROF_EXPORT int cpprof_trace_start(struct cpprof_writer *w);
/*
 * Stops tracing; returns after everything is written (the writer's first
 * error, if any).  0 when not tracing.  The caller then closes w.
 * Normal context, any thread.
 */
CPPROF_EXPORT int cpprof_trace_stop(void);
/* 1 while a trace is being recorded, else 0.  Any context, signal
 * handlers included: use it to skip building expensive log messages. */
CPPROF_EXPORT int cpprof_trace_is_enabled(void);

/* ------------------------------------------------------------ tasks */

/*
 * A task is a logical operation (e.g. serving one request) that may span
 * threads: regions and logs name the task they belong to, and the trace
 * shows it as one async slice from create to end.
 */
typedef struct cpprof_trace_task cpprof_trace_task;

/*
 * Creates a task of type task_type (copied; NULL means "") as a child of
 * parent (NULL for none) and records its start when tracing.  Tasks get
 * ids even when not tracing, so a trace started later still sees their
 * end.  -EINVAL for a NULL out, -ENOMEM.  Any thread, normal context.
 */
CPPROF_EXPORT int cpprof_trace_task_new(const cpprof_trace_task *parent,
                                        const char *task_type,
                                        cpprof_trace_task **out);
/* The task's id (> 0) as written in the trace; 0 for NULL. */
CPPROF_EXPORT uint64_t cpprof_trace_task_id(const cpprof_trace_task *task);
/* Records the task's end and frees it.  Call once, from any thread (not
 * necessarily the creator's); NULL is a no-op.  Normal context. */
CPPROF_EXPORT void cpprof_trace_task_end(cpprof_trace_task *task);

/* ---------------------------------------------------------- regions */

/*
 * Regions are time intervals on the calling thread, nested like calls:
 * region_end closes the innermost region the thread has open.  A region
 * must end on the thread that began it.  region_type is copied (at most
 * 63 bytes are kept).  Any thread, normal context or signal handler.
 */
CPPROF_EXPORT void cpprof_trace_region_begin(const cpprof_trace_task *task,
                                             const char *region_type);
CPPROF_EXPORT void cpprof_trace_region_end(const cpprof_trace_task *task);

/* Runs fn(arg) inside a region (Go's WithRegion). */
CPPROF_EXPORT void cpprof_trace_with_region(const cpprof_trace_task *task,
                                            const char *region_type,
                                            void (*fn)(void *arg), void *arg);

/*
 * Scoped form: the region lasts until the enclosing block is left, by any
 * path (GCC/Clang cleanup attribute; works in C and C++):
 *     { CPPROF_TRACE_REGION(task, "parse"); ... }
 */
CPPROF_EXPORT const cpprof_trace_task *
cpprof_trace_region_scope_begin(const cpprof_trace_task *task,
                                const char *region_type);
CPPROF_EXPORT void
cpprof_trace_region_scope_end(const cpprof_trace_task *const *scope);
#define CPPROF_TRACE_CAT_(a, b) a##b
#define CPPROF_TRACE_CAT(a, b) CPPROF_TRACE_CAT_(a, b)
#define CPPROF_TRACE_REGION(task, region_type)                              \
    const cpprof_trace_task *CPPROF_TRACE_CAT(cpprof_trace_scope_, __LINE__) \
        __attribute__((cleanup(cpprof_trace_region_scope_end), unused)) =   \
            cpprof_trace_region_scope_begin((task), (region_type))

/* ------------------------------------------------------------- logs */

/*
 * A one-off event on the calling thread with a category (may be NULL or
 * "") and a message, attached to task (may be NULL).  At most 63 bytes of
 * category and 1023 of message are kept.  log: any context, signal
 * handlers included; logf formats only while tracing (normal context).
 */
CPPROF_EXPORT void cpprof_trace_log(const cpprof_trace_task *task,
                                    const char *category,
                                    const char *message);
CPPROF_EXPORT void cpprof_trace_logf(const cpprof_trace_task *task,
                                     const char *category, const char *fmt,
                                     ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_TRACE_H */
