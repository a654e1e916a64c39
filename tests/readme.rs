//! The README's commands against the current command line (issue 18.9). Every `stalld ...`
//! and `throttlectl ...` command line in the README's code blocks, every one in its inline
//! code that has no placeholder, and the man page's EXAMPLES must parse, with clap and with
//! the checks `stalld` makes after it (ranges, `-d` at most `-t`, ...). The blocks marked
//! `<!-- readme-test: run ... -->` run against the built binary: `exit=A,B` lists the exit
//! statuses the README promises, `for=Ns` marks a daemon, which must still run after that long
//! and then stop on SIGTERM (as root, under the starvation lock, since other tests count the
//! processes named stalld). Every command run must leave RT throttling as it found it: the
//! README calls these the ones that change nothing. The block marked
//! `<!-- readme-test: envfile -->` is an environment-file example: over the shipped
//! `systemd/stalld.conf`, the unit's ExecStart must make a command line that parses.

mod common;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use clap::Parser;
use common::unit_file::{exec_start_args, variables};
use stalld::cli::{self, Action, Args, Command};

const README: &str = include_str!("../README.md");
const STALLD: &str = env!("CARGO_BIN_EXE_stalld");

/// A code block of the README and the `readme-test` marker before it, if any.
#[derive(Debug)]
struct Block {
    /// Line number (1-based) of the block's first line.
    line: usize,
    marker: Option<String>,
    lines: Vec<String>,
}

/// Fenced and indented code blocks. Indented ones are lines starting with four spaces after a
/// blank line (the README's list items continue with two).
fn code_blocks(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let starts_fenced = lines[i].starts_with("```");
        let starts_indented =
            lines[i].starts_with("    ") && (i == 0 || lines[i - 1].trim().is_empty());
        if !starts_fenced && !starts_indented {
            i += 1;
            continue;
        }
        let marker = lines[..i]
            .iter()
            .rev()
            .find(|line| !line.trim().is_empty())
            .and_then(|line| {
                let inner = line.trim().strip_prefix("<!-- readme-test:")?;
                Some(inner.strip_suffix("-->")?.trim().to_owned())
            });
        let first = i;
        let mut body = Vec::new();
        if starts_fenced {
            i += 1;
            while i < lines.len() && !lines[i].starts_with("```") {
                body.push(lines[i].to_owned());
                i += 1;
            }
            i += 1;
        } else {
            while i < lines.len() && (lines[i].starts_with("    ") || lines[i].trim().is_empty()) {
                if let Some(code) = lines[i].strip_prefix("    ") {
                    body.push(code.to_owned());
                }
                i += 1;
            }
        }
        blocks.push(Block {
            line: first + 1,
            marker,
            lines: body,
        });
    }
    blocks
}

/// The stalld command lines of one shell line, as the argument lists stalld gets
/// (`throttlectl X` is `stalld throttle X`): its simple commands, split at `&&`, `||`, `;` and
/// `|`, whose program is `stalld`, a path ending in `/stalld`, or `throttlectl`.
fn stalld_commands(line: &str) -> Result<Vec<Vec<String>>, String> {
    if !line
        .split_whitespace()
        .any(|word| word == "stalld" || word.ends_with("/stalld") || word == "throttlectl")
    {
        return Ok(Vec::new());
    }
    let words = shlex::split(line).ok_or_else(|| format!("cannot split {line:?}"))?;
    let mut commands = Vec::new();
    for simple in words.split(|word| ["&&", "||", ";", "|"].contains(&word.as_str())) {
        match simple.split_first() {
            Some((program, args)) if program == "stalld" || program.ends_with("/stalld") => {
                commands.push(args.to_vec());
            }
            Some((program, args)) if program == "throttlectl" => {
                commands.push(
                    std::iter::once("throttle".to_owned())
                        .chain(args.to_vec())
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(commands)
}

/// Inline code that is a whole stalld command with nothing to fill in: `stalld` followed by an
/// option or a subcommand (`stalld shutting down` is a log line), or `throttlectl`; not a
/// synopsis (`[--json]`, `off|on|show`), no `$VARIABLE`, no `FILE` or `N`, no `...`.
fn inline_commands(markdown: &str) -> Vec<String> {
    let subcommands: Vec<String> = <Args as clap::CommandFactory>::command()
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    let span = regex::Regex::new(r"`((?:stalld|throttlectl) [^`]+)`").unwrap();
    let placeholder = regex::Regex::new(r"[\[\]|$<>…]|\.\.\.|(^|\s)[A-Z][A-Z_]*\b").unwrap();
    span.captures_iter(markdown)
        .map(|found| found[1].to_owned())
        .filter(|text| !placeholder.is_match(text))
        .filter(
            |text| match text.split_whitespace().collect::<Vec<_>>()[..] {
                ["throttlectl", ..] => true,
                [_, first, ..] => first.starts_with('-') || subcommands.iter().any(|s| s == first),
                _ => false,
            },
        )
        .collect()
}

/// What stalld does with `args` short of running it: clap's parse, then the checks after it,
/// also for the options `stalld check` is given.
fn parses(args: &[String]) -> Result<(), String> {
    Args::try_parse_from(args).map_err(|error| format!("clap: {error}"))?;
    match full_parse(args)? {
        Command::Tool(Action::Check { options, .. }) => {
            let options: Vec<String> = options
                .iter()
                .filter(|option| *option != "--json")
                .map(|option| option.to_string_lossy().into_owned())
                .collect();
            match full_parse(&options)? {
                Command::Run(_) => Ok(()),
                other => Err(format!("stalld check takes daemon options, not {other:?}")),
            }
        }
        _ => Ok(()),
    }
}

/// `cli::parse`, where a CPU list this machine lacks (the README's examples name a production
/// machine's CPUs: `-c 2-15`) is replaced by CPU 0, so that every other check still runs.
fn full_parse(args: &[String]) -> Result<Command, String> {
    let parse = |args: &[String]| cli::parse(args.iter().map(OsString::from).collect::<Vec<_>>());
    match parse(args) {
        Ok(command) => Ok(command),
        Err(cli::UsageError(message))
            if message.starts_with("Error parsing the cpu list")
                || message.starts_with("invalid CPU affinity") =>
        {
            let mut on_cpu_0 = args.to_vec();
            for i in 0..on_cpu_0.len() {
                let arg = on_cpu_0[i].clone();
                if ["-c", "--cpu", "-a", "--affinity"].contains(&arg.as_str()) {
                    if let Some(list) = on_cpu_0.get_mut(i + 1) {
                        *list = "0".into();
                    }
                } else if let Some((name, _)) = arg.split_once('=') {
                    if name == "--cpu" || name == "--affinity" {
                        on_cpu_0[i] = format!("{name}=0");
                    }
                } else if arg.len() > 2 && (arg.starts_with("-c") || arg.starts_with("-a")) {
                    on_cpu_0[i] = format!("{}0", &arg[..2]);
                }
            }
            parse(&on_cpu_0).map_err(|cli::UsageError(message)| message)
        }
        Err(cli::UsageError(message)) => Err(message),
    }
}

/// Every stalld command of `markdown` (code blocks and inline), each with where it is and why
/// it does not parse.
fn refused_commands(markdown: &str) -> (usize, Vec<String>) {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    for block in code_blocks(markdown) {
        for (offset, line) in block.lines.iter().enumerate() {
            let place = format!("line {}: {line}", block.line + offset);
            match stalld_commands(line) {
                Ok(commands) => {
                    found.extend(commands.into_iter().map(|args| (place.clone(), args)))
                }
                Err(why) => refused.push(format!("{place}: {why}")),
            }
        }
    }
    for text in inline_commands(markdown) {
        let commands = stalld_commands(&text).unwrap_or_default();
        found.extend(commands.into_iter().map(|args| (format!("`{text}`"), args)));
    }
    for (place, args) in &found {
        if let Err(why) = parses(args) {
            refused.push(format!("{place}: {why}"));
        }
    }
    (found.len(), refused)
}

#[test]
fn every_stalld_command_in_the_readme_parses() {
    let (checked, refused) = refused_commands(README);
    assert!(
        refused.is_empty(),
        "README commands the CLI refuses:\n{}",
        refused.join("\n")
    );
    // The first run's and the unit's commands at least: an extraction that finds nothing
    // would pass vacuously.
    assert!(
        checked >= 10,
        "only {checked} stalld commands found in the README"
    );
}

#[test]
fn every_man_page_example_parses() {
    for (command, _) in cli::args::MAN_EXAMPLES {
        let found = stalld_commands(command).unwrap();
        assert_eq!(found.len(), 1, "{command} is not one stalld command");
        parses(&found[0]).unwrap_or_else(|why| panic!("man page example {command}: {why}"));
    }
}

/// The check above fails on what it must catch: an unknown option, a threshold below the
/// boost duration, bad options given to `stalld check`, a `throttlectl` word that does not
/// exist; and ignores what is not a stalld command or is a synopsis.
#[test]
fn the_check_catches_commands_that_no_longer_parse() {
    let markdown = [
        "text `stalld --json`, `stalld check [--json] [options]` and `stalld shutting down`",
        "",
        "    stalld --no_such_option",
        "    stalld -f -t 2   # -d is 3 by default",
        "    make && stalld check -c 2-4095 -t 500ms",
        "    throttlectl maybe",
        "    stalld: kworker/1:2-87 starved on CPU 1 for 20 seconds",
        "    journalctl -u stalld",
        "    stalld -l -f -v",
    ]
    .join("\n");
    let markdown = markdown.as_str();
    let (checked, refused) = refused_commands(markdown);
    assert_eq!(checked, 6, "{refused:#?}");
    let expected = [
        "line 3: stalld --no_such_option: clap",
        "line 4: stalld -f -t 2   # -d is 3 by default: the boost duration cannot be longer",
        "line 5: make && stalld check -c 2-4095 -t 500ms: the boost duration cannot be longer",
        "line 6: throttlectl maybe: clap",
        "`stalld --json`: clap",
    ];
    assert_eq!(refused.len(), expected.len(), "{refused:#?}");
    for (found, wanted) in refused.iter().zip(expected) {
        assert!(found.starts_with(wanted), "{found:?} is not {wanted:?}");
    }
}

/// `exit=0,1,2` and `for=5s` of a `run` marker.
struct RunSpec {
    exits: Vec<i32>,
    runs_for: Option<Duration>,
}

fn run_spec(marker: &str) -> Option<RunSpec> {
    let mut words = marker.split_whitespace();
    if words.next() != Some("run") {
        return None;
    }
    let mut spec = RunSpec {
        exits: vec![0],
        runs_for: None,
    };
    for word in words {
        match word.split_once('=') {
            Some(("exit", codes)) => {
                spec.exits = codes.split(',').map(|c| c.parse().unwrap()).collect();
            }
            Some(("for", time)) => {
                let seconds = time.strip_suffix('s').and_then(|s| s.parse().ok());
                spec.runs_for = Some(Duration::from_secs(seconds.expect("for=Ns")));
            }
            _ => panic!("unknown word {word:?} in the marker {marker:?}"),
        }
    }
    Some(spec)
}

fn runnable_blocks() -> Vec<(RunSpec, Vec<Vec<String>>)> {
    let blocks: Vec<_> = code_blocks(README)
        .into_iter()
        .filter_map(|block| {
            let spec = run_spec(block.marker.as_deref()?)?;
            let commands = block
                .lines
                .iter()
                .map(|line| {
                    let mut found = stalld_commands(line).unwrap();
                    assert_eq!(
                        found.len(),
                        1,
                        "line {}: run only stalld commands",
                        block.line
                    );
                    found.remove(0)
                })
                .collect();
            Some((spec, commands))
        })
        .collect();
    assert!(
        !blocks.is_empty(),
        "no <!-- readme-test: run --> block in the README"
    );
    blocks
}

/// Runs the built stalld with `args`, its status socket in a scratch directory (so that a
/// stalld this machine runs is neither asked nor disturbed).
fn spawn(args: &[String], socket: &std::path::Path) -> common::Daemon {
    let mut argv = vec![
        format!("STALLD_STATUS_SOCKET={}", socket.display()),
        STALLD.to_owned(),
    ];
    argv.extend(args.iter().cloned());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    common::Daemon::spawn_program("env", &argv)
}

fn scratch_socket(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("stalld-readme-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("stalld.sock");
    (dir, socket)
}

/// The command ended with a status its marker allows, and RT throttling is as it was.
fn ended_as_said(
    args: &[String],
    code: Option<i32>,
    spec: &RunSpec,
    run: &common::Daemon,
    rt_before: i64,
) {
    assert!(
        code.is_some_and(|code| spec.exits.contains(&code)),
        "stalld {args:?} ended with {code:?}, not one of {:?}: {:#?}",
        spec.exits,
        run.lines()
    );
    assert_eq!(
        common::read_rt_runtime(),
        rt_before,
        "stalld {args:?} changed RT throttling"
    );
}

#[test]
fn the_readmes_runnable_commands_run_as_it_says() {
    // Other tests' daemons turn RT throttling off: the value is compared under their lock.
    let _lock = common::StarvationLock::acquire();
    let (dir, socket) = scratch_socket("commands");
    let mut ran = 0;
    for (spec, commands) in runnable_blocks() {
        if spec.runs_for.is_some() {
            continue;
        }
        for args in commands {
            let before = common::read_rt_runtime();
            let mut command = spawn(&args, &socket);
            let status = command
                .wait_exit(Duration::from_secs(120))
                .unwrap_or_else(|| {
                    panic!(
                        "stalld {args:?} still runs after 120 s: {:#?}",
                        command.lines()
                    )
                });
            assert!(!command.lines().is_empty(), "stalld {args:?} said nothing");
            ended_as_said(&args, status.code(), &spec, &command, before);
            ran += 1;
        }
    }
    assert!(ran >= 2, "{ran} commands run");
    let _ = std::fs::remove_dir_all(dir);
}

/// The first run's `stalld -l -f -v`: it starts, names its backend, answers `stalld status`,
/// changes no RT throttling while it runs, and stops with the status the README gives.
#[test]
fn the_readmes_log_only_run_changes_nothing_and_stops_cleanly() {
    let Some(_session) = common::StarvationSession::begin("the README's daemon runs") else {
        return;
    };
    let (dir, socket) = scratch_socket("daemon");
    let mut ran = 0;
    for (spec, commands) in runnable_blocks() {
        let Some(runs_for) = spec.runs_for else {
            continue;
        };
        for args in commands {
            let before = common::read_rt_runtime();
            let start = Instant::now();
            let mut daemon = spawn(&args, &socket);
            // The started event comes once the status socket is served.
            daemon
                .wait_for_line(|line| line.contains("started: "), Duration::from_secs(60))
                .unwrap_or_else(|| panic!("stalld {args:?} did not start: {:#?}", daemon.lines()));
            // What the README says to do beside it.
            let status = std::process::Command::new(STALLD)
                .arg("status")
                .env("STALLD_STATUS_SOCKET", &socket)
                .output()
                .unwrap();
            assert_eq!(
                status.status.code(),
                Some(0),
                "stalld status beside stalld {args:?}: {}{}",
                String::from_utf8_lossy(&status.stdout),
                String::from_utf8_lossy(&status.stderr)
            );
            while start.elapsed() < runs_for {
                assert_eq!(
                    common::read_rt_runtime(),
                    before,
                    "stalld {args:?} changed RT throttling"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            assert!(
                daemon.wait_exit(Duration::ZERO).is_none(),
                "stalld {args:?} ended before {runs_for:?}: {:#?}",
                daemon.lines()
            );
            let code = daemon.terminate().and_then(|status| status.code());
            ended_as_said(&args, code, &spec, &daemon, before);
            ran += 1;
        }
    }
    assert!(ran >= 1, "no daemon run in the README");
    let _ = std::fs::remove_dir_all(dir);
}

/// The README's environment-file example over the shipped file gives the unit a command line
/// that parses; the unit's own variables only (a typo in a name would be ignored by systemd).
#[test]
fn the_readmes_environment_file_example_makes_a_command_line_that_parses() {
    let shipped = variables(include_str!("../systemd/stalld.conf"));
    let examples: Vec<Block> = code_blocks(README)
        .into_iter()
        .filter(|block| block.marker.as_deref() == Some("envfile"))
        .collect();
    assert!(
        !examples.is_empty(),
        "no <!-- readme-test: envfile --> block in the README"
    );
    for example in examples {
        let mut vars = shipped.clone();
        for (name, value) in variables(&example.lines.join("\n")) {
            assert!(
                vars.contains_key(&name),
                "line {}: {name} is not a variable of the unit",
                example.line
            );
            vars.insert(name, value);
        }
        let args = exec_start_args(include_str!("../systemd/stalld.service"), &vars);
        parses(&args).unwrap_or_else(|why| panic!("line {}: stalld {args:?}: {why}", example.line));
    }
}

/// The man page's closing order (man-pages(7)): the descriptive sections, OBSERVABILITY, then
/// EXAMPLES, VERSION, LICENSE, and SEE ALSO last; every example is there.
#[test]
fn the_man_page_ends_with_examples_license_and_see_also() {
    let man = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/man/stalld.8")).unwrap();
    let sections: Vec<&str> = man
        .lines()
        .filter_map(|line| line.strip_prefix(".SH "))
        .collect();
    let tail = [
        "OBSERVABILITY",
        "EXAMPLES",
        "VERSION",
        "LICENSE",
        "SEE ALSO",
    ];
    assert!(
        sections.ends_with(&tail),
        "the man page's sections end {sections:?}, not {tail:?}"
    );
    let examples = &man[man.find(".SH EXAMPLES").unwrap()..man.find(".SH VERSION").unwrap()];
    for (command, _) in cli::args::MAN_EXAMPLES {
        let roff = command.replace('-', "\\-");
        assert!(
            examples.contains(&format!(".B {roff}\n")),
            "{command} not in EXAMPLES"
        );
    }
}
