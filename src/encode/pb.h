/*
 * encode/pb.h - the protobuf wire format: a small streaming writer and a
 * field reader, the only protobuf code in cpprof.
 *
 * The writer appends fields to a buffer; nested messages (and packed
 * fields) are opened with cp_pb_begin and closed with cp_pb_end, which
 * back-patches the length (one byte is reserved and the body is shifted in
 * the rare case the length needs more).  Whenever no message is open and
 * the buffer passes a threshold, it is handed to the sink, so memory stays
 * bounded however large the profile.  Errors are sticky: after the first
 * failure every call is a no-op and cp_pb_finish returns the error.
 *
 * The reader walks one message's fields without allocating.
 *
 * Used by encode/proto.c and encode/decode.c in normal thread context; a
 * cp_pb is used by one thread.  Not for signal handlers (it allocates).
 */
#ifndef CP_ENCODE_PB_H
#define CP_ENCODE_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { CP_PB_VARINT = 0, CP_PB_FIXED64 = 1, CP_PB_BYTES = 2, CP_PB_FIXED32 = 5 };

#define CP_PB_MAX_NEST 8

/* Receives encoded bytes; returns 0 or a negative errno. */
typedef int (*cp_pb_sink)(void *ctx, const void *data, size_t len);

typedef struct cp_pb {
    uint8_t *buf;
    size_t len, cap;
    size_t open[CP_PB_MAX_NEST]; /* offsets of reserved length bytes */
    int depth;
    int err;
    size_t flush_at;
    cp_pb_sink sink; /* NULL: keep everything in buf */
    void *ctx;
} cp_pb;

/* sink may be NULL (the message then accumulates in pb->buf). */
void cp_pb_init(cp_pb *pb, cp_pb_sink sink, void *ctx);
/* Hands the rest to the sink; returns the sticky error (-EINVAL if a
 * message is still open).  Does not free. */
int cp_pb_finish(cp_pb *pb);
void cp_pb_free(cp_pb *pb);

void cp_pb_varint(cp_pb *pb, uint32_t field, uint64_t v);
void cp_pb_int64(cp_pb *pb, uint32_t field, int64_t v);
void cp_pb_sint64(cp_pb *pb, uint32_t field, int64_t v); /* zigzag */
void cp_pb_bool(cp_pb *pb, uint32_t field, bool v);
void cp_pb_fixed64(cp_pb *pb, uint32_t field, uint64_t v);
void cp_pb_fixed32(cp_pb *pb, uint32_t field, uint32_t v);
void cp_pb_bytes(cp_pb *pb, uint32_t field, const void *data, size_t len);
void cp_pb_string(cp_pb *pb, uint32_t field, const char *s);
/* proto3 style: the field is omitted when the value is zero/false. */
void cp_pb_uint64_opt(cp_pb *pb, uint32_t field, uint64_t v);
void cp_pb_int64_opt(cp_pb *pb, uint32_t field, int64_t v);
void cp_pb_bool_opt(cp_pb *pb, uint32_t field, bool v);
/* Packed repeated varints (omitted when n == 0). */
void cp_pb_packed_uint64(cp_pb *pb, uint32_t field, const uint64_t *v,
                         size_t n);
void cp_pb_packed_int64(cp_pb *pb, uint32_t field, const int64_t *v,
                        size_t n);
/* Nested message: begin writes the tag, end patches the length. */
void cp_pb_begin(cp_pb *pb, uint32_t field);
void cp_pb_end(cp_pb *pb);

/* ------------------------------------------------------------- reader */

typedef struct cp_pb_reader {
    const uint8_t *p, *end;
} cp_pb_reader;

typedef struct cp_pb_field {
    uint32_t num;
    int wire;
    uint64_t u;          /* VARINT, FIXED64, FIXED32 */
    const uint8_t *data; /* BYTES */
    size_t len;
} cp_pb_field;

static inline void cp_pb_reader_init(cp_pb_reader *r, const void *data,
                                     size_t len)
{
    r->p = data;
    r->end = r->p + len;
}
/* 1: *f holds the next field; 0: end of message; -EBADMSG: malformed. */
int cp_pb_next(cp_pb_reader *r, cp_pb_field *f);
/* Decodes one varint at *p (< end), advancing *p.  0 or -EBADMSG. */
int cp_pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
/*
 * A repeated varint field, packed (BYTES) or not (VARINT): calls
 * fn(ctx, value) for each element.  Returns 0, -EBADMSG, or fn's error.
 */
int cp_pb_each_varint(const cp_pb_field *f,
                      int (*fn)(void *ctx, uint64_t v), void *ctx);

#endif
