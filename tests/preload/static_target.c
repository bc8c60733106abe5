/*
 * tests/preload/static_target.c - a statically linked program, which
 * `cpprof run` must refuse with an explanation (no loader, no preload).
 * Test-only code.
 */
#include <stdio.h>

int main(void)
{
    puts("static target ran");
    return 0;
}
