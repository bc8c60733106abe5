/*
 * test_custom_concurrency.c - 8 threads x N add/remove pairs on one
 * custom profile with random values (N = 1 M; fewer under sanitizers,
 * which slow each operation 10-50x), then count and write are exact.
 * Also run under TSan (label "tsan").
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpprof.h>

#include "core/registry.h"
#include "model/profile.h"
#include "support.h"

#if defined(__SANITIZE_THREAD__)
#define PAIRS 250000
#elif defined(__SANITIZE_ADDRESS__)
#define PAIRS 250000
#else
#define PAIRS 2500000
#endif
#define THREADS 8
#define KEPT 1000   /* values each thread leaves in the profile */
#define OUTSTANDING 16

static cpprof_profile *profile;

static uint64_t next_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

__attribute__((noinline)) static int kept_add(const void *v)
{
    int rc = cpprof_profile_add(profile, v, 0);
    __asm__ volatile("" ::: "memory");
    return rc;
}

static void *churn(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    uint64_t seed = 0x9e3779b97f4a7c15ULL * (id + 1);
    uintptr_t ring[OUTSTANDING] = {0};
    long failures = 0;
    for (long i = 0; i < PAIRS; i++) {
        /* Thread id in the top byte keeps threads' values apart; bit 55
         * clear keeps them apart from the kept values below. */
        uintptr_t v = (id << 56) | (next_random(&seed) & 0x007ffffffffffff0ULL) | 8;
        size_t slot = (size_t)i % OUTSTANDING;
        if (ring[slot] && cpprof_profile_remove(profile, (void *)ring[slot]) != 0)
            failures++;
        if (cpprof_profile_add(profile, (void *)v, 0) != 0)
            failures++;
        ring[slot] = v;
    }
    for (size_t s = 0; s < OUTSTANDING; s++)
        if (ring[s] && cpprof_profile_remove(profile, (void *)ring[s]) != 0)
            failures++;
    for (uintptr_t k = 0; k < KEPT; k++)
        if (kept_add((void *)((id << 56) | (1ULL << 55) | (k << 4) | 8)) != 0)
            failures++;
    return (void *)failures;
}

static void test_concurrent_add_remove_is_exact(void **state)
{
    (void)state;
    assert_int_equal(cpprof_profile_new("test.concurrent", &profile), 0);
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)(i + 1)), 0);
    for (int i = 0; i < THREADS; i++) {
        void *failures;
        pthread_join(t[i], &failures);
        assert_int_equal((long)failures, 0);
    }
    assert_int_equal(cpprof_profile_count(profile), THREADS * KEPT);

    /* Every kept value is in the written profile, under kept_add. */
    cp_profile *m;
    assert_int_equal(cp_registry_build(profile, &m), 0);
    int64_t total = 0;
    for (size_t i = 0; i < m->nsamples; i++)
        total += m->samples[i].values[0];
    assert_int_equal(total, THREADS * KEPT);
    cp_profile_free(m);

    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cpprof_profile_write(profile, w, 1), 0);
    const char *text = cpprof_writer_data(w, NULL);
    char head[64];
    snprintf(head, sizeof head, "test.concurrent profile: total %d\n", THREADS * KEPT);
    assert_memory_equal(text, head, strlen(head));
    assert_non_null(strstr(text, "kept_add"));
    assert_int_equal(cpprof_writer_close(w), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_add_remove_is_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
