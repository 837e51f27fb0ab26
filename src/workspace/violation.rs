//! The write-permission check: which changes a step's `write` globs do not allow.

use super::{Change, ChangeKind, Workspace};
use crate::ir::pattern::{any_match, Pattern};

/// A change the step was not allowed to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The offending path (repo-relative).
    pub path: String,
    /// Why it is not allowed, for people.
    pub reason: String,
}

impl Workspace {
    /// The violations of `changes` against `write` globs: any changed path (both sides of a rename, deletions, mode changes) not matched by `write` (empty write = nothing may change); any new/changed symlink whose target (resolved relative to its directory, lexically) leaves the worktree or points to a path no `write` glob matches; any path under `.git`.
    pub fn violations(changes: &[Change], write: &[Pattern]) -> Vec<Violation> {
        let allowed = allowed_text(write);
        let mut found = Vec::new();
        for change in changes {
            let what = match &change.kind {
                ChangeKind::Added => "added",
                ChangeKind::Modified => "modified",
                ChangeKind::Deleted => "deleted",
                ChangeKind::Renamed { .. } => "renamed",
                ChangeKind::ModeChanged => "mode changed",
                ChangeKind::TypeChanged => "type changed",
            };
            check_path(&change.path, what, write, &allowed, &mut found);
            if let ChangeKind::Renamed { from } = &change.kind {
                let what = format!("renamed to {}", change.path);
                check_path(from, &what, write, &allowed, &mut found);
            }
            if let Some(target) = &change.symlink_target {
                if let Some(reason) = symlink_problem(&change.path, target, write, &allowed) {
                    found.push(Violation {
                        path: change.path.clone(),
                        reason,
                    });
                }
            }
        }
        found
    }
}

fn check_path(
    path: &str,
    what: &str,
    write: &[Pattern],
    allowed: &str,
    found: &mut Vec<Violation>,
) {
    let reason = if is_git_path(path) {
        format!("change under .git ({what})")
    } else if !any_match(write, path) {
        format!("{what} outside {allowed}")
    } else {
        return;
    };
    found.push(Violation {
        path: path.to_string(),
        reason,
    });
}

/// Why a symlink at `path` pointing to `target` is not allowed, if it is not.
fn symlink_problem(path: &str, target: &str, write: &[Pattern], allowed: &str) -> Option<String> {
    let Some(resolved) = resolve_lexically(path, target) else {
        return Some(format!("symlink pointing outside the worktree: {target}"));
    };
    if is_git_path(&resolved) {
        return Some(format!("symlink pointing into .git: {target}"));
    }
    // A link to a directory the step may write everywhere under is as harmless as the
    // directory itself.
    if any_match(write, &resolved) || any_match(write, &format!("{resolved}/_")) {
        return None;
    }
    Some(format!(
        "symlink pointing to {resolved} ({target}), outside {allowed}"
    ))
}

/// The repo-relative path `target` names from the symlink at `path`, or None when it leaves
/// the worktree (absolute, or too many `..`). Purely textual: links are not followed.
fn resolve_lexically(path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            name => parts.push(name),
        }
    }
    Some(parts.join("/"))
}

/// Whether `path` is `.git` or inside a `.git` directory at any depth.
fn is_git_path(path: &str) -> bool {
    path.split('/')
        .any(|part| part.eq_ignore_ascii_case(".git"))
}

/// `write ["src/**", "docs/**"]`, or a plain statement when nothing may be written.
fn allowed_text(write: &[Pattern]) -> String {
    if write.is_empty() {
        return "write [] (the agent may not change any file)".to_string();
    }
    let texts: Vec<&str> = write.iter().map(|p| p.text.as_str()).collect();
    format!("write {texts:?}")
}
