/*
 * profiles/cpu.c - the CPU profiler (Go's StartCPUProfile/StopCPUProfile).
 *
 * Every thread gets its own timer_create() timer on its own CPU-time clock
 * delivering SIGPROF to that thread (SIGEV_THREAD_ID), so each thread is
 * sampled in proportion to the CPU it burns, however many run at once
 * (setitimer's process-wide ITIMER_PROF signal is the fallback, stated in
 * the profile's comments).  Threads alive at start are found in
 * /proc/self/task and armed by tid; threads created later arm themselves
 * in the pthread_create shim's start hook; a periodic rescan catches
 * threads created some other way and forgets threads that exited.
 *
 * The handler (capture/cpu_signal.c) unwinds into a lock-free ring; a
 * drain thread moves records into the profile model (model/profile.h),
 * merging equal stacks and label sets, and refreshes the unwinder's
 * address table when libraries come and go.  Stop disarms every timer,
 * waits for handlers in flight, drains the rest, and writes the model with
 * cp_proto_write (symbolized, with mappings) before returning.
 *
 * Thread-safety: start/stop/set_* are serialized by cpu_state.lock; the
 * thread hooks take the same lock (briefly; never held while writing).
 * Nothing here runs in a signal handler.  fork: the child inherits no
 * timers and no drain thread, so a pthread_atfork child handler turns
 * profiling off there (the parent's writer is left alone).
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cpprof.h"
#include "capture/cpu_signal.h"
#include "capture/own_section.h"
#include "capture/thread_hooks.h"
#include "capture/unwind_signal.h"
#include "core/labels.h"
#include "core/writer.h"
#include "encode/proto.h"
#include "model/profile.h"
#include "profiles/task_status.h"

#define CPU_RING_SLOTS 2048
/*
 * The drain period: long enough that the drain thread rarely takes a core
 * from the program (each wake-up preempts a busy thread: measured, a
 * 10 ms period cost 1.2 % of wall time at 100 Hz on 2 busy cores), short
 * enough that the ring stays under a quarter full at the highest rate
 * samples can arrive (the rate times the CPUs that can burn CPU time).
 */
#define CPU_DRAIN_MIN_NS 10000000LL   /* 10 ms */
#define CPU_DRAIN_MAX_NS 250000000LL  /* 250 ms */
#define CPU_RESCAN_NS 200000000LL     /* rescan threads at most this often */

/* One armed thread.  start is its /proc start time when it was armed by
 * tid (so a recycled tid is recognized); 0 when its exit hook removes it. */
typedef struct armed_thread {
    pid_t tid;
    timer_t timer;
    unsigned long long start;
} armed_thread;

static struct {
    pthread_mutex_t lock;
    pthread_once_t once;
    atomic_bool running;     /* a session exists: start .. end of stop */
    atomic_bool sampling;    /* timers may be armed (hooks check it) */
    int hz;                  /* rate for the next start */
    int unwind;              /* enum cpprof_cpu_unwind for the next start */
    bool unwind_set;         /* chosen by the API (else CPPROF_UNWIND) */
    bool itimer;             /* this run uses the setitimer fallback */
    int64_t period;          /* ns per expiration in this run */
    int64_t drain_ns;        /* the drain thread's period in this run */
    cpprof_writer *w;
    cp_profile *model;
    int model_err;           /* first -ENOMEM while aggregating */
    uint64_t lost;
    uint64_t taken;          /* expirations that reached the model */
    int64_t start_wall, start_mono, start_cpu;
    pthread_t drain;
    pthread_mutex_t drain_mu;  /* with drain_cv: wakes the drain at stop */
    pthread_cond_t drain_cv;
    bool drain_stop;
    armed_thread *armed;
    size_t narmed, cap;
    /* Threads armed by tid that had SIGPROF blocked (their timer's
     * signals stay pending: their CPU time is missing), the first few. */
    unsigned nblocked;
    pid_t blocked[4];
} cpu_state = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .once = PTHREAD_ONCE_INIT,
    .drain_mu = PTHREAD_MUTEX_INITIALIZER,
    .hz = 100,
};

/* Stands for samples dropped because the ring was full: the profile shows
 * them as this function, as Go shows runtime/pprof.lostProfileEvent. */
__attribute__((noinline, used)) void cpprof_lost_profile_event(void)
{
    __asm__ volatile("" ::: "memory");
}

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static pid_t gettid_(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* ------------------------------------------------------------ timers */

/* The CPU-time clock of thread tid (the kernel's MAKE_THREAD_CPUCLOCK). */
static clockid_t thread_clock(pid_t tid)
{
    return (clockid_t)((~(unsigned)tid << 3) | 6);
}

/* Start time (clock ticks since boot) of thread tid, 0 if unknown. */
static unsigned long long thread_start_time(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the parenthesized command: state is field 3, start
     * time field 22. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long long start = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        if (++field == 22) {
            start = strtoull(tok, NULL, 10);
            break;
        }
    }
    return start;
}

/* Whether thread tid blocks SIGPROF now; false when that cannot be
 * read. */
static bool thread_blocks_sigprof(pid_t tid)
{
    cp_task_status st;
    return cp_task_status_read(tid, &st) && cp_task_blocks(&st, SIGPROF);
}

static armed_thread *armed_find(pid_t tid)
{
    for (size_t i = 0; i < cpu_state.narmed; i++)
        if (cpu_state.armed[i].tid == tid)
            return &cpu_state.armed[i];
    return NULL;
}

static void armed_remove(armed_thread *a)
{
    timer_delete(a->timer);
    *a = cpu_state.armed[--cpu_state.narmed];
}

/* Arms thread tid (lock held).  0, or a negative errno from the kernel. */
static int arm_thread(pid_t tid, unsigned long long start)
{
    if (cpu_state.narmed == cpu_state.cap) {
        size_t ncap = cpu_state.cap ? cpu_state.cap * 2 : 32;
        armed_thread *v = realloc(cpu_state.armed, ncap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        cpu_state.armed = v;
        cpu_state.cap = ncap;
    }
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGPROF;
    sev._sigev_un._tid = tid;
    timer_t timer;
    if (timer_create(thread_clock(tid), &sev, &timer) != 0)
        return -errno;
    struct itimerspec its;
    its.it_interval.tv_sec = cpu_state.period / 1000000000;
    its.it_interval.tv_nsec = cpu_state.period % 1000000000;
    its.it_value = its.it_interval;
    if (timer_settime(timer, 0, &its, NULL) != 0) {
        int err = -errno;
        timer_delete(timer);
        return err;
    }
    cpu_state.armed[cpu_state.narmed++] = (armed_thread){ tid, timer, start };
    return 0;
}

/*
 * Arms every thread of the process not armed yet and forgets threads that
 * are gone (lock held).  Returns the first arming error, if no thread at
 * all could be armed.
 */
static int rescan_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -errno;
    int err = 0;
    bool any = cpu_state.narmed > 0;
    pid_t *seen = NULL;
    size_t nseen = 0, capseen = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        pid_t tid = (pid_t)atoi(e->d_name);
        if (nseen == capseen) {
            size_t nc = capseen ? capseen * 2 : 64;
            pid_t *v = realloc(seen, nc * sizeof(*v));
            if (!v)
                break;
            seen = v;
            capseen = nc;
        }
        seen[nseen++] = tid;
        armed_thread *a = armed_find(tid);
        if (a && a->start != 0 && a->start != thread_start_time(tid))
            armed_remove(a), a = NULL; /* the tid was recycled */
        if (a)
            continue;
        int rc = arm_thread(tid, thread_start_time(tid));
        if (rc == 0 && thread_blocks_sigprof(tid)) {
            /* Started before the library could unblock it at its start
             * (cp_cpu_thread_start), or blocked it since. */
            if (cpu_state.nblocked < 4)
                cpu_state.blocked[cpu_state.nblocked] = tid;
            cpu_state.nblocked++;
        }
        if (rc == 0)
            any = true;
        else if (!err && rc != -EINVAL) /* EINVAL: the thread just exited */
            err = rc;
    }
    closedir(d);
    /* Threads that exited without our exit hook. */
    for (size_t i = 0; seen && i < cpu_state.narmed;) {
        bool alive = false;
        for (size_t k = 0; k < nseen && !alive; k++)
            alive = seen[k] == cpu_state.armed[i].tid;
        if (alive)
            i++;
        else
            armed_remove(&cpu_state.armed[i]);
    }
    free(seen);
    return any ? 0 : err;
}

static void disarm_all(void)
{
    while (cpu_state.narmed > 0)
        armed_remove(&cpu_state.armed[cpu_state.narmed - 1]);
    free(cpu_state.armed);
    cpu_state.armed = NULL;
    cpu_state.cap = 0;
}

static int itimer_set(int64_t period)
{
    struct itimerval it;
    it.it_interval.tv_sec = period / 1000000000;
    it.it_interval.tv_usec = (period % 1000000000) / 1000;
    it.it_value = it.it_interval;
    return setitimer(ITIMER_PROF, &it, NULL) == 0 ? 0 : -errno;
}

/* ------------------------------------------------------------- hooks */

void cp_cpu_thread_start(void)
{
    /* Whether or not a profile runs now: one may start later, and this
     * thread's mask may have come from a creator that blocked every
     * signal around pthread_create. */
    cp_cpu_signal_admit_thread();
    if (!atomic_load(&cpu_state.sampling)) /* rechecked under the lock */
        return;
    cp_unwind_thread_prepare();
    pthread_mutex_lock(&cpu_state.lock);
    if (atomic_load(&cpu_state.sampling) && !cpu_state.itimer) {
        pid_t tid = gettid_();
        if (!armed_find(tid))
            arm_thread(tid, 0);
    }
    pthread_mutex_unlock(&cpu_state.lock);
}

void cp_cpu_thread_exit(void)
{
    if (!atomic_load(&cpu_state.sampling))
        return;
    pthread_mutex_lock(&cpu_state.lock);
    armed_thread *a = armed_find(gettid_());
    if (a)
        armed_remove(a);
    pthread_mutex_unlock(&cpu_state.lock);
}

/* -------------------------------------------------------------- drain */

static void drain_ring(void)
{
    cp_cpu_record rec;
    while (cp_cpu_ring_pop(&rec)) {
        cp_label labels[32];
        size_t nl = 0;
        for (size_t i = 0; rec.labels && i < rec.labels->n && nl < 32; i++)
            labels[nl++] = (cp_label){ .key = rec.labels->kv[i].key,
                                       .str = rec.labels->kv[i].value };
        int64_t values[2] = { rec.weight, rec.weight * cpu_state.period };
        cpu_state.taken += rec.weight;
        int rc = cp_profile_add_merged(cpu_state.model, rec.pcs, rec.depth,
                                       values, labels, nl);
        if (rc != 0 && cpu_state.model_err == 0)
            cpu_state.model_err = rc;
        cp_label_set_release(rec.labels);
    }
    cpu_state.lost += cp_cpu_ring_take_lost();
}

/* Sleeps one drain period; false once stop asked the thread to finish. */
static bool drain_wait(void)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    long long ns = until.tv_nsec + cpu_state.drain_ns;
    until.tv_sec += ns / 1000000000;
    until.tv_nsec = ns % 1000000000;
    pthread_mutex_lock(&cpu_state.drain_mu);
    while (!cpu_state.drain_stop &&
           pthread_cond_timedwait(&cpu_state.drain_cv, &cpu_state.drain_mu,
                                  &until) == 0) {
    }
    bool go_on = !cpu_state.drain_stop;
    pthread_mutex_unlock(&cpu_state.drain_mu);
    return go_on;
}

static void *drain_main(void *unused)
{
    int64_t next_rescan = now_ns(CLOCK_MONOTONIC) + CPU_RESCAN_NS;
    while (drain_wait()) {
        drain_ring();
        if (now_ns(CLOCK_MONOTONIC) >= next_rescan) {
            next_rescan = now_ns(CLOCK_MONOTONIC) + CPU_RESCAN_NS;
            cp_unwind_refresh();
            pthread_mutex_lock(&cpu_state.lock);
            if (atomic_load(&cpu_state.sampling) && !cpu_state.itimer)
                rescan_threads();
            pthread_mutex_unlock(&cpu_state.lock);
        }
    }
    return NULL;
}

/* -------------------------------------------------------------- fork */

static void atfork_child(void)
{
    /* No timers and no drain thread survived the fork: profiling is off
     * in the child.  The parent's writer and model are not ours to touch
     * (leaked in the child); the handler stays inert. */
    pthread_mutex_init(&cpu_state.lock, NULL);
    pthread_mutex_init(&cpu_state.drain_mu, NULL);
    if (atomic_load(&cpu_state.running)) {
        cp_cpu_signal_fork_child();
        if (cpu_state.itimer) {
            struct itimerval off = { { 0, 0 }, { 0, 0 } };
            setitimer(ITIMER_PROF, &off, NULL);
        }
        atomic_store(&cpu_state.sampling, false);
        atomic_store(&cpu_state.running, false);
        cpu_state.armed = NULL;
        cpu_state.narmed = cpu_state.cap = 0;
        cpu_state.model = NULL;
        cpu_state.w = NULL;
    }
}

static void cpu_init_once(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cpu_state.drain_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_atfork(NULL, NULL, atfork_child);
}

/* ------------------------------------------------------------- public */

int cpprof_cpu_set_rate(int hz)
{
    if (hz < 1 || hz > 10000)
        return -ERANGE;
    pthread_mutex_lock(&cpu_state.lock);
    int rc = atomic_load(&cpu_state.running) ? -EBUSY : 0;
    if (rc == 0)
        cpu_state.hz = hz;
    pthread_mutex_unlock(&cpu_state.lock);
    return rc;
}

int cpprof_cpu_set_unwind(int mode)
{
    if (mode != CPPROF_CPU_UNWIND_AUTO && mode != CPPROF_CPU_UNWIND_FP &&
        mode != CPPROF_CPU_UNWIND_DWARF)
        return -EINVAL;
    pthread_mutex_lock(&cpu_state.lock);
    int rc = atomic_load(&cpu_state.running) ? -EBUSY : 0;
    if (rc == 0) {
        cpu_state.unwind = mode;
        cpu_state.unwind_set = true;
    }
    pthread_mutex_unlock(&cpu_state.lock);
    return rc;
}

bool cpprof_cpu_running(void)
{
    return atomic_load(&cpu_state.running);
}

/* The unwinder for this run: the API's choice, else CPPROF_UNWIND. */
static int pick_unwind(enum cp_unwind_mode *mode)
{
    if (cpu_state.unwind_set) {
        *mode = (enum cp_unwind_mode)cpu_state.unwind;
        return 0;
    }
    const char *env = getenv("CPPROF_UNWIND");
    if (!env || !*env || strcmp(env, "auto") == 0)
        *mode = CP_UNWIND_AUTO;
    else if (strcmp(env, "fp") == 0)
        *mode = CP_UNWIND_FP;
    else if (strcmp(env, "dwarf") == 0)
        *mode = CP_UNWIND_DWARF;
    else
        return -EINVAL;
    return 0;
}

static void start_failed(void)
{
    cp_cpu_signal_disable();
    disarm_all();
    cp_cpu_signal_free();
    cp_profile_free(cpu_state.model);
    cpu_state.model = NULL;
    atomic_store(&cpu_state.sampling, false);
    atomic_store(&cpu_state.running, false);
}

static int cpu_start(cpprof_writer *w)
{
    if (!w)
        return -EINVAL;
    pthread_once(&cpu_state.once, cpu_init_once);
    pthread_mutex_lock(&cpu_state.lock);
    if (atomic_load(&cpu_state.running)) {
        pthread_mutex_unlock(&cpu_state.lock);
        return -EBUSY;
    }
    enum cp_unwind_mode mode;
    int rc = pick_unwind(&mode);
    if (rc == 0)
        rc = cp_cpu_signal_install();
    if (rc != 0) {
        pthread_mutex_unlock(&cpu_state.lock);
        return rc;
    }
    cp_unwind_thread_prepare();
    cp_unwind_refresh();

    cpu_state.period = 1000000000 / cpu_state.hz;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t per_s = (int64_t)cpu_state.hz * (cpus > 0 ? cpus : 1);
    cpu_state.drain_ns = (int64_t)(CPU_RING_SLOTS / 4) * 1000000000 / per_s;
    if (cpu_state.drain_ns < CPU_DRAIN_MIN_NS)
        cpu_state.drain_ns = CPU_DRAIN_MIN_NS;
    if (cpu_state.drain_ns > CPU_DRAIN_MAX_NS)
        cpu_state.drain_ns = CPU_DRAIN_MAX_NS;
    const cp_value_type types[2] = { { "samples", "count" },
                                     { "cpu", "nanoseconds" } };
    cpu_state.model = cp_profile_new("cpu", types, 2,
                                     (cp_value_type){ "cpu", "nanoseconds" },
                                     cpu_state.period);
    if (!cpu_state.model) {
        pthread_mutex_unlock(&cpu_state.lock);
        return -ENOMEM;
    }
    cpu_state.model->leaf_is_pc = true;
    cpu_state.model_err = 0;
    cpu_state.lost = 0;
    cpu_state.taken = 0;
    cpu_state.nblocked = 0;
    cpu_state.w = w;
    cpu_state.start_wall = now_ns(CLOCK_REALTIME);
    cpu_state.start_mono = now_ns(CLOCK_MONOTONIC);
    cpu_state.start_cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID);

    /* Per-thread timers unless the kernel lacks them (or a test forces
     * the fallback); the handler only accepts the kind armed. */
    const char *force = getenv("CPPROF_CPU_TIMER");
    cpu_state.itimer = force && strcmp(force, "setitimer") == 0;
    rc = cp_cpu_signal_enable(CPU_RING_SLOTS, mode, cpu_state.itimer);
    if (rc == 0) {
        atomic_store(&cpu_state.running, true);
        atomic_store(&cpu_state.sampling, true);
        if (!cpu_state.itimer && rescan_threads() != 0) {
            /* No per-thread timer could be armed: fall back. */
            cp_cpu_signal_disable();
            disarm_all();
            cpu_state.itimer = true;
            rc = cp_cpu_signal_enable(CPU_RING_SLOTS, mode, true);
        }
        if (rc == 0 && cpu_state.itimer)
            rc = itimer_set(cpu_state.period);
    }
    if (rc == 0) {
        cpu_state.drain_stop = false;
        bool was_own = cp_own_begin(); /* the drain's allocations */
        rc = -pthread_create(&cpu_state.drain, NULL, drain_main, NULL);
        cp_own_end(was_own);
    }
    if (rc != 0) {
        if (cpu_state.itimer)
            itimer_set(0);
        start_failed();
    }
    pthread_mutex_unlock(&cpu_state.lock);
    return rc;
}

/* Public entry points run as the profiler's own (capture/own_section.h):
 * what they allocate never shows in the program's heap profile. */
int cpprof_cpu_start(cpprof_writer *w)
{
    bool was_own = cp_own_begin();
    int rc = cpu_start(w);
    cp_own_end(was_own);
    return rc;
}

/* Adds the comments, times and lost samples, and writes the model. */
static int write_profile(void)
{
    cp_profile *p = cpu_state.model;
    p->time_nanos = cpu_state.start_wall;
    p->duration_nanos = now_ns(CLOCK_MONOTONIC) - cpu_state.start_mono;
    if (cpu_state.lost > 0) {
        uintptr_t pc = (uintptr_t)&cpprof_lost_profile_event;
        int64_t values[2] = { (int64_t)cpu_state.lost,
                              (int64_t)cpu_state.lost * cpu_state.period };
        cp_profile_add(p, &pc, 1, values, NULL, 0);
    }
    cp_profile_add_comment(p, cpu_state.itimer
        ? "cpprof: setitimer(ITIMER_PROF) fallback: one process-wide "
          "timer, so busy threads can be under-sampled"
        : "cpprof: per-thread timer_create(CLOCK_THREAD_CPUTIME_ID) "
          "timers");
    /* How much of the CPU time the process used the samples account for:
     * every expiration arrives with its overruns, but a kernel that
     * delays timer signals on a saturated machine drops those still
     * pending when the timers are deleted (docs/cpu.md). */
    int64_t used = now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu_state.start_cpu;
    if (used >= cpu_state.period * 10) {
        char text[160];
        int64_t seen = (int64_t)(cpu_state.taken + cpu_state.lost) *
                       cpu_state.period;
        snprintf(text, sizeof text,
                 "cpprof: samples cover %d%% of the process CPU time "
                 "while profiling (%lld of %lld ms)",
                 (int)(100.0 * (double)seen / (double)used),
                 (long long)(seen / 1000000), (long long)(used / 1000000));
        cp_profile_add_comment(p, text);
    }
    if (cpu_state.nblocked > 0) {
        char text[200];
        int n = snprintf(text, sizeof text,
                         "cpprof: %u thread(s) blocked SIGPROF, so their CPU "
                         "time is missing (tid",
                         cpu_state.nblocked);
        for (unsigned i = 0; i < cpu_state.nblocked && i < 4; i++)
            n += snprintf(text + n, sizeof text - (size_t)n, " %d",
                          (int)cpu_state.blocked[i]);
        snprintf(text + n, sizeof text - (size_t)n, "%s)",
                 cpu_state.nblocked > 4 ? " ..." : "");
        cp_profile_add_comment(p, text);
    }
    if (cpu_state.model_err)
        return cp_writer_fail(cpu_state.w, cpu_state.model_err);
    return cp_proto_write(p, cpu_state.w, 0);
}

static int cpu_stop(void)
{
    pthread_mutex_lock(&cpu_state.lock);
    if (!atomic_load(&cpu_state.sampling)) {
        /* Not running, or another stop is finishing the profile. */
        pthread_mutex_unlock(&cpu_state.lock);
        return 0;
    }
    atomic_store(&cpu_state.sampling, false);
    if (cpu_state.itimer)
        itimer_set(0);
    disarm_all();
    pthread_mutex_unlock(&cpu_state.lock);

    /* After this no handler is inside and none will sample again. */
    cp_cpu_signal_disable();
    pthread_mutex_lock(&cpu_state.drain_mu);
    cpu_state.drain_stop = true;
    pthread_cond_signal(&cpu_state.drain_cv);
    pthread_mutex_unlock(&cpu_state.drain_mu);
    pthread_join(cpu_state.drain, NULL);
    drain_ring();

    pthread_mutex_lock(&cpu_state.lock);
    int rc = write_profile();
    cp_cpu_signal_free();
    cp_profile_free(cpu_state.model);
    cpu_state.model = NULL;
    cpu_state.w = NULL;
    atomic_store(&cpu_state.running, false);
    pthread_mutex_unlock(&cpu_state.lock);
    return rc;
}

int cpprof_cpu_stop(void)
{
    bool was_own = cp_own_begin();
    int rc = cpu_stop();
    cp_own_end(was_own);
    return rc;
}
