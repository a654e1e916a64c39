//! The booster: lends a starving task SCHED_DEADLINE for a bounded time, then gives it back
//! exactly the scheduling attributes it had.
//!
//! Boosts do not block each other: each has its own expiry, and the daemon loop calls
//! [`Booster::restore_due`] when the earliest one is reached. A task whose policy was changed
//! by someone else during the boost keeps that change.

use std::io;

use crate::config::BoostParams;
use crate::sys::{self, SchedAttr, SCHED_DEADLINE, SCHED_FLAG_RESET_ON_FORK};
use crate::task::{MonoTime, Pid};

/// A task currently holding a boost.
#[derive(Clone, Copy, Debug)]
pub struct ActiveBoost {
    pub pid: Pid,
    pub cpu: u32,
    /// The attributes to give back.
    pub saved: SchedAttr,
    pub until: MonoTime,
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

    fn boost_attr(&self) -> SchedAttr {
        let period = self.params.period.as_nanos() as u64;
        SchedAttr {
            flags: SCHED_FLAG_RESET_ON_FORK,
            runtime: self.params.runtime.as_nanos() as u64,
            deadline: period,
            period,
            ..SchedAttr::new(SCHED_DEADLINE)
        }
    }

    pub fn is_boosted(&self, pid: Pid) -> bool {
        self.active.iter().any(|boost| boost.pid == pid)
    }

    /// Saves `pid`'s attributes and switches it to SCHED_DEADLINE until `now + duration`.
    pub fn boost(&mut self, pid: Pid, cpu: u32, now: MonoTime) -> Result<ActiveBoost, BoostError> {
        let saved = sys::sched_getattr(pid)?;
        if saved.policy == SCHED_DEADLINE {
            return Err(BoostError::AlreadyDeadline);
        }
        sys::sched_setattr(pid, &self.boost_attr())?;
        let boost = ActiveBoost {
            pid,
            cpu,
            saved,
            until: now.after(self.params.duration),
        };
        self.active.push(boost);
        Ok(boost)
    }

    /// When the earliest boost ends.
    pub fn next_expiry(&self) -> Option<MonoTime> {
        self.active.iter().map(|boost| boost.until).min()
    }

    /// Ends every boost whose time is up at `now`, reporting each outcome.
    pub fn restore_due(&mut self, now: MonoTime, mut report: impl FnMut(&ActiveBoost, Restore)) {
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].until <= now {
                let boost = self.active.swap_remove(i);
                report(&boost, self.restore(&boost));
            } else {
                i += 1;
            }
        }
    }

    /// Ends every boost now (shutdown).
    pub fn restore_all(&mut self, mut report: impl FnMut(&ActiveBoost, Restore)) {
        for boost in std::mem::take(&mut self.active) {
            report(&boost, self.restore(&boost));
        }
    }

    fn restore(&self, boost: &ActiveBoost) -> Restore {
        let ours = self.boost_attr();
        match sys::sched_getattr(boost.pid) {
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => return Restore::Exited,
            Err(error) => return Restore::Failed(error),
            Ok(now)
                if now.policy != ours.policy
                    || now.runtime != ours.runtime
                    || now.period != ours.period =>
            {
                return Restore::ChangedMeanwhile { policy: now.policy };
            }
            Ok(_) => {}
        }
        match sys::sched_setattr(boost.pid, &restorable(boost.saved)) {
            Ok(()) => Restore::Restored,
            Err(error) if error.raw_os_error() == Some(libc::ESRCH) => Restore::Exited,
            Err(error) => Restore::Failed(error),
        }
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
    use crate::sys::{SCHED_FIFO, SCHED_OTHER};

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
    fn the_boost_is_deadline_with_reset_on_fork() {
        use std::time::Duration;
        let booster = Booster::new(BoostParams {
            runtime: Duration::from_micros(20),
            period: Duration::from_secs(1),
            duration: Duration::from_secs(3),
        });
        let attr = booster.boost_attr();
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
}
