/*
 * cpprof/cpu.h - public API of the cpu subsystem (see <cpprof.h> for the
 * conventions every cpprof function follows).
 */
#ifndef CPPROF_CPU_H
#define CPPROF_CPU_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <cpprof/export.h>

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
CPPROF_EXPORT int cpprof_cpu_set_rate(int hz);
/* Starts profiling every thread into w (which must stay open until stop).
 * -EBUSY ("cpu profiling already in use") when already running, and also
 * when the program installed its own SIGPROF handler (it is not replaced;
 * see docs/cpu.md).  -EINVAL for a NULL writer or a bad CPPROF_UNWIND. */
CPPROF_EXPORT int cpprof_cpu_start(struct cpprof_writer *w);
/* Stops profiling; returns after the whole profile has been written, with
 * the writer's error if any.  0 (no-op) when not running.  No sample is
 * taken after it returns.  In a fork child of a profiled process,
 * profiling is off (the child has no timers) and stop is a no-op. */
CPPROF_EXPORT int cpprof_cpu_stop(void);
/* Whether CPU profiling is running now. */
CPPROF_EXPORT bool cpprof_cpu_running(void);

/* How the SIGPROF handler walks stacks (default CPPROF_CPU_UNWIND_AUTO). */
enum cpprof_cpu_unwind {
    CPPROF_CPU_UNWIND_AUTO = 0,  /* DWARF (libunwind) where unwind tables
                                    exist, frame pointers elsewhere */
    CPPROF_CPU_UNWIND_FP = 1,    /* frame pointers only: fastest, needs
                                    code built -fno-omit-frame-pointer */
    CPPROF_CPU_UNWIND_DWARF = 2, /* DWARF call-frame info only */
};
/* Chooses the unwinder for the next start.  -EINVAL for an unknown mode,
 * -EBUSY while profiling runs.  The CPPROF_UNWIND environment variable
 * (auto, fp, dwarf) sets the initial choice. */
CPPROF_EXPORT int cpprof_cpu_set_unwind(int mode);

/*
 * Profiler labels (Go's pprof.Labels, SetGoroutineLabels, Do and Label).
 * Each thread has a set of key/value string labels; every CPU sample the
 * thread takes carries the set in force at that moment, so
 * `go tool pprof -tagfocus key=value` selects the work done under it.  A
 * thread created with pthread_create starts with its creator's labels (as
 * a goroutine inherits them).  Keys are unique: setting a key replaces its
 * value.  Normal context on the thread concerned, never from a handler.
 */

/* Sets key to value on the calling thread (value NULL removes key).
 * -EINVAL for a NULL or empty key, -ENOMEM. */
CPPROF_EXPORT int cpprof_labels_set(const char *key, const char *value);
/* Copies key's value into buf (NUL-terminated, truncated to len-1) and
 * returns its full length; -ENOENT when the key is not set, -EINVAL for a
 * NULL or empty key or a NULL buf with len > 0. */
CPPROF_EXPORT int cpprof_labels_get(const char *key, char *buf, size_t len);
/* Removes every label of the calling thread. */
CPPROF_EXPORT void cpprof_labels_clear(void);
/*
 * Runs fn(arg) with the calling thread's labels extended by kv, a
 * NULL-terminated list of key, value pairs ({"k1", "v1", "k2", "v2",
 * NULL}; a key already set is overridden), then restores the labels the
 * thread had before, even if fn changed them.  -EINVAL (and fn is not
 * called) for NULL fn or kv, an odd list, or a NULL or empty key;
 * -ENOMEM.  Nests: each level sees the labels of the levels around it.
 */
CPPROF_EXPORT int cpprof_labels_do(const char *const *kv, void (*fn)(void *arg),
                     void *arg);

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_CPU_H */
