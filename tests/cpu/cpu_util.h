/*
 * tests/cpu/cpu_util.h - helpers shared by the CPU profiler's tests:
 * profile a callback into a file, CPU clocks, and per-function totals of
 * a decoded profile.  Test-only code, normal context.
 */
#ifndef CPT_CPU_UTIL_H
#define CPT_CPU_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "encode/decode.h"

/* Seconds of CPU on clk (CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_...). */
double cpt_cpu_seconds(int clk);
/* Busy-loops for about iters iterations of integer work. */
void cpt_spin(unsigned long iters);

/* Starts profiling into path (asserting success). */
void cpt_cpu_start_file(const char *path);
/* Stops and decodes the profile written to path (asserting success). */
cp_decoded *cpt_cpu_stop_decode(const char *path);

/* Sum of value index vi over samples whose stack (at any depth, the
 * frame nearest the leaf wins) contains a function named fn. */
int64_t cpt_total_in(const cp_decoded *d, const char *fn, size_t vi);
/* Whether some sample's stack mentions fn. */
bool cpt_has_fn(const cp_decoded *d, const char *fn);
/* Checks the sample types, period type and period of a CPU profile. */
void cpt_check_cpu_header(const cp_decoded *d, int hz);

#endif
