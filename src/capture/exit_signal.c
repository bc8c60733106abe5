/*
 * capture/exit_signal.c - the SIGINT/SIGTERM handler of the preloaded
 * library (see exit_signal.h).
 *
 * THE FENCE: exit_signal_handler runs in signal context.  It is
 * async-signal-safe (sem_post, sigaction, raise only), takes no lock,
 * allocates nothing and preserves errno.  The other functions run in
 * normal context on behalf of service/preload.c.
 *
 * Why a semaphore and not a pipe: a file descriptor of ours is a number
 * the program may close (daemons close every inherited descriptor) and
 * then reuse for its own file or socket; a handler writing the signal
 * number to it, or a fork child closing "our" pipe, would then write into
 * or close the program's descriptor.  A semaphore in our memory cannot be
 * taken from us.
 */
#include "capture/exit_signal.h"

#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

static const int exit_signals[] = {SIGINT, SIGTERM};
#define NSIGS (int)(sizeof exit_signals / sizeof exit_signals[0])

static struct {
    sem_t wake;             /* posted by the handler for the watcher */
    atomic_bool watched;    /* a watcher waits on wake */
    atomic_bool fired;      /* a first signal was handed to the watcher */
    _Atomic int sig;        /* that signal */
} exit_sig;

/* Default action now: the signal is blocked while we run, so raise()
 * leaves it pending and it takes effect as the handler returns. */
static void die_by_default(int sig)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    raise(sig);
}

static void exit_signal_handler(int sig)
{
    int saved = errno;
    if (atomic_load(&exit_sig.watched) &&
        !atomic_exchange(&exit_sig.fired, true)) {
        atomic_store(&exit_sig.sig, sig);
        if (sem_post(&exit_sig.wake) == 0) {
            errno = saved;
            return;
        }
    }
    die_by_default(sig);
    errno = saved;
}

bool cp_exit_signal_is_ours(int sig)
{
    struct sigaction cur;
    if (sigaction(sig, NULL, &cur) != 0)
        return false;
    return !(cur.sa_flags & SA_SIGINFO) &&
           cur.sa_handler == exit_signal_handler;
}

int cp_exit_signal_install(void)
{
    int installed = 0;
    for (int i = 0; i < NSIGS; i++) {
        struct sigaction cur;
        if (sigaction(exit_signals[i], NULL, &cur) != 0)
            continue;
        if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
            continue; /* ignored or handled by the program: leave it */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = exit_signal_handler;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART; /* the program's syscalls carry on */
        if (sigaction(exit_signals[i], &sa, NULL) == 0)
            installed++;
    }
    return installed;
}

void cp_exit_signal_watch(bool on)
{
    atomic_store(&exit_sig.watched, false);
    if (on) {
        /* A fork child's copy may hold a count posted in the parent. */
        sem_init(&exit_sig.wake, 0, 0);
        atomic_store(&exit_sig.fired, false);
        atomic_store(&exit_sig.watched, true);
    }
}

int cp_exit_signal_wait(void)
{
    while (sem_wait(&exit_sig.wake) != 0)
        if (errno != EINTR) /* EINTR: a signal the watcher takes (SIGPROF) */
            return 0;
    return atomic_load(&exit_sig.sig);
}

void cp_exit_signal_uninstall(void)
{
    atomic_store(&exit_sig.watched, false);
    for (int i = 0; i < NSIGS; i++) {
        if (!cp_exit_signal_is_ours(exit_signals[i]))
            continue;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigemptyset(&sa.sa_mask);
        sigaction(exit_signals[i], &sa, NULL);
    }
}
