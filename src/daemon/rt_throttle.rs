//! RT throttling (`/proc/sys/kernel/sched_rt_runtime_us`): turned off while stalld runs, because
//! with it on the kernel refuses SCHED_DEADLINE to tasks pinned to fewer CPUs than their root
//! domain (per-CPU kthreads, the usual victims). The old value comes back when the guard drops.

use std::fs;

use anyhow::{bail, Context, Result};

use super::log::Logger;
use crate::event::Event;
use crate::rt_runtime::{self, write as write_runtime, PATH as RT_RUNTIME};

/// Where `throttle off` keeps the value that `throttle on` puts back.
const SAVED_RUNTIME: &str = "/run/stalld/sched_rt_runtime_us";
/// The kernel's default, used by `throttle on` when nothing was saved.
const DEFAULT_RUNTIME: i64 = 950_000;

/// Restores the saved runtime on drop, if this process changed it.
pub struct RtThrottleGuard {
    saved: Option<i64>,
    logger: Logger,
}

fn read_runtime() -> Result<i64> {
    rt_runtime::read().with_context(|| format!("unable to read {RT_RUNTIME}"))
}

/// `-S`: systemd's unit turns throttling off before starting stalld; refuse to run otherwise.
pub fn require_disabled() -> Result<()> {
    if read_runtime()? != -1 {
        bail!("RT throttling is on! stalld cannot run...");
    }
    Ok(())
}

/// The runtime this process replaced, if it changed it.
impl RtThrottleGuard {
    pub fn saved(&self) -> Option<i64> {
        self.saved
    }
}

pub fn disable(logger: &Logger) -> Result<RtThrottleGuard> {
    let runtime = read_runtime()?;
    let mut guard = RtThrottleGuard {
        saved: None,
        logger: logger.clone(),
    };
    if runtime == -1 {
        logger.event(&Event::RtThrottlingDisabled { saved: None });
        return Ok(guard);
    }
    write_runtime(-1).with_context(|| format!("unable to write {RT_RUNTIME}"))?;
    guard.saved = Some(runtime);
    logger.event(&Event::RtThrottlingDisabled {
        saved: Some(runtime),
    });
    if read_runtime()? != -1 {
        bail!("turning off RT throttling failed, stalld cannot run");
    }
    Ok(guard)
}

impl Drop for RtThrottleGuard {
    fn drop(&mut self) {
        if let Some(runtime) = self.saved.take() {
            self.logger.event(&match write_runtime(runtime) {
                Ok(()) => Event::RtThrottlingRestored { runtime },
                Err(error) => Event::RtThrottlingRestoreFailed {
                    runtime,
                    error: error.to_string(),
                },
            });
        }
    }
}

/// `stalld throttle off|on|show` (also run as `throttlectl`): what systemd's unit runs around
/// the daemon. `off` saves the current value once; `on` puts the saved value back (the C
/// tool's `on` always wrote the kernel default).
pub fn throttlectl(command: &str) -> Result<String> {
    let current = read_runtime()?;
    let saved = || -> Option<i64> { fs::read_to_string(SAVED_RUNTIME).ok()?.trim().parse().ok() };
    match command {
        "off" => {
            if current != -1 {
                fs::create_dir_all("/run/stalld").context("creating /run/stalld")?;
                fs::write(SAVED_RUNTIME, current.to_string())
                    .with_context(|| format!("writing {SAVED_RUNTIME}"))?;
                write_runtime(-1).with_context(|| format!("unable to write {RT_RUNTIME}"))?;
            }
            Ok(format!(
                "RT throttling off (saved runtime {})",
                saved().map_or("none".into(), |v| v.to_string())
            ))
        }
        "on" => {
            let (value, source) = match saved() {
                Some(value) => (value, "saved"),
                None => (DEFAULT_RUNTIME, "kernel default, nothing was saved"),
            };
            write_runtime(value).with_context(|| format!("unable to write {RT_RUNTIME}"))?;
            let _ = fs::remove_file(SAVED_RUNTIME);
            Ok(format!(
                "RT throttling on: sched_rt_runtime_us={value} ({source})"
            ))
        }
        "show" => Ok(format!(
            "sched_rt_runtime_us={current} ({}) saved={}",
            if current == -1 {
                "throttling off"
            } else {
                "throttling on"
            },
            saved().map_or("none".into(), |v| v.to_string())
        )),
        other => bail!("unknown throttle command '{other}': use off, on or show"),
    }
}
