#!/bin/sh
# bench/heap/paired.sh BUILD_DIR [LABEL=LIBRARY ...] - the heap profiler's
# overhead in paired rounds, as quoted in bench/RESULTS.md.
#
# Each of ROUNDS rounds runs the churn benchmark once under every
# configuration, the order rotated round by round: glibc alone, libcpprof
# at rate 0 ("cpprof-off") and at RATE ("cpprof-rate"), then each extra
# LABEL=LIBRARY (another libcpprof.so, e.g. an older build or a copy of
# the same one as a control, also at RATE).  The overhead of a
# configuration is its ratio to glibc within each round (both saw about
# the same load); the figure is the median over rounds with a bootstrap
# 95 % interval of that median (2000 resamples).  ROUNDS (default 101) and
# OPS (per thread, default 1000000) set the size; 101 rounds of four
# configurations take 2-3 minutes here.  RATE (default 524288): a
# smaller one magnifies the sampled path's cost when comparing builds.
set -eu
B=${1:-build}
shift || true
BIN=$B/bench/heap/bench_heap_churn
ROUNDS=${ROUNDS:-101}
OPS=${OPS:-1000000}
RATE=${RATE:-524288}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

CONFIGS="glibc|
cpprof-off|LD_PRELOAD=$B/libcpprof.so CPPROF_MEMPROFILERATE=0
cpprof-rate|LD_PRELOAD=$B/libcpprof.so CPPROF_MEMPROFILERATE=$RATE"
for extra in "$@"; do
    CONFIGS="$CONFIGS
${extra%%=*}|LD_PRELOAD=${extra#*=} CPPROF_MEMPROFILERATE=$RATE"
done

# Each round starts one configuration further down the list, so that no
# configuration always runs in the same position within a round.
K=$(echo "$CONFIGS" | wc -l)
for i in $(seq "$ROUNDS"); do
    r=$((i % K))
    { echo "$CONFIGS" | tail -n +$((r + 1)); [ "$r" = 0 ] ||
        echo "$CONFIGS" | head -n "$r"; } | while IFS='|' read -r label envs; do
        # shellcheck disable=SC2086
        env $envs "$BIN" "$OPS" 2>/dev/null | tail -1 >> "$TMP/$label"
    done
done

labels=$(echo "$CONFIGS" | cut -d'|' -f1 | tr '\n' ' ')
python3 - "$TMP" $labels <<'EOF'
import random, statistics, sys
d, labels = sys.argv[1], sys.argv[2:]
runs = {l: [float(x) for x in open(f"{d}/{l}")] for l in labels}
base = runs[labels[0]]
random.seed(1)
def ci(r):
    meds = sorted(statistics.median(random.choices(r, k=len(r)))
                  for _ in range(2000))
    return meds[50], meds[1949]
print(f"{len(base)} rounds")
for l in labels:
    v = runs[l]
    q = statistics.quantiles(v, n=4)
    line = f"{l:<14} {statistics.median(v):7.1f} ns/pair ({q[0]:.1f}..{q[2]:.1f})"
    if l != labels[0]:
        r = [(a / b - 1) * 100 for a, b in zip(v, base)]
        lo, hi = ci(r)
        line += f"  {statistics.median(r):+5.1f} % ({lo:+.1f}..{hi:+.1f}) vs glibc"
    print(line)
EOF
