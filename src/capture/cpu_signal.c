/*
 * capture/cpu_signal.c - the SIGPROF handler and the sample ring.
 *
 * ASYNC-SIGNAL-SAFE where it matters: cp_cpu_on_sigprof runs in a signal
 * handler on any thread.  It never allocates, never locks, preserves
 * errno, and is guarded against re-entry (SIGPROF is blocked while it runs
 * and the unwinder has its own per-thread guard).  Samples go into a
 * bounded multi-producer ring (Vyukov's sequence-numbered queue): a
 * producer claims a slot with one compare-and-swap, unwinds straight into
 * it and publishes it with a release store; when the ring is full the
 * expirations are counted as lost instead of waiting.  The single consumer
 * is the CPU profiler's drain thread (profiles/cpu.c).
 *
 * The handler is installed once and never removed: a SIGPROF that was
 * already pending when profiling stopped then meets an inert handler
 * instead of the default action (process termination).  While disabled
 * the handler returns at once; cp_cpu_signal_disable waits until no
 * handler is still inside, so no sample is taken after it returns.
 *
 * The calling thread's label set lives here too (initial-exec TLS, never
 * lazily allocated), because the handler reads it.
 */
#include "capture/cpu_signal.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "capture/sigmask.h"
#include "capture/trace_events.h"

typedef struct ring_slot {
    atomic_size_t seq;
    cp_cpu_record rec;
} ring_slot;

typedef struct ring {
    size_t mask;
    atomic_size_t head; /* next position producers claim */
    atomic_size_t tail; /* next position the consumer reads */
    ring_slot slots[];
} ring;

static struct {
    atomic_int installed;
    atomic_int enabled;
    atomic_int inflight;        /* handlers between entry and exit */
    _Atomic(ring *) ring;
    atomic_uint_fast64_t lost;  /* expirations dropped */
    int mode;                   /* enum cp_unwind_mode, set while disabled */
    int want_code;              /* SI_TIMER or SI_KERNEL */
} cpu_sig;

static __thread struct {
    cp_label_set *labels;
} cpu_tls __attribute__((tls_model("initial-exec")));

cp_label_set *cp_labels_current(void)
{
    return cpu_tls.labels;
}

cp_label_set *cp_labels_swap(cp_label_set *set)
{
    cp_label_set *old = cpu_tls.labels;
    /* A handler on this thread sees either set or old, and old's
     * reference is only dropped by our caller after this store. */
    atomic_signal_fence(memory_order_seq_cst);
    cpu_tls.labels = set;
    atomic_signal_fence(memory_order_seq_cst);
    return old;
}

/* Claims the next free slot, or NULL when the ring is full. */
static ring_slot *ring_claim(ring *r, size_t *posp)
{
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        ring_slot *s = &r->slots[pos & r->mask];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(
                    &r->head, &pos, pos + 1, memory_order_relaxed,
                    memory_order_relaxed)) {
                *posp = pos;
                return s;
            }
        } else if (dif < 0) {
            return NULL;
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
}

static void take_sample(siginfo_t *si, void *uc)
{
    if (si == NULL || si->si_code != cpu_sig.want_code)
        return; /* kill(), or the other timer kind: not ours */
    uint32_t weight = 1;
    if (si->si_code == SI_TIMER && si->si_overrun > 0)
        weight += si->si_overrun < 1000 ? (uint32_t)si->si_overrun : 1000;
    ring *r = atomic_load_explicit(&cpu_sig.ring, memory_order_acquire);
    size_t pos;
    ring_slot *s = r ? ring_claim(r, &pos) : NULL;
    if (!s) {
        atomic_fetch_add_explicit(&cpu_sig.lost, weight,
                                  memory_order_relaxed);
        return;
    }
    cp_cpu_record *rec = &s->rec;
    size_t n = cp_unwind_signal(uc, rec->pcs, CP_CPU_MAX_DEPTH,
                                (enum cp_unwind_mode)cpu_sig.mode);
    if (n == 0) { /* re-entered unwinder: keep the PC at least */
        rec->pcs[0] = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
        n = 1;
    }
    rec->depth = (uint32_t)n;
    rec->weight = weight;
    rec->labels = cpu_tls.labels;
    if (rec->labels)
        atomic_fetch_add_explicit(&rec->labels->refs, 1,
                                  memory_order_relaxed);
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);

    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    cp_trace_cpu_sample(rec->pcs, n,
                        (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec);
}

static void cp_cpu_on_sigprof(int sig, siginfo_t *si, void *uc)
{
    int saved_errno = errno;
    atomic_fetch_add(&cpu_sig.inflight, 1);
    if (atomic_load(&cpu_sig.enabled))
        take_sample(si, uc);
    atomic_fetch_sub(&cpu_sig.inflight, 1);
    errno = saved_errno;
}

int cp_cpu_signal_install(void)
{
    struct sigaction old;
    if (sigaction(SIGPROF, NULL, &old) != 0)
        return -errno;
    bool ours = (old.sa_flags & SA_SIGINFO) &&
                old.sa_sigaction == cp_cpu_on_sigprof;
    if (ours && atomic_load(&cpu_sig.installed))
        return 0;
    if (!ours && old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN)
        return -EBUSY; /* the program profiles itself: do not steal it */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = cp_cpu_on_sigprof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPROF, &sa, NULL) != 0)
        return -errno;
    atomic_store(&cpu_sig.installed, 1);
    return 0;
}

void cp_cpu_signal_admit_thread(void)
{
    if (!cp_sigmask_blocked(SIGPROF))
        return;
    struct sigaction old;
    if (sigaction(SIGPROF, NULL, &old) != 0)
        return;
    bool ours = (old.sa_flags & SA_SIGINFO) &&
                old.sa_sigaction == cp_cpu_on_sigprof;
    if (!ours && ((old.sa_flags & SA_SIGINFO) || old.sa_handler != SIG_DFL))
        return;
    cp_sigmask_unblock(SIGPROF);
}

int cp_cpu_signal_enable(size_t slots, enum cp_unwind_mode mode, bool itimer)
{
    size_t n = 16;
    while (n < slots)
        n <<= 1;
    ring *r = calloc(1, sizeof(*r) + n * sizeof(ring_slot));
    if (!r)
        return -ENOMEM;
    r->mask = n - 1;
    for (size_t i = 0; i < n; i++)
        atomic_init(&r->slots[i].seq, i);
    cpu_sig.mode = (int)mode;
    cpu_sig.want_code = itimer ? SI_KERNEL : SI_TIMER;
    atomic_store(&cpu_sig.lost, 0);
    ring *old = atomic_exchange(&cpu_sig.ring, r);
    free(old);
    atomic_store(&cpu_sig.enabled, 1);
    return 0;
}

bool cp_cpu_itimer_active(void)
{
    /* Our handler owns SIGPROF and the last session chose ITIMER_PROF: an
     * armed ITIMER_PROF is then ours (a program's own is refused at start,
     * and sigprof_guard keeps it from replacing our handler meanwhile). */
    return atomic_load_explicit(&cpu_sig.installed, memory_order_relaxed) &&
           cpu_sig.want_code == SI_KERNEL;
}

void cp_cpu_signal_disable(void)
{
    atomic_store(&cpu_sig.enabled, 0);
    /* Handlers already past the enabled check finish within microseconds
     * (they never block); any handler that starts now sees disabled. */
    while (atomic_load(&cpu_sig.inflight) != 0)
        sched_yield();
}

void cp_cpu_signal_fork_child(void)
{
    /* A parent thread inside the handler at the fork counted itself in
     * inflight, and it does not exist here: waiting for it (as disable
     * does) would hang the child for good.  The only thread here is the
     * one that called fork, never from inside our handler. */
    atomic_store(&cpu_sig.enabled, 0);
    atomic_store(&cpu_sig.inflight, 0);
}

void cp_cpu_signal_free(void)
{
    free(atomic_exchange(&cpu_sig.ring, NULL));
}

bool cp_cpu_ring_pop(cp_cpu_record *out)
{
    ring *r = atomic_load_explicit(&cpu_sig.ring, memory_order_acquire);
    if (!r)
        return false;
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    ring_slot *s = &r->slots[pos & r->mask];
    size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
    if (seq != pos + 1)
        return false; /* empty, or the producer is still writing */
    out->depth = s->rec.depth;
    out->weight = s->rec.weight;
    out->labels = s->rec.labels;
    memcpy(out->pcs, s->rec.pcs, s->rec.depth * sizeof(uintptr_t));
    atomic_store_explicit(&r->tail, pos + 1, memory_order_relaxed);
    atomic_store_explicit(&s->seq, pos + r->mask + 1, memory_order_release);
    return true;
}

uint64_t cp_cpu_ring_take_lost(void)
{
    return atomic_exchange(&cpu_sig.lost, 0);
}
