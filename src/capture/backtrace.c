/*
 * capture/backtrace.c - the calling thread's stack from normal context,
 * with libunwind's local unwinder (DWARF-based, so frames without frame
 * pointers are walked correctly).
 *
 * NOT async-signal-safe and not for allocator hooks: libunwind may call
 * dl_iterate_phdr, which takes the loader lock.  Callers: custom profiles
 * (core/registry.c) and the pthread_create shim (creating thread, normal
 * context).  Thread-safe.
 */
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>

#include "capture/backtrace.h"
#include "capture/loader.h"

#define BACKTRACE_MAX_SKIP 64

#if defined(__SANITIZE_THREAD__)
/*
 * unw_backtrace keeps a per-thread cache freed by a pthread key destructor
 * that runs after ThreadSanitizer has torn down the thread's state, which
 * crashes TSan builds at thread exit.  Those builds walk with unw_step,
 * which keeps no per-thread state; the result is the same, only slower.
 */
static int walk(void **buf, int max)
{
    unw_context_t ctx;
    unw_cursor_t cursor;
    if (unw_getcontext(&ctx) != 0 || unw_init_local(&cursor, &ctx) != 0)
        return 0;
    int n = 0;
    /* The first entry, as with unw_backtrace, is the return address into
     * the caller of walk (cp_backtrace), so step once before storing. */
    while (n < max && unw_step(&cursor) > 0) {
        unw_word_t ip;
        if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0)
            break;
        buf[n++] = (void *)ip;
    }
    return n;
}
#else
/* Inlined even at -O0, so the first entry is the return address into
 * cp_backtrace in every build. */
__attribute__((always_inline)) static inline int walk(void **buf, int max)
{
    return unw_backtrace(buf, max);
}
#endif

/*
 * libunwind initialises its globals lazily on the first walk, guarded by a
 * flag it reads without synchronisation.  Doing that first walk under
 * pthread_once orders it before every other walk in every thread.
 */
static pthread_once_t warm_once = PTHREAD_ONCE_INIT;

static void warm_unwinder(void)
{
    void *buf[4];
    cp_loader_enter();
    walk(buf, 4);
    cp_loader_leave();
}

__attribute__((noinline)) size_t cp_backtrace(uintptr_t *pcs, size_t max,
                                               int skip)
{
    if (!pcs || max == 0 || skip < 0 || skip > BACKTRACE_MAX_SKIP)
        return 0;
    pthread_once(&warm_once, warm_unwinder);
    /* unw_backtrace's first entry is the return address into this
     * function; one more entry covers our own frame. */
    void *buf[BACKTRACE_MAX_SKIP + 1 + 128];
    size_t want = (size_t)skip + 1 + max;
    if (want > sizeof buf / sizeof buf[0])
        want = sizeof buf / sizeof buf[0];
    cp_loader_enter(); /* libunwind looks up unwind tables through it */
    int n = walk(buf, (int)want);
    cp_loader_leave();
    size_t first = (size_t)skip + 1;
    if (n <= 0 || (size_t)n <= first)
        return 0;
    size_t depth = 0;
    for (size_t i = first; i < (size_t)n && depth < max; i++)
        pcs[depth++] = (uintptr_t)buf[i];
    /* Keeps this frame from becoming a tail call, which would hide it
     * from the walk and shift every skip by one. */
    __asm__ volatile("" ::: "memory");
    return depth;
}
