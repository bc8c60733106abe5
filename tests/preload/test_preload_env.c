/*
 * tests/preload/test_preload_env.c - the CPPROF_* parser
 * (service/preload_env.c) fed from a table: every variable, good and bad
 * values, one report per bad variable naming it, and only that kind of
 * profiling skipped.
 */
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "service/preload_env.h"

typedef struct kv {
    const char *k, *v;
} kv;

static const char *table_get(const char *name, void *arg)
{
    for (const kv *e = arg; e->k; e++)
        if (!strcmp(e->k, name))
            return e->v;
    return NULL;
}

typedef struct reports {
    char lines[16][512];
    int n;
} reports;

static void collect(const char *line, void *arg)
{
    reports *r = arg;
    if (r->n < 16)
        snprintf(r->lines[r->n], sizeof r->lines[0], "%s", line);
    r->n++;
}

static int parse(const kv *env, cp_preload_config *cfg, reports *r)
{
    memset(r, 0, sizeof *r);
    return cp_preload_config_parse(cfg, table_get, (void *)env, collect, r);
}

static void test_all_good_values(void **state)
{
    (void)state;
    kv env[] = {{"CPPROF_CPUPROFILE", "/tmp/c.pb.gz"},
                {"CPPROF_CPURATE", "250"},
                {"CPPROF_MEMPROFILE", "m.pb.gz"},
                {"CPPROF_MEMPROFILERATE", "1"},
                {"CPPROF_BLOCKPROFILE", "/tmp/b"},
                {"CPPROF_BLOCKPROFILERATE", "1000"},
                {"CPPROF_MUTEXPROFILE", "/tmp/x"},
                {"CPPROF_MUTEXPROFILEFRACTION", "5"},
                {"CPPROF_THREADSPROFILE", "/tmp/t"},
                {"CPPROF_FORK", "parent"},
                {"CPPROF_HTTP", "127.0.0.1:0"},
                {"CPPROF_SERVICE_FOLDER", "/tmp/svc"},
                {NULL, NULL}};
    cp_preload_config cfg;
    reports r;
    assert_int_equal(parse(env, &cfg, &r), 0);
    assert_int_equal(r.n, 0);
    assert_string_equal(cfg.cpu_path, "/tmp/c.pb.gz");
    assert_int_equal(cfg.cpu_rate, 250);
    /* Relative paths are made absolute against the current directory. */
    char cwd[4096], want[4200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/m.pb.gz", cwd);
    assert_string_equal(cfg.mem_path, want);
    assert_int_equal(cfg.mem_rate, 1);
    assert_string_equal(cfg.block_path, "/tmp/b");
    assert_int_equal(cfg.block_rate, 1000);
    assert_string_equal(cfg.mutex_path, "/tmp/x");
    assert_int_equal(cfg.mutex_fraction, 5);
    assert_string_equal(cfg.threads_path, "/tmp/t");
    assert_int_equal(cfg.fork_mode, CP_FORK_PARENT);
    assert_true(cfg.http);
    assert_true(cfg.service);
    assert_true(cp_preload_config_active(&cfg));
    cp_preload_config_free(&cfg);
}

static void test_nothing_set_is_inactive(void **state)
{
    (void)state;
    kv env[] = {{"CPPROF_CPUPROFILE", ""}, {"UNRELATED", "1"}, {NULL, NULL}};
    cp_preload_config cfg;
    reports r;
    assert_int_equal(parse(env, &cfg, &r), 0);
    assert_int_equal(r.n, 0); /* empty means unset, not an error */
    assert_null(cfg.cpu_path);
    assert_int_equal(cfg.cpu_rate, -1);
    assert_int_equal(cfg.fork_mode, CP_FORK_PID); /* the default */
    assert_false(cp_preload_config_active(&cfg));
    cp_preload_config_free(&cfg);
}

/* One bad variable: reported once, naming it; its kind skipped; the
 * others intact. */
static void check_bad(const char *var, const char *value, const char *why)
{
    kv env[] = {{"CPPROF_CPUPROFILE", "/tmp/c"},
                {"CPPROF_MEMPROFILE", "/tmp/m"},
                {"CPPROF_BLOCKPROFILE", "/tmp/b"},
                {"CPPROF_MUTEXPROFILE", "/tmp/x"},
                {var, value},
                {NULL, NULL}};
    /* The bad entry overrides a same-named one above. */
    for (kv *e = env; e->k; e++)
        if (!strcmp(e->k, var) && e != &env[4])
            e->k = "IGNORED";
    cp_preload_config cfg;
    reports r;
    assert_int_equal(parse(env, &cfg, &r), 1);
    assert_int_equal(r.n, 1);
    char head[256];
    snprintf(head, sizeof head, "cpprof: %s=\"%s\": ", var, value);
    if (strncmp(r.lines[0], head, strlen(head)) != 0 ||
        !strstr(r.lines[0], why) || !strstr(r.lines[0], "skipped"))
        fail_msg("report for %s: \"%s\"", var, r.lines[0]);
    bool cpu = strstr(var, "CPU") != NULL, mem = strstr(var, "MEM") != NULL;
    bool block = strstr(var, "BLOCK") != NULL, mutex = strstr(var, "MUTEX") != NULL;
    assert_true((cfg.cpu_path == NULL) == cpu);
    assert_true((cfg.mem_path == NULL) == mem);
    assert_true((cfg.block_path == NULL) == block);
    assert_true((cfg.mutex_path == NULL) == mutex);
    cp_preload_config_free(&cfg);
}

static void test_bad_values_reported_once(void **state)
{
    (void)state;
    check_bad("CPPROF_CPURATE", "abc", "not an integer");
    check_bad("CPPROF_CPURATE", "0", "between 1 and 10000");
    check_bad("CPPROF_CPURATE", "10001", "between 1 and 10000");
    check_bad("CPPROF_CPURATE", "12x", "not an integer");
    check_bad("CPPROF_CPURATE", " 5", "not an integer");
    check_bad("CPPROF_MEMPROFILERATE", "-1", "integer >= 0");
    check_bad("CPPROF_MEMPROFILERATE", "99999999999999999999", "integer >= 0");
    check_bad("CPPROF_BLOCKPROFILERATE", "1.5", "not an integer");
    check_bad("CPPROF_MUTEXPROFILEFRACTION", "-3", "between 0 and");
    check_bad("CPPROF_MUTEXPROFILEFRACTION", "3000000000", "between 0 and");
}

static void test_bad_fork_falls_back_to_pid(void **state)
{
    (void)state;
    kv env[] = {{"CPPROF_CPUPROFILE", "/tmp/c"}, {"CPPROF_FORK", "sometimes"},
                {NULL, NULL}};
    cp_preload_config cfg;
    reports r;
    assert_int_equal(parse(env, &cfg, &r), 1);
    assert_non_null(strstr(r.lines[0], "CPPROF_FORK=\"sometimes\""));
    assert_non_null(strstr(r.lines[0], "\"pid\" or \"parent\""));
    assert_int_equal(cfg.fork_mode, CP_FORK_PID);
    assert_non_null(cfg.cpu_path); /* profiling itself unaffected */
    cp_preload_config_free(&cfg);
}

static void test_rate_without_file_still_applies(void **state)
{
    (void)state;
    kv env[] = {{"CPPROF_MEMPROFILERATE", "4096"}, {NULL, NULL}};
    cp_preload_config cfg;
    reports r;
    assert_int_equal(parse(env, &cfg, &r), 0);
    assert_null(cfg.mem_path);
    assert_int_equal(cfg.mem_rate, 4096);
    assert_true(cp_preload_config_active(&cfg));
    cp_preload_config_free(&cfg);
}

static void test_flag_table(void **state)
{
    (void)state;
    /* Every go test profiling flag the issue names maps to a variable. */
    const char *flags[] = {"cpuprofile", "cpurate", "memprofile",
                           "memprofilerate", "blockprofile", "blockprofilerate",
                           "mutexprofile", "mutexprofilefraction",
                           "threadsprofile", "http", "service-dir",
                           "service-profiles", "service-intervals", "fork"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        const cp_pvar *v = cp_pvar_by_flag(flags[i]);
        assert_non_null(v);
        assert_ptr_equal(cp_pvar_by_env(v->env), v);
    }
    assert_null(cp_pvar_by_flag("nosuchflag"));
    char why[128];
    int64_t n;
    assert_int_equal(cp_pvar_check(cp_pvar_by_flag("cpurate"), "100", &n, why,
                                   sizeof why), 0);
    assert_int_equal(n, 100);
    assert_int_equal(cp_pvar_check(cp_pvar_by_flag("cpuprofile"), "", &n, why,
                                   sizeof why), -EINVAL);
    assert_string_equal(why, "empty file name");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_good_values),
        cmocka_unit_test(test_nothing_set_is_inactive),
        cmocka_unit_test(test_bad_values_reported_once),
        cmocka_unit_test(test_bad_fork_falls_back_to_pid),
        cmocka_unit_test(test_rate_without_file_still_applies),
        cmocka_unit_test(test_flag_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
