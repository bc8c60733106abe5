/*
 * capture/unwind_cfi.h - x86-64 DWARF call-frame (CFI) rules for the
 * signal-safe unwinder.
 *
 * Owned by the unwinder (capture/unwind_signal.c is its only caller).
 * Given a loaded object's .eh_frame_hdr (found outside any handler, by
 * cp_cfi_obj_init) and a code address, cp_cfi_resolve finds the FDE by
 * binary search, runs the CIE's and FDE's CFA programs up to the address
 * and reduces the row to the few facts a stack walk needs: how to compute
 * the CFA, where the return address and the caller's RBP were saved, and
 * whether the frame is a signal trampoline.  Resolved rules are kept in a
 * fixed-size lock-free cache keyed by address.
 *
 * ASYNC-SIGNAL-SAFE: cp_cfi_resolve and the cache functions allocate
 * nothing, take no lock, make no system call, leave errno alone and read
 * only inside the object's [data_lo, data_hi) span recorded at init (a
 * malformed or truncated table ends in an error, never a fault).  Any
 * number of threads and handlers may call them at once.  cp_cfi_obj_init
 * is normal context only (it reads the header of an object that the
 * caller knows is mapped).
 */
#ifndef CP_CAPTURE_UNWIND_CFI_H
#define CP_CAPTURE_UNWIND_CFI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* DWARF register numbers on x86-64 (System V psABI, figure 3.36). */
enum {
    CP_CFI_RAX = 0, CP_CFI_RDX, CP_CFI_RCX, CP_CFI_RBX, CP_CFI_RSI,
    CP_CFI_RDI, CP_CFI_RBP, CP_CFI_RSP, CP_CFI_R8, CP_CFI_R9, CP_CFI_R10,
    CP_CFI_R11, CP_CFI_R12, CP_CFI_R13, CP_CFI_R14, CP_CFI_R15,
    CP_CFI_RA, /* the return address column (the caller's RIP) */
    CP_CFI_NREGS
};

/* One loaded object's unwind tables, as the walk needs them. */
typedef struct cp_cfi_obj {
    uintptr_t text_lo, text_hi; /* union of its executable segments */
    uintptr_t eh_hdr;           /* .eh_frame_hdr (datarel base) */
    uintptr_t table;            /* sorted (initial loc, fde) int32 pairs */
    size_t fde_count;
    uintptr_t data_lo, data_hi; /* mapped span every table read stays in */
} cp_cfi_obj;

/* How a register of the caller is recovered. */
enum cp_cfi_how {
    CP_CFI_SAME = 0,   /* unchanged by this frame */
    CP_CFI_UNDEF = 1,  /* lost (for the RA: the outermost frame) */
    CP_CFI_AT_CFA = 2, /* saved at [CFA + off] */
    CP_CFI_AT_REG = 3  /* saved at [reg + off] (DW_OP_bregN off) */
};

/* The unwind rule at one code address: everything a step needs. */
typedef struct cp_cfi_rule {
    int32_t cfa_off;  /* CFA = reg + cfa_off, or [reg + cfa_off] if deref */
    int32_t ra_off;   /* RA saved at [CFA + ra_off] (ra_how AT_CFA) */
    int32_t rbp_off;  /* RBP's saved slot, relative to CFA or rbp_reg */
    uint8_t cfa_reg;  /* a CP_CFI_* register number */
    uint8_t cfa_deref;
    uint8_t ra_how;   /* CP_CFI_AT_CFA or CP_CFI_UNDEF */
    uint8_t rbp_how;  /* enum cp_cfi_how */
    uint8_t rbp_reg;  /* for CP_CFI_AT_REG */
    uint8_t signal;   /* a signal trampoline: the ucontext is at the SP */
} cp_cfi_rule;

/*
 * Normal context: fills o's table fields from the .eh_frame_hdr at hdr,
 * which lies with the .eh_frame it indexes in [data_lo, data_hi) (the
 * object's readable segment).  false when the header uses an encoding the
 * binary search cannot use (the object is then left to other unwinders).
 */
bool cp_cfi_obj_init(cp_cfi_obj *o, uintptr_t hdr, uintptr_t data_lo,
                     uintptr_t data_hi);

/*
 * Async-signal-safe.  The rule at code address pc of object o.  exact:
 * pc is an interrupted instruction (a leaf, or the frame a signal
 * interrupted); otherwise it is a return address and the row of the call
 * instruction (pc - 1) applies.  Returns 0, -ENOENT when no FDE covers
 * the address, -ENOTSUP for a rule this walker cannot express (a CFA or
 * RA/RBP expression other than the PLT and DRAP patterns, a register
 * rule), -EFAULT for a table that is malformed or leaves the object.
 */
int cp_cfi_resolve(const cp_cfi_obj *o, uintptr_t pc, bool exact,
                   cp_cfi_rule *rule);

/*
 * Async-signal-safe, lock-free.  The rule cache: a direct-mapped table of
 * resolved rules keyed by (pc, exact) and tagged with the generation of
 * the address table they were resolved against, so that a rebuild of
 * that table (a library loaded or unloaded) invalidates every entry.
 * Entries are published under a per-entry sequence counter: a reader
 * never uses a torn entry, and a writer that finds the entry being
 * written by someone else simply skips caching.
 */
bool cp_cfi_cache_get(uintptr_t pc, bool exact, uint32_t gen,
                      cp_cfi_rule *rule);
void cp_cfi_cache_put(uintptr_t pc, bool exact, uint32_t gen,
                      const cp_cfi_rule *rule);

#endif
