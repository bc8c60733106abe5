/*
 * capture/sigprof_guard.c - keeps cpprof's SIGPROF handler in place while
 * CPU profiling runs, when the program installs a SIGPROF handler of its
 * own after profiling started (the LD_PRELOAD case: the library starts
 * profiling before main).
 *
 * Why: GNU sort, like many programs, installs one cleanup handler on a
 * list of signals that includes SIGPROF; that handler removes temporary
 * files, restores the default action and re-raises.  Our next timer tick
 * then kills the program with "Profiling timer expired" and its output is
 * lost (gperftools' LD_PRELOAD profiler does exactly that).  So, while
 * cpprof_cpu_running() and the installed SIGPROF handler is cpprof's,
 * sigaction(SIGPROF, act, old) and signal(SIGPROF, h) from the program
 * are recorded in a shadow action and not installed: the program reads
 * back its own handler, and our timer signals keep reaching the sampler.
 * In every other case, and for every other signal, the calls go straight
 * to the next definition (libc's).  A program that installed its handler
 * before CPU profiling started keeps it, and cpprof_cpu_start then
 * reports -EBUSY (profiles/cpu.c).
 *
 * Owned by the preload area.  THE FENCE: sigaction and signal may be
 * called from signal handlers, so this file is async-signal-safe: no
 * allocation, no locks (one bounded try-lock on the shadow), errno of
 * the real call preserved.  The next sigaction is resolved by the
 * constructor, in normal context, with dlsym(RTLD_NEXT); glibc's
 * exported __sigaction is the fallback if a call comes first.
 *
 * Known limits: sigset/sysv_signal and raw rt_sigaction syscalls are not
 * guarded; while shadowed, SIGPROFs sent by kill() are taken as samples,
 * not passed to the program's handler.  Compiled out under sanitizers,
 * whose runtimes own sigaction.
 */
#ifndef CPPROF_SANITIZER_BUILD

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "cpprof/cpu.h"

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

extern int __sigaction(int, const struct sigaction *, struct sigaction *);
/* glibc's signal() under another name: the other signals go there. */
extern __sighandler_t bsd_signal(int, __sighandler_t);

static struct {
    _Atomic(sigaction_fn) next; /* the sigaction we forward to */
    atomic_flag busy;           /* guards shadow */
    struct sigaction shadow;    /* what the program believes is installed */
    bool has_shadow;
} sigprof_guard = {.busy = ATOMIC_FLAG_INIT};

__attribute__((constructor)) static void sigprof_guard_init(void)
{
    sigaction_fn f = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (f)
        atomic_store(&sigprof_guard.next, f);
}

static int next_sigaction(int sig, const struct sigaction *act,
                          struct sigaction *old)
{
    sigaction_fn f = atomic_load(&sigprof_guard.next);
    return f ? f(sig, act, old) : __sigaction(sig, act, old);
}

/* True when the live SIGPROF handler is the CPU profiler's and it runs:
 * cpprof_cpu_start refuses to start over a foreign handler and installs
 * its own before it reports running, so the live handler is ours. */
static bool guarding(struct sigaction *live)
{
    if (!cpprof_cpu_running())
        return false;
    if (next_sigaction(SIGPROF, NULL, live) != 0)
        return false;
    return (live->sa_flags & SA_SIGINFO) && live->sa_sigaction != NULL;
}

static void shadow_lock(void)
{
    /* Bounded: a handler interrupting the holder on the same thread must
     * not spin forever; a torn shadow is the lesser harm. */
    for (int i = 0; i < 1000 && atomic_flag_test_and_set(&sigprof_guard.busy); i++)
        ;
}

static void shadow_unlock(void)
{
    atomic_flag_clear(&sigprof_guard.busy);
}

__attribute__((visibility("default"))) int
sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    struct sigaction live;
    if (sig != SIGPROF || !guarding(&live))
        return next_sigaction(sig, act, old);
    shadow_lock();
    if (old) {
        if (sigprof_guard.has_shadow) {
            *old = sigprof_guard.shadow;
        } else {
            memset(old, 0, sizeof *old);
            old->sa_handler = SIG_DFL;
        }
    }
    if (act) {
        sigprof_guard.shadow = *act;
        sigprof_guard.has_shadow = true;
    }
    shadow_unlock();
    return 0;
}

/* glibc's signal() calls its internal sigaction, past the one above, so
 * it is guarded too; BSD semantics (SA_RESTART), as glibc's. */
__attribute__((visibility("default"))) __sighandler_t
signal(int sig, __sighandler_t handler)
{
    if (sig != SIGPROF)
        return bsd_signal(sig, handler);
    struct sigaction act, old;
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = SA_RESTART;
    if (sigaction(sig, &act, &old) != 0)
        return SIG_ERR;
    return (old.sa_flags & SA_SIGINFO) ? (__sighandler_t)(void (*)(void))old.sa_sigaction
                                       : old.sa_handler;
}

#endif /* CPPROF_SANITIZER_BUILD */
