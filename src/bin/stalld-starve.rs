//! `stalld-starve`: creates real, bounded starvation for stalld's end-to-end tests.
//!
//! A SCHED_FIFO busy loop (the hog) and one or more lower-priority victims are pinned to one
//! CPU with RT throttling off, so the victims stay runnable without running until something
//! (stalld) boosts them or the hog stops. Each victim reports in JSON lines on stdout how long
//! it waited. This file owns the tool: its options, its threads, its watchdog and the
//! save/restore of `sched_rt_runtime_us`.
//!
//! Events, one JSON object per line, flushed at once:
//! - `{"event":"victim_ready","victim":i,"pid":TID,"tgid":PID,"policy":"SCHED_FIFO","prio":5}`
//! - `{"event":"started","cpu":N,"hog_pid":TID,"hog_prio":P,"victims":[TID..],"idle":[TID..],
//!   "hog_start_ns":..,"runnable_at_ns":..,"deadline_ns":..,"rt_runtime_us_saved":..|null}`
//! - `{"event":"victim_ran","victim":i,"pid":TID,"runnable_at_ns":T,"ran_at_ns":R,"wait_s":..,
//!   "policy_when_ran":"SCHED_DEADLINE","prio_when_ran":0[,"dl_runtime_ns":..,"dl_period_ns":..]
//!   [,"set_itself":"SCHED_FIFO 97","set_itself_error":null|"..."]}`
//! - `{"event":"victim_starved","victim":i,"pid":TID,"waited_s":..}`
//! - `{"event":"done","hog_stopped_by":"watchdog"|"victims_done"|"signal"}`
//!
//! Times are CLOCK_MONOTONIC nanoseconds, the clock stalld measures with.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser, ValueEnum};
use serde_json::{json, Value};
use stalld::clock::now;
use stalld::cpuset::{configured_cpus, CpuSet};
use stalld::procfs::{self, ThreadStat};
use stalld::rt_runtime;
use stalld::sys::{
    self, gettid, policy_name, sched_getattr, sched_setattr, set_affinity, sleep_until, SchedAttr,
    SCHED_DEADLINE, SCHED_FIFO, SCHED_OTHER,
};
use stalld::task::{MonoTime, Pid};

/// Time between releasing the threads and the hog starting to spin: enough for every victim
/// to reach its sleep, so that none is caught half set up (the hog waits for the late ones).
const SETUP_MARGIN: Duration = Duration::from_millis(50);

/// How often the main thread (not on the hog's CPU) looks at the stop flag while waiting.
const POLL: Duration = Duration::from_millis(20);

const MAX_VICTIMS: u32 = 1000;
const MAX_IDLE_THREADS: u32 = 20_000;
/// Idle threads only sleep: a small stack keeps 10,000 of them cheap.
const IDLE_STACK: usize = 64 * 1024;

/// Creates starvation: a SCHED_FIFO busy loop and lower-priority victims pinned to one CPU.
///
/// Needs root. Every thread ends by the --duration watchdog at the latest, and
/// sched_rt_runtime_us is restored on every exit path, including SIGINT and SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "stalld-starve", version)]
struct Options {
    /// CPU to starve (default: the last CPU). CPU 0 is refused: it keeps the machine usable.
    #[arg(long)]
    cpu: Option<u32>,

    /// SCHED_FIFO priority of the busy loop.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=99))]
    hog_prio: u32,

    /// Number of victim threads. They all become runnable at the same moment.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_VICTIMS as i64))]
    victims: u32,

    /// Thread name of every victim (default `victimN`). Any bytes but NUL, newlines included:
    /// what an unprivileged user can name a thread. The kernel keeps the first 15.
    #[arg(long)]
    victim_name: Option<String>,

    /// Extra threads that only sleep, pinned to the starved CPU and created before the
    /// victims (so they come first in its sched_debug table): load for the scanners, and a
    /// carrier for hostile names. They live until the process exits.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=MAX_IDLE_THREADS as i64))]
    idle_threads: u32,

    /// Thread names of the idle threads, used in turn (repeatable; default `idle`).
    #[arg(long = "idle-name")]
    idle_names: Vec<String>,

    /// SCHED_FIFO priority of the victims; must be below --hog-prio. Ignored with
    /// --victim-policy other.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=99))]
    victim_prio: u32,

    /// Scheduling policy of the victims. `other` only starves on kernels without the fair
    /// deadline server.
    #[arg(long, value_enum, default_value_t = VictimPolicy::Fifo)]
    victim_policy: VictimPolicy,

    /// Victims become runnable this many milliseconds after the hog starts spinning.
    #[arg(long, default_value_t = 200)]
    starve_after_ms: u64,

    /// Hard watchdog for the whole process, in seconds: the hog stops at this deadline and
    /// every thread exits.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,

    /// Seconds a victim stays alive (asleep) after it has run, so that its scheduling
    /// attributes can be inspected after a boost. The hog keeps spinning until every victim
    /// has run and lingered.
    #[arg(long, default_value_t = 0.0)]
    linger: f64,

    /// Leave sched_rt_runtime_us as it is, for callers that manage it themselves. (On Linux
    /// 6.18 throttling stops the whole RT run queue, FIFO victims included, so they starve
    /// either way.)
    #[arg(long)]
    no_throttle_change: bool,

    /// Each victim thread drops to this user (and group) id once it has its policy: an
    /// unprivileged task, without CAP_SYS_NICE (the tool itself stays root).
    #[arg(long)]
    victim_uid: Option<u32>,

    /// When it first runs, each victim switches itself to this policy, keeping
    /// SCHED_RESET_ON_FORK if it has it: `fifo:PRIO` (SCHED_FIFO PRIO) or `other` (SCHED_OTHER
    /// at the nice value it started with). What a boosted task may try, with --victim-uid
    /// without privilege.
    #[arg(long, value_parser = parse_self_policy)]
    victim_sets_itself: Option<SchedAttr>,
}

/// `fifo:PRIO` or `other`.
fn parse_self_policy(text: &str) -> Result<SchedAttr, String> {
    match text.split_once(':') {
        Some(("fifo", priority)) => match priority.parse::<u32>() {
            Ok(priority @ 1..=99) => Ok(SchedAttr {
                rt_priority: priority,
                ..SchedAttr::new(SCHED_FIFO)
            }),
            _ => Err(format!("{priority:?}: a SCHED_FIFO priority is 1 to 99")),
        },
        None if text == "other" => Ok(SchedAttr::new(SCHED_OTHER)),
        _ => Err(format!("{text:?}: expected fifo:PRIO or other")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum VictimPolicy {
    Fifo,
    Other,
}

/// Validated settings; times are absolute where a thread needs them.
struct Plan {
    cpu: u32,
    hog_prio: u32,
    victims: u32,
    victim_name: Option<Vec<u8>>,
    victim_attr: SchedAttr,
    idle_threads: u32,
    idle_names: Vec<Vec<u8>>,
    starve_after: Duration,
    linger: Duration,
    deadline: MonoTime,
    change_throttle: bool,
    /// What each victim does to itself (see [`Options`]).
    conduct: Conduct,
}

/// What a victim does to itself: drop to a user, switch its own policy when it first runs.
#[derive(Clone, Copy, Debug, Default)]
struct Conduct {
    uid: Option<u32>,
    sets_itself: Option<SchedAttr>,
}

/// What the worker threads tell the main thread, which alone writes stdout, while they are
/// set up and when the hog stops. Workers on the starved CPU must never hold a lock the main
/// thread (or another worker) wants: the hog could preempt them inside it. A pre-sized sync
/// channel does not allocate on send, but its send takes a lock when the main thread waits
/// (its receiver's waker): a victim whose boost ran out inside it starved there, and every
/// victim that reported after it waited on it in turn, a threshold each. So what a victim
/// says once it runs goes through [`Shared`] instead, without a lock.
enum Msg {
    HogReady {
        tid: Pid,
    },
    VictimReady {
        victim: u32,
        tid: Pid,
        attr: SchedAttr,
    },
    HogStopped {
        at: MonoTime,
        by: &'static str,
    },
    SetupFailed(String),
}

/// State shared with the workers, readable without locks.
struct Shared {
    /// Set by SIGINT/SIGTERM/SIGHUP.
    signalled: Arc<AtomicBool>,
    /// Set by the hog once it has stopped spinning; victims that run later were not boosted.
    hog_stopped: AtomicBool,
    /// When each victim ran (0: not yet); the hog's stop condition.
    ran_at: Vec<AtomicU64>,
    /// Each victim's thread id once it is about to sleep until its runnable time (0: not
    /// yet); the hog's start condition.
    going_to_sleep: Vec<AtomicI32>,
    /// What each victim saw when it ran, set once by the victim; the main thread looks.
    reports: Vec<OnceLock<VictimReport>>,
    /// Victims whose thread is done.
    exited: AtomicUsize,
}

/// What a victim saw when it first ran.
struct VictimReport {
    tid: Pid,
    ran_at: MonoTime,
    attr: Option<SchedAttr>,
    /// `--victim-sets-itself`: what it asked for, and the error if it was refused.
    set_itself: Option<(SchedAttr, Option<String>)>,
}

/// Restores `sched_rt_runtime_us` when dropped, so every return path and unwinding panic of
/// `main` restores it.
struct RtRuntimeRestore {
    saved: i64,
}

impl RtRuntimeRestore {
    fn disable_throttling() -> Result<RtRuntimeRestore> {
        let saved = rt_runtime::read().with_context(|| format!("reading {}", rt_runtime::PATH))?;
        rt_runtime::write(-1).with_context(|| format!("writing -1 to {}", rt_runtime::PATH))?;
        Ok(RtRuntimeRestore { saved })
    }
}

impl Drop for RtRuntimeRestore {
    fn drop(&mut self) {
        if let Err(err) = rt_runtime::write(self.saved) {
            eprintln!(
                "stalld-starve: error: could not restore {} to {}: {err}",
                rt_runtime::PATH,
                self.saved
            );
        }
    }
}

fn emit(event: Value) {
    let mut out = std::io::stdout().lock();
    // A reader that went away must not stop us from restoring the system.
    let _ = writeln!(out, "{event}");
    let _ = out.flush();
}

fn seconds(from: MonoTime, to: MonoTime) -> f64 {
    to.saturating_since(from).as_secs_f64()
}

fn usage_error(message: String) -> ! {
    Options::command()
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
}

fn plan(options: &Options, start: MonoTime) -> Plan {
    let cpus = configured_cpus();
    let cpu = options.cpu.unwrap_or(cpus.saturating_sub(1));
    if cpu == 0 {
        usage_error(if options.cpu.is_some() {
            "refusing to starve CPU 0: it keeps the machine usable; pick another --cpu".into()
        } else {
            "only one CPU: refusing to starve CPU 0".into()
        });
    }
    if cpu >= cpus {
        usage_error(format!("--cpu {cpu}: this machine has CPUs 0-{}", cpus - 1));
    }
    let victim_attr = match options.victim_policy {
        VictimPolicy::Fifo => {
            if options.victim_prio >= options.hog_prio {
                usage_error(format!(
                    "--victim-prio {} must be below --hog-prio {}, or the victims would not starve",
                    options.victim_prio, options.hog_prio
                ));
            }
            SchedAttr {
                rt_priority: options.victim_prio,
                ..SchedAttr::new(SCHED_FIFO)
            }
        }
        VictimPolicy::Other => SchedAttr::new(SCHED_OTHER),
    };
    let check_seconds = |name: &str, value: f64, min_exclusive: bool| {
        let too_small = if min_exclusive {
            value <= 0.0
        } else {
            value < 0.0
        };
        if !value.is_finite() || too_small || value > 3600.0 {
            usage_error(format!(
                "--{name} {value}: out of range (seconds, at most 3600)"
            ));
        }
        Duration::from_secs_f64(value)
    };
    let duration = check_seconds("duration", options.duration, true);
    let linger = check_seconds("linger", options.linger, false);
    let name = |text: &String| {
        if text.contains('\0') {
            usage_error(format!("{text:?}: a thread name cannot hold NUL"));
        }
        text.as_bytes().to_vec()
    };
    Plan {
        cpu,
        hog_prio: options.hog_prio,
        victims: options.victims,
        victim_name: options.victim_name.as_ref().map(name),
        victim_attr,
        idle_threads: options.idle_threads,
        idle_names: if options.idle_names.is_empty() {
            vec![b"idle".to_vec()]
        } else {
            options.idle_names.iter().map(name).collect()
        },
        starve_after: Duration::from_millis(options.starve_after_ms),
        linger,
        deadline: start.after(duration),
        change_throttle: !options.no_throttle_change,
        conduct: Conduct {
            uid: options.victim_uid,
            sets_itself: options.victim_sets_itself,
        },
    }
}

fn main() -> ExitCode {
    let start = now();
    let options = Options::parse();
    let plan = plan(&options, start);
    if !sys::is_root() {
        eprintln!(
            "stalld-starve: error: needs root (SCHED_FIFO, CPU pinning, sched_rt_runtime_us)"
        );
        return ExitCode::FAILURE;
    }
    match run(&plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("stalld-starve: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(plan: &Plan) -> Result<()> {
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, Arc::clone(&signalled))
            .context("installing signal handlers")?;
    }
    let shared = Arc::new(Shared {
        signalled,
        hog_stopped: AtomicBool::new(false),
        ran_at: (0..plan.victims).map(|_| AtomicU64::new(0)).collect(),
        going_to_sleep: (0..plan.victims).map(|_| AtomicI32::new(0)).collect(),
        reports: (0..plan.victims).map(|_| OnceLock::new()).collect(),
        exited: AtomicUsize::new(0),
    });

    // The main thread must keep running while the hog spins: keep it off the starved CPU.
    let others: Vec<String> = (0..configured_cpus())
        .filter(|&c| c != plan.cpu)
        .map(|c| c.to_string())
        .collect();
    let others = CpuSet::parse_list(&others.join(","), u32::MAX).expect("well-formed list");
    set_affinity(0, &others).context("moving the main thread off the starved CPU")?;

    let _restore = if plan.change_throttle {
        Some(RtRuntimeRestore::disable_throttling()?)
    } else {
        None
    };
    let saved_rt_runtime: Option<i64> = _restore.as_ref().map(|r| r.saved);

    let (tx, rx) = mpsc::sync_channel::<Msg>(4 * plan.victims as usize + 16);
    // First, so they precede the victims in the CPU's task list.
    let idle_tids = start_idle_threads(plan, &shared)?;
    let mut go_senders = Vec::new();
    let mut handles = Vec::new();
    for victim in 0..plan.victims {
        let (go_tx, go_rx) = mpsc::channel::<Option<(MonoTime, MonoTime)>>();
        go_senders.push(go_tx);
        let (tx, shared, attr) = (tx.clone(), Arc::clone(&shared), plan.victim_attr);
        let (cpu, linger, deadline, conduct) = (plan.cpu, plan.linger, plan.deadline, plan.conduct);
        let name = plan.victim_name.clone();
        handles.push(
            thread::Builder::new()
                .name(format!("victim{victim}"))
                .spawn(move || {
                    if let Some(name) = name {
                        if let Err(err) = sys::set_thread_name(&name) {
                            let _ = tx
                                .send(Msg::SetupFailed(format!("victim {victim}: naming: {err}")));
                            return;
                        }
                    }
                    let place = Place { cpu, attr, conduct };
                    victim_thread(victim, place, linger, deadline, &shared, &tx, &go_rx)
                })
                .context("starting a victim thread")?,
        );
    }
    let (go_tx, go_rx) = mpsc::channel::<Option<(MonoTime, MonoTime)>>();
    go_senders.push(go_tx);
    {
        let (tx, shared) = (tx.clone(), Arc::clone(&shared));
        let (cpu, prio, linger, deadline) = (plan.cpu, plan.hog_prio, plan.linger, plan.deadline);
        handles.push(
            thread::Builder::new()
                .name("hog".into())
                .spawn(move || hog_thread(cpu, prio, linger, deadline, &shared, &tx, &go_rx))
                .context("starting the hog thread")?,
        );
    }
    drop(tx);

    let release = |go: Option<(MonoTime, MonoTime)>| {
        for sender in &go_senders {
            let _ = sender.send(go);
        }
    };

    // Set-up: every worker pins itself and takes its policy while the CPU is still free.
    let mut victim_tids = vec![0; plan.victims as usize];
    let mut hog_tid = 0;
    let mut waiting = plan.victims + 1;
    while waiting > 0 {
        match rx.recv_timeout(POLL) {
            Ok(Msg::VictimReady { victim, tid, attr }) => {
                victim_tids[victim as usize] = tid;
                emit(json!({
                    "event": "victim_ready", "victim": victim, "pid": tid, "tgid": std::process::id(),
                    "policy": policy_name(attr.policy), "prio": attr.rt_priority,
                }));
                waiting -= 1;
            }
            Ok(Msg::HogReady { tid }) => {
                hog_tid = tid;
                waiting -= 1;
            }
            Ok(Msg::SetupFailed(why)) => {
                release(None);
                bail!("{why}");
            }
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                if shared.signalled.load(Ordering::Relaxed) || now() >= plan.deadline {
                    release(None);
                    bail!("interrupted during set-up");
                }
            }
            Err(RecvTimeoutError::Disconnected) => bail!("a worker thread died during set-up"),
        }
    }

    let hog_start = now().after(SETUP_MARGIN);
    let runnable_at = hog_start.after(plan.starve_after);
    // Released first: the started event (with 10,000 idle threads, 60 KB through a pipe) may
    // take a while, and the victims must be asleep before the hog starts.
    release(Some((hog_start, runnable_at)));
    emit(json!({
        "event": "started", "cpu": plan.cpu, "hog_pid": hog_tid, "hog_prio": plan.hog_prio,
        "victims": victim_tids, "idle": idle_tids, "hog_start_ns": hog_start.0, "runnable_at_ns": runnable_at.0,
        "deadline_ns": plan.deadline.0, "rt_runtime_us_saved": saved_rt_runtime,
    }));

    let stopped_by = supervise(plan, &shared, &rx, &victim_tids, runnable_at)?;
    emit(json!({"event": "done", "hog_stopped_by": stopped_by}));
    // Threads still asleep (lingering, or stopped by a signal) end with the process; the rest
    // have finished, so joining them cannot block.
    for handle in handles.into_iter().filter(|h| h.is_finished()) {
        let _ = handle.join();
    }
    Ok(())
}

/// Starts the idle threads and waits until each has named and pinned itself; returns their
/// thread ids. They park until the process exits (parking takes no lock the main thread
/// could want while the hog holds their CPU).
fn start_idle_threads(plan: &Plan, shared: &Arc<Shared>) -> Result<Vec<Pid>> {
    let tids: Arc<Vec<AtomicI32>> =
        Arc::new((0..plan.idle_threads).map(|_| AtomicI32::new(0)).collect());
    for i in 0..plan.idle_threads as usize {
        let name = plan.idle_names[i % plan.idle_names.len()].clone();
        let (tids, cpu) = (Arc::clone(&tids), plan.cpu);
        thread::Builder::new()
            .stack_size(IDLE_STACK)
            .spawn(move || {
                let placed = sys::set_thread_name(&name).is_ok()
                    && CpuSet::parse_list(&cpu.to_string(), u32::MAX)
                        .is_some_and(|set| set_affinity(0, &set).is_ok());
                // -1: set-up failed.
                tids[i].store(if placed { gettid() } else { -1 }, Ordering::Release);
                loop {
                    thread::park();
                }
            })
            .with_context(|| {
                format!("starting idle thread {i} (raise ulimit -u or kernel.threads-max?)")
            })?;
    }
    loop {
        let states: Vec<Pid> = tids.iter().map(|t| t.load(Ordering::Acquire)).collect();
        if states.contains(&-1) {
            bail!(
                "an idle thread could not name itself or pin itself to CPU {}",
                plan.cpu
            );
        }
        if !states.contains(&0) {
            return Ok(states);
        }
        if shared.signalled.load(Ordering::Relaxed) || now() >= plan.deadline {
            bail!("interrupted while starting the idle threads");
        }
        thread::sleep(POLL);
    }
}

/// Prints the victims' results as they come and returns why the hog stopped, once every
/// victim has finished (or the watchdog or a signal says not to wait for them).
fn supervise(
    plan: &Plan,
    shared: &Shared,
    rx: &Receiver<Msg>,
    victim_tids: &[Pid],
    runnable_at: MonoTime,
) -> Result<&'static str> {
    let mut reported = vec![false; victim_tids.len()];
    let mut hog_stop: Option<(MonoTime, &'static str)> = None;
    loop {
        let mut disconnected = false;
        match rx.recv_timeout(POLL) {
            Ok(Msg::HogStopped { at, by }) => {
                hog_stop = Some((at, by));
                for (i, &tid) in victim_tids.iter().enumerate() {
                    let ran_at = shared.ran_at[i].load(Ordering::Acquire);
                    // Ran before the stop but not yet reported: its report is on the way.
                    let ran_in_time = ran_at != 0 && ran_at < at.0;
                    if !reported[i] && !ran_in_time {
                        reported[i] = true;
                        emit(json!({
                            "event": "victim_starved", "victim": i, "pid": tid,
                            "waited_s": seconds(runnable_at, at),
                        }));
                    }
                }
            }
            // The hog could not start in time (see `hog_thread`): no wait can be measured.
            Ok(Msg::SetupFailed(why)) => bail!("{why}"),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {}
            // Every worker is gone: their last reports are looked at below.
            Err(RecvTimeoutError::Disconnected) => disconnected = true,
        }
        // The victims that ran since the last look (at most `POLL` ago), after the hog's stop
        // if it came: a victim that ran after it was starved, not boosted.
        for (i, report) in shared.reports.iter().enumerate() {
            let Some(report) = report.get().filter(|_| !reported[i]) else {
                continue;
            };
            if hog_stop.is_none_or(|(at, _)| report.ran_at < at) {
                reported[i] = true;
                emit(ran_event(i, report, runnable_at));
            }
        }
        if disconnected {
            break;
        }
        if let Some((_, by)) = hog_stop {
            let exited = shared.exited.load(Ordering::Acquire);
            let all_done = exited == victim_tids.len() && reported.iter().all(|&r| r);
            if all_done
                || by == "signal"
                || shared.signalled.load(Ordering::Relaxed)
                || now() >= plan.deadline
            {
                break;
            }
        } else if now() >= plan.deadline.after(Duration::from_secs(1)) {
            // The hog checks the deadline itself; this only covers a hog that never got CPU.
            return Ok("watchdog");
        }
    }
    if shared.signalled.load(Ordering::Relaxed) {
        return Ok("signal");
    }
    Ok(hog_stop.map_or("watchdog", |(_, by)| by))
}

/// The `victim_ran` event of victim `victim`.
fn ran_event(victim: usize, report: &VictimReport, runnable_at: MonoTime) -> Value {
    let mut event = json!({
        "event": "victim_ran", "victim": victim, "pid": report.tid,
        "runnable_at_ns": runnable_at.0, "ran_at_ns": report.ran_at.0,
        "wait_s": seconds(runnable_at, report.ran_at),
    });
    if let Some(attr) = report.attr {
        event["policy_when_ran"] = policy_name(attr.policy).into();
        event["prio_when_ran"] = attr.rt_priority.into();
        if attr.policy == SCHED_DEADLINE {
            event["dl_runtime_ns"] = attr.runtime.into();
            event["dl_period_ns"] = attr.period.into();
        }
    }
    if let Some((asked, error)) = &report.set_itself {
        event["set_itself"] = format!("{} {}", policy_name(asked.policy), asked.rt_priority).into();
        event["set_itself_error"] = error.clone().into();
    }
    event
}

/// Pins the calling thread to `cpu` and gives it `attr`; returns what the kernel then reports.
fn take_place(cpu: u32, attr: &SchedAttr, what: &str) -> Result<SchedAttr, String> {
    let cpus = CpuSet::parse_list(&cpu.to_string(), u32::MAX).expect("one CPU");
    set_affinity(0, &cpus).map_err(|err| format!("{what}: pinning to CPU {cpu}: {err}"))?;
    sched_setattr(0, attr).map_err(|err| {
        format!(
            "{what}: setting {} priority {}: {err}",
            policy_name(attr.policy),
            attr.rt_priority
        )
    })?;
    sched_getattr(0).map_err(|err| format!("{what}: sched_getattr: {err}"))
}

type Go = Receiver<Option<(MonoTime, MonoTime)>>;

fn hog_thread(
    cpu: u32,
    prio: u32,
    linger: Duration,
    deadline: MonoTime,
    shared: &Shared,
    tx: &SyncSender<Msg>,
    go: &Go,
) {
    let attr = SchedAttr {
        rt_priority: prio,
        ..SchedAttr::new(SCHED_FIFO)
    };
    if let Err(why) = take_place(cpu, &attr, "hog") {
        let _ = tx.send(Msg::SetupFailed(why));
        return;
    }
    let _ = tx.send(Msg::HogReady { tid: gettid() });
    let Ok(Some((hog_start, runnable_at))) = go.recv() else {
        return;
    };
    sleep_until(hog_start.min(deadline));
    // Every victim must be asleep until `runnable_at` before the hog takes the CPU. One still
    // on its way to its sleep (the main thread released the threads late, or the CPU was
    // busy) would wait on the run queue from before `runnable_at`, and its wait would be
    // measured short: a load test once saw 46 of 100 victims boosted 150 ms "before" the
    // threshold. Sleeping here lets them get there; once they are all asleep the hog spins
    // without sleeping again, so none can run before it is starved.
    while !victims_asleep(shared) {
        if now() >= runnable_at.min(deadline) || shared.signalled.load(Ordering::Relaxed) {
            let _ = tx.send(Msg::SetupFailed(
                "the victims were not all asleep by the time they were due to become runnable \
                 (the machine is too busy): no wait could be measured"
                    .into(),
            ));
            return;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let linger_ns = u64::try_from(linger.as_nanos()).unwrap_or(u64::MAX);
    let by = loop {
        let t = now();
        if t >= deadline {
            break "watchdog";
        }
        if shared.signalled.load(Ordering::Relaxed) {
            break "signal";
        }
        // Stop as soon as every victim has run and lingered: no longer hold the CPU than needed.
        let mut last_ran = 0;
        let all_ran = shared.ran_at.iter().all(|r| {
            let ran = r.load(Ordering::Relaxed);
            last_ran = last_ran.max(ran);
            ran != 0
        });
        if all_ran && t.0 >= last_ran.saturating_add(linger_ns) {
            break "victims_done";
        }
        std::hint::spin_loop();
    };
    let at = now();
    shared.hog_stopped.store(true, Ordering::Release);
    let _ = tx.send(Msg::HogStopped { at, by });
}

/// Whether every victim is in its sleep until its runnable time: it said it was going there,
/// and the kernel shows it sleeping (before that, it sleeps waiting for its start instead).
fn victims_asleep(shared: &Shared) -> bool {
    shared.going_to_sleep.iter().all(|tid| {
        let tid = tid.load(Ordering::Acquire);
        tid != 0
            && procfs::read_thread_stat(tid)
                .is_some_and(|stat| ThreadStat::parse(&stat).and_then(|s| s.field(3)) == Some("S"))
    })
}

/// Where a victim runs, with what policy, and how it behaves.
struct Place {
    cpu: u32,
    attr: SchedAttr,
    conduct: Conduct,
}

fn victim_thread(
    victim: u32,
    place: Place,
    linger: Duration,
    deadline: MonoTime,
    shared: &Shared,
    tx: &SyncSender<Msg>,
    go: &Go,
) {
    let what = format!("victim {victim}");
    let attr = match take_place(place.cpu, &place.attr, &what) {
        Ok(attr) => attr,
        Err(why) => {
            let _ = tx.send(Msg::SetupFailed(why));
            return;
        }
    };
    if let Some(uid) = place.conduct.uid {
        if let Err(err) = sys::become_user_in_this_thread(uid) {
            let _ = tx.send(Msg::SetupFailed(format!(
                "{what}: becoming user {uid}: {err}"
            )));
            return;
        }
    }
    let tid = gettid();
    // Its own nice value, the one a fair policy it gives itself keeps: an unprivileged thread
    // may not lower it (RLIMIT_NICE), and the tool may run niced (`nice cargo test`).
    let own_nice = procfs::read_thread_stat(tid)
        .and_then(|stat| ThreadStat::parse(&stat)?.field(19)?.parse().ok())
        .unwrap_or(0);
    let _ = tx.send(Msg::VictimReady { victim, tid, attr });
    if let Ok(Some((_, runnable_at))) = go.recv() {
        shared.going_to_sleep[victim as usize].store(tid, Ordering::Release);
        sleep_until(runnable_at.min(deadline));
        // First thing after waking: this instant is what the wait is measured to. Keep the
        // work from here cheap, a boost may lend only microseconds at a time.
        let ran_at = now();
        shared.ran_at[victim as usize].store(ran_at.0, Ordering::Release);
        let attr = sched_getattr(0).ok();
        // Switched at once, while it still holds whatever it was boosted with.
        let set_itself = place.conduct.sets_itself.map(|asked| {
            let asked = SchedAttr {
                flags: attr.map_or(0, |a| a.flags & sys::SCHED_FLAG_RESET_ON_FORK),
                nice: if asked.is_fair() {
                    own_nice
                } else {
                    asked.nice
                },
                ..asked
            };
            (asked, sched_setattr(0, &asked).err().map(|e| e.to_string()))
        });
        let _ = shared.reports[victim as usize].set(VictimReport {
            tid,
            ran_at,
            attr,
            set_itself,
        });
        if !shared.hog_stopped.load(Ordering::Acquire) && !shared.signalled.load(Ordering::Relaxed)
        {
            // One uninterrupted sleep: waking up early would make the victim runnable again
            // and stalld would see a fresh starvation.
            sleep_until(ran_at.after(linger).min(deadline));
        }
    }
    shared.exited.fetch_add(1, Ordering::Release);
}
