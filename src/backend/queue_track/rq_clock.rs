//! From the kernel's run-queue clock to CLOCK_MONOTONIC. Pure, unit-tested on its own.
//!
//! `sched_info.last_queued` is `rq_clock()`, i.e. `sched_clock_cpu()` of the task's CPU; stalld
//! and its detector live on CLOCK_MONOTONIC, which NTP slews and sched_clock does not, so the
//! two drift apart over uptime and no fixed offset will do. Every sched_info scan therefore
//! yields a fresh [`ClockPair`] ([`ScanClocks::pair`]): stalld's own `sched_info.last_arrival`
//! (the rq clock when its reading thread was last switched in), read when the iteration
//! reaches that thread, and a `bpf_ktime_get_ns()` read after that switch-in: the one at the
//! scan's start if the thread's switch count is still the one user space read before the
//! scan (so the switch-in came before the scan), else the one read right after the arrival.
//! A stamp `s` converts to `monotonic - (rq_clock - s)`.
//!
//! Error bound: converted − true = δ − drift ± skew, where
//! - δ ≥ 0 is the time from stalld's last switch-in to the monotonic read. Every check first
//!   sleeps 50 µs (`QueueTrack::snapshot`), so the switch-in is the wakeup from that sleep.
//!   Usually stalld runs on from there into the scan, and δ is the few microseconds of the
//!   iterator's start. If it is switched out and in again before the iteration reaches its
//!   own thread, δ is the time from that switch-in to there: at most the part of one scan
//!   that follows it. δ only ever makes a wait look shorter, never longer, so it can delay a
//!   boost by δ but never cause an early one;
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

/// A run-queue clock reading and a CLOCK_MONOTONIC reading taken after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockPair {
    /// The reading thread's `sched_info.last_arrival` (ns of the rq clock).
    pub rq_clock: u64,
    /// `bpf_ktime_get_ns()`, read after that arrival.
    pub monotonic: MonoTime,
}

/// The reading thread as the scan reached it (its QT_CLOCK record).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReaderClock {
    /// Its `sched_info.last_arrival`: the rq clock when it was last switched in.
    pub last_arrival: u64,
    /// Its `nvcsw + nivcsw`, read after the arrival.
    pub switches: u64,
    /// `bpf_ktime_get_ns()`, read after both.
    pub monotonic: MonoTime,
}

/// What one sched_info scan read of the clocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanClocks {
    /// CLOCK_MONOTONIC when the scan started (its QT_SCAN_START record).
    pub start: Option<MonoTime>,
    /// The reading thread, if the scan reached it.
    pub reader: Option<ReaderClock>,
}

impl ScanClocks {
    /// The pair to convert this scan's stamps with, given the reading thread's switch count
    /// read before the scan (`None`: unknown). The same count at the reader's record means it
    /// was not switched out since, so its arrival came before the scan started and pairs with
    /// the start: microseconds after the wakeup that preceded the scan. Otherwise it pairs with
    /// the reading taken right after the arrival was read. `None` without a reader record.
    pub fn pair(&self, switches_before: Option<u64>) -> Option<ClockPair> {
        let reader = self.reader?;
        let monotonic = match self.start {
            Some(start)
                if switches_before == Some(reader.switches) && start <= reader.monotonic =>
            {
                start
            }
            _ => reader.monotonic,
        };
        Some(ClockPair {
            rq_clock: reader.last_arrival,
            monotonic,
        })
    }
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

    fn reader(last_arrival: u64, switches: u64, monotonic: u64) -> Option<ReaderClock> {
        Some(ReaderClock {
            last_arrival,
            switches,
            monotonic: MonoTime(monotonic),
        })
    }

    #[test]
    fn an_arrival_from_before_the_scan_pairs_with_the_scans_start() {
        // Switched in at rq 10 s; the scan started 20 µs later (monotonic 12 s + 20 µs) and
        // reached the reading thread 3 ms after that, its switch count unchanged.
        let clocks = ScanClocks {
            start: Some(MonoTime(12 * SECOND + 20_000)),
            reader: reader(10 * SECOND, 40, 12 * SECOND + 3 * MS),
        };
        assert_eq!(
            clocks.pair(Some(40)),
            Some(pair(10 * SECOND, 12 * SECOND + 20_000))
        );
    }

    #[test]
    fn a_switch_during_the_scan_pairs_with_the_reading_after_the_new_arrival() {
        // Switched out and in again during the scan: the arrival is newer than the start, so
        // only the reading taken after it may pair with it.
        let clocks = ScanClocks {
            start: Some(MonoTime(12 * SECOND)),
            reader: reader(10 * SECOND + 5 * MS, 42, 12 * SECOND + 6 * MS),
        };
        assert_eq!(
            clocks.pair(Some(40)),
            Some(pair(10 * SECOND + 5 * MS, 12 * SECOND + 6 * MS))
        );
        // Nor when the count before is unknown, or there is no start record.
        assert_eq!(
            clocks.pair(None),
            Some(pair(10 * SECOND + 5 * MS, 12 * SECOND + 6 * MS))
        );
        let no_start = ScanClocks {
            start: None,
            ..clocks
        };
        assert_eq!(
            no_start.pair(Some(42)),
            Some(pair(10 * SECOND + 5 * MS, 12 * SECOND + 6 * MS))
        );
        // A start after the reader's reading cannot be right: not used.
        let late_start = ScanClocks {
            start: Some(MonoTime(13 * SECOND)),
            reader: reader(10 * SECOND, 40, 12 * SECOND),
        };
        assert_eq!(
            late_start.pair(Some(40)),
            Some(pair(10 * SECOND, 12 * SECOND))
        );
    }

    #[test]
    fn a_scan_that_missed_the_reader_has_no_pair() {
        let clocks = ScanClocks {
            start: Some(MonoTime(SECOND)),
            reader: None,
        };
        assert_eq!(clocks.pair(Some(1)), None);
    }

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
