/*
 * tests/heap/test_heap_tables.c - the heap sampler's tables are sized to
 * what is used and bounded: a program with few live sampled blocks keeps
 * them under 1 MiB; 200,000 live sampled blocks (far more than the first
 * address-set segment holds) are all tracked, found again by free, and
 * the tables stay within the documented 8 MiB bound; distinct (stack,
 * size) records get buckets of their own.  The order of the tests
 * matters (the tables never shrink): small first.  Registered twice: as
 * it comes (header mode, glibc's allocator) and with CPPROF_HEAP_HEADERS=0
 * (the free filter and the address set, as for any other allocator).
 *
 * Needs the malloc interposition: labelled no-sanitizer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/heap_sampler.h"
#include "profile_sums.h"

#define LIVE_MANY 200000
#define TABLE_BOUND ((size_t)8 << 20)

static void *volatile sink;
static volatile int no_tail_call;

__attribute__((noinline)) void *tables_site_few(size_t n)
{
    void *p = malloc(n);
    no_tail_call = 1;
    return p;
}

__attribute__((noinline)) void *tables_site_many(size_t n)
{
    void *p = malloc(n);
    no_tail_call = 1;
    return p;
}

__attribute__((noinline)) void *tables_site_filter(size_t n)
{
    void *p = malloc(n);
    no_tail_call = 1;
    return p;
}

/* Two callers of one allocation site, identical in shape, so the site
 * runs at the same stack pointer from both: the unwinder's replay memo
 * (capture/unwind_signal.c) must tell them apart by the return address
 * on the stack, never hand one caller's stack to the other. */
__attribute__((noinline)) void *tables_site_shared(size_t n)
{
    void *p = malloc(n);
    no_tail_call = 1;
    return p;
}

__attribute__((noinline)) void *tables_caller_a(size_t n)
{
    void *p = tables_site_shared(n);
    no_tail_call = 1;
    return p;
}

__attribute__((noinline)) void *tables_caller_b(size_t n)
{
    void *p = tables_site_shared(n);
    no_tail_call = 1;
    return p;
}

static void test_same_depth_callers_keep_their_stacks(void **state)
{
    (void)state;
    enum { N = 1000 };
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    for (int i = 0; i < N; i++) {
        /* a, b, b, a, ...: both orders of hit and miss. */
        free((i & 1) == (i >> 1 & 1) ? tables_caller_a(48)
                                     : tables_caller_b(48));
    }
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    int64_t a = ht_sum(d, "alloc_objects", "tables_site_shared",
                       "tables_caller_a");
    int64_t b = ht_sum(d, "alloc_objects", "tables_site_shared",
                       "tables_caller_b");
    int64_t both = ht_sum(d, "alloc_objects", "tables_caller_a",
                          "tables_caller_b");
    cp_decoded_free(d);
    printf("caller a %lld, caller b %lld, both %lld\n", (long long)a,
           (long long)b, (long long)both);
    assert_int_equal(a, N / 2);
    assert_int_equal(b, N / 2);
    assert_int_equal(both, 0);
}

/* Churn with a handful of blocks live: the tables stay small. */
static bool filter_mode_asked(void)
{
    const char *env = getenv("CPPROF_HEAP_HEADERS");
    return env && strcmp(env, "0") == 0;
}

/* glibc's allocator gets header mode unless the environment says no. */
static void test_mode_follows_the_environment(void **state)
{
    (void)state;
    free(malloc(1)); /* resolved by now anyway; make sure */
    printf("header mode: %d\n", cp_heap_headers());
    assert_int_equal(cp_heap_headers(), !filter_mode_asked());
}

static void test_few_live_blocks_keep_tables_small(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(4096), 0);
    void *ring[16] = {0};
    for (int i = 0; i < 200000; i++) {
        int k = i & 15;
        free(ring[k]);
        ring[k] = tables_site_few(16 + (size_t)(i * 37) % 2000);
    }
    size_t bytes = cp_heap_table_bytes();
    for (int k = 0; k < 16; k++)
        free(ring[k]);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    printf("tables after churn with 16 live blocks: %zu bytes\n", bytes);
    assert_true(bytes > 0);
    assert_true(bytes < ((size_t)1 << 20));
    cp_decoded *d = ht_decode_profile("heap");
    assert_true(ht_sum(d, "alloc_objects", "tables_site_few", NULL) > 0);
    assert_int_equal(ht_sum(d, "inuse_objects", "tables_site_few", NULL), 0);
    cp_decoded_free(d);
}

/* The free filter's level follows the live sampled blocks both ways,
 * and every level finds every sampled block (frees leave nothing in
 * use).  Before the many-blocks test: that one saturates the small
 * levels' counters for good. */
static void test_free_filter_follows_live_blocks(void **state)
{
    (void)state;
    if (cp_heap_headers()) {
        assert_int_equal(cp_heap_filter_bytes(), 0); /* never read */
        skip();
    }
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    size_t before = cp_heap_filter_bytes();
    enum { N = 2000 };
    void **v = calloc(N, sizeof *v);
    assert_non_null(v);
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    size_t seen[N + 1];
    for (size_t i = 0; i < N; i++) {
        v[i] = tables_site_filter(40);
        seen[i] = cp_heap_filter_bytes();
    }
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    /* Frees in reverse: the level comes down as blocks go. */
    for (size_t i = N; i-- > 0;) {
        free(v[i]);
        if (i == 100)
            seen[N] = cp_heap_filter_bytes();
    }
    /* Levels are re-checked every few sampled allocations and frees:
     * a few more pass the check at the final count. */
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    for (int i = 0; i < 32; i++)
        free(tables_site_filter(40));
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    size_t after = cp_heap_filter_bytes(), live = cp_heap_addr_live();
    free(v);
    printf("filter: %zu B before, %zu B at 100 live, %zu B at 600, %zu B "
           "at 2000, %zu B back at 100, %zu B after (%zu sampled blocks "
           "live)\n", before, seen[99], seen[599], seen[N - 1], seen[N],
           after, live);
    assert_int_equal(before, 2048);
    assert_int_equal(seen[99], 2048);
    assert_int_equal(seen[599], 32768);
    assert_int_equal(seen[N - 1], 32768);
    /* Hysteresis: 100 live blocks read the small level on the way up,
     * the large one on the way down (until fewer than 64). */
    assert_int_equal(seen[N], 32768);
    /* Down to the smallest level once under a quarter of its words. */
    assert_true(live < 64);
    assert_int_equal(after, 2048);

    assert_int_equal(cpprof_heap_set_rate(1), 0);
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    assert_int_equal(ht_sum(d, "alloc_objects", "tables_site_filter", NULL),
                     N + 32);
    assert_int_equal(ht_sum(d, "inuse_objects", "tables_site_filter", NULL), 0);
    cp_decoded_free(d);
}

/* Every block sampled and live at once: the address set grows by
 * segments, nothing is dropped, every free finds its block. */
static void test_many_live_blocks_are_all_tracked(void **state)
{
    (void)state;
    uint64_t dropped = cp_heap_dropped();
    void **v = calloc(LIVE_MANY, sizeof *v);
    assert_non_null(v);
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    for (size_t i = 0; i < LIVE_MANY; i++)
        v[i] = tables_site_many(24);
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    size_t live = cp_heap_sampled_live(), bytes = cp_heap_table_bytes();
    size_t in_set = cp_heap_addr_live();
    printf("%zu live sampled blocks (%zu in the address set), tables %zu "
           "bytes\n", live, in_set, bytes);
    assert_true(live >= LIVE_MANY);
    /* Header mode finds them by their headers, the other by the set. */
    if (cp_heap_headers())
        assert_int_equal(in_set, 0);
    else
        assert_true(in_set >= LIVE_MANY);
    assert_true(bytes <= TABLE_BOUND);
    assert_int_equal(cp_heap_dropped(), dropped);

    assert_int_equal(cpprof_heap_set_rate(1), 0);
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(ht_sum(d, "inuse_objects", "tables_site_many", NULL),
                     LIVE_MANY);
    assert_int_equal(ht_sum(d, "inuse_space", "tables_site_many", NULL),
                     (int64_t)LIVE_MANY * 24);
    cp_decoded_free(d);

    for (size_t i = 0; i < LIVE_MANY; i++)
        free(v[i]);
    free(v);
    d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    assert_int_equal(ht_sum(d, "inuse_objects", "tables_site_many", NULL), 0);
    assert_int_equal(ht_sum(d, "alloc_objects", "tables_site_many", NULL),
                     LIVE_MANY);
    cp_decoded_free(d);
}

/* Distinct sizes from one stack are distinct records, each exact. */
static void test_each_size_gets_its_bucket(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    void *v[3000];
    for (int i = 0; i < 3000; i++)
        v[i] = tables_site_few(1000 + (size_t)i % 1000);
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    int ix = cp_decoded_type_index(d, "inuse_objects");
    size_t records = 0;
    int64_t objects = 0;
    for (size_t i = 0; i < d->nsamples; i++) {
        const cp_dec_sample *s = &d->samples[i];
        if (s->values[ix] > 0 && ht_sample_has(d, s, "tables_site_few")) {
            records++;
            objects += s->values[ix];
            assert_int_equal(s->values[ix], 3); /* 3000 calls, 1000 sizes */
        }
    }
    cp_decoded_free(d);
    for (int i = 0; i < 3000; i++)
        free(v[i]);
    assert_int_equal(records, 1000);
    assert_int_equal(objects, 3000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode_follows_the_environment),
        cmocka_unit_test(test_few_live_blocks_keep_tables_small),
        cmocka_unit_test(test_free_filter_follows_live_blocks),
        cmocka_unit_test(test_same_depth_callers_keep_their_stacks),
        cmocka_unit_test(test_many_live_blocks_are_all_tracked),
        cmocka_unit_test(test_each_size_gets_its_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
