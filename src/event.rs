//! What stalld tells the world: every thing that happens to a task or to the machine is one
//! typed [`Event`], emitted once by the daemon and rendered by each sink. The text sinks
//! (stderr, kmsg, syslog) print [`Event::text`], which is upstream's line where upstream has
//! one, because operators' scripts grep for them; structured sinks take the fields.
//!
//! Names chosen by users (thread and process names) are [`Comm`]s, whose `Display` escapes
//! control characters, so no rendering can be tricked into printing two lines for one event.

use std::fmt::{self, Write};
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

/// Which denylist kept a starving task from a boost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// `-i`: the thread's name matched.
    Thread,
    /// `-I`: the name of its process (given) matched.
    Process(Comm),
}

/// Who held the CPU when a task was found starving there: the task running on it at that
/// check (for a starving task, almost always the hog).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Culprit {
    pub pid: Pid,
    pub comm: Comm,
    /// Its scheduling policy (`sys::SCHED_*`).
    pub policy: u32,
    /// Its real-time priority for SCHED_FIFO/SCHED_RR, its nice value otherwise.
    pub priority: i32,
    /// Its cgroup (v2 path, or the first v1 line), when /proc tells.
    pub cgroup: Option<String>,
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
        /// The task running on the CPU at detection time, when the backend saw one.
        culprit: Option<Culprit>,
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
    /// A starving task is not boosted: a denylist (`-i`, `-I`) names it.
    BoostSkipped {
        cpu: u32,
        task: TaskName,
        ignored: Ignored,
    },
    /// A DEADLINE boost did not run its task; it became a SCHED_FIFO boost.
    FifoFallback {
        cpu: u32,
        tid: Pid,
    },
    /// A SCHED_FIFO phase did not run its task within its hold: the task is held at FIFO 98
    /// longer, up to `hold` in this phase and the boost's later ones.
    FifoPhaseExtended {
        cpu: u32,
        tid: Pid,
        hold: Duration,
    },
    /// A boost ended and the task has its own attributes back.
    Restored {
        cpu: u32,
        tid: Pid,
        policy: u32,
        /// The CPU time it received while it held the boost, when measured.
        cpu_time: Option<Duration>,
        /// The policy it had switched itself to during the boost (a change it could make
        /// without privilege), undone.
        undone: Option<u32>,
    },
    /// A boost ended having given its task no CPU at all; its own attributes are back, and
    /// its next boost starts escalated.
    BoostWithoutCpu {
        cpu: u32,
        tid: Pid,
        policy: u32,
    },
    ExitedWhileBoosted {
        cpu: u32,
        tid: Pid,
        cpu_time: Option<Duration>,
    },
    /// Someone with privilege changed the task's policy during its boost; their change is
    /// kept.
    ChangedMeanwhile {
        cpu: u32,
        tid: Pid,
        policy: u32,
        cpu_time: Option<Duration>,
    },
    /// Restoring the task failed: with `retry`, [`crate::boost::RESTORE_ATTEMPTS`] times,
    /// and the task is held (it may hold the boost still) while the daemon keeps retrying;
    /// without, for the last time (at shutdown: its record stays in the ledger).
    RestoreFailed {
        cpu: u32,
        tid: Pid,
        error: String,
        retry: Option<Duration>,
        cpu_time: Option<Duration>,
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
    /// A check of the run queues failed (the backend's snapshot); it is retried after `retry`.
    /// `failures` in a row so far.
    CheckFailed {
        error: String,
        failures: u32,
        retry: Duration,
    },
    /// `--stand_aside`: another stalld boosts on this host (`others`: each one's pid,
    /// command line and how it was found); this one boosts nothing until it is stopped.
    StandingAside {
        others: String,
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
    BoostSkipped,
    FifoFallback,
    FifoPhaseExtended,
    Restored,
    BoostWithoutCpu,
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
    CheckFailed,
    StandingAside,
}

/// Every kind, in documentation order.
impl EventKind {
    pub const ALL: [EventKind; 28] = [
        EventKind::Started,
        EventKind::Stopping,
        EventKind::MightStarve,
        EventKind::Starved,
        EventKind::Boosted,
        EventKind::AlreadyDeadline,
        EventKind::BoostFailed,
        EventKind::BoostSkipped,
        EventKind::FifoFallback,
        EventKind::FifoPhaseExtended,
        EventKind::Restored,
        EventKind::BoostWithoutCpu,
        EventKind::ExitedWhileBoosted,
        EventKind::ChangedMeanwhile,
        EventKind::RestoreFailed,
        EventKind::RestoreRetry,
        EventKind::LeftoverRestored,
        EventKind::LeftoverKept,
        EventKind::LedgerReplayed,
        EventKind::GuardianDied,
        EventKind::GuardianRespawned,
        EventKind::GuardianRespawnFailed,
        EventKind::BackendFallback,
        EventKind::RtThrottlingDisabled,
        EventKind::RtThrottlingRestored,
        EventKind::RtThrottlingRestoreFailed,
        EventKind::CheckFailed,
        EventKind::StandingAside,
    ];

    /// The stable, machine-readable name (`snake_case`): `STALLD_EVENT`, the JSON `event`.
    pub fn name(self) -> &'static str {
        self.describe().0
    }

    /// journald's `MESSAGE_ID`: fixed for each kind, forever, so that `journalctl
    /// MESSAGE_ID=...` and catalog entries keep working across versions.
    pub fn message_id(self) -> &'static str {
        self.describe().1
    }

    /// One line for operators (README, man page, `stalld status`).
    pub fn summary(self) -> &'static str {
        self.describe().2
    }

    /// Name, MESSAGE_ID and summary: the one table of event kinds.
    fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            EventKind::Started => (
                "started",
                "68fb3413926b4afd8e4e5aad0b00d6b0",
                "the daemon is set up and starts checking",
            ),
            EventKind::Stopping => (
                "stopping",
                "b62232d71c01453cb162bd886cb8ebde",
                "shutdown requested; boosts are being restored",
            ),
            EventKind::MightStarve => (
                "might_starve",
                "f446dd621fbf4bf98982c08effd8d6d1",
                "-M/-A: a task has waited half the threshold",
            ),
            EventKind::Starved => (
                "starved",
                "2a28f5a3a35b45d781375aeabe2875b6",
                "a task has waited the threshold (with the culprit)",
            ),
            EventKind::Boosted => (
                "boosted",
                "a58d627fe1fb4428b6c2c9986507e1eb",
                "a starving task was boosted",
            ),
            EventKind::AlreadyDeadline => (
                "already_deadline",
                "624423dcb7ba4dbea67a8d3cf331109c",
                "not boosted: the task already runs with SCHED_DEADLINE",
            ),
            EventKind::BoostFailed => (
                "boost_failed",
                "1a9894a348e84e04ba3d89504e54be43",
                "the boost system call failed",
            ),
            EventKind::BoostSkipped => (
                "boost_skipped",
                "a31475a118dc4038af820a4d50d6a89d",
                "not boosted: a denylist (-i, -I) names the task",
            ),
            EventKind::FifoFallback => (
                "fifo_fallback",
                "789c7153d7b74a5c8595339dad465917",
                "a DEADLINE boost did not run its task and became a FIFO boost",
            ),
            EventKind::FifoPhaseExtended => (
                "fifo_phase_extended",
                "3c85c575d9a64dd9980a6b9594adbe9f",
                "a FIFO phase did not run its task within its hold; it is held at FIFO 98 longer",
            ),
            EventKind::Restored => (
                "restored",
                "63115ea47a2f484f8f0debebc09c39f4",
                "a boost ended; the task has its own attributes back (with the CPU time it got)",
            ),
            EventKind::BoostWithoutCpu => (
                "boost_without_cpu",
                "add50565fc0a41da91b2e4209520124d",
                "a boost ended without the task getting any CPU; restored, next boost escalated",
            ),
            EventKind::ExitedWhileBoosted => (
                "exited_while_boosted",
                "ab60b6bd39c047d780464a81b6cb79d6",
                "the task exited during its boost",
            ),
            EventKind::ChangedMeanwhile => (
                "changed_meanwhile",
                "84b5aa020130495e85b7606fdcaadd9e",
                "someone with privilege changed the task's policy during its boost; kept",
            ),
            EventKind::RestoreFailed => (
                "restore_failed",
                "f0068fa6a92e4cd9a8ef3813f2b2b1ca",
                "giving the task its attributes back failed: held and retried, or left to the ledger at exit",
            ),
            EventKind::RestoreRetry => (
                "restore_retry",
                "07b913f526bf4d35a722c7c52dbf5bf4",
                "a restore failed and is tried again",
            ),
            EventKind::LeftoverRestored => (
                "leftover_restored",
                "949d6c1b37834bab8500125b0d1e3845",
                "a task a stalld that is gone left boosted was restored from the ledger",
            ),
            EventKind::LeftoverKept => (
                "leftover_kept",
                "2edb54cbaa174d348c662024a773b447",
                "a task a stalld that is gone left boosted could not be restored; its record stays",
            ),
            EventKind::LedgerReplayed => (
                "ledger_replayed",
                "fdc0c50404154f0c89ace02389481319",
                "the ledger of a stalld that is gone was replayed",
            ),
            EventKind::GuardianDied => (
                "guardian_died",
                "38bed32f8db842d796f28e9160dffd32",
                "the guardian process died while the daemon runs",
            ),
            EventKind::GuardianRespawned => (
                "guardian_respawned",
                "24812f98c9f64ffca4db8237c74b7404",
                "the guardian process was started again",
            ),
            EventKind::GuardianRespawnFailed => (
                "guardian_respawn_failed",
                "1fa1a1c4d6eb4563a66eb92e1edd675d",
                "the guardian process could not be started again",
            ),
            EventKind::BackendFallback => (
                "backend_fallback",
                "e001eae28621438a87146cee9f5d555f",
                "queue_track could not be used; sched_debug is",
            ),
            EventKind::RtThrottlingDisabled => (
                "rt_throttling_disabled",
                "3f35256be70844368d6eabfce8d18d15",
                "RT throttling is off while stalld runs",
            ),
            EventKind::RtThrottlingRestored => (
                "rt_throttling_restored",
                "e51c1ce0ce21444396f5914ba4200cb2",
                "RT throttling has its saved runtime back",
            ),
            EventKind::RtThrottlingRestoreFailed => (
                "rt_throttling_restore_failed",
                "d9019a6591bd4dca821c57f9a4f0085f",
                "putting RT throttling back failed",
            ),
            EventKind::CheckFailed => (
                "check_failed",
                "2c3434b7aa4e41d382139432ff6681db",
                "a check of the run queues failed (the backend's snapshot); retried",
            ),
            EventKind::StandingAside => (
                "standing_aside",
                "cf7b7d3eb18b4188be480ac0fc4a98ab",
                "another stalld boosts on this host; this one (--stand_aside) boosts nothing",
            ),
        }
    }
}

/// A field's value. Names in text values are already escaped (one line, no control bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldValue {
    Int(i64),
    Text(String),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Int(value) => write!(f, "{value}"),
            FieldValue::Text(value) => f.write_str(value),
        }
    }
}

/// An event's structured fields, in a fixed order. Each structured sink renders these
/// generically: journald as `STALLD_<NAME>`, the JSON lines and `stalld status` under `name`.
pub type Fields = Vec<(&'static str, FieldValue)>;

/// Every field an event can carry, with its meaning: the documented vocabulary (a test checks
/// that events use no other name and that the README documents each).
pub const FIELD_DOCS: &[(&str, &str)] = &[
    ("cpu", "the CPU the event is about"),
    (
        "tid",
        "the thread (kernel pid) the event is about; journald also gets it as OBJECT_PID",
    ),
    ("tgid", "that thread's process id, when known"),
    ("comm", "that thread's name (escaped)"),
    ("process", "the name of the thread's process (escaped)"),
    (
        "wait_ns",
        "how long the task had waited on the run queue, in nanoseconds",
    ),
    (
        "policy",
        "the policy of the boost, or the policy the task was restored to or switched to",
    ),
    (
        "backend",
        "the backend in use (every event), or the one the daemon starts or falls back to",
    ),
    ("boosting", "started: the boost policy, or log_only"),
    ("error", "the system's error message"),
    ("reason", "why the preferred backend could not be used"),
    (
        "saved_runtime_us",
        "the sched_rt_runtime_us that RT throttling gets back at exit",
    ),
    (
        "runtime_us",
        "the sched_rt_runtime_us written back (or that could not be)",
    ),
    (
        "culprit_pid",
        "starved: who held the CPU at detection time (the running task; the best-priority other waiter when that was stalld itself)",
    ),
    ("culprit_comm", "starved: its name (escaped)"),
    ("attempt", "restore_retry: which restore attempt failed"),
    (
        "attempts",
        "restore_retry: how many are made before the task is reported held (it is retried for as long as the daemon runs)",
    ),
    (
        "delay_ns",
        "check_failed, restore_retry, restore_failed: the pause before the next attempt, in nanoseconds (restore_failed: only while the daemon keeps retrying)",
    ),
    (
        "cpu_time_ns",
        "restored, exited_while_boosted, changed_meanwhile, restore_failed: the CPU time the task received while it held the boost, in nanoseconds (taken from the CPU's other tasks); absent when it could not be measured",
    ),
    (
        "undone_policy",
        "restored: the policy the task had switched itself to during the boost, a change it could make without privilege, undone",
    ),
    (
        "hold_ns",
        "fifo_phase_extended: how long a FIFO phase may now hold the task without it running, in nanoseconds",
    ),
    (
        "instance",
        "ledger_replayed: the dead stalld's records in /run/stalld (instance.PID.START)",
    ),
    ("restored", "ledger_replayed: tasks given their own attributes back"),
    ("kept", "ledger_replayed: tasks that could not be restored (their records stay)"),
    ("guardian_pid", "the guardian process the event is about"),
    (
        "other_instances",
        "standing_aside: each other stalld that boosts here (pid, command line, how it was found)",
    ),
    ("status", "guardian_died: how it ended (exit status or signal)"),
    ("failures", "check_failed: checks that failed in a row so far"),
    (
        "ignored_by",
        "boost_skipped: the denylist that names the task, thread (-i) or process (-I)",
    ),
    ("culprit_policy", "starved: its policy"),
    (
        "culprit_priority",
        "starved: its real-time priority (FIFO/RR) or nice value",
    ),
    ("culprit_cgroup", "starved: its cgroup, when readable"),
];

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
            Event::BoostSkipped { .. } => EventKind::BoostSkipped,
            Event::FifoFallback { .. } => EventKind::FifoFallback,
            Event::FifoPhaseExtended { .. } => EventKind::FifoPhaseExtended,
            Event::Restored { .. } => EventKind::Restored,
            Event::BoostWithoutCpu { .. } => EventKind::BoostWithoutCpu,
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
            Event::CheckFailed { .. } => EventKind::CheckFailed,
            Event::StandingAside { .. } => EventKind::StandingAside,
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            Event::BoostFailed { .. }
            | Event::FifoFallback { .. }
            | Event::FifoPhaseExtended { .. }
            | Event::BoostWithoutCpu { .. }
            | Event::RestoreFailed { .. }
            | Event::RestoreRetry { .. }
            | Event::LeftoverKept { .. }
            | Event::LedgerReplayed { .. }
            | Event::GuardianDied { .. }
            | Event::GuardianRespawnFailed { .. }
            | Event::BackendFallback { .. }
            | Event::RtThrottlingRestoreFailed { .. }
            | Event::CheckFailed { .. }
            | Event::StandingAside { .. } => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// The CPU the event is about, if it is about one.
    pub fn cpu(&self) -> Option<u32> {
        self.subject().map(|(cpu, _)| cpu)
    }

    /// The thread the event is about, if it is about one.
    pub fn tid(&self) -> Option<Pid> {
        self.subject().map(|(_, tid)| tid)
    }

    /// The CPU and thread of an event about a task: one list of those events.
    fn subject(&self) -> Option<(u32, Pid)> {
        match self {
            Event::MightStarve { cpu, task, .. }
            | Event::Starved { cpu, task, .. }
            | Event::Boosted { cpu, task, .. }
            | Event::AlreadyDeadline { cpu, task, .. }
            | Event::BoostFailed { cpu, task, .. }
            | Event::BoostSkipped { cpu, task, .. } => Some((*cpu, task.tid)),
            Event::FifoFallback { cpu, tid, .. }
            | Event::FifoPhaseExtended { cpu, tid, .. }
            | Event::Restored { cpu, tid, .. }
            | Event::BoostWithoutCpu { cpu, tid, .. }
            | Event::ExitedWhileBoosted { cpu, tid, .. }
            | Event::ChangedMeanwhile { cpu, tid, .. }
            | Event::RestoreFailed { cpu, tid, .. }
            | Event::RestoreRetry { cpu, tid, .. }
            | Event::LeftoverRestored { cpu, tid, .. }
            | Event::LeftoverKept { cpu, tid, .. } => Some((*cpu, *tid)),
            _ => None,
        }
    }

    /// The event's structured fields (see [`FIELD_DOCS`]). The kind, the text line, the
    /// priority, the MESSAGE_ID and the daemon's backend are added by the sinks.
    pub fn fields(&self) -> Fields {
        use FieldValue::{Int, Text};
        let mut out = Fields::new();
        if let Some(cpu) = self.cpu() {
            out.push(("cpu", Int(cpu.into())));
        }
        if let Some(tid) = self.tid() {
            out.push(("tid", Int(tid.into())));
        }
        let task = |out: &mut Fields, task: &TaskName| {
            if let Some(tgid) = task.tgid {
                out.push(("tgid", Int(tgid.into())));
            }
            out.push(("comm", Text(task.comm.to_string())));
        };
        let nanos = |waited: &Duration| Int(i64::try_from(waited.as_nanos()).unwrap_or(i64::MAX));
        let policy = |name: &str| ("policy", Text(name.to_owned()));
        let push_cpu_time = |out: &mut Fields, cpu_time: &Option<Duration>| {
            if let Some(cpu_time) = cpu_time {
                out.push(("cpu_time_ns", nanos(cpu_time)));
            }
        };
        match self {
            Event::Started { backend, boosting } => {
                out.push(("backend", Text((*backend).to_owned())));
                let boosting = boosting.map_or("log_only", BoostPolicy::sched_name);
                out.push(("boosting", Text(boosting.to_owned())));
            }
            Event::Stopping => {}
            Event::MightStarve {
                task: victim,
                waited,
                ..
            } => {
                task(&mut out, victim);
                out.push(("wait_ns", nanos(waited)));
            }
            Event::Starved {
                task: victim,
                waited,
                culprit,
                ..
            } => {
                task(&mut out, victim);
                out.push(("wait_ns", nanos(waited)));
                if let Some(culprit) = culprit {
                    out.push(("culprit_pid", Int(culprit.pid.into())));
                    out.push(("culprit_comm", Text(culprit.comm.to_string())));
                    out.push((
                        "culprit_policy",
                        Text(sys::policy_name(culprit.policy).to_owned()),
                    ));
                    out.push(("culprit_priority", Int(culprit.priority.into())));
                    if let Some(cgroup) = &culprit.cgroup {
                        out.push((
                            "culprit_cgroup",
                            Text(crate::task::escape_name(cgroup.as_bytes())),
                        ));
                    }
                }
            }
            Event::Boosted {
                task: victim,
                process,
                policy: boost,
                ..
            } => {
                task(&mut out, victim);
                if let Some(process) = process {
                    out.push(("process", Text(process.to_string())));
                }
                out.push(policy(boost.sched_name()));
            }
            Event::AlreadyDeadline { task: victim, .. } => {
                task(&mut out, victim);
                out.push(policy(sys::policy_name(sys::SCHED_DEADLINE)));
            }
            Event::BoostFailed {
                task: victim,
                policy: boost,
                error,
                ..
            } => {
                task(&mut out, victim);
                out.push(policy(boost.sched_name()));
                out.push(("error", Text(error.clone())));
            }
            Event::BoostSkipped {
                task: victim,
                ignored,
                ..
            } => {
                task(&mut out, victim);
                match ignored {
                    Ignored::Thread => out.push(("ignored_by", Text("thread".to_owned()))),
                    Ignored::Process(process) => {
                        out.push(("process", Text(process.to_string())));
                        out.push(("ignored_by", Text("process".to_owned())));
                    }
                }
            }
            Event::FifoFallback { .. } => out.push(policy(BoostPolicy::Fifo.sched_name())),
            Event::FifoPhaseExtended { hold, .. } => {
                out.push(policy(BoostPolicy::Fifo.sched_name()));
                out.push(("hold_ns", nanos(hold)));
            }
            Event::Restored {
                policy: to,
                cpu_time,
                undone,
                ..
            } => {
                out.push(policy(sys::policy_name(*to)));
                push_cpu_time(&mut out, cpu_time);
                if let Some(undone) = undone {
                    out.push(("undone_policy", Text(sys::policy_name(*undone).to_owned())));
                }
            }
            Event::BoostWithoutCpu { policy: to, .. } => {
                out.push(policy(sys::policy_name(*to)));
                out.push(("cpu_time_ns", Int(0)));
            }
            Event::ExitedWhileBoosted { cpu_time, .. } => push_cpu_time(&mut out, cpu_time),
            Event::ChangedMeanwhile {
                policy: to,
                cpu_time,
                ..
            } => {
                out.push(policy(sys::policy_name(*to)));
                push_cpu_time(&mut out, cpu_time);
            }
            Event::RestoreFailed {
                error,
                retry,
                cpu_time,
                ..
            } => {
                out.push(("error", Text(error.clone())));
                if let Some(retry) = retry {
                    out.push(("delay_ns", nanos(retry)));
                }
                push_cpu_time(&mut out, cpu_time);
            }
            Event::LeftoverKept { error, .. } | Event::GuardianRespawnFailed { error } => {
                out.push(("error", Text(error.clone())))
            }
            Event::RestoreRetry {
                attempt,
                attempts,
                delay,
                error,
                ..
            } => {
                out.push(("attempt", Int((*attempt).into())));
                out.push(("attempts", Int((*attempts).into())));
                out.push(("delay_ns", nanos(delay)));
                out.push(("error", Text(error.clone())));
            }
            Event::LeftoverRestored { policy: to, .. } => out.push(policy(sys::policy_name(*to))),
            Event::LedgerReplayed {
                instance,
                restored,
                kept,
            } => {
                out.push((
                    "instance",
                    Text(crate::task::escape_name(instance.as_bytes())),
                ));
                out.push((
                    "restored",
                    Int(i64::try_from(*restored).unwrap_or(i64::MAX)),
                ));
                out.push(("kept", Int(i64::try_from(*kept).unwrap_or(i64::MAX))));
            }
            Event::GuardianDied { pid, status } => {
                out.push(("guardian_pid", Int((*pid).into())));
                out.push(("status", Text(status.clone())));
            }
            Event::GuardianRespawned { pid } => out.push(("guardian_pid", Int((*pid).into()))),
            Event::BackendFallback { to, reason } => {
                out.push(("backend", Text((*to).to_owned())));
                out.push(("reason", Text(reason.clone())));
            }
            Event::RtThrottlingDisabled { saved } => {
                if let Some(saved) = saved {
                    out.push(("saved_runtime_us", Int(*saved)));
                }
            }
            Event::RtThrottlingRestored { runtime } => out.push(("runtime_us", Int(*runtime))),
            Event::RtThrottlingRestoreFailed { runtime, error } => {
                out.push(("runtime_us", Int(*runtime)));
                out.push(("error", Text(error.clone())));
            }
            Event::CheckFailed {
                error,
                failures,
                retry,
            } => {
                out.push(("error", Text(error.clone())));
                out.push(("failures", Int((*failures).into())));
                out.push(("delay_ns", nanos(retry)));
            }
            Event::StandingAside { others } => out.push(("other_instances", Text(others.clone()))),
        }
        out
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
                    policy.sched_name()
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
            Event::Starved {
                cpu,
                task,
                waited,
                culprit,
            } => {
                write!(
                    out,
                    "{}-{} starved on CPU {cpu} for {} seconds ({:.3} s)",
                    task.comm,
                    task.tid,
                    waited.as_secs(),
                    waited.as_secs_f64()
                )?;
                // After upstream's text, so that scripts matching it keep matching.
                match culprit {
                    Some(culprit) => write!(out, " behind {culprit}"),
                    None => Ok(()),
                }
            }
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
                write!(out, ") (cpu {cpu}) using {}", policy.sched_name())
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
            Event::BoostSkipped { task, ignored, .. } => match ignored {
                Ignored::Thread => write!(
                    out,
                    "Ignoring the thread {} from consideration for boosting",
                    task.comm
                ),
                Ignored::Process(process) => write!(
                    out,
                    "Ignoring the thread {} (spawned by {process}) from consideration for boosting",
                    task.comm
                ),
            },
            Event::FifoFallback { tid, .. } => write!(
                out,
                "pid {tid} did not run under SCHED_DEADLINE (the kernel kept it throttled from an earlier boost): boosting it with SCHED_FIFO instead"
            ),
            Event::FifoPhaseExtended { tid, hold, .. } => write!(
                out,
                "pid {tid} did not get the CPU within its SCHED_FIFO phase: held at SCHED_FIFO {} for up to {} ms now",
                crate::boost::FIFO_BOOST_PRIORITY,
                hold.as_millis()
            ),
            Event::Restored {
                tid,
                policy,
                cpu_time,
                undone,
                ..
            } => {
                write!(out, "restored pid {tid} to {}", sys::policy_name(*policy))?;
                // After upstream's text, so that scripts matching it keep matching.
                match (cpu_time, undone) {
                    (Some(cpu_time), None) => write!(out, " (it ran {} boosted)", cpu_ms(*cpu_time)),
                    (Some(cpu_time), Some(undone)) => write!(
                        out,
                        " (it ran {} boosted; its own switch to {} undone)",
                        cpu_ms(*cpu_time),
                        sys::policy_name(*undone)
                    ),
                    (None, Some(undone)) => write!(
                        out,
                        " (its own switch to {} undone)",
                        sys::policy_name(*undone)
                    ),
                    (None, None) => Ok(()),
                }
            }
            Event::BoostWithoutCpu { tid, policy, .. } => write!(
                out,
                "the boost of pid {tid} gave it no CPU time: restored to {}; its next boost starts with SCHED_FIFO",
                sys::policy_name(*policy)
            ),
            Event::ExitedWhileBoosted { tid, .. } => write!(out, "pid {tid} exited while boosted"),
            Event::ChangedMeanwhile { tid, policy, .. } => write!(
                out,
                "pid {tid} was switched to {} during its boost: leaving it so",
                sys::policy_name(*policy)
            ),
            Event::RestoreFailed {
                tid, error, retry, ..
            } => {
                write!(
                    out,
                    "restore_policy: failed to restore sched policy for pid {tid}: {error}"
                )?;
                match retry {
                    Some(retry) => write!(
                        out,
                        " (held: retried while stalld runs, next in {:.1} s)",
                        retry.as_secs_f64()
                    ),
                    None => Ok(()),
                }
            }
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
            // The C stalld's line.
            Event::CheckFailed { error, retry, .. } => write!(
                out,
                "Dazed and confused, but trying to continue: {error} (retrying in {} ms)",
                retry.as_millis()
            ),
            Event::StandingAside { others } => write!(
                out,
                "another stalld boosts on this host ({others}): standing aside (--stand_aside): nothing is boosted or changed by this one until it is stopped"
            ),
        }
    }
}

/// A CPU time in milliseconds with microseconds (`0.021 ms`), as the text lines show it.
fn cpu_ms(cpu_time: Duration) -> String {
    format!("{:.3} ms", cpu_time.as_secs_f64() * 1e3)
}

/// `comm-pid (SCHED_FIFO 10)`, `comm-pid (SCHED_OTHER nice 0)`.
impl fmt::Display for Culprit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy = sys::policy_name(self.policy);
        write!(f, "{}-{} ({policy} ", self.comm, self.pid)?;
        match self.policy {
            sys::SCHED_FIFO | sys::SCHED_RR => write!(f, "{})", self.priority),
            _ => write!(f, "nice {})", self.priority),
        }
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
                    culprit: None,
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
                    cpu_time: None,
                    undone: None,
                },
                "restored pid 87 to SCHED_FIFO",
            ),
            (
                Event::Restored {
                    cpu: 1,
                    tid: 87,
                    policy: sys::SCHED_FIFO,
                    cpu_time: Some(Duration::from_nanos(21_300)),
                    undone: None,
                },
                "restored pid 87 to SCHED_FIFO (it ran 0.021 ms boosted)",
            ),
            (
                Event::Restored {
                    cpu: 1,
                    tid: 87,
                    policy: sys::SCHED_FIFO,
                    cpu_time: Some(Duration::from_micros(1_500)),
                    undone: Some(sys::SCHED_FIFO),
                },
                "restored pid 87 to SCHED_FIFO (it ran 1.500 ms boosted; its own switch to SCHED_FIFO undone)",
            ),
            (
                Event::BoostWithoutCpu {
                    cpu: 1,
                    tid: 87,
                    policy: sys::SCHED_FIFO,
                },
                "the boost of pid 87 gave it no CPU time: restored to SCHED_FIFO; its next boost starts with SCHED_FIFO",
            ),
            (
                Event::FifoPhaseExtended {
                    cpu: 1,
                    tid: 87,
                    hold: Duration::from_millis(20),
                },
                "pid 87 did not get the CPU within its SCHED_FIFO phase: held at SCHED_FIFO 98 for up to 20 ms now",
            ),
            (
                Event::RestoreFailed {
                    cpu: 1,
                    tid: 87,
                    error: "Operation not permitted".into(),
                    retry: None,
                    cpu_time: None,
                },
                "restore_policy: failed to restore sched policy for pid 87: Operation not permitted",
            ),
            (
                Event::RestoreFailed {
                    cpu: 1,
                    tid: 87,
                    error: "Operation not permitted".into(),
                    retry: Some(Duration::from_millis(1_600)),
                    cpu_time: None,
                },
                "restore_policy: failed to restore sched policy for pid 87: Operation not permitted (held: retried while stalld runs, next in 1.6 s)",
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
                Event::CheckFailed {
                    error: "reading /sys/kernel/debug/sched/debug: No such file or directory (os error 2)".into(),
                    failures: 2,
                    retry: Duration::from_millis(400),
                },
                "Dazed and confused, but trying to continue: reading /sys/kernel/debug/sched/debug: No such file or directory (os error 2) (retrying in 400 ms)",
            ),
            (
                Event::BoostSkipped {
                    cpu: 1,
                    task: victim,
                    ignored: Ignored::Thread,
                },
                "Ignoring the thread kworker/1:2 from consideration for boosting",
            ),
            (
                Event::BoostSkipped {
                    cpu: 1,
                    task: victim,
                    ignored: Ignored::Process(Comm::new(b"stalld-starve")),
                },
                "Ignoring the thread kworker/1:2 (spawned by stalld-starve) from consideration for boosting",
            ),
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
                    culprit: Some(Culprit {
                        pid: 7,
                        comm: Comm::new(b"h\nog"),
                        policy: sys::SCHED_FIFO,
                        priority: 10,
                        cgroup: Some("/a\nb".into()),
                    }),
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

    /// Line and paragraph separators and bidirectional controls in names are escaped in the
    /// text line and in every field, the structured sinks' input.
    #[test]
    fn separators_and_bidirectional_controls_are_escaped_everywhere() {
        let event = Event::Starved {
            cpu: 1,
            task: task("a\u{2028}b\u{202e}c".as_bytes()),
            waited: Duration::from_secs(3),
            culprit: Some(Culprit {
                pid: 7,
                comm: Comm::new("h\u{2066}og".as_bytes()),
                policy: sys::SCHED_FIFO,
                priority: 10,
                cgroup: Some("/a\u{2029}b".into()),
            }),
        };
        let hidden = |c: char| c.is_control() || crate::task::is_format_char(c);
        let text = event.text();
        assert!(!text.contains(hidden), "{text:?}");
        assert!(
            text.contains("a\\xe2\\x80\\xa8b\\xe2\\x80\\xaec"),
            "{text:?}"
        );
        for (name, value) in event.fields() {
            assert!(!value.to_string().contains(hidden), "{name}: {value}");
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

    #[test]
    fn kinds_have_unique_names_and_message_ids() {
        let mut names = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for kind in EventKind::ALL {
            assert!(names.insert(kind.name()), "{kind:?}");
            let id = kind.message_id();
            assert!(
                id.len() == 32
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
                "{kind:?}: MESSAGE_ID {id} is not 128 bits in lower-case hex"
            );
            assert!(ids.insert(id), "{kind:?}");
        }
    }

    #[test]
    fn starved_fields_name_the_culprit_and_the_text_keeps_upstreams_start() {
        let event = Event::Starved {
            cpu: 1,
            task: task(b"kworker/1:2"),
            waited: Duration::from_millis(20_004),
            culprit: Some(Culprit {
                pid: 4242,
                comm: Comm::new(b"busy"),
                policy: sys::SCHED_FIFO,
                priority: 10,
                cgroup: Some("/user.slice".into()),
            }),
        };
        assert_eq!(
            event.text(),
            "kworker/1:2-87 starved on CPU 1 for 20 seconds (20.004 s) behind busy-4242 (SCHED_FIFO 10)"
        );
        let fields = event.fields();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        };
        assert_eq!(get("cpu").as_deref(), Some("1"));
        assert_eq!(get("tid").as_deref(), Some("87"));
        assert_eq!(get("tgid").as_deref(), Some("80"));
        assert_eq!(get("wait_ns").as_deref(), Some("20004000000"));
        assert_eq!(get("culprit_pid").as_deref(), Some("4242"));
        assert_eq!(get("culprit_policy").as_deref(), Some("SCHED_FIFO"));
        assert_eq!(get("culprit_priority").as_deref(), Some("10"));
        assert_eq!(get("culprit_cgroup").as_deref(), Some("/user.slice"));
    }

    #[test]
    fn every_field_is_documented_and_no_text_field_holds_a_control_character() {
        let hostile = task(b"x\n<0>FAKE");
        let events = [
            Event::Started {
                backend: "queue_track",
                boosting: Some(BoostPolicy::Deadline),
            },
            Event::Stopping,
            Event::MightStarve {
                cpu: 1,
                task: hostile,
                waited: Duration::from_secs(1),
            },
            Event::Starved {
                cpu: 1,
                task: hostile,
                waited: Duration::from_secs(1),
                culprit: Some(Culprit {
                    pid: 7,
                    comm: Comm::new(b"h\x1bog"),
                    policy: sys::SCHED_OTHER,
                    priority: -5,
                    cgroup: Some("/x\ny".into()),
                }),
            },
            Event::Boosted {
                cpu: 1,
                task: hostile,
                process: Some(Comm::new(b"p\r")),
                policy: BoostPolicy::Fifo,
            },
            Event::AlreadyDeadline {
                cpu: 1,
                task: hostile,
            },
            Event::BoostFailed {
                cpu: 1,
                task: hostile,
                policy: BoostPolicy::Deadline,
                error: "e".into(),
            },
            Event::BoostSkipped {
                cpu: 1,
                task: hostile,
                ignored: Ignored::Process(Comm::new(b"p\n")),
            },
            Event::FifoFallback { cpu: 1, tid: 2 },
            Event::FifoPhaseExtended {
                cpu: 1,
                tid: 2,
                hold: Duration::from_millis(20),
            },
            Event::Restored {
                cpu: 1,
                tid: 2,
                policy: sys::SCHED_OTHER,
                cpu_time: Some(Duration::from_micros(20)),
                undone: Some(sys::SCHED_FIFO),
            },
            Event::BoostWithoutCpu {
                cpu: 1,
                tid: 2,
                policy: sys::SCHED_OTHER,
            },
            Event::ExitedWhileBoosted {
                cpu: 1,
                tid: 2,
                cpu_time: Some(Duration::ZERO),
            },
            Event::ChangedMeanwhile {
                cpu: 1,
                tid: 2,
                policy: sys::SCHED_RR,
                cpu_time: Some(Duration::from_micros(20)),
            },
            Event::RestoreFailed {
                cpu: 1,
                tid: 2,
                error: "e".into(),
                retry: Some(Duration::from_secs(1)),
                cpu_time: Some(Duration::from_micros(20)),
            },
            Event::RestoreRetry {
                cpu: 1,
                tid: 2,
                attempt: 1,
                attempts: 5,
                delay: Duration::from_millis(100),
                error: "e".into(),
            },
            Event::LeftoverRestored {
                cpu: 1,
                tid: 2,
                policy: sys::SCHED_OTHER,
            },
            Event::LeftoverKept {
                cpu: 1,
                tid: 2,
                error: "e".into(),
            },
            Event::LedgerReplayed {
                instance: "instance.1.2".into(),
                restored: 3,
                kept: 0,
            },
            Event::GuardianDied {
                pid: 9,
                status: "killed by signal 9".into(),
            },
            Event::GuardianRespawned { pid: 10 },
            Event::GuardianRespawnFailed { error: "e".into() },
            Event::BackendFallback {
                to: "sched_debug",
                reason: "r".into(),
            },
            Event::RtThrottlingDisabled {
                saved: Some(950_000),
            },
            Event::RtThrottlingRestored { runtime: 950_000 },
            Event::RtThrottlingRestoreFailed {
                runtime: 950_000,
                error: "e".into(),
            },
            Event::CheckFailed {
                error: "reading /sys/kernel/debug/sched/debug: e".into(),
                failures: 3,
                retry: Duration::from_millis(800),
            },
            Event::StandingAside {
                others: "pid 7: /usr/bin/stalld --systemd, named by /run/stalld/stalld.pid".into(),
            },
        ];
        let kinds: std::collections::HashSet<_> = events.iter().map(Event::kind).collect();
        assert_eq!(kinds.len(), EventKind::ALL.len(), "one example per kind");
        for event in &events {
            for (name, value) in event.fields() {
                assert!(
                    FIELD_DOCS.iter().any(|(documented, _)| *documented == name),
                    "{name} of {event:?} is not in FIELD_DOCS"
                );
                assert!(
                    !value.to_string().contains(|c: char| c.is_control()),
                    "{name}={value} of {event:?}"
                );
            }
        }
    }
}
