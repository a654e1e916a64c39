//! The crate's files import each other without a cycle: data and dependencies flow one way
//! (backend → detector → booster under the daemon), and the daemon's parts are layers that
//! import only downwards (see [`DAEMON_LAYERS`]).
//!
//! The imports are read from the sources as text: every `crate::`, `super::` and `self::`
//! path and every path through a child module, resolved to the file that defines its module,
//! following `pub use` re-exports to the file they come from; a path from a module to one of
//! its ancestors is not an arrow (a child implementing its parent's trait). Test code (`#[cfg(test)]` on,
//! `tests.rs` files) is left out: tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path (`["daemon", "log"]`) and the source of its file.
type Modules = BTreeMap<Vec<String>, String>;

fn module_of(relative: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    if parts.first().is_some_and(|top| top == "bin") || stem == "main" || stem == "tests" {
        return None;
    }
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    Some(parts)
}

fn read_modules(dir: &Path, root: &Path, modules: &mut Modules) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_modules(&path, root, modules);
        } else if let Some(module) = module_of(path.strip_prefix(root).unwrap()) {
            let text = std::fs::read_to_string(&path).unwrap();
            // What follows the test module is tests.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let code: String = code
                .lines()
                .map(|line| line.split("//").next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n");
            modules.insert(module, code);
        }
    }
}

/// `use a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e` (each `use` item, flattened).
fn flatten_use(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|item| !item.is_empty())
        .flat_map(|item| flatten_use(&format!("{prefix}{item}")))
        .collect()
}

/// Every `use` path of `code`, and every other path written through `crate`, `super`,
/// `self` or one of `children` (with whether it is a `pub use`).
fn paths(code: &str, children: &BTreeSet<String>) -> Vec<(bool, Vec<String>)> {
    let mut found = Vec::new();
    let mut lines = code.lines();
    while let Some(line) = lines.next() {
        let line = line.trim_start();
        let (public, tree) =
            match ["use ", "pub use ", "pub(crate) use "]
                .iter()
                .find_map(|start| {
                    line.strip_prefix(start)
                        .map(|tree| (*start != "use ", tree))
                }) {
                Some(found) => found,
                None => continue,
            };
        let mut tree = tree.to_owned();
        while !tree.contains(';') {
            match lines.next() {
                Some(more) => tree += more,
                None => break,
            }
        }
        let tree = tree.split(';').next().unwrap_or_default();
        for path in flatten_use(tree) {
            let path = path.split(" as ").next().unwrap_or_default().to_owned();
            found.push((public, path.split("::").map(str::to_owned).collect()));
        }
    }
    let words: Vec<&str> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.contains("::"))
        .collect();
    for word in words {
        let parts: Vec<String> = word
            .split("::")
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect();
        if parts.len() > 1
            && (["crate", "super", "self"].contains(&parts[0].as_str())
                || children.contains(&parts[0]))
        {
            found.push((false, parts));
        }
    }
    found
}

struct Tree {
    modules: Modules,
    /// Per module: the names it re-exports (`pub use`) and the path each comes from.
    reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
}

impl Tree {
    fn children(&self, module: &[String]) -> BTreeSet<String> {
        self.modules
            .keys()
            .filter(|other| other.len() == module.len() + 1 && other.starts_with(module))
            .map(|other| other[module.len()].clone())
            .collect()
    }

    /// The module whose file defines what `path` (written in `from`) names.
    fn resolve(&self, from: &[String], path: &[String], depth: usize) -> Option<Vec<String>> {
        let mut module = from.to_vec();
        let mut segments = path.iter().peekable();
        match segments.peek().map(|s| s.as_str()) {
            Some("crate") => {
                module.clear();
                segments.next();
            }
            Some("self") => {
                segments.next();
            }
            _ => {}
        }
        while segments.peek().map(|s| s.as_str()) == Some("super") {
            module.pop()?;
            segments.next();
        }
        for segment in segments {
            let mut child = module.clone();
            child.push(segment.clone());
            if self.modules.contains_key(&child) {
                module = child;
                continue;
            }
            let reexport = self
                .reexports
                .get(&module)
                .and_then(|names| names.get(segment));
            return match reexport {
                Some(source) if depth < 8 => {
                    self.resolve(&module, source, depth + 1).or(Some(module))
                }
                _ => Some(module),
            };
        }
        Some(module)
    }
}

/// Every import between two files of the crate: module → the modules it imports.
type Edges = BTreeMap<Vec<String>, BTreeSet<Vec<String>>>;

fn crate_imports() -> Edges {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules = Modules::new();
    read_modules(&root, &root, &mut modules);
    assert!(modules.len() > 20, "read {} modules", modules.len());
    let mut tree = Tree {
        modules,
        reexports: BTreeMap::new(),
    };
    let mut imports: BTreeMap<Vec<String>, Vec<(bool, Vec<String>)>> = BTreeMap::new();
    for (module, code) in &tree.modules {
        let found = paths(code, &tree.children(module));
        let names = tree.reexports.entry(module.clone()).or_default();
        for (public, path) in &found {
            if let (true, Some(name)) = (*public, path.last()) {
                names.insert(name.clone(), path.clone());
            }
        }
        imports.insert(module.clone(), found);
    }
    let mut edges = Edges::new();
    for (module, found) in &imports {
        for (_, path) in found {
            if let Some(target) = tree.resolve(module, path, 0) {
                // A path up to an ancestor is the child using its parent's interface (the
                // trait its siblings implement, say): the parent declares the child, they
                // are one unit. Between any other files, an import is an arrow.
                if !module.starts_with(&target) {
                    edges.entry(module.clone()).or_default().insert(target);
                }
            }
        }
    }
    edges
}

fn file(module: &[String]) -> String {
    PathBuf::from(module.join("/")).display().to_string()
}

#[test]
fn no_file_of_the_crate_imports_one_that_imports_it_back() {
    let edges = crate_imports();
    // A cycle: a path of imports from a module back to itself.
    let mut cycles = Vec::new();
    for start in edges.keys() {
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((module, trail)) = stack.pop() {
            for next in edges.get(&module).into_iter().flatten() {
                if next == start {
                    cycles.push(
                        trail
                            .iter()
                            .chain([start])
                            .map(|m| file(m))
                            .collect::<Vec<_>>()
                            .join(" -> "),
                    );
                } else if seen.insert(next.clone()) {
                    let mut longer = trail.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
    // The check sees imports at all: the telemetry imports the logger, the logger never the
    // telemetry.
    let log = module(&["daemon", "log"]);
    let telemetry = module(&["daemon", "observe", "telemetry"]);
    assert!(edges[&telemetry].contains(&log), "{:?}", edges[&telemetry]);
    assert!(!edges[&log].contains(&telemetry));
}

fn module(path: &[&str]) -> Vec<String> {
    path.iter().map(|part| part.to_string()).collect()
}

/// The daemon's layers, from the top: a file may import files of its own part and of the
/// parts on lower rows, never of a part on its own row or above.
///
/// - the daemon's life (`daemon/mod.rs`, `daemon/run.rs`): sets everything below up in order;
/// - `monitor/`: the loop;
/// - `observe/` and `restore/`, side by side: what the operator sees, and what is put back;
///   neither needs the other (the loop feeds both);
/// - `log/`: the logger and its sinks, which every part above writes to;
/// - `process/`: pid file, other instances, signals, run directory, shared directories.
const DAEMON_LAYERS: &[&[&str]] = &[
    &["run"],
    &["monitor"],
    &["observe", "restore"],
    &["log"],
    &["process"],
];

/// The part of the daemon a module belongs to, and that part's row in [`DAEMON_LAYERS`].
fn daemon_part(module: &[String]) -> Option<(&'static str, usize)> {
    if module.first().map(String::as_str) != Some("daemon") {
        return None;
    }
    // `daemon/mod.rs` declares the parts and re-exports what main needs: one part with `run`.
    let part = module.get(1).map_or("run", String::as_str);
    DAEMON_LAYERS.iter().enumerate().find_map(|(row, parts)| {
        parts
            .iter()
            .find(|name| **name == part)
            .map(|name| (*name, row))
    })
}

/// The imports that break the layering: into the daemon from below it (only `main` and the
/// `check` command, beside it, start it), and up or sideways between the daemon's parts.
fn layering_violations(edges: &Edges) -> Vec<String> {
    let mut broken = Vec::new();
    for (from, targets) in edges {
        for to in targets {
            let why = match (daemon_part(from), daemon_part(to)) {
                (None, Some(_)) if from.first().map(String::as_str) != Some("check") => {
                    Some("the daemon is started from main and check only".to_owned())
                }
                (Some((part, row)), Some((other, other_row)))
                    if part != other && row >= other_row =>
                {
                    Some(format!(
                        "{part:?} (row {row}) may not import {other:?} (row {other_row})"
                    ))
                }
                _ => None,
            };
            if let Some(why) = why {
                broken.push(format!("{} -> {}: {why}", file(from), file(to)));
            }
        }
    }
    broken
}

#[test]
fn the_daemons_parts_import_only_those_below_them() {
    let edges = crate_imports();
    // Every module of the daemon is on a layer.
    for module in edges.keys().chain(edges.values().flatten()) {
        if module.first().map(String::as_str) == Some("daemon") {
            assert!(
                daemon_part(module).is_some(),
                "{} is on no layer of DAEMON_LAYERS",
                file(module)
            );
        }
    }
    let broken = layering_violations(&edges);
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
    // The check sees the layers: the loop imports the observers and the restorers, which
    // both import the logger.
    let imports = |from: &[&str], to: &[&str]| edges[&module(from)].contains(&module(to));
    assert!(imports(
        &["daemon", "monitor"],
        &["daemon", "observe", "telemetry"]
    ));
    assert!(imports(
        &["daemon", "monitor"],
        &["daemon", "restore", "guardian"]
    ));
    assert!(imports(
        &["daemon", "restore", "ledger"],
        &["daemon", "log"]
    ));
    assert!(imports(
        &["daemon", "log", "events_file"],
        &["daemon", "process", "shared_dir"]
    ));
}

/// The check fails on each kind of import it forbids.
#[test]
fn imports_up_or_sideways_are_found() {
    let edge = |from: &[&str], to: &[&str]| {
        let mut edges = Edges::new();
        edges.entry(module(from)).or_default().insert(module(to));
        layering_violations(&edges)
    };
    // Down: allowed.
    assert!(edge(&["daemon", "run"], &["daemon", "monitor"]).is_empty());
    assert!(edge(
        &["daemon", "observe", "status"],
        &["daemon", "process", "rundir"]
    )
    .is_empty());
    assert!(edge(
        &["daemon", "observe", "status"],
        &["daemon", "observe", "listen"]
    )
    .is_empty());
    // Up, sideways, and into the daemon from below.
    for (from, to) in [
        (
            &["daemon", "process", "pidfile"][..],
            &["daemon", "log"][..],
        ),
        (&["daemon", "log"], &["daemon", "observe", "telemetry"]),
        (
            &["daemon", "observe", "health"],
            &["daemon", "monitor", "checks"],
        ),
        (
            &["daemon", "restore", "ledger"],
            &["daemon", "observe", "telemetry"],
        ),
        (
            &["daemon", "observe", "telemetry"],
            &["daemon", "restore", "ledger"],
        ),
        (&["daemon", "monitor"], &["daemon", "run"]),
        (&["boost"], &["daemon", "log"]),
    ] {
        assert_eq!(edge(from, to).len(), 1, "{from:?} -> {to:?}");
    }
}
