/*
 * tests/http/http_client.h - the HTTP side of the http and service tests:
 * fetches a URL with curl (an independent client) and splits the reply
 * into status, headers and body.  Test-only code.
 */
#ifndef CPPROF_TEST_HTTP_CLIENT_H
#define CPPROF_TEST_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct http_reply {
    int status;      /* 0 when curl got no reply at all */
    int curl_rc;     /* curl's exit status */
    char *headers;   /* raw header block of the final response */
    char *body;      /* NUL-terminated for convenience */
    size_t len;
    char *body_path; /* the body as a file, for go tool pprof */
} http_reply;

/* Runs curl with extra arguments (shell-quoted by the caller) on url. */
http_reply http_fetch(const char *dir, const char *curl_args,
                      const char *url);
/* GET http://127.0.0.1:port/debug/pprof/<path> */
http_reply http_get(const char *dir, int port, const char *path);
/* Value of header name (case-insensitive), malloc'd; NULL if absent. */
char *http_header(const http_reply *r, const char *name);
/* Asserts header name has exactly value. */
void http_assert_header(const http_reply *r, const char *name,
                        const char *value);
void http_reply_free(http_reply *r);
/* Sleeps ms of CLOCK_MONOTONIC time even though the CPU profiler's SIGPROF
 * interrupts sleeps. */
void http_sleep_ms(long ms);

#endif
