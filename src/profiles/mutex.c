/*
 * profiles/mutex.c - the "mutex" profile: time threads waited for a
 * mutex or rwlock, charged (as in Go) to the stack of the holder that
 * unlocked it.  The records come from capture/sync_shim.c's unlock
 * interposers; the builder and text writer are shared with the block
 * profile (profiles/sync_profile.h).  Called by the registry from any
 * thread in normal context; never from a signal handler.
 */
#include "profiles/builtin.h"
#include "profiles/sync_profile.h"

static int64_t mutex_count(void)
{
    return cp_sync_profile_count(CP_SYNC_MUTEX);
}

static int mutex_build(cp_profile **out)
{
    return cp_sync_profile_build(CP_SYNC_MUTEX, out);
}

static int mutex_write_text(cpprof_writer *w, int debug)
{
    return cp_sync_profile_write_text(CP_SYNC_MUTEX, w, debug);
}

const cp_builtin_ops cp_mutex_ops = {
    .name = "mutex",
    .description = "Stack traces of holders of contended mutexes.",
    .count = mutex_count,
    .build = mutex_build,
    .write_text = mutex_write_text,
    .delta_cumulative_mask = 0x3, /* contentions and delay both accumulate */
};
