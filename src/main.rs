//! `stalld`: parse the command line and hand the configuration to the daemon.
//!
//! One executable, several names: `stalld`, `throttlectl` (upstream's helper) and
//! `stalld-guardian` (the daemon's guardian process). Every write to stdout or stderr here
//! ignores its error: a closed terminal must not turn into a panic.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use stalld::cli::{self, Action, Command, UsageError, USAGE_EXIT_CODE};

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
    let mut args: Vec<OsString> = argv.collect();
    let name = std::path::Path::new(&invoked_as).file_name();
    if name.is_some_and(|name| name == stalld::daemon::GUARDIAN_NAME) {
        return ExitCode::from(stalld::daemon::guardian_main(&args) as u8);
    }
    // Upstream's unit runs `throttlectl off|on`: the same as `stalld throttle off|on`.
    if name.is_some_and(|name| name == "throttlectl") {
        args.insert(0, "throttle".into());
    }
    match cli::parse(args) {
        // One arm per subcommand of `cli::args::Action`.
        Ok(Command::Tool(Action::Throttle { command })) => {
            report(stalld::daemon::throttlectl(&command))
        }
        Ok(Command::Tool(Action::Restore)) => restore(),
        Ok(Command::Tool(Action::ParseSchedDebug { file })) => replay_sched_debug(&file),
        Ok(Command::Tool(Action::Status { json })) => status(json),
        Ok(Command::Tool(Action::Check { json, options })) => check(json, &options),
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
                ExitCode::from(stalld::daemon::exit_code(&error))
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

/// `stalld restore`: undoes what a stalld that is gone left (the unit's ExecStopPost).
fn restore() -> ExitCode {
    if !stalld::sys::is_root() {
        say("stalld: stalld restore needs root permission");
        return ExitCode::FAILURE;
    }
    report(stalld::daemon::restore_leftovers())
}

/// `stalld status [--json]`: asks the running daemon.
fn status(json: bool) -> ExitCode {
    let (code, output) = stalld::daemon::status_client(json);
    if code == 0 {
        print(&output);
    } else {
        say(&output);
    }
    ExitCode::from(code)
}

/// `stalld check [--json] [options]`: a verdict on the machine for the daemon's options.
/// `--json` may also come among the options.
fn check(json: bool, args: &[OsString]) -> ExitCode {
    let json = json || args.iter().any(|arg| arg == "--json");
    let options: Vec<&OsString> = args.iter().filter(|arg| *arg != "--json").collect();
    let config = match cli::parse(options) {
        Ok(Command::Run(config)) => config,
        Ok(_) => {
            say("usage: stalld check [--json] [stalld options]");
            return ExitCode::from(USAGE_EXIT_CODE as u8);
        }
        Err(UsageError(message)) => {
            say(&format!("stalld check: {message}"));
            return ExitCode::from(USAGE_EXIT_CODE as u8);
        }
    };
    let report = stalld::check::run(&config);
    print(&if json { report.json() } else { report.text() });
    ExitCode::from(report.exit_code())
}

/// `stalld parse-sched-debug FILE|-`: prints what the parser reads in a saved sched/debug file,
/// so a bug report's attachment can be replayed.
fn replay_sched_debug(path: &std::path::Path) -> ExitCode {
    let text = if path.as_os_str() == "-" {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut text).map(|_| text)
    } else {
        std::fs::read(path)
    };
    let text = match text {
        Ok(text) => text,
        Err(error) => {
            say(&format!("stalld: {}: {error}", path.display()));
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
