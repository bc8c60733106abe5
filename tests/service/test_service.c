/*
 * tests/service/test_service.c - the periodic profile service: validation
 * at creation, the schedule (per-profile and shared intervals, save at
 * stop), file naming without collisions, recovery after the folder is
 * removed, retention, CPU rotation, the HTTP server it starts, and the
 * CPPROF_SERVICE_* variables.  Every saved file is read back with go tool
 * pprof (or checked as text for debug != 0).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpprof.h"
#include "../http/http_client.h"
#include "support.h"

/* Custom profiles: present in every build (the heap profile is compiled
 * out under sanitizers). */
static cpprof_profile *svc_profile, *svc2_profile;
static int svc_values[4];

static int group_setup(void **state)
{
    if (cpprof_profile_new("test.svc", &svc_profile) != 0)
        return -1;
    if (cpprof_profile_new("test.svc2", &svc2_profile) != 0)
        return -1;
    for (int i = 0; i < 3; i++)
        cpprof_profile_add(svc_profile, &svc_values[i], 0);
    cpprof_profile_add(svc2_profile, &svc_values[3], 0);
    return 0;
}

/* Files in dir starting with "prefix." (sorted); count returned. */
static size_t list_files(const char *dir, const char *prefix, char ***out)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    char **v = calloc(1024, sizeof *v);
    if (d) {
        struct dirent *e;
        size_t pl = strlen(prefix);
        while ((e = readdir(d)) && n < 1024)
            if (strncmp(e->d_name, prefix, pl) == 0 && e->d_name[pl] == '.')
                v[n++] = strdup(e->d_name);
        closedir(d);
    }
    if (out)
        *out = v;
    else {
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        free(v);
    }
    return n;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* NAME.<digits>[.<digits>]EXT, nothing else (no temporary files). */
static bool well_named(const char *file, const char *name, const char *ext)
{
    size_t nl = strlen(name), el = strlen(ext), fl = strlen(file);
    if (fl <= nl + 1 + el || strncmp(file, name, nl) || file[nl] != '.' ||
        strcmp(file + fl - el, ext))
        return false;
    int dots = 0;
    for (size_t i = nl + 1; i < fl - el; i++) {
        if (file[i] == '.')
            dots++;
        else if (file[i] < '0' || file[i] > '9')
            return false;
    }
    return dots <= 1 && file[nl + 1] != '.';
}

/* Every file of a profile is well named and complete. */
static size_t check_files(const char *dir, const char *name, int debug)
{
    char **v;
    size_t n = list_files(dir, name, &v);
    const char *ext = debug ? ".txt" : ".pb.gz";
    for (size_t i = 0; i < n; i++) {
        if (!well_named(v[i], name, ext))
            fail_msg("unexpected file %s in %s", v[i], dir);
        char *path = cpt_path(dir, v[i]);
        if (debug) {
            char *text = cpt_read_file(path, NULL);
            assert_non_null(text);
            if (strcmp(name, "test.svc") == 0)
                assert_non_null(strstr(text, "test.svc profile: total 3"));
            free(text);
        } else {
            free(cpt_pprof("-raw", path));
        }
        free(path);
    }
    free_list(v, n);
    return n;
}

static void test_validation(void **state)
{
    cpprof_service *s = (cpprof_service *)1;
    const char *unknown[] = {"heap", "no.such.profile"};
    cpprof_service_config cfg = {.enabled = true, .folder = "/tmp/x",
                                 .profile_names = unknown, .nprofile_names = 2};
    assert_int_equal(cpprof_service_new(&cfg, &s), -EINVAL);
    assert_null(s);
    const char *ok[] = {"heap"};
    int neg[] = {-1};
    cfg = (cpprof_service_config){.enabled = true, .folder = "/tmp/x",
                                  .profile_names = ok, .nprofile_names = 1,
                                  .intervals = neg, .nintervals = 1};
    assert_int_equal(cpprof_service_new(&cfg, &s), -EINVAL);
    int dbg[] = {7};
    cfg.intervals = NULL;
    cfg.nintervals = 0;
    cfg.debug_values = dbg;
    cfg.ndebug_values = 1;
    assert_int_equal(cpprof_service_new(&cfg, &s), -EINVAL);
    cfg = (cpprof_service_config){.enabled = true, .profile_names = ok,
                                  .nprofile_names = 1};
    assert_int_equal(cpprof_service_new(&cfg, &s), -EINVAL); /* no folder */
    assert_int_equal(cpprof_service_new(NULL, &s), -EINVAL);

    /* Disabled: created, and nothing starts (not even the folder). */
    char *tmp = cpt_tmpdir();
    char *dir = cpt_path(tmp, "disabled");
    cfg = (cpprof_service_config){.enabled = false, .folder = dir,
                                  .profile_names = ok, .nprofile_names = 1};
    assert_int_equal(cpprof_service_new(&cfg, &s), 0);
    assert_int_equal(cpprof_service_start(s), 0);
    assert_int_equal(cpprof_service_stop(s), 0);
    struct stat st;
    assert_int_not_equal(stat(dir, &st), 0);
    cpprof_service_free(s);
    free(dir);
    cpt_tmpdir_remove(tmp);
    free(tmp);
}

/* The acceptance run: 1 s intervals for 5 s, the folder removed in the
 * middle, HTTP served meanwhile; stop leaves complete files only. */
static void test_periodic_run(void **state)
{
    cpt_require_go();
    char *tmp = cpt_tmpdir();
    char *dir = cpt_path(tmp, "profiles/nested");
    const char *names[] = {"cpu", "test.svc2", "test.svc", "goroutine"};
    int intervals[] = {1};
    int debug[] = {0, 0, 1, 0};
    cpprof_service_config cfg = {
        .enabled = true, .listen_address = "127.0.0.1:0", .folder = dir,
        .profile_names = names, .nprofile_names = 4,
        .intervals = intervals, .nintervals = 1,
        .debug_values = debug, .ndebug_values = 4,
    };
    cpprof_service *s;
    assert_int_equal(cpprof_service_new(&cfg, &s), 0);
    assert_int_equal(cpprof_service_start(s), 0);
    assert_int_equal(cpprof_service_start(s), -EALREADY);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);

    /* The HTTP server it started. */
    int port = cpprof_service_http_port(s);
    assert_true(port > 0);
    http_reply r = http_get(tmp, port, "test.svc?debug=1");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "test.svc profile: total 3"));
    http_reply_free(&r);

    http_sleep_ms(2500);
    size_t svc2_before = check_files(dir, "test.svc2", 0);
    assert_true(svc2_before >= 1);
    assert_true(check_files(dir, "test.svc", 1) >= 1);

    /* Take the folder away: saves fail (logged) and the next ticks
     * recreate it. */
    assert_int_equal(cpt_run(NULL, "rm -rf '%s'", dir), 0);
    http_sleep_ms(2500);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(check_files(dir, "test.svc2", 0) >= 1);
    assert_true(check_files(dir, "test.svc", 1) >= 1);

    assert_int_equal(cpprof_service_stop(s), 0);
    assert_int_equal(cpprof_service_http_port(s), 0);
    /* Stop saved every profile once more and finished the CPU file;
     * nothing partial or temporary is left. */
    size_t nsvc2 = check_files(dir, "test.svc2", 0);
    assert_true(nsvc2 >= 2);
    check_files(dir, "test.svc", 1);
    assert_true(check_files(dir, "goroutine", 0) >= 2 ||
                list_files(dir, "goroutine", NULL) == 0);
    size_t ncpu = check_files(dir, "cpu", 0);
    assert_true(ncpu >= 2); /* rotated at least once after the rm */
    char *out = NULL;
    cpt_run(&out, "ls -A '%s' | grep -c tmp", dir);
    assert_int_equal(atoi(out), 0);
    free(out);
    cpprof_service_free(s);
    free(dir);
    cpt_tmpdir_remove(tmp);
    free(tmp);
}

/* Interval 0: saved only at stop.  Per-profile lists when lengths match.
 * Two saves in one second never collide. */
static void test_schedule_and_names(void **state)
{
    cpt_require_go();
    char *tmp = cpt_tmpdir();
    const char *names[] = {"test.svc2", "test.svc"};
    int intervals[] = {1, 0};
    cpprof_service_config cfg = {.enabled = true, .folder = tmp,
                                 .profile_names = names, .nprofile_names = 2,
                                 .intervals = intervals, .nintervals = 2};
    cpprof_service *s;
    assert_int_equal(cpprof_service_new(&cfg, &s), 0);
    assert_int_equal(cpprof_service_start(s), 0);
    http_sleep_ms(2300);
    assert_true(list_files(tmp, "test.svc2", NULL) >= 2);
    assert_int_equal(list_files(tmp, "test.svc", NULL), 0);
    assert_int_equal(cpprof_service_stop(s), 0);
    assert_int_equal(check_files(tmp, "test.svc", 0), 1);
    size_t nsvc2 = check_files(tmp, "test.svc2", 0);

    /* Stop, start, stop again at once: same second, distinct files. */
    assert_int_equal(cpprof_service_start(s), 0);
    assert_int_equal(cpprof_service_stop(s), 0);
    assert_int_equal(cpprof_service_start(s), 0);
    assert_int_equal(cpprof_service_stop(s), 0);
    assert_int_equal(check_files(tmp, "test.svc", 0), 3);
    assert_int_equal(check_files(tmp, "test.svc2", 0), nsvc2 + 2);
    cpprof_service_free(s);
    cpt_tmpdir_remove(tmp);
    free(tmp);
}

static void test_retention(void **state)
{
    char *tmp = cpt_tmpdir();
    const char *names[] = {"test.svc"};
    int intervals[] = {1};
    cpprof_service_config cfg = {.enabled = true, .folder = tmp,
                                 .profile_names = names, .nprofile_names = 1,
                                 .intervals = intervals, .nintervals = 1,
                                 .retention = 2};
    cpprof_service *s;
    assert_int_equal(cpprof_service_new(&cfg, &s), 0);
    /* Files from an earlier run and a foreign file are counted and kept
     * apart respectively. */
    char *old = cpt_path(tmp, "test.svc.1000.pb.gz");
    char *foreign = cpt_path(tmp, "test.svc.notes");
    cpt_run(NULL, "touch '%s' '%s'", old, foreign);
    assert_int_equal(cpprof_service_start(s), 0);
    http_sleep_ms(3300);
    assert_int_equal(cpprof_service_stop(s), 0);
    assert_int_equal(list_files(tmp, "test.svc", NULL), 3); /* 2 + notes */
    struct stat st;
    assert_int_not_equal(stat(old, &st), 0); /* the oldest went */
    assert_int_equal(stat(foreign, &st), 0);
    cpprof_service_free(s);
    free(old);
    free(foreign);
    cpt_tmpdir_remove(tmp);
    free(tmp);
}

static void test_from_env(void **state)
{
    char *tmp = cpt_tmpdir();
    setenv("CPPROF_SERVICE_FOLDER", tmp, 1);
    setenv("CPPROF_SERVICE_PROFILES", " test.svc , test.svc2", 1);
    setenv("CPPROF_SERVICE_INTERVALS", "0", 1);
    setenv("CPPROF_SERVICE_DEBUG", "1,0", 1);
    cpprof_service *s;
    assert_int_equal(cpprof_service_new_from_env(&s), 0);
    assert_int_equal(cpprof_service_start(s), 0);
    assert_int_equal(cpprof_service_stop(s), 0);
    assert_int_equal(check_files(tmp, "test.svc", 1), 1);
    assert_int_equal(check_files(tmp, "test.svc2", 0), 1);
    cpprof_service_free(s);

    setenv("CPPROF_SERVICE_ENABLED", "0", 1);
    assert_int_equal(cpprof_service_new_from_env(&s), 0);
    assert_int_equal(cpprof_service_start(s), 0);
    assert_int_equal(cpprof_service_stop(s), 0);
    assert_int_equal(list_files(tmp, "test.svc", NULL), 1);
    cpprof_service_free(s);

    static const char *bad[][2] = {
        {"CPPROF_SERVICE_ENABLED", "maybe"},
        {"CPPROF_SERVICE_INTERVALS", "1,x"},
        {"CPPROF_SERVICE_DEBUG", "-1"},
        {"CPPROF_SERVICE_RETENTION", "1,2"},
        {"CPPROF_SERVICE_PROFILES", "test.svc,nonexistent"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("CPPROF_SERVICE_ENABLED", "1", 1);
        char *saved = getenv(bad[i][0]) ? strdup(getenv(bad[i][0])) : NULL;
        setenv(bad[i][0], bad[i][1], 1);
        s = (cpprof_service *)1;
        assert_int_equal(cpprof_service_new_from_env(&s), -EINVAL);
        assert_null(s);
        if (saved)
            setenv(bad[i][0], saved, 1);
        else
            unsetenv(bad[i][0]);
        free(saved);
    }
    unsetenv("CPPROF_SERVICE_ENABLED");
    unsetenv("CPPROF_SERVICE_FOLDER");
    unsetenv("CPPROF_SERVICE_PROFILES");
    unsetenv("CPPROF_SERVICE_INTERVALS");
    unsetenv("CPPROF_SERVICE_DEBUG");
    cpt_tmpdir_remove(tmp);
    free(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_periodic_run),
        cmocka_unit_test(test_schedule_and_names),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_from_env),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
