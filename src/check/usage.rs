//! Warnings for declarations nothing uses: agents, params, secrets and imports.

use super::templates::References;
use crate::diagnostic::Diagnostic;
use crate::ir::{AgentId, Runbook};

/// W0001–W0004.
pub fn check(runbook: &Runbook, references: &References) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    // An agent is used when a step runs it, or when a used agent narrows it.
    let mut used = vec![false; runbook.agents.len()];
    for node in &runbook.nodes {
        if let Some(step) = node.step() {
            let mut at = step.agent;
            while let Some(AgentId(i)) = at {
                if used[i as usize] {
                    break;
                }
                used[i as usize] = true;
                at = runbook.agents[i as usize].uses;
            }
        }
    }
    // A step whose `by` did not resolve (already an error) may have meant any agent or
    // import: calling them unused would only add noise to that error.
    let unresolved = runbook
        .nodes
        .iter()
        .any(|n| n.step().is_some_and(|s| s.agent.is_none()));
    for (i, agent) in runbook.agents.iter().enumerate() {
        if agent.local && !used[i] && !unresolved {
            out.push(
                Diagnostic::warning(
                    "W0001",
                    agent.location,
                    format!("agent `{}` is never used", agent.name),
                )
                .with_label("no step runs it")
                .with_help(format!(
                    "give a step `by {}`, or remove the agent",
                    agent.name
                )),
            );
        }
    }
    for param in runbook.params.iter().filter(|_| !references.incomplete) {
        if !references.params.contains(&param.name) {
            out.push(
                Diagnostic::warning(
                    "W0002",
                    param.location,
                    format!("param `{}` is never used", param.name),
                )
                .with_label("no template reads it")
                .with_help(format!(
                    "read it as {{{{ params.{} }}}}, or remove it",
                    param.name
                )),
            );
        }
    }
    for secret in &runbook.secrets {
        let passed = runbook
            .agents
            .iter()
            .enumerate()
            .any(|(i, a)| used[i] && a.permissions.env.value.contains(&secret.name));
        if !passed {
            out.push(
                Diagnostic::warning(
                    "W0003",
                    secret.location,
                    format!("secret `{}` is passed to no agent that runs", secret.name),
                )
                .with_label("never passed")
                .with_help(format!(
                    "list it in the `env` of the agent that needs it: env [{}]",
                    secret.name
                )),
            );
        }
    }
    for import in runbook.imports.iter().filter(|_| !unresolved) {
        if !import.agents.iter().any(|a| used[a.0 as usize]) {
            out.push(
                Diagnostic::warning(
                    "W0004",
                    import.location,
                    format!("nothing from import `{}` is used", import.alias),
                )
                .with_label("unused import")
                .with_help("remove the import, or use one of its agents"),
            );
        }
    }
    out
}
