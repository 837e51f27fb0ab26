//! Inputs that made a fuzz target fail, kept under `tests/fuzz_regressions/<target>/`
//! and replayed through the very function the target runs (fuzz/src/lib.rs), so that a
//! fixed bug stays fixed without libFuzzer. The targets' small seed sets
//! (`fuzz/seeds/<target>/`) are replayed too: they must pass as well.

#[allow(dead_code)] // helpers only the proptest and the targets call
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::{Path, PathBuf};

/// Every file under `dir` (relative to the crate root), sorted, with its bytes.
fn files(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("readable");
            (p, bytes)
        })
        .collect()
}

/// Runs `target` on each input of `dirs`; the failure names every input that fails.
fn replay(dirs: &[&str], target: impl Fn(&[u8])) {
    let mut count = 0;
    let mut failing = Vec::new();
    for dir in dirs {
        for (path, bytes) in files(dir) {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&bytes)));
            if outcome.is_err() {
                failing.push(path.display().to_string());
            }
            count += 1;
        }
    }
    assert!(count > 0, "no inputs under {dirs:?}");
    assert!(failing.is_empty(), "these fail again: {failing:#?}");
}

#[test]
fn check_regressions() {
    let dir = tempfile::tempdir().expect("a temp dir");
    replay(&["tests/fuzz_regressions/check"], |bytes| {
        harness::check_text(bytes, dir.path());
    });
}

#[test]
fn journal_regressions_and_seeds() {
    let dir = tempfile::tempdir().expect("a temp dir");
    replay(
        &["tests/fuzz_regressions/journal", "fuzz/seeds/journal"],
        |bytes| harness::journal(bytes, dir.path()),
    );
}

#[test]
fn pattern_regressions_and_seeds() {
    replay(
        &["tests/fuzz_regressions/pattern", "fuzz/seeds/pattern"],
        harness::patterns,
    );
}
