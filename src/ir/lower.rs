//! AST → IR: loads imports and prompt files, resolves names to ids, types values and
//! flattens `uses` chains. Every problem found on the way becomes a diagnostic and
//! lowering goes on, so that one run of `runbook check` reports as much as it can.

use super::limits;
use super::load;
use super::pattern::{Pattern, PatternKind};
use super::value::{parse_duration, DurationValue, ParamType, Value, DURATION_HELP};
use super::*;
use crate::diagnostic::Diagnostic;
use crate::syntax::ast;
use crate::syntax::source::{FileId, Location, SourceMap, Span};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The result of lowering one file.
#[derive(Debug)]
pub struct Lowered {
    /// The runbook, when the file is one and it could be built.
    pub runbook: Option<Runbook>,
    /// What was found wrong.
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads, parses and lowers the file at `path`. `Err` is a file that cannot be read.
pub fn lower_path(
    map: &mut SourceMap,
    path: &Path,
    name: String,
) -> Result<Lowered, load::ReadError> {
    let (file, problem) = load::read(map, path, name)?;
    if let Some(d) = problem {
        return Ok(Lowered {
            runbook: None,
            diagnostics: vec![d],
        });
    }
    Ok(lower_file(map, file))
}

/// Parses and lowers a file already in `map`.
pub fn lower_file(map: &mut SourceMap, file: FileId) -> Lowered {
    let text = map.get(file).text.clone();
    let parsed = match crate::syntax::parse(&text) {
        Ok(parsed) => parsed,
        Err(e) => {
            return Lowered {
                runbook: None,
                diagnostics: vec![syntax_diagnostic(file, e)],
            };
        }
    };
    let mut lowerer = Lowerer::new(map, file);
    let runbook = match &parsed {
        ast::File::Runbook(r) => lowerer.runbook(r),
        ast::File::Module(m) => {
            lowerer.module(m, file, "");
            None
        }
        ast::File::Policy(p) => {
            lowerer.policy_fields(p, file);
            None
        }
    };
    Lowered {
        runbook,
        diagnostics: lowerer.diagnostics,
    }
}

/// E0001 for a syntax error in `file`.
pub fn syntax_diagnostic(file: FileId, e: crate::syntax::SyntaxError) -> Diagnostic {
    let label = e.label.unwrap_or_else(|| "here".into());
    let mut d = Diagnostic::error("E0001", loc(file, e.span), e.message).with_label(label);
    if let Some(help) = e.help {
        d = d.with_help(help);
    }
    for (span, message) in e.labels {
        d = d.with_secondary(loc(file, span), message);
    }
    d
}

fn loc(file: FileId, span: Span) -> Location {
    Location { file, span }
}

/// Names close to `wanted`, for "did you mean" help.
fn suggest<'a>(wanted: &str, known: impl Iterator<Item = &'a str>) -> Option<String> {
    let known: Vec<&str> = known.collect();
    crate::diagnostic::closest(wanted, &known).map(str::to_string)
}

fn known_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    // `std.shell` is an alias of `shell`; listing both reads like two agents.
    let mut v: Vec<&str> = names.filter(|n| *n != "std.shell").collect();
    v.sort();
    v.dedup();
    if v.is_empty() {
        return "none is declared".into();
    }
    let shown: Vec<String> = v.iter().take(12).map(|n| format!("`{n}`")).collect();
    let more = if v.len() > 12 { ", …" } else { "" };
    format!("known: {}{more}", shown.join(", "))
}

struct Lowerer<'m> {
    map: &'m mut SourceMap,
    root: FileId,
    diagnostics: Vec<Diagnostic>,
    agents: Vec<Agent>,
    sources: Vec<SourceRef>,
    /// Canonical paths of the modules being imported, for cycle detection.
    import_stack: Vec<ImportFrame>,
    /// Names of the agents the runbook declares, resolved or not: a step naming one
    /// that failed to resolve gets no second error.
    declared_agents: std::collections::HashSet<String>,
    /// Agents exported by each module already lowered.
    modules: HashMap<PathBuf, Vec<(String, AgentId)>>,
    /// MCP servers declared so far (imported ones qualified with their import's name).
    mcp_servers: Vec<McpServer>,
    /// The unqualified names of the servers declared in the file whose agents are being
    /// lowered: an agent's `mcp` entry naming one is qualified like the server.
    server_scope: Vec<String>,
}

impl<'m> Lowerer<'m> {
    fn new(map: &'m mut SourceMap, root: FileId) -> Self {
        let root_location = loc(root, Span::new(0, 0));
        let everything = |kind| {
            vec![Pattern::new(
                if kind == PatternKind::Path { "**" } else { "*" },
                kind,
                root_location,
            )
            .expect("builtin patterns compile")]
        };
        let shell = Agent {
            name: "shell".into(),
            location: root_location,
            uses: None,
            kind: AgentKind::Shell,
            permissions: Permissions {
                read: Setting {
                    value: everything(PatternKind::Path),
                    own: None,
                },
                write: Setting {
                    value: everything(PatternKind::Path),
                    own: None,
                },
                exec: Setting {
                    value: everything(PatternKind::Name),
                    own: None,
                },
                network: Setting {
                    value: Network::On,
                    own: None,
                },
                mcp: Setting {
                    value: everything(PatternKind::Name),
                    own: None,
                },
                env: Setting {
                    value: Vec::new(),
                    own: None,
                },
            },
            timeout: None,
            local: false,
            tool: None,
            model: None,
            max_turns: None,
            budget: None,
        };
        let root_path = map.get(root).path.clone();
        let map_name = map.get(root).name.clone();
        Lowerer {
            map,
            root,
            diagnostics: Vec::new(),
            agents: vec![shell],
            sources: vec![SourceRef {
                file: root,
                role: SourceRole::Runbook,
            }],
            import_stack: vec![ImportFrame {
                key: canonical(&root_path),
                name: map_name,
                via: None,
            }],
            modules: HashMap::new(),
            declared_agents: Default::default(),
            mcp_servers: Vec::new(),
            server_scope: Vec::new(),
        }
    }

    fn error(
        &mut self,
        code: &'static str,
        location: Location,
        message: String,
    ) -> &mut Diagnostic {
        self.diagnostics
            .push(Diagnostic::error(code, location, message));
        self.diagnostics.last_mut().expect("just pushed")
    }

    /// E0106 for a name declared a second time at `here`, pointing at the first.
    fn declared_twice(&mut self, here: Location, first: Location, what: String, help: &str) {
        let d = self.error("E0106", here, format!("{what} is declared twice"));
        d.label = "declared again here".into();
        d.labels.push(crate::diagnostic::Label {
            location: first,
            message: "first declared here".into(),
        });
        d.help = Some(help.into());
    }

    fn text_of(&self, location: Location) -> String {
        self.map.get(location.file).text[location.span.range()].to_string()
    }

    // ---- values -------------------------------------------------------------

    fn duration(&mut self, file: FileId, token: &ast::Token, what: &str) -> Option<DurationValue> {
        match parse_duration(&token.text) {
            Ok(d) if d.duration.is_zero() && what == "timeout" => {
                let d = self.error(
                    "E0501",
                    loc(file, token.span),
                    format!("a {what} of `{}` never lets anything run", token.text),
                );
                d.label = "zero".into();
                d.help = Some(format!(
                    "write a positive duration such as 30m, or leave out `{what}`"
                ));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                let d = self.error(
                    "E0501",
                    loc(file, token.span),
                    format!("invalid {what} `{}`: {e}", token.text),
                );
                d.label = "not a duration".into();
                d.help = Some(DURATION_HELP.into());
                None
            }
        }
    }

    /// The value of a param default; `param` names the param in errors.
    fn literal_value(&mut self, file: FileId, lit: &ast::Literal, param: &str) -> Option<Value> {
        Some(match lit {
            ast::Literal::Str(s) => Value::String(s.value.clone()),
            ast::Literal::Bool(b, _) => Value::Bool(*b),
            ast::Literal::Name(i) => Value::String(i.name.clone()),
            ast::Literal::Number(t) => match t.text.parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => match parse_duration(&t.text) {
                    Ok(d) => Value::Duration(d),
                    Err(_) if t.text.parse::<f64>().is_ok() => {
                        let d = self.error(
                            "E0503",
                            loc(file, t.span),
                            format!(
                                "the default of param `{param}` is `{}`, a decimal number, which no param type holds",
                                t.text
                            ),
                        );
                        d.label = "not a whole number".into();
                        d.help = Some("write a whole number (int), a duration such as 90s, or a string \"1.5\"".into());
                        return None;
                    }
                    Err(e) => {
                        let d = self.error(
                            "E0501",
                            loc(file, t.span),
                            format!(
                                "the default of param `{param}`, `{}`, is neither a number nor a duration: {e}",
                                t.text
                            ),
                        );
                        d.help = Some(DURATION_HELP.into());
                        return None;
                    }
                },
            },
            ast::Literal::List(l) => {
                let mut items = Vec::new();
                for item in &l.items {
                    items.push(self.literal_value(file, item, param)?);
                }
                Value::List(items)
            }
        })
    }

    fn strings(&mut self, file: FileId, list: &ast::List, what: &str) -> Vec<(String, Location)> {
        let mut out = Vec::new();
        for item in &list.items {
            match item {
                ast::Literal::Str(s) => out.push((s.value.clone(), loc(file, s.span))),
                ast::Literal::Name(i) => out.push((i.name.clone(), loc(file, i.span))),
                other => {
                    let text = self.text_of(loc(file, other.span()));
                    let d = self.error(
                        "E0509",
                        loc(file, other.span()),
                        format!("`{text}` is not a valid {what}"),
                    );
                    d.label = "expected a string".into();
                    d.help = Some(format!("quote it: \"{text}\""));
                }
            }
        }
        out
    }

    fn patterns(
        &mut self,
        file: FileId,
        list: &ast::List,
        kind: PatternKind,
        what: &str,
    ) -> Vec<Pattern> {
        let mut out = Vec::new();
        for (text, location) in self.strings(file, list, what) {
            match Pattern::new(&text, kind, location) {
                Ok(p) => out.push(p),
                Err(e) => {
                    let d = self.error("E0405", location, format!("invalid pattern `{text}`: {e}"));
                    d.label = "not a valid glob".into();
                    d.help = Some("globs use `*` within a directory, `**` across directories, `?`, `[abc]` and `{a,b}`".into());
                }
            }
        }
        out
    }

    /// `network on|off|[hosts]` as a value.
    fn network(&mut self, file: FileId, value: &ast::Network) -> Network {
        match value {
            ast::Network::Mode(on, _) => {
                if *on {
                    Network::On
                } else {
                    Network::Off
                }
            }
            ast::Network::Hosts(list) => Network::Hosts(
                self.strings(file, list, "host")
                    .into_iter()
                    .map(|(h, _)| h)
                    .collect(),
            ),
        }
    }

    fn template(&mut self, file: FileId, s: &ast::Str) -> Template {
        Template {
            text: s.value.clone(),
            file,
            offsets: s.offsets.clone(),
            location: loc(file, s.span),
            expression: false,
        }
    }

    /// Reports a single-valued field written twice.
    fn once(&mut self, seen: &mut HashMap<String, Location>, file: FileId, key: &ast::Ident) {
        let here = loc(file, key.span);
        if let Some(first) = seen.get(&key.name) {
            let first = *first;
            let d = self.error("E0505", here, format!("`{}` is set twice", key.name));
            d.label = "set again here".into();
            d.labels.push(crate::diagnostic::Label {
                location: first,
                message: "first set here".into(),
            });
            d.help = Some(format!("keep one `{}`", key.name));
        } else {
            seen.insert(key.name.clone(), here);
        }
    }

    // ---- agents ---------------------------------------------------------------

    fn module(
        &mut self,
        module: &ast::Module,
        file: FileId,
        prefix: &str,
    ) -> Vec<(String, AgentId)> {
        let mut scope = self.base_scope();
        for import in &module.imports {
            self.import(import, file, &mut scope);
        }
        self.mcp_servers_in(&module.mcp_servers, file, prefix);
        self.agents_in(&module.agents, file, prefix, &mut scope, false)
    }

    /// Lowers the `mcp NAME { … }` declarations of one file and makes them the scope
    /// that its agents' `mcp` entries are qualified in.
    fn mcp_servers_in(&mut self, decls: &[ast::McpServer], file: FileId, prefix: &str) {
        self.server_scope.clear();
        for decl in decls {
            let name = qualified(prefix, &decl.name.name);
            let here = loc(file, decl.name.span);
            if let Some(first) = self.mcp_servers.iter().find(|s| s.name == name) {
                let first = first.location;
                self.declared_twice(
                    here,
                    first,
                    format!("MCP server `{}`", decl.name.name),
                    "keep one declaration, or rename one of them",
                );
                continue;
            }
            let mut seen = HashMap::new();
            let mut run = None;
            let mut env = Vec::new();
            for field in &decl.fields {
                self.once(&mut seen, file, field.key());
                match field {
                    ast::AgentField::Run(f) => run = Some(f.value.clone()),
                    ast::AgentField::Env(f) => {
                        env = self
                            .strings(file, &f.value, "variable name")
                            .into_iter()
                            .map(|(n, _)| n)
                            .collect();
                    }
                    // The grammar admits only `run`, `env` and metadata here.
                    _ => {}
                }
            }
            let run = match run {
                None => {
                    let d = self.error(
                        "E0515",
                        here,
                        format!("MCP server `{}` has no `run` command line", decl.name.name),
                    );
                    d.label = "nothing starts it".into();
                    d.help = Some(
                        "add `run \"PROGRAM ARGS\"`: the command that starts the server on stdio"
                            .into(),
                    );
                    String::new()
                }
                Some(run) => {
                    if !splits_into_words(&run.value) {
                        let d = self.error(
                            "E0515",
                            loc(file, run.span),
                            format!(
                                "MCP server `{}` has an invalid command line",
                                decl.name.name
                            ),
                        );
                        d.label = "empty or unbalanced quotes".into();
                        d.help = Some(
                            "write the program and its arguments, e.g. run \"mcp-server-filesystem .\""
                                .into(),
                        );
                    }
                    run.value
                }
            };
            self.server_scope.push(decl.name.name.clone());
            self.mcp_servers.push(McpServer {
                name,
                location: here,
                run,
                env,
            });
        }
    }

    fn base_scope(&self) -> HashMap<String, AgentId> {
        HashMap::from([
            ("shell".to_string(), SHELL),
            ("std.shell".to_string(), SHELL),
        ])
    }

    /// Lowers `decls` in `scope`, returning the (unqualified name, id) of each.
    fn agents_in(
        &mut self,
        decls: &[ast::Agent],
        file: FileId,
        prefix: &str,
        scope: &mut HashMap<String, AgentId>,
        local: bool,
    ) -> Vec<(String, AgentId)> {
        let mut pending: HashMap<String, usize> = HashMap::new();
        for (i, decl) in decls.iter().enumerate() {
            let name = &decl.name.name;
            if let Some(&first) = pending.get(name) {
                let first = loc(file, decls[first].name.span);
                self.declared_twice(
                    loc(file, decl.name.span),
                    first,
                    format!("agent `{name}`"),
                    "rename one of them",
                );
                continue;
            }
            if name == "shell" {
                let d = self.error(
                    "E0106",
                    loc(file, decl.name.span),
                    "`shell` is the builtin shell agent".into(),
                );
                d.label = "reserved for the builtin".into();
                d.help =
                    Some("pick another name, and write `uses shell` to narrow the builtin".into());
                continue;
            }
            pending.insert(name.clone(), i);
        }
        let mut state: HashMap<usize, Option<AgentId>> = HashMap::new();
        let mut exported = Vec::new();
        let mut order: Vec<(&String, &usize)> = pending.iter().collect();
        order.sort_by_key(|(_, i)| **i);
        for (name, &i) in order {
            if let Some(id) = self.resolve_local(
                i,
                decls,
                file,
                prefix,
                scope,
                &pending,
                &mut state,
                local,
                &mut Vec::new(),
            ) {
                exported.push((name.clone(), id));
            }
        }
        exported
    }

    #[allow(clippy::too_many_arguments)]
    fn resolve_local(
        &mut self,
        index: usize,
        decls: &[ast::Agent],
        file: FileId,
        prefix: &str,
        scope: &mut HashMap<String, AgentId>,
        pending: &HashMap<String, usize>,
        state: &mut HashMap<usize, Option<AgentId>>,
        local: bool,
        chain: &mut Vec<usize>,
    ) -> Option<AgentId> {
        if let Some(done) = state.get(&index) {
            return *done;
        }
        let decl = &decls[index];
        if chain.contains(&index) {
            let names: Vec<String> = chain
                .iter()
                .chain(std::iter::once(&index))
                .map(|i| decls[*i].name.name.clone())
                .collect();
            let d = self.error(
                "E0201",
                loc(file, decl.name.span),
                format!(
                    "`uses` cycle: {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            );
            d.label = "this agent ends up using itself".into();
            d.help = Some(
                "a `uses` chain must end at `shell` or at an agent with `run`: remove one `uses`"
                    .into(),
            );
            state.insert(index, None);
            return None;
        }
        let parent = match &decl.uses {
            None => None,
            Some(uses) => {
                let found = scope.get(&uses.name).copied().or_else(|| {
                    pending.get(&uses.name).copied().and_then(|i| {
                        chain.push(index);
                        let r = self.resolve_local(
                            i, decls, file, prefix, scope, pending, state, local, chain,
                        );
                        chain.pop();
                        r
                    })
                });
                match found {
                    Some(p) => Some(p),
                    None => {
                        if !pending.contains_key(&uses.name) {
                            let known: Vec<String> = scope
                                .keys()
                                .cloned()
                                .chain(pending.keys().cloned())
                                .collect();
                            let d = self.error(
                                "E0101",
                                loc(file, uses.span),
                                format!("unknown agent `{}`", uses.name),
                            );
                            d.label = "not declared or imported".into();
                            d.help = Some(
                                match suggest(&uses.name, known.iter().map(String::as_str)) {
                                    Some(s) => format!("did you mean `{s}`?"),
                                    None if uses.name.contains('.') => {
                                        "import its module first, e.g. `import \"std/agents\"`"
                                            .into()
                                    }
                                    None => known_list(known.iter().map(String::as_str)),
                                },
                            );
                        }
                        state.insert(index, None);
                        return None;
                    }
                }
            }
        };
        let agent = self.agent(decl, file, prefix, parent, local);
        let id = AgentId(self.agents.len() as u32);
        self.agents.push(agent);
        scope.insert(decl.name.name.clone(), id);
        state.insert(index, Some(id));
        Some(id)
    }

    fn agent(
        &mut self,
        decl: &ast::Agent,
        file: FileId,
        prefix: &str,
        parent: Option<AgentId>,
        local: bool,
    ) -> Agent {
        let parent_agent = parent.map(|p| self.agents[p.0 as usize].clone());
        let mut seen = HashMap::new();
        let mut run = None;
        let mut timeout = None;
        let (mut read, mut write, mut exec, mut network, mut mcp, mut env) =
            (None, None, None, None, None, None);
        let mut declared_kind: Option<(DeclaredKind, Location)> = None;
        let mut kind_unknown = false;
        let mut model: Option<(String, Location)> = None;
        let mut max_turns: Option<(u32, Location)> = None;
        let mut budget: Option<(f64, Location)> = None;
        for field in &decl.fields {
            self.once(&mut seen, file, field.key());
            let key = loc(file, field.key().span);
            match field {
                ast::AgentField::Run(f) => {
                    run = Some((f.value.value.clone(), loc(file, f.value.span)))
                }
                ast::AgentField::Kind(f) => {
                    declared_kind = self
                        .kind_value(file, &f.value)
                        .map(|k| (k, loc(file, f.key.span.join(f.value.span))));
                    kind_unknown = declared_kind.is_none();
                }
                ast::AgentField::Model(f) => {
                    let at = loc(file, f.value.span);
                    if self.limit(at, limits::model(&f.value.value)).is_some() {
                        model = Some((
                            f.value.value.clone(),
                            loc(file, f.key.span.join(f.value.span)),
                        ));
                    }
                }
                ast::AgentField::MaxTurns(f) => {
                    let at = loc(file, f.value.span);
                    max_turns = self
                        .limit(at, limits::max_turns(&f.value.text))
                        .map(|n| (n, loc(file, f.key.span.join(f.value.span))));
                }
                ast::AgentField::Budget(f) => {
                    let at = loc(file, f.value.span);
                    budget = self
                        .limit(at, limits::budget(&f.value.text))
                        .map(|n| (n, loc(file, f.key.span.join(f.value.span))));
                }
                ast::AgentField::Read(f) => {
                    read = Some((
                        self.patterns(file, &f.value, PatternKind::Path, "path glob"),
                        key,
                    ))
                }
                ast::AgentField::Write(f) => {
                    write = Some((
                        self.patterns(file, &f.value, PatternKind::Path, "path glob"),
                        key,
                    ))
                }
                ast::AgentField::Exec(f) => {
                    exec = Some((
                        self.patterns(file, &f.value, PatternKind::Name, "program"),
                        key,
                    ))
                }
                ast::AgentField::Mcp(f) => {
                    mcp = Some((
                        self.patterns(file, &f.value, PatternKind::Name, "server name"),
                        key,
                    ))
                }
                ast::AgentField::Env(f) => {
                    let names = self.strings(file, &f.value, "variable name");
                    env = Some((names.into_iter().map(|(n, _)| n).collect::<Vec<_>>(), key));
                }
                ast::AgentField::Network(f) => {
                    let value = self.network(file, &f.value);
                    network = Some((value, key));
                }
                ast::AgentField::Timeout(f) => timeout = self.duration(file, &f.value, "timeout"),
                ast::AgentField::Metadata(_) => {}
            }
        }
        let tool = self.tool_of(decl, parent_agent.as_ref(), declared_kind);
        let kind = match (&run, parent_agent.as_ref().map(|p| &p.kind)) {
            (Some((_, location)), Some(AgentKind::Shell)) => {
                let d = self.error(
                    "E0510",
                    *location,
                    format!(
                        "agent `{}` narrows `shell`, which runs `sh` lines and has no `run`",
                        decl.name.name
                    ),
                );
                d.label = "not allowed here".into();
                d.help =
                    Some("remove `run`, or drop `uses shell` to declare a command agent".into());
                AgentKind::Shell
            }
            (Some((run, location)), _) => {
                if !splits_into_words(run) {
                    let d = self.error(
                        "E0510",
                        *location,
                        format!("agent `{}` has an invalid command line", decl.name.name),
                    );
                    d.label = "empty or unbalanced quotes".into();
                    d.help = Some(
                        "write the program and its arguments, e.g. run \"codex exec -\"".into(),
                    );
                }
                AgentKind::Command { run: run.clone() }
            }
            (None, Some(kind)) => kind.clone(),
            // `kind claude` without `run` runs the tool's own program.
            (None, None) if tool.is_some() => AgentKind::Command {
                run: tool.map(Tool::program).unwrap_or_default().to_string(),
            },
            // An unknown `kind` is reported already; "no `run`" would only add noise.
            (None, None) if kind_unknown => AgentKind::Command { run: String::new() },
            (None, None) => {
                // A declared `kind command` and no kind at all lack the same thing.
                let (message, label, help) = if declared_kind.is_some() {
                    (
                        "is of kind `command` but has no `run` command line",
                        "nothing to run",
                        "`kind command` runs a program of its own: add `run \"PROGRAM ARGS\"`, or write `kind claude` (or codex, gemini, aider) to run that tool",
                    )
                } else {
                    (
                        "has no `run` command line and uses no other agent",
                        "does nothing",
                        "add `run \"PROGRAM ARGS\"` (the prompt arrives on stdin), or `uses shell`, or `uses agents.claude` after `import \"std/agents\"`",
                    )
                };
                let d = self.error(
                    "E0510",
                    loc(file, decl.name.span),
                    format!("agent `{}` {message}", decl.name.name),
                );
                d.label = label.into();
                d.help = Some(help.into());
                AgentKind::Command { run: String::new() }
            }
        };
        let default_paths = |p: &Option<Agent>,
                             f: fn(&Permissions) -> &Setting<Vec<Pattern>>,
                             fallback: Vec<Pattern>| {
            p.as_ref()
                .map(|a| f(&a.permissions).value.clone())
                .unwrap_or(fallback)
        };
        let here = loc(file, decl.name.span);
        let everything =
            vec![Pattern::new("**", PatternKind::Path, here).expect("builtin pattern")];
        let permissions = Permissions {
            read: setting(read, || {
                default_paths(&parent_agent, |p| &p.read, everything.clone())
            }),
            write: setting(write, || {
                default_paths(&parent_agent, |p| &p.write, Vec::new())
            }),
            exec: setting(exec, || {
                default_paths(&parent_agent, |p| &p.exec, Vec::new())
            }),
            mcp: setting(mcp, || default_paths(&parent_agent, |p| &p.mcp, Vec::new())),
            network: setting(network, || {
                parent_agent
                    .as_ref()
                    .map_or(Network::Off, |a| a.permissions.network.value.clone())
            }),
            env: {
                // `env` adds to what the parent passes: it names what the agent receives.
                let mut names = parent_agent
                    .as_ref()
                    .map(|a| a.permissions.env.value.clone())
                    .unwrap_or_default();
                let own = env.map(|(own, location)| {
                    for n in own {
                        if !names.contains(&n) {
                            names.push(n);
                        }
                    }
                    location
                });
                Setting { value: names, own }
            },
        };
        let name = qualified(prefix, &decl.name.name);
        let mut permissions = permissions;
        if !prefix.is_empty() {
            self.qualify_servers(&mut permissions.mcp, prefix);
        }
        let what = AgentWhat {
            name: &name,
            kind: &kind,
            tool,
        };
        let model = self.useful(&what, "model", model);
        let max_turns = self.useful(&what, "max_turns", max_turns);
        let budget = self.useful(&what, "budget", budget);
        if let Some(own) = permissions.mcp.own {
            if !permissions.mcp.value.is_empty() && !self.mcp_useful(&what, own) {
                // Reported: its entries would only add "unknown server" and "widens" noise.
                permissions.mcp.value.clear();
            }
        }
        let parent_model = parent_agent.as_ref().and_then(|a| a.model.as_ref());
        let parent_turns = parent_agent.as_ref().and_then(|a| a.max_turns.as_ref());
        let parent_budget = parent_agent.as_ref().and_then(|a| a.budget.as_ref());
        Agent {
            name,
            location: here,
            uses: parent,
            kind,
            permissions,
            timeout: timeout.or_else(|| parent_agent.as_ref().and_then(|a| a.timeout.clone())),
            local,
            tool,
            model: inherit(model, parent_model),
            max_turns: inherit(max_turns, parent_turns),
            budget: inherit(budget, parent_budget),
        }
    }

    /// The value after `kind`: a tool, `command`, or an error.
    fn kind_value(&mut self, file: FileId, value: &ast::Ident) -> Option<DeclaredKind> {
        if value.name == "command" {
            return Some(DeclaredKind::Command);
        }
        if let Some(tool) = Tool::from_name(&value.name) {
            return Some(DeclaredKind::Tool(tool));
        }
        let known = KIND_NAMES;
        let d = self.error(
            "E0512",
            loc(file, value.span),
            format!("unknown agent kind `{}`", value.name),
        );
        d.label = "not a kind".into();
        d.help = Some(match suggest(&value.name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? The kinds are {}", KIND_LIST),
            None => format!("the kinds are {}", KIND_LIST),
        });
        None
    }

    /// The agent's tool: its own `kind`, which must agree with the agent it narrows,
    /// or the parent's.
    fn tool_of(
        &mut self,
        decl: &ast::Agent,
        parent: Option<&Agent>,
        declared: Option<(DeclaredKind, Location)>,
    ) -> Option<Tool> {
        let inherited = parent.and_then(|p| p.tool);
        let Some((declared, at)) = declared else {
            return inherited;
        };
        let Some(parent) = parent else {
            return declared.tool();
        };
        if parent.kind == AgentKind::Shell {
            let d = self.error(
                "E0512",
                at,
                format!(
                    "agent `{}` narrows `shell`, which cannot take `kind`",
                    decl.name.name
                ),
            );
            d.label = "not allowed here".into();
            d.help = Some(
                "remove `kind` to keep a shell agent, or drop `uses shell` to declare a coding agent"
                    .into(),
            );
            return None;
        }
        let theirs = parent.tool.map_or("command", Tool::name);
        if declared.tool() != parent.tool {
            let d = self.error(
                "E0512",
                at,
                format!(
                    "agent `{}` changes the kind of `{}` from `{theirs}` to `{}`",
                    decl.name.name,
                    parent.name,
                    declared.name()
                ),
            );
            d.label = "a different kind".into();
            d.labels.push(crate::diagnostic::Label {
                location: parent.location,
                message: format!("`{}` is of kind `{theirs}`", parent.name),
            });
            d.help = Some(format!(
                "`uses` keeps the kind: write `kind {theirs}` or no `kind`, or declare the agent without `uses`"
            ));
        }
        inherited
    }

    /// Reports a limit's problem; the value when there is none.
    fn limit<T>(&mut self, at: Location, value: Result<T, limits::Problem>) -> Option<T> {
        match value {
            Ok(v) => Some(v),
            Err(p) => {
                let d = self.error("E0513", at, p.message);
                d.label = p.label.into();
                d.help = Some(p.help);
                None
            }
        }
    }

    /// E0514 for `model`, `max_turns` or `budget` written on an agent whose kind cannot
    /// honour it; the value when it can.
    fn useful<T>(
        &mut self,
        agent: &AgentWhat,
        field: &str,
        value: Option<(T, Location)>,
    ) -> Option<(T, Location)> {
        let (v, at) = value?;
        let (reason, help) = match (agent.kind, agent.tool) {
            (AgentKind::Shell, _) => (
                "a shell agent runs `sh` lines and asks no model".to_string(),
                format!("remove `{field}`"),
            ),
            (_, None) => (
                format!("a `command` agent is a program of its own, which the interpreter cannot pass `{field}` to"),
                format!("remove `{field}`, or give the agent `kind claude`, `codex`, `gemini` or `aider`"),
            ),
            (_, Some(tool)) => match field {
                "max_turns" if !tool.limits_turns() => (
                    if tool == Tool::Aider {
                        "aider sends one message and takes no turn limit".to_string()
                    } else {
                        format!("{tool} has no turn limit")
                    },
                    "remove `max_turns`, and bound the step with `timeout`".into(),
                ),
                "budget" if !tool.reports_cost() => (
                    format!("{tool} does not report what it costs, so a dollar budget cannot be enforced"),
                    if tool.limits_turns() {
                        "remove `budget`, and bound the agent with `max_turns` or `timeout`".into()
                    } else {
                        "remove `budget`, and bound the step with `timeout`".into()
                    },
                ),
                _ => return Some((v, at)),
            },
        };
        let d = self.error(
            "E0514",
            at,
            format!(
                "`{field}` does nothing for agent `{}`: {reason}",
                agent.name
            ),
        );
        d.label = "has no effect".into();
        d.help = Some(help);
        None
    }

    /// E0514 for a non-empty `mcp` list on an agent that cannot use MCP servers; whether
    /// the agent can use them.
    fn mcp_useful(&mut self, agent: &AgentWhat, at: Location) -> bool {
        let reason = match (agent.kind, agent.tool) {
            (AgentKind::Shell, _) => "a shell agent cannot be given MCP servers",
            (_, None) => "a `command` agent cannot be given MCP servers",
            (_, Some(tool)) if !tool.uses_mcp() => "aider has no MCP support",
            _ => return true,
        };
        let d = self.error(
            "E0514",
            at,
            format!("`mcp` does nothing for agent `{}`: {reason}", agent.name),
        );
        d.label = "has no effect".into();
        d.help = Some("remove `mcp`, or use an agent of kind claude, codex or gemini".into());
        false
    }

    /// Qualifies the agent's own `mcp` entries that name a server of its own module
    /// (`fs` in a module imported as `tools` is the server `tools.fs`).
    fn qualify_servers(&mut self, mcp: &mut Setting<Vec<Pattern>>, prefix: &str) {
        if mcp.own.is_none() {
            return;
        }
        for pattern in &mut mcp.value {
            if self.server_scope.contains(&pattern.text) {
                let name = qualified(prefix, &pattern.text);
                if let Ok(p) = Pattern::new(&name, PatternKind::Name, pattern.location) {
                    *pattern = p;
                }
            }
        }
    }

    // ---- imports ---------------------------------------------------------------

    fn import(
        &mut self,
        import: &ast::Import,
        file: FileId,
        scope: &mut HashMap<String, AgentId>,
    ) -> Option<Import> {
        let path_text = import.path.value.trim().to_string();
        let at = loc(file, import.path.span);
        let default_alias = path_text
            .trim_end_matches(".runbook")
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let alias = import
            .alias
            .as_ref()
            .map_or(default_alias, |a| a.name.clone());
        if alias.is_empty()
            || !alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || alias.starts_with(|c: char| c.is_ascii_digit())
        {
            let d = self.error("E0105", at, format!("cannot name the import `{path_text}`"));
            d.help = Some("add `as NAME` with an identifier".into());
            return None;
        }
        let (module_file, key) = if let Some(name) = path_text.strip_prefix("std/") {
            let name = name.trim_end_matches(".runbook");
            let Some(text) = crate::stdlib::module(name) else {
                let d = self.error("E0105", at, format!("unknown stdlib module `{path_text}`"));
                d.label = "not in the standard library".into();
                let known: Vec<String> = crate::stdlib::MODULES
                    .iter()
                    .map(|(n, _)| format!("std/{n}"))
                    .collect();
                d.help = Some(known_list(known.iter().map(String::as_str)));
                return None;
            };
            let id = load::add_builtin(self.map, name, text);
            (id, PathBuf::from(format!("std/{name}")))
        } else {
            let base = self
                .map
                .get(file)
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let mut candidate = base.join(&path_text);
            if !candidate.is_file() && !path_text.ends_with(".runbook") {
                candidate = base.join(format!("{path_text}.runbook"));
            }
            if !candidate.is_file() {
                let d = self.error(
                    "E0105",
                    at,
                    format!("cannot find the imported file `{path_text}`"),
                );
                d.label = "no such file".into();
                d.help = Some(format!(
                    "paths are relative to the importing file's directory ({}); stdlib modules start with `std/`",
                    shown_dir(&base)
                ));
                return None;
            }
            let display = crate::syntax::source::display_path(&candidate);
            match load::read(self.map, &candidate, display) {
                Ok((id, None)) => (id, canonical(&candidate)),
                Ok((_, Some(problem))) => {
                    self.diagnostics.push(problem);
                    return None;
                }
                Err(e) => {
                    let d = self.error(
                        "E0105",
                        at,
                        format!("cannot read the imported file `{path_text}`: {}", e.error),
                    );
                    d.label = "unreadable".into();
                    return None;
                }
            }
        };
        if let Some(first) = self.import_stack.iter().position(|f| f.key == key) {
            let cycle = &self.import_stack[first..];
            let mut chain: Vec<String> = cycle.iter().map(|f| f.name.clone()).collect();
            chain.push(self.map.get(module_file).name.clone());
            let vias: Vec<Location> = self.import_stack[1..]
                .iter()
                .filter_map(|f| f.via)
                .collect();
            let d = self.error("E0107", at, format!("import cycle: {}", chain.join(" → ")));
            d.label = "imports a file that is still being imported".into();
            for via in vias {
                d.labels.push(crate::diagnostic::Label {
                    location: via,
                    message: "imported here".into(),
                });
            }
            d.help = Some("move the shared agents into a module that imports neither".into());
            return None;
        }
        let frame = ImportFrame {
            key: key.clone(),
            name: self.map.get(module_file).name.clone(),
            via: Some(at),
        };
        if !self.sources.iter().any(|s| s.file == module_file) {
            self.sources.push(SourceRef {
                file: module_file,
                role: SourceRole::Import,
            });
        }
        let exported = match self.modules.get(&key) {
            Some(e) => e.clone(),
            None => {
                let text = self.map.get(module_file).text.clone();
                let exported = match crate::syntax::parse(&text) {
                    Err(e) => {
                        let d = syntax_diagnostic(module_file, e);
                        self.diagnostics.push(d.with_secondary(at, "imported here"));
                        Vec::new()
                    }
                    Ok(ast::File::Module(m)) => {
                        self.import_stack.push(frame);
                        let e = self.module(&m, module_file, &alias);
                        self.import_stack.pop();
                        e
                    }
                    Ok(ast::File::Runbook(r)) => {
                        // A runbook can serve as a library of its agents.
                        self.import_stack.push(frame);
                        let mut inner_scope = self.base_scope();
                        for item in &r.items {
                            if let ast::RunbookItem::Import(i) = item {
                                self.import(i, module_file, &mut inner_scope);
                            }
                        }
                        let servers: Vec<ast::McpServer> = r
                            .items
                            .iter()
                            .filter_map(|i| match i {
                                ast::RunbookItem::Mcp(m) => Some(m.clone()),
                                _ => None,
                            })
                            .collect();
                        self.mcp_servers_in(&servers, module_file, &alias);
                        let decls: Vec<ast::Agent> = r
                            .items
                            .iter()
                            .filter_map(|i| match i {
                                ast::RunbookItem::Agent(a) => Some(a.clone()),
                                _ => None,
                            })
                            .collect();
                        let e =
                            self.agents_in(&decls, module_file, &alias, &mut inner_scope, false);
                        self.import_stack.pop();
                        e
                    }
                    Ok(ast::File::Policy(_)) => {
                        let d = self.error(
                            "E0105",
                            at,
                            format!("`{path_text}` is a policy file, not a module"),
                        );
                        d.help = Some("import files that declare agents".into());
                        Vec::new()
                    }
                };
                self.modules.insert(key, exported.clone());
                exported
            }
        };
        for (name, id) in &exported {
            scope.insert(format!("{alias}.{name}"), *id);
        }
        Some(Import {
            alias,
            location: loc(file, import.span),
            agents: exported.into_iter().map(|(_, id)| id).collect(),
        })
    }

    // ---- policy ----------------------------------------------------------------

    fn policy_fields(&mut self, policy: &ast::Policy, file: FileId) -> Policy {
        let mut out = Policy {
            file,
            read: None,
            write: None,
            exec: None,
            network: None,
            mcp: None,
            env: None,
        };
        let mut seen = HashMap::new();
        for field in &policy.fields {
            self.once(&mut seen, file, field.key());
            let key = loc(file, field.key().span);
            match field {
                ast::AgentField::Read(f) => {
                    out.read = Some((
                        self.patterns(file, &f.value, PatternKind::Path, "path glob"),
                        key,
                    ))
                }
                ast::AgentField::Write(f) => {
                    out.write = Some((
                        self.patterns(file, &f.value, PatternKind::Path, "path glob"),
                        key,
                    ))
                }
                ast::AgentField::Exec(f) => {
                    out.exec = Some((
                        self.patterns(file, &f.value, PatternKind::Name, "program"),
                        key,
                    ))
                }
                ast::AgentField::Mcp(f) => {
                    out.mcp = Some((
                        self.patterns(file, &f.value, PatternKind::Name, "server name"),
                        key,
                    ))
                }
                ast::AgentField::Env(f) => {
                    out.env = Some((
                        self.strings(file, &f.value, "variable name")
                            .into_iter()
                            .map(|(n, _)| n)
                            .collect(),
                        key,
                    ))
                }
                ast::AgentField::Network(f) => {
                    let v = self.network(file, &f.value);
                    out.network = Some((v, key));
                }
                other => {
                    let d = self.error(
                        "E0509",
                        loc(file, other.key().span),
                        format!("`{}` cannot appear in a policy", other.key().name),
                    );
                    d.help = Some("a policy sets read, write, exec, network, mcp and env".into());
                }
            }
        }
        out
    }

    /// The `policy.runbook` at the root of the repository holding the runbook.
    fn find_policy(&mut self) -> Option<Policy> {
        let path = self.map.get(self.root).path.clone();
        let dir = canonical(path.parent().unwrap_or(Path::new(".")));
        let root = dir
            .ancestors()
            .find(|d| d.join(".git").exists())?
            .to_path_buf();
        let policy_path = root.join("policy.runbook");
        if !policy_path.is_file() || canonical(&policy_path) == canonical(&path) {
            return None;
        }
        let display = crate::syntax::source::display_path(&policy_path);
        let (file, problem) = match load::read(self.map, &policy_path, display) {
            Ok(r) => r,
            Err(e) => {
                let at = loc(self.root, Span::new(0, 0));
                self.error(
                    "E0404",
                    at,
                    format!("cannot read the repository policy {}: {}", e.path, e.error),
                );
                return None;
            }
        };
        self.sources.push(SourceRef {
            file,
            role: SourceRole::Policy,
        });
        if let Some(p) = problem {
            self.diagnostics.push(p);
            return None;
        }
        let text = self.map.get(file).text.clone();
        match crate::syntax::parse(&text) {
            Ok(ast::File::Policy(p)) => Some(self.policy_fields(&p, file)),
            Ok(other) => {
                // Point at what the file holds instead of a policy.
                let at = match &other {
                    ast::File::Runbook(r) => {
                        Span::new(r.span.start as usize, r.name.span.end as usize)
                    }
                    ast::File::Module(m) => m
                        .imports
                        .first()
                        .map(|i| i.span)
                        .or(m.agents.first().map(|a| a.span))
                        .unwrap_or_default(),
                    ast::File::Policy(p) => p.span,
                };
                let root = self.root;
                let d = self.error(
                    "E0511",
                    loc(file, at),
                    "policy.runbook at the repository root must hold a `policy { … }` block".into(),
                );
                d.label = "not a policy".into();
                d.labels.push(crate::diagnostic::Label {
                    location: loc(root, Span::new(0, 0)),
                    message: "checked under that policy".into(),
                });
                d.help = Some("write `policy { exec [...] write [...] network off }`".into());
                None
            }
            Err(e) => {
                self.diagnostics.push(syntax_diagnostic(file, e));
                None
            }
        }
    }

    // ---- the runbook ---------------------------------------------------------------

    fn runbook(&mut self, r: &ast::Runbook) -> Option<Runbook> {
        let file = self.root;
        let mut scope = self.base_scope();
        let mut meta_seen = HashMap::new();
        let (mut title, mut version, mut description) = (None, None, None);
        let mut params: Vec<Param> = Vec::new();
        let mut secrets: Vec<Secret> = Vec::new();
        let mut imports = Vec::new();
        let mut agent_decls = Vec::new();
        let mut server_decls = Vec::new();
        let mut budget = None;
        let mut phase_decls = Vec::new();
        let mut rollback = Vec::new();
        for item in &r.items {
            match item {
                ast::RunbookItem::Metadata(m) => {
                    self.once(&mut meta_seen, file, &m.key);
                    let v = Some(m.value.value.clone());
                    match m.key.name.as_str() {
                        "title" => title = v,
                        "version" => version = v,
                        _ => description = v,
                    }
                }
                ast::RunbookItem::Import(i) => {
                    let Some(import) = self.import(i, file, &mut scope) else {
                        continue;
                    };
                    if let Some(first) = imports.iter().find(|f: &&Import| f.alias == import.alias)
                    {
                        let first = first.location;
                        let d = self.error(
                            "E0106",
                            import.location,
                            format!("import name `{}` is used twice", import.alias),
                        );
                        d.label = "imported again under this name".into();
                        d.labels.push(crate::diagnostic::Label {
                            location: first,
                            message: "first imported here".into(),
                        });
                        d.help = Some("remove one import, or name one with `as NAME`".into());
                        continue;
                    }
                    imports.push(import);
                }
                ast::RunbookItem::Param(p) => {
                    if let Some(first) = params.iter().find(|q| q.name == p.name.name) {
                        let first = first.location;
                        self.declared_twice(
                            loc(file, p.name.span),
                            first,
                            format!("param `{}`", p.name.name),
                            "keep one declaration, or rename one of them",
                        );
                        continue;
                    }
                    let param = self.param(p, file);
                    params.push(param);
                }
                ast::RunbookItem::Secret(s) => {
                    if let Some(first) = secrets.iter().find(|q| q.name == s.name.name) {
                        let first = first.location;
                        self.declared_twice(
                            loc(file, s.name.span),
                            first,
                            format!("secret `{}`", s.name.name),
                            "remove one of them",
                        );
                        continue;
                    }
                    secrets.push(Secret {
                        name: s.name.name.clone(),
                        location: loc(file, s.name.span),
                    });
                }
                ast::RunbookItem::Agent(a) => agent_decls.push(a.clone()),
                ast::RunbookItem::Phase(p) => phase_decls.push(p),
                ast::RunbookItem::Rollback(b) => rollback.push(b),
                ast::RunbookItem::Mcp(m) => server_decls.push(m.clone()),
                ast::RunbookItem::Budget(f) => {
                    self.once(&mut meta_seen, file, &f.key);
                    let at = loc(file, f.value.span);
                    budget = self
                        .limit(at, limits::budget(&f.value.text))
                        .map(|value| Setting {
                            value,
                            own: Some(loc(file, f.key.span.join(f.value.span))),
                        });
                }
            }
        }
        self.mcp_servers_in(&server_decls, file, "");
        self.agents_in(&agent_decls, file, "", &mut scope, true);
        self.declared_agents = agent_decls.iter().map(|a| a.name.name.clone()).collect();
        let policy = self.find_policy();

        // Phases and node names first, so `after` may name anything declared anywhere.
        let mut phases: Vec<Phase> = Vec::new();
        let mut phase_ids: HashMap<String, PhaseId> = HashMap::new();
        let mut node_ids: HashMap<String, NodeId> = HashMap::new();
        let mut node_decls: Vec<(PhaseId, NodeDecl)> = Vec::new();
        for p in &phase_decls {
            if let Some(first) = phase_ids.get(&p.name.name) {
                let first = phases[first.0 as usize].location;
                self.declared_twice(
                    loc(file, p.name.span),
                    first,
                    format!("phase `{}`", p.name.name),
                    "phase names are unique in a runbook",
                );
                continue;
            }
            let id = PhaseId(phases.len() as u32);
            phase_ids.insert(p.name.name.clone(), id);
            let mut phase = Phase {
                name: p.name.name.clone(),
                location: loc(file, p.name.span),
                title: p.title.as_ref().map(|t| t.value.clone()),
                estimate: None,
                after: None,
                nodes: Vec::new(),
                rollback: None,
            };
            let mut seen = HashMap::new();
            for item in &p.items {
                let (name, decl) = match item {
                    ast::PhaseItem::Step(s) => (&s.name, NodeDecl::Step(s)),
                    ast::PhaseItem::Checkpoint(c) => (&c.name, NodeDecl::Checkpoint(c)),
                    ast::PhaseItem::Metadata(m) => {
                        self.once(&mut seen, file, &m.key);
                        if m.key.name == "title" {
                            if p.title.is_some() {
                                let d = self.error(
                                    "E0505",
                                    loc(file, m.key.span),
                                    format!("phase `{}` has a title twice", p.name.name),
                                );
                                d.help =
                                    Some("keep the title after the phase name, or this one".into());
                            }
                            phase.title = Some(m.value.value.clone());
                        }
                        continue;
                    }
                    ast::PhaseItem::Estimate(e) => {
                        self.once(&mut seen, file, &e.key);
                        phase.estimate = self.duration(file, &e.value, "estimate");
                        continue;
                    }
                    ast::PhaseItem::Rollback(b) => {
                        self.once(&mut seen, file, &b.key);
                        phase.rollback = Some(self.rollback_block(b, file));
                        continue;
                    }
                };
                if let Some(first) = node_ids.get(&name.name) {
                    let first = node_decls[first.0 as usize].1.name_location(file);
                    self.declared_twice(
                        loc(file, name.span),
                        first,
                        format!("`{}`", name.name),
                        "step and checkpoint names are unique in a runbook",
                    );
                    continue;
                }
                let nid = NodeId(node_decls.len() as u32);
                node_ids.insert(name.name.clone(), nid);
                phase.nodes.push(nid);
                node_decls.push((id, decl));
            }
            phases.push(phase);
        }
        // Phase `after`.
        for (p, decl) in phase_decls.iter().enumerate() {
            let Some(after) = &decl.after else { continue };
            let Some(&pid) = phase_ids.get(&decl.name.name) else {
                continue;
            };
            if phases[pid.0 as usize].location != loc(file, decl.name.span) {
                continue; // a duplicate, already reported
            }
            let _ = p;
            let mut resolved = Vec::new();
            for name in after {
                match phase_ids.get(&name.name) {
                    Some(&dep) => resolved.push((dep, loc(file, name.span))),
                    None => {
                        let d = self.error(
                            "E0103",
                            loc(file, name.span),
                            format!("unknown phase `{}`", name.name),
                        );
                        d.label = "no phase has this name".into();
                        d.help = Some(if node_ids.contains_key(&name.name) {
                            format!(
                                "`{}` is a step; a phase runs after phases (name the step's phase)",
                                name.name
                            )
                        } else {
                            match suggest(&name.name, phase_ids.keys().map(String::as_str)) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => known_list(phase_ids.keys().map(String::as_str)),
                            }
                        });
                    }
                }
            }
            phases[pid.0 as usize].after = Some(resolved);
        }
        // Nodes.
        let mut nodes = Vec::with_capacity(node_decls.len());
        for (phase, decl) in &node_decls {
            let node = self.node(*phase, decl, file, &scope, &node_ids, &phase_ids, &params);
            nodes.push(node);
        }
        let rollback = rollback
            .into_iter()
            .map(|b| self.rollback_block(b, file))
            .collect();
        let graph = Graph::build(&phases, &nodes);
        Some(Runbook {
            name: r.name.name.clone(),
            location: loc(file, r.name.span),
            file,
            title,
            version,
            description,
            params,
            secrets,
            agents: std::mem::take(&mut self.agents),
            imports,
            phases,
            nodes,
            rollback,
            mcp_servers: std::mem::take(&mut self.mcp_servers),
            budget,
            policy,
            sources: std::mem::take(&mut self.sources),
            graph,
        })
    }

    /// Lowers a param. A param with a bad type or default is still declared (its
    /// error is reported here), so that its uses do not add "unknown param" noise.
    fn param(&mut self, p: &ast::Param, file: FileId) -> Param {
        let declared = |ty, default| Param {
            name: p.name.name.clone(),
            location: loc(file, p.name.span),
            ty,
            default,
            help: p.help.as_ref().map(|h| h.value.clone()),
        };
        let Some(ty) = ParamType::from_name(&p.ty.name) else {
            let d = self.error(
                "E0504",
                loc(file, p.ty.span),
                format!("unknown type `{}` for param `{}`", p.ty.name, p.name.name),
            );
            d.label = "not a type".into();
            d.help = Some(
                match suggest(
                    &p.ty.name,
                    ["string", "int", "bool", "duration", "list"].into_iter(),
                ) {
                    Some(s) => format!(
                        "did you mean `{s}`? The types are string, int, bool, duration and list"
                    ),
                    None => "the types are string, int, bool, duration and list".into(),
                },
            );
            return declared(ParamType::String, None);
        };
        let default = match &p.default {
            None => None,
            Some(lit) => {
                let Some(value) = self.literal_value(file, lit, &p.name.name) else {
                    return declared(ty, None);
                };
                let fits = matches!(
                    (ty, &value),
                    (ParamType::String, Value::String(_))
                        | (ParamType::Int, Value::Int(_))
                        | (ParamType::Bool, Value::Bool(_))
                        | (ParamType::Duration, Value::Duration(_))
                        | (ParamType::List, Value::List(_))
                );
                if !fits {
                    let d = self.error(
                        "E0503",
                        loc(file, lit.span()),
                        format!(
                            "the default of param `{}` is {}, not {}",
                            p.name.name,
                            article(value.type_name()),
                            article(ty.name())
                        ),
                    );
                    d.label = article(value.type_name());
                    d.labels.push(crate::diagnostic::Label {
                        location: loc(file, p.ty.span),
                        message: format!("declared {} here", ty.name()),
                    });
                    d.help = Some(match ty {
                        ParamType::String => "quote the value: \"…\"".into(),
                        ParamType::Int => "write a whole number such as 3".into(),
                        ParamType::Bool => "write true or false, without quotes".into(),
                        ParamType::Duration => format!("write it without quotes; {DURATION_HELP}"),
                        ParamType::List => "write a list such as [\"a\", \"b\"]".into(),
                    });
                    return declared(ty, None);
                }
                Some(value)
            }
        };
        declared(ty, default)
    }

    fn rollback_block(&mut self, b: &ast::Rollback, file: FileId) -> RollbackBlock {
        let timeout = b
            .timeout
            .as_ref()
            .and_then(|t| self.duration(file, t, "timeout"));
        if b.sh.is_empty() {
            let d = self.error(
                "E0507",
                loc(file, b.key.span),
                "this rollback block runs nothing".into(),
            );
            d.label = "no `sh` inside".into();
            d.help = Some("add the commands that undo the work: sh \"…\"".into());
        }
        RollbackBlock {
            sh: b.sh.iter().map(|s| self.template(file, s)).collect(),
            timeout,
            location: loc(file, b.span),
        }
    }

    fn resolve_nodes(
        &mut self,
        names: &[ast::Ident],
        file: FileId,
        node_ids: &HashMap<String, NodeId>,
        phase_ids: &HashMap<String, PhaseId>,
    ) -> Vec<(NodeId, Location)> {
        let mut out = Vec::new();
        for name in names {
            match node_ids.get(&name.name) {
                Some(&id) => out.push((id, loc(file, name.span))),
                None => {
                    let d = self.error(
                        "E0102",
                        loc(file, name.span),
                        format!("unknown step `{}`", name.name),
                    );
                    d.label = "no step or checkpoint has this name".into();
                    d.help = Some(if phase_ids.contains_key(&name.name) {
                        format!("`{}` is a phase; name one of its steps, or order phases with `phase … after {}`", name.name, name.name)
                    } else {
                        match suggest(&name.name, node_ids.keys().map(String::as_str)) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => known_list(node_ids.keys().map(String::as_str)),
                        }
                    });
                }
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        phase: PhaseId,
        decl: &NodeDecl,
        file: FileId,
        scope: &HashMap<String, AgentId>,
        node_ids: &HashMap<String, NodeId>,
        phase_ids: &HashMap<String, PhaseId>,
        _params: &[Param],
    ) -> Node {
        match decl {
            NodeDecl::Step(s) => {
                let after = s
                    .after
                    .as_deref()
                    .map(|a| self.resolve_nodes(a, file, node_ids, phase_ids))
                    .unwrap_or_default();
                let (agent, agent_location) = match &s.by {
                    None => (Some(SHELL), loc(file, s.name.span)),
                    Some(by) => match scope.get(&by.name) {
                        Some(&id) => (Some(id), loc(file, by.span)),
                        None if self.declared_agents.contains(&by.name) => {
                            (None, loc(file, by.span))
                        }
                        None => {
                            let d = self.error(
                                "E0101",
                                loc(file, by.span),
                                format!("unknown agent `{}`", by.name),
                            );
                            d.label = "not declared or imported".into();
                            d.help =
                                Some(match suggest(&by.name, scope.keys().map(String::as_str)) {
                                    Some(s) => format!("did you mean `{s}`?"),
                                    None if by.name.contains('.') => format!(
                                        "import its module first, e.g. `import \"std/{}\"`",
                                        by.name.split('.').next().unwrap_or("agents")
                                    ),
                                    None => format!(
                                        "declare it with `agent {} {{ … }}`; {}",
                                        by.name,
                                        known_list(scope.keys().map(String::as_str))
                                    ),
                                });
                            (None, loc(file, by.span))
                        }
                    },
                };
                let mut step = Step {
                    agent,
                    agent_location,
                    prompt: None,
                    sh: Vec::new(),
                    produces: Vec::new(),
                    until: None,
                    timeout: None,
                    when: None,
                    on_failure: OnFailure::Rollback,
                    rollback: None,
                };
                let mut title = s.title.as_ref().map(|t| t.value.clone());
                let mut seen = HashMap::new();
                for field in &s.fields {
                    match field {
                        ast::StepField::Metadata(m) => {
                            self.once(&mut seen, file, &m.key);
                            if m.key.name == "title" {
                                title = Some(m.value.value.clone());
                            }
                        }
                        ast::StepField::Prompt(f) => {
                            self.once(&mut seen, file, &f.key);
                            step.prompt = match &f.value {
                                ast::PromptSource::Inline(s) => Some(self.template(file, s)),
                                ast::PromptSource::File(p) => self.prompt_file(p, file),
                            };
                        }
                        ast::StepField::Sh(f) => {
                            let lines: Vec<Template> =
                                f.value.iter().map(|s| self.template(file, s)).collect();
                            step.sh.extend(lines);
                        }
                        ast::StepField::Produces(f) => {
                            self.once(&mut seen, file, &f.key);
                            step.produces = f
                                .value
                                .iter()
                                .map(|s| Produces {
                                    path: s.value.clone(),
                                    location: loc(file, s.span),
                                })
                                .collect();
                        }
                        ast::StepField::Until(f) => {
                            self.once(&mut seen, file, &f.key);
                            let attempts = match &f.value.attempts {
                                None => Some(3),
                                Some(t) => match t.text.parse::<u32>() {
                                    Ok(0) => {
                                        let d = self.error(
                                            "E0502",
                                            loc(file, t.span),
                                            "`attempts 0` never runs the step".into(),
                                        );
                                        d.label = "zero attempts".into();
                                        d.help = Some("attempts counts every try, the first included: write 1 or more".into());
                                        None
                                    }
                                    Ok(n) if n <= 100 => Some(n),
                                    _ => {
                                        let d = self.error(
                                            "E0502",
                                            loc(file, t.span),
                                            format!(
                                                "`attempts {}` is not a number of attempts",
                                                t.text
                                            ),
                                        );
                                        d.label = "expected 1 to 100".into();
                                        d.help = Some("write a whole number from 1 to 100".into());
                                        None
                                    }
                                },
                            };
                            if let Some(attempts) = attempts {
                                step.until = Some(UntilCheck {
                                    command: self.template(file, &f.value.command),
                                    attempts,
                                });
                            }
                        }
                        ast::StepField::Timeout(f) => {
                            self.once(&mut seen, file, &f.key);
                            step.timeout = self.duration(file, &f.value, "timeout");
                        }
                        ast::StepField::When(f) => {
                            self.once(&mut seen, file, &f.key);
                            let mut t = self.template(file, &f.value);
                            t.expression = !(t.text.contains("{{") || t.text.contains("{%"));
                            step.when = Some(t);
                        }
                        ast::StepField::OnFailure(f) => {
                            self.once(&mut seen, file, &f.key);
                            step.on_failure = match f.value.name.as_str() {
                                "rollback" => OnFailure::Rollback,
                                "escalate" => OnFailure::Escalate,
                                "continue" => OnFailure::Continue,
                                other => {
                                    let d = self.error(
                                        "E0506",
                                        loc(file, f.value.span),
                                        format!("unknown failure mode `{other}`"),
                                    );
                                    d.label = "not a failure mode".into();
                                    d.help = Some(
                                        "write on_failure rollback, escalate or continue".into(),
                                    );
                                    OnFailure::Rollback
                                }
                            };
                        }
                        ast::StepField::Rollback(b) => {
                            self.once(&mut seen, file, &b.key);
                            step.rollback = Some(self.rollback_block(b, file));
                        }
                    }
                }
                Node {
                    name: s.name.name.clone(),
                    location: loc(file, s.name.span),
                    block: loc(file, s.span),
                    phase,
                    title,
                    after,
                    kind: NodeKind::Step(step),
                }
            }
            NodeDecl::Checkpoint(c) => {
                let after = c
                    .after
                    .as_deref()
                    .map(|a| self.resolve_nodes(a, file, node_ids, phase_ids))
                    .unwrap_or_default();
                let mut title = c.title.as_ref().map(|t| t.value.clone());
                let mut cp = Checkpoint {
                    show: Vec::new(),
                    ask: None,
                    revise: None,
                    approvers: Vec::new(),
                    timeout: None,
                };
                let mut seen = HashMap::new();
                for field in &c.fields {
                    match field {
                        ast::CheckpointField::Metadata(m) => {
                            self.once(&mut seen, file, &m.key);
                            if m.key.name == "title" {
                                title = Some(m.value.value.clone());
                            }
                        }
                        ast::CheckpointField::Show(f) => {
                            for item in &f.value {
                                let shown = match item {
                                    ast::ShowItem::Path(p) => {
                                        ShowItem::Path(p.value.clone(), loc(file, p.span))
                                    }
                                    ast::ShowItem::Diff(span) => ShowItem::Diff(loc(file, *span)),
                                    ast::ShowItem::Reference(r) => {
                                        self.show_reference(r, file, node_ids)
                                    }
                                };
                                cp.show.push(shown);
                            }
                        }
                        ast::CheckpointField::Ask(f) => {
                            self.once(&mut seen, file, &f.key);
                            cp.ask = Some(self.template(file, &f.value));
                        }
                        ast::CheckpointField::Revise(f) => {
                            self.once(&mut seen, file, &f.key);
                            if let Some((id, at)) = self
                                .resolve_nodes(
                                    std::slice::from_ref(&f.value),
                                    file,
                                    node_ids,
                                    phase_ids,
                                )
                                .pop()
                            {
                                cp.revise = Some((id, at));
                            }
                        }
                        ast::CheckpointField::Approvers(f) => {
                            self.once(&mut seen, file, &f.key);
                            cp.approvers = self
                                .strings(file, &f.value, "approver name")
                                .into_iter()
                                .map(|(n, _)| n)
                                .collect();
                        }
                        ast::CheckpointField::Timeout(f) => {
                            self.once(&mut seen, file, &f.key);
                            cp.timeout = self.duration(file, &f.value, "timeout");
                        }
                    }
                }
                Node {
                    name: c.name.name.clone(),
                    location: loc(file, c.name.span),
                    block: loc(file, c.span),
                    phase,
                    title,
                    after,
                    kind: NodeKind::Checkpoint(cp),
                }
            }
        }
    }

    fn show_reference(
        &mut self,
        r: &ast::Ident,
        file: FileId,
        node_ids: &HashMap<String, NodeId>,
    ) -> ShowItem {
        let at = loc(file, r.span);
        let parts: Vec<&str> = r.name.split('.').collect();
        match parts.as_slice() {
            ["steps", name, field] if ["output", "files", "status"].contains(field) => {
                let node = node_ids.get(*name).copied();
                if node.is_none() {
                    let d = self.error("E0102", at, format!("unknown step `{name}`"));
                    d.label = "no step has this name".into();
                    d.help = Some(match suggest(name, node_ids.keys().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => known_list(node_ids.keys().map(String::as_str)),
                    });
                }
                ShowItem::StepValue {
                    node,
                    field: field.to_string(),
                    location: at,
                }
            }
            _ => {
                let d = self.error(
                    "E0108",
                    at,
                    format!("`{}` is not something a checkpoint can show", r.name),
                );
                d.label = "unknown".into();
                let step = parts.iter().find(|p| node_ids.contains_key(**p));
                d.help = Some(match step {
                    Some(step) => format!("did you mean `steps.{step}.output`?"),
                    None => "show \"path\", diff, or steps.NAME.output (or .files, .status)".into(),
                });
                ShowItem::Diff(at)
            }
        }
    }

    fn prompt_file(&mut self, p: &ast::Str, file: FileId) -> Option<Template> {
        let at = loc(file, p.span);
        let base = self
            .map
            .get(file)
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = base.join(&p.value);
        let display = crate::syntax::source::display_path(&path);
        match load::read(self.map, &path, display) {
            Ok((id, problem)) => {
                if !self.sources.iter().any(|s| s.file == id) {
                    self.sources.push(SourceRef {
                        file: id,
                        role: SourceRole::Prompt,
                    });
                }
                if let Some(problem) = problem {
                    if problem.code == "E0003" {
                        self.diagnostics
                            .push(problem.with_secondary(at, "used as a prompt here"));
                        return Some(unreadable_prompt(at));
                    }
                }
                let text = self.map.get(id).text.to_string();
                let len = text.len();
                Some(Template {
                    text,
                    file: id,
                    offsets: crate::syntax::ast::OffsetMap {
                        segments: vec![(0, 0)],
                    },
                    location: Location {
                        file: id,
                        span: Span::new(0, len.min(1)),
                    },
                    expression: false,
                })
            }
            Err(e) => {
                let d = self.error(
                    "E0302",
                    at,
                    format!("cannot read prompt file `{}`: {}", p.value, e.error),
                );
                d.label = "prompt file".into();
                d.help = Some(format!(
                    "prompt paths are relative to the runbook's directory ({})",
                    shown_dir(&base)
                ));
                Some(unreadable_prompt(at))
            }
        }
    }
}

fn setting<T>(own: Option<(T, Location)>, inherit: impl FnOnce() -> T) -> Setting<T> {
    match own {
        Some((value, location)) => Setting {
            value,
            own: Some(location),
        },
        None => Setting {
            value: inherit(),
            own: None,
        },
    }
}

/// A directory as diagnostics print it (`.` for the current one).
fn shown_dir(dir: &Path) -> String {
    let shown = crate::syntax::source::display_path(dir);
    if shown.is_empty() {
        ".".into()
    } else {
        shown
    }
}

/// Stands in for a prompt file that could not be read (already an error), so that the
/// step is not also reported as having no prompt.
fn unreadable_prompt(at: Location) -> Template {
    Template {
        text: String::new(),
        file: at.file,
        offsets: crate::syntax::ast::OffsetMap::default(),
        location: at,
        expression: false,
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A file on the chain of imports being lowered, for cycle detection.
#[derive(Debug, Clone)]
struct ImportFrame {
    /// Canonical path (or `std/NAME`).
    key: PathBuf,
    /// The name diagnostics print.
    name: String,
    /// The import that brought it in.
    via: Option<Location>,
}

/// A step or checkpoint declaration awaiting lowering.
enum NodeDecl<'a> {
    Step(&'a ast::Step),
    Checkpoint(&'a ast::Checkpoint),
}

impl NodeDecl<'_> {
    fn name_location(&self, file: FileId) -> Location {
        match self {
            NodeDecl::Step(s) => loc(file, s.name.span),
            NodeDecl::Checkpoint(c) => loc(file, c.name.span),
        }
    }
}

/// `NAME`, or `PREFIX.NAME` for what an import brings in.
fn qualified(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// An optional field's setting: the agent's own value, or its parent's, inherited.
fn inherit<T: Clone>(
    own: Option<(T, Location)>,
    parent: Option<&Setting<T>>,
) -> Option<Setting<T>> {
    match own {
        Some((value, location)) => Some(Setting {
            value,
            own: Some(location),
        }),
        None => parent.map(|p| Setting {
            value: p.value.clone(),
            own: None,
        }),
    }
}

/// Whether a `run` command line splits shell-style into at least one word.
fn splits_into_words(run: &str) -> bool {
    !run.trim().is_empty() && shell_words::split(run).is_ok_and(|w| !w.is_empty())
}

/// The kinds an agent may declare, for "did you mean" help.
const KIND_NAMES: &[&str] = &["claude", "codex", "gemini", "aider", "command"];
const KIND_LIST: &str = "claude, codex, gemini, aider and command";

/// The value of a `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeclaredKind {
    /// `kind command`: a program of its own (`run` required).
    Command,
    /// A CLI coding agent the interpreter knows.
    Tool(Tool),
}

impl DeclaredKind {
    fn tool(self) -> Option<Tool> {
        match self {
            DeclaredKind::Command => None,
            DeclaredKind::Tool(t) => Some(t),
        }
    }

    fn name(self) -> &'static str {
        self.tool().map_or("command", Tool::name)
    }
}

/// What the "does nothing" rules need to know of an agent being lowered.
struct AgentWhat<'a> {
    name: &'a str,
    kind: &'a AgentKind,
    tool: Option<Tool>,
}

/// "a string", "an int".
fn article(word: &str) -> String {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {word}")
    } else {
        format!("a {word}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowers `text` as a runbook file, returning the runbook and the diagnostic codes.
    fn lower(text: &str) -> (Option<Runbook>, Vec<&'static str>) {
        let mut map = SourceMap::new();
        let path = Path::new("lowering-test/test.runbook");
        let (file, problem) = load::add_bytes(&mut map, path, "test.runbook".into(), text.into());
        assert!(problem.is_none());
        let lowered = lower_file(&mut map, file);
        let codes = lowered.diagnostics.iter().map(|d| d.code).collect();
        (lowered.runbook, codes)
    }

    fn agent<'r>(runbook: &'r Runbook, name: &str) -> &'r Agent {
        runbook
            .agents
            .iter()
            .find(|a| a.name == name)
            .expect("the agent exists")
    }

    #[test]
    fn kind_without_run_runs_the_tool() {
        let (r, codes) = lower("runbook r { agent a { kind gemini } }");
        assert_eq!(codes, Vec::<&str>::new());
        let a = agent(r.as_ref().unwrap(), "a");
        assert_eq!(a.tool, Some(Tool::Gemini));
        assert_eq!(
            a.kind,
            AgentKind::Command {
                run: "gemini".into()
            }
        );
    }

    #[test]
    fn own_run_wins_over_the_tool_name() {
        let (r, codes) = lower("runbook r { agent a { kind claude run \"npx claude\" } }");
        assert!(codes.is_empty(), "{codes:?}");
        let a = agent(r.as_ref().unwrap(), "a");
        assert_eq!(
            a.kind,
            AgentKind::Command {
                run: "npx claude".into()
            }
        );
    }

    #[test]
    fn kind_command_keeps_requiring_run() {
        let (_, codes) = lower("runbook r { agent a { kind command } }");
        assert_eq!(codes, ["E0510"]);
        let (r, codes) = lower("runbook r { agent a { kind command run \"x -\" } }");
        assert!(codes.is_empty());
        assert_eq!(agent(r.as_ref().unwrap(), "a").tool, None);
    }

    #[test]
    fn kind_and_limits_are_inherited_and_may_be_overridden() {
        let (r, codes) = lower(
            "runbook r {
               agent p { kind claude model \"opus\" max_turns 30 budget 4.00 }
               agent c uses p { model \"sonnet\" budget 1.25 }
             }",
        );
        assert!(codes.is_empty(), "{codes:?}");
        let r = r.unwrap();
        let c = agent(&r, "c");
        assert_eq!(c.tool, Some(Tool::Claude));
        assert_eq!(
            c.kind,
            AgentKind::Command {
                run: "claude".into()
            }
        );
        let model = c.model.as_ref().unwrap();
        assert_eq!(model.value, "sonnet");
        assert!(model.own.is_some());
        let turns = c.max_turns.as_ref().unwrap();
        assert_eq!(turns.value, 30);
        assert!(turns.own.is_none(), "inherited");
        assert_eq!(c.budget.as_ref().unwrap().value, 1.25);
    }

    #[test]
    fn a_child_may_repeat_its_kind_but_not_change_it() {
        let (_, codes) =
            lower("runbook r { agent p { kind codex } agent c uses p { kind codex } }");
        assert!(codes.is_empty(), "{codes:?}");
        let (r, codes) =
            lower("runbook r { agent p { kind codex } agent c uses p { kind claude } }");
        assert_eq!(codes, ["E0512"]);
        assert_eq!(agent(r.as_ref().unwrap(), "c").tool, Some(Tool::Codex));
        let (_, codes) =
            lower("runbook r { agent p { run \"x\" } agent c uses p { kind claude } }");
        assert_eq!(codes, ["E0512"]);
        let (_, codes) = lower("runbook r { agent c uses shell { kind claude } }");
        assert_eq!(codes, ["E0512"]);
    }

    #[test]
    fn fields_a_kind_cannot_honour_are_errors() {
        for (agent_body, field) in [
            ("kind codex max_turns 3", "max_turns"),
            ("kind aider max_turns 3", "max_turns"),
            ("kind codex budget 1", "budget"),
            ("kind gemini budget 1", "budget"),
            ("kind aider budget 1", "budget"),
            ("run \"x\" model \"m\"", "model"),
            ("kind aider mcp [\"fs\"]", "mcp"),
        ] {
            let text = format!("runbook r {{ agent a {{ {agent_body} }} }}");
            let mut map = SourceMap::new();
            let (file, _) = load::add_bytes(
                &mut map,
                Path::new("lowering-test/test.runbook"),
                "test.runbook".into(),
                text.into(),
            );
            let lowered = lower_file(&mut map, file);
            let d = &lowered.diagnostics;
            assert_eq!(d.len(), 1, "{agent_body}: {d:?}");
            assert_eq!(d[0].code, "E0514", "{agent_body}");
            assert!(
                d[0].message.starts_with(&format!("`{field}`")),
                "{}",
                d[0].message
            );
        }
        for fine in [
            "kind claude max_turns 3 budget 1 model \"m\" mcp [\"*\"]",
            "kind gemini max_turns 3 model \"m\"",
            "kind codex model \"m\" mcp [\"*\"]",
            "kind aider model \"m\"",
        ] {
            let (_, codes) = lower(&format!("runbook r {{ agent a {{ {fine} }} }}"));
            assert!(codes.is_empty(), "{fine}: {codes:?}");
        }
    }

    #[test]
    fn mcp_servers_and_the_run_budget() {
        let (r, codes) = lower(
            "runbook r {
               budget 9.99
               mcp fs { run \"mcp-server-filesystem .\" env [HOME] }
               mcp gh { run \"github-mcp-server stdio\" }
             }",
        );
        assert!(codes.is_empty(), "{codes:?}");
        let r = r.unwrap();
        assert_eq!(r.budget.as_ref().unwrap().value, 9.99);
        let names: Vec<&str> = r.mcp_servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["fs", "gh"]);
        assert_eq!(r.mcp_servers[0].env, ["HOME"]);
        let (_, codes) = lower("runbook r { mcp fs { run \"a\" } mcp fs { run \"b\" } }");
        assert_eq!(codes, ["E0106"]);
        let (_, codes) = lower("runbook r { mcp fs { run \"  \" } mcp gh { } }");
        assert_eq!(codes, ["E0515", "E0515"]);
    }

    #[test]
    fn the_checker_holds_limits_to_the_parent() {
        let text = "runbook r {
               agent p { kind claude max_turns 10 budget 1.00 }
               agent c uses p { max_turns 10 budget 0.50 }
               agent d uses p { max_turns 11 budget 1.01 }
               phase w { step a by c { prompt \"x\" } step b by d { prompt \"x\" } }
             }";
        let mut map = SourceMap::new();
        let (file, _) = load::add_bytes(
            &mut map,
            Path::new("lowering-test/test.runbook"),
            "test.runbook".into(),
            text.into(),
        );
        let lowered = lower_file(&mut map, file);
        let outcome = crate::check::check(&map, lowered);
        let messages: Vec<&str> = outcome
            .diagnostics
            .iter()
            .filter(|d| d.code == "E0401")
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(
            messages,
            [
                "agent `d` raises `max_turns` of `p` from 10 to 11",
                "agent `d` raises `budget` of `p` from 1.00 to 1.01",
            ]
        );
    }
}
