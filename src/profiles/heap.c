/*
 * profiles/heap.c - placeholder until the heap sampler lands: the profile's
 * name is reserved in the registry and every use reports -ENOSYS.
 */
#include "profiles/builtin.h"

const cp_builtin_ops cp_heap_ops = {
    .name = "heap",
    .description = "A sampling of memory allocations of live objects.",
};
const cp_builtin_ops cp_allocs_ops = {
    .name = "allocs",
    .description = "A sampling of all past memory allocations.",
};
