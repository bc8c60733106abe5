/*
 * bench/trace/trace_bench.c - cost of the trace annotations: a region
 * begin/end pair when no trace is recording (the predictable branch) and
 * while a trace records, against two peers: an empty loop calling an empty
 * out-of-line function pair (the baseline), and two clock_gettime calls
 * and two TSC reads (the floors: a recorded pair needs two timestamps, from
 * the TSC where usable, see docs/trace.md).
 *
 * The traced pair is measured twice: task-less with a 5-byte name, and
 * with a task and a 20-byte name (a record two words longer and a longer
 * name copy).
 *
 * Usage: trace_bench [pairs]  (default 2,000,000).  While tracing, pairs
 * run in batches that fit one thread's ring, and the drain thread gets
 * time between batches, so every event is really recorded (the run checks
 * that none was lost); only the batches are timed.  Every figure is the
 * median over batches of 4096 pairs.  Output goes to
 * /dev/null.  Prints one table row per measurement.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "capture/trace_ring.h" /* lost-event count */
#include "cpprof.h"

#define BATCH 4096

static cpprof_trace_task *bench_task;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

__attribute__((noinline)) static void empty_begin(const void *t, const char *n)
{
    __asm__ volatile("" ::"r"(t), "r"(n) : "memory");
}

__attribute__((noinline)) static void empty_end(const void *t)
{
    __asm__ volatile("" ::"r"(t) : "memory");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median ns per pair over batches of BATCH pairs: robust against the
 * preemptions of a shared machine, and the same statistic for every
 * measurement. */
static double run(int kind, long pairs)
{
    long nb = (pairs + BATCH - 1) / BATCH;
    double *per = malloc((size_t)nb * sizeof *per);
    if (per == NULL)
        return -1;
    for (long b = 0; b < nb; b++) {
        double t0 = now_ns();
        for (int i = 0; i < BATCH; i++) {
            switch (kind) {
            case 0:
                empty_begin(NULL, "bench");
                empty_end(NULL);
                break;
            case 1: {
                struct timespec x, y;
                clock_gettime(CLOCK_MONOTONIC, &x);
                clock_gettime(CLOCK_MONOTONIC, &y);
                __asm__ volatile("" ::"r"(&x), "r"(&y) : "memory");
                break;
            }
            case 4: {
                uint64_t x = cp_trace_tsc(), y = cp_trace_tsc();
                __asm__ volatile("" ::"r"(x), "r"(y) : "memory");
                break;
            }
            case 5: /* a realistic region: a task and a 20-byte name */
                cpprof_trace_region_begin(bench_task, "http_request_handler");
                cpprof_trace_region_end(bench_task);
                break;
            default:
                cpprof_trace_region_begin(NULL, "bench");
                cpprof_trace_region_end(NULL);
                break;
            }
        }
        per[b] = (now_ns() - t0) / BATCH;
        if (kind == 3 || kind == 5) { /* let the drain empty the ring */
            struct timespec d = { 0, 50 * 1000000L };
            nanosleep(&d, NULL);
        }
    }
    qsort(per, (size_t)nb, sizeof *per, cmp_double);
    double med = per[nb / 2];
    free(per);
    return med;
}

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 2000000;
    if (pairs <= 0) {
        fprintf(stderr, "usage: %s [pairs > 0]\n", argv[0]);
        return 2;
    }
    double base = run(0, pairs);
    double clock2 = run(1, pairs);
    double off = run(2, pairs);
    double tsc2 = run(4, pairs);

    int fd = open("/dev/null", O_WRONLY);
    cpprof_writer *w;
    if (fd < 0 || cpprof_writer_open_fd(&w, fd) != 0 ||
        cpprof_trace_start(w) != 0) {
        fprintf(stderr, "cannot start tracing\n");
        return 1;
    }
    long traced = pairs < 100 * BATCH ? pairs : 100 * BATCH;
    if (cpprof_trace_task_new(NULL, "bench", &bench_task) != 0) {
        fprintf(stderr, "cannot create a task\n");
        return 1;
    }
    double on = run(3, traced);
    double on_task = run(5, traced);
    cpprof_trace_task_end(bench_task);
    int rc = cpprof_trace_stop();
    uint64_t lost = cp_trace_capture_lost();
    uint64_t bytes = cpprof_writer_bytes(w);
    cpprof_writer_close(w);
    close(fd);
    if (rc != 0) {
        fprintf(stderr, "trace stop: %s\n", cpprof_strerror(rc));
        return 1;
    }

    if (lost != 0) {
        fprintf(stderr, "%llu events lost: the traced figure is invalid\n",
                (unsigned long long)lost);
        return 1;
    }
    printf("| measurement | ns/pair | x baseline |\n|---|---|---|\n");
    printf("| baseline: empty out-of-line begin/end | %.2f | 1.0 |\n", base);
    printf("| floor: 2 x clock_gettime(MONOTONIC) | %.2f | %.1f |\n", clock2,
           clock2 / base);
    printf("| floor: 2 x TSC read | %.2f | %.1f |\n", tsc2, tsc2 / base);
    printf("| region pair, not tracing | %.2f | %.1f |\n", off, off / base);
    printf("| region pair, tracing (%ld pairs each, %.1f MB of JSON in all) "
           "| %.2f | %.1f |\n", traced, bytes / 1e6, on, on / base);
    printf("| region pair with a task, 20-byte name, tracing | %.2f | %.1f |\n",
           on_task, on_task / base);
    printf("target: <= 50 ns/pair while tracing: %s\n",
           on <= 50 && on_task <= 50 ? "met" : "NOT met");
    return 0;
}
