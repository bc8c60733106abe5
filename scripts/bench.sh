#!/bin/sh
# `make bench`: every benchmark's one command, in turn, with the defaults
# bench/RESULTS.md reports.  Peers (gperftools, jemalloc, heaptrack, perf)
# are used where installed and skipped otherwise; they are not project
# dependencies:  apt-get install libgoogle-perftools4 libjemalloc2
# heaptrack linux-perf.  Run one area alone with: scripts/bench.sh BUILD AREA
set -u
build=${1:-build}
only=${2:-}
b=$build/bench

run() { # area, command...
    area=$1; shift
    [ -n "$only" ] && [ "$only" != "$area" ] && return 0
    echo "== $area: $*"
    "$@" || echo "(bench $area exited with status $?)"
    echo
}

run core    "$b/core/bench_custom" 2000000
run encode  "$b/encode/bench_encode"
run trace   "$b/trace/trace_bench"
run sync    "$b/sync/bench_sync"
run http    "$b/http/bench_http_load" 64 200
run heap    sh bench/heap/run.sh "$build"
run heap    "$b/heap/bench_heap_ab"
lib=/usr/lib/x86_64-linux-gnu
[ -e $lib/libjemalloc.so.2 ] && run heap env LD_PRELOAD=$lib/libjemalloc.so.2 \
    MALLOC_CONF=prof:true,prof_active:false "$b/heap/bench_heap_ab" 40 400 524288 jemalloc
[ -e $lib/libtcmalloc.so.4 ] && run heap env LD_PRELOAD=$lib/libtcmalloc.so.4 \
    "$b/heap/bench_heap_ab" 40 100 524288 tcmalloc
run cpu     sh bench/cpu/run.sh "$build" 2 1.5
run cpu     sh bench/cpu/overhead.sh "$build" 2 1 9
run preload sh bench/preload/run.sh "$build" 50 3
