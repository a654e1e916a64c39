//! The load scenario, as root: 10,000 extra threads on the machine and 100 victims starving at
//! once behind one hog on the last CPU, with the default backend. Every victim must be boosted
//! soon after the threshold (the C stalld boosts one task per CPU per cycle), every boost must
//! end in a restore, and RT throttling must come back. `bench/load.py` measures the
//! distribution; this test asserts the outcome with slack for a shared machine.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{last_cpu, read_rt_runtime, Daemon, StarvationSession, Starver};

const VICTIMS: usize = 100;
const IDLE_THREADS: &str = "10000";
const THRESHOLD_S: f64 = 3.0;
/// The goal is threshold + 100 ms; the slack is for other jobs on a shared CI machine.
const SLACK_S: f64 = 0.25;

/// Nanoseconds on CPU of every thread of a process (`/proc/PID/task/*/schedstat`).
fn cpu_ns(pid: i32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn a_hundred_victims_among_ten_thousand_threads_are_all_boosted_and_restored() {
    let Some(session) = StarvationSession::begin("a_hundred_victims_among_ten_thousand_threads")
    else {
        return;
    };
    let cpu = last_cpu();
    // As deployed (the unit's chrt), so a busy CI CPU 0 does not decide the latency; with
    // the runtime of every test that bounds a wait. This test is about 100 boosts at once.
    let options = format!("-f -v -t 3 -d 1 -r {} -c {cpu}", common::BOOST_RUNTIME);
    let mut argv = vec!["-f", "10", env!("CARGO_BIN_EXE_stalld")];
    argv.extend(options.split(' '));
    let mut daemon = Daemon::spawn_program("chrt", &argv);
    daemon
        .wait_for_line(|l| l.contains("started: "), Duration::from_secs(30))
        .unwrap_or_else(|| panic!("daemon did not start: {:#?}", daemon.lines()));
    let daemon_pid = daemon.process.program_pid();
    let cpu_before = cpu_ns(daemon_pid);
    let starver = Starver::spawn(&[
        "--duration",
        "60",
        // Alive long after their restores: the test reads their policies then, and reading
        // 100 victims' reports took more than 6 s with CPU 0 busy.
        "--linger",
        "20",
        "--victims",
        &VICTIMS.to_string(),
        "--idle-threads",
        IDLE_THREADS,
    ]);
    let victims = starver.victim_pids();
    assert_eq!(victims.len(), VICTIMS);

    let mut waits = Vec::new();
    for _ in 0..VICTIMS {
        let outcome = starver
            .try_wait_any(&["victim_ran", "victim_starved"], Duration::from_secs(30))
            .unwrap_or_else(|| panic!("a victim never reported\n{}", daemon.lines().join("\n")));
        assert_eq!(outcome["event"], "victim_ran", "{outcome}");
        assert_eq!(outcome["policy_when_ran"], "SCHED_DEADLINE", "{outcome}");
        waits.push(outcome["wait_s"].as_f64().unwrap() - THRESHOLD_S);
    }
    waits.sort_by(f64::total_cmp);
    let ms = |s: f64| s * 1000.0;
    eprintln!(
        "boost latency beyond the threshold, {VICTIMS} victims: min {:.1} ms, median {:.1} ms, \
         p90 {:.1} ms, max {:.1} ms; within 100 ms: {}",
        ms(waits[0]),
        ms(waits[VICTIMS / 2]),
        ms(waits[VICTIMS * 9 / 10]),
        ms(waits[VICTIMS - 1]),
        waits.iter().filter(|&&w| w <= 0.1).count()
    );
    assert!(
        waits[0] >= -0.05 && waits[VICTIMS - 1] <= SLACK_S,
        "waits beyond the threshold (s): {waits:?}\n{}",
        daemon.process.transcript()
    );

    // Every boost ends in a restore while the victims still linger, asleep.
    let restored: HashSet<i32> = daemon
        .process
        .wait_until(Duration::from_secs(15), |lines| {
            let restored: HashSet<i32> = lines
                .iter()
                .filter_map(|(_, l)| {
                    let rest = l.split("restored pid ").nth(1)?;
                    rest.split(' ').next()?.parse().ok()
                })
                .collect();
            victims
                .iter()
                .all(|v| restored.contains(v))
                .then_some(restored)
        })
        .unwrap_or_else(|| {
            panic!(
                "not every victim was restored\n{}",
                daemon.lines().join("\n")
            )
        });
    for &victim in &victims {
        assert!(restored.contains(&victim));
        let attr = stalld::sys::sched_getattr(victim).unwrap_or_else(|err| {
            panic!(
                "victim {victim}: {err}\n{}\n{}",
                starver.process.transcript(),
                daemon.process.transcript()
            )
        });
        assert_eq!(
            (attr.policy, attr.rt_priority),
            (stalld::sys::SCHED_FIFO, 5),
            "victim {victim} left with another policy"
        );
    }
    let cpu_ms = (cpu_ns(daemon_pid) - cpu_before) as f64 / 1e6;
    // A victim found starving again after its boost did not get through its report and into
    // its sleep on the boost's runtime (e.g. blocked on a lock whose holder starved).
    let reports = daemon
        .lines()
        .iter()
        .filter(|line| line.contains(" starved on CPU "))
        .count();
    eprintln!(
        "daemon CPU time over the scenario: {cpu_ms:.1} ms; {} starvations reported beyond one per victim",
        reports.saturating_sub(VICTIMS)
    );
    // About 30 ms released and 70 ms debug here: a bound that catches a busy loop, not noise.
    assert!(
        cpu_ms < 500.0,
        "the daemon used {cpu_ms:.1} ms of CPU for 100 boosts"
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
    assert_eq!(
        read_rt_runtime(),
        session.rt_runtime.saved(),
        "RT throttling not restored"
    );
}
