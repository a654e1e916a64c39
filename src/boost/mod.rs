//! The booster: lends a starving task a real-time policy for a bounded time, then gives it back
//! exactly the scheduling attributes it had.
//!
//! SCHED_DEADLINE boosts are one switch there and one back. SCHED_FIFO boosts (`-F`, for
//! kernels where DEADLINE cannot be used) emulate a reservation: FIFO 98 for `runtime` at the
//! start of every `period`, the task's own policy for the rest. Boosts never block each other:
//! each has its own next event, and the daemon loop calls [`Booster::advance`] when the
//! earliest is due. A task whose policy was changed by someone else during the boost keeps
//! that change.

use std::io;

use crate::config::{BoostParams, BoostPolicy};
use crate::sys::{self, SchedAttr, SCHED_DEADLINE, SCHED_FIFO, SCHED_FLAG_RESET_ON_FORK};
use crate::task::{MonoTime, Pid};

/// The FIFO priority of `-F` boosts: above every ordinary RT task, below the kernel's 99.
pub const FIFO_BOOST_PRIORITY: u32 = 98;

/// When to check that a DEADLINE boost ran its task. A fresh reservation has the earliest
/// deadline around and runs at once; only other DEADLINE entities (the fair server: 50 ms)
/// may go first.
const VERIFY_AFTER: std::time::Duration = std::time::Duration::from_millis(100);

/// A task currently holding a boost.
#[derive(Clone, Copy, Debug)]
pub struct ActiveBoost {
    pub pid: Pid,
    pub cpu: u32,
    /// The attributes to give back.
    pub saved: SchedAttr,
    pub until: MonoTime,
    /// When this boost next needs attention (the end, or a FIFO phase change).
    next_event: MonoTime,
    /// Start of the current FIFO period.
    period_start: MonoTime,
    /// Whether the task holds the boost policy right now (FIFO boosts alternate).
    holding: bool,
    pub policy: BoostPolicy,
    /// For a DEADLINE boost: when to check that it took effect, and the task's switch count
    /// at the boost (unchanged then means the task never ran).
    verify: Option<(MonoTime, u64)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BoostError {
    /// Boosting a DEADLINE task would only shrink its reservation.
    #[error("it already runs with SCHED_DEADLINE")]
    AlreadyDeadline,
    #[error("{0}")]
    System(#[from] io::Error),
}

/// What became of a boost when it ended.
#[derive(Debug)]
pub enum Restore {
    /// The saved attributes are back.
    Restored,
    /// The task exited during the boost.
    Exited,
    /// Someone changed the task's policy during the boost; their change is kept.
    ChangedMeanwhile {
        policy: u32,
    },
    Failed(io::Error),
}

pub struct Booster {
    params: BoostParams,
    active: Vec<ActiveBoost>,
}

impl Booster {
    pub fn new(params: BoostParams) -> Booster {
        Booster {
            params,
            active: Vec::new(),
        }
    }

    pub fn policy_name(&self) -> &'static str {
        sys::policy_name(self.boost_attr(self.params.policy).policy)
    }

    fn boost_attr(&self, policy: BoostPolicy) -> SchedAttr {
        match policy {
            BoostPolicy::Deadline => {
                let period = self.params.period.as_nanos() as u64;
                SchedAttr {
                    flags: SCHED_FLAG_RESET_ON_FORK,
                    runtime: self.params.runtime.as_nanos() as u64,
                    deadline: period,
                    period,
                    ..SchedAttr::new(SCHED_DEADLINE)
                }
            }
            BoostPolicy::Fifo => SchedAttr {
                flags: SCHED_FLAG_RESET_ON_FORK,
                rt_priority: FIFO_BOOST_PRIORITY,
                ..SchedAttr::new(SCHED_FIFO)
            },
        }
    }

    /// Whether `attr` is one of our boosts (a DEADLINE boost may have become a FIFO one).
    fn holds_boost(&self, attr: &SchedAttr) -> bool {
        [BoostPolicy::Deadline, BoostPolicy::Fifo]
            .into_iter()
            .any(|policy| {
                let ours = self.boost_attr(policy);
                attr.policy == ours.policy
                    && attr.rt_priority == ours.rt_priority
                    && attr.runtime == ours.runtime
                    && attr.period == ours.period
            })
    }

    pub fn is_boosted(&self, pid: Pid) -> bool {
        self.active.iter().any(|boost| boost.pid == pid)
    }

    /// Saves `pid`'s attributes and switches it to the boost policy until `now + duration`.
    /// `switches` is the task's switch count while it waited.
    pub fn boost(
        &mut self,
        pid: Pid,
        cpu: u32,
        switches: u64,
        now: MonoTime,
    ) -> Result<ActiveBoost, BoostError> {
        let saved = sys::sched_getattr(pid)?;
        if saved.policy == SCHED_DEADLINE {
            return Err(BoostError::AlreadyDeadline);
        }
        let policy = self.params.policy;
        sys::sched_setattr(pid, &self.boost_attr(policy))?;
        let until = now.after(self.params.duration);
        let (next_event, verify) = match policy {
            BoostPolicy::Deadline => {
                let check = now.after(VERIFY_AFTER).min(until);
                (until, Some((check, switches)))
            }
            BoostPolicy::Fifo => (now.after(self.params.runtime).min(until), None),
        };
        let boost = ActiveBoost {
            pid,
            cpu,
            saved,
            until,
            next_event: verify.map_or(next_event, |(check, _)| check.min(next_event)),
            period_start: now,
            holding: true,
            policy,
            verify,
        };
        self.active.push(boost);
        Ok(boost)
    }

    /// When the earliest boost needs attention.
    pub fn next_event(&self) -> Option<MonoTime> {
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
        for boost in &mut self.active {
            let Some((check, switches)) = boost.verify else {
                continue;
            };
            if check > now {
                continue;
            }
            boost.verify = None;
            boost.next_event = boost.until;
            if never_ran(boost.pid, switches) && sys::sched_setattr(boost.pid, &fifo).is_ok() {
                boost.policy = BoostPolicy::Fifo;
                boost.period_start = now;
                boost.next_event = now.after(self.params.runtime).min(boost.until);
                switched.push(*boost);
            }
        }
        switched
    }

    /// Ends every boost whose time is up at `now`, reporting each outcome, and moves FIFO
    /// boosts to their next phase.
    pub fn advance(&mut self, now: MonoTime, mut report: impl FnMut(&ActiveBoost, Restore)) {
        let mut i = 0;
        while i < self.active.len() {
            let boost = self.active[i];
            if boost.next_event > now
                || boost
                    .verify
                    .is_some_and(|(check, _)| check <= now && check < boost.until)
            {
                // Not due, or waiting for `verify` with the next snapshot.
                i += 1;
            } else if now >= boost.until {
                self.active.swap_remove(i);
                report(&boost, self.end(&boost));
            } else if let Err(outcome) = self.toggle_fifo(i, now) {
                self.active.swap_remove(i);
                report(&boost, outcome);
            } else {
                i += 1;
            }
        }
    }

    /// Ends every boost now (shutdown).
    pub fn restore_all(&mut self, mut report: impl FnMut(&ActiveBoost, Restore)) {
        for boost in std::mem::take(&mut self.active) {
            report(&boost, self.end(&boost));
        }
    }

    /// Between FIFO phases: give the task its own policy back for the rest of the period, or
    /// take the boost again at the start of the next one. `Err` ends the boost.
    fn toggle_fifo(&mut self, index: usize, now: MonoTime) -> Result<(), Restore> {
        let boost = self.active[index];
        let next = if boost.holding {
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
            match sys::sched_getattr(boost.pid) {
                Err(error) => return Err(exited_or_failed(error)),
                Ok(attr) if !same_policy(&attr, &boost.saved) => {
                    return Err(Restore::ChangedMeanwhile {
                        policy: attr.policy,
                    });
                }
                Ok(_) => {}
            }
            sys::sched_setattr(boost.pid, &self.boost_attr(BoostPolicy::Fifo))
                .map_err(exited_or_failed)?;
            ActiveBoost {
                holding: true,
                period_start: now,
                next_event: now.after(self.params.runtime).min(boost.until),
                ..boost
            }
        };
        self.active[index] = next;
        Ok(())
    }

    fn end(&self, boost: &ActiveBoost) -> Restore {
        if boost.holding {
            self.give_back(boost)
        } else {
            Restore::Restored
        }
    }

    fn give_back(&self, boost: &ActiveBoost) -> Restore {
        self.restore_orphan(boost.pid, boost.saved)
    }

    /// Writes `saved` back to `pid`, unless the task no longer holds a boost of these
    /// parameters. Also used by the guardian, for boosts a dead daemon left behind.
    pub fn restore_orphan(&self, pid: Pid, saved: SchedAttr) -> Restore {
        match sys::sched_getattr(pid) {
            Err(error) => return exited_or_failed(error),
            Ok(now) if !self.holds_boost(&now) => {
                return Restore::ChangedMeanwhile { policy: now.policy }
            }
            Ok(_) => {}
        }
        match sys::sched_setattr(pid, &restorable(saved)) {
            Ok(()) => Restore::Restored,
            Err(error) => exited_or_failed(error),
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
fn restorable(saved: SchedAttr) -> SchedAttr {
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
mod tests {
    use super::*;
    use crate::sys::SCHED_OTHER;
    use std::time::Duration;

    fn booster(policy: BoostPolicy) -> Booster {
        Booster::new(BoostParams {
            policy,
            runtime: Duration::from_micros(20),
            period: Duration::from_secs(1),
            duration: Duration::from_secs(3),
        })
    }

    #[test]
    fn restoring_a_fair_task_drops_the_reported_slice_only() {
        let fair = SchedAttr {
            nice: 5,
            runtime: 2_800_000,
            flags: SCHED_FLAG_RESET_ON_FORK,
            ..SchedAttr::new(SCHED_OTHER)
        };
        let restored = restorable(fair);
        assert_eq!(restored.runtime, 0);
        assert_eq!(
            (restored.nice, restored.flags, restored.policy),
            (5, SCHED_FLAG_RESET_ON_FORK, SCHED_OTHER)
        );
        let fifo = SchedAttr {
            rt_priority: 5,
            ..SchedAttr::new(SCHED_FIFO)
        };
        assert_eq!(restorable(fifo), fifo);
    }

    #[test]
    fn the_deadline_boost_has_reset_on_fork() {
        let attr = booster(BoostPolicy::Deadline).boost_attr(BoostPolicy::Deadline);
        assert_eq!(attr.policy, SCHED_DEADLINE);
        assert_eq!(
            attr.flags & SCHED_FLAG_RESET_ON_FORK,
            SCHED_FLAG_RESET_ON_FORK
        );
        assert_eq!(
            (attr.runtime, attr.deadline, attr.period),
            (20_000, 1_000_000_000, 1_000_000_000)
        );
    }

    #[test]
    fn the_fifo_boost_is_priority_98() {
        let booster = booster(BoostPolicy::Fifo);
        let attr = booster.boost_attr(BoostPolicy::Fifo);
        assert_eq!((attr.policy, attr.rt_priority), (SCHED_FIFO, 98));
        assert!(booster.holds_boost(&attr));
        assert!(!booster.holds_boost(&SchedAttr {
            rt_priority: 97,
            ..attr
        }));
        assert_eq!(booster.policy_name(), "SCHED_FIFO");
    }
}
