//! `runbook plan`: snapshots of every format for every example runbook, Mermaid output
//! parsed by Mermaid's own parser, DOT output laid out by Graphviz, and the plan's
//! rules (critical path, unset params) on small runbooks.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the real binary in `dir`.
fn runbook(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runbook"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the runbook binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The example runbooks, as paths relative to the repository root.
fn examples() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("runbooks"))
        .expect("runbooks/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "runbook"))
        .map(|p| format!("runbooks/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

const FORMATS: [&str; 5] = ["markdown", "text", "mermaid", "dot", "json"];

#[test]
fn snapshots_of_every_format() {
    for file in examples() {
        let stem = Path::new(&file)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for format in FORMATS {
            let out = stdout(&runbook(root(), &["plan", &file, "--format", format]));
            insta::assert_snapshot!(format!("{stem}.{format}"), out);
        }
        let out = stdout(&runbook(
            root(),
            &["plan", &file, "--format", "markdown", "--prompts"],
        ));
        insta::assert_snapshot!(format!("{stem}.markdown-prompts"), out);
    }
}

#[test]
fn coding_agents_show_kind_limits_budget_and_mcp_servers() {
    let file = "tests/check/ok_coding_agents.runbook";
    for format in ["text", "markdown", "json"] {
        let out = stdout(&runbook(root(), &["plan", file, "--format", format]));
        insta::assert_snapshot!(format!("coding_agents.{format}"), out);
    }
    let json: serde_json::Value = serde_json::from_str(&stdout(&runbook(
        root(),
        &["plan", file, "--format", "json"],
    )))
    .expect("JSON");
    assert_eq!(json["budget"], 12.5);
    assert_eq!(json["mcp_servers"][0]["name"], "github");
    let reviewer = json["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["name"] == "reviewer")
        .expect("reviewer");
    assert_eq!(reviewer["kind"], "claude");
    assert_eq!(reviewer["run"], "claude");
    assert_eq!(reviewer["model"], "claude-sonnet-4-5");
    assert_eq!(reviewer["max_turns"], 10);
    assert_eq!(reviewer["budget"], 0.75);
}

#[test]
fn given_params_are_shown_and_rendered() {
    let out = stdout(&runbook(
        root(),
        &[
            "plan",
            "runbooks/release.runbook",
            "--param",
            "version=2.7.0",
            "--param",
            "dry_run=false",
            "--prompts",
            "--format",
            "json",
        ],
    ));
    let plan: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(plan["schema"], "runbook-plan/1");
    let params = plan["params"].as_array().unwrap();
    assert_eq!(params[0]["name"], "version");
    assert_eq!(params[0]["value"], "2.7.0");
    assert_eq!(params[0]["source"], "given");
    assert_eq!(params[1]["source"], "given");
    assert!(out.contains("Create tag v2.7.0 on this commit?"), "{out}");
    assert!(!out.contains("<version: not set>"));
}

#[test]
fn unknown_or_mistyped_params_are_usage_errors() {
    let out = runbook(
        root(),
        &["plan", "runbooks/demo.runbook", "--param", "nope=1"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown param `nope`"));
    let out = runbook(
        root(),
        &[
            "plan",
            "runbooks/demo.runbook",
            "--param",
            "break_smoke_test=maybe",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_runbook_with_errors_has_no_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.runbook"),
        "runbook bad { phase p { step s by nobody { prompt \"x\" } } }\n",
    )
    .unwrap();
    let out = runbook(dir.path(), &["plan", "bad.runbook"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown agent `nobody`"));
}

#[test]
fn critical_path_follows_the_longest_chain_of_phases() {
    let dir = tempfile::tempdir().unwrap();
    // a (1h) → b (2h) and a → c (30m) run in parallel, then d (no estimate) after both.
    let text = r#"runbook cp {
  param target: string "where to"
  phase a { estimate 1h  step s1 { sh "true" } }
  phase b after a { estimate 2h  step s2 { sh "echo {{ params.target }}" } }
  phase c after a { estimate 30m  step s3 { sh "true" } }
  phase d after b, c { step s4 after s3 { sh "true" } }
}
"#;
    std::fs::write(dir.path().join("cp.runbook"), text).unwrap();
    let out = stdout(&runbook(
        dir.path(),
        &["plan", "cp.runbook", "--format", "json"],
    ));
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cp = &plan["critical_path"];
    assert_eq!(cp["phases"], serde_json::json!(["a", "b"]));
    assert_eq!(cp["estimate"]["seconds"], 3 * 3600);
    assert_eq!(cp["estimate"]["text"], "3h");
    assert_eq!(cp["unestimated"], serde_json::json!(["d"]));
    assert_eq!(plan["phases"][3]["after"], serde_json::json!(["b", "c"]));
    assert_eq!(plan["params"][0]["source"], "unset");
    assert_eq!(plan["params"][0]["value"], serde_json::Value::Null);

    let md = stdout(&runbook(dir.path(), &["plan", "cp.runbook"]));
    assert!(
        md.contains("**Estimated total: 3 hours** along the critical path: a → b."),
        "{md}"
    );
    assert!(
        md.contains("| `target` | string | **required, not set** | where to |"),
        "{md}"
    );
    assert!(md.contains("### Phase 2: b (Estimated: 2 hours)"), "{md}");
    assert!(md.contains("lower bound): `d`."), "{md}");
}

#[test]
fn a_step_waiting_on_another_phase_counts_that_phase() {
    let dir = tempfile::tempdir().unwrap();
    // b does not follow c, but its step waits for c's step, which may take all of c's
    // 3h: b cannot end before 4h, so the critical path runs through c.
    let text = r#"runbook x {
  phase a { estimate 1h  step s1 { sh "true" } }
  phase c after a { estimate 3h  step s3 { sh "true" } }
  phase b after a { estimate 1h  step s2 after s3 { sh "true" } }
}
"#;
    std::fs::write(dir.path().join("x.runbook"), text).unwrap();
    let out = stdout(&runbook(
        dir.path(),
        &["plan", "x.runbook", "--format", "json"],
    ));
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        plan["critical_path"]["phases"],
        serde_json::json!(["a", "c"])
    );
    assert_eq!(plan["critical_path"]["estimate"]["text"], "4h");
}

#[test]
fn unset_params_render_as_placeholders() {
    let out = stdout(&runbook(
        root(),
        &[
            "plan",
            "runbooks/dependency_upgrade.runbook",
            "--prompts",
            "--format",
            "text",
        ],
    ));
    assert!(out.contains("<crate_name: not set>"), "{out}");
    assert!(out.contains("required, not set"), "{out}");
}

#[test]
fn text_is_colored_only_when_asked() {
    let plain = stdout(&runbook(
        root(),
        &["plan", "runbooks/demo.runbook", "--format", "text"],
    ));
    assert!(!plain.contains('\x1b'));
    let colored = stdout(&runbook(
        root(),
        &[
            "plan",
            "runbooks/demo.runbook",
            "--format",
            "text",
            "--color",
            "always",
        ],
    ));
    assert!(colored.contains("\x1b[1m"));
}

/// A tool the test needs: under CI=true it must be there; locally its absence is a note.
fn tool_missing(what: &str, how: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing; .ci/run installs it ({how})");
    }
    eprintln!("note: skipped, {what} is missing ({how})");
    true
}

/// Writes every example's plan in `format` to `dir`, returning the files.
fn write_all(dir: &Path, format: &str, extension: &str) -> Vec<PathBuf> {
    examples()
        .iter()
        .map(|file| {
            let out = stdout(&runbook(root(), &["plan", file, "--format", format]));
            let stem = Path::new(file)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let path = dir.join(format!("{stem}.{extension}"));
            std::fs::write(&path, out).unwrap();
            path
        })
        .collect()
}

#[test]
fn mermaid_output_parses_with_mermaid() {
    let checker = root().join("tests/mermaid");
    let node = Command::new("node").arg("--version").output();
    if node.is_err() || !checker.join("node_modules/mermaid").is_dir() {
        tool_missing(
            "node with tests/mermaid/node_modules",
            "cd tests/mermaid && npm ci",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = write_all(dir.path(), "mermaid", "mmd");
    let out = Command::new("node")
        .arg(checker.join("parse.mjs"))
        .args(&files)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("(flowchart-v2)")
            .count(),
        files.len()
    );
}

#[test]
fn dot_output_is_laid_out_by_graphviz() {
    if Command::new("dot").arg("-V").output().is_err() {
        tool_missing("graphviz `dot`", "apt-get install graphviz");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for file in write_all(dir.path(), "dot", "dot") {
        let out = Command::new("dot")
            .arg("-Tsvg")
            .arg(&file)
            .output()
            .expect("dot runs");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
    }
}
