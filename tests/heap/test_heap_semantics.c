/*
 * tests/heap/test_heap_semantics.c - the interposed malloc family behaves
 * exactly as the real allocator: every call is made through our shim and
 * through the next definition (glibc's, found with dlsym(RTLD_NEXT)) and
 * the return values, errno and alignment must agree; realloc in every
 * direction keeps contents and the profile's accounting, for sampled
 * (rate 1) and unsampled (rate 0) blocks.  Also fork children and
 * concurrent threads.
 *
 * Needs the malloc interposition: labelled no-sanitizer.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture/heap_sampler.h"
#include "cpprof/cpu.h"
#include "cpprof/http.h"
#include "cpprof/service.h"
#include "cpprof/trace.h"
#include "profile_sums.h"

typedef int (*pm_fn)(void **, size_t, size_t);
typedef void *(*aa_fn)(size_t, size_t);
typedef void *(*m_fn)(size_t);
typedef void *(*c_fn)(size_t, size_t);
typedef void *(*ra_fn)(void *, size_t, size_t);

static void *next(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    assert_non_null(f);
    return f;
}

static void fill(unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 7);
}

static int same(const unsigned char *p, size_t n, unsigned char seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7))
            return 0;
    return 1;
}

/* The sites are frames of their own: the volatile store after the call
 * keeps the compiler from turning it into a tail call. */
static volatile int no_tail_call;

__attribute__((noinline)) void *realloc_site(void *p, size_t n)
{
    void *q = realloc(p, n);
    no_tail_call = 1;
    return q;
}

__attribute__((noinline)) void *alloc_site(size_t n)
{
    void *q = malloc(n);
    no_tail_call = 1;
    return q;
}

/* Grow, shrink, same size, from NULL, to a huge size (fails, block kept),
 * to 0 (glibc frees and returns NULL). */
static void realloc_all_directions(void)
{
    unsigned char *p = alloc_site(100);
    assert_non_null(p);
    fill(p, 100, 3);
    p = realloc_site(p, 100000);         /* grow (moves) */
    assert_non_null(p);
    assert_true(same(p, 100, 3));
    fill(p, 100000, 5);
    p = realloc_site(p, 50);             /* shrink */
    assert_non_null(p);
    assert_true(same(p, 50, 5));
    p = realloc_site(p, 50);             /* same */
    assert_non_null(p);
    assert_true(same(p, 50, 5));
    errno = 0;
    void *q = realloc_site(p, SIZE_MAX - 4096); /* fails: p untouched */
    assert_null(q);
    assert_int_equal(errno, ENOMEM);
    assert_true(same(p, 50, 5));
    errno = 1234;
    q = realloc_site(p, 0);              /* frees */
    assert_null(q);
    assert_int_equal(errno, 1234);
    q = realloc_site(NULL, 77);          /* malloc */
    assert_non_null(q);
    free(q);
}

static void test_realloc_sampled_and_unsampled(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    realloc_all_directions();
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    realloc_all_directions();
    /* Mixed: sampled block reallocated while sampling is off, and back. */
    unsigned char *p = alloc_site(4000);
    fill(p, 4000, 9);
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    p = realloc_site(p, 8000);
    assert_true(same(p, 4000, 9));
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    p = realloc_site(p, 100);
    assert_true(same(p, 100, 9));
    free(p);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    /* Everything the two sites allocated is freed: nothing live. */
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(ht_sum(d, "inuse_space", "realloc_site", NULL), 0);
    assert_int_equal(ht_sum(d, "inuse_space", "alloc_site", NULL), 0);
    assert_true(ht_sum(d, "alloc_space", "realloc_site", NULL) >= 100000);
    cp_decoded_free(d);
}

static void test_live_realloc_is_accounted_at_new_size(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    void *p = alloc_site(1000);
    p = realloc_site(p, 123457);
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    assert_int_equal(ht_sum(d, "inuse_space", "realloc_site", NULL), 123457);
    assert_int_equal(ht_sum(d, "inuse_objects", "realloc_site", NULL), 1);
    cp_decoded_free(d);
    free(p);
}

static void test_errors_match_the_real_allocator(void **state)
{
    (void)state;
    pm_fn real_pm = (pm_fn)next("posix_memalign");
    aa_fn real_aa = (aa_fn)next("aligned_alloc");
    m_fn real_malloc = (m_fn)next("malloc");
    c_fn real_calloc = (c_fn)next("calloc");
    void (*real_free)(void *) = (void (*)(void *))next("free");
    for (int rate = 0; rate <= 1; rate++) {
        assert_int_equal(cpprof_heap_set_rate(rate), 0);
        /* posix_memalign with bad alignments: same code, errno untouched,
         * *out untouched. */
        size_t bad[] = {0, 1, 3, 4, 24, sizeof(void *) * 3};
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
            void *a = (void *)0x1, *b = (void *)0x1;
            errno = 777;
            int ra = posix_memalign(&a, bad[i], 64);
            int ea = errno;
            errno = 777;
            int rb = real_pm(&b, bad[i], 64);
            assert_int_equal(ra, rb);
            assert_int_equal(ea, errno);
            assert_ptr_equal(a, b);
            if (ra == 0) {
                free(a);
                real_free(b);
            }
        }
        /* Good alignment. */
        void *a;
        errno = 777;
        assert_int_equal(posix_memalign(&a, 4096, 100), 0);
        assert_int_equal(errno, 777);
        assert_int_equal((uintptr_t)a % 4096, 0);
        free(a);
        /* Huge posix_memalign: ENOMEM returned, errno as the real one. */
        void *b;
        errno = 777;
        int ra = posix_memalign(&a, 64, SIZE_MAX - 100);
        int ea = errno;
        errno = 777;
        int rb = real_pm(&b, 64, SIZE_MAX - 100);
        assert_int_equal(ra, rb);
        assert_int_equal(ea, errno);
        /* aligned_alloc with a non-power-of-two alignment. */
        errno = 0;
        void *x = aligned_alloc(24, 48);
        int ex = errno;
        errno = 0;
        void *y = real_aa(24, 48);
        assert_int_equal(x == NULL, y == NULL);
        assert_int_equal(ex, errno);
        free(x);
        real_free(y);
        /* malloc(0): a unique, freeable pointer. */
        void *z1 = malloc(0), *z2 = malloc(0);
        assert_non_null(z1);
        assert_non_null(z2);
        assert_ptr_not_equal(z1, z2);
        free(z1);
        free(z2);
        /* free(NULL) is a no-op that keeps errno. */
        errno = 4321;
        free(NULL);
        assert_int_equal(errno, 4321);
        /* Huge sizes fail with ENOMEM, like the real calls. */
        volatile size_t huge = SIZE_MAX; /* hide it from -Walloc-size */
        errno = 0;
        assert_null(malloc(huge));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(real_malloc(huge));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(calloc(SIZE_MAX / 2, 3)); /* overflows */
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(real_calloc(SIZE_MAX / 2, 3));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(reallocarray(NULL, SIZE_MAX / 2, 3));
        assert_int_equal(errno, ENOMEM);
        /* calloc zeroes; memalign/valloc/pvalloc align; usable size. */
        unsigned char *c = calloc(1000, 3);
        for (size_t i = 0; i < 3000; i++)
            assert_int_equal(c[i], 0);
        assert_true(malloc_usable_size(c) >= 3000);
        free(c);
        void *m = memalign(256, 10);
        assert_int_equal((uintptr_t)m % 256, 0);
        free(m);
        long page = sysconf(_SC_PAGESIZE);
        void *v = valloc(10);
        assert_int_equal((uintptr_t)v % (uintptr_t)page, 0);
        free(v);
        v = pvalloc(10);
        assert_int_equal((uintptr_t)v % (uintptr_t)page, 0);
        assert_true(malloc_usable_size(v) >= (size_t)page);
        free(v);
    }
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
}

/* Errno survives a sampled allocation (recording must not leak its own). */
static void test_sampled_allocation_preserves_errno(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    for (int i = 0; i < 100; i++) {
        errno = 9999;
        void *p = alloc_site((size_t)i * 13 + 1);
        assert_int_equal(errno, 9999);
        free(p);
        assert_int_equal(errno, 9999);
    }
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
}

static void *churn_thread(void *arg)
{
    (void)arg;
    void *ring[64] = {0};
    for (int i = 0; i < 200000; i++) {
        int k = i & 63;
        free(ring[k]);
        ring[k] = malloc(16 + (size_t)(i * 37) % 4000);
        *(volatile char *)ring[k] = 1;
    }
    for (int k = 0; k < 64; k++)
        free(ring[k]);
    return NULL;
}

/* fork() while other threads allocate with sampling on: the child can
 * allocate, profile and exit normally. */
static void test_fork_child_keeps_working(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(4096), 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn_thread, NULL), 0);
    for (int f = 0; f < 5; f++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            void *v[1000];
            for (int i = 0; i < 1000; i++)
                v[i] = malloc(1000);
            for (int i = 0; i < 1000; i++)
                free(v[i]);
            cpprof_writer *w;
            int ok = cpprof_writer_open_buffer(&w) == 0 &&
                     cpprof_write_heap_profile(w) == 0;
            cpprof_writer_close(w);
            _exit(ok ? 0 : 3);
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
}

/* Threads allocating and freeing concurrently at a high sampling rate:
 * when they are done, nothing they allocated is live. */
static void test_concurrent_churn_leaves_nothing_live(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(2048), 0);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn_thread, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    cp_decoded *d = ht_decode_profile("heap");
    assert_true(ht_sum(d, "alloc_objects", "churn_thread", NULL) > 0);
    assert_int_equal(ht_sum(d, "inuse_space", "churn_thread", NULL), 0);
    cp_decoded_free(d);
}

/* Everything the profiler allocates to build and write a profile
 * (snapshots, the symbolizer's libdw state, encoder buffers) and in the
 * threads it starts is its own: never sampled, even at rate 1. */
static void *own_thread(void *arg)
{
    (void)arg;
    void *p = alloc_site(3000);
    free(p);
    return NULL;
}

static void test_profiler_allocations_are_not_sampled(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    void *mine = alloc_site(4242);
    cp_decoded_free(ht_decode_profile("heap")); /* the first, cold write */
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, own_thread, NULL), 0);
    pthread_join(t, NULL);
    cp_decoded *d = ht_decode_profile("heap");
    /* The program's allocations are there... */
    assert_int_equal(ht_sum(d, "inuse_space", "alloc_site",
                            "test_profiler_allocations_are_not_sampled"),
                     4242);
    assert_int_equal(ht_sum(d, "alloc_space", "alloc_site", "own_thread"),
                     3000);
    /* ...and nothing allocated inside the two writes. */
    assert_int_equal(ht_sum(d, "alloc_objects", "cpprof_profile_write", NULL),
                     0);
    cp_decoded_free(d);
    free(mine);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
}

/*
 * Every public call that allocates keeps its allocations out of the heap
 * profile, whoever calls it: at rate 1, after writers, a CPU profile, a
 * trace, labels, a custom profile, the HTTP server and the service have
 * each been started and stopped, no sample passes through a function of
 * ours (cpprof_*, cp_*).
 */
static int discard(void *arg, const void *data, size_t len)
{
    (void)arg;
    (void)data;
    (void)len;
    return 0;
}

static void exercise_public_api(const char *dir)
{
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cpprof_cpu_start(w), 0);
    assert_int_equal(cpprof_labels_set("phase", "own"), 0);
    char buf[16];
    assert_int_equal(cpprof_labels_get("phase", buf, sizeof buf), 3);
    cpprof_labels_clear();
    assert_int_equal(cpprof_cpu_stop(), 0);
    assert_int_equal(cpprof_writer_close(w), 0);

    char *path = cpt_path(dir, "trace.out");
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cpprof_trace_start(w), 0);
    cpprof_trace_task *task;
    assert_int_equal(cpprof_trace_task_new(NULL, "own", &task), 0);
    cpprof_trace_logf(task, "own", "step %d", 1);
    cpprof_trace_task_end(task);
    assert_int_equal(cpprof_trace_stop(), 0);
    assert_int_equal(cpprof_writer_close(w), 0);
    free(path);

    assert_int_equal(cpprof_writer_open_callback(&w, discard, NULL), 0);
    cpprof_profile *p = cpprof_profile_lookup("test.own");
    if (!p)
        assert_int_equal(cpprof_profile_new("test.own", &p), 0);
    static int value;
    assert_int_equal(cpprof_profile_add(p, &value, 0), 0);
    assert_int_equal(cpprof_profile_write(p, w, 1), 0);
    assert_int_equal(cpprof_profile_remove(p, &value), 0);
    assert_int_equal(cpprof_writer_close(w), 0);

    cpprof_http_server *srv;
    cpprof_http_options opts = {.address = "127.0.0.1:0"};
    assert_int_equal(cpprof_http_server_start(&opts, &srv), 0);
    cpprof_http_server_stop(srv);

    const char *names[] = {"heap", "threads"};
    cpprof_service_config cfg = {.enabled = true,
                                 .folder = dir,
                                 .profile_names = names,
                                 .nprofile_names = 2};
    cpprof_service *svc;
    assert_int_equal(cpprof_service_new(&cfg, &svc), 0);
    assert_int_equal(cpprof_service_start(svc), 0);
    assert_int_equal(cpprof_service_stop(svc), 0);
    cpprof_service_free(svc);
}

static void test_public_calls_are_not_sampled(void **state)
{
    (void)state;
    char *dir = cpt_tmpdir();
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    exercise_public_api(dir);
    void *mine = alloc_site(777); /* and the program's own still are */
    cp_decoded *d = ht_decode_profile("allocs");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    free(mine);
    assert_int_equal(ht_sum(d, "alloc_space", "alloc_site",
                            "test_public_calls_are_not_sampled"),
                     777);
    int ix = cp_decoded_type_index(d, "alloc_objects");
    int64_t ours = 0;
    for (size_t i = 0; i < d->nsamples; i++) {
        const cp_dec_sample *s = &d->samples[i];
        if (ht_sample_has(d, s, "ht_decode_profile"))
            continue; /* the tests' decoding of earlier profiles */
        /* cpprof_thread_start: the frame below every thread the program
         * starts (capture/thread_shim.c), not an allocation of ours. */
        const char *fn =
            ht_sample_frame_prefixed(d, s, "cpprof_", "cpprof_thread_start");
        if (!fn)
            fn = ht_sample_frame_prefixed(d, s, "cp_", NULL);
        if (fn) {
            printf("sampled inside the profiler: %lld objects at %s\n",
                   (long long)s->values[ix], fn);
            ours += s->values[ix];
        }
    }
    cp_decoded_free(d);
    cpt_tmpdir_remove(dir);
    free(dir);
    assert_int_equal(ours, 0);
}

/*
 * Code dlopen'ed after the unwinder's address table was built.  Inside
 * the allocator the table cannot be refreshed; the walker asks the loader
 * (_dl_find_object) for the object instead, so a sample in that code has
 * its whole stack at once, before any profile refreshes the table, as
 * well as after.  (The module stays loaded: its sampled stacks are written
 * by the later tests too.)
 */
static void test_dlopened_code_unwinds_at_once(void **state)
{
    (void)state;
    void *lib = dlopen(HEAP_DL_SITE, RTLD_NOW);
    assert_non_null(lib);
    void *(*site)(size_t) = (void *(*)(size_t))dlsym(lib, "dl_site");
    assert_non_null(site);
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    void *before = site(1111);
    cp_decoded_free(ht_decode_profile("heap")); /* refreshes the table */
    void *after = site(2222);
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    int64_t at_site = ht_sum(d, "inuse_space", "dl_site", NULL);
    int64_t with_caller = ht_sum(d, "inuse_space", "dl_site",
                                 "test_dlopened_code_unwinds_at_once");
    cp_decoded_free(d);
    free(before);
    free(after);
    assert_int_equal(at_site, 1111 + 2222);
    assert_int_equal(with_caller, 1111 + 2222);
}

/*
 * A block allocated in a library that is unloaded before the profile is
 * written (and still live: the program kept it): its site keeps its name
 * and its mapping, for our decoder and for go tool pprof.
 */
static void test_unloaded_library_keeps_its_names(void **state)
{
    (void)state;
    void *lib = dlopen(HEAP_UNLOAD_SITE, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(lib);
    void *(*site)(size_t) = (void *(*)(size_t))dlsym(lib, "unload_site");
    assert_non_null(site);
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    void *kept = site(3333);
    assert_int_equal(dlclose(lib), 0);
    assert_null(dlopen(HEAP_UNLOAD_SITE, RTLD_NOW | RTLD_NOLOAD));

    cp_decoded *d = ht_decode_profile("heap");
    /* (The rate a profile is written at scales its values, as in Go.) */
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    assert_int_equal(ht_sum(d, "inuse_space", "unload_site",
                            "test_unloaded_library_keeps_its_names"),
                     3333);
    bool mapped = false;
    for (size_t i = 0; i < d->nmappings; i++)
        mapped |= strstr(d->mappings[i].filename, "libheap_unload_site") &&
                  d->mappings[i].build_id[0] != '\0';
    cp_decoded_free(d);
    assert_true(mapped);

    char *out = ht_pprof_profile("heap", "-traces -sample_index=inuse_space");
    assert_non_null(strstr(out, "unload_site"));
    free(out);
    free(kept);
}

__attribute__((noinline)) void *after_own_site(size_t n)
{
    void *q = malloc(n);
    no_tail_call = 1;
    return q;
}

/* A sample point that falls inside the profiler's own allocations is
 * skipped without biasing the program's: 200 times, 4 MiB allocated in
 * 1 KiB blocks in an own section (the 1 MiB interval runs out there),
 * then one 4 KiB block.  About 200 * 4/1024 = 0.8 of those blocks should
 * be sampled; keeping the spent interval (less than 1 KiB left) would
 * sample every one of them. */
static void test_own_sections_do_not_bias_sampling(void **state)
{
    (void)state;
    cp_heap_seed(12345);
    assert_int_equal(cpprof_heap_set_rate(1 << 20), 0);
    void *kept[200];
    for (int i = 0; i < 200; i++) {
        bool was_own = cp_own_begin();
        for (int k = 0; k < 4096; k++) {
            void *volatile own = malloc(1024); /* volatile: not elided */
            free(own);
        }
        cp_own_end(was_own);
        kept[i] = after_own_site(4096);
    }
    cp_decoded *d = ht_decode_profile("heap");
    /* Each sample of a 4 KiB block scales to ~256.5 objects: fewer than
     * 6 samples (Poisson with mean 0.8: 6 or more has odds ~1e-4). */
    int64_t objects = ht_sum(d, "inuse_objects", "after_own_site", NULL);
    printf("after_own_site: %lld objects estimated (200 live)\n",
           (long long)objects);
    assert_true(objects < 6 * 257);
    cp_decoded_free(d);
    for (int i = 0; i < 200; i++)
        free(kept[i]);
    cp_heap_seed(0);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
}

/* One site for every allocating call, so that the profile counts what
 * each kind leaves live. */
__attribute__((noinline)) void *kinds_site(int kind, size_t n)
{
    void *p = NULL;
    switch (kind) {
    case 0: p = malloc(n); break;
    case 1: p = calloc(n, 1); break;
    case 2: p = memalign(64, n); break;
    case 3: p = aligned_alloc(128, n); break;
    case 4: if (posix_memalign(&p, 4096, n) != 0) p = NULL; break;
    case 5: p = valloc(n); break;
    case 6: p = pvalloc(n); break;
    case 7: p = realloc(NULL, n); break;
    case 8: p = reallocarray(NULL, n, 1); break;
    }
    no_tail_call = 1;
    return p;
}

/* Sampled blocks of every kind (rate 1): aligned as asked, their whole
 * usable size theirs to write (in header mode the header sits below the
 * block, and glibc's own checks on free would catch an overlap), calloc's
 * zeroed, each counted live once and gone after free. */
static void test_sampled_blocks_of_every_kind(void **state)
{
    (void)state;
    static const size_t align[] = {16, 16, 64, 128, 4096, 0, 0, 16, 16};
    enum { KINDS = 9, EACH = 20 };
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v[KINDS][EACH];
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    for (int k = 0; k < KINDS; k++) {
        for (int i = 0; i < EACH; i++) {
            size_t n = 1 + (size_t)i * 997;
            unsigned char *p = kinds_site(k, n);
            assert_non_null(p);
            size_t a = align[k] ? align[k] : page;
            assert_int_equal((uintptr_t)p % a, 0);
            size_t usable = malloc_usable_size(p);
            assert_true(usable >= n);
            if (k == 1)
                for (size_t j = 0; j < n; j++)
                    assert_int_equal(p[j], 0);
            memset(p, 0xa5, usable);
            v[k][i] = p;
        }
    }
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(ht_sum(d, "inuse_objects", "kinds_site", NULL),
                     KINDS * EACH);
    cp_decoded_free(d);
    assert_int_equal(cpprof_heap_set_rate(0), 0); /* frees count anyway */
    for (int k = 0; k < KINDS; k++)
        for (int i = 0; i < EACH; i++)
            free(v[k][i]);
    d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    assert_int_equal(ht_sum(d, "inuse_objects", "kinds_site", NULL), 0);
    assert_int_equal(ht_sum(d, "alloc_objects", "kinds_site", NULL),
                     KINDS * EACH);
    cp_decoded_free(d);
}

/* A rate change reaches a thread that is already allocating within its
 * next 256 KiB (capture/malloc_shim.c: RECHECK_BYTES), not only at its
 * next sample: at rate 1 after rate 0, of 1024 allocations of 1 KiB at
 * most the first 256 go unsampled. */
static pthread_barrier_t rate_barrier;

__attribute__((noinline)) void *rate_change_site(size_t n)
{
    void *p = malloc(n);
    no_tail_call = 1;
    return p;
}

static void *rate_change_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        free(rate_change_site(1024)); /* rate 0: the thread's piece drawn */
    pthread_barrier_wait(&rate_barrier);
    pthread_barrier_wait(&rate_barrier); /* main sets rate 1 in between */
    for (int i = 0; i < 1024; i++)
        free(rate_change_site(1024));
    return NULL;
}

static void test_rate_change_reaches_running_threads(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    assert_int_equal(pthread_barrier_init(&rate_barrier, NULL, 2), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, rate_change_thread, NULL), 0);
    pthread_barrier_wait(&rate_barrier);
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    pthread_barrier_wait(&rate_barrier);
    assert_int_equal(pthread_join(t, NULL), 0);
    cp_decoded *d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    pthread_barrier_destroy(&rate_barrier);
    int64_t sampled = ht_sum(d, "alloc_objects", "rate_change_site", NULL);
    cp_decoded_free(d);
    printf("rate change: %lld of 1024 allocations sampled\n",
           (long long)sampled);
    assert_true(sampled >= 1024 - 256);
    assert_true(sampled <= 1024);
}

/* Sampled blocks of every kind allocated by one thread and freed by
 * another: each free finds its block (its header, or the address set),
 * so the site ends with nothing live and every allocation counted. */
enum { HANDOFF = 2000 };
static void *handoff[HANDOFF];

static void *handoff_consumer(void *arg)
{
    (void)arg;
    for (int i = 0; i < HANDOFF; i++)
        free(handoff[i]);
    return NULL;
}

static void test_blocks_freed_by_another_thread(void **state)
{
    (void)state;
    assert_int_equal(cpprof_heap_set_rate(1), 0);
    cp_decoded *d = ht_decode_profile("heap");
    int64_t allocs_before = ht_sum(d, "alloc_objects", "kinds_site", NULL);
    int64_t inuse_before = ht_sum(d, "inuse_objects", "kinds_site", NULL);
    cp_decoded_free(d);
    for (int i = 0; i < HANDOFF; i++) {
        handoff[i] = kinds_site(i % 9, 8 + (size_t)i * 13);
        assert_non_null(handoff[i]);
    }
    assert_int_equal(cpprof_heap_set_rate(0), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, handoff_consumer, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    d = ht_decode_profile("heap");
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
    int64_t allocs = ht_sum(d, "alloc_objects", "kinds_site", NULL);
    int64_t inuse = ht_sum(d, "inuse_objects", "kinds_site", NULL);
    cp_decoded_free(d);
    assert_int_equal(allocs - allocs_before, HANDOFF);
    assert_int_equal(inuse, inuse_before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_realloc_sampled_and_unsampled),
        cmocka_unit_test(test_live_realloc_is_accounted_at_new_size),
        cmocka_unit_test(test_errors_match_the_real_allocator),
        cmocka_unit_test(test_sampled_allocation_preserves_errno),
        cmocka_unit_test(test_fork_child_keeps_working),
        cmocka_unit_test(test_concurrent_churn_leaves_nothing_live),
        cmocka_unit_test(test_profiler_allocations_are_not_sampled),
        cmocka_unit_test(test_public_calls_are_not_sampled),
        cmocka_unit_test(test_dlopened_code_unwinds_at_once),
        cmocka_unit_test(test_unloaded_library_keeps_its_names),
        cmocka_unit_test(test_own_sections_do_not_bias_sampling),
        cmocka_unit_test(test_sampled_blocks_of_every_kind),
        cmocka_unit_test(test_rate_change_reaches_running_threads),
        cmocka_unit_test(test_blocks_freed_by_another_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
