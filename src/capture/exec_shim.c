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

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);

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

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    execve_fn f = (execve_fn)real("execve");
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    struct itimerval saved;
    bool d = disarm(&saved);
    int rc = f(path, argv, envp);
    rearm(d, &saved);
    return rc;
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    execvpe_fn f = (execvpe_fn)real("execvpe");
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    struct itimerval saved;
    bool d = disarm(&saved);
    int rc = f(file, argv, envp);
    rearm(d, &saved);
    return rc;
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    fexecve_fn f = (fexecve_fn)real("fexecve");
    if (!f) {
        errno = ENOSYS;
        return -1;
    }
    struct itimerval saved;
    bool d = disarm(&saved);
    int rc = f(fd, argv, envp);
    rearm(d, &saved);
    return rc;
}

EXPORT int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

/* The execl forms: count the arguments, then build argv on the stack.
 * glibc declares arg non-NULL, so the list has at least arg and the NULL
 * that ends it. */
#define COUNT_ARGS(last, n)                                                   \
    do {                                                                      \
        va_list ap_;                                                          \
        va_start(ap_, last);                                                  \
        n = 1;                                                                \
        while (va_arg(ap_, const char *) != NULL)                             \
            n++;                                                              \
        va_end(ap_);                                                          \
    } while (0)

EXPORT int execl(const char *path, const char *arg, ...)
{
    size_t n;
    COUNT_ARGS(arg, n);
    const char *argv[n + 1];
    va_list ap;
    va_start(ap, arg);
    argv[0] = arg;
    for (size_t i = 1; i <= n; i++)
        argv[i] = i < n ? va_arg(ap, const char *) : NULL;
    va_end(ap);
    return execve(path, (char *const *)argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    size_t n;
    COUNT_ARGS(arg, n);
    const char *argv[n + 1];
    va_list ap;
    va_start(ap, arg);
    argv[0] = arg;
    for (size_t i = 1; i <= n; i++)
        argv[i] = i < n ? va_arg(ap, const char *) : NULL;
    va_end(ap);
    return execvpe(file, (char *const *)argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    size_t n;
    COUNT_ARGS(arg, n);
    const char *argv[n + 1];
    va_list ap;
    va_start(ap, arg);
    argv[0] = arg;
    for (size_t i = 1; i <= n; i++)
        argv[i] = i < n ? va_arg(ap, const char *) : NULL;
    (void)va_arg(ap, const char *); /* the NULL that ends the list */
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, (char *const *)argv, envp);
}
