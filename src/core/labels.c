/*
 * core/labels.c - profiler labels: the cpprof_labels_* API (Go's
 * pprof.Labels / Do / Label for threads).
 *
 * A thread's labels are an immutable, reference-counted cp_label_set
 * (capture/cpu_signal.h); changing them builds a new set and swaps it in,
 * so a SIGPROF handler that interrupts the change sees either the old or
 * the new set whole.  Sets are shared by the CPU samples that carry them
 * and freed by the last reference.  Called by applications and by the
 * pthread_create shim (a new thread inherits its creator's set) in normal
 * context; every function acts on the calling thread only.
 */
#include "core/labels.h"
#include "capture/own_section.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpprof.h"

void cp_label_set_retain(cp_label_set *set)
{
    if (set)
        atomic_fetch_add_explicit(&set->refs, 1, memory_order_relaxed);
}

void cp_label_set_release(cp_label_set *set)
{
    if (set && atomic_fetch_sub_explicit(&set->refs, 1,
                                         memory_order_acq_rel) == 1)
        free(set);
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const struct cp_label_kv *)a)->key,
                   ((const struct cp_label_kv *)b)->key);
}

/*
 * A new set: base's labels overridden by the npairs pairs of kv (a NULL
 * value removes its key).  *out is NULL when the result is empty.  The
 * strings are copied into the set's own allocation.
 */
static int set_make(const cp_label_set *base, const char *const *kv,
                    size_t npairs, cp_label_set **out)
{
    size_t nbase = base ? base->n : 0, cap = nbase + npairs;
    struct cp_label_kv *tmp = calloc(cap ? cap : 1, sizeof(*tmp));
    if (!tmp)
        return -ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < nbase; i++)
        tmp[n++] = base->kv[i];
    for (size_t p = 0; p < npairs; p++) {
        const char *key = kv[2 * p], *value = kv[2 * p + 1];
        size_t j = 0;
        while (j < n && strcmp(tmp[j].key, key) != 0)
            j++;
        if (j < n && value)
            tmp[j].value = value;
        else if (j < n)
            tmp[j] = tmp[--n];
        else if (value)
            tmp[n++] = (struct cp_label_kv){ key, value };
    }
    *out = NULL;
    if (n == 0) {
        free(tmp);
        return 0;
    }
    qsort(tmp, n, sizeof(*tmp), cmp_kv);
    size_t bytes = sizeof(cp_label_set) + n * sizeof(struct cp_label_kv);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(tmp[i].key) + strlen(tmp[i].value) + 2;
    cp_label_set *set = malloc(bytes);
    if (!set) {
        free(tmp);
        return -ENOMEM;
    }
    atomic_init(&set->refs, 1);
    set->n = n;
    char *str = (char *)&set->kv[n];
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(tmp[i].key) + 1, vl = strlen(tmp[i].value) + 1;
        set->kv[i].key = memcpy(str, tmp[i].key, kl);
        str += kl;
        set->kv[i].value = memcpy(str, tmp[i].value, vl);
        str += vl;
    }
    free(tmp);
    *out = set;
    return 0;
}

/* set_make as the profiler's own allocation (capture/own_section.h):
 * label sets never show in the program's heap profile. */
static int set_build(const cp_label_set *base, const char *const *kv,
                     size_t npairs, cp_label_set **out)
{
    bool was_own = cp_own_begin();
    int rc = set_make(base, kv, npairs, out);
    cp_own_end(was_own);
    return rc;
}

int cpprof_labels_set(const char *key, const char *value)
{
    if (!key || !*key)
        return -EINVAL;
    const char *kv[2] = { key, value };
    cp_label_set *set;
    int rc = set_build(cp_labels_current(), kv, 1, &set);
    if (rc == 0)
        cp_label_set_release(cp_labels_swap(set));
    return rc;
}

int cpprof_labels_get(const char *key, char *buf, size_t len)
{
    if (!key || !*key || (!buf && len > 0))
        return -EINVAL;
    const cp_label_set *set = cp_labels_current();
    for (size_t i = 0; set && i < set->n; i++) {
        if (strcmp(set->kv[i].key, key) != 0)
            continue;
        size_t vl = strlen(set->kv[i].value);
        if (len > 0) {
            size_t c = vl < len - 1 ? vl : len - 1;
            memcpy(buf, set->kv[i].value, c);
            buf[c] = '\0';
        }
        return vl > INT32_MAX ? INT32_MAX : (int)vl;
    }
    return -ENOENT;
}

void cpprof_labels_clear(void)
{
    cp_label_set_release(cp_labels_swap(NULL));
}

int cpprof_labels_do(const char *const *kv, void (*fn)(void *arg), void *arg)
{
    if (!kv || !fn)
        return -EINVAL;
    size_t n = 0;
    while (kv[n]) {
        if (!kv[n + 1] || !*kv[n])
            return -EINVAL; /* odd list or empty key */
        n += 2;
    }
    cp_label_set *set;
    int rc = set_build(cp_labels_current(), kv, n / 2, &set);
    if (rc != 0)
        return rc;
    cp_label_set *prev = cp_labels_swap(set); /* we hold prev's ref */
    fn(arg);
    cp_label_set_release(cp_labels_swap(prev));
    return 0;
}
