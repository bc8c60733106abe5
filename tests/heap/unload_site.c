/*
 * tests/heap/unload_site.c - a module test_heap_semantics loads, allocates
 * from and unloads before it writes the heap profile: its live block must
 * still be named.  Test-only.
 */
#include <stdlib.h>

static volatile int keep_frame;

void *unload_site(size_t n)
{
    void *p = malloc(n);
    keep_frame = 1; /* not a tail call: this frame stays on the stack */
    return p;
}
