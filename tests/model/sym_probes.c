/*
 * tests/model/sym_probes.c - the probe functions of sym_probes.h.  Built
 * with -O2 -g whatever the build type, so the always_inline case really is
 * inlined and the DWARF describes it.  Test-only code.
 */
#include "sym_probes.h"

/* The caller's pc at the call instruction (return address - 1). */
CPT_NOIPA static uintptr_t probe_here(void)
{
    return (uintptr_t)__builtin_return_address(0) - 1;
}

/* The memory clobber keeps the store after the call and the call from
 * becoming a tail call, so the returned pc stays inside the probe. */
const int cpt_plain_decl_line = __LINE__ + 1;
CPT_NOIPA uintptr_t cpt_plain_probe(int *line)
{
    uintptr_t pc = probe_here(); *line = __LINE__;
    __asm__ volatile("" ::: "memory");
    return pc;
}

const int cpt_inl_decl_line = __LINE__ + 1;
static inline __attribute__((always_inline)) uintptr_t cpt_inl_probe(int *line)
{
    uintptr_t pc = probe_here(); *line = __LINE__;
    __asm__ volatile("" ::: "memory");
    return pc;
}

const int cpt_outer_decl_line = __LINE__ + 1;
CPT_NOIPA uintptr_t cpt_outer_probe(int *inner, int *outer)
{
    uintptr_t pc = cpt_inl_probe(inner); *outer = __LINE__;
    __asm__ volatile("" ::: "memory");
    return pc;
}
