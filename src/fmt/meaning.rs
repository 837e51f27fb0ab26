//! What a file means, with every source position left out: the lowered IR of a
//! runbook (names instead of ids, values instead of spans, the DAG as named edges) and
//! the diagnostics (code and message). Formatting must leave it unchanged; `runbook
//! fmt` compares it before writing, and the property tests compare it on every corpus
//! and generated runbook.

use crate::ir::lower;
use crate::ir::pattern::Pattern;
use crate::ir::{
    self, Agent, AgentKind, GraphNode, Node, NodeKind, Permissions, RollbackBlock, Runbook,
    ShowItem, Template,
};
use crate::syntax::ast;
use crate::syntax::source::SourceMap;
use serde_json::{json, Value};
use std::path::Path;

/// The meaning of `text` as the file at `path` (imports, prompt files and the policy
/// resolve relative to `path`, as for the file itself).
pub fn of_text(path: &Path, text: &str) -> Value {
    let mut map = SourceMap::new();
    let name = crate::syntax::source::display_path(path);
    let (file, problem) = ir::load::add_bytes(&mut map, path, name, text.as_bytes().to_vec());
    let lowered = match problem {
        Some(d) => lower::Lowered {
            runbook: None,
            diagnostics: vec![d],
        },
        None => lower::lower_file(&mut map, file),
    };
    let mut diagnostics: Vec<Value> = lowered
        .diagnostics
        .iter()
        .map(|d| json!([d.code, d.message, d.help]))
        .collect();
    diagnostics.sort_by_key(|d| d.to_string());
    let declarations = match crate::syntax::parse(text) {
        Ok(ast::File::Module(m)) => module(&m),
        Ok(ast::File::Policy(p)) => json!({ "policy": fields(&p.fields) }),
        _ => Value::Null,
    };
    json!({
        "diagnostics": diagnostics,
        "runbook": lowered.runbook.as_ref().map(|r| runbook(r, &map)),
        "declarations": declarations,
    })
}

/// A module is not lowered on its own (only through an import), so its meaning is its
/// declarations: imports in order, agents in order with their fields as a multiset
/// (lowering reads each field by its keyword; the order of different keywords is free).
fn module(m: &ast::Module) -> Value {
    let imports: Vec<String> = m
        .imports
        .iter()
        .map(|i| strip_spans(&format!("{i:?}")))
        .collect();
    let agents: Vec<Value> = m
        .agents
        .iter()
        .map(|a| {
            json!({
                "name": a.name.name,
                "uses": a.uses.as_ref().map(|u| &u.name),
                "fields": fields(&a.fields),
            })
        })
        .collect();
    let servers: Vec<Value> = m
        .mcp_servers
        .iter()
        .map(|s| json!({ "name": s.name.name, "fields": fields(&s.fields) }))
        .collect();
    json!({ "imports": imports, "agents": agents, "mcp_servers": servers })
}

fn fields(fields: &[ast::AgentField]) -> Vec<String> {
    let mut out: Vec<String> = fields
        .iter()
        .map(|f| strip_spans(&format!("{f:?}")))
        .collect();
    out.sort();
    out
}

/// Removes `Span { … }` and `OffsetMap { … }` from a `Debug` rendering.
fn strip_spans(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    loop {
        let next = ["Span { ", "OffsetMap { "]
            .iter()
            .filter_map(|m| rest.find(m).map(|i| (i, *m)))
            .min();
        let Some((i, marker)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..i]);
        out.push_str(marker.trim_end_matches(" { "));
        // Neither contains braces inside, so the next `}` closes it.
        rest = rest[i..].find('}').map_or("", |end| &rest[i + end + 1..]);
    }
}

fn template(t: &Template, map: &SourceMap) -> Value {
    json!({
        "text": t.text,
        "file": map.get(t.file).path.display().to_string(),
        "expression": t.expression,
    })
}

fn patterns(p: &[Pattern]) -> Vec<&str> {
    p.iter().map(|p| p.text.as_str()).collect()
}

fn permissions(p: &Permissions) -> Value {
    json!({
        "read": [patterns(&p.read.value), p.read.own.is_some()],
        "write": [patterns(&p.write.value), p.write.own.is_some()],
        "exec": [patterns(&p.exec.value), p.exec.own.is_some()],
        "network": [p.network.value.describe(), p.network.own.is_some()],
        "mcp": [patterns(&p.mcp.value), p.mcp.own.is_some()],
        "env": [p.env.value, p.env.own.is_some()],
    })
}

fn agent(a: &Agent, r: &Runbook) -> Value {
    json!({
        "name": a.name,
        "uses": a.uses.map(|u| &r.agent(u).name),
        "kind": match &a.kind {
            AgentKind::Shell => Value::Null,
            AgentKind::Command { run } => json!(run),
        },
        "permissions": permissions(&a.permissions),
        "timeout": a.timeout.as_ref().map(|d| &d.text),
        "local": a.local,
        "tool": a.tool,
        "model": a.model.as_ref().map(|m| [json!(m.value), json!(m.own.is_some())]),
        "max_turns": a.max_turns.as_ref().map(|m| [json!(m.value), json!(m.own.is_some())]),
        "budget": a.budget.as_ref().map(|m| [json!(m.value), json!(m.own.is_some())]),
    })
}

fn rollback(b: &RollbackBlock, map: &SourceMap) -> Value {
    json!({
        "sh": b.sh.iter().map(|t| template(t, map)).collect::<Vec<_>>(),
        "timeout": b.timeout.as_ref().map(|d| &d.text),
    })
}

fn node(n: &Node, r: &Runbook, map: &SourceMap) -> Value {
    let kind = match &n.kind {
        NodeKind::Step(s) => json!({
            "agent": s.agent.map(|a| &r.agent(a).name),
            "prompt": s.prompt.as_ref().map(|t| template(t, map)),
            "sh": s.sh.iter().map(|t| template(t, map)).collect::<Vec<_>>(),
            "produces": s.produces.iter().map(|p| &p.path).collect::<Vec<_>>(),
            "until": s.until.as_ref().map(|u| json!([template(&u.command, map), u.attempts])),
            "timeout": s.timeout.as_ref().map(|d| &d.text),
            "when": s.when.as_ref().map(|t| template(t, map)),
            "on_failure": s.on_failure,
            "rollback": s.rollback.as_ref().map(|b| rollback(b, map)),
        }),
        NodeKind::Checkpoint(c) => json!({
            "show": c.show.iter().map(|s| match s {
                ShowItem::Path(p, _) => json!(["path", p]),
                ShowItem::Diff(_) => json!(["diff"]),
                ShowItem::StepValue { node, field, .. } => {
                    json!(["step", node.map(|n| &r.node(n).name), field])
                }
            }).collect::<Vec<_>>(),
            "ask": c.ask.as_ref().map(|t| template(t, map)),
            "revise": c.revise.map(|(n, _)| &r.node(n).name),
            "approvers": c.approvers,
            "timeout": c.timeout.as_ref().map(|d| &d.text),
        }),
    };
    json!({
        "name": n.name,
        "phase": r.phase(n.phase).name,
        "title": n.title,
        "after": n.after.iter().map(|(id, _)| &r.node(*id).name).collect::<Vec<_>>(),
        "kind": kind,
    })
}

fn vertex(v: GraphNode, r: &Runbook) -> String {
    match v {
        GraphNode::Node(id) => format!("node {}", r.node(id).name),
        GraphNode::PhaseStart(p) => format!("start {}", r.phase(p).name),
        GraphNode::PhaseEnd(p) => format!("end {}", r.phase(p).name),
    }
}

/// The runbook's IR without positions.
pub fn runbook(r: &Runbook, map: &SourceMap) -> Value {
    let dag = &r.graph.dag;
    let mut edges: Vec<(String, String, bool)> = dag
        .edge_indices()
        .filter_map(|e| {
            let (a, b) = dag.edge_endpoints(e)?;
            Some((vertex(dag[a], r), vertex(dag[b], r), dag[e].is_some()))
        })
        .collect();
    edges.sort();
    let policy = r.policy.as_ref().map(|p| {
        json!({
            "read": p.read.as_ref().map(|(v, _)| patterns(v)),
            "write": p.write.as_ref().map(|(v, _)| patterns(v)),
            "exec": p.exec.as_ref().map(|(v, _)| patterns(v)),
            "network": p.network.as_ref().map(|(v, _)| v.describe()),
            "mcp": p.mcp.as_ref().map(|(v, _)| patterns(v)),
            "env": p.env.as_ref().map(|(v, _)| v),
        })
    });
    json!({
        "name": r.name,
        "title": r.title,
        "version": r.version,
        "description": r.description,
        "params": r.params.iter().map(|p| json!({
            "name": p.name,
            "type": p.ty,
            "default": p.default.as_ref().map(|d| d.to_json()),
            "help": p.help,
        })).collect::<Vec<_>>(),
        "secrets": r.secrets.iter().map(|s| &s.name).collect::<Vec<_>>(),
        "agents": r.agents.iter().map(|a| agent(a, r)).collect::<Vec<_>>(),
        "imports": r.imports.iter().map(|i| json!({
            "alias": i.alias,
            "agents": i.agents.iter().map(|a| &r.agent(*a).name).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "phases": r.phases.iter().map(|p| json!({
            "name": p.name,
            "title": p.title,
            "estimate": p.estimate.as_ref().map(|d| &d.text),
            "after": p.after.as_ref().map(|a| a.iter().map(|(id, _)| &r.phase(*id).name).collect::<Vec<_>>()),
            "nodes": p.nodes.iter().map(|id| &r.node(*id).name).collect::<Vec<_>>(),
            "rollback": p.rollback.as_ref().map(|b| rollback(b, map)),
        })).collect::<Vec<_>>(),
        "nodes": r.nodes.iter().map(|n| node(n, r, map)).collect::<Vec<_>>(),
        "rollback": r.rollback.iter().map(|b| rollback(b, map)).collect::<Vec<_>>(),
        "policy": policy,
        "budget": r.budget.as_ref().map(|b| b.value),
        "mcp_servers": r.mcp_servers.iter().map(|s| json!({
            "name": s.name,
            "run": s.run,
            "env": s.env,
        })).collect::<Vec<_>>(),
        "sources": r.sources.iter().map(|s| json!([map.get(s.file).path.display().to_string(), s.role])).collect::<Vec<_>>(),
        "edges": edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_stripped() {
        let text = "Str { value: \"x\", span: Span { start: 1, end: 4 }, triple: false, offsets: OffsetMap { segments: [(0, 2)] } }";
        assert_eq!(
            strip_spans(text),
            "Str { value: \"x\", span: Span, triple: false, offsets: OffsetMap }"
        );
    }
}
