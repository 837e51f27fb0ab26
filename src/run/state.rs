//! Run state, rebuilt from the journal alone: what finished, what was in flight, what
//! waits for a decision, and the order things completed in (for rollback).

use super::event::{Decision, Event, FileChange};
use std::collections::HashMap;

/// Where a step or checkpoint stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStatus {
    /// Not started.
    Pending,
    /// Started and not finished: in flight when the journal ends.
    Running {
        /// The attempt in flight.
        attempt: u32,
    },
    /// Finished successfully.
    Succeeded,
    /// Failed after its last attempt.
    Failed {
        /// Why.
        reason: String,
    },
    /// Its `when` was false, or a human skipped it.
    Skipped,
    /// A checkpoint or escalation waits for a decision.
    Asked {
        /// sha256 of what was shown.
        content_sha256: String,
    },
    /// A checkpoint was approved.
    Approved,
}

impl NodeStatus {
    /// The word used in templates (`steps.X.status`) and listings.
    pub fn word(&self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Running { .. } => "running",
            NodeStatus::Succeeded => "succeeded",
            NodeStatus::Failed { .. } => "failed",
            NodeStatus::Skipped => "skipped",
            NodeStatus::Asked { .. } => "waiting",
            NodeStatus::Approved => "approved",
        }
    }
}

/// A decision recorded but not yet acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDecision {
    /// What was decided.
    pub decision: Decision,
    /// Who decided.
    pub by: String,
    /// The comment.
    pub comment: Option<String>,
    /// What the decision is bound to.
    pub content_sha256: String,
}

/// A step whose commit conflicts with the run branch, waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    /// The step's commit.
    pub commit: String,
    /// The run branch it conflicts with.
    pub ours: String,
    /// The conflicting paths.
    pub paths: Vec<String>,
    /// What the step changed.
    pub changes: Vec<FileChange>,
}

/// Everything known about a run from its journal.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Status of each node by name.
    pub nodes: HashMap<String, NodeStatus>,
    /// Attempts started per step (including interrupted ones).
    pub attempts: HashMap<String, u32>,
    /// Attempts that count toward `attempts N` (finished ones) per step.
    pub finished_attempts: HashMap<String, u32>,
    /// The feedback for a step's next attempt.
    pub feedback: HashMap<String, String>,
    /// Why each failed step failed, by step (kept while an escalation asks about it).
    pub failures: HashMap<String, String>,
    /// Decisions waiting to be applied, by checkpoint (or escalated step).
    pub decisions: HashMap<String, PendingDecision>,
    /// When each waiting checkpoint was first asked (RFC 3339), for its `timeout`.
    pub asked_at: HashMap<String, String>,
    /// Steps in the order they succeeded.
    pub completed: Vec<String>,
    /// Whether the run has ended, and how.
    pub finished: Option<String>,
    /// Whether a rollback started.
    pub rolled_back: bool,
    /// The params the run started with.
    pub params: serde_json::Value,
    /// The spec the run started with.
    pub spec: Vec<super::event::SpecFile>,
    /// The run's working directory.
    pub workdir: String,
    /// The run branch, when steps run in git worktrees.
    pub branch: Option<String>,
    /// The OS sandbox as last recorded (start or resume).
    pub sandbox: Option<crate::run::event::SandboxRecord>,
    /// The commit the run branch started from.
    pub head: Option<String>,
    /// The commit each step's worktree is based on.
    pub bases: HashMap<String, String>,
    /// The commit holding each finished step's work (its commit, or its base when it
    /// changed nothing): what its dependents start from.
    pub results: HashMap<String, String>,
    /// What each finished step changed.
    pub files: HashMap<String, Vec<FileChange>>,
    /// US dollars the agents reported spending, over every finished attempt.
    pub spent_usd: f64,
    /// The run branch as last recorded.
    pub tip: Option<String>,
    /// Steps whose commit conflicts with the run branch.
    pub conflicts: HashMap<String, ConflictRecord>,
    /// The run branch when each open checkpoint was asked.
    pub asked_tip: HashMap<String, String>,
    /// The run branch as of the last approved checkpoint: where a rollback resets it.
    pub approved_tip: Option<String>,
}

impl RunState {
    /// Rebuilds the state from events in journal order.
    pub fn from_events(events: &[Event]) -> RunState {
        let mut s = RunState::default();
        for event in events {
            s.apply(event);
        }
        if crate::record::crash::break_recovery() {
            s.forget_first_finished();
        }
        s
    }

    /// The deliberately broken recovery of `RUNBOOK_TEST_BREAK_RECOVERY` (a test hook that
    /// proves the crash harness can fail): the first step that finished is taken for one
    /// that never ran, so a resume runs it again.
    fn forget_first_finished(&mut self) {
        let Some(step) = self.completed.first().cloned() else {
            return;
        };
        eprintln!(
            "warning: {}: forgetting that {step} finished (test hook)",
            crate::record::crash::BREAK_RECOVERY_ENV
        );
        self.completed.retain(|c| c != &step);
        self.nodes.insert(step.clone(), NodeStatus::Pending);
        self.results.remove(&step);
        self.files.remove(&step);
    }

    /// The status of a node.
    pub fn status(&self, name: &str) -> &NodeStatus {
        self.nodes.get(name).unwrap_or(&NodeStatus::Pending)
    }

    /// Steps that were in flight when the journal ended.
    pub fn in_flight(&self) -> Vec<(String, u32)> {
        let mut v: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|(n, s)| match s {
                NodeStatus::Running { attempt } => Some((n.clone(), *attempt)),
                _ => None,
            })
            .collect();
        v.sort();
        v
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                params,
                spec,
                workdir,
                head,
                branch,
                sandbox,
                ..
            } => {
                self.params = params.clone();
                self.spec = spec.clone();
                self.workdir = workdir.clone();
                self.head = head.clone();
                self.branch = branch.clone();
                self.sandbox = sandbox.clone();
            }
            Event::RunResumed { sandbox, .. } => {
                if sandbox.is_some() {
                    self.sandbox = sandbox.clone();
                }
            }
            Event::RunInterrupted { .. } | Event::RunSuspended { .. } => {}
            Event::StepStarted {
                step,
                attempt,
                base,
                ..
            } => {
                self.nodes
                    .insert(step.clone(), NodeStatus::Running { attempt: *attempt });
                self.attempts.insert(step.clone(), *attempt);
                self.completed.retain(|c| c != step);
                self.conflicts.remove(step);
                if let Some(base) = base {
                    self.bases.insert(step.clone(), base.clone());
                }
            }
            Event::StepFinished {
                step,
                ok,
                reason,
                retry,
                commit,
                changes,
                tip,
                agent,
                ..
            } => {
                *self.finished_attempts.entry(step.clone()).or_default() += 1;
                self.spent_usd += agent.as_ref().and_then(|a| a.cost_usd).unwrap_or(0.0);
                if *ok {
                    self.nodes.insert(step.clone(), NodeStatus::Succeeded);
                    self.completed.push(step.clone());
                    self.feedback.remove(step);
                    // Its worktree now holds its commit: a later re-run (revise) goes on
                    // from there.
                    if let Some(result) = commit.as_ref().or(self.bases.get(step)).cloned() {
                        self.bases.insert(step.clone(), result.clone());
                        self.results.insert(step.clone(), result);
                    }
                    self.files.insert(step.clone(), changes.clone());
                    if tip.is_some() {
                        self.tip = tip.clone();
                    }
                } else if *retry {
                    self.nodes.insert(step.clone(), NodeStatus::Pending);
                    if let Some(r) = reason {
                        self.feedback.insert(step.clone(), r.clone());
                    }
                } else {
                    let reason = reason.clone().unwrap_or_default();
                    self.failures.insert(step.clone(), reason.clone());
                    self.nodes
                        .insert(step.clone(), NodeStatus::Failed { reason });
                }
            }
            Event::StepSkipped { step, .. } => {
                self.nodes.insert(step.clone(), NodeStatus::Skipped);
            }
            Event::Violation { .. } => {}
            Event::MergeConflict {
                step,
                commit,
                ours,
                paths,
                changes,
                ..
            } => {
                self.conflicts.insert(
                    step.clone(),
                    ConflictRecord {
                        commit: commit.clone(),
                        ours: ours.clone(),
                        paths: paths.clone(),
                        changes: changes.clone(),
                    },
                );
            }
            Event::ConflictResolved { step, tip, .. } => {
                if let Some(c) = self.conflicts.remove(step) {
                    self.results.insert(step.clone(), c.commit.clone());
                    self.bases.insert(step.clone(), c.commit);
                    self.files.insert(step.clone(), c.changes);
                }
                self.decisions.remove(step);
                self.failures.remove(step);
                self.asked_at.remove(step);
                self.nodes.insert(step.clone(), NodeStatus::Succeeded);
                self.completed.push(step.clone());
                self.feedback.remove(step);
                self.tip = Some(tip.clone());
            }
            Event::BranchReset { to, .. } => self.tip = Some(to.clone()),
            Event::CheckpointAsked {
                checkpoint,
                content_sha256,
                time,
                escalation,
                tip,
                ..
            } => {
                if let (false, Some(tip)) = (escalation, tip) {
                    self.asked_tip.insert(checkpoint.clone(), tip.clone());
                }
                // A new question makes earlier answers stale; the clock for `timeout`
                // keeps running from the first time it was asked.
                self.decisions.remove(checkpoint);
                self.asked_at
                    .entry(checkpoint.clone())
                    .or_insert_with(|| time.clone());
                self.nodes.insert(
                    checkpoint.clone(),
                    NodeStatus::Asked {
                        content_sha256: content_sha256.clone(),
                    },
                );
            }
            Event::CheckpointDecided {
                checkpoint,
                decision,
                by,
                comment,
                content_sha256,
                ..
            } => {
                if *decision == Decision::Approve {
                    if let Some(tip) = self.asked_tip.get(checkpoint) {
                        self.approved_tip = Some(tip.clone());
                    }
                }
                self.decisions.insert(
                    checkpoint.clone(),
                    PendingDecision {
                        decision: *decision,
                        by: by.clone(),
                        comment: comment.clone(),
                        content_sha256: content_sha256.clone(),
                    },
                );
            }
            Event::NodesReset {
                cause,
                nodes,
                feedback,
                ..
            } => {
                self.decisions.remove(cause);
                for n in nodes {
                    self.asked_at.remove(n);
                    self.nodes.insert(n.clone(), NodeStatus::Pending);
                    self.completed.retain(|c| c != n);
                    self.finished_attempts.remove(n);
                }
                if let Some((step, text)) = feedback {
                    self.feedback.insert(step.clone(), text.clone());
                }
            }
            Event::RollbackStarted { .. } => self.rolled_back = true,
            Event::RollbackAction { .. } | Event::RollbackFinished { .. } => {}
            Event::RunFinished { status, .. } => self.finished = Some(status.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::event::now;

    fn finished(step: &str, attempt: u32, ok: bool, retry: bool) -> Event {
        Event::StepFinished {
            time: now(),
            step: step.into(),
            attempt,
            ok,
            reason: (!ok).then(|| format!("attempt {attempt} failed")),
            exit_code: Some(i32::from(!ok)),
            duration_ms: 1,
            retry,
            commit: None,
            changes: Vec::new(),
            tip: None,
            agent: None,
        }
    }

    fn started(step: &str, attempt: u32) -> Event {
        Event::StepStarted {
            time: now(),
            step: step.into(),
            attempt,
            agent: "shell".into(),
            prompt_sha256: String::new(),
            base: None,
        }
    }

    #[test]
    fn an_escalated_step_waits_with_its_failure_and_decision() {
        let events = [
            started("x", 1),
            finished("x", 1, false, false),
            Event::CheckpointAsked {
                time: now(),
                checkpoint: "x".into(),
                content_sha256: "sha".into(),
                escalation: true,
                tip: None,
            },
            Event::CheckpointDecided {
                time: now(),
                checkpoint: "x".into(),
                decision: Decision::Skip,
                by: "ann".into(),
                comment: None,
                content_sha256: "sha".into(),
                preapproved: false,
            },
        ];
        let state = RunState::from_events(&events);
        assert!(matches!(state.status("x"), NodeStatus::Asked { .. }));
        assert_eq!(state.failures["x"], "attempt 1 failed");
        assert_eq!(state.decisions["x"].decision, Decision::Skip);
        assert!(state.in_flight().is_empty());
    }

    #[test]
    fn retries_count_finished_attempts_and_keep_the_feedback() {
        let events = [
            started("x", 1),
            finished("x", 1, false, true),
            started("x", 2),
        ];
        let state = RunState::from_events(&events);
        assert_eq!(state.in_flight(), vec![("x".to_string(), 2)]);
        assert_eq!(state.finished_attempts["x"], 1);
        assert_eq!(state.feedback["x"], "attempt 1 failed");
        let mut state = state;
        state.apply(&finished("x", 2, true, false));
        assert_eq!(state.status("x"), &NodeStatus::Succeeded);
        assert_eq!(state.completed, ["x"]);
        assert!(!state.feedback.contains_key("x"));
    }
}
