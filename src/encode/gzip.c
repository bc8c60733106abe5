/*
 * encode/gzip.c - zlib-backed gzip stream to a writer, and gunzip (see
 * encode/gzip.h).  Normal thread context; one thread per cp_gzip; not
 * signal-safe.
 */
#include "encode/gzip.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/writer.h"

#define OUT_CHUNK 65536

struct cp_gzip {
    z_stream z;
    cpprof_writer *w;
    int err;
    unsigned char out[OUT_CHUNK];
};

int cp_gzip_new(cp_gzip **out, cpprof_writer *w, int level)
{
    cp_gzip *g = calloc(1, sizeof *g);
    if (g == NULL)
        return -ENOMEM;
    /* windowBits 15 + 16: a gzip header and trailer, not zlib's. */
    if (deflateInit2(&g->z, level, Z_DEFLATED, 15 + 16, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(g);
        return -ENOMEM;
    }
    g->w = w;
    *out = g;
    return 0;
}

/* Runs deflate with the given flush mode until input is consumed (or the
 * stream ends), writing each full output chunk. */
static int pump(cp_gzip *g, int mode)
{
    for (;;) {
        g->z.next_out = g->out;
        g->z.avail_out = OUT_CHUNK;
        int zr = deflate(&g->z, mode);
        if (zr == Z_STREAM_ERROR)
            return g->err = -EINVAL;
        size_t have = OUT_CHUNK - g->z.avail_out;
        if (have) {
            int rc = cp_writer_write(g->w, g->out, have);
            if (rc != 0)
                return g->err = rc;
        }
        if (mode == Z_FINISH ? zr == Z_STREAM_END
                             : g->z.avail_in == 0 && g->z.avail_out != 0)
            return 0;
        if (zr == Z_BUF_ERROR && have == 0)
            return g->err = -EINVAL; /* no progress possible */
    }
}

int cp_gzip_write(void *ctx, const void *data, size_t len)
{
    cp_gzip *g = ctx;
    if (g->err)
        return g->err;
    const unsigned char *p = data;
    /* avail_in is 32-bit: feed huge buffers in slices. */
    while (len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        g->z.next_in = (unsigned char *)p;
        g->z.avail_in = (uInt)n;
        int rc = pump(g, Z_NO_FLUSH);
        if (rc != 0)
            return rc;
        p += n;
        len -= n;
    }
    return 0;
}

int cp_gzip_finish(cp_gzip *g)
{
    if (g->err)
        return g->err;
    g->z.next_in = NULL;
    g->z.avail_in = 0;
    return pump(g, Z_FINISH);
}

void cp_gzip_free(cp_gzip *g)
{
    if (g == NULL)
        return;
    deflateEnd(&g->z);
    free(g);
}

bool cp_is_gzip(const void *data, size_t len)
{
    const unsigned char *p = data;
    return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

int cp_gunzip(const void *data, size_t len, uint8_t **out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -ENOMEM;
    size_t cap = len * 4 + 4096, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    z.next_in = (unsigned char *)data;
    while (rc == 0) {
        if (cap - n < 4096) {
            uint8_t *b = realloc(buf, cap * 2);
            if (b == NULL) {
                rc = -ENOMEM;
                break;
            }
            buf = b;
            cap *= 2;
        }
        size_t in_left = len - (size_t)(z.next_in - (const unsigned char *)data);
        z.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        z.next_out = buf + n;
        size_t room = cap - n > (1u << 30) ? (1u << 30) : cap - n;
        z.avail_out = (uInt)room;
        int zr = inflate(&z, Z_NO_FLUSH);
        n += room - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_MEM_ERROR)
            rc = -ENOMEM;
        else if (zr != Z_OK && zr != Z_BUF_ERROR)
            rc = -EBADMSG;
        else if (zr == Z_BUF_ERROR && z.avail_in == 0)
            rc = -EBADMSG; /* truncated input */
    }
    inflateEnd(&z);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *outlen = n;
    return 0;
}
