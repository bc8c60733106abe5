/*
 * capture/loader.c - loader sections: cpprof's calls into dl_iterate_phdr,
 * kept out of the way of fork (see loader.h for why).
 *
 * Normal thread context only.  A thread entering a section counts itself
 * on one of LOADER_STRIPES cache lines (picked by its TLS address, so
 * threads rarely share one), then checks fork_pending; the prepare
 * handler sets fork_pending and waits for the counts to drain.  Both
 * sides use sequentially consistent operations, so either the entrant
 * sees the flag or the forker sees the count.  An entrant that sees the
 * flag steps back out and waits for the fork to finish.
 *
 * Both waits are bounded.  The forker gives up after LOADER_FORK_WAIT_NS
 * (a section is a walk of the object list, microseconds to milliseconds)
 * and forks anyway, which is no worse than not having this file.  An
 * entrant held back gives up after LOADER_ENTER_WAIT_NS: it may hold a
 * lock of the host's that a later prepare handler needs, and a fork
 * stalled on that must not become a deadlock.
 */
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "capture/loader.h"

#define LOADER_STRIPES 16
#define LOADER_FORK_WAIT_NS (2 * 1000000000LL)
#define LOADER_ENTER_WAIT_NS (50 * 1000000LL)

static struct {
    struct {
        _Alignas(64) _Atomic int n;
    } inside[LOADER_STRIPES];
    _Alignas(64) _Atomic int fork_pending;
    pthread_once_t atfork_once;
} loader_state = { .atfork_once = PTHREAD_ONCE_INIT };

static _Thread_local int loader_depth; /* this thread's open sections */

static _Atomic int *my_stripe(void)
{
    uint64_t h = (uint64_t)(uintptr_t)&loader_depth *
                 UINT64_C(0x9e3779b97f4a7c15);
    return &loader_state.inside[h >> 60].n;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Sleeps a little longer each round: yields first, then 100 us naps.
 * errno is kept: a section may open inside an interposed call (the
 * threadcreate stack in pthread_create), and a signal may cut the nap
 * short with EINTR. */
static void backoff(int round)
{
    if (round < 50) {
        sched_yield();
        return;
    }
    int saved = errno;
    struct timespec ts = { 0, 100000 };
    nanosleep(&ts, NULL);
    errno = saved;
}

static int inside_total(void)
{
    int n = 0;
    for (int i = 0; i < LOADER_STRIPES; i++)
        n += atomic_load_explicit(&loader_state.inside[i].n,
                                  memory_order_seq_cst);
    return n;
}

static void loader_fork_prepare(void)
{
    atomic_store_explicit(&loader_state.fork_pending, 1, memory_order_seq_cst);
    /* The forking thread itself may be inside a section (fork from a
     * dl_iterate_phdr callback); its own count is not waited for. */
    int mine = loader_depth;
    long long deadline = now_ns() + LOADER_FORK_WAIT_NS;
    for (int round = 0; inside_total() > mine && now_ns() < deadline; round++)
        backoff(round);
}

static void loader_fork_done(void)
{
    atomic_store_explicit(&loader_state.fork_pending, 0, memory_order_seq_cst);
}

static void loader_fork_child(void)
{
    /* Only this thread survives: the other threads' counts are gone. */
    for (int i = 0; i < LOADER_STRIPES; i++)
        atomic_store(&loader_state.inside[i].n, 0);
    atomic_fetch_add(my_stripe(), loader_depth);
    loader_fork_done();
}

static void loader_register(void)
{
    int saved = errno;
    pthread_atfork(loader_fork_prepare, loader_fork_done, loader_fork_child);
    errno = saved;
}

/*
 * Registered before any other cpprof atfork handler (constructor priority
 * 101 runs ahead of the default-priority constructors that register the
 * others), because prepare handlers run in reverse order of registration:
 * ours runs last, when the other handlers already hold their locks, so no
 * thread can be inside a section waiting for one of them.
 */
__attribute__((constructor(101))) static void loader_init(void)
{
    pthread_once(&loader_state.atfork_once, loader_register);
}

void cp_loader_enter(void)
{
    pthread_once(&loader_state.atfork_once, loader_register);
    _Atomic int *stripe = my_stripe();
    if (loader_depth++ > 0) {
        atomic_fetch_add_explicit(stripe, 1, memory_order_seq_cst);
        return; /* nested: the outer section already got past the flag */
    }
    long long deadline = 0;
    for (int round = 0;; round++) {
        atomic_fetch_add_explicit(stripe, 1, memory_order_seq_cst);
        if (!atomic_load_explicit(&loader_state.fork_pending,
                                  memory_order_seq_cst))
            return;
        if (deadline == 0)
            deadline = now_ns() + LOADER_ENTER_WAIT_NS;
        else if (now_ns() >= deadline)
            return; /* see the file comment: never a deadlock */
        atomic_fetch_sub_explicit(stripe, 1, memory_order_seq_cst);
        backoff(round);
    }
}

void cp_loader_leave(void)
{
    if (loader_depth <= 0)
        return;
    loader_depth--;
    atomic_fetch_sub_explicit(my_stripe(), 1, memory_order_release);
}

int cp_loader_iterate(int (*cb)(struct dl_phdr_info *, size_t, void *),
                      void *arg)
{
    cp_loader_enter();
    int rc = dl_iterate_phdr(cb, arg);
    cp_loader_leave();
    return rc;
}

static int read_counters(struct dl_phdr_info *info, size_t size, void *arg)
{
    unsigned long long *c = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) +
                    sizeof info->dlpi_subs) {
        c[0] = info->dlpi_adds;
        c[1] = info->dlpi_subs;
    }
    return 1; /* the same in every object's info: the first is enough */
}

void cp_loader_counters(unsigned long long *adds, unsigned long long *subs)
{
    unsigned long long c[2] = { 0, 0 };
    cp_loader_iterate(read_counters, c);
    *adds = c[0];
    *subs = c[1];
}
