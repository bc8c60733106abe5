/*
 * tests/encode/test_symbols.c - real stacks of this program, symbolized:
 * profile.proto and the text format show our own function names and
 * file:line, and a `static inline` function inlined into its caller
 * appears as its own frame (innermost first), both in our decoder and in
 * go tool pprof -raw/-top/-traces.  Built with -O2 -g (see
 * CMakeLists.txt); the test checks with nm that the inlining really
 * happened, so it cannot pass vacuously.
 */
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/backtrace.h"
#include "core/writer.h"
#include "encode/decode.h"
#include "encode/proto.h"
#include "encode/text.h"
#include "model/symbolize.h"

/* Source lines of the calls, recorded as the calls happen. */
static volatile int line_leaf_call, line_helper_call, line_outer_call;

__attribute__((noinline)) static size_t capture_leaf(uintptr_t *pcs,
                                                     size_t max)
{
    size_t n = (line_leaf_call = __LINE__, cp_backtrace(pcs, max, 0));
    __asm__ volatile("" ::: "memory"); /* no tail call */
    return n;
}

static inline size_t inlined_helper(uintptr_t *pcs, size_t max)
{
    size_t n = (line_helper_call = __LINE__, capture_leaf(pcs, max));
    __asm__ volatile("" ::: "memory");
    return n + 0;
}

__attribute__((noinline)) size_t outer_caller(uintptr_t *pcs, size_t max)
{
    size_t n = (line_outer_call = __LINE__, inlined_helper(pcs, max));
    __asm__ volatile("" ::: "memory");
    return n;
}

static char self_path[4096];

static void test_really_inlined(void **state)
{
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    assert_true(n > 0);
    self_path[n] = '\0';
    char *out = NULL;
    assert_int_equal(cpt_run(&out, "nm '%s'", self_path), 0);
    assert_non_null(strstr(out, "outer_caller"));
    assert_non_null(strstr(out, "capture_leaf"));
    assert_null(strstr(out, "inlined_helper")); /* no out-of-line copy */
    free(out);
}

static cp_profile *real_profile(void)
{
    cp_value_type t = {"samples", "count"};
    cp_profile *p = cp_profile_new("test", &t, 1, t, 1);
    uintptr_t buf[64];
    size_t n = outer_caller(buf, 64);
    /* Start at capture_leaf's frame whatever cp_backtrace itself adds
     * (an unoptimised build may show its own frame first). */
    const uintptr_t *pcs = buf;
    cp_symbolizer *sym = cp_symbolizer_acquire();
    assert_non_null(sym);
    for (; n > 0; pcs++, n--) {
        cp_frame f[8];
        size_t nf = cp_symbolize(sym, pcs[0] - 1, f, 8);
        if (nf && f[nf - 1].function &&
            strcmp(f[nf - 1].function, "capture_leaf") == 0)
            break;
    }
    cp_symbolizer_release(sym);
    assert_true(n >= 3);
    int64_t v = 2;
    assert_int_equal(cp_profile_add(p, pcs, n, &v, NULL, 0), 0);
    /* A second, shorter stack: from capture_leaf's return address only. */
    v = 1;
    assert_int_equal(cp_profile_add(p, pcs + 2, n - 2, &v, NULL, 0), 0);
    return p;
}

static const cp_dec_function *line_fn(const cp_decoded *d,
                                      const cp_dec_location *l, size_t i)
{
    assert_true(i < l->nlines);
    const cp_dec_function *f = cp_decoded_function(d, l->lines[i].function_id);
    assert_non_null(f);
    return f;
}

static void test_proto_names_lines_inlines(void **state)
{
    cp_profile *p = real_profile();
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cp_proto_write(p, w, 0), 0);
    size_t len;
    const void *data = cpprof_writer_data(w, &len);
    cp_decoded *d;
    assert_int_equal(cp_decode(data, len, &d), 0);
    cpprof_writer_close(w);

    const cp_dec_sample *s = &d->samples[0];
    /* Leaf: capture_leaf at the line calling cp_backtrace. */
    const cp_dec_location *l0 = cp_decoded_location(d, s->location_ids[0]);
    assert_int_equal(l0->nlines, 1);
    assert_string_equal(line_fn(d, l0, 0)->name, "capture_leaf");
    assert_non_null(strstr(line_fn(d, l0, 0)->filename, "test_symbols.c"));
    assert_int_equal(l0->lines[0].line, line_leaf_call);
    /* Next: one address, two frames: the inlined helper first. */
    const cp_dec_location *l1 = cp_decoded_location(d, s->location_ids[1]);
    assert_int_equal(l1->nlines, 2);
    assert_string_equal(line_fn(d, l1, 0)->name, "inlined_helper");
    assert_int_equal(l1->lines[0].line, line_helper_call);
    assert_string_equal(line_fn(d, l1, 1)->name, "outer_caller");
    assert_int_equal(l1->lines[1].line, line_outer_call);
    assert_true(line_fn(d, l1, 1)->start_line > 0 &&
                line_fn(d, l1, 1)->start_line < line_outer_call);
    /* The caller of outer_caller is this file's real_profile. */
    const cp_dec_location *l2 = cp_decoded_location(d, s->location_ids[2]);
    assert_string_equal(line_fn(d, l2, l2->nlines - 1)->name, "real_profile");
    /* Truthful flags on our own mapping: it has DWARF with inlines. */
    const cp_dec_mapping *m = cp_decoded_mapping(d, l0->mapping_id);
    assert_non_null(m);
    assert_string_equal(m->filename, self_path);
    assert_true(m->has_functions && m->has_filenames &&
                m->has_line_numbers && m->has_inline_frames);
    /* One Function per distinct function: names are unique here. */
    for (size_t i = 0; i < d->nfunctions; i++)
        for (size_t j = i + 1; j < d->nfunctions; j++)
            assert_false(strcmp(d->functions[i].name, d->functions[j].name) == 0 &&
                         strcmp(d->functions[i].filename, d->functions[j].filename) == 0 &&
                         d->functions[i].start_line == d->functions[j].start_line);
    cp_decoded_free(d);
    cp_profile_free(p);
}

static void test_pprof_shows_frames(void **state)
{
    cpt_require_go();
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "real.pb.gz");
    cp_profile *p = real_profile();
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cp_proto_write(p, w, 0), 0);
    assert_int_equal(cpprof_writer_close(w), 0);

    char want[256];
    char *raw = cpt_pprof("-raw", path);
    snprintf(want, sizeof want, "inlined_helper %s/tests/encode/test_symbols.c:%d",
             CPPROF_TEST_SOURCE_DIR, line_helper_call);
    assert_non_null(strstr(raw, want));
    snprintf(want, sizeof want, "outer_caller %s/tests/encode/test_symbols.c:%d",
             CPPROF_TEST_SOURCE_DIR, line_outer_call);
    assert_non_null(strstr(raw, want));
    snprintf(want, sizeof want, "capture_leaf %s/tests/encode/test_symbols.c:%d",
             CPPROF_TEST_SOURCE_DIR, line_leaf_call);
    assert_non_null(strstr(raw, want));
    free(raw);

    char *top = cpt_pprof("-top -nodecount=100", path);
    assert_non_null(strstr(top, "capture_leaf"));
    assert_non_null(strstr(top, "inlined_helper"));
    assert_non_null(strstr(top, "outer_caller"));
    assert_non_null(strstr(top, "of 3 total"));
    free(top);

    /* -traces prints the inlined frame on its own line, above its caller. */
    char *traces = cpt_pprof("-traces", path);
    char *a = strstr(traces, "inlined_helper"), *b = strstr(traces, "outer_caller");
    assert_true(a != NULL && b != NULL && a < b);
    free(traces);
    cp_profile_free(p);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

/* The text format with real symbols: Go's "#\t0xPC\tfunc+0xOFF\tfile:line"
 * lines, pc - 1 for return addresses, the inlined frame as its own line
 * with the same pc, and the file:line column aligned with tabs. */
static void test_text_frames(void **state)
{
    cp_profile *p = real_profile();
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cp_text_write_count(p, w), 0);
    assert_int_equal(cp_writer_write(w, "", 1), 0);
    const char *text = cpprof_writer_data(w, NULL);
    if (getenv("CPT_VERBOSE"))
        fputs(text, stderr);
    assert_true(strncmp(text, "test profile: total 3\n2 @ 0x", 28) == 0);

    char want[256];
    snprintf(want, sizeof want, "#\t0x%lx\tinlined_helper+0x",
             (unsigned long)(p->samples[0].pcs[1] - 1));
    const char *inl = strstr(text, want);
    assert_non_null(inl);
    snprintf(want, sizeof want, "#\t0x%lx\touter_caller+0x",
             (unsigned long)(p->samples[0].pcs[1] - 1));
    const char *outer = strstr(text, want);
    assert_non_null(outer);
    assert_true(inl < outer);
    /* The offset is from outer_caller's entry in both lines. */
    unsigned long off = (unsigned long)(p->samples[0].pcs[1] - 1 -
                                        (uintptr_t)&outer_caller);
    snprintf(want, sizeof want, "outer_caller+0x%lx\t", off);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof want, "test_symbols.c:%d\n", line_helper_call);
    assert_non_null(strstr(text, want));

    /* Alignment: within the first record, every file:line starts at the
     * same column once tabs are expanded to 8. */
    const char *rec = strchr(text, '\n') + 1;
    rec = strchr(rec, '\n') + 1; /* first "#" line */
    int col = -1;
    for (const char *line = rec; *line == '#'; line = strchr(line, '\n') + 1) {
        int c = 0, tabs = 0;
        const char *q = line;
        for (; *q != '\n' && tabs < 3; q++) {
            if (*q == '\t') {
                c = (c / 8 + 1) * 8;
                tabs++;
            } else {
                c++;
            }
        }
        if (tabs < 3)
            break; /* an unknown frame ends the tabwriter column block */
        if (col < 0)
            col = c;
        assert_int_equal(c, col);
    }
    assert_true(col > 0);
    cpprof_writer_close(w);
    cp_profile_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_really_inlined),
        cmocka_unit_test(test_proto_names_lines_inlines),
        cmocka_unit_test(test_pprof_shows_frames),
        cmocka_unit_test(test_text_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
