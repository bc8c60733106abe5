/*
 * model/profile.c - builds and edits the profile model (model/profile.h).
 *
 * Called by samplers, custom profiles and the delta code in normal thread
 * context, one thread per model.  Not thread-safe, not signal-safe.
 *
 * Memory: every string, value array and label array lives in the model's
 * arena (a chain of bump-allocated blocks freed with the model); only the
 * samples and comments arrays are realloc'd.  Stacks are interned per
 * model, so samples with equal stacks share one pcs array: the encoders
 * rely on that to symbolize and look up each stack once.
 */
#include "model/profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/hash.h"
#include "model/stack_table.h"

typedef struct block {
    struct block *next;
    size_t used, cap;
    max_align_t data[];
} block;

typedef struct mstack {
    const uintptr_t *pcs;
    size_t depth;
    uint64_t hash;
} mstack;

struct cp_profile_arena {
    block *blocks;
    /* Interned stacks: stack hash -> index into stackv. */
    cp_hindex stacks;
    mstack *stackv;
    size_t nstacks, capstacks;
    /* Sample lookup for add_merged/subtract, covering samples
     * [0, nindexed); extended lazily, rebuilt after removals. */
    cp_hindex samples;
    size_t nindexed;
    uint64_t *sample_hash; /* per sample; capacity follows p->cap */
};

#define BLOCK_BYTES 65536

static void *arena_alloc(struct cp_profile_arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    block *b = a->blocks;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > BLOCK_BYTES ? n : BLOCK_BYTES;
        block *nb = malloc(sizeof *nb + cap);
        if (nb == NULL)
            return NULL;
        nb->used = 0;
        nb->cap = cap;
        nb->next = b;
        a->blocks = b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static char *arena_strdup(struct cp_profile_arena *a, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = arena_alloc(a, n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

cp_profile *cp_profile_new(const char *name, const cp_value_type *types,
                           size_t ntypes, cp_value_type period_type,
                           int64_t period)
{
    cp_profile *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->arena = calloc(1, sizeof *p->arena);
    if (p->arena == NULL) {
        free(p);
        return NULL;
    }
    cp_hindex_init(&p->arena->stacks);
    cp_hindex_init(&p->arena->samples);
    struct cp_profile_arena *a = p->arena;
    p->name = arena_strdup(a, name ? name : "");
    p->types = ntypes ? arena_alloc(a, ntypes * sizeof *p->types) : NULL;
    if (p->name == NULL || (ntypes && p->types == NULL))
        goto fail;
    for (size_t i = 0; i < ntypes; i++) {
        p->types[i].type = arena_strdup(a, types[i].type ? types[i].type : "");
        p->types[i].unit = arena_strdup(a, types[i].unit ? types[i].unit : "");
        if (p->types[i].type == NULL || p->types[i].unit == NULL)
            goto fail;
    }
    p->ntypes = ntypes;
    p->period_type.type = arena_strdup(a, period_type.type ? period_type.type : "");
    p->period_type.unit = arena_strdup(a, period_type.unit ? period_type.unit : "");
    if (p->period_type.type == NULL || p->period_type.unit == NULL)
        goto fail;
    p->period = period;
    return p;
fail:
    cp_profile_free(p);
    return NULL;
}

void cp_profile_free(cp_profile *p)
{
    if (p == NULL)
        return;
    struct cp_profile_arena *a = p->arena;
    if (a != NULL) {
        for (block *b = a->blocks, *next; b != NULL; b = next) {
            next = b->next;
            free(b);
        }
        cp_hindex_free(&a->stacks);
        cp_hindex_free(&a->samples);
        free(a->stackv);
        free(a->sample_hash);
        free(a);
    }
    free(p->samples);
    free(p->comments);
    free(p);
}

int cp_profile_set_default_type(cp_profile *p, const char *type)
{
    if (p == NULL || type == NULL)
        return -EINVAL;
    char *d = arena_strdup(p->arena, type);
    if (d == NULL)
        return -ENOMEM;
    p->default_type = d;
    return 0;
}

int cp_profile_add_comment(cp_profile *p, const char *text)
{
    if (p == NULL || text == NULL)
        return -EINVAL;
    char **v = realloc(p->comments, (p->ncomments + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    p->comments = v;
    if ((v[p->ncomments] = arena_strdup(p->arena, text)) == NULL)
        return -ENOMEM;
    p->ncomments++;
    return 0;
}

/* ------------------------------------------------------------ stacks */

typedef struct stack_probe {
    const mstack *v;
    const uintptr_t *pcs;
    size_t depth;
} stack_probe;

static bool stack_eq(const void *ctx, uint32_t i)
{
    const stack_probe *pr = ctx;
    return pr->v[i].depth == pr->depth &&
           memcmp(pr->v[i].pcs, pr->pcs, pr->depth * sizeof *pr->pcs) == 0;
}

/* The model's shared copy of a stack (interned).  NULL on -ENOMEM. */
static const mstack *intern_stack(struct cp_profile_arena *a,
                                  const uintptr_t *pcs, size_t depth)
{
    uint64_t h = cp_stack_hash(pcs, depth);
    stack_probe pr = {a->stackv, pcs, depth};
    uint32_t i = cp_hindex_find(&a->stacks, h, stack_eq, &pr);
    if (i != CP_HINDEX_NONE)
        return &a->stackv[i];
    if (a->nstacks == a->capstacks) {
        size_t cap = a->capstacks ? 2 * a->capstacks : 64;
        mstack *v = realloc(a->stackv, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        a->stackv = v;
        a->capstacks = cap;
    }
    uintptr_t *copy = arena_alloc(a, (depth ? depth : 1) * sizeof *copy);
    if (copy == NULL)
        return NULL;
    if (depth)
        memcpy(copy, pcs, depth * sizeof *pcs);
    if (cp_hindex_insert(&a->stacks, h, (uint32_t)a->nstacks) != 0)
        return NULL;
    mstack *m = &a->stackv[a->nstacks++];
    m->pcs = copy;
    m->depth = depth;
    m->hash = h;
    return m;
}

/* ------------------------------------------------------------ labels */

static uint64_t str_hash(const char *s)
{
    return s ? cp_hash_bytes(1, s, strlen(s)) : 0;
}

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool label_eq(const cp_label *a, const cp_label *b)
{
    if (!str_eq(a->key, b->key) || !str_eq(a->str, b->str))
        return false;
    if (a->str != NULL)
        return true;
    return a->num == b->num && str_eq(a->unit, b->unit);
}

/* Order-independent: a label set is a set. */
static uint64_t labels_hash(const cp_label *l, size_t n)
{
    uint64_t sum = n;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = cp_hash_u64(str_hash(l[i].key), str_hash(l[i].str));
        if (l[i].str == NULL)
            h = cp_hash_u64(cp_hash_u64(h, (uint64_t)l[i].num),
                            str_hash(l[i].unit));
        sum += cp_hash_mix(h);
    }
    return sum;
}

static bool labels_eq(const cp_label *a, size_t na, const cp_label *b,
                      size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++) {
        size_t j = 0;
        while (j < nb && !label_eq(&a[i], &b[j]))
            j++;
        if (j == nb)
            return false;
    }
    return true;
}

/* ----------------------------------------------------------- samples */

static uint64_t sample_key_hash(uint64_t stack_hash, const cp_label *l,
                                size_t n)
{
    return n ? cp_hash_u64(stack_hash, labels_hash(l, n)) : stack_hash;
}

typedef struct sample_probe {
    const cp_profile *p;
    const uintptr_t *pcs;
    size_t depth;
    const cp_label *labels;
    size_t nlabels;
} sample_probe;

static bool sample_eq(const void *ctx, uint32_t i)
{
    const sample_probe *pr = ctx;
    const cp_sample *s = &pr->p->samples[i];
    if (s->depth != pr->depth)
        return false;
    if (s->pcs != pr->pcs &&
        memcmp(s->pcs, pr->pcs, pr->depth * sizeof *pr->pcs) != 0)
        return false;
    return labels_eq(s->labels, s->nlabels, pr->labels, pr->nlabels);
}

/* Brings the sample index up to date with p->samples. */
static int sync_index(cp_profile *p)
{
    struct cp_profile_arena *a = p->arena;
    int rc = cp_hindex_reserve(&a->samples, p->nsamples);
    if (rc != 0)
        return rc;
    for (; a->nindexed < p->nsamples; a->nindexed++) {
        const cp_sample *s = &p->samples[a->nindexed];
        sample_probe pr = {p, s->pcs, s->depth, s->labels, s->nlabels};
        uint64_t h = a->sample_hash[a->nindexed];
        /* Keep the first of equal keys; later ones are reachable only by
         * a scan, which nothing needs. */
        if (cp_hindex_find(&a->samples, h, sample_eq, &pr) != CP_HINDEX_NONE)
            continue;
        if ((rc = cp_hindex_insert(&a->samples, h, (uint32_t)a->nindexed)))
            return rc;
    }
    return 0;
}

static int append_sample(cp_profile *p, const mstack *st, uint64_t key_hash,
                         const int64_t *values, const cp_label *labels,
                         size_t nlabels)
{
    struct cp_profile_arena *a = p->arena;
    if (p->nsamples == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        cp_sample *v = realloc(p->samples, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        p->samples = v;
        uint64_t *hv = realloc(a->sample_hash, cap * sizeof *hv);
        if (hv == NULL)
            return -ENOMEM; /* p->cap unchanged: the next call retries */
        a->sample_hash = hv;
        p->cap = cap;
    }
    cp_sample *s = &p->samples[p->nsamples];
    s->pcs = st->pcs;
    s->depth = st->depth;
    s->values = arena_alloc(a, (p->ntypes ? p->ntypes : 1) * sizeof *values);
    if (s->values == NULL)
        return -ENOMEM;
    if (p->ntypes)
        memcpy(s->values, values, p->ntypes * sizeof *values);
    s->labels = NULL;
    s->nlabels = 0;
    if (nlabels) {
        s->labels = arena_alloc(a, nlabels * sizeof *labels);
        if (s->labels == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < nlabels; i++) {
            cp_label *d = &s->labels[i];
            const cp_label *l = &labels[i];
            d->key = arena_strdup(a, l->key ? l->key : "");
            d->str = arena_strdup(a, l->str);
            d->num = l->num;
            d->unit = arena_strdup(a, l->unit);
            if (d->key == NULL || (l->str && d->str == NULL) ||
                (l->unit && d->unit == NULL))
                return -ENOMEM;
        }
        s->nlabels = nlabels;
    }
    a->sample_hash[p->nsamples] = key_hash;
    p->nsamples++;
    return 0;
}

static int check_args(const cp_profile *p, const uintptr_t *pcs, size_t depth,
                      const int64_t *values, const cp_label *labels,
                      size_t nlabels)
{
    if (p == NULL || (depth && pcs == NULL) || (p->ntypes && !values) ||
        (nlabels && labels == NULL))
        return -EINVAL;
    for (size_t i = 0; i < nlabels; i++)
        if (labels[i].key == NULL)
            return -EINVAL;
    return 0;
}

/* Validates a sample's arguments and interns its stack into *st. */
static int prepare(cp_profile *p, const uintptr_t *pcs, size_t depth,
                   const int64_t *values, const cp_label *labels,
                   size_t nlabels, const mstack **st)
{
    int rc = check_args(p, pcs, depth, values, labels, nlabels);
    if (rc != 0)
        return rc;
    *st = intern_stack(p->arena, pcs, depth);
    return *st ? 0 : -ENOMEM;
}

int cp_profile_add(cp_profile *p, const uintptr_t *pcs, size_t depth,
                   const int64_t *values, const cp_label *labels,
                   size_t nlabels)
{
    const mstack *st;
    int rc = prepare(p, pcs, depth, values, labels, nlabels, &st);
    if (rc != 0)
        return rc;
    return append_sample(p, st, sample_key_hash(st->hash, labels, nlabels),
                         values, labels, nlabels);
}

int cp_profile_add_merged(cp_profile *p, const uintptr_t *pcs, size_t depth,
                          const int64_t *values, const cp_label *labels,
                          size_t nlabels)
{
    const mstack *st;
    int rc = prepare(p, pcs, depth, values, labels, nlabels, &st);
    if (rc != 0 || (rc = sync_index(p)) != 0)
        return rc;
    uint64_t h = sample_key_hash(st->hash, labels, nlabels);
    sample_probe pr = {p, st->pcs, depth, labels, nlabels};
    uint32_t i = cp_hindex_find(&p->arena->samples, h, sample_eq, &pr);
    if (i != CP_HINDEX_NONE) {
        for (size_t k = 0; k < p->ntypes; k++)
            p->samples[i].values[k] += values[k];
        return 0;
    }
    return append_sample(p, st, h, values, labels, nlabels);
}

static bool types_match(const cp_profile *a, const cp_profile *b)
{
    if (a->ntypes != b->ntypes)
        return false;
    for (size_t i = 0; i < a->ntypes; i++)
        if (strcmp(a->types[i].type, b->types[i].type) != 0 ||
            strcmp(a->types[i].unit, b->types[i].unit) != 0)
            return false;
    return true;
}

int cp_profile_subtract(cp_profile *p, const cp_profile *base,
                        uint32_t cumulative_mask)
{
    if (p == NULL || base == NULL || !types_match(p, base))
        return -EINVAL;
    int rc = sync_index(p);
    if (rc != 0)
        return rc;
    size_t nt = p->ntypes < 32 ? p->ntypes : 32;
    for (size_t j = 0; j < base->nsamples; j++) {
        const cp_sample *b = &base->samples[j];
        uint64_t h = sample_key_hash(cp_stack_hash(b->pcs, b->depth),
                                     b->labels, b->nlabels);
        sample_probe pr = {p, b->pcs, b->depth, b->labels, b->nlabels};
        uint32_t i = cp_hindex_find(&p->arena->samples, h, sample_eq, &pr);
        if (i == CP_HINDEX_NONE)
            continue; /* gone from p: nothing to report */
        for (size_t k = 0; k < nt; k++)
            if (cumulative_mask & (1u << k))
                p->samples[i].values[k] -= b->values[k];
    }
    /* Drop samples left all zero, keeping order. */
    size_t out = 0;
    for (size_t i = 0; i < p->nsamples; i++) {
        bool zero = true;
        for (size_t k = 0; k < p->ntypes && zero; k++)
            zero = p->samples[i].values[k] == 0;
        if (zero)
            continue;
        p->samples[out] = p->samples[i];
        p->arena->sample_hash[out] = p->arena->sample_hash[i];
        out++;
    }
    if (out != p->nsamples) {
        p->nsamples = out;
        cp_hindex_free(&p->arena->samples);
        p->arena->nindexed = 0;
    }
    return 0;
}
