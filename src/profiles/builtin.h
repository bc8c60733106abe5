/*
 * profiles/builtin.h - the entry points each built-in sampler gives the
 * registry's table (core/registry.c).  One cp_builtin_ops per profile,
 * defined in the sampler's own file.
 */
#ifndef CP_PROFILES_BUILTIN_H
#define CP_PROFILES_BUILTIN_H

#include "core/registry.h"

extern const cp_builtin_ops cp_heap_ops;         /* profiles/heap.c */
extern const cp_builtin_ops cp_allocs_ops;       /* profiles/heap.c */
extern const cp_builtin_ops cp_threads_ops;      /* profiles/threads.c */
extern const cp_builtin_ops cp_threadcreate_ops; /* profiles/threadcreate.c */
extern const cp_builtin_ops cp_block_ops;        /* profiles/block.c */
extern const cp_builtin_ops cp_mutex_ops;        /* profiles/mutex.c */

#endif
