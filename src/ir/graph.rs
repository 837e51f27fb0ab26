//! The dependency graph of the ordering rules: phases in file order (or `after`),
//! steps concurrent inside a phase unless ordered, checkpoints as barriers.
//!
//! Each phase is bracketed by two virtual nodes, start and end, so that "every step of
//! phase 2 waits for every step of phase 1" costs one edge per step instead of one per
//! pair. An edge `a → b` means `a` finishes before `b` starts.

use super::{Node, NodeId, NodeKind, Phase, PhaseId};
use crate::syntax::source::Location;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::{EdgeRef, Walker};
use petgraph::Direction;

/// A vertex of the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GraphNode {
    /// A step or checkpoint.
    Node(NodeId),
    /// Reached when every phase this phase runs after has ended.
    PhaseStart(PhaseId),
    /// Reached when every node of the phase has finished.
    PhaseEnd(PhaseId),
}

/// The DAG (or, before checking, a graph that may have cycles).
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// The graph; edge weights are the `after` references that created them, if any.
    pub dag: DiGraph<GraphNode, Option<Location>>,
    nodes: Vec<NodeIndex>,
    starts: Vec<NodeIndex>,
    ends: Vec<NodeIndex>,
}

impl Graph {
    /// Builds the graph of `phases` and `nodes`.
    pub fn build(phases: &[Phase], nodes: &[Node]) -> Graph {
        let mut dag = DiGraph::with_capacity(nodes.len() + 2 * phases.len(), nodes.len() * 3);
        let starts: Vec<_> = (0..phases.len())
            .map(|i| dag.add_node(GraphNode::PhaseStart(PhaseId(i as u32))))
            .collect();
        let ends: Vec<_> = (0..phases.len())
            .map(|i| dag.add_node(GraphNode::PhaseEnd(PhaseId(i as u32))))
            .collect();
        let node_ix: Vec<_> = (0..nodes.len())
            .map(|i| dag.add_node(GraphNode::Node(NodeId(i as u32))))
            .collect();

        for (p, phase) in phases.iter().enumerate() {
            match &phase.after {
                Some(after) => {
                    for (dep, location) in after {
                        dag.add_edge(ends[dep.0 as usize], starts[p], Some(*location));
                    }
                }
                None if p > 0 => {
                    dag.add_edge(ends[p - 1], starts[p], None);
                }
                None => {}
            }
            dag.add_edge(starts[p], ends[p], None);

            // Walk the phase in source order, tracking the barrier in force and the
            // nodes above the next checkpoint.
            let mut barrier = starts[p];
            let mut above: Vec<NodeIndex> = Vec::new();
            for &id in &phase.nodes {
                let node = &nodes[id.0 as usize];
                let ix = node_ix[id.0 as usize];
                dag.add_edge(barrier, ix, None);
                for (dep, location) in &node.after {
                    dag.add_edge(node_ix[dep.0 as usize], ix, Some(*location));
                }
                dag.add_edge(ix, ends[p], None);
                match node.kind {
                    NodeKind::Checkpoint(_) => {
                        if node.after.is_empty() {
                            for &a in &above {
                                dag.add_edge(a, ix, None);
                            }
                        }
                        above.clear();
                        barrier = ix;
                    }
                    NodeKind::Step(_) => above.push(ix),
                }
            }
        }
        Graph {
            dag,
            nodes: node_ix,
            starts,
            ends,
        }
    }

    /// The vertex of a node.
    pub fn index(&self, node: NodeId) -> NodeIndex {
        self.nodes[node.0 as usize]
    }

    /// The start vertex of a phase.
    pub fn phase_start(&self, phase: PhaseId) -> NodeIndex {
        self.starts[phase.0 as usize]
    }

    /// The end vertex of a phase.
    pub fn phase_end(&self, phase: PhaseId) -> NodeIndex {
        self.ends[phase.0 as usize]
    }

    /// Every named node that must finish before `node` starts.
    pub fn ancestors(&self, node: NodeId) -> Vec<bool> {
        let mut seen = vec![false; self.dag.node_count()];
        let mut stack = vec![self.index(node)];
        while let Some(ix) = stack.pop() {
            for dep in self.dag.neighbors_directed(ix, Direction::Incoming) {
                if !seen[dep.index()] {
                    seen[dep.index()] = true;
                    stack.push(dep);
                }
            }
        }
        seen
    }

    /// Whether `earlier` is guaranteed to finish before `later` starts.
    pub fn is_ancestor(&self, earlier: NodeId, later: NodeId) -> bool {
        let target = self.index(later);
        petgraph::visit::Dfs::new(&self.dag, self.index(earlier))
            .iter(&self.dag)
            .any(|ix| ix == target && ix != self.index(earlier))
    }

    /// The direct named predecessors of a vertex, looking through virtual vertices.
    pub fn named_dependencies(&self, node: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<NodeIndex> = self
            .dag
            .neighbors_directed(self.index(node), Direction::Incoming)
            .collect();
        while let Some(ix) = stack.pop() {
            if !seen.insert(ix) {
                continue;
            }
            match self.dag[ix] {
                GraphNode::Node(id) => out.push(id),
                _ => stack.extend(self.dag.neighbors_directed(ix, Direction::Incoming)),
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Every cycle, as the vertices along it and the `after` references on its edges.
    pub fn cycles(&self) -> Vec<Vec<(GraphNode, Option<Location>)>> {
        let mut cycles = Vec::new();
        for scc in petgraph::algo::tarjan_scc(&self.dag) {
            let self_loop = scc.len() == 1 && self.dag.find_edge(scc[0], scc[0]).is_some();
            if scc.len() < 2 && !self_loop {
                continue;
            }
            cycles.push(self.cycle_path(&scc));
        }
        cycles
    }

    /// A shortest cycle through the first vertex of a strongly connected component.
    fn cycle_path(&self, scc: &[NodeIndex]) -> Vec<(GraphNode, Option<Location>)> {
        let members: std::collections::HashSet<_> = scc.iter().copied().collect();
        // Start from a named node with an `after` edge if there is one: that is what the
        // user wrote and can change.
        let start = scc
            .iter()
            .copied()
            .filter(|ix| matches!(self.dag[*ix], GraphNode::Node(_)))
            .min_by_key(|ix| match self.dag[*ix] {
                GraphNode::Node(id) => id.0,
                _ => u32::MAX,
            })
            .unwrap_or(scc[0]);
        // Breadth-first search from `start` back to `start` inside the component.
        let mut previous: std::collections::HashMap<NodeIndex, (NodeIndex, Option<Location>)> =
            std::collections::HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing = None;
        'search: while let Some(ix) = queue.pop_front() {
            for edge in self.dag.edges_directed(ix, Direction::Outgoing) {
                let next = edge.target();
                if !members.contains(&next) {
                    continue;
                }
                if next == start {
                    closing = Some((ix, *edge.weight()));
                    break 'search;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = previous.entry(next) {
                    e.insert((ix, *edge.weight()));
                    queue.push_back(next);
                }
            }
        }
        let Some((last, closing_weight)) = closing else {
            return vec![(self.dag[start], None)];
        };
        let mut path = vec![(self.dag[start], closing_weight)];
        let mut at = last;
        let mut reversed = Vec::new();
        while at != start {
            let (prev, weight) = previous[&at];
            reversed.push((self.dag[at], weight));
            at = prev;
        }
        reversed.reverse();
        // `path[i].1` is the reference on the edge *into* path[i].
        path.extend(reversed);
        path
    }
}
