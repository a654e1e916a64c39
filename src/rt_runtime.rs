//! `/proc/sys/kernel/sched_rt_runtime_us`: the RT throttling knob (−1 = off). Shared by the
//! daemon, the guardian, the starvation generator and the tests, so all of them get the same
//! handling of the kernel's transient refusal.

use std::fs;
use std::io;
use std::time::{Duration, Instant};

pub const PATH: &str = "/proc/sys/kernel/sched_rt_runtime_us";
pub const PERIOD_PATH: &str = "/proc/sys/kernel/sched_rt_period_us";

/// How long a refused write is retried (see [`write`]).
const BUSY_RETRY: Duration = Duration::from_secs(5);

pub fn read() -> io::Result<i64> {
    let text = fs::read_to_string(PATH)?;
    text.trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{PATH} holds {text:?}")))
}

/// Writes the runtime. The kernel refuses (EBUSY) a limit below the SCHED_DEADLINE bandwidth
/// in use, and a task that just left SCHED_DEADLINE (a restored boost) keeps its bandwidth
/// until its zero-lag time, up to about a boost period later: so EBUSY is retried for a while.
pub fn write(value: i64) -> io::Result<()> {
    let give_up = Instant::now() + BUSY_RETRY;
    loop {
        match fs::write(PATH, value.to_string()) {
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) && Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

/// The period `sched_rt_runtime_us` is a part of (1 s unless changed).
pub fn read_period() -> io::Result<i64> {
    let text = fs::read_to_string(PERIOD_PATH)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{PERIOD_PATH} holds {text:?}"),
        )
    })
}

/// Whether `runtime` (of `period`) sets no RT limit although it is not -1. Linux 7.2 boots
/// with runtime = period (1000000; 6.x kernels with 950000): the fair server (a SCHED_DEADLINE server
/// per CPU, 6.12+) keeps fair tasks running instead, RT tasks are throttled only with
/// CONFIG_RT_GROUP_SCHED and runtime >= period is no limit there (sched_rt_runtime_exceeded()),
/// and otherwise the value is only SCHED_DEADLINE's admission control: the share of each CPU
/// DEADLINE tasks and servers may reserve (kernel/sched/rt.c, "default: 1s"). Any value but
/// -1 keeps that control on, and it refuses SCHED_DEADLINE to a task pinned to fewer CPUs
/// than its root domain (kernel/sched/syscalls.c): the per-CPU threads stalld boosts. So
/// stalld sets -1 while it runs on 7.2 exactly as before, and puts the value back after.
pub fn is_unlimited(runtime: i64, period: i64) -> bool {
    runtime >= period
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_equal_to_the_period_is_no_limit() {
        assert!(is_unlimited(1_000_000, 1_000_000));
        assert!(!is_unlimited(950_000, 1_000_000));
        assert!(!is_unlimited(-1, 1_000_000));
    }
}
