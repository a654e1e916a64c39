//! The one reader of a thread's `/proc/PID/task/PID/stat`, shared by the sched_debug backend's
//! checks and the booster's task identity, and of the few other `/proc` files of a thread that
//! stalld reads (`status`, `comm`, `schedstat`).
//!
//! The kernel writes the file from the task itself; the only field the task controls is its
//! name, which sits between the first `(` and the last `)` and may hold blanks, parentheses
//! and newlines. Every other field is read after that last `)`.

use crate::task::{Comm, Pid};

/// The raw `stat` of thread `pid`, `None` when there is no such thread. The thread's own
/// entry: `/proc/PID/stat` sums over every thread of the process (milliseconds for one with
/// 10,000 threads), and `pid` may be any thread, not only a process leader.
pub fn read_thread_stat(pid: Pid) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/task/{pid}/stat")).ok()
}

/// The raw `status` of thread `pid` (bytes: its `Name:` line does not escape high bytes, so
/// a thread may make it invalid UTF-8).
pub fn read_thread_status(pid: Pid) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/task/{pid}/status")).ok()
}

/// The number after `key` (e.g. `Tgid:`) in a `status` text.
pub fn status_number(status: &[u8], key: &str) -> Option<u64> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(key.as_bytes()))?;
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

/// The text after `key` (e.g. `Uid:`) in a `status` text, split at blanks and tabs.
fn status_words<'a>(status: &'a [u8], key: &str) -> Option<Vec<&'a str>> {
    let line = status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(key.as_bytes()))?;
    Some(std::str::from_utf8(line).ok()?.split_whitespace().collect())
}

/// The effective user id in a `status` text (the second number of its `Uid:` line), as this
/// process's user namespace sees it.
pub fn status_effective_uid(status: &[u8]) -> Option<u32> {
    status_words(status, "Uid:")?.get(1)?.parse().ok()
}

/// The effective capability set in a `status` text (`CapEff:`, hexadecimal), relative to the
/// task's own user namespace.
pub fn status_effective_capabilities(status: &[u8]) -> Option<u64> {
    let words = status_words(status, "CapEff:")?;
    u64::from_str_radix(words.first()?, 16).ok()
}

/// The name of thread `pid` (`/proc/PID/comm`), without the newline the kernel ends it with
/// (the name itself may hold one).
pub fn read_comm(pid: Pid) -> Option<Comm> {
    let comm = std::fs::read(format!("/proc/{pid}/comm")).ok()?;
    Some(Comm::new(comm.strip_suffix(b"\n").unwrap_or(&comm)))
}

/// What a thread has run, from `/proc/PID/task/PID/schedstat` (CONFIG_SCHED_INFO).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Its `sum_exec_runtime`, in nanoseconds. The kernel brings it up to date when the
    /// thread leaves the CPU (or its policy changes) and at ticks, not while it runs: a thread
    /// that has just got the CPU may still show its old value.
    pub cpu_ns: u64,
    /// How many times it got a CPU after waiting on a run queue (`sched_info.pcount`):
    /// counted the moment it is switched in, so it tells at once that a thread got the CPU.
    pub arrivals: u64,
}

impl RunStats {
    /// Whether the thread got a CPU since `earlier` was read.
    pub fn ran_since(&self, earlier: &RunStats) -> bool {
        self.arrivals != earlier.arrivals || self.cpu_ns != earlier.cpu_ns
    }

    /// The CPU time it received since `earlier` was read.
    pub fn cpu_since(&self, earlier: &RunStats) -> std::time::Duration {
        std::time::Duration::from_nanos(self.cpu_ns.saturating_sub(earlier.cpu_ns))
    }

    /// `sum_exec_runtime run_delay pcount`; `None` for anything else.
    pub fn parse(text: &[u8]) -> Option<RunStats> {
        let text = std::str::from_utf8(text).ok()?;
        let mut words = text.split_ascii_whitespace();
        let cpu_ns = words.next()?.parse().ok()?;
        let _run_delay: u64 = words.next()?.parse().ok()?;
        let arrivals = words.next()?.parse().ok()?;
        words
            .next()
            .is_none()
            .then_some(RunStats { cpu_ns, arrivals })
    }
}

/// The run statistics of thread `pid`; `None` when there is no such thread or no such file
/// (a kernel without CONFIG_SCHED_INFO).
pub fn read_run_stats(pid: Pid) -> Option<RunStats> {
    RunStats::parse(&std::fs::read(format!("/proc/{pid}/task/{pid}/schedstat")).ok()?)
}

/// A `stat` line split at the end of the name.
#[derive(Clone, Copy, Debug)]
pub struct ThreadStat<'a> {
    stat: &'a [u8],
    close: usize,
}

impl<'a> ThreadStat<'a> {
    /// `None` when the line has no `)` closing a name.
    pub fn parse(stat: &'a [u8]) -> Option<ThreadStat<'a>> {
        let close = stat.iter().rposition(|&b| b == b')')?;
        Some(ThreadStat { stat, close })
    }

    /// The name, raw as the task set it.
    pub fn comm(&self) -> Option<&'a [u8]> {
        let open = self.stat.iter().position(|&b| b == b'(')?;
        self.stat.get(open + 1..self.close)
    }

    /// Field `n`, counted from 3 (state) as proc(5) numbers them.
    pub fn field(&self, n: usize) -> Option<&'a str> {
        let word = self.stat[self.close + 1..]
            .split(|b| b.is_ascii_whitespace())
            .filter(|word| !word.is_empty())
            .nth(n.checked_sub(3)?)?;
        std::str::from_utf8(word).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_count_from_the_last_paren_whatever_the_name_holds() {
        let stat = ThreadStat::parse(b"42 (a) 2 \xff(\n) S 1 2\n").unwrap();
        assert_eq!(stat.comm(), Some(&b"a) 2 \xff(\n"[..]));
        assert_eq!(stat.field(3), Some("S"));
        assert_eq!(stat.field(5), Some("2"));
        assert_eq!(stat.field(6), None);
        assert_eq!(stat.field(2), None);
        assert!(ThreadStat::parse(b"42 (no close paren R 1").is_none());
        assert_eq!(ThreadStat::parse(b"42 ) R").unwrap().comm(), None);
    }

    #[test]
    fn uid_and_capabilities_are_read_from_status() {
        let status = b"Name:\tUid: 0\nUid:\t1000\t0\t0\t0\nCapEff:\t000001ffffffffff\n";
        assert_eq!(status_effective_uid(status), Some(0));
        assert_eq!(status_effective_capabilities(status), Some(0x1ff_ffff_ffff));
        assert_eq!(status_effective_uid(b"Uid:\t5\n"), None);
        assert_eq!(status_effective_capabilities(b"CapEff:\tzz\n"), None);
    }

    #[test]
    fn status_numbers_are_found_whatever_the_name_holds() {
        let status = b"Name:\t\xff\xfe\nTgid:\t4242\nPid:\t4243\nvoluntary_ctxt_switches:\t7\n";
        assert_eq!(status_number(status, "Tgid:"), Some(4242));
        assert_eq!(status_number(status, "voluntary_ctxt_switches:"), Some(7));
        assert_eq!(status_number(status, "nonvoluntary_ctxt_switches:"), None);
    }

    #[test]
    fn run_stats_are_the_three_numbers_of_schedstat() {
        let stats = RunStats::parse(b"237914898 15902142 378\n").unwrap();
        assert_eq!(
            stats,
            RunStats {
                cpu_ns: 237_914_898,
                arrivals: 378
            }
        );
        assert_eq!(RunStats::parse(b"1 2"), None);
        assert_eq!(RunStats::parse(b"1 2 3 4"), None);
        assert_eq!(RunStats::parse(b"x 2 3"), None);
        let later = RunStats {
            cpu_ns: 237_934_898,
            ..stats
        };
        assert!(later.ran_since(&stats) && !stats.ran_since(&stats));
        assert_eq!(later.cpu_since(&stats).as_micros(), 20);
        assert_eq!(stats.cpu_since(&later), std::time::Duration::ZERO);
        // Our own thread runs now: it got a CPU at least once.
        let ours = read_run_stats(crate::sys::gettid()).expect("CONFIG_SCHED_INFO");
        assert!(ours.arrivals >= 1, "{ours:?}");
        assert_eq!(read_run_stats(-1), None);
    }

    #[test]
    fn reads_our_own_thread() {
        let stat = read_thread_stat(crate::sys::gettid()).expect("our own /proc entry");
        assert_eq!(ThreadStat::parse(&stat).unwrap().field(3), Some("R"));
        assert_eq!(read_thread_stat(-1), None);
    }
}
