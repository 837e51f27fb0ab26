//! Permission rules: `uses` may only narrow (permissions, `max_turns`, `budget`),
//! `produces` must be writable, programs must be in `exec`, steps must fit their agent's
//! kind, `mcp` entries must name declared servers, and nothing may exceed the
//! repository's `policy.runbook`.

use super::shell;
use crate::diagnostic::Diagnostic;
use crate::ir::pattern::{any_match, covered_by, Pattern};
use crate::ir::{Agent, AgentId, AgentKind, Network, NodeKind, Runbook, Setting, Step, Template};
use crate::syntax::source::Location;

/// An agent's list permission.
type Patterns = Setting<Vec<Pattern>>;

/// A policy's list permission, where written.
type Ceiling = Option<(Vec<Pattern>, Location)>;

/// Runs every permission rule.
pub fn check(runbook: &Runbook) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for agent in runbook.agents.iter().filter(|a| a.uses.is_some()) {
        widening(runbook, agent, &mut out);
        limits(runbook, agent, &mut out);
    }
    for agent in &runbook.agents {
        servers(runbook, agent, &mut out);
    }
    for node in &runbook.nodes {
        let NodeKind::Step(step) = &node.kind else {
            continue;
        };
        let Some(agent_id) = step.agent else { continue };
        let agent = runbook.agent(agent_id);
        shape(node, step, agent, &mut out);
        produces(step, agent, &mut out);
        programs(runbook, step, agent_id, &mut out);
    }
    if let Some(policy) = &runbook.policy {
        ceiling(runbook, policy, &mut out);
    }
    out
}

/// Where an agent's value for a field is written: its own field, or its declaration.
fn field_location<T>(agent: &Agent, setting: &Setting<T>) -> Location {
    setting.own.unwrap_or(agent.location)
}

/// E0401: a `uses` child may not grant more than its parent.
fn widening(runbook: &Runbook, agent: &Agent, out: &mut Vec<Diagnostic>) {
    let parent = runbook.agent(agent.uses.expect("filtered on uses"));
    let p = &agent.permissions;
    let q = &parent.permissions;
    let lists: [(&str, &Patterns, &Patterns); 4] = [
        ("read", &p.read, &q.read),
        ("write", &p.write, &q.write),
        ("exec", &p.exec, &q.exec),
        ("mcp", &p.mcp, &q.mcp),
    ];
    for (field, mine, theirs) in lists {
        if mine.own.is_none() {
            continue;
        }
        for pattern in &mine.value {
            if !covered_by(&theirs.value, pattern) {
                let allowed: Vec<&str> = theirs.value.iter().map(|p| p.text.as_str()).collect();
                out.push(
                    Diagnostic::error(
                        "E0401",
                        pattern.location,
                        format!("agent `{}` widens `{field}` of `{}` with `{}`", agent.name, parent.name, pattern.text),
                    )
                    .with_label(format!("not allowed by `{}`", parent.name))
                    .with_secondary(field_location(parent, theirs), format!("`{}` allows {field} {allowed:?}", parent.name))
                    .with_help(format!("`uses` may only narrow: keep to {allowed:?}, or declare the agent without `uses`")),
                );
            }
        }
    }
    if let Some(own) = p.network.own {
        if !p.network.value.within(&q.network.value) {
            out.push(
                Diagnostic::error(
                    "E0401",
                    own,
                    format!(
                        "agent `{}` widens `network` of `{}` to {}",
                        agent.name,
                        parent.name,
                        p.network.value.describe()
                    ),
                )
                .with_label(format!(
                    "`{}` has network {}",
                    parent.name,
                    q.network.value.describe()
                ))
                .with_secondary(field_location(parent, &q.network), "the parent's network")
                .with_help("`uses` may only narrow: write `network off`"),
            );
        }
    }
}

/// E0401: a `uses` child may lower its parent's `max_turns` and `budget`, never raise
/// them.
fn limits(runbook: &Runbook, agent: &Agent, out: &mut Vec<Diagnostic>) {
    let parent = runbook.agent(agent.uses.expect("filtered on uses"));
    let checks = [
        (
            "max_turns",
            raised(
                agent.max_turns.as_ref().map(as_f64),
                parent.max_turns.as_ref().map(as_f64),
            ),
        ),
        (
            "budget",
            raised(agent.budget.clone(), parent.budget.clone()),
        ),
    ];
    for (field, found) in checks {
        let Some((at, mine, theirs)) = found else {
            continue;
        };
        let show = |v: f64| {
            if field == "budget" {
                crate::ir::limits::dollars(v)
            } else {
                format!("{v}")
            }
        };
        out.push(
            Diagnostic::error(
                "E0401",
                at,
                format!(
                    "agent `{}` raises `{field}` of `{}` from {} to {}",
                    agent.name,
                    parent.name,
                    show(theirs.value),
                    show(mine)
                ),
            )
            .with_label(format!("more than `{}` allows", parent.name))
            .with_secondary(
                field_location(parent, &theirs),
                format!("`{}` has {field} {}", parent.name, show(theirs.value)),
            )
            .with_help(format!(
                "`uses` may only narrow: write a `{field}` of at most {}, or declare the agent without `uses`",
                show(theirs.value)
            )),
        );
    }
}

fn as_f64(s: &Setting<u32>) -> Setting<f64> {
    Setting {
        value: f64::from(s.value),
        own: s.own,
    }
}

/// The child's own value and the parent's setting, when the child's is larger.
fn raised(
    mine: Option<Setting<f64>>,
    theirs: Option<Setting<f64>>,
) -> Option<(Location, f64, Setting<f64>)> {
    let (mine, theirs) = (mine?, theirs?);
    let own = mine.own?;
    (mine.value > theirs.value).then_some((own, mine.value, theirs))
}

/// Whether an `mcp` entry is a glob (a ceiling such as `["*"]`) rather than one name.
fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '[', '{'])
}

/// E0109: an agent's own `mcp` entry that is a plain name must name a declared server.
fn servers(runbook: &Runbook, agent: &Agent, out: &mut Vec<Diagnostic>) {
    if agent.permissions.mcp.own.is_none() {
        return;
    }
    let declared: Vec<&str> = runbook
        .mcp_servers
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    for pattern in &agent.permissions.mcp.value {
        if is_glob(&pattern.text) || declared.contains(&pattern.text.as_str()) {
            continue;
        }
        let help = match crate::diagnostic::closest(&pattern.text, &declared) {
            Some(s) => format!("did you mean `{s}`?"),
            None if declared.is_empty() => {
                "no MCP server is declared: declare one with `mcp NAME { run \"PROGRAM ARGS\" }` and list it by that NAME".to_string()
            }
            None => {
                let mut names: Vec<String> = declared.iter().map(|n| format!("`{n}`")).collect();
                names.sort();
                format!("declared: {}", names.join(", "))
            }
        };
        out.push(
            Diagnostic::error(
                "E0109",
                pattern.location,
                format!("unknown MCP server `{}`", pattern.text),
            )
            .with_label("no `mcp NAME { … }` declares it")
            .with_help(help),
        );
    }
}

/// E0507: shell steps run `sh` lines, command agents take a prompt.
fn shape(node: &crate::ir::Node, step: &Step, agent: &Agent, out: &mut Vec<Diagnostic>) {
    match &agent.kind {
        AgentKind::Shell => {
            if let Some(prompt) = &step.prompt {
                out.push(
                    Diagnostic::error("E0507", prompt.location, format!("step `{}` has a prompt, but `{}` runs shell commands", node.name, agent.name))
                        .with_label("a prompt needs an agent with `run`")
                        .with_secondary(step.agent_location, "the agent")
                        .with_help("add `by AGENT` naming an agent that takes prompts, or replace `prompt` with `sh`"),
                );
            } else if step.sh.is_empty() {
                out.push(
                    Diagnostic::error(
                        "E0507",
                        node.location,
                        format!("step `{}` has nothing to run", node.name),
                    )
                    .with_label("no `sh` lines")
                    .with_help("add `sh \"COMMAND\"`, or `by AGENT` and a `prompt`"),
                );
            }
        }
        AgentKind::Command { .. } => {
            if let Some(sh) = step.sh.first() {
                out.push(
                    Diagnostic::error("E0507", sh.location, format!("step `{}` has `sh` lines, but its agent `{}` takes a prompt", node.name, agent.name))
                        .with_label("`sh` needs a shell agent")
                        .with_secondary(step.agent_location, "the agent")
                        .with_help("move the commands to a separate step without `by` (the builtin shell), or into `until`"),
                );
            } else if step.prompt.is_none() {
                out.push(
                    Diagnostic::error("E0507", node.location, format!("step `{}` gives agent `{}` no prompt", node.name, agent.name))
                        .with_label("no `prompt`")
                        .with_help("add `prompt \"…\"`, `prompt \"\"\"…\"\"\"` or `prompt file(\"prompts/NAME.md\")`"),
                );
            }
        }
    }
}

/// E0402: what a step must produce must be writable by its agent.
fn produces(step: &Step, agent: &Agent, out: &mut Vec<Diagnostic>) {
    let write = &agent.permissions.write;
    for p in &step.produces {
        let ok = match Pattern::new(&p.path, crate::ir::pattern::PatternKind::Path, p.location) {
            Ok(pattern) => covered_by(&write.value, &pattern),
            Err(_) => false,
        };
        if !ok {
            let allowed: Vec<&str> = write.value.iter().map(|p| p.text.as_str()).collect();
            out.push(
                Diagnostic::error("E0402", p.location, format!("`{}` is outside the `write` globs of agent `{}`", p.path, agent.name))
                    .with_label("the agent may not write this")
                    .with_secondary(field_location(agent, write), if allowed.is_empty() {
                        format!("`{}` may write nothing", agent.name)
                    } else {
                        format!("`{}` may write {allowed:?}", agent.name)
                    })
                    .with_help(if allowed.is_empty() {
                        format!("give the agent `write [\"{}\"]`", p.path)
                    } else {
                        format!("add a glob covering `{}` to the agent's `write`, or produce a path inside {allowed:?}", p.path)
                    }),
            );
        }
    }
}

/// E0403: programs of `sh` lines and `until` must be in the agent's `exec`; E0404 for
/// programs of builtin-shell steps that the policy does not allow.
fn programs(runbook: &Runbook, step: &Step, agent_id: AgentId, out: &mut Vec<Diagnostic>) {
    let agent = runbook.agent(agent_id);
    let exec = &agent.permissions.exec;
    // Every agent but the builtin shell has its `exec` list held against the policy
    // (see `ceiling`); the builtin may run anything, so its steps are judged by the
    // programs their lines actually run.
    let policy_exec = runbook
        .policy
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .filter(|_| agent_id == crate::ir::SHELL);
    let mut check = |t: &Template, what: &str| {
        for program in shell::programs(&t.text) {
            let at = t.location_of(program.range.clone());
            if !shell::allowed(&program.word, &exec.value) {
                let allowed: Vec<&str> = exec.value.iter().map(|p| p.text.as_str()).collect();
                out.push(
                    Diagnostic::error(
                        "E0403",
                        at,
                        format!(
                            "`{}` is not in the `exec` list of agent `{}`",
                            program.word, agent.name
                        ),
                    )
                    .with_label(format!("{what} runs `{}`", program.word))
                    .with_secondary(
                        field_location(agent, exec),
                        if allowed.is_empty() {
                            format!("`{}` may run no program", agent.name)
                        } else {
                            format!("`{}` may run {allowed:?}", agent.name)
                        },
                    )
                    .with_help(format!(
                        "add \"{}\" to the agent's `exec`, or run it through an agent that may",
                        program.word
                    )),
                );
            } else if let Some((ceiling, policy_at)) = policy_exec {
                if !shell::allowed(&program.word, ceiling) {
                    out.push(
                        Diagnostic::error("E0404", at, format!("`{}` is not allowed by the repository policy", program.word))
                            .with_label("exceeds policy.runbook")
                            .with_secondary(*policy_at, "the policy's `exec`")
                            .with_help("ask the policy's owners to allow it in policy.runbook, or use an allowed program"),
                    );
                }
            }
        }
    };
    // `sh` on a command agent is already a shape error (E0507); its programs are moot.
    if agent.kind == AgentKind::Shell {
        for t in &step.sh {
            check(t, "this line");
        }
    }
    if let Some(until) = &step.until {
        check(&until.command, "`until`");
    }
}

/// E0404: agents used by this runbook must stay within the repository policy.
fn ceiling(runbook: &Runbook, policy: &crate::ir::Policy, out: &mut Vec<Diagnostic>) {
    // The agents that matter: those declared here, and imported ones steps use directly.
    let mut used: Vec<(AgentId, Location)> = Vec::new();
    for (i, agent) in runbook.agents.iter().enumerate() {
        if agent.local {
            used.push((AgentId(i as u32), agent.location));
        }
    }
    for node in &runbook.nodes {
        if let Some(step) = node.step() {
            if let Some(id) = step.agent {
                if !runbook.agent(id).local
                    && id != crate::ir::SHELL
                    && !used.iter().any(|(u, _)| *u == id)
                {
                    used.push((id, step.agent_location));
                }
            }
        }
    }
    for (id, fallback) in used {
        let agent = runbook.agent(id);
        let p = &agent.permissions;
        let at = |s: Option<Location>| {
            if agent.local {
                s.unwrap_or(agent.location)
            } else {
                fallback
            }
        };
        // A value the agent does not write itself comes from the agent it narrows.
        let label = |own: Option<Location>| match (own, agent.uses) {
            (None, Some(parent)) if agent.local => format!(
                "inherited from `{}`; not allowed by policy.runbook",
                runbook.agent(parent).name
            ),
            _ => "not allowed by policy.runbook".to_string(),
        };
        let can_use_servers = agent
            .tool
            .is_some_and(|t| t.uses_mcp() && agent.kind != AgentKind::Shell);
        let lists: [(&str, &Patterns, &Ceiling); 4] = [
            ("read", &p.read, &policy.read),
            ("write", &p.write, &policy.write),
            ("exec", &p.exec, &policy.exec),
            ("mcp", &p.mcp, &policy.mcp),
        ];
        for (field, mine, ceiling) in lists {
            let Some((ceiling, policy_at)) = ceiling else {
                continue;
            };
            for pattern in &mine.value {
                // A declared server named outright is reported below, with the server.
                let named_server = field == "mcp"
                    && can_use_servers
                    && runbook.mcp_servers.iter().any(|s| s.name == pattern.text);
                if !named_server && !covered_by(ceiling, pattern) {
                    let allowed: Vec<&str> = ceiling.iter().map(|p| p.text.as_str()).collect();
                    let location = if agent.local && mine.own.is_some() {
                        pattern.location
                    } else {
                        at(mine.own)
                    };
                    out.push(
                        Diagnostic::error(
                            "E0404",
                            location,
                            format!(
                                "agent `{}` exceeds the repository policy: {field} `{}`",
                                agent.name, pattern.text
                            ),
                        )
                        .with_label(label(mine.own))
                        .with_secondary(
                            *policy_at,
                            format!("the policy allows {field} {allowed:?}"),
                        )
                        .with_help(format!("narrow the agent's `{field}` to fit {allowed:?}")),
                    );
                }
            }
        }
        if let Some((ceiling, policy_at)) = &policy.mcp {
            for server in runbook.mcp_servers.iter().filter(|_| can_use_servers) {
                if !any_match(&p.mcp.value, &server.name) || any_match(ceiling, &server.name) {
                    continue;
                }
                let allowed: Vec<&str> = ceiling.iter().map(|p| p.text.as_str()).collect();
                out.push(
                    Diagnostic::error(
                        "E0404",
                        at(p.mcp.own),
                        format!(
                            "agent `{}` may use MCP server `{}`, which policy.runbook does not allow",
                            agent.name, server.name
                        ),
                    )
                    .with_label(label(p.mcp.own))
                    .with_secondary(server.location, format!("the server `{}`", server.name))
                    .with_secondary(*policy_at, format!("the policy allows mcp {allowed:?}"))
                    .with_help(format!(
                        "narrow the agent's `mcp` to servers in {allowed:?}, or have `{}` allowed in policy.runbook",
                        server.name
                    )),
                );
            }
        }
        if let Some((ceiling, policy_at)) = &policy.network {
            if !p.network.value.within(ceiling) {
                out.push(
                    Diagnostic::error(
                        "E0404",
                        at(p.network.own),
                        format!(
                            "agent `{}` exceeds the repository policy: network {}",
                            agent.name,
                            p.network.value.describe()
                        ),
                    )
                    .with_label(label(p.network.own))
                    .with_secondary(
                        *policy_at,
                        format!("the policy allows network {}", ceiling.describe()),
                    )
                    .with_help(format!(
                        "write `network {}` in the agent",
                        match ceiling {
                            Network::Hosts(_) => "[\"HOST\", …]".to_string(),
                            other => other.describe(),
                        }
                    )),
                );
            }
        }
        if let Some((ceiling, policy_at)) = &policy.env {
            for name in &p.env.value {
                if !ceiling.contains(name) {
                    out.push(
                        Diagnostic::error("E0404", at(p.env.own), format!("agent `{}` exceeds the repository policy: env `{name}`", agent.name))
                            .with_label(label(p.env.own))
                            .with_secondary(*policy_at, "the policy's `env`")
                            .with_help(format!("remove `{name}` from the agent's `env`, or have it allowed in policy.runbook")),
                    );
                }
            }
        }
    }
}
