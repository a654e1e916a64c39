//! Every saved `sched_debug` text parses to exactly what a careful reading of it says.
//!
//! Two kinds of checks per fixture: the real waiting tasks, current task and root
//! `rt_nr_running` of each CPU, written out by hand; and a "everyone is runnable" copy where
//! each task line's state letter is rewritten to `R`, so that every line's pid, name, switch
//! count and prio is compared with an independent regular-expression reading of the line.

use std::path::Path;

use regex::bytes::Regex;
use stalld::backend::sched_debug::parse::{
    parse_excerpt_into, parse_into, replay_json, Format, ParsedTask, SchedDebug,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sched_debug");

fn read(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(DIR).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn parse_full(name: &str) -> SchedDebug {
    let mut out = SchedDebug::default();
    parse_into(&read(name), &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!out.excerpt);
    out
}

fn parse_excerpt(name: &str) -> SchedDebug {
    let text = read(name);
    let mut out = SchedDebug::default();
    assert!(
        parse_into(&text, &mut out).is_err(),
        "{name} is an excerpt, the strict parser must refuse it"
    );
    parse_excerpt_into(&text, &mut out).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(out.excerpt);
    out
}

/// (pid, comm, prio, switches, state)
type Task = (i32, String, i32, u64, u8);

fn task(pid: i32, comm: &str, prio: i32, switches: u64, state: u8) -> Task {
    (pid, comm.to_string(), prio, switches, state)
}

fn tasks(list: &[ParsedTask]) -> Vec<Task> {
    list.iter()
        .map(|t| {
            (
                t.pid,
                t.comm.to_str_lossy().into_owned(),
                t.prio,
                t.switches,
                t.state,
            )
        })
        .collect()
}

/// One CPU as written out by hand: number, current pid, root rt_nr_running, waiting tasks.
type Expected = (u32, Option<i32>, Option<u64>, Vec<Task>);

fn check(name: &str, out: &SchedDebug, format: Format, expected: &[Expected]) {
    assert_eq!(out.format, format, "{name}");
    let got: Vec<Expected> = out
        .cpus
        .iter()
        .map(|cpu| {
            (
                cpu.cpu,
                cpu.current_pid,
                cpu.rt_nr_running,
                tasks(&cpu.waiting),
            )
        })
        .collect();
    assert_eq!(got, expected, "{name}");
}

/// Family layouts as regular expressions, written independently of the parser: the name is
/// the 15 characters before the blank that precedes the PID.
fn oracle(format: Format) -> Regex {
    let tail = match format {
        Format::F0 | Format::F1 | Format::F2 | Format::F3 | Format::F2OrF3 => {
            r" +(\d+) +-?\d+\.\d+ +(\d+) +(-?\d+)(?: |$)"
        }
        Format::F4 | Format::F5 => {
            r" +(\d+) +-?\d+\.\d+ +[EN] +-?\d+\.\d+ +(?:S +)?-?\d+\.\d+ +-?\d+\.\d+ +(\d+) +(-?\d+)(?: |$)"
        }
        Format::Unknown => unreachable!(),
    };
    let head = match format {
        Format::F0 | Format::F1 => r"^[ R](.{15})",
        Format::F2 | Format::F4 => r"^[ >][A-Za-z](.{15})",
        Format::F3 | Format::F5 => r"^[ >][A-Za-z] (.{15})",
        _ => r"^[ >][A-Za-z] ?(.{15})",
    };
    Regex::new(&format!("{head}{tail}")).unwrap()
}

/// Rewrites every task line of every table so that its state is `R`, and returns the text
/// plus what the oracle reads from each rewritten non-current line, in file order.
fn everyone_runnable(text: &[u8], format: Format) -> (Vec<u8>, Vec<Task>) {
    let re = oracle(format);
    let mut out = Vec::new();
    let mut expected = Vec::new();
    let mut in_table = text
        .split(|&b| b == b'\n')
        .all(|l| !l.starts_with(b"runnable tasks:"));
    let mut skip = 0;
    for line in text.split(|&b| b == b'\n') {
        let mut line = line.to_vec();
        if line.starts_with(b"runnable tasks:") {
            in_table = true;
            skip = 3;
        }
        if skip > 0 {
            skip -= 1;
        } else if in_table && (line.iter().all(|&b| b == b' ') || line.starts_with(b"cpu#")) {
            // A blank line ends a table; in a pasted excerpt, the next section's header may.
            in_table = false;
        } else if in_table {
            let current = line[0]
                == if format.has_state_column() {
                    b'>'
                } else {
                    b'R'
                };
            if format.has_state_column() && !current {
                line[1] = b'R';
            }
            let caps = re
                .captures(&line)
                .unwrap_or_else(|| panic!("oracle: {}", String::from_utf8_lossy(&line)));
            let num = |i: usize| std::str::from_utf8(&caps[i]).unwrap().to_string();
            let comm = String::from_utf8(caps[1].to_vec())
                .unwrap()
                .trim_start()
                .to_string();
            if !current {
                expected.push(task(
                    num(2).parse().unwrap(),
                    &comm,
                    num(4).parse().unwrap(),
                    num(3).parse().unwrap(),
                    b'R',
                ));
            }
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    out.pop();
    (out, expected)
}

/// Every task line decodes exactly as the oracle reads it, and the count matches the lines.
fn check_every_line(name: &str, format: Format, min_lines: usize) {
    let (text, expected) = everyone_runnable(&read(name), format);
    assert!(
        expected.len() >= min_lines,
        "{name}: only {} lines",
        expected.len()
    );
    let mut out = SchedDebug::default();
    parse_excerpt_into(&text, &mut out).unwrap_or_else(|e| panic!("{name} rewritten: {e}"));
    let got: Vec<_> = out
        .cpus
        .iter()
        .flat_map(|cpu| tasks(&cpu.waiting))
        .collect();
    assert_eq!(got, expected, "{name}");
}

#[test]
fn linux_6_18_idle() {
    let name = "linux-6.18-idle.txt";
    check(
        name,
        &parse_full(name),
        Format::F5,
        &[(0, Some(5062), Some(0), vec![]), (1, None, Some(0), vec![])],
    );
    check_every_line(name, Format::F5, 80);
}

#[test]
fn linux_6_18_custom_slice_and_space_comm() {
    let name = "linux-6.18-custom-slice-and-space-comm.txt";
    let out = parse_full(name);
    check(
        name,
        &out,
        Format::F5,
        &[
            (0, None, Some(0), vec![]),
            (1, Some(12069), Some(0), vec![]),
        ],
    );
    check_every_line(name, Format::F5, 80);
    // The two hazard lines, by hand.
    let (text, all) = everyone_runnable(&read(name), Format::F5);
    assert!(all.contains(&task(12110, "rs:main Q:Reg", 120, 2, b'R')));
    assert!(all.contains(&task(12111, "sleep", 120, 2, b'R')));
    assert!(all.contains(&task(1391, "memfd:sealed-91", 120, 2100, b'R')));
    assert!(all.contains(&task(16, "rcu_exp_par_gp_", 120, 2, b'R')));
    assert!(all.contains(&task(18, "migration/0", 0, 473, b'R')));
    let mut parsed = SchedDebug::default();
    parse_into(&text, &mut parsed).unwrap();
    assert_eq!(
        parsed.cpus[1]
            .waiting
            .last()
            .map(|t| (t.pid, t.switches, t.prio)),
        Some((12111, 2, 120))
    );
}

#[test]
fn linux_6_18_live_waiting_task() {
    let name = "linux-6.18-live-waiting-task.txt";
    check(
        name,
        &parse_full(name),
        Format::F5,
        &[
            (0, Some(9230), Some(0), vec![]),
            (
                1,
                Some(9244),
                Some(0),
                vec![task(9220, "rustc", 120, 130, b'R')],
            ),
        ],
    );
    check_every_line(name, Format::F5, 80);
}

/// Threads renamed by their own (unprivileged) process with newlines and imitations of the
/// file's lines: each is read whole, its pieces are never lines of their own, and every other
/// task of the file is still there. Before the parser read such names, this file was refused
/// as a whole.
#[test]
fn linux_6_18_hostile_names() {
    let name = "linux-6.18-hostile-names.txt";
    let out = parse_full(name);
    check(
        name,
        &out,
        Format::F5,
        &[
            (
                0,
                Some(6148),
                Some(0),
                vec![
                    task(5737, "rustc", 120, 2100, b'R'),
                    task(6118, "rustc", 120, 46, b'R'),
                    task(6131, "rustc", 120, 26, b'R'),
                ],
            ),
            (
                1,
                Some(6078),
                Some(0),
                vec![
                    task(6053, "lto cgu.00.rcgu", 120, 265, b'R'),
                    task(6140, "lto cgu.00.rcgu", 120, 17, b'R'),
                    task(6139, "x\n<0>FAKE", 120, 58, b'R'),
                    task(6129, "rustc", 120, 27, b'R'),
                ],
            ),
        ],
    );
    assert!(out.skipped_lines.is_empty(), "{:?}", out.skipped_lines);
    // Only the record whose name spans lines is left for /proc to confirm.
    let verify: Vec<_> = out.cpus[1]
        .waiting
        .iter()
        .map(|t| (t.pid, t.verify))
        .collect();
    assert_eq!(
        verify,
        [(6053, false), (6140, false), (6139, true), (6129, false)]
    );

    // The sleeping ones, made runnable by rewriting their state letter, read back exactly.
    let sleeping: [(i32, &str, u64); 6] = [
        (6133, "a\nb", 9),
        (6134, "x\ncpu#9\n", 8),
        (6135, "\nrunnable tasks", 7),
        (6136, "\n\n\n", 9),
        (6137, "\n R  forged\r\n", 8),
        (6138, "n\n 99 1.0 E 1.0", 7),
    ];
    let mut text = read(name);
    for (pid, comm, _) in sleeping {
        let record = format!(" S {comm:>15} {pid:>5} ");
        let at = text
            .windows(record.len())
            .position(|w| w == record.as_bytes())
            .unwrap_or_else(|| panic!("{pid} not in {name}"));
        text[at + 1] = b'R';
    }
    let mut all = SchedDebug::default();
    parse_into(&text, &mut all).unwrap();
    let got = tasks(&all.cpus[1].waiting);
    for (pid, comm, switches) in sleeping {
        let expected = task(pid, comm, 120, switches, b'R');
        assert!(got.contains(&expected), "{expected:?} not in {got:?}");
    }
    assert_eq!(got.len(), 4 + sleeping.len(), "{got:?}");
}

/// An excerpt edited as people paste them into mails and bug reports: a few lines of each
/// CPU, no blank line anywhere, so each task table ends with the next `cpu#` header. No CPU
/// is lost, and every task stays with its own CPU.
#[test]
fn linux_6_18_edited_excerpt_no_blank_lines() {
    let name = "linux-6.18-edited-excerpt-no-blank-lines.txt";
    let expected = [
        (0, Some(9230), Some(0), vec![]),
        (
            1,
            Some(9244),
            Some(0),
            vec![task(9220, "rustc", 120, 130, b'R')],
        ),
    ];
    let strict = parse_full(name);
    check(name, &strict, Format::F5, &expected);
    assert!(
        strict.skipped_lines.is_empty(),
        "{:?}",
        strict.skipped_lines
    );
    let mut lenient = SchedDebug::default();
    parse_excerpt_into(&read(name), &mut lenient).unwrap();
    check(name, &lenient, Format::F5, &expected);
    check_every_line(name, Format::F5, 7);
}

#[test]
fn linux_6_12_format_excerpt() {
    let name = "linux-6.12-format-tip-excerpt.txt";
    check(
        name,
        &parse_excerpt(name),
        Format::F5,
        &[(0, None, None, vec![])],
    );
    check_every_line(name, Format::F5, 5);
    let (_, all) = everyone_runnable(&read(name), Format::F5);
    assert_eq!(all[2], task(2646, "NetworkManager", 120, 314, b'R'));
}

#[test]
fn linux_6_11_tip_custom_slice_excerpt() {
    let name = "linux-6.11-tip-custom-slice-excerpt.txt";
    check(
        name,
        &parse_excerpt(name),
        Format::F4,
        &[(0, None, None, vec![])],
    );
    check_every_line(name, Format::F4, 5);
    let (_, all) = everyone_runnable(&read(name), Format::F4);
    assert_eq!(all[0], task(4, "kworker/R-rcu_g", 100, 2, b'R'));
    assert_eq!(all[4], task(9, "kworker/0:1", 120, 224, b'R'));
}

#[test]
fn linux_6_8_eevdf_excerpt() {
    let name = "linux-6.8-eevdf-lkml-excerpt.txt";
    check(
        name,
        &parse_excerpt(name),
        Format::F4,
        &[(0, None, None, vec![])],
    );
    check_every_line(name, Format::F4, 7);
    let (_, all) = everyone_runnable(&read(name), Format::F4);
    // The header says switches and prio are words 4 and 5; the data says otherwise.
    assert_eq!(all[4], task(9, "kworker/0:1", 120, 1516, b'R'));
    assert_eq!(all[6], task(12, "rcu_tasks_kthre", 120, 2, b'R'));
}

#[test]
fn linux_5_5rc_glued_and_spaced() {
    let glued = "linux-5.5rc-glued-comm-lkml-truncated.txt";
    let spaced = "linux-5.5rc-spaced-comm-lkml-truncated.txt";
    check(
        glued,
        &parse_excerpt(glued),
        Format::F2,
        &[(0, None, None, vec![])],
    );
    check(
        spaced,
        &parse_excerpt(spaced),
        Format::F3,
        &[(0, None, None, vec![])],
    );
    check_every_line(glued, Format::F2, 4);
    check_every_line(spaced, Format::F3, 4);
    let expected = vec![
        task(656, "kworker/0:2", 120, 8255, b'R'),
        task(829, "irq/10-ACPI:Ged", 49, 3, b'R'),
        task(830, "irq/11-ACPI:Ged", 49, 3, b'R'),
        task(945, "irq/50-arm-smmu", 49, 3, b'R'),
    ];
    assert_eq!(everyone_runnable(&read(glued), Format::F2).1, expected);
    assert_eq!(everyone_runnable(&read(spaced), Format::F3).1, expected);
}

#[test]
fn linux_4_19_debian() {
    let name = "linux-4.19-debian-x86-1cpu.txt";
    check(
        name,
        &parse_full(name),
        Format::F2,
        &[(
            0,
            Some(753),
            Some(0),
            vec![task(13, "kworker/0:1", 120, 23551, b'R')],
        )],
    );
    check_every_line(name, Format::F2, 190);
    let (_, all) = everyone_runnable(&read(name), Format::F2);
    for hazard in [
        task(300, "ext4-rsv-conver", 100, 2, b'R'),
        task(328, "systemd-journal", 120, 426, b'R'),
        task(367, "systemd-timesyn", 120, 100, b'R'),
        task(542, "rs:main Q:Reg", 120, 60, b'R'),
    ] {
        assert!(all.contains(&hazard), "{hazard:?}");
    }
}

#[test]
fn linux_4_18_dying_task_lines() {
    let name = "linux-4.18-dying-tasks-lines.txt";
    // Bare lines, no header: the 13-character name ends at column 17, so the data is laid
    // out the 5.8 way (a RHEL 8 backport), not the F2 way.
    check(
        name,
        &parse_excerpt(name),
        Format::F3,
        &[(
            0,
            None,
            None,
            vec![
                task(6313, "kworker/dying", 120, 7, b'X'),
                task(816, "kworker/dying", 120, 64, b'X'),
            ],
        )],
    );
}

#[test]
fn linux_3_7_1() {
    let name = "linux-3.7.1-x86-2cpu.txt";
    check(
        name,
        &parse_full(name),
        Format::F0,
        &[
            (
                0,
                Some(28277),
                Some(0),
                vec![
                    task(26153, "bash", 120, 503, b'R'),
                    task(28242, "cc1plus", 120, 174, b'R'),
                ],
            ),
            (
                1,
                Some(28269),
                Some(0),
                vec![
                    task(28263, "cc1plus", 120, 59, b'R'),
                    task(28276, "water", 120, 5, b'R'),
                ],
            ),
        ],
    );
    check_every_line(name, Format::F0, 4);
}

/// Hand-made (not captured): F1 layout on a non-x86 box with RT group scheduling, like the
/// 4.4 Android capture described in SOURCES.md: child `rt_rq` blocks before the root one,
/// names with blanks, names starting with `R` (one of them the current task, glued to the
/// marker), a name and cgroup paths containing `cpu#`.
#[test]
fn hazard_f1_android_rt_groups() {
    let name = "hazard-f1-android-rt-groups.txt";
    check(
        name,
        &parse_full(name),
        Format::F1,
        &[
            (
                0,
                Some(4103),
                Some(1),
                vec![
                    task(4100, "Secure Call", 120, 12, b'R'),
                    task(4101, "RenderThread", 112, 3400, b'R'),
                    task(4102, "POSIX timer 1", 98, 9, b'R'),
                    task(4104, "cpu#1", 139, 1, b'R'),
                ],
            ),
            (
                1,
                Some(73537),
                Some(2),
                vec![task(73538, "Rpc-thread-name", 0, 5, b'R')],
            ),
        ],
    );
    check_every_line(name, Format::F1, 5);
}

/// Hand-made F5 file: names that look like section headers or like the E/N and S tokens,
/// a one-letter name `R`, custom slices, a dying 15-character name, leading and trailing
/// blanks in names (leading ones cannot be told from padding and are dropped).
#[test]
fn hazard_f5_names_and_slices() {
    let name = "hazard-f5-names-and-slices.txt";
    check(
        name,
        &parse_full(name),
        Format::F5,
        &[
            (
                0,
                Some(505),
                Some(0),
                vec![
                    task(500, "cpu#1, 1.0 MHz", 120, 10, b'R'),
                    task(502, "R", 120, 12, b'R'),
                    task(504, "rs:main Q:Reg", 99, 14, b'R'),
                    task(506, "exit-15-chars-x", 120, 16, b'X'),
                ],
            ),
            (
                7,
                None,
                Some(0),
                vec![
                    task(700, "lead-blanks", 120, 1, b'R'),
                    task(701, "trail-blank ", -1, 2, b'R'),
                ],
            ),
        ],
    );
}

#[test]
fn every_fixture_is_tested_and_replays() {
    let tested = [
        "hazard-f1-android-rt-groups.txt",
        "hazard-f5-names-and-slices.txt",
        "linux-3.7.1-x86-2cpu.txt",
        "linux-4.18-dying-tasks-lines.txt",
        "linux-4.19-debian-x86-1cpu.txt",
        "linux-5.5rc-glued-comm-lkml-truncated.txt",
        "linux-5.5rc-spaced-comm-lkml-truncated.txt",
        "linux-6.11-tip-custom-slice-excerpt.txt",
        "linux-6.12-format-tip-excerpt.txt",
        "linux-6.18-custom-slice-and-space-comm.txt",
        "linux-6.18-edited-excerpt-no-blank-lines.txt",
        "linux-6.18-hostile-names.txt",
        "linux-6.18-idle.txt",
        "linux-6.18-live-waiting-task.txt",
        "linux-6.8-eevdf-lkml-excerpt.txt",
    ];
    let mut names: Vec<String> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".txt"))
        .collect();
    names.sort();
    assert_eq!(names, tested, "a fixture without a hand-written test");
    for name in tested {
        let json = replay_json(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(value["format"].as_str().unwrap().starts_with('F'), "{name}");
        assert!(!value["cpus"].as_array().unwrap().is_empty(), "{name}");
    }
    let json = replay_json(&read("linux-6.18-live-waiting-task.txt")).unwrap();
    assert!(json.contains(r#"{"cpu":1,"current_pid":9244,"rt_nr_running":0,"waiting":[{"pid":9220,"comm":"rustc","prio":120,"switches":130,"state":"R"}]}"#), "{json}");
    let json = replay_json(&read("linux-4.18-dying-tasks-lines.txt")).unwrap();
    assert!(json.starts_with(r#"{"format":"F3 (5.8-6.5)","cpus":[{"cpu":null,"current_pid":null,"rt_nr_running":null,"#), "{json}");
}
