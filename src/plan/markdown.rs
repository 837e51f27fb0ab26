//! The plan as Markdown (`--format markdown`): the shape of a migration plan a team
//! pastes into a pull request, one `### Phase N: … (Estimated: …)` section per phase
//! with a bullet per step and checkpoint, then the critical path and a Rollback Plan.

use super::{AgentPlan, CheckpointPlan, NodePlan, ParamSource, PhasePlan, Plan, StepPlan};
use crate::ir::OnFailure;
use std::fmt::Write as _;

/// The plan as Markdown.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    header(&mut out, plan);
    params(&mut out, plan);
    out.push_str("## Phases\n");
    for phase in &plan.phases {
        phase_section(&mut out, plan, phase);
    }
    critical_path(&mut out, plan);
    rollback_plan(&mut out, plan);
    out
}

fn header(out: &mut String, plan: &Plan) {
    let r = &plan.runbook;
    let _ = writeln!(out, "# {}\n", r.title.as_deref().unwrap_or(&r.name));
    let version = r
        .version
        .as_deref()
        .map(|v| format!(" version {v}"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "Runbook {}{version}, from {}.\n",
        code(&r.name),
        code(&r.file)
    );
    if let Some(description) = &r.description {
        let _ = writeln!(out, "{description}\n");
    }
    if let Some(budget) = plan.budget {
        let _ = writeln!(
            out,
            "Budget: at most ${} for the whole run, summed over the costs the agents report.\n",
            crate::ir::limits::dollars(budget)
        );
    }
    if !plan.mcp_servers.is_empty() {
        out.push_str("MCP servers:\n\n");
        for server in &plan.mcp_servers {
            let env = if server.env.is_empty() {
                String::new()
            } else {
                format!(", receives {}", codes(&server.env))
            };
            let _ = writeln!(
                out,
                "- {}: runs {}{env}",
                code(&server.name),
                code(&server.run)
            );
        }
        out.push('\n');
    }
    let cp = &plan.critical_path;
    let _ = write!(out, "**Estimated total: {}**", cp.estimate.words());
    if !cp.phases.is_empty() {
        let labels: Vec<&str> = cp
            .phases
            .iter()
            .filter_map(|name| plan.phases.iter().find(|p| &p.name == name))
            .map(PhasePlan::label)
            .collect();
        let _ = write!(out, " along the critical path: {}", labels.join(" → "));
    }
    out.push_str(".\n\n");
}

fn params(out: &mut String, plan: &Plan) {
    if !plan.params.is_empty() {
        out.push_str("## Parameters\n\n| Parameter | Type | Value | Description |\n| --- | --- | --- | --- |\n");
        for p in &plan.params {
            let value = match (&p.value, p.source) {
                (Some(v), ParamSource::Default) => format!("{} (default)", code(&p.display(v))),
                (Some(v), _) => code(&p.display(v)),
                (None, _) => "**required, not set**".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                code(&p.name),
                p.ty,
                cell(&value),
                cell(p.help.as_deref().unwrap_or(""))
            );
        }
        out.push('\n');
    }
    if !plan.secrets.is_empty() {
        out.push_str(
            "## Secrets\n\nPassed through the environment, never recorded or printed.\n\n",
        );
        for s in &plan.secrets {
            let to = if s.agents.is_empty() {
                "passed to no agent".to_string()
            } else {
                format!("passed to {}", codes(&s.agents))
            };
            let _ = writeln!(out, "- {}: {to}", code(&s.name));
        }
        out.push('\n');
    }
}

fn phase_section(out: &mut String, plan: &Plan, phase: &PhasePlan) {
    let estimate = phase
        .estimate
        .as_ref()
        .map_or("no estimate".to_string(), |e| {
            format!("Estimated: {}", e.words())
        });
    let _ = writeln!(
        out,
        "\n### Phase {}: {} ({estimate})\n",
        phase.number,
        phase.label()
    );
    let mut notes = vec![format!("Phase {}", code(&phase.name))];
    if !phase.after.is_empty() {
        notes.push(format!("after {}", codes(&phase.after)));
    }
    if phase.critical {
        notes.push("on the critical path".into());
    }
    let _ = writeln!(out, "{}.\n", notes.join(", "));
    if phase.nodes.is_empty() {
        out.push_str("- (no steps)\n");
    }
    for node in &phase.nodes {
        match node {
            NodePlan::Step(step) => step_bullet(out, plan, step),
            NodePlan::Checkpoint(cp) => checkpoint_bullet(out, cp),
        }
    }
    if let Some(rollback) = &phase.rollback {
        let _ = writeln!(
            out,
            "- **Rollback of the phase**: {}",
            commands(&rollback.sh)
        );
    }
}

fn step_bullet(out: &mut String, plan: &Plan, step: &StepPlan) {
    let title = step
        .title
        .as_deref()
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    let _ = writeln!(out, "- **Step {}{title}**", code(&step.name));
    let agent = plan.agents.iter().find(|a| a.name == step.agent);
    let by = match agent.and_then(|a| a.run.as_ref().map(|run| (a, run))) {
        Some((a, run)) => match tool_notes(a) {
            Some(notes) => format!(
                "By {} ({notes}), which runs {}",
                code(&step.agent),
                code(run)
            ),
            None => format!("By {}, which runs {}", code(&step.agent), code(run)),
        },
        None => format!("By {} (shell commands)", code(&step.agent)),
    };
    let _ = writeln!(out, "  - {by}");
    if let Some(agent) = agent {
        let _ = writeln!(out, "  - May {}", permissions(agent));
    }
    if !step.after.is_empty() {
        let _ = writeln!(out, "  - After {}", codes(&step.after));
    }
    if let Some(when) = &step.when {
        let _ = writeln!(out, "  - Only when {}", code(when));
    }
    if let Some(prompt) = &step.prompt {
        let source = match &prompt.file {
            Some(file) => format!("from {}", code(file)),
            None => "inline".into(),
        };
        let plural = if prompt.lines == 1 { "" } else { "s" };
        let _ = writeln!(out, "  - Prompt: {source}, {} line{plural}", prompt.lines);
        if let Some(rendered) = &prompt.rendered {
            out.push_str("\n    <details><summary>Rendered prompt</summary>\n\n");
            fenced(out, "    ", "text", rendered);
            out.push_str("\n    </details>\n\n");
        }
    }
    match step.sh.as_slice() {
        [] => {}
        [one] if !one.contains('\n') => {
            let _ = writeln!(out, "  - Runs {}", code(one));
        }
        many => {
            out.push_str("  - Runs:\n");
            for sh in many {
                if sh.contains('\n') {
                    out.push('\n');
                    fenced(out, "    ", "sh", sh);
                    out.push('\n');
                } else {
                    let _ = writeln!(out, "    - {}", code(sh));
                }
            }
        }
    }
    if !step.produces.is_empty() {
        let _ = writeln!(out, "  - Produces {}", codes(&step.produces));
    }
    if let Some(until) = &step.until {
        let _ = writeln!(
            out,
            "  - Retries until {} passes, {} attempts at most",
            code(&until.command),
            until.attempts
        );
    }
    if let Some(timeout) = &step.timeout {
        let _ = writeln!(out, "  - Timeout {timeout}");
    }
    match step.on_failure {
        OnFailure::Rollback => {}
        OnFailure::Escalate => out.push_str("  - On failure: a human decides (escalate)\n"),
        OnFailure::Continue => out.push_str("  - On failure: recorded, the run goes on\n"),
    }
    if let Some(rollback) = &step.rollback {
        let _ = writeln!(out, "  - Rollback: {}", commands(&rollback.sh));
    }
}

fn checkpoint_bullet(out: &mut String, cp: &CheckpointPlan) {
    let title = cp
        .title
        .as_deref()
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    let _ = writeln!(out, "- **Checkpoint {}{title}**", code(&cp.name));
    if !cp.after.is_empty() {
        let _ = writeln!(out, "  - After {}", codes(&cp.after));
    }
    if !cp.show.is_empty() {
        let _ = writeln!(out, "  - Shows {}", codes(&cp.show));
    }
    if let Some(ask) = cp.ask_rendered.as_ref().or(cp.ask.as_ref()) {
        let _ = writeln!(out, "  - Asks: {}", code(ask));
    }
    if let Some(revise) = &cp.revise {
        let _ = writeln!(out, "  - Request changes re-runs {}", code(revise));
    }
    let approvers = if cp.approvers.is_empty() {
        "anyone".to_string()
    } else {
        codes(&cp.approvers)
    };
    let _ = writeln!(out, "  - Approvers: {approvers}");
    if let Some(timeout) = &cp.timeout {
        let _ = writeln!(out, "  - No decision within {timeout} rejects");
    }
}

fn critical_path(out: &mut String, plan: &Plan) {
    let cp = &plan.critical_path;
    out.push_str("\n## Critical Path\n\n");
    if cp.phases.is_empty() {
        out.push_str("No phase has an estimate.\n");
    } else {
        for name in &cp.phases {
            if let Some(phase) = plan.phases.iter().find(|p| &p.name == name) {
                let estimate = phase
                    .estimate
                    .as_ref()
                    .map(|e| e.words())
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "1. Phase {}: {} ({estimate})",
                    phase.number,
                    phase.label()
                );
            }
        }
        let _ = writeln!(out, "\nTotal: **{}**.", cp.estimate.words());
    }
    if !cp.unestimated.is_empty() {
        let _ = writeln!(
            out,
            "\nWithout an estimate (counted as zero, so the total is a lower bound): {}.",
            codes(&cp.unestimated)
        );
    }
}

fn rollback_plan(out: &mut String, plan: &Plan) {
    out.push_str("\n## Rollback Plan\n\n");
    if plan.rollback_order.is_empty() {
        out.push_str("No rollback blocks. File changes stay on the run's branch until accepted.\n");
        return;
    }
    out.push_str(
        "On failure the run stops starting work, waits for running steps, then runs the \
         rollback blocks of completed steps and phases in reverse order of completion, then \
         the runbook's own. After a failure at the very end that is:\n\n",
    );
    for entry in &plan.rollback_order {
        let scope = match entry.scope {
            super::RollbackScope::Step => format!("Step {}", code(&entry.name)),
            super::RollbackScope::Phase => format!("Phase {}", code(&entry.name)),
            super::RollbackScope::Runbook => "Runbook".to_string(),
        };
        let _ = writeln!(out, "1. {scope}: {}", commands(&entry.sh));
    }
    out.push_str(
        "\nFile changes need no rollback block: they stay on the run's branch until accepted.\n",
    );
}

/// A coding agent's kind, model, limits and MCP servers, for its steps' bullets.
fn tool_notes(agent: &AgentPlan) -> Option<String> {
    if agent.kind == "shell" || agent.kind == "command" {
        return None;
    }
    let mut notes = vec![agent.kind.clone()];
    if let Some(model) = &agent.model {
        notes.push(format!("model {}", code(model)));
    }
    if let Some(turns) = agent.max_turns {
        notes.push(format!("at most {turns} turns"));
    }
    if let Some(budget) = agent.budget {
        notes.push(format!(
            "budget ${} per attempt",
            crate::ir::limits::dollars(budget)
        ));
    }
    match agent.mcp.as_slice() {
        [] => {}
        [any] if any == "*" => notes.push("any MCP server".into()),
        servers => notes.push(format!("MCP servers {}", codes(servers))),
    }
    Some(notes.join(", "))
}

fn permissions(agent: &AgentPlan) -> String {
    let list = |items: &[String], all: &str| -> String {
        match items {
            [] => "nothing".into(),
            [one] if one == all => "anything".into(),
            many => codes(many),
        }
    };
    format!(
        "read {}; write {}; run {}; network {}",
        list(&agent.read, "**"),
        list(&agent.write, "**"),
        list(&agent.exec, "*"),
        agent.network
    )
}

fn commands(sh: &[String]) -> String {
    let shown: Vec<String> = sh.iter().map(|s| code(s)).collect();
    shown.join(", then ")
}

fn codes(items: &[String]) -> String {
    items.iter().map(|s| code(s)).collect::<Vec<_>>().join(", ")
}

/// An inline code span that survives backticks in `text` (CommonMark: a longer fence).
pub fn code(text: &str) -> String {
    let text = text.replace('\n', " ");
    let longest = longest_run(&text, '`');
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// A table cell: pipes escaped.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A fenced code block, indented by `indent`, with a fence longer than any in `text`.
fn fenced(out: &mut String, indent: &str, info: &str, text: &str) {
    let fence = "`".repeat(longest_run(text, '`').max(2) + 1);
    let _ = writeln!(out, "{indent}{fence}{info}");
    for line in text.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{indent}{line}");
        }
    }
    let _ = writeln!(out, "{indent}{fence}");
}

fn longest_run(text: &str, c: char) -> usize {
    let mut longest = 0;
    let mut current = 0;
    for ch in text.chars() {
        if ch == c {
            current += 1;
            longest = longest.max(current);
        } else {
            current = 0;
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::code;

    #[test]
    fn code_spans_survive_backticks() {
        assert_eq!(code("a"), "`a`");
        assert_eq!(code("a `b` c"), "``a `b` c``");
        assert_eq!(code("`x`"), "`` `x` ``");
    }
}
