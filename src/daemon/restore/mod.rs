//! What stalld changes on the machine beside the boosts, and how all of it is put back
//! whatever kills the daemon: the ledger in /run/stalld (every change written down before it
//! is made), the guardian that replays it, RT throttling, and HRTICK.

pub mod guardian;
pub mod ledger;
pub mod rt_throttle;
pub mod sched_features;

use std::time::Duration;

use anyhow::Result;

use crate::config::Config;
use crate::daemon::log::Logger;

/// What a boosting daemon changes on the machine beside the boosts, set up in the stages the
/// daemon's start needs (see `run`) and put back by [`Changes::finish`]; whatever kills the
/// daemon, the guardian, the next start or `stalld restore` puts it back from the ledger. A
/// log-only daemon (`-l`) has none of it.
pub struct Changes {
    // Dropped in this order on an early return (the fields' order): HRTICK and RT
    // throttling are put back before the records are closed, which wakes the guardian.
    hrtick: Option<sched_features::HrtickGuard>,
    rt_throttle: Option<rt_throttle::RtThrottleGuard>,
    instance: ledger::Instance,
}

impl Changes {
    /// Before anything else is changed: what dead instances left is undone (RT throttling
    /// too, unless `-S` leaves it to the unit), and from here on every change is written
    /// down before it is made.
    pub fn begin(config: &Config, logger: &Logger) -> Result<Changes> {
        Ok(Changes {
            hrtick: None,
            rt_throttle: None,
            instance: ledger::for_daemon(config.process.systemd, logger)?,
        })
    }

    /// RT throttling turned off (written down first; with `-S` the unit must have done it),
    /// then HRTICK turned on where it is needed and allowed: a runtime below 1 ms is enforced
    /// only with it, and lockdown refuses sched/features.
    pub fn tune(&mut self, config: &Config, logger: &Logger) -> Result<()> {
        self.rt_throttle = if config.process.systemd {
            rt_throttle::require_disabled()?;
            None
        } else {
            Some(rt_throttle::disable(logger, &self.instance)?)
        };
        let lockdown = sched_features::check_lockdown(logger);
        self.hrtick = (!lockdown && config.boost.runtime < Duration::from_millis(1))
            .then(|| sched_features::enable_hrtick(logger));
        Ok(())
    }

    /// This daemon's records in the ledger: the boosts' and the guardian's.
    pub fn instance(&self) -> &ledger::Instance {
        &self.instance
    }

    /// After the boosts are restored: RT throttling back, then the records struck out (the
    /// instance's directory goes when nothing is left), HRTICK as it was.
    pub fn finish(self, logger: &Logger) {
        drop(self.rt_throttle);
        self.instance.finish(logger);
        drop(self.hrtick);
    }
}
