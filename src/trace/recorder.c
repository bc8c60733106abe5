/*
 * trace/recorder.c - cpprof_trace_start/stop: the drain thread that empties
 * the per-thread event rings (capture/trace_ring.h) every few milliseconds
 * and streams them as Chrome Trace Event JSON into the caller's writer.
 *
 * Called by user code and the HTTP /debug/pprof/trace handler.  Normal
 * context only.  start/stop are serialised by trace_rec.lock; while a
 * trace runs, the writer and every field below the lock belong to the
 * drain thread, and after it is joined, to the stopping thread.
 *
 * Output shape (one JSON object, streamed):
 *   {"displayTimeUnit":"ns","traceEvents":[ ...events... ],
 *    "stackFrames":{ ...CPU sample frames... }, "otherData":{...}}
 * Timestamps are microseconds (three decimals: nanosecond precision) from
 * the start of the trace.  Per thread, events are written in timestamp
 * order, every region begin ("B") gets an end ("E") and every task begin
 * ("b") an end ("e"), closed at the stop time when still open.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "capture/own_section.h"
#include "capture/sync_shim.h"
#include "capture/trace_events.h"
#include "capture/trace_ring.h"
#include "core/writer.h"
#include "cpprof.h"
#include "model/hash.h"
#include "model/stack_table.h"
#include "model/symbolize.h"

#define DRAIN_INTERVAL_MS 20
#define OPEN_REGIONS_MAX 128 /* nesting tracked per thread */

/* What the drain knows about the thread in one slot. */
struct slot_state {
    int32_t tid;         /* 0: not seen yet */
    uint64_t last_ts;    /* last timestamp written (monotonic per track) */
    uint32_t nopen;      /* open regions, innermost last */
    uint16_t open[OPEN_REGIONS_MAX]; /* their producer-side depths */
    char name[17];       /* comm at first sight */
};

/* A task seen begin this trace. */
struct task_entry {
    uint64_t id;
    bool open;
    char type[CP_TRACE_NAME_MAX + 1];
};

/* A simultaneous reading of the TSC and CLOCK_MONOTONIC. */
struct anchor {
    uint64_t tsc;
    uint64_t ns;
};

/* A record of the current pass, to be sorted by time. */
struct pending {
    uint64_t ts;
    uint32_t off; /* into pass_words */
    uint32_t seq;
};

static struct {
    pthread_mutex_t lock; /* serialises start/stop */
    bool running;

    /* ---- owned by the drain thread while running, then by stop ---- */
    cpprof_writer *out;
    pthread_t drain;
    /* stop sets stopping and signals: the drain's wake-up (a condition,
     * not a pipe: no descriptor the program could close and reuse) */
    pthread_mutex_t wake_lock;
    pthread_cond_t wake_cv; /* on CLOCK_MONOTONIC, made at first start */
    bool wake_ready;
    bool stopping;
    int pid;
    uint64_t t0;         /* CLOCK_MONOTONIC at start */
    int64_t wall0;       /* CLOCK_REALTIME at start, ns */
    uint64_t nevents;    /* events written (for the comma) */
    uint64_t dropped;    /* records the recorder itself could not keep */
    struct slot_state slots[CP_TRACE_SLOTS];
    uint64_t *pass_words;
    size_t pass_len, pass_cap;
    struct pending *pend;
    size_t npend, pend_cap;
    cp_stack_table *stacks;   /* CPU sample stacks -> stackFrames ids */
    cpprof_writer *frames;    /* stackFrames body, written at the end */
    size_t nframes;
    cp_symbolizer *sym;       /* held for one pass */
    struct task_entry *tasks;
    size_t ntasks, tasks_cap;
    cp_hindex task_index;     /* hash(id) -> index into tasks */
    bool tsc;                 /* records carry TSC stamps to convert */
    struct anchor *anchors;   /* one per pass, increasing */
    size_t nanchors, anchors_cap;
} trace_rec = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake_lock = PTHREAD_MUTEX_INITIALIZER,
};

static const char *const wait_kind_names[] = {
    [CP_TRACE_WAIT_MUTEX] = "mutex",
    [CP_TRACE_WAIT_RWLOCK_READ] = "rwlock-read",
    [CP_TRACE_WAIT_RWLOCK_WRITE] = "rwlock-write",
    [CP_TRACE_WAIT_COND] = "cond",
    [CP_TRACE_WAIT_SEM] = "sem",
    [CP_TRACE_WAIT_JOIN] = "join",
    [CP_TRACE_WAIT_BARRIER] = "barrier",
    [CP_TRACE_WAIT_SPIN] = "spin",
};

/* ------------------------------------------------------- JSON output */

/* Appends a string literal (its length known at compile time). */
#define write_lit(w, lit) cp_writer_write((w), (lit), sizeof(lit) - 1)

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;
        if (c == 0xed) hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;
        if (c == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Writes s (n bytes, not NUL-terminated) as a JSON string, quotes
 * included.  Invalid UTF-8 (e.g. a name cut mid-character) becomes U+FFFD
 * so a strict parser still accepts the file. */
static void json_string(cpprof_writer *w, const char *s, size_t n)
{
    char buf[256];
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s;

    buf[k++] = '"';
    for (size_t i = 0; i < n;) {
        if (k > sizeof buf - 8) {
            cp_writer_write(w, buf, k);
            k = 0;
        }
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            buf[k++] = '\\';
            buf[k++] = (char)c;
            i++;
        } else if (c < 0x20) {
            k += (size_t)snprintf(buf + k, 8, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            buf[k++] = (char)c;
            i++;
        } else {
            size_t len = utf8_seq(p + i, n - i);
            if (len == 0) {
                memcpy(buf + k, "\\ufffd", 6);
                k += 6;
                i++;
            } else {
                memcpy(buf + k, p + i, len);
                k += len;
                i += len;
            }
        }
    }
    buf[k++] = '"';
    cp_writer_write(w, buf, k);
}

static void json_cstring(cpprof_writer *w, const char *s)
{
    json_string(w, s, strlen(s));
}

/* Starts one element of traceEvents: separator, then the fields every
 * event has.  ts is absolute monotonic ns (>= t0). */
static void event_open(const char *ph, const char *cat, int32_t tid,
                       uint64_t ts)
{
    cpprof_writer *w = trace_rec.out;
    uint64_t rel = ts - trace_rec.t0;
    cp_writer_printf(w, "%s{\"ph\":\"%s\",\"cat\":\"%s\",\"pid\":%d,"
                        "\"tid\":%" PRId32 ",\"ts\":%" PRIu64 ".%03u",
                     trace_rec.nevents++ ? ",\n" : "\n", ph, cat,
                     trace_rec.pid, tid, rel / 1000, (unsigned)(rel % 1000));
}

static void event_name(const char *name, size_t n)
{
    write_lit(trace_rec.out, ",\"name\":");
    json_string(trace_rec.out, name, n);
}

static void thread_name_event(int32_t tid, const char *name)
{
    cpprof_writer *w = trace_rec.out;
    cp_writer_printf(w, "%s{\"ph\":\"M\",\"cat\":\"__metadata\",\"pid\":%d,"
                        "\"tid\":%" PRId32
                        ",\"name\":\"thread_name\",\"args\":{\"name\":",
                     trace_rec.nevents++ ? ",\n" : "\n", trace_rec.pid, tid);
    json_cstring(w, name);
    write_lit(w, "}}");
}

/* The kernel's name of a thread (or the process, tid 0), at most 16
 * bytes; "" when the thread is gone. */
static void read_comm(int32_t tid, char name[17])
{
    char path[64];
    if (tid > 0)
        snprintf(path, sizeof path, "/proc/self/task/%" PRId32 "/comm", tid);
    else
        snprintf(path, sizeof path, "/proc/self/comm");
    name[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, name, 16);
    close(fd);
    if (n <= 0)
        n = 0;
    while (n > 0 && (name[n - 1] == '\n' || name[n - 1] == '\0'))
        n--;
    name[n] = '\0';
}

/* ------------------------------------------------------ clock */

/*
 * TSC stamps become CLOCK_MONOTONIC ns by interpolating between anchors,
 * one taken at start and one at the beginning of every drain pass, so the
 * conversion follows the kernel clock (NTP slewing included) piecewise,
 * and TSC-stamped annotations line up with the ns-stamped waits and CPU
 * samples that the sync and CPU samplers report.
 */
static void anchor_take(void)
{
    if (!trace_rec.tsc)
        return;
    if (trace_rec.nanchors == trace_rec.anchors_cap) {
        size_t cap = trace_rec.anchors_cap ? trace_rec.anchors_cap * 2 : 256;
        void *p = realloc(trace_rec.anchors, cap * sizeof *trace_rec.anchors);
        if (p == NULL)
            return; /* the last segment's rate is extrapolated instead */
        trace_rec.anchors = p;
        trace_rec.anchors_cap = cap;
    }
    /* The tightest of a few brackets around the clock read wins. */
    struct anchor best = { 0, 0 };
    uint64_t best_gap = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t a = cp_trace_tsc();
        uint64_t ns = cp_trace_now();
        uint64_t b = cp_trace_tsc();
        if (b - a < best_gap) {
            best_gap = b - a;
            best = (struct anchor){ a + (b - a) / 2, ns };
        }
    }
    if (trace_rec.nanchors > 0) {
        struct anchor *last = &trace_rec.anchors[trace_rec.nanchors - 1];
        if (best.tsc <= last->tsc || best.ns <= last->ns)
            return; /* keep segments strictly increasing */
    }
    trace_rec.anchors[trace_rec.nanchors++] = best;
}

static uint64_t tsc_to_ns(uint64_t t)
{
    const struct anchor *a = trace_rec.anchors;
    size_t n = trace_rec.nanchors;
    if (n == 0)
        return trace_rec.t0;
    if (n == 1)
        return a[0].ns; /* no rate known yet */
    /* Segment [lo, lo+1] containing t; the end segments extrapolate. */
    size_t lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid].tsc <= t)
            lo = mid;
        else
            hi = mid;
    }
    __int128 dt = (__int128)t - (__int128)a[lo].tsc;
    __int128 ns = (__int128)a[lo].ns +
                  dt * (__int128)(a[hi].ns - a[lo].ns) /
                      (__int128)(a[hi].tsc - a[lo].tsc);
    return ns < 0 ? 0 : (uint64_t)ns;
}

/* ------------------------------------------------------ task tracking */

static bool task_eq(const void *ctx, uint32_t idx)
{
    return trace_rec.tasks[idx].id == *(const uint64_t *)ctx;
}

static struct task_entry *task_find(uint64_t id)
{
    uint32_t idx = cp_hindex_find(&trace_rec.task_index, cp_hash_u64(0, id),
                                  task_eq, &id);
    return idx == CP_HINDEX_NONE ? NULL : &trace_rec.tasks[idx];
}

static struct task_entry *task_add(uint64_t id, const char *type, size_t n)
{
    if (trace_rec.ntasks == trace_rec.tasks_cap) {
        size_t cap = trace_rec.tasks_cap ? trace_rec.tasks_cap * 2 : 64;
        void *p = realloc(trace_rec.tasks, cap * sizeof *trace_rec.tasks);
        if (p == NULL)
            return NULL;
        trace_rec.tasks = p;
        trace_rec.tasks_cap = cap;
    }
    uint32_t idx = (uint32_t)trace_rec.ntasks;
    if (cp_hindex_insert(&trace_rec.task_index, cp_hash_u64(0, id), idx) != 0)
        return NULL;
    struct task_entry *t = &trace_rec.tasks[trace_rec.ntasks++];
    t->id = id;
    t->open = true;
    memcpy(t->type, type, n);
    t->type[n] = '\0';
    return t;
}

static void task_event(const char *ph, int32_t tid, uint64_t ts, uint64_t id,
                       const char *type, size_t n)
{
    event_open(ph, "task", tid, ts);
    event_name(type, n);
    cp_writer_printf(trace_rec.out, ",\"id\":\"0x%" PRIx64 "\"", id);
}

/* ------------------------------------------------------ stack frames */

/* Names one stackFrames node: function, then file:line when known. */
static void frame_node(uint32_t id, uint32_t parent, bool has_parent,
                       uintptr_t pc, bool exact)
{
    cpprof_writer *f = trace_rec.frames;
    cp_frame fr[8];
    size_t n = 0;
    if (trace_rec.sym == NULL)
        trace_rec.sym = cp_symbolizer_acquire();
    if (trace_rec.sym != NULL)
        n = cp_symbolize(trace_rec.sym, exact ? pc : pc - 1, fr, 8);

    char name[512];
    if (n == 0 || fr[0].function == NULL) {
        snprintf(name, sizeof name, "0x%" PRIxPTR, pc);
    } else if (fr[0].file != NULL) {
        const char *base = strrchr(fr[0].file, '/');
        snprintf(name, sizeof name, "%s %s:%d", fr[0].function,
                 base ? base + 1 : fr[0].file, fr[0].line);
    } else {
        snprintf(name, sizeof name, "%s", fr[0].function);
    }
    cp_writer_printf(f, "%s\"%" PRIu32 "\":{\"name\":",
                     trace_rec.nframes++ ? ",\n" : "\n", id);
    json_cstring(f, name);
    if (has_parent)
        cp_writer_printf(f, ",\"parent\":\"%" PRIu32 "\"", parent);
    write_lit(f, "}");
}

/*
 * The stackFrames id of a CPU sample's leaf, emitting any nodes not seen
 * before.  A node is a stack suffix (the path from the root down to one
 * frame), interned in the one stack table, so equal paths share a node.
 * Returns false when the table is out of memory.
 */
static bool sample_frame(const uintptr_t *pcs, size_t depth, uint32_t *leaf)
{
    cp_stack_table *t = trace_rec.stacks;
    size_t before = cp_stack_table_size(t);
    if (cp_stack_table_intern(t, pcs, depth, leaf) != 0)
        return false;
    if (cp_stack_table_size(t) == before)
        return true; /* whole stack known: so are all its suffixes */
    uint32_t parent = 0;
    for (size_t i = depth; i-- > 0;) {
        uint32_t id;
        before = cp_stack_table_size(t);
        if (cp_stack_table_intern(t, pcs + i, depth - i, &id) != 0)
            return false;
        if (cp_stack_table_size(t) != before || i == 0)
            frame_node(id, parent, i + 1 < depth, pcs[i], i == 0);
        parent = id;
    }
    return true;
}

/* ------------------------------------------------------ record output */

/* Closes the regions open on a slot's thread at time ts (the thread
 * exited, or the trace stops). */
static void close_regions(struct slot_state *st, uint64_t ts)
{
    while (st->nopen > 0) {
        st->nopen--;
        event_open("E", "region", st->tid, ts);
        write_lit(trace_rec.out, ",\"args\":{\"unfinished\":true}}");
    }
}

/* The slot's thread is new to this trace: name its track. */
static void slot_adopt(size_t slot, struct slot_state *st, int32_t tid)
{
    if (st->tid != 0)
        close_regions(st, st->last_ts);
    st->tid = tid;
    st->nopen = 0;
    st->last_ts = trace_rec.t0;
    read_comm(tid, st->name);
    if (st->name[0] == '\0') /* already exited: its name at first event */
        cp_trace_slot_name(slot, st->name);
    thread_name_event(tid, st->name[0] ? st->name : "thread");
}

static void emit_record(struct slot_state *st, const uint64_t *r, size_t nw)
{
    cpprof_writer *w = trace_rec.out;
    unsigned type = cp_trace_rec_type_of(r[0]);
    uint32_t aux = cp_trace_rec_aux(r[0]);
    uint64_t ts = r[1];
    int32_t tid = st->tid;
    const char *bytes = (const char *)(r + 3);

    /* Tracks must be monotonic; a wait that began before the trace (or
     * a record late across two passes) is clipped. */
    if (ts < st->last_ts) {
        if (type != CP_TREC_WAIT && ts < trace_rec.t0)
            return; /* stale record from before this session */
        ts = st->last_ts;
    }

    switch (type) {
    case CP_TREC_REGION_BEGIN: {
        size_t n = aux & 0xff;
        uint16_t depth = (uint16_t)(aux >> 8);
        size_t fixed = aux & CP_TREC_REGION_HAS_TASK ? 3 : 2;
        if (st->nopen == OPEN_REGIONS_MAX || nw < fixed + (n + 7) / 8) {
            trace_rec.dropped++;
            return;
        }
        uint64_t task = fixed == 3 ? r[2] : 0;
        /* Open regions at this depth or deeper have ended (their end
         * records were lost): close them here, or they would nest. */
        while (st->nopen > 0 && st->open[st->nopen - 1] >= depth) {
            st->nopen--;
            event_open("E", "region", tid, ts);
            write_lit(w, "}");
        }
        st->open[st->nopen++] = depth;
        event_open("B", "region", tid, ts);
        event_name((const char *)(r + fixed), n);
        if (task != 0)
            cp_writer_printf(w, ",\"args\":{\"task\":%" PRIu64 "}", task);
        write_lit(w, "}");
        break;
    }
    case CP_TREC_REGION_END: {
        uint16_t depth = (uint16_t)(aux >> 8);
        uint32_t k = st->nopen;
        while (k > 0 && st->open[k - 1] > depth)
            k--;
        if (k == 0 || st->open[k - 1] != depth)
            return; /* its begin predates the trace or was lost */
        /* Inner regions whose ends were lost close here too. */
        while (st->nopen >= k) {
            st->nopen--;
            event_open("E", "region", tid, ts);
            write_lit(w, "}");
        }
        break;
    }
    case CP_TREC_TASK_BEGIN: {
        size_t n = aux & 0xff;
        if (nw < 4 + (n + 7) / 8)
            return;
        const char *type_name = (const char *)(r + 4);
        if (task_add(r[2], type_name, n) == NULL) {
            trace_rec.dropped++;
            return;
        }
        task_event("b", tid, ts, r[2], type_name, n);
        if (r[3] != 0)
            cp_writer_printf(w, ",\"args\":{\"parent\":\"0x%" PRIx64 "\"}",
                             r[3]);
        write_lit(w, "}");
        break;
    }
    case CP_TREC_TASK_END: {
        size_t n = aux & 0xff;
        if (nw < 3 + (n + 7) / 8)
            return;
        struct task_entry *t = task_find(r[2]);
        if (t == NULL || !t->open) {
            /* Created before the trace: show it from the trace start. */
            if (t == NULL && task_add(r[2], bytes, n) == NULL)
                return;
            task_event("b", tid, trace_rec.t0, r[2], bytes, n);
            write_lit(w, ",\"args\":{\"started_before_trace\":true}}");
            t = task_find(r[2]);
        }
        t->open = false;
        task_event("e", tid, ts, r[2], bytes, n);
        write_lit(w, "}");
        break;
    }
    case CP_TREC_LOG: {
        size_t nc = aux & 0xff, nm = aux >> 8;
        if (nw < 3 + (nc + nm + 7) / 8)
            return;
        event_open("i", "log", tid, ts);
        if (nc > 0)
            event_name(bytes, nc);
        else
            event_name("log", 3);
        write_lit(w, ",\"s\":\"t\",\"args\":{\"category\":");
        json_string(w, bytes, nc);
        write_lit(w, ",\"message\":");
        json_string(w, bytes + nc, nm);
        if (r[2] != 0)
            cp_writer_printf(w, ",\"task\":%" PRIu64, r[2]);
        write_lit(w, "}}");
        break;
    }
    case CP_TREC_WAIT: {
        if (nw < 4)
            return;
        uint64_t end = r[2];
        if (end < ts)
            end = ts;
        const char *kind = aux < sizeof wait_kind_names /
                                     sizeof wait_kind_names[0] &&
                                 wait_kind_names[aux]
                               ? wait_kind_names[aux]
                               : "wait";
        char name[48];
        int n = snprintf(name, sizeof name, "wait %s", kind);
        event_open("X", "wait", tid, ts);
        event_name(name, (size_t)n);
        uint64_t dur = end - ts;
        cp_writer_printf(w, ",\"dur\":%" PRIu64 ".%03u,\"args\":{\"kind\":\"%s\""
                            ",\"object\":\"0x%" PRIx64 "\"}}",
                         dur / 1000, (unsigned)(dur % 1000), kind, r[3]);
        ts = end; /* the thread was blocked until then */
        break;
    }
    case CP_TREC_CPU_SAMPLE: {
        size_t depth = aux;
        uint32_t leaf;
        if (depth == 0 || nw < 2 + depth)
            return;
        if (!sample_frame((const uintptr_t *)(r + 2), depth, &leaf)) {
            trace_rec.dropped++;
            return;
        }
        event_open("i", "cpu", tid, ts);
        event_name("cpu sample", 10);
        cp_writer_printf(w, ",\"s\":\"t\",\"sf\":\"%" PRIu32 "\"}", leaf);
        break;
    }
    case CP_TREC_THREAD_START:
    case CP_TREC_THREAD_EXIT:
        event_open("i", "thread", tid, ts);
        if (type == CP_TREC_THREAD_START)
            event_name("thread start", 12);
        else
            event_name("thread exit", 11);
        write_lit(w, ",\"s\":\"t\"}");
        break;
    default:
        return;
    }
    st->last_ts = ts;
}

/* Drain callback: keep a copy of the record for this pass's sort. */
static void collect(void *arg, size_t slot, int32_t tid, const uint64_t *rec,
                    size_t nwords)
{
    (void)arg;
    (void)slot;
    (void)tid;
    if (trace_rec.pass_len + nwords > trace_rec.pass_cap) {
        size_t cap = trace_rec.pass_cap ? trace_rec.pass_cap : 4096;
        while (cap < trace_rec.pass_len + nwords)
            cap *= 2;
        void *p = realloc(trace_rec.pass_words, cap * sizeof(uint64_t));
        if (p == NULL) {
            trace_rec.dropped++;
            return;
        }
        trace_rec.pass_words = p;
        trace_rec.pass_cap = cap;
    }
    if (trace_rec.npend == trace_rec.pend_cap) {
        size_t cap = trace_rec.pend_cap ? trace_rec.pend_cap * 2 : 1024;
        void *p = realloc(trace_rec.pend, cap * sizeof *trace_rec.pend);
        if (p == NULL) {
            trace_rec.dropped++;
            return;
        }
        trace_rec.pend = p;
        trace_rec.pend_cap = cap;
    }
    uint64_t *copy = trace_rec.pass_words + trace_rec.pass_len;
    memcpy(copy, rec, nwords * sizeof(uint64_t));
    if (cp_trace_rec_is_tsc(copy[0])) {
        copy[0] &= ~(uint64_t)CP_TREC_TSC;
        copy[1] = tsc_to_ns(copy[1]);
    }
    trace_rec.pend[trace_rec.npend] = (struct pending){
        .ts = copy[1], .off = (uint32_t)trace_rec.pass_len,
        .seq = (uint32_t)trace_rec.npend };
    trace_rec.npend++;
    trace_rec.pass_len += nwords;
}

static int pending_cmp(const void *a, const void *b)
{
    const struct pending *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One pass over every slot: drain, sort each thread's records by time (a
 * wait is recorded when it ends but placed where it began), write. */
static void drain_all(void)
{
    anchor_take(); /* before any head is read: see tsc_to_ns */
    for (size_t i = 0; i < CP_TRACE_SLOTS; i++) {
        int32_t tid = cp_trace_slot_tid(i);
        if (tid == 0)
            continue;
        trace_rec.pass_len = 0;
        trace_rec.npend = 0;
        cp_trace_slot_drain(i, collect, NULL);
        struct slot_state *st = &trace_rec.slots[i];
        if (trace_rec.npend > 0) {
            if (st->tid != tid)
                slot_adopt(i, st, tid);
            qsort(trace_rec.pend, trace_rec.npend, sizeof *trace_rec.pend,
                  pending_cmp);
            for (size_t k = 0; k < trace_rec.npend; k++) {
                const uint64_t *r = trace_rec.pass_words + trace_rec.pend[k].off;
                emit_record(st, r, cp_trace_rec_words(r[0]));
            }
        }
        /* Its name at exit, read before the reap lets a new owner in: a
         * thread that named itself after its first drain is renamed
         * (the last thread_name event of a tid wins). */
        char last[17];
        cp_trace_slot_name(i, last);
        if (cp_trace_slot_reap(i) && st->tid == tid) {
            close_regions(st, st->last_ts);
            if (last[0] && strcmp(last, st->name) != 0)
                thread_name_event(tid, last);
            st->tid = 0;
        }
    }
    if (trace_rec.sym != NULL) {
        cp_symbolizer_release(trace_rec.sym);
        trace_rec.sym = NULL;
    }
}

/* The JSON header.  Written by the drain thread, so that a start that
 * fails has written nothing (the HTTP handler can still send an error). */
static void write_header(void)
{
    cpprof_writer *w = trace_rec.out;
    char pname[17];
    read_comm(0, pname);
    write_lit(w, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[");
    cp_writer_printf(w, "\n{\"ph\":\"M\",\"cat\":\"__metadata\",\"pid\":%d,"
                        "\"tid\":0,\"name\":\"process_name\","
                        "\"args\":{\"name\":",
                     trace_rec.pid);
    json_cstring(w, pname[0] ? pname : "process");
    write_lit(w, "}}");
    trace_rec.nevents = 1;
}

static void *drain_main(void *arg)
{
    (void)arg;
    cp_trace_ignore_this_thread();
    write_header();
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += DRAIN_INTERVAL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&trace_rec.wake_lock);
        while (!trace_rec.stopping &&
               pthread_cond_timedwait(&trace_rec.wake_cv, &trace_rec.wake_lock,
                                      &until) == 0)
            ; /* woken early, but not told to stop: wait out the period */
        bool stop = trace_rec.stopping;
        pthread_mutex_unlock(&trace_rec.wake_lock);
        if (stop)
            break; /* the final pass runs in the stopping thread */
        drain_all();
    }
    return NULL;
}

/* ------------------------------------------------------- start / stop */

/* Forgets the session's buffers without freeing them (state_free has,
 * or a fork child must not: they are the parent's). */
static void state_forget(void)
{
    trace_rec.pass_words = NULL;
    trace_rec.pend = NULL;
    trace_rec.tasks = NULL;
    trace_rec.anchors = NULL;
    trace_rec.stacks = NULL;
    trace_rec.frames = NULL;
    trace_rec.pass_len = trace_rec.pass_cap = 0;
    trace_rec.npend = trace_rec.pend_cap = 0;
    trace_rec.ntasks = trace_rec.tasks_cap = 0;
    trace_rec.nanchors = trace_rec.anchors_cap = 0;
    cp_hindex_init(&trace_rec.task_index);
}

static void state_free(void)
{
    free(trace_rec.pass_words);
    free(trace_rec.pend);
    free(trace_rec.tasks);
    free(trace_rec.anchors);
    cp_hindex_free(&trace_rec.task_index);
    if (trace_rec.stacks)
        cp_stack_table_free(trace_rec.stacks);
    if (trace_rec.frames)
        cpprof_writer_close(trace_rec.frames);
    state_forget();
}

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * fork child: a trace the parent runs is not the child's (no drain
 * thread here, the writer is the parent's): the child is not tracing,
 * so its stop is a no-op instead of finishing the parent's trace into
 * the parent's writer, and it may start its own.  The parent's state is
 * left to leak.
 */
static void recorder_fork_child(void)
{
    pthread_mutex_init(&trace_rec.lock, NULL);
    pthread_mutex_init(&trace_rec.wake_lock, NULL);
    trace_rec.running = false;
    trace_rec.wake_ready = false; /* a fresh condition at the next start */
    trace_rec.out = NULL;
    state_forget();
}

static void recorder_init_once(void)
{
    pthread_atfork(NULL, NULL, recorder_fork_child);
}

static int trace_start(struct cpprof_writer *w)
{
    if (w == NULL)
        return -EINVAL;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, recorder_init_once);
    pthread_mutex_lock(&trace_rec.lock);
    int err = 0;
    if (trace_rec.running) {
        err = -EBUSY;
        goto out;
    }
    if ((err = cp_trace_capture_init()) != 0)
        goto out;

    memset(trace_rec.slots, 0, sizeof trace_rec.slots);
    trace_rec.out = w;
    trace_rec.pid = (int)getpid();
    trace_rec.nevents = 0;
    trace_rec.dropped = 0;
    trace_rec.nframes = 0;
    cp_hindex_init(&trace_rec.task_index);
    if (!trace_rec.wake_ready) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&trace_rec.wake_cv, &attr);
        pthread_condattr_destroy(&attr);
        trace_rec.wake_ready = true;
    }
    trace_rec.stopping = false;
    if ((err = cp_stack_table_new(&trace_rec.stacks)) != 0 ||
        (err = cpprof_writer_open_buffer(&trace_rec.frames)) != 0) {
        state_free();
        goto out;
    }

    trace_rec.tsc = cp_trace_capture_uses_tsc();
    trace_rec.t0 = cp_trace_now();
    anchor_take();
    if (trace_rec.nanchors > 0)
        trace_rec.t0 = trace_rec.anchors[0].ns;
    trace_rec.wall0 = realtime_ns();
    cp_trace_capture_enable();
    cp_sync_set_tracing(true); /* waits are timed even with profiles off */
    int rc = pthread_create(&trace_rec.drain, NULL, drain_main, NULL);
    if (rc != 0) {
        cp_sync_set_tracing(false);
        cp_trace_capture_disable();
        state_free();
        err = -rc;
        goto out;
    }
    trace_rec.running = true;
out:
    pthread_mutex_unlock(&trace_rec.lock);
    return err;
}

/* The trace's buffers and its drain thread are the profiler's own
 * (capture/own_section.h): never in the program's heap profile. */
int cpprof_trace_start(struct cpprof_writer *w)
{
    bool was_own = cp_own_begin();
    int rc = trace_start(w);
    cp_own_end(was_own);
    return rc;
}

int cpprof_trace_stop(void)
{
    pthread_mutex_lock(&trace_rec.lock);
    if (!trace_rec.running) {
        pthread_mutex_unlock(&trace_rec.lock);
        return 0;
    }
    bool was_own = cp_own_begin(); /* symbols and output buffers */
    cp_sync_set_tracing(false);
    cp_trace_capture_disable();
    pthread_mutex_lock(&trace_rec.wake_lock);
    trace_rec.stopping = true;
    pthread_cond_signal(&trace_rec.wake_cv);
    pthread_mutex_unlock(&trace_rec.wake_lock);
    pthread_join(trace_rec.drain, NULL);
    drain_all(); /* everything recorded before disable returned */
    uint64_t t_end = cp_trace_now();

    cpprof_writer *w = trace_rec.out;
    /* Close what is still open, rename threads renamed after their first
     * event, and account for what was dropped. */
    for (size_t i = 0; i < CP_TRACE_SLOTS; i++) {
        struct slot_state *st = &trace_rec.slots[i];
        if (st->tid == 0)
            continue;
        close_regions(st, t_end > st->last_ts ? t_end : st->last_ts);
        char now[17];
        read_comm(st->tid, now);
        if (now[0] && strcmp(now, st->name) != 0)
            thread_name_event(st->tid, now);
    }
    for (size_t i = 0; i < trace_rec.ntasks; i++) {
        struct task_entry *t = &trace_rec.tasks[i];
        if (!t->open)
            continue;
        task_event("e", 0, t_end, t->id, t->type, strlen(t->type));
        write_lit(w, ",\"args\":{\"unfinished\":true}}");
    }
    uint64_t lost = cp_trace_capture_lost() + trace_rec.dropped;
    if (lost > 0) {
        event_open("i", "cpprof", 0, t_end);
        event_name("events lost", 11);
        cp_writer_printf(w, ",\"s\":\"g\",\"args\":{\"lost_events\":%" PRIu64
                            "}}", lost);
    }

    size_t flen = 0;
    const void *fdata = cpprof_writer_data(trace_rec.frames, &flen);
    write_lit(w, "\n],\n\"stackFrames\":{");
    if (flen > 0)
        cp_writer_write(w, fdata, flen);
    cp_writer_printf(w,
                     "},\n\"otherData\":{\"producer\":\"cpprof %d.%d.%d\","
                     "\"clock\":\"CLOCK_MONOTONIC\","
                     "\"start_monotonic_ns\":%" PRIu64 ","
                     "\"start_unix_ns\":%" PRId64 ","
                     "\"duration_ns\":%" PRIu64 ","
                     "\"lost_events\":%" PRIu64 "}}\n",
                     CPPROF_VERSION_MAJOR, CPPROF_VERSION_MINOR,
                     CPPROF_VERSION_PATCH, trace_rec.t0, trace_rec.wall0,
                     t_end - trace_rec.t0, lost);
    int err = cpprof_writer_error(w);
    if (err == 0)
        err = cpprof_writer_error(trace_rec.frames);
    if (err == 0)
        err = cp_writer_flush(w);
    state_free();
    trace_rec.out = NULL;
    trace_rec.running = false;
    pthread_mutex_unlock(&trace_rec.lock);
    cp_own_end(was_own);
    return err;
}
