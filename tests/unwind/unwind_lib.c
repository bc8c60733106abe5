/*
 * tests/unwind/unwind_lib.c - test-only code in shared objects, for the
 * CFI unwinder tests (tests/unwind/test_unwind_cfi.c).
 *
 * Linked into the test (libunwind_plt.so): cpt_plt_nop is called through
 * the executable's PLT, so samples land in PLT stubs.  Built again as a
 * dlopen'ed module (unwind_mod.so) whose cpt_mod_call runs a callback
 * from inside the module, so stacks pass through code that is later
 * unloaded.  Normal context only; no state.
 */
__attribute__((visibility("default"), noinline)) void cpt_plt_nop(void)
{
    __asm__ volatile("" ::: "memory");
}

__attribute__((visibility("default"), noinline)) int
cpt_mod_call(int (*cb)(int), int x)
{
    /* A frame of its own size (differs per build) around the callback. */
    volatile char pad[CPT_MOD_PAD];
    pad[0] = (char)x;
    int r = cb(x + pad[0]);
    __asm__ volatile("" ::: "memory");
    return r + pad[CPT_MOD_PAD - 1];
}
