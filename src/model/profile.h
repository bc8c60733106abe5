/*
 * model/profile.h - the profile model: what every sampler builds and every
 * encoder reads.
 *
 * A model is a named set of samples (stack + values + labels) with the
 * value types, period and times that profile.proto carries.  Samplers
 * build one from their raw records in normal thread context; encoders
 * (encode/proto.c, encode/text.c) turn it into bytes; deltas subtract one
 * model from another before anything is encoded.  Only model/profile.c
 * mutates a model; encoders read the struct directly.
 *
 * Not thread-safe (a model is built and used by one thread); never used
 * from a signal handler.
 */
#ifndef CP_MODEL_PROFILE_H
#define CP_MODEL_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cp_value_type {
    const char *type; /* e.g. "samples", "cpu", "alloc_space" */
    const char *unit; /* e.g. "count", "nanoseconds", "bytes" */
} cp_value_type;

/* A sample label: a string value (str != NULL) or a number with a unit. */
typedef struct cp_label {
    const char *key;
    const char *str;
    int64_t num;
    const char *unit; /* for numbers; may be NULL */
} cp_label;

typedef struct cp_sample {
    const uintptr_t *pcs; /* leaf first, as captured (owned by the model) */
    size_t depth;
    int64_t *values;      /* nvalues entries */
    cp_label *labels;     /* owned copies */
    size_t nlabels;
} cp_sample;

typedef struct cp_profile {
    char *name;             /* e.g. "heap", "blobstore.Open" */
    cp_value_type *types;   /* sample types, owned */
    size_t ntypes;
    cp_value_type period_type;
    int64_t period;
    char *default_type;     /* NULL: the encoder's default (the last type) */
    int64_t time_nanos;     /* wall time of collection start */
    int64_t duration_nanos; /* 0 when not meaningful */
    /* true: each stack's first pc is an exact instruction address (CPU
     * samples); false: all pcs are return addresses (count profiles), so
     * the encoder looks up pc-1 to land inside the call instruction. */
    bool leaf_is_pc;
    char **comments;
    size_t ncomments;
    cp_sample *samples;
    size_t nsamples;
    size_t cap;
    struct cp_profile_arena *arena; /* strings and arrays live here */
} cp_profile;

cp_profile *cp_profile_new(const char *name, const cp_value_type *types,
                           size_t ntypes, cp_value_type period_type,
                           int64_t period);
void cp_profile_free(cp_profile *p);

int cp_profile_set_default_type(cp_profile *p, const char *type);
int cp_profile_add_comment(cp_profile *p, const char *text);

/* Appends a sample (values has ntypes entries).  Returns 0 or -ENOMEM. */
int cp_profile_add(cp_profile *p, const uintptr_t *pcs, size_t depth,
                   const int64_t *values, const cp_label *labels,
                   size_t nlabels);
/* Adds values to the sample with the same stack and labels, or appends. */
int cp_profile_add_merged(cp_profile *p, const uintptr_t *pcs, size_t depth,
                          const int64_t *values, const cp_label *labels,
                          size_t nlabels);
/*
 * Delta: for each value index i with bit i set in cumulative_mask,
 * p.value -= the value of base's sample with the same stack and labels;
 * the other values keep p's (end) level.  Samples left all zero are
 * dropped.  Types of p and base must match (-EINVAL otherwise).
 */
int cp_profile_subtract(cp_profile *p, const cp_profile *base,
                        uint32_t cumulative_mask);

#endif
