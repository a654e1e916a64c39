//! End-to-end tests of the drop-in behaviour an operator of the C stalld notices: modes, `-F`,
//! denylists, log destinations, the pid file, RT throttling handling and `-S`. As root, against
//! real starvation made by `stalld-starve` on the last CPU, with the default backend.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{policy_of, read_rt_runtime, Daemon, StarvationSession, Starver};
use stalld::cpuset::configured_cpus;

const LINE_WAIT: Duration = Duration::from_secs(15);

fn last_cpu() -> String {
    (configured_cpus() - 1).to_string()
}

fn start_daemon(extra: &[&str]) -> Daemon {
    let mut args = vec!["-f", "-v"];
    args.extend_from_slice(extra);
    let daemon = Daemon::spawn(&args);
    daemon
        .wait_for_line(|line| line.contains(" backend"), LINE_WAIT)
        .unwrap_or_else(|| panic!("daemon did not start: {:?}", daemon.lines()));
    daemon
}

fn wait_line(daemon: &Daemon, needle: &str) -> String {
    daemon
        .wait_for_line(|line| line.contains(needle), LINE_WAIT)
        .unwrap_or_else(|| panic!("no line containing {needle:?}: {:#?}", daemon.lines()))
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
        wait_line(
            &daemon,
            &format!("victim0-{pid} might starve on CPU {cpu} (waiting for 1 seconds)"),
        );
    }
    wait_line(&daemon, &format!("boosted pid {pid} "));
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
    let starver = Starver::spawn(&["--duration", "15", "--linger", "4"]);
    let pid = starver.victim_pids()[0];
    wait_line(
        &daemon,
        &format!("boosted pid {pid} (stalld-starve) (cpu {cpu}) using SCHED_FIFO"),
    );
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    assert_eq!(
        (
            ran["policy_when_ran"].as_str(),
            ran["prio_when_ran"].as_u64()
        ),
        (Some("SCHED_FIFO"), Some(98)),
        "{ran}"
    );
    wait_line(&daemon, &format!("restored pid {pid} to SCHED_FIFO"));
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
    wait_line(
        &daemon,
        "Ignoring the thread victim0 from consideration for boosting",
    );
    wait_line(&daemon, &format!("boosted pid {} ", pids[1]));
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
    wait_line(
        &daemon,
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
    let mut kmsg = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .expect("open /dev/kmsg");
    // Only records written from now on.
    std::io::Seek::seek(&mut kmsg, std::io::SeekFrom::End(0)).expect("seek /dev/kmsg");
    let cpu = last_cpu();
    let mut daemon = Daemon::spawn(&["-f", "-k", "-t", "2", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "10"]);
    let pid = starver.victim_pids()[0];
    starver.wait_event("victim_ran", LINE_WAIT);
    let wanted = format!("stalld: boosted pid {pid} ");
    let deadline = Instant::now() + LINE_WAIT;
    let mut records = Vec::new();
    while Instant::now() < deadline && !records.iter().any(|r: &String| r.contains(&wanted)) {
        let mut record = vec![0u8; 8192];
        match kmsg.read(&mut record) {
            Ok(n) => records.push(String::from_utf8_lossy(&record[..n]).into_owned()),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    assert!(records.iter().any(|r| r.contains(&wanted)), "{records:#?}");
    assert!(
        records
            .iter()
            .any(|r| r.contains(&format!("victim0-{pid} starved on CPU {cpu}"))),
        "{records:#?}"
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

/// Binds a syslog receiver at /dev/log for the test, moving a real one aside meanwhile.
struct SyslogReceiver {
    socket: UnixDatagram,
    moved_aside: bool,
}

const DEV_LOG: &str = "/dev/log";
const DEV_LOG_ASIDE: &str = "/dev/log.stalld-test";

impl SyslogReceiver {
    fn bind() -> SyslogReceiver {
        let moved_aside = fs::symlink_metadata(DEV_LOG).is_ok();
        if moved_aside {
            fs::rename(DEV_LOG, DEV_LOG_ASIDE).expect("moving /dev/log aside");
        }
        let socket = UnixDatagram::bind(DEV_LOG).expect("binding /dev/log");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        SyslogReceiver {
            socket,
            moved_aside,
        }
    }
}

impl Drop for SyslogReceiver {
    fn drop(&mut self) {
        let _ = fs::remove_file(DEV_LOG);
        if self.moved_aside {
            let _ = fs::rename(DEV_LOG_ASIDE, DEV_LOG);
        }
    }
}

#[test]
fn log_syslog_sends_daemon_facility_messages() {
    let Some(_session) = StarvationSession::begin("log_syslog") else {
        return;
    };
    let receiver = SyslogReceiver::bind();
    let cpu = last_cpu();
    let mut daemon = Daemon::spawn(&["-f", "-s", "-t", "2", "-d", "1", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "10"]);
    let pid = starver.victim_pids()[0];
    let wanted = format!("boosted pid {pid} ");
    let deadline = Instant::now() + LINE_WAIT;
    let mut messages: Vec<String> = Vec::new();
    while Instant::now() < deadline && !messages.iter().any(|m| m.contains(&wanted)) {
        let mut packet = vec![0u8; 2048];
        if let Ok(n) = receiver.socket.recv(&mut packet) {
            messages.push(String::from_utf8_lossy(&packet[..n]).into_owned());
        }
    }
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

#[test]
fn pidfile_is_written_locked_and_removed() {
    let Some(_session) = StarvationSession::begin("pidfile_is_written_locked_and_removed") else {
        return;
    };
    let path = format!("/tmp/stalld-test-{}.pid", std::process::id());
    let mut daemon = start_daemon(&["-l", "--pidfile", &path]);
    let deadline = Instant::now() + LINE_WAIT;
    while !Path::new(&path).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{}\n", daemon.process.program_pid())
    );
    let (status, lines) = Daemon::run(&["-f", "-v", "-l", "-P", &path], LINE_WAIT);
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("holds the pidfile")),
        "{lines:?}"
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
    assert!(!Path::new(&path).exists(), "pid file not removed");
}

#[test]
fn rt_throttling_is_restored_after_a_fatal_error() {
    let Some(session) = StarvationSession::begin("rt_throttling_fatal_error") else {
        return;
    };
    let (status, lines) = Daemon::run(
        &["-f", "-v", "--pidfile", "/nonexistent-dir/stalld.pid"],
        LINE_WAIT,
    );
    assert_eq!(status.code(), Some(1), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("unable to open pidfile")),
        "{lines:?}"
    );
    assert_eq!(read_rt_runtime(), session.rt_runtime.saved(), "{lines:?}");
    if session.rt_runtime.saved() != -1 {
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
    throttle("on");
    assert_ne!(read_rt_runtime(), -1);
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
    wait_line(&daemon, "self-affinity: adding cpu 0");
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
    wait_line(
        &daemon,
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
