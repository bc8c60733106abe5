/*
 * tests/model/linkedlib.c - symlib.c built once more, then split by the
 * test build into a stripped library and a separate debug file found via
 * .gnu_debuglink (tests/model/CMakeLists.txt).  Test-only code.
 */
#define SYMLIB_FN cpt_linked_probe
#include "symlib.c"
