//! The abstract syntax tree: what the text says, in source order, with spans.
//! Nothing is resolved here; names are strings and values are unvalidated tokens.

use super::source::Span;

/// A name as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The name (may contain dots for qualified names such as `agents.claude`).
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// Maps offsets of a string's value back to its source, for diagnostics that point
/// inside a string (template errors in a multi-line prompt).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetMap {
    /// `(value offset, source offset)` at the start of each verbatim run, ascending.
    pub segments: Vec<(u32, u32)>,
}

impl OffsetMap {
    /// The source offset of a byte offset inside the value.
    pub fn to_source(&self, value_offset: usize) -> u32 {
        let value_offset = value_offset as u32;
        let i = self.segments.partition_point(|(v, _)| *v <= value_offset);
        match i {
            0 => self.segments.first().map_or(0, |s| s.1),
            _ => {
                let (v, s) = self.segments[i - 1];
                s + (value_offset - v)
            }
        }
    }
}

/// A string literal: `"…"` or `"""…"""`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str {
    /// The value, with escapes processed and triple-quote indentation stripped.
    pub value: String,
    /// The whole literal, quotes included.
    pub span: Span,
    /// Whether it was written with triple quotes.
    pub triple: bool,
    /// Offsets of the value back into the source.
    pub offsets: OffsetMap,
}

/// A number-like token (`3`, `-1`, `2.50`, `30m`, `1h30m`), validated later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The text as written.
    pub text: String,
    /// Where.
    pub span: Span,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// A string.
    Str(Str),
    /// A number or duration.
    Number(Token),
    /// `true` / `false`.
    Bool(bool, Span),
    /// A bare (possibly qualified) name inside a list.
    Name(Ident),
    /// `[a, b]`.
    List(List),
}

impl Literal {
    /// Where the literal is written.
    pub fn span(&self) -> Span {
        match self {
            Literal::Str(s) => s.span,
            Literal::Number(t) => t.span,
            Literal::Bool(_, span) => *span,
            Literal::Name(i) => i.span,
            Literal::List(l) => l.span,
        }
    }
}

/// A bracketed list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    /// The items.
    pub items: Vec<Literal>,
    /// The brackets and everything between.
    pub span: Span,
}

/// One parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum File {
    /// `runbook NAME { … }`.
    Runbook(Runbook),
    /// `policy { … }`.
    Policy(Policy),
    /// Top-level imports and agents (a library such as `std/agents`).
    Module(Module),
}

/// A library file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its imports.
    pub imports: Vec<Import>,
    /// Its agents.
    pub agents: Vec<Agent>,
    /// Its MCP server declarations.
    pub mcp_servers: Vec<McpServer>,
}

/// `title`, `version` or `description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The key.
    pub key: Ident,
    /// The value.
    pub value: Str,
}

/// `runbook NAME { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runbook {
    /// The name.
    pub name: Ident,
    /// The whole block.
    pub span: Span,
    /// Items in source order.
    pub items: Vec<RunbookItem>,
}

/// An item at the top of a runbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunbookItem {
    /// `title "…"` and friends.
    Metadata(Metadata),
    /// `import "…" [as NAME]`.
    Import(Import),
    /// `param NAME: TYPE …`.
    Param(Param),
    /// `secret NAME`.
    Secret(Secret),
    /// `agent NAME …`.
    Agent(Agent),
    /// `phase NAME …`.
    Phase(Phase),
    /// `rollback { … }`.
    Rollback(Rollback),
    /// `budget 10.00`: the most the whole run may cost.
    Budget(Field<Token>),
    /// `mcp NAME { … }`.
    Mcp(McpServer),
}

/// `mcp NAME { run "…" env [...] }`: an MCP server declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    /// The `mcp` keyword.
    pub key: Ident,
    /// The name.
    pub name: Ident,
    /// Its fields (`run`, `env`, metadata) in source order.
    pub fields: Vec<AgentField>,
    /// The whole declaration.
    pub span: Span,
}

/// `import "PATH" [as NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    /// The path string.
    pub path: Str,
    /// The alias.
    pub alias: Option<Ident>,
    /// The whole import.
    pub span: Span,
}

/// `param NAME: TYPE [= DEFAULT] ["help"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// The name.
    pub name: Ident,
    /// The type name as written.
    pub ty: Ident,
    /// The default.
    pub default: Option<Literal>,
    /// The help text.
    pub help: Option<Str>,
    /// The whole declaration.
    pub span: Span,
}

/// `secret NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The environment variable's name.
    pub name: Ident,
}

/// A keyword-introduced field: the keyword's span and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<T> {
    /// The keyword.
    pub key: Ident,
    /// The value.
    pub value: T,
}

/// `network on|off|[hosts]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// `on` or `off`.
    Mode(bool, Span),
    /// An allowlist of hosts.
    Hosts(List),
}

/// A permission field shared by agents and the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentField {
    /// `kind claude|codex|gemini|aider|command`.
    Kind(Field<Ident>),
    /// `run "command line"`.
    Run(Field<Str>),
    /// `model "…"`.
    Model(Field<Str>),
    /// `max_turns N`.
    MaxTurns(Field<Token>),
    /// `budget 2.50` (US dollars).
    Budget(Field<Token>),
    /// `read [globs]`.
    Read(Field<List>),
    /// `write [globs]`.
    Write(Field<List>),
    /// `exec [programs]`.
    Exec(Field<List>),
    /// `network …`.
    Network(Field<Network>),
    /// `mcp [servers]`.
    Mcp(Field<List>),
    /// `env [variables]`.
    Env(Field<List>),
    /// `timeout DURATION`.
    Timeout(Field<Token>),
    /// `title "…"` / `description "…"`.
    Metadata(Metadata),
}

impl AgentField {
    /// The keyword of the field.
    pub fn key(&self) -> &Ident {
        match self {
            AgentField::Run(f) | AgentField::Model(f) => &f.key,
            AgentField::Kind(f) => &f.key,
            AgentField::MaxTurns(f) | AgentField::Budget(f) => &f.key,
            AgentField::Read(f) | AgentField::Write(f) | AgentField::Exec(f) => &f.key,
            AgentField::Mcp(f) | AgentField::Env(f) => &f.key,
            AgentField::Network(f) => &f.key,
            AgentField::Timeout(f) => &f.key,
            AgentField::Metadata(m) => &m.key,
        }
    }
}

/// `agent NAME [uses OTHER] { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The name.
    pub name: Ident,
    /// The agent it narrows.
    pub uses: Option<Ident>,
    /// Its fields in source order.
    pub fields: Vec<AgentField>,
    /// The whole declaration.
    pub span: Span,
}

/// `policy { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The ceiling's fields.
    pub fields: Vec<AgentField>,
    /// The whole block.
    pub span: Span,
}

/// `phase NAME ["title"] [after …] { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// The name.
    pub name: Ident,
    /// The title after the name.
    pub title: Option<Str>,
    /// Phases it runs after.
    pub after: Option<Vec<Ident>>,
    /// Body items in source order.
    pub items: Vec<PhaseItem>,
    /// The whole block.
    pub span: Span,
}

/// An item inside a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseItem {
    /// `title "…"`.
    Metadata(Metadata),
    /// `estimate DURATION`.
    Estimate(Field<Token>),
    /// A step.
    Step(Step),
    /// A checkpoint.
    Checkpoint(Checkpoint),
    /// The phase's compensation.
    Rollback(Rollback),
}

/// Where a prompt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSource {
    /// Written inline.
    Inline(Str),
    /// `file("path")`, relative to the runbook file.
    File(Str),
}

/// `step NAME ["title"] [by AGENT] [after …] { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The name.
    pub name: Ident,
    /// The title after the name.
    pub title: Option<Str>,
    /// The agent.
    pub by: Option<Ident>,
    /// Explicit dependencies.
    pub after: Option<Vec<Ident>>,
    /// Fields in source order.
    pub fields: Vec<StepField>,
    /// The whole block.
    pub span: Span,
}

/// `until "CMD" [attempts N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Until {
    /// The check command.
    pub command: Str,
    /// The attempts count as written.
    pub attempts: Option<Token>,
}

/// A field of a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepField {
    /// `title "…"`.
    Metadata(Metadata),
    /// `prompt …`.
    Prompt(Field<PromptSource>),
    /// `sh "…"` or `sh ["…", …]`.
    Sh(Field<Vec<Str>>),
    /// `produces [paths]`.
    Produces(Field<Vec<Str>>),
    /// `until "…" attempts N`.
    Until(Field<Until>),
    /// `timeout DURATION`.
    Timeout(Field<Token>),
    /// `when "EXPR"`.
    When(Field<Str>),
    /// `on_failure MODE`.
    OnFailure(Field<Ident>),
    /// The step's compensation.
    Rollback(Rollback),
}

/// One thing a checkpoint shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShowItem {
    /// A path in the workspace.
    Path(Str),
    /// `diff`: the run's changes.
    Diff(Span),
    /// `steps.X.output` and similar.
    Reference(Ident),
}

/// A field of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointField {
    /// `title "…"`.
    Metadata(Metadata),
    /// `show …`.
    Show(Field<Vec<ShowItem>>),
    /// `ask "…"`.
    Ask(Field<Str>),
    /// `revise STEP`.
    Revise(Field<Ident>),
    /// `approvers [names]`.
    Approvers(Field<List>),
    /// `timeout DURATION`.
    Timeout(Field<Token>),
}

/// `checkpoint NAME ["title"] [after …] { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The name.
    pub name: Ident,
    /// The title after the name.
    pub title: Option<Str>,
    /// Explicit dependencies.
    pub after: Option<Vec<Ident>>,
    /// Fields in source order.
    pub fields: Vec<CheckpointField>,
    /// The whole block.
    pub span: Span,
}

/// `rollback { sh … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The `rollback` keyword.
    pub key: Ident,
    /// Commands in order.
    pub sh: Vec<Str>,
    /// Optional time limit.
    pub timeout: Option<Token>,
    /// The whole block.
    pub span: Span,
}
