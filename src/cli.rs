//! The command line: upstream stalld's options, defaults, ranges and messages.
//!
//! Usage errors print the usage text and the message to stderr and exit with 22 (EINVAL), as
//! the C stalld does, so wrappers that check for it keep working. Numbers may carry a unit
//! (`-t 500ms`, `-p 1s`); a bare number keeps upstream's unit.

use std::ffi::OsString;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::config::{BackendChoice, BoostParams, BoostPolicy, Config, Denylist, MetricsAddr, Mode};
use crate::cpuset::{configured_cpus, CpuSet};

/// Exit status of every command-line error (EINVAL), as upstream.
pub const USAGE_EXIT_CODE: i32 = 22;

#[derive(Debug, Parser)]
#[command(
    name = "stalld",
    disable_help_flag = true,
    disable_version_flag = true,
    no_binary_name = true
)]
struct Args {
    #[arg(short = 'l', long = "log_only")]
    log_only: bool,
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    #[arg(short = 'k', long = "log_kmsg")]
    log_kmsg: bool,
    #[arg(short = 's', long = "log_syslog")]
    log_syslog: bool,
    #[arg(short = 'f', long = "foreground")]
    foreground: bool,
    #[arg(short = 'A', long = "aggressive_mode", overrides_with_all = ["power_mode", "adaptive_mode"])]
    aggressive_mode: bool,
    #[arg(short = 'O', long = "power_mode", overrides_with_all = ["aggressive_mode", "adaptive_mode"])]
    power_mode: bool,
    #[arg(short = 'M', long = "adaptive_mode", overrides_with_all = ["aggressive_mode", "power_mode"])]
    adaptive_mode: bool,
    #[arg(short = 'N', long = "no_idle_detect")]
    no_idle_detect: bool,
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(short = 'V', long = "version")]
    version: bool,
    #[arg(short = 'p', long = "boost_period", allow_hyphen_values = true)]
    boost_period: Option<String>,
    #[arg(short = 'r', long = "boost_runtime", allow_hyphen_values = true)]
    boost_runtime: Option<String>,
    #[arg(short = 'd', long = "boost_duration", allow_hyphen_values = true)]
    boost_duration: Option<String>,
    #[arg(short = 't', long = "starving_threshold", allow_hyphen_values = true)]
    starving_threshold: Option<String>,
    #[arg(short = 'g', long = "granularity", allow_hyphen_values = true)]
    granularity: Option<String>,
    #[arg(short = 'c', long = "cpu", allow_hyphen_values = true)]
    cpu: Option<String>,
    #[arg(short = 'a', long = "affinity", allow_hyphen_values = true)]
    affinity: Option<String>,
    #[arg(short = 'F', long = "force_fifo")]
    force_fifo: bool,
    #[arg(short = 'R', long = "reservation", allow_hyphen_values = true)]
    reservation: Option<String>,
    #[arg(short = 'i', long = "ignore_threads", action = ArgAction::Append)]
    ignore_threads: Vec<String>,
    #[arg(short = 'I', long = "ignore_processes", action = ArgAction::Append)]
    ignore_processes: Vec<String>,
    #[arg(short = 'b', long = "backend")]
    backend: Option<String>,
    #[arg(short = 'S', long = "systemd")]
    systemd: bool,
    #[arg(short = 'P', long = "pidfile")]
    pidfile: Option<String>,
    #[arg(long = "events")]
    events: Option<String>,
    #[arg(long = "metrics")]
    metrics: Option<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `-h`: usage on stderr, exit 0.
    Help,
    /// `-V`/`--version`: the version on stdout, exit 0.
    Version,
}

/// A rejected command line: the message for stderr (printed after the usage text).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

pub fn usage() -> String {
    format!(
        "usage: stalld [-l] [-v] [-k] [-s] [-f] [-h] [-V] [-A|-O|-M] [-N] [-F] [-S]
              [-b backend] [-c cpu-list] [-a cpu-list] [-p period] [-r runtime]
              [-d duration] [-t threshold] [-g granularity] [-R percent]
              [-i regex,...] [-I regex,...] [-P|--pidfile file]
              [--events file|-] [--metrics host:port|unix:path]

        logging options:
          -l/--log_only: only log information (do not boost)
          -v/--verbose: print info to stderr (implies -f)
          -k/--log_kmsg: print log to the kernel buffer (/dev/kmsg)
          -s/--log_syslog: print log to syslog
          --events: also write every event as a JSON line to this file (- = stdout)
          --metrics: serve Prometheus metrics at http://ADDR/metrics (host:port or unix:path)
        startup options:
          -f/--foreground: run in foreground [implied with -v]
          -P/--pidfile: write daemon pid to specified file
          -S/--systemd: started by systemd: RT throttling must already be off
          -a/--affinity: list of CPUs stalld itself may run on
          -R/--reservation: run stalld itself as SCHED_DEADLINE with this percent of a CPU
        modes (the last one given wins; none of them makes boosts wait for each other):
          -O/--power_mode: report tasks at the threshold [default]
          -M/--adaptive_mode: also warn when a task has waited half the threshold
          -A/--aggressive_mode: as -M, and examine every CPU at every poll, idle or not
          -N/--no_idle_detect: do not skip polls while every CPU has had idle time
        backend options:
          -b/--backend: queue_track (Q, the default where BPF loads) or sched_debug (S)
        boosting options:
          -p/--boost_period: SCHED_DEADLINE period [ns] (default 1000000000)
          -r/--boost_runtime: SCHED_DEADLINE runtime [ns] (default 20000)
          -d/--boost_duration: how long the task is boosted [s] (default 3)
          -F/--force_fifo: boost with SCHED_FIFO 98 for runtime every period instead
        monitoring options:
          -t/--starving_threshold: how long a task may wait before it is boosted [s] (default 20)
          -g/--granularity: sched_debug polling interval [s] (default 5)
          -c/--cpu: list of CPUs to monitor (default: all)
          -i/--ignore_threads: regexes of thread names never to boost (comma-separated)
          -I/--ignore_processes: regexes of process names never to boost (comma-separated)
        numbers may carry a unit: ns, us, ms, s, min (e.g. -t 500ms, -p 1s)
        -h/--help: print this menu
        -V/--version: print the version
        commands: stalld status [--json] | stalld check [--json] [options]
                  | stalld throttle off|on|show | stalld parse-sched-debug file|-

  stalld version: {}",
        env!("CARGO_PKG_VERSION")
    )
}

pub fn parse<I, T>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = Args::try_parse_from(args).map_err(|_| UsageError("Invalid option".into()))?;
    if args.help {
        return Ok(Command::Help);
    }
    if args.version {
        return Ok(Command::Version);
    }
    let ns = Duration::from_nanos;
    let secs = Duration::from_secs;

    let period = parse_duration(args.boost_period.as_deref(), Unit::Nanos, ns(1_000_000_000))?;
    check_range(
        period,
        ns(200_000_000),
        "boost_period should be at least 200 ms",
        ns(4_000_000_000),
        "boost_period should be at most 4 s",
    )?;
    let runtime = parse_duration(args.boost_runtime.as_deref(), Unit::Nanos, ns(20_000))?;
    check_range(
        runtime,
        ns(8_000),
        "boost_runtime should be at least 8 us",
        ns(1_000_000),
        "boost_runtime should be at most 1 ms",
    )?;
    let duration = parse_duration(args.boost_duration.as_deref(), Unit::Seconds, secs(3))?;
    check_range(
        duration,
        secs(1),
        "boost_duration should be at least 1 second",
        secs(60),
        "boost_duration should be at most 60 seconds",
    )?;
    let threshold_arg = args.starving_threshold.as_deref();
    let threshold = parse_duration(threshold_arg, Unit::Seconds, secs(20))?;
    // Below one second is allowed only when asked for explicitly with a unit.
    let (threshold_min, too_short) = if threshold_arg.is_some_and(has_unit) {
        (
            Duration::from_millis(10),
            "starving_threshold should be at least 10 ms",
        )
    } else {
        (secs(1), "starving_threshold should be at least 1 second")
    };
    check_range(
        threshold,
        threshold_min,
        too_short,
        secs(3600),
        "starving_threshold should be at most one hour",
    )?;
    let granularity = parse_duration(args.granularity.as_deref(), Unit::Seconds, secs(5))?;
    check_range(
        granularity,
        secs(1),
        "granularity should be at least 1 second",
        secs(600),
        "granularity should not be more than 10 minutes",
    )?;

    let limit = configured_cpus();
    let cpus = match args.cpu.as_deref() {
        None => CpuSet::first_n(limit),
        Some(list) => CpuSet::parse_list(list, limit)
            .ok_or_else(|| UsageError(format!("Error parsing the cpu list {list}")))?,
    };
    let affinity = args
        .affinity
        .as_deref()
        .map(|list| {
            CpuSet::parse_list(list, limit)
                .ok_or_else(|| UsageError(format!("invalid CPU affinity: {list}")))
        })
        .transpose()?;
    let reservation = args
        .reservation
        .as_deref()
        .map(|text| match text.trim().parse::<u32>() {
            Ok(percent @ 10..=90) => Ok(percent),
            _ => Err(UsageError(
                "Reservation needs to be at least 10% and at most 90%".into(),
            )),
        })
        .transpose()?;
    let backend = match args.backend.as_deref() {
        None => BackendChoice::Auto,
        Some("queue_track" | "Q") => BackendChoice::QueueTrack,
        Some("sched_debug" | "S") => BackendChoice::SchedDebug,
        Some(other) => return Err(UsageError(format!("unknown backend {other}"))),
    };
    let metrics = args.metrics.as_deref().map(metrics_addr).transpose()?;
    if args.events.as_deref() == Some("") {
        return Err(UsageError(
            "--events needs a file name, or - for stdout".into(),
        ));
    }
    let mode = if args.aggressive_mode {
        Mode::Aggressive
    } else if args.adaptive_mode {
        Mode::Adaptive
    } else {
        Mode::Power
    };

    if period < runtime {
        return Err(UsageError("runtime is longer than the period".into()));
    }
    if period > duration {
        return Err(UsageError(
            "the period is longer than the boost_duration: the boosted task might not be able to run".into(),
        ));
    }
    if duration > threshold {
        return Err(UsageError(
            "the boost duration cannot be longer than the starving threshold ".into(),
        ));
    }

    Ok(Command::Run(Box::new(Config {
        log_only: args.log_only,
        verbose: args.verbose,
        log_kmsg: args.log_kmsg,
        log_syslog: args.log_syslog,
        foreground: args.foreground || args.verbose,
        mode,
        idle_detection: !args.no_idle_detect,
        threshold,
        granularity,
        boost: BoostParams {
            policy: if args.force_fifo {
                BoostPolicy::Fifo
            } else {
                BoostPolicy::Deadline
            },
            runtime,
            period,
            duration,
        },
        cpus,
        affinity,
        reservation,
        ignore_threads: denylist(&args.ignore_threads, "-i")?,
        ignore_processes: denylist(&args.ignore_processes, "-I")?,
        backend,
        systemd: args.systemd,
        pidfile: args.pidfile.map(Into::into),
        events: args.events.map(Into::into),
        metrics,
    })))
}

/// `host:port` (a name or an address; `[::1]:9772` for IPv6) or `unix:PATH`.
fn metrics_addr(text: &str) -> Result<MetricsAddr, UsageError> {
    if let Some(path) = text.strip_prefix("unix:") {
        if !path.is_empty() {
            return Ok(MetricsAddr::Unix(path.into()));
        }
    } else if let Some((host, port)) = text.rsplit_once(':') {
        if !host.is_empty() && port.parse::<u16>().is_ok() {
            return Ok(MetricsAddr::Tcp(text.to_owned()));
        }
    }
    Err(UsageError(format!(
        "--metrics: expected host:port or unix:PATH, not '{text}'"
    )))
}

/// Comma-separated regular expressions, from every use of the option. Matching is unanchored,
/// as upstream's POSIX extended regexes. One bad expression rejects the command line rather
/// than silently dropping the whole list.
fn denylist(values: &[String], option: &str) -> Result<Denylist, UsageError> {
    values
        .iter()
        .flat_map(|value| value.split(','))
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            regex::Regex::new(piece).map_err(|error| {
                UsageError(format!(
                    "{option}: invalid regular expression '{piece}': {error}"
                ))
            })
        })
        .collect::<Result<_, _>>()
        .map(Denylist)
}

#[derive(Clone, Copy)]
enum Unit {
    Nanos,
    Seconds,
}

fn has_unit(text: &str) -> bool {
    text.trim().ends_with(|c: char| c.is_ascii_alphabetic())
}

/// A bare integer in `unit`, or a number with one of the suffixes ns, us, ms, s, min.
/// Anything unparsable (including negatives) is an error that names the value.
fn parse_duration(
    text: Option<&str>,
    unit: Unit,
    default: Duration,
) -> Result<Duration, UsageError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let invalid = || UsageError(format!("invalid number: '{text}'"));
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(split);
    let nanos_per = match (suffix, unit) {
        ("", Unit::Nanos) | ("ns", _) => 1.0,
        ("us", _) => 1e3,
        ("ms", _) => 1e6,
        ("", Unit::Seconds) | ("s", _) => 1e9,
        ("min", _) => 60e9,
        _ => return Err(invalid()),
    };
    if suffix.is_empty() && number.contains('.') {
        return Err(invalid());
    }
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let nanos = value * nanos_per;
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

fn check_range(
    value: Duration,
    min: Duration,
    too_small: &str,
    max: Duration,
    too_large: &str,
) -> Result<(), UsageError> {
    if value < min {
        Err(UsageError(too_small.into()))
    } else if value > max {
        Err(UsageError(too_large.into()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, UsageError> {
        match parse(args.iter().copied())? {
            Command::Run(config) => Ok(*config),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        run(args).expect_err("must be rejected").0
    }

    #[test]
    fn defaults_are_upstreams() {
        let config = run(&[]).unwrap();
        assert_eq!(config.threshold, Duration::from_secs(20));
        assert_eq!(config.granularity, Duration::from_secs(5));
        assert_eq!(config.boost.period, Duration::from_secs(1));
        assert_eq!(config.boost.runtime, Duration::from_micros(20));
        assert_eq!(config.boost.duration, Duration::from_secs(3));
        assert_eq!(config.backend, BackendChoice::Auto);
        assert!(!config.log_only && !config.verbose && !config.foreground);
        assert_eq!(config.cpus, CpuSet::first_n(configured_cpus()));
    }

    #[test]
    fn range_messages_match_upstream() {
        let cases: &[(&[&str], &str)] = &[
            (&["-p", "1"], "boost_period should be at least 200 ms"),
            (&["-p", "4000000001"], "boost_period should be at most 4 s"),
            (&["-r", "5"], "boost_runtime should be at least 8 us"),
            (&["-r", "1000001"], "boost_runtime should be at most 1 ms"),
            (&["-d", "0"], "boost_duration should be at least 1 second"),
            (&["-d", "61"], "boost_duration should be at most 60 seconds"),
            (&["-t", "0"], "starving_threshold should be at least 1 second"),
            (&["-t", "3601"], "starving_threshold should be at most one hour"),
            (&["-g", "0"], "granularity should be at least 1 second"),
            (&["-g", "601"], "granularity should not be more than 10 minutes"),
            (&["-x"], "Invalid option"),
            (&["--bogus"], "Invalid option"),
            (&["-b", "ebpf"], "unknown backend ebpf"),
            (&["-c", "999"], "Error parsing the cpu list 999"),
            (&["-a", "1-0"], "invalid CPU affinity: 1-0"),
            (&["-R", "5"], "Reservation needs to be at least 10% and at most 90%"),
            (&["-R", "91"], "Reservation needs to be at least 10% and at most 90%"),
            (&["-P"], "Invalid option"),
            (&["-p", "4000000000", "-d", "3"], "the period is longer than the boost_duration: the boosted task might not be able to run"),
            (&["-t", "2"], "the boost duration cannot be longer than the starving threshold "),
            (&["-t", "abc"], "invalid number: 'abc'"),
            (&["-t", "-5"], "invalid number: '-5'"),
            (&["-t", "5x"], "invalid number: '5x'"),
        ];
        for (args, message) in cases {
            assert_eq!(error(args), *message, "for {args:?}");
        }
    }

    #[test]
    fn units_are_accepted_and_bare_numbers_keep_upstream_units() {
        let config = run(&["-t", "500ms", "-d", "1s", "-p", "0.5s", "-r", "50us"]).unwrap_err();
        assert_eq!(
            config.0,
            "the boost duration cannot be longer than the starving threshold "
        );
        let config = run(&["-t", "1500ms", "-d", "1", "-p", "500000000", "-r", "50us"]).unwrap();
        assert_eq!(config.threshold, Duration::from_millis(1500));
        assert_eq!(config.boost.period, Duration::from_millis(500));
        assert_eq!(config.boost.runtime, Duration::from_micros(50));
        let config = run(&["-t", "2min", "-g", "1"]).unwrap();
        assert_eq!(config.threshold, Duration::from_secs(120));
    }

    #[test]
    fn long_names_backends_and_cpus() {
        let config = run(&[
            "--starving_threshold",
            "5",
            "--log_only",
            "--verbose",
            "-b",
            "S",
            "-c",
            "0",
        ])
        .unwrap();
        assert_eq!(config.threshold, Duration::from_secs(5));
        assert!(config.log_only && config.verbose && config.foreground);
        assert_eq!(config.backend, BackendChoice::SchedDebug);
        assert_eq!(config.cpus.iter().collect::<Vec<_>>(), vec![0]);
        assert_eq!(
            run(&["-b", "queue_track"]).unwrap().backend,
            BackendChoice::QueueTrack
        );
    }

    #[test]
    fn modes_last_one_wins_and_flags_map() {
        assert_eq!(run(&[]).unwrap().mode, Mode::Power);
        assert_eq!(run(&["-A"]).unwrap().mode, Mode::Aggressive);
        assert_eq!(run(&["-A", "-M"]).unwrap().mode, Mode::Adaptive);
        assert_eq!(run(&["-M", "-O"]).unwrap().mode, Mode::Power);
        let config = run(&[
            "-k",
            "-s",
            "-N",
            "-F",
            "-S",
            "-R",
            "20",
            "-a",
            "0",
            "--pidfile",
            "/run/x.pid",
        ])
        .unwrap();
        assert!(config.log_kmsg && config.log_syslog && !config.idle_detection && config.systemd);
        assert_eq!(config.boost.policy, BoostPolicy::Fifo);
        assert_eq!(config.reservation, Some(20));
        assert_eq!(config.affinity, CpuSet::parse_list("0", 1));
        assert_eq!(config.pidfile, Some("/run/x.pid".into()));
        assert_eq!(
            run(&["-P", "/run/y.pid"]).unwrap().pidfile,
            Some("/run/y.pid".into())
        );
    }

    #[test]
    fn denylists_accumulate_and_reject_bad_expressions() {
        let config = run(&["-i", "kworker,ksoftirqd", "-i", "^rcu", "-I", "qemu.*"]).unwrap();
        assert_eq!(config.ignore_threads.0.len(), 3);
        assert!(config.ignore_threads.matches("kworker/3:1"));
        assert!(config.ignore_threads.matches("rcuc/2"));
        assert!(!config.ignore_threads.matches("xrcu"));
        assert!(config.ignore_processes.matches("qemu-kvm"));
        assert!(error(&["-i", "ok,("]).starts_with("-i: invalid regular expression '('"));
    }

    #[test]
    fn events_and_metrics() {
        let config = run(&["--events", "-", "--metrics", "127.0.0.1:9772"]).unwrap();
        assert_eq!(config.events, Some("-".into()));
        assert_eq!(
            config.metrics,
            Some(MetricsAddr::Tcp("127.0.0.1:9772".into()))
        );
        let config = run(&["--metrics", "unix:/run/stalld/metrics.sock"]).unwrap();
        assert_eq!(
            config.metrics.map(|m| m.to_string()).as_deref(),
            Some("unix:/run/stalld/metrics.sock")
        );
        assert_eq!(run(&[]).unwrap().metrics, None);
        for bad in ["9772", "host:", ":9772", "unix:", "h:99999"] {
            assert_eq!(
                error(&["--metrics", bad]),
                format!("--metrics: expected host:port or unix:PATH, not '{bad}'")
            );
        }
        assert_eq!(
            error(&["--events", ""]),
            "--events needs a file name, or - for stdout"
        );
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(["-h"]), Ok(Command::Help)));
        assert!(matches!(parse(["--version"]), Ok(Command::Version)));
        assert!(usage().ends_with(env!("CARGO_PKG_VERSION")));
    }
}
