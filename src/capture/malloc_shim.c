/*
 * capture/malloc_shim.c - interposition of the malloc family for the heap
 * and allocs profiles.  Owns malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc and
 * malloc_usable_size when libcpprof is linked into a program or
 * LD_PRELOADed; forwards each call to the next definition in symbol
 * order (glibc's, or jemalloc/tcmalloc when the program uses one).  C++
 * operator new/delete reach it through libstdc++'s (built on malloc) or
 * through capture/new_shim.c (for allocators that define their own).
 *
 * Called by every thread of the process, from any context the program
 * allocates in (including, illegally but commonly, signal handlers).
 *
 * THE FENCE: this file runs inside the allocator.
 *   - Unsampled malloc: a thread-local subtraction and compare and a
 *     tail call through a thread-local copy of the real malloc: no lock,
 *     no atomic, no stack frame, nothing read but thread-local state.
 *     A rate change reaches a thread when its budget piece (at most
 *     RECHECK_BYTES) runs out.
 *   - Unsampled free, header mode (the real allocator is glibc's, the
 *     usual case): one load of the word below the block, which glibc's
 *     own free reads next anyway, and a tail call.  Sampled blocks are
 *     allocated HDR_SIZE (or their alignment) larger and carry a header
 *     there whose tag has bit 3 set, a bit that no glibc chunk's size
 *     field has, so the test is exact: no table is read on any free, and
 *     a sampled free finds its bucket in the header.
 *   - Unsampled free, filter mode (any other allocator, whose memory
 *     below a block we may not read): one relaxed load from a 2 KiB
 *     counting Bloom filter over the addresses of live sampled blocks
 *     and a tail call; only when both of the address's counters are
 *     non-zero a probe of the address set (capture/heap_table.c).
 *     Nothing shared is written on any unsampled path, and what they
 *     read shares no cache line with anything written per sample.
 *   - errno is preserved by everything we add; the real call's errno and
 *     return value reach the caller unchanged.
 *   - A per-thread re-entry guard: while a thread records a sample, its
 *     own allocations go straight to the real allocator, unsampled.
 *   - The sampled path is lock-free but for the stack table (below): the
 *     unwind, then the bucket (capture/heap_table.c, CAS only) and, in
 *     filter mode, the address-set entry, whose cache lines are
 *     prefetched while the stack is unwound and interned.  A sampled
 *     free does its accounting after the real free, with the bucket's
 *     line prefetched.
 *   - Stacks are captured with the async-signal-safe unwinder
 *     (cp_unwind_self: a CFI walk from the current frame, no getcontext
 *     and so no sigprocmask system call), which takes no lock, never
 *     allocates and never calls dl_iterate_phdr, so recording cannot
 *     deadlock against the loader lock held by a dlopen that allocates.
 *     Its address-range table is built by our constructor.  A thread's
 *     stack bounds are not prepared here (pthread_getattr_np allocates
 *     and takes the thread's lock: it deadlocked from inside calloc);
 *     the unwinder finds them itself, once per thread, with a read of
 *     /proc/self/maps through open/read.  Code dlopen'ed later is
 *     unwound once the table is refreshed (profiles/heap.c refreshes it,
 *     in normal context, whenever a heap profile is built); until then a
 *     stack ends at such code's frame (no guess past it).
 *   - Sampled stacks are interned into the heap's own stack table inside
 *     the guarded section (1 in ~512 KiB of allocation by default), unless
 *     the thread's last sampled stack was the same (a per-thread memo by
 *     stack hash: then no lock at all).  That table takes its shard
 *     locks and allocates through the real allocator only.  Nothing else
 *     ever touches that table instance while holding another lock, so
 *     the only hazard is fork(): the
 *     prepare handler below stops new recordings and waits (bounded) for
 *     the ones in flight, so the child never inherits a held shard lock;
 *     if it had to give up waiting, the child turns sampling off rather
 *     than risk a deadlock.
 *   - Before dlsym has resolved the real functions (the first call, and
 *     the allocations dlsym itself makes), memory comes from a static
 *     bump arena, whose blocks carry a header (and are counted in the
 *     filter for good); free() ignores them and realloc() copies them.
 *
 * Under sanitizer builds (CPPROF_SANITIZER_BUILD) the sanitizer owns
 * malloc: nothing is interposed and the heap profile reports -ENOSYS.
 */
#include "capture/heap_sampler.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cpprof/heap.h"

#ifndef CPPROF_SANITIZER_BUILD

#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "capture/unwind_signal.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SHIM_HAVE_VALGRIND 1
#endif
#endif

#define SHIM_EXPORT __attribute__((visibility("default")))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

#define HEAP_STACK_DEPTH 64
/* The free-path filter's levels: 2^(FILTER_LOG2_0 + FILTER_STEP l)
 * 64-bit words each (2 KiB, 32 KiB).  A level serves up to about one live
 * sampled block per word (~2 % of frees then probe the set for nothing). */
#define FILTER_LEVELS 2
#define FILTER_LOG2_0 8
#define FILTER_STEP 4
#define FILTER_WORDS(l) (1u << (FILTER_LOG2_0 + FILTER_STEP * (l)))
#define FILTER_OFFSET(l) \
    ((FILTER_WORDS(l) - FILTER_WORDS(0)) / ((1u << FILTER_STEP) - 1))
#define FILTER_TOTAL FILTER_OFFSET(FILTER_LEVELS)
#define FILTER_SATURATED 15u
#define REC_STRIPES 16 /* in-flight recording counters, one line each */
#define RETARGET_EVERY 8 /* sampled allocs + frees between level checks */
#define CACHE_LINE 64
#define ARENA_SIZE (256 * 1024)
/* Blocks of ours carry a 16-byte header right below the address the
 * program gets: the word at p - 8 is a tag with bit 3 set, which no glibc
 * chunk's size field has (sizes are multiples of 16, flags use bits 0-2),
 * and the word at p - 16 the block's bucket (sampled) or size (arena). */
#define HDR_SIZE 16
#define HDR_BIT UINT64_C(8)
#define HDR_SAMPLED UINT32_C(0x5a3c0f18) /* low half of a sampled tag */
#define HDR_ARENA UINT32_C(0x5a3c0f28)   /* the tag of an arena block */
#define HDR_NO_BUCKET UINT32_MAX
#define HDR_ALIGN_MAX (UINT64_C(1) << 31) /* the offset's half of the tag */
/* A thread's sampling budget is handed out in pieces of at most this
 * many bytes, and a rate change reaches the thread when a piece runs
 * out: the fast path reads nothing but thread-local state. */
#define RECHECK_BYTES (256 * 1024)

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef void *(*calloc_fn)(size_t, size_t);
typedef void *(*realloc_fn)(void *, size_t);
typedef void *(*memalign_fn)(size_t, size_t);
typedef int (*posix_memalign_fn)(void **, size_t, size_t);
typedef size_t (*usable_fn)(void *);

/* glibc's own entry points: the fallback when RTLD_NEXT finds nothing
 * (or finds us again, e.g. the library linked twice). */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static struct {
    /* Line 0: read by every call but unsampled malloc and header mode's
     * unsampled free (those read thread-local copies), and everything a
     * sample and a sampled free read here, so that a sample finds one
     * line of ours cold, not three; written at start-up, by rate changes
     * and at fork only.  Nothing written per call or per sample lives on
     * these lines, so they stay shared in every core's cache. */
    _Alignas(4096) malloc_fn malloc;
    free_fn free;
    /* The level free reads: its first word's address | (64 - log2 of its
     * words), one word so that a reader never pairs one level's base
     * with another's size; 0 until the real functions are resolved (free
     * then takes its slow path), and for good in header mode, which has
     * no use for the filter.  Written when the level changes. */
    _Atomic uintptr_t filter_sel;
    _Atomic(cp_stack_table *) stacks;
    _Atomic int64_t rate;          /* bytes; 0 off, 1 everything */
    /* Bumped by every rate change (and seed); read when a thread's
     * budget piece runs out. */
    _Atomic uint32_t epoch;
    _Atomic int resolved;          /* 0 not yet, 1 resolving, 2 done */
    _Atomic int fork_pending;      /* set by the atfork prepare handler */
    /* Header mode: sampled blocks carry a header (HDR_*), so free tells
     * them apart by the word below the block.  Chosen once, before
     * resolved is 2, when the real allocator is glibc's (whose chunk
     * headers make the test exact); otherwise the filter and the address
     * set do it. */
    bool headers;
    _Atomic bool fork_unclean;     /* prepare gave up waiting */
    calloc_fn calloc;
    /* Line 1: the rest of the real functions, and the seed. */
    realloc_fn realloc;
    memalign_fn memalign;
    memalign_fn aligned_alloc;
    posix_memalign_fn posix_memalign;
    malloc_fn valloc;
    malloc_fn pvalloc;
    usable_fn usable_size;
    _Atomic uint64_t seed;         /* 0: seed from the clock */

    /* Counting Bloom filters over the addresses of live sampled blocks,
     * blocked by word: an address picks one 64-bit word and two distinct
     * of its sixteen 4-bit counters, and counts in both.  Either counter
     * at zero proves the address unsampled without touching the address
     * set, in one load.  A counter counts blocks whose insert
     * happened-before their owner could free them and is decremented only
     * after their removal, so it is never zero while one of its blocks is
     * live; once saturated (15) it stays so.
     *
     * Two levels, 2 KiB and 32 KiB, both kept up to date by every insert
     * and removal (a CAS each per sample and per sampled free); free reads one,
     * the smallest that suits the number of live sampled blocks (see
     * filter_retarget), so the filter stays sparse at any heap size and
     * small enough to stay cached under a workload's own memory traffic
     * while few sampled blocks are live: with one fixed 4 KiB filter,
     * half the frees of the churn benchmark missed L1 on it.  Collisions
     * (frees that must probe the set for nothing), random addresses:
     * 0.12 % of frees with 32 live sampled blocks (2 KiB level; counted
     * in the churn benchmark: 0.30 % with a 1 KiB level, 0.05 % with
     * 4 KiB; each collision costs a probe of the address set), 2 % at a level's limit of one block per word (4,096 blocks
     * for 32 KiB: 2 GiB live at the default rate), 17 % at 4 blocks per
     * word (8 GiB).  Two counters in one word per address halve the
     * collisions of one.  A third level of 64 KiB (with 1 and 8 KiB) cost
     * every sample two more CASes on cold lines of 16 pages, about what
     * replaying the unwind saved (paired runs at rate 64 KiB).
     * Blocks of the bootstrap arena are counted in every level for good
     * (see arena_alloc), so that free's fast path needs no arena test.
     * Right after the lines above, so that free's fast path reads one
     * page of ours (the level's pointer, the real free and the 2 KiB
     * level), not two: the workload's own pages keep the TLB busy. */
    _Alignas(CACHE_LINE) _Atomic uint64_t filter[FILTER_TOTAL];

    /* Written once per thread, or per lost sample. */
    _Alignas(CACHE_LINE) _Atomic uint64_t thread_seq;
    _Atomic uint64_t dropped;
    _Atomic unsigned polluted; /* bit l: level l has a saturated counter */

    /* Per stripe of threads (so that two threads sampling at once do not
     * bounce one line): threads inside record(), which fork_prepare sums,
     * and the sampled blocks inserted minus those removed by the stripe's
     * threads, whose sum over stripes is the number of live sampled
     * blocks (filter_retarget). */
    struct {
        _Alignas(CACHE_LINE) _Atomic int n;
        _Atomic int64_t live;
    } recording[REC_STRIPES];


    _Alignas(CACHE_LINE) _Atomic size_t arena_used;
    _Alignas(16) unsigned char arena[ARENA_SIZE];
} shim = {
    .rate = CPPROF_HEAP_DEFAULT_RATE,
    .epoch = 1, /* thread-local epochs start at 0: first call draws */
};

_Static_assert(offsetof(__typeof__(shim), calloc) + sizeof(calloc_fn) <=
                   CACHE_LINE,
               "what a sample reads of the shim fits its first line");

/* Per-thread sampling state.  initial-exec: accessing it never calls
 * __tls_get_addr, which may itself allocate. */
static __thread struct {
    uint64_t left;     /* bytes the fast path may allocate unsampled ... */
    uint64_t rest;     /* ... and the rest of the interval beyond them */
    malloc_fn real_malloc; /* shim.malloc, once left was first drawn */
    free_fn header_free;   /* shim.free in header mode, else NULL */
    uint64_t rng;      /* xorshift64* state */
    uint32_t epoch;    /* shim.epoch when the interval was drawn */
    bool guard;        /* inside record(), or the profiler's own work
                          (cp_own_begin): do not sample, do not
                          recurse */
    bool resolving;    /* this thread runs dlsym for the shim */
    uint8_t retarget;  /* sampled allocs + frees until the next
                          filter_retarget */
    uint32_t memo_id;  /* id of this thread's last sampled stack ... */
    uint64_t memo_hash;            /* ... its cp_stack_hash ... */
    cp_stack_table *memo_table;    /* ... in this table (NULL: none) */
} heap_tls __attribute__((tls_model("initial-exec")));

/* ------------------------------------------------------ bootstrap arena */

static inline bool arena_owns(const void *p)
{
    /* One unsigned compare: below the arena wraps around to huge. */
    return (uintptr_t)p - (uintptr_t)shim.arena < ARENA_SIZE;
}

/* The header words below a block of ours: [-1] the tag, [-2] the rest. */
static inline uint64_t hdr_word(const void *p, int i)
{
    uint64_t w;
    memcpy(&w, (const unsigned char *)p - 8 * i, sizeof w);
    return w;
}

static inline void hdr_set(void *p, uint64_t tag, uint64_t word2)
{
    memcpy((unsigned char *)p - 8, &tag, sizeof tag);
    memcpy((unsigned char *)p - 16, &word2, sizeof word2);
}

/* Whether p, a block of the real allocator or of ours, carries a header:
 * one load of the word glibc's free reads next anyway. */
static inline bool hdr_present(const void *p)
{
    return hdr_word(p, 1) & HDR_BIT;
}

static void filter_add(const void *p, int delta);
static inline uintptr_t filter_sel_of(unsigned level);

/* A block of the bootstrap arena, with a header; it is also counted in
 * the free filter, never to be uncounted (arena blocks are never freed),
 * so that every free() of one leaves either mode's fast path for
 * free_slow, which ignores it. */
static void *arena_alloc(size_t n, size_t align)
{
    if (align < HDR_SIZE)
        align = HDR_SIZE;
    if (n > ARENA_SIZE || (align & (align - 1)))
        return NULL;
    size_t used = atomic_load_explicit(&shim.arena_used, memory_order_relaxed);
    for (;;) {
        uintptr_t base = (uintptr_t)shim.arena;
        uintptr_t start = (base + used + HDR_SIZE + align - 1) & ~(align - 1);
        size_t end = start + ((n + 15) & ~(size_t)15) - base;
        if (end > ARENA_SIZE)
            return NULL;
        if (atomic_compare_exchange_weak(&shim.arena_used, &used, end)) {
            hdr_set((void *)start, HDR_BIT | HDR_ARENA, n);
            filter_add((void *)start, 1);
            return memset((void *)start, 0, n); /* calloc needs zeroes */
        }
    }
}

static size_t arena_size(const void *p)
{
    return (size_t)hdr_word(p, 2);
}

/* ----------------------------------------------------------- resolution */

static void *next_sym(const char *name, void *self, void *fallback)
{
    void *f = dlsym(RTLD_NEXT, name);
    return f && f != self ? f : fallback;
}

/*
 * Whether sampled blocks can carry headers: the real allocator is glibc's
 * own (its chunks have a size field below the block, bit 3 always clear,
 * and it reads that word itself on free), no Valgrind tool replaced it,
 * CPPROF_HEAP_HEADERS is not "0", and blocks of a few sizes and an
 * aligned one do show that bit clear.  Sizes stay below the mmap
 * threshold: freeing a mapped chunk would move glibc's dynamic threshold
 * for the whole program.
 */
static bool headers_usable(void)
{
#if defined(__GLIBC__) && UINTPTR_MAX == UINT64_MAX
    if (shim.malloc != __libc_malloc || shim.free != __libc_free ||
        shim.calloc != __libc_calloc || shim.realloc != __libc_realloc ||
        shim.memalign != __libc_memalign || !shim.usable_size)
        return false;
#ifdef SHIM_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND)
        return false;
#endif
    /* Valgrind's tools preload their allocator this way; also when this
     * build had no valgrind.h to ask. */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "/vgpreload_"))
        return false;
    const char *env = getenv("CPPROF_HEAP_HEADERS");
    if (env && strcmp(env, "0") == 0)
        return false;
    static const size_t sizes[] = {1, 24, 1000, 5000};
    bool ok = true;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        void *p = shim.malloc(sizes[i]);
        if (!p)
            return false;
        ok = ok && !hdr_present(p);
        shim.free(p);
    }
    void *p = shim.memalign(64, 100);
    if (!p)
        return false;
    ok = ok && !hdr_present(p);
    shim.free(p);
    return ok;
#else
    return false;
#endif
}

static void resolve_slow(void)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong(&shim.resolved, &expect, 1)) {
        /* Another thread resolves; dlsym takes microseconds. */
        while (atomic_load_explicit(&shim.resolved, memory_order_acquire) != 2)
            sched_yield();
        return;
    }
    int saved = errno;
    heap_tls.resolving = true;
    shim.malloc = (malloc_fn)next_sym("malloc", (void *)malloc,
                                      (void *)__libc_malloc);
    shim.free = (free_fn)next_sym("free", (void *)free, (void *)__libc_free);
    shim.calloc = (calloc_fn)next_sym("calloc", (void *)calloc,
                                      (void *)__libc_calloc);
    shim.realloc = (realloc_fn)next_sym("realloc", (void *)realloc,
                                        (void *)__libc_realloc);
    shim.memalign = (memalign_fn)next_sym("memalign", (void *)memalign,
                                          (void *)__libc_memalign);
    shim.aligned_alloc = (memalign_fn)next_sym(
        "aligned_alloc", (void *)aligned_alloc, (void *)shim.memalign);
    shim.posix_memalign = (posix_memalign_fn)next_sym(
        "posix_memalign", (void *)posix_memalign, NULL);
    shim.valloc = (malloc_fn)next_sym("valloc", (void *)valloc, NULL);
    shim.pvalloc = (malloc_fn)next_sym("pvalloc", (void *)pvalloc, NULL);
    shim.usable_size = (usable_fn)next_sym(
        "malloc_usable_size", (void *)malloc_usable_size, NULL);
    shim.headers = headers_usable();
    heap_tls.resolving = false;
    errno = saved;
    /* The filter's fast path opens once shim.free is set; header mode's
     * once a thread has drawn its first interval (sample_slow). */
    if (!shim.headers)
        atomic_store_explicit(&shim.filter_sel, filter_sel_of(0),
                              memory_order_release);
    atomic_store_explicit(&shim.resolved, 2, memory_order_release);
}

/* true: the real functions are usable.  false: this thread is inside
 * dlsym resolving them and must use the arena. */
static inline bool resolved(void)
{
    if (LIKELY(atomic_load_explicit(&shim.resolved, memory_order_acquire) == 2))
        return true;
    if (heap_tls.resolving)
        return false;
    resolve_slow();
    return true;
}

/* ------------------------------------------------------------- sampling */

static uint64_t rng_next(void)
{
    uint64_t x = heap_tls.rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    heap_tls.rng = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

static uint64_t splitmix(uint64_t x)
{
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/*
 * -ln(u) for u in (0, 1], within 1e-9 relative (checked against libm over
 * 10^7 draws): u = m * 2^e, m reduced to [0.71, 1.41), and ln m =
 * 2 atanh((m-1)/(m+1)) by five terms of its series.  Arithmetic only:
 * libm's log was cold code (another object's pages) on every sample.
 */
static double neg_log(double u)
{
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & ((UINT64_C(1) << 52) - 1)) | (UINT64_C(1023) << 52);
    double m;
    memcpy(&m, &bits, sizeof m); /* [1, 2) */
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double s = (m - 1) / (m + 1), s2 = s * s;
    double ln_m = 2 * s *
                  (1 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 / 9))));
    return -((double)e * 0.6931471805599453 + ln_m);
}

/* Bytes until the next sample: exponential with mean rate (Go's
 * nextSample), so samples form a Poisson process over allocated bytes. */
static uint64_t next_interval(int64_t rate)
{
    if (rate <= 0)
        return UINT64_MAX;
    if (rate == 1)
        return 0;
    double u = (double)((rng_next() >> 11) + 1) * 0x1.0p-53; /* (0, 1] */
    double next = neg_log(u) * (double)rate;
    return next >= 0x1.0p63 ? UINT64_MAX : (uint64_t)next;
}

static void reseed(void)
{
    uint64_t seed = atomic_load_explicit(&shim.seed, memory_order_relaxed);
    uint64_t seq = atomic_fetch_add_explicit(&shim.thread_seq, 1,
                                             memory_order_relaxed);
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^
               (uint64_t)(uintptr_t)&heap_tls;
    }
    heap_tls.rng = splitmix(seed ^ splitmix(seq)) | 1;
}

/* Sets the bytes until the thread's next sample: the fast path's piece
 * of them in left, the rest in rest. */
static inline void interval_set(uint64_t bytes)
{
    heap_tls.left = bytes < RECHECK_BYTES ? bytes : RECHECK_BYTES;
    heap_tls.rest = bytes - heap_tls.left;
}

/* Slow path of the sampling decision for an n-byte allocation: the fast
 * path's piece of the interval ran out (or the thread never drew one).
 * true: record it. */
static __attribute__((noinline)) bool sample_slow(size_t n)
{
    uint32_t epoch = atomic_load_explicit(&shim.epoch, memory_order_acquire);
    int64_t rate = atomic_load_explicit(&shim.rate, memory_order_relaxed);
    if (heap_tls.epoch != epoch) {
        /* First allocation of the thread, or the rate changed since its
         * interval was drawn: start a fresh interval at the new rate (an
         * interval is memoryless, so cutting one short biases nothing).
         * Another thread's rate change is seen here, within
         * RECHECK_BYTES of this thread's allocations (Go keeps an
         * interval drawn at the old rate until it runs out, but for the
         * rates 0 and 1, which it tests at every allocation). */
        if (heap_tls.epoch == 0 || heap_tls.rng == 0 ||
            atomic_load_explicit(&shim.seed, memory_order_relaxed) != 0)
            reseed();
        heap_tls.epoch = epoch;
        heap_tls.real_malloc = shim.malloc;
        heap_tls.header_free = shim.headers ? shim.free : NULL;
        interval_set(next_interval(rate));
    }
    /* The piece ran out; this allocation is sampled only if it also
     * reaches the end of the interval.  left + rest cannot overflow: it
     * is what remains of one interval. */
    uint64_t remaining = heap_tls.left + heap_tls.rest;
    if (n < remaining) {
        interval_set(remaining - n);
        return false;
    }
    if (rate <= 0) {
        interval_set(UINT64_MAX);
        return false;
    }
    /* A sample point that falls on the profiler's own allocation (the
     * guard) is skipped, but a fresh interval is drawn all the same:
     * intervals are memoryless, so the program's allocations stay a
     * Poisson process at the rate; keeping the spent interval instead
     * would sample the thread's next allocation for certain. */
    interval_set(next_interval(rate));
    return !heap_tls.guard;
}

/*
 * The unsampled decision, without a call: true when this thread's piece
 * of its interval covers n more bytes (which are then subtracted).  Only
 * thread-local state is read.  left is non-zero only after the thread's
 * first call went through sample_slow, which runs only once the real
 * functions are resolved, so a true answer also means they are (and that
 * heap_tls.real_malloc is set).
 */
static inline bool interval_covers(size_t n)
{
    if (LIKELY(n < heap_tls.left)) {
        heap_tls.left -= n;
        return true;
    }
    return false;
}

static inline bool should_sample(size_t n)
{
    return !interval_covers(n) && sample_slow(n);
}

/* ------------------------------------------------------------ recording */

/* p's hash, shared by every level: a level's word is picked by the top
 * bits (up to 12), the two counters in it by bits 44-51. */
static inline uint64_t filter_hash(const void *p)
{
    /* A multiplier unlike the address set's, so that a filter collision
     * says nothing about the set's line; the high bits mix best. */
    return (uint64_t)(uintptr_t)p * UINT64_C(0xd6e8feb86659fd93);
}

/* The two counters' shifts in p's word: multiples of 4, the second the
 * first XOR a non-zero multiple of 4, so they are distinct. */
static inline unsigned filter_s1(uint64_t h)
{
    return (unsigned)(h >> 46) & 60;
}

static inline unsigned filter_s2(uint64_t h)
{
    unsigned x = (unsigned)(h >> 42) & 60;
    return filter_s1(h) ^ (x ? x : 32);
}

static inline uintptr_t filter_sel_of(unsigned level)
{
    return (uintptr_t)&shim.filter[FILTER_OFFSET(level)] |
           (64 - FILTER_LOG2_0 - FILTER_STEP * level);
}

static inline unsigned filter_level_of(uintptr_t sel)
{
    return (64 - FILTER_LOG2_0 - (unsigned)(sel & 63)) / FILTER_STEP;
}

/* false: p is certainly not a live sampled block (sel: the level to
 * read, non-zero). */
static inline bool filter_maybe_at(uintptr_t sel, const void *p)
{
    uint64_t h = filter_hash(p);
    const _Atomic uint64_t *word =
        (const _Atomic uint64_t *)(sel & ~(uintptr_t)63) + (h >> (sel & 63));
    uint64_t w = atomic_load_explicit(word, memory_order_relaxed);
    return (w >> filter_s1(h) & 0xf) && (w >> filter_s2(h) & 0xf);
}

static inline bool filter_maybe(const void *p)
{
    uintptr_t sel = atomic_load_explicit(&shim.filter_sel,
                                         memory_order_acquire);
    return !sel || filter_maybe_at(sel, p);
}

/* delta is +1 or -1 on both of p's counters in every level; a saturated
 * counter is never changed again (and marks its level polluted). */
static void filter_add(const void *p, int delta)
{
    uint64_t h = filter_hash(p);
    unsigned s1 = filter_s1(h), s2 = filter_s2(h);
    uint64_t m1 = UINT64_C(0xf) << s1, m2 = UINT64_C(0xf) << s2;
    uint64_t one1 = UINT64_C(1) << s1, one2 = UINT64_C(1) << s2;
#pragma GCC unroll 4
    for (unsigned l = 0; l < FILTER_LEVELS; l++) {
        _Atomic uint64_t *word = &shim.filter[FILTER_OFFSET(l)] +
                                 (h >> (64 - FILTER_LOG2_0 - FILTER_STEP * l));
        uint64_t w = atomic_load_explicit(word, memory_order_relaxed);
        uint64_t next;
        do {
            uint64_t step = ((w & m1) == m1 ? 0 : one1) |
                            ((w & m2) == m2 ? 0 : one2);
            next = delta > 0 ? w + step : w - step;
        } while (!atomic_compare_exchange_weak_explicit(
            word, &w, next, memory_order_relaxed, memory_order_relaxed));
        if (delta > 0 && ((next & m1) == m1 || (next & m2) == m2))
            atomic_fetch_or_explicit(&shim.polluted, 1u << l,
                                     memory_order_relaxed);
    }
}

/* This thread's recording stripe (TLS blocks sit at distinct addresses). */
static inline _Atomic int *recording_stripe(void)
{
    uint64_t h = (uint64_t)(uintptr_t)&heap_tls * UINT64_C(0x9e3779b97f4a7c15);
    return &shim.recording[h >> 60].n;
}

/* Live sampled blocks: the sum of the stripes' counts (a free counted in
 * one stripe may pass its alloc counted in another, so only the sum
 * means anything). */
static int64_t live_blocks(void)
{
    int64_t live = 0;
    for (int i = 0; i < REC_STRIPES; i++)
        live += atomic_load_explicit(&shim.recording[i].live,
                                     memory_order_relaxed);
    return live;
}

/*
 * Points free at the level that suits live sampled blocks: the smallest
 * with at most one block per word, going down only below a quarter of the
 * smaller level's words (hysteresis), and never to a level with a
 * saturated counter (those stay saturated).  Any level is correct at any
 * time, since every level counts every live block; this only trades
 * collisions against cache footprint.  A thread looks every
 * RETARGET_EVERY sampled allocations and frees (summing the stripes'
 * counts reads a line per stripe), so the level lags the count a little.
 */
static void filter_retarget(void)
{
    uintptr_t sel = atomic_load_explicit(&shim.filter_sel,
                                         memory_order_relaxed);
    if (!sel)
        return; /* not resolved yet: resolve_slow sets the first level */
    int64_t live = live_blocks();
    unsigned cur = filter_level_of(sel), want = cur;
    while (want + 1 < FILTER_LEVELS && live > (int64_t)FILTER_WORDS(want))
        want++;
    while (want > 0 && live < (int64_t)FILTER_WORDS(want - 1) / 4)
        want--;
    unsigned polluted = atomic_load_explicit(&shim.polluted,
                                             memory_order_relaxed);
    while (want + 1 < FILTER_LEVELS && (polluted & (1u << want)))
        want++;
    if (want != cur)
        atomic_compare_exchange_strong_explicit(
            &shim.filter_sel, &sel, filter_sel_of(want),
            memory_order_release, memory_order_relaxed);
}

/* Counts a sampled block in (+1) or out (-1) of the live blocks, in this
 * thread's stripe, and now and then re-targets the filter. */
static inline void live_count(int delta)
{
    uint64_t h = (uint64_t)(uintptr_t)&heap_tls * UINT64_C(0x9e3779b97f4a7c15);
    atomic_fetch_add_explicit(&shim.recording[h >> 60].live, delta,
                              memory_order_relaxed);
    if (!shim.headers && heap_tls.retarget-- == 0) {
        heap_tls.retarget = RETARGET_EVERY - 1;
        filter_retarget();
    }
}


/*
 * The stack of the allocation, leaf first, starting at ra (the return
 * address into the caller of the interposed function): raw holds a walk
 * from inside record (cp_unwind_self's frame, then ours); *stack is set to
 * where ra appears in it, so our own frames are dropped.  If the unwinder
 * could not get past us, ra alone is kept (written into raw).  Inline in
 * record, so that there is one frame of ours fewer to unwind.
 */
static inline size_t allocation_stack(uintptr_t *raw, size_t n, uintptr_t ra,
                                      const uintptr_t **stack)
{
    for (size_t i = 0; i < n && i < 8; i++) {
        if (raw[i] == ra) {
            *stack = raw + i;
            return n - i < HEAP_STACK_DEPTH ? n - i : HEAP_STACK_DEPTH;
        }
    }
    raw[0] = ra;
    *stack = raw;
    return 1;
}

static cp_stack_table *heap_stacks(void)
{
    cp_stack_table *t = atomic_load_explicit(&shim.stacks, memory_order_acquire);
    if (t)
        return t;
    if (cp_heap_table_init() != 0 || cp_stack_table_new(&t) != 0)
        return NULL;
    cp_stack_table *expect = NULL;
    if (!atomic_compare_exchange_strong(&shim.stacks, &expect, t)) {
        cp_stack_table_free(t);
        t = expect;
    }
    return t;
}

/*
 * The id of stack pcs (hash = cp_stack_hash of it) in t.  A thread that
 * samples the same stack again (a loop's allocation site: the common case)
 * reuses its last id without taking the table's shard lock; stacks are
 * told apart by their 64-bit hash (which covers the depth), so a wrong
 * reuse needs two stacks of one thread with equal hashes.
 */
static int stack_id(cp_stack_table *t, const uintptr_t *pcs, size_t depth,
                    uint64_t hash, uint32_t *id)
{
    if (heap_tls.memo_table == t && heap_tls.memo_hash == hash) {
        *id = heap_tls.memo_id;
        return 0;
    }
    int rc = cp_stack_table_intern(t, pcs, depth, id);
    if (rc == 0) {
        heap_tls.memo_table = t;
        heap_tls.memo_hash = hash;
        heap_tls.memo_id = *id;
    }
    return rc;
}

/* Records the sampled block p of n bytes allocated from ra.  Inlined
 * where malloc samples, so that the unwind walks one frame of ours fewer
 * on the most common path; record() below is the out-of-line copy. */
static inline __attribute__((always_inline)) void record_here(void *p,
                                                              size_t n,
                                                              uintptr_t ra)
{
    int saved = errno;
    heap_tls.guard = true;
    _Atomic int *recording = recording_stripe();
    atomic_fetch_add_explicit(recording, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&shim.fork_pending, memory_order_seq_cst)) {
        atomic_fetch_add_explicit(&shim.dropped, 1, memory_order_relaxed);
        goto out;
    }
    /* The address set's line for p loads while we unwind, and so does
     * the bucket of this size at the thread's last sampled stack (a
     * loop's allocation site samples the same stack again); its index
     * line had time to load if the caller prefetched it (sample_ahead). */
    if (!shim.headers)
        cp_heap_addr_prefetch((uintptr_t)p);
    if (heap_tls.memo_table)
        cp_heap_bucket_prefetch_counts(heap_tls.memo_hash, n);
    uintptr_t raw[HEAP_STACK_DEPTH + 8];
    const uintptr_t *pcs;
    size_t depth = allocation_stack(raw, cp_unwind_self(raw, HEAP_STACK_DEPTH + 8),
                                    ra, &pcs);
    /* The bucket index line loads while the stack is interned. */
    uint64_t hash = cp_stack_hash(pcs, depth);
    cp_heap_bucket_prefetch(hash, n);
    cp_stack_table *t = heap_stacks();
    uint32_t id, index;
    cp_heap_bucket *b;
    if (!t || stack_id(t, pcs, depth, hash, &id) != 0 ||
        !(b = cp_heap_bucket_get(id, hash, n, &index))) {
        atomic_fetch_add_explicit(&shim.dropped, 1, memory_order_relaxed);
        goto out;
    }
    /* Count first: a free can only follow our return, and must always
     * find the alloc it subtracts. */
    atomic_fetch_add_explicit(&b->allocs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->alloc_bytes, n, memory_order_relaxed);
    if (shim.headers) {
        /* The header's tag was written by hdr_alloc; the bucket makes
         * the block's free count. */
        uint64_t tag = hdr_word(p, 1);
        hdr_set(p, tag, index);
        live_count(1);
    } else if (cp_heap_addr_insert((uintptr_t)p, index)) {
        filter_add(p, 1);
        live_count(1);
    } else {
        /* Untracked: its free would be invisible, so forget it whole. */
        atomic_fetch_sub_explicit(&b->allocs, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(&b->alloc_bytes, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&shim.dropped, 1, memory_order_relaxed);
    }
out:
    atomic_fetch_sub_explicit(recording, 1, memory_order_release);
    heap_tls.guard = false;
    errno = saved;
}

static __attribute__((noinline)) void record(void *p, size_t n, uintptr_t ra)
{
    record_here(p, n, ra);
}

static inline void account_free(cp_heap_bucket *b)
{
    uint64_t key = atomic_load_explicit(&b->key, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->frees, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->free_bytes, key & 0xffffffffu,
                              memory_order_relaxed);
}

/* Removes p from the sampled set if it is there, returning its bucket. */
static inline cp_heap_bucket *forget(void *p, uint32_t *index)
{
    if (LIKELY(!filter_maybe(p)))
        return NULL;
    return cp_heap_addr_remove((uintptr_t)p, index);
}

/* The rest of freeing a sampled block that forget() took out of the set:
 * count the free and release its filter counters.  May come after the
 * real free: a late decrement only keeps a counter above the number of
 * live sampled blocks for a while, never below it. */
static inline void forgotten(void *p, cp_heap_bucket *b)
{
    account_free(b);
    filter_add(p, -1);
    live_count(-1);
}

/* --------------------------------------------- header mode's blocks */

static inline bool hdr_align_ok(size_t align)
{
    return align != 0 && (align & (align - 1)) == 0 && align <= HDR_ALIGN_MAX;
}

/*
 * Header mode: a sampled n-byte block aligned to align (hdr_align_ok),
 * with its header below it, from the real allocator (zeroed if zero).
 * The real block starts off = max(align, HDR_SIZE) bytes lower, which
 * the tag keeps for free; the bucket word says "none" until record()
 * fills it in, so a sample that is dropped still frees right.  NULL with
 * errno ENOMEM (the real call's, or ours when n + off overflows).
 */
static void *hdr_alloc(size_t align, size_t n, bool zero)
{
    size_t off = align > HDR_SIZE ? align : HDR_SIZE, total;
    if (__builtin_add_overflow(n, off, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    unsigned char *q;
    if (off == HDR_SIZE)
        q = zero ? shim.calloc(1, total) : shim.malloc(total);
    else
        q = shim.memalign(off, total);
    if (!q)
        return NULL;
    hdr_set(q + off, (uint64_t)off << 32 | HDR_SAMPLED, HDR_NO_BUCKET);
    return q + off;
}

/* Whether tag (the word below a block) is a sampled block's. */
static inline bool hdr_is_sampled(uint64_t tag)
{
    return (uint32_t)tag == HDR_SAMPLED;
}

/* The real block under a sampled block p with that tag. */
static inline void *hdr_base(void *p, uint64_t tag)
{
    return (unsigned char *)p - (tag >> 32);
}

/* Frees the sampled block p (tag: its tag) and counts the free. */
static void hdr_free(void *p, uint64_t tag)
{
    uint32_t index = (uint32_t)hdr_word(p, 2);
    cp_heap_bucket *b = index != HDR_NO_BUCKET ? cp_heap_bucket_of(index)
                                               : NULL;
    if (b)
        __builtin_prefetch(b, 1); /* loads while the real free runs */
    shim.free(hdr_base(p, tag));
    if (b) {
        account_free(b);
        live_count(-1);
    }
}

/* ------------------------------------------------------------ fork */

static int recording_total(void)
{
    int n = 0;
    for (int i = 0; i < REC_STRIPES; i++)
        n += atomic_load_explicit(&shim.recording[i].n, memory_order_seq_cst);
    return n;
}

static void fork_prepare(void)
{
    atomic_store_explicit(&shim.fork_pending, 1, memory_order_seq_cst);
    /* Wait for recordings in flight (microseconds each); bounded so a
     * fork never hangs on us. */
    struct timespec ts = {0, 100000};
    for (int i = 0; i < 20000; i++) {
        if (recording_total() == 0) {
            atomic_store(&shim.fork_unclean, false);
            return;
        }
        if (i < 100)
            sched_yield();
        else
            nanosleep(&ts, NULL);
    }
    atomic_store(&shim.fork_unclean, true);
}

static void fork_parent(void)
{
    atomic_store_explicit(&shim.fork_pending, 0, memory_order_seq_cst);
}

static void fork_child(void)
{
    for (int i = 0; i < REC_STRIPES; i++)
        atomic_store(&shim.recording[i].n, 0); /* live stays: blocks do */
    if (atomic_load(&shim.fork_unclean)) {
        /* A recorder may have held a stack-table lock: never touch it.
         * The child's one thread sees the rate at its next allocation. */
        atomic_store(&shim.rate, 0);
        atomic_fetch_add(&shim.epoch, 1);
        atomic_store(&shim.stacks, NULL);
        interval_set(0);
    }
    atomic_store_explicit(&shim.fork_pending, 0, memory_order_seq_cst);
}

/*
 * Library constructor (normal context): resolves the real allocator and
 * builds the unwinder's address-range table now, while the loader lock
 * is ours anyway, so that no later recording inside malloc ever needs
 * dl_iterate_phdr (a thread in dlopen holds the loader lock and may be
 * waiting for us).
 */
__attribute__((constructor)) static void shim_init(void)
{
    resolved();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    bool was_own = cp_own_begin();
    cp_unwind_thread_prepare();
    cp_own_end(was_own);
}

/* ---------------------------------------------------- interposed calls */

#define CALLER() ((uintptr_t)__builtin_return_address(0))

/* Starts loading what recording an n-byte sample will write first, so
 * that it arrives while the real allocator runs: this thread's recording
 * stripe, and the bucket index line of its last sampled stack. */
static inline void sample_ahead(size_t n)
{
    __builtin_prefetch(recording_stripe(), 1);
    if (heap_tls.memo_table)
        cp_heap_bucket_prefetch(heap_tls.memo_hash, n);
}

/* A sampled malloc, reached by a tail call: its frame replaces
 * malloc_slow's, right below the caller's. */
static __attribute__((noinline)) void *malloc_sampled(size_t n, uintptr_t ra)
{
    sample_ahead(n);
    void *p = shim.headers ? hdr_alloc(HDR_SIZE, n, false) : shim.malloc(n);
    if (p)
        record_here(p, n, ra);
    return p;
}

/* Everything malloc does but the unsampled decision. */
static __attribute__((noinline)) void *malloc_slow(size_t n, uintptr_t ra)
{
    if (UNLIKELY(!resolved()))
        return arena_alloc(n, 16);
    if (LIKELY(!sample_slow(n)))
        return shim.malloc(n);
    return malloc_sampled(n, ra);
}

static inline void *do_malloc(size_t n, uintptr_t ra)
{
    if (LIKELY(interval_covers(n)))
        return heap_tls.real_malloc(n);
    return malloc_slow(n, ra);
}

/*
 * The unsampled path is the thread-local compare and subtraction and a
 * tail call, with no frame.  Without a frame pointer here the unwinders
 * rely on CFI for this function, which the compiler emits for it as for
 * every other.
 */
SHIM_EXPORT __attribute__((optimize("omit-frame-pointer"))) void *
malloc(size_t n)
{
    return do_malloc(n, CALLER());
}

/* free of NULL, of an arena block, of a block with a header or that the
 * filter cannot rule out, or by a thread that never allocated. */
static __attribute__((noinline)) void free_slow(void *p)
{
    if (!p || arena_owns(p))
        return;
    if (UNLIKELY(atomic_load_explicit(&shim.resolved, memory_order_acquire) !=
                 2) &&
        !resolved())
        return; /* inside dlsym, a block not of the arena: cannot be */
    if (shim.headers) {
        heap_tls.header_free = shim.free; /* this thread's fast path */
        uint64_t tag = hdr_word(p, 1);
        if (hdr_is_sampled(tag))
            hdr_free(p, tag);
        else
            shim.free(p); /* glibc's chunk (or a corrupt one: its call) */
        return;
    }
    uint32_t index;
    cp_heap_bucket *b = forget(p, &index);
    if (!b) {
        shim.free(p);
        return;
    }
    /* The bucket's line loads while the real free runs. */
    __builtin_prefetch(b, 1);
    shim.free(p);
    forgotten(p, b);
}

SHIM_EXPORT void free(void *p)
{
    /* The unsampled paths, each a load and a tail call.  Header mode:
     * the word below p, which glibc's free reads next anyway, has no
     * header bit.  Filter mode: p's filter counters are not both set
     * (arena blocks and NULL look sampled, or may).  free_slow sorts out
     * the rest.  A non-NULL header_free or a non-zero level implies the
     * real functions are resolved. */
    free_fn header_free = heap_tls.header_free;
    if (LIKELY(header_free != NULL)) {
        if (LIKELY(p != NULL && !hdr_present(p))) {
            header_free(p);
            return;
        }
    } else {
        uintptr_t sel = atomic_load_explicit(&shim.filter_sel,
                                             memory_order_acquire);
        if (LIKELY(sel != 0 && !filter_maybe_at(sel, p))) {
            shim.free(p);
            return;
        }
    }
    free_slow(p);
}

SHIM_EXPORT void *calloc(size_t nmemb, size_t size)
{
    size_t n;
    if (UNLIKELY(!resolved())) {
        if (__builtin_mul_overflow(nmemb, size, &n))
            return NULL;
        return arena_alloc(n, 16);
    }
    if (UNLIKELY(__builtin_mul_overflow(nmemb, size, &n)))
        return shim.calloc(nmemb, size); /* the real one reports ENOMEM */
    if (LIKELY(!should_sample(n)))
        return shim.calloc(nmemb, size);
    void *p = shim.headers ? hdr_alloc(HDR_SIZE, n, true)
                           : shim.calloc(nmemb, size);
    if (p)
        record(p, n, CALLER());
    return p;
}

/*
 * realloc in header mode.  A sampled block moves (its header sits below
 * the real block's start, which the real realloc would not keep), and so
 * does a block this call samples; the rest is the real realloc.  Moving
 * is what a real realloc may do anyway; it costs a copy, one in ~rate
 * bytes reallocated.
 */
static void *realloc_headers(void *p, size_t n, uintptr_t ra)
{
    uint64_t tag = hdr_word(p, 1);
    bool had = hdr_is_sampled(tag);
    bool sample = should_sample(n);
    if (LIKELY(!had && !sample))
        return shim.realloc(p, n);
    if (n == 0) {
        if (!had)
            return shim.realloc(p, 0);
        hdr_free(p, tag); /* glibc's realloc(p, 0) frees p ... */
        return NULL;      /* ... and returns NULL */
    }
    void *q = sample ? hdr_alloc(HDR_SIZE, n, false) : shim.malloc(n);
    if (!q)
        return NULL; /* p untouched, errno ENOMEM, as glibc's */
    if (sample)
        record(q, n, ra);
    size_t old = had ? shim.usable_size(hdr_base(p, tag)) - (tag >> 32)
                     : shim.usable_size(p);
    memcpy(q, p, old < n ? old : n);
    if (had)
        hdr_free(p, tag);
    else
        shim.free(p);
    return q;
}

static void *do_realloc(void *p, size_t n, uintptr_t ra)
{
    if (!p)
        return do_malloc(n, ra);
    if (UNLIKELY(!resolved() || arena_owns(p))) {
        if (!arena_owns(p))
            return NULL; /* cannot happen: only the arena exists yet */
        void *q = do_malloc(n, ra);
        if (q) {
            size_t old = arena_size(p);
            memcpy(q, p, old < n ? old : n);
        }
        return q;
    }
    if (shim.headers)
        return realloc_headers(p, n, ra);
    /* Out of the set before the real call: once realloc moves the block,
     * another thread may be handed p and sample it. */
    uint32_t index;
    cp_heap_bucket *b = forget(p, &index);
    bool sample = should_sample(n);
    void *q = shim.realloc(p, n);
    if (!q && n != 0) {
        /* Failed: p is untouched and still live (its filter counters
         * still count it). */
        if (b && !cp_heap_addr_insert((uintptr_t)p, index))
            forgotten(p, b);
        return NULL;
    }
    if (b)
        forgotten(p, b);
    if (q && sample)
        record(q, n, ra);
    return q;
}

SHIM_EXPORT void *realloc(void *p, size_t n)
{
    return do_realloc(p, n, CALLER());
}

SHIM_EXPORT void *reallocarray(void *p, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return do_realloc(p, n, CALLER());
}

/* The aligned family: memalign-like real function f(align, n).  In
 * header mode a sample point that falls on an alignment a header cannot
 * follow (not a power of two, or over 2 GiB) is passed over. */
static inline void *do_aligned(memalign_fn f, size_t align, size_t n,
                               uintptr_t ra)
{
    if (LIKELY(!should_sample(n)))
        return f(align, n);
    void *p;
    if (!shim.headers)
        p = f(align, n);
    else if (hdr_align_ok(align))
        p = hdr_alloc(align, n, false);
    else
        return f(align, n);
    if (p)
        record(p, n, ra);
    return p;
}

SHIM_EXPORT void *memalign(size_t align, size_t n)
{
    if (UNLIKELY(!resolved()))
        return arena_alloc(n, align);
    return do_aligned(shim.memalign, align, n, CALLER());
}

SHIM_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (UNLIKELY(!resolved()))
        return arena_alloc(n, align);
    return do_aligned(shim.aligned_alloc, align, n, CALLER());
}

SHIM_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (UNLIKELY(!resolved())) {
        if (align % sizeof(void *) || (align & (align - 1)))
            return EINVAL;
        void *p = arena_alloc(n, align);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    if (UNLIKELY(!shim.posix_memalign)) {
        if (align % sizeof(void *) || (align & (align - 1)) || align == 0)
            return EINVAL;
        void *p = do_aligned(shim.memalign, align, n, CALLER());
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    bool sample = should_sample(n);
    if (sample && shim.headers) {
        /* A bad alignment goes to the real call, unsampled, for its
         * EINVAL; errno is left as the real memalign leaves it, as
         * glibc's posix_memalign does. */
        sample = false;
        if (align % sizeof(void *) == 0 && hdr_align_ok(align)) {
            void *p = hdr_alloc(align, n, false);
            if (!p)
                return ENOMEM;
            record(p, n, CALLER());
            *out = p;
            return 0;
        }
    }
    int rc = shim.posix_memalign(out, align, n);
    if (rc == 0 && sample)
        record(*out, n, CALLER());
    return rc;
}

SHIM_EXPORT void *valloc(size_t n)
{
    if (UNLIKELY(!resolved()))
        return arena_alloc(n, 4096);
    bool sample = should_sample(n);
    void *p;
    if (sample && shim.headers)
        p = hdr_alloc((size_t)sysconf(_SC_PAGESIZE), n, false);
    else
        p = shim.valloc ? shim.valloc(n)
                        : shim.memalign((size_t)sysconf(_SC_PAGESIZE), n);
    if (p && sample)
        record(p, n, CALLER());
    return p;
}

SHIM_EXPORT void *pvalloc(size_t n)
{
    if (UNLIKELY(!resolved()))
        return arena_alloc(n, 4096);
    bool sample = should_sample(n);
    void *p;
    if (shim.pvalloc && !(sample && shim.headers)) {
        p = shim.pvalloc(n);
    } else {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        size_t up;
        if (__builtin_add_overflow(n, page - 1, &up)) {
            errno = ENOMEM;
            return NULL;
        }
        p = sample && shim.headers ? hdr_alloc(page, up & ~(page - 1), false)
                                   : shim.memalign(page, up & ~(page - 1));
    }
    if (p && sample)
        record(p, n, CALLER());
    return p;
}

SHIM_EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (arena_owns(p))
        return arena_size(p);
    if (UNLIKELY(!resolved() || !shim.usable_size))
        return 0;
    if (shim.headers) {
        uint64_t tag = hdr_word(p, 1);
        if (hdr_is_sampled(tag))
            return shim.usable_size(hdr_base(p, tag)) - (tag >> 32);
    }
    return shim.usable_size(p);
}

/* ------------------------------------------------- sampler interface */

bool cp_heap_interposed(void)
{
    return true;
}

void cp_heap_rate_set(int64_t rate)
{
    atomic_store_explicit(&shim.rate, rate, memory_order_relaxed);
    atomic_fetch_add_explicit(&shim.epoch, 1, memory_order_release);
    interval_set(0); /* the calling thread: from its next allocation */
}

int64_t cp_heap_rate_get(void)
{
    return atomic_load_explicit(&shim.rate, memory_order_relaxed);
}

cp_stack_table *cp_heap_stacks(void)
{
    return atomic_load_explicit(&shim.stacks, memory_order_acquire);
}

uint64_t cp_heap_dropped(void)
{
    return atomic_load_explicit(&shim.dropped, memory_order_relaxed);
}

size_t cp_heap_filter_bytes(void)
{
    uintptr_t sel = atomic_load_explicit(&shim.filter_sel,
                                         memory_order_relaxed);
    return sel ? sizeof(uint64_t) * FILTER_WORDS(filter_level_of(sel)) : 0;
}

void cp_heap_seed(uint64_t seed)
{
    atomic_store_explicit(&shim.seed, seed, memory_order_relaxed);
    atomic_fetch_add_explicit(&shim.epoch, 1, memory_order_release);
    interval_set(0);
}

size_t cp_heap_sampled_live(void)
{
    int64_t live = live_blocks();
    return live > 0 ? (size_t)live : 0;
}

bool cp_heap_headers(void)
{
    return atomic_load_explicit(&shim.resolved, memory_order_acquire) == 2 &&
           shim.headers;
}

/* The re-entry guard doubles as the "own allocations" flag: both mean
 * "do not sample this thread's allocations now". */
bool cp_own_begin(void)
{
    bool was = heap_tls.guard;
    heap_tls.guard = true;
    return was;
}

void cp_own_end(bool was_own)
{
    heap_tls.guard = was_own;
}

bool cp_own_now(void)
{
    return heap_tls.guard;
}

#else /* CPPROF_SANITIZER_BUILD: the sanitizer's allocator stays in place */

/* No heap sampling, but the block and mutex profiles still leave the
 * profiler's own work out (capture/own_section.h). */
static __thread bool own_section __attribute__((tls_model("initial-exec")));

bool cp_own_begin(void)
{
    bool was = own_section;
    own_section = true;
    return was;
}

void cp_own_end(bool was_own)
{
    own_section = was_own;
}

bool cp_own_now(void)
{
    return own_section;
}

bool cp_heap_interposed(void)
{
    return false;
}

void cp_heap_rate_set(int64_t rate)
{
    (void)rate;
}

int64_t cp_heap_rate_get(void)
{
    return 0;
}

cp_stack_table *cp_heap_stacks(void)
{
    return NULL;
}

uint64_t cp_heap_dropped(void)
{
    return 0;
}

size_t cp_heap_filter_bytes(void)
{
    return 0;
}

size_t cp_heap_sampled_live(void)
{
    return 0;
}

bool cp_heap_headers(void)
{
    return false;
}

void cp_heap_seed(uint64_t seed)
{
    (void)seed;
}

#endif
