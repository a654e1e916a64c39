//! End-to-end tests of the `stalld` binary against real starvation, as root: a SCHED_FIFO
//! victim pinned behind a SCHED_FIFO hog on the last CPU (made by `stalld-starve`), and the
//! daemon detecting it, boosting it, and putting everything back. Every scenario runs once per
//! backend, and queue_track's once per stamp source (the default, the kernel's sched_info, and
//! stalld's tracepoints forced with STALLD_QUEUE_TRACK_STAMPS). The command-line checks need
//! no root.

mod common;

use std::time::Duration;

use common::{last_cpu, only_victim as victim, policy_of, read_rt_runtime, Daemon};
use common::{StarvationSession, Starver};
use serde_json::Value;
use stalld::backend::{queue_track_stamp_source, StampChoice, StampSource, STAMPS_ENV};

const LINE_WAIT: Duration = Duration::from_secs(15);

/// How a scenario runs stalld: `-b backend`, and for queue_track the stamp source forced
/// through the environment (`None`: the default, `auto`, whatever the test's environment).
#[derive(Clone, Copy, Debug)]
struct Setup {
    backend: &'static str,
    forced_stamps: Option<StampSource>,
}

const SCHED_DEBUG: Setup = Setup {
    backend: "sched_debug",
    forced_stamps: None,
};
const QUEUE_TRACK: Setup = Setup {
    backend: "queue_track",
    forced_stamps: None,
};
const QUEUE_TRACK_TRACEPOINTS: Setup = Setup {
    backend: "queue_track",
    forced_stamps: Some(StampSource::Tracepoints),
};

impl Setup {
    /// The stamp source queue_track must report, `None` for sched_debug.
    fn stamps(self) -> Option<StampSource> {
        (self.backend == "queue_track").then(|| {
            self.forced_stamps.unwrap_or_else(|| {
                queue_track_stamp_source(StampChoice::Auto).expect("the kernel's stamp source")
            })
        })
    }

    /// The stamp source's setting in stalld's environment.
    fn env(self) -> [(&'static str, &'static str); 1] {
        [(
            STAMPS_ENV,
            self.forced_stamps.map_or("auto", StampSource::name),
        )]
    }
}

/// Starts the daemon and waits until it has chosen its backend, so that it sees the starvation
/// from the start. For queue_track it checks the `-v` line naming the stamp source, and that
/// the daemon holds exactly that source's BPF links (with the kernel's stamps: the iterator
/// only, nothing on a scheduler tracepoint).
fn start_daemon(setup: Setup, extra: &[&str]) -> Daemon {
    let daemon = Daemon::start(&setup.env(), setup.backend, extra);
    // Set up before the test goes on: a starver started earlier turns RT throttling off
    // itself, and a daemon that finds it off then has nothing of it to restore.
    daemon
        .wait_for_line(|line| line.contains("stalld: started: "), LINE_WAIT)
        .unwrap_or_else(|| panic!("the daemon did not start: {:?}", daemon.lines()));
    if let Some(stamps) = setup.stamps() {
        let said = format!("queue_track: enqueue times from {}", stamps.describe());
        daemon
            .wait_for_line(|line| line.contains(&said), LINE_WAIT)
            .unwrap_or_else(|| panic!("no {said:?} line: {:?}", daemon.lines()));
        let mut links = common::bpf_link_types(daemon.process.program_pid());
        links.sort();
        let tracepoints = usize::from(stamps == StampSource::Tracepoints) * 5;
        let mut expected = vec!["iter"; 1];
        expected.extend(vec!["raw_tracepoint"; tracepoints]);
        assert_eq!(
            links, expected,
            "the daemon's BPF links with {stamps} stamps"
        );
    }
    daemon
}

fn starved_line(daemon: &Daemon, pid: i32, timeout: Duration) -> Option<String> {
    let needle = format!("-{pid} starved on CPU ");
    daemon.wait_for_line(|line| line.contains(&needle), timeout)
}

fn boosted_line(daemon: &Daemon, pid: i32, timeout: Duration) -> Option<String> {
    let needle = format!("boosted pid {pid} (");
    daemon.wait_for_line(
        |line| line.contains(&needle) && line.contains("using SCHED_DEADLINE"),
        timeout,
    )
}

fn wait_s(event: &Value) -> f64 {
    event["wait_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("no wait_s in {event}"))
}

fn boosts_and_restores_a_starving_victim(setup: Setup) {
    let Some(_session) = StarvationSession::begin("boosts_and_restores_a_starving_victim") else {
        return;
    };
    let (threshold, granularity) = (3.0, 1.0);
    let cpu = last_cpu();
    let runtime = common::BOOST_RUNTIME;
    let options = ["-t", "3", "-g", "1", "-d", "1", "-r", runtime, "-c", &cpu];
    let mut daemon = start_daemon(setup, &options);
    let starver = Starver::spawn(&["--duration", "20", "--linger", common::LINGER]);
    let pid = victim(&starver);
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 5));

    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    let waited = wait_s(&ran);
    assert!(
        waited >= threshold - 0.05 && waited <= threshold + granularity + 1.0,
        "victim waited {waited} s; expected about the {threshold} s threshold\n{:?}",
        daemon.lines()
    );
    assert_eq!(ran["policy_when_ran"], "SCHED_DEADLINE", "{ran}");
    let starved = starved_line(&daemon, pid, LINE_WAIT).expect("no starved line for the victim");
    assert!(
        starved.contains(&format!("victim0-{pid} starved on CPU {cpu} for ")),
        "{starved}"
    );
    boosted_line(&daemon, pid, LINE_WAIT).expect("no boosted line for the victim");

    // The boost lasts -d 1: afterwards the victim is exactly what it was.
    daemon
        .wait_for_line(
            |l| l.contains(&format!("restored pid {pid} to SCHED_FIFO")),
            LINE_WAIT,
        )
        .expect("no restore line");
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 5));
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

fn log_only_reports_and_boosts_nothing(setup: Setup) {
    let Some(_session) = StarvationSession::begin("log_only_reports_and_boosts_nothing") else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start_daemon(setup, &["-l", "-t", "2", "-g", "1", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "5"]);
    let pid = victim(&starver);
    starved_line(&daemon, pid, LINE_WAIT).expect("no starved line in log-only mode");
    let end = starver.wait_event("victim_starved", LINE_WAIT);
    assert!(end["waited_s"].as_f64().unwrap() > 4.0, "{end}");
    assert!(
        !daemon.lines().iter().any(|l| l.contains("boosted pid")),
        "{:?}",
        daemon.lines()
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

fn other_cpus_do_not_see_the_victim(setup: Setup) {
    let Some(_session) = StarvationSession::begin("other_cpus_do_not_see_the_victim") else {
        return;
    };
    let mut daemon = start_daemon(setup, &["-t", "2", "-g", "1", "-d", "1", "-c", "0"]);
    let starver = Starver::spawn(&["--duration", "5"]);
    let pid = victim(&starver);
    starver.wait_event("victim_starved", LINE_WAIT);
    let needle = format!("-{pid} ");
    assert!(
        !daemon.lines().iter().any(|l| l.contains(&needle)),
        "the victim was seen although its CPU is not monitored: {:?}",
        daemon.lines()
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

fn sigterm_restores_boosted_tasks_and_rt_throttling(setup: Setup) {
    let Some(session) =
        StarvationSession::begin("sigterm_restores_boosted_tasks_and_rt_throttling")
    else {
        return;
    };
    let cpu = last_cpu();
    // The daemon starts first, so it is the one that turns RT throttling off.
    let mut daemon = start_daemon(setup, &["-t", "2", "-g", "1", "-d", "2", "-c", &cpu]);
    daemon
        .wait_for_line(|l| l.contains("RT Throttling disabled"), LINE_WAIT)
        .expect("the daemon did not turn RT throttling off");
    assert_eq!(read_rt_runtime(), -1);
    let starver = Starver::spawn(&["--duration", "15", "--linger", "8"]);
    let pid = victim(&starver);
    boosted_line(&daemon, pid, LINE_WAIT).expect("victim not boosted");
    assert_eq!(
        daemon.terminate().map(|s| s.code()),
        Some(Some(0)),
        "{:?}",
        daemon.lines()
    );
    assert_eq!(
        policy_of(pid),
        ("SCHED_FIFO".to_owned(), 5),
        "{:?}",
        daemon.lines()
    );
    assert_eq!(
        read_rt_runtime(),
        session.rt_runtime.saved(),
        "RT throttling not restored"
    );
    assert!(daemon
        .lines()
        .iter()
        .any(|l| l.contains("stalld shutting down")));
}

fn sigkill_leaves_nothing_boosted(setup: Setup) {
    let Some(session) = StarvationSession::begin("sigkill_leaves_nothing_boosted") else {
        return;
    };
    let cpu = last_cpu();
    let daemon = start_daemon(setup, &["-t", "2", "-g", "1", "-d", "2", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "15", "--linger", "8"]);
    let pid = victim(&starver);
    boosted_line(&daemon, pid, LINE_WAIT).expect("victim not boosted");
    assert_eq!(policy_of(pid).0, "SCHED_DEADLINE");
    // The daemon itself, not the `timeout` that supervises it.
    stalld::sys::kill(daemon.process.program_pid(), libc::SIGKILL).unwrap();
    // The guardian notices the daemon is gone and undoes its changes.
    let restored = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        policy_of(pid) == ("SCHED_FIFO".to_owned(), 5)
            && read_rt_runtime() == session.rt_runtime.saved()
    });
    assert!(
        restored,
        "after SIGKILL: victim {:?}, rt runtime {}\n{:#?}",
        policy_of(pid),
        read_rt_runtime(),
        daemon.lines()
    );
}

fn finds_a_task_that_was_starving_before_the_daemon_started(setup: Setup) {
    let Some(_session) = StarvationSession::begin("finds_a_task_that_was_starving_before_start")
    else {
        return;
    };
    let cpu = last_cpu();
    let starver = Starver::spawn(&["--duration", "20"]);
    let pid = victim(&starver);
    std::thread::sleep(Duration::from_secs(1));
    let runtime = common::BOOST_RUNTIME;
    let options = ["-t", "2", "-g", "1", "-d", "1", "-r", runtime, "-c", &cpu];
    let mut daemon = start_daemon(setup, &options);
    boosted_line(&daemon, pid, LINE_WAIT).expect("a task queued before start must be found");
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    if setup.stamps() == Some(StampSource::SchedInfo) {
        // The kernel stamped its enqueue: the wait stalld reports is the victim's whole wait,
        // from before the daemon started, not from its first scan (about 1 s later).
        let starved = starved_line(&daemon, pid, LINE_WAIT).unwrap();
        let reported: f64 = starved
            .split_once(" seconds (")
            .and_then(|(_, rest)| rest.split_once(" s)"))
            .and_then(|(exact, _)| exact.parse().ok())
            .unwrap_or_else(|| panic!("no exact wait in {starved}"));
        assert!(
            reported >= 2.0 && (wait_s(&ran) - reported).abs() < 0.25,
            "stalld reported {reported} s, the victim waited {} s: {ran}",
            wait_s(&ran)
        );
    } else {
        // Counted from the first scan that saw it, about 0.8 s after it became runnable.
        assert!(
            wait_s(&ran) >= 2.5,
            "it waited before the daemon started, then the threshold: {ran}"
        );
    }
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

macro_rules! scenarios {
    (every backend: $($all:ident),* ; queue_track: $($qt:ident),* $(,)?) => {
        mod sched_debug {
            $( #[test] fn $all() { super::$all(super::SCHED_DEBUG) } )*
        }
        mod queue_track {
            $( #[test] fn $all() { super::$all(super::QUEUE_TRACK) } )*
            $( #[test] fn $qt() { super::$qt(super::QUEUE_TRACK) } )*
        }
        mod queue_track_tracepoints {
            $( #[test] fn $all() { super::$all(super::QUEUE_TRACK_TRACEPOINTS) } )*
            $( #[test] fn $qt() { super::$qt(super::QUEUE_TRACK_TRACEPOINTS) } )*
        }
    };
}

scenarios!(
    every backend:
    boosts_and_restores_a_starving_victim,
    log_only_reports_and_boosts_nothing,
    other_cpus_do_not_see_the_victim,
    sigterm_restores_boosted_tasks_and_rt_throttling,
    sigkill_leaves_nothing_boosted,
    finds_a_task_that_was_starving_before_the_daemon_started;
    queue_track:
    detects_within_milliseconds_of_the_threshold,
    a_busy_task_starving_again_and_again_is_rescued_every_time,
    works_with_debugfs_unmounted,
    bpf_failure_is_clear_when_forced_and_falls_back_by_default,
);

/// The exactness queue_track promises: detection within milliseconds of the threshold.
fn detects_within_milliseconds_of_the_threshold(setup: Setup) {
    let Some(_session) = StarvationSession::begin("queue_track_detects_within_milliseconds") else {
        return;
    };
    let cpu = last_cpu();
    let runtime = common::BOOST_RUNTIME;
    let mut daemon = start_daemon(setup, &["-t", "2", "-d", "1", "-r", runtime, "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "15"]);
    let pid = victim(&starver);
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    let beyond = wait_s(&ran) - 2.0;
    // Generous for a loaded CI machine; the benchmark measures the real distribution.
    assert!(
        (0.0..0.25).contains(&beyond),
        "victim waited {beyond:.4} s beyond the threshold\n{:#?}\n{:#?}",
        daemon.lines(),
        starver.process.lines()
    );
    let starved = starved_line(&daemon, pid, LINE_WAIT).unwrap();
    assert!(
        starved.contains(" for 2 seconds (2.0"),
        "exact wait appended: {starved}"
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

/// A task that keeps starving is rescued every time. A busy task whose DEADLINE boost ended
/// while it was throttled stays marked throttled in the kernel for up to minutes, and the next
/// DEADLINE boost would silently not run it; stalld sees that and boosts with FIFO instead.
fn a_busy_task_starving_again_and_again_is_rescued_every_time(setup: Setup) {
    let Some(_session) = StarvationSession::begin("a_busy_task_starving_again_and_again") else {
        return;
    };
    let cpu = last_cpu();
    let daemon = start_daemon(setup, &["-t", "2", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "16", "--linger", "30"]);
    victim(&starver);
    let spinner = common::Supervised::spawn(
        "chrt",
        &[
            "-f",
            "5",
            "taskset",
            "-c",
            &cpu,
            "bash",
            "-c",
            // Bounded in itself too (bash's SECONDS: no fork per round), not only by timeout.
            "while ((SECONDS < 11)); do :; done",
        ],
        Duration::from_secs(12),
    );
    let pid = spinner.program_pid();
    // Four episodes of 2 s starvation, each ended by a boost.
    let needle = format!("-{pid} starved on CPU {cpu} for ");
    let reports = daemon
        .process
        .wait_until(Duration::from_secs(20), |lines| {
            let reports: Vec<String> = lines
                .iter()
                .map(|(_, l)| l.clone())
                .filter(|l| l.contains(&needle))
                .collect();
            (reports.len() >= 4).then_some(reports)
        })
        .unwrap_or_else(|| panic!("fewer than 4 episodes: {:#?}", daemon.lines()));
    // Each episode after the first starts when the boost before it ran the task, so it is
    // reported at 2.0x s; a boost that did not run it would show a longer wait. The first
    // report measures how quickly stalld detects, which
    // `detects_within_milliseconds_of_the_threshold` bounds on its own (a CI run with the
    // machine saturated by builds once saw it 0.39 s late here while every boost ran the task).
    let (first, again) = reports.split_first().expect("four reports");
    assert!(
        first.contains(" for 2 seconds ("),
        "first episode: {first}\n{:#?}",
        daemon.lines()
    );
    for report in again {
        assert!(
            report.contains(" for 2 seconds (2.0"),
            "a boost did not run the task: {report}\n{:#?}",
            daemon.lines()
        );
    }
}

/// Lockdown and Secure Boot machines have no debugfs: queue_track must not need it.
fn works_with_debugfs_unmounted(setup: Setup) {
    let Some(_session) = StarvationSession::begin("queue_track_works_with_debugfs_unmounted")
    else {
        return;
    };
    let _unmounted = Debugfs::unmounted();
    let cpu = last_cpu();
    let mut daemon = start_daemon(setup, &["-t", "2", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "15"]);
    let pid = victim(&starver);
    boosted_line(&daemon, pid, LINE_WAIT).expect("victim not boosted without debugfs");
    assert!(
        stalld::mounts::find("debugfs").is_none(),
        "queue_track mounted debugfs"
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

const DEBUGFS: &str = "/sys/kernel/debug";

/// Puts debugfs in the state a test needs and back as it found it when dropped, so that no test
/// depends on, or leaves behind, a debugfs mounted by something else.
struct Debugfs {
    /// Where it was mounted before the test (to mount it back after [`Debugfs::unmounted`]).
    was_at: Option<std::path::PathBuf>,
    /// Mounted by [`Debugfs::mounted`]: unmounted again at the end.
    mounted_here: bool,
}

impl Debugfs {
    fn unmounted() -> Debugfs {
        let was_at = stalld::mounts::find("debugfs");
        if let Some(path) = &was_at {
            let status = std::process::Command::new("umount")
                .arg("-l")
                .arg(path)
                .status()
                .unwrap();
            assert!(status.success(), "umount {path:?}");
        }
        Debugfs {
            was_at,
            mounted_here: false,
        }
    }

    fn mounted() -> Debugfs {
        let mounted_here = stalld::mounts::find("debugfs").is_none();
        if mounted_here {
            let status = std::process::Command::new("mount")
                .args(["-t", "debugfs", "none", DEBUGFS])
                .status()
                .unwrap();
            assert!(status.success(), "mount debugfs at {DEBUGFS}");
        }
        Debugfs {
            was_at: None,
            mounted_here,
        }
    }
}

impl Drop for Debugfs {
    fn drop(&mut self) {
        if self.mounted_here {
            let _ = std::process::Command::new("umount")
                .args(["-l", DEBUGFS])
                .status();
        }
        if let Some(path) = &self.was_at {
            let _ = std::process::Command::new("mount")
                .args(["-t", "debugfs", "none"])
                .arg(path)
                .status();
        }
    }
}

/// Without the capabilities BPF needs, `-b queue_track` fails clearly and the default falls
/// back to sched_debug with one line saying why. Without CAP_SYS_ADMIN stalld cannot mount
/// debugfs either: with debugfs mounted the fallback runs, without it (a freshly booted
/// machine) it fails and says why, in either case whatever state the machine was in before.
fn bpf_failure_is_clear_when_forced_and_falls_back_by_default(setup: Setup) {
    let Some(_session) =
        StarvationSession::begin("bpf_failure_is_clear_when_forced_and_falls_back_by_default")
    else {
        return;
    };
    // setpriv drops the capabilities from the bounding set, so the exec'd stalld lacks them;
    // SIGINT after `seconds` ends a daemon that started.
    let without_bpf = |seconds: &str, args: &[&str]| {
        let output = std::process::Command::new("timeout")
            .args([
                "-s",
                "INT",
                seconds,
                "setpriv",
                "--bounding-set",
                "-bpf,-sys_admin,-perfmon",
                "--",
                "env",
            ])
            .args(setup.env().map(|(k, v)| format!("{k}={v}")))
            .arg(env!("CARGO_BIN_EXE_stalld"))
            .args(args)
            .output()
            .expect("setpriv");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, stderr) = without_bpf("20", &["-f", "-v", "-l", "-b", "queue_track"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("queue_track backend: BPF program load failed")
            && stderr.contains("Operation not permitted"),
        "{stderr}"
    );

    {
        let _mounted = Debugfs::mounted();
        let (_, stderr) = without_bpf("3", &["-f", "-v", "-l"]);
        assert!(
            stderr.contains("queue_track backend: BPF program load failed"),
            "{stderr}"
        );
        assert!(stderr.contains("; falling back to sched_debug"), "{stderr}");
        assert!(stderr.contains("using sched_debug backend"), "{stderr}");
    }
    let _unmounted = Debugfs::unmounted();
    let (code, stderr) = without_bpf("20", &["-f", "-v", "-l"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("; falling back to sched_debug"), "{stderr}");
    assert!(
        stderr.contains("could not find the sched_debug file: debugfs is not mounted"),
        "{stderr}"
    );
}

/// A stamp source stalld does not know is an error that says so, never a silent fallback.
#[test]
fn an_unknown_stamp_source_is_an_error_not_a_fallback() {
    let Some(_session) =
        StarvationSession::begin("an_unknown_stamp_source_is_an_error_not_a_fallback")
    else {
        return;
    };
    let setting = format!("{STAMPS_ENV}=tracepoint");
    let mut daemon = Daemon::spawn_program(
        "env",
        &[&setting, env!("CARGO_BIN_EXE_stalld"), "-f", "-v", "-l"],
    );
    let status = daemon.wait_exit(Duration::from_secs(20));
    let lines = daemon.lines();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{lines:?}");
    assert!(
        lines.iter().any(|l| l
            == "stalld: STALLD_QUEUE_TRACK_STAMPS=\"tracepoint\": expected sched_info, tracepoints or auto"),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("using ")), "{lines:?}");
}

#[test]
fn bad_options_exit_22_with_upstreams_message() {
    // Under the lock of the starvation runs: for the instant before it exits, a stalld whose
    // command line does not parse counts as another boosting instance (the C stalld's may not
    // parse as ours), and a daemon starting then in another test refused to start.
    let _lock = common::StarvationLock::acquire();
    let cases: &[(&[&str], &str)] = &[
        (
            &["-t", "0"],
            "starving_threshold should be at least 1 second",
        ),
        (&["-p", "1"], "boost_period should be at least 200 ms"),
        (&["-r", "5"], "boost_runtime should be at least 8 us"),
        (&["--no-such-option"], "Invalid option"),
        (&["-z"], "Invalid option"),
        (
            &["-t", "2"],
            "the boost duration cannot be longer than the starving threshold",
        ),
    ];
    for (args, message) in cases {
        let (status, lines) = Daemon::run(args, Duration::from_secs(10));
        assert_eq!(status.code(), Some(22), "{args:?}: {lines:?}");
        assert!(
            lines.iter().any(|l| l.trim_end() == message.trim_end()),
            "{args:?}: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with("usage: stalld")),
            "{args:?}: {lines:?}"
        );
    }
}

#[test]
fn help_and_version_exit_0() {
    let (status, lines) = Daemon::run(&["-h"], Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert!(
        lines.iter().any(|l| l.contains("stalld version: ")),
        "{lines:?}"
    );
    let (status, lines) = Daemon::run(&["--version"], Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    assert_eq!(lines, vec![env!("CARGO_PKG_VERSION").to_string()]);
}
