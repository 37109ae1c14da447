//! The module structure, checked by `cargo test`: `src/lib.rs` declares the top-level modules
//! bottom-up, and a module may import (`crate::x`) only modules declared before it, so no import
//! runs upward and there is no circle between top-level modules. Inside a folder, the files
//! other than `mod.rs` (the folder's face, which its files may use) import each other without a
//! circle. This is how the restructure (#10) checks "no import circle, no upward import".

use crate::support::rust_files;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of a file without its comments (doc links name modules without importing them).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifiers that follow `prefix` in `code` (`crate::` gives the top-level modules named).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        rest = &rest[at + prefix.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

fn declared_order() -> Vec<String> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub(crate) mod ")
                .or_else(|| line.strip_prefix("pub mod "))
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.trim_end_matches(';').to_owned())
        })
        .collect()
}

#[test]
fn a_module_imports_only_modules_declared_before_it_in_lib_rs() {
    let order = declared_order();
    assert!(order.len() > 20, "lib.rs declares {order:?}");
    let position: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut upward = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src()).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let top = first.to_string_lossy().trim_end_matches(".rs").to_owned();
        let Some(&own) = position.get(top.as_str()) else {
            continue; // lib.rs, main.rs
        };
        for name in names_after(&code(&file), "crate::") {
            if let Some(&other) = position.get(name.as_str()) {
                if other > own {
                    upward.push(format!("{} imports {name}", relative.display()));
                }
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports of modules declared later in lib.rs: {upward:#?}"
    );
}

#[test]
fn files_of_one_folder_import_each_other_without_a_circle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut folders: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        let is_face = file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let is_test = file.file_name().is_some_and(|n| n == "tests.rs")
            || file.components().any(|c| c.as_os_str() == "tests");
        if !is_face && !is_test {
            folders
                .entry(file.parent().unwrap().to_owned())
                .or_default()
                .push(file);
        }
    }
    let mut circles = Vec::new();
    for (folder, files) in folders {
        let stems: BTreeSet<String> = files
            .iter()
            .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        let edges: BTreeMap<String, BTreeSet<String>> = files
            .iter()
            .map(|f| {
                let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
                let used: BTreeSet<String> = names_after(&code(f), "super::")
                    .into_iter()
                    .filter(|n| stems.contains(n) && *n != stem)
                    .collect();
                (stem, used)
            })
            .collect();
        if let Some(circle) = find_circle(&edges) {
            circles.push(format!("{}: {}", folder.display(), circle.join(" -> ")));
        }
    }
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

/// A circle in `edges`, as the names along it, if there is one.
fn find_circle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut Vec::new(), &mut done))
}

#[test]
fn the_circle_finder_finds_circles() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    edges.insert("c".to_owned(), BTreeSet::new());
    assert_eq!(find_circle(&edges), None);
    edges.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(find_circle(&edges).unwrap().len(), 4);
}
