/*
 * profiles/task_status.h - one thread's line in the kernel's books:
 * /proc/self/task/TID/status, read for the fields the profiles need
 * (name, scheduler state, blocked signals).
 *
 * Used by profiles/threads.c (the threads profile lists every thread with
 * its name and state, and skips threads that block its dump signal) and
 * profiles/cpu.c (which names threads that block SIGPROF).  Normal thread
 * context only (stdio); thread-safe.
 */
#ifndef CP_PROFILES_TASK_STATUS_H
#define CP_PROFILES_TASK_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct cp_task_status {
    char name[64];
    char state[32];   /* e.g. "S (sleeping)" */
    uint64_t blocked; /* SigBlk: bit sig-1 set when sig is blocked */
} cp_task_status;

/* Reads thread tid's status; false when it cannot be read (the thread
 * exited), *out then untouched. */
bool cp_task_status_read(pid_t tid, cp_task_status *out);

/* Whether the status says sig is blocked. */
static inline bool cp_task_blocks(const cp_task_status *s, int sig)
{
    return sig > 0 && sig <= 64 && ((s->blocked >> (sig - 1)) & 1);
}

#endif
