//! Which policy changes a task may make itself without privilege, by the kernel's rules
//! (`user_check_sched_setscheduler()`, in kernel/sched/syscalls.c since 6.10 and in
//! kernel/sched/core.c before; these rules are the same in every kernel we support). The booster asks it of a task whose policy is no
//! longer the boost's when the boost ends: a change the task could have made itself, from the
//! boost, is its own doing and its own attributes come back (otherwise a task boosted to
//! SCHED_FIFO 98 could keep SCHED_FIFO 97 for good by lowering itself one step); only a change
//! that takes CAP_SYS_NICE counts as someone else's, and is kept.
//!
//! The rules, for a task without CAP_SYS_NICE changing itself (or another task of its user):
//! - SCHED_RESET_ON_FORK, once set (every boost sets it), cannot be cleared;
//! - SCHED_DEADLINE cannot be set or changed at all (a DEADLINE boost cannot even lower its
//!   own runtime);
//! - SCHED_FIFO/SCHED_RR: another RT policy than the current one only with a non-zero
//!   RLIMIT_RTPRIO, and a priority above the current one only up to RLIMIT_RTPRIO (a
//!   DEADLINE task's current RT priority is 0);
//! - SCHED_OTHER/SCHED_BATCH: a nice value below the current one only down to what
//!   RLIMIT_NICE allows (20 - nice <= the limit);
//! - SCHED_IDLE: always.

use crate::sys::{
    SchedAttr, SCHED_BATCH, SCHED_DEADLINE, SCHED_FIFO, SCHED_FLAG_RESET_ON_FORK, SCHED_IDLE,
    SCHED_OTHER, SCHED_RR,
};

/// The resource limits that widen what a task may set itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfLimits {
    /// RLIMIT_RTPRIO: the highest RT priority it may raise itself to.
    pub rt_priority: u64,
    /// RLIMIT_NICE, as the kernel reads it: the task may lower its nice value down to
    /// `20 - nice_limit`.
    pub nice: u64,
}

impl SelfLimits {
    /// When the limits cannot be read: the widest, so that in doubt a change counts as the
    /// task's own and its own attributes come back (the direction stalld promises).
    pub const UNKNOWN: SelfLimits = SelfLimits {
        rt_priority: u64::MAX,
        nice: u64::MAX,
    };
}

/// Whether a task holding `from`, whose nice value is `nice`, may switch itself to `to`
/// without CAP_SYS_NICE. (A boosted task keeps the nice value it had before: the kernel only
/// sets it for fair policies.)
pub fn could_set_itself(from: &SchedAttr, nice: i32, to: &SchedAttr, limits: SelfLimits) -> bool {
    let reset_on_fork = |attr: &SchedAttr| attr.flags & SCHED_FLAG_RESET_ON_FORK != 0;
    if reset_on_fork(from) && !reset_on_fork(to) {
        return false;
    }
    match to.policy {
        SCHED_OTHER | SCHED_BATCH => to.nice >= nice || nice_as_rlimit(to.nice) <= limits.nice,
        SCHED_FIFO | SCHED_RR => {
            let may_switch = to.policy == from.policy || limits.rt_priority > 0;
            let current = if from.policy == SCHED_DEADLINE {
                0
            } else {
                from.rt_priority
            };
            may_switch
                && (to.rt_priority <= current || u64::from(to.rt_priority) <= limits.rt_priority)
        }
        SCHED_IDLE => true,
        // SCHED_DEADLINE, or a policy this code does not know: privileged.
        _ => false,
    }
}

/// The kernel's `nice_to_rlimit()`: nice 19..-20 as 1..40.
fn nice_as_rlimit(nice: i32) -> u64 {
    u64::try_from(20 - nice.clamp(-20, 19)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: SelfLimits = SelfLimits {
        rt_priority: 0,
        nice: 0,
    };

    fn fifo(priority: u32) -> SchedAttr {
        SchedAttr {
            rt_priority: priority,
            flags: SCHED_FLAG_RESET_ON_FORK,
            ..SchedAttr::new(SCHED_FIFO)
        }
    }

    fn policy(policy: u32, priority: u32, nice: i32) -> SchedAttr {
        SchedAttr {
            rt_priority: priority,
            nice,
            flags: SCHED_FLAG_RESET_ON_FORK,
            ..SchedAttr::new(policy)
        }
    }

    fn deadline() -> SchedAttr {
        SchedAttr {
            runtime: 20_000,
            deadline: 1_000_000_000,
            period: 1_000_000_000,
            flags: SCHED_FLAG_RESET_ON_FORK,
            ..SchedAttr::new(SCHED_DEADLINE)
        }
    }

    #[test]
    fn from_fifo_98_a_task_may_lower_itself_but_not_rise_nor_clear_reset_on_fork() {
        let boost = fifo(98);
        assert!(could_set_itself(&boost, 0, &fifo(97), NONE));
        assert!(could_set_itself(&boost, 0, &fifo(1), NONE));
        assert!(could_set_itself(&boost, 0, &fifo(98), NONE));
        assert!(!could_set_itself(&boost, 0, &fifo(99), NONE));
        let cleared = SchedAttr {
            flags: 0,
            ..fifo(97)
        };
        assert!(!could_set_itself(&boost, 0, &cleared, NONE));
        // Another RT policy needs a non-zero RLIMIT_RTPRIO; a higher priority needs it
        // that high.
        assert!(!could_set_itself(&boost, 0, &policy(SCHED_RR, 50, 0), NONE));
        let rtprio = |n| SelfLimits {
            rt_priority: n,
            ..NONE
        };
        assert!(could_set_itself(
            &boost,
            0,
            &policy(SCHED_RR, 98, 0),
            rtprio(1)
        ));
        assert!(!could_set_itself(&boost, 0, &fifo(99), rtprio(98)));
        assert!(could_set_itself(&boost, 0, &fifo(99), rtprio(99)));
    }

    #[test]
    fn from_fifo_98_a_task_may_go_fair_at_its_own_nice_or_above_and_idle() {
        let boost = fifo(98);
        assert!(could_set_itself(
            &boost,
            5,
            &policy(SCHED_OTHER, 0, 5),
            NONE
        ));
        assert!(could_set_itself(
            &boost,
            5,
            &policy(SCHED_BATCH, 0, 19),
            NONE
        ));
        assert!(!could_set_itself(
            &boost,
            5,
            &policy(SCHED_OTHER, 0, 4),
            NONE
        ));
        // RLIMIT_NICE 25 allows nice -5 (20 - -5 = 25), not -6.
        let nice = SelfLimits { nice: 25, ..NONE };
        assert!(could_set_itself(
            &boost,
            5,
            &policy(SCHED_OTHER, 0, -5),
            nice
        ));
        assert!(!could_set_itself(
            &boost,
            5,
            &policy(SCHED_OTHER, 0, -6),
            nice
        ));
        assert!(could_set_itself(&boost, 0, &policy(SCHED_IDLE, 0, 0), NONE));
        assert!(!could_set_itself(&boost, 0, &deadline(), NONE));
    }

    #[test]
    fn from_deadline_a_task_may_not_touch_deadline_and_needs_rtprio_for_rt() {
        let boost = deadline();
        let smaller = SchedAttr {
            runtime: 10_000,
            ..deadline()
        };
        assert!(!could_set_itself(&boost, 0, &smaller, SelfLimits::UNKNOWN));
        assert!(!could_set_itself(&boost, 0, &fifo(1), NONE));
        let rtprio = SelfLimits {
            rt_priority: 10,
            ..NONE
        };
        assert!(could_set_itself(&boost, 0, &fifo(10), rtprio));
        assert!(!could_set_itself(&boost, 0, &fifo(11), rtprio));
        assert!(could_set_itself(
            &boost,
            0,
            &policy(SCHED_OTHER, 0, 0),
            NONE
        ));
        assert!(could_set_itself(&boost, 0, &policy(SCHED_IDLE, 0, 0), NONE));
        assert!(!could_set_itself(
            &boost,
            3,
            &policy(SCHED_OTHER, 0, 2),
            NONE
        ));
    }

    #[test]
    fn unknown_limits_make_every_rt_or_fair_change_the_tasks_own() {
        let boost = fifo(98);
        for to in [
            fifo(99),
            policy(SCHED_RR, 99, 0),
            policy(SCHED_OTHER, 0, -20),
        ] {
            assert!(
                could_set_itself(&boost, 0, &to, SelfLimits::UNKNOWN),
                "{to:?}"
            );
        }
        assert!(!could_set_itself(
            &boost,
            0,
            &deadline(),
            SelfLimits::UNKNOWN
        ));
    }
}
