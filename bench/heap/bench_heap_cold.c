/*
 * bench/heap/bench_heap_cold.c - what one sampled allocation costs when
 * the caches have forgotten the profiler.
 *
 *   bench_heap_cold [ROUNDS [EVICT_KIB [SIZE]]]   (3000, 4096, 256)
 *
 * At the default rate a thread samples once per ~512 KiB allocated, tens
 * of microseconds apart in a busy program: by then its allocator and
 * data have pushed the sampler's code and tables out of L1 and L2.  The
 * churn benchmarks see that cost only as a point or two of overhead in
 * noise of about as much; this one isolates it.  Each round writes
 * EVICT_KIB of a buffer (4 MiB: twice this machine's L2, less than its
 * L3, as a churning heap of a few MiB does), then times one malloc+free
 * of SIZE bytes from a call site five frames deep, in each of three
 * modes in a random order:
 *   glibc    __libc_malloc/__libc_free (what an unprofiled program runs)
 *   off      malloc/free through the interposers at rate 0
 *   sampled  the same at rate 1: every allocation sampled, from one site
 *            (the stack already interned, as for a site sampled before)
 * and prints each mode's median and quartiles (ns, CLOCK_MONOTONIC, the
 * clock read's own cost included alike), then the medians of the
 * per-round differences: off - glibc (interposition) and sampled - off
 * (one cold sample and its free).  EVICT_KIB 0 gives the warm costs.
 *
 * Single thread; not part of the library.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpprof.h"

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

enum { GLIBC, OFF, SAMPLED, MODES };
static const char *const mode_name[MODES] = { "glibc", "off", "sampled" };

static unsigned char *evict_buf;
static size_t evict_len;
static volatile unsigned char sink;
static volatile int opaque_zero;

static void evict(void)
{
    /* Writes, so that the lines come in exclusive and are written back
     * on eviction, as a churning heap's are. */
    for (size_t i = 0; i < evict_len; i += 64)
        evict_buf[i]++;
    if (evict_len)
        sink = evict_buf[evict_len / 2];
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The call site, a few frames deep as real allocation sites are. */
static __attribute__((noinline)) double site5(int mode, size_t n)
{
    double t0 = now_ns();
    void *p = mode == GLIBC ? __libc_malloc(n) : malloc(n);
    /* Opaque to the compiler, which would otherwise drop the pair. */
    __asm__ volatile("" : : "r"(p) : "memory");
    if (mode == GLIBC)
        __libc_free(p);
    else
        free(p);
    double t1 = now_ns();
    __asm__ volatile("" ::: "memory");
    return t1 - t0;
}
#define LEVEL(k, next)                                                    \
    static __attribute__((noinline)) double site##k(int mode, size_t n)   \
    {                                                                     \
        double t = next(mode, n);                                         \
        __asm__ volatile("" ::: "memory");                                \
        return t;                                                         \
    }
LEVEL(4, site5)
LEVEL(3, site4)
LEVEL(2, site3)
LEVEL(1, site2)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[(int)(q * (n - 1))];
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3000;
    long evict_kib = argc > 2 ? atol(argv[2]) : 4096;
    size_t size = argc > 3 ? (size_t)atol(argv[3]) : 256;
    if (rounds < 10 || evict_kib < 0 || size == 0) {
        fprintf(stderr, "usage: bench_heap_cold [ROUNDS>=10 [EVICT_KIB [SIZE]]]\n");
        return 2;
    }
    evict_len = (size_t)evict_kib * 1024;
    evict_buf = evict_len ? __libc_malloc(evict_len) : NULL;
    if (evict_len && !evict_buf)
        return 1;
    if (evict_len)
        memset(evict_buf, 1, evict_len);

    double *t[MODES], *d_off = malloc(sizeof(double) * (size_t)rounds),
                      *d_smp = malloc(sizeof(double) * (size_t)rounds);
    for (int m = 0; m < MODES; m++)
        t[m] = malloc(sizeof(double) * (size_t)rounds);

    /* Intern the site's stack once, as a site sampled before. */
    cpprof_heap_set_rate(1);
    for (int i = 0; i < 4; i++)
        site1(SAMPLED, size);

    uint64_t rng = 88172645463325252ull;
    for (int r = 0; r < rounds; r++) {
        int order[MODES] = { GLIBC, OFF, SAMPLED };
        for (int i = MODES - 1; i > 0; i--) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            int j = (int)(rng % (uint64_t)(i + 1)), x = order[i];
            order[i] = order[j], order[j] = x;
        }
        for (int i = 0; i < MODES; i++) {
            int m = order[i];
            cpprof_heap_set_rate(m == SAMPLED ? 1 : 0);
            /* The thread takes a rate change at its next allocation:
             * one call from the same site, untimed, so that the timed
             * one is a plain sample of an interned stack, as a loop's
             * next sample is. */
            for (int k = 0; k < 2; k++) {
                /* The test against a volatile keeps one copy of the
                 * body: one call site for both calls (two would make
                 * two stacks). */
                if (k != opaque_zero)
                    evict();
                t[m][r] = site1(m, size);
            }
        }
        d_off[r] = t[OFF][r] - t[GLIBC][r];
        d_smp[r] = t[SAMPLED][r] - t[OFF][r];
    }
    cpprof_heap_set_rate(0);

    printf("bench_heap_cold: %d rounds, %ld KiB evicted, %zu-byte blocks\n",
           rounds, evict_kib, size);
    for (int m = 0; m < MODES; m++)
        printf("  %-8s ns per malloc+free: median %7.1f (q1 %7.1f .. q3 %7.1f)\n",
               mode_name[m], quantile(t[m], rounds, 0.5),
               quantile(t[m], rounds, 0.25), quantile(t[m], rounds, 0.75));
    printf("  off - glibc (interposition), median of rounds: %+7.1f ns\n",
           quantile(d_off, rounds, 0.5));
    printf("  sampled - off (one sample + its free), median:  %+7.1f ns\n",
           quantile(d_smp, rounds, 0.5));
    return 0;
}
