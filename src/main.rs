//! `stalld`: parse the command line and hand the configuration to the daemon.

use std::io::Write;
use std::process::ExitCode;

use stalld::cli::{self, Action, Command, UsageError, USAGE_EXIT_CODE};

fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let invoked_as = argv.next().unwrap_or_default();
    let mut args: Vec<std::ffi::OsString> = argv.collect();
    // Upstream's unit runs `throttlectl off|on`: the same as `stalld throttle off|on`.
    if std::path::Path::new(&invoked_as)
        .file_name()
        .is_some_and(|name| name == "throttlectl")
    {
        args.insert(0, "throttle".into());
    }
    match cli::parse(args) {
        // One arm per subcommand of `cli::args::Action`.
        Ok(Command::Tool(Action::Throttle { command })) => throttle(&command),
        Ok(Command::Tool(Action::ParseSchedDebug { file })) => replay_sched_debug(&file),
        Ok(Command::Tool(Action::Status { json })) => status(json),
        Ok(Command::Tool(Action::Check { json, options })) => check(json, &options),
        Ok(Command::Help) => {
            eprintln!("{}", cli::usage());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Run(config)) => match stalld::daemon::run(*config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("stalld: {error:#}");
                ExitCode::FAILURE
            }
        },
        Err(UsageError(message)) => {
            eprintln!("{}\n{message}", cli::usage());
            ExitCode::from(USAGE_EXIT_CODE as u8)
        }
    }
}

/// `stalld status [--json]`: asks the running daemon.
fn status(json: bool) -> ExitCode {
    let (code, output) = stalld::daemon::status_client(json);
    if code == 0 {
        let _ = writeln!(std::io::stdout(), "{output}");
    } else {
        eprintln!("{output}");
    }
    ExitCode::from(code)
}

/// `stalld check [--json] [options]`: a verdict on the machine for the daemon's options.
/// `--json` may also come among the options.
fn check(json: bool, args: &[std::ffi::OsString]) -> ExitCode {
    let json = json || args.iter().any(|arg| arg == "--json");
    let options: Vec<&std::ffi::OsString> = args.iter().filter(|arg| *arg != "--json").collect();
    let config = match cli::parse(options) {
        Ok(Command::Run(config)) => config,
        Ok(_) => {
            eprintln!("usage: stalld check [--json] [stalld options]");
            return ExitCode::from(USAGE_EXIT_CODE as u8);
        }
        Err(UsageError(message)) => {
            eprintln!("stalld check: {message}");
            return ExitCode::from(USAGE_EXIT_CODE as u8);
        }
    };
    let report = stalld::check::run(&config);
    let output = if json { report.json() } else { report.text() };
    let _ = writeln!(std::io::stdout(), "{output}");
    ExitCode::from(report.exit_code())
}

/// `stalld throttle off|on|show`, also installed as `throttlectl` for upstream's unit files.
fn throttle(command: &str) -> ExitCode {
    match stalld::daemon::throttlectl(command) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("stalld: {error:#}");
            ExitCode::FAILURE
        }
    }
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
            eprintln!("stalld: {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    };
    match stalld::backend::sched_debug::parse::replay_json(&text) {
        Ok(json) => {
            let _ = writeln!(std::io::stdout(), "{json}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("stalld: {error}");
            ExitCode::FAILURE
        }
    }
}
