//! The command line: upstream stalld's options, defaults, ranges and messages.
//!
//! Usage errors print the usage text and the message to stderr and exit with 22 (EINVAL), as
//! the C stalld does, so wrappers that check for it keep working. Numbers may carry a unit
//! (`-t 500ms`, `-p 1s`); a bare number keeps upstream's unit.

use std::ffi::OsString;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::config::{BackendChoice, BoostParams, Config};
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
    #[arg(short = 'l', long = "log_only", action = ArgAction::SetTrue)]
    log_only: bool,
    #[arg(short = 'v', long = "verbose", action = ArgAction::SetTrue)]
    verbose: bool,
    #[arg(short = 'f', long = "foreground", action = ArgAction::SetTrue)]
    foreground: bool,
    #[arg(short = 'h', long = "help", action = ArgAction::SetTrue)]
    help: bool,
    #[arg(short = 'V', long = "version", action = ArgAction::SetTrue)]
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
    #[arg(short = 'b', long = "backend")]
    backend: Option<String>,
    #[arg(short = 'P', long = "pidfile")]
    pidfile: Option<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Config),
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
        "usage: stalld [-l] [-v] [-f] [-h] [-V] [-b backend] [-c cpu-list] [-p ns] [-r ns] \
         [-d s] [-t s] [-g s] [--pidfile file]

        logging options:
          -l/--log_only: only log information (do not boost)
          -v/--verbose: print info to stderr (implies -f)
        startup options:
          -f/--foreground: run in foreground [implied with -v]
          -P/--pidfile: write daemon pid to specified file
        backend options:
          -b/--backend: queue_track (Q, default where BPF loads) or sched_debug (S)
        boosting options:
          -p/--boost_period: SCHED_DEADLINE period [ns] (default 1000000000)
          -r/--boost_runtime: SCHED_DEADLINE runtime [ns] (default 20000)
          -d/--boost_duration: how long the task is boosted [s] (default 3)
        monitoring options:
          -t/--starving_threshold: how long a task may wait before it is boosted [s] (default 20)
          -g/--granularity: sched_debug polling interval [s] (default 5)
          -c/--cpu: list of CPUs to monitor (default: all)
        numbers may carry a unit: ns, us, ms, s, min (e.g. -t 500ms, -p 1s)
        -h/--help: print this menu
        -V/--version: print the version

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
    let backend = match args.backend.as_deref() {
        None => BackendChoice::Auto,
        Some("queue_track" | "Q") => BackendChoice::QueueTrack,
        Some("sched_debug" | "S") => BackendChoice::SchedDebug,
        Some(other) => return Err(UsageError(format!("unknown backend {other}"))),
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

    Ok(Command::Run(Config {
        log_only: args.log_only,
        verbose: args.verbose,
        foreground: args.foreground || args.verbose,
        threshold,
        granularity,
        boost: BoostParams {
            runtime,
            period,
            duration,
        },
        cpus,
        backend,
        pidfile: args.pidfile.map(Into::into),
    }))
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
            Command::Run(config) => Ok(config),
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
    fn help_and_version() {
        assert!(matches!(parse(["-h"]), Ok(Command::Help)));
        assert!(matches!(parse(["--version"]), Ok(Command::Version)));
        assert!(usage().ends_with(env!("CARGO_PKG_VERSION")));
    }
}
