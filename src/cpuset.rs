//! Sets of CPU numbers and the `0,2-5` list syntax of `-c` and `-a`.

use std::fmt;

/// A set of CPU numbers, kept sorted and without duplicates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuSet {
    cpus: Vec<u32>,
}

impl CpuSet {
    /// CPUs `0..count`.
    pub fn first_n(count: u32) -> CpuSet {
        CpuSet {
            cpus: (0..count).collect(),
        }
    }

    /// Parses `N`, `N-M` and comma-separated lists of them; every CPU must be below `limit`
    /// (the number of configured CPUs). Returns `None` for anything else.
    pub fn parse_list(list: &str, limit: u32) -> Option<CpuSet> {
        let mut cpus = Vec::new();
        for item in list.split(',') {
            let item = item.trim();
            let (first, last) = match item.split_once('-') {
                Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
                None => {
                    let cpu = item.parse::<u32>().ok()?;
                    (cpu, cpu)
                }
            };
            if first > last || last >= limit {
                return None;
            }
            cpus.extend(first..=last);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Some(CpuSet { cpus })
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.cpus.binary_search(&cpu).is_ok()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.cpus.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.cpus.is_empty()
    }

    pub fn max(&self) -> Option<u32> {
        self.cpus.last().copied()
    }
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for cpu in &self.cpus {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{cpu}")?;
        }
        Ok(())
    }
}

/// Number of CPUs the kernel was configured for (`_SC_NPROCESSORS_CONF`), as upstream uses.
/// `possible` lists every CPU the kernel could bring online, e.g. "0-7".
pub fn configured_cpus() -> u32 {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|text| CpuSet::parse_list(text.trim(), u32::MAX))
        .and_then(|set| set.max())
        .map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            |max| max + 1,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        let set = CpuSet::parse_list("3,0-1,1", 4).unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(set.to_string(), "0,1,3");
    }

    #[test]
    fn rejects_out_of_range_reversed_and_garbage() {
        assert_eq!(CpuSet::parse_list("4", 4), None);
        assert_eq!(CpuSet::parse_list("2-1", 4), None);
        assert_eq!(CpuSet::parse_list("1,x", 4), None);
        assert_eq!(CpuSet::parse_list("", 4), None);
        assert_eq!(CpuSet::parse_list("-1", 4), None);
    }
}
