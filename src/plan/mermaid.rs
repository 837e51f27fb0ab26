//! The DAG as a Mermaid flowchart (`--format mermaid`): one subgraph per phase, steps
//! as rounded boxes, checkpoints as diamonds, edges for the direct dependencies between
//! steps and checkpoints and between phases; critical phases drawn with a thick border.

use super::{NodePlan, Plan};
use std::fmt::Write as _;

/// The plan's DAG as Mermaid text.
pub fn render(plan: &Plan) -> String {
    let mut out = String::from("flowchart TD\n");
    for phase in &plan.phases {
        let estimate = phase
            .estimate
            .as_ref()
            .map(|e| format!(" · {}", e.text))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  subgraph {}[\"{}\"]",
            phase_id(&phase.name),
            label(&format!(
                "Phase {}: {}{estimate}",
                phase.number,
                phase.label()
            ))
        );
        out.push_str("    direction TB\n");
        for node in &phase.nodes {
            match node {
                NodePlan::Step(step) => {
                    let title = step
                        .title
                        .as_deref()
                        .map(|t| format!("<br/>{}", label(t)))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "    {}(\"{}{title}<br/><i>by {}</i>\")",
                        node_id(&step.name),
                        label(&step.name),
                        label(&step.agent)
                    );
                }
                NodePlan::Checkpoint(cp) => {
                    let title = cp
                        .title
                        .as_deref()
                        .map(|t| format!("<br/>{}", label(t)))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "    {}{{\"{}{title}\"}}",
                        node_id(&cp.name),
                        label(&format!("checkpoint {}", cp.name))
                    );
                }
            }
        }
        out.push_str("  end\n");
    }
    for phase in &plan.phases {
        for before in &phase.after {
            let _ = writeln!(out, "  {} --> {}", phase_id(before), phase_id(&phase.name));
        }
        for node in &phase.nodes {
            for before in node.after() {
                let _ = writeln!(out, "  {} --> {}", node_id(before), node_id(node.name()));
            }
        }
    }
    let checkpoints: Vec<String> = plan
        .phases
        .iter()
        .flat_map(|p| &p.nodes)
        .filter(|n| matches!(n, NodePlan::Checkpoint(_)))
        .map(|n| node_id(n.name()))
        .collect();
    if !checkpoints.is_empty() {
        out.push_str("  classDef checkpoint fill:#fff3cd,stroke:#b8860b\n");
        let _ = writeln!(out, "  class {} checkpoint", checkpoints.join(","));
    }
    for phase in plan.phases.iter().filter(|p| p.critical) {
        let _ = writeln!(out, "  style {} stroke-width:3px", phase_id(&phase.name));
    }
    out
}

// Prefixes keep names such as `end` or `style`, which are Mermaid keywords, usable.
fn phase_id(name: &str) -> String {
    format!("phase_{name}")
}

fn node_id(name: &str) -> String {
    format!("node_{name}")
}

/// Text inside a quoted Mermaid label: entity codes for what Mermaid would read.
fn label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
