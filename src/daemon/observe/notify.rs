//! systemd's notification protocol (sd-notify): `READY=1` once the backend is up and the first
//! check ran, `STATUS=` a one-line summary when it changes, `WATCHDOG=1` from the loop when the
//! unit sets `WatchdogSec=` (withheld while no check succeeds: see [`super::health`]),
//! `STOPPING=1` when a shutdown starts. Without NOTIFY_SOCKET (not
//! started by systemd as Type=notify) all of it is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::task::MonoTime;

pub struct Notifier {
    enabled: bool,
    ready: bool,
    status: String,
    /// Half the watchdog timeout: pinging at that pace survives one late wakeup.
    ping_every: Option<Duration>,
    next_ping: Option<MonoTime>,
    /// Pings are withheld: no check has succeeded for too long.
    withheld: bool,
}

impl Notifier {
    pub fn from_environment() -> Notifier {
        let enabled = under_service_manager();
        let ping_every = enabled
            .then(sd_notify::watchdog_enabled)
            .flatten()
            .map(|timeout| timeout / 2);
        Notifier {
            enabled,
            ready: false,
            status: String::new(),
            ping_every,
            next_ping: None,
            withheld: false,
        }
    }

    /// A notifier with a watchdog of `timeout` and no socket (nothing is sent), for tests.
    #[cfg(test)]
    pub fn with_watchdog(timeout: Duration) -> Notifier {
        Notifier {
            enabled: false,
            ready: false,
            status: String::new(),
            ping_every: Some(timeout / 2),
            next_ping: None,
            withheld: false,
        }
    }

    /// The first check ran (and its `summary`, built only under systemd): ready, then status
    /// updates when it changes.
    pub fn checked(&mut self, summary: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        let summary = summary();
        if self.ready && summary == self.status {
            return;
        }
        let status = NotifyState::Status(&summary);
        let _ = if self.ready {
            sd_notify::notify(&[status])
        } else {
            sd_notify::notify(&[NotifyState::Ready, status])
        };
        self.ready = true;
        self.status = summary;
    }

    /// systemd's `WatchdogSec`, when the unit sets one.
    pub fn watchdog(&self) -> Option<Duration> {
        self.ping_every.map(|every| every * 2)
    }

    /// Called at every wakeup of the loop: pings the watchdog when due.
    pub fn tick(&mut self, now: MonoTime) {
        let Some(every) = self.ping_every else {
            return;
        };
        self.withheld = false;
        if self.next_ping.is_none_or(|due| now >= due) {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            self.next_ping = Some(now.after(every));
        }
    }

    /// Called instead of [`tick`](Notifier::tick) while the loop fails (`why`): no more
    /// pings, so that systemd restarts the daemon when the watchdog expires; `why` is the
    /// status it shows meanwhile.
    pub fn withhold(&mut self, why: impl FnOnce() -> String) {
        if self.ping_every.is_none() || self.withheld {
            return;
        }
        self.withheld = true;
        let why = why();
        let _ = sd_notify::notify(&[NotifyState::Status(&why)]);
        self.status = why;
    }

    /// The latest moment the loop must wake for the watchdog (none while pings are withheld).
    pub fn deadline(&self) -> Option<MonoTime> {
        self.next_ping.filter(|_| !self.withheld)
    }

    pub fn stopping(&mut self) {
        if self.enabled {
            let _ = sd_notify::notify(&[NotifyState::Stopping]);
        }
    }
}

/// Started by systemd with Type=notify: it waits for READY=1 from this very process, so the
/// daemon must not fork away (it stays in the foreground, as with FG="--foreground").
pub fn under_service_manager() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|socket| !socket.is_empty())
}
