//! The plan: what a reviewer approves before anything runs. [`build`] turns a
//! [`CheckedRunbook`] and the parameter values known so far into a [`Plan`] (phases in
//! order with their estimates, steps with their agent and what it may touch,
//! checkpoints, rollback, params and secrets, the critical path); the renderings
//! ([`markdown`], [`text`], [`mermaid`], [`dot`], [`json`]) only read that value.
//!
//! A required param without a value does not stop a plan: it is listed as unset, and
//! templates that read it see the placeholder `<NAME: not set>`.

pub mod critical_path;
pub mod dot;
pub mod estimate;
pub mod json;
pub mod markdown;
pub mod mermaid;
pub mod text;

use crate::check::CheckedRunbook;
use crate::ir::{AgentKind, GraphNode, NodeId, NodeKind, OnFailure, Runbook, ShowItem};
use crate::run::context::{Context, Renderer, StepView};
use crate::syntax::source::SourceMap;
pub use critical_path::CriticalPath;
pub use estimate::Estimate;
use petgraph::Direction;
use serde::Serialize;
use std::collections::BTreeMap;

/// The version of the JSON document's shape; changes only when a field is removed or
/// changes meaning (new fields may appear at any time).
pub const SCHEMA: &str = "runbook-plan/1";

/// Everything a plan shows.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The runbook's name, metadata and file.
    pub runbook: Header,
    /// Parameters with their values.
    pub params: Vec<ParamPlan>,
    /// Secrets and the agents that receive them.
    pub secrets: Vec<SecretPlan>,
    /// The most US dollars the whole run may cost (`budget`), summed over the costs the
    /// agents report.
    pub budget: Option<f64>,
    /// The MCP servers the runbook and its imports declare.
    pub mcp_servers: Vec<McpServerPlan>,
    /// The agents that steps use, and the ones declared in the runbook.
    pub agents: Vec<AgentPlan>,
    /// Phases in file order.
    pub phases: Vec<PhasePlan>,
    /// The runbook's own compensation blocks.
    pub rollback: Vec<RollbackPlan>,
    /// Every compensation, in the order a failure after the last step would run them.
    pub rollback_order: Vec<RollbackEntry>,
    /// The longest chain of estimated work.
    pub critical_path: CriticalPath,
}

/// The runbook's identity.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// `runbook NAME`.
    pub name: String,
    /// `title`.
    pub title: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// The file as the user named it.
    pub file: String,
}

/// Where a param's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamSource {
    /// The declared default.
    Default,
    /// `--param` or `--params`.
    Given,
    /// Required and not given.
    Unset,
}

/// One param.
#[derive(Debug, Clone, Serialize)]
pub struct ParamPlan {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Its value, `null` when unset.
    pub value: Option<serde_json::Value>,
    /// Where the value comes from.
    pub source: ParamSource,
    /// The help text.
    pub help: Option<String>,
}

impl ParamPlan {
    /// A value as the language writes it: durations bare (`30d`), strings quoted.
    pub fn display(&self, value: &serde_json::Value) -> String {
        match (self.ty, value) {
            ("duration", serde_json::Value::String(text)) => text.clone(),
            _ => value.to_string(),
        }
    }
}

/// One secret.
#[derive(Debug, Clone, Serialize)]
pub struct SecretPlan {
    /// The environment variable.
    pub name: String,
    /// Agents whose `env` lists it.
    pub agents: Vec<String>,
}

/// One declared MCP server.
#[derive(Debug, Clone, Serialize)]
pub struct McpServerPlan {
    /// Its name, as agents' `mcp` lists write it.
    pub name: String,
    /// The command line that starts it.
    pub run: String,
    /// Variables and secrets it receives.
    pub env: Vec<String>,
}

/// One agent with its effective permissions.
#[derive(Debug, Clone, Serialize)]
pub struct AgentPlan {
    /// Its name.
    pub name: String,
    /// The agent it narrows.
    pub uses: Option<String>,
    /// `shell`, `command`, or the coding agent it runs (`claude`, `codex`, …).
    pub kind: String,
    /// The model it asks for.
    pub model: Option<String>,
    /// The most model turns per attempt.
    pub max_turns: Option<u32>,
    /// The most US dollars per attempt.
    pub budget: Option<f64>,
    /// The command line (the prompt goes to stdin); `null` for shell agents.
    pub run: Option<String>,
    /// Paths it may read.
    pub read: Vec<String>,
    /// Paths it may change.
    pub write: Vec<String>,
    /// Programs it may run.
    pub exec: Vec<String>,
    /// `on`, `off` or the list of hosts.
    pub network: String,
    /// MCP servers it may use.
    pub mcp: Vec<String>,
    /// Variables and secrets it receives.
    pub env: Vec<String>,
    /// Time limit per step.
    pub timeout: Option<String>,
    /// The steps it carries out.
    pub steps: Vec<String>,
}

/// One phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhasePlan {
    /// 1-based position in the file.
    pub number: usize,
    /// Its name.
    pub name: String,
    /// Its title.
    pub title: Option<String>,
    /// Its estimate.
    pub estimate: Option<Estimate>,
    /// The phases it waits for.
    pub after: Vec<String>,
    /// Whether its estimate is on the critical path.
    pub critical: bool,
    /// Steps and checkpoints in file order.
    pub nodes: Vec<NodePlan>,
    /// Its compensation.
    pub rollback: Option<RollbackPlan>,
}

impl PhasePlan {
    /// The title, or the name when it has none.
    pub fn label(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.name)
    }
}

/// A step or a checkpoint.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NodePlan {
    /// A step.
    Step(StepPlan),
    /// A checkpoint.
    Checkpoint(CheckpointPlan),
}

impl NodePlan {
    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            NodePlan::Step(s) => &s.name,
            NodePlan::Checkpoint(c) => &c.name,
        }
    }

    /// The steps and checkpoints it waits for directly.
    pub fn after(&self) -> &[String] {
        match self {
            NodePlan::Step(s) => &s.after,
            NodePlan::Checkpoint(c) => &c.after,
        }
    }
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct StepPlan {
    /// Its name.
    pub name: String,
    /// Its title.
    pub title: Option<String>,
    /// The agent that carries it out.
    pub agent: String,
    /// The steps and checkpoints it waits for directly (explicit `after`, the checkpoint
    /// above it, or nothing when it starts with its phase).
    pub after: Vec<String>,
    /// Its `when` condition.
    pub when: Option<String>,
    /// Its prompt, for command agents.
    pub prompt: Option<PromptPlan>,
    /// Its commands as written, for shell agents.
    pub sh: Vec<String>,
    /// Paths it must create or change.
    pub produces: Vec<String>,
    /// Its retry loop.
    pub until: Option<UntilPlan>,
    /// Time limit per attempt (its own or its agent's).
    pub timeout: Option<String>,
    /// What a failure leads to.
    pub on_failure: OnFailure,
    /// Its compensation.
    pub rollback: Option<RollbackPlan>,
}

/// A step's prompt.
#[derive(Debug, Clone, Serialize)]
pub struct PromptPlan {
    /// The prompt file, for `file(...)` prompts.
    pub file: Option<String>,
    /// How many lines the template has.
    pub lines: usize,
    /// The prompt rendered with the plan's params (with `--prompts`).
    pub rendered: Option<String>,
}

/// `until "CMD" attempts N`.
#[derive(Debug, Clone, Serialize)]
pub struct UntilPlan {
    /// The check command as written.
    pub command: String,
    /// Attempts in all.
    pub attempts: u32,
}

/// One checkpoint.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointPlan {
    /// Its name.
    pub name: String,
    /// Its title.
    pub title: Option<String>,
    /// What it waits for directly.
    pub after: Vec<String>,
    /// What it shows: paths, `diff`, `steps.X.output`.
    pub show: Vec<String>,
    /// The question as written.
    pub ask: Option<String>,
    /// The question rendered (with `--prompts`).
    pub ask_rendered: Option<String>,
    /// The step "request changes" re-runs.
    pub revise: Option<String>,
    /// Who may decide; empty means anyone.
    pub approvers: Vec<String>,
    /// No decision by then is a rejection.
    pub timeout: Option<String>,
}

/// A compensation block.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackPlan {
    /// Commands as written, in order.
    pub sh: Vec<String>,
    /// Time limit for the block.
    pub timeout: Option<String>,
}

/// Whose compensation a rollback entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RollbackScope {
    /// A step's.
    Step,
    /// A phase's.
    Phase,
    /// The runbook's.
    Runbook,
}

/// One compensation in the rollback order.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackEntry {
    /// Step, phase or runbook.
    pub scope: RollbackScope,
    /// The step or phase (the runbook's name for its own blocks).
    pub name: String,
    /// Commands as written, in order.
    pub sh: Vec<String>,
}

/// What the plan is built from besides the runbook.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Param values known now (defaults, `--params`, `--param`), by name.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The names among them given on the command line (not defaults).
    pub given: Vec<String>,
    /// Whether to render prompts and questions.
    pub prompts: bool,
    /// The runbook file as the user named it.
    pub file: String,
}

/// Builds the plan of a checked runbook; `map` holds the files it was loaded from.
pub fn build(checked: &CheckedRunbook, map: &SourceMap, options: &Options) -> Plan {
    let runbook = checked.runbook();
    let critical = critical_path::compute(runbook);
    let params = params(runbook, options);
    let renderer = options
        .prompts
        .then(|| PromptRenderer::new(runbook, &params));
    let phases = runbook
        .phases
        .iter()
        .enumerate()
        .map(|(i, phase)| {
            let id = crate::ir::PhaseId(i as u32);
            PhasePlan {
                number: i + 1,
                name: phase.name.clone(),
                title: phase.title.clone(),
                estimate: phase.estimate.as_ref().map(Estimate::of),
                after: phase_dependencies(runbook, id),
                critical: critical.phases.contains(&phase.name),
                nodes: phase
                    .nodes
                    .iter()
                    .map(|&n| node(runbook, map, n, renderer.as_ref()))
                    .collect(),
                rollback: phase.rollback.as_ref().map(rollback),
            }
        })
        .collect();
    Plan {
        schema: SCHEMA,
        runbook: Header {
            name: runbook.name.clone(),
            title: runbook.title.clone(),
            version: runbook.version.clone(),
            description: runbook.description.clone(),
            file: options.file.clone(),
        },
        params,
        secrets: runbook
            .secrets
            .iter()
            .map(|s| SecretPlan {
                name: s.name.clone(),
                agents: runbook
                    .agents
                    .iter()
                    .filter(|a| a.permissions.env.value.contains(&s.name))
                    .map(|a| a.name.clone())
                    .collect(),
            })
            .collect(),
        budget: runbook.budget.as_ref().map(|b| b.value),
        mcp_servers: runbook
            .mcp_servers
            .iter()
            .map(|s| McpServerPlan {
                name: s.name.clone(),
                run: s.run.clone(),
                env: s.env.clone(),
            })
            .collect(),
        agents: agents(runbook),
        phases,
        rollback: runbook.rollback.iter().map(rollback).collect(),
        rollback_order: rollback_order(runbook),
        critical_path: critical,
    }
}

fn params(runbook: &Runbook, options: &Options) -> Vec<ParamPlan> {
    runbook
        .params
        .iter()
        .map(|p| {
            let value = options.params.get(&p.name).cloned();
            let source = match &value {
                None => ParamSource::Unset,
                Some(_) if options.given.contains(&p.name) => ParamSource::Given,
                Some(_) => ParamSource::Default,
            };
            ParamPlan {
                name: p.name.clone(),
                ty: p.ty.name(),
                value,
                source,
                help: p.help.clone(),
            }
        })
        .collect()
}

fn agents(runbook: &Runbook) -> Vec<AgentPlan> {
    let mut steps_of: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for node in &runbook.nodes {
        if let Some(agent) = node.step().and_then(|s| s.agent) {
            steps_of.entry(agent.0).or_default().push(node.name.clone());
        }
    }
    let texts = |p: &[crate::ir::pattern::Pattern]| p.iter().map(|p| p.text.clone()).collect();
    runbook
        .agents
        .iter()
        .enumerate()
        .filter(|(i, a)| a.local || steps_of.contains_key(&(*i as u32)))
        .map(|(i, a)| {
            let p = &a.permissions;
            AgentPlan {
                name: a.name.clone(),
                uses: a.uses.map(|u| runbook.agent(u).name.clone()),
                kind: match (&a.kind, a.tool) {
                    (AgentKind::Shell, _) => "shell".into(),
                    (_, Some(tool)) => tool.name().into(),
                    (_, None) => "command".into(),
                },
                model: a.model.as_ref().map(|m| m.value.clone()),
                max_turns: a.max_turns.as_ref().map(|m| m.value),
                budget: a.budget.as_ref().map(|b| b.value),
                run: match &a.kind {
                    AgentKind::Shell => None,
                    AgentKind::Command { run } => Some(run.clone()),
                },
                read: texts(&p.read.value),
                write: texts(&p.write.value),
                exec: texts(&p.exec.value),
                network: p.network.value.describe(),
                mcp: texts(&p.mcp.value),
                env: p.env.value.clone(),
                timeout: a.timeout.as_ref().map(|d| d.text.clone()),
                steps: steps_of.get(&(i as u32)).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// An agent's kind, model, limits and MCP servers on one line (`kind claude  model
/// "…"  max_turns 20  budget $2.50  mcp fs`), for a coding agent or one with limits;
/// `None` for shell and plain command agents, which have none of them.
pub fn limits_line(a: &AgentPlan) -> Option<String> {
    if a.kind == "shell" || a.kind == "command" {
        return None;
    }
    let mut parts = vec![format!("kind {}", a.kind)];
    if let Some(model) = &a.model {
        parts.push(format!("model {model:?}"));
    }
    if let Some(turns) = a.max_turns {
        parts.push(format!("max_turns {turns}"));
    }
    if let Some(budget) = a.budget {
        parts.push(format!("budget ${}", crate::ir::limits::dollars(budget)));
    }
    if !a.mcp.is_empty() {
        parts.push(format!("mcp {}", a.mcp.join(",")));
    }
    Some(parts.join("  "))
}

/// The phases whose end this phase's start waits for.
fn phase_dependencies(runbook: &Runbook, phase: crate::ir::PhaseId) -> Vec<String> {
    let graph = &runbook.graph;
    let mut names: Vec<(u32, String)> = graph
        .dag
        .neighbors_directed(graph.phase_start(phase), Direction::Incoming)
        .filter_map(|v| match graph.dag[v] {
            GraphNode::PhaseEnd(p) => Some((p.0, runbook.phase(p).name.clone())),
            _ => None,
        })
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(|(_, n)| n).collect()
}

/// The named nodes a node waits for directly (not through its phase's start).
fn direct_dependencies(runbook: &Runbook, id: NodeId) -> Vec<String> {
    let graph = &runbook.graph;
    let mut ids: Vec<NodeId> = graph
        .dag
        .neighbors_directed(graph.index(id), Direction::Incoming)
        .filter_map(|v| match graph.dag[v] {
            GraphNode::Node(n) => Some(n),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids.into_iter()
        .map(|n| runbook.node(n).name.clone())
        .collect()
}

fn rollback(block: &crate::ir::RollbackBlock) -> RollbackPlan {
    RollbackPlan {
        sh: block.sh.iter().map(|t| t.text.clone()).collect(),
        timeout: block.timeout.as_ref().map(|d| d.text.clone()),
    }
}

/// Compensations as `run/rollback.rs` runs them after a failure at the very end:
/// completed steps in reverse order, each phase's block after its steps', then the
/// runbook's blocks in reverse.
fn rollback_order(runbook: &Runbook) -> Vec<RollbackEntry> {
    let mut out = Vec::new();
    for phase in runbook.phases.iter().rev() {
        for &id in phase.nodes.iter().rev() {
            let node = runbook.node(id);
            if let Some(block) = node.step().and_then(|s| s.rollback.as_ref()) {
                out.push(RollbackEntry {
                    scope: RollbackScope::Step,
                    name: node.name.clone(),
                    sh: rollback(block).sh,
                });
            }
        }
        if let Some(block) = &phase.rollback {
            out.push(RollbackEntry {
                scope: RollbackScope::Phase,
                name: phase.name.clone(),
                sh: rollback(block).sh,
            });
        }
    }
    for block in runbook.rollback.iter().rev() {
        out.push(RollbackEntry {
            scope: RollbackScope::Runbook,
            name: runbook.name.clone(),
            sh: rollback(block).sh,
        });
    }
    out
}

fn node(
    runbook: &Runbook,
    map: &SourceMap,
    id: NodeId,
    renderer: Option<&PromptRenderer>,
) -> NodePlan {
    let node = runbook.node(id);
    let after = direct_dependencies(runbook, id);
    match &node.kind {
        NodeKind::Step(step) => {
            let agent = step
                .agent
                .map(|a| runbook.agent(a))
                .expect("a checked runbook resolves every step's agent");
            let prompt = match agent.kind {
                AgentKind::Shell => None,
                AgentKind::Command { .. } => step.prompt.as_ref().map(|t| PromptPlan {
                    file: (t.file != runbook.file)
                        .then(|| crate::syntax::source::display_path(&map.get(t.file).path)),
                    lines: t.text.lines().count(),
                    rendered: renderer.map(|r| r.render(t)),
                }),
            };
            NodePlan::Step(StepPlan {
                name: node.name.clone(),
                title: node.title.clone(),
                agent: agent.name.clone(),
                after,
                when: step.when.as_ref().map(|t| t.text.clone()),
                prompt,
                sh: step.sh.iter().map(|t| t.text.clone()).collect(),
                produces: step.produces.iter().map(|p| p.path.clone()).collect(),
                until: step.until.as_ref().map(|u| UntilPlan {
                    command: u.command.text.clone(),
                    attempts: u.attempts,
                }),
                timeout: step
                    .timeout
                    .as_ref()
                    .or(agent.timeout.as_ref())
                    .map(|d| d.text.clone()),
                on_failure: step.on_failure,
                rollback: step.rollback.as_ref().map(rollback),
            })
        }
        NodeKind::Checkpoint(cp) => NodePlan::Checkpoint(CheckpointPlan {
            name: node.name.clone(),
            title: node.title.clone(),
            after,
            show: cp
                .show
                .iter()
                .map(|s| match s {
                    ShowItem::Path(p, _) => p.clone(),
                    ShowItem::Diff(_) => "diff".into(),
                    ShowItem::StepValue { node, field, .. } => format!(
                        "steps.{}.{field}",
                        node.map_or("?", |n| runbook.node(n).name.as_str())
                    ),
                })
                .collect(),
            ask: cp.ask.as_ref().map(|t| t.text.clone()),
            ask_rendered: match (renderer, &cp.ask) {
                (Some(r), Some(t)) => Some(r.render(t)),
                _ => None,
            },
            revise: cp.revise.map(|(n, _)| runbook.node(n).name.clone()),
            approvers: cp.approvers.clone(),
            timeout: cp.timeout.as_ref().map(|d| d.text.clone()),
        }),
    }
}

/// Renders templates the way a run would, with what is known before it starts.
struct PromptRenderer {
    renderer: Renderer,
    context: Context,
    steps: BTreeMap<String, StepView>,
}

impl PromptRenderer {
    fn new(runbook: &Runbook, params: &[ParamPlan]) -> PromptRenderer {
        let values: serde_json::Map<String, serde_json::Value> = params
            .iter()
            .map(|p| {
                let value = p
                    .value
                    .clone()
                    .unwrap_or_else(|| format!("<{}: not set>", p.name).into());
                (p.name.clone(), value)
            })
            .collect();
        // Outputs are unknown before a run: templates see a placeholder.
        let steps = runbook
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    StepView {
                        output: format!("<output of {}>", n.name),
                        files: vec![],
                        status: "succeeded".into(),
                    },
                )
            })
            .collect();
        PromptRenderer {
            renderer: Renderer::default(),
            context: Context {
                params: serde_json::Value::Object(values),
                run_id: "<run id>".into(),
                run_dir: "<run dir>".into(),
                name: runbook.name.clone(),
                version: runbook.version.clone().unwrap_or_default(),
                title: runbook.title.clone().unwrap_or_default(),
            },
            steps,
        }
    }

    fn render(&self, template: &crate::ir::Template) -> String {
        self.renderer
            .render(template, &self.context, &self.steps, 1, "")
            .unwrap_or_else(|e| format!("(cannot render: {e})"))
    }
}
