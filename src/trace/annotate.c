/*
 * trace/annotate.c - the user annotation API of <cpprof/trace.h>: tasks,
 * regions and log messages (Go's runtime/trace NewTask, StartRegion,
 * WithRegion, Log, Logf, IsEnabled).
 *
 * Called by user code on any thread.  Region and log calls only copy their
 * arguments into the calling thread's ring (capture/trace_ring.h), so they
 * are async-signal-safe and allocation-free; task_new/task_end allocate
 * and free the task handle (normal context), and logf formats with
 * vsnprintf (normal context).  When no trace is recording every call is
 * one relaxed load and a branch.
 *
 * Region nesting: the capture layer (cp_trace_region_begin/end) counts
 * each thread's open regions while tracing and stamps begin/end records
 * with their depth, so the recorder can pair an end with its begin even
 * when a record in between was dropped (full ring) or the region began
 * before the trace started.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/trace_ring.h"
#include "capture/own_section.h"
#include "cpprof.h"

struct cpprof_trace_task {
    uint64_t id;
    uint64_t parent;
    size_t type_len;
    char type[CP_TRACE_NAME_MAX + 1];
};

static struct {
    _Atomic uint64_t next_task_id;
} trace_annotate = { 1 };

static size_t bounded_len(const char *s, size_t max)
{
    if (s == NULL)
        return 0;
    size_t n = 0;
    while (n < max && s[n] != '\0')
        n++;
    return n;
}

int cpprof_trace_is_enabled(void)
{
    return cp_trace_enabled() ? 1 : 0;
}

/* ------------------------------------------------------------ tasks */

int cpprof_trace_task_new(const cpprof_trace_task *parent,
                          const char *task_type, cpprof_trace_task **out)
{
    if (out == NULL)
        return -EINVAL;
    bool was_own = cp_own_begin(); /* the tracer's, not the program's */
    cpprof_trace_task *t = malloc(sizeof *t);
    cp_own_end(was_own);
    if (t == NULL)
        return -ENOMEM;
    t->id = atomic_fetch_add_explicit(&trace_annotate.next_task_id, 1,
                                      memory_order_relaxed);
    t->parent = parent ? parent->id : 0;
    t->type_len = bounded_len(task_type, CP_TRACE_NAME_MAX);
    if (t->type_len > 0)
        memcpy(t->type, task_type, t->type_len);
    t->type[t->type_len] = '\0';
    if (cp_trace_enabled()) {
        uint64_t w[2] = { t->id, t->parent };
        cp_trace_emit(CP_TREC_TASK_BEGIN, (uint32_t)t->type_len,
                      0, w, 2, t->type, t->type_len);
    }
    *out = t;
    return 0;
}

uint64_t cpprof_trace_task_id(const cpprof_trace_task *task)
{
    return task ? task->id : 0;
}

void cpprof_trace_task_end(cpprof_trace_task *task)
{
    if (task == NULL)
        return;
    if (cp_trace_enabled()) {
        uint64_t w[1] = { task->id };
        cp_trace_emit(CP_TREC_TASK_END, (uint32_t)task->type_len,
                      0, w, 1, task->type, task->type_len);
    }
    free(task);
}

/* ---------------------------------------------------------- regions */

void cpprof_trace_region_begin(const cpprof_trace_task *task,
                               const char *region_type)
{
    /* The capture layer checks enabled, counts depth and copies the name:
     * one call on the hot path. */
    cp_trace_region_begin(task ? task->id : 0, region_type);
}

void cpprof_trace_region_end(const cpprof_trace_task *task)
{
    (void)task; /* the end closes the innermost region: no payload */
    cp_trace_region_end();
}

void cpprof_trace_with_region(const cpprof_trace_task *task,
                              const char *region_type, void (*fn)(void *arg),
                              void *arg)
{
    if (fn == NULL)
        return;
    cpprof_trace_region_begin(task, region_type);
    fn(arg);
    cpprof_trace_region_end(task);
}

const cpprof_trace_task *
cpprof_trace_region_scope_begin(const cpprof_trace_task *task,
                                const char *region_type)
{
    cpprof_trace_region_begin(task, region_type);
    return task;
}

void cpprof_trace_region_scope_end(const cpprof_trace_task *const *scope)
{
    cpprof_trace_region_end(scope ? *scope : NULL);
}

/* ------------------------------------------------------------- logs */

void cpprof_trace_log(const cpprof_trace_task *task, const char *category,
                      const char *message)
{
    if (!cp_trace_enabled())
        return;
    size_t nc = bounded_len(category, CP_TRACE_NAME_MAX);
    size_t nm = bounded_len(message, CP_TRACE_MSG_MAX);
    uint64_t w[1] = { task ? task->id : 0 };
    cp_trace_emit2(CP_TREC_LOG, (uint32_t)(nc | nm << 8), 0, w,
                   1, category, nc, message, nm);
}

void cpprof_trace_logf(const cpprof_trace_task *task, const char *category,
                       const char *fmt, ...)
{
    if (!cp_trace_enabled() || fmt == NULL)
        return;
    char msg[CP_TRACE_MSG_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cpprof_trace_log(task, category, msg);
}
