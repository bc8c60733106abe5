/*
 * tests/model/nodebuglib.c - symlib.c built again without any debug info
 * (its own source file, so the -O2 -g that the DWARF probes get does not
 * reach it) for the symbol-table fallback test.  Test-only code.
 */
#define SYMLIB_FN cpt_nodebug_probe
#include "symlib.c"
