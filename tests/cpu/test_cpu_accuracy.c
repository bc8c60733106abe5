/*
 * tests/cpu/test_cpu_accuracy.c - the CPU profile against ground truth.
 *
 * Two threads spend a known CPU split across three non-inlined functions
 * (thread 1: work_a, thread 2: work_b and work_c, 50/30/20); each thread measures the truth itself with its own
 * CLOCK_THREAD_CPUTIME_ID around every call.  The profile must give each
 * function's share within +-3 percentage points, and its total CPU must be
 * within +-5% of CLOCK_PROCESS_CPUTIME_ID over the profiled window, at
 * 100 Hz and at 1 kHz.  Built twice: with frame pointers (FP unwinder)
 * and -O2 -fomit-frame-pointer (DWARF unwinder).  CPU clocks, not wall
 * time, so a loaded machine only makes the test slower.
 */
#include "support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpprof.h"
#include "cpu_util.h"

/* Iterations per unit of work: about 10 ms of CPU, calibrated at start.
 * Work alternates in bursts of several sampling periods, so sampling
 * error stays at the burst boundaries instead of adding up per sample
 * (with bursts much shorter than a period the error would be that of
 * random sampling: +-1.7 points for 200 samples, too close to 3). */
static unsigned long unit = 1000000;

typedef struct worker {
    void (*f[2])(void);
    double truth[2]; /* thread CPU seconds spent in f[i] */
    double budget;   /* thread CPU seconds to burn */
} worker;

static volatile unsigned long sink;

#define SPIN(n)                                                  \
    do {                                                         \
        unsigned long x_ = sink;                                 \
        for (unsigned long i_ = 0; i_ < (n); i_++)               \
            x_ = x_ * 2654435761u + i_;                          \
        sink = x_;                                               \
    } while (0)

__attribute__((noinline)) void cpt_work_a(void) { SPIN(5 * unit); }
__attribute__((noinline)) void cpt_work_b(void) { SPIN(3 * unit); }
__attribute__((noinline)) void cpt_work_c(void) { SPIN(2 * unit); }

static void calibrate(void)
{
    double t0 = cpt_cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    SPIN(2000000UL);
    double dt = cpt_cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - t0;
    if (dt > 0)
        unit = (unsigned long)(2000000UL * 0.010 / dt);
}

static void *worker_main(void *p)
{
    worker *w = p;
    double start = cpt_cpu_seconds(CLOCK_THREAD_CPUTIME_ID), now = start;
    for (int turn = 0; now - start < w->budget; turn ^= 1) {
        double t0 = now;
        w->f[turn]();
        now = cpt_cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
        w->truth[turn] += now - t0;
    }
    return NULL;
}

static double budget(void)
{
    const char *s = getenv("CPT_CPU_SECONDS"); /* total, both threads */
    double b = s ? atof(s) : 4.0;
    return (b > 0 ? b : 4.0) / 2;
}

static void run_accuracy(int hz)
{
#ifdef CPT_OMIT_FP
    assert_int_equal(cpprof_cpu_set_unwind(CPPROF_CPU_UNWIND_DWARF), 0);
#else
    assert_int_equal(cpprof_cpu_set_unwind(CPPROF_CPU_UNWIND_FP), 0);
#endif
    assert_int_equal(cpprof_cpu_set_rate(hz), 0);
    char *dir = cpt_tmpdir(), *path = cpt_path(dir, "cpu.pb.gz");
    /* Thread 1 runs only work_a (50% of the CPU); thread 2 alternates
     * work_b (3 units) and work_c (2 units): 30% and 20%. */
    worker w1 = { { cpt_work_a, cpt_work_a }, { 0, 0 }, budget() };
    worker w2 = { { cpt_work_b, cpt_work_c }, { 0, 0 }, budget() };

    double cpu0 = cpt_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
    cpt_cpu_start_file(path);
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, worker_main, &w1), 0);
    assert_int_equal(pthread_create(&t2, NULL, worker_main, &w2), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    double used = cpt_cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    cp_decoded *d = cpt_cpu_stop_decode(path);
    cpt_check_cpu_header(d, hz);

    double truth[3] = { w1.truth[0] + w1.truth[1], w2.truth[0],
                        w2.truth[1] };
    const char *names[3] = { "cpt_work_a", "cpt_work_b", "cpt_work_c" };
    double tsum = truth[0] + truth[1] + truth[2], psum = 0, got[3];
    for (int i = 0; i < 3; i++)
        psum += got[i] = (double)cpt_total_in(d, names[i], 1);
    double total = (double)cp_decoded_total(d, 1) / 1e9;
    printf("%d Hz: profile total %.3fs, process used %.3fs (%.1f%%)\n", hz,
           total, used, 100 * total / used);
    for (int i = 0; i < 3; i++) {
        double want = 100 * truth[i] / tsum, have = 100 * got[i] / psum;
        printf("  %s: truth %.1f%%, profile %.1f%%\n", names[i], want, have);
        assert_true(have > want - 3 && have < want + 3);
    }
    assert_true(total > used * 0.95 && total < used * 1.05);
    /* The profile says how much of the process's CPU time it covers. */
    int cover = -1;
    for (size_t i = 0; i < d->ncomments; i++)
        if (sscanf(d->comments[i], "cpprof: samples cover %d%%", &cover) == 1)
            break;
    printf("  comment: samples cover %d%%\n", cover);
    assert_true(cover >= 95 && cover <= 105);

    char *out = cpt_pprof("-top", path);
    assert_non_null(strstr(out, "cpt_work_a"));
    free(out);
    cp_decoded_free(d);
    cpt_tmpdir_remove(dir);
    free(path);
    free(dir);
}

static void test_accuracy_100hz(void **state) { run_accuracy(100); }
static void test_accuracy_1000hz(void **state) { run_accuracy(1000); }

int main(void)
{
    cpt_require_go();
    calibrate();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accuracy_100hz),
        cmocka_unit_test(test_accuracy_1000hz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
