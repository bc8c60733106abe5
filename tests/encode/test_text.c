/*
 * tests/encode/test_text.c - the legacy text format's structure, against a
 * golden output: header with the total, records sorted by count (ties by
 * the "@ ..." key string, as Go's keysByCount), equal keys merged,
 * "%#x" addresses, "# labels:" lines sorted like Go's labelMap, unknown
 * frames as "#\t0xPC" (at pc - 1 for return addresses), a blank line
 * after each record; and bad arguments.
 */
#include "support.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/writer.h"
#include "encode/text.h"

/* Addresses in no loaded object: the symbolizer knows nothing of them. */
#define A 0x10a0
#define B 0x20b0
#define C 0x30c0

static char *write_text(const cp_profile *p)
{
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cp_text_write_count(p, w), 0);
    assert_int_equal(cp_writer_write(w, "", 1), 0);
    char *text = strdup(cpprof_writer_data(w, NULL));
    cpprof_writer_close(w);
    return text;
}

static void test_golden_sorted(void **state)
{
    cp_value_type t = {"goroutine", "count"};
    cp_profile *p = cp_profile_new("goroutine", &t, 1, t, 1);
    uintptr_t s1[] = {B, A}, s2[] = {A, B}, s3[] = {C}, s4[] = {A};
    int64_t one = 1, three = 3;
    /* s2 twice as separate samples (merged by key), s1 and s4 tie at 1:
     * "@ 0x10a0" < "@ 0x20b0 0x10a0" by string order. */
    cp_profile_add(p, s1, 2, &one, NULL, 0);
    cp_profile_add(p, s2, 2, &one, NULL, 0);
    cp_profile_add(p, s3, 1, &three, NULL, 0);
    cp_profile_add(p, s2, 2, &one, NULL, 0);
    cp_profile_add(p, s4, 1, &one, NULL, 0);
    char *text = write_text(p);
    static const char golden[] =
        "goroutine profile: total 7\n"
        "3 @ 0x30c0\n"
        "#\t0x30bf\n"
        "\n"
        "2 @ 0x10a0 0x20b0\n"
        "#\t0x109f\n"
        "#\t0x20af\n"
        "\n"
        "1 @ 0x10a0\n"
        "#\t0x109f\n"
        "\n"
        "1 @ 0x20b0 0x10a0\n"
        "#\t0x20af\n"
        "#\t0x109f\n"
        "\n";
    assert_string_equal(text, golden);
    free(text);

    /* leaf_is_pc: the first pc is shown as is. */
    p->leaf_is_pc = true;
    text = write_text(p);
    assert_non_null(strstr(text, "3 @ 0x30c0\n#\t0x30c0\n\n"));
    assert_non_null(strstr(text, "2 @ 0x10a0 0x20b0\n#\t0x10a0\n#\t0x20af\n\n"));
    free(text);
    cp_profile_free(p);
}

static void test_labels_in_key(void **state)
{
    cp_value_type t = {"goroutine", "count"};
    cp_profile *p = cp_profile_new("goroutine", &t, 1, t, 1);
    uintptr_t s[] = {A};
    int64_t one = 1;
    cp_label l[] = {{.key = "zeta", .str = "q\"x"}, {.key = "alpha", .str = "1"}};
    cp_profile_add(p, s, 1, &one, l, 2);
    cp_profile_add(p, s, 1, &one, NULL, 0);
    char *text = write_text(p);
    /* Same count: "@ 0x10a0" sorts before "@ 0x10a0\n# labels: ...". */
    static const char golden[] =
        "goroutine profile: total 2\n"
        "1 @ 0x10a0\n"
        "#\t0x109f\n"
        "\n"
        "1 @ 0x10a0\n"
        "# labels: {\"alpha\":\"1\", \"zeta\":\"q\\\"x\"}\n"
        "#\t0x109f\n"
        "\n";
    assert_string_equal(text, golden);
    free(text);
    cp_profile_free(p);
}

static void test_bad_arguments(void **state)
{
    cp_value_type t[] = {{"a", "count"}, {"b", "count"}};
    cp_profile *p = cp_profile_new("two", t, 2, t[0], 1);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cp_text_write_count(p, w), -EINVAL); /* two values */
    assert_int_equal(cp_text_write_count(p, NULL), -EINVAL);
    assert_int_equal(cp_text_write_stack(NULL, NULL, NULL, 0, false), -EINVAL);
    cpprof_writer_close(w);
    cp_profile_free(p);

    /* An empty profile is just the header. */
    cp_profile *e = cp_profile_new("empty", t, 1, t[0], 1);
    char *text = write_text(e);
    assert_string_equal(text, "empty profile: total 0\n");
    free(text);
    cp_profile_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_sorted),
        cmocka_unit_test(test_labels_in_key),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
