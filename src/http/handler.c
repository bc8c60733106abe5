/*
 * http/handler.c - the /debug/pprof/ endpoints with Go's net/http/pprof
 * behaviour: one function per endpoint, status codes, headers and error
 * strings as Go produces them, independent of any transport.
 *
 * Called by http/server_mhd.c and by programs that mount the endpoints in
 * their own HTTP server (cpprof_http_handle).  A handler is shared by any
 * number of concurrent requests: the only mutable state is the previous
 * model of each delta_* endpoint, under its own lock.  Requests that wait
 * (profile, trace, seconds=) block the calling thread for that long.
 * Never used from a signal handler or an interposed call.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "capture/own_section.h"
#include "core/registry.h"
#include "core/writer.h"
#include "cpprof.h"
#include "encode/proto.h"
#include "http/http_internal.h"
#include "model/profile.h"
#include "model/symbolize.h"

/* The godeltaprof-compatible endpoints: each answers the change since its
 * previous call, so it keeps the model it answered last time. */
enum { DELTA_HEAP, DELTA_MUTEX, DELTA_BLOCK, DELTA_N };

static const struct {
    const char *path;    /* endpoint below the mount point */
    const char *profile; /* registered profile it differences */
} delta_endpoints[DELTA_N] = {
    [DELTA_HEAP] = {"delta_heap", "heap"},
    [DELTA_MUTEX] = {"delta_mutex", "mutex"},
    [DELTA_BLOCK] = {"delta_block", "block"},
};

struct cpprof_http_handler {
    cpprof_http_options opts; /* resolved; strings point into this struct */
    char *token;
    struct {
        pthread_mutex_t lock;
        cp_profile *prev; /* what the last call saw; NULL before it */
    } delta[DELTA_N];
};

/* Profiles that accept seconds= (Go's profileSupportsDelta, by the name
 * the profile is registered under: "goroutine" resolves to "threads"). */
static const char *const delta_capable[] = {
    "allocs", "block", "threads", "goroutine", "heap", "mutex", "threadcreate",
};

/* ------------------------------------------------------------- options */

int cp_http_options_resolve(cpprof_http_options *out,
                            const cpprof_http_options *in)
{
    if (in)
        *out = *in;
    else
        memset(out, 0, sizeof *out);
    if (out->max_seconds < 0 || out->write_timeout_s < 0 ||
        out->idle_timeout_s < 0 || out->connection_limit < 0 ||
        out->thread_pool_size < 0)
        return -EINVAL;
    if (!out->max_seconds)
        out->max_seconds = CP_HTTP_DEFAULT_MAX_SECONDS;
    if (!out->idle_timeout_s)
        out->idle_timeout_s = CP_HTTP_DEFAULT_IDLE_TIMEOUT;
    if (!out->connection_limit)
        out->connection_limit = CP_HTTP_DEFAULT_CONNECTIONS;
    if (!out->thread_pool_size)
        out->thread_pool_size = CP_HTTP_DEFAULT_THREADS;
    if (!out->max_body_bytes)
        out->max_body_bytes = CP_HTTP_DEFAULT_MAX_BODY;
    if (!out->address || !*out->address)
        out->address = CP_HTTP_DEFAULT_ADDRESS;
    return 0;
}

static int handler_new(const cpprof_http_options *opts,
                       cpprof_http_handler **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    cpprof_http_handler *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    int rc = cp_http_options_resolve(&h->opts, opts);
    if (rc) {
        free(h);
        return rc;
    }
    /* Only the token outlives the caller's struct; the transport fields
     * are the server's business. */
    h->opts.address = NULL;
    h->opts.unix_path = NULL;
    if (opts && opts->bearer_token && *opts->bearer_token) {
        h->token = strdup(opts->bearer_token);
        if (!h->token) {
            free(h);
            return -ENOMEM;
        }
    }
    h->opts.bearer_token = h->token;
    for (int i = 0; i < DELTA_N; i++)
        pthread_mutex_init(&h->delta[i].lock, NULL);
    *out = h;
    return 0;
}

/* The handler's memory is the profiler's own (capture/own_section.h):
 * never in the program's heap profile. */
int cpprof_http_handler_new(const cpprof_http_options *opts,
                            cpprof_http_handler **out)
{
    bool was_own = cp_own_begin();
    int rc = handler_new(opts, out);
    cp_own_end(was_own);
    return rc;
}

void cpprof_http_handler_free(cpprof_http_handler *h)
{
    if (!h)
        return;
    for (int i = 0; i < DELTA_N; i++) {
        cp_profile_free(h->delta[i].prev);
        pthread_mutex_destroy(&h->delta[i].lock);
    }
    free(h->token);
    free(h);
}

/* ------------------------------------------------------- query parsing */

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes s[0..n) as a query component into buf; false if malformed
 * (a bad %XX), as Go's url.QueryUnescape reports. */
static bool query_unescape(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hex_digit(s[i + 1]), lo = hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = hi * 16 + lo;
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 < cap)
            buf[o++] = (char)c;
    }
    if (cap)
        buf[o] = '\0';
    return true;
}

bool cp_http_form_value(const char *query, const char *key, char *buf,
                        size_t cap)
{
    if (cap)
        buf[0] = '\0';
    if (!query)
        return false;
    char name[64];
    for (const char *p = query; *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        /* Go skips pairs with a ';' and pairs that do not unescape. */
        bool usable = !memchr(p, ';', len) &&
                      query_unescape(p, klen, name, sizeof name);
        if (usable && strcmp(name, key) == 0) {
            const char *v = eq ? eq + 1 : p + len;
            size_t vlen = (size_t)(p + len - v);
            if (query_unescape(v, vlen, buf, cap))
                return true;
            if (cap)
                buf[0] = '\0';
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return false;
}

/* strconv.ParseInt(s, 10, 64): optional sign, decimal digits, in range. */
static bool go_parse_int(const char *s, int64_t *out)
{
    bool neg = false;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    if (!*s)
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

/* strconv.Atoi, with Go's habit here of treating an error as 0. */
static int64_t go_atoi_or_zero(const char *s)
{
    int64_t v;
    return go_parse_int(s, &v) ? v : 0;
}

/* strconv.ParseFloat(s, 64) for the trace duration; false on error. */
static bool go_parse_float(const char *s, double *out)
{
    if (!*s || *s == ' ' || (*s >= '\t' && *s <= '\r'))
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/* Go's rule for '_' in a base-0 literal: only between digits, or between
 * the base prefix and a digit. */
static bool underscores_ok(const char *s, size_t n)
{
    char saw = '^'; /* '^' start, '0' digit or prefix, '_' underscore, '!' other */
    size_t i = 0;
    bool hex = false;
    if (n >= 2 && s[0] == '0' && strchr("bBoOxX", s[1])) {
        i = 2;
        saw = '0';
        hex = (s[1] | 0x20) == 'x';
    }
    for (; i < n; i++) {
        if ((s[i] >= '0' && s[i] <= '9') || (hex && hex_digit(s[i]) >= 0)) {
            saw = '0';
        } else if (s[i] == '_') {
            if (saw != '0')
                return false;
            saw = '_';
        } else {
            if (saw == '_')
                return false;
            saw = '!';
        }
    }
    return saw != '_';
}

/* strconv.ParseUint(s, 0, 64) on s[0..n): 0x/0o/0b prefixes, a leading
 * 0 for octal, underscores as Go allows them. */
static bool go_parse_uint_base0(const char *s, size_t n, uint64_t *out)
{
    if (n == 0)
        return false;
    const char *s0 = s;
    size_t n0 = n;
    unsigned base = 10;
    if (s[0] == '0') {
        char c = n >= 3 ? (char)(s[1] | 0x20) : 0;
        if (c == 'b' || c == 'o' || c == 'x') {
            base = c == 'b' ? 2 : c == 'o' ? 8 : 16;
            s += 2;
            n -= 2;
        } else {
            base = 8;
            s++;
            n--;
        }
    }
    uint64_t v = 0;
    bool underscores = false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '_') {
            underscores = true;
            continue;
        }
        int d = hex_digit((unsigned char)s[i]);
        if (d < 0 || (unsigned)d >= base)
            return false;
        if (v > (UINT64_MAX - (unsigned)d) / base)
            return false;
        v = v * base + (unsigned)d;
    }
    if (underscores && !underscores_ok(s0, n0))
        return false;
    *out = v;
    return true;
}

/* ------------------------------------------------------------ response */

/*
 * One response in progress, in the manner of Go's ResponseWriter: headers
 * are edited freely until the first body byte (or an explicit status)
 * commits them.
 */
enum { TX_MAX_HEADERS = 8 };

typedef struct http_tx {
    const cpprof_http_response *resp;
    cpprof_http_header hdr[TX_MAX_HEADERS];
    size_t nhdr;
    char disposition[640];
    bool committed;
    int err; /* first error of resp->start/write */
} http_tx;

static void tx_del(http_tx *tx, const char *name)
{
    for (size_t i = 0; i < tx->nhdr; i++)
        if (strcasecmp(tx->hdr[i].name, name) == 0) {
            tx->hdr[i] = tx->hdr[--tx->nhdr];
            return;
        }
}

/* value must outlive the response (a literal or a field of tx). */
static void tx_set(http_tx *tx, const char *name, const char *value)
{
    tx_del(tx, name);
    if (tx->nhdr < TX_MAX_HEADERS)
        tx->hdr[tx->nhdr++] = (cpprof_http_header){name, value};
}

static void tx_set_attachment(http_tx *tx, const char *filename,
                              const char *suffix)
{
    snprintf(tx->disposition, sizeof tx->disposition,
             "attachment; filename=\"%s%s\"", filename, suffix);
    tx_set(tx, "Content-Disposition", tx->disposition);
}

static int tx_commit(http_tx *tx, int status)
{
    if (tx->committed)
        return tx->err;
    tx->committed = true;
    int rc = tx->resp->start(tx->resp->arg, status, tx->hdr, tx->nhdr);
    if (rc && !tx->err)
        tx->err = rc;
    return tx->err;
}

/* cpprof_write_fn for the body: the first byte commits status 200. */
static int tx_write(void *arg, const void *data, size_t len)
{
    http_tx *tx = arg;
    if (!tx->committed && tx_commit(tx, 200))
        return tx->err;
    if (tx->err)
        return tx->err;
    if (len == 0)
        return 0;
    int rc = tx->resp->write(tx->resp->arg, data, len);
    if (rc && !tx->err)
        tx->err = rc < 0 ? rc : -EIO;
    return tx->err;
}

static void tx_text(http_tx *tx, const char *text)
{
    tx_write(tx, text, strlen(text));
}

/* Go's serveError: a plain-text message pprof shows to its user (the
 * X-Go-Pprof header tells it to).  Too late once the body has begun. */
static void serve_error(http_tx *tx, int status, const char *msg)
{
    if (tx->committed)
        return;
    tx_set(tx, "Content-Type", "text/plain; charset=utf-8");
    tx_set(tx, "X-Go-Pprof", "1");
    tx_del(tx, "Content-Disposition");
    tx_commit(tx, status);
    tx_text(tx, msg);
    tx_text(tx, "\n");
}

static void serve_errorf(http_tx *tx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void serve_errorf(http_tx *tx, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    serve_error(tx, status, msg);
}

/* A writer whose bytes become the body.  NULL on allocation failure
 * (after answering 500). */
static cpprof_writer *tx_writer(http_tx *tx)
{
    cpprof_writer *w = NULL;
    if (cpprof_writer_open_callback(&w, tx_write, tx) != 0) {
        serve_error(tx, 500, "out of memory");
        return NULL;
    }
    return w;
}

/* Sleeps up to ms; true when the client went away first (Go's request
 * context being done). */
static bool tx_wait(http_tx *tx, uint64_t ms)
{
    while (ms > 0) {
        unsigned slice = ms > 60000 ? 60000 : (unsigned)ms;
        if (tx->resp->wait) {
            if (tx->resp->wait(tx->resp->arg, slice))
                return true;
        } else {
            struct timespec ts = {slice / 1000, (long)(slice % 1000) * 1000000};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
        }
        ms -= slice;
    }
    return false;
}

static int64_t now_nanos(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The duration checks every waiting endpoint shares (Go's
 * durationExceedsWriteTimeout, plus our cap).  True if it answered. */
static bool duration_refused(cpprof_http_handler *h, http_tx *tx,
                             double seconds)
{
    if (h->opts.write_timeout_s && seconds >= h->opts.write_timeout_s) {
        serve_error(tx, 400, "profile duration exceeds server's WriteTimeout");
        return true;
    }
    if (!(seconds <= h->opts.max_seconds)) {
        serve_errorf(tx, 400,
                     "profile duration exceeds server's limit of %d seconds",
                     h->opts.max_seconds);
        return true;
    }
    return false;
}

/* ----------------------------------------------------------- endpoints */

static void serve_cmdline(cpprof_http_handler *h, http_tx *tx)
{
    if (h->opts.disable_cmdline) {
        serve_error(tx, 403, "cmdline is disabled on this server");
        return;
    }
    tx_set(tx, "Content-Type", "text/plain; charset=utf-8");
    /* /proc has the arguments NUL-terminated; Go joins them with NULs,
     * so the last terminator goes. */
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        serve_error(tx, 500, "could not read the command line");
        return;
    }
    char buf[4096];
    bool pending_nul = false;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        if (n <= 0)
            continue;
        if (pending_nul)
            tx_write(tx, "", 1);
        pending_nul = buf[n - 1] == '\0';
        tx_write(tx, buf, (size_t)(pending_nul ? n - 1 : n));
    }
    close(fd);
    tx_commit(tx, 200); /* an empty command line is still an answer */
}

static void serve_cpu_profile(cpprof_http_handler *h, http_tx *tx,
                              const char *query)
{
    char arg[64];
    int64_t seconds;
    cp_http_form_value(query, "seconds", arg, sizeof arg);
    if (!go_parse_int(arg, &seconds) || seconds <= 0)
        seconds = 30;
    if (duration_refused(h, tx, (double)seconds))
        return;
    /* Set as Go does, before starting: the profiler may write at once. */
    tx_set(tx, "Content-Type", "application/octet-stream");
    tx_set_attachment(tx, "profile", "");
    cpprof_writer *w = tx_writer(tx);
    if (!w)
        return;
    int rc = cpprof_cpu_start(w);
    if (rc) {
        cpprof_writer_close(w);
        if (rc == -ENOSYS)
            serve_error(tx, 501, "Could not enable CPU profiling: CPU "
                                 "profiling is not available in this build");
        else if (rc == -EBUSY)
            serve_error(tx, 500, "Could not enable CPU profiling: cpu "
                                 "profiling already in use");
        else
            serve_errorf(tx, 500, "Could not enable CPU profiling: %s",
                         cpprof_strerror(rc));
        return;
    }
    /* A client that leaves early ends the profile early (Go's sleep
     * returns on the request context). */
    tx_wait(tx, (uint64_t)seconds * 1000);
    rc = cpprof_cpu_stop();
    int wrc = cpprof_writer_close(w);
    if (!rc)
        rc = wrc;
    if (rc && !tx->committed)
        serve_errorf(tx, 500, "could not write CPU profile: %s",
                     cpprof_strerror(rc));
    tx_commit(tx, 200);
}

static void serve_trace(cpprof_http_handler *h, http_tx *tx,
                        const char *query)
{
    char arg[64];
    double seconds;
    cp_http_form_value(query, "seconds", arg, sizeof arg);
    if (!go_parse_float(arg, &seconds) || !(seconds > 0))
        seconds = 1;
    if (duration_refused(h, tx, seconds))
        return;
    tx_set(tx, "Content-Type", "application/octet-stream");
    tx_set_attachment(tx, "trace", "");
    cpprof_writer *w = tx_writer(tx);
    if (!w)
        return;
    int rc = cpprof_trace_start(w);
    if (rc) {
        cpprof_writer_close(w);
        if (rc == -ENOSYS)
            serve_error(tx, 501, "Could not enable tracing: execution "
                                 "tracing is not available in this build");
        else if (rc == -EBUSY)
            serve_error(tx, 500, "Could not enable tracing: tracing is "
                                 "already enabled");
        else
            serve_errorf(tx, 500, "Could not enable tracing: %s",
                         cpprof_strerror(rc));
        return;
    }
    tx_wait(tx, (uint64_t)llround(seconds * 1000));
    rc = cpprof_trace_stop();
    int wrc = cpprof_writer_close(w);
    if (!rc)
        rc = wrc;
    if (rc && !tx->committed)
        serve_errorf(tx, 500, "could not write trace: %s", cpprof_strerror(rc));
    tx_commit(tx, 200);
}

/* Go's Symbol: '+'-separated addresses from the POST body or the raw
 * query; each that parses and names a function gets "0xPC name". */
static void serve_symbol(cpprof_http_handler *h, http_tx *tx,
                         const cpprof_http_request *req)
{
    tx_set(tx, "Content-Type", "text/plain; charset=utf-8");
    const char *in;
    size_t n;
    if (req->method && strcmp(req->method, "POST") == 0) {
        in = req->body ? req->body : "";
        n = req->body ? req->body_len : 0;
    } else {
        in = req->query ? req->query : "";
        n = strlen(in);
    }
    cpprof_writer *w = tx_writer(tx);
    if (!w)
        return;
    /* pprof only asks whether symbols exist at all. */
    cp_writer_printf(w, "num_symbols: 1\n");
    cp_symbolizer *sym = cp_symbolizer_acquire();
    for (size_t i = 0; i <= n;) {
        const char *tok = in + i;
        const char *plus = memchr(tok, '+', n - i);
        size_t len = plus ? (size_t)(plus - tok) : n - i;
        uint64_t pc;
        if (sym && go_parse_uint_base0(tok, len, &pc) && pc != 0) {
            cp_frame fr[16];
            size_t nf = cp_symbolize(sym, (uintptr_t)pc, fr, 16);
            const char *name = nf ? (fr[0].function ? fr[0].function
                                                    : fr[0].system_name)
                                  : NULL;
            if (name)
                cp_writer_printf(w, "%#" PRIx64 " %s\n", pc, name);
        }
        if (!plus)
            break;
        i += len + 1;
    }
    if (sym)
        cp_symbolizer_release(sym);
    cpprof_writer_close(w);
    tx_commit(tx, 200);
}

static bool supports_delta(const char *name)
{
    for (size_t i = 0; i < sizeof delta_capable / sizeof *delta_capable; i++)
        if (strcmp(name, delta_capable[i]) == 0)
            return true;
    return false;
}

/* Values accumulated over time (subtracted in a delta).  A Go-delta
 * profile whose sampler declares none (the thread count) is a level that
 * Go subtracts anyway. */
static uint32_t cumulative_mask(cpprof_profile *p)
{
    const cp_builtin_ops *ops = cp_registry_builtin(p);
    uint32_t mask = ops ? ops->delta_cumulative_mask : 0;
    return mask ? mask : UINT32_MAX;
}

/* Builds p's model now, stamped with the collection time.  Answers the
 * error itself (false) when it fails. */
static bool collect(http_tx *tx, cpprof_profile *p, cp_profile **out)
{
    int64_t t = now_nanos();
    int rc = cp_registry_build(p, out);
    if (rc == -ENOSYS) {
        serve_errorf(tx, 501, "profile %s is not available in this build",
                     cpprof_profile_name(p));
        return false;
    }
    if (rc) {
        serve_error(tx, 500, "failed to collect profile");
        return false;
    }
    if (!(*out)->time_nanos)
        (*out)->time_nanos = t;
    return true;
}

static void write_model(http_tx *tx, const cp_profile *m)
{
    cpprof_writer *w = tx_writer(tx);
    if (!w)
        return;
    int rc = cp_proto_write(m, w, 0);
    int wrc = cpprof_writer_close(w);
    if (!rc)
        rc = wrc;
    if (rc && !tx->committed)
        serve_errorf(tx, 500, "could not encode profile: %s",
                     cpprof_strerror(rc));
}

/* NAME?seconds=N: the change over the next N seconds, computed on the
 * models before encoding (Go decodes and merges two protos instead). */
static void serve_delta(cpprof_http_handler *h, http_tx *tx,
                        cpprof_profile *p, const char *name,
                        const char *query, const char *seconds_arg)
{
    int64_t seconds;
    if (!go_parse_int(seconds_arg, &seconds) || seconds <= 0) {
        serve_error(tx, 400, "invalid value for \"seconds\" - must be a "
                             "positive integer");
        return;
    }
    if (!supports_delta(cpprof_profile_name(p))) {
        serve_error(tx, 400, "\"seconds\" parameter is not supported for "
                             "this profile type");
        return;
    }
    if (duration_refused(h, tx, (double)seconds))
        return;
    char arg[64];
    cp_http_form_value(query, "debug", arg, sizeof arg);
    if (go_atoi_or_zero(arg) != 0) {
        serve_error(tx, 400, "seconds and debug params are incompatible");
        return;
    }
    cp_profile *p0 = NULL, *p1 = NULL;
    if (!collect(tx, p, &p0))
        return;
    if (tx_wait(tx, (uint64_t)seconds * 1000)) {
        /* Go answers with the context's error; nobody is listening. */
        serve_error(tx, 500, "context canceled");
        goto out;
    }
    if (!collect(tx, p, &p1))
        goto out;
    if (cp_profile_subtract(p1, p0, cumulative_mask(p)) != 0) {
        serve_error(tx, 500, "failed to compute delta");
        goto out;
    }
    p1->duration_nanos = p1->time_nanos - p0->time_nanos;
    p1->time_nanos = p0->time_nanos;
    tx_set(tx, "Content-Type", "application/octet-stream");
    tx_set_attachment(tx, name, "-delta");
    write_model(tx, p1);
out:
    cp_profile_free(p0);
    cp_profile_free(p1);
}

/* A deep copy of m through the model's own API (the delta endpoints keep
 * the unmodified model for their next call). */
static cp_profile *model_copy(const cp_profile *m)
{
    cp_profile *c = cp_profile_new(m->name, m->types, m->ntypes,
                                   m->period_type, m->period);
    if (!c)
        return NULL;
    c->time_nanos = m->time_nanos;
    c->duration_nanos = m->duration_nanos;
    c->leaf_is_pc = m->leaf_is_pc;
    int rc = m->default_type ? cp_profile_set_default_type(c, m->default_type)
                             : 0;
    for (size_t i = 0; !rc && i < m->ncomments; i++)
        rc = cp_profile_add_comment(c, m->comments[i]);
    for (size_t i = 0; !rc && i < m->nsamples; i++) {
        const cp_sample *s = &m->samples[i];
        rc = cp_profile_add(c, s->pcs, s->depth, s->values, s->labels,
                            s->nlabels);
    }
    if (rc) {
        cp_profile_free(c);
        return NULL;
    }
    return c;
}

/* godeltaprof's delta_heap / delta_mutex / delta_block: the change since
 * the previous call of the same endpoint (everything on the first). */
static void serve_godelta(cpprof_http_handler *h, http_tx *tx, int which)
{
    cpprof_profile *p = cpprof_profile_lookup(delta_endpoints[which].profile);
    if (!p) {
        serve_error(tx, 404, "Unknown profile");
        return;
    }
    pthread_mutex_lock(&h->delta[which].lock);
    cp_profile *cur = NULL, *out = NULL;
    if (!collect(tx, p, &cur))
        goto unlock;
    out = model_copy(cur);
    if (!out) {
        serve_error(tx, 500, "failed to compute delta");
        goto unlock;
    }
    cp_profile *prev = h->delta[which].prev;
    if (prev) {
        if (cp_profile_subtract(out, prev, cumulative_mask(p)) != 0) {
            serve_error(tx, 500, "failed to compute delta");
            goto unlock;
        }
        out->duration_nanos = out->time_nanos - prev->time_nanos;
        out->time_nanos = prev->time_nanos;
    }
    cp_profile_free(prev);
    h->delta[which].prev = cur;
    cur = NULL;
    tx_set(tx, "Content-Type", "application/octet-stream");
    tx_set_attachment(tx, delta_endpoints[which].path, "");
    write_model(tx, out);
unlock:
    pthread_mutex_unlock(&h->delta[which].lock);
    cp_profile_free(cur);
    cp_profile_free(out);
}

static int write_level(http_tx *tx, cpprof_profile *p, int debug)
{
    cpprof_writer *w = tx_writer(tx);
    if (!w)
        return -ENOMEM;
    int rc = cpprof_profile_write(p, w, debug);
    int wrc = cpprof_writer_close(w);
    return rc ? rc : wrc;
}

/* Go's handler(name).ServeHTTP: one registered profile. */
static void serve_profile(cpprof_http_handler *h, http_tx *tx,
                          const char *name, const char *query)
{
    cpprof_profile *p = cpprof_profile_lookup(name);
    if (!p) {
        serve_error(tx, 404, "Unknown profile");
        return;
    }
    char arg[64];
    if (cp_http_form_value(query, "seconds", arg, sizeof arg) && *arg) {
        serve_delta(h, tx, p, name, query, arg);
        return;
    }
    /* gc=1 is accepted and means nothing: there is no collector to run. */
    cp_http_form_value(query, "debug", arg, sizeof arg);
    int64_t debug64 = go_atoi_or_zero(arg);
    int debug = debug64 > 1000 ? 1000 : debug64 < -1000 ? -1000 : (int)debug64;
    if (debug != 0) {
        tx_set(tx, "Content-Type", "text/plain; charset=utf-8");
    } else {
        tx_set(tx, "Content-Type", "application/octet-stream");
        tx_set_attachment(tx, name, "");
    }
    /* Go's writers treat an unknown level as the highest they know; ours
     * report -EINVAL, so step down to the levels every profile has. */
    int rc = write_level(tx, p, debug);
    if (rc == -EINVAL && !tx->committed && debug > 2)
        rc = write_level(tx, p, 2);
    if (rc == -EINVAL && !tx->committed && debug > 1)
        rc = write_level(tx, p, 1);
    if (rc == -ENOSYS && !tx->committed)
        serve_errorf(tx, 501, "profile %s is not available in this build",
                     cpprof_profile_name(p));
    else if (rc && !tx->committed)
        serve_errorf(tx, 500, "could not write profile %s: %s", name,
                     cpprof_strerror(rc));
    tx_commit(tx, 200);
}

/* ---------------------------------------------------------------- index */

typedef struct index_entry {
    const char *name;
    const char *desc;
    int64_t count;
} index_entry;

static int compare_entries(const void *a, const void *b)
{
    return strcmp(((const index_entry *)a)->name,
                  ((const index_entry *)b)->name);
}

static void write_html_escaped(cpprof_writer *w, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': cp_writer_printf(w, "&amp;"); break;
        case '<': cp_writer_printf(w, "&lt;"); break;
        case '>': cp_writer_printf(w, "&gt;"); break;
        case '"': cp_writer_printf(w, "&#34;"); break;
        case '\'': cp_writer_printf(w, "&#39;"); break;
        default: cp_writer_write(w, s, 1);
        }
    }
}

/* A profile name as a relative URL path (percent-encoding what is not
 * plainly safe, so the href needs no HTML escaping either). */
static void write_url_path(cpprof_writer *w, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || strchr("-._~/", c))
            cp_writer_write(w, s, 1);
        else
            cp_writer_printf(w, "%%%02X", c);
    }
}

static void serve_index(cpprof_http_handler *h, http_tx *tx)
{
    tx_set(tx, "Content-Type", "text/html; charset=utf-8");
    size_t n = cpprof_profile_list(NULL, 0);
    cpprof_profile **ps = calloc(n + 1, sizeof *ps);
    index_entry *e = calloc(n + 3, sizeof *e);
    if (!ps || !e) {
        free(ps);
        free(e);
        serve_error(tx, 500, "out of memory");
        return;
    }
    n = cpprof_profile_list(ps, n);
    size_t ne = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t c = cpprof_profile_count(ps[i]);
        e[ne++] = (index_entry){cpprof_profile_name(ps[i]),
                                cp_registry_description(ps[i]),
                                c > 0 ? c : 0};
    }
    /* The endpoints that are not registered profiles, as Go lists them. */
    if (!h->opts.disable_cmdline)
        e[ne++] = (index_entry){"cmdline", "The command line of this "
                                "program, its arguments separated by NUL "
                                "bytes.", 0};
    e[ne++] = (index_entry){"profile", "A CPU profile over the number of "
                            "seconds given in the seconds GET parameter "
                            "(30 by default); read it with go tool pprof.", 0};
    e[ne++] = (index_entry){"trace", "An execution trace over the number of "
                            "seconds given in the seconds GET parameter "
                            "(1 by default).", 0};
    qsort(e, ne, sizeof *e, compare_entries);

    cpprof_writer *w = tx_writer(tx);
    if (w) {
        cp_writer_printf(w,
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>/debug/pprof/</title>\n<style>\n"
            ".profile-name { display: inline-block; width: 7rem; }\n"
            "</style>\n</head>\n<body>\n/debug/pprof/<br>\n<br>\n"
            "Profiles in this process:\n<table>\n"
            "<thead><td>Count</td><td>Profile</td></thead>\n");
        for (size_t i = 0; i < ne; i++) {
            cp_writer_printf(w, "<tr><td>%" PRId64 "</td><td><a href='",
                             e[i].count);
            write_url_path(w, e[i].name);
            cp_writer_printf(w, "?debug=1'>");
            write_html_escaped(w, e[i].name);
            cp_writer_printf(w, "</a></td></tr>\n");
        }
        cp_writer_printf(w, "</table>\n<a href=\"goroutine?debug=2\">full "
                            "thread stack dump</a>\n<br/>\n<p>\n"
                            "About each profile:\n<ul>\n");
        for (size_t i = 0; i < ne; i++) {
            cp_writer_printf(w, "<li><div class=profile-name>");
            write_html_escaped(w, e[i].name);
            cp_writer_printf(w, ": </div> ");
            write_html_escaped(w, e[i].desc ? e[i].desc : "");
            cp_writer_printf(w, "</li>\n");
        }
        cp_writer_printf(w, "</ul>\n</p>\n</body>\n</html>\n");
        cpprof_writer_close(w);
    }
    free(ps);
    free(e);
    tx_commit(tx, 200);
}

/* ------------------------------------------------------------ dispatch */

/* Constant-time comparison of the Authorization value with the token. */
static bool authorized(const cpprof_http_handler *h, const char *auth)
{
    if (!h->token)
        return true;
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    const char *got = auth + 7;
    while (*got == ' ')
        got++;
    size_t glen = strlen(got), tlen = strlen(h->token);
    unsigned char diff = glen != tlen;
    for (size_t i = 0; i < tlen; i++)
        diff |= (unsigned char)(h->token[i] ^ (i < glen ? got[i] : 0));
    return diff == 0;
}

static const char *relative_path(const cpprof_http_request *req)
{
    const char *path = req->path ? req->path : "";
    while (*path == '/')
        path++;
    return path;
}

bool cpprof_http_request_waits(const cpprof_http_request *req)
{
    if (!req)
        return false;
    const char *path = relative_path(req);
    if (strcmp(path, "profile") == 0 || strcmp(path, "trace") == 0)
        return true;
    char arg[8];
    return strcmp(path, "cmdline") != 0 && strcmp(path, "symbol") != 0 &&
           cp_http_form_value(req->query, "seconds", arg, sizeof arg) && *arg;
}

int cpprof_http_handle(cpprof_http_handler *h, const cpprof_http_request *req,
                       const cpprof_http_response *resp)
{
    if (!h || !req || !resp || !resp->start || !resp->write)
        return -EINVAL;
    http_tx tx = {.resp = resp};
    tx_set(&tx, "X-Content-Type-Options", "nosniff");
    const char *path = relative_path(req);
    const char *query = req->query;

    if (!authorized(h, req->authorization)) {
        tx_set(&tx, "WWW-Authenticate", "Bearer realm=\"cpprof\"");
        serve_error(&tx, 401, "Unauthorized");
    } else if (req->body_len > h->opts.max_body_bytes) {
        serve_error(&tx, 413, "request body too large");
    } else if (*path == '\0') {
        serve_index(h, &tx);
    } else if (strcmp(path, "cmdline") == 0) {
        serve_cmdline(h, &tx);
    } else if (strcmp(path, "profile") == 0) {
        serve_cpu_profile(h, &tx, query);
    } else if (strcmp(path, "symbol") == 0) {
        serve_symbol(h, &tx, req);
    } else if (strcmp(path, "trace") == 0) {
        serve_trace(h, &tx, query);
    } else {
        int which = -1;
        for (int i = 0; i < DELTA_N; i++)
            if (strcmp(path, delta_endpoints[i].path) == 0)
                which = i;
        if (which >= 0)
            serve_godelta(h, &tx, which);
        else
            serve_profile(h, &tx, path, query);
    }
    tx_commit(&tx, 200);
    return tx.err;
}
