//! `runbook run --dry-run`: what would run, in order, with rendered prompts.

use super::EXIT_OK;
use crate::check::CheckedRunbook;
use crate::ir::{AgentKind, GraphNode, NodeId, NodeKind};
use crate::run::context::{Context, Renderer, StepView};
use crate::syntax::source::Location;
use petgraph::graph::NodeIndex;
use petgraph::Direction;
use std::collections::BTreeMap;

/// Prints the run order and rendered prompts.
pub fn print(checked: &CheckedRunbook, params: &serde_json::Value) -> i32 {
    let runbook = checked.runbook();
    let order = file_order(&runbook.graph.dag);
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
    for id in order {
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

/// The steps and checkpoints in an order the DAG allows, preferring file order: of
/// everything ready, the node written first comes first, so the plan reads like the file.
fn file_order(dag: &petgraph::graph::DiGraph<GraphNode, Option<Location>>) -> Vec<NodeId> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    // Phase boundaries print nothing: they go first so they release what they hold.
    let key = |v: NodeIndex| match dag[v] {
        GraphNode::Node(id) => (1, id.0),
        _ => (0, 0),
    };
    let mut remaining: Vec<usize> = dag
        .node_indices()
        .map(|v| dag.edges_directed(v, Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<((u8, u32), NodeIndex)>> = dag
        .node_indices()
        .filter(|v| remaining[v.index()] == 0)
        .map(|v| Reverse((key(v), v)))
        .collect();
    let mut order = Vec::new();
    while let Some(Reverse((_, v))) = ready.pop() {
        if let GraphNode::Node(id) = dag[v] {
            order.push(id);
        }
        for next in dag.neighbors_directed(v, Direction::Outgoing) {
            // Parallel edges count once per edge, as in `remaining`.
            remaining[next.index()] -= 1;
            if remaining[next.index()] == 0 {
                ready.push(Reverse((key(next), next)));
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_nodes_come_in_file_order_and_dependencies_first() {
        let mut dag = petgraph::graph::DiGraph::new();
        let start = dag.add_node(GraphNode::PhaseStart(crate::ir::PhaseId(0)));
        let end = dag.add_node(GraphNode::PhaseEnd(crate::ir::PhaseId(0)));
        // Added in reverse so that index order is not file order.
        let c = dag.add_node(GraphNode::Node(NodeId(2)));
        let b = dag.add_node(GraphNode::Node(NodeId(1)));
        let a = dag.add_node(GraphNode::Node(NodeId(0)));
        let d = dag.add_node(GraphNode::Node(NodeId(3)));
        for v in [a, b, c, d] {
            dag.add_edge(start, v, None);
            dag.add_edge(v, end, None);
        }
        // d comes before b in the DAG although it is written after it.
        dag.add_edge(d, b, None);
        dag.add_edge(start, end, None);
        let order: Vec<u32> = file_order(&dag).iter().map(|n| n.0).collect();
        assert_eq!(order, [0, 2, 3, 1]);
    }
}
