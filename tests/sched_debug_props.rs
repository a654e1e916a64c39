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

/// CRLF line ends read the same as LF (in the files whose names hold no newline, which the
/// conversion would change too).
#[test]
fn crlf_reads_like_lf() {
    for (name, text) in fixtures()
        .iter()
        .filter(|(name, _)| !name.contains("hostile"))
    {
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

/// Pieces of the file a name could imitate once the kernel prints it with its newlines.
const IMITATIONS: [&str; 10] = [
    "cpu#1",
    "cpu#0, 1.0 MHz",
    "runnable tasks:",
    " R ",
    ">R",
    "-----",
    " 1.0 E 1.0",
    "rt_rq[0]:/",
    " 7 1.0 1 120",
    "  .rt_nr_running : 9",
];

fn row() -> impl Strategy<Value = Row> {
    // Names: any byte but NUL (newlines and carriage returns included: any user can set them),
    // often imitating the file's own lines; no leading or trailing blank (padding hides them).
    let piece = prop_oneof![
        8 => prop::sample::select(b"abcRSXEN0123456789:/-_.#>".to_vec()).prop_map(|b| vec![b]),
        2 => Just(vec![b' ']),
        2 => (1u8..=255).prop_map(|b| vec![b]),
        2 => Just(vec![b'\n']),
        1 => Just(vec![b'\r']),
        1 => prop::sample::select(IMITATIONS.to_vec()).prop_map(|s| s.as_bytes().to_vec()),
    ];
    let comm = prop::collection::vec(piece, 1..=15).prop_map(|pieces| {
        let mut comm = pieces.concat();
        comm.truncate(15);
        // No blank at either end: padding would hide it.
        for at in [0, comm.len() - 1] {
            if comm[at] == b' ' {
                comm[at] = b'_';
            }
        }
        comm
    });
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

/// What a parse says about one task: (pid, comm, prio, switches, state, verify).
type Seen = (i32, Vec<u8>, i32, u64, u8, bool);

/// One CPU as a parse reads it: (cpu, current pid, rt_nr_running, waiting tasks).
type SeenCpu = (u32, Option<i32>, Option<u64>, Vec<Seen>);

/// A generated file and what each CPU must read back as.
struct Generated {
    text: Vec<u8>,
    /// What each CPU must read back as.
    expected: Vec<SeenCpu>,
    /// Byte range of each task line (the newline excluded), with its CPU section's index
    /// and its index among that CPU's waiting tasks, if it is one.
    rows: Vec<(std::ops::Range<usize>, usize, Option<usize>)>,
}

/// Prints CPU tables the way `format`'s kernel does; only line ends become CRLF with `crlf`,
/// never the bytes of a name. Without `blank_ends_tables` the blank line after each table is
/// left out, as in excerpts pasted into mails: the next `cpu#` header ends the table.
fn generate(
    format: Format,
    cpus: &[(Vec<Row>, prop::sample::Index, bool)],
    tail: &str,
    crlf: bool,
    x86: bool,
    blank_ends_tables: bool,
) -> Generated {
    let newline: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let lines = |text: &str| {
        text.replace('\n', std::str::from_utf8(newline).unwrap())
            .into_bytes()
    };
    let mut text = lines("Sched Debug Version: v0.11\n\n");
    let mut expected = Vec::new();
    let mut spans = Vec::new();
    for (n, (rows, current, has_current)) in cpus.iter().enumerate() {
        let cpu = n as u32 * 2;
        let cpu_line = if x86 {
            format!("cpu#{cpu}, 2100.000 MHz\n")
        } else {
            format!("cpu#{cpu}\n")
        };
        text.extend(lines(&cpu_line));
        text.extend(lines(&format!(
            "\nrt_rq[{cpu}]:/\n  .rt_nr_running                 : {n}\n\nrunnable tasks:\n{}\n{}\n",
            header(format),
            "-".repeat(109)
        )));
        let current = (*has_current && !rows.is_empty()).then(|| current.index(rows.len()));
        let mut waiting = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let mut row = row.clone();
            row.current = current == Some(i);
            let start = text.len();
            text.extend_from_slice(&render(format, &row, tail));
            let state = if format.has_state_column() {
                row.state
            } else {
                b'R'
            };
            let spans_lines = row.comm.contains(&b'\n');
            let index = (!row.current && matches!(state, b'R' | b'X')).then(|| {
                waiting.push((
                    row.pid,
                    row.comm.clone(),
                    row.prio,
                    row.switches,
                    state,
                    spans_lines,
                ));
                waiting.len() - 1
            });
            spans.push((start..text.len(), n, index));
            text.extend_from_slice(newline);
        }
        if blank_ends_tables {
            text.extend_from_slice(newline);
        }
        // A name spanning lines cannot say which task owns the CPU.
        let current_pid = current
            .filter(|&i| !rows[i].comm.contains(&b'\n'))
            .map(|i| rows[i].pid);
        expected.push((cpu, current_pid, Some(n as u64), waiting));
    }
    Generated {
        text,
        expected,
        rows: spans,
    }
}

fn seen(out: &SchedDebug) -> Vec<SeenCpu> {
    out.cpus
        .iter()
        .map(|cpu| {
            let waiting = cpu
                .waiting
                .iter()
                .map(|t| {
                    (
                        t.pid,
                        t.comm.as_bytes().to_vec(),
                        t.prio,
                        t.switches,
                        t.state,
                        t.verify,
                    )
                })
                .collect();
            (cpu.cpu, cpu.current_pid, cpu.rt_nr_running, waiting)
        })
        .collect()
}

fn cpus_strategy() -> impl Strategy<Value = Vec<(Vec<Row>, prop::sample::Index, bool)>> {
    prop::collection::vec(
        (
            prop::collection::vec(row(), 0..12),
            any::<prop::sample::Index>(),
            any::<bool>(),
        ),
        1..4,
    )
}

fn tail_strategy() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "",
        " 0 0 /",
        "   0      0        /autogroup-3",
        " /cpu#1, 1.0 MHz",
    ])
}

/// How one task line of a generated file is damaged.
#[derive(Clone, Debug)]
enum LineDamage {
    /// The whole line replaced by text that is no task line.
    Replace(Vec<u8>),
    /// A byte after the name field overwritten.
    Overwrite(prop::sample::Index, u8),
    /// A newline inserted after the name field.
    Split(prop::sample::Index),
}

fn line_damage() -> impl Strategy<Value = LineDamage> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(b"#abc 0123.-/".to_vec()), 0..60).prop_map(
            |mut bytes| {
                bytes.insert(0, b'#');
                LineDamage::Replace(bytes)
            }
        ),
        (
            any::<prop::sample::Index>(),
            prop::sample::select(b"x.-".to_vec())
        )
            .prop_map(|(at, b)| LineDamage::Overwrite(at, b)),
        any::<prop::sample::Index>().prop_map(LineDamage::Split),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Tables printed the way each family's kernel prints them read back exactly, whatever
    /// the names hold: newlines, carriage returns, imitations of headers and task lines; and
    /// so do the same tables pasted without the blank line after each one (the next `cpu#`
    /// header ends it: no CPU is lost, no task changes CPU), through both entry points.
    #[test]
    fn generated_tables_read_back(
        family in 0..FAMILIES.len(),
        cpus in cpus_strategy(),
        tail in tail_strategy(),
        crlf in any::<bool>(),
        x86 in any::<bool>(),
        blank_ends_tables in any::<bool>(),
    ) {
        let format = FAMILIES[family];
        let generated = generate(format, &cpus, tail, crlf, x86, blank_ends_tables);
        let text = &generated.text;
        let any_rows = cpus.iter().any(|(rows, _, _)| !rows.is_empty());
        // With no task line at all an F4 file cannot be told from an F3 one.
        let format_read = if format == Format::F4 && !any_rows { Format::F3 } else { format };
        for excerpt in [false, true] {
            let mut out = SchedDebug::default();
            let parsed = if excerpt {
                parse_excerpt_into(text, &mut out)
            } else {
                parse_into(text, &mut out)
            };
            parsed.map_err(|e| TestCaseError::fail(format!("{e}\n{}", String::from_utf8_lossy(text))))?;
            prop_assert_eq!(seen(&out), generated.expected.clone(), "{}", String::from_utf8_lossy(text));
            prop_assert!(out.skipped_lines.is_empty(), "{:?}", out.skipped_lines);
            prop_assert_eq!(out.format, format_read);
        }
    }

    /// One damaged task line (of a task whose name holds no newline) costs at most its own
    /// task: the file still parses, every other
    /// task reads back exactly, and a task that stands alone (not marked for /proc to check)
    /// is always one the file really holds.
    #[test]
    fn one_damaged_line_costs_at_most_its_task(
        family in 0..FAMILIES.len(),
        cpus in cpus_strategy(),
        tail in tail_strategy(),
        which in any::<prop::sample::Index>(),
        damage in line_damage(),
    ) {
        let format = FAMILIES[family];
        let generated = generate(format, &cpus, tail, false, true, true);
        // A record whose name spans lines is several lines: damaging it is not one line's damage.
        let single: Vec<_> = generated
            .rows
            .iter()
            .filter(|(span, _, _)| !generated.text[span.clone()].contains(&b'\n'))
            .collect();
        if single.is_empty() {
            return Ok(());
        }
        let (span, cpu_index, task_index) = single[which.index(single.len())].clone();
        let mut text = generated.text.clone();
        // The name field ends by column 18; damage the kernel's numbers after it.
        let after_name = (span.start + 19).min(span.end);
        match &damage {
            LineDamage::Replace(bytes) => { text.splice(span.clone(), bytes.iter().copied()); }
            LineDamage::Overwrite(at, b) if after_name < span.end => {
                text[after_name + at.index(span.end - after_name)] = *b;
            }
            LineDamage::Split(at) if after_name < span.end => {
                text.insert(after_name + at.index(span.end - after_name), b'\n');
            }
            _ => {}
        }
        let shown = String::from_utf8_lossy(&text).into_owned();
        let mut out = SchedDebug::default();
        parse_into(&text, &mut out).map_err(|e| TestCaseError::fail(format!("{e}\n{shown}")))?;
        let got = seen(&out);
        prop_assert_eq!(got.len(), generated.expected.len(), "{}", shown);
        for (n, ((cpu, _, rt, want), (got_cpu, _, got_rt, got_tasks))) in generated.expected.iter().zip(&got).enumerate() {
            prop_assert_eq!((cpu, rt), (got_cpu, got_rt));
            let same = |a: &Seen, b: &Seen| (a.0, &a.1, a.2, a.3, a.4) == (b.0, &b.1, b.2, b.3, b.4);
            for (i, task) in want.iter().enumerate() {
                if n == cpu_index && Some(i) == task_index {
                    continue; // the damaged one may be lost
                }
                prop_assert!(got_tasks.iter().any(|t| same(t, task)), "{:?} lost\n{}", task, shown);
            }
            // A line cut inside its last number (the prio) still reads, as the damaged task.
            let damaged = task_index.filter(|_| n == cpu_index).map(|i| &want[i]);
            let is_damaged = |t: &Seen| damaged.is_some_and(|d| (d.0, &d.1) == (t.0, &t.1));
            for task in got_tasks.iter().filter(|t| !t.5 && !is_damaged(t)) {
                prop_assert!(want.iter().any(|w| same(w, task)), "{:?} invented\n{}", task, shown);
            }
        }
    }
}
