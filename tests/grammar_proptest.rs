//! Grammar-aware property test: runbooks generated from the grammar (every block and
//! field, `after` clauses, permissions, agent kinds and limits, MCP server declarations,
//! the run's budget, templates, strings with escapes and non-ASCII text, triple-quoted
//! prompts, comments and odd whitespace anywhere the grammar allows it) always parse, and then go through the same checks as the `check` fuzz target
//! (fuzz/src/lib.rs, `check_text`): the checker and every diagnostic rendering run
//! without panicking, every diagnostic and AST span is inside the text on char
//! boundaries, the formatted text parses, formatting is idempotent, and comments and
//! meaning (src/fmt/meaning.rs) survive it.
//!
//! `RUNBOOK_GRAMMAR_CASES` sets the number of cases: 2,000 by default, 100,000 in CI,
//! which builds this test optimized (`--profile proptest`) for that.
//! Names come from small pools so that many references resolve and the checker's deeper
//! passes (ordering, races, templates, permissions) run, not only "unknown name".

#[allow(dead_code)] // the fuzz targets' helpers this test does not call
#[path = "../fuzz/src/lib.rs"]
mod harness;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// Builds a runbook file's text from a stream of choices (proptest shrinks the stream).
struct Generator<'a> {
    choices: &'a [u8],
    at: usize,
    /// Comments written so far: each one is numbered so a lost one is named.
    comments: usize,
    out: String,
}

const AGENTS: &[&str] = &["a0", "a1", "a2", "shell", "agents.claude", "std.missing"];
const STEPS: &[&str] = &["s0", "s1", "s2", "s3", "s4"];
const CHECKPOINTS: &[&str] = &["c0", "c1"];
const PHASES: &[&str] = &["p0", "p1", "p2"];
const PARAMS: &[(&str, &str, &str)] = &[
    ("n", "int", "-3"),
    ("flag", "bool", "true"),
    ("name", "string", "\"x\""),
    ("wait", "duration", "1h30m"),
    ("items", "list", "[\"a\", \"b\",]"),
];
const GLOBS: &[&str] = &[
    "\"src/**\"",
    "\"src/*.rs\"",
    "\"docs/\"",
    "\"**\"",
    "\"*\"",
    "\"{src,tests}/**\"",
    "\"./Cargo.toml\"",
    "\"a?/[bc]*\"",
];
const PROGRAMS: &[&str] = &["\"cargo\"", "\"git\"", "\"*\"", "\"sh\"", "\"rg\""];
const DURATIONS: &[&str] = &["30s", "5m", "1h30m", "2h", "0s"];

impl Generator<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let c = self.choices.get(self.at).copied().unwrap_or(0) as usize;
        self.at += 1;
        c % n
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.pick(one_in) == 0
    }

    fn one<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.pick(from.len())]
    }

    /// Whitespace between tokens, sometimes with comments in it.
    fn gap(&mut self) {
        match self.pick(16) {
            0 => self.out.push_str("\n\n"),
            1 | 2 => self.out.push('\n'),
            3 => {
                self.comments += 1;
                let n = self.comments;
                self.out
                    .push_str(&format!(" // note {n} \"quoted\" {{ brace\n"));
            }
            4 => {
                self.comments += 1;
                let n = self.comments;
                self.out
                    .push_str(&format!(" /* note {n}\n  on two lines // */ "));
            }
            5 => self.out.push('\t'),
            6 => self.out.push_str("\r\n"),
            7 => self.out.push_str(" \u{FEFF}"),
            8 => self.out.push_str("    "),
            _ => self.out.push(' '),
        }
    }

    /// `w`, after a gap.
    fn word(&mut self, w: &str) {
        self.gap();
        self.out.push_str(w);
    }

    /// A plain string: escapes, templates, non-ASCII text, comment-like text.
    fn plain(&mut self) -> String {
        let mut s = String::from("\"");
        for _ in 0..self.pick(3) + 1 {
            let piece = match self.pick(16) {
                0 => "\\\"quoted\\\"",
                1 => "tab\\there\\nnewline\\r\\0",
                2 => "back\\\\slash",
                3 => "\\q kept",
                4 => "{{ params.n }}",
                5 => "{{ params.name | upper }}",
                6 => "{{ steps.s0.output }}",
                7 => "{{ steps.s1.files | join(' ') }}",
                8 => "{% if params.flag %}yes{% else %}no{% endif %}",
                9 => "{# a template comment #}",
                10 => "café 日本 🦀",
                11 => "https://example.test/a // not a comment /* nor this */",
                12 => "{{ unknown.var }}",
                13 => "{{ '{{' }} literal",
                14 => "cargo test && $(git log -1) | tee out.txt",
                _ => "text",
            };
            s.push_str(piece);
            if self.chance(2) {
                s.push(' ');
            }
        }
        s.push('"');
        s
    }

    /// A triple-quoted string, indented, with quotes and templates inside.
    fn triple(&mut self) -> String {
        let mut s = String::from("\"\"\"\n");
        for line in 0..self.pick(4) {
            let indent = "  ".repeat(self.pick(4));
            let text = match self.pick(8) {
                0 => "Rename {{ params.name }} in \"src/\".",
                1 => "Steps so far: {{ steps.s0.output }}",
                2 => "",
                3 => "\"\" two quotes, not three",
                4 => "/* not a comment */ and // neither",
                5 => "{% for i in params.items %}{{ i }}, {% endfor %}",
                6 => "ünïcödé ✓ \\n stays as written",
                _ => "plain line",
            };
            s.push_str(&format!("{indent}{text} {line}\n"));
        }
        s.push_str(&"  ".repeat(self.pick(3)));
        s.push_str("\"\"\"");
        s
    }

    fn string(&mut self) {
        let s = if self.chance(5) {
            self.triple()
        } else {
            self.plain()
        };
        self.word(&s);
    }

    /// `[a, b, …]` from `items`, maybe empty, maybe with a trailing comma.
    fn list(&mut self, items: &[&str]) {
        self.word("[");
        let n = self.pick(items.len().min(4) + 1);
        for i in 0..n {
            if i > 0 {
                self.word(",");
            }
            let item = self.one(items);
            self.word(item);
        }
        if n > 0 && self.chance(3) {
            self.word(",");
        }
        self.word("]");
    }

    /// `a, b` after `after`. A trailing comma only where `{` follows: in `after a, by x`
    /// the grammar reads `by` as a second name.
    fn names(&mut self, from: &[&str], trailing_comma: bool) {
        let n = self.pick(3) + 1;
        for i in 0..n {
            if i > 0 {
                self.word(",");
            }
            let name = self.one(from);
            self.word(name);
        }
        if trailing_comma && self.chance(6) {
            self.word(",");
        }
    }

    fn metadata(&mut self) {
        let key = self.one(&["title", "version", "description"]);
        self.word(key);
        self.string();
    }

    fn duration(&mut self, key: &str) {
        self.word(key);
        let d = self.one(DURATIONS);
        self.word(d);
    }

    fn file(mut self) -> String {
        if self.chance(4) {
            self.gap();
        }
        match self.pick(12) {
            0 => self.module(),
            1 => self.policy(),
            _ => self.runbook(),
        }
        self.gap();
        self.out
    }

    fn module(&mut self) {
        for i in 0..self.pick(4) {
            match self.pick(5) {
                0 | 1 => self.import(),
                2 => self.mcp_server(),
                _ => self.agent(i),
            }
        }
    }

    /// `mcp NAME { run "…" env [...] }`, sometimes without `run` or with a duplicate name.
    fn mcp_server(&mut self) {
        self.word("mcp");
        let name = self.one(&["github", "fs", "docs"]);
        self.word(name);
        self.word("{");
        for _ in 0..self.pick(4) {
            match self.pick(4) {
                0 | 1 => {
                    self.word("run");
                    let run = self.one(&[
                        "\"mcp-server-filesystem .\"",
                        "\"github-mcp-server stdio\"",
                        "\"\"",
                        "\"x 'unclosed\"",
                    ]);
                    self.word(run);
                }
                2 => {
                    self.word("env");
                    self.list(&["TOKEN", "KEY", "HOME"]);
                }
                _ => self.metadata(),
            }
        }
        self.word("}");
    }

    /// `budget AMOUNT`, valid or not.
    fn budget(&mut self) {
        self.word("budget");
        let amount = self.one(&["2.50", "10", "0.125", "0", "-1", "30m", "1.5"]);
        self.word(amount);
    }

    /// The fields only agents have: `kind`, `model`, `max_turns`, `budget`.
    fn agent_only_field(&mut self) {
        match self.pick(4) {
            0 => {
                self.word("kind");
                let kind = self.one(&["claude", "codex", "gemini", "aider", "command", "cluade"]);
                self.word(kind);
            }
            1 => {
                self.word("model");
                let model = self.one(&["\"claude-sonnet-4-5\"", "\"\"", "\"-x\"", "\"gpt-5\""]);
                self.word(model);
            }
            2 => {
                self.word("max_turns");
                let turns = self.one(&["1", "30", "0", "2.5"]);
                self.word(turns);
            }
            _ => self.budget(),
        }
    }

    fn policy(&mut self) {
        self.word("policy");
        self.word("{");
        for _ in 0..self.pick(5) {
            self.permission();
        }
        self.word("}");
    }

    fn import(&mut self) {
        self.word("import");
        let path = self.one(&["\"std/agents\"", "\"std/agents\"", "\"lib/missing\""]);
        self.word(path);
        if self.chance(3) {
            self.word("as");
            self.word("agents");
        }
    }

    fn runbook(&mut self) {
        self.word("runbook");
        let name = self.one(&["r", "release", "_x9"]);
        self.word(name);
        self.word("{");
        let items = self.pick(7) + 1;
        for i in 0..items {
            match self.pick(12) {
                0 => self.metadata(),
                1 => self.import(),
                2 => {
                    let (name, ty, default) = PARAMS[self.pick(PARAMS.len())];
                    self.word("param");
                    self.word(name);
                    self.word(":");
                    self.word(ty);
                    if self.chance(2) {
                        self.word("=");
                        self.word(default);
                    }
                    if self.chance(3) {
                        self.string();
                    }
                }
                3 => {
                    self.word("secret");
                    let name = self.one(&["TOKEN", "KEY"]);
                    self.word(name);
                }
                4 | 5 => self.agent(i),
                6 => self.rollback(),
                7 if self.chance(2) => self.mcp_server(),
                7 => self.budget(),
                _ => self.phase(),
            }
        }
        self.word("}");
    }

    /// One of the permission fields an agent or the policy may hold.
    fn permission(&mut self) {
        match self.pick(6) {
            0 => {
                self.word("read");
                self.list(GLOBS);
            }
            1 => {
                self.word("write");
                self.list(GLOBS);
            }
            2 => {
                self.word("exec");
                self.list(PROGRAMS);
            }
            3 => {
                self.word("network");
                match self.pick(3) {
                    0 => self.word("on"),
                    1 => self.word("off"),
                    _ => self.list(&["\"crates.io\"", "\"example.test\""]),
                }
            }
            4 => {
                self.word("mcp");
                self.list(&["\"github\"", "\"fs-*\"", "\"fs\"", "\"*\"", "\"agents.fs\""]);
            }
            _ => {
                self.word("env");
                self.list(&["TOKEN", "KEY", "HOME"]);
            }
        }
    }

    fn agent(&mut self, i: usize) {
        self.word("agent");
        let name = AGENTS[i % 3];
        self.word(name);
        if self.chance(2) {
            self.word("uses");
            let parent = self.one(AGENTS);
            self.word(parent);
        }
        if self.chance(4) {
            return;
        }
        self.word("{");
        for _ in 0..self.pick(6) {
            match self.pick(7) {
                0 => {
                    self.word("run");
                    self.string();
                }
                1 => self.duration("timeout"),
                2 => self.metadata(),
                3 | 4 => self.agent_only_field(),
                _ => self.permission(),
            }
        }
        self.word("}");
    }

    fn rollback(&mut self) {
        self.word("rollback");
        self.word("{");
        for _ in 0..self.pick(3) {
            if self.chance(3) {
                self.duration("timeout");
            } else {
                self.sh();
            }
        }
        self.word("}");
    }

    fn sh(&mut self) {
        self.word("sh");
        if self.chance(3) {
            self.list(&["\"make a\"", "\"echo {{ params.n }}\"", "\"true\""]);
        } else {
            self.string();
        }
    }

    fn phase(&mut self) {
        self.word("phase");
        let name = self.one(PHASES);
        self.word(name);
        if self.chance(3) {
            self.string();
        }
        if self.chance(3) {
            self.word("after");
            self.names(PHASES, true);
        }
        self.word("{");
        for _ in 0..self.pick(5) {
            match self.pick(8) {
                0 => self.metadata(),
                1 => self.duration("estimate"),
                2 => self.rollback(),
                3 | 4 => self.checkpoint(),
                _ => self.step(),
            }
        }
        self.word("}");
    }

    fn after_clause(&mut self, trailing_comma: bool) {
        self.word("after");
        self.names(STEPS, trailing_comma);
    }

    fn step(&mut self) {
        self.word("step");
        let name = self.one(STEPS);
        self.word(name);
        if self.chance(3) {
            self.string();
        }
        match self.pick(5) {
            0 => {
                self.word("by");
                let agent = self.one(AGENTS);
                self.word(agent);
            }
            1 => {
                self.word("by");
                let agent = self.one(AGENTS);
                self.word(agent);
                self.after_clause(true);
            }
            2 => {
                let by = self.chance(2);
                self.after_clause(!by);
                if by {
                    self.word("by");
                    let agent = self.one(AGENTS);
                    self.word(agent);
                }
            }
            _ => {}
        }
        self.word("{");
        for _ in 0..self.pick(5) {
            match self.pick(10) {
                0 => self.metadata(),
                1 => {
                    self.word("prompt");
                    if self.chance(4) {
                        self.word("file");
                        self.word("(");
                        self.word("\"prompts/missing.md\"");
                        self.word(")");
                    } else {
                        self.string();
                    }
                }
                2 | 3 => self.sh(),
                4 => {
                    self.word("produces");
                    if self.chance(2) {
                        self.list(GLOBS);
                    } else {
                        self.word("\"out.txt\"");
                    }
                }
                5 => {
                    self.word("until");
                    self.string();
                    if self.chance(2) {
                        self.word("attempts");
                        let n = self.one(&["3", "0", "-1", "2.5"]);
                        self.word(n);
                    }
                }
                6 => self.duration("timeout"),
                7 => {
                    self.word("when");
                    let e = self.one(&[
                        "\"params.flag\"",
                        "\"params.n > 2 and steps.s0.status == 'succeeded'\"",
                        "\"not (\"",
                    ]);
                    self.word(e);
                }
                8 => {
                    self.word("on_failure");
                    let f = self.one(&["continue", "rollback", "escalate", "retry"]);
                    self.word(f);
                }
                _ => self.rollback(),
            }
        }
        self.word("}");
    }

    fn checkpoint(&mut self) {
        self.word("checkpoint");
        let name = self.one(CHECKPOINTS);
        self.word(name);
        if self.chance(3) {
            self.string();
        }
        if self.chance(2) {
            self.after_clause(true);
        }
        self.word("{");
        for _ in 0..self.pick(5) {
            match self.pick(6) {
                0 => {
                    self.word("show");
                    let items = &[
                        "diff",
                        "\"report.md\"",
                        "steps.s0.output",
                        "steps.s1.files",
                        "nothing",
                    ];
                    if self.chance(2) {
                        let item = self.one(items);
                        self.word(item);
                    } else {
                        self.list(items);
                    }
                }
                1 => {
                    self.word("ask");
                    self.string();
                }
                2 => {
                    self.word("revise");
                    let step = self.one(STEPS);
                    self.word(step);
                }
                3 => {
                    self.word("approvers");
                    self.list(&["\"alice\"", "\"bob\""]);
                }
                4 => self.duration("timeout"),
                _ => self.metadata(),
            }
        }
        self.word("}");
    }
}

/// The number of cases: `RUNBOOK_GRAMMAR_CASES`, or 2,000 (a few seconds unoptimized).
/// CI runs 100,000 in the optimized `proptest` profile (see `.ci/run`).
fn cases() -> u32 {
    std::env::var("RUNBOOK_GRAMMAR_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// `RUNBOOK_GRAMMAR_REPLAY=FILE` checks that file instead of generating (to study or
/// minimize a failure the test kept).
fn replay() -> bool {
    let Some(path) = std::env::var_os("RUNBOOK_GRAMMAR_REPLAY") else {
        return false;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let bytes = std::fs::read(&path).expect("the file to replay");
    harness::check_text(&bytes, dir.path());
    true
}

#[test]
fn generated_runbooks_parse_check_and_format_well() {
    if replay() {
        return;
    }
    // One runner per core, each with its own seed and share of the cases.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8)) as u32;
    let cases = cases();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let share = cases / threads + u32::from(t < cases % threads);
            scope.spawn(move || run_cases(t, share));
        }
    });
}

/// Runs `cases` generated runbooks from the seed numbered `seed`.
fn run_cases(seed: u32, cases: u32) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    // Fixed seeds: the same cases on every run, so a failure in CI reproduces locally.
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let ran = std::cell::Cell::new(0u32);
    let result = runner.run(&prop::collection::vec(any::<u8>(), 0..320), |choices| {
        let text = Generator {
            choices: &choices,
            at: 0,
            comments: 0,
            out: String::new(),
        }
        .file();
        if let Err(e) = runbook::syntax::parse(&text) {
            return Err(TestCaseError::fail(format!(
                "a generated file does not parse: {} at {:?}\n{text}",
                e.message, e.span
            )));
        }
        let checked = std::panic::catch_unwind(|| harness::check_text(text.as_bytes(), dir.path()));
        ran.set(ran.get() + 1);
        if checked.is_err() {
            // Shrinking ends on the smallest failing text: keep it for a look (replay it
            // with RUNBOOK_GRAMMAR_REPLAY), and show it.
            let name = format!("grammar-failure-{seed}.runbook");
            let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
            let _ = std::fs::write(&kept, &text);
            return Err(TestCaseError::fail(format!(
                "the checks above failed for this text (kept in {}):\n{text}",
                kept.display()
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(ran.get() >= cases, "ran {} of {cases} cases", ran.get());
}
