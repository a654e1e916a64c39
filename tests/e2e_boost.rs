//! End-to-end tests of what a boost gives its task and of restores nobody can dodge, as root
//! against real starvation on the last CPU (made by `stalld-starve`): a FIFO boost that cannot
//! run its task says so and escalates instead of ending as if all went well, a boosted task
//! that lowers its own policy without privilege gets its own attributes back, and a task that
//! runs at SCHED_FIFO 98 on its own is boosted like any other.

mod common;

use std::time::Duration;

use common::{last_cpu, only_victim as victim, policy_of, Daemon, StarvationSession, Starver};

const LINE_WAIT: Duration = Duration::from_secs(15);

fn start_daemon(args: &[&str]) -> Daemon {
    Daemon::start(&[], "queue_track", args)
}

fn wait_line(daemon: &Daemon, needle: &str) -> String {
    daemon
        .wait_for_line(|line| line.contains(needle), LINE_WAIT)
        .unwrap_or_else(|| panic!("no line with {needle:?}\n{}", daemon.process.transcript()))
}

/// Waits until `n` lines contain `needle`.
fn wait_lines(daemon: &Daemon, needle: &str, n: usize) {
    daemon
        .process
        .wait_until(LINE_WAIT, |lines| {
            (lines.iter().filter(|(_, l)| l.contains(needle)).count() >= n).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "not {n} lines with {needle:?}\n{}",
                daemon.process.transcript()
            )
        });
}

fn count_lines(daemon: &Daemon, needle: &str) -> usize {
    daemon
        .lines()
        .iter()
        .filter(|line| line.contains(needle))
        .count()
}

/// `-F` against a SCHED_FIFO 99 hog: FIFO 98 cannot run the victim. Each phase holds it
/// longer (10, 20, ... 160 ms, never for ever), the boost ends as one that gave nothing (not
/// `restored`), and the next boost of the task starts with the longest hold at once.
#[test]
fn a_fifo_boost_that_cannot_run_its_task_says_so_and_escalates() {
    let Some(_session) = StarvationSession::begin("a_fifo_boost_that_cannot_run_its_task") else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start_daemon(&["-F", "-t", "2", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "8", "--hog-prio", "99"]);
    let pid = victim(&starver);
    let nothing = format!("the boost of pid {pid} gave it no CPU time: restored to SCHED_FIFO");
    wait_line(&daemon, &nothing);
    for hold in [20, 40, 80, 160] {
        let extended = format!(
            "pid {pid} did not get the CPU within its SCHED_FIFO phase: held at SCHED_FIFO 98 for up to {hold} ms now"
        );
        assert_eq!(count_lines(&daemon, &extended), 1, "{extended}");
    }
    // Found starving again (its wait went on), boosted again: no hold to climb this time.
    wait_lines(&daemon, &format!("boosted pid {pid} ("), 2);
    wait_lines(&daemon, &nothing, 2);
    assert_eq!(
        count_lines(&daemon, "within its SCHED_FIFO phase"),
        4,
        "{}",
        daemon.process.transcript()
    );
    assert_eq!(count_lines(&daemon, &format!("restored pid {pid} ")), 0);
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 5));
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

/// What an unprivileged boosted task may do to its own policy, and what it gets back. The
/// victim drops to user `nobody` before it starves, and switches itself to `sets_itself`
/// the moment it runs under the boost.
fn a_task_that_switches_itself_from_its_boost(force_fifo: bool, sets_itself: &str) {
    let Some(_session) = StarvationSession::begin("a_task_that_switches_itself") else {
        return;
    };
    let cpu = last_cpu();
    let mut args = vec!["-t", "2", "-d", "2", "-c", &cpu];
    if force_fifo {
        args.insert(0, "-F");
    }
    let mut daemon = start_daemon(&args);
    let starver = Starver::spawn(&[
        "--duration",
        "15",
        "--linger",
        common::LINGER,
        "--victim-uid",
        "65534",
        "--victim-sets-itself",
        sets_itself,
    ]);
    let pid = victim(&starver);
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    assert_eq!(ran["set_itself_error"], serde_json::Value::Null, "{ran}");
    let expected_boost = if force_fifo {
        "SCHED_FIFO"
    } else {
        "SCHED_DEADLINE"
    };
    assert_eq!(ran["policy_when_ran"], expected_boost, "{ran}");
    let switched = if sets_itself == "other" {
        "SCHED_OTHER"
    } else {
        "SCHED_FIFO"
    };
    let line = wait_line(&daemon, &format!("restored pid {pid} to SCHED_FIFO"));
    assert!(
        line.contains(&format!("its own switch to {switched} undone")),
        "{line}"
    );
    // Its own attributes, not the ones it gave itself from the boost.
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 5));
    assert_eq!(count_lines(&daemon, "during its boost: leaving it so"), 0);
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

/// The hole of the issue: from FIFO 98 an unprivileged task may lower itself to FIFO 97, and
/// it kept that for good, taken for someone else's change.
#[test]
fn a_task_that_lowers_itself_from_fifo_98_gets_its_own_policy_back() {
    a_task_that_switches_itself_from_its_boost(true, "fifo:97");
}

/// From SCHED_DEADLINE an unprivileged task may go to SCHED_OTHER (never change DEADLINE,
/// nor take SCHED_FIFO without RLIMIT_RTPRIO).
#[test]
fn a_task_that_leaves_its_deadline_boost_gets_its_own_policy_back() {
    a_task_that_switches_itself_from_its_boost(false, "other");
}

/// A task may run at SCHED_FIFO 98 on its own: it is not taken for one of stalld's boosts,
/// it is boosted (above a FIFO 99 hog, SCHED_DEADLINE is the only way) and gets FIFO 98 back.
#[test]
fn a_task_at_fifo_98_of_its_own_is_boosted_and_gets_it_back() {
    let Some(_session) = StarvationSession::begin("a_task_at_fifo_98_of_its_own") else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start_daemon(&["-t", "2", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&[
        "--duration",
        "15",
        "--linger",
        common::LINGER,
        "--hog-prio",
        "99",
        "--victim-prio",
        "98",
    ]);
    let pid = victim(&starver);
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 98));
    wait_line(&daemon, &format!("boosted pid {pid} ("));
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    assert_eq!(ran["policy_when_ran"], "SCHED_DEADLINE", "{ran}");
    wait_line(&daemon, &format!("restored pid {pid} to SCHED_FIFO"));
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 98));
    assert_eq!(count_lines(&daemon, "failed to boost"), 0);
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}
