//! The validated, typed configuration the daemon runs with.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;

use crate::cpuset::CpuSet;

/// Which run-queue source to use (`-b`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// queue_track where BPF loads, else sched_debug (with a line saying why).
    Auto,
    QueueTrack,
    SchedDebug,
}

/// Upstream's monitoring modes. All of them boost starving tasks without waiting for each
/// other's boosts; they differ in what is reported and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoostParams {
    pub policy: BoostPolicy,
    /// CPU time granted every `period`.
    pub runtime: Duration,
    pub period: Duration,
    /// How long the task keeps the boost before its own policy is restored.
    pub duration: Duration,
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkOptions {
    /// `-v`: diagnostics on stderr, task tables on stdout.
    pub verbose: bool,
    /// `-k`: /dev/kmsg.
    pub kmsg: bool,
    /// `-s`: syslog.
    pub syslog: bool,
    /// `--events FILE|fifo:PATH|-`: every event as a JSON line.
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

    /// The options as `stalld status` shows them.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "verbose": self.verbose,
            "log_kmsg": self.kmsg,
            "log_syslog": self.syslog,
            "events": self.events.as_ref().map(ToString::to_string),
        })
    }
}

/// When a task is starving and how the run queues are watched for it (`-t`, `-g`, `-N`,
/// `-O`/`-M`/`-A`), with what follows from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detection {
    pub mode: Mode,
    /// How long a task may wait on a run queue before it is starving.
    pub threshold: Duration,
    /// How often a backend that cannot tell queue times is polled.
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
    pub fn longest_per_cpu_every_poll(&self, log_only: bool) -> bool {
        log_only && self.mode == Mode::Power
    }

    /// How often a task that keeps starving is reported again: every poll in the case
    /// above, otherwise once per threshold period (as upstream's per-CPU modes).
    pub fn report_interval(&self, log_only: bool) -> Duration {
        if self.longest_per_cpu_every_poll(log_only) {
            self.granularity
        } else {
            self.threshold
        }
    }
}

/// The daemon as a process: how it runs, and beside whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub foreground: bool,
    /// CPUs stalld itself may run on (`-a`).
    pub affinity: Option<CpuSet>,
    /// Percentage of a CPU reserved for stalld itself as SCHED_DEADLINE (`-R`).
    pub reservation: Option<u32>,
    /// Started by systemd (`-S`): RT throttling must already be off; stalld does not touch it.
    pub systemd: bool,
    pub pidfile: Option<PathBuf>,
    /// `--allow_other_instances`: boost even when another stalld boosts on this host.
    pub allow_other_instances: bool,
    /// `--stand_aside`: when another stalld boosts here, boost nothing and wait to be stopped.
    pub stand_aside: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Detect and log only; never boost, never touch RT throttling or sched features.
    pub log_only: bool,
    /// Where log lines and events go (`-v`, `-k`, `-s`, `--events`).
    pub sinks: SinkOptions,
    pub detection: Detection,
    pub boost: BoostParams,
    pub cpus: CpuSet,
    pub ignore_threads: Denylist,
    pub ignore_processes: Denylist,
    pub backend: BackendChoice,
    pub process: Process,
    /// `--metrics ADDR`: serve Prometheus metrics there.
    pub metrics: Option<MetricsAddr>,
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
        assert_eq!(power.report_interval(true), Duration::from_secs(5));
        assert_eq!(power.report_interval(false), Duration::from_secs(20));
        for mode in [Mode::Adaptive, Mode::Aggressive] {
            let per_cpu = Detection { mode, ..power };
            assert_eq!(per_cpu.early_threshold(), Some(Duration::from_secs(10)));
            assert_eq!(per_cpu.first_report(), Duration::from_secs(10));
            assert!(per_cpu.per_cpu_tables());
            assert!(!per_cpu.longest_per_cpu_every_poll(true));
            assert_eq!(per_cpu.report_interval(true), Duration::from_secs(20));
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
        }
        .to_json();
        assert_eq!(json["log_kmsg"], true);
        assert_eq!(json["log_syslog"], false);
        assert_eq!(json["events"], "fifo:/run/ship");
    }
}
