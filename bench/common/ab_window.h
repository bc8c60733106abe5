/*
 * bench/common/ab_window.h - the helpers shared by the in-process A/B
 * benchmarks (bench_cpu ab, bench_heap_ab): a monotonic sleep for the
 * measurement windows and the mean of per-round ratios with its 95 %
 * interval.  Header-only; benchmarks only, never the library.
 */
#ifndef CPPROF_BENCH_AB_WINDOW_H
#define CPPROF_BENCH_AB_WINDOW_H

#include <math.h>
#include <time.h>

static inline double ab_now(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void ab_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* mean and 95 % half-interval (Student's t, df >= 10 approximated). */
static inline void ab_stats(const double *x, int n, double *mean,
                            double *half)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        q += (x[i] - *mean) * (x[i] - *mean);
    double t = n > 60 ? 2.0 : n > 30 ? 2.04 : n > 20 ? 2.09 : 2.23;
    *half = n > 1 ? t * sqrt(q / (n - 1) / n) : 0;
}

#endif
