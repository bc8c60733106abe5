/*
 * core/writer.h - the internal side of cpprof_writer: what encoders call.
 *
 * Owned by core/writer.c.  Called by every encoder and sink; never from a
 * signal handler or an interposed function (writers allocate and do I/O).
 * A writer is used by one thread at a time.
 */
#ifndef CP_CORE_WRITER_H
#define CP_CORE_WRITER_H

#include <stdarg.h>
#include <stddef.h>

#include "cpprof.h"

/* Appends len bytes.  Returns the writer's sticky error (0 if none). */
int cp_writer_write(cpprof_writer *w, const void *data, size_t len);
/* printf-style append; same return. */
int cp_writer_printf(cpprof_writer *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int cp_writer_vprintf(cpprof_writer *w, const char *fmt, va_list ap);
/*
 * Marks the writer failed with err (a negative errno) unless it already
 * failed: an encoder that gives up mid-way calls this so a path writer
 * does not commit a truncated file.  Returns the sticky error.
 */
int cp_writer_fail(cpprof_writer *w, int err);
/* Pushes staged bytes to the sink (and fflush for FILE*); sticky error. */
int cp_writer_flush(cpprof_writer *w);

#endif
