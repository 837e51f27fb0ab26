//! Bringing the user's branch up to a run's result, only when nothing of theirs can be lost.

use super::error::GitContext;
use super::WorkspaceError;
use git2::{ErrorCode, Oid, Repository, Status, StatusOptions};
use std::path::Path;

/// Fast-forwards the user's current branch to `to` when safe: HEAD is a branch (not detached), its commit is an ancestor of `to`, and the user's working tree + index have no changes to tracked files (untracked are fine unless the checkout would overwrite them). Updates the working tree files (checkout) and the ref. Returns Ok(Ok(branch)) or Ok(Err(why not)).
pub fn fast_forward_user(
    repo_root: &Path,
    to: Oid,
) -> Result<Result<String, String>, WorkspaceError> {
    let repo = super::open_repo(repo_root)?;
    let target = repo
        .find_commit(to)
        .context(|| format!("fast-forwarding to {to}: no such commit"))?;
    let head = match repo.head() {
        Ok(head) => head,
        Err(e) if e.code() == ErrorCode::UnbornBranch => {
            return Ok(Err("HEAD is unborn: there is no branch to move".to_string()))
        }
        Err(e) => return Err(e).context(|| format!("reading HEAD of {}", repo_root.display())),
    };
    if !head.is_branch() {
        return Ok(Err(
            "HEAD is detached: check out the branch to update, then try again".to_string(),
        ));
    }
    let branch = head.name().unwrap_or_default().to_string();
    let short = branch
        .strip_prefix("refs/heads/")
        .unwrap_or(&branch)
        .to_string();
    let current = head
        .peel_to_commit()
        .context(|| format!("reading the commit of {short}"))?
        .id();
    drop(head);
    if current == to {
        return Ok(Ok(short));
    }
    let ancestor = repo
        .graph_descendant_of(to, current)
        .context(|| format!("checking whether {to} contains {current}"))?;
    if !ancestor {
        return Ok(Err(format!(
            "{short} ({current}) has commits that {to} does not contain: merge instead of fast-forwarding"
        )));
    }
    if let Some(why) = dirty(&repo, &short)? {
        return Ok(Err(why));
    }
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.safe();
    match repo.checkout_tree(target.as_object(), Some(&mut checkout)) {
        Ok(()) => {}
        Err(e) if e.code() == ErrorCode::Conflict => {
            return Ok(Err(format!(
                "the checkout would overwrite untracked files in {}: {}",
                repo_root.display(),
                e.message()
            )))
        }
        Err(e) => {
            return Err(e).context(|| format!("checking {to} out in {}", repo_root.display()))
        }
    }
    repo.reference_matching(
        &branch,
        to,
        true,
        current,
        &format!("runbook: fast-forward to {to}"),
    )
    .context(|| format!("moving {short} from {current} to {to}"))?;
    Ok(Ok(short))
}

/// Why the user's tracked files are not clean, if they are not.
fn dirty(repo: &Repository, branch: &str) -> Result<Option<String>, WorkspaceError> {
    let mut options = StatusOptions::new();
    options
        .include_untracked(false)
        .include_ignored(false)
        .exclude_submodules(true);
    let statuses = repo
        .statuses(Some(&mut options))
        .context(|| "reading the working tree's status".into())?;
    let changed: Vec<String> = statuses
        .iter()
        .filter(|s| s.status() != Status::CURRENT && !s.status().contains(Status::IGNORED))
        .filter_map(|s| s.path().map(str::to_string))
        .collect();
    if changed.is_empty() {
        return Ok(None);
    }
    let shown: Vec<&str> = changed.iter().take(5).map(String::as_str).collect();
    let more = if changed.len() > 5 {
        format!(" and {} more", changed.len() - 5)
    } else {
        String::new()
    };
    Ok(Some(format!(
        "{branch} has uncommitted changes ({}{more}): commit or stash them first",
        shown.join(", ")
    )))
}
