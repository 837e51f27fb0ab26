//! `runbook fmt`: snapshots of the canonical form of every example runbook and of the
//! inputs in tests/fmt_inputs/, the command's behaviour (`--check`, files that do not
//! parse, rewriting in place), and property tests: for every corpus file and for
//! generated runbooks, formatting is idempotent, keeps every comment and leaves the
//! lowered IR unchanged.

use proptest::prelude::*;
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

// ---- generated runbooks ---------------------------------------------------------

/// Builds runbook text from a stream of choices, with comments and odd spacing
/// wherever the grammar allows whitespace.
struct Generator {
    choices: Vec<u8>,
    at: usize,
    comments: usize,
    out: String,
}

impl Generator {
    fn pick(&mut self, n: usize) -> usize {
        let c = self.choices.get(self.at).copied().unwrap_or(0) as usize;
        self.at += 1;
        c % n
    }

    /// Whitespace, sometimes with a comment in it.
    fn gap(&mut self) {
        match self.pick(12) {
            0 => self.out.push_str("\n\n"),
            1 => self.out.push('\n'),
            2 => {
                self.comments += 1;
                let n = self.comments;
                self.out.push_str(&format!(" // note {n}\n"));
            }
            3 => {
                self.comments += 1;
                let n = self.comments;
                self.out.push_str(&format!(" /* note {n} */ "));
            }
            4 => self.out.push_str("   "),
            _ => self.out.push(' '),
        }
    }

    fn word(&mut self, w: &str) {
        self.gap();
        self.out.push_str(w);
    }

    fn string(&mut self) {
        let text = match self.pick(6) {
            0 => "\"https://example.test/a // not a comment\"".to_string(),
            1 => "\"\"\"\n      line one /* not a comment */\n        indented {{ params.n }}\n    \"\"\"".to_string(),
            2 => "\"esc \\\" quote\"".to_string(),
            3 => "\"\"".to_string(),
            n => format!("\"text {n}\""),
        };
        self.gap();
        self.out.push_str(&text);
    }

    fn list(&mut self, items: &[&str]) {
        self.word("[");
        let n = self.pick(items.len() + 1);
        for (i, item) in items.iter().take(n).enumerate() {
            if i > 0 {
                self.word(",");
            }
            self.word(item);
        }
        if n > 0 && self.pick(2) == 0 {
            self.word(",");
        }
        self.word("]");
    }

    fn runbook(mut self) -> String {
        self.word("runbook r {");
        let items = self.pick(8) + 2;
        for i in 0..items {
            match self.pick(8) {
                0 => {
                    let key = ["title", "version", "description"][self.pick(3)];
                    self.word(key);
                    self.string();
                }
                1 => self.word("import \"std/agents\""),
                2 => {
                    self.word(&format!("param p{i}: int"));
                    if self.pick(2) == 0 {
                        self.word("= 3");
                    }
                    if self.pick(2) == 0 {
                        self.string();
                    }
                }
                3 => self.word(&format!("secret S{i}")),
                4 => {
                    self.word(&format!("agent a{i}"));
                    if self.pick(2) == 0 {
                        self.word("uses shell");
                    }
                    if self.pick(3) > 0 {
                        self.word("{");
                        for _ in 0..self.pick(4) {
                            match self.pick(5) {
                                0 => self.list_field("exec", &["\"cargo\"", "\"git\""]),
                                1 => self.list_field("write", &["\"src/**\"", "\"docs/**\""]),
                                2 => self.word("network off"),
                                3 => self.word("timeout 5m"),
                                _ => self.list_field("env", &["S1", "S2"]),
                            }
                        }
                        self.word("}");
                    }
                }
                5 | 6 => self.phase(i),
                _ => self.rollback(),
            }
        }
        self.word("}");
        self.gap();
        self.out
    }

    fn list_field(&mut self, key: &str, items: &[&str]) {
        self.word(key);
        self.list(items);
    }

    fn rollback(&mut self) {
        self.word("rollback {");
        self.word("sh");
        if self.pick(2) == 0 {
            self.string();
        } else {
            self.list(&["\"undo 1\"", "\"undo 2\""]);
        }
        if self.pick(2) == 0 {
            self.word("timeout 1m");
        }
        self.word("}");
    }

    fn phase(&mut self, i: usize) {
        self.word(&format!("phase ph{i}"));
        if self.pick(2) == 0 {
            self.string();
        }
        self.word("{");
        for j in 0..self.pick(5) {
            match self.pick(6) {
                0 => self.word("estimate 1h"),
                1 => {
                    self.word(&format!("checkpoint c{i}_{j}"));
                    self.word("{");
                    if self.pick(2) == 0 {
                        self.word("show");
                        self.list(&["diff", "\"a.md\""]);
                    }
                    if self.pick(2) == 0 {
                        self.word("ask");
                        self.string();
                    }
                    self.word("}");
                }
                2 => self.rollback(),
                _ => {
                    self.word(&format!("step s{i}_{j}"));
                    if self.pick(2) == 0 {
                        self.string();
                    }
                    self.word("{");
                    for _ in 0..self.pick(4) {
                        match self.pick(5) {
                            0 => self.word("timeout 5m"),
                            1 => {
                                self.word("sh");
                                self.string();
                            }
                            2 => self.list_field("produces", &["\"out.txt\"", "\"b.txt\""]),
                            3 => self.word("on_failure continue"),
                            _ => self.word("when \"true\""),
                        }
                    }
                    self.word("}");
                }
            }
        }
        self.word("}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_runbooks_format_well(choices in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = Generator { choices, at: 0, comments: 0, out: String::new() }.runbook();
        prop_assume!(runbook::syntax::parse(&text).is_ok());
        assert_formats_well(&root().join("runbooks/generated.runbook"), &text);
    }
}
