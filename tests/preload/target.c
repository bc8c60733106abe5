/*
 * tests/preload/target.c - the program test_preload.c runs under
 * `cpprof run` / LD_PRELOAD.  It knows nothing of cpprof: it burns CPU in
 * burn_cpu, keeps memory from leak_memory, then ends the way argv[1]
 * says, so the tests can check each end-of-program path.
 *
 *   target MODE [CPU_MS]
 *   exit | return | sigint | sigterm | fork | exec | _exit | sigprof |
 *   signal-sigprof | sleep | daemon (closes every inherited descriptor,
 *   forks a worker writing to new pipes, dies of SIGTERM) | heaprate
 *   (prints the preloaded library's heap sampling rate, found with
 *   dlsym, and exits)
 *
 * Single-threaded except where a mode says so.  Test-only code.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;
static void *kept[256];

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

__attribute__((noinline)) static void burn_cpu(double ms)
{
    double end = cpu_ms() + ms;
    unsigned long x = 1;
    while (cpu_ms() < end)
        for (int i = 0; i < 100000; i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
    sink = x;
}

__attribute__((noinline)) static void leak_memory(void)
{
    for (int i = 0; i < 256; i++) {
        kept[i] = malloc(64 * 1024);
        memset(kept[i], i, 64 * 1024);
    }
}

static volatile sig_atomic_t own_sigprofs;
static void own_handler(int sig)
{
    (void)sig;
    own_sigprofs++;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exit";
    if (!strcmp(mode, "heaprate")) {
        int64_t (*rate)(void) = (int64_t (*)(void))dlsym(RTLD_DEFAULT, "cpprof_heap_rate");
        printf("heap rate %lld\n", rate ? (long long)rate() : -1LL);
        return 0;
    }
    double ms = argc > 2 ? atof(argv[2]) : 300;

    if (!strcmp(mode, "sigprof") || !strcmp(mode, "signal-sigprof")) {
        /* What GNU sort does: a handler of its own on SIGPROF. */
        if (!strcmp(mode, "sigprof")) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = own_handler;
            sigaction(SIGPROF, &sa, NULL);
        } else {
            signal(SIGPROF, own_handler);
        }
        struct sigaction back;
        sigaction(SIGPROF, NULL, &back);
        printf("handler-readback=%s\n",
               back.sa_handler == own_handler ? "own" : "other");
    }
    leak_memory();
    burn_cpu(ms);
    printf("target %s done\n", mode);
    fflush(stdout);

    if (!strcmp(mode, "return") )
        return 4;
    if (!strcmp(mode, "sigint") || !strcmp(mode, "sigterm")) {
        kill(getpid(), !strcmp(mode, "sigint") ? SIGINT : SIGTERM);
        for (;;)
            pause();
    }
    if (!strcmp(mode, "fork")) {
        pid_t child = fork();
        if (child == 0) {
            burn_cpu(ms);
            exit(0);
        }
        int st;
        waitpid(child, &st, 0);
        printf("child=%ld status=%d\n", (long)child,
               WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        exit(0);
    }
    if (!strcmp(mode, "exec")) {
        /* The new image has no cpprof and SIGPROF's default action: any
         * timer or pending SIGPROF of ours would kill it. */
        unsetenv("LD_PRELOAD");
        execl("/bin/sh", "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 5",
              (char *)NULL);
        return 99;
    }
    if (!strcmp(mode, "_exit"))
        _exit(6);
    if (!strcmp(mode, "daemon")) {
        /* What daemons do: close every descriptor they did not open,
         * then open their own (which get the lowest numbers), fork a
         * worker that uses one, and later die of SIGTERM. */
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
        int p[4][2]; /* descriptors 3..10: whatever numbers were ours */
        for (int i = 0; i < 4; i++)
            if (pipe(p[i]) != 0)
                return 98;
        pid_t child = fork();
        if (child == 0) {
            static const char msg[] = "ok";
            int good = 0;
            for (int i = 0; i < 4; i++)
                good += write(p[i][1], msg, sizeof msg - 1) == sizeof msg - 1;
            _exit(good == 4 ? 0 : 1);
        }
        int st;
        waitpid(child, &st, 0);
        char got[32] = {0};
        int intact = 0;
        for (int i = 0; i < 4; i++) {
            fcntl(p[i][0], F_SETFL, O_NONBLOCK);
            intact += read(p[i][0], got, sizeof got - 1) == 2;
        }
        printf("worker status=%d pipes intact=%d\n",
               WIFEXITED(st) ? WEXITSTATUS(st) : -1, intact);
        fflush(stdout);
        kill(getpid(), SIGTERM);
        /* Still alive: the signal was swallowed.  Did anything land in
         * the program's pipe? */
        usleep(2000 * 1000);
        ssize_t stray = 0;
        for (int i = 0; i < 4; i++) {
            ssize_t n = read(p[i][0], got, sizeof got - 1);
            stray += n > 0 ? n : 0;
        }
        printf("survived SIGTERM, stray bytes %zd\n", stray);
        return 7;
    }
    if (!strcmp(mode, "sleep")) {
        usleep((useconds_t)(ms * 1000));
        return 0;
    }
    exit(3);
}
