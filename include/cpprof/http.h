/*
 * cpprof/http.h - the /debug/pprof/ endpoints of Go's net/http/pprof, as an
 * embedded HTTP server (libmicrohttpd) and as a transport-agnostic handler
 * that a program with its own HTTP server mounts under any prefix.
 *
 * See <cpprof.h> for the conventions every cpprof function follows and
 * docs/http.md for the endpoints, their Go parity and the security model.
 * Every function here may be called from any thread, never from a signal
 * handler.
 */
#ifndef CPPROF_HTTP_H
#define CPPROF_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cpprof/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Options shared by the server and the handler.  Zero means "default" for
 * every member, so a zero-initialised struct is the secure default:
 * loopback only, no token, cmdline served, seconds capped at one hour.
 */
typedef struct cpprof_http_options {
    /* "HOST:PORT", "[V6]:PORT", ":PORT" (every interface: an explicit
     * choice) or "PORT".  NULL or "": "127.0.0.1:6060".  Port 0 picks a
     * free port; see cpprof_http_server_port().  Server only. */
    const char *address;
    /* Serve on this Unix-domain socket (mode 0600) instead of TCP; an
     * existing socket file there is replaced.  Server only. */
    const char *unix_path;
    /* When set, every request needs "Authorization: Bearer TOKEN"; others
     * get 401.  Compared in constant time. */
    const char *bearer_token;
    /* true: /cmdline answers 403 and the index does not list it. */
    bool disable_cmdline;
    /* Largest seconds= accepted by profile, trace and delta requests;
     * larger values get 400.  0: 3600. */
    int max_seconds;
    /* Go's http.Server.WriteTimeout for the duration checks: a request
     * whose seconds= is >= this gets 400 "profile duration exceeds
     * server's WriteTimeout".  0: no such limit (Go's default). */
    int write_timeout_s;
    /* Idle timeout of a connection, in seconds (libmicrohttpd's
     * per-connection timeout; a request waiting out seconds= is not
     * idle).  0: 60.  Server only. */
    int idle_timeout_s;
    /* Most simultaneous connections; others are refused.  0: 64. */
    int connection_limit;
    /* Threads that parse requests and serve quick endpoints; requests
     * that wait (profile, trace, seconds=) get a thread of their own
     * while they wait.  0: 4.  Server only. */
    int thread_pool_size;
    /* Largest request body (POST /symbol) in bytes; larger gets 413.
     * 0: 1 MiB. */
    size_t max_body_bytes;
} cpprof_http_options;

/* ------------------------------------------------------------- handler */

/*
 * The endpoint logic without a transport.  One handler serves any number
 * of concurrent requests; it owns the state of the delta_* endpoints.
 */
typedef struct cpprof_http_handler cpprof_http_handler;

/* opts may be NULL (all defaults); its strings are copied.  -EINVAL for
 * negative limits, -ENOMEM. */
CPPROF_EXPORT int cpprof_http_handler_new(const cpprof_http_options *opts,
                            cpprof_http_handler **out);
/* Frees h; no request may be running on it.  NULL is a no-op. */
CPPROF_EXPORT void cpprof_http_handler_free(cpprof_http_handler *h);

typedef struct cpprof_http_request {
    const char *method; /* "GET", "POST", ... */
    /* The path below the mount point: "" for the index, "heap",
     * "profile", "symbol", ...  Mount the index at a prefix ending in
     * '/', since its links are relative.  A leading '/' is ignored. */
    const char *path;
    const char *query;  /* raw query string without '?', or NULL */
    const void *body;   /* request body (POST /symbol), or NULL */
    size_t body_len;
    /* Value of the Authorization header, or NULL. */
    const char *authorization;
} cpprof_http_request;

typedef struct cpprof_http_header {
    const char *name;
    const char *value;
} cpprof_http_header;

/*
 * Where a response goes.  The handler calls start exactly once, before
 * any body byte, then write for each chunk of the body, in order.  The
 * header array is valid only during the start call.
 */
typedef struct cpprof_http_response {
    int (*start)(void *arg, int status, const cpprof_http_header *headers,
                 size_t nheaders);
    /* Same contract as cpprof_write_fn: 0 or a negative errno (which
     * ends the response early). */
    int (*write)(void *arg, const void *data, size_t len);
    /* Optional: waits up to ms milliseconds and returns nonzero as soon as
     * the client has gone away (or the server is stopping), 0 after the
     * full wait.  NULL: a plain sleep that cannot be cut short. */
    int (*wait)(void *arg, unsigned ms);
    void *arg;
} cpprof_http_response;

/*
 * Serves one request to completion (seconds= requests block the calling
 * thread that long).  Returns 0 once a response was produced (whatever
 * its status) or the error of resp->start/write.
 */
CPPROF_EXPORT int cpprof_http_handle(cpprof_http_handler *h, const cpprof_http_request *req,
                       const cpprof_http_response *resp);
/* Whether a request for path would take seconds (a CPU profile, a trace
 * or a seconds= delta), so a transport can move it off its I/O thread. */
CPPROF_EXPORT bool cpprof_http_request_waits(const cpprof_http_request *req);

/* -------------------------------------------------------------- server */

typedef struct cpprof_http_server cpprof_http_server;

/*
 * Starts a server answering under /debug/pprof/ (and 404 elsewhere).
 * opts may be NULL.  -EINVAL for a malformed address, the bind/listen
 * errno (-EADDRINUSE, -EACCES, ...), -ENOMEM, -EIO if libmicrohttpd
 * refuses to start, -ELIBACC if it cannot be loaded (it is loaded with
 * dlopen here, at the first start, rather than linked).
 */
CPPROF_EXPORT int cpprof_http_server_start(const cpprof_http_options *opts,
                             cpprof_http_server **out);
/* The TCP port the server listens on (useful with port 0); 0 for a Unix
 * socket. */
CPPROF_EXPORT int cpprof_http_server_port(const cpprof_http_server *s);
/* Cancels waiting requests (they answer at once), stops the server and
 * frees it.  NULL is a no-op. */
CPPROF_EXPORT void cpprof_http_server_stop(cpprof_http_server *s);

/*
 * Starts a server configured by the environment, for LD_PRELOAD use:
 * CPPROF_HTTP (address, or "1" for the default), CPPROF_HTTP_UNIX,
 * CPPROF_HTTP_TOKEN, CPPROF_HTTP_NO_CMDLINE, CPPROF_HTTP_MAX_SECONDS,
 * CPPROF_HTTP_WRITE_TIMEOUT, CPPROF_HTTP_CONNECTIONS, CPPROF_HTTP_THREADS.
 * *out is NULL and 0 returned when neither CPPROF_HTTP nor CPPROF_HTTP_UNIX
 * is set; -EINVAL for a malformed value.  libcpprof.so calls this at load
 * and stops the server at exit.
 */
CPPROF_EXPORT int cpprof_http_server_start_from_env(cpprof_http_server **out);

#ifdef __cplusplus
}
#endif

#endif /* CPPROF_HTTP_H */
