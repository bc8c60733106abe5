/*
 * service/service.c - the periodic profile service (Go's pprof-service):
 * saves the configured profiles into a folder on their intervals, keeps a
 * CPU profile running in rotation (one file per interval), optionally
 * serves /debug/pprof/, and saves everything once more at stop.
 *
 * Files are NAME.<unixtime>.pb.gz (.txt for debug != 0), written through
 * cpprof_writer_open_path (temporary file + rename: no reader sees a
 * partial file).  A name already taken gets .1, .2, ... before the
 * extension, so two saves in one second never collide.  A failed save is
 * logged on stderr and the next tick tries again, recreating the folder
 * if it vanished.
 *
 * Threads: the application's thread calls start/stop; one scheduler
 * thread per running service does the ticks.  Everything mutable lives in
 * struct cpprof_service, under its lock; saves are serialised by
 * save_lock so file names are chosen by one thread at a time.  Never from
 * a signal handler.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture/own_section.h"
#include "core/writer.h"
#include "cpprof.h"
#include "service/service_internal.h"

struct cpprof_service {
    cp_service_plan plan;
    pthread_mutex_t lock;      /* running, stopping, next_due_ms */
    pthread_cond_t wake;       /* CLOCK_MONOTONIC */
    pthread_mutex_t save_lock; /* one save (name choice + write) at a time */
    pthread_t thread;
    bool running, stopping;
    cpprof_http_server *http;
    cpprof_writer *cpu_writer; /* open while a CPU profile is running */
};

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* mkdir -p with mode 0755. */
static int make_folder(const char *dir)
{
    char path[4096];
    if (strlen(dir) >= sizeof path)
        return -ENAMETOOLONG;
    strcpy(path, dir);
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = c;
        if (!c)
            break;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* Parses "NAME.<time>[.<seq>]<ext>" for retention; false for anything
 * else (temporary files included). */
static bool parse_file_name(const char *file, const char *name,
                            const char *ext, long long *t, long *seq)
{
    size_t nl = strlen(name), el = strlen(ext), fl = strlen(file);
    if (fl <= nl + 1 + el || strncmp(file, name, nl) != 0 ||
        file[nl] != '.' || strcmp(file + fl - el, ext) != 0)
        return false;
    char mid[64];
    size_t ml = fl - nl - 1 - el;
    if (ml == 0 || ml >= sizeof mid)
        return false;
    memcpy(mid, file + nl + 1, ml);
    mid[ml] = '\0';
    char *end;
    *t = strtoll(mid, &end, 10);
    *seq = 0;
    if (end == mid)
        return false;
    if (*end == '.') {
        char *s = end + 1;
        *seq = strtol(s, &end, 10);
        if (end == s)
            return false;
    }
    return *end == '\0';
}

typedef struct saved_file {
    char name[256];
    long long t;
    long seq;
} saved_file;

static int newer_first(const void *a, const void *b)
{
    const saved_file *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? 1 : -1;
    return x->seq < y->seq ? 1 : x->seq > y->seq ? -1 : 0;
}

/* Deletes all but the newest `keep` files of one profile. */
static void apply_retention(const char *dir, const char *name,
                            const char *ext, int keep)
{
    if (keep <= 0)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    saved_file *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        saved_file f;
        if (strlen(e->d_name) >= sizeof f.name ||
            !parse_file_name(e->d_name, name, ext, &f.t, &f.seq))
            continue;
        strcpy(f.name, e->d_name);
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            saved_file *nv = realloc(v, nc * sizeof *v);
            if (!nv)
                break;
            v = nv;
            cap = nc;
        }
        v[n++] = f;
    }
    closedir(d);
    qsort(v, n, sizeof *v, newer_first);
    for (size_t i = (size_t)keep; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, v[i].name);
        unlink(path);
    }
    free(v);
}

/* A fresh path NAME.<unixtime>[.<seq>]<ext> in the folder (recreated if
 * it vanished).  Caller holds save_lock. */
static int fresh_path(cpprof_service *s, const char *name, const char *ext,
                      char *path, size_t cap)
{
    int rc = make_folder(s->plan.folder);
    if (rc)
        return rc;
    long long now = (long long)time(NULL);
    for (long seq = 0; seq < 100000; seq++) {
        int n = seq ? snprintf(path, cap, "%s/%s.%lld.%ld%s", s->plan.folder,
                               name, now, seq, ext)
                    : snprintf(path, cap, "%s/%s.%lld%s", s->plan.folder,
                               name, now, ext);
        if (n < 0 || (size_t)n >= cap)
            return -ENAMETOOLONG;
        struct stat st;
        if (lstat(path, &st) != 0 && errno == ENOENT)
            return 0;
    }
    return -EEXIST;
}

static void log_error(const char *what, const char *name, int rc)
{
    fprintf(stderr, "cpprof: service: could not %s %s: %s\n", what, name,
            cpprof_strerror(rc));
}

/* Saves one (non-CPU) profile; returns 0 or the error (logged). */
static int save_profile(cpprof_service *s, cp_service_profile *p)
{
    const char *ext = p->debug ? ".txt" : ".pb.gz";
    char path[4096];
    pthread_mutex_lock(&s->save_lock);
    cpprof_writer *w = NULL;
    int rc = fresh_path(s, p->name, ext, path, sizeof path);
    if (!rc)
        rc = cpprof_writer_open_path(&w, path);
    if (!rc) {
        rc = cpprof_profile_write(p->ref, w, p->debug);
        if (rc)
            cp_writer_fail(w, rc); /* never commit a partial file */
        int crc = cpprof_writer_close(w);
        if (!rc)
            rc = crc;
    }
    if (!rc)
        apply_retention(s->plan.folder, p->name, ext, s->plan.retention);
    pthread_mutex_unlock(&s->save_lock);
    if (rc)
        log_error("save profile", p->name, rc);
    return rc;
}

/* Ends the running CPU profile, committing its file.  Caller holds
 * save_lock. */
static int finish_cpu(cpprof_service *s)
{
    if (!s->cpu_writer)
        return 0;
    int rc = cpprof_cpu_stop();
    int crc = cpprof_writer_close(s->cpu_writer);
    s->cpu_writer = NULL;
    if (!rc)
        rc = crc;
    if (rc)
        log_error("save profile", "cpu", rc);
    else
        apply_retention(s->plan.folder, "cpu", ".pb.gz", s->plan.retention);
    return rc;
}

/* Go's restartCpuProfile: finish the current file, start the next. */
static int restart_cpu(cpprof_service *s, bool start_next)
{
    pthread_mutex_lock(&s->save_lock);
    int rc = finish_cpu(s);
    if (start_next) {
        char path[4096];
        cpprof_writer *w = NULL;
        int src = fresh_path(s, "cpu", ".pb.gz", path, sizeof path);
        if (!src)
            src = cpprof_writer_open_path(&w, path);
        if (!src) {
            src = cpprof_cpu_start(w);
            if (src) {
                cp_writer_fail(w, src); /* leaves no empty file behind */
                cpprof_writer_close(w);
            } else {
                s->cpu_writer = w;
            }
        }
        if (src)
            log_error("start CPU profile", "cpu", src);
    }
    pthread_mutex_unlock(&s->save_lock);
    return rc;
}

static void *scheduler(void *arg)
{
    cpprof_service *s = arg;
    pthread_mutex_lock(&s->lock);
    while (!s->stopping) {
        long long now = mono_ms(), earliest = -1;
        for (size_t i = 0; i < s->plan.nprofiles && !s->stopping; i++) {
            cp_service_profile *p = &s->plan.profiles[i];
            if (p->interval <= 0)
                continue;
            if (now >= p->next_due_ms) {
                /* A tick that overran skips the missed ones, as a Go
                 * ticker drops ticks a slow receiver did not take. */
                p->next_due_ms += (long long)p->interval * 1000;
                if (p->next_due_ms <= now)
                    p->next_due_ms = now + (long long)p->interval * 1000;
                pthread_mutex_unlock(&s->lock);
                if (p->ref)
                    save_profile(s, p);
                else
                    restart_cpu(s, true);
                pthread_mutex_lock(&s->lock);
                now = mono_ms();
            }
            if (earliest < 0 || p->next_due_ms < earliest)
                earliest = p->next_due_ms;
        }
        if (s->stopping)
            break;
        if (earliest < 0) {
            pthread_cond_wait(&s->wake, &s->lock);
        } else if (earliest > now) {
            struct timespec ts = {earliest / 1000, (earliest % 1000) * 1000000};
            pthread_cond_timedwait(&s->wake, &s->lock, &ts);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* --------------------------------------------------------------- public */

static int service_new(const cpprof_service_config *cfg,
                       cpprof_service **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    cpprof_service *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int rc = cp_service_plan_build(cfg, &s->plan);
    if (rc) {
        free(s);
        return rc;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->save_lock, NULL);
    *out = s;
    return 0;
}

/* The service's plan and state are the profiler's own allocations
 * (capture/own_section.h): never in the program's heap profile. */
int cpprof_service_new(const cpprof_service_config *cfg,
                       cpprof_service **out)
{
    bool was_own = cp_own_begin();
    int rc = service_new(cfg, out);
    cp_own_end(was_own);
    return rc;
}

static int service_start(cpprof_service *s)
{
    if (!s)
        return -EINVAL;
    if (!s->plan.enabled)
        return 0; /* disabled: nothing starts */
    pthread_mutex_lock(&s->lock);
    bool running = s->running;
    pthread_mutex_unlock(&s->lock);
    if (running)
        return -EALREADY;
    int rc = make_folder(s->plan.folder);
    if (rc) {
        log_error("create folder", s->plan.folder, rc);
        return rc;
    }
    if (s->plan.listen_address) {
        cpprof_http_options o = {.address = s->plan.listen_address};
        rc = cpprof_http_server_start(&o, &s->http);
        if (rc) {
            log_error("start the HTTP server on", s->plan.listen_address, rc);
            return rc;
        }
    }
    long long now = mono_ms();
    for (size_t i = 0; i < s->plan.nprofiles; i++) {
        cp_service_profile *p = &s->plan.profiles[i];
        p->next_due_ms = now + (long long)p->interval * 1000;
        if (!p->ref) /* CPU profiling runs from the start */
            restart_cpu(s, true);
    }
    s->stopping = false;
    rc = pthread_create(&s->thread, NULL, scheduler, s);
    if (rc) {
        restart_cpu(s, false);
        cpprof_http_server_stop(s->http);
        s->http = NULL;
        return -rc;
    }
    pthread_mutex_lock(&s->lock);
    s->running = true;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* Starting is the profiler's own work too: the folder, the HTTP server
 * and the scheduler thread (which inherits the section for its life). */
int cpprof_service_start(cpprof_service *s)
{
    bool was_own = cp_own_begin();
    int rc = service_start(s);
    cp_own_end(was_own);
    return rc;
}

int cpprof_service_stop(cpprof_service *s)
{
    if (!s)
        return -EINVAL;
    pthread_mutex_lock(&s->lock);
    if (!s->running) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    s->stopping = true;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);

    int first = 0;
    for (size_t i = 0; i < s->plan.nprofiles; i++) {
        cp_service_profile *p = &s->plan.profiles[i];
        int rc = p->ref ? save_profile(s, p) : restart_cpu(s, false);
        if (rc && !first)
            first = rc;
    }
    cpprof_http_server_stop(s->http);
    s->http = NULL;
    pthread_mutex_lock(&s->lock);
    s->running = false;
    pthread_mutex_unlock(&s->lock);
    return first;
}

void cpprof_service_free(cpprof_service *s)
{
    if (!s)
        return;
    cpprof_service_stop(s);
    cp_service_plan_free(&s->plan);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->save_lock);
    pthread_cond_destroy(&s->wake);
    free(s);
}

int cpprof_service_http_port(const cpprof_service *s)
{
    return s && s->http ? cpprof_http_server_port(s->http) : 0;
}
