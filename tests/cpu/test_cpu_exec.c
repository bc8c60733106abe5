/*
 * test_cpu_exec.c - nothing of the CPU profiler stays armed across exec.
 * With the setitimer fallback (process-wide ITIMER_PROF survives exec),
 * an exec'd CPU-busy program must not die of "Profiling timer expired";
 * a failed exec leaves profiling armed, with exec's errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cpprof.h>

#include "support.h"

#define BUSY_BODY "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; "
#define BUSY BUSY_BODY "exit 7"

static cpprof_writer *start_itimer_profile(void)
{
    setenv("CPPROF_CPU_TIMER", "setitimer", 1);
    assert_int_equal(cpprof_cpu_set_rate(1000), 0);
    int fd = open("/dev/null", O_WRONLY);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_fd(&w, fd), 0);
    assert_int_equal(cpprof_cpu_start(w), 0);
    struct itimerval it;
    assert_int_equal(getitimer(ITIMER_PROF, &it), 0);
    assert_true(it.it_value.tv_sec || it.it_value.tv_usec); /* fallback on */
    return w;
}

static void run_child(int how)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        start_itimer_profile();
        if (how == 0)
            execl("/bin/sh", "sh", "-c", BUSY, (char *)NULL);
        else if (how == 2) {
            /* execle: the environment after the list's NULL is used. */
            char *env[] = {"CODE=7", NULL};
            execle("/bin/sh", "sh", "-c", BUSY_BODY "exit $CODE", (char *)NULL, env);
        } else {
            char *argv[] = {"sh", "-c", BUSY, NULL};
            execvp("sh", argv);
        }
        _exit(99);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
        fail_msg("exec'd program: status %#x (signal %d)", status,
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static void test_execl_leaves_no_timer(void **state)
{
    (void)state;
    run_child(0);
}

static void test_execvp_leaves_no_timer(void **state)
{
    (void)state;
    run_child(1);
}

static void test_execle_passes_its_environment(void **state)
{
    (void)state;
    run_child(2);
}

static void test_failed_exec_keeps_profiling(void **state)
{
    (void)state;
    cpprof_writer *w = start_itimer_profile();
    char *argv[] = {"nope", NULL};
    errno = 0;
    assert_int_equal(execv("/no/such/program", argv), -1);
    assert_int_equal(errno, ENOENT);
    struct itimerval it;
    assert_int_equal(getitimer(ITIMER_PROF, &it), 0);
    assert_true(it.it_value.tv_sec || it.it_value.tv_usec);
    assert_int_equal(cpprof_cpu_stop(), 0);
    cpprof_writer_close(w);
    unsetenv("CPPROF_CPU_TIMER");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_execl_leaves_no_timer),
        cmocka_unit_test(test_execvp_leaves_no_timer),
        cmocka_unit_test(test_execle_passes_its_environment),
        cmocka_unit_test(test_failed_exec_keeps_profiling),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
