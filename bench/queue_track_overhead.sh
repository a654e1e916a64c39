#!/usr/bin/env bash
# The hot-path cost of the queue_track backend, side by side on this machine:
#   1. `perf bench sched pipe` without and with the programs attached (all CPUs monitored),
#      alternating runs, ratio of the means and of the medians (target <= 1.02);
#   2. one run with kernel.bpf_stats_enabled=1: run count and mean ns per program. The stats
#      add two clock reads per run (~80 ns on the dev VM for an empty program), so these are
#      upper bounds of the program bodies; the tracepoint dispatch itself is not included.
#
# By default the pipe pair runs as SCHED_FIFO 1 on the last CPU: nothing else on the machine
# can interleave with it, which makes a 1-2 % difference measurable on a busy shared VM
# (plain CFS runs there vary by 2x). It is bounded (timeout, short runs under the RT
# throttle) and holds the starvation flock, like every starvation experiment.
# MODE=plain runs the stock unpinned `perf bench sched pipe` instead.
#
# Needs root and perf (Debian: linux-perf). Usage: bench/queue_track_overhead.sh [RUNS] [LOOPS]
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-10}
loops=${2:-20000}
mode=${MODE:-fifo}
[ "$(id -u)" -eq 0 ] || { echo "queue_track_overhead: needs root (loads BPF)" >&2; exit 1; }
command -v perf >/dev/null || { echo "queue_track_overhead: needs perf (apt install linux-perf)" >&2; exit 1; }

cargo build --release --quiet --example queue_track_load
load=target/release/examples/queue_track_load
last_cpu=$(($(nproc --all) - 1))

# No starvation test may run meanwhile: its RT hog would make the numbers meaningless.
exec 9>>/tmp/stalld-starvation.lock
flock 9

stats_at_start=$(cat /proc/sys/kernel/bpf_stats_enabled)
tmp=$(mktemp -d)
loader=
cleanup() {
    [ -z "$loader" ] || kill "$loader" 2>/dev/null || true
    echo "$stats_at_start" > /proc/sys/kernel/bpf_stats_enabled
    rm -rf "$tmp"
}
trap cleanup EXIT
echo 0 > /proc/sys/kernel/bpf_stats_enabled

bench_cmd=(perf bench sched pipe -l "$loops")
[ "$mode" = plain ] || bench_cmd=(chrt -f 1 taskset -c "$last_cpu" "${bench_cmd[@]}")
pipe() { timeout 60 "${bench_cmd[@]}" 2>/dev/null | awk '/usecs\/op/ { print $1 }'; }
# Loaded in the background, so its own start-up (BPF verification) is not timed.
attach() {
    timeout 900 "$load" all 900 >/dev/null 2>"$tmp/load.log" &
    loader=$!
    until grep -q loaded "$tmp/load.log"; do
        kill -0 "$loader" 2>/dev/null || { cat "$tmp/load.log" >&2; exit 1; }
        sleep 0.05
    done
}
detach() { kill "$loader"; wait "$loader" 2>/dev/null || true; loader=; }

echo "mode $mode, $runs alternating runs of $loops loops each"
for ((i = 1; i <= runs; i++)); do
    pipe >> "$tmp/off"
    attach
    pipe >> "$tmp/on"
    detach
    printf 'run %d: without %s us/op, with %s us/op\n' "$i" "$(tail -1 "$tmp/off")" "$(tail -1 "$tmp/on")"
done
stats() { sort -g "$1" | awk '{ v[NR] = $1; s += $1 } END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    printf "mean %.3f median %.3f min %.3f max %.3f", s / NR, m, v[1], v[NR] }'; }
echo "without queue_track: $(stats "$tmp/off") us/op"
echo "with queue_track:    $(stats "$tmp/on") us/op"
mean() { awk '{ s += $1 } END { print s / NR }' "$1"; }
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
awk -v a="$(mean "$tmp/on")" -v b="$(mean "$tmp/off")" -v c="$(median "$tmp/on")" -v d="$(median "$tmp/off")" \
    'BEGIN { printf "ratio with/without: means %.4f, medians %.4f\n", a / b, c / d }'

echo
echo "per-program cost (kernel.bpf_stats_enabled=1, one run of $loops loops):"
echo 1 > /proc/sys/kernel/bpf_stats_enabled
# With a command the loader runs it while attached, then prints its programs' counters.
timeout 120 "$load" all -- timeout 60 "${bench_cmd[@]}" 2>/dev/null | grep '^qt_'
