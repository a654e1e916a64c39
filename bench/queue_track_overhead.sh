#!/usr/bin/env bash
# The hot-path cost of the queue_track backend, side by side on this machine:
#   1. `perf bench sched pipe` without and with the programs attached (all CPUs monitored),
#      alternating runs, ratio of the means (target <= 1.02);
#   2. one run with kernel.bpf_stats_enabled=1: run count and mean ns per program (the stats
#      themselves add two clock reads per run, so these are upper bounds).
# Needs root and perf (Debian: linux-perf). Usage: bench/queue_track_overhead.sh [RUNS] [LOOPS]
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-7}
loops=${2:-200000}
[ "$(id -u)" -eq 0 ] || { echo "queue_track_overhead: needs root (loads BPF)" >&2; exit 1; }
command -v perf >/dev/null || { echo "queue_track_overhead: needs perf (apt install linux-perf)" >&2; exit 1; }

cargo build --release --quiet --example queue_track_load
load=target/release/examples/queue_track_load

# No starvation test may run meanwhile: its RT hog would make the numbers meaningless.
exec 9>>/tmp/stalld-starvation.lock
flock 9

stats_at_start=$(cat /proc/sys/kernel/bpf_stats_enabled)
trap 'echo "$stats_at_start" > /proc/sys/kernel/bpf_stats_enabled' EXIT
echo 0 > /proc/sys/kernel/bpf_stats_enabled

pipe() { "$@" perf bench sched pipe -l "$loops" 2>/dev/null | awk '/usecs\/op/ { print $1 }'; }

off=() on=()
for ((i = 1; i <= runs; i++)); do
    off+=("$(pipe)")
    on+=("$(pipe timeout 600 "$load" all --)")
    printf 'run %d: without %s us/op, with %s us/op\n' "$i" "${off[-1]}" "${on[-1]}"
done
printf '%s\n' "${off[@]}" > /tmp/qt_off.$$
printf '%s\n' "${on[@]}" > /tmp/qt_on.$$
summary() { sort -g "$1" | awk '{ v[NR] = $1; s += $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "mean %.3f median %.3f min %.3f max %.3f", s / NR, m, v[1], v[NR] }'; }
echo "without queue_track: $(summary /tmp/qt_off.$$) us/op"
echo "with queue_track:    $(summary /tmp/qt_on.$$) us/op"
paste /tmp/qt_off.$$ /tmp/qt_on.$$ | awk '{ a += $1; b += $2; n++ } END {
    printf "ratio of means (with/without): %.4f over %d alternating runs of each\n", b / a, n }'
rm -f /tmp/qt_off.$$ /tmp/qt_on.$$

echo
echo "per-program cost (kernel.bpf_stats_enabled=1, one run of $loops loops):"
echo 1 > /proc/sys/kernel/bpf_stats_enabled
timeout 600 "$load" all -- perf bench sched pipe -l "$loops" 2>/dev/null | grep '^qt_'
