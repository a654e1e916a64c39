//! The booster: lends a starving task a real-time policy for a bounded time, then gives it back
//! exactly the scheduling attributes it had.
//!
//! SCHED_DEADLINE boosts are one switch there and one back. SCHED_FIFO boosts (`-F`, for
//! kernels where DEADLINE cannot be used, and the fallback below) emulate a reservation: in
//! every `period` a phase at FIFO 98 that lasts until the task has *received* `runtime` of
//! CPU, its own policy for the rest. Boosts never block each other: each has its own next
//! event, and the daemon loop calls [`Booster::advance`] when the earliest is due.
//!
//! Every boost is verified by what the task got, read from the kernel's own accounting of the
//! task ([`RunStats`]: its CPU time, and how many times it got a CPU, which the kernel counts
//! the moment it switches the task in):
//! - a DEADLINE boost that has not run its task [`VERIFY_AFTER`] in becomes a FIFO boost
//!   (kernels keep a task throttled whose earlier DEADLINE stint ended while throttled, and a
//!   new DEADLINE boost then silently does nothing);
//! - a FIFO phase ends once the task has run `runtime`, but a task that does not get the CPU
//!   (a higher priority, a preempted virtual CPU) is not held at FIFO 98 longer than its hold
//!   ([`FIFO_HOLD`]); a phase that ran nothing within it is held longer (doubling up to
//!   [`FIFO_HOLD_MAX`]), and so is every later phase of the boost;
//! - the CPU time the task received while it held the boost is counted, and a boost that gave
//!   it none is told apart from one that did; the next boost of such a task starts as a FIFO
//!   boost with the longer hold instead of repeating what did not work.
//!
//! A task whose policy was changed during the boost in a way that takes privilege keeps that
//! change; a change the task could make itself from the boost (see [`rules`]) is undone like
//! the boost. A restore that fails is retried with growing pauses for as long as the daemon
//! runs; after [`RESTORE_ATTEMPTS`] the task is reported held.
//!
//! Every boost is written to a [`BoostLedger`] before it is applied and struck from it once the
//! task has its own attributes back, so that whatever kills the daemon, someone can undo it
//! ([`restore`] is how, for the daemon and for whoever replays the ledger). Our boosts are
//! known by those records, never by a policy alone (a task may run at FIFO 98 on its own).
//! Every action on a pid first checks that it still names the boosted task (its start time).
//! The system calls sit behind [`SchedOps`], so all of this is unit-tested with a fake kernel.

pub mod eligibility;
mod rules;
mod sched;

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use crate::config::{BoostParams, BoostPolicy};
pub use crate::procfs::RunStats;
use crate::sys::{self, SchedAttr, SCHED_DEADLINE, SCHED_FIFO, SCHED_FLAG_RESET_ON_FORK};
use crate::task::{MonoTime, Pid};
pub use rules::{could_set_itself, SelfLimits};
#[cfg(test)]
pub use sched::fake;
pub use sched::{start_time, Kernel, SchedOps};

/// The FIFO priority of `-F` boosts: above every ordinary RT task, below the kernel's 99.
pub const FIFO_BOOST_PRIORITY: u32 = 98;

/// When to check that a DEADLINE boost ran its task. A fresh reservation has the earliest
/// deadline around and runs at once; only other DEADLINE entities (the fair server: 50 ms)
/// may go first.
pub const VERIFY_AFTER: Duration = Duration::from_millis(100);

/// How long a FIFO phase may hold a task that has not got the CPU, at first: far beyond a
/// reschedule, even of a virtual machine's CPU.
pub const FIFO_HOLD: Duration = Duration::from_millis(10);

/// Where the hold stops doubling: below the shortest period (200 ms), so a phase never runs
/// into the next.
pub const FIFO_HOLD_MAX: Duration = Duration::from_millis(160);

/// The longest pause between two looks at a FIFO phase whose task has not got the CPU yet
/// (the pauses double from `runtime`): also the most a task may run beyond its runtime before
/// it is seen running (`-r` is at most 1 ms).
pub const PHASE_LOOK_MAX: Duration = Duration::from_millis(1);

/// Restore attempts before the task is reported held (`restore_failed`); it is retried for as
/// long as the daemon runs, and its record stays in the ledger for whoever replays it after.
pub const RESTORE_ATTEMPTS: u32 = 5;

/// The pause after the first failed restore; doubled after each further one.
pub const RESTORE_RETRY: Duration = Duration::from_millis(100);

/// The longest pause between restore attempts of a held task.
pub const RESTORE_RETRY_MAX: Duration = Duration::from_secs(10);

/// How many tasks whose last boost gave them nothing are remembered (to start their next boost
/// escalated); beyond that the memory starts over.
const ESCALATIONS_KEPT: usize = 1024;

/// The pause after failed restore number `attempt` (1-based).
pub fn retry_delay(attempt: u32) -> Duration {
    RESTORE_RETRY
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(RESTORE_RETRY_MAX)
}

/// What a boost changed, as the ledger keeps it: enough to undo it without the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoostRecord {
    pub tid: Pid,
    /// The task's start time: with `tid`, it names one task.
    pub start: u64,
    pub cpu: u32,
    /// The attributes to give back.
    pub saved: SchedAttr,
    /// The boost's runtime and period (ns): what tells our boost from the task's own policy.
    pub runtime_ns: u64,
    pub period_ns: u64,
    /// The boost policies the task may hold: [`BoostPolicy::Deadline`] for a DEADLINE boost
    /// that has not fallen back, [`BoostPolicy::Fifo`] once FIFO 98 is possible (rewritten
    /// before the fallback is applied). It decides which changes the task could make itself.
    pub policy: BoostPolicy,
}

/// Where boosts are written down before they are applied.
pub trait BoostLedger {
    /// Keeps `record` until [`forget`](BoostLedger::forget), replacing an earlier record of
    /// the same task. An error means the change must not be applied: nobody could undo it if
    /// the daemon died.
    fn record(&mut self, record: &BoostRecord) -> io::Result<()>;
    /// The task has its own attributes back (or is gone): nothing left to undo.
    fn forget(&mut self, record: &BoostRecord);
    /// Whether the ledger keeps a record of task `tid` started at `start` that a replay could
    /// not undo (a stalld that is gone left it boosted): such a task is not boosted over it.
    fn kept(&self, tid: Pid, start: u64) -> bool;
}

/// For a booster whose boosts need no record (tests of the kernel calls alone).
pub struct NoLedger;

impl BoostLedger for NoLedger {
    fn record(&mut self, _: &BoostRecord) -> io::Result<()> {
        Ok(())
    }

    fn forget(&mut self, _: &BoostRecord) {}

    fn kept(&self, _: Pid, _: u64) -> bool {
        false
    }
}

/// The FIFO phase a task is in (it holds FIFO 98 now).
#[derive(Clone, Copy, Debug)]
struct Phase {
    /// When the task got FIFO 98.
    started: MonoTime,
    /// When it is given back if the task has not got the CPU by then.
    limit: MonoTime,
    /// When the task was first seen to have got the CPU.
    seen_running: Option<MonoTime>,
}

/// A task currently holding a boost, or whose restore is being retried.
#[derive(Clone, Copy, Debug)]
pub struct ActiveBoost {
    pub pid: Pid,
    /// The task's start time at the boost: every later action checks it.
    pub start: u64,
    pub cpu: u32,
    /// The attributes to give back.
    pub saved: SchedAttr,
    pub until: MonoTime,
    /// When this boost next needs [`Booster::advance`]: a verification, a look at a FIFO
    /// phase, a phase change, the end, or the next restore attempt.
    next_event: MonoTime,
    /// Start of the current FIFO period.
    period_start: MonoTime,
    /// Whether the task holds the boost policy right now (FIFO boosts alternate).
    holding: bool,
    /// The policy the boost uses now.
    pub policy: BoostPolicy,
    /// For a DEADLINE boost: when to check that it ran its task.
    verify_at: Option<MonoTime>,
    /// The current FIFO phase, while `holding` a FIFO boost.
    phase: Option<Phase>,
    /// What the FIFO phases may hold a task that does not get the CPU.
    pub hold: Duration,
    /// The task's run statistics when it last got the boost policy (`None`: not measurable).
    mark: Option<RunStats>,
    /// The CPU time the task received while it held the boost (stretches that ended).
    received: Duration,
    /// Whether it got a CPU at all while it held the boost.
    ran: bool,
    /// Whether every stretch could be measured.
    measured: bool,
    /// The policy the task had switched itself to in a FIFO phase, undone at its end (told
    /// when the boost ends).
    undone: Option<u32>,
    /// Restores that failed so far; above zero the boost is over and its restore is retried.
    failed_restores: u32,
}

impl ActiveBoost {
    /// The CPU time the task received while it held the boost, when it could be measured:
    /// what the boost cost the CPU's other tasks.
    pub fn received(&self) -> Option<Duration> {
        self.measured.then_some(self.received)
    }

    /// Whether the boost is known to have given the task no CPU at all.
    pub fn gave_nothing(&self) -> bool {
        self.measured && !self.ran && self.received.is_zero()
    }

    /// Whether its restore failed [`RESTORE_ATTEMPTS`] times: it may hold the boost still,
    /// and is retried.
    pub fn is_held(&self) -> bool {
        self.failed_restores >= RESTORE_ATTEMPTS
    }

    /// The stretch the task held the boost policy ends with run statistics `after` (read
    /// after the policy was taken away, when the kernel's count is exact).
    fn account(&mut self, after: Option<RunStats>) {
        match (self.mark.take(), after) {
            (Some(mark), Some(after)) => {
                self.received += after.cpu_since(&mark);
                self.ran |= after.ran_since(&mark);
            }
            _ => self.measured = false,
        }
    }
}

/// A task as [`Booster::inspect`] found it.
#[derive(Debug)]
pub struct Inspection {
    pub pid: Pid,
    /// Its start time (`None`: gone, or /proc unreadable).
    start: Option<u64>,
    attr: io::Result<SchedAttr>,
    boosted: bool,
    kept: bool,
}

impl Inspection {
    /// What the rule needs to know of it.
    pub fn standing(&self) -> eligibility::Standing {
        eligibility::Standing {
            boosted: self.boosted,
            kept: self.kept,
            policy: self.attr.as_ref().ok().map(|attr| attr.policy),
        }
    }
}

/// What [`eligibility::Skip::Kept`] says where a boost failure is reported.
pub const STILL_BOOSTED: &str =
    "it still holds a boost whose restore failed; its own attributes stay in the ledger";

#[derive(Debug, thiserror::Error)]
pub enum BoostError {
    /// The rule says no ([`eligibility::decide`]).
    #[error("{}", skip_text(.0))]
    Skipped(eligibility::Skip),
    /// The ledger refused the record: a boost nobody could undo is not applied.
    #[error("not boosted, the boost could not be recorded first: {0}")]
    Ledger(io::Error),
    #[error("{0}")]
    System(#[from] io::Error),
}

fn skip_text(skip: &eligibility::Skip) -> String {
    match skip {
        eligibility::Skip::AlreadyDeadline => "it already runs with SCHED_DEADLINE".to_owned(),
        // Our records say it still holds one of our boosts (its restore failed): boosting it
        // again would record the boost's attributes as its own, over the record that keeps
        // them.
        eligibility::Skip::Kept | eligibility::Skip::AlreadyBoosted => STILL_BOOSTED.to_owned(),
        other => format!("not boosted: {other:?}"),
    }
}

/// What became of a boost when it ended (or an attempt to end it).
#[derive(Debug)]
pub enum Restore {
    /// The saved attributes are back.
    Restored,
    /// The task had switched itself to `policy` during the boost, a change it could make
    /// without privilege from the boost: undone, the saved attributes are back.
    Undone { policy: u32 },
    /// The task exited during the boost (or its pid names another task now).
    Exited,
    /// Someone with privilege changed the task's policy during the boost; their change is
    /// kept.
    ChangedMeanwhile { policy: u32 },
    /// Restore attempt `attempt` failed; the next one comes after `delay`. Not an end.
    Retry {
        attempt: u32,
        delay: Duration,
        error: io::Error,
    },
    /// Attempt [`RESTORE_ATTEMPTS`] failed too: the task may still hold the boost. It is
    /// retried every `delay` at most, for as long as the daemon runs. Not an end.
    Held { delay: Duration, error: io::Error },
    /// The last attempt failed (at shutdown, or in a replay): the task may still hold the
    /// boost. Its record stays in the ledger for whoever replays it.
    Failed(io::Error),
}

impl Restore {
    /// Whether nothing is left to undo (the record can go).
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            Restore::Restored
                | Restore::Undone { .. }
                | Restore::Exited
                | Restore::ChangedMeanwhile { .. }
        )
    }
}

/// What [`Booster::advance`] reports of a boost.
#[derive(Debug)]
pub enum Step {
    /// A DEADLINE boost had not run its task [`VERIFY_AFTER`] in: it is a FIFO boost now.
    FifoFallback,
    /// A FIFO phase had not run its task within its hold: the task is held at FIFO 98 longer
    /// now, up to `hold` in this phase and every later one.
    Escalated { hold: Duration },
    /// The boost ended, or an attempt to end it failed.
    Restore(Restore),
}

/// The attributes of a boost with `runtime_ns` every `period_ns`.
fn boost_attr(policy: BoostPolicy, runtime_ns: u64, period_ns: u64) -> SchedAttr {
    match policy {
        BoostPolicy::Deadline => SchedAttr {
            flags: SCHED_FLAG_RESET_ON_FORK,
            runtime: runtime_ns,
            deadline: period_ns,
            period: period_ns,
            ..SchedAttr::new(SCHED_DEADLINE)
        },
        BoostPolicy::Fifo => SchedAttr {
            flags: SCHED_FLAG_RESET_ON_FORK,
            rt_priority: FIFO_BOOST_PRIORITY,
            ..SchedAttr::new(SCHED_FIFO)
        },
    }
}

/// The boost policies a record allows, the one it was made with last.
fn allowed_policies(record: &BoostRecord) -> &'static [BoostPolicy] {
    match record.policy {
        BoostPolicy::Deadline => &[BoostPolicy::Deadline],
        // A FIFO record may follow a DEADLINE boost that fell back.
        BoostPolicy::Fifo => &[BoostPolicy::Fifo, BoostPolicy::Deadline],
    }
}

/// Whether `attr` is exactly one of the boosts `record` allows (reset-on-fork included: a
/// change without it took privilege).
fn holds_boost(attr: &SchedAttr, record: &BoostRecord) -> bool {
    allowed_policies(record).iter().any(|&policy| {
        let ours = boost_attr(policy, record.runtime_ns, record.period_ns);
        attr.policy == ours.policy
            && attr.rt_priority == ours.rt_priority
            && attr.runtime == ours.runtime
            && attr.period == ours.period
            && attr.flags & SCHED_FLAG_RESET_ON_FORK != 0
    })
}

/// Whether the task of `record`, now holding `now`, could have made that change itself from
/// one of the boosts the record allows.
fn changed_by_itself(record: &BoostRecord, now: &SchedAttr, limits: SelfLimits) -> bool {
    allowed_policies(record).iter().any(|&policy| {
        let boost = boost_attr(policy, record.runtime_ns, record.period_ns);
        could_set_itself(&boost, record.saved.nice, now, limits)
    })
}

/// Gives `record.tid` its saved attributes back, if it is still the task that was boosted and
/// still holds a boost of the record, or a policy it switched itself to from the boost. The
/// one restore of the daemon, the guardian and every replay of the ledger. (Between the
/// identity check and the system call a pid could only be reused after the task exits and the
/// kernel wraps around every pid: microseconds against the pid space.)
pub fn restore(sched: &mut dyn SchedOps, record: &BoostRecord) -> Restore {
    match sched.start_time(record.tid) {
        Some(start) if start == record.start => {}
        Some(_) => return Restore::Exited,
        // No start time but a live pid: /proc could not be read (EMFILE, ENOMEM, ...), which
        // is no proof that the task is gone. Retried, and the record kept, rather than
        // forgotten with the boost perhaps still on.
        None if sched.getattr(record.tid).is_ok() => {
            return Restore::Failed(io::Error::other(format!(
                "the start time of pid {} cannot be read to check it is the boosted task",
                record.tid
            )))
        }
        None => return Restore::Exited,
    }
    let undone = match sched.getattr(record.tid) {
        Err(error) => return exited_or_failed(error),
        Ok(now) if holds_boost(&now, record) => None,
        Ok(now) if changed_by_itself(record, &now, sched.limits(record.tid)) => Some(now.policy),
        Ok(now) => return Restore::ChangedMeanwhile { policy: now.policy },
    };
    match sched.setattr(record.tid, &restorable(record.saved)) {
        Ok(()) => match undone {
            Some(policy) => Restore::Undone { policy },
            None => Restore::Restored,
        },
        Err(error) => exited_or_failed(error),
    }
}

pub struct Booster {
    params: BoostParams,
    sched: Box<dyn SchedOps>,
    ledger: Box<dyn BoostLedger>,
    active: Vec<ActiveBoost>,
    /// Tasks (tid, start time) whose last boost gave them no CPU, with the hold their next
    /// boost starts with (as a FIFO boost).
    escalations: HashMap<(Pid, u64), Duration>,
}

impl Booster {
    /// A booster on the real kernel that records nothing.
    pub fn new(params: BoostParams) -> Booster {
        Booster::with(params, Box::new(Kernel), Box::new(NoLedger))
    }

    pub fn with(
        params: BoostParams,
        sched: Box<dyn SchedOps>,
        ledger: Box<dyn BoostLedger>,
    ) -> Booster {
        Booster {
            params,
            sched,
            ledger,
            active: Vec::new(),
            escalations: HashMap::new(),
        }
    }

    pub fn policy_name(&self) -> &'static str {
        sys::policy_name(self.boost_attr(self.params.policy).policy)
    }

    fn runtime_ns(&self) -> u64 {
        self.params.runtime.as_nanos() as u64
    }

    fn period_ns(&self) -> u64 {
        self.params.period.as_nanos() as u64
    }

    fn boost_attr(&self, policy: BoostPolicy) -> SchedAttr {
        boost_attr(policy, self.runtime_ns(), self.period_ns())
    }

    fn record_of(&self, boost: &ActiveBoost) -> BoostRecord {
        BoostRecord {
            tid: boost.pid,
            start: boost.start,
            cpu: boost.cpu,
            saved: boost.saved,
            runtime_ns: self.runtime_ns(),
            period_ns: self.period_ns(),
            policy: boost.policy,
        }
    }

    /// Whether `pid` holds one of our boosts, or its restore is being retried.
    pub fn is_boosted(&self, pid: Pid) -> bool {
        self.active.iter().any(|boost| boost.pid == pid)
    }

    /// What the booster knows of `pid` now: whether it is ours (by our records, not by its
    /// policy: a task may run at FIFO 98 on its own), and its identity and attributes, read
    /// once for [`eligibility::decide`] and, if it says so, for [`Booster::apply`].
    pub fn inspect(&self, pid: Pid) -> Inspection {
        let start = self.sched.start_time(pid);
        Inspection {
            pid,
            start,
            attr: self.sched.getattr(pid),
            boosted: self.is_boosted(pid),
            kept: start.is_some_and(|start| self.ledger.kept(pid, start)),
        }
    }

    /// [`inspect`](Booster::inspect), the rule ([`eligibility::decide`], with no denylist),
    /// [`apply`](Booster::apply): a boost of `pid` if the rule allows one.
    pub fn boost(&mut self, pid: Pid, cpu: u32, now: MonoTime) -> Result<ActiveBoost, BoostError> {
        let inspection = self.inspect(pid);
        let none = crate::config::Denylist::default();
        let rules = eligibility::Rules {
            own_pid: std::process::id() as Pid,
            boost_mode: crate::config::BoostMode::Boost,
            ignore_threads: &none,
            ignore_processes: &none,
        };
        let task = eligibility::Candidate {
            pid,
            comm: crate::task::Comm::default(),
            process: None,
            standing: inspection.standing(),
        };
        match eligibility::decide(&task, &rules) {
            eligibility::Decision::Boost => self.apply(inspection, cpu, now),
            eligibility::Decision::Skip(skip) => Err(BoostError::Skipped(skip)),
        }
    }

    /// Saves the task's attributes (as inspected), records the boost, and switches the task to
    /// the boost policy until `now + duration`: the configured policy, or a FIFO boost with a
    /// longer hold for a task whose last boost gave it nothing. Whether the task should be
    /// boosted is [`eligibility::decide`]'s to say, before.
    pub fn apply(
        &mut self,
        inspection: Inspection,
        cpu: u32,
        now: MonoTime,
    ) -> Result<ActiveBoost, BoostError> {
        let pid = inspection.pid;
        let start = inspection
            .start
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        let saved = inspection.attr?;
        let escalated = self.escalations.get(&(pid, start)).copied();
        let policy = match escalated {
            Some(_) => BoostPolicy::Fifo,
            None => self.params.policy,
        };
        let until = now.after(self.params.duration);
        let boost = ActiveBoost {
            pid,
            start,
            cpu,
            saved,
            until,
            next_event: until,
            period_start: now,
            holding: true,
            policy,
            verify_at: (policy == BoostPolicy::Deadline)
                .then(|| now.after(VERIFY_AFTER).min(until)),
            phase: None,
            hold: escalated.unwrap_or(FIFO_HOLD),
            // Read before the switch: the task is waiting, so nothing is lost in between.
            mark: self.sched.run_stats(pid),
            received: Duration::ZERO,
            ran: false,
            measured: true,
            undone: None,
            failed_restores: 0,
        };
        let record = self.record_of(&boost);
        // First the record, then the boost: there is no moment where a boost exists that no
        // one could undo.
        self.ledger.record(&record).map_err(BoostError::Ledger)?;
        if let Err(error) = self.sched.setattr(pid, &self.boost_attr(policy)) {
            self.ledger.forget(&record);
            return Err(error.into());
        }
        let mut boost = boost;
        match policy {
            BoostPolicy::Fifo => self.begin_phase(&mut boost, now),
            BoostPolicy::Deadline => boost.next_event = boost.verify_at.unwrap_or(until),
        }
        self.active.push(boost);
        Ok(boost)
    }

    /// When the earliest boost needs [`advance`](Booster::advance).
    pub fn next_event(&self) -> Option<MonoTime> {
        self.active.iter().map(|boost| boost.next_event).min()
    }

    /// Does what is due at `now` for every boost: verifies DEADLINE boosts, looks at FIFO
    /// phases and moves them on, ends boosts whose time is up and retries restores, reporting
    /// each step.
    pub fn advance(&mut self, now: MonoTime, mut report: impl FnMut(&ActiveBoost, Step)) {
        let mut i = 0;
        while i < self.active.len() {
            let mut boost = self.active[i];
            let retrying = boost.failed_restores > 0;
            let over = retrying || now >= boost.until;
            if boost.next_event > now && (retrying || !over) {
                i += 1;
                continue;
            }
            let step = if over {
                Err(self.give_back(&mut boost))
            } else if boost.verify_at.is_some_and(|at| at <= now) {
                Ok(self.verify(&mut boost, now))
            } else if boost.holding && boost.policy == BoostPolicy::Fifo {
                self.look_at_phase(&mut boost, now)
            } else if !boost.holding {
                self.take_boost_again(&mut boost, now).map(|()| None)
            } else {
                boost.next_event = boost.until;
                Ok(None)
            };
            self.active[i] = boost;
            match step {
                Ok(news) => {
                    if let Some(news) = news {
                        report(&boost, news);
                    }
                    i += 1;
                }
                Err(Restore::Failed(error)) => {
                    let attempt = boost.failed_restores + 1;
                    let delay = retry_delay(attempt);
                    let later = ActiveBoost {
                        failed_restores: attempt,
                        next_event: now.after(delay),
                        until: boost.until.min(now),
                        verify_at: None,
                        phase: None,
                        ..boost
                    };
                    self.active[i] = later;
                    let news = match attempt.cmp(&RESTORE_ATTEMPTS) {
                        std::cmp::Ordering::Less => Some(Restore::Retry {
                            attempt,
                            delay,
                            error,
                        }),
                        std::cmp::Ordering::Equal => Some(Restore::Held { delay, error }),
                        // Held already: retried quietly, it is shown as held.
                        std::cmp::Ordering::Greater => None,
                    };
                    if let Some(news) = news {
                        report(&later, Step::Restore(news));
                    }
                    i += 1;
                }
                Err(outcome) => self.finish(i, outcome, &mut report),
            }
        }
    }

    /// Ends every boost now, one attempt each (shutdown). What fails stays in the ledger.
    pub fn restore_all(&mut self, mut report: impl FnMut(&ActiveBoost, Step)) {
        while !self.active.is_empty() {
            let mut boost = self.active[0];
            let outcome = self.give_back(&mut boost);
            self.active[0] = boost;
            self.finish(0, outcome, &mut report);
        }
    }

    /// Removes boost `index` with its final outcome; the ledger forgets it unless the task may
    /// still hold the boost. A boost that gave its task nothing makes the task's next one
    /// start escalated.
    fn finish(
        &mut self,
        index: usize,
        outcome: Restore,
        report: &mut impl FnMut(&ActiveBoost, Step),
    ) {
        let boost = self.active.swap_remove(index);
        let outcome = match (outcome, boost.undone) {
            // The task's own switch was undone at the end of a phase.
            (Restore::Restored, Some(policy)) => Restore::Undone { policy },
            (outcome, _) => outcome,
        };
        if outcome.is_done() {
            let record = self.record_of(&boost);
            self.ledger.forget(&record);
        }
        let task = (boost.pid, boost.start);
        match outcome {
            Restore::Restored | Restore::Undone { .. } if boost.gave_nothing() => {
                if self.escalations.len() >= ESCALATIONS_KEPT {
                    self.escalations.clear();
                }
                let hold = match boost.policy {
                    BoostPolicy::Fifo => boost.hold.saturating_mul(2).min(FIFO_HOLD_MAX),
                    BoostPolicy::Deadline => boost.hold,
                };
                self.escalations.insert(task, hold);
            }
            _ => {
                self.escalations.remove(&task);
            }
        }
        report(&boost, Step::Restore(outcome));
    }

    /// A DEADLINE boost is due for its check that it ran the task. One that did not becomes
    /// a FIFO boost, which no DEADLINE state can block; one that cannot be measured, or no
    /// longer holds our DEADLINE boost, is left as it is.
    fn verify(&mut self, boost: &mut ActiveBoost, now: MonoTime) -> Option<Step> {
        boost.verify_at = None;
        boost.next_event = boost.until;
        let (Some(mark), Some(stats)) = (boost.mark, self.sched.run_stats(boost.pid)) else {
            return None;
        };
        let ours = self.boost_attr(BoostPolicy::Deadline);
        let still_ours = self.sched.start_time(boost.pid) == Some(boost.start)
            && self.sched.getattr(boost.pid).is_ok_and(|attr| {
                attr.policy == ours.policy
                    && attr.runtime == ours.runtime
                    && attr.period == ours.period
            });
        if stats.ran_since(&mark) || !still_ours {
            return None;
        }
        let fifo = ActiveBoost {
            policy: BoostPolicy::Fifo,
            ..*boost
        };
        // The record first says FIFO 98 is possible: a replay must not take the fallback's
        // FIFO 98 for someone else's change.
        if self.ledger.record(&self.record_of(&fifo)).is_err()
            || self
                .sched
                .setattr(boost.pid, &self.boost_attr(BoostPolicy::Fifo))
                .is_err()
        {
            return None;
        }
        *boost = fifo;
        // The DEADLINE stretch gave nothing; the FIFO one is measured from here.
        boost.account(Some(stats));
        boost.mark = Some(stats);
        boost.period_start = now;
        self.begin_phase(boost, now);
        Some(Step::FifoFallback)
    }

    /// A FIFO phase starts: the task got FIFO 98 just now (after the identity check and the
    /// system call, a few µs after `now`). Its first look comes a runtime later, the earliest
    /// it can have had its runtime.
    fn begin_phase(&self, boost: &mut ActiveBoost, now: MonoTime) {
        let started = self.sched.now().max(now);
        boost.holding = true;
        boost.phase = Some(Phase {
            started,
            limit: started.after(boost.hold),
            seen_running: None,
        });
        boost.next_event = started.after(self.params.runtime).min(boost.until);
    }

    /// A look at a FIFO phase: it ends once the task has run its runtime (or, when the task's
    /// CPU time cannot be read, a runtime after the switch), or at its limit when the task
    /// never got the CPU, which first makes the phase, and the boost's later ones, longer.
    fn look_at_phase(
        &mut self,
        boost: &mut ActiveBoost,
        now: MonoTime,
    ) -> Result<Option<Step>, Restore> {
        let runtime = self.params.runtime;
        let Some(phase) = boost.phase else {
            return self.end_phase(boost).map(|()| None);
        };
        let (Some(mark), Some(stats)) = (boost.mark, self.sched.run_stats(boost.pid)) else {
            // Not measurable: the runtime on the wall clock, from the switch.
            let end = phase.started.after(runtime);
            if now >= end {
                return self.end_phase(boost).map(|()| None);
            }
            boost.next_event = end.min(boost.until);
            return Ok(None);
        };
        if stats.ran_since(&mark) {
            // The kernel brings a running task's CPU time up to date only now and then: since
            // it was seen running, it has run at least the time that has passed.
            let seen = phase.seen_running.unwrap_or(now);
            let got = stats.cpu_since(&mark).max(now.saturating_since(seen));
            if got >= runtime {
                return self.end_phase(boost).map(|()| None);
            }
            boost.phase = Some(Phase {
                seen_running: Some(seen),
                ..phase
            });
            boost.next_event = now.after(runtime - got).min(boost.until);
            return Ok(None);
        }
        let pause = look_pause(runtime, now.saturating_since(phase.started));
        if now < phase.limit {
            // Not on the CPU yet: looked at again after a pause that grows with the wait.
            boost.next_event = now.after(pause).min(phase.limit).min(boost.until);
            return Ok(None);
        }
        if boost.hold >= FIFO_HOLD_MAX || self.sched.runnable(boost.pid) == Some(false) {
            // Held as long as it may be, or asleep (it wants no CPU): the phase is over.
            return self.end_phase(boost).map(|()| None);
        }
        boost.hold = boost.hold.saturating_mul(2).min(FIFO_HOLD_MAX);
        let limit = phase.started.after(boost.hold);
        boost.phase = Some(Phase { limit, ..phase });
        boost.next_event = now.after(pause).min(limit).min(boost.until);
        Ok(Some(Step::Escalated { hold: boost.hold }))
    }

    /// The task gets its own policy back until the next period; what it ran is counted.
    fn end_phase(&mut self, boost: &mut ActiveBoost) -> Result<(), Restore> {
        match self.give_back(boost) {
            Restore::Restored => {}
            Restore::Undone { policy } => boost.undone = Some(policy),
            // A failure ends the boost here (a retry included: the restore is retried).
            other => return Err(other),
        }
        boost.holding = false;
        boost.phase = None;
        boost.next_event = boost
            .period_start
            .after(self.params.period)
            .min(boost.until);
        Ok(())
    }

    /// The start of a FIFO period: the task takes FIFO 98 again, unless it is gone or its own
    /// policy was changed meanwhile (then the boost is over, the change is kept).
    fn take_boost_again(&mut self, boost: &mut ActiveBoost, now: MonoTime) -> Result<(), Restore> {
        if self.sched.start_time(boost.pid) != Some(boost.start) {
            return Err(Restore::Exited);
        }
        match self.sched.getattr(boost.pid) {
            Err(error) => return Err(exited_or_failed(error)),
            Ok(attr) if !same_policy(&attr, &boost.saved) => {
                return Err(Restore::ChangedMeanwhile {
                    policy: attr.policy,
                });
            }
            Ok(_) => {}
        }
        let mark = self.sched.run_stats(boost.pid);
        let fifo = self.boost_attr(BoostPolicy::Fifo);
        if let Err(error) = self.sched.setattr(boost.pid, &fifo) {
            // The task keeps its own policy: the boost is over, nothing to undo.
            return Err(match exited_or_failed(error) {
                Restore::Failed(_) => Restore::Restored,
                other => other,
            });
        }
        boost.mark = mark;
        boost.period_start = now;
        self.begin_phase(boost, now);
        Ok(())
    }

    /// One restore attempt. Once the task has its own attributes back (or is found changed),
    /// what it ran while it held the boost is counted: the kernel's count is exact then.
    fn give_back(&mut self, boost: &mut ActiveBoost) -> Restore {
        if !boost.holding && boost.failed_restores == 0 {
            // Between FIFO phases: the task already has its own attributes.
            return Restore::Restored;
        }
        let record = self.record_of(boost);
        let outcome = restore(self.sched.as_mut(), &record);
        match outcome {
            Restore::Restored | Restore::Undone { .. } | Restore::ChangedMeanwhile { .. } => {
                boost.account(self.sched.run_stats(boost.pid));
            }
            // Gone: its last stretch cannot be read; what was counted stands.
            Restore::Exited => boost.mark = None,
            _ => {}
        }
        outcome
    }
}

/// The pause before the next look at a FIFO phase whose task has not got the CPU, `waited`
/// after the phase started: as long as it has waited so far (from one runtime), up to
/// [`PHASE_LOOK_MAX`].
fn look_pause(runtime: Duration, waited: Duration) -> Duration {
    waited.max(runtime).min(PHASE_LOOK_MAX.max(runtime))
}

fn same_policy(a: &SchedAttr, b: &SchedAttr) -> bool {
    a.policy == b.policy && a.rt_priority == b.rt_priority && a.nice == b.nice
}

fn exited_or_failed(error: io::Error) -> Restore {
    if error.raw_os_error() == Some(libc::ESRCH) {
        Restore::Exited
    } else {
        Restore::Failed(error)
    }
}

/// Since 6.12, sched_getattr reports a fair task's time slice in `runtime`, and writing a
/// non-zero `runtime` back pins a custom slice the task never asked for; zero restores the
/// default slice. (On older kernels the field is ignored for fair tasks.)
pub fn restorable(saved: SchedAttr) -> SchedAttr {
    if saved.is_fair() {
        SchedAttr {
            runtime: 0,
            ..saved
        }
    } else {
        saved
    }
}

#[cfg(test)]
mod tests;
