//! End-to-end tests of stalld against what any unprivileged user controls: thread names.
//! As root, against real starvation made by `stalld-starve` on the last CPU; a thread renames
//! itself with `prctl(PR_SET_NAME)`, which needs no privilege and takes any byte but NUL.

mod common;

use std::time::Duration;

use common::{last_cpu, policy_of, Daemon, KmsgReader, StarvationSession, Starver, SyslogReceiver};

const LINE_WAIT: Duration = Duration::from_secs(15);

/// Names whose pieces imitate sched_debug's own lines once the kernel prints them.
const HOSTILE_NAMES: [&str; 6] = [
    "a\nb",
    "x\ncpu#9\n",
    "\nrunnable tasks",
    "\n\n\n",
    "\n R  forged\r\n",
    "n\n 99 1.0 E 1.0",
];

/// Before the parser read names that span lines, one such thread anywhere on the machine made
/// every read of sched_debug fail ("name field is not 15 columns wide"): the daemon refused to
/// start, or, when the thread came later, monitored nothing. Here hostile threads sit in the
/// starved CPU's table before the victim, and the victim itself is named with a newline.
#[test]
fn hostile_thread_names_do_not_blind_the_sched_debug_backend() {
    let Some(_session) = StarvationSession::begin("hostile_thread_names_do_not_blind_sched_debug")
    else {
        return;
    };
    let cpu = last_cpu();
    // Two threads of each name, in the starved CPU's table before the victim.
    let mut args = vec![
        "--duration",
        "25",
        "--linger",
        common::LINGER,
        "--idle-threads",
        "12",
    ];
    for name in HOSTILE_NAMES {
        args.extend(["--idle-name", name]);
    }
    args.extend(["--victim-name", "v\n R  forged"]);
    let starver = Starver::spawn(&args);
    let victim = starver.victim_pids()[0];
    let mut daemon = Daemon::spawn(&[
        "-f",
        "-v",
        "-b",
        "sched_debug",
        "-t",
        "3",
        "-g",
        "1",
        "-d",
        "1",
        "-c",
        &cpu,
    ]);
    daemon.wait_line("using sched_debug backend");
    // The victim's name comes from /proc (its record spans lines), escaped.
    daemon.wait_line(&format!(
        "v\\x0a R  forged-{victim} starved on CPU {cpu} for "
    ));
    daemon.wait_line(&format!("boosted pid {victim} (stalld-starve)"));
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    assert_eq!(ran["policy_when_ran"], "SCHED_DEADLINE", "{ran}");
    daemon.wait_line(&format!("restored pid {victim} to SCHED_FIFO"));
    assert_eq!(policy_of(victim), ("SCHED_FIFO".to_owned(), 5));
    let lines = daemon.lines();
    assert!(
        !lines.iter().any(|l| l.contains("Dazed and confused")),
        "a sched_debug read failed: {lines:#?}"
    );
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));
}

/// A starving victim named `x\n<0>FAKE` is detected and boosted, and no sink gets a second
/// line out of its name: not stderr as journald reads it (`<N>` prefixes: a line starting with
/// `<0>` would be an emergency entry attributed to stalld), not syslog, not /dev/kmsg.
#[test]
fn a_hostile_victim_name_cannot_forge_log_lines_in_any_sink() {
    let Some(_session) = StarvationSession::begin("a_hostile_victim_name_cannot_forge_log_lines")
    else {
        return;
    };
    let syslog = SyslogReceiver::bind();
    let mut kmsg = KmsgReader::open();
    let cpu = last_cpu();
    let starver = Starver::spawn(&[
        "--duration",
        "15",
        "--linger",
        common::LINGER,
        "--victim-name",
        "x\n<0>FAKE",
    ]);
    let victim = starver.victim_pids()[0];
    // JOURNAL_STREAM naming our stderr makes stalld write `<N>stalld: ...` lines, as under
    // systemd, where journald splits the stream at newlines.
    let script = r#"JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$0" "$@""#;
    let mut daemon = Daemon::spawn_program(
        "sh",
        &[
            "-c",
            script,
            env!("CARGO_BIN_EXE_stalld"),
            "-f",
            "-v",
            "-k",
            "-s",
            "-t",
            "2",
            "-d",
            "1",
            "-c",
            &cpu,
        ],
    );
    let escaped = format!("x\\x0a<0>FAKE-{victim} starved on CPU {cpu} for ");
    let starved = daemon.wait_line(&escaped);
    assert!(starved.starts_with("<6>stalld: "), "{starved}");
    daemon.wait_line(&format!("boosted pid {victim} (stalld-starve)"));
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    assert_eq!(ran["policy_when_ran"], "SCHED_DEADLINE", "{ran}");
    daemon.wait_line(&format!("restored pid {victim} to SCHED_FIFO"));

    let mut packets = Vec::new();
    syslog.receive_until(&mut packets, LINE_WAIT, |p| {
        String::from_utf8_lossy(p).contains(&escaped)
    });
    let mut records = Vec::new();
    // The kernel shows a record's backslash as \x5c.
    let kmsg_escaped = escaped.replace('\\', "\\x5c");
    kmsg.read_until(&mut records, LINE_WAIT, |r| r.contains(&kmsg_escaped));
    assert_eq!(daemon.terminate().and_then(|s| s.code()), Some(0));

    let lines = daemon.stderr_lines();
    for line in &lines {
        assert!(
            !line.starts_with("<0>"),
            "forged emergency line: {lines:#?}"
        );
        assert!(
            line.starts_with('<') && !line.contains(|c: char| c.is_control()),
            "a line not from stalld, or with a control character: {line:?}\n{lines:#?}"
        );
    }
    let ours: Vec<&Vec<u8>> = packets
        .iter()
        .filter(|p| p.starts_with(b"<"))
        .filter(|p| String::from_utf8_lossy(p).contains("]: "))
        .collect();
    assert!(
        ours.iter()
            .any(|p| String::from_utf8_lossy(p).contains(&escaped)),
        "{packets:?}"
    );
    for packet in ours {
        assert!(
            !packet.iter().any(|&b| b < b' ' || b == 0x7f),
            "syslog message with a control character: {:?}",
            String::from_utf8_lossy(packet)
        );
    }
    // A raw newline would have cut the kmsg record short at `x`.
    assert!(
        records.iter().any(|r| r.contains(&kmsg_escaped)),
        "{records:#?}"
    );
}
