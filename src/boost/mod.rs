//! The booster: lends a starving task a real-time policy for a bounded time, then gives it back
//! exactly the scheduling attributes it had.
//!
//! SCHED_DEADLINE boosts are one switch there and one back. SCHED_FIFO boosts (`-F`, for
//! kernels where DEADLINE cannot be used) emulate a reservation: FIFO 98 for `runtime` at the
//! start of every `period`, the task's own policy for the rest. Boosts never block each other:
//! each has its own next event, and the daemon loop calls [`Booster::advance`] when the
//! earliest is due. A task whose policy was changed by someone else during the boost keeps
//! that change.
//!
//! Every boost is written to a [`BoostLedger`] before it is applied and struck from it once the
//! task has its own attributes back, so that whatever kills the daemon, someone can undo it
//! ([`restore`] is how, for the daemon and for whoever replays the ledger). Every action on a
//! pid first checks that it still names the boosted task (its start time). The system calls sit
//! behind [`SchedOps`], so all of this is unit-tested with a fake kernel.

mod sched;

use std::io;
use std::time::Duration;

use crate::config::{BoostParams, BoostPolicy};
use crate::sys::{self, SchedAttr, SCHED_DEADLINE, SCHED_FIFO, SCHED_FLAG_RESET_ON_FORK};
use crate::task::{MonoTime, Pid};
#[cfg(test)]
pub use sched::fake;
pub use sched::{start_time, Kernel, SchedOps};

/// The FIFO priority of `-F` boosts: above every ordinary RT task, below the kernel's 99.
pub const FIFO_BOOST_PRIORITY: u32 = 98;

/// When to check that a DEADLINE boost ran its task. A fresh reservation has the earliest
/// deadline around and runs at once; only other DEADLINE entities (the fair server: 50 ms)
/// may go first.
const VERIFY_AFTER: Duration = Duration::from_millis(100);

/// How many times a restore is tried before the task is left to the ledger (for the guardian,
/// the next stalld or `stalld restore`).
pub const RESTORE_ATTEMPTS: u32 = 5;

/// The pause after the first failed restore; doubled after each further one.
pub const RESTORE_RETRY: Duration = Duration::from_millis(100);

/// The pause after failed restore number `attempt` (1-based).
pub fn retry_delay(attempt: u32) -> Duration {
    RESTORE_RETRY.saturating_mul(1 << attempt.saturating_sub(1).min(16))
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
}

/// Where boosts are written down before they are applied.
pub trait BoostLedger {
    /// Keeps `record` until [`forget`](BoostLedger::forget). An error means the boost must not
    /// be applied: nobody could undo it if the daemon died.
    fn record(&mut self, record: &BoostRecord) -> io::Result<()>;
    /// The task has its own attributes back (or is gone): nothing left to undo.
    fn forget(&mut self, record: &BoostRecord);
}

/// For a booster whose boosts need no record (tests of the kernel calls alone).
pub struct NoLedger;

impl BoostLedger for NoLedger {
    fn record(&mut self, _: &BoostRecord) -> io::Result<()> {
        Ok(())
    }

    fn forget(&mut self, _: &BoostRecord) {}
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
    /// When this boost next needs [`Booster::advance`]: a FIFO phase change, the end, or the
    /// next restore attempt.
    next_event: MonoTime,
    /// Start of the current FIFO period.
    period_start: MonoTime,
    /// Whether the task holds the boost policy right now (FIFO boosts alternate).
    holding: bool,
    pub policy: BoostPolicy,
    /// For a DEADLINE boost: when to check that it took effect, and the task's switch count
    /// at the boost (unchanged then means the task never ran). Needs a snapshot: it never
    /// holds up anything else.
    verify: Option<(MonoTime, u64)>,
    /// Restores that failed so far; above zero the boost is over and its restore is retried.
    failed_restores: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum BoostError {
    /// Boosting a DEADLINE task would only shrink its reservation.
    #[error("it already runs with SCHED_DEADLINE")]
    AlreadyDeadline,
    /// It still holds one of our boosts (its restore failed): boosting it again would record
    /// the boost's attributes as its own, over the record that keeps them.
    #[error("it still holds a boost whose restore failed; its own attributes stay in the ledger")]
    StillBoosted,
    /// The ledger refused the record: a boost nobody could undo is not applied.
    #[error("not boosted, the boost could not be recorded first: {0}")]
    Ledger(io::Error),
    #[error("{0}")]
    System(#[from] io::Error),
}

/// What became of a boost when it ended (or an attempt to end it).
#[derive(Debug)]
pub enum Restore {
    /// The saved attributes are back.
    Restored,
    /// The task exited during the boost (or its pid names another task now).
    Exited,
    /// Someone changed the task's policy during the boost; their change is kept.
    ChangedMeanwhile { policy: u32 },
    /// Restore attempt `attempt` failed; the next one comes after `delay`. Not an end.
    Retry {
        attempt: u32,
        delay: Duration,
        error: io::Error,
    },
    /// The last attempt failed too: the task may still hold the boost. Its record stays in
    /// the ledger for whoever replays it.
    Failed(io::Error),
}

impl Restore {
    /// Whether nothing is left to undo (the record can go).
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            Restore::Restored | Restore::Exited | Restore::ChangedMeanwhile { .. }
        )
    }
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

/// Whether `attr` is one of our boosts of these parameters (a DEADLINE boost may have become a
/// FIFO one).
fn holds_boost(attr: &SchedAttr, runtime_ns: u64, period_ns: u64) -> bool {
    [BoostPolicy::Deadline, BoostPolicy::Fifo]
        .into_iter()
        .any(|policy| {
            let ours = boost_attr(policy, runtime_ns, period_ns);
            attr.policy == ours.policy
                && attr.rt_priority == ours.rt_priority
                && attr.runtime == ours.runtime
                && attr.period == ours.period
        })
}

/// Gives `record.tid` its saved attributes back, if it is still the task that was boosted and
/// still holds a boost of the record's parameters. The one restore of the daemon, the guardian
/// and every replay of the ledger. (Between the identity check and the system call a pid could
/// only be reused after the task exits and the kernel wraps around every pid: microseconds
/// against the pid space.)
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
    match sched.getattr(record.tid) {
        Err(error) => return exited_or_failed(error),
        Ok(now) if !holds_boost(&now, record.runtime_ns, record.period_ns) => {
            return Restore::ChangedMeanwhile { policy: now.policy }
        }
        Ok(_) => {}
    }
    match sched.setattr(record.tid, &restorable(record.saved)) {
        Ok(()) => Restore::Restored,
        Err(error) => exited_or_failed(error),
    }
}

pub struct Booster {
    params: BoostParams,
    sched: Box<dyn SchedOps>,
    ledger: Box<dyn BoostLedger>,
    active: Vec<ActiveBoost>,
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
        }
    }

    pub fn is_boosted(&self, pid: Pid) -> bool {
        self.active.iter().any(|boost| boost.pid == pid)
    }

    /// Saves `pid`'s attributes, records the boost, and switches the task to the boost policy
    /// until `now + duration`. `switches` is the task's switch count while it waited.
    pub fn boost(
        &mut self,
        pid: Pid,
        cpu: u32,
        switches: u64,
        now: MonoTime,
    ) -> Result<ActiveBoost, BoostError> {
        let start = self
            .sched
            .start_time(pid)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        let saved = self.sched.getattr(pid)?;
        if saved.policy == SCHED_DEADLINE {
            return Err(BoostError::AlreadyDeadline);
        }
        if holds_boost(&saved, self.runtime_ns(), self.period_ns()) {
            return Err(BoostError::StillBoosted);
        }
        let policy = self.params.policy;
        let until = now.after(self.params.duration);
        let verify = match policy {
            BoostPolicy::Deadline => Some((now.after(VERIFY_AFTER).min(until), switches)),
            BoostPolicy::Fifo => None,
        };
        let boost = ActiveBoost {
            pid,
            start,
            cpu,
            saved,
            until,
            // A FIFO boost's first phase is timed once it is applied (below).
            next_event: until,
            period_start: now,
            holding: true,
            policy,
            verify,
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
        let boost = match policy {
            BoostPolicy::Fifo => ActiveBoost {
                next_event: self.phase_end(now, until),
                ..boost
            },
            BoostPolicy::Deadline => boost,
        };
        self.active.push(boost);
        Ok(boost)
    }

    /// When the earliest boost needs attention: [`advance`](Booster::advance) or, with the
    /// next snapshot, [`verify`](Booster::verify).
    pub fn next_event(&self) -> Option<MonoTime> {
        let verifications = self
            .active
            .iter()
            .filter_map(|b| b.verify.map(|(at, _)| at));
        self.next_timed_event()
            .into_iter()
            .chain(verifications)
            .min()
    }

    /// When the earliest boost needs [`advance`](Booster::advance): an end, a FIFO phase, a
    /// restore retry. What to wake for while the backend fails: a verification needs a
    /// snapshot, so waking for one then would only spin.
    pub fn next_timed_event(&self) -> Option<MonoTime> {
        self.active.iter().map(|boost| boost.next_event).min()
    }

    /// Checks the DEADLINE boosts due for it: a task still waiting with the switch count it
    /// had when boosted never ran, although SCHED_DEADLINE would have run it at once. Kernels
    /// do that to a task whose previous DEADLINE stint ended while throttled (the flag outlives
    /// the policy, and `sched_setattr` succeeds without enqueuing it), for up to minutes
    /// without HRTICK. Such a boost becomes a FIFO one, which no DEADLINE state can block.
    /// `never_ran(pid, switches)` tells from the latest snapshot. Returns the boosts switched.
    pub fn verify(
        &mut self,
        now: MonoTime,
        never_ran: impl Fn(Pid, u64) -> bool,
    ) -> Vec<ActiveBoost> {
        let mut switched = Vec::new();
        let fifo = self.boost_attr(BoostPolicy::Fifo);
        let runtime = self.params.runtime;
        let sched = &mut self.sched;
        for boost in &mut self.active {
            let Some((check, switches)) = boost.verify else {
                continue;
            };
            if check > now || boost.failed_restores > 0 {
                continue;
            }
            boost.verify = None;
            if never_ran(boost.pid, switches)
                && sched.start_time(boost.pid) == Some(boost.start)
                && sched.setattr(boost.pid, &fifo).is_ok()
            {
                boost.policy = BoostPolicy::Fifo;
                boost.period_start = now;
                boost.next_event = sched.now().max(now).after(runtime).min(boost.until);
                switched.push(*boost);
            }
        }
        switched
    }

    /// Ends every boost whose time is up at `now` and retries restores that are due, reporting
    /// each outcome, and moves FIFO boosts to their next phase.
    pub fn advance(&mut self, now: MonoTime, mut report: impl FnMut(&ActiveBoost, Restore)) {
        let mut i = 0;
        while i < self.active.len() {
            let boost = self.active[i];
            let retrying = boost.failed_restores > 0;
            let over = retrying || now >= boost.until;
            let due = boost.next_event <= now || (over && !retrying);
            if !due {
                i += 1;
                continue;
            }
            let step = if over {
                Err(self.give_back(&boost))
            } else {
                self.toggle_fifo(i, now)
            };
            match step {
                Ok(()) => i += 1,
                Err(Restore::Retry {
                    attempt,
                    delay,
                    error,
                }) => {
                    let later = ActiveBoost {
                        failed_restores: attempt,
                        next_event: now.after(delay),
                        until: boost.until.min(now),
                        holding: true,
                        verify: None,
                        ..boost
                    };
                    self.active[i] = later;
                    report(
                        &later,
                        Restore::Retry {
                            attempt,
                            delay,
                            error,
                        },
                    );
                    i += 1;
                }
                Err(outcome) => self.finish(i, outcome, &mut report),
            }
        }
    }

    /// Ends every boost now, one attempt each (shutdown). What fails stays in the ledger.
    pub fn restore_all(&mut self, mut report: impl FnMut(&ActiveBoost, Restore)) {
        while !self.active.is_empty() {
            let boost = self.active[0];
            let outcome = match self.give_back(&boost) {
                Restore::Retry { error, .. } => Restore::Failed(error),
                outcome => outcome,
            };
            self.finish(0, outcome, &mut report);
        }
    }

    /// Removes boost `index` with its final outcome; the ledger forgets it unless the task may
    /// still hold the boost.
    fn finish(
        &mut self,
        index: usize,
        outcome: Restore,
        report: &mut impl FnMut(&ActiveBoost, Restore),
    ) {
        let boost = self.active.swap_remove(index);
        if outcome.is_done() {
            let record = self.record_of(&boost);
            self.ledger.forget(&record);
        }
        report(&boost, outcome);
    }

    /// Between FIFO phases: give the task its own policy back for the rest of the period, or
    /// take the boost again at the start of the next one. `Err` ends the boost.
    fn toggle_fifo(&mut self, index: usize, now: MonoTime) -> Result<(), Restore> {
        let boost = self.active[index];
        let next = if boost.holding {
            // A failure ends the boost here (a retry included: the restore is retried).
            match self.give_back(&boost) {
                Restore::Restored => {}
                other => return Err(other),
            }
            ActiveBoost {
                holding: false,
                next_event: boost
                    .period_start
                    .after(self.params.period)
                    .min(boost.until),
                ..boost
            }
        } else {
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
            let fifo = self.boost_attr(BoostPolicy::Fifo);
            if let Err(error) = self.sched.setattr(boost.pid, &fifo) {
                // The task keeps its own policy: the boost is over, nothing to undo.
                return Err(match exited_or_failed(error) {
                    Restore::Failed(_) => Restore::Restored,
                    other => other,
                });
            }
            ActiveBoost {
                holding: true,
                period_start: now,
                next_event: self.phase_end(now, boost.until),
                ..boost
            }
        };
        self.active[index] = next;
        Ok(())
    }

    /// The end of a FIFO phase that starts now: `runtime` after the task got the boost, which
    /// is after the identity check and the system call (tens of µs, a runtime's worth).
    fn phase_end(&self, now: MonoTime, until: MonoTime) -> MonoTime {
        self.sched
            .now()
            .max(now)
            .after(self.params.runtime)
            .min(until)
    }

    /// One restore attempt; a failure before the last attempt becomes a [`Restore::Retry`].
    fn give_back(&mut self, boost: &ActiveBoost) -> Restore {
        if !boost.holding && boost.failed_restores == 0 {
            // Between FIFO phases: the task already has its own attributes.
            return Restore::Restored;
        }
        let record = self.record_of(boost);
        match restore(self.sched.as_mut(), &record) {
            Restore::Failed(error) if boost.failed_restores + 1 < RESTORE_ATTEMPTS => {
                let attempt = boost.failed_restores + 1;
                Restore::Retry {
                    attempt,
                    delay: retry_delay(attempt),
                    error,
                }
            }
            outcome => outcome,
        }
    }
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
