/*
 * encode/text.c - the legacy text format (debug=1), see encode/text.h.
 *
 * Called by the registry and samplers in normal thread context;
 * reentrant.  Not for signal handlers (allocates, symbolizes).
 *
 * Go writes this format through a text/tabwriter (minwidth 1, tabwidth 8,
 * padding 1, padchar '\t').  Only the "#" frame lines contain tabs, and
 * each stack's lines sit between tab-free lines ("COUNT @ ..." before,
 * the blank line after), so each stack is one set of tabwriter column
 * blocks and cp_text_write_stack aligns it by itself, the way the
 * tabwriter would: a column's width is its widest cell in a run of
 * consecutive lines having that column, plus one, rounded up to a whole
 * tab stop, and cells are padded with tabs.
 */
#include "encode/text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/writer.h"

#define MAX_INLINE 32
#define TABWIDTH 8
#define NCOLS 4 /* "#", pc, func+off, file:line */

/* One "#" line: the cells are formatted when written; function and file
 * point into the symbolizer, valid until it is released. */
typedef struct tline {
    uintptr_t pc, off;
    const char *function; /* NULL: the "#\t0xPC" form */
    const char *file;
    int line;
} tline;

/* Display width in runes, as the tabwriter counts (UTF-8). */
static size_t text_width(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static size_t hex_width(uintptr_t v)
{
    size_t n = 3; /* "0x" and at least one digit */
    while (v >>= 4)
        n++;
    return n;
}

/* Number of cells of a line, and the width of cell col. */
static int ncells(const tline *l)
{
    return l->function ? NCOLS : 2;
}

static size_t cell_width(const tline *l, int col)
{
    switch (col) {
    case 0:
        return 1; /* "#" */
    case 1:
        return hex_width(l->pc);
    default: /* only terminated cells are measured: col 2 */
        return text_width(l->function) + 1 + hex_width(l->off);
    }
}

static void frame_line(tline *l, uintptr_t pc, const cp_frame *f)
{
    l->pc = pc;
    l->function = f ? f->function : NULL;
    l->off = f && f->entry && f->entry <= pc ? pc - f->entry : 0;
    l->file = f && f->file ? f->file : "?";
    l->line = f ? f->line : 0;
}

/* Writes lines[0..n) aligned as Go's tabwriter would. */
static void write_aligned(cpprof_writer *w, const tline *lines, size_t n)
{
    /* pad[i][j]: tabs after cell j of line i (terminated cells only). */
    unsigned char (*pad)[NCOLS] = calloc(n ? n : 1, sizeof *pad);
    if (pad == NULL) {
        cp_writer_fail(w, -ENOMEM);
        return;
    }
    for (int col = 0; col < NCOLS - 1; col++) {
        size_t i = 0;
        while (i < n) {
            if (ncells(&lines[i]) - 1 <= col) {
                i++;
                continue;
            }
            size_t start = i, width = 1; /* minwidth */
            for (; i < n && ncells(&lines[i]) - 1 > col; i++) {
                size_t cw = cell_width(&lines[i], col) + 1; /* padding */
                if (cw > width)
                    width = cw;
            }
            size_t cellw = (width + TABWIDTH - 1) / TABWIDTH * TABWIDTH;
            for (size_t k = start; k < i; k++) {
                size_t t = (cellw - cell_width(&lines[k], col) + TABWIDTH - 1) /
                           TABWIDTH;
                pad[k][col] = (unsigned char)(t < 255 ? t : 255);
            }
        }
    }
    static const char tabs[] = "\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t";
    for (size_t i = 0; i < n; i++) {
        const tline *l = &lines[i];
        size_t t[NCOLS];
        for (int c = 0; c < NCOLS; c++)
            t[c] = pad[i][c] < sizeof tabs - 1 ? pad[i][c] : sizeof tabs - 1;
        if (l->function == NULL) {
            cp_writer_printf(w, "#%.*s0x%" PRIxPTR "\n", (int)t[0], tabs,
                             l->pc);
            continue;
        }
        cp_writer_printf(w, "#%.*s0x%" PRIxPTR "%.*s%s+0x%" PRIxPTR "%.*s%s:%d\n",
                         (int)t[0], tabs, l->pc, (int)t[1], tabs, l->function,
                         l->off, (int)t[2], tabs, l->file, l->line);
    }
    free(pad);
}

int cp_text_write_stack(cpprof_writer *w, cp_symbolizer *s,
                        const uintptr_t *pcs, size_t depth, bool leaf_is_pc)
{
    if (w == NULL || (depth && pcs == NULL))
        return -EINVAL;
    size_t cap = depth ? depth : 1, n = 0;
    tline *lines = malloc(cap * sizeof *lines);
    if (lines == NULL)
        return cp_writer_fail(w, -ENOMEM);
    for (size_t k = 0; k < depth; k++) {
        /* Return addresses are looked up (and shown) at pc - 1, inside
         * the call, as Go's CallersFrames reports them. */
        uintptr_t pc = pcs[k];
        if ((k > 0 || !leaf_is_pc) && pc > 0)
            pc--;
        cp_frame frames[MAX_INLINE];
        size_t nf = s ? cp_symbolize(s, pc, frames, MAX_INLINE) : 0;
        size_t known = 0;
        for (size_t f = 0; f < nf; f++)
            known += frames[f].function != NULL;
        if (n + (known ? known : 1) > cap) {
            cap = 2 * cap + known + 1;
            tline *nl = realloc(lines, cap * sizeof *lines);
            if (nl == NULL) {
                free(lines);
                return cp_writer_fail(w, -ENOMEM);
            }
            lines = nl;
        }
        if (known == 0)
            frame_line(&lines[n++], pc, NULL);
        for (size_t f = 0; f < nf; f++)
            if (frames[f].function != NULL)
                frame_line(&lines[n++], pc, &frames[f]);
    }
    write_aligned(w, lines, n);
    free(lines);
    return cp_writer_write(w, "\n", 1);
}

/* ------------------------------------------------------ count profiles */

/* Appends s quoted as Go's %q would (ASCII escapes). */
static void write_quoted(cpprof_writer *w, const char *s)
{
    cp_writer_write(w, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            cp_writer_printf(w, "\\%c", *p);
        else if (*p == '\n')
            cp_writer_write(w, "\\n", 2);
        else if (*p == '\t')
            cp_writer_write(w, "\\t", 2);
        else if (*p < 0x20 || *p == 0x7f)
            cp_writer_printf(w, "\\x%02x", *p);
        else
            cp_writer_write(w, p, 1);
    }
    cp_writer_write(w, "\"", 1);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "\n# labels: {"k":"v", ...}" with entries sorted, like Go's labelMap. */
static int write_labels(cpprof_writer *w, const cp_sample *s)
{
    cpprof_writer *tmp;
    int rc = cpprof_writer_open_buffer(&tmp);
    if (rc != 0)
        return rc;
    size_t *off = malloc(s->nlabels * sizeof *off);
    char **kv = malloc(s->nlabels * sizeof *kv);
    if (off == NULL || kv == NULL)
        rc = -ENOMEM;
    for (size_t i = 0; rc == 0 && i < s->nlabels; i++) {
        size_t len;
        cpprof_writer_data(tmp, &len);
        off[i] = len;
        write_quoted(tmp, s->labels[i].key);
        cp_writer_write(tmp, ":", 1);
        if (s->labels[i].str)
            write_quoted(tmp, s->labels[i].str);
        else
            cp_writer_printf(tmp, "%" PRId64, s->labels[i].num);
        rc = cp_writer_write(tmp, "", 1);
    }
    if (rc == 0) {
        const char *base = cpprof_writer_data(tmp, NULL);
        for (size_t i = 0; i < s->nlabels; i++)
            kv[i] = (char *)base + off[i];
        qsort(kv, s->nlabels, sizeof *kv, cmp_str);
        cp_writer_write(w, "\n# labels: {", 12);
        for (size_t i = 0; i < s->nlabels; i++)
            cp_writer_printf(w, "%s%s", i ? ", " : "", kv[i]);
        rc = cp_writer_write(w, "}", 1);
    }
    free(off);
    free(kv);
    cpprof_writer_close(tmp);
    return rc;
}

typedef struct rec {
    const char *key;
    const cp_sample *s;
    int64_t count;
} rec;

static int by_key(const void *a, const void *b)
{
    return strcmp(((const rec *)a)->key, ((const rec *)b)->key);
}

/* Go's keysByCount: higher count first, then key order. */
static int by_count(const void *a, const void *b)
{
    const rec *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->key, y->key);
}

int cp_text_write_count(const cp_profile *p, cpprof_writer *w)
{
    if (w == NULL)
        return -EINVAL;
    if (p == NULL || p->ntypes != 1)
        return cp_writer_fail(w, -EINVAL);
    /* Keys ("@ 0x.. 0x..[\n# labels: ...]"), NUL-separated, in a buffer
     * writer; offsets become pointers once it stops growing. */
    cpprof_writer *keys;
    int rc = cpprof_writer_open_buffer(&keys);
    if (rc != 0)
        return cp_writer_fail(w, rc);
    rec *r = calloc(p->nsamples ? p->nsamples : 1, sizeof *r);
    size_t *off = calloc(p->nsamples ? p->nsamples : 1, sizeof *off);
    if (r == NULL || off == NULL)
        rc = -ENOMEM;
    int64_t total = 0;
    for (size_t i = 0; rc == 0 && i < p->nsamples; i++) {
        const cp_sample *s = &p->samples[i];
        cpprof_writer_data(keys, &off[i]);
        cp_writer_write(keys, "@", 1);
        for (size_t k = 0; k < s->depth; k++)
            cp_writer_printf(keys, " 0x%" PRIxPTR, s->pcs[k]);
        if (s->nlabels)
            write_labels(keys, s);
        rc = cp_writer_write(keys, "", 1);
        r[i].s = s;
        r[i].count = s->values[0];
        total += s->values[0];
    }
    size_t n = 0;
    if (rc == 0 && p->nsamples) {
        const char *base = cpprof_writer_data(keys, NULL);
        for (size_t i = 0; i < p->nsamples; i++)
            r[i].key = base + off[i];
        /* Merge samples with equal keys, as Go counts by key. */
        qsort(r, p->nsamples, sizeof *r, by_key);
        for (size_t i = 0; i < p->nsamples; i++) {
            if (n > 0 && strcmp(r[n - 1].key, r[i].key) == 0)
                r[n - 1].count += r[i].count;
            else
                r[n++] = r[i];
        }
        qsort(r, n, sizeof *r, by_count);
    }
    cp_symbolizer *sym = NULL;
    if (rc == 0) {
        sym = cp_symbolizer_acquire(); /* NULL: addresses only */
        cp_writer_printf(w, "%s profile: total %" PRId64 "\n", p->name,
                         total);
        for (size_t i = 0; i < n; i++) {
            cp_writer_printf(w, "%" PRId64 " %s\n", r[i].count, r[i].key);
            cp_text_write_stack(w, sym, r[i].s->pcs, r[i].s->depth,
                                p->leaf_is_pc);
        }
        if (sym)
            cp_symbolizer_release(sym);
        rc = cp_writer_flush(w);
    }
    free(r);
    free(off);
    cpprof_writer_close(keys);
    return rc ? cp_writer_fail(w, rc) : 0;
}
