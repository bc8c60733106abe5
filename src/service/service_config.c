/*
 * service/service_config.c - the service's configuration: validation of a
 * cpprof_service_config into an owned plan, and the CPPROF_SERVICE_*
 * environment variables.
 *
 * Called by service/service.c and by applications (cpprof_service_new,
 * cpprof_service_new_from_env).  Reentrant; it reads the environment, so
 * it must not race with setenv.  Never from a signal handler.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "capture/own_section.h"
#include "service/service_internal.h"

#define CPU_NAME "cpu"

void cp_service_plan_free(cp_service_plan *plan)
{
    for (size_t i = 0; i < plan->nprofiles; i++)
        free(plan->profiles[i].name);
    free(plan->profiles);
    free(plan->listen_address);
    free(plan->folder);
    memset(plan, 0, sizeof *plan);
}

/* The folder as an absolute path (Go's filepath.Abs), without touching
 * the file system. */
static char *absolute_folder(const char *folder)
{
    if (folder[0] == '/')
        return strdup(folder);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return NULL;
    size_t n = strlen(cwd) + strlen(folder) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", cwd, folder);
    return p;
}

/* Go's rule: a list as long as the names applies per profile, else its
 * first value applies to all, else def. */
static int pick(const int *v, size_t nv, size_t nnames, size_t i, int def)
{
    if (nv == nnames)
        return v[i];
    return nv > 0 ? v[0] : def;
}

int cp_service_plan_build(const cpprof_service_config *cfg,
                          cp_service_plan *plan)
{
    memset(plan, 0, sizeof *plan);
    if (!cfg)
        return -EINVAL;
    plan->enabled = cfg->enabled;
    if (!cfg->enabled)
        return 0; /* nothing else matters for a disabled service */
    if (!cfg->folder || !*cfg->folder) {
        fprintf(stderr, "cpprof: service: no folder configured\n");
        return -EINVAL;
    }
    if (cfg->retention < 0 || (cfg->nprofile_names && !cfg->profile_names) ||
        (cfg->nintervals && !cfg->intervals) ||
        (cfg->ndebug_values && !cfg->debug_values))
        return -EINVAL;
    int rc = -ENOMEM;
    plan->retention = cfg->retention;
    plan->folder = absolute_folder(cfg->folder);
    if (!plan->folder)
        goto fail;
    if (cfg->listen_address && *cfg->listen_address &&
        !(plan->listen_address = strdup(cfg->listen_address)))
        goto fail;
    size_t n = cfg->nprofile_names;
    plan->profiles = calloc(n ? n : 1, sizeof *plan->profiles);
    if (!plan->profiles)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const char *name = cfg->profile_names[i];
        cp_service_profile *p = &plan->profiles[plan->nprofiles];
        rc = -EINVAL;
        if (!name || !*name || strchr(name, '/')) {
            fprintf(stderr, "cpprof: service: invalid profile name \"%s\"\n",
                    name ? name : "(null)");
            goto fail;
        }
        /* A name listed twice is one profile, as in Go's map. */
        bool dup = false;
        for (size_t j = 0; j < plan->nprofiles; j++)
            dup |= strcmp(plan->profiles[j].name, name) == 0;
        if (dup)
            continue;
        p->interval = pick(cfg->intervals, cfg->nintervals, n, i, 0);
        p->debug = pick(cfg->debug_values, cfg->ndebug_values, n, i, 0);
        if (p->interval < 0 || p->debug < 0 || p->debug > 2) {
            fprintf(stderr, "cpprof: service: profile %s: interval %d and "
                    "debug %d must be >= 0 and 0..2\n", name, p->interval,
                    p->debug);
            goto fail;
        }
        if (strcmp(name, CPU_NAME) != 0) {
            p->ref = cpprof_profile_lookup(name);
            if (!p->ref) {
                fprintf(stderr, "cpprof: service: pprof profile does not "
                        "exist: %s\n", name);
                goto fail;
            }
        }
        rc = -ENOMEM;
        if (!(p->name = strdup(name)))
            goto fail;
        plan->nprofiles++;
    }
    return 0;
fail:
    cp_service_plan_free(plan);
    return rc;
}

/* ------------------------------------------------------------ from env */

/* Splits a comma-separated value into trimmed, non-empty items (in place
 * in buf).  Returns the count, or -ENOMEM. */
static int split_list(char *buf, char ***items)
{
    size_t cap = 1;
    for (const char *c = buf; *c; c++)
        cap += *c == ',';
    *items = calloc(cap, sizeof **items);
    if (!*items)
        return -ENOMEM;
    int n = 0;
    for (char *tok = buf; tok;) {
        char *comma = strchr(tok, ',');
        if (comma)
            *comma = '\0';
        while (*tok == ' ' || *tok == '\t')
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (*tok)
            (*items)[n++] = tok;
        tok = comma ? comma + 1 : NULL;
    }
    return n;
}

static int parse_int_list(const char *var, int **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    const char *v = getenv(var);
    if (!v || !*v)
        return 0;
    char *buf = strdup(v);
    char **items = NULL;
    int n = buf ? split_list(buf, &items) : -ENOMEM;
    int rc = n < 0 ? n : 0;
    if (n > 0 && !(*out = calloc((size_t)n, sizeof **out)))
        rc = -ENOMEM;
    for (int i = 0; !rc && i < n; i++) {
        char *end;
        errno = 0;
        long x = strtol(items[i], &end, 10);
        if (*end || errno || x < 0 || x > INT_MAX) {
            fprintf(stderr, "cpprof: %s: \"%s\" is not a non-negative "
                    "integer\n", var, items[i]);
            rc = -EINVAL;
        } else {
            (*out)[i] = (int)x;
        }
    }
    if (rc) {
        free(*out);
        *out = NULL;
    } else {
        *nout = (size_t)n;
    }
    free(items);
    free(buf);
    return rc;
}

static int parse_bool(const char *var, bool *out)
{
    const char *v = getenv(var);
    *out = false;
    if (!v || !*v)
        return 0;
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    fprintf(stderr, "cpprof: %s: \"%s\" is not a boolean\n", var, v);
    return -EINVAL;
}

static int service_new_from_env(cpprof_service **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    cpprof_service_config cfg = {0};
    int *intervals = NULL, *debug = NULL, *retention = NULL;
    size_t nretention = 0;
    char *names_buf = NULL;
    char **names = NULL;
    /* Unset, ENABLED follows FOLDER: naming a folder asks for the
     * service; an explicit 0 still turns it off. */
    const char *folder = getenv("CPPROF_SERVICE_FOLDER");
    const char *en = getenv("CPPROF_SERVICE_ENABLED");
    int rc = parse_bool("CPPROF_SERVICE_ENABLED", &cfg.enabled);
    if (!rc && (!en || !*en))
        cfg.enabled = folder && *folder;
    if (!rc)
        rc = parse_int_list("CPPROF_SERVICE_INTERVALS", &intervals,
                            &cfg.nintervals);
    if (!rc)
        rc = parse_int_list("CPPROF_SERVICE_DEBUG", &debug,
                            &cfg.ndebug_values);
    if (!rc)
        rc = parse_int_list("CPPROF_SERVICE_RETENTION", &retention,
                            &nretention);
    if (!rc && nretention > 1) {
        fprintf(stderr, "cpprof: CPPROF_SERVICE_RETENTION takes one number\n");
        rc = -EINVAL;
    }
    const char *pv = getenv("CPPROF_SERVICE_PROFILES");
    if (!rc && pv && *pv) {
        names_buf = strdup(pv);
        int n = names_buf ? split_list(names_buf, &names) : -ENOMEM;
        if (n < 0)
            rc = n;
        else
            cfg.nprofile_names = (size_t)n;
    }
    if (!rc) {
        cfg.listen_address = getenv("CPPROF_SERVICE_ADDR");
        cfg.folder = folder;
        cfg.profile_names = (const char *const *)names;
        cfg.intervals = intervals;
        cfg.debug_values = debug;
        cfg.retention = nretention ? retention[0] : 0;
        rc = cpprof_service_new(&cfg, out);
    }
    free(intervals);
    free(debug);
    free(retention);
    free(names);
    free(names_buf);
    return rc;
}

/* The parsed lists are the profiler's own allocations
 * (capture/own_section.h): never in the program's heap profile. */
int cpprof_service_new_from_env(cpprof_service **out)
{
    bool was_own = cp_own_begin();
    int rc = service_new_from_env(out);
    cp_own_end(was_own);
    return rc;
}
