//! Loads the queue_track backend and keeps it attached, for measuring its cost and looking at
//! what it sees:
//! `queue_track_load [CPUS] [SECONDS] [--print] [--verbose] [--scan-cost=SCANS] [-- CMD ARGS...]`.
//! The stamp source follows STALLD_QUEUE_TRACK_STAMPS, as in stalld.
//!
//! CPUS defaults to all; SECONDS to 10. With `--print` a snapshot is printed every second.
//! With a command, it stays loaded while the command runs instead.
//! `--scan-cost=SCANS` times that many checks and prints one JSON line (ns per check and
//! per task) instead of staying loaded.
//! On exit the run time per program is printed (non-zero only with kernel.bpf_stats_enabled=1).

#[cfg(not(feature = "bpf"))]
fn main() {
    eprintln!("queue_track_load: built without the `bpf` feature");
    std::process::exit(2);
}

#[cfg(feature = "bpf")]
fn main() -> anyhow::Result<()> {
    with_bpf::main()
}

#[cfg(feature = "bpf")]
mod with_bpf {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use anyhow::Context;

    use stalld::backend::queue_track::{set_libbpf_verbose, QueueTrack};
    use stalld::backend::{Backend, StampChoice};
    use stalld::cpuset::{configured_cpus, CpuSet};

    pub fn main() -> anyhow::Result<()> {
        let all: Vec<String> = std::env::args().skip(1).collect();
        let (args, command) = match all.iter().position(|a| a == "--") {
            Some(at) => (&all[..at], Some(&all[at + 1..])),
            None => (&all[..], None),
        };
        let flag = |name: &str| args.iter().any(|a| a == name);
        let mut positional = args.iter().filter(|a| !a.starts_with("--"));
        let cpus = match positional.next() {
            Some(list) if list != "all" => CpuSet::parse_list(list, configured_cpus())
                .ok_or_else(|| anyhow::anyhow!("bad CPU list {list}"))?,
            _ => CpuSet::first_n(configured_cpus()),
        };
        let seconds: u64 = positional.next().map_or(Ok(10), |s| s.parse())?;
        let value = |name: &str| {
            args.iter()
                .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
                .map(|v| v.parse::<usize>().with_context(|| format!("{name}={v}")))
                .transpose()
        };
        set_libbpf_verbose(flag("--verbose"));

        let earlier = qt_programs();
        let started = Instant::now();
        let mut backend = QueueTrack::new(cpus, StampChoice::from_env()?)?;
        eprintln!("stamps: {}", backend.stamp_source());
        eprintln!("loaded in {:?}", started.elapsed());
        if let Some(scans) = value("--scan-cost")? {
            return scan_cost(&mut backend, scans.max(1));
        }
        if let Some(command) = command {
            let status = std::process::Command::new(command.first().context("no command")?)
                .args(&command[1..])
                .status()?;
            print_stats(&earlier);
            std::process::exit(status.code().unwrap_or(1));
        }
        let mut snapshot = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < deadline {
            if flag("--print") {
                let began = Instant::now();
                backend.snapshot(&mut snapshot)?;
                let took = began.elapsed();
                let now = stalld::clock::now();
                for rq in &snapshot {
                    println!("cpu {} current {:?} ({took:?})", rq.cpu, rq.current);
                    for task in &rq.waiting {
                        let waited = task.queued_at.map(|at| now.saturating_since(at));
                        println!(
                            "  {}-{} tgid {:?} prio {} switches {} waited {waited:?}",
                            task.comm, task.pid, task.tgid, task.prio, task.switches
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_secs(1).min(deadline - Instant::now().min(deadline)));
        }
        print_stats(&earlier);
        Ok(())
    }

    /// Threads in the whole system (what the task iterator visits).
    fn system_tasks() -> usize {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return 0;
        };
        procs
            .filter_map(|entry| {
                let entry = entry.ok()?;
                entry.file_name().to_str()?.parse::<u32>().ok()?;
                Some(std::fs::read_dir(entry.path().join("task")).ok()?.count())
            })
            .sum()
    }

    /// Times `scans` checks (after a few unmeasured ones) and prints their median.
    fn scan_cost(backend: &mut QueueTrack, scans: usize) -> anyhow::Result<()> {
        let mut snapshot = Vec::new();
        for _ in 0..5 {
            backend.snapshot(&mut snapshot)?;
        }
        let mut took: Vec<u128> = (0..scans)
            .map(|_| {
                let began = Instant::now();
                backend
                    .snapshot(&mut snapshot)
                    .map(|()| began.elapsed().as_nanos())
            })
            .collect::<anyhow::Result<_>>()?;
        took.sort_unstable();
        let median = took[took.len() / 2];
        let tasks = system_tasks();
        println!(
            "{{\"stamps\":\"{}\",\"tasks\":{tasks},\"scans\":{scans},\"median_ns\":{median},\"ns_per_task\":{:.1}}}",
            backend.stamp_source(),
            median as f64 / tasks.max(1) as f64
        );
        Ok(())
    }

    /// The ids of the stalld programs loaded in the kernel now (another stalld's, say).
    fn qt_programs() -> HashSet<u32> {
        libbpf_rs::query::ProgInfoIter::default()
            .filter(|info| info.name.to_string_lossy().starts_with("qt_"))
            .map(|info| info.id)
            .collect()
    }

    /// Run count and time of each program this process loaded (not of programs in `earlier`).
    fn print_stats(earlier: &HashSet<u32>) {
        for info in libbpf_rs::query::ProgInfoIter::default() {
            let name = info.name.to_string_lossy();
            if name.starts_with("qt_") && !earlier.contains(&info.id) {
                println!(
                    "{name:<16} run_cnt {:>10} run_time_ns {:>12} avg_ns {:>6.1}",
                    info.run_cnt,
                    info.run_time_ns,
                    info.run_time_ns as f64 / info.run_cnt.max(1) as f64
                );
            }
        }
    }
}
