//! The vocabulary every part of stalld shares: who is waiting on which CPU, and since when.
//!
//! Backends produce [`RunQueue`] snapshots, the detector consumes them, the booster acts on
//! the tasks they name. Nothing here does I/O.

use std::fmt;
use std::time::Duration;

/// A kernel task id (what user space calls a thread id; `pid` in the kernel's words).
pub type Pid = i32;

/// A point on CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns()` stamps with, so
/// kernel and user-space times compare directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoTime(pub u64);

impl MonoTime {
    pub fn saturating_since(self, earlier: MonoTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    pub fn after(self, delay: Duration) -> MonoTime {
        MonoTime(
            self.0
                .saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

/// A task's command name, as the kernel keeps it: at most 15 bytes (TASK_COMM_LEN 16).
/// Stored inline so snapshots do not allocate per task.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    pub const MAX_LEN: usize = 15;

    /// Takes the bytes up to the first NUL, cut at 15 bytes as the kernel does.
    pub fn new(raw: &[u8]) -> Comm {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let len = end.min(Self::MAX_LEN);
        let mut bytes = [0u8; 16];
        bytes[..len].copy_from_slice(&raw[..len]);
        Comm {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name for logs and regex matching; bytes that are not UTF-8 are replaced.
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_str_lossy())
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}

/// A task that is runnable on a CPU but is not the one running there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingTask {
    pub pid: Pid,
    /// Thread group (process) id when the backend knows it.
    pub tgid: Option<Pid>,
    pub comm: Comm,
    /// Kernel priority: 0..99 real-time (99 − rt_priority), 100..139 fair, −1 deadline.
    pub prio: i32,
    /// Voluntary + involuntary context switches: constant while the task waits, so a change
    /// proves the task ran in between.
    pub switches: u64,
    /// When the task became runnable, if the backend knows it exactly; otherwise the detector
    /// counts from the first snapshot that showed it waiting.
    pub queued_at: Option<MonoTime>,
}

/// One monitored CPU's run queue at the moment of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunQueue {
    pub cpu: u32,
    /// The task running on the CPU, if the backend saw one (`None` = idle or unknown).
    pub current: Option<Pid>,
    pub waiting: Vec<WaitingTask>,
}
