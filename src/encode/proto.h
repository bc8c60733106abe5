/*
 * encode/proto.h - profile model -> gzip'd profile.proto (debug=0).
 *
 * Symbolizes every distinct address once (model/symbolize.h), attaches the
 * process mappings with build IDs (model/mappings.h), and streams the
 * message through the wire writer (encode/pb.h) and gzip into a writer.
 * Normal thread context only.
 */
#ifndef CP_ENCODE_PROTO_H
#define CP_ENCODE_PROTO_H

#include "cpprof.h"
#include "model/profile.h"

/* Flags for cp_proto_write. */
enum {
    CP_PROTO_NO_SYMBOLS = 1, /* addresses and mappings only (benchmarks) */
    CP_PROTO_NO_GZIP = 2,    /* raw protobuf (benchmarks, tests) */
};

int cp_proto_write(const cp_profile *p, cpprof_writer *w, unsigned flags);

#endif
