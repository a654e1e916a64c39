#!/usr/bin/env bash
# Fuzzes the sched_debug parser for a bounded time: fuzz/run.sh [SECONDS] (default 60).
# Needs neither cargo-fuzz nor a nightly toolchain: no sanitizer is used, so
# a finding is a panic, a timeout, an out-of-memory or a broken guarantee, not a memory error
# (the parser has no unsafe code). Seeds are the saved sched_debug fixtures. Exits non-zero
# on a finding; the crashing input is left under fuzz/artifacts/.
# fuzz/run.sh --build-only builds the target and stops (CI builds it while its end-to-end
# tests leave the CPUs idle; the run then starts at once).
set -euo pipefail
seconds=${1:-60}
cd "$(dirname "$0")"

# Built as `cargo fuzz build --sanitizer none` builds it (the same coverage instrumentation,
# `--cfg fuzzing`, debug assertions and overflow checks, for the target triple only so that
# build scripts and proc macros stay uninstrumented), without installing cargo-fuzz: on a
# fresh CI machine compiling cargo-fuzz itself took most of this step's time.
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
    cargo build --release --target "$triple" --bin sched_debug
fuzzer=target/$triple/release/sched_debug
if [ "$seconds" = --build-only ]; then
    exit 0
fi

corpus=corpus/sched_debug
mkdir -p "$corpus"
cp ../tests/data/sched_debug/*.txt "$corpus"/

# -max_len: the largest real fixture is ~30 KB; bigger inputs only slow the search down.
# FUZZ_MAX_LEN trades depth for speed (16384 still holds a whole 6.18 CPU section).
max_len=${FUZZ_MAX_LEN:-65536}
# -timeout/-rss_limit_mb turn a hang or runaway allocation into a finding.
mkdir -p artifacts/sched_debug
exec "$fuzzer" -artifact_prefix=artifacts/sched_debug/ "$corpus" \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1
