/*
 * encode/decode.h - profile.proto (gzip'd or raw) -> an in-memory decoded
 * profile, the inverse of encode/proto.c.
 *
 * Every message of profile.proto is kept with its string-table indices
 * resolved to strings (the table itself is kept too, so tests can check
 * entry 0 is "").  Used by tests, delta profiles and tools, in normal
 * thread context.  A decoded profile is immutable and owned by the caller;
 * functions here are reentrant.  Not for signal handlers.
 */
#ifndef CP_ENCODE_DECODE_H
#define CP_ENCODE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cp_dec_value_type {
    const char *type;
    const char *unit;
} cp_dec_value_type;

typedef struct cp_dec_label {
    const char *key;
    const char *str;      /* NULL for a numeric label */
    int64_t num;
    const char *num_unit; /* NULL when absent */
} cp_dec_label;

typedef struct cp_dec_sample {
    uint64_t *location_ids; /* leaf first */
    size_t nlocs;
    int64_t *values;
    size_t nvalues;
    cp_dec_label *labels;
    size_t nlabels;
} cp_dec_sample;

typedef struct cp_dec_line {
    uint64_t function_id;
    int64_t line;
} cp_dec_line;

typedef struct cp_dec_location {
    uint64_t id, mapping_id, address;
    cp_dec_line *lines; /* innermost inlined function first */
    size_t nlines;
    bool is_folded;
} cp_dec_location;

typedef struct cp_dec_function {
    uint64_t id;
    const char *name, *system_name, *filename;
    int64_t start_line;
} cp_dec_function;

typedef struct cp_dec_mapping {
    uint64_t id, start, limit, offset;
    const char *filename, *build_id;
    bool has_functions, has_filenames, has_line_numbers, has_inline_frames;
} cp_dec_mapping;

typedef struct cp_decoded {
    char **strings; /* the string table, as written */
    size_t nstrings;
    cp_dec_value_type *sample_types;
    size_t ntypes;
    cp_dec_sample *samples;
    size_t nsamples;
    cp_dec_mapping *mappings;
    size_t nmappings;
    cp_dec_location *locations;
    size_t nlocations;
    cp_dec_function *functions;
    size_t nfunctions;
    const char *drop_frames, *keep_frames;
    int64_t time_nanos, duration_nanos;
    cp_dec_value_type period_type;
    int64_t period;
    const char **comments;
    size_t ncomments;
    const char *default_sample_type; /* "" when not set */
} cp_decoded;

/*
 * Decodes len bytes: gzip (detected by its magic) or raw protobuf.
 * Returns 0, -EBADMSG for malformed input (bad gzip, bad wire data, a
 * string index out of range) or -ENOMEM.
 */
int cp_decode(const void *data, size_t len, cp_decoded **out);
/* cp_decode of a whole file; also -errno from opening/reading it. */
int cp_decode_file(const char *path, cp_decoded **out);
void cp_decoded_free(cp_decoded *d);

/* Lookups by id (NULL when absent). */
const cp_dec_location *cp_decoded_location(const cp_decoded *d, uint64_t id);
const cp_dec_function *cp_decoded_function(const cp_decoded *d, uint64_t id);
const cp_dec_mapping *cp_decoded_mapping(const cp_decoded *d, uint64_t id);
/* Index of the sample type named type, or -1. */
int cp_decoded_type_index(const cp_decoded *d, const char *type);
/* Sum over samples of value index i (0 when i is out of range). */
int64_t cp_decoded_total(const cp_decoded *d, size_t i);

#endif
