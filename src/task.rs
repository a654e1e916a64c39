//! The vocabulary every part of stalld shares: who is waiting on which CPU, and since when.
//!
//! Backends produce [`RunQueue`] snapshots, the detector consumes them, the booster acts on
//! the tasks they name. Nothing here does I/O.

use std::fmt;
use std::time::Duration;

/// A kernel task id (what user space calls a thread id; `pid` in the kernel's words).
pub type Pid = i32;

/// A point on CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns()` stamps with, so
/// kernel and user-space times compare directly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MonoTime(pub u64);

impl MonoTime {
    pub fn saturating_since(self, earlier: MonoTime) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    pub fn after(self, delay: Duration) -> MonoTime {
        MonoTime(
            self.0
                .saturating_add(u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX)),
        )
    }
}

/// A task's command name, as the kernel keeps it: at most 15 bytes (TASK_COMM_LEN 16).
/// Stored inline so snapshots do not allocate per task.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Comm {
    bytes: [u8; 16],
    len: u8,
}

impl Comm {
    pub const MAX_LEN: usize = 15;

    /// Takes the bytes up to the first NUL, cut at 15 bytes as the kernel does.
    pub fn new(raw: &[u8]) -> Comm {
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        let len = end.min(Self::MAX_LEN);
        let mut bytes = [0u8; 16];
        bytes[..len].copy_from_slice(&raw[..len]);
        Comm {
            bytes,
            len: len as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name for regex matching; bytes that are not UTF-8 are replaced. Not for output:
    /// [`Display`](fmt::Display) escapes what a hostile name could use to forge log lines.
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

/// Displays the name with [`escape_name`], so that one event is one line in every sink.
impl fmt::Display for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_name(self.as_bytes()))
    }
}

impl fmt::Debug for Comm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}

/// A name chosen by whoever started the task (any user can rename a thread with
/// `prctl(PR_SET_NAME)`), made safe to print: control characters (a newline would start a new
/// journal entry or syslog record, `<0>` after it an emergency one), the Unicode line and
/// paragraph separators (which some viewers break lines at), the invisible formatting
/// characters that reorder or hide text ([`is_format_char`]: a bidirectional override can make
/// a line read as something else, CVE-2021-42574's class), backslashes and bytes that are not
/// UTF-8 become `\xNN` (each byte of the character), so the text is one line that shows what
/// it holds, and the escape cannot be imitated.
pub fn escape_name(raw: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(raw.len());
    let escape = |out: &mut String, bytes: &[u8]| {
        for byte in bytes {
            let _ = write!(out, "\\x{byte:02x}");
        }
    };
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '\\' || is_format_char(c) {
                escape(&mut out, c.encode_utf8(&mut [0; 4]).as_bytes());
            } else {
                out.push(c);
            }
        }
        escape(&mut out, chunk.invalid());
    }
    out
}

/// Characters that change how the text around them is laid out or read, without showing
/// themselves: the line and paragraph separators (U+2028, U+2029), the bidirectional marks,
/// embeddings, overrides and isolates (U+061C, U+200E, U+200F, U+202A-U+202E,
/// U+2066-U+2069), and the other invisible format characters of Unicode's Cf category that
/// hide text or join it (zero-width spaces and joiners, word joiner, invisible operators,
/// deprecated format controls, the byte order mark, interlinear annotation, tag characters).
pub fn is_format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
            | '\u{e0000}'..='\u{e007f}'
    )
}

/// A task that is runnable on a CPU but is not the one running there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitingTask {
    pub pid: Pid,
    /// Thread group (process) id when the backend knows it.
    pub tgid: Option<Pid>,
    pub comm: Comm,
    /// Kernel priority: 0..99 real-time (99 − rt_priority), 100..139 fair, −1 deadline.
    pub prio: i32,
    /// Voluntary + involuntary context switches: constant while the task waits, so a change
    /// proves the task ran in between.
    pub switches: u64,
    /// When the task became runnable, if the backend knows it exactly; otherwise the detector
    /// counts from the first snapshot that showed it waiting.
    pub queued_at: Option<MonoTime>,
}

/// One monitored CPU's run queue at the moment of a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunQueue {
    pub cpu: u32,
    /// The task running on the CPU, if the backend saw one (`None` = idle or unknown).
    pub current: Option<Pid>,
    /// Real-time tasks (SCHED_FIFO/SCHED_RR) on the CPU, the running one included: what the C
    /// stalld prints as `rt:` in its per-check line.
    pub nr_rt_running: u32,
    pub waiting: Vec<WaitingTask>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_on_one_line_and_escapes_cannot_be_forged() {
        assert_eq!(escape_name(b"kworker/1:2"), "kworker/1:2");
        assert_eq!(escape_name(b"x\n<0>FAKE"), "x\\x0a<0>FAKE");
        assert_eq!(escape_name(b"a\rb\x1b[2J\x7f"), "a\\x0db\\x1b[2J\\x7f");
        // A literal backslash is escaped too, so "\\x0a" in a name is not read as a newline.
        assert_eq!(escape_name(b"a\\x0a"), "a\\x5cx0a");
        // Not UTF-8: each bad byte shown, the rest kept.
        assert_eq!(escape_name(b"\xffok\xc3"), "\\xffok\\xc3");
        assert_eq!(
            escape_name("caf\u{e9} \u{85}".as_bytes()),
            "caf\u{e9} \\xc2\\x85"
        );
        assert_eq!(Comm::new(b"x\n<0>FAKE").to_string(), "x\\x0a<0>FAKE");
    }

    #[test]
    fn separators_and_bidirectional_controls_are_escaped() {
        // A line separator, then a right-to-left override that shows "exe.txt" reversed.
        assert_eq!(
            escape_name("a\u{2028}b\u{202e}txt.exe".as_bytes()),
            "a\\xe2\\x80\\xa8b\\xe2\\x80\\xaetxt.exe"
        );
        for c in [
            '\u{2029}', '\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{2066}', '\u{2067}',
            '\u{2068}', '\u{2069}', '\u{200e}', '\u{200f}', '\u{061c}', '\u{200b}', '\u{feff}',
        ] {
            let text = escape_name(c.encode_utf8(&mut [0; 4]).as_bytes());
            assert!(text.starts_with("\\x") && text.is_ascii(), "{c:?}: {text}");
        }
        // Letters of right-to-left scripts are names, not formatting: kept.
        assert_eq!(
            escape_name("\u{5e9}\u{5dc}\u{5d5}\u{5dd}".as_bytes()),
            "\u{5e9}\u{5dc}\u{5d5}\u{5dd}"
        );
        assert_eq!(
            Comm::new("x\u{2028}y".as_bytes()).to_string(),
            "x\\xe2\\x80\\xa8y"
        );
    }
}
