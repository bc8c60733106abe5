#!/bin/sh
# bench/heap/run.sh BUILD_DIR - heap profiler overhead, side by side:
# the same churn binary without profiling, under libcpprof at 512 KiB
# (and at rate 0), jemalloc's profiler (prof:true,lg_prof_sample:19 = 512
# KiB), tcmalloc's heap profiler and heaptrack, each when installed
# (Debian: libjemalloc2, libgoogle-perftools4, heaptrack).  Prints the
# median ns per malloc+free pair of REPS runs and the overhead ratio
# against the allocator each profiler runs on.
set -eu
B=${1:-build}
BIN=$B/bench/heap/bench_heap_churn
OPS=${OPS:-3000000}
REPS=${REPS:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
JE=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 2>/dev/null || true)
TC=$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 2>/dev/null || true)

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
run() { # label, then env/command prefix
    label=$1; shift
    for i in $(seq "$REPS"); do
        env "$@" "$BIN" "$OPS" 2>/dev/null | tail -1
    done | median > "$TMP/$label"
    printf '%-28s %8s ns/pair\n' "$label" "$(cat "$TMP/$label")"
}
ratio() { awk -v a="$(cat "$TMP/$1")" -v b="$(cat "$TMP/$2")" \
    'BEGIN { printf "%-28s %+7.1f%% vs %s\n", "'"$1"'", (a / b - 1) * 100, "'"$2"'" }'; }

run glibc
run cpprof-512k LD_PRELOAD="$B/libcpprof.so" CPPROF_MEMPROFILERATE=524288
run cpprof-off LD_PRELOAD="$B/libcpprof.so" CPPROF_MEMPROFILERATE=0
if [ -n "$JE" ]; then
    run jemalloc LD_PRELOAD="$JE"
    run jemalloc-prof LD_PRELOAD="$JE" MALLOC_CONF=prof:true,lg_prof_sample:19
fi
if [ -n "$TC" ]; then
    run tcmalloc LD_PRELOAD="$TC"
    run tcmalloc-heapprof LD_PRELOAD="$TC" HEAPPROFILE="$TMP/tc"
fi
if command -v heaptrack >/dev/null; then
    for i in $(seq "$REPS"); do
        heaptrack -o "$TMP/ht" "$BIN" "$OPS" 2>/dev/null | grep -E '^[0-9.]+$' | tail -1
        rm -f "$TMP"/ht*
    done | median > "$TMP/heaptrack"
    printf '%-28s %8s ns/pair\n' heaptrack "$(cat "$TMP/heaptrack")"
fi
echo "--- overhead"
ratio cpprof-512k glibc
ratio cpprof-off glibc
[ -n "$JE" ] && ratio jemalloc-prof jemalloc
[ -n "$TC" ] && ratio tcmalloc-heapprof tcmalloc
command -v heaptrack >/dev/null && ratio heaptrack glibc
exit 0
