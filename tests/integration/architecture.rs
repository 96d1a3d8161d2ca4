//! House rules of ARCHITECTURE.md that a compiler does not check, checked on the source tree.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, depth first.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    assert!(!out.is_empty(), "no sources under {}", dir.display());
    out
}

fn mentions(files: &[PathBuf], needle: &str) -> Vec<String> {
    files
        .iter()
        .filter(|f| std::fs::read_to_string(f).unwrap().contains(needle))
        .map(|f| f.strip_prefix(root()).unwrap().display().to_string())
        .collect()
}

#[test]
fn only_repo_speaks_sql() {
    let src = root().join("src");
    let repo = src.join("repo");
    let outside: Vec<PathBuf> = rust_files(&src)
        .into_iter()
        .filter(|f| !f.starts_with(&repo))
        .collect();
    assert_eq!(
        mentions(&outside, "sqlx"),
        Vec::<String>::new(),
        "SQL and the database driver belong in src/repo (repo::Pool, Conn, Tx name the handles)"
    );
}

#[test]
fn the_emulator_crate_depends_on_no_crate_of_ours() {
    let manifest = std::fs::read_to_string(root().join("crates/sf-emulator/Cargo.toml")).unwrap();
    for ours in ["idm-sync", "idm_sync", "path ="] {
        assert!(
            !manifest.contains(ours),
            "crates/sf-emulator/Cargo.toml names {ours:?}: the emulator must stand alone"
        );
    }
}

/// The `[dependencies]` table of a crate's manifest: one name per line.
fn dependencies(manifest: &str) -> Vec<String> {
    let table = manifest
        .split("\n[")
        .find(|t| t.starts_with("dependencies]"))
        .unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.trim().to_owned()))
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect()
}

#[test]
fn the_core_crate_does_no_io() {
    let manifest = std::fs::read_to_string(root().join("crates/idm-core/Cargo.toml")).unwrap();
    let deps = dependencies(&manifest);
    assert!(deps.contains(&"serde_json".to_owned()), "{deps:?}");
    for io in [
        "sqlx",
        "axum",
        "lapin",
        "tokio",
        "reqwest",
        "hyper",
        "idm-sync",
        "sf-emulator",
    ] {
        assert!(
            !deps.iter().any(|d| d == io),
            "crates/idm-core depends on {io}: the core decides, the service does the I/O"
        );
    }
    let sources = rust_files(&root().join("crates/idm-core/src"));
    for io in ["std::net", "tokio::", "std::process"] {
        assert_eq!(
            mentions(&sources, io),
            Vec::<String>::new(),
            "{io} in the core"
        );
    }
}

#[test]
fn the_salesforce_client_has_no_database_server_or_broker() {
    let manifest = std::fs::read_to_string(root().join("crates/sf-client/Cargo.toml")).unwrap();
    let deps = dependencies(&manifest);
    assert!(deps.contains(&"reqwest".to_owned()), "{deps:?}");
    for other in ["sqlx", "axum", "lapin", "hyper", "idm-sync", "sf-emulator"] {
        assert!(
            !deps.iter().any(|d| d == other),
            "crates/sf-client depends on {other}: its token store is a trait the service implements"
        );
    }
    let sources = rust_files(&root().join("crates/sf-client/src"));
    for server_or_terminal in ["TcpListener", "println!", "eprintln!"] {
        assert_eq!(
            mentions(&sources, server_or_terminal),
            Vec::<String>::new(),
            "{server_or_terminal} in the client: callbacks and output belong to the binary"
        );
    }
}

#[test]
fn no_source_cites_a_document_the_repository_lacks() {
    let mut files = rust_files(&root().join("src"));
    files.extend(rust_files(&root().join("crates")));
    assert_eq!(
        mentions(&files, "DESIGN.md"),
        Vec::<String>::new(),
        "cite ARCHITECTURE.md or the README instead"
    );
}

/// A module path under `src/` (`["api", "system"]`), from its file.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The paths a source names after `crate::` or `super::`, resolved to module paths; comments
/// and the unit-test module left out.
fn named_paths(module: &[String], text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let parent = &module[..module.len().saturating_sub(1)];
    let mut out = Vec::new();
    for (root, base) in [("crate::", &[][..]), ("super::", parent)] {
        for (at, _) in code.match_indices(root) {
            if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &code[at + root.len()..];
            let heads: Vec<&str> = match rest.strip_prefix('{') {
                // `use super::{a, b::c}`: each item's first segment.
                Some(group) => group
                    .split('}')
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|item| item.trim())
                    .collect(),
                None => vec![rest],
            };
            for head in heads {
                let path: Vec<String> = head
                    .split("::")
                    .map_while(|seg| {
                        let ident: String = seg
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        (!ident.is_empty() && ident.len() == seg.len()).then_some(ident)
                    })
                    .collect();
                let mut full = base.to_vec();
                full.extend(path);
                out.push(full);
            }
        }
    }
    out
}

#[test]
fn the_modules_of_the_service_form_no_cycle() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = root().join("src");
    let files: Vec<PathBuf> = rust_files(&src)
        .into_iter()
        .filter(|f| !f.starts_with(src.join("bin")) && !f.ends_with("main.rs"))
        .collect();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        for path in named_paths(&from, &text) {
            // The longest prefix that is a module of ours.
            let Some(to) = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
            else {
                continue;
            };
            // A module names its ancestors' items freely: they declare it.
            if to != from && !from.starts_with(&to) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        edges.contains_key(&vec!["api".to_owned(), "system".to_owned()]),
        "the scan found no imports: {edges:?}"
    );
    // Depth-first search; a grey module reached again closes a cycle.
    fn visit(
        m: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, bool>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(m.clone(), false);
        stack.push(m.clone());
        for next in edges.get(m).into_iter().flatten() {
            match state.get(next) {
                Some(false) => {
                    let start = stack.iter().position(|s| s == next).unwrap();
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|s| s.join("/")).collect();
                    cycle.push(next.join("/"));
                    return Some(cycle);
                }
                Some(true) => {}
                None => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(m.clone(), true);
        None
    }
    let mut state = BTreeMap::new();
    for m in &modules {
        if !state.contains_key(m) {
            let cycle = visit(m, &edges, &mut state, &mut Vec::new());
            assert_eq!(cycle, None, "a module cycle: each imports the next");
        }
    }
}
