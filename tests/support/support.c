/*
 * tests/support/support.c - see support.h.
 */
#include "support.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

bool cpt_have_go(void)
{
    return system("command -v go >/dev/null 2>&1") == 0;
}

void cpt_require_go(void)
{
    if (cpt_have_go())
        return;
    const char *req = getenv("CPPROF_REQUIRE_GO");
    if (req && strcmp(req, "1") == 0)
        fail_msg("go is not installed but CPPROF_REQUIRE_GO=1");
    fprintf(stderr, "note: go not found; skipping go tool pprof checks\n");
    skip();
}

int cpt_run(char **output, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 8, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd - 8)
        return -1;
    strcat(cmd, " 2>&1");
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + len, 1, 4096, p);
        if (got == 0)
            break;
        len += got;
    }
    buf[len] = '\0';
    int status = pclose(p);
    if (output)
        *output = buf;
    else
        free(buf);
    if (status == -1)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *cpt_pprof(const char *args, const char *file)
{
    char *out = NULL;
    /* A private GOCACHE/HOME keeps `go` from writing into the user's. */
    int rc = cpt_run(&out, "HOME=${TMPDIR:-/tmp} GOFLAGS= go tool pprof %s '%s'",
                     args, file);
    /* pprof reports problems on lines of their own starting with these. */
    bool complained = false;
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncasecmp(l, "warning", 7) || !strncasecmp(l, "error", 5) ||
            !strncmp(l, "Local symbolization failed", 26) || !strncmp(l, "failed", 6))
            complained = true;
    if (rc != 0 || complained)
        fail_msg("go tool pprof %s %s failed (rc %d):\n%s", args, file, rc, out);
    return out;
}

char *cpt_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/cpprof-test-XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    return strdup(dir);
}

void cpt_tmpdir_remove(const char *dir)
{
    if (dir && strncmp(dir, "/", 1) == 0 && strstr(dir, "cpprof-test-"))
        cpt_run(NULL, "rm -rf '%s'", dir);
}

char *cpt_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *cpt_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

size_t cpt_count_lines_with(const char *text, const char *needle)
{
    size_t count = 0;
    const char *line = text;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *hit = strstr(line, needle);
        if (hit && hit < line + len)
            count++;
        line = end ? end + 1 : NULL;
    }
    return count;
}
