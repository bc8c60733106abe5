/*
 * capture/unwind_signal.c - stack capture from inside a signal handler.
 *
 * Implements capture/unwind_signal.h for the CPU profiler's SIGPROF handler
 * and the threads profile's stack-dump handler.
 *
 * ASYNC-SIGNAL-SAFE (cp_unwind_signal): no allocation, no locks that a
 * non-signal path can hold, no dl_iterate_phdr, errno preserved, and no
 * read of memory that is not known to be mapped:
 *
 *   - The frame-pointer walk reads only inside the interrupted thread's
 *     stack, [interrupted sp, stack top), and requires the chain to grow
 *     strictly upwards, so a corrupt chain ends the walk instead of
 *     faulting or looping.
 *   - The DWARF walk runs libunwind's *generic* (remote-style) unwinder
 *     over our own accessors: registers come from the ucontext, every
 *     memory word is read only if it lies in the thread's stack or in a
 *     loaded object's segment, and unwind tables are found in an
 *     address-range table built here in normal context (cp_unwind_refresh)
 *     from dl_iterate_phdr and /proc/self/maps.  libunwind's own local
 *     unwinder would call dl_iterate_phdr (the loader lock) on every step;
 *     this one never does.  The generic unwinder lives in
 *     libunwind-x86_64.so, which is loaded with dlopen at first prepare
 *     (normal context) so the build needs no extra link dependency; when it
 *     is missing every mode falls back to frame pointers.  libunwind's
 *     internal pool and rule cache take their locks with all signals
 *     blocked, so the interrupted thread can never hold them (they are
 *     the one exception to "no locks", and why a DWARF walk costs about
 *     0.7 us a frame: two sigprocmask calls per step).
 *
 * Per-thread state is initial-exec TLS (no lazy allocation on first touch
 * inside a handler).  cp_unwind_thread_prepare records the thread's stack
 * bounds and pre-warms libunwind by unwinding once in normal context.
 * Threads that never called it (they existed before profiling started and
 * were not created through our pthread_create shim) are still unwound:
 * their stack bounds come from the /proc/self/maps snapshot in the table.
 *
 * The table is published through an atomic pointer; a refresh swaps it and
 * frees the old one only after the count of handlers inside an unwind has
 * been seen at zero, so a handler never reads a freed table.
 */
#include "capture/unwind_signal.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include <libunwind.h>

typedef struct cp_range {
    uintptr_t lo, hi;
} cp_range;

/* A loaded object with an .eh_frame_hdr binary-search table. */
typedef struct cp_unwind_obj {
    uintptr_t text_lo, text_hi; /* union of its executable segments */
    uintptr_t eh_hdr;           /* address of .eh_frame_hdr (segbase) */
    uintptr_t table;            /* its sorted (initial loc, fde) table */
    uintptr_t fde_count;
} cp_unwind_obj;

typedef struct cp_unwind_table {
    cp_unwind_obj *objs;  /* sorted by text_lo */
    size_t nobjs;
    cp_range *segs;       /* every PT_LOAD segment, page-rounded, sorted */
    size_t nsegs;
    cp_range *stacks;     /* writable anonymous mappings, sorted */
    size_t nstacks;
    unsigned long long adds, subs; /* dl_iterate_phdr counters at build */
} cp_unwind_table;

/* The generic libunwind entry points, resolved with dlsym. */
typedef unw_addr_space_t (*create_as_fn)(unw_accessors_t *, int);
typedef int (*set_caching_fn)(unw_addr_space_t, unw_caching_policy_t);
typedef int (*init_remote_fn)(unw_cursor_t *, unw_addr_space_t, void *);
typedef int (*step_fn)(unw_cursor_t *);
typedef int (*get_reg_fn)(unw_cursor_t *, int, unw_word_t *);
typedef int (*search_table_fn)(unw_addr_space_t, unw_word_t, unw_dyn_info_t *,
                               unw_proc_info_t *, int, void *);

static struct {
    pthread_once_t once;
    pthread_mutex_t refresh_lock;    /* serializes refreshes */
    _Atomic(cp_unwind_table *) table;
    atomic_int readers;              /* handlers inside an unwind now */
    atomic_int stale;                /* a handler met an unknown address */
    /* libunwind's generic unwinder (NULL members: FP only). */
    void *lib;
    unw_addr_space_t as;
    init_remote_fn init_remote;
    step_fn step;
    get_reg_fn get_reg;
    search_table_fn search_table;
} unwind_state = {
    .once = PTHREAD_ONCE_INIT,
    .refresh_lock = PTHREAD_MUTEX_INITIALIZER,
};

static __thread struct {
    uintptr_t stack_lo, stack_hi; /* from pthread_getattr_np; 0 if unknown */
    volatile sig_atomic_t busy;   /* re-entry guard */
    bool preparing;               /* cp_unwind_thread_prepare running */
} unwind_tls __attribute__((tls_model("initial-exec")));

/* What one DWARF walk's accessors need; lives on the handler's stack. */
typedef struct walk_ctx {
    const ucontext_t *uc;
    uintptr_t stack_lo, stack_hi;
    const cp_unwind_table *tab;
} walk_ctx;

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

static const cp_unwind_obj *obj_find(const cp_unwind_table *t, uintptr_t ip)
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

/* The readable stack span [sp, top) of the interrupted thread. */
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
    } else {
        atomic_store_explicit(&unwind_state.stale, 1, memory_order_relaxed);
    }
}

/* --------------------------------------------------- frame-pointer walk */

static size_t walk_fp(const ucontext_t *uc, const cp_unwind_table *tab,
                      uintptr_t lo, uintptr_t hi, uintptr_t *pcs, size_t n,
                      size_t max)
{
    uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
    /* Compilers set up no frame in leaf functions (and none exists yet at
     * a function's first instruction): then rbp is still the caller's and
     * the leaf's return address sits at [sp].  Take [sp] when it is code
     * and is not the return address the chain is about to give. */
    uintptr_t sp = lo;
    if (tab && n < max && sp <= hi - sizeof(uintptr_t)) {
        uintptr_t top = *(const uintptr_t *)sp;
        bool chain_next = fp >= lo && fp <= hi - 2 * sizeof(uintptr_t) &&
                          (fp & 7) == 0 && ((const uintptr_t *)fp)[1] == top;
        if (!chain_next && obj_find(tab, top) && obj_find(tab, pcs[0]))
            pcs[n++] = top;
    }
    while (n < max) {
        /* A frame is [fp] = caller's fp, [fp+8] = return address. */
        if (fp < lo || fp > hi - 2 * sizeof(uintptr_t) || (fp & 7) != 0)
            break;
        const uintptr_t *frame = (const uintptr_t *)fp;
        uintptr_t next = frame[0], ret = frame[1];
        if (ret < 4096)
            break;
        pcs[n++] = ret;
        if (next <= fp) /* the chain must climb towards the stack top */
            break;
        fp = next;
    }
    return n;
}

/* ------------------------------------------------------------ DWARF walk */

static int acc_find_proc_info(unw_addr_space_t as, unw_word_t ip,
                              unw_proc_info_t *pi, int need_unwind_info,
                              void *arg)
{
    const walk_ctx *w = arg;
    const cp_unwind_obj *o = obj_find(w->tab, ip);
    if (!o) {
        if (!range_find(w->tab->segs, w->tab->nsegs, ip))
            atomic_store_explicit(&unwind_state.stale, 1,
                                  memory_order_relaxed);
        return -UNW_ENOINFO;
    }
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
        *val = *(const unw_word_t *)addr;
        return 0;
    }
    const cp_range *r = range_find(w->tab->segs, w->tab->nsegs, addr);
    if (r && addr <= r->hi - sizeof(unw_word_t)) {
        *val = *(const unw_word_t *)addr;
        return 0;
    }
    return -UNW_EINVAL;
}

static int acc_access_reg(unw_addr_space_t as, unw_regnum_t reg,
                          unw_word_t *val, int write, void *arg)
{
    static const signed char greg_of[] = {
        [UNW_X86_64_RAX] = REG_RAX, [UNW_X86_64_RDX] = REG_RDX,
        [UNW_X86_64_RCX] = REG_RCX, [UNW_X86_64_RBX] = REG_RBX,
        [UNW_X86_64_RSI] = REG_RSI, [UNW_X86_64_RDI] = REG_RDI,
        [UNW_X86_64_RBP] = REG_RBP, [UNW_X86_64_RSP] = REG_RSP,
        [UNW_X86_64_R8] = REG_R8,   [UNW_X86_64_R9] = REG_R9,
        [UNW_X86_64_R10] = REG_R10, [UNW_X86_64_R11] = REG_R11,
        [UNW_X86_64_R12] = REG_R12, [UNW_X86_64_R13] = REG_R13,
        [UNW_X86_64_R14] = REG_R14, [UNW_X86_64_R15] = REG_R15,
        [UNW_X86_64_RIP] = REG_RIP,
    };
    const walk_ctx *w = arg;
    if (write || reg < 0 || reg > UNW_X86_64_RIP)
        return -UNW_EBADREG;
    *val = (unw_word_t)w->uc->uc_mcontext.gregs[(int)greg_of[reg]];
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

size_t cp_unwind_signal(void *ucv, uintptr_t *pcs, size_t max,
                        enum cp_unwind_mode mode)
{
    const ucontext_t *uc = ucv;
    if (!uc || !pcs || max == 0 || unwind_tls.busy)
        return 0;
    int saved_errno = errno;
    unwind_tls.busy = 1;
    atomic_fetch_add_explicit(&unwind_state.readers, 1, memory_order_acquire);
    const cp_unwind_table *tab =
        atomic_load_explicit(&unwind_state.table, memory_order_acquire);

    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    uintptr_t lo, hi;
    stack_bounds(tab, sp, &lo, &hi);

    size_t n = 0;
    bool dwarf = tab && unwind_state.as && mode != CP_UNWIND_FP;
    if (dwarf && hi > lo) {
        walk_ctx w = { .uc = uc, .stack_lo = lo, .stack_hi = hi, .tab = tab };
        n = walk_dwarf(&w, pcs, max);
    }
    if (n == 0 || (n == 1 && mode == CP_UNWIND_AUTO)) {
        /* FP walk: the only mode without libunwind, and AUTO's fallback
         * when DWARF knew nothing past the leaf (JIT code, no tables). */
        pcs[0] = pc;
        n = hi > lo ? walk_fp(uc, tab, lo, hi, pcs, 1, max) : 1;
    }

    atomic_fetch_sub_explicit(&unwind_state.readers, 1, memory_order_release);
    unwind_tls.busy = 0;
    errno = saved_errno;
    return n;
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

/* Reads an .eh_frame_hdr: fills o's table fields, false if unusable. */
static bool parse_eh_frame_hdr(uintptr_t hdr, cp_unwind_obj *o)
{
    const uint8_t *h = (const uint8_t *)hdr;
    /* version 1; eh_frame_ptr and fde_count 4-byte encoded; a table of
     * datarel sdata4 pairs (what every modern linker emits). */
    if (h[0] != 1 || h[3] != 0x3b)
        return false;
    if ((h[1] & 0x0f) != 0x03 && (h[1] & 0x0f) != 0x0b)
        return false;
    if (h[2] != 0x03)
        return false;
    uint32_t count;
    memcpy(&count, h + 8, sizeof(count));
    o->eh_hdr = hdr;
    o->table = hdr + 12;
    o->fde_count = count;
    return count > 0;
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    build_ctx *b = arg;
    cp_unwind_table *t = b->t;
    if (t->adds == 0 && t->subs == 0) {
        t->adds = info->dlpi_adds;
        t->subs = info->dlpi_subs;
    }
    cp_unwind_obj o = { .text_lo = UINTPTR_MAX };
    uintptr_t eh_hdr = 0;
    long page = 4096;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD) {
            if (grow((void **)&t->segs, &b->segs_cap, t->nsegs,
                     sizeof(cp_range)) < 0) {
                b->err = -ENOMEM;
                return 1;
            }
            cp_range r = { start & ~(uintptr_t)(page - 1),
                           (start + ph->p_memsz + page - 1) &
                               ~(uintptr_t)(page - 1) };
            t->segs[t->nsegs++] = r;
            if (ph->p_flags & PF_X) {
                if (start < o.text_lo)
                    o.text_lo = start;
                if (start + ph->p_memsz > o.text_hi)
                    o.text_hi = start + ph->p_memsz;
            }
        } else if (ph->p_type == PT_GNU_EH_FRAME) {
            eh_hdr = start;
        }
    }
    if (eh_hdr && o.text_lo < o.text_hi && parse_eh_frame_hdr(eh_hdr, &o)) {
        if (grow((void **)&t->objs, &b->objs_cap, t->nobjs,
                 sizeof(cp_unwind_obj)) < 0) {
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
    const cp_unwind_obj *x = a, *y = b;
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
    dl_iterate_phdr(phdr_cb, &b);
    int err = b.err ? b.err : read_stacks(t);
    if (err) {
        table_free(t);
        return err;
    }
    qsort(t->objs, t->nobjs, sizeof(*t->objs), cmp_obj);
    t->nsegs = normalize(t->segs, t->nsegs);
    t->nstacks = normalize(t->stacks, t->nstacks);
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

static int dl_counters_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    unsigned long long *c = arg;
    c[0] = info->dlpi_adds;
    c[1] = info->dlpi_subs;
    return 1; /* the counters are the same in every call: stop */
}

int cp_unwind_refresh(void)
{
    pthread_mutex_lock(&unwind_state.refresh_lock);
    cp_unwind_table *cur = atomic_load(&unwind_state.table);
    unsigned long long c[2] = { 0, 0 };
    dl_iterate_phdr(dl_counters_cb, c);
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
    if (!getenv("CPPROF_NO_DWARF"))
        load_libunwind();
    cp_unwind_refresh();
}

int cp_unwind_dwarf_available(void)
{
    pthread_once(&unwind_state.once, unwind_init_once);
    return unwind_state.as != NULL;
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
