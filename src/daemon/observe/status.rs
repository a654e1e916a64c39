//! `stalld status [--json]`: the running daemon answers over a unix socket in /run/stalld
//! (mode 0600 in a 0700 root directory; the peer's credentials are checked as well) with its
//! version, backend, configuration, boosted tasks, last events and counters, read from the
//! snapshot the loop publishes.
//!
//! The protocol: the client sends `status\n`; the daemon answers one JSON document and
//! closes. The client prints it, or renders it for a person.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use serde_json::{json, Map, Value};

use super::listen;
use super::telemetry::{unix_seconds, Snapshot};
use crate::daemon::log::Sinks;
use crate::daemon::process::rundir;
use crate::sys;

pub const SOCKET_NAME: &str = "stalld.sock";

/// The request is one short line; longer is not one.
const MAX_REQUEST: usize = 64;

/// For tests only: the socket path instead of /run/stalld/stalld.sock, for daemon and client
/// alike (the directory is then the test's, and the peer-credential check stands alone).
pub const SOCKET_ENV: &str = "STALLD_STATUS_SOCKET";

/// Exit statuses of `stalld status`, as LSB init scripts' `status` action has them.
pub const EXIT_NOT_RUNNING: u8 = 3;
pub const EXIT_REFUSED: u8 = 4;

pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(rundir::RUNTIME_DIR).join(SOCKET_NAME))
}

/// The status socket, bound and waiting for its thread. Removes the socket file when dropped.
pub struct StatusServer {
    listener: Option<UnixListener>,
    path: PathBuf,
}

impl StatusServer {
    pub fn bind() -> io::Result<StatusServer> {
        let path = socket_path();
        if std::env::var_os(SOCKET_ENV).is_none() {
            rundir::ensure(Path::new(rundir::RUNTIME_DIR))?;
        }
        let listener = listen::bind_unix(&path, 0o600)?;
        Ok(StatusServer {
            listener: Some(listener),
            path,
        })
    }

    /// Answers clients in a thread of its own until the process ends.
    pub fn spawn(&mut self, published: Arc<ArcSwap<Snapshot>>, logger: Sinks) -> io::Result<()> {
        let Some(listener) = self.listener.take() else {
            return Ok(());
        };
        listen::spawn("stalld-status", logger, move || {
            listen::serve_forever(
                listener,
                move |request: &[u8], ended, stream: &UnixStream| {
                    answer(request, ended, stream, &published)
                },
            )
        })
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The answer to the request read so far (`ended`: no more will come), once it is a line
/// (`status\n`) or as long as a request can be: one JSON document.
fn answer(
    request: &[u8],
    ended: bool,
    stream: &UnixStream,
    published: &ArcSwap<Snapshot>,
) -> Option<Vec<u8>> {
    let line = match request.iter().position(|&b| b == b'\n') {
        Some(end) => &request[..end],
        None if ended || request.len() >= MAX_REQUEST => request,
        None => return None,
    };
    // The directory already keeps others out; the kernel's word on who connected is the check.
    let reply = if !sys::peer_uid(stream).is_ok_and(|uid| uid == 0) {
        json!({"error": "permission denied: stalld status needs root"})
    } else {
        match String::from_utf8_lossy(line).trim() {
            "status" => report(&published.load_full()),
            other => json!({"error": format!("unknown request {other:?}")}),
        }
    };
    Some(format!("{reply}\n").into_bytes())
}

/// The status document. What the loop last did is told by its own clock (CLOCK_MONOTONIC,
/// read now): a snapshot that stopped changing shows its age, never "now".
pub fn report(s: &Snapshot) -> Value {
    let now = unix_seconds(SystemTime::now());
    let mono = crate::clock::now();
    let by_result = |result: &str| s.boosts_with(result);
    let map = |entries: &mut dyn Iterator<Item = (String, u64)>| -> Value {
        Value::Object(
            entries
                .map(|(k, v)| (k, Value::from(v)))
                .collect::<Map<_, _>>(),
        )
    };
    json!({
        "version": s.version,
        "pid": s.pid,
        "started_at": s.started_at,
        "uptime_s": now - s.started_at,
        "ready": s.checks.count > 0,
        "last_check_at": s.last_check_at,
        "last_check_age_s": s.health.age(mono).as_secs_f64(),
        "last_check_error": s.last_check_error,
        "checks_healthy": s.health.stale(mono).is_none(),
        "health_bound_s": s.health.bound().as_secs_f64(),
        "backend": s.backend,
        "stamps": s.stamps,
        "summary": s.summary(),
        "config": &*s.config,
        "rt_throttling_disabled": s.rt_throttling_disabled,
        "boosted": s.boosted.values().map(|b| json!({
            "pid": b.pid,
            "comm": b.comm,
            "cpu": b.cpu,
            "policy": b.policy,
            "since": b.since,
            "until": b.until,
        })).collect::<Vec<_>>(),
        "held": s.held.values().map(|h| json!({
            "pid": h.pid,
            "comm": h.comm,
            "cpu": h.cpu,
            "policy": h.policy,
            "boosted_at": h.boosted_at,
            "held_since": h.held_since,
            "error": h.error,
        })).collect::<Vec<_>>(),
        "counters": {
            "starving_events": s.starving.values().sum::<u64>(),
            "starving_events_by_cpu": map(&mut s.starving.iter().map(|(cpu, n)| (cpu.to_string(), *n))),
            "boosts": {
                "ok": by_result("ok"),
                "failed": by_result("failed"),
                "fifo_fallback": by_result("fifo_fallback"),
            },
            "restores": map(&mut s.restores.iter().map(|(k, n)| ((*k).to_owned(), *n))),
            "boosted_cpu_s_by_cpu": Value::Object(
                s.boosted_cpu
                    .iter()
                    .map(|(cpu, seconds)| (cpu.to_string(), Value::from(*seconds)))
                    .collect::<Map<_, _>>(),
            ),
            "events": map(&mut s.events.iter().map(|(k, n)| ((*k).to_owned(), *n))),
            "log_dropped": map(&mut s.drops.counts().into_iter().map(|(k, n)| (k.to_owned(), n))),
            "checks": s.checks.count,
            "checks_failed": s.checks_failed,
        },
        "last_event_at": s.last_event_at,
        "events": s.recent.iter().map(|event| (**event).clone()).collect::<Vec<_>>(),
    })
}

/// `stalld status [--json]`: the exit status and what to print.
pub fn client(json: bool) -> (u8, String) {
    let path = socket_path();
    let mut stream = match UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(error) => {
            return match error.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => (
                    EXIT_NOT_RUNNING,
                    format!("stalld status: no stalld is running (nothing answers on {})", path.display()),
                ),
                io::ErrorKind::PermissionDenied => (
                    EXIT_REFUSED,
                    format!("stalld status: permission denied: only root may ask the daemon ({} is root's)", rundir::RUNTIME_DIR),
                ),
                _ => (1, format!("stalld status: {}: {error}", path.display())),
            };
        }
    };
    let timeout = Some(std::time::Duration::from_secs(5));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    let mut reply = String::new();
    let exchanged = stream
        .write_all(b"status\n")
        .and_then(|()| stream.read_to_string(&mut reply));
    let document: Value = match exchanged.map(|_| serde_json::from_str(&reply)) {
        Ok(Ok(document)) => document,
        Ok(Err(error)) => return (1, format!("stalld status: unreadable answer: {error}")),
        Err(error) => return (1, format!("stalld status: {error}")),
    };
    if let Some(error) = document.get("error").and_then(Value::as_str) {
        return (EXIT_REFUSED, format!("stalld status: {error}"));
    }
    if json {
        (
            0,
            serde_json::to_string_pretty(&document).unwrap_or_default(),
        )
    } else {
        (0, render_text(&document))
    }
}

/// The status document for a person.
pub fn render_text(d: &Value) -> String {
    let now = unix_seconds(SystemTime::now());
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let config = &d["config"];
    let mut out = format!(
        "stalld {} (pid {}), up {:.0} s{}\n",
        text(&d["version"]),
        text(&d["pid"]),
        d["uptime_s"].as_f64().unwrap_or(0.0),
        if d["ready"] == true {
            ""
        } else {
            ", first check not done yet"
        }
    );
    out += &format!(
        "backend: {} (stamps: {})\n",
        text(&d["backend"]),
        text(&d["stamps"])
    );
    out += &format!(
        "config: {} mode, threshold {} s, cpus {}, {} boosts of {} ns every {} ns for {} s{}\n",
        text(&config["mode"]),
        text(&config["threshold_s"]),
        text(&config["cpus"]),
        text(&config["boost"]["policy"]),
        text(&config["boost"]["runtime_ns"]),
        text(&config["boost"]["period_ns"]),
        text(&config["boost"]["duration_s"]),
        if config["log_only"] == true {
            " (log only: no boosts)"
        } else {
            ""
        }
    );
    let age = d["last_check_age_s"].as_f64().unwrap_or(0.0);
    out += &format!(
        "checks: {}, {} failed{}\n",
        match d["last_check_at"] {
            Value::Null => format!("none succeeded yet ({age:.1} s since the start)"),
            _ => format!("last succeeded {age:.1} s ago"),
        },
        text(&d["counters"]["checks_failed"]),
        if d["checks_healthy"] == false {
            format!(
                "; FAILING: beyond the bound of {:.0} s (last failure: {})",
                d["health_bound_s"].as_f64().unwrap_or(0.0),
                text(&d["last_check_error"])
            )
        } else {
            String::new()
        }
    );
    out += &format!(
        "RT throttling: {}\n",
        if d["rt_throttling_disabled"] == true {
            "off"
        } else {
            "on"
        }
    );
    let boosted = d["boosted"].as_array().cloned().unwrap_or_default();
    out += &format!("boosted now: {}\n", boosted.len());
    for b in &boosted {
        out += &format!(
            "  pid {} ({}) on CPU {} with {}, since {:.1} s, {:.1} s left\n",
            text(&b["pid"]),
            text(&b["comm"]),
            text(&b["cpu"]),
            text(&b["policy"]),
            now - b["since"].as_f64().unwrap_or(now),
            (b["until"].as_f64().unwrap_or(now) - now).max(0.0)
        );
    }
    let held = d["held"].as_array().cloned().unwrap_or_default();
    if !held.is_empty() {
        out += &format!(
            "held (restore failing, retried while stalld runs): {}\n",
            held.len()
        );
    }
    for h in &held {
        out += &format!(
            "  pid {} ({}) on CPU {} may still hold {}, held for {:.1} s: {}\n",
            text(&h["pid"]),
            text(&h["comm"]),
            text(&h["cpu"]),
            text(&h["policy"]),
            now - h["held_since"].as_f64().unwrap_or(now),
            text(&h["error"])
        );
    }
    let counters = &d["counters"];
    let pairs = |v: &Value| -> String {
        v.as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    };
    out += &format!(
        "counters: {} starving events, boosts: {}; restores: {}; checks {}\n",
        text(&counters["starving_events"]),
        pairs(&counters["boosts"]),
        pairs(&counters["restores"]),
        text(&counters["checks"]),
    );
    let cpu_time = counters["boosted_cpu_s_by_cpu"]
        .as_object()
        .map(|by_cpu| {
            by_cpu
                .iter()
                .map(|(cpu, seconds)| format!("CPU {cpu} {:.6} s", seconds.as_f64().unwrap_or(0.0)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "none".into());
    out += &format!(
        "CPU time boosted tasks received (taken from each CPU's other tasks): {cpu_time}\n"
    );
    out += &format!(
        "log messages dropped: {}\n",
        pairs(&counters["log_dropped"])
    );
    let events = d["events"].as_array().cloned().unwrap_or_default();
    out += &format!("last {} events:\n", events.len());
    for event in &events {
        let ago = now - event["timestamp"].as_f64().unwrap_or(now);
        out += &format!("  {ago:>8.1} s ago  {}\n", text(&event["message"]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::observe::telemetry::{HeldTask, Telemetry};

    #[test]
    fn held_tasks_and_the_cpu_time_per_cpu_are_shown() {
        let config = match crate::cli::parse(["-t", "5"]) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        let mut snapshot = Telemetry::new(&config, Arc::default()).current().clone();
        snapshot.boosted_cpu.insert(3, 0.000_125);
        let now = unix_seconds(SystemTime::now());
        snapshot.held.insert(
            42,
            HeldTask {
                pid: 42,
                comm: "victim".into(),
                cpu: 3,
                policy: "SCHED_DEADLINE",
                boosted_at: now - 9.0,
                held_since: now - 5.0,
                error: "Operation not permitted".into(),
            },
        );
        let document = report(&snapshot);
        assert_eq!(document["held"][0]["pid"], 42);
        assert_eq!(document["counters"]["boosted_cpu_s_by_cpu"]["3"], 0.000_125);
        let text = render_text(&document);
        assert!(
            text.contains("held (restore failing, retried while stalld runs): 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "  pid 42 (victim) on CPU 3 may still hold SCHED_DEADLINE, held for 5.0 s: Operation not permitted\n"
            ),
            "{text}"
        );
        assert!(text.contains("CPU 3 0.000125 s"), "{text}");
        // Nothing held: no such line.
        snapshot.held.clear();
        assert!(!render_text(&report(&snapshot)).contains("held ("));
    }

    /// A loop that has not checked for longer than the bound shows it, with the age of its
    /// last successful check by the daemon's clock, not the time of the question.
    #[test]
    fn a_loop_without_a_successful_check_for_the_bound_shows_failing() {
        use crate::daemon::observe::health::Health;
        use crate::task::MonoTime;
        use std::time::Duration;
        let config = match crate::cli::parse(["-t", "5"]) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        let mut telemetry = Telemetry::new(&config, Arc::default());
        let now = crate::clock::now();
        let mut health = Health::new(MonoTime(now.0 - 100_000_000_000), Duration::from_secs(60));
        health.ok(MonoTime(now.0 - 90_000_000_000));
        telemetry.checked(Duration::from_micros(30));
        telemetry.check_succeeded(health);
        let mut snapshot = telemetry.current().clone();
        snapshot.checks_failed = 17;
        snapshot.last_check_error = Some("reading sched_debug: e".into());
        let document = report(&snapshot);
        assert_eq!(document["checks_healthy"], false);
        assert_eq!(document["counters"]["checks_failed"], 17);
        let age = document["last_check_age_s"].as_f64().unwrap();
        assert!((90.0..95.0).contains(&age), "{age}");
        let text = render_text(&document);
        assert!(
            text.contains(", 17 failed; FAILING: beyond the bound of 60 s (last failure: reading sched_debug: e)\n"),
            "{text}"
        );
        assert!(text.contains("checks: last succeeded 9"), "{text}");
        // A check now: healthy.
        health.ok(crate::clock::now());
        telemetry.check_succeeded(health);
        let text = render_text(&report(telemetry.current()));
        assert!(
            text.contains("checks: last succeeded 0.0 s ago, 0 failed\n"),
            "{text}"
        );
    }
}
