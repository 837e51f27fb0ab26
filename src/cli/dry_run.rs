//! `runbook run --dry-run`: what would run, in order, with rendered prompts.

use super::EXIT_OK;
use crate::check::CheckedRunbook;
use crate::ir::{AgentKind, GraphNode, NodeKind};
use crate::run::context::{Context, Renderer, StepView};
use std::collections::BTreeMap;

/// Prints the run order and rendered prompts.
pub fn print(checked: &CheckedRunbook, params: &serde_json::Value) -> i32 {
    let runbook = checked.runbook();
    let order = match petgraph::algo::toposort(&runbook.graph.dag, None) {
        Ok(o) => o,
        Err(_) => return super::EXIT_USAGE,
    };
    let context = Context {
        params: params.clone(),
        run_id: "DRY-RUN".into(),
        run_dir: ".runbook/runs/DRY-RUN".into(),
        name: runbook.name.clone(),
        version: runbook.version.clone().unwrap_or_default(),
        title: runbook.title.clone().unwrap_or_default(),
    };
    // Outputs are unknown before a run: templates see a placeholder.
    let steps: BTreeMap<String, StepView> = runbook
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
    let renderer = Renderer::default();
    let mut n = 0;
    for v in order {
        let GraphNode::Node(id) = runbook.graph.dag[v] else {
            continue;
        };
        let node = runbook.node(id);
        n += 1;
        let phase = &runbook.phase(node.phase).name;
        let deps: Vec<String> = runbook
            .graph
            .named_dependencies(id)
            .iter()
            .map(|d| runbook.node(*d).name.clone())
            .collect();
        let after = if deps.is_empty() {
            String::new()
        } else {
            format!(" after {}", deps.join(", "))
        };
        match &node.kind {
            NodeKind::Step(step) => {
                let agent = step.agent.map(|a| runbook.agent(a)).expect("checked");
                println!("{n}. step {} [{phase}] by {}{after}", node.name, agent.name);
                if let Some(when) = &step.when {
                    println!("   when: {}", when.text);
                }
                let lines: Vec<_> = match agent.kind {
                    AgentKind::Shell => step.sh.iter().collect(),
                    AgentKind::Command { .. } => step.prompt.iter().collect(),
                };
                for t in lines {
                    let text = renderer
                        .render(t, &context, &steps, 1, "")
                        .unwrap_or_else(|e| format!("(cannot render: {e})"));
                    let label = if matches!(agent.kind, AgentKind::Shell) {
                        "sh"
                    } else {
                        "prompt"
                    };
                    println!("   {label}:");
                    for line in text.lines() {
                        println!("     | {line}");
                    }
                }
                if let Some(until) = &step.until {
                    println!(
                        "   until: {} (attempts {})",
                        until.command.text, until.attempts
                    );
                }
            }
            NodeKind::Checkpoint(_) => println!("{n}. checkpoint {} [{phase}]{after}", node.name),
        }
    }
    EXIT_OK
}
