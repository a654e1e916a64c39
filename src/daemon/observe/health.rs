//! Whether the loop is doing its job: when its last check of the run queues succeeded, and
//! whether that is too long ago. What systemd's watchdog, the metrics listener's `/healthz`
//! and `stalld status` are told.
//!
//! A healthy loop checks at least once per *gap* (the loop's cadence says how long): a CPU that has not
//! idled is looked at once per horizon, an idle machine is checked (one /proc/stat sample)
//! every check interval. A backend whose every snapshot fails ("Dazed and confused") has no
//! successful check after its last good one; a stuck loop has none either.
//!
//! The bound ([`bound`]): the larger of `WatchdogSec` (60 s when there is none, the unit's
//! value) and twice the longest gap.
//! - `WatchdogSec` is how long the operator lets a stalld that does not work go on before
//!   systemd restarts it: a backend failing that long (with retries every 5 s at most, that
//!   is a dozen failed attempts at 60 s) is not a blip that the retries will get past. A
//!   shorter bound would restart the daemon (and end every boost) on a passing failure.
//!   Once pings stop, systemd kills within WatchdogSec/2 more (they come every half), so a
//!   restart follows at most 1.5 × the bound after the last good check.
//! - Twice the longest gap: a healthy loop's checks may be that far apart (a one-hour
//!   threshold with `-N`), and one late wakeup must not count as a failure.

use std::time::Duration;

use crate::task::MonoTime;

/// The bound when the watchdog is off (the unit's `WatchdogSec=`).
pub const DEFAULT_BOUND: Duration = Duration::from_secs(60);

/// How long without a successful check the loop counts as failing: see the module
/// documentation. `watchdog` is systemd's `WatchdogSec` (`None`: off).
pub fn bound(watchdog: Option<Duration>, longest_gap: Duration) -> Duration {
    watchdog
        .unwrap_or(DEFAULT_BOUND)
        .max(longest_gap.saturating_mul(2))
}

/// The loop's record of its checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    bound: Duration,
    /// The last successful check, or the loop's start before the first.
    last_ok: MonoTime,
}

impl Health {
    pub fn new(start: MonoTime, bound: Duration) -> Health {
        Health {
            bound,
            last_ok: start,
        }
    }

    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// A check succeeded at `at`.
    pub fn ok(&mut self, at: MonoTime) {
        self.last_ok = self.last_ok.max(at);
    }

    /// How long there has been no successful check as of `now` (since the start before the
    /// first).
    pub fn age(&self, now: MonoTime) -> Duration {
        now.saturating_since(self.last_ok)
    }

    /// How long there has been no successful check, if that is beyond the bound at `now`.
    pub fn stale(&self, now: MonoTime) -> Option<Duration> {
        let since = self.age(now);
        (since > self.bound).then_some(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn stale_only_beyond_the_bound_since_the_last_success() {
        let start = MonoTime(100 * SECOND);
        let mut health = Health::new(start, Duration::from_secs(60));
        assert_eq!(health.stale(MonoTime(160 * SECOND)), None);
        assert_eq!(
            health.stale(MonoTime(161 * SECOND)),
            Some(Duration::from_secs(61))
        );
        // Failures in between change nothing: only a success does.
        health.ok(MonoTime(150 * SECOND));
        assert_eq!(health.stale(MonoTime(200 * SECOND)), None);
        assert_eq!(
            health.stale(MonoTime(211 * SECOND)),
            Some(Duration::from_secs(61))
        );
        health.ok(MonoTime(211 * SECOND));
        assert_eq!(health.stale(MonoTime(211 * SECOND)), None);
        // An older success does not move it back.
        health.ok(MonoTime(120 * SECOND));
        assert_eq!(health.stale(MonoTime(250 * SECOND)), None);
    }
}
