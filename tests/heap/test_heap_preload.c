/*
 * tests/heap/test_heap_preload.c - LD_PRELOAD=libcpprof.so into programs
 * nobody here wrote: /usr/bin/sort on a generated multi-megabyte file and
 * python3 allocating.  Both must exit normally with correct output, and
 * CPPROF_MEMPROFILE must leave a heap profile that go tool pprof reads
 * with real function names.  A bad CPPROF_MEMPROFILERATE is reported,
 * not fatal.  Needs the interposition: labelled no-sanitizer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static const char *lib(void)
{
    return CPPROF_TEST_BUILD_DIR "/libcpprof.so";
}

static void test_sort_under_preload(void **state)
{
    (void)state;
    cpt_require_go();
    char *dir = cpt_tmpdir();
    char *out = NULL;
    /* ~6 MB of shuffled lines. */
    assert_int_equal(cpt_run(NULL, "seq 1 800000 | shuf --random-source=/dev/zero"
                                   " > %s/in.txt", dir), 0);
    int rc = cpt_run(&out, "CPPROF_MEMPROFILE=%s/sort.pb.gz LD_PRELOAD=%s "
                           "/usr/bin/sort -n %s/in.txt > %s/sorted.txt",
                     dir, lib(), dir, dir);
    assert_int_equal(rc, 0);
    free(out);
    assert_int_equal(cpt_run(NULL, "seq 1 800000 | cmp - %s/sorted.txt", dir), 0);
    char *prof = cpt_path(dir, "sort.pb.gz");
    out = cpt_pprof("-top -sample_index=alloc_space", prof);
    /* sort itself is stripped; the C library's frames carry names. */
    assert_non_null(strstr(out, "__libc_start_main"));
    assert_non_null(strstr(out, "Type: alloc_space"));
    free(out);
    free(prof);
    cpt_tmpdir_remove(dir);
    free(dir);
}

static void test_python_under_preload(void **state)
{
    (void)state;
    cpt_require_go();
    char *dir = cpt_tmpdir();
    char *out = NULL;
    int rc = cpt_run(&out,
                     "CPPROF_MEMPROFILE=%s/py.pb.gz CPPROF_MEMPROFILERATE=65536 "
                     "LD_PRELOAD=%s python3 -c 'x=[bytearray(3000) for i in "
                     "range(20000)]; print(sum(len(b) for b in x))'",
                     dir, lib());
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "60000000"));
    free(out);
    char *prof = cpt_path(dir, "py.pb.gz");
    out = cpt_pprof("-top -nodecount=200 -sample_index=alloc_space", prof);
    assert_non_null(strstr(out, "PyByteArray_Resize"));
    free(out);
    free(prof);
    cpt_tmpdir_remove(dir);
    free(dir);
}

/*
 * With everything the environment can ask for turned on (CPU, heap at
 * rate 1, block, mutex and threads profiles, the HTTP server and the
 * periodic service), nothing the profiler itself allocates (the
 * constructor, its threads, the start hooks of the program's threads)
 * shows in the heap profile: no frame of ours but cpprof_thread_start,
 * the frame below every thread the program starts.
 */
static void test_preload_allocations_are_not_sampled(void **state)
{
    (void)state;
    cpt_require_go();
    char *dir = cpt_tmpdir();
    char *out = NULL;
    int rc = cpt_run(&out,
                     "CPPROF_MEMPROFILE=%s/mem.pb.gz CPPROF_MEMPROFILERATE=1 "
                     "CPPROF_CPUPROFILE=%s/cpu.pb.gz "
                     "CPPROF_BLOCKPROFILE=%s/block.pb.gz "
                     "CPPROF_MUTEXPROFILE=%s/mutex.pb.gz "
                     "CPPROF_THREADSPROFILE=%s/threads.pb.gz "
                     "CPPROF_HTTP=127.0.0.1:0 CPPROF_SERVICE_FOLDER=%s/svc "
                     "CPPROF_SERVICE_PROFILES=heap,threads LD_PRELOAD=%s "
                     "python3 -c 'import threading; t = threading.Thread("
                     "target=lambda: sum(range(10000))); t.start(); t.join(); "
                     "print(\"done\")'",
                     dir, dir, dir, dir, dir, dir, lib());
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "done"));
    free(out);
    char *prof = cpt_path(dir, "mem.pb.gz");
    out = cpt_pprof("-traces -sample_index=alloc_objects", prof);
    assert_non_null(strstr(out, "PyThread_start_new_thread")); /* sampled */
    int ours = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        const char *name = line + strspn(line, " 0123456789");
        if ((strncmp(name, "cp_", 3) == 0 ||
             strncmp(name, "cpprof_", 7) == 0 ||
             strncmp(name, "preload_", 8) == 0) &&
            strncmp(name, "cpprof_thread_start", 19) != 0) {
            printf("a frame of the profiler in the heap profile: %s\n", name);
            ours++;
        }
    }
    free(out);
    free(prof);
    cpt_tmpdir_remove(dir);
    free(dir);
    assert_int_equal(ours, 0);
}

/* The bytes pprof finds for sample type index at sites through focus. */
static long long pprof_bytes(const char *prof, const char *index,
                             const char *focus)
{
    char args[256];
    snprintf(args, sizeof args, "-top -unit=B -sample_index=%s -focus=%s",
             index, focus);
    char *out = cpt_pprof(args, prof);
    const char *at = strstr(out, "Showing nodes accounting for ");
    long long bytes = -1; /* no totals line: fails every comparison */
    if (at)
        bytes = strtoll(at + strlen("Showing nodes accounting for "), NULL,
                        10);
    free(out);
    return bytes;
}

/*
 * C++ allocations under glibc, jemalloc and tcmalloc: the last two define
 * operator new and delete themselves, straight on their allocator, so
 * only libcpprof's own definitions see them.  At rate 1 the site that
 * keeps 1,692,000 bytes through new[], aligned new and nothrow new shows
 * exactly that live at exit, and the site that deletes what it allocates
 * shows nothing live but its allocations.
 */
static void test_cxx_new_with_every_allocator(void **state)
{
    (void)state;
    cpt_require_go();
    const char *allocators[] = {
        "", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
        "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    };
    char *dir = cpt_tmpdir();
    for (size_t i = 0; i < sizeof allocators / sizeof *allocators; i++) {
        char *out = NULL;
        int rc = cpt_run(&out,
                         "CPPROF_MEMPROFILE=%s/cxx%zu.pb.gz "
                         "CPPROF_MEMPROFILERATE=1 LD_PRELOAD='%s %s' %s",
                         dir, i, lib(), allocators[i], HEAP_CXX_SITES);
        assert_int_equal(rc, 0);
        assert_non_null(strstr(out, "cxx done"));
        free(out);
        char name[32];
        snprintf(name, sizeof name, "cxx%zu.pb.gz", i);
        char *prof = cpt_path(dir, name);
        long long kept = pprof_bytes(prof, "inuse_space", "cxx_keep_site");
        long long churn_live = pprof_bytes(prof, "inuse_space",
                                           "cxx_churn_site");
        long long churn_all = pprof_bytes(prof, "alloc_space",
                                          "cxx_churn_site");
        printf("allocator '%s': kept %lld, churn live %lld of %lld\n",
               allocators[i], kept, churn_live, churn_all);
        assert_int_equal(kept, 1692000);
        assert_int_equal(churn_live, 0);
        assert_true(churn_all >= 10000 * 32);
        free(prof);
    }
    cpt_tmpdir_remove(dir);
    free(dir);
}

static void test_bad_rate_env_is_reported_not_fatal(void **state)
{
    (void)state;
    char *out = NULL;
    int rc = cpt_run(&out, "CPPROF_MEMPROFILERATE=lots LD_PRELOAD=%s "
                           "/bin/echo fine", lib());
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "fine"));
    assert_non_null(strstr(out, "CPPROF_MEMPROFILERATE"));
    assert_non_null(strstr(out, "lots"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sort_under_preload),
        cmocka_unit_test(test_python_under_preload),
        cmocka_unit_test(test_preload_allocations_are_not_sampled),
        cmocka_unit_test(test_cxx_new_with_every_allocator),
        cmocka_unit_test(test_bad_rate_env_is_reported_not_fatal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
