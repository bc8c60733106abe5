/*
 * tools/cpprof/cli.h - the subcommands of the `cpprof` executable, one
 * file each, dispatched by main.c.  The CLI is a plain single-threaded
 * program; it does not load libcpprof's runtime into itself (only the
 * decoder and the CPPROF_* table are compiled in).
 */
#ifndef CPPROF_CLI_H
#define CPPROF_CLI_H

/* Each takes the arguments after "cpprof" (argv[0] is the subcommand's
 * name) and returns the process exit status, or does not return (run
 * execs the program). */
int cp_cli_run(int argc, char **argv);
int cp_cli_top(int argc, char **argv);

#endif
