#!/bin/sh
# bench/preload/run.sh BUILD_DIR [MB] [RUNS] - overhead of profiling an
# unchanged program: `sort -S 200M big.txt -o out.txt` on a generated file
# of MB megabytes (default 50), run plain, under `cpprof run -cpuprofile`
# and under gperftools' LD_PRELOAD=libprofiler.so CPUPROFILE=, RUNS times
# each (default 3), interleaved.  Reports the median wall and CPU
# (user+sys) seconds, the ratio to plain, and whether each run exited 0
# with output identical to the plain run's.  Needs /usr/bin/time and, for
# the peer, libgoogle-perftools4 (bench only; not a dependency).
set -u
BUILD=${1:-build}
MB=${2:-50}
RUNS=${3:-3}
CLI=$BUILD/tools/cpprof/cpprof
PROFILER=$(ls /usr/lib/x86_64-linux-gnu/libprofiler.so.0 2>/dev/null | head -1)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)"
# Random text lines, like a log: deterministic, ~MB megabytes.
awk -v mb="$MB" 'BEGIN { srand(42); n = 0; lim = mb * 1048576;
    while (n < lim) { s = sprintf("%08x %d key-%d %s", int(rand() * 4294967295),
        int(rand() * 1e6), int(rand() * 5e4), substr("abcdefghijklmnopqrstuvwxyz", 1 + int(rand() * 20)));
        print s; n += length(s) + 1 } }' > "$TMP/big.txt"
echo "input: $(wc -c < "$TMP/big.txt") bytes, $(wc -l < "$TMP/big.txt") lines"
sort -S 200M "$TMP/big.txt" -o "$TMP/want.txt"

# one NAME: a run of configuration NAME; appends "wall cpu status same".
one() {
    rm -f "$TMP/out.txt" "$TMP/prof"
    case $1 in
    plain) cmd="sort -S 200M $TMP/big.txt -o $TMP/out.txt" ;;
    cpprof) cmd="$CLI run -cpuprofile $TMP/prof -- /usr/bin/sort -S 200M $TMP/big.txt -o $TMP/out.txt" ;;
    gperftools) cmd="env LD_PRELOAD=$PROFILER CPUPROFILE=$TMP/prof sort -S 200M $TMP/big.txt -o $TMP/out.txt" ;;
    esac
    /usr/bin/time -f "%e %U %S %x" -o "$TMP/t" sh -c "exec $cmd" 2>"$TMP/err"
    same=no
    cmp -s "$TMP/out.txt" "$TMP/want.txt" && same=yes
    prof=no
    [ -s "$TMP/prof" ] && prof=yes
    # %x is the exit status; a signal shows in "Command terminated by".
    st=$(tail -1 "$TMP/t" | awk '{print $4}')
    sig=$(sed -n 's/.*terminated by signal \([0-9]*\).*/\1/p' "$TMP/t")
    [ -n "$sig" ] && st="signal$sig"
    tail -1 "$TMP/t" | awk -v n="$1" -v st="$st" -v same="$same" -v prof="$prof" \
        '{ printf "%s %s %.2f %s %s %s\n", n, $1, $2 + $3, st, same, prof }' >> "$TMP/runs"
}

configs="plain cpprof"
[ -n "$PROFILER" ] && configs="$configs gperftools"
i=0
while [ $i -lt "$RUNS" ]; do
    for c in $configs; do one $c; done
    i=$((i + 1))
done

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
pw=$(awk '$1 == "plain" { print $2 }' "$TMP/runs" | median)
pc=$(awk '$1 == "plain" { print $3 }' "$TMP/runs" | median)
printf '%-11s %9s %9s %9s %9s  %s\n' config wall_s cpu_s wall/plain cpu/plain "status, output identical, profile written (per run)"
for c in $configs; do
    w=$(awk -v c=$c '$1 == c { print $2 }' "$TMP/runs" | median)
    u=$(awk -v c=$c '$1 == c { print $3 }' "$TMP/runs" | median)
    detail=$(awk -v c=$c '$1 == c { printf "%s/%s/%s ", $4, $5, $6 }' "$TMP/runs")
    printf '%-11s %9s %9s %9.3f %9.3f  %s\n' "$c" "$w" "$u" \
        "$(echo "$w $pw" | awk '{ print $1 / $2 }')" \
        "$(echo "$u $pc" | awk '{ print $1 / $2 }')" "$detail"
done
