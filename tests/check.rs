//! `runbook check` on the corpus in `tests/check/`: every `*.runbook` there is checked
//! by the real binary, and its human (stderr) and JSON (stdout) output are snapshots.
//! Files named `ok_*` must pass; `eNNNN_*` must fail with code ENNNN; `wNNNN_*` must
//! pass with warning WNNNN. Adding a test is adding a file.
//!
//! The policy tests copy `tests/check/policy/` into a temporary git repository, since
//! `policy.runbook` applies only at the root of a repository.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The outcome of one run of the binary.
struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A run of `runbook` with arguments in a directory.
struct Check {
    args: Vec<String>,
    cwd: PathBuf,
}

impl Check {
    /// `runbook check` in `tests/check`.
    fn new() -> Check {
        Check {
            args: vec!["check".into()],
            cwd: corpus(),
        }
    }

    fn arg(mut self, arg: impl Into<String>) -> Check {
        self.args.push(arg.into());
        self
    }

    fn cwd(mut self, cwd: &Path) -> Check {
        self.cwd = cwd.to_path_buf();
        self
    }

    fn run(self) -> Output {
        let output = Command::new(env!("CARGO_BIN_EXE_runbook"))
            .args(&self.args)
            .current_dir(&self.cwd)
            .env("NO_COLOR", "1")
            .output()
            .expect("the runbook binary starts");
        Output {
            code: output
                .status
                .code()
                .expect("exited, not killed by a signal"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check")
}

/// The codes in a `--format json` document.
fn codes(json: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
    doc["diagnostics"]
        .as_array()
        .expect("a diagnostics array")
        .iter()
        .map(|d| d["code"].as_str().expect("a code").to_string())
        .collect()
}

#[test]
fn corpus_files() {
    insta::glob!("check/*.runbook", |path| {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 file name");
        let human = Check::new().arg(name).run();
        let json = Check::new().arg("--format").arg("json").arg(name).run();
        assert_eq!(
            human.code, json.code,
            "{name}: same exit code in both formats"
        );
        let found = codes(&json.stdout);
        let prefix: String = name.chars().take(5).collect();
        match name.as_bytes()[0] {
            b'o' => {
                assert_eq!(json.code, 0, "{name} must pass:\n{}", human.stderr);
                assert!(found.is_empty(), "{name} must be clean: {found:?}");
            }
            b'e' => {
                assert_eq!(json.code, 1, "{name} must fail:\n{}", human.stderr);
                let code = prefix.to_uppercase();
                assert!(
                    found.contains(&code),
                    "{name} must report {code}: {found:?}"
                );
            }
            b'w' => {
                assert_eq!(json.code, 0, "{name} has only warnings:\n{}", human.stderr);
                let code = prefix.to_uppercase();
                assert!(
                    found.contains(&code),
                    "{name} must report {code}: {found:?}"
                );
            }
            _ => panic!("{name}: corpus files start with ok_, eNNNN_ or wNNNN_"),
        }
        insta::assert_snapshot!("human", human.stderr);
        insta::assert_snapshot!("json", json.stdout);
    });
}

#[test]
fn every_code_has_a_corpus_file() {
    let documented = [
        "E0001", "E0003", "E0004", "E0101", "E0102", "E0103", "E0104", "E0105", "E0106", "E0107",
        "E0108", "E0109", "E0201", "E0202", "E0301", "E0302", "E0303", "E0401", "E0402", "E0403",
        "E0404", "E0405", "E0501", "E0502", "E0503", "E0504", "E0505", "E0506", "E0507", "E0508",
        "E0509", "E0510", "E0511", "E0512", "E0513", "E0514", "E0515", "W0001", "W0002", "W0003",
        "W0004", "W0005",
    ];
    let mut names: Vec<String> = Vec::new();
    for dir in [corpus(), corpus().join("policy")] {
        for entry in std::fs::read_dir(dir).expect("corpus directory") {
            names.push(entry.expect("entry").file_name().to_string_lossy().into());
        }
    }
    for code in documented {
        let prefix = code.to_lowercase();
        assert!(
            names.iter().any(|n| n.starts_with(&prefix)),
            "no corpus file for {code}"
        );
    }
}

#[test]
fn github_format() {
    let out = Check::new()
        .arg("--format")
        .arg("github")
        .arg("e0102_unknown_after.runbook")
        .run();
    assert_eq!(out.code, 1);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn deny_warnings_fails_on_a_warning() {
    let out = Check::new()
        .arg("--deny-warnings")
        .arg("w0001_unused_agent.runbook")
        .run();
    assert_eq!(out.code, 1, "{}", out.stderr);
}

#[test]
fn several_files_in_one_run() {
    let out = Check::new()
        .arg("ok_minimal.runbook")
        .arg("e0101_unknown_agent.runbook")
        .run();
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("checked 2 files: 1 error, 0 warnings"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_file_is_a_usage_error() {
    let out = Check::new().arg("no_such_file.runbook").run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot read no_such_file.runbook"),
        "{}",
        out.stderr
    );
    let json = Check::new()
        .arg("--format")
        .arg("json")
        .arg("no_such_file.runbook")
        .run();
    assert_eq!(json.code, 2);
}

#[test]
fn directory_without_runbooks_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Check::new().arg(dir.path().to_string_lossy()).run();
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("no .runbook files"), "{}", out.stderr);
}

#[test]
fn directory_is_searched() {
    let out = Check::new().arg("lib").run();
    // The two cycle modules import each other; common.runbook is fine.
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("checked 3 files"), "{}", out.stderr);
    assert!(out.stderr.contains("E0107"), "{}", out.stderr);
}

/// A temporary git repository holding `policy.runbook` (from `policy_source`) at its
/// root and the runbooks of `tests/check/policy/` under `runbooks/`.
fn repository(policy_source: &str) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("temp dir");
    let git = Command::new("git")
        .args(["init", "--quiet"])
        .current_dir(repo.path())
        .status();
    if !git.is_ok_and(|s| s.success()) {
        // Without git on PATH, a `.git` directory is all the policy lookup needs.
        std::fs::create_dir(repo.path().join(".git")).expect("create .git");
    }
    let fixtures = corpus().join("policy");
    std::fs::copy(
        fixtures.join(policy_source),
        repo.path().join("policy.runbook"),
    )
    .expect("copy the policy");
    let runbooks = repo.path().join("runbooks");
    std::fs::create_dir(&runbooks).expect("create runbooks/");
    for name in ["e0404_exceeds_policy.runbook", "ok_within_policy.runbook"] {
        std::fs::copy(fixtures.join(name), runbooks.join(name)).expect("copy a runbook");
    }
    repo
}

#[test]
fn policy_ceiling_points_at_both_files() {
    let repo = repository("policy.runbook");
    let ok = Check::new()
        .cwd(repo.path())
        .arg("runbooks/ok_within_policy.runbook")
        .run();
    assert_eq!(ok.code, 0, "{}", ok.stderr);

    let human = Check::new()
        .cwd(repo.path())
        .arg("runbooks/e0404_exceeds_policy.runbook")
        .run();
    let json = Check::new()
        .cwd(repo.path())
        .arg("--format")
        .arg("json")
        .arg("runbooks/e0404_exceeds_policy.runbook")
        .run();
    assert_eq!(json.code, 1, "{}", human.stderr);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let diagnostics = doc["diagnostics"].as_array().expect("diagnostics");
    let message = |d: &serde_json::Value| d["message"].as_str().unwrap_or_default().to_string();
    for wanted in ["exec `kubectl`", "write `deploy/**`", "network on"] {
        let d = diagnostics
            .iter()
            .find(|d| message(d).contains(wanted))
            .unwrap_or_else(|| panic!("no E0404 about {wanted}: {}", json.stdout));
        assert_eq!(d["code"], "E0404");
        assert_eq!(d["file"], "runbooks/e0404_exceeds_policy.runbook");
        assert_eq!(d["labels"][0]["file"], "policy.runbook", "{d}");
    }
    // With no default paths, `check` reads the repository's runbooks/.
    let all = Check::new().cwd(repo.path()).run();
    assert_eq!(all.code, 1);
    assert!(all.stderr.contains("checked 2 files"), "{}", all.stderr);
    insta::assert_snapshot!("policy_human", human.stderr);
    insta::assert_snapshot!("policy_json", json.stdout);
}

#[test]
fn policy_mcp_servers() {
    let repo = repository("mcp_policy.runbook");
    let name = "e0404_mcp_server_outside_policy.runbook";
    std::fs::copy(
        corpus().join("policy").join(name),
        repo.path().join("runbooks").join(name),
    )
    .expect("copy a runbook");
    let path = format!("runbooks/{name}");
    let human = Check::new().cwd(repo.path()).arg(&path).run();
    let json = Check::new()
        .cwd(repo.path())
        .arg("--format")
        .arg("json")
        .arg(&path)
        .run();
    assert_eq!(json.code, 1, "{}", human.stderr);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let diagnostics = doc["diagnostics"].as_array().expect("diagnostics");
    let about_fs: Vec<&serde_json::Value> = diagnostics
        .iter()
        .filter(|d| {
            d["message"]
                .as_str()
                .is_some_and(|m| m.contains("MCP server `fs`"))
        })
        .collect();
    assert_eq!(about_fs.len(), 1, "{}", json.stdout);
    assert_eq!(about_fs[0]["code"], "E0404");
    let files: Vec<&str> = about_fs[0]["labels"]
        .as_array()
        .expect("labels")
        .iter()
        .filter_map(|l| l["file"].as_str())
        .collect();
    assert!(files.contains(&"policy.runbook"), "{files:?}");
    assert!(
        !diagnostics.iter().any(|d| d["message"]
            .as_str()
            .is_some_and(|m| m.contains("`github`"))),
        "github is allowed: {}",
        json.stdout
    );
    insta::assert_snapshot!("policy_mcp_human", human.stderr);
}

#[test]
fn policy_file_that_is_not_a_policy() {
    let repo = repository("e0511_not_a_policy.runbook");
    let out = Check::new()
        .cwd(repo.path())
        .arg("--format")
        .arg("json")
        .arg("runbooks/ok_within_policy.runbook")
        .run();
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert_eq!(codes(&out.stdout), ["E0511"]);
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn a_prompt_file_that_is_not_a_regular_file_is_refused_not_read_forever() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.runbook"),
        "runbook t {\n  agent a { run \"cat\" }\n  phase p {\n    step s by a { prompt file(\"/dev/zero\") }\n  }\n}\n",
    )
    .unwrap();
    let out = Check::new().cwd(dir.path()).arg("t.runbook").run();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(all.contains("not a regular file"), "{all}");
    assert!(all.contains("t.runbook:4"), "{all}");
}
