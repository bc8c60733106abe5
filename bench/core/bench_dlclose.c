/*
 * bench_dlclose.c - what cpprof's dlclose interposer (capture/dl_shim.c)
 * adds to a dlopen+dlclose pair: one pass over the loaded objects before
 * the real call and one after.  Run it plain and with libcpprof
 * preloaded, in turns (the interposer exists only in the second):
 *
 *   bench_dlclose MODULE [PAIRS] [ROUNDS]   (defaults 2000, 7)
 *
 * MODULE is a small library not otherwise loaded (the build makes
 * libbench_dl_module.so beside this program).  Prints the median of the
 * rounds' microseconds per pair.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_dlclose MODULE [PAIRS] [ROUNDS]\n");
        return 2;
    }
    long pairs = argc > 2 ? atol(argv[2]) : 2000;
    int rounds = argc > 3 ? atoi(argv[3]) : 7;
    if (pairs <= 0 || rounds <= 0 || rounds > 101) {
        fprintf(stderr, "bench_dlclose: bad PAIRS or ROUNDS\n");
        return 2;
    }
    double us[101];
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        for (long i = 0; i < pairs; i++) {
            void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
            if (!h) {
                fprintf(stderr, "bench_dlclose: %s\n", dlerror());
                return 1;
            }
            dlclose(h);
        }
        us[r] = (now_us() - t0) / pairs;
    }
    qsort(us, rounds, sizeof *us, by_value);
    printf("%.1f us per dlopen+dlclose (median of %d rounds)\n",
           us[rounds / 2], rounds);
    return 0;
}
