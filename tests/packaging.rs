//! The drop-in surface that is not the daemon loop: the systemd unit with the shipped
//! /etc/sysconfig/stalld, the C stalld's variable set, and `stalld parse-sched-debug`.

mod common;

use std::process::{Command, Stdio};

use common::unit_file::{exec_start_args, variables};
use stalld::cli::{self, Command as Cli};

#[test]
fn the_unit_and_the_shipped_config_make_a_valid_command_line() {
    let unit = include_str!("../systemd/stalld.service");
    let vars = variables(include_str!("../systemd/stalld.conf"));
    for name in [
        "CLIST", "AGGR", "BP", "BR", "BD", "IT", "IP", "THRESH", "LOGGING", "FG", "PF", "BE",
    ] {
        assert!(vars.contains_key(name), "stalld.conf lacks {name}");
    }
    let args = exec_start_args(unit, &vars);
    let Ok(Cli::Run(config)) = cli::parse(&args) else {
        panic!("the unit's command line is rejected: {args:?}");
    };
    assert!(config.process.systemd && config.process.foreground && config.sinks.syslog);
    assert_eq!(config.detection.threshold.as_secs(), 20);
    assert_eq!(
        config.process.pidfile.as_deref(),
        Some(std::path::Path::new("/run/stalld/stalld.pid"))
    );
    assert!(unit.contains("ExecStartPre=/usr/bin/throttlectl off"));
    // Both environment files are optional (`-`); Debian's is read too. $BE stays in ExecStart
    // so that drop-ins setting the backend keep working.
    for file in ["/etc/sysconfig/stalld", "/etc/default/stalld"] {
        assert!(
            unit.lines()
                .any(|l| l == format!("EnvironmentFile=-{file}")),
            "{file} not read as an optional environment file"
        );
    }
    assert!(unit
        .lines()
        .any(|l| l.starts_with("ExecStart=") && l.split_whitespace().any(|w| w == "$BE")));
    // SCHED_FIFO 10 from exec on, set by systemd (tests/systemd-guest.sh checks it at the
    // first log line), not a chrt after start: under Type=notify that ran only after READY.
    assert!(
        unit.contains("\nCPUSchedulingPolicy=fifo\n")
            && unit.contains("\nCPUSchedulingPriority=10\n")
    );
    assert!(
        !unit
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("chrt")),
        "the unit still runs chrt"
    );
    // stalld sends READY=1 and pings the watchdog from its loop (tests/e2e_observability.rs).
    assert!(unit.contains("\nType=notify\n") && unit.contains("\nNotifyAccess=main\n"));
    assert!(unit.contains("\nWatchdogSec=60s\n"));
    // Boosted tasks first (throttling on could refuse while DEADLINE bandwidth is in use),
    // then RT throttling; a failed restore must not skip the second.
    let stop_post: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("ExecStopPost="))
        .collect();
    assert_eq!(
        stop_post,
        ["-/usr/bin/stalld restore", "/usr/bin/throttlectl on"]
    );
}

#[test]
fn an_upstream_sysconfig_with_every_variable_set_still_parses() {
    // What an operator of the C stalld may have in /etc/sysconfig/stalld.
    let upstream = r#"
CLIST="-c 0-1"
AGGR="-A"
BP="-p 1000000000"
BR="-r 20000"
BD="-d 3"
IT="-i kworker.*,ksoftirqd.*"
IP="-I qemu.*"
THRESH="-t 30"
LOGGING="--log_only --log_kmsg --log_syslog"
FG="--foreground"
PF="--pidfile /run/stalld/stalld.pid"
BE="-b sched_debug"
"#;
    let args = exec_start_args(
        include_str!("../systemd/stalld.service"),
        &variables(upstream),
    );
    let Ok(Cli::Run(config)) = cli::parse(&args) else {
        panic!("rejected: {args:?}");
    };
    assert!(config.boosting().is_none() && config.sinks.kmsg);
    assert_eq!(config.detection.threshold.as_secs(), 30);
    assert!(
        config.ignore_threads.matches("ksoftirqd/1") && config.ignore_processes.matches("qemu-kvm")
    );
}

fn replay(input: &[u8]) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stalld"))
        .args(["parse-sched-debug", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn parse_sched_debug_replays_a_saved_file_as_json() {
    let text = include_bytes!("data/sched_debug/linux-6.18-live-waiting-task.txt");
    let (code, stdout, stderr) = replay(text);
    assert_eq!(code, Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
    assert_eq!(json["format"], "F5 (6.12+)");
    let cpus = json["cpus"].as_array().unwrap();
    assert_eq!(cpus.len(), 2);
    let waiting: Vec<&serde_json::Value> = cpus
        .iter()
        .flat_map(|c| c["waiting"].as_array().unwrap())
        .collect();
    assert!(
        waiting
            .iter()
            .any(|t| t["comm"] == "rustc" && t["state"] == "R"),
        "{stdout}"
    );

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sched_debug/linux-4.19-debian-x86-1cpu.txt"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_stalld"))
        .args(["parse-sched-debug", path])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"kworker/0:1\""));
}

#[test]
fn parse_sched_debug_rejects_garbage_with_the_line() {
    let (code, stdout, stderr) =
        replay(b"cpu#0, 2000.000 MHz\n  .nr_running : 1\nrunnable tasks:\n S garbage\n");
    assert_ne!(code, Some(0));
    assert!(stdout.is_empty());
    assert!(stderr.contains("sched_debug line"), "{stderr}");
}

/// The man page and completions are generated from the same definition as the usage screen
/// and the parser: every option (short and long) and every subcommand is in each of them.
#[test]
fn man_page_completions_usage_and_parser_agree() {
    use clap::CommandFactory;
    let out = env!("OUT_DIR");
    let read = |path: &str| {
        std::fs::read_to_string(format!("{out}/{path}"))
            .unwrap_or_else(|err| panic!("{out}/{path}: {err}"))
    };
    // Without roff's dash escapes and font changes.
    let plain = |roff: &str| {
        ["\\fB", "\\fI", "\\fR"]
            .iter()
            .fold(roff.replace("\\-", "-"), |text, font| {
                text.replace(font, "")
            })
    };
    let man = plain(&read("man/stalld.8"));
    let bash = read("completions/stalld.bash");
    let zsh = read("completions/_stalld");
    let fish = read("completions/stalld.fish");
    let usage = cli::usage();
    let command = cli::Args::command();
    for arg in command.get_arguments().filter(|a| !a.is_positional()) {
        let long = format!("--{}", arg.get_long().unwrap());
        let (in_man, in_usage) = match arg.get_short() {
            Some(short) => (format!("-{short}, {long}"), format!("-{short}/{long}:")),
            None => (format!("\n{long}"), format!(" {long}:")),
        };
        assert!(man.contains(&in_man), "{long} not in the man page");
        assert!(usage.contains(&in_usage), "{long} not in the usage");
        assert!(
            bash.contains(&long) && zsh.contains(&long),
            "{long} not completed"
        );
        assert!(
            fish.contains(&format!("-l {}", &long[2..])),
            "{long} not in the fish completions"
        );
    }
    for sub in command.get_subcommands() {
        let name = sub.get_name();
        assert!(
            man.contains(&format!("stalld {name}")),
            "{name} not in the man page"
        );
        assert!(
            usage.contains(&format!("stalld {name}")),
            "{name} not in the usage"
        );
        assert!(bash.contains(name) && zsh.contains(name) && fish.contains(name));
    }
    assert!(man.contains(".SH SUBCOMMANDS") && man.contains(".SH VERBOSE OUTPUT"));
    // The same files are next to the binary for `make install`.
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_stalld"));
    let beside = std::fs::read_to_string(binary.with_file_name("man").join("stalld.8")).unwrap();
    assert_eq!(plain(&beside), man);
}

/// `--help` shows the usage screen (with the subcommands) on stderr and exits 0; the
/// subcommands named there run.
#[test]
fn help_documents_the_subcommands_and_they_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_stalld"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stderr);
    assert_eq!(help.trim_end(), cli::usage());
    assert!(help.contains("stalld throttle off|on|show"), "{help}");
    assert!(help.contains("stalld parse-sched-debug FILE|-"), "{help}");
    let show = Command::new(env!("CARGO_BIN_EXE_stalld"))
        .args(["throttle", "show"])
        .output()
        .unwrap();
    assert!(show.status.success(), "{show:?}");
    let misuse = Command::new(env!("CARGO_BIN_EXE_stalld"))
        .args(["throttle", "sideways"])
        .output()
        .unwrap();
    assert_eq!(misuse.status.code(), Some(22));
    assert!(
        String::from_utf8_lossy(&misuse.stderr).ends_with("usage: stalld throttle off|on|show\n")
    );
}
#[test]
fn the_man_page_carries_the_observability_section_verbatim() {
    let man = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/man/stalld.8")).unwrap();
    let section = include_str!("../man/observability.roff");
    assert!(
        man.contains(section),
        "the generated stalld.8 must include man/observability.roff verbatim"
    );
}

/// `text` with the block that starts at the line `first` and ends before the line `end`
/// (`None`: at the first line that does not start with `|`, the end of a Markdown table)
/// replaced by `block`.
fn with_block(text: &str, first: &str, end: Option<&str>, block: &str) -> String {
    let start = text
        .find(&format!("\n{first}\n"))
        .unwrap_or_else(|| panic!("no line {first:?}"))
        + 1;
    let rest = &text[start..];
    let length = match end {
        Some(end) => {
            rest.find(&format!("\n{end}\n"))
                .unwrap_or_else(|| panic!("no line {end:?} after {first:?}"))
                + 1
        }
        None => rest
            .split_inclusive('\n')
            .take_while(|line| line.starts_with('|'))
            .map(str::len)
            .sum(),
    };
    format!("{}{block}{}", &text[..start], &rest[length..])
}

/// The README's and the man page's event and field tables, the journald catalog and the JSON
/// Schema of the `--events` lines are rendered from the event table (`src/event.rs`): each
/// file must hold what it renders. `STALLD_BLESS=1 cargo test --test packaging event_docs`
/// writes them.
#[test]
fn event_docs_are_rendered_from_the_event_table() {
    use stalld::event::docs;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap_or_default();
    let readme = read("README.md");
    let readme_expected = with_block(
        &with_block(
            &readme,
            "| event | MESSAGE_ID | meaning |",
            None,
            &docs::readme_events(),
        ),
        "| field | meaning |",
        None,
        &docs::readme_fields(),
    );
    let man = read("man/observability.roff");
    let man_expected = with_block(&man, ".SS Events", Some(".SS Metrics"), &docs::man_events());
    let schema = serde_json::to_string_pretty(&docs::json_schema()).unwrap() + "\n";
    let files = [
        ("README.md", readme, readme_expected),
        ("man/observability.roff", man, man_expected),
        (
            docs::CATALOG_FILE,
            read(docs::CATALOG_FILE),
            docs::catalog(),
        ),
        (docs::SCHEMA_FILE, read(docs::SCHEMA_FILE), schema),
    ];
    let bless = std::env::var_os("STALLD_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, current, expected) in files {
        if current == expected {
            continue;
        }
        if bless {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, expected).unwrap();
        } else {
            stale.push(path);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what src/event.rs renders: run STALLD_BLESS=1 cargo test --test packaging event_docs, and review the diff"
    );
}

/// The catalog is one that journalctl compiles: every MESSAGE_ID in its database, with the
/// entry's text (in a scratch root: the host's catalog is left alone).
#[test]
fn journalctl_compiles_the_catalog() {
    use stalld::event::{docs, EventKind};
    if Command::new("journalctl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: journalctl_compiles_the_catalog: no journalctl (install systemd)");
        return;
    }
    let root = std::env::temp_dir().join(format!("stalld-catalog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let installed = root.join(docs::CATALOG_INSTALLED.trim_start_matches('/'));
    std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
    std::fs::create_dir_all(root.join("var/lib/systemd/catalog")).unwrap();
    std::fs::write(&installed, docs::catalog()).unwrap();
    let journalctl = |args: &[&str]| {
        let out = Command::new("journalctl")
            .arg(format!("--root={}", root.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "journalctl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    journalctl(&["--update-catalog"]);
    let listed = journalctl(&["--list-catalog"]);
    for kind in EventKind::ALL {
        let line = format!("{} stalld: {}", kind.message_id(), kind.summary());
        assert!(listed.contains(&line), "{line} not in\n{listed}");
    }
    let dumped = journalctl(&["--dump-catalog", EventKind::Starved.message_id()]);
    assert!(dumped.contains("STALLD_CULPRIT_"), "{dumped}");
    std::fs::remove_dir_all(&root).unwrap();
}
