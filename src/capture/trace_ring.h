/*
 * capture/trace_ring.h - the execution tracer's event buffers: the contract
 * between the producers (annotation API, sync interposition, SIGPROF
 * handler, thread hooks) and the recorder's drain thread (src/trace/).
 *
 * Owned by capture/trace_events.c.  Every thread that records an event
 * claims one slot of a fixed pool for the session; the slot holds a
 * single-producer single-consumer ring of 64-bit words.  The producer is
 * the owning thread (a signal handler that interrupts a write on the same
 * thread drops its event and counts it lost); the consumer is the drain
 * thread.  Memory is reserved once, at the first start, as lazily
 * committed anonymous pages: resident memory is bounded by
 * CP_TRACE_SLOTS * CP_TRACE_RING_BYTES and no producer ever allocates.
 *
 * Safety: cp_trace_emit* and cp_trace_region_* are ASYNC-SIGNAL-SAFE,
 * lock-free, allocation-free and errno-preserving.  The cp_trace_capture_*
 * control functions and cp_trace_slot_drain are normal context only,
 * called by src/trace/.
 */
#ifndef CP_CAPTURE_TRACE_RING_H
#define CP_CAPTURE_TRACE_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CP_TRACE_SLOTS 256               /* threads traced at once */
#define CP_TRACE_RING_BYTES (512u << 10) /* per thread, a power of two */
#define CP_TRACE_NAME_MAX 63             /* region/task/category bytes kept */
#define CP_TRACE_MSG_MAX 1023            /* log message bytes kept */
#define CP_TRACE_STACK_MAX 64            /* pcs kept per CPU sample */

/*
 * Record layout, in words: [0] header = type | nwords << 8 | aux << 32,
 * [1] timestamp (CLOCK_MONOTONIC ns), then the type's payload.
 */
enum cp_trace_rec_type {
    CP_TREC_REGION_BEGIN = 1, /* [2] task id, only when aux has
                                 CP_TREC_REGION_HAS_TASK; name bytes (aux =
                                 length | depth << 8: open regions before
                                 it, 16 bits) */
    CP_TREC_REGION_END,       /* no payload (aux = depth << 8) */
    CP_TREC_TASK_BEGIN,       /* [2] id, [3] parent id; name (aux = len) */
    CP_TREC_TASK_END,         /* [2] id; name (aux = len) */
    CP_TREC_LOG,              /* [2] task id; category then message bytes
                                 (aux = catlen | msglen << 8) */
    CP_TREC_WAIT,             /* [1] begin, [2] end, [3] addr; aux = kind */
    CP_TREC_CPU_SAMPLE,       /* pcs, leaf first (aux = depth) */
    CP_TREC_THREAD_START,
    CP_TREC_THREAD_EXIT,
};

/* Region-begin aux flag: a task id word precedes the name. */
#define CP_TREC_REGION_HAS_TASK (1u << 24)

/* Type-byte flag: the record's timestamp is a raw TSC reading (the
 * recorder converts it to CLOCK_MONOTONIC ns), not nanoseconds. */
#define CP_TREC_TSC 0x80u

static inline unsigned cp_trace_rec_type_of(uint64_t h) { return h & 0x7f; }
static inline bool cp_trace_rec_is_tsc(uint64_t h) { return h & CP_TREC_TSC; }
static inline size_t cp_trace_rec_words(uint64_t h) { return (h >> 8) & 0xffff; }
static inline uint32_t cp_trace_rec_aux(uint64_t h) { return (uint32_t)(h >> 32); }

/* Largest record, in words (a log line with both strings at their max). */
#define CP_TRACE_REC_MAX_WORDS \
    (3 + (CP_TRACE_NAME_MAX + CP_TRACE_MSG_MAX + 7) / 8)

/* ---- producers (async-signal-safe) ---- */

/* The one predictable branch every producer takes first. */
bool cp_trace_enabled(void);

/*
 * Appends one record to the calling thread's ring: a header built from
 * type and aux, the timestamp ts (CLOCK_MONOTONIC ns; 0: stamp it now,
 * with the cheapest clock, see cp_trace_capture_uses_tsc), nw payload
 * words w, then nb bytes of
 * b (rounded up to whole words).  Returns false (and counts the event
 * lost) when tracing is off, the ring is full, no slot is free, or the
 * thread is already inside a write (a signal handler interrupted it).
 */
bool cp_trace_emit(unsigned type, uint32_t aux, uint64_t ts,
                   const uint64_t *w, size_t nw, const void *b, size_t nb);
/* Same, with two byte strings appended one after the other. */
bool cp_trace_emit2(unsigned type, uint32_t aux, uint64_t ts,
                    const uint64_t *w, size_t nw, const void *b1, size_t n1,
                    const void *b2, size_t n2);

/*
 * The region pair of the annotation API (cpprof_trace_region_*), each a
 * single call that checks enabled itself: begin records task (0: none)
 * and up to CP_TRACE_NAME_MAX bytes of name (NULL: ""), end closes the
 * innermost open region.  The capture layer counts the thread's open
 * regions and stamps each record with its depth.
 */
void cp_trace_region_begin(uint64_t task, const char *name);
void cp_trace_region_end(void);

/* Makes the calling thread's events vanish without counting as lost,
 * those it already recorded included (the recorder's own drain thread,
 * the one consumer, only).  Normal context. */
void cp_trace_ignore_this_thread(void);

/* CLOCK_MONOTONIC in nanoseconds (vDSO: signal-safe, no syscall). */
uint64_t cp_trace_now(void);

/* ---- control and consumer (normal context, src/trace/ only) ---- */

/* Reserves the slot pool on first use.  0 or -ENOMEM. */
int cp_trace_capture_init(void);
/* Empties every slot, starts a new session and turns producers on. */
void cp_trace_capture_enable(void);
/*
 * Turns producers off and returns once no producer is inside a write, so
 * the consumer's last drain sees every record of the session.
 */
void cp_trace_capture_disable(void);

/*
 * Whether records stamped by cp_trace_emit carry raw TSC readings: on
 * x86-64 when the TSC is invariant and the kernel's own clocksource is the
 * TSC (so it is synchronised across CPUs), unless CPPROF_TRACE_CLOCK=
 * monotonic.  A TSC read costs a third of clock_gettime in a VM.
 */
bool cp_trace_capture_uses_tsc(void);
/* The raw TSC (0 where there is none); for the recorder's anchors. */
uint64_t cp_trace_tsc(void);

/* Records dropped this session (full rings, no slot, re-entered writes). */
uint64_t cp_trace_capture_lost(void);

/* Thread id owning slot i this session, or 0 when free. */
int32_t cp_trace_slot_tid(size_t i);

/* The slot owner's thread name when it claimed the slot ("" if unset);
 * meaningful once a record of the owner has been drained. */
void cp_trace_slot_name(size_t i, char name[17]);

/*
 * Hands every complete record now in slot i to fn (a contiguous copy,
 * header first), then frees their space.  Returns the record count.
 */
typedef void (*cp_trace_rec_fn)(void *arg, size_t slot, int32_t tid,
                                const uint64_t *rec, size_t nwords);
size_t cp_trace_slot_drain(size_t i, cp_trace_rec_fn fn, void *arg);

/*
 * After a drain: frees slot i when its thread has exited (it can write no
 * more) so a new thread may claim it.  Returns true when it was freed.
 */
bool cp_trace_slot_reap(size_t i);

#endif
