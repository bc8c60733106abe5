#!/bin/sh
# bench/cpu/overhead.sh BUILD_DIR [THREADS] [SECONDS] [REPS] - CPU
# profiling overhead as a ratio to the unprofiled run, on equal work.
# The iteration count is calibrated once and then fixed, and the
# configurations are interleaved REPS times so drift in the machine's
# speed hits them all alike; medians of wall and process CPU time.
# Peers: gperftools' libprofiler at the same rates (libgoogle-perftools4).
set -u
B=${1:-build}/bench/cpu/bench_cpu
T=${2:-2}
S=${3:-2}
REPS=${4:-9}
TMP=$(mktemp -d)
PROFILER=${PROFILER:-$(ls /usr/lib/x86_64-linux-gnu/libprofiler.so* 2>/dev/null | head -1)}

iters=$($B work 1 "$S" | sed -n 's/.* iters \([0-9]*\).*/\1/p')
export BENCH_CPU_ITERS=$iters BENCH_CPU_OUT=$TMP/c.pb.gz

run() { # name, command...
    name=$1; shift
    "$@" 2>/dev/null | sed -n "s/^wall \([0-9.]*\) cpu \([0-9.]*\).*/$name \1 \2/p" >> "$TMP/all"
}
for r in $(seq "$REPS"); do
    run baseline $B work "$T" "$S"
    run cpprof-100 $B work "$T" "$S" cpprof 100 auto
    run cpprof-1000 $B work "$T" "$S" cpprof 1000 auto
    if [ -n "$PROFILER" ]; then
        run gperftools-100 env LD_PRELOAD="$PROFILER" CPUPROFILE=$TMP/g.prof CPUPROFILE_FREQUENCY=100 $B work "$T" "$S"
        run gperftools-1000 env LD_PRELOAD="$PROFILER" CPUPROFILE=$TMP/g.prof CPUPROFILE_FREQUENCY=1000 $B work "$T" "$S"
    fi
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "workload: $T threads, $iters iterations each (~${S}s), $REPS interleaved runs, medians"
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
bw=$(awk '$1 == "baseline" { print $2 }' "$TMP/all" | median)
bc=$(awk '$1 == "baseline" { print $3 }' "$TMP/all" | median)
# mean and standard error of the mean of process CPU, as a ratio
stats() { awk '{ s += $1; q += $1 * $1; n++ } END { m = s / n; v = (n > 1) ? (q - n * m * m) / (n - 1) : 0; if (v < 0) v = 0; printf "%.4f %.4f", m, sqrt(v / n) }'; }
printf '%-16s %10s %10s %10s %10s %18s\n' config wall_s wall/base cpu_s cpu/base "cpu mean/base±sem"
for c in baseline cpprof-100 cpprof-1000 gperftools-100 gperftools-1000; do
    w=$(awk -v c=$c '$1 == c { print $2 }' "$TMP/all" | median)
    [ -n "$w" ] || continue
    u=$(awk -v c=$c '$1 == c { print $3 }' "$TMP/all" | median)
    set -- $(awk -v c=$c '$1 == c { print $3 }' "$TMP/all" | stats)
    mb=$(awk '$1 == "baseline" { print $3 }' "$TMP/all" | stats | cut -d' ' -f1)
    awk -v c=$c -v w="$w" -v bw="$bw" -v u="$u" -v bc="$bc" -v m="$1" -v se="$2" -v mb="$mb" \
        'BEGIN { printf "%-16s %10.4f %10.4f %10.4f %10.4f %11.4f±%.4f\n", c, w, w / bw, u, u / bc, m / mb, se / mb }'
done
rm -rf "$TMP"
