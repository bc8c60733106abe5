/*
 * profiles/mutex.c - placeholder until the mutex sampler lands: the profile's
 * name is reserved in the registry and every use reports -ENOSYS.
 */
#include "profiles/builtin.h"

const cp_builtin_ops cp_mutex_ops = {
    .name = "mutex",
    .description = "Stack traces of holders of contended mutexes.",
};
