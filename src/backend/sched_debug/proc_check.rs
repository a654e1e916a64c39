//! What `/proc` says about a task, to check a task line that did not stand alone (see the
//! parser's trust rules) and, on kernels whose table lists sleeping tasks too (F0/F1), that a
//! listed task is really runnable.
//!
//! `/proc/PID/stat` and `/proc/PID/status` are written by the kernel from the task itself;
//! nothing in them can be forged by the task's name (the name is the one field between the
//! first `(` and the last `)` of `stat`).

use crate::procfs::{read_thread_stat, read_thread_status, status_number, ThreadStat};
use crate::task::{Comm, Pid};

/// The fields of a task that a sched_debug line claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcTask {
    pub comm: Comm,
    /// `/proc/PID/stat` state letter (`R` runnable, `S` sleeping, ...).
    pub state: u8,
    /// The kernel priority as sched_debug prints it (stat's `priority` + 100).
    pub prio: i32,
    /// The CPU the task is on (stat's `processor`).
    pub cpu: u32,
    /// Voluntary + involuntary context switches, as sched_debug's `switches`.
    pub switches: u64,
}

impl ProcTask {
    pub fn read(pid: Pid) -> Option<ProcTask> {
        let stat = read_thread_stat(pid)?;
        let status = read_thread_status(pid)?;
        ProcTask::parse(&stat, &status)
    }

    /// Only the state letter: one read of `stat`, none of `status`. On F0/F1 every listed
    /// task is checked at every poll, and the state is all that check needs.
    pub fn read_state(pid: Pid) -> Option<u8> {
        state(&ThreadStat::parse(&read_thread_stat(pid)?)?)
    }

    fn parse(stat: &[u8], status: &[u8]) -> Option<ProcTask> {
        let stat = ThreadStat::parse(stat)?;
        let comm = Comm::new(stat.comm()?);
        let state = state(&stat)?;
        let priority: i32 = stat.field(18)?.parse().ok()?;
        let cpu = stat.field(39)?.parse().ok()?;
        let count = |key: &str| status_number(status, key);
        let switches = count("voluntary_ctxt_switches:")? + count("nonvoluntary_ctxt_switches:")?;
        Some(ProcTask {
            comm,
            state,
            prio: priority + 100,
            cpu,
            switches,
        })
    }
}

fn state(stat: &ThreadStat<'_>) -> Option<u8> {
    stat.field(3)?.as_bytes().first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_and_status_with_a_hostile_name() {
        let stat = b"4242 (a) R (\n<0>) S 1 4242 4242 0 -1 4194560 10 0 0 0 3 1 0 0 -6 0 1 0 1234 1000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 -1 1 0 0 0 0 0\n";
        let status =
            b"Name:\ta) R (\\n<0>\xff\nvoluntary_ctxt_switches:\t40\nnonvoluntary_ctxt_switches:\t2\n";
        assert_eq!(
            ProcTask::parse(stat, status),
            Some(ProcTask {
                comm: Comm::new(b"a) R (\n<0>"),
                state: b'S',
                prio: 94,
                cpu: 1,
                switches: 42,
            })
        );
        assert_eq!(ProcTask::parse(b"4242 (x", status), None);
        assert_eq!(ProcTask::parse(stat, b"Name:\tx\n"), None);
    }

    #[test]
    fn reads_ourselves() {
        let me = ProcTask::read(crate::sys::gettid()).expect("our own /proc entry");
        assert_eq!(me.state, b'R');
        let comm = std::fs::read("/proc/thread-self/comm").unwrap();
        assert_eq!(me.comm, Comm::new(comm.strip_suffix(b"\n").unwrap()));
        assert_eq!(ProcTask::read(-1), None);
        assert_eq!(ProcTask::read_state(crate::sys::gettid()), Some(b'R'));
        assert_eq!(ProcTask::read_state(-1), None);
    }
}
