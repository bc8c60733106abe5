/*
 * tests/model/test_symbolize_pprof.c - what symbolization and mappings
 * look like to the reference client: a profile of probe addresses (our
 * own DWARF code, an inlined function, C++, a library without debug info)
 * is encoded and read back with `go tool pprof -raw`, which must show the
 * demangled names, file:line pairs, and each mapping's path, build ID
 * (the one `readelf -n` reads) and resolution flags.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpprof.h"
#include "encode/proto.h"
#include "model/mappings.h"
#include "model/profile.h"
#include "support.h"
#include "sym_probes.h"

static char *readelf_build_id(const char *path)
{
    char *out = NULL;
    assert_int_equal(cpt_run(&out, "readelf -n '%s'", path), 0);
    char *p = strstr(out, "Build ID: ");
    assert_non_null(p);
    p += strlen("Build ID: ");
    char *id = strndup(p, strspn(p, "0123456789abcdef"));
    free(out);
    return id;
}

/* Asserts the -raw output has a mapping line "... FILE BUILDID FLAGS". */
static void assert_mapping_line(const char *raw, const char *file,
                                const char *flags)
{
    char *id = readelf_build_id(file);
    char want[8192];
    snprintf(want, sizeof want, " %s %s %s\n", file, id, flags);
    if (strstr(raw, want) == NULL)
        fail_msg("no mapping line '%s' in:\n%s", want, raw);
    free(id);
}

static void assert_has(const char *raw, const char *want)
{
    if (strstr(raw, want) == NULL)
        fail_msg("'%s' not in:\n%s", want, raw);
}

static void test_pprof_raw(void **state)
{
    cpt_require_go();
    void *h = dlopen(CPT_NODEBUG_LIB, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    uintptr_t (*nodebug)(int *) = (uintptr_t(*)(int *))dlsym(h, "cpt_nodebug_probe");
    assert_non_null(nodebug);

    int plain_line, inner, outer, cxx_line, nd_line;
    uintptr_t pcs[4] = {
        cpt_plain_probe(&plain_line),
        cpt_outer_probe(&inner, &outer),
        cpt_cxx_probe(&cxx_line),
        nodebug(&nd_line),
    };
    cp_value_type t = {"samples", "count"};
    cp_profile *p = cp_profile_new("symbols", &t, 1, t, 1);
    assert_non_null(p);
    p->leaf_is_pc = true; /* the probes return exact addresses */
    for (int i = 0; i < 4; i++) {
        int64_t v = i + 1;
        assert_int_equal(cp_profile_add(p, &pcs[i], 1, &v, NULL, 0), 0);
    }
    char *dir = cpt_tmpdir();
    char *path = cpt_path(dir, "symbols.pb.gz");
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_path(&w, path), 0);
    assert_int_equal(cp_proto_write(p, w, 0), 0);
    assert_int_equal(cpprof_writer_close(w), 0);
    cp_profile_free(p);

    char *raw = cpt_pprof("-raw", path);
    if (getenv("CPT_VERBOSE") != NULL)
        fputs(raw, stderr);
    char want[256];
    snprintf(want, sizeof want, "cpt_plain_probe %s/tests/model/sym_probes.c:%d s=%d",
             CPPROF_TEST_SOURCE_DIR, plain_line, cpt_plain_decl_line);
    assert_has(raw, want);
    /* The inlined function first, then its caller at the call site. */
    snprintf(want, sizeof want, "cpt_inl_probe %s/tests/model/sym_probes.c:%d s=%d",
             CPPROF_TEST_SOURCE_DIR, inner, cpt_inl_decl_line);
    assert_has(raw, want);
    snprintf(want, sizeof want, "cpt_outer_probe %s/tests/model/sym_probes.c:%d s=%d",
             CPPROF_TEST_SOURCE_DIR, outer, cpt_outer_decl_line);
    assert_has(raw, want);
    snprintf(want, sizeof want, "cpt::Widget::probe(int*) %s/tests/model/sym_cxx.cpp:%d",
             CPPROF_TEST_SOURCE_DIR, cxx_line);
    assert_has(raw, want);
    assert_has(raw, "cpt_nodebug_probe");

    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    assert_mapping_line(raw, exe, "[FN][FL][LN][IN]");
    assert_mapping_line(raw, CPT_NODEBUG_LIB, "[FN]");
    free(raw);

    /* -top names the functions too (pprof's own view of the same data). */
    char *top = cpt_pprof("-top", path);
    assert_has(top, "cpt::Widget::probe(int*)");
    assert_has(top, "cpt_nodebug_probe");
    free(top);

    dlclose(h);
    unlink(path);
    free(path);
    cpt_tmpdir_remove(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pprof_raw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
