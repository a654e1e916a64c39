//! The daemon's life: the machine set up in the order the steps depend on each other (each
//! step says why it stands where it does), the loop run, and everything put back on the way
//! out (boosted tasks, RT throttling, HRTICK, the pid file).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::log::Logger;
use super::monitor::Monitor;
use super::observe::{metrics, notify, status, telemetry};
use super::process::instances::OtherInstance;
use super::process::{instances, pidfile, signals};
use super::restore::{self, guardian, ledger, sched_features};
use crate::backend;
use crate::boost::{Booster, Kernel};
use crate::clock;
use crate::config::{BoostMode, Config, Mode};
use crate::event::Event;
use crate::sys::{self, SchedAttr};

pub fn run(config: Config) -> Result<()> {
    let logger = Logger::open(&config.sinks);
    if !sys::is_root() {
        bail!("stalld needs root permission");
    }
    // Locked before anything is changed and before daemonizing, so a second instance exits
    // non-zero on the terminal it was started from; the lock passes to the final daemon.
    let mut pidfile = lock_pidfile(&config, &logger)?;
    // Before anything is changed: a second boosting stalld would fight the first over RT
    // throttling and the boosts (a log-only one is in nobody's way).
    if config.boost_mode == BoostMode::Boost && !config.process.allow_other_instances {
        let others = instances::boosting_instances(&[]);
        if !others.is_empty() {
            if config.process.stand_aside {
                return stand_aside(&config, logger, pidfile, &others);
            }
            return Err(instances::refusal(&others).into());
        }
    }
    let (logger, telemetry) = with_structured_sinks(logger, &config)?;
    if let Some(affinity) = &config.process.affinity {
        for cpu in affinity.iter() {
            logger.log(&format!("self-affinity: adding cpu {cpu}"));
        }
        sys::set_affinity(0, affinity)
            .with_context(|| format!("invalid CPU affinity: {affinity}"))?;
    }
    // `-l` decides here, once, what this daemon changes on the machine; every later step
    // asks `changes`. A boosting daemon opens the ledger first, before anything else is
    // changed: what a dead stalld left is undone, and from here on every change (RT
    // throttling, each boost) is written down before it is made. A log-only one changes
    // nothing (no ledger, RT throttling, HRTICK or guardian) and only says what was left.
    let mut changes = match config.boost_mode {
        BoostMode::Boost => Some(restore::Changes::begin(&config, &logger)?),
        BoostMode::LogOnly => {
            ledger::report_leftovers(&logger);
            None
        }
    };
    // Before anything slow, so that an early SIGTERM still means an orderly shutdown.
    let mut shutdown = signals::Shutdown::install().context("installing signal handlers")?;
    // Bound now, served once daemonized: a bad or busy address is an error on the terminal.
    let metrics = bind_metrics(&config)?;
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
    if !config.detection.idle_detection {
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

    // RT throttling and HRTICK only once the backend is open: a daemon that cannot watch the
    // run queues (`-b queue_track` where BPF does not load, say) exits before it changes
    // them. HRTICK after the lockdown check, which says whether sched/features can be
    // written at all.
    if let Some(changes) = &mut changes {
        changes.tune(&config, &logger)?;
    }
    let daemonized = if config.process.foreground {
        None
    } else if notify::under_service_manager() {
        logger.log("started by systemd with Type=notify: staying in the foreground");
        None
    } else {
        Some(sys::daemonize().context("daemonizing")?)
    };
    // Executed, not forked, after daemonizing (so it is the daemon's child) and before -R (a
    // SCHED_DEADLINE task cannot start processes).
    let guardian = changes
        .as_ref()
        .map(|changes| guardian::Guardian::spawn(&changes.instance().dir(), &config.sinks, &logger))
        .transpose()
        .context("starting the guardian process")?;
    // Threads only now: daemonizing forks, and so may nothing after this.
    start_listeners(&logger, &telemetry, metrics, status.as_mut())?;
    if let Some(percent) = config.process.reservation {
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
    // A boosting daemon's boosts are written in its ledger; a log-only one's booster is
    // never asked to boost (the eligibility rule skips every task).
    let mut booster = match &changes {
        Some(changes) => Booster::with(
            config.boost,
            Box::new(Kernel),
            Box::new(changes.instance().records()),
        ),
        None => Booster::new(config.boost),
    };
    log_startup(&config, &booster, &logger);
    let mut monitor = Monitor::new(
        &config,
        &logger,
        &telemetry,
        &clock::Monotonic,
        guardian,
        backend.knows_queue_times(),
    );
    logger.event(&Event::Started {
        backend: backend.name(),
        boosting: config.boosting().map(|boost| boost.policy),
    });
    monitor.run(backend.as_mut(), &mut booster, &mut shutdown);

    monitor.stopping();
    logger.event(&Event::Stopping);
    booster.restore_all(|boost, step| monitor.report(boost, step));
    if let Some(changes) = changes {
        changes.finish(&logger);
    }
    telemetry.borrow_mut().publish_changes();
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
    let metrics = bind_metrics(config)?;
    let event = Event::StandingAside {
        others: instances::describe(others),
    };
    logger.event(&event);
    telemetry.borrow_mut().publish_changes();
    let daemonized = if config.process.foreground || notify::under_service_manager() {
        None
    } else {
        Some(sys::daemonize().context("daemonizing")?)
    };
    // The pid file names this process before /ready can answer: whoever sees the answer
    // finds the pid file written.
    if let Some(pidfile) = &mut pidfile {
        pidfile.write_pid()?;
    }
    start_listeners(&logger, &telemetry, metrics, None)?;
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

/// `--metrics`, bound (not yet served): a bad or busy address is an error on the terminal.
fn bind_metrics(config: &Config) -> Result<Option<metrics::MetricsServer>> {
    config
        .metrics
        .as_ref()
        .map(metrics::MetricsServer::bind)
        .transpose()
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
    let Some(path) = &config.process.pidfile else {
        return Ok(None);
    };
    pidfile::PidFile::lock(&std::path::absolute(path)?, |warning| logger.warn(warning)).map(Some)
}

/// `-R`: stalld's own thread becomes SCHED_DEADLINE with `percent` of a period of the
/// granularity (1 s when the granularity is above 4 s), so it gets CPU time even when RT tasks
/// hog every CPU, but never more than its share.
fn reserve_cpu_time(config: &Config, percent: u32, logger: &Logger) -> Result<()> {
    let period = if config.detection.granularity <= Duration::from_secs(4) {
        config.detection.granularity
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
    if config.detection.mode == Mode::Power {
        logger.log("single threaded mode");
    }
    let Some(boost) = config.boosting() else {
        return;
    };
    match boost.policy {
        crate::config::BoostPolicy::Fifo => logger.log("forcing SCHED_FIFO for boosting"),
        crate::config::BoostPolicy::Deadline => {
            logger.log(&format!("using {} for boosting", booster.policy_name()));
        }
    }
}
