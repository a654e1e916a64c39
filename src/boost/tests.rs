//! The booster's decisions against a fake kernel and a fake ledger: no root needed.

use super::eligibility::Skip;
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

/// Runs `advance` at `now`, returning what it reported as short names.
fn advance(booster: &mut Booster, now: MonoTime) -> Vec<String> {
    let mut steps = Vec::new();
    booster.advance(now, |boost, step| {
        steps.push(format!("{}:{}", boost.pid, name(&step)));
    });
    steps
}

fn name(step: &Step) -> String {
    match step {
        Step::FifoFallback => "fifo".into(),
        Step::Escalated { hold } => format!("hold{}ms", hold.as_millis()),
        Step::Restore(outcome) => restore_name(outcome),
    }
}

fn restore_name(outcome: &Restore) -> String {
    match outcome {
        Restore::Restored => "restored".into(),
        Restore::Undone { .. } => "undone".into(),
        Restore::Exited => "exited".into(),
        Restore::ChangedMeanwhile { .. } => "changed".into(),
        Restore::Retry { attempt, delay, .. } => format!("retry{attempt}@{}ms", delay.as_millis()),
        Restore::Held { delay, .. } => format!("held@{}ms", delay.as_millis()),
        Restore::Failed(_) => "failed".into(),
    }
}

/// Something that happens to the fake kernel's tasks.
type Happening = fn(&mut fake::World);

/// Advances through `(µs after the boost, what happens to the victim first)` and returns
/// every report, with the time it came at.
fn run(booster: &mut Booster, world: &Shared, script: &[(u64, Happening)]) -> Vec<(u64, String)> {
    let mut reports = Vec::new();
    for (micros, happen) in script {
        happen(&mut world.borrow_mut());
        let now = at(0).after(Duration::from_micros(*micros));
        reports.extend(advance(booster, now).into_iter().map(|r| (*micros, r)));
    }
    reports
}

fn nothing(_: &mut fake::World) {}

/// The victim is measured from now on: it has run 5 ms in 40 turns so far.
fn measured(world: &Shared) {
    world.borrow_mut().measure(VICTIM, 5_000_000, 40);
}

fn record(runtime_ns: u64, policy: BoostPolicy) -> BoostRecord {
    BoostRecord {
        tid: VICTIM,
        start: START,
        cpu: 1,
        saved: fifo5(),
        runtime_ns,
        period_ns: 1_000_000_000,
        policy,
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
fn the_fifo_boost_is_priority_98_with_reset_on_fork() {
    let booster = booster(BoostPolicy::Fifo);
    let attr = booster.boost_attr(BoostPolicy::Fifo);
    assert_eq!((attr.policy, attr.rt_priority), (SCHED_FIFO, 98));
    let ours = record(20_000, BoostPolicy::Fifo);
    assert!(holds_boost(&attr, &ours));
    assert!(!holds_boost(
        &SchedAttr {
            rt_priority: 97,
            ..attr
        },
        &ours
    ));
    // A task at FIFO 98 on its own (no reset-on-fork) does not hold our boost.
    assert!(!holds_boost(&SchedAttr { flags: 0, ..attr }, &ours));
    // A DEADLINE record that never fell back does not take FIFO 98 for its boost.
    assert!(!holds_boost(&attr, &record(20_000, BoostPolicy::Deadline)));
    assert_eq!(booster.policy_name(), "SCHED_FIFO");
}

#[test]
fn a_boost_is_recorded_before_it_is_applied_and_forgotten_after_the_restore() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    let boost = booster.boost(VICTIM, 1, at(0)).unwrap();
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
    let error = booster.boost(VICTIM, 1, at(0)).unwrap_err();
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
        booster.boost(VICTIM, 1, at(0)),
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
        booster.boost(9, 1, at(0)),
        Err(BoostError::Skipped(Skip::AlreadyDeadline))
    ));
    assert!(matches!(
        booster.boost(10, 1, at(0)),
        Err(BoostError::System(e)) if e.raw_os_error() == Some(libc::ESRCH)
    ));
    assert!(world.borrow().calls.is_empty());
}

#[test]
fn fifo_boosts_emulate_a_reservation_and_end_with_the_tasks_own_policy() {
    let (mut booster, world) = faked_fifo();
    booster.boost(VICTIM, 1, at(0)).unwrap();
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
    booster.boost(VICTIM, 1, at(0)).unwrap();
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
    let boosted = booster.boost(VICTIM, 1, at(0)).unwrap();
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
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    assert_eq!(booster.next_event(), Some(at(100)), "the verification");
    assert!(advance(&mut booster, at(99)).is_empty(), "not due yet");
    let sets_before = world.borrow().sets().len();
    assert_eq!(advance(&mut booster, at(100)), ["87:fifo"]);
    assert_eq!(world.borrow().attr(VICTIM).rt_priority, FIFO_BOOST_PRIORITY);
    // The record said FIFO 98 is possible before FIFO 98 was applied.
    let world_now = world.borrow();
    let records = &world_now.records;
    assert_eq!(
        records.iter().map(|r| r.policy).collect::<Vec<_>>(),
        [BoostPolicy::Deadline, BoostPolicy::Fifo]
    );
    let calls = &world_now.calls;
    let fallback_record = calls.iter().rposition(|c| *c == Call::Record(VICTIM));
    let fallback_set = calls
        .iter()
        .rposition(|c| matches!(c, Call::Set(VICTIM, a) if a.policy == SCHED_FIFO));
    assert!(fallback_record < fallback_set, "{calls:?}");
    assert_eq!(world_now.sets().len(), sets_before + 1);
    drop(world_now);
    // From then on it is a FIFO phase, looked at a runtime later.
    assert_eq!(
        booster.next_event(),
        Some(at(100).after(Duration::from_micros(20)))
    );
}

#[test]
fn a_deadline_boost_that_ran_its_task_stays_deadline_and_counts_what_it_got() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    // It got the CPU (its CPU time is brought up to date only when it leaves it).
    world.borrow_mut().switch_in(VICTIM);
    assert!(advance(&mut booster, at(100)).is_empty());
    assert_eq!(world.borrow().attr(VICTIM).policy, SCHED_DEADLINE);
    assert_eq!(booster.next_event(), Some(at(3_000)));
    world.borrow_mut().run_for(VICTIM, 60_000);
    let mut ended = None;
    booster.advance(at(3_000), |boost, step| {
        ended = Some((boost.received(), boost.gave_nothing(), name(&step)))
    });
    assert_eq!(
        ended,
        Some((Some(Duration::from_micros(60)), false, "restored".into()))
    );
}

#[test]
fn the_verification_needs_nothing_but_the_time_and_never_holds_up_the_end() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    // A task whose run statistics cannot be read is not verified, and ends on time.
    booster.boost(VICTIM, 1, at(0)).unwrap();
    assert_eq!(booster.next_event(), Some(at(100)));
    assert!(advance(&mut booster, at(100)).is_empty());
    assert_eq!(world.borrow().attr(VICTIM).policy, SCHED_DEADLINE);
    assert_eq!(booster.next_event(), Some(at(3_000)));
    let mut ended = None;
    booster.advance(at(3_000), |boost, step| {
        ended = Some((boost.received(), boost.gave_nothing(), name(&step)))
    });
    assert_eq!(ended, Some((None, false, "restored".into())));
}

#[test]
fn the_fallback_does_not_boost_a_task_that_took_the_pid_or_changed_its_policy() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    world
        .borrow_mut()
        .spawn(VICTIM, START + 1, SchedAttr::new(SCHED_OTHER));
    assert!(advance(&mut booster, at(100)).is_empty());
    assert_eq!(world.borrow().attr(VICTIM), SchedAttr::new(SCHED_OTHER));

    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    let theirs = SchedAttr {
        rt_priority: 50,
        ..SchedAttr::new(SCHED_FIFO)
    };
    world.borrow_mut().spawn(VICTIM, START, theirs);
    assert!(advance(&mut booster, at(100)).is_empty());
    assert_eq!(world.borrow().attr(VICTIM), theirs);
}

/// The flaw of phases timed on the wall clock: on a machine where the switch takes longer
/// than the runtime (any virtual machine), the phase ended before the task ever ran.
#[test]
fn a_fifo_phase_lasts_until_the_task_has_received_its_runtime() {
    let (mut booster, world) = faked(params(BoostPolicy::Fifo));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    let holds_fifo = |world: &Shared| world.borrow().attr(VICTIM).rt_priority == 98;
    // 20 µs in, the task has not got the CPU yet: the phase goes on, looked at again after
    // pauses that double (20, 40, 80 µs...).
    assert!(run(&mut booster, &world, &[(20, nothing)]).is_empty());
    assert!(holds_fifo(&world));
    assert_eq!(
        booster.next_event(),
        Some(at(0).after(Duration::from_micros(40)))
    );
    assert!(run(&mut booster, &world, &[(40, nothing)]).is_empty());
    assert_eq!(
        booster.next_event(),
        Some(at(0).after(Duration::from_micros(80)))
    );
    // 300 µs in it gets the CPU: from then on it runs its 20 µs, and only then gives it back.
    run(&mut booster, &world, &[(300, |w| w.switch_in(VICTIM))]);
    assert!(holds_fifo(&world), "seen running, not yet for its runtime");
    assert_eq!(
        booster.next_event(),
        Some(at(0).after(Duration::from_micros(320)))
    );
    run(
        &mut booster,
        &world,
        &[(320, |w| w.run_for(VICTIM, 20_000))],
    );
    assert_eq!(world.borrow().attr(VICTIM), fifo5(), "its own policy back");
    // Until the next period.
    assert_eq!(booster.next_event(), Some(at(1_000)));
}

#[test]
fn a_running_task_whose_cpu_time_shows_its_runtime_gives_the_phase_back_at_once() {
    let (mut booster, world) = faked(params(BoostPolicy::Fifo));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    run(
        &mut booster,
        &world,
        &[(25, |w| {
            w.switch_in(VICTIM);
            w.run_for(VICTIM, 24_000)
        })],
    );
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
}

#[test]
fn looks_at_a_phase_whose_task_waits_grow_to_at_most_a_millisecond() {
    assert_eq!(
        look_pause(Duration::from_micros(20), Duration::from_micros(20)),
        Duration::from_micros(20)
    );
    assert_eq!(
        look_pause(Duration::from_micros(20), Duration::from_micros(300)),
        Duration::from_micros(300)
    );
    assert_eq!(
        look_pause(Duration::from_micros(20), Duration::from_millis(9)),
        PHASE_LOOK_MAX
    );
    // A runtime above the cap (up to 1 ms anyway) is the least pause.
    assert_eq!(
        look_pause(Duration::from_millis(2), Duration::ZERO),
        Duration::from_millis(2)
    );
}

#[test]
fn a_fifo_phase_that_runs_nothing_is_held_longer_up_to_a_bound_then_given_back() {
    let (mut booster, world) = faked(params(BoostPolicy::Fifo));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    let (mut reports, mut looks) = (Vec::new(), 0);
    let mut now = at(0);
    // Follow the booster's own schedule for the first period.
    while let Some(next) = booster.next_event().filter(|&next| next < at(1_000)) {
        now = next;
        looks += 1;
        reports.extend(advance(&mut booster, now));
        if world.borrow().attr(VICTIM) == fifo5() {
            break;
        }
    }
    // Looked at no more often than every millisecond after the first few.
    assert!((160..175).contains(&looks), "{looks} looks");
    assert_eq!(
        reports,
        ["87:hold20ms", "87:hold40ms", "87:hold80ms", "87:hold160ms"]
    );
    // Given back at the bound, 160 ms after the phase began: never held for ever.
    assert_eq!(now, at(160));
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    // The next period's phase starts with the longer hold.
    assert!(advance(&mut booster, at(1_000)).is_empty());
    assert_eq!(world.borrow().attr(VICTIM).rt_priority, 98);
    assert_eq!(booster.active[0].hold, FIFO_HOLD_MAX);
}

#[test]
fn a_boost_that_gave_nothing_says_so_and_the_next_one_starts_escalated() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    let mut ended = None;
    let mut now = at(0);
    while let Some(next) = booster.next_event() {
        now = next;
        booster.advance(now, |boost, step| {
            if let Step::Restore(_) = step {
                ended = Some((boost.received(), boost.gave_nothing(), name(&step)));
            }
        });
    }
    assert_eq!(now, at(3_000));
    assert_eq!(ended, Some((Some(Duration::ZERO), true, "restored".into())));
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    // It starves again: the next boost is not the DEADLINE boost that did nothing, but a
    // FIFO boost with the longest hold.
    let again = booster.boost(VICTIM, 1, at(5_000)).unwrap();
    assert_eq!(again.policy, BoostPolicy::Fifo);
    assert_eq!(again.hold, FIFO_HOLD_MAX);
    assert_eq!(world.borrow().attr(VICTIM).rt_priority, 98);
    // This one runs it: its next boost is an ordinary one again.
    world.borrow_mut().switch_in(VICTIM);
    world.borrow_mut().run_for(VICTIM, 30_000);
    advance(&mut booster, at(5_000).after(Duration::from_micros(20)));
    advance(&mut booster, at(8_000));
    assert!(!booster.is_boosted(VICTIM));
    let third = booster.boost(VICTIM, 1, at(9_000)).unwrap();
    assert_eq!(third.policy, BoostPolicy::Deadline);
}

#[test]
fn a_phase_whose_task_sleeps_ends_at_its_hold_without_escalating() {
    let (mut booster, world) = faked(params(BoostPolicy::Fifo));
    measured(&world);
    world.borrow_mut().sleeping.push(VICTIM);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    let mut reports = Vec::new();
    while let Some(next) = booster.next_event().filter(|&next| next < at(1_000)) {
        reports.extend(advance(&mut booster, next));
        if world.borrow().attr(VICTIM) == fifo5() {
            assert_eq!(next, at(10), "given back at the first hold");
            break;
        }
    }
    assert!(reports.is_empty(), "{reports:?}");
    assert_eq!(booster.active[0].hold, FIFO_HOLD);
}

#[test]
fn cpu_time_is_counted_over_every_phase_of_a_boost() {
    let (mut booster, world) = faked(params(BoostPolicy::Fifo));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    let ran = |w: &mut fake::World| {
        w.switch_in(VICTIM);
        w.run_for(VICTIM, 25_000);
    };
    run(&mut booster, &world, &[(20, ran)]);
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    // Between phases it runs on its own (the hog paused): not the boost's doing.
    world.borrow_mut().run_for(VICTIM, 1_000_000);
    advance(&mut booster, at(1_000));
    run(&mut booster, &world, &[(1_000_020, ran)]);
    let mut received = None;
    booster.advance(at(3_000), |boost, _| received = Some(boost.received()));
    assert_eq!(received, Some(Some(Duration::from_micros(50))));
}

#[test]
fn a_fifo_phase_that_cannot_be_measured_is_timed_on_the_wall_clock() {
    let (mut booster, world) = faked_fifo();
    booster.boost(VICTIM, 1, at(0)).unwrap();
    assert_eq!(booster.next_event(), Some(at(10)));
    assert!(advance(&mut booster, at(10)).is_empty());
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
}

#[test]
fn a_fifo_phase_is_timed_from_the_moment_the_task_got_the_boost() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    measured(&world);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    // The identity check and the system call took 30 µs after `now`: the first look comes
    // a runtime after the task got FIFO 98, the earliest it can have run its runtime.
    let switched_at = at(100).after(Duration::from_micros(30));
    world.borrow_mut().clock = switched_at;
    assert_eq!(advance(&mut booster, at(100)), ["87:fifo"]);
    assert_eq!(
        booster.next_event(),
        Some(switched_at.after(Duration::from_micros(20)))
    );
}

#[test]
fn a_task_changed_during_its_boost_by_someone_with_privilege_keeps_the_change() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, at(0)).unwrap();
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
    booster.boost(VICTIM, 1, at(0)).unwrap();
    world.borrow_mut().tasks.clear();
    assert_eq!(advance(&mut booster, at(3_000)), ["87:exited"]);
    assert_eq!(world.borrow().calls.last(), Some(&Call::Forget(VICTIM)));
}

#[test]
fn failed_restores_are_retried_for_as_long_as_the_daemon_runs_and_the_task_shown_held() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, at(0)).unwrap();
    world.borrow_mut().setattr_errors.extend([libc::EPERM; 12]);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:retry1@100ms"]);
    assert!(booster.is_boosted(VICTIM), "still ours to restore");
    assert_eq!(booster.next_event(), Some(at(3_100)));
    assert!(advance(&mut booster, at(3_099)).is_empty());
    assert_eq!(advance(&mut booster, at(3_100)), ["87:retry2@200ms"]);
    assert_eq!(advance(&mut booster, at(3_300)), ["87:retry3@400ms"]);
    assert_eq!(advance(&mut booster, at(3_700)), ["87:retry4@800ms"]);
    // The fifth failure: reported once as held, then retried quietly, never forgotten.
    assert_eq!(advance(&mut booster, at(4_500)), ["87:held@1600ms"]);
    assert!(booster.active[0].is_held());
    let mut now = at(4_500);
    let mut pauses = Vec::new();
    for _ in 0..7 {
        let next = booster.next_event().unwrap();
        pauses.push(next.saturating_since(now).as_millis());
        now = next;
        assert!(advance(&mut booster, now).is_empty(), "quiet while held");
        assert!(booster.is_boosted(VICTIM));
    }
    // Growing pauses, bounded.
    assert_eq!(
        pauses,
        [1_600, 3_200, 6_400, 10_000, 10_000, 10_000, 10_000]
    );
    assert!(!world.borrow().calls.contains(&Call::Forget(VICTIM)));
    // It can be restored at last: the end is reported and the record goes.
    let next = booster.next_event().unwrap();
    assert_eq!(advance(&mut booster, next), ["87:restored"]);
    assert!(!booster.is_boosted(VICTIM));
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    assert_eq!(world.borrow().calls.last(), Some(&Call::Forget(VICTIM)));
}

#[test]
fn a_held_task_is_not_boosted_over_its_record() {
    let (mut booster, world) = faked_fifo();
    booster.boost(VICTIM, 1, at(0)).unwrap();
    // The FIFO phase ends and cannot be given back: the task keeps FIFO 98.
    world.borrow_mut().setattr_errors.extend([libc::EPERM; 20]);
    let mut outcomes = Vec::new();
    for ms in [10, 110, 310, 710, 1_510] {
        outcomes.extend(advance(&mut booster, at(ms)));
    }
    assert_eq!(outcomes.last().map(String::as_str), Some("87:held@1600ms"));
    assert!(booster.is_boosted(VICTIM));
    let records = world.borrow().records.len();
    // It starves again: its record (FIFO 5) must not be replaced by one saying FIFO 98.
    assert!(matches!(
        booster.boost(VICTIM, 1, at(2_000)),
        Err(BoostError::Skipped(Skip::AlreadyBoosted))
    ));
    assert_eq!(world.borrow().records.len(), records);
}

#[test]
fn a_task_the_ledger_keeps_from_a_stalld_that_is_gone_is_not_boosted_over_that_record() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    world.borrow_mut().kept.push((VICTIM, START));
    assert!(matches!(
        booster.boost(VICTIM, 1, at(0)),
        Err(BoostError::Skipped(Skip::Kept))
    ));
    assert!(world.borrow().calls.is_empty());
    // Another task with that pid is not that record's.
    world.borrow_mut().kept = vec![(VICTIM, START + 1)];
    booster.boost(VICTIM, 1, at(0)).unwrap();
}

/// A task may run at FIFO 98 on its own: only our records say a boost is ours.
#[test]
fn a_real_fifo_98_task_is_boosted_and_gets_fifo_98_back() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    let own = SchedAttr {
        rt_priority: 98,
        ..SchedAttr::new(SCHED_FIFO)
    };
    world.borrow_mut().spawn(VICTIM, START, own);
    let boost = booster.boost(VICTIM, 1, at(0)).unwrap();
    assert_eq!(boost.saved, own);
    assert_eq!(world.borrow().attr(VICTIM).policy, SCHED_DEADLINE);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:restored"]);
    assert_eq!(world.borrow().attr(VICTIM), own);
    // Under -F as well.
    let (mut booster, world) = faked_fifo();
    world.borrow_mut().spawn(VICTIM, START, own);
    booster.boost(VICTIM, 1, at(0)).unwrap();
    assert!(advance(&mut booster, at(10)).is_empty());
    assert_eq!(world.borrow().attr(VICTIM), own);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:restored"]);
}

/// The hole: a task boosted to FIFO 98 lowers itself to FIFO 97 (no privilege needed) and
/// would have kept real-time priority for good, taken for someone else's change.
#[test]
fn a_task_that_lowers_itself_from_fifo_98_gets_its_own_attributes_back() {
    let (mut booster, world) = faked_fifo();
    world.borrow_mut().limits.insert(
        VICTIM,
        SelfLimits {
            rt_priority: 0,
            nice: 0,
        },
    );
    booster.boost(VICTIM, 1, at(0)).unwrap();
    let lowered = SchedAttr {
        rt_priority: 97,
        flags: SCHED_FLAG_RESET_ON_FORK,
        ..SchedAttr::new(SCHED_FIFO)
    };
    world.borrow_mut().spawn(VICTIM, START, lowered);
    let mut steps = Vec::new();
    booster.advance(at(10), |_, step| steps.push(step));
    assert_eq!(world.borrow().attr(VICTIM), fifo5(), "not left at FIFO 97");
    // A phase end: nothing to report then; the end of the boost says it.
    assert!(steps.is_empty(), "{steps:?}");
    assert_eq!(advance(&mut booster, at(3_000)), ["87:undone"]);
    let record = record(10_000_000, BoostPolicy::Fifo);
    world.borrow_mut().spawn(VICTIM, START, lowered);
    assert!(matches!(
        restore(&mut FakeSched(world.clone()), &record),
        Restore::Undone { policy: SCHED_FIFO }
    ));
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
}

#[test]
fn changes_a_task_could_make_itself_are_undone_the_others_kept() {
    let world = world();
    let limits = SelfLimits {
        rt_priority: 0,
        nice: 0,
    };
    world.borrow_mut().limits.insert(VICTIM, limits);
    let mut sched = FakeSched(world.clone());
    let rof = |attr: SchedAttr| SchedAttr {
        flags: SCHED_FLAG_RESET_ON_FORK,
        ..attr
    };
    let fifo = |priority| SchedAttr {
        rt_priority: priority,
        ..SchedAttr::new(SCHED_FIFO)
    };
    let deadline = record(20_000, BoostPolicy::Deadline);
    let fell_back = record(20_000, BoostPolicy::Fifo);
    let cases = [
        // From a DEADLINE boost: a fair policy is the task's own doing...
        (deadline, rof(SchedAttr::new(SCHED_OTHER)), "undone"),
        (deadline, rof(SchedAttr::new(sys::SCHED_IDLE)), "undone"),
        // ...FIFO takes RLIMIT_RTPRIO it does not have, and other DEADLINE parameters
        // privilege: someone else's.
        (deadline, rof(fifo(97)), "changed"),
        (
            deadline,
            rof(SchedAttr {
                runtime: 10_000,
                deadline: 1_000_000_000,
                period: 1_000_000_000,
                ..SchedAttr::new(SCHED_DEADLINE)
            }),
            "changed",
        ),
        // After the fallback FIFO 97 is within reach.
        (fell_back, rof(fifo(97)), "undone"),
        (fell_back, rof(fifo(99)), "changed"),
        // Without reset-on-fork: privileged.
        (fell_back, fifo(97), "changed"),
        (fell_back, SchedAttr::new(SCHED_OTHER), "changed"),
    ];
    for (record, now, expected) in cases {
        world.borrow_mut().spawn(VICTIM, START, now);
        let outcome = restore(&mut sched, &record);
        assert_eq!(
            restore_name(&outcome),
            expected,
            "{:?} -> {now:?}",
            record.policy
        );
        let left = world.borrow().attr(VICTIM);
        assert_eq!(left, if expected == "undone" { fifo5() } else { now });
    }
    // With the limits unreadable, a change counts as the task's own: its attributes come
    // back.
    world.borrow_mut().limits.clear();
    world.borrow_mut().spawn(VICTIM, START, rof(fifo(99)));
    assert!(matches!(
        restore(&mut sched, &fell_back),
        Restore::Undone { .. }
    ));
}

#[test]
fn a_live_task_whose_start_time_cannot_be_read_is_retried_not_forgotten() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    booster.boost(VICTIM, 1, at(0)).unwrap();
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
    booster.boost(VICTIM, 1, at(0)).unwrap();
    world.borrow_mut().setattr_errors.push_back(libc::EBUSY);
    assert_eq!(advance(&mut booster, at(3_000)), ["87:retry1@100ms"]);
    assert_eq!(advance(&mut booster, at(3_100)), ["87:restored"]);
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    assert_eq!(world.borrow().calls.last(), Some(&Call::Forget(VICTIM)));
}

#[test]
fn a_fifo_phase_that_cannot_be_given_back_ends_the_boost_and_is_retried() {
    let (mut booster, world) = faked_fifo();
    booster.boost(VICTIM, 1, at(0)).unwrap();
    world.borrow_mut().setattr_errors.push_back(libc::EPERM);
    assert_eq!(advance(&mut booster, at(10)), ["87:retry1@100ms"]);
    assert_eq!(advance(&mut booster, at(110)), ["87:restored"]);
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
}

#[test]
fn shutdown_tries_each_restore_once_and_keeps_failures_in_the_ledger() {
    let (mut booster, world) = faked(params(BoostPolicy::Deadline));
    world.borrow_mut().spawn(88, 1, SchedAttr::new(SCHED_OTHER));
    booster.boost(VICTIM, 1, at(0)).unwrap();
    booster.boost(88, 1, at(0)).unwrap();
    world.borrow_mut().setattr_errors.push_back(libc::EPERM);
    let mut outcomes = Vec::new();
    booster.restore_all(|boost, step| outcomes.push(format!("{}:{}", boost.pid, name(&step))));
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
    let mut sched = FakeSched(world.clone());
    assert!(matches!(
        restore(&mut sched, &record(50_000, BoostPolicy::Deadline)),
        Restore::ChangedMeanwhile {
            policy: SCHED_DEADLINE
        }
    ));
    let record = record(20_000, BoostPolicy::Fifo);
    assert!(matches!(restore(&mut sched, &record), Restore::Restored));
    assert_eq!(world.borrow().attr(VICTIM), fifo5());
    // A boost that fell back to FIFO is ours too.
    world
        .borrow_mut()
        .spawn(VICTIM, START, boost_attr(BoostPolicy::Fifo, 0, 0));
    assert!(matches!(restore(&mut sched, &record), Restore::Restored));
}

#[test]
fn retry_pauses_double_up_to_a_bound() {
    assert_eq!(retry_delay(1), RESTORE_RETRY);
    assert_eq!(retry_delay(3), RESTORE_RETRY * 4);
    assert_eq!(retry_delay(8), RESTORE_RETRY_MAX);
    assert_eq!(retry_delay(u32::MAX), RESTORE_RETRY_MAX);
}
