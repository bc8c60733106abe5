/* bench_dl_module.c - the small library bench_dlclose loads and unloads. */
int bench_dl_module_answer(void) { return 42; }
