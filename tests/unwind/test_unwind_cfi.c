/*
 * tests/unwind/test_unwind_cfi.c - the CFI unwinder (capture/unwind_cfi.c
 * through capture/unwind_signal.c) against libunwind's local unwinder.
 *
 * Every stack below is unwound three ways from the same frame: libunwind's
 * unw_backtrace (the reference), cp_unwind_signal on a getcontext()
 * context in DWARF mode, and cp_unwind_self.  Above the probing frame the
 * three must agree exactly, frame for frame to the outermost, and the CFI
 * walk must not have needed its libunwind fallback.  Stacks: libc's qsort
 * callback, libstdc++ (std::sort, std::call_once, std::thread), GCC's
 * DRAP stack realignment, 200-deep recursion, signal frames (also on an
 * alternate stack), samples landing in PLT stubs, and code in a dlopen'ed
 * module before and after it is replaced.  Built -O2
 * -fomit-frame-pointer (only CFI can succeed) and with frame pointers.
 * Corrupt contexts and garbage unwind tables must end walks without a
 * fault.  Normal and signal context; one extra thread (std::thread).
 */
#include "support.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include "capture/unwind_cfi.h"
#include "capture/unwind_signal.h"

#define MAXD 256

void cpt_plt_nop(void);
void cpt_cxx_sort(void (*probe)(void));
void cpt_cxx_call_once(void (*probe)(void));
void cpt_cxx_thread(void (*probe)(void));

static struct {
    int checks, bad;
    volatile unsigned long sink;
} cmp;

/* ------------------------------------------------------------ helpers */

static const char *name_of(uintptr_t pc)
{
    static char buf[8][160];
    static int next;
    char *b = buf[next++ % 8];
    Dl_info info;
    if (dladdr((void *)pc, &info) && info.dli_sname)
        snprintf(b, 160, "%s+%#lx", info.dli_sname,
                 (unsigned long)(pc - (uintptr_t)info.dli_saddr));
    else if (info.dli_fname)
        snprintf(b, 160, "%s@%#lx", strrchr(info.dli_fname, '/') ?
                 strrchr(info.dli_fname, '/') + 1 : info.dli_fname,
                 (unsigned long)(pc - (uintptr_t)info.dli_fbase));
    else
        snprintf(b, 160, "%#lx", (unsigned long)pc);
    return b;
}

static void dump(const char *what, const uintptr_t *v, size_t n)
{
    fprintf(stderr, "  %s (%zu):", what, n);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %s", name_of(v[i]));
    fprintf(stderr, "\n");
}

/*
 * ours[from..n) must equal ref's frames from the one that matches
 * ours[from] (within ref's first few entries) to ref's end.
 */
static bool same_stack(const uintptr_t *ours, size_t n, size_t from,
                       const uintptr_t *ref, size_t nref)
{
    if (n <= from)
        return false;
    for (size_t j = 0; j < nref && j < 6; j++) {
        if (ref[j] != ours[from])
            continue;
        if (nref - j != n - from)
            return false;
        return memcmp(ref + j, ours + from, (n - from) * sizeof *ours) == 0;
    }
    return false;
}

static void check(const char *what, const uintptr_t *ours, size_t n,
                  size_t from, const uintptr_t *ref, size_t nref)
{
    cmp.checks++;
    if (same_stack(ours, n, from, ref, nref))
        return;
    cmp.bad++;
    fprintf(stderr, "%s: stacks differ\n", what);
    dump("ours", ours, n);
    dump("libunwind", ref, nref);
}

/* Unwinds from here three ways and compares (normal context). */
__attribute__((noinline)) static void probe(void)
{
    void *refv[MAXD];
    int nref = unw_backtrace(refv, MAXD);
    uintptr_t ref[MAXD];
    for (int i = 0; i < nref; i++)
        ref[i] = (uintptr_t)refv[i];
    ucontext_t uc;
    getcontext(&uc);
    uintptr_t ours[MAXD], self[MAXD];
    size_t n = cp_unwind_signal(&uc, ours, MAXD, CP_UNWIND_DWARF);
    size_t ns = cp_unwind_self(self, MAXD);
    /* ours[1] and self[2] are probe's return address. */
    check("cp_unwind_signal", ours, n, 1, ref, (size_t)nref);
    check("cp_unwind_self", self, ns, 2, ref, (size_t)nref);
    __asm__ volatile("" ::: "memory");
}

/* Runs fn, then asserts every comparison matched and no walk needed the
 * libunwind fallback. */
static void expect_exact(void (*fn)(void), int min_checks)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    cp_unwind_stats_t a, b;
    cp_unwind_stats(&a);
    memset(&cmp, 0, sizeof cmp);
    fn();
    cp_unwind_stats(&b);
    assert_true(cmp.checks >= min_checks);
    assert_int_equal(cmp.bad, 0);
    assert_true(b.walks - a.walks >= (uint64_t)min_checks);
    assert_int_equal(b.fallbacks - a.fallbacks, 0);
    assert_int_equal(b.complete - a.complete, b.walks - a.walks);
}

/* ------------------------------------------------------- known stacks */

static int qsort_cmp(const void *x, const void *y)
{
    static int once;
    if (!once++)
        probe();
    return *(const int *)x - *(const int *)y;
}

static void run_qsort(void)
{
    int v[64];
    for (int i = 0; i < 64; i++)
        v[i] = (i * 37) % 64;
    qsort(v, 64, sizeof *v, qsort_cmp);
}

static void test_qsort_callback(void **state)
{
    expect_exact(run_qsort, 2);
}

static void run_cxx(void)
{
    cpt_cxx_sort(probe);
    cpt_cxx_call_once(probe);
    cpt_cxx_thread(probe); /* a thread: prepared by our pthread_create */
}

static void test_libstdcxx(void **state)
{
    expect_exact(run_cxx, 6);
}

void cpt_sink(void *p, int n);
__attribute__((noinline)) void cpt_sink(void *p, int n)
{
    __asm__ volatile("" : : "r"(p), "r"(n) : "memory");
}

/* GCC realigns this frame through a DRAP register: a CFA expression
 * ([rbp - k]) and RBP saved by an expression. */
__attribute__((noinline)) static int drap_frame(int n)
{
    char big[64] __attribute__((aligned(64)));
    char *vla = __builtin_alloca(n);
    cpt_sink(big, 1);
    cpt_sink(vla, n);
    probe();
    return big[3] + vla[0];
}

static void run_drap(void)
{
    cmp.sink += (unsigned long)drap_frame(40);
}

static void test_drap_realigned_frame(void **state)
{
    expect_exact(run_drap, 2);
}

__attribute__((noinline)) static unsigned long recurse(int n)
{
    if (n == 0) {
        probe();
        return 1;
    }
    unsigned long r = recurse(n - 1);
    __asm__ volatile("" ::: "memory");
    return r * 3 + (unsigned long)n; /* not a tail call */
}

static void run_deep(void)
{
    cmp.sink += recurse(200);
}

static void test_deep_recursion(void **state)
{
    expect_exact(run_deep, 2);
}

/* --------------------------------------------------------- signal frames */

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
    probe();
}

__attribute__((noinline)) static void raise_twice(void)
{
    raise(SIGUSR1);
    __asm__ volatile("" ::: "memory");
}

static void run_signal(void)
{
    struct sigaction sa = { .sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    raise_twice();
    /* Again on an alternate signal stack: the walk changes stacks. */
    size_t size = 256 * 1024;
    void *alt = mmap(NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(alt != MAP_FAILED);
    stack_t ss = { .ss_sp = alt, .ss_size = size }, old;
    assert_int_equal(sigaltstack(&ss, &old), 0);
    sa.sa_flags |= SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    raise_twice();
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    munmap(alt, size);
    signal(SIGUSR1, SIG_DFL);
}

static void test_signal_frames(void **state)
{
    expect_exact(run_signal, 4);
}

/* ------------------------------------------------------------ PLT stubs */

static struct {
    uintptr_t lo[4], hi[4];
    int n;
} plt;

/* The executable's .plt* sections, from its section headers. */
static int plt_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    int fd = open("/proc/self/exe", O_RDONLY);
    if (fd < 0)
        return 1;
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) == sizeof eh && eh.e_shnum < 512) {
        Elf64_Shdr sh[512];
        size_t len = eh.e_shnum * sizeof *sh;
        if (pread(fd, sh, len, (off_t)eh.e_shoff) == (ssize_t)len) {
            char names[4096] = {0};
            Elf64_Shdr *strs = &sh[eh.e_shstrndx];
            pread(fd, names, strs->sh_size < 4095 ? strs->sh_size : 4095,
                  (off_t)strs->sh_offset);
            for (int i = 0; i < eh.e_shnum && plt.n < 4; i++) {
                if (sh[i].sh_name >= 4000 ||
                    strncmp(names + sh[i].sh_name, ".plt", 4) != 0)
                    continue;
                plt.lo[plt.n] = info->dlpi_addr + sh[i].sh_addr;
                plt.hi[plt.n] = plt.lo[plt.n] + sh[i].sh_size;
                plt.n++;
            }
        }
    }
    close(fd);
    return 1; /* the first object is the executable */
}

static bool in_plt(uintptr_t pc)
{
    for (int i = 0; i < plt.n; i++)
        if (pc >= plt.lo[i] && pc < plt.hi[i])
            return true;
    return false;
}

static struct {
    volatile int samples, in_plt, bad;
} prof;

static void on_prof(int sig, siginfo_t *si, void *ucv)
{
    ucontext_t *uc = ucv;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    if (!in_plt(pc))
        return;
    uintptr_t ours[64], ref[64];
    void *refv[64];
    size_t n = cp_unwind_signal(uc, ours, 64, CP_UNWIND_DWARF);
    int nref = unw_backtrace(refv, 64);
    for (int i = 0; i < nref; i++)
        ref[i] = (uintptr_t)refv[i];
    prof.in_plt++;
    /* libunwind goes through this handler and the signal frame first:
     * find the interrupted PC there and compare from it. */
    bool ok = false;
    for (int j = 0; j < nref; j++) {
        if (ref[j] == ours[0]) {
            ok = (size_t)(nref - j) == n &&
                 memcmp(ref + j, ours, n * sizeof *ours) == 0;
            break;
        }
    }
    if (!ok && prof.bad++ == 0) {
        dump("ours (PLT leaf)", ours, n);
        dump("libunwind", ref, (size_t)nref);
    }
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static void call_plt_loop(void)
{
    for (int i = 0; i < 100000; i++)
        cpt_plt_nop();
}

static void test_plt_leaf(void **state)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    dl_iterate_phdr(plt_cb, NULL);
    assert_true(plt.n > 0);
    cpt_plt_nop(); /* bind it now: later calls stay in the stub's jmp */
    cp_unwind_stats_t a, b;
    cp_unwind_stats(&a);
    struct sigaction sa = { .sa_sigaction = on_prof,
                            .sa_flags = SA_SIGINFO | SA_RESTART };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval it = { { 0, 200 }, { 0, 200 } };
    setitimer(ITIMER_PROF, &it, NULL);
    double t0 = cpu_now();
    while (prof.in_plt < 30 && cpu_now() - t0 < 4.0)
        call_plt_loop();
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_PROF, &off, NULL);
    signal(SIGPROF, SIG_DFL);
    cp_unwind_stats(&b);
    printf("PLT leaf samples: %d, mismatches %d\n", prof.in_plt, prof.bad);
#ifdef CPPROF_SANITIZER_BUILD
    /* Instrumented loop code leaves the stubs a small share of the CPU. */
    assert_true(prof.in_plt >= 1);
#else
    assert_true(prof.in_plt >= 5);
#endif
    assert_int_equal(prof.bad, 0);
    assert_int_equal(b.fallbacks - a.fallbacks, 0);
}

/* --------------------------------------------- dlclose and the rule cache */

static int mod_cb(int x)
{
    probe();
    return x + 1;
}

typedef int (*mod_call_fn)(int (*)(int), int);

static void run_mod(const char *path, uintptr_t *text, void **handle)
{
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    assert_non_null(*handle);
    mod_call_fn call = (mod_call_fn)dlsym(*handle, "cpt_mod_call");
    assert_non_null(call);
    cp_unwind_refresh(); /* as the profilers do from their own threads */
    cmp.sink += (unsigned long)call(mod_cb, 3);
    *text = (uintptr_t)call;
}

static void test_dlclose_invalidates(void **state)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    memset(&cmp, 0, sizeof cmp);
    void *h;
    uintptr_t text_a, text_b;
    run_mod(CPT_MOD_A, &text_a, &h);
    assert_int_equal(cmp.bad, 0);
    cp_unwind_stats_t s1, s2, s3;
    cp_unwind_stats(&s1);
    dlclose(h);
    assert_int_equal(cp_unwind_refresh(), 0);
    cp_unwind_stats(&s2);
    assert_true(s2.generation != s1.generation);

    /* The rules cached for the unloaded code are not served any more. */
    cp_cfi_rule rule;
    assert_false(cp_cfi_cache_get(text_a + 1, true, s2.generation, &rule));
    /* A context interrupted in unmapped code: one frame, no fault. */
    ucontext_t uc;
    getcontext(&uc);
    uc.uc_mcontext.gregs[REG_RIP] = (greg_t)text_a;
    uintptr_t pcs[MAXD];
    size_t n = cp_unwind_signal(&uc, pcs, MAXD, CP_UNWIND_DWARF);
    assert_true(n >= 1 && n <= MAXD);
    assert_int_equal(pcs[0], text_a);

    /* Another module, its frame a different size, likely at the same
     * address: its stacks must come out right, not with A's rules. */
    run_mod(CPT_MOD_B, &text_b, &h);
    cp_unwind_stats(&s3);
    printf("module B %s module A's address\n",
           text_a == text_b ? "reuses" : "does not reuse");
    assert_int_equal(cmp.checks, 4);
    assert_int_equal(cmp.bad, 0);
    dlclose(h);
}

/* ------------------------------------------------------- corrupt input */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

__attribute__((noinline)) static void corrupt_walks(void)
{
    ucontext_t base;
    getcontext(&base);
    uintptr_t code = (uintptr_t)&corrupt_walks;
    /* A fake stack of plausible return addresses and pointers into
     * itself, the worst case for a walker that trusts what it reads. */
    uintptr_t fake[512];
    uintptr_t pcs[MAXD];
    enum cp_unwind_mode modes[] = { CP_UNWIND_DWARF, CP_UNWIND_AUTO };
    for (int iter = 0; iter < 3000; iter++) {
        for (size_t i = 0; i < 512; i++) {
            uint64_t r = rng();
            switch (r % 4) {
            case 0: fake[i] = code + (r >> 8) % 65536 - 32768; break;
            case 1: fake[i] = (uintptr_t)&fake[(r >> 8) % 512]; break;
            case 2: fake[i] = (uintptr_t)&qsort + (r >> 8) % 4096; break;
            default: fake[i] = r; break;
            }
        }
        ucontext_t uc = base;
        uint64_t r = rng();
        greg_t *g = uc.uc_mcontext.gregs;
        g[REG_RSP] = (greg_t)&fake[r % 256];
        g[REG_RBP] = (greg_t)fake[(r >> 9) % 512];
        switch ((r >> 20) % 6) {
        case 0: g[REG_RIP] = (greg_t)(code + (r >> 32) % 4096); break;
        case 1: g[REG_RIP] = (greg_t)((uintptr_t)&qsort + (r >> 32) % 4096);
            break;
        case 2: g[REG_RIP] = (greg_t)0x10; break;
        case 3: g[REG_RIP] = (greg_t)-1; break;
        case 4: g[REG_RSP] = (greg_t)(r & ~(uint64_t)7); break;
        default: g[REG_RSP] = (greg_t)((r >> 8) | 1); break;
        }
        size_t n = cp_unwind_signal(&uc, pcs, MAXD, modes[iter & 1]);
        assert_true(n <= MAXD);
    }
    __asm__ volatile("" ::: "memory");
}

static void test_corrupt_stacks(void **state)
{
    assert_int_equal(cp_unwind_thread_prepare(), 0);
    corrupt_walks();
}

/* A copy of this executable's segment holding .eh_frame_hdr and
 * .eh_frame: the copy resolves like the original at shifted addresses
 * (every encoding is relative), and can then be corrupted. */
static struct {
    uintptr_t seg, seg_len, hdr, text_lo, text_hi;
} self_eh;

static int self_eh_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t hdr = 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_EH_FRAME)
            hdr = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type != PT_LOAD)
            continue;
        if (hdr >= start && hdr < start + ph->p_filesz) {
            self_eh.seg = start;
            self_eh.seg_len = ph->p_filesz;
        }
        if (ph->p_flags & PF_X) {
            self_eh.text_lo = start;
            self_eh.text_hi = start + ph->p_memsz;
        }
    }
    self_eh.hdr = hdr;
    return 1;
}

/* The segment also holds .rodata, which AddressSanitizer poisons
 * around each global: copy it unchecked. */
__attribute__((no_sanitize("address"))) static void
copy_unchecked(uint8_t *to, uintptr_t from, size_t n)
{
    const volatile uint8_t *p = (const volatile uint8_t *)from;
    for (size_t i = 0; i < n; i++)
        to[i] = p[i];
}

/* Corrupted tables: every lookup ends in an error or a rule, never a
 * read outside the object's span (ASan checks that too). */
static void test_corrupt_tables(void **state)
{
    dl_iterate_phdr(self_eh_cb, NULL);
    assert_true(self_eh.hdr && self_eh.seg_len);
    uint8_t *copy = malloc(self_eh.seg_len);
    assert_non_null(copy);
    copy_unchecked(copy, self_eh.seg, self_eh.seg_len);
    uintptr_t shift = (uintptr_t)copy - self_eh.seg;
    cp_cfi_obj o = { .text_lo = self_eh.text_lo + shift,
                     .text_hi = self_eh.text_hi + shift };
    assert_true(cp_cfi_obj_init(&o, self_eh.hdr + shift, (uintptr_t)copy,
                                (uintptr_t)copy + self_eh.seg_len));
    /* Intact, the copy resolves this function like the original. */
    cp_cfi_obj orig = o;
    assert_true(cp_cfi_obj_init(&orig, self_eh.hdr, self_eh.seg,
                                self_eh.seg + self_eh.seg_len));
    cp_cfi_rule r1, r2;
    uintptr_t here = (uintptr_t)&test_corrupt_tables + 16;
    assert_int_equal(cp_cfi_resolve(&orig, here, false, &r1), 0);
    assert_int_equal(cp_cfi_resolve(&o, here + shift, false, &r2), 0);
    assert_int_equal(r1.cfa_off, r2.cfa_off);
    assert_int_equal(r1.cfa_reg, r2.cfa_reg);

    /* Corrupt bytes from the header to the end of the segment. */
    size_t from = self_eh.hdr - self_eh.seg, span = self_eh.seg_len - from;
    uint8_t *saved = malloc(self_eh.seg_len);
    assert_non_null(saved);
    memcpy(saved, copy, self_eh.seg_len);
    int rules = 0, errors = 0;
    uintptr_t text_len = self_eh.text_hi - self_eh.text_lo;
    for (int iter = 0; iter < 4000; iter++) {
        for (int k = 0; k < 16; k++) {
            size_t at = from + 12 + rng() % (span - 12);
            copy[at] = (uint8_t)rng();
        }
        for (int k = 0; k < 8; k++) {
            uintptr_t pc = o.text_lo + rng() % text_len;
            if (cp_cfi_resolve(&o, pc, rng() & 1, &r1) == 0)
                rules++;
            else
                errors++;
        }
        if (iter % 50 == 49)
            memcpy(copy, saved, self_eh.seg_len);
    }
    free(saved);
    free(copy);
    printf("corrupt tables: %d rules, %d errors\n", rules, errors);
    assert_true(rules > 0 && errors > 0);
}

/* The rule cache keeps what was put, per generation, and never mixes
 * entries. */
static void test_rule_cache(void **state)
{
    cp_cfi_rule r = { .cfa_off = -123456, .ra_off = -8, .rbp_off = -16,
                      .cfa_reg = CP_CFI_RBP, .cfa_deref = 1,
                      .ra_how = CP_CFI_AT_CFA, .rbp_how = CP_CFI_AT_REG,
                      .rbp_reg = CP_CFI_R10, .signal = 0 }, got;
    uintptr_t pc = 0x7f0000123456u;
    cp_cfi_cache_put(pc, false, 77, &r);
    assert_true(cp_cfi_cache_get(pc, false, 77, &got));
    assert_int_equal(got.cfa_off, r.cfa_off);
    assert_int_equal(got.ra_off, r.ra_off);
    assert_int_equal(got.rbp_off, r.rbp_off);
    assert_int_equal(got.cfa_reg, r.cfa_reg);
    assert_int_equal(got.cfa_deref, r.cfa_deref);
    assert_int_equal(got.ra_how, r.ra_how);
    assert_int_equal(got.rbp_how, r.rbp_how);
    assert_int_equal(got.rbp_reg, r.rbp_reg);
    assert_int_equal(got.signal, r.signal);
    assert_false(cp_cfi_cache_get(pc, false, 78, &got));
    assert_false(cp_cfi_cache_get(pc, true, 77, &got));
    assert_false(cp_cfi_cache_get(pc + 1, false, 77, &got));
}

/* A thread that unwinds itself without pause holds a replay memo most of
 * the time; a fork child, where that thread does not exist, must find
 * every memo free (else the slot stays held for good there). */
static atomic_int memo_stop;

static void *memo_spinner(void *arg)
{
    (void)arg;
    uintptr_t pcs[32];
    while (!atomic_load(&memo_stop))
        cp_unwind_self(pcs, 32);
    return NULL;
}

static void test_fork_releases_replay_memos(void **state)
{
    (void)state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, memo_spinner, NULL), 0);
    int held_in_parent = 0;
    for (int i = 0; i < 100; i++) {
        cp_unwind_stats_t st;
        cp_unwind_stats(&st);
        held_in_parent += st.memos_held > 0;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            cp_unwind_stats(&st);
            _exit(st.memos_held == 0 ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    atomic_store(&memo_stop, 1);
    pthread_join(t, NULL);
    printf("memo held in the parent at %d of 100 looks\n", held_in_parent);
    /* Else no fork above caught a memo held, and the test proved nothing. */
    assert_true(held_in_parent > 0);
}

/* A thread that keeps the address table rebuilding: each dlopen or
 * dlclose changes the loader's counters, so every refresh rebuilds. */
static atomic_int refresh_stop;

static void *refresher(void *arg)
{
    (void)arg;
    while (!atomic_load(&refresh_stop)) {
        void *h = dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
        cp_unwind_refresh();
        if (h)
            dlclose(h);
        cp_unwind_refresh();
    }
    return NULL;
}

/*
 * Forks while another thread is inside cp_unwind_refresh: the child (a
 * preloaded process restarts its CPU profile in its fork handler, which
 * refreshes) must be able to refresh, walk and exit.  Before, the child
 * inherited the refresh lock held and hung for good (seen: a bash under
 * pyenv, forked while the CPU drain refreshed).  A child that hangs is
 * killed by its alarm and fails the test.
 */
static void test_fork_during_refresh(void **state)
{
    (void)state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, refresher, NULL), 0);
    for (int i = 0; i < 100; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(5);
            uintptr_t pcs[16];
            int rc = cp_unwind_refresh();
            _exit(rc == 0 && cp_unwind_self(pcs, 16) >= 2 ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    atomic_store(&refresh_stop, 1);
    pthread_join(t, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qsort_callback),
        cmocka_unit_test(test_libstdcxx),
        cmocka_unit_test(test_drap_realigned_frame),
        cmocka_unit_test(test_deep_recursion),
        cmocka_unit_test(test_signal_frames),
        cmocka_unit_test(test_plt_leaf),
        cmocka_unit_test(test_dlclose_invalidates),
        cmocka_unit_test(test_corrupt_stacks),
        cmocka_unit_test(test_corrupt_tables),
        cmocka_unit_test(test_rule_cache),
        cmocka_unit_test(test_fork_releases_replay_memos),
        cmocka_unit_test(test_fork_during_refresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
