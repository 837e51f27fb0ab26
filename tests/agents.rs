//! The stdlib presets driving the real CLI agents (claude, codex, gemini, pinned in
//! tests/agents/package.json; aider, pinned in tests/agents/requirements.txt) through
//! `runbook run`, in the OS sandbox, against the scripted model server of
//! tests/support/model_server.rs on 127.0.0.1. Nothing leaves the machine and no key is
//! real. A missing agent fails these tests: they install what they need on first use
//! (`npm ci`, a Python venv in tests/agents/.venv), as `.ci/run` does up front.
//!
//! For each agent: (a) an allowed write lands in the step's commit and the final message
//! becomes `steps.X.output`; (b) a command outside `exec` is refused, by the agent where
//! it can and by the interpreter where it cannot; (c) a write outside `write` never
//! reaches the run branch; (d) the model is offered the tools of the allowed MCP server
//! and of no other; (e) a failing (or, for Claude, over-budget) agent fails the step
//! with the reason recorded; (f) no secret value is in the recorded argv, config files
//! or anything else under the run directory.

mod support;

use serde_json::Value;
use support::model_server::{agent_bin_dir, aider_bin_dir, ModelServer, Turn};
use support::{git, init_repo, Test, RUNBOOK};

/// One of the agents under test.
#[derive(Clone, Copy)]
struct Agent {
    /// The preset (`agents.NAME`) and binary name.
    name: &'static str,
    /// The variable the preset reads the model's base URL from.
    base_url: &'static str,
    /// The variable of its key.
    key: &'static str,
    /// What the model server sees the base URL as (codex talks to `/v1/responses`).
    suffix: &'static str,
}

const CLAUDE: Agent = Agent {
    name: "claude",
    base_url: "ANTHROPIC_BASE_URL",
    key: "ANTHROPIC_API_KEY",
    suffix: "",
};
const CODEX: Agent = Agent {
    name: "codex",
    base_url: "OPENAI_BASE_URL",
    key: "OPENAI_API_KEY",
    suffix: "/v1",
};
const GEMINI: Agent = Agent {
    name: "gemini",
    base_url: "GOOGLE_GEMINI_BASE_URL",
    key: "GEMINI_API_KEY",
    suffix: "",
};
const AIDER: Agent = Agent {
    name: "aider",
    base_url: "OPENAI_API_BASE",
    key: "OPENAI_API_KEY",
    suffix: "/v1",
};

/// Where the agent's binary is installed.
fn bin_dir(agent: Agent) -> std::path::PathBuf {
    if agent.name == "aider" {
        aider_bin_dir()
    } else {
        agent_bin_dir()
    }
}

/// A key that must never appear in any record.
const KEY: &str = "sk-test-9f3a7c1e5b2d4680-never-recorded";

/// `worker`'s extra fields, per test.
struct Setup<'a> {
    exec: &'a str,
    mcp: &'a str,
    extra: &'a str,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            exec: r#"["echo"]"#,
            mcp: "[]",
            extra: "",
        }
    }
}

/// A repository with `README.md` and `src/`, and a runbook in which `worker` (the
/// preset, narrowed: writes only `src/**`, network off) does step `edit`, and a shell
/// step then records `steps.edit.output` in `report.txt`.
fn project(agent: Agent, setup: Setup) -> Test {
    let mcp_bin = agent_bin_dir().join("mcp-server-filesystem");
    // Codex picks its tools by model: its default model gets a JavaScript "code mode"
    // the scripted server does not play, an unknown one the classic `exec_command`.
    // aider (through litellm) takes the provider from the model's prefix.
    let model = match agent.name {
        "codex" => "model   \"scripted-model\"",
        "aider" => "model   \"openai/scripted-model\"",
        _ => "",
    };
    // aider has no MCP.
    let mcp_line = if agent.name == "aider" {
        String::new()
    } else {
        format!("mcp     {}", setup.mcp)
    };
    let text = format!(
        r#"runbook agents_test {{
  import "std/agents"
  secret {key}

  mcp fs {{ run "{mcp} src" }}
  mcp other {{ run "{mcp} ." }}

  agent worker uses agents.{name} {{
    read    ["**"]
    write   ["src/**"]
    exec    {exec}
    network off
    {mcp_line}
    env     [{key}, {base}]
    timeout 120s
    {model}
    {extra}
  }}

  phase work {{
    step edit by worker {{
      prompt "Add src/new.txt, then say what you did."
    }}
    step report after edit {{
      sh "printf '%s' {{{{ steps.edit.output | shell_quote }}}} > report.txt"
    }}
  }}
}}
"#,
        key = agent.key,
        base = agent.base_url,
        name = agent.name,
        mcp = mcp_bin.display(),
        exec = setup.exec,
        mcp_line = mcp_line,
        extra = setup.extra,
        model = model,
    );
    let t = Test::new()
        .runbook(&text)
        .write("README.md", "the project\n")
        .write("src/lib.txt", "library\n");
    init_repo(t)
}

/// Runs the project's runbook with the agent pointed at `server`.
fn run(t: &Test, agent: Agent, server: &ModelServer) -> support::Output {
    run_with(t, agent, server, &[])
}

/// `run` with more arguments to `runbook run`.
fn run_with(t: &Test, agent: Agent, server: &ModelServer, args: &[&str]) -> support::Output {
    let bin = bin_dir(agent);
    assert!(
        bin.join(agent.name).exists(),
        "{} is missing from {}: run `npm ci` in tests/agents, or make tests/agents/.venv (or set RUNBOOK_AGENT_BIN, RUNBOOK_AIDER_BIN)",
        agent.name,
        bin.display()
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut argv = vec!["run", RUNBOOK];
    argv.extend_from_slice(args);
    let out = t.command_with(
        &argv,
        &[
            ("PATH", path),
            (agent.key, KEY.to_string()),
            (agent.base_url, format!("{}{}", server.url(), agent.suffix)),
        ],
    );
    out
}

/// The run branch's version of `path`, if it has one.
fn on_branch(t: &Test, path: &str) -> Option<String> {
    let branch = git(
        t,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/runbook/",
        ],
    );
    let branch = branch.lines().next().expect("a run branch").to_string();
    let out = std::process::Command::new("git")
        .args(["show", &format!("{branch}:{path}")])
        .current_dir(t.path())
        .output()
        .expect("run git");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `agent_report` of an attempt's result.json.
fn report(t: &Test, step: &str, attempt: u32) -> Value {
    let text = t.last_run().attempt_file(step, attempt, "result.json");
    let v: Value = serde_json::from_str(&text).expect("result.json is JSON");
    v["agent_report"].clone()
}

/// What went wrong, for assertion messages.
fn context(t: &Test, out: &support::Output, server: &ModelServer) -> String {
    let run = t.runs().into_iter().last();
    let files = run
        .map(|r| {
            ["stdout.log", "stderr.log", "result.json", "network.log"]
                .iter()
                .map(|f| {
                    let p = r.attempt_dir("edit", 1).join(f);
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let tail: String = text
                        .chars()
                        .rev()
                        .take(3000)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    format!("--- {f}\n{tail}")
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    format!(
        "stdout:\n{}\nstderr:\n{}\n{files}\n--- model server\n{}",
        out.stdout,
        out.stderr,
        server.transcript()
    )
}

// ---- (a) an allowed write lands; the final message is the step's output -------------

fn allowed_write_lands(agent: Agent) {
    let t = project(agent, Setup::default());
    let server = ModelServer::start(vec![
        Turn::Write {
            path: "src/new.txt".into(),
            content: "written by the agent\n".into(),
        },
        Turn::Text("I added src/new.txt".into()),
    ]);
    let out = run(&t, agent, &server);
    let why = context(&t, &out, &server);
    assert_eq!(out.code, Some(0), "{why}");
    assert_eq!(
        on_branch(&t, "src/new.txt").as_deref(),
        Some("written by the agent\n"),
        "{why}"
    );
    assert_eq!(
        on_branch(&t, "report.txt").as_deref(),
        Some("I added src/new.txt")
    );
    let run = t.last_run();
    assert_eq!(
        run.attempt_file("edit", 1, "message.md"),
        "I added src/new.txt"
    );
    let r = report(&t, "edit", 1);
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["input_tokens"].as_u64().unwrap_or(0) > 0, "{r}");
    // The commit of the step names its agent.
    let finished = run.events_named("step_finished");
    assert!(finished[0]["commit"].is_string(), "{finished:?}");
}

#[test]
fn claude_allowed_write_lands() {
    allowed_write_lands(CLAUDE);
}

#[test]
fn codex_allowed_write_lands() {
    allowed_write_lands(CODEX);
}

#[test]
fn gemini_allowed_write_lands() {
    allowed_write_lands(GEMINI);
}

// ---- (b) a command outside `exec` is refused ----------------------------------------

fn command_outside_exec(agent: Agent, command: &str) -> (Test, ModelServer) {
    let t = project(agent, Setup::default());
    let server = ModelServer::start(vec![
        Turn::Shell(command.into()),
        Turn::Text("tried to remove README.md".into()),
    ]);
    let out = run(&t, agent, &server);
    let why = context(&t, &out, &server);
    // Whatever the agent did, README.md is on the run branch as it was.
    assert_eq!(
        on_branch(&t, "README.md").as_deref(),
        Some("the project\n"),
        "{why}"
    );
    assert_eq!(t.read("README.md"), "the project\n");
    (t, server)
}

#[test]
fn claude_refuses_a_command_outside_exec() {
    let (t, _server) = command_outside_exec(CLAUDE, "rm -f README.md");
    let r = report(&t, "edit", 1);
    let denials = r["denials"].to_string();
    assert!(denials.contains("rm -f README.md"), "{r}");
}

#[test]
fn codex_command_outside_exec_is_stopped_by_the_sandbox() {
    // Codex has no per-command allowlist (it refuses only what it deems dangerous,
    // such as `rm -f`): the OS sandbox (write only `src/**`) is what keeps `mv` from
    // moving README.md away, and the model is told it failed.
    let (_t, server) = command_outside_exec(CODEX, "mv README.md gone.md");
    let results = server.tool_results().join("\n");
    assert!(
        results.contains("Read-only file system")
            || results.contains("Permission denied")
            || results.contains("Operation not permitted"),
        "{results}"
    );
}

#[test]
fn gemini_refuses_a_command_outside_exec() {
    let (t, server) = command_outside_exec(GEMINI, "rm -f README.md");
    let results = server.tool_results().join("\n");
    assert!(results.contains("denied by policy"), "{results}");
    let r = report(&t, "edit", 1);
    assert_eq!(
        r["denials"],
        serde_json::json!(["run_shell_command: rm -f README.md"]),
        "{r}"
    );
}

// ---- (c) a write outside `write` never reaches the run branch -----------------------

fn write_outside_never_lands(agent: Agent) {
    let t = project(agent, Setup::default());
    let server = ModelServer::start(vec![
        Turn::Write {
            path: "outside.txt".into(),
            content: "should not land\n".into(),
        },
        Turn::Shell("echo sneaky > sneaky.txt".into()),
        Turn::Text("done".into()),
    ]);
    let out = run(&t, agent, &server);
    let why = context(&t, &out, &server);
    assert_eq!(on_branch(&t, "outside.txt"), None, "{why}");
    assert_eq!(on_branch(&t, "sneaky.txt"), None, "{why}");
    assert!(!t.path().join("outside.txt").exists());
    assert!(!t.path().join("sneaky.txt").exists());
}

#[test]
fn claude_write_outside_never_lands() {
    write_outside_never_lands(CLAUDE);
}

#[test]
fn codex_write_outside_never_lands() {
    write_outside_never_lands(CODEX);
}

#[test]
fn gemini_write_outside_never_lands() {
    write_outside_never_lands(GEMINI);
}

// ---- (d) MCP: the allowed server's tools, and no other's ----------------------------

fn offers_only_allowed_mcp(agent: Agent) -> Vec<String> {
    let t = project(
        agent,
        Setup {
            mcp: r#"["fs"]"#,
            ..Setup::default()
        },
    );
    let server = ModelServer::start(vec![Turn::Text("looked around".into())]);
    let out = run(&t, agent, &server);
    assert_eq!(out.code, Some(0), "{}", context(&t, &out, &server));
    server.offered_tools()
}

#[test]
fn claude_offers_only_the_allowed_mcp_server() {
    let tools = offers_only_allowed_mcp(CLAUDE);
    assert!(
        tools
            .iter()
            .any(|t| t == "mcp__fs__read_text_file" || t == "mcp__fs__read_file"),
        "{tools:?}"
    );
    assert!(
        !tools.iter().any(|t| t.starts_with("mcp__other")),
        "{tools:?}"
    );
}

#[test]
fn codex_offers_only_the_allowed_mcp_server() {
    let tools = offers_only_allowed_mcp(CODEX);
    assert!(
        tools.iter().any(|t| t.starts_with("mcp__fs__")),
        "{tools:?}"
    );
    assert!(
        !tools.iter().any(|t| t.starts_with("mcp__other")),
        "{tools:?}"
    );
}

#[test]
fn gemini_offers_only_the_allowed_mcp_server() {
    let tools = offers_only_allowed_mcp(GEMINI);
    // Gemini names MCP tools after the tool, or `server__tool` where a name clashes.
    assert!(
        tools.iter().any(|t| t.contains("list_allowed_directories")),
        "{tools:?}"
    );
    assert!(!tools.iter().any(|t| t.contains("other")), "{tools:?}");
}

// ---- (e) a failing or over-budget agent fails the step, with the reason --------------

fn model_error_fails_the_step(agent: Agent) -> String {
    let t = project(agent, Setup::default());
    let server = ModelServer::start(vec![Turn::Fail {
        status: 400,
        message: "scripted failure".into(),
    }]);
    let out = run(&t, agent, &server);
    assert_eq!(out.code, Some(1), "{}", context(&t, &out, &server));
    let finished = t.last_run().events_named("step_finished");
    let reason = finished[0]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(finished[0]["ok"], false);
    assert!(reason.contains(agent.name), "{reason}");
    reason
}

#[test]
fn claude_model_error_fails_the_step() {
    let reason = model_error_fails_the_step(CLAUDE);
    assert!(reason.contains("scripted failure"), "{reason}");
}

#[test]
fn codex_model_error_fails_the_step() {
    let reason = model_error_fails_the_step(CODEX);
    assert!(reason.contains("scripted failure"), "{reason}");
}

#[test]
fn gemini_model_error_fails_the_step() {
    let reason = model_error_fails_the_step(GEMINI);
    assert!(reason.contains("scripted failure"), "{reason}");
}

#[test]
fn claude_over_budget_fails_the_step() {
    let t = project(
        CLAUDE,
        Setup {
            extra: "budget 0.01",
            ..Setup::default()
        },
    );
    // A million input tokens cost far more than a cent.
    let server = ModelServer::with_usage(
        vec![Turn::Shell("echo one".into()), Turn::Text("done".into())],
        1_000_000,
        100_000,
    );
    let out = run(&t, CLAUDE, &server);
    assert_eq!(out.code, Some(1), "{}", context(&t, &out, &server));
    let finished = t.last_run().events_named("step_finished");
    let reason = finished[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("budget"), "{reason}");
    assert!(finished[0]["agent"]["cost_usd"].as_f64().unwrap_or(0.0) > 0.01);
    // The recorded argv carries the limit.
    let argv = report_argv(&t);
    assert!(
        argv.windows(2).any(|w| w[0] == "--max-budget-usd"),
        "{argv:?}"
    );
}

#[test]
fn run_budget_stops_the_run() {
    let text = std::fs::read_to_string(project(CLAUDE, Setup::default()).path().join(RUNBOOK))
        .unwrap()
        .replacen("  secret", "  budget 0.01\n  secret", 1);
    let t = init_repo(
        Test::new()
            .runbook(&text)
            .write("README.md", "the project\n")
            .write("src/lib.txt", "library\n"),
    );
    let server = ModelServer::with_usage(vec![Turn::Text("done".into())], 1_000_000, 100_000);
    let out = run(&t, CLAUDE, &server);
    assert_eq!(out.code, Some(1), "{}", context(&t, &out, &server));
    let events = t.last_run().events_named("step_finished");
    let reason = events[0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("the run's budget"), "{reason}");
    // `report` never started.
    assert!(t.last_run().attempts("report").is_empty());
}

fn report_argv(t: &Test) -> Vec<String> {
    let text = t.last_run().attempt_file("edit", 1, "result.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

// ---- (f) no secret in argv, config files or any record ------------------------------

fn no_secret_recorded(agent: Agent) {
    let t = project(
        agent,
        Setup {
            mcp: r#"["fs"]"#,
            ..Setup::default()
        },
    );
    let server = ModelServer::start(vec![Turn::Text("done".into())]);
    let out = run(&t, agent, &server);
    assert_eq!(out.code, Some(0), "{}", context(&t, &out, &server));
    // The agent did get the key: the model server saw it.
    let seen = server
        .requests()
        .iter()
        .any(|r| r.headers.iter().any(|(_, v)| v.contains(KEY)) || r.path.contains(KEY));
    assert!(seen, "the agent never sent its key");
    let files = t.record_files();
    assert!(files
        .iter()
        .any(|(p, _)| p.to_string_lossy().contains("agent/")));
    for (path, bytes) in files {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(KEY), "{} holds the key", path.display());
    }
    let argv = report_argv(&t);
    assert!(!argv.is_empty());
    assert!(!argv.iter().any(|a| a.contains(KEY)));
}

#[test]
fn claude_records_no_secret() {
    no_secret_recorded(CLAUDE);
}

#[test]
fn codex_records_no_secret() {
    no_secret_recorded(CODEX);
}

#[test]
fn gemini_records_no_secret() {
    no_secret_recorded(GEMINI);
}

#[test]
fn aider_records_no_secret() {
    no_secret_recorded(AIDER);
}

// ---- aider: one message, edits in its text, nothing of its own in the step ----------

/// aider writes `src/new.txt` and the step commits just that: none of the files aider
/// makes for itself when left to its defaults.
fn aider_write_lands_alone(sandbox: &[&str]) {
    let t = project(AIDER, Setup::default());
    let server = ModelServer::start(vec![Turn::Write {
        path: "src/new.txt".into(),
        content: "written by aider\n".into(),
    }]);
    let out = run_with(&t, AIDER, &server, sandbox);
    let why = context(&t, &out, &server);
    // A file of aider's own would be outside `write ["src/**"]` and fail the step.
    assert_eq!(out.code, Some(0), "{why}");
    assert_eq!(
        on_branch(&t, "src/new.txt").as_deref(),
        Some("written by aider\n"),
        "{why}"
    );
    let run = t.last_run();
    let finished = run.events_named("step_finished");
    let edit = finished
        .iter()
        .find(|e| e["step"] == "edit")
        .expect("edit finished");
    let changed: Vec<&str> = edit["changes"]
        .as_array()
        .expect("the step's changes")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert_eq!(changed, ["src/new.txt"], "{why}");
    // The model got the rendered prompt, from the prompt file, in one message.
    let asked = server.model_requests();
    assert_eq!(asked.len(), 1, "{why}");
    assert!(asked[0].raw_body.contains("Add src/new.txt"), "{why}");
    // The model's reply is the step's output, read from aider's chat history, which
    // the records keep; so are its token counts.
    let message = run.attempt_file("edit", 1, "message.md");
    assert_eq!(message, "src/new.txt\n```\nwritten by aider\n```", "{why}");
    let transcript = run.attempt_file("edit", 1, "transcript.md");
    assert!(transcript.contains("#### Add src/new.txt"), "{transcript}");
    let r = report(&t, "edit", 1);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["turns"], 1, "{r}");
    assert_eq!(r["input_tokens"], 1000, "{r}");
    assert_eq!(r["output_tokens"], 100, "{r}");
    assert_eq!(on_branch(&t, "report.txt"), Some(message), "{why}");
}

#[test]
fn aider_allowed_write_lands_alone() {
    aider_write_lands_alone(&[]);
}

/// Unconfined, aider can write its repository-map cache into the worktree: the
/// interpreter removes it before looking at what the step changed.
#[test]
fn aider_unconfined_leaves_no_cache_in_the_step() {
    aider_write_lands_alone(&["--sandbox", "off"]);
}

#[test]
fn aider_write_outside_never_lands() {
    let t = project(AIDER, Setup::default());
    let server = ModelServer::start(vec![Turn::Write {
        path: "outside.txt".into(),
        content: "should not land\n".into(),
    }]);
    let out = run(&t, AIDER, &server);
    let why = context(&t, &out, &server);
    // The sandbox refuses the file; aider says so and exits 0, so the step "succeeds"
    // with nothing changed: aider's steps need checks of their own (docs/agents.md).
    assert_eq!(out.code, Some(0), "{why}");
    assert_eq!(on_branch(&t, "outside.txt"), None, "{why}");
    assert!(!t.path().join("outside.txt").exists());
    let run = t.last_run();
    assert!(
        run.attempt_file("edit", 1, "stdout.log")
            .contains("Unable to create outside.txt"),
        "{why}"
    );
    let finished = run.events_named("step_finished");
    assert!(finished[0]["changes"].is_null(), "{finished:?}");
}
