/*
 * tests/sync/sync_test_util.h - helpers shared by the sync area's tests:
 * write a built-in profile to a file, decode it with our decoder, and sum
 * a sample value over the samples whose stack passes through a named
 * function.  Test-only code, single-threaded use.
 */
#ifndef CPPROF_TESTS_SYNC_UTIL_H
#define CPPROF_TESTS_SYNC_UTIL_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cpprof.h"
#include "encode/decode.h"
#include "profile_sums.h"
#include "support.h"

#define NOINLINE __attribute__((noinline))
/* After a call: keeps it from becoming a tail jump, so the calling
 * function keeps its frame (and its place in recorded stacks). */
#define NO_TAIL() __asm__ volatile("" ::: "memory")

static inline uint64_t st_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void st_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) != 0) {
    }
}

/* Writes profile `name` at debug 0 to dir/file and returns its path. */
static inline char *st_write_profile(const char *dir, const char *name,
                                     const char *file)
{
    cpprof_profile *p = cpprof_profile_lookup(name);
    assert_non_null(p);
    char *path = cpt_path(dir, file);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cpprof_profile_write(p, w, 0), 0);
    assert_int_equal(cpprof_writer_close(w), 0);
    return path;
}

/* The text (debug=1) form of profile `name`, NUL-terminated (free it). */
static inline char *st_profile_text(const char *name)
{
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cpprof_profile_write(cpprof_profile_lookup(name), w, 1),
                     0);
    size_t len;
    const char *data = cpprof_writer_data(w, &len);
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, data, len);
    s[len] = 0;
    cpprof_writer_close(w);
    return s;
}

/* Sum of value `type` over samples whose stack contains func (any
 * samples when func is NULL). */
static inline int64_t st_sum(const cp_decoded *d, const char *type,
                             const char *func)
{
    int vi = cp_decoded_type_index(d, type);
    assert_true(vi >= 0);
    int64_t sum = 0;
    for (size_t i = 0; i < d->nsamples; i++)
        if (func == NULL || ht_sample_has(d, &d->samples[i], func))
            sum += d->samples[i].values[vi];
    return sum;
}

/* The leaf function name of the first sample containing func, or NULL. */
static inline const char *st_leaf_of(const cp_decoded *d, const char *func)
{
    for (size_t i = 0; i < d->nsamples; i++) {
        const cp_dec_sample *s = &d->samples[i];
        if (!ht_sample_has(d, s, func) || s->nlocs == 0)
            continue;
        const cp_dec_location *loc = cp_decoded_location(d, s->location_ids[0]);
        if (loc == NULL || loc->nlines == 0)
            return NULL;
        const cp_dec_function *f =
            cp_decoded_function(d, loc->lines[loc->nlines - 1].function_id);
        return f ? f->name : NULL;
    }
    return NULL;
}

static inline cp_decoded *st_decode(const char *path)
{
    cp_decoded *d = NULL;
    assert_int_equal(cp_decode_file(path, &d), 0);
    return d;
}

/* `go tool pprof -top -sample_index=delay` on path names func. */
static inline void st_pprof_names(const char *path, const char *func)
{
    char *out = cpt_pprof("-top -sample_index=delay", path);
    assert_non_null(strstr(out, func));
    free(out);
}

/* Frees what a profile check used and removes its directory. */
static inline void st_done(cp_decoded *d, char *path, char *dir)
{
    cp_decoded_free(d);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

#endif
