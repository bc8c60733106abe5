/*
 * capture/exit_signal.c - the SIGINT/SIGTERM handler of the preloaded
 * library (see exit_signal.h).
 *
 * THE FENCE: exit_signal_handler runs in signal context.  It is
 * async-signal-safe (write, sigaction, raise only), takes no lock,
 * allocates nothing and preserves errno.  The install/uninstall functions
 * run in normal context on behalf of service/preload.c.
 */
#include "capture/exit_signal.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static const int exit_signals[] = {SIGINT, SIGTERM};
#define NSIGS (int)(sizeof exit_signals / sizeof exit_signals[0])

static struct {
    _Atomic int notify_fd; /* pipe to the watcher, -1 when none */
    atomic_bool fired;     /* a first signal was handed to the watcher */
} exit_sig = {-1, false};

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
    int fd = atomic_load(&exit_sig.notify_fd);
    if (fd >= 0 && !atomic_exchange(&exit_sig.fired, true)) {
        unsigned char b = (unsigned char)sig;
        ssize_t n;
        do
            n = write(fd, &b, 1);
        while (n < 0 && errno == EINTR);
        if (n == 1) {
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

int cp_exit_signal_install(int notify_fd)
{
    atomic_store(&exit_sig.notify_fd, notify_fd);
    atomic_store(&exit_sig.fired, false);
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

void cp_exit_signal_set_fd(int notify_fd)
{
    atomic_store(&exit_sig.notify_fd, notify_fd);
    atomic_store(&exit_sig.fired, false);
}

void cp_exit_signal_uninstall(void)
{
    atomic_store(&exit_sig.notify_fd, -1);
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
