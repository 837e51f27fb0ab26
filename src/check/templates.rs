//! Template rules: every prompt, `sh` line, `until`, `when`, `ask` and rollback command
//! must compile, and may only read names that exist when it renders: declared params,
//! and `steps.X` of steps guaranteed to finish first.

use super::filters;
use crate::diagnostic::{closest, Diagnostic};
use crate::ir::{NodeId, NodeKind, Runbook, Template};
use crate::syntax::source::SourceMap;
use std::collections::HashSet;

/// What the templates refer to, for the unused-declaration warnings.
#[derive(Debug, Default)]
pub struct References {
    /// Params some template reads.
    pub params: HashSet<String>,
    /// Whether some template could not be read fully (a syntax error, an unknown name):
    /// its intended reads are unknown, so "never used" would be a guess.
    pub incomplete: bool,
}

/// The roots of the template context.
pub const ROOTS: &[&str] = &["params", "steps", "run", "attempt", "feedback", "runbook"];

/// Where a template renders, which decides what it may read.
#[derive(Clone, Copy)]
enum Scope {
    /// Inside a step or checkpoint: `steps.X` must be an ancestor.
    Node(NodeId),
    /// In a rollback block: anything declared (it renders after the run).
    Rollback,
}

/// Compiles and resolves every template of `runbook`.
pub fn check(
    runbook: &Runbook,
    map: &SourceMap,
    acyclic: bool,
    out: &mut Vec<Diagnostic>,
) -> References {
    let env = crate::ir::jinja::environment();
    let mut checker = Checker {
        runbook,
        map,
        env,
        filter_names: Default::default(),
        acyclic,
        references: References::default(),
        out,
        ancestors: None,
    };
    for (i, node) in runbook.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        checker.ancestors = None;
        let scope = Scope::Node(id);
        match &node.kind {
            NodeKind::Step(step) => {
                for t in step.prompt.iter().chain(&step.sh).chain(step.when.iter()) {
                    checker.template(t, scope);
                }
                if let Some(until) = &step.until {
                    checker.template(&until.command, scope);
                }
                if let Some(rb) = &step.rollback {
                    for t in &rb.sh {
                        checker.template(t, Scope::Rollback);
                    }
                }
            }
            NodeKind::Checkpoint(cp) => {
                if let Some(ask) = &cp.ask {
                    checker.template(ask, scope);
                }
            }
        }
    }
    for rb in runbook
        .phases
        .iter()
        .filter_map(|p| p.rollback.as_ref())
        .chain(&runbook.rollback)
    {
        for t in &rb.sh {
            checker.template(t, Scope::Rollback);
        }
    }
    checker.references
}

/// The offset of a `}}` outside string literals in an expression. minijinja's lexer
/// reads it as the end of a `{{ … }}` the expression never opened and panics ("empty
/// lexer stack", minijinja 2.24) when anything follows it, so the checker reports it
/// instead of compiling the expression (found by fuzz/fuzz_targets/check.rs).
fn stray_close(expression: &str) -> Option<usize> {
    let at = filters::code_end(expression, 0, "}}");
    (at < expression.len()).then_some(at)
}

struct Checker<'a> {
    runbook: &'a Runbook,
    map: &'a SourceMap,
    env: minijinja::Environment<'static>,
    /// Filter and test names already looked up, and whether they exist.
    filter_names: std::collections::HashMap<(filters::Use, String), bool>,
    acyclic: bool,
    references: References,
    out: &'a mut Vec<Diagnostic>,
    ancestors: Option<Vec<bool>>,
}

impl Checker<'_> {
    fn template(&mut self, t: &Template, scope: Scope) {
        if t.is_static() {
            return;
        }
        let variables = if t.expression {
            if let Some(at) = stray_close(&t.text) {
                return self.stray_close(t, at);
            }
            match self.env.compile_expression(&t.text) {
                Ok(e) => e.undeclared_variables(true),
                Err(e) => return self.syntax_error(t, &e),
            }
        } else {
            match self.env.template_from_str(&t.text) {
                Ok(tmpl) => tmpl.undeclared_variables(true),
                Err(e) => return self.syntax_error(t, &e),
            }
        };
        let mut variables: Vec<String> = variables.into_iter().collect();
        variables.sort();
        for v in variables {
            self.variable(t, &v, scope);
        }
        self.filters(t);
    }

    /// E0303 for each filter or test the template names that does not exist.
    fn filters(&mut self, t: &Template) {
        let names = filters::names(&t.text, t.expression);
        for n in filters::unknown(&self.env, &names, &mut self.filter_names) {
            let (what, candidates) = match n.used {
                filters::Use::Filter => ("filter", filters::FILTER_NAMES),
                filters::Use::Test => ("test", filters::TEST_NAMES),
            };
            let help =
                match closest(n.name, candidates) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => {
                        format!(
                    "the {what}s are minijinja's ({}, …){}: see Templates in docs/language.md",
                    candidates[..4].join(", "),
                    if what == "filter" { " and shell_quote" } else { "" }
                )
                    }
                };
            self.out.push(
                Diagnostic::error(
                    "E0303",
                    t.location_of(n.at..n.at + n.name.len()),
                    format!("unknown {what} `{}`", n.name),
                )
                .with_label(format!("no such {what}"))
                .with_help(help),
            );
        }
    }

    /// E0301 for a `}}` in an expression (see [`stray_close`]).
    fn stray_close(&mut self, t: &Template, at: usize) {
        self.references.incomplete = true;
        self.out.push(
            Diagnostic::error(
                "E0301",
                t.location_of(at..at + 2),
                "expression syntax error: `}}` closes nothing in an expression",
            )
            .with_label("here")
            .with_help("an expression is written without `{{ }}`; a nested map closes with `} }`"),
        );
    }

    fn syntax_error(&mut self, t: &Template, e: &minijinja::Error) {
        self.references.incomplete = true;
        let location = match (e.range(), e.line()) {
            (Some(range), _) => t.location_of(range),
            (None, Some(line)) => {
                let start: usize = t
                    .text
                    .split('\n')
                    .take(line.saturating_sub(1))
                    .map(|l| l.len() + 1)
                    .sum();
                let end = t.text[start.min(t.text.len())..]
                    .find('\n')
                    .map_or(t.text.len(), |e| start + e);
                t.location_of(start.min(t.text.len())..end)
            }
            _ => t.location,
        };
        let detail = e
            .detail()
            .map(str::to_string)
            .unwrap_or_else(|| e.kind().to_string());
        let what = if t.expression {
            "expression"
        } else {
            "template"
        };
        self.out.push(
            Diagnostic::error("E0301", location, format!("{what} syntax error: {detail}"))
                .with_label("here")
                .with_help("templates use minijinja syntax: {{ params.NAME }}, {% if … %}…{% endif %}; write {{ '{{' }} for a literal brace pair"),
        );
    }

    /// Where `path` (a dotted reference) is written in the template.
    fn place(&self, t: &Template, path: &str) -> crate::syntax::source::Location {
        let mut prefix = path;
        loop {
            if let Some(at) = find_reference(&t.text, prefix) {
                return t.location_of(at..at + prefix.len());
            }
            match prefix.rfind('.') {
                Some(dot) => prefix = &prefix[..dot],
                None => return t.location,
            }
        }
    }

    fn variable(&mut self, t: &Template, path: &str, scope: Scope) {
        let parts: Vec<&str> = path.split('.').collect();
        let root = parts[0];
        let at = self.place(t, path);
        match root {
            "params" => {
                let Some(name) = parts.get(1) else { return };
                self.references.params.insert(name.to_string());
                if !self.runbook.params.iter().any(|p| p.name == *name) {
                    self.references.incomplete = true;
                    let known: Vec<&str> = self
                        .runbook
                        .params
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect();
                    self.out.push(
                        Diagnostic::error("E0104", at, format!("unknown param `{name}`"))
                            .with_label("not declared")
                            .with_help(match closest(name, &known) {
                                Some(s) => format!("did you mean `params.{s}`?"),
                                None => format!("declare it: param {name}: string"),
                            }),
                    );
                }
            }
            "steps" => self.step_reference(t, &parts, at, scope),
            "run" => self.attribute(at, path, &parts, &["id", "dir"]),
            "runbook" => self.attribute(at, path, &parts, &["name", "version", "title"]),
            "attempt" | "feedback" => {}
            _ => {
                self.references.incomplete = true;
                let d =
                    Diagnostic::error("E0108", at, format!("unknown template variable `{root}`"))
                        .with_label("not in the template context")
                        .with_help(self.unknown_root_help(root, &parts));
                self.out.push(d);
            }
        }
    }

    /// What the writer of `{{ root… }}` most likely meant.
    fn unknown_root_help(&self, root: &str, parts: &[&str]) -> String {
        let secret = |name: &str| self.runbook.secrets.iter().any(|s| s.name == name);
        if matches!(root, "secrets" | "secret" | "env") || secret(root) {
            let name = if secret(root) {
                root
            } else {
                parts.get(1).copied().unwrap_or("NAME")
            };
            return format!("secrets never enter templates (they would be recorded): list `{name}` in the agent's `env` and read it as ${name} at run time");
        }
        if self.runbook.params.iter().any(|p| p.name == root) {
            return format!("did you mean `params.{root}`?");
        }
        if self.runbook.node_named(root).is_some() {
            return format!("did you mean `steps.{root}.output`?");
        }
        match closest(root, ROOTS) {
            Some(s) => format!("did you mean `{s}`? The context holds params, steps, run, attempt, feedback and runbook"),
            None => "the context holds params.NAME, steps.NAME.output/files/status, run.id, run.dir, attempt, feedback, runbook.name and runbook.version".into(),
        }
    }

    fn attribute(
        &mut self,
        at: crate::syntax::source::Location,
        path: &str,
        parts: &[&str],
        known: &[&str],
    ) {
        if let Some(attr) = parts.get(1) {
            if !known.contains(attr) {
                self.out.push(
                    Diagnostic::error("E0108", at, format!("unknown template variable `{path}`"))
                        .with_label("no such attribute")
                        .with_help(format!("`{}` has {}", parts[0], known.join(", "))),
                );
            }
        }
    }

    fn step_reference(
        &mut self,
        _t: &Template,
        parts: &[&str],
        at: crate::syntax::source::Location,
        scope: Scope,
    ) {
        let Some(name) = parts.get(1) else { return };
        let Some(target) = self.runbook.node_named(name) else {
            let known: Vec<&str> = self.runbook.nodes.iter().map(|n| n.name.as_str()).collect();
            self.out.push(
                Diagnostic::error("E0102", at, format!("unknown step `{name}`"))
                    .with_label("no step has this name")
                    .with_help(match closest(name, &known) {
                        Some(s) => format!("did you mean `steps.{s}`?"),
                        None => "steps.NAME reads a step declared in this runbook".into(),
                    }),
            );
            return;
        };
        if let Some(attr) = parts.get(2) {
            if !["output", "files", "status"].contains(attr) {
                self.out.push(
                    Diagnostic::error(
                        "E0108",
                        at,
                        format!("unknown template variable `steps.{name}.{attr}`"),
                    )
                    .with_label("no such attribute")
                    .with_help("a step has output, files and status"),
                );
            }
        }
        let Scope::Node(reader) = scope else { return };
        if !self.acyclic {
            return;
        }
        let reader_node = self.runbook.node(reader);
        if target == reader {
            self.out.push(
                Diagnostic::error("E0202", at, format!("`{name}` reads its own result"))
                    .with_label("not known while it runs")
                    .with_help("use `feedback` for the previous attempt's check output"),
            );
            return;
        }
        let ancestors = self
            .ancestors
            .get_or_insert_with(|| self.runbook.graph.ancestors(reader));
        let ix = self.runbook.graph.index(target).index();
        if !ancestors[ix] {
            let t = self.runbook.node(target);
            self.out.push(
                Diagnostic::error(
                    "E0202",
                    at,
                    format!("`{}` reads `steps.{name}`, but `{name}` is not guaranteed to finish before it (a race)", reader_node.name),
                )
                .with_label("may not have run yet")
                .with_secondary(t.location, format!("`{name}` is declared here"))
                .with_help(if t.phase == reader_node.phase {
                    format!("add `after {name}` to `{}`, or move `{}` to a later phase", reader_node.name, reader_node.name)
                } else {
                    format!(
                        "add `after {name}` to `{}`, or make phase `{}` run after phase `{}`",
                        reader_node.name,
                        self.runbook.phase(reader_node.phase).name,
                        self.runbook.phase(t.phase).name
                    )
                }),
            );
        }
        let _ = self.map;
    }
}

/// The offset of `path` written as a reference (not as part of a longer name).
fn find_reference(text: &str, path: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(pos) = text[from..].find(path) {
        let at = from + pos;
        let before = text[..at].chars().next_back();
        let after = text[at + path.len()..].chars().next();
        let boundary = |c: Option<char>| !c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        if boundary(before) && before != Some('.') && boundary(after) {
            return Some(at);
        }
        from = at + path.len();
    }
    None
}
