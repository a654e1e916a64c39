//! The task-table format families and how to recognise them from a table's header line.
//!
//! The header alone is not enough: kernels 6.6–6.11 kept the 5.8 header while printing EEVDF
//! columns, so the header only narrows the choice and the first task line settles it (see
//! [`HeaderKind`]).

use std::fmt;

/// The family of the `runnable tasks:` table layout, as listed in the fixtures' `SOURCES.md`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// Nothing parsed yet.
    #[default]
    Unknown,
    /// ≤3.12: no state column, `R` in column 0 marks the current task, `exec-runtime` title.
    F0,
    /// ~3.13–4.13: as F0 with a `wait-time` title; the table also lists sleeping tasks.
    F1,
    /// ~4.14–5.7: state column, 15-character names glued to the state letter.
    F2,
    /// 5.8–6.5: state column, names always separated from it.
    F3,
    /// 6.6–6.11: the F3 header over EEVDF data columns (the header lies about them).
    F4,
    /// 6.12+: EEVDF header and data, optional custom-slice `S` token.
    F5,
    /// Bare task lines without a header whose names do not tell F2 from F3 apart; both
    /// families lay the extracted fields out the same way.
    F2OrF3,
}

impl Format {
    /// The kernel families, oldest first.
    pub const FAMILIES: [Format; 6] = [
        Format::F0,
        Format::F1,
        Format::F2,
        Format::F3,
        Format::F4,
        Format::F5,
    ];

    /// Whether the table prints each task's state. Without it (F0, F1) every listed task
    /// other than the current one is reported as waiting with state `R`; since F1 kernels
    /// also list sleeping tasks, the caller must confirm the state elsewhere
    /// (`/proc/PID/stat`).
    pub fn has_state_column(self) -> bool {
        !matches!(self, Format::F0 | Format::F1)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Unknown => "unknown",
            Format::F0 => "F0 (<=3.12)",
            Format::F1 => "F1 (3.13-4.13)",
            Format::F2 => "F2 (4.14-5.7)",
            Format::F3 => "F3 (5.8-6.5)",
            Format::F4 => "F4 (6.6-6.11)",
            Format::F5 => "F5 (6.12+)",
            Format::F2OrF3 => "F2/F3 (4.14-6.5)",
        })
    }
}

/// What a header line says about the data lines below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HeaderKind {
    /// F0/F1: `task PID tree-key switches prio ...`, no state column.
    NoState(Format),
    /// F2: ` S` + `task` right-aligned to column 16.
    TreeKeyGlued,
    /// F3, or F4 when the data carries EEVDF columns: `task` right-aligned to column 17.
    TreeKeySpaced,
    /// F5: `vruntime eligible deadline ...` titles.
    Eevdf,
}

/// Classifies a task-table header line; `None` if it is none of the known families.
pub(super) fn classify_header(line: &[u8]) -> Option<HeaderKind> {
    let mut words = Words::new(line);
    let first = words.next()?;
    if first.1 == b"task" {
        let rest = [
            words.next()?.1,
            words.next()?.1,
            words.next()?.1,
            words.next()?.1,
        ];
        if rest != [&b"PID"[..], b"tree-key", b"switches", b"prio"] {
            return None;
        }
        // The 6th title was renamed without any change to the data; it only hints at the age.
        let format = match words.next() {
            Some((_, b"exec-runtime")) => Format::F0,
            _ => Format::F1,
        };
        return Some(HeaderKind::NoState(format));
    }
    if first.1 != b"S" {
        return None;
    }
    let (task_at, task) = words.next()?;
    if task != b"task" || words.next()?.1 != b"PID" {
        return None;
    }
    match words.next()?.1 {
        b"tree-key" => {
            if words.next()?.1 != b"switches" || words.next()?.1 != b"prio" {
                return None;
            }
            // `task` is right-aligned in the comm field, so its last column is the field's.
            Some(if task_at + task.len() - 1 <= 16 {
                HeaderKind::TreeKeyGlued
            } else {
                HeaderKind::TreeKeySpaced
            })
        }
        b"vruntime" => (words.next()?.1 == b"eligible").then_some(HeaderKind::Eevdf),
        // A proposed (unreleased) variant inserts a load weight after PID.
        b"weight" => (words.next()?.1 == b"vruntime" && words.next()?.1 == b"eligible")
            .then_some(HeaderKind::Eevdf),
        _ => None,
    }
}

/// Blank-separated words with their starting column.
pub(super) struct Words<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Words<'a> {
    pub(super) fn new(line: &'a [u8]) -> Words<'a> {
        Words { line, pos: 0 }
    }

    /// The number of blanks before the next word (0 at the end of the line).
    pub(super) fn gap(&self) -> usize {
        self.line[self.pos..]
            .iter()
            .take_while(|&&b| b == b' ')
            .count()
    }

    /// Nothing at all (not even a blank) follows the last word returned.
    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = (usize, &'a [u8]);

    fn next(&mut self) -> Option<(usize, &'a [u8])> {
        let line = self.line;
        let mut start = self.pos;
        while start < line.len() && line[start] == b' ' {
            start += 1;
        }
        let mut end = start;
        while end < line.len() && line[end] != b' ' {
            end += 1;
        }
        self.pos = end;
        (end > start).then(|| (start, &line[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_every_family() {
        let cases: [(&str, HeaderKind); 6] = [
            ("            task   PID         tree-key  switches  prio     exec-runtime         sum-exec        sum-sleep", HeaderKind::NoState(Format::F0)),
            ("            task   PID         tree-key  switches  prio     wait-time             sum-exec        sum-sleep", HeaderKind::NoState(Format::F1)),
            (" S           task   PID         tree-key  switches  prio     wait-time             sum-exec        sum-sleep", HeaderKind::TreeKeyGlued),
            (" S            task   PID         tree-key  switches  prio     wait-time             sum-exec        sum-sleep", HeaderKind::TreeKeySpaced),
            (" S            task   PID       vruntime   eligible    deadline             slice          sum-exec      switches  prio         wait-time        sum-sleep       sum-block  node   group-id  group-path", HeaderKind::Eevdf),
            (" S            task   PID     weight       vruntime   eligible    deadline", HeaderKind::Eevdf),
        ];
        for (line, kind) in cases {
            assert_eq!(classify_header(line.as_bytes()), Some(kind), "{line}");
        }
    }

    #[test]
    fn unknown_headers() {
        for line in [
            "",
            "   ",
            " S task",
            "task PID",
            " S            task   PID   foo",
            "\u{0}",
        ] {
            assert_eq!(classify_header(line.as_bytes()), None, "{line:?}");
        }
    }
}
