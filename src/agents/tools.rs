//! The CLI coding agents the interpreter knows (`kind claude`, `codex`, `gemini`,
//! `aider`): one step's permissions become the tool's own flags and config files, so
//! that the tool itself refuses what the runbook does not grant and reports it, instead
//! of running into the OS sandbox's walls and working around them.
//!
//! Nothing here is the only line of defence: the interpreter still clears the
//! environment, enforces the timeout, confines the process (src/sandbox) and checks
//! every changed path against `write` before the step's commit. What each tool can and
//! cannot express is in docs/agents.md.

use crate::ir::{Agent, McpServer, Network, Tool};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The tool versions each preset was built and tested with (inclusive range of
/// `major.minor`); `runbook agents` warns outside it.
pub fn tested_versions(tool: Tool) -> (&'static str, &'static str) {
    match tool {
        Tool::Claude => ("2.1", "2.1"),
        Tool::Codex => ("0.169", "0.169"),
        Tool::Gemini => ("0.61", "0.61"),
        Tool::Aider => ("0.86", "0.86"),
    }
}

/// The variables that carry a tool's key and endpoint, in the order they are looked at.
pub fn key_variables(tool: Tool) -> &'static [&'static str] {
    match tool {
        Tool::Claude => &["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"],
        Tool::Codex => &["OPENAI_API_KEY", "CODEX_API_KEY", "OPENAI_BASE_URL"],
        Tool::Gemini => &["GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"],
        Tool::Aider => &["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_API_BASE"],
    }
}

/// What one attempt of a tool agent needs to be started.
pub struct Request<'a> {
    /// The tool.
    pub tool: Tool,
    /// The agent (its `run` line gives the program and any extra arguments).
    pub agent: &'a Agent,
    /// The agent's `run` line.
    pub run: &'a str,
    /// The step's worktree (the tool's working directory).
    pub workdir: &'a Path,
    /// The attempt's own home directory: writable, removed with the attempt, so that no
    /// user configuration (allow rules, MCP servers, hooks) widens what the tool may do.
    pub home: &'a Path,
    /// The interpreter's own home, where `~/` in the permissions points.
    pub user_home: Option<&'a Path>,
    /// The rendered prompt, as a file (aider reads it from there).
    pub prompt_file: &'a Path,
    /// The process environment built so far (values are read for endpoints, and never
    /// written into a file or an argument).
    pub env: &'a [(String, String)],
    /// The MCP servers the agent may use.
    pub mcp: Vec<&'a McpServer>,
    /// The most the attempt may cost (the agent's budget, capped by what is left of the
    /// run's), in US dollars.
    pub budget_usd: Option<f64>,
    /// Whether the attempt runs in the interpreter's OS sandbox.
    pub os_sandbox: bool,
}

/// How to start one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Variables to add to the process environment (or replace in it).
    pub env: Vec<(String, String)>,
    /// Config files to write before the start, relative to the attempt's home.
    pub files: Vec<(PathBuf, String)>,
    /// `host:port` of every endpoint the tool talks to its model at: the sandbox's
    /// proxy admits them even when the agent's network is off.
    pub endpoints: Vec<String>,
    /// Whether the prompt goes on stdin (else it is in the prompt file).
    pub prompt_on_stdin: bool,
    /// Programs the tool starts itself (its MCP servers): the sandbox lets it read them.
    pub programs: Vec<String>,
    /// Paths the tool creates in the working tree for itself (caches): removed when it
    /// exits unless they were there before, so that they are not taken for its work.
    pub scratch: Vec<PathBuf>,
    /// Files to copy before the start: (absolute source, destination relative to the
    /// attempt's home). A missing source is skipped.
    pub copies: Vec<(PathBuf, PathBuf)>,
    /// Where the tool writes its conversation (aider's chat history): kept in the
    /// records as `transcript.md`, and read for its report.
    pub transcript: Option<PathBuf>,
}

/// Why an invocation cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// The `run` line does not split.
    #[error("cannot split `{0}` into a command line")]
    Run(String),
    /// An MCP server's `run` line does not split.
    #[error("cannot split the `run` of MCP server `{0}` into a command line")]
    Mcp(String),
    /// An endpoint variable is not a URL.
    #[error("{name} is not an http(s) URL: `{value}`")]
    Endpoint {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
}

/// Builds the invocation of one attempt.
pub fn invocation(req: &Request) -> Result<Invocation, InvocationError> {
    let argv = shell_words::split(req.run)
        .ok()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| InvocationError::Run(req.run.to_string()))?;
    let mut inv = Invocation {
        argv,
        env: vec![("HOME".into(), req.home.display().to_string())],
        files: Vec::new(),
        endpoints: Vec::new(),
        prompt_on_stdin: true,
        programs: req
            .mcp
            .iter()
            .filter_map(|s| mcp_argv(s).ok())
            .map(|a| a[0].clone())
            .collect(),
        scratch: Vec::new(),
        copies: Vec::new(),
        transcript: None,
    };
    match req.tool {
        Tool::Claude => claude(req, &mut inv)?,
        Tool::Codex => codex(req, &mut inv)?,
        Tool::Gemini => gemini(req, &mut inv)?,
        Tool::Aider => aider(req, &mut inv)?,
    }
    Ok(inv)
}

/// The value of `name` in the request's environment, if set and not empty.
fn var<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.env
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `host:port` of an http(s) URL.
pub fn endpoint_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    // An IPv6 literal keeps its brackets; a port follows the last colon after them.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let port: u16 = authority[i + 1..].parse().ok()?;
            (&authority[..i], port)
        }
        _ => (authority, default),
    };
    if host.is_empty() {
        return None;
    }
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

/// The endpoint of `name` when set, else `default`.
fn endpoint(req: &Request, name: &str, default: &str) -> Result<String, InvocationError> {
    match var(req, name) {
        None => Ok(default.to_string()),
        Some(url) => endpoint_of(url).ok_or_else(|| InvocationError::Endpoint {
            name: name.to_string(),
            value: url.to_string(),
        }),
    }
}

/// The git directory of the checkout at `workdir` and the repository's common directory
/// (they differ for a worktree, whose `.git` is a file naming its own git directory).
fn git_dirs(workdir: &Path) -> Option<(PathBuf, PathBuf)> {
    let dot_git = workdir.join(".git");
    if dot_git.is_dir() {
        return Some((dot_git.clone(), dot_git));
    }
    let pointer = std::fs::read_to_string(&dot_git).ok()?;
    let git_dir = workdir.join(pointer.strip_prefix("gitdir:")?.trim());
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(relative) => git_dir.join(relative.trim()),
        Err(_) => git_dir.clone(),
    };
    Some((git_dir, common))
}

/// An MCP server name as the tools accept it in tool names (`[A-Za-z0-9_-]`): imported
/// servers are named `alias.name`.
pub fn mcp_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An MCP server's program and arguments.
fn mcp_argv(server: &McpServer) -> Result<Vec<String>, InvocationError> {
    shell_words::split(&server.run)
        .ok()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| InvocationError::Mcp(server.name.clone()))
}

/// Whether the patterns are the ceiling `**` / `*` (everything).
fn everything(patterns: &[crate::ir::pattern::Pattern]) -> bool {
    patterns.iter().any(|p| p.text == "**" || p.text == "*")
}

/// A write or read glob as a Claude Code path rule: relative globs are relative to the
/// working directory as written; absolute ones take Claude's `//` prefix.
fn claude_path(glob: &str, user_home: Option<&Path>) -> String {
    let glob = glob.trim_start_matches("./");
    if let Some(rest) = glob.strip_prefix("~/") {
        match user_home {
            Some(h) => format!("/{}/{rest}", h.display()),
            None => glob.to_string(),
        }
    } else if glob.starts_with('/') {
        format!("/{glob}")
    } else {
        glob.to_string()
    }
}

fn claude(req: &Request, inv: &mut Invocation) -> Result<(), InvocationError> {
    let perms = &req.agent.permissions;
    let mut allow: Vec<String> = Vec::new();
    let mut deny: Vec<String> = Vec::new();
    // Claude's read tools need no permission; the rules document the intent, and the
    // OS sandbox is what holds reads to `read`.
    if everything(&perms.read.value) {
        allow.extend(["Read", "Glob", "Grep"].map(String::from));
    } else {
        for p in &perms.read.value {
            allow.push(format!("Read({})", claude_path(&p.text, req.user_home)));
        }
    }
    // An `Edit(…)` rule covers every file-editing tool (Edit, Write, NotebookEdit).
    if everything(&perms.write.value) {
        allow.push("Edit".into());
    } else {
        for p in &perms.write.value {
            allow.push(format!("Edit({})", claude_path(&p.text, req.user_home)));
        }
    }
    if everything(&perms.exec.value) {
        allow.push("Bash".into());
    } else {
        for p in &perms.exec.value {
            allow.push(format!("Bash({})", p.text));
            allow.push(format!("Bash({} *)", p.text));
        }
    }
    match &perms.network.value {
        Network::On => allow.extend(["WebFetch", "WebSearch"].map(String::from)),
        Network::Off => deny.extend(["WebFetch", "WebSearch"].map(String::from)),
        Network::Hosts(hosts) => {
            for h in hosts {
                let host = h.split(':').next().unwrap_or(h);
                allow.push(format!("WebFetch(domain:{host})"));
            }
            deny.push("WebSearch".into());
        }
    }
    let mut servers = serde_json::Map::new();
    for s in &req.mcp {
        let argv = mcp_argv(s)?;
        let key = mcp_key(&s.name);
        // Values stay in the process environment: Claude expands `${NAME}` itself, so
        // the recorded config names the variables and never holds a secret.
        let env: serde_json::Map<String, Value> = s
            .env
            .iter()
            .map(|n| (n.clone(), Value::String(format!("${{{n}}}"))))
            .collect();
        servers.insert(
            key.clone(),
            json!({"type": "stdio", "command": argv[0], "args": argv[1..], "env": env}),
        );
        allow.push(format!("mcp__{key}"));
    }
    let settings = json!({
        "permissions": {"defaultMode": "dontAsk", "allow": allow, "deny": deny},
    });
    let dir = PathBuf::from(".runbook-claude");
    inv.files.push((
        dir.join("settings.json"),
        serde_json::to_string_pretty(&settings).expect("json") + "\n",
    ));
    inv.files.push((
        dir.join("mcp.json"),
        serde_json::to_string_pretty(&json!({"mcpServers": servers})).expect("json") + "\n",
    ));
    let at = |f: &str| req.home.join(&dir).join(f).display().to_string();
    inv.argv.extend(
        [
            "-p",
            "--bare",
            "--output-format",
            "json",
            "--permission-mode",
            "dontAsk",
            "--strict-mcp-config",
        ]
        .map(String::from),
    );
    inv.argv.extend(["--settings".into(), at("settings.json")]);
    inv.argv.extend(["--mcp-config".into(), at("mcp.json")]);
    if let Some(model) = &req.agent.model {
        inv.argv.extend(["--model".into(), model.value.clone()]);
    }
    if let Some(turns) = &req.agent.max_turns {
        inv.argv
            .extend(["--max-turns".into(), turns.value.to_string()]);
    }
    if let Some(budget) = req.budget_usd {
        inv.argv
            .extend(["--max-budget-usd".into(), format!("{budget:.4}")]);
    }
    // No update checks, telemetry or error reports: nothing but the model endpoint.
    for k in [
        "DISABLE_AUTOUPDATER",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
    ] {
        inv.env.push((k.into(), "1".into()));
    }
    inv.endpoints.push(endpoint(
        req,
        "ANTHROPIC_BASE_URL",
        "api.anthropic.com:443",
    )?);
    Ok(())
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn codex(req: &Request, inv: &mut Invocation) -> Result<(), InvocationError> {
    let perms = &req.agent.permissions;
    // Codex's own sandbox needs namespaces, which the OS sandbox (seccomp) denies to
    // whatever runs inside it: there, Codex runs unconfined by itself, and the OS
    // sandbox holds it to the step's `write` paths (finer than Codex's directory) and
    // network rules. Without the OS sandbox, Codex's own is the agent layer.
    let mode = if req.os_sandbox {
        "danger-full-access"
    } else {
        "workspace-write"
    };
    let mut config = String::new();
    config.push_str("# Written by runbook for one step attempt; CODEX_HOME is this directory.\n");
    let _ = writeln!(
        config,
        "approval_policy = \"never\"\nsandbox_mode = \"{mode}\""
    );
    config.push_str("check_for_update_on_startup = false\n");
    if let Some(model) = &req.agent.model {
        let _ = writeln!(config, "model = {}", toml_str(&model.value));
    }
    // Codex ignores OPENAI_BASE_URL: a gateway needs a provider of its own.
    let base = var(req, "OPENAI_BASE_URL");
    if base.is_some() {
        config.push_str("model_provider = \"runbook\"\n");
    }
    // Tables from here on (a bare key below a table header belongs to the table).
    // Nothing but the model endpoint: plugin catalogue sync and analytics call home.
    config.push_str("\n[features]\nplugins = false\n\n[analytics]\nenabled = false\n");
    config.push_str("\n[sandbox_workspace_write]\n");
    // Codex's own sandbox knows no host list: with one, the OS proxy is what admits
    // only the listed hosts.
    let network = !matches!(perms.network.value, Network::Off);
    let _ = writeln!(config, "network_access = {network}");
    // Codex would also let commands write /tmp and $TMPDIR: the step's `write` is all.
    config.push_str("exclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n");
    if let Some(url) = base {
        let _ = write!(
            config,
            "\n[model_providers.runbook]\nname = \"runbook\"\nbase_url = {}\nwire_api = \"responses\"\n",
            toml_str(url),
        );
        // The key by its name: the value stays in the environment.
        if let Some(key) = ["OPENAI_API_KEY", "CODEX_API_KEY"]
            .into_iter()
            .find(|k| var(req, k).is_some())
        {
            let _ = writeln!(config, "env_key = {}", toml_str(key));
        }
    }
    for s in &req.mcp {
        let argv = mcp_argv(s)?;
        let args: Vec<String> = argv[1..].iter().map(|a| toml_str(a)).collect();
        let vars: Vec<String> = s.env.iter().map(|n| toml_str(n)).collect();
        let _ = write!(
            config,
            "\n[mcp_servers.{}]\ncommand = {}\nargs = [{}]\nenv_vars = [{}]\n",
            mcp_key(&s.name),
            toml_str(&argv[0]),
            args.join(", "),
            vars.join(", ")
        );
    }
    inv.files
        .push((PathBuf::from(".codex/config.toml"), config));
    inv.env.push((
        "CODEX_HOME".into(),
        req.home.join(".codex").display().to_string(),
    ));
    inv.argv.extend(
        [
            "exec",
            "--json",
            "--skip-git-repo-check",
            "--ephemeral",
            "-s",
            mode,
        ]
        .map(String::from),
    );
    // Writable roots outside the worktree are directories Codex must be told about.
    let mut extra: Vec<PathBuf> = perms
        .write
        .value
        .iter()
        .filter_map(|p| crate::sandbox::policy::reach(&p.text, req.workdir, req.user_home))
        .filter(|p| !p.starts_with(req.workdir))
        .collect();
    extra.sort();
    extra.dedup();
    for dir in extra {
        inv.argv
            .extend(["--add-dir".into(), dir.display().to_string()]);
    }
    inv.argv.push("-".into());
    inv.endpoints.push(match base {
        Some(_) => endpoint(req, "OPENAI_BASE_URL", "")?,
        None => "api.openai.com:443".into(),
    });
    Ok(())
}

fn gemini(req: &Request, inv: &mut Invocation) -> Result<(), InvocationError> {
    let perms = &req.agent.permissions;
    let mut exclude: Vec<&str> = Vec::new();
    if perms.write.value.is_empty() {
        exclude.extend(["write_file", "replace"]);
    }
    if perms.exec.value.is_empty() {
        exclude.push("run_shell_command");
    }
    if !matches!(perms.network.value, Network::On) {
        exclude.extend(["web_fetch", "google_web_search"]);
    }
    let mut servers = serde_json::Map::new();
    for s in &req.mcp {
        let argv = mcp_argv(s)?;
        let env: serde_json::Map<String, Value> = s
            .env
            .iter()
            .map(|n| (n.clone(), Value::String(format!("${n}"))))
            .collect();
        servers.insert(
            mcp_key(&s.name),
            json!({"command": argv[0], "args": argv[1..], "env": env, "trust": false}),
        );
    }
    let mut settings = json!({
        "security": {
            "auth": {"selectedType": "gemini-api-key"},
            "folderTrust": {"enabled": false},
        },
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
        "tools": {"exclude": exclude},
        "mcpServers": servers,
    });
    if let Some(turns) = &req.agent.max_turns {
        settings["model"] = json!({"maxSessionTurns": turns.value});
    }
    inv.files.push((
        PathBuf::from(".gemini/settings.json"),
        serde_json::to_string_pretty(&settings).expect("json") + "\n",
    ));
    // Under `--approval-mode yolo` every call its policy does not deny runs: the policy
    // denies shell commands unless they start with an allowed program.
    if !perms.exec.value.is_empty() && !everything(&perms.exec.value) {
        let mut policy = String::from(
            "# Written by runbook: shell commands only for the programs in `exec`.\n\
             [[rule]]\ntoolName = \"run_shell_command\"\ndecision = \"deny\"\npriority = 100\n",
        );
        for p in &perms.exec.value {
            let _ = write!(
                policy,
                "\n[[rule]]\ntoolName = \"run_shell_command\"\ncommandPrefix = {}\ndecision = \"allow\"\npriority = 200\n",
                toml_str(&p.text)
            );
        }
        inv.files
            .push((PathBuf::from(".gemini/policies/runbook.toml"), policy));
    }
    inv.argv
        .extend(["--output-format", "stream-json", "--approval-mode", "yolo"].map(String::from));
    if let Some(model) = &req.agent.model {
        inv.argv.extend(["-m".into(), model.value.clone()]);
    }
    if !req.mcp.is_empty() {
        let names: Vec<String> = req.mcp.iter().map(|s| mcp_key(&s.name)).collect();
        inv.argv
            .extend(["--allowed-mcp-server-names".into(), names.join(",")]);
    }
    inv.env
        .push(("GEMINI_CLI_TRUST_WORKSPACE".into(), "true".into()));
    inv.endpoints.push(endpoint(
        req,
        "GOOGLE_GEMINI_BASE_URL",
        "generativelanguage.googleapis.com:443",
    )?);
    Ok(())
}

fn aider(req: &Request, inv: &mut Invocation) -> Result<(), InvocationError> {
    inv.prompt_on_stdin = false;
    inv.argv.extend([
        "--message-file".into(),
        req.prompt_file.display().to_string(),
    ]);
    inv.argv.extend(
        [
            "--yes-always",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-suggest-shell-commands",
            "--no-detect-urls",
            "--analytics-disable",
            "--no-check-update",
            "--no-pretty",
            "--no-stream",
            // Left to itself aider adds `.aider*` to the repository's .gitignore and
            // keeps its chat history beside it: files of its own in the step's changes,
            // outside any narrower `write`. The history goes to the attempt's home.
            "--no-gitignore",
            // Headless, these only ask to open a browser (and --yes-always says yes).
            "--no-show-model-warnings",
            "--no-show-release-notes",
        ]
        .map(String::from),
    );
    let home = |name: &str| req.home.join(name).display().to_string();
    inv.transcript = Some(req.home.join(".aider.chat.history.md"));
    inv.argv.extend([
        "--chat-history-file".into(),
        home(".aider.chat.history.md"),
        "--input-history-file".into(),
        home(".aider.input.history"),
    ]);
    if let Some(model) = &req.agent.model {
        inv.argv.extend(["--model".into(), model.value.clone()]);
    }
    // Its repository map's cache has no option for where it goes: always the top of the
    // working tree.
    inv.scratch.push(req.workdir.join(".aider.tags.cache.v4"));
    // aider `git add`s every file it creates, and gives up on the file (leaving it empty)
    // when that fails, as it does in the sandbox, where the repository is read-only. So
    // its git gets an index and an object store of its own in the attempt's home: a copy
    // of the worktree's index, and new objects beside the repository's (an alternate).
    if let Some((git_dir, common_dir)) = git_dirs(req.workdir) {
        let scratch = Path::new(".aider-git");
        inv.copies
            .push((git_dir.join("index"), scratch.join("index")));
        inv.files.push((
            scratch.join("objects/info/alternates"),
            format!("{}\n", common_dir.join("objects").display()),
        ));
        for (name, path) in [
            ("GIT_INDEX_FILE", "index"),
            ("GIT_OBJECT_DIRECTORY", "objects"),
        ] {
            let value = req.home.join(scratch).join(path).display().to_string();
            inv.env.push((name.into(), value));
        }
    }
    // An OpenAI-compatible gateway or local server replaces api.openai.com.
    inv.endpoints
        .push(endpoint(req, "OPENAI_API_BASE", "api.openai.com:443")?);
    inv.endpoints.push("api.anthropic.com:443".into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_of_urls() {
        assert_eq!(
            endpoint_of("http://127.0.0.1:8080/v1").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            endpoint_of("https://Gateway.example.com").as_deref(),
            Some("gateway.example.com:443")
        );
        assert_eq!(
            endpoint_of("http://user:pw@h.example:81/x").as_deref(),
            Some("h.example:81")
        );
        assert_eq!(endpoint_of("http://[::1]:9/").as_deref(), Some("[::1]:9"));
        assert_eq!(endpoint_of("http://[::1]/").as_deref(), Some("[::1]:80"));
        assert_eq!(endpoint_of("ftp://h/"), None);
        assert_eq!(endpoint_of("http://h:notaport/"), None);
        assert_eq!(endpoint_of("h:80"), None);
    }

    #[test]
    fn mcp_keys_are_tool_name_safe() {
        assert_eq!(mcp_key("tools.fs"), "tools_fs");
        assert_eq!(mcp_key("fs-2"), "fs-2");
    }

    /// The agents of a runbook text, lowered.
    fn lowered(text: &str) -> crate::ir::Runbook {
        let mut map = crate::syntax::source::SourceMap::default();
        let (file, problem) = crate::ir::load::add_bytes(
            &mut map,
            Path::new("t.runbook"),
            "t.runbook".into(),
            text.as_bytes().to_vec(),
        );
        assert!(problem.is_none());
        let lowered = crate::ir::lower::lower_file(&mut map, file);
        assert!(
            lowered.diagnostics.iter().all(|d| !d.is_error()),
            "{:?}",
            lowered.diagnostics
        );
        lowered.runbook.expect("a runbook")
    }

    fn build(
        runbook: &crate::ir::Runbook,
        name: &str,
        env: &[(&str, &str)],
        os: bool,
    ) -> Invocation {
        let agent = runbook.agents.iter().find(|a| a.name == name).unwrap();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let crate::ir::AgentKind::Command { run } = &agent.kind else {
            panic!("not a command agent")
        };
        invocation(&Request {
            tool: agent.tool.unwrap(),
            agent,
            run,
            workdir: Path::new("/w"),
            home: Path::new("/h"),
            user_home: Some(Path::new("/home/u")),
            prompt_file: Path::new("/r/prompt.md"),
            env: &env,
            mcp: runbook.mcp_servers.iter().collect(),
            budget_usd: Some(1.5),
            os_sandbox: os,
        })
        .unwrap()
    }

    const RUNBOOK: &str = r#"runbook t {
  mcp fs { run "mcp-fs --root 'a b'" env [FS_TOKEN] }
  agent c { kind claude  write ["src/**"]  exec ["cargo"]  network off  mcp ["fs"]  model "m1"  max_turns 5  budget 2.00 }
  agent x { kind codex  write ["src/**", "/var/cache/x/**"]  network ["crates.io"]  mcp ["fs"]  model "m2" }
  agent g { kind gemini  exec ["git"]  mcp ["fs"]  max_turns 7 }
  phase p { step s by c { prompt "hi" } }
}
"#;

    #[test]
    fn claude_rules_and_flags() {
        let rb = lowered(RUNBOOK);
        let inv = build(
            &rb,
            "c",
            &[("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")],
            true,
        );
        assert_eq!(inv.argv[0], "claude");
        let joined = inv.argv.join(" ");
        for part in [
            "-p --bare --output-format json --permission-mode dontAsk --strict-mcp-config",
            "--settings /h/.runbook-claude/settings.json",
            "--mcp-config /h/.runbook-claude/mcp.json",
            "--model m1",
            "--max-turns 5",
            "--max-budget-usd 1.5000",
        ] {
            assert!(joined.contains(part), "{joined}");
        }
        let settings: Value = serde_json::from_str(&inv.files[0].1).unwrap();
        let allow = settings["permissions"]["allow"].to_string();
        for rule in ["Edit(src/**)", "Bash(cargo)", "Bash(cargo *)", "mcp__fs"] {
            assert!(allow.contains(rule), "{allow}");
        }
        assert!(!allow.contains("\"Bash\""), "{allow}");
        assert_eq!(
            settings["permissions"]["deny"],
            json!(["WebFetch", "WebSearch"])
        );
        let mcp: Value = serde_json::from_str(&inv.files[1].1).unwrap();
        assert_eq!(mcp["mcpServers"]["fs"]["args"], json!(["--root", "a b"]));
        assert_eq!(mcp["mcpServers"]["fs"]["env"]["FS_TOKEN"], "${FS_TOKEN}");
        assert_eq!(inv.endpoints, vec!["127.0.0.1:9"]);
        assert_eq!(inv.programs, vec!["mcp-fs"]);
    }

    #[test]
    fn codex_config_is_toml_with_the_provider_at_top_level() {
        let rb = lowered(RUNBOOK);
        let env = [
            ("OPENAI_BASE_URL", "http://gw.example:8080/v1"),
            ("OPENAI_API_KEY", "sk-never-written"),
        ];
        let inv = build(&rb, "x", &env, true);
        let (path, text) = &inv.files[0];
        assert_eq!(path, Path::new(".codex/config.toml"));
        assert!(!text.contains("sk-never-written"));
        let config: toml::Value = toml::from_str(text).expect("valid TOML");
        assert_eq!(config["model_provider"].as_str(), Some("runbook"));
        assert_eq!(config["model"].as_str(), Some("m2"));
        assert_eq!(config["sandbox_mode"].as_str(), Some("danger-full-access"));
        let provider = &config["model_providers"]["runbook"];
        assert_eq!(
            provider["base_url"].as_str(),
            Some("http://gw.example:8080/v1")
        );
        assert_eq!(provider["env_key"].as_str(), Some("OPENAI_API_KEY"));
        assert_eq!(config["features"]["plugins"].as_bool(), Some(false));
        assert_eq!(
            config["mcp_servers"]["fs"]["env_vars"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        assert!(
            inv.argv.join(" ").contains("--add-dir /var/cache/x"),
            "{:?}",
            inv.argv
        );
        assert_eq!(inv.endpoints, vec!["gw.example:8080"]);
        // Without the OS sandbox, Codex's own is the agent layer.
        let inv = build(&rb, "x", &env, false);
        assert!(inv.argv.windows(2).any(|w| w == ["-s", "workspace-write"]));
    }

    #[test]
    fn gemini_settings_and_policy() {
        let rb = lowered(RUNBOOK);
        let inv = build(&rb, "g", &[], true);
        let settings: Value = serde_json::from_str(&inv.files[0].1).unwrap();
        assert_eq!(settings["model"]["maxSessionTurns"], 7);
        assert_eq!(
            settings["tools"]["exclude"],
            json!(["write_file", "replace", "web_fetch", "google_web_search"])
        );
        assert_eq!(settings["mcpServers"]["fs"]["env"]["FS_TOKEN"], "$FS_TOKEN");
        let (path, policy) = &inv.files[1];
        assert_eq!(path, Path::new(".gemini/policies/runbook.toml"));
        let policy: toml::Value = toml::from_str(policy).unwrap();
        let rules = policy["rule"].as_array().unwrap();
        assert_eq!(rules[0]["decision"].as_str(), Some("deny"));
        assert_eq!(rules[1]["commandPrefix"].as_str(), Some("git"));
        assert!(inv.argv.join(" ").contains("--allowed-mcp-server-names fs"));
        assert_eq!(inv.endpoints, vec!["generativelanguage.googleapis.com:443"]);
    }

    #[test]
    fn claude_paths() {
        let home = Path::new("/home/u");
        assert_eq!(claude_path("src/**", Some(home)), "src/**");
        assert_eq!(claude_path("./a", Some(home)), "a");
        assert_eq!(claude_path("/etc/x", Some(home)), "//etc/x");
        assert_eq!(claude_path("~/.cache/**", Some(home)), "//home/u/.cache/**");
    }

    #[test]
    fn aider_keeps_its_own_files_out_of_the_tree_and_follows_its_gateway() {
        let rb = lowered(
            "runbook t {\n  agent a { kind aider  model \"openai/m\" }\n  phase p { step s by a { prompt \"hi\" } }\n}\n",
        );
        let inv = build(&rb, "a", &[], true);
        let joined = inv.argv.join(" ");
        for part in [
            "aider --message-file /r/prompt.md --yes-always --no-auto-commits",
            "--no-gitignore",
            "--chat-history-file /h/.aider.chat.history.md",
            "--input-history-file /h/.aider.input.history",
            "--model openai/m",
        ] {
            assert!(joined.contains(part), "{joined}");
        }
        assert!(!inv.prompt_on_stdin);
        assert_eq!(
            inv.transcript.as_deref(),
            Some(Path::new("/h/.aider.chat.history.md"))
        );
        assert_eq!(inv.scratch, vec![Path::new("/w/.aider.tags.cache.v4")]);
        assert_eq!(
            inv.endpoints,
            vec!["api.openai.com:443", "api.anthropic.com:443"]
        );
        let local = build(
            &rb,
            "a",
            &[("OPENAI_API_BASE", "http://127.0.0.1:8080/v1")],
            true,
        );
        assert_eq!(
            local.endpoints,
            vec!["127.0.0.1:8080", "api.anthropic.com:443"]
        );
    }
}
