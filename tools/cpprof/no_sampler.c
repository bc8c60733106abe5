/*
 * tools/cpprof/no_sampler.c - the heap sampler's "own section" calls for
 * the CLI, which compiles in core/writer.c but no malloc interposer (see
 * CMakeLists.txt): with nothing sampling the launcher's allocations there
 * is nothing to keep out, so a section marks nothing.
 *
 * Single-threaded CLI process, normal context.
 */
#include "capture/own_section.h"

bool cp_own_begin(void)
{
    return false;
}

void cp_own_end(bool was_own)
{
    (void)was_own;
}
