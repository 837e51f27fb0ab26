//! The plan for a terminal (`--format text`): compact, aligned, colored when asked.

use super::{NodePlan, ParamSource, Plan};
use std::fmt::Write as _;

/// ANSI styles, or none.
struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    fn cyan(&self, t: &str) -> String {
        self.paint("36", t)
    }
    fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    fn magenta(&self, t: &str) -> String {
        self.paint("35", t)
    }
}

/// The plan as terminal text; `color` adds ANSI escapes.
pub fn render(plan: &Plan, color: bool) -> String {
    let s = Style { color };
    let mut out = String::new();
    let r = &plan.runbook;
    let version = r
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{}{version}  {}",
        s.bold(&r.name),
        r.title.as_deref().unwrap_or("")
    );
    let _ = writeln!(out, "{}", s.dim(&r.file));
    let cp = &plan.critical_path;
    let _ = writeln!(
        out,
        "estimate {} along {}",
        s.bold(&cp.estimate.text),
        if cp.phases.is_empty() {
            "no estimated phase".to_string()
        } else {
            cp.phases.join(" → ")
        }
    );
    if !cp.unestimated.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            s.yellow(&format!("no estimate: {}", cp.unestimated.join(", ")))
        );
    }
    if let Some(budget) = plan.budget {
        let _ = writeln!(out, "budget ${} for the whole run", dollars(budget));
    }

    if !plan.params.is_empty() {
        let _ = writeln!(out, "\n{}", s.bold("params"));
        let width = plan.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in &plan.params {
            let value = match (&p.value, p.source) {
                (Some(v), ParamSource::Default) => {
                    format!("{} {}", p.display(v), s.dim("(default)"))
                }
                (Some(v), _) => p.display(v),
                (None, _) => s.red("required, not set"),
            };
            let help = p
                .help
                .as_deref()
                .map(|h| format!("  {}", s.dim(h)))
                .unwrap_or_default();
            let _ = writeln!(out, "  {:width$}  {:8}  {value}{help}", p.name, p.ty);
        }
    }
    if !plan.secrets.is_empty() {
        let _ = writeln!(out, "\n{}", s.bold("secrets"));
        for secret in &plan.secrets {
            let to = if secret.agents.is_empty() {
                "no agent".to_string()
            } else {
                secret.agents.join(", ")
            };
            let _ = writeln!(out, "  {} → {to}", secret.name);
        }
    }
    if !plan.mcp_servers.is_empty() {
        let _ = writeln!(out, "\n{}", s.bold("mcp servers"));
        for server in &plan.mcp_servers {
            let env = if server.env.is_empty() {
                String::new()
            } else {
                format!("  env {}", server.env.join(","))
            };
            let _ = writeln!(
                out,
                "  {}  {}{env}",
                s.cyan(&server.name),
                s.dim(&format!("runs {}", server.run))
            );
        }
    }
    if !plan.agents.is_empty() {
        let _ = writeln!(out, "\n{}", s.bold("agents"));
        for a in &plan.agents {
            let how = a
                .run
                .as_deref()
                .map_or("shell".to_string(), |r| format!("runs {r}"));
            let _ = writeln!(out, "  {}  {}", s.cyan(&a.name), s.dim(&how));
            if let Some(line) = super::limits_line(a) {
                let _ = writeln!(out, "    {line}");
            }
            let _ = writeln!(
                out,
                "    read {}  write {}  exec {}  network {}",
                list(&a.read),
                list(&a.write),
                list(&a.exec),
                a.network
            );
        }
    }

    for phase in &plan.phases {
        let estimate = phase
            .estimate
            .as_ref()
            .map_or("-".to_string(), |e| e.text.clone());
        let critical = if phase.critical {
            s.magenta(" ★ critical")
        } else {
            String::new()
        };
        let after = if phase.after.is_empty() {
            String::new()
        } else {
            s.dim(&format!(" after {}", phase.after.join(", ")))
        };
        let _ = writeln!(
            out,
            "\n{} {}  {}  {}{after}{critical}",
            s.bold(&format!("phase {}", phase.number)),
            s.bold(&phase.name),
            phase.title.as_deref().unwrap_or(""),
            s.yellow(&estimate)
        );
        for node in &phase.nodes {
            let after = if node.after().is_empty() {
                String::new()
            } else {
                s.dim(&format!(" after {}", node.after().join(", ")))
            };
            match node {
                NodePlan::Step(step) => {
                    let _ = writeln!(
                        out,
                        "  step {} by {}{after}",
                        s.bold(&step.name),
                        s.cyan(&step.agent)
                    );
                    if let Some(when) = &step.when {
                        let _ = writeln!(out, "    when {when}");
                    }
                    if let Some(prompt) = &step.prompt {
                        let source = prompt.file.as_deref().unwrap_or("inline");
                        let _ = writeln!(out, "    prompt {source} ({} lines)", prompt.lines);
                        if let Some(rendered) = &prompt.rendered {
                            for line in rendered.lines() {
                                let _ = writeln!(out, "      {} {line}", s.dim("│"));
                            }
                        }
                    }
                    for sh in &step.sh {
                        for (i, line) in sh.lines().enumerate() {
                            let lead = if i == 0 { "$" } else { " " };
                            let _ = writeln!(out, "    {} {line}", s.dim(lead));
                        }
                    }
                    if !step.produces.is_empty() {
                        let _ = writeln!(out, "    produces {}", step.produces.join(", "));
                    }
                    if let Some(until) = &step.until {
                        let _ = writeln!(
                            out,
                            "    until {} (attempts {})",
                            until.command, until.attempts
                        );
                    }
                    if let Some(timeout) = &step.timeout {
                        let _ = writeln!(out, "    timeout {timeout}");
                    }
                    if step.on_failure != crate::ir::OnFailure::Rollback {
                        let mode = serde_json::to_value(step.on_failure).unwrap_or_default();
                        let _ = writeln!(out, "    on failure {}", mode.as_str().unwrap_or(""));
                    }
                    if let Some(rollback) = &step.rollback {
                        let _ =
                            writeln!(out, "    {} {}", s.red("rollback"), rollback.sh.join("; "));
                    }
                }
                NodePlan::Checkpoint(cp) => {
                    let title = cp
                        .title
                        .as_deref()
                        .map(|t| format!("  {t}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  {} {}{title}{after}",
                        s.yellow("checkpoint"),
                        s.bold(&cp.name)
                    );
                    if !cp.show.is_empty() {
                        let _ = writeln!(out, "    show {}", cp.show.join(", "));
                    }
                    if let Some(ask) = cp.ask_rendered.as_ref().or(cp.ask.as_ref()) {
                        let _ = writeln!(out, "    ask {}", ask.replace('\n', " "));
                    }
                    if let Some(revise) = &cp.revise {
                        let _ = writeln!(out, "    revise {revise}");
                    }
                    if !cp.approvers.is_empty() {
                        let _ = writeln!(out, "    approvers {}", cp.approvers.join(", "));
                    }
                    if let Some(timeout) = &cp.timeout {
                        let _ = writeln!(out, "    timeout {timeout}");
                    }
                }
            }
        }
        if let Some(rollback) = &phase.rollback {
            let _ = writeln!(out, "  {} {}", s.red("rollback"), rollback.sh.join("; "));
        }
    }

    let _ = writeln!(out, "\n{}", s.bold("rollback order"));
    if plan.rollback_order.is_empty() {
        let _ = writeln!(out, "  (none)");
    }
    for (i, entry) in plan.rollback_order.iter().enumerate() {
        let scope = serde_json::to_value(entry.scope).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}. {} {}: {}",
            i + 1,
            scope.as_str().unwrap_or(""),
            entry.name,
            entry.sh.join("; ")
        );
    }
    out
}

fn dollars(value: f64) -> String {
    crate::ir::limits::dollars(value)
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "[]".into()
    } else {
        items.join(",")
    }
}
