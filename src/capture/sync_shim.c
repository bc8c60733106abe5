/*
 * capture/sync_shim.c - interposition of the blocking pthread and sem
 * calls, feeding the block and mutex profiles (and the tracer's wait
 * events).  Owns the settings behind <cpprof/sync.h>.
 *
 * Who calls it: every caller of pthread_mutex_lock & co in the process.
 * The definitions here have default visibility, so they take precedence
 * over libc's whether libcpprof is linked (static or shared) or
 * LD_PRELOADed; the real functions are found lazily with
 * dlsym(RTLD_NEXT) (dlvsym for the versioned condition variable calls),
 * which keeps any other interposer (sanitizers) in the chain.
 *
 * THE FENCE: every function in this file except the public setters and
 * their helpers (the last section, normal context) runs inside an
 * interposed call, possibly inside another library's allocator
 * or signal-unsafe section.  It is lock-free, allocation-free and
 * errno-preserving, takes no lock of its own, never calls libunwind (the
 * stack is a frame-pointer walk bounded by the thread's stack), and
 * returns exactly what the real call returned.
 *
 * Cost model (what runs where matters more than how much: work inside a
 * critical section lengthens every waiter's wait, work outside does not):
 *   - both profiles and tracing off: one relaxed load and a predictable
 *     branch, then the real call;
 *   - on, uncontended: the lock side is the real lock in a
 *     single-threaded process (a private lock cannot wait there), else
 *     for glibc's default mutex an inlined trylock (one CAS, no call,
 *     no frame), else the real trylock; the unlock side reads one
 *     thread-local flag and one read-mostly line that says whether
 *     anyone may wait for a lock of this address's slice;
 *   - contended, before blocking (free: the thread waits anyway): the
 *     stack walk and record lookup of the block event, a clock read and
 *     the waiter registration on the lock's own cache line;
 *   - contended, inside the new holder's critical section: nothing for a
 *     mutex but a clock read when the block profile or tracing is on; the
 *     waiter's registration ends in its own release, and its block event
 *     is added to its record after that release;
 *   - release with waiters, inside the critical section: a clock read and
 *     one CAS on the lock's line (the accounting must see the release in
 *     order, or a late holder's waiting would go to the next one);
 *     after the real unlock: the stack walk (a thread-local hint skips
 *     hash and probe when the stack is the last one) and the record add.
 *
 * Mutex profile semantics (Go's): the holder that unlocks is charged the
 * time its waiters spent waiting during its critical section, at the
 * unlock's stack.  Waits inside pthread_cond_wait's own re-lock are part
 * of the condition wait (block profile), not mutex contention.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 32)
#include <sys/single_threaded.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SYNC_HAVE_VALGRIND 1
#endif
#endif

#include "capture/own_section.h"
#include "capture/sync_events.h"
#include "capture/sync_shim.h"
#include "capture/trace_events.h"
#include "cpprof/sync.h"

/* All fence code lives in one section, so the stack walk can tell our
 * frames from the caller's whatever the compiler inlined or tail-called. */
#define FENCE __attribute__((section("cpprof_sync_text"), noinline))
#define INTERPOSE \
    __attribute__((section("cpprof_sync_text"), visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)

/*
 * The lock fast path takes glibc's default mutex itself (see
 * mutex_trylock_inline) unless this is a sanitizer build, whose
 * interceptors must see every acquisition.
 */
#if defined(__GLIBC__) && !defined(CPPROF_SANITIZER_BUILD) && \
    !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
#define SYNC_INLINE_TRYLOCK 1
#else
#define SYNC_INLINE_TRYLOCK 0
#endif

extern const char __start_cpprof_sync_text[] __attribute__((visibility("hidden")));
extern const char __stop_cpprof_sync_text[] __attribute__((visibility("hidden")));
extern void *__libc_stack_end; /* top of the main thread's stack (ld.so) */

enum { F_BLOCK = 1, F_MUTEX = 2, F_TRACE = 4 };

typedef int (*fn_m)(pthread_mutex_t *);
typedef int (*fn_m_ts)(pthread_mutex_t *, const struct timespec *);
typedef int (*fn_m_clk)(pthread_mutex_t *, clockid_t, const struct timespec *);
typedef int (*fn_rw)(pthread_rwlock_t *);
typedef int (*fn_rw_ts)(pthread_rwlock_t *, const struct timespec *);
typedef int (*fn_rw_clk)(pthread_rwlock_t *, clockid_t,
                         const struct timespec *);
typedef int (*fn_cw)(pthread_cond_t *, pthread_mutex_t *);
typedef int (*fn_ctw)(pthread_cond_t *, pthread_mutex_t *,
                      const struct timespec *);
typedef int (*fn_ccw)(pthread_cond_t *, pthread_mutex_t *, clockid_t,
                      const struct timespec *);
typedef int (*fn_sem)(sem_t *);
typedef int (*fn_sem_ts)(sem_t *, const struct timespec *);
typedef int (*fn_sem_clk)(sem_t *, clockid_t, const struct timespec *);
typedef int (*fn_join)(pthread_t, void **);
typedef int (*fn_bar)(pthread_barrier_t *);
typedef int (*fn_spin)(pthread_spinlock_t *);

/*
 * The real functions: X(field, type, symbol, version, params, args,
 * what to return when no real function exists).
 */
#define ENOSYS_RC ENOSYS
#define ENOSYS_ERRNO (errno = ENOSYS, -1)
#define SYNC_REALS(X)                                                         \
    X(mutex_lock, fn_m, "pthread_mutex_lock", NULL,                           \
      (pthread_mutex_t *m), (m), ENOSYS_RC)                                   \
    X(mutex_timedlock, fn_m_ts, "pthread_mutex_timedlock", NULL,              \
      (pthread_mutex_t *m, const struct timespec *ts), (m, ts), ENOSYS_RC)    \
    X(mutex_clocklock, fn_m_clk, "pthread_mutex_clocklock", NULL,             \
      (pthread_mutex_t *m, clockid_t c, const struct timespec *ts),           \
      (m, c, ts), ENOSYS_RC)                                                  \
    X(mutex_unlock, fn_m, "pthread_mutex_unlock", NULL,                       \
      (pthread_mutex_t *m), (m), ENOSYS_RC)                                   \
    X(rwlock_rdlock, fn_rw, "pthread_rwlock_rdlock", NULL,                    \
      (pthread_rwlock_t *l), (l), ENOSYS_RC)                                  \
    X(rwlock_wrlock, fn_rw, "pthread_rwlock_wrlock", NULL,                    \
      (pthread_rwlock_t *l), (l), ENOSYS_RC)                                  \
    X(rwlock_timedrdlock, fn_rw_ts, "pthread_rwlock_timedrdlock", NULL,       \
      (pthread_rwlock_t *l, const struct timespec *ts), (l, ts), ENOSYS_RC)   \
    X(rwlock_timedwrlock, fn_rw_ts, "pthread_rwlock_timedwrlock", NULL,       \
      (pthread_rwlock_t *l, const struct timespec *ts), (l, ts), ENOSYS_RC)   \
    X(rwlock_clockrdlock, fn_rw_clk, "pthread_rwlock_clockrdlock", NULL,      \
      (pthread_rwlock_t *l, clockid_t c, const struct timespec *ts),          \
      (l, c, ts), ENOSYS_RC)                                                  \
    X(rwlock_clockwrlock, fn_rw_clk, "pthread_rwlock_clockwrlock", NULL,      \
      (pthread_rwlock_t *l, clockid_t c, const struct timespec *ts),          \
      (l, c, ts), ENOSYS_RC)                                                  \
    X(rwlock_unlock, fn_rw, "pthread_rwlock_unlock", NULL,                    \
      (pthread_rwlock_t *l), (l), ENOSYS_RC)                                  \
    X(cond_wait, fn_cw, "pthread_cond_wait", "GLIBC_2.3.2",                   \
      (pthread_cond_t *c, pthread_mutex_t *m), (c, m), ENOSYS_RC)             \
    X(cond_timedwait, fn_ctw, "pthread_cond_timedwait", "GLIBC_2.3.2",        \
      (pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *ts),     \
      (c, m, ts), ENOSYS_RC)                                                  \
    X(cond_clockwait, fn_ccw, "pthread_cond_clockwait", NULL,                 \
      (pthread_cond_t *c, pthread_mutex_t *m, clockid_t k,                    \
       const struct timespec *ts),                                            \
      (c, m, k, ts), ENOSYS_RC)                                               \
    X(sem_wait, fn_sem, "sem_wait", NULL, (sem_t *s), (s), ENOSYS_ERRNO)      \
    X(sem_timedwait, fn_sem_ts, "sem_timedwait", NULL,                        \
      (sem_t *s, const struct timespec *ts), (s, ts), ENOSYS_ERRNO)           \
    X(sem_clockwait, fn_sem_clk, "sem_clockwait", NULL,                       \
      (sem_t *s, clockid_t c, const struct timespec *ts), (s, c, ts),         \
      ENOSYS_ERRNO)                                                           \
    X(join, fn_join, "pthread_join", NULL, (pthread_t t, void **r), (t, r),   \
      ENOSYS_RC)                                                              \
    X(barrier_wait, fn_bar, "pthread_barrier_wait", NULL,                     \
      (pthread_barrier_t *b), (b), ENOSYS_RC)                                 \
    X(spin_lock, fn_spin, "pthread_spin_lock", NULL,                          \
      (pthread_spinlock_t *s), (s), ENOSYS_RC)

#define X_PROTO(f, t, sym, ver, params, args, miss) \
    static int stub_##f params;
SYNC_REALS(X_PROTO)

/* The subsystem's one piece of mutable state. */
static struct {
    _Atomic int flags;           /* F_*: the only word the fast path reads */
    _Atomic int64_t block_rate;  /* ns; <= 0 off */
    _Atomic int mutex_fraction;  /* 0 off */
    _Atomic uint32_t gen;        /* bumped when waiters are reset */
    _Atomic unsigned stripes;    /* record stripes handed out so far */
    _Atomic int inline_ok;       /* 1 inline trylock allowed, -1 not, 0 undecided */
    struct {
#define X_FIELD(f, t, sym, ver, params, args, miss) _Atomic(t) f;
        SYNC_REALS(X_FIELD)
    } real;
} sync_state = {
    .real = {
#define X_INIT(f, t, sym, ver, params, args, miss) .f = stub_##f,
        SYNC_REALS(X_INIT)
    },
};

#define PEND_MAX 4

/*
 * Per-thread state (initial-exec TLS: no allocation on access).  A
 * thread that waited for a mutex and got it keeps its wait open here
 * (pend) until it releases the mutex, and its block event (brec) until
 * its next release: neither then costs its critical section anything.
 */
static __thread struct {
    uint64_t rng;       /* xorshift state, seeded on first use */
    int64_t mutex_left; /* events until the next mutex sample; 0 unset */
    int hint[CP_SYNC_NKINDS]; /* last record index + 1 per kind; 0 none */
    unsigned stripe;    /* record counter stripe + 1; 0 unset */
    int tid;            /* kernel thread id for the inline trylock; 0
                           unset, -1 inline trylock not allowed */
    bool any;           /* npend != 0 || brec != 0: the unlock's test */
    int npend;
    struct {
        const void *lock;
        int slot;
        uint32_t gen;
        uint64_t t0;
    } pend[PEND_MAX];
    int brec;           /* deferred block event: record index + 1 */
    uint64_t bcount, bdelay;
} sync_tls __attribute__((tls_model("initial-exec")));

#define REAL(f) atomic_load_explicit(&sync_state.real.f, memory_order_relaxed)

/* A macro, not an inline function: the interposers' first instruction
 * must belong to them in the debug info, since their entry address leads
 * every recorded stack. */
#define load_flags() \
    atomic_load_explicit(&sync_state.flags, memory_order_relaxed)

/* ------------------------------------------------ real-function lookup */

static void *sync_resolve(const char *sym, const char *version)
{
    void *p = NULL;
#if defined(__SANITIZE_THREAD__)
    /* TSan's interceptors are unversioned: a versioned lookup would go
     * straight to glibc, and TSan would never see a condition wait drop
     * and retake its mutex. */
    version = NULL;
#endif
    if (version != NULL)
        p = dlvsym(RTLD_NEXT, sym, version);
    if (p == NULL)
        p = dlsym(RTLD_NEXT, sym);
    return p;
}

/* First call of each real function: resolve, remember, call.  Threads
 * racing here all store the same pointer.  dlsym may allocate; the heap
 * shim serves that without taking any pthread lock, so resolution never
 * re-enters itself. */
#define X_STUB(f, t, sym, ver, params, args, miss)                            \
    static int stub_##f params                                                \
    {                                                                         \
        t fn = (t)sync_resolve(sym, ver);                                     \
        if (fn == NULL)                                                       \
            return miss;                                                      \
        atomic_store_explicit(&sync_state.real.f, fn, memory_order_relaxed);  \
        return fn args;                                                       \
    }
SYNC_REALS(X_STUB)

/* ------------------------------------------------------------ sampling */

FENCE static uint64_t sync_rand(void)
{
    uint64_t x = sync_tls.rng;
    if (x == 0)
        x = cp_sync_now() ^ ((uintptr_t)&sync_tls * 0x9e3779b97f4a7c15ULL) ^ 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    sync_tls.rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

/* Top of the calling thread's stack, or 0 when unknown.  glibc puts a
 * thread's descriptor (pthread_self) just above its stack, user-supplied
 * stacks included; the main thread's stack ends at __libc_stack_end. */
FENCE static uintptr_t stack_top(uintptr_t sp)
{
    const uintptr_t max = (uintptr_t)1 << 30;
    uintptr_t self = (uintptr_t)pthread_self();
    if (sp < self && self - sp < max)
        return self;
    uintptr_t top = (uintptr_t)__libc_stack_end;
    if (sp < top && top - sp < max)
        return top;
    return 0;
}

/*
 * The caller's stack as return addresses, leaf first, led by api + 1 (the
 * interposed function, so that profiles read like Go's, which start at
 * sync.(*Mutex).Lock; +1 because consumers look up return address - 1).
 * Frame-pointer walk: every read is inside [our frame, stack top) and
 * frames must strictly grow, so garbage in rbp (code built without frame
 * pointers) ends the walk instead of faulting.
 */
FENCE __attribute__((no_sanitize_address)) static size_t
sync_stack(uintptr_t *pcs, size_t max, const void *api)
{
    size_t n = 0;
    pcs[n++] = (uintptr_t)api + 1;
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t lo = fp, hi = stack_top(fp);
    uintptr_t ours_lo = (uintptr_t)__start_cpprof_sync_text;
    uintptr_t ours_hi = (uintptr_t)__stop_cpprof_sync_text;
    while (n < max && hi != 0 && fp >= lo && fp <= hi - 2 * sizeof fp &&
           (fp & (sizeof fp - 1)) == 0) {
        const uintptr_t *frame = (const uintptr_t *)fp;
        uintptr_t next = frame[0], ret = frame[1];
        if (ret < 4096)
            break;
        if (ret < ours_lo || ret >= ours_hi)
            pcs[n++] = ret;
        if (next <= fp)
            break;
        fp = next;
    }
    return n;
}

/* One gap of the mutex sampler: uniform on [1, 2f-1], mean f.  Evenly
 * spread samples keep the scaled totals' variance well below independent
 * 1-in-f coin flips while still averaging exactly 1/f of the events. */
FENCE static int64_t mutex_gap(int f)
{
    return f <= 1 ? 1 : 1 + (int64_t)(sync_rand() % (uint64_t)(2 * f - 1));
}

/* ------------------------------------------ records and deferred work */

/* The record of kind for this stack (a thread-local hint makes a repeat
 * of the last stack one comparison), or -1. */
FENCE static int record_find(enum cp_sync_kind kind, const uintptr_t *pcs,
                             size_t n)
{
    int hint = sync_tls.hint[kind] - 1;
    int idx = cp_sync_record_find(kind, pcs, n, &hint);
    sync_tls.hint[kind] = hint + 1;
    return idx;
}

/* Adds to record rec in this thread's stripe (threads take stripes in
 * turn, so a few busy threads never share one). */
FENCE static void record_add(int rec, uint64_t count, uint64_t delay)
{
    if (sync_tls.stripe == 0)
        sync_tls.stripe = 1 + atomic_fetch_add_explicit(
                                  &sync_state.stripes, 1, memory_order_relaxed) %
                                  CP_SYNC_STRIPES;
    cp_sync_record_add(rec, sync_tls.stripe - 1, count, delay);
}

/* Adds the deferred block event, if any, to its record. */
FENCE static void flush_block(void)
{
    if (sync_tls.brec != 0) {
        record_add(sync_tls.brec - 1, sync_tls.bcount, sync_tls.bdelay);
        sync_tls.brec = 0;
        sync_tls.any = sync_tls.npend != 0;
    }
}

/* Keeps the wait on slot (begun at t0) open until lock is released;
 * false when there is no room (the caller ends the wait now). */
FENCE static bool pend_push(const void *lock, int slot, uint64_t t0)
{
    if (sync_tls.npend >= PEND_MAX)
        return false;
    int i = sync_tls.npend++;
    sync_tls.pend[i].lock = lock;
    sync_tls.pend[i].slot = slot;
    sync_tls.pend[i].gen =
        atomic_load_explicit(&sync_state.gen, memory_order_relaxed);
    sync_tls.pend[i].t0 = t0;
    sync_tls.any = true;
    return true;
}

/* Takes the open wait on lock out of the list: its slot (*t0 its start),
 * or -1.  Waits from before a reset of the waiters are dropped. */
FENCE static int pend_take(const void *lock, uint64_t *t0)
{
    int slot = -1;
    uint32_t gen = atomic_load_explicit(&sync_state.gen, memory_order_relaxed);
    for (int i = 0; i < sync_tls.npend; i++) {
        if (sync_tls.pend[i].lock != lock && sync_tls.pend[i].gen == gen)
            continue;
        if (sync_tls.pend[i].lock == lock && sync_tls.pend[i].gen == gen) {
            slot = sync_tls.pend[i].slot;
            *t0 = sync_tls.pend[i].t0;
        } /* else a wait from before a reset: dropped */
        sync_tls.pend[i--] = sync_tls.pend[--sync_tls.npend];
        if (slot >= 0)
            break;
    }
    sync_tls.any = sync_tls.npend != 0 || sync_tls.brec != 0;
    return slot;
}

/*
 * Go's block sampling: an event of d ns is kept when d >= rate, else
 * with probability ~d/rate and then scaled by rate/d.  rec is the
 * record found before the wait; with `held` the thread now holds a lock,
 * so the add waits for its next release (flush_block).
 */
FENCE static void block_event(int rec, uint64_t t0, uint64_t t1, bool held)
{
    int64_t rate = atomic_load_explicit(&sync_state.block_rate,
                                        memory_order_relaxed);
    if (rate <= 0 || rec < 0)
        return;
    uint64_t d = t1 > t0 ? t1 - t0 : 1;
    uint64_t count = CP_SYNC_COUNT_ONE, delay = d;
    if (rate > 1 && d < (uint64_t)rate) {
        if (sync_rand() % (uint64_t)rate > d)
            return;
        double c = (double)rate / (double)d * CP_SYNC_COUNT_ONE;
        count = c < 9e18 ? (uint64_t)c : (uint64_t)9e18;
        delay = (uint64_t)rate;
    }
    flush_block(); /* at most one event waits */
    if (!held) {
        record_add(rec, count, delay);
        return;
    }
    sync_tls.brec = rec + 1;
    sync_tls.bcount = count;
    sync_tls.bdelay = delay;
    sync_tls.any = true;
}

/* The block record for a wait at api, found before blocking. */
FENCE static int block_record(int flags, const void *api)
{
    if ((flags & F_BLOCK) == 0 || cp_own_now())
        return -1; /* off, or the profiler's own wait */
    uintptr_t pcs[CP_SYNC_DEPTH];
    size_t n = sync_stack(pcs, CP_SYNC_DEPTH, api);
    return record_find(CP_SYNC_BLOCK, pcs, n);
}

/* The unlocker at api made `waiters` threads wait waited_ns in total.
 * Runs after the real release, outside any critical section. */
FENCE static void mutex_event(uint64_t waiters, uint64_t waited_ns,
                              const void *api)
{
    int f = atomic_load_explicit(&sync_state.mutex_fraction,
                                 memory_order_relaxed);
    if (f <= 0 || waiters == 0 || cp_own_now())
        return; /* off, or the profiler's own lock */
    int64_t left = sync_tls.mutex_left;
    if (left <= 0 || left > 2 * (int64_t)f)
        left = mutex_gap(f);
    left -= (int64_t)waiters;
    uint64_t k = 0;
    while (left <= 0) {
        k++;
        left += mutex_gap(f);
    }
    sync_tls.mutex_left = left;
    if (k == 0)
        return;
    double scale = (double)k * (double)f / (double)waiters;
    uintptr_t pcs[CP_SYNC_DEPTH];
    size_t n = sync_stack(pcs, CP_SYNC_DEPTH, api);
    int rec = record_find(CP_SYNC_MUTEX, pcs, n);
    if (rec >= 0)
        record_add(rec, k * (uint64_t)f * CP_SYNC_COUNT_ONE,
                   (uint64_t)((double)waited_ns * scale));
}

/* ---------------------------------------------- locks: shared slow path */

enum lock_op {
    OP_MUTEX, OP_MUTEX_TIMED, OP_MUTEX_CLOCK,
    OP_RD, OP_RD_TIMED, OP_RD_CLOCK,
    OP_WR, OP_WR_TIMED, OP_WR_CLOCK,
    OP_SPIN,
};

/* Every interposer, for the hidden aliases below. */
#define SYNC_INTERPOSED(X) \
    X(pthread_mutex_lock) X(pthread_mutex_timedlock)                     \
    X(pthread_mutex_clocklock) X(pthread_mutex_unlock)                   \
    X(pthread_rwlock_rdlock) X(pthread_rwlock_timedrdlock)               \
    X(pthread_rwlock_clockrdlock) X(pthread_rwlock_wrlock)               \
    X(pthread_rwlock_timedwrlock) X(pthread_rwlock_clockwrlock)          \
    X(pthread_rwlock_unlock) X(pthread_cond_wait)                        \
    X(pthread_cond_timedwait) X(pthread_cond_clockwait) X(sem_wait)      \
    X(sem_timedwait) X(sem_clockwait) X(pthread_join)                    \
    X(pthread_barrier_wait) X(pthread_spin_lock)

/* Hidden aliases of the interposers: their addresses lead the recorded
 * stacks (taking the public name's address would go through the GOT). */
#define SELF(name) cp_sync_self_##name
#define DECLARE_SELF(name) \
    extern __typeof__(name) SELF(name) __attribute__((visibility("hidden")));
SYNC_INTERPOSED(DECLARE_SELF)

static const void *lock_api(enum lock_op op)
{
    switch (op) {
    case OP_MUTEX: return (const void *)SELF(pthread_mutex_lock);
    case OP_MUTEX_TIMED: return (const void *)SELF(pthread_mutex_timedlock);
    case OP_MUTEX_CLOCK: return (const void *)SELF(pthread_mutex_clocklock);
    case OP_RD: return (const void *)SELF(pthread_rwlock_rdlock);
    case OP_RD_TIMED: return (const void *)SELF(pthread_rwlock_timedrdlock);
    case OP_RD_CLOCK: return (const void *)SELF(pthread_rwlock_clockrdlock);
    case OP_WR: return (const void *)SELF(pthread_rwlock_wrlock);
    case OP_WR_TIMED: return (const void *)SELF(pthread_rwlock_timedwrlock);
    case OP_WR_CLOCK: return (const void *)SELF(pthread_rwlock_clockwrlock);
    case OP_SPIN: return (const void *)SELF(pthread_spin_lock);
    }
    return NULL;
}

static enum cp_trace_wait_kind lock_trace_kind(enum lock_op op)
{
    switch (op) {
    case OP_MUTEX: case OP_MUTEX_TIMED: case OP_MUTEX_CLOCK:
        return CP_TRACE_WAIT_MUTEX;
    case OP_RD: case OP_RD_TIMED: case OP_RD_CLOCK:
        return CP_TRACE_WAIT_RWLOCK_READ;
    case OP_WR: case OP_WR_TIMED: case OP_WR_CLOCK:
        return CP_TRACE_WAIT_RWLOCK_WRITE;
    case OP_SPIN:
        return CP_TRACE_WAIT_SPIN;
    }
    return CP_TRACE_WAIT_MUTEX;
}

FENCE static int lock_real(enum lock_op op, void *o, clockid_t clk,
                           const struct timespec *ts)
{
    switch (op) {
    case OP_MUTEX: return REAL(mutex_lock)(o);
    case OP_MUTEX_TIMED: return REAL(mutex_timedlock)(o, ts);
    case OP_MUTEX_CLOCK: return REAL(mutex_clocklock)(o, clk, ts);
    case OP_RD: return REAL(rwlock_rdlock)(o);
    case OP_RD_TIMED: return REAL(rwlock_timedrdlock)(o, ts);
    case OP_RD_CLOCK: return REAL(rwlock_clockrdlock)(o, clk, ts);
    case OP_WR: return REAL(rwlock_wrlock)(o);
    case OP_WR_TIMED: return REAL(rwlock_timedwrlock)(o, ts);
    case OP_WR_CLOCK: return REAL(rwlock_clockwrlock)(o, clk, ts);
    case OP_SPIN: return REAL(spin_lock)(o);
    }
    return EINVAL;
}

FENCE static int lock_try(enum lock_op op, void *o)
{
    switch (op) {
    case OP_MUTEX: case OP_MUTEX_TIMED: case OP_MUTEX_CLOCK:
        return pthread_mutex_trylock(o);
    case OP_RD: case OP_RD_TIMED: case OP_RD_CLOCK:
        return pthread_rwlock_tryrdlock(o);
    case OP_WR: case OP_WR_TIMED: case OP_WR_CLOCK:
        return pthread_rwlock_trywrlock(o);
    case OP_SPIN:
        return pthread_spin_trylock(o);
    }
    return EINVAL;
}

/*
 * glibc's trylock of a robust mutex left unrecoverable (its owner died
 * and it was unlocked without pthread_mutex_consistent) returns
 * ENOTRECOVERABLE but leaves the lock word held, so every later lock
 * would hang; the real lock alone returns ENOTRECOVERABLE cleanly.  Such
 * a mutex is recognised by glibc's owner marker (a value no thread id
 * takes) and goes straight to the real call.
 */
#define GLIBC_OWNER_NOTRECOVERABLE 0x7ffffffe
static inline bool mutex_unrecoverable(enum lock_op op, void *o)
{
#ifdef __GLIBC__
    if (op == OP_MUTEX || op == OP_MUTEX_TIMED || op == OP_MUTEX_CLOCK) {
        const volatile int *owner = &((pthread_mutex_t *)o)->__data.__owner;
        return *owner == GLIBC_OWNER_NOTRECOVERABLE;
    }
#endif
    (void)op;
    (void)o;
    return false;
}

#ifdef __GLIBC__
#define GLIBC_KIND_ROBUST 16   /* PTHREAD_MUTEX_ROBUST_NORMAL_NP's flag */
#define GLIBC_KIND_PSHARED 128 /* PTHREAD_MUTEX_PSHARED_BIT */
#endif

/*
 * May the caller skip the trylock and go straight to the real call of
 * an untimed lock op?  Yes when the process has a single thread (glibc's
 * __libc_single_threaded, which pthread_create clears before the second
 * thread exists) and the lock is process-private: nobody else can hold
 * it, so the call cannot wait.  (It can deadlock on the caller itself,
 * which never ends and so is no event either; an error-checking,
 * recursive or robust mutex answers at once.)  This is also where the
 * trylock cost most: glibc's own lock and unlock skip their atomic
 * instructions in a single-threaded process, its trylock does not.
 * Timed ops keep the full path: a self-deadlock with a deadline is a
 * wait that ends.
 */
static inline bool lock_cannot_wait(enum lock_op op, const void *o)
{
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 32)
    if (!__libc_single_threaded)
        return false;
    if (op == OP_MUTEX)
        return (((const volatile pthread_mutex_t *)o)->__data.__kind &
                GLIBC_KIND_PSHARED) == 0;
    if (op == OP_RD || op == OP_WR)
        return ((const volatile pthread_rwlock_t *)o)->__data.__shared == 0;
#endif
    (void)op;
    (void)o;
    return false;
}

/* May a waiter that got this lock keep its wait open until its release?
 * Not for rwlocks (readers release in any order) nor robust mutexes (an
 * owner that dies never releases). */
static inline bool wait_may_defer(enum lock_op op, const void *o)
{
    if (op != OP_MUTEX && op != OP_MUTEX_TIMED && op != OP_MUTEX_CLOCK)
        return false;
#ifdef __GLIBC__
    return (((const volatile pthread_mutex_t *)o)->__data.__kind &
            GLIBC_KIND_ROBUST) == 0;
#else
    (void)o;
    return false;
#endif
}

/* A deadline the real call would accept without complaint.  Anything
 * else goes straight to the real call, so its error (or its crash on
 * NULL) is exactly the real one. */
static bool deadline_ok(bool has_clock, clockid_t clk,
                        const struct timespec *ts)
{
    if (has_clock && clk != CLOCK_REALTIME && clk != CLOCK_MONOTONIC)
        return false;
    return ts != NULL && ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L;
}

static int lock_contended(enum lock_op op, void *o, clockid_t clk,
                          const struct timespec *ts);

/* Profiling is on: acquire, and if that meant waiting, account for it.
 * (The timed forms and spin locks; the untimed mutex and rwlock
 * interposers have their own fast paths.) */
FENCE static int lock_slow(enum lock_op op, void *o, clockid_t clk,
                           const struct timespec *ts)
{
    bool timed = op != OP_MUTEX && op != OP_RD && op != OP_WR && op != OP_SPIN;
    bool clocked = op == OP_MUTEX_CLOCK || op == OP_RD_CLOCK ||
                   op == OP_WR_CLOCK;
    if (timed && !deadline_ok(clocked, clk, ts))
        return lock_real(op, o, clk, ts);

    if (mutex_unrecoverable(op, o))
        return lock_real(op, o, clk, ts);
    int r = lock_try(op, o);
    if (LIKELY(r == 0) || r == EOWNERDEAD)
        return r; /* uncontended: no clock, no table */
    if (r != EBUSY)
        return lock_real(op, o, clk, ts); /* the real call's own error */
    return lock_contended(op, o, clk, ts);
}

/* The trylock said EBUSY: wait in the real call and account for it.
 * Everything before lock_real is free (the thread is about to block);
 * everything after it runs inside the new critical section, so it is
 * kept to thread-local stores unless block or tracing needs t1. */
FENCE static int lock_contended(enum lock_op op, void *o, clockid_t clk,
                                const struct timespec *ts)
{
    int saved = errno;
    int flags = load_flags();
    flush_block();
    int rec = block_record(flags, lock_api(op));
    uint64_t t0 = cp_sync_now();
    int slot = (flags & F_MUTEX) && op != OP_SPIN ? cp_sync_wait_begin(o, t0)
                                                  : -1;
    int r = lock_real(op, o, clk, ts);
    bool got = r == 0 || r == EOWNERDEAD;
    if (slot >= 0 && !(got && wait_may_defer(op, o) && pend_push(o, slot, t0)))
        cp_sync_wait_end(o, slot, t0);
    if ((got || r == ETIMEDOUT) && (flags & (F_BLOCK | F_TRACE))) {
        uint64_t t1 = cp_sync_now();
        /* A spin lock's release is not interposed: add at once. */
        block_event(rec, t0, t1, got && op != OP_SPIN);
        if (flags & F_TRACE)
            cp_trace_wait_event(lock_trace_kind(op), o, t0, t1);
    }
    errno = saved;
    return r;
}

/* The holder releases o (rw: an rwlock): charge it for its waiters in
 * the critical section, release, then record outside of it. */
FENCE static int unlock_slow(void *o, bool rw, const void *api)
{
    int saved = errno;
    uint64_t waiters = 0, waited = 0, t0 = 0;
    bool idle = false;
    int own = sync_tls.npend != 0 ? pend_take(o, &t0) : -1;
    if ((load_flags() & F_MUTEX) || own >= 0)
        waited = cp_sync_release(o, own, t0, &waiters, &idle);
    int r = rw ? REAL(rwlock_unlock)(o) : REAL(mutex_unlock)(o);
    if (idle)
        cp_sync_wait_done(o);
    flush_block();
    if (waiters != 0 && r == 0)
        mutex_event(waiters, waited, api);
    errno = saved;
    return r;
}

/* ------------------------------------------------------ mutex & rwlock */

/*
 * The interposers that only choose between the real call (everything
 * off) and their slow path.  A macro defines each whole function, so its
 * first instruction is its own in the debug info.
 */
#define WRAP(name, real, params, args, slow)          \
    INTERPOSE int name params                         \
    {                                                 \
        if (LIKELY(load_flags() == 0))                \
            return REAL(real) args;                   \
        return slow;                                  \
    }

/*
 * glibc's trylock of its default mutex (PTHREAD_MUTEX_TIMED_NP, private,
 * no flags: __kind == 0), inlined so that the uncontended lock under
 * profiling is a leaf with no call: one compare-and-swap of the lock
 * word 0 -> 1, then the owner and user count glibc's own lock records
 * (its unlock, destroy and condition waits read them).  Every other kind
 * takes the real trylock.  Allowed only when the real functions are
 * glibc's own (no interceptor such as a sanitizer's between us and
 * libc, no Valgrind tool watching its locks): sync_inline_decide.  The
 * owner is the thread id cached in sync_tls.tid (a fork child forgets
 * it, see sync_atfork_child).
 */
#if SYNC_INLINE_TRYLOCK
#define mutex_kind_default(m) \
    (((const volatile pthread_mutex_t *)(m))->__data.__kind == 0)
static inline bool mutex_trylock_inline(pthread_mutex_t *m, int tid)
{
    int unlocked = 0;
    if (!__atomic_compare_exchange_n(&m->__data.__lock, &unlocked, 1, false,
                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return false;
    m->__data.__owner = tid;
    m->__data.__nusers++;
    return true;
}
#endif

/* The lock under profiling, past the single-thread test and the inlined
 * trylock: the real trylock, then the contended path if it said EBUSY. */
static inline __attribute__((always_inline)) int
mutex_lock_try_path(pthread_mutex_t *m)
{
    if (mutex_unrecoverable(OP_MUTEX, m))
        return REAL(mutex_lock)(m);
    int r = pthread_mutex_trylock(m);
    if (LIKELY(r == 0) || r == EOWNERDEAD)
        return r;
    if (r != EBUSY)
        return REAL(mutex_lock)(m); /* the real call's own error */
    return lock_contended(OP_MUTEX, m, 0, NULL);
}

#if SYNC_INLINE_TRYLOCK
/* A thread's first default-mutex lock under profiling: caches its id
 * for the inlined trylock (or -1 when that is not allowed), then takes
 * the trylock path once. */
FENCE static int mutex_lock_first(pthread_mutex_t *m)
{
    sync_tls.tid = atomic_load_explicit(&sync_state.inline_ok,
                                        memory_order_relaxed) > 0
                       ? (int)syscall(SYS_gettid) /* cannot fail */
                       : -1;
    return mutex_lock_try_path(m);
}
#endif

INTERPOSE int pthread_mutex_lock(pthread_mutex_t *m)
{
    if (LIKELY(load_flags() == 0))
        return REAL(mutex_lock)(m);
    /* Profiling: an uncontended lock is no extra work at all in a
     * single-threaded process, one inlined CAS for the default mutex,
     * one successful real trylock for the other kinds. */
    if (lock_cannot_wait(OP_MUTEX, m))
        return REAL(mutex_lock)(m);
#if SYNC_INLINE_TRYLOCK
    if (LIKELY(mutex_kind_default(m))) {
        int tid = sync_tls.tid;
        if (LIKELY(tid > 0)) {
            if (LIKELY(mutex_trylock_inline(m, tid)))
                return 0;
            return lock_contended(OP_MUTEX, m, 0, NULL); /* EBUSY */
        }
        if (tid == 0)
            return mutex_lock_first(m);
    }
#endif
    return mutex_lock_try_path(m);
}

WRAP(pthread_mutex_timedlock, mutex_timedlock,
     (pthread_mutex_t *restrict m, const struct timespec *restrict ts),
     (m, ts), lock_slow(OP_MUTEX_TIMED, m, 0, ts))
WRAP(pthread_mutex_clocklock, mutex_clocklock,
     (pthread_mutex_t *restrict m, clockid_t clk,
      const struct timespec *restrict ts),
     (m, clk, ts), lock_slow(OP_MUTEX_CLOCK, m, clk, ts))

INTERPOSE int pthread_mutex_unlock(pthread_mutex_t *m)
{
    if (LIKELY(load_flags() == 0))
        return REAL(mutex_unlock)(m);
    /* Nothing of ours to finish and nobody waiting: the real unlock.
     * (Not the mutex's own lock word: reading it right after the
     * trylock's writes costs more than this line, on some CPUs.)  No
     * test of F_MUTEX: with it off nobody registers, so the busy line
     * says "no" but for waits begun before, which the slow path ends. */
    if (LIKELY(!sync_tls.any) && LIKELY(!cp_sync_maybe_waited(m)))
        return REAL(mutex_unlock)(m);
    return unlock_slow(m, false, (const void *)SELF(pthread_mutex_unlock));
}

/*
 * The three read-lock and the three write-lock interposers.  The untimed
 * ones have pthread_mutex_lock's shape (not lock_slow's dispatch on op):
 * straight to the real call when everything is off or the process has
 * one thread, else one real try call and, if it said EBUSY, the
 * contended path.
 */
#define RWLOCK_UNTIMED(m, M)                                                 \
    INTERPOSE int pthread_rwlock_##m##lock(pthread_rwlock_t *l)              \
    {                                                                        \
        if (LIKELY(load_flags() == 0) || lock_cannot_wait(OP_##M, l))       \
            return REAL(rwlock_##m##lock)(l);                                \
        int r = pthread_rwlock_try##m##lock(l);                              \
        if (LIKELY(r == 0))                                                  \
            return 0;                                                        \
        if (r != EBUSY)                                                      \
            return REAL(rwlock_##m##lock)(l); /* the real call's error */    \
        return lock_contended(OP_##M, l, 0, NULL);                           \
    }
#define WRAP_RWLOCK(m, M)                                                    \
    RWLOCK_UNTIMED(m, M)                                                     \
    WRAP(pthread_rwlock_timed##m##lock, rwlock_timed##m##lock,               \
         (pthread_rwlock_t *restrict l, const struct timespec *restrict ts), \
         (l, ts), lock_slow(OP_##M##_TIMED, l, 0, ts))                       \
    WRAP(pthread_rwlock_clock##m##lock, rwlock_clock##m##lock,               \
         (pthread_rwlock_t *restrict l, clockid_t clk,                       \
          const struct timespec *restrict ts),                               \
         (l, clk, ts), lock_slow(OP_##M##_CLOCK, l, clk, ts))
WRAP_RWLOCK(rd, RD)
WRAP_RWLOCK(wr, WR)

INTERPOSE int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    if (LIKELY(load_flags() == 0))
        return REAL(rwlock_unlock)(l);
    if (LIKELY(!sync_tls.any) && LIKELY(!cp_sync_maybe_waited(l)))
        return REAL(rwlock_unlock)(l);
    return unlock_slow(l, true, (const void *)SELF(pthread_rwlock_unlock));
}

WRAP(pthread_spin_lock, spin_lock, (pthread_spinlock_t *s), (s),
     lock_slow(OP_SPIN, (void *)s, 0, NULL))

/* ---------------------------------------------------- condition waits */

enum cond_op { COND_WAIT, COND_TIMED, COND_CLOCK };

FENCE static int cond_slow(enum cond_op op, pthread_cond_t *c,
                           pthread_mutex_t *m, clockid_t clk,
                           const struct timespec *ts)
{
    const void *api = op == COND_WAIT ? (const void *)SELF(pthread_cond_wait)
                      : op == COND_TIMED
                          ? (const void *)SELF(pthread_cond_timedwait)
                          : (const void *)SELF(pthread_cond_clockwait);
    if (op != COND_WAIT && !deadline_ok(op == COND_CLOCK, clk, ts))
        goto passthrough; /* fails at once: m is not released */

    int saved = errno;
    int flags = load_flags();
    flush_block();
    int rec = block_record(flags, api);
    /* The wait releases m: the caller is the holder that made m's
     * waiters wait, as if it had called pthread_mutex_unlock here. */
    uint64_t own_t0 = 0;
    int own = sync_tls.npend != 0 ? pend_take(m, &own_t0) : -1;
    if ((flags & F_MUTEX) || own >= 0) {
        uint64_t waiters = 0;
        bool idle = false;
        uint64_t waited = cp_sync_release(m, own, own_t0, &waiters, &idle);
        if (idle)
            cp_sync_wait_done(m);
        if (waiters != 0)
            mutex_event(waiters, waited, api);
    }
    uint64_t t0 = cp_sync_now();
    int r = op == COND_WAIT    ? REAL(cond_wait)(c, m)
            : op == COND_TIMED ? REAL(cond_timedwait)(c, m, ts)
                               : REAL(cond_clockwait)(c, m, clk, ts);
    /* One event per call, timed out or not; m is held again. */
    if ((r == 0 || r == ETIMEDOUT) && (flags & (F_BLOCK | F_TRACE))) {
        uint64_t t1 = cp_sync_now();
        block_event(rec, t0, t1, true);
        if (flags & F_TRACE)
            cp_trace_wait_event(CP_TRACE_WAIT_COND, c, t0, t1);
    }
    errno = saved;
    return r;

passthrough:
    return op == COND_TIMED ? REAL(cond_timedwait)(c, m, ts)
                            : REAL(cond_clockwait)(c, m, clk, ts);
}

WRAP(pthread_cond_wait, cond_wait,
     (pthread_cond_t *restrict c, pthread_mutex_t *restrict m), (c, m),
     cond_slow(COND_WAIT, c, m, 0, NULL))
WRAP(pthread_cond_timedwait, cond_timedwait,
     (pthread_cond_t *restrict c, pthread_mutex_t *restrict m,
      const struct timespec *restrict ts),
     (c, m, ts), cond_slow(COND_TIMED, c, m, 0, ts))
WRAP(pthread_cond_clockwait, cond_clockwait,
     (pthread_cond_t *restrict c, pthread_mutex_t *restrict m, clockid_t clk,
      const struct timespec *restrict ts),
     (c, m, clk, ts), cond_slow(COND_CLOCK, c, m, clk, ts))

/* ----------------------------------------------------------- semaphores */

enum sem_op { SEM_WAIT, SEM_TIMED, SEM_CLOCK };

FENCE static int sem_real(enum sem_op op, sem_t *s, clockid_t clk,
                          const struct timespec *ts)
{
    return op == SEM_WAIT    ? REAL(sem_wait)(s)
           : op == SEM_TIMED ? REAL(sem_timedwait)(s, ts)
                             : REAL(sem_clockwait)(s, clk, ts);
}

FENCE static int sem_slow(enum sem_op op, sem_t *s, clockid_t clk,
                          const struct timespec *ts)
{
    if (op != SEM_WAIT && !deadline_ok(op == SEM_CLOCK, clk, ts))
        return sem_real(op, s, clk, ts);
    int flags = load_flags();
    int saved = errno;
    if (sem_trywait(s) == 0) {
        errno = saved;
        return 0;
    }
    bool busy = errno == EAGAIN;
    errno = saved;
    if (!busy)
        return sem_real(op, s, clk, ts);

    const void *api = op == SEM_WAIT    ? (const void *)SELF(sem_wait)
                      : op == SEM_TIMED ? (const void *)SELF(sem_timedwait)
                                        : (const void *)SELF(sem_clockwait);
    flush_block();
    int rec = block_record(flags, api);
    uint64_t t0 = cp_sync_now();
    int r = sem_real(op, s, clk, ts);
    int err = errno;
    uint64_t t1 = cp_sync_now();
    if (r == 0 || err == EINTR || err == ETIMEDOUT) {
        block_event(rec, t0, t1, false);
        if (flags & F_TRACE)
            cp_trace_wait_event(CP_TRACE_WAIT_SEM, s, t0, t1);
    }
    errno = err; /* exactly what the real call left */
    return r;
}

WRAP(sem_wait, sem_wait, (sem_t *s), (s), sem_slow(SEM_WAIT, s, 0, NULL))
WRAP(sem_timedwait, sem_timedwait,
     (sem_t *restrict s, const struct timespec *restrict ts), (s, ts),
     sem_slow(SEM_TIMED, s, 0, ts))
WRAP(sem_clockwait, sem_clockwait,
     (sem_t *restrict s, clockid_t clk, const struct timespec *restrict ts),
     (s, clk, ts), sem_slow(SEM_CLOCK, s, clk, ts))

/* ------------------------------------------------------ join & barrier */

FENCE static int join_slow(pthread_t t, void **ret)
{
    int flags = load_flags();
    if ((flags & (F_BLOCK | F_TRACE)) == 0)
        return REAL(join)(t, ret);
    /* A thread that already finished is joined without blocking. */
    int r = pthread_tryjoin_np(t, ret);
    if (r != EBUSY)
        return r == 0 ? 0 : REAL(join)(t, ret);
    int saved = errno;
    flush_block();
    int rec = block_record(flags, (const void *)SELF(pthread_join));
    uint64_t t0 = cp_sync_now();
    r = REAL(join)(t, ret);
    uint64_t t1 = cp_sync_now();
    if (r == 0) {
        block_event(rec, t0, t1, false);
        if (flags & F_TRACE)
            cp_trace_wait_event(CP_TRACE_WAIT_JOIN, (const void *)t, t0, t1);
    }
    errno = saved;
    return r;
}

WRAP(pthread_join, join, (pthread_t t, void **ret), (t, ret),
     join_slow(t, ret))

FENCE static int barrier_slow(pthread_barrier_t *b)
{
    int flags = load_flags();
    if ((flags & (F_BLOCK | F_TRACE)) == 0)
        return REAL(barrier_wait)(b);
    int saved = errno;
    flush_block();
    int rec = block_record(flags, (const void *)SELF(pthread_barrier_wait));
    uint64_t t0 = cp_sync_now();
    int r = REAL(barrier_wait)(b);
    uint64_t t1 = cp_sync_now();
    if (r == 0 || r == PTHREAD_BARRIER_SERIAL_THREAD) {
        block_event(rec, t0, t1, false);
        if (flags & F_TRACE)
            cp_trace_wait_event(CP_TRACE_WAIT_BARRIER, b, t0, t1);
    }
    errno = saved;
    return r;
}

WRAP(pthread_barrier_wait, barrier_wait, (pthread_barrier_t *b), (b),
     barrier_slow(b))

#define DEFINE_SELF(name) \
    extern __typeof__(name) SELF(name) \
        __attribute__((alias(#name), copy(name), visibility("hidden")));
SYNC_INTERPOSED(DEFINE_SELF)

/* ------------------------------------------- settings (normal context) */

#if SYNC_INLINE_TRYLOCK
/* A fork child's only thread has a new id. */
static void sync_atfork_child(void)
{
    sync_tls.tid = 0;
}

/* The function libc itself exports as sym, or NULL. */
static void *libc_own(const char *sym)
{
    void *h = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    if (h == NULL)
        return NULL;
    void *p = dlsym(h, sym);
    dlclose(h);
    return p;
}
#endif

#if SYNC_INLINE_TRYLOCK
/*
 * Whether the glibc we run on agrees with mutex_trylock_inline, tried on
 * a mutex of our own: a default mutex has kind 0; a lock taken inline is
 * seen as held by glibc's trylock and released by glibc's unlock back to
 * the all-zero state; the inline trylock fails on a lock glibc's lock
 * holds.  The layout is glibc's ABI and cannot move, but what the fields
 * mean could: any disagreement keeps the fast path on glibc's own calls.
 */
static bool inline_trylock_agrees(void *lock_fn, void *trylock_fn,
                                  void *unlock_fn)
{
    int (*lock)(pthread_mutex_t *) = (int (*)(pthread_mutex_t *))lock_fn;
    int (*trylock)(pthread_mutex_t *) = (int (*)(pthread_mutex_t *))trylock_fn;
    int (*unlock)(pthread_mutex_t *) = (int (*)(pthread_mutex_t *))unlock_fn;
    static const pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    int tid = (int)syscall(SYS_gettid);
    if (!mutex_kind_default(&m) || !mutex_trylock_inline(&m, tid))
        return false;
    bool ok = trylock(&m) == EBUSY && unlock(&m) == 0 &&
              memcmp(&m, &fresh, sizeof m) == 0;
    if (!ok || lock(&m) != 0)
        return false;
    ok = !mutex_trylock_inline(&m, tid) && m.__data.__owner == tid;
    return unlock(&m) == 0 && ok && memcmp(&m, &fresh, sizeof m) == 0;
}
#endif

/* Decides once, before any profile is first turned on, whether the lock
 * fast path may take default mutexes itself (mutex_trylock_inline). */
static void sync_inline_decide(void)
{
    if (atomic_load_explicit(&sync_state.inline_ok, memory_order_acquire))
        return;
    int ok = -1;
#if SYNC_INLINE_TRYLOCK
    static const char *const syms[] = {
        "pthread_mutex_lock", "pthread_mutex_trylock",
        "pthread_mutex_unlock",
    };
    void *own[sizeof syms / sizeof *syms];
    ok = 1;
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *next = sync_resolve(syms[i], NULL);
        own[i] = libc_own(syms[i]);
        if (next == NULL || next != own[i])
            ok = -1; /* an interceptor sits between us and libc */
    }
    if (ok > 0 && !inline_trylock_agrees(own[0], own[1], own[2]))
        ok = -1;
#ifdef SYNC_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND)
        ok = -1; /* Helgrind and DRD follow glibc's lock calls */
#endif
    /* Lock elision (a glibc tunable, off by default) turns default
     * mutexes into elided ones on their first real lock; its unlock then
     * leaves the user count we raised. */
    const char *tunables = getenv("GLIBC_TUNABLES");
    if (tunables != NULL && strstr(tunables, "elision") != NULL)
        ok = -1;
    if (ok > 0 && pthread_atfork(NULL, NULL, sync_atfork_child) != 0)
        ok = -1;
#endif
    int undecided = 0;
    atomic_compare_exchange_strong_explicit(&sync_state.inline_ok,
                                            &undecided, ok,
                                            memory_order_acq_rel,
                                            memory_order_acquire);
}

bool cp_sync_inline_trylock(void)
{
    return atomic_load_explicit(&sync_state.inline_ok,
                                memory_order_acquire) > 0;
}

static void set_flag(int flag, bool on)
{
    if (on) {
        /* What deciding allocates (dlsym, pthread_atfork) is ours. */
        bool was_own = cp_own_begin();
        sync_inline_decide();
        cp_own_end(was_own);
        atomic_fetch_or_explicit(&sync_state.flags, flag,
                                 memory_order_relaxed);
    } else
        atomic_fetch_and_explicit(&sync_state.flags, ~flag,
                                  memory_order_relaxed);
}

int cpprof_set_block_profile_rate(int64_t rate_ns)
{
    if (rate_ns < 0)
        rate_ns = 0;
    atomic_store_explicit(&sync_state.block_rate, rate_ns,
                          memory_order_relaxed);
    set_flag(F_BLOCK, rate_ns > 0);
    return 0;
}

int64_t cpprof_block_profile_rate(void)
{
    return atomic_load_explicit(&sync_state.block_rate, memory_order_relaxed);
}

int cpprof_set_mutex_profile_fraction(int n)
{
    if (n < 0)
        return cpprof_mutex_profile_fraction();
    int prev = atomic_exchange_explicit(&sync_state.mutex_fraction, n,
                                        memory_order_relaxed);
    if (prev == 0 && n > 0) {
        /* Waits begun while the profile was off were never registered,
         * and those open when it was turned off were never ended: start
         * from an empty table and let threads drop their old open waits. */
        atomic_fetch_add_explicit(&sync_state.gen, 1, memory_order_relaxed);
        cp_sync_waiters_reset();
    }
    set_flag(F_MUTEX, n > 0);
    return prev;
}

int cpprof_mutex_profile_fraction(void)
{
    return atomic_load_explicit(&sync_state.mutex_fraction,
                                memory_order_relaxed);
}

void cp_sync_set_tracing(bool on)
{
    set_flag(F_TRACE, on);
}
