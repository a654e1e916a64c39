//! Parse speed of the sched_debug parser, per task line: a synthetic 10,000-task 6.12+ file
//! (16 CPUs, the per-CPU blocks of a real 6.18 capture) and every saved fixture.
//!
//! Besides criterion's own report, prints one `ns per task line` figure per input, measured
//! over the whole file (so the cost of the non-table lines is charged to the task lines,
//! which is what a poll pays).

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stalld::backend::sched_debug::parse::{parse_excerpt_into, parse_into, SchedDebug};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sched_debug");

const HEADER: &str = " S            task   PID       vruntime   eligible    deadline             slice          sum-exec      switches  prio         wait-time        sum-sleep       sum-block  node   group-id  group-path\n";

/// 16 CPUs × 625 tasks in the 6.12+ format, with the hazards mixed in: names with blanks,
/// 15-character names, custom slices, runnable and dying tasks, one current task per CPU.
fn synthetic(cpus: usize, tasks_per_cpu: usize) -> Vec<u8> {
    let real = std::fs::read_to_string(Path::new(DIR).join("linux-6.18-idle.txt")).unwrap();
    // The capture's cpu#0 block between its header line and its task table.
    let start = real.find("cpu#0").unwrap();
    let block =
        &real[real[start..].find('\n').unwrap() + start + 1..real.find("runnable tasks:").unwrap()];
    let names = [
        "kworker/0:1",
        "rs:main Q:Reg",
        "memfd:sealed-91",
        "bash",
        "CPU 2/KVM",
        "tokio-rt-worker",
    ];
    let states = ['S', 'S', 'I', 'R', 'S', 'D', 'X', 'S'];
    let mut text = real[..start].to_string();
    let mut pid = 1;
    for cpu in 0..cpus {
        text += &format!("cpu#{cpu}, 2100.000 MHz\n");
        text += &block.replace("[0]", &format!("[{cpu}]"));
        text += "runnable tasks:\n";
        text += HEADER;
        text += &"-".repeat(191);
        text += "\n";
        for i in 0..tasks_per_cpu {
            let marker = if i == tasks_per_cpu / 2 {
                ">R".to_string()
            } else {
                format!(" {}", states[i % states.len()])
            };
            let custom = if i % 13 == 0 { 'S' } else { ' ' };
            let name = names[i % names.len()];
            let switches = i * 37;
            let prio = 100 + i % 40;
            text += &format!(
                "{marker} {name:>15} {pid:>5} {:>16}   E   {:>16} {custom} {:>16} {:>16} {switches:>9}   {prio:>5}         0.000000         0.000000         0.000000   0      0        /autogroup-{}\n",
                "82470.673725", "82472.003054", "1.400000", "47.593685", i % 7
            );
            pid += 1;
        }
        text += "\n";
    }
    text.into_bytes()
}

/// Lines between a table's divider and the blank line that ends it.
fn task_lines(text: &[u8]) -> usize {
    let mut count = 0;
    let mut skip = None;
    let bare = !text.windows(15).any(|w| w == b"runnable tasks:");
    for line in text.split(|&b| b == b'\n') {
        if line.starts_with(b"runnable tasks:") {
            skip = Some(2);
        } else if let Some(n) = skip {
            if n > 0 {
                skip = Some(n - 1);
            } else if line.iter().all(|&b| b == b' ' || b == b'\r') {
                skip = None;
            } else {
                count += 1;
            }
        } else if bare && !line.is_empty() {
            count += 1;
        }
    }
    count
}

fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut all = vec![("synthetic-10000-tasks".to_string(), synthetic(16, 625))];
    let mut names: Vec<_> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    names.sort();
    for name in names {
        let text = std::fs::read(Path::new(DIR).join(&name)).unwrap();
        all.push((name.trim_end_matches(".txt").to_string(), text));
    }
    all
}

fn parse(text: &[u8], out: &mut SchedDebug) {
    // Excerpts need the lenient entry point; whole files take the daemon's.
    if parse_into(text, out).is_err() {
        parse_excerpt_into(text, out).unwrap();
    }
}

/// Best of several timed batches, in ns per task line.
fn ns_per_line(text: &[u8], lines: usize) -> f64 {
    let mut out = SchedDebug::default();
    parse(text, &mut out);
    let batch = (2_000_000 / text.len().max(1)).clamp(1, 100_000);
    let mut best = Duration::MAX;
    for _ in 0..15 {
        let start = Instant::now();
        for _ in 0..batch {
            parse(black_box(text), &mut out);
        }
        best = best.min(start.elapsed() / batch as u32);
    }
    best.as_nanos() as f64 / lines as f64
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    println!(
        "{:<48} {:>7} {:>9} {:>12} {:>14}",
        "input", "lines", "bytes", "ns/file", "ns/task line"
    );
    for (name, text) in &inputs {
        let lines = task_lines(text);
        let per_line = ns_per_line(text, lines);
        println!(
            "{name:<48} {lines:>7} {:>9} {:>12.0} {per_line:>14.1}",
            text.len(),
            per_line * lines as f64
        );
    }
    let mut group = c.benchmark_group("sched_debug");
    for (name, text) in &inputs {
        group.throughput(Throughput::Elements(task_lines(text) as u64));
        let mut out = SchedDebug::default();
        group.bench_function(name.as_str(), |b| {
            b.iter(|| parse(black_box(text), &mut out))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
