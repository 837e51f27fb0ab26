//! A step's git worktree through its attempts: where it starts (the merged results of
//! the steps it depends on), what an attempt changed, whether its agent was allowed to,
//! and how its commit reaches the run branch.

use super::event::{now, Event, FileChange, PathViolation};
use super::Session;
use crate::ir::{GraphNode, NodeId};
use crate::workspace::{Change, ChangeKind, Conflict, MergeOutcome, StepTree, Trailers, Workspace};
use git2::Oid;
use petgraph::Direction;
use std::collections::{HashMap, HashSet};

/// What the interpreter knows of the run branch's commits, shared by step tasks.
#[derive(Debug, Default)]
pub struct GitState {
    /// The commit each step's worktree is based on.
    pub bases: HashMap<String, Oid>,
    /// The commit holding each finished step's work.
    pub results: HashMap<String, Oid>,
    /// What each finished step changed.
    pub files: HashMap<String, Vec<FileChange>>,
}

impl GitState {
    /// Rebuilds what the journal recorded.
    pub fn from_state(state: &super::state::RunState) -> GitState {
        let parse = |m: &HashMap<String, String>| {
            m.iter()
                .filter_map(|(k, v)| Oid::from_str(v).ok().map(|o| (k.clone(), o)))
                .collect()
        };
        GitState {
            bases: parse(&state.bases),
            results: parse(&state.results),
            files: state.files.clone(),
        }
    }
}

/// How the end of a successful attempt reached the run branch.
#[derive(Debug)]
pub enum Landed {
    /// Committed (or nothing to commit) and merged.
    Merged {
        /// The step's commit, if it changed anything.
        commit: Option<Oid>,
        /// What it changed.
        changes: Vec<FileChange>,
        /// The run branch now.
        tip: Oid,
    },
    /// Its commit conflicts with the run branch.
    Conflict {
        /// The conflict.
        conflict: Box<Conflict>,
        /// What the step changed.
        changes: Vec<FileChange>,
    },
}

fn lock(session: &Session) -> std::sync::MutexGuard<'_, GitState> {
    session
        .git
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The commits a step starts from: the results of the nearest steps it depends on,
/// looking through phases, checkpoints and steps that left no result (skipped ones).
fn dependency_results(session: &Session, node: NodeId) -> Vec<Oid> {
    let runbook = session.checked.runbook();
    let dag = &runbook.graph.dag;
    let git = lock(session);
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<_> = dag
        .neighbors_directed(runbook.graph.index(node), Direction::Incoming)
        .collect();
    while let Some(v) = stack.pop() {
        if !seen.insert(v) {
            continue;
        }
        if let GraphNode::Node(id) = dag[v] {
            if let Some(result) = git.results.get(&runbook.node(id).name) {
                if !out.contains(result) {
                    out.push(*result);
                }
                continue;
            }
        }
        stack.extend(dag.neighbors_directed(v, Direction::Incoming));
    }
    out
}

/// Prepares the step's worktree: reused as it is when an earlier attempt left one (a
/// retry, a revise or a resume continues from its files), created at the merged results
/// of its dependencies otherwise, or moved onto the run branch's tip after a conflict.
pub fn prepare(
    session: &Session,
    ws: &Workspace,
    node: NodeId,
    rebase: bool,
) -> Result<StepTree, String> {
    let name = session.checked.runbook().node(node).name.clone();
    let known = lock(session).bases.get(&name).copied();
    let base = if rebase {
        ws.remove_step_tree(&name).map_err(|e| e.to_string())?;
        ws.tip().map_err(|e| e.to_string())?
    } else if let Some(base) = known {
        base
    } else {
        // No attempt of this step was journaled: a worktree left on disk is from a driver
        // that died while making it, and its files cannot be trusted.
        ws.remove_step_tree(&name).map_err(|e| e.to_string())?;
        let deps = dependency_results(session, node);
        match ws.merge_bases(&deps).map_err(|e| e.to_string())? {
            Ok(base) => base,
            Err(conflict) => {
                return Err(format!(
                    "the steps it depends on changed the same lines of {}, so there is no base \
                     to start it from; make them touch different lines (or order them with \
                     `after`), then start a new run",
                    conflict.paths.join(", ")
                ))
            }
        }
    };
    let tree = ws.step_tree(&name, base).map_err(|e| e.to_string())?;
    lock(session).bases.insert(name, tree.base);
    Ok(tree)
}

/// The record of a change.
pub fn file_change(c: &Change) -> FileChange {
    let (kind, from) = match &c.kind {
        ChangeKind::Added => ("added", None),
        ChangeKind::Modified => ("modified", None),
        ChangeKind::Deleted => ("deleted", None),
        ChangeKind::Renamed { from } => ("renamed", Some(from.clone())),
        ChangeKind::ModeChanged => ("mode", None),
        ChangeKind::TypeChanged => ("type", None),
    };
    FileChange {
        path: c.path.clone(),
        kind: kind.into(),
        from,
    }
}

/// The paths an attempt changed that its agent may not write (including under `.git`).
pub fn violations(
    ws: &Workspace,
    tree: &StepTree,
    write: &[crate::ir::pattern::Pattern],
    guard: &crate::workspace::GitGuard,
) -> Result<Vec<PathViolation>, String> {
    let changes = ws.changes(tree).map_err(|e| e.to_string())?;
    let mut found = Workspace::violations(&changes, write);
    found.extend(ws.guard_violations(guard).map_err(|e| e.to_string())?);
    Ok(found
        .into_iter()
        .map(|v| PathViolation {
            path: v.path,
            reason: v.reason,
        })
        .collect())
}

/// Records a violation and drops everything the attempt did; returns the failure reason
/// (also the next attempt's feedback).
pub fn reject_attempt(
    session: &Session,
    ws: &Workspace,
    tree: &StepTree,
    agent: &str,
    attempt: u32,
    paths: Vec<PathViolation>,
    guard: &crate::workspace::GitGuard,
) -> Result<String, String> {
    let mut reason = format!(
        "agent {agent} changed paths it may not write; nothing of attempt {attempt} was kept:"
    );
    for p in &paths {
        reason.push_str(&format!("\n  {}: {}", p.path, p.reason));
    }
    // A planted hook would run at the user's next commit: put git's files back first.
    let restored = ws.restore_guarded(guard).map_err(|e| e.to_string())?;
    if !restored.is_empty() {
        reason.push_str(&format!("\n(restored: {})", restored.join(", ")));
    }
    session
        .journal
        .append(&Event::Violation {
            time: now(),
            step: tree.step.clone(),
            attempt,
            agent: agent.to_string(),
            paths,
        })
        .map_err(|e| e.to_string())?;
    ws.reset_step_tree(tree).map_err(|e| e.to_string())?;
    Ok(reason)
}

/// What a commit says about the step that made it.
pub struct CommitInfo<'a> {
    /// The step.
    pub step: &'a str,
    /// Its title, or the first line of its prompt.
    pub subject: &'a str,
    /// The agent.
    pub agent: &'a str,
    /// The attempt.
    pub attempt: u32,
    /// sha256 of the rendered prompt.
    pub prompt_sha256: &'a str,
}

/// Commits a successful attempt and merges it into the run branch.
pub fn land(
    session: &Session,
    ws: &Workspace,
    tree: &StepTree,
    info: &CommitInfo,
) -> Result<Landed, String> {
    let trailers = Trailers {
        run: session.context.run_id.clone(),
        step: info.step.to_string(),
        agent: info.agent.to_string(),
        attempt: info.attempt,
        spec_sha256: session.spec_sha256.clone(),
        prompt_sha256: info.prompt_sha256.to_string(),
    };
    let subject = format!("{}: {}", info.step, one_line(info.subject, 64));
    let body = format!(
        "Step {} of run {} ({}), attempt {}, by agent {}.",
        info.step, session.context.run_id, session.context.name, info.attempt, info.agent
    );
    let committed = ws
        .commit_step(tree, &subject, &body, &trailers)
        .map_err(|e| e.to_string())?;
    let Some(committed) = committed else {
        // Nothing changed: its dependents start from where it started.
        let tip = ws.tip().map_err(|e| e.to_string())?;
        let mut git = lock(session);
        git.results.insert(info.step.to_string(), tree.base);
        git.files.insert(info.step.to_string(), Vec::new());
        return Ok(Landed::Merged {
            commit: None,
            changes: Vec::new(),
            tip,
        });
    };
    let changes: Vec<FileChange> = committed.changes.iter().map(file_change).collect();
    let message = format!("Merge step {} into {}", info.step, ws.branch());
    let tip = match ws
        .merge(committed.commit, &message)
        .map_err(|e| e.to_string())?
    {
        MergeOutcome::FastForward(t) | MergeOutcome::Merged(t) | MergeOutcome::Unchanged(t) => t,
        MergeOutcome::Conflict(conflict) => {
            return Ok(Landed::Conflict {
                conflict: Box::new(conflict),
                changes,
            })
        }
    };
    let mut git = lock(session);
    git.results.insert(info.step.to_string(), committed.commit);
    git.bases.insert(info.step.to_string(), committed.commit);
    git.files.insert(info.step.to_string(), changes.clone());
    Ok(Landed::Merged {
        commit: Some(committed.commit),
        changes,
        tip,
    })
}

/// Resolves a recorded conflict by taking `side` for the conflicting paths.
pub fn resolve(
    session: &Session,
    ws: &Workspace,
    step: &str,
    commit: &str,
    changes: &[FileChange],
    side: super::event::Side,
) -> Result<Oid, String> {
    let oid = Oid::from_str(commit).map_err(|e| format!("bad commit {commit}: {e}"))?;
    let message = format!(
        "Merge step {step} into {} ({} side of the conflicts)",
        ws.branch(),
        match side {
            super::event::Side::Ours => "the run branch's",
            super::event::Side::Theirs => "the step's",
        }
    );
    let tip = match ws.merge(oid, &message).map_err(|e| e.to_string())? {
        MergeOutcome::FastForward(t) | MergeOutcome::Merged(t) | MergeOutcome::Unchanged(t) => t,
        MergeOutcome::Conflict(conflict) => {
            let side = match side {
                super::event::Side::Ours => crate::workspace::Side::Ours,
                super::event::Side::Theirs => crate::workspace::Side::Theirs,
            };
            ws.resolve(&conflict, side, &message)
                .map_err(|e| e.to_string())?
        }
    };
    let mut git = lock(session);
    git.results.insert(step.to_string(), oid);
    git.bases.insert(step.to_string(), oid);
    git.files.insert(step.to_string(), changes.to_vec());
    Ok(tip)
}

/// What a human sees of a conflict: the paths and both sides of each.
pub fn describe_conflict(step: &str, conflict: &Conflict) -> String {
    let mut text = format!(
        "step {step}'s commit {} conflicts with the run branch ({}) in: {}\n",
        short(conflict.theirs),
        short(conflict.ours),
        conflict.paths.join(", ")
    );
    for side in &conflict.sides {
        text.push_str(&format!("\n── {} ──\n", side.path));
        for (label, content) in [
            ("common ancestor", &side.base),
            ("run branch (ours)", &side.ours),
            (&*format!("step {step} (theirs)"), &side.theirs),
        ] {
            text.push_str(&format!("┄┄ {label} ┄┄\n"));
            match content {
                Some(c) => {
                    text.push_str(c);
                    if !c.ends_with('\n') {
                        text.push('\n');
                    }
                }
                None => text.push_str("(absent)\n"),
            }
        }
    }
    text
}

/// The feedback of a step re-run after its commit conflicted.
pub fn conflict_feedback(ws: &Workspace, commit: &str, paths: &[String]) -> String {
    let mut text = format!(
        "Your earlier change conflicted with other steps' changes to {} on the run branch. \
         Your worktree now holds the run branch as it is (their changes included). \
         Make your change again on top of it.",
        paths.join(", ")
    );
    if let Ok(oid) = Oid::from_str(commit) {
        if let Ok(parent) = ws.parent(oid) {
            if let Ok(diff) = ws.diff(parent, oid) {
                text.push_str("\n\nYour earlier change was:\n");
                text.push_str(&super::checkpoint::cap_at(&diff, 16 * 1024));
            }
        }
    }
    text
}

/// The run branch's diff against its base, with which step and agent changed each file.
pub fn attributed_diff(session: &Session, ws: &Workspace) -> String {
    let tip = match ws.tip() {
        Ok(t) => t,
        Err(e) => return format!("(cannot read the run branch: {e})\n"),
    };
    let changed = match ws.changed_paths(ws.base(), tip) {
        Ok(c) => c,
        Err(e) => return format!("(cannot diff the run branch: {e})\n"),
    };
    if changed.is_empty() {
        return "(no changes)\n".into();
    }
    let git = lock(session);
    let runbook = session.checked.runbook();
    let mut text = format!(
        "{} against {} ({} files):\n",
        ws.branch(),
        short(ws.base()),
        changed.len()
    );
    for c in &changed {
        let by: Vec<String> = git
            .files
            .iter()
            .filter(|(_, files)| files.iter().any(|f| f.path == c.path))
            .map(|(step, _)| {
                let agent = runbook
                    .node_named(step)
                    .and_then(|id| runbook.node(id).step())
                    .and_then(|s| s.agent)
                    .map(|a| runbook.agent(a).name.clone())
                    .unwrap_or_default();
                format!("{step} ({agent})")
            })
            .collect();
        let mut by = by;
        by.sort();
        text.push_str(&format!(
            "  {:<9} {}  ← {}\n",
            file_change(c).kind,
            c.path,
            if by.is_empty() {
                "?".to_string()
            } else {
                by.join(", ")
            }
        ));
    }
    text.push('\n');
    match ws.diff(ws.base(), tip) {
        Ok(d) => text.push_str(&d),
        Err(e) => text.push_str(&format!("(cannot diff: {e})\n")),
    }
    text
}

/// Moves the run branch back to the last approved checkpoint (or its base) after a
/// rollback, and records it.
pub fn reset_after_rollback(session: &Session, ws: &Workspace) -> Result<(), String> {
    let events = crate::record::journal::read_events::<Event>(session.dir.events())
        .map_err(|e| format!("cannot read {}: {e}", session.dir.events().display()))?;
    let state = super::state::RunState::from_events(&events.events);
    let (to, why) = match state.approved_tip.as_deref().map(Oid::from_str) {
        Some(Ok(oid)) => (oid, "rollback: back to the last approved checkpoint"),
        _ => (ws.base(), "rollback: back to where the run started"),
    };
    if ws.tip().map_err(|e| e.to_string())? == to {
        return Ok(());
    }
    ws.reset_branch(to).map_err(|e| e.to_string())?;
    session
        .journal
        .append(&Event::BranchReset {
            time: now(),
            to: to.to_string(),
            reason: why.into(),
        })
        .map_err(|e| e.to_string())?;
    session
        .progress
        .line(&format!("↺ {} reset to {} ({why})", ws.branch(), short(to)));
    Ok(())
}

/// The first 12 hex digits of a commit.
pub fn short(oid: Oid) -> String {
    oid.to_string()[..12].to_string()
}

fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line = line.trim();
    if line.chars().count() <= max {
        return line.to_string();
    }
    let cut: String = line.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_trimmed_line() {
        assert_eq!(
            one_line("\n  Fix the handler  \nmore", 64),
            "Fix the handler"
        );
        assert_eq!(one_line("abcdef", 4), "abc…");
    }
}
