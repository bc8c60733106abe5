/*
 * cpprof/service.h - public API of the service subsystem (see <cpprof.h> for the
 * conventions every cpprof function follows).
 */
#ifndef CPPROF_SERVICE_H
#define CPPROF_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_SERVICE_H */
