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
 *   bench_cpu ab THREADS WINDOW_MS ROUNDS HZ cpprof|gperftools
 *       Steady-state overhead inside one process: THREADS threads burn
 *       CPU without end while the main thread measures their work rate
 *       in windows of WINDOW_MS, alternately with the profiler running
 *       and not (random order in each of ROUNDS rounds; start and stop
 *       happen outside the windows).  One process sees one memory
 *       layout, so the layout noise that separates processes by a few
 *       per cent cancels.  Prints the mean ratio of the work rate (wall)
 *       and of the process CPU per unit of work, off over on, with 95 %
 *       confidence intervals, and the samples per second taken.
 *       gperftools' libprofiler is dlopen'ed (ProfilerStart/Stop, rate
 *       from CPUPROFILE_FREQUENCY); cpprof is never started in that case.
 *   bench_cpu unwind DEPTH
 *       Per-sample unwind cost: cp_unwind_signal on a context DEPTH frames
 *       deep, frame-pointer and DWARF (CFI) walks, and cp_unwind_self,
 *       ns per call, plus the CFI walk's libunwind-fallback count.
 *
 * Single process, normal context; not part of the library.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <math.h>
#include <stdint.h>

#include "cpprof.h"
#include "../common/ab_window.h"
#include "capture/unwind_signal.h"
#include "encode/decode.h"

static struct {
    unsigned long iters; /* per thread */
    volatile unsigned long sink;
} bench;

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
    double t0 = ab_now(CLOCK_THREAD_CPUTIME_ID);
    unsigned long n = 0;
    while (ab_now(CLOCK_THREAD_CPUTIME_ID) - t0 < 0.2) {
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
    double cpu0 = ab_now(CLOCK_PROCESS_CPUTIME_ID), t0 = ab_now(CLOCK_MONOTONIC);
    pthread_t t[256];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    double wall = ab_now(CLOCK_MONOTONIC) - t0;
    double cpu = ab_now(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    printf("wall %.4f cpu %.4f iters %lu", wall, cpu, bench.iters);
    if (prof) {
        double s0 = ab_now(CLOCK_MONOTONIC);
        cpprof_cpu_stop();
        cpprof_writer_close(w);
        double stop = ab_now(CLOCK_MONOTONIC) - s0;
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

/* ------------------------------------------------------------- ab */

#define AB_MAX_THREADS 64

static struct {
    _Atomic int stop;
    struct {
        _Alignas(64) _Atomic unsigned long units;
    } done[AB_MAX_THREADS];
    int (*gp_start)(const char *);
    void (*gp_stop)(void);
    cpprof_writer *w;
} ab;

__attribute__((noinline)) static void *ab_worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    while (!atomic_load_explicit(&ab.stop, memory_order_relaxed)) {
        bench.sink += mid(20000);
        atomic_fetch_add_explicit(&ab.done[i].units, 1, memory_order_relaxed);
    }
    return NULL;
}

static unsigned long ab_units(int threads)
{
    unsigned long n = 0;
    for (int i = 0; i < threads; i++)
        n += atomic_load_explicit(&ab.done[i].units, memory_order_relaxed);
    return n;
}

static int ab_profiler(bool gperf, bool on)
{
    if (gperf) {
        if (on)
            return ab.gp_start("/tmp/bench_cpu_ab.gprof") ? 0 : -1;
        ab.gp_stop();
        return 0;
    }
    if (on) {
        int rc = cpprof_writer_open_buffer(&ab.w);
        return rc ? rc : cpprof_cpu_start(ab.w);
    }
    int rc = cpprof_cpu_stop();
    cpprof_writer_close(ab.w);
    return rc;
}

static int cmd_ab(int argc, char **argv)
{
    int threads = atoi(argv[2]), window = atoi(argv[3]);
    int rounds = atoi(argv[4]), hz = atoi(argv[5]);
    bool gperf = strcmp(argv[6], "gperftools") == 0;
    if (threads < 1 || threads > AB_MAX_THREADS || window < 10 ||
        rounds < 2 || rounds > 10000 || hz < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    if (gperf) {
        char rate[16];
        snprintf(rate, sizeof rate, "%d", hz);
        setenv("CPUPROFILE_FREQUENCY", rate, 1);
        const char *lib = getenv("PROFILER") ? getenv("PROFILER")
                                             : "libprofiler.so.0";
        void *h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
        if (!h || !(*(void **)&ab.gp_start = dlsym(h, "ProfilerStart")) ||
            !(*(void **)&ab.gp_stop = dlsym(h, "ProfilerStop"))) {
            fprintf(stderr, "gperftools: %s\n", dlerror());
            return 1;
        }
    } else if (cpprof_cpu_set_rate(hz) != 0) {
        fprintf(stderr, "bad rate\n");
        return 2;
    }
    pthread_t t[AB_MAX_THREADS];
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, ab_worker, (void *)(intptr_t)i);
    double *wall = calloc(rounds, sizeof *wall), *cpu = calloc(rounds, sizeof *cpu);
    if (!wall || !cpu) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double on_seconds = 0;
    int rc = 0;
    srand(12345);
    for (int r = 0; r < rounds; r++) {
        double rate[2], cost[2];
        int first = rand() & 1;
        for (int k = 0; k < 2; k++) {
            bool on = (k ^ first) == 1;
            if (on && ab_profiler(gperf, true) != 0) {
                fprintf(stderr, "cannot start the profiler\n");
                rc = 1;
                break;
            }
            ab_sleep_ms(window / 4); /* let start-up settle */
            unsigned long u0 = ab_units(threads);
            double t0 = ab_now(CLOCK_MONOTONIC), c0 = ab_now(CLOCK_PROCESS_CPUTIME_ID);
            ab_sleep_ms(window);
            unsigned long u1 = ab_units(threads);
            double t1 = ab_now(CLOCK_MONOTONIC), c1 = ab_now(CLOCK_PROCESS_CPUTIME_ID);
            rate[on] = (u1 - u0) / (t1 - t0);
            cost[on] = (c1 - c0) / (double)(u1 - u0);
            if (on) {
                on_seconds += c1 - c0;
                ab_profiler(gperf, false);
            }
        }
        if (rc != 0)
            break;
        wall[r] = rate[0] / rate[1]; /* > 1: profiling slowed the work */
        cpu[r] = cost[1] / cost[0];
    }
    atomic_store(&ab.stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    if (rc != 0) {
        free(wall);
        free(cpu);
        return rc;
    }
    double mw, hw, mc, hc;
    ab_stats(wall, rounds, &mw, &hw);
    ab_stats(cpu, rounds, &mc, &hc);
    printf("%s %d Hz, %d threads, %d rounds of %d ms: wall %.4f (%.4f..%.4f)"
           " cpu %.4f (%.4f..%.4f), nominal samples/s %.0f\n",
           gperf ? "gperftools" : "cpprof", hz, threads, rounds, window, mw,
           mw - hw, mw + hw, mc, mc - hc, mc + hc,
           on_seconds / (rounds * window / 1000.0) * hz);
    free(wall);
    free(cpu);
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
        double t0 = ab_now(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < iters; i++)
            n = m == 2 ? cp_unwind_self(pcs, 128)
                       : cp_unwind_signal(&uc, pcs, 128, modes[m]);
        double ns = (ab_now(CLOCK_THREAD_CPUTIME_ID) - t0) * 1e9 / iters;
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
    if (argc >= 7 && strcmp(argv[1], "ab") == 0)
        return cmd_ab(argc, argv);
    fprintf(stderr, "usage: bench_cpu work THREADS SECONDS [cpprof HZ "
                    "[fp|dwarf|auto]] | bench_cpu unwind DEPTH | bench_cpu ab "
                    "THREADS WINDOW_MS ROUNDS HZ cpprof|gperftools\n");
    return 2;
}
