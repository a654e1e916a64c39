#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What stalld costs the scheduler's hot path, side by side in one run on this machine.

(a) `perf bench sched pipe`, pinned (both processes SCHED_FIFO 1 on the last CPU: nothing
    else interleaves, so a 1 % difference is measurable on a busy shared VM) and unpinned
    (stock, cross-CPU wakeups), for: no daemon, stalld default (queue_track with the kernel's
    sched_info stamps), stalld with the tracepoint stamps forced
    (STALLD_QUEUE_TRACK_STAMPS=tracepoints), and stalld -b sched_debug. Ratios of medians to
    no daemon, and default / sched_debug (target <= 1.01: no measurable hot-path cost).
(b) cyclictest (Debian rt-tests) on the last CPU, SCHED_FIFO 95, 1 ms interval: max and
    percentiles without a daemon, with the default, with the tracepoint stamps.
(c) what runs on the hot path, free of the machine's noise: one pinned pipe run with each
    stamp source loaded (examples/queue_track_load) and kernel.bpf_stats_enabled=1 (restored
    afterwards): how often each of stalld's programs ran and for how long. The stats add two
    clock reads per run and leave out the tracepoint dispatch itself, so these bound the
    program bodies, not the whole cost.

Rounds are interleaved: every round runs every configuration once, in an order that rotates
from round to round, so that the machine's background load (other jobs on this shared VM)
falls on all of them alike. stalld runs as deployed: SCHED_FIFO 10 (the unit's chrt) on a
housekeeping CPU (-a 0), all CPUs monitored, default thresholds.

RT throttling is off (sched_rt_runtime_us = -1) for every row, as under stalld's systemd unit:
otherwise the pinned pipe pair would be throttled in some rows and not in others. It is put
back at the end, whatever happens. Everything runs under the starvation lock (the pinned pair
and cyclictest own the last CPU), bounded by timeouts.

Needs root, perf (linux-perf) and cyclictest (rt-tests, installed here if missing).
Usage: bench/hot_path.py [--rounds N] [--loops N] [--cyclictest-rounds N]
                         [--cyclictest-seconds S] [--only pipe|cyclictest|programs]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from common import DAEMONS, ROOT, Daemon, env_for, rotated, starvation_lock

RT_RUNTIME = "/proc/sys/kernel/sched_rt_runtime_us"
BPF_STATS = "/proc/sys/kernel/bpf_stats_enabled"
LOAD = os.path.join(ROOT, "target/release/examples/queue_track_load")
PIPE_CONFIGS = ["none", "default", "tracepoints", "sched_debug"]
CYCLIC_CONFIGS = ["none", "default", "tracepoints"]
SETTLE_S = 1.0


def with_daemon(name, measure):
    daemon = Daemon(name) if name in DAEMONS else None
    # Its start-up (BPF verification, first scan, RT throttling, guardian) is not measured.
    time.sleep(SETTLE_S)
    try:
        return measure()
    finally:
        if daemon:
            daemon.stop()


def pipe_once(loops, last_cpu, pinned):
    cmd = ["perf", "bench", "sched", "pipe", "-l", str(loops)]
    if pinned:
        cmd = ["chrt", "-f", "1", "taskset", "-c", str(last_cpu), *cmd]
    out = subprocess.run(["timeout", "120", *cmd], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "usecs/op" in line:
            return float(line.split()[0])
    sys.exit("no usecs/op in perf's output:\n" + out)


def pipe(rounds, loops, last_cpu):
    results = {(c, p): [] for c in PIPE_CONFIGS for p in ("pinned", "unpinned")}
    for r in range(rounds):
        for config in rotated(PIPE_CONFIGS, r):
            def measure():
                return pipe_once(loops, last_cpu, True), pipe_once(loops, last_cpu, False)
            pinned, unpinned = with_daemon(config, measure)
            results[(config, "pinned")].append(pinned)
            results[(config, "unpinned")].append(unpinned)
        print(f"  pipe round {r + 1}/{rounds}: " + ", ".join(
            f"{c} {results[(c, 'pinned')][-1]:.3f}/{results[(c, 'unpinned')][-1]:.3f}"
            for c in PIPE_CONFIGS) + " us/op (pinned/unpinned)", flush=True)
    return results


def cyclictest_once(seconds, last_cpu):
    cmd = ["cyclictest", "-q", "-m", "-p", "95", "-a", str(last_cpu), "-t", "1", "-i", "1000",
           "-D", str(seconds), "-h", "2000"]
    out = subprocess.run(["timeout", str(seconds + 60), *cmd], capture_output=True, text=True,
                         check=True).stdout
    hist, maximum = {}, None
    for line in out.splitlines():
        if line.startswith("# Max Latencies:"):
            maximum = int(line.split(":")[1].split()[0])
        elif line and line[0].isdigit():
            bucket, count = line.split()[:2]
            if int(count):
                hist[int(bucket)] = int(count)
    if maximum is None:
        sys.exit("no '# Max Latencies' in cyclictest's output:\n" + out[-2000:])
    return hist, maximum


def percentile(hist, q):
    total = sum(hist.values())
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= q * total:
            return bucket
    return max(hist) if hist else 0


def cyclictest(rounds, seconds, last_cpu):
    results = {c: {"hist": {}, "maxima": []} for c in CYCLIC_CONFIGS}
    for r in range(rounds):
        for config in rotated(CYCLIC_CONFIGS, r):
            hist, maximum = with_daemon(config, lambda: cyclictest_once(seconds, last_cpu))
            merged = results[config]["hist"]
            for bucket, count in hist.items():
                merged[bucket] = merged.get(bucket, 0) + count
            results[config]["maxima"].append(maximum)
        print(f"  cyclictest round {r + 1}/{rounds}: max " + ", ".join(
            f"{c} {results[c]['maxima'][-1]} us" for c in CYCLIC_CONFIGS), flush=True)
    return results


def programs(loops, last_cpu):
    """{stamps: (us/op, {program: (runs, ns)})} for one pinned pipe run with that source."""
    pipe_cmd = ["timeout", "120", "chrt", "-f", "1", "taskset", "-c", str(last_cpu),
                "perf", "bench", "sched", "pipe", "-l", str(loops)]
    with open(BPF_STATS) as f:
        saved = f.read().strip()
    results = {}
    try:
        with open(BPF_STATS, "w") as f:
            f.write("1")
        for stamps in ("sched_info", "tracepoints"):
            out = subprocess.run(["timeout", "300", LOAD, "all", "--", *pipe_cmd],
                                 capture_output=True, text=True, check=True,
                                 env=env_for(stamps)).stdout
            usecs, progs = None, {}
            for line in out.splitlines():
                words = line.split()
                if "usecs/op" in line:
                    usecs = float(words[0])
                elif words and words[0].startswith("qt_"):
                    progs[words[0]] = (int(words[2]), int(words[4]))
            results[stamps] = (usecs, progs)
    finally:
        with open(BPF_STATS, "w") as f:
            f.write(saved)
    return results


def ensure_tools(need_cyclictest):
    if not shutil.which("perf"):
        sys.exit("bench/hot_path.py: needs perf (apt-get install linux-perf)")
    if need_cyclictest and not shutil.which("cyclictest"):
        print("installing rt-tests (cyclictest)", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "rt-tests"], check=True, env=env,
                       stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--loops", type=int, default=100000)
    parser.add_argument("--cyclictest-rounds", type=int, default=3)
    parser.add_argument("--cyclictest-seconds", type=int, default=30)
    parser.add_argument("--only", choices=["pipe", "cyclictest", "programs"])
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/hot_path.py: needs root")
    ensure_tools(opts.only in (None, "cyclictest"))
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "stalld", "--example",
                    "queue_track_load"], cwd=ROOT, check=True)
    last_cpu = os.cpu_count() - 1
    pipe_results = cyclic_results = program_results = None
    with starvation_lock():
        with open(RT_RUNTIME) as f:
            saved = f.read().strip()
        try:
            with open(RT_RUNTIME, "w") as f:
                f.write("-1")
            if opts.only in (None, "pipe"):
                pipe_results = pipe(opts.rounds, opts.loops, last_cpu)
            if opts.only in (None, "cyclictest"):
                cyclic_results = cyclictest(opts.cyclictest_rounds, opts.cyclictest_seconds,
                                            last_cpu)
            if opts.only in (None, "programs"):
                program_results = programs(opts.loops, last_cpu)
        finally:
            with open(RT_RUNTIME, "w") as f:
                f.write(saved)

    print(f"\nmachine: {os.uname().release}, {os.cpu_count()} CPUs; last CPU {last_cpu}")
    if pipe_results:
        print(f"(a) perf bench sched pipe, {opts.loops} loops, {opts.rounds} interleaved rounds: "
              "median us/op (ratio to no daemon)")
        print(f"    {'placement':<10}" + "".join(f"{c:>22}" for c in PIPE_CONFIGS)
              + f"{'default/sched_debug':>22}")
        for placement in ("pinned", "unpinned"):
            med = {c: statistics.median(pipe_results[(c, placement)]) for c in PIPE_CONFIGS}
            cells = "".join(f"{med[c]:>13.3f} ({med[c] / med['none']:.3f})" for c in PIPE_CONFIGS)
            print(f"    {placement:<10}{cells}{med['default'] / med['sched_debug']:>22.3f}")
        # Slow swings of the host's load fall on a whole round; the ratio within each round
        # (runs seconds apart) cancels them, so its median is the steadier figure.
        print("    median of the per-round ratios (each round's runs are seconds apart):")
        for placement in ("pinned", "unpinned"):
            runs = {c: pipe_results[(c, placement)] for c in PIPE_CONFIGS}
            def ratio(a, b):
                return statistics.median(x / y for x, y in zip(runs[a], runs[b]))
            cells = "".join(f"{'':>13} ({ratio(c, 'none'):.3f})" for c in PIPE_CONFIGS)
            print(f"    {placement:<10}{cells}{ratio('default', 'sched_debug'):>22.3f}")
    if cyclic_results:
        total = opts.cyclictest_rounds * opts.cyclictest_seconds
        print(f"(b) cyclictest -p 95 -i 1000 on CPU {last_cpu}, {opts.cyclictest_rounds} "
              f"interleaved rounds of {opts.cyclictest_seconds} s ({total} s per configuration), us:")
        print(f"    {'config':<12}{'p50':>6}{'p99':>6}{'p99.9':>7}{'max':>6}  max per round")
        for config in CYCLIC_CONFIGS:
            res = cyclic_results[config]
            hist = res["hist"]
            print(f"    {config:<12}{percentile(hist, 0.5):>6}{percentile(hist, 0.99):>6}"
                  f"{percentile(hist, 0.999):>7}{max(res['maxima']):>6}  "
                  + " ".join(str(m) for m in res["maxima"]))

    if program_results:
        print(f"(c) stalld's programs during one pinned pipe run of {opts.loops} loops "
              f"({2 * opts.loops} context switches), kernel.bpf_stats_enabled=1:")
        for stamps, (usecs, progs) in program_results.items():
            hot = {name: v for name, v in progs.items() if not name.startswith("qt_scan")}
            runs = sum(r for r, _ in hot.values())
            ns = sum(t for _, t in hot.values())
            print(f"    {stamps:<12} loaded: {', '.join(sorted(progs)) or 'none'}")
            print(f"    {'':<12} on the hot path: {runs} runs, {ns / 1e6:.1f} ms in all, "
                  f"{ns / opts.loops:.0f} ns per pipe round trip of {usecs:.3f} us")
            for name, (r, t) in sorted(hot.items()):
                print(f"    {'':<14}{name:<16} {r:>9} runs  {t / max(r, 1):7.1f} ns each")


if __name__ == "__main__":
    main()
