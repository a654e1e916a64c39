//! The booster's decisions against a fake kernel and a fake ledger: no root needed.

use super::fake::{world, Call, FakeLedger, FakeSched, Shared};
use super::*;
use crate::sys::SCHED_OTHER;
use std::time::Duration;

const VICTIM: Pid = 87;
const START: u64 = 4242;

fn params(policy: BoostPolicy) -> BoostParams {
    BoostParams {
        policy,
        runtime: Duration::from_micros(20),
        period: Duration::from_secs(1),
        duration: Duration::from_secs(3),
    }
}

fn booster(policy: BoostPolicy) -> Booster {
    Booster::new(params(policy))
}

fn fifo5() -> SchedAttr {
    SchedAttr {
        rt_priority: 5,
        ..SchedAttr::new(SCHED_FIFO)
    }
}

/// A booster on a fake kernel holding one SCHED_FIFO 5 victim.
fn faked(params: BoostParams) -> (Booster, Shared) {
    let world = world();
    world.borrow_mut().spawn(VICTIM, START, fifo5());
    let booster = Booster::with(
        params,
        Box::new(FakeSched(world.clone())),
        Box::new(FakeLedger(world.clone())),
    );
    (booster, world)
}

/// The same with a `-F` booster whose FIFO phases last 10 ms of every second.
fn faked_fifo() -> (Booster, Shared) {
    faked(BoostParams {
        runtime: Duration::from_millis(10),
        ..params(BoostPolicy::Fifo)
    })
}

fn at(ms: u64) -> MonoTime {
    MonoTime(1_000_000_000_000 + ms * 1_000_000)
}

/// Runs `advance` at `now`, returning the outcomes as short names.
fn advance(booster: &mut Booster, now: MonoTime) -> Vec<String> {
    let mut outcomes = Vec::new();
    booster.advance(now, |boost, outcome| {
        outcomes.push(format!("{}:{}", boost.pid, name(&outcome)));
    });
    outcomes
}

fn name(outcome: &Restore) -> String {
    match outcome {
        Restore::Restored => "restored".into(),
        Restore::Exited => "exited".into(),
        Restore::ChangedMeanwhile { .. } => "changed".into(),
        Restore::Retry { attempt, delay, .. } => format!("retry{attempt}@{}ms", delay.as_millis()),
        Restore::Failed(_) => "failed".into(),
    }
}

#[test]
fn restoring_a_fair_task_drops_the_reported_slice_only() {
    let fair = SchedAttr {
        nice: 5,
        runtime: 2_800_000,
        flags: SCHED_FLAG_RESET_ON_FORK,
        ..SchedAttr::new(SCHED_OTHER)
    };
    let restored = restorable(fair);
    assert_eq!(restored.runtime, 0);
    assert_eq!(
        (restored.nice, restored.flags, restored.policy),
        (5, SCHED_FLAG_RESET_ON_FORK, SCHED_OTHER)
    );
    assert_eq!(restorable(fifo5()), fifo5());
}

#[test]
fn the_deadline_boost_has_reset_on_fork() {
    let attr = booster(BoostPolicy::Deadline).boost_attr(BoostPolicy::Deadline);
    assert_eq!(attr.policy, SCHED_DEADLINE);
    assert_eq!(
        attr.flags & SCHED_FLAG_RESET_ON_FORK,
        SCHED_FLAG_RESET_ON_FORK
    );
    assert_eq!(
        (attr.runtime, attr.deadline, attr.period),
        (20_000, 1_000_000_000, 1_000_000_000)
    );
}

#[test]
fn the_fifo_boost_is_priority_98() {
    let booster = booster(BoostPolicy::Fifo);
    let attr = booster.boost_attr(BoostPolicy::Fifo);
    assert_eq!((attr.policy, attr.rt_priority), (SCHED_FIFO, 98));
    assert!(holds_boost(&attr, 20_000, 1_000_000_000));
    assert!(!holds_boost(
        &SchedAttr {
            rt_priority: 97,
            ..attr
        },
        20_000,
        1_000_000_000
    ));
    assert_eq!(booster.policy_name(), "SCHED_FIFO");
}

#[test]
fn a_boost_is_recorded_before_it_is_applied_and_forgotten_after_the_restore() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    let boost = booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    assert_eq!((boost.start, boost.saved), (START, fifo5()));
    assert_eq!(world.borrow().attr(VICTIM).policy, SCHED_DEADLINE);
    assert!(advance(&mut booster, at(2_999)).is_empty());
    assert_eq!(advance(&mut booster, at(3_000)), ["87:restored"]);
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    let calls = world.borrow().calls.clone();
    assert!(matches!(calls[0], Call::Record(VICTIM)), "{calls:?}");
    assert!(matches!(calls[1], Call::Set(VICTIM, a) if a.policy == SCHED_DEADLINE));
    assert!(matches!(calls[2], Call::Set(VICTIM, a) if a == fifo5()));
    assert_eq!(calls[3], Call::Forget(VICTIM));
    assert_eq!(calls.len(), 4);
    assert_eq!(booster.next_event(), None);
}

#[test]
fn a_boost_that_cannot_be_recorded_is_not_applied() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    world.borrow_mut().record_errors.push_back(libc::ENOSPC);
    let error = booster.boost(VICTIM, 1, 7, at(0)).unwrap_err();
    assert!(matches!(error, BoostError::Ledger(_)), "{error}");
    assert!(
        error.to_string().contains("could not be recorded"),
        "{error}"
    );
    assert!(world.borrow().sets().is_empty());
    assert!(!booster.is_boosted(VICTIM));
}

#[test]
fn a_refused_boost_is_struck_from_the_ledger() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    world.borrow_mut().setattr_errors.push_back(libc::EBUSY);
    assert!(matches!(
        booster.boost(VICTIM, 1, 7, at(0)),
        Err(BoostError::System(_))
    ));
    let calls = world.borrow().calls.clone();
    assert_eq!(calls.first(), Some(&Call::Record(VICTIM)));
    assert_eq!(calls.last(), Some(&Call::Forget(VICTIM)));
    assert!(!booster.is_boosted(VICTIM));
}

#[test]
fn deadline_tasks_and_missing_tasks_are_not_boosted() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    world
        .borrow_mut()
        .spawn(9, 1, booster.boost_attr(BoostPolicy::Deadline));
    assert!(matches!(
        booster.boost(9, 1, 0, at(0)),
        Err(BoostError::AlreadyDeadline)
    ));
    assert!(matches!(
        booster.boost(10, 1, 0, at(0)),
        Err(BoostError::System(e)) if e.raw_os_error() == Some(libc::ESRCH)
    ));
    assert!(world.borrow().calls.is_empty());
}

#[test]
fn fifo_boosts_emulate_a_reservation_and_end_with_the_tasks_own_policy() {
    let (mut booster, world) = faked_fifo();
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    let attr = |world: &Shared| world.borrow().attr(VICTIM);
    assert_eq!(
        (attr(&world).policy, attr(&world).rt_priority),
        (SCHED_FIFO, 98)
    );
    assert_eq!(booster.next_event(), Some(at(10)));
    // The runtime is over: its own policy until the next period.
    assert!(advance(&mut booster, at(10)).is_empty());
    assert_eq!(attr(&world), fifo5());
    assert_eq!(booster.next_event(), Some(at(1_000)));
    // The next period: FIFO 98 again.
    assert!(advance(&mut booster, at(1_000)).is_empty());
    assert_eq!(attr(&world).rt_priority, 98);
    assert!(advance(&mut booster, at(1_010)).is_empty());
    assert!(advance(&mut booster, at(2_000)).is_empty());
    assert!(advance(&mut booster, at(2_010)).is_empty());
    // The end comes between phases: nothing to restore, the record goes.
    assert_eq!(advance(&mut booster, at(3_000)), ["87:restored"]);
    assert_eq!(attr(&world), fifo5());
    assert_eq!(world.borrow().calls.last(), Some(&Call::Forget(VICTIM)));
}

#[test]
fn fifo_toggles_never_touch_a_task_that_took_the_pid_of_an_exited_one() {
    let (mut booster, world) = faked_fifo();
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    assert!(advance(&mut booster, at(10)).is_empty());
    // The victim exits; an unrelated task gets its pid.
    world
        .borrow_mut()
        .spawn(VICTIM, START + 1, SchedAttr::new(SCHED_OTHER));
    let sets_before = world.borrow().sets().len();
    assert_eq!(advance(&mut booster, at(1_000)), ["87:exited"]);
    assert_eq!(world.borrow().sets().len(), sets_before, "no setattr");
    assert_eq!(world.borrow().attr(VICTIM), SchedAttr::new(SCHED_OTHER));
}

#[test]
fn a_restore_never_touches_a_task_that_took_the_pid_of_an_exited_one() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    let boosted = booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    // Even one that happens to hold the same boost attributes.
    let look_alike = booster.boost_attr(BoostPolicy::Deadline);
    world.borrow_mut().spawn(VICTIM, START + 9, look_alike);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:exited"]);
    assert_eq!(world.borrow().attr(VICTIM), look_alike);
    let record = booster.record_of(&boosted);
    assert!(matches!(
        restore(&mut FakeSched(world.clone()), &record),
        Restore::Exited
    ));
}

#[test]
fn a_deadline_boost_that_did_not_run_its_task_becomes_a_fifo_boost() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    assert_eq!(booster.next_event(), Some(at(100)));
    assert!(
        booster.verify(at(99), |_, _| true).is_empty(),
        "not due yet"
    );
    let switched = booster.verify(at(100), |pid, switches| pid == VICTIM && switches == 7);
    assert_eq!(switched.len(), 1);
    assert_eq!(switched[0].policy, BoostPolicy::Fifo);
    assert_eq!(world.borrow().attr(VICTIM).rt_priority, FIFO_BOOST_PRIORITY);
    // From then on it alternates like any FIFO boost, and ends restored.
    assert_eq!(
        booster.next_event(),
        Some(at(100).after(Duration::from_micros(20)))
    );
    assert!(
        booster.verify(at(200), |_, _| true).is_empty(),
        "verified once"
    );
}

#[test]
fn a_fifo_phase_is_timed_from_the_moment_the_task_got_the_boost() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    // The identity check and the system call took 30 µs after the snapshot (`now`): the
    // 20 µs runtime counts from then, or the phase would be over before it began.
    let switched_at = at(100).after(Duration::from_micros(30));
    world.borrow_mut().clock = switched_at;
    assert_eq!(booster.verify(at(100), |_, _| true).len(), 1);
    assert_eq!(
        booster.next_event(),
        Some(switched_at.after(Duration::from_micros(20)))
    );
}

#[test]
fn a_deadline_boost_that_ran_its_task_stays_deadline() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    assert!(booster.verify(at(100), |_, _| false).is_empty());
    assert_eq!(world.borrow().attr(VICTIM).policy, SCHED_DEADLINE);
    assert_eq!(booster.next_event(), Some(at(3_000)));
}

#[test]
fn the_fallback_does_not_boost_a_task_that_took_the_pid() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    world
        .borrow_mut()
        .spawn(VICTIM, START + 1, SchedAttr::new(SCHED_OTHER));
    assert!(booster.verify(at(100), |_, _| true).is_empty());
    assert_eq!(world.borrow().attr(VICTIM), SchedAttr::new(SCHED_OTHER));
}

#[test]
fn a_verification_waiting_for_a_snapshot_is_no_timed_event_and_never_blocks_the_end() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    assert_eq!(booster.next_event(), Some(at(100)), "wake for the check");
    // No snapshot since (the backend fails): what the loop sleeps for is the end of the boost
    // (or its own retry delay), so it does not spin on the overdue check.
    for now in [100, 101, 500, 2_999] {
        assert!(advance(&mut booster, at(now)).is_empty());
        assert_eq!(booster.next_timed_event(), Some(at(3_000)), "at {now} ms");
    }
    // And the boost still ends on time.
    assert_eq!(advance(&mut booster, at(3_000)), ["87:restored"]);
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
}

#[test]
fn a_task_changed_during_its_boost_keeps_the_change() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    let theirs = SchedAttr {
        rt_priority: 50,
        ..SchedAttr::new(SCHED_FIFO)
    };
    world.borrow_mut().spawn(VICTIM, START, theirs);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:changed"]);
    assert_eq!(world.borrow().attr(VICTIM), theirs);
    assert_eq!(world.borrow().calls.last(), Some(&Call::Forget(VICTIM)));
}

#[test]
fn a_task_that_exited_during_its_boost_is_forgotten() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    world.borrow_mut().tasks.clear();
    assert_eq!(advance(&mut booster, at(3_000)), ["87:exited"]);
    assert_eq!(world.borrow().calls.last(), Some(&Call::Forget(VICTIM)));
}

#[test]
fn failed_restores_are_retried_with_growing_pauses_then_left_to_the_ledger() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    world
        .borrow_mut()
        .setattr_errors
        .extend([libc::EPERM; RESTORE_ATTEMPTS as usize]);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:retry1@100ms"]);
    assert!(booster.is_boosted(VICTIM), "still ours to restore");
    assert_eq!(booster.next_event(), Some(at(3_100)));
    assert!(advance(&mut booster, at(3_099)).is_empty());
    assert_eq!(advance(&mut booster, at(3_100)), ["87:retry2@200ms"]);
    assert_eq!(advance(&mut booster, at(3_300)), ["87:retry3@400ms"]);
    assert_eq!(advance(&mut booster, at(3_700)), ["87:retry4@800ms"]);
    assert_eq!(advance(&mut booster, at(4_500)), ["87:failed"]);
    assert!(!booster.is_boosted(VICTIM));
    let world = world.borrow();
    assert_eq!(world.sets().len(), 1 + RESTORE_ATTEMPTS as usize);
    assert!(
        !world.calls.contains(&Call::Forget(VICTIM)),
        "a task that may still hold the boost stays in the ledger"
    );
}

#[test]
fn a_task_whose_restore_failed_is_not_boosted_over_its_record() {
    let (mut booster, world) = faked_fifo();
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    // The FIFO phase ends and cannot be given back, ever: the task keeps FIFO 98.
    world
        .borrow_mut()
        .setattr_errors
        .extend([libc::EPERM; RESTORE_ATTEMPTS as usize]);
    let mut outcomes = Vec::new();
    for ms in [10, 110, 310, 710, 1_510] {
        outcomes.extend(advance(&mut booster, at(ms)));
    }
    assert_eq!(outcomes.last().map(String::as_str), Some("87:failed"));
    assert!(!booster.is_boosted(VICTIM));
    let records = world
        .borrow()
        .calls
        .iter()
        .filter(|call| **call == Call::Record(VICTIM))
        .count();
    // It starves again: its record (FIFO 5) must not be replaced by one saying FIFO 98.
    assert!(matches!(
        booster.boost(VICTIM, 1, 9, at(2_000)),
        Err(BoostError::StillBoosted)
    ));
    let world = world.borrow();
    assert_eq!(
        world
            .calls
            .iter()
            .filter(|call| **call == Call::Record(VICTIM))
            .count(),
        records
    );
}

#[test]
fn a_live_task_whose_start_time_cannot_be_read_is_retried_not_forgotten() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    world.borrow_mut().unreadable_start.push(VICTIM);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:retry1@100ms"]);
    assert!(booster.is_boosted(VICTIM));
    world.borrow_mut().unreadable_start.clear();
    assert_eq!(advance(&mut booster, at(3_100)), ["87:restored"]);
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
}

#[test]
fn a_retried_restore_that_succeeds_is_forgotten() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    world.borrow_mut().setattr_errors.push_back(libc::EBUSY);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:retry1@100ms"]);
    assert_eq!(advance(&mut booster, at(3_100)), ["87:restored"]);
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    assert_eq!(world.borrow().calls.last(), Some(&Call::Forget(VICTIM)));
}

#[test]
fn a_fifo_phase_that_cannot_be_given_back_ends_the_boost_and_is_retried() {
    let (mut booster, world) = faked_fifo();
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    world.borrow_mut().setattr_errors.push_back(libc::EPERM);
    assert_eq!(advance(&mut booster, at(10)), ["87:retry1@100ms"]);
    assert_eq!(advance(&mut booster, at(110)), ["87:restored"]);
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
}

#[test]
fn shutdown_tries_each_restore_once_and_keeps_failures_in_the_ledger() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    world.borrow_mut().spawn(88, 1, SchedAttr::new(SCHED_OTHER));
    booster.boost(VICTIM, 1, 7, at(0)).unwrap();
    booster.boost(88, 1, 7, at(0)).unwrap();
    world.borrow_mut().setattr_errors.push_back(libc::EPERM);
    let mut outcomes = Vec::new();
    booster
        .restore_all(|boost, outcome| outcomes.push(format!("{}:{}", boost.pid, name(&outcome))));
    assert_eq!(outcomes, ["87:failed", "88:restored"]);
    let world = world.borrow();
    assert!(!world.calls.contains(&Call::Forget(VICTIM)));
    assert!(world.calls.contains(&Call::Forget(88)));
}

#[test]
fn a_record_restores_only_a_boost_of_its_own_parameters() {
    let world = world();
    let boost = boost_attr(BoostPolicy::Deadline, 20_000, 1_000_000_000);
    world.borrow_mut().spawn(VICTIM, START, boost);
    let record = BoostRecord {
        tid: VICTIM,
        start: START,
        cpu: 1,
        saved: fifo5(),
        runtime_ns: 50_000,
        period_ns: 1_000_000_000,
    };
    let mut sched = FakeSched(world.clone());
    assert!(matches!(
        restore(&mut sched, &record),
        Restore::ChangedMeanwhile {
            policy: SCHED_DEADLINE
        }
    ));
    let record = BoostRecord {
        runtime_ns: 20_000,
        ..record
    };
    assert!(matches!(restore(&mut sched, &record), Restore::Restored));
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    // A boost that fell back to FIFO is ours too.
    world
        .borrow_mut()
        .spawn(VICTIM, START, boost_attr(BoostPolicy::Fifo, 0, 0));
    assert!(matches!(restore(&mut sched, &record), Restore::Restored));
}

#[test]
fn retry_pauses_double() {
    assert_eq!(retry_delay(1), RESTORE_RETRY);
    assert_eq!(retry_delay(3), RESTORE_RETRY * 4);
}
