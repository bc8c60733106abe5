#!/bin/sh
# bench/cpu/overhead.sh BUILD_DIR [THREADS] [SECONDS] [REPS] [RATES] - CPU
# profiling overhead on equal work, as paired ratios with 95 % confidence
# intervals, cpprof side by side with gperftools' libprofiler
# (libgoogle-perftools4) at the same rates.
#
# Design, for a shared and noisy machine:
# - the iteration count is calibrated once and then fixed, so every run
#   does the same work;
# - each of REPS rounds runs the baseline and every configuration once,
#   in a fresh random order, so slow drift and position effects hit all
#   configurations alike;
# - a configuration's overhead is the mean over rounds of its ratio to
#   the baseline of the same round, with a 95 % confidence interval
#   (Student's t); a target is shown met when the interval's upper end is
#   below it.  Both wall time and process CPU time (user + system, which
#   includes the kernel's signal delivery) are reported: with THREADS no
#   more than the cores, the workload is CPU-bound and the two agree, but
#   CPU time does not grow when another process takes a core away;
# - "us/sample" is the extra process CPU per sample the profiler took
#   (cpprof: samples in its profile; gperftools: the interrupts it
#   reports), which compares the two designs' cost per sample even where
#   gperftools takes far fewer samples than the rate asks.
# RATES defaults to "100 1000 4000" (4000 Hz is gperftools' maximum).
set -u
B=${1:-build}/bench/cpu/bench_cpu
T=${2:-2}
S=${3:-1}
REPS=${4:-30}
RATES=${5:-100 1000 4000}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PROFILER=${PROFILER-$(ls /usr/lib/x86_64-linux-gnu/libprofiler.so* 2>/dev/null | head -1)}

iters=$($B work 1 "$S" | sed -n 's/.* iters \([0-9]*\).*/\1/p')
export BENCH_CPU_ITERS=$iters BENCH_CPU_OUT=$TMP/c.pb.gz

configs=baseline
for hz in $RATES; do
    configs="$configs cpprof-$hz"
    [ -n "$PROFILER" ] && configs="$configs gperftools-$hz"
done

run() { # round config: appends "round config wall cpu samples" to all
    round=$1 c=$2
    case $c in
    baseline) $B work "$T" "$S" >"$TMP/out" 2>&1 ;;
    cpprof-*) $B work "$T" "$S" cpprof "${c#cpprof-}" auto >"$TMP/out" 2>&1 ;;
    gperftools-*)
        env LD_PRELOAD="$PROFILER" CPUPROFILE="$TMP/g.prof" \
            CPUPROFILE_FREQUENCY="${c#gperftools-}" \
            $B work "$T" "$S" >"$TMP/out" 2>&1 ;;
    esac
    awk -v r="$round" -v c="$c" '
        /^wall / { w = $2; u = $4; for (i = 1; i < NF; i++) if ($i == "samples") s = $(i + 1) }
        /interrupts\/evictions\/bytes/ { split($NF, a, "/"); s = a[1] }
        END { if (w != "") print r, c, w, u, (s == "" ? 0 : s) }' "$TMP/out" >>"$TMP/all"
}

for r in $(seq "$REPS"); do
    for c in $(printf '%s\n' $configs | shuf); do
        run "$r" "$c"
    done
done

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "workload: $T threads x $iters iterations (~${S}s CPU each), $REPS rounds in random order"
printf '%-16s %9s %21s %21s %9s %10s\n' config "wall s" "wall/base (95% CI)" "cpu/base (95% CI)" samples "us/sample"
# Paired statistics per configuration: column col of config c over the
# baseline's of the same round.
awk -v configs="$configs" '
function tq(df) { # two-sided 95 % quantile of Student t
    if (df >= 60) return 2.000; if (df >= 40) return 2.021; if (df >= 30) return 2.042
    if (df >= 20) return 2.086; if (df >= 10) return 2.228; if (df >= 5) return 2.571
    return 12.706
}
{ w[$1, $2] = $3; u[$1, $2] = $4; s[$1, $2] = $5; if ($1 > R) R = $1 }
END {
    n = split(configs, C, " ")
    for (k = 1; k <= n; k++) {
        c = C[k]; m = 0; sw = qw = su = qu = sc = nc = 0; ws = 0
        for (r = 1; r <= R; r++) {
            if (!((r, c) in w) || !((r, "baseline") in w)) continue
            a = w[r, c] / w[r, "baseline"]; b = u[r, c] / u[r, "baseline"]
            sw += a; qw += a * a; su += b; qu += b * b; ws += w[r, c]; m++
            if (s[r, c] > 0) { sc += (u[r, c] - u[r, "baseline"]) / s[r, c] * 1e6; nc++ }
        }
        if (m < 2) continue
        mw = sw / m; mu = su / m
        hw = tq(m - 1) * sqrt((qw - m * mw * mw) / (m - 1) / m)
        hu = tq(m - 1) * sqrt((qu - m * mu * mu) / (m - 1) / m)
        smp = 0; for (r = 1; r <= R; r++) smp += s[r, c]
        printf "%-16s %9.4f %8.4f (%5.3f..%5.3f) %8.4f (%5.3f..%5.3f) %9.0f %10s\n", c, ws / m,
            mw, mw - hw, mw + hw, mu, mu - hu, mu + hu, smp / m,
            (nc ? sprintf("%.2f", sc / nc) : "-")
    }
}' "$TMP/all"
cp "$TMP/all" "${OVERHEAD_RAW:-/dev/null}" 2>/dev/null || true
