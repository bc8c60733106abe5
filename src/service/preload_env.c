/*
 * service/preload_env.c - the table of CPPROF_* variables and their
 * parser (see preload_env.h).
 *
 * Called by the library constructor (service/preload.c) and by the CLI
 * (tools/cpprof/run.c), in normal context.  No global mutable state: the
 * table is const and every function is reentrant.  Allocates (paths).
 */
#include "service/preload_env.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const cp_pvar cp_preload_vars[] = {
    {"CPPROF_CPUPROFILE", "cpuprofile", "FILE",
     "write a CPU profile to FILE when the program ends",
     CP_PVAR_PATH, 0, 0, "CPU profiling"},
    {"CPPROF_CPURATE", "cpurate", "HZ",
     "CPU samples per second (default 100)",
     CP_PVAR_INT, 1, 10000, "CPU profiling"},
    {"CPPROF_MEMPROFILE", "memprofile", "FILE",
     "write an allocation profile to FILE when the program ends",
     CP_PVAR_PATH, 0, 0, "memory profiling"},
    {"CPPROF_MEMPROFILERATE", "memprofilerate", "BYTES",
     "one heap sample per BYTES allocated (default 524288; 1: every "
     "allocation)",
     CP_PVAR_INT, 0, INT64_MAX, "memory profiling"},
    {"CPPROF_BLOCKPROFILE", "blockprofile", "FILE",
     "write a blocking profile to FILE when the program ends",
     CP_PVAR_PATH, 0, 0, "block profiling"},
    {"CPPROF_BLOCKPROFILERATE", "blockprofilerate", "NS",
     "sample one blocking event per NS nanoseconds blocked (default 1 "
     "with -blockprofile: every event)",
     CP_PVAR_INT, 0, INT64_MAX, "block profiling"},
    {"CPPROF_MUTEXPROFILE", "mutexprofile", "FILE",
     "write a mutex contention profile to FILE when the program ends",
     CP_PVAR_PATH, 0, 0, "mutex profiling"},
    {"CPPROF_MUTEXPROFILEFRACTION", "mutexprofilefraction", "N",
     "sample 1 in N contention events (default 1 with -mutexprofile)",
     CP_PVAR_INT, 0, INT_MAX, "mutex profiling"},
    {"CPPROF_THREADSPROFILE", "threadsprofile", "FILE",
     "write the threads profile to FILE when the program ends",
     CP_PVAR_PATH, 0, 0, "the threads profile"},
    {"CPPROF_FORK", "fork", "pid|parent",
     "after fork: every process writes (children to FILE.PID, the "
     "default) or only the parent",
     CP_PVAR_FORK, 0, 0, "fork handling"},
    {"CPPROF_HTTP", "http", "ADDR",
     "serve /debug/pprof/ on ADDR while the program runs",
     CP_PVAR_FOREIGN, 0, 0, "the HTTP server"},
    {"CPPROF_SERVICE_FOLDER", "service-dir", "DIR",
     "run the profile service, saving profiles into DIR",
     CP_PVAR_FOREIGN, 0, 0, "the profile service"},
    {"CPPROF_SERVICE_PROFILES", "service-profiles", "LIST",
     "profiles the service saves, comma-separated (e.g. cpu,heap)",
     CP_PVAR_FOREIGN, 0, 0, "the profile service"},
    {"CPPROF_SERVICE_INTERVALS", "service-intervals", "LIST",
     "seconds between saves, one for all or one per profile",
     CP_PVAR_FOREIGN, 0, 0, "the profile service"},
    {NULL, NULL, NULL, NULL, CP_PVAR_FOREIGN, 0, 0, NULL},
};

/* The service's own variables: any of them set means "call the service's
 * from-env constructor", which alone decides what they mean. */
static const char *const service_vars[] = {
    "CPPROF_SERVICE_ENABLED", "CPPROF_SERVICE_ADDR",
    "CPPROF_SERVICE_FOLDER",  "CPPROF_SERVICE_PROFILES",
    "CPPROF_SERVICE_INTERVALS", "CPPROF_SERVICE_DEBUG",
    "CPPROF_SERVICE_RETENTION", NULL,
};

const cp_pvar *cp_pvar_by_env(const char *env)
{
    for (const cp_pvar *v = cp_preload_vars; env && v->env; v++)
        if (strcmp(v->env, env) == 0)
            return v;
    return NULL;
}

const cp_pvar *cp_pvar_by_flag(const char *flag)
{
    for (const cp_pvar *v = cp_preload_vars; flag && v->env; v++)
        if (strcmp(v->flag, flag) == 0)
            return v;
    return NULL;
}

int cp_pvar_check(const cp_pvar *v, const char *value, int64_t *num,
                  char *why, size_t whylen)
{
    int64_t dummy;
    if (!num)
        num = &dummy;
    *num = 0;
    if (!v || !value) {
        snprintf(why, whylen, "missing value");
        return -EINVAL;
    }
    switch (v->type) {
    case CP_PVAR_PATH:
        if (!*value) {
            snprintf(why, whylen, "empty file name");
            return -EINVAL;
        }
        return 0;
    case CP_PVAR_INT: {
        /* Digits only (an optional leading '-' so that a negative value
         * gets the range message, not "not an integer"). */
        const char *p = value + (value[0] == '-');
        if (!*p || strspn(p, "0123456789") != strlen(p)) {
            snprintf(why, whylen, "not an integer");
            return -EINVAL;
        }
        errno = 0;
        long long n = strtoll(value, NULL, 10);
        if (errno == ERANGE || n < v->min || n > v->max) {
            if (v->max == INT64_MAX)
                snprintf(why, whylen, "must be an integer >= %lld",
                         (long long)v->min);
            else
                snprintf(why, whylen, "must be between %lld and %lld",
                         (long long)v->min, (long long)v->max);
            return -ERANGE;
        }
        *num = n;
        return 0;
    }
    case CP_PVAR_FORK:
        if (strcmp(value, "pid") == 0) {
            *num = CP_FORK_PID;
            return 0;
        }
        if (strcmp(value, "parent") == 0) {
            *num = CP_FORK_PARENT;
            return 0;
        }
        snprintf(why, whylen, "must be \"pid\" or \"parent\"");
        return -EINVAL;
    case CP_PVAR_FOREIGN:
        return 0;
    }
    return 0;
}

char *cp_preload_abspath(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return strdup(path);
    size_t n = strlen(cwd) + 1 + strlen(path) + 1;
    char *abs = malloc(n);
    if (abs)
        snprintf(abs, n, "%s/%s", cwd, path);
    return abs;
}

/* Parsing state shared by the helpers below. */
struct parse {
    cp_getenv_fn get;
    void *get_arg;
    cp_report_fn report;
    void *report_arg;
    int rejected;
};

static const char *get_set(struct parse *ps, const char *name)
{
    const char *s = ps->get(name, ps->get_arg);
    return s && *s ? s : NULL; /* empty means unset */
}

static void reject(struct parse *ps, const cp_pvar *v, const char *value,
                   const char *why)
{
    char line[512];
    snprintf(line, sizeof line, "cpprof: %s=\"%.200s\": %s; %s skipped",
             v->env, value, why, v->kind);
    if (ps->report)
        ps->report(line, ps->report_arg);
    ps->rejected++;
}

/* Reads one variable: 1 when set and valid (num filled), 0 when unset,
 * -1 when set but rejected (already reported). */
static int read_var(struct parse *ps, const char *env, int64_t *num,
                    const char **value)
{
    const cp_pvar *v = cp_pvar_by_env(env);
    const char *s = get_set(ps, env);
    *value = s;
    if (!s)
        return 0;
    char why[128];
    if (cp_pvar_check(v, s, num, why, sizeof why) != 0) {
        reject(ps, v, s, why);
        return -1;
    }
    return 1;
}

/* A profile file and the rate that goes with it.  Either one rejected
 * skips the profile; a valid rate without a file still applies (it shapes
 * what the HTTP endpoints serve).  Returns -ENOMEM or 0. */
static int read_pair(struct parse *ps, const char *path_env,
                     const char *rate_env, char **path, int64_t *rate)
{
    int64_t num;
    const char *pv, *rv;
    int p = read_var(ps, path_env, &num, &pv);
    int r = read_var(ps, rate_env, &num, &rv);
    *rate = r == 1 ? num : -1;
    *path = NULL;
    if (p == 1 && r != -1) {
        *path = cp_preload_abspath(pv);
        if (!*path)
            return -ENOMEM;
    }
    return 0;
}

int cp_preload_config_parse(cp_preload_config *cfg, cp_getenv_fn get,
                            void *get_arg, cp_report_fn report,
                            void *report_arg)
{
    struct parse ps = {get, get_arg, report, report_arg, 0};
    memset(cfg, 0, sizeof *cfg);
    int rc = 0;
    rc |= read_pair(&ps, "CPPROF_CPUPROFILE", "CPPROF_CPURATE",
                    &cfg->cpu_path, &cfg->cpu_rate);
    rc |= read_pair(&ps, "CPPROF_MEMPROFILE", "CPPROF_MEMPROFILERATE",
                    &cfg->mem_path, &cfg->mem_rate);
    rc |= read_pair(&ps, "CPPROF_BLOCKPROFILE", "CPPROF_BLOCKPROFILERATE",
                    &cfg->block_path, &cfg->block_rate);
    rc |= read_pair(&ps, "CPPROF_MUTEXPROFILE", "CPPROF_MUTEXPROFILEFRACTION",
                    &cfg->mutex_path, &cfg->mutex_fraction);

    int64_t num;
    const char *value;
    if (read_var(&ps, "CPPROF_THREADSPROFILE", &num, &value) == 1 &&
        !(cfg->threads_path = cp_preload_abspath(value)))
        rc = -ENOMEM;
    cfg->fork_mode = read_var(&ps, "CPPROF_FORK", &num, &value) == 1
                         ? (cp_fork_mode)num
                         : CP_FORK_PID;

    cfg->http = get_set(&ps, "CPPROF_HTTP") || get_set(&ps, "CPPROF_HTTP_UNIX");
    for (const char *const *s = service_vars; *s; s++)
        if (get_set(&ps, *s))
            cfg->service = true;

    if (rc != 0) {
        cp_preload_config_free(cfg);
        return -ENOMEM;
    }
    return ps.rejected;
}

bool cp_preload_config_active(const cp_preload_config *cfg)
{
    return cfg->cpu_path || cfg->mem_path || cfg->block_path ||
           cfg->mutex_path || cfg->threads_path || cfg->http ||
           cfg->service || cfg->cpu_rate >= 0 || cfg->mem_rate >= 0 ||
           cfg->block_rate >= 0 || cfg->mutex_fraction >= 0;
}

void cp_preload_config_free(cp_preload_config *cfg)
{
    free(cfg->cpu_path);
    free(cfg->mem_path);
    free(cfg->block_path);
    free(cfg->mutex_path);
    free(cfg->threads_path);
    memset(cfg, 0, sizeof *cfg);
    cfg->cpu_rate = cfg->mem_rate = cfg->block_rate = cfg->mutex_fraction = -1;
}
