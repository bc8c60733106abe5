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

/* An inline chain deeper than the symbolizer keeps (32 frames): 40
 * always_inline functions, cpt_deep0 innermost, inside cpt_deep_probe. */
static inline __attribute__((always_inline)) uintptr_t cpt_deep0(void)
{
    uintptr_t pc = probe_here();
    __asm__ volatile("" ::: "memory");
    return pc;
}
#define CPT_DEEP(n, m)                                                      \
    static inline __attribute__((always_inline)) uintptr_t cpt_deep##n(void) \
    {                                                                       \
        uintptr_t pc = cpt_deep##m();                                       \
        __asm__ volatile("" ::: "memory");                                  \
        return pc;                                                          \
    }
CPT_DEEP(1, 0) CPT_DEEP(2, 1) CPT_DEEP(3, 2) CPT_DEEP(4, 3) CPT_DEEP(5, 4)
CPT_DEEP(6, 5) CPT_DEEP(7, 6) CPT_DEEP(8, 7) CPT_DEEP(9, 8) CPT_DEEP(10, 9)
CPT_DEEP(11, 10) CPT_DEEP(12, 11) CPT_DEEP(13, 12) CPT_DEEP(14, 13)
CPT_DEEP(15, 14) CPT_DEEP(16, 15) CPT_DEEP(17, 16) CPT_DEEP(18, 17)
CPT_DEEP(19, 18) CPT_DEEP(20, 19) CPT_DEEP(21, 20) CPT_DEEP(22, 21)
CPT_DEEP(23, 22) CPT_DEEP(24, 23) CPT_DEEP(25, 24) CPT_DEEP(26, 25)
CPT_DEEP(27, 26) CPT_DEEP(28, 27) CPT_DEEP(29, 28) CPT_DEEP(30, 29)
CPT_DEEP(31, 30) CPT_DEEP(32, 31) CPT_DEEP(33, 32) CPT_DEEP(34, 33)
CPT_DEEP(35, 34) CPT_DEEP(36, 35) CPT_DEEP(37, 36) CPT_DEEP(38, 37)
CPT_DEEP(39, 38)

CPT_NOIPA uintptr_t cpt_deep_probe(void)
{
    uintptr_t pc = cpt_deep39();
    __asm__ volatile("" ::: "memory");
    return pc;
}
