/*
 * profiles/block.c - the "block" profile (time threads spent blocked in
 * pthread/sem calls, at the blocking stack) and the builder it shares
 * with the "mutex" profile (profiles/sync_profile.h).
 *
 * The records come from capture/sync_events.c, filled by the interposed
 * calls of capture/sync_shim.c; here, in normal context, they become a
 * profile model (merging records of the same stack) or Go's legacy text.
 * Called by the registry from any thread; never from a signal handler or
 * an interposed call.  Holds no state of its own: the capture tables are
 * lock-free and read concurrently with the threads that fill them.
 *
 * Go -> C: Go counts "cycles" and converts them to nanoseconds; cpprof
 * measures CLOCK_MONOTONIC nanoseconds directly, so the text format's
 * cycles are nanoseconds and cycles/second is 1000000000.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/writer.h"
#include "encode/text.h"
#include "model/symbolize.h"
#include "profiles/builtin.h"
#include "profiles/sync_profile.h"

#include "cpprof/sync.h"

int64_t cp_sync_profile_count(enum cp_sync_kind kind)
{
    return (int64_t)cp_sync_record_count(kind);
}

int cp_sync_profile_build(enum cp_sync_kind kind, cp_profile **out)
{
    static const cp_value_type types[2] = {
        {"contentions", "count"},
        {"delay", "nanoseconds"},
    };
    *out = NULL;
    cp_profile *p = cp_profile_new(kind == CP_SYNC_BLOCK ? "block" : "mutex",
                                   types, 2, types[0], 1);
    if (p == NULL)
        return -ENOMEM;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    p->time_nanos = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    p->leaf_is_pc = false; /* return addresses, led by the API's entry + 1 */

    int err = 0;
    size_t slots = cp_sync_record_slots();
    for (size_t i = 0; i < slots && err == 0; i++) {
        cp_sync_entry e;
        if (!cp_sync_record_get(i, kind, &e))
            continue;
        if (e.count == 0 && e.delay_ns == 0)
            continue;
        int64_t v[2] = {e.count, e.delay_ns};
        err = cp_profile_add_merged(p, e.pcs, e.depth, v, NULL, 0);
    }
    uint64_t lost = cp_sync_lost(kind);
    if (err == 0 && lost != 0) {
        char msg[96];
        snprintf(msg, sizeof msg,
                 "cpprof: %" PRIu64 " events dropped (record table full)",
                 lost);
        err = cp_profile_add_comment(p, msg);
    }
    if (err != 0) {
        cp_profile_free(p);
        return err;
    }
    *out = p;
    return 0;
}

/* Go sorts the text form by cycles, largest first. */
static int by_delay_desc(const void *a, const void *b)
{
    const cp_sample *x = *(const cp_sample *const *)a;
    const cp_sample *y = *(const cp_sample *const *)b;
    return (x->values[1] < y->values[1]) - (x->values[1] > y->values[1]);
}

int cp_sync_profile_write_text(enum cp_sync_kind kind, cpprof_writer *w,
                               int debug)
{
    if (w == NULL || debug < 1)
        return -EINVAL;
    cp_profile *p;
    int err = cp_sync_profile_build(kind, &p);
    if (err != 0)
        return cp_writer_fail(w, err);
    const cp_sample **order = malloc((p->nsamples + 1) * sizeof *order);
    if (order == NULL) {
        cp_profile_free(p);
        return cp_writer_fail(w, -ENOMEM);
    }
    for (size_t i = 0; i < p->nsamples; i++)
        order[i] = &p->samples[i];
    qsort(order, p->nsamples, sizeof *order, by_delay_desc);

    cp_writer_printf(w, "--- %s:\n",
                     kind == CP_SYNC_BLOCK ? "contention" : "mutex");
    cp_writer_printf(w, "cycles/second=1000000000\n");
    if (kind == CP_SYNC_MUTEX)
        cp_writer_printf(w, "sampling period=%d\n",
                         cpprof_mutex_profile_fraction());
    cp_symbolizer *s = cp_symbolizer_acquire();
    for (size_t i = 0; i < p->nsamples; i++) {
        const cp_sample *smp = order[i];
        cp_writer_printf(w, "%" PRId64 " %" PRId64 " @", smp->values[1],
                         smp->values[0]);
        for (size_t k = 0; k < smp->depth; k++)
            cp_writer_printf(w, " %#" PRIxPTR, smp->pcs[k]);
        cp_writer_printf(w, "\n");
        cp_text_write_stack(w, s, smp->pcs, smp->depth, false);
    }
    if (s != NULL)
        cp_symbolizer_release(s);
    free(order);
    cp_profile_free(p);
    return cpprof_writer_error(w);
}

static int64_t block_count(void)
{
    return cp_sync_profile_count(CP_SYNC_BLOCK);
}

static int block_build(cp_profile **out)
{
    return cp_sync_profile_build(CP_SYNC_BLOCK, out);
}

static int block_write_text(cpprof_writer *w, int debug)
{
    return cp_sync_profile_write_text(CP_SYNC_BLOCK, w, debug);
}

const cp_builtin_ops cp_block_ops = {
    .name = "block",
    .description = "Stack traces that led to blocking on synchronization primitives.",
    .count = block_count,
    .build = block_build,
    .write_text = block_write_text,
    .delta_cumulative_mask = 0x3, /* contentions and delay both accumulate */
};
