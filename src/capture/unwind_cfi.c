/*
 * capture/unwind_cfi.c - DWARF CFI interpreter and rule cache for the
 * signal-safe unwinder (x86-64, .eh_frame / .eh_frame_hdr).
 *
 * Implements capture/unwind_cfi.h; called by capture/unwind_signal.c from
 * signal handlers and from inside interposed malloc.
 *
 * ASYNC-SIGNAL-SAFE throughout except cp_cfi_obj_init: no allocation, no
 * lock, no system call, errno untouched.  Every byte read from an unwind
 * table goes through a bounded reader confined to the object's mapped
 * [data_lo, data_hi) span, so a corrupt or truncated table yields an error
 * instead of a fault; interpretation is bounded by the FDE's length.
 *
 * What is interpreted (what GCC, Clang, binutils and glibc emit):
 *   CIE augmentations z, R, P, L, S (and B, G, which carry no data);
 *   pointer encodings absptr/udata/sdata 2/4/8, uleb/sleb, pcrel/datarel;
 *   advance_loc(1/2/4), set_loc, def_cfa(_sf), def_cfa_register,
 *   def_cfa_offset(_sf), offset(_extended)(_sf), GNU_negative_offset_
 *   extended, restore(_extended), remember/restore_state, same_value,
 *   undefined, nop, GNU_args_size; and three expression shapes:
 *     - the PLT stub's CFA expression (rsp + off, plus 8 past the push
 *       in each 16-byte entry), resolved at the exact PC;
 *     - a CFA of [breg + off] (GCC's DRAP stack realignment, glibc's
 *       signal trampoline);
 *     - a saved register at [breg + off] (DRAP's RBP).
 *   Anything else that the final row depends on is -ENOTSUP (the walker
 *   then falls back); rules for registers the walk does not track are
 *   skipped over unread.
 */
#include "capture/unwind_cfi.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

/* ------------------------------------------------------- bounded reader */

typedef struct rd {
    uintptr_t p, end; /* next byte; one past the last readable byte */
    bool bad;         /* a read went past end: every later read is 0 */
} rd;

static inline bool rd_have(rd *r, size_t n)
{
    if (r->bad || r->end - r->p < n || r->p > r->end) {
        r->bad = true;
        return false;
    }
    return true;
}

static inline uint64_t rd_fixed(rd *r, size_t n)
{
    if (!rd_have(r, n))
        return 0;
    uint64_t v = 0;
    memcpy(&v, (const void *)r->p, n); /* little-endian host */
    r->p += n;
    return v;
}

static uint64_t rd_uleb(rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; rd_have(r, 1); shift += 7) {
        uint8_t b = *(const uint8_t *)r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    return 0;
}

static int64_t rd_sleb(rd *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    do {
        if (!rd_have(r, 1))
            return 0;
        b = *(const uint8_t *)r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
    } while (b & 0x80);
    if (shift < 64 && (b & 0x40))
        v |= ~(uint64_t)0 << shift;
    return (int64_t)v;
}

/* DW_EH_PE_* pointer encodings. */
enum {
    PE_ABSPTR = 0x00, PE_ULEB = 0x01, PE_UDATA2 = 0x02, PE_UDATA4 = 0x03,
    PE_UDATA8 = 0x04, PE_SLEB = 0x09, PE_SDATA2 = 0x0a, PE_SDATA4 = 0x0b,
    PE_SDATA8 = 0x0c, PE_PCREL = 0x10, PE_DATAREL = 0x30,
    PE_INDIRECT = 0x80, PE_OMIT = 0xff
};

/* Reads a pointer in encoding enc.  apply=false ignores the base (an FDE's
 * address range is a plain length).  false for an unknown encoding. */
static bool rd_encoded(rd *r, uint8_t enc, uintptr_t datarel, bool apply,
                       uintptr_t *out)
{
    uintptr_t at = r->p;
    uint64_t v;
    switch (enc & 0x0f) {
    case PE_ABSPTR:
    case PE_UDATA8:
    case PE_SDATA8: v = rd_fixed(r, 8); break;
    case PE_ULEB: v = rd_uleb(r); break;
    case PE_SLEB: v = (uint64_t)rd_sleb(r); break;
    case PE_UDATA2: v = rd_fixed(r, 2); break;
    case PE_SDATA2: v = (uint64_t)(int64_t)(int16_t)rd_fixed(r, 2); break;
    case PE_UDATA4: v = rd_fixed(r, 4); break;
    case PE_SDATA4: v = (uint64_t)(int64_t)(int32_t)rd_fixed(r, 4); break;
    default: return false;
    }
    if (apply) {
        switch (enc & 0x70) {
        case 0: break;
        case PE_PCREL: v += at; break;
        case PE_DATAREL: v += datarel; break;
        default: return false; /* textrel/funcrel/aligned: never on x86-64 */
        }
        if (enc & PE_INDIRECT)
            return false; /* only personality pointers use it: skipped */
    }
    *out = (uintptr_t)v;
    return !r->bad;
}

/* ------------------------------------------------------------ .eh_frame_hdr */

bool cp_cfi_obj_init(cp_cfi_obj *o, uintptr_t hdr, uintptr_t data_lo,
                     uintptr_t data_hi)
{
    if (hdr < data_lo || hdr >= data_hi || data_hi - hdr < 12)
        return false;
    const uint8_t *h = (const uint8_t *)hdr;
    /* version 1, eh_frame_ptr any 4-byte form, fde_count udata4, and a
     * table of datarel sdata4 pairs: what every linker emits.  Other
     * forms cannot be binary-searched in place. */
    if (h[0] != 1 || h[3] != (PE_DATAREL | PE_SDATA4))
        return false;
    if ((h[1] & 0x0f) != PE_UDATA4 && (h[1] & 0x0f) != PE_SDATA4)
        return false;
    if (h[2] != PE_UDATA4)
        return false;
    uint32_t count;
    memcpy(&count, h + 8, sizeof count);
    if (count == 0 || (data_hi - (hdr + 12)) / 8 < count)
        return false;
    o->eh_hdr = hdr;
    o->table = hdr + 12;
    o->fde_count = count;
    o->data_lo = data_lo;
    o->data_hi = data_hi;
    return true;
}

/* ---------------------------------------------------------- CFA program */

enum cfa_kind { CFA_REG = 0, CFA_DEREF = 1, CFA_PLT = 2, CFA_BAD = 3 };
enum { HOW_BAD = 4 }; /* after enum cp_cfi_how: a rule we cannot use */

typedef struct row {
    int64_t cfa_off;
    uint8_t cfa_reg, cfa_kind, plt_thr;
    uint8_t ra_how, rbp_how, rbp_reg;
    int64_t ra_off, rbp_off;
} row;

#define STATE_STACK 8

typedef struct cie_info {
    uint64_t code_align;
    int64_t data_align;
    uint8_t fde_enc;
    bool has_aug_data; /* 'z' */
    bool signal;       /* 'S' */
    uintptr_t insns, insns_end;
} cie_info;

/* The length-prefixed entry at *at: sets [*body, *end) and returns the
 * position after its 4- or 12-byte length; false if it leaves the span. */
static bool entry_bounds(uintptr_t at, const cp_cfi_obj *o, uintptr_t *body,
                         uintptr_t *end)
{
    rd r = { at, o->data_hi, false };
    if (at < o->data_lo)
        return false;
    uint64_t len = rd_fixed(&r, 4);
    if (len == 0xffffffffu)
        len = rd_fixed(&r, 8);
    if (r.bad || len == 0 || len > o->data_hi - r.p)
        return false;
    *body = r.p;
    *end = r.p + (uintptr_t)len;
    return true;
}

static int parse_cie(uintptr_t at, const cp_cfi_obj *o, cie_info *c)
{
    uintptr_t body, end;
    if (!entry_bounds(at, o, &body, &end))
        return -EFAULT;
    rd r = { body, end, false };
    if (rd_fixed(&r, 4) != 0) /* a CIE's id is 0 in .eh_frame */
        return -EFAULT;
    uint8_t version = (uint8_t)rd_fixed(&r, 1);
    if (version != 1 && version != 3 && version != 4)
        return -ENOTSUP;
    char aug[8];
    size_t alen = 0;
    for (;;) {
        char ch = (char)rd_fixed(&r, 1);
        if (r.bad)
            return -EFAULT;
        if (ch == '\0')
            break;
        if (alen == sizeof aug - 1)
            return -ENOTSUP;
        aug[alen++] = ch;
    }
    aug[alen] = '\0';
    if (version == 4) {
        if (rd_fixed(&r, 1) != 8 || rd_fixed(&r, 1) != 0)
            return -ENOTSUP; /* address size, segment selector size */
    }
    c->code_align = rd_uleb(&r);
    c->data_align = rd_sleb(&r);
    uint64_t ra_reg = version == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
    if (ra_reg != CP_CFI_RA)
        return -ENOTSUP;
    c->fde_enc = PE_ABSPTR;
    c->has_aug_data = false;
    c->signal = false;
    if (alen > 0) {
        if (aug[0] != 'z')
            return -ENOTSUP; /* "eh" and other pre-z forms */
        c->has_aug_data = true;
        uint64_t dlen = rd_uleb(&r);
        if (r.bad || dlen > end - r.p)
            return -EFAULT;
        uintptr_t dend = r.p + (uintptr_t)dlen;
        rd a = { r.p, dend, false };
        for (size_t i = 1; i < alen; i++) {
            uintptr_t ignored;
            switch (aug[i]) {
            case 'R': c->fde_enc = (uint8_t)rd_fixed(&a, 1); break;
            case 'L': rd_fixed(&a, 1); break;
            case 'P': {
                uint8_t penc = (uint8_t)rd_fixed(&a, 1);
                /* Only its size matters: read it without resolving. */
                if (!rd_encoded(&a, penc & 0x0f, 0, false, &ignored))
                    return -EFAULT;
                break;
            }
            case 'S': c->signal = true; break;
            case 'B': case 'G': break;
            default: i = alen; break; /* unknown: the rest is skipped */
            }
        }
        if (a.bad)
            return -EFAULT;
        r.p = dend;
    }
    if (r.bad)
        return -EFAULT;
    c->insns = r.p;
    c->insns_end = end;
    return 0;
}

/* Recognizes the few DWARF expressions compilers use for the CFA.  The
 * PLT form is CFA = rsp + off + ((rip & 15) >= thr ? 8 : 0). */
static void cfa_expression(row *s, uintptr_t at, uint64_t len)
{
    rd e = { at, at + (uintptr_t)len, false };
    uint8_t op = (uint8_t)rd_fixed(&e, 1);
    s->cfa_kind = CFA_BAD;
    if (op < 0x70 || op > 0x7f) /* DW_OP_breg0..15 */
        return;
    int64_t off = rd_sleb(&e);
    uint8_t reg = op - 0x70;
    uint8_t next = (uint8_t)rd_fixed(&e, 1);
    if (e.bad)
        return;
    if (next == 0x06 && e.p == e.end) { /* DW_OP_deref */
        s->cfa_kind = CFA_DEREF;
        s->cfa_reg = reg;
        s->cfa_off = off;
        return;
    }
    /* ... breg16 0; lit15; and; litN; ge; lit3; shl; plus */
    static const uint8_t plt_tail[] = { 0x00, 0x3f, 0x1a };
    static const uint8_t plt_end[] = { 0x2a, 0x33, 0x24, 0x22 };
    if (reg != CP_CFI_RSP || next != 0x80 || e.end - e.p != 8)
        return;
    for (size_t i = 0; i < 3; i++)
        if (rd_fixed(&e, 1) != plt_tail[i])
            return;
    uint8_t lit = (uint8_t)rd_fixed(&e, 1);
    for (size_t i = 0; i < 4; i++)
        if (rd_fixed(&e, 1) != plt_end[i])
            return;
    if (e.bad || lit < 0x30 || lit > 0x4f)
        return;
    s->cfa_kind = CFA_PLT;
    s->cfa_reg = CP_CFI_RSP;
    s->cfa_off = off;
    s->plt_thr = lit - 0x30;
}

/* What a register rule means for the two registers the walk tracks. */
static void set_offset(row *s, uint64_t reg, int64_t off)
{
    if (reg == CP_CFI_RA) {
        s->ra_how = CP_CFI_AT_CFA;
        s->ra_off = off;
    } else if (reg == CP_CFI_RBP) {
        s->rbp_how = CP_CFI_AT_CFA;
        s->rbp_off = off;
    }
}

static void set_how(row *s, uint64_t reg, uint8_t how)
{
    if (reg == CP_CFI_RA)
        s->ra_how = how;
    else if (reg == CP_CFI_RBP)
        s->rbp_how = how;
}

static void restore_reg(row *s, const row *init, uint64_t reg)
{
    if (reg == CP_CFI_RA) {
        s->ra_how = init->ra_how;
        s->ra_off = init->ra_off;
    } else if (reg == CP_CFI_RBP) {
        s->rbp_how = init->rbp_how;
        s->rbp_off = init->rbp_off;
        s->rbp_reg = init->rbp_reg;
    }
}

/*
 * Runs the CFA program [p, end) from location *loc, stopping before the
 * first row that starts after target.  init is the CIE's row (NULL while
 * running the CIE itself).  Returns 0 or a negative errno.
 */
static int run_program(uintptr_t p, uintptr_t end, const cie_info *c,
                       const cp_cfi_obj *o, const row *init, uintptr_t *loc,
                       uintptr_t target, row *s)
{
    row stack[STATE_STACK];
    size_t depth = 0;
    rd r = { p, end, false };
    while (r.p < r.end && !r.bad) {
        uint8_t op = (uint8_t)rd_fixed(&r, 1);
        uint64_t reg, delta = 0;
        bool advance = false;
        switch (op >> 6) {
        case 1: /* DW_CFA_advance_loc */
            delta = op & 0x3f;
            advance = true;
            break;
        case 2: /* DW_CFA_offset */
            set_offset(s, op & 0x3f, (int64_t)rd_uleb(&r) * c->data_align);
            continue;
        case 3: /* DW_CFA_restore */
            if (!init)
                return -EFAULT;
            restore_reg(s, init, op & 0x3f);
            continue;
        }
        if (!advance) {
            switch (op) {
            case 0x00: /* nop */
                break;
            case 0x01: { /* set_loc */
                uintptr_t nloc;
                if (!rd_encoded(&r, c->fde_enc, o->eh_hdr, true, &nloc))
                    return -EFAULT;
                if (nloc > target)
                    return 0;
                *loc = nloc;
                break;
            }
            case 0x02: delta = rd_fixed(&r, 1); advance = true; break;
            case 0x03: delta = rd_fixed(&r, 2); advance = true; break;
            case 0x04: delta = rd_fixed(&r, 4); advance = true; break;
            case 0x05: /* offset_extended */
                reg = rd_uleb(&r);
                set_offset(s, reg, (int64_t)rd_uleb(&r) * c->data_align);
                break;
            case 0x06: /* restore_extended */
                if (!init)
                    return -EFAULT;
                restore_reg(s, init, rd_uleb(&r));
                break;
            case 0x07: set_how(s, rd_uleb(&r), CP_CFI_UNDEF); break;
            case 0x08: set_how(s, rd_uleb(&r), CP_CFI_SAME); break;
            case 0x09: /* register: reg lives in another register */
                set_how(s, rd_uleb(&r), HOW_BAD);
                rd_uleb(&r);
                break;
            case 0x0a: /* remember_state */
                if (depth == STATE_STACK)
                    return -ENOTSUP;
                stack[depth++] = *s;
                break;
            case 0x0b: /* restore_state: the CFA rule too, as GCC's
                        * epilogues (remember; def_cfa rsp+8; ret;
                        * restore) expect and libgcc does */
                if (depth == 0)
                    return -EFAULT;
                *s = stack[--depth];
                break;
            case 0x0c: /* def_cfa */
                s->cfa_reg = (uint8_t)rd_uleb(&r);
                s->cfa_off = (int64_t)rd_uleb(&r);
                s->cfa_kind = CFA_REG;
                break;
            case 0x0d: /* def_cfa_register */
                s->cfa_reg = (uint8_t)rd_uleb(&r);
                if (s->cfa_kind != CFA_REG)
                    s->cfa_kind = CFA_BAD; /* a register plus no offset */
                break;
            case 0x0e: /* def_cfa_offset */
                s->cfa_off = (int64_t)rd_uleb(&r);
                break;
            case 0x0f: { /* def_cfa_expression */
                uint64_t len = rd_uleb(&r);
                if (r.bad || len > r.end - r.p)
                    return -EFAULT;
                cfa_expression(s, r.p, len);
                r.p += (uintptr_t)len;
                break;
            }
            case 0x10: { /* expression: saved at the expression's value */
                reg = rd_uleb(&r);
                uint64_t len = rd_uleb(&r);
                if (r.bad || len > r.end - r.p)
                    return -EFAULT;
                if (reg == CP_CFI_RBP || reg == CP_CFI_RA) {
                    rd e = { r.p, r.p + (uintptr_t)len, false };
                    uint8_t bop = (uint8_t)rd_fixed(&e, 1);
                    int64_t off = rd_sleb(&e);
                    if (reg == CP_CFI_RBP && bop >= 0x70 && bop <= 0x7f &&
                        !e.bad && e.p == e.end) {
                        s->rbp_how = CP_CFI_AT_REG;
                        s->rbp_reg = bop - 0x70;
                        s->rbp_off = off;
                    } else {
                        set_how(s, reg, HOW_BAD);
                    }
                }
                r.p += (uintptr_t)len;
                break;
            }
            case 0x11: /* offset_extended_sf */
                reg = rd_uleb(&r);
                set_offset(s, reg, rd_sleb(&r) * c->data_align);
                break;
            case 0x12: /* def_cfa_sf */
                s->cfa_reg = (uint8_t)rd_uleb(&r);
                s->cfa_off = rd_sleb(&r) * c->data_align;
                s->cfa_kind = CFA_REG;
                break;
            case 0x13: /* def_cfa_offset_sf */
                s->cfa_off = rd_sleb(&r) * c->data_align;
                break;
            case 0x14: /* val_offset: the value is CFA + off, not saved */
            case 0x15: /* val_offset_sf */
                reg = rd_uleb(&r);
                if (op == 0x14)
                    rd_uleb(&r);
                else
                    rd_sleb(&r);
                set_how(s, reg, HOW_BAD);
                break;
            case 0x16: { /* val_expression */
                reg = rd_uleb(&r);
                uint64_t len = rd_uleb(&r);
                if (r.bad || len > r.end - r.p)
                    return -EFAULT;
                set_how(s, reg, HOW_BAD);
                r.p += (uintptr_t)len;
                break;
            }
            case 0x2e: /* GNU_args_size */
                rd_uleb(&r);
                break;
            case 0x2f: /* GNU_negative_offset_extended */
                reg = rd_uleb(&r);
                set_offset(s, reg, -(int64_t)rd_uleb(&r) * c->data_align);
                break;
            default:
                return -ENOTSUP; /* vendor op of unknown length */
            }
        }
        if (advance) {
            uintptr_t nloc = *loc + (uintptr_t)(delta * c->code_align);
            if (nloc > target)
                return 0;
            *loc = nloc;
        }
    }
    return r.bad ? -EFAULT : 0;
}

/* The FDE covering addr: binary search of the .eh_frame_hdr table. */
static uintptr_t fde_lookup(const cp_cfi_obj *o, uintptr_t addr)
{
    const int32_t *t = (const int32_t *)o->table;
    if (addr < o->eh_hdr + (intptr_t)t[0])
        return 0;
    size_t lo = 0, hi = o->fde_count;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->eh_hdr + (intptr_t)t[2 * mid] <= addr)
            lo = mid;
        else
            hi = mid;
    }
    return o->eh_hdr + (intptr_t)t[2 * lo + 1];
}

int cp_cfi_resolve(const cp_cfi_obj *o, uintptr_t pc, bool exact,
                   cp_cfi_rule *rule)
{
    uintptr_t target = exact ? pc : pc - 1;
    uintptr_t fde = fde_lookup(o, target);
    uintptr_t body, end;
    if (!fde || !entry_bounds(fde, o, &body, &end))
        return fde ? -EFAULT : -ENOENT;
    rd r = { body, end, false };
    uint32_t cie_ptr = (uint32_t)rd_fixed(&r, 4);
    if (r.bad || cie_ptr == 0 || cie_ptr > body)
        return -EFAULT;
    cie_info c;
    int err = parse_cie(body - cie_ptr, o, &c);
    if (err)
        return err;
    uintptr_t start, range;
    if (!rd_encoded(&r, c.fde_enc, o->eh_hdr, true, &start) ||
        !rd_encoded(&r, c.fde_enc & 0x0f, 0, false, &range))
        return -EFAULT;
    if (target < start || target - start >= range)
        return -ENOENT; /* a gap between FDEs */
    if (c.has_aug_data) {
        uint64_t alen = rd_uleb(&r);
        if (r.bad || alen > end - r.p)
            return -EFAULT;
        r.p += (uintptr_t)alen;
    }

    row s = { .cfa_reg = CP_CFI_RSP, .cfa_off = 8, .ra_how = CP_CFI_UNDEF,
              .rbp_how = CP_CFI_SAME };
    uintptr_t loc = start;
    /* The CIE's program describes the entry state: run it in full. */
    err = run_program(c.insns, c.insns_end, &c, o, NULL, &loc, UINTPTR_MAX,
                      &s);
    if (err)
        return err;
    row init = s;
    loc = start;
    err = run_program(r.p, end, &c, o, &init, &loc, target, &s);
    if (err)
        return err;

    memset(rule, 0, sizeof *rule);
    if (c.signal) {
        rule->signal = 1;
        return 0;
    }
    int64_t cfa_off = s.cfa_off;
    switch (s.cfa_kind) {
    case CFA_REG: break;
    case CFA_DEREF: rule->cfa_deref = 1; break;
    case CFA_PLT:
        if ((pc & 15) >= s.plt_thr)
            cfa_off += 8;
        break;
    default: return -ENOTSUP;
    }
    if (s.cfa_reg >= CP_CFI_RA || s.ra_how == HOW_BAD ||
        s.ra_how == CP_CFI_SAME || s.ra_how == CP_CFI_AT_REG)
        return -ENOTSUP;
    if (cfa_off != (int32_t)cfa_off || s.ra_off != (int32_t)s.ra_off ||
        s.rbp_off != (int32_t)s.rbp_off)
        return -ENOTSUP;
    rule->cfa_reg = s.cfa_reg;
    rule->cfa_off = (int32_t)cfa_off;
    rule->ra_how = s.ra_how;
    rule->ra_off = (int32_t)s.ra_off;
    /* An RBP we cannot recover is only a problem if a caller's CFA needs
     * it; the walker finds out then. */
    rule->rbp_how = s.rbp_how == HOW_BAD ? CP_CFI_UNDEF : s.rbp_how;
    rule->rbp_off = (int32_t)s.rbp_off;
    rule->rbp_reg = s.rbp_reg;
    if (rule->rbp_how == CP_CFI_AT_REG && rule->rbp_reg >= CP_CFI_RA)
        rule->rbp_how = CP_CFI_UNDEF;
    return 0;
}

/* ---------------------------------------------------------------- cache */

#define CACHE_BITS 12

typedef struct cache_slot {
    _Atomic uint64_t seq; /* odd while a writer fills the slot */
    _Atomic uint64_t key; /* pc << 1 | exact */
    _Atomic uint64_t gen;
    _Atomic uint64_t a, b; /* the packed rule */
} cache_slot;

static struct {
    cache_slot slots[1u << CACHE_BITS];
} cfi_cache;

static inline cache_slot *slot_of(uint64_t key)
{
    return &cfi_cache.slots[(key * UINT64_C(0x9e3779b97f4a7c15)) >>
                            (64 - CACHE_BITS)];
}

bool cp_cfi_cache_get(uintptr_t pc, bool exact, uint32_t gen,
                      cp_cfi_rule *rule)
{
    uint64_t key = (uint64_t)pc << 1 | exact;
    cache_slot *e = slot_of(key);
    uint64_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
    if (s1 & 1)
        return false;
    uint64_t k = atomic_load_explicit(&e->key, memory_order_relaxed);
    uint64_t g = atomic_load_explicit(&e->gen, memory_order_relaxed);
    uint64_t a = atomic_load_explicit(&e->a, memory_order_relaxed);
    uint64_t b = atomic_load_explicit(&e->b, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1 ||
        k != key || g != gen)
        return false;
    rule->cfa_off = (int32_t)(uint32_t)a;
    rule->ra_off = (int32_t)(uint32_t)(a >> 32);
    rule->rbp_off = (int32_t)(uint32_t)b;
    rule->cfa_reg = (uint8_t)(b >> 32);
    rule->cfa_deref = (uint8_t)(b >> 40) & 1;
    rule->signal = (uint8_t)(b >> 41) & 1;
    rule->ra_how = (uint8_t)(b >> 48) & 0xf;
    rule->rbp_how = (uint8_t)(b >> 52) & 0xf;
    rule->rbp_reg = (uint8_t)(b >> 56);
    return true;
}

void cp_cfi_cache_put(uintptr_t pc, bool exact, uint32_t gen,
                      const cp_cfi_rule *rule)
{
    uint64_t key = (uint64_t)pc << 1 | exact;
    cache_slot *e = slot_of(key);
    uint64_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);
    /* Claim the slot; if another writer holds it, caching can wait. */
    if ((s & 1) || !atomic_compare_exchange_strong_explicit(
                       &e->seq, &s, s + 1, memory_order_relaxed,
                       memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release);
    uint64_t a = (uint64_t)(uint32_t)rule->cfa_off |
                 (uint64_t)(uint32_t)rule->ra_off << 32;
    uint64_t b = (uint64_t)(uint32_t)rule->rbp_off |
                 (uint64_t)rule->cfa_reg << 32 |
                 (uint64_t)(rule->cfa_deref & 1) << 40 |
                 (uint64_t)(rule->signal & 1) << 41 |
                 (uint64_t)(rule->ra_how & 0xf) << 48 |
                 (uint64_t)(rule->rbp_how & 0xf) << 52 |
                 (uint64_t)rule->rbp_reg << 56;
    atomic_store_explicit(&e->key, key, memory_order_relaxed);
    atomic_store_explicit(&e->gen, gen, memory_order_relaxed);
    atomic_store_explicit(&e->a, a, memory_order_relaxed);
    atomic_store_explicit(&e->b, b, memory_order_relaxed);
    atomic_store_explicit(&e->seq, s + 2, memory_order_release);
}
