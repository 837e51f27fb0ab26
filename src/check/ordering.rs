//! Ordering rules: dependency cycles, and checkpoints that must come after what they
//! show or revise.

use crate::diagnostic::Diagnostic;
use crate::ir::{GraphNode, NodeKind, Runbook, ShowItem};

fn describe(runbook: &Runbook, node: GraphNode) -> String {
    match node {
        GraphNode::Node(id) => format!("`{}`", runbook.node(id).name),
        GraphNode::PhaseStart(p) | GraphNode::PhaseEnd(p) => {
            format!("phase `{}`", runbook.phase(p).name)
        }
    }
}

/// E0201: dependency cycles, with the path around the cycle.
pub fn cycles(runbook: &Runbook) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for cycle in runbook.graph.cycles() {
        // A phase is two vertices (start, end); show it once. A step that is on the cycle
        // only because it sits inside a phase on it (no `after` into or out of it) says
        // nothing the phase does not.
        let n = cycle.len();
        let mut names: Vec<String> = Vec::new();
        for (i, (vertex, reference)) in cycle.iter().enumerate() {
            let outgoing = cycle[(i + 1) % n].1;
            let passing = matches!(vertex, GraphNode::Node(_))
                && reference.is_none()
                && outgoing.is_none()
                && cycle.iter().any(|(v, _)| !matches!(v, GraphNode::Node(_)));
            if passing {
                continue;
            }
            let name = describe(runbook, *vertex);
            if names.last() != Some(&name) {
                names.push(name);
            }
        }
        if names.len() > 1 && names.first() == names.last() {
            names.pop();
        }
        names.push(names[0].clone());
        let path = names.join(" → ");
        let references: Vec<_> = cycle.iter().filter_map(|(_, r)| *r).collect();
        // An edge into a phase's start with no `after` written is the file order.
        let implicit = cycle.iter().any(|(vertex, reference)| {
            matches!(vertex, GraphNode::PhaseStart(p) if reference.is_none() && runbook.phase(*p).after.is_none() && p.0 > 0)
        });
        let primary = references
            .first()
            .copied()
            .unwrap_or_else(|| match cycle[0].0 {
                GraphNode::Node(id) => runbook.node(id).location,
                GraphNode::PhaseStart(p) | GraphNode::PhaseEnd(p) => runbook.phase(p).location,
            });
        let mut help = "remove one of the `after` references on the cycle: nothing can run after something that runs after it".to_string();
        if implicit {
            help.push_str("; a phase without `after` runs after the phase above it");
        }
        let mut d = Diagnostic::error("E0201", primary, format!("dependency cycle: {path}"))
            .with_label("this `after` closes the cycle")
            .with_help(help);
        for r in references.iter().skip(1) {
            d = d.with_secondary(*r, "part of the cycle");
        }
        out.push(d);
    }
    out
}

/// E0508 and E0202 for checkpoints: `revise` must name an earlier step, and shown
/// step values must be final by then.
pub fn checkpoints(runbook: &Runbook) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, node) in runbook.nodes.iter().enumerate() {
        let NodeKind::Checkpoint(cp) = &node.kind else {
            continue;
        };
        let id = crate::ir::NodeId(i as u32);
        if let Some((target, at)) = cp.revise {
            let t = runbook.node(target);
            if t.step().is_none() {
                out.push(
                    Diagnostic::error(
                        "E0508",
                        at,
                        format!("`{}` is a checkpoint; `revise` re-runs a step", t.name),
                    )
                    .with_label("not a step")
                    .with_secondary(t.location, "declared here")
                    .with_help("name the step whose work the reviewer may send back"),
                );
            } else if !runbook.graph.is_ancestor(target, id) {
                out.push(
                    Diagnostic::error(
                        "E0508",
                        at,
                        format!("checkpoint `{}` cannot revise `{}`: that step does not finish before it", node.name, t.name),
                    )
                    .with_label("not before this checkpoint")
                    .with_secondary(t.location, "declared here")
                    .with_help(format!("revise a step above the checkpoint, or add `after {}` to the checkpoint", t.name)),
                );
            }
        }
        for item in &cp.show {
            if let ShowItem::StepValue {
                node: Some(target),
                location,
                ..
            } = item
            {
                if !runbook.graph.is_ancestor(*target, id) {
                    let t = runbook.node(*target);
                    out.push(
                        Diagnostic::error(
                            "E0202",
                            *location,
                            format!("checkpoint `{}` shows `{}`, which is not guaranteed to finish before it", node.name, t.name),
                        )
                        .with_label("may still be running")
                        .with_secondary(t.location, "declared here")
                        .with_help(format!("add `after {}` to the checkpoint", t.name)),
                    );
                }
            }
        }
    }
    out
}
