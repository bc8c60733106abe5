/*
 * tests/http/test_http_handler.c - the transport-agnostic handler:
 * called directly with a recording response (one start before any body
 * byte, headers, cancellation through wait), mounted under a prefix of a
 * foreign libmicrohttpd server for a go tool pprof symbolization round
 * trip through /symbol, and the delta semantics against known
 * allocations: in a heap delta alloc_* are the change over the window and
 * inuse_* the level at its end; delta_heap answers the change since its
 * previous call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "core/writer.h"
#include "cpprof.h"
#include "encode/decode.h"
#include "encode/proto.h"
#include "http_client.h"
#include "model/profile.h"
#include "support.h"

/* ------------------------------------------------- recording response */

typedef struct recorder {
    int starts;
    int status;
    int writes_before_start;
    char headers[2048]; /* "Name: value\n" each */
    char *body;
    size_t len, cap;
    int cancel;                  /* what wait answers */
    void (*during_wait)(void);   /* work done while the handler waits */
    unsigned waited_ms;
} recorder;

static int rec_start(void *arg, int status, const cpprof_http_header *h, size_t n)
{
    recorder *r = arg;
    r->starts++;
    r->status = status;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(r->headers);
        snprintf(r->headers + l, sizeof r->headers - l, "%s: %s\n", h[i].name,
                 h[i].value);
    }
    return 0;
}

static int rec_write(void *arg, const void *data, size_t len)
{
    recorder *r = arg;
    if (!r->starts)
        r->writes_before_start++;
    if (r->len + len + 1 > r->cap) {
        r->cap = (r->len + len + 1) * 2;
        r->body = realloc(r->body, r->cap);
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return 0;
}

static int rec_wait(void *arg, unsigned ms)
{
    recorder *r = arg;
    r->waited_ms += ms;
    if (r->during_wait) {
        r->during_wait();
        r->during_wait = NULL;
    }
    return r->cancel;
}

static recorder *serve(cpprof_http_handler *h, const char *method,
                       const char *path, const char *query, recorder *r)
{
    cpprof_http_request req = {.method = method, .path = path, .query = query};
    cpprof_http_response resp = {rec_start, rec_write, rec_wait, r};
    assert_int_equal(cpprof_http_handle(h, &req, &resp), 0);
    assert_int_equal(r->starts, 1);
    assert_int_equal(r->writes_before_start, 0);
    assert_non_null(strstr(r->headers, "X-Content-Type-Options: nosniff\n"));
    return r;
}

static void rec_free(recorder *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* ----------------------------------------------------------- direct */

static void test_direct_calls(void **state)
{
    cpprof_http_handler *h;
    assert_int_equal(cpprof_http_handler_new(NULL, &h), 0);
    recorder r = {0};
    serve(h, "GET", "", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Content-Type: text/html; charset=utf-8\n"));
    assert_non_null(strstr(r.body, "/debug/pprof/"));
    rec_free(&r);
    /* A leading '/' is the mount point's. */
    serve(h, "GET", "/cmdline", NULL, &r);
    assert_int_equal(r.status, 200);
    rec_free(&r);
    serve(h, "GET", "/missing", NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "Unknown profile\n");
    rec_free(&r);

    /* Which requests wait, for transports that move them off I/O threads. */
    cpprof_http_request q = {.path = "profile"};
    assert_true(cpprof_http_request_waits(&q));
    q = (cpprof_http_request){.path = "heap", .query = "debug=1&seconds=3"};
    assert_true(cpprof_http_request_waits(&q));
    q = (cpprof_http_request){.path = "heap", .query = "seconds="};
    assert_false(cpprof_http_request_waits(&q));
    q = (cpprof_http_request){.path = "symbol", .query = "seconds=3"};
    assert_false(cpprof_http_request_waits(&q));

    /* The client goes away during a delta: Go's context error, at once. */
    r.cancel = 1;
    serve(h, "GET", "heap", "seconds=30", &r);
    if (r.status != 501) {
        assert_int_equal(r.status, 500);
        assert_string_equal(r.body, "context canceled\n");
        assert_true(r.waited_ms <= 60000);
    }
    rec_free(&r);
    /* ... and during a CPU profile: it ends early with a profile. */
    r.cancel = 1;
    serve(h, "GET", "profile", "seconds=30", &r);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 2 && (unsigned char)r.body[0] == 0x1f);
    rec_free(&r);

    cpprof_http_handler *bad = (cpprof_http_handler *)1;
    assert_int_equal(cpprof_http_handler_new(&(cpprof_http_options){.connection_limit = -1}, &bad), -EINVAL);
    assert_null(bad);
    cpprof_http_handler_free(h);
    cpprof_http_handler_free(NULL);
    assert_int_equal(cpprof_http_handle(NULL, NULL, NULL), -EINVAL);
}

/* ---------------------------------------------------- delta semantics */

enum { BEFORE_N = 10, BEFORE_SIZE = 1000, DURING_N = 20, DURING_SIZE = 2000 };
static void *before_blocks[BEFORE_N], *during_blocks[DURING_N];

__attribute__((noinline)) void http_delta_before_alloc(void)
{
    for (int i = 0; i < BEFORE_N; i++)
        before_blocks[i] = malloc(BEFORE_SIZE);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void http_delta_during_alloc(void)
{
    for (int i = 0; i < DURING_N; i++)
        during_blocks[i] = malloc(DURING_SIZE);
    __asm__ volatile("" ::: "memory");
    for (int i = 0; i < DURING_N / 2; i++) {
        free(during_blocks[i]);
        during_blocks[i] = NULL;
    }
}

/* Sums the values of samples whose stack has a frame named fn. */
static void sum_for(const cp_decoded *d, const char *fn, int64_t *sums)
{
    memset(sums, 0, sizeof(int64_t) * d->ntypes);
    for (size_t i = 0; i < d->nsamples; i++) {
        const cp_dec_sample *s = &d->samples[i];
        bool hit = false;
        for (size_t j = 0; j < s->nlocs && !hit; j++) {
            const cp_dec_location *l = cp_decoded_location(d, s->location_ids[j]);
            for (size_t k = 0; l && k < l->nlines && !hit; k++) {
                const cp_dec_function *f = cp_decoded_function(d, l->lines[k].function_id);
                hit = f && f->name && strcmp(f->name, fn) == 0;
            }
        }
        if (hit)
            for (size_t v = 0; v < d->ntypes; v++)
                sums[v] += s->values[v];
    }
}

static void test_heap_delta(void **state)
{
    if (cpprof_heap_set_rate(1) == -ENOSYS) {
        fprintf(stderr, "note: heap sampling compiled out; skipping\n");
        skip();
    }
    cpt_require_go();
    http_delta_before_alloc();
    cpprof_http_handler *h;
    assert_int_equal(cpprof_http_handler_new(NULL, &h), 0);
    recorder r = {.during_wait = http_delta_during_alloc};
    serve(h, "GET", "heap", "seconds=1", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Content-Disposition: attachment; filename=\"heap-delta\"\n"));
    cp_decoded *d;
    assert_int_equal(cp_decode(r.body, r.len, &d), 0);
    assert_true(d->duration_nanos > 0);
    int ao = cp_decoded_type_index(d, "alloc_objects");
    int as = cp_decoded_type_index(d, "alloc_space");
    int io = cp_decoded_type_index(d, "inuse_objects");
    int is = cp_decoded_type_index(d, "inuse_space");
    assert_true(ao >= 0 && as >= 0 && io >= 0 && is >= 0);
    int64_t v[8];
    /* Allocated before the window, still live: nothing allocated in the
     * window, the full level in use at its end. */
    sum_for(d, "http_delta_before_alloc", v);
    assert_int_equal(v[ao], 0);
    assert_int_equal(v[as], 0);
    assert_int_equal(v[io], BEFORE_N);
    assert_int_equal(v[is], BEFORE_N * BEFORE_SIZE);
    /* Allocated in the window, half freed. */
    sum_for(d, "http_delta_during_alloc", v);
    assert_int_equal(v[ao], DURING_N);
    assert_int_equal(v[as], DURING_N * DURING_SIZE);
    assert_int_equal(v[io], DURING_N / 2);
    assert_int_equal(v[is], DURING_N / 2 * DURING_SIZE);
    cp_decoded_free(d);
    /* go tool pprof reads it. */
    char *tmp = cpt_tmpdir(), *path = cpt_path(tmp, "heap-delta.pb.gz");
    FILE *f = fopen(path, "wb");
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    free(cpt_pprof("-sample_index=alloc_space -top", path));
    rec_free(&r);

    /* godeltaprof's delta_heap: everything first, then only the change
     * since the previous call. */
    serve(h, "GET", "delta_heap", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.headers, "Content-Disposition: attachment; filename=\"delta_heap\"\n"));
    assert_int_equal(cp_decode(r.body, r.len, &d), 0);
    sum_for(d, "http_delta_before_alloc", v);
    assert_int_equal(v[as], BEFORE_N * BEFORE_SIZE);
    cp_decoded_free(d);
    rec_free(&r);
    http_delta_during_alloc(); /* 20 more allocations, 10 more live */
    serve(h, "GET", "delta_heap", NULL, &r);
    assert_int_equal(cp_decode(r.body, r.len, &d), 0);
    sum_for(d, "http_delta_before_alloc", v);
    assert_int_equal(v[as], 0);
    assert_int_equal(v[is], BEFORE_N * BEFORE_SIZE);
    sum_for(d, "http_delta_during_alloc", v);
    assert_int_equal(v[ao], DURING_N);
    assert_int_equal(v[as], DURING_N * DURING_SIZE);
    cp_decoded_free(d);
    f = fopen(path, "wb");
    fwrite(r.body, 1, r.len, f);
    fclose(f);
    free(cpt_pprof("-raw", path));
    rec_free(&r);

    for (int i = 0; i < BEFORE_N; i++)
        free(before_blocks[i]);
    for (int i = 0; i < DURING_N; i++)
        free(during_blocks[i]);
    cpprof_heap_set_rate(CPPROF_HEAP_DEFAULT_RATE);
    cpprof_http_handler_free(h);
    free(path);
    cpt_tmpdir_remove(tmp);
    free(tmp);
}

/* --------------------------------------- mounted in a foreign server */

#define MOUNT "/app/debug/pprof/"

__attribute__((noinline, used)) int http_roundtrip_marker(int x)
{
    __asm__ volatile("" ::: "memory");
    return x + 7;
}

static struct {
    cpprof_http_handler *handler;
    void *raw; /* an unsymbolized profile served at MOUNT "raw" */
    size_t raw_len;
} foreign;

typedef struct upload {
    char buf[65536];
    size_t len;
    bool started;
} upload;

static enum MHD_Result foreign_access(void *cls, struct MHD_Connection *c,
                                      const char *url, const char *method,
                                      const char *version, const char *data,
                                      size_t *size, void **ctx)
{
    upload *u = *ctx;
    if (!u) {
        *ctx = u = calloc(1, sizeof *u);
        return MHD_YES;
    }
    if (*size) {
        size_t n = *size < sizeof u->buf - u->len ? *size : sizeof u->buf - u->len;
        memcpy(u->buf + u->len, data, n);
        u->len += n;
        *size = 0;
        return MHD_YES;
    }
    recorder r = {0};
    if (strncmp(url, MOUNT, strlen(MOUNT)) != 0)
        return MHD_NO;
    const char *path = url + strlen(MOUNT);
    if (strcmp(path, "raw") == 0) {
        r.status = 200;
        rec_write(&r, foreign.raw, foreign.raw_len);
    } else {
        cpprof_http_request req = {.method = method, .path = path,
                                   .body = u->buf, .body_len = u->len};
        cpprof_http_response resp = {rec_start, rec_write, NULL, &r};
        cpprof_http_handle(foreign.handler, &req, &resp);
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        r.len, r.body ? r.body : (void *)"", MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r.status, resp);
    MHD_destroy_response(resp);
    rec_free(&r);
    return ok;
}

static void foreign_done(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode code)
{
    free(*ctx);
    *ctx = NULL;
}

static void test_symbol_roundtrip(void **state)
{
    cpt_require_go();
    /* A CPU-style profile of one known address, without symbols. */
    static const cp_value_type types[] = {{"samples", "count"}};
    cp_profile *m = cp_profile_new("roundtrip", types, 1, types[0], 1);
    m->leaf_is_pc = true;
    uintptr_t pcs[] = {(uintptr_t)&http_roundtrip_marker + 1};
    int64_t one = 5;
    assert_int_equal(cp_profile_add(m, pcs, 1, &one, NULL, 0), 0);
    cpprof_writer *w;
    assert_int_equal(cpprof_writer_open_buffer(&w), 0);
    assert_int_equal(cp_proto_write(m, w, CP_PROTO_NO_SYMBOLS), 0);
    const void *data = cpprof_writer_data(w, &foreign.raw_len);
    foreign.raw = malloc(foreign.raw_len);
    memcpy(foreign.raw, data, foreign.raw_len);
    cpprof_writer_close(w);
    cp_profile_free(m);

    assert_int_equal(cpprof_http_handler_new(NULL, &foreign.handler), 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, foreign_access, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, foreign_done, NULL, MHD_OPTION_END);
    assert_non_null(d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u" MOUNT "raw", info->port);
    /* pprof finds no function names, posts the addresses to the symbol
     * endpoint beside the profile's URL, and shows what it answered. */
    char *out = cpt_pprof("-symbolize=remote -top", url);
    if (!strstr(out, "http_roundtrip_marker"))
        fail_msg("pprof did not symbolize through /symbol:\n%s", out);
    free(out);
    MHD_stop_daemon(d);
    cpprof_http_handler_free(foreign.handler);
    free(foreign.raw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_direct_calls),
        cmocka_unit_test(test_heap_delta),
        cmocka_unit_test(test_symbol_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
