/*
 * tests/threads/test_threads.c - the "threads" (alias "goroutine") and
 * "threadcreate" profiles on a process with a thread blocked in read(),
 * a thread that blocks every signal, and 500 idle threads: the dump
 * returns promptly, lists every thread, gives stacks to those that can
 * answer and the name and state of the one that cannot, and the read()
 * is not disturbed; a thread born with every signal blocked answers
 * all the same.  threadcreate counts the 500 creations at their
 * call site.  Profiles are checked with our decoder and go tool pprof.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "profile_sums.h"

#define IDLE 500

static struct {
    int idle_pipe[2], read_pipe[2], blocked_pipe[2];
    pthread_t idle[IDLE], reader, blocked;
    ssize_t reader_result;
    int reader_errno;
} fx;

static atomic_int idle_started;

__attribute__((noinline)) void *idle_worker(void *arg)
{
    (void)arg;
    char c;
    atomic_fetch_add(&idle_started, 1);
    ssize_t r = read(fx.idle_pipe[0], &c, 1);
    return (void *)(intptr_t)r;
}

__attribute__((noinline)) void *reader_blocked_in_read(void *arg)
{
    (void)arg;
    char c;
    fx.reader_result = read(fx.read_pipe[0], &c, 1);
    fx.reader_errno = errno;
    return NULL;
}

__attribute__((noinline)) void *thread_blocking_all_signals(void *arg)
{
    (void)arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    char c;
    ssize_t r = read(fx.blocked_pipe[0], &c, 1);
    return (void *)(intptr_t)r;
}

__attribute__((noinline)) void spawn_idle_workers(void)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 * 1024);
    for (int i = 0; i < IDLE; i++)
        assert_int_equal(pthread_create(&fx.idle[i], &attr, idle_worker, NULL),
                         0);
    pthread_attr_destroy(&attr);
}

static int count_tasks(void)
{
    char *out = NULL;
    cpt_run(&out, "ls /proc/%d/task | wc -l", (int)getpid());
    int n = atoi(out);
    free(out);
    return n;
}

static int setup(void **state)
{
    (void)state;
    if (pipe(fx.idle_pipe) || pipe(fx.read_pipe) || pipe(fx.blocked_pipe))
        return -1;
    spawn_idle_workers();
    pthread_create(&fx.reader, NULL, reader_blocked_in_read, NULL);
    pthread_setname_np(fx.reader, "reader");
    pthread_create(&fx.blocked, NULL, thread_blocking_all_signals, NULL);
    pthread_setname_np(fx.blocked, "sigblocked");
    /* Let every thread reach its read(): all idle workers must have
     * started (sanitizer builds start 500 threads slowly), then a pause
     * for the last ones to enter the system call. */
    struct timespec tick = {0, 10 * 1000000};
    for (int i = 0; i < 1000 && atomic_load(&idle_started) < IDLE; i++)
        nanosleep(&tick, NULL);
    struct timespec ts = {0, 300 * 1000000};
    nanosleep(&ts, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char buf[IDLE];
    memset(buf, 'x', sizeof buf);
    if (write(fx.idle_pipe[1], buf, IDLE) != IDLE ||
        write(fx.blocked_pipe[1], "x", 1) != 1)
        return -1;
    for (int i = 0; i < IDLE; i++)
        pthread_join(fx.idle[i], NULL);
    pthread_join(fx.blocked, NULL);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *write_text(const char *name, int debug)
{
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cpprof_profile_write(cpprof_profile_lookup(name), w,
                                          debug), 0);
    size_t len;
    const char *data = cpprof_writer_data(w, &len);
    char *s = malloc(len + 1);
    memcpy(s, data, len);
    s[len] = 0;
    cpprof_writer_close(w);
    return s;
}

static void test_debug2_lists_every_thread_promptly(void **state)
{
    (void)state;
    int tasks = count_tasks();
    assert_true(tasks >= IDLE + 3);
    double t0 = now_s();
    char *s = write_text("threads", 2);
    double took = now_s() - t0;
    printf("# threads?debug=2 for %d threads took %.3f s\n", tasks, took);
    assert_true(took < 5.0);
    /* One header per thread. */
    int headers = 0;
    for (const char *l = s; l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        headers += strncmp(l, "thread ", 7) == 0;
    assert_int_equal(headers, tasks);
    /* Idle threads all answered with their stack. */
    assert_true(cpt_count_lines_with(s, "\tidle_worker+") >= IDLE);
    /* The reader answered from inside read(). */
    const char *r = strstr(s, "\"reader\" [");
    assert_non_null(r);
    const char *next = strstr(r + 1, "\nthread ");
    const char *fn = strstr(r, "reader_blocked_in_read");
    assert_true(fn && (!next || fn < next));
    /* The thread that blocks signals is listed by name and state. */
    r = strstr(s, "\"sigblocked\" [S (sleeping)]:\n#\t(no stack: signals blocked)");
    assert_non_null(r);
    free(s);
    /* The interrupted read() was restarted, not failed: unblock it. */
    assert_int_equal(write(fx.read_pipe[1], "y", 1), 1);
    pthread_join(fx.reader, NULL);
    assert_int_equal(fx.reader_result, 1);
}

static void test_debug1_groups_identical_stacks(void **state)
{
    (void)state;
    char *s = write_text("goroutine", 1); /* the Go alias */
    assert_true(strncmp(s, "threads profile: total ", 23) == 0);
    assert_true(atoi(s + 23) >= IDLE + 2);
    /* The first record is the largest group: the idle workers. */
    const char *rec = strchr(s, '\n') + 1;
#ifdef CPPROF_SANITIZER_BUILD
    /* Known issue: in -O0 sanitizer builds the signal-time unwinder now
     * and then drops the pthread_create trampoline's frame (seen: 43 to
     * 148 of 500 identical threads), which splits the idle workers into
     * two records.  Grouping must still fold them into at most two. */
    int groups = 0, grouped = 0;
    for (const char *r = rec; r && *r; ) {
        const char *next = strstr(r, "\n\n");
        next = next ? next + 2 : NULL;
        const char *fn = strstr(r, "\tidle_worker+");
        if (fn && (!next || fn < next)) {
            groups++;
            grouped += atoi(r);
        }
        r = next;
    }
    if (groups > 2 || grouped < IDLE - 5)
        fail_msg("idle workers in %d records holding %d:\n%.3000s", groups,
                 grouped, s);
#else
    if (atoi(rec) < IDLE - 5)
        fail_msg("largest group %d < %d:\n%.3000s", atoi(rec), IDLE - 5, s);
#endif
    free(s);
}

static void test_proto_parses_with_go_and_counts_threads(void **state)
{
    (void)state;
    cp_decoded *d = ht_decode_profile("threads");
    int64_t total = cp_decoded_total(d, 0);
    assert_true(total >= IDLE + 2);
    assert_true(ht_sum(d, "threads", "idle_worker", NULL) >= IDLE - 5);
    cp_decoded_free(d);
    assert_true(cpprof_profile_count(cpprof_profile_lookup("threads")) >=
                IDLE + 2);

    cpt_require_go();
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "threads.pb.gz");
    ht_write_file("threads", 0, path);
    char *out = cpt_pprof("-top -nodecount=500", path);
    assert_non_null(strstr(out, "idle_worker"));
    free(out);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

static void test_threadcreate_counts_creations_at_their_site(void **state)
{
    (void)state;
    cp_decoded *d = ht_decode_profile("threadcreate");
    assert_int_equal(ht_sum(d, "threadcreate", "spawn_idle_workers", NULL),
                     IDLE);
    cp_decoded_free(d);
    assert_true(cpprof_profile_count(cpprof_profile_lookup("threadcreate")) >=
                IDLE + 2);
    char *s = write_text("threadcreate", 1);
    assert_true(strncmp(s, "threadcreate profile: total ", 28) == 0);
    assert_non_null(strstr(s, "\n500 @ "));
    assert_non_null(strstr(s, "spawn_idle_workers"));
    free(s);

    char *out = ht_pprof_profile("threadcreate", "-top -nodecount=500");
    assert_non_null(strstr(out, "spawn_idle_workers"));
    free(out);
}

static int born_masked_pipe[2];

__attribute__((noinline)) void *born_masked_worker(void *arg)
{
    (void)arg;
    char c;
    ssize_t r = read(born_masked_pipe[0], &c, 1);
    return (void *)(intptr_t)r;
}

/* A thread whose creator blocked every signal around pthread_create
 * (xz and many servers) inherits that mask; the library unblocks its
 * own stack-dump signal in it at start, so it answers with its stack. */
static void test_thread_born_with_signals_blocked_answers(void **state)
{
    (void)state;
    free(write_text("threads", 1)); /* the handler exists from here on */
    assert_int_equal(pipe(born_masked_pipe), 0);
    sigset_t all, old;
    sigfillset(&all);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &all, &old), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, born_masked_worker, NULL), 0);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    pthread_setname_np(t, "bornmasked");
    struct timespec ts = {0, 100 * 1000000};
    nanosleep(&ts, NULL); /* into its read() */
    char *s = write_text("threads", 2);
    const char *r = strstr(s, "\"bornmasked\" [");
    assert_non_null(r);
    const char *next = strstr(r + 1, "\nthread ");
    const char *fn = strstr(r, "born_masked_worker");
    if (!fn || (next && fn > next))
        fail_msg("no stack for the thread born masked:\n%.300s", r);
    free(s);
    assert_int_equal(write(born_masked_pipe[1], "x", 1), 1);
    pthread_join(t, NULL);
    close(born_masked_pipe[0]);
    close(born_masked_pipe[1]);
}

static atomic_bool dumping_done;

/* Dumps the threads profile over and over until told to stop. */
static void *dump_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&dumping_done)) {
        cpprof_writer *w;
        if (cpprof_writer_open_buffer(&w) != 0)
            break;
        cpprof_profile_write(cpprof_profile_lookup("threads"), w, 1);
        cpprof_writer_close(w);
    }
    return NULL;
}

/* fork while another thread is inside a dump (holding its lock, with
 * handlers counted): the child's own dump must not wait for them. */
static void test_fork_during_a_dump(void **state)
{
    (void)state;
    atomic_store(&dumping_done, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, dump_loop, NULL), 0);
    int stuck = 0;
    for (int i = 0; i < 20; i++) {
        struct timespec ts = {0, 3 * 1000000};
        nanosleep(&ts, NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(5); /* a hang ends as SIGALRM */
            cpprof_writer *w;
            int rc = cpprof_writer_open_buffer(&w);
            if (rc == 0)
                rc = cpprof_profile_write(cpprof_profile_lookup("threads"),
                                          w, 2);
            _exit(rc == 0 ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        stuck += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    atomic_store(&dumping_done, true);
    pthread_join(t, NULL);
    printf("# 20 forks during dumps: %d children could not dump\n", stuck);
    assert_int_equal(stuck, 0);
}

static void test_bad_timeout_is_refused(void **state)
{
    (void)state;
    assert_int_equal(cpprof_threads_set_timeout_ms(0), -ERANGE);
    assert_int_equal(cpprof_threads_set_timeout_ms(10001), -ERANGE);
    assert_int_equal(cpprof_threads_set_timeout_ms(250), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_debug2_lists_every_thread_promptly),
        cmocka_unit_test(test_debug1_groups_identical_stacks),
        cmocka_unit_test(test_proto_parses_with_go_and_counts_threads),
        cmocka_unit_test(test_threadcreate_counts_creations_at_their_site),
        cmocka_unit_test(test_thread_born_with_signals_blocked_answers),
        cmocka_unit_test(test_fork_during_a_dump),
        cmocka_unit_test(test_bad_timeout_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
