/*
 * model/mappings.h - the process's loaded objects, as profile.proto's
 * Mapping messages need them: address range, file offset, path and GNU
 * build ID (read from the ELF note in memory).
 *
 * A snapshot is taken in normal thread context (it calls dl_iterate_phdr,
 * which takes the loader lock: never from a signal handler or an
 * interposed call).  Snapshots are immutable and freed by their owner.
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

/*
 * Helpers for code that walks dl_iterate_phdr itself (the symbolizer), so
 * both agree on names and IDs.  Call only inside a dl_iterate_phdr
 * callback (the object cannot be unloaded meanwhile).
 */
struct dl_phdr_info;
/* True for the kernel's vDSO (no file on disk). */
int cp_object_is_vdso(const struct dl_phdr_info *info);
/* The path a mapping reports for the object: the main program's real path
 * (via /proc/self/exe), "[vdso]", or the loader's name.  Uses buf (cap
 * bytes) when it has to build the string. */
const char *cp_object_path(const struct dl_phdr_info *info, char *buf,
                           size_t cap);
/* The object's GNU build ID as lowercase hex, from its PT_NOTE segment in
 * memory.  hex must hold CP_BUILD_ID_HEX_MAX bytes; returns the number of
 * hex digits, 0 when there is none ("" written). */
#define CP_BUILD_ID_HEX_MAX 129
size_t cp_object_build_id(const struct dl_phdr_info *info, char *hex);

#endif
