#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""stalld's backends and stamp sources side by side in one run on this machine.

Configurations: "default" (queue_track with the kernel's sched_info stamps), "tracepoints"
(queue_track with STALLD_QUEUE_TRACK_STAMPS=tracepoints) and "sched_debug" (-b sched_debug).
stalld runs as deployed: SCHED_FIFO 10 (the unit's chrt) on a housekeeping CPU (-a 0).

(a) detection: how long a starving SCHED_FIFO victim waits beyond a 3 s threshold
    (stalld -t 3 -d 1, default granularity), episodes interleaved: each episode round runs
    every configuration once, with a fresh daemon (target: median <= 20 ms, max <= 50 ms);
(b) idle cost: the daemon's CPU time over a window with 2,000 extra sleeping threads and no
    starvation (defaults: -t 20 -g 5), from /proc/PID/schedstat (nanoseconds on CPU);
(c) scan cost: the time of one check (one task-iterator run, what queue_track does at every
    check) with 1,000, 10,000 and 50,000 threads in the system, per stamp source, as ns per
    check and per task (examples/queue_track_load --scan-cost, SCHED_FIFO 10 on CPU 0).
    kernel.pid_max is raised for the 50,000 threads if needed and put back.
The hot-path cost (perf bench sched pipe, cyclictest) is bench/hot_path.py.

Needs root; builds the release binaries; holds the starvation lock for the whole run; pins
hogs to the last CPU; leaves debugfs/securityfs as it found them.
Usage: bench/backends.py [--episodes N] [--idle-seconds S] [--only detection|idle|scan]
"""
import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

from common import DAEMONS, ROOT, Daemon, env_for, rotated, starvation_lock

STARVE = os.path.join(ROOT, "target/release/stalld-starve")
LOAD = os.path.join(ROOT, "target/release/examples/queue_track_load")
PID_MAX = "/proc/sys/kernel/pid_max"
THRESHOLD = 3.0
SCAN_THREADS = (1000, 10000, 50000)


def episode(last_cpu):
    out = subprocess.run(
        ["timeout", "40", STARVE, "--cpu", str(last_cpu), "--duration", "25"],
        capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        event = json.loads(line)
        if event["event"] == "victim_ran":
            return event["wait_s"] - THRESHOLD
        if event["event"] == "victim_starved":
            return float("inf")
    sys.exit("no victim event:\n" + out)


def detection(episodes, last_cpu):
    names = list(DAEMONS)
    results = {config: [] for config in names}
    for e in range(episodes):
        for config in rotated(names, e):
            daemon = Daemon(config, ["-t", "3", "-d", "1", "-c", str(last_cpu)])
            try:
                results[config].append(episode(last_cpu))
            finally:
                daemon.stop()
        print(f"  episode {e + 1}/{episodes}: " + ", ".join(
            f"{c} {results[c][-1] * 1000:.1f} ms" for c in names), flush=True)
    return results


def cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def system_tasks():
    """Threads in the whole system: what the task iterator visits."""
    return sum(len(os.listdir(f"/proc/{pid}/task")) for pid in os.listdir("/proc")
               if pid.isdigit() and os.path.isdir(f"/proc/{pid}/task"))


@contextlib.contextmanager
def sleepers(count):
    """`count` extra sleeping threads, at most 10,000 per process (each thread stack is a
    few memory mappings, and vm.max_map_count caps a process at 65,530)."""
    procs = []
    try:
        while count > 0:
            n = min(count, 10000)
            proc = subprocess.Popen(
                [sys.executable, "-c",
                 "import sys,threading,time\n"
                 "threading.stack_size(65536)\n"
                 "[threading.Thread(target=time.sleep,args=(3600,),daemon=True).start()"
                 " for _ in range(int(sys.argv[1]))]\n"
                 "print('ready',flush=True); time.sleep(3600)", str(n)],
                stdout=subprocess.PIPE, text=True)
            procs.append(proc)
            if proc.stdout.readline().strip() != "ready":
                sys.exit("starting sleeping threads failed (pid_max, threads-max?)")
            count -= n
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def idle_cost(seconds):
    results = {}
    with sleepers(2000):
        for config in DAEMONS:
            daemon = Daemon(config)
            try:
                pid = daemon.pid
                time.sleep(1)  # start-up (BPF verification, first parse) is not measured
                before = cpu_ns(pid)
                time.sleep(seconds)
                results[config] = cpu_ns(pid) - before
            finally:
                daemon.stop()
            print(f"  idle {config}: {results[config] / 1e6:.3f} ms", flush=True)
    return results


def scan_cost():
    results = {}
    with open(PID_MAX) as f:
        pid_max = f.read().strip()
    try:
        needed = max(SCAN_THREADS) * 2
        if int(pid_max) < needed:
            with open(PID_MAX, "w") as f:
                f.write(str(needed))
        for threads in SCAN_THREADS:
            with sleepers(threads - system_tasks()):
                for stamps in ("sched_info", "tracepoints"):
                    out = subprocess.run(
                        ["timeout", "600", "chrt", "-f", "10", "taskset", "-c", "0", LOAD,
                         "all", "--scan-cost=50"],
                        capture_output=True, text=True, check=True, env=env_for(stamps)).stdout
                    result = json.loads(out.strip().splitlines()[-1])
                    results[(threads, stamps)] = result
                    print(f"  scan {result['tasks']} threads, {stamps}: "
                          f"{result['median_ns'] / 1e6:.3f} ms, "
                          f"{result['ns_per_task']:.0f} ns/task", flush=True)
    finally:
        with open(PID_MAX, "w") as f:
            f.write(pid_max)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--only", choices=["detection", "idle", "scan"])
    opts = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/backends.py: needs root")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bins", "--example",
                    "queue_track_load"], cwd=ROOT, check=True)
    last_cpu = os.cpu_count() - 1
    waits = cost = scans = None
    with starvation_lock():
        if opts.only in (None, "detection"):
            waits = detection(opts.episodes, last_cpu)
        if opts.only in (None, "idle"):
            cost = idle_cost(opts.idle_seconds)
        if opts.only in (None, "scan"):
            scans = scan_cost()

    print(f"\nmachine: {os.uname().release}, {os.cpu_count()} CPUs")
    if waits:
        print(f"(a) wait beyond a {THRESHOLD:.0f} s threshold, {opts.episodes} interleaved "
              "episodes each (ms):")
        print(f"    {'config':<12} {'median':>9} {'max':>9}  all")
        for config, values in waits.items():
            ms = [v * 1000 for v in values]
            print(f"    {config:<12} {statistics.median(ms):9.1f} {max(ms):9.1f}  "
                  + " ".join(f"{v:.1f}" for v in ms))
    if cost:
        print(f"(b) daemon CPU time over {opts.idle_seconds:.0f} s with 2,000 sleeping threads, "
              "no starvation:")
        for config, ns in cost.items():
            print(f"    {config:<12} {ns / 1e6:9.3f} ms  (ratio to sched_debug "
                  f"{ns / max(cost['sched_debug'], 1):.4f})")
    if scans:
        print("(c) one check (task-iterator run), median of 50:")
        print(f"    {'threads':>8} {'stamps':<12} {'ms/check':>9} {'ns/task':>8}")
        for (threads, stamps), result in scans.items():
            print(f"    {result['tasks']:>8} {stamps:<12} {result['median_ns'] / 1e6:9.3f} "
                  f"{result['ns_per_task']:8.0f}")


if __name__ == "__main__":
    main()
