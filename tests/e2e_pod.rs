//! A DaemonSet's pod beside the stalld its host runs (deploy/kubernetes/daemonset.yaml):
//! `--stand_aside` boosts nothing and changes nothing, says what it found (the JSON event on
//! stdout, a warning on stderr), fails its readiness (`GET /ready`: 503 with the reason) while
//! its liveness (`GET /metrics`) holds, and exits 0 when stopped; the preStop hook's
//! `throttlectl on` and `stalld restore` leave the host's RT throttling and its saved value
//! alone. No starvation: no hog, a threshold of a minute; under the starvation lock only
//! because the host's stalld turns RT throttling off.

mod common;

use std::time::Duration;

use common::{
    free_port, http_get, http_get_once_up, last_cpu, read_rt_runtime, Daemon, StarvationSession,
    Stream,
};

const LINE_WAIT: Duration = Duration::from_secs(30);

fn stalld(args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stalld"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[test]
fn a_pod_beside_the_hosts_stalld_stands_aside_and_leaves_it_alone() {
    let Some(session) = StarvationSession::begin("a_pod_beside_the_hosts_stalld") else {
        return;
    };
    let cpu = last_cpu();
    let dir = std::env::temp_dir().join(format!("stalld-pod-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let host_pidfile = dir.join("host.pid").display().to_string();
    let pod_pidfile = dir.join("pod.pid").display().to_string();

    // The host's stalld: boosting, it turned RT throttling off and saved the value.
    let mut host = Daemon::spawn(&["-f", "-v", "-t", "60", "-c", &cpu, "-P", &host_pidfile]);
    host.wait_line("started: ");
    let host_pid = host.process.program_pid();
    let throttled = read_rt_runtime();
    assert_eq!(
        throttled, -1,
        "the host's stalld did not turn RT throttling off"
    );
    let (_, shown) = stalld(&["throttle", "show"]);

    // The pod, as the DaemonSet runs it.
    let address = format!("127.0.0.1:{}", free_port());
    let metrics = format!("--metrics={address}");
    let as_a_pod = |extra: &[&str]| {
        let mut args = vec!["--foreground", "--events=-", &metrics, "--stand_aside"];
        args.extend(["-t", "60", "-c", &cpu]);
        args.extend(extra);
        Daemon::spawn(&args)
    };
    let mut pod = as_a_pod(&[&format!("--pidfile={pod_pidfile}")]);
    let event = pod
        .wait_for_line(
            |line| line.contains(r#""event":"standing_aside""#),
            LINE_WAIT,
        )
        .unwrap_or_else(|| panic!("no standing_aside event: {:?}", pod.lines()));
    let found = format!("pid {host_pid}: ");
    let json: serde_json::Value = serde_json::from_str(&event).unwrap();
    assert!(
        json["other_instances"]
            .as_str()
            .unwrap()
            .starts_with(&found),
        "{event}"
    );
    // Stdout and stderr are read by two threads: the event on stdout can arrive first.
    let said = format!("stalld: another stalld boosts on this host ({found}");
    assert!(
        pod.process
            .wait_until(LINE_WAIT, |lines| lines
                .iter()
                .find(|(stream, line)| *stream == Stream::Stderr
                    && line.starts_with(&said)
                    && line.contains("standing aside"))
                .map(|_| ()))
            .is_some(),
        "{:?}",
        pod.lines()
    );
    let (code, why) = http_get_once_up(&address, "/ready", LINE_WAIT);
    assert_eq!(code, 503, "{why}");
    assert!(
        why.starts_with(&format!(
            "standing aside: another stalld boosts on this host ({found}"
        )),
        "{why}"
    );
    let (code, _) = http_get(&address, "/metrics").unwrap();
    assert_eq!(
        code, 200,
        "the liveness probe must hold while standing aside"
    );
    let pod_pid = pod.process.program_pid();
    let written = std::fs::read_to_string(&pod_pidfile).unwrap();
    assert_eq!(written.trim(), pod_pid.to_string());
    assert!(
        !pod.lines().iter().any(|line| line.contains("started: ")),
        "the pod started boosting: {:?}",
        pod.lines()
    );

    // The preStop hook's restore steps, while the host's stalld runs: nothing changes.
    let (code, said) = stalld(&["throttle", "on"]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("RT throttling left as it is") && said.contains(&found),
        "{said}"
    );
    assert_eq!(stalld(&["restore"]).0, Some(0));
    assert_eq!(
        read_rt_runtime(),
        -1,
        "RT throttling turned on under the host's stalld"
    );
    assert_eq!(stalld(&["throttle", "show"]).1, shown);

    // Stopped: exits 0, removes its pid file, the host's stalld untouched.
    assert_eq!(pod.terminate().and_then(|s| s.code()), Some(0));
    assert!(!std::path::Path::new(&pod_pidfile).exists());
    assert_eq!(read_rt_runtime(), -1);
    assert!(host.wait_exit(Duration::from_millis(100)).is_none());
    assert_eq!(host.terminate().and_then(|s| s.code()), Some(0));
    assert_eq!(read_rt_runtime(), session.rt_runtime.saved());

    // With nobody else boosting, the same pod boosts and is ready.
    let mut alone = as_a_pod(&[]);
    alone.wait_line(r#""event":"started""#);
    let (code, ready) = http_get_once_up(&address, "/ready", LINE_WAIT);
    assert_eq!(code, 200, "{ready}");
    assert!(ready.starts_with("ready: "), "{ready}");
    assert_eq!(alone.terminate().and_then(|s| s.code()), Some(0));
    assert_eq!(read_rt_runtime(), session.rt_runtime.saved());
    let _ = std::fs::remove_dir_all(&dir);
}
