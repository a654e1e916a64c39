//! The daemon shell: sets the machine up, runs the detect-and-boost loop, and puts everything
//! back on the way out (boosted tasks, RT throttling, HRTICK, the pid file).
//!
//! The loop sleeps until the next moment something can happen: a boost ends, a known waiting
//! task reaches the threshold, or (for a backend that cannot see queue times) the next poll.

mod log;
mod pidfile;
mod rt_throttle;
mod sched_features;
mod signals;

use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::backend::{self, Backend};
use crate::boost::{ActiveBoost, BoostError, Booster, Restore};
use crate::clock;
use crate::config::Config;
use crate::detect::{Detector, Starving};
use crate::sys;
use crate::task::{MonoTime, Pid};
pub use log::Logger;
pub use rt_throttle::read_runtime as read_rt_runtime;

/// Longest pause between retries when the backend keeps failing.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

pub fn run(config: Config) -> Result<()> {
    let logger = Logger::new(config.verbose);
    if !sys::is_root() {
        bail!("stalld needs root permission");
    }
    for cpu in config.cpus.iter() {
        logger.log(&format!("cpulist: adding cpu {cpu}"));
    }
    let mut backend = backend::open(config.backend, config.cpus.clone(), |why| {
        logger.warn(&format!(
            "queue_track backend unavailable ({why:#}), falling back to sched_debug"
        ));
    })?;
    logger.log(&format!("using {} backend", backend.name()));

    let _rt_throttle = if config.log_only {
        None
    } else {
        Some(rt_throttle::disable(&logger)?)
    };
    let _hrtick = (!config.log_only).then(|| {
        sched_features::check_lockdown(&logger);
        sched_features::enable_hrtick(&logger)
    });
    if !config.foreground {
        sys::daemonize().context("daemonizing")?;
    }
    let _pidfile = config
        .pidfile
        .as_deref()
        .map(pidfile::PidFile::create)
        .transpose()?;
    let mut shutdown = signals::Shutdown::install().context("installing signal handlers")?;

    let mut booster = Booster::new(config.boost);
    let mut monitor = Monitor {
        config: &config,
        logger: &logger,
        detector: Detector::new(config.threshold),
        own_pid: std::process::id() as Pid,
    };
    monitor.run(backend.as_mut(), &mut booster, &mut shutdown);

    booster.restore_all(|boost, outcome| report_restore(&logger, boost, outcome));
    logger.log("stalld shutting down");
    Ok(())
}

struct Monitor<'a> {
    config: &'a Config,
    logger: &'a Logger,
    detector: Detector,
    own_pid: Pid,
}

impl Monitor<'_> {
    fn run(
        &mut self,
        backend: &mut dyn Backend,
        booster: &mut Booster,
        shutdown: &mut signals::Shutdown,
    ) {
        let mut run_queues = Vec::new();
        let mut starving = Vec::new();
        let mut failures = 0u32;
        while !shutdown.requested() {
            booster.restore_due(clock::now(), |boost, outcome| {
                report_restore(self.logger, boost, outcome)
            });
            if let Err(error) = backend.snapshot(&mut run_queues) {
                failures += 1;
                let delay = retry_delay(failures);
                self.logger.warn(&format!(
                    "Dazed and confused, but trying to continue: {error:#} (retrying in {} ms)",
                    delay.as_millis()
                ));
                shutdown.sleep_until(
                    clock::now()
                        .after(delay)
                        .min(booster.next_expiry().unwrap_or(MonoTime(u64::MAX))),
                );
                continue;
            }
            failures = 0;
            let now = clock::now();
            starving.clear();
            self.detector.observe(now, &run_queues, &mut starving);
            for starving in &starving {
                self.handle(starving, booster, now);
            }
            shutdown.sleep_until(self.next_wakeup(backend, booster, clock::now()));
        }
    }

    fn handle(&self, starving: &Starving, booster: &mut Booster, now: MonoTime) {
        let task = &starving.task;
        if task.pid == self.own_pid || task.pid == 0 || booster.is_boosted(task.pid) {
            return;
        }
        self.logger.log(&format!(
            "{}-{} starved on CPU {} for {} seconds ({:.3} s)",
            task.comm,
            task.pid,
            starving.cpu,
            starving.waited.as_secs(),
            starving.waited.as_secs_f64()
        ));
        if self.config.log_only {
            return;
        }
        match booster.boost(task.pid, starving.cpu, now) {
            Ok(boost) => self.logger.log(&format!(
                "boosted pid {} ({}) (cpu {}) using SCHED_DEADLINE",
                boost.pid,
                process_name(task.pid, task.tgid),
                boost.cpu
            )),
            Err(BoostError::AlreadyDeadline) => self.logger.log(&format!(
                "not boosting pid {} ({}): it already runs with SCHED_DEADLINE",
                task.pid, task.comm
            )),
            Err(BoostError::System(error)) => self.logger.warn(&format!(
                "boost_with_deadline failed to boost pid {}: {error}",
                task.pid
            )),
        }
    }

    /// The next moment worth waking for. A task queued after this snapshot cannot reach the
    /// threshold before `now + threshold`, so with exact queue times nothing is missed.
    fn next_wakeup(&self, backend: &dyn Backend, booster: &Booster, now: MonoTime) -> MonoTime {
        let poll = if backend.knows_queue_times() {
            self.config.threshold
        } else {
            self.config.granularity
        };
        [
            Some(now.after(poll)),
            self.detector.next_report(),
            booster.next_expiry(),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("the poll time is always there")
    }
}

fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.min(16))
        .min(MAX_RETRY_DELAY)
}

fn report_restore(logger: &Logger, boost: &ActiveBoost, outcome: Restore) {
    let policy = sys::policy_name(boost.saved.policy);
    match outcome {
        Restore::Restored => logger.log(&format!("restored pid {} to {policy}", boost.pid)),
        Restore::Exited => logger.log(&format!("pid {} exited while boosted", boost.pid)),
        Restore::ChangedMeanwhile { policy: now } => logger.log(&format!(
            "pid {} was switched to {} during its boost: leaving it so",
            boost.pid,
            sys::policy_name(now)
        )),
        Restore::Failed(error) => logger.warn(&format!(
            "restore_policy: failed to restore sched policy for pid {}: {error}",
            boost.pid
        )),
    }
}

/// The name of the process a thread belongs to, as upstream prints it in "boosted" lines.
fn process_name(pid: Pid, tgid: Option<Pid>) -> String {
    let tgid = tgid.or_else(|| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("Tgid:")?.trim().parse().ok())
    });
    tgid.and_then(|tgid| std::fs::read_to_string(format!("/proc/{tgid}/comm")).ok())
        .map_or_else(
            || "<unknown>".to_string(),
            |comm| comm.trim_end().to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_millis(200));
        assert_eq!(retry_delay(3), Duration::from_millis(800));
        assert_eq!(retry_delay(40), MAX_RETRY_DELAY);
    }

    #[test]
    fn process_name_of_ourselves() {
        let me = std::process::id() as Pid;
        let expected = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(process_name(me, None), expected.trim_end());
        assert_eq!(process_name(-5, None), "<unknown>");
    }
}
