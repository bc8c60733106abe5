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
        cmocka_unit_test(test_bad_rate_env_is_reported_not_fatal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
