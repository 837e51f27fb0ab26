//! What the fuzz targets run: one function per target, each panicking when a property
//! fails (libFuzzer reports a panic as a crash). `tests/fuzz_regressions.rs` includes
//! this file with `#[path]`, so an input kept under `tests/fuzz_regressions/<target>/`
//! replays exactly these checks in `cargo test`, without libFuzzer. Only `runbook`,
//! `serde_json` and `std` may be used here: both crates must compile it.

use runbook::check::check;
use runbook::fmt::{comments, format, meaning};
use runbook::ir::pattern::{Pattern, PatternKind};
use runbook::ir::{load, lower};
use runbook::record::journal::{read_events, Journal, JournalError};
use runbook::run::event::Event;
use runbook::run::state::RunState;
use runbook::syntax::source::{FileId, Location, SourceMap, Span};
use runbook::workspace::{Change, ChangeKind, Workspace};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// An empty directory for one fuzzing process under `$TMPDIR` (a tmpfs such as
/// `/dev/shm` makes the journal target faster). It is left behind: libFuzzer ends the
/// process with `exit`, so nothing would run a destructor.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runbook-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory under $TMPDIR");
    dir
}

/// Panics unless `start..end` lies inside `text` with both ends on char boundaries:
/// diagnostics and the formatter slice the source with spans.
pub fn assert_in_bounds(text: &str, start: usize, end: usize, what: &str) {
    assert!(
        start <= end && end <= text.len(),
        "{what}: span {start}..{end} outside a text of {} bytes",
        text.len()
    );
    assert!(
        text.is_char_boundary(start) && text.is_char_boundary(end),
        "{what}: span {start}..{end} is not on char boundaries"
    );
}

/// Every `Span { start, end }` in a `Debug` rendering of an AST, and the source offset
/// of every string segment (`OffsetMap`), as `(start, end)` pairs. Reading the `Debug`
/// text reaches every span of every node without a visitor that new nodes could miss;
/// string literals in it are skipped, so a runbook string cannot forge a span.
pub fn debug_spans(debug: &str) -> Vec<(usize, usize)> {
    let bytes = debug.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            // Skip the literal: `Debug` escapes `"` and `\` inside it.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        let rest = &debug[i..];
        if let Some(after) = rest.strip_prefix("Span { start: ") {
            let (start, after) = number(after);
            let after = after.strip_prefix(", end: ").expect("a Span has an end");
            let (end, _) = number(after);
            spans.push((start, end));
        } else if let Some(after) = rest.strip_prefix("segments: [") {
            let list = &after[..after.find(']').expect("a closed segment list")];
            for pair in list.split("), (") {
                let source = pair.trim_matches(|c| c == '(' || c == ')');
                let (_, source) = source.split_once(", ").expect("(value, source) pairs");
                let offset = source.parse().expect("a source offset");
                spans.push((offset, offset));
            }
        }
        // Advance by a whole char: `rest` must start on a boundary.
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    spans
}

fn number(text: &str) -> (usize, &str) {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let n = text[..digits].parse().expect("a number");
    (n, &text[digits..])
}

/// Parses, lowers and checks `data` as the runbook file `dir/fuzz.runbook` (`dir`
/// should be empty, so relative imports and prompt files resolve to nothing), renders
/// every diagnostic, and asserts that every diagnostic and AST span is in bounds. For
/// text that parses it also asserts what `runbook fmt` promises: the output parses,
/// formatting it again changes nothing, and comments and meaning are kept. Returns
/// whether the text parsed.
pub fn check_text(data: &[u8], dir: &Path) -> bool {
    let path = dir.join("fuzz.runbook");
    let mut map = SourceMap::new();
    let (file, problem) = load::add_bytes(&mut map, &path, "fuzz.runbook".into(), data.to_vec());
    let lowered = match problem {
        Some(d) => lower::Lowered {
            runbook: None,
            diagnostics: vec![d],
        },
        None => lower::lower_file(&mut map, file),
    };
    let outcome = check(&map, lowered);
    for d in &outcome.diagnostics {
        let places = std::iter::once(&d.location).chain(d.labels.iter().map(|l| &l.location));
        for at in places {
            let text = &map.get(at.file).text;
            let what = format!("{} ({})", d.code, d.message);
            assert_in_bounds(text, at.span.start as usize, at.span.end as usize, &what);
        }
        let _ = runbook::diagnostic::render::json(d, &map);
        let _ = runbook::diagnostic::render::human(d, &map, false);
        let _ = runbook::diagnostic::render::github(d, &map);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let ast = match runbook::syntax::parse(text) {
        Ok(ast) => ast,
        Err(e) => {
            let labels = e.labels.iter().map(|(s, _)| *s);
            for span in std::iter::once(e.span).chain(labels) {
                assert_in_bounds(text, span.range().start, span.range().end, &e.message);
            }
            return false;
        }
    };
    for (start, end) in debug_spans(&format!("{ast:?}")) {
        assert_in_bounds(text, start, end, "AST");
    }
    round_trip(&path, text);
    true
}

/// `runbook fmt`'s promises for `text`, which parses.
pub fn round_trip(path: &Path, text: &str) {
    let once = format(text).expect("text that parses formats");
    let twice = format(&once)
        .unwrap_or_else(|e| panic!("the formatted text does not parse: {}\n{once}", e.message));
    assert_eq!(once, twice, "fmt is not idempotent");
    let comments = |t: &str| {
        let mut texts: Vec<String> = comments::scan(t).into_iter().map(|c| c.text).collect();
        texts.sort();
        texts
    };
    assert_eq!(comments(text), comments(&once), "fmt changed the comments");
    assert_eq!(
        meaning::of_text(path, text),
        meaning::of_text(path, &once),
        "fmt changed the meaning; formatted:\n{once}"
    );
}

/// Reads `data` as the journal `dir/events.jsonl` as the CLI does (untyped, then as
/// events, then the run state rebuilt from them), then opens it for appending as
/// `runbook resume` does, and asserts that resuming keeps exactly the events the reader
/// returned: the torn tail the reader ignored is cut (so a line appended next cannot
/// make it a corrupt middle line), nothing it returned is lost, and the next sequence
/// number follows the last kept line. (Nothing is appended: the writer's commit
/// interval would make each input cost milliseconds.)
pub fn journal(data: &[u8], dir: &Path) {
    let path = dir.join("events.jsonl");
    std::fs::write(&path, data).expect("the scratch directory is writable");
    let before = read_events::<Value>(&path);
    if let Ok(contents) = read_events::<Event>(&path) {
        let state = RunState::from_events(&contents.events);
        let _ = state.in_flight();
        for name in state.nodes.keys() {
            let _ = state.status(name).word();
        }
    }
    // `resume` reads the journal first and stops at a corrupt one: only a journal that
    // reads cleanly is opened for appending (which also keeps this target fast, since
    // opening starts the writer thread).
    match before {
        Ok(before) => {
            let journal = Journal::open_append::<Value>(&path).expect("an existing journal opens");
            let last_seq = journal.last_seq();
            journal.close().expect("the journal closes");
            let after = read_events::<Value>(&path)
                .expect("a journal that read cleanly still reads after a resume");
            assert!(!after.torn_tail, "resuming left a torn tail");
            assert_eq!(after.events, before.events, "resuming lost or added events");
            assert_eq!(
                last_seq,
                before.events.len() as u64,
                "sequence numbers are line numbers"
            );
        }
        Err(JournalError::Corrupt { .. }) => {}
        Err(e) => panic!("reading a file just written failed: {e}"),
    }
}

/// Interprets `data` as `[kind byte] A \n B \n candidate…` and checks the pattern
/// matcher used for `read`/`write`/`exec` enforcement and for `uses`/policy checks:
/// compiling and matching never panic; `A.covers(B)` is sound (every candidate B
/// matches, A matches too), since a wrong `true` lets an agent widen its parent's or
/// the policy's permissions; and the write-violation check reports exactly the
/// changed paths the `write` globs do not allow, `.git` always.
pub fn patterns(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let kind = if kind & 1 == 0 {
        PatternKind::Path
    } else {
        PatternKind::Name
    };
    let text = String::from_utf8_lossy(rest);
    let mut lines = text.split('\n');
    let (Some(a), Some(b)) = (lines.next(), lines.next()) else {
        return;
    };
    // A few candidates are enough: every one is checked against every kind of change.
    let mut candidates: Vec<String> = lines.take(8).map(str::to_string).collect();
    candidates.extend(instances(b));
    let at = Location {
        file: FileId(0),
        span: Span::default(),
    };
    let (Ok(pa), Ok(pb)) = (Pattern::new(a, kind, at), Pattern::new(b, kind, at)) else {
        return;
    };
    if pa.covers(&pb) {
        for c in &candidates {
            assert!(
                !pb.matches(c) || pa.matches(c),
                "{kind:?} `{a}` covers `{b}`, yet `{b}` matches {c:?} and `{a}` does not"
            );
        }
    }
    if kind == PatternKind::Path {
        violations(&pa, &candidates);
    }
}

/// Sample strings that `pattern` plausibly matches: each wildcard replaced by a few
/// fillers, so that a soundness failure of `covers` needs no luck to show.
fn instances(pattern: &str) -> Vec<String> {
    const FILLERS: [&str; 6] = ["", "a", "ab", "a/b", "/", "."];
    let mut out = Vec::new();
    for filler in FILLERS {
        let mut s = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' | '?' => s.push_str(filler),
                '\\' => s.extend(chars.next()),
                '[' | '{' => {
                    // Keep the first choice of a class or alternation.
                    let close = if c == '[' { ']' } else { '}' };
                    let inner: String = chars.by_ref().take_while(|&d| d != close).collect();
                    let first = inner.trim_start_matches(['!', '^']);
                    s.extend(first.split(',').next().and_then(|f| f.chars().next()));
                }
                c => s.push(c),
            }
        }
        out.push(s);
    }
    out
}

/// The violation check against `write = [pattern]` for each candidate: a change is
/// reported exactly when the path is under `.git` or not matched, a rename is judged on
/// the side it leaves too, and a link out of the worktree is always reported.
fn violations(pattern: &Pattern, candidates: &[String]) {
    let write = std::slice::from_ref(pattern);
    let reported = |change: Change| {
        let path = change.path.clone();
        let found = Workspace::violations(&[change], write);
        found.iter().any(|v| v.path == path)
    };
    for (i, path) in candidates.iter().enumerate() {
        let is_git = path.split('/').any(|p| p.eq_ignore_ascii_case(".git"));
        let forbidden = is_git || !pattern.matches(path);
        let added = Change {
            path: path.clone(),
            kind: ChangeKind::Added,
            symlink_target: None,
        };
        assert_eq!(
            reported(added),
            forbidden,
            "`{}` and adding {path:?}",
            pattern.text
        );
        let other = &candidates[(i + 1) % candidates.len()];
        let renamed = Change {
            path: other.clone(),
            kind: ChangeKind::Renamed { from: path.clone() },
            symlink_target: None,
        };
        let found = Workspace::violations(&[renamed], write);
        assert!(
            !forbidden || found.iter().any(|v| &v.path == path),
            "renaming {path:?} away under `{}` is not reported",
            pattern.text
        );
        // Absolute, or through more `..` than the link is deep.
        let depth = path.split('/').count();
        for out in [
            format!("/{other}"),
            format!("{}{other}", "../".repeat(depth)),
        ] {
            let link = Change {
                path: path.clone(),
                kind: ChangeKind::Added,
                symlink_target: Some(out.clone()),
            };
            assert!(
                reported(link),
                "a link {path:?} -> {out:?} is not reported under `{}`",
                pattern.text
            );
        }
    }
}
