/*
 * main.c - the blob store example: 1000 tasks on 8 worker threads each
 * open a blob; one task in five closes it, the other 800 "forget".  The
 * program then writes the blobstore.Open profile, where the 800 leaked
 * blobs appear under the function that opened them.
 *
 *   blobstore [OUT.pb.gz]      (default: blobstore.Open.pb.gz)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <cpprof.h>

#include "blobstore.h"

#define TASKS 1000
#define WORKERS 8

static atomic_int next_task;
static blob *leaked[TASKS];

/* Opens one task's blob; the leak is here: only every fifth is closed. */
__attribute__((noinline)) static void run_task(int i)
{
    char name[32];
    snprintf(name, sizeof name, "task-blob-%d", i);
    blob *b = blob_open(name);
    if (i % 5 == 0)
        blob_close(b);
    else
        leaked[i] = b;
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i; (i = atomic_fetch_add(&next_task, 1)) < TASKS;)
        run_task(i);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *out = argc > 1 ? argv[1] : "blobstore.Open.pb.gz";
    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);

    cpprof_profile *p = cpprof_profile_lookup("blobstore.Open");
    if (!p) {
        fprintf(stderr, "blobstore: no profile\n");
        return 1;
    }
    printf("open blobs: %lld\n", (long long)cpprof_profile_count(p));

    cpprof_writer *w;
    int rc = cpprof_writer_open_path(&w, out);
    if (rc == 0) {
        rc = cpprof_profile_write(p, w, 0);
        int crc = cpprof_writer_close(w);
        if (rc == 0)
            rc = crc;
    }
    if (rc != 0) {
        fprintf(stderr, "blobstore: writing %s: %s\n", out, cpprof_strerror(rc));
        return 1;
    }
    printf("wrote %s\n", out);

    for (int i = 0; i < TASKS; i++)
        blob_close(leaked[i]);
    return 0;
}
