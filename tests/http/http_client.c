/*
 * tests/http/http_client.c - see http_client.h.  Test-only code.
 */
#include "http_client.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <time.h>

#include "support.h"

http_reply http_fetch(const char *dir, const char *curl_args, const char *url)
{
    static atomic_int seq;
    int n = atomic_fetch_add(&seq, 1);
    char hdr[4096], body[4096];
    snprintf(hdr, sizeof hdr, "%s/hdr.%d", dir, n);
    snprintf(body, sizeof body, "%s/body.%d", dir, n);
    char *out = NULL;
    http_reply r = {0};
    r.curl_rc = cpt_run(&out, "curl -s -g --max-time 60 -o '%s' -D '%s' "
                        "-w '%%{http_code}' %s '%s'",
                        body, hdr, curl_args ? curl_args : "", url);
    r.status = out ? atoi(out) : 0;
    free(out);
    char *h = cpt_read_file(hdr, NULL);
    /* After a redirect or 100-continue curl keeps every block: use the
     * last one. */
    char *last = h;
    for (char *p = h; p && (p = strstr(p, "\r\n\r\nHTTP/")); p += 4)
        last = p + 4;
    r.headers = h ? strdup(last) : strdup("");
    free(h);
    remove(hdr);
    r.body = cpt_read_file(body, &r.len);
    if (!r.body) {
        r.body = strdup("");
        r.len = 0;
    }
    r.body_path = strdup(body);
    return r;
}

http_reply http_get(const char *dir, int port, const char *path)
{
    char url[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/debug/pprof/%s", port,
             path);
    return http_fetch(dir, "", url);
}

char *http_header(const http_reply *r, const char *name)
{
    size_t nlen = strlen(name);
    for (const char *l = r->headers; l && *l;) {
        const char *end = strstr(l, "\r\n");
        size_t len = end ? (size_t)(end - l) : strlen(l);
        if (len > nlen && l[nlen] == ':' && strncasecmp(l, name, nlen) == 0) {
            const char *v = l + nlen + 1;
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(l + len - v));
        }
        l = end ? end + 2 : NULL;
    }
    return NULL;
}

void http_assert_header(const http_reply *r, const char *name,
                        const char *value)
{
    char *v = http_header(r, name);
    if (!v)
        fail_msg("header %s missing; headers:\n%s", name, r->headers);
    if (strcmp(v, value) != 0)
        fail_msg("header %s is \"%s\", want \"%s\"", name, v, value);
    free(v);
}

void http_reply_free(http_reply *r)
{
    free(r->headers);
    free(r->body);
    if (r->body_path)
        remove(r->body_path);
    free(r->body_path);
    memset(r, 0, sizeof *r);
}

void http_sleep_ms(long ms)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
        ;
}
