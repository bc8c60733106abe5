/*
 * tests/model/test_symbolize.c - the in-process symbolizer
 * (src/model/symbolize.c) against ground truth: probe functions report
 * their own pc and __LINE__ (sym_probes.c), shared libraries are built by
 * this test target (symlib.c with and without DWARF), and libc is checked
 * against its own dynamic symbols.
 *
 * The process re-executes itself once with DEBUGINFOD_URLS pointing at a
 * socket it listens on, so that libdw sees the variable from its first
 * moment; test_never_debuginfod then proves nothing ever connected.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "model/mappings.h"
#include "model/symbolize.h"
#include "support.h"
#include "sym_probes.h"

#define MAXF 16

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = s ? strlen(s) : 0, m = strlen(suffix);
    return s != NULL && n >= m && strcmp(s + n - m, suffix) == 0;
}

static void *libc_symbol(const char *name)
{
    /* From libc itself, not a sanitizer's interceptor of the same name. */
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(libc);
    void *fn = dlsym(libc, name);
    dlclose(libc);
    assert_non_null(fn);
    return fn;
}

static void test_plain_function(void **state)
{
    int line = 0;
    uintptr_t pc = cpt_plain_probe(&line);
    cp_symbolizer *s = cp_symbolizer_acquire();
    assert_non_null(s);
    cp_frame f[MAXF];
    size_t n = cp_symbolize(s, pc, f, MAXF);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].function, "cpt_plain_probe");
    assert_string_equal(f[0].system_name, "cpt_plain_probe");
    assert_true(ends_with(f[0].file, "/sym_probes.c"));
    assert_int_equal(f[0].line, line);
    assert_int_equal(f[0].start_line, cpt_plain_decl_line);
    assert_int_equal(f[0].entry, (uintptr_t)cpt_plain_probe);
    /* Cached: the same answer again, from the same generation. */
    cp_frame g[MAXF];
    assert_int_equal(cp_symbolize(s, pc, g, MAXF), 1);
    assert_ptr_equal(g[0].function, f[0].function);
    assert_int_equal(cp_symbolize_object_flags(s, pc),
                     CP_SYM_HAS_FUNCTIONS | CP_SYM_HAS_FILENAMES |
                         CP_SYM_HAS_LINES | CP_SYM_HAS_INLINES);
    cp_symbolizer *again = cp_symbolizer_acquire();
    assert_ptr_equal(again, s); /* nothing loaded: same generation */
    cp_symbolizer_release(again);
    cp_symbolizer_release(s);
}

static void test_inline_chain(void **state)
{
    int inner = 0, outer = 0;
    uintptr_t pc = cpt_outer_probe(&inner, &outer);
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[MAXF];
    size_t n = cp_symbolize(s, pc, f, MAXF);
    assert_int_equal(n, 2);
    /* Innermost (the inlined function) first, at its own line... */
    assert_string_equal(f[0].function, "cpt_inl_probe");
    assert_true(ends_with(f[0].file, "/sym_probes.c"));
    assert_int_equal(f[0].line, inner);
    assert_int_equal(f[0].start_line, cpt_inl_decl_line);
    /* ...then the real function at the call site. */
    assert_string_equal(f[1].function, "cpt_outer_probe");
    assert_true(ends_with(f[1].file, "/sym_probes.c"));
    assert_int_equal(f[1].line, outer);
    assert_int_equal(f[1].start_line, cpt_outer_decl_line);
    assert_int_equal(f[0].entry, (uintptr_t)cpt_outer_probe);
    assert_int_equal(f[1].entry, (uintptr_t)cpt_outer_probe);
    /* Too little room: the real function still comes last. */
    cp_frame one;
    assert_int_equal(cp_symbolize(s, pc, &one, 1), 1);
    assert_string_equal(one.function, "cpt_outer_probe");
    cp_symbolizer_release(s);
}

/* Deeper than kept: the innermost frames, then the real function. */
static void test_deep_inline_chain(void **state)
{
    uintptr_t pc = cpt_deep_probe();
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[64];
    size_t n = cp_symbolize(s, pc, f, 64);
    assert_int_equal(n, 32);
    char name[32];
    for (size_t i = 0; i < 31; i++) {
        snprintf(name, sizeof name, "cpt_deep%zu", i);
        assert_string_equal(f[i].function, name);
    }
    assert_string_equal(f[31].function, "cpt_deep_probe");
    assert_int_equal(f[31].entry, (uintptr_t)cpt_deep_probe);
    assert_true(f[31].line > 0);
    cp_symbolizer_release(s);
}

static void test_cxx_demangled(void **state)
{
    int line = 0;
    uintptr_t pc = cpt_cxx_probe(&line);
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[MAXF];
    size_t n = cp_symbolize(s, pc, f, MAXF);
    assert_int_equal(n, 1);
    assert_string_equal(f[0].function, "cpt::Widget::probe(int*)");
    assert_string_equal(f[0].system_name, "_ZN3cpt6Widget5probeEPi");
    assert_true(ends_with(f[0].file, "/sym_cxx.cpp"));
    assert_int_equal(f[0].line, line);
    cp_symbolizer_release(s);
}

/* The libc6-dbg package may or may not be installed: find out the way the
 * symbolizer should, from the build ID. */
static bool libc_has_debug_file(uintptr_t addr)
{
    cp_mappings *m;
    assert_int_equal(cp_mappings_snapshot(&m), 0);
    const cp_mapping *map = cp_mappings_find(m, addr);
    assert_non_null(map);
    assert_true(strlen(map->build_id) > 2);
    char path[512];
    snprintf(path, sizeof path, "/usr/lib/debug/.build-id/%.2s/%s.debug",
             map->build_id, map->build_id + 2);
    cp_mappings_free(m);
    return access(path, R_OK) == 0;
}

static void test_libc_function(void **state)
{
    uintptr_t addr = (uintptr_t)libc_symbol("qsort");
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[MAXF];
    size_t n = cp_symbolize(s, addr, f, MAXF);
    assert_true(n >= 1);
    assert_string_equal(f[n - 1].function, "qsort");
    assert_int_equal(f[n - 1].entry, addr);
    unsigned flags = cp_symbolize_object_flags(s, addr);
    if (libc_has_debug_file(addr)) {
        /* Found the separate debug file by build ID: full information. */
        assert_int_equal(flags, CP_SYM_HAS_FUNCTIONS | CP_SYM_HAS_FILENAMES |
                                    CP_SYM_HAS_LINES | CP_SYM_HAS_INLINES);
        assert_non_null(f[n - 1].file);
        assert_true(f[n - 1].line > 0);
    } else {
        assert_int_equal(flags, CP_SYM_HAS_FUNCTIONS);
        assert_null(f[n - 1].file);
    }
    /* An assembly function with no DWARF subprogram still gets its
     * symbol-table name. */
    uintptr_t sc = (uintptr_t)libc_symbol("syscall");
    n = cp_symbolize(s, sc, f, MAXF);
    assert_int_equal(n, 1);
    assert_non_null(strstr(f[0].function, "syscall"));
    assert_int_equal(f[0].entry, sc);
    cp_symbolizer_release(s);
}

/* The vDSO has no file: its image is read once from memory, and its
 * dynamic symbols name its functions. */
static void test_vdso(void **state)
{
    void *h = dlopen("linux-vdso.so.1", RTLD_NOW | RTLD_NOLOAD);
    void *fn = h != NULL ? dlsym(h, "__vdso_clock_gettime") : NULL;
    if (fn == NULL)
        skip(); /* no vDSO on this kernel/arch */
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[MAXF];
    assert_int_equal(cp_symbolize(s, (uintptr_t)fn, f, MAXF), 1);
    assert_non_null(strstr(f[0].function, "clock_gettime"));
    assert_int_equal(f[0].entry, (uintptr_t)fn);
    assert_true(cp_symbolize_object_flags(s, (uintptr_t)fn) &
                CP_SYM_HAS_FUNCTIONS);
    cp_symbolizer_release(s);
    dlclose(h);
}

/* A library without DWARF: the symbol table names its functions. */
static void test_symtab_fallback(void **state)
{
    void *h = dlopen(CPT_NODEBUG_LIB, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    uintptr_t (*probe)(int *) = (uintptr_t(*)(int *))dlsym(h, "cpt_nodebug_probe");
    assert_non_null(probe);
    int line;
    uintptr_t pc = probe(&line);
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[MAXF];
    assert_int_equal(cp_symbolize(s, pc, f, MAXF), 1);
    assert_string_equal(f[0].function, "cpt_nodebug_probe");
    assert_null(f[0].file);
    assert_int_equal(f[0].line, 0);
    assert_int_equal(f[0].entry, (uintptr_t)probe);
    assert_int_equal(cp_symbolize_object_flags(s, pc), CP_SYM_HAS_FUNCTIONS);
    cp_symbolizer_release(s);
    dlclose(h);
}

/* Loads path, symbolizes its cpt_linked_probe; returns the frame. */
static cp_frame linked_frame(const char *path, int *line, unsigned *flags)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    uintptr_t (*probe)(int *) = (uintptr_t(*)(int *))dlsym(h, "cpt_linked_probe");
    assert_non_null(probe);
    uintptr_t pc = probe(line);
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[MAXF];
    assert_int_equal(cp_symbolize(s, pc, f, MAXF), 1);
    *flags = cp_symbolize_object_flags(s, pc);
    dlclose(h);
    /* Strings stay valid while s is held; the caller only compares
     * function (a symbol) and file, so copy what it needs first. */
    static char fn[64], file[512];
    snprintf(fn, sizeof fn, "%s", f[0].function ? f[0].function : "");
    snprintf(file, sizeof file, "%s", f[0].file ? f[0].file : "");
    f[0].function = fn;
    f[0].file = f[0].file ? file : NULL;
    cp_symbolizer_release(s);
    return f[0];
}

/* A stripped library whose DWARF lives in a separate file named by its
 * .gnu_debuglink (here in the .debug/ folder beside it). */
static void test_debuglink(void **state)
{
    int line;
    unsigned flags;
    cp_frame f = linked_frame(CPT_LINKED_LIB, &line, &flags);
    assert_string_equal(f.function, "cpt_linked_probe");
    assert_true(ends_with(f.file, "/symlib.c"));
    assert_int_equal(f.line, line);
    assert_int_equal(flags, CP_SYM_HAS_FUNCTIONS | CP_SYM_HAS_FILENAMES |
                                CP_SYM_HAS_LINES | CP_SYM_HAS_INLINES);
}

/* A debug file with the right name but from another build is refused:
 * the symbol table names the function, and no wrong lines appear. */
static void test_debuglink_mismatch(void **state)
{
    int line;
    unsigned flags;
    cp_frame f = linked_frame(CPT_BADLINK_LIB, &line, &flags);
    assert_string_equal(f.function, "cpt_linked_probe");
    assert_null(f.file);
    assert_int_equal(f.line, 0);
    assert_int_equal(flags, CP_SYM_HAS_FUNCTIONS);
}

static void test_dlclose_generations(void **state)
{
    void *h = dlopen(CPT_SYMLIB, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    uintptr_t (*probe)(int *) = (uintptr_t(*)(int *))dlsym(h, "cpt_symlib_probe");
    int line;
    uintptr_t pc = probe(&line);
    cp_symbolizer *s1 = cp_symbolizer_acquire();
    cp_frame f[MAXF];
    assert_int_equal(cp_symbolize(s1, pc, f, MAXF), 1);
    assert_string_equal(f[0].function, "cpt_symlib_probe");
    assert_true(ends_with(f[0].file, "/symlib.c"));
    assert_int_equal(f[0].line, line);
    cp_frame held = f[0];

    assert_int_equal(dlclose(h), 0);
    assert_null(dlopen(CPT_SYMLIB, RTLD_NOW | RTLD_NOLOAD)); /* really gone */

    /* The unload starts a new generation, which still names the unloaded
     * library's addresses (samples taken there before the dlclose), from
     * its file on disk, and the rest of the process. */
    cp_symbolizer *s2 = cp_symbolizer_acquire();
    assert_non_null(s2);
    assert_ptr_not_equal(s2, s1);
    assert_int_equal(cp_symbolize(s2, pc, f, MAXF), 1);
    assert_string_equal(f[0].function, "cpt_symlib_probe");
    assert_true(ends_with(f[0].file, "/symlib.c"));
    assert_int_equal(f[0].line, line);
    int pl;
    uintptr_t ppc = cpt_plain_probe(&pl);
    assert_int_equal(cp_symbolize(s2, ppc, f, MAXF), 1);
    assert_string_equal(f[0].function, "cpt_plain_probe");

    /* The held generation still answers, from the file on disk (cached
     * and uncached addresses alike), and its strings stayed valid. */
    assert_string_equal(held.function, "cpt_symlib_probe");
    assert_true(ends_with(held.file, "/symlib.c"));
    assert_int_equal(cp_symbolize(s1, pc, f, MAXF), 1);
    assert_ptr_equal(f[0].function, held.function);
    assert_int_equal(cp_symbolize(s1, (uintptr_t)probe, f, MAXF), 1);
    assert_string_equal(f[0].function, "cpt_symlib_probe");
    cp_symbolizer_release(s1); /* frees the old generation */
    cp_symbolizer_release(s2);
}

/* Where two different libraries were unloaded from the same addresses, a
 * sample there could be from either: neither names it. */
static void test_reused_addresses_are_not_named(void **state)
{
    void *h = dlopen(CPT_SYMLIB, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    uintptr_t (*probe)(int *) = (uintptr_t(*)(int *))dlsym(h, "cpt_symlib_probe");
    int line;
    uintptr_t pc = probe(&line);
    Dl_info first;
    assert_true(dladdr((void *)pc, &first));
    assert_int_equal(dlclose(h), 0);

    h = dlopen(CPT_NODEBUG_LIB, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    Dl_info second;
    assert_true(dladdr(dlsym(h, "cpt_nodebug_probe"), &second));
    assert_int_equal(dlclose(h), 0);
    if (second.dli_fbase != first.dli_fbase)
        skip(); /* placed elsewhere: nothing is ambiguous */
    cp_symbolizer *s = cp_symbolizer_acquire();
    cp_frame f[MAXF];
    assert_int_equal(cp_symbolize(s, pc, f, MAXF), 0);
    cp_symbolizer_release(s);
}

static void test_bad_input(void **state)
{
    cp_frame f[MAXF];
    assert_int_equal(cp_symbolize(NULL, 0x1000, f, MAXF), 0);
    assert_int_equal(cp_symbolize_object_flags(NULL, 0x1000), 0);
    cp_symbolizer_release(NULL);
    cp_symbolizer *s = cp_symbolizer_acquire();
    assert_int_equal(cp_symbolize(s, 0, f, MAXF), 0);
    assert_int_equal(cp_symbolize(s, 0x10, f, MAXF), 0); /* unmapped */
    assert_int_equal(cp_symbolize_object_flags(s, 0x10), 0);
    int line;
    assert_int_equal(cp_symbolize(s, cpt_plain_probe(&line), f, 0), 0);
    cp_symbolizer_release(s);
}

static int listen_fd = -1;

/* Runs last: every earlier test made Dwfl look for debug files (libc, the
 * library without DWARF), which is when a debuginfod client would have
 * connected to the URL we set. */
static void test_never_debuginfod(void **state)
{
    if (listen_fd < 0)
        skip();
    int c = accept(listen_fd, NULL, NULL);
    if (c >= 0)
        close(c);
    assert_int_equal(c, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

/* Re-executes with DEBUGINFOD_URLS naming a local socket we listen on, so
 * any debuginfod client in the process would connect to us. */
static void reexec_with_debuginfod_trap(char **argv)
{
    const char *fd_env = getenv("CPT_DEBUGINFOD_FD");
    if (fd_env != NULL) {
        listen_fd = atoi(fd_env);
        return;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(fd, 8) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        fprintf(stderr, "note: no loopback socket; debuginfod check skipped\n");
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "http://127.0.0.1:%d", ntohs(a.sin_port));
    setenv("DEBUGINFOD_URLS", buf, 1);
    setenv("DEBUGINFOD_TIMEOUT", "2", 1);
    char *cache = cpt_tmpdir();
    setenv("DEBUGINFOD_CACHE_PATH", cache, 1);
    snprintf(buf, sizeof buf, "%d", fd);
    setenv("CPT_DEBUGINFOD_FD", buf, 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "note: re-exec failed; debuginfod check skipped\n");
    close(fd);
}

int main(int argc, char **argv)
{
    (void)argc;
    reexec_with_debuginfod_trap(argv);
    const struct CMUnitTest tests[] = {
        /* First: before another library was unloaded where symlib goes
         * (two unloaded libraries at one place name neither). */
        cmocka_unit_test(test_dlclose_generations),
        cmocka_unit_test(test_plain_function),
        cmocka_unit_test(test_inline_chain),
        cmocka_unit_test(test_deep_inline_chain),
        cmocka_unit_test(test_cxx_demangled),
        cmocka_unit_test(test_libc_function),
        cmocka_unit_test(test_symtab_fallback),
        cmocka_unit_test(test_vdso),
        cmocka_unit_test(test_debuglink),
        cmocka_unit_test(test_debuglink_mismatch),
        cmocka_unit_test(test_reused_addresses_are_not_named),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_never_debuginfod),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    const char *cache = getenv("DEBUGINFOD_CACHE_PATH");
    if (listen_fd >= 0 && cache != NULL)
        cpt_tmpdir_remove(cache);
    return failed;
}
