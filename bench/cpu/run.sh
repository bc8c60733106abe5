#!/bin/sh
# bench/cpu/run.sh BUILD_DIR [THREADS] [SECONDS] - CPU profiler overhead
# and completeness, side by side with gperftools' libprofiler
# (libgoogle-perftools4, LD_PRELOAD + CPUPROFILE_FREQUENCY) and perf
# record, on the same calibrated workload; best wall time of 3 runs each.
# Then the per-sample unwind cost at 32 frames.  Needs: perf,
# libgoogle-perftools4, go (to total gperftools' profile).
set -u
B=${1:-build}/bench/cpu/bench_cpu
T=${2:-2}
S=${3:-1.5}
TMP=$(mktemp -d)
PROFILER=$(ls /usr/lib/x86_64-linux-gnu/libprofiler.so* 2>/dev/null | head -1)

best() { # best (lowest wall) line of 3 runs of "$@"
    for i in 1 2 3; do "$@"; done 2>/dev/null | grep '^wall' | sort -k2 -n | head -1
}
gperf_total() { # seconds of CPU in gperftools' profile
    HOME=$TMP go tool pprof -top "$B" "$1" 2>/dev/null |
        sed -n 's/.*Total samples = \([0-9.]*\)\(m\?s\).*/\1 \2/p' |
        awk '{ print ($2 == "ms") ? $1 / 1000 : $1 }'
}

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus"
echo "workload: $T threads x ${S}s CPU"
printf '%-22s %s\n' baseline "$(best $B work $T $S)"
for hz in 100 1000; do
    printf '%-22s %s\n' "cpprof auto $hz Hz" "$(best $B work $T $S cpprof $hz auto)"
    printf '%-22s %s\n' "cpprof fp $hz Hz" "$(best $B work $T $S cpprof $hz fp)"
    if [ -n "$PROFILER" ]; then
        line=$(best env LD_PRELOAD=$PROFILER CPUPROFILE=$TMP/g.prof \
               CPUPROFILE_FREQUENCY=$hz $B work $T $S)
        printf '%-22s %s profiled %s\n' "gperftools $hz Hz" "$line" \
               "$(gperf_total $TMP/g.prof)"
    fi
    if command -v perf >/dev/null; then
        printf '%-22s %s\n' "perf -g $hz Hz" \
            "$(best perf record -q -F $hz -g -o $TMP/perf.data $B work $T $S)"
    fi
done
$B unwind 30
rm -rf "$TMP"
