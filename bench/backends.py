#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""queue_track against sched_debug, side by side in one run on this machine.

(a) detection: how long a starving SCHED_FIFO victim waits beyond the threshold, over several
    starvation episodes per backend (stalld -t 3 -d 1, default granularity);
Both run stalld as deployed: SCHED_FIFO 10 (the unit's chrt) on a housekeeping CPU (-a 0).
(b) idle cost: the daemon's CPU time over a window with 2,000 extra sleeping threads and no
    starvation (defaults: -t 20 -g 5), from /proc/PID/schedstat (nanoseconds on CPU);
The hot-path cost (perf bench sched pipe) is bench/queue_track_overhead.sh.

Needs root; builds the release binaries; holds the starvation lock; pins hogs to the last CPU.
Usage: bench/backends.py [EPISODES] [IDLE_SECONDS]
"""
import fcntl
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STALLD = os.path.join(ROOT, "target/release/stalld")
STARVE = os.path.join(ROOT, "target/release/stalld-starve")
THRESHOLD = 3.0
BACKENDS = ("queue_track", "sched_debug")


def start_daemon(backend, args):
    # As deployed: SCHED_FIFO 10 like the systemd unit's ExecStartPost, on a housekeeping CPU
    # (-a 0), never behind the hog it is there to watch.
    daemon = subprocess.Popen(
        ["timeout", "600", "chrt", "-f", "10", STALLD, "-f", "-v", "-a", "0", "-b", backend, *args],
        stderr=subprocess.PIPE, text=True)
    for line in daemon.stderr:
        if f"using {backend} backend" in line:
            break
    else:
        sys.exit(f"stalld -b {backend} did not start")
    # Keep draining its log so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in daemon.stderr], daemon=True).start()
    return daemon


def stop(daemon):
    daemon.terminate()
    daemon.wait(timeout=20)


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
    results = {}
    for backend in BACKENDS:
        daemon = start_daemon(backend, ["-t", "3", "-d", "1", "-c", str(last_cpu)])
        results[backend] = [episode(last_cpu) for _ in range(episodes)]
        stop(daemon)
    return results


def cpu_ns(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def stalld_pid(timeout_pid):
    with open(f"/proc/{timeout_pid}/task/{timeout_pid}/children") as f:
        return int(f.read().split()[0])


def idle_cost(seconds):
    sleepers = subprocess.Popen(
        [sys.executable, "-c",
         "import threading,time\n"
         "[threading.Thread(target=time.sleep,args=(3600,),daemon=True).start() for _ in range(2000)]\n"
         "print('ready',flush=True); time.sleep(3600)"],
        stdout=subprocess.PIPE, text=True)
    sleepers.stdout.readline()
    results = {}
    try:
        for backend in BACKENDS:
            daemon = start_daemon(backend, [])
            pid = stalld_pid(daemon.pid)
            time.sleep(1)  # start-up (BPF verification, first parse) is not the steady state
            before = cpu_ns(pid)
            time.sleep(seconds)
            results[backend] = cpu_ns(pid) - before
            stop(daemon)
    finally:
        sleepers.kill()
    return results


def main():
    if os.geteuid() != 0:
        sys.exit("bench/backends.py: needs root")
    episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bins"], cwd=ROOT, check=True)
    last_cpu = os.cpu_count() - 1
    with open("/tmp/stalld-starvation.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        waits = detection(episodes, last_cpu)
        cost = idle_cost(seconds)

    print(f"(a) wait beyond a {THRESHOLD:.0f} s threshold, {episodes} episodes each (ms):")
    print(f"    {'backend':<12} {'median':>9} {'max':>9}  all")
    for backend, values in waits.items():
        ms = [v * 1000 for v in values]
        print(f"    {backend:<12} {statistics.median(ms):9.1f} {max(ms):9.1f}  "
              + " ".join(f"{v:.1f}" for v in ms))
    print(f"    ratio sched_debug/queue_track of medians: "
          f"{statistics.median(waits['sched_debug']) / max(statistics.median(waits['queue_track']), 1e-9):.0f}x")
    print(f"(b) daemon CPU time over {seconds:.0f} s with 2,000 sleeping threads, no starvation:")
    for backend, ns in cost.items():
        print(f"    {backend:<12} {ns / 1e6:9.3f} ms")
    print(f"    ratio queue_track/sched_debug: {cost['queue_track'] / max(cost['sched_debug'], 1):.4f}")


if __name__ == "__main__":
    main()
