#!/usr/bin/env bash
# Fuzzes the sched_debug parser for a bounded time: fuzz/run.sh [SECONDS] (default 60).
# Installs cargo-fuzz if it is missing. Needs no nightly toolchain: no sanitizer is used, so
# a finding is a panic, a timeout, an out-of-memory or a broken guarantee, not a memory error
# (the parser has no unsafe code). Seeds are the saved sched_debug fixtures. Exits non-zero
# on a finding; the crashing input is left under fuzz/artifacts/.
# fuzz/run.sh --build-only installs cargo-fuzz and builds the target, and stops (CI builds
# them while its end-to-end tests leave the CPUs idle; the run then starts at once).
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
if [ "$seconds" = --build-only ]; then
    exec cargo fuzz build --sanitizer none sched_debug
fi

corpus=corpus/sched_debug
mkdir -p "$corpus"
cp ../tests/data/sched_debug/*.txt "$corpus"/

# -max_len: the largest real fixture is ~30 KB; bigger inputs only slow the search down.
# FUZZ_MAX_LEN trades depth for speed (16384 still holds a whole 6.18 CPU section).
max_len=${FUZZ_MAX_LEN:-65536}
# -timeout/-rss_limit_mb turn a hang or runaway allocation into a finding.
exec cargo fuzz run --sanitizer none sched_debug "$corpus" -- \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1
