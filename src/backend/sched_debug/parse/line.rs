//! Decoding one task line of a `runnable tasks:` table.
//!
//! The name is found by column, never by word: the kernel prints it right-aligned in a
//! 15-character field (`%15s`), it may contain blanks, and in some families a 15-character
//! name touches the state letter. Everything after the PID is found by word, following the
//! family's data layout rather than the header, because the 6.6–6.11 header lies.

use super::format::Words;
use crate::task::{Comm, Pid};

/// How the words after the PID are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Layout {
    /// F0/F1: marker column, name, PID, tree-key, switches, prio.
    NoState,
    /// F2/F3: state column, name, PID, tree-key, switches, prio.
    TreeKey,
    /// F4/F5: state column, name, PID, [weight,] vruntime, E|N, deadline, [S,] slice,
    /// sum-exec, switches, prio.
    Eevdf,
    /// An F3 header whose data may turn out to be F4's: decided by the line itself.
    TreeKeyOrEevdf,
}

/// Which 15-column field holds the name in the families with a state column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CommAlign {
    /// Columns 2..=16, right after the state letter (F2, F4).
    Glued,
    /// Columns 3..=17, after a blank (F3, F5).
    Spaced,
    /// Family unknown yet: glued when column 17 is blank, else spaced.
    Auto,
}

/// What one task line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct TaskLine {
    pub pid: Pid,
    pub comm: Comm,
    pub prio: i32,
    pub switches: u64,
    /// The state letter (`b'R'` for the current task and for every F0/F1 task).
    pub state: u8,
    pub current: bool,
    /// The data carried EEVDF columns.
    pub eevdf: bool,
    /// Blanks between vruntime and the E/N token: 1 in F4, 3 in F5.
    pub eligible_gap: usize,
    /// The name field was the glued one; `None` when both readings gave the same name.
    pub glued: Option<bool>,
    /// Something follows the prio word, so the prio cannot have been cut short.
    pub more_after_prio: bool,
}

/// Whether a line inside a table has the shape of a task line at all; anything else ends
/// the table (it is the next section, or text that is not part of the file).
pub(super) fn is_task_shaped(line: &[u8], layout: Layout) -> bool {
    match (layout, line) {
        (Layout::NoState, [b' ' | b'R', ..]) => true,
        (Layout::NoState, _) => false,
        (_, [b'>', ..]) => true,
        (_, [b' ', state, ..]) => state.is_ascii_alphabetic(),
        _ => false,
    }
}

pub(super) fn decode(
    line: &[u8],
    layout: Layout,
    align: CommAlign,
) -> Result<TaskLine, &'static str> {
    let (current, state, name_end, glued) = name_field(line, layout, align)?;
    let field = &line[name_end - 15..name_end];
    // Leading blanks are padding; a name that really starts with blanks cannot be told apart.
    let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
    let comm = Comm::new(&field[start..]);

    let mut words = Words::new(&line[name_end..]);
    let pid = parse_i32(take(&mut words, "no PID after the name")?)
        .filter(|&pid| pid > 0)
        .ok_or("PID is not a positive number")?;
    let mut key = take(&mut words, "line ends after the PID")?;
    if layout == Layout::Eevdf && is_uint(key) {
        // The proposed weight column between PID and vruntime.
        key = take(&mut words, "line ends after the weight")?;
    }
    if !is_float(key) {
        return Err("no tree-key/vruntime value after the PID");
    }
    let mut eevdf = false;
    let mut eligible_gap = 0;
    let mut switches_word = None;
    if matches!(layout, Layout::Eevdf | Layout::TreeKeyOrEevdf) {
        eligible_gap = words.gap();
        let word = take(&mut words, "line ends after the vruntime")?;
        if word == b"E" || word == b"N" {
            eevdf = true;
            expect_float(
                take(&mut words, "line ends after the eligibility flag")?,
                "no deadline value",
            )?;
            let mut slice = take(&mut words, "line ends after the deadline")?;
            // The custom-slice marker is printed only for tasks that set their own slice.
            if slice == b"S" {
                slice = take(&mut words, "line ends after the custom-slice marker")?;
            }
            expect_float(slice, "no slice value after the deadline")?;
            expect_float(
                take(&mut words, "line ends after the slice")?,
                "no sum-exec value",
            )?;
        } else if layout == Layout::Eevdf {
            return Err("no E/N eligibility flag after the vruntime");
        } else {
            switches_word = Some(word);
        }
    }
    let switches_word = match switches_word {
        Some(word) => word,
        None => take(&mut words, "line ends before the switch count")?,
    };
    let switches = parse_u64(switches_word).ok_or("switch count is not a number")?;
    let prio = parse_i32(take(&mut words, "line ends before the prio")?)
        .filter(|prio| (-1..=139).contains(prio))
        .ok_or("prio is not a number in -1..=139")?;
    Ok(TaskLine {
        pid,
        comm,
        prio,
        switches,
        state,
        current,
        eevdf,
        eligible_gap,
        glued,
        more_after_prio: !words.at_end(),
    })
}

/// The last byte the name field can cover is column 17 (the spaced families: marker, blank,
/// 15 name bytes); from column 18 on a task line holds only the kernel's own numbers.
const NAME_FIELD_END_MAX: usize = 18;

/// Decodes a task record whose name holds newlines (`prctl(PR_SET_NAME)` takes any byte but
/// NUL). `text` starts at the record's first line and runs to the end of the file.
///
/// The kernel prints the name as exactly 15 bytes (`%15s`), newlines included, so the name
/// field is found by byte offset across the lines it spans, and everything after it (PID,
/// times, switches, prio) is the kernel's, on the record's last line. A name therefore never
/// becomes a line of its own: not a task line, not a `cpu#` header, not the end of a table.
///
/// Returns the task and where the record ends (its final newline, or the end of `text`);
/// `None` when `text` does not start with such a record.
pub(super) fn decode_spanning(
    text: &[u8],
    layout: Layout,
    align: CommAlign,
) -> Option<(TaskLine, usize)> {
    let end = text
        .iter()
        .skip(NAME_FIELD_END_MAX)
        .position(|&b| b == b'\n')
        .map_or(text.len(), |i| i + NAME_FIELD_END_MAX);
    let record = &text[..end];
    // Only the name field may hold a newline: not the marker, not the numbers after it
    // (`decode` reads those as words, which a newline would spoil).
    if !record.contains(&b'\n') {
        return None;
    }
    let record = record.strip_suffix(b"\r").unwrap_or(record);
    let task = decode(record, layout, align).ok()?;
    Some((task, end))
}

/// Finds the marker/state and the end of the name field: `(current, state, end, glued)`.
fn name_field(
    line: &[u8],
    layout: Layout,
    align: CommAlign,
) -> Result<(bool, u8, usize, Option<bool>), &'static str> {
    let col = |i: usize| line.get(i).copied();
    if layout == Layout::NoState {
        // The marker column touches the name field: `R` or a blank, then `%15s`.
        let current = match col(0) {
            Some(b'R') => true,
            Some(b' ') => false,
            _ => return Err("task line does not start with 'R' or a blank"),
        };
        if col(16) != Some(b' ') {
            return Err("no blank after the 15-column name field");
        }
        return Ok((current, b'R', 16, None));
    }
    let (current, state) = match (col(0), col(1)) {
        (Some(b'>'), Some(b'R')) => (true, b'R'),
        (Some(b' '), Some(s)) if s.is_ascii_alphabetic() => (false, s),
        _ => return Err("task line does not start with a state letter or '>R'"),
    };
    let glued_fits = col(17) == Some(b' ');
    let spaced_fits = col(2) == Some(b' ') && col(18) == Some(b' ');
    let glued = match align {
        CommAlign::Spaced if spaced_fits => false,
        _ if glued_fits => true,
        _ if spaced_fits => false,
        _ => return Err("name field is not 15 columns wide"),
    };
    // Blanks in both columns 2 and 17 mean a short name that reads the same either way (or a
    // name with a trailing blank): no evidence for either family.
    let evidence = !(col(2) == Some(b' ') && glued_fits);
    Ok((
        current,
        state,
        if glued { 17 } else { 18 },
        evidence.then_some(glued),
    ))
}

fn take<'a>(words: &mut Words<'a>, missing: &'static str) -> Result<&'a [u8], &'static str> {
    words.next().map(|(_, word)| word).ok_or(missing)
}

fn expect_float(word: &[u8], message: &'static str) -> Result<(), &'static str> {
    if is_float(word) {
        Ok(())
    } else {
        Err(message)
    }
}

/// `%Ld.%06ld` as the kernel prints nanoseconds: optional minus, digits, dot, digits.
fn is_float(word: &[u8]) -> bool {
    let digits = word.strip_prefix(b"-").unwrap_or(word);
    match digits.iter().position(|&b| b == b'.') {
        Some(dot) => is_uint(&digits[..dot]) && is_uint(&digits[dot + 1..]),
        None => false,
    }
}

fn is_uint(word: &[u8]) -> bool {
    !word.is_empty() && word.iter().all(u8::is_ascii_digit)
}

pub(super) fn parse_u64(word: &[u8]) -> Option<u64> {
    if !is_uint(word) {
        return None;
    }
    word.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn parse_i32(word: &[u8]) -> Option<i32> {
    let (negative, digits) = match word.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, word),
    };
    let magnitude = i64::try_from(parse_u64(digits)?).ok()?;
    i32::try_from(if negative { -magnitude } else { magnitude }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str, layout: Layout, align: CommAlign) -> TaskLine {
        decode(line.as_bytes(), layout, align).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_i32(b"-1"), Some(-1));
        assert_eq!(parse_i32(b"-"), None);
        assert_eq!(parse_i32(b"2147483648"), None);
        assert_eq!(parse_i32(b"-2147483648"), Some(i32::MIN));
        assert!(is_float(b"-1.048576"));
        assert!(!is_float(b"1."));
        assert!(!is_float(b".5"));
        assert!(!is_float(b"E"));
    }

    #[test]
    fn glued_and_spaced_names() {
        let glued = ok(
            " Iext4-rsv-conver   300      2765.314623         2   100 ",
            Layout::TreeKey,
            CommAlign::Glued,
        );
        assert_eq!(
            (glued.pid, glued.comm.as_bytes(), glued.switches, glued.prio),
            (300, &b"ext4-rsv-conver"[..], 2, 100)
        );
        assert_eq!(glued.glued, Some(true));
        // The same line read with the other family's preference still finds the glued name.
        assert_eq!(
            ok(
                " Iext4-rsv-conver   300      2765.314623         2   100",
                Layout::TreeKey,
                CommAlign::Spaced
            )
            .pid,
            300
        );
        let spaced = ok(
            " S irq/10-ACPI:Ged   829         0.000000         3    49",
            Layout::TreeKey,
            CommAlign::Glued,
        );
        assert_eq!(
            (spaced.pid, spaced.comm.as_bytes(), spaced.glued),
            (829, &b"irq/10-ACPI:Ged"[..], Some(false))
        );
        assert!(!spaced.more_after_prio);
    }

    #[test]
    fn eevdf_with_custom_slice_and_blank_name() {
        let line = " S           sleep 12111       572.227168   E         572.339120 S         1.400000         0.588048         2     120         0.000000";
        let task = ok(line, Layout::Eevdf, CommAlign::Spaced);
        assert_eq!(
            (task.pid, task.switches, task.prio, task.eligible_gap),
            (12111, 2, 120, 3)
        );
        let line = " S   rs:main Q:Reg 12110      1349.573534   E        1350.955280           1.400000        34.884733         2     120 ";
        let task = ok(line, Layout::Eevdf, CommAlign::Spaced);
        assert_eq!(
            (task.comm.as_bytes(), task.pid),
            (&b"rs:main Q:Reg"[..], 12110)
        );
    }

    #[test]
    fn rejects() {
        let bad = [
            (
                " S           sleep     0       1.0   E  1.0  1.0  1.0  2  120",
                Layout::Eevdf,
            ),
            (
                " S           sleep    12       1.0   X  1.0  1.0  1.0  2  120",
                Layout::Eevdf,
            ),
            (
                " S           sleep    12       1.0   E  1.0  1.0  1.0  2  140",
                Layout::Eevdf,
            ),
            (
                " S           sleep    12       1.0   E  1.0  1.0  1.0  2",
                Layout::Eevdf,
            ),
            (
                " S           sleep    12       1.0        2  ",
                Layout::TreeKey,
            ),
            (" S           sleep", Layout::TreeKey),
            (" Sabcdefghijklmnopq   12       1.0 2 120", Layout::TreeKey),
            ("X           sleep    12       1.0 2 120", Layout::NoState),
            ("", Layout::NoState),
            ("", Layout::Eevdf),
        ];
        for (line, layout) in bad {
            assert!(
                decode(line.as_bytes(), layout, CommAlign::Auto).is_err(),
                "{line:?}"
            );
        }
    }
}
