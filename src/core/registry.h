/*
 * core/registry.h - how built-in profiles plug into the registry.
 *
 * Owned by core/registry.c, which holds the one table of built-in profiles;
 * each sampler in profiles/ provides the functions the table points to.
 * Used by the HTTP handlers and the service to list, describe and write
 * profiles.  Not for signal handlers.
 */
#ifndef CP_CORE_REGISTRY_H
#define CP_CORE_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "cpprof.h"
#include "model/profile.h"

/* What a built-in profile provides.  NULL members mean "not supported". */
typedef struct cp_builtin_ops {
    const char *name;
    const char *description; /* one sentence, for the HTTP index page */
    /* Current number of stacks (>= 0) or a negative errno. */
    int64_t (*count)(void);
    /* Builds the profile model (for debug=0 and for deltas).  -ENOSYS when
     * the sampler is not in this build. */
    int (*build)(cp_profile **out);
    /* Writes the text form for debug >= 1 (-EINVAL for a level it lacks). */
    int (*write_text)(cpprof_writer *w, int debug);
    /* Bit i set: sample value i accumulates over time and is subtracted in
     * a delta profile; the others are levels, reported as at the end.
     * 0 means the profile does not support deltas. */
    uint32_t delta_cumulative_mask;
} cp_builtin_ops;

/* The ops of a built-in profile, or NULL for a custom one. */
const cp_builtin_ops *cp_registry_builtin(const cpprof_profile *p);
/* Short description for the index page ("" for custom profiles). */
const char *cp_registry_description(const cpprof_profile *p);
/* Builds the model of any profile (custom or built-in). */
int cp_registry_build(cpprof_profile *p, cp_profile **out);

#endif
