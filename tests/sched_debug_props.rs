//! Properties of the sched_debug parser on inputs nobody wrote by hand: arbitrary bytes and
//! damaged copies of the real fixtures never panic, and damage never invents a task.

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use stalld::backend::sched_debug::parse::{
    parse_excerpt_into, parse_into, replay_json, Format, SchedDebug,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sched_debug");

fn fixtures() -> &'static [(String, Vec<u8>)] {
    static ALL: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    ALL.get_or_init(load_fixtures)
}

fn load_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "txt"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(Path::new(&path)).unwrap())
        })
        .collect();
    all.sort();
    all
}

/// Whatever the parser returns must be plausible on its own terms.
fn check_invariants(out: &SchedDebug) {
    assert_ne!(out.format, Format::Unknown);
    let mut last = None;
    for cpu in &out.cpus {
        if !out.excerpt {
            assert!(last < Some(cpu.cpu), "sections out of order");
            last = Some(cpu.cpu);
        }
        assert!(cpu.current_pid.is_none_or(|pid| pid > 0));
        for task in &cpu.waiting {
            assert!(task.pid > 0);
            assert!((-1..=139).contains(&task.prio));
            assert!(matches!(task.state, b'R' | b'X'));
            assert!(task.comm.as_bytes().len() <= 15);
        }
    }
}

/// Every (cpu, pid, comm, prio, switches) a parse reports.
fn task_set(out: &SchedDebug) -> HashSet<(u32, i32, Vec<u8>, i32, u64)> {
    out.cpus
        .iter()
        .flat_map(|cpu| {
            cpu.waiting.iter().map(move |t| {
                (
                    cpu.cpu,
                    t.pid,
                    t.comm.as_bytes().to_vec(),
                    t.prio,
                    t.switches,
                )
            })
        })
        .collect()
}

fn run_all(text: &[u8]) {
    let mut out = SchedDebug::default();
    if parse_into(text, &mut out).is_ok() {
        check_invariants(&out);
    }
    if parse_excerpt_into(text, &mut out).is_ok() {
        check_invariants(&out);
    }
    let _ = replay_json(text);
}

/// Cutting a file anywhere gives an error or a subset of the whole file's tasks, never a task
/// with a value that the whole file does not have.
#[test]
fn truncation_never_invents_tasks() {
    for (name, text) in fixtures() {
        let mut whole = SchedDebug::default();
        parse_excerpt_into(text, &mut whole).unwrap();
        let whole = task_set(&whole);
        let step = (text.len() / 250).max(1);
        let mut out = SchedDebug::default();
        for len in (0..text.len()).step_by(step) {
            if parse_excerpt_into(&text[..len], &mut out).is_ok() {
                check_invariants(&out);
                let cut = task_set(&out);
                assert!(
                    cut.is_subset(&whole),
                    "{name} cut at {len}: {:?}",
                    cut.difference(&whole)
                );
            }
        }
    }
}

/// CRLF line ends read the same as LF.
#[test]
fn crlf_reads_like_lf() {
    for (name, text) in fixtures() {
        let crlf: Vec<u8> = text
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect();
        let (mut a, mut b) = (SchedDebug::default(), SchedDebug::default());
        parse_excerpt_into(text, &mut a).unwrap();
        parse_excerpt_into(&crlf, &mut b).unwrap();
        assert_eq!(a.cpus, b.cpus, "{name}");
        assert_eq!(a.format, b.format, "{name}");
    }
}

#[derive(Clone, Debug)]
enum Damage {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    DuplicateLine(usize),
    Truncate(usize),
}

fn damage() -> impl Strategy<Value = Damage> {
    let any_text = prop::collection::vec(
        prop_oneof![
            Just(b' '),
            Just(b'\n'),
            Just(b'R'),
            Just(b'>'),
            Just(b'-'),
            Just(b'.'),
            Just(b'#'),
            any::<u8>(),
            b'0'..=b'9'
        ],
        0..40,
    );
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Damage::Flip(at, b)),
        (any::<usize>(), 0usize..200).prop_map(|(at, n)| Damage::Delete(at, n)),
        (any::<usize>(), any_text).prop_map(|(at, s)| Damage::Insert(at, s)),
        any::<usize>().prop_map(Damage::DuplicateLine),
        any::<usize>().prop_map(Damage::Truncate),
    ]
}

fn apply(text: &mut Vec<u8>, damage: &Damage) {
    let len = text.len().max(1);
    match damage {
        Damage::Flip(at, b) => {
            if let Some(byte) = text.get_mut(at % len) {
                *byte = *b;
            }
        }
        Damage::Delete(at, n) => {
            let start = (at % len).min(text.len());
            let end = (start + n).min(text.len());
            text.drain(start..end);
        }
        Damage::Insert(at, bytes) => {
            let at = (at % len).min(text.len());
            text.splice(at..at, bytes.iter().copied());
        }
        Damage::DuplicateLine(at) => {
            let at = (at % len).min(text.len());
            let start = text[..at]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let end = text[at..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(text.len(), |i| at + i + 1);
            let line = text[start..end].to_vec();
            text.splice(start..start, line);
        }
        Damage::Truncate(at) => text.truncate(at % len),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        run_all(&bytes);
    }

    #[test]
    fn damaged_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        damages in prop::collection::vec(damage(), 1..6),
    ) {
        let all = fixtures();
        let (_, text) = &all[which.index(all.len())];
        let mut text = text.clone();
        for d in &damages {
            apply(&mut text, d);
        }
        run_all(&text);
    }
}

/// One generated task line's content.
#[derive(Clone, Debug)]
struct Row {
    comm: Vec<u8>,
    pid: i32,
    switches: u64,
    prio: i32,
    state: u8,
    current: bool,
    custom_slice: bool,
    eligible: bool,
    key: (i64, u32),
}

fn row() -> impl Strategy<Value = Row> {
    // Names: any byte but NUL and newline, no leading or trailing blank (padding hides them).
    let name_byte = prop_oneof![
        4 => prop::sample::select(b"abcRSXEN0123456789:/-_.#>".to_vec()),
        1 => Just(b' '),
        1 => (1u8..=255).prop_filter("newline", |&b| b != b'\n'),
    ];
    let comm = prop::collection::vec(name_byte, 1..=15)
        .prop_filter("edge blanks", |c| c[0] != b' ' && c[c.len() - 1] != b' ');
    (
        comm,
        1..=4_194_304i32,
        any::<u32>().prop_map(u64::from),
        -1..=139i32,
        prop::sample::select(b"RSDITXtZPI".to_vec()),
        any::<bool>(),
        any::<bool>(),
        (-2i64..10_000_000, 0u32..1_000_000),
    )
        .prop_map(
            |(comm, pid, switches, prio, state, custom_slice, eligible, key)| Row {
                comm,
                pid,
                switches,
                prio,
                state,
                current: false,
                custom_slice,
                eligible,
                key,
            },
        )
}

const FAMILIES: [Format; 6] = Format::FAMILIES;

fn header(format: Format) -> &'static str {
    match format {
        Format::F0 => "            task   PID         tree-key  switches  prio     exec-runtime         sum-exec        sum-sleep",
        Format::F1 => "            task   PID         tree-key  switches  prio     wait-time             sum-exec        sum-sleep",
        Format::F2 => " S           task   PID         tree-key  switches  prio     wait-time             sum-exec        sum-sleep",
        Format::F3 | Format::F4 => " S            task   PID         tree-key  switches  prio     wait-time             sum-exec        sum-sleep",
        _ => " S            task   PID       vruntime   eligible    deadline             slice          sum-exec      switches  prio         wait-time        sum-sleep       sum-block  node   group-id  group-path",
    }
}

/// The task line as the family's kernel prints it (layouts from SOURCES.md §2).
fn render(format: Format, row: &Row, tail: &str) -> Vec<u8> {
    let mut line = Vec::new();
    match (format, row.current) {
        (Format::F0 | Format::F1, true) => line.push(b'R'),
        (Format::F0 | Format::F1, false) => line.push(b' '),
        (_, true) => line.extend_from_slice(b">R"),
        (_, false) => line.extend_from_slice(&[b' ', row.state]),
    }
    if matches!(format, Format::F3 | Format::F5) {
        line.push(b' ');
    }
    line.resize(line.len() + 15 - row.comm.len(), b' ');
    line.extend_from_slice(&row.comm);
    let key = format!("{:>9}.{:06}", row.key.0, row.key.1);
    let eligible = if row.eligible { 'E' } else { 'N' };
    let custom = if row.custom_slice { 'S' } else { ' ' };
    let (pid, switches, prio) = (row.pid, row.switches, row.prio);
    let rest = match format {
        Format::F4 => format!(
            " {pid:>5} {key} {eligible} {key} {custom} {key} {key} {switches:>9} {prio:>5} {key} {key}{tail}"
        ),
        Format::F5 => format!(
            " {pid:>5} {key}   {eligible}   {key} {custom} {key} {key} {switches:>9}   {prio:>5} {key} {key}{tail}"
        ),
        _ => format!(" {pid:>5} {key} {switches:>9} {prio:>5} {key} {key} {key}{tail}"),
    };
    line.extend_from_slice(rest.as_bytes());
    line
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Tables printed the way each family's kernel prints them read back exactly.
    #[test]
    fn generated_tables_read_back(
        family in 0..FAMILIES.len(),
        cpus in prop::collection::vec(
            (prop::collection::vec(row(), 0..12), any::<prop::sample::Index>(), any::<bool>()),
            1..4,
        ),
        tail in prop::sample::select(vec!["", " 0 0 /", "   0      0        /autogroup-3", " /cpu#1, 1.0 MHz"]),
        crlf in any::<bool>(),
        x86 in any::<bool>(),
    ) {
        let format = FAMILIES[family];
        let mut text = b"Sched Debug Version: v0.11\n\n".to_vec();
        let mut expected = Vec::new();
        for (n, (rows, current, has_current)) in cpus.iter().enumerate() {
            let cpu = n as u32 * 2;
            let cpu_line = if x86 { format!("cpu#{cpu}, 2100.000 MHz\n") } else { format!("cpu#{cpu}\n") };
            text.extend_from_slice(cpu_line.as_bytes());
            text.extend_from_slice(format!("\nrt_rq[{cpu}]:/\n  .rt_nr_running                 : {n}\n\nrunnable tasks:\n{}\n{}\n", header(format), "-".repeat(109)).as_bytes());
            let current = (*has_current && !rows.is_empty()).then(|| current.index(rows.len()));
            let mut waiting = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let mut row = row.clone();
                row.current = current == Some(i);
                text.extend_from_slice(&render(format, &row, tail));
                text.push(b'\n');
                let state = if format.has_state_column() { row.state } else { b'R' };
                if !row.current && matches!(state, b'R' | b'X') {
                    waiting.push((row.pid, row.comm.clone(), row.prio, row.switches, state));
                }
            }
            text.push(b'\n');
            let current_pid = current.map(|i| rows[i].pid);
            expected.push((cpu, current_pid, Some(n as u64), waiting));
        }
        if crlf {
            text = text.iter().flat_map(|&b| if b == b'\n' { vec![b'\r', b'\n'] } else { vec![b] }).collect();
        }
        let mut out = SchedDebug::default();
        parse_into(&text, &mut out).map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(&text))))?;
        let got: Vec<_> = out
            .cpus
            .iter()
            .map(|cpu| {
                let waiting: Vec<_> = cpu.waiting.iter().map(|t| (t.pid, t.comm.as_bytes().to_vec(), t.prio, t.switches, t.state)).collect();
                (cpu.cpu, cpu.current_pid, cpu.rt_nr_running, waiting)
            })
            .collect();
        prop_assert_eq!(got, expected, "{}", String::from_utf8_lossy(&text));
        let any_rows = cpus.iter().any(|(rows, _, _)| !rows.is_empty());
        // With no task line at all an F4 file cannot be told from an F3 one.
        let format_read = if format == Format::F4 && !any_rows { Format::F3 } else { format };
        prop_assert_eq!(out.format, format_read);
    }
}
