/*
 * tests/cpu/test_unwind_signal.c - the signal-safe unwinder
 * (capture/unwind_signal.c) against stacks whose shape is known.
 *
 * A SIGPROF handler captures the interrupted stack of a busy loop
 * leaf <- middle <- outer <- run; afterwards (normal context) each
 * capture is resolved with dladdr (the binary is linked -rdynamic) and
 * must contain the known chain in order.  Built twice: with frame
 * pointers, and -O2 -fomit-frame-pointer where only DWARF can succeed.
 * Corrupt contexts (garbage frame pointer, PC, self-loops) must end the
 * walk without faulting.  Single-threaded test, normal + signal context.
 *
 * Two tests load a small library (CPT_DSO_PATH) after the unwinder's
 * address table was built: a walk must cross its frame without a refresh,
 * and once it is unloaded behind the unwinder's back (libc's own dlclose,
 * as glibc does with iconv modules), a context pointing into where it was
 * must not make the walk read the unloaded tables.
 */
#include "support.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>

#include "capture/unwind_signal.h"

#define MAX_SAMPLES 200
#define DEPTH 32

static struct {
    uintptr_t pcs[MAX_SAMPLES][DEPTH];
    size_t depth[MAX_SAMPLES];
    volatile int n;
    enum cp_unwind_mode mode;
    volatile unsigned long sink;
} t;

static void on_prof(int sig, siginfo_t *si, void *uc)
{
    int i = t.n;
    if (i >= MAX_SAMPLES)
        return;
    t.depth[i] = cp_unwind_signal(uc, t.pcs[i], DEPTH, t.mode);
    t.n = i + 1;
}

__attribute__((noinline)) void cpt_unwind_leaf(void)
{
    for (int i = 0; i < 1000; i++)
        t.sink = t.sink * 31 + (unsigned long)i;
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void cpt_unwind_middle(void)
{
    for (int i = 0; i < 10; i++)
        cpt_unwind_leaf();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void cpt_unwind_outer(void)
{
    while (t.n < MAX_SAMPLES)
        cpt_unwind_middle();
    __asm__ volatile("" ::: "memory");
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *name_of(uintptr_t pc, int is_ret)
{
    Dl_info info;
    if (dladdr((void *)(pc - (is_ret ? 1 : 0)), &info) && info.dli_sname)
        return info.dli_sname;
    return "?";
}

/* Samples whose stack contains leaf?, middle, outer in order (the leaf
 * itself may be missing for samples taken in middle's own loop). */
static int count_good(void)
{
    int good = 0;
    for (int i = 0; i < t.n; i++) {
        const char *want[] = { "cpt_unwind_middle", "cpt_unwind_outer",
                               "sample_with" };
        size_t w = 0;
        for (size_t k = 0; k < t.depth[i] && w < 3; k++) {
            const char *nm = name_of(t.pcs[i][k], k > 0);
            if (strcmp(nm, want[w]) == 0)
                w++;
        }
        if (w == 3)
            good++;
        else if (getenv("CPT_VERBOSE")) {
            fprintf(stderr, "bad sample %d:", i);
            for (size_t k = 0; k < t.depth[i]; k++)
                fprintf(stderr, " %s", name_of(t.pcs[i][k], k > 0));
            fprintf(stderr, "\n");
        }
    }
    return good;
}

void sample_with(enum cp_unwind_mode mode);
__attribute__((noinline)) void sample_with(enum cp_unwind_mode mode)
{
    memset(&t, 0, sizeof(t));
    t.mode = mode;
    struct sigaction sa = { .sa_sigaction = on_prof,
                            .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval it = { { 0, 1000 }, { 0, 1000 } };
    setitimer(ITIMER_PROF, &it, NULL);
    double start = cpu_now();
    while (t.n < MAX_SAMPLES && cpu_now() - start < 5.0)
        cpt_unwind_outer();
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_PROF, &off, NULL);
    __asm__ volatile("" ::: "memory");
}

/* Samples mode's walks; at least min_pct percent must hold the chain. */
static void expect_chain(enum cp_unwind_mode mode, const char *name,
                         int min_pct)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    sample_with(mode);
    assert_true(t.n >= 50);
    int good = count_good();
    printf("%s: %d/%d samples with the full chain\n", name, good, t.n);
    assert_true(good >= t.n * min_pct / 100);
}

static void test_dwarf_walk_finds_chain(void **state)
{
    assert_true(cp_unwind_dwarf_available());
    expect_chain(CP_UNWIND_DWARF, "dwarf", 95);
}

static void test_auto_walk_finds_chain(void **state)
{
    expect_chain(CP_UNWIND_AUTO, "auto", 95);
}

static void test_fp_walk_finds_chain(void **state)
{
#ifdef CPT_OMIT_FP
    skip(); /* frame pointers are absent by construction */
#else
    /* A sample in a prologue or epilogue can skip one caller. */
    expect_chain(CP_UNWIND_FP, "fp", 90);
#endif
}

/* The leaf is the exact interrupted PC: no return-address adjustment. */
static void test_leaf_is_interrupted_pc(void **state)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    ucontext_t uc;
    getcontext(&uc);
    uintptr_t pcs[4];
    for (int mode = 0; mode <= 2; mode++) {
        size_t n = cp_unwind_signal(&uc, pcs, 4, (enum cp_unwind_mode)mode);
        assert_true(n >= 1);
        assert_int_equal(pcs[0], (uintptr_t)uc.uc_mcontext.gregs[REG_RIP]);
    }
}

/* Garbage registers: every walk ends without faulting. */
static void test_corrupt_context_never_faults(void **state)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    uintptr_t pcs[DEPTH];
    uintptr_t fake[4];
    const uintptr_t bad[] = { 0, 1, 8, 0xdeadbeef, (uintptr_t)-8,
                              (uintptr_t)fake, 0x7fffffffffffULL };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        for (size_t j = 0; j < sizeof(bad) / sizeof(*bad); j++) {
            ucontext_t uc;
            getcontext(&uc);
            /* A frame that points to itself and one that points down. */
            fake[0] = (uintptr_t)&fake[0];
            fake[1] = (uintptr_t)&test_corrupt_context_never_faults;
            fake[2] = (uintptr_t)&fake[0] - 64;
            fake[3] = bad[j];
            uc.uc_mcontext.gregs[REG_RBP] = (greg_t)bad[i];
            uc.uc_mcontext.gregs[REG_RIP] = (greg_t)bad[j];
            for (int mode = 0; mode <= 2; mode++) {
                size_t n = cp_unwind_signal(&uc, pcs, DEPTH,
                                            (enum cp_unwind_mode)mode);
                assert_true(n >= 1 && n <= DEPTH);
                assert_int_equal(pcs[0], bad[j]);
            }
            /* Stack pointer outside every stack. */
            if (bad[i] == (uintptr_t)fake)
                continue;
            uc.uc_mcontext.gregs[REG_RSP] = (greg_t)bad[i];
            for (int mode = 0; mode <= 2; mode++)
                assert_true(cp_unwind_signal(&uc, pcs, DEPTH,
                                             (enum cp_unwind_mode)mode) <= 1);
        }
    }
}

/* A frame-pointer chain whose second return address is no user-space
 * address (stale data where a frame was expected): the walk keeps the
 * frame before it and stops there. */
static void test_fp_walk_stops_at_non_code_return(void **state)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    volatile uintptr_t chain[6];
    ucontext_t uc;
    getcontext(&uc);
    chain[0] = (uintptr_t)&chain[2]; /* climbs: the next frame is above */
    chain[1] = (uintptr_t)&test_fp_walk_stops_at_non_code_return + 16;
    chain[2] = (uintptr_t)&chain[4];
    chain[3] = UINT64_C(0xa3a0d983fc0d5700);
    chain[4] = 0;
    chain[5] = 0;
    uc.uc_mcontext.gregs[REG_RBP] = (greg_t)(uintptr_t)&chain[0];
    uintptr_t pcs[DEPTH];
    size_t n = cp_unwind_signal(&uc, pcs, DEPTH, CP_UNWIND_FP);
    bool kept = false;
    for (size_t i = 0; i < n; i++) {
        assert_true(pcs[i] < (UINT64_C(1) << 47));
        kept |= pcs[i] == chain[1];
    }
    assert_true(kept);
}

/* --- code loaded and unloaded after the table was built -------------- */

typedef unsigned long (*dso_call_fn)(unsigned long (*)(void));

static unsigned long capture_self(void)
{
    t.depth[0] = cp_unwind_self(t.pcs[0], DEPTH);
    __asm__ volatile("" ::: "memory");
    return t.depth[0];
}

void cpt_unwind_through(dso_call_fn call);
__attribute__((noinline)) void cpt_unwind_through(dso_call_fn call)
{
    call(capture_self);
    __asm__ volatile("" ::: "memory");
}

/* The library's dlclose from the C library itself: what cpprof's own
 * dlclose interposer does not see (glibc unloading an iconv module). */
static int dlclose_unseen(void *handle)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    int (*real)(void *) = NULL;
    if (libc) {
        *(void **)&real = dlvsym(libc, "dlclose", "GLIBC_2.34");
        if (!real)
            *(void **)&real = dlvsym(libc, "dlclose", "GLIBC_2.2.5");
        dlclose(libc);
    }
    assert_non_null(real);
    return real(handle);
}

static void test_walk_crosses_code_loaded_after_the_table(void **state)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    assert_int_equal(cp_unwind_refresh(), 0);
    void *h = dlopen(CPT_DSO_PATH, RTLD_NOW);
    assert_non_null(h);
    dso_call_fn call;
    *(void **)&call = dlsym(h, "cpt_dso_call");
    assert_non_null(call);
    memset(&t, 0, sizeof(t));
    cpt_unwind_through(call); /* no refresh in between */
    const char *want[] = { "capture_self", "cpt_dso_call",
                           "cpt_unwind_through" };
    size_t w = 0;
    for (size_t k = 1; k < t.depth[0] && w < 3; k++)
        if (strcmp(name_of(t.pcs[0][k], 1), want[w]) == 0 ||
            (w == 0 && strcmp(name_of(t.pcs[0][k], 1), "?") == 0))
            w++; /* capture_self is static: dladdr may not name it */
    if (w < 3) {
        for (size_t k = 0; k < t.depth[0]; k++)
            fprintf(stderr, " %s", name_of(t.pcs[0][k], k > 0));
        fprintf(stderr, "\n");
    }
    assert_int_equal(dlclose_unseen(h), 0);
    assert_int_equal(w, 3);
}

static void test_unloaded_tables_are_never_read(void **state)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    void *h = dlopen(CPT_DSO_PATH, RTLD_NOW);
    assert_non_null(h);
    uintptr_t spin = (uintptr_t)dlsym(h, "cpt_dso_spin");
    assert_true(spin != 0);
    assert_int_equal(cp_unwind_refresh(), 0); /* the table has it now */
    assert_int_equal(dlclose_unseen(h), 0);
    uintptr_t page = spin & ~(uintptr_t)4095;
    if (msync((void *)page, 4096, MS_ASYNC) == 0 || errno != ENOMEM)
        skip(); /* still mapped (not unloaded, or already reused) */
    uintptr_t frame[8] = { 0 };
    uintptr_t pcs[DEPTH];
    for (int k = 0; k < 4; k++) {
        ucontext_t uc;
        getcontext(&uc);
        uc.uc_mcontext.gregs[REG_RIP] = (greg_t)(spin + 1 + k);
        uc.uc_mcontext.gregs[REG_RSP] = (greg_t)(uintptr_t)frame;
        uc.uc_mcontext.gregs[REG_RBP] = (greg_t)(uintptr_t)frame;
        for (int mode = 0; mode <= 2; mode++) {
            size_t n = cp_unwind_signal(&uc, pcs, DEPTH,
                                        (enum cp_unwind_mode)mode);
            assert_true(n >= 1 && n <= DEPTH);
            assert_int_equal(pcs[0], spin + 1 + k);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leaf_is_interrupted_pc),
        cmocka_unit_test(test_corrupt_context_never_faults),
        cmocka_unit_test(test_fp_walk_stops_at_non_code_return),
        cmocka_unit_test(test_dwarf_walk_finds_chain),
        cmocka_unit_test(test_auto_walk_finds_chain),
        cmocka_unit_test(test_fp_walk_finds_chain),
        cmocka_unit_test(test_walk_crosses_code_loaded_after_the_table),
        cmocka_unit_test(test_unloaded_tables_are_never_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
