#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""sched_debug's worst-case detection: how long a starving victim waits when its hog starts at
a random moment of a poll window on an otherwise idle CPU, with idle detection on (the
default) and the default granularity (5 s), threshold 3 s.

The C stalld's rule (skip a poll when the CPU had idle time since the last one) misses a hog
that starts mid-window for one more poll: up to threshold + 2 x granularity. stalld samples
/proc/stat every second and looks at a CPU within one granularity of its last idle moment:
bound threshold + granularity + 1 s.

Each episode starts a fresh daemon (so the poll phase is known), waits one granularity plus a
uniformly random part of the next one, then starts the hog and victim on the last CPU.
With --baseline PATH (e.g. a build of an older commit, or the C stalld) the two binaries'
episodes are interleaved, so both see the same machine.

Needs root; holds the starvation lock for the whole run; the daemon runs as deployed
(SCHED_FIFO 10 on CPU 0).
Usage: bench/sched_debug_worst_case.py [--episodes N] [--stalld PATH] [--baseline PATH]
"""
import argparse
import fcntl
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THRESHOLD = 3.0
GRANULARITY = 5.0
BOUND = THRESHOLD + GRANULARITY + 1.0


def start_daemon(binary, last_cpu):
    daemon = subprocess.Popen(
        ["timeout", "120", "chrt", "-f", "10", binary, "-f", "-v", "-a", "0", "-b", "sched_debug",
         "-t", str(int(THRESHOLD)), "-d", "1", "-c", str(last_cpu)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in daemon.stderr:
        if "using sched_debug backend" in line:
            break
    else:
        sys.exit(f"{binary} did not start")
    started = time.monotonic()
    threading.Thread(target=lambda: [None for _ in daemon.stderr], daemon=True).start()
    return daemon, started


def episode(binary, starve, last_cpu, rng):
    daemon, started = start_daemon(binary, last_cpu)
    try:
        offset = GRANULARITY + rng.uniform(0.0, GRANULARITY)
        time.sleep(max(0.0, started + offset - time.monotonic()))
        out = subprocess.run(
            ["timeout", "60", starve, "--cpu", str(last_cpu), "--duration", "30"],
            capture_output=True, text=True, check=True).stdout
    finally:
        daemon.terminate()
        daemon.wait(timeout=20)
    for line in out.splitlines():
        event = json.loads(line)
        if event["event"] == "victim_ran":
            return offset - GRANULARITY, event["wait_s"]
        if event["event"] == "victim_starved":
            return offset - GRANULARITY, float("inf")
    sys.exit("no victim event:\n" + out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--stalld", default=os.path.join(ROOT, "target/release/stalld"))
    parser.add_argument("--baseline")
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/sched_debug_worst_case.py: needs root")
    if args.episodes < 5:
        sys.exit("at least 5 episodes")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bins"], cwd=ROOT, check=True)
    starve = os.path.join(ROOT, "target/release/stalld-starve")
    binaries = {"stalld": args.stalld}
    if args.baseline:
        binaries["baseline"] = args.baseline
    last_cpu = os.cpu_count() - 1
    rng = random.Random(args.seed)
    results = {name: [] for name in binaries}
    with open("/tmp/stalld-starvation.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for _ in range(args.episodes):
            # The same jitter for both binaries in a round.
            seed = rng.random()
            for name, binary in binaries.items():
                results[name].append(episode(binary, starve, last_cpu, random.Random(seed)))

    print(f"victim's wait, hog started a random part of a {GRANULARITY:.0f} s window after an "
          f"idle poll; threshold {THRESHOLD:.0f} s; bound {BOUND:.0f} s (threshold + g + 1 s)")
    print(f"    {'binary':<9} {'median':>7} {'max':>7} {'beyond t':>9}  all (hog offset in window -> wait)")
    for name, values in results.items():
        waits = [w for _, w in values]
        episodes = " ".join(f"{o:.1f}->{w:.2f}" for o, w in values)
        print(f"    {name:<9} {statistics.median(waits):7.2f} {max(waits):7.2f} "
              f"{max(waits) - THRESHOLD:9.2f}  {episodes}")
    if "baseline" in results:
        ratio = max(w for _, w in results["baseline"]) / max(w for _, w in results["stalld"])
        print(f"    worst case baseline/stalld: {ratio:.2f}x")
    worst = max(w for _, w in results["stalld"])
    print(f"    stalld within the bound: {'yes' if worst <= BOUND else 'NO'}")


if __name__ == "__main__":
    main()
