/*
 * service/service_internal.h - the validated, owned form of a service
 * configuration, shared by service/service_config.c (which builds it from
 * a cpprof_service_config or the environment) and service/service.c
 * (which runs it).  Normal thread context only.
 */
#ifndef CP_SERVICE_INTERNAL_H
#define CP_SERVICE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "cpprof.h"

/* One profile the service saves. */
typedef struct cp_service_profile {
    char *name;          /* as configured: the file name prefix */
    cpprof_profile *ref; /* NULL for "cpu" */
    int interval;        /* seconds between saves; 0: only at stop */
    int debug;
    long long next_due_ms; /* CLOCK_MONOTONIC, while running */
} cp_service_profile;

typedef struct cp_service_plan {
    bool enabled;
    char *listen_address; /* NULL: no HTTP server */
    char *folder;         /* absolute */
    cp_service_profile *profiles;
    size_t nprofiles;
    int retention;
} cp_service_plan;

/* Validates cfg into plan (Go's unpackProfilesIntoMap, with the unknown
 * name reported at once).  -EINVAL or -ENOMEM; plan is then empty. */
int cp_service_plan_build(const cpprof_service_config *cfg,
                          cp_service_plan *plan);
void cp_service_plan_free(cp_service_plan *plan);

#endif
