//! Backends: the only code that knows where run-queue information comes from.
//!
//! A backend answers one question for the monitored CPUs: which tasks are runnable but not
//! running, and (when it can tell) since when. `queue_track` asks the kernel through BPF;
//! `sched_debug` parses `/sys/kernel/debug/sched/debug`.

use crate::task::RunQueue;

#[cfg(feature = "bpf")]
pub mod queue_track;
pub mod sched_debug;

/// A source of run-queue snapshots.
pub trait Backend {
    /// The name operators know it by (`queue_track`, `sched_debug`).
    fn name(&self) -> &'static str;

    /// Whether [`WaitingTask::queued_at`](crate::task::WaitingTask::queued_at) is exact, so the
    /// daemon can sleep until a task can first reach the threshold instead of polling.
    fn knows_queue_times(&self) -> bool;

    /// Replaces `out` with one [`RunQueue`] per monitored CPU that the backend currently sees.
    /// `out`'s allocations are reused from poll to poll.
    fn snapshot(&mut self, out: &mut Vec<RunQueue>) -> anyhow::Result<()>;
}
