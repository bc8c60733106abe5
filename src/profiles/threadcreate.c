/*
 * profiles/threadcreate.c - placeholder until the threadcreate sampler lands: the profile's
 * name is reserved in the registry and every use reports -ENOSYS.
 */
#include "profiles/builtin.h"

#include "capture/thread_hooks.h"

const cp_builtin_ops cp_threadcreate_ops = {
    .name = "threadcreate",
    .description = "Stack traces that led to the creation of new threads.",
};

void cp_threadcreate_record(const uintptr_t *pcs, size_t depth)
{
    (void)pcs;
    (void)depth;
}
