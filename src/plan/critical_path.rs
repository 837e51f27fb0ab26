//! The critical path: the longest chain of estimated work through the DAG.
//!
//! Steps carry no estimate; phases do. A phase's estimate is the time from its start
//! until every one of its steps and checkpoints has finished, and any of them may take
//! all of it. So the model gives every edge that leaves a phase's start vertex the
//! weight of the phase's estimate, and every other edge none: a vertex is reached when
//! the work before it may have finished. A step that runs `after` a step of another
//! phase therefore finishes no earlier than that other phase's estimate allows (its own
//! work is taken to fit in its phase's estimate, which it shares with its phase).
//! The critical path is the heaviest path of that weighted DAG; its total is the sum of
//! the estimates of the phases whose start edge it crosses. Phases without an estimate
//! count as zero and are listed, so a reader knows the total is a lower bound.

use super::Estimate;
use crate::ir::{GraphNode, Runbook};
use petgraph::visit::EdgeRef;
use serde::Serialize;

/// The longest chain of estimated work.
#[derive(Debug, Clone, Serialize)]
pub struct CriticalPath {
    /// The phases whose estimates it adds up, in order.
    pub phases: Vec<String>,
    /// The sum of their estimates.
    pub estimate: Estimate,
    /// Phases without an estimate anywhere in the runbook (counted as zero).
    pub unestimated: Vec<String>,
}

/// Computes the critical path of a checked (acyclic) runbook.
pub fn compute(runbook: &Runbook) -> CriticalPath {
    let dag = &runbook.graph.dag;
    let weight = |v: petgraph::graph::NodeIndex| match dag[v] {
        GraphNode::PhaseStart(p) => runbook
            .phase(p)
            .estimate
            .as_ref()
            .map_or(0, |e| e.duration.as_secs()),
        _ => 0,
    };
    // A checked runbook is acyclic; an empty order only yields an empty path.
    let order = petgraph::algo::toposort(dag, None).unwrap_or_default();
    let mut best: Vec<u64> = vec![0; dag.node_count()];
    let mut previous: Vec<Option<petgraph::graph::NodeIndex>> = vec![None; dag.node_count()];
    for &v in &order {
        for edge in dag.edges_directed(v, petgraph::Direction::Outgoing) {
            let to = edge.target();
            let through = best[v.index()] + weight(v);
            if through > best[to.index()] {
                best[to.index()] = through;
                previous[to.index()] = Some(v);
            }
        }
    }
    let end = order
        .iter()
        .copied()
        .max_by_key(|v| (best[v.index()], std::cmp::Reverse(v.index())));
    let mut phases = Vec::new();
    let mut at = end;
    while let Some(v) = at {
        let from = previous[v.index()];
        if let Some(GraphNode::PhaseStart(p)) = from.map(|f| dag[f]) {
            if from.is_some_and(|f| weight(f) > 0) {
                phases.push(runbook.phase(p).name.clone());
            }
        }
        at = from;
    }
    phases.reverse();
    CriticalPath {
        phases,
        estimate: Estimate::from_seconds(end.map_or(0, |v| best[v.index()])),
        unestimated: runbook
            .phases
            .iter()
            .filter(|p| p.estimate.is_none())
            .map(|p| p.name.clone())
            .collect(),
    }
}
