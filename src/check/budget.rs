//! The run's `budget`: warns where it cannot be held, because a step's agent does not
//! report what it costs.

use crate::diagnostic::Diagnostic;
use crate::ir::{AgentId, AgentKind, Runbook};

/// W0005: a runbook with a `budget` has a step whose agent reports no cost.
pub fn check(runbook: &Runbook) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let Some(budget) = &runbook.budget else {
        return out;
    };
    let Some(budget_at) = budget.own else {
        return out;
    };
    let mut reported: Vec<AgentId> = Vec::new();
    for node in &runbook.nodes {
        let Some(step) = node.step() else { continue };
        let Some(id) = step.agent else { continue };
        let agent = runbook.agent(id);
        // Shell steps call no model: they cost nothing the budget counts.
        if agent.kind == AgentKind::Shell || reported.contains(&id) {
            continue;
        }
        let (reason, bound) = match agent.tool {
            Some(tool) if tool.reports_cost() => continue,
            Some(tool) if tool.limits_turns() => (
                format!("{tool} does not report what it costs"),
                "`max_turns` or `timeout`",
            ),
            Some(tool) => (format!("{tool} does not report what it costs"), "`timeout`"),
            None => ("a `command` agent reports no cost".to_string(), "`timeout`"),
        };
        reported.push(id);
        out.push(
            Diagnostic::warning(
                "W0005",
                step.agent_location,
                format!(
                    "the run's budget cannot count step `{}`: its agent `{}` reports no cost",
                    node.name, agent.name
                ),
            )
            .with_label(reason)
            .with_secondary(budget_at, "the run's budget")
            .with_help(format!(
                "bound this agent with {bound} instead; the budget counts only agents of kind claude"
            )),
        );
    }
    out
}
