/*
 * capture/new_shim.c - C++ operator new and delete, for the heap profile
 * of programs whose allocator defines its own (jemalloc, tcmalloc).
 *
 * libstdc++'s and libc++'s operator new call malloc, which
 * capture/malloc_shim.c sees.  jemalloc and tcmalloc define all twenty
 * operator new/delete symbols themselves, straight on their allocator:
 * with one of them in the process, every C++ allocation would bypass the
 * shim and the heap profile of a C++ program would be empty.  So
 * libcpprof defines them too (default visibility: ahead of both when
 * linked or preloaded) and decides once, from where the next definitions
 * live:
 *   - forward: the next operator new is not in the object that defines
 *     the next malloc (libstdc++'s, built on malloc): every call goes
 *     straight on to it, and its malloc is sampled as any other;
 *   - sample: the allocator defines both: new allocates through our
 *     malloc/memalign (sampled, then the allocator's), delete frees
 *     through our free.  A failed allocation is handed to the next
 *     operator new, which runs the new-handler loop and throws (or
 *     returns NULL for the nothrow forms) exactly as without us.
 * A program that replaces operator new itself is ahead of us in symbol
 * order and is left alone.  A C program never calls any of these.
 *
 * THE FENCE: runs inside the allocator, like malloc_shim.c: no lock, no
 * allocation of its own, errno untouched but by the real calls.  The
 * next definitions are looked up (dlsym, dladdr: the loader lock) by our
 * constructor, or by the first call if a library constructor that runs
 * before ours calls new; never later.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#ifndef CPPROF_SANITIZER_BUILD /* the sanitizer owns new and delete */

#define SHIM_EXPORT __attribute__((visibility("default")))

typedef void *(*new_fn)(size_t);
typedef void *(*new_nt_fn)(size_t, const void *);
typedef void *(*new_al_fn)(size_t, size_t);
typedef void *(*new_al_nt_fn)(size_t, size_t, const void *);

enum { NEW_UNRESOLVED = 0, NEW_FORWARD, NEW_SAMPLE };

/* The next definitions, by the mangled names: new, new[] in each of
 * the four forms, then the deletes (forward mode only). */
enum {
    NW, NW_NT, NW_AL, NW_AL_NT, NA, NA_NT, NA_AL, NA_AL_NT,
    DL, DL_SZ, DL_NT, DL_AL, DL_SZ_AL, DL_AL_NT,
    DA, DA_SZ, DA_NT, DA_AL, DA_SZ_AL, DA_AL_NT,
    NEW_SYMS
};

static const char *const new_names[NEW_SYMS] = {
    "_Znwm", "_ZnwmRKSt9nothrow_t", "_ZnwmSt11align_val_t",
    "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_Znam", "_ZnamRKSt9nothrow_t", "_ZnamSt11align_val_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdlPvm", "_ZdlPvRKSt9nothrow_t", "_ZdlPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPv", "_ZdaPvm", "_ZdaPvRKSt9nothrow_t", "_ZdaPvSt11align_val_t",
    "_ZdaPvmSt11align_val_t", "_ZdaPvSt11align_val_tRKSt9nothrow_t",
};

static struct {
    _Atomic int mode;
    void *next[NEW_SYMS]; /* written before mode is published */
} new_shim;

/* Same object? (dladdr reads the loader's lists without allocating.) */
static bool same_object(void *a, void *b)
{
    Dl_info ia, ib;
    return a && b && dladdr(a, &ia) && dladdr(b, &ib) &&
           ia.dli_fbase == ib.dli_fbase;
}

static int new_mode(void)
{
    int mode = atomic_load_explicit(&new_shim.mode, memory_order_acquire);
    if (mode != NEW_UNRESOLVED)
        return mode;
    /* Two threads may both resolve: they write the same values. */
    /* No next operator new (a C program): skip the other nineteen. */
    new_shim.next[NW] = dlsym(RTLD_NEXT, new_names[NW]);
    for (int i = 1; i < NEW_SYMS && new_shim.next[NW]; i++)
        new_shim.next[i] = dlsym(RTLD_NEXT, new_names[i]);
    /* Sample when the allocator defines new itself, and also when some
     * next definition is missing (a libstdc++ loaded where RTLD_NEXT
     * does not see it): malloc and free serve every form then. */
    bool complete = true;
    for (int i = 0; i < NEW_SYMS; i++)
        complete &= new_shim.next[i] != NULL;
    mode = !complete || same_object(new_shim.next[NW],
                                    dlsym(RTLD_NEXT, "malloc"))
               ? NEW_SAMPLE
               : NEW_FORWARD;
    atomic_store_explicit(&new_shim.mode, mode, memory_order_release);
    return mode;
}

/* Resolved by our constructor, like the malloc shim's real functions, so
 * that no later call takes the loader lock (dlsym) from inside a
 * program's allocation; constructors of libraries initialized before ours
 * that call new resolve it on that first call instead.  In a C program
 * nothing is found: sample mode then, harmless since nothing calls new
 * (a C++ plugin dlopen'ed later gets malloc-based new, as libstdc++'s). */
__attribute__((constructor)) static void new_shim_init(void)
{
    new_mode();
}

/*
 * The new forms.  Whole functions by macro rather than a shared inline
 * helper, so that the sampled frame symbolizes as "operator new" itself
 * (DWARF would show the helper as an inlined frame under it).  ALLOC is
 * our malloc or memalign; a NULL from it goes to the next definition.
 */
#define NEW_FORM(name, which, params, alloc, next_type, args)              \
    SHIM_EXPORT void *name params                                         \
    {                                                                     \
        if (new_mode() == NEW_SAMPLE) {                                   \
            void *p = alloc;                                              \
            if (p)                                                        \
                return p;                                                 \
        }                                                                 \
        next_type next = (next_type)new_shim.next[which];                 \
        return next ? next args : NULL;                                   \
    }

/* Zero bytes still get a unique block, as operator new requires. */
#define NEW_SIZE(n) ((n) ? (n) : 1)

NEW_FORM(_Znwm, NW, (size_t n), malloc(NEW_SIZE(n)), new_fn, (n))
NEW_FORM(_Znam, NA, (size_t n), malloc(NEW_SIZE(n)), new_fn, (n))
NEW_FORM(_ZnwmRKSt9nothrow_t, NW_NT, (size_t n, const void *tag),
         malloc(NEW_SIZE(n)), new_nt_fn, (n, tag))
NEW_FORM(_ZnamRKSt9nothrow_t, NA_NT, (size_t n, const void *tag),
         malloc(NEW_SIZE(n)), new_nt_fn, (n, tag))
NEW_FORM(_ZnwmSt11align_val_t, NW_AL, (size_t n, size_t al),
         memalign(al, NEW_SIZE(n)), new_al_fn, (n, al))
NEW_FORM(_ZnamSt11align_val_t, NA_AL, (size_t n, size_t al),
         memalign(al, NEW_SIZE(n)), new_al_fn, (n, al))
NEW_FORM(_ZnwmSt11align_val_tRKSt9nothrow_t, NW_AL_NT,
         (size_t n, size_t al, const void *tag), memalign(al, NEW_SIZE(n)),
         new_al_nt_fn, (n, al, tag))
NEW_FORM(_ZnamSt11align_val_tRKSt9nothrow_t, NA_AL_NT,
         (size_t n, size_t al, const void *tag), memalign(al, NEW_SIZE(n)),
         new_al_nt_fn, (n, al, tag))

/* The deletes: in sample mode the block came from our malloc or
 * memalign, whose free takes it; otherwise the next delete of the same
 * form, with the same arguments (the nothrow tag is a pointer). */
typedef void (*del1_fn)(void *);
typedef void (*del2_fn)(void *, size_t);
typedef void (*del3_fn)(void *, size_t, size_t);

#define DELETE1(name, which)                                              \
    SHIM_EXPORT void name(void *p)                                        \
    {                                                                     \
        if (new_mode() == NEW_SAMPLE)                                     \
            free(p);                                                      \
        else                                                              \
            ((del1_fn)new_shim.next[which])(p);                           \
    }
#define DELETE2(name, which)                                              \
    SHIM_EXPORT void name(void *p, size_t a)                              \
    {                                                                     \
        if (new_mode() == NEW_SAMPLE)                                     \
            free(p);                                                      \
        else                                                              \
            ((del2_fn)new_shim.next[which])(p, a);                        \
    }
#define DELETE3(name, which)                                              \
    SHIM_EXPORT void name(void *p, size_t a, size_t b)                    \
    {                                                                     \
        if (new_mode() == NEW_SAMPLE)                                     \
            free(p);                                                      \
        else                                                              \
            ((del3_fn)new_shim.next[which])(p, a, b);                     \
    }

DELETE1(_ZdlPv, DL)
DELETE2(_ZdlPvm, DL_SZ)
DELETE2(_ZdlPvRKSt9nothrow_t, DL_NT)
DELETE2(_ZdlPvSt11align_val_t, DL_AL)
DELETE3(_ZdlPvmSt11align_val_t, DL_SZ_AL)
DELETE3(_ZdlPvSt11align_val_tRKSt9nothrow_t, DL_AL_NT)
DELETE1(_ZdaPv, DA)
DELETE2(_ZdaPvm, DA_SZ)
DELETE2(_ZdaPvRKSt9nothrow_t, DA_NT)
DELETE2(_ZdaPvSt11align_val_t, DA_AL)
DELETE3(_ZdaPvmSt11align_val_t, DA_SZ_AL)
DELETE3(_ZdaPvSt11align_val_tRKSt9nothrow_t, DA_AL_NT)

#endif /* CPPROF_SANITIZER_BUILD */
