/*
 * core/errors.c - cpprof_strerror: one message per negative errno that any
 * cpprof_ function returns.  Pure table lookup: safe from any context,
 * including signal handlers.
 */
#include <errno.h>
#include <string.h>

#include "cpprof.h"

const char *cpprof_strerror(int err)
{
    switch (err) {
    case 0:          return "success";
    case -EINVAL:    return "invalid argument";
    case -EEXIST:    return "already exists (duplicate profile name or value)";
    case -ENOENT:    return "no such profile";
    case -EPERM:     return "operation not permitted on a built-in profile";
    case -EBUSY:     return "resource busy (profiling already in use)";
    case -ENOSYS:    return "profile not available in this build";
    case -ENOTSUP:   return "operation not supported";
    case -ERANGE:    return "value out of range";
    case -ENOMEM:    return "out of memory";
    case -EIO:       return "input/output error";
    case -ENOSPC:    return "no space left on device";
    case -EPIPE:     return "broken pipe (the reader went away)";
    case -EAGAIN:    return "resource temporarily unavailable";
    case -EACCES:    return "permission denied";
    case -ETIMEDOUT: return "timed out";
    case -ECANCELED: return "canceled";
    case -EBADF:     return "bad file descriptor";
    case -EFBIG:     return "file too large";
    case -EDQUOT:    return "disk quota exceeded";
    case -EROFS:     return "read-only file system";
    case -ENOTDIR:   return "not a directory";
    case -EISDIR:    return "is a directory";
    case -ENAMETOOLONG: return "file name too long";
    case -EADDRINUSE: return "address already in use";
    case -EADDRNOTAVAIL: return "address not available";
    case -EPROTO:    return "malformed profile data";
    case -ELIBACC:   return "libmicrohttpd could not be loaded";
    default:
        return err < 0 ? "unknown error" : "not an error code";
    }
}
