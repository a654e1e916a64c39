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
