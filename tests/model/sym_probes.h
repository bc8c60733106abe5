/*
 * tests/model/sym_probes.h - functions with known names, files and lines
 * for the symbolizer and mappings tests (tests/model/).  Each probe
 * returns an exact instruction address inside itself (a return address
 * minus one) and the source line of that call, so a test can compare what
 * the symbolizer says with __LINE__ ground truth.  Test-only code.
 */
#ifndef CPT_SYM_PROBES_H
#define CPT_SYM_PROBES_H

#include <stdint.h>

/* Keep probes out of line and unchanged: no inlining into the tests, no
 * clones with suffixed names (gcc's noipa; clang has no such clones). */
#if defined(__clang__)
#define CPT_NOIPA __attribute__((noinline, used))
#else
#define CPT_NOIPA __attribute__((noipa, used))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A plain out-of-line function; *line is the line of the returned pc. */
uintptr_t cpt_plain_probe(int *line);
extern const int cpt_plain_decl_line;

/* cpt_outer_probe calls a static always_inline function, cpt_inl_probe;
 * the pc lies inside the inlined copy: *inner is its line there, *outer
 * the line of the call site in cpt_outer_probe. */
uintptr_t cpt_outer_probe(int *inner, int *outer);
extern const int cpt_inl_decl_line;
extern const int cpt_outer_decl_line;

/* The pc lies 40 inlined calls deep (cpt_deep0 innermost, cpt_deep39
 * outermost) inside cpt_deep_probe. */
uintptr_t cpt_deep_probe(void);

/* C++ (sym_cxx.cpp): the pc lies in cpt::Widget::probe(int*). */
uintptr_t cpt_cxx_probe(int *line);
/* Keeps libstdc++ linked (see sym_cxx.cpp). */
void *cpt_cxx_runtime(void);

#ifdef __cplusplus
}
#endif

#endif
