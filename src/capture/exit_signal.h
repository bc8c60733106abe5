/*
 * capture/exit_signal.h - SIGINT/SIGTERM handlers that let the preloaded
 * library write its profiles before the program dies of the signal.
 *
 * Owned by capture/exit_signal.c (the preload area); called only by
 * service/preload.c, in normal context.  The handler itself does the
 * minimum a handler may: it writes the signal number to a pipe that the
 * preload watcher thread reads, and that thread writes the profiles,
 * restores the default disposition and re-raises.  A second signal, or a
 * signal when no watcher can be told, restores the default disposition
 * and re-raises at once, so the program can always be stopped.
 */
#ifndef CP_CAPTURE_EXIT_SIGNAL_H
#define CP_CAPTURE_EXIT_SIGNAL_H

#include <stdbool.h>

/*
 * Installs the handler for SIGINT and SIGTERM where the disposition is
 * still SIG_DFL (a signal the program's parent ignored stays ignored; a
 * handler the program installs later replaces ours, as it should).
 * notify_fd is the pipe's write end.  Returns how many were installed.
 */
int cp_exit_signal_install(int notify_fd);
/* Points the handler at a new pipe (a fork child makes its own), or at
 * none (-1): the handler then just re-raises with the default action. */
void cp_exit_signal_set_fd(int notify_fd);
/* Puts SIG_DFL back for each signal whose handler is still ours. */
void cp_exit_signal_uninstall(void);
/* Whether sig's current handler is ours. */
bool cp_exit_signal_is_ours(int sig);

#endif
