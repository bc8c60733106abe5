/*
 * encode/proto.c - profile model -> profile.proto (gzip'd unless
 * CP_PROTO_NO_GZIP), see encode/proto.h.
 *
 * Called by the registry, samplers, the HTTP handlers and the service in
 * normal thread context; reentrant (all state is per call).  Never from a
 * signal handler: it allocates, symbolizes and takes the loader lock.
 *
 * Shape of the output, in wire order: sample types; then, per sample, the
 * Location (and Function) messages for addresses not seen before followed
 * by the Sample; then every Mapping of the process (with has_* flags
 * computed from what symbolization produced for its locations); then the
 * string table and the scalar fields.  Repeated fields may interleave on
 * the wire, so this streams with bounded memory, like Go's builder.
 *
 * Addresses: when leaf_is_pc only a stack's first pc is exact; every
 * other pc is a return address and is symbolized and written as pc - 1,
 * inside the call instruction, so pprof never shifts it to the next line.
 */
#include "encode/proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/writer.h"
#include "encode/gzip.h"
#include "encode/pb.h"
#include "model/hash.h"
#include "model/mappings.h"
#include "model/symbolize.h"

/* Field numbers of profile.proto. */
enum {
    P_SAMPLE_TYPE = 1, P_SAMPLE = 2, P_MAPPING = 3, P_LOCATION = 4,
    P_FUNCTION = 5, P_STRING_TABLE = 6, P_TIME_NANOS = 9,
    P_DURATION_NANOS = 10, P_PERIOD_TYPE = 11, P_PERIOD = 12,
    P_COMMENT = 13, P_DEFAULT_SAMPLE_TYPE = 14,
};

#define MAX_INLINE 32 /* frames kept per address (inline chain) */

typedef struct fnkey {
    int64_t name, system_name, file, start_line;
} fnkey;

/* A distinct stack of the model (pcs pointer) -> its location ids. */
typedef struct stk {
    const uintptr_t *pcs;
    size_t off; /* into enc.locpool */
} stk;

/* What symbolization produced for one mapping's locations. */
typedef struct mstat {
    size_t nlocs, with_fn, with_file, with_line, with_inline;
    uintptr_t any_addr;
} mstat;

typedef struct enc {
    const cp_profile *p;
    bool symbols;
    cp_pb pb;
    cp_symbolizer *sym;
    cp_mappings *maps;
    mstat *mstats;
    int err; /* first table error (-ENOMEM) */

    cp_hindex str_index;
    const char **strv;
    size_t nstr, capstr;

    cp_hindex loc_index;
    uint64_t *loc_addr; /* by id - 1 */
    size_t nlocs, caplocs;

    cp_hindex fn_index;
    fnkey *fnv;
    size_t nfns, capfns;

    cp_hindex stk_index;
    stk *stkv;
    size_t nstks, capstks;
    uint64_t *locpool;
    size_t npool, cappool;
} enc;

/* Grows *v (element size sz) to hold n + 1; false and e->err on failure. */
static bool grow(enc *e, void **v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 256;
    while (c <= n)
        c *= 2;
    void *nv = realloc(*v, c * sz);
    if (nv == NULL) {
        e->err = -ENOMEM;
        return false;
    }
    *v = nv;
    *cap = c;
    return true;
}

/* ------------------------------------------------------------- strings */

typedef struct str_probe {
    const enc *e;
    const char *s;
} str_probe;

static bool str_eq(const void *ctx, uint32_t i)
{
    const str_probe *pr = ctx;
    return strcmp(pr->e->strv[i], pr->s) == 0;
}

/* Index of s in the string table (added if new).  s must outlive the
 * encoding: model strings, symbolizer results and mapping paths do. */
static int64_t str_id(enc *e, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return 0;
    uint64_t h = cp_hash_bytes(7, s, strlen(s));
    str_probe pr = {e, s};
    uint32_t i = cp_hindex_find(&e->str_index, h, str_eq, &pr);
    if (i != CP_HINDEX_NONE)
        return i;
    if (!grow(e, (void **)&e->strv, &e->capstr, e->nstr, sizeof *e->strv))
        return 0;
    if (cp_hindex_insert(&e->str_index, h, (uint32_t)e->nstr) != 0) {
        e->err = -ENOMEM;
        return 0;
    }
    e->strv[e->nstr] = s;
    return (int64_t)e->nstr++;
}

/* ----------------------------------------------------------- functions */

typedef struct fn_probe {
    const enc *e;
    const fnkey *k;
} fn_probe;

static bool fn_eq(const void *ctx, uint32_t i)
{
    const fn_probe *pr = ctx;
    return memcmp(&pr->e->fnv[i], pr->k, sizeof *pr->k) == 0;
}

/* Id of the Function for frame f, emitting it when new (0 on error). */
static uint64_t fn_id(enc *e, const cp_frame *f)
{
    fnkey k;
    memset(&k, 0, sizeof k);
    k.name = str_id(e, f->function);
    k.system_name = str_id(e, f->system_name ? f->system_name : f->function);
    k.file = str_id(e, f->file);
    k.start_line = f->start_line;
    uint64_t h = cp_hash_bytes(11, &k, sizeof k);
    fn_probe pr = {e, &k};
    uint32_t i = cp_hindex_find(&e->fn_index, h, fn_eq, &pr);
    if (i != CP_HINDEX_NONE)
        return (uint64_t)i + 1;
    if (!grow(e, (void **)&e->fnv, &e->capfns, e->nfns, sizeof *e->fnv))
        return 0;
    if (cp_hindex_insert(&e->fn_index, h, (uint32_t)e->nfns) != 0) {
        e->err = -ENOMEM;
        return 0;
    }
    e->fnv[e->nfns++] = k;
    uint64_t id = e->nfns;
    cp_pb_begin(&e->pb, P_FUNCTION);
    cp_pb_varint(&e->pb, 1, id);
    cp_pb_int64_opt(&e->pb, 2, k.name);
    cp_pb_int64_opt(&e->pb, 3, k.system_name);
    cp_pb_int64_opt(&e->pb, 4, k.file);
    cp_pb_int64_opt(&e->pb, 5, k.start_line);
    cp_pb_end(&e->pb);
    return id;
}

/* ----------------------------------------------------------- locations */

typedef struct loc_probe {
    const enc *e;
    uint64_t addr;
} loc_probe;

static bool loc_eq(const void *ctx, uint32_t i)
{
    const loc_probe *pr = ctx;
    return pr->e->loc_addr[i] == pr->addr;
}

/* Id of the Location at addr (an exact address), emitting it when new. */
static uint64_t loc_id(enc *e, uintptr_t addr)
{
    uint64_t h = cp_hash_u64(13, addr);
    loc_probe pr = {e, addr};
    uint32_t i = cp_hindex_find(&e->loc_index, h, loc_eq, &pr);
    if (i != CP_HINDEX_NONE)
        return (uint64_t)i + 1;
    if (!grow(e, (void **)&e->loc_addr, &e->caplocs, e->nlocs,
              sizeof *e->loc_addr))
        return 0;
    if (cp_hindex_insert(&e->loc_index, h, (uint32_t)e->nlocs) != 0) {
        e->err = -ENOMEM;
        return 0;
    }
    e->loc_addr[e->nlocs++] = addr;
    uint64_t id = e->nlocs;

    const cp_mapping *m = e->maps ? cp_mappings_find(e->maps, addr) : NULL;
    uint64_t mapping_id = m ? (uint64_t)(m - e->maps->v) + 1 : 0;
    cp_frame frames[MAX_INLINE];
    size_t nf = e->symbols ? cp_symbolize(e->sym, addr, frames, MAX_INLINE)
                           : 0;
    /* Function ids first: Function messages must not nest in this one. */
    uint64_t fids[MAX_INLINE];
    bool fn = false, file = true, line = true;
    for (size_t k = 0; k < nf; k++) {
        fids[k] = frames[k].function ? fn_id(e, &frames[k]) : 0;
        fn |= fids[k] != 0;
        file &= frames[k].file != NULL;
        line &= frames[k].line > 0;
    }
    if (m != NULL) {
        mstat *st = &e->mstats[mapping_id - 1];
        st->nlocs++;
        st->any_addr = addr;
        st->with_fn += fn;
        st->with_file += fn && file;
        st->with_line += fn && line;
        st->with_inline += nf > 1;
    }

    cp_pb_begin(&e->pb, P_LOCATION);
    cp_pb_varint(&e->pb, 1, id);
    cp_pb_uint64_opt(&e->pb, 2, mapping_id);
    cp_pb_uint64_opt(&e->pb, 3, addr);
    for (size_t k = 0; k < nf; k++) {
        if (fids[k] == 0)
            continue;
        cp_pb_begin(&e->pb, 4);
        cp_pb_varint(&e->pb, 1, fids[k]);
        cp_pb_int64_opt(&e->pb, 2, frames[k].line);
        cp_pb_end(&e->pb);
    }
    cp_pb_end(&e->pb);
    return id;
}

/* -------------------------------------------------------------- stacks */

typedef struct stk_probe {
    const enc *e;
    const uintptr_t *pcs;
} stk_probe;

static bool stk_eq(const void *ctx, uint32_t i)
{
    const stk_probe *pr = ctx;
    return pr->e->stkv[i].pcs == pr->pcs;
}

/* The location ids of a sample's stack (in e->locpool), resolving each
 * distinct stack of the model once.  NULL on error. */
static const uint64_t *stack_locs(enc *e, const cp_sample *s)
{
    static const uint64_t none[1];
    if (s->depth == 0)
        return none;
    uint64_t h = cp_hash_u64(17, (uintptr_t)s->pcs);
    stk_probe pr = {e, s->pcs};
    uint32_t i = cp_hindex_find(&e->stk_index, h, stk_eq, &pr);
    if (i != CP_HINDEX_NONE)
        return e->locpool + e->stkv[i].off;
    if (!grow(e, (void **)&e->stkv, &e->capstks, e->nstks, sizeof *e->stkv))
        return NULL;
    if (!grow(e, (void **)&e->locpool, &e->cappool,
                          e->npool + s->depth - 1, sizeof *e->locpool))
        return NULL;
    size_t off = e->npool;
    for (size_t k = 0; k < s->depth; k++) {
        uintptr_t pc = s->pcs[k];
        if ((k > 0 || !e->p->leaf_is_pc) && pc > 0)
            pc--; /* a return address: point into the call */
        uint64_t id = loc_id(e, pc);
        if (id == 0)
            return NULL;
        e->locpool[off + k] = id;
    }
    if (cp_hindex_insert(&e->stk_index, h, (uint32_t)e->nstks) != 0) {
        e->err = -ENOMEM;
        return NULL;
    }
    e->stkv[e->nstks].pcs = s->pcs;
    e->stkv[e->nstks].off = off;
    e->nstks++;
    e->npool += s->depth;
    return e->locpool + off;
}

/* ------------------------------------------------------------ messages */

static void value_type(enc *e, uint32_t field, const cp_value_type *vt)
{
    int64_t type = str_id(e, vt->type), unit = str_id(e, vt->unit);
    cp_pb_begin(&e->pb, field);
    cp_pb_int64_opt(&e->pb, 1, type);
    cp_pb_int64_opt(&e->pb, 2, unit);
    cp_pb_end(&e->pb);
}

static void sample(enc *e, const cp_sample *s, const uint64_t *locs)
{
    /* Label strings first so no table growth happens mid-message. */
    int64_t keys[s->nlabels ? s->nlabels : 1], vals[s->nlabels ? s->nlabels : 1];
    for (size_t k = 0; k < s->nlabels; k++) {
        keys[k] = str_id(e, s->labels[k].key);
        vals[k] = str_id(e, s->labels[k].str ? s->labels[k].str
                                              : s->labels[k].unit);
    }
    cp_pb_begin(&e->pb, P_SAMPLE);
    cp_pb_packed_uint64(&e->pb, 1, locs, s->depth);
    cp_pb_packed_int64(&e->pb, 2, s->values, e->p->ntypes);
    for (size_t k = 0; k < s->nlabels; k++) {
        cp_pb_begin(&e->pb, 3);
        cp_pb_int64_opt(&e->pb, 1, keys[k]);
        if (s->labels[k].str) {
            cp_pb_int64_opt(&e->pb, 2, vals[k]);
        } else {
            cp_pb_int64_opt(&e->pb, 3, s->labels[k].num);
            cp_pb_int64_opt(&e->pb, 4, vals[k]);
        }
        cp_pb_end(&e->pb);
    }
    cp_pb_end(&e->pb);
}

static void mappings(enc *e)
{
    if (e->maps == NULL)
        return;
    for (size_t i = 0; i < e->maps->n; i++) {
        const cp_mapping *m = &e->maps->v[i];
        const mstat *st = &e->mstats[i];
        /* The flags state the resolution symbolization reached for this
         * mapping's locations.  has_functions only when every location
         * got a function (pprof then trusts them and does not symbolize
         * again).  The finer levels when symbolization produced them for
         * this object at all: a few locations without debug info (e.g.
         * _start) do not make the DWARF-resolved rest unresolved. */
        bool fn = st->nlocs > 0 && st->with_fn == st->nlocs;
        bool file = fn && st->with_file > 0;
        bool line = file && st->with_line > 0;
        bool inl = line && (st->with_inline > 0 ||
                            (cp_symbolize_object_flags(e->sym, st->any_addr) &
                             CP_SYM_HAS_INLINES));
        int64_t fname = str_id(e, m->file), bid = str_id(e, m->build_id);
        cp_pb_begin(&e->pb, P_MAPPING);
        cp_pb_varint(&e->pb, 1, i + 1);
        cp_pb_uint64_opt(&e->pb, 2, m->start);
        cp_pb_uint64_opt(&e->pb, 3, m->limit);
        cp_pb_uint64_opt(&e->pb, 4, m->offset);
        cp_pb_int64_opt(&e->pb, 5, fname);
        cp_pb_int64_opt(&e->pb, 6, bid);
        cp_pb_bool_opt(&e->pb, 7, fn);
        cp_pb_bool_opt(&e->pb, 8, file);
        cp_pb_bool_opt(&e->pb, 9, line);
        cp_pb_bool_opt(&e->pb, 10, inl);
        cp_pb_end(&e->pb);
    }
}

static void trailer(enc *e)
{
    const cp_profile *p = e->p;
    value_type(e, P_PERIOD_TYPE, &p->period_type);
    cp_pb_int64_opt(&e->pb, P_PERIOD, p->period);
    cp_pb_int64_opt(&e->pb, P_TIME_NANOS, p->time_nanos);
    cp_pb_int64_opt(&e->pb, P_DURATION_NANOS, p->duration_nanos);
    if (p->ncomments) {
        int64_t ids[p->ncomments];
        for (size_t i = 0; i < p->ncomments; i++)
            ids[i] = str_id(e, p->comments[i]);
        cp_pb_packed_int64(&e->pb, P_COMMENT, ids, p->ncomments);
    }
    if (p->default_type)
        cp_pb_int64_opt(&e->pb, P_DEFAULT_SAMPLE_TYPE,
                        str_id(e, p->default_type));
    /* Last: every string has been interned by now. */
    for (size_t i = 0; i < e->nstr; i++)
        cp_pb_string(&e->pb, P_STRING_TABLE, e->strv[i]);
}

static int encode(enc *e)
{
    const cp_profile *p = e->p;
    /* Index 0 is "" (str_id maps "" there without storing it). */
    if (!grow(e, (void **)&e->strv, &e->capstr, 0, sizeof *e->strv))
        return e->err;
    e->strv[0] = "";
    e->nstr = 1;
    for (size_t i = 0; i < p->ntypes; i++)
        value_type(e, P_SAMPLE_TYPE, &p->types[i]);
    for (size_t i = 0; i < p->nsamples && !e->err && !e->pb.err; i++) {
        const uint64_t *locs = stack_locs(e, &p->samples[i]);
        if (locs != NULL)
            sample(e, &p->samples[i], locs);
    }
    mappings(e);
    trailer(e);
    return e->err;
}

static int raw_sink(void *ctx, const void *data, size_t len)
{
    return cp_writer_write(ctx, data, len);
}

int cp_proto_write(const cp_profile *p, cpprof_writer *w, unsigned flags)
{
    if (w == NULL)
        return -EINVAL;
    if (p == NULL || (p->ntypes && p->types == NULL))
        return cp_writer_fail(w, -EINVAL);
    enc e;
    memset(&e, 0, sizeof e);
    e.p = p;
    e.symbols = !(flags & CP_PROTO_NO_SYMBOLS);
    cp_hindex_init(&e.str_index);
    cp_hindex_init(&e.loc_index);
    cp_hindex_init(&e.fn_index);
    cp_hindex_init(&e.stk_index);

    cp_gzip *gz = NULL;
    int rc = 0;
    if (!(flags & CP_PROTO_NO_GZIP))
        rc = cp_gzip_new(&gz, w, 1); /* Go uses BestSpeed too */
    if (rc == 0)
        rc = cp_mappings_snapshot(&e.maps);
    if (rc == 0 && e.maps->n &&
        (e.mstats = calloc(e.maps->n, sizeof *e.mstats)) == NULL)
        rc = -ENOMEM;
    /* Without a symbolizer the profile is still useful: pprof can
     * symbolize addresses + mappings itself. */
    if (rc == 0 && e.symbols && (e.sym = cp_symbolizer_acquire()) == NULL)
        e.symbols = false;
    if (rc == 0) {
        if (gz)
            cp_pb_init(&e.pb, cp_gzip_write, gz);
        else
            cp_pb_init(&e.pb, raw_sink, w);
        rc = encode(&e);
        int prc = cp_pb_finish(&e.pb);
        if (rc == 0)
            rc = prc;
        if (rc == 0 && gz)
            rc = cp_gzip_finish(gz);
        cp_pb_free(&e.pb);
    }
    if (e.sym)
        cp_symbolizer_release(e.sym);
    cp_mappings_free(e.maps);
    cp_gzip_free(gz);
    free(e.mstats);
    cp_hindex_free(&e.str_index);
    cp_hindex_free(&e.loc_index);
    cp_hindex_free(&e.fn_index);
    cp_hindex_free(&e.stk_index);
    free(e.strv);
    free(e.loc_addr);
    free(e.fnv);
    free(e.stkv);
    free(e.locpool);
    /* Push staged bytes now, so a failing sink is reported here and not
     * only at close. */
    if (rc == 0)
        rc = cp_writer_flush(w);
    return rc ? cp_writer_fail(w, rc) : 0;
}
