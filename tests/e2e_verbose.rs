//! End-to-end tests of the `-v` contract that scripts and harnesses written for the C stalld
//! rely on, as root against real starvation on the last CPU, for every mode with both
//! backends: the per-check lines from the first check on, the idle-detection lines, the
//! log-only report cadence, repeated options, and sched_debug's worst-case detection time.

mod common;

use std::time::{Duration, Instant};

use common::{last_cpu, Daemon, StarvationSession, Starver};

const LINE_WAIT: Duration = Duration::from_secs(15);
/// The first per-check line must follow `using <backend> backend` this closely.
const FIRST_CHECK_WITHIN: Duration = Duration::from_secs(2);
/// What a harness for the C stalld waits for before it creates load.
const HARNESS_PATTERN: &str = "checking cpu|waiting tasks|skipping";

/// Starts `stalld -f -v -b BACKEND ARGS` and returns it once its first per-check line is out,
/// which must come within [`FIRST_CHECK_WITHIN`] of the backend line.
fn start(backend: &str, args: &[&str]) -> Daemon {
    let daemon = Daemon::start(&[], backend, args);
    let since = Instant::now();
    daemon
        .wait_for_regex(HARNESS_PATTERN, FIRST_CHECK_WITHIN)
        .unwrap_or_else(|| {
            panic!(
                "no per-check line within {FIRST_CHECK_WITHIN:?} of the backend line: {:#?}",
                daemon.lines()
            )
        });
    eprintln!(
        "{backend} {args:?}: first check line {:?} after the backend line",
        since.elapsed()
    );
    daemon
}

/// `comm-pid starved on CPU n for S seconds`: the S of each report for `pid`, in order.
fn reported_waits(daemon: &Daemon, pid: i32) -> Vec<u64> {
    waits_in(&daemon.lines(), pid)
}

fn waits_in(lines: &[String], pid: i32) -> Vec<u64> {
    let needle = format!("-{pid} starved on CPU ");
    lines
        .iter()
        .filter_map(|line| line.split_once(&needle))
        .filter_map(|(_, rest)| rest.split(" for ").nth(1)?.split(' ').next()?.parse().ok())
        .collect()
}

/// Waits (bounded) until the daemon has made `n` reports about `pids` together. The starver
/// that says its victims starved is another process: its word is no proof that the daemon's
/// last report has been read yet.
fn wait_reports(daemon: &Daemon, pids: &[i32], n: usize) {
    daemon.process.wait_until(LINE_WAIT, |lines| {
        let lines: Vec<String> = lines.iter().map(|(_, line)| line.clone()).collect();
        let reports: usize = pids.iter().map(|&pid| waits_in(&lines, pid).len()).sum();
        (reports >= n).then_some(())
    });
}

/// Per mode and backend, in log-only mode with a harness's defaults prepended (the last value
/// wins): the first check line at start, per-CPU lines that name the victim's CPU and count,
/// and the report cadence (power mode: every granularity with the growing wait; -M and -A:
/// once per threshold).
fn verbose_lines_and_log_only_cadence(backend: &str, mode: &str) {
    let Some(_session) = StarvationSession::begin(&format!("verbose {backend} {mode}")) else {
        return;
    };
    let cpu = last_cpu();
    let args = [
        "-g", "5", "-t", "20", "-c", "0", // a harness's defaults, overridden below
        mode, "-l", "-t", "3", "-g", "1", "-d", "1", "-c", &cpu,
    ];
    let mut daemon = start(backend, &args);
    let starver = Starver::spawn(&["--duration", "9"]);
    let pid = starver.victim_pids()[0];

    if mode == "-O" {
        let line = daemon
            .wait_for_line(
                |l| {
                    l.split_once(&format!("checking cpu {cpu} - rt: "))
                        .and_then(|(_, rest)| rest.split_once(" - starving: "))
                        .is_some_and(|(rt, waiting)| {
                            rt.parse::<u32>().is_ok_and(|rt| rt >= 2)
                                && waiting.parse::<u32>().is_ok_and(|n| n >= 1)
                        })
                },
                LINE_WAIT,
            )
            .unwrap_or_else(|| panic!("no check line with the victim: {:#?}", daemon.lines()));
        eprintln!("{line}");
    } else {
        let header = format!("CPU {cpu} has ");
        daemon
            .wait_for_line(
                |l| {
                    l.strip_prefix(&header)
                        .and_then(|rest| rest.strip_suffix(" waiting tasks"))
                        .and_then(|n| n.parse::<u32>().ok())
                        .is_some_and(|n| n >= 1)
                },
                LINE_WAIT,
            )
            .unwrap_or_else(|| panic!("no table header for CPU {cpu}: {:#?}", daemon.lines()));
        let row = daemon
            .wait_for_line(
                |l| {
                    let words: Vec<&str> = l.split_whitespace().collect();
                    words.len() == 5 && words[0] == "victim0" && words[1] == pid.to_string()
                },
                LINE_WAIT,
            )
            .unwrap_or_else(|| panic!("no table row for the victim: {:#?}", daemon.lines()));
        // name, pid, prio (SCHED_FIFO 5 is kernel prio 94), switches, seconds waited.
        assert_eq!(row.split_whitespace().nth(2), Some("94"), "{row}");
    }

    starver.wait_event("victim_starved", LINE_WAIT);
    let expected: &[u64] = if mode == "-O" { &[3, 4, 5, 6] } else { &[3, 6] };
    wait_reports(&daemon, &[pid], expected.len());
    let waits = reported_waits(&daemon, pid);
    assert!(
        waits.len() >= expected.len() && waits[..expected.len()] == *expected,
        "{mode} -l reports {waits:?}, expected {expected:?} first\n{:#?}",
        daemon.lines()
    );
    if mode != "-O" {
        assert!(!waits.contains(&4), "{waits:?}");
    }
    assert!(!daemon.lines().iter().any(|l| l.contains("boosted pid")));
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

/// `-l` in power mode reports as the C stalld does: per CPU and check only the task that has
/// waited longest. Two tasks that start waiting together give one line per check, the same
/// task each time with its wait growing (3, 4, 5, 6 s), never two lines with the same wait.
fn log_only_power_mode_reports_one_task_per_cpu_and_check(backend: &str) {
    let Some(_session) = StarvationSession::begin(&format!("one report per check {backend}"))
    else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start(
        backend,
        &["-l", "-t", "3", "-g", "1", "-d", "1", "-c", &cpu],
    );
    // As long as the cadence test above: sched_debug sees a wait up to a granularity late.
    let starver = Starver::spawn(&["--duration", "9", "--victims", "2"]);
    let pids = starver.victim_pids();
    starver.wait_event("victim_starved", LINE_WAIT);
    wait_reports(&daemon, &pids, 4);
    let reports: Vec<(i32, u64)> = pids
        .iter()
        .flat_map(|&pid| {
            reported_waits(&daemon, pid)
                .into_iter()
                .map(move |w| (pid, w))
        })
        .collect();
    let reported: Vec<i32> = reports.iter().map(|&(pid, _)| pid).collect();
    let mut waits: Vec<u64> = reports.iter().map(|&(_, wait)| wait).collect();
    waits.sort();
    assert!(
        waits.len() >= 4 && waits[..4] == [3, 4, 5, 6],
        "reports {reports:?}\n{:#?}",
        daemon.lines()
    );
    assert!(
        reported.iter().all(|&pid| pid == reported[0]),
        "two tasks reported: {reports:?}"
    );
    let mut unique = waits.clone();
    unique.dedup();
    assert_eq!(unique, waits, "one report per check: {reports:?}");
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

/// A harness written for the C stalld: start it with `-v` and default settings, wait for a
/// per-check line, then proceed. On an idle CPU the idle-detection lines follow.
fn a_c_stalld_harness_proceeds(backend: &str) {
    let Some(_session) = StarvationSession::begin(&format!("harness {backend}")) else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start(backend, &["-l", "-c", &cpu]);
    // On stderr, while the table that may have ended `start` is on stdout: the two are read
    // apart. Within less than a granularity (5 s by default): the first check's.
    assert!(
        daemon
            .wait_for_line(
                |l| l.contains("some cpus ran, so run-queues should be parsed"),
                FIRST_CHECK_WITHIN
            )
            .is_some(),
        "the first check parses every CPU: {:#?}",
        daemon.lines()
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

macro_rules! for_each_backend {
    ($($scenario:ident($($arg:expr),*)),* $(,)?) => {
        mod sched_debug {
            $( #[test] fn $scenario() { super::$scenario("sched_debug" $(, $arg)*) } )*
        }
        mod queue_track {
            $( #[test] fn $scenario() { super::$scenario("queue_track" $(, $arg)*) } )*
        }
    };
}

fn power_mode(backend: &str) {
    verbose_lines_and_log_only_cadence(backend, "-O");
}

fn adaptive_mode(backend: &str) {
    verbose_lines_and_log_only_cadence(backend, "-M");
}

fn aggressive_mode(backend: &str) {
    verbose_lines_and_log_only_cadence(backend, "-A");
}

for_each_backend!(
    power_mode(),
    adaptive_mode(),
    aggressive_mode(),
    a_c_stalld_harness_proceeds(),
    log_only_power_mode_reports_one_task_per_cpu_and_check(),
);

/// sched_debug's worst case: a hog that starts just after a check, while the CPU was idle. The
/// C stalld skipped the next poll (the CPU had idle time in it) and first saw the victim a
/// granularity later: threshold + 2 × granularity. Bound: threshold + granularity + 1 s, here
/// with 1 s of slack for a loaded machine (`bench/sched_debug_worst_case.py` prints the
/// distribution).
#[test]
fn sched_debug_rescues_within_threshold_plus_granularity_plus_one_second() {
    let Some(_session) = StarvationSession::begin("sched_debug_worst_case") else {
        return;
    };
    let (threshold, granularity) = (3.0, 5.0);
    let cpu = last_cpu();
    let mut daemon = start("sched_debug", &["-t", "3", "-d", "1", "-c", &cpu]);
    // Just after the next check (a skip on an idle CPU, or a parse on a busy one).
    let before = daemon.lines().len();
    daemon
        .process
        .wait_until(Duration::from_secs(8), |lines| {
            (lines.len() > before
                && lines[before..]
                    .iter()
                    .any(|(_, l)| l.contains("skipping parse") || l.contains("checking cpu")))
            .then_some(())
        })
        .unwrap_or_else(|| panic!("no check: {:#?}", daemon.lines()));
    std::thread::sleep(Duration::from_millis(300));
    let starver = Starver::spawn(&["--duration", "20"]);
    let ran = starver.wait_event("victim_ran", Duration::from_secs(20));
    let waited = ran["wait_s"].as_f64().expect("wait_s");
    let bound = threshold + granularity + 1.0;
    assert!(
        waited <= bound + 1.0,
        "victim waited {waited:.2} s; bound {bound} s (+1 s slack)\n{:#?}",
        daemon.lines()
    );
    eprintln!("sched_debug, hog 0.3 s after a check: victim waited {waited:.2} s");
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}
