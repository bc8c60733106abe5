/*
 * capture/exit_signal.h - SIGINT/SIGTERM handlers that let the preloaded
 * library write its profiles before the program dies of the signal.
 *
 * Owned by capture/exit_signal.c (the preload area); called only by
 * service/preload.c, in normal context.  The handler itself does the
 * minimum a handler may: it posts a semaphore that the preload watcher
 * thread waits on (no file descriptor, which the program could close and
 * reuse), and that thread writes the profiles, restores the default
 * disposition and re-raises.  A second signal, or a signal when no
 * watcher is waiting, restores the default disposition and re-raises at
 * once, so the program can always be stopped.
 */
#ifndef CP_CAPTURE_EXIT_SIGNAL_H
#define CP_CAPTURE_EXIT_SIGNAL_H

#include <stdbool.h>

/*
 * Installs the handler for SIGINT and SIGTERM where the disposition is
 * still SIG_DFL (a signal the program's parent ignored stays ignored; a
 * handler the program installs later replaces ours, as it should).
 * Returns how many were installed.
 */
int cp_exit_signal_install(void);
/* Whether a watcher waits (on: it is about to call cp_exit_signal_wait;
 * a fork child, whose watcher is gone, says off, then on for its own).
 * Off, the handler just re-raises with the default action. */
void cp_exit_signal_watch(bool on);
/* The watcher's wait: returns the signal the handler took (0: the wait
 * failed, and the handler re-raises on its own). */
int cp_exit_signal_wait(void);
/* Puts SIG_DFL back for each signal whose handler is still ours. */
void cp_exit_signal_uninstall(void);
/* Whether sig's current handler is ours. */
bool cp_exit_signal_is_ours(int sig);

#endif
