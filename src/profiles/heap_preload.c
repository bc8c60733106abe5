/*
 * profiles/heap_preload.c - heap profiling of unchanged programs through
 * the environment, for LD_PRELOAD=libcpprof.so:
 *
 *   CPPROF_MEMPROFILERATE=BYTES  sampling rate (Go's MemProfileRate);
 *                                0 off, 1 every allocation.
 *   CPPROF_MEMPROFILE=FILE       at exit, write the heap profile (gzip'd
 *                                profile.proto) to FILE, atomically.
 *
 * A stopgap owned by the heap area until the preload area centralises
 * environment handling.  The constructor only reads the environment (no
 * allocation); the destructor runs in normal context at exit() or library
 * unload and writes through the public API.  Bad values are reported on
 * stderr and ignored, never fatal.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpprof.h"

#include <limits.h>

static struct {
    bool armed;          /* CPPROF_MEMPROFILE was set */
    char path[PATH_MAX]; /* copied: the program may change its environment */
} heap_preload;

__attribute__((constructor)) static void heap_preload_init(void)
{
    const char *rate = getenv("CPPROF_MEMPROFILERATE");
    if (rate && *rate) {
        char *end;
        errno = 0;
        long long v = strtoll(rate, &end, 10);
        int err = (errno || *end || v < 0) ? -ERANGE
                                           : cpprof_heap_set_rate((int64_t)v);
        if (err)
            fprintf(stderr, "cpprof: ignoring CPPROF_MEMPROFILERATE=%s: %s\n",
                    rate, cpprof_strerror(err));
    }
    const char *path = getenv("CPPROF_MEMPROFILE");
    if (path && *path) {
        if (strlen(path) >= sizeof heap_preload.path) {
            fprintf(stderr, "cpprof: ignoring CPPROF_MEMPROFILE: path too long\n");
            return;
        }
        strcpy(heap_preload.path, path);
        heap_preload.armed = true;
    }
}

__attribute__((destructor)) static void heap_preload_fini(void)
{
    if (!heap_preload.armed)
        return;
    const char *path = heap_preload.path;
    heap_preload.armed = false; /* once, even if unload follows exit */
    cpprof_writer *w;
    int err = cpprof_writer_open_path(&w, path);
    if (err == 0) {
        err = cpprof_write_heap_profile(w);
        int cerr = cpprof_writer_close(w);
        if (!err)
            err = cerr;
    }
    if (err)
        fprintf(stderr, "cpprof: writing heap profile to %s: %s\n", path,
                cpprof_strerror(err));
}
