/*
 * tools/cpprof/main.c - the `cpprof` command: dispatches to a subcommand.
 *
 *   cpprof run [flags] -- PROGRAM ARGS...   profile an unchanged program
 *   cpprof top [-n N] FILE                  flat/cum table of a profile
 *
 * Single-threaded, normal context.  Exit status 2 means a usage error.
 */
#include <stdio.h>
#include <string.h>

#include "cpprof.h"
#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "cpprof %d.%d.%d - Go's pprof for C and C++ programs\n"
            "\n"
            "usage:\n"
            "  cpprof run [flags] [--] PROGRAM [ARGS...]\n"
            "      run PROGRAM with libcpprof preloaded; profiles are written "
            "when it ends\n"
            "      (cpprof run -h lists the flags)\n"
            "  cpprof top [-n N] [-sample_index NAME] FILE\n"
            "      print the top functions of a profile, like "
            "`go tool pprof -top`\n"
            "  cpprof version\n",
            CPPROF_VERSION_MAJOR, CPPROF_VERSION_MINOR, CPPROF_VERSION_PATCH);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return cp_cli_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "top"))
        return cp_cli_top(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "-version") ||
        !strcmp(cmd, "--version")) {
        printf("cpprof %d.%d.%d\n", CPPROF_VERSION_MAJOR, CPPROF_VERSION_MINOR,
               CPPROF_VERSION_PATCH);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "-h") || !strcmp(cmd, "-help") ||
        !strcmp(cmd, "--help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "cpprof: unknown command \"%s\"\n\n", cmd);
    usage(stderr);
    return 2;
}
