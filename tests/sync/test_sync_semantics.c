/*
 * tests/sync/test_sync_semantics.c - the interposed calls keep the real
 * calls' semantics while the block and mutex profiles are on: error
 * returns and errno (EDEADLK, EPERM, EBUSY, ETIMEDOUT, EOWNERDEAD, EINTR,
 * EINVAL), robust, error-checking, recursive and process-shared mutexes,
 * no lost condition-variable wake-ups, and a timed-out
 * pthread_cond_timedwait charged exactly once.  Each semantic scenario
 * runs with profiling off and on and must give identical results.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sync_test_util.h"

#define MAXR 64

/* Results of one scenario run: return codes and errno values in order. */
typedef struct results {
    int v[MAXR];
    int n;
} results;

static void put(results *r, int v)
{
    assert_true(r->n < MAXR);
    r->v[r->n++] = v;
}

static void profiling(bool on)
{
    cpprof_set_block_profile_rate(on ? 1 : 0);
    cpprof_set_mutex_profile_fraction(on ? 1 : 0);
}

/* Runs scenario with profiling off, then on; results must match. */
static void same_off_and_on(void (*scenario)(results *))
{
    results off = {0}, on = {0};
    profiling(false);
    scenario(&off);
    profiling(true);
    scenario(&on);
    profiling(false);
    assert_int_equal(off.n, on.n);
    for (int i = 0; i < off.n; i++) {
        if (off.v[i] != on.v[i])
            fail_msg("result %d: %d with profiling off, %d on", i, off.v[i],
                     on.v[i]);
    }
}

static struct timespec deadline_in_ms(clockid_t clk, int ms)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    return ts;
}

/* A thread that holds a lock for a while (to make others contend). */
typedef struct holder {
    pthread_mutex_t *m;
    pthread_rwlock_t *rw;
    int ms;
    sem_t locked;
} holder;

static void *hold_mutex(void *arg)
{
    holder *h = arg;
    pthread_mutex_lock(h->m);
    sem_post(&h->locked);
    st_sleep_ms(h->ms);
    pthread_mutex_unlock(h->m);
    return NULL;
}

static void *hold_wrlock(void *arg)
{
    holder *h = arg;
    pthread_rwlock_wrlock(h->rw);
    sem_post(&h->locked);
    st_sleep_ms(h->ms);
    pthread_rwlock_unlock(h->rw);
    return NULL;
}

/* Starts a holder of m (or rw) for ms and waits until it holds it. */
static pthread_t start_holder(holder *h, pthread_mutex_t *m,
                              pthread_rwlock_t *rw, int ms)
{
    h->m = m;
    h->rw = rw;
    h->ms = ms;
    sem_init(&h->locked, 0, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, m ? hold_mutex : hold_wrlock, h),
                     0);
    while (sem_wait(&h->locked) != 0) {
    }
    sem_destroy(&h->locked);
    return t;
}

/* ------------------------------------------------------------ scenarios */

static void sc_errorcheck(results *r)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_t m;
    pthread_mutex_init(&m, &a);
    put(r, pthread_mutex_unlock(&m)); /* EPERM: not locked */
    put(r, pthread_mutex_lock(&m));
    put(r, pthread_mutex_lock(&m)); /* EDEADLK */
    struct timespec ts = deadline_in_ms(CLOCK_REALTIME, 10);
    put(r, pthread_mutex_timedlock(&m, &ts)); /* EDEADLK */
    put(r, pthread_mutex_trylock(&m));        /* EBUSY */
    put(r, pthread_mutex_unlock(&m));
    put(r, pthread_mutex_unlock(&m)); /* EPERM */
    pthread_mutex_destroy(&m);
    pthread_mutexattr_destroy(&a);
}

static void sc_recursive(results *r)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_t m;
    pthread_mutex_init(&m, &a);
    for (int i = 0; i < 3; i++)
        put(r, pthread_mutex_lock(&m));
    /* Another thread contends while we still hold it twice over. */
    holder h;
    put(r, pthread_mutex_unlock(&m));
    put(r, pthread_mutex_unlock(&m));
    put(r, pthread_mutex_unlock(&m));
    put(r, pthread_mutex_unlock(&m)); /* EPERM: count exhausted */
    pthread_t t = start_holder(&h, &m, NULL, 20);
    put(r, pthread_mutex_lock(&m)); /* waits for the holder */
    put(r, pthread_mutex_lock(&m)); /* recursive while contended before */
    put(r, pthread_mutex_unlock(&m));
    put(r, pthread_mutex_unlock(&m));
    pthread_join(t, NULL);
    pthread_mutex_destroy(&m);
    pthread_mutexattr_destroy(&a);
}

static void *lock_and_die(void *arg)
{
    pthread_mutex_lock(arg);
    return NULL; /* exits holding the robust mutex */
}

static void *lock_and_die_later(void *arg)
{
    pthread_mutex_lock(arg);
    st_sleep_ms(20);
    return NULL;
}

static void sc_robust(results *r)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_t m;
    pthread_mutex_init(&m, &a);
    pthread_t t;
    /* Owner already dead: the uncontended path reports EOWNERDEAD. */
    pthread_create(&t, NULL, lock_and_die, &m);
    pthread_join(t, NULL);
    put(r, pthread_mutex_lock(&m)); /* EOWNERDEAD */
    put(r, pthread_mutex_consistent(&m));
    put(r, pthread_mutex_unlock(&m));
    /* Owner dies while we wait: the contended path reports it too. */
    pthread_create(&t, NULL, lock_and_die_later, &m);
    st_sleep_ms(5);
    put(r, pthread_mutex_lock(&m)); /* EOWNERDEAD after waiting */
    pthread_join(t, NULL);
    /* Not made consistent: unlocking makes it unrecoverable. */
    put(r, pthread_mutex_unlock(&m));
    put(r, pthread_mutex_lock(&m)); /* ENOTRECOVERABLE */
    pthread_mutex_destroy(&m);
    pthread_mutexattr_destroy(&a);
}

static void sc_timed(results *r)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    holder h;
    pthread_t t = start_holder(&h, &m, NULL, 60);
    struct timespec ts = deadline_in_ms(CLOCK_REALTIME, 10);
    put(r, pthread_mutex_timedlock(&m, &ts)); /* ETIMEDOUT */
    ts = deadline_in_ms(CLOCK_MONOTONIC, 10);
    put(r, pthread_mutex_clocklock(&m, CLOCK_MONOTONIC, &ts)); /* ETIMEDOUT */
    ts.tv_nsec = 1000000000L;
    put(r, pthread_mutex_timedlock(&m, &ts)); /* EINVAL: contended */
    put(r, pthread_mutex_clocklock(&m, CLOCK_PROCESS_CPUTIME_ID, &ts));
    put(r, pthread_mutex_trylock(&m)); /* EBUSY */
    pthread_join(t, NULL);
    ts = deadline_in_ms(CLOCK_REALTIME, 10);
    put(r, pthread_mutex_timedlock(&m, &ts)); /* free: 0 */
    put(r, pthread_mutex_unlock(&m));

    pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
    t = start_holder(&h, NULL, &rw, 60);
    ts = deadline_in_ms(CLOCK_REALTIME, 10);
    put(r, pthread_rwlock_timedrdlock(&rw, &ts)); /* ETIMEDOUT */
    ts = deadline_in_ms(CLOCK_MONOTONIC, 10);
    put(r, pthread_rwlock_clockwrlock(&rw, CLOCK_MONOTONIC, &ts));
    ts.tv_nsec = -1;
    put(r, pthread_rwlock_timedwrlock(&rw, &ts)); /* EINVAL */
    pthread_join(t, NULL);
    ts.tv_nsec = -1;
    put(r, pthread_rwlock_timedrdlock(&rw, &ts)); /* EINVAL even if free */
    put(r, pthread_rwlock_wrlock(&rw));
    put(r, pthread_rwlock_rdlock(&rw));   /* EDEADLK */
    put(r, pthread_rwlock_wrlock(&rw));   /* EDEADLK */
    put(r, pthread_rwlock_unlock(&rw));
    put(r, pthread_rwlock_rdlock(&rw));
    put(r, pthread_rwlock_rdlock(&rw));
    put(r, pthread_rwlock_trywrlock(&rw)); /* EBUSY */
    put(r, pthread_rwlock_unlock(&rw));
    put(r, pthread_rwlock_unlock(&rw));
}

static void sc_sem(results *r)
{
    sem_t s;
    sem_init(&s, 0, 1);
    struct timespec bad = {0, 1000000000L};
    errno = 0;
    put(r, sem_timedwait(&s, &bad)); /* glibc checks the deadline first */
    put(r, errno);
    errno = 0;
    put(r, sem_clockwait(&s, CLOCK_PROCESS_CPUTIME_ID, &bad));
    put(r, errno);
    errno = 12345; /* success leaves errno alone */
    put(r, sem_wait(&s));
    put(r, errno);
    struct timespec ts = deadline_in_ms(CLOCK_REALTIME, 10);
    errno = 0;
    put(r, sem_timedwait(&s, &ts)); /* ETIMEDOUT */
    put(r, errno);
    ts = deadline_in_ms(CLOCK_MONOTONIC, 10);
    errno = 0;
    put(r, sem_clockwait(&s, CLOCK_MONOTONIC, &ts));
    put(r, errno);
    errno = 0;
    put(r, sem_trywait(&s));
    put(r, errno);
    sem_destroy(&s);
}

static sem_t intr_sem;
static void on_usr1(int sig) { (void)sig; }

static void *sem_waiter(void *arg)
{
    results *r = arg;
    errno = 0;
    put(r, sem_wait(&intr_sem));
    put(r, errno); /* EINTR: a handler ran */
    return NULL;
}

static void sc_sem_eintr(results *r)
{
    struct sigaction sa = {.sa_handler = on_usr1}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, &old);
    sem_init(&intr_sem, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, sem_waiter, r);
    st_sleep_ms(30);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    sem_destroy(&intr_sem);
    sigaction(SIGUSR1, &old, NULL);
}

static void *ret_42(void *arg)
{
    st_sleep_ms(*(int *)arg);
    return (void *)42;
}

static void sc_join_barrier_spin(results *r)
{
    int ms = 0, ms20 = 20;
    pthread_t t;
    void *ret = NULL;
    pthread_create(&t, NULL, ret_42, &ms);
    st_sleep_ms(10);
    put(r, pthread_join(t, &ret)); /* already finished */
    put(r, (int)(intptr_t)ret);
    pthread_create(&t, NULL, ret_42, &ms20);
    ret = NULL;
    put(r, pthread_join(t, &ret)); /* blocks */
    put(r, (int)(intptr_t)ret);
    put(r, pthread_join(pthread_self(), NULL)); /* EDEADLK */

    pthread_spinlock_t sl;
    pthread_spin_init(&sl, PTHREAD_PROCESS_PRIVATE);
    put(r, pthread_spin_lock(&sl));
    put(r, pthread_spin_trylock(&sl)); /* EBUSY */
    put(r, pthread_spin_unlock(&sl));
    pthread_spin_destroy(&sl);

    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 1);
    put(r, pthread_barrier_wait(&b)); /* the serial thread */
    pthread_barrier_destroy(&b);
}

static void test_errorcheck(void **s) { (void)s; same_off_and_on(sc_errorcheck); }
static void test_recursive(void **s) { (void)s; same_off_and_on(sc_recursive); }
static void test_robust(void **s) { (void)s; same_off_and_on(sc_robust); }
static void test_timed_and_rwlock(void **s) { (void)s; same_off_and_on(sc_timed); }
static void test_sem_errno(void **s) { (void)s; same_off_and_on(sc_sem); }
static void test_sem_eintr(void **s) { (void)s; same_off_and_on(sc_sem_eintr); }
static void test_join_barrier_spin(void **s) { (void)s; same_off_and_on(sc_join_barrier_spin); }

/* The expected values of a few scenarios, so "identical" is not merely
 * "identically wrong". */
static void test_expected_codes(void **state)
{
    (void)state;
    profiling(true);
    results r = {0};
    sc_errorcheck(&r);
    int want_ec[] = {EPERM, 0, EDEADLK, EDEADLK, EBUSY, 0, EPERM};
    assert_int_equal(r.n, 7);
    assert_memory_equal(r.v, want_ec, sizeof want_ec);
    r.n = 0;
    sc_robust(&r);
    int want_rb[] = {EOWNERDEAD, 0, 0, EOWNERDEAD, 0, ENOTRECOVERABLE};
    assert_int_equal(r.n, 6);
    assert_memory_equal(r.v, want_rb, sizeof want_rb);
    r.n = 0;
    sc_sem_eintr(&r);
    assert_int_equal(r.v[0], -1);
    assert_int_equal(r.v[1], EINTR);
    profiling(false);
}

/* ----------------------------------------------- process-shared mutex */

NOINLINE static int pshared_lock_site(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    NO_TAIL();
    return rc;
}

static void test_pshared_robust_across_fork(void **state)
{
    (void)state;
    cpt_require_go();
    profiling(true);
    pthread_mutex_t *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);

    /* Child 1 holds the lock 50 ms: the parent blocks, then gets it. */
    pid_t pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(m);
        (void)!write(pfd[1], "x", 1);
        st_sleep_ms(50);
        pthread_mutex_unlock(m);
        _exit(0);
    }
    char c;
    assert_int_equal(read(pfd[0], &c, 1), 1);
    uint64_t t0 = st_now_ns();
    assert_int_equal(pshared_lock_site(m), 0);
    uint64_t waited = st_now_ns() - t0;
    assert_int_equal(pthread_mutex_unlock(m), 0);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    /* Child 2 dies holding it: the waiting parent gets EOWNERDEAD. */
    pid = fork();
    if (pid == 0) {
        pthread_mutex_lock(m);
        (void)!write(pfd[1], "x", 1);
        st_sleep_ms(20);
        _exit(0);
    }
    assert_int_equal(read(pfd[0], &c, 1), 1);
    assert_int_equal(pshared_lock_site(m), EOWNERDEAD);
    assert_int_equal(pthread_mutex_consistent(m), 0);
    assert_int_equal(pthread_mutex_unlock(m), 0);
    waitpid(pid, &status, 0);

    char *dir = cpt_tmpdir();
    char *path = st_write_profile(dir, "block", "block.pb.gz");
    cp_decoded *d = st_decode(path);
    assert_int_equal(st_sum(d, "contentions", "pshared_lock_site"), 2);
    int64_t delay = st_sum(d, "delay", "pshared_lock_site");
    assert_true(delay >= (int64_t)(waited * 9 / 10));
    char *out = cpt_pprof("-top", path);
    assert_non_null(strstr(out, "pshared_lock_site"));
    free(out);
    cp_decoded_free(d);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
    close(pfd[0]);
    close(pfd[1]);
    munmap(m, sizeof *m);
    profiling(false);
}

/* ---------------------------------------- condition variables */

NOINLINE static int cond_timeout_site(pthread_cond_t *c, pthread_mutex_t *m,
                                      const struct timespec *ts)
{
    int rc = pthread_cond_timedwait(c, m, ts);
    NO_TAIL();
    return rc;
}

static void test_cond_timeout_charged_once(void **state)
{
    (void)state;
    cpt_require_go();
    profiling(true);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_lock(&m);
    struct timespec ts = deadline_in_ms(CLOCK_REALTIME, 40);
    uint64_t t0 = st_now_ns();
    assert_int_equal(cond_timeout_site(&c, &m, &ts), ETIMEDOUT);
    uint64_t waited = st_now_ns() - t0;
    pthread_mutex_unlock(&m);
    profiling(false);

    char *dir = cpt_tmpdir();
    char *path = st_write_profile(dir, "block", "cond.pb.gz");
    cp_decoded *d = st_decode(path);
    assert_int_equal(st_sum(d, "contentions", "cond_timeout_site"), 1);
    int64_t delay = st_sum(d, "delay", "cond_timeout_site");
    printf("  timed-out wait: %.2f ms measured, %.2f ms charged\n",
           waited / 1e6, delay / 1e6);
    /* Once: at most the measured wait (twice would be ~80 ms).  The
     * full wait, not a fragment: the charge starts when the real wait
     * does, after the interposer's own work, and a loaded machine can
     * preempt the thread there for milliseconds (35 of 40 ms seen), so
     * the lower bound is loose. */
    assert_true(delay >= 20000000 && (uint64_t)delay <= waited);
    assert_string_equal(st_leaf_of(d, "cond_timeout_site"),
                        "pthread_cond_timedwait");
    free(cpt_pprof("-raw", path));
    cp_decoded_free(d);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

#define PC_ITEMS 20000
static struct {
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    int queue, produced, consumed;
} pc = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
        PTHREAD_COND_INITIALIZER, 0, 0, 0};

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&pc.m);
        while (pc.queue == 0 && pc.consumed < PC_ITEMS)
            pthread_cond_wait(&pc.not_empty, &pc.m);
        if (pc.consumed == PC_ITEMS) {
            pthread_mutex_unlock(&pc.m);
            return NULL;
        }
        pc.queue--;
        if (++pc.consumed == PC_ITEMS)
            pthread_cond_broadcast(&pc.not_empty);
        pthread_cond_signal(&pc.not_full);
        pthread_mutex_unlock(&pc.m);
    }
}

static void test_cond_no_lost_wakeups(void **state)
{
    (void)state;
    profiling(true);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, consumer, NULL);
    for (int i = 0; i < PC_ITEMS; i++) {
        pthread_mutex_lock(&pc.m);
        while (pc.queue >= 4) {
            struct timespec ts = deadline_in_ms(CLOCK_REALTIME, 5000);
            /* A lost wake-up would show as a 5 s timeout. */
            assert_int_not_equal(pthread_cond_timedwait(&pc.not_full, &pc.m,
                                                        &ts),
                                 ETIMEDOUT);
        }
        pc.queue++;
        pc.produced++;
        pthread_cond_signal(&pc.not_empty);
        pthread_mutex_unlock(&pc.m);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(pc.consumed, PC_ITEMS);
    profiling(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errorcheck),
        cmocka_unit_test(test_recursive),
        cmocka_unit_test(test_robust),
        cmocka_unit_test(test_timed_and_rwlock),
        cmocka_unit_test(test_sem_errno),
        cmocka_unit_test(test_sem_eintr),
        cmocka_unit_test(test_join_barrier_spin),
        cmocka_unit_test(test_expected_codes),
        cmocka_unit_test(test_pshared_robust_across_fork),
        cmocka_unit_test(test_cond_timeout_charged_once),
        cmocka_unit_test(test_cond_no_lost_wakeups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
