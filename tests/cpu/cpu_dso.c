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
