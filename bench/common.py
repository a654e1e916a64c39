# SPDX-License-Identifier: GPL-2.0-or-later
"""What the benchmarks share: stalld started as deployed in each configuration, the
starvation lock, interleaving, and leaving the machine's mounts as they were."""
import contextlib
import fcntl
import os
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STALLD = os.path.join(ROOT, "target/release/stalld")
LOCK = "/tmp/stalld-starvation.lock"
STAMPS_ENV = "STALLD_QUEUE_TRACK_STAMPS"

# configuration -> (stalld arguments, stamp source forced through STAMPS_ENV)
DAEMONS = {
    "default": ([], None),
    "tracepoints": ([], "tracepoints"),
    "sched_debug": (["-b", "sched_debug"], None),
}
# What `-v` must say for each queue_track configuration: the row measured what it claims.
STAMP_LINES = {
    "default": "queue_track: enqueue times from the kernel's sched_info",
    "tracepoints": "queue_track: enqueue times from stalld's tracepoints",
}


def env_for(stamps):
    """The environment with the stamp source forced, or with the variable removed."""
    env = dict(os.environ)
    env.pop(STAMPS_ENV, None)
    if stamps:
        env[STAMPS_ENV] = stamps
    return env


class Daemon:
    """stalld as deployed (SCHED_FIFO 10 like the unit's chrt, on housekeeping CPU 0), in one
    of DAEMONS' configurations, with `args` added."""

    def __init__(self, config, args=()):
        self.config = config
        backend_args, stamps = DAEMONS[config]
        self.proc = subprocess.Popen(
            ["timeout", "900", "chrt", "-f", "10", STALLD, "-f", "-v", "-a", "0",
             *backend_args, *args],
            stderr=subprocess.PIPE, text=True, env=env_for(stamps))
        self.lines = []
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if "using " in line and " backend" in line:
                break
        else:
            sys.exit(f"stalld ({config}) did not start:\n" + "\n".join(self.lines))
        # Keep draining its log so it never blocks on a full pipe.
        self.drain = threading.Thread(
            target=lambda: self.lines.extend(line.rstrip() for line in self.proc.stderr),
            daemon=True)
        self.drain.start()

    @property
    def pid(self):
        """stalld's own pid (timeout's child; chrt exec'd into it)."""
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.drain.join(timeout=5)
        expected = STAMP_LINES.get(self.config)
        if expected and not any(expected in line for line in self.lines):
            sys.exit(f"stalld ({self.config}) did not say {expected!r}:\n" + "\n".join(self.lines))


def rotated(names, round_index):
    """Every round runs every configuration, starting one further each round."""
    k = round_index % len(names)
    return names[k:] + names[:k]


def mounted(fstype):
    with open("/proc/mounts") as f:
        return any(line.split()[2] == fstype for line in f)


@contextlib.contextmanager
def starvation_lock():
    """Holds the machine-wide starvation lock; on the way out unmounts debugfs and
    securityfs if this run mounted them (stalld -b sched_debug and the lockdown check do):
    no other starvation run can be using them meanwhile, since we hold the lock."""
    before = {fstype: mounted(fstype) for fstype in ("debugfs", "securityfs")}
    with open(LOCK, "a") as lock:
        print(f"waiting for {LOCK}", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            for fstype, path in (("debugfs", "/sys/kernel/debug"),
                                 ("securityfs", "/sys/kernel/security")):
                if not before[fstype] and mounted(fstype):
                    subprocess.run(["umount", path], check=False)
