/*
 * blobstore.h - a toy blob store client whose open blobs are tracked by
 * the custom profile "blobstore.Open", so a leak of open blobs shows up
 * in pprof attributed to whoever opened them.
 */
#ifndef BLOBSTORE_H
#define BLOBSTORE_H

typedef struct blob blob;

/* Opens a blob; every opened blob must be closed.  NULL on failure. */
blob *blob_open(const char *name);
/* Closes the blob and forgets it in the profile. */
void blob_close(blob *b);
const char *blob_name(const blob *b);

#endif
