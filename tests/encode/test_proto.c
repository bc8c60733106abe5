/*
 * tests/encode/test_proto.c - model -> profile.proto -> decoder round
 * trip of a synthetic profile (values, string and numeric labels,
 * comments, times, period, default type, mappings), the address rules
 * (return addresses written as pc - 1, addresses outside every mapping
 * still get a location), gzip vs raw, go tool pprof parsing the output,
 * and failing writers.
 */
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/writer.h"
#include "encode/decode.h"
#include "encode/gzip.h"
#include "encode/proto.h"
#include "model/mappings.h"

static const cp_value_type types[] = {{"alloc_objects", "count"},
                                      {"alloc_space", "bytes"}};

/* Two real code addresses of this binary (so they fall in a mapping)
 * and one that is in no mapping at all. */
static uintptr_t code_a(void) { return (uintptr_t)&cp_proto_write + 16; }
static uintptr_t code_b(void) { return (uintptr_t)&cp_decode + 32; }
#define NOWHERE ((uintptr_t)0x10) /* below any mapping */

static cp_profile *synthetic(bool leaf_is_pc)
{
    cp_value_type pt = {"space", "bytes"};
    cp_profile *p = cp_profile_new("heap", types, 2, pt, 524288);
    assert_non_null(p);
    p->time_nanos = 1700000000123456789LL;
    p->duration_nanos = 5000000000LL;
    p->leaf_is_pc = leaf_is_pc;
    assert_int_equal(cp_profile_add_comment(p, "first comment"), 0);
    assert_int_equal(cp_profile_add_comment(p, "second"), 0);
    assert_int_equal(cp_profile_set_default_type(p, "alloc_space"), 0);
    uintptr_t s1[] = {code_a(), code_b(), NOWHERE};
    uintptr_t s2[] = {code_b(), code_a()};
    int64_t v1[] = {3, 3000}, v2[] = {-1, 1LL << 40};
    cp_label l1[] = {{.key = "worker", .str = "w1"},
                     {.key = "bytes", .num = -42, .unit = "bytes"},
                     {.key = "plain", .num = 7}};
    assert_int_equal(cp_profile_add(p, s1, 3, v1, l1, 3), 0);
    assert_int_equal(cp_profile_add(p, s2, 2, v2, NULL, 0), 0);
    assert_int_equal(cp_profile_add(p, s1, 3, v2, NULL, 0), 0);
    return p;
}

static cp_decoded *encode_decode(const cp_profile *p, unsigned flags)
{
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cp_proto_write(p, w, flags), 0);
    size_t len;
    const void *data = cpprof_writer_data(w, &len);
    assert_true(len > 0);
    assert_int_equal(cp_is_gzip(data, len), !(flags & CP_PROTO_NO_GZIP));
    cp_decoded *d;
    assert_int_equal(cp_decode(data, len, &d), 0);
    cpprof_writer_close(w);
    return d;
}

static uint64_t loc_addr(const cp_decoded *d, uint64_t id)
{
    const cp_dec_location *l = cp_decoded_location(d, id);
    assert_non_null(l);
    return l->address;
}

static void check_roundtrip(unsigned flags, bool leaf_is_pc)
{
    cp_profile *p = synthetic(leaf_is_pc);
    cp_decoded *d = encode_decode(p, flags);
    assert_true(d->nstrings > 1);
    assert_string_equal(d->strings[0], "");
    assert_int_equal(d->ntypes, 2);
    assert_string_equal(d->sample_types[0].type, "alloc_objects");
    assert_string_equal(d->sample_types[0].unit, "count");
    assert_string_equal(d->sample_types[1].type, "alloc_space");
    assert_string_equal(d->sample_types[1].unit, "bytes");
    assert_string_equal(d->period_type.type, "space");
    assert_string_equal(d->period_type.unit, "bytes");
    assert_int_equal(d->period, 524288);
    assert_int_equal(d->time_nanos, 1700000000123456789LL);
    assert_int_equal(d->duration_nanos, 5000000000LL);
    assert_int_equal(d->ncomments, 2);
    assert_string_equal(d->comments[0], "first comment");
    assert_string_equal(d->comments[1], "second");
    assert_string_equal(d->default_sample_type, "alloc_space");

    assert_int_equal(d->nsamples, 3);
    const cp_dec_sample *s = &d->samples[0];
    assert_int_equal(s->nvalues, 2);
    assert_int_equal(s->values[0], 3);
    assert_int_equal(s->values[1], 3000);
    assert_int_equal(d->samples[1].values[0], -1);
    assert_int_equal(d->samples[1].values[1], 1LL << 40);
    assert_int_equal(cp_decoded_total(d, 0), 3 - 1 - 1);
    assert_int_equal(s->nlabels, 3);
    assert_string_equal(s->labels[0].key, "worker");
    assert_string_equal(s->labels[0].str, "w1");
    assert_string_equal(s->labels[1].key, "bytes");
    assert_null(s->labels[1].str);
    assert_int_equal(s->labels[1].num, -42);
    assert_string_equal(s->labels[1].num_unit, "bytes");
    assert_int_equal(s->labels[2].num, 7);
    assert_null(s->labels[2].num_unit);
    assert_int_equal(d->samples[1].nlabels, 0);

    /* Addresses: the leaf is exact only when leaf_is_pc. */
    assert_int_equal(s->nlocs, 3);
    uintptr_t leaf = leaf_is_pc ? code_a() : code_a() - 1;
    assert_true(loc_addr(d, s->location_ids[0]) == leaf);
    assert_true(loc_addr(d, s->location_ids[1]) == code_b() - 1);
    assert_true(loc_addr(d, s->location_ids[2]) == NOWHERE - 1);
    /* One location per distinct address: samples 0 and 2 share them. */
    assert_memory_equal(d->samples[2].location_ids, s->location_ids,
                        3 * sizeof(uint64_t));
    const cp_dec_sample *s2 = &d->samples[1];
    if (!leaf_is_pc)
        assert_true(s2->location_ids[1] == s->location_ids[0]);
    assert_true(s2->location_ids[0] == s->location_ids[1] ||
                leaf_is_pc);

    /* Mappings: the process's objects; our code is inside one; the
     * address outside every mapping has mapping_id 0. */
    assert_true(d->nmappings > 0);
    const cp_dec_location *la = cp_decoded_location(d, s->location_ids[0]);
    const cp_dec_mapping *m = cp_decoded_mapping(d, la->mapping_id);
    assert_non_null(m);
    assert_true(m->start <= la->address && la->address < m->limit);
    assert_non_null(strstr(m->filename, "test_proto"));
    assert_true(strlen(m->build_id) >= 16); /* gcc on Debian adds one */
    const cp_dec_location *ln = cp_decoded_location(d, s->location_ids[2]);
    assert_int_equal(ln->mapping_id, 0);
    assert_int_equal(ln->nlines, 0);
    if (flags & CP_PROTO_NO_SYMBOLS) {
        assert_int_equal(la->nlines, 0);
        assert_int_equal(d->nfunctions, 0);
        assert_false(m->has_functions);
    } else {
        assert_true(la->nlines >= 1);
        const cp_dec_function *f =
            cp_decoded_function(d, la->lines[la->nlines - 1].function_id);
        assert_non_null(f);
        assert_string_equal(f->name, "cp_proto_write");
        assert_true(m->has_functions);
    }
    cp_decoded_free(d);
    cp_profile_free(p);
}

static void test_roundtrip_raw_nosym(void **state)
{
    check_roundtrip(CP_PROTO_NO_GZIP | CP_PROTO_NO_SYMBOLS, false);
}

static void test_roundtrip_gzip_nosym_leafpc(void **state)
{
    check_roundtrip(CP_PROTO_NO_SYMBOLS, true);
}

static void test_roundtrip_symbols(void **state)
{
    check_roundtrip(0, false);
}

/* pprof reads our output without warnings and sees the same numbers. */
static void test_pprof_parses(void **state)
{
    cpt_require_go();
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "synthetic.pb.gz");
    cp_profile *p = synthetic(false);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cp_proto_write(p, w, 0), 0);
    assert_int_equal(cpprof_writer_close(w), 0);
    char *raw = cpt_pprof("-raw", path);
    if (getenv("CPT_VERBOSE"))
        fputs(raw, stderr);
    assert_non_null(strstr(raw, "PeriodType: space bytes"));
    assert_non_null(strstr(raw, "Period: 524288"));
    assert_non_null(strstr(raw, "alloc_objects/count alloc_space/bytes"));
    assert_non_null(strstr(raw, "3       3000"));
    assert_non_null(strstr(raw, "worker:[w1]"));
    assert_non_null(strstr(raw, "bytes:[-42 bytes]"));
    assert_non_null(strstr(raw, "cp_proto_write"));
    assert_non_null(strstr(raw, "Duration: 5s"));
    free(raw);
    /* -sample_index picks a type by name; total of alloc_objects is 1. */
    char *top = cpt_pprof("-top -sample_index=alloc_objects", path);
    assert_non_null(strstr(top, "cp_proto_write"));
    assert_non_null(strstr(top, "Type: alloc_objects"));
    free(top);
    cp_profile_free(p);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

/* An empty profile is still a valid, parseable profile. */
static void test_empty_profile(void **state)
{
    cp_value_type t = {"samples", "count"};
    cp_profile *p = cp_profile_new("empty", &t, 1, t, 1);
    cp_decoded *d = encode_decode(p, 0);
    assert_int_equal(d->nsamples, 0);
    assert_int_equal(d->ntypes, 1);
    assert_string_equal(d->default_sample_type, "");
    cp_decoded_free(d);
    cp_profile_free(p);
}

static int failing_sink(void *arg, const void *data, size_t len)
{
    int *budget = arg;
    if ((int)len > *budget)
        return -EIO;
    *budget -= (int)len;
    return 0;
}

/* A failing writer: the error comes back, and a path writer keeps the
 * previous file instead of committing a partial one. */
static void test_failing_writer(void **state)
{
    cp_profile *p = synthetic(false);
    for (int budget0 = 0; budget0 < 200; budget0 += 37) {
        int budget = budget0;
        cpprof_writer *w;
        assert_int_equal(cpprof_writer_open_callback(&w, failing_sink, &budget), 0);
        assert_int_equal(cp_proto_write(p, w, CP_PROTO_NO_GZIP), -EIO);
        assert_int_equal(cpprof_writer_close(w), -EIO);
    }
    /* NULL arguments. */
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cp_proto_write(NULL, w, 0), -EINVAL);
    assert_int_equal(cpprof_writer_close(w), -EINVAL);
    assert_int_equal(cp_proto_write(p, NULL, 0), -EINVAL);

    /* The path writer: fail mid-way, the old content survives. */
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "keep.pb.gz");
    FILE *f = fopen(path, "w");
    fputs("previous", f);
    fclose(f);
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cp_writer_write(w, "partial", 7), 0);
    cp_proto_write(NULL, w, 0); /* fails the writer */
    assert_int_not_equal(cpprof_writer_close(w), 0);
    char *content = cpt_read_file(path, NULL);
    assert_string_equal(content, "previous");
    free(content);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
    cp_profile_free(p);
}

/* The decoder rejects what is not a profile. */
static void test_decode_rejects(void **state)
{
    cp_decoded *d;
    assert_int_equal(cp_decode("\x1f\x8b garbage", 10, &d), -EBADMSG);
    assert_int_equal(cp_decode("\x0a\x05" "abc", 5, &d), -EBADMSG);
    /* string_table[0] must be "". */
    assert_int_equal(cp_decode("\x32\x01x", 3, &d), -EBADMSG);
    /* A string index out of range. */
    assert_int_equal(cp_decode("\x32\x00\x70\x05", 4, &d), -EBADMSG);
    assert_int_equal(cp_decode_file("/nonexistent/profile", &d), -ENOENT);
    /* Nothing at all is an empty profile. */
    assert_int_equal(cp_decode("", 0, &d), 0);
    assert_int_equal(d->nsamples, 0);
    assert_string_equal(d->strings[0], "");
    cp_decoded_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_raw_nosym),
        cmocka_unit_test(test_roundtrip_gzip_nosym_leafpc),
        cmocka_unit_test(test_roundtrip_symbols),
        cmocka_unit_test(test_pprof_parses),
        cmocka_unit_test(test_empty_profile),
        cmocka_unit_test(test_failing_writer),
        cmocka_unit_test(test_decode_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
