//! `--metrics ADDR`: Prometheus/OpenMetrics text at `http://ADDR/metrics`, served by one
//! SCHED_OTHER thread from the snapshots the loop publishes (see [`super::telemetry`]).
//!
//! The exposition is prometheus-client's encoder fed by a [`Collector`] over the snapshot;
//! the HTTP side is the few lines a `GET /metrics` needs (one request per connection, bounded
//! in size and time), so no HTTP framework or async runtime comes into a root daemon.

use std::io;
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::listen;
use super::telemetry::{Histogram, Snapshot};
use super::Sinks;
use crate::config::MetricsAddr;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub enum MetricsServer {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl MetricsServer {
    /// Binds at once (before daemonizing), so that a bad or busy address is a clear error.
    pub fn bind(address: &MetricsAddr) -> anyhow::Result<MetricsServer> {
        match address {
            MetricsAddr::Tcp(address) => TcpListener::bind(address)
                .map(MetricsServer::Tcp)
                .with_context(|| format!("--metrics: cannot listen on {address}")),
            MetricsAddr::Unix(path) => listen::bind_unix(path, 0o600)
                .map(|listener| MetricsServer::Unix(listener, path.clone()))
                .with_context(|| format!("--metrics: cannot listen on {}", path.display())),
        }
    }

    /// Where scrapers find it.
    pub fn url(&self) -> String {
        match self {
            MetricsServer::Tcp(listener) => match listener.local_addr() {
                Ok(address) => format!("http://{address}/metrics"),
                Err(_) => "http://?/metrics".into(),
            },
            MetricsServer::Unix(_, path) => format!("unix:{} (GET /metrics)", path.display()),
        }
    }

    /// Serves in a thread of its own until the process ends.
    pub fn spawn(self, published: Arc<ArcSwap<Snapshot>>, logger: Sinks) -> io::Result<()> {
        listen::spawn("stalld-metrics", logger, move || match self {
            MetricsServer::Tcp(listener) => listen::serve_forever(listener, handler(published)),
            MetricsServer::Unix(listener, _) => listen::serve_forever(listener, handler(published)),
        })
    }
}

fn handler<S>(
    published: Arc<ArcSwap<Snapshot>>,
) -> impl FnMut(&[u8], bool, &S) -> Option<Vec<u8>> + Send + 'static {
    move |request, ended, _| answer(request, ended, &published)
}

/// The answer to an HTTP request read so far (`ended`: no more will come), once its head is
/// complete: `GET /metrics` (any query) with the exposition, `GET /ready` with whether this
/// daemon boosts (see [`readiness`]), anything else with 404 or 405.
fn answer(request: &[u8], ended: bool, published: &ArcSwap<Snapshot>) -> Option<Vec<u8>> {
    let complete =
        request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n");
    if !complete && !ended {
        return None;
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, target) = (
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default(),
    );
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, content_type, body) = match (method, path) {
        (b"GET", b"/metrics") => ("200 OK", CONTENT_TYPE, render(&published.load_full())),
        (b"GET", b"/ready") => {
            let (ready, why) = readiness(&published.load());
            let status = if ready {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, "text/plain", format!("{why}\n"))
        }
        (b"GET", _) => ("404 Not Found", "text/plain", "see /metrics\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET /metrics only\n".to_owned(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    Some([head.into_bytes(), body.into_bytes()].concat())
}

/// `GET /ready` (a Kubernetes readiness probe): ready once the backend is up, not while
/// standing aside beside another stalld (`--stand_aside`), and why.
fn readiness(snapshot: &Snapshot) -> (bool, String) {
    match (&snapshot.standing_aside, snapshot.backend) {
        (Some(others), _) => (
            false,
            format!("standing aside: another stalld boosts on this host ({others})"),
        ),
        (None, None) => (false, "starting".to_owned()),
        (None, Some(backend)) => (true, format!("ready: {backend} backend")),
    }
}

/// The OpenMetrics text of one snapshot.
pub fn render(snapshot: &Arc<Snapshot>) -> String {
    let mut registry = Registry::with_prefix("stalld");
    registry.register_collector(Box::new(SnapshotCollector(Arc::clone(snapshot))));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

#[derive(Debug)]
struct SnapshotCollector(Arc<Snapshot>);

type Labels = Vec<(&'static str, String)>;

impl Collector for SnapshotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.0;
        counters(
            &mut encoder,
            "starving_events",
            "Tasks found starving (waiting the threshold), by CPU",
            s.starving
                .iter()
                .map(|(cpu, n)| (vec![("cpu", cpu.to_string())], *n)),
        )?;
        counters(
            &mut encoder,
            "boosts",
            "Boosts by CPU, policy and result (ok, failed, fifo_fallback: a DEADLINE boost that became a FIFO one)",
            s.boosts.iter().map(|((cpu, policy, result), n)| {
                (
                    vec![
                        ("cpu", cpu.to_string()),
                        ("policy", (*policy).to_owned()),
                        ("result", (*result).to_owned()),
                    ],
                    *n,
                )
            }),
        )?;
        counters(
            &mut encoder,
            "boosted_cpu_seconds",
            "CPU time boosted tasks received while they held a boost, by the CPU they starved on: what boosts cost that CPU's other tasks",
            s.boosted_cpu
                .iter()
                .map(|(cpu, seconds)| (vec![("cpu", cpu.to_string())], *seconds)),
        )?;
        counters(
            &mut encoder,
            "restores",
            "Ended boosts by result (restored, no_cpu: restored but the boost gave the task no CPU, exited, changed_meanwhile, failed: held or left to the ledger)",
            s.restores
                .iter()
                .map(|(result, n)| (vec![("result", (*result).to_owned())], *n)),
        )?;
        counters(
            &mut encoder,
            "events",
            "Events by kind (the STALLD_EVENT names)",
            s.events
                .iter()
                .map(|(event, n)| (vec![("event", (*event).to_owned())], *n)),
        )?;
        counters(
            &mut encoder,
            "log_dropped",
            "Log messages a sink could not take without blocking, dropped",
            s.drops
                .counts()
                .into_iter()
                .map(|(sink, n)| (vec![("sink", sink.to_owned())], n)),
        )?;
        {
            let mut metric = encoder.encode_descriptor(
                "starvation_wait",
                "How long starving tasks had waited when found, by CPU",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            for (cpu, histogram) in &s.waits {
                let labels: Labels = vec![("cpu", cpu.to_string())];
                histogram_samples(&mut metric.encode_family(&labels)?, histogram)?;
            }
        }
        histogram_samples(
            &mut encoder.encode_descriptor(
                "check_duration",
                "How long one check of the run queues took",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?,
            &s.checks,
        )?;
        gauge(
            &mut encoder,
            "boosted_tasks",
            "Tasks holding a boost now",
            None,
            s.boosted.len() as f64,
        )?;
        gauge(
            &mut encoder,
            "held_tasks",
            "Tasks whose restore keeps failing: they may hold a boost still, and are retried while stalld runs",
            None,
            s.held.len() as f64,
        )?;
        gauge(
            &mut encoder,
            "rt_throttling_disabled",
            "1 while RT throttling is off (by stalld, or already)",
            None,
            f64::from(u8::from(s.rt_throttling_disabled)),
        )?;
        gauge(
            &mut encoder,
            "last_event_timestamp",
            "When the last event happened (Unix time; 0: none yet)",
            Some(&Unit::Seconds),
            s.last_event_at.unwrap_or(0.0),
        )?;
        gauge(
            &mut encoder,
            "start_time",
            "When the daemon started (Unix time)",
            Some(&Unit::Seconds),
            s.started_at,
        )?;
        let backend: Labels = vec![
            ("backend", s.backend.unwrap_or("none").to_owned()),
            ("stamps", s.stamps.unwrap_or("none").to_owned()),
        ];
        encoder
            .encode_descriptor(
                "backend",
                "The backend in use and where its queue times come from",
                None,
                MetricType::Info,
            )?
            .encode_info(&backend)?;
        let build: Labels = vec![("version", s.version.to_owned())];
        encoder
            .encode_descriptor("build", "The stalld version", None, MetricType::Info)?
            .encode_info(&build)?;
        Ok(())
    }
}

fn counters<V: EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl Iterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        metric
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> Result<(), std::fmt::Error> {
    encoder
        .encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&value)
}

fn histogram_samples(
    metric: &mut prometheus_client::encoding::MetricEncoder,
    histogram: &Histogram,
) -> Result<(), std::fmt::Error> {
    metric.encode_histogram::<NoLabelSet>(
        histogram.sum,
        histogram.count,
        &histogram.buckets(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::telemetry::Telemetry;

    fn snapshot() -> Arc<Snapshot> {
        let config = match crate::cli::parse(["-t", "5"]) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        // The drop counters of a logger's sinks (stderr, at least), from 0.
        let drops = crate::daemon::Logger::new(false).drops();
        let mut telemetry = Telemetry::new(&config, drops);
        telemetry.set_backend("queue_track", "tracepoints");
        telemetry.checked(std::time::Duration::from_micros(300));
        telemetry.publish_changes();
        telemetry.published().load_full()
    }

    /// The sample names a scrape shows for each `# TYPE` line.
    fn metric_names(text: &str) -> Vec<String> {
        text.lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(|rest| {
                let (name, kind) = rest.split_once(' ').unwrap();
                match kind {
                    "counter" => format!("{name}_total"),
                    "info" => format!("{name}_info"),
                    _ => name.to_owned(),
                }
            })
            .collect()
    }

    #[test]
    fn exposition_is_openmetrics_with_every_family() {
        let text = render(&snapshot());
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("stalld_backend_info{backend=\"queue_track\",stamps=\"tracepoints\"} 1")
        );
        assert!(text.contains("stalld_check_duration_seconds_count 1"));
        assert!(text.contains("stalld_check_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("stalld_log_dropped_total{sink=\"stderr\"} 0"));
        let names = metric_names(&text);
        for expected in [
            "stalld_starving_events_total",
            "stalld_boosts_total",
            "stalld_restores_total",
            "stalld_starvation_wait_seconds",
            "stalld_boosted_tasks",
            "stalld_held_tasks",
            "stalld_boosted_cpu_seconds_total",
            "stalld_check_duration_seconds",
            "stalld_backend_info",
            "stalld_rt_throttling_disabled",
            "stalld_build_info",
            "stalld_last_event_timestamp_seconds",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} not in {names:?}"
            );
        }
    }

    #[test]
    fn held_tasks_and_the_cpu_time_boosts_cost_are_exposed() {
        let mut snapshot = (*snapshot()).clone();
        snapshot.boosted_cpu.insert(3, 0.000_025);
        snapshot.held.insert(
            42,
            crate::daemon::telemetry::HeldTask {
                pid: 42,
                comm: "victim".into(),
                cpu: 3,
                policy: "SCHED_DEADLINE",
                boosted_at: 1.0,
                held_since: 2.0,
                error: "e".into(),
            },
        );
        let text = render(&Arc::new(snapshot));
        assert!(text.contains("stalld_held_tasks 1.0\n"), "{text}");
        assert!(
            text.contains("stalld_boosted_cpu_seconds_total{cpu=\"3\"} 0.000025\n"),
            "{text}"
        );
    }

    #[test]
    fn every_metric_is_documented() {
        let readme = include_str!("../../README.md");
        let man = include_str!("../../man/observability.roff");
        for name in metric_names(&render(&snapshot())) {
            assert!(readme.contains(&format!("`{name}")), "README lacks {name}");
            assert!(
                man.contains(&format!("\\fB{name}")),
                "man/observability.roff lacks {name}"
            );
        }
    }

    /// The shipped alert rules and their tests use only series the daemon emits, with label
    /// values the README documents for them.
    #[test]
    fn the_shipped_alerts_use_only_series_the_daemon_emits() {
        let names = metric_names(&render(&snapshot()));
        let readme = include_str!("../../README.md");
        let series = regex::Regex::new(r#"(stalld_[a-z_]+)(\{[^}]*\})?"#).unwrap();
        let result = regex::Regex::new(r#"result="([a-z_]+)""#).unwrap();
        for text in [
            include_str!("../../deploy/kubernetes/prometheusrule.yaml"),
            include_str!("../../deploy/kubernetes/tests/alerts.test.yaml"),
        ] {
            for found in series.captures_iter(text) {
                let name = &found[1];
                assert!(names.iter().any(|n| n == name), "{name} is not emitted");
                let row = readme
                    .lines()
                    .find(|line| line.starts_with(&format!("| `{name}")))
                    .unwrap_or_else(|| panic!("README has no row for {name}"));
                let labels = found.get(2).map_or("", |labels| labels.as_str());
                for value in result.captures_iter(labels) {
                    assert!(
                        row.contains(&format!("`{}`", &value[1])),
                        "{name}: result {} is not one the README documents",
                        &value[1]
                    );
                }
            }
        }
    }

    #[test]
    fn only_get_metrics_and_ready_are_served() {
        let published = ArcSwap::new(snapshot());
        let ask = |request: &str| {
            let answer = answer(request.as_bytes(), true, &published).unwrap();
            String::from_utf8(answer).unwrap()
        };
        let ok = ask("GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(CONTENT_TYPE) && ok.ends_with("# EOF\n"));
        assert!(ask("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(ask("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(ask("").starts_with("HTTP/1.1 405"));
        // Not answered before the request's head is complete, unless the client is done.
        assert!(answer(b"GET /metrics HTTP/1.1\r\n", false, &published).is_none());
    }

    /// `/ready`: 200 once the backend is up; 503 while starting, and while standing aside
    /// beside another stalld, with what was found (the pod's readiness probe).
    #[test]
    fn ready_says_whether_this_daemon_boosts() {
        let ask = |snapshot: Snapshot| {
            let published = ArcSwap::from_pointee(snapshot);
            let answer = answer(b"GET /ready HTTP/1.1\r\n\r\n", true, &published).unwrap();
            String::from_utf8(answer).unwrap()
        };
        let running = (*snapshot()).clone();
        let ok = ask(running.clone());
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\nready: queue_track backend\n"), "{ok}");
        let starting = ask(Snapshot {
            backend: None,
            ..running.clone()
        });
        assert!(starting.starts_with("HTTP/1.1 503 "), "{starting}");
        let aside = ask(Snapshot {
            backend: None,
            standing_aside: Some("pid 7: /usr/bin/stalld --systemd".into()),
            ..running
        });
        assert!(
            aside.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{aside}"
        );
        assert!(
            aside.ends_with("standing aside: another stalld boosts on this host (pid 7: /usr/bin/stalld --systemd)\n"),
            "{aside}"
        );
    }
}
