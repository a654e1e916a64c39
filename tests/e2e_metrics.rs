//! End-to-end tests of the metrics an operator alerts and looks at, against a real daemon
//! (root): its exposition passes the real `promtool check metrics`; the shipped alerts'
//! promtool unit tests run over exactly the series a fresh daemon exposes
//! (deploy/kubernetes/tests/alerts.test.yaml is their template); and a real Prometheus
//! scraping a real stalld through a real starvation answers every query of the shipped
//! Grafana dashboard (deploy/grafana/stalld.json).

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{last_cpu, metrics_address, only_victim, Daemon, Scratch, Starver};
use serde_json::Value;

const ALERT_TESTS: &str = include_str!("../deploy/kubernetes/tests/alerts.test.yaml");
const ALERT_RULES: &str = include_str!("../deploy/kubernetes/prometheusrule.yaml");
const DASHBOARD: &str = include_str!("../deploy/grafana/stalld.json");
const INSTALL_HINT: &str = "scripts/install-deps --test installs Debian's prometheus";
const LINE_WAIT: Duration = Duration::from_secs(15);

/// One sample of an exposition: name, labels in order, value.
#[derive(Clone, Debug, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    /// The series as promtool's `input_series` writes it, with `extra` labels first.
    fn literal(&self, extra: &[(String, String)]) -> String {
        let labels: Vec<String> = extra
            .iter()
            .chain(&self.labels)
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        format!("{}{{{}}}", self.name, labels.join(", "))
    }

    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `name{k="v",...}` into its name and labels.
fn parse_series(series: &str) -> (String, Vec<(String, String)>) {
    let label = regex::Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)""#).unwrap();
    let (name, labels) = series.split_once('{').unwrap_or((series, ""));
    let labels = label
        .captures_iter(labels)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect();
    (name.trim().to_owned(), labels)
}

/// The samples of a Prometheus text format exposition.
fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let (name, labels) = parse_series(series);
            let value = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
            Sample {
                name,
                labels,
                value,
            }
        })
        .collect()
}

/// Labels a scrape adds to every series of a target: not the daemon's.
const TARGET_LABELS: [&str; 3] = ["job", "node", "instance"];

/// A target's labels (node, instance, job), as an alert test names them.
type Target = Vec<(String, String)>;

/// The alert tests' template filled in from `scrape` (see alerts.test.yaml's header): the
/// promtool test file, or why the template does not fit what the daemon exposes.
fn alert_tests_from_scrape(template: &str, scrape: &[Sample], cpu: &str) -> Result<String, String> {
    let series_line = regex::Regex::new(r"^(\s*)- series: '(stalld_[^']*)'\s*$").unwrap();
    let values_line = regex::Regex::new(r"^\s*values: '([^']*)'\s*$").unwrap();
    let first_value = regex::Regex::new(r"^-?[0-9]+(\.[0-9]+)?").unwrap();
    let template = template.replace("${cpu}", cpu);
    let mut out = String::new();
    // Per test: which scraped series each target's selectors took, and the targets.
    let mut taken: Vec<(Target, BTreeSet<usize>)> = Vec::new();
    let mut lines = template.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("  - ") {
            taken.clear();
        }
        if let Some(found) = series_line.captures(line) {
            let (indent, selector) = (&found[1], &found[2]);
            let values = lines
                .next()
                .and_then(|next| values_line.captures(next))
                .map(|c| c[1].to_owned())
                .ok_or_else(|| format!("{selector}: no values line after it"))?;
            let (name, labels) = parse_series(selector);
            let (target, wanted): (Vec<_>, Vec<_>) = labels
                .into_iter()
                .partition(|(k, _)| TARGET_LABELS.contains(&k.as_str()));
            let matching: Vec<usize> = (0..scrape.len())
                .filter(|&i| {
                    scrape[i].name == name
                        && wanted
                            .iter()
                            .all(|(k, v)| scrape[i].label(k) == Some(v.as_str()))
                })
                .collect();
            if matching.is_empty() {
                return Err(format!("{selector}: the daemon exposes no such series"));
            }
            let first: f64 = first_value
                .find(&values)
                .and_then(|m| m.as_str().parse().ok())
                .ok_or_else(|| format!("{selector}: values '{values}' start with no number"))?;
            let slot = match taken.iter().position(|(t, _)| *t == target) {
                Some(slot) => slot,
                None => {
                    taken.push((target.clone(), BTreeSet::new()));
                    taken.len() - 1
                }
            };
            for i in matching {
                if scrape[i].value != first {
                    return Err(format!(
                        "{selector}: values start at {first}, a fresh daemon shows {}",
                        scrape[i].literal(&[])
                    ));
                }
                taken[slot].1.insert(i);
                out += &format!(
                    "{indent}- series: '{}'\n{indent}  values: '{values}'\n",
                    scrape[i].literal(&target)
                );
            }
        } else if line.trim() == "# every other scraped series" {
            let indent = &line[..line.len() - line.trim_start().len()];
            for (target, selected) in &taken {
                for (i, sample) in scrape.iter().enumerate() {
                    if !selected.contains(&i) {
                        out += &format!(
                            "{indent}- series: '{}'\n{indent}  values: '{}+0x60'\n",
                            sample.literal(target),
                            sample.value
                        );
                    }
                }
            }
        } else {
            out += line;
            out += "\n";
        }
    }
    Ok(out)
}

/// The rule groups of the PrometheusRule, as a rules file (its `spec`, one level up).
fn rules_file(prometheus_rule: &str) -> String {
    let (_, spec) = prometheus_rule
        .split_once("\nspec:\n")
        .expect("prometheusrule.yaml has a spec");
    spec.lines()
        .map(|line| line.strip_prefix("  ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// GET `target` from `address` with `accept`: status code, content type, body.
fn get(address: &str, target: &str, accept: &str) -> (u32, String, String) {
    common::http_get_accepting(address, target, Some(accept))
        .unwrap_or_else(|error| panic!("GET {target} from {address}: {error}"))
}

const PROMETHEUS_TEXT: &str = "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A fresh daemon on the last CPU (under the starvation lock: it would boost another run's
/// victims): its metrics address.
fn fresh_daemon(threshold: &str) -> (Daemon, String) {
    let cpu = last_cpu();
    let daemon = Daemon::start(
        &[],
        "queue_track",
        &[
            "-t",
            threshold,
            "-d",
            "1",
            "-c",
            &cpu,
            "--metrics",
            "127.0.0.1:0",
        ],
    );
    let address = metrics_address(&daemon);
    (daemon, address)
}

/// Runs `program args` to its end: exit code and stdout+stderr.
fn run(program: &str, args: &[&str], stdin: Option<&str>, dir: Option<&Path>) -> (i32, String) {
    let mut command = std::process::Command::new("timeout");
    command
        .arg("60")
        .arg(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[test]
fn the_exposition_passes_promtool_check_metrics() {
    let Some((_session, promtool)) = common::session_with_tool(
        "the_exposition_passes_promtool",
        &["/usr/bin/promtool"],
        INSTALL_HINT,
    ) else {
        return;
    };
    let (mut daemon, address) = fresh_daemon("2");
    let (code, content_type, text) = get(&address, "/metrics", PROMETHEUS_TEXT);
    assert_eq!(code, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let (status, said) = run(promtool, &["check", "metrics"], Some(&text), None);
    assert_eq!(status, 0, "promtool check metrics: {said}\n{text}");
    assert!(said.trim().is_empty(), "promtool check metrics: {said}");
    // What it says of an exposition it finds wrong: the check can fail.
    let broken = text.replacen(
        "# HELP stalld_boosts_total",
        "# HELP_ stalld_boosts_total",
        1,
    );
    let (status, said) = run(promtool, &["check", "metrics"], Some(&broken), None);
    assert_ne!(
        status, 0,
        "promtool accepted a counter without HELP: {said}"
    );
    // Anyone else (Prometheus by default) gets OpenMetrics.
    let (_, content_type, open) = get(&address, "/metrics", "*/*");
    assert!(content_type.starts_with("application/openmetrics-text"));
    assert!(open.ends_with("# EOF\n") && open.contains("# TYPE stalld_mode info\n"));
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}

#[test]
fn the_shipped_alerts_fire_on_what_a_real_daemon_exposes() {
    let Some((session, promtool)) = common::session_with_tool(
        "the_shipped_alerts_fire",
        &["/usr/bin/promtool"],
        INSTALL_HINT,
    ) else {
        return;
    };
    let (mut daemon, address) = fresh_daemon("2");
    let (code, _, text) = get(&address, "/metrics", PROMETHEUS_TEXT);
    assert_eq!(code, 200);
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
    drop(session);

    let scrape = parse_exposition(&text);
    let tests = alert_tests_from_scrape(ALERT_TESTS, &scrape, &last_cpu())
        .unwrap_or_else(|why| panic!("{why}\n--- the scrape ---\n{text}"));
    let scratch = Scratch::new("alert-tests");
    std::fs::write(scratch.join("stalld.rules.yaml"), rules_file(ALERT_RULES)).unwrap();
    std::fs::write(scratch.join("alerts.test.yaml"), &tests).unwrap();
    let (status, said) = run(
        promtool,
        &["check", "rules", "stalld.rules.yaml"],
        None,
        Some(&scratch.0),
    );
    assert_eq!(status, 0, "promtool check rules: {said}");
    let (status, said) = run(
        promtool,
        &["test", "rules", "alerts.test.yaml"],
        None,
        Some(&scratch.0),
    );
    assert_eq!(
        status, 0,
        "promtool test rules: {said}\n--- input ---\n{tests}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "promtool test rules over {} scraped series: {}",
        scrape.len(),
        said.trim()
    );
}

/// The template's checks can fail: a selector the daemon does not expose, or one whose
/// first value is not what a fresh daemon shows, is refused.
#[test]
fn alert_tests_refuse_series_the_daemon_does_not_expose() {
    let scrape = parse_exposition(
        "# TYPE stalld_boosts_total counter\n\
         stalld_boosts_total{cpu=\"1\",policy=\"deadline\",result=\"ok\"} 0\n\
         stalld_boosts_total{cpu=\"1\",policy=\"deadline\",result=\"failed\"} 0\n\
         stalld_held_tasks 0\n",
    );
    let test = |series: &str, values: &str| {
        let template = format!(
            "tests:\n  - interval: 1m\n    input_series:\n      - series: '{series}'\n        values: '{values}'\n      # every other scraped series\n"
        );
        alert_tests_from_scrape(&template, &scrape, "1")
    };
    let ok = test(r#"stalld_boosts_total{node="a", result="failed"}"#, "0 1 1").unwrap();
    assert!(ok.contains(
        "- series: 'stalld_boosts_total{node=\"a\", cpu=\"1\", policy=\"deadline\", result=\"failed\"}'\n        values: '0 1 1'\n"
    ), "{ok}");
    assert!(
        ok.contains("- series: 'stalld_held_tasks{node=\"a\"}'\n        values: '0+0x60'\n"),
        "{ok}"
    );
    assert_eq!(ok.matches("- series:").count(), 3, "{ok}");
    let never = test(r#"stalld_boosts_total{result="exploded"}"#, "0 1");
    assert!(never.unwrap_err().contains("exposes no such series"));
    let late = test(r#"stalld_boosts_total{result="ok"}"#, "1 2");
    assert!(late.unwrap_err().contains("a fresh daemon shows"));
}

/// `query` percent-encoded for a URL.
fn url_encoded(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Prometheus's answer to an instant query.
fn instant_query(web: &str, query: &str) -> Value {
    let (code, _, body) = get(
        web,
        &format!("/api/v1/query?query={}", url_encoded(query)),
        "application/json",
    );
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{query}: HTTP {code}: {e}: {body}"))
}

/// Every panel of the dashboard, rows' panels included: (title, its queries).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, Vec<String>)> {
    fn walk(panels: &Value, out: &mut Vec<(String, Vec<String>)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let exprs: Vec<String> = panel["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str().map(str::to_owned))
                .collect();
            if panel["type"] != "row" {
                out.push((panel["title"].as_str().unwrap_or("?").to_owned(), exprs));
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// What Grafana puts in place of the dashboard's variables, as it would with every node
/// selected on a dashboard showing the last 5 minutes of a 1 s scrape.
fn with_variables(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("$__range", "5m")
        .replace("$node", ".*")
}

#[test]
fn every_dashboard_query_answers_from_a_real_starvation() {
    let Some((_session, prometheus)) = common::session_with_tool(
        "every_dashboard_query_answers",
        &["/usr/bin/prometheus"],
        INSTALL_HINT,
    ) else {
        return;
    };
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let panels = dashboard_queries(&dashboard);
    let (mut daemon, target) = fresh_daemon("2");
    let (_, _, before) = get(&target, "/metrics", PROMETHEUS_TEXT);

    let scratch = Scratch::new("dashboard");
    let (_prometheus, web) = common::prometheus(
        prometheus,
        &scratch,
        &target,
        &[("node", "test-node")],
        Duration::from_secs(180),
    );
    // Scraped from before the starvation: increase() and rate() see it start.
    let scraped = |query: &str, at_least: f64| {
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            let answer = std::net::TcpStream::connect(&web)
                .ok()
                .map(|_| instant_query(&web, query));
            let value = answer.as_ref().and_then(|a| {
                a["data"]["result"][0]["value"][1]
                    .as_str()?
                    .parse::<f64>()
                    .ok()
            });
            if value.is_some_and(|v| v >= at_least) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never saw {query} >= {at_least}: {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    scraped("count_over_time(stalld_start_time_seconds[1m])", 3.0);

    let starver = Starver::spawn(&["--duration", "15", "--linger", common::LINGER]);
    let pid = only_victim(&starver);
    daemon
        .wait_for_line(|l| l.contains(&format!("restored pid {pid} ")), LINE_WAIT)
        .unwrap_or_else(|| panic!("no restore\n{}", daemon.process.transcript()));
    scraped(r#"stalld_restores_total{result="restored"}"#, 1.0);

    // Every panel's queries: (what failed, how many were evaluated, each panel's largest value).
    let evaluate = || {
        let mut failures = Vec::new();
        let mut evaluated = 0;
        let mut values = std::collections::BTreeMap::new();
        for (title, exprs) in &panels {
            if exprs.is_empty() {
                failures.push(format!("{title}: no query"));
            }
            for expr in exprs {
                let query = with_variables(expr);
                if query.contains('$') {
                    failures.push(format!("{title}: a variable left in {query}"));
                    continue;
                }
                let answer = instant_query(&web, &query);
                evaluated += 1;
                let result = answer["data"]["result"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                if answer["status"] != "success" || answer.get("warnings").is_some() {
                    failures.push(format!("{title}: {query}: {answer}"));
                } else if result.is_empty() {
                    failures.push(format!("{title}: {query}: no series"));
                }
                let largest = result
                    .iter()
                    .filter_map(|r| r["value"][1].as_str()?.parse::<f64>().ok())
                    .fold(f64::NAN, f64::max);
                values.insert(title.clone(), largest);
            }
        }
        (failures, evaluated, values)
    };
    // The starvation shows where an operator looks for it.
    let shown = |values: &std::collections::BTreeMap<String, f64>| {
        ["Starvations", "Boosts", "CPU time given to boosted tasks"]
            .into_iter()
            .filter(|title| !values.get(*title).is_some_and(|v| *v > 0.0))
            .collect::<Vec<_>>()
    };
    // Until every rate has its samples after the change (a scrape or two more), bounded.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (failures, evaluated, values) = loop {
        let (failures, evaluated, values) = evaluate();
        if (failures.is_empty() && shown(&values).is_empty()) || Instant::now() > deadline {
            break (failures, evaluated, values);
        }
        std::thread::sleep(Duration::from_millis(500));
    };

    // The node variable's values (label_values(stalld_build_info, node)).
    let (_, _, nodes) = get(
        &web,
        &format!(
            "/api/v1/label/node/values?match[]={}",
            url_encoded("stalld_build_info")
        ),
        "application/json",
    );
    let nodes: Value = serde_json::from_str(&nodes).unwrap();
    assert_eq!(nodes["data"], serde_json::json!(["test-node"]), "{nodes}");
    let _ = writeln!(
        std::io::stderr(),
        "{evaluated} dashboard queries over {} panels; largest values: {values:?}",
        panels.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let blank = shown(&values);
    assert!(blank.is_empty(), "{blank:?} show no starvation: {values:?}");
    // Every series the starvation touched was there, at 0, before it.
    let names = |text: &str| -> BTreeSet<String> {
        parse_exposition(text)
            .iter()
            .map(|s| s.literal(&[]))
            .collect()
    };
    let (_, _, after) = get(&target, "/metrics", PROMETHEUS_TEXT);
    let new: Vec<_> = names(&after).difference(&names(&before)).cloned().collect();
    assert!(
        new.is_empty(),
        "series that appeared only with the starvation: {new:?}"
    );
    assert_eq!(daemon.terminate().map(|s| s.code()), Some(Some(0)));
}
