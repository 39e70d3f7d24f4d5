//! Checks of the source tree itself, without any service running.
//!
//! The documentation stays true to the code and to itself:
//!
//! - every environment variable the service reads (a clap `env = "NAME"` under `src/`, or a
//!   direct `env::var("NAME")` / `var_os("NAME")`) is documented in `docs/configuration.md`,
//!   so that page can be the complete reference operators rely on;
//! - every relative link in `README.md` and `docs/*.md` leads somewhere: the file exists, and a
//!   `#anchor` into a markdown file names one of its headings, as GitHub renders them.
//!
//! And the crate's top-level modules depend on each other one way: no module reaches, through
//! `crate::…` paths, a module that reaches back to it. A cycle is what lets a change anywhere
//! touch everything; the failure names the modules of the cycle and a file of each hop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, at any depth.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The names that follow each of `prefixes` in `text` up to the closing quote, when they look
/// like an environment variable (upper-case letters, digits and `_`).
fn quoted_after(text: &str, prefixes: &[&str], names: &mut BTreeSet<String>) {
    for prefix in prefixes {
        for part in text.split(prefix).skip(1) {
            let Some((name, _)) = part.split_once('"') else {
                continue;
            };
            let looks_like_variable = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if looks_like_variable {
                names.insert(name.to_string());
            }
        }
    }
}

/// The environment variables the service reads, found by scanning its source.
///
/// Only reads are collected: `.env("NAME", …)` on a `Command` sets a variable for a child
/// process (git, debootstrap, the processes the benchmarks start) and matches none of these
/// patterns, so those are left out as they should be. No module under `src/` reads a variable
/// only in its unit tests, so nothing needs excluding on that account.
fn variables_read() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in rust_files(&root().join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        quoted_after(&text, &["env = \"", "env::var(\"", "var_os(\""], &mut names);
    }
    names
}

#[test]
fn every_variable_the_service_reads_is_documented() {
    let read = variables_read();
    // The scan must really find the configuration, or this test would pass on nothing.
    assert!(
        read.contains("DATABASE_URL") && read.contains("DOCKER_HOST") && read.len() > 40,
        "the scan of src/ found only {} variables: {read:?}",
        read.len()
    );
    let page = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let missing: Vec<&String> = read
        .iter()
        .filter(|name| !page.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of the {} variables the service reads are not in docs/configuration.md (as `NAME`): {}",
        missing.len(),
        read.len(),
        missing
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The markdown files whose links are checked: the README and every page under `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

/// The lines of a markdown text outside fenced code blocks, with their numbers (from 1).
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// `line` without its inline code spans, where brackets are not links.
fn without_code_spans(line: &str) -> String {
    line.split('`').step_by(2).collect::<Vec<_>>().join(" ")
}

/// GitHub's anchor of a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c == ' ' {
                Some('-')
            } else if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c)
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a markdown text's headings; a repeated heading gets `-1`, `-2`, … as on
/// GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(&line[hashes..]);
        let count = seen.entry(base.clone()).or_insert(0);
        let anchor = if *count == 0 {
            base.clone()
        } else {
            format!("{base}-{count}")
        };
        *count += 1;
        anchors.insert(anchor);
    }
    anchors
}

/// The targets of the `[text](target)` links of a markdown text, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_code_spans(line);
        for part in line.split("](").skip(1) {
            let Some(end) = part.find(')') else {
                continue;
            };
            // A title after the target (`[a](b "title")`) is not part of it.
            let target = part[..end].split_whitespace().next().unwrap_or("");
            found.push((number, target.to_string()));
        }
    }
    found
}

#[test]
fn every_relative_link_resolves() {
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = file.strip_prefix(root()).unwrap().display().to_string();
        for (line, target) in links(&text) {
            let external = ["http://", "https://", "mailto:"]
                .iter()
                .any(|scheme| target.starts_with(scheme));
            if external || target.is_empty() {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !linked.exists() {
                broken.push(format!("{shown}:{line}: {target}: no such file"));
                continue;
            }
            let Some(anchor) = anchor else {
                continue;
            };
            if linked.extension().is_some_and(|e| e == "md") {
                let headings = anchors(&std::fs::read_to_string(&linked).unwrap());
                if !headings.contains(anchor) {
                    broken.push(format!(
                        "{shown}:{line}: {target}: no heading with the anchor #{anchor}"
                    ));
                }
            }
        }
    }
    assert!(
        checked > 20,
        "only {checked} relative links found: is the link scanner broken?"
    );
    assert!(
        broken.is_empty(),
        "{} broken links:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// The crate's top-level modules, as `src/lib.rs` declares them.
fn top_level_modules() -> BTreeSet<String> {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').trim().to_string())
        .collect()
}

/// The first segment of every `crate::` path in `code`, including each item of a
/// `crate::{a, b::c}` group.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for part in code.split("crate::").skip(1) {
        if let Some(group) = part.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.push(item);
        } else {
            found.push(part.to_string());
        }
    }
    found
        .iter()
        .map(|path| {
            path.trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Which top-level module uses which, with one file of each use. Unit tests (after a
/// `#[cfg(test)]`) are left out: they may use anything.
fn module_uses() -> BTreeMap<String, BTreeMap<String, String>> {
    let modules = top_level_modules();
    let src = root().join("src");
    let mut uses: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let first = relative.split('/').next().unwrap().trim_end_matches(".rs");
        if !modules.contains(first) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for used in crate_paths(code) {
            if used != first && modules.contains(&used) {
                uses.entry(first.to_string())
                    .or_default()
                    .entry(used)
                    .or_insert_with(|| relative.clone());
            }
        }
    }
    uses
}

/// A cycle in `uses`, as the modules along it (the first repeated at the end), if any.
fn find_cycle(uses: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        uses: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_string());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_string());
        for next in uses.get(module).into_iter().flat_map(|m| m.keys()) {
            if let Some(cycle) = visit(next, uses, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_string());
        None
    }
    let mut done = BTreeSet::new();
    uses.keys()
        .find_map(|module| visit(module, uses, &mut Vec::new(), &mut done))
}

#[test]
fn top_level_modules_depend_on_each_other_one_way() {
    let uses = module_uses();
    let edges: usize = uses.values().map(BTreeMap::len).sum();
    // The scan must see the crate's real structure, or the check below proves nothing.
    assert!(
        edges > 30,
        "only {edges} uses between modules found: {uses:?}"
    );
    assert!(uses["web"].contains_key("storage") && uses["app"].contains_key("queue"));
    if let Some(cycle) = find_cycle(&uses) {
        let hops: Vec<String> = cycle
            .windows(2)
            .map(|hop| {
                format!(
                    "{} -> {} (in src/{})",
                    hop[0], hop[1], uses[&hop[0]][&hop[1]]
                )
            })
            .collect();
        panic!(
            "the modules {} use each other:\n{}",
            cycle.join(" -> "),
            hops.join("\n")
        );
    }
}

#[test]
fn the_cycle_check_finds_cycles_and_reads_grouped_paths() {
    let paths = crate_paths(
        "use crate::{agent::events, storage::{Db, Tx}};\nlet x = crate::queue::enqueue;",
    );
    assert_eq!(paths, ["agent", "storage", "queue"]);
    let edge = |from: &str, to: &str| {
        (
            from.to_string(),
            BTreeMap::from([(to.to_string(), String::new())]),
        )
    };
    let one_way = BTreeMap::from([edge("web", "intake"), edge("intake", "storage")]);
    assert_eq!(find_cycle(&one_way), None);
    let cyclic = BTreeMap::from([
        edge("web", "intake"),
        edge("intake", "queue"),
        edge("queue", "web"),
    ]);
    assert_eq!(
        find_cycle(&cyclic).unwrap(),
        ["intake", "queue", "web", "intake"]
    );
}
