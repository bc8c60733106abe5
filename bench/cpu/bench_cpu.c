/*
 * bench/cpu/bench_cpu.c - CPU profiler benchmarks (issue 3).
 *
 *   bench_cpu work THREADS SECONDS [cpprof HZ [fp|dwarf|auto]]
 *       A CPU-bound workload: THREADS threads each burn about SECONDS of
 *       CPU in a 4-deep call chain (the iteration count is calibrated
 *       first, so every configuration does the same work).  Prints the
 *       workload's wall time and the process CPU; with "cpprof HZ" it
 *       profiles itself with cpprof and prints the profile's total CPU
 *       (completeness).  gperftools and perf wrap the same command from
 *       outside (bench/cpu/run.sh).
 *   bench_cpu unwind DEPTH
 *       Per-sample unwind cost: cp_unwind_signal on a context DEPTH frames
 *       deep, frame-pointer and DWARF (CFI) walks, and cp_unwind_self,
 *       ns per call, plus the CFI walk's libunwind-fallback count.
 *
 * Single process, normal context; not part of the library.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "cpprof.h"
#include "capture/unwind_signal.h"
#include "encode/decode.h"

static struct {
    unsigned long iters; /* per thread */
    volatile unsigned long sink;
} bench;

static double now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static unsigned long leaf(unsigned long n)
{
    unsigned long x = bench.sink;
    for (unsigned long i = 0; i < n; i++)
        x = x * 2654435761u + (i ^ (x >> 7));
    return x;
}

__attribute__((noinline)) static unsigned long mid(unsigned long n)
{
    unsigned long r = leaf(n / 2);
    __asm__ volatile("" ::: "memory");
    return r + leaf(n - n / 2);
}

__attribute__((noinline)) static void *worker(void *arg)
{
    unsigned long done = 0;
    while (done < bench.iters) {
        bench.sink += mid(100000);
        done += 100000;
    }
    return NULL;
}

static void calibrate(double seconds)
{
    double t0 = now(CLOCK_THREAD_CPUTIME_ID);
    unsigned long n = 0;
    while (now(CLOCK_THREAD_CPUTIME_ID) - t0 < 0.2) {
        bench.sink += mid(100000);
        n += 100000;
    }
    bench.iters = (unsigned long)(n * seconds / 0.2);
}

static int cmd_work(int argc, char **argv)
{
    int threads = atoi(argv[2]);
    double seconds = atof(argv[3]);
    bool prof = argc > 5 && strcmp(argv[4], "cpprof") == 0;
    if (threads < 1 || threads > 256 || seconds <= 0) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    /* BENCH_CPU_ITERS fixes the work, so repeated runs of different
     * configurations compare equal work (bench/cpu/overhead.sh). */
    const char *fixed = getenv("BENCH_CPU_ITERS");
    if (fixed && strtoul(fixed, NULL, 10) > 0)
        bench.iters = strtoul(fixed, NULL, 10);
    else
        calibrate(seconds);
    cpprof_writer *w = NULL;
    const char *path = getenv("BENCH_CPU_OUT") ? getenv("BENCH_CPU_OUT")
                                               : "/tmp/bench_cpu.pb.gz";
    if (prof) {
        int rc = cpprof_cpu_set_rate(atoi(argv[5]));
        if (rc == 0 && argc > 6)
            rc = cpprof_cpu_set_unwind(strcmp(argv[6], "fp") == 0 ? 1
                                       : strcmp(argv[6], "dwarf") == 0 ? 2
                                                                       : 0);
        if (rc == 0)
            rc = cpprof_writer_open_path(&w, path);
        if (rc == 0)
            rc = cpprof_cpu_start(w);
        if (rc != 0) {
            fprintf(stderr, "cpprof: %s\n", cpprof_strerror(rc));
            return 1;
        }
    }
    double cpu0 = now(CLOCK_PROCESS_CPUTIME_ID), t0 = now(CLOCK_MONOTONIC);
    pthread_t t[256];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double wall = now(CLOCK_MONOTONIC) - t0;
    double cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    printf("wall %.4f cpu %.4f iters %lu", wall, cpu, bench.iters);
    if (prof) {
        double s0 = now(CLOCK_MONOTONIC);
        cpprof_cpu_stop();
        cpprof_writer_close(w);
        double stop = now(CLOCK_MONOTONIC) - s0;
        cp_decoded *d;
        if (cp_decode_file(path, &d) == 0) {
            printf(" profiled %.4f samples %lld stop %.4f",
                   cp_decoded_total(d, 1) / 1e9,
                   (long long)cp_decoded_total(d, 0), stop);
            cp_decoded_free(d);
        }
    }
    printf("\n");
    return 0;
}

/* Times the walks from DEPTH frames down, where the stack is live: FP and
 * DWARF (CFI) walks of a signal-style context, and cp_unwind_self (the
 * heap sampler's capture).  The CFI rule cache is warm after the first. */
static void time_unwinds(void)
{
    ucontext_t uc;
    getcontext(&uc);
    const char *names[] = { "fp", "dwarf", "self" };
    enum cp_unwind_mode modes[] = { CP_UNWIND_FP, CP_UNWIND_DWARF,
                                    CP_UNWIND_AUTO };
    for (int m = 0; m < 3; m++) {
        uintptr_t pcs[128];
        size_t n = 0;
        int iters = 200000;
        double t0 = now(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < iters; i++)
            n = m == 2 ? cp_unwind_self(pcs, 128)
                       : cp_unwind_signal(&uc, pcs, 128, modes[m]);
        double ns = (now(CLOCK_THREAD_CPUTIME_ID) - t0) * 1e9 / iters;
        printf("unwind %s depth %zu: %.0f ns/sample\n", names[m], n, ns);
    }
    cp_unwind_stats_t st;
    cp_unwind_stats(&st);
    printf("cfi walks %llu complete %llu libunwind fallbacks %llu\n",
           (unsigned long long)st.walks, (unsigned long long)st.complete,
           (unsigned long long)st.fallbacks);
}

__attribute__((noinline)) static void recurse(int n)
{
    if (n > 1)
        recurse(n - 1);
    else
        time_unwinds();
    __asm__ volatile("" ::: "memory");
}

static int cmd_unwind(int argc, char **argv)
{
    int depth = atoi(argv[2]);
    if (depth < 1 || depth > 120)
        return 2;
    cp_unwind_thread_prepare();
    recurse(depth);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "work") == 0)
        return cmd_work(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "unwind") == 0)
        return cmd_unwind(argc, argv);
    fprintf(stderr, "usage: bench_cpu work THREADS SECONDS [cpprof HZ "
                    "[fp|dwarf|auto]] | bench_cpu unwind DEPTH\n");
    return 2;
}
