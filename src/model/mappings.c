/*
 * model/mappings.c - snapshots of the process's executable mappings for
 * profile.proto's Mapping messages (model/mappings.h): the loaded objects,
 * named as the symbolizer names them (capture/objects.h), and the objects
 * unloaded since the process started where their addresses are free.
 *
 * Called by the proto encoder and the symbolizer, in normal thread
 * context only: dl_iterate_phdr takes the loader lock and we allocate.
 * Never from a signal handler or an interposed call.  Snapshots are
 * immutable once built, so readers need no lock.
 *
 * Everything is read from the loader's view of memory (program headers
 * and the note segment), which dl_iterate_phdr keeps mapped while its
 * callback runs; nothing here parses files.
 */
#include "model/mappings.h"

#include <errno.h>
#include <link.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "capture/loader.h"
#include "capture/objects.h"

/* The snapshot as allocated: the public view first, then the one buffer
 * that holds every path and build ID string. */
typedef struct snapshot {
    cp_mappings pub;
    char *pool;
} snapshot;

/* Collection state while dl_iterate_phdr runs.  Entries keep offsets into
 * the pool (which may move while it grows) and become pointers at the end. */
typedef struct collect {
    cp_mapping *v;
    size_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
    int err;
} collect;

/* Appends a NUL-terminated string to the pool; returns its offset. */
static size_t pool_add(collect *c, const char *s)
{
    size_t len = strlen(s) + 1;
    if (c->pool_len + len > c->pool_cap) {
        size_t cap = c->pool_cap ? c->pool_cap * 2 : 1024;
        while (cap < c->pool_len + len)
            cap *= 2;
        char *pool = realloc(c->pool, cap);
        if (pool == NULL) {
            c->err = -ENOMEM;
            return 0;
        }
        c->pool = pool;
        c->pool_cap = cap;
    }
    memcpy(c->pool + c->pool_len, s, len);
    c->pool_len += len;
    return c->pool_len - len;
}

/* Room for one more mapping; false (c->err set) when memory is short. */
static bool reserve(collect *c)
{
    if (c->n < c->cap)
        return true;
    size_t cap = c->cap ? c->cap * 2 : 32;
    cp_mapping *v = realloc(c->v, cap * sizeof *v);
    if (v == NULL) {
        c->err = -ENOMEM;
        return false;
    }
    c->v = v;
    c->cap = cap;
    return true;
}

/* Appends one segment; the strings are pool offsets for now, which
 * cp_mappings_snapshot turns into pointers. */
static void add_segment(collect *c, const cp_object_seg *seg, size_t file_off,
                        size_t id_off)
{
    if (!reserve(c))
        return;
    cp_mapping *m = &c->v[c->n++];
    m->start = seg->start;
    m->limit = seg->limit;
    m->offset = seg->offset;
    m->file = (const char *)(uintptr_t)file_off;
    m->build_id = (const char *)(uintptr_t)id_off;
}

static int collect_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    collect *c = arg;
    (void)size;
    cp_object_seg segs[8];
    size_t n = cp_object_exec_segs(info, segs, 8);
    if (n == 0)
        return 0;
    /* Strings once per object, shared by all its segments. */
    char path[4096], hex[CP_BUILD_ID_HEX_MAX];
    size_t file_off = pool_add(c, cp_object_path(info, path, sizeof path));
    cp_object_build_id(info, hex);
    size_t id_off = pool_add(c, hex);
    for (size_t i = 0; i < n && i < 8 && !c->err; i++)
        add_segment(c, &segs[i], file_off, id_off);
    return c->err != 0;
}

/* Whether [start, limit) overlaps a mapping in v[0..n). */
static bool overlaps(const cp_mapping *v, size_t n, uintptr_t start,
                     uintptr_t limit)
{
    for (size_t i = 0; i < n; i++)
        if (start < v[i].limit && v[i].start < limit)
            return true;
    return false;
}

/* An unloaded object's segments, where nothing collected so far (the
 * loaded objects, then newer unloaded ones) covers them. */
static void collect_unloaded(const cp_unloaded_object *o, void *arg)
{
    collect *c = arg;
    if (c->err)
        return;
    for (size_t i = 0; i < o->nsegs; i++)
        if (overlaps(c->v, c->n, o->segs[i].start, o->segs[i].limit))
            return;
    size_t file_off = pool_add(c, o->path);
    size_t id_off = pool_add(c, o->build_id);
    for (size_t i = 0; i < o->nsegs && !c->err; i++)
        add_segment(c, &o->segs[i], file_off, id_off);
}

static int by_start(const void *a, const void *b)
{
    const cp_mapping *x = a, *y = b;
    return (x->start > y->start) - (x->start < y->start);
}

int cp_mappings_snapshot(cp_mappings **out)
{
    if (out == NULL)
        return -EINVAL;
    *out = NULL;
    collect c = {0};
    cp_loader_iterate(collect_object, &c);
    if (!c.err)
        cp_objects_each_unloaded(collect_unloaded, &c);
    snapshot *s = c.err ? NULL : calloc(1, sizeof *s);
    if (s == NULL) {
        free(c.v);
        free(c.pool);
        return c.err ? c.err : -ENOMEM;
    }
    for (size_t i = 0; i < c.n; i++) {
        c.v[i].file = c.pool + (uintptr_t)c.v[i].file;
        c.v[i].build_id = c.pool + (uintptr_t)c.v[i].build_id;
    }
    qsort(c.v, c.n, sizeof *c.v, by_start);
    /* Page rounding could make neighbours touch in theory; keep the
     * non-overlapping invariant that lookups rely on. */
    for (size_t i = 1; i < c.n; i++)
        if (c.v[i - 1].limit > c.v[i].start)
            c.v[i - 1].limit = c.v[i].start;
    s->pub.v = c.v;
    s->pub.n = c.n;
    s->pool = c.pool;
    *out = &s->pub;
    return 0;
}

void cp_mappings_free(cp_mappings *m)
{
    if (m == NULL)
        return;
    snapshot *s = (snapshot *)m; /* pub is the first member */
    free(s->pub.v);
    free(s->pool);
    free(s);
}

const cp_mapping *cp_mappings_find(const cp_mappings *m, uintptr_t addr)
{
    if (m == NULL)
        return NULL;
    size_t lo = 0, hi = m->n;
    while (lo < hi) { /* first mapping with limit > addr */
        size_t mid = lo + (hi - lo) / 2;
        if (m->v[mid].limit <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < m->n && m->v[lo].start <= addr)
        return &m->v[lo];
    return NULL;
}
