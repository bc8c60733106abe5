#!/bin/sh
# bench/heap/run.sh BUILD_DIR - heap profiler overhead, side by side:
# the same churn binary without profiling, under libcpprof at 512 KiB
# (and at rate 0), jemalloc's profiler (prof:true,lg_prof_sample:19 = 512
# KiB), tcmalloc's heap profiler and heaptrack, each when installed
# (Debian: libjemalloc2, libgoogle-perftools4, heaptrack).
#
# The machine is shared, so configurations are interleaved: each of REPS
# rounds runs every configuration once, in the same order, and a ratio is
# taken within each round (both sides saw the same load) before the
# median over rounds.  Prints the median ns per malloc+free pair of each
# configuration and, per profiler, the median of the per-round overhead
# ratios against the allocator it runs on.  SLOW=0 leaves out tcmalloc's
# heap profiler and heaptrack (tens of seconds a run).
set -eu
B=${1:-build}
BIN=$B/bench/heap/bench_heap_churn
OPS=${OPS:-2000000}
REPS=${REPS:-5}
SLOW=${SLOW:-1}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Peers: the Debian paths unless JE, TC or HT name others ("" = skip).
JE=${JE-$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 2>/dev/null || true)}
TC=${TC-$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 2>/dev/null || true)}
HT=${HT-$(command -v heaptrack || true)}
[ "$SLOW" = 0 ] && HT=

# label|env assignments (space separated, no spaces inside values)
CONFIGS="glibc|
cpprof-512k|LD_PRELOAD=$B/libcpprof.so CPPROF_MEMPROFILERATE=524288
cpprof-off|LD_PRELOAD=$B/libcpprof.so CPPROF_MEMPROFILERATE=0"
if [ -n "$JE" ]; then
    CONFIGS="$CONFIGS
jemalloc|LD_PRELOAD=$JE
jemalloc-prof|LD_PRELOAD=$JE MALLOC_CONF=prof:true,lg_prof_sample:19"
fi
if [ -n "$TC" ]; then
    CONFIGS="$CONFIGS
tcmalloc|LD_PRELOAD=$TC"
    [ "$SLOW" != 0 ] && CONFIGS="$CONFIGS
tcmalloc-heapprof|LD_PRELOAD=$TC HEAPPROFILE=$TMP/tc"
fi

one() { # label, env assignments: appends one figure to $TMP/label
    label=$1; shift
    # shellcheck disable=SC2086
    env $* "$BIN" "$OPS" 2>/dev/null | tail -1 >> "$TMP/$label"
    rm -f "$TMP"/tc*.heap
}

for i in $(seq "$REPS"); do
    echo "$CONFIGS" | while IFS='|' read -r label envs; do
        one "$label" "$envs"
    done
    if [ -n "$HT" ]; then
        "$HT" -o "$TMP/ht" "$BIN" "$OPS" 2>/dev/null |
            grep -E '^[0-9.]+$' | tail -1 >> "$TMP/heaptrack"
        rm -f "$TMP"/ht*
    fi
done

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
for f in $(echo "$CONFIGS" | cut -d'|' -f1) ${HT:+heaptrack}; do
    printf '%-28s %8s ns/pair\n' "$f" "$(median < "$TMP/$f")"
done
ratio() { # profiled, base: median over rounds of profiled/base - 1
    [ -s "$TMP/$1" ] && [ -s "$TMP/$2" ] || return 0
    paste "$TMP/$1" "$TMP/$2" | awk '{print ($1 / $2 - 1) * 100}' | median |
        awk -v a="$1" -v b="$2" '{ printf "%-28s %+7.1f%% vs %s\n", a, $1, b }'
}
echo "--- overhead (median of per-round ratios, $REPS rounds)"
ratio cpprof-512k glibc
ratio cpprof-off glibc
ratio cpprof-512k cpprof-off
ratio jemalloc-prof jemalloc
ratio tcmalloc-heapprof tcmalloc
ratio heaptrack glibc
exit 0
