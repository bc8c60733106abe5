/*
 * test_symbolize_fork.c - a fork child can symbolize even when another
 * thread of the parent was inside the symbolizer at the moment of the
 * fork: holding a generation's lock, walking the loader's object list
 * (glibc's fork leaves dl_iterate_phdr's lock held in the child if another
 * thread was inside it; capture/loader.c keeps cpprof out of it across
 * fork), or recording a sampled allocation.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpprof.h>

#include "model/symbolize.h"
#include "support.h"

static atomic_int stop;

/* Keeps the symbolizer busy on cache misses (write-locked work). */
static void *busy_symbolizer(void *arg)
{
    (void)arg;
    uintptr_t base = (uintptr_t)&qsort;
    for (uintptr_t off = 0; !atomic_load(&stop); off = (off + 7) % (1u << 20)) {
        cp_symbolizer *s = cp_symbolizer_acquire();
        cp_frame f[8];
        cp_symbolize(s, base + off, f, 8);
        cp_symbolizer_release(s);
    }
    return NULL;
}

__attribute__((noinline)) void fork_child_marker(void) {}

#define FORKS 40
#define CHILD_LIMIT_S 20

static void test_child_symbolizes_after_fork(void **state)
{
    (void)state;
    /* Every allocation sampled, so the busy thread is also recording heap
     * samples (unwinding, interning stacks) whenever the fork lands. */
    cpprof_heap_set_rate(1);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, busy_symbolizer, NULL), 0);
    usleep(50000);
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(CHILD_LIMIT_S); /* a deadlock shows up as SIGALRM */
            cp_symbolizer *s = cp_symbolizer_acquire();
            cp_frame f[8];
            size_t n = cp_symbolize(s, (uintptr_t)fork_child_marker, f, 8);
            int ok = n > 0 && f[n - 1].function &&
                     strcmp(f[n - 1].function, "fork_child_marker") == 0;
            cp_symbolizer_release(s);
            _exit(ok ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("child %d: status %#x (signal %d)", i, status,
                     WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        usleep(2000);
    }
    atomic_store(&stop, 1);
    pthread_join(t, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_child_symbolizes_after_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
