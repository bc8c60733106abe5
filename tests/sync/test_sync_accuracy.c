/*
 * tests/sync/test_sync_accuracy.c - the acceptance test of the block and
 * mutex profiles (issue 5): a holder keeps a mutex HOLD ms while 4
 * threads wait for it, round after round.  The mutex profile must charge
 * the holder's unlocking function with the waiting it caused and the
 * block profile the waiters' locking function with their waits, checked
 * against ground truth the test measures itself (each waiter's start and
 * the holder's unlock time), at fraction 1 (+-20%) and 10 (+-30%).
 * Profiles are read back with our decoder and with `go tool pprof`.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "sync_test_util.h"

#define WAITERS 4

typedef void (*site_fn)(pthread_mutex_t *);

static struct {
    pthread_mutex_t mu;
    pthread_barrier_t start, done;
    int rounds, hold_ms;
    site_fn wait_site, unlock_site;
    _Atomic int ready;
    _Atomic uint64_t unlock_ns;  /* this round's unlock time */
    _Atomic uint64_t caused_ns;  /* truth: waiting the holder caused */
    _Atomic uint64_t waited_ns;  /* truth: waiters' total time in lock */
} ac = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Distinct sites per phase so that the cumulative profiles keep the
 * fraction-1 and fraction-10 phases apart. */
NOINLINE void waiter_lock_f1(pthread_mutex_t *m) { pthread_mutex_lock(m); NO_TAIL(); }
NOINLINE void waiter_lock_f10(pthread_mutex_t *m) { pthread_mutex_lock(m); NO_TAIL(); }
NOINLINE void holder_unlock_f1(pthread_mutex_t *m) { pthread_mutex_unlock(m); NO_TAIL(); }
NOINLINE void holder_unlock_f10(pthread_mutex_t *m) { pthread_mutex_unlock(m); NO_TAIL(); }

static void *waiter(void *arg)
{
    (void)arg;
    for (int r = 0; r < ac.rounds; r++) {
        pthread_barrier_wait(&ac.start);
        uint64_t t0 = st_now_ns();
        atomic_fetch_add(&ac.ready, 1);
        ac.wait_site(&ac.mu);
        uint64_t t1 = st_now_ns();
        uint64_t u = atomic_load(&ac.unlock_ns);
        if (u > t0)
            atomic_fetch_add(&ac.caused_ns, u - t0);
        atomic_fetch_add(&ac.waited_ns, t1 - t0);
        pthread_mutex_unlock(&ac.mu);
        pthread_barrier_wait(&ac.done);
    }
    return NULL;
}

/* Runs the scenario; returns after every waiter finished. */
static void run_rounds(int rounds, int hold_ms, site_fn wait_site,
                       site_fn unlock_site)
{
    ac.rounds = rounds;
    ac.hold_ms = hold_ms;
    ac.wait_site = wait_site;
    ac.unlock_site = unlock_site;
    atomic_store(&ac.caused_ns, 0);
    atomic_store(&ac.waited_ns, 0);
    pthread_barrier_init(&ac.start, NULL, WAITERS + 1);
    pthread_barrier_init(&ac.done, NULL, WAITERS + 1);
    pthread_t th[WAITERS];
    for (int i = 0; i < WAITERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, waiter, NULL), 0);
    for (int r = 0; r < rounds; r++) {
        pthread_mutex_lock(&ac.mu);
        atomic_store(&ac.ready, 0);
        atomic_store(&ac.unlock_ns, 0);
        pthread_barrier_wait(&ac.start);
        while (atomic_load(&ac.ready) < WAITERS)
            sched_yield();
        st_sleep_ms(hold_ms);
        atomic_store(&ac.unlock_ns, st_now_ns());
        unlock_site(&ac.mu);
        pthread_barrier_wait(&ac.done);
    }
    for (int i = 0; i < WAITERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&ac.start);
    pthread_barrier_destroy(&ac.done);
}

static void assert_within(const char *what, double got, double want,
                          double tol)
{
    double err = (got - want) / want;
    printf("  %-34s %10.1f ms, truth %10.1f ms (%+.1f%%, limit %.0f%%)\n",
           what, got / 1e6, want / 1e6, err * 100, tol * 100);
    if (err > tol || err < -tol)
        fail_msg("%s: %.1f ms is %+.1f%% off %.1f ms", what, got / 1e6,
                 err * 100, want / 1e6);
}

static void test_fraction_1(void **state)
{
    (void)state;
    cpt_require_go();
    assert_int_equal(cpprof_set_mutex_profile_fraction(1), 0);
    assert_int_equal(cpprof_set_block_profile_rate(1), 0);
    run_rounds(50, 20, waiter_lock_f1, holder_unlock_f1);
    double caused = (double)atomic_load(&ac.caused_ns);
    double waited = (double)atomic_load(&ac.waited_ns);
    printf("  nominal 4 x 20 ms x 50 = 4000 ms; measured caused %.1f ms\n",
           caused / 1e6);

    char *dir = cpt_tmpdir();
    char *mpath = st_write_profile(dir, "mutex", "mutex.pb.gz");
    char *bpath = st_write_profile(dir, "block", "block.pb.gz");
    cp_decoded *m = st_decode(mpath), *b = st_decode(bpath);

    assert_int_equal(m->ntypes, 2);
    assert_string_equal(m->sample_types[0].type, "contentions");
    assert_string_equal(m->sample_types[0].unit, "count");
    assert_string_equal(m->sample_types[1].type, "delay");
    assert_string_equal(m->sample_types[1].unit, "nanoseconds");
    assert_string_equal(m->period_type.type, "contentions");
    assert_string_equal(m->period_type.unit, "count");
    assert_int_equal(m->period, 1);

    /* Mutex: the holder's unlock, led by pthread_mutex_unlock as in Go. */
    double held = (double)st_sum(m, "delay", "holder_unlock_f1");
    assert_within("mutex delay at holder_unlock_f1", held, caused, 0.20);
    /* The nominal figure is a floor, not the truth: a loaded machine
     * oversleeps the 20 ms holds (28 ms each seen under TSan beside
     * other tests), and the check above already holds the profile to
     * the waiting really caused. */
    if (caused <= 4.0 * 20e6 * 50 * 1.2)
        assert_within("... against nominal 4x20msx50", held,
                      4.0 * 20e6 * 50, 0.20);
    else
        assert_true(held >= 4.0 * 20e6 * 50 * 0.8);
    assert_int_equal(st_sum(m, "contentions", "holder_unlock_f1"),
                     50 * WAITERS);
    assert_string_equal(st_leaf_of(m, "holder_unlock_f1"),
                        "pthread_mutex_unlock");
    assert_int_equal(st_sum(m, "delay", "waiter_lock_f1"), 0);

    /* Block: the waiters' lock calls, with all their waiting. */
    double blocked = (double)st_sum(b, "delay", "waiter_lock_f1");
    assert_within("block delay at waiter_lock_f1", blocked, waited, 0.20);
    assert_true(blocked > held * 0.8 && blocked < held * 2.0);
    assert_string_equal(st_leaf_of(b, "waiter_lock_f1"),
                        "pthread_mutex_lock");
    assert_int_equal(st_sum(b, "contentions", "waiter_lock_f1"),
                     50 * WAITERS);

    /* The reference client reads both, with our function names. */
    char *out = cpt_pprof("-top -sample_index=delay", mpath);
    assert_non_null(strstr(out, "holder_unlock_f1"));
    assert_non_null(strstr(out, "pthread_mutex_unlock"));
    free(out);
    out = cpt_pprof("-top -sample_index=delay", bpath);
    assert_non_null(strstr(out, "waiter_lock_f1"));
    assert_non_null(strstr(out, "pthread_mutex_lock"));
    free(out);
    out = cpt_pprof("-traces", mpath);
    assert_non_null(strstr(out, "holder_unlock_f1"));
    free(out);

    /* Legacy text form. */
    char *txt = st_profile_text("mutex");
    assert_true(strncmp(txt, "--- mutex:\ncycles/second=1000000000\n"
                             "sampling period=1\n", 52) == 0);
    assert_non_null(strstr(txt, "holder_unlock_f1"));
    assert_non_null(strstr(txt, " @ 0x"));
    free(txt);
    txt = st_profile_text("block");
    assert_true(strncmp(txt, "--- contention:\ncycles/second=1000000000\n",
                        41) == 0);
    assert_null(strstr(txt, "sampling period"));
    assert_non_null(strstr(txt, "waiter_lock_f1"));
    free(txt);

    cp_decoded_free(m);
    cp_decoded_free(b);
    free(mpath);
    free(bpath);
    cpt_tmpdir_remove(dir);
    free(dir);
}

static void test_fraction_10(void **state)
{
    (void)state;
    /* Go: setting returns the previous fraction; negative only reads. */
    assert_int_equal(cpprof_set_mutex_profile_fraction(10), 1);
    assert_int_equal(cpprof_set_mutex_profile_fraction(-1), 10);
    assert_int_equal(cpprof_mutex_profile_fraction(), 10);
    /* 100 rounds x 4 waiters = 400 events, ~40 sampled: the +-30% limit
     * is > 3 standard deviations of the sampler. */
    run_rounds(100, 10, waiter_lock_f10, holder_unlock_f10);
    double caused = (double)atomic_load(&ac.caused_ns);

    char *dir = cpt_tmpdir();
    char *mpath = st_write_profile(dir, "mutex", "mutex10.pb.gz");
    cp_decoded *m = st_decode(mpath);
    double held = (double)st_sum(m, "delay", "holder_unlock_f10");
    assert_within("fraction 10: delay at holder_unlock", held, caused, 0.30);
    double n = (double)st_sum(m, "contentions", "holder_unlock_f10");
    assert_within("fraction 10: contentions (x1e6)", n * 1e6, 400e6, 0.30);
    assert_int_equal((int64_t)n % 10, 0); /* whole samples, scaled by 10 */
    char *out = cpt_pprof("-top -sample_index=delay", mpath);
    assert_non_null(strstr(out, "holder_unlock_f10"));
    free(out);
    char *txt = st_profile_text("mutex");
    assert_non_null(strstr(txt, "sampling period=10\n"));
    free(txt);

    cp_decoded_free(m);
    free(mpath);
    cpt_tmpdir_remove(dir);
    free(dir);
    cpprof_set_mutex_profile_fraction(0);
    cpprof_set_block_profile_rate(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fraction_1),
        cmocka_unit_test(test_fraction_10),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
