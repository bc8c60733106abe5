/*
 * bench/encode/bench_encode.c - encoding speed and size of profile.proto:
 * a profile of 100 k samples over 10 k unique 32-frame stacks, encoded
 * with and without symbolization, before and after gzip.
 *
 * Frames are real code addresses of this program (drawn from its own
 * executable mapping), so symbolization does real DWARF work.  Times are
 * the calling thread's CPU time (robust on a shared machine), best of
 * several runs; "cold" symbolization is the first encode, which fills the
 * symbolizer's cache, "warm" the later ones.
 *
 * Usage: bench_encode [samples] [stacks]   (defaults 100000 10000)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/writer.h"
#include "encode/proto.h"
#include "model/mappings.h"
#include "model/profile.h"

#define DEPTH 32
#define POOL 20000 /* distinct code addresses the stacks are drawn from */
#define RUNS 5

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int count_bytes(void *arg, const void *data, size_t len)
{
    *(uint64_t *)arg += len;
    return 0;
}

/* One encode into a byte-counting sink: seconds, and *bytes. */
static double encode_once(const cp_profile *p, unsigned flags, uint64_t *bytes)
{
    cpprof_writer *w;
    *bytes = 0;
    if (cpprof_writer_open_callback(&w, count_bytes, bytes) != 0)
        exit(1);
    double t0 = cpu_now();
    int rc = cp_proto_write(p, w, flags);
    double t = cpu_now() - t0;
    if (rc != 0 || cpprof_writer_close(w) != 0) {
        fprintf(stderr, "encode failed: %d\n", rc);
        exit(1);
    }
    return t;
}

static uint64_t rng = 88172645463325252ULL;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv)
{
    size_t nsamples = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    size_t nstacks = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
    if (nsamples == 0 || nstacks == 0) {
        fprintf(stderr, "usage: %s [samples>0] [stacks>0]\n", argv[0]);
        return 2;
    }

    /* Code addresses of this executable. */
    cp_mappings *maps;
    if (cp_mappings_snapshot(&maps) != 0)
        return 1;
    const cp_mapping *self = cp_mappings_find(maps, (uintptr_t)&main);
    if (self == NULL) {
        fprintf(stderr, "no mapping for main\n");
        return 1;
    }
    uintptr_t *pool = malloc(POOL * sizeof *pool);
    for (size_t i = 0; i < POOL; i++)
        pool[i] = self->start + 1 + next() % (self->limit - self->start - 1);

    static const cp_value_type types[] = {{"alloc_objects", "count"},
                                          {"alloc_space", "bytes"}};
    cp_value_type pt = {"space", "bytes"};
    double t0 = cpu_now();
    cp_profile *p = cp_profile_new("bench", types, 2, pt, 524288);
    uintptr_t *stacks = malloc(nstacks * DEPTH * sizeof *stacks);
    for (size_t s = 0; s < nstacks; s++)
        for (size_t k = 0; k < DEPTH; k++)
            stacks[s * DEPTH + k] = pool[next() % POOL];
    for (size_t i = 0; i < nsamples; i++) {
        int64_t v[2] = {1 + (int64_t)(i % 7), 1024 * (int64_t)(1 + i % 13)};
        if (cp_profile_add(p, stacks + (i % nstacks) * DEPTH, DEPTH, v, NULL,
                           0) != 0)
            return 1;
    }
    double build = cpu_now() - t0;

    printf("profile: %zu samples, %zu unique %d-frame stacks, %d distinct "
           "addresses in pool; model build %.1f ms\n",
           nsamples, nstacks, DEPTH, POOL, build * 1e3);
    static const struct {
        const char *name;
        unsigned flags;
    } modes[] = {
        {"no symbols, raw proto", CP_PROTO_NO_SYMBOLS | CP_PROTO_NO_GZIP},
        {"no symbols, gzip", CP_PROTO_NO_SYMBOLS},
        {"symbols, raw proto", CP_PROTO_NO_GZIP},
        {"symbols, gzip", 0},
    };
    printf("%-24s %12s %12s %14s %12s\n", "mode", "first ms", "best ms",
           "samples/s", "bytes");
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        uint64_t bytes;
        double first = encode_once(p, modes[m].flags, &bytes), best = first;
        for (int r = 1; r < RUNS; r++) {
            double t = encode_once(p, modes[m].flags, &bytes);
            if (t < best)
                best = t;
        }
        printf("%-24s %12.1f %12.1f %14.0f %12" PRIu64 "\n", modes[m].name,
               first * 1e3, best * 1e3, nsamples / best, bytes);
    }
    cp_profile_free(p);
    free(stacks);
    free(pool);
    cp_mappings_free(maps);
    return 0;
}
