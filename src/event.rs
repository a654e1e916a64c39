//! What stalld tells the world: every thing that happens to a task or to the machine is one
//! typed [`Event`], emitted once by the daemon and rendered by each sink. The text sinks
//! (stderr, kmsg, syslog) print [`Event::text`], which is upstream's line where upstream has
//! one, because operators' scripts grep for them; structured sinks take the fields.
//!
//! Each kind is one entry of the `events!` table below: its data, name, MESSAGE_ID,
//! severity, summary, the journald catalog's explanation, its fields and its text line. The
//! README's and the man page's tables, the journald catalog (`systemd/stalld.catalog`) and the
//! JSON Schema of the `--events` lines (`schema/stalld-events.schema.json`) are rendered from
//! it ([`docs`]); `tests/packaging.rs` checks them and rewrites them with `STALLD_BLESS=1`.
//!
//! Names chosen by users (thread and process names) are [`Comm`]s, whose `Display` escapes
//! control characters, so no rendering can be tricked into printing two lines for one event.

pub mod docs;

use std::fmt::{self, Write};
use std::time::Duration;

use crate::config::BoostPolicy;
use crate::sys;
use crate::task::{escape_name, Comm, Pid};

/// The version of the JSON lines' layout (their `schema` field): raised when a field changes
/// meaning or type or goes away (new kinds and new fields keep it).
pub const JSON_SCHEMA_VERSION: u32 = 1;

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

/// An event's structured fields. Each structured sink renders these generically: journald as
/// `STALLD_<NAME>`, the JSON lines and `stalld status` under `name`.
pub type Fields = Vec<(&'static str, FieldValue)>;

/// What a field's value is (the JSON Schema's `integer` or `string`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Int,
    Text,
}

/// A value an event field can hold: integers, durations (in nanoseconds), names and texts.
pub trait IntoField {
    fn into_field(self) -> FieldValue;
}

macro_rules! int_fields {
    ($($type:ty),*) => {$(
        impl IntoField for $type {
            fn into_field(self) -> FieldValue {
                FieldValue::Int(i64::try_from(self).unwrap_or(i64::MAX))
            }
        }
    )*};
}
int_fields!(i32, u32, i64, usize);

impl IntoField for Duration {
    fn into_field(self) -> FieldValue {
        self.as_nanos().into_field()
    }
}

impl IntoField for u128 {
    fn into_field(self) -> FieldValue {
        FieldValue::Int(i64::try_from(self).unwrap_or(i64::MAX))
    }
}

impl IntoField for &str {
    fn into_field(self) -> FieldValue {
        FieldValue::Text(self.to_owned())
    }
}

impl IntoField for String {
    fn into_field(self) -> FieldValue {
        FieldValue::Text(self)
    }
}

impl IntoField for Comm {
    fn into_field(self) -> FieldValue {
        FieldValue::Text(self.to_string())
    }
}

impl IntoField for BoostPolicy {
    fn into_field(self) -> FieldValue {
        self.sched_name().into_field()
    }
}

/// Events bind their data by reference.
macro_rules! fields_by_reference {
    ($($type:ty),*) => {$(
        impl IntoField for &$type {
            fn into_field(self) -> FieldValue {
                self.clone().into_field()
            }
        }
    )*};
}
fields_by_reference!(
    i32,
    u32,
    i64,
    usize,
    Duration,
    String,
    Comm,
    BoostPolicy,
    &str
);

/// What is fixed for each kind of event.
#[derive(Debug)]
pub struct KindFacts {
    /// The stable, machine-readable name (`snake_case`): `STALLD_EVENT`, the JSON `event`.
    pub name: &'static str,
    /// journald's `MESSAGE_ID`: fixed for each kind, forever, so that `journalctl
    /// MESSAGE_ID=...` and catalog entries keep working across versions.
    pub message_id: &'static str,
    pub severity: Severity,
    /// One line for operators (README, man page, the catalog's subject).
    pub summary: &'static str,
    /// What it means and what to do: the journald catalog's text (`journalctl -x`).
    pub explanation: &'static str,
    /// The fields every event of the kind carries, and those it carries when known.
    pub fields: &'static [&'static str],
    pub optional: &'static [&'static str],
}

/// The table of event kinds. Each entry: the variant with its data (doc comments allowed),
/// then its facts, its fields (`name: value`, the value anything [`IntoField`]; `optional`
/// ones are `Option`s, absent when `None`) and its text line (`text: |out| ...` writes it to
/// `out`). The data's fields are bound by reference in the value and text expressions.
macro_rules! events {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident $({ $($(#[doc = $field_doc:literal])* $field:ident : $type:ty),* $(,)? })? => {
            name: $name:literal,
            message_id: $message_id:literal,
            severity: $severity:ident,
            summary: $summary:literal,
            explanation: $explanation:literal,
            fields: { $($required:ident : $required_value:expr),* $(,)? },
            optional: { $($optional:ident : $optional_value:expr),* $(,)? },
            text: |$out:ident| $text:expr $(,)?
        }
    ),* $(,)?) => {
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Event {
            $($(#[doc = $doc])* $variant $({ $($(#[doc = $field_doc])* $field: $type),* })?,)*
        }

        /// The kind of an event without its data: what sinks key on (journald's
        /// `STALLD_EVENT`, metric labels).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventKind {
            $($variant,)*
        }

        impl EventKind {
            /// Every kind, in documentation order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            pub fn facts(self) -> &'static KindFacts {
                match self {
                    $(EventKind::$variant => &KindFacts {
                        name: $name,
                        message_id: $message_id,
                        severity: Severity::$severity,
                        summary: $summary,
                        explanation: $explanation,
                        fields: &[$(stringify!($required)),*],
                        optional: &[$(stringify!($optional)),*],
                    },)*
                }
            }
        }

        impl Event {
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Event::$variant { .. } => EventKind::$variant,)*
                }
            }

            /// The event's structured fields (see [`FIELDS`]). The kind, the text line, the
            /// priority, the MESSAGE_ID and the daemon's backend are added by the sinks.
            #[allow(unused_variables)]
            pub fn fields(&self) -> Fields {
                let mut fields = Fields::new();
                match self {
                    $(Event::$variant $({ $($field),* })? => {
                        $(fields.push((
                            stringify!($required),
                            IntoField::into_field($required_value),
                        ));)*
                        $(if let Some(value) = $optional_value {
                            fields.push((stringify!($optional), IntoField::into_field(value)));
                        })*
                    })*
                }
                fields
            }

            #[allow(unused_variables)]
            fn write_text(&self, writer: &mut String) -> fmt::Result {
                match self {
                    $(Event::$variant $({ $($field),* })? => {
                        let $out = &mut *writer;
                        $text
                    })*
                }
            }
        }
    };
}

events! {
    /// The daemon is set up and about to check the run queues for the first time.
    Started {
        backend: &'static str,
        /// `None` in log-only mode.
        boosting: Option<BoostPolicy>,
    } => {
        name: "started",
        message_id: "68fb3413926b4afd8e4e5aad0b00d6b0",
        severity: Info,
        summary: "the daemon is set up and starts checking",
        explanation: "stalld has set the machine up (backend, RT throttling, ledger, guardian) and starts checking the run queues of the monitored CPUs. STALLD_BOOSTING says how starving tasks are boosted, or log_only when they are only reported (-l).",
        fields: {
            backend: backend,
            boosting: boosting.map_or("log_only", BoostPolicy::sched_name),
        },
        optional: {},
        text: |out| match boosting {
            Some(policy) => write!(
                out,
                "started: {backend} backend, boosting with {}",
                policy.sched_name()
            ),
            None => write!(out, "started: {backend} backend, log only"),
        },
    },
    /// A shutdown was requested; boosts are being restored.
    Stopping => {
        name: "stopping",
        message_id: "b62232d71c01453cb162bd886cb8ebde",
        severity: Info,
        summary: "shutdown requested; boosts are being restored",
        explanation: "stalld was asked to stop (SIGTERM or SIGINT). Every task it boosted gets its own scheduling policy back and RT throttling is put back before it exits.",
        fields: {},
        optional: {},
        text: |out| write!(out, "stalld shutting down"),
    },
    /// Adaptive and aggressive modes: a task has waited half the threshold.
    MightStarve {
        cpu: u32,
        task: TaskName,
        waited: Duration,
    } => {
        name: "might_starve",
        message_id: "f446dd621fbf4bf98982c08effd8d6d1",
        severity: Info,
        summary: "-M/-A: a task has waited half the threshold",
        explanation: "In adaptive or aggressive mode (-M, -A) a runnable task has waited half the starvation threshold on the CPU's run queue without running. It is boosted if it reaches the threshold.",
        fields: { cpu: cpu, tid: task.tid, comm: task.comm, wait_ns: waited },
        optional: { tgid: task.tgid },
        text: |out| write!(
            out,
            "{}-{} might starve on CPU {cpu} (waiting for {} seconds)",
            task.comm,
            task.tid,
            waited.as_secs()
        ),
    },
    /// A task has waited the threshold.
    Starved {
        cpu: u32,
        task: TaskName,
        waited: Duration,
        /// The task running on the CPU at detection time, when the backend saw one.
        culprit: Option<Culprit>,
    } => {
        name: "starved",
        message_id: "2a28f5a3a35b45d781375aeabe2875b6",
        severity: Info,
        summary: "a task has waited the threshold (with the culprit)",
        explanation: "A runnable task has waited the starvation threshold (-t) on the CPU's run queue without running, usually behind a busy-looping real-time task (STALLD_CULPRIT_*). Unless stalld only logs (-l) or the task is excluded (-i, -I), it is boosted next. Frequent starvation on one CPU means its real-time workload leaves no time to the kernel threads that must run there: move them away or give them a share of the CPU.",
        fields: { cpu: cpu, tid: task.tid, comm: task.comm, wait_ns: waited },
        optional: {
            tgid: task.tgid,
            culprit_pid: culprit.as_ref().map(|culprit| culprit.pid),
            culprit_comm: culprit.as_ref().map(|culprit| culprit.comm),
            culprit_policy: culprit.as_ref().map(|culprit| sys::policy_name(culprit.policy)),
            culprit_priority: culprit.as_ref().map(|culprit| culprit.priority),
            culprit_cgroup: culprit
                .as_ref()
                .and_then(|culprit| culprit.cgroup.as_deref())
                .map(|cgroup| escape_name(cgroup.as_bytes())),
        },
        text: |out| {
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
        },
    },
    Boosted {
        cpu: u32,
        task: TaskName,
        /// The name of the task's process, as upstream prints it (`None`: unreadable).
        process: Option<Comm>,
        policy: BoostPolicy,
    } => {
        name: "boosted",
        message_id: "a58d627fe1fb4428b6c2c9986507e1eb",
        severity: Info,
        summary: "a starving task was boosted",
        explanation: "A starving task was lent SCHED_DEADLINE (or SCHED_FIFO with -F): a small runtime every period (-r, -p) for the boost duration (-d). Its own policy is restored afterwards (a restored event follows, with the CPU time it received).",
        fields: { cpu: cpu, tid: task.tid, comm: task.comm, policy: policy },
        optional: { tgid: task.tgid, process: process },
        text: |out| {
            write!(out, "boosted pid {} (", task.tid)?;
            match process {
                Some(process) => write!(out, "{process}")?,
                None => write!(out, "<unknown>")?,
            }
            write!(out, ") (cpu {cpu}) using {}", policy.sched_name())
        },
    },
    /// A task that already runs with SCHED_DEADLINE is not boosted (it would only lose
    /// bandwidth).
    AlreadyDeadline {
        cpu: u32,
        task: TaskName,
    } => {
        name: "already_deadline",
        message_id: "624423dcb7ba4dbea67a8d3cf331109c",
        severity: Info,
        summary: "not boosted: the task already runs with SCHED_DEADLINE",
        explanation: "A starving task already runs with SCHED_DEADLINE: a boost would only replace its own reservation, so it is left alone. A SCHED_DEADLINE task that starves has a reservation too small for its work.",
        fields: {
            cpu: cpu,
            tid: task.tid,
            comm: task.comm,
            policy: sys::policy_name(sys::SCHED_DEADLINE),
        },
        optional: { tgid: task.tgid },
        text: |out| write!(
            out,
            "not boosting pid {} ({}): it already runs with SCHED_DEADLINE",
            task.tid, task.comm
        ),
    },
    BoostFailed {
        cpu: u32,
        task: TaskName,
        policy: BoostPolicy,
        error: String,
    } => {
        name: "boost_failed",
        message_id: "1a9894a348e84e04ba3d89504e54be43",
        severity: Warning,
        summary: "the boost system call failed",
        explanation: "sched_setattr() refused to boost a starving task (STALLD_ERROR). The task may have exited meanwhile (No such process); otherwise check that SCHED_DEADLINE admission control leaves room (sched_rt_runtime_us, other DEADLINE tasks) or boost with SCHED_FIFO (-F).",
        fields: { cpu: cpu, tid: task.tid, comm: task.comm, policy: policy, error: error },
        optional: { tgid: task.tgid },
        text: |out| {
            let function = match policy {
                BoostPolicy::Deadline => "boost_with_deadline",
                BoostPolicy::Fifo => "boost_with_fifo",
            };
            write!(out, "{function} failed to boost pid {}: {error}", task.tid)
        },
    },
    /// A starving task is not boosted: a denylist (`-i`, `-I`) names it.
    BoostSkipped {
        cpu: u32,
        task: TaskName,
        ignored: Ignored,
    } => {
        name: "boost_skipped",
        message_id: "a31475a118dc4038af820a4d50d6a89d",
        severity: Info,
        summary: "not boosted: a denylist (-i, -I) names the task",
        explanation: "A starving task was not boosted because the thread's name matched -i or its process's name matched -I (STALLD_IGNORED_BY says which; STALLD_PROCESS names the process). It keeps starving until its wait ends on its own.",
        fields: {
            cpu: cpu,
            tid: task.tid,
            comm: task.comm,
            ignored_by: match ignored {
                Ignored::Thread => "thread",
                Ignored::Process(_) => "process",
            },
        },
        optional: {
            tgid: task.tgid,
            process: match ignored {
                Ignored::Process(process) => Some(process),
                Ignored::Thread => None,
            },
        },
        text: |out| match ignored {
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
    },
    /// A DEADLINE boost did not run its task; it became a SCHED_FIFO boost.
    FifoFallback {
        cpu: u32,
        tid: Pid,
    } => {
        name: "fifo_fallback",
        message_id: "789c7153d7b74a5c8595339dad465917",
        severity: Warning,
        summary: "a DEADLINE boost did not run its task and became a FIFO boost",
        explanation: "The task received no CPU time under its SCHED_DEADLINE boost (the kernel kept it throttled from an earlier boost), so it is boosted with SCHED_FIFO 98 instead for the rest of the boost.",
        fields: { cpu: cpu, tid: tid, policy: BoostPolicy::Fifo },
        optional: {},
        text: |out| write!(
            out,
            "pid {tid} did not run under SCHED_DEADLINE (the kernel kept it throttled from an earlier boost): boosting it with SCHED_FIFO instead"
        ),
    },
    /// A SCHED_FIFO phase did not run its task within its hold: the task is held at FIFO 98
    /// longer, up to `hold` in this phase and the boost's later ones.
    FifoPhaseExtended {
        cpu: u32,
        tid: Pid,
        hold: Duration,
    } => {
        name: "fifo_phase_extended",
        message_id: "3c85c575d9a64dd9980a6b9594adbe9f",
        severity: Warning,
        summary: "a FIFO phase did not run its task within its hold; it is held at FIFO 98 longer",
        explanation: "A SCHED_FIFO boost phase ended without the task getting the CPU, so it is held at SCHED_FIFO 98 longer (up to STALLD_HOLD_NS). Something of higher priority (a SCHED_FIFO 99 task, SCHED_DEADLINE tasks, interrupts) keeps the CPU.",
        fields: { cpu: cpu, tid: tid, policy: BoostPolicy::Fifo, hold_ns: hold },
        optional: {},
        text: |out| write!(
            out,
            "pid {tid} did not get the CPU within its SCHED_FIFO phase: held at SCHED_FIFO {} for up to {} ms now",
            crate::boost::FIFO_BOOST_PRIORITY,
            hold.as_millis()
        ),
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
    } => {
        name: "restored",
        message_id: "63115ea47a2f484f8f0debebc09c39f4",
        severity: Info,
        summary: "a boost ended; the task has its own attributes back (with the CPU time it got)",
        explanation: "A boost ended and the task has its own scheduling policy back. STALLD_CPU_TIME_NS is the CPU time it received while boosted, taken from the CPU's other tasks.",
        fields: { cpu: cpu, tid: tid, policy: sys::policy_name(*policy) },
        optional: {
            cpu_time_ns: cpu_time,
            undone_policy: undone.map(sys::policy_name),
        },
        text: |out| {
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
        },
    },
    /// A boost ended having given its task no CPU at all; its own attributes are back, and
    /// its next boost starts escalated.
    BoostWithoutCpu {
        cpu: u32,
        tid: Pid,
        policy: u32,
    } => {
        name: "boost_without_cpu",
        message_id: "add50565fc0a41da91b2e4209520124d",
        severity: Warning,
        summary: "a boost ended without the task getting any CPU; restored, next boost escalated",
        explanation: "A whole boost passed without the task getting any CPU time. It has its own policy back; if it starves again its next boost starts with SCHED_FIFO. Look for what holds the CPU above SCHED_FIFO 98.",
        fields: { cpu: cpu, tid: tid, policy: sys::policy_name(*policy), cpu_time_ns: 0 },
        optional: {},
        text: |out| write!(
            out,
            "the boost of pid {tid} gave it no CPU time: restored to {}; its next boost starts with SCHED_FIFO",
            sys::policy_name(*policy)
        ),
    },
    ExitedWhileBoosted {
        cpu: u32,
        tid: Pid,
        cpu_time: Option<Duration>,
    } => {
        name: "exited_while_boosted",
        message_id: "ab60b6bd39c047d780464a81b6cb79d6",
        severity: Info,
        summary: "the task exited during its boost",
        explanation: "The boosted task exited before its boost ended: there is nothing to restore.",
        fields: { cpu: cpu, tid: tid },
        optional: { cpu_time_ns: cpu_time },
        text: |out| write!(out, "pid {tid} exited while boosted"),
    },
    /// Someone with privilege changed the task's policy during its boost; their change is
    /// kept.
    ChangedMeanwhile {
        cpu: u32,
        tid: Pid,
        policy: u32,
        cpu_time: Option<Duration>,
    } => {
        name: "changed_meanwhile",
        message_id: "84b5aa020130495e85b7606fdcaadd9e",
        severity: Info,
        summary: "someone with privilege changed the task's policy during its boost; kept",
        explanation: "During the boost someone with CAP_SYS_NICE (an administrator, a tuning daemon) gave the task another policy (STALLD_POLICY). stalld keeps that change instead of restoring the policy it saved.",
        fields: { cpu: cpu, tid: tid, policy: sys::policy_name(*policy) },
        optional: { cpu_time_ns: cpu_time },
        text: |out| write!(
            out,
            "pid {tid} was switched to {} during its boost: leaving it so",
            sys::policy_name(*policy)
        ),
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
    } => {
        name: "restore_failed",
        message_id: "f0068fa6a92e4cd9a8ef3813f2b2b1ca",
        severity: Warning,
        summary: "giving the task its attributes back failed: held and retried, or left to the ledger at exit",
        explanation: "stalld could not give a boosted task its own policy back (STALLD_ERROR). While the daemon runs the task is shown held (stalld status, stalld_held_tasks) and retried; at exit its record stays in the ledger in /run/stalld, and the guardian, the next start or `stalld restore` retries it. The task may still hold the boost: check it with chrt -p.",
        fields: { cpu: cpu, tid: tid, error: error },
        optional: { delay_ns: retry, cpu_time_ns: cpu_time },
        text: |out| {
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
        },
    },
    /// A restore failed; it is tried again after `delay` (attempt `attempt` of `attempts`).
    RestoreRetry {
        cpu: u32,
        tid: Pid,
        attempt: u32,
        attempts: u32,
        delay: Duration,
        error: String,
    } => {
        name: "restore_retry",
        message_id: "07b913f526bf4d35a722c7c52dbf5bf4",
        severity: Warning,
        summary: "a restore failed and is tried again",
        explanation: "Giving a boosted task its own policy back failed (STALLD_ERROR); it is tried again after STALLD_DELAY_NS. After STALLD_ATTEMPTS failures the task is reported held (restore_failed).",
        fields: {
            cpu: cpu,
            tid: tid,
            attempt: attempt,
            attempts: attempts,
            delay_ns: delay,
            error: error,
        },
        optional: {},
        text: |out| write!(
            out,
            "restore_policy: failed to restore sched policy for pid {tid}: {error} (attempt {attempt} of {attempts}, retrying in {} ms)",
            delay.as_millis()
        ),
    },
    /// A task that a stalld which is gone left boosted has its own attributes back (from the
    /// ledger in /run/stalld).
    LeftoverRestored {
        cpu: u32,
        tid: Pid,
        policy: u32,
    } => {
        name: "leftover_restored",
        message_id: "949d6c1b37834bab8500125b0d1e3845",
        severity: Info,
        summary: "a task a stalld that is gone left boosted was restored from the ledger",
        explanation: "A stalld that died (killed, crashed) had left this task boosted. Its record in the ledger (/run/stalld) was replayed: the task has its own policy back.",
        fields: { cpu: cpu, tid: tid, policy: sys::policy_name(*policy) },
        optional: {},
        text: |out| write!(
            out,
            "restored pid {tid} to {}, left boosted by a stalld that is gone",
            sys::policy_name(*policy)
        ),
    },
    /// Such a task could not be restored; its record stays for the next replay.
    LeftoverKept {
        cpu: u32,
        tid: Pid,
        error: String,
    } => {
        name: "leftover_kept",
        message_id: "2edb54cbaa174d348c662024a773b447",
        severity: Warning,
        summary: "a task a stalld that is gone left boosted could not be restored; its record stays",
        explanation: "A task a dead stalld had left boosted could not be given its policy back (STALLD_ERROR). Its record stays in the ledger (/run/stalld) for the next start or `stalld restore`; meanwhile the task may still hold the boost (check it with chrt -p).",
        fields: { cpu: cpu, tid: tid, error: error },
        optional: {},
        text: |out| write!(
            out,
            "could not restore pid {tid}, left boosted by a stalld that is gone: {error}; kept in the ledger for the next `stalld restore`"
        ),
    },
    /// The ledger of a stalld that is gone was replayed.
    LedgerReplayed {
        instance: String,
        restored: usize,
        kept: usize,
    } => {
        name: "ledger_replayed",
        message_id: "fdc0c50404154f0c89ace02389481319",
        severity: Warning,
        summary: "the ledger of a stalld that is gone was replayed",
        explanation: "A stalld died without restoring what it had changed. Its ledger (STALLD_INSTANCE in /run/stalld) was replayed: STALLD_RESTORED tasks got their own policy back, STALLD_KEPT could not (their records stay), and RT throttling was put back if it had turned it off. Find out why it died (journalctl -u stalld, the OOM killer).",
        fields: {
            instance: escape_name(instance.as_bytes()),
            restored: restored,
            kept: kept,
        },
        optional: {},
        text: |out| write!(
            out,
            "undid what a stalld that is gone left behind ({instance}): {restored} task(s) restored, {kept} kept"
        ),
    },
    /// The guardian process died while the daemon runs.
    GuardianDied {
        pid: Pid,
        status: String,
    } => {
        name: "guardian_died",
        message_id: "38bed32f8db842d796f28e9160dffd32",
        severity: Warning,
        summary: "the guardian process died while the daemon runs",
        explanation: "stalld-guardian, the process that restores boosted tasks and RT throttling the moment the daemon dies, ended (STALLD_STATUS). The daemon starts it again (guardian_respawned).",
        fields: { guardian_pid: pid, status: status },
        optional: {},
        text: |out| write!(out, "the guardian process {pid} died ({status})"),
    },
    GuardianRespawned {
        pid: Pid,
    } => {
        name: "guardian_respawned",
        message_id: "24812f98c9f64ffca4db8237c74b7404",
        severity: Info,
        summary: "the guardian process was started again",
        explanation: "stalld-guardian was started again after it died: a daemon that dies is covered again.",
        fields: { guardian_pid: pid },
        optional: {},
        text: |out| write!(out, "guardian process respawned: pid {pid}"),
    },
    GuardianRespawnFailed {
        error: String,
    } => {
        name: "guardian_respawn_failed",
        message_id: "1fa1a1c4d6eb4563a66eb92e1edd675d",
        severity: Warning,
        summary: "the guardian process could not be started again",
        explanation: "stalld-guardian could not be started again (STALLD_ERROR). Until it runs, what a killed daemon leaves boosted is restored only by the next start of stalld or `stalld restore`. The daemon tries again at its next boost.",
        fields: { error: error },
        optional: {},
        text: |out| write!(
            out,
            "cannot respawn the guardian process: {error}; until it runs, boosts of a killed stalld wait for the next start or `stalld restore`"
        ),
    },
    /// The backend asked for could not be used; `to` is used instead.
    BackendFallback {
        to: &'static str,
        reason: String,
    } => {
        name: "backend_fallback",
        message_id: "e001eae28621438a87146cee9f5d555f",
        severity: Warning,
        summary: "queue_track could not be used; sched_debug is",
        explanation: "The queue_track backend (BPF) could not be loaded (STALLD_REASON: no BTF, BPF refused, ...), so stalld parses sched_debug instead: waits are measured every granularity (-g) rather than exactly, and debugfs must be mounted. `stalld check` says what is missing.",
        fields: { backend: to, reason: reason },
        optional: {},
        text: |out| write!(out, "{reason}; falling back to {to}"),
    },
    /// RT throttling is off while stalld runs; `saved` is the runtime to put back (`None`:
    /// it was off already).
    RtThrottlingDisabled {
        saved: Option<i64>,
    } => {
        name: "rt_throttling_disabled",
        message_id: "3f35256be70844368d6eabfce8d18d15",
        severity: Info,
        summary: "RT throttling is off while stalld runs",
        explanation: "stalld turned RT throttling off (sched_rt_runtime_us = -1) so that boosted tasks are not throttled with the real-time tasks; STALLD_SAVED_RUNTIME_US is put back when it exits.",
        fields: {},
        optional: { saved_runtime_us: saved },
        text: |out| match saved {
            Some(_) => write!(out, "RT Throttling disabled"),
            None => write!(out, "RT throttling already disabled, doing nothing"),
        },
    },
    RtThrottlingRestored {
        runtime: i64,
    } => {
        name: "rt_throttling_restored",
        message_id: "e51c1ce0ce21444396f5914ba4200cb2",
        severity: Info,
        summary: "RT throttling has its saved runtime back",
        explanation: "sched_rt_runtime_us has the value stalld saved before it turned RT throttling off (STALLD_RUNTIME_US).",
        fields: { runtime_us: runtime },
        optional: {},
        text: |out| write!(out, "RT Throttling runtime restored to {runtime}"),
    },
    RtThrottlingRestoreFailed {
        runtime: i64,
        error: String,
    } => {
        name: "rt_throttling_restore_failed",
        message_id: "d9019a6591bd4dca821c57f9a4f0085f",
        severity: Warning,
        summary: "putting RT throttling back failed",
        explanation: "stalld could not write its saved value (STALLD_RUNTIME_US) back to /proc/sys/kernel/sched_rt_runtime_us (STALLD_ERROR): RT throttling may still be off. `throttlectl on` or `stalld restore` tries again.",
        fields: { runtime_us: runtime, error: error },
        optional: {},
        text: |out| write!(
            out,
            "failed to restore {} to {runtime}: {error}",
            crate::rt_runtime::PATH
        ),
    },
    /// A check of the run queues failed (the backend's snapshot); it is retried after `retry`.
    /// `failures` in a row so far.
    CheckFailed {
        error: String,
        failures: u32,
        retry: Duration,
    } => {
        name: "check_failed",
        message_id: "2c3434b7aa4e41d382139432ff6681db",
        severity: Warning,
        summary: "a check of the run queues failed (the backend's snapshot); retried",
        explanation: "The backend could not take a snapshot of the run queues (STALLD_ERROR); stalld retries after a pause that grows with each failure in a row (STALLD_FAILURES, STALLD_DELAY_NS). While no check succeeds, starving tasks go unseen: once none has for the health bound, the watchdog is no longer pinged (systemd restarts stalld) and /healthz answers 503.",
        fields: { error: error, failures: failures, delay_ns: retry },
        optional: {},
        // The C stalld's line.
        text: |out| write!(
            out,
            "Dazed and confused, but trying to continue: {error} (retrying in {} ms)",
            retry.as_millis()
        ),
    },
    /// `--stand_aside`: another stalld boosts on this host (`others`: each one's pid,
    /// command line and how it was found); this one boosts nothing until it is stopped.
    StandingAside {
        others: String,
    } => {
        name: "standing_aside",
        message_id: "cf7b7d3eb18b4188be480ac0fc4a98ab",
        severity: Warning,
        summary: "another stalld boosts on this host; this one (--stand_aside) boosts nothing",
        explanation: "Another stalld boosts on this host (STALLD_OTHER_INSTANCES), and this one was started with --stand_aside (a Kubernetes pod beside the host's stalld): it boosts and changes nothing, answers /ready with 503, and waits to be stopped. Stop one of them, or restart this one once the other is gone.",
        fields: { other_instances: others },
        optional: {},
        text: |out| write!(
            out,
            "another stalld boosts on this host ({others}): standing aside (--stand_aside): nothing is boosted or changed by this one until it is stopped"
        ),
    },
}

impl EventKind {
    /// The stable, machine-readable name (`snake_case`): `STALLD_EVENT`, the JSON `event`.
    pub fn name(self) -> &'static str {
        self.facts().name
    }

    /// journald's `MESSAGE_ID`.
    pub fn message_id(self) -> &'static str {
        self.facts().message_id
    }

    /// One line for operators (README, man page, `stalld status`).
    pub fn summary(self) -> &'static str {
        self.facts().summary
    }
}

/// A documented field: its name, what its value is, and what it means.
#[derive(Debug)]
pub struct FieldDoc {
    pub name: &'static str,
    pub kind: FieldKind,
    pub meaning: &'static str,
}

const fn field(name: &'static str, kind: FieldKind, meaning: &'static str) -> FieldDoc {
    FieldDoc {
        name,
        kind,
        meaning,
    }
}

/// Every field an event can carry, with its meaning: the documented vocabulary (a test checks
/// that events use no other name, and the docs are rendered from it).
pub const FIELDS: &[FieldDoc] = {
    use FieldKind::{Int, Text};
    &[
        field("cpu", Int, "the CPU the event is about"),
        field(
            "tid",
            Int,
            "the thread (kernel pid) the event is about; journald also gets it as OBJECT_PID",
        ),
        field("tgid", Int, "that thread's process id, when known"),
        field("comm", Text, "that thread's name (escaped)"),
        field(
            "process",
            Text,
            "the name of the thread's process (escaped)",
        ),
        field(
            "wait_ns",
            Int,
            "how long the task had waited on the run queue, in nanoseconds",
        ),
        field(
            "policy",
            Text,
            "the policy of the boost, or the policy the task was restored to or switched to",
        ),
        field(
            "backend",
            Text,
            "the backend in use (every event), or the one the daemon starts or falls back to",
        ),
        field("boosting", Text, "started: the boost policy, or log_only"),
        field("error", Text, "the system's error message"),
        field("reason", Text, "why the preferred backend could not be used"),
        field(
            "saved_runtime_us",
            Int,
            "the sched_rt_runtime_us that RT throttling gets back at exit",
        ),
        field(
            "runtime_us",
            Int,
            "the sched_rt_runtime_us written back (or that could not be)",
        ),
        field(
            "culprit_pid",
            Int,
            "starved: who held the CPU at detection time (the running task; the best-priority other waiter when that was stalld itself)",
        ),
        field("culprit_comm", Text, "starved: its name (escaped)"),
        field("culprit_policy", Text, "starved: its policy"),
        field(
            "culprit_priority",
            Int,
            "starved: its real-time priority (FIFO/RR) or nice value",
        ),
        field("culprit_cgroup", Text, "starved: its cgroup, when readable"),
        field("attempt", Int, "restore_retry: which restore attempt failed"),
        field(
            "attempts",
            Int,
            "restore_retry: how many are made before the task is reported held (it is retried for as long as the daemon runs)",
        ),
        field(
            "delay_ns",
            Int,
            "check_failed, restore_retry, restore_failed: the pause before the next attempt, in nanoseconds (restore_failed: only while the daemon keeps retrying)",
        ),
        field(
            "cpu_time_ns",
            Int,
            "restored, exited_while_boosted, changed_meanwhile, restore_failed: the CPU time the task received while it held the boost, in nanoseconds (taken from the CPU's other tasks); absent when it could not be measured",
        ),
        field(
            "undone_policy",
            Text,
            "restored: the policy the task had switched itself to during the boost, a change it could make without privilege, undone",
        ),
        field(
            "hold_ns",
            Int,
            "fifo_phase_extended: how long a FIFO phase may now hold the task without it running, in nanoseconds",
        ),
        field(
            "instance",
            Text,
            "ledger_replayed: the dead stalld's records in /run/stalld (instance.PID.START)",
        ),
        field(
            "restored",
            Int,
            "ledger_replayed: tasks given their own attributes back",
        ),
        field(
            "kept",
            Int,
            "ledger_replayed: tasks that could not be restored (their records stay)",
        ),
        field("guardian_pid", Int, "the guardian process the event is about"),
        field(
            "other_instances",
            Text,
            "standing_aside: each other stalld that boosts here (pid, command line, how it was found)",
        ),
        field(
            "status",
            Text,
            "guardian_died: how it ended (exit status or signal)",
        ),
        field(
            "failures",
            Int,
            "check_failed: checks that failed in a row so far",
        ),
        field(
            "ignored_by",
            Text,
            "boost_skipped: the denylist that names the task, thread (-i) or process (-I)",
        ),
    ]
};

impl Event {
    pub fn severity(&self) -> Severity {
        self.kind().facts().severity
    }

    /// The CPU the event is about, if it is about one.
    pub fn cpu(&self) -> Option<u32> {
        self.int_field("cpu")
            .and_then(|cpu| u32::try_from(cpu).ok())
    }

    /// The thread the event is about, if it is about one.
    pub fn tid(&self) -> Option<Pid> {
        self.int_field("tid")
            .and_then(|tid| Pid::try_from(tid).ok())
    }

    fn int_field(&self, name: &str) -> Option<i64> {
        self.fields()
            .into_iter()
            .find_map(|(field, value)| match value {
                FieldValue::Int(value) if field == name => Some(value),
                _ => None,
            })
    }

    /// The line for the text sinks (without the `stalld: ` prefix), one line whatever the
    /// names contain.
    pub fn text(&self) -> String {
        let mut line = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut line);
        line
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
                ignored: Ignored::Process(Comm::new(b"p\x1b")),
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
            let facts = event.kind().facts();
            let fields = event.fields();
            for name in facts.fields {
                assert!(
                    fields.iter().any(|(field, _)| field == name),
                    "{event:?} lacks its field {name}"
                );
            }
            for (name, value) in &fields {
                let documented = FIELDS.iter().find(|field| field.name == *name);
                let Some(documented) = documented else {
                    panic!("{name} of {event:?} is not in FIELDS");
                };
                let kind = match value {
                    FieldValue::Int(_) => FieldKind::Int,
                    FieldValue::Text(_) => FieldKind::Text,
                };
                assert_eq!(kind, documented.kind, "{name} of {event:?}");
                assert!(
                    facts.fields.contains(name) || facts.optional.contains(name),
                    "{name} of {event:?} is not in its entry"
                );
                assert!(
                    !value.to_string().contains(|c: char| c.is_control()),
                    "{name}={value} of {event:?}"
                );
            }
        }
        // Every kind's example is a valid JSON line as far as the entry says: the schema
        // names each field the entries name.
        for kind in EventKind::ALL {
            let facts = kind.facts();
            for name in facts.fields.iter().chain(facts.optional) {
                assert!(FIELDS.iter().any(|field| field.name == *name), "{name}");
            }
        }
    }
}
