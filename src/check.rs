//! `stalld check [--json] [options]`: a one-shot verdict on the machine, for operators before
//! they deploy. One line per item with ok/warn/fail (or unknown: it could not be read here,
//! e.g. without root or under lockdown); exit status 0 (all ok), 1 (a warning), 2 (a failure).
//! The options are the daemon's (`stalld check $CLIST $THRESH`), so the verdict is about the
//! configuration that will run.
//!
//! It leaves nothing behind: debugfs and securityfs, when they are not mounted, are mounted in
//! a private mount namespace of this process only, which vanishes when it exits. Without
//! them (no root, no kernel support) the items they feed say "unknown".

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::backend;
use crate::config::{BackendChoice, BoostMode, Config};
use crate::cpuset::{configured_cpus, CpuSet};
use crate::mounts;
use crate::rt_runtime;
use crate::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Unknown,
    Warn,
    Fail,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Unknown => "unknown",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub items: Vec<Item>,
}

impl Report {
    fn add(&mut self, name: &'static str, verdict: Verdict, detail: impl Into<String>) {
        self.items.push(Item {
            name,
            verdict,
            detail: detail.into(),
        });
    }

    /// The worst verdict; unknown counts as ok (it is not a finding).
    pub fn verdict(&self) -> Verdict {
        match self.items.iter().map(|item| item.verdict).max() {
            Some(Verdict::Fail) => Verdict::Fail,
            Some(Verdict::Warn) => Verdict::Warn,
            _ => Verdict::Ok,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self.verdict() {
            Verdict::Fail => 2,
            Verdict::Warn => 1,
            _ => 0,
        }
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            out += &format!(
                "{:<8}{:<16}{}\n",
                item.verdict.name(),
                item.name,
                item.detail
            );
        }
        out += &format!("verdict: {}", self.verdict().name());
        out
    }

    pub fn json(&self) -> String {
        let items: Vec<_> = self
            .items
            .iter()
            .map(|item| json!({"item": item.name, "verdict": item.verdict.name(), "detail": item.detail}))
            .collect();
        serde_json::to_string_pretty(&json!({"verdict": self.verdict().name(), "items": items}))
            .unwrap_or_default()
    }
}

const BTF: &str = "/sys/kernel/btf/vmlinux";

pub fn run(config: &Config) -> Report {
    let mut report = Report::default();
    let root = sys::is_root();
    let host_debugfs = mounts::find("debugfs");
    // From here on, mounts are this process's own.
    let private = root && sys::private_mount_namespace().is_ok();
    let mount = |fstype: &str, default: &str| match private {
        true => mounts::find_or_mount(fstype, Path::new(default)),
        false => mounts::find(fstype),
    };
    let debugfs = mount("debugfs", mounts::DEBUGFS);
    let securityfs = mount("securityfs", mounts::SECURITYFS);

    let queue_track = check_queue_track(&mut report, config, root);
    check_debugfs(
        &mut report,
        host_debugfs.as_deref(),
        debugfs.as_deref(),
        queue_track,
        root,
    );
    let lockdown = check_lockdown(&mut report, securityfs.as_deref());
    check_fair_server(&mut report, config, debugfs.as_deref(), lockdown);
    check_rt_throttling(&mut report);
    check_rt_group_sched(&mut report);
    check_rcu_stall(&mut report, config, queue_track);
    check_hrtick(&mut report, config, debugfs.as_deref(), lockdown);
    check_isolated(&mut report, config);
    check_other_instances(&mut report, config);
    report
}

/// Another stalld that boosts here: a daemon with these options would refuse to start (two
/// would fight over RT throttling and the boosts).
fn check_other_instances(report: &mut Report, config: &Config) {
    let others = crate::daemon::boosting_instances(&[]);
    if others.is_empty() {
        report.add(
            "other_instances",
            Verdict::Ok,
            "no other stalld boosts on this host",
        );
        return;
    }
    let list: Vec<String> = others.iter().map(ToString::to_string).collect();
    let list = list.join("; ");
    if config.boost_mode == BoostMode::LogOnly {
        report.add(
            "other_instances",
            Verdict::Ok,
            format!("a stalld boosts here ({list}); with -l this one only logs beside it"),
        );
    } else if config.process.stand_aside {
        report.add("other_instances", Verdict::Warn, format!("a stalld boosts here ({list}); with --stand_aside this one would boost nothing and report itself not ready (GET /ready: 503) until stopped"));
    } else if config.process.allow_other_instances {
        report.add("other_instances", Verdict::Warn, format!("a stalld boosts here ({list}); --allow_other_instances starts this one too: give them disjoint CPUs (-c) and leave RT throttling to the unit (-S)"));
    } else {
        report.add("other_instances", Verdict::Fail, format!("a stalld boosts here already ({list}): another would refuse to start (exit {}); stop it, or pass --allow_other_instances", crate::daemon::EXIT_ANOTHER_INSTANCE));
    }
}

/// BTF and whether queue_track loads (and with which stamp source). Returns whether it would
/// be the backend.
fn check_queue_track(report: &mut Report, config: &Config, root: bool) -> bool {
    if !Path::new(BTF).exists() {
        report.add(
            "btf",
            Verdict::Warn,
            format!("no {BTF}: queue_track cannot load; stalld would use sched_debug"),
        );
        return false;
    }
    report.add("btf", Verdict::Ok, format!("{BTF} present"));
    if config.backend == BackendChoice::SchedDebug {
        report.add("queue_track", Verdict::Ok, "not used: -b sched_debug");
        return false;
    }
    if !root {
        report.add("queue_track", Verdict::Unknown, "loading BPF needs root");
        return false;
    }
    match backend::open(BackendChoice::QueueTrack, config.cpus.clone(), |_| {}) {
        Ok(backend) => {
            match backend.stamps_fallback() {
                None => report.add(
                    "queue_track",
                    Verdict::Ok,
                    format!("loads; stamp source: {}", backend.stamp_source()),
                ),
                // Still exact, but with programs on the scheduler's hot path.
                Some((failed, why)) => report.add(
                    "queue_track",
                    Verdict::Warn,
                    format!(
                        "loads; stamp source: {} ({failed} did not load: {why})",
                        backend.stamp_source()
                    ),
                ),
            }
            true
        }
        Err(error) => {
            let verdict = if config.backend == BackendChoice::QueueTrack {
                Verdict::Fail
            } else {
                Verdict::Warn
            };
            report.add(
                "queue_track",
                verdict,
                format!("{error:#}; stalld would use sched_debug"),
            );
            false
        }
    }
}

fn check_debugfs(
    report: &mut Report,
    host: Option<&Path>,
    readable: Option<&Path>,
    queue_track: bool,
    root: bool,
) {
    let state = match host {
        Some(path) => format!("mounted at {}", path.display()),
        None => "not mounted".to_owned(),
    };
    let sched_debug = readable
        .map(|mount| mount.join("sched/debug"))
        .filter(|path| std::fs::File::open(path).is_ok())
        .or_else(|| Some(PathBuf::from("/proc/sched_debug")).filter(|path| path.exists()));
    match (sched_debug, queue_track) {
        (Some(path), _) => report.add("debugfs", Verdict::Ok, format!("{state}; {} readable (the sched_debug fallback works)", path.display())),
        (None, true) => report.add("debugfs", Verdict::Ok, format!("{state}; sched/debug not readable here, and not needed: queue_track loads")),
        (None, false) if !root => report.add("debugfs", Verdict::Unknown, format!("{state}; sched/debug is root's")),
        (None, false) => report.add("debugfs", Verdict::Fail, format!("{state}; sched/debug not readable and queue_track does not load: stalld cannot monitor")),
    }
}

/// Returns whether lockdown is on.
fn check_lockdown(report: &mut Report, securityfs: Option<&Path>) -> bool {
    let Some(text) = securityfs.and_then(mounts::read_lockdown) else {
        report.add(
            "lockdown",
            Verdict::Unknown,
            "securityfs lockdown file not readable",
        );
        return false;
    };
    let mode = mounts::lockdown_mode(&text).unwrap_or("unknown");
    if mode == "none" {
        report.add("lockdown", Verdict::Ok, "none");
        false
    } else {
        report.add("lockdown", Verdict::Warn, format!("{mode}: sched features and fair_server cannot be changed (no HRTICK for short boost runtimes); queue_track is unaffected"));
        true
    }
}

fn check_fair_server(report: &mut Report, config: &Config, debugfs: Option<&Path>, lockdown: bool) {
    let Some(dir) = debugfs.map(|mount| mount.join("sched/fair_server")) else {
        report.add("fair_server", Verdict::Unknown, "debugfs not available");
        return;
    };
    match std::fs::metadata(&dir) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            report.add("fair_server", Verdict::Ok, "no fair deadline server (kernel before 6.12): fair tasks under an RT hog depend on stalld alone");
            return;
        }
        Err(error) => {
            report.add(
                "fair_server",
                Verdict::Unknown,
                format!("{}: {error}", dir.display()),
            );
            return;
        }
    }
    let mut runtimes = Vec::new();
    for cpu in config.cpus.iter() {
        let read = |file: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(format!("cpu{cpu}/{file}")))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        match (read("runtime"), read("period")) {
            (Some(runtime), Some(period)) => runtimes.push((cpu, runtime, period)),
            _ => {
                report.add(
                    "fair_server",
                    Verdict::Unknown,
                    format!("cpu{cpu}: runtime not readable{}", refused(lockdown)),
                );
                return;
            }
        }
    }
    let off: Vec<String> = runtimes
        .iter()
        .filter(|(_, r, _)| *r == 0)
        .map(|(c, _, _)| c.to_string())
        .collect();
    let detail = summarize(
        runtimes
            .iter()
            .map(|(cpu, runtime, period)| (*cpu, format!("{runtime}/{period} ns"))),
    );
    if off.is_empty() {
        report.add(
            "fair_server",
            Verdict::Ok,
            format!("runtime/period {detail}"),
        );
    } else {
        report.add("fair_server", Verdict::Warn, format!("disabled on CPUs {}: fair tasks there get no CPU under an RT hog but through stalld; runtime/period {detail}", off.join(",")));
    }
}

/// `value on cpus a,b; other on c` for per-CPU values.
fn summarize(values: impl Iterator<Item = (u32, String)>) -> String {
    let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
    for (cpu, value) in values {
        match groups.iter_mut().find(|(v, _)| *v == value) {
            Some((_, cpus)) => cpus.push(cpu),
            None => groups.push((value, vec![cpu])),
        }
    }
    groups
        .iter()
        .map(|(value, cpus)| {
            let cpus: Vec<String> = cpus.iter().map(u32::to_string).collect();
            format!("{value} on cpus {}", cpus.join(","))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn check_rt_throttling(report: &mut Report) {
    match rt_runtime::read() {
        Ok(-1) => report.add("rt_throttling", Verdict::Warn, "off (sched_rt_runtime_us = -1): without a running stalld an RT hog can hang a CPU; stalld turns it off only while it runs"),
        Ok(runtime) if rt_runtime::read_period().is_ok_and(|period| rt_runtime::is_unlimited(runtime, period)) => report.add("rt_throttling", Verdict::Ok, format!("no RT limit (sched_rt_runtime_us = {runtime} = sched_rt_period_us, as Linux 7.2 boots), but SCHED_DEADLINE admission control is on, which refuses boosts of per-CPU threads: stalld sets -1 while it runs (the unit: throttlectl)")),
        Ok(runtime) => report.add("rt_throttling", Verdict::Ok, format!("on (sched_rt_runtime_us = {runtime}); stalld turns it off while it runs (the unit: throttlectl)")),
        Err(error) => report.add("rt_throttling", Verdict::Unknown, format!("{}: {error}", rt_runtime::PATH)),
    }
}

fn check_rt_group_sched(report: &mut Report) {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let boot = cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("rt_group_sched="));
    let default_off =
        kernel_config("CONFIG_RT_GROUP_SCHED_DEFAULT_DISABLED").is_some_and(|v| v == "y");
    match kernel_config("CONFIG_RT_GROUP_SCHED") {
        Some(value) if value == "y" && (boot == Some("0") || (default_off && boot != Some("1"))) => report.add("rt_group_sched", Verdict::Ok, "CONFIG_RT_GROUP_SCHED=y but disabled at boot (rt_group_sched=0 or its default)"),
        Some(value) if value == "y" => report.add("rt_group_sched", Verdict::Warn, "CONFIG_RT_GROUP_SCHED=y: RT tasks in cgroups without cpu.rt_runtime_us cannot be made real-time (chrt fails), and group RT limits apply"),
        Some(_) => report.add("rt_group_sched", Verdict::Ok, "CONFIG_RT_GROUP_SCHED not set"),
        None => report.add("rt_group_sched", Verdict::Unknown, "no kernel config (/proc/config.gz, /boot/config-*)"),
    }
}

/// `name`'s value in the running kernel's configuration; `Some("")` when it is not set.
fn kernel_config(name: &str) -> Option<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let text = std::fs::read_to_string(format!("/boot/config-{}", release.trim()))
        .ok()
        .or_else(|| {
            let output = std::process::Command::new("zcat")
                .arg("/proc/config.gz")
                .output()
                .ok()?;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
        })?;
    Some(
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or("")
            .to_owned(),
    )
}

fn check_rcu_stall(report: &mut Report, config: &Config, queue_track: bool) {
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/module/rcupdate/parameters/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if read("rcu_cpu_stall_suppress").is_some_and(|s| s != 0) {
        report.add(
            "rcu_stall",
            Verdict::Ok,
            "RCU CPU stall warnings are suppressed",
        );
        return;
    }
    let Some(timeout) = read("rcu_cpu_stall_timeout") else {
        report.add(
            "rcu_stall",
            Verdict::Unknown,
            "rcu_cpu_stall_timeout not readable",
        );
        return;
    };
    // sched_debug sees a wait up to a poll late.
    let worst = config.detection.threshold
        + if queue_track {
            Duration::ZERO
        } else {
            config.detection.granularity
        };
    let detail = format!(
        "a starving task is boosted after at most {:.1} s; RCU reports a stall after {timeout} s",
        worst.as_secs_f64()
    );
    if worst < Duration::from_secs(timeout) {
        report.add("rcu_stall", Verdict::Ok, detail);
    } else if std::fs::read_to_string("/proc/sys/kernel/panic_on_rcu_stall")
        .is_ok_and(|v| v.trim() == "1")
    {
        report.add(
            "rcu_stall",
            Verdict::Fail,
            format!("{detail}, and panic_on_rcu_stall is set: lower -t"),
        );
    } else {
        report.add("rcu_stall", Verdict::Warn, format!("{detail}: lower -t"));
    }
}

fn check_hrtick(report: &mut Report, config: &Config, debugfs: Option<&Path>, lockdown: bool) {
    if config.boost.runtime >= Duration::from_millis(1) {
        report.add(
            "hrtick",
            Verdict::Ok,
            "not needed: boost runtime is at least 1 ms",
        );
        return;
    }
    let Some(features) =
        debugfs.and_then(|mount| std::fs::read_to_string(mount.join("sched/features")).ok())
    else {
        report.add(
            "hrtick",
            Verdict::Unknown,
            format!("sched/features not readable{}", refused(lockdown)),
        );
        return;
    };
    let (feature, on) = crate::daemon::hrtick_state(&features);
    match (on, lockdown) {
        (true, _) => report.add("hrtick", Verdict::Ok, format!("{feature} on")),
        (false, false) => report.add("hrtick", Verdict::Ok, format!("{feature} off; stalld turns it on while it runs (boost runtime below 1 ms)")),
        (false, true) => report.add("hrtick", Verdict::Warn, format!("{feature} off and lockdown forbids turning it on: boosts of {} us may overrun by up to a tick", config.boost.runtime.as_micros())),
    }
}

fn check_isolated(report: &mut Report, config: &Config) {
    let limit = configured_cpus();
    let read = |name: &str| -> Option<CpuSet> {
        let text = std::fs::read_to_string(format!("/sys/devices/system/cpu/{name}")).ok()?;
        let text = text.trim();
        if text.is_empty() || text == "(null)" {
            return Some(CpuSet::first_n(0));
        }
        CpuSet::parse_list(text, limit)
    };
    let mut special: Vec<u32> = Vec::new();
    for name in ["isolated", "nohz_full"] {
        if let Some(cpus) = read(name) {
            special.extend(cpus.iter());
        }
    }
    special.sort_unstable();
    special.dedup();
    let missed: Vec<String> = special
        .iter()
        .filter(|cpu| !config.cpus.contains(**cpu))
        .map(u32::to_string)
        .collect();
    if special.is_empty() {
        report.add(
            "isolated_cpus",
            Verdict::Ok,
            "no isolated or nohz_full CPUs",
        );
    } else if missed.is_empty() {
        report.add(
            "isolated_cpus",
            Verdict::Ok,
            format!(
                "isolated/nohz_full CPUs {} are all monitored",
                join(&special)
            ),
        );
    } else {
        report.add(
            "isolated_cpus",
            Verdict::Warn,
            format!(
                "isolated/nohz_full CPUs {} are not monitored (-c {})",
                missed.join(","),
                config.cpus
            ),
        );
    }
}

fn refused(lockdown: bool) -> &'static str {
    if lockdown {
        " (lockdown refuses it)"
    } else {
        ""
    }
}

fn join(cpus: &[u32]) -> String {
    cpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_verdict_decides_and_unknown_is_not_a_finding() {
        let mut report = Report::default();
        report.add("a", Verdict::Ok, "fine");
        report.add("b", Verdict::Unknown, "?");
        assert_eq!((report.verdict(), report.exit_code()), (Verdict::Ok, 0));
        report.add("c", Verdict::Warn, "hmm");
        assert_eq!(report.exit_code(), 1);
        report.add("d", Verdict::Fail, "no");
        assert_eq!(report.exit_code(), 2);
        assert!(report.text().ends_with("verdict: fail"));
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["items"][1]["verdict"], "unknown");
        assert_eq!(json["verdict"], "fail");
    }

    #[test]
    fn per_cpu_values_are_grouped() {
        let values = [(0, "a"), (1, "b"), (2, "a")].map(|(c, v)| (c, v.to_owned()));
        assert_eq!(summarize(values.into_iter()), "a on cpus 0,2; b on cpus 1");
    }
}
