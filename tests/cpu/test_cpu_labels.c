/*
 * tests/cpu/test_cpu_labels.c - profiler labels: the set/get/clear/do
 * API, inheritance by new threads, and labels on CPU samples that
 * `go tool pprof -tagfocus` selects by.
 */
#include "support.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpprof.h"
#include "cpu_util.h"

static void expect_label(const char *key, const char *want)
{
    char buf[64];
    int n = cpprof_labels_get(key, buf, sizeof(buf));
    if (!want) {
        assert_int_equal(n, -ENOENT);
        return;
    }
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);
}

static void inner(void *arg)
{
    expect_label("job", "inner");   /* overridden */
    expect_label("user", "alice");  /* inherited from the outer level */
    cpprof_labels_set("scratch", "x"); /* discarded when do returns */
    (*(int *)arg)++;
}

static void outer(void *arg)
{
    expect_label("job", "outer");
    const char *kv[] = { "job", "inner", NULL };
    assert_int_equal(cpprof_labels_do(kv, inner, arg), 0);
    expect_label("job", "outer");
    expect_label("scratch", NULL);
}

static void test_labels_api(void **state)
{
    cpprof_labels_clear();
    expect_label("user", NULL);
    assert_int_equal(cpprof_labels_set("user", "alice"), 0);
    assert_int_equal(cpprof_labels_set("user", "alice"), 0);
    expect_label("user", "alice");
    char small[3];
    assert_int_equal(cpprof_labels_get("user", small, sizeof(small)), 5);
    assert_string_equal(small, "al");
    int calls = 0;
    const char *kv[] = { "job", "outer", NULL };
    assert_int_equal(cpprof_labels_do(kv, outer, &calls), 0);
    assert_int_equal(calls, 1);
    expect_label("job", NULL);
    expect_label("user", "alice");
    /* Bad input: errors, and fn is not called. */
    const char *odd[] = { "k", NULL };
    const char *empty_key[] = { "", "v", NULL };
    assert_int_equal(cpprof_labels_do(odd, outer, &calls), -EINVAL);
    assert_int_equal(cpprof_labels_do(empty_key, outer, &calls), -EINVAL);
    assert_int_equal(cpprof_labels_do(NULL, outer, &calls), -EINVAL);
    assert_int_equal(cpprof_labels_do(kv, NULL, &calls), -EINVAL);
    assert_int_equal(calls, 1);
    assert_int_equal(cpprof_labels_set(NULL, "v"), -EINVAL);
    assert_int_equal(cpprof_labels_set("", "v"), -EINVAL);
    assert_int_equal(cpprof_labels_get(NULL, small, 3), -EINVAL);
    assert_int_equal(cpprof_labels_get("user", NULL, 3), -EINVAL);
    assert_int_equal(cpprof_labels_get("user", NULL, 0), 5);
    assert_int_equal(cpprof_labels_set("user", NULL), 0); /* removes */
    expect_label("user", NULL);
    cpprof_labels_clear();
}

static void *child_labels(void *arg)
{
    char buf[16];
    *(int *)arg = cpprof_labels_get("tenant", buf, sizeof(buf)) == 4 &&
                  strcmp(buf, "acme") == 0;
    return NULL;
}

static void test_new_thread_inherits_labels(void **state)
{
    assert_int_equal(cpprof_labels_set("tenant", "acme"), 0);
    int ok = 0;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, child_labels, &ok), 0);
    pthread_join(t, NULL);
    assert_true(ok);
    cpprof_labels_clear();
}

static void spin_300ms(void)
{
    double t0 = cpt_cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    while (cpt_cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - t0 < 0.3)
        cpt_spin(20000);
}

/* The empty asm after the call keeps it from becoming a tail call, which
 * would take these frames off the stack. */
__attribute__((noinline)) void cpt_label_work_a(void *arg)
{
    spin_300ms();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void cpt_label_work_b(void *arg)
{
    spin_300ms();
    __asm__ volatile("" ::: "memory");
}

static void *labelled_worker(void *arg)
{
    const char *kv[] = { "worker", arg, NULL };
    cpprof_labels_do(kv, strcmp(arg, "a") == 0 ? cpt_label_work_a
                                               : cpt_label_work_b, NULL);
    return NULL;
}

static void test_tagfocus_selects_labelled_samples(void **state)
{
    char *dir = cpt_tmpdir(), *path = cpt_path(dir, "cpu.pb.gz");
    assert_int_equal(cpprof_cpu_set_rate(1000), 0);
    cpt_cpu_start_file(path);
    pthread_t a, b;
    assert_int_equal(pthread_create(&a, NULL, labelled_worker, "a"), 0);
    assert_int_equal(pthread_create(&b, NULL, labelled_worker, "b"), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    cp_decoded *d = cpt_cpu_stop_decode(path);
    /* Every sample under work_b carries worker=b, and only those. */
    size_t labelled = 0;
    for (size_t i = 0; i < d->nsamples; i++) {
        const cp_dec_sample *s = &d->samples[i];
        for (size_t k = 0; k < s->nlabels; k++) {
            assert_string_equal(s->labels[k].key, "worker");
            labelled++;
        }
    }
    assert_true(labelled > 0);
    char *out = cpt_pprof("-tagfocus=worker=b -top", path);
    assert_null(strstr(out, "cpt_label_work_a"));
    assert_non_null(strstr(out, "cpt_label_work_b"));
    char *traces = cpt_pprof("-tagfocus=worker=a -traces", path);
    assert_null(strstr(traces, "cpt_label_work_b"));
    assert_non_null(strstr(traces, "cpt_label_work_a"));
    free(traces);
    free(out);
    cp_decoded_free(d);
    cpt_tmpdir_remove(dir);
    free(path);
    free(dir);
}

int main(void)
{
    cpt_require_go();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_api),
        cmocka_unit_test(test_new_thread_inherits_labels),
        cmocka_unit_test(test_tagfocus_selects_labelled_samples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
