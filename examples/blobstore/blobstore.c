/*
 * blobstore.c - the blob store client.  The only profiling code is the
 * profile's creation and the add/remove pair around a blob's life.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cpprof.h>

#include "blobstore.h"

struct blob {
    char name[64];
};

static cpprof_profile *open_blobs;

__attribute__((constructor)) static void blobstore_init(void)
{
    int rc = cpprof_profile_new("blobstore.Open", &open_blobs);
    if (rc != 0)
        fprintf(stderr, "blobstore: profile: %s\n", cpprof_strerror(rc));
}

blob *blob_open(const char *name)
{
    blob *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    snprintf(b->name, sizeof b->name, "%s", name);
    /* skip 1: charge the open to our caller, not to blob_open itself. */
    if (open_blobs)
        cpprof_profile_add(open_blobs, b, 1);
    return b;
}

void blob_close(blob *b)
{
    if (!b)
        return;
    if (open_blobs)
        cpprof_profile_remove(open_blobs, b);
    free(b);
}

const char *blob_name(const blob *b)
{
    return b->name;
}
