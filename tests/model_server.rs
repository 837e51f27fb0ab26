//! The scripted model server against the real agents: claude, codex and gemini (pinned in
//! `tests/agents`) run headless and offline against it, execute a shell command and
//! write a file the script asks for, and report the final answer. A missing binary fails
//! the test (run `npm ci` in tests/agents), never skips it.

mod support;

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::model_server::agent_bin_dir;
use support::model_server::{ModelServer, Turn};

/// How long one agent run may take on a loaded machine before it is killed.
const AGENT_TIMEOUT: Duration = Duration::from_secs(60);

const PROMPT: &str = "Do what the scripted model says.";

/// The path of one agent binary; fails the test when it is not installed.
#[track_caller]
fn agent_bin(name: &str) -> PathBuf {
    let path = agent_bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` in tests/agents (or set RUNBOOK_AGENT_BIN)",
        path.display()
    );
    path
}

/// A temporary git repository for the agent to work in, and a separate home.
struct Sandbox {
    repo: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let repo = tempfile::Builder::new()
            .prefix("model-server-repo")
            .tempdir()
            .expect("create a temporary repository");
        let home = tempfile::Builder::new()
            .prefix("model-server-home")
            .tempdir()
            .expect("create a temporary home");
        std::fs::write(repo.path().join("README.md"), "a test repository\n").expect("write");
        for args in [
            &["init", "-q", "-b", "main"][..],
            &["add", "-A"],
            &[
                "-c",
                "user.name=Test",
                "-c",
                "user.email=test@example.com",
                "commit",
                "-q",
                "-m",
                "initial",
            ],
        ] {
            let status = Command::new("git")
                .args(args)
                .current_dir(repo.path())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdout(Stdio::null())
                .status()
                .expect("run git");
            assert!(status.success(), "git {args:?} failed");
        }
        Sandbox { repo, home }
    }

    fn repo(&self) -> &Path {
        self.repo.path()
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.repo().join(path)).unwrap_or_default()
    }

    /// Runs an agent in the repository with a cleared environment (PATH, HOME, LANG and
    /// `env`), the prompt on stdin, killed after `AGENT_TIMEOUT`.
    fn run(&self, program: &Path, args: &[String], env: &[(&str, String)]) -> AgentOutput {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(self.repo())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("LANG", "C.UTF-8")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("start the agent");
        // Gemini reads stdin only right after it starts: write at once and close.
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(PROMPT.as_bytes())
            .expect("write the prompt");
        drop(stdin);
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let out_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        });
        let err_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let give_up = Instant::now() + AGENT_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the agent") {
                break Some(status);
            }
            if Instant::now() > give_up {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        AgentOutput {
            program: program.display().to_string(),
            code: status.and_then(|s| s.code()),
            timed_out: status.is_none(),
            stdout: out_reader.join().unwrap_or_default(),
            stderr: err_reader.join().unwrap_or_default(),
        }
    }
}

/// What one agent run printed.
#[derive(Debug)]
struct AgentOutput {
    program: String,
    code: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

impl AgentOutput {
    /// Asserts the exit code, showing the output and the server's transcript otherwise.
    #[track_caller]
    fn code(&self, expected: i32, server: &ModelServer) -> &AgentOutput {
        assert!(
            self.code == Some(expected),
            "{} exited {:?} (timed out: {}), expected {expected}\n--- stdout\n{}\n--- stderr\n{}\n--- requests\n{}",
            self.program,
            self.code,
            self.timed_out,
            self.stdout,
            truncate_tail(&self.stderr, 4000),
            server.transcript()
        );
        self
    }

    /// The whole stdout as one JSON value (claude, gemini).
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// The JSON object that ends stderr: gemini reports a failed run there, after its
    /// log lines, with nothing on stdout.
    #[track_caller]
    fn stderr_json(&self) -> Value {
        let start = self.stderr.rfind("\n{\n").map_or(0, |at| at + 1);
        serde_json::from_str(&self.stderr[start..])
            .unwrap_or_else(|e| panic!("stderr does not end in JSON ({e}):\n{}", self.stderr))
    }

    /// Every JSON line of stdout (codex).
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

fn truncate_tail(text: &str, max: usize) -> &str {
    let start = text.len().saturating_sub(max);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    &text[start..]
}

/// The script every happy-path test plays.
fn shell_write_text() -> Vec<Turn> {
    vec![
        Turn::Shell("echo hi > shell.txt".into()),
        Turn::Write {
            path: "written.txt".into(),
            content: "from the model\n".into(),
        },
        Turn::Text("all done".into()),
    ]
}

/// Asserts what the happy-path script leaves behind.
#[track_caller]
fn assert_files(sandbox: &Sandbox, server: &ModelServer) {
    assert_eq!(sandbox.read("shell.txt"), "hi\n", "{}", server.transcript());
    assert_eq!(
        sandbox.read("written.txt"),
        "from the model\n",
        "{}",
        server.transcript()
    );
    assert_eq!(server.remaining_turns(), 0, "{}", server.transcript());
}

#[track_caller]
fn assert_offers(server: &ModelServer, tool: &str) {
    let tools = server.offered_tools();
    assert!(
        tools.iter().any(|t| t == tool),
        "{tool} not offered: {tools:?}"
    );
}

// ---------------------------------------------------------------------------------------
// claude

/// A prefix rule for the shell, and a path rule for file edits. A bare `Edit` would let
/// the Edit tool write but not a shell redirect (`echo hi > shell.txt`): under `dontAsk`
/// a redirect needs an `Edit(path)` rule that covers its target, else Bash is denied.
const CLAUDE_ALLOWED: &[&str] = &["Bash(echo *)", "Edit(**)"];

/// Claude's headless invocation with these `--allowedTools` rules, then `extra`.
fn claude_args(allowed: &[&str], extra: &[&str]) -> Vec<String> {
    [
        "-p",
        "--bare",
        "--output-format",
        "json",
        "--permission-mode",
        "dontAsk",
        "--allowedTools",
    ]
    .iter()
    .chain(allowed)
    .chain(extra)
    .map(|s| s.to_string())
    .collect()
}

fn claude_env(server: &ModelServer) -> Vec<(&'static str, String)> {
    vec![
        ("ANTHROPIC_BASE_URL", server.url()),
        ("ANTHROPIC_API_KEY", "test-key".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
    ]
}

#[test]
fn claude_runs_a_command_and_writes_a_file() {
    let claude = agent_bin("claude");
    let sandbox = Sandbox::new();
    let server = ModelServer::start(shell_write_text());
    let out = sandbox.run(
        &claude,
        &claude_args(CLAUDE_ALLOWED, &[]),
        &claude_env(&server),
    );
    out.code(0, &server);
    let result = out.json();
    eprintln!("claude result: {result:#}");
    assert_eq!(result["result"], "all done");
    assert_files(&sandbox, &server);
    assert_offers(&server, "Bash");
    let results = server.tool_results();
    eprintln!("claude tool results: {results:?}");
    assert!(
        results.iter().any(|r| r.contains("written.txt")),
        "{results:?}"
    );
}

// ---------------------------------------------------------------------------------------
// codex

fn codex_args(server: &ModelServer, extra: &[&str]) -> Vec<String> {
    let provider = format!(
        r#"model_providers.mock={{name="mock", base_url="{}/v1", wire_api="responses", env_key="MOCK_KEY"}}"#,
        server.url()
    );
    let mut args: Vec<String> = vec![
        "exec".into(),
        "--json".into(),
        "--skip-git-repo-check".into(),
        "--ephemeral".into(),
        "-s".into(),
        "workspace-write".into(),
        "-c".into(),
        "model_provider=mock".into(),
        "-c".into(),
        provider,
        "-m".into(),
        "some-model".into(),
    ];
    // Offline: no plugin catalogue sync (github.com, api.github.com, chatgpt.com), no
    // analytics (ab.chatgpt.com), no update check.
    for key in [
        "features.plugins=false",
        "analytics.enabled=false",
        "check_for_update_on_startup=false",
    ] {
        args.push("-c".into());
        args.push(key.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push("-".into());
    args
}

fn codex_env(sandbox: &Sandbox) -> Vec<(&'static str, String)> {
    let codex_home = sandbox.home().join(".codex");
    std::fs::create_dir_all(&codex_home).expect("create CODEX_HOME");
    vec![
        ("CODEX_HOME", codex_home.display().to_string()),
        ("MOCK_KEY", "test-key".into()),
    ]
}

#[test]
fn codex_runs_a_command_and_writes_a_file() {
    let codex = agent_bin("codex");
    let sandbox = Sandbox::new();
    let server = ModelServer::start(shell_write_text());
    let out = sandbox.run(&codex, &codex_args(&server, &[]), &codex_env(&sandbox));
    out.code(0, &server);
    let events = out.json_lines();
    eprintln!("codex events: {}", out.stdout);
    let message = events
        .iter()
        .find(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
        .unwrap_or_else(|| panic!("no agent_message in {}", out.stdout));
    assert_eq!(message["item"]["text"], "all done");
    assert_files(&sandbox, &server);
    let results = server.tool_results();
    eprintln!("codex tool results: {results:?}");
    assert!(!results.is_empty());
}

// ---------------------------------------------------------------------------------------
// gemini

fn gemini_args() -> Vec<String> {
    [
        "--output-format",
        "json",
        "--approval-mode",
        "yolo",
        "-m",
        "gemini-2.5-pro",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn gemini_setup(
    sandbox: &Sandbox,
    server: &ModelServer,
    settings: Value,
) -> Vec<(&'static str, String)> {
    let dir = sandbox.home().join(".gemini");
    std::fs::create_dir_all(&dir).expect("create ~/.gemini");
    std::fs::write(dir.join("settings.json"), settings.to_string()).expect("write settings");
    vec![
        ("GOOGLE_GEMINI_BASE_URL", server.url()),
        ("GEMINI_API_KEY", "test-key".into()),
        ("GEMINI_CLI_TRUST_WORKSPACE", "true".into()),
    ]
}

fn gemini_settings() -> Value {
    json!({
        "security": { "auth": { "selectedType": "gemini-api-key" } },
        "privacy": { "usageStatisticsEnabled": false },
        "telemetry": { "enabled": false },
    })
}

#[test]
fn gemini_runs_a_command_and_writes_a_file() {
    let gemini = agent_bin("gemini");
    let sandbox = Sandbox::new();
    let server = ModelServer::start(shell_write_text());
    let env = gemini_setup(&sandbox, &server, gemini_settings());
    let out = sandbox.run(&gemini, &gemini_args(), &env);
    out.code(0, &server);
    let result = out.json();
    eprintln!("gemini result: {result:#}");
    assert_eq!(result["response"], "all done");
    assert_files(&sandbox, &server);
    assert_offers(&server, "run_shell_command");
    let results = server.tool_results();
    eprintln!("gemini tool results: {results:?}");
    assert!(!results.is_empty());
}

// ---------------------------------------------------------------------------------------
// Denied tools, model errors, MCP, budget

#[test]
fn claude_reports_a_denied_command() {
    let claude = agent_bin("claude");
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.repo().join("x"), "keep me\n").expect("write x");
    let server = ModelServer::start(vec![
        Turn::Shell("rm -f x".into()),
        Turn::Text("stopped".into()),
    ]);
    let out = sandbox.run(
        &claude,
        &claude_args(CLAUDE_ALLOWED, &[]),
        &claude_env(&server),
    );
    out.code(0, &server);
    let result = out.json();
    eprintln!("claude denial: {result:#}");
    let denials = result["permission_denials"]
        .as_array()
        .expect("permission_denials");
    assert!(
        denials
            .iter()
            .any(|d| d["tool_name"] == "Bash" && d["tool_input"]["command"] == "rm -f x"),
        "{denials:?}"
    );
    assert_eq!(sandbox.read("x"), "keep me\n");
    let results = server.tool_results();
    assert!(results.iter().any(|r| r.contains("denied")), "{results:?}");
}

#[test]
fn claude_reports_a_model_error() {
    let claude = agent_bin("claude");
    let sandbox = Sandbox::new();
    let server = ModelServer::start(vec![Turn::Fail {
        status: 400,
        message: "scripted failure".into(),
    }]);
    let out = sandbox.run(
        &claude,
        &claude_args(CLAUDE_ALLOWED, &[]),
        &claude_env(&server),
    );
    eprintln!(
        "claude model error: exit {:?}\n{}\n{}",
        out.code, out.stdout, out.stderr
    );
    out.code(1, &server);
    let result = out.json();
    assert_eq!(result["is_error"], true);
    assert!(out.stdout.contains("scripted failure"), "{}", out.stdout);
}

#[test]
fn claude_stops_at_its_budget() {
    let claude = agent_bin("claude");
    let sandbox = Sandbox::new();
    let script = vec![
        Turn::Shell("echo one".into()),
        Turn::Shell("echo two".into()),
        Turn::Text("all done".into()),
    ];
    let server = ModelServer::with_usage(script, 1_000_000, 100_000);
    let args = claude_args(CLAUDE_ALLOWED, &["--max-budget-usd", "0.01"]);
    let out = sandbox.run(&claude, &args, &claude_env(&server));
    eprintln!("claude budget: exit {:?}\n{}", out.code, out.stdout);
    let result = out.json();
    assert_eq!(result["subtype"], "error_max_budget_usd");
    assert!(result["total_cost_usd"].as_f64().unwrap_or(0.0) > 0.01);
}

#[test]
fn claude_offers_the_tools_of_its_mcp_server() {
    let claude = agent_bin("claude");
    let filesystem = agent_bin("mcp-server-filesystem");
    let sandbox = Sandbox::new();
    let server = ModelServer::start(vec![
        Turn::Tool {
            name: "mcp__fs__list_directory".into(),
            input: json!({ "path": sandbox.repo().display().to_string() }),
        },
        Turn::Text("listed".into()),
    ]);
    let config = json!({ "mcpServers": { "fs": {
        "command": filesystem.display().to_string(),
        "args": [sandbox.repo().display().to_string()],
    } } })
    .to_string();
    let allowed = ["Bash(echo *)", "mcp__fs__list_directory"];
    let args = claude_args(&allowed, &["--strict-mcp-config", "--mcp-config", &config]);
    let out = sandbox.run(&claude, &args, &claude_env(&server));
    out.code(0, &server);
    eprintln!("claude mcp: {}", out.stdout);
    assert_offers(&server, "mcp__fs__read_file");
    let results = server.tool_results();
    assert!(
        results.iter().any(|r| r.contains("README.md")),
        "{results:?}"
    );
}

#[test]
fn codex_sandbox_refuses_a_write_outside_the_workspace() {
    let codex = agent_bin("codex");
    let sandbox = Sandbox::new();
    let outside = sandbox.home().join("outside.txt");
    let server = ModelServer::start(vec![
        Turn::Shell(format!("echo escaped > {}", outside.display())),
        Turn::Text("stopped".into()),
    ]);
    // workspace-write makes /tmp and $TMPDIR writable too, and the test's home is there.
    let args = codex_args(
        &server,
        &[
            "-c",
            "sandbox_workspace_write.exclude_slash_tmp=true",
            "-c",
            "sandbox_workspace_write.exclude_tmpdir_env_var=true",
        ],
    );
    let out = sandbox.run(&codex, &args, &codex_env(&sandbox));
    out.code(0, &server);
    eprintln!("codex refusal: {}", out.stdout);
    assert!(
        !outside.exists(),
        "the sandbox let codex write {}",
        outside.display()
    );
    // The refused command leaves no item in the JSONL; the model gets the shell's error.
    let results = server.tool_results();
    assert!(
        results.iter().any(|r| r.contains("Read-only file system")),
        "{results:?}"
    );
}

#[test]
fn codex_reports_a_model_error() {
    let codex = agent_bin("codex");
    let sandbox = Sandbox::new();
    let server = ModelServer::start(vec![Turn::Fail {
        status: 400,
        message: "scripted failure".into(),
    }]);
    let out = sandbox.run(&codex, &codex_args(&server, &[]), &codex_env(&sandbox));
    eprintln!(
        "codex model error: exit {:?}\n{}\n{}",
        out.code, out.stdout, out.stderr
    );
    out.code(1, &server);
    assert!(
        out.json_lines().iter().any(|e| e["type"] == "turn.failed"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("scripted failure"), "{}", out.stdout);
}

#[test]
fn gemini_policy_denies_a_command() {
    let gemini = agent_bin("gemini");
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.repo().join("x"), "keep me\n").expect("write x");
    let policies = sandbox.home().join(".gemini/policies");
    std::fs::create_dir_all(&policies).expect("create the policy directory");
    std::fs::write(
        policies.join("deny-rm.toml"),
        "[[rule]]\ntoolName = \"run_shell_command\"\ncommandPrefix = \"rm\"\ndecision = \"deny\"\npriority = 900\n",
    )
    .expect("write the policy");
    let server = ModelServer::start(vec![
        Turn::Shell("rm -f x".into()),
        Turn::Text("stopped".into()),
    ]);
    let env = gemini_setup(&sandbox, &server, gemini_settings());
    let out = sandbox.run(&gemini, &gemini_args(), &env);
    eprintln!(
        "gemini denial: exit {:?}\n{}\n{}",
        out.code, out.stdout, out.stderr
    );
    eprintln!("gemini tool results: {:?}", server.tool_results());
    out.code(0, &server);
    assert_eq!(sandbox.read("x"), "keep me\n");
    assert_eq!(server.tool_results(), ["Tool execution denied by policy."]);
    let result = out.json();
    assert_eq!(
        result["stats"]["tools"]["byName"]["run_shell_command"]["fail"],
        1
    );
}

#[test]
fn gemini_reports_a_model_error() {
    let gemini = agent_bin("gemini");
    let sandbox = Sandbox::new();
    let server = ModelServer::start(vec![Turn::Fail {
        status: 400,
        message: "scripted failure".into(),
    }]);
    let env = gemini_setup(&sandbox, &server, gemini_settings());
    let out = sandbox.run(&gemini, &gemini_args(), &env);
    eprintln!(
        "gemini model error: exit {:?}\n{}\n{}",
        out.code, out.stdout, out.stderr
    );
    // Gemini exits with the HTTP status as its code: 400 & 0xff = 144.
    out.code(144, &server);
    assert_eq!(out.stdout, "");
    let result = out.stderr_json();
    assert_eq!(result["error"]["code"], 400, "{result:#}");
    assert!(result["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("scripted failure")));
}
