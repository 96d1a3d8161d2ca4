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
fn no_source_cites_a_document_the_repository_lacks() {
    let mut files = rust_files(&root().join("src"));
    files.extend(rust_files(&root().join("crates")));
    assert_eq!(
        mentions(&files, "DESIGN.md"),
        Vec::<String>::new(),
        "cite ARCHITECTURE.md or the README instead"
    );
}
