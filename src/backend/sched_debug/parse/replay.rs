//! The JSON form of a parse, for `stalld parse-sched-debug`: operators attach their
//! `sched/debug` text to bug reports and this shows what stalld made of it.

use serde::Serialize;

use super::{parse_excerpt_into, ParseError, SchedDebug};
use crate::task::Pid;

#[derive(Serialize)]
struct Replay {
    format: String,
    cpus: Vec<ReplayCpu>,
    /// Damaged lines that were skipped (absent when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped_lines: Vec<usize>,
}

#[derive(Serialize)]
struct ReplayCpu {
    /// `null` for the tables of an excerpt without `cpu#` headers.
    cpu: Option<u32>,
    current_pid: Option<Pid>,
    rt_nr_running: Option<u64>,
    waiting: Vec<ReplayTask>,
}

#[derive(Serialize)]
struct ReplayTask {
    pid: Pid,
    /// Bytes that are not UTF-8 are replaced by U+FFFD.
    comm: String,
    prio: i32,
    switches: u64,
    state: String,
    /// Present (true) for a line that did not stand alone: the daemon checks it against /proc.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    verify: bool,
}

/// Parses `text` (a whole file, or an excerpt as [`parse_excerpt_into`] accepts) and returns
/// one JSON object: `{"format": ..., "cpus": [{"cpu", "current_pid", "rt_nr_running",
/// "waiting": [{"pid", "comm", "prio", "switches", "state"[, "verify": true]}]}]
/// [, "skipped_lines": [N, ...]]}`.
pub fn replay_json(text: &[u8]) -> Result<String, ParseError> {
    let mut parsed = SchedDebug::default();
    parse_excerpt_into(text, &mut parsed)?;
    Ok(to_json(&parsed))
}

/// The JSON object [`replay_json`] prints, for an already parsed file.
pub fn to_json(parsed: &SchedDebug) -> String {
    let replay = Replay {
        format: parsed.format.to_string(),
        cpus: parsed
            .cpus
            .iter()
            .map(|cpu| ReplayCpu {
                cpu: (!parsed.excerpt).then_some(cpu.cpu),
                current_pid: cpu.current_pid,
                rt_nr_running: cpu.rt_nr_running,
                waiting: cpu
                    .waiting
                    .iter()
                    .map(|task| ReplayTask {
                        pid: task.pid,
                        comm: task.comm.to_str_lossy().into_owned(),
                        prio: task.prio,
                        switches: task.switches,
                        state: char::from(task.state).to_string(),
                        verify: task.verify,
                    })
                    .collect(),
            })
            .collect(),
        skipped_lines: parsed.skipped_lines.clone(),
    };
    // Strings and integers only: serialisation cannot fail.
    serde_json::to_string(&replay).unwrap_or_default()
}
