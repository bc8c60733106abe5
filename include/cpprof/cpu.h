/*
 * cpprof/cpu.h - public API of the cpu subsystem (see <cpprof.h> for the
 * conventions every cpprof function follows).
 */
#ifndef CPPROF_CPU_H
#define CPPROF_CPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_CPU_H */
