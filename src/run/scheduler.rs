//! The scheduler: walks the DAG on tokio, starting each step the moment its
//! dependencies finish (at most `--jobs` at once), asking checkpoints, and deciding
//! what a failure leads to.
//!
//! Durability: the journal is one ordered file and its writer thread commits whatever
//! is queued in one fsync (group commit), continuously. The scheduler does not wait for
//! a step's `step_finished` to be durable before starting its dependents: a dependent's
//! events come after its dependency's in the file, so no prefix of the journal that
//! survives a crash can show a dependent finished while its dependency is not; resume
//! re-runs whatever the surviving journal does not show finished. The run waits for
//! durability where an outside party relies on the record: before compensations run,
//! before it suspends for a human, and before it exits.

use super::checkpoint::{self, Action};
use super::context::StepView;
use super::event::{now, Decision, Event};
use super::state::{NodeStatus, RunState};
use super::step::{self, StepEnd, StepReport};
use super::Session;
use crate::ir::{GraphNode, NodeId, NodeKind, OnFailure};
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use petgraph::Direction;
use std::collections::VecDeque;
use std::sync::Arc;

/// How a drive of the run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every step finished.
    Succeeded,
    /// A step failed; compensations ran (`ok` tells whether all succeeded).
    Failed {
        /// Why.
        reason: String,
        /// Whether every compensation succeeded.
        rollback_ok: bool,
    },
    /// A checkpoint was rejected; compensations ran.
    Rejected {
        /// Why.
        reason: String,
        /// Whether every compensation succeeded.
        rollback_ok: bool,
    },
    /// Waiting for decisions.
    Suspended(Vec<String>),
    /// Ctrl-C.
    Interrupted,
}

enum Stop {
    Failed(String),
    Rejected(String),
}

/// Drives the run until it ends, suspends or is interrupted.
pub async fn drive(session: Arc<Session>, state: &mut RunState) -> Result<Outcome, String> {
    loop {
        match pass(&session, state).await? {
            Some(outcome) => return Ok(outcome),
            None => continue, // a revise reset nodes: walk the graph again
        }
    }
}

async fn pass(session: &Arc<Session>, state: &mut RunState) -> Result<Option<Outcome>, String> {
    let runbook = session.checked.runbook();
    let dag = &runbook.graph.dag;
    let mut remaining: Vec<usize> = dag
        .node_indices()
        .map(|v| dag.edges_directed(v, Direction::Incoming).count())
        .collect();
    let mut ready: VecDeque<NodeIndex> = dag
        .node_indices()
        .filter(|v| remaining[v.index()] == 0)
        .collect();
    let mut queued: VecDeque<NodeId> = VecDeque::new();
    let mut waiting: Vec<String> = Vec::new();
    let mut stop: Option<Stop> = None;
    let mut restart = false;
    let mut interrupted = false;
    let mut running = 0usize;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<StepReport>();
    let jobs = session.options.jobs.max(1);
    // `--jobs` bounds processes (the slots); up to as many more step tasks prepare their
    // attempt, or record their result, meanwhile.
    let tasks = jobs.saturating_mul(2);
    session
        .stopping
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let mut interruption = Box::pin(interruption());

    loop {
        // Start whatever is ready.
        while let Some(v) = ready.pop_front() {
            let id = match dag[v] {
                GraphNode::Node(id) => id,
                _ => {
                    release(dag, v, &mut remaining, &mut ready);
                    continue;
                }
            };
            if stop.is_some() || restart || interrupted {
                continue;
            }
            let node = runbook.node(id);
            match (state.status(&node.name).clone(), &node.kind) {
                (NodeStatus::Succeeded | NodeStatus::Skipped, _) => {
                    release(dag, v, &mut remaining, &mut ready)
                }
                (NodeStatus::Failed { reason }, NodeKind::Step(s)) => {
                    if state.conflicts.contains_key(&node.name) {
                        // Conflicted, asked, not decided (the question is re-asked).
                        if let Some(d) = state.decisions.get(&node.name).cloned() {
                            match escalation_decision(
                                session, state, id, d.decision, d.comment, &d.by,
                            )? {
                                Some(s) => stop = Some(s),
                                None => restart = true,
                            }
                        } else {
                            waiting.push(node.name.clone());
                        }
                    } else if s.on_failure == OnFailure::Continue {
                        release(dag, v, &mut remaining, &mut ready);
                    } else if let Some(d) = state.decisions.get(&node.name).cloned() {
                        // An escalation decided while the run was suspended.
                        match escalation_decision(session, state, id, d.decision, d.comment, &d.by)?
                        {
                            Some(s) => stop = Some(s),
                            None => restart = true,
                        }
                    } else if s.on_failure == OnFailure::Escalate {
                        waiting.push(node.name.clone());
                    } else {
                        stop = Some(Stop::Failed(format!("step {} failed: {reason}", node.name)));
                    }
                }
                (NodeStatus::Asked { .. }, NodeKind::Step(_)) => {
                    // A failed `on_failure escalate` step whose question is open: it was
                    // asked before the run suspended (or crashed). Its decision, if one
                    // was recorded since, is applied here; it never just runs again.
                    if let Some(d) = state.decisions.get(&node.name).cloned() {
                        match escalation_decision(session, state, id, d.decision, d.comment, &d.by)?
                        {
                            Some(s) => stop = Some(s),
                            None => restart = true,
                        }
                    } else if session.options.interactive {
                        let reason = state
                            .failures
                            .get(&node.name)
                            .cloned()
                            .unwrap_or_else(|| "failed".into());
                        let action =
                            tokio::task::block_in_place(|| escalate(session, state, id, &reason))?;
                        match action {
                            Some(Ok(())) => restart = true,
                            Some(Err(s)) => stop = Some(s),
                            None => waiting.push(node.name.clone()),
                        }
                    } else {
                        waiting.push(node.name.clone());
                    }
                }
                (_, NodeKind::Step(_)) => queued.push_back(id),
                (_, NodeKind::Checkpoint(_)) => {
                    let action = tokio::task::block_in_place(|| {
                        session.with_views(|steps| checkpoint::decide(session, state, id, steps))
                    })?;
                    match action {
                        Action::Proceed => {
                            state.nodes.insert(node.name.clone(), NodeStatus::Approved);
                            release(dag, v, &mut remaining, &mut ready);
                        }
                        Action::Wait => waiting.push(node.name.clone()),
                        Action::Reject(reason) => {
                            stop = Some(Stop::Rejected(format!(
                                "checkpoint {} rejected: {reason}",
                                node.name
                            )))
                        }
                        Action::Revise { target, comment } => {
                            revise(session, state, id, target, comment)?;
                            restart = true;
                        }
                    }
                }
            }
        }
        if stop.is_some() || restart || interrupted {
            session
                .stopping
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        while running < tasks && stop.is_none() && !restart && !interrupted {
            let Some(id) = queued.pop_front() else { break };
            spawn(session, state, id, &tx);
            running += 1;
        }
        if running == 0 {
            break;
        }
        // Wait for the next completion, then take every one that is already there.
        let first = tokio::select! {
            r = rx.recv() => r,
            () = &mut interruption, if !interrupted => {
                interrupted = true;
                let _ = session.cancel_tx.send(true);
                session.progress.line("interrupted: stopping running steps (resume with `runbook resume`)");
                continue;
            }
        };
        let mut reports: Vec<StepReport> = first.into_iter().collect();
        while let Ok(r) = rx.try_recv() {
            reports.push(r);
        }
        running -= reports.len();
        for report in reports {
            let node = runbook.node(report.node);
            let v = runbook.graph.index(report.node);
            match report.end {
                StepEnd::Succeeded(view) => {
                    state.nodes.insert(node.name.clone(), NodeStatus::Succeeded);
                    state.completed.push(node.name.clone());
                    session.set_view(&node.name, view);
                    release(dag, v, &mut remaining, &mut ready);
                }
                StepEnd::Skipped => {
                    state.nodes.insert(node.name.clone(), NodeStatus::Skipped);
                    session.set_view(
                        &node.name,
                        StepView {
                            status: "skipped".into(),
                            ..Default::default()
                        },
                    );
                    session.progress.step_skipped(&node.name, "`when` is false");
                    release(dag, v, &mut remaining, &mut ready);
                }
                StepEnd::Failed(reason) => {
                    state.nodes.insert(
                        node.name.clone(),
                        NodeStatus::Failed {
                            reason: reason.clone(),
                        },
                    );
                    session.set_view(
                        &node.name,
                        StepView {
                            status: "failed".into(),
                            ..Default::default()
                        },
                    );
                    let on_failure = node.step().map_or(OnFailure::Rollback, |s| s.on_failure);
                    match on_failure {
                        OnFailure::Continue => {
                            session.progress.line(&format!(
                                "✗ {} failed; going on (on_failure continue): {}",
                                node.name,
                                first_line(&reason)
                            ));
                            release(dag, v, &mut remaining, &mut ready);
                        }
                        OnFailure::Rollback => {
                            if stop.is_none() {
                                stop = Some(Stop::Failed(format!(
                                    "step {} failed: {}",
                                    node.name, reason
                                )));
                            }
                        }
                        OnFailure::Escalate => {
                            let action = tokio::task::block_in_place(|| {
                                escalate(session, state, report.node, &reason)
                            })?;
                            match action {
                                Some(Ok(())) => restart = true,
                                Some(Err(s)) => stop = Some(s),
                                None => waiting.push(node.name.clone()),
                            }
                        }
                    }
                }
                StepEnd::Conflict(record, text) => {
                    state.conflicts.insert(node.name.clone(), record);
                    // A conflict always goes to a human, whatever `on_failure` says:
                    // resolving it silently would drop someone's work.
                    state.nodes.insert(
                        node.name.clone(),
                        NodeStatus::Failed {
                            reason: "merge conflict".into(),
                        },
                    );
                    let action = tokio::task::block_in_place(|| {
                        escalate(session, state, report.node, &text)
                    })?;
                    match action {
                        Some(Ok(())) => restart = true,
                        Some(Err(s)) => stop = Some(s),
                        None => waiting.push(node.name.clone()),
                    }
                }
                StepEnd::NotStarted => {
                    state.nodes.insert(node.name.clone(), NodeStatus::Pending);
                }
                StepEnd::Interrupted => interrupted = true,
                StepEnd::JournalError(e) => return Err(format!("cannot write the journal: {e}")),
            }
        }
        warn_record_failures(session);
    }

    if interrupted {
        session
            .journal
            .append(&Event::RunInterrupted { time: now() })
            .map_err(|e| e.to_string())?;
        return Ok(Some(Outcome::Interrupted));
    }
    if let Some(stop) = stop {
        let (reason, rejected) = match stop {
            Stop::Failed(r) => (r, false),
            Stop::Rejected(r) => (r, true),
        };
        let rollback_ok = super::rollback::run(session, state, &reason).await?;
        let status = if rejected { "rejected" } else { "failed" };
        session
            .journal
            .append(&Event::RunFinished {
                time: now(),
                status: status.into(),
            })
            .map_err(|e| e.to_string())?;
        return Ok(Some(if rejected {
            Outcome::Rejected {
                reason,
                rollback_ok,
            }
        } else {
            Outcome::Failed {
                reason,
                rollback_ok,
            }
        }));
    }
    if restart {
        return Ok(None);
    }
    if !waiting.is_empty() {
        waiting.sort();
        session
            .journal
            .append_durable(&Event::RunSuspended {
                time: now(),
                waiting: waiting.clone(),
            })
            .await
            .map_err(|e| e.to_string())?;
        return Ok(Some(Outcome::Suspended(waiting)));
    }
    session
        .journal
        .append(&Event::RunFinished {
            time: now(),
            status: "succeeded".into(),
        })
        .map_err(|e| e.to_string())?;
    Ok(Some(Outcome::Succeeded))
}

/// Starts a step task; its report comes back on `tx`.
fn spawn(
    session: &Arc<Session>,
    state: &mut RunState,
    id: NodeId,
    tx: &tokio::sync::mpsc::UnboundedSender<StepReport>,
) {
    let name = session.checked.runbook().node(id).name.clone();
    let first = session
        .dir
        .next_attempt(&name, state.attempts.get(&name).copied());
    let counted = state.finished_attempts.get(&name).copied().unwrap_or(0);
    let feedback = state.feedback.get(&name).cloned().unwrap_or_default();
    // A step re-run after its commit conflicted starts again from the run branch.
    let rebase = state.conflicts.remove(&name).is_some();
    state
        .nodes
        .insert(name, NodeStatus::Running { attempt: first });
    let tx = tx.clone();
    let session = session.clone();
    tokio::spawn(async move {
        let (report, slot) = step::run(session, id, first, counted, feedback, rebase).await;
        let _ = tx.send(report);
        // Freed after the report is sent: tokio runs the task it woke last first, so the
        // step waiting for this slot (prepared already) starts its process before the
        // scheduler takes the report and begins preparing another step. The other order
        // put that preparation between one process's end and the next one's start.
        drop(slot);
    });
}

/// Reports the `result.json` files the journal's writer could not write (loudly: the
/// run goes on, as its journal is intact, but the record is missing a file).
pub fn warn_record_failures(session: &Session) {
    for failure in session.journal.take_record_failures() {
        session.progress.warn(&failure);
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. Both interrupt the run resumably: steps run
/// in process groups of their own, which no signal sent to the interpreter reaches, so a
/// SIGTERM left to its default action (a CI job being cancelled) would kill the
/// interpreter and leave every running step behind.
async fn interruption() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the signals keep their default action: the interpreter dies.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Marks `v` finished and queues the successors it was the last dependency of.
fn release(
    dag: &petgraph::graph::DiGraph<GraphNode, Option<crate::syntax::source::Location>>,
    v: NodeIndex,
    remaining: &mut [usize],
    ready: &mut VecDeque<NodeIndex>,
) {
    for edge in dag.edges_directed(v, Direction::Outgoing) {
        let t = edge.target();
        remaining[t.index()] -= 1;
        if remaining[t.index()] == 0 {
            ready.push_back(t);
        }
    }
}

/// Resets the revise target and everything between it and the checkpoint.
fn revise(
    session: &Session,
    state: &mut RunState,
    checkpoint: NodeId,
    target: NodeId,
    comment: String,
) -> Result<(), String> {
    let runbook = session.checked.runbook();
    let graph = &runbook.graph;
    let before_checkpoint = graph.ancestors(checkpoint);
    let mut nodes = vec![runbook.node(target).name.clone()];
    for (i, n) in runbook.nodes.iter().enumerate() {
        let id = NodeId(i as u32);
        if id != target
            && before_checkpoint[graph.index(id).index()]
            && graph.is_ancestor(target, id)
        {
            nodes.push(n.name.clone());
        }
    }
    nodes.push(runbook.node(checkpoint).name.clone());
    let cp_name = runbook.node(checkpoint).name.clone();
    let target_name = runbook.node(target).name.clone();
    session.progress.line(&format!(
        "↻ checkpoint {cp_name}: revising {target_name} with the reviewer's comment"
    ));
    let event = Event::NodesReset {
        time: now(),
        cause: cp_name,
        nodes,
        feedback: Some((target_name, format!("Reviewer's comment: {comment}"))),
    };
    session.journal.append(&event).map_err(|e| e.to_string())?;
    state.apply(&event);
    Ok(())
}

/// An `on_failure escalate` step failed: ask now, or wait. `Some(Ok)` = run again.
fn escalate(
    session: &Session,
    state: &mut RunState,
    step: NodeId,
    reason: &str,
) -> Result<Option<Result<(), Stop>>, String> {
    let name = session.checked.runbook().node(step).name.clone();
    let sha = crate::record::sha256_hex(reason.as_bytes());
    session
        .journal
        .append(&Event::CheckpointAsked {
            time: now(),
            checkpoint: name.clone(),
            content_sha256: sha.clone(),
            escalation: true,
            tip: None,
        })
        .map_err(|e| e.to_string())?;
    if !session.options.interactive {
        session.progress.line(&format!(
            "✗ {name} failed and escalates to a human: {}",
            first_line(reason)
        ));
        return Ok(None);
    }
    let conflicted = state.conflicts.contains_key(&name);
    let (decision, comment) = session.progress.suspend(|| {
        if conflicted {
            checkpoint::conflict_prompt(&name, reason)
        } else {
            checkpoint::escalate_prompt(&name, reason)
        }
    });
    let Some(decision) = decision else {
        return Ok(None);
    };
    session
        .journal
        .append(&Event::CheckpointDecided {
            time: now(),
            checkpoint: name.clone(),
            decision,
            by: session.options.identity.clone(),
            comment: comment.clone(),
            content_sha256: sha,
            preapproved: false,
        })
        .map_err(|e| e.to_string())?;
    let by = session.options.identity.clone();
    escalation_decision(session, state, step, decision, comment, &by).map(|r| {
        Some(match r {
            None => Ok(()),
            Some(stop) => Err(stop),
        })
    })
}

/// Applies a decision about an escalated step. `None` = it runs again or is skipped.
fn escalation_decision(
    session: &Session,
    state: &mut RunState,
    step: NodeId,
    decision: Decision,
    comment: Option<String>,
    by: &str,
) -> Result<Option<Stop>, String> {
    let name = session.checked.runbook().node(step).name.clone();
    if let Some(conflict) = state.conflicts.get(&name).cloned() {
        return conflict_decision(session, state, &name, &conflict, decision, comment, by);
    }
    let event = match decision {
        Decision::Ours | Decision::Theirs => {
            return Err(format!(
                "`{name}` did not conflict: --take applies to merge conflicts only"
            ))
        }
        Decision::Reject => {
            return Ok(Some(Stop::Failed(format!(
                "step {name} failed and {by} chose to roll back"
            ))))
        }
        Decision::Skip => Event::StepSkipped {
            time: now(),
            step: name.clone(),
            reason: format!("skipped after failing, by {by}"),
        },
        Decision::Approve | Decision::Revise => Event::NodesReset {
            time: now(),
            cause: name.clone(),
            nodes: vec![name.clone()],
            feedback: comment.map(|c| (name.clone(), format!("Reviewer's comment: {c}"))),
        },
    };
    session.journal.append(&event).map_err(|e| e.to_string())?;
    state.apply(&event);
    if matches!(decision, Decision::Skip) {
        state.decisions.remove(&name);
    }
    Ok(None)
}

/// Applies a decision about a step whose commit conflicts with the run branch.
fn conflict_decision(
    session: &Session,
    state: &mut RunState,
    name: &str,
    conflict: &super::state::ConflictRecord,
    decision: Decision,
    comment: Option<String>,
    by: &str,
) -> Result<Option<Stop>, String> {
    let ws = session
        .workspace
        .as_ref()
        .ok_or("a merge conflict was recorded, but the run has no workspace")?;
    let event = match (decision, decision.side()) {
        (_, Some(side)) => {
            let tip =
                super::tree::resolve(session, ws, name, &conflict.commit, &conflict.changes, side)?;
            session.set_view(
                name,
                StepView {
                    output: String::new(),
                    files: conflict.changes.iter().map(|c| c.path.clone()).collect(),
                    status: "succeeded".into(),
                },
            );
            session.progress.line(&format!(
                "✓ {name}: conflict resolved by {by} ({} side)",
                if side == super::event::Side::Ours {
                    "the run branch's"
                } else {
                    "the step's"
                }
            ));
            Event::ConflictResolved {
                time: now(),
                step: name.to_string(),
                side,
                by: by.to_string(),
                tip: tip.to_string(),
            }
        }
        (Decision::Reject, _) => {
            return Ok(Some(Stop::Failed(format!(
                "step {name}'s commit conflicts with the run branch and {by} chose to roll back"
            ))))
        }
        (Decision::Skip, _) => {
            return Err(format!(
                "`{name}` conflicts with the run branch: take a side, re-run it, or roll back"
            ))
        }
        (Decision::Approve | Decision::Revise | Decision::Ours | Decision::Theirs, None) => {
            let mut feedback =
                super::tree::conflict_feedback(ws, &conflict.commit, &conflict.paths);
            if let Some(c) = comment {
                feedback.push_str(&format!("\n\nReviewer's comment: {c}"));
            }
            Event::NodesReset {
                time: now(),
                cause: name.to_string(),
                nodes: vec![name.to_string()],
                feedback: Some((name.to_string(), feedback)),
            }
        }
    };
    session.journal.append(&event).map_err(|e| e.to_string())?;
    state.apply(&event);
    Ok(None)
}
