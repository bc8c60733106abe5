/*
 * bench/heap/bench_heap_ab.c - the heap profiler's steady-state overhead
 * inside one process.
 *
 *   bench_heap_ab [WINDOW_MS [ROUNDS [RATE [PROFILER [THREADS]]]]]
 *       (40, 400, 524288, cpprof, 2)
 *
 * THREADS threads (two, as the churn; up to 16 for a many-core
 * machine) run the churn of bench_heap_churn.c without end (each
 * replaces random slots of a live ring of 4096 blocks of 16..4096 bytes)
 * in one of three modes, switched by the main thread:
 *   glibc   __libc_malloc/__libc_free: glibc's allocator called directly,
 *           exactly what an unprofiled program's malloc/free run;
 *   off     malloc/free, which resolve to libcpprof's interposers, with
 *           the heap rate at 0 (interposed, not sampling);
 *   rate    the same at RATE bytes (default 512 KiB, the default rate).
 * Every round measures each mode for one window of WINDOW_MS, in a random
 * order, after a settling quarter-window; a thread that sees its mode
 * change first churns on until its whole ring comes from the new mode's
 * allocator (ring_switch), so sampled blocks are only ever freed through
 * the profiler and every mode sees the same live heap.  The overhead of a mode in a round is the
 * glibc window's pair rate over the mode's, minus one (wall), and the
 * mode's process CPU per pair over glibc's, minus one (cpu); printed are
 * the means over rounds with 95 % intervals, and the medians; then, the
 * same way, rate over off: sampling alone, against the same interposed
 * build not sampling (what the peer modes below measure).  With
 * AB_TRACE set in the environment every window's CPU and wall ns per
 * pair go to stderr (to see how far the machine drifts).
 *
 * PROFILER jemalloc or tcmalloc measures a peer the same way, against
 * its own allocator, with the library preloaded: malloc/free then are
 * the peer's, and the windows alternate its profiler inactive and
 * active.  jemalloc: MALLOC_CONF=prof:true,prof_active:false, toggled by
 * mallctl("prof.active"), sampling every ~RATE bytes (prof.reset with
 * lg_sample = log2 RATE, so 19 for the default); tcmalloc: its heap
 * profiler, HeapProfilerStart/Stop (it records every allocation).
 *
 * Why in one process: separate processes differ by their memory layout
 * (and by what else the machine runs at the time) by a few per cent,
 * which paired process runs on a shared 2-vCPU machine could not resolve;
 * alternating windows inside one process see one layout and the same
 * load.  The library is linked as a shared object, as a program that
 * links it or LD_PRELOADs it runs it: malloc goes through the PLT to the
 * interposer, __libc_malloc through the PLT to glibc.
 *
 * Single process; not part of the library.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpprof.h"
#include "../common/ab_window.h"

/* glibc's allocator under its own names: what malloc and free are when
 * nothing interposes them. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

#define RING 4096
#define MAX_THREADS 16
#define BATCH 256 /* pairs between two looks at the mode */

enum { MODES = 3, MODE_STOP = MODES };

/*
 * What the windows compare: mode 0 is the baseline; direct modes call
 * glibc's __libc_* entry points, the others malloc/free; enter puts the
 * profiler in mode (normal context, between windows).
 */
typedef struct ab_target {
    const char *name;
    int nmodes;
    const char *mode_name[MODES];
    bool direct[MODES];
    int (*enter)(int mode, int64_t rate);
} ab_target;

static int cpprof_enter(int mode, int64_t rate)
{
    return cpprof_heap_set_rate(mode == 2 ? rate : 0);
}

static int jemalloc_enter(int mode, int64_t rate)
{
    static int (*mallctl)(const char *, void *, size_t *, void *, size_t);
    if (!mallctl) {
        *(void **)&mallctl = dlsym(RTLD_DEFAULT, "mallctl");
        size_t lg = 0;
        while (((int64_t)2 << lg) <= rate)
            lg++;
        size_t got = 0, len = sizeof got;
        if (!mallctl || mallctl("prof.reset", NULL, NULL, &lg, sizeof lg) ||
            mallctl("prof.lg_sample", &got, &len, NULL, 0) || got != lg)
            return -1;
    }
    bool on = mode == 1;
    return mallctl("prof.active", NULL, NULL, &on, sizeof on);
}

static int tcmalloc_enter(int mode, int64_t rate)
{
    static int (*start)(const char *);
    static void (*stop)(void);
    static bool running;
    (void)rate;
    if (!start) {
        *(void **)&start = dlsym(RTLD_DEFAULT, "HeapProfilerStart");
        *(void **)&stop = dlsym(RTLD_DEFAULT, "HeapProfilerStop");
        if (!start || !stop)
            return -1;
    }
    if (running)
        stop();
    running = mode == 1;
    if (running)
        start("/tmp/bench_heap_ab.tcmalloc");
    return 0;
}

static const ab_target targets[] = {
    { "cpprof", 3, { "glibc", "off", "rate" }, { true, false, false },
      cpprof_enter },
    { "jemalloc", 2, { "jemalloc", "prof" }, { false, false },
      jemalloc_enter },
    { "tcmalloc", 2, { "tcmalloc", "heapprof" }, { false, false },
      tcmalloc_enter },
};
static const ab_target *target = &targets[0];
static int nthreads = 2; /* churning threads */

static struct {
    _Atomic int mode;
    struct {
        _Alignas(64) _Atomic unsigned long pairs;
        _Atomic int mode_seen;
    } worker[MAX_THREADS];
} ab;

struct churn {
    uint64_t x;
    unsigned long pairs;
    void *ring[RING];
};

static inline uint64_t next_random(struct churn *c)
{
    c->x ^= c->x << 13;
    c->x ^= c->x >> 7;
    c->x ^= c->x << 17;
    return c->x;
}

/* BATCH pairs of the churn; direct is a constant in each inlined copy,
 * so that the two copies differ only in the functions they call. */
static inline __attribute__((always_inline)) void churn(struct churn *c,
                                                        bool direct)
{
    for (int i = 0; i < BATCH; i++) {
        uint64_t x = next_random(c);
        size_t k = x % RING;
        if (direct)
            __libc_free(c->ring[k]);
        else
            free(c->ring[k]);
        size_t n = 16 + (x >> 20) % 4081;
        char *p = direct ? __libc_malloc(n) : malloc(n);
        p[0] = (char)c->pairs++;
        c->ring[k] = p;
    }
}

static bool direct_mode(int mode)
{
    return mode >= 0 && mode < MODES && target->direct[mode];
}

/*
 * Churns on in the new mode until every slot of the ring holds a block of
 * the new mode's allocator: a slot still holding an old block has it
 * freed through the old one.  The heap changes as gradually as in the
 * churn itself (no mass free and refill that would give every window a
 * fresh layout), and sampled blocks are only ever freed through the
 * profiler.
 */
static void ring_switch(struct churn *c, int from, int to)
{
    static _Thread_local uint8_t moved[RING];
    size_t left = RING;
    memset(moved, 0, sizeof moved);
    while (left > 0) {
        uint64_t x = next_random(c);
        size_t k = x % RING;
        bool old_direct = moved[k] ? direct_mode(to) : direct_mode(from);
        if (!moved[k]) {
            moved[k] = 1;
            left--;
        }
        if (old_direct)
            __libc_free(c->ring[k]);
        else
            free(c->ring[k]);
        c->ring[k] = NULL;
        if (to == MODE_STOP)
            continue;
        size_t n = 16 + (x >> 20) % 4081;
        char *p = direct_mode(to) ? __libc_malloc(n) : malloc(n);
        if (!p) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        p[0] = (char)c->pairs++;
        c->ring[k] = p;
    }
}

static void *worker(void *arg)
{
    int me = (int)(intptr_t)arg;
    struct churn *c = __libc_malloc(sizeof *c);
    if (!c) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(c, 0, sizeof *c);
    c->x = UINT64_C(0x9e3779b97f4a7c15) * (uint64_t)(me + 1);
    int mode = -1;
    for (;;) {
        int want = atomic_load_explicit(&ab.mode, memory_order_acquire);
        if (want != mode) {
            ring_switch(c, mode, want);
            mode = want;
            atomic_store_explicit(&ab.worker[me].mode_seen, mode,
                                  memory_order_release);
            if (mode == MODE_STOP)
                break;
        }
        if (direct_mode(mode))
            churn(c, true);
        else
            churn(c, false);
        atomic_store_explicit(&ab.worker[me].pairs, c->pairs,
                              memory_order_relaxed);
    }
    __libc_free(c);
    return NULL;
}

static unsigned long pairs_done(void)
{
    unsigned long n = 0;
    for (int i = 0; i < nthreads; i++)
        n += atomic_load_explicit(&ab.worker[i].pairs, memory_order_relaxed);
    return n;
}

/* Switches the workers to mode and waits until both have moved their
 * rings (outside any window). */
static void set_mode(int mode, int64_t rate)
{
    if (target->enter(mode == MODE_STOP ? 0 : mode, rate) != 0) {
        fprintf(stderr, "%s: cannot switch its profiler (preloaded, with "
                        "its profiling built in?)\n", target->name);
        exit(1);
    }
    atomic_store_explicit(&ab.mode, mode, memory_order_release);
    for (int i = 0; i < nthreads; i++)
        while (atomic_load_explicit(&ab.worker[i].mode_seen,
                                    memory_order_acquire) != mode)
            ab_sleep_ms(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The measured library must own the malloc this program calls, or the
 * figures compare glibc with itself. */
static bool malloc_is(const char *lib)
{
    Dl_info info;
    return dladdr((void *)malloc, &info) && info.dli_fname &&
           strstr(info.dli_fname, lib) != NULL;
}

int main(int argc, char **argv)
{
    int window = argc > 1 ? atoi(argv[1]) : 40;
    int rounds = argc > 2 ? atoi(argv[2]) : 400;
    long long rate = argc > 3 ? atoll(argv[3]) : 524288;
    const char *which = argc > 4 ? argv[4] : "cpprof";
    nthreads = argc > 5 ? atoi(argv[5]) : 2;
    target = NULL;
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++)
        if (strcmp(which, targets[i].name) == 0)
            target = &targets[i];
    if (window < 10 || rounds < 2 || rounds > 10000 || rate < 1 || !target ||
        nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "usage: bench_heap_ab [WINDOW_MS >= 10 [ROUNDS 2.."
                        "10000 [RATE >= 1 [cpprof|jemalloc|tcmalloc "
                        "[THREADS 1..16]]]]]\n");
        return 2;
    }
    if (!malloc_is(target == &targets[0] ? "cpprof" : target->name)) {
        fprintf(stderr, "malloc is not %s's: nothing to measure (preload "
                        "the peer's library)\n", target->name);
        return 1;
    }
    int nm = target->nmodes;
    for (int i = 0; i < nthreads; i++)
        atomic_store(&ab.worker[i].mode_seen, -1);
    pthread_t t[MAX_THREADS];
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    set_mode(0, rate);

    double *wall[MODES], *cpu[MODES], ns[MODES] = { 0 };
    for (int m = 0; m < nm; m++) {
        wall[m] = __libc_malloc(2 * sizeof(double) * (size_t)rounds);
        if (!wall[m]) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        cpu[m] = wall[m] + rounds;
    }
    double *sampled_wall = __libc_malloc(2 * sizeof(double) * (size_t)rounds);
    if (!sampled_wall) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    double *sampled_cpu = sampled_wall + rounds;
    srand(12345);
    for (int r = 0; r < rounds; r++) {
        int order[MODES];
        for (int i = 0; i < nm; i++)
            order[i] = i;
        for (int i = nm - 1; i > 0; i--) {
            int j = rand() % (i + 1), tmp = order[i];
            order[i] = order[j];
            order[j] = tmp;
        }
        double per_s[MODES], cost[MODES];
        for (int i = 0; i < nm; i++) {
            int m = order[i];
            set_mode(m, rate);
            ab_sleep_ms(window / 4);
            unsigned long p0 = pairs_done();
            double t0 = ab_now(CLOCK_MONOTONIC);
            double c0 = ab_now(CLOCK_PROCESS_CPUTIME_ID);
            ab_sleep_ms(window);
            unsigned long p1 = pairs_done();
            double t1 = ab_now(CLOCK_MONOTONIC);
            double c1 = ab_now(CLOCK_PROCESS_CPUTIME_ID);
            per_s[m] = (double)(p1 - p0) / (t1 - t0);
            cost[m] = (c1 - c0) / (double)(p1 - p0);
            ns[m] += cost[m] * 1e9 / rounds;
            if (getenv("AB_TRACE"))
                fprintf(stderr, "%d %s %.1f %.1f\n", r, target->mode_name[m],
                        cost[m] * 1e9, 2e9 / per_s[m]);
        }
        for (int m = 0; m < nm; m++) {
            wall[m][r] = per_s[0] / per_s[m] - 1;
            cpu[m][r] = cost[m] / cost[0] - 1;
        }
        if (nm == 3) { /* sampling alone: the last mode over the middle one */
            sampled_wall[r] = per_s[1] / per_s[2] - 1;
            sampled_cpu[r] = cost[2] / cost[1] - 1;
        }
    }
    set_mode(MODE_STOP, rate);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);

    printf("%s: %d threads, %d rounds of %d ms, rate %lld bytes; overhead "
           "vs %s, mean (95 %% CI) [median]:\n",
           target->name, nthreads, rounds, window, rate, target->mode_name[0]);
    for (int m = 0; m < nm; m++) {
        const char *name = target->mode_name[m];
        if (m == 0) {
            printf("  %-8s  %7.1f ns CPU per pair\n", name, ns[m]);
            continue;
        }
        double mw, hw, mc, hc;
        ab_stats(wall[m], rounds, &mw, &hw);
        ab_stats(cpu[m], rounds, &mc, &hc);
        printf("  %-8s  %7.1f ns CPU per pair  wall %+6.2f %% (%+.2f..%+.2f)"
               " [%+.2f]  cpu %+6.2f %% (%+.2f..%+.2f) [%+.2f]\n",
               name, ns[m], 100 * mw, 100 * (mw - hw), 100 * (mw + hw),
               100 * median(wall[m], rounds), 100 * mc, 100 * (mc - hc),
               100 * (mc + hc), 100 * median(cpu[m], rounds));
    }
    if (nm == 3) {
        /* What the peers' figures are: the profiler on against the same
         * build with it off, hooks in place. */
        double mw, hw, mc, hc;
        ab_stats(sampled_wall, rounds, &mw, &hw);
        ab_stats(sampled_cpu, rounds, &mc, &hc);
        printf("  %s vs %s: wall %+6.2f %% (%+.2f..%+.2f) [%+.2f]  cpu "
               "%+6.2f %% (%+.2f..%+.2f) [%+.2f]\n",
               target->mode_name[2], target->mode_name[1], 100 * mw,
               100 * (mw - hw), 100 * (mw + hw),
               100 * median(sampled_wall, rounds), 100 * mc, 100 * (mc - hc),
               100 * (mc + hc), 100 * median(sampled_cpu, rounds));
    }
    for (int m = 0; m < nm; m++)
        __libc_free(wall[m]);
    __libc_free(sampled_wall);
    return 0;
}
