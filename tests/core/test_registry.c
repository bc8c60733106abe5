/*
 * test_registry.c - the registry's contract: names, built-ins, aliases,
 * listing order, add/remove/count semantics, skip, and error paths that
 * leave the registry intact.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cpprof.h>

#include "core/registry.h"
#include "core/writer.h"
#include "model/profile.h"
#include "model/symbolize.h"
#include "support.h"

static void test_invalid_names_are_rejected(void **state)
{
    (void)state;
    cpprof_profile *p = (cpprof_profile *)1;
    assert_int_equal(cpprof_profile_new(NULL, &p), -EINVAL);
    assert_null(p);
    assert_int_equal(cpprof_profile_new("", &p), -EINVAL);
    assert_int_equal(cpprof_profile_new("has space", &p), -EINVAL);
    assert_int_equal(cpprof_profile_new("tab\there", &p), -EINVAL);
    assert_int_equal(cpprof_profile_new("ok.name", NULL), -EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(cpprof_profile_new(longname, &p), -EINVAL);
    assert_string_equal(cpprof_strerror(-EINVAL), "invalid argument");
}

static void test_builtin_names_are_reserved(void **state)
{
    (void)state;
    const char *taken[] = {"heap", "allocs", "threads", "goroutine",
                           "threadcreate", "block", "mutex", "profile"};
    cpprof_profile *p;
    for (size_t i = 0; i < sizeof taken / sizeof taken[0]; i++)
        assert_int_equal(cpprof_profile_new(taken[i], &p), -EEXIST);
}

static void test_duplicate_name_is_an_error(void **state)
{
    (void)state;
    cpprof_profile *a, *b;
    assert_int_equal(cpprof_profile_new("test.dup", &a), 0);
    assert_int_equal(cpprof_profile_new("test.dup", &b), -EEXIST);
    assert_ptr_equal(cpprof_profile_lookup("test.dup"), a);
    assert_string_equal(cpprof_profile_name(a), "test.dup");
}

static void test_lookup_builtins_and_goroutine_alias(void **state)
{
    (void)state;
    cpprof_profile *threads = cpprof_profile_lookup("threads");
    assert_non_null(threads);
    assert_ptr_equal(cpprof_profile_lookup("goroutine"), threads);
    assert_non_null(cpprof_profile_lookup("heap"));
    assert_non_null(cpprof_profile_lookup("allocs"));
    assert_non_null(cpprof_profile_lookup("threadcreate"));
    assert_non_null(cpprof_profile_lookup("block"));
    assert_non_null(cpprof_profile_lookup("mutex"));
    assert_null(cpprof_profile_lookup("nosuch"));
    assert_null(cpprof_profile_lookup(NULL));
    assert_non_null(cp_registry_builtin(threads));
    assert_true(strlen(cp_registry_description(threads)) > 0);
}

static void test_list_is_sorted_by_name(void **state)
{
    (void)state;
    cpprof_profile *p;
    assert_int_equal(cpprof_profile_new("zzz.last", &p), 0);
    assert_int_equal(cpprof_profile_new("aaa.first", &p), 0);
    size_t n = cpprof_profile_list(NULL, 0);
    assert_true(n >= 8);
    cpprof_profile **all = calloc(n, sizeof *all);
    assert_int_equal(cpprof_profile_list(all, n), n);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(cpprof_profile_name(all[i - 1]),
                           cpprof_profile_name(all[i])) < 0);
    assert_string_equal(cpprof_profile_name(all[0]), "aaa.first");
    /* A short array gets the first entries and the full count. */
    cpprof_profile *two[2];
    assert_int_equal(cpprof_profile_list(two, 2), n);
    assert_ptr_equal(two[0], all[0]);
    free(all);
}

static void test_add_remove_count(void **state)
{
    (void)state;
    cpprof_profile *p;
    assert_int_equal(cpprof_profile_new("test.count", &p), 0);
    int values[3];
    assert_int_equal(cpprof_profile_count(p), 0);
    assert_int_equal(cpprof_profile_add(p, &values[0], 0), 0);
    assert_int_equal(cpprof_profile_add(p, &values[1], 0), 0);
    assert_int_equal(cpprof_profile_add(p, &values[1], 0), -EEXIST);
    assert_int_equal(cpprof_profile_count(p), 2);
    assert_int_equal(cpprof_profile_remove(p, &values[2]), 0); /* absent */
    assert_int_equal(cpprof_profile_count(p), 2);
    assert_int_equal(cpprof_profile_remove(p, &values[0]), 0);
    assert_int_equal(cpprof_profile_count(p), 1);
    assert_int_equal(cpprof_profile_add(p, &values[0], 0), 0); /* re-add */
    assert_int_equal(cpprof_profile_count(p), 2);
    assert_int_equal(cpprof_profile_add(p, NULL, 0), -EINVAL);
    assert_int_equal(cpprof_profile_add(p, &values[2], -1), -EINVAL);
    assert_int_equal(cpprof_profile_add(NULL, &values[2], 0), -EINVAL);
    assert_int_equal(cpprof_profile_count(NULL), -EINVAL);
}

static void test_builtins_refuse_add_and_remove(void **state)
{
    (void)state;
    int v;
    const char *names[] = {"heap", "allocs", "threads", "threadcreate",
                           "block", "mutex"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        cpprof_profile *p = cpprof_profile_lookup(names[i]);
        assert_int_equal(cpprof_profile_add(p, &v, 0), -EPERM);
        assert_int_equal(cpprof_profile_remove(p, &v), -EPERM);
    }
}

/* The functions whose frames the skip test looks for. */
__attribute__((noinline)) int added_here(cpprof_profile *p, const void *v,
                                         int skip)
{
    int rc = cpprof_profile_add(p, v, skip);
    __asm__ volatile("" ::: "memory"); /* no tail call */
    return rc;
}

__attribute__((noinline)) int caller_of_added_here(cpprof_profile *p,
                                                   const void *v, int skip)
{
    int rc = added_here(p, v, skip);
    __asm__ volatile("" ::: "memory");
    return rc;
}

static const char *leaf_function(cpprof_profile *p)
{
    cp_profile *m;
    assert_int_equal(cp_registry_build(p, &m), 0);
    assert_int_equal(m->nsamples, 1);
    assert_false(m->leaf_is_pc);
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[8];
    size_t n = cp_symbolize(s, m->samples[0].pcs[0] - 1, f, 8);
    static char name[256];
    snprintf(name, sizeof name, "%s", n ? f[n - 1].function : "?");
    cp_symbolizer_release(s);
    cp_profile_free(m);
    return name;
}

static void test_skip_has_go_semantics(void **state)
{
    (void)state;
    cpprof_profile *p0, *p1, *big;
    assert_int_equal(cpprof_profile_new("test.skip0", &p0), 0);
    assert_int_equal(cpprof_profile_new("test.skip1", &p1), 0);
    assert_int_equal(cpprof_profile_new("test.skipbig", &big), 0);
    int v;
    assert_int_equal(caller_of_added_here(p0, &v, 0), 0);
    assert_int_equal(caller_of_added_here(p1, &v, 1), 0);
    assert_string_equal(leaf_function(p0), "added_here");
    assert_string_equal(leaf_function(p1), "caller_of_added_here");
    /* A skip deeper than the stack still records the value. */
    assert_int_equal(caller_of_added_here(big, &v, 60), 0);
    assert_int_equal(cpprof_profile_count(big), 1);
}

static int fail_after_some(void *arg, const void *data, size_t len)
{
    (void)data;
    size_t *budget = arg;
    if (*budget < len)
        return -EIO;
    *budget -= len;
    return 0;
}

static void test_failing_writer_leaves_registry_intact(void **state)
{
    (void)state;
    cpprof_profile *p;
    assert_int_equal(cpprof_profile_new("test.failwrite", &p), 0);
    static int vals[100];
    for (int i = 0; i < 100; i++)
        assert_int_equal(caller_of_added_here(p, &vals[i], 0), 0);
    for (int debug = 0; debug <= 1; debug++) {
        size_t budget = 0;
        cpprof_writer *w;
        assert_int_equal(cpprof_writer_open_callback(&w, fail_after_some, &budget), 0);
        assert_int_equal(cpprof_profile_write(p, w, debug), -EIO);
        assert_int_equal(cpprof_writer_close(w), -EIO);
    }
    /* The profile is unchanged and writes fine to a working writer. */
    assert_int_equal(cpprof_profile_count(p), 100);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cpprof_profile_write(p, w, 1), 0);
    size_t len;
    const char *text = cpprof_writer_data(w, &len);
    assert_true(len > 0);
    assert_memory_equal(text, "test.failwrite profile: total 100\n", 34);
    assert_non_null(strstr(text, "\n100 @ 0x"));
    assert_non_null(strstr(text, "added_here"));
    assert_int_equal(cpprof_writer_close(w), 0);

    /* A pipe whose reader is gone: EPIPE, not a SIGPIPE death. */
    signal(SIGPIPE, SIG_IGN);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    assert_int_equal(cpprof_writer_open_fd(&w, fds[1]), 0);
    assert_int_equal(cpprof_profile_write(p, w, 0), -EPIPE);
    cpprof_writer_close(w);
    close(fds[1]);
    assert_int_equal(cpprof_profile_count(p), 100);
}

static void test_written_profile_parses_with_go(void **state)
{
    (void)state;
    cpt_require_go();
    cpprof_profile *p;
    assert_int_equal(cpprof_profile_new("test.go", &p), 0);
    static int vals[30];
    for (int i = 0; i < 20; i++)
        assert_int_equal(caller_of_added_here(p, &vals[i], 0), 0);
    for (int i = 20; i < 30; i++)
        assert_int_equal(added_here(p, &vals[i], 1), 0);
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "test.go.pb.gz");
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cpprof_profile_write(p, w, 0), 0);
    assert_int_equal(cpprof_writer_close(w), 0);

    char *top = cpt_pprof("-top", path);
    assert_non_null(strstr(top, "Showing nodes accounting for 30, 100% of 30 total"));
    assert_non_null(strstr(top, "added_here"));
    free(top);
    char *traces = cpt_pprof("-traces -lines", path);
    assert_non_null(strstr(traces, "test_registry.c:"));
    free(traces);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_names_are_rejected),
        cmocka_unit_test(test_builtin_names_are_reserved),
        cmocka_unit_test(test_duplicate_name_is_an_error),
        cmocka_unit_test(test_lookup_builtins_and_goroutine_alias),
        cmocka_unit_test(test_list_is_sorted_by_name),
        cmocka_unit_test(test_add_remove_count),
        cmocka_unit_test(test_builtins_refuse_add_and_remove),
        cmocka_unit_test(test_skip_has_go_semantics),
        cmocka_unit_test(test_failing_writer_leaves_registry_intact),
        cmocka_unit_test(test_written_profile_parses_with_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
