/*
 * capture/loader.h - the one way cpprof walks the dynamic loader's list of
 * objects (dl_iterate_phdr), made safe across fork.
 *
 * Why: glibc's fork does not reset the lock dl_iterate_phdr takes, so if
 * any thread is inside dl_iterate_phdr when another forks, the child hangs
 * the first time it calls dl_iterate_phdr (or throws a C++ exception, or
 * unwinds with libunwind).  Every cpprof path that may reach
 * dl_iterate_phdr -- the symbolizer, mapping snapshots, the unwinder's
 * address-range table, libunwind walks -- runs inside a loader section;
 * a pthread_atfork prepare handler, run after every other cpprof prepare
 * handler, waits for the sections in flight and holds new ones back until
 * the fork is done, so cpprof never leaves that lock held in a child.
 *
 * Normal thread context only (never a signal handler or an allocator
 * hook: dl_iterate_phdr takes the loader lock).  Thread-safe.  A section
 * takes no lock: entering is one atomic add on a per-thread stripe, and
 * nothing inside a section may wait for anything but the loader itself.
 */
#ifndef CP_CAPTURE_LOADER_H
#define CP_CAPTURE_LOADER_H

#include <stddef.h>

struct dl_phdr_info;

/* Brackets code that may call dl_iterate_phdr (directly or through a
 * library); sections nest. */
void cp_loader_enter(void);
void cp_loader_leave(void);

/* dl_iterate_phdr(cb, arg) inside a section; returns what it returns. */
int cp_loader_iterate(int (*cb)(struct dl_phdr_info *, size_t, void *),
                      void *arg);

/* The loader's load and unload counters (dlpi_adds, dlpi_subs): they
 * change whenever an object is loaded or unloaded.  Zero where the C
 * library does not report them. */
void cp_loader_counters(unsigned long long *adds, unsigned long long *subs);

#endif
