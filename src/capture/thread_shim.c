/*
 * capture/thread_shim.c - pthread_create interposition.
 *
 * libcpprof defines pthread_create (exported), so it takes precedence over
 * libc's both when the library is linked into the program and when it is
 * LD_PRELOADed; the real function comes from dlsym(RTLD_NEXT), resolved by
 * a constructor.  The shim:
 *   - in the creating thread, records the creator's stack for the
 *     threadcreate profile once the thread exists (capture/backtrace.h,
 *     normal-context libunwind: the creating thread is in normal context);
 *   - starts the new thread in a trampoline that installs the creator's
 *     profiler labels (Go's goroutines inherit them), marks the thread's
 *     allocations as the profiler's own (never sampled) when the creator
 *     was inside cp_own_begin (the HTTP server's, the service's and
 *     the drain threads), calls the start hooks
 *     (capture/thread_hooks.h) before the user's routine, and the exit
 *     hooks when the routine returns, calls pthread_exit or is cancelled
 *     (a cleanup handler covers all three).
 * It never loses a thread: when no trampoline slot is free the thread is
 * created directly (unhooked; the CPU profiler still finds it by its tid).
 * The return value and errno of the real pthread_create are passed back
 * untouched.
 *
 * Allocation-free and lock-free: the trampoline's arguments live in a
 * fixed pool of slots claimed with compare-and-swap on a bitmap.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>

#include "capture/backtrace.h"
#include "capture/own_section.h"
#include "capture/thread_hooks.h"
#include "core/labels.h"

#define SHIM_SLOTS 256
#define SHIM_WORDS (SHIM_SLOTS / 64)
#define SHIM_CREATE_DEPTH 64

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *,
                                 void *(*)(void *), void *);

typedef struct shim_slot {
    void *(*start)(void *);
    void *arg;
    cp_label_set *labels; /* a reference the new thread takes over */
    bool own;             /* created by the profiler's own code */
} shim_slot;

static struct {
    _Atomic(pthread_create_fn) real;
    atomic_uint_fast64_t used[SHIM_WORDS];
    shim_slot slots[SHIM_SLOTS];
} shim_state;

static pthread_create_fn real_pthread_create(void)
{
    pthread_create_fn f = atomic_load_explicit(&shim_state.real,
                                               memory_order_acquire);
    if (!f) {
        f = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
        atomic_store_explicit(&shim_state.real, f, memory_order_release);
    }
    return f;
}

__attribute__((constructor)) static void shim_init(void)
{
    real_pthread_create();
}

static int slot_claim(void)
{
    for (int w = 0; w < SHIM_WORDS; w++) {
        uint_fast64_t cur = atomic_load(&shim_state.used[w]);
        while (~cur != 0) {
            int bit = __builtin_ctzll(~(unsigned long long)cur);
            if (atomic_compare_exchange_weak(&shim_state.used[w], &cur,
                                             cur | (1ull << bit)))
                return w * 64 + bit;
        }
    }
    return -1;
}

static void slot_release(int i)
{
    atomic_fetch_and(&shim_state.used[i / 64], ~(1ull << (i % 64)));
}

static void thread_exit_hooks(void *unused)
{
    cp_cpu_thread_exit();
    cp_label_set_release(cp_labels_swap(NULL));
    /* Last, and the start hook first: whatever the other hooks record
     * (a wait on the CPU profiler's lock) lies inside the thread's life
     * on its trace track. */
    cp_trace_thread_exit();
}

/* The frame every created thread starts in, between start_thread and the
 * program's routine; named for what users see under each thread's stack
 * in their profiles. */
static void *cpprof_thread_start(void *p)
{
    int i = (int)(intptr_t)p;
    shim_slot s = shim_state.slots[i];
    slot_release(i);
    /* What the start hooks allocate is the profiler's; a thread the
     * profiler started stays "own" for its whole life. */
    cp_own_begin();
    cp_trace_thread_start();
    cp_labels_swap(s.labels);
    cp_cpu_thread_start();
    cp_threads_thread_start();
    cp_own_end(s.own);
    void *ret;
    pthread_cleanup_push(thread_exit_hooks, NULL);
    ret = s.start(s.arg);
    pthread_cleanup_pop(1);
    return ret;
}

__attribute__((visibility("default"))) int
pthread_create(pthread_t *thread, const pthread_attr_t *attr,
               void *(*start)(void *), void *arg)
{
    int saved_errno = errno;
    pthread_create_fn real = real_pthread_create();
    if (!real)
        return EAGAIN;
    int i = slot_claim();
    int rc;
    if (i < 0) {
        rc = real(thread, attr, start, arg);
    } else {
        cp_label_set *labels = cp_labels_current();
        cp_label_set_retain(labels);
        shim_state.slots[i] = (shim_slot){ start, arg, labels,
                                           cp_own_now() };
        rc = real(thread, attr, cpprof_thread_start, (void *)(intptr_t)i);
        if (rc != 0) {
            cp_label_set_release(labels);
            slot_release(i);
        }
    }
    if (rc == 0) {
        uintptr_t pcs[SHIM_CREATE_DEPTH];
        size_t n = cp_backtrace(pcs, SHIM_CREATE_DEPTH, 1);
        cp_threadcreate_record(pcs, n);
    }
    errno = saved_errno;
    return rc;
}
