/*
 * capture/trace_events.c - the execution tracer's per-thread event rings
 * (capture/trace_ring.h) and the hooks other samplers call
 * (capture/trace_events.h, capture/thread_hooks.h).
 *
 * Called by: the annotation API (src/trace/annotate.c), the sync
 * interposition (cp_trace_wait_event), the SIGPROF handler
 * (cp_trace_cpu_sample), the pthread_create shim (cp_trace_thread_*), and
 * the recorder's drain thread (src/trace/recorder.c) for control/drain.
 *
 * ASYNC-SIGNAL-SAFE producers: no locks, no allocation, errno preserved.
 * Protocol, per slot: the owning thread is the only writer of head and of
 * the ring words; the drain thread is the only writer of tail.  A record
 * becomes visible when head is stored with release order.  A thread keeps
 * its slot across sessions while it lives (so a producer delayed across a
 * stop/start can only ever touch its own ring); slots of exited threads
 * are reaped by the drain thread.  The busy flag makes a signal handler
 * that interrupts a write drop its event, and lets disable() wait until no
 * write is in flight: membarrier() turns the producer's "store busy, load
 * enabled" into a Dekker pair without a fence on the hot path.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "capture/trace_events.h"
#include "capture/trace_ring.h"
#include "capture/thread_hooks.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif

#ifndef SYS_membarrier
#define SYS_membarrier 324
#endif
#define MEMBARRIER_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_REGISTER_PRIVATE_EXPEDITED (1 << 4)

#define RING_WORDS (CP_TRACE_RING_BYTES / 8)
#define RING_MASK (RING_WORDS - 1)

/*
 * One thread's slot, laid out by who writes what: the owner's line (head,
 * busy, lost, ring: written on every record, read by the drain once per
 * pass), the drain's line (tail), and a line read by the drain and written
 * by the owner only when it claims the slot or exits (tid, name).  Slots
 * are cache-line aligned so no line is shared between two slots.
 */
struct trace_slot {
    _Alignas(64) _Atomic uint64_t head; /* words committed; by the owner */
    _Atomic uint32_t busy;  /* owner is inside a write */
    /* Open regions of the owner while tracing; owner only, changed inside
     * a write so a signal handler's regions nest consistently. */
    uint32_t region_depth;
    _Atomic uint64_t lost;  /* events this owner dropped this session */
    _Atomic uint64_t *ring;
    _Alignas(64) _Atomic uint64_t tail; /* words consumed; by the drain */
    _Alignas(64) _Atomic int32_t tid;   /* owner, 0 when free */
    /* The owner's name (16 bytes, as prctl gives it), refreshed when it
     * exits; words, so the drain may read it while the owner writes. */
    _Atomic uint64_t name_words[2];
};

static struct {
    _Atomic int enabled;          /* the producers' predictable branch */
    _Atomic uint64_t lost_noslot; /* events from threads without a slot */
    struct trace_slot *slots;     /* CP_TRACE_SLOTS, NULL until init */
    int membarrier_ok;
    bool use_tsc;                 /* stamp with the TSC (set at init) */
    pthread_once_t once;
    int init_err;
} trace_capture = { .once = PTHREAD_ONCE_INIT };

/* Permanently "busy": a thread pointing here drops its events unseen. */
static struct trace_slot trace_ignored_slot = { .busy = 1 };

/* The calling thread's slot; initial-exec so a signal handler never makes
 * the dynamic loader allocate TLS. */
static __thread struct trace_slot *trace_tls_slot
    __attribute__((tls_model("initial-exec")));

uint64_t cp_trace_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cp_trace_tsc(void)
{
#if defined(__x86_64__)
    return __rdtsc();
#else
    return 0;
#endif
}

bool cp_trace_capture_uses_tsc(void)
{
    return trace_capture.use_tsc;
}

bool cp_trace_enabled(void)
{
    return atomic_load_explicit(&trace_capture.enabled, memory_order_relaxed);
}

/* Stores the calling thread's current name in its slot (prctl is a plain
 * syscall: signal-safe). */
static void remember_name(struct trace_slot *slot)
{
    uint64_t words[2] = {0, 0};
    prctl(PR_GET_NAME, (char *)words, 0, 0, 0);
    atomic_store_explicit(&slot->name_words[0], words[0], memory_order_relaxed);
    atomic_store_explicit(&slot->name_words[1], words[1], memory_order_relaxed);
}

/* Slow path, once per thread: take a free slot.  Signal-safe (CAS only). */
static struct trace_slot *claim_slot(void)
{
    struct trace_slot *slots = trace_capture.slots;
    int32_t tid = (int32_t)syscall(SYS_gettid);

    for (size_t i = 0; i < CP_TRACE_SLOTS; i++) {
        int32_t expect = 0;
        if (atomic_load_explicit(&slots[i].tid, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_strong_explicit(
                &slots[i].tid, &expect, tid, memory_order_acquire,
                memory_order_relaxed)) {
            /* The name now, for a thread that is gone by the time the
             * drain looks it up in /proc. */
            remember_name(&slots[i]);
            trace_tls_slot = &slots[i];
            return &slots[i];
        }
    }
    return NULL;
}

/*
 * Enters a write on the calling thread's slot.  NULL when tracing is off
 * (the predictable branch: one relaxed load), and (the event counted lost
 * where there is someone to charge) when the thread has no slot or is
 * already inside a write (a signal handler interrupted it).
 */
static inline __attribute__((always_inline)) struct trace_slot *
write_enter(void)
{
    if (!atomic_load_explicit(&trace_capture.enabled, memory_order_relaxed))
        return NULL;
    struct trace_slot *s = trace_tls_slot;
    if (s == NULL && (s = claim_slot()) == NULL) {
        atomic_fetch_add_explicit(&trace_capture.lost_noslot, 1,
                                  memory_order_relaxed);
        return NULL;
    }
    if (atomic_load_explicit(&s->busy, memory_order_relaxed)) {
        if (s != &trace_ignored_slot)
            atomic_fetch_add_explicit(&s->lost, 1, memory_order_relaxed);
        return NULL;
    }
    atomic_store_explicit(&s->busy, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    /* Paired with disable()'s membarrier: either it sees busy, or we see
     * tracing off.  Acquire: a new session's reset of head is visible. */
    if (!atomic_load_explicit(&trace_capture.enabled, memory_order_acquire)) {
        atomic_signal_fence(memory_order_seq_cst);
        atomic_store_explicit(&s->busy, 0, memory_order_release);
        return NULL;
    }
    return s;
}

static inline __attribute__((always_inline)) void
write_leave(struct trace_slot *s)
{
    atomic_signal_fence(memory_order_seq_cst);
    atomic_store_explicit(&s->busy, 0, memory_order_release);
}

/* A timestamp for a record of type type, which gains CP_TREC_TSC when the
 * stamp is a raw TSC reading (plain rdtsc: no fence is needed to order
 * reads within one thread, and the drain sorts across threads). */
static inline __attribute__((always_inline)) uint64_t stamp(unsigned *type)
{
#if defined(__x86_64__)
    if (trace_capture.use_tsc) {
        *type |= CP_TREC_TSC;
        return __rdtsc();
    }
#endif
    return cp_trace_now();
}

/* Whether nwords more fit in s's ring from head; counts the event lost
 * when not. */
static inline __attribute__((always_inline)) bool
ring_room(struct trace_slot *s, uint64_t head, size_t nwords)
{
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_acquire);
    if (head + nwords - tail <= RING_WORDS)
        return true;
    atomic_fetch_add_explicit(&s->lost, 1, memory_order_relaxed);
    return false;
}

static inline __attribute__((always_inline)) void
ring_put(struct trace_slot *s, uint64_t pos, uint64_t word)
{
    atomic_store_explicit(&s->ring[pos & RING_MASK], word,
                          memory_order_relaxed);
}

/* The k (0..8) bytes at p as one little-endian word, zero-padded, read
 * with whole loads that stay inside the k bytes. */
static inline uint64_t load_partial(const unsigned char *p, size_t k)
{
    if (k >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + k - 4, 4); /* overlaps a: the same bytes */
        return a | (uint64_t)b << (8 * (k - 4));
    }
    if (k >= 2) {
        uint16_t a, b;
        memcpy(&a, p, 2);
        memcpy(&b, p + k - 2, 2);
        return a | (uint64_t)b << (8 * (k - 2));
    }
    return k ? p[0] : 0;
}

/* Copies n bytes into ring words from pos, the last one zero-padded,
 * with word loads only (a byte loop costs more than the rest of a region
 * record).  Returns the next position. */
static inline __attribute__((always_inline)) uint64_t
put_bytes(struct trace_slot *s, uint64_t pos, const unsigned char *p,
          size_t n)
{
    size_t k = n & 7;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        ring_put(s, pos++, w);
    }
    if (k != 0) {
        uint64_t w;
        if (n >= 8) { /* the last 8 bytes, shifted down to k */
            memcpy(&w, p + n - 8, 8);
            w >>= 8 * (8 - k);
        } else {
            w = load_partial(p, k);
        }
        ring_put(s, pos++, w);
    }
    return pos;
}

static inline uint64_t rec_header(unsigned type, size_t nwords, uint32_t aux)
{
    return (uint64_t)type | (uint64_t)nwords << 8 | (uint64_t)aux << 32;
}

/* The general write path, for every record but the region pair. */
static bool emit_record(unsigned type, uint32_t aux, uint64_t ts,
                        const uint64_t *w, size_t nw, const void *b1,
                        size_t n1, const void *b2, size_t n2)
{
    struct trace_slot *s = write_enter();
    if (s == NULL)
        return false;
    if (ts == 0)
        ts = stamp(&type);
    size_t bytes = n1 + n2;
    size_t nwords = 2 + nw + (bytes + 7) / 8;
    uint64_t head = atomic_load_explicit(&s->head, memory_order_relaxed);
    bool ok = nwords <= CP_TRACE_REC_MAX_WORDS + CP_TRACE_STACK_MAX;
    if (!ok)
        atomic_fetch_add_explicit(&s->lost, 1, memory_order_relaxed);
    else if ((ok = ring_room(s, head, nwords))) {
        uint64_t pos = head;
        ring_put(s, pos++, rec_header(type, nwords, aux));
        ring_put(s, pos++, ts);
        for (size_t i = 0; i < nw; i++)
            ring_put(s, pos++, w[i]);
        if (n2 == 0) {
            pos = put_bytes(s, pos, b1, n1);
        } else {
            /* Two strings share words: stage them contiguously. */
            unsigned char tmp[CP_TRACE_NAME_MAX + CP_TRACE_MSG_MAX + 2];
            if (n1 != 0) /* b1 may be NULL when empty */
                memcpy(tmp, b1, n1);
            memcpy(tmp + n1, b2, n2);
            pos = put_bytes(s, pos, tmp, bytes);
        }
        atomic_store_explicit(&s->head, pos, memory_order_release);
    }
    write_leave(s);
    return ok;
}

bool cp_trace_emit(unsigned type, uint32_t aux, uint64_t ts,
                   const uint64_t *w, size_t nw, const void *b, size_t nb)
{
    return emit_record(type, aux, ts, w, nw, b, nb, NULL, 0);
}

bool cp_trace_emit2(unsigned type, uint32_t aux, uint64_t ts,
                    const uint64_t *w, size_t nw, const void *b1, size_t n1,
                    const void *b2, size_t n2)
{
    return emit_record(type, aux, ts, w, nw, b1, n1, b2, n2);
}

/*
 * The region pair, the one hot path: one call each, one relaxed load when
 * off; while tracing, a TSC read and 2 (end) or 3+ (begin) ring words.
 * The depth moves even when the ring is full, so the recorder can still
 * pair the ends it does see.
 */
void cp_trace_region_begin(uint64_t task, const char *name)
{
    struct trace_slot *s = write_enter();
    if (s == NULL)
        return;
    unsigned type = CP_TREC_REGION_BEGIN;
    uint64_t ts = stamp(&type);
    uint32_t depth = s->region_depth++;
    uint64_t head = atomic_load_explicit(&s->head, memory_order_relaxed);
    size_t fixed = task != 0 ? 3 : 2;
    /* Room for the longest name; a short one leaves the rest unused. */
    if (ring_room(s, head, fixed + (CP_TRACE_NAME_MAX + 7) / 8)) {
        uint64_t pos = head + fixed;
        /* strnlen: async-signal-safe (POSIX.1-2008 TC2), and libc's
         * vector scan beats a byte loop past a few characters. */
        size_t n = name != NULL ? strnlen(name, CP_TRACE_NAME_MAX) : 0;
        pos = put_bytes(s, pos, (const unsigned char *)name, n);
        uint32_t aux = (uint32_t)n | (depth & 0xffff) << 8 |
                       (task != 0 ? CP_TREC_REGION_HAS_TASK : 0);
        ring_put(s, head, rec_header(type, (size_t)(pos - head), aux));
        ring_put(s, head + 1, ts);
        if (task != 0)
            ring_put(s, head + 2, task);
        atomic_store_explicit(&s->head, pos, memory_order_release);
    }
    write_leave(s);
}

void cp_trace_region_end(void)
{
    struct trace_slot *s = write_enter();
    if (s == NULL)
        return;
    unsigned type = CP_TREC_REGION_END;
    uint64_t ts = stamp(&type);
    /* At depth 0 the begin predates the trace: the recorder drops it. */
    uint32_t depth = s->region_depth > 0 ? --s->region_depth : 0;
    uint64_t head = atomic_load_explicit(&s->head, memory_order_relaxed);
    if (ring_room(s, head, 2)) {
        ring_put(s, head, rec_header(type, 2, (depth & 0xffff) << 8));
        ring_put(s, head + 1, ts);
        atomic_store_explicit(&s->head, head + 2, memory_order_release);
    }
    write_leave(s);
}

void cp_trace_ignore_this_thread(void)
{
    struct trace_slot *s = trace_tls_slot;
    trace_tls_slot = &trace_ignored_slot;
    if (s == NULL || s == &trace_ignored_slot)
        return;
    /* The thread recorded before it asked (its start event, from the
     * pthread_create shim).  It is the recorder's drain thread, the only
     * consumer, so it may drop those records and hand the slot back. */
    atomic_store_explicit(&s->head, 0, memory_order_relaxed);
    atomic_store_explicit(&s->tail, 0, memory_order_relaxed);
    s->region_depth = 0;
    atomic_store_explicit(&s->tid, 0, memory_order_release);
}

/* ---------------------------------------------------- sampler hooks */

void cp_trace_wait_event(enum cp_trace_wait_kind kind, const void *addr,
                         uint64_t begin_ns, uint64_t end_ns)
{
    if (!atomic_load_explicit(&trace_capture.enabled, memory_order_relaxed))
        return;
    int saved = errno;
    uint64_t w[2] = { end_ns, (uint64_t)(uintptr_t)addr };
    cp_trace_emit(CP_TREC_WAIT, (uint32_t)kind, begin_ns, w, 2, NULL, 0);
    errno = saved;
}

void cp_trace_cpu_sample(const uintptr_t *pcs, size_t depth, uint64_t ts_ns)
{
    if (!atomic_load_explicit(&trace_capture.enabled, memory_order_relaxed))
        return;
    int saved = errno;
    uint64_t w[CP_TRACE_STACK_MAX];
    if (depth > CP_TRACE_STACK_MAX)
        depth = CP_TRACE_STACK_MAX;
    for (size_t i = 0; i < depth; i++)
        w[i] = pcs[i];
    cp_trace_emit(CP_TREC_CPU_SAMPLE, (uint32_t)depth, ts_ns, w, depth,
                  NULL, 0);
    errno = saved;
}

void cp_trace_thread_start(void)
{
    if (!atomic_load_explicit(&trace_capture.enabled, memory_order_relaxed))
        return;
    int saved = errno;
    cp_trace_emit(CP_TREC_THREAD_START, 0, 0, NULL, 0, NULL, 0);
    errno = saved;
}

void cp_trace_thread_exit(void)
{
    if (!atomic_load_explicit(&trace_capture.enabled, memory_order_relaxed))
        return;
    int saved = errno;
    /* A thread usually names itself after it starts: keep the last name. */
    if (trace_tls_slot)
        remember_name(trace_tls_slot);
    cp_trace_emit(CP_TREC_THREAD_EXIT, 0, 0, NULL, 0, NULL, 0);
    errno = saved;
}

/* ------------------------------------------------- control and drain */

/* In a fork child only the forking thread survives, and the recorder's
 * drain thread is gone: stop recording and forget the parent's slots. */
static void atfork_child(void)
{
    atomic_store_explicit(&trace_capture.enabled, 0, memory_order_relaxed);
    trace_tls_slot = NULL;
    for (size_t i = 0; i < CP_TRACE_SLOTS; i++) {
        struct trace_slot *s = &trace_capture.slots[i];
        atomic_store_explicit(&s->tid, 0, memory_order_relaxed);
        atomic_store_explicit(&s->busy, 0, memory_order_relaxed);
        s->region_depth = 0;
    }
}

/* Whether the TSC is a trustworthy clock here (see trace_ring.h). */
static bool tsc_usable(void)
{
    const char *env = getenv("CPPROF_TRACE_CLOCK");
    if (env != NULL && *env != '\0' && strcmp(env, "auto") != 0) {
        if (strcmp(env, "monotonic") == 0)
            return false;
        if (strcmp(env, "tsc") != 0)
            fprintf(stderr, "cpprof: CPPROF_TRACE_CLOCK=%s: expected auto, "
                            "tsc or monotonic; using auto\n", env);
    }
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8)))
        return false; /* not invariant: the rate changes with P-states */
    char src[32] = "";
    int fd = open("/sys/devices/system/clocksource/clocksource0/"
                  "current_clocksource", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, src, sizeof src - 1);
    close(fd);
    return n >= 3 && strncmp(src, "tsc", 3) == 0 &&
           (n == 3 || src[3] == '\n');
#else
    return false;
#endif
}

static void capture_init_once(void)
{
    trace_capture.use_tsc = tsc_usable();
    size_t slots_bytes = CP_TRACE_SLOTS * sizeof(struct trace_slot);
    size_t rings_bytes = (size_t)CP_TRACE_SLOTS * CP_TRACE_RING_BYTES;
    /* Anonymous pages are committed on first touch: a thread that records
     * little costs little, and nothing here is ever handed back. */
    void *m = mmap(NULL, slots_bytes + rings_bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        trace_capture.init_err = -ENOMEM;
        return;
    }
    struct trace_slot *slots = m;
    _Atomic uint64_t *rings = (void *)((char *)m + slots_bytes);
    for (size_t i = 0; i < CP_TRACE_SLOTS; i++)
        slots[i].ring = rings + i * RING_WORDS;
    trace_capture.slots = slots;
    trace_capture.membarrier_ok =
        syscall(SYS_membarrier, MEMBARRIER_REGISTER_PRIVATE_EXPEDITED, 0) == 0;
    if (pthread_atfork(NULL, NULL, atfork_child) != 0)
        trace_capture.init_err = -ENOMEM;
}

int cp_trace_capture_init(void)
{
    pthread_once(&trace_capture.once, capture_init_once);
    return trace_capture.init_err;
}

void cp_trace_capture_enable(void)
{
    for (size_t i = 0; i < CP_TRACE_SLOTS; i++) {
        struct trace_slot *s = &trace_capture.slots[i];
        cp_trace_slot_reap(i);
        /* No write is in flight (disable waited): owners see the reset
         * through the release store of enabled below. */
        atomic_store_explicit(&s->head, 0, memory_order_relaxed);
        atomic_store_explicit(&s->tail, 0, memory_order_relaxed);
        atomic_store_explicit(&s->lost, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&trace_capture.lost_noslot, 0, memory_order_relaxed);
    atomic_store_explicit(&trace_capture.enabled, 1, memory_order_release);
}

void cp_trace_capture_disable(void)
{
    atomic_store_explicit(&trace_capture.enabled, 0, memory_order_seq_cst);
    if (trace_capture.membarrier_ok)
        syscall(SYS_membarrier, MEMBARRIER_PRIVATE_EXPEDITED, 0);
    else
        usleep(2000); /* a write takes nanoseconds; this is a wide margin */
    for (size_t i = 0; i < CP_TRACE_SLOTS; i++) {
        struct trace_slot *s = &trace_capture.slots[i];
        /* A write in flight finishes in nanoseconds unless its thread was
         * preempted; a thread stopped for good must not hang us. */
        for (int spins = 0; spins < 10000 &&
             atomic_load_explicit(&s->busy, memory_order_acquire); spins++)
            sched_yield();
    }
}

uint64_t cp_trace_capture_lost(void)
{
    uint64_t n = atomic_load_explicit(&trace_capture.lost_noslot,
                                      memory_order_relaxed);
    for (size_t i = 0; i < CP_TRACE_SLOTS; i++)
        n += atomic_load_explicit(&trace_capture.slots[i].lost,
                                  memory_order_relaxed);
    return n;
}

int32_t cp_trace_slot_tid(size_t i)
{
    return atomic_load_explicit(&trace_capture.slots[i].tid,
                                memory_order_acquire);
}

void cp_trace_slot_name(size_t i, char name[17])
{
    uint64_t words[2] = {
        atomic_load_explicit(&trace_capture.slots[i].name_words[0], memory_order_relaxed),
        atomic_load_explicit(&trace_capture.slots[i].name_words[1], memory_order_relaxed),
    };
    memcpy(name, words, 16);
    name[16] = '\0';
}

size_t cp_trace_slot_drain(size_t i, cp_trace_rec_fn fn, void *arg)
{
    struct trace_slot *s = &trace_capture.slots[i];
    int32_t tid = atomic_load_explicit(&s->tid, memory_order_acquire);
    if (tid == 0)
        return 0;
    uint64_t tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
    uint64_t rec[CP_TRACE_REC_MAX_WORDS + CP_TRACE_STACK_MAX];
    size_t count = 0;

    while (tail < head) {
        uint64_t h = atomic_load_explicit(&s->ring[tail & RING_MASK],
                                          memory_order_relaxed);
        size_t n = cp_trace_rec_words(h);
        if (n < 2 || n > head - tail || n > sizeof rec / sizeof rec[0]) {
            tail = head; /* cannot happen with one writer; never loop */
            break;
        }
        for (size_t k = 0; k < n; k++)
            rec[k] = atomic_load_explicit(&s->ring[(tail + k) & RING_MASK],
                                          memory_order_relaxed);
        fn(arg, i, tid, rec, n);
        tail += n;
        count++;
    }
    atomic_store_explicit(&s->tail, tail, memory_order_release);
    return count;
}

bool cp_trace_slot_reap(size_t i)
{
    struct trace_slot *s = &trace_capture.slots[i];
    int32_t tid = atomic_load_explicit(&s->tid, memory_order_acquire);
    if (tid == 0)
        return false;
    /* tgkill(sig 0) fails with ESRCH only once the thread is gone from the
     * kernel: it has made its last write. */
    int saved = errno;
    bool gone = syscall(SYS_tgkill, getpid(), tid, 0) != 0 && errno == ESRCH;
    errno = saved;
    /* Records it wrote after the last drain are kept for the next one. */
    if (!gone || atomic_load_explicit(&s->tail, memory_order_relaxed) !=
                     atomic_load_explicit(&s->head, memory_order_acquire))
        return false;
    atomic_store_explicit(&s->head, 0, memory_order_relaxed);
    atomic_store_explicit(&s->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&s->busy, 0, memory_order_relaxed);
    s->region_depth = 0;
    atomic_store_explicit(&s->tid, 0, memory_order_release);
    return true;
}
