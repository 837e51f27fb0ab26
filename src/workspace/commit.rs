//! Step commits: a step's files as a commit on no ref, with the trailers that make `git log`
//! the attribution record.

use super::change::{commit_tree, tree_changes};
use super::error::GitContext;
use super::{Change, StepTree, Workspace, WorkspaceError};
use git2::{Oid, Signature};

/// The attribution a step commit carries as git trailers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailers {
    /// The run id.
    pub run: String,
    /// The step's name.
    pub step: String,
    /// The agent that made the change.
    pub agent: String,
    /// Which attempt of the step (1-based).
    pub attempt: u32,
    /// sha256 of the runbook sources the run used.
    pub spec_sha256: String,
    /// sha256 of the rendered prompt the agent received.
    pub prompt_sha256: String,
}

/// A step's commit and what it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCommit {
    /// The commit, whose parent is the step's base.
    pub commit: Oid,
    /// What it changed against the base.
    pub changes: Vec<Change>,
}

/// Where runbook's commits say they come from; the agent's name goes in the author name.
pub(crate) const EMAIL: &str = "runbook@localhost";

impl Workspace {
    /// Commits the tree's changes (on no ref: a dangling commit, parent = tree.base) with the subject, body and `Runbook-*` trailers; None when nothing changed. Author and committer are "runbook (<agent>)" <runbook@localhost>.
    pub fn commit_step(
        &self,
        tree: &StepTree,
        subject: &str,
        body: &str,
        trailers: &Trailers,
    ) -> Result<Option<StepCommit>, WorkspaceError> {
        let (worktree, snapshot) = self.snapshot(tree)?;
        let base_tree = commit_tree(&worktree, tree.base)?;
        if snapshot.tree == base_tree.id() {
            return Ok(None);
        }
        let new_tree = worktree
            .find_tree(snapshot.tree)
            .context(|| format!("reading tree {}", snapshot.tree))?;
        let parent = worktree
            .find_commit(tree.base)
            .context(|| format!("reading commit {}", tree.base))?;
        let signature = Signature::now(&format!("runbook ({})", one_line(&trailers.agent)), EMAIL)
            .context(|| format!("making a signature for agent {}", trailers.agent))?;
        let message = step_message(subject, body, trailers);
        let commit = worktree
            .commit(
                None,
                &signature,
                &signature,
                &message,
                &new_tree,
                &[&parent],
            )
            .context(|| format!("committing step {} on {}", tree.step, tree.base))?;
        let changes = tree_changes(&worktree, &base_tree, &new_tree)?;
        crate::record::crash::reached("git:step-commit");
        Ok(Some(StepCommit { commit, changes }))
    }
}

/// The commit message: subject, body, then one trailer block git parses.
pub(crate) fn step_message(subject: &str, body: &str, trailers: &Trailers) -> String {
    let mut message = one_line(subject);
    if message.is_empty() {
        message = format!("runbook: step {}", one_line(&trailers.step));
    }
    message.push_str("\n\n");
    let body = body.trim();
    if !body.is_empty() {
        message.push_str(body);
        message.push_str("\n\n");
    }
    let lines = [
        ("Runbook-Run", one_line(&trailers.run)),
        ("Runbook-Step", one_line(&trailers.step)),
        ("Runbook-Agent", one_line(&trailers.agent)),
        ("Runbook-Attempt", trailers.attempt.to_string()),
        ("Runbook-Spec-Sha256", one_line(&trailers.spec_sha256)),
        ("Runbook-Prompt-Sha256", one_line(&trailers.prompt_sha256)),
    ];
    for (key, value) in lines {
        message.push_str(&format!("{key}: {value}\n"));
    }
    message
}

/// Text that cannot break the message's structure: a newline in a trailer value would end
/// the trailer block early.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
