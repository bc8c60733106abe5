/*
 * cpprof/sync.h - public API of the sync subsystem (see <cpprof.h> for the
 * conventions every cpprof function follows).
 */
#ifndef CPPROF_SYNC_H
#define CPPROF_SYNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_SYNC_H */
