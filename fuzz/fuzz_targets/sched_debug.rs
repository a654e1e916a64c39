//! Fuzz target: any bytes through both parser entry points and the JSON replay. Panics,
//! endless loops (libFuzzer's timeout) and runaway allocation (its RSS limit) are findings,
//! and so is a result that breaks the parser's own guarantees.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stalld::backend::sched_debug::parse::{
    parse_excerpt_into, parse_into, replay_json, Format, SchedDebug,
};

fn check(out: &SchedDebug) {
    assert_ne!(out.format, Format::Unknown);
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

fuzz_target!(|data: &[u8]| {
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
