//! Parser for the text of `sched/debug` (debugfs) and `/proc/sched_debug`.
//!
//! PLACEHOLDER INTERFACE: the full multi-format parser replaces this file.

use crate::task::{Comm, Pid};

/// A task line of a CPU's `runnable tasks:` table whose state is runnable (`R`) or dying (`X`)
/// and which is not the CPU's current task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedTask {
    pub pid: Pid,
    pub comm: Comm,
    pub prio: i32,
    pub switches: u64,
    /// The state letter: `b'R'` or `b'X'`.
    pub state: u8,
}

/// One `cpu#N` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedCpu {
    pub cpu: u32,
    pub current_pid: Option<Pid>,
    /// `.rt_nr_running` of the CPU's root `rt_rq`.
    pub rt_nr_running: Option<u64>,
    pub waiting: Vec<ParsedTask>,
}

/// The whole file. Reused across polls: `parse_into` keeps the allocations.
#[derive(Clone, Debug, Default)]
pub struct SchedDebug {
    pub cpus: Vec<ParsedCpu>,
}

#[derive(Debug, thiserror::Error)]
#[error("sched_debug line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses `text` into `out`, replacing its previous content.
pub fn parse_into(_text: &[u8], out: &mut SchedDebug) -> Result<(), ParseError> {
    out.cpus.clear();
    Err(ParseError {
        line: 0,
        message: "parser not implemented yet".into(),
    })
}

/// The parse result as one JSON object (for `stalld parse-sched-debug`).
pub fn replay_json(text: &[u8]) -> Result<String, ParseError> {
    let mut parsed = SchedDebug::default();
    parse_into(text, &mut parsed)?;
    Ok(String::new())
}
