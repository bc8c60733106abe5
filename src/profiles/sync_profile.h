/*
 * profiles/sync_profile.h - what the block and mutex profiles share: both
 * turn the records of capture/sync_events.c into Go's contention profile
 * (sample types contentions/count and delay/nanoseconds) and its legacy
 * text form.  Implemented in profiles/block.c, used by profiles/mutex.c.
 * Normal thread context only (builders allocate and symbolize).
 */
#ifndef CP_PROFILES_SYNC_PROFILE_H
#define CP_PROFILES_SYNC_PROFILE_H

#include "capture/sync_events.h"
#include "cpprof.h"
#include "model/profile.h"

/* Number of distinct stacks recorded for kind. */
int64_t cp_sync_profile_count(enum cp_sync_kind kind);
/* The profile model of kind ("block" or "mutex"). */
int cp_sync_profile_build(enum cp_sync_kind kind, cp_profile **out);
/* debug >= 1: "--- contention:" / "--- mutex:" text with stacks. */
int cp_sync_profile_write_text(enum cp_sync_kind kind, cpprof_writer *w,
                               int debug);

#endif
