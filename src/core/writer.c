/*
 * core/writer.c - cpprof_writer: the one sink abstraction.  Every profile,
 * HTTP response, service file and CLI output is written through it.
 *
 * Kinds: fd, FILE*, memory buffer, callback, and "path" (a temporary file
 * beside the target, renamed over it at close only when every write
 * succeeded, so a failed or partial save never replaces a good file).
 * Small writes are gathered in a fixed staging buffer, so the text encoders
 * may write a field at a time.  The first error sticks.
 *
 * Thread-safety: a writer belongs to one thread at a time.  Not for signal
 * handlers (it allocates and does blocking I/O).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/writer.h"
#include "capture/own_section.h"

enum writer_kind { W_FD, W_FILE, W_BUFFER, W_CALLBACK, W_PATH };

#define STAGE_SIZE 16384

struct cpprof_writer {
    enum writer_kind kind;
    int err;         /* first error, sticky */
    uint64_t bytes;  /* accepted so far */
    int fd;          /* W_FD, W_PATH */
    FILE *fp;        /* W_FILE */
    cpprof_write_fn fn; /* W_CALLBACK */
    void *arg;
    char *path;      /* W_PATH: final name */
    char *tmp_path;  /* W_PATH: where bytes go until commit */
    char *data;      /* W_BUFFER: all bytes; others: staging area */
    size_t len, cap;
};

static int writer_make(cpprof_writer **out, enum writer_kind kind)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    cpprof_writer *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->kind = kind;
    w->fd = -1;
    if (kind != W_BUFFER) {
        w->data = malloc(STAGE_SIZE);
        if (!w->data) {
            free(w);
            return -ENOMEM;
        }
        w->cap = STAGE_SIZE;
    }
    *out = w;
    return 0;
}

/* writer_make as the profiler's own allocation (capture/own_section.h):
 * writers never show in the program's heap profile. */
static int writer_new(cpprof_writer **out, enum writer_kind kind)
{
    bool was_own = cp_own_begin();
    int rc = writer_make(out, kind);
    cp_own_end(was_own);
    return rc;
}

int cpprof_writer_open_fd(cpprof_writer **out, int fd)
{
    if (fd < 0)
        return -EBADF;
    int rc = writer_new(out, W_FD);
    if (rc == 0)
        (*out)->fd = fd;
    return rc;
}

int cpprof_writer_open_file(cpprof_writer **out, FILE *fp)
{
    if (!fp)
        return -EINVAL;
    int rc = writer_new(out, W_FILE);
    if (rc == 0)
        (*out)->fp = fp;
    return rc;
}

int cpprof_writer_open_buffer(cpprof_writer **out)
{
    return writer_new(out, W_BUFFER);
}

int cpprof_writer_open_callback(cpprof_writer **out, cpprof_write_fn fn,
                                void *arg)
{
    if (!fn)
        return -EINVAL;
    int rc = writer_new(out, W_CALLBACK);
    if (rc == 0) {
        (*out)->fn = fn;
        (*out)->arg = arg;
    }
    return rc;
}

int cpprof_writer_open_path(cpprof_writer **out, const char *path)
{
    if (!path || !*path)
        return -EINVAL;
    /* The temporary name is unique per process and call, so concurrent
     * saves of the same profile never share a temporary file. */
    static atomic_uint serial;
    unsigned n = atomic_fetch_add(&serial, 1);
    size_t len = strlen(path) + 64;
    bool was_own = cp_own_begin();
    char *tmp = malloc(len);
    char *final = strdup(path);
    cp_own_end(was_own);
    if (!tmp || !final) {
        free(tmp);
        free(final);
        return -ENOMEM;
    }
    snprintf(tmp, len, "%s.tmp.%ld.%u", path, (long)getpid(), n);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = -errno;
        free(tmp);
        free(final);
        return e;
    }
    int rc = writer_new(out, W_PATH);
    if (rc != 0) {
        close(fd);
        unlink(tmp);
        free(tmp);
        free(final);
        return rc;
    }
    (*out)->fd = fd;
    (*out)->path = final;
    (*out)->tmp_path = tmp;
    return 0;
}

static int write_fd_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return errno ? -errno : -EIO;
        }
        if (k == 0)
            return -EIO;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Hands n bytes to the sink itself (no staging). */
static int sink(cpprof_writer *w, const char *p, size_t n)
{
    if (n == 0)
        return 0;
    switch (w->kind) {
    case W_FD:
    case W_PATH:
        return write_fd_all(w->fd, p, n);
    case W_FILE:
        if (fwrite(p, 1, n, w->fp) != n)
            return ferror(w->fp) && errno ? -errno : -EIO;
        return 0;
    case W_CALLBACK: {
        int rc = w->fn(w->arg, p, n);
        return rc > 0 ? -EIO : rc;
    }
    case W_BUFFER:
        break;
    }
    return -EINVAL;
}

static int flush_stage(cpprof_writer *w)
{
    if (w->kind == W_BUFFER || w->len == 0)
        return w->err;
    int rc = w->err ? w->err : sink(w, w->data, w->len);
    w->len = 0;
    if (rc && !w->err)
        w->err = rc;
    return w->err;
}

int cp_writer_write(cpprof_writer *w, const void *data, size_t len)
{
    if (!w)
        return -EINVAL;
    if (w->err)
        return w->err;
    if (len == 0)
        return 0;
    if (w->kind == W_BUFFER) {
        if (w->len + len > w->cap) {
            size_t cap = w->cap ? w->cap : 4096;
            while (cap < w->len + len)
                cap *= 2;
            char *d = realloc(w->data, cap);
            if (!d)
                return w->err = -ENOMEM;
            w->data = d;
            w->cap = cap;
        }
        memcpy(w->data + w->len, data, len);
        w->len += len;
        w->bytes += len;
        return 0;
    }
    if (w->len + len > w->cap && flush_stage(w))
        return w->err;
    if (len >= w->cap) {
        int rc = sink(w, data, len);
        if (rc)
            return w->err = rc;
    } else {
        memcpy(w->data + w->len, data, len);
        w->len += len;
    }
    w->bytes += len;
    return 0;
}

int cp_writer_vprintf(cpprof_writer *w, const char *fmt, va_list ap)
{
    char small[512];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        va_end(ap2);
        return cp_writer_fail(w, -EINVAL);
    }
    if ((size_t)n < sizeof small) {
        va_end(ap2);
        return cp_writer_write(w, small, (size_t)n);
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        va_end(ap2);
        return cp_writer_fail(w, -ENOMEM);
    }
    vsnprintf(big, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    int rc = cp_writer_write(w, big, (size_t)n);
    free(big);
    return rc;
}

int cp_writer_printf(cpprof_writer *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cp_writer_vprintf(w, fmt, ap);
    va_end(ap);
    return rc;
}

int cp_writer_fail(cpprof_writer *w, int err)
{
    if (!w)
        return -EINVAL;
    if (!w->err)
        w->err = err < 0 ? err : -EIO;
    return w->err;
}

int cp_writer_flush(cpprof_writer *w)
{
    if (!w)
        return -EINVAL;
    flush_stage(w);
    if (!w->err && w->kind == W_FILE && fflush(w->fp) != 0)
        w->err = errno ? -errno : -EIO;
    return w->err;
}

const void *cpprof_writer_data(const cpprof_writer *w, size_t *len)
{
    if (!w || w->kind != W_BUFFER) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = w->len;
    return w->data;
}

uint64_t cpprof_writer_bytes(const cpprof_writer *w)
{
    return w ? w->bytes : 0;
}

int cpprof_writer_error(const cpprof_writer *w)
{
    return w ? w->err : -EINVAL;
}

int cpprof_writer_close(cpprof_writer *w)
{
    if (!w)
        return -EINVAL;
    int rc = cp_writer_flush(w);
    if (w->kind == W_PATH) {
        if (!rc && fsync(w->fd) != 0 && errno != EINVAL)
            rc = -errno;
        if (close(w->fd) != 0 && !rc)
            rc = -errno;
        if (!rc && rename(w->tmp_path, w->path) != 0)
            rc = -errno;
        if (rc)
            unlink(w->tmp_path); /* the previous file, if any, survives */
        free(w->tmp_path);
        free(w->path);
    }
    free(w->data);
    free(w);
    return rc;
}
