//! IR: the resolved, typed runbook. Imports are loaded, `uses` chains flattened into
//! effective permissions, names turned into ids, values typed, and the ordering rules
//! turned into a dependency graph. Building it reports resolution errors; judging it
//! (cycles, races, permissions) is the checker's job.

pub mod graph;
pub mod jinja;
pub mod limits;
pub mod load;
pub mod lower;
pub mod pattern;
pub mod value;

use crate::syntax::ast::OffsetMap;
use crate::syntax::source::{FileId, Location};
use pattern::Pattern;
use std::time::Duration;
use value::{DurationValue, ParamType, Value};

pub use graph::{Graph, GraphNode};

/// Index of an agent in [`Runbook::agents`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub u32);

/// Index of a phase in [`Runbook::phases`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhaseId(pub u32);

/// Index of a step or checkpoint in [`Runbook::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// The builtin `shell` agent is always agent 0.
pub const SHELL: AgentId = AgentId(0);

/// A minijinja template (or expression) and where its text lives.
#[derive(Debug, Clone)]
pub struct Template {
    /// The source text of the template.
    pub text: String,
    /// The file the text is in (a prompt file for `file(...)` prompts).
    pub file: FileId,
    /// Maps offsets in `text` to offsets in that file.
    pub offsets: OffsetMap,
    /// The literal (or `file(...)` argument) to point at when no finer place is known.
    pub location: Location,
    /// Whether this is a bare expression (`when`) rather than a template.
    pub expression: bool,
}

impl Template {
    /// Whether the text has template syntax at all (most `sh` lines do not).
    pub fn is_static(&self) -> bool {
        !self.expression
            && !self.text.contains("{{")
            && !self.text.contains("{%")
            && !self.text.contains("{#")
    }

    /// The location of a byte range of the text.
    pub fn location_of(&self, range: std::ops::Range<usize>) -> Location {
        // Widened to whole characters: minijinja can report a range that splits one
        // (its "unexpected character" points at the first byte), and a span that ends
        // inside a character panics whoever slices the source with it (found by
        // fuzz/fuzz_targets/check.rs).
        let text = &self.text;
        let mut first = range.start.min(text.len());
        while !text.is_char_boundary(first) {
            first -= 1;
        }
        let mut last = range.end.max(range.start).min(text.len());
        while !text.is_char_boundary(last) {
            last += 1;
        }
        let start = self.offsets.to_source(first);
        let end = self.offsets.to_source(last).max(start);
        Location {
            file: self.file,
            span: crate::syntax::source::Span { start, end },
        }
    }
}

/// `param NAME: TYPE …`.
#[derive(Debug, Clone)]
pub struct Param {
    /// The name.
    pub name: String,
    /// Where it is declared.
    pub location: Location,
    /// Its type.
    pub ty: ParamType,
    /// The default; `None` means required.
    pub default: Option<Value>,
    /// The help text.
    pub help: Option<String>,
}

/// `secret NAME`.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The environment variable.
    pub name: String,
    /// Where it is declared.
    pub location: Location,
}

/// How an agent carries out a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentKind {
    /// Runs the step's `sh` lines through `sh -c`.
    Shell,
    /// Runs a command line with the rendered prompt on stdin.
    Command {
        /// The command line as written.
        run: String,
    },
}

/// A CLI coding agent the interpreter knows (`kind claude`): it builds the agent's flags
/// and config from the step's permissions and reads its machine-readable result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    /// Claude Code (`claude -p`).
    Claude,
    /// OpenAI Codex CLI (`codex exec`).
    Codex,
    /// Gemini CLI (`gemini`).
    Gemini,
    /// aider (`aider --message-file`).
    Aider,
}

impl Tool {
    /// Every tool, in the order `runbook agents` lists them.
    pub const ALL: [Tool; 4] = [Tool::Claude, Tool::Codex, Tool::Gemini, Tool::Aider];

    /// The name written after `kind`.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Claude => "claude",
            Tool::Codex => "codex",
            Tool::Gemini => "gemini",
            Tool::Aider => "aider",
        }
    }

    /// The tool written `name` after `kind`, if there is one.
    pub fn from_name(name: &str) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The program an agent of this kind runs when it has no `run` of its own.
    pub fn program(self) -> &'static str {
        self.name()
    }

    /// Whether the tool reports what an attempt cost, so that a dollar `budget` can be
    /// enforced (only Claude Code's result has `total_cost_usd`).
    pub fn reports_cost(self) -> bool {
        self == Tool::Claude
    }

    /// Whether the tool can be held to a number of model turns (`max_turns`): Codex has
    /// no turn limit and aider sends one message.
    pub fn limits_turns(self) -> bool {
        matches!(self, Tool::Claude | Tool::Gemini)
    }

    /// Whether the tool can be given MCP servers (aider has no MCP support).
    pub fn uses_mcp(self) -> bool {
        self != Tool::Aider
    }
}

impl std::fmt::Display for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `mcp NAME { run "…" env [...] }`: an MCP server (stdio) that agents may be given.
#[derive(Debug, Clone)]
pub struct McpServer {
    /// The name agents' `mcp [...]` lists use (`fs`, or `tools.fs` when imported).
    pub name: String,
    /// Where it is declared.
    pub location: Location,
    /// The command line that starts it (split shell-style).
    pub run: String,
    /// Variables (and secrets) it receives.
    pub env: Vec<String>,
}

/// Network access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// No network.
    Off,
    /// Only these hosts.
    Hosts(Vec<String>),
    /// Any network.
    On,
}

impl Network {
    /// Whether `self` allows no more than `ceiling`.
    pub fn within(&self, ceiling: &Network) -> bool {
        match (self, ceiling) {
            (_, Network::On) | (Network::Off, _) => true,
            (Network::Hosts(mine), Network::Hosts(theirs)) => {
                mine.iter().all(|h| theirs.contains(h))
            }
            _ => false,
        }
    }

    /// The language form.
    pub fn describe(&self) -> String {
        match self {
            Network::Off => "off".into(),
            Network::On => "on".into(),
            Network::Hosts(h) => format!("{h:?}"),
        }
    }
}

/// A permission field's value and where it was set (or inherited from).
#[derive(Debug, Clone)]
pub struct Setting<T> {
    /// The effective value.
    pub value: T,
    /// Where this value is written, if it is written in the agent itself.
    pub own: Option<Location>,
}

/// What an agent may touch: the effective permissions after `uses`.
#[derive(Debug, Clone)]
pub struct Permissions {
    /// Paths it may read.
    pub read: Setting<Vec<Pattern>>,
    /// Paths it may change.
    pub write: Setting<Vec<Pattern>>,
    /// Programs it may run.
    pub exec: Setting<Vec<Pattern>>,
    /// Network access.
    pub network: Setting<Network>,
    /// MCP servers it may use.
    pub mcp: Setting<Vec<Pattern>>,
    /// Variables (and secrets) it receives.
    pub env: Setting<Vec<String>>,
}

/// An agent: who acts, and with what permissions.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The name steps use (`implementer`, `agents.claude`).
    pub name: String,
    /// Where it is declared (the builtin points at the runbook's name).
    pub location: Location,
    /// The agent it narrows.
    pub uses: Option<AgentId>,
    /// How it runs.
    pub kind: AgentKind,
    /// Effective permissions.
    pub permissions: Permissions,
    /// Time limit for each step it runs.
    pub timeout: Option<DurationValue>,
    /// Whether it is declared in the checked runbook itself (not imported, not builtin).
    pub local: bool,
    /// The CLI agent its `run` starts (`kind`), inherited through `uses`; `None` for the
    /// shell and for plain `command` agents.
    pub tool: Option<Tool>,
    /// `model "…"`: the model the tool is asked to use.
    pub model: Option<Setting<String>>,
    /// `max_turns N`: the most model turns per attempt.
    pub max_turns: Option<Setting<u32>>,
    /// `budget 2.50`: the most US dollars per attempt, where the tool reports cost.
    pub budget: Option<Setting<f64>>,
}

/// Where a failed step leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop, then run compensations (the default).
    Rollback,
    /// Ask a human.
    Escalate,
    /// Record the failure and go on.
    Continue,
}

/// `until "CMD" attempts N`.
#[derive(Debug, Clone)]
pub struct UntilCheck {
    /// The check command (a template).
    pub command: Template,
    /// How many attempts in all.
    pub attempts: u32,
}

/// A compensation block.
#[derive(Debug, Clone)]
pub struct RollbackBlock {
    /// Commands, in order, run by the builtin shell.
    pub sh: Vec<Template>,
    /// Time limit for the whole block.
    pub timeout: Option<DurationValue>,
    /// The block.
    pub location: Location,
}

/// A path a step must create or change.
#[derive(Debug, Clone)]
pub struct Produces {
    /// The path.
    pub path: String,
    /// Where it is written.
    pub location: Location,
}

/// A unit of work.
#[derive(Debug, Clone)]
pub struct Step {
    /// The agent, if it resolved.
    pub agent: Option<AgentId>,
    /// Where `by AGENT` is written (the step name without `by`).
    pub agent_location: Location,
    /// The prompt, for command agents.
    pub prompt: Option<Template>,
    /// The commands, for shell agents.
    pub sh: Vec<Template>,
    /// Paths it must create or change.
    pub produces: Vec<Produces>,
    /// The retry check.
    pub until: Option<UntilCheck>,
    /// Time limit per attempt.
    pub timeout: Option<DurationValue>,
    /// Run only when this is true.
    pub when: Option<Template>,
    /// What a failure leads to.
    pub on_failure: OnFailure,
    /// Its compensation.
    pub rollback: Option<RollbackBlock>,
}

/// What a checkpoint shows the reviewer.
#[derive(Debug, Clone)]
pub enum ShowItem {
    /// A file of the workspace.
    Path(String, Location),
    /// The run's changes.
    Diff(Location),
    /// The output (or files, or status) of a step.
    StepValue {
        /// The step.
        node: Option<NodeId>,
        /// `output`, `files` or `status`.
        field: String,
        /// Where it is written.
        location: Location,
    },
}

/// A human decision point.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// What it shows.
    pub show: Vec<ShowItem>,
    /// The question (a template).
    pub ask: Option<Template>,
    /// The step a "revise" re-runs.
    pub revise: Option<(NodeId, Location)>,
    /// Who may decide; empty means anyone.
    pub approvers: Vec<String>,
    /// No decision by then counts as a rejection.
    pub timeout: Option<DurationValue>,
}

/// A step or a checkpoint.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A step.
    Step(Step),
    /// A checkpoint.
    Checkpoint(Checkpoint),
}

/// A node of the DAG that the user named.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name, unique among steps and checkpoints.
    pub name: String,
    /// Where the name is written.
    pub location: Location,
    /// The whole block.
    pub block: Location,
    /// The phase it belongs to.
    pub phase: PhaseId,
    /// Its title.
    pub title: Option<String>,
    /// Explicit `after` dependencies that resolved, with where they are written.
    pub after: Vec<(NodeId, Location)>,
    /// Step or checkpoint.
    pub kind: NodeKind,
}

impl Node {
    /// The step, if this node is one.
    pub fn step(&self) -> Option<&Step> {
        match &self.kind {
            NodeKind::Step(s) => Some(s),
            NodeKind::Checkpoint(_) => None,
        }
    }

    /// The checkpoint, if this node is one.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        match &self.kind {
            NodeKind::Checkpoint(c) => Some(c),
            NodeKind::Step(_) => None,
        }
    }
}

/// A phase: a group of steps in the file's order.
#[derive(Debug, Clone)]
pub struct Phase {
    /// The name.
    pub name: String,
    /// Where the name is written.
    pub location: Location,
    /// Its title.
    pub title: Option<String>,
    /// Its estimate.
    pub estimate: Option<DurationValue>,
    /// Phases it runs after (explicit `after`), with where they are written.
    pub after: Option<Vec<(PhaseId, Location)>>,
    /// Its steps and checkpoints, in source order.
    pub nodes: Vec<NodeId>,
    /// Its compensation.
    pub rollback: Option<RollbackBlock>,
}

/// `import "PATH" [as NAME]` in the runbook.
#[derive(Debug, Clone)]
pub struct Import {
    /// The name its agents are qualified with.
    pub alias: String,
    /// The whole import.
    pub location: Location,
    /// The agents it brought in.
    pub agents: Vec<AgentId>,
}

/// The repository's ceiling (`policy.runbook`).
#[derive(Debug, Clone)]
pub struct Policy {
    /// The file.
    pub file: FileId,
    /// Path globs agents may read.
    pub read: Option<(Vec<Pattern>, Location)>,
    /// Path globs agents may write.
    pub write: Option<(Vec<Pattern>, Location)>,
    /// Programs agents may run.
    pub exec: Option<(Vec<Pattern>, Location)>,
    /// The most network any agent may have.
    pub network: Option<(Network, Location)>,
    /// MCP servers agents may use.
    pub mcp: Option<(Vec<Pattern>, Location)>,
    /// Variables agents may receive.
    pub env: Option<(Vec<String>, Location)>,
}

/// A source file the runbook depends on, for the run's records.
#[derive(Debug, Clone)]
pub struct SourceRef {
    /// The file.
    pub file: FileId,
    /// Why it is loaded.
    pub role: SourceRole,
}

/// Why a file is part of a runbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceRole {
    /// The runbook itself.
    Runbook,
    /// An imported module.
    Import,
    /// A `file(...)` prompt.
    Prompt,
    /// The repository's policy.
    Policy,
}

/// The resolved runbook.
#[derive(Debug, Clone)]
pub struct Runbook {
    /// Its name.
    pub name: String,
    /// Where the name is written.
    pub location: Location,
    /// The runbook file.
    pub file: FileId,
    /// `title`.
    pub title: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// Parameters.
    pub params: Vec<Param>,
    /// Secrets.
    pub secrets: Vec<Secret>,
    /// Agents: the builtin shell first, then imported and local ones.
    pub agents: Vec<Agent>,
    /// The runbook's own imports.
    pub imports: Vec<Import>,
    /// Phases in file order.
    pub phases: Vec<Phase>,
    /// Steps and checkpoints in file order.
    pub nodes: Vec<Node>,
    /// The runbook's own compensation blocks.
    pub rollback: Vec<RollbackBlock>,
    /// MCP servers declared in the runbook and its imports.
    pub mcp_servers: Vec<McpServer>,
    /// `budget 10.00`: the most US dollars the whole run may cost, summed over the cost
    /// the agents report.
    pub budget: Option<Setting<f64>>,
    /// The repository policy, if one applies.
    pub policy: Option<Policy>,
    /// Every file this runbook was built from.
    pub sources: Vec<SourceRef>,
    /// The dependency graph.
    pub graph: Graph,
}

impl Runbook {
    /// The agent with this id.
    pub fn agent(&self, id: AgentId) -> &Agent {
        &self.agents[id.0 as usize]
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.0 as usize]
    }

    /// The phase with this id.
    pub fn phase(&self, id: PhaseId) -> &Phase {
        &self.phases[id.0 as usize]
    }

    /// The node named `name`.
    pub fn node_named(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .map(|i| NodeId(i as u32))
    }

    /// The step's timeout, falling back to its agent's.
    pub fn step_timeout(&self, step: &Step) -> Option<Duration> {
        step.timeout
            .as_ref()
            .or_else(|| step.agent.and_then(|a| self.agent(a).timeout.as_ref()))
            .map(|d| d.duration)
    }
}
