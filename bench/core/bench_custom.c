/*
 * bench_custom.c - cost of a custom profile add+remove pair (which
 * includes capturing the caller's stack) at 1 and 2 threads, and the same
 * loop with the profile calls removed as the baseline.
 *
 *   bench_custom [pairs-per-thread]     (default 2000000)
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cpprof.h>

static cpprof_profile *profile;
static long pairs = 2000000;
static volatile uintptr_t sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A few frames of depth, as a real caller would have. */
__attribute__((noinline)) static void open_resource(uintptr_t v, int profiled)
{
    if (profiled)
        cpprof_profile_add(profile, (void *)v, 0);
    sink = v;
}

__attribute__((noinline)) static void close_resource(uintptr_t v, int profiled)
{
    if (profiled)
        cpprof_profile_remove(profile, (void *)v);
    sink = v;
}

struct job {
    uintptr_t id;
    int profiled;
};

static void *loop(void *arg)
{
    struct job *j = arg;
    for (long i = 0; i < pairs; i++) {
        uintptr_t v = (j->id << 48) | ((uintptr_t)i << 4) | 8;
        open_resource(v, j->profiled);
        close_resource(v, j->profiled);
    }
    return NULL;
}

static double run(int threads, int profiled)
{
    pthread_t t[2];
    struct job jobs[2];
    double start = now();
    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){(uintptr_t)i + 1, profiled};
        pthread_create(&t[i], NULL, loop, &jobs[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (now() - start) * 1e9 / (double)pairs; /* ns per pair per thread */
}

int main(int argc, char **argv)
{
    if (argc > 1)
        pairs = atol(argv[1]);
    if (pairs <= 0 || cpprof_profile_new("bench.custom", &profile) != 0) {
        fprintf(stderr, "usage: bench_custom [pairs-per-thread > 0]\n");
        return 2;
    }
    run(1, 1); /* warm the unwinder's caches and the tables */
    for (int threads = 1; threads <= 2; threads++) {
        double base = run(threads, 0);
        double prof = run(threads, 1);
        printf("threads=%d pairs/thread=%ld  add+remove: %.1f ns/op "
               "(loop without profiling: %.1f ns/op)\n",
               threads, pairs, prof, base);
    }
    return 0;
}
