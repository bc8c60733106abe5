/*
 * tests/sync/test_sync_fastpath.c - the uncontended lock paths taken while
 * the block and mutex profiles are on keep glibc's semantics and miss no
 * real wait:
 *   - in a single-threaded process the interposer goes straight to the
 *     real lock; a process-shared mutex or rwlock held by another
 *     process must still be seen waiting (block profile), and the
 *     error-checking and recursive kinds answer as glibc does;
 *   - in a multi-threaded process a default mutex is taken by the
 *     interposer's own compare-and-swap: glibc's owner and user count
 *     must be exactly what its own lock leaves (its trylock, destroy,
 *     condition waits and unlock read them), in every thread and in a
 *     fork child (whose thread id is new).
 * The first test must run while the process still has one thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/single_threaded.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sync_test_util.h"
#ifndef FASTPATH_SHARED
#include "capture/sync_shim.h"
#endif

static void profiling(bool on)
{
    cpprof_set_block_profile_rate(on ? 1 : 0);
    cpprof_set_mutex_profile_fraction(on ? 1 : 0);
}

static int my_tid(void)
{
    return (int)syscall(SYS_gettid);
}

/* ------------------------------------------------- single-threaded */

NOINLINE static int st_mutex_site(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    NO_TAIL();
    return rc;
}

NOINLINE static int st_rwlock_site(pthread_rwlock_t *l)
{
    int rc = pthread_rwlock_rdlock(l);
    NO_TAIL();
    return rc;
}

NOINLINE static int st_private_site(pthread_mutex_t *m)
{
    int rc = pthread_mutex_lock(m);
    NO_TAIL();
    return rc;
}

/* A child process takes *m (or *l for writing), tells the parent through
 * the pipe pfd, holds it hold_ms and exits. */
static pid_t child_holds(pthread_mutex_t *m, pthread_rwlock_t *l,
                         const int pfd[2], int hold_ms)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int rc = m ? pthread_mutex_lock(m) : pthread_rwlock_wrlock(l);
        (void)!write(pfd[1], "x", 1);
        st_sleep_ms(hold_ms);
        if (rc == 0)
            rc = m ? pthread_mutex_unlock(m) : pthread_rwlock_unlock(l);
        _exit(rc == 0 ? 0 : 1);
    }
    char c;
    assert_int_equal(read(pfd[0], &c, 1), 1);
    return pid;
}

static void reap(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_single_threaded(void **state)
{
    (void)state;
    if (!__libc_single_threaded)
        skip(); /* a runtime (sanitizer) started a thread before main */
    cpt_require_go();
    profiling(true);

    /* Process-shared locks in shared memory, held by a child process:
     * the lone thread really waits, and the block profile sees it. */
    struct shared {
        pthread_mutex_t m;
        pthread_rwlock_t l;
    } *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    assert_int_equal(pthread_mutex_init(&sh->m, &ma), 0);
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED);
    assert_int_equal(pthread_rwlock_init(&sh->l, &ra), 0);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);

    pid_t pid = child_holds(&sh->m, NULL, pfd, 60);
    uint64_t t0 = st_now_ns();
    assert_int_equal(st_mutex_site(&sh->m), 0);
    uint64_t waited_m = st_now_ns() - t0;
    assert_int_equal(pthread_mutex_unlock(&sh->m), 0);
    reap(pid);

    pid = child_holds(NULL, &sh->l, pfd, 60);
    t0 = st_now_ns();
    assert_int_equal(st_rwlock_site(&sh->l), 0);
    uint64_t waited_l = st_now_ns() - t0;
    assert_int_equal(pthread_rwlock_unlock(&sh->l), 0);
    reap(pid);
    assert_true(__libc_single_threaded); /* fork made no thread here */

    /* Private mutexes of every kind answer as glibc does. */
    pthread_mutex_t ec, rec, plain = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&ec, &a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&rec, &a);
    assert_int_equal(pthread_mutex_lock(&ec), 0);
    assert_int_equal(pthread_mutex_lock(&ec), EDEADLK);
    assert_int_equal(pthread_mutex_unlock(&ec), 0);
    assert_int_equal(pthread_mutex_unlock(&ec), EPERM);
    assert_int_equal(pthread_mutex_lock(&rec), 0);
    assert_int_equal(pthread_mutex_lock(&rec), 0);
    assert_int_equal(pthread_mutex_unlock(&rec), 0);
    assert_int_equal(pthread_mutex_unlock(&rec), 0);
    assert_int_equal(pthread_mutex_trylock(&rec), 0);
    assert_int_equal(pthread_mutex_unlock(&rec), 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(st_private_site(&plain), 0);
        assert_int_equal(pthread_mutex_unlock(&plain), 0);
    }
    assert_int_equal(plain.__data.__owner, 0);
    assert_int_equal(plain.__data.__nusers, 0);

    char *dir = cpt_tmpdir();
    char *path = st_write_profile(dir, "block", "block.pb.gz");
#ifndef FASTPATH_SHARED
    cp_decoded *d = st_decode(path);
    assert_int_equal(st_sum(d, "contentions", "st_mutex_site"), 1);
    assert_true(st_sum(d, "delay", "st_mutex_site") >=
                (int64_t)(waited_m * 9 / 10));
    assert_int_equal(st_sum(d, "contentions", "st_rwlock_site"), 1);
    assert_true(st_sum(d, "delay", "st_rwlock_site") >=
                (int64_t)(waited_l * 9 / 10));
    assert_int_equal(st_sum(d, "contentions", "st_private_site"), 0);
    cp_decoded_free(d);
#else
    (void)waited_m;
    (void)waited_l;
#endif
    /* (libcpprof.so exports no decoder: there go tool pprof alone.) */
    char *out = cpt_pprof("-top -sample_index=contentions", path);
    assert_non_null(strstr(out, "st_mutex_site"));
    assert_non_null(strstr(out, "st_rwlock_site"));
    assert_null(strstr(out, "st_private_site"));
    free(out);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);

    pthread_mutex_destroy(&ec);
    pthread_mutex_destroy(&rec);
    close(pfd[0]);
    close(pfd[1]);
    munmap(sh, sizeof *sh);
    profiling(false);
}

/* ------------------------------------------------- multi-threaded */

/* glibc's view of a default mutex, read field by field. */
typedef struct mstate {
    int lock, owner;
    unsigned nusers;
} mstate;

static mstate state_of(const pthread_mutex_t *m)
{
    mstate s = {m->__data.__lock, m->__data.__owner, m->__data.__nusers};
    return s;
}

/* Locks a default mutex, checks what glibc sees while it is held and
 * after the unlock; returns 0 or the number of the failed check. */
static int check_default_mutex(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    if (pthread_mutex_lock(&m) != 0)
        return 1;
    mstate s = state_of(&m);
    if (s.lock != 1 || s.owner != my_tid() || s.nusers != 1)
        return 2;
    if (pthread_mutex_trylock(&m) != EBUSY)
        return 3;
    if (pthread_mutex_destroy(&m) != EBUSY)
        return 4;
    if (pthread_mutex_unlock(&m) != 0)
        return 5;
    s = state_of(&m);
    if (s.lock != 0 || s.owner != 0 || s.nusers != 0)
        return 6;
    /* A condition wait drops and retakes it (its owner checks pass). */
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 2000000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (pthread_mutex_lock(&m) != 0)
        return 7;
    if (pthread_cond_timedwait(&c, &m, &ts) != ETIMEDOUT)
        return 8;
    s = state_of(&m);
    if (s.lock == 0 || s.owner != my_tid() || s.nusers != 1)
        return 9;
    if (pthread_mutex_unlock(&m) != 0)
        return 10;
    if (pthread_mutex_destroy(&m) != 0)
        return 11;
    pthread_cond_destroy(&c);
    return 0;
}

static void *check_in_thread(void *arg)
{
    *(int *)arg = check_default_mutex();
    return NULL;
}

/* Keeps the process multi-threaded while it runs. */
static void *idle_reader(void *arg)
{
    char c;
    while (read(*(int *)arg, &c, 1) > 0) {
    }
    return NULL;
}

static void test_multi_threaded_default_mutex(void **state)
{
    (void)state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pthread_t idle;
    assert_int_equal(pthread_create(&idle, NULL, idle_reader, &pfd[0]), 0);

#if !defined(FASTPATH_SHARED) && !defined(CPPROF_SANITIZER_BUILD)
    /* A plain build against glibc: the default mutex must really take
     * the inlined path tested here (not silently the real trylock). */
    profiling(true);
    assert_true(cp_sync_inline_trylock());
#endif
    for (int on = 0; on <= 1; on++) {
        profiling(on);
        assert_int_equal(check_default_mutex(), 0);
        assert_int_equal(check_default_mutex(), 0); /* tid now cached */
        int r = -1;
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, check_in_thread, &r), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(r, 0);
        /* A fork child has a new thread id: its locks must record it. */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(check_default_mutex());
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    profiling(false);
    close(pfd[1]);
    assert_int_equal(pthread_join(idle, NULL), 0);
    close(pfd[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_threaded), /* first: one thread */
        cmocka_unit_test(test_multi_threaded_default_mutex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
