//! The fuzz corpus as regression tests (issue 15, item 6): every input kept under
//! `fuzz/corpus/<target>/` (the seeds, and every crasher a fuzzing run finds, added by
//! `scripts/fuzz.sh`) goes through its target without the fuzzer, and must not panic.

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

fn run_corpus(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let mut failed = Vec::new();
    for path in &entries {
        let data = std::fs::read(path).expect("corpus file");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} input(s) panic: {failed:?}",
        failed.len()
    );
    entries.len()
}

#[test]
fn the_review_corpus_never_panics() {
    assert!(run_corpus("review", targets::review) >= 10);
}

#[test]
fn the_check_corpus_never_panics() {
    assert!(run_corpus("check", targets::check) >= 10);
}

#[test]
fn the_policy_corpus_never_panics() {
    assert!(run_corpus("policy", targets::policy) >= 1);
}
