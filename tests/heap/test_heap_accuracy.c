/*
 * tests/heap/test_heap_accuracy.c - the heap profile against ground truth.
 *
 * Two call sites keep 64 MiB and 32 MiB live in blocks of mixed sizes
 * while a third churns short-lived small blocks.  At the default rate
 * (512 KiB) each site's inuse_space, averaged over a few rounds, must be
 * within 10% of the bytes really live; at rate 1 every number is exact.
 * Freed memory leaves inuse_* and stays in alloc_*.  Profiles are read
 * with our decoder and with `go tool pprof`.
 *
 * Needs the malloc interposition, which sanitizer builds compile out
 * (the sanitizer owns malloc): labelled no-sanitizer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "capture/heap_sampler.h"
#include "profile_sums.h"

#define MiB ((size_t)1 << 20)

static uint64_t size_rng = 88172645463325252ull;
static void *volatile sink;

static size_t rand_size(size_t lo, size_t hi)
{
    size_rng ^= size_rng << 13;
    size_rng ^= size_rng >> 7;
    size_rng ^= size_rng << 17;
    return lo + size_rng % (hi - lo + 1);
}

typedef struct blocks {
    void **v;
    size_t n, bytes, cap;
} blocks;

/* Allocates blocks of lo..hi bytes until total; returns what it kept. */
static blocks keep(size_t total, size_t lo, size_t hi)
{
    blocks b = {0};
    size_t cap = total / lo + 1;
    /* The bookkeeping array comes from mmap so that only the measured
     * blocks go through malloc. */
    b.v = mmap(NULL, cap * sizeof *b.v, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(b.v != MAP_FAILED);
    b.cap = cap;
    while (b.bytes < total) {
        size_t n = rand_size(lo, hi);
        char *p = malloc(n);
        assert_non_null(p);
        p[0] = 1;
        b.v[b.n++] = p;
        b.bytes += n;
    }
    return b;
}

__attribute__((noinline)) blocks heap_site_big(size_t total)
{
    return keep(total, 1024, 64 * 1024);
}

__attribute__((noinline)) blocks heap_site_mid(size_t total)
{
    return keep(total, 512, 16 * 1024);
}

/* Short-lived small blocks: alloc, touch, free.  Returns bytes. */
__attribute__((noinline)) size_t heap_site_churn(size_t ops)
{
    size_t bytes = 0;
    for (size_t i = 0; i < ops; i++) {
        size_t n = rand_size(16, 512);
        char *p = malloc(n);
        p[0] = (char)i;
        sink = p;
        free(p);
        bytes += n;
    }
    return bytes;
}

static void release(blocks *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->v[i]);
    munmap(b->v, b->cap * sizeof *b->v);
    memset(b, 0, sizeof *b);
}

/* The sampled phase and the exact phase get their own frames, so their
 * records never mix. */
__attribute__((noinline)) void phase_sampled(blocks *big, blocks *mid,
                                             size_t *churn)
{
    *big = heap_site_big(64 * MiB);
    *mid = heap_site_mid(32 * MiB);
    *churn = heap_site_churn(300000);
}

__attribute__((noinline)) void phase_exact(blocks *big, blocks *mid,
                                           size_t *churn)
{
    *big = heap_site_big(64 * MiB);
    *mid = heap_site_mid(32 * MiB);
    *churn = heap_site_churn(5000);
}

static void test_sampled_rate_within_10_percent(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    cp_heap_seed(20240601);
    enum { ROUNDS = 8 };
    double est_big = 0, est_mid = 0, true_big = 0, true_mid = 0;
    for (int r = 0; r < ROUNDS; r++) {
        blocks big, mid;
        size_t churn;
        phase_sampled(&big, &mid, &churn);
        cp_decoded *d = ht_decode_profile("heap");
        assert_string_equal(d->period_type.type, "space");
        assert_int_equal(d->period, CPPROF_HEAP_DEFAULT_RATE);
        est_big += (double)ht_sum(d, "inuse_space", "heap_site_big",
                                  "phase_sampled");
        est_mid += (double)ht_sum(d, "inuse_space", "heap_site_mid",
                                  "phase_sampled");
        /* Every churned block was freed: nothing of it is live. */
        assert_int_equal(ht_sum(d, "inuse_space", "heap_site_churn", NULL), 0);
        cp_decoded_free(d);
        true_big += (double)big.bytes;
        true_mid += (double)mid.bytes;
        release(&big);
        release(&mid);
        /* Freed: gone from inuse, still in alloc. */
        d = ht_decode_profile("heap");
        assert_int_equal(ht_sum(d, "inuse_space", "heap_site_big",
                                "phase_sampled"), 0);
        assert_true(ht_sum(d, "alloc_space", "heap_site_big",
                           "phase_sampled") > 0);
        cp_decoded_free(d);
    }
    double err_big = est_big / true_big - 1, err_mid = est_mid / true_mid - 1;
    printf("# 512 KiB: big site %.1f MiB est vs %.1f MiB true (%+.1f%%), "
           "mid site %.1f vs %.1f (%+.1f%%)\n",
           est_big / ROUNDS / MiB, true_big / ROUNDS / MiB, err_big * 100,
           est_mid / ROUNDS / MiB, true_mid / ROUNDS / MiB, err_mid * 100);
    assert_true(err_big > -0.10 && err_big < 0.10);
    assert_true(err_mid > -0.10 && err_mid < 0.10);
}

static void test_rate_one_is_exact(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    assert_int_equal(cpprof_heap_rate(), 1);
    blocks big, mid;
    size_t churn;
    phase_exact(&big, &mid, &churn);
    /* Written while the rate is still 1: like Go, the unbiasing uses the
     * rate in force when the profile is written. */
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(d->period, 1);
    assert_int_equal(ht_sum(d, "inuse_space", "heap_site_big", "phase_exact"),
                     (int64_t)big.bytes);
    assert_int_equal(ht_sum(d, "inuse_objects", "heap_site_big",
                            "phase_exact"), (int64_t)big.n);
    assert_int_equal(ht_sum(d, "inuse_space", "heap_site_mid", "phase_exact"),
                     (int64_t)mid.bytes);
    assert_int_equal(ht_sum(d, "inuse_space", "heap_site_churn",
                            "phase_exact"), 0);
    assert_int_equal(ht_sum(d, "alloc_space", "heap_site_churn",
                            "phase_exact"), (int64_t)churn);
    assert_int_equal(ht_sum(d, "alloc_objects", "heap_site_churn",
                            "phase_exact"), 5000);
    cp_decoded_free(d);
    size_t big_bytes = big.bytes, big_n = big.n;
    release(&big);
    release(&mid);
    d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    assert_int_equal(ht_sum(d, "inuse_space", "heap_site_big", "phase_exact"),
                     0);
    assert_int_equal(ht_sum(d, "alloc_space", "heap_site_big", "phase_exact"),
                     (int64_t)big_bytes);
    assert_int_equal(ht_sum(d, "alloc_objects", "heap_site_big",
                            "phase_exact"), (int64_t)big_n);
    cp_decoded_free(d);
}

/* The same data through go tool pprof, and the allocs profile's default. */
static void test_go_tool_pprof_reads_heap_and_allocs(void **state)
{
    (void)state;
    cpt_require_go();
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    blocks big = heap_site_big(4 * MiB);
    char *dir = cpt_tmpdir();
    char *heap = cpt_path(dir, "heap.pb.gz");
    char *allocs = cpt_path(dir, "allocs.pb.gz");
    char *text = cpt_path(dir, "heap.txt");
    ht_write_file("heap", 0, heap);
    ht_write_file("allocs", 0, allocs);
    ht_write_file("heap", 1, text);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);

    char *out = cpt_pprof("-top -nodecount=500 -sample_index=inuse_space",
                          heap);
    assert_non_null(strstr(out, "heap_site_big"));
    assert_non_null(strstr(out, "Type: inuse_space"));
    free(out);
    out = cpt_pprof("-top", allocs);
    assert_non_null(strstr(out, "Type: alloc_space"));
    free(out);
    out = cpt_pprof("-raw", heap);
    assert_non_null(strstr(out, "bytes:["));
    free(out);

    /* Legacy text: Go's header with heap/2*rate, records, allocator stats;
     * go tool pprof parses it too. */
    char *t = cpt_read_file(text, NULL);
    assert_non_null(t);
    assert_true(strncmp(t, "heap profile: ", 14) == 0);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "@ heap/%d\n", 2); /* written at rate 1 */
    assert_non_null(strstr(t, hdr));
    assert_non_null(strstr(t, "heap_site_big"));
    assert_non_null(strstr(t, "\n# mallinfo2\n"));
    assert_non_null(strstr(t, "\n# RSS = "));
    /* The sampler's own state: live sampled blocks (heap_site_big's are
     * live now) and the mode free finds them by. */
    const char *live = strstr(t, "\n# SampledLiveBlocks = ");
    assert_non_null(live);
    assert_true(atol(live + strlen("\n# SampledLiveBlocks = ")) > 0);
    char mode[48];
    snprintf(mode, sizeof mode, "\n# SampledBlockHeaders = %d\n",
             cp_heap_headers());
    assert_non_null(strstr(t, mode));
    free(t);
    /* The legacy format carries no mappings, so pprof shows addresses;
     * it must still parse it as a 4-column heap profile. */
    out = cpt_pprof("-top", text);
    assert_non_null(strstr(out, "Type: inuse_space"));
    free(out);

    release(&big);
    free(heap);
    free(allocs);
    free(text);
    cpt_tmpdir_remove(dir);
    free(dir);
}

static void test_bad_rate_is_refused(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(-1), -ERANGE);
    assert_int_equal(cpprof_heap_rate(), CPPROF_HEAP_DEFAULT_RATE);
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    assert_int_equal(cpprof_heap_rate(), 0);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampled_rate_within_10_percent),
        cmocka_unit_test(test_rate_one_is_exact),
        cmocka_unit_test(test_go_tool_pprof_reads_heap_and_allocs),
        cmocka_unit_test(test_bad_rate_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
