/*
 * tests/model/sym_cxx.cpp - a C++ probe for the demangling test: the pc
 * lies in cpt::Widget::probe(int*), mangled _ZN3cpt6Widget5probeEPi.
 * Test-only code.
 */
#include <exception>

#include "sym_probes.h"

namespace cpt {
struct Widget {
    static uintptr_t probe(int *line);
};
} // namespace cpt

CPT_NOIPA static uintptr_t cxx_here()
{
    return (uintptr_t)__builtin_return_address(0) - 1;
}

CPT_NOIPA uintptr_t cpt::Widget::probe(int *line)
{
    uintptr_t pc = cxx_here(); *line = __LINE__;
    __asm__ volatile("" ::: "memory");
    return pc;
}

/* A real use of the C++ runtime, so the linker keeps libstdc++ (and its
 * __cxa_demangle) even with --as-needed, as in any C++ program. */
extern "C" void *cpt_cxx_runtime(void)
{
    return (void *)&std::terminate;
}

extern "C" uintptr_t cpt_cxx_probe(int *line)
{
    return cpt::Widget::probe(line);
}
