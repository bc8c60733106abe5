/*
 * cpprof.h - the public API of libcpprof: Go's runtime/pprof for C and C++.
 *
 * Conventions (the same for every subsystem header under <cpprof/...>):
 *   - every name starts with cpprof_; types are opaque handles;
 *   - functions that can fail return 0 (or a non-negative count) on success
 *     and a negative errno on failure; cpprof_strerror() explains the code;
 *   - unless a function says otherwise it may be called from any thread,
 *     concurrently, but never from a signal handler.
 *
 * Go concept -> cpprof concept: goroutine -> thread, "live heap after the last
 * GC" -> allocations made and not yet freed, runtime.Callers -> a libunwind
 * walk of the calling thread.  docs/GO-MAPPING.md has the full table.
 */
#ifndef CPPROF_H
#define CPPROF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CPPROF_VERSION_MAJOR 0
#define CPPROF_VERSION_MINOR 1
#define CPPROF_VERSION_PATCH 0

#include <cpprof/export.h>

/* ---------------------------------------------------------------- errors */

/*
 * Returns a static, human readable message for a code returned by any
 * cpprof_ function (a negative errno).  Never NULL; safe from any context.
 * Codes with a cpprof-specific meaning:
 *   -EINVAL     bad argument (empty name, NULL pointer, bad debug level, ...)
 *   -EEXIST     a profile with that name, or that value in a profile, exists
 *   -EPERM      Add/Remove on a built-in profile
 *   -EBUSY      the resource is in use (CPU profiling already running, ...)
 *   -ENOSYS     the profile's sampler is not available in this build
 *   -ERANGE     a numeric setting outside its documented bounds
 *   -EIO etc.   the error a writer's sink reported
 */
CPPROF_EXPORT const char *cpprof_strerror(int err);

/* --------------------------------------------------------------- writers */

/*
 * A writer is where a profile goes: a file descriptor, a FILE*, a growing
 * memory buffer, a callback, or a path written atomically.  Every profile
 * and every sink in cpprof writes through this one abstraction.
 *
 * Errors are sticky: after the sink fails once, later writes are dropped and
 * every call reports the first error, so an encoder need not check each
 * write.  A writer is not thread-safe; use one per thread.
 */
typedef struct cpprof_writer cpprof_writer;

/* Callback sink: consume len bytes; return 0 or a negative errno. */
typedef int (*cpprof_write_fn)(void *arg, const void *data, size_t len);

/* Writes to fd (retrying short writes and EINTR); the fd is not closed. */
CPPROF_EXPORT int cpprof_writer_open_fd(cpprof_writer **out, int fd);
/* Writes to fp with fwrite; fp is flushed, not closed, by close. */
CPPROF_EXPORT int cpprof_writer_open_file(cpprof_writer **out, FILE *fp);
/* Collects everything in memory; see cpprof_writer_data(). */
CPPROF_EXPORT int cpprof_writer_open_buffer(cpprof_writer **out);
/* Hands every chunk to fn(arg, data, len). */
CPPROF_EXPORT int cpprof_writer_open_callback(cpprof_writer **out,
                                              cpprof_write_fn fn, void *arg);
/*
 * Writes to a temporary file beside path, which close renames over path
 * only if nothing failed: a reader never sees a partial profile and a
 * failed write never destroys the previous file.
 */
CPPROF_EXPORT int cpprof_writer_open_path(cpprof_writer **out,
                                          const char *path);

/* Buffer writers: the bytes written so far (valid until the next write). */
CPPROF_EXPORT const void *cpprof_writer_data(const cpprof_writer *w,
                                             size_t *len);
/* Total bytes accepted so far. */
CPPROF_EXPORT uint64_t cpprof_writer_bytes(const cpprof_writer *w);
/* The first error the writer met, or 0. */
CPPROF_EXPORT int cpprof_writer_error(const cpprof_writer *w);
/* Flushes, commits (path writers) and frees w.  Returns the first error. */
CPPROF_EXPORT int cpprof_writer_close(cpprof_writer *w);

/* -------------------------------------------------------------- profiles */

/*
 * A profile is a named collection of stacks.  Built-in profiles ("heap",
 * "allocs", "threads" alias "goroutine", "threadcreate", "block", "mutex")
 * maintain themselves; custom profiles are filled with add/remove.
 * Profiles live until the process exits, so a handle never dangles.
 */
typedef struct cpprof_profile cpprof_profile;

/*
 * Creates a custom profile.  -EINVAL for a NULL, empty or over-long name or
 * one with characters outside printable ASCII without spaces; -EEXIST when the
 * name (or a built-in alias) is taken.  The convention, as in Go, is a
 * "library." prefix, e.g. "blobstore.Open".
 */
CPPROF_EXPORT int cpprof_profile_new(const char *name, cpprof_profile **out);
/* The profile with that name (built-in, alias or custom), or NULL. */
CPPROF_EXPORT cpprof_profile *cpprof_profile_lookup(const char *name);
/*
 * Fills out[0..cap) with the known profiles sorted by name and returns how
 * many exist (which may exceed cap; call with cap 0 to size the array).
 */
CPPROF_EXPORT size_t cpprof_profile_list(cpprof_profile **out, size_t cap);
CPPROF_EXPORT const char *cpprof_profile_name(const cpprof_profile *p);
/* Number of stacks now in the profile (>= 0), or a negative errno. */
CPPROF_EXPORT int64_t cpprof_profile_count(const cpprof_profile *p);
/*
 * Records the caller's stack under value.  skip has runtime.Caller's
 * meaning: 0 starts the stack at the function that called add, 1 at its
 * caller, and so on.  -EEXIST if value is already present, -EPERM on a
 * built-in profile, -EINVAL for a NULL profile or value or a negative skip.
 * O(1) expected; safe from any number of threads at once.
 */
CPPROF_EXPORT int cpprof_profile_add(cpprof_profile *p, const void *value,
                                     int skip);
/* Forgets value's stack; a no-op (returning 0) if value is absent. */
CPPROF_EXPORT int cpprof_profile_remove(cpprof_profile *p, const void *value);
/*
 * Writes a snapshot: debug 0 is gzip'd profile.proto, debug 1 the legacy
 * text format with symbolized stacks; some built-ins give meaning to 2.
 * A writer failure is returned and leaves the profile untouched.
 */
CPPROF_EXPORT int cpprof_profile_write(cpprof_profile *p, cpprof_writer *w,
                                       int debug);
/* Shorthand for writing the "heap" profile at debug 0. */
CPPROF_EXPORT int cpprof_write_heap_profile(cpprof_writer *w);

#ifdef __cplusplus
}
#endif

/* Subsystems: each header is usable on its own and included here for ease. */
#include <cpprof/cpu.h>
#include <cpprof/heap.h>
#include <cpprof/sync.h>
#include <cpprof/http.h>
#include <cpprof/service.h>
#include <cpprof/trace.h>

#endif /* CPPROF_H */
