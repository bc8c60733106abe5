/*
 * encode/pb.c - protobuf wire writer and reader (see encode/pb.h).
 *
 * Called by the encoder and decoder in normal thread context; each cp_pb
 * or reader is used by one thread.  Not signal-safe (allocates).
 */
#include "encode/pb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_AT 65536

void cp_pb_init(cp_pb *pb, cp_pb_sink sink, void *ctx)
{
    memset(pb, 0, sizeof *pb);
    pb->sink = sink;
    pb->ctx = ctx;
    pb->flush_at = FLUSH_AT;
}

void cp_pb_free(cp_pb *pb)
{
    free(pb->buf);
    pb->buf = NULL;
    pb->len = pb->cap = 0;
}

/* Ensures room for n more bytes; false (and a sticky error) if not. */
static bool reserve(cp_pb *pb, size_t n)
{
    if (pb->err)
        return false;
    if (pb->cap - pb->len >= n)
        return true;
    size_t cap = pb->cap ? pb->cap : 4096;
    while (cap - pb->len < n)
        cap *= 2;
    uint8_t *b = realloc(pb->buf, cap);
    if (b == NULL) {
        pb->err = -ENOMEM;
        return false;
    }
    pb->buf = b;
    pb->cap = cap;
    return true;
}

static void flush(cp_pb *pb)
{
    if (pb->err || pb->sink == NULL || pb->len == 0)
        return;
    int rc = pb->sink(pb->ctx, pb->buf, pb->len);
    if (rc != 0)
        pb->err = rc < 0 ? rc : -EIO;
    pb->len = 0;
}

/* After each top-level field: stream out a full enough buffer. */
static inline void maybe_flush(cp_pb *pb)
{
    if (pb->depth == 0 && pb->len >= pb->flush_at)
        flush(pb);
}

/* Appends a varint; the caller has reserved 10 bytes. */
static inline void put_varint(cp_pb *pb, uint64_t v)
{
    uint8_t *p = pb->buf + pb->len;
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    pb->len = (size_t)(p - pb->buf);
}

static inline void put_tag(cp_pb *pb, uint32_t field, int wire)
{
    put_varint(pb, ((uint64_t)field << 3) | (uint64_t)wire);
}

void cp_pb_varint(cp_pb *pb, uint32_t field, uint64_t v)
{
    if (!reserve(pb, 20))
        return;
    put_tag(pb, field, CP_PB_VARINT);
    put_varint(pb, v);
    maybe_flush(pb);
}

void cp_pb_int64(cp_pb *pb, uint32_t field, int64_t v)
{
    cp_pb_varint(pb, field, (uint64_t)v);
}

void cp_pb_sint64(cp_pb *pb, uint32_t field, int64_t v)
{
    cp_pb_varint(pb, field, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

void cp_pb_bool(cp_pb *pb, uint32_t field, bool v)
{
    cp_pb_varint(pb, field, v ? 1 : 0);
}

static void put_fixed(cp_pb *pb, uint32_t field, int wire, uint64_t v,
                      int nbytes)
{
    if (!reserve(pb, 10 + (size_t)nbytes))
        return;
    put_tag(pb, field, wire);
    for (int i = 0; i < nbytes; i++)
        pb->buf[pb->len++] = (uint8_t)(v >> (8 * i)); /* little-endian */
    maybe_flush(pb);
}

void cp_pb_fixed64(cp_pb *pb, uint32_t field, uint64_t v)
{
    put_fixed(pb, field, CP_PB_FIXED64, v, 8);
}

void cp_pb_fixed32(cp_pb *pb, uint32_t field, uint32_t v)
{
    put_fixed(pb, field, CP_PB_FIXED32, v, 4);
}

void cp_pb_bytes(cp_pb *pb, uint32_t field, const void *data, size_t len)
{
    if (!reserve(pb, 20 + len))
        return;
    put_tag(pb, field, CP_PB_BYTES);
    put_varint(pb, len);
    if (len)
        memcpy(pb->buf + pb->len, data, len);
    pb->len += len;
    maybe_flush(pb);
}

void cp_pb_string(cp_pb *pb, uint32_t field, const char *s)
{
    cp_pb_bytes(pb, field, s ? s : "", s ? strlen(s) : 0);
}

void cp_pb_uint64_opt(cp_pb *pb, uint32_t field, uint64_t v)
{
    if (v != 0)
        cp_pb_varint(pb, field, v);
}

void cp_pb_int64_opt(cp_pb *pb, uint32_t field, int64_t v)
{
    if (v != 0)
        cp_pb_varint(pb, field, (uint64_t)v);
}

void cp_pb_bool_opt(cp_pb *pb, uint32_t field, bool v)
{
    if (v)
        cp_pb_varint(pb, field, 1);
}

void cp_pb_begin(cp_pb *pb, uint32_t field)
{
    if (pb->err)
        return;
    if (pb->depth == CP_PB_MAX_NEST) {
        pb->err = -EINVAL;
        return;
    }
    if (!reserve(pb, 11))
        return;
    put_tag(pb, field, CP_PB_BYTES);
    pb->open[pb->depth++] = pb->len;
    pb->buf[pb->len++] = 0; /* length placeholder, usually enough */
}

void cp_pb_end(cp_pb *pb)
{
    if (pb->err)
        return;
    if (pb->depth == 0) {
        pb->err = -EINVAL;
        return;
    }
    size_t at = pb->open[--pb->depth];
    size_t body = pb->len - at - 1;
    if (body < 0x80) {
        pb->buf[at] = (uint8_t)body;
    } else {
        uint8_t tmp[10];
        size_t n = 0;
        for (uint64_t v = body; v >= 0x80; v >>= 7)
            tmp[n++] = (uint8_t)(v | 0x80);
        tmp[n] = (uint8_t)(body >> (7 * n));
        n++;
        if (!reserve(pb, n - 1))
            return;
        memmove(pb->buf + at + n, pb->buf + at + 1, body);
        memcpy(pb->buf + at, tmp, n);
        pb->len += n - 1;
    }
    maybe_flush(pb);
}

void cp_pb_packed_uint64(cp_pb *pb, uint32_t field, const uint64_t *v,
                         size_t n)
{
    if (n == 0)
        return;
    cp_pb_begin(pb, field);
    if (!reserve(pb, 10 * n))
        return;
    for (size_t i = 0; i < n; i++)
        put_varint(pb, v[i]);
    cp_pb_end(pb);
}

void cp_pb_packed_int64(cp_pb *pb, uint32_t field, const int64_t *v,
                        size_t n)
{
    /* Same wire bytes: int64 varints are their two's complement. */
    cp_pb_packed_uint64(pb, field, (const uint64_t *)v, n);
}

int cp_pb_finish(cp_pb *pb)
{
    if (pb->err == 0 && pb->depth != 0)
        pb->err = -EINVAL;
    flush(pb);
    return pb->err;
}

/* ------------------------------------------------------------- reader */

int cp_pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    const uint8_t *q = *p;
    for (int shift = 0; shift < 64; shift += 7) {
        if (q >= end)
            return -EBADMSG;
        uint8_t b = *q++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            *p = q;
            *v = x;
            return 0;
        }
    }
    return -EBADMSG;
}

int cp_pb_next(cp_pb_reader *r, cp_pb_field *f)
{
    if (r->p >= r->end)
        return 0;
    uint64_t tag, v = 0;
    if (cp_pb_read_varint(&r->p, r->end, &tag) != 0 || (tag >> 3) == 0 ||
        (tag >> 3) > UINT32_MAX)
        return -EBADMSG;
    f->num = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    f->data = NULL;
    f->len = 0;
    switch (f->wire) {
    case CP_PB_VARINT:
        if (cp_pb_read_varint(&r->p, r->end, &v) != 0)
            return -EBADMSG;
        break;
    case CP_PB_FIXED64:
    case CP_PB_FIXED32: {
        size_t n = f->wire == CP_PB_FIXED64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            return -EBADMSG;
        for (size_t i = 0; i < n; i++)
            v |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        break;
    }
    case CP_PB_BYTES:
        if (cp_pb_read_varint(&r->p, r->end, &v) != 0 ||
            v > (uint64_t)(r->end - r->p))
            return -EBADMSG;
        f->data = r->p;
        f->len = (size_t)v;
        r->p += v;
        break;
    default:
        return -EBADMSG; /* groups are not used by profile.proto */
    }
    f->u = v;
    return 1;
}

int cp_pb_each_varint(const cp_pb_field *f,
                      int (*fn)(void *ctx, uint64_t v), void *ctx)
{
    if (f->wire == CP_PB_VARINT)
        return fn(ctx, f->u);
    if (f->wire != CP_PB_BYTES)
        return -EBADMSG;
    const uint8_t *p = f->data, *end = f->data + f->len;
    while (p < end) {
        uint64_t v;
        int rc = cp_pb_read_varint(&p, end, &v);
        if (rc == 0)
            rc = fn(ctx, v);
        if (rc != 0)
            return rc;
    }
    return 0;
}
