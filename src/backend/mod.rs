//! Backends: the only code that knows where run-queue information comes from.
//!
//! A backend answers one question for the monitored CPUs: which tasks are runnable but not
//! running, and (when it can tell) since when. `queue_track` asks the kernel through BPF;
//! `sched_debug` parses `/sys/kernel/debug/sched/debug`.

use anyhow::Result;

use crate::config::BackendChoice;
use crate::cpuset::CpuSet;
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

    /// Where the queue times come from, as `stalld_backend_info{stamps}`, `stalld status` and
    /// `stalld check` name it: `tracepoints` (stamped by stalld's own programs on the
    /// scheduler tracepoints, today's queue_track), `none` (a polling backend). A backend that
    /// reads the kernel's own stamps says so here.
    fn stamp_source(&self) -> &'static str {
        if self.knows_queue_times() {
            "tracepoints"
        } else {
            "none"
        }
    }

    /// Replaces `out` with one [`RunQueue`] per monitored CPU that the backend currently sees.
    /// `out`'s allocations are reused from poll to poll.
    fn snapshot(&mut self, out: &mut Vec<RunQueue>) -> anyhow::Result<()>;
}

/// Lets the BPF loader's own diagnostics (the verifier log, say) through to stderr.
pub fn set_verbose(verbose: bool) {
    #[cfg(feature = "bpf")]
    queue_track::set_libbpf_verbose(verbose);
    #[cfg(not(feature = "bpf"))]
    let _ = verbose;
}

/// Opens the backend the operator chose. `Auto` prefers queue_track and falls back to
/// sched_debug, calling `on_fallback` with the reason.
pub fn open(
    choice: BackendChoice,
    monitored: CpuSet,
    on_fallback: impl FnOnce(&anyhow::Error),
) -> Result<Box<dyn Backend>> {
    match choice {
        BackendChoice::SchedDebug => Ok(Box::new(sched_debug::SchedDebug::new(monitored)?)),
        BackendChoice::QueueTrack => open_queue_track(monitored),
        BackendChoice::Auto => open_queue_track(monitored.clone()).or_else(|why| {
            on_fallback(&why);
            Ok(Box::new(sched_debug::SchedDebug::new(monitored)?))
        }),
    }
}

#[cfg(feature = "bpf")]
fn open_queue_track(monitored: CpuSet) -> Result<Box<dyn Backend>> {
    use anyhow::Context;
    let backend = queue_track::QueueTrack::new(monitored).context("queue_track backend")?;
    Ok(Box::new(backend))
}

#[cfg(not(feature = "bpf"))]
fn open_queue_track(_monitored: CpuSet) -> Result<Box<dyn Backend>> {
    anyhow::bail!("queue_track backend: this stalld was built without BPF support")
}
