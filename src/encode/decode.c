/*
 * encode/decode.c - profile.proto decoder (see encode/decode.h).
 *
 * Two passes over the top-level message: the first collects the string
 * table and counts each repeated message, the second decodes them into
 * exactly sized arrays, resolving string indices as it goes (the string
 * table may come last on the wire).  Reentrant; normal thread context.
 */
#include "encode/decode.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "encode/gzip.h"
#include "encode/pb.h"

/* Field numbers of profile.proto. */
enum {
    P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4,
    P_FUNCTION = 5, P_STRING_TABLE = 6, P_DROP_FRAMES = 7, P_KEEP_FRAMES = 8,
    P_TIME_NANOS = 9, P_DURATION_NANOS = 10, P_PERIOD_TYPE = 11,
    P_PERIOD = 12, P_COMMENT = 13, P_DEFAULT_SAMPLE_TYPE = 14,
};

typedef struct dec {
    cp_decoded *d;
    size_t nstr; /* strings collected so far (pass 1) */
} dec;

/* Resolves string index v into *s. */
static int str_at(const cp_decoded *d, uint64_t v, const char **s)
{
    if (v >= d->nstrings)
        return -EBADMSG;
    *s = d->strings[v];
    return 0;
}

/* Iterates the fields of a nested message in a BYTES field. */
#define EACH_FIELD(outer, r, f, rc)                                        \
    for (cp_pb_reader r = {(outer)->data, (outer)->data + (outer)->len};  \
         ((rc) = cp_pb_next(&r, &f)) == 1;)

static int value_type(const cp_decoded *d, const cp_pb_field *m,
                      cp_dec_value_type *vt)
{
    cp_pb_field f;
    int rc, err = 0;
    vt->type = vt->unit = d->strings[0];
    EACH_FIELD(m, r, f, rc) {
        if (f.num == 1 && f.wire == CP_PB_VARINT)
            err = str_at(d, f.u, &vt->type);
        else if (f.num == 2 && f.wire == CP_PB_VARINT)
            err = str_at(d, f.u, &vt->unit);
        if (err)
            return err;
    }
    return rc;
}

/* A growable array of uint64 for repeated varints. */
typedef struct u64vec {
    uint64_t *v;
    size_t n, cap;
} u64vec;

static int u64vec_push(void *ctx, uint64_t x)
{
    u64vec *vec = ctx;
    if (vec->n == vec->cap) {
        size_t cap = vec->cap ? vec->cap * 2 : 8;
        uint64_t *v = realloc(vec->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        vec->v = v;
        vec->cap = cap;
    }
    vec->v[vec->n++] = x;
    return 0;
}

static int label(const cp_decoded *d, const cp_pb_field *m, cp_dec_label *l)
{
    cp_pb_field f;
    int rc, err = 0;
    memset(l, 0, sizeof *l);
    l->key = d->strings[0];
    EACH_FIELD(m, r, f, rc) {
        if (f.wire != CP_PB_VARINT)
            continue;
        switch (f.num) {
        case 1: err = str_at(d, f.u, &l->key); break;
        case 2: if (f.u) err = str_at(d, f.u, &l->str); break;
        case 3: l->num = (int64_t)f.u; break;
        case 4: if (f.u) err = str_at(d, f.u, &l->num_unit); break;
        }
        if (err)
            return err;
    }
    return rc;
}

static int sample(const cp_decoded *d, const cp_pb_field *m, cp_dec_sample *s)
{
    cp_pb_field f;
    int rc, err = 0;
    u64vec locs = {0}, vals = {0};
    size_t nlabels = 0;
    EACH_FIELD(m, r, f, rc) {
        if (f.num == 1)
            err = cp_pb_each_varint(&f, u64vec_push, &locs);
        else if (f.num == 2)
            err = cp_pb_each_varint(&f, u64vec_push, &vals);
        else if (f.num == 3 && f.wire == CP_PB_BYTES)
            nlabels++;
        if (err)
            break;
    }
    s->location_ids = locs.v;
    s->nlocs = locs.n;
    s->values = (int64_t *)vals.v; /* same size and representation */
    s->nvalues = vals.n;
    if (err || rc < 0)
        return err ? err : rc;
    if (nlabels == 0)
        return 0;
    if ((s->labels = calloc(nlabels, sizeof *s->labels)) == NULL)
        return -ENOMEM;
    EACH_FIELD(m, r, f, rc) {
        if (f.num == 3 && f.wire == CP_PB_BYTES &&
            (err = label(d, &f, &s->labels[s->nlabels++])) != 0)
            return err;
    }
    return rc;
}

static int line(const cp_pb_field *m, cp_dec_line *l)
{
    cp_pb_field f;
    int rc;
    memset(l, 0, sizeof *l);
    EACH_FIELD(m, r, f, rc) {
        if (f.num == 1 && f.wire == CP_PB_VARINT)
            l->function_id = f.u;
        else if (f.num == 2 && f.wire == CP_PB_VARINT)
            l->line = (int64_t)f.u;
    }
    return rc;
}

static int location(const cp_pb_field *m, cp_dec_location *l)
{
    cp_pb_field f;
    int rc, err = 0;
    size_t nlines = 0;
    EACH_FIELD(m, r, f, rc) {
        if (f.wire == CP_PB_VARINT) {
            if (f.num == 1)
                l->id = f.u;
            else if (f.num == 2)
                l->mapping_id = f.u;
            else if (f.num == 3)
                l->address = f.u;
            else if (f.num == 5)
                l->is_folded = f.u != 0;
        } else if (f.num == 4 && f.wire == CP_PB_BYTES) {
            nlines++;
        }
    }
    if (rc < 0 || nlines == 0)
        return rc;
    if ((l->lines = calloc(nlines, sizeof *l->lines)) == NULL)
        return -ENOMEM;
    EACH_FIELD(m, r, f, rc) {
        if (f.num == 4 && f.wire == CP_PB_BYTES &&
            (err = line(&f, &l->lines[l->nlines++])) != 0)
            return err;
    }
    return rc;
}

static int function(const cp_decoded *d, const cp_pb_field *m,
                    cp_dec_function *fn)
{
    cp_pb_field f;
    int rc, err = 0;
    fn->name = fn->system_name = fn->filename = d->strings[0];
    EACH_FIELD(m, r, f, rc) {
        if (f.wire != CP_PB_VARINT)
            continue;
        switch (f.num) {
        case 1: fn->id = f.u; break;
        case 2: err = str_at(d, f.u, &fn->name); break;
        case 3: err = str_at(d, f.u, &fn->system_name); break;
        case 4: err = str_at(d, f.u, &fn->filename); break;
        case 5: fn->start_line = (int64_t)f.u; break;
        }
        if (err)
            return err;
    }
    return rc;
}

static int mapping(const cp_decoded *d, const cp_pb_field *m,
                   cp_dec_mapping *mp)
{
    cp_pb_field f;
    int rc, err = 0;
    mp->filename = mp->build_id = d->strings[0];
    EACH_FIELD(m, r, f, rc) {
        if (f.wire != CP_PB_VARINT)
            continue;
        switch (f.num) {
        case 1: mp->id = f.u; break;
        case 2: mp->start = f.u; break;
        case 3: mp->limit = f.u; break;
        case 4: mp->offset = f.u; break;
        case 5: err = str_at(d, f.u, &mp->filename); break;
        case 6: err = str_at(d, f.u, &mp->build_id); break;
        case 7: mp->has_functions = f.u != 0; break;
        case 8: mp->has_filenames = f.u != 0; break;
        case 9: mp->has_line_numbers = f.u != 0; break;
        case 10: mp->has_inline_frames = f.u != 0; break;
        }
        if (err)
            return err;
    }
    return rc;
}

static int comment_push(void *ctx, uint64_t v)
{
    cp_decoded *d = ctx;
    return str_at(d, v, &d->comments[d->ncomments++]);
}

/* Pass 1: the string table and the size of each repeated field. */
static int scan(cp_decoded *d, const uint8_t *buf, size_t len,
                size_t counts[16])
{
    cp_pb_reader r;
    cp_pb_field f;
    int rc;
    size_t bytes = 0;
    cp_pb_reader_init(&r, buf, len);
    while ((rc = cp_pb_next(&r, &f)) == 1) {
        if (f.num < 16)
            counts[f.num]++;
        if (f.num == P_STRING_TABLE && f.wire == CP_PB_BYTES)
            bytes += f.len + 1;
        if (f.num == P_COMMENT && f.wire == CP_PB_BYTES)
            counts[P_COMMENT] += f.len; /* upper bound of packed count */
    }
    if (rc < 0)
        return rc;
    size_t n = counts[P_STRING_TABLE];
    d->strings = calloc(n ? n : 1, sizeof *d->strings);
    char *store = malloc(bytes + 1);
    if (d->strings == NULL || store == NULL) {
        free(store);
        return -ENOMEM;
    }
    /* strings[0] owns the whole store; an empty table still gets "". */
    store[0] = '\0';
    d->strings[0] = store;
    cp_pb_reader_init(&r, buf, len);
    while (cp_pb_next(&r, &f) == 1) {
        if (f.num != P_STRING_TABLE || f.wire != CP_PB_BYTES)
            continue;
        memcpy(store, f.data, f.len);
        store[f.len] = '\0';
        d->strings[d->nstrings++] = store;
        store += f.len + 1;
    }
    if (d->nstrings == 0)
        d->nstrings = 1;
    return 0;
}

static int alloc_arrays(cp_decoded *d, const size_t c[16])
{
#define ALLOC(field, n) \
    ((n) && ((d->field = calloc((n), sizeof *d->field)) == NULL))
    if (ALLOC(sample_types, c[P_SAMPLE_TYPE]) || ALLOC(samples, c[P_SAMPLE]) ||
        ALLOC(mappings, c[P_MAPPING]) || ALLOC(locations, c[P_LOCATION]) ||
        ALLOC(functions, c[P_FUNCTION]) || ALLOC(comments, c[P_COMMENT]))
        return -ENOMEM;
#undef ALLOC
    return 0;
}

/* Pass 2: everything else. */
static int fill(cp_decoded *d, const uint8_t *buf, size_t len)
{
    cp_pb_reader r;
    cp_pb_field f;
    int rc, err = 0;
    cp_pb_reader_init(&r, buf, len);
    while ((rc = cp_pb_next(&r, &f)) == 1) {
        bool msg = f.wire == CP_PB_BYTES, num = f.wire == CP_PB_VARINT;
        switch (f.num) {
        case P_SAMPLE_TYPE:
            if (msg)
                err = value_type(d, &f, &d->sample_types[d->ntypes++]);
            break;
        case P_SAMPLE:
            if (msg)
                err = sample(d, &f, &d->samples[d->nsamples++]);
            break;
        case P_MAPPING:
            if (msg)
                err = mapping(d, &f, &d->mappings[d->nmappings++]);
            break;
        case P_LOCATION:
            if (msg)
                err = location(&f, &d->locations[d->nlocations++]);
            break;
        case P_FUNCTION:
            if (msg)
                err = function(d, &f, &d->functions[d->nfunctions++]);
            break;
        case P_DROP_FRAMES:
            if (num)
                err = str_at(d, f.u, &d->drop_frames);
            break;
        case P_KEEP_FRAMES:
            if (num)
                err = str_at(d, f.u, &d->keep_frames);
            break;
        case P_TIME_NANOS:
            if (num)
                d->time_nanos = (int64_t)f.u;
            break;
        case P_DURATION_NANOS:
            if (num)
                d->duration_nanos = (int64_t)f.u;
            break;
        case P_PERIOD_TYPE:
            if (msg)
                err = value_type(d, &f, &d->period_type);
            break;
        case P_PERIOD:
            if (num)
                d->period = (int64_t)f.u;
            break;
        case P_COMMENT:
            err = cp_pb_each_varint(&f, comment_push, d);
            break;
        case P_DEFAULT_SAMPLE_TYPE:
            if (num)
                err = str_at(d, f.u, &d->default_sample_type);
            break;
        }
        if (err)
            return err;
    }
    return rc;
}

int cp_decode(const void *data, size_t len, cp_decoded **out)
{
    if (data == NULL && len != 0)
        return -EINVAL;
    uint8_t *raw = NULL;
    const uint8_t *buf = data;
    if (cp_is_gzip(data, len)) {
        int rc = cp_gunzip(data, len, &raw, &len);
        if (rc != 0)
            return rc;
        buf = raw;
    }
    cp_decoded *d = calloc(1, sizeof *d);
    size_t counts[16] = {0};
    int rc = d ? scan(d, buf, len, counts) : -ENOMEM;
    if (rc == 0)
        rc = alloc_arrays(d, counts);
    if (rc == 0) {
        d->drop_frames = d->keep_frames = d->strings[0];
        d->period_type.type = d->period_type.unit = d->strings[0];
        d->default_sample_type = d->strings[0];
        rc = fill(d, buf, len);
    }
    /* profile.proto requires string_table[0] == "". */
    if (rc == 0 && d->strings[0][0] != '\0')
        rc = -EBADMSG;
    free(raw);
    if (rc != 0) {
        cp_decoded_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

int cp_decode_file(const char *path, cp_decoded **out)
{
    if (path == NULL)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (n == cap) {
            uint8_t *b = realloc(buf, cap * 2);
            if (b == NULL) {
                rc = -ENOMEM;
                break;
            }
            buf = b;
            cap *= 2;
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            rc = -errno;
        else if (k == 0)
            break;
        else
            n += (size_t)k;
    }
    close(fd);
    if (rc == 0)
        rc = cp_decode(buf, n, out);
    free(buf);
    return rc;
}

void cp_decoded_free(cp_decoded *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nsamples; i++) {
        free(d->samples[i].location_ids);
        free(d->samples[i].values);
        free(d->samples[i].labels);
    }
    for (size_t i = 0; i < d->nlocations; i++)
        free(d->locations[i].lines);
    if (d->strings != NULL)
        free(d->strings[0]);
    free(d->strings);
    free(d->sample_types);
    free(d->samples);
    free(d->mappings);
    free(d->locations);
    free(d->functions);
    free(d->comments);
    free(d);
}

/* Ids are usually index + 1 (we write them so); fall back to a scan. */
#define LOOKUP(arr, n, id)                                                 \
    do {                                                                   \
        if ((id) >= 1 && (id) <= (n) && (arr)[(id) - 1].id == (id))        \
            return &(arr)[(id) - 1];                                       \
        for (size_t i_ = 0; i_ < (n); i_++)                                \
            if ((arr)[i_].id == (id))                                      \
                return &(arr)[i_];                                         \
        return NULL;                                                       \
    } while (0)

const cp_dec_location *cp_decoded_location(const cp_decoded *d, uint64_t id)
{
    LOOKUP(d->locations, d->nlocations, id);
}

const cp_dec_function *cp_decoded_function(const cp_decoded *d, uint64_t id)
{
    LOOKUP(d->functions, d->nfunctions, id);
}

const cp_dec_mapping *cp_decoded_mapping(const cp_decoded *d, uint64_t id)
{
    LOOKUP(d->mappings, d->nmappings, id);
}

int cp_decoded_type_index(const cp_decoded *d, const char *type)
{
    for (size_t i = 0; i < d->ntypes; i++)
        if (strcmp(d->sample_types[i].type, type) == 0)
            return (int)i;
    return -1;
}

int64_t cp_decoded_total(const cp_decoded *d, size_t i)
{
    int64_t sum = 0;
    for (size_t k = 0; k < d->nsamples; k++)
        if (i < d->samples[k].nvalues)
            sum += d->samples[k].values[i];
    return sum;
}
