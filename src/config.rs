//! The validated, typed configuration the daemon runs with.

use std::path::PathBuf;
use std::time::Duration;

use crate::cpuset::CpuSet;

/// Which run-queue source to use (`-b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// queue_track where BPF loads, else sched_debug (with a line saying why).
    Auto,
    QueueTrack,
    SchedDebug,
}

/// How a starving task is boosted and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoostParams {
    /// CPU time granted every `period`.
    pub runtime: Duration,
    pub period: Duration,
    /// How long the task keeps the boost before its own policy is restored.
    pub duration: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Detect and log only; never boost, never touch RT throttling or sched features.
    pub log_only: bool,
    pub verbose: bool,
    pub foreground: bool,
    /// How long a task may wait on a run queue before it is starving.
    pub threshold: Duration,
    /// How often a backend that cannot tell queue times is polled.
    pub granularity: Duration,
    pub boost: BoostParams,
    pub cpus: CpuSet,
    pub backend: BackendChoice,
    pub pidfile: Option<PathBuf>,
}
