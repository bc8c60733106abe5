/*
 * tests/model/test_mappings.c - process mapping snapshots
 * (src/model/mappings.c): the main executable, libc and the vDSO are
 * present, ranges are sorted, page-aligned and non-overlapping, file
 * offsets point at the very bytes that are in memory, and build IDs match
 * what `readelf -n` reads from the files on disk.  A library unloaded
 * since keeps its mapping.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "model/mappings.h"
#include "support.h"
#include "sym_probes.h"

/* The build ID `readelf -n` prints for path (malloc'd), or NULL. */
static char *readelf_build_id(const char *path)
{
    char *out = NULL;
    int rc = cpt_run(&out, "readelf -n '%s'", path);
    assert_int_equal(rc, 0);
    char *p = strstr(out, "Build ID: ");
    char *id = NULL;
    if (p != NULL) {
        p += strlen("Build ID: ");
        id = strndup(p, strspn(p, "0123456789abcdef"));
    }
    free(out);
    return id;
}

/* The bytes at the mapping's file offset for addr equal those in memory:
 * proves start/offset are consistent with the file. */
static void assert_offset_matches(const cp_mapping *m, uintptr_t addr)
{
    unsigned char disk[32];
    int fd = open(m->file, O_RDONLY);
    assert_true(fd >= 0);
    off_t off = (off_t)(addr - m->start + m->offset);
    assert_int_equal(pread(fd, disk, sizeof disk, off), sizeof disk);
    close(fd);
    assert_memory_equal(disk, (const void *)addr, sizeof disk);
}

static void test_invariants(void **state)
{
    cp_mappings *m = NULL;
    assert_int_equal(cp_mappings_snapshot(&m), 0);
    assert_non_null(m);
    assert_true(m->n >= 3); /* program, libc, loader at least */
    long page = sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < m->n; i++) {
        const cp_mapping *v = &m->v[i];
        assert_true(v->start < v->limit);
        assert_int_equal(v->start % page, 0);
        assert_int_equal(v->limit % page, 0);
        assert_int_equal(v->offset % page, 0);
        assert_non_null(v->file);
        assert_non_null(v->build_id);
        if (i > 0)
            assert_true(m->v[i - 1].limit <= v->start);
        /* Lookup finds each mapping by its first and last byte. */
        assert_ptr_equal(cp_mappings_find(m, v->start), v);
        assert_ptr_equal(cp_mappings_find(m, v->limit - 1), v);
    }
    assert_null(cp_mappings_find(m, 0));
    assert_null(cp_mappings_find(m, m->v[m->n - 1].limit));
    cp_mappings_free(m);
}

static void test_main_executable(void **state)
{
    cp_mappings *m;
    assert_int_equal(cp_mappings_snapshot(&m), 0);
    uintptr_t addr = (uintptr_t)cpt_plain_probe;
    const cp_mapping *map = cp_mappings_find(m, addr);
    assert_non_null(map);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = '\0';
    assert_string_equal(map->file, exe);
    char *id = readelf_build_id(exe);
    assert_non_null(id);
    assert_string_equal(map->build_id, id);
    free(id);
    assert_offset_matches(map, addr);
    cp_mappings_free(m);
}

static void test_libc(void **state)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(libc);
    uintptr_t addr = (uintptr_t)dlsym(libc, "qsort");
    dlclose(libc);
    cp_mappings *m;
    assert_int_equal(cp_mappings_snapshot(&m), 0);
    const cp_mapping *map = cp_mappings_find(m, addr);
    assert_non_null(map);
    assert_non_null(strstr(map->file, "libc.so.6"));
    char *id = readelf_build_id(map->file);
    assert_non_null(id);
    assert_string_equal(map->build_id, id);
    assert_int_equal(strlen(map->build_id), 40); /* sha1, lowercase hex */
    free(id);
    assert_offset_matches(map, addr);
    cp_mappings_free(m);
}

static void test_vdso(void **state)
{
    uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    if (vdso == 0)
        skip();
    cp_mappings *m;
    assert_int_equal(cp_mappings_snapshot(&m), 0);
    const cp_mapping *map = cp_mappings_find(m, vdso);
    assert_non_null(map);
    assert_string_equal(map->file, "[vdso]");
    cp_mappings_free(m);
}

/* A library unloaded since: the mapping of its code is still reported,
 * with its path, its build ID and file offsets that point at its code. */
static void test_unloaded_library(void **state)
{
    void *h = dlopen(CPT_SYMLIB, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(h);
    uintptr_t pc = (uintptr_t)dlsym(h, "cpt_symlib_probe");
    assert_true(pc != 0);
    unsigned char code[32];
    memcpy(code, (const void *)pc, sizeof code);
    assert_int_equal(dlclose(h), 0);
    assert_null(dlopen(CPT_SYMLIB, RTLD_NOW | RTLD_NOLOAD)); /* really gone */

    cp_mappings *m;
    assert_int_equal(cp_mappings_snapshot(&m), 0);
    const cp_mapping *v = cp_mappings_find(m, pc);
    assert_non_null(v);
    assert_string_equal(v->file, CPT_SYMLIB);
    char *id = readelf_build_id(CPT_SYMLIB);
    assert_non_null(id);
    assert_string_equal(v->build_id, id);
    free(id);
    unsigned char disk[sizeof code];
    int fd = open(v->file, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, disk, sizeof disk,
                           (off_t)(pc - v->start + v->offset)),
                     sizeof disk);
    close(fd);
    assert_memory_equal(disk, code, sizeof code);
    cp_mappings_free(m);
}

static void test_bad_input(void **state)
{
    assert_int_equal(cp_mappings_snapshot(NULL), -EINVAL);
    cp_mappings_free(NULL);
    assert_null(cp_mappings_find(NULL, 0x1000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_main_executable),
        cmocka_unit_test(test_libc),
        cmocka_unit_test(test_vdso),
        cmocka_unit_test(test_unloaded_library),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
