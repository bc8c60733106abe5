/*
 * capture/dl_shim.c - dlclose, interposed so that unloading a library
 * neither loses the names of what was sampled in it nor leaves the
 * unwinder's address table describing unmapped tables.
 *
 * Around the real dlclose: before it, capture/objects.c describes every
 * loaded object while it is still mapped; after it, the objects gone
 * join the list of unloaded objects the mappings and the symbolizer read,
 * and the unwinder retires the rules it cached (the unloaded code's
 * addresses may hold another library's next) and rebuilds its table at
 * its next refresh.  dlopen is not interposed: glibc
 * resolves a dlopen's search path from its caller's RUNPATH, which would
 * become libcpprof's; the unwinder finds code loaded since its table was
 * built through _dl_find_object instead (capture/unwind_signal.c).
 *
 * Normal thread context, like dlclose itself (which is not
 * async-signal-safe): it allocates and takes locks.  Only cpprof's own
 * work runs in an own section (capture/own_section.h), never the real
 * call, whose library destructors are the program's code.  dlclose's
 * result, dlerror() state and errno are the real call's: nothing after
 * the real call touches the dl* error state.  Linked or preloaded: the
 * real function comes from dlsym(RTLD_NEXT), resolved once.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "capture/objects.h"
#include "capture/own_section.h"
#include "capture/unwind_signal.h"

#define EXPORT __attribute__((visibility("default")))

typedef int (*dlclose_fn)(void *);

static struct {
    pthread_once_t once;
    dlclose_fn real;
} dl_shim = { .once = PTHREAD_ONCE_INIT };

static void resolve(void)
{
    *(void **)&dl_shim.real = dlsym(RTLD_NEXT, "dlclose");
}

EXPORT int dlclose(void *handle)
{
    pthread_once(&dl_shim.once, resolve);
    if (dl_shim.real == NULL) {
        errno = ENOSYS;
        return -1;
    }
    bool was_own = cp_own_begin();
    cp_objects_before *before = cp_objects_before_unload();
    cp_own_end(was_own);
    int rc = dl_shim.real(handle);
    int saved = errno;
    was_own = cp_own_begin();
    cp_objects_after_unload(before);
    cp_unwind_forget_unloaded();
    cp_own_end(was_own);
    errno = saved;
    return rc;
}
