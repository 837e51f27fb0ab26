//! Robustness: every prefix of every example runbook (cut at any byte, so also inside a
//! UTF-8 sequence) goes through the whole front end without a panic, and the binary
//! answers 0 or 1 for it, never a crash. Random bytes and random soups of the
//! language's tokens do the same through the library.

use proptest::prelude::*;
use runbook::check::{check, check_path};
use runbook::ir::{load, lower};
use runbook::syntax::source::SourceMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The runbooks whose prefixes are checked: the examples and the valid corpus files.
fn sources() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("runbooks")).expect("runbooks/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "runbook") {
            files.push(path);
        }
    }
    for entry in std::fs::read_dir(root.join("tests/check")).expect("tests/check/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("ok_") && name.ends_with(".runbook") {
            files.push(path);
        }
    }
    files.sort();
    assert!(files.len() > 5, "found the example runbooks");
    files
}

/// A temporary directory with the source's neighbours (`lib/`, `prompts/`, `agents/`)
/// copied in, so that a prefix long enough to import or read a prompt still resolves.
fn workspace_for(source: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let from = source.parent().expect("a parent directory");
    for sub in ["lib", "prompts", "agents"] {
        let src = from.join(sub);
        if src.is_dir() {
            copy_dir(&src, &dir.path().join(sub));
        }
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// Checks `bytes` as the file `path` through the library; panics are the failure.
fn check_bytes_at(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write the prefix");
    let mut map = SourceMap::new();
    let outcome = check_path(&mut map, path).expect("the file was just written");
    // Rendering touches every span: it must not panic either.
    for d in &outcome.diagnostics {
        let _ = runbook::diagnostic::render::json(d, &map);
        let _ = runbook::diagnostic::render::human(d, &map, false);
    }
}

#[test]
fn every_prefix_checks_without_panicking() {
    let files = sources();
    let contents: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read the source"))
        .collect();
    // Work items of a few hundred prefixes each, shared by one thread per core: long
    // files cost quadratically more than short ones, so one thread per file would leave
    // cores idle while the longest file finishes.
    const CHUNK: usize = 256;
    let mut jobs: Vec<(usize, usize)> = Vec::new();
    for (i, bytes) in contents.iter().enumerate() {
        for start in (0..=bytes.len()).step_by(CHUNK) {
            jobs.push((i, start));
        }
    }
    // Longest prefixes first, so the expensive chunks do not come last.
    jobs.sort_by_key(|(_, start)| std::cmp::Reverse(*start));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let workspaces: Vec<tempfile::TempDir> =
                    files.iter().map(|f| workspace_for(f)).collect();
                loop {
                    let job = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&(file, start)) = jobs.get(job) else {
                        break;
                    };
                    let bytes = &contents[file];
                    let name = files[file].file_name().expect("a file name");
                    let path = workspaces[file].path().join(name);
                    for end in start..(start + CHUNK).min(bytes.len() + 1) {
                        let prefix = &bytes[..end];
                        let result = std::panic::catch_unwind(|| check_bytes_at(&path, prefix));
                        if result.is_err() {
                            panic!(
                                "checking {} cut at byte {end} panicked; the prefix ends with {:?}",
                                files[file].display(),
                                String::from_utf8_lossy(&prefix[end.saturating_sub(40)..])
                            );
                        }
                    }
                }
            });
        }
    });
}

#[test]
fn the_binary_exits_0_or_1_for_prefixes() {
    let files = sources();
    let workspaces: Vec<tempfile::TempDir> = files.iter().map(|f| workspace_for(f)).collect();
    let contents: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read the source"))
        .collect();
    // 50 (file, offset) pairs from a fixed linear congruential sequence: spread over
    // all files and offsets, the same on every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..50 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let file = (state >> 33) as usize % files.len();
        let bytes = &contents[file];
        let end = (state >> 7) as usize % (bytes.len() + 1);
        let path = workspaces[file]
            .path()
            .join(files[file].file_name().expect("a file name"));
        std::fs::write(&path, &bytes[..end]).expect("write the prefix");
        let output = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .arg("check")
            .arg(&path)
            .env("NO_COLOR", "1")
            .output()
            .expect("the binary starts");
        let code = output.status.code();
        assert!(
            matches!(code, Some(0 | 1)),
            "{} cut at byte {end}: exit {code:?}\n{}",
            files[file].display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Checks text that is not on disk, as the proptests do.
fn check_in_memory(bytes: Vec<u8>) {
    let dir = std::env::temp_dir();
    let mut map = SourceMap::new();
    let path = dir.join("runbook-proptest-input.runbook");
    let (file, problem) = load::add_bytes(&mut map, &path, "input.runbook".into(), bytes);
    let lowered = match problem {
        Some(d) => lower::Lowered {
            runbook: None,
            diagnostics: vec![d],
        },
        None => lower::lower_file(&mut map, file),
    };
    let outcome = check(&map, lowered);
    for d in &outcome.diagnostics {
        let _ = runbook::diagnostic::render::json(d, &map);
    }
}

/// Tokens of the language, some valid and some near misses, to build soups from.
const TOKENS: &[&str] = &[
    "runbook",
    "policy",
    "import",
    "as",
    "param",
    "secret",
    "agent",
    "uses",
    "phase",
    "step",
    "checkpoint",
    "rollback",
    "after",
    "by",
    "file",
    "attempts",
    "diff",
    "run",
    "read",
    "write",
    "exec",
    "network",
    "mcp",
    "env",
    "timeout",
    "estimate",
    "prompt",
    "sh",
    "produces",
    "until",
    "when",
    "on_failure",
    "show",
    "ask",
    "revise",
    "approvers",
    "kind",
    "model",
    "max_turns",
    "budget",
    "title",
    "version",
    "description",
    "on",
    "off",
    "true",
    "false",
    "string",
    "int",
    "bool",
    "duration",
    "list",
    "shell",
    "agents.claude",
    "steps.a.output",
    "a",
    "b",
    "c",
    "p",
    "x",
    "{",
    "}",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ",",
    ":",
    "=",
    "30m",
    "1h30m",
    "3",
    "-1",
    "0",
    "\"text\"",
    "\"std/agents\"",
    "\"{{ params.x }}\"",
    "\"{{ steps.a.output }}\"",
    "\"{% if x %}\"",
    "\"\"\"\n  multi {{ feedback }}\n\"\"\"",
    "\"\"\"",
    "\"",
    "//",
    "// comment\n",
    "/*",
    "*/",
    "\"cargo test && $(git log) | tee x\"",
    "\"cat <<EOF\nx\nEOF\"",
    "\n",
    "\t",
    "é",
    "\u{FEFF}",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_in_memory(bytes);
    }

    #[test]
    fn token_soups_never_panic(
        picks in proptest::collection::vec((0..TOKENS.len(), 0..3usize), 0..80)
    ) {
        let separators = [" ", "\n", ""];
        let text: String = picks
            .iter()
            .map(|(token, sep)| format!("{}{}", TOKENS[*token], separators[*sep]))
            .collect();
        check_in_memory(text.into_bytes());
    }

    #[test]
    fn soups_inside_a_runbook_never_panic(
        picks in proptest::collection::vec(0..TOKENS.len(), 0..60)
    ) {
        // Wrapped in a valid shell, the soup reaches deeper rules before failing.
        let soup: Vec<&str> = picks.iter().map(|i| TOKENS[*i]).collect();
        let text = format!(
            "runbook r {{\n  agent a {{ run \"a -\" }}\n  phase p {{\n    step s by a {{\n      {}\n    }}\n  }}\n}}\n",
            soup.join(" ")
        );
        check_in_memory(text.into_bytes());
    }
}
