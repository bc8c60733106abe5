/*
 * encode/text.h - the legacy text formats (debug=1) shared by profiles.
 *
 * cp_text_write_count writes a count profile ("NAME profile: total N",
 * then "COUNT @ 0x.. 0x.." with its symbolized stack), sorted as Go sorts
 * (higher count first, ties by the stack's text).  cp_text_write_stack
 * writes one stack's "#\t0xPC\tfunc+0xOFF\tfile:line" lines followed by a
 * blank line; samplers with their own header formats (heap, block, mutex,
 * threads) reuse it.  Normal thread context only.
 */
#ifndef CP_ENCODE_TEXT_H
#define CP_ENCODE_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpprof.h"
#include "model/profile.h"
#include "model/symbolize.h"

/* p must have one value type (the count). */
int cp_text_write_count(const cp_profile *p, cpprof_writer *w);
/* leaf_is_pc as in cp_profile.  Ends with an empty line. */
int cp_text_write_stack(cpprof_writer *w, cp_symbolizer *s,
                        const uintptr_t *pcs, size_t depth, bool leaf_is_pc);

#endif
