/*
 * bench/sync/bench_sync.c - cost of the pthread interposition behind the
 * block and mutex profiles (issue 5).  One command, three measurements:
 *
 *   1. uncontended lock+unlock, ns per pair: glibc's functions called
 *      through pointers from dlsym(RTLD_NEXT) (bypassing the
 *      interposers linked into this executable) vs the interposed calls
 *      with both profiles off vs on (block rate 1, mutex fraction 1),
 *      first while the process has one thread, then with a second
 *      (idle) thread alive: glibc's own lock skips its atomic
 *      instructions in a single-threaded process, so the two differ;
 *   2. the release accounting alone, without scheduling noise: one
 *      thread's lock+unlock pairs while a registered waiter that never
 *      leaves makes every release charge someone, as the holder of a
 *      convoy does at each release (mutex fraction 1), against the same
 *      pairs with no waiter;
 *   3. contended throughput: THREADS threads increment a counter under
 *      one mutex for a fixed wall-clock time, lock pairs per second with
 *      profiles off vs mutex fraction 1 (vs fraction 1 + block 1), for
 *      three workloads: a tight convoy (tiny critical section, nothing
 *      outside), the same with work outside, and a realistic one (about
 *      1 us inside, 8 us outside);
 *
 * Each configuration runs REPS times interleaved and the median is kept,
 * so a noisy neighbour on a shared machine skews all of them alike.
 * Usage: bench_sync [iterations] [contended_ms] [workload 0-2]
 * (iterations 0 skips the uncontended part).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "capture/sync_events.h"
#include "cpprof.h"

#define REPS 5
#define THREADS 4

static int (*glibc_lock)(pthread_mutex_t *);
static int (*glibc_unlock)(pthread_mutex_t *);

static double now_s(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_d);
    return v[n / 2];
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* ns per uncontended lock+unlock pair, measured on this thread's CPU
 * clock. */
static double uncontended(long iters, int direct)
{
    double t0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    if (direct) {
        for (long i = 0; i < iters; i++) {
            glibc_lock(&mu);
            glibc_unlock(&mu);
        }
    } else {
        for (long i = 0; i < iters; i++) {
            pthread_mutex_lock(&mu);
            pthread_mutex_unlock(&mu);
        }
    }
    return (now_s(CLOCK_THREAD_CPUTIME_ID) - t0) * 1e9 / (double)iters;
}

static void profiles(int block, int fraction)
{
    cpprof_set_block_profile_rate(block);
    cpprof_set_mutex_profile_fraction(fraction);
}

/*
 * glibc vs interposed with profiles off vs on, in ROUNDS rounds of
 * iters / ROUNDS pairs each (the order rotating from round to round);
 * prints each configuration's median and the median of the per-round
 * differences against glibc.  Differences taken within one round, a few
 * milliseconds apart, cancel the slow drifts of a shared VM's speed that
 * would swamp a 1-2 ns effect between separate runs.
 */
#define ROUNDS 101
static void uncontended_set(const char *title, long iters)
{
    static double t[3][ROUNDS], doff[ROUNDS], don[ROUNDS];
    long per = iters / ROUNDS + 1;
    uncontended(per, 1); /* warm up, resolve the functions */
    uncontended(per, 0);
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 3; k++) {
            int c = (r + k) % 3; /* 0 glibc, 1 off, 2 on */
            profiles(c == 2, c == 2);
            t[c][r] = uncontended(per, c == 0);
        }
        profiles(0, 0);
        doff[r] = t[1][r] - t[0][r];
        don[r] = t[2][r] - t[0][r];
    }
    printf("uncontended lock+unlock, %s (%d rounds x %ld pairs, thread CPU "
           "time; medians, differences paired per round):\n", title, ROUNDS,
           per);
    printf("  glibc direct                  %6.2f ns\n", median(t[0], ROUNDS));
    printf("  interposed, profiles off      %6.2f ns  (%+.2f ns)\n",
           median(t[1], ROUNDS), median(doff, ROUNDS));
    printf("  interposed, block 1 + mutex 1 %6.2f ns  (%+.2f ns)\n",
           median(t[2], ROUNDS), median(don, ROUNDS));
}

/* A thread that sleeps in read() until its pipe is closed: it keeps the
 * process multi-threaded for the second uncontended set. */
static void *idle_thread(void *arg)
{
    char c;
    while (read(*(int *)arg, &c, 1) > 0) {
    }
    return NULL;
}

/*
 * ns per lock+unlock pair at mutex fraction 1 with no waiter and with a
 * phantom waiter registered on the mutex (every unlock then takes the
 * release accounting and records a mutex event), ROUNDS paired rounds.
 */
static void release_cost(long iters)
{
    static double none[ROUNDS], one[ROUNDS], d[ROUNDS];
    long per = iters / ROUNDS + 1;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    profiles(0, 1);
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < 2; k++) {
            int with = (r + k) % 2;
            int slot = with ? cp_sync_wait_begin(&m, cp_sync_now()) : -1;
            if (with && slot < 0)
                return;
            double t0 = now_s(CLOCK_THREAD_CPUTIME_ID);
            for (long i = 0; i < per; i++) {
                pthread_mutex_lock(&m);
                pthread_mutex_unlock(&m);
            }
            double ns = (now_s(CLOCK_THREAD_CPUTIME_ID) - t0) * 1e9 / per;
            if (with) {
                cp_sync_wait_end(&m, slot, cp_sync_now());
                one[r] = ns;
            } else {
                none[r] = ns;
            }
        }
        d[r] = one[r] - none[r];
    }
    profiles(0, 0);
    printf("release accounting, mutex fraction 1 (%d rounds x %ld pairs, "
           "thread CPU time):\n", ROUNDS, per);
    printf("  no waiter                     %6.2f ns\n", median(none, ROUNDS));
    printf("  a waiter at every release     %6.2f ns  (%+.2f ns)\n",
           median(one, ROUNDS), median(d, ROUNDS));
}

static struct {
    _Atomic int stop;
    long counter;
    int inside;  /* loop iterations of work inside the critical section */
    int outside; /* loop iterations of work between critical sections */
} ct;

static void *contender(void *arg)
{
    long *mine = arg;
    while (!atomic_load_explicit(&ct.stop, memory_order_relaxed)) {
        pthread_mutex_lock(&mu);
        ct.counter++;
        for (volatile int k = 0; k < ct.inside; k++) {
        }
        pthread_mutex_unlock(&mu);
        for (volatile int k = 0; k < ct.outside; k++) {
        }
        (*mine)++;
    }
    return NULL;
}

/* Lock pairs per second of wall time over ms milliseconds. */
static double contended(int ms)
{
    pthread_t th[THREADS];
    long done[THREADS] = {0};
    atomic_store(&ct.stop, 0);
    double t0 = now_s(CLOCK_MONOTONIC);
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, contender, &done[i]);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store(&ct.stop, 1);
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += done[i];
    }
    return (double)total / (now_s(CLOCK_MONOTONIC) - t0);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000000L;
    int ms = argc > 2 ? atoi(argv[2]) : 500;
    int only = argc > 3 ? atoi(argv[3]) : -1; /* one contended workload */
    double c_off[REPS], c_mutex[REPS], c_both[REPS];

    glibc_lock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT,
                                                   "pthread_mutex_lock");
    glibc_unlock = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT,
                                                     "pthread_mutex_unlock");
    if (glibc_lock == NULL || glibc_unlock == NULL)
        return 1;
    if (iters > 0) {
        uncontended_set("one thread", iters);
        int pfd[2];
        pthread_t idle;
        if (pipe(pfd) != 0 ||
            pthread_create(&idle, NULL, idle_thread, &pfd[0]) != 0)
            return 1;
        uncontended_set("two threads (one idle)", iters);
        release_cost(iters / 10);
        close(pfd[1]);
        pthread_join(idle, NULL);
        close(pfd[0]);
    }

    static const struct {
        const char *name;
        int inside, outside;
    } loads[] = {
        {"tight (50-iteration critical section, nothing outside)", 50, 0},
        {"moderate (same, 2000 iterations of work outside)", 50, 2000},
        {"realistic (~1 us critical section, ~8 us of work outside)", 500,
         4000},
    };
    for (int l = 0; l < 3; l++) {
        if (only >= 0 && l != only)
            continue;
        ct.inside = loads[l].inside;
        ct.outside = loads[l].outside;
        for (int r = 0; r < REPS; r++) {
            profiles(0, 0);
            c_off[r] = contended(ms);
            profiles(0, 1);
            c_mutex[r] = contended(ms);
            profiles(1, 1);
            c_both[r] = contended(ms);
            profiles(0, 0);
        }
        double co = median(c_off, REPS), cm = median(c_mutex, REPS),
               cb = median(c_both, REPS);
        printf("contended, %s: %d threads, one mutex (median of %d x %d ms):\n",
               loads[l].name, THREADS, REPS, ms);
        printf("  profiles off                  %10.0f pairs/s\n", co);
        printf("  mutex fraction 1              %10.0f pairs/s  (%+.1f%%)\n",
               cm, (cm - co) / co * 100);
        printf("  mutex 1 + block rate 1        %10.0f pairs/s  (%+.1f%%)\n",
               cb, (cb - co) / co * 100);
    }
    return 0;
}
