/*
 * test_blobstore_example.c - the README's example does what the README
 * says: 800 leaked blobs, all attributed to the function that opened them.
 */
#include <stdlib.h>
#include <string.h>

#include "support.h"

static void test_blobstore_reports_800_open_blobs(void **state)
{
    (void)state;
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "blobstore.Open.pb.gz");
    char *out = NULL;
    int rc = cpt_run(&out, "'%s/examples/blobstore/blobstore' '%s'",
                     CPPROF_TEST_BUILD_DIR, path);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "open blobs: 800"));
    free(out);

    cpt_require_go();
    char *top = cpt_pprof("-top", path);
    assert_non_null(strstr(top, "800, 100% of 800 total"));
    /* The flat entry is run_task, the opener, holding all 800. */
    assert_non_null(strstr(top, "run_task"));
    free(top);
    char *traces = cpt_pprof("-traces", path);
    /* -traces prints one block per distinct stack with its count. */
    assert_non_null(strstr(traces, "run_task"));
    size_t blocks = cpt_count_lines_with(traces, "-----------+-------");
    assert_true(blocks >= 1);
    char *p = traces;
    long sum = 0;
    while ((p = strstr(p, "-----------+-------")) != NULL) {
        p = strchr(p, '\n');
        if (!p)
            break;
        sum += strtol(p + 1, NULL, 10);
    }
    assert_int_equal(sum, 800);
    free(traces);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blobstore_reports_800_open_blobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
