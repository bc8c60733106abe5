/*
 * service/preload_env.h - the CPPROF_* variables that configure libcpprof
 * when it is loaded into an unchanged program (LD_PRELOAD or linking),
 * and the `cpprof run` flags that set them.
 *
 * Owned by service/preload_env.c.  One table describes every variable:
 * the library constructor (service/preload.c) parses the environment
 * with it and the CLI (tools/cpprof/run.c) validates its flags with it,
 * so a value is accepted or refused with the same words in both places.
 *
 * Pure parsing: no global state, reentrant, normal context only (it
 * allocates).  The variables of the HTTP server and the periodic service
 * are listed here so the CLI can set them, but they are parsed by their
 * owners (cpprof_http_server_start_from_env, cpprof_service_new_from_env).
 */
#ifndef CP_SERVICE_PRELOAD_ENV_H
#define CP_SERVICE_PRELOAD_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a variable's value is, which decides how it is checked. */
typedef enum cp_pvar_type {
    CP_PVAR_PATH,    /* a file name; made absolute when parsed */
    CP_PVAR_INT,     /* a decimal integer within [min, max] */
    CP_PVAR_FORK,    /* "pid" or "parent" */
    CP_PVAR_FOREIGN  /* parsed by another subsystem; passed through */
} cp_pvar_type;

/* One CPPROF_* variable and the `cpprof run` flag that sets it. */
typedef struct cp_pvar {
    const char *env;   /* "CPPROF_CPURATE" */
    const char *flag;  /* "cpurate" (used as -cpurate) */
    const char *arg;   /* placeholder in usage text: "HZ" */
    const char *usage; /* one line of help */
    cp_pvar_type type;
    int64_t min, max;  /* CP_PVAR_INT bounds, inclusive */
    const char *kind;  /* what a bad value turns off: "CPU profiling" */
} cp_pvar;

/* Every variable, in usage order, terminated by an entry with env NULL. */
extern const cp_pvar cp_preload_vars[];

/* The entry for an environment name or a flag name ("cpurate", without
 * dashes), or NULL. */
const cp_pvar *cp_pvar_by_env(const char *env);
const cp_pvar *cp_pvar_by_flag(const char *flag);

/*
 * Checks one value.  Returns 0 with *num set for CP_PVAR_INT (and 0 or 1
 * for CP_PVAR_FORK: pid, parent), or -EINVAL / -ERANGE with a reason
 * ("not an integer", "must be between 1 and 10000", ...) in why.
 */
int cp_pvar_check(const cp_pvar *v, const char *value, int64_t *num,
                  char *why, size_t whylen);

/*
 * path made absolute against the current directory (so a program that
 * changes directory still writes where it was asked), malloc'd; a copy
 * of path when it is already absolute or the cwd cannot be read.  NULL
 * only when out of memory.
 */
char *cp_preload_abspath(const char *path);

typedef enum cp_fork_mode {
    CP_FORK_PID = 0,   /* every process writes: FILE for the first, FILE.PID after */
    CP_FORK_PARENT = 1 /* only the first process writes; descendants stay idle */
} cp_fork_mode;

/* What the constructor was asked to do.  Paths are malloc'd and absolute;
 * NULL when that profile is not requested.  Rates are -1 when unset. */
typedef struct cp_preload_config {
    char *cpu_path;
    int64_t cpu_rate;
    char *mem_path;
    int64_t mem_rate;
    char *block_path;
    int64_t block_rate;
    char *mutex_path;
    int64_t mutex_fraction;
    char *threads_path;
    cp_fork_mode fork_mode;
    bool http;    /* CPPROF_HTTP or CPPROF_HTTP_UNIX is set */
    bool service; /* some CPPROF_SERVICE_* variable is set */
} cp_preload_config;

/* Reads a variable: getenv, or a test's table. */
typedef const char *(*cp_getenv_fn)(const char *name, void *arg);
/* Receives one complete line (no newline) per rejected variable. */
typedef void (*cp_report_fn)(const char *line, void *arg);

/*
 * Fills cfg from the variables.  A bad value is reported once through
 * report, naming the variable, and turns off that kind of profiling only
 * (a bad CPPROF_CPURATE skips the CPU profile, a bad CPPROF_FORK falls
 * back to "pid").  Returns the number of rejected variables (>= 0) or
 * -ENOMEM.  Free with cp_preload_config_free.
 */
int cp_preload_config_parse(cp_preload_config *cfg, cp_getenv_fn get,
                            void *get_arg, cp_report_fn report,
                            void *report_arg);
/* Whether cfg asks for anything at all. */
bool cp_preload_config_active(const cp_preload_config *cfg);
void cp_preload_config_free(cp_preload_config *cfg);

#endif
