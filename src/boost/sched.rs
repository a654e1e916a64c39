//! The booster's window on the kernel: the three things it asks of a task (its scheduling
//! attributes, new ones, and which task the pid names), behind a trait so that every decision
//! of the booster and of the ledger's replay is unit-tested with a fake.

use std::io;

use crate::procfs::{read_thread_stat, ThreadStat};
use crate::sys::{self, SchedAttr};
use crate::task::{MonoTime, Pid};

pub trait SchedOps {
    /// `sched_getattr(2)` of thread `pid`.
    fn getattr(&self, pid: Pid) -> io::Result<SchedAttr>;
    /// `sched_setattr(2)` of thread `pid`.
    fn setattr(&mut self, pid: Pid, attr: &SchedAttr) -> io::Result<()>;
    /// The start time of thread `pid`, `None` when there is no such thread. With the pid it
    /// names one task for the life of the system: a pid reused by a new task has another.
    fn start_time(&self, pid: Pid) -> Option<u64>;
    /// CLOCK_MONOTONIC now: FIFO phases are timed from the moment the task got the boost.
    fn now(&self) -> MonoTime;
}

/// The real system calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kernel;

impl SchedOps for Kernel {
    fn getattr(&self, pid: Pid) -> io::Result<SchedAttr> {
        sys::sched_getattr(pid)
    }

    fn setattr(&mut self, pid: Pid, attr: &SchedAttr) -> io::Result<()> {
        sys::sched_setattr(pid, attr)
    }

    fn start_time(&self, pid: Pid) -> Option<u64> {
        start_time(pid)
    }

    fn now(&self) -> MonoTime {
        crate::clock::now()
    }
}

/// Field 22 of `/proc/PID/task/PID/stat` (clock ticks since boot). A thread's own entry: `pid`
/// may be any thread, not only a process leader.
pub fn start_time(pid: Pid) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    parse_start_time(&read_thread_stat(pid)?)
}

fn parse_start_time(stat: &[u8]) -> Option<u64> {
    ThreadStat::parse(stat)?.field(22)?.parse().ok()
}

/// A scriptable kernel for unit tests: tasks with attributes and start times, failures to
/// inject, and a journal of every call (shared with [`FakeLedger`] to check their order).
#[cfg(test)]
pub mod fake {
    use std::cell::RefCell;
    use std::collections::{HashMap, VecDeque};
    use std::io;
    use std::rc::Rc;

    use super::SchedOps;
    use crate::boost::{BoostLedger, BoostRecord};
    use crate::sys::SchedAttr;
    use crate::task::{MonoTime, Pid};

    #[derive(Clone, Debug, PartialEq, Eq)]
    pub enum Call {
        Set(Pid, SchedAttr),
        Record(Pid),
        Forget(Pid),
    }

    #[derive(Default)]
    pub struct World {
        pub tasks: HashMap<Pid, (u64, SchedAttr)>,
        /// Errors the next `setattr` calls return (front first), whatever the pid.
        pub setattr_errors: VecDeque<i32>,
        /// Errors the next `record` calls return.
        pub record_errors: VecDeque<i32>,
        pub calls: Vec<Call>,
        /// What `now()` says (0: the booster's own `now` stands).
        pub clock: MonoTime,
        /// Live tasks whose start time cannot be read (as when /proc fails).
        pub unreadable_start: Vec<Pid>,
    }

    pub type Shared = Rc<RefCell<World>>;

    pub fn world() -> Shared {
        Rc::new(RefCell::new(World::default()))
    }

    impl World {
        pub fn spawn(&mut self, pid: Pid, start: u64, attr: SchedAttr) {
            self.tasks.insert(pid, (start, attr));
        }

        pub fn attr(&self, pid: Pid) -> SchedAttr {
            self.tasks[&pid].1
        }

        pub fn sets(&self) -> Vec<(Pid, SchedAttr)> {
            self.calls
                .iter()
                .filter_map(|call| match call {
                    Call::Set(pid, attr) => Some((*pid, *attr)),
                    _ => None,
                })
                .collect()
        }
    }

    pub struct FakeSched(pub Shared);

    impl SchedOps for FakeSched {
        fn getattr(&self, pid: Pid) -> io::Result<SchedAttr> {
            let world = self.0.borrow();
            world
                .tasks
                .get(&pid)
                .map(|(_, attr)| *attr)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))
        }

        fn setattr(&mut self, pid: Pid, attr: &SchedAttr) -> io::Result<()> {
            let mut world = self.0.borrow_mut();
            world.calls.push(Call::Set(pid, *attr));
            if let Some(errno) = world.setattr_errors.pop_front() {
                return Err(io::Error::from_raw_os_error(errno));
            }
            match world.tasks.get_mut(&pid) {
                Some((_, current)) => {
                    *current = *attr;
                    Ok(())
                }
                None => Err(io::Error::from_raw_os_error(libc::ESRCH)),
            }
        }

        fn start_time(&self, pid: Pid) -> Option<u64> {
            let world = self.0.borrow();
            if world.unreadable_start.contains(&pid) {
                return None;
            }
            world.tasks.get(&pid).map(|(start, _)| *start)
        }

        fn now(&self) -> MonoTime {
            self.0.borrow().clock
        }
    }

    pub struct FakeLedger(pub Shared);

    impl BoostLedger for FakeLedger {
        fn record(&mut self, record: &BoostRecord) -> io::Result<()> {
            let mut world = self.0.borrow_mut();
            world.calls.push(Call::Record(record.tid));
            match world.record_errors.pop_front() {
                Some(errno) => Err(io::Error::from_raw_os_error(errno)),
                None => Ok(()),
            }
        }

        fn forget(&mut self, record: &BoostRecord) {
            self.0.borrow_mut().calls.push(Call::Forget(record.tid));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_identifies_a_live_thread() {
        let me = sys::gettid();
        assert!(start_time(me).is_some_and(|t| t > 0));
        assert_eq!(start_time(me), start_time(me));
        assert_eq!(start_time(-1), None);
        assert_eq!(start_time(0), None);
    }

    #[test]
    fn start_time_survives_hostile_names() {
        let stat = b"42 (a) b) (c) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 7777 20";
        assert_eq!(parse_start_time(stat), Some(7777));
        assert_eq!(parse_start_time(b"42 (no close paren R 1"), None);
        assert_eq!(parse_start_time(b"42 (short) R 1 2"), None);
    }
}
