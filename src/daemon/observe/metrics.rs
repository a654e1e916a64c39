//! `--metrics ADDR`: Prometheus/OpenMetrics text at `http://ADDR/metrics`, served by one
//! SCHED_OTHER thread from the snapshots the loop publishes (see [`super::telemetry`]).
//!
//! The exposition is prometheus-client's encoder fed by a [`Collector`] over the snapshot, in
//! the format the client prefers by its `Accept` header ([`Format::accepted`]): the Prometheus
//! text format 0.0.4 (what `promtool check metrics` and older scrapers read) when it ranks
//! that above OpenMetrics, OpenMetrics 1.0 otherwise (Prometheus itself asks for it first);
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
use crate::config::MetricsAddr;
use crate::daemon::log::Sinks;

/// The two text formats served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0: `_info` metrics, units, `# EOF`.
    OpenMetrics,
    /// The Prometheus text format 0.0.4: info metrics as gauges, no units, no `# EOF`.
    PrometheusText,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }

    /// The format an HTTP request's head asks for: the Prometheus text format when its
    /// `Accept` header ranks `text/plain` (version 0.0.4 or none) above
    /// `application/openmetrics-text`, OpenMetrics otherwise (also without `Accept`, or with
    /// only `*/*`).
    pub fn accepted(head: &[u8]) -> Format {
        let head = String::from_utf8_lossy(head);
        let mut openmetrics = 0.0f64;
        let mut text = 0.0f64;
        let accept = head
            .lines()
            .skip(1)
            .take_while(|line| !line.trim().is_empty())
            .filter_map(|line| line.split_once(':'))
            .filter(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
            .flat_map(|(_, value)| value.split(','));
        for range in accept {
            let mut parameters = range.split(';').map(str::trim);
            let media = parameters.next().unwrap_or_default().to_ascii_lowercase();
            let (mut quality, mut version) = (1.0, None);
            for parameter in parameters {
                match parameter.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("q", q)) => quality = q.parse::<f64>().unwrap_or(0.0),
                    Some(("version", v)) => version = Some(v.to_owned()),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(quality),
                "text/plain" if version.as_deref().is_none_or(|v| v == "0.0.4") => {
                    text = text.max(quality)
                }
                _ => {}
            }
        }
        if text > openmetrics {
            Format::PrometheusText
        } else {
            Format::OpenMetrics
        }
    }
}

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
        (b"GET", b"/metrics") => {
            let format = Format::accepted(request);
            let body = render(&published.load_full(), format);
            ("200 OK", format.content_type(), body)
        }
        (b"GET", b"/ready") => {
            let (ready, why) = readiness(&published.load());
            let status = if ready {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, "text/plain", format!("{why}\n"))
        }
        (b"GET", b"/healthz") => {
            let (alive, why) = liveness(&published.load(), crate::clock::now());
            let status = if alive {
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

/// `GET /healthz` (a Kubernetes liveness probe): whether the loop checks the run queues, not
/// only whether this listener thread answers: failing once no check has succeeded for the
/// health bound (see [`super::health`]) as of `now`, with why. A daemon standing aside checks
/// nothing by design: alive (its readiness says it is not boosting).
fn liveness(snapshot: &Snapshot, now: crate::task::MonoTime) -> (bool, String) {
    if snapshot.standing_aside.is_some() {
        return (true, "alive: standing aside".to_owned());
    }
    let age = snapshot.health.age(now).as_secs_f64();
    let last = if snapshot.checks.count == 0 {
        format!("no check yet, {age:.1} s after the start")
    } else {
        format!("last successful check {age:.1} s ago")
    };
    if snapshot.health.stale(now).is_none() {
        return (true, format!("alive: {last}"));
    }
    let error = snapshot
        .last_check_error
        .as_deref()
        .map_or(String::new(), |error| {
            format!("; the last failure: {error}")
        });
    (
        false,
        format!(
            "failing: {last}, beyond the bound of {} s; {} failed checks{error}",
            snapshot.health.bound().as_secs(),
            snapshot.checks_failed
        ),
    )
}

/// The exposition of one snapshot in `format`.
pub fn render(snapshot: &Arc<Snapshot>, format: Format) -> String {
    let mut registry = Registry::with_prefix("stalld");
    registry.register_collector(Box::new(SnapshotCollector(Arc::clone(snapshot))));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &registry),
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)
        }
    };
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
            "checks_failed",
            "Checks of the run queues whose snapshot failed (check_failed events)",
            std::iter::once((Labels::new(), s.checks_failed)),
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
        histograms_by_cpu(
            &mut encoder,
            "starvation_wait",
            "How long starving tasks had waited when found, by CPU",
            &s.waits,
        )?;
        histograms_by_cpu(
            &mut encoder,
            "detection_delay",
            "How long past the threshold starving tasks were found (their wait less the threshold), by CPU",
            &s.delays,
        )?;
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
            "last_check_timestamp",
            "When a check of the run queues last succeeded (Unix time; 0: none yet)",
            Some(&Unit::Seconds),
            s.last_check_at.unwrap_or(0.0),
        )?;
        gauge(
            &mut encoder,
            "start_time",
            "When the daemon started (Unix time)",
            Some(&Unit::Seconds),
            s.started_at,
        )?;
        let mode: Labels = vec![
            ("backend", s.backend.unwrap_or("none").to_owned()),
            ("stamps", s.stamps.unwrap_or("none").to_owned()),
            ("boost", s.boost_mode.to_owned()),
            ("threshold_seconds", s.threshold.to_string()),
        ];
        encoder
            .encode_descriptor(
                "mode",
                "How this stalld works: its backend, where queue times come from, the boost policy (deadline, fifo) or log_only (-l: it never boosts), the starvation threshold",
                None,
                MetricType::Info,
            )?
            .encode_info(&mode)?;
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

/// A histogram in seconds with a `cpu` label.
fn histograms_by_cpu(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    by_cpu: &std::collections::BTreeMap<u32, Histogram>,
) -> Result<(), std::fmt::Error> {
    let mut metric =
        encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (cpu, histogram) in by_cpu {
        let labels: Labels = vec![("cpu", cpu.to_string())];
        histogram_samples(&mut metric.encode_family(&labels)?, histogram)?;
    }
    Ok(())
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
    use crate::daemon::observe::telemetry::Telemetry;

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
        let text = render(&snapshot(), Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("stalld_mode_info{backend=\"queue_track\",stamps=\"tracepoints\",boost=\"deadline\",threshold_seconds=\"5\"} 1"),
            "{text}"
        );
        assert!(text.contains("stalld_check_duration_seconds_count 1"));
        assert!(text.contains("stalld_check_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("stalld_log_dropped_total{sink=\"stderr\"} 0"));
        // There from the start, at 0: an alert on its increase sees the first failure.
        assert!(text.contains("\nstalld_checks_failed_total 0\n"), "{text}");
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
            "stalld_mode_info",
            "stalld_detection_delay_seconds",
            "stalld_rt_throttling_disabled",
            "stalld_build_info",
            "stalld_last_event_timestamp_seconds",
            "stalld_last_check_timestamp_seconds",
            "stalld_checks_failed_total",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} not in {names:?}"
            );
        }
    }

    /// Every label set a counter or histogram can take exists from the start at 0, so that
    /// `increase()` sees the first starvation or failed boost.
    #[test]
    fn every_known_series_is_exposed_at_zero_from_the_start() {
        let text = render(&snapshot(), Format::OpenMetrics);
        for cpu in 0..crate::cpuset::configured_cpus() {
            for series in [
                format!("stalld_starving_events_total{{cpu=\"{cpu}\"}} 0\n"),
                format!("stalld_boosts_total{{cpu=\"{cpu}\",policy=\"deadline\",result=\"ok\"}} 0\n"),
                format!("stalld_boosts_total{{cpu=\"{cpu}\",policy=\"deadline\",result=\"failed\"}} 0\n"),
                format!("stalld_boosts_total{{cpu=\"{cpu}\",policy=\"deadline\",result=\"fifo_fallback\"}} 0\n"),
                format!("stalld_boosts_total{{cpu=\"{cpu}\",policy=\"fifo\",result=\"ok\"}} 0\n"),
                format!("stalld_boosted_cpu_seconds_total{{cpu=\"{cpu}\"}} 0.0\n"),
                format!("stalld_starvation_wait_seconds_count{{cpu=\"{cpu}\"}} 0\n"),
                format!("stalld_detection_delay_seconds_count{{cpu=\"{cpu}\"}} 0\n"),
            ] {
                assert!(text.contains(&series), "{series} missing from\n{text}");
            }
        }
        for result in crate::daemon::observe::telemetry::RESTORE_RESULTS {
            let series = format!("stalld_restores_total{{result=\"{result}\"}} 0\n");
            assert!(text.contains(&series), "{series} missing");
        }
        for kind in crate::event::EventKind::ALL {
            let series = format!("stalld_events_total{{event=\"{}\"}} 0\n", kind.name());
            assert!(text.contains(&series), "{series} missing");
        }
        // A FIFO policy (-F) has no DEADLINE series; log-only (-l) says so in the mode.
        let config = match crate::cli::parse(["-F", "-l", "-t", "1500ms", "-d", "1", "-c", "0"]) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        let telemetry = Telemetry::new(&config, Arc::default());
        let text = render(&telemetry.published().load_full(), Format::OpenMetrics);
        assert!(!text.contains("policy=\"deadline\""), "{text}");
        assert!(
            text.contains("stalld_boosts_total{cpu=\"0\",policy=\"fifo\",result=\"failed\"} 0\n")
        );
        assert!(!text.contains("cpu=\"1\""), "{text}");
        assert!(
            text.contains("stalld_mode_info{backend=\"none\",stamps=\"none\",boost=\"log_only\",threshold_seconds=\"1.5\"} 1"),
            "{text}"
        );
    }

    /// The detection delay is the wait beyond the threshold, in sub-millisecond buckets.
    #[test]
    fn the_detection_delay_is_the_wait_beyond_the_threshold() {
        let config = match crate::cli::parse(["-t", "5", "-c", "0"]) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        let mut telemetry = Telemetry::new(&config, Arc::default());
        for waited in [5_000_050, 5_000_300, 5_002_000, 7_000_000] {
            telemetry.record(
                &crate::event::Event::Starved {
                    cpu: 0,
                    task: crate::event::TaskName {
                        tid: 42,
                        tgid: Some(42),
                        comm: crate::task::Comm::new(b"victim"),
                    },
                    waited: std::time::Duration::from_micros(waited),
                    culprit: None,
                },
                Arc::new(serde_json::Value::Null),
                std::time::SystemTime::now(),
            );
        }
        telemetry.publish_changes();
        let text = render(&telemetry.published().load_full(), Format::OpenMetrics);
        for series in [
            "stalld_detection_delay_seconds_bucket{le=\"0.0001\",cpu=\"0\"} 1\n",
            "stalld_detection_delay_seconds_bucket{le=\"0.0005\",cpu=\"0\"} 2\n",
            "stalld_detection_delay_seconds_bucket{le=\"0.0025\",cpu=\"0\"} 3\n",
            "stalld_detection_delay_seconds_bucket{le=\"2.5\",cpu=\"0\"} 4\n",
            "stalld_detection_delay_seconds_count{cpu=\"0\"} 4\n",
            "stalld_starvation_wait_seconds_bucket{le=\"10.0\",cpu=\"0\"} 4\n",
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
    }

    /// `Accept` chooses the format: the Prometheus text format when ranked above OpenMetrics
    /// (a scraper configured for it, a `curl -H 'Accept: text/plain'`), OpenMetrics otherwise.
    #[test]
    fn accept_chooses_the_format() {
        let format = |accept: &str| {
            Format::accepted(
                format!("GET /metrics HTTP/1.1\r\nHost: h\r\n{accept}\r\n\r\n").as_bytes(),
            )
        };
        use Format::*;
        for (accept, expected) in [
            ("", OpenMetrics),
            ("Accept: */*", OpenMetrics),
            // Prometheus 2.x's default.
            ("Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1", OpenMetrics),
            // Prometheus 3 with scrape_protocols: [PrometheusText0.0.4].
            ("Accept: text/plain;version=0.0.4;q=0.5,*/*;q=0.1", PrometheusText),
            ("accept: text/plain", PrometheusText),
            ("ACCEPT: text/plain; version=0.0.4", PrometheusText),
            ("Accept: text/plain;q=0.2, application/openmetrics-text;q=0.3", OpenMetrics),
            ("Accept: text/plain;version=9.9", OpenMetrics),
            ("Accept: text/plain;q=0", OpenMetrics),
        ] {
            assert_eq!(format(accept), expected, "{accept}");
        }
        // The body of a request is not its head.
        assert_eq!(
            Format::accepted(b"GET /metrics HTTP/1.1\r\n\r\nAccept: text/plain\r\n"),
            OpenMetrics
        );
        let text = render(&snapshot(), PrometheusText);
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        assert!(text.contains("# TYPE stalld_mode_info gauge\n"), "{text}");
        assert!(
            text.contains("# TYPE stalld_boosts_total counter\n"),
            "{text}"
        );
    }

    #[test]
    fn held_tasks_and_the_cpu_time_boosts_cost_are_exposed() {
        let mut snapshot = (*snapshot()).clone();
        snapshot.boosted_cpu.insert(3, 0.000_025);
        snapshot.held.insert(
            42,
            crate::daemon::observe::telemetry::HeldTask {
                pid: 42,
                comm: "victim".into(),
                cpu: 3,
                policy: "SCHED_DEADLINE",
                boosted_at: 1.0,
                held_since: 2.0,
                error: "e".into(),
            },
        );
        let text = render(&Arc::new(snapshot), Format::OpenMetrics);
        assert!(text.contains("stalld_held_tasks 1.0\n"), "{text}");
        assert!(
            text.contains("stalld_boosted_cpu_seconds_total{cpu=\"3\"} 0.000025\n"),
            "{text}"
        );
    }

    #[test]
    fn every_metric_is_documented() {
        let readme = include_str!("../../../README.md");
        let man = include_str!("../../../man/observability.roff");
        for name in metric_names(&render(&snapshot(), Format::OpenMetrics)) {
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
        let names = metric_names(&render(&snapshot(), Format::OpenMetrics));
        let readme = include_str!("../../../README.md");
        let series = regex::Regex::new(r#"(stalld_[a-z_]+)(\{[^}]*\})?"#).unwrap();
        let result = regex::Regex::new(r#"result="([a-z_]+)""#).unwrap();
        for text in [
            include_str!("../../../deploy/kubernetes/prometheusrule.yaml"),
            include_str!("../../../deploy/kubernetes/tests/alerts.test.yaml"),
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

    /// The Grafana dashboard's queries select only series the daemon emits, by label values
    /// it emits (tests/e2e_metrics.rs has a real Prometheus evaluate them).
    #[test]
    fn the_dashboard_selects_only_series_the_daemon_emits() {
        let log_only = match crate::cli::parse(["-l"]) {
            Ok(crate::cli::Command::Run(config)) => *config,
            other => panic!("{other:?}"),
        };
        let log_only = Telemetry::new(&log_only, Arc::default())
            .published()
            .load_full();
        let exposition = [snapshot(), log_only]
            .iter()
            .map(|s| render(s, Format::PrometheusText))
            .collect::<String>();
        let dashboard = include_str!("../../../deploy/grafana/stalld.json");
        let selector = regex::Regex::new(r#"(stalld_[a-z_]+)(\{[^}]*\})?"#).unwrap();
        let exact = regex::Regex::new(r#"([a-z_]+)=\\"([^"\\]*)\\""#).unwrap();
        let mut selected = 0;
        for found in selector.captures_iter(dashboard) {
            let name = &found[1];
            let samples: Vec<&str> = exposition
                .lines()
                .filter(|line| {
                    line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
                })
                .collect();
            assert!(!samples.is_empty(), "{name} is not emitted");
            for label in exact.captures_iter(found.get(2).map_or("", |m| m.as_str())) {
                let pair = format!("{}=\"{}\"", &label[1], &label[2]);
                assert!(
                    samples.iter().any(|sample| sample.contains(&pair)),
                    "{name}{{{pair}}} is not emitted"
                );
            }
            selected += 1;
        }
        assert!(selected >= 20, "{selected} selectors found");
    }

    #[test]
    fn only_get_metrics_and_ready_are_served() {
        let published = ArcSwap::new(snapshot());
        let ask = |request: &str| {
            let answer = answer(request.as_bytes(), true, &published).unwrap();
            String::from_utf8(answer).unwrap()
        };
        let text = ask("GET /metrics HTTP/1.1\r\nAccept: text/plain\r\n\r\n");
        assert!(
            text.contains(Format::PrometheusText.content_type()),
            "{text}"
        );
        let ok = ask("GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(Format::OpenMetrics.content_type()) && ok.ends_with("# EOF\n"));
        assert!(ask("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(ask("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(ask("").starts_with("HTTP/1.1 405"));
        // Not answered before the request's head is complete, unless the client is done.
        assert!(answer(b"GET /metrics HTTP/1.1\r\n", false, &published).is_none());
    }

    /// `/healthz`: 200 while checks succeed; 503 with the reason once none has for longer
    /// than the bound, whatever the listener thread itself is doing.
    #[test]
    fn healthz_fails_once_no_check_succeeded_for_the_bound() {
        use crate::daemon::observe::health::Health;
        use crate::task::MonoTime;
        use std::time::Duration;
        const SECOND: u64 = 1_000_000_000;
        let ask = |snapshot: &Snapshot, now: u64| liveness(snapshot, MonoTime(now * SECOND));
        let mut snapshot = (*snapshot()).clone();
        let mut health = Health::new(MonoTime(100 * SECOND), Duration::from_secs(60));
        health.ok(MonoTime(110 * SECOND));
        snapshot.health = health;
        assert_eq!(
            ask(&snapshot, 170),
            (true, "alive: last successful check 60.0 s ago".to_owned())
        );
        snapshot.checks_failed = 12;
        snapshot.last_check_error = Some("reading /sys/kernel/debug/sched/debug: e".into());
        assert_eq!(
            ask(&snapshot, 171),
            (
                false,
                "failing: last successful check 61.0 s ago, beyond the bound of 60 s; 12 failed checks; the last failure: reading /sys/kernel/debug/sched/debug: e".to_owned()
            )
        );
        // Through HTTP, on the real clock: a check that succeeded a bound ago is stale.
        snapshot.health = Health::new(crate::clock::now(), Duration::from_secs(60));
        let published = ArcSwap::from_pointee(snapshot.clone());
        let get = |published: &ArcSwap<Snapshot>| {
            let answer = answer(b"GET /healthz HTTP/1.1\r\n\r\n", true, published).unwrap();
            String::from_utf8(answer).unwrap()
        };
        assert!(get(&published).starts_with("HTTP/1.1 200 OK\r\n"));
        let long_ago = MonoTime(crate::clock::now().0.saturating_sub(61 * SECOND));
        snapshot.health = Health::new(long_ago, Duration::from_secs(60));
        published.store(Arc::new(snapshot.clone()));
        let failing = get(&published);
        assert!(failing.starts_with("HTTP/1.1 503 "), "{failing}");
        assert!(failing.contains("the last failure: reading"), "{failing}");
        // Standing aside checks nothing by design: alive.
        snapshot.standing_aside = Some("pid 7".into());
        assert!(ask(&snapshot, 1_000).0);
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
