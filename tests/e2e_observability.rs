//! End-to-end tests of what stalld tells the world, against real starvation (root): the JSON
//! event lines and their culprit, journald's native fields through a real systemd-journald,
//! sinks that are stalled, a real Prometheus server scraping `--metrics`, `stalld status`,
//! systemd's notifications on a test NOTIFY_SOCKET, a connection flood on the metrics
//! listener, and `stalld check`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    free_port, http_get, http_get_once_up, last_cpu, metrics_address, only_victim, policy_of,
    poll_until, Daemon, Scratch, StarvationSession, Starver, Stream, Supervised,
};
use serde_json::Value;

const LINE_WAIT: Duration = Duration::from_secs(15);
const STALLD: &str = env!("CARGO_BIN_EXE_stalld");

fn hog_pid(starver: &Starver) -> i64 {
    starver
        .events()
        .into_iter()
        .find(|event| event["event"] == "started")
        .and_then(|event| event["hog_pid"].as_i64())
        .expect("stalld-starve's started event names the hog")
}

/// The first text line (not a JSON event line) that contains `needle`.
fn wait_line(daemon: &Daemon, needle: &str) -> String {
    daemon
        .wait_for_line(
            |line| line.starts_with("stalld: ") && line.contains(needle),
            LINE_WAIT,
        )
        .unwrap_or_else(|| panic!("no line with {needle:?}\n{}", daemon.process.transcript()))
}

/// The daemon's stdout lines that are JSON objects (its `--events -`).
fn json_events(daemon: &Daemon) -> Vec<Value> {
    daemon
        .process
        .lines_of(Stream::Stdout)
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Whether python3-jsonschema is there (`scripts/install-deps --test` installs it); says
/// SKIPPED when not.
fn schema_checker() -> bool {
    let importable = std::process::Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !importable {
        eprintln!(
            "SKIPPED: the JSON Schema check of the events needs python3-jsonschema (scripts/install-deps --test)"
        );
    }
    importable
}

/// Checks each of `events` against the JSON Schema of the `--events` lines
/// (`schema/stalld-events.schema.json`) with python3-jsonschema, an implementation that is
/// not stalld's.
fn assert_match_the_schema(events: &[Value]) {
    const CHECK: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for number, line in enumerate(sys.stdin, 1):
    for error in validator.iter_errors(json.loads(line)):
        print(f"line {number}: {error.message}: {line.strip()}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
"#;
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/stalld-events.schema.json"
    );
    let mut python = std::process::Command::new("python3")
        .args(["-c", CHECK, schema])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = events.iter().map(|event| format!("{event}\n")).collect();
    python
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "events that do not match the schema:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn find_event<'a>(events: &'a [Value], kind: &str, tid: i32) -> Option<&'a Value> {
    events
        .iter()
        .find(|event| event["event"] == kind && event["tid"] == tid)
}

/// `stalld status` with `env`, optionally as another user: exit code, stdout, stderr.
fn status(env: &[(&str, &str)], as_user: Option<&str>, json: bool) -> (i32, String, String) {
    let mut command = std::process::Command::new("timeout");
    command.arg("20");
    if let Some(user) = as_user {
        command.args([
            "setpriv",
            &format!("--reuid={user}"),
            &format!("--regid={user}"),
            "--clear-groups",
        ]);
    }
    command
        .arg("env")
        .args(env.iter().map(|(k, v)| format!("{k}={v}")));
    command.arg(STALLD).arg("status");
    if json {
        command.arg("--json");
    }
    let output = command.output().expect("running stalld status");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn status_json(env: &[(&str, &str)]) -> Value {
    let (code, stdout, stderr) = status(env, None, true);
    assert_eq!(code, 0, "stalld status failed: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// `stalld status --json` once `done` holds of it, or its last answer after `LINE_WAIT`: a
/// status asked for right after a line may not show it yet (see [`poll_until`]).
fn status_json_once(env: &[(&str, &str)], done: impl Fn(&Value) -> bool) -> Value {
    poll_until(LINE_WAIT, || status_json(env), done)
}

/// `GET /metrics` once the exposition contains `expected`, or the last one after `LINE_WAIT`.
fn scrape_containing(address: &str, expected: &str) -> String {
    let scrape = || http_get(address, "/metrics").unwrap().1;
    poll_until(LINE_WAIT, scrape, |exposition| {
        exposition.contains(expected)
    })
}

fn boosted_pids(status: &Value) -> Vec<i64> {
    status["boosted"]
        .as_array()
        .expect("boosted list")
        .iter()
        .map(|b| b["pid"].as_i64().unwrap())
        .collect()
}

fn json_events_name_the_hog_as_culprit(backend: &str) {
    let Some(_session) = StarvationSession::begin("json_events_name_the_hog_as_culprit") else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = Daemon::start(
        &[],
        backend,
        &["-t", "2", "-g", "1", "-d", "1", "-c", &cpu, "--events", "-"],
    );
    let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
    let pid = only_victim(&starver);
    let hog = hog_pid(&starver);
    let starved_line = wait_line(&daemon, &format!("-{pid} starved on CPU {cpu}"));
    // The JSON lines (stdout) are read apart from the text lines (stderr): the restore's
    // comes last of this victim's.
    daemon
        .process
        .wait_until(LINE_WAIT, |lines| {
            lines
                .iter()
                .filter(|(stream, _)| *stream == Stream::Stdout)
                .filter_map(|(_, line)| serde_json::from_str::<Value>(line).ok())
                .find(|event| event["event"] == "restored" && event["tid"] == pid)
        })
        .unwrap_or_else(|| {
            panic!(
                "no restored event for {pid}\n{}",
                daemon.process.transcript()
            )
        });
    let events = json_events(&daemon);
    let starved = find_event(&events, "starved", pid)
        .unwrap_or_else(|| panic!("no starved event for {pid}: {events:#?}"));
    assert_eq!(starved["culprit_pid"], hog, "{starved}");
    assert_eq!(starved["culprit_comm"], "hog", "{starved}");
    assert_eq!(starved["culprit_policy"], "SCHED_FIFO", "{starved}");
    assert_eq!(starved["culprit_priority"], 10, "{starved}");
    assert!(
        starved["culprit_cgroup"]
            .as_str()
            .is_some_and(|c| c.starts_with('/')),
        "{starved}"
    );
    assert_eq!(starved["cpu"].to_string(), cpu);
    assert_eq!(starved["comm"], "victim0");
    assert_eq!(starved["backend"], backend);
    assert_eq!(starved["message_id"], "2a28f5a3a35b45d781375aeabe2875b6");
    assert!(
        starved["wait_ns"].as_i64().unwrap() >= 2_000_000_000,
        "{starved}"
    );
    // The text line is upstream's, then the culprit.
    assert!(
        starved_line.ends_with(&format!(" behind hog-{hog} (SCHED_FIFO 10)")),
        "{starved_line}"
    );
    assert_eq!(
        starved["message"].as_str(),
        starved_line.strip_prefix("stalld: ")
    );
    let boosted = find_event(&events, "boosted", pid).expect("boosted event");
    assert_eq!(boosted["policy"], "SCHED_DEADLINE");
    assert_eq!(boosted["process"], "stalld-starve");
    let restored = find_event(&events, "restored", pid).expect("restored event");
    assert_eq!(restored["policy"], "SCHED_FIFO");
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
    // Every line of the run, `stopping` too, as the schema says.
    let events = json_events(&daemon);
    assert!(
        events.iter().any(|event| event["event"] == "stopping"),
        "{events:#?}"
    );
    assert!(
        events.iter().all(|event| event["schema"] == 1),
        "{events:#?}"
    );
    if schema_checker() {
        assert_match_the_schema(&events);
        // The check can fail: a field the schema does not know is refused.
        let mut unknown = starved.clone();
        unknown["not_a_field"] = 1.into();
        let refused = std::panic::catch_unwind(|| assert_match_the_schema(&[unknown]));
        assert!(refused.is_err(), "the schema check accepts anything");
    }
}

#[test]
fn json_events_name_the_hog_as_culprit_sched_debug() {
    json_events_name_the_hog_as_culprit("sched_debug");
}

#[test]
fn json_events_name_the_hog_as_culprit_queue_track() {
    json_events_name_the_hog_as_culprit("queue_track");
}

/// With `--events -` stdout is the JSON stream: the `-v` tables of `-M` (stdout in the C
/// stalld) move to stderr, so that a reader of stdout sees only JSON lines.
#[test]
fn events_on_stdout_keep_the_verbose_tables_off_it() {
    let Some(_session) =
        StarvationSession::begin("events_on_stdout_keep_the_verbose_tables_off_it")
    else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = Daemon::start(
        &[],
        "queue_track",
        &[
            "-M", "-l", "-N", "-t", "2", "-d", "1", "-c", &cpu, "--events", "-",
        ],
    );
    let table = daemon.process.wait_until(LINE_WAIT, |lines| {
        lines
            .iter()
            .find(|(stream, line)| {
                *stream == Stream::Stderr && line.starts_with(&format!("CPU {cpu} has "))
            })
            .cloned()
    });
    assert!(table.is_some(), "no table on stderr: {:#?}", daemon.lines());
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
    let stdout = daemon.process.lines_of(Stream::Stdout);
    assert!(
        stdout
            .iter()
            .any(|line| line.contains("\"event\":\"started\"")),
        "{stdout:#?}"
    );
    for line in &stdout {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON line on stdout: {line:?}\n{stdout:#?}"
        );
    }
}

/// A systemd-journald namespace instance (`systemd-journald NAMESPACE`): a real journald with
/// sockets and storage of its own, so the machine's journal (if any) is untouched.
struct Journald {
    process: Option<Supervised>,
    namespace: String,
}

impl Journald {
    fn start(test: &str) -> Option<Journald> {
        let binary = common::tool_or_skip(
            test,
            &[
                "/lib/systemd/systemd-journald",
                "/usr/lib/systemd/systemd-journald",
            ],
            "Debian's systemd package",
        )?;
        let namespace = format!("stalldtest{}", std::process::id());
        let process = Supervised::spawn(binary, &[&namespace], Duration::from_secs(120));
        let journald = Journald {
            process: Some(process),
            namespace,
        };
        let socket = journald.socket();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "journald made no {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(journald)
    }

    fn socket(&self) -> PathBuf {
        PathBuf::from(format!("/run/systemd/journal.{}/socket", self.namespace))
    }

    /// Every entry stalld sent, as journalctl's JSON (waits up to a while for `until`).
    fn entries(&self, until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + LINE_WAIT;
        loop {
            let output = std::process::Command::new("journalctl")
                .arg(format!("--namespace={}", self.namespace))
                .args([
                    "-o",
                    "json",
                    "--all",
                    "--no-pager",
                    "SYSLOG_IDENTIFIER=stalld",
                ])
                .output()
                .expect("journalctl");
            let entries: Vec<Value> = String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
            if until(&entries) || Instant::now() > deadline {
                return entries;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Journald {
    fn drop(&mut self) {
        // journald first, then its sockets and storage.
        drop(self.process.take());
        let suffix = format!(".{}", self.namespace);
        let _ = std::fs::remove_dir_all(format!("/run/systemd/journal{suffix}"));
        for dir in ["/var/log/journal", "/run/log/journal"] {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if entry.file_name().to_string_lossy().ends_with(&suffix) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
}

#[test]
fn journald_gets_native_fields_of_a_real_starvation() {
    let Some(_session) = StarvationSession::begin("journald_gets_native_fields") else {
        return;
    };
    let Some(journald) = Journald::start("journald_gets_native_fields") else {
        return;
    };
    let socket = journald.socket();
    let socket = socket.to_str().unwrap();
    let cpu = last_cpu();
    let mut daemon = Daemon::start(
        &[(stalld::daemon::JOURNAL_SOCKET_ENV, socket)],
        "queue_track",
        &["-t", "2", "-d", "1", "-c", &cpu],
    );
    let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
    let pid = only_victim(&starver);
    let hog = hog_pid(&starver);
    wait_line(&daemon, &format!("restored pid {pid} "));
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
    let entries =
        journald.entries(|entries| entries.iter().any(|e| e["STALLD_EVENT"] == "stopping"));
    let of = |kind: &str| {
        entries
            .iter()
            .find(|e| {
                e["STALLD_EVENT"] == kind && e["STALLD_TID"].as_str() == Some(&pid.to_string())
            })
            .unwrap_or_else(|| panic!("no {kind} entry for {pid} in {entries:#?}"))
    };
    let starved = of("starved");
    assert_eq!(starved["MESSAGE_ID"], "2a28f5a3a35b45d781375aeabe2875b6");
    assert_eq!(starved["PRIORITY"], "6");
    assert_eq!(
        starved["_TRANSPORT"], "journal",
        "sent with the native protocol"
    );
    assert_eq!(starved["STALLD_CPU"], cpu);
    assert_eq!(starved["STALLD_COMM"], "victim0");
    assert_eq!(starved["STALLD_BACKEND"], "queue_track");
    assert_eq!(starved["STALLD_CULPRIT_PID"], hog.to_string());
    assert!(
        starved["STALLD_WAIT_NS"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 2_000_000_000
    );
    assert!(starved["STALLD_TGID"].as_str().is_some());
    assert!(starved["MESSAGE"]
        .as_str()
        .unwrap()
        .starts_with(&format!("victim0-{pid} starved on CPU {cpu} for 2 seconds")));
    // journald resolved the victim itself: OBJECT_PID becomes the victim's command and cgroup.
    assert_eq!(starved["OBJECT_PID"], pid.to_string());
    assert_eq!(starved["OBJECT_COMM"], "victim0", "{starved}");
    let boosted = of("boosted");
    assert_eq!(boosted["MESSAGE_ID"], "a58d627fe1fb4428b6c2c9986507e1eb");
    assert_eq!(boosted["STALLD_POLICY"], "SCHED_DEADLINE");
    let restored = of("restored");
    assert_eq!(restored["STALLD_POLICY"], "SCHED_FIFO");
    // Under journald, the stream lines are not duplicated onto stderr... unless asked (-v).
    assert!(
        entries
            .iter()
            .any(|e| e["MESSAGE"] == "using queue_track backend"),
        "free-text lines too"
    );

    // An entry too large for a datagram goes as a sealed memfd.
    let journal = stalld::daemon::Journal::open(&journald.socket()).unwrap();
    let big = "y".repeat(600_000);
    assert_eq!(
        journal.send(&[
            ("MESSAGE", big.as_bytes()),
            ("SYSLOG_IDENTIFIER", b"stalld"),
            ("STALLD_EVENT", b"big")
        ]),
        stalld::daemon::Delivery::Sent
    );
    let entries = journald.entries(|entries| entries.iter().any(|e| e["STALLD_EVENT"] == "big"));
    let entry = entries
        .iter()
        .find(|e| e["STALLD_EVENT"] == "big")
        .expect("the large entry arrived");
    // journalctl shows large fields as byte arrays or strings, depending on size.
    let len = entry["MESSAGE"]
        .as_str()
        .map(str::len)
        .or_else(|| entry["MESSAGE"].as_array().map(Vec::len));
    assert_eq!(len, Some(600_000));
}

/// A datagram socket whose queue is full, as a journald or syslog daemon that stopped
/// reading: a blocking send there would hang the loop.
fn stalled_socket(path: &Path) -> (UnixDatagram, UnixDatagram) {
    let receiver = UnixDatagram::bind(path).unwrap();
    let filler = UnixDatagram::unbound().unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut sent = 0;
    while filler.send_to(b"MESSAGE=filler\n", path).is_ok() {
        sent += 1;
        assert!(sent < 1_000_000, "the queue never filled");
    }
    (receiver, filler)
}

#[test]
fn stalled_journald_and_syslog_do_not_stop_boosts_and_drops_are_counted() {
    let Some(_session) = StarvationSession::begin("stalled_journald_and_syslog") else {
        return;
    };
    let scratch = Scratch::new("stalled-sinks");
    let (journal, syslog) = (scratch.join("journal"), scratch.join("syslog"));
    let _journal = stalled_socket(&journal);
    let _syslog = stalled_socket(&syslog);
    let (cpu, runtime) = (last_cpu(), common::BOOST_RUNTIME);
    let mut daemon = Daemon::start(
        &[
            (
                stalld::daemon::JOURNAL_SOCKET_ENV,
                journal.to_str().unwrap(),
            ),
            (stalld::daemon::SYSLOG_SOCKET_ENV, syslog.to_str().unwrap()),
        ],
        "queue_track",
        &["-s", "-t", "2", "-d", "1", "-r", runtime, "-c", &cpu],
    );
    let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
    let pid = only_victim(&starver);
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    assert_eq!(ran["policy_when_ran"], "SCHED_DEADLINE", "{ran}");
    assert!(
        ran["wait_s"].as_f64().unwrap() < 2.25,
        "boost late with stalled sinks: {ran}"
    );
    wait_line(&daemon, &format!("restored pid {pid} "));
    let dropped_at_least = |status: &Value, n: u64| {
        ["journal", "syslog"]
            .iter()
            .all(|sink| status["counters"]["log_dropped"][sink].as_u64() >= Some(n))
    };
    let status = status_json_once(&[], |status| dropped_at_least(status, 3));
    let dropped = &status["counters"]["log_dropped"];
    assert!(dropped["journal"].as_u64().unwrap() >= 3, "{dropped}");
    assert!(dropped["syslog"].as_u64().unwrap() >= 3, "{dropped}");
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn prometheus_scrapes_the_boost_of_the_victims_cpu() {
    let hint = "scripts/install-deps --test installs it";
    let Some((_session, prometheus)) = common::session_with_tool(
        "prometheus_scrapes_the_boost",
        &["/usr/bin/prometheus"],
        hint,
    ) else {
        return;
    };
    let cpu = last_cpu();
    let mut daemon = Daemon::start(
        &[],
        "queue_track",
        &["-t", "2", "-d", "1", "-c", &cpu, "--metrics", "127.0.0.1:0"],
    );
    let target = metrics_address(&daemon);
    let (code, exposition) = http_get(&target, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(exposition.ends_with("# EOF\n"), "{exposition}");
    assert_eq!(http_get(&target, "/other").unwrap().0, 404);

    let scratch = Scratch::new("prometheus");
    let (_prometheus, web) =
        common::prometheus(prometheus, &scratch, &target, &[], Duration::from_secs(120));

    let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
    let pid = only_victim(&starver);
    wait_line(&daemon, &format!("boosted pid {pid} "));
    // Summed over the policies: every (policy, result) series exists from the start.
    let query = format!(
        "/api/v1/query?query=sum%28stalld_boosts_total%7Bcpu%3D%22{cpu}%22%2Cresult%3D%22ok%22%7D%29"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let value = loop {
        let answer = http_get(&web, &query)
            .ok()
            .and_then(|(_, body)| serde_json::from_str::<Value>(&body).ok());
        let value = answer.as_ref().and_then(|a| {
            a["data"]["result"][0]["value"][1]
                .as_str()?
                .parse::<f64>()
                .ok()
        });
        if let Some(value) = value.filter(|v| *v >= 1.0) {
            let _ = writeln!(
                std::io::stderr(),
                "prometheus answered: {}",
                answer.unwrap()["data"]
            );
            break value;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never saw the boost: {answer:?}\n{}",
            daemon.process.transcript()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(value >= 1.0);
    let (_, exposition) = http_get(&target, "/metrics").unwrap();
    for expected in [
        format!("stalld_boosts_total{{cpu=\"{cpu}\",policy=\"deadline\",result=\"ok\"}} 1"),
        format!("stalld_starving_events_total{{cpu=\"{cpu}\"}} 1"),
        format!(
            "stalld_mode_info{{backend=\"queue_track\",stamps=\"{}\",boost=\"deadline\",threshold_seconds=\"2\"}} 1",
            default_stamps()
        ),
        format!("stalld_starvation_wait_seconds_count{{cpu=\"{cpu}\"}} 1"),
        format!(
            "stalld_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        ),
    ] {
        assert!(
            exposition.contains(&expected),
            "{expected} missing from\n{exposition}"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "--- scrape after the boost ---\n{exposition}"
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn status_lists_the_boosted_victim_during_its_boost_and_nothing_after() {
    let Some(_session) = StarvationSession::begin("status_lists_the_boosted_victim") else {
        return;
    };
    let (code, _, stderr) = status(&[], None, false);
    assert_eq!(code, 3, "no daemon runs: {stderr}");
    assert!(stderr.contains("no stalld is running"), "{stderr}");

    let cpu = last_cpu();
    let mut daemon = Daemon::start(&[], "queue_track", &["-t", "4", "-d", "3", "-c", &cpu]);
    let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
    let pid = only_victim(&starver);
    wait_line(&daemon, &format!("boosted pid {pid} "));
    let during = status_json_once(&[], |status| !boosted_pids(status).is_empty());
    assert_eq!(boosted_pids(&during), vec![i64::from(pid)], "{during:#}");
    let boost = &during["boosted"][0];
    assert_eq!(boost["comm"], "victim0");
    assert_eq!(boost["cpu"].to_string(), cpu);
    assert_eq!(boost["policy"], "SCHED_DEADLINE");
    let length = boost["until"].as_f64().unwrap() - boost["since"].as_f64().unwrap();
    assert!((length - 3.0).abs() < 0.01, "{boost}");
    assert_eq!(during["backend"], "queue_track");
    assert_eq!(during["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(during["config"]["threshold_s"], 4.0);
    assert_eq!(during["counters"]["boosts"]["ok"], 1);
    assert!(during["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event"] == "boosted" && e["tid"] == pid));
    let (code, text, _) = status(&[], None, false);
    assert_eq!(code, 0);
    assert!(
        text.contains(&format!(
            "pid {pid} (victim0) on CPU {cpu} with SCHED_DEADLINE"
        )),
        "{text}"
    );

    let restored = wait_line(&daemon, &format!("restored pid {pid} "));
    assert!(restored.contains(" ms boosted)"), "{restored}");
    let after = status_json_once(&[], |status| boosted_pids(status).is_empty());
    assert!(boosted_pids(&after).is_empty(), "{after:#}");
    assert_eq!(after["counters"]["restores"]["restored"], 1);
    // What the boost cost the victim's CPU: the CPU time the victim received.
    let cost = after["counters"]["boosted_cpu_s_by_cpu"][&cpu]
        .as_f64()
        .unwrap_or_else(|| panic!("no CPU time for CPU {cpu}: {after:#}"));
    assert!(cost > 0.0 && cost < 0.1, "{cost} s");
    let (_, text, _) = status(&[], None, false);
    assert!(text.contains(&format!("CPU {cpu} {cost:.6} s")), "{text}");
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
    assert!(
        !stalld::daemon::status_socket_path().exists(),
        "socket left behind"
    );
    let (code, _, _) = status(&[], None, false);
    assert_eq!(code, 3);
}

/// A restore that keeps failing is not forgotten: the daemon keeps retrying while it runs,
/// shows the task as held in `stalld status` and `stalld_held_tasks`, and once the restore
/// works the task has its own policy back. The failure is real to the daemon: in its own mount
/// namespace the victim's /proc stat is hidden (/dev/null bound over it), so the daemon cannot
/// check that the pid still names the boosted task and must not touch it.
#[test]
fn a_restore_that_keeps_failing_is_retried_and_the_task_shown_held() {
    let Some(_session) = StarvationSession::begin("a_restore_that_keeps_failing") else {
        return;
    };
    let scratch = Scratch::new("held");
    let socket = scratch.join("stalld.sock");
    let env = [(stalld::daemon::STATUS_SOCKET_ENV, socket.to_str().unwrap())];
    let cpu = last_cpu();
    let setting = format!("{}={}", env[0].0, env[0].1);
    // In a mount namespace of its own, where the test can hide a /proc entry from it alone.
    let options = format!("-f -v -t 2 -d 1 -c {cpu} --metrics 127.0.0.1:0");
    let mut argv = vec![
        "--mount",
        "--propagation",
        "private",
        "env",
        &setting,
        STALLD,
    ];
    argv.extend(options.split(' '));
    let mut daemon = Daemon::spawn_program("unshare", &argv);
    let target = metrics_address(&daemon);
    let daemon_pid = daemon.process.program_pid().to_string();
    let starver = Starver::spawn(&["--duration", "30", "--linger", "25"]);
    let pid = only_victim(&starver);
    wait_line(&daemon, &format!("boosted pid {pid} "));
    let stat = format!("/proc/{pid}/task/{pid}/stat");
    let in_daemon = |args: &[&str]| in_mount_namespace_of(&daemon_pid, args);
    in_daemon(&["mount", "--bind", "/dev/null", &stat]);
    let held = wait_line(&daemon, "(held: retried while stalld runs");
    assert!(
        held.contains(&format!("failed to restore sched policy for pid {pid}: ")),
        "{held}"
    );
    // The attempts before were reported; the task still holds its boost.
    assert_eq!(
        daemon
            .lines()
            .iter()
            .filter(|l| l.contains(&format!("for pid {pid}: ")) && l.contains(" of 5, retrying"))
            .count(),
        4
    );
    assert_eq!(policy_of(pid).0, "SCHED_DEADLINE");
    // Still shown held well after: not forgotten.
    std::thread::sleep(Duration::from_secs(3));
    let during = status_json(&env);
    let held: Vec<i64> = during["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(held, [i64::from(pid)], "{during:#}");
    assert!(boosted_pids(&during).is_empty(), "{during:#}");
    let (_, text, _) = status(&env, None, false);
    assert!(text.contains("held (restore failing"), "{text}");
    let (_, exposition) = http_get(&target, "/metrics").unwrap();
    assert!(
        exposition.contains("stalld_held_tasks 1.0\n"),
        "{exposition}"
    );
    assert!(
        exposition.contains("stalld_restores_total{result=\"failed\"} 1\n"),
        "{exposition}"
    );
    // The daemon could act again: the next retry restores the task.
    in_daemon(&["umount", &stat]);
    wait_line(&daemon, &format!("restored pid {pid} to SCHED_FIFO"));
    assert_eq!(policy_of(pid), ("SCHED_FIFO".to_owned(), 5));
    let held_tasks = |status: &Value| {
        status["held"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(usize::MAX)
    };
    let after = status_json_once(&env, |status| held_tasks(status) == 0);
    assert_eq!(held_tasks(&after), 0, "{after:#}");
    let exposition = scrape_containing(&target, "stalld_held_tasks 0.0\n");
    assert!(
        exposition.contains("stalld_held_tasks 0.0\n"),
        "{exposition}"
    );
    assert!(
        exposition.contains(&format!(
            "stalld_boosted_cpu_seconds_total{{cpu=\"{cpu}\"}} "
        )),
        "{exposition}"
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn a_non_root_status_is_refused() {
    let Some(_session) = StarvationSession::begin("a_non_root_status_is_refused") else {
        return;
    };
    let mut daemon = Daemon::start(&[], "queue_track", &["-l", "-c", &last_cpu()]);
    // Through /run/stalld: the directory is root's.
    let (code, _, stderr) = status(&[], Some("65534"), false);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));

    // A socket anyone can reach: the peer-credential check alone refuses.
    let scratch = Scratch::new("status-socket");
    std::fs::set_permissions(
        &scratch.0,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let socket = scratch.join("stalld.sock");
    let env = [(stalld::daemon::STATUS_SOCKET_ENV, socket.to_str().unwrap())];
    let mut daemon = Daemon::start(&env, "queue_track", &["-l", "-c", &last_cpu()]);
    std::fs::set_permissions(&socket, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let (code, _, stderr) = status(&env, Some("65534"), true);
    assert_eq!(code, 4, "{stderr}");
    assert!(
        stderr.contains("permission denied: stalld status needs root"),
        "{stderr}"
    );
    assert_eq!(
        status_json(&env)["config"]["log_only"],
        true,
        "root is answered"
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

/// A test NOTIFY_SOCKET: what the daemon sends there, with when it came (since the bind).
struct Notifications {
    socket: UnixDatagram,
    path: PathBuf,
    started: Instant,
    messages: Vec<(Duration, String)>,
}

impl Notifications {
    fn bind(path: PathBuf) -> Notifications {
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notifications {
            socket,
            path,
            started: Instant::now(),
            messages: Vec::new(),
        }
    }

    /// `NOTIFY_SOCKET=...`, for `env`.
    fn setting(&self) -> String {
        format!("NOTIFY_SOCKET={}", self.path.display())
    }

    /// Keeps what arrives for `limit`.
    fn receive_for(&mut self, limit: Duration) {
        self.receive_until(limit, |_| false);
    }

    /// Keeps what arrives until `done` holds of all of it so far, for at most `limit`.
    fn receive_until(&mut self, limit: Duration, done: impl Fn(&[(Duration, String)]) -> bool) {
        let until = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        while !done(&self.messages) && Instant::now() < until {
            if let Ok(n) = self.socket.recv(&mut buf) {
                self.messages.push((
                    self.started.elapsed(),
                    String::from_utf8_lossy(&buf[..n]).into_owned(),
                ));
            }
        }
    }

    fn said(messages: &[(Duration, String)], what: &str) -> bool {
        messages.iter().any(|(_, m)| m.contains(what))
    }

    /// When each `WATCHDOG=1` came.
    fn pings(&self) -> Vec<Duration> {
        self.messages
            .iter()
            .filter(|(_, m)| m.contains("WATCHDOG=1"))
            .map(|(at, _)| *at)
            .collect()
    }
}

/// Runs `args` in the mount namespace of process `pid` (a daemon started under `unshare
/// --mount`), where the test can hide files from the daemon alone.
fn in_mount_namespace_of(pid: &str, args: &[&str]) {
    let status = std::process::Command::new("nsenter")
        .args(["-t", pid, "-m"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "nsenter {args:?}");
}

#[test]
fn systemd_notifications_ready_watchdog_stopping() {
    let Some(_session) = StarvationSession::begin("systemd_notifications") else {
        return;
    };
    let scratch = Scratch::new("notify");
    let mut notifications = Notifications::bind(scratch.join("notify"));
    // No -f: under Type=notify the daemon must stay the process systemd started. The loop
    // would sleep the whole 20 s threshold; the 2 s watchdog must wake it.
    let mut argv = vec![
        notifications.setting(),
        "WATCHDOG_USEC=2000000".to_owned(),
        STALLD.to_owned(),
        "-l".to_owned(),
        "-c".to_owned(),
        last_cpu(),
    ];
    argv.extend(["-b", "queue_track"].map(String::from));
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut daemon = Daemon::spawn_program("env", &argv);
    // Ready, then pinged every second (a start under load may take seconds of its own).
    notifications.receive_until(Duration::from_secs(30), |messages| {
        Notifications::said(messages, "READY=1")
            && messages
                .iter()
                .filter(|(_, m)| m.contains("WATCHDOG=1"))
                .count()
                >= 4
    });
    let messages = &notifications.messages;
    let ready = messages
        .iter()
        .find(|(_, m)| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1: {messages:?}\n{}", daemon.process.transcript()));
    assert!(
        ready.1.contains(&format!(
            "STATUS=queue_track backend ({} stamps); 0 boosted now",
            default_stamps()
        )),
        "{ready:?}"
    );
    let pings = notifications.pings();
    assert!(
        pings.len() >= 4,
        "the watchdog wants a ping every second: {messages:?}"
    );
    for pair in pings.windows(2) {
        assert!(
            pair[1] - pair[0] < Duration::from_millis(1500),
            "late ping: {pings:?}"
        );
    }
    // Still running, not daemonized.
    assert!(
        daemon.process.wait_exit(Duration::ZERO).is_none(),
        "{}",
        daemon.process.transcript()
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
    notifications.receive_until(LINE_WAIT, |messages| {
        Notifications::said(messages, "STOPPING=1")
    });
    assert!(
        notifications
            .messages
            .iter()
            .any(|(_, m)| m.contains("STOPPING=1")),
        "no STOPPING=1"
    );
}

/// The policy of the thread of `pid` named `name` once it is `expected`, or what it is after
/// `LINE_WAIT`. A listener thread names itself and leaves the daemon's policy from inside
/// (as every new thread must), after the line that says it serves, and the status listener
/// starts after that line: the test looks until it is done.
fn thread_policy_once(pid: i32, name: &str, expected: &str) -> Option<String> {
    poll_until(
        LINE_WAIT,
        || thread_policy(pid, name),
        |policy| policy.as_deref() == Some(expected),
    )
}

/// Every thread of `pid` named `name`: its policy.
fn thread_policy(pid: i32, name: &str) -> Option<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|task| {
        let tid: i32 = task.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        (comm.trim() == name).then(|| common::policy_of(tid).0)
    })
}

#[test]
fn a_flood_of_metrics_connections_does_not_delay_the_boost() {
    let Some(_session) = StarvationSession::begin("a_flood_of_metrics_connections") else {
        return;
    };
    let cpu = last_cpu();
    // As the unit runs it: SCHED_FIFO 10 for the loop.
    let options = format!(
        "-f -v -b queue_track -t 2 -d 1 -r {} -c {cpu} --metrics 127.0.0.1:0",
        common::BOOST_RUNTIME
    );
    let mut argv = vec!["-f", "10", STALLD];
    argv.extend(options.split(' '));
    let mut daemon = Daemon::spawn_program("chrt", &argv);
    let target = metrics_address(&daemon);
    let pid = daemon.process.program_pid();
    assert_eq!(common::policy_of(pid).0, "SCHED_FIFO");
    for listener in ["stalld-metrics", "stalld-status"] {
        let policy = thread_policy_once(pid, listener, "SCHED_OTHER");
        assert_eq!(policy.as_deref(), Some("SCHED_OTHER"), "{listener}");
    }

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let counts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let scrapes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // First an episode without the flood, for comparison.
    let quiet = {
        let starver = Starver::spawn(&["--duration", "10"]);
        only_victim(&starver);
        let ran = starver.wait_event("victim_ran", LINE_WAIT);
        ran["wait_s"].as_f64().unwrap() - 2.0
    };
    let flooders: Vec<_> = (0..32)
        .map(|i| {
            let (stop, counts, target) = (stop.clone(), counts.clone(), target.clone());
            let scrapes = scrapes.clone();
            std::thread::spawn(move || {
                let end = Instant::now() + Duration::from_secs(20);
                let mut idle = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < end {
                    match TcpStream::connect(&target) {
                        // Half of them hold connections open without a request (slow clients),
                        // the others ask for scrapes as fast as they can.
                        Ok(stream) if i % 2 == 0 => {
                            idle.push(stream);
                            if idle.len() > 50 {
                                idle.remove(0);
                            }
                        }
                        Ok(mut stream) => {
                            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
                            let mut answer = Vec::new();
                            let _ = stream.read_to_end(&mut answer);
                            if answer.starts_with(b"HTTP/1.1 200") {
                                scrapes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                    counts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let starver = Starver::spawn(&["--duration", "15"]);
    let victim = only_victim(&starver);
    let ran = starver.wait_event("victim_ran", LINE_WAIT);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for flooder in flooders {
        flooder.join().unwrap();
    }
    let beyond = ran["wait_s"].as_f64().unwrap() - 2.0;
    let _ = writeln!(
        std::io::stderr(),
        "flood: {} connections, {} scrapes answered; victim {victim} boosted {:.1} ms after the threshold (without the flood: {:.1} ms)",
        counts.load(std::sync::atomic::Ordering::Relaxed),
        scrapes.load(std::sync::atomic::Ordering::Relaxed),
        beyond * 1000.0,
        quiet * 1000.0
    );
    assert_eq!(ran["policy_when_ran"], "SCHED_DEADLINE", "{ran}");
    // The bound of the unflooded test (queue_track_detects_within_milliseconds_of_the_threshold).
    assert!(
        (0.0..0.25).contains(&beyond),
        "victim waited {beyond:.4} s beyond the threshold under the flood"
    );
    // The listener is still alive afterwards.
    assert_eq!(http_get(&target, "/metrics").unwrap().0, 200);
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

/// A liveness probe as the DaemonSet's (`GET /metrics`), allowed `limit` for all of it.
fn probe(address: &str, limit: Duration) -> std::io::Result<u32> {
    let address: std::net::SocketAddr = address.parse().unwrap();
    let mut stream = TcpStream::connect_timeout(&address, limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: probe\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    Ok(text
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0))
}

/// Slow clients cannot take the metrics port down (Kubernetes would restart stalld in a loop
/// for failed liveness probes): 8 clients each sending a byte every 0.5 s, while a probe runs
/// every 0.5 s with 1 s to be answered. Every probe is answered, and no slow client keeps its
/// connection past its time for a request. Nothing starves here.
#[test]
fn slow_metrics_clients_fail_no_scrape_and_no_liveness_probe() {
    let Some(_session) = StarvationSession::begin("slow_metrics_clients") else {
        return;
    };
    let mut daemon = Daemon::start(
        &[],
        "queue_track",
        &[
            "-l",
            "-t",
            "60",
            "-c",
            &last_cpu(),
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let address = metrics_address(&daemon);
    let started = Instant::now();
    let slow: Vec<_> = (0..8)
        .map(|_| {
            let address = address.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&address).unwrap();
                while started.elapsed() < Duration::from_secs(8) {
                    if stream.write_all(b"G").is_err() {
                        return Some(started.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                None
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut probes = Vec::new();
    while started.elapsed() < Duration::from_secs(6) {
        let asked = Instant::now();
        let outcome = probe(&address, Duration::from_secs(1));
        probes.push((outcome.as_ref().ok().copied(), asked.elapsed()));
        std::thread::sleep(Duration::from_millis(500));
    }
    let closed: Vec<_> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    let failed: Vec<_> = probes
        .iter()
        .filter(|(code, _)| *code != Some(200))
        .collect();
    let _ = writeln!(
        std::io::stderr(),
        "slow clients: {} probes, {} failed, slowest {:?}; slow clients closed at {closed:?}",
        probes.len(),
        failed.len(),
        probes.iter().map(|(_, took)| *took).max()
    );
    assert!(failed.is_empty(), "probes failed: {failed:?} of {probes:?}");
    assert!(
        closed
            .iter()
            .all(|at| at.is_some_and(|at| at < Duration::from_secs(4))),
        "slow clients kept their connections: {closed:?}"
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

/// The value of the sample `name` (with its labels, as printed) in an exposition.
fn sample(exposition: &str, name: &str) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.split_ascii_whitespace().next()?.parse().ok()
    })
}

/// Fills the pipe whose write end is `writer` until it takes nothing more, through a file
/// description of its own (O_NONBLOCK there leaves the daemon's description blocking).
fn fill(writer: &std::io::PipeWriter) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let mut own = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", writer.as_raw_fd()))
        .unwrap();
    let chunk = [b'#'; 4096];
    while own.write(&chunk).is_ok_and(|n| n > 0) {}
}

/// A log reader that stopped (a stalled container log reader, a terminal on hold): stderr
/// (`-v`'s per-check lines) or stdout (`-M`'s tables) lead to a full pipe. The loop must go on
/// checking (the checks count in /metrics keeps growing, not only the listener answering),
/// and what it cannot write is dropped and counted. No task starves here.
#[test]
fn a_full_stderr_or_stdout_pipe_does_not_stop_the_checks() {
    let Some(_session) = StarvationSession::begin("a_full_stderr_or_stdout_pipe") else {
        return;
    };
    for (mode, sink) in [("-O", "stderr"), ("-M", "stdout")] {
        let address = format!("127.0.0.1:{}", free_port());
        let (stderr_reader, stderr_writer) = std::io::pipe().unwrap();
        let (stdout_reader, stdout_writer) = std::io::pipe().unwrap();
        let child = std::process::Command::new("timeout")
            .args(["-s", "KILL", "60", STALLD, "-f", "-v", "-l", "-N", mode])
            .args([
                "-t",
                "1",
                "-d",
                "1",
                "-c",
                &last_cpu(),
                "--metrics",
                &address,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(stdout_writer.try_clone().unwrap())
            .stderr(stderr_writer.try_clone().unwrap())
            .spawn()
            .unwrap();
        // Killed with its `timeout` whatever the outcome.
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = stalld::sys::kill(-(self.0.id() as i32), libc::SIGKILL);
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut child = Kill(child);
        let (code, _) = http_get_once_up(&address, "/metrics", LINE_WAIT);
        assert_eq!(code, 200);
        fill(&stderr_writer);
        fill(&stdout_writer);
        let dropped_series = format!("stalld_log_dropped_total{{sink=\"{sink}\"}}");
        // (checks, lines dropped) as the daemon last published them.
        let scrape = || {
            let (code, body) = http_get(&address, "/metrics").unwrap();
            assert_eq!(code, 200);
            (
                sample(&body, "stalld_check_duration_seconds_count").unwrap(),
                sample(&body, &dropped_series),
            )
        };
        // The next line the loop writes meets the full pipe, and is dropped.
        let (_, dropped) = poll_until(LINE_WAIT, scrape, |(_, dropped)| {
            dropped.is_some_and(|n| n > 0.0)
        });
        assert!(
            dropped.is_some_and(|n| n > 0.0),
            "{mode}: {sink} dropped {dropped:?}"
        );
        // After that the loop goes on checking (every second here).
        let (before, _) = scrape();
        let (after, _) = poll_until(LINE_WAIT, scrape, |(checks, _)| *checks >= before + 2.0);
        assert!(
            after >= before + 2.0,
            "{mode}: {before} checks, then {after} {LINE_WAIT:?} later: the loop is stuck on {sink}"
        );
        // It still ends when told to, whatever it had to say.
        stalld::sys::kill(child.0.id() as i32, libc::SIGTERM).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = child.0.try_wait().unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{mode}: exit");
        drop((stderr_reader, stdout_reader));
    }
}

/// `stalld check` where debugfs and securityfs are not mounted: it still answers, and the
/// mounts it needed stay its own (run inside a mount namespace where they are unmounted, the
/// shell that ran it sees no new mount afterwards).
#[test]
fn check_gives_a_verdict_and_leaves_nothing_mounted() {
    if !common::require_root_or_skip("check_gives_a_verdict_and_leaves_nothing_mounted") {
        return;
    }
    let script = format!(
        "umount -l /sys/kernel/debug 2>/dev/null; umount -l /sys/kernel/security 2>/dev/null; \
         {STALLD} check --json -t 3600 -d 3; echo \"exit=$?\"; grep -c -E ' (debugfs|securityfs) ' /proc/mounts"
    );
    let output = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (json, tail) = stdout
        .rsplit_once("exit=")
        .unwrap_or_else(|| panic!("{stdout}"));
    let mut tail = tail.lines();
    let code: i32 = tail.next().unwrap().parse().unwrap();
    assert_eq!(
        tail.next(),
        Some("0"),
        "check left a mount behind: {stdout}"
    );
    let report: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let item = |name: &str| {
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["item"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report:#}"))
            .clone()
    };
    for name in [
        "btf",
        "queue_track",
        "debugfs",
        "lockdown",
        "fair_server",
        "rt_throttling",
        "rt_group_sched",
        "rcu_stall",
        "hrtick",
        "isolated_cpus",
        "other_instances",
    ] {
        let verdict = item(name)["verdict"].as_str().unwrap().to_owned();
        assert!(
            ["ok", "warn", "fail", "unknown"].contains(&verdict.as_str()),
            "{name}: {verdict}"
        );
    }
    assert!(
        item("debugfs")["detail"]
            .as_str()
            .unwrap()
            .starts_with("not mounted"),
        "{report:#}"
    );
    assert!(
        item("queue_track")["detail"]
            .as_str()
            .unwrap()
            .contains("stamp source: "),
        "{report:#}"
    );
    // A one-hour threshold is above any RCU stall timeout.
    assert_ne!(item("rcu_stall")["verdict"], "ok", "{report:#}");
    let expected = match report["verdict"].as_str().unwrap() {
        "ok" => 0,
        "warn" => 1,
        _ => 2,
    };
    assert_eq!(code, expected, "{report:#}");
    assert!(code >= 1);
}

/// The stamp source queue_track uses by default on this kernel (`sched_info` where the
/// kernel keeps enqueue stamps).
fn default_stamps() -> &'static str {
    stalld::backend::queue_track_stamp_source(stalld::backend::StampChoice::Auto)
        .expect("the kernel's stamp source")
        .name()
}

/// A value of one sample line of an exposition (`name value`).
fn sample_value(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
}

/// A backend whose every snapshot fails is visible (issue 17.7, 17.8): each failure is a
/// counted `check_failed` (still the C stalld's "Dazed and confused" line), and once no check
/// has succeeded for the health bound (here 4 s: WatchdogSec 2 s, twice a 2 s polling gap)
/// the watchdog is no longer pinged, `/healthz` answers 503 with the reason and `stalld
/// status` says failing; once the backend can be read again, all of it recovers. The failure
/// is real to the daemon: in its own mount namespace the test hides debugfs under a tmpfs, so
/// reading sched_debug fails with ENOENT.
#[test]
fn a_backend_that_keeps_failing_stops_the_watchdog_and_fails_healthz() {
    let Some(_session) = StarvationSession::begin("a_backend_that_keeps_failing") else {
        return;
    };
    let scratch = Scratch::new("failing-backend");
    let mut notifications = Notifications::bind(scratch.join("notify"));
    let socket = scratch.join("stalld.sock");
    let env = [(stalld::daemon::STATUS_SOCKET_ENV, socket.to_str().unwrap())];
    let settings = [
        format!("{}={}", env[0].0, env[0].1),
        notifications.setting(),
        "WATCHDOG_USEC=2000000".to_owned(),
    ];
    let cpu = last_cpu();
    // -N: every poll reads sched_debug (an idle CPU would otherwise skip the read).
    let options = format!("-v -l -N -b sched_debug -g 1 -c {cpu} --metrics 127.0.0.1:0");
    let mut argv = vec!["--mount", "--propagation", "private", "env"];
    argv.extend(settings.iter().map(String::as_str));
    argv.push(STALLD);
    argv.extend(options.split(' '));
    let mut daemon = Daemon::spawn_program("unshare", &argv);
    let target = metrics_address(&daemon);
    let daemon_pid = daemon.process.program_pid().to_string();
    let in_daemon = |args: &[&str]| in_mount_namespace_of(&daemon_pid, args);
    notifications.receive_until(LINE_WAIT, |messages| {
        Notifications::said(messages, "READY=1")
    });
    assert!(
        notifications
            .messages
            .iter()
            .any(|(_, m)| m.contains("READY=1")),
        "{:?}\n{}",
        notifications.messages,
        daemon.process.transcript()
    );
    // READY=1 goes out with the first check; /healthz shows it once the wakeup has ended.
    let (code, body) = poll_until(
        LINE_WAIT,
        || http_get(&target, "/healthz").unwrap(),
        |(_, body)| body.starts_with("alive: last successful check "),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("alive: last successful check "), "{body}");
    let (_, exposition) = http_get(&target, "/metrics").unwrap();
    assert_eq!(
        sample_value(&exposition, "stalld_checks_failed_total"),
        Some(0.0),
        "{exposition}"
    );
    assert!(sample_value(&exposition, "stalld_last_check_timestamp_seconds").unwrap() > 0.0);

    in_daemon(&["mount", "-t", "tmpfs", "none", "/sys/kernel/debug"]);
    let broken = notifications.started.elapsed();
    let dazed = wait_line(
        &daemon,
        "Dazed and confused, but trying to continue: reading ",
    );
    assert!(dazed.contains("(retrying in "), "{dazed}");
    // 4 s bound; pings every second until then, none after.
    notifications.receive_for(Duration::from_secs(8));
    let pings = notifications.pings();
    let last_ping = *pings.last().unwrap();
    assert!(
        last_ping > broken && last_ping < broken + Duration::from_millis(5_500),
        "pinged until {last_ping:?}, broken at {broken:?}: {pings:?}"
    );
    assert!(
        notifications.started.elapsed() - last_ping >= Duration::from_secs(3),
        "still pinged: {pings:?}"
    );
    assert!(
        notifications
            .messages
            .iter()
            .any(|(_, m)| m.contains("STATUS=no successful check for ")
                && m.contains("watchdog pings withheld")),
        "{:?}",
        notifications.messages
    );
    let (code, body) = http_get(&target, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(
        body.starts_with("failing: last successful check ")
            && body.contains("beyond the bound of 4 s")
            && body.contains("No such file or directory"),
        "{body}"
    );
    let (_, exposition) = http_get(&target, "/metrics").unwrap();
    let failed = sample_value(&exposition, "stalld_checks_failed_total").unwrap();
    let dazed_lines = daemon
        .stderr_lines()
        .iter()
        .filter(|line| line.contains("Dazed and confused"))
        .count();
    assert!(failed >= 3.0, "{exposition}");
    assert!(
        (failed - dazed_lines as f64).abs() <= 1.0,
        "{failed} counted, {dazed_lines} lines"
    );
    let during = status_json(&env);
    assert_eq!(during["checks_healthy"], false, "{during:#}");
    assert!(
        during["last_check_age_s"].as_f64().unwrap() > 4.0,
        "{during:#}"
    );
    let (_, text, _) = status(&env, None, false);
    assert!(text.contains("FAILING: beyond the bound of 4 s"), "{text}");

    // Readable again: the next retry (at most 5 s later) succeeds.
    in_daemon(&["umount", "/sys/kernel/debug"]);
    let healthz = || http_get(&target, "/healthz").unwrap().0;
    let code = poll_until(Duration::from_secs(10), healthz, |code| *code == 200);
    assert_eq!(code, 200, "{}", daemon.process.transcript());
    let resumed = notifications.started.elapsed();
    notifications.receive_for(Duration::from_secs(3));
    assert!(
        notifications.pings().iter().any(|at| *at >= resumed),
        "the pings did not resume: {:?}",
        notifications.messages
    );
    assert_eq!(status_json(&env)["checks_healthy"], true);
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}
