/*
 * tools/cpprof/run.c - `cpprof run [flags] -- PROGRAM ARGS...`: runs an
 * unchanged program with libcpprof preloaded and configured.
 *
 * The flags are go test's profiling flags; each sets one CPPROF_*
 * variable (the table in service/preload_env.c, which also validates the
 * values, so the flag and the variable accept the same things).  Then
 * LD_PRELOAD gets libcpprof.so and cpprof execs the program in its own
 * process: the program keeps cpprof's pid, stdio, exit status and
 * signals, exactly as if it had been started directly.
 *
 * Before exec it refuses, with an explanation, programs the loader would
 * not preload into: statically linked executables, set-user-ID/group-ID
 * or file-capability executables run by another user, and executables of
 * another ELF class.  Single-threaded, normal context.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"
#include "service/preload_env.h"

#ifndef CPPROF_BIN_TO_LIB
#define CPPROF_BIN_TO_LIB "../lib"
#endif

static void run_usage(FILE *f)
{
    fprintf(f, "usage: cpprof run [flags] [--] PROGRAM [ARGS...]\n\n"
               "Runs PROGRAM with libcpprof preloaded.  Profiles are written "
               "when it exits or\nis stopped by SIGINT/SIGTERM.  Flags (each "
               "sets the CPPROF_* variable shown):\n");
    for (const cp_pvar *v = cp_preload_vars; v->env; v++)
        fprintf(f, "  -%s %s\n        %s (%s)\n", v->flag, v->arg, v->usage,
                v->env);
    fprintf(f, "\nlibcpprof.so is looked up in $CPPROF_LIB, then next to the "
               "cpprof executable\n(%s/ from its directory; ../../ in a build "
               "tree).\n", CPPROF_BIN_TO_LIB);
}

/* ----------------------------------------------------- finding things */

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* libcpprof.so's absolute path, or NULL after explaining on stderr. */
static char *find_library(void)
{
    const char *env = getenv("CPPROF_LIB");
    if (env && *env) {
        char *r = realpath(env, NULL);
        if (!r || !is_file(r)) {
            fprintf(stderr, "cpprof run: CPPROF_LIB=%s: %s\n", env,
                    r ? "not a regular file" : strerror(errno));
            free(r);
            return NULL;
        }
        return r;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "cpprof run: cannot read /proc/self/exe: %s; set "
                        "CPPROF_LIB to libcpprof.so's path\n", strerror(errno));
        return NULL;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    *slash = '\0';
    /* The install tree first (bindir -> libdir, as configured), then the
     * build tree, where the executable is <build>/tools/cpprof/cpprof. */
    const char *rel[] = {CPPROF_BIN_TO_LIB, "../lib", "../lib64", "../../"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char cand[PATH_MAX + 64];
        snprintf(cand, sizeof cand, "%s/%s/libcpprof.so", exe, rel[i]);
        char *r = realpath(cand, NULL);
        if (r && is_file(r))
            return r;
        free(r);
    }
    fprintf(stderr, "cpprof run: cannot find libcpprof.so next to %s (looked "
                    "in %s/, ../lib/, ../lib64/ and ../../); set CPPROF_LIB "
                    "to its path\n", exe, CPPROF_BIN_TO_LIB);
    return NULL;
}

/* The file execvp would run for prog (PATH search), malloc'd, or NULL
 * with errno set. */
static char *find_program(const char *prog)
{
    if (strchr(prog, '/')) {
        if (access(prog, X_OK) != 0)
            return NULL;
        return strdup(prog);
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int first_err = ENOENT;
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char cand[PATH_MAX];
        snprintf(cand, sizeof cand, "%.*s%s%s", (int)len, p, len ? "/" : "",
                 prog);
        if (is_file(cand)) {
            if (access(cand, X_OK) == 0)
                return strdup(cand);
            first_err = EACCES;
        }
        if (!end)
            break;
        p = end + 1;
    }
    errno = first_err;
    return NULL;
}

/* ----------------------------------------------- what the loader does */

/*
 * Whether LD_PRELOAD can work for path: 0 yes (or not an ELF file we can
 * judge: the kernel and loader decide), else 1 after explaining why not.
 * depth guards #! chains.
 */
static int check_preloadable(const char *prog, const char *path, int depth)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* exec will report it */
    unsigned char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    struct stat st;
    bool have_stat = fstat(fd, &st) == 0;

    if (n > 2 && buf[0] == '#' && buf[1] == '!' && depth < 4) {
        close(fd);
        /* A script: what matters is its interpreter. */
        char interp[PATH_MAX];
        size_t i = 2, j = 0;
        while (i < (size_t)n && (buf[i] == ' ' || buf[i] == '\t'))
            i++;
        while (i < (size_t)n && buf[i] != ' ' && buf[i] != '\t' &&
               buf[i] != '\n' && j < sizeof interp - 1)
            interp[j++] = (char)buf[i++];
        interp[j] = '\0';
        return j ? check_preloadable(prog, interp, depth + 1) : 0;
    }
    if (n < (ssize_t)sizeof(Elf32_Ehdr) || memcmp(buf, ELFMAG, SELFMAG) != 0) {
        close(fd);
        return 0;
    }

    /* Secure-execution mode: the loader drops LD_PRELOAD paths. */
    if (have_stat && (((st.st_mode & S_ISUID) && st.st_uid != getuid()) ||
                      ((st.st_mode & S_ISGID) && st.st_gid != getgid()))) {
        fprintf(stderr,
                "cpprof run: %s is set-%s-ID; the dynamic loader ignores "
                "LD_PRELOAD for such programs (secure-execution mode), so "
                "cpprof cannot be loaded into it.  Profile a copy without "
                "the set-ID bit, or link it with -lcpprof.\n",
                path, (st.st_mode & S_ISUID) ? "user" : "group");
        close(fd);
        return 1;
    }
    if (fgetxattr(fd, "security.capability", NULL, 0) > 0) {
        fprintf(stderr,
                "cpprof run: %s has file capabilities; the dynamic loader "
                "ignores LD_PRELOAD for such programs (secure-execution "
                "mode).  Profile a copy without capabilities, or link it "
                "with -lcpprof.\n", path);
        close(fd);
        return 1;
    }

    int cls = buf[EI_CLASS];
    int mine = sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32;
    if (cls != mine) {
        fprintf(stderr,
                "cpprof run: %s is a %d-bit program and libcpprof is %d-bit; "
                "the loader cannot preload it.\n",
                path, cls == ELFCLASS64 ? 64 : 32, mine == ELFCLASS64 ? 64 : 32);
        close(fd);
        return 1;
    }
    /* Dynamically linked means it has a program interpreter (ld.so).
     * p_type is the first word of a program header in both classes. */
    uint64_t phoff;
    unsigned phnum, phentsize;
    if (cls == ELFCLASS64 && n >= (ssize_t)sizeof(Elf64_Ehdr)) {
        Elf64_Ehdr eh;
        memcpy(&eh, buf, sizeof eh);
        phoff = eh.e_phoff, phnum = eh.e_phnum, phentsize = eh.e_phentsize;
    } else {
        Elf32_Ehdr eh;
        memcpy(&eh, buf, sizeof eh);
        phoff = eh.e_phoff, phnum = eh.e_phnum, phentsize = eh.e_phentsize;
    }
    bool interp = false, judged = false;
    for (unsigned i = 0; i < phnum; i++) {
        uint32_t type;
        off_t off = (off_t)(phoff + (uint64_t)i * phentsize);
        if (pread(fd, &type, sizeof type, off) != (ssize_t)sizeof type)
            break;
        interp |= type == PT_INTERP;
        judged = true;
    }
    close(fd);
    if (judged && !interp) {
        fprintf(stderr,
                "cpprof run: %s is statically linked: no dynamic loader runs "
                "for it, so LD_PRELOAD cannot load libcpprof.  Link it with "
                "-lcpprof (see docs/preload.md) or build it dynamically.\n",
                prog);
        return 1;
    }
    return 0;
}

/* -------------------------------------------------------------- flags */

/* Puts lib first in LD_PRELOAD, keeping what was there (see
 * docs/preload.md for why first). */
static int set_preload(const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    if (!old || !*old)
        return setenv("LD_PRELOAD", lib, 1);
    /* Already listed: leave the user's order alone. */
    size_t ll = strlen(lib);
    for (const char *p = old; (p = strstr(p, lib)) != NULL; p += ll)
        if ((p == old || p[-1] == ':' || p[-1] == ' ') &&
            (p[ll] == '\0' || p[ll] == ':' || p[ll] == ' '))
            return 0;
    size_t n = ll + 1 + strlen(old) + 1;
    char *v = malloc(n);
    if (!v)
        return -1;
    snprintf(v, n, "%s:%s", lib, old);
    int rc = setenv("LD_PRELOAD", v, 1);
    free(v);
    return rc;
}

int cp_cli_run(int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break; /* the program */
        const char *name = a + 1 + (a[1] == '-');
        if (!strcmp(name, "h") || !strcmp(name, "help")) {
            run_usage(stdout);
            return 0;
        }
        char flag[64];
        const char *value = NULL;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        snprintf(flag, sizeof flag, "%.*s", (int)len, name);
        const cp_pvar *v = cp_pvar_by_flag(flag);
        if (!v) {
            fprintf(stderr, "cpprof run: flag provided but not defined: -%s\n",
                    flag);
            run_usage(stderr);
            return 2;
        }
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        else {
            fprintf(stderr, "cpprof run: flag needs an argument: -%s\n", flag);
            return 2;
        }
        char why[128];
        if (cp_pvar_check(v, value, NULL, why, sizeof why) != 0) {
            fprintf(stderr, "cpprof run: invalid value \"%s\" for flag -%s: %s\n",
                    value, flag, why);
            return 2;
        }
        char *owned = NULL;
        if (v->type == CP_PVAR_PATH ||
            !strcmp(v->env, "CPPROF_SERVICE_FOLDER"))
            value = owned = cp_preload_abspath(value);
        if (!value || setenv(v->env, value, 1) != 0) {
            fprintf(stderr, "cpprof run: setting %s: %s\n", v->env,
                    strerror(errno));
            free(owned);
            return 1;
        }
        if (!strcmp(v->env, "CPPROF_SERVICE_FOLDER"))
            setenv("CPPROF_SERVICE_ENABLED", "1", 1);
        free(owned);
    }
    if (i >= argc) {
        fprintf(stderr, "cpprof run: no program to run\n");
        run_usage(stderr);
        return 2;
    }
    char **prog_argv = argv + i;
    const char *prog = prog_argv[0];

    char *path = find_program(prog);
    if (!path) {
        int e = errno;
        fprintf(stderr, "cpprof run: %s: %s\n", prog, strerror(e));
        return e == ENOENT ? 127 : 126; /* the shell's codes */
    }
    if (check_preloadable(prog, path, 0) != 0) {
        free(path);
        return 1;
    }
    char *lib = find_library();
    if (!lib) {
        free(path);
        return 1;
    }
    char pid[24];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    /* The program keeps our pid: it is the first process, whose files
     * have the plain names, whatever an outer run left in CPPROF_PID. */
    if (set_preload(lib) != 0 || setenv("CPPROF_PID", pid, 1) != 0) {
        fprintf(stderr, "cpprof run: setting the environment: %s\n",
                strerror(errno));
        return 1;
    }
    free(lib);
    execv(path, prog_argv);
    int e = errno;
    if (e == ENOEXEC) {
        /* An executable text file without #!: what execvp and the shells
         * do, run it with /bin/sh (preloaded like any program). */
        int n = 0;
        while (prog_argv[n])
            n++;
        char **sh_argv = calloc((size_t)n + 2, sizeof *sh_argv);
        if (sh_argv) {
            sh_argv[0] = "sh";
            sh_argv[1] = path;
            for (int k = 1; k < n; k++)
                sh_argv[k + 1] = prog_argv[k];
            execv("/bin/sh", sh_argv);
            e = errno;
        }
    }
    fprintf(stderr, "cpprof run: exec %s: %s\n", path, strerror(e));
    free(path);
    return e == ENOENT ? 127 : 126;
}
