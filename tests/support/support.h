/*
 * tests/support/support.h - helpers every test area shares: running
 * commands (go tool pprof) and capturing their output, temporary files,
 * and reading files back.  Test-only code; not part of libcpprof.
 */
#ifndef CPPROF_TEST_SUPPORT_H
#define CPPROF_TEST_SUPPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h> /* cmocka needs these before <cmocka.h> */
#include <stdint.h>
#include <cmocka.h>

/* True when `go` is on PATH (tests that need it skip otherwise, loudly,
 * unless CPPROF_REQUIRE_GO=1, as CI sets, turns the skip into a failure). */
bool cpt_have_go(void);
/* Fails the test (or skips it, see cpt_have_go) when go is missing. */
void cpt_require_go(void);

/* Runs `sh -c cmd`; stores stdout+stderr (NUL-terminated, malloc'd) in
 * *output when output is non-NULL.  Returns the exit status, or -1. */
int cpt_run(char **output, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* `go tool pprof ARGS FILE`: asserts exit 0 and no "warning"/"error"
 * lines, returns the output (caller frees). */
char *cpt_pprof(const char *args, const char *file);

/* A fresh directory under $TMPDIR (removed by cpt_tmpdir_remove). */
char *cpt_tmpdir(void);
void cpt_tmpdir_remove(const char *dir);
/* path = dir/name, malloc'd. */
char *cpt_path(const char *dir, const char *name);

/* Whole file into memory (NUL-terminated); NULL on error. */
char *cpt_read_file(const char *path, size_t *len);

/* Number of lines of text that contain needle. */
size_t cpt_count_lines_with(const char *text, const char *needle);

#endif
