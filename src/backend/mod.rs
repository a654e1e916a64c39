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
mod stamps;

pub use stamps::{StampChoice, StampSource, STAMPS_ENV};

/// A source of run-queue snapshots.
pub trait Backend {
    /// The name operators know it by (`queue_track`, `sched_debug`).
    fn name(&self) -> &'static str;

    /// Whether [`WaitingTask::queued_at`](crate::task::WaitingTask::queued_at) is exact, so the
    /// daemon can sleep until a task can first reach the threshold instead of polling.
    fn knows_queue_times(&self) -> bool;

    /// Where the enqueue times come from, for backends that know them (queue_track).
    fn stamps(&self) -> Option<StampSource> {
        None
    }

    /// The stamp source that was tried first and why it did not load, when queue_track went
    /// on to the one [`stamps`](Backend::stamps) names (`Auto` only).
    fn stamps_fallback(&self) -> Option<(StampSource, &str)> {
        None
    }

    /// The same as `stalld_mode_info{stamps}`, `stalld status` and `stalld check` name it:
    /// `sched_info` (the kernel's own stamps), `tracepoints` (stalld's programs on the
    /// scheduler tracepoints) or `none` (a polling backend).
    fn stamp_source(&self) -> &'static str {
        self.stamps().map_or("none", StampSource::name)
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
/// sched_debug, calling `on_fallback` with the reason. queue_track's stamp source follows
/// [`STAMPS_ENV`]; a value it does not know is an error, not a reason to fall back.
pub fn open(
    choice: BackendChoice,
    monitored: CpuSet,
    on_fallback: impl FnOnce(&anyhow::Error),
) -> Result<Box<dyn Backend>> {
    if choice == BackendChoice::SchedDebug {
        return Ok(Box::new(sched_debug::SchedDebug::new(monitored)?));
    }
    let stamps = StampChoice::from_env()?;
    match choice {
        BackendChoice::Auto => open_queue_track(monitored.clone(), stamps).or_else(|why| {
            on_fallback(&why);
            Ok(Box::new(sched_debug::SchedDebug::new(monitored)?))
        }),
        _ => open_queue_track(monitored, stamps),
    }
}

/// The stamp source queue_track would use here for `choice` (what the operator asked for,
/// e.g. [`StampChoice::from_env`]) on this kernel's BTF, without loading anything.
pub fn queue_track_stamp_source(choice: StampChoice) -> Result<StampSource> {
    #[cfg(feature = "bpf")]
    return queue_track::stamp_source(choice);
    #[cfg(not(feature = "bpf"))]
    {
        let _ = choice;
        anyhow::bail!("queue_track backend: this stalld was built without BPF support")
    }
}

#[cfg(feature = "bpf")]
fn open_queue_track(monitored: CpuSet, stamps: StampChoice) -> Result<Box<dyn Backend>> {
    use anyhow::Context;
    let backend = queue_track::QueueTrack::new(monitored, stamps).context("queue_track backend")?;
    Ok(Box::new(backend))
}

#[cfg(not(feature = "bpf"))]
fn open_queue_track(_monitored: CpuSet, _stamps: StampChoice) -> Result<Box<dyn Backend>> {
    anyhow::bail!("queue_track backend: this stalld was built without BPF support")
}
