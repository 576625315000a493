//! The folder layout is the architecture (`../shared/DESIGN.md`): this test keeps it true.
//! It reads every file under `src/`, draws the graph of `crate::…` paths between top-level
//! modules, and fails on an import the design forbids, on a cycle, and on a file that grew
//! past the size a reader takes in at once.
//!
//! Paths are found as text, comments left out: a `use crate::net::…` hidden in a test
//! module counts as much as one at the top, because it couples the same two modules.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Imports that must never exist: the domain knows no sockets or application, the
/// backends know no domain, metrics and config are leaves, and the Redis bus carries
/// frames without knowing the chat, the loop or the store (nor the chat the bus).
const FORBIDDEN: &[(&str, &str)] = &[
    ("chat", "net"),
    ("chat", "app"),
    ("store", "chat"),
    ("store", "net"),
    ("llm", "chat"),
    ("llm", "net"),
    ("config", "net"),
    ("upload", "net"),
    ("upload", "chat"),
    ("upload", "app"),
    ("chat", "bus"),
    ("bus", "chat"),
    ("bus", "net"),
    ("bus", "app"),
    ("bus", "store"),
    ("bus", "http"),
];

/// Modules that import nothing of ours but other leaves (the digits of `decimal`, which
/// `json` and `time` both write).
const LEAVES: &[&str] = &[
    "metrics", "config", "time", "ids", "json", "hash", "decimal",
];

/// A file longer than this says why at its top, with this marker.
const MAX_LINES: usize = 550;
const EXCEPTION_MARKER: &str = "layout: longer than";

type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to; `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("file under src/");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// Code without `//` comments (doc comments included): a path named in prose is no import.
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal (a URL) is rare enough here to cut too:
            // it can only hide a path, never invent one.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules named after `crate::` in `code`, braces of grouped imports
/// (`use crate::{a, b::c}`) included.
fn targets(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = matching_brace(group);
            for item in split_top_level(&group[..end]) {
                if let Some(name) = leading_ident(item.trim()) {
                    found.insert(name);
                }
            }
        } else if let Some(name) = leading_ident(rest) {
            found.insert(name);
        }
    }
    found.retain(|name| name != "self" && name != "super");
    found
}

fn leading_ident(s: &str) -> Option<String> {
    let ident: String = s
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty()).then_some(ident)
}

/// The index of the `}` closing a group that starts right after a `{`.
fn matching_brace(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// Splits `a, b::{c, d}, e` at the commas outside braces.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// module → imported module → the files that import it.
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = fs::read_to_string(&file).expect("read source file");
        let shown = file.strip_prefix(&src).expect("under src").display();
        let edges = graph.entry(module.clone()).or_default();
        for target in targets(&code_of(&text)) {
            if target != module {
                edges.entry(target).or_default().push(shown.to_string());
            }
        }
    }
    graph
}

/// Every cycle found by a depth-first walk, each as the modules along it.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    fn walk(
        graph: &Graph,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(at) = path.iter().position(|n| n == node) {
            found.push(path[at..].to_vec());
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            walk(graph, next, path, done, found);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        walk(graph, node, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn no_forbidden_import() {
    let graph = graph();
    let mut broken = Vec::new();
    for (from, edges) in &graph {
        for (to, files) in edges {
            let forbidden = FORBIDDEN.contains(&(from.as_str(), to.as_str()))
                || (LEAVES.contains(&from.as_str()) && !LEAVES.contains(&to.as_str()));
            if forbidden {
                broken.push(format!("{from} → {to} (in {})", files.join(", ")));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "forbidden imports:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_cycle_among_top_level_modules() {
    let found = cycles(&graph());
    let shown: Vec<String> = found
        .iter()
        .map(|cycle| format!("{} → {}", cycle.join(" → "), cycle[0]))
        .collect();
    assert!(found.is_empty(), "import cycles:\n{}", shown.join("\n"));
}

#[test]
fn no_source_file_is_too_long_without_saying_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).expect("read source file");
        let lines = text.lines().count();
        let says_why = text.lines().take(10).any(|l| l.contains(EXCEPTION_MARKER));
        if lines > MAX_LINES && !says_why {
            long.push(format!("{} ({lines} lines)", file.display()));
        }
    }
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines without a `{EXCEPTION_MARKER} …` line at the top:\n{}",
        long.join("\n")
    );
}

/// The checks must be able to fail: the reader sees through grouped imports and
/// ignores prose, and the walk finds a planted cycle.
#[test]
fn the_checker_sees_grouped_imports_and_cycles() {
    let code = code_of(
        "use crate::{chat::hub::Hub, net::{slab::ConnId, ws}};\n\
         // crate::app is only named in a comment\n\
         let x = crate::store::open(c);",
    );
    let found: Vec<String> = targets(&code).into_iter().collect();
    assert_eq!(found, ["chat", "net", "store"]);

    let mut planted = Graph::new();
    let edge = |to: &str| BTreeMap::from([(to.to_owned(), vec!["f.rs".to_owned()])]);
    planted.insert("a".into(), edge("b"));
    planted.insert("b".into(), edge("c"));
    planted.insert("c".into(), edge("a"));
    assert_eq!(cycles(&planted), vec![vec!["a", "b", "c"]]);
}
