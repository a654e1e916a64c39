#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The load scenario: 10,000 extra threads and 100 victims starving at once behind one hog.

Per round: stalld (release, default backend, -t 3 -d 1 -c LAST) runs as deployed, SCHED_FIFO
10 (the unit's chrt) on a housekeeping CPU (-a 0); stalld-starve starts 10,000 sleeping threads
pinned to the last CPU, then 100 SCHED_FIFO 5 victims that become runnable at the same instant
behind a SCHED_FIFO 10 hog there. Prints, per round and over all rounds, how long each victim
waited beyond the threshold (target: all within 100 ms; the C stalld boosts one task per CPU
per cycle), whether every boost ended in a restore, whether RT throttling came back, and the
daemon's CPU time over the round.

Needs root; builds the release binaries; holds the starvation lock (flock
/tmp/stalld-starvation.lock) for the whole run; hogs only on the last CPU, bounded by
stalld-starve's --duration and by `timeout`.
Usage: bench/load.py [ROUNDS] [VICTIMS] [IDLE_THREADS]   (defaults 3 100 10000)
"""
import fcntl
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STALLD = os.path.join(ROOT, "target/release/stalld")
STARVE = os.path.join(ROOT, "target/release/stalld-starve")
THRESHOLD = 3.0
TARGET = 0.100
RT_RUNTIME = "/proc/sys/kernel/sched_rt_runtime_us"


def read_rt_runtime():
    with open(RT_RUNTIME) as f:
        return int(f.read())


def cpu_ns(pid):
    """Nanoseconds on CPU of every thread of `pid`."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total


class Daemon:
    def __init__(self, last_cpu):
        self.process = subprocess.Popen(
            ["timeout", "300", "chrt", "-f", "10", STALLD, "-f", "-v", "-a", "0",
             "-t", "3", "-d", "1", "-c", str(last_cpu)],
            stderr=subprocess.PIPE, text=True)
        self.lines = []
        for line in self.process.stderr:
            self.lines.append(line)
            if "started: " in line:
                break
        else:
            sys.exit("stalld did not start:\n" + "".join(self.lines))
        # Keep draining its log so it never blocks on a full pipe.
        threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True).start()
        with open(f"/proc/{self.process.pid}/task/{self.process.pid}/children") as f:
            self.pid = int(f.read().split()[0])

    def restored(self):
        return {int(m.group(1)) for line in self.lines
                for m in [re.search(r"restored pid (\d+) ", line)] if m}

    def stop(self):
        self.process.terminate()
        return self.process.wait(timeout=20)


def one_round(last_cpu, victims, idle):
    daemon = Daemon(last_cpu)
    before = cpu_ns(daemon.pid)
    out = subprocess.run(
        ["timeout", "90", STARVE, "--cpu", str(last_cpu), "--duration", "60", "--linger", "3",
         "--victims", str(victims), "--idle-threads", str(idle)],
        capture_output=True, text=True, check=True).stdout
    events = [json.loads(line) for line in out.splitlines()]
    pids = next(e["victims"] for e in events if e["event"] == "started")
    waits = [e["wait_s"] - THRESHOLD if e["event"] == "victim_ran" else float("inf")
             for e in events if e["event"] in ("victim_ran", "victim_starved")]
    deadline = time.monotonic() + 10
    while not set(pids) <= daemon.restored() and time.monotonic() < deadline:
        time.sleep(0.1)
    cpu = cpu_ns(daemon.pid) - before
    unrestored = len(set(pids) - daemon.restored())
    status = daemon.stop()
    return waits, unrestored, cpu, status


def show(label, waits):
    ms = sorted(w * 1000 for w in waits)
    n = len(ms)
    print(f"  {label:<10} n={n:<4} min {ms[0]:7.1f}  median {statistics.median(ms):7.1f}  "
          f"p90 {ms[min(n - 1, n * 9 // 10)]:7.1f}  p99 {ms[min(n - 1, n * 99 // 100)]:7.1f}  "
          f"max {ms[-1]:7.1f} ms   within {TARGET * 1000:.0f} ms: "
          f"{sum(w <= TARGET for w in waits)}/{n}")


def main():
    if os.geteuid() != 0:
        sys.exit("bench/load.py: needs root")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    victims = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    idle = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bins"], cwd=ROOT, check=True)
    last_cpu = os.cpu_count() - 1
    results = []
    with open("/tmp/stalld-starvation.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = read_rt_runtime()
        try:
            for _ in range(rounds):
                results.append(one_round(last_cpu, victims, idle))
        finally:
            after = read_rt_runtime()
            if after != saved:
                with open(RT_RUNTIME, "w") as f:
                    f.write(str(saved))
    print(f"{victims} victims behind one SCHED_FIFO hog on CPU {last_cpu}, {idle} extra threads, "
          f"-t {THRESHOLD:.0f}: wait beyond the threshold")
    for i, (waits, unrestored, cpu, status) in enumerate(results):
        show(f"round {i + 1}", waits)
        print(f"  {'':<10} boosts not restored: {unrestored}; daemon CPU time {cpu / 1e6:.1f} ms; "
              f"daemon exit {status}")
    show("all", [w for waits, *_ in results for w in waits])
    print(f"  RT throttling after the run: {after} (before: {saved})"
          + ("" if after == saved else "  NOT RESTORED"))


if __name__ == "__main__":
    main()
