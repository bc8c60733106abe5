/*
 * core/labels.h - profiler label sets (the cpprof_labels_* API lives in
 * core/labels.c; the thread's current set and the type are in
 * capture/cpu_signal.h because the SIGPROF handler reads them).
 *
 * Normal context only: building and freeing sets allocate.
 */
#ifndef CP_CORE_LABELS_H
#define CP_CORE_LABELS_H

#include "capture/cpu_signal.h"

/* Takes one more reference (NULL is ignored). */
void cp_label_set_retain(cp_label_set *set);
/* Drops a reference and frees the set with the last one (NULL ignored). */
void cp_label_set_release(cp_label_set *set);

#endif
