/*
 * bench/heap/bench_heap_churn.c - malloc/free churn for the heap
 * profiler's overhead: 2 threads, each replacing random slots of a live
 * ring of 4096 blocks with blocks of 16..4096 bytes.  Links no profiler:
 * run.sh runs it as-is and under each profiler (LD_PRELOAD) so every
 * configuration executes the same binary.  Prints ns per malloc+free pair
 * (process CPU time, so a loaded machine inflates all runs alike).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define RING 4096
#define THREADS 2

static long ops_per_thread = 4000000;

static void *churn(void *arg)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
    void **ring = calloc(RING, sizeof *ring);
    for (long i = 0; i < ops_per_thread; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = x % RING;
        free(ring[k]);
        size_t n = 16 + (x >> 20) % 4081;
        char *p = malloc(n);
        p[0] = (char)i;
        ring[k] = p;
    }
    for (size_t k = 0; k < RING; k++)
        free(ring[k]);
    free(ring);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        ops_per_thread = atol(argv[1]);
    struct timespec a, b;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, churn, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    double ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    printf("%.2f\n", ns / ((double)ops_per_thread * THREADS));
    return 0;
}
