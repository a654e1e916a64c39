//! The booster's window on the kernel: what it asks of a task (its scheduling attributes, new
//! ones, which task the pid names, what it has run, which limits it has), behind a trait so
//! that every decision of the booster and of the ledger's replay is unit-tested with a fake.

use std::io;
use std::sync::OnceLock;

use super::rules::SelfLimits;
use crate::procfs::{read_run_stats, read_thread_stat, RunStats, ThreadStat};
use crate::sys::{self, Rlimit, SchedAttr};
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
    /// What thread `pid` has run so far, `None` when that cannot be told (no such thread, or
    /// a kernel without CONFIG_SCHED_INFO): how every boost is verified and measured.
    fn run_stats(&self, pid: Pid) -> Option<RunStats>;
    /// The limits that widen what thread `pid` may set itself without privilege
    /// ([`SelfLimits::UNKNOWN`] when they cannot be read).
    fn limits(&self, pid: Pid) -> SelfLimits;
    /// Whether thread `pid` is runnable (running or waiting for a CPU), `None` when that
    /// cannot be read: a FIFO phase that did not run a sleeping task gave it all it wanted.
    fn runnable(&self, pid: Pid) -> Option<bool>;
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

    fn run_stats(&self, pid: Pid) -> Option<RunStats> {
        run_stats_work().then(|| read_run_stats(pid)).flatten()
    }

    fn limits(&self, pid: Pid) -> SelfLimits {
        match (
            sys::rlimit_of(pid, Rlimit::RtPriority),
            sys::rlimit_of(pid, Rlimit::Nice),
        ) {
            (Ok(rt_priority), Ok(nice)) => SelfLimits { rt_priority, nice },
            _ => SelfLimits::UNKNOWN,
        }
    }

    fn runnable(&self, pid: Pid) -> Option<bool> {
        let stat = read_thread_stat(pid)?;
        Some(ThreadStat::parse(&stat)?.field(3)? == "R")
    }
}

/// Whether `schedstat` says anything: kernels before 5.14 without delay accounting or
/// schedstats enabled print zeros for every task, which would read as "never ran". Our own
/// thread runs as it asks, so it got a CPU at least once. Asked once.
fn run_stats_work() -> bool {
    static WORK: OnceLock<bool> = OnceLock::new();
    *WORK.get_or_init(|| read_run_stats(sys::gettid()).is_some_and(|ours| ours.arrivals > 0))
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
    use crate::boost::{BoostLedger, BoostRecord, SelfLimits};
    use crate::procfs::RunStats;
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
        /// What each task has run; a task without an entry cannot be measured.
        pub run_stats: HashMap<Pid, RunStats>,
        /// Resource limits of tasks; [`SelfLimits::UNKNOWN`] for the others.
        pub limits: HashMap<Pid, SelfLimits>,
        /// Tasks (tid, start time) of which the ledger keeps a record a replay could not undo.
        pub kept: Vec<(Pid, u64)>,
        /// Every record the ledger was given, in order.
        pub records: Vec<BoostRecord>,
        /// Tasks asleep (not runnable).
        pub sleeping: Vec<Pid>,
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

        /// `pid` can be measured: it has run `cpu_ns` after `arrivals` turns on a CPU.
        pub fn measure(&mut self, pid: Pid, cpu_ns: u64, arrivals: u64) {
            self.run_stats.insert(pid, RunStats { cpu_ns, arrivals });
        }

        /// `pid` got the CPU: one more arrival, its CPU time not yet brought up to date (as
        /// the kernel shows a running task).
        pub fn switch_in(&mut self, pid: Pid) {
            self.run_stats.get_mut(&pid).expect("measured").arrivals += 1;
        }

        /// `pid` has run `ns` more (as the kernel shows it once the task left the CPU).
        pub fn run_for(&mut self, pid: Pid, ns: u64) {
            self.run_stats.get_mut(&pid).expect("measured").cpu_ns += ns;
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

        fn run_stats(&self, pid: Pid) -> Option<RunStats> {
            let world = self.0.borrow();
            world
                .tasks
                .contains_key(&pid)
                .then(|| world.run_stats.get(&pid).copied())
                .flatten()
        }

        fn limits(&self, pid: Pid) -> SelfLimits {
            let world = self.0.borrow();
            world
                .limits
                .get(&pid)
                .copied()
                .unwrap_or(SelfLimits::UNKNOWN)
        }

        fn runnable(&self, pid: Pid) -> Option<bool> {
            let world = self.0.borrow();
            world
                .tasks
                .contains_key(&pid)
                .then(|| !world.sleeping.contains(&pid))
        }
    }

    pub struct FakeLedger(pub Shared);

    impl BoostLedger for FakeLedger {
        fn record(&mut self, record: &BoostRecord) -> io::Result<()> {
            let mut world = self.0.borrow_mut();
            world.calls.push(Call::Record(record.tid));
            world.records.push(*record);
            match world.record_errors.pop_front() {
                Some(errno) => Err(io::Error::from_raw_os_error(errno)),
                None => Ok(()),
            }
        }

        fn forget(&mut self, record: &BoostRecord) {
            self.0.borrow_mut().calls.push(Call::Forget(record.tid));
        }

        fn kept(&self, tid: Pid, start: u64) -> bool {
            self.0.borrow().kept.contains(&(tid, start))
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
