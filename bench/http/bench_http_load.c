/*
 * bench/http/bench_http_load.c - load on the /debug/pprof/ server: C
 * concurrent keep-alive clients, each sending R requests alternating
 * between the index and the heap profile (and, as a baseline, cmdline),
 * while a worker thread keeps allocating.  Reports errors and latency
 * percentiles per endpoint.
 *
 * Usage: bench_http_load [CLIENTS [REQUESTS [URL_BASE]]]
 *   defaults 64 200; without URL_BASE it starts libcpprof's server on a
 *   loopback port in-process; with one (e.g. http://127.0.0.1:6060) it
 *   loads that server instead (a Go net/http/pprof peer, for instance).
 * Exit status 1 if any request failed.  Benchmark-only code.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cpprof.h"

enum { EP_INDEX, EP_HEAP, EP_CMDLINE, EP_N };
static const char *const ep_path[EP_N] = {"/debug/pprof/", "/debug/pprof/heap",
                                          "/debug/pprof/cmdline"};

static struct {
    char host[64];
    int port;
    int requests;
    atomic_int errors;
    atomic_int stop_churn;
    double *lat[EP_N]; /* seconds, one slot per request */
    atomic_int nlat[EP_N];
} bench;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)bench.port)};
    inet_pton(AF_INET, bench.host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One keep-alive request; 0 on a 200 with a complete body. */
static int request(int fd, const char *path, char *buf, size_t cap)
{
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, bench.host);
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    size_t len = 0;
    char *body = NULL;
    long clen = -1;
    bool chunked = false;
    for (;;) {
        if (len == cap)
            return -1;
        ssize_t got = recv(fd, buf + len, cap - len, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        len += (size_t)got;
        if (!body) {
            char *end = memmem(buf, len, "\r\n\r\n", 4);
            if (!end)
                continue;
            body = end + 4;
            if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
                return -1;
            char *cl = memmem(buf, (size_t)(end - buf), "Content-Length:", 15);
            if (!cl)
                cl = memmem(buf, (size_t)(end - buf), "content-length:", 15);
            chunked = !cl && memmem(buf, (size_t)(end - buf), "chunked", 7);
            if (!cl && !chunked)
                return -1;
            clen = cl ? strtol(cl + 15, NULL, 10) : 0;
        }
        /* Go's server chunks bodies it could not buffer whole. */
        if (chunked ? len >= 5 && memcmp(buf + len - 5, "0\r\n\r\n", 5) == 0
                    : (long)(buf + len - body) >= clen)
            return 0;
    }
}

static void *client(void *arg)
{
    size_t cap = 16 << 20;
    char *buf = malloc(cap);
    int fd = dial();
    for (int i = 0; i < bench.requests; i++) {
        int ep = (intptr_t)arg == 0 && i % 10 == 0 ? EP_CMDLINE : i % 2;
        double t0 = now();
        int rc = fd >= 0 ? request(fd, ep_path[ep], buf, cap) : -1;
        double dt = now() - t0;
        if (rc != 0) {
            atomic_fetch_add(&bench.errors, 1);
            if (fd >= 0)
                close(fd);
            fd = dial(); /* a fresh connection for the next one */
            continue;
        }
        bench.lat[ep][atomic_fetch_add(&bench.nlat[ep], 1)] = dt;
    }
    if (fd >= 0)
        close(fd);
    free(buf);
    return NULL;
}

/* "While the program runs": allocations the heap profile keeps seeing. */
__attribute__((noinline)) static void *churn(void *arg)
{
    void *keep[256] = {0};
    unsigned x = 1;
    while (!atomic_load(&bench.stop_churn)) {
        x = x * 1103515245 + 12345;
        unsigned i = (x >> 8) & 255;
        free(keep[i]);
        keep[i] = malloc(64 + (x >> 16) % 8192);
        if ((x & 1023) == 0)
            usleep(100);
    }
    for (int i = 0; i < 256; i++)
        free(keep[i]);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    if (n == 0)
        return 0;
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    int clients = argc > 1 ? atoi(argv[1]) : 64;
    bench.requests = argc > 2 ? atoi(argv[2]) : 200;
    if (clients <= 0 || bench.requests <= 0) {
        fprintf(stderr, "usage: %s [CLIENTS [REQUESTS [URL_BASE]]]\n", argv[0]);
        return 2;
    }
    cpprof_http_server *srv = NULL;
    snprintf(bench.host, sizeof bench.host, "127.0.0.1");
    if (argc > 3) {
        if (sscanf(argv[3], "http://%63[^:]:%d", bench.host, &bench.port) != 2) {
            fprintf(stderr, "URL_BASE must be http://IP:PORT\n");
            return 2;
        }
    } else {
        /* Room for every client plus a few, threads as the default. */
        cpprof_http_options o = {.address = "127.0.0.1:0",
                                 .connection_limit = clients + 8};
        int rc = cpprof_http_server_start(&o, &srv);
        if (rc) {
            fprintf(stderr, "server: %s\n", cpprof_strerror(rc));
            return 1;
        }
        bench.port = cpprof_http_server_port(srv);
    }
    for (int e = 0; e < EP_N; e++)
        bench.lat[e] = calloc((size_t)clients * (size_t)bench.requests, sizeof(double));
    pthread_t ch, *t = calloc((size_t)clients, sizeof *t);
    pthread_create(&ch, NULL, churn, NULL);
    double t0 = now();
    for (intptr_t i = 0; i < clients; i++)
        pthread_create(&t[i], NULL, client, (void *)i);
    for (int i = 0; i < clients; i++)
        pthread_join(t[i], NULL);
    double wall = now() - t0;
    atomic_store(&bench.stop_churn, 1);
    pthread_join(ch, NULL);

    int total = 0;
    printf("clients %d x %d requests, %.2f s, %d errors\n", clients,
           bench.requests, wall, atomic_load(&bench.errors));
    printf("%-9s %7s %9s %9s %9s %9s\n", "endpoint", "count", "p50 ms",
           "p90 ms", "p99 ms", "max ms");
    for (int e = 0; e < EP_N; e++) {
        int n = atomic_load(&bench.nlat[e]);
        total += n;
        qsort(bench.lat[e], (size_t)n, sizeof(double), cmp_double);
        printf("%-9s %7d %9.2f %9.2f %9.2f %9.2f\n", ep_path[e] + 13, n,
               pct(bench.lat[e], n, 0.5) * 1e3, pct(bench.lat[e], n, 0.9) * 1e3,
               pct(bench.lat[e], n, 0.99) * 1e3,
               n ? bench.lat[e][n - 1] * 1e3 : 0);
        free(bench.lat[e]);
    }
    printf("throughput %.0f requests/s\n", total / wall);
    cpprof_http_server_stop(srv);
    free(t);
    return atomic_load(&bench.errors) ? 1 : 0;
}
