/*
 * service/preload.c - profiling an unchanged program: the library
 * constructor that reads the CPPROF_* variables (service/preload_env.h)
 * when libcpprof is loaded, by LD_PRELOAD or by linking the shared
 * library, starts what they ask for, and writes the profiles when the
 * program ends.
 *
 * The ways a program ends, and what happens:
 *   - exit() or return from main: an atexit handler, registered by the
 *     constructor and so run after the program's own atexit handlers and
 *     C++ static destructors, writes every requested profile;
 *   - SIGINT/SIGTERM with the default disposition: the handler in
 *     capture/exit_signal.c wakes the watcher thread started here, which
 *     writes the profiles, restores the default action and re-raises, so
 *     the parent still sees "killed by SIGINT";
 *   - fork: in CP_FORK_PID mode a child writes FILE.PID (its CPU profile
 *     restarted in the child, its heap state inherited); in
 *     CP_FORK_PARENT mode children stay idle.  Descendants that exec a
 *     new program recognise themselves by CPPROF_PID (the first
 *     process's pid, exported by the first process) and behave the same;
 *   - exec: nothing of ours survives: the CPU profile goes to a memory
 *     buffer (no file or temporary file is open during the run), the
 *     handler wakes the watcher through a semaphore, not a descriptor
 *     (which the program could close and reuse), the kernel deletes POSIX
 *     timers and resets handlers;
 *   - _exit, quick_exit, abort, crashes: nothing is written (documented).
 *
 * Threads: the constructor runs in the loading thread before main.  The
 * watcher thread is started only when something is to be written at the
 * end.  Everything else here runs in normal context; preload_state.lock
 * serialises the end-of-program work between the exit path and the
 * watcher.  No code here runs in a signal handler.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "cpprof.h"
#include "capture/exit_signal.h"
#include "capture/own_section.h"
#include "core/writer.h"
#include "service/preload_env.h"

static struct {
    pthread_mutex_t lock;     /* serialises preload_finish */
    bool active;              /* this process writes profiles at the end */
    bool finished;            /* preload_finish has run */
    pid_t root_pid;           /* the process whose files have plain names */
    cp_preload_config cfg;
    cpprof_writer *cpu_buf;   /* CPU profile, in memory until the end */
    cpprof_http_server *http; /* root process only */
    cpprof_service *service;  /* root process only */
} preload_state = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ------------------------------------------------------------ helpers */

static const char *env_get(const char *name, void *arg)
{
    (void)arg;
    return getenv(name);
}

static void report_stderr(const char *line, void *arg)
{
    (void)arg;
    fprintf(stderr, "%s\n", line);
}

/* The file this process writes for base: base itself in the first
 * process, base.PID in a descendant.  malloc'd; NULL when out of memory. */
static char *out_path(const char *base)
{
    pid_t me = getpid();
    if (me == preload_state.root_pid)
        return strdup(base);
    size_t n = strlen(base) + 24;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s.%ld", base, (long)me);
    return p;
}

/* Refuses a path whose directory we cannot write into, now rather than
 * at the end, when the run is over and the profile would be lost. */
static bool dir_writable(const char *env, const char *path, const char *kind)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (access(dir, W_OK | X_OK) == 0)
        return true;
    fprintf(stderr, "cpprof: %s=\"%s\": cannot write into %s: %s; %s skipped\n",
            env, path, dir, strerror(errno), kind);
    return false;
}

static void drop_path(char **path, const char *env, const char *kind)
{
    if (*path && !dir_writable(env, *path, kind)) {
        free(*path);
        *path = NULL;
    }
}

/* Writes len bytes, or profile p at debug 0, to the final file for base. */
static void save(const char *what, const char *base, cpprof_profile *p,
                 const void *data, size_t len)
{
    char *path = out_path(base);
    if (!path)
        return;
    cpprof_writer *w;
    int err = cpprof_writer_open_path(&w, path);
    if (err == 0) {
        err = p ? cpprof_profile_write(p, w, 0) : cp_writer_write(w, data, len);
        int cerr = cpprof_writer_close(w);
        if (!err)
            err = cerr;
    }
    if (err)
        fprintf(stderr, "cpprof: writing the %s profile to %s: %s\n", what,
                path, cpprof_strerror(err));
    free(path);
}

static void save_named(const char *name, const char *base)
{
    if (!base)
        return;
    cpprof_profile *p = cpprof_profile_lookup(name);
    if (!p) {
        fprintf(stderr, "cpprof: no %s profile in this build; %s not written\n",
                name, base);
        return;
    }
    save(name, base, p, NULL, 0);
}

/* ---------------------------------------------------------------- CPU */

/* Starts the CPU profile into a fresh memory buffer; reports failures.
 * verbose is false in fork children, where the parent already said it. */
static void cpu_begin(bool verbose)
{
    if (!preload_state.cfg.cpu_path)
        return;
    cpprof_writer *w;
    int err = cpprof_writer_open_buffer(&w);
    if (err == 0) {
        err = cpprof_cpu_start(w);
        if (err == 0) {
            preload_state.cpu_buf = w;
            return;
        }
        cpprof_writer_close(w);
    }
    if (verbose)
        fprintf(stderr, "cpprof: CPU profiling not started: %s%s\n",
                cpprof_strerror(err),
                err == -EBUSY ? " (the program or another cpprof user "
                                "is already profiling)"
                              : "");
}

static void cpu_end(void)
{
    cpprof_writer *w = preload_state.cpu_buf;
    if (!w)
        return;
    preload_state.cpu_buf = NULL;
    int err = cpprof_cpu_stop();
    size_t len = 0;
    const void *data = cpprof_writer_data(w, &len);
    if (err)
        fprintf(stderr, "cpprof: stopping the CPU profile: %s\n",
                cpprof_strerror(err));
    else if (len > 0)
        save("CPU", preload_state.cfg.cpu_path, NULL, data, len);
    cpprof_writer_close(w);
}

/* ------------------------------------------------------ end of program */

/* Writes everything this process was asked for, once. */
static void finish(void)
{
    pthread_mutex_lock(&preload_state.lock);
    if (!preload_state.active || preload_state.finished) {
        pthread_mutex_unlock(&preload_state.lock);
        return;
    }
    preload_state.finished = true;
    const cp_preload_config *cfg = &preload_state.cfg;

    /* The server first: a /debug/pprof/profile request in flight would
     * otherwise hold the CPU profiler or read state we are tearing down. */
    if (preload_state.http) {
        cpprof_http_server_stop(preload_state.http);
        preload_state.http = NULL;
    }
    if (preload_state.service) {
        int err = cpprof_service_stop(preload_state.service);
        if (err)
            fprintf(stderr, "cpprof: stopping the profile service: %s\n",
                    cpprof_strerror(err));
        cpprof_service_free(preload_state.service);
        preload_state.service = NULL;
    }
    cpu_end();
    /* go test -memprofile writes the allocs profile; it carries the
     * inuse_* values too (-sample_index=inuse_space shows the leaks). */
    save_named("allocs", cfg->mem_path);
    save_named("block", cfg->block_path);
    save_named("mutex", cfg->mutex_path);
    save_named("threads", cfg->threads_path);
    pthread_mutex_unlock(&preload_state.lock);
}

/* What finishing allocates (file names, writers) is the profiler's own:
 * the heap profile it writes must not count it. */
static void preload_finish(void)
{
    bool was_own = cp_own_begin();
    finish();
    cp_own_end(was_own);
}

static void preload_atexit(void)
{
    preload_finish();
    /* A SIGINT from here on just kills, as it would without us. */
    cp_exit_signal_uninstall();
}

/* Waits for the signal handler's word, ends the program's profiling and
 * then lets the signal do what it would have done without us. */
static void *watcher_main(void *arg)
{
    (void)arg;
    int sig = cp_exit_signal_wait();
    if (sig == 0) {
        cp_exit_signal_watch(false);
        return NULL;
    }
    preload_finish();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    raise(sig); /* default action: the whole process ends here */
    return NULL;
}

/* Starts the watcher and points the signal handler at it. */
static void watcher_begin(bool install)
{
    /* Told before the thread exists: a signal from here on waits for it
     * (the semaphore keeps the post). */
    cp_exit_signal_watch(true);
    /* The watcher takes none of the program's asynchronous signals, so a
     * process-directed signal is always handled by a program thread. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGPROF);
    for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
        sigdelset(&all, s); /* cpprof's own stack-dump signals */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pthread_t t;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    bool was_own = cp_own_begin(); /* the watcher's allocations */
    int err = pthread_create(&t, &attr, watcher_main, NULL);
    cp_own_end(was_own);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        cp_exit_signal_watch(false);
        return;
    }
    pthread_setname_np(t, "cpprof-exit");
    if (install)
        cp_exit_signal_install();
}

/* True when this process writes something at the end. */
static bool wants_finish(void)
{
    const cp_preload_config *c = &preload_state.cfg;
    return c->cpu_path || c->mem_path || c->block_path || c->mutex_path ||
           c->threads_path || preload_state.http || preload_state.service;
}

/* ------------------------------------------------------------- fork */

/*
 * In the child, before fork returns.  Threads of the parent (watcher,
 * HTTP and service threads) do not exist here, so their handles are
 * forgotten rather than stopped, and the parent's CPU buffer is left
 * alone (the CPU subsystem stops profiling in a child).
 */
static void preload_fork_child(void)
{
    pthread_mutex_init(&preload_state.lock, NULL);
    if (!preload_state.active)
        return;
    preload_state.http = NULL;
    preload_state.service = NULL;
    preload_state.cpu_buf = NULL; /* the parent's: never closed here */
    cp_exit_signal_watch(false); /* the parent's watcher is not here */
    if (preload_state.cfg.fork_mode == CP_FORK_PARENT ||
        preload_state.finished) {
        preload_state.active = false;
        cp_exit_signal_uninstall();
        return;
    }
    cpu_begin(false);
    if (wants_finish())
        watcher_begin(false);
}

/* -------------------------------------------------------- constructor */

static void apply_rates(const cp_preload_config *cfg)
{
    int err;
    if (cfg->cpu_rate >= 0 &&
        (err = cpprof_cpu_set_rate((int)cfg->cpu_rate)) != 0)
        fprintf(stderr, "cpprof: CPPROF_CPURATE=%lld: %s\n",
                (long long)cfg->cpu_rate, cpprof_strerror(err));
    if (cfg->mem_rate >= 0 && (err = cpprof_heap_set_rate(cfg->mem_rate)) != 0)
        fprintf(stderr, "cpprof: CPPROF_MEMPROFILERATE=%lld: %s\n",
                (long long)cfg->mem_rate, cpprof_strerror(err));
    /* Heap samples cost allocation time.  When the environment configures
     * profiling and nothing in it can ever read heap data (no memory
     * profile, no HTTP server, no service, no explicit rate), the program
     * does not pay for them.  A program may still turn sampling back on
     * with cpprof_heap_set_rate. */
    if (cfg->mem_rate < 0 && !cfg->mem_path && !cfg->http && !cfg->service)
        cpprof_heap_set_rate(0);
    /* As go test: asking for the profile without a rate records every
     * event. */
    int64_t block = cfg->block_rate >= 0 ? cfg->block_rate
                    : cfg->block_path    ? 1
                                         : -1;
    if (block >= 0 &&
        (err = cpprof_set_block_profile_rate(block)) != 0)
        fprintf(stderr, "cpprof: block profiling not enabled: %s\n",
                cpprof_strerror(err));
    int64_t mutex = cfg->mutex_fraction >= 0 ? cfg->mutex_fraction
                    : cfg->mutex_path        ? 1
                                             : -1;
    if (mutex >= 0 &&
        (err = cpprof_set_mutex_profile_fraction((int)mutex)) < 0)
        fprintf(stderr, "cpprof: mutex profiling not enabled: %s\n",
                cpprof_strerror(err));
}

static void start_servers(void)
{
    if (preload_state.cfg.http)
        cpprof_http_server_start_from_env(&preload_state.http); /* reports */
    if (preload_state.cfg.service) {
        /* new_from_env reports bad values itself. */
        cpprof_service *s = NULL;
        int err = cpprof_service_new_from_env(&s);
        if (err == 0 && (err = cpprof_service_start(s)) != 0) {
            fprintf(stderr, "cpprof: profile service not started: %s\n",
                    cpprof_strerror(err));
            cpprof_service_free(s);
            s = NULL;
        }
        preload_state.service = s;
    }
}

/* The first process's pid from CPPROF_PID, or 0 when absent/malformed. */
static pid_t inherited_root(void)
{
    const char *s = getenv("CPPROF_PID");
    if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 10)
        return 0;
    long v = strtol(s, NULL, 10);
    return v > 0 ? (pid_t)v : 0;
}

static void preload_start(void)
{
    pid_t me = getpid();
    pid_t root = inherited_root();
    bool is_root = root == 0 || root == me;
    /* Descendants stay quiet about bad values: the first process said it. */
    cp_preload_config cfg;
    int rc = cp_preload_config_parse(&cfg, env_get, NULL,
                                     is_root ? report_stderr : NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "cpprof: out of memory reading CPPROF_*\n");
        return;
    }
    if (!cp_preload_config_active(&cfg)) {
        cp_preload_config_free(&cfg);
        return;
    }
    if (root == 0) {
        char buf[24];
        snprintf(buf, sizeof buf, "%ld", (long)me);
        setenv("CPPROF_PID", buf, 1); /* tells descendants who is first */
        root = me;
    }
    if (!is_root && cfg.fork_mode == CP_FORK_PARENT) {
        cp_preload_config_free(&cfg);
        return;
    }
    if (is_root) {
        drop_path(&cfg.cpu_path, "CPPROF_CPUPROFILE", "CPU profiling");
        drop_path(&cfg.mem_path, "CPPROF_MEMPROFILE", "memory profiling");
        drop_path(&cfg.block_path, "CPPROF_BLOCKPROFILE", "block profiling");
        drop_path(&cfg.mutex_path, "CPPROF_MUTEXPROFILE", "mutex profiling");
        drop_path(&cfg.threads_path, "CPPROF_THREADSPROFILE",
                  "the threads profile");
    } else {
        /* One server per port and one service per folder: the first
         * process owns them. */
        cfg.http = cfg.service = false;
    }
    preload_state.cfg = cfg;
    preload_state.root_pid = root;
    preload_state.active = true;

    apply_rates(&cfg);
    cpu_begin(is_root);
    if (is_root)
        start_servers();
    if (!wants_finish())
        return;
    watcher_begin(true);
    atexit(preload_atexit);
    pthread_atfork(NULL, NULL, preload_fork_child);
}

/* Everything the constructor sets up is the profiler's own
 * (capture/own_section.h): never in the program's heap profile. */
__attribute__((constructor)) static void preload_init(void)
{
    bool was_own = cp_own_begin();
    preload_start();
    cp_own_end(was_own);
}
