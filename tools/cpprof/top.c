/*
 * tools/cpprof/top.c - `cpprof top FILE`: the flat/cum table of
 * `go tool pprof -top`, read with cpprof's own decoder (encode/decode.h),
 * for machines without Go.
 *
 * Called from main.c in the CLI process (single-threaded, normal
 * context).  Granularity is the function, as pprof's default: inlined
 * functions count as frames of their own, flat time goes to the
 * innermost function of the leaf location, and cum counts each function
 * once per sample however often it recurs in the stack.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpprof.h"
#include "encode/decode.h"
#include "cli.h"

/* Room for the name of an unsymbolized location: "[file]" or "0x...". */
#define NAME_MAX_LEN 64

typedef struct node {
    const char *name;
    int64_t flat, cum;
    size_t stamp; /* last sample (index + 1) that added to cum */
} node;

/* Per location: the node of each line, innermost first. */
typedef struct loc_nodes {
    size_t *idx;
    size_t n;
} loc_nodes;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted by flat, then cum (both descending), then name: pprof's order. */
static int cmp_node(const void *a, const void *b)
{
    const node *x = a, *y = b;
    if (x->flat != y->flat)
        return x->flat > y->flat ? -1 : 1;
    if (x->cum != y->cum)
        return x->cum > y->cum ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Formats v in unit the way pprof scales it ("1.50s", "512kB", "42"). */
static void format_value(char *buf, size_t len, int64_t v, const char *unit)
{
    static const struct {
        const char *unit, *suffix;
        double div;
    } scales[] = {
        {"nanoseconds", "s", 1e9}, {"nanoseconds", "ms", 1e6},
        {"nanoseconds", "us", 1e3}, {"nanoseconds", "ns", 1},
        {"bytes", "GB", 1073741824.0}, {"bytes", "MB", 1048576.0},
        {"bytes", "kB", 1024.0}, {"bytes", "B", 1},
    };
    if (v == 0) {
        snprintf(buf, len, "0");
        return;
    }
    double a = fabs((double)v);
    for (size_t i = 0; unit && i < sizeof scales / sizeof scales[0]; i++) {
        if (strcmp(unit, scales[i].unit) != 0)
            continue;
        if (a < scales[i].div && scales[i].div != 1)
            continue;
        double s = (double)v / scales[i].div;
        if (s == floor(s))
            snprintf(buf, len, "%.0f%s", s, scales[i].suffix);
        else
            snprintf(buf, len, "%.2f%s", s, scales[i].suffix);
        return;
    }
    snprintf(buf, len, "%" PRId64, v);
}

static void top_usage(FILE *f)
{
    fprintf(f, "usage: cpprof top [-n N] [-sample_index NAME|INDEX] FILE\n"
               "  Prints the functions with the most flat samples, like "
               "`go tool pprof -top FILE`.\n");
}

/* Builds the node names: every function name, and a hex address for each
 * location that has no symbol information.  Returns the sorted, unique
 * names (strings owned by d or by *owned). */
static const char **collect_names(const cp_decoded *d, size_t *count,
                                  char **owned)
{
    size_t cap = d->nfunctions + d->nlocations + 1;
    const char **names = malloc(cap * sizeof *names);
    *owned = malloc(d->nlocations * NAME_MAX_LEN + 1);
    if (!names || !*owned) {
        free(names);
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < d->nfunctions; i++) {
        const char *s = d->functions[i].name;
        if (!s || !*s)
            s = d->functions[i].system_name;
        names[n++] = s && *s ? s : "?";
    }
    for (size_t i = 0; i < d->nlocations; i++) {
        if (d->locations[i].nlines)
            continue;
        /* pprof names code it cannot symbolize after its file. */
        char *s = *owned + i * NAME_MAX_LEN;
        const cp_dec_mapping *m = cp_decoded_mapping(d, d->locations[i].mapping_id);
        const char *base = m && m->filename ? strrchr(m->filename, '/') : NULL;
        base = base ? base + 1 : m && m->filename ? m->filename : "";
        if (*base)
            snprintf(s, NAME_MAX_LEN, "[%s]", base);
        else
            snprintf(s, NAME_MAX_LEN, "%#" PRIx64, d->locations[i].address);
        names[n++] = s;
    }
    qsort(names, n, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0)
            names[u++] = names[i];
    *count = u;
    return names;
}

static size_t name_index(const char **names, size_t n, const char *s)
{
    const char **hit = bsearch(&s, names, n, sizeof *names, cmp_str);
    return hit ? (size_t)(hit - names) : 0;
}

static const char *function_name(const cp_decoded *d, uint64_t fid)
{
    const cp_dec_function *f = cp_decoded_function(d, fid);
    const char *s = f ? f->name : NULL;
    if ((!s || !*s) && f)
        s = f->system_name;
    return s && *s ? s : "?";
}

static int top_print(const cp_decoded *d, const char *file, int limit,
                     const char *sample_index)
{
    if (d->ntypes == 0) {
        fprintf(stderr, "cpprof top: %s: profile has no sample types\n", file);
        return 1;
    }
    /* pprof's default: the profile's default type, else the last one. */
    int vi = (int)d->ntypes - 1;
    if (d->default_sample_type && *d->default_sample_type) {
        int i = cp_decoded_type_index(d, d->default_sample_type);
        if (i >= 0)
            vi = i;
    }
    if (sample_index) {
        char *end;
        long i = strtol(sample_index, &end, 10);
        if (*sample_index && !*end)
            vi = i >= 0 && (size_t)i < d->ntypes ? (int)i : -1;
        else
            vi = cp_decoded_type_index(d, sample_index);
        if (vi < 0) {
            fprintf(stderr, "cpprof top: sample_index %s: no such sample type "
                            "(have:", sample_index);
            for (size_t t = 0; t < d->ntypes; t++)
                fprintf(stderr, " %s", d->sample_types[t].type);
            fprintf(stderr, ")\n");
            return 2;
        }
    }

    char *owned = NULL;
    size_t nnodes = 0;
    const char **names = collect_names(d, &nnodes, &owned);
    node *nodes = names ? calloc(nnodes + 1, sizeof *nodes) : NULL;
    loc_nodes *locs = calloc(d->nlocations + 1, sizeof *locs);
    if (!names || !nodes || !locs) {
        fprintf(stderr, "cpprof top: out of memory\n");
        free(names), free(owned), free(nodes), free(locs);
        return 1;
    }
    for (size_t i = 0; i < nnodes; i++)
        nodes[i].name = names[i];
    for (size_t i = 0; i < d->nlocations; i++) {
        const cp_dec_location *l = &d->locations[i];
        size_t n = l->nlines ? l->nlines : 1;
        locs[i].idx = malloc(n * sizeof(size_t));
        if (!locs[i].idx)
            continue;
        locs[i].n = n;
        if (!l->nlines)
            locs[i].idx[0] = name_index(names, nnodes, owned + i * NAME_MAX_LEN);
        for (size_t k = 0; k < l->nlines; k++)
            locs[i].idx[k] = name_index(
                names, nnodes, function_name(d, l->lines[k].function_id));
    }

    int64_t total = 0;
    for (size_t s = 0; s < d->nsamples; s++) {
        const cp_dec_sample *sm = &d->samples[s];
        if ((size_t)vi >= sm->nvalues || sm->nlocs == 0)
            continue;
        int64_t v = sm->values[vi];
        total += v;
        for (size_t j = 0; j < sm->nlocs; j++) {
            const cp_dec_location *l = cp_decoded_location(d, sm->location_ids[j]);
            if (!l)
                continue;
            const loc_nodes *ln = &locs[l - d->locations];
            for (size_t k = 0; k < ln->n; k++) {
                node *nd = &nodes[ln->idx[k]];
                if (j == 0 && k == 0)
                    nd->flat += v;
                if (nd->stamp != s + 1) {
                    nd->stamp = s + 1;
                    nd->cum += v;
                }
            }
        }
    }
    qsort(nodes, nnodes, sizeof *nodes, cmp_node);
    size_t shown = 0, nonzero = 0;
    for (size_t i = 0; i < nnodes; i++)
        if (nodes[i].flat || nodes[i].cum)
            nonzero++;
    shown = limit > 0 && (size_t)limit < nonzero ? (size_t)limit : nonzero;

    const char *unit = d->sample_types[vi].unit;
    const char *type = d->sample_types[vi].type;
    int64_t shown_flat = 0;
    for (size_t i = 0; i < shown; i++)
        shown_flat += nodes[i].flat;
    char a[32], b[32];
    format_value(a, sizeof a, shown_flat, unit);
    format_value(b, sizeof b, total, unit);
    double pct_base = total ? (double)total : 1.0;
    printf("File: %s\n", file);
    printf("Type: %s\n", type ? type : "");
    if (d->duration_nanos > 0)
        printf("Duration: %.2fs\n", (double)d->duration_nanos / 1e9);
    printf("Showing nodes accounting for %s, %.2f%% of %s total\n", a,
           100.0 * (double)shown_flat / pct_base, b);
    if (shown < nonzero)
        printf("Showing top %zu nodes out of %zu\n", shown, nonzero);
    printf("%10s %6s %6s %10s %6s\n", "flat", "flat%", "sum%", "cum", "cum%");
    int64_t sum = 0;
    for (size_t i = 0; i < shown; i++) {
        sum += nodes[i].flat;
        format_value(a, sizeof a, nodes[i].flat, unit);
        format_value(b, sizeof b, nodes[i].cum, unit);
        printf("%10s %5.2f%% %5.2f%% %10s %5.2f%%  %s\n", a,
               100.0 * (double)nodes[i].flat / pct_base,
               100.0 * (double)sum / pct_base, b,
               100.0 * (double)nodes[i].cum / pct_base, nodes[i].name);
    }
    for (size_t i = 0; i < d->nlocations; i++)
        free(locs[i].idx);
    free(locs);
    free(nodes);
    free(names);
    free(owned);
    return 0;
}

int cp_cli_top(int argc, char **argv)
{
    int limit = 20;
    const char *file = NULL, *sample_index = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "-help") || !strcmp(a, "--help")) {
            top_usage(stdout);
            return 0;
        }
        if (!strcmp(a, "-n") || !strcmp(a, "-nodecount") ||
            !strcmp(a, "-sample_index")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "cpprof top: flag needs an argument: %s\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "-sample_index")) {
                sample_index = v;
                continue;
            }
            char *end;
            long n = strtol(v, &end, 10);
            if (!*v || *end || n < 0 || n > 1000000) {
                fprintf(stderr, "cpprof top: invalid value \"%s\" for flag %s: "
                                "must be an integer >= 0 (0: all)\n", v, a);
                return 2;
            }
            limit = (int)n;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "cpprof top: flag provided but not defined: %s\n", a);
            top_usage(stderr);
            return 2;
        }
        if (file) {
            fprintf(stderr, "cpprof top: one profile at a time (got %s and %s)\n",
                    file, a);
            return 2;
        }
        file = a;
    }
    if (!file) {
        top_usage(stderr);
        return 2;
    }
    cp_decoded *d;
    int err = cp_decode_file(file, &d);
    if (err) {
        fprintf(stderr, "cpprof top: %s: %s\n", file,
                err == -EBADMSG ? "not a profile (bad gzip or profile.proto data)"
                                : cpprof_strerror(err));
        return 1;
    }
    int rc = top_print(d, file, limit, sample_index);
    cp_decoded_free(d);
    return rc;
}
