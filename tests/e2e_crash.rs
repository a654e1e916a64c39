//! End-to-end tests of crash safety, as root, against real starvation on the last CPU: the
//! ledger in /run/stalld (daemon and guardian killed together, then a restart, `stalld
//! restore` or `throttlectl on`), the guardian (closed stderr, its policy, its respawn, its
//! name: `pidof stalld` and `pgrep -x stalld` name the daemon only), SIGHUP, and a backend that
//! fails while a boost waits for its verification.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{last_cpu, policy_of, read_rt_runtime, Daemon, StarvationSession, Starver};
use stalld::task::Pid;

const LINE_WAIT: Duration = Duration::from_secs(15);
const STALLD: &str = env!("CARGO_BIN_EXE_stalld");

fn fifo5() -> (String, u32) {
    ("SCHED_FIFO".to_owned(), 5)
}

/// Starts `stalld -f -v ARGS` and waits for its `started:` line (the guardian runs by then).
fn start_daemon(args: &[&str]) -> Daemon {
    start_program(STALLD, args)
}

fn start_program(program: &str, args: &[&str]) -> Daemon {
    let mut all = vec!["-f", "-v"];
    all.extend_from_slice(args);
    let daemon = Daemon::spawn_program(program, &all);
    daemon
        .wait_for_line(|line| line.contains("started: "), LINE_WAIT)
        .unwrap_or_else(|| panic!("daemon did not start: {:#?}", daemon.lines()));
    daemon
}

fn wait_boosted(daemon: &Daemon, pids: &[Pid]) {
    for pid in pids {
        let needle = format!("boosted pid {pid} (");
        daemon
            .wait_for_line(|line| line.contains(&needle), LINE_WAIT)
            .unwrap_or_else(|| panic!("{pid} not boosted: {:#?}", daemon.lines()));
    }
}

fn children(pid: Pid) -> Vec<Pid> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn comm(pid: Pid) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// The process exists and is not a zombie.
fn alive(pid: Pid) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat[stat.rfind(')')? + 1..]
                .split_ascii_whitespace()
                .next()?;
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// The daemon's guardian: its child named stalld-guardian.
fn guardian_of(daemon: Pid) -> Pid {
    for _ in 0..100 {
        if let Some(pid) = children(daemon)
            .into_iter()
            .find(|&c| comm(c) == "stalld-guardian")
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "daemon {daemon} has no stalld-guardian child: {:?}",
        children(daemon)
    );
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// utime + stime of a process, in seconds.
fn cpu_time(pid: Pid) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_ascii_whitespace()
        .collect();
    // Fields 14 and 15 of stat; after the comm, field 3 is index 0.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / clock_ticks_per_second()
}

/// Freezes both, then kills both: neither gets to restore anything, as when systemd kills
/// the whole cgroup or the OOM killer takes it.
fn kill_together(pids: &[Pid]) {
    for &pid in pids {
        stalld::sys::kill(pid, libc::SIGSTOP).unwrap();
    }
    for &pid in pids {
        stalld::sys::kill(pid, libc::SIGKILL).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while pids.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls until every pid is SCHED_FIFO 5 again, up to `limit`: how long it took.
fn restored_within(pids: &[Pid], limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if pids.iter().all(|&pid| policy_of(pid) == fifo5()) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// Three victims behind one hog, lingering boosted; RT throttling is the daemon's business.
fn three_victims() -> Starver {
    Starver::spawn(&[
        "--duration",
        "20",
        "--victims",
        "3",
        "--linger",
        "15",
        "--no-throttle-change",
    ])
}

#[derive(Clone, Copy, Debug)]
enum Then {
    Restart,
    StalldRestore,
    ThrottlectlOn,
}

/// Three victims boosted, daemon and guardian killed together; then `then` must restore all
/// three within a second, and RT throttling must end at its original value.
fn killed_together(then: Then) {
    let Some(session) = StarvationSession::begin(&format!("killed_together {then:?}")) else {
        return;
    };
    let original = session.rt_runtime.saved();
    let cpu = last_cpu();
    let daemon = start_daemon(&["-t", "2", "-d", "2", "-c", &cpu]);
    let daemon_pid = daemon.process.program_pid();
    let guardian = guardian_of(daemon_pid);
    assert_eq!(read_rt_runtime(), -1);
    let starver = three_victims();
    let victims = starver.victim_pids();
    assert_eq!(victims.len(), 3);
    wait_boosted(&daemon, &victims);
    kill_together(&[guardian, daemon_pid]);
    std::thread::sleep(Duration::from_millis(200));
    for &pid in &victims {
        assert_eq!(
            policy_of(pid).0,
            "SCHED_DEADLINE",
            "nobody restored {pid} yet"
        );
    }
    assert_eq!(read_rt_runtime(), -1);

    let started = Instant::now();
    let mut restarted = None;
    match then {
        // A threshold far beyond the test: it must not boost them again meanwhile.
        Then::Restart => restarted = Some(Daemon::spawn(&["-f", "-v", "-t", "60", "-c", &cpu])),
        Then::StalldRestore | Then::ThrottlectlOn => {
            let args: &[&str] = match then {
                Then::StalldRestore => &["restore"],
                _ => &["throttle", "on"],
            };
            let out = Command::new(STALLD).args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{args:?}: {out:?} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("3 task(s) restored"),
                "{args:?} said: {stderr}"
            );
        }
    }
    restored_within(&victims, Duration::from_secs(1)).unwrap_or_else(|| {
        panic!(
            "{then:?}: not all restored within 1 s: {:?}\n{:#?}",
            victims.iter().map(|&p| policy_of(p)).collect::<Vec<_>>(),
            restarted.as_ref().map(|d| d.lines())
        )
    });
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "{then:?}: restored after {took:?}"
    );
    eprintln!(
        "{then:?}: 3 victims restored {:.0} ms after the start",
        took.as_secs_f64() * 1e3
    );
    if let Some(mut daemon) = restarted {
        daemon
            .wait_for_line(|l| l.contains("started: "), LINE_WAIT)
            .expect("the restarted daemon runs");
        assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
    }
    assert_eq!(
        read_rt_runtime(),
        original,
        "{then:?}: RT throttling not back to its original value"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn killed_together_then_restarted_restores_every_victim_and_rt_throttling() {
    killed_together(Then::Restart);
}

#[test]
fn killed_together_then_stalld_restore_restores_every_victim_and_rt_throttling() {
    killed_together(Then::StalldRestore);
}

#[test]
fn killed_together_then_throttlectl_on_restores_every_victim_and_rt_throttling() {
    killed_together(Then::ThrottlectlOn);
}

/// A closed SSH session: stdout and stderr of the daemon (and so of its guardian) lead to a
/// pipe nobody reads any more. Killed, the daemon leaves three boosts; the guardian's writes
/// fail, and it must restore all three anyway.
#[test]
fn a_guardian_whose_stderr_is_closed_restores_everything() {
    let Some(session) = StarvationSession::begin("a_guardian_whose_stderr_is_closed") else {
        return;
    };
    let cpu = last_cpu();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut daemon = Command::new("timeout")
        .args(["60", STALLD, "-f", "-v", "-t", "2", "-d", "2", "-c", &cpu])
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap();
    // Should an expectation below fail, the daemon must not outlive the test (and its
    // starvation lock): `timeout` leads a process group that holds it.
    struct KillGroup(Pid);
    impl Drop for KillGroup {
        fn drop(&mut self) {
            let _ = stalld::sys::kill(-self.0, libc::SIGKILL);
        }
    }
    let _kill_group = KillGroup(daemon.id() as Pid);
    let (lines, boosts) = mpsc::channel::<String>();
    // Reads until three boosts are reported, then closes the read end.
    let reading = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            seen.push(line.clone());
            if line.contains("started: ") || line.contains("boosted pid ") {
                let _ = lines.send(line);
            }
            if seen.iter().filter(|l| l.contains("boosted pid ")).count() == 3 {
                break;
            }
        }
        seen
    });
    boosts.recv_timeout(LINE_WAIT).expect("daemon started");
    let starver = three_victims();
    let victims = starver.victim_pids();
    for _ in 0..3 {
        boosts.recv_timeout(LINE_WAIT).expect("three boosts");
    }
    let transcript = reading.join().unwrap();
    let daemon_pid = children(daemon.id() as Pid)[0];
    let guardian = guardian_of(daemon_pid);
    // More lines go to the dead pipe before the kill; the daemon must not mind.
    std::thread::sleep(Duration::from_millis(100));
    assert!(alive(daemon_pid), "a closed stderr stopped the daemon");
    stalld::sys::kill(daemon_pid, libc::SIGKILL).unwrap();
    let took = restored_within(&victims, Duration::from_secs(2));
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        took.is_some(),
        "victims {:?}, guardian {guardian} alive {}\n{transcript:#?}",
        victims.iter().map(|&p| policy_of(p)).collect::<Vec<_>>(),
        alive(guardian)
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while read_rt_runtime() != session.rt_runtime.saved() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read_rt_runtime(), session.rt_runtime.saved());
}

/// The terminal of a `-f -v` stalld is closed while a boost is outstanding: SIGHUP must not
/// end the daemon; the boost runs its course and the daemon goes on.
#[test]
fn sighup_with_boosts_outstanding_does_not_stop_the_daemon() {
    let Some(_session) = StarvationSession::begin("sighup_with_boosts_outstanding") else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start_daemon(&["-t", "2", "-d", "2", "-c", &cpu]);
    let daemon_pid = daemon.process.program_pid();
    let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
    let victim = starver.victim_pids()[0];
    wait_boosted(&daemon, &[victim]);
    stalld::sys::kill(daemon_pid, libc::SIGHUP).unwrap();
    daemon
        .wait_for_line(
            |l| l.contains(&format!("restored pid {victim} to SCHED_FIFO")),
            LINE_WAIT,
        )
        .unwrap_or_else(|| panic!("no restore after SIGHUP: {:#?}", daemon.lines()));
    assert!(alive(daemon_pid), "SIGHUP ended the daemon");
    assert_eq!(policy_of(victim), fifo5());
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

/// Feeds a FIFO that the daemon reads as sched/debug: valid snapshots (naming `victim`)
/// until `failing` is set, then garbage. Counts the reads of each kind.
struct FakeSchedDebug {
    path: String,
    failing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    failed_reads: Arc<AtomicU32>,
    feeder: Option<std::thread::JoinHandle<()>>,
}

impl FakeSchedDebug {
    fn new(victim: Pid) -> FakeSchedDebug {
        let path = format!("/tmp/stalld-test-{}.fifo", std::process::id());
        let _ = fs::remove_file(&path);
        let status = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success());
        // A real 6.18 capture whose waiting task on cpu#1 becomes our victim.
        let capture = include_str!("data/sched_debug/linux-6.18-live-waiting-task.txt");
        let line = " R           rustc  9220 ";
        assert!(capture.contains(line));
        let snapshot = capture.replace(line, &format!(" R {:>15} {victim:>5} ", "victim"));
        let (failing, stop, failed_reads) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU32::new(0)),
        );
        let feeder = {
            let (path, failing, stop, failed_reads) = (
                path.clone(),
                failing.clone(),
                stop.clone(),
                failed_reads.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Blocks until the daemon opens the file.
                    let Ok(mut fifo) = fs::OpenOptions::new().write(true).open(&path) else {
                        break;
                    };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if failing.load(Ordering::Relaxed) {
                        failed_reads.fetch_add(1, Ordering::Relaxed);
                        let _ = fifo.write_all(b"injected garbage\n");
                    } else {
                        let _ = fifo.write_all(snapshot.as_bytes());
                    }
                    drop(fifo);
                    // A FIFO reads to its end only while no writer is left: the next offer
                    // waits until this reader has closed (no reader: opening fails). A
                    // spinning daemon is fed at once, again and again.
                    while !stop.load(Ordering::Relaxed) {
                        match fs::OpenOptions::new()
                            .write(true)
                            .custom_flags(libc::O_NONBLOCK)
                            .open(&path)
                        {
                            Ok(probe) => drop(probe),
                            Err(_) => break,
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            })
        };
        FakeSchedDebug {
            path,
            failing,
            stop,
            failed_reads,
            feeder: Some(feeder),
        }
    }
}

impl Drop for FakeSchedDebug {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Releases a feeder blocked in open().
        let _ = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path);
        if let Some(feeder) = self.feeder.take() {
            let _ = feeder.join();
        }
        let _ = fs::remove_file(&self.path);
    }
}

/// The backend fails (sched/debug becomes unparsable) right after a boost, while the boost
/// waits for its 100 ms verification: the daemon must back off, not spin at SCHED_FIFO, and
/// still end the boost on time. sched/debug is a FIFO the test feeds, bound over the real
/// file in a private mount namespace, so the failure comes exactly at the verification.
#[test]
fn a_backend_failing_during_the_verification_costs_no_cpu_and_the_boost_still_ends() {
    let Some(_session) = StarvationSession::begin("a_backend_failing_during_verification") else {
        return;
    };
    // The "starving" task: a sleeping process the fake snapshots show waiting on CPU 1.
    let mut sleeper = Command::new("sleep").arg("60").spawn().unwrap();
    let victim = sleeper.id() as Pid;
    let fake = FakeSchedDebug::new(victim);
    let script = format!(
        "grep -q ' /sys/kernel/debug debugfs ' /proc/mounts || mount -t debugfs none /sys/kernel/debug; \
         mount --bind {} /sys/kernel/debug/sched/debug && exec {STALLD} -f -v -b sched_debug -N -t 2 -g 1 -d 2 -c 1",
        fake.path
    );
    let mut daemon = Daemon::spawn_program(
        "unshare",
        &["--mount", "--propagation", "private", "sh", "-c", &script],
    );
    let needle = format!("boosted pid {victim} (");
    daemon
        .wait_for_line(|l| l.contains(&needle), LINE_WAIT)
        .unwrap_or_else(|| panic!("fake victim not boosted: {:#?}", daemon.lines()));
    // The verification is 100 ms after the boost: every read from now on fails.
    fake.failing.store(true, Ordering::Relaxed);
    let daemon_pid = daemon.process.program_pid();
    assert_eq!(comm(daemon_pid), "stalld");
    assert_eq!(policy_of(victim).0, "SCHED_DEADLINE");
    let before = cpu_time(daemon_pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_time(daemon_pid) - before;
    let policy = policy_of(victim);
    let lines = daemon.lines();
    let reads = lines
        .iter()
        .filter(|l| l.contains("Dazed and confused"))
        .count();
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    eprintln!(
        "backend failing for 3 s: daemon CPU time {used:.3} s, {reads} failed reads, {} offers",
        fake.failed_reads.load(Ordering::Relaxed)
    );
    assert!(reads >= 1, "the backend was never read again: {lines:#?}");
    assert!(
        used < 0.1 && reads < 20,
        "the daemon spins: {used:.3} s of CPU and {reads} reads in 3 s"
    );
    assert_eq!(
        policy.0, "SCHED_OTHER",
        "the boost (-d 2) did not end while the backend failed: {lines:#?}"
    );
}

/// The pids `program` (pidof or pgrep) prints for `arguments`, among `ours` only: other
/// engineers' stalld processes on this machine are not this test's business.
fn lookup(program: &str, arguments: &[&str], ours: &[Pid]) -> Vec<Pid> {
    let out = Command::new(program).args(arguments).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_ascii_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| ours.contains(p))
        .collect()
}

/// What the two pidof implementations compare with the name asked for: the basename of
/// argv[0] (both), and the basename of /proc/PID/exe (procps-ng).
fn pidof_names(pid: Pid) -> (String, String) {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv0 = String::from_utf8_lossy(cmdline.split(|&b| b == 0).next().unwrap()).into_owned();
    let exe = fs::read_link(format!("/proc/{pid}/exe"))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let base = |s: &str| s.rsplit('/').next().unwrap_or(s).to_owned();
    (base(&argv0), base(&exe))
}

fn assert_only_the_daemon_is_stalld(daemon_pid: Pid, context: &str) {
    let guardian = guardian_of(daemon_pid);
    let ours = [daemon_pid, guardian];
    assert_eq!(
        lookup("pidof", &["stalld"], &ours),
        [daemon_pid],
        "{context}: pidof stalld"
    );
    assert_eq!(
        lookup("pgrep", &["-x", "stalld"], &ours),
        [daemon_pid],
        "{context}: pgrep -x stalld"
    );
    // The other pidof (procps-ng's, not installed here): neither name may be stalld.
    let (argv0, exe) = pidof_names(guardian);
    assert_eq!(argv0, "stalld-guardian", "{context}");
    assert_ne!(exe, "stalld", "{context}: /proc/{guardian}/exe");
    assert!(!exe.contains(' ') || exe.ends_with(" (deleted)"), "{exe}");
    assert_eq!(pidof_names(daemon_pid).0, "stalld");
}

/// OpenShift's tuning operator runs `pidof stalld` then `chrt -ap` on the result: it must be
/// the daemon alone, in every mode, while boosts are outstanding.
#[test]
fn pidof_and_pgrep_name_only_the_daemon_in_every_mode() {
    let Some(_session) = StarvationSession::begin("pidof_and_pgrep_name_only_the_daemon") else {
        return;
    };
    let cpu = last_cpu();
    for mode in ["-O", "-M", "-A"] {
        let mut daemon = start_daemon(&[mode, "-t", "2", "-d", "2", "-c", &cpu]);
        let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
        let victim = starver.victim_pids()[0];
        wait_boosted(&daemon, &[victim]);
        assert_eq!(
            policy_of(victim).0,
            "SCHED_DEADLINE",
            "{mode}: boost active"
        );
        assert_only_the_daemon_is_stalld(daemon.process.program_pid(), mode);
        assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0), "{mode}");
        drop(starver);
    }
}

/// Installed, stalld-guardian is a hard link next to stalld: no copy in memory, and still not
/// named stalld.
#[test]
fn a_guardian_run_from_its_hard_link_is_not_stalld_either() {
    let Some(_session) = StarvationSession::begin("a_guardian_run_from_its_hard_link") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("stalld-hardlink-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("stalld");
    fs::copy(STALLD, &binary).unwrap();
    fs::hard_link(&binary, dir.join("stalld-guardian")).unwrap();
    let mut daemon = start_program(binary.to_str().unwrap(), &["-t", "60", "-c", &last_cpu()]);
    daemon
        .wait_for_line(
            |l| l.contains("started from stalld-guardian next to stalld"),
            LINE_WAIT,
        )
        .unwrap_or_else(|| panic!("{:#?}", daemon.lines()));
    let daemon_pid = daemon.process.program_pid();
    let guardian = guardian_of(daemon_pid);
    assert_eq!(
        fs::read_link(format!("/proc/{guardian}/exe")).unwrap(),
        dir.join("stalld-guardian")
    );
    assert_only_the_daemon_is_stalld(daemon_pid, "hard link");
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
    let _ = fs::remove_dir_all(&dir);
}

fn sched_affinity(pid: Pid) -> String {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The unit makes the daemon SCHED_FIFO 10 after start (`chrt` in ExecStartPost): by the
/// next boost the guardian has that policy and the daemon's affinity too, so it gets CPU when
/// it must act. Killed, it is noticed and respawned with them, and the new one does its job.
#[test]
fn the_guardian_follows_the_daemons_policy_and_is_respawned_when_it_dies() {
    let Some(session) = StarvationSession::begin("the_guardian_follows_the_daemon") else {
        return;
    };
    let cpu = last_cpu();
    let daemon = start_daemon(&["-t", "2", "-d", "2", "-a", "0", "-c", &cpu]);
    let daemon_pid = daemon.process.program_pid();
    let first = guardian_of(daemon_pid);
    assert_eq!(policy_of(first).0, "SCHED_OTHER");
    let status = Command::new("chrt")
        .args(["-f", "-p", "10", &daemon_pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let starver = Starver::spawn(&["--duration", "15", "--linger", "8", "--no-throttle-change"]);
    let victim = starver.victim_pids()[0];
    wait_boosted(&daemon, &[victim]);
    assert_eq!(policy_of(first), ("SCHED_FIFO".to_owned(), 10));
    assert_eq!(sched_affinity(first), "0");

    stalld::sys::kill(first, libc::SIGKILL).unwrap();
    daemon
        .wait_for_line(
            |l| {
                l.contains(&format!(
                    "the guardian process {first} died (killed by signal 9)"
                ))
            },
            LINE_WAIT,
        )
        .unwrap_or_else(|| panic!("death not noticed: {:#?}", daemon.lines()));
    let respawned = daemon
        .wait_for_regex(r"guardian process respawned: pid \d+", LINE_WAIT)
        .unwrap_or_else(|| panic!("not respawned: {:#?}", daemon.lines()));
    let second: Pid = respawned.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(guardian_of(daemon_pid), second);
    assert_eq!(policy_of(second), ("SCHED_FIFO".to_owned(), 10));
    assert_eq!(sched_affinity(second), "0");
    assert_eq!(policy_of(victim).0, "SCHED_DEADLINE", "still boosted");

    // The new guardian does the job.
    stalld::sys::kill(daemon_pid, libc::SIGKILL).unwrap();
    let took = restored_within(&[victim], Duration::from_secs(1)).unwrap_or_else(|| {
        panic!(
            "the respawned guardian did not restore {victim}: {:?}",
            policy_of(victim)
        )
    });
    eprintln!(
        "the guardian restored the victim {:.1} ms after the daemon's SIGKILL",
        took.as_secs_f64() * 1e3
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while read_rt_runtime() != session.rt_runtime.saved() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(read_rt_runtime(), session.rt_runtime.saved());
}

/// `stalld throttle COMMAND` (what the unit runs as `throttlectl`): its report line.
fn throttle(command: &str) -> String {
    let out = Command::new(STALLD)
        .args(["throttle", command])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "throttle {command}: {out:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// RT throttling comes back exactly as the operator left it: off (-1, as tuned's realtime
/// profiles leave it), the 7.x default (runtime = period) or this kernel's own, through the
/// unit's `throttlectl off`, a daemon and its guardian killed together, `stalld restore` and
/// `throttlectl on`, and through a daemon that turned it off itself, killed or stopped.
/// Nothing starves here: no hog runs, the threshold is a minute.
#[test]
fn rt_throttling_comes_back_exactly_as_the_operator_left_it() {
    let Some(session) = StarvationSession::begin("rt_throttling_as_the_operator_left_it") else {
        return;
    };
    let cpu = last_cpu();
    let mut originals = vec![-1, 1_000_000, session.rt_runtime.saved()];
    originals.dedup();
    for original in originals {
        stalld::rt_runtime::write(original).unwrap();
        // Nothing saved yet: `on` leaves the value alone (the C tool wrote 950000).
        throttle("on");
        assert_eq!(read_rt_runtime(), original, "on with nothing saved");

        // As the unit runs it: `throttlectl off`, `stalld -S`, killed with its guardian,
        // then `stalld restore` and `throttlectl on`.
        throttle("off");
        assert_eq!(read_rt_runtime(), -1);
        assert!(
            throttle("show").contains(&format!("saved={original}")),
            "{original}"
        );
        // A restart of the unit runs `off` again: what the first one found stands.
        throttle("off");
        assert!(throttle("show").contains(&format!("saved={original}")));
        let daemon = start_daemon(&["-S", "-t", "60", "-c", &cpu]);
        let daemon_pid = daemon.process.program_pid();
        kill_together(&[guardian_of(daemon_pid), daemon_pid]);
        let out = Command::new(STALLD).arg("restore").output().unwrap();
        assert!(out.status.success(), "{out:?}");
        throttle("on");
        assert_eq!(read_rt_runtime(), original, "unit path, {original}");
        drop(daemon);

        // A daemon that turns RT throttling off itself, killed with its guardian.
        let daemon = start_daemon(&["-t", "60", "-c", &cpu]);
        assert_eq!(read_rt_runtime(), -1);
        let daemon_pid = daemon.process.program_pid();
        kill_together(&[guardian_of(daemon_pid), daemon_pid]);
        throttle("on");
        assert_eq!(read_rt_runtime(), original, "daemon killed, {original}");
        drop(daemon);

        // The same daemon stopped in order.
        let mut daemon = start_daemon(&["-t", "60", "-c", &cpu]);
        assert_eq!(read_rt_runtime(), -1);
        assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
        assert_eq!(read_rt_runtime(), original, "daemon stopped, {original}");
        throttle("on");
        assert_eq!(
            read_rt_runtime(),
            original,
            "on after the daemon, {original}"
        );
    }
    drop(session);
}
