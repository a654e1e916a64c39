//! End-to-end tests of the drop-in behaviour an operator of the C stalld notices: modes, `-F`,
//! denylists, log destinations, the pid file, RT throttling handling and `-S`. As root, against
//! real starvation made by `stalld-starve` on the last CPU, with the default backend.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    last_cpu, policy_of, read_rt_runtime, Daemon, KmsgReader, StarvationSession, Starver,
    SyslogReceiver,
};

const LINE_WAIT: Duration = Duration::from_secs(15);

fn start_daemon(extra: &[&str]) -> Daemon {
    let mut args = vec!["-f", "-v"];
    args.extend_from_slice(extra);
    let daemon = Daemon::spawn(&args);
    daemon
        .wait_for_line(|line| line.contains(" backend"), LINE_WAIT)
        .unwrap_or_else(|| panic!("daemon did not start: {:?}", daemon.lines()));
    daemon
}

fn mode_boosts_a_starving_victim(mode: &str) {
    let Some(_session) = StarvationSession::begin(&format!("mode {mode}")) else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start_daemon(&[mode, "-t", "2", "-d", "1", "-g", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "15"]);
    let pid = starver.victim_pids()[0];
    if mode != "-O" {
        daemon.wait_line(&format!(
            "victim0-{pid} might starve on CPU {cpu} (waiting for 1 seconds)"
        ));
    }
    daemon.wait_line(&format!("boosted pid {pid} "));
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    assert_eq!(ran["policy_when_ran"], "SCHED_DEADLINE");
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn power_mode_boosts() {
    mode_boosts_a_starving_victim("-O");
}

#[test]
fn adaptive_mode_warns_at_half_the_threshold_then_boosts() {
    mode_boosts_a_starving_victim("-M");
}

#[test]
fn aggressive_mode_warns_at_half_the_threshold_then_boosts() {
    mode_boosts_a_starving_victim("-A");
}

#[test]
fn force_fifo_boosts_with_fifo_98_and_restores() {
    let Some(_session) = StarvationSession::begin("force_fifo") else {
        return;
    };
    let cpu = last_cpu();
    // A runtime long enough for the victim to report from inside its FIFO slice.
    let mut daemon = start_daemon(&[
        "-F", "-t", "2", "-d", "2", "-r", "1ms", "-p", "200ms", "-c", &cpu,
    ]);
    let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
    let pid = starver.victim_pids()[0];
    daemon.wait_line(&format!(
        "boosted pid {pid} (stalld-starve) (cpu {cpu}) using SCHED_FIFO"
    ));
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    assert_eq!(
        (
            ran["policy_when_ran"].as_str(),
            ran["prio_when_ran"].as_u64()
        ),
        (Some("SCHED_FIFO"), Some(98)),
        "{ran}"
    );
    daemon.wait_line(&format!("restored pid {pid} to SCHED_FIFO"));
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 5));
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn ignore_threads_skips_matching_threads_and_boosts_the_others() {
    let Some(_session) = StarvationSession::begin("ignore_threads") else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start_daemon(&["-i", "nomatch,^victim0$", "-t", "2", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "8", "--victims", "2"]);
    let pids = starver.victim_pids();
    daemon.wait_line("Ignoring the thread victim0 from consideration for boosting");
    daemon.wait_line(&format!("boosted pid {} ", pids[1]));
    starver.wait_event("victim_starved", LINE_WAIT);
    assert!(!daemon
        .lines()
        .iter()
        .any(|l| l.contains(&format!("boosted pid {} ", pids[0]))));
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn ignore_processes_skips_threads_of_matching_processes() {
    let Some(_session) = StarvationSession::begin("ignore_processes") else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = start_daemon(&["-I", "^stalld-sta", "-t", "2", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "6"]);
    let pid = starver.victim_pids()[0];
    daemon.wait_line(
        "Ignoring the thread victim0 (spawned by stalld-starve) from consideration for boosting",
    );
    starver.wait_event("victim_starved", LINE_WAIT);
    assert!(!daemon
        .lines()
        .iter()
        .any(|l| l.contains(&format!("boosted pid {pid} "))));
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn log_kmsg_writes_to_the_kernel_log() {
    let Some(_session) = StarvationSession::begin("log_kmsg") else {
        return;
    };
    let mut kmsg = KmsgReader::open();
    let cpu = last_cpu();
    let mut daemon = Daemon::spawn(&["-f", "-k", "-t", "2", "-d", "1", "-c", &cpu]);
    // Set up before the starvation starts (its only word is in the kernel log, where its last
    // start-up line says how it boosts).
    let mut records = Vec::new();
    let started = "stalld: using SCHED_DEADLINE for boosting";
    kmsg.read_until(&mut records, LINE_WAIT, |r| r.contains(started));
    assert!(records.iter().any(|r| r.contains(started)), "{records:#?}");
    let starver = Starver::spawn(&["--duration", "10"]);
    let pid = starver.victim_pids()[0];
    starver.wait_event("victim_ran", LINE_WAIT);
    let wanted = format!("stalld: boosted pid {pid} ");
    kmsg.read_until(&mut records, LINE_WAIT, |r| r.contains(&wanted));
    assert!(records.iter().any(|r| r.contains(&wanted)), "{records:#?}");
    assert!(
        records
            .iter()
            .any(|r| r.contains(&format!("victim0-{pid} starved on CPU {cpu}"))),
        "{records:#?}"
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn log_syslog_sends_daemon_facility_messages() {
    let Some(_session) = StarvationSession::begin("log_syslog") else {
        return;
    };
    let receiver = SyslogReceiver::bind();
    let cpu = last_cpu();
    let mut daemon = Daemon::spawn(&["-f", "-s", "-t", "2", "-d", "1", "-c", &cpu]);
    // Set up before the starvation starts (its only word is in syslog).
    let mut packets = Vec::new();
    let said = |packet: &[u8], what: &str| String::from_utf8_lossy(packet).contains(what);
    receiver.receive_until(&mut packets, LINE_WAIT, |p| said(p, "]: started: "));
    assert!(
        packets.iter().any(|p| said(p, "]: started: ")),
        "{packets:?}"
    );
    let starver = Starver::spawn(&["--duration", "10"]);
    let pid = starver.victim_pids()[0];
    let wanted = format!("boosted pid {pid} ");
    receiver.receive_until(&mut packets, LINE_WAIT, |p| {
        String::from_utf8_lossy(p).contains(&wanted)
    });
    let messages: Vec<String> = packets
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    let daemon_pid = daemon.process.program_pid();
    let boosted = messages
        .iter()
        .find(|m| m.contains(&wanted))
        .unwrap_or_else(|| panic!("{messages:#?}"));
    // Facility daemon (3), severity info (6): <30>; ident stalld with its pid.
    assert!(
        boosted.starts_with(&format!("<30>stalld[{daemon_pid}]: ")),
        "{boosted}"
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + LINE_WAIT;
    loop {
        match fs::read_to_string(path) {
            Ok(text) if text.ends_with('\n') => return text,
            _ if Instant::now() > deadline => panic!("no pid written to {}", path.display()),
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A second stalld started with the same pid file, in the foreground or as a daemon: it
/// exits non-zero, saying why, on the terminal it was started from.
fn second_instance_is_refused(path: &str) {
    for args in [&["-f", "-v", "-l", "-P", path][..], &["-l", "-P", path]] {
        let (status, lines) = Daemon::run(args, LINE_WAIT);
        assert_eq!(
            status.code(),
            Some(i32::from(stalld::daemon::EXIT_ANOTHER_INSTANCE)),
            "{args:?}: {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("stalld: another stalld (pid ")
                    && l.ends_with(&format!(") holds the pidfile {path}"))),
            "{args:?}: {lines:?}"
        );
    }
}

#[test]
fn pidfile_is_written_locked_and_removed() {
    let Some(_session) = StarvationSession::begin("pidfile_is_written_locked_and_removed") else {
        return;
    };
    let path = format!("/tmp/stalld-test-{}.pid", std::process::id());
    let mut daemon = start_daemon(&["-l", "--pidfile", &path]);
    assert_eq!(
        wait_for_file(Path::new(&path)),
        format!("{}\n", daemon.process.program_pid())
    );
    second_instance_is_refused(&path);
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
    assert!(!Path::new(&path).exists(), "pid file not removed");
}

/// The lock is taken before daemonizing and survives its forks: the daemon that holds it is
/// the one whose pid is written, and a second instance (either mode) is refused with a
/// non-zero exit instead of a launcher that exits 0 and a daemon that dies unseen.
#[test]
fn a_daemonized_stalld_holds_the_pidfile_lock_against_a_second_instance() {
    let Some(_session) = StarvationSession::begin("a_daemonized_stalld_holds_the_pidfile_lock")
    else {
        return;
    };
    let path = format!("/tmp/stalld-test-daemon-{}.pid", std::process::id());
    let launcher = std::process::Command::new(env!("CARGO_BIN_EXE_stalld"))
        .args(["-l", "-P", &path])
        // A daemon that outlives a failed test must not hold the harness's pipes open.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(launcher.success());
    // The launcher returns once the daemon has written its pid: no waiting needed.
    let pid: i32 = fs::read_to_string(&path)
        .expect("pid file written before the launcher exits")
        .trim()
        .parse()
        .unwrap();
    let stop = Stop(pid);
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/comm")).unwrap(),
        "stalld\n",
        "the pid file names a process that is not the daemon"
    );
    second_instance_is_refused(&path);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{pid}\n"),
        "a refused instance changed the pid file"
    );
    drop(stop);
    let deadline = Instant::now() + LINE_WAIT;
    while Path::new(&path).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!Path::new(&path).exists(), "pid file not removed at exit");
}

/// SIGTERM to a daemonized stalld when the test ends, however it ends.
struct Stop(i32);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = stalld::sys::kill(self.0, libc::SIGTERM);
    }
}

#[test]
fn pidfile_is_0644_whatever_the_umask_and_never_followed_through_a_symlink() {
    let Some(_session) = StarvationSession::begin("pidfile_is_0644_and_never_a_symlink") else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("stalld-pidfile-e2e-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    let stalld = env!("CARGO_BIN_EXE_stalld");
    for umask in ["000", "077"] {
        let path = dir.join(format!("umask-{umask}.pid"));
        let path_text = path.to_str().unwrap();
        let script = format!("umask {umask}; exec \"$0\" \"$@\"");
        let mut daemon = Daemon::spawn_program(
            "sh",
            &["-c", &script, stalld, "-f", "-v", "-l", "-P", path_text],
        );
        wait_for_file(&path);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644, "umask {umask}: mode {mode:o}");
        assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
    }
    // A symlink planted where the pid file goes is refused, and its target left alone.
    let target = dir.join("target");
    let link = dir.join("link.pid");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (status, lines) = Daemon::run(&["-f", "-v", "-l", "-P", link.to_str().unwrap()], LINE_WAIT);
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("is a symbolic link (refused)")),
        "{lines:?}"
    );
    assert!(!target.exists(), "the symlink was followed");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rt_throttling_is_restored_after_a_fatal_error() {
    let Some(session) = StarvationSession::begin("rt_throttling_fatal_error") else {
        return;
    };
    // A pid file that cannot be opened is refused before anything is changed.
    let (status, lines) = Daemon::run(
        &["-f", "-v", "--pidfile", "/nonexistent-dir/stalld.pid"],
        LINE_WAIT,
    );
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("unable to open pidfile")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("RT Throttling disabled")),
        "{lines:?}"
    );
    assert_eq!(read_rt_runtime(), session.rt_runtime.saved(), "{lines:?}");

    // Without CAP_SYS_NICE, -R fails after RT throttling was turned off: it is turned back on.
    // Daemonized, the failure comes after daemonizing: the launcher exits 1 all the same.
    for verbose in [true, false] {
        let mut args = vec![
            "--bounding-set",
            "-sys_nice",
            "--",
            env!("CARGO_BIN_EXE_stalld"),
            "-R",
            "20",
        ];
        if verbose {
            args.push("-v"); // -v implies -f
        }
        let (status, lines) = Daemon::run_program("setpriv", &args, LINE_WAIT);
        assert_eq!(status.code(), Some(1), "{args:?}: {lines:?}");
        reservation_failure_restored_rt_throttling(&session, &lines, verbose);
    }
}

fn reservation_failure_restored_rt_throttling(
    session: &StarvationSession,
    lines: &[String],
    verbose: bool,
) {
    assert!(
        lines
            .iter()
            .any(|l| l.contains("failed to set -R/--reservation")),
        "{lines:?}"
    );
    assert_eq!(read_rt_runtime(), session.rt_runtime.saved(), "{lines:?}");
    if verbose && session.rt_runtime.saved() != -1 {
        assert!(
            lines.iter().any(|l| l.contains("RT Throttling disabled")),
            "{lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains(&format!(
                "RT Throttling runtime restored to {}",
                session.rt_runtime.saved()
            ))),
            "{lines:?}"
        );
    }
}

#[test]
fn systemd_mode_refuses_to_run_with_throttling_on_and_throttlectl_round_trips() {
    let Some(session) = StarvationSession::begin("systemd_mode") else {
        return;
    };
    let stalld = env!("CARGO_BIN_EXE_stalld");
    let throttle = |command: &str| {
        let out = std::process::Command::new(stalld)
            .args(["throttle", command])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // RT throttling on, whatever this machine keeps (the session puts its value back).
    if read_rt_runtime() == -1 {
        stalld::rt_runtime::write(950_000).unwrap();
    }
    let (status, lines) = Daemon::run(&["-f", "-v", "-S"], LINE_WAIT);
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RT throttling is on! stalld cannot run")),
        "{lines:?}"
    );

    let before = read_rt_runtime();
    throttle("off");
    assert_eq!(read_rt_runtime(), -1);
    assert!(throttle("show").contains(&format!("saved={before}")));
    let mut daemon = start_daemon(&["-S", "-l"]);
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
    assert_eq!(read_rt_runtime(), -1, "-S must not touch RT throttling");
    throttle("on");
    assert_eq!(read_rt_runtime(), before);
    drop(session);
}

#[test]
fn affinity_pins_stalld_itself() {
    let Some(_session) = StarvationSession::begin("affinity_pins_stalld_itself") else {
        return;
    };
    let mut daemon = start_daemon(&["-l", "-a", "0"]);
    daemon.wait_line("self-affinity: adding cpu 0");
    let status =
        fs::read_to_string(format!("/proc/{}/status", daemon.process.program_pid())).unwrap();
    let allowed = status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .unwrap();
    assert_eq!(
        allowed.split_ascii_whitespace().nth(1),
        Some("0"),
        "{allowed}"
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn reservation_runs_stalld_itself_as_sched_deadline() {
    let Some(_session) =
        StarvationSession::begin("reservation_runs_stalld_itself_as_sched_deadline")
    else {
        return;
    };
    let mut daemon = start_daemon(&["-l", "-R", "20", "-g", "2"]);
    daemon.wait_line(
        "successfully set 20% SCHED_DEADLINE reservation runtime/period = 400000000/2000000000",
    );
    let attr = common::sched_attr_of(daemon.process.program_pid());
    assert_eq!(
        (attr.policy, attr.runtime, attr.period),
        (stalld::sys::SCHED_DEADLINE, 400_000_000, 2_000_000_000)
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

#[test]
fn a_daemonized_stalld_resolves_a_relative_pidfile_from_where_it_started() {
    let Some(_session) =
        StarvationSession::begin("a_daemonized_stalld_resolves_a_relative_pidfile")
    else {
        return;
    };
    let dir = std::env::temp_dir();
    let name = format!("stalld-relative-{}.pid", std::process::id());
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_stalld"))
        .args(["-l", "--pidfile", &name])
        .current_dir(&dir)
        // A daemon that outlives a failed test must not hold the harness's pipes open.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "the launching parent exits 0 once the daemon is on its way"
    );
    let path = dir.join(&name);
    let deadline = Instant::now() + LINE_WAIT;
    while !path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let misplaced = Path::new("/").join(&name);
    if let Ok(pid) = fs::read_to_string(&misplaced) {
        let _ = stalld::sys::kill(pid.trim().parse().unwrap_or(0), libc::SIGTERM);
        panic!("the pid file was resolved from / after daemonizing");
    }
    let pid: i32 = fs::read_to_string(&path)
        .expect("pid file next to where stalld started")
        .trim()
        .parse()
        .unwrap();
    stalld::sys::kill(pid, libc::SIGTERM).unwrap();
    while path.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!path.exists(), "pid file not removed at exit");
}

/// A second stalld that boosts, ours or the C one, refuses to start with its own exit status
/// and says why (the first to exit would put RT throttling back under the other), before it
/// changes anything; `-l`, `--allow_other_instances` and the first one gone, it starts.
/// `stalld check` names the running one. Nothing starves here: no hog, a threshold of a minute.
#[test]
fn a_second_boosting_stalld_refuses_to_start_unless_told_otherwise() {
    let Some(_session) = StarvationSession::begin("a_second_boosting_stalld") else {
        return;
    };
    let cpu = last_cpu();
    let busy = i32::from(stalld::daemon::EXIT_ANOTHER_INSTANCE);
    let mut first = start_daemon(&["-t", "60", "-c", &cpu]);
    let first_pid = first.process.program_pid();
    first.wait_line("started: ");
    let throttling = read_rt_runtime();
    // In the foreground and as a daemon: refused on the terminal it was started from.
    for args in [
        &["-f", "-v", "-t", "60", "-c", &cpu][..],
        &["-t", "60", "-c", &cpu],
    ] {
        let (status, lines) = Daemon::run(args, LINE_WAIT);
        assert_eq!(status.code(), Some(busy), "{args:?}: {lines:?}");
        let said = format!("stalld: another stalld boosts on this host (pid {first_pid}: ");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&said) && l.contains("--allow_other_instances")),
            "{args:?}: {lines:?}"
        );
        assert_eq!(read_rt_runtime(), throttling);
    }
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_stalld"))
        .args(["check", "-t", "60"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(
        report.lines().any(|l| l.starts_with("fail")
            && l.contains("other_instances")
            && l.contains(&format!("pid {first_pid}: "))),
        "{report}"
    );
    // Log-only instances and the subcommands boost nothing: not in the way.
    let mut logging = start_daemon(&["-l", "-t", "60", "-c", &cpu]);
    logging.wait_line("started: ");
    assert_eq!(logging.terminate().and_then(|s| s.code()), Some(0));
    // Told otherwise, it starts (leaving RT throttling to the unit, as it should then).
    let mut allowed = start_daemon(&["--allow_other_instances", "-S", "-t", "60", "-c", &cpu]);
    allowed.wait_line("started: ");
    assert_eq!(allowed.terminate().and_then(|s| s.code()), Some(0));
    assert_eq!(first.terminate().and_then(|s| s.code()), Some(0));

    // The C stalld as its unit starts it (a stand-in named stalld, waiting on its stdin).
    let dir = std::env::temp_dir().join(format!("stalld-c-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir(&dir).unwrap();
    let c_stalld = dir.join("stalld");
    fs::write(&c_stalld, "#!/bin/sh\nread line\n").unwrap();
    fs::set_permissions(
        &c_stalld,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut c = std::process::Command::new(&c_stalld)
        .args(["--systemd", "-t", "20", "--log_syslog", "--foreground"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + LINE_WAIT;
    while fs::read_to_string(format!("/proc/{}/comm", c.id())).unwrap_or_default() != "stalld\n"
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, lines) = Daemon::run(&["-f", "-v", "-t", "60", "-c", &cpu], LINE_WAIT);
    let _ = c.kill();
    let _ = c.wait();
    let _ = fs::remove_dir_all(&dir);
    assert_eq!(status.code(), Some(busy), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("(pid {}: ", c.id()))
                && l.contains("--systemd -t 20 --log_syslog --foreground")),
        "{lines:?}"
    );
    // Nobody in the way any more: it starts.
    let mut alone = start_daemon(&["-t", "60", "-c", &cpu]);
    alone.wait_line("started: ");
    assert_eq!(alone.terminate().and_then(|s| s.code()), Some(0));
}
