//! The daemon shell: sets the machine up, runs the detect-and-boost loop, and puts everything
//! back on the way out (boosted tasks, RT throttling, HRTICK, the pid file).
//!
//! The loop sleeps until the next moment something can happen: a boost needs attention, a known
//! waiting task reaches the threshold, or (for a backend that cannot see queue times) the next
//! poll.

mod checks;
mod culprit;
mod guardian;
mod idle;
mod instances;
mod ledger;
mod listen;
mod log;
mod metrics;
mod notify;
mod pidfile;
mod rt_throttle;
mod rundir;
mod sched_features;
mod shared_dir;
mod signals;
mod status;
mod telemetry;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::backend::{self, Backend};
use crate::boost::{ActiveBoost, BoostError, Booster, Kernel, Restore, Step, RESTORE_ATTEMPTS};
use crate::clock;
use crate::config::{Config, Mode};
use crate::detect::{Detector, Starving};
use crate::event::{Event, TaskName};
use crate::procfs;
use crate::sys::{self, SchedAttr};
use crate::task::{Comm, MonoTime, Pid, RunQueue, WaitingTask};
pub use guardian::main as guardian_main;
pub use guardian::NAME as GUARDIAN_NAME;
pub use instances::{boosting_instances, exit_code, FoundBy, OtherInstance, EXIT_ANOTHER_INSTANCE};
pub use log::journal::{Journal, SOCKET_ENV as JOURNAL_SOCKET_ENV};
pub use log::{Delivery, Logger, Sinks, SYSLOG_SOCKET_ENV};
pub use rt_throttle::{restore_leftovers, throttlectl};
pub use sched_features::hrtick_state;
pub use status::{
    client as status_client, socket_path as status_socket_path, EXIT_NOT_RUNNING, EXIT_REFUSED,
    SOCKET_ENV as STATUS_SOCKET_ENV,
};

/// Longest pause between retries when the backend keeps failing.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

pub fn run(config: Config) -> Result<()> {
    let logger = Logger::open(&config.sinks);
    if !sys::is_root() {
        bail!("stalld needs root permission");
    }
    // Locked before anything is changed and before daemonizing, so a second instance exits
    // non-zero on the terminal it was started from; the lock passes to the final daemon.
    let mut pidfile = lock_pidfile(&config, &logger)?;
    // Before anything is changed: a second boosting stalld would fight the first over RT
    // throttling and the boosts.
    if !config.log_only && !config.allow_other_instances {
        let others = instances::boosting_instances(&[]);
        if !others.is_empty() {
            if config.stand_aside {
                return stand_aside(&config, logger, pidfile, &others);
            }
            return Err(instances::refusal(&others).into());
        }
    }
    let (logger, telemetry) = with_structured_sinks(logger, &config)?;
    if let Some(affinity) = &config.affinity {
        for cpu in affinity.iter() {
            logger.log(&format!("self-affinity: adding cpu {cpu}"));
        }
        sys::set_affinity(0, affinity)
            .with_context(|| format!("invalid CPU affinity: {affinity}"))?;
    }
    // Before anything is changed: what a dead stalld left is undone, and from here on every
    // change is written down before it is made.
    let instance = ledger::for_daemon(config.log_only, config.systemd, &logger)?;
    // Before anything slow, so that an early SIGTERM still means an orderly shutdown.
    let mut shutdown = signals::Shutdown::install().context("installing signal handlers")?;
    // Bound now, served once daemonized: a bad or busy address is an error on the terminal.
    let metrics = config
        .metrics
        .as_ref()
        .map(metrics::MetricsServer::bind)
        .transpose()?;
    let mut status = status::StatusServer::bind()
        .map_err(|error| {
            logger.warn(&format!(
                "no status socket at {}: {error}",
                status::socket_path().display()
            ))
        })
        .ok();
    for cpu in config.cpus.iter() {
        logger.log(&format!("cpulist: adding cpu {cpu}"));
    }
    if !config.idle_detection {
        logger.log("idle detection disabled");
    }

    backend::set_verbose(config.sinks.verbose);
    let mut backend = backend::open(config.backend, config.cpus.clone(), |why| {
        logger.event(&Event::BackendFallback {
            to: "sched_debug",
            reason: format!("{why:#}"),
        });
    })?;
    logger.log(&format!("using {} backend", backend.name()));
    if let Some(stamps) = backend.stamps() {
        let name = backend.name();
        if let Some((failed, why)) = backend.stamps_fallback() {
            logger.warn(&format!(
                "{name}: enqueue times from {} did not load: {why}; falling back to {}",
                failed.describe(),
                stamps.describe()
            ));
        }
        logger.log(&format!("{name}: enqueue times from {}", stamps.describe()));
    }
    logger.set_backend(backend.name());
    telemetry
        .borrow_mut()
        .set_backend(backend.name(), backend.stamp_source());
    sched_features::report_dl_server(&logger);

    let rt_throttle = if config.log_only {
        None
    } else if config.systemd {
        rt_throttle::require_disabled()?;
        None
    } else {
        instance
            .as_ref()
            .map(|instance| rt_throttle::disable(&logger, instance))
            .transpose()?
    };
    // Lockdown refuses sched/features; below 1 ms of runtime HRTICK is what enforces it.
    let lockdown = !config.log_only && sched_features::check_lockdown(&logger);
    let _hrtick =
        (!config.log_only && !lockdown && config.boost.runtime < Duration::from_millis(1))
            .then(|| sched_features::enable_hrtick(&logger));
    let daemonized = if config.foreground {
        None
    } else if notify::under_service_manager() {
        logger.log("started by systemd with Type=notify: staying in the foreground");
        None
    } else {
        Some(sys::daemonize().context("daemonizing")?)
    };
    // Executed, not forked, after daemonizing (so it is the daemon's child) and before -R (a
    // SCHED_DEADLINE task cannot start processes).
    let guardian = instance
        .as_ref()
        .map(|instance| guardian::Guardian::spawn(&instance.dir(), &config.sinks, &logger))
        .transpose()
        .context("starting the guardian process")?;
    // Threads only now: daemonizing forks, and so may nothing after this.
    start_listeners(&logger, &telemetry, metrics, status.as_mut())?;
    if let Some(percent) = config.reservation {
        reserve_cpu_time(&config, percent, &logger)?;
    }
    if let Some(pidfile) = &mut pidfile {
        pidfile.write_pid()?;
    }
    // The started process exits 0 now: the pid file is written, the daemon is set up.
    if let Some(ready) = daemonized {
        ready.done();
    }

    // A FIFO boost phase is looked at every few tens of µs until its task has run its
    // runtime; each look that comes late is CPU taken from the workload. The default slack
    // (50 µs for a SCHED_OTHER thread; the unit makes the daemon SCHED_FIFO, which has none)
    // would add that much to every look.
    if let Err(error) = sys::set_timer_slack(Duration::from_micros(1)) {
        logger.warn(&format!("cannot lower the timer slack: {error}"));
    }
    let mut booster = match &instance {
        Some(instance) => {
            Booster::with(config.boost, Box::new(Kernel), Box::new(instance.records()))
        }
        None => Booster::new(config.boost),
    };
    log_startup(&config, &booster, &logger);
    let mut monitor = Monitor {
        config: &config,
        logger: &logger,
        telemetry: &telemetry,
        guardian,
        detector: Detector::new(config.threshold).repeating_every(report_interval(&config)),
        // Adaptive and aggressive modes warn at half the threshold.
        early: (config.mode != Mode::Power).then(|| Detector::new(config.threshold / 2)),
        checks: check_cadence(&config, backend.knows_queue_times()),
        own_pid: std::process::id() as Pid,
        notifier: notify::Notifier::from_environment(),
    };
    logger.event(&Event::Started {
        backend: backend.name(),
        boosting: (!config.log_only).then_some(config.boost.policy),
    });
    monitor.run(backend.as_mut(), &mut booster, &mut shutdown);

    monitor.notifier.stopping();
    logger.event(&Event::Stopping);
    booster.restore_all(|boost, step| monitor.report(boost, step));
    drop(rt_throttle);
    telemetry.borrow_mut().publish_changes();
    if let Some(instance) = instance {
        instance.finish(&logger);
    }
    drop(status);
    Ok(())
}

/// `--stand_aside` with another stalld boosting here (the host's, beside a DaemonSet's pod):
/// this one boosts nothing and changes nothing (no RT throttling, ledger, guardian or status
/// socket: those in /run/stalld are the other's), says what it found (an event on every
/// sink; the metrics listener's `/ready` answers 503 with it, so a pod's readiness fails
/// instead of its container restarting in a loop) and waits to be stopped. It does not take
/// over when the other stops: restart it for that (a unit's restart would otherwise race it).
fn stand_aside(
    config: &Config,
    logger: Logger,
    mut pidfile: Option<pidfile::PidFile>,
    others: &[OtherInstance],
) -> Result<()> {
    let (logger, telemetry) = with_structured_sinks(logger, config)?;
    let mut shutdown = signals::Shutdown::install().context("installing signal handlers")?;
    let metrics = config
        .metrics
        .as_ref()
        .map(metrics::MetricsServer::bind)
        .transpose()?;
    let event = Event::StandingAside {
        others: instances::describe(others),
    };
    logger.event(&event);
    telemetry.borrow_mut().publish_changes();
    let daemonized = if config.foreground || notify::under_service_manager() {
        None
    } else {
        Some(sys::daemonize().context("daemonizing")?)
    };
    start_listeners(&logger, &telemetry, metrics, None)?;
    if let Some(pidfile) = &mut pidfile {
        pidfile.write_pid()?;
    }
    if let Some(ready) = daemonized {
        ready.done();
    }
    let mut notifier = notify::Notifier::from_environment();
    notifier.checked(|| event.text());
    while !shutdown.requested() {
        notifier.tick(clock::now());
        let wake = notifier
            .deadline()
            .unwrap_or_else(|| clock::now().after(Duration::from_secs(3600)));
        shutdown.sleep_until_or(wake, None);
    }
    notifier.stopping();
    logger.event(&Event::Stopping);
    Ok(())
}

/// Adds the `--events` file, and the telemetry behind metrics and `stalld status`: the
/// caller's, which the logger hands every event while the caller keeps it.
fn with_structured_sinks(
    logger: Logger,
    config: &Config,
) -> Result<(Logger, Rc<RefCell<telemetry::Telemetry>>)> {
    let logger = match &config.sinks.events {
        Some(target) => logger
            .with_events_file(target)
            .with_context(|| format!("--events: cannot open {target}"))?,
        None => logger,
    };
    let telemetry = Rc::new(RefCell::new(telemetry::Telemetry::new(
        config,
        logger.drops(),
    )));
    logger.subscribe(&telemetry);
    Ok((logger, telemetry))
}

/// The metrics and status listener threads: after daemonizing and after the guardian, and
/// before `-R` makes this thread SCHED_DEADLINE (which may not create threads).
/// They get what the telemetry publishes and the sinks, never the telemetry itself.
fn start_listeners(
    logger: &Logger,
    telemetry: &RefCell<telemetry::Telemetry>,
    metrics: Option<metrics::MetricsServer>,
    status: Option<&mut status::StatusServer>,
) -> Result<()> {
    let published = {
        let mut telemetry = telemetry.borrow_mut();
        telemetry.set_pid(std::process::id());
        telemetry.published()
    };
    if let Some(metrics) = metrics {
        let url = metrics.url();
        metrics
            .spawn(published.clone(), logger.sinks())
            .context("starting the metrics listener")?;
        logger.log(&format!("metrics: serving {url}"));
    }
    if let Some(status) = status {
        if let Err(error) = status.spawn(published, logger.sinks()) {
            logger.warn(&format!("cannot start the status listener: {error}"));
        }
    }
    Ok(())
}

/// `-P`: the pid file, locked (its pid is written after daemonizing). A relative path is
/// resolved now, before daemonizing moves to /, so it means what the operator meant.
fn lock_pidfile(config: &Config, logger: &Logger) -> Result<Option<pidfile::PidFile>> {
    let Some(path) = &config.pidfile else {
        return Ok(None);
    };
    pidfile::PidFile::lock(&std::path::absolute(path)?, logger).map(Some)
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
        // A DEADLINE task may not start a process or a thread without it (the guardian's
        // respawn, listener threads); children start as SCHED_OTHER.
        flags: sys::SCHED_FLAG_RESET_ON_FORK,
        runtime: runtime_ns,
        deadline: period_ns,
        period: period_ns,
        ..SchedAttr::new(sys::SCHED_DEADLINE)
    };
    if let Err(error) = sys::sched_setattr(0, &attr) {
        logger.warn(&format!("failed to set -R/--reservation: {error}"));
        bail!("error setting the reservation");
    }
    logger.log(&format!(
        "successfully set {percent}% SCHED_DEADLINE reservation runtime/period = {runtime_ns}/{period_ns}"
    ));
    Ok(())
}

/// The C stalld's configuration lines: the denylists, the mode, the boost policy.
fn log_startup(config: &Config, booster: &Booster, logger: &Logger) {
    for regex in config
        .ignore_threads
        .0
        .iter()
        .chain(&config.ignore_processes.0)
    {
        logger.log(&format!("task ignore string {}", regex.as_str()));
    }
    if config.mode == Mode::Power {
        logger.log("single threaded mode");
    }
    if config.log_only {
        return;
    }
    match config.boost.policy {
        crate::config::BoostPolicy::Fifo => logger.log("forcing SCHED_FIFO for boosting"),
        crate::config::BoostPolicy::Deadline => {
            logger.log(&format!("using {} for boosting", booster.policy_name()));
        }
    }
}

/// How often a task that keeps starving is reported again: every poll with `-l` in power mode
/// (the C stalld reports it each granularity with its growing wait, and scripts measure that),
/// otherwise once per threshold period (as upstream's per-CPU modes).
fn report_interval(config: &Config) -> Duration {
    if config.log_only && config.mode == Mode::Power {
        config.granularity
    } else {
        config.threshold
    }
}

/// When to look at the run queues (see `checks`): every granularity for a polling backend, and
/// before the first possible threshold crossing (the earlier detector's) with exact stamps.
fn check_cadence(config: &Config, exact: bool) -> checks::Checks {
    let cadence = if exact {
        let threshold = config.threshold / if config.mode == Mode::Power { 1 } else { 2 };
        checks::Cadence::exact(threshold)
    } else {
        checks::Cadence::polling(config.granularity)
    };
    checks::Checks::new(config.cpus.clone(), cadence, config.idle_detection)
}

struct Monitor<'a> {
    config: &'a Config,
    logger: &'a Logger,
    /// Owned by `run`, which the logger also hands every event.
    telemetry: &'a RefCell<telemetry::Telemetry>,
    guardian: Option<guardian::Guardian>,
    detector: Detector,
    early: Option<Detector>,
    checks: checks::Checks,
    own_pid: Pid,
    notifier: notify::Notifier,
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
            self.notifier.tick(clock::now());
            booster.advance(clock::now(), |boost, step| self.report(boost, step));
            if self.next_check_or_report(clock::now()) > clock::now() {
                // A wakeup for a boost alone (a FIFO phase is looked at every few tens of µs
                // until its task has run) does only that: no /proc/stat sample, no check.
                self.sleep_until(shutdown, self.next_wakeup(booster, clock::now()));
                continue;
            }
            let skip = match self.plan(clock::now()) {
                checks::Plan::Look { skip } => skip,
                checks::Plan::AllIdle => {
                    let check_started = clock::now();
                    checks::print_all_idle(self.logger);
                    // Nothing has waited through the check: known waits are over.
                    run_queues.clear();
                    self.observe_quietly(clock::now(), &run_queues);
                    self.checked(clock::now().saturating_since(check_started));
                    self.sleep_until(shutdown, self.next_wakeup(booster, clock::now()));
                    continue;
                }
                checks::Plan::Wait => {
                    self.sleep_until(shutdown, self.next_wakeup(booster, clock::now()));
                    continue;
                }
            };
            let check_started = clock::now();
            if let Err(error) = backend.snapshot(&mut run_queues) {
                failures += 1;
                let delay = retry_delay(failures);
                self.logger.warn(&format!(
                    "Dazed and confused, but trying to continue: {error:#} (retrying in {} ms)",
                    delay.as_millis()
                ));
                let retry = clock::now().after(delay);
                let retry = booster.next_event().map_or(retry, |event| event.min(retry));
                self.sleep_until(shutdown, self.watchdog_bound(retry));
                continue;
            }
            failures = 0;
            let now = clock::now();
            self.checks.looked(now, &skip);
            run_queues.retain(|run_queue| !skip.contains(&run_queue.cpu));
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
            if self.config.log_only && self.config.mode == Mode::Power {
                // As the C stalld reports: per CPU and check, the task that has waited
                // longest, so successive reports show its wait growing.
                crate::detect::keep_longest_per_cpu(&mut starving);
            }
            checks::print_look(
                self.logger,
                self.config.mode != Mode::Power,
                self.checks.idle_detection(),
                &run_queues,
                &skip,
                |pid| self.detector.waited(pid, now),
            );
            for starving in &starving {
                let run_queue = run_queues.iter().find(|rq| rq.cpu == starving.cpu);
                self.handle(starving, run_queue, booster, now);
            }
            self.checked(clock::now().saturating_since(check_started));
            self.sleep_until(shutdown, self.next_wakeup(booster, clock::now()));
        }
    }

    /// One check ran: measured, and systemd told (READY=1 the first time).
    fn checked(&mut self, took: Duration) {
        let mut telemetry = self.telemetry.borrow_mut();
        telemetry.checked(took);
        self.notifier.checked(|| telemetry.current().summary());
    }

    /// `deadline`, or earlier if the watchdog must be pinged before.
    fn watchdog_bound(&self, deadline: MonoTime) -> MonoTime {
        self.notifier
            .deadline()
            .map_or(deadline, |ping| ping.min(deadline))
    }

    /// Sleeps until `deadline` or a shutdown signal; a guardian that dies meanwhile is
    /// respawned at once.
    fn sleep_until(&mut self, shutdown: &mut signals::Shutdown, deadline: MonoTime) {
        // What this wakeup counted becomes visible to metrics and `stalld status` now.
        self.telemetry.borrow_mut().publish_changes();
        let watched = self.guardian.as_ref().and_then(guardian::Guardian::watched);
        if shutdown.sleep_until_or(deadline, watched) {
            if let Some(guardian) = &mut self.guardian {
                guardian.tend(true, self.logger);
            }
        }
    }

    /// Something happened to a boost: say it.
    fn report(&mut self, boost: &ActiveBoost, step: Step) {
        self.logger.event(&step_event(boost, step));
    }

    /// Samples idle time and decides what this wakeup does. A known wait due for a report
    /// wants a fresh snapshot whatever idle detection says. (Boosts need none: they are
    /// verified from the kernel's accounting of the boosted task.)
    fn plan(&mut self, now: MonoTime) -> checks::Plan {
        if let Err(error) = self.checks.sample(now) {
            self.logger
                .warn(&format!("fail reading sched stat file: {error}"));
            self.logger.warn("disabling idle detection");
        }
        let forced = [
            self.detector.next_report(),
            self.early.as_ref().and_then(Detector::next_report),
        ]
        .into_iter()
        .flatten()
        .any(|at| at <= now);
        self.checks.plan(now, forced)
    }

    /// Feeds a snapshot to the detectors without acting on it (nothing in it can be due).
    fn observe_quietly(&mut self, now: MonoTime, run_queues: &[crate::task::RunQueue]) {
        let mut none = Vec::new();
        self.detector.observe(now, run_queues, &mut none);
        if let Some(early) = &mut self.early {
            early.observe(now, run_queues, &mut none);
        }
    }

    /// `run_queue` is the CPU's, in which the culprit is found.
    fn handle(
        &mut self,
        starving: &Starving,
        run_queue: Option<&RunQueue>,
        booster: &mut Booster,
        now: MonoTime,
    ) {
        let task = &starving.task;
        if task.pid == self.own_pid || task.pid == 0 || booster.is_boosted(task.pid) {
            return;
        }
        let cpu = starving.cpu;
        self.logger.event(&Event::Starved {
            cpu,
            task: task_name(task),
            waited: starving.waited,
            culprit: run_queue.and_then(|rq| culprit::on(rq, task.pid)),
        });
        if self.config.log_only {
            return;
        }
        // Read once: before the boost only if `-I` needs it, else after (the boost first).
        let process = (!self.config.ignore_processes.is_empty())
            .then(|| process_name(task.pid, task.tgid))
            .flatten();
        if self.denied(task, process) {
            return;
        }
        if let Some(guardian) = &mut self.guardian {
            guardian.prepare(self.logger);
        }
        let policy = self.config.boost.policy;
        let outcome = match booster.boost(task.pid, cpu, now) {
            Ok(boost) => Event::Boosted {
                cpu,
                task: task_name(task),
                process: process.or_else(|| process_name(task.pid, task.tgid)),
                policy: boost.policy,
            },
            Err(BoostError::AlreadyDeadline) => Event::AlreadyDeadline {
                cpu,
                task: task_name(task),
            },
            Err(error) => Event::BoostFailed {
                cpu,
                task: task_name(task),
                policy,
                error: error.to_string(),
            },
        };
        self.logger.event(&outcome);
    }

    /// `-i` matches the thread's name, `-I` its `process` name.
    fn denied(&self, task: &WaitingTask, process: Option<Comm>) -> bool {
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
        match process {
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

    /// The next moment worth waking for: the next check or report, or a boost's next event.
    fn next_wakeup(&self, booster: &Booster, now: MonoTime) -> MonoTime {
        booster
            .next_event()
            .map_or(self.next_check_or_report(now), |boost| {
                boost.min(self.next_check_or_report(now))
            })
    }

    /// The next moment the loop has more to do than boosts: the next check (see `checks`), a
    /// known wait's next report, the watchdog.
    fn next_check_or_report(&self, now: MonoTime) -> MonoTime {
        [
            Some(self.checks.next_wakeup(now)),
            self.detector.next_report(),
            self.early.as_ref().and_then(Detector::next_report),
            self.notifier.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now)
    }
}

/// The event that says `step` of `boost`: how a boost ended is told by what it gave the task.
fn step_event(boost: &ActiveBoost, step: Step) -> Event {
    let (cpu, tid) = (boost.cpu, boost.pid);
    let cpu_time = boost.received();
    match step {
        Step::FifoFallback => Event::FifoFallback { cpu, tid },
        Step::Escalated { hold } => Event::FifoPhaseExtended { cpu, tid, hold },
        Step::Restore(Restore::Restored | Restore::Undone { .. }) if boost.gave_nothing() => {
            Event::BoostWithoutCpu {
                cpu,
                tid,
                policy: boost.saved.policy,
            }
        }
        Step::Restore(Restore::Restored) => Event::Restored {
            cpu,
            tid,
            policy: boost.saved.policy,
            cpu_time,
            undone: None,
        },
        Step::Restore(Restore::Undone { policy }) => Event::Restored {
            cpu,
            tid,
            policy: boost.saved.policy,
            cpu_time,
            undone: Some(policy),
        },
        Step::Restore(Restore::Exited) => Event::ExitedWhileBoosted { cpu, tid, cpu_time },
        Step::Restore(Restore::ChangedMeanwhile { policy }) => Event::ChangedMeanwhile {
            cpu,
            tid,
            policy,
            cpu_time,
        },
        Step::Restore(Restore::Retry {
            attempt,
            delay,
            error,
        }) => Event::RestoreRetry {
            cpu,
            tid,
            attempt,
            attempts: RESTORE_ATTEMPTS,
            delay,
            error: error.to_string(),
        },
        Step::Restore(Restore::Held { delay, error }) => Event::RestoreFailed {
            cpu,
            tid,
            error: error.to_string(),
            retry: Some(delay),
            cpu_time: None,
        },
        Step::Restore(Restore::Failed(error)) => Event::RestoreFailed {
            cpu,
            tid,
            error: error.to_string(),
            retry: None,
            cpu_time,
        },
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
        let status = procfs::read_thread_status(pid)?;
        Pid::try_from(procfs::status_number(&status, "Tgid:")?).ok()
    })?;
    procfs::read_comm(tgid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boost::fake::{world, FakeLedger, FakeSched};
    use std::cell::Cell;
    use std::io::Write;
    use std::rc::Rc;

    /// One snapshot with a task that has waited long enough, then nothing but failures.
    struct FailingAfterFirst {
        calls: Rc<Cell<u32>>,
    }

    impl Backend for FailingAfterFirst {
        fn name(&self) -> &'static str {
            "fake"
        }

        fn knows_queue_times(&self) -> bool {
            true
        }

        fn snapshot(&mut self, out: &mut Vec<RunQueue>) -> anyhow::Result<()> {
            self.calls.set(self.calls.get() + 1);
            if self.calls.get() > 1 {
                anyhow::bail!("injected backend failure");
            }
            out.clear();
            out.push(RunQueue {
                cpu: 1,
                current: Some(1),
                nr_rt_running: 1,
                waiting: vec![WaitingTask {
                    pid: 87,
                    tgid: Some(87),
                    comm: Comm::new(b"victim"),
                    prio: 94,
                    switches: 7,
                    queued_at: Some(MonoTime(clock::now().0 - 5_000_000_000)),
                }],
            });
            Ok(())
        }
    }

    /// The backend fails while a DEADLINE boost waits for its 100 ms verification: the loop
    /// must sleep (backing off), not spin on the verification deadline it cannot meet, and the
    /// boost must still end on time.
    #[test]
    fn a_failing_backend_during_verification_neither_spins_nor_keeps_the_boost() {
        let Ok(crate::cli::Command::Run(config)) =
            crate::cli::parse(["-f", "-N", "-t", "1", "-d", "1", "-c", "1"])
        else {
            panic!("test options rejected");
        };
        let logger = Logger::new(false);
        let world = world();
        let fifo5 = SchedAttr {
            rt_priority: 5,
            ..SchedAttr::new(sys::SCHED_FIFO)
        };
        world.borrow_mut().spawn(87, 1, fifo5);
        let mut booster = Booster::with(
            config.boost,
            Box::new(FakeSched(world.clone())),
            Box::new(FakeLedger(world.clone())),
        );
        let calls = Rc::new(Cell::new(0));
        let mut backend = FailingAfterFirst {
            calls: calls.clone(),
        };
        let (mut shutdown, mut notify) = signals::Shutdown::manual().unwrap();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1_500));
            let _ = notify.write_all(b"x");
        });
        let telemetry = RefCell::new(telemetry::Telemetry::new(&config, Default::default()));
        let mut monitor = Monitor {
            config: &config,
            logger: &logger,
            telemetry: &telemetry,
            guardian: None,
            detector: Detector::new(config.threshold),
            early: None,
            checks: check_cadence(&config, true),
            own_pid: std::process::id() as Pid,
            notifier: notify::Notifier::from_environment(),
        };
        let started = std::time::Instant::now();
        monitor.run(&mut backend, &mut booster, &mut shutdown);
        stopper.join().unwrap();
        assert!(started.elapsed() >= Duration::from_millis(1_400));
        let world = world.borrow();
        let sets = world.sets();
        assert_eq!(
            sets.first().map(|(_, a)| a.policy),
            Some(sys::SCHED_DEADLINE)
        );
        assert_eq!(
            world.attr(87),
            fifo5,
            "the boost ended after -d 1 s: {sets:?}"
        );
        // One good snapshot, then retries at 0.1, 0.3, 0.7, 1.0 s (the boost's end).
        assert!(
            calls.get() <= 8,
            "{} snapshots in 1.5 s: the loop spins",
            calls.get()
        );
    }

    /// The events a boost's steps become, driven through a booster on a fake kernel.
    #[test]
    fn how_a_boost_ended_is_told_by_what_it_gave_the_task() {
        let Ok(crate::cli::Command::Run(config)) =
            crate::cli::parse(["-f", "-t", "1", "-d", "1", "-c", "1"])
        else {
            panic!("test options rejected");
        };
        let fifo5 = SchedAttr {
            rt_priority: 5,
            ..SchedAttr::new(sys::SCHED_FIFO)
        };
        let ended = |runs: bool| {
            let world = world();
            world.borrow_mut().spawn(87, 1, fifo5);
            world.borrow_mut().measure(87, 1_000, 3);
            let mut booster = Booster::with(
                config.boost,
                Box::new(FakeSched(world.clone())),
                Box::new(FakeLedger(world.clone())),
            );
            let start = MonoTime(1_000_000_000_000);
            booster.boost(87, 1, start).unwrap();
            if runs {
                world.borrow_mut().switch_in(87);
                world.borrow_mut().run_for(87, 30_000);
            }
            let mut events = Vec::new();
            let mut now = start;
            while let Some(next) = booster.next_event() {
                now = next.max(now);
                booster.advance(now, |boost, step| events.push(step_event(boost, step)));
            }
            events
        };
        assert_eq!(
            ended(true),
            [Event::Restored {
                cpu: 1,
                tid: 87,
                policy: sys::SCHED_FIFO,
                cpu_time: Some(Duration::from_micros(30)),
                undone: None,
            }]
        );
        let nothing = ended(false);
        assert_eq!(nothing[0], Event::FifoFallback { cpu: 1, tid: 87 });
        assert!(matches!(
            nothing[1],
            Event::FifoPhaseExtended {
                cpu: 1,
                tid: 87,
                ..
            }
        ));
        assert_eq!(
            nothing.last(),
            Some(&Event::BoostWithoutCpu {
                cpu: 1,
                tid: 87,
                policy: sys::SCHED_FIFO
            })
        );
    }

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
