/*
 * tests/heap/dl_site.c - a module test_heap_semantics loads with dlopen
 * after the unwinder's address table was built: an allocation site in
 * code the table does not know yet, compiled without frame pointers (so
 * that a frame-pointer guess past it would be wrong).  Test-only.
 */
#include <stdlib.h>

static volatile int keep_frame;

void *dl_site(size_t n)
{
    void *p = malloc(n);
    keep_frame = 1; /* not a tail call: this frame stays on the stack */
    return p;
}
