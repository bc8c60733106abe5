/*
 * tests/sync/test_sync_handoff.c - the mutex profile along a chain of
 * holders.  A thread that waited for a mutex keeps its wait open until it
 * releases the mutex (so its critical section pays nothing for the
 * bookkeeping); these tests pin what that must still give:
 *   - handoff: the first holder is charged both waiters' wait, a waiter
 *     that became the holder only the wait of the one still waiting,
 *     never its own, with exact contention counts;
 *   - toggle: a wait left open across turning the mutex profile off and
 *     on again neither charges nor cancels anyone's later waiting;
 *   - own: waits and releases inside the profiler's own sections are
 *     left out of both profiles.
 * Ground truth is measured by the test itself; profiles are read back
 * with our decoder and with `go tool pprof`.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "capture/own_section.h"
#include "capture/sync_events.h"
#include "sync_test_util.h"

#define ROUNDS 10
#define HOLD_MS 15

static struct {
    pthread_mutex_t mu;
    pthread_barrier_t start, done;
    _Atomic int ready;      /* waiters about to lock, this round */
    _Atomic int acquired;   /* waiters that got the lock, this round */
    _Atomic uint64_t first_unlock_ns; /* the main holder's release */
    _Atomic uint64_t truth_main, truth_waiter;
} ho = {.mu = PTHREAD_MUTEX_INITIALIZER};

NOINLINE void handoff_main_unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); NO_TAIL(); }
NOINLINE void handoff_waiter_lock(pthread_mutex_t *m) { pthread_mutex_lock(m); NO_TAIL(); }
NOINLINE void handoff_waiter_unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); NO_TAIL(); }

/* Waits until the other threads have blocked in the lock: their `ready`
 * is set just before the call, so a few ms more is plenty. */
static void let_them_block(_Atomic int *ready, int n)
{
    while (atomic_load(ready) < n)
        sched_yield();
    st_sleep_ms(3);
}

static void *handoff_waiter(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&ho.start);
        uint64_t t0 = st_now_ns();
        atomic_fetch_add(&ho.ready, 1);
        handoff_waiter_lock(&ho.mu);
        uint64_t u0 = atomic_load(&ho.first_unlock_ns);
        atomic_fetch_add(&ho.truth_main, u0 - t0);
        if (atomic_fetch_add(&ho.acquired, 1) == 0) {
            /* First after the main holder: the other waiter waits from
             * the main holder's release (its clock restarts there) to
             * this one's, hand-over included. */
            st_sleep_ms(HOLD_MS);
            atomic_fetch_add(&ho.truth_waiter, st_now_ns() - u0);
        } else {
            st_sleep_ms(HOLD_MS); /* nobody waits for this one */
        }
        handoff_waiter_unlock(&ho.mu);
        pthread_barrier_wait(&ho.done);
    }
    return NULL;
}

static void test_handoff_chain(void **state)
{
    (void)state;
    cpt_require_go();
    assert_int_equal(cpprof_set_mutex_profile_fraction(1), 0);
    pthread_barrier_init(&ho.start, NULL, 3);
    pthread_barrier_init(&ho.done, NULL, 3);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, handoff_waiter, NULL),
                         0);
    for (int r = 0; r < ROUNDS; r++) {
        pthread_mutex_lock(&ho.mu);
        atomic_store(&ho.ready, 0);
        atomic_store(&ho.acquired, 0);
        pthread_barrier_wait(&ho.start);
        let_them_block(&ho.ready, 2);
        st_sleep_ms(HOLD_MS);
        atomic_store(&ho.first_unlock_ns, st_now_ns());
        handoff_main_unlock(&ho.mu);
        pthread_barrier_wait(&ho.done);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&ho.start);
    pthread_barrier_destroy(&ho.done);
    /* Every wait is over: the unlock fast path's hint must say so. */
    assert_false(cp_sync_maybe_waited(&ho.mu));
    cpprof_set_mutex_profile_fraction(0);

    char *dir = cpt_tmpdir();
    char *path = st_write_profile(dir, "mutex", "handoff.pb.gz");
    cp_decoded *d = st_decode(path);
    double main_got = (double)st_sum(d, "delay", "handoff_main_unlock");
    double waiter_got = (double)st_sum(d, "delay", "handoff_waiter_unlock");
    double main_truth = (double)atomic_load(&ho.truth_main);
    double waiter_truth = (double)atomic_load(&ho.truth_waiter);
    printf("  main holder  %8.1f ms, truth %8.1f ms\n", main_got / 1e6,
           main_truth / 1e6);
    printf("  waiter holds %8.1f ms, truth %8.1f ms\n", waiter_got / 1e6,
           waiter_truth / 1e6);
    /* A waiter charged for its own wait would show ~3x its truth. */
    assert_true(main_got > main_truth * 0.8 && main_got < main_truth * 1.2);
    assert_true(waiter_got > waiter_truth * 0.8 &&
                waiter_got < waiter_truth * 1.2);
    assert_int_equal(st_sum(d, "contentions", "handoff_main_unlock"),
                     2 * ROUNDS);
    assert_int_equal(st_sum(d, "contentions", "handoff_waiter_unlock"),
                     ROUNDS);
    assert_int_equal(st_sum(d, "delay", "handoff_waiter_lock"), 0);
    st_pprof_names(path, "handoff_main_unlock");
    st_pprof_names(path, "handoff_waiter_unlock");
    st_done(d, path, dir);
}

/* ------------------------------------------------------------- toggle */

static struct {
    pthread_mutex_t mu;
    _Atomic int stage;     /* 1 holder got the lock, 2 toggled, 3 go */
    _Atomic int ready;
    _Atomic uint64_t late_t0, release_ns;
} tg = {.mu = PTHREAD_MUTEX_INITIALIZER};

NOINLINE void toggle_holder_unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); NO_TAIL(); }

/* Waits for the lock (so its wait stays open), then holds it while the
 * profile is toggled and a second thread starts waiting. */
static void *toggle_holder(void *arg)
{
    (void)arg;
    atomic_fetch_add(&tg.ready, 1);
    pthread_mutex_lock(&tg.mu);
    atomic_store(&tg.stage, 1);
    while (atomic_load(&tg.stage) < 3)
        sched_yield();
    st_sleep_ms(HOLD_MS);
    atomic_store(&tg.release_ns, st_now_ns());
    toggle_holder_unlock(&tg.mu);
    return NULL;
}

static void *toggle_late_waiter(void *arg)
{
    (void)arg;
    atomic_store(&tg.late_t0, st_now_ns());
    atomic_fetch_add(&tg.ready, 1);
    pthread_mutex_lock(&tg.mu);
    pthread_mutex_unlock(&tg.mu);
    return NULL;
}

static void test_toggle_with_open_wait(void **state)
{
    (void)state;
    assert_int_equal(cpprof_set_mutex_profile_fraction(1), 0);
    pthread_t a, b;
    pthread_mutex_lock(&tg.mu);
    assert_int_equal(pthread_create(&a, NULL, toggle_holder, NULL), 0);
    let_them_block(&tg.ready, 1);
    pthread_mutex_unlock(&tg.mu); /* a gets it; its wait stays open */
    while (atomic_load(&tg.stage) < 1)
        sched_yield();
    assert_int_equal(cpprof_set_mutex_profile_fraction(0), 1);
    assert_int_equal(cpprof_set_mutex_profile_fraction(1), 0);
    atomic_store(&tg.stage, 2);
    assert_int_equal(pthread_create(&b, NULL, toggle_late_waiter, NULL), 0);
    let_them_block(&tg.ready, 2);
    atomic_store(&tg.stage, 3);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    cpprof_set_mutex_profile_fraction(0);

    char *dir = cpt_tmpdir();
    char *path = st_write_profile(dir, "mutex", "toggle.pb.gz");
    cp_decoded *d = st_decode(path);
    double got = (double)st_sum(d, "delay", "toggle_holder_unlock");
    /* b waited from its arrival to a's release. */
    double truth =
        (double)(atomic_load(&tg.release_ns) - atomic_load(&tg.late_t0));
    printf("  toggled holder %8.1f ms, truth %8.1f ms\n", got / 1e6,
           truth / 1e6);
    /* The stale open wait must neither cancel b's nor add its own. */
    assert_int_equal(st_sum(d, "contentions", "toggle_holder_unlock"), 1);
    assert_true(got > truth * 0.8 && got < truth * 1.2);
    st_pprof_names(path, "toggle_holder_unlock");
    st_done(d, path, dir);
}

/* ------------------------------------------------ the profiler's own */

#define OWN_ROUNDS 5

static pthread_mutex_t own_mu = PTHREAD_MUTEX_INITIALIZER;

NOINLINE void own_lock(pthread_mutex_t *m) { pthread_mutex_lock(m); NO_TAIL(); }
NOINLINE void own_unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); NO_TAIL(); }
NOINLINE void program_lock(pthread_mutex_t *m) { pthread_mutex_lock(m); NO_TAIL(); }
NOINLINE void program_unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); NO_TAIL(); }

/* Takes own_mu OWN_ROUNDS times, holding it 2 ms, inside an own section
 * (as the profiler's HTTP, service and drain threads run) when arg is
 * not NULL. */
static void *own_contender(void *arg)
{
    bool was = arg ? cp_own_begin() : false;
    for (int r = 0; r < OWN_ROUNDS; r++) {
        if (arg)
            own_lock(&own_mu);
        else
            program_lock(&own_mu);
        st_sleep_ms(2);
        if (arg)
            own_unlock(&own_mu);
        else
            program_unlock(&own_mu);
    }
    if (arg)
        cp_own_end(was);
    return NULL;
}

/*
 * What the profiler's own threads and calls wait for, and the waits
 * their lock releases end, are not the program's: four threads contend
 * for one mutex, two of them inside own sections; the mutex and block
 * profiles show the other two only.
 */
static void test_profiler_own_waits_not_recorded(void **state)
{
    (void)state;
    assert_int_equal(cpprof_set_mutex_profile_fraction(1), 0);
    cpprof_set_block_profile_rate(1);
    static int own_flag;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, own_contender,
                                        i % 2 ? &own_flag : NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cpprof_set_mutex_profile_fraction(0);
    cpprof_set_block_profile_rate(0);

    char *dir = cpt_tmpdir();
    char *mpath = st_write_profile(dir, "mutex", "own_mutex.pb.gz");
    char *bpath = st_write_profile(dir, "block", "own_block.pb.gz");
    cp_decoded *m = st_decode(mpath), *b = st_decode(bpath);
    printf("  mutex: program %lld, own %lld contentions; block: program "
           "%lld, own %lld\n",
           (long long)st_sum(m, "contentions", "program_unlock"),
           (long long)st_sum(m, "contentions", "own_unlock"),
           (long long)st_sum(b, "contentions", "program_lock"),
           (long long)st_sum(b, "contentions", "own_lock"));
    /* Two threads, 5 rounds, 2 ms holds: the program's side waits. */
    assert_true(st_sum(m, "contentions", "program_unlock") > 0);
    assert_true(st_sum(b, "contentions", "program_lock") > 0);
    assert_int_equal(st_sum(m, "contentions", "own_unlock"), 0);
    assert_int_equal(st_sum(b, "contentions", "own_lock"), 0);
    st_pprof_names(mpath, "program_unlock");
    st_pprof_names(bpath, "program_lock");
    cp_decoded_free(b);
    remove(bpath);
    free(bpath);
    st_done(m, mpath, dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handoff_chain),
        cmocka_unit_test(test_toggle_with_open_wait),
        cmocka_unit_test(test_profiler_own_waits_not_recorded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
