/*
 * capture/objects.h - the loaded objects as profiles name them (path, GNU
 * build ID, executable segments), and the objects unloaded since the
 * process started, so that addresses sampled in them still get a mapping
 * and function names when the profile is written after the dlclose.
 *
 * Used by model/mappings.c and model/symbolize.c (naming, the unloaded
 * list) and by capture/dl_shim.c (recording unloads around dlclose).
 *
 * Normal thread context only: nothing here may run in a signal handler or
 * an allocator hook (it allocates, takes a mutex, and walks the loader's
 * list through capture/loader.h).  Thread-safe; fork-safe (the list's
 * mutex is held across fork).
 */
#ifndef CP_CAPTURE_OBJECTS_H
#define CP_CAPTURE_OBJECTS_H

#include <stddef.h>
#include <stdint.h>

struct dl_phdr_info;

/* ---- one loaded object, from inside a dl_iterate_phdr callback ------- */

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

/* An executable segment as the kernel's maps show it: whole pages, and
 * the file offset of start, so addr - start + offset is a file offset. */
typedef struct cp_object_seg {
    uintptr_t start, limit;
    uint64_t offset;
} cp_object_seg;

/* Fills segs (room for max) with the object's executable PT_LOAD
 * segments; returns how many the object has (may exceed max). */
size_t cp_object_exec_segs(const struct dl_phdr_info *info,
                           cp_object_seg *segs, size_t max);

/* ---- objects unloaded since the process started ---------------------- */

#define CP_UNLOADED_SEGS 4   /* executable segments kept per object */
#define CP_UNLOADED_MAX 256  /* objects remembered; the oldest go first */

typedef struct cp_unloaded_object {
    uintptr_t bias;       /* load address (dlpi_addr) */
    const char *path;     /* as the loader named it */
    const char *build_id; /* lowercase hex, "" if none */
    size_t nsegs;
    cp_object_seg segs[CP_UNLOADED_SEGS];
} cp_unloaded_object;

/* Calls fn for each remembered object, newest first, under the list's
 * lock (fn must not unload anything); objects whose addresses another
 * unloaded object also used are left out (a sample there could be either).
 * Returns the list's version, which changes whenever an object is added. */
unsigned long cp_objects_each_unloaded(void (*fn)(const cp_unloaded_object *,
                                                  void *),
                                       void *arg);

/* The list's version now (see cp_objects_each_unloaded). */
unsigned long cp_objects_unloaded_version(void);

/* Brackets a call that may unload objects (dlclose): before describes
 * every loaded object while it is still mapped (NULL when memory is
 * short: the unload then goes unrecorded); after records those gone since
 * and frees the description. */
typedef struct cp_objects_before cp_objects_before;
cp_objects_before *cp_objects_before_unload(void);
void cp_objects_after_unload(cp_objects_before *before);

#endif
