//! The systemd unit's command line as systemd makes it from an environment file: shared by
//! the tests of the shipped unit (tests/packaging.rs) and of the README's example
//! (tests/readme.rs).

use std::collections::HashMap;

/// `NAME=value` lines of a sysconfig file, with shell quotes removed.
pub fn variables(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_string(), value.trim_matches('"').to_string()))
        .collect()
}

/// The words systemd passes for `ExecStart=` after expanding `$VAR`s (unquoted: split on blanks).
pub fn exec_start_args(unit: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let exec = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("ExecStart");
    exec.split_ascii_whitespace()
        .skip(1)
        .flat_map(|word| match word.strip_prefix('$') {
            Some(name) => vars
                .get(name)
                .unwrap_or_else(|| panic!("ExecStart uses ${name}, which stalld.conf lacks"))
                .split_ascii_whitespace()
                .map(str::to_string)
                .collect(),
            None => vec![word.to_string()],
        })
        .collect()
}
