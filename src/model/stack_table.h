/*
 * model/stack_table.h - the one table of unique stacks every profile uses.
 *
 * A stack is an array of program counters as captured (leaf first).  The
 * table stores each distinct stack once and names it by a 32-bit id, so
 * samplers and profiles keep ids, not arrays, and the profile builder sees
 * each stack once.  Stacks are never removed: like Go's profile buckets,
 * memory is bounded by the number of distinct stacks, not of events.
 *
 * Thread-safety: intern and get may be called concurrently from any
 * threads (the table is split into independently locked shards, so threads
 * interning different stacks rarely meet).  Not async-signal-safe: never
 * call from a signal handler or an interposed allocator path.
 */
#ifndef CP_MODEL_STACK_TABLE_H
#define CP_MODEL_STACK_TABLE_H

#include <stddef.h>
#include <stdint.h>

#define CP_STACK_MAX_DEPTH 128 /* frames kept per stack; deeper are cut */

typedef struct cp_stack_table cp_stack_table;

int cp_stack_table_new(cp_stack_table **out);
void cp_stack_table_free(cp_stack_table *t);

/* 64-bit hash of a stack (also used by samplers to pre-hash). */
uint64_t cp_stack_hash(const uintptr_t *pcs, size_t n);

/*
 * Stores the stack if new and sets *id.  n is clamped to
 * CP_STACK_MAX_DEPTH.  Returns 0 or -ENOMEM.
 */
int cp_stack_table_intern(cp_stack_table *t, const uintptr_t *pcs, size_t n,
                          uint32_t *id);
/* The stack named id: sets *pcs, returns its depth (0 if id is unknown).
 * The array stays valid for the table's lifetime. */
size_t cp_stack_table_get(cp_stack_table *t, uint32_t id,
                          const uintptr_t **pcs);
/* Number of distinct stacks stored. */
size_t cp_stack_table_size(cp_stack_table *t);

#endif
