/*
 * capture/exec_shim.c - the exec family, interposed so that nothing of
 * ours stays armed across exec.
 *
 * Per-thread CPU timers (timer_create) die with exec, but the process-wide
 * ITIMER_PROF of the setitimer fallback survives it, and the new program
 * would get SIGPROF with its default action (termination).  So each exec
 * disarms ITIMER_PROF when cpprof armed it, and re-arms it if exec fails.
 *
 * May be called anywhere the real exec may: after vfork, in a signal
 * handler.  ASYNC-SIGNAL-SAFE: getitimer/setitimer and the real call only,
 * no allocation (the execl forms build argv on the stack), errno is the
 * real call's.  Linked or preloaded: the real functions come from
 * dlsym(RTLD_NEXT).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <unistd.h>

#include "capture/cpu_signal.h"

#define EXPORT __attribute__((visibility("default")))

extern char **environ;

/* Disarms ITIMER_PROF if it is cpprof's and running; *saved keeps it. */
static bool disarm(struct itimerval *saved)
{
    if (!cp_cpu_itimer_active() || getitimer(ITIMER_PROF, saved) != 0)
        return false;
    if (saved->it_value.tv_sec == 0 && saved->it_value.tv_usec == 0)
        return false; /* not armed in this process (e.g. a vfork child) */
    static const struct itimerval off;
    return setitimer(ITIMER_PROF, &off, NULL) == 0;
}

/* exec failed: put the timer back, keeping exec's errno. */
static void rearm(bool disarmed, const struct itimerval *saved)
{
    if (disarmed) {
        int e = errno;
        setitimer(ITIMER_PROF, saved, NULL);
        errno = e;
    }
}

static void *real(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* One wrapper per real exec that takes an argv: resolve, disarm, call,
 * re-arm on failure. */
#define EXEC_WRAPPER(name, T, first)                                          \
    EXPORT int name(T first, char *const argv[], char *const envp[])          \
    {                                                                         \
        int (*f)(T, char *const[], char *const[]) =                           \
            (int (*)(T, char *const[], char *const[]))real(#name);            \
        if (!f) {                                                             \
            errno = ENOSYS;                                                   \
            return -1;                                                        \
        }                                                                     \
        struct itimerval saved;                                               \
        bool d = disarm(&saved);                                              \
        int rc = f(first, argv, envp);                                        \
        rearm(d, &saved);                                                     \
        return rc;                                                            \
    }

EXEC_WRAPPER(execve, const char *, path)
EXEC_WRAPPER(execvpe, const char *, file)
EXEC_WRAPPER(fexecve, int, fd)

EXPORT int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

/* The execl forms: count the arguments, build argv on the stack (no
 * allocation), and go through the argv wrappers.  glibc declares arg
 * non-NULL, so the list holds at least arg and the NULL that ends it;
 * with_env reads execle's envp after that NULL. */
#define EXECL_BODY(last, target, with_env)                                    \
    do {                                                                      \
        va_list ap;                                                           \
        size_t n = 1;                                                         \
        va_start(ap, last);                                                   \
        while (va_arg(ap, const char *) != NULL)                              \
            n++;                                                              \
        va_end(ap);                                                           \
        const char *argv[n + 1];                                              \
        va_start(ap, last);                                                   \
        argv[0] = last;                                                       \
        for (size_t i = 1; i <= n; i++)                                       \
            argv[i] = va_arg(ap, const char *); /* argv[n]: the NULL */       \
        char *const *envp = with_env ? va_arg(ap, char *const *) : environ;   \
        va_end(ap);                                                           \
        return target(file_or_path, (char *const *)argv, envp);               \
    } while (0)

EXPORT int execl(const char *path, const char *arg, ...)
{
    const char *file_or_path = path;
    EXECL_BODY(arg, execve, 0);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    const char *file_or_path = file;
    EXECL_BODY(arg, execvpe, 0);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    const char *file_or_path = path;
    EXECL_BODY(arg, execve, 1);
}
