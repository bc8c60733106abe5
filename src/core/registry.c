/*
 * core/registry.c - the profile registry (Go's pprof.go): named profiles,
 * the table of built-in ones, and custom profiles filled by add/remove.
 *
 * Profiles are created once and never freed, so a handle returned by
 * new/lookup/list stays valid for the life of the process without any
 * reference counting.  The registry itself is a sorted array under one
 * mutex: creation and listing are rare.
 *
 * Custom profiles map an opaque value to the stack that added it.  The map
 * is split into CUSTOM_SHARDS independently locked open-addressing tables
 * chosen by the value's hash, so threads adding and removing different
 * values almost never meet on a lock; stacks are interned in one shared
 * stack table (model/stack_table.h) and a value costs 16 bytes.
 *
 * Thread-safety: every function may be called from any thread.  Nothing
 * here may be called from a signal handler or an allocator hook (add
 * unwinds with libunwind and may allocate).  fork: pthread_atfork handlers
 * take and release every lock, so a child never inherits a held one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "capture/backtrace.h"
#include "capture/heap_sampler.h"
#include "core/registry.h"
#include "core/writer.h"
#include "encode/proto.h"
#include "encode/text.h"
#include "model/hash.h"
#include "model/stack_table.h"
#include "profiles/builtin.h"

#define PROFILE_NAME_MAX 255
#define CUSTOM_SHARDS 64
#define CUSTOM_STACK_DEPTH 32 /* as Go's Add records at most 32 frames */

/* One shard of a custom profile's value -> stack map (linear probing,
 * backward-shift deletion, so there are no tombstones to clean). */
typedef struct custom_shard {
    pthread_mutex_t lock;
    uintptr_t *keys;   /* 0 marks an empty slot; values are never 0 */
    uint32_t *stacks;
    size_t cap;        /* power of two, or 0 before the first add */
    size_t used;
    char pad[64];      /* keep neighbouring shard locks off one line */
} custom_shard;

struct cpprof_profile {
    char *name;
    const cp_builtin_ops *builtin; /* NULL for custom profiles */
    atomic_int_fast64_t count;     /* custom: values now present */
    custom_shard *shards;          /* custom: CUSTOM_SHARDS entries */
};

/* Names that may never be used for a custom profile: the built-ins, their
 * Go aliases, and the HTTP endpoints that would shadow a profile. */
static const char *const reserved_names[] = {
    "goroutine", "profile", "cpu", "trace", "cmdline", "symbol",
    "delta_heap", "delta_mutex", "delta_block",
};

static struct {
    pthread_mutex_t lock;
    pthread_once_t once;
    cpprof_profile **all; /* sorted by name */
    size_t n, cap;
    cp_stack_table *stacks; /* stacks of every custom profile */
    int init_err;
} registry = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .once = PTHREAD_ONCE_INIT,
};

static void lost_profile_event(void) {}

/* ------------------------------------------------------------ the table */

static int compare_profiles(const void *a, const void *b)
{
    const cpprof_profile *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static cpprof_profile *find_locked(const char *name)
{
    size_t lo = 0, hi = registry.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(name, registry.all[mid]->name);
        if (c == 0)
            return registry.all[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int insert_locked(cpprof_profile *p)
{
    if (registry.n == registry.cap) {
        size_t cap = registry.cap ? registry.cap * 2 : 16;
        cpprof_profile **all = realloc(registry.all, cap * sizeof *all);
        if (!all)
            return -ENOMEM;
        registry.all = all;
        registry.cap = cap;
    }
    registry.all[registry.n++] = p;
    qsort(registry.all, registry.n, sizeof *registry.all, compare_profiles);
    return 0;
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&registry.lock);
    for (size_t i = 0; i < registry.n; i++) {
        cpprof_profile *p = registry.all[i];
        for (size_t s = 0; p->shards && s < CUSTOM_SHARDS; s++)
            pthread_mutex_lock(&p->shards[s].lock);
    }
}

static void atfork_release(void)
{
    for (size_t i = registry.n; i-- > 0;) {
        cpprof_profile *p = registry.all[i];
        for (size_t s = CUSTOM_SHARDS; p->shards && s-- > 0;)
            pthread_mutex_unlock(&p->shards[s].lock);
    }
    pthread_mutex_unlock(&registry.lock);
}

static void registry_init(void)
{
    static const cp_builtin_ops *const builtins[] = {
        &cp_heap_ops, &cp_allocs_ops, &cp_threads_ops,
        &cp_threadcreate_ops, &cp_block_ops, &cp_mutex_ops,
    };
    static cpprof_profile builtin_profiles[sizeof builtins / sizeof builtins[0]];

    registry.init_err = cp_stack_table_new(&registry.stacks);
    for (size_t i = 0; !registry.init_err && i < sizeof builtins / sizeof builtins[0]; i++) {
        builtin_profiles[i].name = (char *)builtins[i]->name;
        builtin_profiles[i].builtin = builtins[i];
        registry.init_err = insert_locked(&builtin_profiles[i]);
    }
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

static int registry_ready(void)
{
    pthread_once(&registry.once, registry_init);
    return registry.init_err;
}

static bool valid_name(const char *name)
{
    size_t n = 0;
    for (const char *c = name; *c; c++, n++)
        if (*c <= ' ' || *c >= 0x7f)
            return false; /* spaces, control characters, non-ASCII */
    return n > 0 && n <= PROFILE_NAME_MAX;
}

static int profile_new(const char *name, cpprof_profile **out)
{
    if (out)
        *out = NULL;
    if (!name || !out || !valid_name(name))
        return -EINVAL;
    int rc = registry_ready();
    if (rc)
        return rc;
    for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++)
        if (strcmp(name, reserved_names[i]) == 0)
            return -EEXIST;

    cpprof_profile *p = calloc(1, sizeof *p);
    custom_shard *shards = calloc(CUSTOM_SHARDS, sizeof *shards);
    char *copy = strdup(name);
    if (!p || !shards || !copy) {
        free(p);
        free(shards);
        free(copy);
        return -ENOMEM;
    }
    for (size_t s = 0; s < CUSTOM_SHARDS; s++)
        pthread_mutex_init(&shards[s].lock, NULL);
    p->name = copy;
    p->shards = shards;

    pthread_mutex_lock(&registry.lock);
    rc = find_locked(name) ? -EEXIST : insert_locked(p);
    pthread_mutex_unlock(&registry.lock);
    if (rc) {
        free(shards);
        free(copy);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

/* Profiles, their tables and stacks are the profiler's own allocations
 * (capture/own_section.h): never in the program's heap profile. */
int cpprof_profile_new(const char *name, cpprof_profile **out)
{
    bool was_own = cp_own_begin();
    int rc = profile_new(name, out);
    cp_own_end(was_own);
    return rc;
}

/* Lookup, list and remove take the registry's locks: as the profiler's
 * own work, a wait for them is no block or mutex event. */
static cpprof_profile *profile_lookup(const char *name)
{
    if (!name || registry_ready())
        return NULL;
    if (strcmp(name, "goroutine") == 0)
        name = "threads"; /* Go's name, so tools written for Go work */
    pthread_mutex_lock(&registry.lock);
    cpprof_profile *p = find_locked(name);
    pthread_mutex_unlock(&registry.lock);
    return p;
}

cpprof_profile *cpprof_profile_lookup(const char *name)
{
    bool was_own = cp_own_begin();
    cpprof_profile *p = profile_lookup(name);
    cp_own_end(was_own);
    return p;
}

static size_t profile_list(cpprof_profile **out, size_t cap)
{
    if (registry_ready())
        return 0;
    pthread_mutex_lock(&registry.lock);
    size_t n = registry.n;
    for (size_t i = 0; out && i < n && i < cap; i++)
        out[i] = registry.all[i];
    pthread_mutex_unlock(&registry.lock);
    return n;
}

size_t cpprof_profile_list(cpprof_profile **out, size_t cap)
{
    bool was_own = cp_own_begin();
    size_t n = profile_list(out, cap);
    cp_own_end(was_own);
    return n;
}

const char *cpprof_profile_name(const cpprof_profile *p)
{
    return p ? p->name : NULL;
}

int64_t cpprof_profile_count(const cpprof_profile *p)
{
    if (!p)
        return -EINVAL;
    if (p->builtin)
        return p->builtin->count ? p->builtin->count() : -ENOSYS;
    return atomic_load_explicit(&p->count, memory_order_relaxed);
}

const cp_builtin_ops *cp_registry_builtin(const cpprof_profile *p)
{
    return p ? p->builtin : NULL;
}

const char *cp_registry_description(const cpprof_profile *p)
{
    return p && p->builtin && p->builtin->description ? p->builtin->description : "";
}

/* ------------------------------------------------------- custom values */

static uint64_t hash_value(uintptr_t v)
{
    return cp_hash_mix((uint64_t)v);
}

static custom_shard *shard_for(cpprof_profile *p, uint64_t h)
{
    return &p->shards[h >> 58]; /* top 6 bits: CUSTOM_SHARDS == 64 */
}

static size_t slot_for(const custom_shard *s, uint64_t h)
{
    return (size_t)h & (s->cap - 1);
}

static int shard_grow(custom_shard *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    uintptr_t *keys = calloc(cap, sizeof *keys);
    uint32_t *stacks = malloc(cap * sizeof *stacks);
    if (!keys || !stacks) {
        free(keys);
        free(stacks);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->keys[i])
            continue;
        size_t j = (size_t)hash_value(s->keys[i]) & (cap - 1);
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = s->keys[i];
        stacks[j] = s->stacks[i];
    }
    free(s->keys);
    free(s->stacks);
    s->keys = keys;
    s->stacks = stacks;
    s->cap = cap;
    return 0;
}

static int custom_insert(cpprof_profile *p, uintptr_t key,
                         const uintptr_t *pcs, size_t depth);

/* noinline + the work after the call keep this frame real, so skip=0
 * lands exactly on the function that called add. */
__attribute__((noinline)) int cpprof_profile_add(cpprof_profile *p,
                                                 const void *value, int skip)
{
    if (!p || !value || skip < 0)
        return -EINVAL;
    if (p->builtin)
        return -EPERM;

    uintptr_t pcs[CUSTOM_STACK_DEPTH];
    size_t depth = cp_backtrace(pcs, CUSTOM_STACK_DEPTH, skip + 1);
    if (depth == 0) {
        /* skip is deeper than the stack: record a marker, as Go does. */
        pcs[0] = (uintptr_t)lost_profile_event + 1;
        depth = 1;
    }
    bool was_own = cp_own_begin();
    int rc = custom_insert(p, (uintptr_t)value, pcs, depth);
    cp_own_end(was_own);
    return rc;
}

/* Records key with the stack pcs in custom profile p (cpprof_profile_add
 * after its walk).  -EEXIST if key is already there. */
static int custom_insert(cpprof_profile *p, uintptr_t key,
                         const uintptr_t *pcs, size_t depth)
{
    uint32_t stack;
    int rc = cp_stack_table_intern(registry.stacks, pcs, depth, &stack);
    if (rc)
        return rc;

    uint64_t h = hash_value(key);
    custom_shard *s = shard_for(p, h);
    pthread_mutex_lock(&s->lock);
    if ((s->used + 1) * 2 > s->cap && (rc = shard_grow(s)) != 0) {
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    size_t i = slot_for(s, h);
    while (s->keys[i] && s->keys[i] != key)
        i = (i + 1) & (s->cap - 1);
    if (s->keys[i]) {
        rc = -EEXIST;
    } else {
        s->keys[i] = key;
        s->stacks[i] = stack;
        s->used++;
    }
    pthread_mutex_unlock(&s->lock);
    if (rc == 0)
        atomic_fetch_add_explicit(&p->count, 1, memory_order_relaxed);
    return rc;
}

static int profile_remove(cpprof_profile *p, const void *value)
{
    if (!p || !value)
        return -EINVAL;
    if (p->builtin)
        return -EPERM;
    uintptr_t key = (uintptr_t)value;
    uint64_t h = hash_value(key);
    custom_shard *s = shard_for(p, h);
    bool removed = false;
    pthread_mutex_lock(&s->lock);
    if (s->cap) {
        size_t i = slot_for(s, h);
        while (s->keys[i] && s->keys[i] != key)
            i = (i + 1) & (s->cap - 1);
        if (s->keys[i]) {
            /* Backward-shift: pull later members of the probe run into
             * the hole so every remaining key stays reachable. */
            size_t hole = i;
            for (size_t j = (i + 1) & (s->cap - 1); s->keys[j];
                 j = (j + 1) & (s->cap - 1)) {
                size_t home = slot_for(s, hash_value(s->keys[j]));
                bool movable = hole <= j ? (home <= hole || home > j)
                                         : (home <= hole && home > j);
                if (movable) {
                    s->keys[hole] = s->keys[j];
                    s->stacks[hole] = s->stacks[j];
                    hole = j;
                }
            }
            s->keys[hole] = 0;
            s->used--;
            removed = true;
        }
    }
    pthread_mutex_unlock(&s->lock);
    if (removed)
        atomic_fetch_sub_explicit(&p->count, 1, memory_order_relaxed);
    return 0;
}

int cpprof_profile_remove(cpprof_profile *p, const void *value)
{
    bool was_own = cp_own_begin();
    int rc = profile_remove(p, value);
    cp_own_end(was_own);
    return rc;
}

/* ---------------------------------------------------------- writing */

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Snapshot of a custom profile as a count model: one sample per distinct
 * stack with the number of values that hold it. */
static int build_custom(cpprof_profile *p, cp_profile **out)
{
    size_t cap = 0, n = 0;
    uint32_t *ids = NULL;
    /* Shards are copied one at a time: the snapshot is consistent per
     * value, as Go's is, without stopping every adder at once. */
    for (size_t si = 0; si < CUSTOM_SHARDS; si++) {
        custom_shard *s = &p->shards[si];
        pthread_mutex_lock(&s->lock);
        if (n + s->used > cap) {
            size_t ncap = (n + s->used) * 2 + 64;
            uint32_t *nids = realloc(ids, ncap * sizeof *ids);
            if (!nids) {
                pthread_mutex_unlock(&s->lock);
                free(ids);
                return -ENOMEM;
            }
            ids = nids;
            cap = ncap;
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->keys[i])
                ids[n++] = s->stacks[i];
        pthread_mutex_unlock(&s->lock);
    }
    if (n > 1)
        qsort(ids, n, sizeof *ids, compare_u32);

    cp_value_type type = {p->name, "count"};
    cp_profile *m = cp_profile_new(p->name, &type, 1, type, 1);
    if (!m) {
        free(ids);
        return -ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i;
        while (j < n && ids[j] == ids[i])
            j++;
        const uintptr_t *pcs;
        size_t depth = cp_stack_table_get(registry.stacks, ids[i], &pcs);
        int64_t count = (int64_t)(j - i);
        rc = cp_profile_add(m, pcs, depth, &count, NULL, 0);
        i = j;
    }
    free(ids);
    if (rc) {
        cp_profile_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* Go's keysByCount order: higher counts first, ties by stack. */
static int compare_samples_by_count(const void *a, const void *b)
{
    const cp_sample *x = a, *y = b;
    if (x->values[0] != y->values[0])
        return x->values[0] > y->values[0] ? -1 : 1;
    for (size_t k = 0; k < x->depth && k < y->depth; k++)
        if (x->pcs[k] != y->pcs[k])
            return x->pcs[k] < y->pcs[k] ? -1 : 1;
    return x->depth < y->depth ? -1 : x->depth > y->depth;
}

int cp_registry_build(cpprof_profile *p, cp_profile **out)
{
    if (!p || !out)
        return -EINVAL;
    *out = NULL;
    bool was_own = cp_own_begin();
    int rc;
    if (p->builtin) {
        rc = p->builtin->build ? p->builtin->build(out) : -ENOSYS;
    } else {
        rc = build_custom(p, out);
        if (rc == 0 && (*out)->nsamples > 1)
            qsort((*out)->samples, (*out)->nsamples, sizeof *(*out)->samples,
                  compare_samples_by_count);
    }
    cp_own_end(was_own);
    return rc;
}

int cpprof_profile_write(cpprof_profile *p, cpprof_writer *w, int debug)
{
    if (!p || !w)
        return -EINVAL;
    /* What writing allocates (snapshots, symbols, buffers) is ours, not
     * the program's: kept out of the heap profile. */
    bool was_own = cp_own_begin();
    int rc;
    if (debug > 0 && p->builtin) {
        rc = p->builtin->write_text ? p->builtin->write_text(w, debug) : -ENOSYS;
    } else {
        cp_profile *m;
        rc = cp_registry_build(p, &m);
        if (rc == 0) {
            rc = debug > 0 ? cp_text_write_count(m, w) : cp_proto_write(m, w, 0);
            cp_profile_free(m);
        }
    }
    /* A failed write marks the writer, so a path writer keeps the previous
     * file instead of committing a partial one. */
    if (rc == 0)
        rc = cp_writer_flush(w);
    else
        cp_writer_fail(w, rc);
    cp_own_end(was_own);
    return rc;
}

int cpprof_write_heap_profile(cpprof_writer *w)
{
    cpprof_profile *heap = cpprof_profile_lookup("heap");
    return heap ? cpprof_profile_write(heap, w, 0) : -ENOSYS;
}
