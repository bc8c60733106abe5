/*
 * profiles/heap.c - the "heap" and "allocs" profiles: turns the heap
 * sampler's buckets (capture/heap_sampler.h) into the profile model, and
 * writes Go's legacy heap text for debug >= 1.  Also the public rate API
 * of <cpprof/heap.h>.
 *
 * Called by the registry (core/registry.c) through cp_heap_ops and
 * cp_allocs_ops, from any thread in normal context; never from a signal
 * handler or the allocator.  Reading the buckets is lock-free and runs
 * concurrently with allocating threads: each counter is read atomically,
 * so a record may be a few allocations behind its neighbours, never torn.
 *
 * Semantics (Go's, see docs/heap.md): per (stack, size) record, alloc_*
 * counts every sampled allocation ever made and inuse_* those not yet
 * freed ("live" = allocated and not freed; there is no GC).  debug=0
 * values are unbiased as Go's scaleHeapSample does, by
 * 1/(1-exp(-size/rate)); debug=1 prints the raw sampled counts with
 * "heap/2*rate" in the header, which is what pprof expects from the
 * legacy format.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "capture/heap_sampler.h"
#include "capture/unwind_signal.h"
#include "core/writer.h"
#include "cpprof/heap.h"
#include "encode/text.h"
#include "model/stack_table.h"
#include "profiles/builtin.h"

/* One record: a bucket's counters read once. */
typedef struct heap_rec {
    uint32_t stack_id;
    uint64_t size;
    uint64_t allocs, alloc_bytes, frees, free_bytes;
} heap_rec;

static int64_t rec_inuse_bytes(const heap_rec *r)
{
    return (int64_t)(r->alloc_bytes - r->free_bytes);
}

/* Reads every used bucket.  *out is malloc'd (NULL when empty); with
 * out NULL the records are only counted (no allocation). */
static int snapshot(heap_rec **out, size_t *n)
{
    if (out)
        *out = NULL;
    *n = 0;
    size_t slots = cp_heap_bucket_slots(), cap = 0;
    heap_rec *v = NULL;
    for (size_t i = 0; i < slots; i++) {
        const cp_heap_bucket *b = cp_heap_bucket_at(i);
        uint64_t key = atomic_load_explicit(&b->key, memory_order_acquire);
        if (key == 0)
            continue;
        heap_rec r = {
            .stack_id = (uint32_t)(key >> 32) - 1,
            .size = key & 0xffffffffu,
            /* frees before allocs: a free never precedes its alloc's
             * count, so reading in this order keeps inuse >= 0. */
            .frees = atomic_load_explicit(&b->frees, memory_order_acquire),
            .free_bytes = atomic_load_explicit(&b->free_bytes,
                                               memory_order_acquire),
        };
        r.allocs = atomic_load_explicit(&b->allocs, memory_order_acquire);
        r.alloc_bytes = atomic_load_explicit(&b->alloc_bytes,
                                             memory_order_acquire);
        if (r.allocs == 0)
            continue;
        if (r.frees > r.allocs)
            r.frees = r.allocs;
        if (r.free_bytes > r.alloc_bytes)
            r.free_bytes = r.alloc_bytes;
        if (!out) {
            (*n)++;
            continue;
        }
        if (*n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            heap_rec *nv = realloc(v, ncap * sizeof *v);
            if (!nv) {
                free(v);
                return -ENOMEM;
            }
            v = nv;
            cap = ncap;
        }
        v[(*n)++] = r;
    }
    if (out)
        *out = v;
    return 0;
}

/* Go's scaleHeapSample: undoes the bias of sampling with mean rate. */
static void scale(uint64_t count, uint64_t size, int64_t rate, int64_t *c,
                  int64_t *s)
{
    if (count == 0 || size == 0) {
        *c = *s = 0;
        return;
    }
    if (rate <= 1) {
        *c = (int64_t)count;
        *s = (int64_t)size;
        return;
    }
    double avg = (double)size / (double)count;
    double k = 1 / (1 - exp(-avg / (double)rate));
    *c = (int64_t)((double)count * k);
    *s = (int64_t)((double)size * k);
}

static int heap_build_common(cp_profile **out, const char *name,
                             const char *default_type)
{
    *out = NULL;
    if (!cp_heap_interposed())
        return -ENOSYS;
    static const cp_value_type types[] = {
        {"alloc_objects", "count"},
        {"alloc_space", "bytes"},
        {"inuse_objects", "count"},
        {"inuse_space", "bytes"},
    };
    int64_t rate = cp_heap_rate_get();
    /* Keep the unwinder's view of loaded objects current for the stacks
     * recorded from now on (normal context: may take the loader lock). */
    cp_unwind_refresh();
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    cp_profile *p = cp_profile_new(name, types, 4,
                                   (cp_value_type){"space", "bytes"}, rate);
    if (!p)
        return -ENOMEM;
    p->time_nanos = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    p->leaf_is_pc = false;
    int err = 0;
    if (default_type)
        err = cp_profile_set_default_type(p, default_type);
    uint64_t dropped = cp_heap_dropped();
    if (!err && dropped) {
        char note[96];
        snprintf(note, sizeof note,
                 "cpprof: %" PRIu64 " heap samples dropped (tables full)",
                 dropped);
        err = cp_profile_add_comment(p, note);
    }
    heap_rec *recs = NULL;
    size_t n = 0;
    if (!err)
        err = snapshot(&recs, &n);
    cp_stack_table *st = cp_heap_stacks();
    for (size_t i = 0; i < n && !err && st; i++) {
        const heap_rec *r = &recs[i];
        const uintptr_t *pcs;
        size_t depth = cp_stack_table_get(st, r->stack_id, &pcs);
        int64_t v[4];
        scale(r->allocs, r->alloc_bytes, rate, &v[0], &v[1]);
        scale(r->allocs - r->frees, r->alloc_bytes - r->free_bytes, rate,
              &v[2], &v[3]);
        cp_label label = {.key = "bytes",
                          .num = (int64_t)(r->alloc_bytes / r->allocs)};
        err = cp_profile_add(p, pcs, depth, v, &label, label.num ? 1 : 0);
    }
    free(recs);
    if (err) {
        cp_profile_free(p);
        return err;
    }
    *out = p;
    return 0;
}

static int heap_build(cp_profile **out)
{
    return heap_build_common(out, "heap", NULL);
}

static int allocs_build(cp_profile **out)
{
    return heap_build_common(out, "allocs", "alloc_space");
}

static int64_t heap_count(void)
{
    if (!cp_heap_interposed())
        return -ENOSYS;
    size_t n;
    int err = snapshot(NULL, &n);
    return err ? err : (int64_t)n;
}

static int cmp_inuse(const void *a, const void *b)
{
    const heap_rec *x = a, *y = b;
    int64_t ix = rec_inuse_bytes(x), iy = rec_inuse_bytes(y);
    if (ix != iy)
        return ix > iy ? -1 : 1;
    if (x->stack_id != y->stack_id)
        return x->stack_id < y->stack_id ? -1 : 1;
    return x->size < y->size ? -1 : x->size > y->size;
}

/* The allocator's own statistics and the process's memory, as '#' lines
 * (Go prints runtime.MemStats there; pprof ignores them). */
static void write_mem_stats(cpprof_writer *w)
{
    struct mallinfo2 mi = mallinfo2();
    cp_writer_printf(w, "\n# mallinfo2\n");
    cp_writer_printf(w, "# Arena = %zu\n", mi.arena);
    cp_writer_printf(w, "# Ordblks = %zu\n", mi.ordblks);
    cp_writer_printf(w, "# Smblks = %zu\n", mi.smblks);
    cp_writer_printf(w, "# Hblks = %zu\n", mi.hblks);
    cp_writer_printf(w, "# Hblkhd = %zu\n", mi.hblkhd);
    cp_writer_printf(w, "# Fsmblks = %zu\n", mi.fsmblks);
    cp_writer_printf(w, "# Uordblks = %zu\n", mi.uordblks);
    cp_writer_printf(w, "# Fordblks = %zu\n", mi.fordblks);
    cp_writer_printf(w, "# Keepcost = %zu\n", mi.keepcost);
    cp_writer_printf(w, "# InUse = %zu\n", mi.uordblks + mi.hblkhd);
    long page = sysconf(_SC_PAGESIZE);
    unsigned long vm = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f) {
        if (fscanf(f, "%lu %lu", &vm, &rss) != 2)
            vm = rss = 0;
        fclose(f);
    }
    cp_writer_printf(w, "# VmSize = %lu\n", vm * (unsigned long)page);
    cp_writer_printf(w, "# RSS = %lu\n", rss * (unsigned long)page);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cp_writer_printf(w, "# MaxRSS = %ld\n", ru.ru_maxrss * 1024L);
    cp_writer_printf(w, "# SampledLiveBlocks = %zu\n", cp_heap_sampled_live());
    cp_writer_printf(w, "# SampledBlockHeaders = %d\n", cp_heap_headers());
    cp_writer_printf(w, "# ProfilerTableBytes = %zu\n", cp_heap_table_bytes());
    cp_writer_printf(w, "# DroppedSamples = %" PRIu64 "\n", cp_heap_dropped());
}

static int heap_write_text(cpprof_writer *w, int debug)
{
    if (!cp_heap_interposed())
        return -ENOSYS;
    if (debug < 1)
        return -EINVAL;
    /* Allocator statistics first would be Go's order of reading; we read
     * them last, after our snapshot's own allocation, which is ours. */
    heap_rec *recs;
    size_t n;
    int err = snapshot(&recs, &n);
    if (err)
        return err;
    if (n > 1)
        qsort(recs, n, sizeof *recs, cmp_inuse);
    uint64_t t_allocs = 0, t_abytes = 0, t_frees = 0, t_fbytes = 0;
    for (size_t i = 0; i < n; i++) {
        t_allocs += recs[i].allocs;
        t_abytes += recs[i].alloc_bytes;
        t_frees += recs[i].frees;
        t_fbytes += recs[i].free_bytes;
    }
    uint64_t inuse_bytes = t_abytes - t_fbytes, alloc_bytes = t_abytes;
    /* pprof reads alloc == inuse as a 2-column profile: keep them apart,
     * as Go does. */
    if (inuse_bytes == alloc_bytes)
        alloc_bytes++;
    cp_writer_printf(w, "heap profile: %" PRIu64 ": %" PRIu64 " [%" PRIu64
                        ": %" PRIu64 "] @ heap/%" PRId64 "\n",
                     t_allocs - t_frees, inuse_bytes, t_allocs, alloc_bytes,
                     2 * cp_heap_rate_get());
    cp_stack_table *st = cp_heap_stacks();
    cp_symbolizer *sym = n ? cp_symbolizer_acquire() : NULL;
    for (size_t i = 0; i < n && st; i++) {
        const heap_rec *r = &recs[i];
        const uintptr_t *pcs;
        size_t depth = cp_stack_table_get(st, r->stack_id, &pcs);
        cp_writer_printf(w, "%" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64
                            "] @",
                         r->allocs - r->frees, r->alloc_bytes - r->free_bytes,
                         r->allocs, r->alloc_bytes);
        for (size_t k = 0; k < depth; k++)
            cp_writer_printf(w, " %#" PRIxPTR, pcs[k]);
        cp_writer_printf(w, "\n");
        if (sym)
            cp_text_write_stack(w, sym, pcs, depth, false);
    }
    if (sym)
        cp_symbolizer_release(sym);
    free(recs);
    write_mem_stats(w);
    return cpprof_writer_error(w);
}

const cp_builtin_ops cp_heap_ops = {
    .name = "heap",
    .description = "A sampling of memory allocations of live objects.",
    .count = heap_count,
    .build = heap_build,
    .write_text = heap_write_text,
    .delta_cumulative_mask = 0x3, /* alloc_* accumulate, inuse_* are levels */
};

const cp_builtin_ops cp_allocs_ops = {
    .name = "allocs",
    .description = "A sampling of all past memory allocations.",
    .count = heap_count,
    .build = allocs_build,
    .write_text = heap_write_text,
    .delta_cumulative_mask = 0x3,
};

/* ------------------------------------------------------------ public API */

int cpprof_heap_set_rate(int64_t bytes)
{
    if (bytes < 0)
        return -ERANGE;
    if (!cp_heap_interposed())
        return -ENOSYS;
    cp_heap_rate_set(bytes);
    return 0;
}

int64_t cpprof_heap_rate(void)
{
    return cp_heap_interposed() ? cp_heap_rate_get() : 0;
}
