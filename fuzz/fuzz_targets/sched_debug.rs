//! Fuzz target: any bytes through both parser entry points and the JSON replay. Panics,
//! endless loops (libFuzzer's timeout) and runaway allocation (its RSS limit) are findings,
//! and so is a result that breaks the parser's own guarantees. The input's first 15 bytes
//! also serve as a thread name (any user picks one: newlines, headers, task-line pieces) in a
//! table as the kernel prints it, which must read back exactly, every other task untouched.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stalld::backend::sched_debug::parse::{
    parse_excerpt_into, parse_into, replay_json, Format, SchedDebug,
};

fn check(out: &SchedDebug) {
    assert_ne!(out.format, Format::Unknown);
    assert!(out.skipped_lines.windows(2).all(|pair| pair[0] < pair[1]));
    for cpu in &out.cpus {
        assert!(cpu.current_pid.is_none_or(|pid| pid > 0));
        for task in &cpu.waiting {
            assert!(task.pid > 0);
            assert!((-1..=139).contains(&task.prio));
            assert!(matches!(task.state, b'R' | b'X'));
        }
    }
    if !out.excerpt {
        assert!(out.cpus.windows(2).all(|pair| pair[0].cpu < pair[1].cpu));
    }
}

/// An F5 task line as the 6.12+ kernel prints it.
fn f5_row(state: &str, comm: &[u8], pid: i32) -> Vec<u8> {
    let mut line = format!(" {state} ").into_bytes();
    line.resize(line.len() + 15 - comm.len(), b' ');
    line.extend_from_slice(comm);
    line.extend_from_slice(format!(" {pid:>5}       572.227168   E         572.339120           1.400000         0.588048         2     120         0.000000         0.000000         0.000000   0      0        /\n").as_bytes());
    line
}

/// The first bytes of `data` as a thread name, among ordinary tasks of a two-CPU file, with
/// and without the blank line that ends the first table (pasted excerpts lose it).
fn hostile_name(data: &[u8]) {
    let end = data.iter().take(15).position(|&b| b == 0).unwrap_or(data.len().min(15));
    let comm = &data[..end];
    // Leading blanks cannot be told from the padding, nor trailing ones from the gap.
    if comm.is_empty() || comm[0] == b' ' || comm[comm.len() - 1] == b' ' {
        return;
    }
    for blank in [true, false] {
        hostile_name_in_table(comm, blank);
    }
}

fn hostile_name_in_table(comm: &[u8], blank: bool) {
    let header = b"runnable tasks:\n S            task   PID       vruntime   eligible    deadline             slice          sum-exec      switches  prio         wait-time        sum-sleep       sum-block  node   group-id  group-path\n-----\n";
    let mut text = b"cpu#0\n\n".to_vec();
    text.extend_from_slice(header);
    text.extend(f5_row("R", b"before", 10));
    text.extend(f5_row("R", comm, 11));
    text.extend(f5_row("S", comm, 12));
    text.extend(f5_row("R", b"after", 13));
    if blank {
        text.push(b'\n');
    }
    text.extend_from_slice(b"cpu#1\n\n");
    text.extend_from_slice(header);
    text.extend(f5_row("R", b"other", 14));
    text.push(b'\n');
    let mut out = SchedDebug::default();
    parse_into(&text, &mut out).expect("a hostile name failed the file");
    let got: Vec<Vec<(i32, &[u8])>> = out
        .cpus
        .iter()
        .map(|cpu| cpu.waiting.iter().map(|t| (t.pid, t.comm.as_bytes())).collect())
        .collect();
    assert_eq!(
        got,
        [vec![(10, &b"before"[..]), (11, comm), (13, b"after")], vec![(14, &b"other"[..])]]
    );
    assert!(out.skipped_lines.is_empty());
    assert_eq!(out.cpus[0].waiting[1].verify, comm.contains(&b'\n'));
}

fuzz_target!(|data: &[u8]| {
    hostile_name(data);
    let mut out = SchedDebug::default();
    let strict = parse_into(data, &mut out);
    if strict.is_ok() {
        check(&out);
        // A whole file reads the same through the lenient entry point.
        let whole = out.clone();
        parse_excerpt_into(data, &mut out)
            .expect("lenient parse refused a file the strict one took");
        assert_eq!(whole.cpus, out.cpus);
    } else {
        assert!(out.cpus.is_empty());
    }
    if parse_excerpt_into(data, &mut out).is_ok() {
        check(&out);
    }
    if let Ok(json) = replay_json(data) {
        assert!(json.starts_with("{\"format\":"));
    }
});
