/*
 * model/symbolize.h - address -> function, file, line and inline chain,
 * in-process, with elfutils libdw (DWARF) and the ELF symbol table as a
 * fallback when an object has no debug info.
 *
 * Usage: s = cp_symbolizer_acquire(); cp_symbolize(s, ...) any number of
 * times; cp_symbolizer_release(s).  Results are cached by address for the
 * life of the loaded objects; when a library is loaded or unloaded
 * (dl_iterate_phdr's adds/subs counters change) the next acquire starts a
 * fresh generation and the old one is freed when its last user releases
 * it, so strings handed out stay valid until release.
 *
 * Thread-safe; never from a signal handler or an interposed call (it
 * allocates, takes locks and opens files).
 */
#ifndef CP_MODEL_SYMBOLIZE_H
#define CP_MODEL_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

typedef struct cp_symbolizer cp_symbolizer;

typedef struct cp_frame {
    const char *function;    /* demangled name; NULL if unknown */
    const char *system_name; /* raw (mangled) symbol; NULL if unknown */
    const char *file;        /* source file; NULL if unknown */
    int line;                /* 0 if unknown */
    int start_line;          /* line of the function's declaration, or 0 */
    uintptr_t entry;         /* function start address (0 if unknown;
                                for inlined frames, the outer function's) */
} cp_frame;

cp_symbolizer *cp_symbolizer_acquire(void);
void cp_symbolizer_release(cp_symbolizer *s);

/*
 * Resolves addr (an exact instruction address: callers pass a return
 * address minus one) into at most cap frames, innermost inlined function
 * first, the real (outermost) function last.  Returns the number of
 * frames written; 0 when nothing is known about addr.
 */
size_t cp_symbolize(cp_symbolizer *s, uintptr_t addr, cp_frame *frames,
                    size_t cap);

/* What the symbolizer knows about the object containing addr, for the
 * Mapping flags: bits CP_SYM_HAS_* (0 if addr is in no known object). */
enum {
    CP_SYM_HAS_FUNCTIONS = 1,
    CP_SYM_HAS_FILENAMES = 2,
    CP_SYM_HAS_LINES = 4,
    CP_SYM_HAS_INLINES = 8,
};
unsigned cp_symbolize_object_flags(cp_symbolizer *s, uintptr_t addr);

#endif
