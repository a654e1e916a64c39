//! The HRTICK_DL scheduler feature: boost runtimes below 1 ms are only enforced precisely with
//! high-resolution ticks. stalld turns it on when it can and turns it back off at exit. When it
//! cannot (lockdown, no debugfs, a read-only features file) it says so and carries on: a
//! boosted task may then overrun its tiny runtime up to a tick, which beats not boosting.

use std::fs;
use std::path::{Path, PathBuf};

use crate::daemon::log::Logger;
use crate::mounts;

/// Turns the feature back off on drop if this process turned it on.
pub struct HrtickGuard {
    enabled: Option<(PathBuf, &'static str)>,
    logger: Logger,
}

/// Says whether the kernel has the fair deadline server (6.12+), which gives fair tasks some CPU
/// time even under RT hogs. Informational; looks only where debugfs is already mounted.
pub fn report_dl_server(logger: &Logger) {
    let Some(path) = mounts::find("debugfs").map(|mount| mount.join("sched/fair_server")) else {
        return;
    };
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => logger.log("DL-server detected."),
        Ok(_) => logger.log("DL-server not detected: Not a directory"),
        Err(error) => logger.log(&format!("DL-server not detected: {}", strerror(&error))),
    }
}

/// The C library's text for an error, without Rust's ` (os error N)`.
fn strerror(error: &std::io::Error) -> String {
    let text = error.to_string();
    match text.rfind(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Reports the kernel lockdown mode (mounting securityfs to read it if needed); true when on.
pub fn check_lockdown(logger: &Logger) -> bool {
    let lockdown = mounts::find_or_mount("securityfs", Path::new(mounts::SECURITYFS))
        .and_then(|mount| mounts::read_lockdown(&mount));
    match lockdown {
        None => {
            logger.log("failed to open/read lockdown file: assuming lockdown is OFF");
            false
        }
        Some(text) if mounts::lockdown_mode(&text) == Some("none") => false,
        Some(_) => {
            logger.log("lockdown mode is on");
            logger.log("hrtick cannot be set in lockdown mode: assuming that the user already set HRTICK_DL");
            true
        }
    }
}

/// Enables HRTICK_DL (or HRTICK on kernels without it). Never fails: problems are warnings.
/// Only looks where debugfs is already mounted: this must not be what opens debugfs.
pub fn enable_hrtick(logger: &Logger) -> HrtickGuard {
    let mut guard = HrtickGuard {
        enabled: None,
        logger: logger.clone(),
    };
    let Some(path) = mounts::find("debugfs")
        .map(|mount| mount.join("sched/features"))
        .filter(|p| p.exists())
    else {
        logger.warn("did not find sched features (debugfs not mounted): HRTICK not set, boosted tasks may overrun their runtime by up to a tick");
        return guard;
    };
    let features = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) => {
            logger.warn(&format!(
                "could not read {} to set HRTICK: {error}; carrying on without it",
                path.display()
            ));
            return guard;
        }
    };
    let (feature, on) = hrtick_state(&features);
    if on {
        return guard;
    }
    match fs::write(&path, feature) {
        Ok(()) => {
            logger.log(&format!("dl_runtime is shorter than 1ms, setting {feature}"));
            guard.enabled = Some((path, feature));
        }
        Err(error) => logger.warn(&format!(
            "could not set {feature} in {}: {error}; carrying on: boosted tasks may overrun their runtime by up to a tick",
            path.display()
        )),
    }
    guard
}

/// The feature that enforces short DEADLINE runtimes (HRTICK_DL, or HRTICK on kernels
/// without it) and whether it is on, from the text of sched/features.
pub fn hrtick_state(features: &str) -> (&'static str, bool) {
    let words: Vec<&str> = features.split_ascii_whitespace().collect();
    let feature = if words.iter().any(|w| w.ends_with("HRTICK_DL")) {
        "HRTICK_DL"
    } else {
        "HRTICK"
    };
    (feature, !words.contains(&format!("NO_{feature}").as_str()))
}

impl Drop for HrtickGuard {
    fn drop(&mut self) {
        if let Some((path, feature)) = self.enabled.take() {
            if let Err(error) = fs::write(&path, format!("NO_{feature}")) {
                self.logger
                    .warn(&format!("could not turn {feature} back off: {error}"));
            }
        }
    }
}
