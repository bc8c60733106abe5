/*
 * capture/threads_signal.c - the stack-dump signal for the "threads"
 * profile.  cp_threads_collect (normal context, called by
 * profiles/threads.c) publishes a dump request, tgkills each thread with a
 * real-time signal and polls for the answers with a bounded wait; the
 * handler, running in the signalled thread, unwinds its interrupted
 * context into its own slot.
 *
 * The handler is ASYNC-SIGNAL-SAFE: no allocation, no lock, errno
 * preserved; it finds its slot by tid and claims it with one CAS
 * (REQUESTED -> WRITING), so an answer arriving after the requester gave
 * up (ABANDONED) writes nothing.  Lifetime: the handler counts itself in
 * `active` before loading the published request, and the requester
 * unpublishes, then waits for `active` to drain before freeing; if a
 * handler is stuck there past a bound, the request is leaked instead of
 * freed.  A signal that stays pending (the thread blocks it) is answered
 * whenever it is delivered, against whatever request is published then.
 * fork: a child handler resets the lock and the counts, which a dump
 * running in another thread of the parent would leave held.
 *
 * Signal: the highest real-time signal from SIGRTMAX-3 down to SIGRTMIN+4
 * whose disposition is still SIG_DFL when we first need one (the program's
 * own real-time handlers are left alone).  SA_RESTART, so a thread
 * blocked in read() resumes its call.
 */
#include "capture/threads_signal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "capture/sigmask.h"
#include "capture/unwind_signal.h"

enum { SLOT_IDLE, SLOT_REQUESTED, SLOT_WRITING, SLOT_DONE, SLOT_ABANDONED };

typedef struct dump_slot {
    pid_t tid;
    _Atomic int state;
    size_t depth;
    uintptr_t pcs[CP_STACK_MAX_DEPTH];
} dump_slot;

typedef struct dump_req {
    size_t n;
    dump_slot *slots;
} dump_req;

static struct {
    pthread_mutex_t lock;            /* one dump at a time; guards sig */
    _Atomic int sig;                 /* 0: handler not installed; set
                                        once, under lock */
    _Atomic(dump_req *) current;     /* the request handlers answer */
    _Atomic int active;              /* handlers between load and done */
} threads_state = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void dump_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    int saved = errno;
    atomic_fetch_add_explicit(&threads_state.active, 1, memory_order_seq_cst);
    dump_req *d = atomic_load_explicit(&threads_state.current,
                                       memory_order_seq_cst);
    /* Only our own tgkill counts (not a kill(1) from outside). */
    if (d && si && si->si_code == SI_TKILL && si->si_pid == getpid()) {
        pid_t tid = (pid_t)syscall(SYS_gettid);
        for (size_t i = 0; i < d->n; i++) {
            dump_slot *s = &d->slots[i];
            if (s->tid != tid)
                continue;
            int expect = SLOT_REQUESTED;
            if (atomic_compare_exchange_strong(&s->state, &expect,
                                               SLOT_WRITING)) {
                s->depth = cp_unwind_signal(uc, s->pcs, CP_STACK_MAX_DEPTH,
                                            CP_UNWIND_AUTO);
                atomic_store_explicit(&s->state, SLOT_DONE,
                                      memory_order_release);
            }
            break;
        }
    }
    atomic_fetch_sub_explicit(&threads_state.active, 1, memory_order_seq_cst);
    errno = saved;
}

/* fork child: a dump another thread of the parent was running holds the
 * lock and counts its handlers, and neither the dumper nor the handlers
 * exist here; the next dump in the child would wait on them for good.
 * The parent's request is left to leak. */
static void threads_fork_child(void)
{
    pthread_mutex_init(&threads_state.lock, NULL);
    atomic_store(&threads_state.current, NULL);
    atomic_store(&threads_state.active, 0);
}

/* Under lock: installs the handler on a free real-time signal. */
static int install_handler(void)
{
    if (threads_state.sig)
        return 0;
    static bool fork_handled;
    if (!fork_handled)
        fork_handled = pthread_atfork(NULL, NULL, threads_fork_child) == 0;
    for (int sig = SIGRTMAX - 3; sig >= SIGRTMIN + 4; sig--) {
        struct sigaction old;
        if (sigaction(sig, NULL, &old) != 0)
            continue;
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler != SIG_DFL)
            continue;
        if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction != dump_handler)
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = dump_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(sig, &sa, NULL) == 0) {
            threads_state.sig = sig;
            return 0;
        }
    }
    return -EAGAIN;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* Waits until no slot is in state `from` or the deadline passes. */
static void wait_slots(dump_req *d, int from, int64_t deadline)
{
    for (;;) {
        size_t pending = 0;
        for (size_t i = 0; i < d->n; i++)
            pending += atomic_load_explicit(&d->slots[i].state,
                                            memory_order_acquire) == from;
        if (pending == 0 || now_ns() >= deadline)
            return;
        sleep_ns(500000);
    }
}

int cp_threads_collect(const pid_t *tids, const bool *skip, size_t n,
                       int timeout_ms, cp_thread_stack **out)
{
    *out = calloc(n ? n : 1, sizeof **out);
    dump_req *d = calloc(1, sizeof *d);
    dump_slot *slots = calloc(n ? n : 1, sizeof *slots);
    if (!*out || !d || !slots) {
        free(*out);
        free(d);
        free(slots);
        *out = NULL;
        return -ENOMEM;
    }
    d->n = n;
    d->slots = slots;
    for (size_t i = 0; i < n; i++) {
        slots[i].tid = tids[i];
        atomic_init(&slots[i].state,
                    skip && skip[i] ? SLOT_IDLE : SLOT_REQUESTED);
    }

    pthread_mutex_lock(&threads_state.lock);
    int err = install_handler();
    if (err) {
        pthread_mutex_unlock(&threads_state.lock);
        free(slots);
        free(d);
        free(*out);
        *out = NULL;
        return err;
    }
    atomic_store_explicit(&threads_state.current, d, memory_order_seq_cst);
    pid_t pid = getpid();
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&slots[i].state) != SLOT_REQUESTED)
            continue;
        if (syscall(SYS_tgkill, pid, tids[i], threads_state.sig) != 0) {
            int expect = SLOT_REQUESTED; /* exited, or queue full */
            atomic_compare_exchange_strong(&slots[i].state, &expect,
                                           SLOT_ABANDONED);
        }
    }
    wait_slots(d, SLOT_REQUESTED, deadline);
    for (size_t i = 0; i < n; i++) {
        int expect = SLOT_REQUESTED;
        atomic_compare_exchange_strong(&slots[i].state, &expect,
                                       SLOT_ABANDONED);
    }
    /* A handler that claimed its slot finishes within microseconds. */
    wait_slots(d, SLOT_WRITING, now_ns() + 50 * 1000000);

    atomic_store_explicit(&threads_state.current, NULL, memory_order_seq_cst);
    bool drained = false;
    for (int i = 0; i < 2000 && !drained; i++) {
        drained = atomic_load_explicit(&threads_state.active,
                                       memory_order_seq_cst) == 0;
        if (!drained)
            sleep_ns(50000);
    }
    pthread_mutex_unlock(&threads_state.lock);

    for (size_t i = 0; i < n; i++) {
        cp_thread_stack *t = &(*out)[i];
        t->tid = tids[i];
        if (atomic_load_explicit(&slots[i].state, memory_order_acquire) ==
                SLOT_DONE &&
            slots[i].depth > 0) {
            t->answered = true;
            t->depth = slots[i].depth;
            memcpy(t->pcs, slots[i].pcs, t->depth * sizeof *t->pcs);
        }
    }
    if (drained) {
        free(slots);
        free(d);
    } /* else: a handler may still read it; leaking beats a crash */
    return 0;
}

void cp_threads_thread_start(void)
{
    int sig = atomic_load_explicit(&threads_state.sig, memory_order_acquire);
    if (sig == 0)
        return;
    if (cp_sigmask_blocked(sig))
        cp_sigmask_unblock(sig);
}

int cp_threads_signal(void)
{
    pthread_mutex_lock(&threads_state.lock);
    int sig = threads_state.sig;
    pthread_mutex_unlock(&threads_state.lock);
    return sig;
}
