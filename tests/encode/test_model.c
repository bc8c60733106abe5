/*
 * tests/encode/test_model.c - the stack table (model/stack_table.h) and
 * the profile model (model/profile.h): deduplication, stable pointers,
 * concurrent interning, add / add_merged / subtract semantics, and bad
 * arguments.
 */
#include "support.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "model/profile.h"
#include "model/stack_table.h"

static void test_stack_table_dedup(void **state)
{
    cp_stack_table *t;
    assert_int_equal(cp_stack_table_new(&t), 0);
    uintptr_t a[] = {1, 2, 3}, b[] = {1, 2, 4}, c[] = {1, 2};
    uint32_t ia, ib, ic, ia2;
    assert_int_equal(cp_stack_table_intern(t, a, 3, &ia), 0);
    assert_int_equal(cp_stack_table_intern(t, b, 3, &ib), 0);
    assert_int_equal(cp_stack_table_intern(t, c, 2, &ic), 0);
    uintptr_t copy[] = {1, 2, 3};
    assert_int_equal(cp_stack_table_intern(t, copy, 3, &ia2), 0);
    assert_int_equal(ia, ia2);
    assert_int_not_equal(ia, ib);
    assert_int_not_equal(ia, ic);
    assert_int_equal(cp_stack_table_size(t), 3);
    const uintptr_t *pcs;
    assert_int_equal(cp_stack_table_get(t, ib, &pcs), 3);
    assert_memory_equal(pcs, b, sizeof b);
    const uintptr_t *before = pcs;
    /* Pointers stay valid while the table grows. */
    for (uintptr_t i = 0; i < 20000; i++) {
        uintptr_t s[4] = {i, i + 1, i * 3, 77};
        uint32_t id;
        assert_int_equal(cp_stack_table_intern(t, s, 4, &id), 0);
    }
    assert_int_equal(cp_stack_table_get(t, ib, &pcs), 3);
    assert_ptr_equal(pcs, before);
    assert_memory_equal(pcs, b, sizeof b);
    assert_int_equal(cp_stack_table_size(t), 20003);
    assert_int_equal(cp_stack_table_get(t, 0xfffffff0u, &pcs), 0);

    /* Deep stacks are clamped. */
    uintptr_t deep[CP_STACK_MAX_DEPTH + 10];
    for (size_t i = 0; i < CP_STACK_MAX_DEPTH + 10; i++)
        deep[i] = 1000 + i;
    uint32_t id;
    assert_int_equal(cp_stack_table_intern(t, deep, CP_STACK_MAX_DEPTH + 10,
                                           &id), 0);
    assert_int_equal(cp_stack_table_get(t, id, &pcs), CP_STACK_MAX_DEPTH);
    cp_stack_table_free(t);
}

#define NTHREADS 4
#define PER_THREAD 20000
#define SHARED 500

typedef struct worker {
    cp_stack_table *t;
    int index;
    uint32_t shared_ids[SHARED];
} worker;

/* Every thread interns the same SHARED stacks and its own private ones. */
static void *intern_worker(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        uintptr_t s[8];
        bool shared = i % 2 == 0;
        uintptr_t key = shared ? (uintptr_t)(i / 2 % SHARED)
                               : (uintptr_t)(w->index + 1) * 1000000 + i;
        for (int k = 0; k < 8; k++)
            s[k] = key * 31 + (uintptr_t)k;
        uint32_t id;
        if (cp_stack_table_intern(w->t, s, 8, &id) != 0)
            return (void *)1;
        if (shared)
            w->shared_ids[i / 2 % SHARED] = id;
        const uintptr_t *got;
        if (cp_stack_table_get(w->t, id, &got) != 8 || got[7] != s[7])
            return (void *)1;
    }
    return NULL;
}

static void test_stack_table_concurrent(void **state)
{
    cp_stack_table *t;
    assert_int_equal(cp_stack_table_new(&t), 0);
    worker w[NTHREADS];
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i].t = t;
        w[i].index = i;
        assert_int_equal(pthread_create(&th[i], NULL, intern_worker, &w[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    /* Exactly one id per distinct stack, the same in every thread. */
    assert_int_equal(cp_stack_table_size(t),
                     SHARED + NTHREADS * PER_THREAD / 2);
    for (int i = 1; i < NTHREADS; i++)
        assert_memory_equal(w[i].shared_ids, w[0].shared_ids,
                            sizeof w[0].shared_ids);
    cp_stack_table_free(t);
}

static const cp_value_type two_types[] = {{"alloc_objects", "count"},
                                          {"alloc_space", "bytes"}};
static const cp_value_type period = {"space", "bytes"};

static cp_profile *new2(void)
{
    cp_profile *p = cp_profile_new("heap", two_types, 2, period, 512 * 1024);
    assert_non_null(p);
    return p;
}

static void test_profile_add(void **state)
{
    cp_profile *p = new2();
    assert_string_equal(p->name, "heap");
    assert_int_equal(p->ntypes, 2);
    assert_string_equal(p->types[1].unit, "bytes");
    assert_string_equal(p->period_type.type, "space");
    assert_int_equal(p->period, 512 * 1024);
    uintptr_t s[] = {10, 20, 30};
    int64_t v[] = {1, 100};
    cp_label l[] = {{.key = "k", .str = "v"}, {.key = "n", .num = 5, .unit = "bytes"}};
    assert_int_equal(cp_profile_add(p, s, 3, v, l, 2), 0);
    assert_int_equal(cp_profile_add(p, s, 3, v, NULL, 0), 0);
    assert_int_equal(p->nsamples, 2);
    /* Samples own copies, and equal stacks share one array. */
    s[0] = 99;
    v[0] = 7;
    assert_true(p->samples[0].pcs[0] == 10);
    assert_ptr_equal(p->samples[0].pcs, p->samples[1].pcs);
    assert_int_equal(p->samples[0].values[0], 1);
    assert_int_equal(p->samples[0].nlabels, 2);
    assert_string_equal(p->samples[0].labels[0].str, "v");
    assert_null(p->samples[0].labels[1].str);
    assert_int_equal(p->samples[0].labels[1].num, 5);
    assert_string_equal(p->samples[0].labels[1].unit, "bytes");
    assert_int_equal(cp_profile_add_comment(p, "hello"), 0);
    assert_int_equal(cp_profile_set_default_type(p, "alloc_space"), 0);
    assert_string_equal(p->comments[0], "hello");
    assert_string_equal(p->default_type, "alloc_space");

    /* Bad arguments are errors, not crashes. */
    assert_int_equal(cp_profile_add(NULL, s, 3, v, NULL, 0), -EINVAL);
    assert_int_equal(cp_profile_add(p, NULL, 3, v, NULL, 0), -EINVAL);
    assert_int_equal(cp_profile_add(p, s, 3, NULL, NULL, 0), -EINVAL);
    assert_int_equal(cp_profile_add(p, s, 3, v, NULL, 1), -EINVAL);
    cp_label nokey = {.str = "x"};
    assert_int_equal(cp_profile_add(p, s, 3, v, &nokey, 1), -EINVAL);
    assert_int_equal(cp_profile_add_comment(p, NULL), -EINVAL);
    assert_int_equal(p->nsamples, 2);
    /* An empty stack is a valid sample. */
    assert_int_equal(cp_profile_add(p, NULL, 0, v, NULL, 0), 0);
    cp_profile_free(p);
}

static void test_profile_add_merged(void **state)
{
    cp_profile *p = new2();
    uintptr_t s1[] = {1, 2}, s2[] = {1, 3};
    int64_t v[] = {1, 10};
    cp_label ab[] = {{.key = "a", .str = "1"}, {.key = "b", .str = "2"}};
    cp_label ba[] = {{.key = "b", .str = "2"}, {.key = "a", .str = "1"}};
    cp_label ac[] = {{.key = "a", .str = "1"}, {.key = "c", .str = "2"}};
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(cp_profile_add_merged(p, s1, 2, v, NULL, 0), 0);
        assert_int_equal(cp_profile_add_merged(p, s2, 2, v, NULL, 0), 0);
        assert_int_equal(cp_profile_add_merged(p, s1, 2, v, ab, 2), 0);
        assert_int_equal(cp_profile_add_merged(p, s1, 2, v, ba, 2), 0);
        assert_int_equal(cp_profile_add_merged(p, s1, 2, v, ac, 2), 0);
    }
    /* {} on s1, {} on s2, {a,b} (either order) on s1, {a,c} on s1. */
    assert_int_equal(p->nsamples, 4);
    assert_int_equal(p->samples[0].values[0], 1000);
    assert_int_equal(p->samples[0].values[1], 10000);
    assert_int_equal(p->samples[2].values[0], 2000);
    assert_int_equal(p->samples[3].values[0], 1000);
    /* Numeric labels differ by value and by unit. */
    cp_label n1 = {.key = "n", .num = 1, .unit = "bytes"};
    cp_label n2 = {.key = "n", .num = 2, .unit = "bytes"};
    cp_label n1s = {.key = "n", .num = 1, .unit = "seconds"};
    assert_int_equal(cp_profile_add_merged(p, s1, 2, v, &n1, 1), 0);
    assert_int_equal(cp_profile_add_merged(p, s1, 2, v, &n2, 1), 0);
    assert_int_equal(cp_profile_add_merged(p, s1, 2, v, &n1s, 1), 0);
    assert_int_equal(cp_profile_add_merged(p, s1, 2, v, &n1, 1), 0);
    assert_int_equal(p->nsamples, 7);
    assert_int_equal(p->samples[4].values[0], 2);
    cp_profile_free(p);
}

static void test_profile_subtract(void **state)
{
    cp_profile *base = new2(), *p = new2();
    uintptr_t s1[] = {1, 2}, s2[] = {1, 3}, s3[] = {4}, s4[] = {5};
    int64_t b1[] = {5, 50}, b2[] = {3, 30}, b4[] = {9, 90};
    int64_t p1[] = {8, 80}, p2[] = {3, 10}, p3[] = {1, 1};
    cp_profile_add(base, s1, 2, b1, NULL, 0);
    cp_profile_add(base, s2, 2, b2, NULL, 0);
    cp_profile_add(base, s4, 1, b4, NULL, 0); /* gone from p: ignored */
    cp_profile_add(p, s1, 2, p1, NULL, 0);
    cp_profile_add(p, s2, 2, p2, NULL, 0);
    cp_profile_add(p, s3, 1, p3, NULL, 0);
    /* Value 0 accumulates, value 1 is a level (kept as in p). */
    assert_int_equal(cp_profile_subtract(p, base, 1u << 0), 0);
    assert_int_equal(p->nsamples, 3);
    assert_int_equal(p->samples[0].values[0], 3);
    assert_int_equal(p->samples[0].values[1], 80);
    assert_int_equal(p->samples[1].values[0], 0);
    assert_int_equal(p->samples[1].values[1], 10);
    assert_int_equal(p->samples[2].values[0], 1);

    /* Both cumulative: s2 drops to all-zero... after a second subtract of
     * a base equal to p, everything is zero and dropped. */
    cp_profile *q = new2();
    cp_profile_add(q, s1, 2, p1, NULL, 0);
    cp_profile_add(q, s2, 2, p2, NULL, 0);
    cp_profile *same = new2();
    cp_profile_add(same, s2, 2, p2, NULL, 0);
    assert_int_equal(cp_profile_subtract(q, same, 3), 0);
    assert_int_equal(q->nsamples, 1);
    assert_true(q->samples[0].pcs[1] == 2);
    /* The index is rebuilt after drops: merging still finds s1. */
    assert_int_equal(cp_profile_add_merged(q, s1, 2, p1, NULL, 0), 0);
    assert_int_equal(q->nsamples, 1);
    assert_int_equal(q->samples[0].values[0], 16);

    /* Labels are part of the key. */
    cp_profile *lp = new2(), *lb = new2();
    cp_label l = {.key = "x", .str = "y"};
    cp_profile_add(lp, s1, 2, p1, &l, 1);
    cp_profile_add(lb, s1, 2, p1, NULL, 0);
    assert_int_equal(cp_profile_subtract(lp, lb, 3), 0);
    assert_int_equal(lp->nsamples, 1);
    assert_int_equal(lp->samples[0].values[0], 8);

    /* Mismatched types. */
    static const cp_value_type one[] = {{"samples", "count"}};
    cp_profile *other = cp_profile_new("x", one, 1, period, 1);
    assert_int_equal(cp_profile_subtract(p, other, 1), -EINVAL);
    assert_int_equal(cp_profile_subtract(p, NULL, 1), -EINVAL);
    cp_profile_free(other);
    cp_profile_free(lp);
    cp_profile_free(lb);
    cp_profile_free(q);
    cp_profile_free(same);
    cp_profile_free(base);
    cp_profile_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_table_dedup),
        cmocka_unit_test(test_stack_table_concurrent),
        cmocka_unit_test(test_profile_add),
        cmocka_unit_test(test_profile_add_merged),
        cmocka_unit_test(test_profile_subtract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
