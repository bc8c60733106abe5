/*
 * capture/sigmask.h - unblocking one of cpprof's own signals in the
 * calling thread, for the thread start hooks (the CPU profiler's SIGPROF,
 * the threads profile's stack-dump signal): a thread whose creator
 * blocked every signal around pthread_create inherits that mask.
 *
 * Normal context, the calling thread only; two system calls when the
 * signal is blocked, one when it is not.  Header-only.
 */
#ifndef CP_CAPTURE_SIGMASK_H
#define CP_CAPTURE_SIGMASK_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

/* Whether sig is blocked in the calling thread. */
static inline bool cp_sigmask_blocked(int sig)
{
    sigset_t cur;
    return pthread_sigmask(SIG_BLOCK, NULL, &cur) == 0 &&
           sigismember(&cur, sig) == 1;
}

/* Unblocks sig in the calling thread. */
static inline void cp_sigmask_unblock(int sig)
{
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

#endif
