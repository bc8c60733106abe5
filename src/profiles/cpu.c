/*
 * profiles/cpu.c - placeholder until the cpu sampler lands: the profile's
 * name is reserved in the registry and every use reports -ENOSYS.
 */
#include "profiles/builtin.h"

#include "capture/thread_hooks.h"

void cp_cpu_thread_start(void) {}
void cp_cpu_thread_exit(void) {}
