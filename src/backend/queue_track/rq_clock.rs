//! From the kernel's run-queue clock to CLOCK_MONOTONIC. Pure, unit-tested on its own.
//!
//! `sched_info.last_queued` is `rq_clock()`, i.e. `sched_clock_cpu()` of the task's CPU; stalld
//! and its detector live on CLOCK_MONOTONIC, which NTP slews and sched_clock does not, so the
//! two drift apart over uptime and no fixed offset will do. Every sched_info scan therefore
//! starts with a fresh [`ClockPair`]: stalld's own `sched_info.last_arrival` (the rq clock when
//! it was last switched in) and `bpf_ktime_get_ns()`, read in that order in the same program
//! run. A stamp `s` converts to `monotonic - (rq_clock - s)`.
//!
//! Error bound: converted − true = δ − drift ± skew, where
//! - δ ≥ 0 is the time from stalld's last switch-in to the monotonic read. Every check first
//!   sleeps 50 µs (`QueueTrack::snapshot`), so the switch-in is the wakeup from that sleep and
//!   δ is the few microseconds of the iterator's start (more only if stalld is preempted in
//!   between and not switched in again); δ only ever makes a wait look shorter, never longer,
//!   so it can delay a boost by δ but never cause an early one;
//! - drift is how much CLOCK_MONOTONIC − sched_clock changed between the enqueue and the scan:
//!   NTP's frequency correction is capped at 500 ppm (adjtimex), and a wait is converted only
//!   once, when first seen (see [`StableStamps`]), so |drift| ≤ 0.0005 × the wait's age then
//!   (≤ 5 ms for a task first seen 10 s into its wait; real corrections are a few ppm);
//! - skew is between the rq clocks of the task's CPU and of stalld's CPU: 0 where the kernel
//!   marked sched_clock stable (synchronised TSC, arm64's architected timer); otherwise
//!   sched_clock_cpu() resynchronises every CPU to ktime at each tick, so at most one tick.
//!
//! The kernel's stamp itself is taken right after an `update_rq_clock()` on the enqueue and
//! switch paths.

use std::collections::HashMap;
use std::mem;

use crate::task::{MonoTime, Pid};

/// The run-queue clock and CLOCK_MONOTONIC read together in one iterator run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockPair {
    /// The reading task's `sched_info.last_arrival` (ns of the rq clock).
    pub rq_clock: u64,
    /// `bpf_ktime_get_ns()`, read after it.
    pub monotonic: MonoTime,
}

/// The CLOCK_MONOTONIC time of the rq-clock reading `stamp`, by `reference`, and never later
/// than `read_at` (when user space got the scan): a task cannot have been queued after it was
/// seen queued. `None` when there is no stamp (0) or the reference has no rq reading (0).
/// A stamp newer than the reference (queued on another CPU after stalld was switched in)
/// converts forward from it; one older than boot saturates at 0.
pub fn to_monotonic(stamp: u64, reference: ClockPair, read_at: MonoTime) -> Option<MonoTime> {
    if stamp == 0 || reference.rq_clock == 0 {
        return None;
    }
    let at = if stamp <= reference.rq_clock {
        reference
            .monotonic
            .0
            .saturating_sub(reference.rq_clock - stamp)
    } else {
        reference
            .monotonic
            .0
            .saturating_add(stamp - reference.rq_clock)
    };
    Some(MonoTime(at.min(read_at.0)))
}

/// Converts each wait once, when first seen, and hands out that same time while the task
/// keeps the same kernel stamp. The detector recognises a wait by its switch count and its
/// enqueue time; a conversion redone at every scan would move by each scan's δ and look like
/// a new wait every time.
#[derive(Debug, Default)]
pub struct StableStamps {
    /// pid → (kernel stamp, its CLOCK_MONOTONIC time) for the tasks of the current scan.
    current: HashMap<Pid, (u64, MonoTime)>,
    /// The same for the previous scan (kept to reuse its conversions and its allocation).
    previous: HashMap<Pid, (u64, MonoTime)>,
}

impl StableStamps {
    /// Starts a scan: only tasks seen in it are remembered after it.
    pub fn begin_scan(&mut self) {
        mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
    }

    /// The enqueue time of `pid` waiting with kernel stamp `stamp`, converted with
    /// `reference` unless the previous scan already converted this same stamp.
    pub fn queued_at(
        &mut self,
        pid: Pid,
        stamp: u64,
        reference: Option<ClockPair>,
        read_at: MonoTime,
    ) -> Option<MonoTime> {
        let known = self
            .previous
            .get(&pid)
            .filter(|(seen, _)| *seen == stamp)
            .map(|&(_, at)| at);
        let at = match known {
            Some(at) => at,
            None => to_monotonic(stamp, reference?, read_at)?,
        };
        self.current.insert(pid, (stamp, at));
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const SECOND: u64 = 1_000_000_000;

    fn pair(rq_clock: u64, monotonic: u64) -> ClockPair {
        ClockPair {
            rq_clock,
            monotonic: MonoTime(monotonic),
        }
    }

    const LATE: MonoTime = MonoTime(u64::MAX);

    #[test]
    fn a_stamp_keeps_its_distance_to_the_reference() {
        // The rq clock runs 7 s behind CLOCK_MONOTONIC here.
        let reference = pair(100 * SECOND, 107 * SECOND);
        assert_eq!(
            to_monotonic(97 * SECOND, reference, LATE),
            Some(MonoTime(104 * SECOND))
        );
        assert_eq!(
            to_monotonic(100 * SECOND, reference, LATE),
            Some(MonoTime(107 * SECOND))
        );
    }

    #[test]
    fn a_drifted_reference_moves_the_conversion_with_it() {
        // Between two scans NTP slewed CLOCK_MONOTONIC 3 ms ahead of the rq clock: the same
        // stamp converts 3 ms later against the newer pairing, which is the truth by then.
        let stamp = 50 * SECOND;
        let before = pair(60 * SECOND, 65 * SECOND);
        let after = pair(70 * SECOND, 75 * SECOND + 3 * MS);
        let first = to_monotonic(stamp, before, LATE).unwrap();
        let second = to_monotonic(stamp, after, LATE).unwrap();
        assert_eq!(second.0 - first.0, 3 * MS);
        // The other way round (monotonic slowed down), too.
        let slower = pair(70 * SECOND, 75 * SECOND - 2 * MS);
        assert_eq!(
            first.0 - to_monotonic(stamp, slower, LATE).unwrap().0,
            2 * MS
        );
    }

    #[test]
    fn a_stamp_newer_than_the_reference_converts_forward_but_not_past_the_read() {
        // Queued on another CPU 2 ms after stalld was switched in.
        let reference = pair(10 * SECOND, 12 * SECOND);
        assert_eq!(
            to_monotonic(10 * SECOND + 2 * MS, reference, LATE),
            Some(MonoTime(12 * SECOND + 2 * MS))
        );
        // A clock skew that would put it after the moment the scan was read is cut there.
        let read_at = MonoTime(12 * SECOND + MS);
        assert_eq!(
            to_monotonic(10 * SECOND + 2 * MS, reference, read_at),
            Some(read_at)
        );
    }

    #[test]
    fn zero_means_unknown_and_old_stamps_saturate() {
        let reference = pair(10 * SECOND, 3 * SECOND);
        assert_eq!(to_monotonic(0, reference, LATE), None);
        assert_eq!(to_monotonic(5 * SECOND, pair(0, 3 * SECOND), LATE), None);
        // 10 s of rq clock before a monotonic 3 s: before boot, so as old as can be.
        assert_eq!(to_monotonic(SECOND, reference, LATE), Some(MonoTime(0)));
        assert_eq!(
            to_monotonic(u64::MAX, pair(1, u64::MAX - 1), LATE),
            Some(MonoTime(u64::MAX))
        );
    }

    #[test]
    fn a_wait_keeps_its_first_conversion_while_the_stamp_stays() {
        let mut stamps = StableStamps::default();
        let stamp = 40 * SECOND;
        stamps.begin_scan();
        let first = stamps
            .queued_at(7, stamp, Some(pair(41 * SECOND, 45 * SECOND)), LATE)
            .unwrap();
        assert_eq!(first, MonoTime(44 * SECOND));
        // The next scan's reference is 20 µs worse (a later read after stalld's switch-in).
        stamps.begin_scan();
        let again = stamps.queued_at(
            7,
            stamp,
            Some(pair(42 * SECOND, 46 * SECOND + 20_000)),
            LATE,
        );
        assert_eq!(again, Some(first), "the same wait keeps its time");
        // The task ran and was queued again: a new stamp, converted anew.
        stamps.begin_scan();
        let requeued = stamps.queued_at(7, 43 * SECOND, Some(pair(44 * SECOND, 48 * SECOND)), LATE);
        assert_eq!(requeued, Some(MonoTime(47 * SECOND)));
    }

    #[test]
    fn tasks_missing_from_a_scan_are_forgotten() {
        let mut stamps = StableStamps::default();
        let reference = Some(pair(10 * SECOND, 10 * SECOND));
        stamps.begin_scan();
        stamps.queued_at(1, 9 * SECOND, reference, LATE);
        stamps.begin_scan();
        stamps.queued_at(2, 9 * SECOND, reference, LATE);
        stamps.begin_scan();
        // Pid 1 was not in the previous scan, so it is converted with the new reference.
        let moved = Some(pair(10 * SECOND, 11 * SECOND));
        assert_eq!(
            stamps.queued_at(1, 9 * SECOND, moved, LATE),
            Some(MonoTime(10 * SECOND))
        );
        assert_eq!(
            stamps.queued_at(2, 9 * SECOND, moved, LATE),
            Some(MonoTime(9 * SECOND)),
            "pid 2 keeps its conversion"
        );
    }

    #[test]
    fn without_a_reference_only_known_waits_have_a_time() {
        let mut stamps = StableStamps::default();
        stamps.begin_scan();
        stamps.queued_at(3, 5 * SECOND, Some(pair(6 * SECOND, 6 * SECOND)), LATE);
        stamps.begin_scan();
        assert_eq!(
            stamps.queued_at(3, 5 * SECOND, None, LATE),
            Some(MonoTime(5 * SECOND))
        );
        assert_eq!(stamps.queued_at(4, 5 * SECOND, None, LATE), None);
        assert_eq!(
            stamps.queued_at(5, 0, Some(pair(6 * SECOND, 6 * SECOND)), LATE),
            None
        );
    }
}
