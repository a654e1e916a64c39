//! End-to-end tests of the starvation generator `stalld-starve` (no daemon involved), and of
//! the harness in `common` that the daemon's end-to-end tests build on.
//!
//! They establish what the daemon's tests take for granted: without help a SCHED_FIFO victim
//! behind the hog really starves for the whole run, a boosted victim reports its wait, and
//! `sched_rt_runtime_us` comes back on every way out.

mod common;

use std::time::{Duration, Instant};

use common::{
    policy_of, read_rt_runtime, starvers_left, Daemon, StarvationLock, StarvationSession, Starver,
};
use serde_json::Value;
use stalld::sys::{sched_setattr, SchedAttr, SCHED_DEADLINE, SCHED_FLAG_RESET_ON_FORK};

const EVENT_WAIT: Duration = Duration::from_secs(10);

fn assert_clean_after(session: &StarvationSession, starver: &Starver) {
    assert_eq!(
        read_rt_runtime(),
        session.rt_runtime.saved(),
        "stalld-starve did not restore sched_rt_runtime_us\n{}",
        starver.process.transcript()
    );
    assert_eq!(
        starvers_left(),
        Vec::<i32>::new(),
        "a stalld-starve process outlived its run"
    );
}

fn exits_cleanly(starver: &mut Starver, within: Duration) {
    let status = starver.wait_exit(within).unwrap_or_else(|| {
        panic!(
            "stalld-starve still running after {within:?}\n{}",
            starver.process.transcript()
        )
    });
    assert!(
        status.success(),
        "stalld-starve failed: {status}\n{}",
        starver.process.transcript()
    );
}

#[test]
fn fifo_victim_starves_for_the_whole_run_without_a_daemon() {
    let Some(session) =
        StarvationSession::begin("fifo_victim_starves_for_the_whole_run_without_a_daemon")
    else {
        return;
    };
    let began = Instant::now();
    let mut starver = Starver::spawn(&["--duration", "3", "--starve-after-ms", "200"]);
    let pids = starver.victim_pids();
    assert_eq!(pids.len(), 1);
    assert_eq!(policy_of(pids[0]), ("SCHED_FIFO".to_owned(), 5));
    assert_eq!(
        read_rt_runtime(),
        -1,
        "RT throttling should be off while the hog spins"
    );

    let outcome = starver
        .try_wait_any(&["victim_starved", "victim_ran"], EVENT_WAIT)
        .unwrap_or_else(|| {
            panic!(
                "no outcome for the victim\n{}",
                starver.process.transcript()
            )
        });
    let waited = outcome["waited_s"]
        .as_f64()
        .or(outcome["wait_s"].as_f64())
        .expect("a wait in seconds");
    eprintln!("victim without a daemon: {outcome}");
    assert!(
        waited >= 2.5,
        "the victim got the CPU after only {waited} s: {outcome}"
    );
    let done = starver.wait_event("done", EVENT_WAIT);
    assert_eq!(done["hog_stopped_by"], "watchdog");
    exits_cleanly(&mut starver, Duration::from_secs(5));
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "the 3 s watchdog took {:?}",
        began.elapsed()
    );
    assert_clean_after(&session, &starver);
}

#[test]
fn three_victims_are_each_reported() {
    let Some(session) = StarvationSession::begin("three_victims_are_each_reported") else {
        return;
    };
    let mut starver = Starver::spawn(&["--duration", "1", "--victims", "3"]);
    let ready: Vec<Value> = (0..3)
        .map(|_| starver.wait_event("victim_ready", EVENT_WAIT))
        .collect();
    let mut ready_pids: Vec<i64> = ready
        .iter()
        .map(|e| e["pid"].as_i64().expect("pid"))
        .collect();
    for event in &ready {
        assert_eq!(event["policy"], "SCHED_FIFO");
        assert_eq!(event["prio"], 5);
        assert_eq!(event["tgid"], starver.events()[0]["tgid"]);
    }
    ready_pids.sort_unstable();
    ready_pids.dedup();
    assert_eq!(
        ready_pids.len(),
        3,
        "three distinct victim threads: {ready:?}"
    );
    let mut started: Vec<i64> = starver.victim_pids().into_iter().map(i64::from).collect();
    started.sort_unstable();
    assert_eq!(started, ready_pids);
    for _ in 0..3 {
        starver.wait_event("victim_starved", EVENT_WAIT);
    }
    assert_eq!(
        starver.wait_event("done", EVENT_WAIT)["hog_stopped_by"],
        "watchdog"
    );
    exits_cleanly(&mut starver, Duration::from_secs(5));
    assert_clean_after(&session, &starver);
}

#[test]
fn victims_at_or_above_the_hog_priority_are_refused() {
    // Refused before anything is touched, so this needs no root; the lock is held anyway in
    // case a regression lets the run start.
    let _lock = StarvationLock::acquire();
    let before = read_rt_runtime();
    for args in [
        &["--victim-prio", "10"][..],
        &["--victim-prio", "20", "--hog-prio", "15"][..],
        &["--cpu", "0"][..],
    ] {
        let mut all = args.to_vec();
        all.extend(["--duration", "2"]);
        let mut starver = Starver::spawn(&all);
        let status = starver
            .wait_exit(Duration::from_secs(5))
            .expect("a refusal is immediate");
        let transcript = starver.process.transcript();
        assert_eq!(status.code(), Some(2), "{args:?}: {status}\n{transcript}");
        assert!(
            starver.events().is_empty(),
            "{args:?} started anyway\n{transcript}"
        );
        let message = if args[0] == "--cpu" {
            "refusing to starve CPU 0"
        } else {
            "must be below --hog-prio"
        };
        assert!(
            transcript.contains(message),
            "{args:?}: no clear error\n{transcript}"
        );
        assert_eq!(read_rt_runtime(), before);
    }
}

#[test]
fn sigterm_stops_the_run_promptly_and_restores_rt_runtime() {
    let Some(session) =
        StarvationSession::begin("sigterm_stops_the_run_promptly_and_restores_rt_runtime")
    else {
        return;
    };
    let mut starver = Starver::spawn(&["--duration", "10"]);
    starver.victim_pids();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read_rt_runtime(), -1);
    let asked = Instant::now();
    let status = starver.terminate(Duration::from_secs(2));
    let took = asked.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running 2 s after SIGTERM\n{}",
            starver.process.transcript()
        )
    });
    assert!(
        status.success(),
        "{status}\n{}",
        starver.process.transcript()
    );
    eprintln!("stalld-starve stopped {took:?} after SIGTERM");
    assert_eq!(
        starver.wait_event("victim_starved", Duration::ZERO)["victim"],
        0
    );
    assert_eq!(
        starver.wait_event("done", Duration::ZERO)["hog_stopped_by"],
        "signal"
    );
    assert_clean_after(&session, &starver);
}

/// On kernels with the fair deadline server a SCHED_OTHER victim gets CPU within about a
/// second; this exercises the `victim_ran` path, lingering and the early stop of the hog.
#[test]
fn other_victim_runs_through_the_fair_server_and_the_hog_stops_early() {
    let Some(session) = StarvationSession::begin(
        "other_victim_runs_through_the_fair_server_and_the_hog_stops_early",
    ) else {
        return;
    };
    let began = Instant::now();
    let mut starver = Starver::spawn(&[
        "--duration",
        "8",
        "--victim-policy",
        "other",
        "--linger",
        "0.5",
    ]);
    let pid = starver.victim_pids()[0];
    let ran = starver.wait_event("victim_ran", EVENT_WAIT);
    eprintln!("SCHED_OTHER victim: {ran}");
    assert_eq!(ran["pid"], pid);
    assert_eq!(ran["policy_when_ran"], "SCHED_OTHER");
    let wait = ran["wait_s"].as_f64().expect("wait_s");
    assert!(
        wait < 2.0,
        "the fair server should let the victim run within a second or so: {ran}"
    );
    assert_eq!(
        policy_of(pid),
        ("SCHED_OTHER".to_owned(), 0),
        "the lingering victim is inspectable"
    );
    assert_eq!(
        starver.wait_event("done", EVENT_WAIT)["hog_stopped_by"],
        "victims_done"
    );
    exits_cleanly(&mut starver, Duration::from_secs(5));
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "the hog should not wait for the watchdog"
    );
    assert_clean_after(&session, &starver);
}

/// Does by hand what stalld does: lends the starving victim SCHED_DEADLINE with upstream's
/// default 20 µs every second. The victim must get through its report on that budget.
#[test]
fn a_hand_boosted_victim_reports_its_wait_and_deadline_policy() {
    let Some(session) =
        StarvationSession::begin("a_hand_boosted_victim_reports_its_wait_and_deadline_policy")
    else {
        return;
    };
    let mut starver = Starver::spawn(&[
        "--duration",
        "8",
        "--starve-after-ms",
        "100",
        "--linger",
        "1",
    ]);
    let pid = starver.victim_pids()[0];
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        starver
            .try_wait_event("victim_ran", Duration::ZERO)
            .is_none(),
        "ran without a boost"
    );
    let boost = SchedAttr {
        flags: SCHED_FLAG_RESET_ON_FORK,
        runtime: 20_000,
        deadline: 1_000_000_000,
        period: 1_000_000_000,
        ..SchedAttr::new(SCHED_DEADLINE)
    };
    let boosted_at = Instant::now();
    sched_setattr(pid, &boost).expect("boosting the victim");
    let ran = starver.wait_event("victim_ran", Duration::from_secs(3));
    eprintln!(
        "hand-boosted victim: {ran} (reported {:?} after the boost)",
        boosted_at.elapsed()
    );
    assert_eq!(ran["policy_when_ran"], "SCHED_DEADLINE");
    assert_eq!(ran["dl_runtime_ns"], 20_000);
    let wait = ran["wait_s"].as_f64().expect("wait_s");
    assert!(
        (0.4..2.0).contains(&wait),
        "boosted after ~0.5 s of starvation, wait was {wait}: {ran}"
    );
    // Restore as stalld would; the victim lingers asleep, so its policy can be read back.
    let fifo5 = SchedAttr {
        rt_priority: 5,
        ..SchedAttr::new(stalld::sys::SCHED_FIFO)
    };
    sched_setattr(pid, &fifo5).expect("restoring the victim");
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 5));
    assert_eq!(
        starver.wait_event("done", EVENT_WAIT)["hog_stopped_by"],
        "victims_done"
    );
    exits_cleanly(&mut starver, Duration::from_secs(5));
    assert_clean_after(&session, &starver);
}

#[test]
fn harness_daemon_collects_both_streams_and_terminates() {
    let script = "echo to-out; echo to-err >&2; trap 'echo got-term; exit 3' TERM; \
                  while :; do sleep 0.05; done";
    let mut daemon = Daemon::spawn_program("sh", &["-c", script]);
    assert_eq!(
        daemon
            .wait_for_line(|l| l == "to-err", Duration::from_secs(5))
            .as_deref(),
        Some("to-err")
    );
    assert!(daemon
        .wait_for_regex("^to-o.t$", Duration::from_secs(5))
        .is_some());
    assert_eq!(daemon.stderr_lines(), vec!["to-err".to_owned()]);
    assert!(daemon
        .wait_for_line(|l| l == "never", Duration::from_millis(100))
        .is_none());
    let status = daemon.terminate().expect("sh exits on SIGTERM");
    assert_eq!(status.code(), Some(3));
    assert!(
        daemon.lines().contains(&"got-term".to_owned()),
        "{:?}",
        daemon.lines()
    );

    let mut quick = Daemon::spawn_program("sh", &["-c", "echo bad option >&2; exit 22"]);
    assert_eq!(
        quick
            .wait_exit(Duration::from_secs(5))
            .and_then(|s| s.code()),
        Some(22)
    );
    assert_eq!(quick.lines(), vec!["bad option".to_owned()]);
}
