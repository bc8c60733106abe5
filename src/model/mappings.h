/*
 * model/mappings.h - the process's loaded objects, as profile.proto's
 * Mapping messages need them: address range, file offset, path and GNU
 * build ID (read from the ELF note in memory).
 *
 * A snapshot is taken in normal thread context (it calls dl_iterate_phdr,
 * which takes the loader lock: never from a signal handler or an
 * interposed call).  Snapshots are immutable and freed by their owner.
 * Besides the loaded objects, a snapshot holds those unloaded since the
 * process started (capture/objects.h) wherever no loaded object now
 * covers their addresses: samples taken in them are still named.
 */
#ifndef CP_MODEL_MAPPINGS_H
#define CP_MODEL_MAPPINGS_H

#include <stddef.h>
#include <stdint.h>

typedef struct cp_mapping {
    uintptr_t start, limit; /* [start, limit) of the executable segment */
    uint64_t offset;        /* file offset of start */
    const char *file;       /* path as loaded ("" if unknown) */
    const char *build_id;   /* lowercase hex, "" if the object has none */
} cp_mapping;

typedef struct cp_mappings {
    cp_mapping *v; /* sorted by start, non-overlapping */
    size_t n;
} cp_mappings;

int cp_mappings_snapshot(cp_mappings **out);
void cp_mappings_free(cp_mappings *m);
/* The mapping containing addr, or NULL.  Binary search. */
const cp_mapping *cp_mappings_find(const cp_mappings *m, uintptr_t addr);

#endif
