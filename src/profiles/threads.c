/*
 * profiles/threads.c - placeholder until the threads sampler lands: the profile's
 * name is reserved in the registry and every use reports -ENOSYS.
 */
#include "profiles/builtin.h"

const cp_builtin_ops cp_threads_ops = {
    .name = "threads",
    .description = "Stack traces of all current threads.",
};
