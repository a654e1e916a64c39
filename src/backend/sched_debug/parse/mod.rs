//! Parser for the text of `sched/debug` (debugfs, 5.13+) and `/proc/sched_debug` (older).
//!
//! Owns the whole text-to-[`SchedDebug`] step: which lines start a CPU's section, which
//! `rt_rq` block is the root one, where each CPU's `runnable tasks:` table is, which of the
//! format families ([`Format`]) it is in, and what each task line says. It knows nothing of
//! files, polling or which CPUs are monitored.
//!
//! Trust rules, because comms and cgroup names are chosen by unprivileged users:
//! * a section starts only at a line that is exactly `cpu#N` or `cpu#N, X.Y MHz`, and
//!   sections must come in increasing CPU order, so a name containing `cpu#3` cannot
//!   redirect or reorder sections;
//! * a comm holding newlines (any user can set one) is read whole: the kernel prints it as
//!   exactly 15 bytes, so the name field is found by byte offset across the lines it spans
//!   ([`line::decode_spanning`]), and no piece of a name is ever read as a line of its own
//!   (a task line, a `cpu#` header, the blank line that ends a table);
//! * any other damaged line inside a table costs that one task: it is skipped (its number is
//!   kept in [`SchedDebug::skipped_lines`]) and the table goes on. Kernels end every table
//!   with a blank line; excerpts pasted into mails and bug reports often lose it, so a `cpu#N`
//!   header inside a table also ends it, but only when it cannot be a piece of a damaged line:
//!   the line before it was read whole, N comes after the last CPU, and CPU N's own
//!   `runnable tasks:` line follows before any other header or task line (see
//!   `header_ending_table`). Otherwise it is damage too, never a section. A record whose name
//!   spans lines and that is damaged as well may cost the rest of its table (an empty line
//!   among its pieces reads as the table's end). (A cgroup path, the last column, could hold
//!   newlines on old kernels, before cgroup names refused them: lines forged that way are not
//!   defended against);
//! * what a task line says is only believed on its own when the line stands alone: the first
//!   task after a skipped line, and a record whose name spans lines, are marked
//!   [`ParsedTask::verify`], and the backend checks their pid, state, CPU and switch count
//!   against `/proc` (taking name and prio from there) before anything acts on them, so even
//!   a line forged from a damaged one cannot make stalld boost a task that is not waiting on
//!   that CPU; such a line never names the CPU's current task;
//! * a file that ends without a newline was cut short: a cut task line is an error unless
//!   its prio is provably complete, a cut header line is an error, and a CPU section without
//!   its task table is an error. A file cut exactly at a line boundary inside the last table
//!   cannot be told from a complete one; the tasks returned are still real ones.
//!
//! Nothing here allocates per line: names are stored inline in [`Comm`] and the vectors of
//! `out` are reused from one call to the next.

mod format;
mod line;
mod replay;

pub use format::Format;
pub use replay::{replay_json, to_json};

use format::{classify_header, HeaderKind};
use line::{CommAlign, Layout, TaskLine};

use crate::task::{Comm, Pid};

/// A task line of a CPU's `runnable tasks:` table whose state is runnable (`R`) or dying (`X`)
/// and which is not the CPU's current task.
///
/// In F0/F1 files, which have no state column, this is every listed task but the current
/// one, with state `R`; see [`Format::has_state_column`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedTask {
    pub pid: Pid,
    pub comm: Comm,
    pub prio: i32,
    pub switches: u64,
    /// The state letter: `b'R'` or `b'X'`.
    pub state: u8,
    /// The line did not stand alone (the name spanned lines, or the line came right after a
    /// skipped one): check its claims against `/proc` before believing them.
    pub verify: bool,
}

/// One `cpu#N` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParsedCpu {
    /// The CPU number; in an excerpt without `cpu#` headers, the table's ordinal instead.
    pub cpu: u32,
    /// The task marked as running (`>R`, or `R` in column 0 in F0/F1).
    pub current_pid: Option<Pid>,
    /// `.rt_nr_running` of the CPU's root `rt_rq`.
    pub rt_nr_running: Option<u64>,
    pub waiting: Vec<ParsedTask>,
}

/// The whole file. Reused across polls: `parse_into` keeps the allocations.
#[derive(Clone, Debug, Default)]
pub struct SchedDebug {
    pub cpus: Vec<ParsedCpu>,
    /// The task-table family, recognised from the file itself.
    pub format: Format,
    /// The text had no `cpu#` headers (only [`parse_excerpt_into`] accepts that): CPU numbers
    /// are ordinals, not CPU ids.
    pub excerpt: bool,
    /// 1-based numbers of the damaged lines inside tables that were skipped, each costing at
    /// most one task.
    pub skipped_lines: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("sched_debug line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    pub message: String,
}

/// Parses a complete `sched_debug` text into `out`, replacing its previous content. On error
/// `out` is left empty.
pub fn parse_into(text: &[u8], out: &mut SchedDebug) -> Result<(), ParseError> {
    parse(text, out, false)
}

/// Like [`parse_into`], but also accepts pieces of a file as they are pasted into mails and
/// bug reports: `runnable tasks:` tables without a `cpu#` header, or bare task lines in a
/// family with a state column (the family is then guessed from the lines' shape).
pub fn parse_excerpt_into(text: &[u8], out: &mut SchedDebug) -> Result<(), ParseError> {
    parse(text, out, true)
}

fn parse(text: &[u8], out: &mut SchedDebug, excerpt_ok: bool) -> Result<(), ParseError> {
    let mut result = Parser::new(out, excerpt_ok, false).run(text);
    if excerpt_ok && matches!(result, Ok(false)) {
        // No section and no table at all: try the text as bare task lines.
        result = Parser::new(out, true, true).run(text);
    }
    match result {
        Ok(true) => Ok(()),
        Ok(false) => Err(ParseError {
            line: line_count(text).max(1),
            message: "no cpu# section found (not a sched_debug file?)".into(),
        }),
        Err(error) => {
            out.cpus.clear();
            out.format = Format::Unknown;
            out.excerpt = false;
            out.skipped_lines.clear();
            Err(error)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between tables: section headers, `rt_rq` blocks and everything else.
    Outside,
    /// The line after `runnable tasks:`.
    Header,
    /// The line after the header: the dash divider.
    Divider,
    Rows,
}

struct Parser<'o> {
    out: &'o mut SchedDebug,
    /// Entries of `out.cpus` filled by this run; the rest are stale and truncated at the end.
    used: usize,
    excerpt_ok: bool,
    /// Every non-blank line must be a task line (an excerpt with no table header).
    bare: bool,
    state: State,
    line_no: usize,
    header: Option<HeaderKind>,
    format: Format,
    layout: Layout,
    align: CommAlign,
    /// The last section (`out.cpus[used - 1]`) is still open.
    section_open: bool,
    section_has_table: bool,
    /// Sections opened by tables outside any `cpu#` section.
    anonymous: bool,
    last_cpu: Option<u32>,
    in_root_rt: bool,
    task_lines: usize,
    /// A line of the current table was skipped: the next task line may be what is left of it.
    resync: bool,
}

impl<'o> Parser<'o> {
    fn new(out: &'o mut SchedDebug, excerpt_ok: bool, bare: bool) -> Parser<'o> {
        Parser {
            out,
            used: 0,
            excerpt_ok,
            bare,
            state: if bare { State::Rows } else { State::Outside },
            line_no: 0,
            header: None,
            format: Format::Unknown,
            layout: Layout::TreeKeyOrEevdf,
            align: CommAlign::Auto,
            section_open: false,
            section_has_table: false,
            anonymous: false,
            last_cpu: None,
            in_root_rt: false,
            task_lines: 0,
            resync: false,
        }
    }

    /// Returns whether anything was found (a section, a table or, in bare mode, a task line).
    fn run(mut self, text: &[u8]) -> Result<bool, ParseError> {
        if self.bare {
            self.anonymous = true;
            self.push_section(0);
            self.section_has_table = true;
        }
        self.out.skipped_lines.clear();
        let mut rest = text;
        while !rest.is_empty() {
            self.line_no += 1;
            let (line, terminated, next) = match find_newline(rest) {
                Some(end) => (&rest[..end], true, &rest[end + 1..]),
                None => (rest, false, &rest[rest.len()..]),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            rest = match self.line(line, terminated, rest)? {
                // A record whose name spans lines: skip past all of them.
                Some(end) => {
                    self.line_no += rest[..end].iter().filter(|&&b| b == b'\n').count();
                    rest.get(end + 1..).unwrap_or_default()
                }
                None => next,
            };
        }
        self.finish()
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line_no,
            message: message.into(),
        }
    }

    /// Handles one line; `record` is the text from the line's start to the end of the file.
    /// Returns `Some(end)` when a task record spanned several lines, ending at `record[end]`.
    fn line(
        &mut self,
        line: &[u8],
        terminated: bool,
        record: &[u8],
    ) -> Result<Option<usize>, ParseError> {
        match self.state {
            State::Header => {
                if !terminated {
                    return Err(self.error("file ends inside a task table header (truncated?)"));
                }
                let kind = classify_header(line).ok_or_else(|| {
                    self.error("unrecognised runnable tasks header (unknown kernel format?)")
                })?;
                self.set_header(kind)?;
                self.state = State::Divider;
                return Ok(None);
            }
            State::Divider => {
                self.state = State::Rows;
                if !line.is_empty() && line.iter().all(|&b| b == b'-') {
                    if !terminated {
                        return Err(
                            self.error("file ends inside a task table divider (truncated?)")
                        );
                    }
                    return Ok(None);
                }
                // Kernels always print the divider, but a pasted table may lack it.
                return self.line(line, terminated, record);
            }
            State::Rows => {
                // A blank marker column may begin an F0/F1 record whose name starts with a
                // newline, so the record is tried before the blank line ends the table.
                if line::is_task_shaped(line, self.layout) {
                    if let Some(end) = self.task(line, terminated, record)? {
                        return Ok(end);
                    }
                }
                if is_blank(line) {
                    if !terminated && !line.is_empty() {
                        // Blanks start every task line; an unterminated run of them is a cut one.
                        return Err(self.error("file ends inside a task line (truncated?)"));
                    }
                    if !self.bare {
                        self.state = State::Outside;
                        self.resync = false;
                    }
                    return Ok(None);
                }
                if line::is_task_shaped(line, self.layout) {
                    return Ok(None); // skipped by `task`
                }
                if self.bare {
                    return Err(self.error("not a task line"));
                }
                if let Some(cpu) = self.header_ending_table(line, terminated, record) {
                    // A table pasted without the blank line that ends it: the next CPU.
                    self.state = State::Outside;
                    self.resync = false;
                    self.open_cpu(cpu)?;
                    return Ok(None);
                }
                // Anything else here is damage (maybe a piece of a split line, which may look
                // like a `cpu#` header), and the table goes on.
                self.skip();
                return Ok(None);
            }
            State::Outside => {}
        }
        self.outside(line, terminated)?;
        Ok(None)
    }

    /// A `cpu#N` header that ends the table it stands in, as in an excerpt pasted without the
    /// blank line every kernel ends a table with. A piece of a damaged line may look like a
    /// header too, so it counts only when the line before it was read whole (a name's pieces
    /// are never lines: [`line::decode_spanning`] reads them with their record), when CPU N
    /// comes after the last one, and when CPU N's own `runnable tasks:` table follows before
    /// any other header or task line (what follows a piece of a split line is the rest of
    /// its table, or the blank line that ends it and the next real section).
    fn header_ending_table(&self, line: &[u8], terminated: bool, record: &[u8]) -> Option<u32> {
        if !terminated || self.resync || self.anonymous {
            return None;
        }
        let cpu = cpu_header(line)?;
        if self.last_cpu.is_some_and(|last| cpu <= last) {
            return None;
        }
        let after = &record[find_newline(record)? + 1..];
        for next in after.split(|&b| b == b'\n') {
            let next = next.strip_suffix(b"\r").unwrap_or(next);
            if cpu_header(next).is_some() {
                return None;
            }
            if trim_end(next) == b"runnable tasks:" {
                return Some(cpu);
            }
            if line::is_task_shaped(next, self.layout)
                && line::decode(next, self.layout, self.align).is_ok()
            {
                return None;
            }
        }
        None
    }

    fn skip(&mut self) {
        self.out.skipped_lines.push(self.line_no);
        self.resync = true;
    }

    fn set_header(&mut self, kind: HeaderKind) -> Result<(), ParseError> {
        match self.header {
            Some(first) if first == kind => return Ok(()),
            Some(_) => {
                return Err(self.error("task table header differs from the file's first one"))
            }
            None => self.header = Some(kind),
        }
        (self.format, self.layout, self.align) = match kind {
            HeaderKind::NoState(format) => (format, Layout::NoState, CommAlign::Auto),
            HeaderKind::TreeKeyGlued => (Format::F2, Layout::TreeKey, CommAlign::Glued),
            // F3 or F4: the first task line tells.
            HeaderKind::TreeKeySpaced => (Format::F3, Layout::TreeKeyOrEevdf, CommAlign::Auto),
            HeaderKind::Eevdf => (Format::F5, Layout::Eevdf, CommAlign::Spaced),
        };
        Ok(())
    }

    /// A task-shaped line: decoded alone, or as the first line of a record whose name spans
    /// lines, or skipped. `Ok(Some(Some(end)))`: a spanning record ended at `record[end]`;
    /// `Ok(Some(None))`: the line was a task; `Ok(None)`: it was not (skipped, or blank).
    fn task(
        &mut self,
        line: &[u8],
        terminated: bool,
        record: &[u8],
    ) -> Result<Option<Option<usize>>, ParseError> {
        let error = match line::decode(line, self.layout, self.align) {
            Ok(task) => {
                if !terminated && !task.more_after_prio {
                    return Err(self.error("file ends inside a task line (truncated?)"));
                }
                let verify = std::mem::take(&mut self.resync);
                self.add_task(&task, verify);
                return Ok(Some(None));
            }
            Err(error) => error,
        };
        if let Some((task, end)) = line::decode_spanning(record, self.layout, self.align) {
            if end == record.len() && !task.more_after_prio {
                return Err(self.error("file ends inside a task line (truncated?)"));
            }
            self.resync = false;
            self.add_task(&task, true);
            return Ok(Some(Some(end)));
        }
        if is_blank(line) {
            return Ok(None);
        }
        if !terminated {
            // The file was cut short inside this line: an error, as for any cut file.
            return Err(self.error(error));
        }
        self.skip();
        Ok(None)
    }

    fn add_task(&mut self, task: &TaskLine, verify: bool) {
        self.learn_format(task);
        self.task_lines += 1;
        let cpu = &mut self.out.cpus[self.used - 1];
        if task.current {
            // Two `>R` lines can only come from a racy read; keep the first, count neither.
            // A line that does not stand alone cannot say which task owns the CPU.
            if !verify {
                cpu.current_pid.get_or_insert(task.pid);
            }
        } else if matches!(task.state, b'R' | b'X') {
            cpu.waiting.push(ParsedTask {
                pid: task.pid,
                comm: task.comm,
                prio: task.prio,
                switches: task.switches,
                state: task.state,
                verify,
            });
        }
    }

    /// Settles the family from a data line where the header could not.
    fn learn_format(&mut self, task: &TaskLine) {
        if self.layout != Layout::TreeKeyOrEevdf && !(self.bare && self.format == Format::F2OrF3) {
            return;
        }
        if task.eevdf {
            self.layout = Layout::Eevdf;
            // Without a header only the spacing tells them apart: ` %c ` in F4, `   %c   ` in F5.
            self.format = if self.header.is_none() && task.eligible_gap >= 3 {
                Format::F5
            } else {
                Format::F4
            };
            self.align = if self.format == Format::F4 {
                CommAlign::Glued
            } else {
                CommAlign::Spaced
            };
            return;
        }
        self.layout = Layout::TreeKey;
        if self.header.is_some() {
            self.format = Format::F3;
            self.align = CommAlign::Spaced;
            return;
        }
        (self.format, self.align) = match task.glued {
            Some(true) => (Format::F2, CommAlign::Glued),
            Some(false) => (Format::F3, CommAlign::Spaced),
            None => (Format::F2OrF3, CommAlign::Auto),
        };
    }

    fn outside(&mut self, line: &[u8], terminated: bool) -> Result<(), ParseError> {
        if let Some(cpu) = cpu_header(line) {
            if !terminated {
                return Err(self.error("file ends inside a cpu# header (truncated?)"));
            }
            return self.open_cpu(cpu);
        }
        if line.first() != Some(&b' ') {
            // Any unindented line starts another block (or is a blank line between blocks).
            self.in_root_rt = false;
        }
        if let Some(rest) = line.strip_prefix(b"rt_rq[") {
            self.in_root_rt =
                self.section_open && !self.anonymous && root_rt_rq(rest) == self.last_cpu;
            return Ok(());
        }
        if self.in_root_rt {
            if let Some(value) = property(line, b".rt_nr_running") {
                if !terminated {
                    return Err(self.error("file ends inside the .rt_nr_running line (truncated?)"));
                }
                let value = line::parse_u64(value)
                    .ok_or_else(|| self.error(".rt_nr_running is not a number"))?;
                self.out.cpus[self.used - 1]
                    .rt_nr_running
                    .get_or_insert(value);
            }
            return Ok(());
        }
        if trim_end(line) == b"runnable tasks:" {
            return self.open_table();
        }
        Ok(())
    }

    fn open_cpu(&mut self, cpu: u32) -> Result<(), ParseError> {
        self.close_section()?;
        if self.anonymous {
            return Err(self.error("cpu# header after a task table that had none"));
        }
        if let Some(last) = self.last_cpu {
            if cpu <= last {
                return Err(self.error(format!(
                    "cpu#{cpu} follows cpu#{last}: sections repeated or out of order"
                )));
            }
        }
        self.last_cpu = Some(cpu);
        self.push_section(cpu);
        Ok(())
    }

    fn open_table(&mut self) -> Result<(), ParseError> {
        self.resync = false;
        let anonymous_next = self.anonymous && self.section_has_table;
        if !self.section_open || anonymous_next {
            if !self.excerpt_ok || self.last_cpu.is_some() {
                return Err(self.error("runnable tasks table outside any cpu# section"));
            }
            self.anonymous = true;
            let ordinal = u32::try_from(self.used).unwrap_or(u32::MAX);
            self.push_section(ordinal);
        } else if self.section_has_table {
            return Err(self.error("second runnable tasks table in one cpu# section"));
        }
        self.section_has_table = true;
        self.state = State::Header;
        Ok(())
    }

    fn push_section(&mut self, cpu: u32) {
        if let Some(slot) = self.out.cpus.get_mut(self.used) {
            slot.cpu = cpu;
            slot.current_pid = None;
            slot.rt_nr_running = None;
            slot.waiting.clear();
        } else {
            self.out.cpus.push(ParsedCpu {
                cpu,
                ..ParsedCpu::default()
            });
        }
        self.used += 1;
        self.section_open = true;
        self.section_has_table = false;
        self.in_root_rt = false;
    }

    fn close_section(&mut self) -> Result<(), ParseError> {
        if self.section_open && !self.section_has_table {
            let cpu = self.out.cpus[self.used - 1].cpu;
            return Err(self.error(format!(
                "cpu#{cpu} section has no runnable tasks table (truncated or not a sched_debug file?)"
            )));
        }
        Ok(())
    }

    fn finish(mut self) -> Result<bool, ParseError> {
        match self.state {
            State::Header => {
                return Err(self.error("file ends before the task table header (truncated?)"))
            }
            State::Divider => {
                return Err(self.error("file ends before the task table divider (truncated?)"))
            }
            State::Rows | State::Outside => {}
        }
        self.close_section()?;
        let found = if self.bare {
            self.task_lines > 0
        } else {
            self.used > 0
        };
        if !found {
            self.out.cpus.clear();
            return Ok(false);
        }
        self.out.cpus.truncate(self.used);
        self.out.format = self.format;
        self.out.excerpt = self.anonymous;
        Ok(true)
    }
}

/// `cpu#N` alone, or `cpu#N, D.DDD MHz` (x86); anything else on the line disqualifies it.
fn cpu_header(line: &[u8]) -> Option<u32> {
    let rest = line.strip_prefix(b"cpu#")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let cpu = u32::try_from(line::parse_u64(&rest[..digits])?).ok()?;
    let tail = trim_end(&rest[digits..]);
    if tail.is_empty() {
        return Some(cpu);
    }
    let mhz = tail.strip_prefix(b", ")?.strip_suffix(b" MHz")?;
    let (whole, fraction) = mhz.split_at(mhz.iter().position(|&b| b == b'.')?);
    (line::parse_u64(whole).is_some() && line::parse_u64(&fraction[1..]).is_some()).then_some(cpu)
}

/// For the text after `rt_rq[`: the CPU number if this is a root block (`N]:` or `N]:/`).
fn root_rt_rq(rest: &[u8]) -> Option<u32> {
    let close = rest.iter().position(|&b| b == b']')?;
    let cpu = u32::try_from(line::parse_u64(&rest[..close])?).ok()?;
    matches!(trim_end(&rest[close + 1..]), b":" | b":/").then_some(cpu)
}

/// The value of an indented `  .name   : value` line.
fn property<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let start = line.iter().position(|&b| b != b' ')?;
    let after = line[start..].strip_prefix(name)?;
    let after = trim_start(after).strip_prefix(b":")?;
    Some(trim_end(trim_start(after)))
}

fn line_count(text: &[u8]) -> usize {
    let newlines = text.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(!text.is_empty() && !text.ends_with(b"\n"))
}

/// The first `\n`, eight bytes at a time: finding line ends is most of the work on the long
/// lines of recent kernels.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word) ^ (ONES * u64::from(b'\n'));
        // Bit 7 of each byte that was `\n` (and maybe of later bytes: only the lowest counts).
        let zero_bytes = word.wrapping_sub(ONES) & !word & HIGHS;
        if zero_bytes != 0 {
            return Some(offset + (zero_bytes.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n')
        .map(|i| offset + i)
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| b == b' ' || b == b'\t')
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod find_newline_tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn same_as_a_plain_search(bytes in prop::collection::vec(prop_oneof![Just(b'\n'), Just(0x8a_u8), Just(0x0b), any::<u8>()], 0..40)) {
            prop_assert_eq!(super::find_newline(&bytes), bytes.iter().position(|&b| b == b'\n'));
        }
    }
}
