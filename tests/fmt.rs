//! `runbook fmt`: snapshots of the canonical form of every example runbook and of the
//! inputs in tests/fmt_inputs/, the command's behaviour (`--check`, files that do not
//! parse, rewriting in place), and the properties for every corpus file: formatting is
//! idempotent, keeps every comment and leaves the lowered IR unchanged. Generated
//! runbooks are checked for the same in tests/grammar_proptest.rs.

use runbook::fmt::{comments, format, meaning};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the real binary in `dir` with `stdin`.
fn runbook(dir: &Path, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the runbook binary starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin.as_bytes())
        .expect("stdin accepts the input");
    child.wait_with_output().expect("the runbook binary ends")
}

/// Every `.runbook` file of the corpus: runbooks/, tests/ and the stdlib.
fn corpus() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() && !path.ends_with("node_modules") {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "runbook") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["runbooks", "tests", "stdlib"] {
        walk(&root().join(dir), &mut files);
    }
    assert!(files.len() >= 5, "the corpus is missing: {files:?}");
    files
}

fn comment_texts(text: &str) -> Vec<String> {
    let mut texts: Vec<String> = comments::scan(text).into_iter().map(|c| c.text).collect();
    texts.sort();
    texts
}

/// The three properties, for `text` as if it were the file at `path`.
fn assert_formats_well(path: &Path, text: &str) {
    let once = format(text).unwrap_or_else(|e| panic!("{}: {}", path.display(), e.message));
    let twice = format(&once).expect("formatted text parses");
    assert_eq!(once, twice, "{}: fmt is not idempotent", path.display());
    assert_eq!(
        comment_texts(text),
        comment_texts(&once),
        "{}: comments changed",
        path.display()
    );
    assert_eq!(
        meaning::of_text(path, text),
        meaning::of_text(path, &once),
        "{}: the meaning changed; formatted:\n{once}",
        path.display()
    );
}

#[test]
fn corpus_formats_idempotently_keeping_comments_and_meaning() {
    let mut formatted = 0;
    for path in corpus() {
        // The checker's corpus holds files that are not UTF-8 or do not parse on
        // purpose; fmt refuses those (tested below), so there is nothing to compare.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if runbook::syntax::parse(&text).is_err() {
            continue;
        }
        assert_formats_well(&path, &text);
        formatted += 1;
    }
    assert!(formatted >= 5, "only {formatted} corpus files parse");
}

#[test]
fn snapshots_of_formatted_files() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("runbooks"))
        .expect("runbooks/ exists")
        .chain(std::fs::read_dir(root().join("tests/fmt_inputs")).expect("inputs exist"))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "runbook"))
        .collect();
    files.sort();
    for path in files {
        let input = std::fs::read_to_string(&path).expect("readable");
        let output = runbook(root(), &["fmt", "-"], &input);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let dir = path
            .parent()
            .and_then(Path::file_name)
            .expect("a directory");
        let stem = path.file_stem().expect("a file name");
        let name = format!("{}-{}", dir.to_string_lossy(), stem.to_string_lossy());
        insta::assert_snapshot!(name, String::from_utf8_lossy(&output.stdout));
    }
}

#[test]
fn example_runbooks_are_formatted() {
    let output = runbook(root(), &["fmt", "--check", "runbooks/"], "");
    assert!(
        output.status.success(),
        "run `cargo run -- fmt runbooks/`:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn check_prints_a_diff_and_exits_1_without_writing() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("a.runbook");
    let messy = "runbook a { phase p { step s { sh \"true\" } } }\n";
    std::fs::write(&file, messy).expect("writable");
    let output = runbook(dir.path(), &["fmt", "--check", "a.runbook"], "");
    assert_eq!(output.status.code(), Some(1));
    let diff = String::from_utf8_lossy(&output.stdout);
    assert!(
        diff.starts_with("--- a.runbook\n+++ a.runbook (formatted)\n"),
        "{diff}"
    );
    assert!(
        diff.contains("-runbook a { phase p { step s { sh \"true\" } } }\n"),
        "{diff}"
    );
    assert!(diff.contains("+    step s {\n"), "{diff}");
    assert_eq!(std::fs::read_to_string(&file).expect("readable"), messy);

    let output = runbook(dir.path(), &["fmt", "a.runbook"], "");
    assert_eq!(output.status.code(), Some(0));
    let formatted = std::fs::read_to_string(&file).expect("readable");
    assert_eq!(
        formatted,
        "runbook a {\n  phase p {\n    step s {\n      sh \"true\"\n    }\n  }\n}\n"
    );
    let output = runbook(dir.path(), &["fmt", "--check", "a.runbook"], "");
    assert_eq!(
        output.status.code(),
        Some(0),
        "formatted files pass --check"
    );
    assert!(output.stdout.is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listable")
        .flatten()
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}

#[test]
fn a_file_that_does_not_parse_is_reported_and_left_untouched() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let broken = "runbook a {\n  phase p {\n    stepp s {}\n  }\n}\n";
    let good = "runbook b { title \"x\" }\n";
    std::fs::write(dir.path().join("a.runbook"), broken).expect("writable");
    std::fs::write(dir.path().join("b.runbook"), good).expect("writable");
    let output = runbook(dir.path(), &["fmt", "."], "");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("found `stepp`"), "{stderr}");
    assert!(
        stderr.contains("a.runbook does not parse; left untouched"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.runbook")).unwrap(),
        broken
    );
    // The other file is still formatted.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b.runbook")).unwrap(),
        "runbook b {\n  title \"x\"\n}\n"
    );
}
