//! `stalld`: parse the command line and hand the configuration to the daemon.
//!
//! One executable, several names: `stalld`, `throttlectl` (upstream's helper) and
//! `stalld-guardian` (the daemon's guardian process). Every write to stdout or stderr here
//! ignores its error: a closed terminal must not turn into a panic.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use stalld::cli::{self, Command, UsageError, USAGE_EXIT_CODE};

/// Prints to stderr; a closed or broken stderr is not an error worth dying for.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Prints to stdout, likewise.
fn print(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let invoked_as = argv.next().unwrap_or_default();
    let args: Vec<OsString> = argv.collect();
    let name = std::path::Path::new(&invoked_as).file_name();
    if name.is_some_and(|name| name == "throttlectl") {
        return throttle(&args);
    }
    if name.is_some_and(|name| name == stalld::daemon::GUARDIAN_NAME) {
        return ExitCode::from(stalld::daemon::guardian_main(&args) as u8);
    }
    match args.first().and_then(|a| a.to_str()) {
        Some("parse-sched-debug") => return replay_sched_debug(&args[1..]),
        Some("throttle") => return throttle(&args[1..]),
        Some("restore") => return restore(&args[1..]),
        _ => {}
    }
    match cli::parse(args) {
        Ok(Command::Help) => {
            say(&cli::usage());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            print(env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => match stalld::daemon::run(*config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                say(&format!("stalld: {error:#}"));
                ExitCode::FAILURE
            }
        },
        Err(UsageError(message)) => {
            say(&format!("{}\n{message}", cli::usage()));
            ExitCode::from(USAGE_EXIT_CODE as u8)
        }
    }
}

/// Runs a subcommand that reports one line or fails with one.
fn report(result: anyhow::Result<String>) -> ExitCode {
    match result {
        Ok(report) => {
            print(&report);
            ExitCode::SUCCESS
        }
        Err(error) => {
            say(&format!("stalld: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

/// `stalld throttle off|on|show`, also installed as `throttlectl` for upstream's unit files.
fn throttle(args: &[OsString]) -> ExitCode {
    let [command] = args else {
        say("usage: stalld throttle off|on|show");
        return ExitCode::from(USAGE_EXIT_CODE as u8);
    };
    report(stalld::daemon::throttlectl(&command.to_string_lossy()))
}

/// `stalld restore`: undoes what a stalld that is gone left (the unit's ExecStopPost).
fn restore(args: &[OsString]) -> ExitCode {
    if !args.is_empty() {
        say("usage: stalld restore");
        return ExitCode::from(USAGE_EXIT_CODE as u8);
    }
    if !stalld::sys::is_root() {
        say("stalld: stalld restore needs root permission");
        return ExitCode::FAILURE;
    }
    report(stalld::daemon::restore_leftovers())
}

/// `stalld parse-sched-debug FILE|-`: prints what the parser reads in a saved sched/debug file,
/// so a bug report's attachment can be replayed.
fn replay_sched_debug(args: &[OsString]) -> ExitCode {
    let [path] = args else {
        say("usage: stalld parse-sched-debug FILE|-");
        return ExitCode::from(USAGE_EXIT_CODE as u8);
    };
    let text = if path == "-" {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read(path)
    };
    let text = match text {
        Ok(text) => text,
        Err(error) => {
            say(&format!("stalld: {}: {error}", path.to_string_lossy()));
            return ExitCode::FAILURE;
        }
    };
    match stalld::backend::sched_debug::parse::replay_json(&text) {
        Ok(json) => {
            print(&json.to_string());
            ExitCode::SUCCESS
        }
        Err(error) => {
            say(&format!("stalld: {error}"));
            ExitCode::FAILURE
        }
    }
}
