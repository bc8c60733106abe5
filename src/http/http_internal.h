/*
 * http/http_internal.h - what the HTTP handler (http/handler.c) shares with
 * its transports (http/server_mhd.c) and the service: option defaults and
 * Go-compatible query parsing.  Normal thread context only; every function
 * here is reentrant.
 */
#ifndef CP_HTTP_INTERNAL_H
#define CP_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "cpprof/http.h"

#define CP_HTTP_DEFAULT_ADDRESS "127.0.0.1:6060"
#define CP_HTTP_DEFAULT_MAX_SECONDS 3600
#define CP_HTTP_DEFAULT_IDLE_TIMEOUT 60
#define CP_HTTP_DEFAULT_CONNECTIONS 64
#define CP_HTTP_DEFAULT_THREADS 4
#define CP_HTTP_DEFAULT_MAX_BODY (1u << 20)

/* out = in (or zeros) with every 0 replaced by its default.  Strings are
 * not copied.  -EINVAL for negative numbers. */
int cp_http_options_resolve(cpprof_http_options *out,
                            const cpprof_http_options *in);

/*
 * Go's Request.FormValue on a raw query: the first value of key, with
 * %XX and '+' decoded, into buf (NUL-terminated, truncated to cap-1).
 * Returns false, with buf = "", when key is absent.
 */
bool cp_http_form_value(const char *query, const char *key, char *buf,
                        size_t cap);

#endif
