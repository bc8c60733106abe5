/*
 * tests/encode/test_pb.c - the protobuf wire writer and reader
 * (encode/pb.h): every field kind round-trips, nested lengths are
 * back-patched (including lengths that need more than one byte), the sink
 * streams, errors are sticky, and malformed input is rejected.
 */
#include "support.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "encode/pb.h"

/* Known encodings from the protobuf spec. */
static void test_varint_bytes(void **state)
{
    cp_pb pb;
    cp_pb_init(&pb, NULL, NULL);
    cp_pb_varint(&pb, 1, 150);
    assert_int_equal(pb.len, 3);
    assert_memory_equal(pb.buf, "\x08\x96\x01", 3);
    cp_pb_free(&pb);

    cp_pb_init(&pb, NULL, NULL);
    cp_pb_int64(&pb, 2, -1); /* ten bytes: two's complement */
    assert_int_equal(pb.len, 11);
    assert_int_equal(pb.buf[0], 0x10);
    assert_int_equal(pb.buf[10], 0x01);
    cp_pb_sint64(&pb, 3, -1); /* zigzag: 1 */
    assert_memory_equal(pb.buf + 11, "\x18\x01", 2);
    cp_pb_string(&pb, 4, "testing");
    assert_memory_equal(pb.buf + 13, "\x22\x07testing", 9);
    assert_int_equal(cp_pb_finish(&pb), 0);
    cp_pb_free(&pb);
}

static void test_roundtrip_all_kinds(void **state)
{
    cp_pb pb;
    cp_pb_init(&pb, NULL, NULL);
    uint64_t packed[] = {0, 1, 127, 128, UINT64_MAX};
    int64_t neg[] = {-5, 7};
    cp_pb_varint(&pb, 1, UINT64_MAX);
    cp_pb_fixed64(&pb, 2, 0x0102030405060708ULL);
    cp_pb_fixed32(&pb, 3, 0xdeadbeef);
    cp_pb_bool(&pb, 4, true);
    cp_pb_uint64_opt(&pb, 5, 0); /* omitted */
    cp_pb_int64_opt(&pb, 5, 0);
    cp_pb_bool_opt(&pb, 5, false);
    cp_pb_packed_uint64(&pb, 6, packed, 5);
    cp_pb_packed_int64(&pb, 7, neg, 2);
    cp_pb_packed_uint64(&pb, 8, packed, 0); /* omitted */
    cp_pb_begin(&pb, 9);
    cp_pb_varint(&pb, 1, 42);
    cp_pb_begin(&pb, 2);
    cp_pb_string(&pb, 1, "inner");
    cp_pb_end(&pb);
    cp_pb_end(&pb);
    cp_pb_sint64(&pb, 10, INT64_MIN);
    assert_int_equal(cp_pb_finish(&pb), 0);

    cp_pb_reader r;
    cp_pb_field f;
    cp_pb_reader_init(&r, pb.buf, pb.len);
    assert_int_equal(cp_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 1);
    assert_int_equal(f.wire, CP_PB_VARINT);
    assert_true(f.u == UINT64_MAX);
    assert_int_equal(cp_pb_next(&r, &f), 1);
    assert_int_equal(f.wire, CP_PB_FIXED64);
    assert_true(f.u == 0x0102030405060708ULL);
    assert_int_equal(cp_pb_next(&r, &f), 1);
    assert_int_equal(f.wire, CP_PB_FIXED32);
    assert_true(f.u == 0xdeadbeef);
    assert_int_equal(cp_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 4);
    assert_true(f.u == 1);
    /* field 5 never written; next is 6, packed */
    assert_int_equal(cp_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 6);
    const uint8_t *p = f.data, *end = f.data + f.len;
    for (int i = 0; i < 5; i++) {
        uint64_t v;
        assert_int_equal(cp_pb_read_varint(&p, end, &v), 0);
        assert_true(v == packed[i]);
    }
    assert_ptr_equal(p, end);
    assert_int_equal(cp_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 7);
    p = f.data;
    uint64_t v;
    assert_int_equal(cp_pb_read_varint(&p, f.data + f.len, &v), 0);
    assert_true((int64_t)v == -5);
    assert_int_equal(cp_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 9);
    cp_pb_reader in;
    cp_pb_field g;
    cp_pb_reader_init(&in, f.data, f.len);
    assert_int_equal(cp_pb_next(&in, &g), 1);
    assert_true(g.num == 1 && g.u == 42);
    assert_int_equal(cp_pb_next(&in, &g), 1);
    assert_int_equal(g.num, 2);
    cp_pb_reader in2;
    cp_pb_field h;
    cp_pb_reader_init(&in2, g.data, g.len);
    assert_int_equal(cp_pb_next(&in2, &h), 1);
    assert_int_equal(h.len, 5);
    assert_memory_equal(h.data, "inner", 5);
    assert_int_equal(cp_pb_next(&in2, &h), 0);
    assert_int_equal(cp_pb_next(&in, &g), 0);
    assert_int_equal(cp_pb_next(&r, &f), 1);
    assert_int_equal(f.num, 10);
    assert_true(f.u == UINT64_MAX); /* zigzag(INT64_MIN) */
    assert_int_equal(cp_pb_next(&r, &f), 0);
    cp_pb_free(&pb);
}

/* A nested body longer than 127 (and than 16383) bytes needs a 2- and
 * 3-byte length: the body is shifted and must stay intact. */
static void test_long_nested_lengths(void **state)
{
    size_t sizes[] = {126, 127, 128, 300, 20000};
    for (size_t s = 0; s < 5; s++) {
        char *blob = malloc(sizes[s]);
        for (size_t i = 0; i < sizes[s]; i++)
            blob[i] = (char)(i * 7);
        cp_pb pb;
        cp_pb_init(&pb, NULL, NULL);
        cp_pb_begin(&pb, 1);
        cp_pb_begin(&pb, 2);
        cp_pb_bytes(&pb, 3, blob, sizes[s]);
        cp_pb_end(&pb);
        cp_pb_end(&pb);
        cp_pb_varint(&pb, 4, 9); /* after the patched message */
        assert_int_equal(cp_pb_finish(&pb), 0);

        cp_pb_reader r, r2, r3;
        cp_pb_field f, f2, f3;
        cp_pb_reader_init(&r, pb.buf, pb.len);
        assert_int_equal(cp_pb_next(&r, &f), 1);
        cp_pb_reader_init(&r2, f.data, f.len);
        assert_int_equal(cp_pb_next(&r2, &f2), 1);
        cp_pb_reader_init(&r3, f2.data, f2.len);
        assert_int_equal(cp_pb_next(&r3, &f3), 1);
        assert_int_equal(f3.len, sizes[s]);
        assert_memory_equal(f3.data, blob, sizes[s]);
        assert_int_equal(cp_pb_next(&r3, &f3), 0);
        assert_int_equal(cp_pb_next(&r2, &f2), 0);
        assert_int_equal(cp_pb_next(&r, &f), 1);
        assert_true(f.num == 4 && f.u == 9);
        cp_pb_free(&pb);
        free(blob);
    }
}

typedef struct sink_buf {
    uint8_t data[1 << 16];
    size_t len;
    int calls;
    int fail_after; /* calls before failing; -1 never */
} sink_buf;

static int sink(void *ctx, const void *data, size_t len)
{
    sink_buf *b = ctx;
    if (b->fail_after >= 0 && b->calls >= b->fail_after)
        return -EIO;
    b->calls++;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* With a sink, the buffer is streamed out between top-level fields only,
 * and the concatenation equals the unstreamed encoding. */
static void test_streaming_sink(void **state)
{
    static sink_buf b;
    b.len = 0;
    b.calls = 0;
    b.fail_after = -1;
    cp_pb pb, ref;
    cp_pb_init(&pb, sink, &b);
    cp_pb_init(&ref, NULL, NULL);
    pb.flush_at = 16;
    for (int i = 0; i < 200; i++) {
        cp_pb *both[] = {&pb, &ref};
        for (int k = 0; k < 2; k++) {
            cp_pb_begin(both[k], 2);
            cp_pb_varint(both[k], 1, (uint64_t)i * 1000);
            cp_pb_string(both[k], 2, "abcdefghijklmnop");
            cp_pb_end(both[k]);
        }
        assert_int_equal(pb.depth, 0);
    }
    assert_int_equal(cp_pb_finish(&pb), 0);
    assert_int_equal(cp_pb_finish(&ref), 0);
    assert_true(b.calls > 100);
    assert_int_equal(b.len, ref.len);
    assert_memory_equal(b.data, ref.buf, ref.len);
    cp_pb_free(&pb);
    cp_pb_free(&ref);
}

/* A failing sink's error is sticky and returned by finish. */
static void test_sink_error_sticky(void **state)
{
    static sink_buf b;
    b.len = 0;
    b.calls = 0;
    b.fail_after = 2;
    cp_pb pb;
    cp_pb_init(&pb, sink, &b);
    pb.flush_at = 1;
    for (int i = 0; i < 10; i++)
        cp_pb_varint(&pb, 1, 1);
    assert_int_equal(pb.err, -EIO);
    assert_int_equal(b.calls, 2);
    assert_int_equal(cp_pb_finish(&pb), -EIO);
    cp_pb_free(&pb);

    /* An unbalanced message is an error too. */
    cp_pb_init(&pb, NULL, NULL);
    cp_pb_begin(&pb, 1);
    assert_int_equal(cp_pb_finish(&pb), -EINVAL);
    cp_pb_free(&pb);
    cp_pb_init(&pb, NULL, NULL);
    cp_pb_end(&pb);
    assert_int_equal(cp_pb_finish(&pb), -EINVAL);
    cp_pb_free(&pb);
}

static int count(void *ctx, uint64_t v)
{
    (*(uint64_t *)ctx)++;
    return 0;
}

static void test_reader_rejects_malformed(void **state)
{
    static const struct {
        const char *data;
        size_t len;
    } bad[] = {
        {"\x08", 1},                 /* varint missing */
        {"\x08\x80", 2},             /* truncated varint */
        {"\x0a\x05" "abc", 5},       /* length beyond the end */
        {"\x09\x01\x02", 3},         /* truncated fixed64 */
        {"\x0d\x01", 2},             /* truncated fixed32 */
        {"\x0b", 1},                 /* group start: unsupported */
        {"\x00\x01", 2},             /* field number 0 */
        {"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12}, /* 11 bytes */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cp_pb_reader r;
        cp_pb_field f;
        cp_pb_reader_init(&r, bad[i].data, bad[i].len);
        assert_int_equal(cp_pb_next(&r, &f), -EBADMSG);
    }
    /* A packed field with a truncated element. */
    cp_pb_field f = {.num = 1, .wire = CP_PB_BYTES,
                     .data = (const uint8_t *)"\x01\x80", .len = 2};
    uint64_t seen = 0;
    assert_int_equal(cp_pb_each_varint(&f, count, &seen), -EBADMSG);
    assert_true(seen == 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varint_bytes),
        cmocka_unit_test(test_roundtrip_all_kinds),
        cmocka_unit_test(test_long_nested_lengths),
        cmocka_unit_test(test_streaming_sink),
        cmocka_unit_test(test_sink_error_sticky),
        cmocka_unit_test(test_reader_rejects_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
