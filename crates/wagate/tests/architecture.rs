//! The rules `docs/architecture.md` states about the code's shape, checked on the sources: the
//! services crate knows nothing of HTTP, no handler reaches the store, no source file grows past
//! 600 lines.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_services_crate_depends_on_no_http_or_api_description_crate() {
    let manifest = fs::read_to_string(workspace().join("crates/service/Cargo.toml")).unwrap();
    let manifest: toml::Table = manifest.parse().unwrap();
    let mut named = Vec::new();
    for section in ["dependencies", "dev-dependencies"] {
        if let Some(deps) = manifest.get(section).and_then(|deps| deps.as_table()) {
            named.extend(deps.keys().cloned());
        }
    }
    assert!(named.iter().any(|name| name == "wagate-store"), "the manifest was read: {named:?}");
    for forbidden in ["axum", "hyper", "tower", "tower-http", "utoipa", "utoipa-swagger-ui"] {
        assert!(!named.iter().any(|name| name == forbidden), "wagate-service depends on {forbidden}");
    }
}

/// `state.store`, `.store()` or the `Store` type itself (not `store_dir`, `stored…`, nor an
/// atomic's `.store(value, ordering)`).
fn reaches_the_store(code: &str) -> bool {
    let field = code.match_indices(".store").any(|(at, found)| {
        let after = &code[at + found.len()..];
        match after.chars().next() {
            Some('(') => after.starts_with("()"),
            Some(c) => !(c.is_alphanumeric() || c == '_'),
            None => true,
        }
    });
    let store_type = code.contains("wagate_store")
        && code.split(|c: char| !c.is_alphanumeric() && c != '_').any(|word| word == "Store");
    field || store_type
}

#[test]
fn no_handler_touches_the_store() {
    let http = workspace().join("crates/server/src/http");
    let files = sources(&http);
    assert!(files.len() > 20, "the handlers were found: {}", files.len());
    let mut offenders = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if reaches_the_store(code) {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(offenders.is_empty(), "handlers that reach past the services:\n{}", offenders.join("\n"));
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    for entry in fs::read_dir(workspace().join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            files.extend(sources(&src));
        }
    }
    assert!(files.len() > 100, "the sources were found: {}", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = fs::read_to_string(file).unwrap().lines().count();
            (lines > 600).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "source files over 600 lines:\n{}", long.join("\n"));
}
