//! Where libbpf's own messages go: to stderr only in verbose mode, and always into a short
//! buffer so a failed load can say why in its error instead of in a log nobody enabled.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, Once};

use libbpf_rs::PrintLevel;

static VERBOSE: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();
/// The last few warning lines; the verifier log alone can be thousands of lines.
static RECENT: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());
const KEEP: usize = 64;

/// Shows libbpf's warnings (a rejected program's verifier log among them) on stderr when
/// `verbose`; its debug chatter (hundreds of lines per load) never.
pub fn set_libbpf_verbose(verbose: bool) {
    VERBOSE.store(verbose, Ordering::Relaxed);
    install();
}

pub(super) fn install() {
    INSTALL.call_once(|| {
        libbpf_rs::set_print(Some((PrintLevel::Debug, on_message)));
    });
}

fn on_message(level: PrintLevel, msg: String) {
    if VERBOSE.load(Ordering::Relaxed) && level == PrintLevel::Warn {
        eprint!("{msg}");
    }
    if level == PrintLevel::Warn {
        let mut recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
        for line in msg.lines().filter(|line| !line.trim().is_empty()) {
            if recent.len() == KEEP {
                recent.pop_front();
            }
            recent.push_back(line.to_owned());
        }
    }
}

/// Forgets earlier warnings, so [`last_warning`] describes only what follows.
pub(super) fn clear() {
    RECENT.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// libbpf's last specific complaint (`libbpf: prog 'x': failed to load: -EACCES`), skipping
/// verifier-log lines (no prefix; only meaningful in full, in verbose mode) and the generic
/// "failed to load object/skeleton" lines that follow every failure.
pub(super) fn last_warning() -> Option<String> {
    let recent = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    recent
        .iter()
        .rev()
        .filter_map(|line| line.strip_prefix("libbpf: "))
        .find(|line| {
            !line.contains("PROG LOAD LOG")
                && !line.starts_with("failed to load object")
                && !line.starts_with("failed to load BPF skeleton")
        })
        .map(|line| line.trim().to_owned())
}

/// Whether any line kept since the last [`clear`] (the verifier log's among them) contains
/// `needle`.
pub(super) fn any_line_contains(needle: &str) -> bool {
    RECENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|line| line.contains(needle))
}
