//! The command line: upstream stalld's options, defaults, ranges and messages. The options
//! themselves are defined once, in [`args`]; the usage screen here, and the man page and
//! shell completions (build.rs) are generated from that definition.
//!
//! Usage errors print the usage text and the message to stderr and exit with 22 (EINVAL), as
//! the C stalld does, so wrappers that check for it keep working. Numbers may carry a unit
//! (`-t 1500ms`, `-p 1s`); a bare number keeps upstream's unit.

use std::ffi::OsString;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::config::{
    BackendChoice, BoostMode, BoostParams, BoostPolicy, Config, Denylist, Detection, EventsTarget,
    MetricsAddr, Mode, Process, SinkOptions,
};
use crate::cpuset::{configured_cpus, CpuSet};

pub mod args;

use args::{subcommand_synopsis, synopsis_words};
pub use args::{Action, Args};

/// Exit status of every command-line error (EINVAL), as upstream.
pub const USAGE_EXIT_CODE: i32 = 22;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    /// `-h`: usage on stderr, exit 0.
    Help,
    /// `-V`/`--version`: the version on stdout, exit 0.
    Version,
    /// A subcommand (`throttle`, `parse-sched-debug`, ...).
    Tool(Action),
}

/// A rejected command line: the message for stderr (printed after the usage text).
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

/// The usage screen, in the C stalld's layout, generated from [`Args`]: a synopsis, then
/// each option group, then the subcommands. Printed on stderr by `-h` and before every usage
/// error.
pub fn usage() -> String {
    use std::fmt::Write;
    let mut command = Args::command();
    // Fills in group memberships.
    command.build();
    let mut text = String::new();
    let synopsis = synopsis_words(&command);
    let mut line = String::from("usage: stalld");
    for word in synopsis {
        if line.len() + 1 + word.len() > 78 {
            let _ = writeln!(text, "{line}");
            line = " ".repeat(13);
        }
        line.push(' ');
        line.push_str(&word);
    }
    let _ = writeln!(text, "{line}");
    for sub in command.get_subcommands() {
        let _ = writeln!(text, "       stalld {}", subcommand_synopsis(sub));
    }
    let _ = writeln!(text);
    let headings = [
        args::LOGGING,
        args::STARTUP,
        args::MODES,
        args::BACKEND,
        args::BOOSTING,
        args::MONITORING,
    ];
    for heading in headings {
        let _ = writeln!(text, "        {heading}:");
        for arg in command
            .get_arguments()
            .filter(|arg| arg.get_help_heading() == Some(heading))
        {
            let _ = writeln!(text, "          {}", option_line(arg));
        }
    }
    let _ = writeln!(text, "        {}", args::UNITS_NOTE);
    for arg in command
        .get_arguments()
        .filter(|arg| arg.get_help_heading().is_none() && !arg.is_positional())
    {
        let _ = writeln!(text, "        {}", option_line(arg));
    }
    let _ = writeln!(text, "        subcommands:");
    for sub in command.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let _ = writeln!(text, "          {}: {about}", subcommand_synopsis(sub));
    }
    let _ = write!(text, "\n  stalld version: {}", env!("CARGO_PKG_VERSION"));
    text
}

/// `-l/--log_only: only log information (do not boost)`.
fn option_line(arg: &clap::Arg) -> String {
    let names: Vec<String> = arg
        .get_short()
        .map(|short| format!("-{short}"))
        .into_iter()
        .chain(arg.get_long().map(|long| format!("--{long}")))
        .collect();
    let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
    format!("{}: {help}", names.join("/"))
}

pub fn parse<I, T>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let args = Args::try_parse_from(&args).map_err(|_| {
        // A subcommand used wrongly gets its own synopsis; anything else upstream's words.
        let named = args.first().and_then(|first| {
            Args::command()
                .get_subcommands()
                .find(|sub| first == sub.get_name())
                .map(subcommand_synopsis)
        });
        UsageError(named.map_or_else(|| "Invalid option".into(), |s| format!("usage: stalld {s}")))
    })?;
    if let Some(action) = args.action {
        return Ok(Command::Tool(action));
    }
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
    let events = args.events.as_deref().map(EventsTarget::parse);
    if matches!(
        &events,
        Some(EventsTarget::File(path) | EventsTarget::Fifo(path)) if path.as_os_str().is_empty()
    ) {
        return Err(UsageError(
            "--events needs a file name, fifo:PATH, or - for stdout".into(),
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
        boost_mode: if args.log_only {
            BoostMode::LogOnly
        } else {
            BoostMode::Boost
        },
        sinks: SinkOptions {
            verbose: args.verbose,
            kmsg: args.log_kmsg,
            syslog: args.log_syslog,
            events,
        },
        detection: Detection {
            mode,
            threshold,
            granularity,
            idle_detection: !args.no_idle_detect,
        },
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
        ignore_threads: denylist(&args.ignore_threads, "-i")?,
        ignore_processes: denylist(&args.ignore_processes, "-I")?,
        backend,
        process: Process {
            foreground: args.foreground || args.verbose,
            affinity,
            reservation,
            systemd: args.systemd,
            pidfile: args.pidfile.map(Into::into),
            allow_other_instances: args.allow_other_instances,
            stand_aside: args.stand_aside,
        },
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
        assert_eq!(config.detection.threshold, Duration::from_secs(20));
        assert_eq!(config.detection.granularity, Duration::from_secs(5));
        assert_eq!(config.boost.period, Duration::from_secs(1));
        assert_eq!(config.boost.runtime, Duration::from_micros(20));
        assert_eq!(config.boost.duration, Duration::from_secs(3));
        assert_eq!(config.backend, BackendChoice::Auto);
        assert_eq!(config.boost_mode, BoostMode::Boost);
        assert!(!config.sinks.verbose && !config.process.foreground);
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
        assert_eq!(config.detection.threshold, Duration::from_millis(1500));
        assert_eq!(config.boost.period, Duration::from_millis(500));
        assert_eq!(config.boost.runtime, Duration::from_micros(50));
        let config = run(&["-t", "2min", "-g", "1"]).unwrap();
        assert_eq!(config.detection.threshold, Duration::from_secs(120));
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
        assert_eq!(config.detection.threshold, Duration::from_secs(5));
        assert_eq!(config.boost_mode, BoostMode::LogOnly);
        assert!(config.sinks.verbose && config.process.foreground);
        assert_eq!(config.backend, BackendChoice::SchedDebug);
        assert_eq!(config.cpus.iter().collect::<Vec<_>>(), vec![0]);
        assert_eq!(
            run(&["-b", "queue_track"]).unwrap().backend,
            BackendChoice::QueueTrack
        );
    }

    #[test]
    fn modes_last_one_wins_and_flags_map() {
        assert_eq!(run(&[]).unwrap().detection.mode, Mode::Power);
        assert_eq!(run(&["-A"]).unwrap().detection.mode, Mode::Aggressive);
        assert_eq!(run(&["-A", "-M"]).unwrap().detection.mode, Mode::Adaptive);
        assert_eq!(run(&["-M", "-O"]).unwrap().detection.mode, Mode::Power);
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
        assert!(
            config.sinks.kmsg
                && config.sinks.syslog
                && !config.detection.idle_detection
                && config.process.systemd
        );
        assert_eq!(config.boost.policy, BoostPolicy::Fifo);
        assert_eq!(config.process.reservation, Some(20));
        assert_eq!(config.process.affinity, CpuSet::parse_list("0", 1));
        assert_eq!(config.process.pidfile, Some("/run/x.pid".into()));
        assert_eq!(
            run(&["-P", "/run/y.pid"]).unwrap().process.pidfile,
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
        assert_eq!(config.sinks.events, Some(EventsTarget::Stdout));
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
        for empty in ["", "fifo:"] {
            assert_eq!(
                error(&["--events", empty]),
                "--events needs a file name, fifo:PATH, or - for stdout"
            );
        }
        assert_eq!(
            run(&["--events", "fifo:/run/ship.fifo"])
                .unwrap()
                .sinks
                .events,
            Some(EventsTarget::Fifo("/run/ship.fifo".into()))
        );
        assert_eq!(
            run(&["--events", "./fifo:x"]).unwrap().sinks.events,
            Some(EventsTarget::File("./fifo:x".into()))
        );
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(["-h"]), Ok(Command::Help)));
        assert!(matches!(parse(["--version"]), Ok(Command::Version)));
        assert!(usage().ends_with(env!("CARGO_PKG_VERSION")));
    }

    /// getopt_long semantics: harnesses prepend defaults (`-g 1`) to the caller's options, so
    /// any option may come again and the last one wins; -i and -I accumulate.
    #[test]
    fn a_repeated_option_takes_the_last_value() {
        let config = run(&[
            "-t",
            "5",
            "-g",
            "1",
            "-v",
            "-l",
            "-t",
            "7",
            "-g",
            "2",
            "-v",
            "-l",
            "-b",
            "S",
            "-b",
            "Q",
            "-c",
            "0",
            "-c",
            "0-0",
            "-P",
            "/a",
            "--pidfile",
            "/b",
            "-d",
            "1",
            "-d",
            "2",
            "-N",
            "-N",
            "-k",
            "-k",
            "-i",
            "x",
            "-i",
            "y,z",
            "-I",
            "p",
            "--ignore_processes",
            "q",
        ])
        .unwrap();
        assert_eq!(config.detection.threshold, Duration::from_secs(7));
        assert_eq!(config.detection.granularity, Duration::from_secs(2));
        assert_eq!(config.boost.duration, Duration::from_secs(2));
        assert!(
            config.sinks.verbose
                && config.boost_mode == BoostMode::LogOnly
                && config.sinks.kmsg
                && !config.detection.idle_detection
        );
        assert_eq!(config.backend, BackendChoice::QueueTrack);
        assert_eq!(config.process.pidfile, Some("/b".into()));
        assert_eq!(config.ignore_threads.0.len(), 3);
        assert_eq!(config.ignore_processes.0.len(), 2);
        // Every option of the definition may be repeated.
        for arg in Args::command()
            .get_arguments()
            .filter(|a| !a.is_positional())
        {
            let name = match arg.get_short() {
                Some(short) => format!("-{short}"),
                None => format!("--{}", arg.get_long().unwrap()),
            };
            let value = example_value(arg);
            let mut args = vec![name.as_str()];
            args.extend(value);
            let twice: Vec<&str> = args.iter().chain(args.iter()).copied().collect();
            assert!(parse(twice.iter().copied()).is_ok(), "{twice:?} rejected");
        }
    }

    /// A value every option accepts alone (flags take none).
    fn example_value(arg: &clap::Arg) -> Option<&'static str> {
        if !args::takes_value(arg) {
            return None;
        }
        if arg.get_long() == Some("metrics") {
            return Some("127.0.0.1:9772");
        }
        Some(match arg.get_short() {
            Some('a' | 'c') => "0",
            Some('R') => "20",
            Some('b') => "S",
            Some('p') => "1000000000",
            Some('r') => "20000",
            Some('d') => "3",
            Some('t') => "20",
            Some('g') => "5",
            Some('P') => "/run/stalld.pid",
            _ => "x",
        })
    }

    #[test]
    fn subcommands_parse_and_misuse_names_their_synopsis() {
        assert!(matches!(
            parse(["throttle", "show"]),
            Ok(Command::Tool(Action::Throttle { command })) if command == "show"
        ));
        assert!(matches!(
            parse(["parse-sched-debug", "-"]),
            Ok(Command::Tool(Action::ParseSchedDebug { file })) if file.as_os_str() == "-"
        ));
        assert_eq!(
            parse(["throttle", "sideways"]).unwrap_err().0,
            "usage: stalld throttle off|on|show"
        );
        assert_eq!(
            parse(["parse-sched-debug"]).unwrap_err().0,
            "usage: stalld parse-sched-debug FILE|-"
        );
        assert_eq!(parse(["nonsense"]).unwrap_err().0, "Invalid option");
        assert_eq!(
            parse(["-v", "throttle", "on"]).unwrap_err().0,
            "Invalid option"
        );
    }

    /// The usage screen is made from the definition: every option and subcommand is in it,
    /// and every `-x/--long` it shows is accepted under both names.
    #[test]
    fn usage_and_definition_agree() {
        let text = usage();
        let command = Args::command();
        let options = || command.get_arguments().filter(|a| !a.is_positional());
        for arg in options() {
            let long = format!(
                "--{}",
                arg.get_long().expect("every option has a long name")
            );
            let (shown, synopsis) = match arg.get_short() {
                Some(short) => (format!("-{short}/{long}: "), format!("-{short}")),
                None => (format!("        {long}: "), long.clone()),
            };
            assert!(text.contains(&shown), "{long} missing:\n{text}");
            assert!(
                text.contains(&format!("[{synopsis}")) || text.contains(&format!("|{synopsis}")),
                "{long} not in the synopsis"
            );
        }
        for sub in command.get_subcommands() {
            let line = format!("       stalld {}", sub.get_name());
            assert!(text.contains(&line), "{text}");
        }
        // Every `-x/--long: ...` or `--long: ...` line names options that parse.
        let shown: Vec<Vec<&str>> = text
            .lines()
            .filter_map(|line| line.trim().split_once(": "))
            .map(|(names, _)| names.split('/').collect::<Vec<_>>())
            .filter(|names| names.iter().all(|n| n.starts_with('-') && !n.contains(' ')))
            .collect();
        assert_eq!(shown.len(), options().count(), "{shown:?}");
        for names in shown {
            let long = names.last().unwrap();
            let arg = options()
                .find(|a| a.get_long() == long.strip_prefix("--"))
                .unwrap_or_else(|| panic!("{long} is shown but not defined"));
            for &name in &names {
                let mut args = vec![name];
                args.extend(example_value(arg));
                assert!(parse(args.iter().copied()).is_ok(), "{args:?} rejected");
            }
        }
    }
}
