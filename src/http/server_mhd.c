/*
 * http/server_mhd.c - the embedded /debug/pprof/ server: binds the
 * transport-agnostic handler (http/handler.c) to libmicrohttpd.
 *
 * libmicrohttpd's thread pool parses requests and answers the quick
 * endpoints inline.  A request that waits (profile, trace, seconds=) is
 * suspended and served by a thread of its own, which watches the socket
 * so that a client that hangs up ends the wait early, then resumes the
 * connection with the finished response.  Responses are buffered whole
 * (profiles are small) and sent with a Content-Length.
 *
 * libmicrohttpd is loaded with dlopen when the first server starts, not
 * linked: it brings GnuTLS and ten more libraries (~2 ms of start-up)
 * into every process that loads libcpprof, serving HTTP or not.  Without
 * it, starting a server fails with -ELIBACC.
 *
 * Called by applications, by the service and at library load (env vars).
 * A server handle is used by one controlling thread; its callbacks run on
 * libmicrohttpd's threads and on the waiting threads, and share only the
 * counters in struct cpprof_http_server (under its lock).  Never from a
 * signal handler.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cpprof.h"
#include "capture/own_section.h"
#include "http/http_internal.h"

#define PPROF_PREFIX "/debug/pprof/"

/* The libmicrohttpd functions used here, found by mhd_load. */
static struct {
    pthread_once_t once;
    bool loaded;
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_add_response_header) *add_response_header;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
    __typeof__(MHD_get_connection_info) *get_connection_info;
    __typeof__(MHD_lookup_connection_value) *lookup_connection_value;
    __typeof__(MHD_suspend_connection) *suspend_connection;
    __typeof__(MHD_resume_connection) *resume_connection;
} mhd = { .once = PTHREAD_ONCE_INIT };

static void mhd_load(void)
{
    const char *names[] = { CPPROF_MHD_SONAME, "libmicrohttpd.so" };
    void *lib = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++)
        lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
    bool ok = true;
#define MHD_FIND(field)                                                   \
    ok &= (*(void **)&mhd.field = dlsym(lib, "MHD_" #field)) != NULL
    MHD_FIND(start_daemon);
    MHD_FIND(stop_daemon);
    MHD_FIND(create_response_from_buffer);
    MHD_FIND(add_response_header);
    MHD_FIND(queue_response);
    MHD_FIND(destroy_response);
    MHD_FIND(get_connection_info);
    MHD_FIND(lookup_connection_value);
    MHD_FIND(suspend_connection);
    MHD_FIND(resume_connection);
#undef MHD_FIND
    mhd.loaded = ok; /* a library missing one of them stays loaded, unused */
}

struct cpprof_http_server {
    cpprof_http_handler *handler;
    cpprof_http_options opts; /* resolved */
    struct MHD_Daemon *daemon;
    int listen_fd;
    int port;
    char *unix_path;  /* socket file we created, unlinked at stop */
    int stop_pipe[2]; /* readable once stopping: wakes every waiting request */
    dev_t fd_dev[2];  /* identity of listen_fd and stop_pipe[1] at start */
    ino_t fd_ino[2];
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int waiting;      /* requests running on their own thread */
};

enum conn_state { ST_HEADERS, ST_BODY, ST_RUNNING, ST_READY };

/* One request (libmicrohttpd calls it con_cls): created by the URI
 * callback, freed when the request completes. */
typedef struct conn_ctx {
    cpprof_http_server *srv;
    struct MHD_Connection *conn;
    enum conn_state state;
    char *raw_uri;  /* as sent, with the query */
    char *path;     /* below /debug/pprof/ */
    char method[16];
    char *auth;
    char *body;
    size_t body_len, body_cap;
    bool body_too_large;
    /* The response, filled by the handler. */
    int status;
    cpprof_http_header *hdr;
    size_t nhdr;
    char *out;
    size_t out_len, out_cap;
    int fd;         /* the client's socket, watched while waiting */
} conn_ctx;

/* ------------------------------------------------------ response sinks */

static int sink_start(void *arg, int status, const cpprof_http_header *h,
                      size_t n)
{
    conn_ctx *c = arg;
    c->status = status;
    c->hdr = calloc(n ? n : 1, sizeof *c->hdr);
    if (!c->hdr)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        c->hdr[i].name = strdup(h[i].name);
        c->hdr[i].value = strdup(h[i].value);
        c->nhdr++;
        if (!c->hdr[i].name || !c->hdr[i].value)
            return -ENOMEM;
    }
    return 0;
}

static int sink_write(void *arg, const void *data, size_t len)
{
    conn_ctx *c = arg;
    if (c->out_len + len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + len)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p)
            return -ENOMEM;
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return 0;
}

/* Waits up to ms; nonzero when the client hung up or the server stops. */
static int sink_wait(void *arg, unsigned ms)
{
    conn_ctx *c = arg;
    struct pollfd p[2] = {
        {.fd = c->srv->stop_pipe[0], .events = POLLIN},
        {.fd = c->fd, .events = POLLRDHUP},
    };
    nfds_t n = c->fd >= 0 ? 2 : 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t spent = (t1.tv_sec - t0.tv_sec) * 1000 +
                        (t1.tv_nsec - t0.tv_nsec) / 1000000;
        if (spent >= ms)
            return 0;
        int rc = poll(p, n, (int)(ms - spent));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return 0;
        if (rc == 0)
            return 0;
        if (p[0].revents)
            return 1;
        if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
            return 1;
    }
}

/* --------------------------------------------------------- per request */

static void ctx_free(conn_ctx *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nhdr; i++) {
        free((char *)c->hdr[i].name);
        free((char *)c->hdr[i].value);
    }
    free(c->hdr);
    free(c->raw_uri);
    free(c->path);
    free(c->auth);
    free(c->body);
    free(c->out);
    free(c);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    conn_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = cls;
    c->conn = conn;
    c->fd = -1;
    c->raw_uri = strdup(uri ? uri : "");
    return c;
}

static void on_completed(void *cls, struct MHD_Connection *conn,
                         void **con_cls, enum MHD_RequestTerminationCode why)
{
    ctx_free(*con_cls);
    *con_cls = NULL;
}

static void run_handler(conn_ctx *c, bool may_wait)
{
    const char *q = strchr(c->raw_uri, '?');
    cpprof_http_request req = {
        .method = c->method,
        .path = c->path,
        .query = q ? q + 1 : NULL,
        .body = c->body,
        .body_len = c->body_too_large ? (size_t)-1 : c->body_len,
        .authorization = c->auth,
    };
    cpprof_http_response resp = {
        .start = sink_start,
        .write = sink_write,
        .wait = may_wait ? sink_wait : NULL,
        .arg = c,
    };
    if (cpprof_http_handle(c->srv->handler, &req, &resp) != 0 && !c->status)
        c->status = 500;
}

static enum MHD_Result queue_plain(struct MHD_Connection *conn, int status,
                                   const char *text, const char *location)
{
    struct MHD_Response *r = mhd.create_response_from_buffer(
        strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    mhd.add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    mhd.add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (location)
        mhd.add_response_header(r, "Location", location);
    enum MHD_Result ok = mhd.queue_response(conn, (unsigned)status, r);
    mhd.destroy_response(r);
    return ok;
}

static enum MHD_Result queue_result(conn_ctx *c)
{
    struct MHD_Response *r = mhd.create_response_from_buffer(
        c->out_len, c->out ? c->out : (void *)"", MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    for (size_t i = 0; i < c->nhdr; i++)
        mhd.add_response_header(r, c->hdr[i].name, c->hdr[i].value);
    enum MHD_Result ok =
        mhd.queue_response(c->conn, (unsigned)(c->status ? c->status : 500), r);
    mhd.destroy_response(r);
    return ok;
}

static void *waiting_thread(void *arg)
{
    conn_ctx *c = arg;
    cpprof_http_server *srv = c->srv;
    struct MHD_Connection *conn = c->conn;
    run_handler(c, true);
    pthread_mutex_lock(&srv->lock);
    c->state = ST_READY;
    pthread_mutex_unlock(&srv->lock);
    /* From here c belongs to libmicrohttpd again (it may free it). */
    mhd.resume_connection(conn);
    pthread_mutex_lock(&srv->lock);
    if (--srv->waiting == 0)
        pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->lock);
    return NULL;
}

/* Moves a waiting request to a thread of its own; false if impossible. */
static bool start_waiting(conn_ctx *c)
{
    cpprof_http_server *srv = c->srv;
    const union MHD_ConnectionInfo *ci =
        mhd.get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    c->fd = ci ? ci->connect_fd : -1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&srv->lock);
    srv->waiting++;
    c->state = ST_RUNNING;
    pthread_mutex_unlock(&srv->lock);
    mhd.suspend_connection(c->conn);
    pthread_t t;
    int rc = pthread_create(&t, &attr, waiting_thread, c);
    pthread_attr_destroy(&attr);
    if (rc == 0)
        return true;
    pthread_mutex_lock(&srv->lock);
    srv->waiting--;
    c->state = ST_BODY;
    pthread_mutex_unlock(&srv->lock);
    mhd.resume_connection(c->conn);
    return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    cpprof_http_server *srv = cls;
    conn_ctx *c = *con_cls;
    if (!c || !c->raw_uri)
        return MHD_NO; /* out of memory: drop the connection */

    if (c->state == ST_HEADERS) {
        if (strncmp(url, PPROF_PREFIX, strlen(PPROF_PREFIX)) != 0) {
            /* Go's mux redirects the bare prefix and 404s the rest. */
            if (strcmp(url, "/debug/pprof") == 0)
                return queue_plain(conn, 301, "", PPROF_PREFIX);
            return queue_plain(conn, 404, "404 page not found\n", NULL);
        }
        c->path = strdup(url + strlen(PPROF_PREFIX));
        snprintf(c->method, sizeof c->method, "%s", method);
        const char *auth = mhd.lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        c->auth = auth ? strdup(auth) : NULL;
        if (!c->path || (auth && !c->auth))
            return MHD_NO;
        c->state = ST_BODY;
        return MHD_YES;
    }
    if (c->state == ST_BODY && *upload_size) {
        /* Keep at most the limit; the handler answers 413 past it. */
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->body_too_large || c->body_len + n > srv->opts.max_body_bytes) {
            c->body_too_large = true;
            return MHD_YES;
        }
        if (c->body_len + n + 1 > c->body_cap) {
            size_t cap = c->body_cap ? c->body_cap * 2 : 1024;
            while (cap < c->body_len + n + 1)
                cap *= 2;
            char *b = realloc(c->body, cap);
            if (!b)
                return MHD_NO;
            c->body = b;
            c->body_cap = cap;
        }
        memcpy(c->body + c->body_len, upload, n);
        c->body_len += n;
        c->body[c->body_len] = '\0';
        return MHD_YES;
    }
    pthread_mutex_lock(&srv->lock);
    enum conn_state st = c->state;
    pthread_mutex_unlock(&srv->lock);
    if (st == ST_BODY) {
        const char *q = strchr(c->raw_uri, '?');
        cpprof_http_request probe = {.path = c->path, .query = q ? q + 1 : NULL};
        if (cpprof_http_request_waits(&probe) && start_waiting(c))
            return MHD_YES;
        run_handler(c, false);
        return queue_result(c);
    }
    if (st == ST_READY)
        return queue_result(c);
    return MHD_YES; /* ST_RUNNING: spurious call while suspended */
}

/* ------------------------------------------------------------ listening */

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

static int listen_unix(cpprof_http_server *srv, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* Replace a stale socket file, never another kind of file. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    /* The socket is born private: profiles and cmdline leak secrets. */
    mode_t old = umask(077);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc != 0 || listen(fd, 128) != 0 || set_nonblocking(fd) != 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    srv->unix_path = strdup(path);
    srv->listen_fd = fd;
    return 0;
}

/* Splits "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" into host (NULL for
 * every interface) and port; -EINVAL when malformed. */
static int split_address(const char *addr, char *host, size_t hcap,
                         char *port, size_t pcap, bool *any)
{
    const char *colon = strrchr(addr, ':');
    const char *p = colon ? colon + 1 : addr;
    size_t plen = strlen(p);
    if (plen == 0 || plen >= pcap || strspn(p, "0123456789") != plen ||
        atol(p) > 65535)
        return -EINVAL;
    memcpy(port, p, plen + 1);
    *any = false;
    if (!colon) {
        snprintf(host, hcap, "127.0.0.1"); /* a bare port stays local */
        return 0;
    }
    const char *h = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen == 0) {
        *any = true; /* ":PORT" asks for every interface, explicitly */
        host[0] = '\0';
        return 0;
    }
    if (h[0] == '[') {
        if (hlen < 2 || h[hlen - 1] != ']')
            return -EINVAL;
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hcap)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    return 0;
}

static int listen_tcp(cpprof_http_server *srv, const char *addr)
{
    char host[256], port[8];
    bool any;
    if (split_address(addr, host, sizeof host, port, sizeof port, &any))
        return -EINVAL;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | (any ? AI_PASSIVE : 0)};
    struct addrinfo *res;
    int gai = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (gai != 0)
        return gai == EAI_SYSTEM ? -errno : -EINVAL;
    int rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
            listen(fd, 128) != 0 || set_nonblocking(fd) != 0) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        srv->port = ss.ss_family == AF_INET6
                        ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
        srv->listen_fd = fd;
        rc = 0;
        break;
    }
    freeaddrinfo(res);
    return rc;
}

/* --------------------------------------------------------------- public */

static void server_free(cpprof_http_server *srv)
{
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->unix_path) {
        unlink(srv->unix_path);
        free(srv->unix_path);
    }
    for (int i = 0; i < 2; i++)
        if (srv->stop_pipe[i] >= 0)
            close(srv->stop_pipe[i]);
    cpprof_http_handler_free(srv->handler);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->idle);
    free(srv);
}

/*
 * A program may close descriptors it did not open (daemons close every
 * inherited one) and get the same numbers back for its own files and
 * sockets.  The server remembers what its descriptors were, and stop
 * touches them (writes, closes, libmicrohttpd's own shutdown) only while
 * they still are.
 */
static void remember_fd(cpprof_http_server *srv, int i, int fd)
{
    struct stat st;
    srv->fd_dev[i] = 0;
    srv->fd_ino[i] = 0;
    if (fd >= 0 && fstat(fd, &st) == 0) {
        srv->fd_dev[i] = st.st_dev;
        srv->fd_ino[i] = st.st_ino;
    }
}

static bool fd_still_ours(const cpprof_http_server *srv, int i, int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == srv->fd_dev[i] &&
           st.st_ino == srv->fd_ino[i];
}

static int server_start(const cpprof_http_options *opts,
                        cpprof_http_server **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    pthread_once(&mhd.once, mhd_load);
    if (!mhd.loaded)
        return -ELIBACC;
    cpprof_http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->listen_fd = -1;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->idle, NULL);
    int rc = cp_http_options_resolve(&srv->opts, opts);
    if (!rc)
        rc = cpprof_http_handler_new(opts, &srv->handler);
    if (!rc && pipe2(srv->stop_pipe, O_CLOEXEC) != 0)
        rc = -errno;
    if (!rc)
        rc = opts && opts->unix_path && *opts->unix_path
                 ? listen_unix(srv, opts->unix_path)
                 : listen_tcp(srv, srv->opts.address);
    if (rc) {
        server_free(srv);
        return rc;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME;
#ifdef MHD_USE_EPOLL
    flags |= MHD_USE_EPOLL;
#endif
    /* Its threads (and those they start) are created inside the caller's
     * own section, so their allocations are never sampled either. */
    srv->daemon = mhd.start_daemon(
        flags, 0, NULL, NULL, on_request, srv,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)srv->listen_fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->opts.thread_pool_size,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)srv->opts.connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)srv->opts.idle_timeout_s,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_END);
    if (!srv->daemon) {
        server_free(srv);
        return -EIO;
    }
    remember_fd(srv, 0, srv->listen_fd);
    remember_fd(srv, 1, srv->stop_pipe[1]);
    *out = srv;
    return 0;
}

/* The server's memory and its threads are the profiler's own
 * (capture/own_section.h): never in the program's heap profile. */
int cpprof_http_server_start(const cpprof_http_options *opts,
                             cpprof_http_server **out)
{
    bool was_own = cp_own_begin();
    int rc = server_start(opts, out);
    cp_own_end(was_own);
    return rc;
}

int cpprof_http_server_port(const cpprof_http_server *s)
{
    return s ? s->port : 0;
}

void cpprof_http_server_stop(cpprof_http_server *s)
{
    if (!s)
        return;
    if (!fd_still_ours(s, 0, s->listen_fd) ||
        !fd_still_ours(s, 1, s->stop_pipe[1])) {
        /* The program closed our descriptors and may own those numbers
         * now: stopping would write to and close its files.  The server
         * is dead anyway; leave it (and its memory) alone. */
        fprintf(stderr, "cpprof: the program closed the HTTP server's "
                        "descriptors; not stopping it\n");
        return;
    }
    /* Wake every waiting request (they answer at once and resume their
     * connection), then wait for their threads before the daemon goes. */
    (void)!write(s->stop_pipe[1], "x", 1);
    pthread_mutex_lock(&s->lock);
    while (s->waiting > 0)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
    mhd.stop_daemon(s->daemon);
    s->listen_fd = -1; /* libmicrohttpd closed it: its number is free */
    server_free(s);
}

/* ------------------------------------------------------------ from env */

static int env_int(const char *name, int *out)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*end || errno || n < 0 || n > 1000000) {
        fprintf(stderr, "cpprof: %s=%s is not a valid number\n", name, v);
        return -EINVAL;
    }
    *out = (int)n;
    return 0;
}

int cpprof_http_server_start_from_env(cpprof_http_server **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    const char *addr = getenv("CPPROF_HTTP");
    const char *unix_path = getenv("CPPROF_HTTP_UNIX");
    if ((!addr || !*addr) && (!unix_path || !*unix_path))
        return 0;
    cpprof_http_options o = {0};
    o.address = addr && strcmp(addr, "1") != 0 ? addr : NULL;
    o.unix_path = unix_path && *unix_path ? unix_path : NULL;
    o.bearer_token = getenv("CPPROF_HTTP_TOKEN");
    const char *nc = getenv("CPPROF_HTTP_NO_CMDLINE");
    o.disable_cmdline = nc && *nc && strcmp(nc, "0") != 0;
    int rc = env_int("CPPROF_HTTP_MAX_SECONDS", &o.max_seconds);
    if (!rc)
        rc = env_int("CPPROF_HTTP_WRITE_TIMEOUT", &o.write_timeout_s);
    if (!rc)
        rc = env_int("CPPROF_HTTP_CONNECTIONS", &o.connection_limit);
    if (!rc)
        rc = env_int("CPPROF_HTTP_THREADS", &o.thread_pool_size);
    if (!rc)
        rc = cpprof_http_server_start(&o, out);
    if (rc)
        fprintf(stderr, "cpprof: could not start the HTTP server: %s\n",
                cpprof_strerror(rc));
    return rc;
}
