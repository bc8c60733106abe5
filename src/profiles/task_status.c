/*
 * profiles/task_status.c - reads /proc/self/task/TID/status
 * (profiles/task_status.h).  Normal thread context only; thread-safe.
 */
#include "profiles/task_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cp_task_status_read(pid_t tid, cp_task_status *out)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", (int)tid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    cp_task_status s = { .name = "", .state = "" };
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "Name:\t", 6))
            snprintf(s.name, sizeof s.name, "%.63s", line + 6);
        else if (!strncmp(line, "State:\t", 7))
            snprintf(s.state, sizeof s.state, "%.31s", line + 7);
        else if (!strncmp(line, "SigBlk:\t", 8))
            s.blocked = strtoull(line + 8, NULL, 16);
    }
    fclose(f);
    *out = s;
    return true;
}
