/*
 * tests/preload/test_preload.c - profiling unchanged programs: `cpprof
 * run` flags, CPPROF_* variables (bad values too), the ways a program
 * ends (exit, return, SIGINT, SIGTERM, fork in both modes, exec, _exit),
 * programs hostile to preloading, real programs (sort, python3, gzip, a
 * C++ program with threads and exceptions) and `cpprof top`.
 *
 * Every profile is read by go tool pprof and by our decoder.  Programs
 * run through sh (cpt_run), so the test process itself never loads the
 * preloaded library.  Ground truth for CPU: the target burns its own
 * thread CPU clock, so a loaded machine only stretches wall time.
 */
#include "support.h"

#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "encode/decode.h"
#include "service/preload_env.h"

#define CLI CPPROF_TEST_BUILD_DIR "/tools/cpprof/cpprof"
#define LIB CPPROF_TEST_BUILD_DIR "/libcpprof.so"

static char *dir; /* per test */

static int setup(void **state)
{
    (void)state;
    dir = cpt_tmpdir();
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    cpt_tmpdir_remove(dir);
    free(dir);
    dir = NULL;
    return 0;
}

static char *path_in(const char *name)
{
    return cpt_path(dir, name);
}

static bool exists(const char *name)
{
    char *p = path_in(name);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

/* Number of files in dir whose name starts with prefix. */
static int count_files(const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, prefix, strlen(prefix)))
            n++;
    if (d)
        closedir(d);
    return n;
}

/* Decodes name with our decoder and checks go tool pprof -top reads it
 * and lists want (when non-NULL).  Returns the sum of value index vi. */
static int64_t check_profile(const char *name, const char *want, size_t vi)
{
    char *p = path_in(name);
    cp_decoded *d;
    int rc = cp_decode_file(p, &d);
    if (rc != 0)
        fail_msg("%s: cp_decode_file: %d", name, rc);
    int64_t total = cp_decoded_total(d, vi);
    cp_decoded_free(d);
    if (cpt_have_go()) {
        char *top = cpt_pprof("-top", p);
        if (want && !strstr(top, want))
            fail_msg("go tool pprof -top %s lacks %s:\n%s", name, want, top);
        free(top);
    }
    free(p);
    return total;
}

/* ------------------------------------------------------------ flags */

static void test_each_flag_sets_its_variable(void **state)
{
    (void)state;
    for (const cp_pvar *v = cp_preload_vars; v->env; v++) {
        const char *value = v->type == CP_PVAR_INT    ? "5"
                            : v->type == CP_PVAR_FORK ? "parent"
                            : !strcmp(v->flag, "http") ? "127.0.0.1:0"
                            : !strcmp(v->flag, "service-profiles") ? "heap"
                            : !strcmp(v->flag, "service-intervals") ? "0"
                                                                    : "out.f";
        char *out;
        int rc = cpt_run(&out, "cd '%s' && '%s' run -%s %s -- /usr/bin/env",
                         dir, CLI, v->flag, value);
        assert_int_equal(rc, 0);
        char want[4200];
        if (v->type == CP_PVAR_PATH || !strcmp(v->flag, "service-dir"))
            snprintf(want, sizeof want, "%s=%s/out.f\n", v->env, dir);
        else
            snprintf(want, sizeof want, "%s=%s\n", v->env, value);
        if (!strstr(out, want))
            fail_msg("-%s did not set %s", v->flag, want);
        assert_non_null(strstr(out, "LD_PRELOAD=/"));
        assert_non_null(strstr(out, "libcpprof.so"));
        assert_non_null(strstr(out, "CPPROF_PID="));
        free(out);
    }
    /* -flag=value works too, and LD_PRELOAD keeps what was there. */
    char *out;
    assert_int_equal(cpt_run(&out, "cd '%s' && LD_PRELOAD=libm.so.6 '%s' run "
                                   "-cpurate=7 /usr/bin/env", dir, CLI), 0);
    assert_non_null(strstr(out, "CPPROF_CPURATE=7\n"));
    /* Ours first (see docs/preload.md), the user's kept after it. */
    assert_non_null(strstr(out, "LD_PRELOAD=/"));
    assert_non_null(strstr(out, ":libm.so.6\n"));
    free(out);
}

static void test_flag_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args, *msg;
        int rc;
    } cases[] = {
        {"-cpurate abc -- /bin/true", "invalid value \"abc\" for flag -cpurate: not an integer", 2},
        {"-cpurate 0 -- /bin/true", "for flag -cpurate: must be between 1 and 10000", 2},
        {"-memprofilerate -5 -- /bin/true", "for flag -memprofilerate: must be an integer >= 0", 2},
        {"-blockprofilerate x /bin/true", "for flag -blockprofilerate", 2},
        {"-mutexprofilefraction 1e3 /bin/true", "for flag -mutexprofilefraction", 2},
        {"-fork sometimes /bin/true", "for flag -fork: must be \"pid\" or \"parent\"", 2},
        {"-cpuprofile= /bin/true", "for flag -cpuprofile: empty file name", 2},
        {"-nosuch 1 /bin/true", "flag provided but not defined: -nosuch", 2},
        {"-cpuprofile", "flag needs an argument: -cpuprofile", 2},
        {"-cpuprofile x --", "no program to run", 2},
        {"-- /no/such/program", "/no/such/program: No such file or directory", 127},
        {"-- nosuchprogram-cpprof", "nosuchprogram-cpprof: No such file or directory", 127},
        {"-- ./not-executable", "Permission denied", 126},
    };
    assert_int_equal(cpt_run(NULL, "cd '%s' && echo data > not-executable && "
                                   "chmod 644 not-executable", dir), 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        int rc = cpt_run(&out, "cd '%s' && '%s' run %s", dir, CLI, cases[i].args);
        if (rc != cases[i].rc || !strstr(out, cases[i].msg))
            fail_msg("cpprof run %s: rc %d, output:\n%s", cases[i].args, rc, out);
        free(out);
    }
    char *out;
    assert_int_equal(cpt_run(&out, "'%s' run -h", CLI), 0);
    for (const cp_pvar *v = cp_preload_vars; v->env; v++)
        assert_non_null(strstr(out, v->env));
    free(out);
    assert_int_equal(cpt_run(&out, "CPPROF_LIB=/no/such.so '%s' run /bin/true", CLI), 1);
    assert_non_null(strstr(out, "CPPROF_LIB=/no/such.so"));
    free(out);
}

/* ---------------------------------------------- environment variables */

static void test_env_bad_values(void **state)
{
    (void)state;
    static const struct {
        const char *var, *value;
        bool cpu_written, mem_written;
    } cases[] = {
        {"CPPROF_CPURATE", "fast", false, true},
        {"CPPROF_MEMPROFILERATE", "-1", true, false},
        {"CPPROF_BLOCKPROFILERATE", "1ms", true, true},
        {"CPPROF_MUTEXPROFILEFRACTION", "half", true, true},
        {"CPPROF_FORK", "always", true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        int rc = cpt_run(&out, "cd '%s' && rm -f c m && %s=%s CPPROF_CPUPROFILE=c "
                               "CPPROF_MEMPROFILE=m LD_PRELOAD='%s' '%s' exit 100",
                         dir, cases[i].var, cases[i].value, LIB, PRELOAD_TARGET);
        assert_int_equal(rc, 3); /* the program's own status */
        assert_non_null(strstr(out, "target exit done"));
        char head[128];
        snprintf(head, sizeof head, "cpprof: %s=\"%s\": ", cases[i].var,
                 cases[i].value);
        /* Reported once, and nothing else names the variable. */
        if (cpt_count_lines_with(out, head) != 1 ||
            cpt_count_lines_with(out, cases[i].var) != 1)
            fail_msg("%s: want one report naming it, got:\n%s", cases[i].var, out);
        assert_int_equal(exists("c"), cases[i].cpu_written);
        assert_int_equal(exists("m"), cases[i].mem_written);
        free(out);
    }
    /* An unwritable directory is refused at start; the program runs. */
    char *out;
    int rc = cpt_run(&out, "CPPROF_CPUPROFILE=/proc/nope/c LD_PRELOAD='%s' '%s' exit 10",
                     LIB, PRELOAD_TARGET);
    assert_int_equal(rc, 3);
    assert_int_equal(cpt_count_lines_with(out, "cpprof: CPPROF_CPUPROFILE=\"/proc/nope/c\": cannot write"), 1);
    free(out);
}

/* ---------------------------------------------------- end of program */

static void run_target(const char *mode, int want_rc, const char *flags)
{
    char *out;
    int rc = cpt_run(&out, "cd '%s' && '%s' run -cpuprofile c.pb.gz -memprofile "
                           "m.pb.gz %s -- '%s' %s 300",
                     dir, CLI, flags ? flags : "", PRELOAD_TARGET, mode);
    if (rc != want_rc)
        fail_msg("target %s: status %d, want %d:\n%s", mode, rc, want_rc, out);
    char done[64];
    snprintf(done, sizeof done, "target %s done", mode);
    assert_non_null(strstr(out, done));
    free(out);
}

static void check_cpu_and_mem(void)
{
    /* 300 ms of thread CPU time burnt in burn_cpu: at 100 Hz about 30
     * samples; accept a wide margin, the CPU area tests accuracy. */
    int64_t ns = check_profile("c.pb.gz", "burn_cpu", 1);
    if (ns < 150 * 1000000LL || ns > 600 * 1000000LL)
        fail_msg("CPU profile total %lld ns for 300 ms burnt", (long long)ns);
    check_profile("m.pb.gz", "leak_memory", 0);
}

static void test_exit(void **state)
{
    (void)state;
    run_target("exit", 3, NULL);
    check_cpu_and_mem();
    assert_int_equal(count_files("c.pb.gz"), 1); /* no temporary left */
}

static void test_return_from_main(void **state)
{
    (void)state;
    run_target("return", 4, NULL);
    check_cpu_and_mem();
}

static void test_sigint(void **state)
{
    (void)state;
    run_target("sigint", 128 + 2, NULL); /* still dies of SIGINT */
    check_cpu_and_mem();
}

static void test_sigterm(void **state)
{
    (void)state;
    run_target("sigterm", 128 + 15, NULL);
    check_cpu_and_mem();
}

/* A daemon closes every descriptor it inherited and reuses the numbers:
 * nothing of ours may be one it then owns (a fork child closing "our"
 * pipe closed the worker's; the SIGTERM handler wrote into the program's
 * pipe and swallowed the signal). */
static void test_daemon_closing_descriptors(void **state)
{
    (void)state;
    char *out;
    int rc = cpt_run(&out, "cd '%s' && '%s' run -cpuprofile c.pb.gz -memprofile "
                           "m.pb.gz -fork parent -- '%s' daemon 300",
                     dir, CLI, PRELOAD_TARGET);
    if (rc != 128 + 15 || !strstr(out, "worker status=0 pipes intact=4"))
        fail_msg("daemon: status %d (want 143, killed by SIGTERM) and every "
                 "pipe of the worker intact:\n%s", rc, out);
    check_cpu_and_mem();
    free(out);
}

static long child_pid(const char *out)
{
    const char *c = strstr(out, "child=");
    return c ? strtol(c + 6, NULL, 10) : 0;
}

static void test_fork_pid(void **state)
{
    (void)state;
    char *out;
    int rc = cpt_run(&out, "cd '%s' && '%s' run -cpuprofile c.pb.gz -fork pid -- "
                           "'%s' fork 200", dir, CLI, PRELOAD_TARGET);
    assert_int_equal(rc, 0);
    long child = child_pid(out);
    assert_true(child > 0);
    assert_non_null(strstr(out, "status=0"));
    char name[64];
    snprintf(name, sizeof name, "c.pb.gz.%ld", child);
    check_profile("c.pb.gz", "burn_cpu", 1);
    check_profile(name, "burn_cpu", 1); /* the child's own CPU profile */
    assert_int_equal(count_files("c.pb.gz"), 2);
    free(out);
}

static void test_fork_parent_only(void **state)
{
    (void)state;
    char *out;
    int rc = cpt_run(&out, "cd '%s' && '%s' run -cpuprofile c.pb.gz -memprofile "
                           "m.pb.gz -fork parent -- '%s' fork 200",
                     dir, CLI, PRELOAD_TARGET);
    assert_int_equal(rc, 0);
    assert_true(child_pid(out) > 0);
    check_profile("c.pb.gz", "burn_cpu", 1);
    assert_int_equal(count_files("c.pb.gz"), 1);
    assert_int_equal(count_files("m.pb.gz"), 1);
    free(out);
}

static void test_exec_carries_nothing(void **state)
{
    (void)state;
    /* The exec'd shell has SIGPROF's default action and no cpprof: a
     * timer or pending signal of ours would kill it (status 155). */
    run_target("exec", 5, "-cpurate 1000");
    /* The old image's profiles are gone with it; no file, no temporary. */
    assert_int_equal(count_files("c.pb.gz"), 0);
    assert_int_equal(count_files("m.pb.gz"), 0);
}

static void test__exit_writes_nothing(void **state)
{
    (void)state;
    run_target("_exit", 6, NULL); /* documented limitation */
    assert_int_equal(count_files("c.pb.gz"), 0);
}

static void test_program_installs_sigprof_handler(void **state)
{
    (void)state;
    const char *modes[] = {"sigprof", "signal-sigprof"};
    for (int i = 0; i < 2; i++) {
        char *out;
        int rc = cpt_run(&out, "cd '%s' && rm -f c.pb.gz && '%s' run -cpuprofile c.pb.gz "
                               "-- '%s' %s 300", dir, CLI, PRELOAD_TARGET, modes[i]);
        if (rc != 3)
            fail_msg("%s: status %d:\n%s", modes[i], rc, out);
        /* The program reads back the handler it installed ... */
        assert_non_null(strstr(out, "handler-readback=own"));
        free(out);
        /* ... and CPU profiling carried on. */
        check_profile("c.pb.gz", "burn_cpu", 1);
    }
}

static void test_other_profiles(void **state)
{
    (void)state;
    char *out;
    int rc = cpt_run(&out, "cd '%s' && '%s' run -threadsprofile t.pb.gz -blockprofile "
                           "b.pb.gz -mutexprofile x.pb.gz -- '%s'",
                     dir, CLI, PRELOAD_CXX_APP);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "checksum "));
    free(out);
    check_profile("t.pb.gz", "main", 0);
    check_profile("b.pb.gz", NULL, 0);
    check_profile("x.pb.gz", NULL, 0);
}

/* ------------------------------------------------------------ hostile */

static void test_static_program_refused(void **state)
{
    (void)state;
    char *out;
    int rc = cpt_run(&out, "'%s' run -cpuprofile '%s/c' -- '%s'", CLI, dir,
                     PRELOAD_STATIC);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "is statically linked"));
    free(out);
}

static void test_setuid_program_explained(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* needs chown to another user */
    char *copy = path_in("suid-true");
    char *out;
    assert_int_equal(cpt_run(NULL, "cp /bin/true '%s' && chown nobody '%s' && "
                                   "chmod 4755 '%s'", copy, copy, copy), 0);
    int rc = cpt_run(&out, "'%s' run -- '%s'", CLI, copy);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "set-user-ID"));
    assert_non_null(strstr(out, "ignores LD_PRELOAD"));
    free(out);
    free(copy);
}

/* ------------------------------------------------------ real programs */

static void test_real_sort(void **state)
{
    (void)state;
    char *out;
    /* ~2 MB of text: enough CPU for samples, quick on a loaded machine. */
    assert_int_equal(cpt_run(NULL, "cd '%s' && awk 'BEGIN{srand(7); for (i = 0; "
                                   "i < 200000; i++) print int(rand()*1e9)}' > in.txt "
                                   "&& sort -n in.txt -o plain.txt", dir), 0);
    int rc = cpt_run(&out, "cd '%s' && '%s' run -cpuprofile c.pb.gz -memprofile "
                           "m.pb.gz -- /usr/bin/sort -n in.txt -o out.txt",
                     dir, CLI);
    assert_int_equal(rc, 0);
    assert_string_equal(out, ""); /* sort prints nothing, nor do we */
    free(out);
    assert_int_equal(cpt_run(NULL, "cd '%s' && cmp plain.txt out.txt", dir), 0);
    check_profile("c.pb.gz", "__libc_start_main", 1);
    check_profile("m.pb.gz", "__libc_start_main", 0);
}

static void test_real_python(void **state)
{
    (void)state;
    char *out;
    int rc = cpt_run(&out, "cd '%s' && '%s' run -cpuprofile c.pb.gz -memprofile "
                           "m.pb.gz -- /usr/bin/python3 -c 'import sys; "
                           "print(sum(i * i for i in range(1500000))); sys.exit(7)'",
                     dir, CLI);
    assert_int_equal(rc, 7);
    assert_non_null(strstr(out, "1124998875000250000"));
    free(out);
    check_profile("c.pb.gz", "_PyEval_EvalFrameDefault", 1);
    check_profile("m.pb.gz", NULL, 0);
}

static void test_real_gzip(void **state)
{
    (void)state;
    assert_int_equal(cpt_run(NULL, "cd '%s' && seq 1 300000 > in.txt && gzip -9 "
                                   "-c < in.txt > plain.gz", dir), 0);
    char *out;
    int rc = cpt_run(&out, "cd '%s' && '%s' run -cpuprofile c.pb.gz -- gzip -9 -c "
                           "< in.txt > out.gz", dir, CLI);
    assert_int_equal(rc, 0);
    free(out);
    assert_int_equal(cpt_run(NULL, "cd '%s' && cmp plain.gz out.gz", dir), 0);
    check_profile("c.pb.gz", "__libc_start_main", 1);
}

static void test_real_cxx_threads_exceptions(void **state)
{
    (void)state;
    char *plain, *out;
    assert_int_equal(cpt_run(&plain, "'%s'", PRELOAD_CXX_APP), 0);
    int rc = cpt_run(&out, "cd '%s' && '%s' run -cpuprofile c.pb.gz -memprofile "
                           "m.pb.gz -- '%s'", dir, CLI, PRELOAD_CXX_APP);
    assert_int_equal(rc, 0);
    assert_string_equal(out, plain);
    free(out);
    free(plain);
    check_profile("c.pb.gz", "shapes::", 1);
    check_profile("m.pb.gz", NULL, 0);
}

/* ---------------------------------------------------------- cpprof top */

static void test_top_matches_pprof(void **state)
{
    (void)state;
    run_target("exit", 3, NULL);
    char *p = path_in("c.pb.gz");
    char *ours;
    assert_int_equal(cpt_run(&ours, "'%s' top -n 5 '%s'", CLI, p), 0);
    assert_non_null(strstr(ours, "burn_cpu"));
    assert_non_null(strstr(ours, "      flat  flat%   sum%        cum   cum%"));
    if (cpt_have_go()) {
        /* Same samples, same total: the "of X total" phrases agree. */
        char *theirs = cpt_pprof("-top", p);
        /* On the "Showing nodes accounting for" line (pprof prints the
         * profile's comments above it). */
        const char *a = strstr(ours, "accounting for"),
                   *b = strstr(theirs, "accounting for");
        assert_non_null(a);
        assert_non_null(b);
        a = strstr(a, " of ");
        b = strstr(b, " of ");
        assert_non_null(a);
        assert_non_null(b);
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || strncmp(a, b, la) != 0)
            fail_msg("totals differ:\nours:  %.*s\npprof: %.*s", (int)la, a,
                     (int)lb, b);
        free(theirs);
    }
    free(ours);
    char *out;
    assert_int_equal(cpt_run(&out, "'%s' top '%s' -sample_index samples", CLI, p), 0);
    assert_non_null(strstr(out, "Type: samples"));
    free(out);
    assert_int_equal(cpt_run(&out, "'%s' top -n x '%s'", CLI, p), 2);
    assert_int_equal(cpt_run(&out, "'%s' top -sample_index nope '%s'", CLI, p), 2);
    assert_non_null(strstr(out, "no such sample type"));
    free(out);
    assert_int_equal(cpt_run(&out, "'%s' top /etc/hostname", CLI), 1);
    assert_non_null(strstr(out, "not a profile"));
    free(out);
    assert_int_equal(cpt_run(&out, "'%s' top /no/such/file", CLI), 1);
    free(out);
    free(p);
}

/* ------------------------------------------------------ http, service */

static void test_http_while_running(void **state)
{
    (void)state;
    char *out;
    int port = 20000 + (int)(getpid() % 20000);
    int rc = cpt_run(&out, "'%s' run -http 127.0.0.1:%d -- '%s' sleep 3000 & "
                           "sleep 1; curl -s -o /dev/null -w 'status=%%{http_code}\\n' "
                           "http://127.0.0.1:%d/debug/pprof/; wait",
                     CLI, port, PRELOAD_TARGET, port);
    assert_int_equal(rc, 0);
    if (!strstr(out, "status=200"))
        fail_msg("no index from the preloaded server:\n%s", out);
    free(out);
}

static void test_service_dir(void **state)
{
    (void)state;
    char *out;
    int rc = cpt_run(&out, "cd '%s' && '%s' run -service-dir svc -service-profiles "
                           "heap,threads -service-intervals 0 -- '%s' exit 50",
                     dir, CLI, PRELOAD_TARGET);
    assert_int_equal(rc, 3);
    free(out);
    assert_int_equal(cpt_run(&out, "ls '%s/svc'", dir), 0);
    if (!strstr(out, "heap.") || !strstr(out, "threads."))
        fail_msg("service folder holds:\n%s", out);
    free(out);
}

/* Heap sampling is paid for only when something can read it. */
static void test_heap_sampling_only_when_asked(void **state)
{
    (void)state;
    struct { const char *env; const char *want; } cases[] = {
        {"CPPROF_CPUPROFILE=/dev/null", "heap rate 0\n"},
        {"CPPROF_CPUPROFILE=/dev/null CPPROF_MEMPROFILERATE=4096", "heap rate 4096\n"},
        {"CPPROF_MEMPROFILE=/dev/null", "heap rate 524288\n"},
        {"CPPROF_HTTP=127.0.0.1:0", "heap rate 524288\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out;
        int rc = cpt_run(&out, "%s LD_PRELOAD='%s' '%s' heaprate", cases[i].env,
                         LIB, PRELOAD_TARGET);
        assert_int_equal(rc, 0);
        if (!strstr(out, cases[i].want))
            fail_msg("%s: want %s, got:\n%s", cases[i].env, cases[i].want, out);
        free(out);
    }
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_sampling_only_when_asked),
        T(test_each_flag_sets_its_variable),
        T(test_flag_errors),
        T(test_env_bad_values),
        T(test_exit),
        T(test_return_from_main),
        T(test_sigint),
        T(test_sigterm),
        T(test_daemon_closing_descriptors),
        T(test_fork_pid),
        T(test_fork_parent_only),
        T(test_exec_carries_nothing),
        T(test__exit_writes_nothing),
        T(test_program_installs_sigprof_handler),
        T(test_other_profiles),
        T(test_static_program_refused),
        T(test_setuid_program_explained),
        T(test_real_sort),
        T(test_real_python),
        T(test_real_gzip),
        T(test_real_cxx_threads_exceptions),
        T(test_top_matches_pprof),
        T(test_http_while_running),
        T(test_service_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
