/*
 * tests/model/test_symbolize_threads.c - the symbolizer under concurrency:
 * four threads acquire, symbolize known probes and release in a loop
 * while a fifth dlopens and dlcloses a library (starting new generations
 * under their feet).  Every answer must stay exact; run under TSan too
 * (label tsan).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "model/symbolize.h"
#include "support.h"
#include "sym_probes.h"

#define WORKERS 4
#define ROUNDS 300
#define CHURNS 25

static struct {
    uintptr_t plain_pc, inl_pc, cxx_pc, qsort_pc;
    int plain_line, inner_line, outer_line, cxx_line;
    atomic_int errors;
    atomic_bool stop;
} t;

static void check(bool ok)
{
    if (!ok)
        atomic_fetch_add(&t.errors, 1);
}

static void *worker(void *arg)
{
    cp_frame f[8];
    for (int i = 0; i < ROUNDS; i++) {
        cp_symbolizer *s = cp_symbolizer_acquire();
        check(s != NULL);
        size_t n = cp_symbolize(s, t.plain_pc, f, 8);
        check(n == 1 && strcmp(f[0].function, "cpt_plain_probe") == 0 &&
              f[0].line == t.plain_line);
        n = cp_symbolize(s, t.inl_pc, f, 8);
        check(n == 2 && strcmp(f[0].function, "cpt_inl_probe") == 0 &&
              f[0].line == t.inner_line && f[1].line == t.outer_line);
        n = cp_symbolize(s, t.cxx_pc, f, 8);
        check(n == 1 && strcmp(f[0].function, "cpt::Widget::probe(int*)") == 0);
        n = cp_symbolize(s, t.qsort_pc, f, 8);
        check(n >= 1 && strcmp(f[n - 1].function, "qsort") == 0);
        /* Addresses nobody asked for yet: misses race with hits. */
        n = cp_symbolize(s, t.plain_pc - (uintptr_t)(i % 8), f, 8);
        check(n >= 1);
        check(cp_symbolize_object_flags(s, t.plain_pc) != 0);
        cp_symbolizer_release(s);
    }
    return NULL;
}

static void *churn(void *arg)
{
    cp_frame f[8];
    for (int i = 0; i < CHURNS && !atomic_load(&t.stop); i++) {
        void *h = dlopen(CPT_SYMLIB, RTLD_NOW | RTLD_LOCAL);
        check(h != NULL);
        if (h == NULL)
            break;
        uintptr_t (*probe)(int *) = (uintptr_t(*)(int *))dlsym(h, "cpt_symlib_probe");
        int line;
        uintptr_t pc = probe(&line);
        cp_symbolizer *s = cp_symbolizer_acquire();
        size_t n = cp_symbolize(s, pc, f, 8);
        dlclose(h);
        /* Strings stay valid after the unload while we hold s. */
        check(n == 1 && strcmp(f[0].function, "cpt_symlib_probe") == 0 &&
              f[0].line == line);
        cp_symbolizer_release(s);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    t.plain_pc = cpt_plain_probe(&t.plain_line);
    t.inl_pc = cpt_outer_probe(&t.inner_line, &t.outer_line);
    t.cxx_pc = cpt_cxx_probe(&t.cxx_line);
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    t.qsort_pc = (uintptr_t)dlsym(libc, "qsort");
    dlclose(libc);

    pthread_t th[WORKERS + 1];
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker, NULL), 0);
    assert_int_equal(pthread_create(&th[WORKERS], NULL, churn, NULL), 0);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&t.stop, true);
    pthread_join(th[WORKERS], NULL);
    assert_int_equal(atomic_load(&t.errors), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
