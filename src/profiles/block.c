/*
 * profiles/block.c - placeholder until the block sampler lands: the profile's
 * name is reserved in the registry and every use reports -ENOSYS.
 */
#include "profiles/builtin.h"

const cp_builtin_ops cp_block_ops = {
    .name = "block",
    .description = "Stack traces that led to blocking on synchronization primitives.",
};
