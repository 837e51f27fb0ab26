//! The DAG as Graphviz DOT (`--format dot`): one cluster per phase, steps as rounded
//! boxes, checkpoints as diamonds, edges for the direct dependencies; phase order as
//! edges between clusters (through an invisible anchor in each); critical phases bold.

use super::{NodePlan, Plan};
use std::fmt::Write as _;

/// The plan's DAG as DOT text.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&plan.runbook.name));
    out.push_str("  compound=true;\n  rankdir=TB;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n  edge [fontname=\"Helvetica\"];\n");
    for phase in &plan.phases {
        let estimate = phase
            .estimate
            .as_ref()
            .map(|e| format!(" ({})", e.text))
            .unwrap_or_default();
        let _ = writeln!(out, "  subgraph {} {{", quote(&cluster(&phase.name)));
        let _ = writeln!(
            out,
            "    label={};",
            quote(&format!(
                "Phase {}: {}{estimate}",
                phase.number,
                phase.label()
            ))
        );
        if phase.critical {
            out.push_str("    penwidth=3;\n");
        }
        let _ = writeln!(
            out,
            "    {} [shape=point, style=invis];",
            quote(&anchor(&phase.name))
        );
        for node in &phase.nodes {
            match node {
                NodePlan::Step(step) => {
                    let title = step
                        .title
                        .as_deref()
                        .map(|t| format!("\n{t}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "    {} [label={}];",
                        quote(&node_id(&step.name)),
                        quote(&format!("{}{title}\nby {}", step.name, step.agent))
                    );
                }
                NodePlan::Checkpoint(cp) => {
                    let title = cp
                        .title
                        .as_deref()
                        .map(|t| format!("\n{t}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "    {} [shape=diamond, style=filled, fillcolor=\"#fff3cd\", label={}];",
                        quote(&node_id(&cp.name)),
                        quote(&format!("checkpoint {}{title}", cp.name))
                    );
                }
            }
        }
        out.push_str("  }\n");
    }
    for phase in &plan.phases {
        for before in &phase.after {
            let _ = writeln!(
                out,
                "  {} -> {} [ltail={}, lhead={}, style=bold];",
                quote(&anchor(before)),
                quote(&anchor(&phase.name)),
                quote(&cluster(before)),
                quote(&cluster(&phase.name))
            );
        }
        for node in &phase.nodes {
            for before in node.after() {
                let _ = writeln!(
                    out,
                    "  {} -> {};",
                    quote(&node_id(before)),
                    quote(&node_id(node.name()))
                );
            }
        }
    }
    out.push_str("}\n");
    out
}

fn cluster(phase: &str) -> String {
    format!("cluster_{phase}")
}

fn anchor(phase: &str) -> String {
    format!("phase:{phase}")
}

fn node_id(name: &str) -> String {
    format!("node:{name}")
}

/// A DOT quoted string; newlines become centered line breaks.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
