//! Where things are: the repository, the open corpus next to it, the test fixtures.

use std::path::{Path, PathBuf};

/// The repository root (the parent of `testkit/`).
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ sits in the repository")
}

/// `../shared` (the corpus and recorded reviews, next to the repository).
pub fn shared_dir() -> PathBuf {
    repo().join("../shared")
}

/// `../shared/corpus/<file>`; panics if it is missing.
#[track_caller]
pub fn corpus(file: &str) -> PathBuf {
    let p = shared_dir().join("corpus").join(file);
    assert!(p.is_file(), "corpus file {} is missing", p.display());
    p
}

/// `tests/fixtures/e2e/<file>`; panics if it is missing.
#[track_caller]
pub fn fixture(file: &str) -> PathBuf {
    let p = repo().join("tests/fixtures/e2e").join(file);
    assert!(p.is_file(), "fixture {} is missing", p.display());
    p
}

/// A path as a `&str` (for command arguments).
pub fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A file `name` holding `text` in a new temporary directory, removed when the guard drops.
pub fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    (dir, path)
}

/// `to` relative to `from` (both absolute): kustomize refuses absolute paths in a
/// kustomization.
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    use std::path::Component;
    let (f, t): (Vec<Component>, Vec<Component>) = (from.components().collect(), to.components().collect());
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..f.len() {
        out.push("..");
    }
    t[common..].iter().for_each(|c| out.push(c));
    out
}
