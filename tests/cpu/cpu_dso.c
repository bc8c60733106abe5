/*
 * tests/cpu/cpu_dso.c - a tiny library the robustness test dlopens,
 * samples and dlcloses over and over.  Test-only code.
 */
__attribute__((visibility("default"), noinline)) unsigned long
cpt_dso_spin(unsigned long iters)
{
    volatile unsigned long x = 1;
    for (unsigned long i = 0; i < iters; i++)
        x = x * 2654435761u + i;
    return x;
}

/* Calls back into the test through one frame of this library, so that a
 * walk starting in fn has to cross code the unwinder may not know yet. */
__attribute__((visibility("default"), noinline)) unsigned long
cpt_dso_call(unsigned long (*fn)(void))
{
    unsigned long r = fn();
    __asm__ volatile("" ::: "memory");
    return r + 1;
}
