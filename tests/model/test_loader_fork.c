/*
 * test_loader_fork.c - cpprof never leaves the loader's object-list lock
 * held in a fork child (capture/loader.c), and never makes fork wait
 * unboundedly for it.
 *
 * A helper thread sits inside a loader section (a dl_iterate_phdr
 * callback that blocks) while the main thread forks.  Without loader
 * sections the child's first dl_iterate_phdr would wait forever for the
 * lock the helper held at the fork; with them, fork waits for the helper
 * to finish its walk.  A helper that never finishes delays fork by the
 * bounded wait only.
 */
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capture/loader.h"
#include "support.h"

static atomic_int go;           /* the helper may start its walk */
static atomic_int inside;       /* the helper is in its callback */
static atomic_long hold_ms;     /* how long the callback stays */

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int slow_callback(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)info, (void)size, (void)arg;
    atomic_store(&inside, 1);
    struct timespec ts = {0, 0};
    long ms = atomic_load(&hold_ms);
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
    return 1;
}

static void *walker(void *arg)
{
    (void)arg;
    while (!atomic_load(&go))
        usleep(1000);
    cp_loader_iterate(slow_callback, NULL);
    return NULL;
}

static int count_objects(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)info, (void)size;
    ++*(int *)arg;
    return 0;
}

/* Forks while the helper is inside its walk of hold ms; checks the child
 * exited cleanly and returns how long fork() took. */
static long long fork_during_walk(long hold, bool child_walks)
{
    atomic_store(&go, 0);
    atomic_store(&inside, 0);
    atomic_store(&hold_ms, hold);
    /* pthread_create itself may walk the object list (the threadcreate
     * profile's backtrace): done before the helper's walk starts. */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, walker, NULL), 0);
    atomic_store(&go, 1);
    while (!atomic_load(&inside))
        usleep(1000);
    long long t0 = mono_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(10); /* a child stuck on the loader lock dies of SIGALRM */
        int n = 0;
        if (child_walks)
            dl_iterate_phdr(count_objects, &n);
        _exit(child_walks && n == 0 ? 1 : 0);
    }
    long long fork_ms = mono_ms() - t0;
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    pthread_join(t, NULL);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    return fork_ms;
}

static void test_child_walks_objects_after_fork_during_walk(void **state)
{
    (void)state;
    long long fork_ms = fork_during_walk(300, true);
    /* fork waited for the walk to end (it had ~300 ms left). */
    assert_true(fork_ms >= 100);
}

static void test_fork_waits_a_bounded_time_for_a_stuck_walk(void **state)
{
    (void)state;
    long long fork_ms = fork_during_walk(6000, false);
    /* Gave up after the bounded wait (2 s), well before the walk ended. */
    assert_true(fork_ms >= 1500);
    assert_true(fork_ms < 5000);
}

static void *enter_during_fork(void *arg)
{
    (void)arg;
    cp_loader_enter();
    cp_loader_leave();
    return NULL;
}

static void test_sections_nest_and_fork_from_inside_one(void **state)
{
    (void)state;
    /* A fork from inside a section does not wait for itself. */
    cp_loader_enter();
    cp_loader_enter();
    long long t0 = mono_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child's own sections still work after the fork. */
        cp_loader_leave();
        cp_loader_leave();
        pthread_t t;
        if (pthread_create(&t, NULL, enter_during_fork, NULL) != 0)
            _exit(2);
        pthread_join(t, NULL);
        _exit(0);
    }
    assert_true(mono_ms() - t0 < 1000);
    cp_loader_leave();
    cp_loader_leave();
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_walks_objects_after_fork_during_walk),
        cmocka_unit_test(test_fork_waits_a_bounded_time_for_a_stuck_walk),
        cmocka_unit_test(test_sections_nest_and_fork_from_inside_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
