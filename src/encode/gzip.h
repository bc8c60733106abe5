/*
 * encode/gzip.h - the one zlib wrapper: a streaming gzip compressor that
 * feeds a cpprof_writer (for profile.proto, debug=0) and a one-shot
 * gunzip (for the decoder).
 *
 * Normal thread context only; a cp_gzip is used by one thread.  Not for
 * signal handlers (zlib allocates).
 */
#ifndef CP_ENCODE_GZIP_H
#define CP_ENCODE_GZIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpprof.h"

typedef struct cp_gzip cp_gzip;

/* A compressor writing gzip to w (level: zlib's 1..9). */
int cp_gzip_new(cp_gzip **out, cpprof_writer *w, int level);
/* Compresses len bytes; a cp_pb_sink (ctx is the cp_gzip).  Returns 0
 * or a negative errno (the writer's error, or -ENOMEM). */
int cp_gzip_write(void *ctx, const void *data, size_t len);
/* Writes the gzip trailer.  Returns 0 or a negative errno. */
int cp_gzip_finish(cp_gzip *g);
void cp_gzip_free(cp_gzip *g);

/* True when data starts with the gzip magic. */
bool cp_is_gzip(const void *data, size_t len);
/* Inflates a whole gzip member into a malloc'd buffer (*out, *outlen).
 * Returns 0, -EBADMSG or -ENOMEM. */
int cp_gunzip(const void *data, size_t len, uint8_t **out, size_t *outlen);

#endif
