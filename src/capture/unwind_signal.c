/*
 * capture/unwind_signal.c - stack capture from inside a signal handler or
 * an interposed allocator call.
 *
 * Implements capture/unwind_signal.h for the CPU profiler's SIGPROF
 * handler, the threads profile's stack-dump handler and the heap
 * sampler's malloc shim.  Owned by the unwinder area.
 *
 * ASYNC-SIGNAL-SAFE (cp_unwind_signal, cp_unwind_self): no allocation, no
 * locks that a non-signal path can hold, no dl_iterate_phdr, errno
 * preserved, and no read of memory that is not known to be mapped:
 *
 *   - Stack reads stay inside the interrupted thread's stack,
 *     [interrupted sp, stack top).  The top comes from the thread's
 *     prepared bounds (pthread_getattr_np, normal context), else from the
 *     /proc/self/maps snapshot in the address table, else from one scan
 *     of /proc/self/maps with open/read (async-signal-safe, no
 *     allocation; a few times per thread at most).
 *   - The CFI walk (the default for CP_UNWIND_DWARF and AUTO) is our own:
 *     capture/unwind_cfi.c resolves the rule at each PC from the object's
 *     .eh_frame_hdr, reading only inside that object's mapped segment, and
 *     caches it in a lock-free table; each step then costs a cache probe
 *     and two or three stack reads.  Every step must move the stack
 *     pointer up (or cross a signal frame), so a corrupt stack ends the
 *     walk.  Signal trampolines (__restore_rt) are crossed by reading the
 *     kernel's ucontext on the stack.
 *   - What the CFI walk cannot interpret (no FDE, an unsupported
 *     expression; for cp_unwind_self not a PC in no known object, where
 *     the stack ends) falls back to libunwind's *generic* (remote-style)
 *     unwinder over our own bounds-checked accessors, when it is
 *     installed: it takes its pool/cache locks with all signals blocked
 *     (two sigprocmask calls per frame), so the interrupted thread can
 *     never hold them.  It is loaded with dlopen at first prepare (normal
 *     context) so the build needs no link dependency.
 *   - The frame-pointer walk requires the chain to climb strictly inside
 *     the stack bounds, and every return address to be a user-space
 *     address.  cp_unwind_self does not walk before the address table
 *     exists (other libraries' constructors allocating before ours):
 *     only its own frame, so the caller keeps the allocation's site.
 *   - cp_unwind_self keeps, per slot of threads (a try-lock, never
 *     waited on), a replay memo of its last CFI walk: the stack words it
 *     read; a walk from the same registers whose words still hold those
 *     values returns the same frames without a rule lookup (walk_memo).
 *
 * Loaded objects and their unwind tables come from an address-range
 * table built here in normal context (cp_unwind_refresh) from
 * dl_iterate_phdr and /proc/self/maps, published through an atomic
 * pointer; a refresh swaps it and frees the old one only after the count
 * of walks in progress has been seen at zero.  Each table has a new
 * generation number, which tags the CFI cache entries resolved against
 * it, so unloading a library invalidates them.
 *
 * The table can be out of date between refreshes: a library loaded since
 * (its code unknown), or one unloaded since (its tables unmapped: reading
 * them would fault).  So before a walk reads an object's unwind tables
 * (a rule-cache miss) it asks the loader, through glibc's lock-free
 * _dl_find_object (2.35 and later, made for in-process unwinders), which
 * object is at that PC now: the table's entry when it is still loaded
 * there, else the object found, described from the ELF and program
 * headers at the start of its mapping; nothing when no object is.  Either
 * difference flags the table stale for the next refresh.  Rules resolved
 * that way are cached under the current generation until the next
 * refresh retires them.  Where _dl_find_object is missing the table is trusted, as it
 * must be between refreshes.
 *
 * Per-thread state is initial-exec TLS (no lazy allocation on first touch
 * inside a handler).
 */
#include "capture/unwind_signal.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <libunwind.h>

#include "capture/loader.h"
#include "capture/unwind_cfi.h"

#define MAPS_SCANS_PER_THREAD 16

typedef struct cp_range {
    uintptr_t lo, hi;
} cp_range;

typedef struct cp_unwind_table {
    cp_cfi_obj *objs;     /* objects with .eh_frame_hdr, sorted by text_lo */
    size_t nobjs;
    cp_range *segs;       /* every PT_LOAD segment, page-rounded, sorted */
    size_t nsegs;
    cp_range *stacks;     /* writable anonymous mappings, sorted */
    size_t nstacks;
    unsigned long long adds, subs; /* dl_iterate_phdr counters at build */
    _Atomic uint32_t gen; /* tags the CFI cache entries resolved here; a
                             new one after each dlclose (forget_unloaded) */
} cp_unwind_table;

/*
 * cp_unwind_self's replay memo.  A CFI walk is a function of its start
 * registers (pc, sp, rbp), the table generation (the rules), the stack
 * bounds and the stack words it reads: with those equal, every step
 * computes the same CFA, reads the same slots and yields the same frame.
 * So a walk that crossed no signal frame is remembered with the address
 * and value of every word it read, and a later walk from the same
 * registers whose words still hold those values returns the same frames
 * after one compare per word, without a rule lookup.  The words are
 * re-read inside [sp, stack top) of the same bounds, so on the caller's
 * own stack.  An allocation site in a loop (the heap sampler's common
 * case) unwinds from the same sp every time.
 */
#define MEMO_SLOTS_LOG2 6 /* threads share slots by hash, under a try-lock */
#define MEMO_READS 48
#define MEMO_PCS 40

typedef struct walk_memo {
    _Alignas(64) atomic_int busy; /* try-lock: a walk is using the slot */
    bool valid;                   /* the fields below describe a walk */
    bool ok;                      /* the walk being logged can be kept */
    uint16_t nreads, npcs;
    uint32_t gen;
    size_t max;
    uintptr_t pc, sp, bp, hi;
    uint32_t off[MEMO_READS];  /* address read - sp */
    uintptr_t val[MEMO_READS]; /* the word read there */
    uintptr_t pcs[MEMO_PCS];
} walk_memo;

/* The generic libunwind entry points, resolved with dlsym. */
typedef unw_addr_space_t (*create_as_fn)(unw_accessors_t *, int);
typedef int (*set_caching_fn)(unw_addr_space_t, unw_caching_policy_t);
typedef int (*init_remote_fn)(unw_cursor_t *, unw_addr_space_t, void *);
typedef int (*step_fn)(unw_cursor_t *);
typedef int (*get_reg_fn)(unw_cursor_t *, int, unw_word_t *);
typedef int (*search_table_fn)(unw_addr_space_t, unw_word_t, unw_dyn_info_t *,
                               unw_proc_info_t *, int, void *);

/* glibc's _dl_find_object (see the file comment); NULL before 2.35. */
#ifdef DLFO_EH_SEGMENT_TYPE
typedef struct dl_find_object cp_found_object;
#else
typedef struct cp_found_object {
    unsigned long long dlfo_flags;
    void *dlfo_map_start, *dlfo_map_end;
    struct link_map *dlfo_link_map;
    void *dlfo_eh_frame;
    unsigned long long reserved[7];
} cp_found_object;
#endif
typedef int (*find_object_fn)(void *, cp_found_object *);

static struct {
    pthread_once_t once;
    pthread_mutex_t refresh_lock;    /* serializes refreshes */
    _Atomic(cp_unwind_table *) table;
    atomic_int readers;              /* walks in progress now */
    atomic_int stale;                /* a walk met an unknown address */
    atomic_uint gen;                 /* last table generation handed out */
    bool cfi;                        /* own DWARF walk on (not NO_DWARF) */
    find_object_fn find_object;      /* what the loader has at a PC now */
    /* Coverage counters (relaxed; see cp_unwind_stats). */
    _Atomic uint64_t walks, complete, fallbacks, fallback_deeper;
    /* libunwind's generic unwinder (NULL members: not installed). */
    void *lib;
    unw_addr_space_t as;
    init_remote_fn init_remote;
    step_fn step;
    get_reg_fn get_reg;
    search_table_fn search_table;
    /* cp_unwind_self's memos (see walk_memo). */
    walk_memo memo[1u << MEMO_SLOTS_LOG2];
} unwind_state = {
    .once = PTHREAD_ONCE_INIT,
    .refresh_lock = PTHREAD_MUTEX_INITIALIZER,
};

static __thread struct {
    uintptr_t stack_lo, stack_hi; /* 0 if unknown */
    volatile sig_atomic_t busy;   /* re-entry guard */
    bool preparing;               /* cp_unwind_thread_prepare running */
    unsigned char maps_scans;     /* bounded: see bounds_from_maps */
} unwind_tls __attribute__((tls_model("initial-exec")));

/* Registers of one frame, by DWARF number; r[CP_CFI_RA] is the PC. */
typedef struct regs {
    uintptr_t r[CP_CFI_NREGS];
    uint32_t known; /* bit i: r[i] is valid */
} regs;

#define BIT(reg) (1u << (reg))

/* Frames the libunwind fallback may return in one walk. */
#define CP_UNWIND_FALLBACK_MAX 128

/* What one libunwind walk's accessors need; lives on the caller's stack. */
typedef struct walk_ctx {
    const ucontext_t *uc;
    uintptr_t stack_lo, stack_hi;
    const cp_unwind_table *tab;
    cp_cfi_obj obj; /* the frame's object, checked loaded (obj_ok) */
    bool obj_ok;
} walk_ctx;

/* DWARF register number -> ucontext gregs index. */
static const unsigned char greg_of[CP_CFI_NREGS] = {
    [CP_CFI_RAX] = REG_RAX, [CP_CFI_RDX] = REG_RDX, [CP_CFI_RCX] = REG_RCX,
    [CP_CFI_RBX] = REG_RBX, [CP_CFI_RSI] = REG_RSI, [CP_CFI_RDI] = REG_RDI,
    [CP_CFI_RBP] = REG_RBP, [CP_CFI_RSP] = REG_RSP, [CP_CFI_R8] = REG_R8,
    [CP_CFI_R9] = REG_R9,   [CP_CFI_R10] = REG_R10, [CP_CFI_R11] = REG_R11,
    [CP_CFI_R12] = REG_R12, [CP_CFI_R13] = REG_R13, [CP_CFI_R14] = REG_R14,
    [CP_CFI_R15] = REG_R15, [CP_CFI_RA] = REG_RIP,
};

static void regs_from_uc(const ucontext_t *uc, regs *rg)
{
    for (int i = 0; i < CP_CFI_NREGS; i++)
        rg->r[i] = (uintptr_t)uc->uc_mcontext.gregs[greg_of[i]];
    rg->known = BIT(CP_CFI_NREGS) - 1;
}

/* ---------------------------------------------------------------- lookup */

/* The range in v[0..n) (sorted, disjoint) containing addr, or NULL. */
static const cp_range *range_find(const cp_range *v, size_t n, uintptr_t addr)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (addr < v[mid].lo)
            hi = mid;
        else if (addr >= v[mid].hi)
            lo = mid + 1;
        else
            return &v[mid];
    }
    return NULL;
}

static inline uint32_t table_gen(const cp_unwind_table *t)
{
    return atomic_load_explicit(&((cp_unwind_table *)t)->gen,
                                memory_order_relaxed);
}

/* A new generation number, never 0 (so a zeroed cache entry never
 * matches). */
static uint32_t next_gen(void)
{
    unsigned gen;
    do
        gen = atomic_fetch_add(&unwind_state.gen, 1) + 1;
    while (gen == 0);
    return gen;
}

static const cp_cfi_obj *obj_find(const cp_unwind_table *t, uintptr_t ip)
{
    size_t lo = 0, hi = t->nobjs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ip < t->objs[mid].text_lo)
            hi = mid;
        else if (ip >= t->objs[mid].text_hi)
            lo = mid + 1;
        else
            return &t->objs[mid];
    }
    return NULL;
}

/*
 * Describes an object from its program headers (bias: its load address):
 * the span of its executable segments and its .eh_frame_hdr, whose
 * tables are read only inside the loaded segment that holds the header
 * (.eh_frame_hdr and .eh_frame share it in every layout the linkers
 * produce; an .eh_frame elsewhere fails its bounds check).  Reads only
 * the headers and the .eh_frame_hdr: async-signal-safe while the object
 * stays loaded.
 */
static bool obj_from_phdrs(uintptr_t bias, const ElfW(Phdr) *ph, int phnum,
                           cp_cfi_obj *o)
{
    *o = (cp_cfi_obj){ .text_lo = UINTPTR_MAX };
    uintptr_t eh_hdr = 0, data_lo = 0, data_hi = 0;
    for (int i = 0; i < phnum; i++) {
        uintptr_t start = bias + ph[i].p_vaddr;
        if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
            if (start < o->text_lo)
                o->text_lo = start;
            if (start + ph[i].p_memsz > o->text_hi)
                o->text_hi = start + ph[i].p_memsz;
        } else if (ph[i].p_type == PT_GNU_EH_FRAME) {
            eh_hdr = start;
        }
    }
    for (int i = 0; i < phnum && eh_hdr; i++) {
        uintptr_t start = bias + ph[i].p_vaddr;
        if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_R) &&
            eh_hdr >= start && eh_hdr < start + ph[i].p_filesz) {
            data_lo = start;
            data_hi = start + ph[i].p_filesz;
        }
    }
    return data_hi && o->text_lo < o->text_hi &&
           cp_cfi_obj_init(o, eh_hdr, data_lo, data_hi);
}

/*
 * The object the loader has at pc now, described into *o; false when
 * there is none (or no way to ask).  _dl_find_object gives the object's
 * mapping and its PT_GNU_EH_FRAME; the mapping starts with the first
 * loaded segment, which maps file offset 0 (the ELF header, followed by
 * the program headers) in everything the linkers produce; anything else
 * is not read.
 */
static bool obj_loaded_at(uintptr_t pc, cp_cfi_obj *o)
{
    cp_found_object r;
    if (!unwind_state.find_object ||
        unwind_state.find_object((void *)pc, &r) != 0)
        return false;
    uintptr_t lo = (uintptr_t)r.dlfo_map_start;
    uintptr_t hi = (uintptr_t)r.dlfo_map_end;
    const size_t page = 4096; /* the least of the mapping that is there */
    if (hi <= lo || hi - lo < page || (lo & (page - 1)) != 0)
        return false;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)lo;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_phentsize != sizeof(ElfW(Phdr)) || eh->e_phoff > page ||
        (size_t)eh->e_phnum * sizeof(ElfW(Phdr)) > page - eh->e_phoff)
        return false;
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(lo + eh->e_phoff);
    uintptr_t first = UINTPTR_MAX; /* the lowest PT_LOAD, mapped at lo */
    for (int i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first)
            first = ph[i].p_vaddr;
    if (first == UINTPTR_MAX)
        return false;
    uintptr_t bias = lo - (first & ~(uintptr_t)(page - 1));
    return obj_from_phdrs(bias, ph, eh->e_phnum, o) &&
           o->eh_hdr == (uintptr_t)r.dlfo_eh_frame && pc >= o->text_lo &&
           pc < o->text_hi;
}

/*
 * The object whose unwind tables may be read for code at pc: the table's
 * entry o when the loader still has that object in place, else the one
 * it has there now (described into *here), else NULL.  A difference
 * flags the table stale.  Without _dl_find_object the table is trusted.
 */
static const cp_cfi_obj *obj_checked(const cp_unwind_table *tab,
                                     const cp_cfi_obj *o, uintptr_t pc,
                                     cp_cfi_obj *here)
{
    if (!unwind_state.find_object) {
        if (!o && !range_find(tab->segs, tab->nsegs, pc))
            atomic_store_explicit(&unwind_state.stale, 1,
                                  memory_order_relaxed);
        return o;
    }
    bool found = obj_loaded_at(pc, here);
    if (o && found && here->eh_hdr == o->eh_hdr)
        return o;
    if (o || found)
        atomic_store_explicit(&unwind_state.stale, 1, memory_order_relaxed);
    return found ? here : NULL;
}

static inline int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Async-signal-safe: the readable mapping of /proc/self/maps that holds
 * addr, read with open/read into a stack buffer and parsed as a stream
 * (no allocation, no stdio).  false if none or the file is unreadable.
 */
static bool bounds_from_maps(uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    char buf[2048];
    /* field: 0 start, 1 end, 2 the 'r' permission, 3 rest of the line */
    int field = 0;
    uintptr_t a = 0, b = 0;
    bool found = false, done = false;
    while (!done) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n && !done; i++) {
            char c = buf[i];
            if (c == '\n') {
                field = 0;
                a = b = 0;
                continue;
            }
            int v;
            switch (field) {
            case 0:
                if (c == '-')
                    field = 1;
                else if ((v = hexval(c)) >= 0)
                    a = a << 4 | (uintptr_t)v;
                break;
            case 1:
                if (c == ' ')
                    field = 2;
                else if ((v = hexval(c)) >= 0)
                    b = b << 4 | (uintptr_t)v;
                break;
            case 2:
                if (c == 'r' && addr >= a && addr < b) {
                    *lo = a;
                    *hi = b;
                    found = done = true;
                }
                field = 3;
                break;
            default:
                break;
            }
        }
    }
    close(fd);
    return found;
}

/* The readable stack span [sp, top) of the interrupted thread; empty
 * when it cannot be known safely. */
static void stack_bounds(const cp_unwind_table *t, uintptr_t sp,
                         uintptr_t *lo, uintptr_t *hi)
{
    *lo = *hi = 0;
    if (unwind_tls.stack_hi && sp >= unwind_tls.stack_lo &&
        sp < unwind_tls.stack_hi) {
        *lo = sp;
        *hi = unwind_tls.stack_hi;
        return;
    }
    /* Not prepared, or running on an alternate stack: the maps snapshot. */
    const cp_range *r = t ? range_find(t->stacks, t->nstacks, sp) : NULL;
    if (r) {
        *lo = sp;
        *hi = r->hi;
        return;
    }
    atomic_store_explicit(&unwind_state.stale, 1, memory_order_relaxed);
    /* A thread born after the snapshot (stack bounds never prepared):
     * ask the kernel once; bounded per thread so a garbage sp does not
     * turn every sample into a file read. */
    if (unwind_tls.maps_scans < MAPS_SCANS_PER_THREAD) {
        unwind_tls.maps_scans++;
        uintptr_t mlo, mhi;
        if (bounds_from_maps(sp, &mlo, &mhi)) {
            if (!unwind_tls.stack_hi) {
                unwind_tls.stack_lo = mlo;
                unwind_tls.stack_hi = mhi;
            }
            *lo = sp;
            *hi = mhi;
        }
    }
}

/*
 * Every read of another frame's memory goes through here.  Sanitizers
 * must not check it: a walk legitimately reads other functions' stack
 * slots, which AddressSanitizer poisons as redzones and ThreadSanitizer
 * sees as racing with their owners, and a corrupt
 * context may hand us an unaligned address.
 */
#if defined(__clang__) || defined(__GNUC__)
#define NO_SANITIZE __attribute__((no_sanitize("address", "undefined", "thread")))
#else
#define NO_SANITIZE
#endif

NO_SANITIZE static inline uintptr_t load_word(uintptr_t addr)
{
    uintptr_t v;
    __builtin_memcpy(&v, (const void *)addr, sizeof v);
    return v;
}

static inline bool stack_read(uintptr_t addr, uintptr_t lo, uintptr_t hi,
                              uintptr_t *out)
{
    if (addr < lo || hi < sizeof(uintptr_t) || addr > hi - sizeof(uintptr_t))
        return false;
    *out = load_word(addr);
    return true;
}

/* --------------------------------------------------- frame-pointer walk */

/* x86-64 user space ends below 2^47: a "return address" above is data. */
#define USER_ADDR_END ((uintptr_t)1 << 47)

static size_t walk_fp(const regs *rg, const cp_unwind_table *tab,
                      uintptr_t lo, uintptr_t hi, uintptr_t *pcs, size_t n,
                      size_t max)
{
    uintptr_t fp = rg->r[CP_CFI_RBP];
    /* Compilers set up no frame in leaf functions (and none exists yet at
     * a function's first instruction): then rbp is still the caller's and
     * the leaf's return address sits at [sp].  Take [sp] when it is code
     * and is not the return address the chain is about to give. */
    uintptr_t sp = lo;
    if (tab && n < max && sp <= hi - sizeof(uintptr_t)) {
        uintptr_t top = load_word(sp);
        bool chain_next = fp >= lo && fp <= hi - 2 * sizeof(uintptr_t) &&
                          (fp & 7) == 0 && load_word(fp + 8) == top;
        if (!chain_next && obj_find(tab, top) && obj_find(tab, pcs[0]))
            pcs[n++] = top;
    }
    while (n < max) {
        /* A frame is [fp] = caller's fp, [fp+8] = return address. */
        if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) || (fp & 7) != 0)
            break;
        uintptr_t next = load_word(fp), ret = load_word(fp + 8);
        if (ret < 4096 || ret >= USER_ADDR_END)
            break; /* not a user-space code address: not a frame */
        pcs[n++] = ret;
        if (next <= fp) /* the chain must climb towards the stack top */
            break;
        fp = next;
    }
    return n;
}

/* -------------------------------------------------------------- CFI walk */

enum walk_status { WALK_END, WALK_FULL, WALK_FAIL, WALK_UNKNOWN };

/* x86-64 rt_sigreturn: mov $15, %rax; syscall (glibc's __restore_rt). */
static bool is_sigreturn(const cp_cfi_obj *o, uintptr_t pc)
{
    static const unsigned char code[] = { 0x48, 0xc7, 0xc0, 0x0f, 0x00,
                                          0x00, 0x00, 0x0f, 0x05 };
    return pc >= o->text_lo && o->text_hi - pc >= sizeof code &&
           memcmp((const void *)pc, code, sizeof code) == 0;
}

/* stack_read, logged in m (when not NULL) for the replay memo. */
static inline bool walk_read(walk_memo *m, uintptr_t addr, uintptr_t lo,
                             uintptr_t hi, uintptr_t *out)
{
    if (!stack_read(addr, lo, hi, out))
        return false;
    if (m) {
        if (m->nreads < MEMO_READS && addr - lo <= UINT32_MAX) {
            m->off[m->nreads] = (uint32_t)(addr - lo);
            m->val[m->nreads++] = *out;
        } else {
            m->ok = false;
        }
    }
    return true;
}

/* The rule at pc resolved from o's tables, then cached. */
static bool rule_resolve(const cp_unwind_table *tab, const cp_cfi_obj *o,
                         uintptr_t pc, bool exact, cp_cfi_rule *rule)
{
    if (cp_cfi_resolve(o, pc, exact, rule) != 0) {
        if (exact || !is_sigreturn(o, pc))
            return false;
        memset(rule, 0, sizeof *rule);
        rule->signal = 1;
    }
    cp_cfi_cache_put(pc, exact, table_gen(tab), rule);
    return true;
}

/*
 * Walks from the frame in rg, appending to pcs[*np..max).  The first PC
 * is exact (interrupted); the others are return addresses.  WALK_END: the
 * outermost frame was reached; WALK_FULL: max frames; WALK_FAIL: a frame
 * the CFI cannot unwind (no FDE, an unsupported rule, a read that would
 * leave the stack); WALK_UNKNOWN: a PC in no object of the table (code
 * loaded since it was built, or not code at all).
 */
static int walk_cfi(const cp_unwind_table *tab, regs *rg, uintptr_t lo,
                    uintptr_t hi, uintptr_t *pcs, size_t *np, size_t max,
                    walk_memo *m)
{
    size_t n = *np;
    bool exact = true;
    int status = WALK_FULL;
    const cp_cfi_obj *o = NULL;
    bool checked = false; /* o was confirmed loaded (obj_checked) */
    cp_cfi_obj here;      /* an object the table does not know */
    while (n < max) {
        uintptr_t pc = rg->r[CP_CFI_RA], sp = rg->r[CP_CFI_RSP];
        pcs[n++] = pc;
        uintptr_t look = exact ? pc : pc - 1;
        /* Consecutive frames are mostly in one object. */
        if (!o || look < o->text_lo || look >= o->text_hi) {
            o = obj_find(tab, look);
            checked = false;
        }
        cp_cfi_rule rule;
        if (!cp_cfi_cache_get(pc, exact, table_gen(tab), &rule)) {
            if (!checked) {
                o = obj_checked(tab, o, look, &here);
                checked = true;
            }
            if (!o) {
                status = WALK_UNKNOWN;
                break;
            }
            if (!rule_resolve(tab, o, pc, exact, &rule)) {
                status = WALK_FAIL;
                break;
            }
        }
        if (rule.signal) {
            /* The kernel's rt_sigframe: the ucontext sits at the SP the
             * handler returned to.  (Not replayed: the walk may go on on
             * another stack.) */
            if (m)
                m->ok = false;
            size_t need = offsetof(ucontext_t, uc_mcontext.gregs) +
                          (REG_RIP + 1) * sizeof(greg_t);
            if (sp < lo || hi - sp < need) {
                status = WALK_FAIL;
                break;
            }
            uintptr_t gregs = sp + offsetof(ucontext_t, uc_mcontext.gregs);
            for (int i = 0; i < CP_CFI_NREGS; i++)
                rg->r[i] = load_word(gregs + greg_of[i] * sizeof(greg_t));
            rg->known = BIT(CP_CFI_NREGS) - 1;
            exact = true;
            uintptr_t nsp = rg->r[CP_CFI_RSP];
            if (rg->r[CP_CFI_RA] == 0) {
                status = WALK_END;
                break;
            }
            if (nsp < lo || nsp >= hi) { /* it ran on an alternate stack */
                uintptr_t h = 0;
                stack_bounds(tab, nsp, &lo, &h);
                if (h <= lo) {
                    if (n < max)
                        pcs[n++] = rg->r[CP_CFI_RA];
                    status = WALK_FAIL;
                    break;
                }
                hi = h;
            }
            continue;
        }
        if (!(rg->known & BIT(rule.cfa_reg))) {
            status = WALK_FAIL;
            break;
        }
        uintptr_t cfa = rg->r[rule.cfa_reg] + (intptr_t)rule.cfa_off;
        if (rule.cfa_deref && !walk_read(m, cfa, lo, hi, &cfa)) {
            status = WALK_FAIL;
            break;
        }
        if (rule.ra_how == CP_CFI_UNDEF) {
            status = WALK_END;
            break;
        }
        uintptr_t ra;
        if (cfa <= sp || !walk_read(m, cfa + (intptr_t)rule.ra_off, lo, hi,
                                    &ra)) {
            status = WALK_FAIL;
            break;
        }
        uint32_t known = BIT(CP_CFI_RSP) | BIT(CP_CFI_RA);
        uintptr_t bp = rg->r[CP_CFI_RBP];
        bool bp_ok = rg->known & BIT(CP_CFI_RBP);
        switch (rule.rbp_how) {
        case CP_CFI_SAME:
            break;
        case CP_CFI_AT_CFA:
            bp_ok = walk_read(m, cfa + (intptr_t)rule.rbp_off, lo, hi, &bp);
            break;
        case CP_CFI_AT_REG:
            bp_ok = (rg->known & BIT(rule.rbp_reg)) &&
                    walk_read(m, rg->r[rule.rbp_reg] + (intptr_t)rule.rbp_off,
                              lo, hi, &bp);
            break;
        default:
            bp_ok = false;
            break;
        }
        if (ra == 0) { /* a thread's or the process's first frame */
            status = WALK_END;
            break;
        }
        rg->r[CP_CFI_RSP] = cfa;
        rg->r[CP_CFI_RA] = ra;
        rg->r[CP_CFI_RBP] = bp;
        rg->known = known | (bp_ok ? BIT(CP_CFI_RBP) : 0);
        exact = false;
    }
    *np = n;
    return status;
}

/* ------------------------------------------------ libunwind (fallback) */

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip,
                              unw_proc_info_t *pi, int need_unwind_info,
                              void *arg)
{
    walk_ctx *w = arg;
    cp_cfi_obj here;
    const cp_cfi_obj *o = obj_checked(w->tab, obj_find(w->tab, ip), ip, &here);
    w->obj_ok = o != NULL;
    if (!o)
        return -UNW_ENOINFO;
    w->obj = *o;
    unw_dyn_info_t di;
    memset(&di, 0, sizeof(di));
    di.start_ip = o->text_lo;
    di.end_ip = o->text_hi;
    di.format = UNW_INFO_FORMAT_REMOTE_TABLE;
    di.u.rti.segbase = o->eh_hdr;
    /* Entries are two int32s: one unw_word_t each. */
    di.u.rti.table_len = o->fde_count * 8 / sizeof(unw_word_t);
    di.u.rti.table_data = o->table;
    return unwind_state.search_table(as, ip, &di, pi, need_unwind_info, arg);
}

static void acc_put_unwind_info(unw_addr_space_t as, unw_proc_info_t *pi,
                                void *arg)
{
    /* libunwind frees the FDE info it parsed itself. */
}

static int acc_get_dyn_info_list_addr(unw_addr_space_t as, unw_word_t *addr,
                                      void *arg)
{
    return -UNW_ENOINFO;
}

static int acc_access_mem(unw_addr_space_t as, unw_word_t addr,
                          unw_word_t *val, int write, void *arg)
{
    const walk_ctx *w = arg;
    if (write)
        return -UNW_EINVAL;
    if (addr >= w->stack_lo && w->stack_hi >= sizeof(unw_word_t) &&
        addr <= w->stack_hi - sizeof(unw_word_t)) {
        *val = load_word(addr);
        return 0;
    }
    /* Elsewhere only the frame's own object, checked loaded: its tables
     * and its code (libunwind looks for a sigreturn there). */
    if (unwind_state.find_object) {
        const cp_cfi_obj *o = &w->obj;
        if (w->obj_ok &&
            ((addr >= o->data_lo && addr < o->data_hi &&
              o->data_hi - addr >= sizeof(unw_word_t)) ||
             (addr >= o->text_lo && addr < o->text_hi &&
              o->text_hi - addr >= sizeof(unw_word_t)))) {
            *val = load_word(addr);
            return 0;
        }
        return -UNW_EINVAL;
    }
    const cp_range *r = range_find(w->tab->segs, w->tab->nsegs, addr);
    if (r && addr <= r->hi - sizeof(unw_word_t)) {
        *val = load_word(addr);
        return 0;
    }
    return -UNW_EINVAL;
}

static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg,
                          unw_word_t *val, int write, void *arg)
{
    /* libunwind numbers x86-64 registers as DWARF does. */
    const walk_ctx *w = arg;
    if (write || reg < 0 || reg >= CP_CFI_NREGS)
        return -UNW_EBADREG;
    *val = (unw_word_t)w->uc->uc_mcontext.gregs[greg_of[reg]];
    return 0;
}

static int acc_access_fpreg(unw_addr_space_t as, unw_regnum_t reg,
                            unw_fpreg_t *val, int write, void *arg)
{
    return -UNW_EBADREG;
}

static int acc_resume(unw_addr_space_t as, unw_cursor_t *c, void *arg)
{
    return -UNW_EINVAL;
}

static int acc_get_proc_name(unw_addr_space_t as, unw_word_t addr, char *buf,
                             size_t len, unw_word_t *off, void *arg)
{
    return -UNW_ENOINFO;
}

static unw_accessors_t unwind_accessors = {
    .find_proc_info = acc_find_proc_info,
    .put_unwind_info = acc_put_unwind_info,
    .get_dyn_info_list_addr = acc_get_dyn_info_list_addr,
    .access_mem = acc_access_mem,
    .access_reg = acc_access_reg,
    .access_fpreg = acc_access_fpreg,
    .resume = acc_resume,
    .get_proc_name = acc_get_proc_name,
};

static size_t walk_dwarf(walk_ctx *w, uintptr_t *pcs, size_t max)
{
    unw_cursor_t cursor;
    if (unwind_state.init_remote(&cursor, unwind_state.as, w) < 0)
        return 0;
    size_t n = 0;
    uintptr_t prev_sp = 0;
    while (n < max) {
        unw_word_t ip = 0, sp = 0;
        if (unwind_state.get_reg(&cursor, UNW_REG_IP, &ip) < 0 || ip == 0)
            break;
        unwind_state.get_reg(&cursor, UNW_REG_SP, &sp);
        /* Guard against a cycle: the stack pointer must not go down. */
        if (n > 0 && sp < prev_sp)
            break;
        prev_sp = sp;
        pcs[n++] = ip;
        if (unwind_state.step(&cursor) <= 0)
            break;
    }
    return n;
}

/* ---------------------------------------------------------------- public */

/* The memo's frames when its walk would repeat now (see walk_memo);
 * 0 otherwise. */
static size_t memo_replay(const walk_memo *m, uint32_t gen, const regs *rg,
                          uintptr_t lo, uintptr_t hi, uintptr_t *pcs,
                          size_t max)
{
    if (!m->valid || m->gen != gen || m->sp != lo || m->hi != hi ||
        m->max != max || m->pc != rg->r[CP_CFI_RA] ||
        m->bp != rg->r[CP_CFI_RBP])
        return 0;
    for (size_t i = 0; i < m->nreads; i++)
        if (load_word(lo + m->off[i]) != m->val[i])
            return 0;
    memcpy(pcs, m->pcs, m->npcs * sizeof *pcs);
    return m->npcs;
}

/* A ucontext holding the registers of rg (the libunwind fallback reads
 * one; cp_unwind_self has none). */
static const ucontext_t *uc_of(const regs *rg, ucontext_t *uc)
{
    memset(&uc->uc_mcontext, 0, sizeof uc->uc_mcontext);
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)rg->r[CP_CFI_RA];
    uc->uc_mcontext.gregs[REG_RSP] = (greg_t)rg->r[CP_CFI_RSP];
    uc->uc_mcontext.gregs[REG_RBP] = (greg_t)rg->r[CP_CFI_RBP];
    return uc;
}

/*
 * libunwind's walk from the frame in uc, or in start's registers when uc
 * is NULL (cp_unwind_self), into pcs[0..max).  Out of line, as is
 * dwarf_deeper below: their buffers (a ucontext, up to
 * CP_UNWIND_FALLBACK_MAX frames) would otherwise sit in unwind_from's
 * frame, some 2 KiB more of the interrupted thread's stack on every
 * sample, in signal handlers and inside malloc, though the fallback
 * rarely runs.
 */
static __attribute__((noinline)) size_t
dwarf_from(const regs *start, const ucontext_t *uc, uintptr_t lo,
           uintptr_t hi, const cp_unwind_table *tab, uintptr_t *pcs,
           size_t max)
{
    ucontext_t self_uc;
    walk_ctx w = { .uc = uc ? uc : uc_of(start, &self_uc),
                   .stack_lo = lo, .stack_hi = hi, .tab = tab };
    return walk_dwarf(&w, pcs, max);
}

/* After a CFI walk that failed at frame n: libunwind from scratch, kept
 * when it gets further.  Returns the frames in pcs now. */
static __attribute__((noinline)) size_t
dwarf_deeper(const regs *start, const ucontext_t *uc, uintptr_t lo,
             uintptr_t hi, const cp_unwind_table *tab, uintptr_t *pcs,
             size_t n, size_t max)
{
    uintptr_t alt[CP_UNWIND_FALLBACK_MAX];
    size_t amax = max < CP_UNWIND_FALLBACK_MAX ? max : CP_UNWIND_FALLBACK_MAX;
    size_t an = dwarf_from(start, uc, lo, hi, tab, alt, amax);
    atomic_fetch_add_explicit(&unwind_state.fallbacks, 1, memory_order_relaxed);
    if (an > n) {
        atomic_fetch_add_explicit(&unwind_state.fallback_deeper, 1,
                                  memory_order_relaxed);
        memcpy(pcs, alt, an * sizeof *pcs);
        n = an;
    }
    return n;
}

/*
 * The walk shared by both entry points, from the frame in rg.  uc, if not
 * NULL, holds the same registers for libunwind; self: rg is
 * cp_unwind_self's frame (a ucontext is made from it if libunwind is
 * needed).  memo: cp_unwind_self's replay memo, held, or NULL.  Called
 * with the re-entry guard set and counted in readers.
 */
static size_t unwind_from(const cp_unwind_table *tab, regs *rg,
                          const ucontext_t *uc, uintptr_t *pcs, size_t max,
                          enum cp_unwind_mode mode, bool self,
                          walk_memo *memo)
{
    uintptr_t lo, hi;
    stack_bounds(tab, rg->r[CP_CFI_RSP], &lo, &hi);
    regs start = *rg;
    size_t n = 0;
    /* libunwind can run: it is installed and has a context to start from. */
    bool dwarf = unwind_state.as && (uc || self);
    if (tab && hi > lo && mode != CP_UNWIND_FP && unwind_state.cfi) {
        atomic_fetch_add_explicit(&unwind_state.walks, 1,
                                  memory_order_relaxed);
        if (memo) {
            n = memo_replay(memo, table_gen(tab), rg, lo, hi, pcs, max);
            if (n) {
                atomic_fetch_add_explicit(&unwind_state.complete, 1,
                                          memory_order_relaxed);
                return n;
            }
            memo->valid = false;
            memo->ok = true;
            memo->nreads = 0;
        }
        int st = walk_cfi(tab, rg, lo, hi, pcs, &n, max, memo);
        bool failed = st == WALK_FAIL || st == WALK_UNKNOWN;
        if (memo && memo->ok && !failed && n >= 2 && n <= MEMO_PCS) {
            memo->gen = table_gen(tab);
            memo->max = max;
            memo->pc = start.r[CP_CFI_RA];
            memo->sp = lo;
            memo->bp = start.r[CP_CFI_RBP];
            memo->hi = hi;
            memo->npcs = (uint16_t)n;
            memcpy(memo->pcs, pcs, n * sizeof *pcs);
            memo->valid = true;
        }
        if (!failed) {
            atomic_fetch_add_explicit(&unwind_state.complete, 1,
                                      memory_order_relaxed);
        } else if (st == WALK_UNKNOWN && self) {
            /* Inside the allocator the table cannot be refreshed, and
             * libunwind knows no more about that code than we do: past
             * it, it could only guess from frame pointers, and code
             * without them yields stale words of the stack as callers
             * (seen: a dlopen'ed Python module's frame "called" by
             * cp_unwind_self).  The stack ends at that PC instead; the
             * next refresh (a profile build) makes such code known. */
        } else if (dwarf) {
            /* Code the CFI walk cannot interpret. */
            n = dwarf_deeper(&start, uc, lo, hi, tab, pcs, n, max);
        }
    } else if (tab && hi > lo && mode != CP_UNWIND_FP && dwarf) {
        n = dwarf_from(&start, uc, lo, hi, tab, pcs, max);
    }
    if (self && !tab) {
        /* Library constructors that run before ours allocate before the
         * table exists; a frame-pointer walk from here would pass
         * through their frames (mostly built without frame pointers) on
         * guesses.  The caller keeps the allocation's own site. */
        pcs[0] = start.r[CP_CFI_RA];
        n = 1;
    } else if (n == 0 || (n == 1 && mode == CP_UNWIND_AUTO)) {
        /* FP walk: the only mode without unwind tables, and AUTO's
         * fallback when DWARF knew nothing past the leaf (JIT code). */
        pcs[0] = start.r[CP_CFI_RA];
        n = hi > lo ? walk_fp(&start, tab, lo, hi, pcs, 1, max) : 1;
    }
    return n;
}

/* unwind_from under the re-entry guard, counted in readers so the
 * table it reads is not freed under it; errno preserved. */
static size_t unwind_guarded(regs *rg, const ucontext_t *uc, uintptr_t *pcs,
                             size_t max, enum cp_unwind_mode mode, bool self,
                             walk_memo *memo)
{
    if (unwind_tls.busy)
        return 0;
    int saved_errno = errno;
    unwind_tls.busy = 1;
    atomic_fetch_add_explicit(&unwind_state.readers, 1, memory_order_acquire);
    const cp_unwind_table *tab =
        atomic_load_explicit(&unwind_state.table, memory_order_acquire);
    size_t n = unwind_from(tab, rg, uc, pcs, max, mode, self, memo);
    atomic_fetch_sub_explicit(&unwind_state.readers, 1, memory_order_release);
    unwind_tls.busy = 0;
    errno = saved_errno;
    return n;
}

size_t cp_unwind_signal(void *ucv, uintptr_t *pcs, size_t max,
                        enum cp_unwind_mode mode)
{
    const ucontext_t *uc = ucv;
    if (!uc || !pcs || max == 0)
        return 0;
    regs rg;
    regs_from_uc(uc, &rg);
    return unwind_guarded(&rg, uc, pcs, max, mode, false, NULL);
}

/* fork child: a slot that another thread held at the fork would stay
 * held for good (that thread does not exist here), and the threads that
 * hash to it would never replay again.  Only this thread runs now. */
static void memo_fork_child(void)
{
    for (size_t i = 0; i < (1u << MEMO_SLOTS_LOG2); i++) {
        unwind_state.memo[i].valid = false;
        atomic_store_explicit(&unwind_state.memo[i].busy, 0,
                              memory_order_relaxed);
    }
    /* A parent thread inside cp_unwind_refresh (the CPU drain refreshes
     * when a walk met unknown code) left the refresh lock held, and any
     * walk in progress stays counted in readers: the child would hang on
     * the lock (preload's fork handler restarts the CPU profile, which
     * refreshes) or wait a second on every refresh.  Neither thread
     * exists here.  The table is whichever one was published; one being
     * built is leaked. */
    pthread_mutex_init(&unwind_state.refresh_lock, NULL);
    atomic_store_explicit(&unwind_state.readers, 0, memory_order_relaxed);
}

/* Ahead of the default-priority constructors, so that this child handler
 * runs before any other of ours that may refresh (preload's restarts the
 * CPU profile): child handlers run in registration order. */
__attribute__((constructor(102))) static void memo_fork_register(void)
{
    pthread_atfork(NULL, NULL, memo_fork_child);
}

__attribute__((noinline)) size_t cp_unwind_self(uintptr_t *pcs, size_t max)
{
    if (!pcs || max == 0)
        return 0;
    /* This frame's registers at one instruction: its CFI row describes
     * exactly this RSP and RBP, so the walk starts here like any leaf. */
    uintptr_t pc, sp, bp;
    __asm__ volatile("leaq 0(%%rip), %0\n\t"
                     "movq %%rsp, %1\n\t"
                     "movq %%rbp, %2"
                     : "=&r"(pc), "=&r"(sp), "=&r"(bp));
    regs rg;
    rg.r[CP_CFI_RA] = pc;
    rg.r[CP_CFI_RSP] = sp;
    rg.r[CP_CFI_RBP] = bp;
    rg.known = BIT(CP_CFI_RA) | BIT(CP_CFI_RSP) | BIT(CP_CFI_RBP);
    /* This thread's memo slot, if no other thread holds it. */
    walk_memo *m = &unwind_state.memo[((uintptr_t)&unwind_tls *
                                       UINT64_C(0x9e3779b97f4a7c15)) >>
                                      (64 - MEMO_SLOTS_LOG2)];
    int idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&m->busy, &idle, 1,
                                                 memory_order_acquire,
                                                 memory_order_relaxed))
        m = NULL;
    size_t n = unwind_guarded(&rg, NULL, pcs, max, CP_UNWIND_AUTO, true, m);
    if (m)
        atomic_store_explicit(&m->busy, 0, memory_order_release);
    return n;
}

void cp_unwind_stats(cp_unwind_stats_t *s)
{
    s->walks = atomic_load_explicit(&unwind_state.walks,
                                    memory_order_relaxed);
    s->complete = atomic_load_explicit(&unwind_state.complete,
                                       memory_order_relaxed);
    s->fallbacks = atomic_load_explicit(&unwind_state.fallbacks,
                                        memory_order_relaxed);
    s->fallback_deeper = atomic_load_explicit(&unwind_state.fallback_deeper,
                                              memory_order_relaxed);
    /* Normal context: the table cannot be freed while we hold the lock
     * that serializes refreshes. */
    pthread_mutex_lock(&unwind_state.refresh_lock);
    const cp_unwind_table *t = atomic_load(&unwind_state.table);
    s->generation = t ? table_gen(t) : 0;
    s->memos_held = 0;
    for (size_t i = 0; i < (1u << MEMO_SLOTS_LOG2); i++)
        s->memos_held += atomic_load_explicit(&unwind_state.memo[i].busy,
                                              memory_order_relaxed) != 0;
    pthread_mutex_unlock(&unwind_state.refresh_lock);
}

/* --------------------------------------------------- table construction */

typedef struct build_ctx {
    cp_unwind_table *t;
    size_t objs_cap, segs_cap;
    int err;
} build_ctx;

static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *nv = realloc(*v, ncap * elem);
    if (!nv)
        return -ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    build_ctx *b = arg;
    cp_unwind_table *t = b->t;
    if (t->adds == 0 && t->subs == 0) {
        t->adds = info->dlpi_adds;
        t->subs = info->dlpi_subs;
    }
    long page = 4096;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type != PT_LOAD)
            continue;
        if (grow((void **)&t->segs, &b->segs_cap, t->nsegs,
                 sizeof(cp_range)) < 0) {
            b->err = -ENOMEM;
            return 1;
        }
        cp_range r = { start & ~(uintptr_t)(page - 1),
                       (start + ph->p_memsz + page - 1) &
                           ~(uintptr_t)(page - 1) };
        t->segs[t->nsegs++] = r;
    }
    cp_cfi_obj o;
    if (obj_from_phdrs(info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum,
                       &o)) {
        if (grow((void **)&t->objs, &b->objs_cap, t->nobjs,
                 sizeof(cp_cfi_obj)) < 0) {
            b->err = -ENOMEM;
            return 1;
        }
        t->objs[t->nobjs++] = o;
    }
    return 0;
}

static int cmp_range(const void *a, const void *b)
{
    const cp_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int cmp_obj(const void *a, const void *b)
{
    const cp_cfi_obj *x = a, *y = b;
    return x->text_lo < y->text_lo ? -1 : x->text_lo > y->text_lo;
}

/* Sorts v and merges overlapping or touching ranges, so lookups can
 * binary-search and a word never straddles two entries. */
static size_t normalize(cp_range *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_range);
    size_t out = 0;
    for (size_t i = 1; i < n; i++) {
        if (v[i].lo <= v[out].hi) {
            if (v[i].hi > v[out].hi)
                v[out].hi = v[i].hi;
        } else {
            v[++out] = v[i];
        }
    }
    return out + 1;
}

/* Writable private mappings without a file (thread stacks, [stack]). */
static int read_stacks(cp_unwind_table *t)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return -errno;
    size_t cap = 0;
    char line[512];
    int err = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms,
                   &path_at) < 3)
            continue;
        const char *path = path_at ? line + path_at : "";
        bool anon = path[0] == '\n' || path[0] == '\0' ||
                    strncmp(path, "[stack]", 7) == 0;
        if (strncmp(perms, "rw", 2) != 0 || !anon)
            continue;
        if (grow((void **)&t->stacks, &cap, t->nstacks, sizeof(cp_range))) {
            err = -ENOMEM;
            break;
        }
        t->stacks[t->nstacks++] = (cp_range){ lo, hi };
    }
    fclose(f);
    return err;
}

static void table_free(cp_unwind_table *t)
{
    if (!t)
        return;
    free(t->objs);
    free(t->segs);
    free(t->stacks);
    free(t);
}

static int table_build(cp_unwind_table **out)
{
    cp_unwind_table *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    build_ctx b = { .t = t };
    cp_loader_iterate(phdr_cb, &b);
    int err = b.err ? b.err : read_stacks(t);
    if (err) {
        table_free(t);
        return err;
    }
    qsort(t->objs, t->nobjs, sizeof(*t->objs), cmp_obj);
    t->nsegs = normalize(t->segs, t->nsegs);
    t->nstacks = normalize(t->stacks, t->nstacks);
    atomic_init(&t->gen, next_gen());
    *out = t;
    return 0;
}

/* Frees old once no handler can still be reading it. */
static void table_retire(cp_unwind_table *old)
{
    if (!old)
        return;
    /* A handler that loaded old did so while counted in readers; one that
     * starts now loads the new table.  So seeing readers at zero once
     * after the swap means old is unreachable. */
    for (int i = 0; i < 10000; i++) {
        if (atomic_load_explicit(&unwind_state.readers,
                                 memory_order_acquire) == 0) {
            table_free(old);
            return;
        }
        struct timespec ts = { 0, 100000 };
        nanosleep(&ts, NULL);
    }
    /* Never quiet for a second: leak it rather than risk a fault. */
}

int cp_unwind_refresh(void)
{
    pthread_mutex_lock(&unwind_state.refresh_lock);
    cp_unwind_table *cur = atomic_load(&unwind_state.table);
    unsigned long long c[2];
    cp_loader_counters(&c[0], &c[1]);
    int stale = atomic_exchange(&unwind_state.stale, 0);
    int err = 0;
    if (!cur || stale || c[0] != cur->adds || c[1] != cur->subs) {
        cp_unwind_table *t;
        err = table_build(&t);
        if (err == 0) {
            cp_unwind_table *old = atomic_exchange(&unwind_state.table, t);
            table_retire(old);
        }
    }
    pthread_mutex_unlock(&unwind_state.refresh_lock);
    return err;
}

void cp_unwind_forget_unloaded(void)
{
    pthread_mutex_lock(&unwind_state.refresh_lock); /* holds off retire */
    cp_unwind_table *t = atomic_load(&unwind_state.table);
    if (t) {
        atomic_store_explicit(&t->gen, next_gen(), memory_order_relaxed);
        atomic_store_explicit(&unwind_state.stale, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&unwind_state.refresh_lock);
}

/* Loads libunwind's generic unwinder (normal context, once). */
static void load_libunwind(void)
{
    const char *names[] = { "libunwind-x86_64.so.8", "libunwind-x86_64.so" };
    void *lib = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(*names) && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
    create_as_fn create = (create_as_fn)dlsym(lib, "_Ux86_64_create_addr_space");
    set_caching_fn caching =
        (set_caching_fn)dlsym(lib, "_Ux86_64_set_caching_policy");
    init_remote_fn init = (init_remote_fn)dlsym(lib, "_Ux86_64_init_remote");
    step_fn step = (step_fn)dlsym(lib, "_Ux86_64_step");
    get_reg_fn get_reg = (get_reg_fn)dlsym(lib, "_Ux86_64_get_reg");
    search_table_fn search =
        (search_table_fn)dlsym(lib, "_Ux86_64_dwarf_search_unwind_table");
    if (!create || !caching || !init || !step || !get_reg || !search) {
        dlclose(lib);
        return;
    }
    unw_addr_space_t as = create(&unwind_accessors, 0);
    if (!as) {
        dlclose(lib);
        return;
    }
    /* The global cache of parsed unwind rules makes a walk about 4x
     * faster than no cache.  Its lock is only ever taken by unwinds, with
     * every signal blocked, so the interrupted thread never holds it and
     * another holder releases it within microseconds.  (The per-thread
     * cache would live in libunwind's dynamic TLS, which glibc allocates
     * with malloc on a thread's first touch: not in a handler.) */
    caching(as, UNW_CACHE_GLOBAL);
    unwind_state.lib = lib;
    unwind_state.init_remote = init;
    unwind_state.step = step;
    unwind_state.get_reg = get_reg;
    unwind_state.search_table = search;
    unwind_state.as = as;
}

static void unwind_init_once(void)
{
    if (!getenv("CPPROF_NO_DWARF")) {
        unwind_state.cfi = true;
        load_libunwind();
    }
    *(void **)&unwind_state.find_object = dlsym(RTLD_DEFAULT,
                                                "_dl_find_object");
    cp_unwind_refresh();
}

int cp_unwind_dwarf_available(void)
{
    pthread_once(&unwind_state.once, unwind_init_once);
    return unwind_state.cfi || unwind_state.as != NULL;
}

static int thread_prepare(void)
{
    pthread_once(&unwind_state.once, unwind_init_once);
    if (!atomic_load(&unwind_state.table)) {
        int err = cp_unwind_refresh();
        if (err)
            return err;
    }
    if (!unwind_tls.stack_hi) {
        pthread_attr_t attr;
        void *addr;
        size_t size;
        if (pthread_getattr_np(pthread_self(), &attr) == 0) {
            if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
                unwind_tls.stack_lo = (uintptr_t)addr;
                unwind_tls.stack_hi = (uintptr_t)addr + size;
            }
            pthread_attr_destroy(&attr);
        }
    }
    /* Pre-warm: one walk of this thread in normal context resolves every
     * lazy binding and one-time initialization on the handler's path. */
    ucontext_t uc;
    uintptr_t pcs[8];
    if (getcontext(&uc) == 0) {
        cp_unwind_signal(&uc, pcs, 8, CP_UNWIND_FP);
        cp_unwind_signal(&uc, pcs, 8, CP_UNWIND_DWARF);
    }
    cp_unwind_self(pcs, 8);
    return 0;
}

int cp_unwind_thread_prepare(void)
{
    /* pthread_getattr_np allocates: an allocator hook that prepares the
     * thread would re-enter here (and deadlock on the thread's own lock
     * inside glibc) without this guard. */
    if (unwind_tls.preparing)
        return 0;
    unwind_tls.preparing = true;
    int rc = thread_prepare();
    unwind_tls.preparing = false;
    return rc;
}
