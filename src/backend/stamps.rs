//! Where the queue_track backend gets the moment each task was queued, and how an operator
//! (or a test, or a benchmark) forces one source. Pure: the kernel questions ("does this
//! kernel's BTF have `task_struct.sched_info.last_queued`?", "did that source load?") are
//! answered by the caller.

use std::fmt;

use anyhow::bail;

/// The environment variable that forces a stamp source: `sched_info`, `tracepoints` or
/// `auto` (the same as unset).
pub const STAMPS_ENV: &str = "STALLD_QUEUE_TRACK_STAMPS";

/// The clock behind queue_track's enqueue times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StampSource {
    /// The kernel's own `sched_info.last_queued`, read by the task iterator: no program on
    /// any scheduler tracepoint (the default where the kernel has the field and it loads).
    SchedInfo,
    /// stalld's programs on the scheduler tracepoints stamp every enqueue (the fallback).
    Tracepoints,
}

impl StampSource {
    pub const ALL: [StampSource; 2] = [StampSource::SchedInfo, StampSource::Tracepoints];

    /// The short name: the value [`STAMPS_ENV`] takes, and a label for metrics.
    pub fn name(self) -> &'static str {
        match self {
            StampSource::SchedInfo => "sched_info",
            StampSource::Tracepoints => "tracepoints",
        }
    }

    /// Where the times come from, for the `-v` line ("enqueue times from ...").
    pub fn describe(self) -> &'static str {
        match self {
            StampSource::SchedInfo => "the kernel's sched_info",
            StampSource::Tracepoints => "stalld's tracepoints",
        }
    }
}

impl fmt::Display for StampSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the operator asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StampChoice {
    /// The kernel's stamps where its BTF has them and they load, else the tracepoints.
    #[default]
    Auto,
    Force(StampSource),
}

impl StampChoice {
    /// Reads [`STAMPS_ENV`]; unset or empty means [`StampChoice::Auto`].
    pub fn from_env() -> anyhow::Result<StampChoice> {
        match std::env::var(STAMPS_ENV) {
            Ok(value) => StampChoice::parse(&value),
            Err(std::env::VarError::NotPresent) => Ok(StampChoice::Auto),
            Err(std::env::VarError::NotUnicode(value)) => {
                bail!("{STAMPS_ENV}={value:?}: expected sched_info, tracepoints or auto")
            }
        }
    }

    pub fn parse(value: &str) -> anyhow::Result<StampChoice> {
        match value.trim() {
            "" | "auto" => Ok(StampChoice::Auto),
            "sched_info" => Ok(StampChoice::Force(StampSource::SchedInfo)),
            "tracepoints" => Ok(StampChoice::Force(StampSource::Tracepoints)),
            other => bail!("{STAMPS_ENV}={other:?}: expected sched_info, tracepoints or auto"),
        }
    }

    /// The source to load first, given whether the running kernel's BTF has
    /// `task_struct.sched_info.last_queued` (CONFIG_SCHED_INFO). Never by kernel version.
    pub fn resolve(self, kernel_has_last_queued: bool) -> anyhow::Result<StampSource> {
        match self {
            StampChoice::Auto if kernel_has_last_queued => Ok(StampSource::SchedInfo),
            StampChoice::Auto => Ok(StampSource::Tracepoints),
            StampChoice::Force(StampSource::SchedInfo) if !kernel_has_last_queued => bail!(
                "{STAMPS_ENV}=sched_info, but this kernel has no task_struct.sched_info.last_queued \
                 (built without CONFIG_SCHED_INFO)"
            ),
            StampChoice::Force(source) => Ok(source),
        }
    }

    /// The source to load when `failed` did not: only `Auto` tries another, the tracepoint
    /// stamps after the kernel's (a program that only the kernel's stamps have, or a helper
    /// or field only they read, can fail where the tracepoints load). A forced source is what
    /// the operator asked for: its failure is the answer.
    pub fn after_failure(self, failed: StampSource) -> Option<StampSource> {
        match (self, failed) {
            (StampChoice::Auto, StampSource::SchedInfo) => Some(StampSource::Tracepoints),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_rejects_others_clearly() {
        assert_eq!(StampChoice::parse("").unwrap(), StampChoice::Auto);
        assert_eq!(StampChoice::parse("auto").unwrap(), StampChoice::Auto);
        for source in StampSource::ALL {
            assert_eq!(
                StampChoice::parse(source.name()).unwrap(),
                StampChoice::Force(source)
            );
        }
        let err = StampChoice::parse("tracepoint").unwrap_err().to_string();
        assert!(
            err.contains(STAMPS_ENV) && err.contains("expected"),
            "{err}"
        );
    }

    #[test]
    fn auto_prefers_the_kernels_stamps_and_falls_back_to_tracepoints() {
        assert_eq!(
            StampChoice::Auto.resolve(true).unwrap(),
            StampSource::SchedInfo
        );
        assert_eq!(
            StampChoice::Auto.resolve(false).unwrap(),
            StampSource::Tracepoints
        );
    }

    #[test]
    fn forcing_works_where_the_source_exists() {
        let tracepoints = StampChoice::Force(StampSource::Tracepoints);
        assert_eq!(tracepoints.resolve(true).unwrap(), StampSource::Tracepoints);
        assert_eq!(
            tracepoints.resolve(false).unwrap(),
            StampSource::Tracepoints
        );
        let sched_info = StampChoice::Force(StampSource::SchedInfo);
        assert_eq!(sched_info.resolve(true).unwrap(), StampSource::SchedInfo);
        let err = sched_info.resolve(false).unwrap_err().to_string();
        assert!(err.contains("CONFIG_SCHED_INFO"), "{err}");
    }

    #[test]
    fn only_auto_tries_the_tracepoints_after_the_kernels_stamps_failed() {
        assert_eq!(
            StampChoice::Auto.after_failure(StampSource::SchedInfo),
            Some(StampSource::Tracepoints)
        );
        // Nothing after the last resort, and nothing instead of what was forced.
        assert_eq!(
            StampChoice::Auto.after_failure(StampSource::Tracepoints),
            None
        );
        for source in StampSource::ALL {
            for failed in StampSource::ALL {
                assert_eq!(StampChoice::Force(source).after_failure(failed), None);
            }
        }
    }
}
