//! The names runbook gives to branches, worktree admin entries and step directories.

use super::WorkspaceError;
use sha2::{Digest, Sha256};

/// `runbook/<runbook-name>/<run-id>`, with the runbook name made ref-safe.
pub(crate) fn run_branch(runbook_name: &str, run_id: &str) -> Result<String, WorkspaceError> {
    if run_id.is_empty() || !run_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(WorkspaceError::InvalidName {
            name: run_id.to_string(),
        });
    }
    let name: String = runbook_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        return Err(WorkspaceError::InvalidName {
            name: runbook_name.to_string(),
        });
    }
    let branch = format!("runbook/{name}/{run_id}");
    if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
        return Err(WorkspaceError::InvalidName {
            name: runbook_name.to_string(),
        });
    }
    Ok(branch)
}

/// The admin name (`.git/worktrees/<name>`) of the run worktree.
pub(crate) fn run_worktree_name(run_id: &str) -> String {
    format!("runbook-{run_id}")
}

/// The admin name of a step's worktree; every step worktree of a run shares the prefix.
pub(crate) fn step_worktree_name(run_id: &str, step: &str) -> String {
    format!("{}{}", step_worktree_prefix(run_id), slug(step))
}

/// What the admin names of a run's step worktrees start with.
pub(crate) fn step_worktree_prefix(run_id: &str) -> String {
    format!("runbook-{run_id}--")
}

/// The temporary branch a step worktree is created on (libgit2 needs one).
pub(crate) fn temporary_branch(run_id: &str, step: &str) -> String {
    format!("refs/heads/runbook-wt/{run_id}/{}", slug(step))
}

/// A step name as a file and ref name component: kept when already safe, otherwise the
/// unsafe characters replaced and a hash of the real name appended so names stay distinct.
pub(crate) fn slug(step: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !step.is_empty() && step.chars().all(safe) && !step.starts_with('-') {
        return step.to_string();
    }
    let replaced: String = step
        .chars()
        .map(|c| if safe(c) { c } else { '_' })
        .collect();
    let digest = Sha256::digest(step.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hash}", replaced.trim_start_matches('-'))
}
