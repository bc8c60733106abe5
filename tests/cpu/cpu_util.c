/*
 * tests/cpu/cpu_util.c - see cpu_util.h.  Test-only code.
 */
#include "cpu_util.h"

#include "support.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cpprof.h"

static cpprof_writer *cpt_writer;

double cpt_cpu_seconds(int clk)
{
    struct timespec ts;
    clock_gettime((clockid_t)clk, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

void cpt_spin(unsigned long iters)
{
    volatile unsigned long x = 1;
    for (unsigned long i = 0; i < iters; i++)
        x = x * 2654435761u + i;
}

void cpt_cpu_start_file(const char *path)
{
    assert_int_equal(cpprof_writer_open_path(&cpt_writer, path), 0);
    int rc = cpprof_cpu_start(cpt_writer);
    if (rc != 0)
        fail_msg("cpprof_cpu_start: %s", cpprof_strerror(rc));
}

cp_decoded *cpt_cpu_stop_decode(const char *path)
{
    int rc = cpprof_cpu_stop();
    if (rc != 0)
        fail_msg("cpprof_cpu_stop: %s", cpprof_strerror(rc));
    assert_int_equal(cpprof_writer_close(cpt_writer), 0);
    cpt_writer = NULL;
    cp_decoded *d = NULL;
    assert_int_equal(cp_decode_file(path, &d), 0);
    return d;
}

/* The first function name of location id's innermost line, or "". */
static const char *loc_fn(const cp_decoded *d, uint64_t id, size_t line)
{
    const cp_dec_location *l = cp_decoded_location(d, id);
    if (!l || line >= l->nlines)
        return "";
    const cp_dec_function *f = cp_decoded_function(d, l->lines[line].function_id);
    return f && f->name ? f->name : "";
}

static bool sample_has(const cp_decoded *d, const cp_dec_sample *s,
                       const char *fn)
{
    for (size_t k = 0; k < s->nlocs; k++) {
        const cp_dec_location *l = cp_decoded_location(d, s->location_ids[k]);
        for (size_t j = 0; l && j < l->nlines; j++)
            if (strcmp(loc_fn(d, s->location_ids[k], j), fn) == 0)
                return true;
    }
    return false;
}

int64_t cpt_total_in(const cp_decoded *d, const char *fn, size_t vi)
{
    int64_t sum = 0;
    for (size_t i = 0; i < d->nsamples; i++)
        if (vi < d->samples[i].nvalues && sample_has(d, &d->samples[i], fn))
            sum += d->samples[i].values[vi];
    return sum;
}

bool cpt_has_fn(const cp_decoded *d, const char *fn)
{
    for (size_t i = 0; i < d->nsamples; i++)
        if (sample_has(d, &d->samples[i], fn))
            return true;
    return false;
}

void cpt_check_cpu_header(const cp_decoded *d, int hz)
{
    assert_int_equal(d->ntypes, 2);
    assert_string_equal(d->sample_types[0].type, "samples");
    assert_string_equal(d->sample_types[0].unit, "count");
    assert_string_equal(d->sample_types[1].type, "cpu");
    assert_string_equal(d->sample_types[1].unit, "nanoseconds");
    assert_string_equal(d->period_type.type, "cpu");
    assert_string_equal(d->period_type.unit, "nanoseconds");
    assert_int_equal(d->period, 1000000000 / hz);
    assert_true(d->time_nanos > 0);
    assert_true(d->duration_nanos > 0);
}
