//! Hazard cases on small inline texts; whole-fixture tests live in `tests/sched_debug_fixtures.rs`.

use super::*;

fn parse_ok(text: &str) -> SchedDebug {
    let mut out = SchedDebug::default();
    parse_into(text.as_bytes(), &mut out).unwrap_or_else(|e| panic!("{e}\n{text}"));
    out
}

fn parse_err(text: &str) -> ParseError {
    let mut out = SchedDebug::default();
    match parse_into(text.as_bytes(), &mut out) {
        Ok(()) => panic!("parsed: {out:?}\n{text}"),
        Err(e) => {
            assert!(out.cpus.is_empty());
            e
        }
    }
}

const F5_HEADER: &str = " S            task   PID       vruntime   eligible    deadline             slice          sum-exec      switches  prio         wait-time        sum-sleep       sum-block  node   group-id  group-path\n-----------------------------------------------------------------------------------------------------------------------------------------------------------------------------------------------\n";

/// An F5 task line as the kernel prints it (`custom` is the custom-slice marker, `S` or blank).
fn f5_row(marker: &str, comm: &str, pid: i32, switches: u64, prio: i32, custom: char) -> String {
    format!(
        "{marker} {comm:>15} {pid:>5} {:>16}   E   {:>16} {custom} {:>16} {:>16} {switches:>9}   {prio:>5}         0.000000         0.000000         0.000000   0      0        /\n",
        "1.000000", "2.000000", "1.400000", "5.000000"
    )
}

/// An F4 task line: name glued to the state letter, E/N with single blanks.
fn f4_row(marker: &str, comm: &str, pid: i32, switches: u64, prio: i32) -> String {
    format!(
        "{marker}{comm:>15} {pid:>5} {:>16} N {:>16} {:>16} {:>16} {switches:>9} {prio:>5}         0.000000 0 0 /\n",
        "40954.080088", "40957.028485", "3.000000", "132.979107"
    )
}

fn f5_cpu(cpu: u32, rows: &str) -> String {
    format!("cpu#{cpu}, 2100.000 MHz\n  .nr_running : 1\n\nrt_rq[{cpu}]:/\n  .rt_nr_running                 : 0\n\nrunnable tasks:\n{F5_HEADER}{rows}\n")
}

#[test]
fn f5_minimal() {
    let out = parse_ok(&f5_cpu(3, &f5_row(" R", "spin", 100, 42, 120, ' ')));
    assert_eq!(out.format, Format::F5);
    assert_eq!(out.cpus.len(), 1);
    assert_eq!(out.cpus[0].cpu, 3);
    assert_eq!(out.cpus[0].rt_nr_running, Some(0));
    assert_eq!(out.cpus[0].current_pid, None);
    let task = out.cpus[0].waiting[0];
    assert_eq!(
        (
            task.pid,
            task.comm.as_bytes(),
            task.prio,
            task.switches,
            task.state
        ),
        (100, &b"spin"[..], 120, 42, b'R')
    );
}

#[test]
fn cpu_header_inside_names_does_not_open_sections() {
    // A comm and a cgroup path that contain `cpu#1, ` must stay data.
    let rows = f5_row(" R", "cpu#1, 99 MHz", 100, 42, 120, ' ').replace("/\n", "/cpu#1, 1.0 MHz\n")
        + &f5_row(" R", "cpu#1", 101, 43, 120, ' ');
    let text = f5_cpu(0, &rows) + &f5_cpu(1, "");
    let out = parse_ok(&text);
    assert_eq!(out.cpus.len(), 2);
    let names: Vec<_> = out.cpus[0]
        .waiting
        .iter()
        .map(|t| t.comm.to_string())
        .collect();
    assert_eq!(names, ["cpu#1, 99 MHz", "cpu#1"]);
    assert!(out.cpus[1].waiting.is_empty());
}

#[test]
fn forged_or_repeated_sections_are_errors() {
    let text = f5_cpu(1, "") + &f5_cpu(0, "");
    assert!(parse_err(&text).message.contains("out of order"));
    let text = f5_cpu(1, "") + &f5_cpu(1, "");
    assert!(parse_err(&text).message.contains("out of order"));
}

#[test]
fn root_rt_rq_is_the_one_counted() {
    let text = "cpu#0\n\nrt_rq[0]:/bg_non_interactive\n  .rt_nr_running : 7\n\nrt_rq[0]:/\n  .rt_nr_running : 2\n\nrt_rq[0]:/foreground\n  .rt_nr_running : 9\n\nrunnable tasks:\n".to_string() + F5_HEADER + "\n";
    let out = parse_ok(&text);
    assert_eq!(out.cpus[0].rt_nr_running, Some(2));
    // A bare `rt_rq[N]:` (no RT group scheduling) is the root as well.
    let text =
        "cpu#0\nrt_rq[0]:\n  .rt_nr_running : 4\n\nrunnable tasks:\n".to_string() + F5_HEADER;
    assert_eq!(parse_ok(&text).cpus[0].rt_nr_running, Some(4));
    // Another CPU's block inside this section is not this CPU's.
    let text =
        "cpu#0\nrt_rq[1]:/\n  .rt_nr_running : 4\n\nrunnable tasks:\n".to_string() + F5_HEADER;
    assert_eq!(parse_ok(&text).cpus[0].rt_nr_running, None);
}

#[test]
fn crlf_and_trailing_garbage() {
    let rows = f5_row(" X", "dead", 100, 42, 120, 'S');
    let text = f5_cpu(0, &rows).replace('\n', "\r\n") + "\u{0}\u{0}garbage after the file\r\n~~~\n";
    let out = parse_ok(&text);
    assert_eq!(out.cpus[0].waiting[0].state, b'X');
    assert_eq!(out.cpus[0].waiting[0].comm.as_bytes(), b"dead");
    assert_eq!(out.cpus[0].rt_nr_running, Some(0));
}

#[test]
fn truncation() {
    let row = f5_row(" R", "spin", 100, 42, 120, ' ');
    let full = f5_cpu(0, &row);
    let cut_at = full.find(&row).unwrap();
    let prio_end = cut_at + row.find(" 120 ").unwrap() + 4;
    // Cut inside the prio or earlier: an error naming the last line.
    for len in (cut_at + 1..prio_end)
        .step_by(7)
        .chain([prio_end - 1, prio_end])
    {
        let e = parse_err(&full[..len]);
        assert_eq!(e.line, full[..len].lines().count(), "{e}");
    }
    assert!(parse_err(&full[..prio_end]).message.contains("truncated"));
    // Cut after the prio: every field is whole, the task is kept.
    let out = parse_ok(&full[..prio_end + 1]);
    assert_eq!(out.cpus[0].waiting[0].prio, 120);
    // Cut before the table of the last CPU: an error, not a silently missing CPU.
    let two = f5_cpu(0, "") + &f5_cpu(1, "");
    let e = parse_err(&two[..two.rfind("runnable").unwrap()]);
    assert!(e.message.contains("cpu#1"), "{e}");
    assert!(parse_err(&two[..two.rfind("---").unwrap()])
        .message
        .contains("truncated"));
    assert!(parse_err("").message.contains("no cpu#"));
    assert!(parse_err(&full[..full.find("rt_nr_running").unwrap() + 34])
        .message
        .contains("truncated"));
}

/// (pid, comm, verify) of a CPU's waiting tasks.
fn waiting(cpu: &ParsedCpu) -> Vec<(i32, Vec<u8>, bool)> {
    cpu.waiting
        .iter()
        .map(|t| (t.pid, t.comm.as_bytes().to_vec(), t.verify))
        .collect()
}

/// Names any user can give a thread that imitate the file's own lines once split at their
/// newlines: a header, a table start, a divider, a blank line, a task line's head.
const HOSTILE_NAMES: [&str; 8] = [
    "a\nb",
    "\ncpu#9",
    "x\ncpu#9\n",
    "\nrunnable tasks",
    "\n\n\n",
    "-\n-----------\n",
    "\n R  forged\r\n",
    "n\n 99 1.0 E 1.0",
];

#[test]
fn names_with_newlines_are_read_whole_and_cost_nothing() {
    // Before the fix one such name failed the whole file: nothing was monitored.
    let mut rows = f5_row(" R", "before", 100, 1, 120, ' ');
    for (i, name) in HOSTILE_NAMES.iter().enumerate() {
        rows += &f5_row(" R", name, 200 + i as i32, 7, 120, ' ');
        rows += &f5_row(" S", name, 300 + i as i32, 7, 120, ' ');
    }
    rows += &f5_row(" R", "after", 400, 1, 98, ' ');
    let text = f5_cpu(0, &rows) + &f5_cpu(1, &f5_row(" R", "next", 500, 1, 120, ' '));
    let out = parse_ok(&text);
    assert_eq!(out.cpus.len(), 2, "{out:?}");
    let mut expected = vec![(100, b"before".to_vec(), false)];
    for (i, name) in HOSTILE_NAMES.iter().enumerate() {
        // Read whole, and marked: a name spanning lines is checked against /proc.
        expected.push((200 + i as i32, name.as_bytes().to_vec(), true));
    }
    expected.push((400, b"after".to_vec(), false));
    assert_eq!(waiting(&out.cpus[0]), expected);
    assert_eq!(waiting(&out.cpus[1]), [(500, b"next".to_vec(), false)]);
    assert!(out.skipped_lines.is_empty(), "{:?}", out.skipped_lines);
}

#[test]
fn names_with_newlines_in_the_glued_and_no_state_families() {
    // F4: the name touches the state letter; the header does not say F4, the data does.
    let text = "cpu#2\nrunnable tasks:\n S            task   PID         tree-key  switches  prio     wait-time             sum-exec        sum-sleep\n---\n".to_string()
        + &f4_row(" R", "\n\n", 4, 2, 100)
        + &f4_row(" R", "abcdefghijklm\nn", 5, 2, 100)
        + &f4_row(" R", "plain", 6, 2, 100);
    let out = parse_ok(&text);
    assert_eq!(out.format, Format::F4);
    assert_eq!(
        waiting(&out.cpus[0]),
        [
            (4, b"\n\n".to_vec(), true),
            (5, b"abcdefghijklm\nn".to_vec(), true),
            (6, b"plain".to_vec(), false)
        ]
    );
    // F0: a blank marker then a name starting with a newline: the first line is all blank,
    // and must not end the table.
    let f0_row = |marker: char, comm: &str, pid: i32| {
        format!("{marker}{comm:>15} {pid:>5}       100.000000         5   120       100.000000         1.000000         0.000000\n")
    };
    let text = "cpu#0\nrunnable tasks:\n            task   PID         tree-key  switches  prio     exec-runtime         sum-exec        sum-sleep\n---\n".to_string()
        + &f0_row(' ', "\nabcdefghijklmn", 10)
        + &f0_row(' ', "x\ncpu#1", 11)
        + &f0_row('R', "cur\nrent", 12)
        + &f0_row(' ', "last", 13);
    let out = parse_ok(&text);
    assert_eq!(
        waiting(&out.cpus[0]),
        [
            (10, b"\nabcdefghijklmn".to_vec(), true),
            (11, b"x\ncpu#1".to_vec(), true),
            (13, b"last".to_vec(), false)
        ]
    );
    // A record that does not stand alone never names the current task.
    assert_eq!(out.cpus[0].current_pid, None);
}

#[test]
fn a_damaged_line_costs_only_its_own_task() {
    let good = |pid| f5_row(" R", "good", pid, 1, 120, ' ');
    let row = f5_row(" R", "damaged", 666, 1, 120, ' ');
    let cases = [
        // Not a task line any more, but still shaped like one.
        row.replacen(" 666 ", " 6x6 ", 1),
        // Cut in two by an inserted newline: neither half stands.
        row.replacen("   E   ", "   E\n   ", 1),
        row.replacen(" 666 ", "\n 666 ", 1),
        // A stray line that is not shaped like a task line at all.
        "garbage\n".to_string(),
    ];
    for damaged in cases {
        let rows = good(1) + &damaged + &good(2) + &good(3);
        let text = f5_cpu(0, &rows) + &f5_cpu(1, &good(4));
        let out = parse_ok(&text);
        let pids = |cpu: &ParsedCpu| {
            cpu.waiting
                .iter()
                .map(|t| (t.pid, t.verify))
                .collect::<Vec<_>>()
        };
        // The task right after the damage may be what is left of it: it is marked.
        assert_eq!(
            pids(&out.cpus[0]),
            [(1, false), (2, true), (3, false)],
            "{damaged:?}"
        );
        assert_eq!(pids(&out.cpus[1]), [(4, false)], "{damaged:?}");
        assert!(!out.skipped_lines.is_empty(), "{damaged:?}");
        assert!(
            out.skipped_lines.iter().all(|&n| (10..=12).contains(&n)),
            "{:?}",
            out.skipped_lines
        );
    }
}

#[test]
fn what_follows_a_damaged_line_cannot_forge_the_current_task_or_a_section() {
    let damaged = " R garbage\n";
    let rows = damaged.to_string() + &f5_row(">R", "claims-cpu", 7, 1, 120, ' ');
    let out = parse_ok(&f5_cpu(0, &rows));
    assert_eq!(out.cpus[0].current_pid, None);
    // Only the blank line that ends a table ends it: a `cpu#` line inside one (a piece of a
    // split line) opens no section, and the next real one is found.
    let rows = f5_row(" R", "one", 8, 1, 120, ' ')
        + "cpu#7, 1.0 MHz\n"
        + &f5_row(" R", "two", 9, 1, 120, ' ');
    let out = parse_ok(&(f5_cpu(0, &rows) + &f5_cpu(1, damaged)));
    assert_eq!(out.cpus.iter().map(|c| c.cpu).collect::<Vec<_>>(), [0, 1]);
    let pids: Vec<_> = out.cpus[0]
        .waiting
        .iter()
        .map(|t| (t.pid, t.verify))
        .collect();
    assert_eq!(pids, [(8, false), (9, true)]);
    // A file cut short inside a task line is still an error, not a skipped line.
    let cut = f5_cpu(0, &f5_row(" R", "one", 8, 1, 120, ' '))
        .trim_end()
        .to_string()
        + "\n R  two   9";
    let e = parse_err(&cut);
    assert_eq!(e.line, cut.lines().count(), "{e}");
}

/// Excerpts pasted into mails lose the blank line that ends a table: the next `cpu#` header
/// starts its CPU again, with its own tasks, after a table with rows or an empty one.
#[test]
fn a_table_ended_by_the_next_cpu_header_loses_no_cpu() {
    let row = |comm, pid| f5_row(" R", comm, pid, 1, 120, ' ');
    for first in [row("one", 8), String::new()] {
        let text = (f5_cpu(0, &first) + &f5_cpu(1, &row("two", 9)) + &f5_cpu(3, &row("three", 10)))
            .replace("\n\ncpu#", "\ncpu#");
        let mut strict = SchedDebug::default();
        let mut lenient = SchedDebug::default();
        parse_into(text.as_bytes(), &mut strict).unwrap_or_else(|e| panic!("{e}\n{text}"));
        parse_excerpt_into(text.as_bytes(), &mut lenient).unwrap();
        for out in [&strict, &lenient] {
            let got: Vec<_> = out.cpus.iter().map(|cpu| (cpu.cpu, waiting(cpu))).collect();
            let first: Vec<_> = (!first.is_empty())
                .then(|| (8, b"one".to_vec(), false))
                .into_iter()
                .collect();
            assert_eq!(
                got,
                [
                    (0, first),
                    (1, vec![(9, b"two".to_vec(), false)]),
                    (3, vec![(10, b"three".to_vec(), false)])
                ],
                "{text}"
            );
            assert!(out.skipped_lines.is_empty(), "{:?}", out.skipped_lines);
            assert_eq!(out.cpus[1].rt_nr_running, Some(0));
        }
    }
}

/// A header that may be a piece of a damaged line starts no CPU: one right after a skipped
/// line (its next CPU's table then reads as a second table of the same CPU, an error, not a
/// section made up), and one followed by the rest of its table.
#[test]
fn a_header_that_may_be_a_piece_of_a_damaged_line_starts_no_cpu() {
    let row = |comm, pid| f5_row(" R", comm, pid, 1, 120, ' ');
    let after_damage = (f5_cpu(0, &(row("one", 8) + " R garbage\n")) + &f5_cpu(1, &row("two", 9)))
        .replace("\n\ncpu#", "\ncpu#");
    let e = parse_err(&after_damage);
    assert!(e.message.contains("second runnable tasks table"), "{e}");
    let inside = row("one", 8) + "cpu#1, 2100.000 MHz\n" + &row("two", 9);
    let out = parse_ok(&(f5_cpu(0, &inside) + &f5_cpu(1, &row("three", 10))));
    assert_eq!(
        waiting(&out.cpus[0]),
        [(8, b"one".to_vec(), false), (9, b"two".to_vec(), true)]
    );
    assert_eq!(out.cpus.iter().map(|c| c.cpu).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn unknown_header_is_an_error() {
    let e = parse_err("cpu#0\nrunnable tasks:\n S   task PID  foo bar\n");
    assert_eq!(e.line, 3);
    assert!(e
        .to_string()
        .starts_with("sched_debug line 3: unrecognised"));
}

#[test]
fn names_starting_with_r_in_f0() {
    let text = "cpu#0, 1.0 MHz\nrt_rq[0]:\n  .rt_nr_running                 : 1\n\nrunnable tasks:\n            task   PID         tree-key  switches  prio     exec-runtime         sum-exec        sum-sleep\n----------------------------------------------------------------------------------------------------------\n    RenderThread  1000       100.000000         5   120       100.000000         1.000000         0.000000\n Rabcdefghijklmn  1001       100.000000         6    98       100.000000         1.000000         0.000000\nRcurrent-glued15  1002       100.000000         7   120       100.000000         1.000000         0.000000\n       CPU 2/KVM 73537      3424.520709     21610   120         0.000000      3437.817166         0.000000 0 /machine.slice\n\n";
    let out = parse_ok(text);
    assert_eq!(out.format, Format::F0);
    let cpu = &out.cpus[0];
    assert_eq!(cpu.current_pid, Some(1002));
    assert_eq!(cpu.rt_nr_running, Some(1));
    let got: Vec<_> = cpu
        .waiting
        .iter()
        .map(|t| (t.pid, t.comm.to_string(), t.switches, t.prio))
        .collect();
    assert_eq!(
        got,
        [
            (1000, "RenderThread".to_string(), 5, 120),
            (1001, "Rabcdefghijklmn".to_string(), 6, 98),
            (73537, "CPU 2/KVM".to_string(), 21610, 120),
        ]
    );
}

#[test]
fn f4_header_lies_and_names_are_glued() {
    let text = "cpu#2\nrunnable tasks:\n S            task   PID         tree-key  switches  prio     wait-time             sum-exec        sum-sleep\n-------------------------------------------------------------------------------------------------------------\n".to_string()
        + &f4_row(" R", "kworker/R-rcu_g", 4, 2, 100)
        + &f4_row(" R", "CPU 2/KVM", 9, 1516, 120)
        // The tip-only F4' variant: custom-slice marker after the deadline.
        + &f4_row(" R", "kworker/0:1", 10, 1517, -1).replacen(" N ", " E ", 1).replacen("40957.028485 ", "40957.028485 S ", 1);
    let out = parse_ok(&text);
    assert_eq!(out.format, Format::F4);
    let got: Vec<_> = out.cpus[0]
        .waiting
        .iter()
        .map(|t| (t.pid, t.comm.to_string(), t.switches, t.prio))
        .collect();
    assert_eq!(
        got,
        [
            (4, "kworker/R-rcu_g".to_string(), 2, 100),
            (9, "CPU 2/KVM".to_string(), 1516, 120),
            (10, "kworker/0:1".to_string(), 1517, -1),
        ]
    );
}

#[test]
fn f5_custom_slice_glued_names_missing_optional_columns() {
    // No numa, no cgroup column; a 15-character name; a custom slice.
    let text = "cpu#0\nrunnable tasks:\n S            task   PID       vruntime   eligible    deadline             slice          sum-exec      switches  prio         wait-time        sum-sleep       sum-block\n----\n R abcdefghijklmno    77       572.227168   E         572.339120 S         1.400000         0.588048         2     120         0.000000         0.000000         0.000000\n R abcdefghijklmn     78       572.227168   N         572.339120           1.400000         0.588048         3      99\n";
    let out = parse_ok(text);
    let got: Vec<_> = out.cpus[0]
        .waiting
        .iter()
        .map(|t| (t.pid, t.comm.to_string(), t.switches, t.prio))
        .collect();
    assert_eq!(
        got,
        [
            (77, "abcdefghijklmno".to_string(), 2, 120),
            (78, "abcdefghijklmn ".to_string(), 3, 99)
        ]
    );
}

#[test]
fn reuses_allocations_and_replaces_content() {
    let rows = f5_row(" R", "spin", 100, 42, 120, ' ');
    let mut out = SchedDebug::default();
    let big = f5_cpu(0, &rows.repeat(50)) + &f5_cpu(1, &rows);
    parse_into(big.as_bytes(), &mut out).unwrap();
    let capacity = out.cpus[0].waiting.capacity();
    parse_into(f5_cpu(0, &rows).as_bytes(), &mut out).unwrap();
    assert_eq!(out.cpus.len(), 1);
    assert_eq!(out.cpus[0].waiting.len(), 1);
    assert_eq!(out.cpus[0].waiting.capacity(), capacity);
}

#[test]
fn excerpts_only_in_excerpt_mode() {
    let table =
        "runnable tasks:\n".to_string() + F5_HEADER + &f5_row(" R", "spin", 100, 42, 120, 'S');
    assert!(parse_err(&table).message.contains("outside any cpu#"));
    let mut out = SchedDebug::default();
    parse_excerpt_into((table.clone() + "\n" + &table).as_bytes(), &mut out).unwrap();
    assert!(out.excerpt);
    assert_eq!(out.cpus.len(), 2);
    assert_eq!(out.cpus[1].cpu, 1);
    // A table without a section followed by a section is not a file nor an excerpt.
    let mixed = table + "\n" + &f5_cpu(0, "");
    assert!(parse_excerpt_into(mixed.as_bytes(), &mut out).is_err());
}

#[test]
fn json_shape() {
    let rows =
        f5_row(" R", "\"quoted\\\"", 100, 42, 120, ' ') + &f5_row(">R", "self", 101, 42, 120, ' ');
    let json = replay_json(f5_cpu(4, &rows).as_bytes()).unwrap();
    assert_eq!(
        json,
        r#"{"format":"F5 (6.12+)","cpus":[{"cpu":4,"current_pid":101,"rt_nr_running":0,"waiting":[{"pid":100,"comm":"\"quoted\\\"","prio":120,"switches":42,"state":"R"}]}]}"#
    );
    assert!(replay_json(b"hello\n").is_err());
}

#[test]
fn not_a_sched_debug_file_names_its_last_line() {
    let e = parse_err("hello\nworld\n");
    assert_eq!(
        (e.line, e.message.as_str()),
        (2, "no cpu# section found (not a sched_debug file?)")
    );
    assert_eq!(parse_err("a\nb\nc").line, 3);
}

#[test]
fn bare_lines_are_told_apart_by_their_shape() {
    let mut out = SchedDebug::default();
    let f5 = f5_row(" R", "spin", 100, 42, 120, ' ');
    parse_excerpt_into(f5.as_bytes(), &mut out).unwrap();
    assert_eq!(out.format, Format::F5);
    let f4 = f4_row(" R", "spin", 100, 42, 120);
    parse_excerpt_into(f4.as_bytes(), &mut out).unwrap();
    assert_eq!(out.format, Format::F4);
    assert_eq!(out.cpus[0].waiting[0].comm.as_bytes(), b"spin");
    // Short names fit both F2 and F3; a later 15-character glued name settles it.
    let short = " R           spin   100     1.000000         7   120\n";
    parse_excerpt_into(short.as_bytes(), &mut out).unwrap();
    assert_eq!(out.format, Format::F2OrF3);
    let glued = " Rabcdefghijklmno   101     1.000000         8   120\n";
    parse_excerpt_into((short.to_string() + glued).as_bytes(), &mut out).unwrap();
    assert_eq!(out.format, Format::F2);
    assert_eq!(out.cpus[0].waiting[1].comm.as_bytes(), b"abcdefghijklmno");
    // Bare lines must all be task lines.
    assert!(parse_excerpt_into((short.to_string() + "hello\n").as_bytes(), &mut out).is_err());
}

#[test]
fn format_names() {
    let names: Vec<String> = Format::FAMILIES.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "F0 (<=3.12)",
            "F1 (3.13-4.13)",
            "F2 (4.14-5.7)",
            "F3 (5.8-6.5)",
            "F4 (6.6-6.11)",
            "F5 (6.12+)"
        ]
    );
    assert!(!Format::F1.has_state_column());
    assert!(Format::F4.has_state_column());
}
