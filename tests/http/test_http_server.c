/*
 * tests/http/test_http_server.c - the /debug/pprof/ endpoints over real
 * HTTP: each test starts the libmicrohttpd server on a loopback port (or a
 * Unix socket) and asserts status line, headers and body as Go's
 * net/http/pprof produces them, with curl as the client and go tool pprof
 * reading the profiles.  Endpoints whose sampler has not landed in this
 * build must answer 501 with a message; the test checks that instead.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpprof.h"
#include "profile_sums.h"
#include "http_client.h"
#include "support.h"

static char *tmp;
static cpprof_profile *widgets;
static int widget_values[3];

/* Leaves in the symbol table under a known name for /symbol. */
__attribute__((noinline, used)) unsigned http_test_marker(unsigned x)
{
    __asm__ volatile("" ::: "memory");
    return x * 3 + 1;
}

static cpprof_http_server *start(const cpprof_http_options *o)
{
    cpprof_http_options opts = o ? *o : (cpprof_http_options){0};
    if (!opts.address && !opts.unix_path)
        opts.address = "127.0.0.1:0";
    cpprof_http_server *s = NULL;
    int rc = cpprof_http_server_start(&opts, &s);
    if (rc)
        fail_msg("server start: %s", cpprof_strerror(rc));
    if (!opts.unix_path)
        assert_true(cpprof_http_server_port(s) > 0);
    return s;
}

static int group_setup(void **state)
{
    tmp = cpt_tmpdir();
    if (cpprof_profile_new("test.widgets", &widgets) != 0)
        return -1;
    cpprof_profile_add(widgets, &widget_values[0], 0);
    cpprof_profile_add(widgets, &widget_values[1], 0);
    return 0;
}

static int group_teardown(void **state)
{
    cpt_tmpdir_remove(tmp);
    free(tmp);
    return 0;
}

/* Every response of every endpoint carries nosniff. */
static void assert_nosniff(const http_reply *r)
{
    http_assert_header(r, "X-Content-Type-Options", "nosniff");
}

/* A Go serveError reply: status, text/plain, X-Go-Pprof, message + \n. */
static void assert_go_error(const http_reply *r, int status, const char *msg)
{
    if (r->status != status)
        fail_msg("status %d, want %d; body: %s", r->status, status, r->body);
    assert_nosniff(r);
    http_assert_header(r, "Content-Type", "text/plain; charset=utf-8");
    http_assert_header(r, "X-Go-Pprof", "1");
    char *cd = http_header(r, "Content-Disposition");
    assert_null(cd);
    char want[1024];
    snprintf(want, sizeof want, "%s\n", msg);
    assert_string_equal(r->body, want);
}

/* 501 with a message, for endpoints whose sampler is not in this build. */
static bool not_available(const http_reply *r)
{
    if (r->status != 501)
        return false;
    assert_nosniff(r);
    http_assert_header(r, "X-Go-Pprof", "1");
    assert_true(strstr(r->body, "not available") != NULL);
    fprintf(stderr, "note: %s", r->body);
    return true;
}

static void test_index(void **state)
{
    cpprof_http_server *s = start(NULL);
    http_reply r = http_get(tmp, cpprof_http_server_port(s), "");
    assert_int_equal(r.status, 200);
    assert_nosniff(&r);
    http_assert_header(&r, "Content-Type", "text/html; charset=utf-8");
    /* Every registered profile, built-in and custom, with count and a
     * debug=1 link; the extra endpoints; the full dump link. */
    assert_non_null(strstr(r.body, "<tr><td>2</td><td><a href='test.widgets?debug=1'>test.widgets</a>"));
    size_t n = cpprof_profile_list(NULL, 0);
    cpprof_profile **ps = calloc(n, sizeof *ps);
    cpprof_profile_list(ps, n);
    for (size_t i = 0; i < n; i++) {
        char want[256];
        snprintf(want, sizeof want, "<a href='%s?debug=1'>%s</a>",
                 cpprof_profile_name(ps[i]), cpprof_profile_name(ps[i]));
        if (!strstr(r.body, want))
            fail_msg("index lacks %s", want);
    }
    free(ps);
    assert_non_null(strstr(r.body, "<a href='profile?debug=1'>profile</a>"));
    assert_non_null(strstr(r.body, "<a href='cmdline?debug=1'>cmdline</a>"));
    assert_non_null(strstr(r.body, "<a href='trace?debug=1'>trace</a>"));
    assert_non_null(strstr(r.body, "href=\"goroutine?debug=2\""));
    /* Sorted by name: cmdline before profile before test.widgets. */
    assert_true(strstr(r.body, ">cmdline<") < strstr(r.body, ">profile<"));
    assert_true(strstr(r.body, ">profile<") < strstr(r.body, ">test.widgets<"));
    http_reply_free(&r);

    /* Outside the prefix: Go's mux answers 404 and redirects the bare
     * prefix. */
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/elsewhere",
             cpprof_http_server_port(s));
    r = http_fetch(tmp, "", url);
    assert_int_equal(r.status, 404);
    http_reply_free(&r);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof",
             cpprof_http_server_port(s));
    r = http_fetch(tmp, "", url);
    assert_int_equal(r.status, 301);
    http_assert_header(&r, "Location", "/debug/pprof/");
    http_reply_free(&r);
    cpprof_http_server_stop(s);
}

static void test_cmdline(void **state)
{
    cpprof_http_server *s = start(NULL);
    http_reply r = http_get(tmp, cpprof_http_server_port(s), "cmdline");
    assert_int_equal(r.status, 200);
    assert_nosniff(&r);
    http_assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
    /* /proc/self/cmdline without its final NUL: args joined by NULs. */
    size_t len;
    char *want = cpt_read_file("/proc/self/cmdline", &len);
    assert_true(len > 0);
    assert_int_equal(r.len, len - 1);
    assert_memory_equal(r.body, want, len - 1);
    free(want);
    http_reply_free(&r);
    cpprof_http_server_stop(s);

    /* Disabled: refused, and the index no longer offers it. */
    s = start(&(cpprof_http_options){.disable_cmdline = true});
    r = http_get(tmp, cpprof_http_server_port(s), "cmdline");
    assert_go_error(&r, 403, "cmdline is disabled on this server");
    http_reply_free(&r);
    r = http_get(tmp, cpprof_http_server_port(s), "");
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, ">cmdline<"));
    http_reply_free(&r);
    cpprof_http_server_stop(s);
}

static void test_named_profile(void **state)
{
    cpt_require_go();
    cpprof_http_server *s = start(NULL);
    int port = cpprof_http_server_port(s);
    http_reply r = http_get(tmp, port, "test.widgets");
    assert_int_equal(r.status, 200);
    assert_nosniff(&r);
    http_assert_header(&r, "Content-Type", "application/octet-stream");
    http_assert_header(&r, "Content-Disposition",
                       "attachment; filename=\"test.widgets\"");
    assert_true(r.len > 2 && (unsigned char)r.body[0] == 0x1f &&
                (unsigned char)r.body[1] == 0x8b);
    char *top = cpt_pprof("-raw", r.body_path);
    assert_non_null(strstr(top, "group_setup"));
    free(top);
    http_reply_free(&r);

    /* Straight from the server, as a user would. */
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof/test.widgets", port);
    top = cpt_pprof("-top", url);
    assert_non_null(strstr(top, "group_setup"));
    free(top);

    /* The heap profile straight from the server, where the sampler is in
     * the build (not under sanitizers). */
    r = http_get(tmp, port, "heap");
    if (!not_available(&r)) {
        assert_int_equal(r.status, 200);
        snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof/heap", port);
        top = cpt_pprof("-sample_index=alloc_space -top", url);
        assert_non_null(strstr(top, "Type: alloc_space"));
        free(top);
    }
    http_reply_free(&r);

    /* debug=1: text with the count; gc=1 is accepted and changes nothing. */
    r = http_get(tmp, port, "test.widgets?debug=1&gc=1");
    assert_int_equal(r.status, 200);
    assert_nosniff(&r);
    http_assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
    assert_null(http_header(&r, "Content-Disposition"));
    assert_non_null(strstr(r.body, "test.widgets profile: total 2"));
    http_reply_free(&r);

    /* Go's goroutine alias reaches the threads profile. */
    r = http_get(tmp, port, "goroutine?debug=1");
    assert_true(r.status == 200 || not_available(&r));
    assert_nosniff(&r);
    http_reply_free(&r);

    r = http_get(tmp, port, "nosuchprofile");
    assert_go_error(&r, 404, "Unknown profile");
    http_reply_free(&r);
    r = http_get(tmp, port, "heap/extra");
    assert_go_error(&r, 404, "Unknown profile");
    http_reply_free(&r);
    cpprof_http_server_stop(s);
}

/* The server's threads allocate for every request (connection state,
 * snapshots, symbols, output): the profiler's own memory, which even at
 * heap rate 1 must not show up in the program's heap profile. */
static void test_server_allocations_are_not_sampled(void **state)
{
    if (cpprof_heap_set_rate(1) != 0)
        skip(); /* sanitizer build: no malloc interposition */
    cpprof_http_server *s = start(NULL);
    int port = cpprof_http_server_port(s);
    for (int i = 0; i < 3; i++) {
        http_reply r = http_get(tmp, port, i == 1 ? "heap?debug=1" : "heap");
        assert_int_equal(r.status, 200);
        http_reply_free(&r);
    }
    cpprof_http_server_stop(s);
    cp_decoded *d = ht_decode_profile("allocs");
    /* The test's own allocations are sampled (curl's reply is read into
     * this thread's buffers)... */
    assert_true(ht_sum(d, "alloc_objects", "http_get", NULL) > 0);
    /* ...the server's, made while answering, are not. */
    assert_int_equal(ht_sum(d, "alloc_objects", "on_request", NULL), 0);
    cp_decoded_free(d);
    assert_int_equal(cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE), 0);
}

static void test_delta_errors(void **state)
{
    cpprof_http_server *s = start(&(cpprof_http_options){.write_timeout_s = 5});
    int port = cpprof_http_server_port(s);
    static const char *bad[] = {"x", "0", "-3", "1.5", "%20"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[64];
        snprintf(path, sizeof path, "heap?seconds=%s", bad[i]);
        http_reply r = http_get(tmp, port, path);
        assert_go_error(&r, 400, "invalid value for \"seconds\" - must be a positive integer");
        http_reply_free(&r);
    }
    http_reply r = http_get(tmp, port, "test.widgets?seconds=1");
    assert_go_error(&r, 400, "\"seconds\" parameter is not supported for this profile type");
    http_reply_free(&r);
    r = http_get(tmp, port, "heap?seconds=1&debug=1");
    assert_go_error(&r, 400, "seconds and debug params are incompatible");
    http_reply_free(&r);
    /* Durations at or over the write timeout, for every waiting endpoint. */
    r = http_get(tmp, port, "heap?seconds=5");
    assert_go_error(&r, 400, "profile duration exceeds server's WriteTimeout");
    http_reply_free(&r);
    r = http_get(tmp, port, "profile?seconds=10");
    assert_go_error(&r, 400, "profile duration exceeds server's WriteTimeout");
    http_reply_free(&r);
    /* No seconds: CPU profiles default to 30, which the timeout refuses. */
    r = http_get(tmp, port, "profile?seconds=junk");
    assert_go_error(&r, 400, "profile duration exceeds server's WriteTimeout");
    http_reply_free(&r);
    r = http_get(tmp, port, "trace?seconds=7.5");
    assert_go_error(&r, 400, "profile duration exceeds server's WriteTimeout");
    http_reply_free(&r);
    cpprof_http_server_stop(s);

    /* Our own cap on seconds. */
    s = start(&(cpprof_http_options){.max_seconds = 10});
    port = cpprof_http_server_port(s);
    r = http_get(tmp, port, "profile?seconds=11");
    assert_go_error(&r, 400, "profile duration exceeds server's limit of 10 seconds");
    http_reply_free(&r);
    r = http_get(tmp, port, "goroutine?seconds=100");
    assert_go_error(&r, 400, "profile duration exceeds server's limit of 10 seconds");
    http_reply_free(&r);
    cpprof_http_server_stop(s);
}

/* Go's delta endpoints over a real second, for every profile Go allows. */
static void test_delta_profiles(void **state)
{
    cpt_require_go();
    cpprof_http_server *s = start(NULL);
    int port = cpprof_http_server_port(s);
    static const char *names[] = {"allocs", "block", "goroutine", "heap",
                                  "mutex", "threadcreate"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[64], disp[128];
        snprintf(path, sizeof path, "%s?seconds=1", names[i]);
        http_reply r = http_get(tmp, port, path);
        if (!not_available(&r)) {
            assert_int_equal(r.status, 200);
            assert_nosniff(&r);
            http_assert_header(&r, "Content-Type", "application/octet-stream");
            snprintf(disp, sizeof disp, "attachment; filename=\"%s-delta\"", names[i]);
            http_assert_header(&r, "Content-Disposition", disp);
            free(cpt_pprof("-raw", r.body_path));
        }
        http_reply_free(&r);
    }
    /* godeltaprof's endpoints. */
    static const char *godelta[] = {"delta_heap", "delta_mutex", "delta_block"};
    for (size_t i = 0; i < 3; i++) {
        for (int call = 0; call < 2; call++) {
            char disp[128];
            http_reply r = http_get(tmp, port, godelta[i]);
            if (!not_available(&r)) {
                assert_int_equal(r.status, 200);
                assert_nosniff(&r);
                snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", godelta[i]);
                http_assert_header(&r, "Content-Disposition", disp);
                free(cpt_pprof("-raw", r.body_path));
            }
            http_reply_free(&r);
        }
    }
    cpprof_http_server_stop(s);
}

static void test_symbol(void **state)
{
    cpprof_http_server *s = start(NULL);
    int port = cpprof_http_server_port(s);
    char path[512], want[256];
    uintptr_t pc = (uintptr_t)&http_test_marker + 1;
    snprintf(want, sizeof want, "num_symbols: 1\n%#lx http_test_marker\n",
             (unsigned long)pc);
    /* GET: '+'-separated in the raw query; garbage and 0 are skipped. */
    snprintf(path, sizeof path, "symbol?%#lx+garbage+0+0x", (unsigned long)pc);
    http_reply r = http_get(tmp, port, path);
    assert_int_equal(r.status, 200);
    assert_nosniff(&r);
    http_assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
    assert_string_equal(r.body, want);
    http_reply_free(&r);

    /* POST: the body, as pprof sends it; Go's base-0 syntax (decimal,
     * underscores) works too. */
    char args[256], url[256];
    snprintf(args, sizeof args, "--data-binary 'xyz+%lu+%#lx'",
             (unsigned long)pc, (unsigned long)pc);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof/symbol", port);
    r = http_fetch(tmp, args, url);
    assert_int_equal(r.status, 200);
    char want2[512];
    snprintf(want2, sizeof want2, "num_symbols: 1\n%#lx http_test_marker\n%#lx http_test_marker\n",
             (unsigned long)pc, (unsigned long)pc);
    assert_string_equal(r.body, want2);
    http_reply_free(&r);

    r = http_get(tmp, port, "symbol");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "num_symbols: 1\n");
    http_reply_free(&r);
    cpprof_http_server_stop(s);

    /* Bounded request size. */
    s = start(&(cpprof_http_options){.max_body_bytes = 16});
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof/symbol",
             cpprof_http_server_port(s));
    r = http_fetch(tmp, "--data-binary 0x1234+0x1234+0x1234+0x1234+0x1234", url);
    assert_go_error(&r, 413, "request body too large");
    http_reply_free(&r);
    cpprof_http_server_stop(s);
}

/* Burns CPU so a CPU profile has something to show. */
static atomic_int spin_stop;
static void *spinner(void *arg)
{
    volatile unsigned long x = 0;
    while (!atomic_load(&spin_stop))
        x += http_test_marker((unsigned)x);
    return NULL;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_cpu_profile(void **state)
{
    cpprof_http_server *s = start(NULL);
    int port = cpprof_http_server_port(s);
    http_reply r = http_get(tmp, port, "profile?seconds=1");
    if (not_available(&r)) {
        http_reply_free(&r);
        cpprof_http_server_stop(s);
        return;
    }
    cpt_require_go();
    assert_int_equal(r.status, 200);
    assert_nosniff(&r);
    http_assert_header(&r, "Content-Type", "application/octet-stream");
    http_assert_header(&r, "Content-Disposition", "attachment; filename=\"profile\"");
    free(cpt_pprof("-raw", r.body_path));
    http_reply_free(&r);

    /* go tool pprof straight from the server, with work to see. */
    pthread_t t;
    atomic_store(&spin_stop, 0);
    pthread_create(&t, NULL, spinner, NULL);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof/profile?seconds=2", port);
    char *top = cpt_pprof("-top", url);
    assert_non_null(strstr(top, "spinner"));
    free(top);

    /* One CPU profile at a time: a second one while the first runs gets
     * Go's 500.  A client that leaves ends its profile early, which the
     * third request proves by getting a profile at once. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -s -o /dev/null --max-time 1 "
             "'http://127.0.0.1:%d/debug/pprof/profile?seconds=20' >/dev/null 2>&1 &", port);
    cpt_run(NULL, "%s", cmd);
    for (int i = 0; i < 100 && !cpprof_cpu_running(); i++)
        http_sleep_ms(50);
    assert_true(cpprof_cpu_running());
    r = http_get(tmp, port, "profile?seconds=1");
    assert_go_error(&r, 500, "Could not enable CPU profiling: cpu profiling already in use");
    http_reply_free(&r);
    double t0 = mono_now();
    int status = 0;
    /* The first client left after 1 s; its profile must stop then, not
     * after 20 s. */
    for (int i = 0; i < 40 && status != 200; i++) {
        http_sleep_ms(250);
        r = http_get(tmp, port, "profile?seconds=1");
        status = r.status;
        http_reply_free(&r);
    }
    assert_int_equal(status, 200);
    assert_true(mono_now() - t0 < 10);
    atomic_store(&spin_stop, 1);
    pthread_join(t, NULL);
    cpprof_http_server_stop(s);
}

static void test_trace(void **state)
{
    cpprof_http_server *s = start(NULL);
    http_reply r = http_get(tmp, cpprof_http_server_port(s), "trace?seconds=0.2");
    if (!not_available(&r)) {
        assert_int_equal(r.status, 200);
        assert_nosniff(&r);
        http_assert_header(&r, "Content-Type", "application/octet-stream");
        http_assert_header(&r, "Content-Disposition", "attachment; filename=\"trace\"");
        assert_true(r.len > 0);
    }
    http_reply_free(&r);
    cpprof_http_server_stop(s);
}

static void test_bearer_token(void **state)
{
    cpprof_http_server *s = start(&(cpprof_http_options){.bearer_token = "s3cret"});
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof/cmdline",
             cpprof_http_server_port(s));
    http_reply r = http_fetch(tmp, "", url);
    assert_go_error(&r, 401, "Unauthorized");
    http_assert_header(&r, "WWW-Authenticate", "Bearer realm=\"cpprof\"");
    http_reply_free(&r);
    r = http_fetch(tmp, "-H 'Authorization: Bearer s3cre'", url);
    assert_go_error(&r, 401, "Unauthorized");
    http_reply_free(&r);
    r = http_fetch(tmp, "-H 'Authorization: Basic s3cret'", url);
    assert_go_error(&r, 401, "Unauthorized");
    http_reply_free(&r);
    r = http_fetch(tmp, "-H 'Authorization: Bearer s3cret'", url);
    assert_int_equal(r.status, 200);
    assert_nosniff(&r);
    http_reply_free(&r);
    cpprof_http_server_stop(s);
}

static void test_unix_socket(void **state)
{
    char *path = cpt_path(tmp, "pprof.sock");
    cpprof_http_server *s = start(&(cpprof_http_options){.unix_path = path});
    assert_int_equal(cpprof_http_server_port(s), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 077, 0); /* private to the owner */
    char args[512];
    snprintf(args, sizeof args, "--unix-socket '%s'", path);
    http_reply r = http_fetch(tmp, args, "http://localhost/debug/pprof/test.widgets?debug=1");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "test.widgets profile: total 2"));
    http_reply_free(&r);
    cpprof_http_server_stop(s);
    assert_int_not_equal(stat(path, &st), 0); /* removed at stop */
    free(path);
}

static void test_connection_limit(void **state)
{
    cpprof_http_server *s = start(&(cpprof_http_options){.connection_limit = 2,
                                                          .thread_pool_size = 1});
    int port = cpprof_http_server_port(s);
    int fds[2];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 2; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
    }
    http_sleep_ms(1000);
    /* Both slots held by idle clients: a third is not served (it waits
     * in the listen backlog until a slot frees). */
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof/cmdline", port);
    http_reply r = http_fetch(tmp, "--max-time 2", url);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.curl_rc, 28); /* curl's "operation timed out" */
    http_reply_free(&r);
    for (int i = 0; i < 2; i++)
        close(fds[i]);
    int status = 0;
    for (int i = 0; i < 20 && status != 200; i++) {
        http_sleep_ms(100);
        r = http_get(tmp, port, "cmdline");
        status = r.status;
        http_reply_free(&r);
    }
    assert_int_equal(status, 200);
    cpprof_http_server_stop(s);
}

static void test_bad_options(void **state)
{
    cpprof_http_server *s = (cpprof_http_server *)1;
    assert_int_equal(cpprof_http_server_start(&(cpprof_http_options){.address = "nonsense"}, &s), -EINVAL);
    assert_null(s);
    assert_int_equal(cpprof_http_server_start(&(cpprof_http_options){.address = "127.0.0.1:99999"}, &s), -EINVAL);
    assert_int_equal(cpprof_http_server_start(&(cpprof_http_options){.address = "[::1:80"}, &s), -EINVAL);
    assert_int_equal(cpprof_http_server_start(&(cpprof_http_options){.max_seconds = -1}, &s), -EINVAL);
    assert_int_equal(cpprof_http_server_start(NULL, NULL), -EINVAL);
    /* Two servers on one port: the second gets the bind error. */
    cpprof_http_server *a = start(NULL);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", cpprof_http_server_port(a));
    assert_int_equal(cpprof_http_server_start(&(cpprof_http_options){.address = addr}, &s), -EADDRINUSE);
    cpprof_http_server_stop(a);
    cpprof_http_server_stop(NULL);
}

/* Whether libmicrohttpd is mapped into this process. */
static bool mhd_mapped(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[512];
    bool found = false;
    while (fgets(line, sizeof line, f))
        found |= strstr(line, "libmicrohttpd") != NULL;
    fclose(f);
    return found;
}

/* libmicrohttpd (and GnuTLS behind it) is loaded when the first server
 * starts, not with the library: the first test, before any start. */
static void test_libmicrohttpd_loads_with_the_first_server(void **state)
{
    (void)state;
    assert_false(mhd_mapped());
    cpprof_http_server *s;
    assert_int_equal(cpprof_http_server_start(
                         &(cpprof_http_options){.address = "127.0.0.1:0"}, &s),
                     0);
    assert_true(mhd_mapped());
    cpprof_http_server_stop(s);
}

/* The descriptors open in this process (fd numbers, at most cap). */
static int open_fds(int *out, int cap)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0, self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fd != self)
            out[n++] = fd;
    }
    closedir(d);
    return n;
}

/* Every close in this process goes through here (the library's and
 * libmicrohttpd's too, by symbol interposition): counts the closes of
 * closes_watched, then calls the next close (a sanitizer's, which must
 * see every close, or libc's). */
static _Atomic int closes_watched = -1, closes_seen;

int close(int fd)
{
    static int (*_Atomic next_close)(int);
    int (*next)(int) = atomic_load(&next_close);
    if (!next) {
        next = (int (*)(int))dlsym(RTLD_NEXT, "close");
        atomic_store(&next_close, next);
    }
    if (fd == atomic_load(&closes_watched))
        atomic_fetch_add(&closes_seen, 1);
    return next(fd);
}

/* libmicrohttpd closes the listening socket it was handed; closing it
 * again would close whatever descriptor another thread opened with that
 * number meanwhile. */
static void test_stop_closes_the_listener_once(void **state)
{
    (void)state;
    int before[256], after[256];
    int nb = open_fds(before, 256);
    cpprof_http_server *s = start(NULL);
    int na = open_fds(after, 256), listener = -1;
    for (int i = 0; i < na; i++) {
        struct stat st;
        bool old = false;
        for (int j = 0; j < nb; j++)
            old |= after[i] == before[j];
        if (!old && fstat(after[i], &st) == 0 && S_ISSOCK(st.st_mode) &&
            listener < 0)
            listener = after[i]; /* the first socket: bound before MHD's */
    }
    assert_true(listener >= 0);
    atomic_store(&closes_watched, listener);
    atomic_store(&closes_seen, 0);
    cpprof_http_server_stop(s);
    atomic_store(&closes_watched, -1);
    assert_int_equal(atomic_load(&closes_seen), 1);
}

/*
 * A daemon closes every descriptor it did not open and reuses the
 * numbers: stopping the server then must touch none of them (it wrote
 * to the program's descriptors, and libmicrohttpd aborted the process
 * when its wake-up write failed).  Last: the server is left behind.
 */
static void test_stop_after_the_program_closed_its_descriptors(void **state)
{
    (void)state;
    int before[256], after[256], mine[64], nmine = 0;
    int nb = open_fds(before, 256);
    cpprof_http_server *s = start(NULL);
    int na = open_fds(after, 256);
    for (int i = 0; i < na && nmine < 64; i++) {
        bool old = false;
        for (int j = 0; j < nb; j++)
            old |= after[i] == before[j];
        if (!old)
            mine[nmine++] = after[i];
    }
    assert_true(nmine >= 2);
    for (int i = 0; i < nmine; i++)
        close(mine[i]);
    int p[16][2];
    for (int i = 0; i < 16; i++) /* takes the numbers back */
        assert_int_equal(pipe(p[i]), 0);
    cpprof_http_server_stop(s);
    int intact = 0, stray = 0;
    for (int i = 0; i < 16; i++) {
        intact += fcntl(p[i][0], F_GETFD) >= 0 && fcntl(p[i][1], F_GETFD) >= 0;
        fcntl(p[i][0], F_SETFL, O_NONBLOCK);
        char b[16];
        ssize_t n = read(p[i][0], b, sizeof b);
        stray += n > 0 ? (int)n : 0;
        close(p[i][0]);
        close(p[i][1]);
    }
    assert_int_equal(intact, 16);
    assert_int_equal(stray, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libmicrohttpd_loads_with_the_first_server),
        cmocka_unit_test(test_index),
        cmocka_unit_test(test_cmdline),
        cmocka_unit_test(test_named_profile),
        cmocka_unit_test(test_server_allocations_are_not_sampled),
        cmocka_unit_test(test_delta_errors),
        cmocka_unit_test(test_delta_profiles),
        cmocka_unit_test(test_symbol),
        cmocka_unit_test(test_cpu_profile),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_bearer_token),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_stop_closes_the_listener_once),
        cmocka_unit_test(test_stop_after_the_program_closed_its_descriptors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
