/*
 * profiles/threadcreate.c - the "threadcreate" profile: the stack of every
 * pthread_create call, as a count profile like Go's.
 *
 * cp_threadcreate_record is called by capture/thread_shim.c in the
 * creating thread, in normal context, before the new thread is started
 * (it may allocate and lock).  The ops are called by the registry from any
 * thread in normal context.  Never used from a signal handler.
 *
 * Each distinct creating stack is interned once in this profile's own
 * stack table and counted in a small id -> count map under one mutex:
 * memory is bounded by the number of distinct stacks, and count() is the
 * number of threads created, as Go's ThreadCreateProfile reports.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "capture/own_section.h"
#include "capture/thread_hooks.h"
#include "core/writer.h"
#include "encode/text.h"
#include "model/stack_table.h"
#include "profiles/builtin.h"

typedef struct tc_slot {
    uint32_t key; /* stack id + 1; 0 = empty */
    uint64_t count;
} tc_slot;

static struct {
    pthread_mutex_t lock;
    cp_stack_table *stacks;
    tc_slot *slots; /* open addressing, power-of-two capacity */
    size_t cap, used;
    uint64_t total; /* threads created */
} tc_state = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Under lock: the slot for key, growing the map if needed (NULL: OOM). */
static tc_slot *tc_slot_get(uint32_t key)
{
    if ((tc_state.used + 1) * 2 > tc_state.cap) {
        size_t ncap = tc_state.cap ? tc_state.cap * 2 : 64;
        tc_slot *nv = calloc(ncap, sizeof *nv);
        if (!nv)
            return NULL;
        for (size_t i = 0; i < tc_state.cap; i++) {
            if (!tc_state.slots[i].key)
                continue;
            size_t j = (tc_state.slots[i].key * 2654435761u) & (ncap - 1);
            while (nv[j].key)
                j = (j + 1) & (ncap - 1);
            nv[j] = tc_state.slots[i];
        }
        free(tc_state.slots);
        tc_state.slots = nv;
        tc_state.cap = ncap;
    }
    size_t j = (key * 2654435761u) & (tc_state.cap - 1);
    while (tc_state.slots[j].key && tc_state.slots[j].key != key)
        j = (j + 1) & (tc_state.cap - 1);
    if (!tc_state.slots[j].key) {
        tc_state.slots[j].key = key;
        tc_state.used++;
    }
    return &tc_state.slots[j];
}

void cp_threadcreate_record(const uintptr_t *pcs, size_t depth)
{
    /* The table is the profiler's: kept out of the program's heap
     * profile, although the program's pthread_create is the caller. */
    bool was_own = cp_own_begin();
    pthread_mutex_lock(&tc_state.lock);
    tc_state.total++;
    uint32_t id;
    if ((tc_state.stacks || cp_stack_table_new(&tc_state.stacks) == 0) &&
        cp_stack_table_intern(tc_state.stacks, pcs, depth, &id) == 0) {
        tc_slot *s = tc_slot_get(id + 1);
        if (s)
            s->count++;
    }
    pthread_mutex_unlock(&tc_state.lock);
    cp_own_end(was_own);
}

static int64_t threadcreate_count(void)
{
    pthread_mutex_lock(&tc_state.lock);
    uint64_t n = tc_state.total;
    pthread_mutex_unlock(&tc_state.lock);
    return (int64_t)n;
}

static int threadcreate_build(cp_profile **out)
{
    static const cp_value_type type = {"threadcreate", "count"};
    *out = NULL;
    cp_profile *p = cp_profile_new("threadcreate", &type, 1, type, 1);
    if (!p)
        return -ENOMEM;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    p->time_nanos = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    p->leaf_is_pc = false; /* return addresses from cp_backtrace */
    int err = 0;
    pthread_mutex_lock(&tc_state.lock);
    for (size_t i = 0; i < tc_state.cap && !err; i++) {
        const tc_slot *s = &tc_state.slots[i];
        if (!s->key)
            continue;
        const uintptr_t *pcs;
        size_t depth = cp_stack_table_get(tc_state.stacks, s->key - 1, &pcs);
        int64_t v = (int64_t)s->count;
        err = cp_profile_add(p, pcs, depth, &v, NULL, 0);
    }
    pthread_mutex_unlock(&tc_state.lock);
    if (err) {
        cp_profile_free(p);
        return err;
    }
    *out = p;
    return 0;
}

static int threadcreate_write_text(cpprof_writer *w, int debug)
{
    if (debug < 1)
        return -EINVAL;
    cp_profile *p;
    int err = threadcreate_build(&p);
    if (err)
        return err;
    err = cp_text_write_count(p, w);
    cp_profile_free(p);
    return err;
}

const cp_builtin_ops cp_threadcreate_ops = {
    .name = "threadcreate",
    .description = "Stack traces that led to the creation of new threads.",
    .count = threadcreate_count,
    .build = threadcreate_build,
    .write_text = threadcreate_write_text,
    .delta_cumulative_mask = 0x1,
};
