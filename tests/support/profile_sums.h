/*
 * tests/support/profile_sums.h - helpers shared by the heap, threads and
 * HTTP tests: write a built-in profile to memory or a file, decode it,
 * and sum a sample type over the samples whose stack passes through
 * given functions (the ht_ prefix is from the heap tests that began it).
 * Test-only; normal context.
 */
#ifndef CPPROF_TESTS_PROFILE_SUMS_H
#define CPPROF_TESTS_PROFILE_SUMS_H

#include <stdlib.h>
#include <string.h>

#include "cpprof.h"
#include "encode/decode.h"
#include "support.h"

/* Writes profile name at debug 0 and decodes it (asserts on failure). */
static inline cp_decoded *ht_decode_profile(const char *name)
{
    cpprof_profile *p = cpprof_profile_lookup(name);
    assert_non_null(p);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cpprof_profile_write(p, w, 0), 0);
    size_t len;
    const void *data = cpprof_writer_data(w, &len);
    cp_decoded *d = NULL;
    assert_int_equal(cp_decode(data, len, &d), 0);
    assert_int_equal(cpprof_writer_close(w), 0);
    return d;
}

/* Writes profile name at debug level to path (asserts on failure). */
static inline void ht_write_file(const char *name, int debug, const char *path)
{
    cpprof_profile *p = cpprof_profile_lookup(name);
    assert_non_null(p);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cpprof_profile_write(p, w, debug), 0);
    assert_int_equal(cpprof_writer_close(w), 0);
}

/* `go tool pprof ARGS` over profile name written now (debug 0) to a
 * temporary file; returns the output (caller frees).  Needs go. */
static inline char *ht_pprof_profile(const char *name, const char *args)
{
    cpt_require_go();
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "profile.pb.gz");
    ht_write_file(name, 0, path);
    char *out = cpt_pprof(args, path);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
    return out;
}

/* Whether sample s has a frame (any inline level) named fn. */
static inline int ht_sample_has(const cp_decoded *d, const cp_dec_sample *s,
                                const char *fn)
{
    for (size_t i = 0; i < s->nlocs; i++) {
        const cp_dec_location *l = cp_decoded_location(d, s->location_ids[i]);
        for (size_t k = 0; l && k < l->nlines; k++) {
            const cp_dec_function *f =
                cp_decoded_function(d, l->lines[k].function_id);
            if (f && f->name && strcmp(f->name, fn) == 0)
                return 1;
        }
    }
    return 0;
}

/* The first frame of sample s (leaf first, any inline level) whose
 * function name starts with prefix and is not skip (may be NULL), or
 * NULL. */
static inline const char *ht_sample_frame_prefixed(const cp_decoded *d,
                                                   const cp_dec_sample *s,
                                                   const char *prefix,
                                                   const char *skip)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < s->nlocs; i++) {
        const cp_dec_location *l = cp_decoded_location(d, s->location_ids[i]);
        for (size_t k = 0; l && k < l->nlines; k++) {
            const cp_dec_function *f =
                cp_decoded_function(d, l->lines[k].function_id);
            if (f && f->name && strncmp(f->name, prefix, n) == 0 &&
                (!skip || strcmp(f->name, skip) != 0))
                return f->name;
        }
    }
    return NULL;
}

/* Sum of sample type `type` over samples through fn1 and (if non-NULL)
 * fn2. */
static inline int64_t ht_sum(const cp_decoded *d, const char *type,
                             const char *fn1, const char *fn2)
{
    int ix = cp_decoded_type_index(d, type);
    assert_true(ix >= 0);
    int64_t sum = 0;
    for (size_t i = 0; i < d->nsamples; i++) {
        const cp_dec_sample *s = &d->samples[i];
        if (ht_sample_has(d, s, fn1) && (!fn2 || ht_sample_has(d, s, fn2)))
            sum += s->values[ix];
    }
    return sum;
}

#endif
