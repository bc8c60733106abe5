/*
 * tests/model/symlib.c - a small shared library the symbolizer tests
 * dlopen and dlclose.  Built twice: with DWARF (cpt_symlib_probe) and
 * without any debug info (SYMLIB_FN=cpt_nodebug_probe, -g0) for the
 * symbol-table fallback.  Test-only code.
 */
#include <stdint.h>

#include "sym_probes.h"

#ifndef SYMLIB_FN
#define SYMLIB_FN cpt_symlib_probe
#endif

CPT_NOIPA static uintptr_t symlib_here(void)
{
    return (uintptr_t)__builtin_return_address(0) - 1;
}

/* Returns a pc inside itself and that pc's line. */
__attribute__((visibility("default"))) CPT_NOIPA uintptr_t SYMLIB_FN(int *line)
{
    uintptr_t pc = symlib_here(); *line = __LINE__;
    __asm__ volatile("" ::: "memory");
    return pc;
}
