//! The daemon shell: sets the machine up, runs the detect-and-boost loop, and puts everything
//! back on the way out (boosted tasks, RT throttling, HRTICK, the pid file).
//!
//! The loop sleeps until the next moment something can happen: a boost needs attention, a known
//! waiting task reaches the threshold, or (for a backend that cannot see queue times) the next
//! poll.

mod guardian;
mod idle;
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
use crate::config::{Config, Mode};
use crate::detect::{Detector, Starving};
use crate::event::{Event, TaskName};
use crate::sys::{self, SchedAttr};
use crate::task::{Comm, MonoTime, Pid, WaitingTask};
pub use log::Logger;
pub use rt_throttle::throttlectl;

/// Longest pause between retries when the backend keeps failing.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

pub fn run(config: Config) -> Result<()> {
    let logger = Logger::new(config.verbose).with_sinks(config.log_kmsg, config.log_syslog);
    if !sys::is_root() {
        bail!("stalld needs root permission");
    }
    if let Some(affinity) = &config.affinity {
        for cpu in affinity.iter() {
            logger.log(&format!("self-affinity: adding cpu {cpu}"));
        }
        sys::set_affinity(0, affinity)
            .with_context(|| format!("invalid CPU affinity: {affinity}"))?;
    }
    // Forked before anything is changed, so that it can undo every change.
    let mut guardian = if config.log_only {
        None
    } else {
        Some(guardian::Guardian::spawn(config.boost).context("starting the guardian process")?)
    };
    // Before anything slow, so that an early SIGTERM still means an orderly shutdown.
    let mut shutdown = signals::Shutdown::install().context("installing signal handlers")?;
    for cpu in config.cpus.iter() {
        logger.log(&format!("cpulist: adding cpu {cpu}"));
    }
    if !config.idle_detection {
        logger.log("idle detection disabled");
    }

    backend::set_verbose(config.verbose);
    let mut backend = backend::open(config.backend, config.cpus.clone(), |why| {
        logger.event(&Event::BackendFallback {
            to: "sched_debug",
            reason: format!("{why:#}"),
        });
    })?;
    logger.log(&format!("using {} backend", backend.name()));
    if let Some(stamps) = backend.stamp_source() {
        let name = backend.name();
        logger.log(&format!("{name}: enqueue times from {}", stamps.describe()));
    }
    sched_features::report_dl_server(&logger);

    let rt_throttle = if config.log_only {
        None
    } else if config.systemd {
        rt_throttle::require_disabled()?;
        None
    } else {
        Some(rt_throttle::disable(&logger)?)
    };
    if let (Some(guardian), Some(saved)) =
        (&mut guardian, rt_throttle.as_ref().and_then(|t| t.saved()))
    {
        guardian.rt_throttle_disabled(saved);
    }
    // Lockdown refuses sched/features; below 1 ms of runtime HRTICK is what enforces it.
    let lockdown = !config.log_only && sched_features::check_lockdown(&logger);
    let _hrtick =
        (!config.log_only && !lockdown && config.boost.runtime < Duration::from_millis(1))
            .then(|| sched_features::enable_hrtick(&logger));
    // Resolved before daemonizing moves to /, so a relative path means what the operator meant.
    let pidfile_path = config
        .pidfile
        .as_deref()
        .map(std::path::absolute)
        .transpose()?;
    if !config.foreground {
        sys::daemonize().context("daemonizing")?;
    }
    if let Some(percent) = config.reservation {
        reserve_cpu_time(&config, percent, &logger)?;
    }
    let _pidfile = pidfile_path
        .as_deref()
        .map(pidfile::PidFile::create)
        .transpose()?;

    let mut booster = Booster::new(config.boost);
    if !config.log_only {
        logger.log(&format!("using {} for boosting", booster.policy_name()));
    }
    let mut monitor = Monitor {
        config: &config,
        logger: &logger,
        guardian,
        detector: Detector::new(config.threshold),
        // Adaptive and aggressive modes warn at half the threshold.
        early: (config.mode != Mode::Power).then(|| Detector::new(config.threshold / 2)),
        // Polling backends skip polls while all CPUs idle; aggressive mode never skips.
        idle: (config.idle_detection
            && config.mode != Mode::Aggressive
            && !backend.knows_queue_times())
        .then(|| idle::IdleDetector::new(config.cpus.clone())),
        own_pid: std::process::id() as Pid,
    };
    logger.event(&Event::Started {
        backend: backend.name(),
        boosting: (!config.log_only).then_some(config.boost.policy),
    });
    monitor.run(backend.as_mut(), &mut booster, &mut shutdown);

    logger.event(&Event::Stopping);
    booster.restore_all(|boost, outcome| monitor.ended(boost, outcome));
    drop(rt_throttle);
    Ok(())
}

/// `-R`: stalld's own thread becomes SCHED_DEADLINE with `percent` of a period of the
/// granularity (1 s when the granularity is above 4 s), so it gets CPU time even when RT tasks
/// hog every CPU, but never more than its share.
fn reserve_cpu_time(config: &Config, percent: u32, logger: &Logger) -> Result<()> {
    let period = if config.granularity <= Duration::from_secs(4) {
        config.granularity
    } else {
        Duration::from_secs(1)
    };
    let period_ns = period.as_nanos() as u64;
    let runtime_ns = period_ns * u64::from(percent) / 100;
    let attr = SchedAttr {
        runtime: runtime_ns,
        deadline: period_ns,
        period: period_ns,
        ..SchedAttr::new(sys::SCHED_DEADLINE)
    };
    sys::sched_setattr(0, &attr).with_context(|| {
        "failed to set -R/--reservation: error setting the reservation".to_string()
    })?;
    logger.log(&format!(
        "successfully set {percent}% SCHED_DEADLINE reservation runtime/period = {runtime_ns}/{period_ns}"
    ));
    Ok(())
}

struct Monitor<'a> {
    config: &'a Config,
    logger: &'a Logger,
    guardian: Option<guardian::Guardian>,
    detector: Detector,
    early: Option<Detector>,
    idle: Option<idle::IdleDetector>,
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
            booster.advance(clock::now(), |boost, outcome| self.ended(boost, outcome));
            if self.all_cpus_idled() {
                shutdown.sleep_until(self.next_wakeup(backend, booster, clock::now()));
                continue;
            }
            if let Err(error) = backend.snapshot(&mut run_queues) {
                failures += 1;
                let delay = retry_delay(failures);
                self.logger.warn(&format!(
                    "Dazed and confused, but trying to continue: {error:#} (retrying in {} ms)",
                    delay.as_millis()
                ));
                let retry = clock::now().after(delay);
                shutdown.sleep_until(booster.next_event().map_or(retry, |event| event.min(retry)));
                continue;
            }
            failures = 0;
            let now = clock::now();
            let never_ran = |pid, switches| {
                run_queues
                    .iter()
                    .flat_map(|run_queue| &run_queue.waiting)
                    .any(|task| task.pid == pid && task.switches == switches)
            };
            for boost in booster.verify(now, never_ran) {
                self.logger.event(&Event::FifoFallback {
                    cpu: boost.cpu,
                    tid: boost.pid,
                });
            }
            if let Some(early) = &mut self.early {
                starving.clear();
                early.observe(now, &run_queues, &mut starving);
                for task in starving.iter().filter(|s| s.waited < self.config.threshold) {
                    self.logger.event(&Event::MightStarve {
                        cpu: task.cpu,
                        task: task_name(&task.task),
                        waited: task.waited,
                    });
                }
            }
            starving.clear();
            self.detector.observe(now, &run_queues, &mut starving);
            for starving in &starving {
                self.handle(starving, booster, now);
            }
            shutdown.sleep_until(self.next_wakeup(backend, booster, clock::now()));
        }
    }

    /// A boost is over: say how it ended, and tell the guardian there is nothing left to undo.
    fn ended(&mut self, boost: &ActiveBoost, outcome: Restore) {
        if let Some(guardian) = &mut self.guardian {
            guardian.boost_ended(boost.pid);
        }
        let (cpu, tid) = (boost.cpu, boost.pid);
        self.logger.event(&match outcome {
            Restore::Restored => Event::Restored {
                cpu,
                tid,
                policy: boost.saved.policy,
            },
            Restore::Exited => Event::ExitedWhileBoosted { cpu, tid },
            Restore::ChangedMeanwhile { policy } => Event::ChangedMeanwhile { cpu, tid, policy },
            Restore::Failed(error) => Event::RestoreFailed {
                cpu,
                tid,
                error: error.to_string(),
            },
        });
    }

    fn all_cpus_idled(&mut self) -> bool {
        let Some(idle) = &mut self.idle else {
            return false;
        };
        match idle.all_idle() {
            Ok(all_idle) => all_idle,
            Err(error) => {
                self.logger.warn(&format!(
                    "fail reading sched stat file: {error}; disabling idle detection"
                ));
                self.idle = None;
                false
            }
        }
    }

    fn handle(&mut self, starving: &Starving, booster: &mut Booster, now: MonoTime) {
        let task = &starving.task;
        if task.pid == self.own_pid || task.pid == 0 || booster.is_boosted(task.pid) {
            return;
        }
        let cpu = starving.cpu;
        self.logger.event(&Event::Starved {
            cpu,
            task: task_name(task),
            waited: starving.waited,
        });
        if self.config.log_only || self.denied(task) {
            return;
        }
        let policy = self.config.boost.policy;
        let outcome = match booster.boost(task.pid, cpu, task.switches, now) {
            Ok(boost) => {
                if let Some(guardian) = &mut self.guardian {
                    guardian.boosted(boost.pid, &boost.saved);
                }
                Event::Boosted {
                    cpu,
                    task: task_name(task),
                    process: process_name(task.pid, task.tgid),
                    policy,
                }
            }
            Err(BoostError::AlreadyDeadline) => Event::AlreadyDeadline {
                cpu,
                task: task_name(task),
            },
            Err(BoostError::System(error)) => Event::BoostFailed {
                cpu,
                task: task_name(task),
                policy,
                error: error.to_string(),
            },
        };
        self.logger.event(&outcome);
    }

    /// `-i` matches the thread's name, `-I` its process's name.
    fn denied(&self, task: &WaitingTask) -> bool {
        let comm = task.comm;
        if self.config.ignore_threads.matches(&comm.to_str_lossy()) {
            self.logger.log(&format!(
                "Ignoring the thread {comm} from consideration for boosting"
            ));
            return true;
        }
        if self.config.ignore_processes.is_empty() {
            return false;
        }
        match process_name(task.pid, task.tgid) {
            Some(process)
                if self
                    .config
                    .ignore_processes
                    .matches(&process.to_str_lossy()) =>
            {
                self.logger.log(&format!(
                    "Ignoring the thread {comm} (spawned by {process}) from consideration for boosting"
                ));
                true
            }
            Some(_) => false,
            None => {
                self.logger.warn("Ran into a tgid without process name");
                false
            }
        }
    }

    /// The next moment worth waking for. A task queued after this snapshot cannot reach the
    /// threshold before `now + threshold`, so with exact queue times nothing is missed.
    fn next_wakeup(&self, backend: &dyn Backend, booster: &Booster, now: MonoTime) -> MonoTime {
        let poll = if backend.knows_queue_times() {
            self.config.threshold / if self.early.is_some() { 2 } else { 1 }
        } else {
            self.config.granularity
        };
        [
            Some(now.after(poll)),
            self.detector.next_report(),
            self.early.as_ref().and_then(Detector::next_report),
            booster.next_event(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now)
    }
}

fn retry_delay(failures: u32) -> Duration {
    Duration::from_millis(100)
        .saturating_mul(1 << failures.min(16))
        .min(MAX_RETRY_DELAY)
}

fn task_name(task: &WaitingTask) -> TaskName {
    TaskName {
        tid: task.pid,
        tgid: task.tgid,
        comm: task.comm,
    }
}

/// The name of the process a thread belongs to (`/proc/<tgid>/comm`), as upstream prints it.
fn process_name(pid: Pid, tgid: Option<Pid>) -> Option<Comm> {
    let tgid = tgid.or_else(|| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("Tgid:")?.trim().parse().ok())
    })?;
    let comm = std::fs::read(format!("/proc/{tgid}/comm")).ok()?;
    // The kernel ends the name with a newline; the name itself may hold one.
    Some(Comm::new(comm.strip_suffix(b"\n").unwrap_or(&comm)))
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
        assert_eq!(
            process_name(me, None).map(|name| name.to_string()),
            Some(expected.trim_end().to_string())
        );
        assert_eq!(process_name(-5, None), None);
    }
}
