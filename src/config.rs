//! The validated, typed configuration the daemon runs with.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::{Serialize, Serializer};

use crate::cpuset::CpuSet;

/// Which run-queue source to use (`-b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// queue_track where BPF loads, else sched_debug (with a line saying why).
    Auto,
    QueueTrack,
    SchedDebug,
}

/// Upstream's monitoring modes. All of them boost starving tasks without waiting for each
/// other's boosts; they differ in what is reported and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `-O` (default): report tasks when they reach the threshold.
    Power,
    /// `-M`: also warn when a task has waited half the threshold.
    Adaptive,
    /// `-A`: like adaptive, and every CPU is examined at every poll, idle or not.
    Aggressive,
}

/// The policy a starving task is lent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoostPolicy {
    /// SCHED_DEADLINE with `runtime` every `period`.
    Deadline,
    /// `-F`: SCHED_FIFO priority 98 for `runtime` of every `period`, the task's own policy
    /// in between (for kernels where DEADLINE cannot be used).
    Fifo,
}

impl BoostPolicy {
    /// The kernel's name of the policy a boost runs under.
    pub fn sched_name(self) -> &'static str {
        match self {
            BoostPolicy::Deadline => "SCHED_DEADLINE",
            BoostPolicy::Fifo => "SCHED_FIFO",
        }
    }
}

/// How a starving task is boosted and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BoostParams {
    #[serde(serialize_with = "as_sched_name")]
    pub policy: BoostPolicy,
    /// CPU time granted every `period`.
    #[serde(rename = "runtime_ns", serialize_with = "as_nanoseconds")]
    pub runtime: Duration,
    #[serde(rename = "period_ns", serialize_with = "as_nanoseconds")]
    pub period: Duration,
    /// How long the task keeps the boost before its own policy is restored.
    #[serde(rename = "duration_s", serialize_with = "as_seconds")]
    pub duration: Duration,
}

/// What the daemon does with a starving task: the one value `-l` decides, which everything
/// that differs between the two asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoostMode {
    /// Boost it as [`Config::boost`] says: the daemon changes the machine for that (the
    /// ledger, the guardian, RT throttling, HRTICK) and puts everything back.
    Boost,
    /// `-l`: report it, as the C stalld does, and change nothing; a log-only stalld is in no
    /// other stalld's way.
    LogOnly,
}

/// Regular expressions naming threads or processes that are never boosted (`-i`, `-I`).
#[derive(Clone, Debug, Default)]
pub struct Denylist(pub Vec<Regex>);

impl Denylist {
    pub fn matches(&self, name: &str) -> bool {
        self.0.iter().any(|regex| regex.is_match(name))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl PartialEq for Denylist {
    fn eq(&self, other: &Denylist) -> bool {
        self.0
            .iter()
            .map(Regex::as_str)
            .eq(other.0.iter().map(Regex::as_str))
    }
}

impl Eq for Denylist {}

/// The expressions as they were given.
impl Serialize for Denylist {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Regex::as_str))
    }
}

/// Where `--metrics` serves: a TCP `host:port`, or a unix socket path (`unix:PATH`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    Tcp(String),
    Unix(PathBuf),
}

impl std::fmt::Display for MetricsAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAddr::Tcp(address) => f.write_str(address),
            MetricsAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Where `--events` writes its JSON lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventsTarget {
    /// `-`: standard output.
    Stdout,
    /// `PATH`: a regular file, appended to (created if missing); never a link or a FIFO.
    File(PathBuf),
    /// `fifo:PATH`: an existing named pipe, and only that (never created).
    Fifo(PathBuf),
}

impl EventsTarget {
    /// `-`, `fifo:PATH` or a file name.
    pub fn parse(text: &str) -> EventsTarget {
        match text {
            "-" => EventsTarget::Stdout,
            _ => match text.strip_prefix("fifo:") {
                Some(path) => EventsTarget::Fifo(path.into()),
                None => EventsTarget::File(text.into()),
            },
        }
    }
}

impl std::fmt::Display for EventsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventsTarget::Stdout => f.write_str("-"),
            EventsTarget::File(path) => write!(f, "{}", path.display()),
            EventsTarget::Fifo(path) => write!(f, "fifo:{}", path.display()),
        }
    }
}

/// Where log lines and events go: the one value the logger is built from, which also renders
/// itself as the options that give another stalld process the same sinks (the guardian's
/// command line) and as JSON (`stalld status`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SinkOptions {
    /// `-v`: diagnostics on stderr, task tables on stdout.
    pub verbose: bool,
    /// `-k`: /dev/kmsg.
    #[serde(rename = "log_kmsg")]
    pub kmsg: bool,
    /// `-s`: syslog.
    #[serde(rename = "log_syslog")]
    pub syslog: bool,
    /// `--events FILE|fifo:PATH|-`: every event as a JSON line.
    #[serde(serialize_with = "as_optional_text")]
    pub events: Option<EventsTarget>,
}

impl SinkOptions {
    /// The text sinks as stalld options (`-k`, `-s`): what the guardian is started with.
    /// `-v` is the guardian's own (it always prints to stderr) and `--events` the daemon's
    /// alone (one writer per file).
    pub fn text_sink_args(&self) -> Vec<&'static str> {
        [(self.kmsg, "-k"), (self.syslog, "-s")]
            .into_iter()
            .filter_map(|(on, flag)| on.then_some(flag))
            .collect()
    }

    /// The text sinks given as `args` by [`SinkOptions::text_sink_args`].
    pub fn from_text_sink_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> SinkOptions {
        let given = |flag: &str| args.iter().any(|arg| arg.as_ref() == flag);
        SinkOptions {
            kmsg: given("-k"),
            syslog: given("-s"),
            ..SinkOptions::default()
        }
    }
}

/// When a task is starving and how the run queues are watched for it (`-t`, `-g`, `-N`,
/// `-O`/`-M`/`-A`), with what follows from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Detection {
    pub mode: Mode,
    /// How long a task may wait on a run queue before it is starving.
    #[serde(rename = "threshold_s", serialize_with = "as_seconds")]
    pub threshold: Duration,
    /// How often a backend that cannot tell queue times is polled.
    #[serde(rename = "granularity_s", serialize_with = "as_seconds")]
    pub granularity: Duration,
    /// Skip polls while every monitored CPU has had idle time (`-N` turns it off).
    pub idle_detection: bool,
}

impl Detection {
    /// Adaptive and aggressive modes warn when a task has waited half the threshold.
    pub fn early_threshold(&self) -> Option<Duration> {
        (self.mode != Mode::Power).then(|| self.threshold / 2)
    }

    /// The earliest wait anything is said about: what a check must not come later than.
    pub fn first_report(&self) -> Duration {
        self.early_threshold().unwrap_or(self.threshold)
    }

    /// Adaptive and aggressive modes print the C stalld's per-CPU task tables (`-v`).
    pub fn per_cpu_tables(&self) -> bool {
        self.mode != Mode::Power
    }

    /// `-l` in power mode reports, as the C stalld does, per CPU and check the task that has
    /// waited longest, again at every poll with its growing wait (scripts measure that).
    pub fn longest_per_cpu_every_poll(&self, boost_mode: BoostMode) -> bool {
        boost_mode == BoostMode::LogOnly && self.mode == Mode::Power
    }

    /// How often a task that keeps starving is reported again: every poll in the case
    /// above, otherwise once per threshold period (as upstream's per-CPU modes).
    pub fn report_interval(&self, boost_mode: BoostMode) -> Duration {
        if self.longest_per_cpu_every_poll(boost_mode) {
            self.granularity
        } else {
            self.threshold
        }
    }
}

/// The daemon as a process: how it runs, and beside whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Process {
    /// Not shown: a daemon that answers `stalld status` runs either way.
    #[serde(skip)]
    pub foreground: bool,
    /// CPUs stalld itself may run on (`-a`).
    #[serde(serialize_with = "as_optional_text")]
    pub affinity: Option<CpuSet>,
    /// Percentage of a CPU reserved for stalld itself as SCHED_DEADLINE (`-R`).
    #[serde(rename = "reservation_percent")]
    pub reservation: Option<u32>,
    /// Started by systemd (`-S`): RT throttling must already be off; stalld does not touch it.
    pub systemd: bool,
    #[serde(serialize_with = "as_path_text")]
    pub pidfile: Option<PathBuf>,
    /// `--allow_other_instances`: boost even when another stalld boosts on this host.
    pub allow_other_instances: bool,
    /// `--stand_aside`: when another stalld boosts here, boost nothing and wait to be stopped.
    pub stand_aside: bool,
}

/// What the daemon runs with. It serialises itself as `stalld status` shows it (one flat
/// object, the boost parameters under `boost`): a new option is a field here, with the
/// name and unit its JSON key says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Boost, or (`-l`) detect and log only: never boost, never touch RT throttling or sched
    /// features. Shown as `log_only`.
    #[serde(rename = "log_only", serialize_with = "as_log_only")]
    pub boost_mode: BoostMode,
    /// Where log lines and events go (`-v`, `-k`, `-s`, `--events`).
    #[serde(flatten)]
    pub sinks: SinkOptions,
    #[serde(flatten)]
    pub detection: Detection,
    pub boost: BoostParams,
    #[serde(serialize_with = "as_text")]
    pub cpus: CpuSet,
    pub ignore_threads: Denylist,
    pub ignore_processes: Denylist,
    pub backend: BackendChoice,
    #[serde(flatten)]
    pub process: Process,
    /// `--metrics ADDR`: serve Prometheus metrics there.
    #[serde(serialize_with = "as_optional_text")]
    pub metrics: Option<MetricsAddr>,
}

impl Config {
    /// How starving tasks are boosted, unless they are only reported (`-l`).
    pub fn boosting(&self) -> Option<&BoostParams> {
        match self.boost_mode {
            BoostMode::Boost => Some(&self.boost),
            BoostMode::LogOnly => None,
        }
    }

    /// The configuration as `stalld status` shows it.
    pub fn to_json(&self) -> serde_json::Value {
        // Every field renders as a string, a number, a bool, a list or an object with
        // string keys: this cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A value the JSON shows as it is written on the command line (a CPU list, an address).
fn as_text<T: std::fmt::Display, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn as_optional_text<T: std::fmt::Display, S: Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}

/// A path, with what is not UTF-8 replaced (as log lines show it).
fn as_path_text<S: Serializer>(path: &Option<PathBuf>, serializer: S) -> Result<S::Ok, S::Error> {
    as_optional_text(&path.as_ref().map(|path| path.display()), serializer)
}

fn as_log_only<S: Serializer>(mode: &BoostMode, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(*mode == BoostMode::LogOnly)
}

fn as_seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

fn as_nanoseconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_nanos() as u64)
}

fn as_sched_name<S: Serializer>(policy: &BoostPolicy, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(policy.sched_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_detection_derives_from_the_mode() {
        let power = Detection {
            mode: Mode::Power,
            threshold: Duration::from_secs(20),
            granularity: Duration::from_secs(5),
            idle_detection: true,
        };
        assert_eq!(power.early_threshold(), None);
        assert_eq!(power.first_report(), Duration::from_secs(20));
        assert!(!power.per_cpu_tables());
        // -l in power mode: the C stalld's report at every poll.
        assert_eq!(
            power.report_interval(BoostMode::LogOnly),
            Duration::from_secs(5)
        );
        assert_eq!(
            power.report_interval(BoostMode::Boost),
            Duration::from_secs(20)
        );
        for mode in [Mode::Adaptive, Mode::Aggressive] {
            let per_cpu = Detection { mode, ..power };
            assert_eq!(per_cpu.early_threshold(), Some(Duration::from_secs(10)));
            assert_eq!(per_cpu.first_report(), Duration::from_secs(10));
            assert!(per_cpu.per_cpu_tables());
            assert!(!per_cpu.longest_per_cpu_every_poll(BoostMode::LogOnly));
            assert_eq!(
                per_cpu.report_interval(BoostMode::LogOnly),
                Duration::from_secs(20)
            );
        }
    }

    /// The guardian gets the daemon's text sinks back from the arguments they render.
    #[test]
    fn sink_options_render_the_guardians_arguments_and_the_status_json() {
        for (kmsg, syslog) in [(false, false), (true, false), (false, true), (true, true)] {
            let options = SinkOptions {
                verbose: true,
                kmsg,
                syslog,
                events: Some(EventsTarget::Stdout),
            };
            let args = options.text_sink_args();
            assert_eq!(
                SinkOptions::from_text_sink_args(&args),
                SinkOptions {
                    kmsg,
                    syslog,
                    ..SinkOptions::default()
                },
                "{args:?}"
            );
        }
        let json = SinkOptions {
            kmsg: true,
            events: Some(EventsTarget::Fifo("/run/ship".into())),
            ..SinkOptions::default()
        };
        let json = serde_json::to_value(json).unwrap();
        assert_eq!(json["log_kmsg"], true);
        assert_eq!(json["log_syslog"], false);
        assert_eq!(json["events"], "fifo:/run/ship");
    }

    /// `stalld status` shows the configuration as it always has: one flat object, the boost
    /// parameters under `boost`, durations in the unit their key names.
    #[test]
    fn the_configuration_serialises_itself_as_stalld_status_shows_it() {
        let args = [
            "-v",
            "-k",
            "-s",
            "--events",
            "fifo:/tmp/x",
            "-c",
            "0-1",
            "-a",
            "1",
            "-R",
            "10",
            "-i",
            "kworker.*",
            "-I",
            "bash,sh",
            "-S",
            "-P",
            "/tmp/p.pid",
            "--metrics",
            "unix:/tmp/m",
            "-F",
            "-t",
            "30",
            "-b",
            "sched_debug",
            "-A",
            "-N",
            "--allow_other_instances",
        ];
        let config = match crate::cli::parse(args) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        let expected = serde_json::json!({
            "affinity": "1", "allow_other_instances": true, "backend": "sched_debug",
            "boost": {"duration_s": 3.0, "period_ns": 1000000000_u64, "policy": "SCHED_FIFO", "runtime_ns": 20000},
            "cpus": "0,1", "events": "fifo:/tmp/x", "granularity_s": 5.0, "idle_detection": false,
            "ignore_processes": ["bash", "sh"], "ignore_threads": ["kworker.*"], "log_kmsg": true,
            "log_only": false, "log_syslog": true, "metrics": "unix:/tmp/m", "mode": "aggressive",
            "pidfile": "/tmp/p.pid", "reservation_percent": 10, "stand_aside": false,
            "systemd": true, "threshold_s": 30.0, "verbose": true,
        });
        assert_eq!(config.to_json(), expected);
        let log_only = match crate::cli::parse(["-l", "-M", "--stand_aside", "--events", "-"]) {
            Ok(crate::cli::Command::Run(config)) => config.to_json(),
            other => panic!("{other:?}"),
        };
        assert_eq!(log_only["log_only"], true);
        assert_eq!(log_only["mode"], "adaptive");
        assert_eq!(log_only["stand_aside"], true);
        assert_eq!(log_only["events"], "-");
        assert_eq!(log_only["affinity"], serde_json::Value::Null);
    }
}
