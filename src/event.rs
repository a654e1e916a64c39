//! What stalld tells the world: every thing that happens to a task or to the machine is one
//! typed [`Event`], emitted once by the daemon and rendered by each sink. The text sinks
//! (stderr, kmsg, syslog) print [`Event::text`], which is upstream's line where upstream has
//! one, because operators' scripts grep for them; structured sinks take the fields.
//!
//! Names chosen by users (thread and process names) are [`Comm`]s, whose `Display` escapes
//! control characters, so no rendering can be tricked into printing two lines for one event.

use std::fmt::Write;
use std::time::Duration;

use crate::config::BoostPolicy;
use crate::sys;
use crate::task::{Comm, Pid};

/// How much an event matters, in syslog's terms (journald's `PRIORITY`, kmsg's `<N>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning = 4,
    Info = 6,
}

/// A task as events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskName {
    pub tid: Pid,
    /// The thread group (process) id, when known.
    pub tgid: Option<Pid>,
    /// The thread's own name.
    pub comm: Comm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The daemon is set up and about to check the run queues for the first time.
    Started {
        backend: &'static str,
        /// `None` in log-only mode.
        boosting: Option<BoostPolicy>,
    },
    /// A shutdown was requested; boosts are being restored.
    Stopping,
    /// Adaptive and aggressive modes: a task has waited half the threshold.
    MightStarve {
        cpu: u32,
        task: TaskName,
        waited: Duration,
    },
    /// A task has waited the threshold.
    Starved {
        cpu: u32,
        task: TaskName,
        waited: Duration,
    },
    Boosted {
        cpu: u32,
        task: TaskName,
        /// The name of the task's process, as upstream prints it (`None`: unreadable).
        process: Option<Comm>,
        policy: BoostPolicy,
    },
    /// A task that already runs with SCHED_DEADLINE is not boosted (it would only lose
    /// bandwidth).
    AlreadyDeadline {
        cpu: u32,
        task: TaskName,
    },
    BoostFailed {
        cpu: u32,
        task: TaskName,
        policy: BoostPolicy,
        error: String,
    },
    /// A DEADLINE boost did not run its task; it became a SCHED_FIFO boost.
    FifoFallback {
        cpu: u32,
        tid: Pid,
    },
    /// A boost ended and the task has its own attributes back.
    Restored {
        cpu: u32,
        tid: Pid,
        policy: u32,
    },
    ExitedWhileBoosted {
        cpu: u32,
        tid: Pid,
    },
    /// Someone else changed the task's policy during its boost; their change is kept.
    ChangedMeanwhile {
        cpu: u32,
        tid: Pid,
        policy: u32,
    },
    RestoreFailed {
        cpu: u32,
        tid: Pid,
        error: String,
    },
    /// A restore failed; it is tried again after `delay` (attempt `attempt` of `attempts`).
    RestoreRetry {
        cpu: u32,
        tid: Pid,
        attempt: u32,
        attempts: u32,
        delay: Duration,
        error: String,
    },
    /// A task that a stalld which is gone left boosted has its own attributes back (from the
    /// ledger in /run/stalld).
    LeftoverRestored {
        cpu: u32,
        tid: Pid,
        policy: u32,
    },
    /// Such a task could not be restored; its record stays for the next replay.
    LeftoverKept {
        cpu: u32,
        tid: Pid,
        error: String,
    },
    /// The ledger of a stalld that is gone was replayed.
    LedgerReplayed {
        instance: String,
        restored: usize,
        kept: usize,
    },
    /// The guardian process died while the daemon runs.
    GuardianDied {
        pid: Pid,
        status: String,
    },
    GuardianRespawned {
        pid: Pid,
    },
    GuardianRespawnFailed {
        error: String,
    },
    /// The backend asked for could not be used; `to` is used instead.
    BackendFallback {
        to: &'static str,
        reason: String,
    },
    /// RT throttling is off while stalld runs; `saved` is the runtime to put back (`None`:
    /// it was off already).
    RtThrottlingDisabled {
        saved: Option<i64>,
    },
    RtThrottlingRestored {
        runtime: i64,
    },
    RtThrottlingRestoreFailed {
        runtime: i64,
        error: String,
    },
}

/// The kind of an event without its data: what sinks key on (journald's `STALLD_EVENT`,
/// metric names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Started,
    Stopping,
    MightStarve,
    Starved,
    Boosted,
    AlreadyDeadline,
    BoostFailed,
    FifoFallback,
    Restored,
    ExitedWhileBoosted,
    ChangedMeanwhile,
    RestoreFailed,
    RestoreRetry,
    LeftoverRestored,
    LeftoverKept,
    LedgerReplayed,
    GuardianDied,
    GuardianRespawned,
    GuardianRespawnFailed,
    BackendFallback,
    RtThrottlingDisabled,
    RtThrottlingRestored,
    RtThrottlingRestoreFailed,
}

impl EventKind {
    /// The stable, machine-readable name (`snake_case`).
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Stopping => "stopping",
            EventKind::MightStarve => "might_starve",
            EventKind::Starved => "starved",
            EventKind::Boosted => "boosted",
            EventKind::AlreadyDeadline => "already_deadline",
            EventKind::BoostFailed => "boost_failed",
            EventKind::FifoFallback => "fifo_fallback",
            EventKind::Restored => "restored",
            EventKind::ExitedWhileBoosted => "exited_while_boosted",
            EventKind::ChangedMeanwhile => "changed_meanwhile",
            EventKind::RestoreFailed => "restore_failed",
            EventKind::RestoreRetry => "restore_retry",
            EventKind::LeftoverRestored => "leftover_restored",
            EventKind::LeftoverKept => "leftover_kept",
            EventKind::LedgerReplayed => "ledger_replayed",
            EventKind::GuardianDied => "guardian_died",
            EventKind::GuardianRespawned => "guardian_respawned",
            EventKind::GuardianRespawnFailed => "guardian_respawn_failed",
            EventKind::BackendFallback => "backend_fallback",
            EventKind::RtThrottlingDisabled => "rt_throttling_disabled",
            EventKind::RtThrottlingRestored => "rt_throttling_restored",
            EventKind::RtThrottlingRestoreFailed => "rt_throttling_restore_failed",
        }
    }
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Started { .. } => EventKind::Started,
            Event::Stopping => EventKind::Stopping,
            Event::MightStarve { .. } => EventKind::MightStarve,
            Event::Starved { .. } => EventKind::Starved,
            Event::Boosted { .. } => EventKind::Boosted,
            Event::AlreadyDeadline { .. } => EventKind::AlreadyDeadline,
            Event::BoostFailed { .. } => EventKind::BoostFailed,
            Event::FifoFallback { .. } => EventKind::FifoFallback,
            Event::Restored { .. } => EventKind::Restored,
            Event::ExitedWhileBoosted { .. } => EventKind::ExitedWhileBoosted,
            Event::ChangedMeanwhile { .. } => EventKind::ChangedMeanwhile,
            Event::RestoreFailed { .. } => EventKind::RestoreFailed,
            Event::RestoreRetry { .. } => EventKind::RestoreRetry,
            Event::LeftoverRestored { .. } => EventKind::LeftoverRestored,
            Event::LeftoverKept { .. } => EventKind::LeftoverKept,
            Event::LedgerReplayed { .. } => EventKind::LedgerReplayed,
            Event::GuardianDied { .. } => EventKind::GuardianDied,
            Event::GuardianRespawned { .. } => EventKind::GuardianRespawned,
            Event::GuardianRespawnFailed { .. } => EventKind::GuardianRespawnFailed,
            Event::BackendFallback { .. } => EventKind::BackendFallback,
            Event::RtThrottlingDisabled { .. } => EventKind::RtThrottlingDisabled,
            Event::RtThrottlingRestored { .. } => EventKind::RtThrottlingRestored,
            Event::RtThrottlingRestoreFailed { .. } => EventKind::RtThrottlingRestoreFailed,
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Event::BoostFailed { .. }
            | Event::FifoFallback { .. }
            | Event::RestoreFailed { .. }
            | Event::RestoreRetry { .. }
            | Event::LeftoverKept { .. }
            | Event::LedgerReplayed { .. }
            | Event::GuardianDied { .. }
            | Event::GuardianRespawnFailed { .. }
            | Event::BackendFallback { .. }
            | Event::RtThrottlingRestoreFailed { .. } => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// The CPU the event is about, if it is about one.
    pub fn cpu(&self) -> Option<u32> {
        match self {
            Event::MightStarve { cpu, .. }
            | Event::Starved { cpu, .. }
            | Event::Boosted { cpu, .. }
            | Event::AlreadyDeadline { cpu, .. }
            | Event::BoostFailed { cpu, .. }
            | Event::FifoFallback { cpu, .. }
            | Event::Restored { cpu, .. }
            | Event::ExitedWhileBoosted { cpu, .. }
            | Event::ChangedMeanwhile { cpu, .. }
            | Event::RestoreFailed { cpu, .. }
            | Event::RestoreRetry { cpu, .. }
            | Event::LeftoverRestored { cpu, .. }
            | Event::LeftoverKept { cpu, .. } => Some(*cpu),
            _ => None,
        }
    }

    /// The thread the event is about, if it is about one.
    pub fn tid(&self) -> Option<Pid> {
        match self {
            Event::MightStarve { task, .. }
            | Event::Starved { task, .. }
            | Event::Boosted { task, .. }
            | Event::AlreadyDeadline { task, .. }
            | Event::BoostFailed { task, .. } => Some(task.tid),
            Event::FifoFallback { tid, .. }
            | Event::Restored { tid, .. }
            | Event::ExitedWhileBoosted { tid, .. }
            | Event::ChangedMeanwhile { tid, .. }
            | Event::RestoreFailed { tid, .. }
            | Event::RestoreRetry { tid, .. }
            | Event::LeftoverRestored { tid, .. }
            | Event::LeftoverKept { tid, .. } => Some(*tid),
            _ => None,
        }
    }

    /// The line for the text sinks (without the `stalld: ` prefix), one line whatever the
    /// names contain.
    pub fn text(&self) -> String {
        let mut line = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut line);
        line
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        match self {
            Event::Started { backend, boosting } => match boosting {
                Some(policy) => write!(
                    out,
                    "started: {backend} backend, boosting with {}",
                    policy_text(*policy)
                ),
                None => write!(out, "started: {backend} backend, log only"),
            },
            Event::Stopping => write!(out, "stalld shutting down"),
            Event::MightStarve { cpu, task, waited } => write!(
                out,
                "{}-{} might starve on CPU {cpu} (waiting for {} seconds)",
                task.comm,
                task.tid,
                waited.as_secs()
            ),
            Event::Starved { cpu, task, waited } => write!(
                out,
                "{}-{} starved on CPU {cpu} for {} seconds ({:.3} s)",
                task.comm,
                task.tid,
                waited.as_secs(),
                waited.as_secs_f64()
            ),
            Event::Boosted {
                cpu,
                task,
                process,
                policy,
            } => {
                write!(out, "boosted pid {} (", task.tid)?;
                match process {
                    Some(process) => write!(out, "{process}")?,
                    None => write!(out, "<unknown>")?,
                }
                write!(out, ") (cpu {cpu}) using {}", policy_text(*policy))
            }
            Event::AlreadyDeadline { task, .. } => write!(
                out,
                "not boosting pid {} ({}): it already runs with SCHED_DEADLINE",
                task.tid, task.comm
            ),
            Event::BoostFailed {
                task,
                policy,
                error,
                ..
            } => {
                let function = match policy {
                    BoostPolicy::Deadline => "boost_with_deadline",
                    BoostPolicy::Fifo => "boost_with_fifo",
                };
                write!(out, "{function} failed to boost pid {}: {error}", task.tid)
            }
            Event::FifoFallback { tid, .. } => write!(
                out,
                "pid {tid} did not run under SCHED_DEADLINE (the kernel kept it throttled from an earlier boost): boosting it with SCHED_FIFO instead"
            ),
            Event::Restored { tid, policy, .. } => {
                write!(out, "restored pid {tid} to {}", sys::policy_name(*policy))
            }
            Event::ExitedWhileBoosted { tid, .. } => write!(out, "pid {tid} exited while boosted"),
            Event::ChangedMeanwhile { tid, policy, .. } => write!(
                out,
                "pid {tid} was switched to {} during its boost: leaving it so",
                sys::policy_name(*policy)
            ),
            Event::RestoreFailed { tid, error, .. } => write!(
                out,
                "restore_policy: failed to restore sched policy for pid {tid}: {error}"
            ),
            Event::RestoreRetry {
                tid,
                attempt,
                attempts,
                delay,
                error,
                ..
            } => write!(
                out,
                "restore_policy: failed to restore sched policy for pid {tid}: {error} (attempt {attempt} of {attempts}, retrying in {} ms)",
                delay.as_millis()
            ),
            Event::LeftoverRestored { tid, policy, .. } => write!(
                out,
                "restored pid {tid} to {}, left boosted by a stalld that is gone",
                sys::policy_name(*policy)
            ),
            Event::LeftoverKept { tid, error, .. } => write!(
                out,
                "could not restore pid {tid}, left boosted by a stalld that is gone: {error}; kept in the ledger for the next `stalld restore`"
            ),
            Event::LedgerReplayed {
                instance,
                restored,
                kept,
            } => write!(
                out,
                "undid what a stalld that is gone left behind ({instance}): {restored} task(s) restored, {kept} kept"
            ),
            Event::GuardianDied { pid, status } => {
                write!(out, "the guardian process {pid} died ({status})")
            }
            Event::GuardianRespawned { pid } => {
                write!(out, "guardian process respawned: pid {pid}")
            }
            Event::GuardianRespawnFailed { error } => write!(
                out,
                "cannot respawn the guardian process: {error}; until it runs, boosts of a killed stalld wait for the next start or `stalld restore`"
            ),
            Event::BackendFallback { to, reason } => {
                write!(out, "{reason}; falling back to {to}")
            }
            Event::RtThrottlingDisabled { saved: Some(_) } => write!(out, "RT Throttling disabled"),
            Event::RtThrottlingDisabled { saved: None } => {
                write!(out, "RT throttling already disabled, doing nothing")
            }
            Event::RtThrottlingRestored { runtime } => {
                write!(out, "RT Throttling runtime restored to {runtime}")
            }
            Event::RtThrottlingRestoreFailed { runtime, error } => write!(
                out,
                "failed to restore {} to {runtime}: {error}",
                crate::rt_runtime::PATH
            ),
        }
    }
}

fn policy_text(policy: BoostPolicy) -> &'static str {
    match policy {
        BoostPolicy::Deadline => "SCHED_DEADLINE",
        BoostPolicy::Fifo => "SCHED_FIFO",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(name: &[u8]) -> TaskName {
        TaskName {
            tid: 87,
            tgid: Some(80),
            comm: Comm::new(name),
        }
    }

    #[test]
    fn text_lines_are_upstreams() {
        let victim = task(b"kworker/1:2");
        let cases = [
            (
                Event::Starved {
                    cpu: 1,
                    task: victim,
                    waited: Duration::from_millis(20_004),
                },
                "kworker/1:2-87 starved on CPU 1 for 20 seconds (20.004 s)",
            ),
            (
                Event::MightStarve {
                    cpu: 1,
                    task: victim,
                    waited: Duration::from_millis(10_900),
                },
                "kworker/1:2-87 might starve on CPU 1 (waiting for 10 seconds)",
            ),
            (
                Event::Boosted {
                    cpu: 1,
                    task: victim,
                    process: Some(Comm::new(b"kworker/1:2")),
                    policy: BoostPolicy::Deadline,
                },
                "boosted pid 87 (kworker/1:2) (cpu 1) using SCHED_DEADLINE",
            ),
            (
                Event::Boosted {
                    cpu: 1,
                    task: victim,
                    process: None,
                    policy: BoostPolicy::Fifo,
                },
                "boosted pid 87 (<unknown>) (cpu 1) using SCHED_FIFO",
            ),
            (
                Event::BoostFailed {
                    cpu: 1,
                    task: victim,
                    policy: BoostPolicy::Fifo,
                    error: "No such process".into(),
                },
                "boost_with_fifo failed to boost pid 87: No such process",
            ),
            (
                Event::Restored {
                    cpu: 1,
                    tid: 87,
                    policy: sys::SCHED_FIFO,
                },
                "restored pid 87 to SCHED_FIFO",
            ),
            (
                Event::RestoreFailed {
                    cpu: 1,
                    tid: 87,
                    error: "Operation not permitted".into(),
                },
                "restore_policy: failed to restore sched policy for pid 87: Operation not permitted",
            ),
            (
                Event::RestoreRetry {
                    cpu: 1,
                    tid: 87,
                    attempt: 2,
                    attempts: 5,
                    delay: Duration::from_millis(200),
                    error: "Operation not permitted".into(),
                },
                "restore_policy: failed to restore sched policy for pid 87: Operation not permitted (attempt 2 of 5, retrying in 200 ms)",
            ),
            (
                Event::LeftoverRestored {
                    cpu: 1,
                    tid: 87,
                    policy: sys::SCHED_OTHER,
                },
                "restored pid 87 to SCHED_OTHER, left boosted by a stalld that is gone",
            ),
            (Event::Stopping, "stalld shutting down"),
            (
                Event::RtThrottlingDisabled {
                    saved: Some(950_000),
                },
                "RT Throttling disabled",
            ),
            (
                Event::RtThrottlingDisabled { saved: None },
                "RT throttling already disabled, doing nothing",
            ),
            (
                Event::RtThrottlingRestored { runtime: 950_000 },
                "RT Throttling runtime restored to 950000",
            ),
        ];
        for (event, line) in cases {
            assert_eq!(event.text(), line, "{event:?}");
        }
    }

    #[test]
    fn hostile_names_stay_on_one_line_in_every_text() {
        let hostile = task(b"x\n<0>FAKE");
        let thread = "x\\x0a<0>FAKE";
        let events = [
            (
                Event::Starved {
                    cpu: 1,
                    task: hostile,
                    waited: Duration::from_secs(3),
                },
                thread,
            ),
            (
                Event::MightStarve {
                    cpu: 1,
                    task: hostile,
                    waited: Duration::from_secs(3),
                },
                thread,
            ),
            // The boost line names the process, as upstream's does.
            (
                Event::Boosted {
                    cpu: 1,
                    task: hostile,
                    process: Some(Comm::new(b"p\r\n<1>X")),
                    policy: BoostPolicy::Deadline,
                },
                "(p\\x0d\\x0a<1>X)",
            ),
            (
                Event::AlreadyDeadline {
                    cpu: 1,
                    task: hostile,
                },
                thread,
            ),
        ];
        for (event, escaped) in events {
            let text = event.text();
            assert!(
                !text.contains(|c: char| c.is_control()),
                "{text:?} has a control character"
            );
            assert!(text.contains(escaped), "{text:?}");
        }
    }

    #[test]
    fn kinds_severities_and_subjects() {
        let event = Event::FifoFallback { cpu: 3, tid: 9 };
        assert_eq!(event.kind().name(), "fifo_fallback");
        assert_eq!(event.severity(), Severity::Warning);
        assert_eq!((event.cpu(), event.tid()), (Some(3), Some(9)));
        let started = Event::Started {
            backend: "queue_track",
            boosting: None,
        };
        assert_eq!(started.severity(), Severity::Info);
        assert_eq!((started.cpu(), started.tid()), (None, None));
        assert_eq!(started.text(), "started: queue_track backend, log only");
    }
}
