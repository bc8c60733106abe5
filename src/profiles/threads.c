/*
 * profiles/threads.c - the "threads" profile (Go's "goroutine"; the
 * registry keeps that name as an alias): the stack of every thread of the
 * process right now.
 *
 * Called by the registry from any thread in normal context.  Threads are
 * listed from /proc/self/task with their name and scheduler state; stacks
 * come from capture/threads_signal.c (one signal per thread, bounded
 * wait).  A thread that blocks our signal is not signalled at all, and one
 * that does not answer in time is still listed, without a stack.
 *
 * debug=0 and 1: a count profile (identical stacks grouped, count = number
 * of threads).  debug=2: every thread with its id, name and state and its
 * full stack, like a crash dump.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "capture/threads_signal.h"
#include "capture/unwind_signal.h"
#include "core/writer.h"
#include "cpprof/heap.h"
#include "encode/text.h"
#include "model/profile.h"
#include "profiles/builtin.h"
#include "profiles/task_status.h"

#define THREADS_DEFAULT_TIMEOUT_MS 250

static struct {
    _Atomic int timeout_ms; /* 0: the default */
} threads_cfg;

typedef struct thread_info {
    pid_t tid;
    char name[64];
    char state[32];   /* e.g. "S (sleeping)" */
    bool sig_blocked; /* our dump signal is blocked in that thread */
} thread_info;

/* The tids of /proc/self/task (malloc'd array). */
static int list_tids(pid_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return -errno;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            pid_t *nv = realloc(*out, ncap * sizeof *nv);
            if (!nv) {
                closedir(dir);
                free(*out);
                *out = NULL;
                return -ENOMEM;
            }
            *out = nv;
            cap = ncap;
        }
        (*out)[(*n)++] = (pid_t)atoi(e->d_name);
    }
    closedir(dir);
    return 0;
}

static int cmp_tid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
    return (x > y) - (x < y);
}

/* Name, state and whether sig is blocked (profiles/task_status.h).  A
 * thread that exited meanwhile keeps state "gone". */
static void read_info(pid_t tid, int sig, thread_info *ti)
{
    memset(ti, 0, sizeof *ti);
    ti->tid = tid;
    strcpy(ti->state, "gone");
    cp_task_status st;
    if (!cp_task_status_read(tid, &st))
        return;
    memcpy(ti->name, st.name, sizeof ti->name);
    memcpy(ti->state, st.state, sizeof ti->state);
    ti->sig_blocked = cp_task_blocks(&st, sig);
}

/* Every thread's info and stack (arrays of n, malloc'd). */
static int snapshot(thread_info **infos, cp_thread_stack **stacks, size_t *n)
{
    *infos = NULL;
    *stacks = NULL;
    pid_t *tids;
    int err = list_tids(&tids, n);
    if (err)
        return err;
    qsort(tids, *n, sizeof *tids, cmp_tid);
    thread_info *ti = calloc(*n ? *n : 1, sizeof *ti);
    bool *skip = calloc(*n ? *n : 1, sizeof *skip);
    if (!ti || !skip) {
        free(tids);
        free(ti);
        free(skip);
        return -ENOMEM;
    }
    /* The handler's signal is chosen on first use; a first collect of no
     * thread installs it so the blocked-mask check below is meaningful. */
    if (cp_threads_signal() == 0) {
        cp_thread_stack *none;
        if (cp_threads_collect(NULL, NULL, 0, 1, &none) == 0)
            free(none);
    }
    int sig = cp_threads_signal();
    for (size_t i = 0; i < *n; i++) {
        read_info(tids[i], sig, &ti[i]);
        skip[i] = ti[i].sig_blocked;
    }
    cp_unwind_refresh();
    int timeout = atomic_load(&threads_cfg.timeout_ms);
    if (!timeout)
        timeout = THREADS_DEFAULT_TIMEOUT_MS;
    err = cp_threads_collect(tids, skip, *n, timeout, stacks);
    /* A thread whose stack the unwinder's table did not know yet (created
     * since the table was built, and never prepared) answers with its pc
     * alone and marks the table stale: refresh it (normal context) and ask
     * those threads once more. */
    size_t again = 0;
    for (size_t i = 0; !err && i < *n; i++) {
        bool shallow = (*stacks)[i].answered && (*stacks)[i].depth <= 1;
        again += shallow;
        skip[i] = !shallow;
    }
    if (again) {
        cp_unwind_refresh();
        cp_thread_stack *retry;
        if (cp_threads_collect(tids, skip, *n, timeout, &retry) == 0) {
            for (size_t i = 0; i < *n; i++)
                if (!skip[i] && retry[i].answered &&
                    retry[i].depth > (*stacks)[i].depth)
                    (*stacks)[i] = retry[i];
            free(retry);
        }
    }
    free(tids);
    free(skip);
    if (err) {
        free(ti);
        return err;
    }
    *infos = ti;
    return 0;
}

static int threads_build(cp_profile **out)
{
    static const cp_value_type type = {"threads", "count"};
    *out = NULL;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    thread_info *ti;
    cp_thread_stack *st;
    size_t n;
    int err = snapshot(&ti, &st, &n);
    if (err)
        return err;
    cp_profile *p = cp_profile_new("threads", &type, 1, type, 1);
    if (!p) {
        err = -ENOMEM;
        goto out;
    }
    p->time_nanos = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    p->leaf_is_pc = true; /* pcs[0] is the interrupted instruction */
    size_t unanswered = 0;
    for (size_t i = 0; i < n && !err; i++) {
        int64_t one = 1;
        unanswered += !st[i].answered;
        err = cp_profile_add_merged(p, st[i].pcs, st[i].depth, &one, NULL, 0);
    }
    if (!err && unanswered) {
        char note[160];
        snprintf(note, sizeof note,
                 "cpprof: %zu of %zu threads gave no stack (signal blocked "
                 "or no answer in time)", unanswered, n);
        err = cp_profile_add_comment(p, note);
    }
    if (err) {
        cp_profile_free(p);
        p = NULL;
    }
    *out = p;
out:
    free(ti);
    free(st);
    return err;
}

/* debug=2: one block per thread, crash-dump style. */
static int write_all_stacks(cpprof_writer *w)
{
    thread_info *ti;
    cp_thread_stack *st;
    size_t n;
    int err = snapshot(&ti, &st, &n);
    if (err)
        return err;
    cp_symbolizer *sym = cp_symbolizer_acquire();
    for (size_t i = 0; i < n; i++) {
        cp_writer_printf(w, "thread %d \"%s\" [%s]:\n", (int)ti[i].tid,
                         ti[i].name, ti[i].state);
        if (st[i].answered && sym) {
            cp_text_write_stack(w, sym, st[i].pcs, st[i].depth, true);
        } else {
            cp_writer_printf(w, "#\t(no stack: %s)\n\n",
                             ti[i].sig_blocked ? "signals blocked"
                             : !strcmp(ti[i].state, "gone")
                                 ? "thread exited"
                                 : "no answer in time");
        }
    }
    if (sym)
        cp_symbolizer_release(sym);
    free(ti);
    free(st);
    return cpprof_writer_error(w);
}

static int threads_write_text(cpprof_writer *w, int debug)
{
    if (debug < 1)
        return -EINVAL;
    if (debug >= 2)
        return write_all_stacks(w);
    cp_profile *p;
    int err = threads_build(&p);
    if (err)
        return err;
    err = cp_text_write_count(p, w);
    cp_profile_free(p);
    return err;
}

static int64_t threads_count(void)
{
    pid_t *tids;
    size_t n;
    int err = list_tids(&tids, &n);
    free(tids);
    return err ? err : (int64_t)n;
}

const cp_builtin_ops cp_threads_ops = {
    .name = "threads",
    .description = "Stack traces of all current threads.",
    .count = threads_count,
    .build = threads_build,
    .write_text = threads_write_text,
    .delta_cumulative_mask = 0, /* a snapshot: no deltas */
};

int cpprof_threads_set_timeout_ms(int ms)
{
    if (ms < 1 || ms > 10000)
        return -ERANGE;
    atomic_store(&threads_cfg.timeout_ms, ms);
    return 0;
}
